//! The watcher thread of one resource: executes the [`Machine`]'s actions with the client and sends
//! the resulting messages down a channel.
//!
//! Owns: the I/O of list/watch/sleep, stopping promptly (shutdown flag, receiver gone), and counting
//! what it did in [`WatchStats`] for the metrics page.
//! Must not: decide when to relist or back off (the machine does) or interpret objects.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::machine::{Action, Backoff, Input, Machine};
use super::stream::{WatchEvent, WatchMsg, WatchStream};
use crate::kube::client::{Client, ListParams};
use crate::kube::transport::cancel_reads_on;

/// Longest uninterrupted sleep, so a backing-off watcher notices shutdown quickly.
const SLEEP_SLICE: Duration = Duration::from_millis(100);

/// What one watcher has done, counted by its thread and read by whoever holds the `Arc` (the
/// controller's `/metrics`, with `load(Relaxed)`). Counts only go up.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// LIST requests after the first successful one: 410 Gone relists, and retries of a failed
    /// relist.
    pub relists: AtomicU64,
    /// WATCH requests that resume from a resourceVersion (the stream ended, stalled or failed), as
    /// opposed to the first watch after each LIST.
    pub restarts: AtomicU64,
    /// Failed LISTs, failed WATCH requests, broken or stalled streams, and in-stream ERROR events.
    pub errors: AtomicU64,
    /// Events read off watch streams, bookmarks included, ERROR events not.
    pub events: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Start the watcher thread for `path` (a collection path, optionally with `?labelSelector=…`),
/// counting relists, restarts, errors and events into `stats`. Every [`WatchMsg`] goes through `map`
/// into `tx`. The thread ends when `shutdown` is set (within about a second, even in the middle of
/// a read) or when the receiver is gone (noticed at the next message).
pub fn spawn_with_stats<T, E>(
    name: impl Into<String>,
    client: Client,
    path: String,
    tx: Sender<E>,
    map: impl Fn(WatchMsg<T>) -> E + Send + 'static,
    shutdown: Arc<AtomicBool>,
    stats: Arc<WatchStats>,
) -> JoinHandle<()>
where
    T: DeserializeOwned + Send + 'static,
    E: Send + 'static,
{
    let name = name.into();
    let thread_name = format!("watch-{name}");
    let decode: Decode = |text| Ok(Box::new(serde_json::from_str::<T>(text)?));
    let mut send = move |msg: WatchMsg<Object>| match unerase::<T>(msg) {
        Some(msg) => tx.send(map(msg)).is_ok(),
        None => true, // cannot happen: `decode` made every object a T
    };
    let run = move || run(name, client, path, decode, &mut send, shutdown, stats);
    // Fails only when the OS refuses a thread; the process cannot work without its watchers.
    let spawned = std::thread::Builder::new().name(thread_name).spawn(run);
    spawned.unwrap_or_else(|e| panic!("cannot start a watcher thread: {e}"))
}

/// A watched object whose type only the watcher's two ends know (`decode` makes it, `unerase`
/// takes it back): the loop below, the machine and the LIST and stream code are in the binary
/// once, not once per watched kind (~80 KB of a static build).
type Object = Box<dyn std::any::Any + Send>;
type Decode = fn(&str) -> serde_json::Result<Object>;

fn unerase<T: 'static>(msg: WatchMsg<Object>) -> Option<WatchMsg<T>> {
    let t = |o: Object| o.downcast::<T>().ok().map(|b| *b);
    Some(match msg {
        WatchMsg::Restarted(items, rv) => {
            WatchMsg::Restarted(items.into_iter().filter_map(t).collect(), rv)
        }
        WatchMsg::Applied(o) => WatchMsg::Applied(t(o)?),
        WatchMsg::Deleted(o) => WatchMsg::Deleted(t(o)?),
    })
}

