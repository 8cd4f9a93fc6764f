//! The executor: [`execute_action`] does one action's I/O and returns its answer, on the worker
//! (`Worker::execute`) and on the pool alike; the worker applies every answer in one place. Also
//! the port claims a plan's writes add (pure), and plans' I/O on a small pool of long-lived threads.
//!
//! A node flip queues every LoadBalancer; each needs a spec patch, then an updater call and a status
//! patch; a cold start over many Services needs a create, then the same. One after another they
//! leave the worker waiting on round trips (several ms each on a real apiserver), or on an LB host
//! that does not answer. So the worker hands every reconcile's plan to the [`Pool`] (up to
//! [`MAX_IN_FLIGHT`] at once) and goes on deciding; each plan's actions run in order on one pool
//! thread. What keeps the next decisions right meanwhile: the cache keeps every claim it holds (a
//! spec's ports, where backends are applied) until the answers that drop it are applied, and the
//! worker reserves the claims a plan's writes add ([`reservation`]) before its I/O starts. The threads only talk to the API server and the updaters
//! (at most [`IO_THREADS`] requests in flight to the API server, [`PER_UPDATER`] to each updater):
//! the worker stays the one owner of the cache and applies each answer when the plan's [`Done`]
//! arrives in its channel. A key in flight stays "processing" in the queue until then, so it is
//! never reconciled twice at once (DESIGN, "Cost of a change"). A drift check's repairs also run on
//! the pool, as one plan, while no reconcile runs.
//!
//! Must not: touch the cache, or decide anything.

use super::resync::PARALLEL;
use super::stats::Stats;
use crate::controller::cache::Cache;
use crate::controller::decide::plan::{Action, Plan, Repair};
use crate::controller::decide::ports::{Claim, PortIndex};
use crate::controller::decide::updater_auth::AuthProblem;
use crate::controller::key::Key;
use crate::kube::Error;
use crate::kube::client::{Client, EVENTS, LOADBALANCERCONFIGS, LOADBALANCERS, SERVICES};
use crate::kube::lease::Leadership;
use crate::model::{Event, LoadBalancerSpec};
use crate::updater::client::UpdaterClient;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

/// Plans handed to the pool and not yet applied, at most: enough to keep a slow apiserver's commit
/// pipeline full, bounded so that a burst cannot queue without limit behind a stalled server. In
/// `make bench` at 15 ms, 16 was as fast as 32 and 64 and used 1-2 MiB less at 1k (bench/RESULTS.md).
pub const MAX_IN_FLIGHT: usize = 16;

/// Pool threads, at most (started as needed, then kept): also the bound on API requests in flight
/// from the pool (kube-apiserver's default `--max-mutating-requests-inflight` is 200 for all
/// clients). As many as the 16 writes an etcd-backed server commits at once in `make bench`'s
/// latency profile, so its pipeline stays full (32 measured no faster there; a plan's two status
/// patches add one short-lived thread while both are sent).
pub const IO_THREADS: usize = 16;

/// Calls in flight to one updater URL, at most: fewer than the pool, so one slow LB host cannot
/// hold every thread (the updater group-commits concurrent calls into one nginx reload, so several at
/// once cost little more than one).
pub const PER_UPDATER: usize = 12;

/// Stack of a pool thread: a plan's I/O is shallow (ureq, rustls, serde_json of one object).
const IO_STACK: usize = 256 * 1024;

/// What one plan's I/O gave: the answers in action order, and how it ended.
pub type Outcome = (Vec<Answer>, Result<(), Stop>);

/// Why executing a plan stopped.
#[derive(Debug)]
pub enum Stop {
    /// An updater call (action `index`) failed.
    Updater { index: usize, error: CallError },
    /// An API write (action `index`) failed.
    Api { index: usize, error: Error },
    /// Leadership was lost mid-plan: leave the key queued for the next leader.
    NotLeader,
}

/// Why an updater action failed: the call's own error, or no call at all (no usable client; the
/// problem says why). The worker reports refused credentials as `UpdaterAuth`, and checks an
/// updater for drift when it answers again after being unreachable.
#[derive(Debug)]
pub enum CallError {
    Call(crate::updater::Error),
    NoCall(AuthProblem),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Call(e) => e.fmt(f),
            CallError::NoCall(p) => f.write_str(&p.message),
        }
    }
}

