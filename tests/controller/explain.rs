//! `paperlb explain` end to end: the real binary against the fake API server, with one broken thing
//! per fixture, and against real updaters (ours over a private nginx, or a small local stub) with
//! the real controller. Each broken fixture must print its ✗ step and exit 1; a served Service
//! prints no ✗ and exits 0. Updaters are on 127.0.0.1 only.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use paperlb::http::{Limits, Request, Response, Server};
use paperlb::updater::api::{LbRequest, Upstream};
use paperlb::updater::client::{ClientAuth, Timeouts, UpdaterClient};
use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::LbHost;
use crate::support::backends::kube_proxy_healthz;
use crate::support::fake_api::certs::Ca;
use crate::support::fake_api::{ADMIN_USER, FakeOptions};
use crate::support::procs::free_port;

/// Runs `paperlb explain default/<name>`; returns the exit code and stdout.
fn explain(w: &World, name: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paperlb"))
        .args(["explain", &format!("default/{name}"), "--kubeconfig"])
        .arg(&w.kubeconfig)
        .args(["--namespace", "paperlb-system"])
        .args(extra)
        .output()
        .expect("run paperlb explain");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let code = out.status.code().unwrap_or(-1);
    (code, stdout)
}

/// The failed step's id and line, if one is printed.
fn failed(out: &str) -> Option<(String, String)> {
    out.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("✗ ")?;
        let id = rest.split_whitespace().next()?.to_string();
        Some((id, l.to_string()))
    })
}

/// Explains and requires exit 1 with the ✗ at `step`, its line containing `text`, and a fix.
fn expect_failure(w: &World, name: &str, step: &str, text: &str) -> String {
    let (code, out) = explain(w, name, &[]);
    let (id, line) = failed(&out).unwrap_or_else(|| panic!("no ✗ step in:\n{out}"));
    assert_eq!(id, step, "{out}");
    assert!(line.contains(text), "{line:?} lacks {text:?} in:\n{out}");
    assert!(out.contains("fix: "), "no fix in:\n{out}");
    assert_eq!(code, 1, "{out}");
    out
}

fn service(w: &World, name: &str, extra: Value) {
    let mut obj = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]},
    });
    merge(&mut obj, extra);
    w.api.apply("services", obj).expect("apply service");
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Replaces the default config `edge` with one whose fields are `extra` merged over the default.
fn config(w: &World, extra: Value) {
    let mut obj = json!({
        "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": w.updater.url, "host": LB_HOST,
                 "portRange": {"low": 8100, "high": 8199},
                 // Applied as a merge patch: null removes a reference an earlier fixture set.
                 "updaterTokenSecretRef": null},
    });
    merge(&mut obj, extra);
    w.api
        .apply("loadbalancerconfigs", obj)
        .expect("apply config");
}

/// A LoadBalancer of another Service holding `port` on the LB host.
fn holder(w: &World, namespace: &str, name: &str, port: u16) {
    w.api
        .create(
            "loadbalancers",
            json!({
                "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancer",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"configName": "edge", "httpUpdater": {"url": w.updater.url}, "host": LB_HOST,
                         "port": port, "protocol": "TCP", "targets": []},
            }),
        )
        .expect("create holder LoadBalancer");
}

