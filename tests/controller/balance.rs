//! Issue 24 item 2 end to end: `sessionAffinity: ClientIP` pushes `balance: hash`, the annotation
//! `lb.paperlb.com/balance` picks the method (left out of the request when round robin), the
//! timeout annotations replace the config's; a conflict or a bad value is a `Balancing=False`
//! condition and a Warning Event, and the default is used.

use serde_json::{Value, json};

use super::harness::*;

fn service(w: &World, name: &str, affinity: &str, annotations: Value) {
    w.api
        .apply(
            "services",
            json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": "default", "annotations": annotations},
                "spec": {"type": "LoadBalancer", "selector": {"app": name},
                    "sessionAffinity": affinity,
                    "ports": [{"name": "db", "port": 5432, "protocol": "TCP", "targetPort": 5432}]},
            }),
        )
        .expect("apply service");
}

fn last_post(w: &World, name: &str) -> Option<Value> {
    w.updater
        .posts()
        .into_iter()
        .rev()
        .find(|p| p["backendName"] == format!("default_{name}"))
}

fn balancing(w: &World, name: &str) -> Option<Value> {
    w.lb(name)?["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Balancing")
        .cloned()
}

fn warnings(w: &World, name: &str) -> Vec<(String, String)> {
    w.api
        .list("events", "default")
        .iter()
        .filter(|e| e["type"] == "Warning" && e["involvedObject"]["name"] == name)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (s("reason"), s("message"))
        })
        .collect()
}

#[test]
fn client_ip_affinity_pushes_hash_and_a_conflicting_annotation_is_a_condition_and_warning() {
    let w = World::new("balance");
    let _c = Controller::start(&w.kubeconfig);
    service(
        &w,
        "sticky",
        "ClientIP",
        json!({"lb.paperlb.com/proxy-timeout-seconds": "3600",
            "lb.paperlb.com/proxy-connect-timeout-seconds": "5"}),
    );
    service(
        &w,
        "db",
        "None",
        json!({"lb.paperlb.com/balance": "least-conn"}),
    );
    service(&w, "plain", "None", json!({}));
    service(
        &w,
        "both",
        "ClientIP",
        json!({"lb.paperlb.com/balance": "least-conn"}),
    );
    wait_for("four Services pushed", || {
        ["sticky", "db", "plain", "both"]
            .iter()
            .all(|n| last_post(&w, n).is_some())
    });
    let sticky = last_post(&w, "sticky").unwrap();
    assert_eq!(sticky["balance"], "hash", "{sticky}");
    assert_eq!(sticky["proxyTimeoutSeconds"], 3600, "{sticky}");
    assert_eq!(sticky["proxyConnectTimeoutSeconds"], 5, "{sticky}");
    assert_eq!(w.lb("sticky").unwrap()["spec"]["balance"], "hash");
    assert_eq!(last_post(&w, "db").unwrap()["balance"], "least-conn");
    let plain = last_post(&w, "plain").unwrap();
    assert!(
        plain.get("balance").is_none(),
        "round robin is left out: {plain}"
    );
    assert_eq!(plain["proxyTimeoutSeconds"], 0, "the config's: {plain}");
    assert!(w.lb("plain").unwrap()["spec"].get("balance").is_none());

    // The Service field wins over a disagreeing annotation.
    assert_eq!(last_post(&w, "both").unwrap()["balance"], "hash");
    wait_for("Balancing=False on both", || {
        balancing(&w, "both")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "SessionAffinityWins")
    });
    let c = balancing(&w, "both").unwrap();
    let message = c["message"].as_str().unwrap().to_string();
    assert_eq!(
        message,
        "annotation lb.paperlb.com/balance asks for least-conn, but spec.sessionAffinity: \
         ClientIP keeps each client on one node: hash (of the client address) is used"
    );
    wait_for("SessionAffinityWins Event", || {
        warnings(&w, "both").contains(&("SessionAffinityWins".into(), message.clone()))
    });
    for ok in ["sticky", "db", "plain"] {
        assert!(balancing(&w, ok).is_none(), "{ok}: {:?}", balancing(&w, ok));
        assert!(warnings(&w, ok).is_empty(), "{ok}: {:?}", warnings(&w, ok));
    }

    // Bad values: the defaults are pushed (round robin, the config's timeouts), and the stored
    // method is removed from the LoadBalancer's spec.
    let mut db = w.svc("db").unwrap();
    db["metadata"]["annotations"] = json!({"lb.paperlb.com/balance": "fastest",
        "lb.paperlb.com/proxy-timeout-seconds": "0"});
    w.api.update("services", db).expect("update db");
    wait_for("db pushed round robin", || {
        last_post(&w, "db").is_some_and(|p| p.get("balance").is_none())
    });
    assert_eq!(last_post(&w, "db").unwrap()["proxyTimeoutSeconds"], 0);
    wait_for("db's spec without balance", || {
        w.lb("db")
            .is_some_and(|lb| lb["spec"].get("balance").is_none())
    });
    wait_for("Balancing=False on db", || {
        balancing(&w, "db")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "InvalidAnnotation")
    });
    let message = balancing(&w, "db").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("\"fastest\"") && message.contains("proxy-timeout-seconds \"0\""));
    wait_for("InvalidAnnotation Event", || {
        warnings(&w, "db").contains(&("InvalidAnnotation".into(), message.clone()))
    });

    // Agreeing again clears the condition.
    let mut both = w.svc("both").unwrap();
    both["metadata"]["annotations"] = json!({"lb.paperlb.com/balance": "hash"});
    w.api.update("services", both).expect("update both");
    wait_for("Balancing gone from both", || {
        w.lb("both").is_some() && balancing(&w, "both").is_none()
    });
    assert_eq!(last_post(&w, "both").unwrap()["balance"], "hash");
}

