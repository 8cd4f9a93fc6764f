//! Real traffic through nginx: round robin, UDP, changes, deletes, restarts, rollbacks, and two
//! LB hosts (`--lb-address`) serving the same LB port on one machine.

use std::collections::BTreeSet;
use std::net::TcpListener;

use super::*;

#[test]
fn tcp_traffic_reaches_both_upstreams_round_robin() {
    let env = Env::start(Options::default());
    let (b2, b3) = (
        Backend::tcp("127.0.0.2", "b2"),
        Backend::tcp("127.0.0.3", "b3"),
    );
    let port = free_port();
    let body = go_body(
        "default_web",
        port,
        "TCP",
        &[("127.0.0.2", b2.port), ("127.0.0.3", b3.port)],
    );
    let (code, resp) = env.post(&body);
    assert_eq!(code, 200, "{resp}");
    assert!(resp.contains("applied"), "{resp}");
    let mut seen = BTreeSet::new();
    assert!(
        wait_until(PATIENCE, || {
            if let Some(id) = tcp_ident(port) {
                seen.insert(id);
            }
            seen.len() == 2
        }),
        "saw only {seen:?}"
    );
    assert_eq!(seen, BTreeSet::from(["b2".to_string(), "b3".to_string()]));
    // Same request again: nothing written, no reload.
    let reloads = env.wrapper.reloads();
    let (code, resp) = env.post(&body);
    assert_eq!(code, 200);
    assert!(resp.contains("unchanged"), "{resp}");
    assert_eq!(env.wrapper.reloads(), reloads);
}

#[test]
fn udp_datagrams_round_trip() {
    let env = Env::start(Options::default());
    let b2 = Backend::udp("127.0.0.2", "u2");
    let port = free_port();
    let (code, resp) = env.post(&go_body(
        "default_dns",
        port,
        "UDP",
        &[("127.0.0.2", b2.port)],
    ));
    assert_eq!(code, 200, "{resp}");
    assert!(wait_until(PATIENCE, || udp_roundtrip(port, "ping")
        .as_deref()
        == Some("u2:ping")));
    let text = std::fs::read_to_string(env.conf_file("default_dns")).unwrap();
    assert!(text.contains(&format!("listen {port} udp;")), "{text}");
}

#[test]
fn changing_upstreams_takes_effect_without_dropping_other_backends() {
    let env = Env::start(Options::default());
    let (b2, b3) = (
        Backend::tcp("127.0.0.2", "b2"),
        Backend::tcp("127.0.0.3", "b3"),
    );
    let (pa, pb) = (free_port(), free_port());
    assert_eq!(
        env.post(&go_body("ns_a", pa, "TCP", &[("127.0.0.2", b2.port)]))
            .0,
        200
    );
    assert_eq!(
        env.post(&go_body("ns_b", pb, "TCP", &[("127.0.0.2", b2.port)]))
            .0,
        200
    );
    assert!(wait_tcp(pa, |s| s == Some("b2")));
    assert!(wait_tcp(pb, |s| s == Some("b2")));
    assert_eq!(
        env.post(&go_body("ns_a", pa, "tcp", &[("127.0.0.3", b3.port)]))
            .0,
        200
    );
    assert!(wait_tcp(pa, |s| s == Some("b3")));
    assert_eq!(tcp_ident(pb).as_deref(), Some("b2"));
}

#[test]
fn delete_closes_the_port_and_an_unknown_backend_is_200_as_in_go() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let port = free_port();
    assert_eq!(
        env.post(&go_body("ns_gone", port, "TCP", &[("127.0.0.2", b2.port)]))
            .0,
        200
    );
    assert!(wait_tcp(port, |s| s == Some("b2")));
    let (code, resp) = env.delete("ns_gone");
    assert_eq!(code, 200, "{resp}");
    assert!(!env.conf_file("ns_gone").exists());
    assert!(wait_tcp(port, |s| s.is_none()));
    // nginx-lb-updater answers 200 when the file is already gone; so do we, or a Go controller's
    // finalizer would retry forever on a backend that was never written.
    let (code, resp) = env.delete("ns_gone");
    assert_eq!(code, 200, "{resp}");
    assert!(resp.contains("\"status\":\"absent\""), "{resp}");
}