/// The answer to one action, for the worker to apply to its cache. Objects come back as JSON text
/// and are decoded by the worker: what the cache keeps is then allocated by the worker's thread,
/// and the I/O threads' malloc arenas hold no object trees (measured in make bench at 1k: RSS 46 MiB
/// when the threads decoded, 42 MiB with a `Value` tree, see the notes in bench/README.md).
#[derive(Debug)]
pub enum Answer {
    /// An API write's answer, of the kind its action says: the stored object (a LoadBalancer, or a
    /// Service after its status patch); after a delete of the LoadBalancer, the object when a
    /// finalizer holds it, else a Status. None: the object is gone (a 404 of a delete or a Service
    /// status patch).
    Object(Option<Box<RawValue>>),
    /// Updater calls and Events leave nothing to apply.
    Done,
    /// An action whose failure does not stop its plan (a drift repair) failed.
    Failed(CallError),
}

/// The query of LoadBalancer writes: an unknown field is a 4xx (`strict decoding error`).
const STRICT: &str = "?fieldValidation=Strict";

/// The port claims a write of a plan in flight adds to what the cache holds for its key, for the
/// worker to reserve until the plan's answers are applied: a create's or a spec patch's new ports.
/// With these reserved, and the cache keeping every claim it holds until the answers that drop
/// it (a spec patch's, the status patch after a backend's DELETE, a release's), no other key's
/// decision made meanwhile can take a port the plan holds or is about to, so every reconcile's
/// plan runs on the pool.
pub fn reservation(cache: &Cache, action: &Action) -> Vec<Claim> {
    let (key, spec) = match action {
        Action::CreateLoadBalancer { key, object } => (key, &object["spec"]),
        Action::PatchLoadBalancerSpec { key, patch } => (key, &patch["spec"]),
        _ => return Vec::new(),
    };
    // Read in place (no copy of the write): this runs for every plan of a node flip.
    let Ok(spec) = LoadBalancerSpec::deserialize(spec) else {
        return Vec::new();
    };
    let held = cache.load_balancers.get(key);
    let held = held.map_or(Vec::new(), |lb| PortIndex::claims_of(key, lb));
    let claims = PortIndex::spec_claims(key, &spec).into_iter();
    claims.filter(|c| !held.contains(c)).collect()
}

/// Updater clients by URL, or why a URL has none (the `NoCall` error).
pub type Clients = BTreeMap<String, Result<Arc<UpdaterClient>, AuthProblem>>;

/// What a plan's I/O uses, on the pool or on the worker; everything in it is safe to use from
/// several threads.
pub struct Io<'a> {
    s: &'a PoolShared,
    /// One client per updater URL the plan uses (created by the worker beforehand), or why
    /// there is none.
    updaters: &'a Clients,
    /// The leadership term the plan was decided in: it is not run in another.
    term: u64,
}

