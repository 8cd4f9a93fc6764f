//! The watcher thread of one resource: executes the [`Machine`]'s actions with the client and sends
//! the resulting messages down a channel.
//!
//! Owns: the I/O of list/watch/sleep and stopping promptly (shutdown flag, receiver gone).
//! Must not: decide when to relist or back off (the machine does) or interpret objects.

// kube::Error (shared, error.rs) carries an ApiStatus inline; boxing it is error.rs's call.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::machine::{Action, Backoff, Input, Machine, XorShift};
use super::{WatchMsg, WatchStream};
use crate::kube::client::{Client, ListParams, cancel_reads_on};

/// Longest uninterrupted sleep, so a backing-off watcher notices shutdown quickly.
const SLEEP_SLICE: Duration = Duration::from_millis(200);

/// Start the watcher thread for `path` (a collection path, optionally with `?labelSelector=…`).
/// Every [`WatchMsg`] goes through `map` into `tx`. The thread ends when `shutdown` is set (within
/// about a second, even in the middle of a read) or when the receiver is gone (noticed at the next
/// message).
pub fn spawn<T, E>(
    name: impl Into<String>,
    client: Client,
    path_for_list_and_watch: String,
    tx: Sender<E>,
    map: impl Fn(WatchMsg<T>) -> E + Send + 'static,
    shutdown: Arc<AtomicBool>,
) -> JoinHandle<()>
where
    T: DeserializeOwned + Send + 'static,
    E: Send + 'static,
{
    let name = name.into();
    let thread_name = format!("watch-{name}");
    let run = move || run(name, client, path_for_list_and_watch, tx, map, shutdown);
    match std::thread::Builder::new().name(thread_name).spawn(run) {
        Ok(handle) => handle,
        // Only when the OS refuses a thread; the process cannot work without its watchers.
        Err(e) => panic!("cannot start a watcher thread: {e}"),
    }
}

fn run<T, E>(
    name: String,
    client: Client,
    path: String,
    tx: Sender<E>,
    map: impl Fn(WatchMsg<T>) -> E,
    shutdown: Arc<AtomicBool>,
) where
    T: DeserializeOwned,
{
    // Reads made by this thread wake up regularly and give up once shutdown is set.
    let _cancel = cancel_reads_on(shutdown.clone());
    let mut machine = Machine::new(name.clone(), XorShift::from_time(), Backoff::default());
    let params = ListParams::default();
    let mut stream: Option<WatchStream> = None;
    let mut step = machine.start::<T>();
    log::debug!("watch {name}: started on {path}");
    loop {
        if shutdown.load(Ordering::Relaxed) {
            break;
        }
        for (level, line) in std::mem::take(&mut step.logs) {
            log::log!(level, "watch {line}");
        }
        for msg in std::mem::take(&mut step.msgs) {
            if tx.send(map(msg)).is_err() {
                log::debug!("watch {name}: receiver gone, stopping");
                return;
            }
        }
        let input = match step.action {
            Action::List => {
                stream = None;
                match client.list::<T>(&path, &params) {
                    Ok(list) => Input::Listed(list),
                    Err(e) => Input::Failed(e),
                }
            }
            Action::Watch {
                ref resource_version,
                timeout_seconds,
            } => {
                stream = None;
                match client.watch(&path, resource_version, timeout_seconds) {
                    Ok(s) => {
                        stream = Some(s);
                        Input::WatchOpened
                    }
                    Err(e) => Input::Failed(e),
                }
            }
            Action::Read => match stream.as_mut() {
                Some(s) => match s.next_event::<T>() {
                    Ok(Some(event)) => Input::Event(event),
                    Ok(None) => {
                        stream = None;
                        Input::StreamEnded
                    }
                    Err(e) => {
                        stream = None;
                        Input::Failed(e)
                    }
                },
                // Cannot happen with a correct machine; it treats this as a stream end.
                None => Input::StreamEnded,
            },
            Action::Sleep(d) => {
                stream = None;
                sleep_unless(&shutdown, d);
                Input::Slept
            }
        };
        if shutdown.load(Ordering::Relaxed) {
            // The failure that ends a cancelled read is ours, not the server's: do not report it.
            break;
        }
        step = machine.step(input, Instant::now());
    }
    log::debug!("watch {name}: stopped");
}

fn sleep_unless(shutdown: &AtomicBool, d: Duration) {
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
