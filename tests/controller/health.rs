//! Per-port health in the LoadBalancer's status (issue 14) end to end: the fake API server, our
//! updater in-process running real checks (the config's `spec.healthCheck` points them at small
//! health endpoints on the node addresses) and a real nginx. The figures follow the drift check's
//! GET, and a steady state writes nothing.

use serde_json::json;

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::LbHost;

fn service(w: &World, name: &str, ports: &[(&str, u16)]) {
    let ports: Vec<serde_json::Value> = ports
        .iter()
        .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP", "targetPort": p}))
        .collect();
    let obj = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports}});
    w.api.apply("services", obj).expect("apply service");
}

/// A health endpoint answering 200 on `addr` (stops on drop).
fn healthz(addr: &str) -> paperlb::http::Server {
    paperlb::http::Server::bind(
        addr,
        paperlb::http::Limits::default(),
        None,
        |_req: &paperlb::http::Request| paperlb::http::Response::text(200, "ok\n"),
    )
    .expect("bind healthz")
}

#[test]
fn per_port_health_reaches_the_status_and_a_steady_state_writes_nothing() {
    let host = LbHost::start();
    let w = World::new("port-health");
    // node-a answers its check, node-b does not (yet).
    let a = healthz("127.0.0.2:0");
    let port = a.local_addr().port();
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": host.url(), "host": LB_HOST,
            "portRange": {"low": 8680, "high": 8689},
            "healthCheck": {"port": port, "intervalSeconds": 1, "unhealthyThreshold": 1,
                "healthyThreshold": 1}}});
    w.api
        .apply("loadbalancerconfigs", cfg)
        .expect("apply config");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "1s"]);
    service(&w, "web", &[("http", 80), ("admin", 81)]);
    wait_for("web READY", || w.ready("web"));
    let healthy = |w: &World| w.lb("web").map(|lb| lb["status"]["healthy"].clone());
    wait_for("1 of 2 per port", || healthy(&w) == Some(json!("2/4")));
    let lb = w.lb("web").expect("lb");
    let ports = lb["status"]["ports"].as_array().expect("status.ports");
    assert_eq!(ports.len(), 2);
    for p in ports {
        assert_eq!(
            (p["ready"].clone(), p["total"].clone()),
            (json!(1), json!(2)),
            "{p}"
        );
        assert_eq!(
            p["unhealthy"][0].as_str().unwrap_or("").split(':').next(),
            Some("127.0.0.3")
        );
    }

    // node-b's check passes: the figure follows at a later drift check.
    let _b = healthz(&format!("127.0.0.3:{port}"));
    wait_for("2 of 2 per port", || healthy(&w) == Some(json!("4/4")));

    // Steady: three more drift checks write nothing.
    let writes = w.api_writes().len();
    let gets = host.requests("GET");
    wait_for("three more drift checks", || {
        host.requests("GET") >= gets + 3
    });
    assert_eq!(
        w.api_writes().len(),
        writes,
        "{:?}",
        &w.api_writes()[writes..]
    );

    // node-a fails: down to 1 of 2 again.
    drop(a);
    wait_for("node-a unhealthy", || healthy(&w) == Some(json!("2/4")));
}

