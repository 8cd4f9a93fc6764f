//! The diagnosis of `paperlb explain`: from the gathered `Facts` alone, the path of one Service as
//! steps, each ok, failed (with the fix) or unknown (a read failed or the updater cannot say). The
//! cluster steps stop at the first failure; then each host of the config gets its own steps, which
//! stop at their first failure. The decisions are the controller's own: config choice, nodePorts,
//! port allocation and the desired spec come from `controller::decide::reconcile`, node eligibility from
//! `controller::decide::targets`, the requests a LoadBalancer implies from `controller::decide::drift::request`, and
//! each host's credentials from `controller::run::secrets::client_auth` ([`auths`]).
//! Pure: no I/O, no clock.

use super::facts::{Facts, Read};
use crate::controller::decide::drift::request;
use crate::controller::decide::reconcile::{desired, is_ours, pick_config, service_ports};
use crate::controller::decide::status::{RECONCILED, condition, port_list, shows_host};
use crate::controller::decide::targets::{
    Ineligible, node_addresses, node_ineligibility, targets_for,
};
use crate::controller::decide::traffic::{
    BALANCE_ANNOTATION, balancing_for, families_fault, follows_readiness_recorded,
    keeps_stable_set, traffic_for, updater_without_checks, with_override,
};
use crate::controller::decide::updater_auth::AuthProblem;
use crate::controller::run::secrets::{AuthNeed, SecretStore, client_auth, field_of};
use crate::controller::{Cache, Context, Key};
use crate::model::{
    CONFIG_ANNOTATION, LbHost, LbSpec, LoadBalancer, LoadBalancerStatus, Protocol, Service,
    ValidConfig, addresses,
};
use crate::updater::api::LbRequest;
use crate::updater::client::ClientAuth;
use crate::updater::validate::Balance;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    /// Could not be checked (a read failed, or the updater does not report it); not a stop.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Stable identifier (the JSON schema lists them).
    pub id: &'static str,
    pub status: Status,
    /// One sentence.
    pub message: String,
    /// What to do, on a failed step.
    pub fix: Option<String>,
}

/// `1 port`, `2 ports`.
pub(super) fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", plural(n))
}

/// The plural ending for `n` things: `s`, none for one.
fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A step's verdict; its id is given where it is recorded ([`push`]).
fn step(status: Status, message: String, fix: Option<String>) -> Step {
    Step {
        id: "",
        status,
        message,
        fix,
    }
}

pub(super) fn ok(message: String) -> Step {
    step(Status::Ok, message, None)
}

pub(super) fn fail(message: String, fix: String) -> Step {
    step(Status::Fail, message, Some(fix))
}

