//! Our custom resources (`lb.paperlb.com/v1alpha1`) as stored: user-written scalars are `Lenient`.
//! Field names follow the Go PaperLB CRDs so existing YAML applies; additions are optional.
//! Pure: no I/O, no clock.

use super::lenient::{Lenient, lenient_list, lenient_object, null_default, or_default};
use super::meta::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize};
use std::ops::Deref;
use std::sync::Arc;

pub const API_VERSION: &str = "lb.paperlb.com/v1alpha1";
pub const LOAD_BALANCER_KIND: &str = "LoadBalancer";
pub const CONFIG_KIND: &str = "LoadBalancerConfig";
/// Annotation on a Service naming its LoadBalancerConfig (in the controller's namespace).
pub const CONFIG_ANNOTATION: &str = "lb.paperlb.com/config-name";
/// Finalizer that holds a LoadBalancer until its updater backends are deleted.
pub const FINALIZER: &str = "lb.paperlb.com/lb-finalizer";
/// The `spec.loadBalancerClass` we answer to (an unset class is ours too).
pub const DEFAULT_CLASS: &str = "lb.paperlb.com/paperlb-class";

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LoadBalancerConfig {
    #[serde(deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(deserialize_with = "or_default")]
    pub spec: LoadBalancerConfigSpec,
    /// Written only by the controller (status subresource): whether the spec is usable.
    #[serde(deserialize_with = "or_default")]
    pub status: LoadBalancerConfigStatus,
}

/// A LoadBalancerConfig's status: the `Accepted` condition, for the spec of `observedGeneration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerConfigStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerConfigSpec {
    pub default: Lenient<bool>,
    /// The fields a host has, at the top of the spec (its `name` is not read): the Go form's
    /// `host` and `httpUpdaterURL`, and the credentials every host of `hosts` inherits (additions:
    /// `updaterTokenSecretRef`, a Secret in the controller's namespace holding the updater's
    /// bearer token, key `token` by default, absent = no `Authorization` header as with the Go
    /// nginx-lb-updater; `updaterCASecretRef`, the CA, PEM under key `ca.crt` by default, an
    /// `https://` updater's certificate is verified against, absent = the system roots;
    /// `insecureSkipVerify`, accept any certificate, with a warning logged).
    #[serde(flatten)]
    pub base: HostSpec,
    #[serde(deserialize_with = "or_default")]
    pub port_range: PortRangeSpec,
    /// Addition: node address types to try, in order; empty: the controller's `--address-type`.
    #[serde(deserialize_with = "or_default")]
    pub target_address_types: Vec<Lenient<String>>,
    /// Addition: nginx `proxy_timeout` in seconds; 0 or absent = the updater's default (10m).
    pub proxy_timeout_seconds: Lenient<i64>,
    /// Addition: nginx `proxy_connect_timeout` in seconds; 0 or absent = the updater's default (60s).
    pub proxy_connect_timeout_seconds: Lenient<i64>,
    /// Addition: replaces the health check paperlb derives from each Service (`type: none` turns
    /// checks off); absent = the derived check with the updater's timings.
    pub health_check: Lenient<HealthCheckResource>,
    /// Addition: several LB hosts (`[{name, host, httpUpdaterURL}]`), instead of `host` and
    /// `httpUpdaterURL`; each Service gets the same LB port on every one.
    pub hosts: Lenient<Vec<HostSpec>>,
}

/// Intervals and thresholds of a health check as written (absent = the updater's defaults).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CheckTimingsResource {
    pub interval_seconds: Lenient<i64>,
    pub timeout_seconds: Lenient<i64>,
    pub unhealthy_threshold: Lenient<i64>,
    pub healthy_threshold: Lenient<i64>,
}