#[test]
fn a_restarted_updater_lists_what_is_on_disk() {
    let mut env = Env::start(Options::default());
    let port = free_port();
    assert_eq!(
        env.post(&go_body("ns_keep", port, "TCP", &[("127.0.0.2", 30080)]))
            .0,
        200
    );
    std::fs::write(env.nginx.streams.join("handmade.conf"), "# not ours\n").unwrap();
    env.restart_updater();
    let (code, body) = env.call("GET", "/api/v1/lb", "", &[]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["backends"][0]["backendName"], "ns_keep");
    assert_eq!(v["backends"][0]["lbPort"], port);
    assert_eq!(v["backends"][0]["lbProtocol"], "TCP");
    assert_eq!(v["unreadable"][0]["file"], "handmade.conf");
}

#[test]
fn injection_attempts_are_refused_and_nginx_keeps_serving() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let port = free_port();
    assert_eq!(
        env.post(&go_body("ns_safe", port, "TCP", &[("127.0.0.2", b2.port)]))
            .0,
        200
    );
    assert!(wait_tcp(port, |s| s == Some("b2")));
    let other = free_port();
    let names = [
        "a;}",
        "../x",
        "..",
        ".",
        ".hidden",
        "a b",
        "a\\nb",
        "a{",
        "a}",
        "a#",
        "a$x",
        "a/b",
        "a;include /etc/passwd",
        "",
        "a\\u0000b",
        "a\\\"b",
    ];
    let hosts = [
        "1.2.3.4; include /etc/passwd",
        "127.0.0.2:80",
        "a\\nb",
        "a{b",
        "a}b",
        "a b",
        "$host",
        "unix:/tmp/x",
        "127.0.0.2;",
        "[::1]; x",
        "#x",
        "",
    ];
    let protos = ["TCP; x", "tcp\\n", "sctp", "udp}"];
    let mut bodies: Vec<String> = Vec::new();
    for n in names {
        bodies.push(go_body(n, other, "TCP", &[("127.0.0.2", b2.port)]));
    }
    for h in hosts {
        bodies.push(go_body("ns_evil", other, "TCP", &[(h, b2.port)]));
    }
    for p in protos {
        bodies.push(go_body("ns_evil", other, p, &[("127.0.0.2", b2.port)]));
    }
    bodies.push(
        go_body("ns_evil", other, "TCP", &[("127.0.0.2", b2.port)]).replace(
            "\"proxyTimeoutSeconds\":0",
            "\"proxyTimeoutSeconds\":\"1s; x\"",
        ),
    );
    let before: Vec<_> = std::fs::read_dir(&env.nginx.streams)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for body in &bodies {
        let (code, resp) = env.post(body);
        assert_eq!(code, 400, "{body} -> {resp}");
        assert!(resp.starts_with("{\"err\":"), "{resp}");
    }
    let after: Vec<_> = std::fs::read_dir(&env.nginx.streams)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    assert_eq!(env.delete("../x").0, 400);
    assert_eq!(tcp_ident(port).as_deref(), Some("b2"));
}

#[test]
fn a_failing_nginx_test_rolls_back_the_file_set() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let port = free_port();
    assert_eq!(
        env.post(&go_body("ns_ok", port, "TCP", &[("127.0.0.2", b2.port)]))
            .0,
        200
    );
    let before = std::fs::read(env.conf_file("ns_ok")).unwrap();
    env.wrapper.set("fail-test", true);
    let (code, resp) = env.post(&go_body("ns_ok", port, "TCP", &[("127.0.0.3", 1234)]));
    assert_eq!(code, 500, "{resp}");
    assert!(
        resp.contains("forced failure by the test wrapper"),
        "{resp}"
    );
    let (code, _) = env.post(&go_body(
        "ns_new",
        free_port(),
        "TCP",
        &[("127.0.0.3", 1234)],
    ));
    assert_eq!(code, 500);
    assert_eq!(std::fs::read(env.conf_file("ns_ok")).unwrap(), before);
    assert!(!env.conf_file("ns_new").exists());
    let files: Vec<_> = std::fs::read_dir(&env.nginx.streams)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    env.wrapper.set("fail-test", false);
    assert!(wait_tcp(port, |s| s == Some("b2")));
}

#[test]
fn a_port_held_by_another_process_is_refused_and_the_rest_keeps_serving() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let port = free_port();
    assert_eq!(
        env.post(&go_body("ns_ok", port, "TCP", &[("127.0.0.2", b2.port)]))
            .0,
        200
    );
    assert!(wait_tcp(port, |s| s == Some("b2")));
    // `nginx -t` does not bind: this passes the test and fails in the master at reload.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let (code, resp) = env.post(&go_body(
        "ns_clash",
        held_port,
        "TCP",
        &[("127.0.0.2", b2.port)],
    ));
    assert_eq!(code, 500, "{resp}");
    assert!(resp.contains("bind()"), "{resp}");
    assert!(!env.conf_file("ns_clash").exists());
    assert_eq!(tcp_ident(port).as_deref(), Some("b2"));
    // And the next change still goes through: the bad file is not left behind to fail every reload.
    let p2 = free_port();
    assert_eq!(
        env.post(&go_body("ns_next", p2, "TCP", &[("127.0.0.2", b2.port)]))
            .0,
        200
    );
    assert!(wait_tcp(p2, |s| s == Some("b2")));
    drop(held);
}

