//! Issue 14 through a real nginx: active health checks (tcp and http, fail open, no idle
//! reloads), sourceRanges, PROXY protocol, and their bad input. All traffic on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// A TCP server on a fixed address that runs `serve` for each connection, until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(ip: &str, port: u16, serve: fn(&mut TcpStream, &str), arg: &str) -> Server {
        let l = TcpListener::bind((ip, port)).unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, arg) = (stop.clone(), arg.to_string());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(600);
            while !s.load(Ordering::SeqCst) && Instant::now() < end {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                        let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
                        serve(&mut c, &arg);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn say_ident(c: &mut TcpStream, ident: &str) {
    let _ = c.write_all(format!("{ident}\n").as_bytes());
}

/// HTTP: 200 for the path in `arg`, 503 for anything else.
fn http_status(c: &mut TcpStream, path: &str) {
    let mut line = String::new();
    let _ = BufReader::new(&mut *c).read_line(&mut line);
    let ok = line.split(' ').nth(1) == Some(path);
    let status = if ok { "200 OK" } else { "503 Unavailable" };
    let _ = c.write_all(format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
}

/// Echoes the first line it reads (the PROXY v1 header, when nginx sends one).
fn echo_first_line(c: &mut TcpStream, _: &str) {
    let mut line = String::new();
    let _ = BufReader::new(&mut *c).read_line(&mut line);
    let _ = c.write_all(line.as_bytes());
}

fn port_on(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn body(name: &str, port: u16, proto: &str, ups: &[(&str, u16)], extra: &str) -> String {
    let plain = go_body(name, port, proto, ups);
    let trimmed = plain.trim_end().trim_end_matches('}');
    format!("{trimmed},{extra}}}")
}

/// `GET /api/v1/lb`: the `healthy` flag of each upstream of `name`, by "host:port".
fn health_of(env: &Env, name: &str) -> Vec<(String, Option<bool>, bool)> {
    let (code, text) = env.call("GET", "/api/v1/lb", "", &[]);
    assert_eq!(code, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for b in v["backends"].as_array().unwrap() {
        if b["backendName"] != name {
            continue;
        }
        for u in b["upstreamServers"].as_array().unwrap() {
            out.push((
                format!("{}:{}", u["host"].as_str().unwrap(), u["port"]),
                u["healthy"].as_bool(),
                u["lastCheck"].is_string(),
            ));
        }
    }
    out
}

fn healthy_flags(env: &Env, name: &str) -> Vec<Option<bool>> {
    health_of(env, name).into_iter().map(|x| x.1).collect()
}

#[test]
fn tcp_check_takes_a_dead_upstream_out_brings_it_back_and_fails_open() {
    let env = Env::start(Options::default());
    let (p2, p3) = (port_on("127.0.0.2"), port_on("127.0.0.3"));
    let s2 = Server::start("127.0.0.2", p2, say_ident, "b2");
    let mut s3 = Some(Server::start("127.0.0.3", p3, say_ident, "b3"));
    let lb = free_port();
    let check = r#""healthCheck":{"type":"tcp","intervalSeconds":1,"unhealthyThreshold":2,"healthyThreshold":1}"#;
    let req = body(
        "default_hc",
        lb,
        "TCP",
        &[("127.0.0.2", p2), ("127.0.0.3", p3)],
        check,
    );
    let (code, resp) = env.post(&req);
    assert_eq!(code, 200, "{resp}");
    // Both checked and healthy: every upstream reports healthy and a lastCheck.
    assert!(wait_until(PATIENCE, || health_of(&env, "default_hc")
        .iter()
        .all(|(_, h, checked)| *h == Some(true) && *checked)));

    // Stable health: checks keep running, nginx is not reloaded.
    let reloads = env.wrapper.reloads();
    let checks = env.metric("paperlb_updater_health_checks_total");
    assert!(wait_until(PATIENCE, || env
        .metric("paperlb_updater_health_checks_total")
        >= checks + 6.0));
    assert_eq!(
        env.wrapper.reloads(),
        reloads,
        "a check that changed nothing reloaded nginx"
    );

    // Kill b3: it is reported unhealthy and rendered down; 20 of 20 requests reach b2.
    s3.take();
    assert!(wait_until(PATIENCE, || healthy_flags(&env, "default_hc")
        == [Some(true), Some(false)]));
    // GET reports the prober's verdict at once; the file follows through the next group commit.
    let down = format!("server 127.0.0.3:{p3} down;");
    assert!(wait_until(PATIENCE, || std::fs::read_to_string(
        env.conf_file("default_hc")
    )
    .is_ok_and(|c| c.contains(&down))));
    let conf = std::fs::read_to_string(env.conf_file("default_hc")).unwrap();
    assert!(conf.contains(&format!("server 127.0.0.2:{p2};")), "{conf}");
    assert!(wait_until(PATIENCE, || tcp_ident(lb).as_deref() == Some("b2")));
    let answers: Vec<Option<String>> = (0..20).map(|_| tcp_ident(lb)).collect();
    assert!(
        answers.iter().all(|a| a.as_deref() == Some("b2")),
        "{answers:?}"
    );
    assert_eq!(
        env.metric("paperlb_updater_upstream_healthy{backend=\"default_hc\",upstream=\"127.0.0.3"),
        0.0
    );
    assert!(env.metric("paperlb_updater_health_changes_total") >= 1.0);

    // Restart b3 on its port: healthy again, no longer down, and it gets traffic.
    let s3 = Server::start("127.0.0.3", p3, say_ident, "b3");
    assert!(wait_until(PATIENCE, || healthy_flags(&env, "default_hc")
        == [Some(true), Some(true)]));
    assert!(wait_tcp(lb, |a| a == Some("b3")));
    let conf = std::fs::read_to_string(env.conf_file("default_hc")).unwrap();
    assert!(!conf.contains(" down;"), "{conf}");

    // Kill both: both unhealthy, but none is marked down (fail open), and it is reported.
    drop(s3);
    drop(s2);
    assert!(wait_until(PATIENCE, || healthy_flags(&env, "default_hc")
        == [Some(false), Some(false)]));
    assert!(wait_until(PATIENCE, || env.metric(
        "paperlb_updater_health_fail_open{backend=\"default_hc\"}"
    ) == 1.0));
    // The two flips land one probe apart, so one of them may be rendered down in between; once
    // both are unhealthy the file is what it was with both healthy.
    let mut after = String::new();
    let settled = wait_until(PATIENCE, || {
        after = std::fs::read_to_string(env.conf_file("default_hc")).unwrap();
        after == conf
    });
    assert!(
        settled,
        "fail open must leave the config as it was:\n{after}"
    );

    // Deleting the backend stops its checks.
    assert_eq!(env.delete("default_hc").0, 200);
    std::thread::sleep(Duration::from_millis(300));
    let checks = env.metric("paperlb_updater_health_checks_total");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(env.metric("paperlb_updater_health_checks_total"), checks);
    let (_, metrics) = env.call("GET", "/metrics", "", &[]);
    assert!(!metrics.contains("backend=\"default_hc\""), "{metrics}");
}

/// Verdicts are not kept over a restart: the new updater checks the backends it finds on disk
/// from scratch (healthy until they fail), except that an upstream the last one marked down stays
/// down until it passes a single probe.
#[test]
fn a_restarted_updater_checks_the_backends_on_disk_and_renders_their_marks_again() {
    let mut env = Env::start(Options::default());
    let (p2, p3) = (port_on("127.0.0.2"), port_on("127.0.0.3"));
    let _s2 = Server::start("127.0.0.2", p2, say_ident, "b2");
    let check = r#""healthCheck":{"type":"tcp","intervalSeconds":1,"unhealthyThreshold":1,"healthyThreshold":100}"#;
    let ups = [("127.0.0.2", p2), ("127.0.0.3", p3)];
    let (code, resp) = env.post(&body("default_rs", free_port(), "TCP", &ups, check));
    assert_eq!(code, 200, "{resp}");
    let (down, file) = (
        format!("server 127.0.0.3:{p3} down;"),
        env.conf_file("default_rs"),
    );
    let marked = || std::fs::read_to_string(&file).is_ok_and(|c| c.contains(&down));
    assert!(wait_until(PATIENCE, marked));
    // Back, but 100 passes short of healthy for this updater; the next one needs one pass.
    let _s3 = Server::start("127.0.0.3", p3, say_ident, "b3");
    env.restart_updater();
    assert!(wait_until(PATIENCE, || !marked()), "the down mark stayed");
    assert_eq!(healthy_flags(&env, "default_rs"), [Some(true), Some(true)]);
}

/// A verdict whose re-render nginx refuses is rendered at a later result once nginx takes it
/// again; it must not count as rendered and wait for the upstream to flip twice.
#[test]
fn a_verdict_nginx_refused_to_render_is_rendered_once_nginx_takes_it() {
    let env = Env::start(Options::default());
    let (p2, p3) = (port_on("127.0.0.2"), port_on("127.0.0.3"));
    let _s2 = Server::start("127.0.0.2", p2, say_ident, "b2");
    let s3 = Server::start("127.0.0.3", p3, say_ident, "b3");
    let check = r#""healthCheck":{"type":"tcp","intervalSeconds":1,"unhealthyThreshold":1,"healthyThreshold":1}"#;
    let ups = [("127.0.0.2", p2), ("127.0.0.3", p3)];
    let (code, resp) = env.post(&body("default_rr", free_port(), "TCP", &ups, check));
    assert_eq!(code, 200, "{resp}");
    env.wrapper.set("fail-test", true);
    let refused = || env.metric("paperlb_updater_nginx_tests_total{result=\"failed\"}");
    drop(s3);
    let flipped = wait_until(PATIENCE, || {
        healthy_flags(&env, "default_rr") == [Some(true), Some(false)] && refused() >= 1.0
    });
    assert!(flipped, "the verdict and a refused re-render");
    env.wrapper.set("fail-test", false);
    let down = format!("server 127.0.0.3:{p3} down;");
    let file = env.conf_file("default_rr");
    let marked = || std::fs::read_to_string(&file).is_ok_and(|c| c.contains(&down));
    assert!(
        wait_until(PATIENCE, marked),
        "the verdict was never rendered"
    );
}

#[test]
fn http_check_honours_path_and_status() {
    let env = Env::start(Options::default());
    let data = port_on("127.0.0.2");
    let _d = Server::start("127.0.0.2", data, say_ident, "b2");
    let hport = port_on("127.0.0.2");
    let _h = Server::start("127.0.0.2", hport, http_status, "/ready");
    let check = |path: &str| {
        format!(
            r#""healthCheck":{{"type":"http","port":{hport},"path":"{path}","intervalSeconds":1,"unhealthyThreshold":1,"healthyThreshold":1}}"#
        )
    };
    let (good, bad) = (free_port(), free_port());
    let ups = [("127.0.0.2", data)];
    assert_eq!(
        env.post(&body("ns_good", good, "TCP", &ups, &check("/ready")))
            .0,
        200
    );
    assert_eq!(
        env.post(&body("ns_bad", bad, "TCP", &ups, &check("/other")))
            .0,
        200
    );
    assert!(wait_until(PATIENCE, || {
        let g = health_of(&env, "ns_good");
        let b = health_of(&env, "ns_bad");
        g.len() == 1 && g[0].2 && g[0].1 == Some(true) && b.len() == 1 && b[0].1 == Some(false)
    }));
    // One upstream, unhealthy: fail open keeps it in service.
    assert!(wait_tcp(bad, |a| a == Some("b2")));
}

#[test]
fn backends_without_a_check_answer_get_exactly_as_before() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let port = free_port();
    let req = go_body("ns_plain", port, "TCP", &[("127.0.0.2", b2.port)]);
    assert_eq!(env.post(&req).0, 200);
    let (_, text) = env.call("GET", "/api/v1/lb", "", &[]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sent: serde_json::Value = serde_json::from_str(&req).unwrap();
    // The backend exactly as sent: no healthy/lastCheck, no traffic fields.
    assert_eq!(v["backends"], serde_json::json!([sent]), "{text}");
}

/// `curl --interface SRC telnet://127.0.0.1:PORT`: what the upstream said, or None.
fn curl_from(src: &str, port: u16) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--interface", src])
        .arg(format!("telnet://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn udp_from(src: &str, port: u16) -> Option<String> {
    let s = UdpSocket::bind((src, 0)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.send_to(b"ping", ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

#[test]
fn source_ranges_allow_listed_clients_only_and_removal_reopens() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let port = free_port();
    let ups = [("127.0.0.2", b2.port)];
    let only_2 = r#""sourceRanges":["127.0.0.2/32"]"#;
    assert_eq!(env.post(&body("ns_sr", port, "TCP", &ups, only_2)).0, 200);
    let conf = std::fs::read_to_string(env.conf_file("ns_sr")).unwrap();
    assert!(
        conf.contains("allow 127.0.0.2/32;\n    deny all;"),
        "{conf}"
    );
    assert!(wait_until(PATIENCE, || curl_from("127.0.0.2", port)
        .as_deref()
        == Some("b2")));
    // From 127.0.0.1: nginx closes the connection without a byte from the upstream.
    for _ in 0..3 {
        assert_eq!(curl_from("127.0.0.1", port), None);
        assert_eq!(tcp_ident(port), None);
    }
    // Removing the ranges reopens the port to everyone.
    assert_eq!(env.post(&go_body("ns_sr", port, "TCP", &ups)).0, 200);
    assert!(wait_tcp(port, |a| a == Some("b2")));

    // UDP honours them as well.
    let u2 = Backend::udp("127.0.0.2", "u2");
    let uport = free_port();
    let uups = [("127.0.0.2", u2.port)];
    assert_eq!(
        env.post(&body("ns_sru", uport, "UDP", &uups, only_2)).0,
        200
    );
    assert!(wait_until(PATIENCE, || udp_from("127.0.0.2", uport)
        .as_deref()
        == Some("u2:ping")));
    assert_eq!(udp_from("127.0.0.1", uport), None);
}

#[test]
fn proxy_protocol_tells_the_upstream_the_client_address() {
    let env = Env::start(Options::default());
    let up = port_on("127.0.0.2");
    let _s = Server::start("127.0.0.2", up, echo_first_line, "");
    let port = free_port();
    let req = body(
        "ns_pp",
        port,
        "TCP",
        &[("127.0.0.2", up)],
        r#""proxyProtocol":true"#,
    );
    assert_eq!(env.post(&req).0, 200);
    let line = |src: &str| -> Option<String> {
        let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let _ = src;
        c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        c.write_all(b"hello\n").ok()?;
        let mut s = String::new();
        c.read_to_string(&mut s).ok()?;
        Some(s)
    };
    let mut got = None;
    assert!(wait_until(PATIENCE, || {
        got = line("127.0.0.1");
        got.as_deref().is_some_and(|s| s.starts_with("PROXY "))
    }));
    let got = got.unwrap();
    let f: Vec<&str> = got.trim_end().split(' ').collect();
    // PROXY TCP4 <client> <lb addr> <client port> <lb port>
    assert_eq!(f.len(), 6, "{got:?}");
    assert_eq!(
        (f[1], f[2], f[3]),
        ("TCP4", "127.0.0.1", "127.0.0.1"),
        "{got:?}"
    );
    assert_eq!(f[5], port.to_string());
    // Through curl from 127.0.0.2: the upstream sees 127.0.0.2.
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "--interface", "127.0.0.2"])
        .arg(format!("telnet://127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("PROXY TCP4 127.0.0.2 "), "{text:?}");
}

#[test]
fn bad_traffic_fields_are_400_naming_the_field_and_reach_nothing() {
    let env = Env::start(Options::default());
    let port = free_port();
    let ups = [("127.0.0.2", 30080)];
    let cases: &[(&str, &str, &str)] = &[
        ("UDP", r#""proxyProtocol":true"#, "proxyProtocol"),
        (
            "TCP",
            r#""sourceRanges":["10.0.0.0/33"]"#,
            "sourceRanges[0]",
        ),
        (
            "TCP",
            r#""sourceRanges":["127.0.0.1/32; allow all"]"#,
            "sourceRanges[0]",
        ),
        (
            "TCP",
            r#""healthCheck":{"type":"icmp"}"#,
            "healthCheck.type",
        ),
        (
            "TCP",
            r#""healthCheck":{"type":"http","path":"/a b"}"#,
            "healthCheck.path",
        ),
        (
            "TCP",
            r#""healthCheck":{"type":"http","path":"/a\r\nX: 1"}"#,
            "healthCheck.path",
        ),
        (
            "TCP",
            r#""healthCheck":{"type":"tcp","intervalSeconds":0}"#,
            "healthCheck.intervalSeconds",
        ),
        (
            "TCP",
            r#""healthCheck":{"type":"tcp","intervalSeconds":3601}"#,
            "healthCheck.intervalSeconds",
        ),
        (
            "TCP",
            r#""healthCheck":{"type":"tcp","port":0}"#,
            "healthCheck.port",
        ),
    ];
    let reloads = env.wrapper.reloads();
    for (proto, extra, field) in cases {
        let (code, text) = env.post(&body("ns_bad", port, proto, &ups, extra));
        assert_eq!(code, 400, "{extra}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["err"].as_str().unwrap().contains(field),
            "{field}: {text}"
        );
    }
    // Out of u16 range is a JSON error, also a 400 with {"err"}.
    let (code, text) = env.post(&body(
        "ns_bad",
        port,
        "TCP",
        &ups,
        r#""healthCheck":{"type":"tcp","port":70000}"#,
    ));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("\"err\""), "{text}");
    // 10,000 upstreams: refused.
    let many: Vec<(&str, u16)> = (0..10_000)
        .map(|i| ("127.0.0.2", 1 + (i % 60000) as u16))
        .collect();
    let (code, text) = env.post(&body(
        "ns_bad",
        port,
        "TCP",
        &many,
        r#""healthCheck":{"type":"tcp"}"#,
    ));
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("upstreamServers"), "{text}");
    assert!(!env.conf_file("ns_bad").exists());
    assert_eq!(env.wrapper.reloads(), reloads);
}