/// `{name, key}` of a Secret in the controller's namespace (a value that is not an object stays
/// raw in the `Lenient` around it, and validation names the field).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SecretKeyRef {
    pub name: Lenient<String>,
    pub key: Lenient<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PortRangeSpec {
    pub low: Lenient<i64>,
    pub high: Lenient<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LoadBalancer {
    #[serde(deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    /// Every field below is forgiving, so the spec (thousands of targets in a watch) is decoded
    /// straight from the stream.
    #[serde(deserialize_with = "lenient_object")]
    pub spec: LoadBalancerSpec,
    /// A mangled status reads as empty, which only means "apply again".
    #[serde(deserialize_with = "or_default")]
    pub status: LoadBalancerStatus,
}

/// The stored spec. The Go fields (`port`, `protocol`, `targets`) describe the first Service port;
/// `ports` (an addition) lists every port. Use `LbSpec::from_resource` to read it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    pub config_name: Lenient<String>,
    #[serde(deserialize_with = "lenient_object")]
    pub http_updater: HttpUpdaterSpec,
    pub host: Lenient<String>,
    pub port: Lenient<i64>,
    pub protocol: Lenient<String>,
    #[serde(deserialize_with = "lenient_targets")]
    pub targets: Targets,
    #[serde(deserialize_with = "lenient_list")]
    pub ports: Vec<LoadBalancerPortSpec>,
    /// Addition: nginx `proxy_timeout` in seconds, copied from the config so a change of it is a
    /// spec change (applied again); 0 or absent = the config's, else the updater's default.
    pub proxy_timeout_seconds: Lenient<i64>,
    /// Addition: nginx `proxy_connect_timeout` in seconds; as `proxy_timeout_seconds`.
    pub proxy_connect_timeout_seconds: Lenient<i64>,
    /// Addition: client CIDRs allowed (the Service's `loadBalancerSourceRanges`); empty = all.
    #[serde(deserialize_with = "or_default")]
    pub source_ranges: Vec<Lenient<String>>,
    /// Addition: send PROXY protocol v1 to the upstreams of TCP ports.
    pub proxy_protocol: Lenient<bool>,
    /// Addition: the updater's active health check of the targets; absent = none.
    #[serde(deserialize_with = "lenient_object")]
    pub health_check: HealthCheckResource,
    /// Addition: `least-conn`, `hash` or `random-two`; absent = round robin.
    pub balance: Lenient<String>,
    /// Addition: every LB host when the config lists `hosts` (the Go fields then name the first);
    /// empty = the Go form, one host.
    #[serde(deserialize_with = "lenient_list")]
    pub hosts: Vec<HostSpec>,
}

/// `spec.healthCheck` of a LoadBalancer: `{type: http|tcp, port, path}` and, when its config
/// overrides them, the timings. In a LoadBalancerConfig every field is optional (type `none` too):
/// absent ones keep what the Service's check would have (type, port, path) or the updater's
/// defaults (timings).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HealthCheckResource {
    #[serde(rename = "type")]
    pub type_: Lenient<String>,
    pub port: Lenient<i64>,
    pub path: Lenient<String>,
    #[serde(flatten)]
    pub timings: CheckTimingsResource,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HttpUpdaterSpec {
    pub url: Lenient<String>,
}

impl LoadBalancerSpec {
    /// The LB hosts as written (not validated): `host` and every `hosts[].host`.
    pub fn written_hosts(&self) -> impl Iterator<Item = &String> {
        let hosts = self.hosts.iter().filter_map(|h| h.host.get());
        self.host.get().into_iter().chain(hosts)
    }

    /// The updater URLs as written: `httpUpdater.url` and every `hosts[].httpUpdaterURL`.
    pub fn written_urls(&self) -> impl Iterator<Item = &String> {
        let urls = self.hosts.iter().filter_map(|h| h.http_updater_url.get());
        self.http_updater.url.get().into_iter().chain(urls)
    }

