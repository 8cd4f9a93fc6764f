//! What a Service asks of its traffic, read from its fields and annotations: source ranges
//! (`spec.loadBalancerSourceRanges`, else the annotation
//! `service.beta.kubernetes.io/load-balancer-source-ranges`), PROXY protocol (the annotation
//! `lb.paperlb.com/proxy-protocol: "true"`), the health check the updater should run
//! (`externalTrafficPolicy: Local`: http on the Service's `healthCheckNodePort` `/healthz`, kube-proxy's
//! per-Service check; otherwise http on kube-proxy's node check `:10256/healthz`, KEP-3458), and
//! balancing and proxy timeouts ([`balancing_for`]: `spec.sessionAffinity: ClientIP` is a consistent
//! hash of the client address and wins over the annotation `lb.paperlb.com/balance`).
//!
//! A LoadBalancerConfig's `spec.healthCheck` replaces the derived check field by field, or turns it
//! off (`type: none`): [`with_override`].
//!
//! With a check in force a port's targets are a stable node set (KEP-3458, see `targets`); without
//! one, against an updater that runs none, or under `--stable-node-set=false` they follow node
//! readiness, and the `StableNodeSet=False` condition says why ([`keeps_stable_set`],
//! [`node_set_fault`]).
//!
//! A dual-stack Service whose targets lack a family is served on the others, and `DualStack=False`
//! names the missing one ([`families_fault`]).
//!
//! Pure: no I/O. Must not: decide ports or targets (that is `ports` and `targets`).

use super::context::Context;
use super::status::{DRIFT_CHECK, condition, set_condition};
use super::targets::{NO_ADDRESS_IN_FAMILY, in_family};
pub use super::targets::{STABLE_NODE_SET, follows_readiness_recorded};
use crate::model::url::updater_endpoint;
use crate::model::{
    HealthOverride, LbHealthCheck, LbPort, LbSpec, LbTraffic, LoadBalancer, LoadBalancerStatus,
    Protocol, Service,
};
use crate::updater::validate::{Balance, MAX_TIMEOUT_SECONDS, cidr};

pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
pub const PROXY_PROTOCOL_ANNOTATION: &str = "lb.paperlb.com/proxy-protocol";
/// Condition on the LoadBalancer: False while PROXY protocol is asked for on UDP ports.
pub const PROXY_PROTOCOL: &str = "ProxyProtocol";
pub const BALANCE_ANNOTATION: &str = "lb.paperlb.com/balance";
/// nginx `proxy_timeout` and `proxy_connect_timeout` in seconds, over the config's.
pub const TIMEOUT_ANNOTATIONS: [&str; 2] = [
    "lb.paperlb.com/proxy-timeout-seconds",
    "lb.paperlb.com/proxy-connect-timeout-seconds",
];
/// Condition on the LoadBalancer: False while a balancing or timeout setting is ignored.
pub const BALANCING: &str = "Balancing";
/// Condition on the LoadBalancer: False while a dual-stack Service is served in one family only.
pub const DUAL_STACK: &str = "DualStack";
/// kube-proxy's node health check port (`--healthz-bind-address`'s default).
pub const KUBE_PROXY_HEALTHZ_PORT: u16 = 10256;

/// The Service's traffic settings, or why they cannot be honoured (`(reason, message)`): an
/// invalid CIDR is refused rather than ignored, since an open port is worse than a pending one.
pub fn traffic_for(svc: &Service) -> Result<LbTraffic, (&'static str, String)> {
    let field = &svc.spec.load_balancer_source_ranges;
    let annotation = svc.metadata.annotations.get(SOURCE_RANGES_ANNOTATION);
    let raw: Vec<&str> = match annotation.filter(|_| field.is_empty()) {
        Some(a) => a
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        None => field.iter().map(String::as_str).collect(),
    };
    let mut source_ranges = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let c = cidr(c).map_err(|e| {
            let at = if field.is_empty() {
                format!("annotation {SOURCE_RANGES_ANNOTATION}")
            } else {
                format!("spec.loadBalancerSourceRanges[{i}]")
            };
            ("InvalidSourceRange", format!("{at}: {e}"))
        })?;
        if !source_ranges.contains(&c) {
            source_ranges.push(c);
        }
    }
    let proxy_protocol = match svc.metadata.annotations.get(PROXY_PROTOCOL_ANNOTATION) {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            let must = "must be \"true\" or \"false\"";
            let message = format!("annotation {PROXY_PROTOCOL_ANNOTATION} {v:?}: {must}");
            return Err(("InvalidAnnotation", message));
        }
    };
    let local = svc.spec.external_traffic_policy.as_deref() == Some("Local");
    let local_port = (svc.spec.health_check_node_port.filter(|_| local))
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0);
    let health_check = Some(LbHealthCheck {
        kind: "http".into(),
        port: Some(local_port.unwrap_or(KUBE_PROXY_HEALTHZ_PORT)),
        path: "/healthz".into(),
        timings: Default::default(),
    });
    Ok(LbTraffic {
        source_ranges,
        proxy_protocol,
        health_check,
        balance: balancing_for(svc).balance,
    })
}

