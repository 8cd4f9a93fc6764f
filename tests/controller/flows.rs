//! End-to-end flows of `paperlb controller` against the fake API server and a recording updater.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use serde_json::json;

use crate::harness::{Controller, LB_HOST, World, upstream_hosts, wait_for};
use crate::support::fake_api::{Fault, FaultKind};

#[test]
fn service_with_two_ports_gets_lb_ready_two_posts_and_ingress() {
    let w = World::new("two-ports");
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP"), ("dns", 53, "UDP")]);
    wait_for("web READY with ingress", || w.ready("web"));

    let posts = w.updater.posts();
    assert_eq!(posts.len(), 2, "one POST per port: {posts:?}");
    let names: BTreeSet<String> = posts
        .iter()
        .map(|p| p["backendName"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains("default_web"), "{names:?}");
    for (i, post) in posts.iter().enumerate() {
        assert_eq!(upstream_hosts(post), ["127.0.0.2", "127.0.0.3"], "post {i}");
    }
    let protocols: BTreeSet<&str> = posts
        .iter()
        .map(|p| p["lbProtocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, BTreeSet::from(["TCP", "UDP"]));
    let tcp = posts.iter().find(|p| p["lbProtocol"] == "TCP").unwrap();
    assert_eq!(
        tcp["upstreamServers"][0]["port"].as_u64(),
        Some(w.node_port("web", 0))
    );

    let svc = w.svc("web").unwrap();
    let ingress = &svc["status"]["loadBalancer"]["ingress"][0];
    assert_eq!(ingress["ip"], LB_HOST);
    assert_eq!(ingress["ipMode"], "Proxy");
    let lb = w.lb("web").unwrap();
    assert_eq!(lb["status"]["targetCount"], 2);
    assert_eq!(
        lb["metadata"]["finalizers"],
        json!(["lb.paperlb.com/lb-finalizer"])
    );
    assert_eq!(lb["metadata"]["ownerReferences"][0]["name"], "web");
    let ports = w.lb_ports("web");
    assert!(
        ports.iter().all(|(p, _)| (8100..=8199).contains(p)),
        "{ports:?}"
    );

    // The cost of a create: the CR, its status, the Service's status; nothing else (Events apart).
    // The config's own Accepted condition is written once per config, not per Service.
    let all = w.api_writes();
    let (config, writes): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|(_, p)| p.contains("/loadbalancerconfigs/"));
    let writes: Vec<&str> = writes.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(writes, ["POST", "PATCH", "PATCH"], "{all:#?}");
    assert!(config.len() <= 1, "{all:#?}");
}

#[test]
fn sigterm_stops_the_controller_cleanly() {
    let w = World::new("sigterm");
    let mut c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("web READY", || w.ready("web"));
    assert_eq!(c.terminate(), Some(0), "exit status 0 after SIGTERM");
}

#[test]
fn sigterm_during_a_hung_updater_call_still_exits_cleanly() {
    let w = World::new("sigterm-hung");
    let mut c = Controller::start(&w.kubeconfig);
    // The updater takes the POST and does not answer for far longer than the pod's grace period.
    w.updater.hold_ms.store(600_000, Ordering::SeqCst);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("the POST in flight", || {
        w.updater.concurrency.now.load(Ordering::SeqCst) >= 1
    });
    // The call's own timeout is 60 s: exiting while the updater still holds the request means the
    // controller did not wait it out.
    let code = c.terminate_within(std::time::Duration::from_secs(40));
    let still_held = w.updater.concurrency.now.load(Ordering::SeqCst) >= 1;
    w.updater.hold_ms.store(0, Ordering::SeqCst);
    assert_eq!(code, Some(0), "exit status 0 after SIGTERM");
    assert!(still_held, "the controller waited for the hung call to end");
}

/// A Service deleted while its updater holds the DELETE does not hold up the others: the release
/// waits on the I/O pool while the worker serves a new Service. On the worker, the call would
/// have to time out (60 s) first, and its failure would be recorded on the LoadBalancer before
/// the new Service was taken.
#[test]
fn a_delete_the_updater_does_not_answer_holds_up_no_other_service() {
    let w = World::new("hung-delete");
    let _c = Controller::start(&w.kubeconfig);
    w.service("old", &[("http", 80, "TCP")]);
    wait_for("old READY", || w.ready("old"));
    w.updater.hold_delete_ms.store(600_000, Ordering::SeqCst);
    w.api.delete("services", "default", "old").expect("delete");
    wait_for("the DELETE held", || {
        w.updater.held.load(Ordering::SeqCst) >= 1
    });
    w.service("new", &[("http", 80, "TCP")]);
    wait_for("new READY", || w.ready("new"));
    let old = w
        .lb("old")
        .expect("old is kept while its backend is not deleted");
    let still_held = w.updater.held.load(Ordering::SeqCst) >= 1;
    w.updater.hold_delete_ms.store(0, Ordering::SeqCst);
    assert!(still_held, "the DELETE was still waiting");
    assert!(
        !old["status"].to_string().contains("could not delete"),
        "no failure recorded yet: {old:#}"
    );
    wait_for("old released", || w.lb("old").is_none());
}

/// A port removed from a Service that keeps its LoadBalancer, while the updater holds the DELETE
/// of that port's backend: the plan waits on the I/O pool, and a new Service is served meanwhile
/// (before every plan went to the pool, this one ran on the worker and held it for the call's
/// timeout, 60 s). The port stays claimed until the DELETE is answered, so the new Service is
/// not given it (the updater would refuse it: the old backend still listens there).
#[test]
fn a_port_delete_the_updater_does_not_answer_holds_up_no_other_service() {
    let w = World::new("hung-port-delete");
    let _c = Controller::start(&w.kubeconfig);
    w.service("two", &[("http", 80, "TCP"), ("dns", 53, "UDP")]);
    wait_for("two READY", || w.ready("two"));
    let two = w.lb("two").expect("two's LoadBalancer");
    let dns = two["spec"]["ports"][1]["port"].clone();
    w.updater.hold_delete_ms.store(600_000, Ordering::SeqCst);
    w.service("two", &[("http", 80, "TCP")]);
    wait_for("the DELETE held", || {
        w.updater.held.load(Ordering::SeqCst) >= 1
    });
    w.service("new", &[("dns", 53, "UDP")]);
    wait_for("new READY", || w.ready("new"));
    let new = w.lb("new").expect("new's LoadBalancer");
    let still_held = w.updater.held.load(Ordering::SeqCst) >= 1;
    w.updater.hold_delete_ms.store(0, Ordering::SeqCst);
    assert!(still_held, "the DELETE was still waiting");
    assert_ne!(new["spec"]["ports"][0]["port"], dns, "{new:#}");
    wait_for("two READY with one port", || {
        w.ready("two")
            && w.lb("two")
                .is_some_and(|lb| lb["spec"]["ports"].as_array().map(Vec::len) == Some(1))
    });
}

/// An updater that does not answer holds one plan in flight, not the pool. Once a call to it has
/// failed, the Services on it wait in the queue while one plan calls it, and a Service on another
/// updater is served meanwhile. Before the fix, 20 plans calling it took every place in the pool
/// (16) for the call's timeout (60 s), round after round, and the new Service waited for them.
/// When it answers again, every Service on it becomes READY. (Drift checks also call it, on the
/// worker: none is scheduled for it here, see below.)
#[test]
fn an_updater_that_does_not_answer_holds_up_no_service_on_another() {
    use crate::harness::RecordingUpdater;
    use crate::support::nginx::wait_until;
    use std::net::TcpListener;
    use std::time::Duration;
    let w = World::new("dead-updater");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync=0"]);
    // The checks at start are done: an updater configured later gets none (the period is 0).
    wait_for("the first drift check", || {
        w.updater.lists.load(Ordering::SeqCst) >= 1
    });
    // A free port: nothing listens there yet, so the first call is refused at once.
    let free = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = free.local_addr().expect("its address");
    drop(free);
    let dead = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "dead", "namespace": "paperlb-system"},
        "spec": {"httpUpdaterURL": format!("http://{addr}"), "host": LB_HOST,
            "portRange": {"low": 8300, "high": 8399}}});
    w.api
        .apply("loadbalancerconfigs", dead)
        .expect("dead config");
    let on_dead = |name: &str| {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default",
                "annotations": {"lb.paperlb.com/config-name": "dead"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}});
        w.api.apply("services", svc).expect("apply service");
    };
    on_dead("dead-0");
    wait_for("dead-0's call refused", || {
        w.lb("dead-0")
            .is_some_and(|lb| lb["status"]["phase"] == "ERROR")
    });
    // From now on its calls are accepted by the kernel and never answered.
    let hung = TcpListener::bind(addr).expect("hang the updater");
    let names: Vec<String> = (1..=20).map(|i| format!("dead-{i}")).collect();
    for n in &names {
        on_dead(n);
    }
    wait_for("their LoadBalancers created", || {
        names.iter().all(|n| w.lb(n).is_some())
    });
    w.service("live", &[("http", 80, "TCP")]);
    // Half the call's timeout: without the fix, 16 calls to the dead updater hold every place.
    let served = wait_until(Duration::from_secs(30), || w.ready("live"));
    assert!(served, "live READY while the dead updater holds its calls");
    assert!(!w.ready("dead-1"), "dead-1 is not READY");

    // It answers again: the held keys are not lost.
    drop(hung);
    let _back = RecordingUpdater::start_on(&addr.to_string());
    wait_for("every Service on it READY", || {
        w.ready("dead-0") && names.iter().all(|n| w.ready(n))
    });
}