fn run(
    name: String,
    client: Client,
    path: String,
    decode: Decode,
    send: &mut dyn FnMut(WatchMsg<Object>) -> bool,
    shutdown: Arc<AtomicBool>,
    stats: Arc<WatchStats>,
) {
    // Reads made by this thread wake up regularly and give up once shutdown is set.
    let _cancel = cancel_reads_on(shutdown.clone());
    let mut machine = Machine::new(name.clone(), Backoff::default());
    let params = ListParams::default();
    let mut stream: Option<WatchStream> = None;
    let mut step = machine.start::<Object>();
    // For the counters: has a LIST succeeded yet, and was the last request a successful LIST?
    let (mut listed, mut after_list) = (false, false);
    log::debug!("watch {name}: started on {path}");
    while !shutdown.load(Ordering::Relaxed) {
        for (level, line) in std::mem::take(&mut step.logs) {
            log::log!(level, "watch {line}");
        }
        for msg in std::mem::take(&mut step.msgs) {
            if !send(msg) {
                log::debug!("watch {name}: receiver gone, stopping");
                return;
            }
        }
        // Only a Read goes on with the open stream; any other action closes it first.
        let mut open = stream.take().filter(|_| step.action == Action::Read);
        let input = match step.action {
            Action::List => {
                if listed {
                    bump(&stats.relists);
                }
                match client.list(&path, &params, decode) {
                    Ok(list) => {
                        (listed, after_list) = (true, true);
                        Input::Listed(list)
                    }
                    Err(e) => Input::Failed(e),
                }
            }
            Action::Watch {
                ref resource_version,
                timeout_seconds,
            } => {
                if !std::mem::take(&mut after_list) {
                    bump(&stats.restarts);
                }
                match client.watch(&path, resource_version, timeout_seconds) {
                    Ok(s) => {
                        stream = Some(s);
                        Input::WatchOpened
                    }
                    Err(e) => Input::Failed(e),
                }
            }
            Action::Read => match open.as_mut().map(|s| s.next_event(decode)) {
                Some(Ok(Some(event))) => {
                    stream = open;
                    Input::Event(event)
                }
                Some(Err(e)) => Input::Failed(e),
                // No stream cannot happen with a correct machine; it treats this as a stream end.
                Some(Ok(None)) | None => Input::StreamEnded,
            },
            Action::Sleep(d) => {
                sleep_unless(&shutdown, d);
                Input::Slept
            }
        };
        if shutdown.load(Ordering::Relaxed) {
            // The failure that ends a cancelled read is ours, not the server's: do not report it.
            break;
        }
        match &input {
            Input::Failed(_) | Input::Event(WatchEvent::Error(_)) => bump(&stats.errors),
            Input::Event(_) => bump(&stats.events),
            _ => {}
        }
        step = machine.step(input, Instant::now());
    }
    log::debug!("watch {name}: stopped");
}

