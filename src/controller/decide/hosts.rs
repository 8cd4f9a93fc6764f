//! The LB hosts of one LoadBalancer: which hosts get the current spec now, each host's condition
//! `Host-<name>`, the phase (`READY` on every host, `DEGRADED` on some, `ERROR` on none) and the
//! Service's ingress (the hosts that serve the current spec).
//!
//! A host serves when its condition is True for the LoadBalancer's generation and its updater has
//! not been failing for `--host-failure-grace` (measured from its last good answer, as a node's
//! heartbeat is). A failing host of several gets no calls; once it answers again the worker
//! reconciles its LoadBalancers and they push to it. A single host has nothing to fail over to:
//! it is called again at the work queue's pace. The Go form is one unnamed host whose state is the
//! Go fields (`phase`, `observedGeneration`, `Ready`), not a `Host-` condition: `applied_in` and
//! `record` read and write them.
//! Pure: the worker's view of failing updaters and the clock come in through `Context`.

use super::context::Context;
use super::status::{READY, condition, ingress_entry, port_list, set_condition};
use crate::model::url::updater_endpoint;
use crate::model::{
    Ingress, LbHost, LbSpec, LoadBalancer, LoadBalancerStatus, PHASE_ERROR, PHASE_READY, PortStatus,
};
use crate::time::rfc3339;
use std::time::{Duration, UNIX_EPOCH};

/// Some hosts serve the current spec, not all.
pub const PHASE_DEGRADED: &str = "DEGRADED";
/// Prefix of the per-host condition types (`Host-<name>`).
pub const HOST_PREFIX: &str = "Host-";

pub fn condition_type(name: &str) -> String {
    format!("{HOST_PREFIX}{name}")
}

/// Host `h` holds the spec of the LoadBalancer's current generation.
pub fn applied_on(lb: &LoadBalancer, h: &LbHost) -> bool {
    applied_in(&lb.status, lb.metadata.generation, h)
}

fn applied_in(status: &LoadBalancerStatus, generation: Option<i64>, h: &LbHost) -> bool {
    if h.name.is_empty() {
        // The Go form's one host: READY for this generation.
        return status.phase.as_deref() == Some(PHASE_READY)
            && status.observed_generation == generation;
    }
    condition(&status.conditions, &condition_type(&h.name))
        .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
}

/// Since when (ms since the epoch) the worker has seen the updater at `url` fail, if it does.
pub fn failing_since(ctx: &Context, url: &str) -> Option<u64> {
    let endpoint = updater_endpoint(url).ok()?;
    ctx.failing.get(&endpoint).copied()
}

/// `h`, one of several hosts of `spec`, has been failing for the grace period or longer.
pub fn expired(ctx: &Context, spec: &LbSpec, h: &LbHost) -> bool {
    spec.hosts.len() > 1
        && failing_since(ctx, &h.url)
            .is_some_and(|since| ctx.now_ms >= since.saturating_add(ctx.host_grace_ms))
}

/// The hosts to push the current spec to now: not holding it, and answering (or alone). A host
/// whose last push failed goes last, so it never holds up the others.
pub fn to_push(lb: &LoadBalancer, spec: &LbSpec, ctx: &Context) -> Vec<LbHost> {
    let alone = spec.hosts.len() == 1;
    let mut hosts: Vec<LbHost> = spec
        .hosts
        .iter()
        .filter(|h| !applied_on(lb, h) && (alone || failing_since(ctx, &h.url).is_none()))
        .cloned()
        .collect();
    let refused = |h: &LbHost| {
        condition(&lb.status.conditions, &condition_type(&h.name))
            .is_some_and(|c| c.status != "True")
    };
    hosts.sort_by_key(refused); // stable: config order otherwise
    hosts
}

/// The hosts that serve `spec` for `generation`, in config order.
pub fn serving<'a>(
    status: &LoadBalancerStatus,
    generation: Option<i64>,
    spec: &'a LbSpec,
    ctx: &Context,
) -> Vec<&'a LbHost> {
    spec.hosts
        .iter()
        .filter(|h| applied_in(status, generation, h) && !expired(ctx, spec, h))
        .collect()
}

/// After the plan's pushes to `pushed` (assumed to succeed, as `apply` assumes) or, with
/// `failed`, after the push to that host failed with a message: their conditions True, the failed
/// host's False, hosts failing past the grace False, conditions of hosts no longer listed removed;
/// then the phase, `Ready` and `observedGeneration` from what serves.
pub fn record(
    status: &mut LoadBalancerStatus,
    generation: Option<i64>,
    spec: &LbSpec,
    (pushed, failed): (&[LbHost], Option<(&LbHost, &str)>),
    ctx: &Context,
) {
    let (phase, ok, reason, message) = if spec.is_go_form() {
        // The Go form's one host reports in the Go fields, as the Go controller's LoadBalancer did.
        status.hosts = None;
        (status.conditions).retain(|c| !c.type_.starts_with(HOST_PREFIX));
        match (failed, pushed) {
            (Some((_, message)), _) => (PHASE_ERROR, false, "UpdaterFailed", message.to_string()),
            (None, [h, ..]) => {
                status.observed_generation = generation;
                (PHASE_READY, true, "Applied", applied_message(spec, h))
            }
            (None, []) => return,
        }
    } else {
        record_hosts(status, generation, spec, (pushed, failed), ctx)
    };
    status.phase = Some(phase.to_string());
    let (now, c) = (&ctx.now, &mut status.conditions);
    set_condition(c, READY, ok, reason, &message, now, generation);
}