#[test]
fn a_node_flip_applies_several_loadbalancers_at_once() {
    let w = World::new("batch");
    let _c = Controller::start(&w.kubeconfig);
    let names: Vec<String> = (0..6).map(|i| format!("web-{i}")).collect();
    for n in &names {
        w.service(n, &[("http", 80, "TCP")]);
    }
    wait_for("all READY", || names.iter().all(|n| w.ready(n)));
    let before = w.updater.posts().len();
    assert_eq!(before, names.len());

    // Each POST now takes a while: run one after another they would never overlap.
    w.updater.hold_ms.store(300, Ordering::SeqCst);
    w.updater.concurrency.max.store(0, Ordering::SeqCst);
    w.exclude("node-b", true);
    wait_for("every backend re-applied without node-b", || {
        let posts = w.updater.posts();
        names.iter().all(|n| {
            posts[before..].iter().any(|p| {
                p["backendName"] == format!("default_{n}") && upstream_hosts(p) == ["127.0.0.2"]
            })
        })
    });
    wait_for("all READY again", || names.iter().all(|n| w.ready(n)));
    assert!(
        w.updater.concurrency.max.load(Ordering::SeqCst) >= 2,
        "the updater never saw two applies at once"
    );
    // Still exactly one POST per LoadBalancer for the change.
    assert_eq!(w.updater.posts().len(), before + names.len());
}

