//! Part `kube` (`bench kube --kubeconfig PATH [--context NAME] [--runs N] [--allow-remote]`): the
//! controller workload of part `latency` against any apiserver, e.g. a real kube-apiserver. Per run
//! it creates its own namespace, 100 Nodes (InternalIP 127.0.1.1–100), a default LoadBalancerConfig
//! whose updater is the bench's recorder on 127.0.0.1 and whose LB host is 127.0.0.10, and 1,000
//! one-port LoadBalancer Services; at the end it removes all of them again. The server must be on
//! loopback unless `--allow-remote` (`support::loopback`), the paperlb CRDs must be installed, and no
//! other LoadBalancer Service may exist (the bench's default config would take it over).
//!
//! API writes are counted by the controller itself (`paperlb_api_requests_total`, Events included).

use std::sync::atomic::{AtomicUsize, Ordering};

use paperlb::kube::client::{Client, ClientOptions, ListParams};
use paperlb::kube::config::{LoadOptions, load};

use super::*;

/// Threads that create or delete objects at once (and connections of the write-rate probe).
const PARALLEL: usize = 16;

pub struct Args {
    kubeconfig: PathBuf,
    context: Option<String>,
    runs: usize,
    allow_remote: bool,
}

pub fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        kubeconfig: PathBuf::new(),
        context: None,
        runs: bench_runs(),
        allow_remote: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--kubeconfig" => a.kubeconfig = PathBuf::from(value()?),
            "--context" => a.context = Some(value()?),
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--allow-remote" => a.allow_remote = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.kubeconfig.as_os_str().is_empty() {
        return Err("--kubeconfig PATH is required".into());
    }
    Ok(a)
}

/// One cluster run's objects, named after the process and run so runs never collide.
struct Cluster {
    client: Client,
    kubeconfig: PathBuf,
    ns: String,
    prefix: String,
    updater: Updater,
}

fn value_at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

impl Cluster {
    fn node_name(&self, i: usize) -> String {
        format!("{}-node-{i:03}", self.prefix)
    }

    fn svc_path(&self, name: &str) -> String {
        format!("/api/v1/namespaces/{}/services/{name}", self.ns)
    }

