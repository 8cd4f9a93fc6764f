//! `make bench`: measures the release `paperlb controller` against the test suite's fake API server
//! and a recording updater (part `controller`), the watch client (`watch`), and the release `paperlb
//! nginx-updater` in front of a private nginx (`updater`), all on loopback, and writes
//! `target/bench/results.json`.
//!
//! ```text
//! cargo build --release --locked --bin paperlb --example bench && target/release/examples/bench
//! ```
//! Every wait is bounded; every child process is killed on drop. See `bench/README.md` for what each
//! figure means and how it is taken.

#![forbid(unsafe_code)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "bench/real_api.rs"]
mod real_api;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paperlb::http::{Limits, Request, Response, Server};
use serde_json::{Value, json};

use support::fake_api::{FakeApi, FakeOptions, Latency};

const NS: &str = "paperlb-system";
/// The Deployment's `GLIBC_TUNABLES` (a test in tests/manifests checks the Deployment sets it).
const MALLOC_TUNABLES: &str = "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0";
const LB_HOST: &str = "127.0.0.10";
const NODES: usize = 100;
const SERVICES: usize = 1000;
const SEQUENTIAL: usize = 100;
const WATCH_OBJECTS: usize = 5000;
const STEADY: Duration = Duration::from_secs(20);
/// Upper bound of any single wait; the bench fails loudly rather than hang.
const WAIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Recording updater

/// One call the updater received: when, what, for which backend, with which upstream hosts.
#[derive(Clone)]
struct Call {
    at: Instant,
    method: String,
    backend: String,
    hosts: Vec<String>,
}

struct Updater {
    calls: Arc<Mutex<Vec<Call>>>,
    server: Option<Server>,
    url: String,
}

impl Updater {
    fn start() -> Updater {
        Updater::start_at("127.0.0.1:0")
    }

    /// On a given address (an LB host that comes back where it was).
    fn start_at(addr: &str) -> Updater {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let c = calls.clone();
        // What was posted, so the controller's drift checks see a converged host (as with
        // paperlb nginx-updater) and their GETs are not counted as calls.
        let held: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
        let server = Server::bind(addr, Limits::default(), None, move |req: &Request| {
            if req.method == "GET" && req.path == "/api/v1/lb" {
                let all: Vec<Value> = held.lock().unwrap().values().cloned().collect();
                return Response::json(200, &json!({"backends": all, "unreadable": []}));
            }
            let r = record(req, &c);
            if let Ok(body) = serde_json::from_slice::<Value>(&req.body) {
                let name = body["backendName"].as_str().unwrap_or_default().to_string();
                match req.method.as_str() {
                    "POST" => {
                        held.lock().unwrap().insert(name, body);
                    }
                    "DELETE" => {
                        held.lock().unwrap().remove(&name);
                    }
                    _ => {}
                }
            }
            r
        })
        .expect("bind recording updater");
        let url = format!("http://{}", server.local_addr());
        Updater {
            calls,
            server: Some(server),
            url,
        }
    }

    fn len(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn since(&self, from: usize) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls[from.min(calls.len())..].to_vec()
    }
}

impl Drop for Updater {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            drop(s);
        }
    }
}

fn record(req: &Request, calls: &Mutex<Vec<Call>>) -> Response {
    let at = Instant::now();
    if req.path != "/api/v1/lb" {
        return Response::error(404, "not found");
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let hosts = body["upstreamServers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["host"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    calls.lock().unwrap().push(Call {
        at,
        method: req.method.clone(),
        backend: body["backendName"].as_str().unwrap_or_default().to_string(),
        hosts,
    });
    match req.method.as_str() {
        "POST" | "DELETE" => Response::json(200, &json!({"status": "ok"})),
        _ => Response::error(405, "method not allowed"),
    }
}

// ---------------------------------------------------------------------------------------------
// The controller process

struct Controller {
    child: Option<Child>,
    metrics: Option<u16>,
}

impl Controller {
    /// `metrics`: serve /metrics and /readyz on this loopback port (else `--metrics-addr off`).
    fn start(bin: &Path, kubeconfig: &Path, metrics: Option<u16>) -> Controller {
        Controller::start_with(bin, kubeconfig, metrics, &[])
    }

    fn start_with(
        bin: &Path,
        kubeconfig: &Path,
        metrics: Option<u16>,
        extra: &[&str],
    ) -> Controller {
        Controller::spawn(bin, kubeconfig, NS, metrics, extra)
    }

