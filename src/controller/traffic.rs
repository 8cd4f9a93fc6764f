//! What a Service asks of its traffic, read from its fields and annotations: source ranges
//! (`spec.loadBalancerSourceRanges`, else the annotation
//! `service.beta.kubernetes.io/load-balancer-source-ranges`), PROXY protocol (the annotation
//! `lb.paperlb.com/proxy-protocol: "true"`), and the health check the updater should run
//! (`externalTrafficPolicy: Local`: http on the Service's `healthCheckNodePort` `/healthz`, kube-proxy's
//! per-Service check; otherwise http on kube-proxy's node check `:10256/healthz`, KEP-3458).
//!
//! Pure: no I/O. Must not: decide ports or targets (that is `ports` and `targets`).

use crate::model::{LbHealthCheck, LbTraffic, Protocol, Service};
use crate::updater::validate::cidr;

pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
pub const PROXY_PROTOCOL_ANNOTATION: &str = "lb.paperlb.com/proxy-protocol";
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
        port: local_port.unwrap_or(KUBE_PROXY_HEALTHZ_PORT),
        path: "/healthz".into(),
    });
    Ok(LbTraffic {
        source_ranges,
        proxy_protocol,
        health_check,
    })
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
                    port: 10256,
                    path: "/healthz".into()
                }),
            }
        );
        let local = svc(serde_json::json!({"spec": {
            "externalTrafficPolicy": "Local", "healthCheckNodePort": 31555}}));
        let t = traffic_for(&local).unwrap();
        assert_eq!(t.health_check.unwrap().port, 31555);
        let local_without = svc(serde_json::json!({"spec": {"externalTrafficPolicy": "Local"}}));
        assert_eq!(
            traffic_for(&local_without)
                .unwrap()
                .health_check
                .unwrap()
                .port,
            10256
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
}
