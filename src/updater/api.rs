//! Wire types of the updater API, shared by the server and the client. Field names and shapes are
//! nginx-lb-updater's, so the Go controller and the Go updater interoperate with ours.
//! Must not: validate (that is `validate`) or do I/O.

use serde::{Deserialize, Serialize};

/// The path of the updater API, as nginx-lb-updater serves it.
pub const API_PATH: &str = "/api/v1/lb";

/// `POST /api/v1/lb`: serve `lb_port`/`lb_protocol` on the LB host, forwarding to `upstream_servers`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbRequest {
    /// `<namespace>_<name>` (further Service ports add a suffix); also the config file's name.
    pub backend_name: String,
    pub lb_port: u16,
    /// `"TCP"` or `"UDP"` as the Go controller sends it; any case is accepted.
    pub lb_protocol: String,
    pub upstream_servers: Vec<Upstream>,
    /// 0 (or absent) means the updater's default (nginx's own: 10 minutes).
    #[serde(default)]
    pub proxy_timeout_seconds: u64,
    /// 0 (or absent) means the updater's default (nginx's own: 60 seconds).
    #[serde(default)]
    pub proxy_connect_timeout_seconds: u64,
    /// Who wrote the backend (paperlb's controller sends `"paperlb"`); stored in the file's header
    /// and listed by GET, so a client can tell its own backends from others'. Absent in the Go
    /// controller's requests, and never sent when unset, so Go peers see the same JSON as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Our additions (source ranges, PROXY protocol, health check, balancing); all optional and left out of
    /// the JSON when unset, so the Go controller's requests and our answers to it are unchanged.
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// Optional request fields beyond nginx-lb-updater's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// CIDRs allowed to connect (`allow` lines, then `deny all`); empty = everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ranges: Vec<String>,
    /// Send a PROXY protocol v1 header to the upstreams (TCP only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy_protocol: bool,
    /// Active health checking of the upstreams; absent = none (every upstream is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How nginx picks an upstream: `least-conn`, `hash` (of the client address, consistent) or
    /// `random-two`; absent (or `round-robin`) = nginx's round robin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
}

/// `healthCheck` as sent; absent fields take the defaults in `validate::health_check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// `tcp` or `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Port to probe on each upstream's host; absent = the upstream's own port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
}

/// One upstream server: an IP literal or DNS name, and a port (a node's NodePort).
/// Equality is by `host` and `port` only: `health` is a report, so an upstream read back from
/// `GET` equals the one that was sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    /// Only in `GET` answers, for backends with a health check; ignored in requests.
    #[serde(flatten)]
    pub health: UpstreamHealth,
}

impl PartialEq for Upstream {
    fn eq(&self, other: &Self) -> bool {
        (&self.host, self.port) == (&other.host, other.port)
    }
}

impl Eq for Upstream {}

/// An upstream's health as `GET /api/v1/lb` reports it (absent without a health check).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamHealth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// RFC 3339 time of the last completed check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
}

/// `DELETE /api/v1/lb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteRequest {
    pub backend_name: String,
}

/// `GET /api/v1/lb`: what is configured, read back from the streams directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListResponse {
    pub backends: Vec<ListedBackend>,
    /// Files in the directory that could not be read back (hand-written, truncated, foreign).
    #[serde(default)]
    pub unreadable: Vec<Unreadable>,
    /// Addition: the answering updater's version (`paperlb check` shows it); absent from older ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One backend of a GET answer: the request its file's header holds (fields at the top level, as
/// in a POST body), and whether the file still is what that request renders to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListedBackend {
    #[serde(flatten)]
    pub request: LbRequest,
    /// `true` when the file's content is not what the updater would write for the request in its
    /// header today (edited by hand, or refused by the current policy): POSTing the wanted request
    /// rewrites it. Omitted when `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub modified: bool,
}

/// A `.conf` file in the streams directory that has no readable request header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub file: String,
    pub err: String,
}

/// Error body of every 4xx/5xx answer, as nginx-lb-updater sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrBody {
    pub err: String,
}
