//! Issue 24, item 3 end to end: an IPv6 LB host (updater at `http://[::1]:PORT`, `--lb-address
//! ::1`, config host `::1`), nodes with IPv4 and IPv6 InternalIPs, and Services whose
//! `spec.ipFamilies` pick the family pushed.
//! ::1 is the only IPv6 loopback address, so one node has it; the NodePort is the same on every
//! node, so its IPv4 and IPv6 upstreams are distinct sockets. Real traffic through nginx.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::{Controller, World, wait_for};
use crate::lbhost::{LbHost, lb_port};
use crate::support::backends::Backend;

/// node-b: InternalIPs 127.0.0.3 and, with `v6`, ::1.
fn node_b(w: &World, v6: bool) {
    let mut node = w.api.get("nodes", "", "node-b").expect("node-b");
    let mut addresses = vec![json!({"type": "InternalIP", "address": "127.0.0.3"})];
    if v6 {
        addresses.push(json!({"type": "InternalIP", "address": "::1"}));
    }
    node["status"]["addresses"] = json!(addresses);
    w.api.update_status("nodes", node).expect("node-b status");
}

fn service(w: &World, name: &str, families: &[&str], policy: &str) {
    let obj = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
            "ipFamilies": families, "ipFamilyPolicy": policy,
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}]}});
    w.api.apply("services", obj).expect("service");
}

/// The upstreams answering 9 connections through the LB host.
fn answers(host: &LbHost, port: u16) -> BTreeSet<String> {
    (0..9).filter_map(|_| host.ident(port)).collect()
}

fn set(idents: &[&str]) -> BTreeSet<String> {
    idents.iter().map(|s| s.to_string()).collect()
}

fn condition(w: &World, name: &str, type_: &str) -> Option<Value> {
    let lb = w.lb(name)?;
    let cs = lb["status"]["conditions"].as_array()?;
    cs.iter().find(|c| c["type"] == type_).cloned()
}

fn ready(w: &World, name: &str) -> Option<Value> {
    condition(w, name, "Ready")
}

#[test]
fn dual_stack_and_ipv6_services_are_served_through_an_ipv6_lb_host() {
    // The updater too is reached over IPv6: httpUpdaterURL http://[::1]:PORT.
    let host = LbHost::start_at("[::1]:0", None, Some("::1"));
    assert!(host.url().starts_with("http://[::1]:"), "{}", host.url());
    let w = World::new("ipv6");
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": host.url(), "host": "::1",
            "portRange": {"low": 8720, "high": 8729}, "healthCheck": {"type": "none"}}});
    w.api.apply("loadbalancerconfigs", cfg).expect("config");
    node_b(&w, true);
    service(&w, "dual", &["IPv4", "IPv6"], "RequireDualStack");
    service(&w, "six", &["IPv6"], "SingleStack");
    service(&w, "four", &["IPv4"], "SingleStack");
    // Each node answers on its NodePort in each family it has.
    let mut backends = Vec::new();
    for name in ["dual", "six", "four"] {
        let np = u16::try_from(w.node_port(name, 0)).expect("nodePort");
        backends.push(Backend::tcp_on("127.0.0.2", np, "a-v4"));
        backends.push(Backend::tcp_on("127.0.0.3", np, "b-v4"));
        backends.push(Backend::tcp_on("::1", np, "b-v6"));
    }
    let _c = Controller::start(&w.kubeconfig);
    for (name, want) in [
        ("dual", set(&["a-v4", "b-v4", "b-v6"])),
        ("six", set(&["b-v6"])),
        ("four", set(&["a-v4", "b-v4"])),
    ] {
        wait_for(&format!("{name}: traffic over [::1] to {want:?}"), || {
            w.lb(name).is_some() && answers(&host, lb_port(&w, name)) == want
        });
        // The ingress ip is the IPv6 literal, without brackets.
        wait_for(&format!("{name}: ingress ::1"), || {
            w.svc(name).is_some_and(|s| {
                s["status"]["loadBalancer"]["ingress"]
                    == json!([{"ip": "::1", "ipMode": "Proxy",
                        "ports": [{"port": lb_port(&w, name), "protocol": "TCP"}]}])
            })
        });
    }

    // No node has an IPv6 address any more: the IPv6-only Service is not served (its backend
    // leaves the host; connections are refused), Ready=False NoAddressInFamily and one Warning.
    // The dual-stack one keeps its IPv4 upstreams.
    let six = lb_port(&w, "six");
    node_b(&w, false);
    wait_for("six refused", || host.ident(six).is_none());
    wait_for("NoAddressInFamily", || {
        ready(&w, "six").is_some_and(|c| {
            c["status"] == "False"
                && c["reason"] == "NoAddressInFamily"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("ipFamilies are IPv6"))
        })
    });
    wait_for("the Warning Event", || {
        w.api.list("events", "default").iter().any(|e| {
            e["type"] == "Warning"
                && e["reason"] == "NoAddressInFamily"
                && e["involvedObject"]["name"] == "six"
        })
    });
    wait_for("dual on IPv4 alone", || {
        answers(&host, lb_port(&w, "dual")) == set(&["a-v4", "b-v4"])
    });
    // ... and says so: DualStack=False naming IPv6 (Ready stays True), one Warning Event.
    wait_for("DualStack=False", || {
        condition(&w, "dual", "DualStack").is_some_and(|c| {
            c["status"] == "False"
                && c["reason"] == "NoAddressInFamily"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no eligible node has an IPv6 address"))
        })
    });
    assert_eq!(ready(&w, "dual").expect("Ready")["status"], "True");
    let dual_warnings = || -> Vec<Value> {
        (w.api.list("events", "default").into_iter())
            .filter(|e| e["type"] == "Warning" && e["involvedObject"]["name"] == "dual")
            .collect()
    };
    wait_for("dual's Warning Event", || !dual_warnings().is_empty());
    // Back: served again by itself.
    node_b(&w, true);
    wait_for("six back", || answers(&host, six) == set(&["b-v6"]));
    wait_for("Ready again", || {
        ready(&w, "six").is_some_and(|c| c["status"] == "True")
    });
    wait_for("dual on both families, condition gone", || {
        answers(&host, lb_port(&w, "dual")) == set(&["a-v4", "b-v4", "b-v6"])
            && w.lb("dual").is_some()
            && condition(&w, "dual", "DualStack").is_none()
    });
    let warnings = dual_warnings();
    assert_eq!(
        warnings.len(),
        1,
        "one Warning per transition: {warnings:?}"
    );
    assert_eq!(warnings[0]["reason"], "NoAddressInFamily");
    assert!(
        warnings[0]["count"].as_i64().unwrap_or(1) == 1,
        "{warnings:?}"
    );
}