pub(super) fn unknown(message: String) -> Step {
    step(Status::Unknown, message, None)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostReport {
    #[serde(flatten)]
    pub host: LbHost,
    pub steps: Vec<Step>,
    /// The host serves the backends the LoadBalancer implies (and not every upstream of one of
    /// them is reported unhealthy).
    pub served: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub steps: Vec<Step>,
    pub hosts: Vec<HostReport>,
}

impl Report {
    /// Served on at least one LB host.
    pub fn served(&self) -> bool {
        self.hosts.iter().any(|h| h.served)
    }

    /// explain's exit code: 0 served, 1 not served (a cluster step failed, or a step of every
    /// host), 2 could not tell (the steps stopped at one that could not be checked, or a host that
    /// failed nothing cannot be told).
    pub fn exit_code(&self) -> u8 {
        let failed = |steps: &[Step]| steps.iter().any(|s| s.status == Status::Fail);
        let hosts_failed = !self.hosts.is_empty() && self.hosts.iter().all(|h| failed(&h.steps));
        if self.served() {
            0
        } else if failed(&self.steps) || hosts_failed {
            1
        } else {
            2
        }
    }
}

/// The controller's view of the gathered objects, built with the cache's own methods.
pub fn cache_of(f: &Facts) -> Cache {
    let mut c = Cache::default();
    c.replace_nodes(f.nodes.clone().unwrap_or_default());
    c.replace_configs(f.configs.clone().unwrap_or_default());
    c.replace_endpoint_slices(f.slices.clone().unwrap_or_default());
    let others = (f.load_balancers.clone().unwrap_or_default().into_iter())
        .filter(|l| Key::of(&l.metadata) != f.key);
    let own = f.load_balancer.clone().ok().flatten();
    c.replace_load_balancers(others.chain(own).collect());
    if let Ok(Some(svc)) = f.service.clone() {
        c.apply_service(svc);
    }
    c
}

/// The LB hosts of a config: the Go form's one (named by its address), or every `spec.hosts`
/// entry (by its name).
pub fn hosts_of(cfg: &ValidConfig) -> Vec<LbHost> {
    let mut hosts = cfg.hosts.clone();
    for h in hosts.iter_mut().filter(|h| h.name.is_empty()) {
        h.name = h.host.clone();
    }
    hosts
}

/// The config whose Secrets to read once the cluster is known: the chosen one. None when no
/// config can be chosen (the diagnosis stops before the secrets).
pub fn to_read(f: &Facts, ctx: &Context) -> Option<ValidConfig> {
    let svc = f.service.as_ref().ok()?.as_ref()?;
    let cfg = pick_config(&cache_of(f), &f.key, svc, ctx).ok()?;
    is_ours(svc, ctx).then_some(cfg)
}

/// One host's credentials for its updater call, or why the controller would send it none.
pub type Auth = Result<ClientAuth, AuthProblem>;

/// Each host's credentials as the controller builds and checks them ([`client_auth`]: the same
/// problems in the same words, `insecureSkipVerify` included), from `store`, which holds every key
/// `cfg` names that exists.
pub fn auths(cfg: &ValidConfig, store: &SecretStore) -> Vec<Auth> {
    let auth = |h: &LbHost| match client_auth(cfg, &h.url, store) {
        Ok(a) => Ok(a),
        Err(AuthNeed::Problem(p)) => Err(p),
        // Every key named was kept: no read can be due.
        Err(AuthNeed::Read(name)) => Err(AuthProblem {
            reason: "SecretUnreadable",
            message: format!("Secret {name} was not read"),
        }),
    };
    cfg.hosts.iter().map(auth).collect()
}

/// What the cluster steps found when they all passed.
pub(super) struct Ready {
    pub(super) cfg: ValidConfig,
    /// The LoadBalancer's status (the phase decides "served" where an updater cannot list).
    pub(super) status: LoadBalancerStatus,
    /// Every backend the LoadBalancer implies on each of its hosts.
    pub(super) requests: Vec<LbRequest>,
}

pub(super) fn cluster_steps(f: &Facts, ctx: &Context, steps: &mut Vec<Step>) -> Option<Ready> {
    let key = &f.key;
    let svc = push(steps, "service", service_step(f))?;
    check(steps, "class", class_step(svc, ctx))?;
    check(steps, "conflict", conflict_step(f, ctx))?;
    let cache = cache_of(f);
    let cfg = push(steps, "config", config_step(f, &cache, svc, ctx))?;
    check(steps, "secrets", secrets_step(&cfg, &f.secrets))?;
    check(steps, "nodeports", nodeports_step(key, svc))?;
    check(steps, "nodes", nodes_step(f, &cache, svc, &cfg, ctx))?;
    let lb = f.load_balancer.as_ref().ok().and_then(|l| l.as_ref());
    let spec = push(steps, "ports", ports_step(f, &cache, svc, lb, &cfg, ctx))?;
    let lb_step = load_balancer_step(f, svc, &spec, ctx);
    let status = push(steps, "loadbalancer", lb_step)?;
    Some(Ready {
        requests: implied_requests(&cache, key, ctx, &spec),
        cfg,
        status,
    })
}

/// Records step `id`; `None` (stop) when it failed.
pub(super) fn push<T>(
    steps: &mut Vec<Step>,
    id: &'static str,
    (step, value): (Step, Option<T>),
) -> Option<T> {
    let failed = step.status == Status::Fail;
    steps.push(Step { id, ..step });
    if failed { None } else { value }
}

/// Records step `id`, which yields nothing; `None` (stop) when it failed.
pub(super) fn check(steps: &mut Vec<Step>, id: &'static str, step: Step) -> Option<()> {
    push(steps, id, (step, Some(())))
}

fn service_step(f: &Facts) -> (Step, Option<&Service>) {
    let key = &f.key;
    let (svc, type_) = match &f.service {
        Err(e) => return (unknown(e.to_string()), None),
        Ok(None) => {
            let ns = &key.namespace;
            let fix = format!("check the namespace and the name: kubectl get services -n {ns}");
            return (fail(format!("Service {key} does not exist"), fix), None);
        }
        Ok(Some(s)) => (s, s.spec.type_.as_deref().unwrap_or("ClusterIP")),
    };
    if type_ != "LoadBalancer" {
        let m = format!("Service {key} is type {type_}; paperlb serves only type LoadBalancer");
        return (fail(m, "set spec.type: LoadBalancer".into()), None);
    }
    let ports = count(svc.spec.ports.len(), "port");
    let message = format!("Service {key} is type LoadBalancer with {ports}");
    (ok(message), Some(svc))
}

fn class_step(svc: &Service, ctx: &Context) -> Step {
    let ours = &ctx.class_name;
    match svc.spec.load_balancer_class.as_deref() {
        None => ok("it has no spec.loadBalancerClass, so paperlb serves it".into()),
        Some(c) if c == ours => ok(format!("its spec.loadBalancerClass is {c}: paperlb's")),
        Some(c) => fail(
            format!(
                "its spec.loadBalancerClass is {c}, so another controller serves it and paperlb leaves it alone"
            ),
            format!(
                "for paperlb, recreate the Service with spec.loadBalancerClass: {ours} or without the field (it cannot change while the type is LoadBalancer)"
            ),
        ),
    }
}

fn conflict_step(f: &Facts, ctx: &Context) -> Step {
    match &f.svclb {
        Err(e) => unknown(e.to_string()),
        Ok(names) if names.is_empty() => ok(
            "no other controller serves it (no k3s ServiceLB DaemonSet for it in kube-system)"
                .into(),
        ),
        Ok(names) => fail(
            format!(
                "k3s ServiceLB serves this Service too (DaemonSet {}) and writes node addresses into the same status.loadBalancer",
                names.join(", ")
            ),
            format!(
                "start k3s with --disable=servicelb, or recreate the Service with spec.loadBalancerClass: {} (ServiceLB skips classed Services)",
                ctx.class_name
            ),
        ),
    }
}

fn config_step(
    f: &Facts,
    cache: &Cache,
    svc: &Service,
    ctx: &Context,
) -> (Step, Option<ValidConfig>) {
    let ns = &ctx.namespace;
    if let Err(e) = &f.configs {
        return (unknown(e.to_string()), None);
    }
    let annotated = svc.metadata.annotations.get(CONFIG_ANNOTATION);
    match pick_config(cache, &f.key, svc, ctx) {
        Ok(cfg) => {
            let how = match annotated {
                Some(_) => format!("named by {CONFIG_ANNOTATION}"),
                None => "the default".into(),
            };
            let hosts: Vec<String> = (cfg.hosts.iter())
                .map(|h| format!("LB host {}, updater {}", h.host, h.url))
                .collect();
            let message = format!(
                "LoadBalancerConfig {ns}/{} ({how}) is valid: {}, ports {}-{}",
                cfg.name,
                hosts.join("; "),
                cfg.low,
                cfg.high
            );
            (ok(message), Some(cfg))
        }
        Err(p) => {
            let defaults = (cache.configs.iter())
                .filter(|(k, c)| &k.namespace == ns && c.is_default())
                .count();
            let fix = match (p.reason, annotated) {
                ("ConfigNotFound", Some(name)) => format!(
                    "create LoadBalancerConfig {ns}/{name}, or name an existing one in the annotation {CONFIG_ANNOTATION}"
                ),
                ("ConfigNotFound", None) => format!(
                    "create a LoadBalancerConfig in {ns} with spec.default: true, or annotate the Service with {CONFIG_ANNOTATION}: <name>"
                ),
                (_, None) if defaults > 1 => format!(
                    "keep spec.default: true on one config only, or annotate the Service with {CONFIG_ANNOTATION}: <name>"
                ),
                _ => format!(
                    "fix the field named above: kubectl edit loadbalancerconfigs -n {ns} <name>"
                ),
            };
            (fail(p.message, fix), None)
        }
    }
}

/// The controller's own check of each host's credentials (`verdicts`, in the order of the config's
/// hosts, as [`super::gather::secrets`] found them; a host without one has nothing wrong). It fails
/// only when no host can be called; else it names the Secrets of the first host that can be, and
/// the hosts that cannot (each one's `reachable` step says why).
pub(super) fn secrets_step(cfg: &ValidConfig, verdicts: &[Read<Option<AuthProblem>>]) -> Step {
    let ns = &cfg.namespace;
    let hosts = hosts_of(cfg);
    let usable = |i: &usize| matches!(verdicts.get(*i), None | Some(Ok(None)));
    let Some(first) = (0..hosts.len()).find(usable) else {
        // No host can be called; a Secret that could not be read leaves it untold.
        if let Some(Err(e)) = verdicts.iter().find(|v| v.is_err()) {
            return unknown(e.to_string());
        }
        let problems: Vec<&AuthProblem> = verdicts.iter().flatten().flatten().collect();
        let create =
            format!("kubectl -n {ns} create secret generic <name> --from-file=<key>=<file>");
        let fix = match problems.first().map_or("", |p| p.reason) {
            "SecretNotFound" => format!("create the Secret named above: {create}"),
            "KeyNotFound" => {
                "add the key to the Secret, or set `key` in the reference to the key that holds it"
                    .into()
            }
            _ => format!(
                "put a usable value in the key (a token on one line, or a PEM CA certificate): {create}"
            ),
        };
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        return fail(messages.join("; "), fix);
    };
    let refs = &cfg.auths[first];
    let named = [
        ("updaterTokenSecretRef", &refs.token),
        ("updaterCASecretRef", &refs.ca),
    ];
    let present: Vec<String> = (named.iter())
        .filter_map(|(name, r)| Some((field_of(cfg, first, name), r.as_ref()?)))
        .map(|(field, r)| format!("Secret {ns}/{} ({field}) has key {}", r.name, r.key))
        .collect();
    let mut message = present.join("; ");
    if present.is_empty() {
        let host = &hosts[first].name;
        message = format!(
            "LB host {host} references no updater Secret, so its updater is called without a token"
        );
    }
    let others: Vec<&str> = (hosts.iter().enumerate())
        .filter(|(i, _)| !usable(i))
        .map(|(_, h)| h.name.as_str())
        .collect();
    if !others.is_empty() {
        let others = others.join(", ");
        let _ = write!(
            message,
            "; LB host {others} is not called (see its reachable step)"
        );
    }
    ok(message)
}

fn nodeports_step(key: &Key, svc: &Service) -> Step {
    let (message, fix) = match service_ports(key, svc) {
        Ok(Some(ports)) => {
            let list: Vec<String> = (svc.spec.ports.iter().zip(&ports))
                .map(|(sp, p)| format!("{}/{}→{}", sp.port, p.protocol.as_str(), p.node_port))
                .collect();
            let message = format!("every port has a nodePort: {}", list.join(", "));
            return ok(message);
        }
        Ok(None) => (
            format!("a port of Service {key} has no nodePort yet"),
            "the apiserver assigns nodePorts when the Service is written; if this stays, read the apiserver's answer (kubectl get service -o yaml)",
        ),
        Err(p) if p.reason == "NoNodePorts" => (
            p.message,
            "set spec.allocateLoadBalancerNodePorts: true (or give every port a nodePort)",
        ),
        Err(p) => (p.message, "fix the Service's ports"),
    };
    fail(message, fix.into())
}

/// Why a node is not a target of this Service (the first reason, in `targets_for`'s order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NotTarget {
    NoLocalEndpoint,
    Node(Ineligible),
    NoAddress,
}