    fn create_node(&self, i: usize, ready: bool) {
        let name = self.node_name(i);
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"paperlb-bench": self.prefix}}});
        let _: Value = self
            .client
            .create("/api/v1/nodes", &node)
            .expect("create node");
        self.node_ready(i, ready);
    }

    fn node_ready(&self, i: usize, ready: bool) {
        let name = self.node_name(i);
        let status = json!({"status": {
            "addresses": [{"type": "InternalIP", "address": node_ip(i)},
                          {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "reason": "Bench", "lastHeartbeatTime": null}],
        }});
        let _: Value = self
            .client
            .merge_patch(&format!("/api/v1/nodes/{name}/status"), &status)
            .expect("node status");
    }

    fn create_service(&self, name: &str) {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]},
        });
        let path = format!("/api/v1/namespaces/{}/services", self.ns);
        let _: Value = self.client.create(&path, &svc).expect("create service");
    }

    fn svc_ready(&self, name: &str) -> bool {
        self.client
            .get::<Value>(&self.svc_path(name))
            .map(|s| World::has_ingress(&s))
            .unwrap_or(false)
    }

    fn ready_count(&self) -> usize {
        let path = format!("/api/v1/namespaces/{}/services", self.ns);
        self.client
            .list(&path, &ListParams::default(), |t| {
                serde_json::from_str::<Value>(t)
            })
            .map(|l| l.items.iter().filter(|s| World::has_ingress(s)).count())
            .unwrap_or(0)
    }

    /// Runs `f(i)` for i in 0..n on [`PARALLEL`] threads sharing the client.
    fn parallel(&self, n: usize, f: impl Fn(usize) + Sync) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..PARALLEL {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        f(i);
                    }
                });
            }
        });
    }

    fn setup(client: &Client, kubeconfig: &Path, run: usize) -> Cluster {
        let prefix = format!("paperlb-bench-{}-{run}", std::process::id());
        let c = Cluster {
            client: client.clone(),
            kubeconfig: kubeconfig.to_path_buf(),
            ns: prefix.clone(),
            prefix,
            updater: Updater::start(),
        };
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": c.ns}});
        let _: Value = client
            .create("/api/v1/namespaces", &ns)
            .expect("create namespace");
        c.parallel(NODES, |i| c.create_node(i, true));
        let config = json!({
            "apiVersion": "lb.paperlb.com/v1alpha1",
            "kind": "LoadBalancerConfig",
            "metadata": {"name": "edge", "namespace": c.ns},
            "spec": {"default": true, "httpUpdaterURL": c.updater.url, "host": LB_HOST,
                     "portRange": {"low": 10000, "high": 11999}},
        });
        let path = format!(
            "/apis/lb.paperlb.com/v1alpha1/namespaces/{}/loadbalancerconfigs",
            c.ns
        );
        let _: Value = client.create(&path, &config).expect("create config");
        c
    }

    /// Deletes what the run made: the controller stops first (releasing 1,000 LoadBalancers through
    /// it would take minutes on a slow server and measures nothing), then the Services go, then the
    /// LoadBalancers lose their finalizers and go.
    fn teardown(self, controller: Option<Controller>) {
        drop(controller);
        let lbs = format!(
            "/apis/lb.paperlb.com/v1alpha1/namespaces/{}/loadbalancers",
            self.ns
        );
        let svcs = format!("/api/v1/namespaces/{}/services", self.ns);
        let names = |path: &str| -> Vec<String> {
            self.client
                .list(path, &ListParams::default(), |t| {
                    serde_json::from_str::<Value>(t)
                })
                .map(|l| {
                    l.items
                        .iter()
                        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let services = names(&svcs);
        self.parallel(services.len(), |i| {
            let _ = self.client.delete(&format!("{svcs}/{}", services[i]));
        });
        let left = names(&lbs);
        self.parallel(left.len(), |i| {
            let path = format!("{lbs}/{}", left[i]);
            let _: Result<Value, _> = self
                .client
                .merge_patch(&path, &json!({"metadata": {"finalizers": null}}));
            let _ = self.client.delete(&path);
        });
        let _ = self.client.delete(&format!(
            "/apis/lb.paperlb.com/v1alpha1/namespaces/{}/loadbalancerconfigs/edge",
            self.ns
        ));
        self.parallel(NODES, |i| {
            let _ = self
                .client
                .delete(&format!("/api/v1/nodes/{}", self.node_name(i)));
        });
        // Without a namespace controller (a bare apiserver) the namespace stays Terminating; it is
        // empty by now, and each run has its own name.
        let _ = self
            .client
            .delete(&format!("/api/v1/namespaces/{}", self.ns));
    }

    fn controller(&self, bin: &Path, metrics: u16) -> Controller {
        Controller::spawn(bin, &self.kubeconfig, &self.ns, Some(metrics), &[])
    }
}

/// Non-GET API requests the controller sent (Events included), and how many of them got a 409.
fn writes(c: &Controller) -> (f64, f64) {
    let Some(body) = c.metrics.and_then(|p| http_get(p, "/metrics")) else {
        return (f64::NAN, f64::NAN);
    };
    let (mut all, mut conflicts) = (0.0, 0.0);
    for l in body.lines() {
        let Some(rest) = l.strip_prefix("paperlb_api_requests_total{") else {
            continue;
        };
        let v: f64 = l
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0.0);
        if ["get", "list", "watch"]
            .iter()
            .any(|g| rest.contains(&format!("verb=\"{g}\"")))
        {
            continue;
        }
        all += v;
        if rest.contains("code=\"409\"") {
            conflicts += v;
        }
    }
    (all, conflicts)
}

/// The apiserver's own write rate in this sitting: 1,000 ConfigMap creates from one connection,
/// then from [`PARALLEL`]; writes per second each, and those clients (for [`lb_floor`]).
fn write_rate(c: &Cluster) -> (f64, f64, Vec<Client>) {
    let path = format!("/api/v1/namespaces/{}/configmaps", c.ns);
    let cm = |name: String| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"k": "v"}})
    };
    let t0 = Instant::now();
    for i in 0..SERVICES {
        let _: Value = c
            .client
            .create(&path, &cm(format!("one-{i}")))
            .expect("create cm");
    }
    let one = SERVICES as f64 / t0.elapsed().as_secs_f64();
    // A client per thread: one connection each, as 16 clients would have.
    let clients: Vec<Client> = (0..PARALLEL)
        .map(|_| new_client(&c.kubeconfig, None))
        .collect();
    let many = creates_per_sec(&clients, &path, |i| cm(format!("many-{i}")));
    let names: Vec<String> = (0..SERVICES)
        .flat_map(|i| [format!("one-{i}"), format!("many-{i}")])
        .collect();
    c.parallel(names.len(), |i| {
        let _ = c.client.delete(&format!("{path}/{}", names[i]));
    });
    (one, many, clients)
}

