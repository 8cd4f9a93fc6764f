//! The controller's end-to-end harness: the fake API server, a recording updater served over HTTP by
//! the crate's own bounded server, and the real `paperlb controller` binary as a child process.
//! Every wait is bounded; every process is killed on drop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paperlb::http::{Limits, Request, Response, Server};
use serde_json::{Value, json};

use crate::support::fake_api::{FakeApi, FakeOptions};
use crate::support::procs::{ChildLog, spawn_logged};

/// Generous: the box may be loaded; a wait only ends early when its condition holds.
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `cond` every 50 ms until it holds or `WAIT` passes; panics with `what` on timeout.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// One call the updater received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub body: Value,
    /// The body's bytes as sent, and the Content-Type header if any.
    pub raw: String,
    pub content_type: Option<String>,
}

/// An updater that records every call and keeps the resulting backend set, like a real one would.
pub struct RecordingUpdater {
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub backends: Arc<Mutex<BTreeMap<String, Value>>>,
    pub failing: Arc<AtomicBool>,
    /// Each POST is answered only after this many milliseconds (0: at once).
    pub hold_ms: Arc<AtomicU64>,
    /// The same for each DELETE.
    pub hold_delete_ms: Arc<AtomicU64>,
    /// Requests being held now (by `hold_ms` or `hold_delete_ms`).
    pub held: Arc<AtomicUsize>,
    /// Requests being answered now, and the most there ever were at once.
    pub concurrency: Arc<Concurrency>,
    /// `GET /api/v1/lb` answered (drift checks); not in `calls`.
    pub lists: Arc<AtomicUsize>,
    /// Answer `GET /api/v1/lb` with 404, as the Go nginx-lb-updater does.
    pub go_like: Arc<AtomicBool>,
    /// Answer `GET /api/v1/lb` with 200 and a body that is not JSON.
    pub garbled: Arc<AtomicBool>,
    server: Option<Server>,
    pub url: String,
}

impl RecordingUpdater {
    pub fn start() -> RecordingUpdater {
        RecordingUpdater::start_on("127.0.0.1:0")
    }

    /// Listening on `addr` (a loopback address).
    pub fn start_on(addr: &str) -> RecordingUpdater {
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let backends: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let hold_ms = Arc::new(AtomicU64::new(0));
        let concurrency: Arc<Concurrency> = Arc::default();
        let lists: Arc<AtomicUsize> = Arc::default();
        let (c, b, f) = (calls.clone(), backends.clone(), failing.clone());
        let l = lists.clone();
        let go_like = Arc::new(AtomicBool::new(false));
        let g = go_like.clone();
        let garbled = Arc::new(AtomicBool::new(false));
        let gb = garbled.clone();
        let hold_delete_ms = Arc::new(AtomicU64::new(0));
        let held: Arc<AtomicUsize> = Arc::default();
        let (hp, hd, hn) = (hold_ms.clone(), hold_delete_ms.clone(), held.clone());
        let n = concurrency.clone();
        let handler = move |req: &Request| {
            let now = n.now.fetch_add(1, Ordering::SeqCst) + 1;
            n.max.fetch_max(now, Ordering::SeqCst);
            let h = match req.method.as_str() {
                "POST" => Some(&hp),
                "DELETE" => Some(&hd),
                _ => None,
            };
            if let Some(h) = h.filter(|h| h.load(Ordering::SeqCst) > 0) {
                hn.fetch_add(1, Ordering::SeqCst);
                // In short steps, so a test can let held requests go by setting the hold to 0.
                let until = Instant::now() + Duration::from_millis(h.load(Ordering::SeqCst));
                while h.load(Ordering::SeqCst) > 0 && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                hn.fetch_sub(1, Ordering::SeqCst);
            }
            let answer = if req.method == "GET" && req.path == "/api/v1/lb" {
                l.fetch_add(1, Ordering::SeqCst);
                if g.load(Ordering::SeqCst) {
                    Response::text(404, "404 page not found\n")
                } else if gb.load(Ordering::SeqCst) {
                    Response::new(
                        200,
                        "application/json",
                        b"{\"backends\": [{\"backendN".to_vec(),
                    )
                } else {
                    list(&b)
                }
            } else {
                record(req, &c, &b, &f)
            };
            n.now.fetch_sub(1, Ordering::SeqCst);
            answer
        };
        let server =
            Server::bind(addr, Limits::default(), None, handler).expect("bind recording updater");
        let url = format!("http://{}", server.local_addr());
        RecordingUpdater {
            calls,
            backends,
            failing,
            hold_ms,
            hold_delete_ms,
            held,
            concurrency,
            lists,
            go_like,
            garbled,
            server: Some(server),
            url,
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn posts(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "POST")
            .map(|c| c.body)
            .collect()
    }

    pub fn deletes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == "DELETE")
            .map(|c| {
                c.body["backendName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    pub fn backend(&self, name: &str) -> Option<Value> {
        self.backends.lock().unwrap().get(name).cloned()
    }

    pub fn backend_names(&self) -> Vec<String> {
        self.backends.lock().unwrap().keys().cloned().collect()
    }
}

/// How many requests a server is answering at once.
#[derive(Debug, Default)]
pub struct Concurrency {
    pub now: AtomicUsize,
    pub max: AtomicUsize,
}

impl Drop for RecordingUpdater {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            drop(s);
        }
    }
}