impl Io<'_> {
    /// Whether the plan's leadership term still holds.
    fn leading(&self) -> bool {
        self.s.leadership.is_leader() && self.s.term.load(Ordering::SeqCst) == self.term
    }

    /// A slot for a call to `url` (within [`PER_UPDATER`]). Waiting for one can outlast the term,
    /// so leadership is checked again before the call is sent. (Only the pool calls updaters: the
    /// plans run on the worker are API writes.)
    fn slot<'b>(&'b self, url: &'b str) -> Result<Slot<'b>, Stop> {
        let slot = self.s.slots.take(url);
        if !self.leading() {
            return Err(Stop::NotLeader);
        }
        Ok(slot)
    }

    /// One call `op` to updater `url`, counted.
    fn call(
        &self,
        op: &str,
        url: &str,
        f: impl FnOnce(&UpdaterClient) -> Result<(), crate::updater::Error>,
    ) -> Result<(), CallError> {
        let client = match self.updaters.get(url) {
            Some(Ok(c)) => c,
            Some(Err(p)) => return Err(CallError::NoCall(p.clone())),
            None => {
                return Err(CallError::NoCall(AuthProblem {
                    reason: "ClientSetup",
                    message: format!("no client for updater {url}"),
                }));
            }
        };
        let started = Instant::now();
        let result = f(client).map_err(CallError::Call);
        (self.s.stats).updater_call(op, result.is_ok(), started.elapsed());
        result
    }

    /// POSTs a prepared Event, or PATCHes the one it repeats (count above 1: its count and last
    /// timestamp; created again if it is gone). Best effort, so a failure is only logged; an Event
    /// into a namespace being deleted is dropped quietly (the Event would go with it).
    pub fn post_event(&self, event: &Event) {
        let ns = Some(event.metadata.namespace.as_str());
        self.s.stats.api_writes.inc(&["event"]);
        // A repeat patches the Event it repeats; a new one, or a repeat of one that is gone, is
        // created.
        let patched = (event.count > 1).then(|| {
            let path = EVENTS.path(ns, Some(&event.metadata.name), None);
            let patch = serde_json::json!({"count": event.count,
                "lastTimestamp": event.last_timestamp, "message": event.message});
            self.s.client.merge_patch::<Value>(&path, &patch)
        });
        let e = match patched {
            Some(Ok(_)) => return,
            Some(Err(e)) if !e.is_not_found() => e,
            _ => match self
                .s
                .client
                .create::<Value>(&EVENTS.path(ns, None, None), event)
            {
                Ok(_) => return,
                Err(e) => e,
            },
        };
        let terminating = e.is_forbidden() && e.to_string().contains("being terminated");
        if terminating || e.is_not_found() {
            log::debug!(
                "event dropped: namespace {} is being deleted or gone object={} reason={}",
                event.metadata.namespace,
                event.involved_object.name,
                event.reason
            );
            return;
        }
        log::warn!(
            "posting event object={}/{} reason={} error={e}",
            event.involved_object.namespace,
            event.involved_object.name,
            event.reason
        );
    }

    fn patch(&self, path: &str, patch: &Value) -> Result<Box<RawValue>, Error> {
        self.s.stats.api_writes.inc(&["patch"]);
        self.s.client.merge_patch(path, patch)
    }
}

/// Runs a plan's I/O in order, stopping at the first failure. `events[i]` is the
/// prepared Event for action `i` (None: dropped by the rate limit, or not an Event).
pub fn run(io: &Io, plan: &Plan, events: &[Option<Event>]) -> Outcome {
    let mut answers = Vec::with_capacity(plan.actions.len());
    let mut index = 0;
    while index < plan.actions.len() {
        if !io.leading() {
            return (answers, Err(Stop::NotLeader));
        }
        let rest = &plan.actions[index..];
        let len = match rest {
            // A drift check's repairs: deletes (a stray may hold a port a missing backend
            // needs), then the rest, each group all at once.
            [Action::Repair { repair, .. }, ..] => {
                let delete = matches!(repair, Repair::Delete(_));
                rest.iter()
                    .take_while(|a| {
                        matches!(a, Action::Repair { repair, .. }
                            if matches!(repair, Repair::Delete(_)) == delete)
                    })
                    .count()
            }
            // The LoadBalancer's status and then the Service's: both follow from the updater
            // calls that succeeded before them, neither from the other, so they are sent at
            // once (one round trip, not two, before the Service has its ingress).
            [
                Action::PatchLoadBalancerStatus { .. },
                Action::PatchServiceStatus { .. },
                ..,
            ] => 2,
            _ => 1,
        };
        for result in all_at_once(io, index, &rest[..len], events) {
            match result {
                Ok(a) => answers.push(a),
                // Later answers are dropped: their watch events bring them.
                Err(stop) => return (answers, Err(stop)),
            }
        }
        index += len;
    }
    (answers, Ok(()))
}

