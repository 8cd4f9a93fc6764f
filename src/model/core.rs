//! Built-in kinds: Service, Node, EndpointSlice, Secret (read), Event (created). The Lease is
//! handled as JSON by `kube::lease`, which writes back what it read.
//! The apiserver validates these, so fields have plain types; `null` lists decode as empty.
//! Pure: no I/O, no clock.

use super::lenient::null_default;
use super::meta::{ObjectMeta, ObjectReference};
use serde::{Deserialize, Serialize};

/// A Secret as read: its data still base64 (as on the wire), decoded only for the keys a
/// LoadBalancerConfig references (`controller::run::secrets` keeps nothing else).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Secret {
    #[serde(deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    /// Key → base64 of the value; `null` values read as absent keys.
    #[serde(deserialize_with = "null_default")]
    pub data: std::collections::BTreeMap<String, Option<String>>,
}

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Service {
    #[serde(deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(deserialize_with = "null_default")]
    pub spec: ServiceSpec,
    #[serde(deserialize_with = "null_default")]
    pub status: ServiceStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub ports: Vec<ServicePort>,
    pub load_balancer_class: Option<String>,
    /// `IPv4` and/or `IPv6`, primary first (empty on servers before dual stack, and in Go examples).
    #[serde(deserialize_with = "null_default")]
    pub ip_families: Vec<String>,
    pub external_traffic_policy: Option<String>,
    pub allocate_load_balancer_node_ports: Option<bool>,
    /// Client CIDRs allowed to reach the load balancer (empty: everyone).
    #[serde(deserialize_with = "null_default")]
    pub load_balancer_source_ranges: Vec<String>,
    /// kube-proxy's per-Service health check port (set for `externalTrafficPolicy: Local`).
    pub health_check_node_port: Option<i32>,
    /// `ClientIP` keeps a client on one node (a consistent hash on the LB host); `None` or absent.
    pub session_affinity: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    /// Absent means TCP (the apiserver defaults it, but a bookmark or old object may lack it).
    pub protocol: Option<String>,
    pub port: i32,
    pub node_port: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(deserialize_with = "null_default")]
    pub load_balancer: LoadBalancerIngressStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LoadBalancerIngressStatus {
    #[serde(deserialize_with = "null_default")]
    pub ingress: Vec<Ingress>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Ingress {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_mode: Option<String>,
    #[serde(deserialize_with = "null_default")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortStatus {
    pub port: i32,
    pub protocol: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Node {
    #[serde(deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(deserialize_with = "null_default")]
    pub spec: NodeSpec,
    #[serde(deserialize_with = "null_default")]
    pub status: NodeStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeSpec {
    #[serde(deserialize_with = "null_default")]
    pub taints: Vec<Taint>,
    #[serde(deserialize_with = "null_default")]
    pub unschedulable: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Taint {
    /// Only the key is read (`ToBeDeletedByClusterAutoscaler`), whatever the effect.
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    #[serde(deserialize_with = "null_default")]
    pub conditions: Vec<NodeCondition>,
    #[serde(deserialize_with = "null_default")]
    pub addresses: Vec<NodeAddress>,
}

/// Only type and status: heartbeat times change every few minutes and must not look like a change.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub type_: String,
    pub address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EndpointSlice {
    #[serde(deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(deserialize_with = "null_default")]
    pub endpoints: Vec<Endpoint>,
}

impl EndpointSlice {
    /// The Service this slice belongs to (label `kubernetes.io/service-name`).
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(deserialize_with = "null_default")]
    pub conditions: EndpointConditions,
    pub node_name: Option<String>,
}

/// Absent `ready` means true (discovery/v1); `serving` and `terminating` are not read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct EndpointConditions {
    pub ready: Option<bool>,
}

impl Endpoint {
    pub fn is_ready(&self) -> bool {
        self.conditions.ready.unwrap_or(true)
    }
}

/// core/v1 Event, as created by the controller (and read by `paperlb explain`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Event {
    pub metadata: EventMeta,
    pub involved_object: ObjectReference,
    pub reason: String,
    pub message: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub source: EventSource,
    pub first_timestamp: String,
    pub last_timestamp: String,
    pub count: i32,
}

/// An Event's metadata: the name and namespace it is created with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventMeta {
    pub name: String,
    pub namespace: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventSource {
    pub component: String,
}
