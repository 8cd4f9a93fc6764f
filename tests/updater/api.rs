//! The HTTP surface: compatibility with the Go controller, auth, limits, errors, metrics.

use super::*;

#[test]
fn replays_the_go_controllers_exact_requests() {
    let env = Env::start(Options::default());
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let b3 = Backend::tcp("127.0.0.3", "b3");
    let port = free_port();
    // Byte for byte what the Go controller sends: Kubernetes-case protocol, zero timeouts, trailing
    // newline, no Content-Type.
    let body = format!(
        "{{\"backendName\":\"default_nginx\",\"lbPort\":{port},\"lbProtocol\":\"TCP\",\"upstreamServers\":[{{\"host\":\"127.0.0.2\",\"port\":{}}},{{\"host\":\"127.0.0.3\",\"port\":{}}}],\"proxyTimeoutSeconds\":0,\"proxyConnectTimeoutSeconds\":0}}\n",
        b2.port, b3.port
    );
    let (code, resp) = raw(env.addr(), "POST", "/api/v1/lb", body.as_bytes(), &[]);
    assert_eq!(code, 200, "{resp}");
    let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(v["backendName"], "default_nginx");
    let text = std::fs::read_to_string(env.conf_file("default_nginx")).unwrap();
    assert!(
        text.contains("proxy_timeout 600s;") && text.contains("proxy_connect_timeout 60s;"),
        "{text}"
    );
    assert!(wait_tcp(port, |s| s.is_some()));
    let del = "{\"backendName\":\"default_nginx\"}\n";
    let (code, resp) = raw(env.addr(), "DELETE", "/api/v1/lb", del.as_bytes(), &[]);
    assert_eq!(code, 200, "{resp}");
}

#[test]
fn auth_on_requires_the_bearer_token() {
    let env = Env::start(Options {
        token: Some("s3cret-token"),
        ..Options::default()
    });
    let body = go_body("ns_auth", free_port(), "TCP", &[("127.0.0.2", 30080)]);
    for h in [
        "Authorization: Bearer wrong",
        "Authorization: Basic czNjcmV0LXRva2Vu",
        "Authorization: Bearer s3cret-toke",
    ] {
        let (code, resp) = env.call("POST", "/api/v1/lb", &body, &[h]);
        assert_eq!(code, 401, "{h}: {resp}");
        assert!(
            resp.starts_with("{\"err\":") && !resp.contains("s3cret"),
            "{resp}"
        );
    }
    let (code, _) = raw(env.addr(), "GET", "/api/v1/lb", b"", &[]);
    assert_eq!(code, 401);
    assert_eq!(env.call("POST", "/api/v1/lb", &body, &[]).0, 200);
    // Probes stay open.
    assert_eq!(raw(env.addr(), "GET", "/healthz", b"", &[]).0, 200);
    assert_eq!(raw(env.addr(), "GET", "/metrics", b"", &[]).0, 200);
}

#[test]
fn auth_off_lets_requests_through() {
    let env = Env::start(Options::default());
    assert_eq!(raw(env.addr(), "GET", "/api/v1/lb", b"", &[]).0, 200);
}

#[test]
fn oversize_malformed_and_misrouted_requests_get_json_errors() {
    let env = Env::start(Options::default());
    let big = format!("{{\"backendName\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    let cases: Vec<(&str, &str, String, u16)> = vec![
        ("POST", "/api/v1/lb", big, 413),
        ("POST", "/api/v1/lb", "{not json".into(), 400),
        ("POST", "/api/v1/lb", "".into(), 400),
        ("POST", "/api/v1/lb", "[]".into(), 400),
        (
            "POST",
            "/api/v1/lb",
            r#"{"backendName":"a","lbPort":70000,"lbProtocol":"TCP","upstreamServers":[]}"#.into(),
            400,
        ),
        (
            "POST",
            "/api/v1/lb",
            r#"{"backendName":"a","lbPort":-1,"lbProtocol":"TCP","upstreamServers":[]}"#.into(),
            400,
        ),
        (
            "POST",
            "/api/v1/lb",
            go_body("a", 80, "TCP", &[("127.0.0.2", 1)]),
            400,
        ),
        ("DELETE", "/api/v1/lb", "{}".into(), 400),
        ("PUT", "/api/v1/lb", "{}".into(), 405),
        ("POST", "/healthz", "".into(), 405),
        ("GET", "/nope", "".into(), 404),
        ("GET", "/api/v2/lb", "".into(), 404),
    ];
    for (m, p, body, want) in cases {
        let (code, resp) = raw(env.addr(), m, p, body.as_bytes(), &[]);
        assert_eq!(
            code,
            want,
            "{m} {p} {}: {resp}",
            &body[..body.len().min(80)]
        );
        assert!(resp.starts_with("{\"err\":"), "{resp}");
    }
}

