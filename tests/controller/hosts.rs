//! Several LB hosts per config (issue 15), against the fake API server and two real LB hosts on
//! loopback (our updater in-process and a private nginx each, on their own `--lb-address`, so both
//! serve the same LB port): traffic flows through both; a host that dies leaves the ingress after
//! the grace (phase DEGRADED) while traffic flows through the other; it comes back with an empty
//! streams directory and is repaired; a host added gets every backend and a host removed loses
//! ours; a port held on one host is not allocated; a bad `hosts` list is refused on the config
//! and the Services keep what they had.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Controller, World, wait_for};
use crate::lbhost::LbHost;
use crate::support::backends::Backend;

const H1: &str = "127.0.0.4";
const H2: &str = "127.0.0.5";
/// Short, so the tests wait seconds; the probe runs every second (grace/6, at least 1 s).
const GRACE: &str = "--host-failure-grace=3s";

fn host_entry(name: &str, addr: &str, h: &LbHost) -> Value {
    json!({"name": name, "host": addr, "httpUpdaterURL": format!("{}/api/v1/lb", h.url())})
}

/// Points the default config `edge` at these hosts (no health checks: the nodes serve none).
fn hosts_config(w: &World, hosts: Vec<Value>, (low, high): (u16, u16)) {
    let obj = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "hosts": hosts, "portRange": {"low": low, "high": high},
            "healthCheck": {"type": "none"}, "host": null, "httpUpdaterURL": null}});
    w.api
        .apply("loadbalancerconfigs", obj)
        .expect("apply config");
}

fn ingress_ips(w: &World, name: &str) -> Vec<String> {
    w.svc(name)
        .and_then(|s| s["status"]["loadBalancer"]["ingress"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["ip"].as_str().map(String::from))
        .collect()
}

fn phase(w: &World, name: &str) -> String {
    w.lb(name)
        .and_then(|lb| lb["status"]["phase"].as_str().map(String::from))
        .unwrap_or_default()
}

fn host_condition(w: &World, name: &str, host: &str) -> Option<(String, String)> {
    let lb = w.lb(name)?;
    let c = lb["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == format!("Host-{host}"))?
        .clone();
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
    ))
}

fn lb_port(w: &World, name: &str) -> u16 {
    crate::lbhost::lb_port(w, name)
}

/// A Service with one TCP port and a backend on each node at its nodePort.
fn web(w: &World, name: &str) -> (Backend, Backend) {
    w.service(name, &[("http", 80, "TCP")]);
    wait_for("a nodePort", || w.node_port(name, 0) > 0);
    let np = u16::try_from(w.node_port(name, 0)).expect("nodePort");
    (
        Backend::tcp_on("127.0.0.2", np, "node-a"),
        Backend::tcp_on("127.0.0.3", np, "node-b"),
    )
}

fn config_accepted(w: &World) -> Option<(String, String)> {
    let cfg = w
        .api
        .get("loadbalancerconfigs", "paperlb-system", "edge")
        .ok()?;
    let c = cfg["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Accepted")?
        .clone();
    (cfg["status"]["observedGeneration"] == cfg["metadata"]["generation"]).then(|| {
        (
            c["status"].as_str().unwrap_or("").to_string(),
            c["message"].as_str().unwrap_or("").to_string(),
        )
    })
}