/// Actions `first..first + actions.len()`, up to [`PARALLEL`] at once on scoped threads (one
/// runs here): a drift check's repairs so that the updater's group commit covers many of them
/// with one reload (1,000 missing backends cost 1,000 POSTs but a handful of reloads). Results
/// in order.
fn all_at_once(
    io: &Io,
    first: usize,
    actions: &[Action],
    events: &[Option<Event>],
) -> Vec<Result<Answer, Stop>> {
    let results: Vec<OnceLock<Result<Answer, Stop>>> =
        actions.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(action) = actions.get(i) else { break };
            let result = if i == 0 || io.leading() {
                execute_action(io, first + i, action, events)
            } else {
                Err(Stop::NotLeader)
            };
            let _ = results[i].set(result); // each index is taken once
        }
    };
    std::thread::scope(|s| {
        for _ in 1..PARALLEL.min(actions.len()) {
            let started = std::thread::Builder::new()
                .name("paperlb-io".into())
                .stack_size(IO_STACK)
                .spawn_scoped(s, work);
            if started.is_err() {
                break; // the threads already started take the rest
            }
        }
        work();
    });
    (results.into_iter())
        .map(|r| r.into_inner().unwrap_or(Err(Stop::NotLeader)))
        .collect()
}

/// Executes one action (action `index` of its plan, for the error): the one executor, on the
/// worker and on the pool. `events[i]` is the prepared Event for action `i`. The answer goes to the
/// worker, which applies it to its cache (`Worker::apply_answer`).
pub fn execute_action(
    io: &Io,
    index: usize,
    action: &Action,
    events: &[Option<Event>],
) -> Result<Answer, Stop> {
    let api = |error| Stop::Api { index, error };
    let lbs = |key: &Key, sub| LOADBALANCERS.path(Some(&key.namespace), Some(&key.name), sub);
    Ok(match action {
        Action::UpdaterApply {
            key,
            url,
            request: r,
        } => {
            let _slot = io.slot(url)?;
            io.call("apply", url, |c| c.apply(r))
                .map_err(|error| Stop::Updater { index, error })?;
            log::info!(
                "applied backend={} port={}/{} targets={} updater={url} key={key}",
                r.backend_name,
                r.lb_port,
                r.lb_protocol,
                r.upstream_servers.len()
            );
            Answer::Done
        }
        Action::UpdaterDelete {
            key,
            url,
            backend_name,
            best_effort,
        } => {
            let _slot = io.slot(url)?;
            match io.call("delete", url, |c| c.delete(backend_name)) {
                Ok(()) => log::info!("deleted backend={backend_name} updater={url} key={key}"),
                Err(error) if *best_effort => log::warn!(
                    "could not delete backend={backend_name} from updater={url}, a host \
                     no longer in its config (left there) key={key} error={:?}",
                    error.to_string()
                ),
                Err(error) => return Err(Stop::Updater { index, error }),
            }
            Answer::Done
        }
        Action::Repair { url, repair } => {
            // No slot: a check's repairs are bounded by `resync::PARALLEL`, and no reconcile runs
            // beside them (see `Worker::repairing`).
            let result = match repair {
                Repair::Create(r) | Repair::Update(r) => io.call("apply", url, |c| c.apply(r)),
                Repair::Delete(name) => io.call("delete", url, |c| c.delete(name)),
            };
            if let Err(e) = result {
                return Ok(Answer::Failed(e));
            }
            io.s.stats.drift_repairs.inc(&[repair.action()]);
            let (what, name) = (repair.action(), repair.backend_name());
            log::info!("drift repair: {what} backend={name} updater={url}");
            Answer::Done
        }
        Action::Event(_) => {
            if let Some(Some(event)) = events.get(index) {
                io.post_event(event);
            }
            Answer::Done
        }
        // The spec is the record every push is made from: a field the installed CRD does not know
        // (a controller newer than its CRDs) is refused, not dropped without a word.
        Action::CreateLoadBalancer { key, object } => {
            io.s.stats.api_writes.inc(&["create"]);
            let path = LOADBALANCERS.path(Some(&key.namespace), None, None) + STRICT;
            Answer::Object(Some(io.s.client.create(&path, object).map_err(api)?))
        }
        Action::PatchLoadBalancerSpec { key, patch } | Action::PatchFinalizers { key, patch } => {
            Answer::Object(Some(
                io.patch(&(lbs(key, None) + STRICT), patch).map_err(api)?,
            ))
        }
        Action::PatchLoadBalancerStatus { key, patch } => Answer::Object(Some(
            io.patch(&lbs(key, Some("status")), patch).map_err(api)?,
        )),
        Action::PatchServiceStatus { key, patch } => {
            let path = SERVICES.path(Some(&key.namespace), Some(&key.name), Some("status"));
            // The Service went away meanwhile: its watch event will drive the cleanup.
            gone_or(io.patch(&path, patch)).map_err(api)?
        }
        Action::PatchConfigStatus { key, patch } => {
            let path =
                LOADBALANCERCONFIGS.path(Some(&key.namespace), Some(&key.name), Some("status"));
            io.patch(&path, patch).map_err(api)?;
            Answer::Done
        }
        Action::DeleteLoadBalancer { key, .. } => {
            io.s.stats.api_writes.inc(&["delete"]);
            gone_or(io.s.client.delete(&lbs(key, None))).map_err(api)?
        }
    })
}

