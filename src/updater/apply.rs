//! The streams directory and group commit: the only code that writes `<dir>/*.conf` (and
//! `<dir>/main/worker-shutdown-timeout.conf`) or reloads nginx.
//!
//! Owns: one applier thread. Requests are validated by the caller, queued, and taken in batches:
//! everything that queued up while the previous `nginx -t` + reload ran is written together and
//! covered by one test + reload; each caller is answered when the reload that includes its change
//! has finished. If the batch fails, the previous file set is restored byte for byte and the batch's
//! requests are retried one at a time, so only a bad request is refused. Also the health prober's
//! lifetime (started and stopped with the `Applier`) and the `GET` listing it annotates.
//! Must not: decide anything about HTTP, or write a file outside the directory (names are validated
//! and files are `<name>.conf`, temp files `.<name>.conf.tmp`, which the `*.conf` glob skips).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Instant, SystemTime};

use super::Error;
use super::api::{LbRequest, ListResponse, ListedBackend, Unreadable};
use super::health::Health;
use super::nginx::{self, Nginx, ShutdownTimeout};
use super::validate::{self, Backend, Policy};
use crate::metrics::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, Registry};

/// Most requests covered by one test + reload.
pub const MAX_BATCH: usize = 1000;

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Written, tested and reloaded.
    Applied,
    /// Same content as on disk: nothing written, no reload.
    Unchanged,
    /// File removed and nginx reloaded.
    Deleted,
    /// DELETE of a backend that is not configured: nothing to do (as nginx-lb-updater answers it,
    /// so a Go controller's finalizer is not stuck on a backend that was never written).
    Absent,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Deleted => "deleted",
            Outcome::Absent => "absent",
        }
    }
}

/// What a caller asks of the applier.
pub enum Op {
    /// Write, test and reload a backend (`Unchanged` when its file already says that). Without a
    /// reply, from the prober: re-render it with the current verdicts, if it is still on disk.
    Apply(Box<Backend>),
    /// Remove a backend; `Absent` if it is not configured.
    Delete(String),
}

impl Op {
    pub fn name(&self) -> &str {
        match self {
            Op::Apply(b) => &b.name,
            Op::Delete(n) => n,
        }
    }
}

struct Job {
    op: Op,
    /// `None` from the prober: no caller waits, and `paperlb_updater_applies_total` does not count it.
    reply: Option<mpsc::SyncSender<Result<Outcome, Error>>>,
}

/// Handle to the applier thread; cheap to share between request threads.
pub struct Applier {
    tx: mpsc::Sender<Job>,
    worker: Arc<Worker>,
}

