//! Issue 22, item 1: no targets is a normal state. A Local-policy Service scaled to 0 ready
//! endpoints keeps its LB port (in the Service's ingress too), its backend leaves the real LB host
//! (clients are refused at once), `Ready=False NoTargets` says why with one Event, the updater is
//! never sent an empty list; scaled back, real traffic through nginx resumes by itself.

use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::{LbHost, lb_port};
use crate::support::backends::{Backend, tcp_ident};

fn slice(w: &World, ready: bool) {
    let obj = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.0.5"], "nodeName": "node-a",
            "conditions": {"ready": ready}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
    });
    w.api.apply("endpointslices", obj).expect("apply slice");
}

fn ready_condition(w: &World) -> Option<Value> {
    let lb = w.lb("web")?;
    lb["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

fn events(w: &World, reason: &str) -> usize {
    w.api
        .list("events", "default")
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["count"].as_u64().unwrap_or(1) as usize)
        .sum()
}

#[test]
fn local_service_scaled_to_zero_keeps_its_port_and_traffic_resumes_by_itself() {
    let host = LbHost::start();
    let w = World::new("no-targets");
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": host.url(), "host": LB_HOST,
            "portRange": {"low": 8740, "high": 8749}}});
    w.api.apply("loadbalancerconfigs", cfg).expect("config");
    w.api
        .apply(
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                    "externalTrafficPolicy": "Local", "healthCheckNodePort": 32100,
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}}),
        )
        .expect("service");
    let np = u16::try_from(w.node_port("web", 0)).expect("nodePort");
    let _a = Backend::tcp_on("127.0.0.2", np, "node-a");
    let _b = Backend::tcp_on("127.0.0.3", np, "node-b");
    slice(&w, true);
    // The health check probes kube-proxy's healthCheckNodePort, which nothing serves here: off.
    let mut c = w
        .api
        .get("loadbalancerconfigs", "paperlb-system", "edge")
        .expect("edge");
    c["spec"]["healthCheck"] = json!({"type": "none"});
    w.api.update("loadbalancerconfigs", c).expect("edge");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "1s"]);
    wait_for("traffic to node-a", || {
        w.lb("web").is_some() && tcp_ident(lb_port(&w, "web")).as_deref() == Some("node-a")
    });
    let port = lb_port(&w, "web");
    // The Service's status is written after the updater answered: traffic can flow before it.
    wait_for("the Service's ingress", || {
        w.svc("web")
            .is_some_and(|s| !s["status"]["loadBalancer"]["ingress"].is_null())
    });
    let ingress = w.svc("web").expect("svc")["status"]["loadBalancer"]["ingress"].clone();
    assert_eq!(ingress[0]["ports"][0]["port"], json!(port));

    // Scaled to 0.
    slice(&w, false);
    wait_for("Ready=False NoTargets", || {
        ready_condition(&w).is_some_and(|c| c["status"] == "False" && c["reason"] == "NoTargets")
    });
    let c = ready_condition(&w).expect("Ready");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("no node has a ready endpoint")),
        "{c}"
    );
    wait_for("the backend removed from the LB host", || {
        host.names(None).is_empty()
    });
    wait_for("a fast refusal once nginx reloaded", || {
        tcp_ident(port).is_none()
    });
    assert_eq!(lb_port(&w, "web"), port, "the port stays allocated");
    assert_eq!(
        w.svc("web").expect("svc")["status"]["loadBalancer"]["ingress"],
        ingress,
        "and in the Service's status"
    );
    // A few drift checks later: still one Event, no error, never an empty list sent.
    let lists = host.requests("GET");
    wait_for("two more drift checks", || {
        host.requests("GET") >= lists + 2
    });
    assert_eq!(events(&w, "NoTargets"), 1);
    assert_eq!(events(&w, "UpdaterFailed"), 0);
    assert_eq!(host.requests_with_code(400), 0, "no empty upstream list");
    assert_eq!(w.lb("web").expect("lb")["status"]["phase"], "READY");

    // Back: traffic resumes by itself.
    slice(&w, true);
    wait_for("traffic to node-a again", || {
        tcp_ident(port).as_deref() == Some("node-a")
    });
    wait_for("Ready=True", || {
        ready_condition(&w).is_some_and(|c| c["status"] == "True")
    });
    // The Event follows the status patch in the same plan: wait for it, then count.
    wait_for("the TargetsAvailable Event", || {
        events(&w, "TargetsAvailable") >= 1
    });
    assert_eq!(events(&w, "TargetsAvailable"), 1);
    assert_eq!(events(&w, "NoTargets"), 1);
}