/// `record` for the hosts form: each host's condition, `hosts` and `observedGeneration`; returns
/// the phase and `Ready`'s status, reason and message.
fn record_hosts(
    status: &mut LoadBalancerStatus,
    generation: Option<i64>,
    spec: &LbSpec,
    (pushed, failed): (&[LbHost], Option<(&LbHost, &str)>),
    ctx: &Context,
) -> (&'static str, bool, &'static str, String) {
    let (now, c) = (&ctx.now, &mut status.conditions);
    if let Some((h, message)) = failed {
        let type_ = condition_type(&h.name);
        set_condition(c, &type_, false, "UpdaterFailed", message, now, generation);
    }
    c.retain(|c| {
        !c.type_.starts_with(HOST_PREFIX)
            || (spec.hosts.iter()).any(|h| c.type_ == condition_type(&h.name))
    });
    for h in &spec.hosts {
        let type_ = condition_type(&h.name);
        if pushed.contains(h) {
            let message = applied_message(spec, h);
            set_condition(c, &type_, true, "Applied", &message, now, generation);
        } else if expired(ctx, spec, h) {
            let since = failing_since(ctx, &h.url).unwrap_or_default();
            let message = format!(
                "updater {} has not answered since {}: out of the Service's ingress until it \
                 answers again",
                h.url,
                rfc3339(UNIX_EPOCH + Duration::from_millis(since))
            );
            set_condition(c, &type_, false, "Unreachable", &message, now, generation);
        }
    }
    let serves = serving(status, generation, spec, ctx);
    let names: Vec<&str> = serves.iter().map(|h| h.name.as_str()).collect();
    status.hosts = Some(format!("{}/{}", serves.len(), spec.hosts.len()));
    status.observed_generation = generation;
    if serves.len() == spec.hosts.len() {
        let message = format!("served on every host ({})", names.join(", "));
        (PHASE_READY, true, "Applied", message)
    } else if serves.is_empty() {
        let message = "no host serves the current spec; see the Host-* conditions";
        (PHASE_ERROR, false, "NoHostServes", message.to_string())
    } else {
        let down: Vec<&str> = (spec.hosts.iter())
            .filter(|h| !serves.contains(h))
            .map(|h| h.name.as_str())
            .collect();
        let message = format!("served on {}; not on {}", names.join(", "), down.join(", "));
        (PHASE_DEGRADED, true, "Degraded", message)
    }
}

/// When a spec patch changes nothing but the host list (a host added or removed, or the first host
/// changed): the status to write right after it, in which every host that holds the current spec
/// holds the next generation too, so the next reconcile pushes to the new hosts only, not again to
/// every host. The apiserver raises `metadata.generation` by exactly one for a spec change, and the
/// patch carries the resourceVersion, so no other change can come between. None when other fields
/// change too, or no host holds the spec. The status is written after the spec patch; if it is not,
/// the next reconcile pushes to every host (the cost of not knowing).
pub fn carried_forward(
    lb: &LoadBalancer,
    stored: Option<&LbSpec>,
    desired: &LbSpec,
    ctx: &Context,
) -> Option<LoadBalancerStatus> {
    let content = |s: &LbSpec| LbSpec {
        hosts: Vec::new(),
        ..s.clone()
    };
    if content(stored?) != content(desired) {
        return None;
    }
    let generation = lb.metadata.generation?;
    let next = Some(generation + 1);
    let mut status = lb.status.clone();
    let mut carried = Vec::new();
    // The Go form's one host has no `Host-` condition: nothing is carried, None.
    for h in desired.hosts.iter().filter(|h| applied_on(lb, h)) {
        let type_ = condition_type(&h.name);
        if let Some(c) = status.conditions.iter_mut().find(|c| c.type_ == type_) {
            c.observed_generation = next;
            carried.push(h.clone());
        }
    }
    if carried.is_empty() {
        return None;
    }
    record(&mut status, next, desired, (&[], None), ctx);
    Some(status)
}

/// The Service's ingress: one entry per serving host (`ip` with `ipMode: Proxy`, or `hostname`),
/// each with the LB ports, in config order; a host listed twice by address appears once. Empty
/// when no host serves: the caller then leaves the Service's ingress as it is.
pub fn ingress(
    spec: &LbSpec,
    status: &LoadBalancerStatus,
    generation: Option<i64>,
    ctx: &Context,
) -> Vec<Ingress> {
    let ports: Vec<PortStatus> = spec
        .ports
        .iter()
        .map(|p| PortStatus {
            port: i32::from(p.port),
            protocol: p.protocol.as_str().to_string(),
            error: None,
        })
        .collect();
    let mut out: Vec<Ingress> = Vec::new();
    for h in serving(status, generation, spec, ctx) {
        let entry = ingress_entry(&h.host, ports.clone());
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// A host's `Applied` message (the Go form's `Ready`, as it always read).
fn applied_message(spec: &LbSpec, h: &LbHost) -> String {
    let (ports, n) = (port_list(&spec.ports), spec.target_count());
    format!(
        "updater {} serves {ports} on {} with {n} target(s)",
        h.url, h.host
    )
}