#[test]
fn two_hosts_serve_one_dies_and_leaves_the_ingress_then_comes_back_repaired() {
    let w = World::new("two-hosts");
    let h1 = LbHost::start_on(H1);
    let h2 = LbHost::start_on(H2);
    let h2_listen = h2.addr().to_string();
    hosts_config(
        &w,
        vec![host_entry("lb-1", H1, &h1), host_entry("lb-2", H2, &h2)],
        (9300, 9309),
    );
    let _c = Controller::start_with(&w.kubeconfig, &[GRACE, "--updater-resync=0"]);
    let _nodes = web(&w, "web");
    wait_for("web served on both hosts", || {
        phase(&w, "web") == "READY" && ingress_ips(&w, "web") == [H1, H2]
    });
    let port = lb_port(&w, "web");
    wait_for("traffic through both hosts", || {
        h1.serves(port) && h2.serves(port)
    });
    let lb = w.lb("web").expect("lb");
    assert_eq!(lb["status"]["hosts"], json!("2/2"));
    assert_eq!(lb["spec"]["host"], json!(H1));
    assert_eq!(host_condition(&w, "web", "lb-1").unwrap().0, "True");
    assert_eq!(host_condition(&w, "web", "lb-2").unwrap().0, "True");

    // Host 2 dies (its updater and nginx): after the grace it leaves the ingress.
    let died = Instant::now();
    drop(h2);
    wait_for("web DEGRADED with only host 1 in the ingress", || {
        phase(&w, "web") == "DEGRADED" && ingress_ips(&w, "web") == [H1]
    });
    // Not before the grace (measured from its last good answer, at most a probe before).
    assert!(
        died.elapsed() >= Duration::from_secs(1),
        "{:?}",
        died.elapsed()
    );
    assert_eq!(
        host_condition(&w, "web", "lb-2"),
        Some(("False".into(), "Unreachable".into()))
    );
    assert!(h1.serves(port), "host 1 still serves");

    // Host 2 comes back where it was, with an empty streams directory: repaired, both in the
    // ingress again.
    let h2 = LbHost::start_at(&h2_listen, None, Some(H2));
    assert!(h2.names(None).is_empty());
    wait_for("web READY on both hosts again", || {
        phase(&w, "web") == "READY" && ingress_ips(&w, "web") == [H1, H2]
    });
    wait_for("host 2 serves again", || h2.serves(port));
    assert_eq!(h2.names(None), ["default_web"]);
    assert_eq!(host_condition(&w, "web", "lb-2").unwrap().0, "True");
}

#[test]
fn a_host_added_gets_every_backend_and_a_host_removed_loses_ours() {
    let w = World::new("add-remove-host");
    let h1 = LbHost::start_on(H1);
    let h2 = LbHost::start_on(H2);
    hosts_config(&w, vec![host_entry("lb-1", H1, &h1)], (9310, 9319));
    let _c = Controller::start_with(&w.kubeconfig, &[GRACE]);
    let _a = web(&w, "a");
    let _b = web(&w, "b");
    wait_for("a and b on host 1", || {
        ingress_ips(&w, "a") == [H1] && ingress_ips(&w, "b") == [H1] && phase(&w, "b") == "READY"
    });
    assert!(h2.names(None).is_empty());
    let h1_posts = h1.requests("POST");
    // Added: host 2 gets both backends, and host 1 (which holds them) no call.
    hosts_config(
        &w,
        vec![host_entry("lb-1", H1, &h1), host_entry("lb-2", H2, &h2)],
        (9310, 9319),
    );
    wait_for("a and b on both hosts", || {
        ingress_ips(&w, "a") == [H1, H2] && ingress_ips(&w, "b") == [H1, H2]
    });
    assert_eq!(h2.names(None), ["default_a", "default_b"]);
    assert_eq!(
        h1.requests("POST"),
        h1_posts,
        "one POST per port to the new host only"
    );
    let (pa, pb) = (lb_port(&w, "a"), lb_port(&w, "b"));
    wait_for("traffic through host 2", || h2.serves(pa) && h2.serves(pb));
    // Removed: host 1 loses our backends; host 2 keeps serving.
    hosts_config(&w, vec![host_entry("lb-2", H2, &h2)], (9310, 9319));
    wait_for("a and b on host 2 only, nothing left on host 1", || {
        ingress_ips(&w, "a") == [H2] && ingress_ips(&w, "b") == [H2] && h1.names(None).is_empty()
    });
    assert!(h2.serves(pa) && h2.serves(pb));
    assert!(host_condition(&w, "a", "lb-1").is_none());
    // Removing a host that cannot be reached blocks nothing: it is only logged.
    let h3 = LbHost::start_on("127.0.0.6");
    hosts_config(
        &w,
        vec![
            host_entry("lb-2", H2, &h2),
            host_entry("lb-3", "127.0.0.6", &h3),
        ],
        (9310, 9319),
    );
    wait_for("a on hosts 2 and 3", || {
        ingress_ips(&w, "a") == [H2, "127.0.0.6"]
    });
    drop(h3);
    hosts_config(&w, vec![host_entry("lb-2", H2, &h2)], (9310, 9319));
    wait_for("a and b on host 2 only again", || {
        ingress_ips(&w, "a") == [H2] && ingress_ips(&w, "b") == [H2] && phase(&w, "a") == "READY"
    });
}

