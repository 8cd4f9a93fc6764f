//! End-to-end regressions for controller bugs `make chaos` found: each test replays the smallest
//! sequence that broke an invariant, against the fake API server and a recording updater.

use std::collections::BTreeMap;

use crate::harness::{Controller, World, wait_for};
use crate::support::fake_api::{Fault, FaultKind};

/// Every updater POST's lbPort must belong to one backend only, over the whole run.
fn assert_no_port_pushed_for_two_backends(w: &World) {
    let mut owner: BTreeMap<(u64, String), String> = BTreeMap::new();
    for p in w.updater.posts() {
        let port = p["lbPort"].as_u64().unwrap_or(0);
        let proto = p["lbProtocol"].as_str().unwrap_or("").to_string();
        let name = p["backendName"].as_str().unwrap_or("").to_string();
        if let Some(prev) = owner.insert((port, proto.clone()), name.clone()) {
            assert_eq!(
                prev,
                name,
                "port {port}/{proto} was pushed for two backends: {:#?}",
                w.updater.posts()
            );
        }
    }
}

/// chaos seed 2: a LoadBalancer POST was committed but its answer lost (connection cut), and the
/// next Service was given the same port before the watch delivered the new LoadBalancer.
#[test]
fn lost_create_answer_neither_shares_nor_moves_a_port() {
    let w = World::new("lost-answer");
    // The LoadBalancer watch says nothing for a while, so only the write answers (and what the
    // controller reads itself) can tell it what exists: the race the chaos run lost, made certain.
    w.api.inject(Fault::new(
        Some("GET"),
        "/apis/lb.paperlb.com/v1alpha1/loadbalancers?watch=1",
        1,
        FaultKind::StallStream(std::time::Duration::from_secs(3)),
    ));
    w.api.inject(Fault::new(
        Some("POST"),
        "/apis/lb.paperlb.com/v1alpha1/namespaces/default/loadbalancers",
        1,
        FaultKind::ApplyThenDrop,
    ));
    for name in ["a", "b", "c"] {
        w.service(name, &[("http", 80, "TCP")]);
    }
    let _c = Controller::start(&w.kubeconfig);
    wait_for("a, b and c READY", || {
        ["a", "b", "c"].iter().all(|n| w.ready(n))
    });
    let ports: Vec<_> = ["a", "b", "c"].iter().map(|n| w.lb_ports(n)).collect();
    assert!(
        ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2],
        "{ports:?}"
    );
    assert_no_port_pushed_for_two_backends(&w);
    // The port each LoadBalancer was created with (the committed-but-unanswered POST included) is
    // the port it keeps: no Service's port moved to settle a clash.
    for r in w.api.requests() {
        if r.method != "POST" || !r.path.ends_with("/loadbalancers") {
            continue;
        }
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let name = body["metadata"]["name"].as_str().unwrap().to_string();
        let created = body["spec"]["ports"][0]["port"].as_u64().unwrap();
        assert_eq!(
            w.lb_ports(&name)[0].0,
            created,
            "LoadBalancer {name} was created with port {created} and then moved"
        );
    }
}
