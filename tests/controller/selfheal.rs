//! The controller secures and repairs the LB host (issue 13), against the fake API server, our
//! updater in-process and a real nginx with real traffic (the cost test uses the recording updater):
//! a Secret-referenced token is sent and its rotation followed; a missing Secret gives a condition
//! and an Event and no call; a wiped streams directory, a hand-edited backend and a stray backend
//! of ours are repaired by the periodic drift check while a foreign backend is left alone; a
//! converged host costs one GET per check; an unreadable GET answer deletes nothing; a Go-like
//! updater gets `DriftCheck=Unsupported` once.
//!
//! Each nginx test uses its own LB port range (nginx binds them on every address).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use paperlb::updater::api::{LbRequest, Upstream};
use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::{LbHost, lb_port, serves};
use crate::metrics::{free_port, metrics_addr, scrape, val};
use crate::support::backends::Backend;

/// Points the harness's default config `edge` at `url` with this range and extra spec fields.
fn config(w: &World, url: &str, (low, high): (u16, u16), extra: Value) {
    let mut spec = json!({"default": true, "httpUpdaterURL": url, "host": LB_HOST,
        "portRange": {"low": low, "high": high}});
    if let Some(e) = extra.as_object() {
        for (k, v) in e {
            spec[k] = v.clone();
        }
    }
    let obj = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"}, "spec": spec});
    w.api
        .apply("loadbalancerconfigs", obj)
        .expect("apply config");
}

/// A Service `name` with one TCP port, and a backend on each node at its nodePort; returns the
/// backends (they stop on drop).
fn service_with_backends(w: &World, name: &str) -> (Backend, Backend) {
    w.service(name, &[("http", 80, "TCP")]);
    let np = u16::try_from(w.node_port(name, 0)).expect("nodePort");
    assert!(np > 0);
    (
        Backend::tcp_on("127.0.0.2", np, "node-a"),
        Backend::tcp_on("127.0.0.3", np, "node-b"),
    )
}

fn condition(w: &World, name: &str, type_: &str) -> Option<Value> {
    let lb = w.lb(name)?;
    lb["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

fn events_with_reason(w: &World, reason: &str) -> Vec<Value> {
    w.api
        .list("events", "default")
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[test]
fn secret_token_is_sent_and_a_rotation_is_followed() {
    let host = LbHost::start_with_token(Some("tok-one"));
    let w = World::new("selfheal-token");
    w.secret("lb-token", "token", "tok-one\n");
    config(
        &w,
        &host.url(),
        (8610, 8619),
        json!({"updaterTokenSecretRef": {"name": "lb-token"}}),
    );
    let (_a, _b) = service_with_backends(&w, "web");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "0"]);
    // The updater refuses calls without the token: READY means it was sent.
    wait_for("web READY through an authenticated updater", || {
        w.ready("web")
    });
    let port = lb_port(&w, "web");
    wait_for("traffic", || serves(port));
    assert_eq!(host.names(Some("tok-one")), ["default_web"]);

    // Rotate: the host's file, then the Secret; the next change is sent with the new token.
    let file = host.token_file.clone().expect("token file");
    std::fs::write(&file, "tok-two\n").expect("rotate token file");
    wait_for("the updater refuses the old token", || {
        host.backends(Some("tok-one"))
            .is_err_and(|e| e.is_unauthorized())
    });
    w.secret("lb-token", "token", "tok-two");
    w.exclude("node-b", true);
    wait_for("the new targets applied with the rotated token", || {
        w.ready("web")
            && host
                .backends(Some("tok-two"))
                .is_ok_and(|b| b.len() == 1 && b[0].request.upstream_servers.len() == 1)
    });
    assert!(condition(&w, "web", "UpdaterAuth").is_none_or(|c| c["status"] == "True"));
}

#[test]
fn missing_secret_sets_a_condition_and_an_event_and_sends_nothing() {
    let host = LbHost::start_with_token(Some("tok-one"));
    let w = World::new("selfheal-nosecret");
    config(
        &w,
        &host.url(),
        (8620, 8629),
        json!({"updaterTokenSecretRef": {"name": "absent", "key": "t"}}),
    );
    let (_a, _b) = service_with_backends(&w, "web");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "0"]);
    wait_for("UpdaterAuth=False SecretNotFound", || {
        condition(&w, "web", "UpdaterAuth")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "SecretNotFound")
    });
    let c = condition(&w, "web", "UpdaterAuth").expect("condition");
    let message = c["message"].as_str().unwrap_or("");
    assert!(
        message.contains("paperlb-system/edge")
            && message.contains("spec.updaterTokenSecretRef")
            && message.contains("\"absent\""),
        "{message}"
    );
    wait_for("a Warning Event UpdaterAuth", || {
        events_with_reason(&w, "UpdaterAuth")
            .iter()
            .any(|e| e["type"] == "Warning")
    });
    assert_eq!(w.lb("web").expect("lb")["status"]["phase"], "ERROR");
    // Nothing reached the updater: no POST (and no GET: the drift check has no client either).
    assert_eq!(host.requests("POST"), 0);
    assert!(host.names(Some("tok-one")).is_empty());

    // The Secret appears: the controller picks it up without a restart.
    w.secret("absent", "t", "tok-one");
    wait_for("READY once the Secret exists", || w.ready("web"));
    wait_for("UpdaterAuth=True", || {
        condition(&w, "web", "UpdaterAuth").is_some_and(|c| c["status"] == "True")
    });
    let port = lb_port(&w, "web");
    wait_for("traffic", || serves(port));
}