/// The answer to a write whose object may be gone: a 404 is the answer None.
fn gone_or(written: Result<Box<RawValue>, Error>) -> Result<Answer, Error> {
    match written {
        Err(e) if e.is_not_found() => Ok(Answer::Object(None)),
        written => written.map(|v| Answer::Object(Some(v))),
    }
}

/// A counting semaphore per updater URL.
#[derive(Default)]
pub struct Slots {
    busy: Mutex<BTreeMap<String, usize>>,
    freed: Condvar,
}

/// One taken slot; given back on drop (also when a call unwinds, as in a debug build).
struct Slot<'a> {
    slots: &'a Slots,
    url: &'a str,
}

impl Slots {
    /// Waits until fewer than [`PER_UPDATER`] calls to `url` are in flight, then takes a slot.
    fn take<'a>(&'a self, url: &'a str) -> Slot<'a> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while busy.get(url).is_some_and(|n| *n >= PER_UPDATER) {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy.entry(url.to_string()).or_default() += 1;
        Slot { slots: self, url }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut busy = self.slots.busy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = busy.get_mut(self.url) {
            *n -= 1;
            if *n == 0 {
                busy.remove(self.url);
            }
        }
        drop(busy);
        self.slots.freed.notify_all();
    }
}

/// One plan's I/O for a pool thread: everything it needs travels with it.
type Job = Box<dyn FnOnce(&PoolShared) + Send>;

/// A finished job, for the worker to apply.
#[derive(Debug)]
pub struct Done {
    pub id: u64,
    pub plan: Plan,
    pub events: Vec<Option<Event>>,
    pub outcome: Outcome,
}

struct PoolShared {
    client: Client,
    /// The worker's leadership term.
    term: Arc<AtomicU64>,
    stats: Arc<Stats>,
    leadership: Arc<Leadership>,
    slots: Slots,
    /// Jobs queued, taken by one thread at a time; they end when the `Pool` (the sender) goes.
    jobs: Mutex<Receiver<Job>>,
    /// Jobs submitted and not yet finished.
    unfinished: AtomicUsize,
    deliver: Box<dyn Fn(Done) + Send + Sync>,
}

/// Long-lived I/O threads (started as needed, up to [`IO_THREADS`], with small stacks): a fixed set
/// rather than threads per batch, so glibc keeps a fixed set of malloc arenas and no stacks come
/// and go. Each finished job is handed to `deliver` (the worker's channel).
pub struct Pool {
    shared: Arc<PoolShared>,
    jobs: Sender<Job>,
    threads: usize,
}

impl Pool {
    pub fn new(
        client: Client,
        term: Arc<AtomicU64>,
        stats: Arc<Stats>,
        leadership: Arc<Leadership>,
        deliver: impl Fn(Done) + Send + Sync + 'static,
    ) -> Pool {
        let (jobs, queued) = mpsc::channel();
        Pool {
            shared: Arc::new(PoolShared {
                client,
                term,
                stats,
                leadership,
                slots: Slots::default(),
                jobs: Mutex::new(queued),
                unfinished: AtomicUsize::new(0),
                deliver: Box::new(deliver),
            }),
            jobs,
            threads: 0,
        }
    }

