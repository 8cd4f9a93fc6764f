//! Plans that can run side by side: which plans qualify (pure), and their I/O on short-lived threads.
//!
//! A node flip queues every LoadBalancer; each needs a spec patch, then an updater call and a status
//! patch, and one after another they leave the worker waiting on round trips. Plans that change no
//! port claims cannot affect any other key's decision, so the worker collects up to [`MAX_BATCH`] of
//! them and runs their I/O at once (`run`, one scoped thread each). The threads only talk to the
//! API server and the updaters: the worker stays the one owner of the cache and applies each answer
//! afterwards, in each plan's order. A key in a batch stays "processing" in the queue until then, so
//! it is never reconciled twice at once (DESIGN, "Cost of a change").
//!
//! Must not: touch the cache, decide anything, or run a plan that creates a LoadBalancer, moves a
//! port, deletes a backend or changes finalizers (those stay one at a time on the worker).

use super::cache::{Cache, Key};
use super::plan::{Action, Plan, UpdaterRequest};
use super::ports::stored_ports;
use super::stats::Stats;
use crate::kube::Error;
use crate::kube::client::{Client, EVENTS, LOADBALANCERS, SERVICES};
use crate::kube::lease::Leadership;
use crate::model::{Event, LoadBalancerSpec};
use crate::updater::api::{LbRequest, Upstream};
use crate::updater::client::UpdaterClient;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Plans run at once: enough to keep both ends busy, few enough to stay polite to the API server
/// (client-go's default QPS is 5 per client with burst 10; these are writes of different objects).
pub const MAX_BATCH: usize = 4;

/// What one plan's I/O gave: the answers in action order, and how it ended.
pub type Outcome = (Vec<Answer>, Result<(), Stop>);

/// Why executing a plan stopped.
#[derive(Debug)]
pub enum Stop {
    /// An updater call (action `index`) failed.
    Updater {
        index: usize,
        message: String,
        kind: FailKind,
    },
    /// An API write (action `index`) failed.
    Api { index: usize, error: Error },
    /// Leadership was lost mid-plan: leave the key queued for the next leader.
    NotLeader,
}

/// What kind of updater failure stopped a plan: the worker reports refused credentials as
/// `UpdaterAuth`, and checks an updater for drift when it answers again after being unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailKind {
    #[default]
    Refused,
    Unreachable,
    Unauthorized,
}

impl FailKind {
    pub fn of(e: &crate::updater::Error) -> FailKind {
        if e.is_unauthorized() {
            FailKind::Unauthorized
        } else if e.is_transport() {
            FailKind::Unreachable
        } else {
            FailKind::Refused
        }
    }
}

/// The answer to one action, for the worker to apply to its cache. Objects come back as JSON text
/// and are decoded by the worker: what the cache keeps is then allocated by the worker's thread,
/// and the I/O threads' malloc arenas hold no object trees (measured in make bench at 1k: RSS 46 MiB
/// when the threads decoded, 42 MiB with a `Value` tree, see the notes in bench/README.md).
#[derive(Debug)]
pub enum Answer {
    /// A spec or status patch of the LoadBalancer: the stored object.
    LoadBalancer(Box<RawValue>),
    /// A Service status patch: the stored object, or None when the Service is gone.
    Service(Option<Box<RawValue>>),
    /// Updater calls and Events leave nothing to apply.
    Done,
}

/// Whether a plan may run beside others: only updater applies, Events, status patches, and spec
/// patches that keep the host and every (port, protocol) the cached LoadBalancer claims.
pub fn batchable(cache: &Cache, plan: &Plan) -> bool {
    plan.actions.iter().all(|a| match a {
        Action::UpdaterApply { .. }
        | Action::Event(_)
        | Action::PatchLoadBalancerStatus { .. }
        | Action::PatchServiceStatus { .. } => true,
        Action::PatchLoadBalancerSpec { key, patch } => {
            // Metadata beyond the precondition (finalizers, an adoption) stays one at a time.
            let only_precondition = patch["metadata"]
                .as_object()
                .is_none_or(|m| m.keys().all(|k| k == "resourceVersion"));
            let Some(old) = cache.load_balancers.get(key).filter(|_| only_precondition) else {
                return false;
            };
            // Read in place (no copy of the patch): this runs for every plan of a flip.
            let Ok(new) = LoadBalancerSpec::deserialize(&patch["spec"]) else {
                return false;
            };
            claims(&old.spec) == claims(&new)
        }
        _ => false,
    })
}

/// The host (lower case) and (port, protocol) pairs a spec holds on it.
fn claims(spec: &LoadBalancerSpec) -> Option<(String, BTreeSet<(u16, crate::model::Protocol)>)> {
    let host = spec.host.get()?.to_ascii_lowercase();
    let ports = stored_ports(spec)
        .into_iter()
        .map(|(_, p, proto)| (p, proto))
        .collect();
    Some((host, ports))
}