impl NotTarget {
    fn describe(self) -> &'static str {
        match self {
            NotTarget::NoLocalEndpoint => "without a ready endpoint (externalTrafficPolicy: Local)",
            NotTarget::Node(Ineligible::NotReady) => "NotReady",
            NotTarget::Node(Ineligible::Deleting) => "being deleted",
            NotTarget::Node(Ineligible::Excluded) => {
                "excluded by label node.kubernetes.io/exclude-from-external-load-balancers"
            }
            NotTarget::Node(Ineligible::ToBeDeleted) => "tainted ToBeDeletedByClusterAutoscaler",
            NotTarget::NoAddress => "without an address of the wanted types and IP families",
        }
    }
}

/// Node name → why it is not a target (absent: it is one); `local_nodes`: those with a ready
/// endpoint, for `externalTrafficPolicy: Local`.
pub fn not_targets(
    cache: &Cache,
    local_nodes: Option<&BTreeSet<String>>,
    types: (&[String], &[String]),
    stable: bool,
) -> BTreeMap<String, NotTarget> {
    cache
        .nodes
        .iter()
        .filter_map(|(name, node)| {
            let why = if local_nodes.is_some_and(|l| !l.contains(name)) {
                NotTarget::NoLocalEndpoint
            } else if let Some(i) = node_ineligibility(node, stable) {
                NotTarget::Node(i)
            } else if node_addresses(node, types.0, types.1).is_empty() {
                NotTarget::NoAddress
            } else {
                return None;
            };
            Some((name.clone(), why))
        })
        .collect()
}