/// [`SERVICES`] creates of `body(i)` at `path`, one thread per client (one connection each, as
/// that many clients would have): creates per second.
fn creates_per_sec(clients: &[Client], path: &str, body: impl Fn(usize) -> Value + Sync) -> f64 {
    let t = per_client(clients, |client, i| {
        let _: Value = client.create(path, &body(i)).expect("create");
    });
    SERVICES as f64 / t.as_secs_f64()
}

/// Runs `f(client, i)` for i in 0..[`SERVICES`], one thread per client; the time it took.
fn per_client(clients: &[Client], f: impl Fn(&Client, usize) + Sync) -> Duration {
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for client in clients {
            let (next, f) = (&next, &f);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= SERVICES {
                        break;
                    }
                    f(client, i);
                }
            });
        }
    });
    t0.elapsed()
}

/// The server's floor for this workload, measured with no controller running, from
/// [`PARALLEL`] connections, on objects of the workload's own shape and size: 1,000 LoadBalancers
/// as the controller writes them for a one-port Service over 100 nodes (the first port's targets
/// once, as the Go field `targets`).
///
/// - creates per second alone (the figure earlier results compare with);
/// - a start's floor: each LoadBalancer created, then its status written, then its Service's
///   ingress (the writes a start needs per Service, Events aside: the port recorded, what was
///   applied, the address published), on the bench's 1,000 Services;
/// - a node change's floor: each LoadBalancer's targets patched (one node fewer) and then its
///   status written.
///
/// A custom resource this size costs the apiserver far more per write than a ConfigMap (schema
/// validation, merge, managedFields, the watch cache's decode), so these are the limits the
/// controller's figures compare with. The objects are deleted before the controller starts.
fn lb_floor(c: &Cluster, clients: &[Client]) -> (f64, Duration, Duration) {
    let path = format!(
        "/apis/lb.paperlb.com/v1alpha1/namespaces/{}/loadbalancers",
        c.ns
    );
    let targets = |nodes: usize| -> Vec<Value> {
        (0..nodes)
            .map(|i| json!({"host": node_ip(i), "port": 30000 + i}))
            .collect()
    };
    let all = targets(NODES);
    let lb = |name: String, port: usize| {
        json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancer",
            "metadata": {"name": name},
            "spec": {"host": LB_HOST, "port": port, "protocol": "TCP", "configName": "edge",
                "httpUpdater": {"url": c.updater.url}, "targets": all,
                // As paperlb writes it: the first port's targets once, as the Go field.
                "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}})
    };
    let status = |generation: i64, count: usize| {
        json!({"status": {"phase": "READY", "targetCount": count,
            "observedGeneration": generation, "hosts": null, "healthy": null,
            "conditions": [{"type": "Ready", "status": "True", "reason": "Applied",
                "message": "the updater applied the spec", "observedGeneration": generation,
                "lastTransitionTime": "2026-12-07T00:00:00Z"}],
            "applied": [{"host": LB_HOST, "port": 10000, "protocol": "TCP",
                "updaterURL": c.updater.url}]}})
    };
    let rate = creates_per_sec(clients, &path, |i| lb(format!("rate-{i}"), 10000 + i));
    c.parallel(SERVICES, |i| {
        let _ = c.client.delete(&format!("{path}/rate-{i}"));
    });
    let start = per_client(clients, |client, i| {
        let _: Value = client
            .create(&path, &lb(format!("floor-{i}"), 10000 + i))
            .expect("create");
        let _: Value = client
            .merge_patch(&format!("{path}/floor-{i}/status"), &status(1, NODES))
            .expect("status");
        let svc = c.svc_path(&format!("svc-{i:04}"));
        let _: Value = client
            .merge_patch(&format!("{svc}/status"), &ingress(10000 + i))
            .expect("ingress");
    });
    let fewer = json!({"spec": {"targets": targets(NODES - 1)}});
    let change = per_client(clients, |client, i| {
        let _: Value = client
            .merge_patch(&format!("{path}/floor-{i}"), &fewer)
            .expect("spec");
        let _: Value = client
            .merge_patch(&format!("{path}/floor-{i}/status"), &status(2, NODES - 1))
            .expect("status");
    });
    let none = json!({"status": {"loadBalancer": {"ingress": null}}});
    c.parallel(SERVICES, |i| {
        let _ = c.client.delete(&format!("{path}/floor-{i}"));
        let svc = c.svc_path(&format!("svc-{i:04}"));
        let _: Value = c
            .client
            .merge_patch(&format!("{svc}/status"), &none)
            .expect("ingress removed");
    });
    (rate, start, change)
}

/// A Service status patch that publishes `port` on the LB host.
fn ingress(port: usize) -> Value {
    json!({"status": {"loadBalancer": {"ingress": [{"ip": LB_HOST,
        "ports": [{"port": port, "protocol": "TCP"}]}]}}})
}

/// The server's floor for create → ingress, with no controller running, one at a time: a
/// Service created, its LoadBalancer created, the Service's ingress written, each waiting for
/// the last (what any controller that records the port before it publishes the address must do,
/// less the watch delivery and the updater call). Milliseconds, p50.
fn create_to_ingress_floor(c: &Cluster) -> f64 {
    let lbs = format!(
        "/apis/lb.paperlb.com/v1alpha1/namespaces/{}/loadbalancers",
        c.ns
    );
    let targets: Vec<Value> = (0..NODES)
        .map(|i| json!({"host": node_ip(i), "port": 30000 + i}))
        .collect();
    let mut took = Vec::new();
    for i in 0..LATENCY_SEQUENTIAL {
        let name = format!("floor-{i:04}");
        let t0 = Instant::now();
        c.create_service(&name);
        let lb = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancer",
            "metadata": {"name": name},
            "spec": {"host": LB_HOST, "port": 20000 + i, "protocol": "TCP", "configName": "edge",
                "httpUpdater": {"url": c.updater.url}, "targets": targets,
                "ports": [{"name": "http", "port": 20000 + i, "protocol": "TCP"}]}});
        let _: Value = c.client.create(&lbs, &lb).expect("create lb");
        let _: Value = c
            .client
            .merge_patch(
                &format!("{}/status", c.svc_path(&name)),
                &ingress(20000 + i),
            )
            .expect("ingress");
        took.push(ms(t0.elapsed()));
    }
    for i in 0..LATENCY_SEQUENTIAL {
        let name = format!("floor-{i:04}");
        let _ = c.client.delete(&c.svc_path(&name));
        let _ = c.client.delete(&format!("{lbs}/{name}"));
    }
    percentile(&took, 50.0)
}