/// Sleeps `d` in short slices so shutdown is noticed promptly (the lease elector's pauses too).
pub(crate) fn sleep_unless(shutdown: &AtomicBool, d: Duration) {
    let until = Instant::now() + d;
    // Bounded by `d / SLEEP_SLICE` passes.
    while !shutdown.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(SLEEP_SLICE));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{Receiver, channel};

    use super::*;
    use crate::kube::client::ClientOptions;
    use crate::kube::testutil::*;

    /// Generous bound on anything the tests wait for: a loaded box is slow, never this slow.
    const PATIENCE: Duration = Duration::from_secs(30);

    const HELD_WATCH: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

    fn join_within(handle: JoinHandle<()>, limit: Duration) -> bool {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let _ = handle.join();
            let _ = tx.send(());
        });
        rx.recv_timeout(limit).is_ok()
    }

    fn names(msg: &WatchMsg<serde_json::Value>) -> String {
        let name = |v: &serde_json::Value| v["metadata"]["name"].as_str().unwrap_or("").to_string();
        match msg {
            WatchMsg::Restarted(items, _) => {
                format!(
                    "restarted[{}]",
                    items.iter().map(name).collect::<Vec<_>>().join(",")
                )
            }
            WatchMsg::Applied(o) => format!("applied {}", name(o)),
            WatchMsg::Deleted(o) => format!("deleted {}", name(o)),
        }
    }

    fn take(rx: &Receiver<WatchMsg<serde_json::Value>>, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| names(&rx.recv_timeout(PATIENCE).expect("watch message")))
            .collect()
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let until = Instant::now() + PATIENCE;
        while !cond() {
            assert!(Instant::now() < until, "gave up waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(url: &str) -> Client {
        Client::new(&config(url), ClientOptions::default()).unwrap()
    }

    #[test]
    fn lists_watches_rewatches_from_the_bookmark_and_stops_promptly_on_shutdown() {
        let watches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = {
            let watches = watches.clone();
            TestServer::http(move |req| {
                if !req.target.contains("watch=1") {
                    return Reply::Raw(fixture("services-list-fixtures.http"));
                }
                if watches.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::Raw(fixture("services-watch.raw"))
                } else {
                    // The re-watch stays open and silent: shutdown must interrupt the read.
                    Reply::Hold(HELD_WATCH.to_vec(), PATIENCE)
                }
            })
        };
        let (tx, rx) = channel();
        let shutdown = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WatchStats::default());
        let handle = spawn_with_stats(
            "services",
            client(&server.url),
            "/api/v1/namespaces/fixtures/services".into(),
            tx,
            |m| m,
            shutdown.clone(),
            stats.clone(),
        );
        let got = take(&rx, 5);
        assert_eq!(
            got,
            [
                "restarted[dns]",
                "applied web",
                "applied web",
                "applied web",
                "deleted web"
            ]
        );
        wait_for("the re-watch", || server.requests().len() >= 3);
        let reqs = server.requests();
        assert_eq!(
            reqs[0].target,
            "/api/v1/namespaces/fixtures/services?limit=500"
        );
        assert!(
            reqs[1].target.contains("resourceVersion=1093&"),
            "{}",
            reqs[1].target
        );
        assert!(
            reqs[2].target.contains("resourceVersion=1118&"),
            "{}",
            reqs[2].target
        );
        // Four changes and a bookmark read; the second watch resumed without a relist.
        let counts = (
            stats.relists.load(Ordering::Relaxed),
            stats.restarts.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
            stats.events.load(Ordering::Relaxed),
        );
        assert_eq!(counts, (0, 1, 0, 5));
        shutdown.store(true, Ordering::SeqCst);
        assert!(join_within(handle, PATIENCE), "watcher did not stop");
        assert!(rx.try_recv().is_err(), "no relist, nothing more");
    }

    #[test]
    fn expired_watch_relists_with_a_fresh_snapshot() {
        let lists = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = {
            let lists = lists.clone();
            TestServer::http(move |req| {
                if req.target.contains("watch=1") {
                    if lists.load(Ordering::SeqCst) == 1 {
                        Reply::Raw(fixture("services-watch-expired.raw"))
                    } else {
                        Reply::Hold(HELD_WATCH.to_vec(), PATIENCE)
                    }
                } else if lists.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::Raw(fixture("services-list-fixtures.http"))
                } else {
                    // "dns" was deleted while we were not watching: the snapshot no longer has it.
                    Reply::Raw(response(
                        "200 OK",
                        &[("Content-Type", "application/json")],
                        r#"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1300"},"items":[{"metadata":{"name":"web","resourceVersion":"1201"}}]}"#,
                    ))
                }
            })
        };
        let (tx, rx) = channel();
        let shutdown = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WatchStats::default());
        let handle = spawn_with_stats(
            "services",
            client(&server.url),
            "/api/v1/namespaces/fixtures/services".into(),
            tx,
            |m| m,
            shutdown.clone(),
            stats.clone(),
        );
        assert_eq!(take(&rx, 2), ["restarted[dns]", "restarted[web]"]);
        wait_for("the watch from the new list", || {
            server
                .requests()
                .iter()
                .any(|r| r.target.contains("resourceVersion=1300&"))
        });
        // The in-stream 410 is an error, not an event; the watch after the relist is no restart.
        let counts = (
            stats.relists.load(Ordering::Relaxed),
            stats.restarts.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
            stats.events.load(Ordering::Relaxed),
        );
        assert_eq!(counts, (1, 0, 1, 0));
        shutdown.store(true, Ordering::SeqCst);
        assert!(join_within(handle, PATIENCE), "watcher did not stop");
    }

    #[test]
    fn a_stalled_stream_is_resumed_at_the_idle_timeout_and_counted() {
        let watches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let server = {
            let watches = watches.clone();
            TestServer::http(move |req| {
                if !req.target.contains("watch=1") {
                    return Reply::Raw(fixture("services-list-fixtures.http"));
                }
                watches.fetch_add(1, Ordering::SeqCst);
                // Headers, then silence: only the client's idle timeout ends it.
                Reply::Hold(HELD_WATCH.to_vec(), PATIENCE)
            })
        };
        let options = ClientOptions {
            watch_idle_timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        let (tx, rx) = channel();
        let shutdown = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(WatchStats::default());
        let handle = spawn_with_stats(
            "services",
            Client::new(&config(&server.url), options).unwrap(),
            "/api/v1/namespaces/fixtures/services".into(),
            tx,
            |m| m,
            shutdown.clone(),
            stats.clone(),
        );
        assert_eq!(take(&rx, 1), ["restarted[dns]"]);
        wait_for("two resumed watches", || {
            watches.load(Ordering::SeqCst) >= 3
        });
        shutdown.store(true, Ordering::SeqCst);
        assert!(join_within(handle, PATIENCE), "watcher did not stop");
        let rvs: Vec<String> = server
            .requests()
            .iter()
            .filter(|r| r.target.contains("watch=1"))
            .map(|r| r.target.clone())
            .collect();
        assert!(
            rvs.iter().all(|t| t.contains("resourceVersion=1093&")),
            "resumed from the list's resourceVersion: {rvs:?}"
        );
        assert!(rx.try_recv().is_err(), "no relist snapshot");
        assert_eq!(stats.relists.load(Ordering::Relaxed), 0);
        assert_eq!(stats.events.load(Ordering::Relaxed), 0);
        // Each stall that ended (at least two) is one error and one restart.
        assert!(stats.restarts.load(Ordering::Relaxed) >= 2, "{stats:?}");
        assert!(stats.errors.load(Ordering::Relaxed) >= 2, "{stats:?}");
        assert!(
            stats.restarts.load(Ordering::Relaxed) <= stats.errors.load(Ordering::Relaxed) + 1,
            "{stats:?}"
        );
    }

    #[test]
    fn stops_when_the_receiver_is_gone() {
        let server = TestServer::http(|_| Reply::Raw(fixture("services-list-fixtures.http")));
        let (tx, rx) = channel::<WatchMsg<serde_json::Value>>();
        drop(rx);
        let handle = spawn_with_stats(
            "services",
            client(&server.url),
            "/api/v1/namespaces/fixtures/services".into(),
            tx,
            |m| m,
            Arc::new(AtomicBool::new(false)),
            Arc::default(),
        );
        assert!(join_within(handle, PATIENCE), "watcher did not stop");
    }

    #[test]
    fn stops_promptly_while_backing_off() {
        let server = TestServer::http(|_| Reply::Raw(fixture("error-forbidden.http")));
        let (tx, _rx) = channel::<WatchMsg<serde_json::Value>>();
        let shutdown = Arc::new(AtomicBool::new(false));
        let handle = spawn_with_stats(
            "services",
            client(&server.url),
            "/api/v1/namespaces/fixtures/services".into(),
            tx,
            |m| m,
            shutdown.clone(),
            Arc::default(),
        );
        wait_for("the first list", || !server.requests().is_empty());
        shutdown.store(true, Ordering::SeqCst);
        // The forbidden back-off is 30 s; stopping must not wait for it.
        assert!(
            join_within(handle, Duration::from_secs(20)),
            "watcher did not stop"
        );
    }
}