    /// In what earlier versions wrote, the Go field `targets` repeats `ports[0].targets` (paperlb
    /// now leaves the latter out): let both point at one list, so the cache holds them once.
    pub fn share_first_port_targets(&mut self) {
        if let Some(first) = self.ports.first()
            && first.targets == self.targets
            && !Arc::ptr_eq(&first.targets.0, &self.targets.0)
        {
            self.targets = first.targets.clone();
        }
    }
}

/// One copy of each target host string per decoding thread (see `lenient_targets`): at 1,000
/// LoadBalancers over 100 nodes a LIST would otherwise hold 100,000 small strings (one allocation
/// each) for 100 distinct addresses. Bounded: hosts no LoadBalancer uses any more are dropped
/// whenever the table has doubled since the last sweep.
#[derive(Debug, Default)]
struct HostTable {
    hosts: std::collections::BTreeSet<Arc<str>>,
    sweep_at: usize,
}

impl HostTable {
    /// Points every valid target host at the table's copy of the same text, adding it if new.
    fn intern_all(&mut self, targets: &mut [TargetSpec]) {
        for t in targets {
            let Lenient::Valid(host) = &mut t.host else {
                continue;
            };
            if let Some(shared) = self.hosts.get(&**host) {
                *host = shared.clone();
                continue;
            }
            if self.hosts.len() >= self.sweep_at {
                self.hosts.retain(|h| Arc::strong_count(h) > 1);
                self.sweep_at = (2 * self.hosts.len()).max(256);
            }
            self.hosts.insert(host.clone());
        }
    }
}

#[cfg(test)]
impl HostTable {
    fn len(&self) -> usize {
        self.hosts.len()
    }
}

/// A list of targets that can be shared (see `LoadBalancerSpec::share_first_port_targets`); reads as
/// a slice and compares as the list. One allocation of exactly its length: a decoded
/// `Vec` of 100 targets has room for 128, and the cache keeps one list per LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Targets(Arc<[TargetSpec]>);

impl Deref for Targets {
    type Target = [TargetSpec];
    fn deref(&self) -> &[TargetSpec] {
        &self.0
    }
}

/// `lenient_list` for a `Targets` field. Each host is shared with the ones this thread decoded
/// before as it is decoded: a watch's LIST of 1,000 LoadBalancers over 100 nodes would otherwise
/// hold 200,000 host strings, which set a warm restart's memory peak.
fn lenient_targets<'de, D: Deserializer<'de>>(d: D) -> Result<Targets, D::Error> {
    let mut targets: Vec<TargetSpec> = lenient_list(d)?;
    DECODED_HOSTS.with(|table| table.borrow_mut().intern_all(&mut targets));
    Ok(Targets(targets.into()))
}

thread_local! {
    /// The hosts of the targets decoded on this thread (see `lenient_targets`).
    static DECODED_HOSTS: std::cell::RefCell<HostTable> = std::cell::RefCell::default();
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TargetSpec {
    /// Shared: every LoadBalancer lists the same node addresses (see `lenient_targets`).
    pub host: Lenient<Arc<str>>,
    pub port: Lenient<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerPortSpec {
    pub name: Lenient<String>,
    pub port: Lenient<i64>,
    pub protocol: Lenient<String>,
    pub node_port: Lenient<i64>,
    #[serde(deserialize_with = "lenient_targets")]
    pub targets: Targets,
}

/// Written only by the controller, through the status subresource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerStatus {
    /// `PENDING`, `READY`, `DEGRADED` (some of several hosts serve) or `ERROR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Addition, with several LB hosts: `serving/total` hosts (the `HOSTS` column). Always
    /// written (`null` removes it in a merge patch).
    pub hosts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_count: Option<i64>,
    /// The `metadata.generation` whose spec the updater last accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    pub conditions: Vec<Condition>,
    /// Where backends were pushed, so they can be deleted after the spec moved them elsewhere.
    #[serde(deserialize_with = "null_default")]
    pub applied: Vec<AppliedBackend>,
    /// Addition: each port's upstreams that pass the updater's health check, as its drift check's
    /// `GET /api/v1/lb` last reported (ports without a check are not listed).
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<PortHealth>,
    /// Addition: `ready/total` over `ports` (the `HEALTHY` column); absent without health reports.
    /// Always written (`null` removes it in a merge patch).
    pub healthy: Option<String>,
}

/// One port's health in a LoadBalancer's status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PortHealth {
    pub name: String,
    pub port: i64,
    pub protocol: String,
    /// Upstreams passing their check.
    pub ready: i64,
    pub total: i64,
    /// `host:port` of the upstreams failing it (so a re-apply can carry the figure forward).
    #[serde(deserialize_with = "null_default")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<String>,
}

