//! `Context`: what a reconcile needs besides the cache (namespace, class, address types, the time
//! passed in, the failing updater endpoints). Pure: no I/O, no clock.

use crate::model::{DEFAULT_CLASS, EXTERNAL_IP, INTERNAL_IP};

/// Default `--host-failure-grace`: 30 s.
pub const DEFAULT_HOST_GRACE_MS: u64 = 30_000;

/// Default `--unreachable-delete-grace`: 5 minutes.
pub const DEFAULT_UNREACHABLE_DELETE_GRACE_MS: u64 = 300_000;

/// What a reconcile needs besides the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    /// Where LoadBalancerConfigs live (`paperlb-system` by default).
    pub namespace: String,
    /// RFC 3339 time for condition transitions.
    pub now: String,
    /// The `spec.loadBalancerClass` we answer to; an unset class is ours too.
    pub class_name: String,
    /// Node address types, in order of preference, for configs that name none (`--address-type`).
    pub address_types: Vec<String>,
    /// Milliseconds since the epoch (the same instant as `now`).
    pub now_ms: u64,
    /// Updater endpoints that are failing, each with the time of its last good answer (ms since
    /// the epoch); a failing host of several gets no calls.
    pub failing: std::collections::BTreeMap<String, u64>,
    /// `--host-failure-grace` in ms: how long a failing host stays in the ingress.
    pub host_grace_ms: u64,
    /// `--unreachable-delete-grace` in ms: how long an updater that does not answer may hold a
    /// LoadBalancer's deletion (see `stuck_delete`).
    pub delete_grace_ms: u64,
    /// `--stable-node-set`: with a health check in force, NotReady nodes stay targets (KEP-3458).
    pub stable_node_set: bool,
    /// Updater endpoints without `GET /api/v1/lb` (the Go nginx-lb-updater): they run no health
    /// checks, so their LoadBalancers' targets follow node readiness.
    pub without_checks: std::collections::BTreeSet<String>,
}

impl Context {
    pub fn new(namespace: &str, now: &str) -> Context {
        Context {
            namespace: namespace.to_string(),
            now: now.to_string(),
            class_name: DEFAULT_CLASS.to_string(),
            address_types: vec![EXTERNAL_IP.to_string(), INTERNAL_IP.to_string()],
            now_ms: 0,
            failing: std::collections::BTreeMap::new(),
            host_grace_ms: DEFAULT_HOST_GRACE_MS,
            delete_grace_ms: DEFAULT_UNREACHABLE_DELETE_GRACE_MS,
            stable_node_set: true,
            without_checks: std::collections::BTreeSet::new(),
        }
    }
}