#[test]
fn node_changes_cost_exactly_one_post_per_port() {
    let w = World::new("node-flip");
    // The old rule, where a NotReady node leaves the targets (the stable set: node_set.rs).
    let _c = Controller::start_with(&w.kubeconfig, &["--stable-node-set=false"]);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("web READY", || w.ready("web"));
    assert_eq!(w.updater.posts().len(), 1);

    // NotReady: node-b leaves the upstreams.
    w.node("node-b", "127.0.0.3", false);
    wait_for("a second POST", || w.updater.posts().len() >= 2);
    wait_for("READY again", || w.ready("web"));
    let posts = w.updater.posts();
    assert_eq!(upstream_hosts(&posts[1]), ["127.0.0.2"]);

    // Excluded by label: node-a leaves too, so no targets remain: the backend is deleted (an
    // empty upstream list is never POSTed; issue 22); back: one more POST each.
    let mut a = w.api.get("nodes", "", "node-a").unwrap();
    a["metadata"]["labels"] =
        json!({"node.kubernetes.io/exclude-from-external-load-balancers": "true"});
    w.api.update("nodes", a).unwrap();
    wait_for("the backend deleted", || {
        w.updater.deletes() == ["default_web"]
    });
    assert_eq!(w.updater.posts().len(), 2);

    // Address change of a ready node.
    let mut a = w.api.get("nodes", "", "node-a").unwrap();
    a["metadata"]["labels"] = json!({});
    w.api.update("nodes", a).unwrap();
    w.node("node-b", "127.0.0.4", true);
    wait_for("node-b's new address upstream", || {
        w.updater
            .posts()
            .last()
            .is_some_and(|p| upstream_hosts(p) == ["127.0.0.2", "127.0.0.4"])
    });
    wait_for("READY", || w.ready("web"));
    // Let anything redundant arrive, then check nothing was sent twice for the same state.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let posts = w.updater.posts();
    // posts[1] and posts[2] may both be node-a alone: the backend was deleted between them (no
    // targets), and node-a back re-creates it before node-b's change is seen.
    for pair in posts[..2].windows(2).chain(posts[2..].windows(2)) {
        assert_ne!(
            pair[0], pair[1],
            "a POST repeated an unchanged request: {posts:#?}"
        );
    }
    // A heartbeat-like node update (no change to readiness, addresses or labels) sends nothing.
    let before = posts.len();
    let mut b = w.api.get("nodes", "", "node-b").unwrap();
    b["metadata"]["annotations"] = json!({"heartbeat": "1"});
    w.api.update("nodes", b).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(w.updater.posts().len(), before);
}