    /// Queues job `id` (decided in the worker's leadership term now); starts one more thread when
    /// none is idle (as many jobs unfinished as threads). When no thread could be started at all,
    /// runs it on the caller's thread (its `Done` is delivered all the same).
    pub fn submit(&mut self, id: u64, plan: Plan, events: Vec<Option<Event>>, updaters: Clients) {
        let s = &self.shared;
        let term = s.term.load(Ordering::SeqCst);
        let job: Job = Box::new(move |s: &PoolShared| {
            let io = Io {
                s,
                updaters: &updaters,
                term,
            };
            let outcome = run(&io, &plan, &events);
            s.unfinished.fetch_sub(1, Ordering::SeqCst);
            (s.deliver)(Done {
                id,
                plan,
                events,
                outcome,
            });
        });
        let unfinished = s.unfinished.fetch_add(1, Ordering::SeqCst);
        if unfinished >= self.threads && self.threads < IO_THREADS {
            let shared = s.clone();
            let started = std::thread::Builder::new()
                .name("paperlb-io".into())
                .stack_size(IO_STACK)
                .spawn(move || io_thread(&shared));
            match started {
                Ok(_) => self.threads += 1,
                Err(e) => log::warn!("starting an I/O thread: {e}"),
            }
        }
        if self.threads == 0 {
            log::warn!("no I/O thread; running a plan on the worker");
            return job(s);
        }
        // The threads hold the receiver until the pool (this sender) is dropped.
        let _ = self.jobs.send(job);
    }

    /// The I/O of a plan run on the worker now, with `updaters`.
    pub fn io<'a>(&'a self, updaters: &'a Clients) -> Io<'a> {
        let term = self.shared.term.load(Ordering::SeqCst);
        Io {
            s: &self.shared,
            updaters,
            term,
        }
    }
}