/// How a Service's connections are spread and timed, and what of it was ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Balancing {
    pub balance: Balance,
    /// `proxy_timeout`, `proxy_connect_timeout` in seconds ([`TIMEOUT_ANNOTATIONS`]); None = the
    /// config's.
    pub timeouts: [Option<u32>; 2],
    /// `(reason, message)` of each setting ignored: a value that cannot be read falls back to the
    /// default (traffic is served either way), and the `Balancing` condition and a Warning say so.
    pub faults: Vec<(&'static str, String)>,
}

/// `spec.sessionAffinity: ClientIP` is a consistent hash of the client address (each client stays
/// on one node) and wins over the annotation `lb.paperlb.com/balance`, which otherwise picks the
/// method (round robin by default).
pub fn balancing_for(svc: &Service) -> Balancing {
    let ann = |k: &str| svc.metadata.annotations.get(k);
    let asked = ann(BALANCE_ANNOTATION).map(|v| (v, Balance::parse(v)));
    let client_ip = svc.spec.session_affinity.as_deref() == Some("ClientIP");
    let balance = match asked {
        _ if client_ip => Balance::Hash,
        Some((_, Some(b))) => b,
        _ => Balance::RoundRobin,
    };
    let mut faults = Vec::new();
    match asked {
        Some((v, None)) => faults.push((
            "InvalidAnnotation",
            format!(
                "annotation {BALANCE_ANNOTATION} {v:?}: must be round-robin, least-conn, hash or \
                 random-two; {} is used",
                balance.as_str()
            ),
        )),
        Some((_, Some(b))) if b != balance => faults.push((
            "SessionAffinityWins",
            format!(
                "annotation {BALANCE_ANNOTATION} asks for {}, but spec.sessionAffinity: ClientIP \
                 keeps each client on one node: hash (of the client address) is used",
                b.as_str()
            ),
        )),
        _ => {}
    }
    let mut timeouts = [None; 2];
    for (t, key) in timeouts.iter_mut().zip(TIMEOUT_ANNOTATIONS) {
        let Some(v) = ann(key) else { continue };
        match v.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_TIMEOUT_SECONDS).contains(&u64::from(n)) => *t = Some(n),
            _ => faults.push((
                "InvalidAnnotation",
                format!(
                    "annotation {key} {v:?}: must be whole seconds, 1-{MAX_TIMEOUT_SECONDS}; the \
                     LoadBalancerConfig's is used"
                ),
            )),
        }
    }
    Balancing {
        balance,
        timeouts,
        faults,
    }
}

/// The derived traffic settings under a config's `spec.healthCheck`: absent keeps the derived
/// check, `none` removes it, and each field given replaces the derived one. A `type` other than
/// the derived one without a `port` probes each target's own port (tcp) or the derived port (http).
pub fn with_override(mut traffic: LbTraffic, o: &HealthOverride) -> LbTraffic {
    match o {
        HealthOverride::Derived => {}
        HealthOverride::Off => traffic.health_check = None,
        HealthOverride::Check {
            kind,
            port,
            path,
            timings,
        } => {
            let derived = traffic.health_check.take();
            let kind = kind
                .clone()
                .or_else(|| derived.as_ref().map(|d| d.kind.clone()))
                .unwrap_or_else(|| "http".into());
            let derived_port = (derived.as_ref())
                .filter(|d| d.kind == kind || kind == "http")
                .and_then(|d| d.port);
            traffic.health_check = Some(LbHealthCheck {
                port: port.or(derived_port),
                path: path
                    .clone()
                    .or_else(|| derived.map(|d| d.path))
                    .unwrap_or_else(|| "/healthz".into()),
                kind,
                timings: *timings,
            });
        }
    }
    traffic
}

/// The check pushed for a port of `protocol`: a tcp check of the target's own port cannot probe a
/// UDP nodePort, so there is none there.
pub fn port_check(traffic: &LbTraffic, protocol: Protocol) -> Option<&LbHealthCheck> {
    traffic
        .health_check
        .as_ref()
        .filter(|h| !(protocol == Protocol::Udp && h.kind == "tcp" && h.port.is_none()))
}

/// Whether an updater at one of `urls` runs no health checks: it has no `GET /api/v1/lb` (the Go
/// nginx-lb-updater, which ignores the `healthCheck` field), as the worker found
/// (`ctx.without_checks`) or `lb`'s status recorded (`DriftCheck` False, reason `Unsupported`).
pub fn updater_without_checks<'a>(
    mut urls: impl Iterator<Item = &'a str>,
    lb: Option<&LoadBalancer>,
    ctx: &Context,
) -> bool {
    let recorded = lb
        .and_then(|l| condition(&l.status.conditions, DRIFT_CHECK))
        .is_some_and(|c| c.status == "False" && c.reason == "Unsupported");
    recorded || urls.any(|u| updater_endpoint(u).is_ok_and(|e| ctx.without_checks.contains(&e)))
}

