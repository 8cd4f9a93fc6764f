//! The stable node set (KEP-3458) end to end: with the updater's health check in force a node that
//! turns NotReady, is cordoned or gets the autoscaler's deletion taint costs no API write and no
//! updater call; against the Go updater (no health checks) it leaves the targets, and the
//! LoadBalancer's status says why.

use serde_json::json;

use crate::harness::{Controller, World, upstream_hosts, wait_for};

/// Every node-set-only change to node-b (NotReady, cordoned, tainted by the autoscaler).
fn doom(w: &World, name: &str) {
    w.node(name, "127.0.0.3", false);
    let mut n = w.api.get("nodes", "", name).expect("get node");
    n["spec"] = json!({
        "unschedulable": true,
        "taints": [{"key": "ToBeDeletedByClusterAutoscaler", "value": "1", "effect": "NoSchedule"}],
    });
    w.api.update("nodes", n).expect("taint node");
}

#[test]
fn a_notready_flip_with_checks_on_costs_no_write_and_no_updater_call() {
    let w = World::new("stable-set");
    let _c = Controller::start(&w.kubeconfig);
    let names = ["web", "api", "db"];
    for n in names {
        w.service(n, &[("http", 80, "TCP")]);
    }
    wait_for("all READY", || names.iter().all(|n| w.ready(n)));
    let (writes, calls) = (w.api_writes().len(), w.updater.calls().len());

    doom(&w, "node-b");
    // A change every LoadBalancer must follow, on the same watch after the flips: once it is
    // applied, the flips have been seen.
    w.node("node-c", "127.0.0.4", true);
    let all = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    wait_for("node-c added to every backend", || {
        names.iter().all(|n| {
            w.updater
                .backend(&format!("default_{n}"))
                .is_some_and(|p| upstream_hosts(&p) == all)
        }) && names.iter().all(|n| w.ready(n))
    });
    // node-c's addition, and nothing for node-b: one POST per LoadBalancer, one spec and one
    // status patch each (node-b, NotReady and tainted, stayed in every request).
    let calls = w.updater.calls()[calls..].to_vec();
    assert_eq!(calls.len(), names.len(), "{calls:#?}");
    let new_writes: Vec<(String, String)> = w.api_writes()[writes..].to_vec();
    let lb_writes = new_writes
        .iter()
        .filter(|(_, p)| p.contains("/loadbalancers/"))
        .count();
    assert_eq!(lb_writes, 2 * names.len(), "{new_writes:#?}");
    assert_eq!(new_writes.len(), lb_writes, "{new_writes:#?}");
    for n in names {
        let lb = w.lb(n).expect("lb");
        assert_eq!(lb["status"]["targetCount"], 3, "{n}");
        let conditions = lb["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            conditions.iter().all(|c| c["type"] != "StableNodeSet"),
            "{n}: {conditions:?}"
        );
    }
    // Deleted: it leaves the targets.
    w.api.delete("nodes", "", "node-b").expect("delete node-b");
    wait_for("node-b gone from every backend", || {
        names.iter().all(|n| {
            w.updater
                .backend(&format!("default_{n}"))
                .is_some_and(|p| upstream_hosts(&p) == ["127.0.0.2", "127.0.0.4"])
        })
    });
}

#[test]
fn against_the_go_updater_a_notready_node_leaves_and_the_status_says_why() {
    let w = World::new("stable-set-go");
    w.updater
        .go_like
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP")]);
    let reason = || {
        w.lb("web").and_then(|lb| {
            lb["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "StableNodeSet" && c["status"] == "False")
                .map(|c| c["reason"].as_str().unwrap_or_default().to_string())
        })
    };
    wait_for("StableNodeSet=False", || {
        reason().is_some() && w.ready("web")
    });
    assert_eq!(reason().as_deref(), Some("UpdaterWithoutChecks"));
    w.node("node-b", "127.0.0.3", false);
    wait_for("node-b gone from the backend", || {
        w.updater
            .backend("default_web")
            .is_some_and(|p| upstream_hosts(&p) == ["127.0.0.2"])
    });
}