impl Applier {
    /// Removes temp files a crash may have left, runs `nginx -t` once (for `/healthz`), registers
    /// the prober's and the applier's metrics, has the prober check the backends already
    /// configured, and starts the prober (stopped when the `Applier` is dropped) and the applier
    /// thread.
    pub fn start(
        dir: PathBuf,
        nginx: Nginx,
        registry: &Registry,
        policy: &Policy,
    ) -> Result<Applier, Error> {
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.ends_with(".conf.tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let health = Health::new(registry);
        // Backends configured before a restart keep their checks, and their files' down marks
        // until the first verdicts differ.
        for e in read_dir(&dir)
            .into_iter()
            .flat_map(|(entries, _)| entries.into_values())
        {
            if let Some(Ok(mut b)) = e.request.map(|r| validate::backend(&r, policy)) {
                b.down = nginx::down_marks(&e.content);
                health.committed(&b);
            }
        }
        let (tx, rx) = mpsc::channel();
        // A verdict change queues a re-render of that backend (no caller waits for it).
        let refresh = tx.clone();
        let refresh = move |b: Backend| {
            let op = Op::Apply(Box::new(b));
            let _ = refresh.send(Job { op, reply: None });
        };
        health.start(refresh).map_err(|e| Error::io(&dir, e))?;
        let worker = Arc::new(Worker::new(dir, nginx, health, registry));
        let w = worker.clone();
        std::thread::Builder::new()
            .name("applier".into())
            .spawn(move || w.run(rx))
            .map_err(|e| Error::io(&worker.dir, e))?;
        Ok(Applier { tx, worker })
    }

    /// Whether the last `nginx -t` passed (the restored set after a failure counts as passing).
    pub fn config_valid(&self) -> bool {
        self.worker.config_valid.load(Ordering::Relaxed)
    }

    /// Queues `op`; returns when the reload that covers it has finished.
    pub fn submit(&self, op: Op) -> Result<Outcome, Error> {
        let (reply, rx) = mpsc::sync_channel(1);
        let stopped = || {
            Error::io(
                &self.worker.dir,
                std::io::Error::other("the applier thread stopped"),
            )
        };
        let reply = Some(reply);
        self.tx.send(Job { op, reply }).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// `GET /api/v1/lb`: the requests stored in the directory's files, sorted by name. Each file is
    /// rendered again from its header's request under `policy`: a file that differs (edited by hand,
    /// or written under other defaults) is listed as `modified`, so POSTing the request mends it.
    /// The prober adds the health of each upstream it checks; `version` is this updater's.
    pub fn list(&self, policy: &Policy) -> Result<ListResponse, Error> {
        let dir = &self.worker.dir;
        let (entries, unreadable) = read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let backends = entries
            .into_values()
            .filter_map(|e| {
                let request = e.request?;
                // The prober's down marks are ours too: rendered with them.
                let modified = validate::backend(&request, policy).map_or(true, |mut b| {
                    b.down = nginx::down_marks(&e.content);
                    nginx::render(&b) != e.content
                });
                Some(ListedBackend { request, modified })
            })
            .collect();
        let mut listed = ListResponse {
            backends,
            unreadable,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        };
        self.worker.health.annotate(&mut listed);
        Ok(listed)
    }
}

impl Drop for Applier {
    /// Stops the health prober (the applier thread ends when its last sender is gone).
    fn drop(&mut self) {
        self.worker.health.stop();
    }
}

/// A file in the streams directory.
#[derive(Debug, Clone)]
struct Entry {
    content: String,
    request: Option<LbRequest>,
}

struct Worker {
    dir: PathBuf,
    nginx: Nginx,
    config_valid: AtomicBool,
    health: Arc<Health>,
    applies: Counter,
    tests: Counter,
    reloads: Counter,
    reload_failures: Counter,
    last_reload: Gauge,
    batch_size: Histogram,
    commit_seconds: Histogram,
}

impl Worker {
    /// Runs `nginx -t` once (for `/healthz`) and registers the applier's metrics.
    fn new(dir: PathBuf, nginx: Nginx, health: Arc<Health>, r: &Registry) -> Worker {
        Worker {
            dir,
            config_valid: AtomicBool::new(nginx.test().is_ok()),
            nginx,
            health,
            applies: r.counter(
                "paperlb_updater_applies_total",
                "Requests handled by the applier, by outcome (applied, unchanged, deleted, absent, refused).",
                &["outcome"],
            ),
            tests: r.counter(
                "paperlb_updater_nginx_tests_total",
                "nginx -t runs, by result.",
                &["result"],
            ),
            reloads: r.counter(
                "paperlb_updater_nginx_reloads_total",
                "nginx reloads attempted.",
                &[],
            ),
            reload_failures: r.counter(
                "paperlb_updater_nginx_reload_failures_total",
                "nginx reloads that did not take (bind failure, timeout, master gone).",
                &[],
            ),
            last_reload: r.gauge(
                "paperlb_updater_last_successful_reload_timestamp_seconds",
                "Unix time of the last reload that took.",
                &[],
            ),
            batch_size: r.histogram(
                "paperlb_updater_batch_changes",
                "Changes covered by one test + reload (group commit).",
                &[],
                &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0],
            ),
            commit_seconds: r.histogram(
                "paperlb_updater_commit_seconds",
                "Write + nginx -t + reload time of one batch.",
                &[],
                DEFAULT_BUCKETS,
            ),
        }
    }

    fn run(&self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let more = rx.try_iter().take(MAX_BATCH - 1);
            self.process(std::iter::once(first).chain(more).collect(), true);
        }
    }

