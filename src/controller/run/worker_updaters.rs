//! The worker's updater side (a child module of `worker`, so it shares the worker's state):
//! updater clients built with each config's credentials (`secrets`), the Secret watch's events,
//! the `UpdaterAuth` fallback after a failed call, and the drift checks (`drift` decides,
//! `resync` times and runs the repairs).
//!
//! Owns: which client serves a config's calls to a URL (rebuilt when its config's token or CA
//! changes, so a rotated Secret is used at once), the one read of a Secret whose referenced key was
//! not kept, and when a check runs. Must not: decide what to repair, write while not the leader,
//! or log a token.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::batch::{CallError, Stop};
use super::{Affected, Worker};
use crate::controller::Key;
use crate::controller::cache::Cache;
use crate::controller::decide::drift;
use crate::controller::decide::health_status;
use crate::controller::decide::plan::{Action, EventType, Plan};
use crate::controller::decide::reconcile::event_target;
use crate::controller::decide::status::{UPDATER_AUTH, is_applied};
use crate::controller::decide::updater_auth::{
    AuthProblem, CERTIFICATE_REFUSED, DRIFT_CHECK, condition_patch, ok_patch,
};
use crate::controller::run::secrets::{self, AuthNeed};
use crate::kube::client::SECRETS;
use crate::kube::watch::WatchMsg;
use crate::model::url::{same_updater, updater_endpoint};
use crate::model::{AuthRefs, LoadBalancer, Secret, ValidConfig};
use crate::time::epoch_ms;
use crate::updater::client::{ClientAuth, Timeouts, UpdaterClient};

