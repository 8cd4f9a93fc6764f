//! No targets is a normal state, not an error (issue 22): a Service with `externalTrafficPolicy:
//! Local` and no ready endpoint (scaled to 0, a rollout, a crash loop), or no eligible node at all.
//! The updater refuses an empty upstream list, so a port without targets is not POSTed: its backend
//! is deleted from the LB host (nginx stops listening there, and clients get a fast refusal, not a
//! hang). Its LB port stays allocated and in the Service's ingress; `Ready=False` with reason
//! `NoTargets` says why; one Event per transition. Targets coming back change the spec, which is
//! pushed again.
//! Pure: no I/O, no clock.

use super::plan::EventType;
use super::status::{READY, condition, set_condition};
use super::targets::node_eligible;
use crate::controller::cache::Cache;
use crate::controller::key::Key;
use crate::model::{LbSpec, LoadBalancerStatus, Service};

pub const NO_TARGETS: &str = "NoTargets";

/// Why the Service's ports have no target, for the condition and the Event.
pub fn why(cache: &Cache, key: &Key, svc: &Service) -> String {
    let eligible = cache
        .nodes
        .values()
        .filter(|n| node_eligible(n, false))
        .count();
    if svc.spec.external_traffic_policy.as_deref() == Some("Local") {
        let with_endpoints = cache.local_nodes(key);
        if with_endpoints.is_empty() {
            return "no node has a ready endpoint of the Service (externalTrafficPolicy: Local)"
                .to_string();
        }
        let names: Vec<&str> = with_endpoints.iter().map(String::as_str).collect();
        return format!(
            "no eligible node has a ready endpoint of the Service (externalTrafficPolicy: Local; \
             endpoints on {}, which are not Ready, excluded, being deleted or have no address of \
             the configured types)",
            names.join(", ")
        );
    }
    if eligible == 0 {
        format!(
            "no eligible node (of {} node(s), none is Ready and not excluded or being deleted)",
            cache.nodes.len()
        )
    } else {
        format!("no eligible node has an address of the configured types ({eligible} eligible)")
    }
}

/// After the plan's updater calls (assumed to succeed): while the spec is served, `Ready=False`
/// reason `NoTargets` when some port of `spec` has no target, naming them and `why`. Returns the
/// Event of a transition, into or out of that state (`old` is the status before).
pub fn record(
    status: &mut LoadBalancerStatus,
    old: &LoadBalancerStatus,
    spec: &LbSpec,
    why: impl FnOnce() -> String,
    (now, generation): (&str, Option<i64>),
) -> Option<(EventType, &'static str, String)> {
    let was = condition(&old.conditions, READY).is_some_and(|c| c.reason == NO_TARGETS);
    let empty: Vec<String> = spec
        .ports
        .iter()
        .filter(|p| p.targets.is_empty())
        .map(|p| format!("{}/{}", p.port, p.protocol.as_str()))
        .collect();
    let serving = condition(&status.conditions, READY).is_some_and(|c| c.status == "True");
    if !empty.is_empty() && serving {
        let message = format!(
            "{}: LB port {} stays allocated, no traffic is forwarded (connections are refused) \
             until targets return",
            why(),
            empty.join(", ")
        );
        set_condition(
            &mut status.conditions,
            READY,
            false,
            NO_TARGETS,
            &message,
            now,
            generation,
        );
        return (!was).then_some((EventType::Warning, NO_TARGETS, message));
    }
    let back = condition(&status.conditions, READY)
        .is_some_and(|c| c.status == "True" && c.reason != NO_TARGETS);
    (was && back).then(|| {
        (
            EventType::Normal,
            "TargetsAvailable",
            format!(
                "targets are back: serving {} with {} target(s)",
                super::status::port_list(spec),
                spec.target_count()
            ),
        )
    })
}