    /// Answers the caller; a backend that is now on disk as the applier rendered it (or is gone)
    /// is told to the prober.
    fn answer(&self, job: Job, r: Result<Outcome, Error>) {
        match (&job.op, &r) {
            (Op::Apply(b), Ok(_)) => self.health.committed(b),
            (Op::Delete(n), Ok(Outcome::Deleted)) => self.health.removed(n),
            // A verdict not rendered: the prober is told the marks its file still has, so its next
            // result renders the verdict again (else it would count as rendered for good).
            (Op::Apply(b), Err(e)) if job.reply.is_none() => {
                log::warn!(
                    "re-render of {} with its health verdicts failed: {e}",
                    b.name
                );
                let file = std::fs::read_to_string(self.dir.join(format!("{}.conf", b.name)));
                if let Ok(text) = file {
                    self.health.not_rendered(b, nginx::down_marks(&text));
                }
            }
            (op, Err(e)) => log::warn!("refused {}: {e}", op.name()),
            _ => {}
        }
        if let Some(reply) = job.reply {
            let label = r.as_ref().map_or("refused", |o| o.as_str());
            self.applies.inc(&[label]);
            let _ = reply.send(r);
        }
    }

    /// Plans the batch against the directory as it is now, commits the changes together, and on
    /// failure (when `may_split`) retries each change alone.
    fn process(&self, jobs: Vec<Job>, may_split: bool) {
        let before = match read_dir(&self.dir) {
            Ok((entries, _)) => entries,
            Err(e) => {
                let err = Error::io(&self.dir, e);
                for j in jobs {
                    self.answer(j, Err(err.clone()));
                }
                return;
            }
        };
        let mut working = before.clone();
        let mut changes: Vec<(Job, Outcome)> = Vec::new();
        for mut job in jobs {
            if let Op::Apply(b) = &mut job.op {
                let stored = working.get(&b.name).and_then(|e| e.request.as_ref());
                // A re-render of a backend deleted or replaced meanwhile: the newer request was
                // rendered fresh, and the prober tracks it (or nothing). Dropped unanswered, so
                // the stale copy is not handed back to the prober as committed.
                if job.reply.is_none() && stored != Some(&b.request) {
                    log::debug!("re-render of {} dropped: deleted or replaced", b.name);
                    continue;
                }
                // Rendered with the prober's verdicts for this very upstream set and check.
                b.down = self.health.down_for(b);
            }
            match plan(&mut working, &job.op) {
                Ok(o @ (Outcome::Applied | Outcome::Deleted)) => changes.push((job, o)),
                // Unchanged or absent only as planned by an earlier change of this batch: it is
                // answered with the batch's commit (or planned alone again if the batch splits).
                Ok(o) if changes.iter().any(|(c, _)| c.op.name() == job.op.name()) => {
                    changes.push((job, o))
                }
                r => self.answer(job, r),
            }
        }
        if changes.is_empty() {
            return;
        }
        // Only the names this batch touched: files we did not plan to change are never rewritten.
        let content = |m: &BTreeMap<String, Entry>, n| m.get(n).map(|e| e.content.clone());
        let touched: BTreeMap<String, (Option<String>, Option<String>)> = (changes.iter())
            .map(|(job, _)| job.op.name())
            .map(|n| (n.to_string(), (content(&before, n), content(&working, n))))
            .filter(|(_, (old, new))| old != new)
            .collect();
        self.batch_size.observe(&[], changes.len() as f64);
        let started = Instant::now();
        let result = self.commit(&touched);
        self.commit_seconds
            .observe(&[], started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                log::info!(
                    "applied {} change(s) with one reload: {}",
                    changes.len(),
                    touched.keys().cloned().collect::<Vec<_>>().join(", ")
                );
                for (job, outcome) in changes {
                    self.answer(job, Ok(outcome));
                }
            }
            // nginx not running fails every change alike: no split (each change alone would run
            // `nginx -t` again, and callers would wait for all of them).
            Err(e) if !may_split || changes.len() == 1 || matches!(e, Error::NotRunning(_)) => {
                for (job, _) in changes {
                    self.answer(job, Err(e.clone()));
                }
            }
            Err(e) => {
                log::warn!(
                    "batch of {} change(s) failed ({e}); applying them one at a time",
                    changes.len()
                );
                // The prober's re-renders are not tried alone (while nginx refuses, one more test
                // for them all, not one per backend): together, once the callers' changes are in.
                let (rerenders, calls): (Vec<Job>, Vec<Job>) = changes
                    .into_iter()
                    .map(|(job, _)| job)
                    .partition(|j| j.reply.is_none());
                for job in calls {
                    self.process(vec![job], false);
                }
                if !rerenders.is_empty() {
                    self.process(rerenders, false);
                }
            }
        }
    }

    /// Writes the touched files, tests, reloads; restores the previous set on any failure.
    fn commit(
        &self,
        touched: &BTreeMap<String, (Option<String>, Option<String>)>,
    ) -> Result<(), Error> {
        if touched.is_empty() {
            return Ok(());
        }
        let written = self.write_set(touched.iter().map(|(n, (_, new))| (n, new)));
        let result = written.and_then(|()| {
            let t = self.nginx.test();
            self.tests.inc(&[if t.is_ok() { "ok" } else { "failed" }]);
            t?;
            self.reloads.inc(&[]);
            (self.nginx.reload()).inspect_err(|_| self.reload_failures.inc(&[]))?;
            let secs = crate::time::epoch_ms(SystemTime::now()) / 1000;
            self.last_reload.set(&[], secs as f64);
            Ok(())
        });
        if result.is_err()
            && let Err(e) = self.write_set(touched.iter().map(|(n, (old, _))| (n, old)))
        {
            // The directory now differs from what nginx runs; /healthz says so until fixed.
            log::error!("could not restore the previous stream config: {e}");
            self.config_valid.store(false, Ordering::Relaxed);
            return Err(e);
        }
        self.config_valid.store(true, Ordering::Relaxed);
        result
    }

    fn write_set<'a>(
        &self,
        files: impl Iterator<Item = (&'a String, &'a Option<String>)>,
    ) -> Result<(), Error> {
        for (name, content) in files {
            put(&self.dir, name, content.as_deref())
                .map_err(|e| Error::io(self.dir.join(format!("{name}.conf")), e))?;
        }
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&self.dir, e))
    }
}

