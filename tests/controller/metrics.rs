//! `/metrics` of the controller binary: the page passes the exposition-format checker
//! (`support::prom`), the families the issue lists are there, and counters move as the fake API's
//! request log and the recording updater say they must after a Service is created. Also the
//! checker's own table: it must refuse what Prometheus would refuse.
//! Helpers here (`free_port`, `http_get`, `scrape`) serve the other probe tests too.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::harness::{Controller, World, upstream_hosts, wait_for};
use crate::support::prom::{self, Exposition};

/// A loopback port nothing listens on right now (the controller binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The value for `--metrics-addr` (given to `Controller::start_with`, it overrides the harness's
/// `off`: the last flag wins).
pub fn metrics_addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// One GET on loopback: (status, Content-Type, body), or None when nothing answers (yet).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Some((code, content_type, body.to_string()))
}

/// The status code of a probe, 0 when nothing answers.
pub fn probe(port: u16, path: &str) -> u16 {
    http_get(port, path).map_or(0, |(code, _, _)| code)
}

/// Scrapes and checks `/metrics`; None while nothing answers, a panic if the page is malformed.
pub fn try_scrape(port: u16) -> Option<Exposition> {
    let (code, content_type, body) = http_get(port, "/metrics")?;
    assert_eq!(code, 200, "/metrics answered {code}: {body}");
    assert_eq!(content_type, "text/plain; version=0.0.4", "Content-Type");
    match prom::parse(&body) {
        Ok(page) => Some(page),
        Err(e) => panic!("/metrics is not valid exposition text: {e}\n{body}"),
    }
}

pub fn scrape(port: u16) -> Exposition {
    try_scrape(port).expect("the controller serves /metrics")
}

/// Value of a series, 0 when absent.
pub fn val(m: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.value(name, labels).unwrap_or(0.0)
}

/// The fake's request log as `(verb, code) -> count`, named as the client names verbs.
fn api_requests_by_verb(w: &World) -> std::collections::BTreeMap<(String, u16), f64> {
    let mut out = std::collections::BTreeMap::new();
    for r in w.api.requests() {
        let verb = match r.method.as_str() {
            // get, list and watch are told apart below by the controller's own labels; the log
            // only says GET, so they are summed on both sides.
            "GET" => "get+list+watch",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            other => panic!("unexpected method {other}"),
        };
        *out.entry((verb.to_string(), r.status)).or_insert(0.0) += 1.0;
    }
    out
}

fn api_requests_by_verb_from(m: &Exposition) -> std::collections::BTreeMap<(String, u16), f64> {
    let mut out = std::collections::BTreeMap::new();
    for s in m
        .samples()
        .filter(|s| s.name == "paperlb_api_requests_total")
    {
        let verb = match s.label("verb").unwrap_or("") {
            "get" | "list" | "watch" => "get+list+watch",
            v => v,
        };
        let code: u16 = s.label("code").and_then(|c| c.parse().ok()).unwrap_or(0);
        *out.entry((verb.to_string(), code)).or_insert(0.0) += s.value;
    }
    out
}

const RESOURCES: [&str; 6] = [
    "services",
    "nodes",
    "loadbalancers",
    "loadbalancerconfigs",
    "endpointslices",
    "secrets",
];

