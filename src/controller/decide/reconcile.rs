//! `reconcile(cache, key) -> Plan`: what must happen for one Service/LoadBalancer key, decided from
//! the cache alone. A converged key gives an empty plan: nothing is written that would not change.
//! Pure: no I/O, no clock (the time comes in through `Context`).

use super::context::Context;
use super::hosts;
use super::no_targets::{self, NO_TARGETS};
use super::plan::{
    Action, EventType, Note, Plan, Problem, lb_ref, object_ref, status_patch, updater_request,
};
use super::port_requests::{self, Decision};
use super::ports::{ServicePortSpec, allocate_ports, previous_ports};
use super::status::{
    READY, RECONCILED, UPDATER_AUTH, backends_of, condition, is_applied, known_backends, port_list,
    set_condition, shows_host,
};
use super::targets::targets_for;
use super::traffic::{
    BALANCING, DUAL_STACK, PROXY_PROTOCOL, STABLE_NODE_SET, balancing_fault, balancing_for,
    families_fault, keeps_stable_set, node_set_fault, proxy_protocol_fault, record_fault,
    traffic_for, updater_without_checks, with_override,
};
use crate::controller::cache::Cache;
use crate::controller::key::Key;
use crate::model::url::same_updater;
use crate::model::{
    API_VERSION, AppliedBackend, CONFIG_ANNOTATION, FINALIZER, Ingress, LOAD_BALANCER_KIND, LbHost,
    LbPort, LbSpec, LoadBalancer, LoadBalancerStatus, ObjectReference, OwnerReference, PHASE_ERROR,
    PHASE_READY, Protocol, Service, ValidConfig, addresses,
};
use serde_json::{Value, json};

/// More ports than this on one Service is refused: each is an nginx server block and a listen port.
pub const MAX_PORTS: usize = 100;

fn problem(reason: &'static str, message: String) -> Problem {
    Problem { reason, message }
}

pub fn reconcile(cache: &Cache, key: &Key, ctx: &Context) -> Plan {
    let mut plan = Plan::default();
    let svc = cache.services.get(key).map(Box::as_ref);
    let lb = cache.load_balancers.get(key).map(Box::as_ref);
    if let Some(lb) = lb.filter(|l| l.metadata.is_deleting()) {
        finalize(cache, key, lb, ctx, &mut plan);
        return plan;
    }
    match (svc.filter(|s| is_ours(s, ctx)), lb) {
        (Some(svc), lb) => reconcile_service(cache, key, svc, lb, ctx, &mut plan),
        (None, Some(lb)) if lb.metadata.service_owner().is_some() => {
            release(key, svc, lb, ctx, &mut plan)
        }
        (None, Some(lb)) => reconcile_hand_made(cache, key, lb, ctx, &mut plan),
        (None, None) => {}
    }
    plan
}

/// `type: LoadBalancer` with our class or none.
pub fn is_ours(svc: &Service, ctx: &Context) -> bool {
    svc.spec.type_.as_deref() == Some("LoadBalancer")
        && svc
            .spec
            .load_balancer_class
            .as_deref()
            .is_none_or(|c| c == ctx.class_name)
}

fn service_ref(svc: &Service) -> ObjectReference {
    object_ref("v1", "Service", &svc.metadata)
}

/// Where a LoadBalancer's Events go: its Service when it has one in the cache, else itself.
pub(crate) fn event_target(cache: &Cache, key: &Key, lb: &LoadBalancer) -> ObjectReference {
    match (lb.metadata.service_owner(), cache.services.get(key)) {
        (Some(_), Some(svc)) => service_ref(svc),
        _ => lb_ref(lb),
    }
}

/// A create's body without the `null`s a merge patch needs: a strict create refuses a field the
/// CRD does not list even when it is null.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(m) => (m.into_iter())
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect(),
        Value::Array(a) => a.into_iter().map(without_nulls).collect(),
        other => other,
    }
}

/// The LoadBalancer is being deleted: remove its backends, then let it go.
fn finalize(cache: &Cache, key: &Key, lb: &LoadBalancer, ctx: &Context, plan: &mut Plan) {
    if !lb.metadata.has_finalizer(FINALIZER) {
        return; // someone else's finalizer holds it; nothing of ours is left
    }
    cleanup_backends(key, lb, ctx, plan);
    super::stuck_delete::let_go(cache, key, lb, ctx, plan);
    plan.push(finalizer(key, lb, false));
}

