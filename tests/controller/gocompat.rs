//! Go PaperLB users' YAML, verbatim: the Go project's own example config and Service
//! (tests/fixtures/go-paperlb, see its SOURCE.md) against the fake API server, our updater and a
//! real nginx, with real traffic. Both spellings of `httpUpdaterURL` (the Go one ending in
//! `/api/v1/lb`, and a bare `http://host:port`) must serve, and the updater must never see a 404.

use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::{LbHost, lb_port, serves};
use crate::support::backends::Backend;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/go-paperlb");
/// The Go author's LB host in the fixtures; replaced in memory before anything is applied.
const GO_HOST: &str = "192.168.64.1";

/// A fixture document as JSON, with the Go author's address replaced: `updater` for the updater's
/// `host:3000`, LB_HOST for the bare host.
fn fixture(file: &str, updater: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{file}")).expect("read fixture");
    let text = text
        .replace(&format!("{GO_HOST}:3000"), updater)
        .replace(GO_HOST, LB_HOST);
    assert!(!text.contains("192.168."), "every Go address is replaced");
    paperlb::kube::yaml::parse(&text).expect("fixture is YAML")
}

/// A world whose only config is the Go example's (the harness's own default config removed, or
/// there would be two defaults).
fn go_world(tag: &str) -> World {
    let w = World::new(tag);
    w.api
        .delete("loadbalancerconfigs", "paperlb-system", "edge")
        .expect("remove the harness config");
    w
}

const SVC: &str = "k8s-pod-info-api-service";

