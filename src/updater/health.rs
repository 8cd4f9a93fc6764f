//! Active health checks of the upstreams: one prober thread for every backend that asked for a
//! `healthCheck`, a small fixed pool of probe workers, and the verdicts the applier renders as
//! `down`.
//!
//! Owns: the per-upstream tallies (fixed size: counters, a flag, a time), the schedule, the probes
//! (a TCP connect, or a hand-written HTTP/1.0 GET with a bounded status line), and the fail-open
//! rule. The threshold logic ([`Tally`]) and the choice of what to mark down ([`effective_down`])
//! are pure. Probes go only to the hosts a request named, each bounded by the check's timeout, so a
//! stalled or flooding health endpoint costs one worker for at most that long and never blocks the
//! prober thread.
//! Must not: write files or reload nginx (a verdict change asks the applier to re-render that
//! backend through the same group commit), or probe a backend after it was deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use super::api::ListResponse;
use super::validate::{Backend, Check, CheckKind};
use crate::http::Sock;
use crate::metrics::{Counter, Registry, Samples};

/// Probes running at once (each is one short connection, bounded by the check's timeout).
pub const WORKERS: usize = 8;
/// Bytes of a health answer read at most: enough for the status line.
pub const STATUS_LINE_CAP: usize = 256;

/// Consecutive results of one upstream, and whether it counts as healthy. Starts healthy (like
/// nginx itself, which uses an upstream until it fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub healthy: bool,
    pub fails: u32,
    pub oks: u32,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            healthy: true,
            fails: 0,
            oks: 0,
        }
    }
}

impl Tally {
    /// Records one probe result; returns whether `healthy` flipped. `unhealthy` failures in a row
    /// take a healthy upstream out, `healthy` successes in a row bring it back.
    pub fn record(&mut self, ok: bool, unhealthy: u32, healthy: u32) -> bool {
        let (run, broken, needed) = match ok {
            true => (&mut self.oks, &mut self.fails, healthy),
            false => (&mut self.fails, &mut self.oks, unhealthy),
        };
        (*run, *broken) = (run.saturating_add(1), 0);
        let flips = self.healthy != ok && *run >= needed;
        self.healthy ^= flips;
        flips
    }
}

/// Which upstreams to render `down`, and whether the fail-open rule applied: when every upstream
/// is unhealthy none is marked down (sending traffic somewhere beats refusing it all).
pub fn effective_down(healthy: &[bool]) -> (BTreeSet<usize>, bool) {
    let down: BTreeSet<usize> = (0..healthy.len()).filter(|&i| !healthy[i]).collect();
    if !healthy.is_empty() && down.len() == healthy.len() {
        (BTreeSet::new(), true)
    } else {
        (down, false)
    }
}

/// When to probe next: after a result that starts a change of state (a failure while healthy, a
/// success while unhealthy) a quarter interval (at least 250 ms), so a dead upstream is out after
/// about interval + (threshold - 1) × interval / 4 instead of threshold × interval; else the interval.
pub fn next_probe_in(t: &Tally, interval_seconds: u64) -> Duration {
    let interval = Duration::from_secs(interval_seconds);
    let changing = (t.healthy && t.fails > 0) || (!t.healthy && t.oks > 0);
    if changing {
        (interval / 4).max(Duration::from_millis(250)).min(interval)
    } else {
        interval
    }
}

/// One upstream's probe state.
#[derive(Debug, Clone)]
struct UpState {
    tally: Tally,
    last_check: Option<SystemTime>,
    due: Instant,
    in_flight: bool,
}

/// A backend with a health check, as last committed to nginx (its `down`: the set its file was
/// rendered with, or is being rendered with after a verdict changed).
#[derive(Debug)]
struct Tracked {
    backend: Backend,
    check: Check,
    generation: u64,
    ups: Vec<UpState>,
    fail_open: bool,
}

impl Tracked {
    fn healthy(&self) -> Vec<bool> {
        self.ups.iter().map(|u| u.tally.healthy).collect()
    }

    /// Whether `b` has this backend's upstreams and check: its verdicts apply to `b`.
    fn serves(&self, b: &Backend) -> bool {
        self.backend.upstreams == b.upstreams && b.health_check.as_ref() == Some(&self.check)
    }

    /// The probe state of upstream `u`, if this backend has it.
    fn up(&self, u: &(String, u16)) -> Option<&UpState> {
        Some(&self.ups[self.backend.upstreams.iter().position(|x| x == u)?])
    }
}

