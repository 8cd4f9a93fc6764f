//! Requested LB ports (issue 14, `lb.paperlb.com/lb-ports`) end to end: the fake API server, our
//! updater in-process and a real nginx with real traffic. A requested port is granted and served;
//! a second Service asking for it gets `PortRequest=False` naming the holder (one Warning Event),
//! the holder keeps serving it, and the waiter is granted it once the holder is deleted; changing
//! the annotation moves that one backend (no DELETE, one changed backend on the host).

use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::{LbHost, serves};
use crate::support::backends::Backend;

const ANNOTATION: &str = "lb.paperlb.com/lb-ports";

fn service(w: &World, name: &str, ports: &[(&str, u16)], request: Option<&str>) {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP", "targetPort": p}))
        .collect();
    let mut obj = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports}});
    if let Some(r) = request {
        obj["metadata"]["annotations"] = json!({ANNOTATION: r});
    }
    w.api.apply("services", obj).expect("apply service");
}

/// Backends on both nodes at the nodePort of Service port `index` (they stop on drop).
fn backends(w: &World, name: &str, index: usize) -> (Backend, Backend) {
    wait_for("nodePort", || w.node_port(name, index) > 0);
    let np = u16::try_from(w.node_port(name, index)).expect("nodePort");
    (
        Backend::tcp_on("127.0.0.2", np, "node-a"),
        Backend::tcp_on("127.0.0.3", np, "node-b"),
    )
}

/// (name, port) of each port in the LoadBalancer's spec.
fn spec_ports(w: &World, name: &str) -> Vec<(String, u64)> {
    w.lb(name)
        .and_then(|lb| lb["spec"]["ports"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["port"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn port_request(w: &World, name: &str) -> Option<Value> {
    w.lb(name)?["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "PortRequest")
        .cloned()
}

fn warnings(w: &World, reason: &str) -> usize {
    w.api
        .list("events", "default")
        .iter()
        .filter(|e| e["reason"] == reason && e["involvedObject"]["name"] == "web")
        .map(|e| e["count"].as_u64().unwrap_or(1) as usize)
        .sum()
}

#[test]
fn requested_port_granted_conflict_named_then_granted_and_moved_with_one_change() {
    let host = LbHost::start();
    let w = World::new("port-requests");
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": host.url(), "host": LB_HOST,
            "portRange": {"low": 8670, "high": 8679}}});
    w.api
        .apply("loadbalancerconfigs", cfg)
        .expect("apply config");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "0"]);

    // Granted: the holder serves the port it asked for.
    service(&w, "front", &[("http", 80)], Some("http=8675"));
    let _front = backends(&w, "front", 0);
    wait_for("front READY", || w.ready("front"));
    assert_eq!(spec_ports(&w, "front"), [("http".to_string(), 8675)]);
    wait_for("8675 served", || serves(8675));
    assert_eq!(
        port_request(&w, "front").expect("condition")["status"],
        "True"
    );

    // A second Service asks for it: refused, naming the holder; its other port is served.
    service(&w, "web", &[("admin", 81), ("http", 80)], Some("http=8675"));
    let _admin = backends(&w, "web", 0);
    let _web = backends(&w, "web", 1);
    wait_for("PortRequest=False naming the holder", || {
        port_request(&w, "web").is_some_and(|c| {
            c["status"] == "False"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("default/front"))
        })
    });
    wait_for("web READY", || w.ready("web"));
    assert_eq!(spec_ports(&w, "web"), [("admin".to_string(), 8670)]);
    assert_eq!(
        spec_ports(&w, "front"),
        [("http".to_string(), 8675)],
        "the holder keeps it"
    );
    assert!(serves(8675), "the holder still serves it");
    wait_for("the Warning Event", || warnings(&w, "PortUnavailable") > 0);
    // Reconciled again (a node flips out and back, so its targets change twice): the same
    // fault, no second Event.
    let targets = |n: u64| {
        w.lb("web")
            .is_some_and(|lb| lb["status"]["targetCount"] == n && w.ready("web"))
    };
    w.exclude("node-b", true);
    wait_for("web re-applied with one target", || targets(1));
    w.exclude("node-b", false);
    wait_for("web re-applied with two targets", || targets(2));
    assert_eq!(
        warnings(&w, "PortUnavailable"),
        1,
        "one Event per new fault"
    );

    // The holder goes: the waiter is granted the port, and serves it.
    w.api
        .delete("services", "default", "front")
        .expect("delete front");
    wait_for("web granted 8675", || {
        spec_ports(&w, "web") == [("admin".to_string(), 8670), ("http".to_string(), 8675)]
            && w.ready("web")
    });
    wait_for("PortRequest=True", || {
        port_request(&w, "web").is_some_and(|c| c["status"] == "True")
    });
    drop(_front);
    wait_for("8675 served by web", || serves(8675));

    // A changed request moves that one port: its backend is POSTed with the new port (same
    // name), nothing is deleted, and only that backend changes on the host.
    let (posts, deletes) = (host.requests("POST"), host.requests("DELETE"));
    let (applied, unchanged) = (host.applies("applied"), host.applies("unchanged"));
    service(&w, "web", &[("admin", 81), ("http", 80)], Some("http=8677"));
    wait_for("web moved to 8677", || {
        spec_ports(&w, "web") == [("admin".to_string(), 8670), ("http".to_string(), 8677)]
            && w.ready("web")
    });
    wait_for("8677 served", || serves(8677));
    // (An old nginx worker may hold the old listener until its sessions end.)
    wait_for("8675 no longer served", || !serves(8675));
    assert_eq!(host.requests("DELETE") - deletes, 0, "no DELETE");
    assert_eq!(host.requests("POST") - posts, 2, "one POST per port");
    assert_eq!(host.applies("applied") - applied, 1, "one backend changed");
    assert_eq!(
        host.applies("unchanged") - unchanged,
        1,
        "the other untouched"
    );
    assert!(serves(8670), "admin kept its port");
}
