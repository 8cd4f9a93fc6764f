//! Issue 22, item 3: a config's status does not wait behind Service work. With 1,000 LoadBalancers
//! whose updater calls keep failing (slowly, so the work queue never drains), a config applied
//! meanwhile gets its `Accepted` condition at once, not when the queue is empty.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};

fn accepted(w: &World, name: &str) -> Option<Value> {
    let cfg = w
        .api
        .get("loadbalancerconfigs", "paperlb-system", name)
        .ok()?;
    cfg["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Accepted")
        .cloned()
}

#[test]
fn a_config_applied_while_1000_load_balancers_fail_is_accepted_without_waiting_for_them() {
    let w = World::new("config-first");
    w.config("edge", true, 20000, 21999);
    w.updater.failing.store(true, Ordering::SeqCst);
    // Each failing call takes 200 ms: a pass over 1,000 keys outlasts any wait below.
    w.updater.hold_ms.store(200, Ordering::SeqCst);
    for i in 0..1000 {
        w.service(&format!("s{i}"), &[("http", 80, "TCP")]);
    }
    let _c = Controller::start(&w.kubeconfig);
    wait_for("updater calls failing", || w.updater.posts().len() >= 20);
    let obj = json!({
        "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "second", "namespace": "paperlb-system"},
        "spec": {"httpUpdaterURL": w.updater.url, "host": LB_HOST,
            "portRange": {"low": 22000, "high": 22099}},
    });
    w.api
        .apply("loadbalancerconfigs", obj)
        .expect("apply config");
    wait_for("the new config Accepted", || {
        accepted(&w, "second").is_some_and(|c| c["status"] == "True")
    });
    // The point: the 1,000 are still being retried (the queue did not drain first).
    let posts = w.updater.posts().len();
    wait_for("more failing calls after Accepted", || {
        w.updater.posts().len() > posts
    });
    w.updater.hold_ms.store(0, Ordering::SeqCst);
}