#[test]
fn a_port_held_on_one_host_is_not_allocated_and_bad_host_lists_are_refused() {
    let w = World::new("hosts-ports");
    let h1 = LbHost::start_on(H1);
    let h2 = LbHost::start_on(H2);
    // A single-host config on host 2's address holds the first port of the range there.
    let solo = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "solo", "namespace": "paperlb-system"},
        "spec": {"host": H2, "httpUpdaterURL": h2.url(), "portRange": {"low": 9320, "high": 9320},
            "healthCheck": {"type": "none"}}});
    w.api.apply("loadbalancerconfigs", solo).expect("solo");
    hosts_config(
        &w,
        vec![host_entry("lb-1", H1, &h1), host_entry("lb-2", H2, &h2)],
        (9320, 9329),
    );
    let _c = Controller::start_with(&w.kubeconfig, &[GRACE]);
    w.service("first", &[("dns", 53, "TCP")]);
    let mut svc = w.svc("first").expect("first");
    svc["metadata"]["annotations"] = json!({"lb.paperlb.com/config-name": "solo"});
    w.api.apply("services", svc).expect("annotate");
    wait_for("first holds 9320 on host 2", || {
        w.lb("first")
            .is_some_and(|lb| lb["spec"]["port"] == 9320 && lb["status"]["phase"] == "READY")
    });
    let _nodes = web(&w, "web");
    wait_for("web on both hosts", || ingress_ips(&w, "web") == [H1, H2]);
    assert_eq!(
        lb_port(&w, "web"),
        9321,
        "9320 is free on host 1 but not on host 2"
    );

    // Bad host lists: the config says which field; web keeps its ingress and backends.
    let generation_before = w.lb("web").expect("lb")["metadata"]["generation"].clone();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([host_entry("lb-1", H1, &h1), host_entry("lb-1", H2, &h2)]),
            "spec.hosts[1].name",
        ),
        (
            json!([host_entry("lb-1", H1, &h1), host_entry("lb-2", H1, &h1)]),
            "spec.hosts[1].httpUpdaterURL",
        ),
        (json!([]), "spec.hosts: is empty"),
        (
            Value::Array(
                (0..100)
                    .map(|i| {
                        json!({"name": format!("h{i}"), "host": H1,
                            "httpUpdaterURL": format!("http://127.0.0.1:{}", 20000 + i)})
                    })
                    .collect(),
            ),
            "at most 16",
        ),
    ];
    for (hosts, field) in cases {
        hosts_config_raw(&w, json!({"hosts": hosts}));
        wait_for(&format!("config refused naming {field}"), || {
            config_accepted(&w).is_some_and(|(s, m)| s == "False" && m.contains(field))
        });
    }
    hosts_config_raw(
        &w,
        json!({"hosts": [host_entry("lb-1", H1, &h1)], "host": H1}),
    );
    wait_for("both forms refused", || {
        config_accepted(&w).is_some_and(|(s, m)| s == "False" && m.contains("give one form"))
    });
    assert_eq!(ingress_ips(&w, "web"), [H1, H2]);
    assert_eq!(
        w.lb("web").expect("lb")["metadata"]["generation"],
        generation_before
    );
    assert_eq!(h1.names(None), ["default_web"]);
    assert_eq!(h2.names(None), ["default_first", "default_web"]);
}

/// The config `edge` with this spec (and the range and no health checks).
fn hosts_config_raw(w: &World, spec: Value) {
    // A merge patch: the Go fields the harness's config had are removed unless given.
    let mut full = json!({"default": true, "portRange": {"low": 9320, "high": 9329},
        "healthCheck": {"type": "none"}, "host": null, "httpUpdaterURL": null});
    if let Some(o) = spec.as_object() {
        for (k, v) in o {
            full[k] = v.clone();
        }
    }
    let obj = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"}, "spec": full});
    w.api
        .apply("loadbalancerconfigs", obj)
        .expect("apply config");
}
