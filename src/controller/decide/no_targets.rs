//! No targets is a normal state, not an error (issue 22): a Service with `externalTrafficPolicy:
//! Local` and no ready endpoint (scaled to 0, a rollout, a crash loop), or no eligible node at all,
//! or none with an address in the Service's `ipFamilies` (an IPv6-only Service on IPv4 nodes).
//! The updater refuses an empty upstream list, so a port without targets is not POSTed: its backend
//! is deleted from the LB host (nginx stops listening there, and clients get a fast refusal, not a
//! hang). Its LB port stays allocated and in the Service's ingress; `Ready=False` with reason
//! `NoTargets` (or `NoAddressInFamily`) says why; one Event per transition. Targets coming back
//! change the spec, which is pushed again.
//! Pure: no I/O, no clock.

use super::plan::{EventType, Note};
use super::status::{READY, condition, port_list, set_condition};
use super::targets::{NO_ADDRESS_IN_FAMILY, ip_family, node_ineligibility};
use crate::controller::cache::Cache;
use crate::controller::key::Key;
use crate::model::{Condition, LbSpec, LoadBalancerStatus, Node, Service};

pub const NO_TARGETS: &str = "NoTargets";

/// Why the Service's ports have no target, for the condition and the Event: its reason and message.
pub fn why(cache: &Cache, key: &Key, svc: &Service) -> (&'static str, String) {
    let eligible: Vec<&Node> = (cache.nodes.values())
        .filter(|n| node_ineligibility(n, false).is_none())
        .collect();
    let families = &svc.spec.ip_families;
    let local = svc.spec.external_traffic_policy.as_deref() == Some("Local");
    let with_endpoints = cache.local_nodes(key);
    if local && with_endpoints.is_empty() {
        let m = "no node has a ready endpoint of the Service (externalTrafficPolicy: Local)";
        return (NO_TARGETS, m.to_string());
    }
    let in_family = |n: &&Node| {
        (n.status.addresses.iter())
            .any(|a| ip_family(&a.address).is_some_and(|f| families.iter().any(|w| w == f)))
    };
    if !families.is_empty() && !eligible.is_empty() && !eligible.iter().any(in_family) {
        let message = format!(
            "the Service's ipFamilies are {}, and none of the {} eligible node(s) has an address \
             in them: give the nodes such addresses, or change the Service's ipFamilies",
            families.join(", "),
            eligible.len()
        );
        return (NO_ADDRESS_IN_FAMILY, message);
    }
    let message = if local {
        let names: Vec<&str> = with_endpoints.iter().map(String::as_str).collect();
        format!(
            "no eligible node has a ready endpoint of the Service (externalTrafficPolicy: Local; \
             endpoints on {}, which are not Ready, excluded, being deleted or have no address of \
             the configured types)",
            names.join(", ")
        )
    } else if eligible.is_empty() {
        format!(
            "no eligible node (of {} node(s), none is Ready and not excluded or being deleted)",
            cache.nodes.len()
        )
    } else {
        format!(
            "no eligible node has an address of the configured types ({} eligible)",
            eligible.len()
        )
    };
    (NO_TARGETS, message)
}

/// After the plan's updater calls (assumed to succeed): while the spec is served, `Ready=False`
/// reason `NoTargets` when some port of `spec` has no target, naming them and `why`. Returns the
/// Event of a transition, into or out of that state (`old` is the status before).
pub fn record(
    status: &mut LoadBalancerStatus,
    old: &LoadBalancerStatus,
    spec: &LbSpec,
    why: impl FnOnce() -> (&'static str, String),
    (now, generation): (&str, Option<i64>),
) -> Option<Note> {
    let none = |c: &Condition| [NO_TARGETS, NO_ADDRESS_IN_FAMILY].contains(&c.reason.as_str());
    let was = condition(&old.conditions, READY).is_some_and(none);
    let empty = port_list(spec.ports.iter().filter(|p| p.targets.is_empty()));
    let serving = condition(&status.conditions, READY).is_some_and(|c| c.status == "True");
    if !empty.is_empty() && serving {
        let (reason, why) = why();
        let message = format!(
            "{why}: LB port {empty} stays allocated, no traffic is forwarded \
             (connections are refused) until targets return"
        );
        // Still not serving since the last write: its transition time stays (the hosts form's
        // `record` has just set Ready True, so the change would be stamped now on every reconcile).
        let old_ready = condition(&old.conditions, READY).filter(|c| c.status == "False");
        let since = old_ready.map_or(now, |c| c.last_transition_time.as_str());
        let c = &mut status.conditions;
        set_condition(c, READY, false, reason, &message, since, generation);
        return (!was).then_some((EventType::Warning, reason, message));
    }
    let back = condition(&status.conditions, READY).is_some_and(|c| c.status == "True" && !none(c));
    (was && back).then(|| {
        let (ports, n) = (port_list(&spec.ports), spec.target_count());
        let message = format!("targets are back: serving {ports} with {n} target(s)");
        (EventType::Normal, "TargetsAvailable", message)
    })
}