/// The example's port range is fixed (8100-8200) and nginx binds it on all addresses: the tests
/// that use it take turns.
static EXAMPLE_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn example_ports() -> std::sync::MutexGuard<'static, ()> {
    EXAMPLE_PORTS.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn go_readme_example_is_ready_and_serves_in_both_url_forms() {
    // One form after the other: both use the example's port range 8100-8200 on this machine.
    let _turn = example_ports();
    for (form, path) in [("go", "/api/v1/lb"), ("bare", "")] {
        let host = LbHost::start();
        let w = go_world(&format!("gocompat-{form}"));
        let mut config = fixture("load_balancer_config.yaml", &host.addr().to_string());
        let url = config["spec"]["httpUpdaterURL"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if path.is_empty() {
            config["spec"]["httpUpdaterURL"] = json!(url.trim_end_matches("/api/v1/lb"));
        }
        assert_eq!(
            config["spec"]["httpUpdaterURL"],
            json!(format!("http://{}{path}", host.addr())),
            "{form} form"
        );
        w.api
            .create("loadbalancerconfigs", config)
            .expect("apply config");
        w.api
            .create("services", fixture("service.yaml", ""))
            .expect("apply service");
        let np = u16::try_from(w.node_port(SVC, 0)).expect("nodePort");
        assert!(np > 0, "the apiserver allocated a nodePort");
        let _a = Backend::tcp_on("127.0.0.2", np, "node-a");
        let _b = Backend::tcp_on("127.0.0.3", np, "node-b");
        let mut c = Controller::start(&w.kubeconfig);
        wait_for(&format!("{form} form READY"), || w.ready(SVC));
        let lb = w.lb(SVC).expect("LoadBalancer");
        assert_eq!(
            lb["spec"]["httpUpdater"]["url"],
            json!(format!("http://{}{path}", host.addr()))
        );
        assert_eq!(lb["spec"]["configName"], json!("default-lb-config"));
        let port = lb_port(&w, SVC);
        assert!((8100..=8200).contains(&port), "{port}");
        wait_for(&format!("{form} form traffic"), || serves(port));
        assert_eq!(host.names(None), ["default_k8s-pod-info-api-service"]);
        assert_eq!(host.requests_with_code(404), 0, "{form} form");
        // Deleting the Service releases the port: the finalizer's DELETE goes to the same endpoint.
        w.api
            .delete("services", "default", SVC)
            .expect("delete service");
        wait_for(&format!("{form} form cleanup"), || w.lb(SVC).is_none());
        assert!(host.names(None).is_empty());
        assert_eq!(host.requests_with_code(404), 0, "{form} form");
        assert_eq!(c.terminate(), Some(0));
    }
}

/// A LoadBalancer left by the previous version for a Go-form config: its POST went to
/// `/api/v1/lb/api/v1/lb`, was refused, and the backend was recorded as perhaps written. The new
/// controller pushes it once to the right endpoint; re-spelling the URL to the bare form then
/// pushes again and deletes nothing. At every step the updater holds exactly one backend.
#[test]
fn lb_left_by_the_old_resolution_converges_with_no_orphan_or_duplicate() {
    let _turn = example_ports();
    let host = LbHost::start();
    let w = go_world("gocompat-upgrade");
    let go_url = format!("http://{}/api/v1/lb", host.addr());
    w.api
        .create(
            "loadbalancerconfigs",
            fixture("load_balancer_config.yaml", &host.addr().to_string()),
        )
        .expect("apply config");
    let svc = w
        .api
        .create("services", fixture("service.yaml", ""))
        .expect("apply service");
    let uid = svc["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let np = w.node_port(SVC, 0);
    let _a = Backend::tcp_on("127.0.0.2", np as u16, "node-a");
    let _b = Backend::tcp_on("127.0.0.3", np as u16, "node-b");
    let targets = json!([{"host": "127.0.0.2", "port": np}, {"host": "127.0.0.3", "port": np}]);
    let old = w
        .api
        .create(
            "loadbalancers",
            json!({
                "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancer",
                "metadata": {"name": SVC, "namespace": "default", "finalizers": ["lb.paperlb.com/lb-finalizer"],
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": SVC, "uid": uid, "controller": true}]},
                "spec": {"configName": "default-lb-config", "httpUpdater": {"url": go_url}, "host": LB_HOST,
                    "port": 8100, "protocol": "TCP", "targets": targets,
                    "ports": [{"name": "", "port": 8100, "protocol": "TCP", "nodePort": np, "targets": targets}]},
            }),
        )
        .expect("create old LoadBalancer");
    let mut old = old;
    old["status"] = json!({
        "phase": "ERROR", "targetCount": 2, "observedGeneration": old["metadata"]["generation"],
        "applied": [{"backendName": "default_k8s-pod-info-api-service", "url": go_url, "host": LB_HOST,
                     "port": 8100, "protocol": "TCP"}],
        "conditions": [{"type": "Ready", "status": "False", "reason": "UpdaterFailed",
            "message": "updater answered 404: no route for /api/v1/lb/api/v1/lb",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    });
    w.api
        .update_status("loadbalancers", old)
        .expect("old status");
    let mut c = Controller::start(&w.kubeconfig);
    wait_for("upgraded LoadBalancer READY", || w.ready(SVC));
    wait_for("traffic after the upgrade", || serves(8100));
    assert_eq!(host.names(None), ["default_k8s-pod-info-api-service"]);
    assert_eq!(host.applies("applied"), 1, "pushed once");

    let mut bare = fixture("load_balancer_config.yaml", &host.addr().to_string());
    bare["spec"]["httpUpdaterURL"] = json!(format!("http://{}", host.addr()));
    w.api
        .apply("loadbalancerconfigs", bare)
        .expect("re-spell the URL");
    wait_for("the LoadBalancer records the new spelling", || {
        w.lb(SVC).is_some_and(|lb| {
            lb["spec"]["httpUpdater"]["url"] == json!(format!("http://{}", host.addr()))
        }) && w.ready(SVC)
    });
    assert_eq!(host.names(None), ["default_k8s-pod-info-api-service"]);
    assert_eq!(
        host.applies("deleted"),
        0,
        "nothing deleted on the same updater"
    );
    assert!(serves(8100));
    assert_eq!(host.requests_with_code(404), 0);
    assert_eq!(c.terminate(), Some(0));
}

/// The verdict on a config is on the config: accepted with the endpoint it resolves to, or refused
/// naming the field (a query string here, which may hold a secret: it is not echoed), with a
/// Warning Event; the Services of a refused config get nothing pushed.
#[test]
fn config_verdict_is_a_condition_on_the_config() {
    let w = World::new("gocompat-verdict");
    let accepted = |w: &World| {
        w.api
            .get("loadbalancerconfigs", "paperlb-system", "edge")
            .ok()
            .and_then(|c| {
                let cs = c["status"]["conditions"].as_array()?.clone();
                cs.into_iter().find(|c| c["type"] == "Accepted")
            })
    };
    let mut c = Controller::start(&w.kubeconfig);
    wait_for("Accepted=True", || {
        accepted(&w).is_some_and(|c| c["status"] == "True")
    });
    let cond = accepted(&w).unwrap_or_default();
    assert_eq!(
        cond["message"],
        json!(format!(
            "updater endpoint {}/api/v1/lb; ports 8100-8199 on {LB_HOST}",
            w.updater.url
        ))
    );
    let mut cfg = w
        .api
        .get("loadbalancerconfigs", "paperlb-system", "edge")
        .expect("config");
    cfg["spec"]["httpUpdaterURL"] = json!(format!("{}/api/v1/lb?token=s3cret", w.updater.url));
    w.api
        .update("loadbalancerconfigs", cfg)
        .expect("break the config");
    w.service("web", &[("http", 80, "TCP")]);
    wait_for("Accepted=False", || {
        accepted(&w).is_some_and(|c| c["status"] == "False")
    });
    let cond = accepted(&w).unwrap_or_default();
    let msg = cond["message"].as_str().unwrap_or("");
    assert_eq!(cond["reason"], "InvalidConfig");
    assert!(
        msg.contains("spec.httpUpdaterURL") && msg.contains("query string"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
    wait_for("a Warning Event on the config", || {
        w.api.list("events", "paperlb-system").iter().any(|e| {
            e["involvedObject"]["kind"] == "LoadBalancerConfig"
                && e["type"] == "Warning"
                && e["reason"] == "InvalidConfig"
                && !e["message"].as_str().unwrap_or("").contains("s3cret")
        })
    });
    assert!(
        w.updater.posts().is_empty(),
        "nothing pushed for a refused config"
    );
    assert_eq!(c.terminate(), Some(0));
}

/// The Go README's optional annotation, uncommented as its Service example suggests, picks the
/// named config over the default one.
#[test]
fn go_config_name_annotation_picks_the_named_config() {
    let w = World::new("gocompat-annotation");
    let text = std::fs::read_to_string(format!("{FIXTURES}/service.yaml")).expect("fixture");
    let annotated = text.replace("  #annotations:", "  annotations:").replace(
        "  #  lb.paperlb.com/config-name:",
        "    lb.paperlb.com/config-name:",
    );
    assert_ne!(
        annotated, text,
        "the Go example carries the annotation, commented out"
    );
    let svc = paperlb::kube::yaml::parse(&annotated).expect("YAML");
    assert_eq!(
        svc["metadata"]["annotations"]["lb.paperlb.com/config-name"],
        "my-special-config"
    );
    w.api
        .create(
            "loadbalancerconfigs",
            json!({
                "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
                "metadata": {"name": "my-special-config", "namespace": "paperlb-system"},
                "spec": {"httpUpdaterURL": format!("{}/api/v1/lb", w.updater.url), "host": LB_HOST,
                         "portRange": {"low": 9100, "high": 9110}},
            }),
        )
        .expect("special config");
    w.api.create("services", svc).expect("service");
    let mut c = Controller::start(&w.kubeconfig);
    wait_for("READY on the named config", || w.ready(SVC));
    let lb = w.lb(SVC).expect("LoadBalancer");
    assert_eq!(lb["spec"]["configName"], "my-special-config");
    assert_eq!(lb["spec"]["port"], 9100);
    let posts = w.updater.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["lbPort"], 9100);
    assert_eq!(posts[0]["backendName"], "default_k8s-pod-info-api-service");
    assert_eq!(c.terminate(), Some(0));
}

/// Before and after the controller's redesign (issue 21): the Go README's config and Service,
/// verbatim, give the updater exactly these request bytes and the API exactly these writes, one
/// each (times, uids and the updater's port masked).
#[test]
fn go_readme_example_sends_exact_updater_bodies_and_api_writes() {
    let _turn = example_ports();
    let w = go_world("gocompat-exact");
    let updater = w.updater.url.trim_start_matches("http://").to_string();
    w.api
        .create(
            "loadbalancerconfigs",
            fixture("load_balancer_config.yaml", &updater),
        )
        .expect("apply config");
    let svc = w
        .api
        .create("services", fixture("service.yaml", ""))
        .expect("apply service");
    let np = w.node_port(SVC, 0);
    let mut c = Controller::start(&w.kubeconfig);
    wait_for("READY", || w.ready(SVC));
    wait_for("the config's verdict and the Event", || {
        let cfg = w
            .api
            .get("loadbalancerconfigs", "paperlb-system", "default-lb-config")
            .unwrap_or_default();
        cfg["status"]["conditions"][0]["type"] == "Accepted"
            && !w.api.list("events", "default").is_empty()
    });
    assert_eq!(c.terminate(), Some(0));

    let calls = w.updater.calls();
    let raw: Vec<(&str, Option<&str>, String)> = calls
        .iter()
        .map(|c| (c.method.as_str(), c.content_type.as_deref(), c.raw.clone()))
        .collect();
    let body = format!(
        concat!(
            r#"{{"backendName":"default_k8s-pod-info-api-service","lbPort":8100,"lbProtocol":"TCP","#,
            r#""upstreamServers":[{{"host":"127.0.0.2","port":{np}}},{{"host":"127.0.0.3","port":{np}}}],"#,
            r#""proxyTimeoutSeconds":0,"proxyConnectTimeoutSeconds":0,"owner":"paperlb","#,
            r#""healthCheck":{{"type":"http","port":10256,"path":"/healthz"}}}}"#
        ),
        np = np
    );
    assert_eq!(raw, [("POST", Some("application/json"), body)]);

    // Every write the controller sent, in a stable order, with what varies from run to run masked.
    let url = format!("{}/api/v1/lb", w.updater.url);
    let mut writes: Vec<(String, String, u16, Value)> = w
        .api
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            let mut body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            mask(&mut body, &url);
            (r.method, r.path, r.status, body)
        })
        .collect();
    writes.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let uid = svc["metadata"]["uid"].clone();
    let targets = json!([{"host": "127.0.0.2", "port": np}, {"host": "127.0.0.3", "port": np}]);
    let applied = "updater URL serves 8100/TCP on 127.0.0.10 with 2 target(s)";
    // LoadBalancer writes are strict (a field an older CRD lacks is refused, not dropped).
    let lbs =
        "/apis/lb.paperlb.com/v1alpha1/namespaces/default/loadbalancers?fieldValidation=Strict";
    let expected: Vec<(String, String, u16, Value)> = vec![
        (
            "PATCH".into(),
            "/api/v1/namespaces/default/services/k8s-pod-info-api-service/status".into(),
            200,
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.10", "ipMode": "Proxy",
                "ports": [{"port": 8100, "protocol": "TCP"}]}]}}}),
        ),
        (
            "PATCH".into(),
            "/apis/lb.paperlb.com/v1alpha1/namespaces/default/loadbalancers/k8s-pod-info-api-service/status".into(),
            200,
            json!({"status": {
                "applied": [{"backendName": "default_k8s-pod-info-api-service", "host": "127.0.0.10",
                    "port": 8100, "protocol": "TCP", "url": "URL"}],
                "conditions": [
                    {"lastTransitionTime": "TIME", "message": applied, "observedGeneration": 1,
                        "reason": "Applied", "status": "True", "type": "Ready"},
                    {"lastTransitionTime": "TIME", "message": "", "observedGeneration": 1,
                        "reason": "Reconciled", "status": "True", "type": "Reconciled"}],
                "healthy": "2/2", "hosts": null, "observedGeneration": 1, "phase": "READY",
                "ports": [{"name": "", "port": 8100, "protocol": "TCP", "ready": 2, "total": 2}],
                "targetCount": 2}}),
        ),
        (
            "PATCH".into(),
            "/apis/lb.paperlb.com/v1alpha1/namespaces/paperlb-system/loadbalancerconfigs/default-lb-config/status".into(),
            200,
            json!({"status": {"conditions": [{"lastTransitionTime": "TIME",
                "message": "updater endpoint URL; ports 8100-8200 on 127.0.0.10", "observedGeneration": 1,
                "reason": "Valid", "status": "True", "type": "Accepted"}], "observedGeneration": 1}}),
        ),
        (
            "POST".into(),
            "/api/v1/namespaces/default/events".into(),
            201,
            json!({"metadata": {"name": "EVENT", "namespace": "default"},
                "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": "default",
                    "name": SVC, "uid": uid},
                "reason": "UpdaterApplied", "message": applied, "type": "Normal",
                "source": {"component": "paperlb"},
                "firstTimestamp": "TIME", "lastTimestamp": "TIME", "count": 1}),
        ),
        (
            "POST".into(),
            lbs.into(),
            201,
            json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancer",
                "metadata": {"finalizers": ["lb.paperlb.com/lb-finalizer"], "name": SVC, "namespace": "default",
                    "ownerReferences": [{"apiVersion": "v1", "controller": true, "kind": "Service",
                        "name": SVC, "uid": uid}]},
                // The Go fields are what they were; of the others only what is set (a strict
                // create under an older CRD refuses a field it lacks even when null or default).
                "spec": {"configName": "default-lb-config",
                    "healthCheck": {"path": "/healthz", "port": 10256, "type": "http"},
                    "host": "127.0.0.10", "httpUpdater": {"url": "URL"}, "port": 8100,
                    // The first port's targets are the Go field `targets` (written once).
                    "ports": [{"name": "", "nodePort": np, "port": 8100, "protocol": "TCP"}],
                    "protocol": "TCP", "targets": targets}}),
        ),
    ];
    assert_eq!(writes.len(), 5, "five API writes: {writes:#?}");
    for (got, want) in writes.iter().zip(&expected) {
        assert_eq!(got, want);
    }
}

/// Masks what differs between runs: times, the Event's name, and the updater's URL.
fn mask(v: &mut Value, url: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), &x) {
                    (
                        "lastTransitionTime" | "firstTimestamp" | "lastTimestamp",
                        Value::String(_),
                    ) => *x = json!("TIME"),
                    ("name", Value::String(s)) if s.starts_with(&format!("{SVC}.")) => {
                        *x = json!("EVENT")
                    }
                    _ => mask(x, url),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask(x, url)),
        Value::String(s) if s.contains(url) => *s = s.replace(url, "URL"),
        _ => {}
    }
}