fn new_client(kubeconfig: &Path, context: Option<&str>) -> Client {
    let cluster = load(&LoadOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: context.map(str::to_string),
        ..LoadOptions::default()
    })
    .expect("load kubeconfig");
    Client::new(&cluster, ClientOptions::default()).expect("client")
}

/// Refuses what would take over or break something in the cluster: missing CRDs, other
/// LoadBalancer Services.
fn preflight(client: &Client) -> Result<(), String> {
    client
        .get::<Value>("/apis/lb.paperlb.com/v1alpha1")
        .map_err(|e| {
            format!("the paperlb CRDs are not installed ({e}): kubectl apply -f manifests/crds/")
        })?;
    let all = client
        .list("/api/v1/services", &ListParams::default(), |t| {
            serde_json::from_str::<Value>(t)
        })
        .map_err(|e| format!("list Services: {e}"))?;
    let taken: Vec<String> = all
        .items
        .iter()
        .filter(|s| s["spec"]["type"] == "LoadBalancer")
        .map(|s| {
            format!(
                "{}/{}",
                value_at(s, &["metadata", "namespace"])
                    .as_str()
                    .unwrap_or(""),
                value_at(s, &["metadata", "name"]).as_str().unwrap_or("")
            )
        })
        .collect();
    if !taken.is_empty() {
        return Err(format!(
            "the cluster has LoadBalancer Services ({}); the bench's default config would take them over",
            taken.join(", ")
        ));
    }
    Ok(())
}