fn io_thread(s: &PoolShared) {
    loop {
        // The lock is held while waiting (one thread at a time waits), and let go before the job.
        let job = s.jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        job(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Protocol;
    use crate::updater::api::LbRequest;
    use serde_json::json;

    fn spec(host: &str, port: u16, protocol: &str, target: &str) -> Value {
        let targets = json!([{"host": target, "port": 30080}]);
        json!({"host": host, "port": port, "protocol": protocol, "targets": targets,
            "ports": [{"name": "", "port": port, "protocol": protocol, "targets": targets}]})
    }

    fn cache() -> Cache {
        let mut c = Cache::default();
        let lb: crate::model::LoadBalancer = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web", "resourceVersion": "5"},
            "spec": spec("LB.example", 8000, "TCP", "127.0.0.2"),
        }))
        .unwrap();
        c.apply_load_balancer(lb);
        c
    }

    fn key(name: &str) -> Key {
        Key::new("ns", name)
    }

    fn spec_patch(name: &str, spec: Value) -> Action {
        Action::PatchLoadBalancerSpec {
            key: key(name),
            patch: json!({"metadata": {"resourceVersion": "5"}, "spec": spec}),
        }
    }

    fn apply() -> Action {
        Action::UpdaterApply {
            key: key("web"),
            url: "http://127.0.0.1:1".into(),
            request: LbRequest {
                backend_name: "ns_web".into(),
                lb_port: 8000,
                lb_protocol: "TCP".into(),
                ..Default::default()
            },
        }
    }

    /// A pool call that waited for an updater slot while leadership changed hands is not sent:
    /// the plan stops as `NotLeader` (the next leader decides again). Sent, it would be refused
    /// (nothing listens on port 1) and stop as `Updater`.
    #[test]
    fn a_call_that_waited_for_a_slot_is_not_sent_in_a_later_term() {
        let config = crate::kube::testutil::config("http://127.0.0.1:1");
        let client = Client::new(&config, Default::default()).unwrap();
        let leadership = Leadership::always();
        let stats = Arc::new(Stats::new(Arc::default(), leadership.clone()));
        let term = Arc::new(AtomicU64::new(1));
        let pool = Pool::new(client, term.clone(), stats, leadership, |_| {});
        let url = "http://127.0.0.1:1";
        let timeouts = crate::updater::client::Timeouts::default();
        let updater = UpdaterClient::new(url, Default::default(), timeouts).unwrap();
        let updaters = Clients::from([(url.to_string(), Ok(Arc::new(updater)))]);
        let io = Io {
            s: &pool.shared,
            updaters: &updaters,
            term: 1,
        };
        let held: Vec<Slot> = (0..PER_UPDATER).map(|_| io.s.slots.take(url)).collect();
        std::thread::scope(|scope| {
            let call = scope.spawn(|| execute_action(&io, 0, &apply(), &[]));
            // Most likely waiting for a slot by then (the outcome is the same if not yet).
            std::thread::sleep(std::time::Duration::from_millis(50));
            term.fetch_add(1, Ordering::SeqCst);
            drop(held);
            assert!(matches!(call.join(), Ok(Err(Stop::NotLeader))));
        });
    }

    /// What a plan's writes add to the cached claims is reserved: a create's or a spec patch's new
    /// port, protocol or host. A write that keeps every claim (targets only), or moves a port to
    /// where a backend of the key is still applied, and every other action, reserve nothing.
    #[test]
    fn only_what_a_plans_writes_add_to_the_cached_claims_is_reserved() {
        let create = |name: &str, object: Value| Action::CreateLoadBalancer {
            key: key(name),
            object,
        };
        let (tcp, udp) = (Protocol::Tcp, Protocol::Udp);
        type Case = (
            &'static str,
            Action,
            Vec<(&'static str, u16, Protocol, &'static str)>,
        );
        let cases: Vec<Case> = vec![
            (
                "targets change only",
                spec_patch("web", spec("lb.example", 8000, "TCP", "127.0.0.3")),
                vec![],
            ),
            (
                "targets change with a finalizer added",
                Action::PatchLoadBalancerSpec {
                    key: key("web"),
                    patch: json!({"metadata": {"resourceVersion": "5", "finalizers": ["f"]},
                        "spec": spec("lb.example", 8000, "TCP", "127.0.0.3")}),
                },
                vec![],
            ),
            (
                "port moves",
                spec_patch("web", spec("lb.example", 8001, "TCP", "127.0.0.2")),
                vec![("lb.example", 8001, tcp, "web")],
            ),
            (
                "port moves where its old backend is still applied",
                spec_patch("web", spec("lb.example", 7999, "TCP", "127.0.0.2")),
                vec![],
            ),
            (
                "protocol changes",
                spec_patch("web", spec("lb.example", 8000, "UDP", "127.0.0.2")),
                vec![("lb.example", 8000, udp, "web")],
            ),
            (
                "host changes",
                spec_patch("web", spec("lb2.example", 8000, "TCP", "127.0.0.2")),
                vec![("lb2.example", 8000, tcp, "web")],
            ),
            (
                "unknown LoadBalancer",
                spec_patch("other", spec("lb.example", 8000, "TCP", "127.0.0.2")),
                vec![("lb.example", 8000, tcp, "other")],
            ),
            (
                "unreadable spec",
                spec_patch("web", json!("nonsense")),
                vec![],
            ),
            (
                "create",
                create(
                    "new",
                    json!({"spec": spec("lb.example", 8001, "TCP", "127.0.0.2")}),
                ),
                vec![("lb.example", 8001, tcp, "new")],
            ),
            (
                "create of the claims the cache holds",
                create(
                    "web",
                    json!({"spec": spec("lb.example", 8000, "TCP", "127.0.0.2")}),
                ),
                vec![],
            ),
            (
                "create with an unreadable spec",
                create("new", json!({})),
                vec![],
            ),
            ("an updater call", apply(), vec![]),
            (
                "delete",
                Action::DeleteLoadBalancer {
                    key: key("web"),
                    uid: "u".into(),
                },
                vec![],
            ),
        ];
        let mut c = cache();
        let mut lb = (**c.load_balancers.get(&key("web")).unwrap()).clone();
        lb.status.applied = vec![
            serde_json::from_value(json!({"backendName": "ns_web_old",
                "url": "http://lb.example:8080", "host": "lb.example",
                "port": 7999, "protocol": "TCP"}))
            .unwrap(),
        ];
        lb.metadata.resource_version = "6".into();
        c.apply_load_balancer(lb);
        for (name, action, want) in cases {
            let got = reservation(&c, &action);
            let want: Vec<Claim> = (want.into_iter())
                .map(|(h, p, proto, k)| (h.to_string(), p, proto, key(k)))
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