#[test]
fn wiped_host_gets_every_backend_back_within_one_resync_without_an_api_write() {
    let host = LbHost::start_with_token(None);
    let w = World::new("selfheal-wipe");
    // No health checks: a wiped host restarts its checks (its upstreams start healthy again), and
    // the per-port health in the LoadBalancers' status would change and be written, rightly.
    config(
        &w,
        &host.url(),
        (8630, 8639),
        json!({"healthCheck": {"type": "none"}}),
    );
    let (_a, _b) = service_with_backends(&w, "web");
    let (_c, _d) = service_with_backends(&w, "api");
    let _ctl = Controller::start_with(&w.kubeconfig, &["--updater-resync", "2s"]);
    wait_for("both READY", || w.ready("web") && w.ready("api"));
    let ports = [lb_port(&w, "web"), lb_port(&w, "api")];
    wait_for("traffic on both", || ports.iter().all(|p| serves(*p)));
    let writes = w.api_writes().len();
    // Settle first: a drift check right after READY may still be re-pushing (its POSTs are counted
    // when answered). Converged = two drift GETs answered with no POST between them.
    let mut seen = (host.requests("POST"), host.requests("GET"));
    wait_for("a converged host", || {
        let now = (host.requests("POST"), host.requests("GET"));
        if now.0 != seen.0 {
            seen = now;
            return false;
        }
        now.1 >= seen.1 + 2
    });
    let posts = host.requests("POST");

    host.wipe();
    wait_for("nginx stops serving", || ports.iter().all(|p| !serves(*p)));
    assert!(host.names(None).is_empty());
    wait_for("both backends back and serving", || {
        host.names(None) == ["default_api", "default_web"] && ports.iter().all(|p| serves(*p))
    });
    // One POST per lost backend (a slow box may see a second resync while the first reloads:
    // never more than one per backend per check), and nothing written to the API.
    // A POST is counted when its handler returns, which may be just after its file is served; the
    // controller's next drift GET comes only after every answer of this check, so once a GET
    // follows, every repair POST is counted.
    let gets = host.requests("GET");
    wait_for("the next drift check", || host.requests("GET") > gets);
    let reposted = host.requests("POST") - posts;
    assert!((2..=4).contains(&reposted), "{reposted} POSTs");
    assert_eq!(
        w.api_writes().len(),
        writes,
        "no Service or LoadBalancer edit: {:#?}",
        &w.api_writes()[writes..]
    );
}

#[test]
fn hand_edits_and_our_strays_are_repaired_and_foreign_backends_left_alone() {
    let host = LbHost::start_with_token(None);
    let w = World::new("selfheal-edit");
    config(&w, &host.url(), (8640, 8649), json!({}));
    let (_a, _b) = service_with_backends(&w, "web");
    let _ctl = Controller::start_with(&w.kubeconfig, &["--updater-resync", "2s"]);
    wait_for("web READY", || w.ready("web"));
    let port = lb_port(&w, "web");
    wait_for("traffic", || serves(port));
    let file = host.nginx.streams.join("default_web.conf");
    let original = std::fs::read_to_string(&file).expect("backend file");

    // A stray of ours (a backend some earlier LoadBalancer left) and a foreign one (no owner:
    // the Go controller, or another tool), both inside the config's range.
    let c = host.client(None);
    let req = |name: &str, port: u16, owner: Option<&str>| LbRequest {
        backend_name: name.into(),
        lb_port: port,
        lb_protocol: "TCP".into(),
        upstream_servers: vec![Upstream {
            host: "127.0.0.2".into(),
            port: 1,
            health: Default::default(),
        }],
        owner: owner.map(str::to_string),
        ..LbRequest::default()
    };
    c.apply(&req("default_gone", 8648, Some("paperlb")))
        .expect("stray");
    c.apply(&req("go_written", 8649, None)).expect("foreign");
    // A hand edit: the upstreams point elsewhere (the header still says what was asked).
    let edited = original.replace("127.0.0.2", "127.0.0.9");
    assert_ne!(edited, original);
    std::fs::write(&file, &edited).expect("edit by hand");

    wait_for("stray deleted, edit put back", || {
        host.names(None) == ["default_web", "go_written"]
            && std::fs::read_to_string(&file).is_ok_and(|t| t == original)
    });
    wait_for("traffic", || serves(port));
    // The foreign backend stays through further checks.
    let gets = host.requests("GET");
    wait_for("two more checks", || host.requests("GET") >= gets + 2);
    assert_eq!(host.names(None), ["default_web", "go_written"]);
}

