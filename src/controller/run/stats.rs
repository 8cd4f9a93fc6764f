//! The controller's Prometheus metrics: reconciles, queue depth, updater calls, API writes and
//! requests, drift checks and repairs, watch relists/restarts/errors/events by resource, LoadBalancers by phase, ports
//! allocated and free per config, leadership, build info, start time.
//!
//! Owns: metric names and label sets. Must not: take labels from user data other than object names
//! the operator chose (config names), so series stay bounded.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::controller::cache::Cache;
use crate::controller::decide::hosts::PHASE_DEGRADED;
use crate::kube::client::ClientStats;
use crate::kube::lease::Leadership;
use crate::kube::watch::runner::WatchStats;
use crate::metrics::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, Registry, Samples};
use crate::model::{PHASE_ERROR, PHASE_PENDING, PHASE_READY};
use crate::time::epoch_ms;

/// The watchers' counters by resource name, shared with the collectors that render them.
type Watches = Arc<Mutex<BTreeMap<String, Arc<WatchStats>>>>;

/// Handles to every controller metric; cheap to share (`Arc<Stats>`).
#[derive(Debug)]
pub struct Stats {
    pub registry: Registry,
    reconciles: Counter,
    reconcile_seconds: Histogram,
    pub queue_depth: Gauge,
    updater_calls: Counter,
    updater_seconds: Histogram,
    /// By verb: `create`, `patch`, `delete`, `event`.
    pub api_writes: Counter,
    lbs_by_phase: Gauge,
    ports_allocated: Gauge,
    ports_free: Gauge,
    /// The elector gained or lost the lease (`paperlb_leader` itself is read from the Leadership).
    pub leader_changes: Counter,
    /// Drift checks of an updater by result (`converged`, `repaired`, `error`, `unsupported`).
    pub resyncs: Counter,
    /// Drift repair calls that succeeded, by action (`create`, `update`, `delete`).
    pub drift_repairs: Counter,
    watches: Watches,
}

