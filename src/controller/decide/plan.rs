//! What a reconcile decided: an ordered list of actions for the worker to execute.
//!
//! The worker runs the actions in order and stops at the first failure. Every API write returns the
//! object; the worker applies it to its cache at once, which queues the key again, so each next step
//! (e.g. the updater call after a spec patch bumped `generation`) is decided by the next reconcile
//! from fresh state rather than guessed here.
//! Pure: no I/O, no clock.

use super::status::backend_name;
use crate::controller::key::Key;
use crate::model::{
    API_VERSION, Event, EventMeta, EventSource, LOAD_BALANCER_KIND, LbPort, LbTraffic,
    LoadBalancer, LoadBalancerStatus, ObjectMeta, ObjectReference, Protocol,
};
use crate::updater::api::{LbRequest, Traffic, Upstream};
use crate::updater::validate::Balance;
use serde_json::{Value, json};

/// The `owner` paperlb's controller puts on every backend it writes.
pub const OWNER: &str = "paperlb";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An Event a decision asks for on the object it is about: its type, reason and message.
pub type Note = (EventType, &'static str, String);

/// A problem a user must act on: a condition and Event reason, and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// An Event to create (subject to the worker's `EventLimiter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    pub object: ObjectReference,
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

impl EventSpec {
    /// The core/v1 Event to POST to `/api/v1/namespaces/{namespace}/events`. `unique` makes the name
    /// unique (client-go uses the time in hex nanoseconds); `now` is an RFC 3339 time.
    pub fn to_event(&self, now: &str, unique: &str) -> Event {
        let ns = &self.object.namespace;
        let namespace = if ns.is_empty() { "default" } else { ns };
        Event {
            metadata: EventMeta {
                name: format!("{}.{unique}", self.object.name),
                namespace: namespace.to_string(),
            },
            involved_object: self.object.clone(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            type_: self.type_.as_str().to_string(),
            source: EventSource {
                component: "paperlb".to_string(),
            },
            first_timestamp: now.to_string(),
            last_timestamp: now.to_string(),
            count: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// POST the LoadBalancer (`object` is the full body, finalizer and ownerReference included).
    CreateLoadBalancer {
        key: Key,
        object: Value,
    },
    /// Merge patch of the main resource: `spec`, with `metadata.resourceVersion` (409 → requeue) and
    /// any metadata that had to change with it (finalizers, ownerReferences).
    PatchLoadBalancerSpec {
        key: Key,
        patch: Value,
    },
    /// Merge patch `{"metadata":{"finalizers":[..],"resourceVersion":rv}}` that adds our finalizer
    /// or removes it (full list: arrays are replaced whole).
    PatchFinalizers {
        key: Key,
        patch: Value,
    },
    /// `POST {url}/api/v1/lb`.
    UpdaterApply {
        key: Key,
        url: String,
        request: LbRequest,
    },
    /// `DELETE {url}/api/v1/lb`; a 404 from the updater counts as done.
    UpdaterDelete {
        key: Key,
        url: String,
        backend_name: String,
        /// On a host no longer in the spec: a failure is logged and the plan goes on (a host
        /// that is gone must not hold up the others).
        best_effort: bool,
    },
    /// Merge patch of the `/status` subresource.
    PatchLoadBalancerStatus {
        key: Key,
        patch: Value,
    },
    /// Merge patch of the Service's `/status` subresource.
    PatchServiceStatus {
        key: Key,
        patch: Value,
    },
    /// DELETE the LoadBalancer (precondition on `uid`, so a newer object of the same name survives);
    /// 404 counts as done.
    DeleteLoadBalancer {
        key: Key,
        uid: String,
    },
    /// Merge patch of a LoadBalancerConfig's `/status` (its `Accepted` condition); the watch
    /// brings the answer.
    PatchConfigStatus {
        key: Key,
        patch: Value,
    },
    /// A drift check's repair on updater `url`; a failure does not stop the plan.
    Repair {
        url: String,
        repair: Repair,
    },
    Event(EventSpec),
}

impl Action {
    /// An updater call's URL and backend name, with its request when it is an apply.
    pub fn updater_call(&self) -> Option<(&String, &String, Option<&LbRequest>)> {
        match self {
            Action::UpdaterApply { url, request, .. } => {
                Some((url, &request.backend_name, Some(request)))
            }
            Action::UpdaterDelete {
                url, backend_name, ..
            } => Some((url, backend_name, None)),
            _ => None,
        }
    }
}

/// One repair call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    Create(LbRequest),
    Update(LbRequest),
    Delete(String),
}

impl Repair {
    /// The metric label.
    pub fn action(&self) -> &'static str {
        match self {
            Repair::Create(_) => "create",
            Repair::Update(_) => "update",
            Repair::Delete(_) => "delete",
        }
    }

    pub fn backend_name(&self) -> &str {
        match self {
            Repair::Create(r) | Repair::Update(r) => &r.backend_name,
            Repair::Delete(n) => n,
        }
    }
}

/// The actions of one reconcile, in execution order. Empty when the world already matches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    pub fn of(action: Action) -> Plan {
        Plan {
            actions: vec![action],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The updater endpoints this plan calls, in order. `answered`: only those a plan that ran to
    /// its end heard from (a best-effort delete that failed is logged and the plan goes on).
    pub fn updater_endpoints(&self, answered: bool) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.actions {
            let url = match a {
                Action::UpdaterApply { url, .. } => url,
                Action::UpdaterDelete {
                    url, best_effort, ..
                } if !(answered && *best_effort) => url,
                _ => continue,
            };
            if let Ok(e) = crate::model::url::updater_endpoint(url) {
                out.push(e);
            }
        }
        out
    }

    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    pub fn event(&mut self, object: &ObjectReference, (type_, reason, message): Note) {
        self.push(Action::Event(EventSpec {
            object: object.clone(),
            type_,
            reason: reason.to_string(),
            message,
        }));
    }
}

/// The merge patch that writes a LoadBalancer's whole `status`.
pub fn status_patch(key: &Key, status: &LoadBalancerStatus) -> Action {
    Action::PatchLoadBalancerStatus {
        key: key.clone(),
        patch: json!({"status": status}),
    }
}

/// The object of `meta`, of `api_version` and `kind`, as an Event's object.
pub fn object_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
    }
}