/// The Service is gone or no longer ours: clean up ourselves, without relying on garbage collection.
fn release(key: &Key, svc: Option<&Service>, lb: &LoadBalancer, ctx: &Context, plan: &mut Plan) {
    let ours = |i: &Ingress| lb.spec.written_hosts().any(|h| shows_host(i, h));
    if svc.is_some_and(|s| s.status.load_balancer.ingress.iter().any(ours)) {
        plan.push(Action::PatchServiceStatus {
            key: key.clone(),
            patch: json!({"status": {"loadBalancer": {"ingress": null}}}),
        });
    }
    cleanup_backends(key, lb, ctx, plan);
    if lb.metadata.has_finalizer(FINALIZER) {
        plan.push(finalizer(key, lb, false));
    }
    plan.push(Action::DeleteLoadBalancer {
        key: key.clone(),
        uid: lb.metadata.uid.clone(),
    });
    if let Some(object) = svc.map(service_ref) {
        let message = format!("Service {key} is no longer served by paperlb; LoadBalancer deleted");
        plan.event(&object, (EventType::Normal, "LoadBalancerDeleted", message));
    }
}

/// Deletes every backend the LoadBalancer may have. A failing updater holds the deletion up until
/// `--unreachable-delete-grace` (`stuck_delete`), whatever the number of hosts.
fn cleanup_backends(key: &Key, lb: &LoadBalancer, ctx: &Context, plan: &mut Plan) {
    let left = |b: &AppliedBackend| super::stuck_delete::given_up(ctx, &b.url);
    let backends = known_backends(key, lb).into_iter().filter(|b| !left(b));
    delete_backends(key, backends, false, plan); // left ones: drift repair removes them later
}

fn delete_backends(
    key: &Key,
    backends: impl IntoIterator<Item = AppliedBackend>,
    best_effort: bool,
    plan: &mut Plan,
) {
    for b in backends {
        plan.push(Action::UpdaterDelete {
            key: key.clone(),
            url: b.url,
            backend_name: b.backend_name,
            best_effort,
        });
    }
}

/// `lb`'s finalizers with ours (`ours`) or without it, in order: the full list (arrays are
/// replaced whole).
fn finalizers(lb: &LoadBalancer, ours: bool) -> Vec<&str> {
    let others = (lb.metadata.finalizers.iter().map(String::as_str)).filter(|f| *f != FINALIZER);
    others.chain(ours.then_some(FINALIZER)).collect()
}

/// The metadata patch that adds our finalizer to `lb` (`ours`) or removes it, with its
/// resourceVersion as the precondition.
fn finalizer(key: &Key, lb: &LoadBalancer, ours: bool) -> Action {
    let (rv, key) = (&lb.metadata.resource_version, key.clone());
    let patch = json!({"metadata": {"finalizers": finalizers(lb, ours), "resourceVersion": rv}});
    Action::PatchFinalizers { key, patch }
}

