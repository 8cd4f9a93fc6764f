//! The reconcile worker: the one thread that owns the cache and the work queue, and the only writer.
//!
//! Watch threads, the lease elector and the signal thread send [`Event`]s into its channel. It applies
//! them to the cache, queues the keys they affect, and (once every watch has synced, and while it is
//! the leader) runs `reconcile` for each ready key and executes the plan: API writes, updater calls and
//! Events. Each write's answer is applied to the cache when its plan is done, so the next decision (a second
//! Service's port allocation, the next step of the same key) sees it before the watch catches up.
//! It blocks in `recv_timeout` until the next event or the next retry is due: no polling.
//! Each reconcile's plan is handed to the I/O pool (`batch`; the ports its writes add are reserved
//! first) and it goes on deciding; each answer comes back through its channel and is applied here,
//! so this thread remains the only writer of the cache. While an updater does not
//! answer, one plan calling it is in flight at a time; the others wait in the queue (`process`).
//!
//! Must not: decide anything itself (that is `reconcile`), or write while not the leader.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::batch::{self, Answer, Clients, Done, MAX_IN_FLIGHT, Pool, Stop};
use super::events::EventLimiter;
use super::resync::Timers;
use super::secrets::SecretStore;
use super::stats::Stats;
use crate::controller::cache::{Affected, Cache};
use crate::controller::cli::Config;
use crate::controller::decide::config_status;
use crate::controller::decide::context::Context;
use crate::controller::decide::plan::{Action, Plan};
use crate::controller::decide::reconcile::{on_updater_error, on_write_refused, reconcile};
use crate::controller::decide::status::is_applied;
use crate::controller::key::Key;
use crate::controller::queue::Queue;
use crate::kube::client::{
    Client, ENDPOINTSLICES, LOADBALANCERCONFIGS, LOADBALANCERS, NODES, SERVICES,
};
use crate::kube::lease::Leadership;
use crate::kube::watch::WatchMsg;
use crate::model::{EndpointSlice, LoadBalancer, LoadBalancerConfig, Node, Secret, Service};
use crate::time::{epoch_ms, rfc3339};
use crate::updater::client::{ClientAuth, UpdaterClient};

// The Secret-backed updater credentials and drift checks: their part of the worker.
#[path = "worker_updaters.rs"]
mod updaters;

/// Which client serves a config's calls to an updater: (config name, `httpUpdaterURL` as written).
type ClientId = (String, String);

/// The worker's updater-side state.
#[derive(Default)]
pub(crate) struct UpdaterState {
    secrets: SecretStore,
    /// Updater clients by config and URL (a plan's I/O gets its own by URL), with the credentials
    /// each was built with.
    clients: BTreeMap<ClientId, (ClientAuth, Arc<UpdaterClient>)>,
    timers: Timers,
    /// Checks have been scheduled since the first sync or the last leadership gain.
    started: bool,
    /// Endpoints without `GET` (the Go updater): not checked again until leadership changes.
    unsupported: BTreeSet<String>,
    /// Endpoints whose last call or probe got no answer, with the time of their last good answer
    /// (ms since the epoch): checked when they answer again; a host of a several-host config
    /// gets no calls meanwhile and leaves the ingress after the grace. Reconciles call one from one
    /// plan at a time (see `held_up`).
    failing: BTreeMap<String, u64>,
    /// Keys held back because their plan calls a failing endpoint that a plan in flight calls:
    /// queued again at once when one answers (`host_answered`), when a plan that called one ends
    /// (`io_done`) or a config changes (one still held up is held back again).
    deferred: BTreeSet<Key>,
    /// Per failing endpoint and grace (the host failure grace, then `--unreachable-delete-grace`,
    /// after which deletions stop waiting on it): it ran out, and the endpoint's LoadBalancers were
    /// reconciled for it.
    expired: BTreeMap<String, [bool; 2]>,
    /// Configs or Secrets changed since the prober's targets were set.
    probes_stale: bool,
}

/// Everything that reaches the worker.
#[derive(Debug)]
pub enum Event {
    Services(WatchMsg<Service>),
    Nodes(WatchMsg<Node>),
    LoadBalancers(WatchMsg<LoadBalancer>),
    Configs(WatchMsg<LoadBalancerConfig>),
    Slices(WatchMsg<EndpointSlice>),
    /// Secrets in the controller's namespace (updater tokens and CAs).
    Secrets(WatchMsg<Secret>),
    /// The elector gained (true) or lost (false) the lease.
    Leadership(bool),
    /// SIGTERM/SIGINT: finish the current reconcile and return.
    Shutdown,
    /// A plan's I/O finished on the pool (see `batch`).
    Io(Box<Done>),
    /// An LB host of a several-host config stopped or started answering (`host_probe`).
    HostProbe(super::host_probe::Probed),
}

/// The watched kinds (the `Event`s that carry a `WatchMsg`); the worker reconciles nothing before
/// all have delivered their first snapshot.
const KINDS: usize = 6;
/// The first and the longest wait before retrying a config status write that failed.
const CONFIG_RETRY_FIRST: Duration = Duration::from_millis(500);
const CONFIG_RETRY_MAX: Duration = Duration::from_secs(60);

/// What probes read: shared with the HTTP thread.
#[derive(Debug, Default)]
pub struct Health {
    /// Every watch has synced once.
    pub synced: AtomicBool,
    /// Milliseconds since the epoch when the current reconcile started; 0 when idle. `/healthz` fails
    /// when one reconcile has been running far longer than any call's timeout.
    pub busy_since_ms: AtomicU64,
}