/// What `op` changes in `working` (the directory as planned so far), made there.
fn plan(working: &mut BTreeMap<String, Entry>, op: &Op) -> Result<Outcome, Error> {
    let b = match op {
        Op::Apply(b) => b,
        Op::Delete(name) if working.remove(name).is_some() => return Ok(Outcome::Deleted),
        Op::Delete(_) => return Ok(Outcome::Absent),
    };
    for (other, e) in working.iter() {
        let Some(r) = &e.request else { continue };
        let same_proto = validate::protocol(&r.lb_protocol).ok() == Some(b.protocol);
        if other != &b.name && r.lb_port == b.request.lb_port && same_proto {
            return Err(Error::Conflict(format!(
                "lbPort {}/{} is already served by backend {other:?}",
                b.request.lb_port, b.protocol
            )));
        }
    }
    let content = nginx::render(b);
    if working.get(&b.name).is_some_and(|e| e.content == content) {
        return Ok(Outcome::Unchanged);
    }
    let request = Some(b.request.clone());
    working.insert(b.name.clone(), Entry { content, request });
    Ok(Outcome::Applied)
}

/// Reads every `*.conf` in the directory: entries by backend name, and files that are not ours.
fn read_dir(dir: &Path) -> std::io::Result<(BTreeMap<String, Entry>, Vec<Unreadable>)> {
    let mut entries = BTreeMap::new();
    let mut unreadable = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let file = e.file_name().to_string_lossy().into_owned();
        // Hidden files (our temp files among them) are skipped by nginx's glob as well.
        let Some(name) = file.strip_suffix(".conf").filter(|n| !n.starts_with('.')) else {
            continue;
        };
        let read = (validate::backend_name(name).map_err(|e| e.to_string()))
            .and_then(|()| std::fs::read_to_string(e.path()).map_err(|e| e.to_string()));
        let request = read.as_ref().map_err(Clone::clone).and_then(|content| {
            match nginx::parse_header(content)? {
                r if r.backend_name == name => Ok(r),
                r => Err(format!("header names backend {:?}", r.backend_name)),
            }
        });
        if let Err(err) = &request {
            let (file, err) = (file.clone(), err.clone());
            unreadable.push(Unreadable { file, err });
        }
        if let Ok(content) = read {
            let request = request.ok();
            entries.insert(name.to_string(), Entry { content, request });
        }
    }
    Ok((entries, unreadable))
}