/// `GET /api/v1/lb` as paperlb nginx-updater answers it: every backend as it was posted.
fn list(backends: &Mutex<BTreeMap<String, Value>>) -> Response {
    let all: Vec<Value> = backends.lock().unwrap().values().cloned().collect();
    Response::json(200, &json!({"backends": all, "unreadable": []}))
}

fn record(
    req: &Request,
    calls: &Mutex<Vec<Call>>,
    backends: &Mutex<BTreeMap<String, Value>>,
    failing: &AtomicBool,
) -> Response {
    if req.path != "/api/v1/lb" {
        return Response::error(404, "not found");
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    calls.lock().unwrap().push(Call {
        method: req.method.clone(),
        body: body.clone(),
        raw: String::from_utf8_lossy(&req.body).into_owned(),
        content_type: req.header("content-type").map(str::to_string),
    });
    if failing.load(Ordering::SeqCst) {
        return Response::error(500, "nginx: [emerg] simulated failure");
    }
    let name = body["backendName"].as_str().unwrap_or_default().to_string();
    match req.method.as_str() {
        "POST" => {
            backends.lock().unwrap().insert(name, body);
            Response::json(200, &json!({"status": "ok"}))
        }
        "DELETE" => match backends.lock().unwrap().remove(&name) {
            Some(_) => Response::json(200, &json!({"status": "ok"})),
            None => Response::error(404, "backend not found"),
        },
        _ => Response::error(405, "method not allowed"),
    }
}

/// The controller binary, killed on drop; its log is shown only if the test fails (see
/// `procs::ChildLog`).
pub struct Controller {
    child: Option<Child>,
    _log: ChildLog,
}

impl Controller {
    pub fn start(kubeconfig: &PathBuf) -> Controller {
        Controller::start_with(kubeconfig, &[])
    }

    pub fn start_with(kubeconfig: &PathBuf, extra: &[&str]) -> Controller {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paperlb"));
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", "paperlb-system", "--metrics-addr", "off"])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("PAPERLB_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        let (child, log) =
            spawn_logged("paperlb controller", &mut cmd).expect("start paperlb controller");
        Controller {
            child: Some(child),
            _log: log,
        }
    }

    /// kill -9: no chance to clean up, like a node dying.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.terminate_within(WAIT)
    }

    /// SIGTERM, then its exit code if it exits within `limit` (else it is killed: None).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("paperlb-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A cluster: the fake API with two ready nodes (127.0.0.2, 127.0.0.3), the controller's
/// namespace, a default LoadBalancerConfig pointing at a recording updater, and a kubeconfig.
pub struct World {
    pub api: FakeApi,
    pub updater: RecordingUpdater,
    pub kubeconfig: PathBuf,
    _dir: TempDir,
}

pub const LB_HOST: &str = "127.0.0.10";

impl World {
    /// Applies Secret `name` in the controller's namespace, its `key` holding `value`.
    pub fn secret(&self, name: &str, key: &str, value: &str) {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.encode(value);
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "paperlb-system"}, "data": {key: data}});
        self.api.apply("secrets", obj).expect("apply secret");
    }

    pub fn new(tag: &str) -> World {
        World::with_options(tag, FakeOptions::default())
    }

    /// Like `new`, with these fake API server options (the controller's namespace is added).
    pub fn with_options(tag: &str, mut opts: FakeOptions) -> World {
        opts.namespaces.push("paperlb-system".into());
        let api = FakeApi::start(opts);
        let dir = TempDir::new(tag);
        let kubeconfig = dir.0.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
        let updater = RecordingUpdater::start();
        let w = World {
            api,
            updater,
            kubeconfig,
            _dir: dir,
        };
        w.node("node-a", "127.0.0.2", true);
        w.node("node-b", "127.0.0.3", true);
        w.config("edge", true, 8100, 8199);
        w
    }

    /// Labels a node `node.kubernetes.io/exclude-from-external-load-balancers` (or drops its
    /// labels): it leaves the targets under either node-set rule, where NotReady alone does not
    /// while health checks are on (KEP-3458).
    pub fn exclude(&self, name: &str, excluded: bool) {
        let mut node = self.api.get("nodes", "", name).expect("get node");
        node["metadata"]["labels"] = if excluded {
            json!({"node.kubernetes.io/exclude-from-external-load-balancers": "true"})
        } else {
            json!({})
        };
        self.api.update("nodes", node).expect("label node");
    }

    /// Creates or replaces a node with an InternalIP and a Ready condition.
    pub fn node(&self, name: &str, ip: &str, ready: bool) {
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

    pub fn config(&self, name: &str, default: bool, low: u16, high: u16) {
        let obj = json!({
            "apiVersion": "lb.paperlb.com/v1alpha1",
            "kind": "LoadBalancerConfig",
            "metadata": {"name": name, "namespace": "paperlb-system"},
            "spec": {
                "default": default,
                "httpUpdaterURL": self.updater.url,
                "host": LB_HOST,
                "portRange": {"low": low, "high": high},
            }
        });
        self.api
            .apply("loadbalancerconfigs", obj)
            .expect("apply config");
    }

    /// A LoadBalancer Service in `default` with these (name, port, protocol) ports.
    pub fn service(&self, name: &str, ports: &[(&str, u16, &str)]) {
        let ports: Vec<Value> = ports
            .iter()
            .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto, "targetPort": p}))
            .collect();
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports},
        });
        self.api.apply("services", obj).expect("apply service");
    }

    pub fn svc(&self, name: &str) -> Option<Value> {
        self.api.get("services", "default", name).ok()
    }

    pub fn lb(&self, name: &str) -> Option<Value> {
        self.api.get("loadbalancers", "default", name).ok()
    }

    /// True when the LoadBalancer is READY for its current generation and the Service shows the
    /// external address.
    pub fn ready(&self, name: &str) -> bool {
        let (Some(lb), Some(svc)) = (self.lb(name), self.svc(name)) else {
            return false;
        };
        lb["status"]["phase"] == "READY"
            && lb["status"]["observedGeneration"] == lb["metadata"]["generation"]
            && svc["status"]["loadBalancer"]["ingress"][0]["ip"] == LB_HOST
    }

    /// The LB ports allocated to a LoadBalancer, as (port, protocol).
    pub fn lb_ports(&self, name: &str) -> Vec<(u64, String)> {
        let Some(lb) = self.lb(name) else {
            return Vec::new();
        };
        lb["spec"]["ports"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p["port"].as_u64().unwrap_or(0),
                            p["protocol"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The nodePort the apiserver gave a Service port.
    pub fn node_port(&self, name: &str, index: usize) -> u64 {
        self.svc(name)
            .and_then(|s| s["spec"]["ports"][index]["nodePort"].as_u64())
            .unwrap_or(0)
    }

    /// Successful writes the controller made, Events apart: (method, path) in order.
    pub fn api_writes(&self) -> Vec<(String, String)> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.status < 300 && !r.path.contains("/events"))
            .map(|r| (r.method, r.path))
            .collect()
    }
}

/// Upstream hosts of a recorded POST body, in order.
pub fn upstream_hosts(post: &Value) -> Vec<String> {
    post["upstreamServers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["host"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}