/// What the I/O threads share; everything in it is safe to use from several threads.
pub struct Io<'a> {
    pub client: &'a Client,
    /// One client per updater URL the batch uses (created by the worker beforehand).
    pub updaters: &'a BTreeMap<String, UpdaterClient>,
    pub stats: &'a Stats,
    pub leadership: &'a Leadership,
}

impl Io<'_> {
    /// `POST /api/v1/lb`, counted and logged.
    pub fn updater_apply(
        &self,
        key: &Key,
        url: &str,
        r: &UpdaterRequest,
    ) -> Result<(), (String, FailKind)> {
        let client = self
            .updaters
            .get(url)
            .ok_or_else(|| (format!("no client for updater {url}"), FailKind::Refused))?;
        let started = Instant::now();
        let result = client
            .apply(&lb_request(r))
            .map_err(|e| (e.to_string(), FailKind::of(&e)));
        self.stats
            .updater_call("apply", result.is_ok(), started.elapsed());
        if result.is_ok() {
            log::info!(
                "applied backend={} port={}/{} targets={} updater={url} key={key}",
                r.backend_name,
                r.lb_port,
                r.protocol,
                r.upstreams.len()
            );
        }
        result
    }

    /// POSTs a prepared Event; best effort, so a failure is only logged.
    pub fn post_event(&self, event: &Event) {
        let path = EVENTS.path(Some(&event.metadata.namespace), None, None);
        self.stats.api_write("event");
        if let Err(e) = self.client.create::<Value>(&path, event) {
            log::warn!(
                "posting event object={}/{} reason={} error={e}",
                event.involved_object.namespace,
                event.involved_object.name,
                event.reason
            );
        }
    }

    fn patch(&self, path: &str, patch: &Value) -> Result<Box<RawValue>, Error> {
        self.stats.api_write("patch");
        self.client.merge_patch(path, patch)
    }
}

/// Runs one batchable plan's I/O in order, stopping at the first failure. `events[i]` is the
/// prepared Event for action `i` (None: dropped by the rate limit, or not an Event).
pub fn run(io: &Io, plan: &Plan, events: &[Option<Event>]) -> Outcome {
    let mut answers = Vec::with_capacity(plan.actions.len());
    for (index, action) in plan.actions.iter().enumerate() {
        if !io.leadership.is_leader() {
            return (answers, Err(Stop::NotLeader));
        }
        let answer = match action {
            Action::UpdaterApply { key, url, request } => {
                if let Err((message, kind)) = io.updater_apply(key, url, request) {
                    return (
                        answers,
                        Err(Stop::Updater {
                            index,
                            message,
                            kind,
                        }),
                    );
                }
                Answer::Done
            }
            Action::Event(_) => {
                if let Some(Some(event)) = events.get(index) {
                    io.post_event(event);
                }
                Answer::Done
            }
            Action::PatchLoadBalancerSpec { key, patch }
            | Action::PatchLoadBalancerStatus { key, patch } => {
                let sub =
                    matches!(action, Action::PatchLoadBalancerStatus { .. }).then_some("status");
                let path = LOADBALANCERS.path(Some(&key.namespace), Some(&key.name), sub);
                match io.patch(&path, patch) {
                    Ok(lb) => Answer::LoadBalancer(lb),
                    Err(error) => return (answers, Err(Stop::Api { index, error })),
                }
            }
            Action::PatchServiceStatus { key, patch } => {
                let path = SERVICES.path(Some(&key.namespace), Some(&key.name), Some("status"));
                match io.patch(&path, patch) {
                    Ok(svc) => Answer::Service(Some(svc)),
                    // The Service went away meanwhile: its watch event will drive the cleanup.
                    Err(e) if e.is_not_found() => Answer::Service(None),
                    Err(error) => return (answers, Err(Stop::Api { index, error })),
                }
            }
            // Not batchable (see `batchable`): refuse rather than guess.
            _ => {
                return (
                    answers,
                    Err(Stop::Updater {
                        index,
                        message: "internal: action cannot run in a batch".into(),
                        kind: FailKind::Refused,
                    }),
                );
            }
        };
        answers.push(answer);
    }
    (answers, Ok(()))
}

/// The updater API's request for one backend.
/// The wire form of a port's traffic settings: an http check names its port and path, a tcp
/// check its port; intervals and thresholds are the updater's defaults.
fn api_traffic(t: &crate::model::LbTraffic) -> crate::updater::api::Traffic {
    crate::updater::api::Traffic {
        source_ranges: t.source_ranges.clone(),
        proxy_protocol: t.proxy_protocol,
        health_check: t
            .health_check
            .as_ref()
            .map(|h| crate::updater::api::HealthCheck {
                kind: h.kind.clone(),
                port: Some(h.port),
                path: (h.kind == "http").then(|| h.path.clone()),
                ..Default::default()
            }),
    }
}

