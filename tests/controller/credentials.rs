//! Issue 22, item 5: credentials belong to a config, not to a URL. Two LoadBalancerConfigs on one
//! updater with different tokens (one wrong): each config's Services are pushed with that
//! config's token, whichever of the two sorts first.

use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::LbHost;

fn config(w: &World, name: &str, url: &str, secret: &str, (low, high): (u16, u16)) {
    let obj = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": name, "namespace": "paperlb-system"},
        "spec": {"httpUpdaterURL": url, "host": LB_HOST, "portRange": {"low": low, "high": high},
            "updaterTokenSecretRef": {"name": secret}}});
    w.api
        .apply("loadbalancerconfigs", obj)
        .expect("apply config");
}

fn service(w: &World, name: &str, config: &str) {
    let obj = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
            "annotations": {"lb.paperlb.com/config-name": config}},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}});
    w.api.apply("services", obj).expect("apply service");
}

fn condition(w: &World, name: &str, type_: &str) -> Option<Value> {
    let lb = w.lb(name)?;
    lb["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[test]
fn two_configs_on_one_updater_each_push_with_their_own_token() {
    // (config with the right token, config with a wrong one): each order once.
    for (right, wrong) in [("a-edge", "b-edge"), ("b-edge", "a-edge")] {
        let host = LbHost::start_with_token(Some("tok-right"));
        let w = World::new("credentials");
        w.secret("right-token", "token", "tok-right");
        w.secret("wrong-token", "token", "tok-wrong");
        config(&w, right, &host.url(), "right-token", (8650, 8654));
        config(&w, wrong, &host.url(), "wrong-token", (8655, 8659));
        service(&w, "good", right);
        service(&w, "bad", wrong);
        let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "1s"]);
        wait_for("the right config's Service READY", || w.ready("good"));
        wait_for(
            "the wrong config's Service refused with its own error",
            || {
                condition(&w, "bad", "UpdaterAuth").is_some_and(|c| {
                    c["status"] == "False"
                        && c["reason"] == "Unauthorized"
                        && c["message"].as_str().is_some_and(|m| {
                            m.contains(&format!("LoadBalancerConfig paperlb-system/{wrong}"))
                        })
                })
            },
        );
        assert_eq!(
            host.names(Some("tok-right")),
            ["default_good"],
            "{right} first: {}",
            right < wrong
        );
        // Drift checks of the shared updater (each config's credentials in turn) keep each
        // config's condition its own.
        let lists = host.requests("GET");
        wait_for("two more drift checks", || {
            host.requests("GET") >= lists + 2
        });
        assert_ne!(w.lb("bad").expect("bad")["status"]["phase"], "READY");
        assert!(condition(&w, "good", "UpdaterAuth").is_none_or(|c| c["status"] == "True"));
    }
}