/// The longest backend name is written and served; one character more is a 400 naming the field
/// (written, its temp file's name would pass the file system's 255 bytes: a 500 for ever). A
/// DELETE of such a name is answered as for any absent backend (a finalizer must not stick).
#[test]
fn the_longest_backend_name_is_written_and_a_longer_one_is_a_400() {
    let env = Env::start(Options::default());
    let longest = "a".repeat(245);
    let up = [("127.0.0.2", 30080)];
    let (code, resp) = env.post(&go_body(&longest, free_port(), "TCP", &up));
    assert_eq!(code, 200, "{resp}");
    assert!(env.conf_file(&longest).exists());
    let longer = "a".repeat(246);
    let (code, resp) = env.post(&go_body(&longer, free_port(), "TCP", &up));
    assert_eq!(code, 400, "{resp}");
    assert!(resp.contains("backendName"), "{resp}");
    let (code, resp) = env.delete(&longer);
    assert_eq!(code, 200, "{resp}");
}

#[test]
fn a_port_used_by_another_backend_with_the_same_protocol_is_a_conflict() {
    let env = Env::start(Options::default());
    let port = free_port();
    assert_eq!(
        env.post(&go_body("ns_one", port, "TCP", &[("127.0.0.2", 30080)]))
            .0,
        200
    );
    let (code, resp) = env.post(&go_body("ns_two", port, "TCP", &[("127.0.0.2", 30080)]));
    assert_eq!(code, 409, "{resp}");
    assert!(resp.contains("ns_one"), "{resp}");
    // The same number over UDP is another socket.
    assert_eq!(
        env.post(&go_body("ns_two", port, "UDP", &[("127.0.0.2", 30080)]))
            .0,
        200
    );
}

#[test]
fn metrics_count_requests_applies_and_reloads() {
    let env = Env::start(Options::default());
    assert_eq!(
        env.post(&go_body(
            "ns_m",
            free_port(),
            "TCP",
            &[("127.0.0.2", 30080)]
        ))
        .0,
        200
    );
    assert_eq!(env.call("GET", "/nope", "", &[]).0, 404);
    let (code, text) = env.call("GET", "/metrics", "", &[]);
    assert_eq!(code, 200);
    let page = crate::prom::parse(&text)
        .unwrap_or_else(|e| panic!("/metrics is not valid exposition text: {e}\n{text}"));
    let post_ok = [("route", "/api/v1/lb"), ("method", "POST"), ("code", "200")];
    assert_eq!(
        page.value("paperlb_updater_http_requests_total", &post_ok),
        Some(1.0)
    );
    for want in [
        "paperlb_updater_http_requests_total{route=\"/api/v1/lb\",method=\"POST\",code=\"200\"} 1",
        "paperlb_updater_http_requests_total{route=\"other\",method=\"GET\",code=\"404\"} 1",
        "paperlb_updater_applies_total{outcome=\"applied\"} 1",
        "paperlb_updater_nginx_reloads_total 1",
        "# TYPE paperlb_updater_nginx_reload_failures_total counter",
        "paperlb_updater_last_successful_reload_timestamp_seconds 1",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}