/// Whether a port of `protocol` keeps a stable node set: only with a check in force, which drains
/// nodes instead (`no_checks`: [`updater_without_checks`]; `stable`: the controller's
/// `--stable-node-set`). Otherwise its targets follow node readiness ([`node_set_fault`] says why).
pub fn keeps_stable_set(
    traffic: &LbTraffic,
    protocol: Protocol,
    no_checks: bool,
    stable: bool,
) -> bool {
    stable && !no_checks && port_check(traffic, protocol).is_some()
}

/// A fault: the reason and message of a condition that is False while it lasts (absent
/// otherwise), and of the Warning Event posted when it is new ([`record_fault`]).
pub type Fault = Option<(&'static str, String)>;

/// `StableNodeSet=False` while some port of `spec` follows node readiness ([`keeps_stable_set`]
/// false), saying why (the default needs no word; `no_checks`: [`updater_without_checks`] for its
/// updaters).
pub fn node_set_fault(spec: &LbSpec, no_checks: bool, ctx: &Context) -> Fault {
    // The condition says why exactly when some port's targets follow readiness.
    let stable = ctx.stable_node_set;
    let keeps = |p: &LbPort| keeps_stable_set(&spec.traffic, p.protocol, no_checks, stable);
    if spec.ports.iter().all(keeps) {
        return None;
    }
    let unchecked = port_labels(spec, |p| port_check(&spec.traffic, p.protocol).is_none());
    let (reason, why) = if !stable {
        let why = "the controller runs with --stable-node-set=false";
        ("Disabled", why.to_string())
    } else if no_checks {
        // The updaters found without checks; all of the spec's when only the status recorded it.
        let urls = spec.hosts.iter().map(|h| h.url.as_str());
        let found = |u: &&str| updater_endpoint(u).is_ok_and(|e| ctx.without_checks.contains(&e));
        let urls: Vec<&str> = match urls.clone().filter(found).collect::<Vec<_>>() {
            none if none.is_empty() => urls.collect(),
            some => some,
        };
        let why = format!(
            "updater {} runs no health checks (it has no GET /api/v1/lb: the Go nginx-lb-updater?)",
            urls.join(", ")
        );
        ("UpdaterWithoutChecks", why)
    } else if spec.traffic.health_check.is_none() {
        let config = &spec.config_name;
        let why = format!("LoadBalancerConfig {config} has spec.healthCheck.type: none");
        ("NoHealthCheck", why)
    } else if !unchecked.is_empty() {
        let why = format!(
            "UDP port(s) {unchecked} have no health check (a tcp check of their own port cannot \
             probe UDP)"
        );
        ("NoHealthCheck", why)
    } else {
        return None;
    };
    let message = format!(
        "{why}: NotReady nodes and nodes tainted {} leave the targets, which cuts their connections \
         and pushes every readiness change; with an updater health check they stay and the check \
         drains them (KEP-3458)",
        super::targets::TO_BE_DELETED_TAINT
    );
    Some((reason, message))
}

/// `ProxyProtocol=False` while the Service asks for PROXY protocol on UDP ports (they are pushed
/// without it).
pub fn proxy_protocol_fault(spec: &LbSpec) -> Fault {
    let udp = port_labels(spec, |p| {
        spec.traffic.proxy_protocol && p.protocol == Protocol::Udp
    });
    (!udp.is_empty()).then(|| {
        let message = format!(
            "annotation {PROXY_PROTOCOL_ANNOTATION} asks for PROXY protocol, which UDP cannot \
             carry: port(s) {udp} are served without it"
        );
        ("ProxyProtocolUnsupported", message)
    })
}

/// `DualStack=False` while `svc` asks for several families (`spec.ipFamilies`) and the targets of
/// `spec` are in some only: no eligible node has an address in the others, so it is served on
/// those it has. (No target at all is `Ready=False` instead, see `no_targets`.)
pub fn families_fault(spec: &LbSpec, svc: &Service) -> Fault {
    let families = &svc.spec.ip_families;
    let hosts: Vec<&str> = (spec.ports.iter().flat_map(|p| &p.targets))
        .map(|t| t.host.as_str())
        .collect();
    let (served, missing): (Vec<usize>, Vec<usize>) =
        (0..families.len()).partition(|i| hosts.iter().any(|h| in_family(h, families, *i)));
    let names = |is: Vec<usize>| -> String {
        let names: Vec<&str> = is.into_iter().map(|i| families[i].as_str()).collect();
        names.join(", ")
    };
    (!served.is_empty() && !missing.is_empty()).then(|| {
        let (served, missing) = (names(served), names(missing));
        let message = format!(
            "the Service's ipFamilies are {}, but no eligible node has an {missing} address of the \
             configured types: it is served on {served} only; give the nodes {missing} addresses, \
             or make the Service single-stack",
            families.join(", ")
        );
        (NO_ADDRESS_IN_FAMILY, message)
    })
}

/// `Balancing=False` while a balancing or timeout setting of `svc` is ignored ([`balancing_for`]).
/// `go_updater`: an updater of the LoadBalancer is the Go nginx-lb-updater
/// ([`updater_without_checks`]), which ignores `balance` and serves round robin.
pub fn balancing_fault(svc: &Service, go_updater: bool) -> Fault {
    let mut b = balancing_for(svc);
    if go_updater && b.balance != Balance::RoundRobin {
        b.faults.push((
            "UpdaterWithoutBalance",
            format!(
                "balance {} is not served: the updater is the Go nginx-lb-updater, which has no \
                 balance field and serves round robin",
                b.balance.as_str()
            ),
        ));
    }
    b.faults.first().map(|(reason, _)| {
        let messages: Vec<&str> = b.faults.iter().map(|(_, m)| m.as_str()).collect();
        (*reason, messages.join("; "))
    })
}

/// Condition `type_` False with `fault`'s reason and message, or absent without a fault; the
/// fault is returned when its message is new (a Warning Event is due once per new fault). `at`:
/// the time and the generation the condition is for.
pub(crate) fn record_fault(
    status: &mut LoadBalancerStatus,
    type_: &str,
    fault: Fault,
    (now, generation): (&str, Option<i64>),
) -> Fault {
    let Some((reason, message)) = fault else {
        status.conditions.retain(|c| c.type_ != type_);
        return None;
    };
    let news = !status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "False" && c.message == message);
    let c = &mut status.conditions;
    set_condition(c, type_, false, reason, &message, now, generation);
    news.then_some((reason, message))
}