#[test]
fn cluster_side_diagnoses_each_stop_at_their_step() {
    let w = World::new("explain-cluster");
    expect_failure(&w, "nope", "service", "does not exist");
    let (code, out) = Command::new(env!("CARGO_BIN_EXE_paperlb"))
        .args(["explain", "no-such-namespace/web", "--kubeconfig"])
        .arg(&w.kubeconfig)
        .output()
        .map(|o| {
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).to_string(),
            )
        })
        .expect("run paperlb explain");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        failed(&out).map(|f| f.0).as_deref(),
        Some("service"),
        "{out}"
    );
    service(&w, "web", json!({"spec": {"type": "ClusterIP"}}));
    expect_failure(&w, "web", "service", "type ClusterIP");
    service(
        &w,
        "classed",
        json!({"spec": {"loadBalancerClass": "example.com/other"}}),
    );
    expect_failure(&w, "classed", "class", "example.com/other");
    service(
        &w,
        "annotated",
        json!({"metadata": {"annotations": {"lb.paperlb.com/config-name": "missing"}}}),
    );
    expect_failure(&w, "annotated", "config", "paperlb-system/missing");
    service(
        &w,
        "local",
        json!({"spec": {"externalTrafficPolicy": "Local"}}),
    );
    expect_failure(&w, "local", "nodes", "2 without a ready endpoint");
    service(
        &w,
        "noports",
        json!({"spec": {"allocateLoadBalancerNodePorts": false}}),
    );
    expect_failure(&w, "noports", "nodeports", "allocateLoadBalancerNodePorts");
    service(
        &w,
        "asks",
        json!({"metadata": {"annotations": {"lb.paperlb.com/lb-ports": "http=8150"}}}),
    );
    holder(&w, "default", "other", 8150);
    expect_failure(&w, "asks", "ports", "held by LoadBalancer default/other");
    // The unbroken Service gets past all of these: no controller runs, so no LoadBalancer yet.
    service(&w, "plain", json!({}));
    expect_failure(&w, "plain", "loadbalancer", "no LoadBalancer default/plain");

    // Config problems affect every Service: one at a time.
    config(
        &w,
        json!({"spec": {"updaterTokenSecretRef": {"name": "updater-token"}}}),
    );
    let missing = "(Secret \"updater-token\", key \"token\"): no such Secret";
    expect_failure(&w, "plain", "secrets", missing);
    config(
        &w,
        json!({"spec": {"portRange": {"low": 9000, "high": 8000}}}),
    );
    expect_failure(&w, "plain", "config", "spec.portRange");
    config(
        &w,
        json!({"spec": {"portRange": {"low": 8150, "high": 8150}}}),
    );
    expect_failure(&w, "plain", "ports", "1/1 TCP used");
    config(&w, json!({}));
    w.config("second", true, 8200, 8299);
    expect_failure(&w, "plain", "config", "edge, second");
    w.api
        .delete("loadbalancerconfigs", "paperlb-system", "second")
        .expect("delete second");
    w.api
        .delete("loadbalancerconfigs", "paperlb-system", "edge")
        .expect("delete edge");
    expect_failure(&w, "plain", "config", "default: true");
    w.config("edge", true, 8100, 8199);

    w.exclude("node-a", true);
    w.exclude("node-b", true);
    expect_failure(&w, "plain", "nodes", "of 2 nodes, 2 excluded by label");
    // Every diagnosis stopped on the cluster side: no updater was called.
    assert_eq!(w.updater.calls(), vec![]);
}

#[test]
fn a_k3s_servicelb_daemonset_is_a_conflicting_controller() {
    let mut opts = FakeOptions::default();
    opts.namespaces.push("kube-system".into());
    let w = World::with_options("explain-svclb", opts);
    service(&w, "web", json!({}));
    let uid = w.svc("web").expect("service")["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = format!("svclb-web-{}", uid.get(..8).unwrap_or(&uid));
    w.api
        .create(
            "daemonsets",
            json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": name, "namespace": "kube-system", "labels": {
                    "svccontroller.k3s.cattle.io/svcname": "web",
                    "svccontroller.k3s.cattle.io/svcnamespace": "default"}},
                "spec": {},
            }),
        )
        .expect("create DaemonSet");
    expect_failure(&w, "web", "conflict", &name);
}

/// Points the config at `url`, starts the controller and waits until it has recorded the
/// LoadBalancer of Service `web`.
fn recorded(w: &World, url: &str) -> Controller {
    config(w, json!({"spec": {"httpUpdaterURL": url}}));
    service(w, "web", json!({}));
    let c = Controller::start(&w.kubeconfig);
    wait_for("the LoadBalancer's spec", || {
        w.lb("web")
            .is_some_and(|l| l["spec"]["ports"][0]["port"].is_u64())
    });
    c
}

