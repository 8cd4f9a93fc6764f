//! Issue 14 end to end: a Service's source ranges, PROXY protocol annotation and traffic policy
//! reach the updater's requests; an invalid CIDR gets an Event and nothing is pushed.

use serde_json::{Value, json};

use super::harness::*;

fn posts_for(w: &World, prefix: &str) -> Vec<Value> {
    w.updater
        .posts()
        .into_iter()
        .filter(|p| p["backendName"].as_str().unwrap_or("").starts_with(prefix))
        .collect()
}

fn warning_reasons(w: &World) -> Vec<String> {
    w.api
        .list("events", "default")
        .iter()
        .filter(|e| e["type"] == "Warning")
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn service_fields_and_annotations_become_request_fields() {
    let w = World::new("traffic");
    let _c = Controller::start(&w.kubeconfig);
    w.api
        .apply(
            "services",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default",
                    "annotations": {"lb.paperlb.com/proxy-protocol": "true"}},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                    "externalTrafficPolicy": "Local", "healthCheckNodePort": 32100,
                    "loadBalancerSourceRanges": ["127.0.0.2/32", "10.1.2.3/8"],
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80},
                              {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}]},
            }),
        )
        .expect("apply service");
    wait_for("both ports pushed", || {
        posts_for(&w, "default_web").len() >= 2
    });
    let posts = posts_for(&w, "default_web");
    let tcp = posts
        .iter()
        .find(|p| p["lbProtocol"] == "TCP")
        .expect("tcp");
    let udp = posts
        .iter()
        .find(|p| p["lbProtocol"] == "UDP")
        .expect("udp");
    for p in [tcp, udp] {
        assert_eq!(
            p["sourceRanges"],
            json!(["127.0.0.2/32", "10.0.0.0/8"]),
            "{p}"
        );
        assert_eq!(
            p["healthCheck"],
            json!({"type": "http", "port": 32100, "path": "/healthz"}),
            "{p}"
        );
    }
    assert_eq!(tcp["proxyProtocol"], json!(true), "{tcp}");
    assert!(udp.get("proxyProtocol").is_none(), "{udp}");
    wait_for("ProxyProtocolUnsupported Event", || {
        warning_reasons(&w).contains(&"ProxyProtocolUnsupported".to_string())
    });

    // A Cluster Service asks for kube-proxy's node check; an invalid CIDR pushes nothing.
    w.service("api", &[("http", 81, "TCP")]);
    wait_for("api pushed", || !posts_for(&w, "default_api").is_empty());
    assert_eq!(
        posts_for(&w, "default_api")[0]["healthCheck"],
        json!({"type": "http", "port": 10256, "path": "/healthz"})
    );
    w.api
        .apply(
            "services",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "bad", "namespace": "default",
                    "annotations": {"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/33"}},
                "spec": {"type": "LoadBalancer", "selector": {"app": "bad"},
                    "ports": [{"name": "http", "port": 82, "protocol": "TCP", "targetPort": 82}]},
            }),
        )
        .expect("apply bad service");
    wait_for("InvalidSourceRange Event", || {
        warning_reasons(&w).contains(&"InvalidSourceRange".to_string())
    });
    assert!(posts_for(&w, "default_bad").is_empty());
    assert!(
        w.lb("bad").is_none(),
        "no LoadBalancer (no port) for an invalid Service"
    );
}
