//! Per-port health in the LoadBalancer's status (issue 14) end to end: the fake API server, our
//! updater in-process running real checks (the config's `spec.healthCheck` points them at small
//! health endpoints on the node addresses) and a real nginx. The figures follow the drift check's
//! GET, and a steady state writes nothing.

use serde_json::json;

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::LbHost;

fn service(w: &World, name: &str, ports: &[(&str, u16)]) {
    let ports: Vec<serde_json::Value> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP", "targetPort": p}))
        .collect();
    let obj = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports}});
    w.api.apply("services", obj).expect("apply service");
}

/// A health endpoint answering 200 on `addr` (stops on drop).
fn healthz(addr: &str) -> paperlb::http::Server {
    paperlb::http::Server::bind(
        addr,
        paperlb::http::Limits::default(),
        |_req: &paperlb::http::Request| paperlb::http::Response::text(200, "ok\n"),
    )
    .expect("bind healthz")
}

#[test]
fn per_port_health_reaches_the_status_and_a_steady_state_writes_nothing() {
    let host = LbHost::start();
    let w = World::new("port-health");
    // node-a answers its check, node-b does not (yet).
    let a = healthz("127.0.0.2:0");
    let port = a.local_addr().port();
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": host.url(), "host": LB_HOST,
            "portRange": {"low": 8680, "high": 8689},
            "healthCheck": {"port": port, "intervalSeconds": 1, "unhealthyThreshold": 1,
                "healthyThreshold": 1}}});
    w.api
        .apply("loadbalancerconfigs", cfg)
        .expect("apply config");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "1s"]);
    service(&w, "web", &[("http", 80), ("admin", 81)]);
    wait_for("web READY", || w.ready("web"));
    let healthy = |w: &World| w.lb("web").map(|lb| lb["status"]["healthy"].clone());
    wait_for("1 of 2 per port", || healthy(&w) == Some(json!("2/4")));
    let lb = w.lb("web").expect("lb");
    let ports = lb["status"]["ports"].as_array().expect("status.ports");
    assert_eq!(ports.len(), 2);
    for p in ports {
        assert_eq!(
            (p["ready"].clone(), p["total"].clone()),
            (json!(1), json!(2)),
            "{p}"
        );
        assert_eq!(
            p["unhealthy"][0].as_str().unwrap_or("").split(':').next(),
            Some("127.0.0.3")
        );
    }

    // node-b's check passes: the figure follows at a later drift check.
    let _b = healthz(&format!("127.0.0.3:{port}"));
    wait_for("2 of 2 per port", || healthy(&w) == Some(json!("4/4")));

    // Steady: three more drift checks write nothing.
    let writes = w.api_writes().len();
    let gets = host.requests("GET");
    wait_for("three more drift checks", || {
        host.requests("GET") >= gets + 3
    });
    assert_eq!(
        w.api_writes().len(),
        writes,
        "{:?}",
        &w.api_writes()[writes..]
    );

    // node-a fails: down to 1 of 2 again.
    drop(a);
    wait_for("node-a unhealthy", || healthy(&w) == Some(json!("2/4")));
}
