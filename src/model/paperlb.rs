//! Our custom resources (`lb.paperlb.com/v1alpha1`) as stored: user-written scalars are `Lenient`.
//! Field names follow the Go PaperLB CRDs so existing YAML applies; additions are optional.
//! Pure: no I/O, no clock.

use super::lenient::{Lenient, lenient_list, lenient_object, null_default, or_default};
use super::meta::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::Deref;
use std::sync::Arc;

pub const GROUP: &str = "lb.paperlb.com";
pub const API_VERSION: &str = "lb.paperlb.com/v1alpha1";
pub const LOAD_BALANCER_KIND: &str = "LoadBalancer";
pub const CONFIG_KIND: &str = "LoadBalancerConfig";
/// Annotation on a Service naming its LoadBalancerConfig (in the controller's namespace).
pub const CONFIG_ANNOTATION: &str = "lb.paperlb.com/config-name";
/// Finalizer that holds a LoadBalancer until its updater backends are deleted.
pub const FINALIZER: &str = "lb.paperlb.com/lb-finalizer";
/// The `spec.loadBalancerClass` we answer to (an unset class is ours too).
pub const DEFAULT_CLASS: &str = "lb.paperlb.com/paperlb-class";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadBalancerConfig {
    #[serde(deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(deserialize_with = "or_default")]
    pub spec: LoadBalancerConfigSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LoadBalancerConfigSpec {
    pub default: Lenient<bool>,
    #[serde(rename = "httpUpdaterURL")]
    pub http_updater_url: Lenient<String>,
    pub host: Lenient<String>,
    #[serde(deserialize_with = "or_default")]
    pub port_range: PortRangeSpec,
    /// Addition: node address types to try, in order (default `[ExternalIP, InternalIP]`).
    #[serde(deserialize_with = "or_default")]
    pub target_address_types: Vec<Lenient<String>>,
    /// Addition: nginx `proxy_timeout` in seconds; 0 or absent = the updater's default (10m).
    pub proxy_timeout_seconds: Lenient<i64>,
    /// Addition: nginx `proxy_connect_timeout` in seconds; 0 or absent = the updater's default (60s).
    pub proxy_connect_timeout_seconds: Lenient<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortRangeSpec {
    pub low: Lenient<i64>,
    pub high: Lenient<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpUpdaterSpec {
    pub url: Lenient<String>,
}

impl LoadBalancerSpec {
    /// In everything paperlb writes, the Go field `targets` repeats `ports[0].targets`: let both
    /// point at one list, so the cache holds each LoadBalancer's targets once, not twice.
    pub fn share_first_port_targets(&mut self) {
        if let Some(first) = self.ports.first() {
            if first.targets == self.targets && !Arc::ptr_eq(&first.targets.0, &self.targets.0) {
                self.targets = first.targets.clone();
            }
        }
    }
}

/// A list of targets that can be shared (see `LoadBalancerSpec::share_first_port_targets`); reads as
/// a slice, compares and serializes as the list. One allocation of exactly its length: a decoded
/// `Vec` of 100 targets has room for 128, and the cache keeps one list per LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Targets(Arc<[TargetSpec]>);

impl Targets {
    pub fn new(targets: Vec<TargetSpec>) -> Targets {
        Targets(targets.into())
    }
}

impl Deref for Targets {
    type Target = [TargetSpec];
    fn deref(&self) -> &[TargetSpec] {
        &self.0
    }
}

impl Serialize for Targets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self[..].serialize(s)
    }
}

/// `lenient_list` for a `Targets` field.
fn lenient_targets<'de, D: Deserializer<'de>>(d: D) -> Result<Targets, D::Error> {
    lenient_list(d).map(Targets::new)
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetSpec {
    pub host: Lenient<String>,
    pub port: Lenient<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// `PENDING`, `READY` or `ERROR`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(
            serde_json::to_value(&lb).unwrap(),
            serde_json::to_value(&before).unwrap()
        );

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
}