pub struct Worker {
    client: Client,
    /// The flags (namespace, address types, drift period, graces, `--stable-node-set`).
    config: Config,
    cache: Cache,
    queue: Queue<Key>,
    /// The resources (plural names) whose watch has delivered its first snapshot.
    synced: BTreeSet<&'static str>,
    leadership: Arc<Leadership>,
    events: EventLimiter,
    /// Repeats of an Event update the one already posted (`event_correlator`).
    correlator: super::event_correlator::Correlator,
    /// Runs every reconcile's I/O; what it runs is in `in_flight` until its `Event::Io` is applied.
    pool: Pool,
    in_flight: BTreeMap<u64, Pending>,
    /// The pool job and updater endpoint of a drift check's repairs in flight: no reconcile
    /// starts meanwhile (one could push a backend a repair decided earlier would overwrite).
    repairing: Option<(u64, String)>,
    next_job: u64,
    health: Arc<Health>,
    stats: Arc<Stats>,
    shutdown: bool,
    /// Counts leadership changes: a plan decided in one term is not run in another (shared with the
    /// I/O pool, which checks it before each action).
    term: Arc<AtomicU64>,
    /// The elector's last word (`Event::Leadership`): while it says leading but the renew deadline
    /// has passed, a renewal still running may end the lapse without another event.
    elected: bool,
    /// Our writes run ahead of the watch: until it delivers what a write returned, older events for
    /// that object would roll the cache back (and cause a second updater call or a second release).
    awaiting_lbs: BTreeMap<Key, Awaiting>,
    awaiting_services: BTreeMap<Key, Awaiting>,
    /// LoadBalancer creates and spec patches that got no answer (the connection broke, a timeout, a
    /// 5xx) or AlreadyExists: the server may hold, or commit later, ports the cache does not know,
    /// so nothing is reconciled (and no port allocated) until each is settled (see
    /// `resolve_in_doubt`).
    in_doubt: BTreeMap<Key, Action>,
    /// Updater credentials, their Secrets, and drift checks (see `worker_updaters.rs`).
    auth: UpdaterState,
    /// What the LB host prober probes (the hosts of several-host configs).
    probes: Arc<super::host_probe::Targets>,
    /// LoadBalancerConfigs whose `Accepted` condition must be looked at (see `config_status`); a
    /// failed write comes back after the queue's backoff.
    configs: Queue<Key>,
}

/// What the watch must deliver before its updates of one object are believed again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Awaiting {
    /// The resourceVersion our write returned.
    Version(String),
    /// We deleted the object with this uid: its remaining updates are stale until DELETED arrives.
    Deleted(String),
}

impl Worker {
    /// `io_tx`: the sending side of the channel `run` reads; the I/O pool reports through it.
    pub fn new(
        client: Client,
        config: Config,
        leadership: Arc<Leadership>,
        health: Arc<Health>,
        stats: Arc<Stats>,
        io_tx: Sender<Event>,
    ) -> Worker {
        let term = Arc::new(AtomicU64::new(0));
        let probes = Arc::new(super::host_probe::Targets::default());
        let interval =
            super::host_probe::interval_for(Duration::from_millis(config.ctx.host_grace_ms));
        if let Err(e) = super::host_probe::spawn(&probes, interval, {
            let tx = io_tx.clone();
            move |p| tx.send(Event::HostProbe(p)).is_ok()
        }) {
            log::warn!(
                "no LB host probes (several-host configs fail over on call errors only): {e}"
            );
        }
        let pool = Pool::new(
            client.clone(),
            term.clone(),
            stats.clone(),
            leadership.clone(),
            move |done| {
                let _ = io_tx.send(Event::Io(Box::new(done)));
            },
        );
        Worker {
            pool,
            in_flight: BTreeMap::new(),
            repairing: None,
            next_job: 0,
            client,
            cache: Cache::default(),
            queue: Queue::default(),
            synced: BTreeSet::new(),
            leadership,
            events: EventLimiter::default(),
            correlator: Default::default(),
            health,
            stats,
            shutdown: false,
            term,
            elected: false,
            awaiting_lbs: BTreeMap::new(),
            awaiting_services: BTreeMap::new(),
            in_doubt: BTreeMap::new(),
            configs: Queue::with_backoff(CONFIG_RETRY_FIRST, CONFIG_RETRY_MAX),
            auth: UpdaterState {
                timers: Timers::new(config.updater_resync),
                probes_stale: true,
                ..UpdaterState::default()
            },
            probes,
            config,
        }
    }

