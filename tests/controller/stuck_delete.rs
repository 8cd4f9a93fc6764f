//! Issue 22, item 4: a gone LB host does not hold a namespace hostage. Its updater killed for
//! good, the Service's namespace is deleted: after `--unreachable-delete-grace` the LoadBalancer's
//! finalizer is released with a Warning Event naming the host and the backend left there, the
//! namespace goes, and the stray backend is removed once the updater answers again.

use serde_json::json;

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::{LbHost, serves};
use crate::support::backends::Backend;

#[test]
fn a_namespace_is_not_held_by_an_updater_gone_for_good_and_the_stray_goes_when_it_returns() {
    let mut host = LbHost::start();
    let w = World::new("stuck-delete");
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": host.url(), "host": LB_HOST,
            "portRange": {"low": 8700, "high": 8709}, "healthCheck": {"type": "none"}}});
    w.api.apply("loadbalancerconfigs", cfg).expect("config");
    w.api
        .create(
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "doomed"}}),
        )
        .expect("namespace");
    w.api
        .create(
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "doomed"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}}),
        )
        .expect("service");
    let svc = w.api.get("services", "doomed", "web").expect("svc");
    let np = u16::try_from(
        svc["spec"]["ports"][0]["nodePort"]
            .as_u64()
            .expect("nodePort"),
    )
    .expect("nodePort");
    let (_a, _b) = (
        Backend::tcp_on("127.0.0.2", np, "node-a"),
        Backend::tcp_on("127.0.0.3", np, "node-b"),
    );
    let _c = Controller::start_with(
        &w.kubeconfig,
        &["--unreachable-delete-grace", "2s", "--updater-resync", "1s"],
    );
    wait_for("served", || {
        w.api
            .get("loadbalancers", "doomed", "web")
            .is_ok_and(|lb| lb["status"]["phase"] == "READY")
    });
    let port = w.api.get("loadbalancers", "doomed", "web").expect("lb")["spec"]["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("port");
    wait_for("traffic", || serves(port));

    // The updater is gone for good; the namespace is deleted.
    host.stop_updater();
    w.api
        .delete("namespaces", "", "doomed")
        .expect("delete namespace");
    wait_for("the namespace gone", || {
        w.api.get("namespaces", "", "doomed").is_err()
    });
    let events: Vec<_> = w
        .api
        .list("events", "paperlb-system")
        .into_iter()
        .filter(|e| e["reason"] == "BackendLeft")
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    let m = events[0]["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("doomed_web") && m.contains(LB_HOST) && m.contains("doomed/web"),
        "{m}"
    );
    assert!(serves(port), "the stray is still on the host meanwhile");

    // The updater answers again: drift repair removes the stray.
    host.restart_updater();
    wait_for("the stray removed", || host.names(None).is_empty());
    wait_for("no more traffic", || !serves(port));
}