#[test]
fn a_burst_of_concurrent_posts_all_land_with_far_fewer_reloads() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    // A slow `nginx -t` makes the requests of the burst pile up behind the first reload.
    env.wrapper.set("slow-test", true);
    let before = env.wrapper.reloads();
    let n = 24;
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let addr = env.addr();
    let threads: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let body = go_body(&format!("burst_{i}"), p, "TCP", &[("127.0.0.2", b2.port)]);
            std::thread::spawn(move || raw(addr, "POST", "/api/v1/lb", body.as_bytes(), &[]))
        })
        .collect();
    for t in threads {
        let (code, resp) = t.join().unwrap();
        assert_eq!(code, 200, "{resp}");
    }
    let reloads = env.wrapper.reloads() - before;
    assert!(
        reloads >= 1 && reloads <= n / 3,
        "{reloads} reloads for {n} requests"
    );
    for p in ports {
        assert!(wait_tcp(p, |s| s == Some("b2")), "port {p}");
    }
    assert_eq!(
        env.metric("paperlb_updater_nginx_reloads_total"),
        reloads as f64
    );
}

/// With nginx stopped, a batch fails alike for every change in it: it is answered whole, not
/// tried again one change at a time (each try another `nginx -t`, callers waiting for all).
#[test]
fn a_batch_that_fails_because_nginx_is_down_is_not_split() {
    let mut env = Env::start(Options::default());
    env.nginx.stop();
    // A slow `nginx -t` makes the requests pile up behind the first commit.
    env.wrapper.set("slow-test", true);
    let before = env.wrapper.tests();
    let n = 8;
    let addr = env.addr();
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let body = go_body(
                &format!("down_{i}"),
                free_port(),
                "TCP",
                &[("127.0.0.2", 1)],
            );
            std::thread::spawn(move || raw(addr, "POST", "/api/v1/lb", body.as_bytes(), &[]))
        })
        .collect();
    for t in threads {
        let (code, resp) = t.join().unwrap();
        assert!(code >= 500, "{code} {resp}");
    }
    let tests = env.wrapper.tests() - before;
    assert!(tests < n, "{tests} nginx -t runs for {n} requests");
}

/// Two identical requests in one batch whose commit nginx refuses: the second was planned as
/// unchanged (the first had planned the same file), and is answered with the commit's error, not
/// a 200 for a change that did not happen.
#[test]
fn a_request_repeated_in_a_failing_batch_is_not_answered_unchanged() {
    let env = Env::start(Options::default());
    // A slow, failing `nginx -t`: the two requests pile up behind the first commit.
    env.wrapper.set("slow-test", true);
    env.wrapper.set("fail-test", true);
    let addr = env.addr();
    let first = go_body("first", free_port(), "TCP", &[("127.0.0.2", 1)]);
    let twice = go_body("twice", free_port(), "TCP", &[("127.0.0.2", 1)]);
    let post = |body: String| {
        std::thread::spawn(move || raw(addr, "POST", "/api/v1/lb", body.as_bytes(), &[]))
    };
    let mut threads = vec![post(first)];
    // Most likely inside the first commit's test by then (if not, the two may land apart, and
    // this run shows less).
    std::thread::sleep(Duration::from_millis(150));
    threads.extend([post(twice.clone()), post(twice)]);
    for t in threads {
        let (code, resp) = t.join().unwrap();
        assert!(code >= 500, "{code} {resp}");
    }
    assert!(!env.conf_file("twice").exists());
}