#[test]
fn ports_added_and_removed_follow_the_service() {
    let w = World::new("ports");
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("web READY", || w.ready("web"));
    let first = w.lb_ports("web")[0].clone();

    w.service("web", &[("http", 80, "TCP"), ("metrics", 9090, "TCP")]);
    wait_for("two ports READY", || {
        w.lb_ports("web").len() == 2 && w.ready("web")
    });
    assert_eq!(
        w.lb_ports("web")[0],
        first,
        "the existing port keeps its allocation"
    );
    assert_eq!(w.updater.backend_names().len(), 2);

    w.service("web", &[("http", 80, "TCP")]);
    wait_for("one port READY", || {
        w.lb_ports("web").len() == 1 && w.ready("web")
    });
    wait_for("the removed port's backend deleted", || {
        w.updater.backend_names().len() == 1
    });
    assert_eq!(w.lb_ports("web")[0], first);
}

#[test]
fn config_range_change_moves_only_ports_outside_it() {
    let w = World::new("range");
    let _c = Controller::start(&w.kubeconfig);
    w.service("a", &[("http", 80, "TCP")]);
    wait_for("a READY", || w.ready("a"));
    let a_port = w.lb_ports("a")[0].0;
    assert_eq!(a_port, 8100);

    // Still contains 8100: nothing moves.
    w.config("edge", true, 8000, 8150);
    w.service("b", &[("http", 80, "TCP")]);
    wait_for("b READY", || w.ready("b"));
    assert_eq!(w.lb_ports("a")[0].0, 8100);

    // No longer contains 8100: a moves into the new range, the old backend goes after the new applies.
    w.config("edge", true, 9000, 9010);
    wait_for("a moved", || {
        w.lb_ports("a").first().is_some_and(|p| p.0 >= 9000) && w.ready("a")
    });
    wait_for("b moved", || {
        w.lb_ports("b").first().is_some_and(|p| p.0 >= 9000) && w.ready("b")
    });
    assert_ne!(w.lb_ports("a")[0], w.lb_ports("b")[0]);
    let a = w.updater.backend("default_a").expect("a's backend");
    assert!(a["lbPort"].as_u64().unwrap() >= 9000);
}

#[test]
fn deleting_the_service_removes_backends_finalizer_and_lb() {
    let w = World::new("delete");
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP"), ("dns", 53, "UDP")]);
    wait_for("web READY", || w.ready("web"));
    w.api.delete("services", "default", "web").unwrap();
    wait_for("LoadBalancer gone", || w.lb("web").is_none());
    let mut deletes = w.updater.deletes();
    deletes.sort();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(deletes.contains(&"default_web".to_string()));
    assert!(w.updater.backend_names().is_empty());
}

#[test]
fn switching_to_cluster_ip_cleans_up() {
    let w = World::new("clusterip");
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("web READY", || w.ready("web"));
    let mut svc = w.svc("web").unwrap();
    svc["spec"]["type"] = json!("ClusterIP");
    w.api.update("services", svc).unwrap();
    wait_for("LoadBalancer gone", || w.lb("web").is_none());
    assert_eq!(w.updater.deletes(), ["default_web"]);
    let svc = w.svc("web").unwrap();
    assert!(svc["status"]["loadBalancer"]["ingress"].is_null(), "{svc}");
}

#[test]
fn lb_deleted_while_controller_down_is_cleaned_up_on_start() {
    let w = World::new("down-delete");
    let mut c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("web READY", || w.ready("web"));
    c.kill();
    w.api.delete("services", "default", "web").unwrap();
    let _c = Controller::start(&w.kubeconfig);
    wait_for("LoadBalancer gone", || w.lb("web").is_none());
    assert_eq!(w.updater.deletes(), ["default_web"]);
}