impl Stats {
    /// `requests`: the API client's request counts, `paperlb_api_requests_total`; `leadership`: read
    /// at every scrape for `paperlb_leader`, so a renewal stuck in a request shows as 0 at the renew
    /// deadline.
    pub fn new(requests: Arc<ClientStats>, leadership: Arc<Leadership>) -> Stats {
        let r = Registry::default();
        let watches: Watches = Arc::default();
        let s = Stats {
            reconciles: r.counter(
                "paperlb_reconciles_total",
                "Reconciles by result.",
                &["result"],
            ),
            reconcile_seconds: r.histogram(
                "paperlb_reconcile_duration_seconds",
                "Time to decide and execute one reconcile.",
                &[],
                DEFAULT_BUCKETS,
            ),
            queue_depth: r.gauge(
                "paperlb_queue_depth",
                "Keys waiting in the work queue.",
                &[],
            ),
            updater_calls: r.counter(
                "paperlb_updater_calls_total",
                "Updater calls by operation and result.",
                &["op", "result"],
            ),
            updater_seconds: r.histogram(
                "paperlb_updater_call_duration_seconds",
                "Updater call latency (includes the nginx reload).",
                &["op"],
                DEFAULT_BUCKETS,
            ),
            api_writes: r.counter(
                "paperlb_api_writes_total",
                "Kubernetes API writes by kind of write.",
                &["verb"],
            ),
            lbs_by_phase: r.gauge(
                "paperlb_loadbalancers",
                "LoadBalancers by status phase.",
                &["phase"],
            ),
            ports_allocated: r.gauge(
                "paperlb_ports_allocated",
                "Load balancer ports allocated per LoadBalancerConfig.",
                &["config"],
            ),
            ports_free: r.gauge(
                "paperlb_ports_free",
                "Ports left in the range of each LoadBalancerConfig.",
                &["config"],
            ),
            leader_changes: r.counter(
                "paperlb_leader_changes_total",
                "Leadership gained or lost.",
                &[],
            ),
            resyncs: r.counter(
                "paperlb_updater_resyncs_total",
                "Drift checks of an updater by result (converged, repaired, error, unsupported).",
                &["result"],
            ),
            drift_repairs: r.counter(
                "paperlb_updater_drift_repairs_total",
                "Backends put back (create, update) or removed (delete) by drift repair.",
                &["action"],
            ),
            registry: r.clone(),
            watches: watches.clone(),
        };
        r.gauge_fn(
            "paperlb_leader",
            "1 while this replica may write (leader, or leader election off).",
            &[],
            move || vec![(vec![], if leadership.is_leader() { 1.0 } else { 0.0 })],
        );
        let per_watch = |what: fn(&WatchStats) -> u64| {
            let watches = watches.clone();
            move || -> Samples {
                let watches = watches.lock().unwrap_or_else(|p| p.into_inner());
                watches
                    .iter()
                    .map(|(name, w)| (vec![name.clone()], what(w) as f64))
                    .collect()
            }
        };
        r.counter_fn(
            "paperlb_watch_relists_total",
            "LISTs after the first (410 Gone, or retries of a failed relist), by resource.",
            &["resource"],
            per_watch(|w| w.relists.load(Relaxed)),
        );
        r.counter_fn(
            "paperlb_watch_restarts_total",
            "Watches resumed from a resourceVersion (stream ended, stalled or failed), by resource.",
            &["resource"],
            per_watch(|w| w.restarts.load(Relaxed)),
        );
        r.counter_fn(
            "paperlb_watch_errors_total",
            "Failed lists and watches, broken or stalled streams and ERROR events, by resource.",
            &["resource"],
            per_watch(|w| w.errors.load(Relaxed)),
        );
        r.counter_fn(
            "paperlb_watch_events_total",
            "Watch events received (bookmarks included), by resource.",
            &["resource"],
            per_watch(|w| w.events.load(Relaxed)),
        );
        r.counter_fn(
            "paperlb_api_requests_total",
            "Kubernetes API requests by verb and HTTP code (0: no answer).",
            &["verb", "code"],
            move || {
                requests
                    .snapshot()
                    .into_iter()
                    .map(|((verb, code), n)| (vec![verb.to_string(), code.to_string()], n as f64))
                    .collect()
            },
        );
        r.gauge("paperlb_build_info", "Build information.", &["version"])
            .set(&[env!("CARGO_PKG_VERSION")], 1.0);
        let started = (epoch_ms(SystemTime::now()) / 1000) as f64;
        r.gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds.",
            &[],
        )
        .set(&[], started);
        s
    }

    /// The counters a watcher thread keeps for `resource`, registered for `/metrics`.
    pub fn watch(&self, resource: &str) -> Arc<WatchStats> {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        watches.entry(resource.to_string()).or_default().clone()
    }

    pub fn reconciled(&self, result: &str, took: Duration) {
        self.reconciles.inc(&[result]);
        self.reconcile_seconds.observe(&[], took.as_secs_f64());
    }

    pub fn updater_call(&self, op: &str, ok: bool, took: Duration) {
        self.updater_calls
            .inc(&[op, if ok { "ok" } else { "error" }]);
        self.updater_seconds.observe(&[op], took.as_secs_f64());
    }

    /// Gauges computed from the cache; called when the queue has drained, not per reconcile. Series
    /// of deleted configs disappear; a phase outside PENDING/READY/DEGRADED/ERROR (a hand-made status) counts
    /// as `other`, so the label stays bounded.
    pub fn observe_cache(&self, cache: &Cache) {
        let known = [PHASE_PENDING, PHASE_READY, PHASE_DEGRADED, PHASE_ERROR];
        let mut phases: BTreeMap<&str, f64> = (known.into_iter().chain(["other"]))
            .map(|p| (p, 0.0))
            .collect();
        let mut per_config: BTreeMap<String, f64> = BTreeMap::new();
        for lb in cache.load_balancers.values() {
            let phase = lb.status.phase.as_deref().unwrap_or(PHASE_PENDING);
            let phase = known.into_iter().find(|p| *p == phase).unwrap_or("other");
            *phases.entry(phase).or_default() += 1.0;
            let ports = lb
                .spec
                .ports
                .len()
                .max(usize::from(lb.spec.port.get().is_some()));
            if let Some(name) = lb.spec.config_name.get() {
                *per_config.entry(name.clone()).or_default() += ports as f64;
            }
        }
        self.lbs_by_phase.replace_all(
            phases
                .into_iter()
                .map(|(p, n)| (vec![p.to_string()], n))
                .collect(),
        );
        let (mut allocated, mut free) = (Vec::new(), Vec::new());
        for cfg in cache.configs.values() {
            let name = cfg.metadata.name.as_str();
            let used = per_config.get(name).copied().unwrap_or(0.0);
            allocated.push((vec![name.to_string()], used));
            // An invalid config has no range to count in: no free-ports series for it.
            if let Ok(v) = cfg.validate() {
                let size = f64::from(v.high) - f64::from(v.low) + 1.0;
                free.push((vec![name.to_string()], (size - used).max(0.0)));
            }
        }
        self.ports_allocated.replace_all(allocated);
        self.ports_free.replace_all(free);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::model::{LoadBalancer, LoadBalancerConfig};

    fn config(name: &str, low: u16, high: u16) -> LoadBalancerConfig {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "paperlb-system"},
            "spec": {"httpUpdaterURL": "http://127.0.0.1:3000", "host": "127.0.0.10",
                "portRange": {"low": low, "high": high}}
        }))
        .unwrap()
    }

    fn lb(name: &str, config: &str, ports: &[u16], phase: Option<&str>) -> LoadBalancer {
        let list: Vec<_> = ports
            .iter()
            .map(|p| json!({"port": p, "protocol": "TCP"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"configName": config, "host": "127.0.0.10", "port": ports[0],
                "protocol": "TCP", "ports": list},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn cache_gauges_count_phases_and_ports_and_forget_deleted_configs() {
        let stats = Stats::new(Arc::default(), Leadership::always());
        let mut cache = Cache::default();
        cache.replace_configs(vec![
            config("edge", 8100, 8199),
            config("spare", 9000, 9009),
        ]);
        cache.replace_load_balancers(vec![
            lb("a", "edge", &[8100, 8101], Some(PHASE_READY)),
            lb("b", "edge", &[8102], None),
            lb("c", "spare", &[9000], Some("HAND-WRITTEN")),
        ]);
        stats.observe_cache(&cache);
        let text = stats.registry.render();
        for want in [
            "paperlb_loadbalancers{phase=\"READY\"} 1\n",
            "paperlb_loadbalancers{phase=\"PENDING\"} 1\n",
            "paperlb_loadbalancers{phase=\"ERROR\"} 0\n",
            "paperlb_loadbalancers{phase=\"other\"} 1\n",
            "paperlb_ports_allocated{config=\"edge\"} 3\n",
            "paperlb_ports_free{config=\"edge\"} 97\n",
            "paperlb_ports_allocated{config=\"spare\"} 1\n",
            "paperlb_ports_free{config=\"spare\"} 9\n",
            "paperlb_leader 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("HAND-WRITTEN"), "{text}");

        cache.replace_configs(vec![config("edge", 8100, 8199)]);
        cache.replace_load_balancers(vec![lb("a", "edge", &[8100, 8101], Some(PHASE_READY))]);
        stats.observe_cache(&cache);
        let text = stats.registry.render();
        assert!(
            !text.contains("spare"),
            "a deleted config keeps no series:\n{text}"
        );
        assert!(
            text.contains("paperlb_ports_free{config=\"edge\"} 98\n"),
            "{text}"
        );
    }

    #[test]
    fn watch_counters_appear_per_resource_and_leader_follows_the_leadership() {
        let leadership = Leadership::elected(Duration::from_secs(10));
        let stats = Stats::new(Arc::default(), leadership);
        let services = stats.watch("services");
        assert!(Arc::ptr_eq(&services, &stats.watch("services")));
        stats.watch("nodes");
        let text = stats.registry.render();
        for want in [
            "paperlb_watch_restarts_total{resource=\"nodes\"} 0\n",
            "paperlb_watch_restarts_total{resource=\"services\"} 0\n",
            "paperlb_watch_relists_total{resource=\"services\"} 0\n",
            "paperlb_watch_errors_total{resource=\"services\"} 0\n",
            "paperlb_watch_events_total{resource=\"services\"} 0\n",
            // Elected but never renewed: may not write.
            "paperlb_leader 0\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