pub const PHASE_PENDING: &str = "PENDING";
pub const PHASE_READY: &str = "READY";
pub const PHASE_ERROR: &str = "ERROR";

/// A Kubernetes-style condition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One backend the updater accepted: its name at an updater URL, and what it listens on.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AppliedBackend {
    pub backend_name: String,
    pub url: String,
    pub host: String,
    pub port: i64,
    pub protocol: String,
}

impl AppliedBackend {
    /// The same backend name on the same updater endpoint (either spelling of its URL).
    pub fn same_place(&self, other: &AppliedBackend) -> bool {
        self.backend_name == other.backend_name && super::url::same_updater(&self.url, &other.url)
    }

    /// The same LB port and protocol on the same updater endpoint.
    pub fn same_port(&self, other: &AppliedBackend) -> bool {
        self.port == other.port
            && self.protocol.eq_ignore_ascii_case(&other.protocol)
            && super::url::same_updater(&self.url, &other.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn first_port_targets_are_shared_without_changing_the_object() {
        let targets =
            json!([{"host": "127.0.0.2", "port": 30080}, {"host": "127.0.0.3", "port": 30080}]);
        let text = json!({"spec": {"host": "h", "port": 8000, "targets": targets,
            "ports": [{"name": "", "port": 8000, "targets": targets}, {"name": "b", "port": 8001, "targets": []}]}});
        let mut lb: LoadBalancer = serde_json::from_value(text.clone()).unwrap();
        let before = lb.clone();
        assert!(!Arc::ptr_eq(
            &lb.spec.targets.0,
            &lb.spec.ports[0].targets.0
        ));
        lb.spec.share_first_port_targets();
        assert!(Arc::ptr_eq(&lb.spec.targets.0, &lb.spec.ports[0].targets.0));
        assert_eq!(lb, before);

        // Different lists stay apart.
        let mut odd: LoadBalancer = serde_json::from_value(json!({"spec": {"targets": targets,
            "ports": [{"port": 8000, "targets": [{"host": "127.0.0.9", "port": 1}]}]}}))
        .unwrap();
        odd.spec.share_first_port_targets();
        assert!(!Arc::ptr_eq(
            &odd.spec.targets.0,
            &odd.spec.ports[0].targets.0
        ));
        assert_eq!(odd.spec.targets.len(), 2);
    }

    #[test]
    fn interned_target_hosts_are_one_copy_and_change_nothing_else() {
        let text = |port: i64| {
            json!({"spec": {"host": "h", "port": port,
                "targets": [{"host": "127.0.1.1", "port": 30080}, {"host": 5, "port": 30080}],
                "ports": [{"port": port, "targets": [{"host": "127.0.1.1", "port": 30080},
                    {"host": "127.0.1.2", "port": 30080}]}]}})
        };
        let mut specs = Vec::new();
        for port in [8000, 8001] {
            let lb: LoadBalancer = serde_json::from_value(text(port)).unwrap();
            // Each list reads as written (a Lenient host compares by its text).
            let want = &text(port)["spec"];
            let as_written = |list: &Value| -> Vec<TargetSpec> {
                let list = list.as_array().unwrap().iter();
                list.map(|t| TargetSpec {
                    host: Lenient::from_value(t["host"].clone()),
                    port: Lenient::from_value(t["port"].clone()),
                })
                .collect()
            };
            assert_eq!(*lb.spec.targets, as_written(&want["targets"])[..]);
            let first = &lb.spec.ports[0].targets;
            assert_eq!(**first, as_written(&want["ports"][0]["targets"])[..]);
            specs.push(lb.spec);
        }
        let host = |spec: &LoadBalancerSpec, port: usize, i: usize| -> Arc<str> {
            let list = if port == 0 {
                &spec.targets
            } else {
                &spec.ports[port - 1].targets
            };
            list[i].host.get().cloned().unwrap()
        };
        // The same address in the Go list, in ports[0], and in the other LoadBalancer: one copy.
        let first = host(&specs[0], 0, 0);
        for (s, p, i) in [(0, 1, 0), (1, 0, 0), (1, 1, 0)] {
            assert!(Arc::ptr_eq(&first, &host(&specs[s], p, i)));
        }
        assert!(Arc::ptr_eq(&host(&specs[0], 1, 1), &host(&specs[1], 1, 1)));
        // A wrong-typed host stays raw and is not interned.
        assert_eq!(
            specs[0].targets[1].host,
            Lenient::Invalid(Box::new(json!(5)))
        );
        assert_eq!(DECODED_HOSTS.with(|t| t.borrow().len()), 2);
    }

    #[test]
    fn decoded_targets_share_their_hosts() {
        let lb = |port: i64| -> LoadBalancer {
            serde_json::from_value(json!({"spec": {"host": "h", "port": port,
                "targets": [{"host": "127.9.0.1", "port": 30080}],
                "ports": [{"port": port, "targets": [{"host": "127.9.0.1", "port": 30080}]}]}}))
            .unwrap()
        };
        let (a, b) = (lb(8000), lb(8001));
        let host = |t: &TargetSpec| t.host.get().cloned().unwrap();
        let first = host(&a.spec.targets[0]);
        assert_eq!(&*first, "127.9.0.1");
        assert!(Arc::ptr_eq(&first, &host(&a.spec.ports[0].targets[0])));
        assert!(Arc::ptr_eq(&first, &host(&b.spec.targets[0])));
    }

    #[test]
    fn host_table_drops_hosts_no_longer_used() {
        let target = |host: String| TargetSpec {
            host: Lenient::Valid(host.into()),
            port: Lenient::Valid(1),
        };
        let mut table = HostTable::default();
        let mut kept = [target("10.0.0.1".into())];
        table.intern_all(&mut kept);
        for i in 0..10_000 {
            table.intern_all(&mut [target(format!("10.1.{}.{}", i / 256, i % 256))]);
        }
        assert!(table.len() <= 512, "{}", table.len());
        let mut again = [target("10.0.0.1".into())];
        table.intern_all(&mut again);
        assert!(
            Arc::ptr_eq(kept[0].host.get().unwrap(), again[0].host.get().unwrap()),
            "a host still in use keeps its copy"
        );
    }
}

/// One entry of `spec.hosts` as stored, in a LoadBalancerConfig or a LoadBalancer (which the
/// controller writes from its config, and which is checked again when read, as everything in a
/// LoadBalancer may be hand-edited). The credentials are optional and replace the config's own for
/// this host; a LoadBalancer's entries have none (its config's are used).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HostSpec {
    pub name: Lenient<String>,
    pub host: Lenient<String>,
    #[serde(rename = "httpUpdaterURL")]
    pub http_updater_url: Lenient<String>,
    pub updater_token_secret_ref: Lenient<SecretKeyRef>,
    #[serde(rename = "updaterCASecretRef")]
    pub updater_ca_secret_ref: Lenient<SecretKeyRef>,
    pub insecure_skip_verify: Lenient<bool>,
}