fn reconcile_service(
    cache: &Cache,
    key: &Key,
    svc: &Service,
    lb: Option<&LoadBalancer>,
    ctx: &Context,
    plan: &mut Plan,
) {
    let svc_ref = service_ref(svc);
    let (desired, decision) = match desired(cache, key, svc, lb, ctx) {
        Ok(Some(d)) => d,
        Ok(None) => return, // a port has no nodePort yet: the apiserver fills it in a moment
        Err(p) => return report_problem(key, lb, None, &svc_ref, p, ctx, plan),
    };
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone(),
        uid: svc.metadata.uid.clone(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let Some(lb) = lb else {
        plan.push(Action::CreateLoadBalancer {
            key: key.clone(),
            object: json!({
                "apiVersion": API_VERSION,
                "kind": LOAD_BALANCER_KIND,
                "metadata": {
                    "name": key.name,
                    "namespace": key.namespace,
                    "ownerReferences": [owner],
                    "finalizers": [FINALIZER],
                },
                "spec": without_nulls(desired.to_json()),
            }),
        });
        // No Event yet: the phase changes (to READY) once the updater has applied it, and that
        // Event names the ports (Normal Events only on a phase change; README, "Performance").
        // Warnings come with their conditions, once the LoadBalancer exists.
        return;
    };
    // Ours whatever its blockOwnerDeletion says.
    let owned = (lb.metadata.owner_references.iter()).any(|o| {
        *o == OwnerReference {
            block_owner_deletion: o.block_owner_deletion,
            ..owner.clone()
        }
    });
    if !desired.matches(&lb.spec) || !owned {
        let stored = LbSpec::from_resource(&lb.spec).ok();
        if let Some(record) = record_unconfirmed(key, lb, stored.as_ref(), &desired) {
            // Its own write: the spec patch below carries the resourceVersion this one changes.
            plan.push(record);
            return;
        }
        let mut metadata = json!({"resourceVersion": lb.metadata.resource_version});
        if !owned {
            // Adopt: a LoadBalancer left by an earlier Service of the same name, or a hand-made one
            // now claimed by a Service (the name is the Service's).
            let others = (lb.metadata.owner_references.iter())
                .filter(|o| !(o.kind == "Service" && o.api_version == "v1"));
            let refs: Vec<&OwnerReference> = others.chain([&owner]).collect();
            metadata["ownerReferences"] = json!(refs);
        }
        if !lb.metadata.has_finalizer(FINALIZER) {
            metadata["finalizers"] = json!(finalizers(lb, true));
        }
        plan.push(Action::PatchLoadBalancerSpec {
            key: key.clone(),
            patch: json!({"metadata": metadata, "spec": desired.to_json()}),
        });
        // Only the host list changed: the hosts that hold the spec keep it (no call to them).
        if let Some(status) = hosts::carried_forward(lb, stored.as_ref(), &desired, ctx) {
            plan.push(status_patch(key, &status));
        }
        // Its LB ports (`8100/TCP, 8101/UDP`) and addresses.
        let place = |s: &LbSpec| (port_list(&s.ports), addresses(&s.hosts));
        if stored.as_ref().map(place) != Some(place(&desired)) {
            let (ports, on) = place(&desired);
            let message = format!("allocated {ports} on {on} (config {})", desired.config_name);
            plan.event(&svc_ref, (EventType::Normal, "PortAllocated", message));
        }
        return; // the next reconcile applies the new generation
    }
    let why = || no_targets::why(cache, key, svc);
    let (mut status, event) = push(cache, key, lb, &desired, why, ctx, plan);
    let at = (ctx.now.as_str(), lb.metadata.generation);
    let urls = desired.hosts.iter().map(|h| h.url.as_str());
    let go_updater = updater_without_checks(urls, Some(lb), ctx);
    let faults = [
        (PROXY_PROTOCOL, proxy_protocol_fault(&desired)),
        (BALANCING, balancing_fault(svc, go_updater)),
        (DUAL_STACK, families_fault(&desired, svc)),
        (STABLE_NODE_SET, node_set_fault(&desired, go_updater, ctx)),
    ];
    // Conditions False while their fault lasts; a new fault is a Warning (StableNodeSet's is not).
    let mut warnings = vec![port_requests::record(&mut status, &decision, at)];
    for (type_, fault) in faults {
        let news = record_fault(&mut status, type_, fault, at);
        warnings.push(news.filter(|_| type_ != STABLE_NODE_SET));
    }
    if status != lb.status {
        plan.push(status_patch(key, &status));
    }
    // No host serves: the ingress stays as it is (nginx may well still forward; an updater that
    // does not answer says nothing about the traffic).
    let ingress = hosts::ingress(&desired, &status, lb.metadata.generation, ctx);
    if !ingress.is_empty() && svc.status.load_balancer.ingress != ingress {
        plan.push(Action::PatchServiceStatus {
            key: key.clone(),
            patch: json!({"status": {"loadBalancer": {"ingress": ingress}}}),
        });
    }
    // Posted last, after the writes the Service's ingress waits for.
    if let Some(note) = event {
        plan.event(&svc_ref, note);
    }
    for (reason, message) in warnings.into_iter().flatten() {
        plan.event(&svc_ref, (EventType::Warning, reason, message));
    }
}

/// The spec this Service should have (config, ports and targets), and the decision on the ports
/// the Service requests (`port_requests`). `Ok(None)` = wait.
pub(crate) fn desired(
    cache: &Cache,
    key: &Key,
    svc: &Service,
    lb: Option<&LoadBalancer>,
    ctx: &Context,
) -> Result<Option<(LbSpec, Decision)>, Problem> {
    let cfg = pick_config(cache, key, svc, ctx)?;
    let traffic = traffic_for(svc).map_err(|(r, m)| problem(r, format!("Service {key}: {m}")))?;
    let traffic = with_override(traffic, &cfg.health_check);
    let [proxy, connect] = balancing_for(svc).timeouts;
    let Some(ports) = service_ports(key, svc)? else {
        return Ok(None);
    };
    let config_name = format!("{}/{}", cfg.namespace, cfg.name);
    // The same LB port on every host: free only where it is free on all of them.
    let holder = |port, protocol| {
        (cfg.hosts.iter()).find_map(|h| cache.port_holder(&h.host, port, protocol, key))
    };
    let decision = port_requests::decide(
        svc,
        previous_ports(lb.map(|l| &l.spec), &ports),
        (cfg.low, cfg.high),
        &config_name,
        &holder,
    );
    // Ports whose request waits are left out (not pushed) until it can be granted.
    let (ports, requests): (Vec<&ServicePortSpec>, Vec<_>) = (ports.iter().zip(&decision.requests))
        .filter_map(|(p, r)| Some((p, r.clone()?)))
        .unzip();
    if requests.is_empty() {
        let faults = port_requests::summary(&decision.faults);
        let message = format!("Service {key}: no port can be served: {faults}");
        return Err(problem("PortUnavailable", message));
    }
    let taken = |port, protocol| holder(port, protocol).is_some();
    let lb_ports = allocate_ports(&requests, (cfg.low, cfg.high), &taken).map_err(|p| {
        let message = format!(
            "Service {key}: no free {} port left on {} in range {}-{} of \
             LoadBalancerConfig {config_name}",
            p.as_str(),
            addresses(&cfg.hosts),
            cfg.low,
            cfg.high
        );
        problem("PortRangeExhausted", message)
    })?;
    let local = (svc.spec.external_traffic_policy.as_deref() == Some("Local"))
        .then(|| cache.local_nodes(key));
    let no_checks = updater_without_checks(cfg.hosts.iter().map(|h| h.url.as_str()), lb, ctx);
    let types = cfg.address_types_or(&ctx.address_types);
    let ports = ports
        .iter()
        .zip(lb_ports)
        .map(|(p, port)| LbPort {
            name: p.name.clone(),
            port,
            protocol: p.protocol,
            node_port: Some(p.node_port),
            targets: targets_for(
                p.node_port,
                &cache.nodes,
                (types, &svc.spec.ip_families),
                local.as_ref(),
                keeps_stable_set(&traffic, p.protocol, no_checks, ctx.stable_node_set),
            ),
        })
        .collect();
    let spec = LbSpec {
        config_name: cfg.name,
        ports,
        // In the spec, so a change of the timeouts is a spec change: applied again.
        proxy_timeout_seconds: proxy.unwrap_or(cfg.proxy_timeout_seconds),
        proxy_connect_timeout_seconds: connect.unwrap_or(cfg.proxy_connect_timeout_seconds),
        traffic,
        hosts: cfg.hosts,
    };
    Ok(Some((spec, decision)))
}

/// The annotated config, else the single `default: true` one, in the controller's namespace.
pub(crate) fn pick_config(
    cache: &Cache,
    key: &Key,
    svc: &Service,
    ctx: &Context,
) -> Result<ValidConfig, Problem> {
    let ns = &ctx.namespace;
    let config = match svc.metadata.annotations.get(CONFIG_ANNOTATION) {
        Some(name) => cache.configs.get(&Key::new(ns, name)).ok_or_else(|| {
            let message = format!("Service {key}: LoadBalancerConfig {ns}/{name} (annotation {CONFIG_ANNOTATION}) not found");
            problem("ConfigNotFound", message)
        })?,
        None => {
            let defaults: Vec<_> = (cache.configs.iter())
                .filter(|(k, c)| &k.namespace == ns && c.is_default())
                .collect();
            match defaults.as_slice() {
                [(_, c)] => *c,
                [] => {
                    let message = format!("Service {key}: no LoadBalancerConfig in namespace {ns} has default: true; create one or annotate the Service with {CONFIG_ANNOTATION}");
                    return Err(problem("ConfigNotFound", message));
                }
                many => {
                    let names: Vec<&str> = many.iter().map(|(k, _)| k.name.as_str()).collect();
                    let (n, names) = (many.len(), names.join(", "));
                    let message = format!("Service {key}: {n} LoadBalancerConfigs in namespace {ns} have default: true ({names}); keep one, or annotate the Service with {CONFIG_ANNOTATION}");
                    return Err(problem("InvalidConfig", message));
                }
            }
        }
    };
    let (cns, name) = (&config.metadata.namespace, &config.metadata.name);
    let message = |e: String| format!("Service {key}: LoadBalancerConfig {cns}/{name}: {e}");
    (config.validate()).map_err(|e| problem("InvalidConfig", message(e)))
}

/// The Service's ports, checked. `Ok(None)` when a port waits for its nodePort.
pub(crate) fn service_ports(
    key: &Key,
    svc: &Service,
) -> Result<Option<Vec<ServicePortSpec>>, Problem> {
    let (ports, invalid) = (&svc.spec.ports, |m| problem("InvalidService", m));
    if ports.is_empty() {
        return Err(invalid(format!("Service {key} has no ports")));
    }
    if ports.len() > MAX_PORTS {
        let n = ports.len();
        return Err(invalid(format!(
            "Service {key} has {n} ports; paperlb serves at most {MAX_PORTS}"
        )));
    }
    let mut out: Vec<ServicePortSpec> = Vec::with_capacity(ports.len());
    let mut waiting = false;
    for (i, p) in ports.iter().enumerate() {
        let name = p.name.clone().unwrap_or_default();
        if out.iter().any(|q| q.name == name) {
            return Err(invalid(format!(
                "Service {key}: port name {name:?} is used twice"
            )));
        }
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let protocol = Protocol::parse(proto).ok_or_else(|| {
            invalid(format!("Service {key}: port {i} {name:?}: protocol {proto} is not supported (TCP and UDP only)"))
        })?;
        let node_port = (p.node_port.and_then(|n| u16::try_from(n).ok())).filter(|n| *n > 0);
        if node_port.is_none() && svc.spec.allocate_load_balancer_node_ports == Some(false) {
            let message = format!(
                "Service {key}: port {i} {name:?} has no nodePort and allocateLoadBalancerNodePorts is false; paperlb forwards to nodePorts: set allocateLoadBalancerNodePorts: true or give the port a nodePort"
            );
            return Err(problem("NoNodePorts", message));
        }
        waiting |= node_port.is_none(); // the apiserver fills it in a moment
        let node_port = node_port.unwrap_or(0);
        out.push(ServicePortSpec {
            name,
            protocol,
            node_port,
        });
    }
    Ok((!waiting).then_some(out))
}

/// Warning Event on `object`, and the Reconciled=False condition (and `phase`, if given) on the
/// LoadBalancer if there is one. Nothing else is touched: what the updater serves stays as it was.
/// With a LoadBalancer, the Event is sent only when the condition changes, so repeated reconciles do
/// not repeat it.
fn report_problem(
    key: &Key,
    lb: Option<&LoadBalancer>,
    phase: Option<&str>,
    object: &ObjectReference,
    p: Problem,
    ctx: &Context,
    plan: &mut Plan,
) {
    match lb {
        None => plan.event(object, (EventType::Warning, p.reason, p.message)),
        Some(lb) => {
            let mut status = lb.status.clone();
            if let Some(phase) = phase {
                status.phase = Some(phase.to_string());
            }
            let (c, generation) = (&mut status.conditions, lb.metadata.generation);
            set_condition(
                c, RECONCILED, false, p.reason, &p.message, &ctx.now, generation,
            );
            if status != lb.status {
                plan.push(status_patch(key, &status));
                plan.event(object, (EventType::Warning, p.reason, p.message));
            }
        }
    }
}

/// Before the spec of a LoadBalancer that is not applied changes: its current spec may have been
/// pushed in part (an apply whose status write never happened: a crash, a failed write, an updater
/// error midway), and once the spec forgets those backends nothing else names them. Records the
/// ones `desired` no longer names in `status.applied`, so a later apply or release deletes them.
/// None when nothing would be forgotten.
fn record_unconfirmed(
    key: &Key,
    lb: &LoadBalancer,
    stored: Option<&LbSpec>,
    desired: &LbSpec,
) -> Option<Action> {
    if is_applied(lb) {
        return None; // READY for this generation: status.applied is complete
    }
    let kept = backends_of(key, desired);
    let mut status = lb.status.clone();
    for b in backends_of(key, stored?) {
        let named = status.applied.iter().chain(&kept).any(|a| a.same_place(&b));
        if !named {
            status.applied.push(b);
        }
    }
    status.applied.sort();
    (status != lb.status).then(|| status_patch(key, &status))
}

/// Our finalizer if `lb` lacks it, the updater calls the LoadBalancer needs now (what each host
/// lacks, `hosts::to_push`, with `applied_timeouts`), and its status once they succeed: hosts,
/// phase, `NoTargets` (`why` says why a port has none) and `Reconciled`; returns it and the Event to
/// post: a `NoTargets` transition, else a Normal one only when the phase changes to READY (or
/// DEGRADED), so a node flip that re-applies posts nothing.
///
/// Every port is pushed to the hosts to push to (the others hold the spec already, or do not
/// answer), and backends the spec no longer has there are deleted: after the calls (a moved
/// backend serves from its new place before the old one goes), except a stale backend holding a
/// port that a new one takes on the same updater (a backend renamed because a port in front of it
/// was removed), which must go first: the updater refuses a port another backend serves. Backends
/// on updaters the spec no longer names are deleted best effort: the new place serves already, and
/// drift repair removes what an unreachable old updater keeps. `status.applied` keeps what other
/// hosts hold.
fn push(
    cache: &Cache,
    key: &Key,
    lb: &LoadBalancer,
    spec: &LbSpec,
    why: impl FnOnce() -> (&'static str, String),
    ctx: &Context,
    plan: &mut Plan,
) -> (LoadBalancerStatus, Option<Note>) {
    if !lb.metadata.has_finalizer(FINALIZER) {
        plan.push(finalizer(key, lb, true));
    }
    let timeouts = applied_timeouts(cache, ctx, lb, spec);
    let (was, generation) = (lb.status.phase.as_deref(), lb.metadata.generation);
    let mut status = lb.status.clone();
    let pushed = hosts::to_push(lb, spec, ctx);
    let on_pushed = |b: &AppliedBackend| pushed.iter().any(|h| same_updater(&h.url, &b.url));
    let known = known_backends(key, lb);
    let elsewhere: Vec<AppliedBackend> = (known.iter().filter(|b| spec.host_of(&b.url).is_none()))
        .cloned()
        .collect();
    if !pushed.is_empty() || !elsewhere.is_empty() {
        let new: Vec<AppliedBackend> = (backends_of(key, spec).into_iter())
            .filter(|b| on_pushed(b))
            .collect();
        // In the way: an old backend whose LB port a new one of another name takes (POSTed at
        // `taker`), unless it makes way itself first: its name kept, POSTed before the taker, to a
        // port no other old one holds (two ports of the Service swapping hold each other's).
        // Stale: one whose name is gone, deleted after the new ones are in.
        let taker = |old: &AppliedBackend| {
            new.iter()
                .position(|n| old.same_port(n) && !old.same_place(n))
        };
        let held = |n: &AppliedBackend| known.iter().any(|o| o.same_port(n) && !o.same_place(n));
        let makes_way = |old: &AppliedBackend, at: usize| {
            let own = new.iter().position(|n| old.same_place(n));
            own.is_some_and(|i| i < at && !held(&new[i]))
        };
        let (in_the_way, stale): (Vec<AppliedBackend>, Vec<AppliedBackend>) = (known.iter())
            .filter(|old| on_pushed(old))
            .filter(|old| match taker(old) {
                Some(at) => !makes_way(old, at),
                None => !new.iter().any(|n| old.same_place(n)),
            })
            .cloned()
            .partition(|old| taker(old).is_some());
        delete_backends(key, in_the_way, false, plan);
        for h in &pushed {
            push_ports(key, &h.url, spec, timeouts, plan);
        }
        delete_backends(key, stale, false, plan);
        delete_backends(key, elsewhere, true, plan);
        if !pushed.is_empty() {
            super::status::mark_accepted(&mut status.conditions, &ctx.now, generation);
        }
        status
            .applied
            .retain(|b| spec.host_of(&b.url).is_some() && !on_pushed(b));
        status.applied.extend(new);
        status.applied.sort();
        status.applied.dedup();
        status.target_count = Some(spec.target_count() as i64);
        status.ports = super::health_status::carried(&lb.status.ports, spec);
        status.healthy = super::health_status::summary(&status.ports);
    }
    hosts::record(&mut status, generation, spec, (&pushed, None), ctx);
    let now = status.phase.as_deref();
    let serving = matches!(now, Some(PHASE_READY | hosts::PHASE_DEGRADED));
    let ready = condition(&status.conditions, READY).map(|c| c.message.clone());
    let phase_event = ready.filter(|_| serving && now != was);
    let at = (ctx.now.as_str(), generation);
    let targets_event = no_targets::record(&mut status, &lb.status, spec, why, at);
    let (now, c) = (&ctx.now, &mut status.conditions);
    set_condition(c, RECONCILED, true, "Reconciled", "", now, generation);
    let event = targets_event.or(phase_event.map(|m| (EventType::Normal, "UpdaterApplied", m)));
    (status, event)
}

/// One POST per port of `spec` to the updater at `url`; a port without targets is deleted there
/// instead (the updater refuses an empty list; see `no_targets`).
fn push_ports(key: &Key, url: &str, spec: &LbSpec, timeouts: (u32, u32), plan: &mut Plan) {
    for (i, p) in spec.ports.iter().enumerate() {
        if p.targets.is_empty() {
            plan.push(Action::UpdaterDelete {
                key: key.clone(),
                url: url.to_string(),
                backend_name: super::status::backend_name(key, i, &p.name),
                best_effort: false,
            });
            continue;
        }
        plan.push(Action::UpdaterApply {
            key: key.clone(),
            url: url.to_string(),
            request: updater_request(key, i, p, timeouts, &spec.traffic),
        });
    }
}

/// The proxy timeouts `apply` sends for an applied LoadBalancer: a Service's LoadBalancer carries
/// its config's in its spec; a hand-made one's own, else its config's.
pub fn applied_timeouts(
    cache: &Cache,
    ctx: &Context,
    lb: &LoadBalancer,
    spec: &LbSpec,
) -> (u32, u32) {
    // A hand-made one's unset timeouts: its config's, if that is a valid config in the
    // controller's namespace.
    let hand_made = lb.metadata.service_owner().is_none();
    let cfg = hand_made.then(|| {
        cache
            .configs
            .get(&Key::new(&ctx.namespace, &spec.config_name))
    });
    let (t, c) = (cfg.flatten().and_then(|c| c.validate().ok())).map_or((0, 0), |c| {
        (c.proxy_timeout_seconds, c.proxy_connect_timeout_seconds)
    });
    let or = |own: u32, cfg: u32| if own > 0 { own } else { cfg };
    (
        or(spec.proxy_timeout_seconds, t),
        or(spec.proxy_connect_timeout_seconds, c),
    )
}

/// A LoadBalancer without an owner Service: applied as written, cleaned up on deletion.
fn reconcile_hand_made(
    cache: &Cache,
    key: &Key,
    lb: &LoadBalancer,
    ctx: &Context,
    plan: &mut Plan,
) {
    let object = lb_ref(lb);
    let spec = match LbSpec::from_resource(&lb.spec) {
        Ok(spec) => spec,
        Err(e) => {
            let p = problem("InvalidSpec", format!("LoadBalancer {key}: {e}"));
            return report_problem(key, Some(lb), Some(PHASE_ERROR), &object, p, ctx, plan);
        }
    };
    let why = || (NO_TARGETS, "the LoadBalancer's spec lists no target".into());
    let (status, event) = push(cache, key, lb, &spec, why, ctx, plan);
    if status != lb.status {
        plan.push(status_patch(key, &status));
    }
    if let Some(note) = event {
        plan.event(&object, note); // after the writes
    }
}

/// The worker calls this when action `failed` of `plan` (an updater call) failed with `message`.
/// Returns the plan to run instead: phase ERROR and a Ready=False condition naming the updater and
/// its message (written only if different), the backends that did succeed recorded in
/// `status.applied` (so a later delete finds them), and a Warning Event `UpdaterFailed`. The worker
/// then requeues the key with backoff; the next reconcile sees phase ERROR and calls the updater
/// again. With `auth` (the call's credentials could not be used, or were refused; `message` is
/// its message) also `UpdaterAuth=False` with its reason, and the Warning Event is `UpdaterAuth`.
pub fn on_updater_error(
    cache: &Cache,
    key: &Key,
    ctx: &Context,
    plan: &Plan,
    failed: usize,
    message: &str,
    auth: Option<&Problem>,
) -> Plan {
    let mut out = Plan::default();
    let Some(lb) = cache.load_balancers.get(key) else {
        return out;
    };
    let call = plan.actions.get(failed).and_then(Action::updater_call);
    let what = match call {
        Some((url, name, Some(_))) => format!("updater {url} refused backend {name}: {message}"),
        Some((url, name, None)) => {
            format!("updater {url} could not delete backend {name}: {message}")
        }
        None => format!("updater call failed: {message}"),
    };
    let (mut status, generation) = (lb.status.clone(), lb.metadata.generation);
    let spec = LbSpec::from_resource(&lb.spec).ok();
    // Each backend the calls before the failure applied or deleted is recorded as such.
    let before = plan.actions.iter().take(failed);
    for (url, name, applied) in before.clone().filter_map(Action::updater_call) {
        let here = |b: &AppliedBackend| &b.backend_name == name && same_updater(&b.url, url);
        status.applied.retain(|b| !here(b));
        if let Some(request) = applied {
            let host = spec.as_ref().and_then(|s| s.host_of(url)).map(|h| &h.host);
            status.applied.push(AppliedBackend {
                backend_name: name.clone(),
                url: url.clone(),
                host: host.or(lb.spec.host.get()).cloned().unwrap_or_default(),
                port: i64::from(request.lb_port),
                protocol: request.lb_protocol.clone(),
            });
        }
    }
    status.applied.sort();
    match &spec {
        // One host failing leaves the others serving: record per host.
        Some(spec) => {
            let failed_host = call.and_then(|(url, ..)| spec.host_of(url));
            // The other hosts, whose every push came before the failure.
            let to = |h: &LbHost, a: &Action| {
                let apply = a.updater_call().filter(|(_, _, request)| request.is_some());
                apply.is_some_and(|(url, ..)| same_updater(url, &h.url))
            };
            let after = plan.actions.iter().skip(failed);
            let done: Vec<LbHost> = (spec.hosts.iter())
                .filter(|h| Some(*h) != failed_host)
                .filter(|h| before.clone().any(|a| to(h, a)) && !after.clone().any(|a| to(h, a)))
                .cloned()
                .collect();
            let failure = failed_host.map(|f| (f, what.as_str()));
            hosts::record(&mut status, generation, spec, (&done, failure), ctx);
        }
        // An unreadable spec (a hand-made LoadBalancer edited meanwhile).
        None => {
            status.phase = Some(PHASE_ERROR.to_string());
            let (now, c) = (&ctx.now, &mut status.conditions);
            set_condition(c, READY, false, "UpdaterFailed", &what, now, generation);
        }
    }
    if let Some(p) = auth {
        let (now, c, reason) = (&ctx.now, &mut status.conditions, p.reason);
        set_condition(c, UPDATER_AUTH, false, reason, &p.message, now, generation);
    }
    if status != lb.status {
        out.push(status_patch(key, &status));
    }
    let (reason, message) = match auth {
        Some(p) => (UPDATER_AUTH, p.message.clone()),
        None => ("UpdaterFailed", what),
    };
    let target = event_target(cache, key, lb);
    out.event(&target, (EventType::Warning, reason, message));
    out
}

/// The apiserver refused a write of this key's LoadBalancer as sent (a 4xx that is not a 401,
/// 404, conflict or throttle): one Warning Event on the Service (else the LoadBalancer), so that `kubectl describe
/// service` says why it has no address. An unknown field (LoadBalancer writes are strict) means the
/// installed CRDs are older than the controller.
pub fn on_write_refused(cache: &Cache, key: &Key, error: &dyn std::fmt::Display) -> Plan {
    let mut out = Plan::default();
    let target = match (cache.load_balancers.get(key), cache.services.get(key)) {
        (Some(lb), _) => event_target(cache, key, lb),
        (None, Some(svc)) => service_ref(svc),
        (None, None) => return out,
    };
    let error = error.to_string();
    let hint = if error.contains("unknown field") {
        " (the LoadBalancer CRD is older than this controller: apply this version's manifests/crds/)"
    } else {
        ""
    };
    let message = format!("the apiserver refused a write for LoadBalancer {key}: {error}{hint}");
    let reason = "SyncLoadBalancerFailed";
    out.event(&target, (EventType::Warning, reason, message));
    out
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