#[test]
fn metrics_parse_and_count_a_service_create() {
    let w = World::new("metrics");
    let port = free_port();
    let addr = metrics_addr(port);
    let _c = Controller::start_with(&w.kubeconfig, &["--metrics-addr", addr.as_str()]);
    wait_for("/readyz 200", || probe(port, "/readyz") == 200);
    let before = scrape(port);

    // Every family the issue lists is declared with its type, before anything happened.
    for (name, kind) in [
        ("paperlb_reconciles_total", "counter"),
        ("paperlb_reconcile_duration_seconds", "histogram"),
        ("paperlb_queue_depth", "gauge"),
        ("paperlb_watch_restarts_total", "counter"),
        ("paperlb_watch_relists_total", "counter"),
        ("paperlb_watch_errors_total", "counter"),
        ("paperlb_watch_events_total", "counter"),
        ("paperlb_api_requests_total", "counter"),
        ("paperlb_api_writes_total", "counter"),
        ("paperlb_updater_calls_total", "counter"),
        ("paperlb_updater_call_duration_seconds", "histogram"),
        ("paperlb_loadbalancers", "gauge"),
        ("paperlb_ports_allocated", "gauge"),
        ("paperlb_ports_free", "gauge"),
        ("paperlb_leader", "gauge"),
        ("paperlb_leader_changes_total", "counter"),
        ("paperlb_build_info", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        let f = before
            .family(name)
            .unwrap_or_else(|| panic!("no family {name}"));
        assert_eq!(f.kind, kind, "{name}");
        assert!(
            f.help.as_deref().is_some_and(|h| !h.is_empty()),
            "{name} has no HELP"
        );
    }
    for what in ["restarts", "relists", "errors", "events"] {
        let name = format!("paperlb_watch_{what}_total");
        assert_eq!(before.label_values(&name, "resource"), {
            let mut r = RESOURCES.map(String::from).to_vec();
            r.sort();
            r
        });
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        before.value("paperlb_build_info", &[("version", version)]),
        Some(1.0)
    );
    assert_eq!(
        before.value("paperlb_leader", &[]),
        Some(1.0),
        "no election: leader"
    );
    assert!(val(&before, "process_start_time_seconds", &[]) > 1.6e9);
    // Synced from one LIST each, no relist; the watches are open.
    for r in RESOURCES {
        assert_eq!(
            val(&before, "paperlb_watch_relists_total", &[("resource", r)]),
            0.0,
            "{r}"
        );
    }
    assert_eq!(
        before.sum(
            "paperlb_api_requests_total",
            &[("verb", "list"), ("code", "200")]
        ),
        RESOURCES.len() as f64
    );

    w.service("web", &[("http", 80, "TCP"), ("dns", 53, "UDP")]);
    wait_for("web READY", || w.ready("web"));
    // The cache-wide gauges are refreshed when the worker's batch ends: wait for that, not a time.
    wait_for("the gauges show the READY LoadBalancer", || {
        try_scrape(port).is_some_and(|m| {
            val(&m, "paperlb_loadbalancers", &[("phase", "READY")]) == 1.0
                && val(&m, "paperlb_queue_depth", &[]) == 0.0
        })
    });
    // Every request the fake answered has been counted by the controller once it has its answer.
    wait_for("API request counts equal the fake's log", || {
        api_requests_by_verb_from(&scrape(port)) == api_requests_by_verb(&w)
    });
    let after = scrape(port);

    // LoadBalancers by phase and ports: one LB, two ports out of 8100-8199.
    for (phase, n) in [
        ("READY", 1.0),
        ("PENDING", 0.0),
        ("ERROR", 0.0),
        ("other", 0.0),
    ] {
        assert_eq!(
            after.value("paperlb_loadbalancers", &[("phase", phase)]),
            Some(n),
            "{phase}"
        );
    }
    assert_eq!(
        after.value("paperlb_ports_allocated", &[("config", "edge")]),
        Some(2.0)
    );
    assert_eq!(
        after.value("paperlb_ports_free", &[("config", "edge")]),
        Some(98.0)
    );

    // Updater calls: one apply per port, as the recorder saw them, each timed.
    let posts = w.updater.posts();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|p| upstream_hosts(p).len() == 2));
    let applies = val(
        &after,
        "paperlb_updater_calls_total",
        &[("op", "apply"), ("result", "ok")],
    );
    assert_eq!(applies, 2.0);
    assert_eq!(
        after.sum("paperlb_updater_calls_total", &[("result", "error")]),
        0.0
    );
    assert_eq!(
        val(
            &after,
            "paperlb_updater_call_duration_seconds_count",
            &[("op", "apply")]
        ),
        2.0
    );

    // Reconciles: some applied a plan; every reconcile was timed once.
    assert!(val(&after, "paperlb_reconciles_total", &[("result", "applied")]) >= 1.0);
    assert_eq!(
        after.sum("paperlb_reconciles_total", &[]),
        val(&after, "paperlb_reconcile_duration_seconds_count", &[]),
        "one duration per reconcile"
    );

    // API writes: the LoadBalancer create and the patches, as the fake logged them (Events apart).
    let logged = |method: &str| {
        w.api
            .requests()
            .iter()
            .filter(|r| r.method == method && !r.path.contains("/events"))
            .count() as f64
    };
    assert_eq!(
        val(&after, "paperlb_api_writes_total", &[("verb", "create")]),
        logged("POST")
    );
    assert_eq!(
        val(&after, "paperlb_api_writes_total", &[("verb", "patch")]),
        logged("PATCH")
    );
    assert!(
        val(
            &after,
            "paperlb_api_requests_total",
            &[("verb", "create"), ("code", "201")]
        ) >= 1.0
    );

    // The watches saw the Service and the LoadBalancer change, with no restart or error.
    for r in ["services", "loadbalancers"] {
        let events = |m: &Exposition| val(m, "paperlb_watch_events_total", &[("resource", r)]);
        assert!(events(&after) > events(&before), "{r}: no events counted");
    }
    for r in RESOURCES {
        assert_eq!(
            val(&after, "paperlb_watch_errors_total", &[("resource", r)]),
            0.0,
            "{r}"
        );
    }

    // Nothing counted goes down between scrapes (histogram buckets and counts included).
    let counted = before
        .families
        .iter()
        .filter(|f| f.kind == "counter" || f.kind == "histogram");
    for s in counted.flat_map(|f| f.samples.iter()) {
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let now = after.value(&s.name, &labels).unwrap_or(f64::NAN);
        assert!(
            now >= s.value,
            "{} {:?} went from {} to {now}",
            s.name,
            s.labels,
            s.value
        );
    }
}

