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
        if r.method != "POST" || !r.path.ends_with("/loadbalancers?fieldValidation=Strict") {
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

/// chaos seed 1 (second round): a LoadBalancer spec patch lost its connection and the server
/// committed it only later, after the controller had read the LoadBalancer again and seen nothing
/// yet (and before its own retry got through, here held back by 500s); the port the patch added
/// went to the next Service as well.
#[test]
fn late_committed_spec_patch_never_gives_its_port_to_another_service() {
    let w = World::new("late-commit");
    w.service("a", &[("http", 80, "TCP")]);
    let _c = Controller::start(&w.kubeconfig);
    wait_for("a READY", || w.ready("a"));
    let lb_a = "/apis/lb.paperlb.com/v1alpha1/namespaces/default/loadbalancers/a";
    let strict_a = format!("{lb_a}?fieldValidation=Strict");
    // The main resource only (`$`): a status patch of a must not take these faults.
    let lb_a_only = format!("{lb_a}$");
    w.api.inject(Fault::new(
        Some("PATCH"),
        &lb_a_only,
        1,
        FaultKind::DropThenApplyAfter(std::time::Duration::from_millis(200)),
    ));
    // The next copies fail for longer than that (backoff 5 ms doubling: about 1.3 s).
    w.api.inject(Fault::new(
        Some("PATCH"),
        &lb_a_only,
        8,
        FaultKind::Status(500),
    ));
    // a gets a second port: its spec patch is cut off (and lands 0.2 s later), the next ones fail.
    w.service("a", &[("http", 80, "TCP"), ("admin", 81, "TCP")]);
    // (The cut-off request is recorded only when it lands; the failing ones come after it.)
    wait_for("a's spec patch cut off and the next one failing", || {
        w.api
            .requests()
            .iter()
            .any(|r| r.path == strict_a && r.status == 500)
    });
    w.service("b", &[("http", 80, "TCP"), ("admin", 81, "TCP")]);
    wait_for("a and b READY with two ports each", || {
        w.ready("a") && w.ready("b") && w.lb_ports("a").len() == 2 && w.lb_ports("b").len() == 2
    });
    // Two copies of a's patch get an answer: the late one and the controller's own retry.
    wait_for("both copies of a's spec patch answered", || {
        w.api
            .requests()
            .iter()
            .filter(|r| {
                r.path == strict_a && matches!(r.status, 200 | 409) && r.body.contains("admin")
            })
            .count()
            >= 2
    });
    wait_for("a and b READY", || w.ready("a") && w.ready("b"));
    let ports_in = |body: &str| -> Vec<u64> {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        v["spec"]["ports"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["port"].as_u64()).collect())
            .unwrap_or_default()
    };
    let requests = w.api.requests();
    let a_claimed: Vec<u64> = requests
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == strict_a && r.status == 200)
        .flat_map(|r| ports_in(&r.body))
        .collect();
    let b_created: Vec<u64> = requests
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.path.ends_with("/loadbalancers?fieldValidation=Strict")
                && r.status == 201
        })
        .filter(|r| r.body.contains("\"name\":\"b\""))
        .flat_map(|r| ports_in(&r.body))
        .collect();
    assert!(!b_created.is_empty(), "b's create was seen");
    assert!(
        b_created.iter().all(|p| !a_claimed.contains(p)),
        "b was created with {b_created:?} while a's committed patches claimed {a_claimed:?}"
    );
    let (a, b) = (w.lb_ports("a"), w.lb_ports("b"));
    assert!(
        a.iter().all(|p| !b.contains(p)),
        "a {a:?} and b {b:?} share a port"
    );
    assert_no_port_pushed_for_two_backends(&w);
}

/// Review of the status-write shortcut: a reconcile whose whole plan records unconfirmed backends
/// (its answer is not "applied") must be followed by the next step. Here an apply is cut off by a
/// kill -9 while the updater holds its first POST, and the Service loses that port meanwhile: the
/// new controller records the port's backend, then patches the spec, applies, and deletes it.
#[test]
fn a_crash_mid_apply_then_a_removed_port_still_converges() {
    use std::sync::atomic::Ordering::SeqCst;
    let w = World::new("unconfirmed");
    let mut c = Controller::start(&w.kubeconfig);
    w.service("web", &[("a", 80, "TCP"), ("b", 81, "TCP")]);
    wait_for("web READY", || w.ready("web"));
    w.updater.hold_ms.store(600_000, SeqCst);
    w.service(
        "web",
        &[("a", 80, "TCP"), ("b", 81, "TCP"), ("c", 82, "TCP")],
    );
    wait_for("the new spec's first POST in flight", || {
        w.updater.concurrency.now.load(SeqCst) >= 1
    });
    c.kill();
    w.updater.hold_ms.store(0, SeqCst);
    w.service("web", &[("a", 80, "TCP"), ("b", 81, "TCP")]);
    let _c = Controller::start(&w.kubeconfig);
    wait_for("READY with two ports again", || {
        w.ready("web") && w.lb_ports("web").len() == 2
    });
    wait_for("no backend of port c on the updater", || {
        w.updater.backend_names() == ["default_web", "default_web_b"]
    });
}

/// chaos seed 4 at the 15 ms profile: a plan run on the I/O pool has its answers applied when its
/// last action is done; the watch had meanwhile delivered the plan's Service status write and a
/// user's edit after it, and the late answer rolled the cached Service back to before the edit and
/// waited for a version the watch had already passed, so every later update of that Service was
/// ignored until a relist (its LoadBalancer kept stale ports or targets). Here the plan's last
/// action (its Event) is held, and the Service gains a port meanwhile: the port must be served.
#[test]
fn a_late_plan_answer_does_not_hide_a_newer_service_edit() {
    let w = World::new("late-answer");
    w.api.inject(Fault::new(
        Some("POST"),
        "/api/v1/namespaces/default/events",
        1,
        FaultKind::Stall(std::time::Duration::from_secs(3)),
    ));
    let _c = Controller::start(&w.kubeconfig);
    w.service("web", &[("a", 80, "TCP")]);
    // The Service status write is done; the plan is still held on its Event.
    wait_for("web's ingress", || w.ready("web"));
    w.service("web", &[("a", 80, "TCP"), ("b", 81, "TCP")]);
    wait_for("web READY with both ports", || {
        w.ready("web") && w.lb_ports("web").len() == 2
    });
    wait_for("both backends on the updater", || {
        w.updater.backend_names() == ["default_web", "default_web_b"]
    });
}