pub fn lb_request(r: &UpdaterRequest) -> LbRequest {
    LbRequest {
        backend_name: r.backend_name.clone(),
        lb_port: r.lb_port,
        lb_protocol: r.protocol.clone(),
        upstream_servers: r
            .upstreams
            .iter()
            .map(|(host, port)| Upstream {
                host: host.clone(),
                port: *port,
                health: Default::default(),
            })
            .collect(),
        proxy_timeout_seconds: u64::from(r.proxy_timeout_seconds),
        proxy_connect_timeout_seconds: u64::from(r.proxy_connect_timeout_seconds),
        traffic: api_traffic(&r.traffic),
        // Marks the backend as ours, so drift repair may delete it once no LoadBalancer wants it.
        owner: Some(super::drift::OWNER.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::plan::{EventSpec, EventType};
    use crate::model::ObjectReference;
    use serde_json::json;

    fn spec(host: &str, port: u16, protocol: &str, target: &str) -> Value {
        let targets = json!([{"host": target, "port": 30080}]);
        json!({"host": host, "port": port, "protocol": protocol, "targets": targets,
            "ports": [{"name": "", "port": port, "protocol": protocol, "targets": targets}]})
    }

    fn cache() -> Cache {
        let mut c = Cache::new();
        let lb: crate::model::LoadBalancer = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web", "resourceVersion": "5"},
            "spec": spec("LB.example", 8000, "TCP", "127.0.0.2"),
        }))
        .unwrap();
        c.apply_load_balancer(lb);
        c
    }

    fn key(name: &str) -> Key {
        Key::new("ns", name)
    }

    fn spec_patch(name: &str, spec: Value) -> Action {
        Action::PatchLoadBalancerSpec {
            key: key(name),
            patch: json!({"metadata": {"resourceVersion": "5"}, "spec": spec}),
        }
    }

    fn apply() -> Action {
        Action::UpdaterApply {
            key: key("web"),
            url: "http://127.0.0.1:1".into(),
            request: UpdaterRequest {
                backend_name: "ns_web".into(),
                lb_port: 8000,
                protocol: "TCP".into(),
                upstreams: vec![("127.0.0.2".into(), 30080)],
                proxy_timeout_seconds: 0,
                proxy_connect_timeout_seconds: 0,
                traffic: Default::default(),
            },
        }
    }

    #[test]
    fn only_plans_that_keep_every_port_claim_are_batchable() {
        let event = Action::Event(EventSpec {
            object: ObjectReference::default(),
            type_: EventType::Normal,
            reason: "UpdaterApplied".into(),
            message: String::new(),
        });
        let status = Action::PatchLoadBalancerStatus {
            key: key("web"),
            patch: json!({"status": {}}),
        };
        let svc_status = Action::PatchServiceStatus {
            key: key("web"),
            patch: json!({"status": {}}),
        };
        let cases: Vec<(&str, Vec<Action>, bool)> = vec![
            (
                "apply, status, event, ingress",
                vec![apply(), status, event.clone(), svc_status],
                true,
            ),
            (
                "targets change only",
                vec![spec_patch(
                    "web",
                    spec("lb.example", 8000, "TCP", "127.0.0.3"),
                )],
                true,
            ),
            (
                "port moves",
                vec![spec_patch(
                    "web",
                    spec("lb.example", 8001, "TCP", "127.0.0.2"),
                )],
                false,
            ),
            (
                "protocol changes",
                vec![spec_patch(
                    "web",
                    spec("lb.example", 8000, "UDP", "127.0.0.2"),
                )],
                false,
            ),
            (
                "host changes",
                vec![spec_patch(
                    "web",
                    spec("lb2.example", 8000, "TCP", "127.0.0.2"),
                )],
                false,
            ),
            (
                "unknown LoadBalancer",
                vec![spec_patch(
                    "other",
                    spec("lb.example", 8000, "TCP", "127.0.0.2"),
                )],
                false,
            ),
            (
                "unreadable spec",
                vec![spec_patch("web", json!("nonsense"))],
                false,
            ),
            (
                "targets change with a finalizer added",
                vec![Action::PatchLoadBalancerSpec {
                    key: key("web"),
                    patch: json!({"metadata": {"resourceVersion": "5", "finalizers": ["f"]},
                        "spec": spec("lb.example", 8000, "TCP", "127.0.0.3")}),
                }],
                false,
            ),
            (
                "create",
                vec![Action::CreateLoadBalancer {
                    key: key("new"),
                    object: json!({}),
                }],
                false,
            ),
            (
                "a backend delete",
                vec![
                    apply(),
                    Action::UpdaterDelete {
                        key: key("web"),
                        url: "u".into(),
                        backend_name: "b".into(),
                    },
                ],
                false,
            ),
            (
                "finalizer",
                vec![Action::AddFinalizer {
                    key: key("web"),
                    finalizers: vec![],
                    resource_version: "5".into(),
                }],
                false,
            ),
            (
                "delete",
                vec![
                    event,
                    Action::DeleteLoadBalancer {
                        key: key("web"),
                        uid: "u".into(),
                    },
                ],
                false,
            ),
        ];
        let c = cache();
        for (name, actions, want) in cases {
            assert_eq!(batchable(&c, &Plan { actions }), want, "{name}");
        }
    }
}
