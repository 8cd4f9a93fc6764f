//! `make demo`: paperlb end to end on one machine, loopback only.
//!
//! In this process: the test suite's fake Kubernetes API server with two ready nodes (node-a at
//! 127.0.0.2, node-b at 127.0.0.3) and, once the Service has its nodePort, one tiny HTTP server per
//! "node" on that nodePort, and kube-proxy's `/healthz` on port 10256 of each (what the default
//! health check probes). As child processes: a private nginx with the stream module (its own
//! prefix in a temp dir, `daemon off`), `paperlb nginx-updater` in front of it and `paperlb
//! controller`. Then it applies `demo/loadbalancerconfig.yaml` and `demo/service.yaml`, waits for the
//! LoadBalancer to be READY, prints it kubectl-style, sends real HTTP requests through nginx and
//! runs `paperlb explain` on the Service, which must say served.
//!
//! Every wait is bounded. Children are stopped and the temp dir removed on success, on failure and
//! on Ctrl-C / SIGTERM. Exits 0 only if traffic through the load balancer reached both nodes.
//!
//! `demo --hold` keeps everything up after the check (at most 10 minutes) and prints the kubeconfig
//! and the `curl` and `paperlb explain` commands to try; Ctrl-C stops it.
//!
//! The paperlb binary is found next to this example (`target/<profile>/paperlb`), or in
//! `PAPERLB_BIN`. `PAPERLB_DEMO_LOG=info` (or debug) sets RUST_LOG for the children; their output
//! goes to log files in the temp dir, printed when something fails.

#![forbid(unsafe_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use paperlb::http::{Limits, Request, Response, Server};
use serde_json::{Value, json};
use support::backends::kube_proxy_healthz;
use support::fake_api::{FakeApi, FakeOptions};
use support::procs::{free_port, http_get, paperlb_bin, signal};

use support::nginx::{NGINX, STREAM_MODULE};
const NAMESPACE: &str = "paperlb-system";
const LB_HOST: &str = "127.0.0.1";
const NODES: [(&str, &str); 2] = [("node-a", "127.0.0.2"), ("node-b", "127.0.0.3")];
const REQUESTS: usize = 6;
const HOLD_LIMIT: Duration = Duration::from_secs(600);

const CONFIG_YAML: &str = include_str!("../demo/loadbalancerconfig.yaml");
const SERVICE_YAML: &str = include_str!("../demo/service.yaml");

/// Everything that must not outlive the demo: child processes (started in this order) and the
/// temp dir. Shared with the signal thread; once `stopping`, nothing new is started.
struct Cleanup {
    children: Vec<(&'static str, Child)>,
    dir: Option<PathBuf>,
    stopping: bool,
}

static CLEANUP: Mutex<Cleanup> = Mutex::new(Cleanup {
    children: Vec::new(),
    dir: None,
    stopping: false,
});

fn cleanup_state() -> std::sync::MutexGuard<'static, Cleanup> {
    CLEANUP.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a child and registers it for cleanup; refuses once the demo is stopping.
fn spawn(name: &'static str, cmd: &mut Command) -> Result<u32, String> {
    let mut st = cleanup_state();
    if st.stopping {
        return Err("stopping".into());
    }
    let child = cmd.spawn().map_err(|e| format!("starting {name}: {e}"))?;
    let pid = child.id();
    st.children.push((name, child));
    Ok(pid)
}

/// Whether a registered child has exited (and with what).
fn exited(name: &str) -> Option<String> {
    let mut st = cleanup_state();
    let (_, c) = st.children.iter_mut().find(|(n, _)| *n == name)?;
    match c.try_wait() {
        Ok(Some(status)) => Some(status.to_string()),
        _ => None,
    }
}

/// Stops every child, newest first (SIGTERM, bounded wait, then SIGKILL; nginx workers too), and
/// removes the temp dir. Safe to call more than once and from any thread.
fn cleanup() {
    let mut st = cleanup_state();
    st.stopping = true;
    while let Some((_, mut child)) = st.children.pop() {
        let pid = child.id();
        let workers = support_children(pid);
        signal("-TERM", pid);
        let end = Instant::now() + Duration::from_secs(10);
        let mut done = false;
        while Instant::now() < end {
            if matches!(child.try_wait(), Ok(Some(_))) {
                done = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !done {
            let _ = child.kill();
            let _ = child.wait();
        }
        for w in workers.into_iter().chain(support_children(pid)) {
            signal("-KILL", w);
        }
    }
    // A child that died mid-way (Ctrl-C reaches the whole process group) can leave its own child
    // behind, e.g. the updater's `nginx -t`, reparented to init: kill what still runs and wait,
    // bounded, until init has reaped it, so `pgrep nginx` is empty when we return.
    wait_for(Duration::from_secs(3), || {
        let left = orphans();
        for &(pid, zombie) in &left {
            if !zombie {
                signal("-KILL", pid);
            }
        }
        left.is_empty().then_some(())
    });
    if let Some(dir) = st.dir.take() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// (pid, state, ppid, pgrp, command name) from /proc/<pid>/stat.
fn proc_stat(pid: &str) -> Option<(char, u32, u32, String)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let comm = s.get(open + 1..close)?.to_string();
    let mut it = s[close + 1..].split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    let pgrp = it.next()?.parse().ok()?;
    Some((state, ppid, pgrp, comm))
}

/// nginx or paperlb processes of our process group that were reparented to init: (pid, zombie).
fn orphans() -> Vec<(u32, bool)> {
    let Some((_, _, our_pgrp, _)) = proc_stat("self") else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let name = e.ok()?.file_name();
        let pid: u32 = name.to_str()?.parse().ok()?;
        let (state, ppid, pgrp, comm) = proc_stat(name.to_str()?)?;
        (ppid == 1 && pgrp == our_pgrp && (comm == "nginx" || comm == "paperlb"))
            .then_some((pid, state == 'Z'))
    })
    .collect()
}

/// Live children of a process (nginx's workers when it is the master), from /proc.
fn support_children(parent: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(i) = s.rfind(')') else { return false };
            let mut it = s[i + 1..].split_whitespace();
            let state = it.next().unwrap_or("Z");
            let ppid: u32 = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            ppid == parent && state != "Z"
        })
        .collect()
}

