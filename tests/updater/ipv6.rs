//! IPv6 through a real nginx on `::1` (the one IPv6 loopback address: upstreams differ by port):
//! an IPv6 LB port forwarding to IPv6 upstreams (TCP and UDP), a dual-stack LB host
//! (`--lb-address 127.0.0.1,::1`) serving both families from one upstream list, a dead IPv6
//! upstream marked `down` by the health check, and IPv6 garbage refused with a 4xx JSON body. The
//! same across network namespaces: `netns.rs`.

use std::collections::BTreeSet;
use std::net::{Ipv6Addr, SocketAddr};

use super::*;

/// The idents answering `n` connections to `addr`.
fn idents(addr: SocketAddr, n: usize) -> BTreeSet<String> {
    (0..n).filter_map(|_| tcp_ident_at(addr)).collect()
}

fn v6(port: u16) -> SocketAddr {
    (Ipv6Addr::LOCALHOST, port).into()
}

#[test]
fn an_ipv6_lb_port_forwards_to_ipv6_upstreams_and_a_dual_stack_host_serves_both() {
    // Mandatory: this sandbox has ::1 (`ip -6 addr`); a box without it fails here, loudly.
    let a = Backend::tcp("::1", "v6-a");
    let b = Backend::tcp("::1", "v6-b");
    let mut env = Env::start(Options {
        lb_address: Some("::1"),
        ..Options::default()
    });
    let port = free_port();
    // Both spellings of an IPv6 upstream host: bare and in brackets.
    let body = go_body(
        "default_v6",
        port,
        "TCP",
        &[("::1", a.port), ("[::1]", b.port)],
    );
    let (code, resp) = env.post(&body);
    assert_eq!(code, 200, "{resp}");
    let text = std::fs::read_to_string(env.conf_file("default_v6")).unwrap();
    for line in [
        format!("    server [::1]:{};\n", a.port),
        format!("    server [::1]:{};\n", b.port),
        format!("    listen [::1]:{port};\n"),
    ] {
        assert!(text.contains(&line), "{line:?} in {text}");
    }
    let want: BTreeSet<String> = ["v6-a", "v6-b"].map(String::from).into();
    assert!(
        wait_until(PATIENCE, || idents(v6(port), 6) == want),
        "{:?}",
        idents(v6(port), 6)
    );
    assert_eq!(tcp_ident(port), None, "IPv6 only: nothing on 127.0.0.1");

    // IPv6 garbage is a 400 with a JSON body naming the field; nothing changes.
    for bad in ["fd00::zz", "[::1", "::1]", "::1%lo", "1::2::3"] {
        let (code, resp) = env.post(&go_body("default_v6", port, "TCP", &[(bad, a.port)]));
        assert_eq!(code, 400, "{bad}: {resp}");
        assert!(
            resp.starts_with("{\"err\":") && resp.contains("upstreamServers[0].host"),
            "{bad}: {resp}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(env.conf_file("default_v6")).unwrap(),
        text
    );

    // Dual stack: the host listens on both families, and one upstream list holds both.
    let c = Backend::tcp("127.0.0.2", "v4-c");
    env.lb_addresses = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    env.restart_updater();
    let body = go_body(
        "default_v6",
        port,
        "TCP",
        &[("127.0.0.2", c.port), ("::1", a.port)],
    );
    let (code, resp) = env.post(&body);
    assert_eq!(code, 200, "{resp}");
    let text = std::fs::read_to_string(env.conf_file("default_v6")).unwrap();
    assert!(
        text.contains(&format!(
            "    listen 127.0.0.1:{port};\n    listen [::1]:{port};\n"
        )),
        "{text}"
    );
    let want: BTreeSet<String> = ["v4-c", "v6-a"].map(String::from).into();
    for addr in [v6(port), ([127, 0, 0, 1], port).into()] {
        assert!(
            wait_until(PATIENCE, || idents(addr, 6) == want),
            "{addr}: {:?}",
            idents(addr, 6)
        );
    }
    assert_eq!(env.delete("default_v6").0, 200);
    assert!(wait_until(PATIENCE, || tcp_ident_at(v6(port)).is_none()));
}

#[test]
fn udp_over_ipv6_reaches_an_ipv6_upstream() {
    let up = Backend::udp("::1", "v6-udp");
    let env = Env::start(Options {
        lb_address: Some("::1"),
        ..Options::default()
    });
    let port = free_port();
    let (code, resp) = env.post(&go_body("default_dns", port, "UDP", &[("::1", up.port)]));
    assert_eq!(code, 200, "{resp}");
    let ask = || {
        let s = std::net::UdpSocket::bind("[::1]:0").ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .ok()?;
        s.send_to(b"hi", v6(port)).ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).to_string())
    };
    assert!(
        wait_until(PATIENCE, || ask().as_deref() == Some("v6-udp:hi")),
        "{:?}",
        ask()
    );
}

#[test]
fn a_dead_ipv6_upstream_is_marked_down_by_the_tcp_check() {
    let live = Backend::tcp("::1", "v6-live");
    // A port on ::1 that nothing listens on.
    let dead = std::net::TcpListener::bind("[::1]:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let env = Env::start(Options {
        lb_address: Some("::1"),
        ..Options::default()
    });
    let port = free_port();
    let plain = go_body(
        "default_hc6",
        port,
        "TCP",
        &[("::1", live.port), ("::1", dead)],
    );
    let check = r#""healthCheck":{"type":"tcp","intervalSeconds":1,"unhealthyThreshold":2}"#;
    let body = format!("{},{check}}}", plain.trim_end().trim_end_matches('}'));
    let (code, resp) = env.post(&body);
    assert_eq!(code, 200, "{resp}");
    let conf = || std::fs::read_to_string(env.conf_file("default_hc6")).unwrap_or_default();
    let down = format!("    server [::1]:{dead} down;\n");
    assert!(
        wait_until(PATIENCE, || conf().contains(&down)),
        "{}",
        conf()
    );
    assert!(conf().contains(&format!("    server [::1]:{};\n", live.port)));
    assert_eq!(idents(v6(port), 6), ["v6-live".to_string()].into());
}