/// `lb` as an Event's object.
pub fn lb_ref(lb: &LoadBalancer) -> ObjectReference {
    object_ref(API_VERSION, LOAD_BALANCER_KIND, &lb.metadata)
}

/// The request for port `i` of a spec (`POST /api/v1/lb`): what `apply` sends and what drift
/// repair (`drift`) expects an updater to hold, so the two can never disagree.
pub fn updater_request(
    key: &Key,
    i: usize,
    p: &LbPort,
    (proxy_timeout_seconds, proxy_connect_timeout_seconds): (u32, u32),
    traffic: &LbTraffic,
) -> LbRequest {
    let upstream = |t: &crate::model::Target| Upstream {
        // IPv6 in brackets: the Go updater renders `server {{.Host}}:{{.Port}};` as it gets it
        // (ours takes either form and lists it back as sent).
        host: match t.host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{}]", t.host),
            Err(_) => t.host.clone(),
        },
        port: t.port,
        health: Default::default(),
    };
    LbRequest {
        backend_name: backend_name(key, i, &p.name),
        lb_port: p.port,
        lb_protocol: p.protocol.as_str().to_string(),
        upstream_servers: p.targets.iter().map(upstream).collect(),
        proxy_timeout_seconds: u64::from(proxy_timeout_seconds),
        proxy_connect_timeout_seconds: u64::from(proxy_connect_timeout_seconds),
        // Unset timings: the updater's defaults.
        traffic: Traffic {
            source_ranges: traffic.source_ranges.clone(),
            // PROXY protocol is for TCP only; a UDP port is pushed without it.
            proxy_protocol: traffic.proxy_protocol && p.protocol == Protocol::Tcp,
            health_check: super::traffic::port_check(traffic, p.protocol).map(|h| h.to_api()),
            // Round robin is left out: the Go updater's requests are unchanged.
            balance: (traffic.balance != Balance::RoundRobin)
                .then(|| traffic.balance.as_str().into()),
        },
        // Marks the backend as ours, so drift repair may delete it once no LoadBalancer wants it.
        owner: Some(OWNER.to_string()),
    }
}