/// Stops everything also when the body unwinds from a panic.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        cleanup();
    }
}

/// Ctrl-C (the children in our process group get SIGINT too), SIGTERM, SIGHUP: clean up, exit 130.
fn install_signal_handler() -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| format!("signal handler: {e}"))?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("\n==> interrupted (signal {sig}); stopping everything");
            cleanup();
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Polls `cond` every 50 ms until it returns `Some` or `limit` passes.
fn wait_for<T>(limit: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_file(dir: &Path, name: &str) -> Result<(Stdio, Stdio), String> {
    let f = std::fs::File::create(dir.join(format!("{name}.log")))
        .map_err(|e| format!("creating {name}.log: {e}"))?;
    let g = f
        .try_clone()
        .map_err(|e| format!("creating {name}.log: {e}"))?;
    Ok((Stdio::from(f), Stdio::from(g)))
}

fn child_log_level() -> String {
    std::env::var("PAPERLB_DEMO_LOG").unwrap_or_else(|_| "info".into())
}

/// The "cluster": fake API server, two ready nodes, a kubeconfig.
fn start_cluster(dir: &Path) -> Result<(FakeApi, PathBuf), String> {
    let api = FakeApi::try_start(FakeOptions {
        namespaces: vec![NAMESPACE.into()],
        ..FakeOptions::default()
    })
    .map_err(|e| format!("starting the fake API server: {e}"))?;
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)
        .map_err(|e| format!("writing the kubeconfig: {e}"))?;
    for (name, ip) in NODES {
        let obj = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        api.create("nodes", obj)
            .map_err(|e| format!("creating node {name}: {e}"))?;
        let mut node = api
            .get("nodes", "", name)
            .map_err(|e| format!("reading node {name}: {e}"))?;
        node["status"] = json!({
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": "True"}],
        });
        api.update_status("nodes", node)
            .map_err(|e| format!("node {name} status: {e}"))?;
    }
    Ok((api, kubeconfig))
}