/// The tracked backends; a probe in flight is counted where it is marked (`UpState::in_flight`),
/// so a backend that stops being tracked gives its worker slots back with it.
#[derive(Default)]
struct State {
    backends: BTreeMap<String, Tracked>,
    next_generation: u64,
}

/// One probe for a worker; it comes back with the result.
struct Probe {
    name: String,
    generation: u64,
    index: usize,
    host: String,
    port: u16,
    check: Check,
}

/// Shared by the applier (what to render down, what `GET` reports) and the prober.
pub struct Health {
    state: Mutex<State>,
    stop: AtomicBool,
    checks: Counter,
    changes: Counter,
}

impl Health {
    /// Registers the metrics; the prober starts with [`Health::start`].
    pub fn new(registry: &Registry) -> Arc<Health> {
        let h = Arc::new(Health {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            checks: registry.counter(
                "paperlb_updater_health_checks_total",
                "Health probes finished, by result (ok, failed).",
                &["result"],
            ),
            changes: registry.counter(
                "paperlb_updater_health_changes_total",
                "Upstreams that turned healthy or unhealthy, by new state.",
                &["state"],
            ),
        });
        // Read at render time, from the state as it is then; nothing once the updater is gone.
        let sampled = |f: fn(&State) -> Samples| {
            let weak = Arc::downgrade(&h);
            move || weak.upgrade().map_or_else(Vec::new, |h| f(&h.lock()))
        };
        registry.gauge_fn(
            "paperlb_updater_upstream_healthy",
            "1 while an upstream of a backend with a health check passes it, else 0.",
            &["backend", "upstream"],
            sampled(|s| {
                let mut out = Vec::new();
                for (name, t) in &s.backends {
                    for (u, (host, port)) in t.ups.iter().zip(&t.backend.upstreams) {
                        let healthy = if u.tally.healthy { 1.0 } else { 0.0 };
                        out.push((vec![name.clone(), format!("{host}:{port}")], healthy));
                    }
                }
                out
            }),
        );
        registry.gauge_fn(
            "paperlb_updater_health_fail_open",
            "1 for a backend whose upstreams all fail their check (none is marked down), else 0.",
            &["backend"],
            sampled(|s| {
                (s.backends.iter())
                    .map(|(n, t)| (vec![n.clone()], if t.fail_open { 1.0 } else { 0.0 }))
                    .collect()
            }),
        );
        h
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The upstreams to render `down` for `b`: the verdicts of the upstreams it shares with the
    /// tracked backend under the same check (as `committed` keeps their tallies); an upstream new
    /// to it, or under a new check, starts healthy.
    pub fn down_for(&self, b: &Backend) -> BTreeSet<usize> {
        let s = self.lock();
        let t = s
            .backends
            .get(&b.name)
            .filter(|t| b.health_check.as_ref() == Some(&t.check));
        let healthy = |u| t.and_then(|t| t.up(u)).is_none_or(|st| st.tally.healthy);
        // The same set is read by index, as `record` reads it (an upstream listed twice has two).
        let now = match t {
            Some(t) if t.serves(b) => t.healthy(),
            _ => b.upstreams.iter().map(healthy).collect(),
        };
        effective_down(&now).0
    }

    /// After `b` was committed (or read back at start, with its file's down marks): track it,
    /// keeping the tallies of upstreams it still has when the check is unchanged; untrack it (its
    /// results in flight are dropped) if it has no check.
    pub fn committed(&self, b: &Backend) {
        let mut s = self.lock();
        if let Some(t) = s.backends.get_mut(&b.name)
            && t.serves(b)
        {
            t.backend = b.clone();
            return;
        }
        let old = s.backends.remove(&b.name);
        let Some(check) = b.health_check.clone() else {
            return;
        };
        let now = Instant::now();
        let soon = now + Duration::from_secs(check.interval_seconds);
        // Upstreams the backend still has keep their tallies if the check is the same.
        let kept = old.filter(|o| o.check == check);
        let was = |u| kept.as_ref()?.up(u);
        // A new upstream starts healthy; one read back at start with a down mark stays down until
        // it passes a single probe (the first result of another upstream must not let it back).
        let marked = Tally {
            healthy: false,
            fails: 0,
            oks: check.healthy_threshold.saturating_sub(1),
        };
        let ups = b
            .upstreams
            .iter()
            .enumerate()
            // A result for the old generation is dropped; probe again soon.
            .map(|(i, u)| match was(u) {
                Some(st) => (st.tally, st.last_check, st.due.min(soon)),
                None if b.down.contains(&i) => (marked, None, now),
                None => (Tally::default(), None, now),
            })
            .map(|(tally, last_check, due)| UpState {
                tally,
                last_check,
                due,
                in_flight: false,
            })
            .collect();
        s.next_generation += 1;
        let t = Tracked {
            backend: b.clone(),
            check,
            generation: s.next_generation,
            ups,
            fail_open: false,
        };
        s.backends.insert(b.name.clone(), t);
    }

    /// A re-render of `b` failed: its file still has the `on_disk` marks.
    pub fn not_rendered(&self, b: &Backend, on_disk: BTreeSet<usize>) {
        if let Some(t) = self
            .lock()
            .backends
            .get_mut(&b.name)
            .filter(|t| t.serves(b))
        {
            t.backend.down = on_disk;
        }
    }

    /// The backend was deleted: its checks stop (results still in flight are dropped).
    pub fn removed(&self, name: &str) {
        self.lock().backends.remove(name);
    }

    /// Adds `healthy` and `lastCheck` to the upstreams of tracked backends in a `GET` answer.
    pub fn annotate(&self, list: &mut ListResponse) {
        let s = self.lock();
        for l in &mut list.backends {
            let r = &mut l.request;
            let tracked = s.backends.get(&r.backend_name);
            let Some(t) = tracked.filter(|t| t.backend.request == *r) else {
                continue;
            };
            for (u, st) in r.upstream_servers.iter_mut().zip(&t.ups) {
                u.health.healthy = Some(st.tally.healthy);
                u.health.last_check = st.last_check.map(crate::time::rfc3339);
            }
        }
    }

    /// Starts the prober thread and its workers. `refresh(backend)` asks the applier to re-render a
    /// backend (`down_for` gives its down set); it must not block for long (the applier queues it).
    pub fn start(
        self: &Arc<Health>,
        refresh: impl Fn(Backend) + Send + 'static,
    ) -> std::io::Result<()> {
        let (job_tx, job_rx) = mpsc::sync_channel::<Probe>(WORKERS);
        let (res_tx, res_rx) = mpsc::channel::<(Probe, bool)>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for i in 0..WORKERS {
            let (rx, tx) = (job_rx.clone(), res_tx.clone());
            std::thread::Builder::new()
                .name(format!("probe-{i}"))
                .spawn(move || worker(&rx, &tx))?;
        }
        drop(res_tx);
        let h = self.clone();
        std::thread::Builder::new()
            .name("prober".into())
            .spawn(move || h.run(&job_tx, &res_rx, &refresh))?;
        Ok(())
    }

    /// Stops the prober (its workers end when their queue closes).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn run(
        &self,
        jobs: &mpsc::SyncSender<Probe>,
        results: &mpsc::Receiver<(Probe, bool)>,
        refresh: &dyn Fn(Backend),
    ) {
        while !self.stop.load(Ordering::Relaxed) {
            let (due, wait) = self.take_due(Instant::now());
            for p in due {
                // At most WORKERS probes are in flight and the queue holds WORKERS: never blocks.
                if jobs.send(p).is_err() {
                    return;
                }
            }
            match results.recv_timeout(wait) {
                Ok((p, ok)) => self.record(&p, ok, refresh),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Marks due probes in flight (up to the free worker slots); returns them and how long to wait
    /// for a result before looking again.
    fn take_due(&self, now: Instant) -> (Vec<Probe>, Duration) {
        let mut s = self.lock();
        let ups = s.backends.values().flat_map(|t| &t.ups);
        let mut free = WORKERS.saturating_sub(ups.filter(|u| u.in_flight).count());
        let mut out = Vec::new();
        let mut next = now + Duration::from_millis(200);
        for (name, t) in s.backends.iter_mut() {
            for (i, u) in t.ups.iter_mut().enumerate() {
                if !u.in_flight && u.due > now {
                    next = next.min(u.due);
                }
                if u.in_flight || u.due > now || free == 0 {
                    continue;
                }
                free -= 1;
                u.in_flight = true;
                let (host, port) = t.backend.upstreams[i].clone();
                out.push(Probe {
                    name: name.clone(),
                    generation: t.generation,
                    index: i,
                    host,
                    port: t.check.port.unwrap_or(port),
                    check: t.check.clone(),
                });
            }
        }
        let wait = next.saturating_duration_since(now);
        (out, wait.max(Duration::from_millis(5)))
    }

    fn record(&self, r: &Probe, ok: bool, refresh: &dyn Fn(Backend)) {
        self.checks.inc(&[if ok { "ok" } else { "failed" }]);
        let mut s = self.lock();
        let tracked = s.backends.get_mut(&r.name);
        let Some(t) = tracked.filter(|t| t.generation == r.generation) else {
            return;
        };
        let Some(u) = t.ups.get_mut(r.index) else {
            return;
        };
        u.in_flight = false;
        u.last_check = Some(SystemTime::now());
        let flipped = u
            .tally
            .record(ok, t.check.unhealthy_threshold, t.check.healthy_threshold);
        u.due = Instant::now() + next_probe_in(&u.tally, t.check.interval_seconds);
        let state = if u.tally.healthy {
            "healthy"
        } else {
            "unhealthy"
        };
        let (down, fail_open) = effective_down(&t.healthy());
        let (host, port) = &t.backend.upstreams[r.index];
        if flipped {
            self.changes.inc(&[state]);
            log::info!("backend {}: upstream {host}:{port} is now {state}", r.name);
        }
        if fail_open && !t.fail_open {
            log::warn!(
                "backend {}: every upstream fails its health check; none is marked down (fail open)",
                r.name
            );
        }
        t.fail_open = fail_open;
        let changed = (t.backend.down != down).then(|| t.backend.clone());
        t.backend.down = down;
        drop(s);
        if let Some(b) = changed {
            refresh(b);
        }
    }
}

fn worker(jobs: &Mutex<mpsc::Receiver<Probe>>, results: &mpsc::Sender<(Probe, bool)>) {
    loop {
        // The queue is locked while waiting for a job, not while probing.
        let Ok(Ok(p)) = jobs.lock().map(|rx| rx.recv()) else {
            return;
        };
        let ok = probe(&p.host, p.port, &p.check);
        if results.send((p, ok)).is_err() {
            return;
        }
    }
}

/// One probe, bounded by the check's timeout (DNS names are resolved by the system resolver): a
/// TCP connect, or for `http` a `GET path HTTP/1.0` and at most [`STATUS_LINE_CAP`] bytes of the
/// answer, read until the status line is complete; healthy for status 200.
pub fn probe(host: &str, port: u16, check: &Check) -> bool {
    let deadline = Instant::now() + Duration::from_secs(check.timeout_seconds);
    // Every step gets the time left, and none once it is spent.
    let left = || {
        let l = deadline.saturating_duration_since(Instant::now());
        (!l.is_zero()).then_some(l).ok_or(ErrorKind::TimedOut)
    };
    let probe = || -> std::io::Result<bool> {
        // `[v6]:port` in brackets, as validate::host writes it: an IP literal is parsed, not resolved.
        let mut addrs = format!("{host}:{port}").to_socket_addrs()?;
        let addr = addrs.next().ok_or(ErrorKind::NotFound)?;
        let mut c = TcpStream::connect_timeout(&addr, left()?)?;
        if check.kind == CheckKind::Tcp {
            return Ok(true);
        }
        c.set_write_timeout(Some(left()?))?;
        let head = format!(
            "GET {} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: paperlb-health\r\n\
             Connection: close\r\n\r\n",
            check.path
        );
        c.write_all(head.as_bytes())?;
        let answer = Sock {
            tcp: c,
            deadline,
            read_timeout: Duration::MAX,
        };
        let mut line = Vec::new();
        BufReader::new(answer.take(STATUS_LINE_CAP as u64)).read_until(b'\n', &mut line)?;
        Ok(status_is_200(&line))
    };
    probe().unwrap_or(false)
}

/// `HTTP/1.x 200` at the start of a complete status line.
pub fn status_is_200(head: &[u8]) -> bool {
    let Some(end) = head.iter().position(|&b| b == b'\n') else {
        return false;
    };
    let line = String::from_utf8_lossy(&head[..end]);
    let mut parts = line.trim_end().splitn(3, ' ');
    matches!(
        (parts.next(), parts.next()),
        (Some("HTTP/1.0" | "HTTP/1.1"), Some("200"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend whose probes were in flight, applied again without a health check, must give
    /// back its worker slots: a leaked count would starve every other backend's probes.
    #[test]
    fn untracking_a_backend_frees_its_probe_slots() {
        let body = r#"{"backendName": "a", "lbPort": 8100, "lbProtocol": "TCP",
            "upstreamServers": [{"host": "127.0.0.2", "port": 1}, {"host": "127.0.0.3", "port": 1}],
            "healthCheck": {"type": "tcp"}}"#;
        let req: crate::updater::api::LbRequest = serde_json::from_str(body).unwrap();
        let policy = crate::updater::validate::Policy::default();
        let checked = crate::updater::validate::backend(&req, &policy).unwrap();
        let mut unchecked = checked.clone();
        unchecked.health_check = None;
        // Another backend with more upstreams than there are workers: what it gets probed at
        // once shows how many slots are free.
        let mut other = checked.clone();
        other.name = "b".into();
        other.upstreams = (2..12).map(|i| (format!("127.0.0.{i}"), 1)).collect();
        let h = Health::new(&Registry::default());
        for removal in [0, 1] {
            h.committed(&checked);
            let (due, _) = h.take_due(Instant::now());
            assert_eq!(due.len(), 2);
            // Every slot but the two taken is free.
            h.committed(&other);
            assert_eq!(h.take_due(Instant::now()).0.len(), WORKERS - 2);
            h.removed("b");
            match removal {
                0 => h.committed(&unchecked),
                _ => h.removed("a"),
            }
            // A late result for the untracked backend changes nothing.
            h.record(&due[0], false, &|_| panic!("no re-render"));
            // All slots are free again.
            h.committed(&other);
            assert_eq!(
                h.take_due(Instant::now()).0.len(),
                WORKERS,
                "removal {removal}"
            );
            h.removed("b");
        }
    }

    /// A node joins a backend whose other node fails its check: the render of the new upstream
    /// set keeps that node `down` (it must not take traffic until its next probe says so again).
    #[test]
    fn an_upstream_set_that_changes_keeps_the_verdicts_of_the_upstreams_it_keeps() {
        let body = r#"{"backendName": "a", "lbPort": 8100, "lbProtocol": "TCP",
            "upstreamServers": [{"host": "127.0.0.2", "port": 1}, {"host": "127.0.0.3", "port": 1}],
            "healthCheck": {"type": "tcp", "unhealthyThreshold": 1}}"#;
        let req: crate::updater::api::LbRequest = serde_json::from_str(body).unwrap();
        let policy = crate::updater::validate::Policy::default();
        let two = crate::updater::validate::backend(&req, &policy).unwrap();
        let h = Health::new(&Registry::default());
        h.committed(&two);
        let due = h.take_due(Instant::now()).0;
        let probe = due.iter().find(|p| p.index == 1).unwrap();
        h.record(probe, false, &|_| {});
        assert_eq!(h.down_for(&two), BTreeSet::from([1]));
        // 127.0.0.4 joins ahead of them: 127.0.0.3 is now the third upstream, still down.
        let mut three = two.clone();
        three.upstreams.insert(0, ("127.0.0.4".to_string(), 1));
        assert_eq!(h.down_for(&three), BTreeSet::from([2]));
        // Under another check every upstream starts healthy.
        let mut rechecked = three.clone();
        rechecked.health_check.as_mut().unwrap().interval_seconds += 1;
        assert_eq!(h.down_for(&rechecked), BTreeSet::new());
    }

    /// Read back at start with a down mark: the first result of another upstream keeps the mark,
    /// a failure of the marked one keeps it too, and a first pass of the marked one takes it away.
    #[test]
    fn a_down_mark_read_back_at_start_stays_until_that_upstream_passes() {
        let body = r#"{"backendName": "a", "lbPort": 8100, "lbProtocol": "TCP",
            "upstreamServers": [{"host": "127.0.0.2", "port": 1}, {"host": "127.0.0.3", "port": 1}],
            "healthCheck": {"type": "tcp", "unhealthyThreshold": 2, "healthyThreshold": 3}}"#;
        let req: crate::updater::api::LbRequest = serde_json::from_str(body).unwrap();
        let policy = crate::updater::validate::Policy::default();
        let mut on_disk = crate::updater::validate::backend(&req, &policy).unwrap();
        on_disk.down = BTreeSet::from([1]);
        let restarted = || {
            let h = Health::new(&Registry::default());
            h.committed(&on_disk);
            let due = h.take_due(Instant::now()).0;
            assert_eq!(due.iter().map(|p| p.index).collect::<Vec<_>>(), [0, 1]);
            (h, due)
        };
        let (h, due) = restarted();
        h.record(&due[0], true, &|_| panic!("no re-render: the mark stands"));
        h.record(&due[1], false, &|_| panic!("no re-render: still failing"));
        assert_eq!(h.down_for(&on_disk), BTreeSet::from([1]));
        let (h, due) = restarted();
        let rendered = std::cell::Cell::new(false);
        h.record(&due[1], true, &|_| rendered.set(true));
        assert!(rendered.get(), "one pass re-renders");
        assert_eq!(h.down_for(&on_disk), BTreeSet::new(), "without the mark");
    }

    #[test]
    fn tally_needs_consecutive_results_to_flip() {
        let mut t = Tally::default();
        // unhealthy threshold 2, healthy threshold 3
        let steps: &[(bool, bool, bool)] = &[
            // (probe ok, flipped, healthy after)
            (false, false, true),
            (true, false, true),
            (false, false, true),
            (false, true, false),
            (false, false, false),
            (true, false, false),
            (true, false, false),
            (false, false, false),
            (true, false, false),
            (true, false, false),
            (true, true, true),
            (true, false, true),
        ];
        for (i, &(ok, flipped, healthy)) in steps.iter().enumerate() {
            assert_eq!(t.record(ok, 2, 3), flipped, "step {i}");
            assert_eq!(t.healthy, healthy, "step {i}");
        }
        let mut t = Tally::default();
        assert!(t.record(false, 1, 1));
        assert!(t.record(true, 1, 1));
    }

    #[test]
    fn probes_come_faster_while_a_state_change_is_pending() {
        let mut t = Tally::default();
        assert_eq!(next_probe_in(&t, 2), Duration::from_secs(2));
        t.record(false, 2, 2);
        assert_eq!(next_probe_in(&t, 2), Duration::from_millis(500));
        t.record(false, 2, 2);
        assert!(!t.healthy);
        assert_eq!(next_probe_in(&t, 2), Duration::from_secs(2));
        t.record(true, 2, 2);
        assert_eq!(next_probe_in(&t, 2), Duration::from_millis(500));
        t.record(true, 2, 2);
        assert_eq!(next_probe_in(&t, 2), Duration::from_secs(2));
        t.record(false, 2, 2);
        assert_eq!(next_probe_in(&t, 1), Duration::from_millis(250));
        assert_eq!(next_probe_in(&t, 3600), Duration::from_secs(900));
    }

    #[test]
    fn all_unhealthy_fails_open() {
        assert_eq!(effective_down(&[]), (BTreeSet::new(), false));
        assert_eq!(effective_down(&[true, true]), (BTreeSet::new(), false));
        assert_eq!(effective_down(&[true, false]), (BTreeSet::from([1]), false));
        assert_eq!(
            effective_down(&[false, true, false]),
            (BTreeSet::from([0, 2]), false)
        );
        assert_eq!(effective_down(&[false, false]), (BTreeSet::new(), true));
        assert_eq!(effective_down(&[false]), (BTreeSet::new(), true));
    }

    /// A TCP probe reaches an IPv4 literal, an IPv6 one and a DNS name (resolved), and fails on a
    /// port nothing listens on.
    #[test]
    fn a_tcp_probe_connects_to_each_kind_of_host() {
        let check = crate::updater::validate::health_check(&crate::updater::api::HealthCheck {
            kind: "tcp".into(),
            ..Default::default()
        })
        .unwrap();
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
        let (p4, p6) = (
            v4.local_addr().unwrap().port(),
            v6.local_addr().unwrap().port(),
        );
        assert!(probe("127.0.0.1", p4, &check));
        assert!(probe("[::1]", p6, &check));
        // Bound where `localhost` resolves first, as the probe connects to its first address.
        let named = std::net::TcpListener::bind("localhost:0").unwrap();
        let pn = named.local_addr().unwrap().port();
        assert!(probe("localhost", pn, &check));
        drop(v4);
        assert!(!probe("127.0.0.1", p4, &check));
    }

    #[test]
    fn only_a_complete_200_status_line_is_healthy() {
        let cases: &[(&[u8], bool)] = &[
            (b"HTTP/1.1 200 OK\r\n", true),
            (b"HTTP/1.0 200\r\n", true),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true),
            (b"HTTP/1.1 503 Service Unavailable\r\n", false),
            (b"HTTP/1.1 2000 OK\r\n", false),
            (b"HTTP/1.1 200 OK", false),
            (b"HTTP/2 200\r\n", false),
            (b"SSH-2.0-OpenSSH\r\n", false),
            (b"", false),
        ];
        for (head, want) in cases {
            assert_eq!(
                status_is_200(head),
                *want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