/// `<dir>/<name>.conf` made to hold `content`, or removed (`None`; absent already is fine). Written
/// to a temp file in the same directory, fsynced and renamed over the target: readers (and nginx)
/// see the old or the new file, never half of one.
fn put(dir: &Path, name: &str, content: Option<&str>) -> std::io::Result<()> {
    let path = dir.join(format!("{name}.conf"));
    let Some(content) = content else {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        };
    };
    let tmp = dir.join(format!(".{name}.conf.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The file under `<dir>/main/` (`nginx::MAIN_DIR`) that holds `worker_shutdown_timeout`.
const SHUTDOWN_FILE: &str = "worker-shutdown-timeout";

/// Puts `--worker-shutdown-timeout` (`secs`, 0: off) in force as nginx.conf lets the updater
/// (`source`), and says in the log which way it went. A value nginx refuses (the directive also set
/// in a file nginx.conf includes elsewhere) is taken back with a warning. Off, set in nginx.conf, or
/// not included: a file written by an earlier start is removed (else its old value stays, or
/// duplicates nginx.conf's and every `nginx -t` fails).
pub fn shutdown_timeout(
    dir: &Path,
    nginx: &Nginx,
    source: ShutdownTimeout,
    secs: u64,
) -> Result<(), Error> {
    let main = dir.join(nginx::MAIN_DIR);
    let write = match source {
        _ if secs == 0 => false,
        ShutdownTimeout::InConf(v) => {
            log::info!(
                "nginx.conf sets worker_shutdown_timeout {v}: it governs, not --worker-shutdown-timeout"
            );
            false
        }
        ShutdownTimeout::Absent => {
            let main = main.display();
            log::warn!(
                "nginx.conf neither sets worker_shutdown_timeout nor includes {main}/*.conf outside \
                 every block: after each reload the old nginx workers keep serving their open \
                 connections for as long as those last, and pile up under churn; add `include \
                 {main}/*.conf;` at its top level (README, \"The load balancer host\")"
            );
            false
        }
        ShutdownTimeout::Written => true,
    };
    let ours = main.join(format!("{SHUTDOWN_FILE}.conf"));
    let changed = shutdown_file(&main, write.then_some(secs)).map_err(|e| Error::io(&ours, e))?;
    let applied = match changed {
        false => Ok(()),
        true => nginx.test().and_then(|()| match nginx.master_pid() {
            Ok(_) => nginx.reload(),
            Err(_) => Ok(()), // not running: read when it starts
        }),
    };
    let file = ours.display();
    match applied {
        Ok(()) if write => log::info!("worker_shutdown_timeout {secs}s in force ({file})"),
        Ok(()) => {}
        Err(e) if write => {
            let _ = std::fs::remove_file(&ours);
            log::warn!("worker_shutdown_timeout {secs}s in {file} refused by nginx, removed: {e}");
        }
        Err(e) => log::warn!("nginx after removing our worker_shutdown_timeout: {e}"),
    }
    Ok(())
}

/// Makes the shutdown file in `main` say `worker_shutdown_timeout <seconds>s;`, or removes it
/// (`None`); true when that changed it (nginx must then be tested and reloaded).
fn shutdown_file(main: &Path, seconds: Option<u64>) -> std::io::Result<bool> {
    let content = seconds.map(|s| {
        format!(
            "# Written by paperlb nginx-updater (--worker-shutdown-timeout).\n\
             worker_shutdown_timeout {s}s;\n"
        )
    });
    // Unchanged only when it reads back as wanted, or is absent and not wanted (a file that
    // cannot be read is written or removed again).
    let held = match std::fs::read(main.join(format!("{SHUTDOWN_FILE}.conf"))) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(None),
        read => read.ok().map(Some),
    };
    if held == Some(content.as_ref().map(|c| c.clone().into_bytes())) {
        return Ok(false);
    }
    if content.is_some() {
        std::fs::create_dir_all(main)?;
    }
    put(main, SHUTDOWN_FILE, content.as_deref())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(body: &str) -> Backend {
        let req: LbRequest = serde_json::from_str(body).unwrap();
        validate::backend(&req, &Policy::default()).unwrap()
    }

    /// A prober's re-render that finds its backend deleted or replaced on disk is dropped without
    /// telling the prober it was committed: the prober keeps tracking the newer request (or
    /// nothing), instead of probing the stale upstreams again.
    #[test]
    fn a_stale_re_render_leaves_the_probers_tracking_alone() {
        let dir = std::env::temp_dir().join(format!("paperlb-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let registry = Registry::default();
        let health = Health::new(&registry);
        // No nginx runs: every job below is dropped before a commit.
        let nginx = Nginx {
            bin: dir.join("no-nginx"),
            conf: dir.join("nginx.conf"),
            pid_file: dir.join("nginx.pid"),
            error_log: None,
        };
        let w = Worker::new(dir.clone(), nginx, health.clone(), &registry);
        let up = |host| {
            format!(
                r#"{{"backendName": "a", "lbPort": 8100, "lbProtocol": "TCP",
                "upstreamServers": [{{"host": "{host}", "port": 1}}],
                "healthCheck": {{"type": "tcp"}}}}"#
            )
        };
        let (old, new) = (backend(&up("127.0.0.2")), backend(&up("127.0.0.3")));
        let stale = || Job {
            op: Op::Apply(Box::new(old.clone())),
            reply: None,
        };
        // The health a `GET` answer shows for `b`: `None` unless the prober tracks that request.
        let shown = |b: &Backend| {
            let mut list = ListResponse {
                backends: vec![ListedBackend {
                    request: b.request.clone(),
                    modified: false,
                }],
                unreadable: Vec::new(),
                version: None,
            };
            health.annotate(&mut list);
            list.backends[0].request.upstream_servers[0].health.healthy
        };
        // Replaced: the newer request is tracked (its file is not on disk here, as after a
        // delete; either way the stored request is not the stale one).
        health.committed(&new);
        assert_eq!(shown(&new), Some(true));
        w.process(vec![stale()], true);
        assert_eq!(shown(&new), Some(true), "still the newer request");
        assert_eq!(shown(&old), None);
        // Deleted: nothing is tracked, and the stale re-render does not bring it back.
        health.removed("a");
        w.process(vec![stale()], true);
        assert_eq!(shown(&old), None, "not tracked again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_shutdown_timeout_file_is_written_once_and_removed_once() {
        let dir = std::env::temp_dir().join(format!("paperlb-wst-{}", std::process::id()));
        let main = dir.join("main");
        let file = main.join("worker-shutdown-timeout.conf");
        assert!(shutdown_file(&main, Some(30)).unwrap());
        assert!(
            !shutdown_file(&main, Some(30)).unwrap(),
            "same content: unchanged"
        );
        assert!(shutdown_file(&main, Some(5)).unwrap());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.ends_with("worker_shutdown_timeout 5s;\n"), "{text}");
        assert!(shutdown_file(&main, None).unwrap());
        assert!(!file.exists());
        assert!(!shutdown_file(&main, None).unwrap(), "absent: unchanged");
        // A file that does not read as text is not taken for absent: it is removed.
        std::fs::write(&file, b"\xff\xfe").unwrap();
        assert!(shutdown_file(&main, None).unwrap());
        assert!(!file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