/// The ports of `spec` that `pick` picks, as messages name them: each by its name, else
/// `#<index>`.
fn port_labels(spec: &LbSpec, pick: impl Fn(&LbPort) -> bool) -> String {
    let label = |(i, p): (usize, &LbPort)| match p.name.as_str() {
        "" => format!("#{i}"),
        name => name.to_string(),
    };
    let picked = spec.ports.iter().enumerate().filter(|(_, p)| pick(p));
    picked.map(label).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_balancing(
        status: &mut LoadBalancerStatus,
        svc: &Service,
        go_updater: bool,
        now: &str,
        generation: Option<i64>,
    ) -> Fault {
        let fault = balancing_fault(svc, go_updater);
        record_fault(status, BALANCING, fault, (now, generation))
    }

    fn record_families(
        status: &mut LoadBalancerStatus,
        spec: &LbSpec,
        svc: &Service,
        now: &str,
        generation: Option<i64>,
    ) -> Fault {
        let fault = families_fault(spec, svc);
        record_fault(status, DUAL_STACK, fault, (now, generation))
    }

    fn record_node_set(
        status: &mut LoadBalancerStatus,
        spec: &LbSpec,
        lb: &LoadBalancer,
        ctx: &Context,
        generation: Option<i64>,
    ) {
        let urls = spec.hosts.iter().map(|h| h.url.as_str());
        let no_checks = updater_without_checks(urls, Some(lb), ctx);
        let fault = node_set_fault(spec, no_checks, ctx);
        record_fault(status, STABLE_NODE_SET, fault, (&ctx.now, generation));
    }

    fn svc(json: serde_json::Value) -> Service {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn cluster_services_ask_for_the_node_check_and_local_ones_for_theirs() {
        let t = traffic_for(&svc(serde_json::json!({"spec": {"type": "LoadBalancer"}}))).unwrap();
        assert_eq!(
            t,
            LbTraffic {
                source_ranges: vec![],
                proxy_protocol: false,
                health_check: Some(LbHealthCheck {
                    kind: "http".into(),
                    port: Some(10256),
                    path: "/healthz".into(),
                    timings: Default::default(),
                }),
                balance: Balance::RoundRobin,
            }
        );
        let local = svc(serde_json::json!({"spec": {
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 31555}}));
        let t = traffic_for(&local).unwrap();
        assert_eq!(t.health_check.unwrap().port, Some(31555));
        let local_without = svc(serde_json::json!({"spec": {"externalTrafficPolicy": "Local"}}));
        assert_eq!(
            traffic_for(&local_without)
                .unwrap()
                .health_check
                .unwrap()
                .port,
            Some(10256)
        );
    }

    #[test]
    fn affinity_and_annotations_decide_balance_timeouts_and_faults() {
        use Balance::*;
        const INVALID: &str = "InvalidAnnotation";
        const WINS: &str = "SessionAffinityWins";
        // (sessionAffinity, annotations, balance, timeouts, fault reasons)
        type Case = (
            Option<&'static str>,
            &'static [(&'static str, &'static str)],
            Balance,
            [Option<u32>; 2],
            &'static [&'static str],
        );
        const B: &str = BALANCE_ANNOTATION;
        const T: &str = TIMEOUT_ANNOTATIONS[0];
        const C: &str = TIMEOUT_ANNOTATIONS[1];
        let cases: &[Case] = &[
            (None, &[], RoundRobin, [None; 2], &[]),
            (Some("None"), &[], RoundRobin, [None; 2], &[]),
            (Some("ClientIP"), &[], Hash, [None; 2], &[]),
            (None, &[(B, "least-conn")], LeastConn, [None; 2], &[]),
            (None, &[(B, " Random-Two ")], RandomTwo, [None; 2], &[]),
            (None, &[(B, "hash")], Hash, [None; 2], &[]),
            (None, &[(B, "round-robin")], RoundRobin, [None; 2], &[]),
            (
                Some("None"),
                &[(B, "least-conn")],
                LeastConn,
                [None; 2],
                &[],
            ),
            (Some("ClientIP"), &[(B, "hash")], Hash, [None; 2], &[]),
            (
                Some("ClientIP"),
                &[(B, "least-conn")],
                Hash,
                [None; 2],
                &[WINS],
            ),
            (
                Some("ClientIP"),
                &[(B, "round-robin")],
                Hash,
                [None; 2],
                &[WINS],
            ),
            (
                None,
                &[(B, "least_conn")],
                RoundRobin,
                [None; 2],
                &[INVALID],
            ),
            (
                Some("ClientIP"),
                &[(B, "sticky")],
                Hash,
                [None; 2],
                &[INVALID],
            ),
            (
                None,
                &[(T, "3600"), (C, " 5 ")],
                RoundRobin,
                [Some(3600), Some(5)],
                &[],
            ),
            (
                None,
                &[(T, "604800")],
                RoundRobin,
                [Some(604800), None],
                &[],
            ),
            (None, &[(T, "0")], RoundRobin, [None; 2], &[INVALID]),
            (None, &[(T, "604801")], RoundRobin, [None; 2], &[INVALID]),
            (None, &[(C, "-1")], RoundRobin, [None; 2], &[INVALID]),
            (None, &[(C, "5s")], RoundRobin, [None; 2], &[INVALID]),
            (
                None,
                &[(T, "1.5"), (C, "2")],
                RoundRobin,
                [None, Some(2)],
                &[INVALID],
            ),
            (
                Some("ClientIP"),
                &[(B, "random-two"), (T, ""), (C, "99999999999")],
                Hash,
                [None; 2],
                &[WINS, INVALID, INVALID],
            ),
        ];
        for (affinity, annotations, balance, timeouts, reasons) in cases {
            let annotations: serde_json::Map<String, serde_json::Value> = annotations
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect();
            let s = svc(serde_json::json!({"metadata": {"annotations": annotations},
                "spec": {"sessionAffinity": affinity}}));
            let got = balancing_for(&s);
            let what = format!("{affinity:?} {annotations:?}: {got:?}");
            assert_eq!(got.balance, *balance, "{what}");
            assert_eq!(got.timeouts, *timeouts, "{what}");
            let got_reasons: Vec<&str> = got.faults.iter().map(|(r, _)| *r).collect();
            assert_eq!(got_reasons, *reasons, "{what}");
            assert_eq!(traffic_for(&s).unwrap().balance, *balance, "{what}");
        }
        let conflict = svc(serde_json::json!({
            "metadata": {"annotations": {BALANCE_ANNOTATION: "least-conn"}},
            "spec": {"sessionAffinity": "ClientIP"}}));
        assert_eq!(
            balancing_for(&conflict).faults[0].1,
            "annotation lb.paperlb.com/balance asks for least-conn, but spec.sessionAffinity: \
             ClientIP keeps each client on one node: hash (of the client address) is used"
        );
        let bad = svc(serde_json::json!({
            "metadata": {"annotations": {B: "fast", T: "0"}}}));
        let messages: Vec<String> = balancing_for(&bad)
            .faults
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(
            messages,
            [
                "annotation lb.paperlb.com/balance \"fast\": must be round-robin, least-conn, hash \
                 or random-two; round-robin is used",
                "annotation lb.paperlb.com/proxy-timeout-seconds \"0\": must be whole seconds, \
                 1-604800; the LoadBalancerConfig's is used"
            ]
        );
    }

    #[test]
    fn balancing_faults_set_one_condition_and_a_warning_once_per_new_fault() {
        let mut status = LoadBalancerStatus::default();
        let ok = svc(serde_json::json!({"spec": {"sessionAffinity": "ClientIP"}}));
        assert_eq!(
            record_balancing(&mut status, &ok, false, "t0", Some(1)),
            None
        );
        assert!(status.conditions.is_empty());
        let conflict = svc(serde_json::json!({
            "metadata": {"annotations": {BALANCE_ANNOTATION: "least-conn",
                TIMEOUT_ANNOTATIONS[1]: "never"}},
            "spec": {"sessionAffinity": "ClientIP"}}));
        let (reason, message) =
            record_balancing(&mut status, &conflict, false, "t1", Some(2)).unwrap();
        assert_eq!(reason, "SessionAffinityWins");
        assert!(message.contains("hash (of the client address) is used; annotation lb.paperlb.com/proxy-connect-timeout-seconds \"never\""), "{message}");
        let c = condition(&status.conditions, BALANCING).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", reason));
        assert_eq!(c.message, message);
        // The same fault again: no second Event.
        assert_eq!(
            record_balancing(&mut status, &conflict, false, "t2", Some(2)),
            None
        );
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(
            record_balancing(&mut status, &ok, false, "t3", Some(3)),
            None
        );
        assert!(status.conditions.is_empty());
        // The Go updater has no balance: ClientIP's hash is not served, and the condition says so;
        // round robin against it is no fault.
        let (reason, message) = record_balancing(&mut status, &ok, true, "t4", Some(4)).unwrap();
        assert_eq!(reason, "UpdaterWithoutBalance");
        assert!(
            message.starts_with("balance hash is not served"),
            "{message}"
        );
        let plain = svc(serde_json::json!({"spec": {}}));
        assert_eq!(
            record_balancing(&mut status, &plain, true, "t5", Some(5)),
            None
        );
        assert!(status.conditions.is_empty());
    }

    /// A one-port spec whose targets are `hosts`.
    fn targets_spec(hosts: &[&str]) -> LbSpec {
        LbSpec {
            config_name: "edge".into(),
            ports: vec![crate::model::LbPort {
                name: "http".into(),
                port: 8100,
                protocol: Protocol::Tcp,
                node_port: Some(31000),
                targets: (hosts.iter())
                    .map(|h| crate::model::Target {
                        host: h.to_string(),
                        port: 31000,
                    })
                    .collect(),
            }],
            traffic: LbTraffic::default(),
            proxy_timeout_seconds: 0,
            proxy_connect_timeout_seconds: 0,
            hosts: vec![crate::model::LbHost::unnamed(
                "127.0.0.1",
                "http://127.0.0.1:8080",
            )],
        }
    }

    /// (case, Service ipFamilies, target hosts, the missing family named, or None = no condition)
    #[test]
    fn dual_stack_missing_a_family_is_served_and_named_once_per_transition() {
        type Case = (
            &'static str,
            &'static [&'static str],
            &'static [&'static str],
            Option<&'static str>,
        );
        let cases: [Case; 8] = [
            (
                "both served",
                &["IPv4", "IPv6"],
                &["10.0.0.1", "fd00::1"],
                None,
            ),
            (
                "IPv6 missing",
                &["IPv4", "IPv6"],
                &["10.0.0.1", "10.0.0.2"],
                Some("IPv6"),
            ),
            (
                "IPv4 missing, IPv6 primary",
                &["IPv6", "IPv4"],
                &["fd00::1"],
                Some("IPv4"),
            ),
            (
                "a DNS name is the primary family",
                &["IPv4", "IPv6"],
                &["n1.example"],
                Some("IPv6"),
            ),
            (
                "no targets: Ready=False says so",
                &["IPv4", "IPv6"],
                &[],
                None,
            ),
            ("single stack", &["IPv4"], &["10.0.0.1"], None),
            ("no ipFamilies", &[], &["10.0.0.1"], None),
            ("single stack, other family", &["IPv6"], &["10.0.0.1"], None),
        ];
        for (name, families, hosts, missing) in cases {
            let s = svc(serde_json::json!({"spec": {"ipFamilies": families}}));
            let mut status = LoadBalancerStatus::default();
            let event = record_families(&mut status, &targets_spec(hosts), &s, "t0", Some(1));
            let c = condition(&status.conditions, DUAL_STACK);
            assert_eq!(event.is_some(), missing.is_some(), "{name}: {event:?}");
            assert_eq!(c.is_some(), missing.is_some(), "{name}");
            let (Some(missing), Some(c), Some((reason, message))) = (missing, c, event) else {
                continue;
            };
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("False", reason),
                "{name}"
            );
            assert_eq!(reason, "NoAddressInFamily", "{name}");
            assert_eq!(c.message, message, "{name}");
            let want = format!("no eligible node has an {missing} address");
            assert!(message.contains(&want), "{name}: {message}");
            // Once per transition: the same fault again is no Event; served on both clears it.
            let again = record_families(&mut status, &targets_spec(hosts), &s, "t1", Some(1));
            assert_eq!(again, None, "{name}");
            let both = targets_spec(&["10.0.0.9", "fd00::9"]);
            assert_eq!(
                record_families(&mut status, &both, &s, "t2", Some(1)),
                None,
                "{name}"
            );
            assert!(
                condition(&status.conditions, DUAL_STACK).is_none(),
                "{name}"
            );
        }
        let s = svc(serde_json::json!({"spec": {"ipFamilies": ["IPv4", "IPv6"]}}));
        let mut status = LoadBalancerStatus::default();
        assert_eq!(
            record_families(&mut status, &targets_spec(&["10.0.0.1"]), &s, "t0", None)
                .unwrap()
                .1,
            "the Service's ipFamilies are IPv4, IPv6, but no eligible node has an IPv6 address of \
             the configured types: it is served on IPv4 only; give the nodes IPv6 addresses, or \
             make the Service single-stack"
        );
    }

    #[test]
    fn source_ranges_come_from_the_field_else_the_annotation() {
        let both = svc(serde_json::json!({
            "metadata": {"annotations": {SOURCE_RANGES_ANNOTATION: "10.0.0.0/8"}},
            "spec": {"loadBalancerSourceRanges": ["127.0.0.2/32", "10.1.2.3/16", "127.0.0.2/32"]}}));
        assert_eq!(
            traffic_for(&both).unwrap().source_ranges,
            ["127.0.0.2/32", "10.1.0.0/16"]
        );
        let ann = svc(serde_json::json!({
            "metadata": {"annotations": {SOURCE_RANGES_ANNOTATION: " 127.0.0.2/32 , ::1/128,"}}}));
        assert_eq!(
            traffic_for(&ann).unwrap().source_ranges,
            ["127.0.0.2/32", "::1/128"]
        );
        let bad = svc(
            serde_json::json!({"spec": {"loadBalancerSourceRanges": ["127.0.0.2/32", "300.0.0.0/8"]}}),
        );
        let (reason, msg) = traffic_for(&bad).unwrap_err();
        assert_eq!(reason, "InvalidSourceRange");
        assert!(msg.contains("spec.loadBalancerSourceRanges[1]"), "{msg}");
        let bad_ann = svc(serde_json::json!({
            "metadata": {"annotations": {SOURCE_RANGES_ANNOTATION: "10.0.0.0"}}}));
        assert!(
            traffic_for(&bad_ann)
                .unwrap_err()
                .1
                .contains(SOURCE_RANGES_ANNOTATION)
        );
    }

    #[test]
    fn proxy_protocol_annotation_and_udp_ports() {
        let on = svc(serde_json::json!({
            "metadata": {"annotations": {PROXY_PROTOCOL_ANNOTATION: "true"}}}));
        let t = traffic_for(&on).unwrap();
        assert!(t.proxy_protocol);
        let mut spec = targets_spec(&[]);
        for name in ["dns", ""] {
            spec.ports.push(crate::model::LbPort {
                name: name.into(),
                protocol: Protocol::Udp,
                ..spec.ports[0].clone()
            });
        }
        spec.traffic = t;
        let (_, message) = proxy_protocol_fault(&spec).expect("UDP ports named");
        assert!(message.contains("port(s) dns, #2 are served"), "{message}");
        spec.traffic = traffic_for(&svc(serde_json::json!({}))).unwrap();
        assert_eq!(proxy_protocol_fault(&spec), None);
        let bad = svc(serde_json::json!({
            "metadata": {"annotations": {PROXY_PROTOCOL_ANNOTATION: "yes"}}}));
        assert_eq!(traffic_for(&bad).unwrap_err().0, "InvalidAnnotation");
    }

    #[test]
    fn a_config_override_replaces_the_derived_check_field_by_field() {
        use crate::model::CheckTimings;
        let local = svc(serde_json::json!({"spec": {
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 31555}}));
        let derived = traffic_for(&local).unwrap();
        assert_eq!(
            with_override(derived.clone(), &HealthOverride::Derived),
            derived
        );
        assert_eq!(
            with_override(derived.clone(), &HealthOverride::Off).health_check,
            None
        );
        let timings = CheckTimings {
            interval_seconds: Some(5),
            timeout_seconds: Some(2),
            unhealthy_threshold: Some(3),
            healthy_threshold: Some(1),
        };
        let only_timings = HealthOverride::Check {
            kind: None,
            port: None,
            path: None,
            timings,
        };
        let got = with_override(derived.clone(), &only_timings)
            .health_check
            .unwrap();
        assert_eq!(
            got,
            LbHealthCheck {
                kind: "http".into(),
                port: Some(31555),
                path: "/healthz".into(),
                timings
            }
        );
        let tcp = HealthOverride::Check {
            kind: Some("tcp".into()),
            port: None,
            path: None,
            timings: CheckTimings::default(),
        };
        let got = with_override(derived.clone(), &tcp).health_check.unwrap();
        assert_eq!((got.kind.as_str(), got.port), ("tcp", None), "own port");
        let full = HealthOverride::Check {
            kind: Some("http".into()),
            port: Some(8081),
            path: Some("/ready".into()),
            timings,
        };
        let got = with_override(derived, &full).health_check.unwrap();
        assert_eq!(
            (got.port, got.path.as_str(), got.timings),
            (Some(8081), "/ready", timings)
        );
        // The source ranges and PROXY protocol are untouched.
        let on = svc(serde_json::json!({
            "metadata": {"annotations": {PROXY_PROTOCOL_ANNOTATION: "true"}}}));
        assert!(with_override(traffic_for(&on).unwrap(), &HealthOverride::Off).proxy_protocol);
    }
    /// Checks on/off, the Go updater and the flag, per port protocol: whether targets follow
    /// readiness, and the condition that says so.
    #[test]
    fn node_set_rule_table_and_its_condition() {
        let derived = traffic_for(&svc(serde_json::json!({}))).unwrap();
        let off = with_override(derived.clone(), &HealthOverride::Off);
        let tcp_own = with_override(
            derived.clone(),
            &HealthOverride::Check {
                kind: Some("tcp".into()),
                port: None,
                path: None,
                timings: Default::default(),
            },
        );
        let go: LoadBalancer =
            serde_json::from_value(serde_json::json!({"status": {"conditions": [
            {"type": DRIFT_CHECK, "status": "False", "reason": "Unsupported"}]}}))
            .unwrap();
        let ours: LoadBalancer =
            serde_json::from_value(serde_json::json!({"status": {"conditions": [
            {"type": DRIFT_CHECK, "status": "True", "reason": "Checked"}]}}))
            .unwrap();
        let (tcp, udp) = (Protocol::Tcp, Protocol::Udp);
        type Case<'a> = (
            &'a str,
            &'a LbTraffic,
            Protocol,
            Option<&'a LoadBalancer>,
            bool,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            ("checks on (default)", &derived, tcp, None, true, None),
            (
                "checks on, UDP port: http check of kube-proxy",
                &derived,
                udp,
                None,
                true,
                None,
            ),
            (
                "checks on, our updater",
                &derived,
                tcp,
                Some(&ours),
                true,
                None,
            ),
            (
                "checks off (type: none)",
                &off,
                tcp,
                None,
                true,
                Some("NoHealthCheck"),
            ),
            (
                "tcp check of a TCP port's own port",
                &tcp_own,
                tcp,
                None,
                true,
                None,
            ),
            (
                "tcp check of a UDP port's own port",
                &tcp_own,
                udp,
                None,
                true,
                Some("NoHealthCheck"),
            ),
            (
                "Go updater",
                &derived,
                tcp,
                Some(&go),
                true,
                Some("UpdaterWithoutChecks"),
            ),
            (
                "flag off",
                &derived,
                tcp,
                Some(&ours),
                false,
                Some("Disabled"),
            ),
            (
                "flag off, checks off",
                &off,
                tcp,
                None,
                false,
                Some("Disabled"),
            ),
        ];
        let spec = |traffic: &LbTraffic, protocols: &[Protocol]| LbSpec {
            config_name: "edge".into(),
            ports: protocols
                .iter()
                .enumerate()
                .map(|(i, p)| crate::model::LbPort {
                    name: format!("p{i}"),
                    port: 8100 + i as u16,
                    protocol: *p,
                    node_port: Some(31000),
                    targets: vec![],
                })
                .collect(),
            traffic: traffic.clone(),
            proxy_timeout_seconds: 0,
            proxy_connect_timeout_seconds: 0,
            hosts: vec![crate::model::LbHost::unnamed(
                "127.0.0.1",
                "http://127.0.0.1:8080",
            )],
        };
        const URL: &str = "http://127.0.0.1:8080";
        let plain = Context::new("ns", "t");
        for (name, traffic, protocol, lb, flag, want) in &cases {
            let no_checks = updater_without_checks([URL].into_iter(), *lb, &plain);
            let stable = keeps_stable_set(traffic, *protocol, no_checks, *flag);
            let ctx = Context {
                stable_node_set: *flag,
                ..plain.clone()
            };
            let fault = node_set_fault(&spec(traffic, &[*protocol]), no_checks, &ctx);
            assert_eq!(fault.map(|f| f.0), *want, "{name}");
            assert_eq!(stable, want.is_none(), "{name}");
        }
        // The worker found the Go updater (no GET) before the LoadBalancer recorded it.
        let mut knows = Context::new("ns", "t");
        knows.without_checks.insert(updater_endpoint(URL).unwrap());
        assert!(updater_without_checks([URL].into_iter(), None, &knows));
        assert!(updater_without_checks(
            ["http://127.0.0.1:8080/api/v1/lb"].into_iter(),
            Some(&ours),
            &knows
        ));
        assert!(!updater_without_checks(
            ["http://127.0.0.2:8080"].into_iter(),
            None,
            &knows
        ));
        let reason = |traffic: &LbTraffic, protocols: &[Protocol], lb: &LoadBalancer, flag| {
            let mut status = lb.status.clone();
            let mut ctx = Context::new("ns", "t");
            ctx.stable_node_set = flag;
            record_node_set(&mut status, &spec(traffic, protocols), lb, &ctx, Some(1));
            let c = condition(&status.conditions, STABLE_NODE_SET).cloned();
            assert_eq!(
                follows_readiness_recorded(&LoadBalancer {
                    status,
                    ..lb.clone()
                }),
                c.is_some()
            );
            c.map(|c| {
                assert_eq!(c.status, "False");
                assert!(c.message.contains("KEP-3458"), "{}", c.message);
                (c.reason, c.message)
            })
        };
        assert_eq!(reason(&derived, &[tcp, udp], &ours, true), None);
        let (r, m) = reason(&off, &[tcp], &ours, true).unwrap();
        assert_eq!(r, "NoHealthCheck");
        assert!(
            m.contains("LoadBalancerConfig edge has spec.healthCheck.type: none"),
            "{m}"
        );
        let (r, m) = reason(&tcp_own, &[tcp, udp], &ours, true).unwrap();
        assert_eq!(r, "NoHealthCheck");
        assert!(m.contains("UDP port(s) p1 have no health check"), "{m}");
        let (r, m) = reason(&derived, &[tcp], &go, true).unwrap();
        assert_eq!(r, "UpdaterWithoutChecks");
        assert!(m.contains("http://127.0.0.1:8080"), "{m}");
        assert_eq!(reason(&off, &[tcp], &go, false).unwrap().0, "Disabled");
        // Back to a stable set: the condition goes.
        let mut status = ours.status.clone();
        record_node_set(&mut status, &spec(&off, &[tcp]), &ours, &plain, Some(1));
        record_node_set(&mut status, &spec(&derived, &[tcp]), &ours, &plain, Some(1));
        assert_eq!(status, ours.status);
    }
}