/// KEP-3458 with a real nginx: node-b turns NotReady and its NodePort and health endpoint hang
/// (accept, never answer). It stays a target, in the LoadBalancer and in the updater's config, with
/// no updater call, and the health check drains it: every connection reaches node-a.
#[test]
fn a_node_whose_nodeport_hangs_is_drained_by_the_check_while_it_stays_in_the_config() {
    use crate::lbhost::lb_port;
    use crate::support::backends::{Backend, tcp_ident};
    use std::net::TcpListener;
    let host = LbHost::start();
    let w = World::new("stable-drain");
    let a = healthz("127.0.0.2:0");
    let hport = a.local_addr().port();
    let b = healthz(&format!("127.0.0.3:{hport}"));
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": host.url(), "host": LB_HOST,
            "portRange": {"low": 8690, "high": 8699},
            // Three failures in a row of 5 s each mark a node down: slow answers of node-a's check
            // on a loaded box (a whole `make test` on 2 cores) must not mark it down too (both
            // down fails open, and node-b hangs).
            "healthCheck": {"port": hport, "intervalSeconds": 1, "timeoutSeconds": 5,
                "unhealthyThreshold": 3, "healthyThreshold": 1}}});
    w.api
        .apply("loadbalancerconfigs", cfg)
        .expect("apply config");
    service(&w, "web", &[("http", 80)]);
    let np = u16::try_from(w.node_port("web", 0)).expect("nodePort");
    let _node_a = Backend::tcp_on("127.0.0.2", np, "node-a");
    let node_b = Backend::tcp_on("127.0.0.3", np, "node-b");
    let _c = Controller::start_with(&w.kubeconfig, &["--updater-resync", "1s"]);
    wait_for("web READY", || w.ready("web"));
    let port = lb_port(&w, "web");
    wait_for("traffic reaches node-b", || {
        tcp_ident(port).as_deref() == Some("node-b")
    });
    let posts = host.requests("POST");
    let workers_before = host.nginx.accepting_workers();
    assert!(!workers_before.is_empty(), "nginx has a worker");

    // node-b: NotReady, its NodePort and its health endpoint hang.
    drop(node_b);
    drop(b);
    let _hung_np = TcpListener::bind(("127.0.0.3", np)).expect("hang the nodePort");
    let _hung_check = TcpListener::bind(("127.0.0.3", hport)).expect("hang the check");
    w.node("node-b", "127.0.0.3", false);
    let b_state = || -> Option<Option<bool>> {
        let backends = host.backends(None).ok()?;
        let web = backends
            .iter()
            .find(|x| x.request.backend_name == "default_web")?;
        let up = web
            .request
            .upstream_servers
            .iter()
            .find(|u| u.host == "127.0.0.3")?;
        Some(up.health.healthy)
    };
    wait_for("node-b marked unhealthy, still upstream", || {
        b_state() == Some(Some(false))
    });
    // Rendered `down` in the file nginx reads (the verdict comes first, the reload after it).
    let marked = format!("server 127.0.0.3:{np} down;");
    wait_for("node-b rendered down", || {
        std::fs::read_dir(&host.nginx.streams)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::read_to_string(e.path()).is_ok_and(|c| c.contains(&marked)))
    });
    // Drained: once the reload is in (no worker from before it accepts), every connection
    // reaches node-a (one sent to node-b would hang, then read None).
    wait_for("the workers from before the reload stop accepting", || {
        let now = host.nginx.accepting_workers();
        !now.is_empty() && now.is_disjoint(&workers_before)
    });
    // What the updater, nginx's files and its error log showed, for a failure to explain itself.
    let seen = || {
        let files: Vec<String> = std::fs::read_dir(&host.nginx.streams)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect();
        let log = std::fs::read_to_string(&host.nginx.error_log).unwrap_or_default();
        let posts_now = host.requests("POST");
        format!(
            "b: {:?}, POSTs {posts_now}, files {files:?}, error log {log}",
            b_state()
        )
    };
    for i in 0..8 {
        let got = tcp_ident(port);
        assert_eq!(got.as_deref(), Some("node-a"), "connection {i}: {}", seen());
    }
    wait_for("the status shows it", || {
        w.lb("web")
            .is_some_and(|lb| lb["status"]["healthy"] == json!("1/2"))
    });
    let lb = w.lb("web").expect("lb");
    assert_eq!(
        lb["status"]["targetCount"],
        json!(2),
        "node-b stays a target"
    );
    assert_eq!(b_state(), Some(Some(false)), "and in the updater's config");
    assert_eq!(host.requests("POST"), posts, "no updater call for the flip");
}
