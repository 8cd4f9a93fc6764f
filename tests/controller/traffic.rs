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
    // A ready endpoint on node-a (with none, nothing is pushed: issue 22's NoTargets).
    w.api
        .apply(
            "endpointslices",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "web-abc", "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "web"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.42.0.5"], "nodeName": "node-a",
                    "conditions": {"ready": true}}]}),
        )
        .expect("apply slice");
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
    wait_for("ProxyProtocol=False on the LoadBalancer", || {
        w.lb("web").is_some_and(|lb| {
            lb["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "ProxyProtocol"
                        && c["status"] == "False"
                        && c["message"].as_str().is_some_and(|m| m.contains("dns"))
                })
            })
        })
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

    // An invalid CIDR on a served Service: Reconciled=False on its LoadBalancer, and what the
    // updater serves stays as it was.
    let posts = posts_for(&w, "default_web").len();
    let mut web = w.svc("web").expect("web");
    web["spec"]["loadBalancerSourceRanges"] = json!(["127.0.0.2/40"]);
    w.api.update("services", web).expect("update web");
    wait_for("Reconciled=False naming the field", || {
        w.lb("web").is_some_and(|lb| {
            lb["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Reconciled"
                        && c["status"] == "False"
                        && c["reason"] == "InvalidSourceRange"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("spec.loadBalancerSourceRanges[0]"))
                })
            })
        })
    });
    assert_eq!(posts_for(&w, "default_web").len(), posts, "nothing pushed");
}

/// The harness's default config `edge` with `spec.healthCheck` set (or removed with `None`).
fn edge_with_check(w: &World, check: Option<Value>) {
    let mut cfg = w
        .api
        .get("loadbalancerconfigs", "paperlb-system", "edge")
        .expect("edge");
    match check {
        Some(c) => cfg["spec"]["healthCheck"] = c,
        None => {
            if let Some(spec) = cfg["spec"].as_object_mut() {
                spec.remove("healthCheck");
            }
        }
    }
    w.api
        .update("loadbalancerconfigs", cfg)
        .expect("update edge");
}

fn accepted(w: &World) -> Option<Value> {
    let cfg = w
        .api
        .get("loadbalancerconfigs", "paperlb-system", "edge")
        .ok()?;
    cfg["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Accepted")
        .cloned()
}

fn last_check(w: &World, backend: &str) -> Option<Value> {
    w.updater.backend(backend).map(|b| b["healthCheck"].clone())
}

#[test]
fn config_health_check_override_is_honoured_and_none_sends_no_check() {
    let w = World::new("hc-override");
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("web pushed", || w.updater.backend("default_web").is_some());
    assert_eq!(
        last_check(&w, "default_web"),
        Some(json!({"type": "http", "port": 10256, "path": "/healthz"}))
    );

    // Timings and a path: the rest stays as derived.
    edge_with_check(
        &w,
        Some(
            json!({"path": "/livez", "intervalSeconds": 5, "timeoutSeconds": 2,
            "unhealthyThreshold": 3, "healthyThreshold": 4}),
        ),
    );
    let want = json!({"type": "http", "port": 10256, "path": "/livez", "intervalSeconds": 5,
        "timeoutSeconds": 2, "unhealthyThreshold": 3, "healthyThreshold": 4});
    wait_for("override pushed", || {
        last_check(&w, "default_web") == Some(want.clone())
    });
    let lb = w.lb("web").expect("lb");
    assert_eq!(lb["spec"]["healthCheck"]["intervalSeconds"], json!(5));

    // A tcp check on its own port.
    edge_with_check(&w, Some(json!({"type": "tcp", "port": 9000})));
    wait_for("tcp override pushed", || {
        last_check(&w, "default_web") == Some(json!({"type": "tcp", "port": 9000}))
    });

    // type: none - the request carries no healthCheck at all.
    edge_with_check(&w, Some(json!({"type": "none"})));
    wait_for("no check", || {
        w.updater
            .backend("default_web")
            .is_some_and(|b| b.get("healthCheck").is_none())
    });
    let lb = w.lb("web").expect("lb");
    assert!(
        lb["spec"]["healthCheck"].is_null(),
        "{}",
        lb["spec"]["healthCheck"]
    );

    // A bad field: the config is not accepted, the condition names the field, and what the
    // updater serves stays as it was.
    let posts = w.updater.posts().len();
    edge_with_check(&w, Some(json!({"type": "http", "intervalSeconds": 0})));
    wait_for("Accepted=False naming the field", || {
        accepted(&w).is_some_and(|c| {
            c["status"] == "False"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("spec.healthCheck.intervalSeconds"))
        })
    });
    edge_with_check(&w, Some(json!({"path": "/a b"})));
    wait_for("Accepted=False naming the path", || {
        accepted(&w).is_some_and(|c| {
            c["message"]
                .as_str()
                .is_some_and(|m| m.contains("spec.healthCheck.path"))
        })
    });
    assert_eq!(
        w.updater.posts().len(),
        posts,
        "nothing pushed for a bad config"
    );

    // Removed again: back to the derived check, and accepted.
    edge_with_check(&w, None);
    wait_for("derived check again", || {
        last_check(&w, "default_web")
            == Some(json!({"type": "http", "port": 10256, "path": "/healthz"}))
    });
    assert_eq!(accepted(&w).expect("accepted")["status"], "True");
}