/// What the checker must refuse, each with the reason it names; and a page it must accept.
#[test]
fn exposition_checker_accepts_valid_text_and_refuses_malformed_lines() {
    let good = "\
# HELP a_total Requests, with \\\\ and \\n in help.
# TYPE a_total counter
a_total{route=\"/x\",code=\"200\"} 3
a_total{route=\"q\\\"uote\\\\back\\nnl\",code=\"500\"} 1 1700000000000
# a plain comment
# TYPE g gauge
g -1.5
g{x=\"y\",} NaN
# TYPE h histogram
h_bucket{le=\"0.1\"} 1
h_bucket{le=\"1\"} 2
h_bucket{le=\"+Inf\"} 3
h_sum 5.5
h_count 3
";
    let page = prom::parse(good).expect("valid page");
    assert_eq!(page.families.len(), 3);
    assert_eq!(
        page.value(
            "a_total",
            &[("code", "500"), ("route", "q\"uote\\back\nnl")]
        ),
        Some(1.0)
    );
    assert_eq!(
        page.family("a_total")
            .and_then(|f| f.help.clone())
            .as_deref(),
        Some("Requests, with \\ and \n in help.")
    );
    assert_eq!(page.sum("a_total", &[]), 4.0);
    assert!(page.value("g", &[("x", "y")]).is_some_and(f64::is_nan));

    let t = "# TYPE c counter\n";
    let h = "# TYPE h histogram\n";
    for (text, why) in [
        (format!("{t}c 1"), "last line"),
        (format!("{t}c 1\r\n"), "carriage return"),
        (format!("{t}\nc 1\n"), "empty line"),
        ("c 1\n".to_string(), "no # TYPE"),
        (format!("{t}c\n"), "needs a value"),
        (format!("{t}c one\n"), "not a number"),
        (format!("{t}c -1\n"), "negative"),
        (format!("{t}c 1 12.5\n"), "timestamp"),
        (format!("{t}c 1 2 3\n"), "after the timestamp"),
        (format!("{t}c{{a=\"1\"}}1\n"), "no blank"),
        (format!("{t}c{{a=1}} 1\n"), "not quoted"),
        (format!("{t}c{{a=\"1}} 1\n"), "unterminated"),
        (format!("{t}c{{a=\"\\t\"}} 1\n"), "invalid escape"),
        (format!("{t}c{{a=\"1\" b=\"2\"}} 1\n"), "expected ,"),
        (format!("{t}c{{1a=\"1\"}} 1\n"), "invalid label name"),
        (format!("{t}c{{__a=\"1\"}} 1\n"), "reserved"),
        (format!("{t}c{{a=\"1\",a=\"2\"}} 1\n"), "twice"),
        (
            format!("{t}c{{a=\"1\"}} 1\nc{{a=\"1\"}} 2\n"),
            "duplicate series",
        ),
        (format!("{t}c{{le=\"1\"}} 1\n"), "le outside"),
        ("# TYPE 1c counter\n".to_string(), "invalid metric name"),
        ("# TYPE c countr\n".to_string(), "unknown type"),
        ("# TYPE c\n".to_string(), "needs a name and a type"),
        (format!("{t}{t}"), "second TYPE"),
        ("# HELP c x\n# HELP c y\n".to_string(), "second HELP"),
        ("# HELP c bad \\t escape\n".to_string(), "in HELP"),
        (format!("{t}c 1\n# TYPE c counter\n"), "second TYPE"),
        (
            format!("{t}c{{a=\"1\"}} 1\n# TYPE d gauge\nd 1\nc{{a=\"2\"}} 1\n"),
            "not together",
        ),
        (format!("{h}h 1\n"), "no # TYPE"),
        (format!("{h}h_bucket 1\nh_sum 1\nh_count 1\n"), "without le"),
        (
            format!("{h}h_bucket{{le=\"1\"}} 1\nh_sum 1\nh_count 1\n"),
            "+Inf",
        ),
        (
            format!("{h}h_bucket{{le=\"1\"}} 2\nh_bucket{{le=\"+Inf\"}} 1\nh_sum 1\nh_count 1\n"),
            "go down",
        ),
        (
            format!(
                "{h}h_bucket{{le=\"2\"}} 1\nh_bucket{{le=\"1\"}} 1\nh_bucket{{le=\"+Inf\"}} 1\nh_sum 1\nh_count 1\n"
            ),
            "not ascending",
        ),
        (
            format!("{h}h_bucket{{le=\"+Inf\"}} 2\nh_sum 1\nh_count 3\n"),
            "differs",
        ),
        (
            format!("{h}h_bucket{{le=\"+Inf\"}} 2\nh_sum 1\n"),
            "no _count",
        ),
        (
            format!("{h}h_bucket{{le=\"+Inf\"}} 2\nh_count 2\n"),
            "no _sum",
        ),
        (format!("{h}h_sum 1\nh_count 2\n"), "no buckets"),
        (format!("{h}h_bucket{{le=\"x\"}} 1\n"), "not a number"),
        (
            format!("{h}h_bucket{{le=\"+Inf\"}} 1.5\nh_sum 1\nh_count 1.5\n"),
            "not a count",
        ),
    ] {
        match prom::parse(&text) {
            Ok(_) => panic!("accepted ({why}): {text:?}"),
            Err(e) => assert!(
                e.contains(why),
                "{text:?}: error {e:?} does not say {why:?}"
            ),
        }
    }
}