pub fn run(bin: &Path, args: &Args, r: &mut Results) -> Result<(), String> {
    let server = support::loopback::bench_server(
        &args.kubeconfig,
        args.context.as_deref(),
        args.allow_remote,
    )?;
    let client = new_client(&args.kubeconfig, args.context.as_deref());
    preflight(&client)?;
    eprintln!("bench: kube part against {server}, {} run(s)", args.runs);
    let mut figures: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for run in 0..args.runs {
        eprintln!("bench: kube run {}/{}", run + 1, args.runs);
        // A failed wait panics, and the release profile aborts: the run's objects are left
        // behind then (all named after the bench's pid).
        let c = Cluster::setup(&client, &args.kubeconfig, run);
        let (out, controller) = one_run(bin, &c);
        c.teardown(Some(controller));
        for (k, v) in out {
            figures.entry(k).or_default().push(v);
        }
    }
    for (key, samples) in figures {
        r.median(&format!("kube_{key}"), samples);
    }
    Ok(())
}

fn one_run(bin: &Path, c: &Cluster) -> (Vec<(&'static str, f64)>, Controller) {
    let mut out = Vec::new();
    let (one, many, clients) = write_rate(c);
    out.push(("apiserver_creates_per_sec_1conn", one));
    out.push(("apiserver_creates_per_sec_16conn", many));
    out.push((
        "apiserver_floor_create_to_ingress_ms_p50",
        create_to_ingress_floor(c),
    ));

    // Cold start over 1,000 Services without LoadBalancers (the floors write their ingress and
    // take it away again before the controller starts).
    c.parallel(SERVICES, |i| c.create_service(&format!("svc-{i:04}")));
    let (lbs, start, change) = lb_floor(c, &clients);
    out.push(("apiserver_lb_creates_per_sec_16conn", lbs));
    out.push(("apiserver_floor_start_ms_1k", ms(start)));
    out.push(("apiserver_floor_node_change_ms_1k", ms(change)));
    let metrics = free_port();
    let t0 = Instant::now();
    let mut ctl = c.controller(bin, metrics);
    let pushed = converge(&c.updater, 0, |_| true);
    out.push(("startup_to_all_pushed_ms_1k", ms(pushed - t0)));
    wait_for("cold start: 1k ingress", Duration::from_millis(100), || {
        c.ready_count() >= SERVICES
    });
    out.push(("startup_to_all_ingress_ms_1k", ms(t0.elapsed())));
    std::thread::sleep(Duration::from_millis(500));
    let (w, conflicts) = writes(&ctl);
    out.push(("api_writes_per_lb_with_events", w / SERVICES as f64));
    out.push(("api_conflicts_cold_start", conflicts));
    let checked = Instant::now();
    while ctl.metric_sum("paperlb_updater_resyncs_total") < 1.0
        && checked.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    if let Some(rss) = ctl.rss_kib() {
        out.push(("rss_kib_1k", rss as f64));
    }
    if let Some(peak) = ctl.status_kib("VmHWM:") {
        out.push(("rss_peak_kib_1k", peak as f64));
    }

    // Idle: nothing changes for 10 s.
    let (w0, _) = writes(&ctl);
    let calls0 = c.updater.len();
    std::thread::sleep(Duration::from_secs(10));
    out.push(("api_writes_10s_idle", writes(&ctl).0 - w0));
    out.push(("updater_calls_10s_idle", (c.updater.len() - calls0) as f64));

    // NotReady flip with health checks on (stable node set): nothing to push.
    let (w0, _) = writes(&ctl);
    let from = c.updater.len();
    let events0 = ctl.metric_sum("paperlb_watch_events_total");
    let t0 = Instant::now();
    c.node_ready(10, false);
    wait_for("flip seen", Duration::from_millis(2), || {
        ctl.metric_sum("paperlb_watch_events_total") > events0
    });
    out.push(("node_notready_seen_ms", ms(t0.elapsed())));
    std::thread::sleep(Duration::from_secs(2));
    out.push((
        "updater_posts_per_notready_flip",
        (c.updater.len() - from) as f64,
    ));
    out.push(("api_writes_per_notready_flip", writes(&ctl).0 - w0));
    c.node_ready(10, true);
    std::thread::sleep(Duration::from_secs(1));

    // Node delete → all re-pushed without it; added back → all re-pushed with it.
    for n in [20, 60] {
        let ip = node_ip(n);
        let (w0, _) = writes(&ctl);
        let from = c.updater.len();
        let t0 = Instant::now();
        let _ = c
            .client
            .delete(&format!("/api/v1/nodes/{}", c.node_name(n)));
        let done = converge(&c.updater, from, |hosts| !hosts.contains(&ip));
        out.push(("node_delete_converge_ms_1k", ms(done - t0)));
        std::thread::sleep(Duration::from_millis(500));
        out.push((
            "api_writes_per_lb_node_delete",
            (writes(&ctl).0 - w0) / SERVICES as f64,
        ));
        let from = c.updater.len();
        let t0 = Instant::now();
        c.create_node(n, true);
        let done = converge(&c.updater, from, |hosts| hosts.contains(&ip));
        out.push(("node_add_converge_ms_1k", ms(done - t0)));
        std::thread::sleep(Duration::from_millis(500));
    }

    // Create → ingress, one at a time beside the 1,000.
    let mut to_ready = Vec::new();
    for i in 0..LATENCY_SEQUENTIAL {
        let name = format!("seq-{i:04}");
        let t0 = Instant::now();
        c.create_service(&name);
        wait_for("sequential create ready", Duration::from_millis(1), || {
            c.svc_ready(&name)
        });
        to_ready.push(ms(t0.elapsed()));
    }
    out.push(("svc_create_to_ready_ms_p50", percentile(&to_ready, 50.0)));
    out.push(("svc_create_to_ready_ms_max", percentile(&to_ready, 100.0)));
    if let Some(rss) = ctl.rss_kib() {
        out.push(("rss_kib_after_creates", rss as f64));
    }
    if let Some(peak) = ctl.status_kib("VmHWM:") {
        out.push(("rss_peak_kib_after_creates", peak as f64));
    }

    // Warm restart over the applied LoadBalancers.
    ctl.kill();
    let metrics = free_port();
    let calls0 = c.updater.len();
    let t0 = Instant::now();
    let ctl = c.controller(bin, metrics);
    wait_for("warm restart synced", Duration::from_millis(2), || {
        ctl.metrics()
            .is_some_and(|(rec, depth)| rec >= SERVICES as f64 && depth == 0.0)
    });
    out.push(("warm_restart_to_synced_ms", ms(t0.elapsed())));
    std::thread::sleep(Duration::from_secs(15).saturating_sub(t0.elapsed()));
    if let Some(rss) = ctl.rss_kib() {
        out.push(("rss_kib_warm_restart_15s", rss as f64));
    }
    if let Some(peak) = ctl.status_kib("VmHWM:") {
        out.push(("rss_peak_kib_warm_restart", peak as f64));
    }
    out.push(("api_writes_warm_restart", writes(&ctl).0));
    out.push((
        "updater_calls_warm_restart",
        (c.updater.len() - calls0) as f64,
    ));
    (out, ctl)
}

/// The figures of part `kube` as a table on stderr (its keys are not in `make bench`'s table).
pub fn print(r: &Results) {
    for key in &r.order {
        if let Some((v, runs)) = r.values.get(key) {
            let lo = runs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = runs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            eprintln!(
                "{key:<48} {:>10}  ({}..{}, {} runs)",
                fmt(*v),
                fmt(lo),
                fmt(hi),
                runs.len()
            );
        }
    }
}
