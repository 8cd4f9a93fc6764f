//! What a Service asks of its traffic, read from its fields and annotations: source ranges
//! (`spec.loadBalancerSourceRanges`, else the annotation
//! `service.beta.kubernetes.io/load-balancer-source-ranges`), PROXY protocol (the annotation
//! `lb.paperlb.com/proxy-protocol: "true"`), and the health check the updater should run
//! (`externalTrafficPolicy: Local`: http on the Service's `healthCheckNodePort` `/healthz`, kube-proxy's
//! per-Service check; otherwise http on kube-proxy's node check `:10256/healthz`, KEP-3458).
//!
//! A LoadBalancerConfig's `spec.healthCheck` replaces the derived check field by field, or turns it
//! off (`type: none`): [`with_override`].
//!
//! Pure: no I/O. Must not: decide ports or targets (that is `ports` and `targets`).

use super::status::set_condition;
use crate::model::{
    HealthOverride, LbHealthCheck, LbSpec, LbTraffic, LoadBalancerStatus, Protocol, Service,
};
use crate::updater::validate::cidr;

pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
pub const PROXY_PROTOCOL_ANNOTATION: &str = "lb.paperlb.com/proxy-protocol";
/// Condition on the LoadBalancer: False while PROXY protocol is asked for on UDP ports.
pub const PROXY_PROTOCOL: &str = "ProxyProtocol";
/// kube-proxy's node health check port (`--healthz-bind-address`'s default).
pub const KUBE_PROXY_HEALTHZ_PORT: u16 = 10256;

/// The Service's traffic settings, or why they cannot be honoured (`(reason, message)`): an
/// invalid CIDR is refused rather than ignored, since an open port is worse than a pending one.
pub fn traffic_for(svc: &Service) -> Result<LbTraffic, (&'static str, String)> {
    let from_field = !svc.spec.load_balancer_source_ranges.is_empty();
    let raw: Vec<String> = if from_field {
        svc.spec.load_balancer_source_ranges.clone()
    } else {
        svc.metadata
            .annotations
            .get(SOURCE_RANGES_ANNOTATION)
            .map(|a| {
                a.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut source_ranges = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let c = cidr(c).map_err(|e| {
            let at = if from_field {
                format!("spec.loadBalancerSourceRanges[{i}]")
            } else {
                format!("annotation {SOURCE_RANGES_ANNOTATION}")
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
            return Err((
                "InvalidAnnotation",
                format!(
                    "annotation {PROXY_PROTOCOL_ANNOTATION} {v:?}: must be \"true\" or \"false\""
                ),
            ));
        }
    };
    let local_port = (svc.spec.external_traffic_policy.as_deref() == Some("Local"))
        .then(|| {
            svc.spec
                .health_check_node_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
        })
        .flatten();
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
    })
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
            let same_kind = derived.as_ref().is_some_and(|d| d.kind == kind);
            let derived_port = derived
                .as_ref()
                .filter(|_| same_kind || kind == "http")
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

/// Sets `ProxyProtocol=False` on `status` while the Service asks for PROXY protocol on UDP ports
/// (they are pushed without it), and removes it otherwise. Returns the Warning Event's message
/// when that fault is new.
pub fn record_proxy_protocol(
    status: &mut LoadBalancerStatus,
    spec: &LbSpec,
    now: &str,
    generation: Option<i64>,
) -> Option<String> {
    let ports: Vec<(String, Protocol)> = spec
        .ports
        .iter()
        .map(|p| (p.name.clone(), p.protocol))
        .collect();
    let udp = udp_ports_without_proxy_protocol(&spec.traffic, &ports);
    if udp.is_empty() {
        status.conditions.retain(|c| c.type_ != PROXY_PROTOCOL);
        return None;
    }
    let message = format!(
        "annotation {PROXY_PROTOCOL_ANNOTATION} asks for PROXY protocol, which UDP cannot carry: \
         port(s) {} are served without it",
        udp.join(", ")
    );
    let news = !status
        .conditions
        .iter()
        .any(|c| c.type_ == PROXY_PROTOCOL && c.status == "False" && c.message == message);
    set_condition(
        &mut status.conditions,
        PROXY_PROTOCOL,
        false,
        "ProxyProtocolUnsupported",
        &message,
        now,
        generation,
    );
    news.then_some(message)
}

/// Names (or numbers) of the UDP ports a PROXY protocol request cannot apply to.
pub fn udp_ports_without_proxy_protocol(
    traffic: &LbTraffic,
    ports: &[(String, Protocol)],
) -> Vec<String> {
    if !traffic.proxy_protocol {
        return Vec::new();
    }
    ports
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| *p == Protocol::Udp)
        .map(|(i, (n, _))| {
            if n.is_empty() {
                format!("#{i}")
            } else {
                n.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let ports = vec![
            ("web".to_string(), Protocol::Tcp),
            ("dns".to_string(), Protocol::Udp),
            (String::new(), Protocol::Udp),
        ];
        assert_eq!(udp_ports_without_proxy_protocol(&t, &ports), ["dns", "#2"]);
        let off = traffic_for(&svc(serde_json::json!({}))).unwrap();
        assert!(udp_ports_without_proxy_protocol(&off, &ports).is_empty());
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
}