    /// With `--namespace ns` (where its LoadBalancerConfigs live).
    fn spawn(
        bin: &Path,
        kubeconfig: &Path,
        ns: &str,
        metrics: Option<u16>,
        extra: &[&str],
    ) -> Controller {
        let addr = metrics.map_or_else(|| "off".to_string(), |p| format!("127.0.0.1:{p}"));
        let mut child = Command::new(bin);
        child
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", ns, "--metrics-addr", &addr])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        // As manifests/base/deployment.yaml (and the image) run it: one malloc arena, unless
        // `PAPERLB_BENCH_GLIBC_TUNABLES` says otherwise (empty: glibc's defaults).
        match std::env::var("PAPERLB_BENCH_GLIBC_TUNABLES") {
            Ok(t) if t.is_empty() => child.env_remove("GLIBC_TUNABLES"),
            Ok(t) => child.env("GLIBC_TUNABLES", t),
            Err(_) => child.env("GLIBC_TUNABLES", MALLOC_TUNABLES),
        };
        let child = child.spawn().expect("start paperlb controller");
        Controller {
            child: Some(child),
            metrics,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// A `/proc/<pid>/status` figure in KiB (`VmRSS:`, `VmHWM:` for the peak).
    fn status_kib(&self, field: &str) -> Option<u64> {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        s.lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// utime + stime in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let Ok(s) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())) else {
            return 0;
        };
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let get = |i: usize| {
            f.get(i - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        get(14) + get(15)
    }

    /// The controller's metrics: (sum of paperlb_reconciles_total, paperlb_queue_depth).
    fn metrics(&self) -> Option<(f64, f64)> {
        let body = http_get(self.metrics?, "/metrics")?;
        let mut reconciles = 0.0;
        let mut depth = 0.0;
        for line in body.lines() {
            let value = || {
                line.rsplit_once(' ')
                    .and_then(|(_, v)| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            if line.starts_with("paperlb_reconciles_total") {
                reconciles += value();
            } else if line.starts_with("paperlb_queue_depth") {
                depth = value();
            }
        }
        Some((reconciles, depth))
    }

    /// The sum of every sample of metric `name` (all label sets), 0 when unreadable.
    fn metric_sum(&self, name: &str) -> f64 {
        let Some(body) = self.metrics.and_then(|p| http_get(p, "/metrics")) else {
            return 0.0;
        };
        body.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|r| r.starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    }

    fn reconciles(&self) -> f64 {
        self.metrics().map(|m| m.0).unwrap_or(0.0)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.0 GET on loopback; the body, or None on any failure.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    if !out.starts_with("HTTP/1.1 200") && !out.starts_with("HTTP/1.0 200") {
        return None;
    }
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Polls `cond` every `every` until it holds; panics after `WAIT`.
fn wait_for(what: &str, every: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(every);
    }
    panic!("bench: timed out waiting for {what}");
}

// ---------------------------------------------------------------------------------------------
// The cluster

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct World {
    api: FakeApi,
    updater: Updater,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

fn node_ip(i: usize) -> String {
    format!("127.0.1.{}", i + 1)
}

fn node_name(i: usize) -> String {
    format!("node-{i:03}")
}

impl World {
    fn new() -> World {
        World::with_latency(Latency::off())
    }

    /// The cluster behind an apiserver with this latency (only the controller's requests over the
    /// wire wait; the bench's own in-process changes do not).
    fn with_latency(latency: Latency) -> World {
        let api = FakeApi::start(FakeOptions {
            namespaces: vec![NS.into()],
            latency,
            ..FakeOptions::default()
        });
        static WORLDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("paperlb-bench-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
        let updater = Updater::start();
        let w = World {
            api,
            updater,
            kubeconfig,
            _dir: TempDir(dir),
        };
        for i in 0..NODES {
            w.node(&node_name(i), &node_ip(i), true);
        }
        let config = json!({
            "apiVersion": "lb.paperlb.com/v1alpha1",
            "kind": "LoadBalancerConfig",
            "metadata": {"name": "edge", "namespace": NS},
            "spec": {
                "default": true,
                "httpUpdaterURL": w.updater.url,
                "host": LB_HOST,
                "portRange": {"low": 10000, "high": 11999},
            }
        });
        w.api
            .apply("loadbalancerconfigs", config)
            .expect("apply config");
        w
    }

    fn node(&self, name: &str, ip: &str, ready: bool) {
        let obj = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        if self.api.get("nodes", "", name).is_err() {
            self.api.create("nodes", obj).expect("create node");
        }
        let mut node = self.api.get("nodes", "", name).expect("get node");
        node["status"] = json!({
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        });
        self.api.update_status("nodes", node).expect("node status");
    }

    fn service(&self, name: &str) {
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        });
        self.api.create("services", obj).expect("create service");
    }

    fn has_ingress(svc: &Value) -> bool {
        svc["status"]["loadBalancer"]["ingress"][0]["ip"] == LB_HOST
    }

    fn svc_ready(&self, name: &str) -> bool {
        self.api
            .get("services", "default", name)
            .map(|s| World::has_ingress(&s))
            .unwrap_or(false)
    }

    fn ready_count(&self) -> usize {
        self.api
            .list("services", "default")
            .iter()
            .filter(|s| World::has_ingress(s))
            .count()
    }

    /// (non-GET requests excluding Events, non-GET requests including Events) in the log.
    fn writes(&self) -> (usize, usize) {
        let reqs = self.api.requests();
        let all = reqs.iter().filter(|r| r.method != "GET").count();
        let no_events = reqs
            .iter()
            .filter(|r| r.method != "GET" && !r.path.contains("/events"))
            .count();
        (no_events, all)
    }

    fn watch_requests(&self) -> usize {
        self.api
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("watch="))
            .count()
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Default)]
struct Results {
    /// key → (value, runs) in the order measured.
    values: BTreeMap<String, (f64, Vec<f64>)>,
    order: Vec<String>,
    notes: BTreeMap<String, String>,
}

impl Results {
    fn set(&mut self, key: &str, value: f64) {
        self.set_runs(key, value, Vec::new());
    }

    fn set_runs(&mut self, key: &str, value: f64, runs: Vec<f64>) {
        if !self.values.contains_key(key) {
            self.order.push(key.to_string());
        }
        self.values.insert(key.to_string(), (value, runs));
        eprintln!("bench: {key} = {}", fmt(value));
    }

    /// The median of `runs`, kept with its spread.
    fn median(&mut self, key: &str, runs: Vec<f64>) {
        let m = median(&runs);
        self.set_runs(key, m, runs);
    }

    fn note(&mut self, key: &str, why: &str) {
        self.notes.insert(key.to_string(), why.to_string());
    }
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile.
fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

fn fmt(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (key, unit shown, target text, predicate on the value).
type Target = (
    &'static str,
    &'static str,
    &'static str,
    Option<fn(f64) -> bool>,
);

const KEYS: &[Target] = &[
    (
        "binary_size_bytes",
        "B",
        "<= 3 MiB",
        Some(|v| v <= 3.0 * 1048576.0),
    ),
    ("idle_rss_kib", "KiB", "<= 8 MiB", Some(|v| v <= 8192.0)),
    (
        "rss_kib_1k_services_100_nodes",
        "KiB",
        "<= 24 MiB",
        Some(|v| v <= 24576.0),
    ),
    ("startup_to_watches_ms_1k", "ms", "-", None),
    (
        "startup_to_synced_ms_1k",
        "ms",
        "<= 1000 ms",
        Some(|v| v <= 1000.0),
    ),
    (
        "svc_create_to_updater_ms_p50",
        "ms",
        "<= 20 ms",
        Some(|v| v <= 20.0),
    ),
    ("svc_create_to_updater_ms_p99", "ms", "-", None),
    ("svc_create_to_ready_ms_p50", "ms", "-", None),
    ("svc_create_to_ready_ms_p99", "ms", "-", None),
    ("bulk_900_create_converge_ms", "ms", "-", None),
    ("node_notready_flip_ms_1k", "ms", "-", None),
    (
        "updater_posts_per_notready_flip",
        "",
        "== 0",
        Some(|v| v == 0.0),
    ),
    (
        "api_writes_per_notready_flip",
        "",
        "== 0",
        Some(|v| v == 0.0),
    ),
    (
        "node_delete_add_converge_ms_1k",
        "ms",
        "<= 2000 ms",
        Some(|v| v <= 2000.0),
    ),
    ("node_recover_converge_ms_1k", "ms", "-", None),
    (
        "updater_posts_per_port_per_flip",
        "",
        "== 1",
        Some(|v| v == 1.0),
    ),
    ("api_writes_per_svc_create", "", "-", None),
    ("api_writes_per_svc_create_with_events", "", "-", None),
    (
        "updater_calls_per_svc_create",
        "",
        "== 1 (1 port)",
        Some(|v| v == 1.0),
    ),
    (
        "api_writes_after_restart_1k",
        "",
        "== 0",
        Some(|v| v == 0.0),
    ),
    (
        "steady_state_api_writes_per_min",
        "/min",
        "== 0",
        Some(|v| v == 0.0),
    ),
    (
        "steady_state_updater_calls_per_min",
        "/min",
        "== 0",
        Some(|v| v == 0.0),
    ),
    ("startup_to_all_applied_ms_1k_0ms", "ms", "-", None),
    ("bulk_1k_create_converge_ms_0ms", "ms", "-", None),
    ("node_delete_add_converge_ms_1k_0ms", "ms", "-", None),
    ("svc_create_to_ready_ms_p50_0ms", "ms", "-", None),
    ("api_writes_per_lb_0ms", "", "-", None),
    ("api_writes_per_lb_with_events_0ms", "", "-", None),
    ("api_writes_per_lb_flip_with_events_0ms", "", "-", None),
    ("api_max_writes_in_flight_0ms", "", "-", None),
    ("rss_peak_kib_1k_0ms", "KiB", "-", None),
    ("rss_kib_1k_0ms", "KiB", "<= 24 MiB", Some(|v| v <= 24576.0)),
    (
        "startup_to_all_applied_ms_1k_15ms",
        "ms",
        "<= 10000 ms",
        Some(|v| v <= 10000.0),
    ),
    ("bulk_1k_create_converge_ms_15ms", "ms", "-", None),
    (
        "node_delete_add_converge_ms_1k_15ms",
        "ms",
        "<= 5000 ms",
        Some(|v| v <= 5000.0),
    ),
    (
        "svc_create_to_ready_ms_p50_15ms",
        "ms",
        "<= 60 ms",
        Some(|v| v <= 60.0),
    ),
    ("api_writes_per_lb_15ms", "", "-", None),
    ("api_writes_per_lb_with_events_15ms", "", "-", None),
    ("api_writes_per_lb_flip_with_events_15ms", "", "-", None),
    ("api_max_writes_in_flight_15ms", "", "-", None),
    ("rss_peak_kib_1k_15ms", "KiB", "-", None),
    (
        "rss_kib_1k_15ms",
        "KiB",
        "<= 24 MiB",
        Some(|v| v <= 24576.0),
    ),
    ("startup_to_all_applied_ms_1k_api", "ms", "-", None),
    ("bulk_1k_create_converge_ms_api", "ms", "-", None),
    ("node_delete_add_converge_ms_1k_api", "ms", "-", None),
    ("svc_create_to_ready_ms_p50_api", "ms", "-", None),
    ("api_writes_per_lb_with_events_api", "", "-", None),
    ("rss_kib_1k_api", "KiB", "-", None),
    ("watch_events_per_sec", "/s", "-", None),
    ("watch_decode_events_per_sec", "/s", "-", None),
    ("watch_cpu_us_per_event", "us", "-", None),
    ("watch_decode_cpu_us_per_event", "us", "-", None),
    ("watch_allocs_per_event", "", "-", None),
    ("watch_decode_allocs_per_event", "", "-", None),
    ("watch_alloc_bytes_per_event", "B", "-", None),
    ("watch_decode_alloc_bytes_per_event", "B", "-", None),
    ("cpu_ms_per_reconcile", "ms", "-", None),
    ("cpu_ms_per_reconcile_flip", "ms", "-", None),
    (
        "fake_and_recorder_cpu_ms_per_reconcile_flip",
        "ms",
        "-",
        None,
    ),
    ("reconciles_per_flip", "", "-", None),
    ("api_writes_per_svc_flip", "", "-", None),
    ("api_writes_per_svc_flip_with_events", "", "-", None),
    ("api_write_roundtrip_ms_p50", "ms", "-", None),
    ("updater_post_roundtrip_ms_p50", "ms", "-", None),
    ("updater_apply_ms_p50", "ms", "-", None),
    ("updater_apply_ms_p99", "ms", "-", None),
    ("updater_post_answer_ms_p50", "ms", "-", None),
    ("updater_commit_ms_mean", "ms", "-", None),
    (
        "updater_reloads_per_sequential_apply",
        "",
        "== 1",
        Some(|v| v == 1.0),
    ),
    ("updater_burst_100_ms", "ms", "-", None),
    ("updater_burst_100_reloads", "", "-", None),
    ("updater_burst_reloads_per_sec", "/s", "-", None),
    ("updater_burst_posts_per_reload", "", "-", None),
    (
        "drift_repair_ms_1k",
        "ms",
        "<= 10000 ms",
        Some(|v| v <= 10000.0),
    ),
    ("drift_repair_reloads_1k", "", "<= 20", Some(|v| v <= 20.0)),
    (
        "drift_repair_posts_1k",
        "",
        "== 1000",
        Some(|v| v == 1000.0),
    ),
    ("drift_detect_ms", "ms", "-", None),
    (
        "resync_cost_requests_converged",
        "",
        "== 1 per host",
        Some(|v| v == 1.0),
    ),
    ("resync_converged_get_ms_1k", "ms", "-", None),
    ("health_failover_ms", "ms", "<= 3000", Some(|v| v <= 3000.0)),
    (
        "host_failover_ingress_ms",
        "ms",
        "<= grace + 1 s",
        Some(|v| v <= HOST_GRACE_MS + 1000.0),
    ),
    ("host_recovery_ingress_ms", "ms", "-", None),
    (
        "health_check_cpu_ms_per_1k_upstreams_per_min",
        "ms",
        "-",
        None,
    ),
];

fn report(r: &Results, out: &Path) {
    let mut table = String::new();
    table.push_str(&format!(
        "{:<40} {:>12} {:<5} {:>21}  {:<14} {}\n",
        "figure", "value", "unit", "spread (min..max)", "target", "met"
    ));
    let mut json_values = serde_json::Map::new();
    let mut json_spread = serde_json::Map::new();
    let mut json_targets = serde_json::Map::new();
    for (key, unit, target, pred) in KEYS {
        let (value, spread, met) = match r.values.get(*key) {
            Some((v, runs)) => {
                let spread = if runs.len() > 1 {
                    let lo = runs.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    json_spread
                        .insert(key.to_string(), json!({"min": lo, "max": hi, "runs": runs}));
                    format!("{}..{}", fmt(lo), fmt(hi))
                } else {
                    String::new()
                };
                let met = pred.map(|p| p(*v));
                json_values.insert(key.to_string(), json!(v));
                (fmt(*v), spread, met)
            }
            None => {
                json_values.insert(key.to_string(), Value::Null);
                ("not measured".to_string(), String::new(), None)
            }
        };
        if *target != "-" {
            json_targets.insert(key.to_string(), json!({"target": target, "met": met}));
        }
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        table.push_str(&format!(
            "{key:<40} {value:>12} {unit:<5} {spread:>21}  {target:<14} {met}\n"
        ));
    }
    for (k, why) in &r.notes {
        table.push_str(&format!("note: {k}: {why}\n"));
    }
    println!("{table}");
    let doc = json!({
        "values": json_values,
        "spread": json_spread,
        "targets": json_targets,
        "notes": r.notes,
        "setup": {
            "nodes": NODES, "services": SERVICES, "sequential_samples": SEQUENTIAL,
            "watch_objects": WATCH_OBJECTS, "steady_seconds": STEADY.as_secs(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        },
    });
    // Flat copy of the values at top level too, so `jq .startup_to_synced_ms_1k` works.
    let mut top = json_values.clone();
    if let Value::Object(d) = doc {
        top.extend(d);
    }
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        out,
        serde_json::to_string_pretty(&Value::Object(top)).unwrap_or_default() + "\n",
    )
    .expect("write results.json");
    println!("wrote {}", out.display());
}

// ---------------------------------------------------------------------------------------------
// The updater through a real nginx

/// Sequential applies timed POST → serving.
const APPLY_SAMPLES: usize = 30;
/// Concurrent POSTs per burst, for different backends.
const BURST: usize = 100;
const BURST_RUNS: usize = 3;
/// Where the LB ports' upstream (a loopback backend) listens.
const BACKEND_HOST: &str = "127.0.0.2";
const BACKEND_IDENT: &str = "paperlb-bench-backend";

/// Processes to stop if the bench panics: the release profile aborts on panic, so `Drop` does not
/// run and a private nginx or updater would outlive the bench. (pid, signal).
static REAP: Mutex<Vec<(u32, &'static str)>> = Mutex::new(Vec::new());

/// Installs (once) a panic hook that signals every process in [`REAP`], then runs the default hook.
fn reap_on_panic() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let pids = REAP.lock().map(|g| g.clone()).unwrap_or_default();
            for (pid, sig) in pids.into_iter().rev() {
                let _ = Command::new("kill")
                    .args([sig, &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            default(info);
        }));
    });
}

fn reap_add(pid: u32, sig: &'static str) {
    if let Ok(mut g) = REAP.lock() {
        g.push((pid, sig));
    }
}

fn reap_remove(pid: u32) {
    if let Ok(mut g) = REAP.lock() {
        g.retain(|(p, _)| *p != pid);
    }
}

/// `paperlb nginx-updater` as a child process; killed on drop.
struct UpdaterProc {
    child: Option<Child>,
    port: u16,
}

impl UpdaterProc {
    fn start(bin: &Path, nginx: &support::nginx::Nginx) -> UpdaterProc {
        let port = free_port();
        let child = Command::new(bin)
            .arg("nginx-updater")
            .args(["--listen", &format!("127.0.0.1:{port}"), "--streams-dir"])
            .arg(&nginx.streams)
            .arg("--nginx-conf")
            .arg(&nginx.conf)
            .args(["--nginx-bin", support::nginx::NGINX])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("start paperlb nginx-updater");
        reap_add(child.id(), "-KILL");
        let u = UpdaterProc {
            child: Some(child),
            port,
        };
        wait_for("nginx-updater /healthz", Duration::from_millis(5), || {
            http_get(port, "/healthz").is_some()
        });
        u
    }

    /// paperlb_updater_nginx_reloads_total from /metrics (a family with no sample yet is 0).
    fn reloads(&self) -> f64 {
        const NAME: &str = "paperlb_updater_nginx_reloads_total";
        let body = http_get(self.port, "/metrics").expect("updater /metrics");
        assert!(
            body.contains(&format!("# TYPE {NAME} counter")),
            "bench: {NAME} not in the updater's /metrics"
        );
        body.lines()
            .find(|l| l.strip_prefix(NAME).is_some_and(|r| r.starts_with(' ')))
            .map_or(0.0, |l| {
                l.rsplit_once(' ')
                    .and_then(|(_, v)| v.parse().ok())
                    .expect("a number")
            })
    }

    /// (sum, count) of the paperlb_updater_commit_seconds histogram (write + nginx -t + reload).
    fn commit_seconds(&self) -> (f64, f64) {
        let body = http_get(self.port, "/metrics").expect("updater /metrics");
        let value = |name: &str| {
            body.lines()
                .find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ')))
                .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
                .unwrap_or(0.0)
        };
        (
            value("paperlb_updater_commit_seconds_sum"),
            value("paperlb_updater_commit_seconds_count"),
        )
    }

    fn call(&self, method: &str, body: &str) -> u16 {
        http_request(self.port, method, "/api/v1/lb", body).map_or(0, |(code, _)| code)
    }
}

impl Drop for UpdaterProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            reap_remove(c.id());
        }
    }
}

/// One HTTP/1.1 request with a body over a fresh loopback connection: (status, body).
fn http_request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.get(9..12)?.parse().ok()?;
    Some((code, out.split_once("\r\n\r\n")?.1.to_string()))
}

/// The Go controller's POST body: one upstream, default timeouts.
fn lb_body(name: &str, lb_port: u16, upstream_port: u16) -> String {
    format!(
        "{{\"backendName\":\"{name}\",\"lbPort\":{lb_port},\"lbProtocol\":\"TCP\",\"upstreamServers\":[{{\"host\":\"{BACKEND_HOST}\",\"port\":{upstream_port}}}],\"proxyTimeoutSeconds\":0,\"proxyConnectTimeoutSeconds\":0}}\n"
    )
}

/// `n` distinct loopback ports that are free now (all held open together, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free loopback port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A TCP backend that writes its identity to every connection and closes; stops on drop.
struct IdentBackend {
    port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IdentBackend {
    fn start() -> IdentBackend {
        use std::sync::atomic::{AtomicBool, Ordering};
        let l = std::net::TcpListener::bind((BACKEND_HOST, 0)).expect("bind backend on 127.0.0.2");
        l.set_nonblocking(true).expect("nonblocking backend");
        let port = l.local_addr().expect("backend addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = c.write_all(format!("{BACKEND_IDENT}\n").as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_micros(200)),
                }
            }
        });
        IdentBackend {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for IdentBackend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether a TCP connection to the LB port on loopback reaches the backend through nginx.
fn lb_serves(lb_port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], lb_port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.trim() == BACKEND_IDENT
}

/// `paperlb nginx-updater` in front of a private nginx: POST → LB port serving, one at a time; then
/// bursts of 100 concurrent POSTs for different backends and the reloads they cost.
fn updater_apply(bin: &Path, r: &mut Results) {
    use support::nginx::{NGINX, Nginx, STREAM_MODULE};
    if !Path::new(NGINX).is_file() || !Path::new(STREAM_MODULE).is_file() {
        r.note(
            "updater_apply_ms_p50",
            "not measured: nginx or its stream module is missing (./scripts/install-deps)",
        );
        return;
    }
    reap_on_panic();
    let nginx = Nginx::start();
    // TERM: nginx's master stops its workers, then exits.
    let master = nginx.master_pid();
    if let Some(pid) = master {
        reap_add(pid, "-TERM");
    }
    let up = UpdaterProc::start(bin, &nginx);
    let backend = IdentBackend::start();
    let ports = free_ports(APPLY_SAMPLES + BURST * BURST_RUNS);
    let (apply_ports, burst_ports) = ports.split_at(APPLY_SAMPLES);

    // One at a time: POST → answered (the updater has tested, reloaded and seen new workers) →
    // a connection to the new LB port gets the backend's answer through nginx.
    let reloads0 = up.reloads();
    let commits0 = up.commit_seconds();
    let mut answered = Vec::new();
    let mut serving = Vec::new();
    for (i, &lb) in apply_ports.iter().enumerate() {
        let name = format!("bench_apply_{i:02}");
        let t0 = Instant::now();
        let code = up.call("POST", &lb_body(&name, lb, backend.port));
        assert_eq!(code, 200, "bench: POST {name}");
        answered.push(ms(t0.elapsed()));
        wait_for("LB port serving", Duration::from_millis(1), || {
            lb_serves(lb)
        });
        serving.push(ms(t0.elapsed()));
    }
    let reloads_per_apply = (up.reloads() - reloads0) / APPLY_SAMPLES as f64;
    let commits1 = up.commit_seconds();
    if commits1.1 > commits0.1 {
        r.set(
            "updater_commit_ms_mean",
            (commits1.0 - commits0.0) * 1000.0 / (commits1.1 - commits0.1),
        );
    }
    r.set_runs(
        "updater_apply_ms_p50",
        percentile(&serving, 50.0),
        serving.clone(),
    );
    r.set("updater_apply_ms_p99", percentile(&serving, 99.0));
    r.set_runs(
        "updater_post_answer_ms_p50",
        percentile(&answered, 50.0),
        answered,
    );
    r.set("updater_reloads_per_sequential_apply", reloads_per_apply);
    delete_all(
        &up,
        (0..APPLY_SAMPLES).map(|i| format!("bench_apply_{i:02}")),
    );

    // Bursts: 100 threads released together, each POSTing its own backend.
    let mut totals = Vec::new();
    let mut reloads = Vec::new();
    let mut per_sec = Vec::new();
    let mut per_reload = Vec::new();
    for (run, ports) in burst_ports.chunks(BURST).enumerate() {
        let names: Vec<String> = (0..BURST)
            .map(|i| format!("bench_burst{run}_{i:03}"))
            .collect();
        let before = up.reloads();
        let go = Arc::new(std::sync::Barrier::new(BURST + 1));
        let threads: Vec<_> = names
            .iter()
            .zip(ports)
            .map(|(name, &lb)| {
                let (go, body, port) = (go.clone(), lb_body(name, lb, backend.port), up.port);
                std::thread::spawn(move || {
                    go.wait();
                    let code = http_request(port, "POST", "/api/v1/lb", &body).map_or(0, |c| c.0);
                    (code, Instant::now())
                })
            })
            .collect();
        go.wait();
        let t0 = Instant::now();
        let mut last = t0;
        for t in threads {
            let (code, at) = t.join().expect("burst thread");
            assert_eq!(code, 200, "bench: burst POST");
            last = last.max(at);
        }
        let total = last - t0;
        let n = up.reloads() - before;
        for &lb in ports {
            wait_for("burst LB port serving", Duration::from_millis(5), || {
                lb_serves(lb)
            });
        }
        totals.push(ms(total));
        reloads.push(n);
        per_sec.push(n / total.as_secs_f64());
        per_reload.push(BURST as f64 / n.max(1.0));
        // Back to an empty streams dir, so every burst starts alike (and nginx's listeners stay few).
        delete_all(&up, names.into_iter());
    }
    r.median("updater_burst_100_ms", totals);
    r.median("updater_burst_100_reloads", reloads);
    r.median("updater_burst_reloads_per_sec", per_sec);
    r.median("updater_burst_posts_per_reload", per_reload);
    drop(up);
    drop(nginx);
    if let Some(pid) = master {
        reap_remove(pid);
    }
}

/// DELETEs these backends, concurrently (group-committed too); not timed.
fn delete_all(up: &UpdaterProc, names: impl Iterator<Item = String>) {
    let port = up.port;
    let threads: Vec<_> = names
        .map(|name| {
            std::thread::spawn(move || {
                let body = format!("{{\"backendName\":\"{name}\"}}");
                http_request(port, "DELETE", "/api/v1/lb", &body).map_or(0, |c| c.0)
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("delete thread"), 200, "bench: DELETE");
    }
}

// ---------------------------------------------------------------------------------------------
// Phases

fn main() {
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/bench → target/release/paperlb
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release")
        .to_path_buf();
    let bin = release.join("paperlb");
    let target_dir = release.parent().expect("target").to_path_buf();
    let out = target_dir.join("bench").join("results.json");
    assert!(bin.exists(), "build the binary first: {}", bin.display());
    let only: Vec<String> = std::env::args().skip(1).collect();
    if only.first().is_some_and(|a| a == "__watch-allocs") {
        watch_allocs_child(&only[1..]);
        return;
    }
    if only.first().is_some_and(|a| a == "kube") {
        // The controller workload against the apiserver of a kubeconfig (examples/bench/real_api.rs).
        let mut r = Results::default();
        let outcome =
            real_api::parse(&only[1..]).and_then(|args| real_api::run(&bin, &args, &mut r));
        real_api::print(&r);
        if let Err(e) = outcome {
            eprintln!("bench kube: {e}");
            std::process::exit(2);
        }
        return;
    }
    let want = |phase: &str| only.is_empty() || only.iter().any(|o| o == phase);

    let mut r = Results::default();
    let started = Instant::now();

    if let Ok(m) = std::fs::metadata(&bin) {
        r.set("binary_size_bytes", m.len() as f64);
    }

    if want("controller") {
        controller_phases(&bin, &mut r);
    }
    if want("latency") || want("latency0") {
        latency_profile(&bin, &mut r, Profile::Zero);
    }
    if want("latency") || want("latency15") {
        latency_profile(&bin, &mut r, Profile::Etcd);
    }
    if want("latency") || want("latencyapi") {
        latency_profile(&bin, &mut r, Profile::Apiserver);
    }
    if want("watch") {
        watch_throughput(&mut r);
    }
    if want("updater") {
        updater_apply(&bin, &mut r);
    }
    if want("drift") {
        drift_repair(&bin, &mut r);
    }
    if want("health") {
        health_checks(&bin, &mut r);
    }
    if want("hosts") {
        host_failover(&bin, &mut r);
    }
    eprintln!("bench: done in {:.1}s", started.elapsed().as_secs_f64());
    report(&r, &out);
}

fn controller_phases(bin: &Path, r: &mut Results) {
    let tick_ms = 1000.0 / clock_ticks_per_sec();
    let w = World::new();

    // Idle: synced, no Services, metrics off (as in production with probes disabled).
    {
        w.api.clear_requests();
        let c = Controller::start(bin, &w.kubeconfig, None);
        wait_for("idle controller watches", Duration::from_millis(5), || {
            w.watch_requests() >= 5
        });
        std::thread::sleep(Duration::from_secs(1));
        if let Some(rss) = c.rss_kib() {
            r.set("idle_rss_kib", rss as f64);
        }
    }

    let metrics_port = free_port();
    let mut c = Controller::start(bin, &w.kubeconfig, Some(metrics_port));
    wait_for("controller /readyz", Duration::from_millis(5), || {
        http_get(metrics_port, "/readyz").is_some()
    });

    // Sequential creates: latency to the updater's POST and to the Service's ingress.
    let mut to_updater = Vec::new();
    let mut to_ready = Vec::new();
    w.api.clear_requests();
    let calls_before = w.updater.len();
    for i in 0..SEQUENTIAL {
        let name = format!("svc-{i:04}");
        let from = w.updater.len();
        let t0 = Instant::now();
        w.service(&name);
        let mut ready_at = None;
        wait_for(
            "sequential create ready",
            Duration::from_micros(500),
            || {
                if w.svc_ready(&name) {
                    ready_at = Some(Instant::now());
                    true
                } else {
                    false
                }
            },
        );
        let posted = w
            .updater
            .since(from)
            .into_iter()
            .find(|c| c.method == "POST")
            .map(|c| c.at);
        if let Some(at) = posted {
            to_updater.push(ms(at - t0));
        }
        if let Some(at) = ready_at {
            to_ready.push(ms(at - t0));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    r.set_runs(
        "svc_create_to_updater_ms_p50",
        percentile(&to_updater, 50.0),
        to_updater.clone(),
    );
    r.set(
        "svc_create_to_updater_ms_p99",
        percentile(&to_updater, 99.0),
    );
    r.set_runs(
        "svc_create_to_ready_ms_p50",
        percentile(&to_ready, 50.0),
        to_ready.clone(),
    );
    r.set("svc_create_to_ready_ms_p99", percentile(&to_ready, 99.0));
    let (writes, writes_ev) = w.writes();
    r.set(
        "api_writes_per_svc_create",
        writes as f64 / SEQUENTIAL as f64,
    );
    r.set(
        "api_writes_per_svc_create_with_events",
        writes_ev as f64 / SEQUENTIAL as f64,
    );
    r.set(
        "updater_calls_per_svc_create",
        (w.updater.len() - calls_before) as f64 / SEQUENTIAL as f64,
    );

    // Bulk: the other 900 at once; CPU per reconcile over the whole burst.
    let (cpu0, rec0) = (c.cpu_ticks(), c.reconciles());
    let posts_before = w.updater.len();
    let t0 = Instant::now();
    for i in SEQUENTIAL..SERVICES {
        w.service(&format!("svc-{i:04}"));
    }
    // Listing 1,000 Services copies them under the fake's lock: wait cheaply (the recorder's call
    // count) until every new Service has had its POST, and only then poll for the ingress.
    wait_for("900 POSTs", Duration::from_millis(5), || {
        w.updater.len() >= posts_before + (SERVICES - SEQUENTIAL)
    });
    wait_for("1k Services ready", Duration::from_millis(20), || {
        w.ready_count() >= SERVICES
    });
    r.set("bulk_900_create_converge_ms", ms(t0.elapsed()));
    std::thread::sleep(Duration::from_millis(500));
    let (cpu1, rec1) = (c.cpu_ticks(), c.reconciles());
    if rec1 > rec0 {
        r.set(
            "cpu_ms_per_reconcile",
            (cpu1 - cpu0) as f64 * tick_ms / (rec1 - rec0),
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    if let Some(rss) = c.rss_kib() {
        r.set("rss_kib_1k_services_100_nodes", rss as f64);
    }

    // A NotReady flip while health checks are on (KEP-3458): nothing to push, nothing to write.
    // Timed until the controller has received it (its watch-event counter moved); then a quiet
    // window in which no POST and no API write may follow.
    {
        let (name, ip) = (node_name(5), node_ip(5));
        w.api.clear_requests();
        let from = w.updater.len();
        let events = || c.metric_sum("paperlb_watch_events_total");
        let seen = events();
        let t0 = Instant::now();
        w.node(&name, &ip, false);
        wait_for("the flip received", Duration::from_millis(5), || {
            events() > seen
        });
        r.set("node_notready_flip_ms_1k", ms(t0.elapsed()));
        std::thread::sleep(Duration::from_millis(500));
        let posts = w.updater.since(from).len();
        r.set("updater_posts_per_notready_flip", posts as f64);
        r.set("api_writes_per_notready_flip", w.writes().0 as f64);
        w.node(&name, &ip, true);
        std::thread::sleep(Duration::from_millis(300));
    }

    // Node deleted → every backend re-POSTed without it; then added back (the old flip's cost).
    let mut flip = Vec::new();
    let mut recover = Vec::new();
    let mut per_port = Vec::new();
    let mut cpu_per_rec = Vec::new();
    let mut own_per_rec = Vec::new();
    let mut rec_per_flip = Vec::new();
    let mut flip_writes = Vec::new();
    let mut flip_writes_ev = Vec::new();
    for run in 0..3 {
        let n = 10 + run * 30;
        let (name, ip) = (node_name(n), node_ip(n));
        let (cpu0, rec0, own0) = (c.cpu_ticks(), c.reconciles(), own_cpu_ticks());
        w.api.clear_requests();
        let from = w.updater.len();
        let t0 = Instant::now();
        w.api.delete("nodes", "", &name).expect("delete node");
        let done = converge(&w.updater, from, |hosts| !hosts.contains(&ip));
        flip.push(ms(done - t0));
        std::thread::sleep(Duration::from_millis(300));
        let posts = w
            .updater
            .since(from)
            .iter()
            .filter(|c| c.method == "POST")
            .count();
        per_port.push(posts as f64 / SERVICES as f64);
        let (cpu1, rec1, own1) = (c.cpu_ticks(), c.reconciles(), own_cpu_ticks());
        if rec1 > rec0 {
            cpu_per_rec.push((cpu1 - cpu0) as f64 * tick_ms / (rec1 - rec0));
            own_per_rec.push((own1 - own0) as f64 * tick_ms / (rec1 - rec0));
            rec_per_flip.push(rec1 - rec0);
        }
        let (writes, writes_ev) = w.writes();
        flip_writes.push(writes as f64 / SERVICES as f64);
        flip_writes_ev.push(writes_ev as f64 / SERVICES as f64);

        let from = w.updater.len();
        let t0 = Instant::now();
        w.node(&name, &ip, true);
        let done = converge(&w.updater, from, |hosts| hosts.contains(&ip));
        recover.push(ms(done - t0));
        std::thread::sleep(Duration::from_millis(300));
    }
    r.median("node_delete_add_converge_ms_1k", flip);
    r.median("node_recover_converge_ms_1k", recover);
    r.median("updater_posts_per_port_per_flip", per_port);
    r.median("cpu_ms_per_reconcile_flip", cpu_per_rec);
    r.median("fake_and_recorder_cpu_ms_per_reconcile_flip", own_per_rec);
    r.median("reconciles_per_flip", rec_per_flip);
    r.median("api_writes_per_svc_flip", flip_writes);
    r.median("api_writes_per_svc_flip_with_events", flip_writes_ev);
    round_trips(&w, r);
    std::thread::sleep(Duration::from_millis(500));

    // Steady state: converged, nothing changes.
    w.api.clear_requests();
    let from = w.updater.len();
    std::thread::sleep(STEADY);
    let scale = 60.0 / STEADY.as_secs_f64();
    r.set(
        "steady_state_api_writes_per_min",
        w.writes().1 as f64 * scale,
    );
    r.set(
        "steady_state_updater_calls_per_min",
        (w.updater.len() - from) as f64 * scale,
    );

    // Restarts over the converged 1k cluster.
    let mut to_watches = Vec::new();
    let mut to_synced = Vec::new();
    let mut restart_writes = Vec::new();
    for _ in 0..3 {
        c.kill();
        w.api.clear_requests();
        let from = w.updater.len();
        let t0 = Instant::now();
        c = Controller::start(bin, &w.kubeconfig, Some(metrics_port));
        let mut watches_at = None;
        wait_for("restart: reconciled 1k", Duration::from_millis(2), || {
            if watches_at.is_none() && w.watch_requests() >= 5 {
                watches_at = Some(Instant::now());
            }
            matches!(c.metrics(), Some((rec, depth)) if rec >= SERVICES as f64 && depth == 0.0)
        });
        to_synced.push(ms(t0.elapsed()));
        if let Some(at) = watches_at {
            to_watches.push(ms(at - t0));
        }
        std::thread::sleep(Duration::from_millis(500));
        restart_writes.push((w.writes().1 + w.updater.len() - from) as f64);
    }
    r.median("startup_to_watches_ms_1k", to_watches);
    r.median("startup_to_synced_ms_1k", to_synced);
    r.median("api_writes_after_restart_1k", restart_writes);
    c.kill();
}

// ---------------------------------------------------------------------------------------------
// Latency profiles: the controller figures behind an apiserver that takes time to answer

/// The apiserver the latency part measures against.
#[derive(Clone, Copy)]
enum Profile {
    /// The fake as fast as it is (~0.2 ms a write).
    Zero,
    /// `Latency::etcd()`: 5 ms reads, 15 ms writes, both ± 50 %, at most 16 writes in flight.
    Etcd,
    /// `Latency::apiserver()`: `Etcd` plus 2 ms of CPU per KiB written, burned by the fake on the
    /// cores the controller shares (what a real kube-apiserver costs; bench/RESULTS.md).
    Apiserver,
}

impl Profile {
    fn suffix(self) -> &'static str {
        match self {
            Profile::Zero => "0ms",
            Profile::Etcd => "15ms",
            Profile::Apiserver => "api",
        }
    }

    fn latency(self) -> Latency {
        match self {
            Profile::Zero => Latency::off(),
            Profile::Etcd => Latency::etcd(),
            Profile::Apiserver => Latency::apiserver(),
        }
    }
}

/// Creates timed one at a time (create → ingress), beside 1,000 converged LoadBalancers.
const LATENCY_SEQUENTIAL: usize = 50;

/// Back-to-back runs of each profile (`PAPERLB_BENCH_RUNS`, default 1, at most 10): each figure is
/// the median over every sample of every run, and the samples are its spread.
fn bench_runs() -> usize {
    std::env::var("PAPERLB_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .clamp(1, 10)
}

/// Part `latency` (`latency0`, `latency15`: one profile): the cold start, bulk create, node flip
/// and create → ingress figures at one profile, each key suffixed with the profile.
fn latency_profile(bin: &Path, r: &mut Results, p: Profile) {
    let runs = bench_runs();
    let mut figures: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for run in 0..runs {
        eprintln!(
            "bench: latency profile {} ({}), run {}/{runs}",
            p.suffix(),
            p.latency(),
            run + 1
        );
        for (key, value) in latency_run(bin, p) {
            figures.entry(key).or_default().push(value);
        }
    }
    for (key, samples) in figures {
        r.median(&format!("{key}_{}", p.suffix()), samples);
    }
}

/// Waits for every Service in "default" to have its ingress, cheaply: first the recorder's call
/// count (`posts` POSTs), then a list every 20 ms.
fn wait_all_applied(w: &World, what: &str, posts: usize) {
    wait_for(what, Duration::from_millis(5), || w.updater.len() >= posts);
    wait_for(what, Duration::from_millis(20), || {
        w.ready_count() >= SERVICES
    });
}

/// Files written for `PAPERLB_BENCH_SMAPS` so far (numbers them).
static SMAPS_DUMPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One run of one profile: (figure, sample) pairs; a figure may have several samples.
/// `PAPERLB_BENCH_COLD_ONLY` (any value): only the cold start and its figures (RSS included).
/// `PAPERLB_BENCH_SMAPS=DIR`: the controller's `/proc/PID/smaps` at the RSS reading, into DIR.
fn latency_run(bin: &Path, p: Profile) -> Vec<(&'static str, f64)> {
    let mut out = Vec::new();
    {
        // Cold start: 1,000 Services without LoadBalancers, then the controller starts.
        let w = World::with_latency(p.latency());
        for i in 0..SERVICES {
            w.service(&format!("svc-{i:04}"));
        }
        w.api.clear_requests();
        w.api.reset_max_writes_in_flight();
        let metrics_port = free_port();
        let t0 = Instant::now();
        let c = Controller::start(bin, &w.kubeconfig, Some(metrics_port));
        wait_all_applied(&w, "cold start: 1k applied", SERVICES);
        out.push(("startup_to_all_applied_ms_1k", ms(t0.elapsed())));
        std::thread::sleep(Duration::from_millis(500));
        let (writes, writes_ev) = w.writes();
        out.push(("api_writes_per_lb", writes as f64 / SERVICES as f64));
        out.push((
            "api_writes_per_lb_with_events",
            writes_ev as f64 / SERVICES as f64,
        ));
        out.push((
            "api_max_writes_in_flight",
            w.api.max_writes_in_flight() as f64,
        ));
        // The first drift check (one GET of the 1,000 backends) runs once the queue is empty: the
        // RSS is read after it, so the figure includes what it leaves behind, whatever the timing.
        let checked = Instant::now();
        while c.metric_sum("paperlb_updater_resyncs_total") < 1.0
            && checked.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        if let Some(rss) = c.rss_kib() {
            out.push(("rss_kib_1k", rss as f64));
        }
        if let Some(peak) = c.status_kib("VmHWM:") {
            out.push(("rss_peak_kib_1k", peak as f64));
        }
        if let Ok(dir) = std::env::var("PAPERLB_BENCH_SMAPS") {
            // Where the RSS is: the controller's mappings at this point, one file per run.
            let smaps = std::fs::read(format!("/proc/{}/smaps", c.pid())).unwrap_or_default();
            let n = SMAPS_DUMPS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let file = Path::new(&dir).join(format!("smaps-{}-{n}.txt", p.suffix()));
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(&file, smaps);
        }
        if std::env::var_os("PAPERLB_BENCH_COLD_ONLY").is_some() {
            return out;
        }
        // Node deleted: every backend re-POSTed without the node; then added back (not timed).
        for run in 0..2 {
            let n = 20 + run * 40;
            let (name, ip) = (node_name(n), node_ip(n));
            w.api.clear_requests();
            let from = w.updater.len();
            let t0 = Instant::now();
            w.api.delete("nodes", "", &name).expect("delete node");
            let done = converge(&w.updater, from, |hosts| !hosts.contains(&ip));
            out.push(("node_delete_add_converge_ms_1k", ms(done - t0)));
            std::thread::sleep(Duration::from_millis(300));
            out.push((
                "api_writes_per_lb_flip_with_events",
                w.writes().1 as f64 / SERVICES as f64,
            ));
            let from = w.updater.len();
            w.node(&name, &ip, true);
            converge(&w.updater, from, |hosts| hosts.contains(&ip));
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    {
        // Bulk create: the controller running over an empty cluster, 1,000 Services at once.
        let w = World::with_latency(p.latency());
        let metrics_port = free_port();
        let _c = Controller::start(bin, &w.kubeconfig, Some(metrics_port));
        wait_for("controller /readyz", Duration::from_millis(5), || {
            http_get(metrics_port, "/readyz").is_some()
        });
        let t0 = Instant::now();
        for i in 0..SERVICES {
            w.service(&format!("svc-{i:04}"));
        }
        wait_all_applied(&w, "bulk create: 1k applied", SERVICES);
        out.push(("bulk_1k_create_converge_ms", ms(t0.elapsed())));
        std::thread::sleep(Duration::from_millis(500));
        // One at a time beside them: create → the Service's ingress (polled every 0.5 ms).
        let mut to_ready = Vec::new();
        for i in 0..LATENCY_SEQUENTIAL {
            let name = format!("seq-{i:04}");
            let t0 = Instant::now();
            w.service(&name);
            wait_for(
                "sequential create ready",
                Duration::from_micros(500),
                || w.svc_ready(&name),
            );
            to_ready.push(ms(t0.elapsed()));
        }
        out.push(("svc_create_to_ready_ms_p50", percentile(&to_ready, 50.0)));
    }
    out
}

/// utime + stime of this process (the fake API server and the recording updater) in clock ticks.
fn own_cpu_ticks() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// Where a reconcile's wall time can go: one API write (merge patch over TLS, as the controller
/// sends them) and one updater POST with 100 upstreams, each timed from this process, 200 times.
fn round_trips(w: &World, r: &mut Results) {
    use paperlb::kube::client::{Client, ClientOptions};
    use paperlb::kube::config::{LoadOptions, load};
    use paperlb::updater::api::{LbRequest, Upstream};
    use paperlb::updater::client::{ClientAuth, Timeouts, UpdaterClient};

    let cluster = load(&LoadOptions {
        kubeconfig: Some(w.kubeconfig.clone()),
        ..LoadOptions::default()
    })
    .expect("load kubeconfig");
    let client = Client::new(&cluster, ClientOptions::default()).expect("client");
    let path = "/api/v1/namespaces/default"; // not watched by the controller
    let mut api = Vec::new();
    for i in 0..200 {
        let patch = json!({"metadata": {"annotations": {"bench/probe": i.to_string()}}});
        let t0 = Instant::now();
        let _: Value = client.merge_patch(path, &patch).expect("merge patch");
        api.push(ms(t0.elapsed()));
    }
    r.set_runs("api_write_roundtrip_ms_p50", percentile(&api, 50.0), api);

    let endpoint = paperlb::model::url::updater_endpoint(&w.updater.url).expect("updater url");
    let updater = UpdaterClient::new(&endpoint, ClientAuth::default(), Timeouts::default())
        .expect("updater client");
    let req = LbRequest {
        backend_name: "bench_probe".into(),
        lb_port: 11999,
        lb_protocol: "TCP".into(),
        upstream_servers: (0..NODES)
            .map(|i| Upstream {
                host: node_ip(i),
                port: 30000,
                health: Default::default(),
            })
            .collect(),
        proxy_timeout_seconds: 0,
        proxy_connect_timeout_seconds: 0,
        traffic: Default::default(),
        owner: None,
    };
    let mut up = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        updater.apply(&req).expect("updater apply");
        up.push(ms(t0.elapsed()));
    }
    r.set_runs("updater_post_roundtrip_ms_p50", percentile(&up, 50.0), up);
}

/// Waits until every one of the 1,000 backends got a POST (after call `from`) whose upstream hosts
/// satisfy `ok`; returns when the last of them arrived.
fn converge(updater: &Updater, from: usize, ok: impl Fn(&[String]) -> bool) -> Instant {
    let mut last = Instant::now();
    // Only the calls that arrived since the last look, read under the lock without copying: the
    // recorder must not wait on the bench, nor the bench eat the cores it measures.
    let mut seen = HashSet::new();
    let mut next = from;
    wait_for("node change converged", Duration::from_millis(5), || {
        let calls = updater.calls.lock().unwrap();
        for c in &calls[next.min(calls.len())..] {
            if c.method == "POST" && ok(&c.hosts) && seen.insert(c.backend.clone()) {
                last = c.at;
            }
        }
        next = calls.len();
        seen.len() >= SERVICES
    });
    last
}

/// A Node from its JSON text: the `decode` a watcher of Nodes hands the stream.
fn node_from_str(text: &str) -> serde_json::Result<paperlb::model::Node> {
    serde_json::from_str(text)
}

/// How fast one `Client::watch` consumer decodes events: 5,000 Nodes replayed from history.
fn watch_throughput(r: &mut Results) {
    use paperlb::kube::client::{Client, ClientOptions};
    use paperlb::kube::config::{LoadOptions, load};
    use paperlb::kube::watch::{WatchEvent, decode_event};

    let api = FakeApi::start(FakeOptions {
        namespaces: vec![NS.into()],
        history_limit: WATCH_OBJECTS * 2,
        ..FakeOptions::default()
    });
    let dir =
        TempDir(std::env::temp_dir().join(format!("paperlb-bench-watch-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let kubeconfig = dir.0.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let rv0 = api.resource_version();
    let mut objects = Vec::with_capacity(WATCH_OBJECTS);
    for i in 0..WATCH_OBJECTS {
        let name = format!("w-{i:05}");
        let mut obj = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name, "node-role.kubernetes.io/worker": ""}}});
        obj["status"] = json!({
            "addresses": [{"type": "InternalIP", "address": format!("10.1.{}.{}", i / 250, i % 250 + 1)},
                {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        objects.push(api.create("nodes", obj).expect("create node"));
    }
    let cluster = load(&LoadOptions {
        kubeconfig: Some(kubeconfig.clone()),
        ..LoadOptions::default()
    })
    .expect("load kubeconfig");
    let client = Client::new(&cluster, ClientOptions::default()).expect("client");

    let mut rates = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let c0 = thread_cpu_ns();
        let mut stream = client
            .watch("/api/v1/nodes", &rv0.to_string(), 60)
            .expect("watch");
        let mut n = 0;
        while n < WATCH_OBJECTS {
            match stream.next_event(node_from_str) {
                Ok(Some(WatchEvent::Added { .. })) | Ok(Some(WatchEvent::Modified { .. })) => {
                    n += 1
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("bench: watch failed: {e}"),
            }
            assert!(t0.elapsed() < WAIT, "bench: watch too slow");
        }
        rates.push(n as f64 / t0.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
            cpu.push((b - a) as f64 / 1000.0 / n.max(1) as f64);
        }
    }
    r.median("watch_events_per_sec", rates);
    r.median("watch_cpu_us_per_event", cpu);

    // Decoding alone, same objects, no socket and no server.
    let lines: Vec<Vec<u8>> = objects
        .iter()
        .map(|o| {
            let mut l = serde_json::to_vec(&json!({"type": "ADDED", "object": o})).unwrap();
            l.push(b'\n');
            l
        })
        .collect();
    let mut rates = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let c0 = thread_cpu_ns();
        let mut n = 0;
        for l in &lines {
            if decode_event(l, "bench", node_from_str).is_ok() {
                n += 1;
            }
        }
        rates.push(n as f64 / t0.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
            cpu.push((b - a) as f64 / 1000.0 / n.max(1) as f64);
        }
    }
    r.median("watch_decode_events_per_sec", rates);
    r.median("watch_decode_cpu_us_per_event", cpu);

    // Allocations per event, counted by valgrind in a child process (see `watch_allocs`).
    let lines_file = dir.0.join("events.jsonl");
    std::fs::write(&lines_file, lines.concat()).expect("write events file");
    watch_allocs(r, &lines_file, &kubeconfig, rv0);
}

/// CPU time of the calling thread so far, in ns: `/proc/thread-self/schedstat` (nanoseconds on
/// CPU), else utime + stime of `/proc/thread-self/stat` (clock ticks).
fn thread_cpu_ns() -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string("/proc/thread-self/schedstat")
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
    {
        return Some(ns);
    }
    let s = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ticks as f64 * 1e9 / clock_ticks_per_sec()) as u64)
}

/// Events the allocation counts are taken over: the difference between decoding `ALLOC_HI` and
/// `ALLOC_LO` events, so set-up (reading the file, TLS, the first request) cancels out.
const ALLOC_LO: usize = 1000;
const ALLOC_HI: usize = WATCH_OBJECTS;

/// Heap allocations (and bytes) per watch event. This bench runs itself as a child under
/// `valgrind --tool=memcheck` (mode `__watch-allocs`) twice per figure, decoding `ALLOC_LO` and then
/// `ALLOC_HI` events, and reads memcheck's "total heap usage: N allocs" of each: no allocator hook,
/// so no `unsafe`, and nothing else of the bench is slowed down. Decode only: `decode_event`
/// over the lines in a file. End to end: the child's `Client::watch` against this process's fake,
/// so the server's allocations are not in the child's count.
fn watch_allocs(r: &mut Results, lines_file: &Path, kubeconfig: &Path, rv0: u64) {
    let have_valgrind = Command::new("valgrind")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_valgrind {
        for k in ["watch_decode_allocs_per_event", "watch_allocs_per_event"] {
            r.note(k, "not measured: valgrind is not on PATH");
        }
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    let log = lines_file.with_file_name("memcheck.log");
    let count = |args: &[&str]| -> (f64, f64) {
        let _ = std::fs::remove_file(&log);
        let status = Command::new("valgrind")
            .args(["--tool=memcheck", "--leak-check=no", "--error-exitcode=0"])
            .arg(format!("--log-file={}", log.display()))
            .arg(&exe)
            .arg("__watch-allocs")
            .args(args)
            .stdin(Stdio::null())
            .status()
            .expect("run valgrind");
        assert!(status.success(), "bench: valgrind child {args:?}: {status}");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        heap_usage(&text).unwrap_or_else(|| panic!("bench: no heap summary in {text}"))
    };
    let per_event =
        |mode: &str, first: &str, second: &str, key: &str, bytes_key: &str, r: &mut Results| {
            let (lo_n, lo_b) = count(&[mode, first, second, &ALLOC_LO.to_string()]);
            let (hi_n, hi_b) = count(&[mode, first, second, &ALLOC_HI.to_string()]);
            let events = (ALLOC_HI - ALLOC_LO) as f64;
            r.set(key, (hi_n - lo_n) / events);
            r.set(bytes_key, (hi_b - lo_b) / events);
        };
    let file = lines_file.display().to_string();
    per_event(
        "decode",
        &file,
        "-",
        "watch_decode_allocs_per_event",
        "watch_decode_alloc_bytes_per_event",
        r,
    );
    per_event(
        "e2e",
        &kubeconfig.display().to_string(),
        &rv0.to_string(),
        "watch_allocs_per_event",
        "watch_alloc_bytes_per_event",
        r,
    );
}

/// (allocations, bytes allocated) from memcheck's "total heap usage: N allocs, M frees, B bytes
/// allocated".
fn heap_usage(log: &str) -> Option<(f64, f64)> {
    let line = log.lines().find(|l| l.contains("total heap usage:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    // The number before a word, thousands separators (`,`) removed.
    let before = |word: &str| -> Option<f64> {
        let i = words.iter().position(|w| w.trim_end_matches(',') == word)?;
        words.get(i.checked_sub(1)?)?.replace(',', "").parse().ok()
    };
    Some((before("allocs")?, before("bytes")?))
}

/// The child of [`watch_allocs`]: decodes `n` events and exits. `decode FILE - N` or
/// `e2e KUBECONFIG RV N`.
fn watch_allocs_child(args: &[String]) {
    use paperlb::kube::client::{Client, ClientOptions};
    use paperlb::kube::config::{LoadOptions, load};
    use paperlb::kube::watch::{WatchEvent, decode_event};

    let [mode, first, second, n] = args else {
        panic!("bench: __watch-allocs MODE ARG ARG N");
    };
    let n: usize = n.parse().expect("N");
    let mut decoded = 0;
    match mode.as_str() {
        "decode" => {
            let bytes = std::fs::read(first).expect("read events file");
            for line in bytes.split_inclusive(|b| *b == b'\n').take(n) {
                if decode_event(line, "bench", node_from_str).is_ok() {
                    decoded += 1;
                }
            }
        }
        "e2e" => {
            let cluster = load(&LoadOptions {
                kubeconfig: Some(PathBuf::from(first)),
                ..LoadOptions::default()
            })
            .expect("load kubeconfig");
            let client = Client::new(&cluster, ClientOptions::default()).expect("client");
            let mut stream = client.watch("/api/v1/nodes", second, 60).expect("watch");
            while decoded < n {
                match stream.next_event(node_from_str) {
                    Ok(Some(WatchEvent::Added { .. })) => decoded += 1,
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => panic!("bench: watch failed: {e}"),
                }
            }
        }
        other => panic!("bench: unknown __watch-allocs mode {other}"),
    }
    assert_eq!(decoded, n, "bench: decoded {decoded} of {n} events");
}

// ---- health: the updater's active checks (issue 14) ------------------------------------------

/// utime + stime of any process, in clock ticks.
fn pid_cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

/// Listeners on 127.0.0.2 whose backlog is drained by one thread, until dropped.
struct Listeners {
    ports: Vec<u16>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listeners {
    fn start(ls: Vec<std::net::TcpListener>) -> Listeners {
        use std::sync::atomic::{AtomicBool, Ordering};
        let ports = ls.iter().map(|l| l.local_addr().unwrap().port()).collect();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            for l in &ls {
                l.set_nonblocking(true).unwrap();
            }
            while !s.load(Ordering::Relaxed) {
                for l in &ls {
                    while let Ok((mut c, _)) = l.accept() {
                        let _ = c.write_all(b"b\n");
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Listeners {
            ports,
            stop,
            thread: Some(thread),
        }
    }

    fn on(ip: &str, n: usize) -> Listeners {
        Listeners::start(
            (0..n)
                .map(|_| std::net::TcpListener::bind((ip, 0)).unwrap())
                .collect(),
        )
    }

    fn on_port(ip: &str, port: u16) -> Listeners {
        Listeners::start(vec![std::net::TcpListener::bind((ip, port)).unwrap()])
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `--host-failure-grace` of the host failover phase, in ms.
const HOST_GRACE_MS: f64 = 5000.0;
/// Services of the host failover phase.
const HOST_SERVICES: usize = 100;

/// Several LB hosts: 100 Services on a two-host config (two recording updaters); host 2's updater
/// dies at t0 → every Service's ingress lists host 1 only (the grace, counted from its last good
/// answer, plus the reconciles); then it comes back on its address → every ingress lists both.
fn host_failover(bin: &Path, r: &mut Results) {
    const H1: &str = "127.0.0.4";
    const H2: &str = "127.0.0.5";
    let w = World::new();
    let mut u2 = Some(Updater::start());
    let u2_addr = u2
        .as_ref()
        .map(|u| u.url.trim_start_matches("http://").to_string());
    let u2_addr = u2_addr.expect("host 2");
    let config = json!({
        "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": NS},
        "spec": {"host": null, "httpUpdaterURL": null, "hosts": [
            {"name": "lb-1", "host": H1, "httpUpdaterURL": w.updater.url},
            {"name": "lb-2", "host": H2, "httpUpdaterURL": format!("http://{u2_addr}")},
        ]},
    });
    w.api
        .apply("loadbalancerconfigs", config)
        .expect("two-host config");
    let grace = format!("--host-failure-grace={}ms", HOST_GRACE_MS as u64);
    let _c = Controller::start_with(bin, &w.kubeconfig, None, &[grace.as_str()]);
    for i in 0..HOST_SERVICES {
        w.service(&format!("hosts-{i:03}"));
    }
    let ingress_is = |want: &[&str]| {
        let svcs: Vec<Value> = w
            .api
            .list("services", "default")
            .into_iter()
            .filter(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("hosts-"))
            })
            .collect();
        svcs.len() >= HOST_SERVICES
            && svcs.iter().all(|s| {
                let ips: Vec<&str> = s["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|i| i["ip"].as_str()).collect())
                    .unwrap_or_default();
                ips == want
            })
    };
    let end = Instant::now() + WAIT;
    while !ingress_is(&[H1, H2]) {
        if Instant::now() > end {
            let lbs = w.api.list("loadbalancers", "default");
            let svcs = w.api.list("services", "default");
            panic!(
                "bench: not every Service on both hosts: {} LBs, first {}; first Service status {}",
                lbs.len(),
                lbs.first()
                    .map(|l| l["status"].to_string())
                    .unwrap_or_default(),
                svcs.first()
                    .map(|s| s["status"].to_string())
                    .unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t0 = Instant::now();
        u2.take();
        wait_for(
            "host 2 out of every ingress",
            Duration::from_millis(10),
            || ingress_is(&[H1]),
        );
        down.push(ms(t0.elapsed()));
        let t1 = Instant::now();
        u2 = Some(Updater::start_at(&u2_addr));
        wait_for(
            "host 2 back in every ingress",
            Duration::from_millis(10),
            || ingress_is(&[H1, H2]),
        );
        up.push(ms(t1.elapsed()));
    }
    r.median("host_failover_ingress_ms", down);
    r.median("host_recovery_ingress_ms", up);
}

/// The `healthy` flags of one backend's upstreams in the updater's GET.
fn healthy_flags(port: u16, name: &str) -> Vec<Option<bool>> {
    let Some(text) = http_get(port, "/api/v1/lb") else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&text).unwrap_or_default();
    v["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["backendName"] == name)
        .flat_map(|b| b["upstreamServers"].as_array().cloned().unwrap_or_default())
        .map(|u| u["healthy"].as_bool())
        .collect()
}

fn health_checks(bin: &Path, r: &mut Results) {
    use support::nginx::{NGINX, Nginx, STREAM_MODULE};
    if !Path::new(NGINX).is_file() || !Path::new(STREAM_MODULE).is_file() {
        r.note(
            "health_failover_ms",
            "not measured: nginx or its stream module is missing",
        );
        return;
    }
    reap_on_panic();
    let nginx = Nginx::start();
    if let Some(pid) = nginx.master_pid() {
        reap_add(pid, "-TERM");
    }
    let up = UpdaterProc::start(bin, &nginx);
    let pid = up.child.as_ref().map(|c| c.id()).expect("updater child");

    // Failover: two upstreams, the default check (tcp, every 2 s, 2 failures); one dies at t0 →
    // the updater's GET reports it unhealthy and its file renders it `down` (the file is written
    // just before the reload, so this is the moment nginx is told, within one reload's time).
    let a = Listeners::on("127.0.0.2", 1);
    let b_port = free_port();
    let lb = free_port();
    let body = format!(
        r#"{{"backendName":"bench_health","lbPort":{lb},"lbProtocol":"TCP","upstreamServers":[{{"host":"127.0.0.2","port":{}}},{{"host":"127.0.0.3","port":{b_port}}}],"healthCheck":{{"type":"tcp"}}}}"#,
        a.ports[0]
    );
    let mut b = Some(Listeners::on_port("127.0.0.3", b_port));
    assert_eq!(up.call("POST", &body), 200, "bench: health POST");
    let conf = nginx.streams.join("bench_health.conf");
    let mut runs = Vec::new();
    for _ in 0..10 {
        wait_for("both upstreams healthy", Duration::from_millis(20), || {
            healthy_flags(up.port, "bench_health") == [Some(true), Some(true)]
                && !std::fs::read_to_string(&conf)
                    .unwrap_or_default()
                    .contains(" down;")
        });
        let t0 = Instant::now();
        b.take();
        wait_for(
            "the dead upstream rendered down",
            Duration::from_millis(5),
            || {
                healthy_flags(up.port, "bench_health") == [Some(true), Some(false)]
                    && std::fs::read_to_string(&conf)
                        .unwrap_or_default()
                        .contains(&format!("127.0.0.3:{b_port} down;"))
            },
        );
        runs.push(ms(t0.elapsed()));
        b = Some(Listeners::on_port("127.0.0.3", b_port));
    }
    r.median("health_failover_ms", runs);
    drop(b);
    let _ = up.call("DELETE", r#"{"backendName":"bench_health"}"#);

    // Cost: one backend with 1,000 upstreams (1,000 listeners on 127.0.0.2), default check;
    // the updater's CPU over 30 s of steady checking, scaled to a minute.
    let many = Listeners::on("127.0.0.2", 1000);
    let ups: Vec<String> = many
        .ports
        .iter()
        .map(|p| format!(r#"{{"host":"127.0.0.2","port":{p}}}"#))
        .collect();
    let lb2 = free_port();
    let body = format!(
        r#"{{"backendName":"bench_health_1k","lbPort":{lb2},"lbProtocol":"TCP","upstreamServers":[{}],"healthCheck":{{"type":"tcp"}}}}"#,
        ups.join(",")
    );
    assert_eq!(up.call("POST", &body), 200, "bench: 1k POST");
    wait_for("1,000 upstreams checked", Duration::from_millis(50), || {
        let f = healthy_flags(up.port, "bench_health_1k");
        f.len() == 1000 && f.iter().all(|h| *h == Some(true))
    });
    let mut cost = Vec::new();
    for _ in 0..3 {
        let (c0, t0) = (pid_cpu_ticks(pid), Instant::now());
        std::thread::sleep(Duration::from_secs(10));
        let ticks = (pid_cpu_ticks(pid) - c0) as f64;
        let cpu_ms = ticks / clock_ticks_per_sec() * 1000.0;
        cost.push(cpu_ms * 60.0 / t0.elapsed().as_secs_f64());
    }
    r.median("health_check_cpu_ms_per_1k_upstreams_per_min", cost);
    let _ = up.call("DELETE", r#"{"backendName":"bench_health_1k"}"#);
    drop(many);
    drop(a);
}

// ---------------------------------------------------------------------------------------------
// Drift repair: an LB host that loses its whole config, with 1,000 backends

/// Backends (one Service port each) on the LB host of the drift phase.
const DRIFT_BACKENDS: usize = 1000;
/// The controller's `--updater-resync` in the drift phase.
const DRIFT_RESYNC: &str = "2s";

/// The release controller, 1,000 READY Services on one real `paperlb nginx-updater` + nginx; then
/// the host loses its whole config (streams dir emptied, nginx reloaded). Measures how long the
/// drift check takes to notice (at most one resync period), how long from the first repair POST
/// until nginx listens on all 1,000 ports again, the POSTs and reloads that cost, and what a
/// converged check costs (requests per check, and the GET's latency at 1k backends).
fn drift_repair(bin: &Path, r: &mut Results) {
    use support::nginx::{NGINX, Nginx, STREAM_MODULE, children, config_text};
    if !Path::new(NGINX).is_file() || !Path::new(STREAM_MODULE).is_file() {
        r.note(
            "drift_repair_ms_1k",
            "not measured: nginx or its stream module is missing (./scripts/install-deps)",
        );
        return;
    }
    let Some(low) = free_window(DRIFT_BACKENDS) else {
        r.note(
            "drift_repair_ms_1k",
            "not measured: no 1,000 free ports in a row",
        );
        return;
    };
    reap_on_panic();
    let nginx = Nginx::start();
    let master = nginx.master_pid().expect("nginx master");
    reap_add(master, "-TERM");
    // 1,000 listeners need more connections and descriptors than the test suite's nginx.conf has.
    let text = config_text(&nginx.pid_file, &nginx.error_log, &nginx.streams)
        .replace("worker_connections 256;", "worker_connections 8192;")
        .replace(
            "worker_processes 1;",
            "worker_processes 1;\nworker_rlimit_nofile 16384;",
        );
    std::fs::write(&nginx.conf, text).expect("write nginx.conf");
    let workers = children(master);
    support::procs::signal("-HUP", master);
    wait_for("nginx reloaded", Duration::from_millis(10), || {
        let now = children(master);
        !now.is_empty() && now.is_disjoint(&workers)
    });
    let up = UpdaterProc::start(bin, &nginx);
    let gets = |up: &UpdaterProc| updater_requests(up.port, "GET");
    let writes =
        |up: &UpdaterProc| updater_requests(up.port, "POST") + updater_requests(up.port, "DELETE");

    // The cluster: two nodes, one config on this updater, 1,000 one-port Services.
    let api = FakeApi::start(FakeOptions {
        namespaces: vec![NS.into()],
        ..FakeOptions::default()
    });
    let dir = std::env::temp_dir().join(format!("paperlb-bench-drift-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
    let w = World {
        api,
        updater: Updater::start(),
        kubeconfig,
        _dir: TempDir(dir),
    };
    for i in 0..2 {
        w.node(&node_name(i), &node_ip(i), true);
    }
    let high = low + DRIFT_BACKENDS as u16 - 1;
    let config = json!({
        "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": NS},
        "spec": {"default": true, "httpUpdaterURL": format!("http://127.0.0.1:{}", up.port),
                 "host": LB_HOST, "portRange": {"low": low, "high": high}}
    });
    w.api
        .apply("loadbalancerconfigs", config)
        .expect("apply config");
    for i in 0..DRIFT_BACKENDS {
        w.service(&format!("drift-{i:04}"));
    }
    let metrics_port = free_port();
    let c = Controller::start_with(
        bin,
        &w.kubeconfig,
        Some(metrics_port),
        &["--updater-resync", DRIFT_RESYNC],
    );
    let ports: Vec<u16> = (low..=high).collect();
    let listening = |ports: &[u16]| ports.iter().filter(|p| lb_listens(**p)).count();
    let end = Instant::now() + Duration::from_secs(600);
    while w.ready_count() < DRIFT_BACKENDS || listening(&ports) < DRIFT_BACKENDS {
        assert!(
            Instant::now() < end,
            "bench: 1,000 Services not READY and listening in 600 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Converged: every check is one GET and nothing else.
    let (g0, w0) = (gets(&up), writes(&up));
    let list0 = list_seconds(metrics_port);
    wait_for("three converged checks", Duration::from_millis(50), || {
        gets(&up) >= g0 + 3.0
    });
    let (g1, w1) = (gets(&up), writes(&up));
    let list1 = list_seconds(metrics_port);
    r.set(
        "resync_cost_requests_converged",
        (g1 - g0 + w1 - w0) / (g1 - g0),
    );
    if list1.1 > list0.1 {
        r.set(
            "resync_converged_get_ms_1k",
            (list1.0 - list0.0) * 1000.0 / (list1.1 - list0.1),
        );
    }

    // The host loses its whole config.
    let (posts0, reloads0) = (updater_requests(up.port, "POST"), up.reloads());
    let workers = children(master);
    for e in std::fs::read_dir(&nginx.streams)
        .expect("streams dir")
        .flatten()
    {
        let _ = std::fs::remove_file(e.path());
    }
    let wiped = Instant::now();
    support::procs::signal("-HUP", master);
    wait_for(
        "nginx reloaded without the backends",
        Duration::from_millis(5),
        || {
            let now = children(master);
            !now.is_empty() && now.is_disjoint(&workers) && !lb_listens(low)
        },
    );
    wait_for("the first repair POST", Duration::from_millis(5), || {
        updater_requests(up.port, "POST") > posts0
    });
    let first_post = Instant::now();
    let end = Instant::now() + Duration::from_secs(120);
    while listening(&ports) < DRIFT_BACKENDS {
        assert!(
            Instant::now() < end,
            "bench: the wiped host was not repaired in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let repaired = Instant::now();
    // The updater counts a request after answering it, so the last batch's POSTs show a moment
    // after nginx serves them: wait until the count stops moving.
    let mut last = updater_requests(up.port, "POST");
    wait_for("the POST count settles", Duration::from_millis(500), || {
        let now = updater_requests(up.port, "POST");
        std::mem::replace(&mut last, now) == now
    });
    r.set("drift_detect_ms", ms(first_post - wiped));
    r.set("drift_repair_ms_1k", ms(repaired - first_post));
    r.set("drift_repair_reloads_1k", up.reloads() - reloads0);
    r.set(
        "drift_repair_posts_1k",
        updater_requests(up.port, "POST") - posts0,
    );
    drop(c);
    drop(up);
    drop(nginx);
    reap_remove(master);
}

/// The lowest `n` consecutive ports from 20000 up that nothing listens on (on any address), below
/// Linux's ephemeral range (32768 up), where outgoing connections would take ports nginx needs.
fn free_window(n: usize) -> Option<u16> {
    let mut low: u16 = 20000;
    while usize::from(low) + n <= 32768 {
        let taken =
            (low..low + n as u16).find(|p| std::net::TcpListener::bind(("0.0.0.0", *p)).is_err());
        match taken {
            None => return Some(low),
            Some(p) => low = p + 1,
        }
    }
    None
}

/// Whether nginx accepts a connection on this LB port (its listener exists).
fn lb_listens(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// `/api/v1/lb` requests the updater answered with this method (any code).
fn updater_requests(port: u16, method: &str) -> f64 {
    let body = http_get(port, "/metrics").expect("updater /metrics");
    let needle = format!("method=\"{method}\"");
    body.lines()
        .filter(|l| l.starts_with("paperlb_updater_http_requests_total{"))
        .filter(|l| l.contains("route=\"/api/v1/lb\"") && l.contains(&needle))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// (sum, count) of the controller's `paperlb_updater_call_duration_seconds{op="list"}`.
fn list_seconds(metrics_port: u16) -> (f64, f64) {
    let Some(body) = http_get(metrics_port, "/metrics") else {
        return (0.0, 0.0);
    };
    let value = |name: &str| {
        body.lines()
            .find(|l| l.starts_with(name) && l.contains("op=\"list\""))
            .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("paperlb_updater_call_duration_seconds_sum"),
        value("paperlb_updater_call_duration_seconds_count"),
    )
}