fn nodes_step(f: &Facts, cache: &Cache, svc: &Service, cfg: &ValidConfig, ctx: &Context) -> Step {
    let local = svc.spec.external_traffic_policy.as_deref() == Some("Local");
    let slices = f.slices.as_ref().err().filter(|_| local);
    if let Some(e) = f.nodes.as_ref().err().or(slices) {
        return unknown(e.to_string());
    }
    let types = cfg.address_types_or(&ctx.address_types);
    // The rule the controller applies per port: a stable set unless the LoadBalancer follows
    // readiness; NotReady nodes count as left out unless every port keeps them.
    let lb = cache.load_balancers.get(&f.key).map(Box::as_ref);
    let stable = !lb.is_some_and(follows_readiness_recorded)
        && traffic_for(svc)
            .map(|t| with_override(t, &cfg.health_check))
            .is_ok_and(|t| {
                let urls = cfg.hosts.iter().map(|h| h.url.as_str());
                let no_checks = updater_without_checks(urls, lb, ctx);
                svc.spec.ports.iter().all(|p| {
                    let protocol = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"));
                    protocol
                        .is_some_and(|p| keeps_stable_set(&t, p, no_checks, ctx.stable_node_set))
                })
            });
    let types = (types, svc.spec.ip_families.as_slice());
    let local_nodes = local.then(|| cache.local_nodes(&f.key));
    let why = not_targets(cache, local_nodes.as_ref(), types, stable);
    let total = cache.nodes.len();
    let mut counts: BTreeMap<NotTarget, usize> = BTreeMap::new();
    for r in why.values() {
        *counts.entry(*r).or_default() += 1;
    }
    let breakdown: Vec<String> = counts
        .iter()
        .map(|(r, n)| format!("{n} {}", r.describe()))
        .collect();
    // The controller's own list, for the count of distinct target addresses.
    let targets = targets_for(1, &cache.nodes, types, local_nodes.as_ref(), stable);
    if targets.is_empty() {
        let message = if total == 0 {
            "the cluster has no nodes to forward to".to_string()
        } else {
            format!(
                "no node can receive traffic: of {}, {}",
                count(total, "node"),
                breakdown.join(", ")
            )
        };
        let mut fixes: Vec<String> = (counts.keys())
            .map(|r| match r {
                NotTarget::NoLocalEndpoint => format!(
                    "externalTrafficPolicy: Local forwards only to nodes with a ready endpoint: check the pods are Ready (kubectl get endpointslices -n {} -l kubernetes.io/service-name={}), or use externalTrafficPolicy: Cluster",
                    f.key.namespace, f.key.name
                ),
                NotTarget::Node(Ineligible::NotReady) => "make the nodes Ready (kubectl describe nodes)".into(),
                NotTarget::Node(Ineligible::Deleting) => "wait for the nodes being deleted to be replaced".into(),
                NotTarget::Node(Ineligible::Excluded) => "remove the label node.kubernetes.io/exclude-from-external-load-balancers from a node".into(),
                NotTarget::Node(Ineligible::ToBeDeleted) => "the cluster autoscaler is removing those nodes: scale up or wait".into(),
                NotTarget::NoAddress => format!(
                    "give the nodes an address of type {}{} or set spec.targetAddressTypes of LoadBalancerConfig {}/{}",
                    types.0.join(" or "),
                    match types.1 {
                        [] => String::new(),
                        f => format!(" in the Service's ipFamilies ({})", f.join(", ")),
                    },
                    cfg.namespace,
                    cfg.name
                ),
            })
            .collect();
        if fixes.is_empty() {
            fixes.push("add a node".into());
        }
        return fail(message, fixes.join("; "));
    }
    let mut message = format!(
        "{} of {} receive traffic ({} target address{})",
        total - why.len(),
        count(total, "node"),
        targets.len(),
        if targets.len() == 1 { "" } else { "es" }
    );
    if !breakdown.is_empty() {
        let _ = write!(message, "; left out: {}", breakdown.join(", "));
    }
    ok(message)
}