/// A private nginx: own config, pid file and error log under `dir`, in the foreground.
fn start_nginx(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    if !Path::new(NGINX).is_file() || !Path::new(STREAM_MODULE).is_file() {
        return Err(format!(
            "{NGINX} or {STREAM_MODULE} missing: run ./scripts/install-deps (make demo does)"
        ));
    }
    let streams = dir.join("streams");
    std::fs::create_dir_all(&streams)
        .map_err(|e| format!("creating {}: {e}", streams.display()))?;
    let conf = dir.join("nginx.conf");
    let pid_file = dir.join("nginx.pid");
    let error_log = dir.join("nginx-error.log");
    std::fs::write(
        &conf,
        support::nginx::config_text(&pid_file, &error_log, &streams),
    )
    .map_err(|e| format!("writing nginx.conf: {e}"))?;
    let (out, err) = log_file(dir, "nginx")?;
    let pid = spawn(
        "nginx",
        Command::new(NGINX)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err),
    )?;
    let up = wait_for(Duration::from_secs(20), || {
        if exited("nginx").is_some() {
            return Some(false);
        }
        let master: u32 = std::fs::read_to_string(&pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (master == pid && !support_children(pid).is_empty()).then_some(true)
    });
    if up != Some(true) {
        return Err("nginx did not start (see nginx.log, nginx-error.log)".into());
    }
    Ok((conf, streams))
}

/// `paperlb nginx-updater` on a free loopback port; returns its URL once /healthz answers.
fn start_updater(bin: &Path, dir: &Path, conf: &Path, streams: &Path) -> Result<String, String> {
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let (out, err) = log_file(dir, "nginx-updater")?;
    spawn(
        "nginx-updater",
        Command::new(bin)
            .arg("nginx-updater")
            .args(["--listen", &listen, "--streams-dir"])
            .arg(streams)
            .arg("--nginx-conf")
            .arg(conf)
            .args(["--nginx-bin", NGINX, "--allowed-ports", "8100-8199"])
            .env("RUST_LOG", child_log_level())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err),
    )?;
    let addr: SocketAddr = listen.parse().map_err(|e| format!("{listen}: {e}"))?;
    let ok = wait_for(Duration::from_secs(20), || {
        if exited("nginx-updater").is_some() {
            return Some(false);
        }
        let (code, _) = http_get(
            addr,
            "/healthz",
            "paperlb-demo",
            64 * 1024,
            Duration::from_secs(3),
        )
        .ok()?;
        (code == 200).then_some(true)
    });
    if ok != Some(true) {
        return Err("nginx-updater did not become healthy (see nginx-updater.log)".into());
    }
    Ok(format!("http://{listen}"))
}

fn start_controller(bin: &Path, dir: &Path, kubeconfig: &Path) -> Result<(), String> {
    let (out, err) = log_file(dir, "controller")?;
    spawn(
        "controller",
        Command::new(bin)
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", NAMESPACE, "--metrics-addr", "off"])
            .env("RUST_LOG", child_log_level())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err),
    )?;
    Ok(())
}

/// `kubectl apply -f` for the demo's kinds.
fn apply(
    api: &FakeApi,
    file: &str,
    text: &str,
    edit: impl FnOnce(&mut Value),
) -> Result<(), String> {
    let mut obj = paperlb::kube::yaml::parse(text).map_err(|e| format!("{file}: {e}"))?;
    edit(&mut obj);
    let resource = match obj["kind"].as_str() {
        Some("Service") => "services",
        Some("LoadBalancerConfig") => "loadbalancerconfigs",
        other => return Err(format!("{file}: unexpected kind {other:?}")),
    };
    let name = obj["metadata"]["name"].as_str().unwrap_or("?").to_string();
    api.apply(resource, obj)
        .map_err(|e| format!("applying {file}: {e}"))?;
    println!(
        "$ kubectl apply -f {file}\n{}/{name} created",
        resource.trim_end_matches('s')
    );
    Ok(())
}

/// Each "node": an HTTP server on its nodePort (what kube-proxy would forward to a pod) and
/// kube-proxy's `/healthz` on port 10256, which the default health check probes. Stop on drop.
fn start_nodes(node_port: u16) -> Result<Vec<Server>, String> {
    let mut servers = Vec::new();
    for (name, ip) in NODES {
        let body = format!("hello from {name}\n");
        let app = Server::bind(
            (ip, node_port),
            Limits::default(),
            None,
            move |_: &Request| Response::text(200, body.clone()),
        )
        .map_err(|e| format!("listening on {ip}:{node_port} for {name}: {e}"))?;
        servers.push(app);
        // Taken (another demo, a real kube-proxy): the check probes whatever answers there.
        match kube_proxy_healthz(ip) {
            Ok(s) => servers.push(s),
            Err(e) => println!("    note: kube-proxy's {ip}:10256/healthz for {name}: {e}"),
        }
    }
    Ok(servers)
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<none>".into(),
        other => other.to_string(),
    }
}