impl Worker {
    /// When `run` must wake: now for a key already ready, else the next delayed key or config,
    /// check, or host expiry, of those it may act on now. A standby, a worker not yet synced and one waiting for a drift check's repairs
    /// take no key, so a key's deadline then must not make `run` spin once it has passed; a new
    /// term, the last sync and the repairs' answers each wake it. A lapse of leadership the
    /// elector has not called lost may end without an event: it is looked at every second.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        if !self.all_synced() || !self.leadership.is_leader() {
            let lapse = self.elected && self.all_synced();
            return lapse.then(|| Instant::now() + Duration::from_secs(1));
        }
        let queue = self.repairing.is_none().then(|| {
            // A key made ready outside an event (a drift check's requeue) is due now.
            let ready = !self.queue.is_empty();
            ready.then(Instant::now).or(self.queue.next_deadline())
        });
        // Before the first checks are scheduled, the next pass schedules them. Checks wait for
        // the plans in flight and a check's repairs (their answers wake the worker): a check
        // due meanwhile must not make `run` spin.
        let idle = self.auth.started && self.in_flight.is_empty() && self.repairing.is_none();
        let checks = idle.then(|| self.auth.timers.next_deadline());
        [
            queue.flatten(),
            self.configs.next_deadline(),
            checks.flatten(),
            self.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The client for an `httpUpdaterURL` as written, with the credentials of config `config`
    /// (credentials belong to a config, not to a URL: two configs naming one updater each push
    /// with their own); it calls the endpoint the URL resolves to. Rebuilt when the credentials
    /// change. An Err names why there is none (and nothing may be sent).
    pub(super) fn updater(
        &mut self,
        config: &str,
        url: &str,
    ) -> Result<Arc<UpdaterClient>, AuthProblem> {
        let id = (config.to_string(), url.to_string());
        let client = self.auth_for(config, url).and_then(|auth| {
            if let Some((built_with, c)) = self.auth.clients.get(&id)
                && *built_with == auth
            {
                return Ok(c.clone());
            }
            // Parsed when a client is built, not on every call.
            let endpoint = updater_endpoint(url).map_err(|e| AuthProblem {
                reason: "ClientSetup",
                message: format!("updater URL {}: {e}", crate::model::url::redacted(url)),
            })?;
            let c =
                UpdaterClient::new(&endpoint, auth.clone(), Timeouts::default()).map_err(|e| {
                    let who = self
                        .config_for(config, url)
                        .map(|(c, _)| format!("LoadBalancerConfig {}/{}: ", c.namespace, c.name))
                        .unwrap_or_default();
                    AuthProblem {
                        reason: "ClientSetup",
                        message: format!("{who}updater {url}: {e}; no updater call is sent"),
                    }
                })?;
            let c = Arc::new(c);
            let built = (auth, c.clone());
            if self.auth.clients.insert(id.clone(), built).is_some() {
                log::info!("updater {url}: credentials changed, using the new ones");
            }
            Ok(c)
        });
        if client.is_err() {
            self.auth.clients.remove(&id);
        }
        client
    }

    /// The config whose credentials a LoadBalancer's updater calls use: its `spec.configName`
    /// ("" when it names none).
    pub(super) fn config_of(&self, key: &Key) -> String {
        self.cache
            .load_balancers
            .get(key)
            .and_then(|lb| lb.spec.config_name.get().cloned())
            .unwrap_or_default()
    }

    /// Valid config `config` in our namespace and the credentials of its host naming this
    /// updater; when it does not name it (a hand-made LoadBalancer, a drift check, a URL the
    /// config no longer has), the first valid config naming the updater.
    fn config_for(&self, config: &str, url: &str) -> Option<(ValidConfig, AuthRefs)> {
        let with_auth = |c: ValidConfig| Some((c.auth_for(url)?.clone(), c));
        let mut named = self.valid_configs().filter(|c| c.name == config);
        let (auth, c) =
            (named.find_map(with_auth)).or_else(|| self.valid_configs().find_map(with_auth))?;
        Some((c, auth))
    }

    /// The valid configs in the controller's namespace.
    fn valid_configs(&self) -> impl Iterator<Item = ValidConfig> + '_ {
        self.cache.valid_configs(&self.config.ctx.namespace)
    }

    fn auth_for(&mut self, config: &str, url: &str) -> Result<ClientAuth, AuthProblem> {
        let Some((cfg, _)) = self.config_for(config, url) else {
            return Ok(ClientAuth::default()); // a hand-made LoadBalancer's own updater
        };
        let unreadable = |name: &str, why: String| AuthProblem {
            reason: "SecretUnreadable",
            message: format!(
                "LoadBalancerConfig {}/{}: reading Secret {name:?}: {why}; no updater call is sent",
                cfg.namespace, cfg.name
            ),
        };
        for _ in 0..2 {
            match secrets::client_auth(&cfg, url, &self.auth.secrets) {
                Ok(a) => return Ok(a),
                Err(AuthNeed::Problem(p)) => return Err(p),
                Err(AuthNeed::Read(name)) => {
                    // Referenced after it arrived: its bytes were not kept. One read.
                    let path = SECRETS.path(Some(&cfg.namespace), Some(&name), None);
                    match self.client.get::<Secret>(&path) {
                        Ok(s) => {
                            self.auth.secrets.apply(s);
                        }
                        Err(e) if e.is_not_found() => {
                            self.auth.secrets.delete(&name);
                        }
                        Err(e) => return Err(unreadable(&name, e.to_string())),
                    }
                }
            }
        }
        Err(unreadable(
            &cfg.name,
            "its referenced keys were not kept after a read".into(),
        ))
    }

    /// After a config event: what Secrets must be kept, timers for updaters new to us, and the
    /// clients, credentials and failure marks of updaters no config or LoadBalancer names any more
    /// (a deleted config, a changed URL) dropped; one still used is rebuilt when next needed.
    pub(super) fn configs_changed(&mut self) {
        let wanted = secrets::wanted(&self.cache, &self.config.ctx.namespace);
        self.auth.secrets.want(wanted);
        self.auth.probes_stale = true;
        let endpoints = drift::endpoints(&self.cache, &self.context());
        let in_use = drift::in_use(&self.cache, &endpoints);
        let used = |(config, url): &super::ClientId| in_use.client(config, url);
        self.auth.clients.retain(|id, _| used(id));
        let live = |e: &String| in_use.endpoints.contains(e);
        self.auth.failing.retain(|e, _| live(e));
        // Held back for an endpoint maybe no longer used: their next plan may not call it.
        let held = std::mem::take(&mut self.auth.deferred);
        self.requeue(held);
        self.auth.expired.retain(|e, _| live(e));
        if self.auth.started {
            let now = Instant::now();
            for e in endpoints.into_keys() {
                if !self.auth.timers.is_scheduled(&e) && !self.auth.unsupported.contains(&e) {
                    self.auth.timers.checked(&e, true, now);
                }
            }
        }
    }

    /// A Secret watch message: the store keeps what is referenced; the LoadBalancers of configs
    /// whose Secrets changed are reconciled again (one failed for a missing token retries now), and
    /// their updaters checked.
    pub(super) fn secrets_changed(&mut self, m: WatchMsg<Secret>) -> Affected {
        let mut affected = Affected::new();
        let changed: BTreeSet<String> = match m {
            WatchMsg::Restarted(items, _) => {
                affected = self.note_synced(SECRETS.plural).unwrap_or_default();
                self.auth.secrets.replace(items)
            }
            WatchMsg::Applied(s) => {
                let name = s.metadata.name.clone();
                let changed = self.auth.secrets.apply(s);
                changed.then_some(name).into_iter().collect()
            }
            WatchMsg::Deleted(s) => {
                let changed = self.auth.secrets.delete(&s.metadata.name);
                changed.then_some(s.metadata.name).into_iter().collect()
            }
        };
        if changed.is_empty() {
            return affected;
        }
        self.auth.probes_stale = true;
        let endpoints: BTreeSet<String> = (self.valid_configs())
            .flat_map(|c| c.hosts.into_iter().zip(c.auths))
            .filter(|(_, auth)| auth.refs().any(|r| changed.contains(&r.name)))
            .filter_map(|(h, _)| updater_endpoint(&h.url).ok())
            .collect();
        for e in &endpoints {
            log::info!("updater {e}: a Secret it uses changed");
            affected.extend(drift::users_of(&self.cache, e));
            if self.auth.started {
                self.auth.timers.at(e);
            }
        }
        affected
    }

    /// After updater action `index` of `plan` failed: the `UpdaterAuth` problem to report, if it
    /// is one (no usable credentials, or refused ones). Also notes an updater that did not answer.
    pub(super) fn updater_failed(
        &mut self,
        plan: &Plan,
        index: usize,
        error: &CallError,
    ) -> Option<AuthProblem> {
        let (key, url) = match plan.actions.get(index)? {
            Action::UpdaterApply { key, url, .. } | Action::UpdaterDelete { key, url, .. } => {
                (key, url)
            }
            _ => return None,
        };
        // No call: the plan's client for it was missing, and says why (see `updater`).
        let e = match error {
            CallError::Call(e) => e,
            CallError::NoCall(p) => return Some(p.clone()),
        };
        if e.is_transport()
            && let Ok(endpoint) = updater_endpoint(url)
        {
            self.host_failing(&endpoint, epoch_ms(SystemTime::now()));
        }
        self.refusal(&self.config_of(key), url, e)
    }

    /// The problem to report when config `config`'s credentials were refused by the updater at
    /// `url` (401/403), or the TLS handshake refused its certificate: a configuration error of the
    /// config (its token or CA), not an outage. None for any other error.
    fn refusal(&self, config: &str, url: &str, e: &crate::updater::Error) -> Option<AuthProblem> {
        let cfg = self.config_for(config, url);
        let who = (cfg.as_ref())
            .map(|(c, _)| format!("LoadBalancerConfig {}/{}: ", c.namespace, c.name))
            .unwrap_or_default();
        // The field of the host called (`spec.<name>` in the Go form).
        let field = |name: &str| match &cfg {
            Some((c, _)) => {
                let host = c.hosts.iter().position(|h| same_updater(&h.url, url));
                secrets::field_of(c, host.unwrap_or(0), name)
            }
            None => format!("spec.{name}"),
        };
        if e.is_unauthorized() {
            let token = field("updaterTokenSecretRef");
            let what = match cfg.as_ref().map(|(_, a)| &a.token) {
                Some(Some(r)) => format!(
                    "the token in {token} (Secret {:?}, key {:?})",
                    r.name, r.key
                ),
                Some(None) => format!("no token (set {token})"),
                None => "the credentials".to_string(),
            };
            let message = format!("{who}updater {url} refused {what}: {e}");
            return Some(AuthProblem {
                reason: "Unauthorized",
                message,
            });
        }
        e.is_tls().then(|| AuthProblem {
            reason: CERTIFICATE_REFUSED,
            message: format!(
                "{who}{e}; check {} (the CA that signs the updater's certificate) or \
                 insecureSkipVerify beside it",
                field("updaterCASecretRef")
            ),
        })
    }

    /// Endpoint `e` does not answer and a plan calling it is in flight: a reconcile does not call
    /// it too (that plan's answer, or its timeout, says whether it is back). The keys held back
    /// wait in `deferred` until a plan that calls an updater finishes (`io_done`), without a
    /// failure counted against them.
    pub(super) fn held_up(&self, e: &str) -> bool {
        self.auth.failing.contains_key(e)
            && (self.in_flight.values()).any(|p| p.calls.iter().any(|c| c == e))
    }

    /// An updater endpoint did not answer; `last_ok_ms` is its last good answer (an earlier one
    /// already known is kept). The worker wakes when its grace runs out.
    pub(super) fn host_failing(&mut self, endpoint: &str, last_ok_ms: u64) {
        let earliest = |since: &mut u64| *since = (*since).min(last_ok_ms);
        let since = self.auth.failing.entry(endpoint.to_string());
        since.and_modify(earliest).or_insert(last_ok_ms);
    }

    /// An updater endpoint answers again: it is checked for drift now, and its LoadBalancers are
    /// reconciled (a host of a several-host config gets what it missed), with the keys held back
    /// for it. Returns those keys.
    pub(super) fn host_answered(&mut self, endpoint: &str) -> Affected {
        if self.auth.failing.remove(endpoint).is_none() {
            return Affected::new();
        }
        self.auth.expired.remove(endpoint);
        log::info!("updater {endpoint} answers again: checking it for drift");
        self.auth.timers.at(endpoint);
        let mut users: Affected = drift::users_of(&self.cache, endpoint).into_iter().collect();
        users.extend(std::mem::take(&mut self.auth.deferred));
        users
    }

    /// Per failing endpoint, each grace (0: the host failure grace, 1: `--unreachable-delete-grace`)
    /// it has not been handled for, with the time (ms since the epoch) it runs out.
    fn expiries(&self) -> impl Iterator<Item = (&String, usize, u64)> {
        let graces = [
            self.config.ctx.host_grace_ms,
            self.config.ctx.delete_grace_ms,
        ];
        self.auth.failing.iter().flat_map(move |(e, since)| {
            let handled = self.auth.expired.get(e).copied().unwrap_or_default();
            let at = move |g: usize| since.saturating_add(graces[g]);
            (0..2)
                .filter(move |g| !handled[*g])
                .map(move |g| (e, g, at(g)))
        })
    }

    /// The earliest grace that runs out among failing endpoints not yet handled.
    fn next_expiry(&self) -> Option<Instant> {
        let now = epoch_ms(SystemTime::now());
        let at = self.expiries().map(|(_, _, at)| at).min()?;
        Some(Instant::now() + Duration::from_millis(at.saturating_sub(now)))
    }

    /// Reconciles the LoadBalancers on every endpoint whose grace ran out (once per failure and
    /// grace): their several-host ingress drops it, or their deletions stop waiting on it.
    pub(super) fn wake_expired_hosts(&mut self) {
        if std::mem::take(&mut self.auth.probes_stale) {
            self.refresh_probes();
        }
        let now = epoch_ms(SystemTime::now());
        let due: Vec<(String, usize)> = self
            .expiries()
            .filter(|(_, _, at)| now >= *at)
            .map(|(e, grace, _)| (e.clone(), grace))
            .collect();
        let what = [
            "the host failure grace; its hosts leave the ingress",
            "--unreachable-delete-grace; deletions stop waiting on it",
        ];
        for (e, grace) in due {
            log::warn!("updater {e}: no answer for {}", what[grace]);
            self.requeue(drift::users_of(&self.cache, &e));
            self.auth.expired.entry(e).or_default()[grace] = true;
        }
    }

    /// The several-host configs' updaters, for the prober (called when configs or Secrets change).
    fn refresh_probes(&mut self) {
        let urls: Vec<(String, String)> = self
            .valid_configs()
            .filter(|c| c.hosts.len() > 1) // a single host is not failed over (`hosts::to_push`)
            .flat_map(|c| c.hosts.into_iter().map(move |h| (c.name.clone(), h.url)))
            .collect();
        let mut clients = BTreeMap::new();
        for (config, url) in urls {
            let Ok(endpoint) = updater_endpoint(&url) else {
                continue;
            };
            if let Ok(c) = self.updater(&config, &url) {
                clients.entry(endpoint).or_insert(c);
            }
        }
        self.probes.set(clients);
    }

    /// Runs the checks that are due (scheduling every updater's first after a sync or a
    /// leadership gain).
    pub(super) fn run_due_resyncs(&mut self) {
        if !self.auth.started {
            self.auth.started = true;
            for e in drift::endpoints(&self.cache, &self.context()).into_keys() {
                self.auth.timers.at(&e);
            }
        }
        // One check's repairs at a time: the others stay due until they are done.
        while self.leadership.is_leader() && !self.shutdown && self.repairing.is_none() {
            let Some(e) = self.auth.timers.next_due(Instant::now()) else {
                return;
            };
            // Timed for `/healthz`; the next check is scheduled by its result (None: none now, or
            // when its repairs are done).
            let now = epoch_ms(SystemTime::now());
            self.health.busy_since_ms.store(now, Ordering::Relaxed);
            let ok = self.check(&e);
            self.health.busy_since_ms.store(0, Ordering::Relaxed);
            if let Some(ok) = ok {
                self.auth.timers.checked(&e, ok, Instant::now());
            }
        }
    }

    /// GET, compare, repair: whether the check succeeded (None: it is not checked again until
    /// something schedules it, or its repairs run on the pool and `repaired` says).
    fn check(&mut self, endpoint: &str) -> Option<bool> {
        let ctx = self.context();
        let raw = drift::endpoints(&self.cache, &ctx).remove(endpoint);
        let Some(raw) = raw.filter(|_| !self.auth.unsupported.contains(endpoint)) else {
            self.auth.timers.cancel(endpoint);
            return None;
        };
        // Credentials belong to a config: each config naming this updater is tried in turn until
        // one is let in; the configs refused on the way get the refusal on their LoadBalancers.
        let mut configs: Vec<String> = self
            .valid_configs()
            .filter(|c| c.auth_for(&raw).is_some())
            .map(|c| c.name)
            .collect();
        if configs.is_empty() {
            configs.push(String::new());
        }
        let desired = drift::desired_for(&self.cache, &ctx, endpoint);
        let mut refused: Vec<(&str, crate::updater::Error)> = Vec::new();
        let mut outcome = None;
        for (i, config) in configs.iter().enumerate() {
            let client = match self.updater(config, &raw) {
                Ok(c) => c,
                Err(m) => {
                    log::warn!(
                        "drift check of updater {endpoint} skipped for {config:?}: {}",
                        m.message
                    );
                    continue;
                }
            };
            let started = Instant::now();
            // The answer is compared as it is read, one backend at a time (see `list_each`):
            // what the check holds is its decisions and health figures, not the whole listing.
            let mut compare = drift::Compare::new(&self.cache, &ctx, &desired);
            let mut reports = health_status::Reports::new();
            let listed = client.list_each(|b| {
                compare.observe(&b);
                health_status::report(&mut reports, &b);
            });
            // Decided before the condition writes below change the cache (they touch no spec,
            // no `applied`: the decision is the one the answer gives).
            let repairs = compare.repairs();
            self.stats
                .updater_call("list", listed.is_ok(), started.elapsed());
            match listed {
                Err(e) if (e.is_unauthorized() || e.is_tls()) && i + 1 < configs.len() => {
                    refused.push((config, e));
                }
                listed => {
                    outcome = Some((config.clone(), client, listed, repairs, reports));
                    break;
                }
            }
        }
        // Reported once the listing is read: their writes change the cache the comparison reads.
        for (config, e) in &refused {
            self.report_refusal(endpoint, &raw, config, e, &ctx.now);
        }
        let Some((config, client, listed, repairs, reports)) = outcome else {
            self.stats.resyncs.inc(&["error"]);
            return Some(false);
        };
        match listed {
            Err(e) if e.is_unsupported() => {
                log::info!(
                    "updater {endpoint} has no GET /api/v1/lb (the Go nginx-lb-updater?): its drift is not checked"
                );
                self.stats.resyncs.inc(&["unsupported"]);
                self.auth.unsupported.insert(endpoint.to_string());
                self.auth.timers.cancel(endpoint);
                let message = format!(
                    "updater {raw} cannot list its backends ({e}); paperlb does not repair its drift \
                     (use paperlb nginx-updater for that)"
                );
                self.patch_users(endpoint, |_, key, _, lb| {
                    condition_patch(key, lb, DRIFT_CHECK, "Unsupported", &message, &ctx.now)
                        .map(Plan::of)
                });
                // Their targets now follow node readiness (no health check drains a node there).
                self.requeue(drift::users_of(&self.cache, endpoint));
                None
            }
            Err(e) => {
                if e.is_transport() {
                    self.host_failing(endpoint, epoch_ms(SystemTime::now()));
                }
                self.report_refusal(endpoint, &raw, &config, &e, &ctx.now);
                // Never repair from an answer that could not be read.
                log::warn!("drift check of updater {endpoint} failed: {e}");
                self.stats.resyncs.inc(&["error"]);
                Some(false)
            }
            Ok(_) => {
                let affected = self.host_answered(endpoint);
                self.requeue(affected);
                // `DriftCheck` and a refused-token `UpdaterAuth` left False turn True, but not
                // where the config's credentials were just refused.
                self.patch_users(endpoint, |_, key, config, lb| {
                    let was_refused = refused.iter().any(|(c, _)| *c == config);
                    (!was_refused).then(|| ok_patch(key, lb, &ctx.now).map(Plan::of))?
                });
                // Per-port health from this answer, where it changed, on the LoadBalancers that
                // are applied (a reconcile of any other writes its own status).
                self.patch_users(endpoint, |_, key, _, lb| {
                    let settled = !lb.metadata.is_deleting() && is_applied(lb);
                    settled.then(|| health_status::patch(key, lb, &reports).map(Plan::of))?
                });
                if !repairs.is_empty() {
                    // To the pool, as one plan; `repaired` finishes the check.
                    let count = |a: &str| repairs.iter().filter(|r| r.action() == a).count();
                    log::info!(
                        "drift on updater {endpoint}: {} missing, {} different, {} stray backend(s); repairing",
                        count("create"),
                        count("update"),
                        count("delete")
                    );
                    let repair = |repair| Action::Repair {
                        url: raw.clone(),
                        repair,
                    };
                    let actions: Vec<Action> = repairs.into_iter().map(repair).collect();
                    let events = vec![None; actions.len()];
                    let clients = BTreeMap::from([(raw, Ok(client))]);
                    self.next_job += 1;
                    self.repairing = Some((self.next_job, endpoint.to_string()));
                    (self.pool).submit(self.next_job, Plan { actions }, events, clients);
                    return None;
                }
                log::debug!(
                    "updater {endpoint} holds what {} backend(s) want",
                    desired.requests.len()
                );
                self.stats.resyncs.inc(&["converged"]);
                Some(true)
            }
        }
    }

    /// A check's repairs are done: the check succeeded when every one did.
    pub(super) fn repaired(&mut self, endpoint: &str, done: super::Done) {
        let (answers, _) = done.outcome;
        let failed: Vec<String> = (done.plan.actions.iter().enumerate())
            .filter_map(|(i, a)| {
                let Action::Repair { repair, .. } = a else {
                    return None;
                };
                let why = match answers.get(i) {
                    Some(super::Answer::Failed(e)) => e.to_string(),
                    Some(_) => return None,
                    None => "not the leader any more".to_string(),
                };
                Some(format!(
                    "{} {}: {why}",
                    repair.action(),
                    repair.backend_name()
                ))
            })
            .collect();
        if let Some(first) = failed.first() {
            log::warn!(
                "drift repair on updater {endpoint}: {} of {} call(s) failed, first: {first}",
                failed.len(),
                done.plan.actions.len()
            );
        }
        let ok = failed.is_empty();
        let result = if ok { "repaired" } else { "error" };
        self.stats.resyncs.inc(&[result]);
        self.auth.timers.checked(endpoint, ok, Instant::now());
    }

    /// A drift check refused on a config's credentials (token or certificate) got an answer: a
    /// configuration error, shown on that config's LoadBalancers there with one Event each,
    /// never counted as an outage. Other errors are not refusals: nothing is marked.
    fn report_refusal(
        &mut self,
        endpoint: &str,
        raw: &str,
        config: &str,
        e: &crate::updater::Error,
        now: &str,
    ) {
        let Some(p) = self.refusal(config, raw, e) else {
            return;
        };
        // Of config `config` ("": of any) and without the condition yet; one Warning Event each,
        // where the LoadBalancer's Events go (its Service, else itself), rate-limited per object
        // and reason, and sent even when the condition cannot be written.
        self.patch_users(endpoint, |cache, key, of, lb| {
            let ours = config.is_empty() || of == config;
            let patch =
                ours.then(|| condition_patch(key, lb, UPDATER_AUTH, p.reason, &p.message, now))??;
            let mut plan = Plan::default();
            let note = (EventType::Warning, UPDATER_AUTH, p.message.clone());
            plan.event(&event_target(cache, key, lb), note);
            plan.push(patch);
            Some(plan)
        });
    }

    /// Runs the plan `patch` gives (a condition patch, maybe with its Event) for each LoadBalancer
    /// on `endpoint`, from the cache, its key, its config's name and the object (None: nothing to
    /// write).
    fn patch_users(
        &mut self,
        endpoint: &str,
        patch: impl Fn(&Cache, &Key, &str, &LoadBalancer) -> Option<Plan>,
    ) {
        for key in drift::users_of(&self.cache, endpoint) {
            let config = self.config_of(&key);
            let lb = self.cache.load_balancers.get(&key);
            let Some(plan) = lb.and_then(|lb| patch(&self.cache, &key, &config, lb)) else {
                continue;
            };
            match self.execute(&plan) {
                Ok(()) => {}
                Err(Stop::Api { error, .. }) => {
                    log::warn!("recording an updater condition key={key} error={error}")
                }
                Err(_) => log::debug!("updater condition key={key} not written: not the leader"),
            }
        }
    }
}
