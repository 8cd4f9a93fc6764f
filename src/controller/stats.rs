//! The controller's Prometheus metrics: reconciles, queue depth, updater calls, API writes and
//! requests, LoadBalancers by phase, ports allocated and free per config, leadership, build info.
//!
//! Owns: metric names and label sets. Must not: take labels from user data other than object names
//! the operator chose (config names), so series stay bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use super::cache::Cache;
use crate::kube::client::Client;
use crate::metrics::{Counter, DEFAULT_BUCKETS, Gauge, Histogram, Registry};
use crate::model::{PHASE_ERROR, PHASE_PENDING, PHASE_READY};

/// Handles to every controller metric; cheap to share (`Arc<Stats>`).
#[derive(Debug)]
pub struct Stats {
    pub registry: Registry,
    reconciles: Counter,
    reconcile_seconds: Histogram,
    queue_depth: Gauge,
    updater_calls: Counter,
    updater_seconds: Histogram,
    api_writes: Counter,
    lbs_by_phase: Gauge,
    ports_allocated: Gauge,
    ports_free: Gauge,
    leader: Gauge,
    leader_changes: Counter,
    client: Option<Client>,
}

impl Stats {
    pub fn new(client: Option<Client>) -> Stats {
        let r = Registry::new();
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
            leader: r.gauge("paperlb_leader", "1 while this replica may write.", &[]),
            leader_changes: r.counter(
                "paperlb_leader_changes_total",
                "Leadership gained or lost.",
                &[],
            ),
            registry: r.clone(),
            client,
        };
        r.gauge("paperlb_build_info", "Build information.", &["version"])
            .set(&[env!("CARGO_PKG_VERSION")], 1.0);
        s
    }

    pub fn reconciled(&self, result: &str, took: Duration) {
        self.reconciles.inc(&[result]);
        self.reconcile_seconds.observe(&[], took.as_secs_f64());
    }

    pub fn reconciles(&self, result: &str) -> f64 {
        self.reconciles.get(&[result])
    }

    pub fn set_queue_depth(&self, n: usize) {
        self.queue_depth.set(&[], n as f64);
    }

    pub fn updater_call(&self, op: &str, ok: bool, took: Duration) {
        self.updater_calls
            .inc(&[op, if ok { "ok" } else { "error" }]);
        self.updater_seconds.observe(&[op], took.as_secs_f64());
    }

    pub fn api_write(&self, verb: &str) {
        self.api_writes.inc(&[verb]);
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(&[], if leading { 1.0 } else { 0.0 });
        self.leader_changes.inc(&[]);
    }

    /// Gauges computed from the cache; called when the queue has drained, not per reconcile.
    pub fn observe_cache(&self, cache: &Cache) {
        let mut phases: BTreeMap<&str, f64> =
            [(PHASE_PENDING, 0.0), (PHASE_READY, 0.0), (PHASE_ERROR, 0.0)]
                .into_iter()
                .collect();
        let mut per_config: BTreeMap<String, f64> = BTreeMap::new();
        for lb in cache.load_balancers.values() {
            let phase = lb.status.phase.as_deref().unwrap_or(PHASE_PENDING);
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
        for (phase, n) in phases {
            self.lbs_by_phase.set(&[phase], n);
        }
        for cfg in cache.configs.values() {
            let name = cfg.metadata.name.as_str();
            let used = per_config.get(name).copied().unwrap_or(0.0);
            self.ports_allocated.set(&[name], used);
            if let Ok(v) = cfg.validate() {
                let size = f64::from(v.high) - f64::from(v.low) + 1.0;
                self.ports_free.set(&[name], (size - used).max(0.0));
            }
        }
    }

    /// The exposition text, with the API client's request counts appended.
    pub fn render(&self) -> String {
        let mut out = self.registry.render();
        if let Some(client) = &self.client {
            out.push_str("# HELP paperlb_api_requests_total Kubernetes API requests by verb and HTTP code (0: no answer).\n");
            out.push_str("# TYPE paperlb_api_requests_total counter\n");
            for c in client.stats().snapshot() {
                out.push_str(&format!(
                    "paperlb_api_requests_total{{verb=\"{}\",code=\"{}\"}} {}\n",
                    c.verb, c.code, c.count
                ));
            }
        }
        out
    }
}