fn show(api: &FakeApi) {
    println!("\n$ kubectl get loadbalancers -n default");
    let mut rows = vec![
        ["NAME", "HOST", "PORT", "PROTOCOL", "TARGETCOUNT", "STATUS"]
            .map(String::from)
            .to_vec(),
    ];
    for lb in api.list("loadbalancers", "default") {
        let port = if lb["spec"]["port"].is_null() {
            &lb["spec"]["ports"][0]["port"]
        } else {
            &lb["spec"]["port"]
        };
        let proto = if lb["spec"]["protocol"].is_null() {
            &lb["spec"]["ports"][0]["protocol"]
        } else {
            &lb["spec"]["protocol"]
        };
        rows.push(vec![
            text(&lb["metadata"]["name"]),
            text(&lb["spec"]["host"]),
            text(port),
            text(proto),
            text(&lb["status"]["targetCount"]),
            text(&lb["status"]["phase"]),
        ]);
    }
    print_table(&rows);

    println!("\n$ kubectl get service nginx -n default");
    let mut rows = vec![
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
            .map(String::from)
            .to_vec(),
    ];
    if let Ok(svc) = api.get("services", "default", "nginx") {
        let external: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let ports: Vec<String> = svc["spec"]["ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| match p["nodePort"].as_u64() {
                        Some(np) => format!("{}:{np}/{}", p["port"], text(&p["protocol"])),
                        None => format!("{}/{}", p["port"], text(&p["protocol"])),
                    })
                    .collect()
            })
            .unwrap_or_default();
        rows.push(vec![
            text(&svc["metadata"]["name"]),
            text(&svc["spec"]["type"]),
            text(&svc["spec"]["clusterIP"]),
            if external.is_empty() {
                "<pending>".into()
            } else {
                external.join(",")
            },
            ports.join(","),
        ]);
    }
    print_table(&rows);
}

fn step(msg: &str) {
    println!("==> {msg}");
}

