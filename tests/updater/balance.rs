//! Balancing with real nginx and real traffic: `hash` keeps each client address on one upstream
//! while round robin spreads one address's connections; `least-conn` sends new connections away
//! from an upstream holding a long-lived one; UDP hashes the same way; a bad `balance` is a 400
//! naming the field.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{TcpStream, UdpSocket};
use std::process::Command;

use super::*;

/// A second nginx whose port `i` forwards to LB port `to[i].1` from client address `to[i].0`
/// (`proxy_bind`): std cannot choose a TCP connection's source address, nginx can. Returns it
/// (stopped on drop) and its ports, once each answers.
fn clients_from(to: &[(&str, u16)]) -> (Nginx, Vec<u16>) {
    let n = Nginx::start();
    let ports: Vec<u16> = to.iter().map(|_| free_port()).collect();
    let conf: String = to
        .iter()
        .zip(&ports)
        .map(|((src, lb), p)| {
            assert!(src.starts_with("127."), "loopback only: {src}");
            format!(
                "server {{ listen 127.0.0.1:{p}; proxy_pass 127.0.0.1:{lb}; proxy_bind {src}; }}\n"
            )
        })
        .collect();
    std::fs::write(n.streams.join("clients.conf"), conf).unwrap();
    let conf = n.conf.display().to_string();
    let reload = Command::new(nginx::NGINX)
        .args(["-c", &conf, "-s", "reload"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&reload.stderr);
    assert!(reload.status.success(), "reload: {err}");
    let up = wait_until(PATIENCE, || ports.iter().all(|p| tcp_ident(*p).is_some()));
    assert!(up, "client nginx does not forward: {ports:?}");
    (n, ports)
}

/// The upstreams `n` connections through `port` reach.
fn reached(port: u16, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| tcp_ident(port).unwrap_or_else(|| "(none)".into()))
        .collect()
}

fn with_balance(body: &str, balance: &str) -> String {
    body.trim_end()
        .strip_suffix('}')
        .map(|b| format!("{b},\"balance\":\"{balance}\"}}"))
        .unwrap()
}

#[test]
fn hash_keeps_each_client_address_on_one_upstream_and_round_robin_spreads_it() {
    let env = Env::start(Options::default());
    let (b2, b3) = (
        Backend::tcp("127.0.0.2", "b2"),
        Backend::tcp("127.0.0.3", "b3"),
    );
    let ups = [("127.0.0.2", b2.port), ("127.0.0.3", b3.port)];
    // One LB port each, so no worker of an earlier configuration answers for the other.
    let (rr, hash) = (free_port(), free_port());
    let (code, resp) = env.post(&go_body("default_rr", rr, "TCP", &ups));
    assert_eq!(code, 200, "{resp}");
    let (code, resp) = env.post(&with_balance(
        &go_body("default_hash", hash, "TCP", &ups),
        "hash",
    ));
    assert_eq!(code, 200, "{resp}");
    let text = std::fs::read_to_string(env.conf_file("default_hash")).unwrap();
    assert!(
        text.contains("upstream paperlb_default_hash {\n    hash $remote_addr consistent;\n"),
        "{text}"
    );
    let sources = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"];
    let mut to: Vec<(&str, u16)> = sources.iter().map(|s| (*s, hash)).collect();
    to.push((sources[0], rr));
    let (_clients, ports) = clients_from(&to);
    for (src, port) in sources.iter().zip(&ports) {
        let seen = reached(*port, 8);
        assert_eq!(seen.len(), 1, "{src} reached {seen:?} under hash");
        assert!(seen.is_subset(&BTreeSet::from(["b2".into(), "b3".into()])));
    }
    let spread = reached(ports[4], 8);
    assert_eq!(
        spread,
        BTreeSet::from(["b2".to_string(), "b3".to_string()]),
        "{} under round robin",
        sources[0]
    );
}

/// Connects to LB port `port` and reads the upstream's first line; the connection stays open
/// while the stream lives.
fn first_line(port: u16) -> Option<(String, TcpStream)> {
    let mut c = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), PATIENCE).ok()?;
    c.set_read_timeout(Some(PATIENCE)).ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while c.read(&mut byte).ok()? == 1 && byte[0] != b'\n' && line.len() < 64 {
        line.push(byte[0]);
    }
    Some((String::from_utf8_lossy(&line).to_string(), c))
}