#[test]
fn restart_over_a_converged_cluster_writes_nothing() {
    let w = World::new("restart");
    let mut c = Controller::start(&w.kubeconfig);
    w.service("a", &[("http", 80, "TCP"), ("dns", 53, "UDP")]);
    w.service("b", &[("http", 80, "TCP")]);
    wait_for("a and b READY", || w.ready("a") && w.ready("b"));
    let ports = (w.lb_ports("a"), w.lb_ports("b"));
    let calls = w.updater.calls().len();
    c.kill();
    w.api.clear_requests();

    let _c = Controller::start(&w.kubeconfig);
    // The restarted controller has synced once it has opened its watches; then give it time to act.
    wait_for("watches opened", || {
        w.api
            .requests()
            .iter()
            .filter(|r| r.path.contains("watch="))
            .count()
            >= 5
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!((w.lb_ports("a"), w.lb_ports("b")), ports, "no port changes");
    assert_eq!(w.updater.calls().len(), calls, "no updater calls");
    let writes: Vec<_> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(
        writes.is_empty(),
        "no API writes after restart: {writes:#?}"
    );
}

#[test]
fn updater_outage_sets_error_then_ready_when_back() {
    let w = World::new("outage");
    let _c = Controller::start(&w.kubeconfig);
    w.updater
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("phase ERROR with the updater's message", || {
        w.lb("web").is_some_and(|lb| {
            lb["status"]["phase"] == "ERROR"
                && lb["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("simulated failure"))
                    })
                })
        })
    });
    wait_for("a Warning Event UpdaterFailed on the Service", || {
        w.api.list("events", "default").iter().any(|e| {
            e["reason"] == "UpdaterFailed"
                && e["type"] == "Warning"
                && e["involvedObject"]["kind"] == "Service"
        })
    });
    w.updater
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    wait_for("READY after the updater is back", || w.ready("web"));
}

#[test]
fn conflicts_and_dropped_watches_reach_the_same_end_state() {
    let w = World::new("faults");
    for kind in [
        FaultKind::Status(409),
        FaultKind::Status(500),
        FaultKind::Status(429),
    ] {
        w.api
            .inject(Fault::new(Some("PATCH"), "/apis/lb.paperlb.com", 2, kind));
    }
    w.api.inject(Fault::new(
        Some("GET"),
        "/api/v1/services?",
        2,
        FaultKind::DropMidObject,
    ));
    w.api.inject(Fault::new(
        Some("GET"),
        "/api/v1/nodes?",
        1,
        FaultKind::EndEarly(0),
    ));
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("http", 80, "TCP")]);
    w.service("api", &[("grpc", 9000, "TCP")]);
    wait_for("both READY", || w.ready("web") && w.ready("api"));
    w.api.compact();
    w.exclude("node-b", true);
    wait_for("node-b gone from both backends", || {
        ["default_web", "default_api"].iter().all(|b| {
            w.updater
                .backend(b)
                .is_some_and(|p| upstream_hosts(&p) == ["127.0.0.2"])
        })
    });
    wait_for("both READY again", || w.ready("web") && w.ready("api"));
}

#[test]
fn fifty_services_created_at_once_never_share_a_port() {
    let w = World::new("fifty");
    let _c = Controller::start(&w.kubeconfig);
    for i in 0..50 {
        w.service(&format!("s{i:02}"), &[("http", 80, "TCP")]);
    }
    wait_for("all 50 READY", || {
        (0..50).all(|i| w.ready(&format!("s{i:02}")))
    });
    let mut seen = BTreeSet::new();
    for i in 0..50 {
        for p in w.lb_ports(&format!("s{i:02}")) {
            assert!(seen.insert(p.clone()), "port {p:?} allocated twice");
        }
    }
    assert_eq!(seen.len(), 50);
    assert_eq!(
        w.updater.posts().len(),
        50,
        "exactly one updater call per port"
    );
}

/// A config's status write that fails is tried again after the config queue's backoff until it
/// lands: three 500s, then Accepted=True, with no write lost or repeated after the success.
#[test]
fn config_status_write_that_fails_is_retried_until_written() {
    let w = World::new("config-status-retry");
    let path =
        "/apis/lb.paperlb.com/v1alpha1/namespaces/paperlb-system/loadbalancerconfigs/edge/status";
    w.api
        .inject(Fault::new(Some("PATCH"), path, 3, FaultKind::Status(500)));
    let mut c = Controller::start(&w.kubeconfig);
    let accepted = || {
        w.api
            .get("loadbalancerconfigs", "paperlb-system", "edge")
            .is_ok_and(|c| c["status"]["conditions"][0]["status"] == "True")
    };
    wait_for("Accepted=True after three failed writes", accepted);
    assert_eq!(c.terminate(), Some(0));
    let writes: Vec<u16> = w
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == path)
        .map(|r| r.status)
        .collect();
    assert_eq!(writes, [500, 500, 500, 200]);
}