/// A controller newer than its CRDs: the installed LoadBalancer CRD lacks `spec.balance`. Its
/// writes are strict, so the apiserver refuses them (a create: 400; a patch: 422) instead of
/// dropping the field, and the Service's Events say why; other Services are served. Once the CRD
/// is upgraded, the retries land and the method is pushed.
#[test]
fn an_older_crd_refuses_balance_and_says_so_and_the_upgrade_lets_it_through() {
    let w = World::new("oldcrd");
    // The CRD as it shipped before 10913db (2026-12-04): no `balance` and no several-host form,
    // which nothing here uses; only a spec that uses a field the CRD lacks is refused.
    w.api.set_lb_crd_without(&["balance", "hosts"]);
    let _c = Controller::start(&w.kubeconfig);
    service(&w, "plain", "None", json!({}));
    service(&w, "later", "None", json!({}));
    service(
        &w,
        "db",
        "None",
        json!({"lb.paperlb.com/balance": "least-conn"}),
    );
    wait_for("plain and later pushed", || {
        last_post(&w, "plain").is_some() && last_post(&w, "later").is_some()
    });
    let refused = |name: &str, code: &str| {
        warnings(&w, name).iter().any(|(reason, message)| {
            reason == "SyncLoadBalancerFailed"
                && message.contains(code)
                && message.contains("strict decoding error: unknown field \"spec.balance\"")
                && message.contains("the LoadBalancer CRD is older than this controller")
                // A strict patch's 422 quotes the whole object first: the message skips it.
                && !message.contains("Invalid value")
        })
    };
    wait_for("db's create refused, in its Events", || {
        refused("db", "400 BadRequest")
    });
    assert!(w.lb("db").is_none(), "a refused create stores nothing");
    assert!(
        last_post(&w, "db").is_none(),
        "nothing pushed without a record"
    );

    // A patch that adds the field: 422, and the LoadBalancer keeps its spec.
    let mut later = w.svc("later").unwrap();
    later["metadata"]["annotations"] = json!({"lb.paperlb.com/balance": "hash"});
    w.api.update("services", later).expect("update later");
    wait_for("later's patch refused, in its Events", || {
        refused("later", "422 Invalid")
    });
    assert!(w.lb("later").unwrap()["spec"].get("balance").is_none());
    // A node change is a spec patch of every LoadBalancer: its nulls (unset fields) pass.
    w.node("node-c", "127.0.0.4", true);
    wait_for("plain pushed with node-c", || {
        last_post(&w, "plain").is_some_and(|p| upstream_hosts(&p).contains(&"127.0.0.4".into()))
    });
    assert!(
        warnings(&w, "plain").is_empty(),
        "{:?}",
        warnings(&w, "plain")
    );

    // The CRDs are upgraded: the queued retries go through.
    w.api.set_lb_crd_without(&[]);
    wait_for("db and later pushed with their methods", || {
        last_post(&w, "db").is_some_and(|p| p["balance"] == "least-conn")
            && last_post(&w, "later").is_some_and(|p| p["balance"] == "hash")
    });
    assert_eq!(w.lb("db").unwrap()["spec"]["balance"], "least-conn");
}