#[test]
fn an_unreachable_updater_is_named() {
    let w = World::new("explain-unreachable");
    // A port nothing listens on.
    let port = free_port().expect("free port");
    let _c = recorded(&w, &format!("http://127.0.0.1:{port}"));
    expect_failure(&w, "web", "reachable", "does not answer");

    // An https updater whose CA Secret holds no certificate: no call can be made at all (the
    // controller's own check refuses the CA: UpdaterAuth=False, InvalidCA).
    w.secret("updater-ca", "ca.crt", "not a certificate");
    let https = format!("https://127.0.0.1:{port}");
    config(
        &w,
        json!({"spec": {"httpUpdaterURL": https, "updaterCASecretRef": {"name": "updater-ca"}}}),
    );
    wait_for("the LoadBalancer to follow the config", || {
        w.lb("web")
            .is_some_and(|l| l["spec"]["httpUpdater"]["url"] == https.as_str())
    });
    let ca = "spec.updaterCASecretRef (Secret \"updater-ca\", key \"ca.crt\")";
    let out = expect_failure(&w, "web", "secrets", ca);
    assert!(out.contains("PEM CA certificate"), "{out}");
}

/// A tiny updater stand-in: records POSTed backends and answers GET with them, every upstream
/// marked `healthy: <healthy>`; or, with `refuse`, answers everything 500 with a JSON `err`.
fn stub_updater(refuse: bool, healthy: bool) -> (Server, String) {
    let backends: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
    let handler = move |r: &Request| {
        if refuse {
            return Response::error(500, "nginx: [emerg] no space left on device");
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let mut b = backends.lock().expect("lock");
        match r.method.as_str() {
            "POST" => {
                let name = body["backendName"].as_str().unwrap_or("").to_string();
                b.insert(name, body);
                Response::json(200, &json!({"status": "applied"}))
            }
            "GET" => {
                let list: Vec<Value> = b
                    .values()
                    .map(|v| {
                        let mut v = v.clone();
                        if let Some(ups) = v["upstreamServers"].as_array_mut() {
                            for u in ups {
                                u["healthy"] = json!(healthy);
                            }
                        }
                        v
                    })
                    .collect();
                Response::json(200, &json!({"backends": list}))
            }
            _ => Response::error(405, "method not allowed"),
        }
    };
    let server = Server::bind("127.0.0.1:0", Limits::default(), None, handler);
    let server = server.expect("bind stub updater");
    let url = format!("http://{}", server.local_addr());
    (server, url)
}

#[test]
fn a_refusing_updater_is_quoted() {
    let w = World::new("explain-refusing");
    let (server, url) = stub_updater(true, true);
    let _c = recorded(&w, &url);
    expect_failure(
        &w,
        "web",
        "answering",
        "500: nginx: [emerg] no space left on device",
    );
    drop(server);
}

#[test]
fn unhealthy_upstreams_are_listed() {
    let w = World::new("explain-unhealthy");
    let (server, url) = stub_updater(false, false);
    let _c = recorded(&w, &url);
    wait_for("READY", || w.ready("web"));
    let np = w.node_port("web", 0);
    let out = expect_failure(
        &w,
        "web",
        "upstreams",
        &format!("default_web → 127.0.0.2:{np}"),
    );
    // The probe the updater runs (the default: kube-proxy's node check), not the nodePort.
    let (_, line) = failed(&out).expect("a ✗ line");
    assert!(
        line.contains("http://127.0.0.2:10256/healthz, http://127.0.0.3:10256/healthz"),
        "{out}"
    );
    let fix = out
        .lines()
        .find(|l| l.contains("fix: "))
        .unwrap_or_default();
    assert!(
        fix.contains("port 10256 is kube-proxy's health check"),
        "{out}"
    );
    assert!(
        fix.contains("spec.healthCheck of LoadBalancerConfig paperlb-system/edge"),
        "{out}"
    );
    drop(server);
}

/// The demo's setup (our updater over a real nginx, its default health check, nodes that serve
/// kube-proxy's `/healthz` as the demo's do): not served while no node answers the probe, and the
/// fix names the probed port and path; served, every step ✓, once they answer. The nodes sit on
/// their own addresses so a demo running meanwhile (on 127.0.0.2-3:10256) does not interfere.
#[test]
fn the_demo_setup_is_served_once_nodes_answer_kube_proxys_healthz() {
    let w = World::new("explain-demo");
    w.node("node-a", "127.0.0.42", true);
    w.node("node-b", "127.0.0.43", true);
    let host = LbHost::start();
    let _c = recorded(&w, &host.url());
    wait_for("READY", || w.ready("web"));
    let mut out = String::new();
    wait_for("the health checks to fail", || {
        out = explain(&w, "web", &[]).1;
        failed(&out).is_some_and(|(id, _)| id == "upstreams")
    });
    let (_, line) = failed(&out).expect("a ✗ line");
    assert!(line.contains("http://127.0.0.42:10256/healthz"), "{out}");
    assert!(out.contains("kube-proxy's health check"), "{out}");
    assert_eq!(explain(&w, "web", &[]).0, 1, "{out}");

    let _nodes = ["127.0.0.42", "127.0.0.43"].map(|ip| kube_proxy_healthz(ip).expect(ip));
    let mut code = -1;
    wait_for("served with healthy upstreams", || {
        (code, out) = explain(&w, "web", &[]);
        out.contains("✓ upstreams")
    });
    assert_eq!(code, 0, "{out}");
    assert!(failed(&out).is_none(), "{out}");
    assert!(out.contains("all 2 upstream(s) are healthy"), "{out}");
}

/// Against the Go nginx-lb-updater (no GET) a balance annotation is not served: the controller
/// pushes round robin and sets `Balancing=False`, `UpdaterWithoutBalance`; explain's ports step says
/// so and what to do, and the Service is served (READY decides for an updater without GET).
#[test]
fn against_the_go_updater_the_ports_step_says_the_balance_is_not_served() {
    let w = World::new("explain-go-balance");
    w.updater
        .go_like
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let balance = json!({"metadata": {"annotations": {"lb.paperlb.com/balance": "least-conn"}}});
    service(&w, "web", balance);
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "1s"]);
    wait_for("READY and Balancing=False UpdaterWithoutBalance", || {
        let lb = w.lb("web").unwrap_or_default();
        let conditions = lb["status"]["conditions"].as_array().cloned();
        w.ready("web")
            && conditions.into_iter().flatten().any(|c| {
                c["type"] == "Balancing"
                    && c["status"] == "False"
                    && c["reason"] == "UpdaterWithoutBalance"
            })
    });
    let (code, out) = explain(&w, "web", &[]);
    let ports = out
        .lines()
        .find(|l| l.starts_with("✓ ports"))
        .unwrap_or_default();
    assert!(
        ports.contains(
            "balance least-conn is not served (Balancing=False, UpdaterWithoutBalance): the updater \
             is the Go nginx-lb-updater, which serves round robin only; for least-conn run the \
             paperlb updater (paperlb nginx-updater) on the LB host, or drop the annotation \
             lb.paperlb.com/balance"
        ),
        "{out}"
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn an_updater_that_wants_a_token_the_config_does_not_name() {
    let w = World::new("explain-unauthorized");
    let host = LbHost::start_with_token(Some("s3cret-token"));
    let _c = recorded(&w, &format!("http://{}", host.addr()));
    let out = expect_failure(&w, "web", "authorized", "names none");
    assert!(!out.contains("s3cret-token"));
    // With the token in a referenced Secret, explain gets further, and never prints the token; the
    // controller sends that token, so the Service ends up served.
    w.secret("updater-token", "token", "s3cret-token");
    config(
        &w,
        json!({"spec": {"httpUpdaterURL": format!("http://{}", host.addr()),
                        "updaterTokenSecretRef": {"name": "updater-token"}}}),
    );
    wait_for("READY with the Secret's token", || w.ready("web"));
    let (_, out) = explain(&w, "web", &[]);
    assert!(out.contains("✓ authorized"), "{out}");
    assert!(failed(&out).is_none(), "{out}");
    assert!(!out.contains("s3cret-token"), "{out}");
}

#[test]
fn a_served_service_passes_then_drift_is_found() {
    let w = World::new("explain-served");
    let host = LbHost::start();
    let url = format!("http://{}", host.addr());
    let mut c = recorded(&w, &url);
    wait_for("READY", || w.ready("web"));
    let (code, out) = explain(&w, "web", &[]);
    assert_eq!(code, 0, "{out}");
    assert!(failed(&out).is_none(), "{out}");
    // Every step but `upstreams`: our updater does not report health yet (`?`).
    let passed = [
        "service",
        "class",
        "conflict",
        "config",
        "secrets",
        "nodeports",
        "nodes",
        "ports",
        "loadbalancer",
        "reachable",
        "authorized",
        "answering",
        "backend",
    ];
    for step in passed {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("✓ {step} "))),
            "no ✓ {step} in:\n{out}"
        );
    }
    assert!(out.contains("served on 1 of 1 host(s)"), "{out}");

    let (code, text) = explain(&w, "web", &["-o", "json"]);
    assert_eq!(code, 0, "{text}");
    check_schema(
        &serde_json::from_str(&text).expect("-o json prints JSON"),
        true,
    );

    // Drift, with the controller gone (so nothing repairs it meanwhile).
    c.kill();
    let client = UpdaterClient::new(
        &format!("{url}/api/v1/lb"),
        ClientAuth::default(),
        Timeouts::default(),
    )
    .expect("updater client");
    let np = w.node_port("web", 0) as u16;
    let port = w.lb_ports("web")[0].0 as u16;
    client
        .apply(&LbRequest {
            backend_name: "default_web".into(),
            lb_port: port,
            lb_protocol: "TCP".into(),
            upstream_servers: vec![Upstream {
                host: "127.0.0.2".into(),
                port: np,
                health: Default::default(),
            }],
            proxy_timeout_seconds: 0,
            proxy_connect_timeout_seconds: 0,
            traffic: Default::default(),
            owner: None,
        })
        .expect("hand-edit the backend");
    expect_failure(
        &w,
        "web",
        "backend",
        &format!("upstreams [127.0.0.2:{np}] (wanted [127.0.0.2:{np}, 127.0.0.3:{np}])"),
    );
    client.delete("default_web").expect("delete the backend");
    let out = expect_failure(&w, "web", "backend", "default_web");
    assert!(out.contains("is missing"), "{out}");
    let (code, text) = explain(&w, "web", &["-o", "json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&text).expect("JSON");
    check_schema(&v, false);
    let last = v["hosts"][0]["steps"]
        .as_array()
        .and_then(|s| s.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["id"], "backend");
    assert_eq!(last["status"], "fail");
    assert!(last["fix"].is_string());
}

/// The documented `-o json` schema (README, "paperlb explain"), version 1: every field, its type.
fn check_schema(v: &Value, served: bool) {
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    let strs = |names: &[&str]| -> Vec<String> {
        let mut k: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(v),
        strs(&[
            "kind",
            "version",
            "service",
            "served",
            "steps",
            "hosts",
            "events",
            "failedReads"
        ])
    );
    assert_eq!(v["kind"], "PaperlbExplanation");
    assert_eq!(v["version"], 1);
    assert_eq!(v["served"], served);
    assert_eq!(keys(&v["service"]), strs(&["namespace", "name"]));
    assert_eq!(v["service"]["name"], "web");
    let step = |s: &Value| {
        assert_eq!(keys(s), strs(&["id", "status", "message", "fix"]), "{s}");
        assert!(s["id"].is_string() && s["message"].is_string(), "{s}");
        assert!(
            ["ok", "fail", "unknown"].contains(&s["status"].as_str().unwrap_or("")),
            "{s}"
        );
        assert_eq!(s["fix"].is_string(), s["status"] == "fail", "{s}");
        assert!(s["fix"].is_string() || s["fix"].is_null(), "{s}");
    };
    let steps = v["steps"].as_array().expect("steps");
    assert!(!steps.is_empty());
    steps.iter().for_each(step);
    let hosts = v["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1);
    for h in hosts {
        assert_eq!(keys(h), strs(&["name", "host", "url", "served", "steps"]));
        assert!(h["name"].is_string() && h["host"].is_string() && h["url"].is_string());
        assert_eq!(h["served"], served);
        h["steps"]
            .as_array()
            .expect("host steps")
            .iter()
            .for_each(step);
    }
    let events = v["events"].as_array().expect("events");
    assert!(!events.is_empty(), "the controller's Events are shown");
    for e in events {
        assert_eq!(
            keys(e),
            strs(&[
                "object",
                "type",
                "reason",
                "message",
                "count",
                "lastTimestamp"
            ])
        );
        assert!(e["count"].is_u64() && e["reason"].is_string());
    }
    assert!(v["failedReads"].as_array().expect("failedReads").is_empty());
}

#[test]
fn a_forbidden_read_says_which_permission_and_goes_on() {
    let w = World::new("explain-rbac");
    service(&w, "web", json!({}));
    w.api.deny(ADMIN_USER, "list", "nodes");
    w.api.deny(ADMIN_USER, "list", "events");
    let (code, out) = explain(&w, "web", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("? nodes "), "{out}");
    assert!(out.contains("could not read:"), "{out}");
    assert!(out.contains("needs list nodes in all namespaces"), "{out}");
    assert!(
        out.contains("needs list events in namespace default"),
        "{out}"
    );
    // It went on past the unknown steps, to the missing LoadBalancer.
    assert_eq!(
        failed(&out).map(|f| f.0).as_deref(),
        Some("loadbalancer"),
        "{out}"
    );
    // Without the Service itself it cannot tell: `?`, exit 2.
    w.api.deny(ADMIN_USER, "get", "services");
    let (code, out) = explain(&w, "web", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("? service "), "{out}");
    assert!(failed(&out).is_none(), "{out}");
}

/// Runs the binary with `args`; returns the exit code, stdout and stderr.
fn paperlb(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paperlb"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run paperlb");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    let code = out.status.code().unwrap_or(-1);
    (code, text(&out.stdout), text(&out.stderr))
}

#[test]
fn an_unreachable_api_server_is_said_once_and_explain_exits_2() {
    let w = World::new("explain-no-apiserver");
    // The same kubeconfig, pointing at a loopback port nothing listens on.
    let port = free_port().expect("free port");
    let dead = format!("https://127.0.0.1:{port}");
    let text = std::fs::read_to_string(&w.kubeconfig).expect("read kubeconfig");
    assert!(text.contains(&w.api.url()), "{text}");
    let kc = w.kubeconfig.with_file_name("dead-kubeconfig");
    std::fs::write(&kc, text.replace(&w.api.url(), &dead)).expect("write kubeconfig");
    let kc = kc.to_str().expect("utf-8 path");
    let (code, out, err) = paperlb(&["explain", "default/web", "--kubeconfig", kc]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(
        err.matches("cannot reach the API server").count(),
        1,
        "{err}"
    );
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        !out.contains("could not read") && !err.contains("could not read"),
        "{out}{err}"
    );
    assert!(!out.contains("give this user"), "{out}");
    // check says the same, as a problem.
    let (code, out, err) = paperlb(&["check", "--kubeconfig", kc]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("PROBLEM: cannot reach the API server"),
        "{out}"
    );
    // Credentials the API server refuses: said once too, not as eight unreadable objects.
    let bad = w.kubeconfig.with_file_name("bad-token-kubeconfig");
    let token = w.api.admin_token();
    assert!(text.contains(&token));
    std::fs::write(&bad, text.replace(&token, "not-the-token")).expect("write kubeconfig");
    let bad = bad.to_str().expect("utf-8 path");
    let (code, out, err) = paperlb(&["explain", "default/web", "--kubeconfig", bad]);
    assert_eq!(code, 2, "{out}{err}");
    assert_eq!(err.matches("refused the credentials").count(), 1, "{err}");
    assert!(!out.contains("could not read"), "{out}");
    // No kubeconfig at all: could not tell either.
    let (code, _, err) = paperlb(&["explain", "default/web", "--kubeconfig", "/nonexistent/kc"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn exit_codes_version_and_usage_errors() {
    for flag in ["-V", "--version", "version"] {
        let (code, out, err) = paperlb(&[flag]);
        assert_eq!(code, 0, "{flag}: {err}");
        assert_eq!(out.trim(), format!("paperlb {}", env!("CARGO_PKG_VERSION")));
    }
    let (_, help, _) = paperlb(&["--help"]);
    assert!(help.contains("(also -V, --version)"), "{help}");
    for args in [
        &["nope"][..],
        &[],
        &["explain"],
        &["explain", "web"],
        &["explain", "a/b", "--nope"],
        &["check", "--nope"],
        &["check", "extra"],
        &["controller", "--nope"],
        &["nginx-updater", "--nope"],
    ] {
        let (code, out, err) = paperlb(args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(!err.trim().is_empty(), "{args:?}: says why on stderr");
    }
    for cmd in ["explain", "check"] {
        let (code, help, _) = paperlb(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(
            help.contains("2 "),
            "{cmd} --help documents its exit codes: {help}"
        );
    }
}

/// Runs `paperlb check`; returns the exit code and stdout.
fn check(w: &World) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paperlb"))
        .args(["check", "--kubeconfig"])
        .arg(&w.kubeconfig)
        .args(["--namespace", "paperlb-system"])
        .output()
        .expect("run paperlb check");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap_or(-1), stdout)
}

/// The lines of `check`'s output about config `name` (in `paperlb-system`).
fn lines_of<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let config = format!("paperlb-system/{name}");
    out.lines().filter(|l| l.contains(&config)).collect()
}

#[test]
fn check_reports_each_configs_host() {
    let w = World::new("explain-check");
    let host = LbHost::start();
    let url = format!("http://{}", host.addr());
    let _c = recorded(&w, &url);
    wait_for("READY", || w.ready("web"));
    let (code, out) = check(&w);
    assert_eq!(code, 0, "{out}");
    let want = format!(
        "LB host {LB_HOST} of LoadBalancerConfig paperlb-system/edge (updater {url}): reachable, authorized, version {}, free ports TCP 99/100, UDP 100/100 (8100-8199)",
        env!("CARGO_PKG_VERSION")
    );
    assert!(out.contains(&want), "{want:?} not in:\n{out}");

    // A second config whose updater wants a token it does not name, a third nobody answers for.
    let locked = LbHost::start_with_token(Some("other-token"));
    let port = free_port().expect("free port");
    for (name, url) in [
        ("locked", format!("http://{}", locked.addr())),
        ("gone", format!("http://127.0.0.1:{port}")),
    ] {
        w.api
            .apply(
                "loadbalancerconfigs",
                json!({
                    "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
                    "metadata": {"name": name, "namespace": "paperlb-system"},
                    "spec": {"httpUpdaterURL": url, "host": "127.0.0.11", "portRange": {"low": 9000, "high": 9009}},
                }),
            )
            .expect("apply config");
    }
    let (code, out) = check(&w);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&want), "{out}");
    let problems: Vec<&str> = out.lines().filter(|l| l.starts_with("PROBLEM: ")).collect();
    assert_eq!(problems.len(), 2, "{out}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("paperlb-system/locked") && p.contains("wants a token (401")),
        "{out}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("paperlb-system/gone") && p.contains("does not answer")),
        "{out}"
    );
    assert!(!out.contains("other-token"), "{out}");

    // Each host of a config is probed with its own credentials: `b` with its token, `a` without.
    w.secret("b-token", "token", "other-token");
    let b = json!({"name": "b", "host": "127.0.0.13", "httpUpdaterURL": format!("http://{}", locked.addr()),
                   "updaterTokenSecretRef": {"name": "b-token"}});
    w.api
        .apply(
            "loadbalancerconfigs",
            json!({
                "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
                "metadata": {"name": "pair", "namespace": "paperlb-system"},
                "spec": {"hosts": [{"name": "a", "host": "127.0.0.12", "httpUpdaterURL": url}, b],
                         "portRange": {"low": 9010, "high": 9019}},
            }),
        )
        .expect("apply config");
    let (code, out) = check(&w);
    assert_eq!(code, 2, "{out}");
    let pair = lines_of(&out, "pair");
    assert_eq!(pair.len(), 2, "{out}");
    assert!(
        pair.iter()
            .all(|l| !l.starts_with("PROBLEM: ") && l.contains("authorized")),
        "{out}"
    );

    // A token Secret that does not exist: the controller sends that host nothing, and neither
    // does check; its line says why, in the controller's words.
    w.api
        .apply(
            "loadbalancerconfigs",
            json!({
                "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
                "metadata": {"name": "lost", "namespace": "paperlb-system"},
                "spec": {"httpUpdaterURL": url, "host": "127.0.0.14", "portRange": {"low": 9020, "high": 9029},
                         "updaterTokenSecretRef": {"name": "no-such-secret"}},
            }),
        )
        .expect("apply config");
    let (code, out) = check(&w);
    assert_eq!(code, 2, "{out}");
    let lost = lines_of(&out, "lost");
    assert_eq!(lost.len(), 1, "{out}");
    assert!(
        lost[0].starts_with("PROBLEM: ")
            && lost[0].contains("cannot be called")
            && lost[0].contains("(Secret \"no-such-secret\", key \"token\"): no such Secret"),
        "{out}"
    );

    // Secrets check may not read (review of the explain merge: one unreadable Secret dropped every
    // host of the config): host `b` of pair, whose token is in one, is not called and says why;
    // host `a` names none and is checked as before. One line per host.
    w.api.deny(ADMIN_USER, "get", "secrets");
    let (code, out) = check(&w);
    assert_eq!(code, 2, "{out}");
    let pair = lines_of(&out, "pair");
    assert_eq!(pair.len(), 2, "{out}");
    assert!(
        !pair[0].starts_with("PROBLEM: ")
            && pair[0].contains("LB host a ")
            && pair[0].contains("authorized"),
        "{out}"
    );
    assert!(
        pair[1].starts_with("PROBLEM: LB host b ")
            && pair[1].contains("not called: cannot get secrets paperlb-system/b-token")
            && pair[1].contains("(needs get secrets in namespace paperlb-system)"),
        "{out}"
    );
}

#[test]
fn check_warns_and_exits_1_without_a_loadbalancerconfig() {
    let w = World::new("explain-check-noconfig");
    w.api
        .delete("loadbalancerconfigs", "paperlb-system", "edge")
        .expect("delete edge");
    let (code, out) = check(&w);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("WARNING: no LoadBalancerConfig in namespace paperlb-system: LoadBalancer Services stay pending until one is applied"),
        "{out}"
    );
    assert!(!out.contains("all checks passed"), "{out}");
    assert!(!out.contains("PROBLEM"), "{out}");
}

/// A config with `insecureSkipVerify: true` (no CA) and an HTTPS updater whose certificate no
/// system root signs: explain and check call it as the controller does, accepting its certificate.
#[test]
fn an_https_updater_the_config_skips_verifying_is_probed_as_the_controller_calls_it() {
    let (cert, key) = Ca::new().server_pem();
    let host = LbHost::start_tls((&cert, &key));
    let w = World::new("explain-insecure");
    config(
        &w,
        json!({"spec": {"httpUpdaterURL": host.url(), "insecureSkipVerify": true}}),
    );
    service(&w, "web", json!({}));
    let _c = Controller::start(&w.kubeconfig);
    wait_for("web READY over HTTPS", || w.ready("web"));
    let (code, out) = explain(&w, "web", &[]);
    assert!(failed(&out).is_none(), "{out}");
    assert_eq!(code, 0, "{out}");
    let (code, out) = check(&w);
    assert_eq!(code, 0, "{out}");
}