#[test]
fn one_bad_request_in_a_batch_is_refused_alone() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    env.wrapper.set("slow-test", true);
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let held_port = held.local_addr().unwrap().port();
    let addr = env.addr();
    let mut jobs: Vec<(String, u16)> = (0..6).map(|i| (format!("good_{i}"), free_port())).collect();
    jobs.insert(3, ("bad".into(), held_port));
    let threads: Vec<_> = jobs
        .iter()
        .map(|(name, p)| {
            let body = go_body(name, *p, "TCP", &[("127.0.0.2", b2.port)]);
            let name = name.clone();
            std::thread::spawn(move || {
                (name, raw(addr, "POST", "/api/v1/lb", body.as_bytes(), &[]))
            })
        })
        .collect();
    for t in threads {
        let (name, (code, resp)) = t.join().unwrap();
        let want = if name == "bad" { 500 } else { 200 };
        assert_eq!(code, want, "{name}: {resp}");
    }
    for (name, p) in jobs.iter().filter(|(n, _)| n != "bad") {
        assert!(wait_tcp(*p, |s| s == Some("b2")), "{name}");
    }
    assert!(!env.conf_file("bad").exists());
    drop(held);
}

#[test]
fn healthz_reports_nginx_state() {
    let mut env = Env::start(Options::default());
    let (code, body) = env.call("GET", "/healthz", "", &[]);
    assert_eq!(code, 200, "{body}");
    env.nginx.stop();
    let (code, body) = env.call("GET", "/healthz", "", &[]);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not running"), "{body}");
}

#[test]
fn two_hosts_with_their_own_lb_address_serve_the_same_lb_port_at_once() {
    let on = |ip| {
        Env::start(Options {
            lb_address: Some(ip),
            ..Options::default()
        })
    };
    let mut hosts = [on("127.0.0.2"), on("127.0.0.3")];
    // Each host forwards to its own upstream (the other loopback address, so the answer cannot
    // come from a listener that merely shares the LB address).
    let ups = [
        Backend::tcp("127.0.0.3", "via-a"),
        Backend::tcp("127.0.0.2", "via-b"),
    ];
    let port = free_port();
    for ((env, up), (ip, other)) in hosts
        .iter()
        .zip(&ups)
        .zip([("127.0.0.2", "127.0.0.3"), ("127.0.0.3", "127.0.0.2")])
    {
        let (code, resp) = env.post(&go_body("default_web", port, "TCP", &[(other, up.port)]));
        assert_eq!(code, 200, "{ip}: {resp}");
        assert!(resp.contains("applied"), "{ip}: {resp}");
        let text = std::fs::read_to_string(env.conf_file("default_web")).unwrap();
        assert!(
            text.contains(&format!("    listen {ip}:{port};\n")),
            "{text}"
        );
    }
    let addrs = [hosts[0].lb_addr(port), hosts[1].lb_addr(port)];
    let ident = |i: usize| tcp_ident_at(addrs[i]);
    assert!(
        wait_until(PATIENCE, || ident(0).as_deref() == Some("via-a")
            && ident(1).as_deref() == Some("via-b")),
        "a: {:?}, b: {:?}",
        ident(0),
        ident(1)
    );
    // Both serve together, each its own upstream, connection after connection.
    for round in 0..20 {
        assert_eq!(ident(0).as_deref(), Some("via-a"), "round {round}");
        assert_eq!(ident(1).as_deref(), Some("via-b"), "round {round}");
    }
    // Neither listens on every address.
    assert_eq!(tcp_ident(port), None);
    // The files read back as what each updater renders: listed unmodified, also after a restart,
    // and the same request again changes nothing.
    hosts[0].restart_updater();
    for env in &hosts {
        let (code, body) = env.call("GET", "/api/v1/lb", "", &[]);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["backends"][0]["backendName"], "default_web", "{body}");
        // `modified` is omitted when false.
        assert_eq!(
            v["backends"][0]["modified"],
            serde_json::Value::Null,
            "{body}"
        );
    }
    // Restarted without the flag, the updater would write `listen PORT;`: the file is listed as
    // modified (the controller's drift check POSTs it again, which rewrites it).
    hosts[0].lb_addresses = vec![];
    hosts[0].restart_updater();
    let (_, body) = hosts[0].call("GET", "/api/v1/lb", "", &[]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["backends"][0]["modified"], true, "{body}");
    hosts[0].lb_addresses = vec!["127.0.0.2".parse().unwrap()];
    hosts[0].restart_updater();
    let (code, resp) = hosts[0].post(&go_body(
        "default_web",
        port,
        "TCP",
        &[("127.0.0.3", ups[0].port)],
    ));
    assert_eq!(code, 200, "{resp}");
    assert!(resp.contains("unchanged"), "{resp}");
    // One host lets the port go; the other keeps serving it.
    assert_eq!(hosts[0].delete("default_web").0, 200);
    assert!(wait_until(PATIENCE, || ident(0).is_none()));
    assert_eq!(ident(1).as_deref(), Some("via-b"));
}