/// Per protocol (TCP, UDP): its name, how many ports of the config's range `pairs` holds, and the
/// range's size.
pub(super) fn used_in_range(
    pairs: &BTreeSet<(u16, Protocol)>,
    cfg: &ValidConfig,
) -> [(&'static str, usize, usize); 2] {
    let range = cfg.low..=cfg.high;
    [Protocol::Tcp, Protocol::Udp].map(|proto| {
        let used = pairs
            .iter()
            .filter(|(p, pr)| *pr == proto && range.contains(p));
        (proto.as_str(), used.count(), range.len())
    })
}

fn ports_step(
    f: &Facts,
    cache: &Cache,
    svc: &Service,
    lb: Option<&LoadBalancer>,
    cfg: &ValidConfig,
    ctx: &Context,
) -> (Step, Option<LbSpec>) {
    let key = &f.key;
    let fix_for = |reason| match reason {
        // Out of the range, held (the message names the holder), or asked for twice.
        "PortUnavailable" => "ask for a port in the config's range that no other port asks for, \
            widen the config's spec.portRange, or free the port (delete or move the Service of the \
            LoadBalancer named above)"
            .to_string(),
        "InvalidAnnotation" => "fix the annotation named above".to_string(),
        _ => "see the message".to_string(),
    };
    // The controller's own decision, with its verdict on the ports the annotation
    // `lb.paperlb.com/lb-ports` asks for (a refused one is `PortRequest=False`).
    let (message, fix) = match desired(cache, key, svc, lb, ctx) {
        Ok(Some((spec, d))) if d.faults.is_empty() => {
            let s = plural(spec.ports.len());
            let on = addresses(&spec.hosts);
            let mut message = format!("LB port{s} {} on {on}", port_list(&spec.ports));
            // The balancing rule (`sessionAffinity: ClientIP` wins) and what it ignored.
            let balancing = balancing_for(svc);
            let balance = balancing.balance.as_str();
            // The controller's rule: the Go nginx-lb-updater serves round robin only
            // (`Balancing=False`, `UpdaterWithoutBalance`).
            let urls = spec.hosts.iter().map(|h| h.url.as_str());
            let go_updater = updater_without_checks(urls, lb, ctx);
            if balancing.balance != Balance::RoundRobin && go_updater {
                let mut drop = Vec::new();
                if svc.spec.session_affinity.as_deref() == Some("ClientIP") {
                    drop.push("spec.sessionAffinity: ClientIP".to_string());
                }
                let annotation = svc.metadata.annotations.get(BALANCE_ANNOTATION);
                if annotation
                    .and_then(|v| Balance::parse(v))
                    .is_some_and(|b| b != Balance::RoundRobin)
                {
                    drop.push(format!("the annotation {BALANCE_ANNOTATION}"));
                }
                // The condition's reason is its first fault (traffic::balancing_fault).
                let reason = balancing
                    .faults
                    .first()
                    .map_or("UpdaterWithoutBalance", |f| f.0);
                let _ = write!(
                    message,
                    "; balance {balance} is not served (Balancing=False, {reason}): \
                     the updater is the Go nginx-lb-updater, which serves round robin only; for \
                     {balance} run the paperlb updater (paperlb nginx-updater) on the LB host, or \
                     drop {}",
                    drop.join(" and ")
                );
            } else if balancing.balance != Balance::RoundRobin {
                let _ = write!(message, "; balance {balance}");
            }
            for (_, fault) in balancing.faults {
                let _ = write!(message, "; {fault}");
            }
            // Dual stack with a family no target has: served on the others, as the controller says.
            if let Some((reason, fault)) = families_fault(&spec, svc) {
                let _ = write!(message, "; DualStack=False ({reason}): {fault}");
            }
            return (ok(message), Some(spec));
        }
        Ok(Some((_, d))) => (d.faults[0].message.clone(), fix_for(d.faults[0].reason)),
        Ok(None) => (
            format!("a port of Service {key} has no nodePort yet"),
            "wait for the apiserver to assign it".into(),
        ),
        Err(p) if p.reason == "PortRangeExhausted" => {
            // A port is free only where it is free on every host.
            let taken = (cfg.hosts.iter())
                .flat_map(|h| cache.ports_taken_on(&h.host, key))
                .collect();
            let used =
                used_in_range(&taken, cfg).map(|(p, n, total)| format!("{n}/{total} {p} used"));
            let (ns, name) = (&cfg.namespace, &cfg.name);
            let fix = format!(
                "widen spec.portRange of LoadBalancerConfig {ns}/{name}, or delete LoadBalancer Services that are no longer needed"
            );
            (format!("{} ({})", p.message, used.join(", ")), fix)
        }
        Err(p) => (p.message, fix_for(p.reason)),
    };
    (fail(message, fix), None)
}

fn load_balancer_step(
    f: &Facts,
    svc: &Service,
    desired: &LbSpec,
    ctx: &Context,
) -> (Step, Option<LoadBalancerStatus>) {
    let key = &f.key;
    let ns = &ctx.namespace;
    let controller_fix = format!(
        "check that paperlb controller runs and leads: kubectl -n {ns} get pods, kubectl -n {ns} logs deploy/paperlb-controller"
    );
    let last_warning = f
        .events
        .iter()
        .flatten()
        .rev()
        .find(|e| e.type_ == "Warning")
        .map(|e| format!(" (last Warning Event: {}: {})", e.reason, e.message))
        .unwrap_or_default();
    let lb = match &f.load_balancer {
        Err(e) => {
            let status = LoadBalancerStatus::default();
            return (unknown(e.to_string()), Some(status));
        }
        Ok(Some(lb)) => lb,
        Ok(None) => {
            let message = format!(
                "there is no LoadBalancer {key}: the controller has not acted on this Service{last_warning}"
            );
            return (fail(message, controller_fix), None);
        }
    };
    // What the Service, config and nodes call for: `8100/TCP on 192.0.2.10 with 2 targets`.
    let ports = port_list(&desired.ports);
    let targets = count(desired.target_count(), "target");
    let wanted = format!("{ports} on {} with {targets}", addresses(&desired.hosts));
    let owner = lb.metadata.service_owner();
    let owned = owner.is_some_and(|o| o.uid == svc.metadata.uid && o.controller == Some(true));
    if lb.metadata.is_deleting() {
        let waits: Vec<String> = crate::controller::decide::status::known_backends(key, lb)
            .into_iter()
            .map(|b| format!("{} from updater {}", b.backend_name, b.url))
            .collect();
        let message = format!(
            "LoadBalancer {key} is being deleted (since {}): the controller waits to delete {} \
             before it lets it go; it gives up on an updater that has not answered at all for \
             --unreachable-delete-grace (default 5m, from its last answer: with the default, \
             about 5m after the deletion at the latest if it answered until then), leaving \
             the backend for drift repair",
            lb.metadata.deletion_timestamp.as_deref().unwrap_or("?"),
            if waits.is_empty() {
                "nothing".to_string()
            } else {
                waits.join(", ")
            }
        );
        let fix = "the controller removes its backends and lets it go, then creates a new one; if it stays, check that the updater answers (paperlb explain's host steps) and the controller's log";
        return (fail(message, fix.into()), None);
    }
    if !owned || !desired.matches(&lb.spec) {
        let recorded = LbSpec::from_resource(&lb.spec)
            .map(|s| format!("{} on {}", port_list(&s.ports), addresses(&s.hosts)))
            .unwrap_or_else(|e| format!("an unreadable spec ({e})"));
        let what = if owned {
            format!("records {recorded}, but the Service, config and nodes now call for {wanted}")
        } else {
            "is not yet owned by this Service".to_string()
        };
        let message =
            format!("LoadBalancer {key} {what}: the controller has not caught up{last_warning}");
        return (fail(message, controller_fix), None);
    }
    if let Some(c) = condition(&lb.status.conditions, RECONCILED).filter(|c| c.status == "False") {
        let message = format!("LoadBalancer {key}: {}: {}", c.reason, c.message);
        return (fail(message, "see the message".into()), None);
    }
    let phase = lb.status.phase.as_deref().unwrap_or("PENDING");
    let mut message = format!("LoadBalancer {key} records {wanted}; phase {phase}");
    if let Some(c) = condition(&lb.status.conditions, "Ready").filter(|c| c.status == "False") {
        let _ = write!(message, " ({}: {})", c.reason, c.message);
    }
    let shown = (svc.status.load_balancer.ingress.iter())
        .any(|i| desired.hosts.iter().any(|h| shows_host(i, &h.host)));
    if !shown {
        message.push_str("; the Service shows no EXTERNAL-IP for it yet");
    }
    (ok(message), Some(lb.status.clone()))
}

/// Every backend the LoadBalancer implies, the same on each of its hosts: for each port with targets
/// (one without is held nowhere, `no_targets`), the request drift repair holds an updater to
/// (`drift::request`, built as a reconcile pushes it).
fn implied_requests(cache: &Cache, key: &Key, ctx: &Context, spec: &LbSpec) -> Vec<LbRequest> {
    let ports = spec.ports.iter().enumerate();
    let with_targets = ports.filter(|(_, p)| !p.targets.is_empty());
    let requests = with_targets.filter_map(|(i, _)| request(cache, ctx, key, i));
    requests.collect()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