    /// Runs until `Event::Shutdown` (the I/O pool holds a sender, so the channel stays open while
    /// the worker lives).
    pub fn run(mut self, rx: Receiver<Event>) {
        loop {
            // Nothing due: a wait without end (`recv_timeout` then waits as `recv` does).
            let wait = self.next_deadline().map_or(Duration::MAX, |at| {
                at.saturating_duration_since(Instant::now())
            });
            match rx.recv_timeout(wait) {
                Ok(ev) => self.handle(ev),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Take everything already waiting before deciding: a relist or a burst becomes one pass.
            self.drain(&rx);
            if self.shutdown {
                self.finish_in_flight(&rx);
                return;
            }
            if !self.all_synced() || !self.leadership.is_leader() {
                continue;
            }
            self.wake_expired_hosts();
            let mut worked = false;
            while self.repairing.is_none()
                && let Some(key) = self.queue.get(Instant::now())
            {
                // A config's status goes first: it must not wait for the queue to drain (1,000
                // failing LoadBalancers never let it).
                self.report_configs();
                worked = true;
                self.process(&key);
                self.mark_busy();
                // As many plans in flight as allowed: apply answers (and whatever else arrives)
                // until one is done.
                while self.in_flight.len() >= MAX_IN_FLIGHT && !self.shutdown {
                    match rx.recv() {
                        Ok(ev) => self.handle(ev),
                        Err(_) => return,
                    }
                }
                self.drain(&rx);
                if self.shutdown {
                    // Decided but not started: left to the next leader. Started: finished.
                    self.finish_in_flight(&rx);
                    return;
                }
                if !self.leadership.is_leader() {
                    break;
                }
            }
            self.report_configs();
            // Drift checks run when no reconcile is ready or in flight: they compare with settled
            // state.
            if self.queue.is_empty()
                && self.in_flight.is_empty()
                && self.repairing.is_none()
                && self.leadership.is_leader()
            {
                self.run_due_resyncs();
            }
            self.stats.queue_depth.set(&[], self.queue.len() as f64);
            // A scan of every LoadBalancer: once per batch of work, not on every watch event.
            if worked {
                self.stats.observe_cache(&self.cache);
            }
        }
    }

    /// Applies every waiting event. (The channel cannot close while the worker lives: its pool
    /// holds a sender; were it closed, the next `recv_timeout` in `run` would say so.)
    fn drain(&mut self, rx: &Receiver<Event>) {
        while let Ok(ev) = rx.try_recv() {
            self.handle(ev);
        }
    }

    fn handle(&mut self, ev: Event) {
        let affected = match ev {
            Event::Services(m) => {
                match fresh(&mut self.awaiting_services, &self.cache.services, m, |s| {
                    &s.metadata
                }) {
                    Some(m) => self.watch_msg(
                        SERVICES.plural,
                        m,
                        Cache::replace_services,
                        Cache::apply_service,
                        |c, s| c.delete_service(&Key::of(&s.metadata)),
                    ),
                    None => Affected::new(),
                }
            }
            Event::Nodes(m) => self.watch_msg(
                NODES.plural,
                m,
                Cache::replace_nodes,
                Cache::apply_node,
                |c, n| c.delete_node(&n.metadata.name),
            ),
            Event::LoadBalancers(m) => {
                match fresh(&mut self.awaiting_lbs, &self.cache.load_balancers, m, |l| {
                    &l.metadata
                }) {
                    Some(m) => self.watch_msg(
                        LOADBALANCERS.plural,
                        m,
                        Cache::replace_load_balancers,
                        Cache::apply_load_balancer,
                        |c, l| c.delete_load_balancer(&Key::of(&l.metadata)),
                    ),
                    None => Affected::new(),
                }
            }
            Event::Configs(m) => {
                let changed = match &m {
                    WatchMsg::Restarted(items, _) => &items[..],
                    WatchMsg::Applied(c) | WatchMsg::Deleted(c) => std::slice::from_ref(c),
                };
                changed
                    .iter()
                    .for_each(|c| self.configs.add(Key::of(&c.metadata)));
                let affected = self.watch_msg(
                    LOADBALANCERCONFIGS.plural,
                    m,
                    Cache::replace_configs,
                    Cache::apply_config,
                    |c, x| c.delete_config(&Key::of(&x.metadata)),
                );
                self.configs_changed();
                affected
            }
            Event::Secrets(m) => self.secrets_changed(m),
            Event::Slices(m) => self.watch_msg(
                ENDPOINTSLICES.plural,
                m,
                Cache::replace_endpoint_slices,
                Cache::apply_endpoint_slice,
                |c, s| c.delete_endpoint_slice(&Key::of(&s.metadata)),
            ),
            Event::Leadership(true) => {
                self.term.fetch_add(1, Ordering::SeqCst);
                self.elected = true;
                // A new term checks every updater again, the Go ones included (once).
                self.auth.started = false;
                self.auth.unsupported.clear();
                // A new leader trusts nothing it skipped as a follower: look at every key once.
                log::info!("leader: reconciling all {} keys", self.all_keys().len());
                for key in self.cache.configs.keys() {
                    self.configs.add(key.clone());
                }
                self.all_keys()
            }
            Event::Leadership(false) => {
                self.term.fetch_add(1, Ordering::SeqCst);
                self.elected = false;
                // Not ours to settle: re-sent in a later term, a create could take back a port
                // another leader gave away meanwhile (that leader settled it from its own lists).
                self.in_doubt.clear();
                // Leave the gauges as of now rather than as of the last batch of work as leader.
                self.stats.queue_depth.set(&[], self.queue.len() as f64);
                self.stats.observe_cache(&self.cache);
                Affected::new()
            }
            Event::Shutdown => {
                log::info!("worker: shutting down after the current reconcile");
                self.shutdown = true;
                Affected::new()
            }
            Event::Io(done) => {
                self.io_done(*done);
                Affected::new()
            }
            Event::HostProbe(p) if p.ok => self.host_answered(&p.endpoint),
            Event::HostProbe(p) => {
                self.host_failing(&p.endpoint, p.last_ok_ms);
                Affected::new()
            }
        };
        self.requeue(affected);
    }

    fn watch_msg<T>(
        &mut self,
        kind: &'static str,
        msg: WatchMsg<T>,
        replace: fn(&mut Cache, Vec<T>) -> Affected,
        apply: fn(&mut Cache, T) -> Affected,
        delete: fn(&mut Cache, &T) -> Affected,
    ) -> Affected {
        match msg {
            WatchMsg::Restarted(items, _) => {
                let affected = replace(&mut self.cache, items);
                self.note_synced(kind).unwrap_or(affected)
            }
            WatchMsg::Applied(obj) => apply(&mut self.cache, obj),
            WatchMsg::Deleted(obj) => delete(&mut self.cache, &obj),
        }
    }

    /// Watch `kind` delivered a snapshot: after the first of every watch, all keys.
    fn note_synced(&mut self, kind: &'static str) -> Option<Affected> {
        let first = self.synced.insert(kind);
        if !first || !self.all_synced() {
            return None;
        }
        log::info!(
            "all watches synced: services={} nodes={} loadbalancers={} configs={}",
            self.cache.services.len(),
            self.cache.nodes.len(),
            self.cache.load_balancers.len(),
            self.cache.configs.len()
        );
        self.health.synced.store(true, Ordering::Relaxed);
        Some(self.all_keys())
    }

    /// Writes the `Accepted` condition of every config due for it whose status is out of date (see
    /// `config_status`); a failed write is queued again after its backoff (0.5 s doubling to 60 s).
    /// The answer is not put into the cache: the watch delivers it, and `report` then finds nothing
    /// to do.
    fn report_configs(&mut self) {
        let now = rfc3339(SystemTime::now());
        while let Some(key) = self.configs.get(Instant::now()) {
            let plan = (self.cache.configs.get(&key)).and_then(|c| config_status::report(c, &now));
            if let Some(plan) = plan
                && let Err(Stop::Api { error: e, .. }) = self.execute(&plan)
                && !e.is_not_found()
            {
                let delay = self.configs.add_rate_limited(key.clone(), Instant::now());
                log::warn!(
                    "LoadBalancerConfig {key}: status not written ({e}); retrying in {delay:?}"
                );
            } else {
                self.configs.forget(&key);
            }
            self.configs.done(&key);
        }
    }

    fn all_synced(&self) -> bool {
        self.synced.len() == KINDS
    }

    fn all_keys(&self) -> Affected {
        self.cache
            .services
            .keys()
            .chain(self.cache.load_balancers.keys())
            .cloned()
            .collect()
    }

    fn context(&self) -> Context {
        let now = SystemTime::now();
        let mut ctx = self.config.ctx.clone();
        ctx.now = rfc3339(now);
        ctx.without_checks = self.auth.unsupported.clone();
        ctx.now_ms = epoch_ms(now);
        ctx.failing = self.auth.failing.clone();
        ctx
    }

    /// One reconcile of one key: decide, and hand the plan to the pool; the key stays processing
    /// until its answers are applied (`io_done`), which requeues it with backoff on failure. A plan
    /// that would call an updater that does not answer while a plan calling it is in flight is not
    /// run: the key comes back when that plan ends or the updater answers, so a dead LB host holds
    /// one plan on the pool (after the first round of calls to it time out), not all of it.
    fn process(&mut self, key: &Key) {
        if !self.resolve_in_doubt() {
            // Still unsettled: a port allocated now could be one the server gave away meanwhile.
            self.queue.add_rate_limited(key.clone(), Instant::now());
            self.queue.done(key);
            return;
        }
        let started = Instant::now();
        self.health
            .busy_since_ms
            .store(epoch_ms(SystemTime::now()), Ordering::Relaxed);
        let ctx = self.context();
        let plan = reconcile(&self.cache, key, &ctx);
        if plan.is_empty() {
            self.finish(key, &ctx, &plan, Ok(()), started);
            self.queue.done(key);
            return;
        }
        // Only while an updater does not answer does a plan need to say which it calls.
        let calls = if self.auth.failing.is_empty() {
            Vec::new()
        } else {
            plan.updater_endpoints(false)
        };
        if let Some(e) = calls.iter().find(|e| self.held_up(e)) {
            // No call, no write: the plan in flight finds out whether it answers again, and the
            // key is queued again when it ends (`io_done`).
            log::debug!("key={key}: updater {e} does not answer and a call to it is in flight");
            self.auth.deferred.insert(key.clone());
            self.queue.done(key);
            return;
        }
        let (events, updaters) = self.prepare(&plan);
        self.next_job += 1;
        let pending = Pending {
            key: key.clone(),
            ctx,
            started,
            term: self.term.load(Ordering::SeqCst),
            calls,
        };
        self.in_flight.insert(self.next_job, pending);
        self.pool.submit(self.next_job, plan, events, updaters);
    }

    /// What a plan's I/O needs from the worker, decided here before it starts: the updater
    /// clients, the Events past the rate limit, and the reservation of the ports its writes add, so
    /// that the next decision, made while it is in flight on the pool, cannot pick them.
    fn prepare(&mut self, plan: &Plan) -> (Vec<Option<crate::model::Event>>, Clients) {
        let mut events = Vec::with_capacity(plan.actions.len());
        let mut updaters = Clients::new();
        for action in &plan.actions {
            self.cache
                .reserve_ports(batch::reservation(&self.cache, action));
            events.push(match action {
                // Past the rate limit (else None), then counted as a repeat or named anew.
                Action::Event(spec) => {
                    let object = super::events::object_key(&spec.object);
                    if !self.events.allow(&object, &spec.reason, Instant::now()) {
                        log::debug!(
                            "event dropped by rate limit object={object} reason={}",
                            spec.reason
                        );
                        None
                    } else {
                        let nanos = SystemTime::now().duration_since(UNIX_EPOCH);
                        let nanos = nanos.map_or(0, |d| d.as_nanos() as u64);
                        let now = rfc3339(SystemTime::now());
                        Some(self.correlator.correlate(spec, &now, nanos))
                    }
                }
                Action::UpdaterApply { key, url, .. } | Action::UpdaterDelete { key, url, .. } => {
                    let client = self.updater(&self.config_of(key), url);
                    updaters.insert(url.clone(), client);
                    None
                }
                _ => None,
            });
        }
        (events, updaters)
    }

    /// Runs a plan here, with the executor the pool uses, and applies its answers.
    fn execute(&mut self, plan: &Plan) -> Result<(), Stop> {
        let (events, updaters) = self.prepare(plan);
        let (answers, result) = batch::run(&self.pool.io(&updaters), plan, &events);
        self.apply_outcome(plan, &events, answers, &result);
        result
    }

    /// Applies a finished pool plan's answers to the cache and finishes its key as `process`
    /// would have.
    fn io_done(&mut self, done: Done) {
        if let Some((_, endpoint)) = self.repairing.take_if(|(id, _)| *id == done.id) {
            return self.repaired(&endpoint, done);
        }
        let Some(job) = self.in_flight.remove(&done.id) else {
            return;
        };
        let (answers, result) = done.outcome;
        self.apply_outcome(&done.plan, &done.events, answers, &result);
        // A write left in doubt in an earlier term is not ours to settle (see `Leadership(false)`).
        if job.term != self.term.load(Ordering::SeqCst) {
            self.in_doubt.remove(&job.key);
        }
        self.finish(&job.key, &job.ctx, &done.plan, result, job.started);
        self.queue.done(&job.key);
        // It called an updater that still does not answer: the keys held back for one (`process`)
        // are queued again, and the first to call it goes next.
        if job.calls.iter().any(|e| self.auth.failing.contains_key(e)) {
            let held = std::mem::take(&mut self.auth.deferred);
            self.requeue(held);
        }
        self.mark_busy();
    }

    /// The one place a plan's answers reach the cache, in the plan's order, wherever it ran.
    fn apply_outcome(
        &mut self,
        plan: &Plan,
        events: &[Option<crate::model::Event>],
        answers: Vec<Answer>,
        result: &Result<(), Stop>,
    ) {
        // The answers are those of the actions that ran, in order (a status pair sent together
        // whose first patch failed may have sent the second unanswered, but Events are never sent
        // in a group): an Event after them was never sent, so it gives its rate-limit token back,
        // and is not a repeat.
        for (action, event) in plan.actions.iter().zip(events).skip(answers.len()) {
            if let (Action::Event(spec), Some(_)) = (action, event) {
                let object = super::events::object_key(&spec.object);
                self.events.refund(&object, &spec.reason);
                self.correlator.unsent(spec);
            }
        }
        // A create, or a spec patch that adds a claim, that failed: the server may hold, or still
        // commit, ports the cache does not know, unless the answer says the write was refused
        // (AlreadyExists does not). A spec patch that keeps every port claim cannot.
        if let Err(Stop::Api { index, error: e }) = result
            && let Some(action) = plan.actions.get(*index)
            && let Action::CreateLoadBalancer { key, .. }
            | Action::PatchLoadBalancerSpec { key, .. } = action
            && (matches!(action, Action::CreateLoadBalancer { .. })
                || !batch::reservation(&self.cache, action).is_empty())
            && (!matches!(e.code(), Some(c) if (400..500).contains(&c)) || e.is_already_exists())
        {
            self.in_doubt.insert(key.clone(), action.clone());
        }
        for (action, answer) in plan.actions.iter().zip(answers) {
            self.apply_answer(action, answer);
        }
        // Its reservations end with it: a port it let go may serve a waiting Service now.
        for action in &plan.actions {
            if let Action::CreateLoadBalancer { key, .. }
            | Action::PatchLoadBalancerSpec { key, .. } = action
            {
                let affected = self.cache.release_ports(key);
                self.requeue(affected);
            }
        }
    }

    /// Applies one action's answer to the cache.
    fn apply_answer(&mut self, action: &Action, answer: Answer) {
        let Answer::Object(object) = answer else {
            return;
        };
        if let Action::PatchServiceStatus { key, .. } = action {
            match object.map(|v| serde_json::from_str(v.get())) {
                Some(Ok(svc)) => self.applied_service_status(key, svc),
                Some(Err(e)) => log::warn!("decoding a write's answer key={key} error={e}"),
                None => {}
            }
            return;
        }
        let lb = object.map(|v| serde_json::from_str::<LoadBalancer>(v.get()));
        match (action, lb) {
            (Action::DeleteLoadBalancer { key, .. }, lb) => {
                log::info!("deleted LoadBalancer key={key}");
                // With a finalizer still on it (someone else's), the answer is the object, now
                // marked for deletion; otherwise (a Success Status, or 404) it is gone: forget it
                // now, or the next reconcile would release it a second time before the watch
                // says so.
                match lb
                    .and_then(Result::ok)
                    .filter(|lb| lb.metadata.is_deleting())
                {
                    Some(lb) => self.applied_lb(lb, true),
                    None => {
                        if let Some(old) = self.cache.load_balancers.get(key) {
                            self.forget_lb(key, old.metadata.uid.clone());
                        }
                    }
                }
            }
            // The write happened; its watch event brings the object instead.
            (_, Some(Err(e))) => log::warn!("decoding a write's answer error={e}"),
            (Action::PatchLoadBalancerStatus { key, .. }, Some(Ok(lb))) => {
                self.applied_lb_status(key, lb)
            }
            // The last finalizer is gone: the object no longer exists (the answer echoes it).
            (Action::PatchFinalizers { key, .. }, Some(Ok(lb)))
                if lb.metadata.is_deleting() && lb.metadata.finalizers.is_empty() =>
            {
                log::info!("released LoadBalancer key={key}");
                self.forget_lb(key, lb.metadata.uid);
            }
            (Action::CreateLoadBalancer { key, .. }, Some(Ok(lb))) => {
                log::info!("created LoadBalancer key={key}");
                self.applied_lb(lb, true);
            }
            (_, Some(Ok(lb))) => self.applied_lb(lb, true),
            (_, None) => {}
        }
    }

    /// Waits for every plan in flight and applies it (at shutdown; other events are dropped).
    fn finish_in_flight(&mut self, rx: &Receiver<Event>) {
        while !self.in_flight.is_empty() || self.repairing.is_some() {
            match rx.recv() {
                Ok(Event::Io(done)) => self.io_done(*done),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// `/healthz` looks at the oldest plan still in flight (0: none, and nothing running here).
    fn mark_busy(&self) {
        if let Some(oldest) = self.in_flight.values().map(|p| p.started).min() {
            let since =
                epoch_ms(SystemTime::now()).saturating_sub(oldest.elapsed().as_millis() as u64);
            self.health.busy_since_ms.store(since, Ordering::Relaxed);
        }
    }

    /// Records how a key's plan ended: backoff, fallback status on updater errors, stats.
    fn finish(
        &mut self,
        key: &Key,
        ctx: &Context,
        plan: &Plan,
        result: Result<(), Stop>,
        started: Instant,
    ) {
        let outcome = match result {
            Ok(()) => {
                self.queue.forget(key);
                // An updater it called that had not answered before is checked now.
                if !self.auth.failing.is_empty() {
                    for e in plan.updater_endpoints(true) {
                        let affected = self.host_answered(&e);
                        self.requeue(affected);
                    }
                }
                if plan.is_empty() { "noop" } else { "applied" }
            }
            Err(Stop::NotLeader) => {
                self.queue.add(key.clone());
                "not_leader"
            }
            Err(Stop::Updater { index, error }) => {
                log::warn!("updater failed key={key} error={:?}", error.to_string());
                let auth = self.updater_failed(plan, index, &error);
                let message = auth
                    .as_ref()
                    .map_or(error.to_string(), |p| p.message.clone());
                let fallback =
                    on_updater_error(&self.cache, key, ctx, plan, index, &message, auth.as_ref());
                if let Err(Stop::Api { error, .. }) = self.execute(&fallback) {
                    log::warn!("recording updater failure key={key} error={error}");
                }
                self.queue.add_rate_limited(key.clone(), Instant::now());
                "updater_error"
            }
            Err(Stop::Api { index, error: e }) => {
                let retry_after = e.retry_after().unwrap_or_default();
                let delay =
                    self.queue
                        .add_rate_limited_at_least(key.clone(), retry_after, Instant::now());
                if e.is_conflict() || e.is_already_exists() {
                    log::debug!("stale write key={key} error={e}; retrying from fresh state");
                    "conflict"
                } else {
                    log::warn!("reconcile failed key={key} error={e} retry_in={delay:?}");
                    // A LoadBalancer write refused as sent (not gone, a race, throttled or our
                    // credentials): sending it again will not help, so the Service's Events say why.
                    let lb_write = matches!(
                        plan.actions.get(index),
                        Some(
                            Action::CreateLoadBalancer { .. }
                                | Action::PatchLoadBalancerSpec { .. }
                                | Action::PatchFinalizers { .. }
                        )
                    );
                    let refused = |c: u16| c / 100 == 4 && ![401, 404, 409, 429].contains(&c);
                    if lb_write && e.code().is_some_and(refused) {
                        let _ = self.execute(&on_write_refused(&self.cache, key, &e));
                    }
                    "api_error"
                }
            }
        };
        self.stats.reconciled(outcome, started.elapsed());
        self.health.busy_since_ms.store(0, Ordering::Relaxed);
    }

    /// Settles every write in doubt by sending it again, with the same resourceVersion precondition
    /// (a create cannot be made twice): of the two copies exactly one can land, and this one is
    /// answered, so the late commit of the first copy can no longer surprise the cache. When the
    /// first copy (or another writer) got there first, the answer is a conflict: read the object.
    /// False while one cannot be settled (the API is unreachable or throttles).
    fn resolve_in_doubt(&mut self) -> bool {
        if !self.leadership.is_leader() {
            // Not ours to write any more; the next leader starts from its own fresh lists.
            self.in_doubt.clear();
            return true;
        }
        while let Some((key, action)) = self.in_doubt.pop_first() {
            let e = match batch::execute_action(&self.pool.io(&Clients::new()), 0, &action, &[]) {
                Ok(answer) => {
                    self.apply_answer(&action, answer);
                    log::info!("re-sent an unanswered write key={key}");
                    continue;
                }
                Err(Stop::Api { error, .. }) => error,
                Err(_) => continue, // only API writes are ever in doubt
            };
            match e {
                e if e.is_conflict() || e.is_already_exists() => {
                    let path = LOADBALANCERS.path(Some(&key.namespace), Some(&key.name), None);
                    match self.client.get::<LoadBalancer>(&path) {
                        Ok(lb) => {
                            log::info!("re-read LoadBalancer after an unanswered write key={key}");
                            self.applied_lb(lb, true);
                        }
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            log::warn!("re-reading LoadBalancer key={key} error={e}");
                            self.in_doubt.insert(key, action);
                            return false;
                        }
                    }
                }
                // Throttled (not done, and the first copy may still land), or no answer again.
                e if !matches!(e.code(), Some(c) if (400..500).contains(&c) && c != 429) => {
                    self.in_doubt.insert(key, action);
                    return false;
                }
                // Refused (gone, invalid): the first copy is refused the same way.
                e => log::info!("unanswered write refused when re-sent key={key} error={e}"),
            }
        }
        true
    }

    /// The answer to our status patch of a LoadBalancer.
    fn applied_lb_status(&mut self, key: &Key, lb: LoadBalancer) {
        if let Some(phase) = lb.status.phase.as_deref() {
            log::info!("LoadBalancer key={key} phase={phase}");
        }
        // A status that says "applied" (READY for this generation) ends its plan: every step that
        // follows from it (the Service's ingress) is in the same plan, so look at the key again only
        // if the answer shows someone else's change (which the watch, behind our newer version,
        // would not report). Any other status (unconfirmed backends recorded before a spec change,
        // an error) leaves work for the next reconcile.
        let again =
            !is_applied(&lb)
                || self.cache.load_balancers.get(key).is_none_or(|old| {
                    old.spec != lb.spec || !same_meta(&old.metadata, &lb.metadata)
                });
        self.applied_lb(lb, again);
    }

    /// The answer to our status patch of a Service.
    fn applied_service_status(&mut self, key: &Key, svc: Service) {
        log::info!("updated Service status key={key}");
        // Gone from the cache since the plan was decided: the watch deleted it after our write.
        let Some(old) = self.cache.services.get(key) else {
            log::debug!("the watch is past a write's answer key={key}");
            return;
        };
        if !accept(
            &mut self.awaiting_services,
            Some(&old.metadata),
            &svc.metadata,
        ) {
            return;
        }
        // As for the LoadBalancer's status: only someone else's change needs a look.
        let others = old.spec != svc.spec || !same_meta(&old.metadata, &svc.metadata);
        let affected = self.cache.apply_service(svc);
        if others {
            self.requeue(affected);
        }
    }

    /// Applies a write's answer to the cache; `requeue`: reconcile the key again afterwards.
    fn applied_lb(&mut self, lb: LoadBalancer, requeue: bool) {
        let old = self.cache.load_balancers.get(&Key::of(&lb.metadata));
        if !accept(
            &mut self.awaiting_lbs,
            old.map(|l| &l.metadata),
            &lb.metadata,
        ) {
            return;
        }
        let affected = self.cache.apply_load_balancer(lb);
        if requeue {
            self.requeue(affected);
        }
    }

    /// We deleted LoadBalancer `key` (uid `uid`): it leaves the cache now, and the watch's updates
    /// of it are stale until its DELETED arrives.
    fn forget_lb(&mut self, key: &Key, uid: String) {
        self.awaiting_lbs
            .insert(key.clone(), Awaiting::Deleted(uid));
        let affected = self.cache.delete_load_balancer(key);
        self.requeue(affected);
    }

    fn requeue(&mut self, keys: impl IntoIterator<Item = Key>) {
        for key in keys {
            self.queue.add(key);
        }
    }
}

/// What `finish` needs of a plan on the I/O pool (the plan travels with the job).
struct Pending {
    key: Key,
    ctx: Context,
    started: Instant,
    /// The leadership term it was decided in.
    term: u64,
    /// The updater endpoints it calls, listed only while one is failing (`process`).
    calls: Vec<String>,
}

/// Whether a write's answer (`new`) may enter the cache over what it holds (`old`): not when it is
/// older. The I/O pool's answers are applied when the whole plan is done, and the watch may have
/// delivered that write and a later change (a user's edit, a delete) meanwhile: applying the answer
/// then would roll the cache back and wait for a version the watch has already passed, so every
/// later update of the object would be ignored until a relist. resourceVersions are etcd revisions
/// (decimal numbers); any that is not is never called older. An answer that enters is awaited from
/// the watch, unless the write changed nothing (a no-op write keeps the resourceVersion and sends
/// no event).
fn accept(
    awaiting: &mut BTreeMap<Key, Awaiting>,
    old: Option<&crate::model::ObjectMeta>,
    new: &crate::model::ObjectMeta,
) -> bool {
    let rv = |m: &crate::model::ObjectMeta| version(&m.resource_version);
    if let Some((cached, answer)) = old.and_then(rv).zip(rv(new))
        && answer < cached
    {
        log::debug!("the watch is past a write's answer key={}", Key::of(new));
        return false;
    }
    if old.is_none_or(|o| o.resource_version != new.resource_version) {
        let version = Awaiting::Version(new.resource_version.clone());
        awaiting.insert(Key::of(new), version);
    }
    true
}

/// Whether two versions of an object's metadata differ only in resourceVersion (and managedFields,
/// which we do not model): what a write of our own to the status subresource changes.
fn same_meta(old: &crate::model::ObjectMeta, new: &crate::model::ObjectMeta) -> bool {
    let mut old = old.clone();
    old.resource_version.clone_from(&new.resource_version);
    old == *new
}

/// The watch message, or None when it is an update older than our own write. A DELETED event ends
/// its key's wait, a relist every wait it covers; a write of ours newer than the list stays as
/// answered (`cached`) and awaited, as the watch from the list's version brings it: else the relist
/// would roll it back, and a port our create holds would be free to give to another Service.
fn fresh<T: Clone>(
    awaiting: &mut BTreeMap<Key, Awaiting>,
    cached: &BTreeMap<Key, Box<T>>,
    mut msg: WatchMsg<T>,
    meta: fn(&T) -> &crate::model::ObjectMeta,
) -> Option<WatchMsg<T>> {
    match &mut msg {
        WatchMsg::Applied(obj) => {
            let m = meta(obj);
            let key = Key::of(m);
            let stale = match awaiting.get(&key) {
                None => false,
                Some(Awaiting::Version(rv)) => *rv != m.resource_version,
                Some(Awaiting::Deleted(uid)) => *uid == m.uid,
            };
            if stale {
                log::debug!("ignoring a watch update older than our own write key={key}");
                return None;
            }
            awaiting.remove(&key);
        }
        WatchMsg::Deleted(obj) => {
            let m = meta(obj);
            let key = Key::of(m);
            // The delete of an earlier object of that name, after our create of the next one was
            // answered: not the cached one's (its port would be free until its ADDED came).
            if cached.get(&key).is_some_and(|c| meta(c).uid != m.uid) {
                log::debug!("ignoring the delete of an earlier object key={key}");
                return None;
            }
            awaiting.remove(&key);
        }
        WatchMsg::Restarted(items, listed) => {
            let newer = |rv: &str| version(rv).zip(version(listed)).is_some_and(|(a, l)| a > l);
            awaiting.retain(|_, a| matches!(a, Awaiting::Version(rv) if newer(rv)));
            items.retain(|i| !awaiting.contains_key(&Key::of(meta(i))));
            items.extend(
                awaiting
                    .keys()
                    .filter_map(|k| Some((**cached.get(k)?).clone())),
            );
        }
    }
    Some(msg)
}

/// A resourceVersion as a number (etcd revisions are decimal; any other is never compared).
fn version(rv: &str) -> Option<u64> {
    rv.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadBalancer;

    fn lb(name: &str, rv: &str) -> LoadBalancer {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "ns", "name": name, "resourceVersion": rv},
            "spec": {"host": "h", "port": 8101, "protocol": "TCP",
                "ports": [{"name": "", "port": 8101, "protocol": "TCP"}]},
        }))
        .unwrap()
    }

    /// A synced worker with a key and a config whose retries fell due 5 s ago, and no API server.
    fn worker(leadership: Arc<Leadership>) -> Worker {
        let config = crate::kube::testutil::config("http://127.0.0.1:1");
        let client = Client::new(&config, Default::default()).unwrap();
        let flags = crate::controller::cli::parse(&[], Default::default(), "pod-a");
        let stats = Arc::new(Stats::new(Arc::default(), leadership.clone()));
        let (tx, _) = std::sync::mpsc::channel();
        let config = flags.unwrap().unwrap();
        let mut w = Worker::new(client, config, leadership, Arc::default(), stats, tx);
        let all = [SERVICES, NODES, LOADBALANCERS, LOADBALANCERCONFIGS];
        let all = all
            .into_iter()
            .chain([ENDPOINTSLICES, crate::kube::client::SECRETS]);
        w.synced = all.map(|r| r.plural).collect();
        let past = Instant::now() - Duration::from_secs(5);
        w.queue.add_rate_limited(Key::new("ns", "a"), past);
        w.configs.add_rate_limited(Key::new("ns", "c"), past);
        w
    }

    /// A key or config whose retry has fallen due is not a deadline while the worker cannot take it
    /// (a standby, or repairs in flight): `run` would wake at once, again and again.
    #[test]
    fn keys_the_worker_cannot_take_set_no_deadline() {
        let mut standby = worker(Leadership::elected(Duration::from_secs(10)));
        assert_eq!(standby.next_deadline(), None);
        // Elected, but past the renew deadline: a second from now, not at once and not never.
        standby.handle(Event::Leadership(true));
        let lapse = standby.next_deadline().expect("a deadline during a lapse");
        assert!(lapse > Instant::now() + Duration::from_millis(500));
        let mut repairing = worker(Leadership::always());
        repairing.repairing = Some((1, "http://127.0.0.1:1".into()));
        // The config's retry is still taken (its status is written while repairs run).
        assert_eq!(repairing.next_deadline(), repairing.configs.next_deadline());
        repairing.repairing = None;
        assert!(repairing.next_deadline() <= repairing.queue.next_deadline());
    }

    /// A key made ready outside an event (a drift check's requeue of a host that answers again)
    /// is due at once: `run` must not wait for the next watch event to take it.
    #[test]
    fn a_key_queued_outside_an_event_is_due_at_once() {
        let mut w = worker(Leadership::always());
        let now = Instant::now();
        for (queue, key) in [(&mut w.queue, "a"), (&mut w.configs, "c")] {
            assert_eq!(queue.get(now), Some(Key::new("ns", key)));
            queue.done(&Key::new("ns", key));
        }
        assert_eq!(w.next_deadline(), None, "nothing queued");
        w.requeue([Key::new("ns", "b")]);
        assert!(w.next_deadline().is_some_and(|at| at <= Instant::now()));
    }

    /// A write left in doubt is not re-sent in a later term.
    #[test]
    fn leadership_lost_forgets_the_writes_in_doubt() {
        let mut w = worker(Leadership::always());
        let key = Key::new("ns", "k");
        let create = Action::CreateLoadBalancer {
            key: key.clone(),
            object: serde_json::json!({}),
        };
        w.in_doubt.insert(key.clone(), create.clone());
        w.handle(Event::Leadership(false));
        assert!(w.in_doubt.is_empty());

        // A create still on the pool then is not put in doubt when its answer is a timeout.
        let pending = Pending {
            key: key.clone(),
            ctx: w.context(),
            started: Instant::now(),
            term: w.term.load(Ordering::SeqCst),
            calls: Vec::new(),
        };
        w.in_flight.insert(7, pending);
        w.handle(Event::Leadership(false));
        let timeout = crate::kube::Error::Timeout {
            server: "s".into(),
            what: "POST".into(),
        };
        w.io_done(Done {
            id: 7,
            plan: Plan::of(create),
            events: vec![None],
            outcome: (
                vec![],
                Err(Stop::Api {
                    index: 0,
                    error: timeout,
                }),
            ),
        });
        assert!(w.in_doubt.is_empty());
    }

    /// While an updater does not answer, a plan calling it is held back only when another is in
    /// flight (that one finds out whether it answers again); the keys held back are queued again
    /// when it answers, also one whose LoadBalancer no longer names it (a backend left on an old
    /// URL).
    #[test]
    fn keys_held_back_for_an_updater_that_does_not_answer_come_back_when_it_answers() {
        let mut w = worker(Leadership::always());
        let e = "http://127.0.0.1:9/api/v1/lb";
        w.host_failing(e, 0);
        assert!(
            !w.held_up(e),
            "nothing in flight calls it: the next plan may"
        );
        let pending = Pending {
            key: Key::new("ns", "probe"),
            ctx: w.context(),
            started: Instant::now(),
            term: 0,
            calls: vec![e.to_string()],
        };
        w.in_flight.insert(1, pending);
        assert!(w.held_up(e));
        assert!(
            !w.held_up("http://127.0.0.1:8/api/v1/lb"),
            "an updater that answers"
        );
        let held = Key::new("ns", "held");
        w.auth.deferred.insert(held.clone());
        assert!(w.host_answered(e).contains(&held));
        assert!(!w.held_up(e) && w.auth.deferred.is_empty());

        // The plan in flight ends and the updater still does not answer: the keys held back are
        // queued again (not left to wait for a backoff they never earned).
        w.host_failing(e, 0);
        w.auth.deferred.insert(held.clone());
        let url = "http://127.0.0.1:9".to_string();
        let delete = |best_effort| Action::UpdaterDelete {
            key: Key::new("ns", "probe"),
            url: url.clone(),
            backend_name: "ns_probe".into(),
            best_effort,
        };
        let done = |id, best_effort, outcome| Done {
            id,
            plan: Plan::of(delete(best_effort)),
            events: vec![None],
            outcome,
        };
        w.io_done(done(1, false, (vec![], Err(Stop::NotLeader))));
        assert!(w.auth.deferred.is_empty(), "queued again");
        let mut keys = Vec::new();
        while let Some(k) = w.queue.get(Instant::now() + Duration::from_secs(1)) {
            keys.push(k);
        }
        assert!(keys.contains(&held), "{keys:?}");

        // A best-effort delete that ran says nothing of the updater: it may have failed.
        w.in_flight.insert(2, pending_for(&w, e));
        w.io_done(done(2, true, (vec![Answer::Done], Ok(()))));
        assert!(w.auth.failing.contains_key(e), "still not answering");
        w.in_flight.insert(3, pending_for(&w, e));
        w.io_done(done(3, false, (vec![Answer::Done], Ok(()))));
        assert!(!w.auth.failing.contains_key(e), "a delete it answered");
    }

    fn pending_for(w: &Worker, endpoint: &str) -> Pending {
        Pending {
            key: Key::new("ns", "probe"),
            ctx: w.context(),
            started: Instant::now(),
            term: 0,
            calls: vec![endpoint.to_string()],
        }
    }

    /// A DELETED event for an earlier object of the same name (deleted and made again, and our
    /// create of the new one answered first) leaves the cached object alone.
    #[test]
    fn the_delete_of_an_earlier_object_of_that_name_is_ignored() {
        let mut cache = Cache::default();
        let mut awaiting = BTreeMap::new();
        let with_uid = |uid: &str, rv: &str| {
            let mut l = lb("k", rv);
            l.metadata.uid = uid.into();
            l
        };
        cache.apply_load_balancer(with_uid("u2", "300"));
        let meta: fn(&LoadBalancer) -> &crate::model::ObjectMeta = |l| &l.metadata;
        let earlier = WatchMsg::Deleted(with_uid("u1", "290"));
        assert_eq!(
            fresh(&mut awaiting, &cache.load_balancers, earlier, meta),
            None
        );
        let this = WatchMsg::Deleted(with_uid("u2", "310"));
        assert!(fresh(&mut awaiting, &cache.load_balancers, this, meta).is_some());
    }

    /// A relist older than our create's answer keeps the answer (and its port) in the cache and
    /// awaits it from the watch; a relist at or past our write ends the wait and is taken whole.
    #[test]
    fn a_relist_older_than_our_write_does_not_roll_it_back() {
        let mut cache = Cache::default();
        let mut awaiting = BTreeMap::new();
        let k = Key::new("ns", "k");
        let j = Key::new("ns", "j");
        cache.apply_load_balancer(lb("k", "300"));
        awaiting.insert(k.clone(), Awaiting::Version("300".into()));
        awaiting.insert(j.clone(), Awaiting::Deleted("uid".into()));
        let relist = WatchMsg::Restarted(vec![lb("k", "250")], "290".into());
        let meta: fn(&LoadBalancer) -> &crate::model::ObjectMeta = |l| &l.metadata;
        let Some(WatchMsg::Restarted(items, _)) =
            fresh(&mut awaiting, &cache.load_balancers, relist, meta)
        else {
            panic!("a relist passes");
        };
        let versions: Vec<&str> = items
            .iter()
            .map(|l| l.metadata.resource_version.as_str())
            .collect();
        assert_eq!(versions, ["300"]);
        assert_eq!(awaiting.keys().collect::<Vec<_>>(), [&k]);
        cache.replace_load_balancers(items);
        assert_eq!(cache.load_balancers[&k].metadata.resource_version, "300");

        let relist = WatchMsg::Restarted(vec![], "300".into());
        let out = fresh(&mut awaiting, &cache.load_balancers, relist, meta);
        assert_eq!(out, Some(WatchMsg::Restarted(vec![], "300".into())));
        assert!(awaiting.is_empty());
    }
}