fn run(hold: bool) -> Result<(), String> {
    let started = Instant::now();
    let bin = paperlb_bin("demo")?;
    let dir = std::env::temp_dir().join(format!("paperlb-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // nginx runs as root here and drops its workers to `nobody`.
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    cleanup_state().dir = Some(dir.clone());

    let result = demo(&bin, &dir, hold);
    if let Err(e) = &result {
        eprintln!("\ndemo failed: {e}");
        for name in ["controller", "nginx-updater", "nginx", "nginx-error"] {
            let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            if !lines.is_empty() {
                eprintln!("--- last lines of {name}.log ---");
                for l in &lines[lines.len().saturating_sub(15)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
    step("cleaning up: stopping controller, nginx-updater and nginx; removing the temp dir");
    cleanup();
    println!("==> done in {:.1}s", started.elapsed().as_secs_f64());
    result
}

fn demo(bin: &Path, dir: &Path, hold: bool) -> Result<(), String> {
    let (api, kubeconfig) = start_cluster(dir)?;
    step(&format!(
        "fake Kubernetes API server at {} with nodes node-a (127.0.0.2) and node-b (127.0.0.3), Ready",
        api.url()
    ));
    let (conf, streams) = start_nginx(dir)?;
    step(&format!(
        "nginx (stream module) running from {}",
        dir.display()
    ));
    let updater = start_updater(bin, dir, &conf, &streams)?;
    step(&format!("paperlb nginx-updater listening on {updater}"));
    start_controller(bin, dir, &kubeconfig)?;
    step("paperlb controller started (namespace paperlb-system)");
    println!();

    apply(&api, "demo/loadbalancerconfig.yaml", CONFIG_YAML, |o| {
        o["spec"]["httpUpdaterURL"] = json!(updater);
    })?;
    apply(&api, "demo/service.yaml", SERVICE_YAML, |_| {})?;
    println!();

    let node_port = api
        .get("services", "default", "nginx")
        .ok()
        .and_then(|s| s["spec"]["ports"][0]["nodePort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or("the Service got no nodePort")?;
    let _nodes = start_nodes(node_port)?;
    step(&format!(
        "\"pods\" answering on the nodePort: 127.0.0.2:{node_port} (node-a), 127.0.0.3:{node_port} (node-b); kube-proxy's /healthz on port 10256 of each"
    ));

    step("waiting for LoadBalancer default/nginx to be READY (up to 60s)");
    let t = Instant::now();
    let lb_port = wait_for(Duration::from_secs(60), || {
        if let Some(st) = exited("controller") {
            return Some(Err(format!("the controller exited ({st})")));
        }
        let lb = api.get("loadbalancers", "default", "nginx").ok()?;
        let svc = api.get("services", "default", "nginx").ok()?;
        let ready = lb["status"]["phase"] == "READY"
            && lb["status"]["observedGeneration"] == lb["metadata"]["generation"]
            && svc["status"]["loadBalancer"]["ingress"][0]["ip"] == LB_HOST;
        let port = lb["spec"]["ports"][0]["port"]
            .as_u64()
            .or(lb["spec"]["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        ready.then_some(port.ok_or_else(|| "the LoadBalancer has no port".to_string()))
    })
    .ok_or_else(|| {
        show(&api);
        "LoadBalancer default/nginx not READY within 60s".to_string()
    })??;
    step(&format!("READY after {:.1}s", t.elapsed().as_secs_f64()));
    show(&api);

    let addr: SocketAddr = (std::net::Ipv4Addr::LOCALHOST, lb_port).into();
    println!();
    step(&format!(
        "{REQUESTS} requests through the load balancer: curl http://{LB_HOST}:{lb_port}/"
    ));
    // The updater confirmed the reload before answering, but give nginx a moment if it is slow.
    wait_for(Duration::from_secs(10), || {
        http_get(addr, "/", "paperlb-demo", 64 * 1024, Duration::from_secs(3)).ok()
    })
    .ok_or_else(|| format!("nothing answers on {addr}"))?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=REQUESTS {
        match http_get(addr, "/", "paperlb-demo", 64 * 1024, Duration::from_secs(3)) {
            Ok((code, body)) => {
                let body = body.trim().to_string();
                println!("  [{i}] {code} {body}");
                if code == 200 {
                    *seen.entry(body).or_default() += 1;
                }
            }
            Err(e) => println!("  [{i}] error: {e}"),
        }
    }
    let both = NODES
        .iter()
        .all(|(n, _)| seen.contains_key(&format!("hello from {n}")));
    let summary: Vec<String> = seen.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    if !both {
        return Err(format!(
            "traffic did not reach both nodes ({})",
            summary.join(", ")
        ));
    }
    step(&format!(
        "traffic reached both nodes ({}) - it works",
        summary.join(", ")
    ));
    explain(bin, &kubeconfig)?;
    if hold {
        println!();
        step(&format!(
            "holding for up to {} min (Ctrl-C stops); kubeconfig: {}. Try:",
            HOLD_LIMIT.as_secs() / 60,
            kubeconfig.display()
        ));
        println!("  curl http://{LB_HOST}:{lb_port}/");
        println!(
            "  {} explain default/nginx --kubeconfig {}",
            bin.display(),
            kubeconfig.display()
        );
        wait_for(HOLD_LIMIT, || {
            ["controller", "nginx-updater", "nginx"]
                .into_iter()
                .find_map(exited)
        });
    }
    drop(api);
    Ok(())
}

/// `paperlb explain default/nginx`, once the updater's health checks have found both nodes healthy
/// (they probe kube-proxy's /healthz every 2 s): it must say served, every step ✓.
fn explain(bin: &Path, kubeconfig: &Path) -> Result<(), String> {
    println!();
    step("paperlb explain default/nginx (once the health checks have run)");
    let run = || {
        Command::new(bin)
            .args(["explain", "default/nginx", "--kubeconfig"])
            .arg(kubeconfig)
            .output()
            .map_err(|e| format!("running paperlb explain: {e}"))
    };
    let mut last = None;
    wait_for(Duration::from_secs(30), || {
        let out = run().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let done = out.status.success() && text.contains("✓ upstreams");
        last = Some((out.status, text));
        done.then_some(())
    });
    let (status, text) = last.ok_or("paperlb explain did not run")?;
    print!("{text}");
    if !status.success() || !text.contains("✓ upstreams") {
        return Err(format!("paperlb explain: {status}, not every step passed"));
    }
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = install_signal_handler() {
        eprintln!("demo: {e}");
        return ExitCode::FAILURE;
    }
    let mut hold = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--hold" => hold = true,
            "-h" | "--help" => {
                println!("usage: demo [--hold]   (see `make demo`)");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("demo: unknown argument {other:?} (usage: demo [--hold])");
                return ExitCode::from(2);
            }
        }
    }
    let _guard = Guard;
    match run(hold) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