#[test]
fn converged_host_costs_exactly_one_get_per_resync() {
    let w = World::new("selfheal-cost");
    w.service("web", &[("http", 80, "TCP")]);
    let port = free_port();
    let addr = metrics_addr(port);
    let _c = Controller::start_with(
        &w.kubeconfig,
        &["--updater-resync", "1s", "--metrics-addr", addr.as_str()],
    );
    wait_for("web READY", || w.ready("web"));
    let converged = || {
        val(
            &scrape(port),
            "paperlb_updater_resyncs_total",
            &[("result", "converged")],
        )
    };
    wait_for("a first converged check", || converged() >= 1.0);
    let calls = w.updater.calls().len();
    let lists0 = w.updater.lists.load(Ordering::SeqCst);
    let converged0 = converged();
    // Samples until both counters moved by the same amount (a GET can be answered a moment
    // before its check is counted); bounded, and at least three checks.
    let end = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let c = converged();
        let l = w.updater.lists.load(Ordering::SeqCst);
        let c2 = converged();
        let (dl, dc) = (l - lists0, c - converged0);
        if c == c2 && dc >= 3.0 && dl as f64 == dc {
            break (dl, dc);
        }
        assert!(
            Instant::now() < end,
            "GETs and checks never agreed: {dl} GETs, {dc} checks"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        w.updater.calls().len(),
        calls,
        "no POST or DELETE: {last:?}"
    );
    let m = scrape(port);
    for action in ["create", "update", "delete"] {
        assert_eq!(
            val(
                &m,
                "paperlb_updater_drift_repairs_total",
                &[("action", action)]
            ),
            0.0
        );
    }
    assert_eq!(
        val(&m, "paperlb_updater_resyncs_total", &[("result", "error")]),
        0.0
    );
}

#[test]
fn go_like_updater_gets_drift_check_unsupported_once() {
    let w = World::new("selfheal-go");
    w.updater.go_like.store(true, Ordering::SeqCst);
    w.service("web", &[("http", 80, "TCP")]);
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "1s"]);
    wait_for("web READY", || w.ready("web"));
    wait_for("DriftCheck=False Unsupported", || {
        condition(&w, "web", "DriftCheck")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "Unsupported")
    });
    assert_eq!(w.updater.lists.load(Ordering::SeqCst), 1);
    // The reconcile's status patch and the check's can land in either order, and the later one
    // may carry the other's condition once more: wait until no write came for half a second.
    let mut writes = w.api_writes().len();
    wait_for("the first writes settled", || {
        std::thread::sleep(Duration::from_millis(500));
        let now = w.api_writes().len();
        std::mem::replace(&mut writes, now) == now
    });
    // Several resync periods later: no second GET, no second write.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(w.updater.lists.load(Ordering::SeqCst), 1, "no retry loop");
    assert_eq!(w.api_writes().len(), writes);
}

#[test]
fn unreadable_list_answer_skips_the_check_and_deletes_nothing() {
    let w = World::new("selfheal-garbled");
    w.service("web", &[("http", 80, "TCP")]);
    let port = free_port();
    let addr = metrics_addr(port);
    let _c = Controller::start_with(
        &w.kubeconfig,
        &["--updater-resync", "1s", "--metrics-addr", addr.as_str()],
    );
    wait_for("web READY", || w.ready("web"));
    w.updater.garbled.store(true, Ordering::SeqCst);
    // A backend of ours that no LoadBalancer wants: a readable answer would get it deleted.
    w.updater.backends.lock().unwrap().insert(
        "default_gone".into(),
        json!({"backendName": "default_gone", "lbPort": 8150, "lbProtocol": "TCP",
               "upstreamServers": [], "owner": "paperlb"}),
    );
    let errors = || {
        val(
            &scrape(port),
            "paperlb_updater_resyncs_total",
            &[("result", "error")],
        )
    };
    wait_for("two failed checks", || errors() >= 2.0);
    assert!(w.updater.deletes().is_empty(), "{:?}", w.updater.deletes());
    assert!(w.updater.backend("default_gone").is_some());
    // Readable again: the stray goes (so the check above could have failed).
    w.updater.garbled.store(false, Ordering::SeqCst);
    wait_for("the stray deleted", || {
        w.updater.deletes() == ["default_gone"]
    });
}