#[test]
fn least_conn_sends_new_connections_away_from_an_upstream_holding_one() {
    let env = Env::start(Options::default());
    let (hold, b3) = (
        Backend::tcp_holding("127.0.0.2", "hold"),
        Backend::tcp("127.0.0.3", "b3"),
    );
    let port = free_port();
    let body = go_body(
        "default_db",
        port,
        "TCP",
        &[("127.0.0.2", hold.port), ("127.0.0.3", b3.port)],
    );
    let (code, resp) = env.post(&with_balance(&body, "least-conn"));
    assert_eq!(code, 200, "{resp}");
    let text = std::fs::read_to_string(env.conf_file("default_db")).unwrap();
    assert!(text.contains("    least_conn;\n"), "{text}");
    // Ties go round robin: within a few connections one lands on `hold` and stays open.
    let mut held = None;
    for _ in 0..6 {
        match first_line(port) {
            Some((who, c)) if who == "hold" => {
                held = Some(c);
                break;
            }
            _ => {}
        }
    }
    assert!(held.is_some(), "no connection reached the holding upstream");
    // While it is open, `hold` has one active connection and b3 none (each closes at once):
    // least_conn sends every new one to b3 (round robin would send every other one to `hold`).
    let seen: Vec<String> = (0..6)
        .map(|_| first_line(port).map_or("(none)".into(), |(who, _)| who))
        .collect();
    assert_eq!(seen, vec!["b3"; 6]);
    drop(held);
}

#[test]
fn random_two_renders_and_serves_and_a_bad_balance_is_a_400_naming_it() {
    let env = Env::start(Options::default());
    let (b2, b3) = (
        Backend::tcp("127.0.0.2", "b2"),
        Backend::tcp("127.0.0.3", "b3"),
    );
    let port = free_port();
    let body = go_body(
        "default_r2",
        port,
        "TCP",
        &[("127.0.0.2", b2.port), ("127.0.0.3", b3.port)],
    );
    let (code, resp) = env.post(&with_balance(&body, "random-two"));
    assert_eq!(code, 200, "{resp}");
    let text = std::fs::read_to_string(env.conf_file("default_r2")).unwrap();
    assert!(text.contains("    random two least_conn;\n"), "{text}");
    assert!(wait_tcp(port, |s| matches!(s, Some("b2" | "b3"))));
    let reloads = env.wrapper.reloads();
    let (code, resp) = env.post(&with_balance(&body, "sticky"));
    assert_eq!(code, 400, "{resp}");
    let err: serde_json::Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(
        err["err"],
        "invalid request: balance \"sticky\": must be round-robin, least-conn, hash or random-two"
    );
    assert_eq!(env.wrapper.reloads(), reloads);
    assert!(std::fs::read_to_string(env.conf_file("default_r2")).unwrap() == text);
}

/// The upstream one datagram from a fresh socket on `src` reaches through LB port `port` (each
/// socket is a new nginx session); sent again until answered, within `PATIENCE`.
fn udp_from(src: &str, port: u16) -> Option<String> {
    let s = UdpSocket::bind((src, 0)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        s.send_to(b"ping", ("127.0.0.1", port)).ok()?;
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    None
}

#[test]
fn udp_hash_keeps_each_client_address_on_one_upstream() {
    let env = Env::start(Options::default());
    let (u2, u3) = (
        Backend::udp("127.0.0.2", "u2"),
        Backend::udp("127.0.0.3", "u3"),
    );
    let ups = [("127.0.0.2", u2.port), ("127.0.0.3", u3.port)];
    let (rr, hash) = (free_port(), free_port());
    let (code, resp) = env.post(&go_body("default_udp_rr", rr, "UDP", &ups));
    assert_eq!(code, 200, "{resp}");
    let body = with_balance(&go_body("default_udp_hash", hash, "UDP", &ups), "hash");
    let (code, resp) = env.post(&body);
    assert_eq!(code, 200, "{resp}");
    for src in ["127.0.0.21", "127.0.0.22", "127.0.0.23"] {
        let seen: BTreeSet<Option<String>> = (0..6).map(|_| udp_from(src, hash)).collect();
        assert_eq!(seen.len(), 1, "{src} reached {seen:?} under hash");
        assert!(seen.iter().all(|s| s.is_some()), "{src}: {seen:?}");
    }
    let spread: BTreeSet<Option<String>> = (0..6).map(|_| udp_from("127.0.0.21", rr)).collect();
    assert_eq!(
        spread,
        BTreeSet::from([Some("u2:ping".to_string()), Some("u3:ping".to_string())])
    );
}
