//! `make chaos`: seeded, bounded chaos runs of paperlb end to end, loopback only.
//!
//! Per seed: the test suite's fake API server (in this process); two LB hosts, each a private nginx
//! with the stream module and the real `paperlb nginx-updater` in front of it (on its own
//! `--lb-address`); two LoadBalancerConfigs, `edge` (the default) listing both hosts (`spec.hosts`)
//! and `spare` on the second in the Go form; and the real `paperlb controller` (child processes). For `--duration` seconds it changes Services (create, delete, port number
//! changes, ports added and removed, type flips, moves between the configs, `externalTrafficPolicy:
//! Local` with changing EndpointSlices, their LoadBalancer deleted by hand), Nodes (Ready flips,
//! address changes, the exclude label, add and remove) and the configs (timeouts, address types,
//! range, deleted and created again), and meanwhile kills -9 / SIGTERMs and restarts the
//! controller, resets the API connections, drops, ends and stalls watch streams, compacts (410),
//! injects 409/429/500/stalls/lost answers/late commits into API writes, wipes an LB host's whole
//! config (streams.d emptied, nginx reloaded: only drift repair brings it back) and pauses (SIGSTOP) or
//! restarts an updater. Every choice comes from the seed (what happens when still depends on the
//! machine's timing).
//!
//! Then the chaos stops and the run waits (bounded) until the invariants hold, computed here from
//! the fake's objects and never from the controller's code:
//! - every LoadBalancer Service has its LoadBalancer READY for its generation, with the right ports,
//!   protocols, nodePorts and targets (eligible nodes at their preferred address; for Local, only
//!   those with a ready endpoint), and its ingress;
//! - no LoadBalancer is left without a Service;
//! - every host serves: each updater's `GET /api/v1/lb` equals the backends desired there (every
//!   port of its configs' Services; no leftovers, none missing), and nginx listens on every TCP/UDP
//!   port it should; an `edge` Service's ingress lists both hosts;
//! - no (host, port, protocol) is ever held by two LoadBalancers, nor by two backends;
//! - no port of a surviving Service port ever changed while it stayed on its config (sampled
//!   every 20 ms during the whole run);
//! - API writes stay under a budget the run accumulates from its changes (see `mod budget`), and a
//!   steady state after convergence writes nothing and calls the updater for nothing;
//! - the run ends with at least `MIN_SERVICES` LoadBalancer Services, `MIN_PER_CONFIG` on each
//!   config (it starts with `MIN_SERVICES`, and one-port Services top it up after the chaos);
//! - real traffic: for a sample of each config's TCP ports, servers that answer with their own
//!   address listen on every target (node address, nodePort), and connections to the LB port on
//!   each host of the config are answered by them through nginx.
//!
//! On failure it prints the seed and each failed invariant with details, the tails of the
//! children's logs, and exits 1. Every wait is bounded; every child is stopped on exit.
//!
//! Usage: `chaos [--duration SECS] [--latency PROFILE] [--keep] SEED...` (see `make chaos`).
//! `--latency` gives the fake API server a latency profile (`etcd`: 5 ms reads, 15 ms writes, both
//! ± 50 %, 16 writes in flight; or `read=MS,write=MS,jitter=PCT,writes=N`; default `off`).
//! `PAPERLB_CHAOS_LOG` sets RUST_LOG for the children (default info; their logs are in the run's
//! temp dir).

#![forbid(unsafe_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::backends::{Backend as IdentServer, tcp_ident_at};
use support::fake_api::{FakeApi, FakeOptions, Fault, FaultKind, Latency};
use support::nginx::{NGINX, Nginx, STREAM_MODULE};
use support::procs::{free_port, http_get, paperlb_bin, signal};

const NS: &str = "paperlb-system";
/// The fake API server's latency profile for every seed of this run (`--latency`).
static LATENCY: std::sync::OnceLock<Latency> = std::sync::OnceLock::new();
/// The default config (updater A, host 127.0.0.1) and a second LB host (updater B, 127.0.0.9):
/// naming it moves a Service there (new ports from its range, then the old backends go).
const CONFIG: &str = "edge";
const SPARE: &str = "spare";
const CONFIGS: [&str; 2] = [CONFIG, SPARE];
const HOSTS: [&str; 2] = ["127.0.0.1", "127.0.0.9"];
/// Where each config's range starts in the window. Both nginx run on this machine and bind every
/// address, so the two hosts' ranges must not overlap (two real LB hosts would not share sockets).
const RANGE_OFFSETS: [u16; 2] = [0, 150];
/// A config's range is `offset .. offset + one of these`; the top of the window is the probe's.
const RANGE_SPANS: [u16; 2] = [119, 148];
const CLASS: &str = "lb.paperlb.com/paperlb-class";
const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// LB ports the updaters allow; every config's range is inside it.
const WINDOW: u16 = 300;
/// Live Service ports are kept at or below this (the end's top-up may add a few), so lowest-free
/// allocation never leaves `offset..offset + 120` (the smallest range the chaos sets) even with as
/// many LoadBalancers still being deleted: a range change can never force a port to move.
const MAX_LIVE_PORTS: usize = 50;
/// LoadBalancer Services before the chaos, and the fewest a run ends with (the top-up creates
/// one-port Services after the chaos until there are this many, and `MIN_PER_CONFIG` on each
/// config), so the final invariants and the traffic check cover a real population.
const MIN_SERVICES: usize = 20;
const MIN_PER_CONFIG: usize = 3;
/// Service ports per config the final check sends real traffic to, through each of its hosts.
const TRAFFIC_SAMPLE: usize = 4;
const MAX_NODES: usize = 7;
const CONVERGE_LIMIT: Duration = Duration::from_secs(90);
const STEADY: Duration = Duration::from_secs(5);
const DEFAULT_DURATION: Duration = Duration::from_secs(20);
/// The controller's `--updater-resync` in these runs.
const RESYNC: &str = "2s";
/// The controller's `--host-failure-grace`: short, so an updater outage of the chaos (up to 3 s)
/// can outlast it and drop a host from the `edge` ingress.
const GRACE: &str = "2s";

// ---------------------------------------------------------------------------------------------
// Ctrl-C / SIGTERM: stop at the next step and clean up (children, temp dirs) on the way out

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn interrupted() -> Result<(), String> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

fn install_signal_handler() -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| format!("signal handler: {e}"))?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("\n==> chaos: signal {sig}; stopping and cleaning up");
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
    });
    Ok(())
}

/// Sleeps in short slices so an interruption is seen at once.
fn nap(d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        interrupted()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    interrupted()
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness (splitmix64: small, good enough, same sequence everywhere)

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            v.get(self.below(v.len()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A child process with its log file; killed (and its own children reaped) on drop.
struct Proc {
    child: Option<Child>,
    paused: bool,
}

/// Live children of a process, from /proc (the updater's `nginx -t` or `nginx -s reload`).
fn children_of(parent: u32) -> Vec<u32> {
    support::nginx::children(parent).into_iter().collect()
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Result<Proc, String> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        let g = f.try_clone().map_err(|e| format!("{name} log: {e}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(g))
            .spawn()
            .map_err(|e| format!("starting {name}: {e}"))?;
        Ok(Proc {
            child: Some(child),
            paused: false,
        })
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` if it exited without being asked to.
    fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(st)) => {
                self.child = None;
                Some(st.to_string())
            }
            _ => None,
        }
    }

    fn running(&self) -> bool {
        self.child.is_some()
    }

    fn pause(&mut self) {
        if let Some(pid) = self.pid() {
            signal("-STOP", pid);
            self.paused = true;
        }
    }

    fn resume(&mut self) {
        if let Some(pid) = self.pid()
            && self.paused
        {
            signal("-CONT", pid);
        }
        self.paused = false;
    }

    /// SIGKILL: no chance to clean up. Its own children are left to finish, then reaped.
    fn kill9(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let kids = children_of(c.id());
        let _ = c.kill();
        let _ = c.wait();
        self.paused = false;
        wait_gone(&kids);
    }

    /// SIGTERM (after SIGCONT if paused), bounded wait, then SIGKILL.
    fn terminate(&mut self) {
        self.resume();
        let Some(mut c) = self.child.take() else {
            return;
        };
        let kids = children_of(c.id());
        signal("-TERM", c.id());
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if matches!(c.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        wait_gone(&kids);
    }
}

/// Waits (bounded) for processes to go away, then kills what is left (an orphaned `nginx -t`).
fn wait_gone(pids: &[u32]) {
    let alive = |p: &u32| {
        std::fs::read_to_string(format!("/proc/{p}/stat"))
            .ok()
            .and_then(|s| {
                let i = s.rfind(')')?;
                s[i + 1..].split_whitespace().next().map(|st| st != "Z")
            })
            .unwrap_or(false)
    };
    let end = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(alive) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids.iter().filter(|p| alive(p)) {
        signal("-KILL", *p);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
            self.kill9();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small I/O helpers

/// A bounded HTTP/1.1 request with a JSON body on loopback (the checker's probe); the status.
fn http_send(addr: SocketAddr, method: &str, path: &str, body: &Value) -> Result<u16, String> {
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: chaos talks to loopback only"));
    }
    let body = body.to_string();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut resp)
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&resp)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| "no HTTP status".to_string())
}

/// `WINDOW` consecutive ports, free for TCP and UDP on every address (nginx's `listen PORT;` binds
/// them all), below the ephemeral range; the start depends on the seed and our pid. The window's
/// claim is held for the run: a listener on its marker port (19900 + its index, outside every
/// window). A window is free when its ports are; another chaos run on this box, whose nginx has not
/// bound them yet, holds the marker (two runs in one window break each other's nginx: `bind()
/// ... Address already in use`).
fn port_window(seed: u64) -> Result<(u16, TcpListener), String> {
    let mut r = Rng(seed ^ u64::from(std::process::id()).rotate_left(17));
    for _ in 0..60 {
        let i = r.below(30) as u16;
        let Ok(claim) = TcpListener::bind(("127.0.0.1", 19_900 + i)) else {
            continue;
        };
        let low = 20_000 + i * WINDOW;
        let all_free = (low..low + WINDOW).all(|p| {
            TcpListener::bind(("0.0.0.0", p)).is_ok() && UdpSocket::bind(("0.0.0.0", p)).is_ok()
        });
        if all_free {
            return Ok((low, claim));
        }
    }
    Err("no window of free ports found in 20000-28999".into())
}

/// Ports something listens on (TCP LISTEN) or is bound to (UDP), from /proc/net.
fn bound_ports() -> (BTreeSet<u16>, BTreeSet<u16>) {
    let read = |files: &[&str], state: Option<&str>| -> BTreeSet<u16> {
        let mut out = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(st)) = (cols.get(1), cols.get(3)) else {
                    continue;
                };
                if state.is_some_and(|s| s != *st) {
                    continue;
                }
                if let Some(p) = local
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
                {
                    out.insert(p);
                }
            }
        }
        out
    };
    (
        read(&["/proc/net/tcp", "/proc/net/tcp6"], Some("0A")),
        read(&["/proc/net/udp", "/proc/net/udp6"], None),
    )
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// The desired state, computed independently from the fake's objects

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Backend {
    port: u16,
    protocol: String,
    upstreams: BTreeSet<(String, u16)>,
    proxy_timeout: u64,
    proxy_connect_timeout: u64,
}

struct ConfigView {
    /// The first host's address and updater URL (the LoadBalancer's Go fields).
    host: String,
    low: u16,
    high: u16,
    url: String,
    /// Every (address, updater URL): `spec.hosts`, or the Go form's one.
    hosts: Vec<(String, String)>,
    address_types: Vec<String>,
    proxy_timeout: u64,
    proxy_connect_timeout: u64,
}

fn config_view(api: &FakeApi, name: &str) -> Result<ConfigView, String> {
    let c = api
        .get("loadbalancerconfigs", NS, name)
        .map_err(|e| format!("config {NS}/{name}: {e}"))?;
    let spec = &c["spec"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut address_types: Vec<String> = spec["targetAddressTypes"]
        .as_array()
        .map(|a| a.iter().map(|t| s(t).to_string()).collect())
        .unwrap_or_default();
    if address_types.is_empty() {
        // The controller's documented default (--address-type).
        address_types = vec!["ExternalIP".into(), "InternalIP".into()];
    }
    let hosts: Vec<(String, String)> = match spec["hosts"].as_array() {
        Some(hs) => hs
            .iter()
            .map(|h| {
                (
                    s(&h["host"]).to_string(),
                    s(&h["httpUpdaterURL"]).to_string(),
                )
            })
            .collect(),
        None => vec![(
            s(&spec["host"]).to_string(),
            s(&spec["httpUpdaterURL"]).to_string(),
        )],
    };
    let (host, url) = hosts.first().cloned().unwrap_or_default();
    Ok(ConfigView {
        host,
        low: n(&spec["portRange"]["low"]) as u16,
        high: n(&spec["portRange"]["high"]) as u16,
        url,
        hosts,
        address_types,
        proxy_timeout: n(&spec["proxyTimeoutSeconds"]),
        proxy_connect_timeout: n(&spec["proxyConnectTimeoutSeconds"]),
    })
}

/// A config's status says what its current spec deserves: `Accepted` written for this generation
/// (otherwise the write is still owed, and would land in the steady window).
fn config_status_current(api: &FakeApi, name: &str) -> Result<(), String> {
    let c = api
        .get("loadbalancerconfigs", NS, name)
        .map_err(|e| format!("config {NS}/{name}: {e}"))?;
    let generation = &c["metadata"]["generation"];
    let accepted = c["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted"));
    match accepted {
        Some(a)
            if &a["observedGeneration"] == generation
                && &c["status"]["observedGeneration"] == generation =>
        {
            Ok(())
        }
        _ => Err(format!(
            "config-status: LoadBalancerConfig {NS}/{name} generation {generation} has status {}",
            c["status"]
        )),
    }
}

/// Addresses of the eligible nodes.
fn eligible_addresses(api: &FakeApi, types: &[String]) -> BTreeSet<String> {
    eligible_by_node(api, types).into_values().collect()
}

/// Node names hosting a ready endpoint (`ready` absent counts as ready, as the API says) in the
/// EndpointSlices labelled with this Service.
fn ready_endpoint_nodes(slices: &[Value], ns: &str, svc: &str) -> BTreeSet<String> {
    slices
        .iter()
        .filter(|sl| {
            s(&sl["metadata"]["namespace"]) == ns
                && s(&sl["metadata"]["labels"]["kubernetes.io/service-name"]) == svc
        })
        .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] != false)
        .map(|e| s(&e["nodeName"]).to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// DESIGN's target rule under the stable node set (KEP-3458; every updater here runs the configs'
/// health check): not deleting, not excluded by label (unless it parses as false); NotReady and
/// autoscaler-tainted nodes stay. The first address of the first preferred type.
/// Node name -> address.
fn eligible_by_node(api: &FakeApi, types: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for n in api.list("nodes", "") {
        let excluded = n["metadata"]["labels"]
            .get(EXCLUDE_LABEL)
            .is_some_and(|v| !matches!(s(v), "0" | "f" | "F" | "false" | "FALSE" | "False"));
        let deleting = !n["metadata"]["deletionTimestamp"].is_null();
        if excluded || deleting {
            continue;
        }
        let addrs = n["status"]["addresses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let addr = types.iter().find_map(|t| {
            addrs
                .iter()
                .find(|a| s(&a["type"]) == t && !s(&a["address"]).is_empty())
                .map(|a| s(&a["address"]).to_string())
        });
        if let Some(a) = addr {
            out.insert(s(&n["metadata"]["name"]).to_string(), a);
        }
    }
    out
}

fn is_ours(svc: &Value) -> bool {
    svc["spec"]["type"] == "LoadBalancer"
        && (svc["spec"]["loadBalancerClass"].is_null() || svc["spec"]["loadBalancerClass"] == CLASS)
}

/// DESIGN's backend names: `<ns>_<name>`, further ports `<ns>_<name>_<port name or index>`.
fn backend_name(ns: &str, name: &str, index: usize, port_name: &str) -> String {
    match (index, port_name) {
        (0, _) => format!("{ns}_{name}"),
        (i, "") => format!("{ns}_{name}_{i}"),
        (_, p) => format!("{ns}_{name}_{p}"),
    }
}

fn lb_ports(lb: &Value) -> Vec<(String, u16, String)> {
    lb["spec"]["ports"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        s(&p["name"]).to_string(),
                        p["port"].as_u64().unwrap_or(0) as u16,
                        s(&p["protocol"]).to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn upstreams_of(v: &Value) -> BTreeSet<(String, u16)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        s(&t["host"]).to_string(),
                        t["port"].as_u64().unwrap_or(0) as u16,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every invariant on the current state; `Err` lists each one that fails, with details.
fn check(api: &FakeApi, updaters: &[SocketAddr], window: (u16, u16)) -> Result<(), Vec<String>> {
    let mut bad: Vec<String> = Vec::new();
    let mut configs = BTreeMap::new();
    for name in CONFIGS {
        match config_view(api, name) {
            Ok(c) => configs.insert(name.to_string(), c),
            Err(e) => return Err(vec![e]),
        };
        if let Err(e) = config_status_current(api, name) {
            bad.push(e);
        }
    }
    let slices = api.list("endpointslices", "");
    let services: Vec<Value> = api
        .list("services", "")
        .into_iter()
        .filter(is_ours)
        .collect();
    let lbs: BTreeMap<(String, String), Value> = api
        .list("loadbalancers", "")
        .into_iter()
        .map(|l| {
            (
                (
                    s(&l["metadata"]["namespace"]).to_string(),
                    s(&l["metadata"]["name"]).to_string(),
                ),
                l,
            )
        })
        .collect();
    // Desired backends per updater URL.
    let mut desired_at: BTreeMap<String, BTreeMap<String, Backend>> = BTreeMap::new();
    let mut wanted_lbs = BTreeSet::new();
    for svc in &services {
        let ns = s(&svc["metadata"]["namespace"]).to_string();
        let name = s(&svc["metadata"]["name"]).to_string();
        let key = format!("{ns}/{name}");
        wanted_lbs.insert((ns.clone(), name.clone()));
        let cfg_name = svc["metadata"]["annotations"]["lb.paperlb.com/config-name"]
            .as_str()
            .unwrap_or(CONFIG);
        let Some(cfg) = configs.get(cfg_name) else {
            bad.push(format!(
                "chaos: Service {key} names config {cfg_name:?}, which chaos never makes"
            ));
            continue;
        };
        let hosts = eligible_addresses(api, &cfg.address_types);
        let by_name = eligible_by_node(api, &cfg.address_types);
        if s(&lb_of(&lbs, &ns, &name)["spec"]["configName"]) != cfg_name {
            bad.push(format!(
                "lb-ready: LoadBalancer {key} configName {}, want {cfg_name}",
                lb_of(&lbs, &ns, &name)["spec"]["configName"]
            ));
        }
        let mut desired: BTreeMap<String, Backend> = BTreeMap::new();
        let Some(lb) = lbs.get(&(ns.clone(), name.clone())) else {
            bad.push(format!("lb-ready: Service {key} has no LoadBalancer"));
            continue;
        };
        let owner_ok = lb["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|os| os.iter().any(|o| o["uid"] == svc["metadata"]["uid"]));
        if !owner_ok {
            bad.push(format!(
                "lb-ready: LoadBalancer {key} is not owned by Service uid {}",
                svc["metadata"]["uid"]
            ));
        }
        if !lb["metadata"]["deletionTimestamp"].is_null() {
            bad.push(format!("lb-ready: LoadBalancer {key} is being deleted"));
        }
        let st = &lb["status"];
        if st["phase"] != "READY" || st["observedGeneration"] != lb["metadata"]["generation"] {
            bad.push(format!(
                "lb-ready: LoadBalancer {key} phase {} observedGeneration {} generation {} (conditions {})",
                st["phase"], st["observedGeneration"], lb["metadata"]["generation"], st["conditions"]
            ));
        }
        if s(&lb["spec"]["host"]) != cfg.host {
            bad.push(format!(
                "lb-ready: LoadBalancer {key} host {} != {}",
                lb["spec"]["host"], cfg.host
            ));
        }
        if s(&lb["spec"]["httpUpdater"]["url"]) != cfg.url {
            bad.push(format!(
                "lb-ready: LoadBalancer {key} updater {}, the config's {}",
                lb["spec"]["httpUpdater"]["url"], cfg.url
            ));
        }
        let svc_ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
        let lb_spec_ports = lb["spec"]["ports"].as_array().cloned().unwrap_or_default();
        if svc_ports.len() != lb_spec_ports.len() {
            bad.push(format!(
                "lb-ready: LoadBalancer {key} has {} ports, the Service {}",
                lb_spec_ports.len(),
                svc_ports.len()
            ));
            continue;
        }
        // externalTrafficPolicy Local: only eligible nodes with a ready endpoint of this Service.
        let hosts: BTreeSet<String> = if svc["spec"]["externalTrafficPolicy"] == "Local" {
            let local = ready_endpoint_nodes(&slices, &ns, &name);
            by_name
                .iter()
                .filter(|(node, _)| local.contains(*node))
                .map(|(_, a)| a.clone())
                .collect()
        } else {
            hosts.clone()
        };
        let mut ingress_ports = Vec::new();
        for (i, (sp, lp)) in svc_ports.iter().zip(&lb_spec_ports).enumerate() {
            let pname = s(&sp["name"]).to_string();
            let proto = sp["protocol"].as_str().unwrap_or("TCP").to_string();
            let node_port = sp["nodePort"].as_u64().unwrap_or(0) as u16;
            let port = lp["port"].as_u64().unwrap_or(0) as u16;
            let want_targets: BTreeSet<(String, u16)> =
                hosts.iter().map(|h| (h.clone(), node_port)).collect();
            let got_targets = upstreams_of(port_targets(&lb["spec"], i));
            if s(&lp["name"]) != pname
                || s(&lp["protocol"]) != proto
                || lp["nodePort"].as_u64() != Some(u64::from(node_port))
            {
                bad.push(format!(
                    "lb-ready: LoadBalancer {key} port {i} is {lp}, the Service port {sp}"
                ));
            }
            if got_targets != want_targets {
                bad.push(format!(
                    "targets: LoadBalancer {key} port {pname:?} targets {got_targets:?}, want {want_targets:?}"
                ));
            }
            if !(cfg.low..=cfg.high).contains(&port) {
                bad.push(format!(
                    "lb-ready: LoadBalancer {key} port {port} outside {}-{}",
                    cfg.low, cfg.high
                ));
            }
            ingress_ports.push(json!({"port": port, "protocol": proto}));
            desired.insert(
                backend_name(&ns, &name, i, &pname),
                Backend {
                    port,
                    protocol: proto,
                    upstreams: want_targets,
                    proxy_timeout: cfg.proxy_timeout,
                    proxy_connect_timeout: cfg.proxy_connect_timeout,
                },
            );
        }
        // Every host serves every port: each updater holds the backends of its configs' Services.
        for (_, url) in &cfg.hosts {
            let url = url.trim_end_matches("/api/v1/lb").to_string();
            let at = desired_at.entry(url).or_default();
            for (n, b) in &desired {
                at.insert(n.clone(), b.clone());
            }
        }
        let mut ips: Vec<&String> = Vec::new();
        for (ip, _) in &cfg.hosts {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        let want_ingress: Value = ips
            .iter()
            .map(|ip| json!({"ip": ip, "ipMode": "Proxy", "ports": ingress_ports}))
            .collect();
        if svc["status"]["loadBalancer"]["ingress"] != want_ingress {
            bad.push(format!(
                "ingress: Service {key} ingress {}, want {want_ingress}",
                svc["status"]["loadBalancer"]["ingress"]
            ));
        }
    }
    for (k, lb) in &lbs {
        if !wanted_lbs.contains(k) {
            bad.push(format!(
                "leftover: LoadBalancer {}/{} has no LoadBalancer Service (deletionTimestamp {}, finalizers {})",
                k.0, k.1, lb["metadata"]["deletionTimestamp"], lb["metadata"]["finalizers"]
            ));
        }
    }
    if let Err(e) = port_conflicts(lbs.values()) {
        bad.push(e);
    }
    // Each updater's view.
    for addr in updaters {
        let url = format!("http://{addr}");
        let empty = BTreeMap::new();
        let desired = desired_at.get(&url).unwrap_or(&empty);
        check_updater(*addr, desired, &mut bad);
    }
    // nginx really serves what the updaters say (no traffic: the kernel's socket tables; both
    // nginx run on this machine, so this cannot tell which one listens).
    let (tcp, udp) = bound_ports();
    for (name, b) in desired_at.values().flatten() {
        let bound = if b.protocol == "UDP" { &udp } else { &tcp };
        if (window.0..=window.1).contains(&b.port) && !bound.contains(&b.port) {
            bad.push(format!(
                "nginx: nothing listens on {}/{} for backend {name}",
                b.port, b.protocol
            ));
        }
    }
    if bad.is_empty() { Ok(()) } else { Err(bad) }
}

fn lb_of<'a>(lbs: &'a BTreeMap<(String, String), Value>, ns: &str, name: &str) -> &'a Value {
    lbs.get(&(ns.to_string(), name.to_string()))
        .unwrap_or(&Value::Null)
}

/// One updater's `GET /api/v1/lb` against the backends it should serve.
fn check_updater(updater: SocketAddr, desired: &BTreeMap<String, Backend>, bad: &mut Vec<String>) {
    match updater_backends(updater) {
        Err(e) => bad.push(format!("updater: GET /api/v1/lb: {e}")),
        Ok((got, unreadable)) => {
            if !unreadable.is_empty() {
                bad.push(format!("updater: unreadable files {unreadable:?}"));
            }
            for (name, want) in desired {
                match got.get(name) {
                    None => bad.push(format!(
                        "updater-missing: backend {name} on {updater} ({want:?})"
                    )),
                    Some(g) if g != want => bad.push(format!(
                        "updater-differs: backend {name} on {updater} is {g:?}, want {want:?}"
                    )),
                    Some(_) => {}
                }
            }
            for name in got.keys().filter(|n| !desired.contains_key(*n)) {
                bad.push(format!(
                    "updater-leftover: backend {name} on {updater} ({:?})",
                    got[name]
                ));
            }
            let mut seen: BTreeMap<(u16, &str), &str> = BTreeMap::new();
            for (name, b) in &got {
                if let Some(other) = seen.insert((b.port, &b.protocol), name) {
                    bad.push(format!(
                        "port-shared: backends {other} and {name} both serve {}/{}",
                        b.port, b.protocol
                    ));
                }
            }
        }
    }
}

/// No (host, port, protocol) held by two LoadBalancers.
fn port_conflicts<'a>(lbs: impl Iterator<Item = &'a Value>) -> Result<(), String> {
    let mut seen: BTreeMap<(String, u16, String), String> = BTreeMap::new();
    let mut bad = Vec::new();
    for lb in lbs {
        let key = format!(
            "{}/{}",
            s(&lb["metadata"]["namespace"]),
            s(&lb["metadata"]["name"])
        );
        let host = s(&lb["spec"]["host"]).to_string();
        for (_, port, proto) in lb_ports(lb) {
            if let Some(other) = seen.insert((host.clone(), port, proto.clone()), key.clone())
                && other != key
            {
                bad.push(format!("{other} and {key} both hold {host}:{port}/{proto}"));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("port-shared: {}", bad.join("; ")))
    }
}

type Backends = BTreeMap<String, Backend>;

fn updater_backends(addr: SocketAddr) -> Result<(Backends, Vec<Value>), String> {
    let (code, body) = http_get(
        addr,
        "/api/v1/lb",
        "paperlb-chaos",
        8 << 20,
        Duration::from_secs(10),
    )?;
    if code != 200 {
        return Err(format!("HTTP {code}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let mut out = BTreeMap::new();
    for b in v["backends"].as_array().cloned().unwrap_or_default() {
        out.insert(
            s(&b["backendName"]).to_string(),
            Backend {
                port: b["lbPort"].as_u64().unwrap_or(0) as u16,
                protocol: s(&b["lbProtocol"]).to_ascii_uppercase(),
                upstreams: upstreams_of(&b["upstreamServers"]),
                proxy_timeout: b["proxyTimeoutSeconds"].as_u64().unwrap_or(0),
                proxy_connect_timeout: b["proxyConnectTimeoutSeconds"].as_u64().unwrap_or(0),
            },
        );
    }
    let unreadable = v["unreadable"].as_array().cloned().unwrap_or_default();
    Ok((out, unreadable))
}

/// POST and DELETE calls the updater has answered, from its /metrics.
fn updater_calls(addr: SocketAddr) -> Option<u64> {
    let (code, body) = http_get(
        addr,
        "/metrics",
        "paperlb-chaos",
        8 << 20,
        Duration::from_secs(10),
    )
    .ok()?;
    if code != 200 {
        return None;
    }
    let mut n = 0.0;
    for l in body.lines() {
        if l.starts_with("paperlb_updater_http_requests_total{")
            && l.contains("/api/v1/lb")
            && (l.contains("\"POST\"") || l.contains("\"DELETE\""))
        {
            n += l
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    Some(n as u64)
}

// ---------------------------------------------------------------------------------------------
// The monitor: invariants that must hold at every instant, sampled during the whole run

#[derive(Default)]
struct Monitor {
    /// (owner Service uid, LoadBalancer uid, port name, protocol) -> the LB port first seen.
    ports: BTreeMap<(String, String, String, String), u16>,
    /// LoadBalancer uid -> (configName, host): a move to another config allocates anew.
    placed: BTreeMap<String, (String, String)>,
    violations: Vec<String>,
    samples: usize,
}

impl Monitor {
    fn sample(&mut self, api: &FakeApi) {
        self.samples += 1;
        let lbs = api.list("loadbalancers", "");
        if let Err(e) = port_conflicts(lbs.iter()) {
            self.note(e);
        }
        for lb in &lbs {
            let owner = lb["metadata"]["ownerReferences"]
                .as_array()
                .and_then(|os| os.iter().find(|o| o["kind"] == "Service"))
                .map(|o| s(&o["uid"]).to_string())
                .unwrap_or_default();
            let uid = s(&lb["metadata"]["uid"]).to_string();
            let place = (
                s(&lb["spec"]["configName"]).to_string(),
                s(&lb["spec"]["host"]).to_string(),
            );
            if self
                .placed
                .insert(uid.clone(), place.clone())
                .is_some_and(|p| p != place)
            {
                // Moved to another config (the Service named another one): new ports are fine.
                self.ports.retain(|k, _| k.1 != uid);
            }
            let key_name = format!(
                "{}/{}",
                s(&lb["metadata"]["namespace"]),
                s(&lb["metadata"]["name"])
            );
            for (name, port, proto) in lb_ports(lb) {
                let k = (owner.clone(), uid.clone(), name.clone(), proto.clone());
                match self.ports.get(&k) {
                    None => {
                        self.ports.insert(k, port);
                    }
                    Some(&first) if first != port => {
                        self.note(format!(
                            "port-changed: LoadBalancer {key_name} port {name:?}/{proto} moved from {first} to {port} (same Service, same LoadBalancer)"
                        ));
                        self.ports.insert(k, port);
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn note(&mut self, v: String) {
        if self.violations.len() < 20 && !self.violations.contains(&v) {
            self.violations.push(v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One seed's world

/// What the chaos did, for the summary and the write budget.
#[derive(Default)]
struct Tally {
    changes: BTreeMap<&'static str, usize>,
    faults: BTreeMap<&'static str, usize>,
    /// Upper bound of the API writes (Events apart) the changes and faults may cost; see `allow`.
    budget: usize,
    updater_calls_before_restarts: u64,
    /// The last change or fault, for `PAPERLB_CHAOS_TRACE`.
    last: &'static str,
}

impl Tally {
    /// `writes`: the most API writes (Events apart) this change may cost; see `mod budget`.
    fn change(&mut self, what: &'static str, writes: usize) {
        self.last = what;
        *self.changes.entry(what).or_default() += 1;
        self.budget += writes;
    }

    fn fault(&mut self, what: &'static str, writes: usize) {
        self.last = what;
        *self.faults.entry(what).or_default() += 1;
        self.budget += writes;
    }
}

/// The write budget, per change or fault. One LoadBalancer change costs at most 3 writes (create:
/// POST + status + Service status; delete: ingress clear + finalizer + DELETE; a port change: spec +
/// status + Service status); a node or config change costs each LoadBalancer a spec and a status
/// patch (DESIGN's cost of a flip); a change that alters no desired state costs nothing. A fault
/// makes the controller redo at most the write in flight and the step after it (3), per failed
/// write; an updater outage costs each LoadBalancer applied meanwhile an ERROR and a READY status,
/// and a host of `edge` failing past the grace costs each of its LoadBalancers a status and a
/// Service status write when it leaves the ingress and the same when it comes back.
mod budget {
    pub const SERVICE_CHANGE: usize = 3;
    pub const PER_LB_SPEC_AND_STATUS: usize = 2;
    pub const REDO: usize = 3;
    pub const UPDATER_OUTAGE_PER_LB: usize = 4;
    /// Slack for the first reconciles racing the initial objects.
    pub const SLACK: usize = 20;
}

/// One load balancer host's updater: its private nginx and `paperlb nginx-updater` process.
struct Slot {
    nginx: Nginx,
    proc: Proc,
    addr: SocketAddr,
    log: String,
}

impl Slot {
    /// Every file of the streams directory removed and nginx reloaded: it stops serving every LB
    /// port of this host, and the updater's GET lists nothing.
    fn wipe(&self) -> Result<(), String> {
        let dir = std::fs::read_dir(&self.nginx.streams).map_err(|e| e.to_string())?;
        for e in dir.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        let pid = self.nginx.master_pid().ok_or("no nginx master pid")?;
        signal("-HUP", pid);
        Ok(())
    }
}

struct World {
    api: Arc<FakeApi>,
    bin: PathBuf,
    dir: PathBuf,
    kubeconfig: PathBuf,
    low: u16,
    /// Held while the run uses its port window (see `port_window`).
    _window_claim: TcpListener,
    controller: Proc,
    /// Updater A (config `edge`) and updater B (config `spare`).
    slots: Vec<Slot>,
    rng: Rng,
    tally: Tally,
    next_id: usize,
    /// Problems seen while running: a child exiting on its own.
    incidents: Vec<String>,
    /// The config while it is deleted, and when it comes back.
    config_away: Option<(&'static str, Value, Instant)>,
}

fn log_level() -> String {
    std::env::var("PAPERLB_CHAOS_LOG").unwrap_or_else(|_| "info".into())
}

fn start_controller(bin: &Path, dir: &Path, kubeconfig: &Path) -> Result<Proc, String> {
    Proc::spawn(
        "controller",
        Command::new(bin)
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", NS, "--metrics-addr", "off"])
            // Short, so a host that lost its config (a fault) is repaired well inside the
            // convergence window.
            .args(["--updater-resync", RESYNC])
            .args(["--host-failure-grace", GRACE])
            .env("RUST_LOG", log_level()),
        &dir.join("controller.log"),
    )
}

fn start_updater(
    bin: &Path,
    dir: &Path,
    nginx: &Nginx,
    (addr, lb_address): (SocketAddr, &str),
    low: u16,
    log: &str,
) -> Result<Proc, String> {
    let mut p = Proc::spawn(
        "nginx-updater",
        Command::new(bin)
            .arg("nginx-updater")
            .args(["--listen", &addr.to_string(), "--streams-dir"])
            .arg(&nginx.streams)
            .arg("--nginx-conf")
            .arg(&nginx.conf)
            .args([
                "--nginx-bin",
                NGINX,
                "--allowed-ports",
                &format!("{low}-{}", low + WINDOW - 1),
                "--lb-address",
                lb_address,
            ])
            .env("RUST_LOG", log_level()),
        &dir.join(log),
    )?;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if let Some(st) = p.exited() {
            return Err(format!("nginx-updater exited at start ({st})"));
        }
        if http_get(
            addr,
            "/healthz",
            "paperlb-chaos",
            8 << 20,
            Duration::from_secs(10),
        )
        .is_ok_and(|(c, _)| c == 200)
        {
            return Ok(p);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err("nginx-updater did not become healthy within 20s".into())
}

impl World {
    fn new(seed: u64) -> Result<World, String> {
        let bin = paperlb_bin("chaos")?;
        if !Path::new(NGINX).is_file() || !Path::new(STREAM_MODULE).is_file() {
            return Err(format!(
                "{NGINX} or {STREAM_MODULE} missing: run ./scripts/install-deps (make chaos does)"
            ));
        }
        let dir = run_dir(seed);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        let api = FakeApi::try_start(FakeOptions {
            namespaces: vec![NS.into(), "apps".into()],
            // Bookmarks often enough to be exercised in a short run.
            bookmark_interval: Duration::from_secs(2),
            latency: LATENCY.get().copied().unwrap_or_default(),
            ..FakeOptions::default()
        })
        .map_err(|e| format!("starting the fake API server: {e}"))?;
        let kubeconfig = dir.join("kubeconfig");
        api.write_kubeconfig(&kubeconfig)
            .map_err(|e| format!("writing the kubeconfig: {e}"))?;
        let (low, window_claim) = port_window(seed)?;
        let mut slots = Vec::new();
        for (i, tag) in ["a", "b"].iter().enumerate() {
            let nginx = Nginx::start();
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
            let log = format!("nginx-updater-{tag}.log");
            let proc = start_updater(&bin, &dir, &nginx, (addr, HOSTS[i]), low, &log)?;
            slots.push(Slot {
                nginx,
                proc,
                addr,
                log,
            });
        }
        let controller = start_controller(&bin, &dir, &kubeconfig)?;
        Ok(World {
            api: Arc::new(api),
            bin,
            dir,
            kubeconfig,
            low,
            _window_claim: window_claim,
            controller,
            slots,
            rng: Rng(seed),
            tally: Tally::default(),
            next_id: 0,
            incidents: Vec::new(),
            config_away: None,
        })
    }

    fn id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    fn live_lbs(&self) -> usize {
        self.api.list("loadbalancers", "").len()
    }

    // --- the cluster's objects -------------------------------------------------------------

    fn node_names(&self) -> Vec<String> {
        self.api
            .list("nodes", "")
            .iter()
            .map(|n| s(&n["metadata"]["name"]).to_string())
            .collect()
    }

    fn used_addresses(&self) -> BTreeSet<String> {
        self.api
            .list("nodes", "")
            .iter()
            .flat_map(|n| {
                n["status"]["addresses"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|a| s(&a["address"]).to_string())
            .collect()
    }

    /// A loopback address no node has: 127.0.0.x for InternalIP, 127.0.1.x for ExternalIP.
    fn fresh_address(&mut self, external: bool) -> String {
        let used = self.used_addresses();
        for _ in 0..1000 {
            let a = format!("127.0.{}.{}", u8::from(external), 2 + self.rng.below(250));
            if !used.contains(&a) {
                return a;
            }
        }
        format!("127.0.{}.254", u8::from(external))
    }

    fn add_node(&mut self, name: &str) -> Result<(), String> {
        let ip = self.fresh_address(false);
        self.api
            .create(
                "nodes",
                json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
            )
            .map_err(|e| format!("create node {name}: {e}"))?;
        self.edit_node_status(name, |st| {
            *st = json!({
                "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                "conditions": [{"type": "Ready", "status": "True"}],
            });
        })
    }

    fn edit_node_status(&self, name: &str, f: impl FnOnce(&mut Value)) -> Result<(), String> {
        let mut node = self
            .api
            .get("nodes", "", name)
            .map_err(|e| format!("get node {name}: {e}"))?;
        f(&mut node["status"]);
        self.api
            .update_status("nodes", node)
            .map(|_| ())
            .map_err(|e| format!("node {name} status: {e}"))
    }

    fn service_names(&self) -> Vec<(String, String)> {
        self.api
            .list("services", "")
            .iter()
            .filter(|s| s["metadata"]["name"] != "kubernetes")
            .map(|v| {
                (
                    s(&v["metadata"]["namespace"]).to_string(),
                    s(&v["metadata"]["name"]).to_string(),
                )
            })
            .collect()
    }

    /// Per config (by name; none names the default): its LoadBalancer Services of ours, and how
    /// many of them have a TCP port.
    fn services_per_config(&self) -> BTreeMap<&'static str, (usize, usize)> {
        let mut per: BTreeMap<&'static str, (usize, usize)> =
            CONFIGS.iter().map(|c| (*c, (0, 0))).collect();
        for v in self.api.list("services", "").iter().filter(|v| is_ours(v)) {
            let named = v["metadata"]["annotations"]["lb.paperlb.com/config-name"]
                .as_str()
                .unwrap_or(CONFIG);
            let Some(e) = CONFIGS
                .iter()
                .find(|c| **c == named)
                .and_then(|c| per.get_mut(c))
            else {
                continue;
            };
            e.0 += 1;
            let ports = v["spec"]["ports"].as_array().cloned().unwrap_or_default();
            e.1 += usize::from(ports.iter().any(|p| p["protocol"] != "UDP"));
        }
        per
    }

    /// After the chaos: one-port TCP Services until there are `MIN_SERVICES` of ours, at least
    /// `MIN_PER_CONFIG` on each config and one with a TCP port on each (for the traffic check).
    fn top_up(&mut self) -> Result<(), String> {
        for _ in 0..MIN_SERVICES + CONFIGS.len() * MIN_PER_CONFIG {
            let per = self.services_per_config();
            let short = per
                .iter()
                .find(|(_, (n, tcp))| *n < MIN_PER_CONFIG || *tcp == 0)
                .map(|(c, _)| *c);
            let config = match short {
                Some(c) => Some(c),
                None if per.values().map(|v| v.0).sum::<usize>() < MIN_SERVICES => None,
                None => return Ok(()),
            };
            self.tally
                .change("svc-create-top-up", budget::SERVICE_CHANGE);
            self.create_service_with(1, config, true)?;
        }
        Ok(())
    }

    fn live_ports(&self) -> usize {
        self.api
            .list("services", "")
            .iter()
            .filter(|v| is_ours(v))
            .map(|v| v["spec"]["ports"].as_array().map_or(0, Vec::len))
            .sum()
    }

    fn new_port(&mut self, taken: &[Value]) -> Value {
        let id = self.id();
        let protocol = if self.rng.chance(25) { "UDP" } else { "TCP" };
        let mut port = 1000 + self.rng.below(8000) as u64;
        while taken.iter().any(|p| p["port"].as_u64() == Some(port)) {
            port += 1;
        }
        json!({"name": format!("p{id}"), "port": port, "protocol": protocol, "targetPort": port})
    }

    fn create_service(&mut self) -> Result<(), String> {
        let ports = 1 + self.rng.below(3);
        let config = if self.rng.chance(30) {
            Some(if self.rng.chance(50) { CONFIG } else { SPARE })
        } else {
            None
        };
        self.create_service_with(ports, config, false)
    }

    /// A LoadBalancer Service with `n` ports (`tcp`: TCP only); `config`: the annotation (None: the
    /// default).
    fn create_service_with(
        &mut self,
        n: usize,
        config: Option<&str>,
        tcp: bool,
    ) -> Result<(), String> {
        let id = self.id();
        let ns = if self.rng.chance(30) {
            "apps"
        } else {
            "default"
        };
        let name = format!("svc-{id}");
        let mut ports: Vec<Value> = Vec::new();
        for _ in 0..n {
            let mut p = self.new_port(&ports);
            if tcp {
                p["protocol"] = json!("TCP");
            }
            ports.push(p);
        }
        let mut obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports},
        });
        if let Some(cfg) = config {
            obj["metadata"]["annotations"] = json!({"lb.paperlb.com/config-name": cfg});
        }
        if self.rng.chance(20) {
            obj["spec"]["loadBalancerClass"] = json!(CLASS);
        }
        let local = self.rng.chance(25);
        if local {
            obj["spec"]["externalTrafficPolicy"] = json!("Local");
        }
        self.api
            .create("services", obj)
            .map_err(|e| format!("create service {ns}/{name}: {e}"))?;
        if local {
            self.write_slice(ns, &name)
        } else {
            Ok(())
        }
    }

    /// Writes the Service's one EndpointSlice: a ready endpoint on node-0 (always eligible, so a
    /// Local Service always has a target) and on some other nodes, ready or not or unknown.
    fn write_slice(&mut self, ns: &str, svc: &str) -> Result<(), String> {
        let mut endpoints = vec![json!({"addresses": ["10.42.0.1"], "nodeName": "node-0",
            "conditions": {"ready": true}})];
        for (i, node) in self
            .node_names()
            .iter()
            .filter(|n| *n != "node-0")
            .enumerate()
        {
            let cond = match self.rng.below(4) {
                0 => continue,
                1 => json!({"ready": false}),
                2 => json!({}),
                _ => json!({"ready": true}),
            };
            endpoints.push(
                json!({"addresses": [format!("10.42.{}.{}", i + 1, 1 + self.rng.below(200))],
                "nodeName": node, "conditions": cond}),
            );
        }
        let obj = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{svc}-slice"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
        });
        match self.api.get("endpointslices", ns, &format!("{svc}-slice")) {
            Ok(_) => self
                .api
                .patch(
                    "endpointslices",
                    ns,
                    &format!("{svc}-slice"),
                    json!({"endpoints": obj["endpoints"]}),
                )
                .map(|_| ()),
            Err(_) => self.api.create("endpointslices", obj).map(|_| ()),
        }
        .map_err(|e| format!("endpoint slice {ns}/{svc}-slice: {e}"))
    }

    fn patch_service(&self, ns: &str, name: &str, patch: Value) -> Result<(), String> {
        self.api
            .patch("services", ns, name, patch)
            .map(|_| ())
            .map_err(|e| format!("patch service {ns}/{name}: {e}"))
    }

    // --- chaos steps -----------------------------------------------------------------------

    /// One random change to Services, Nodes or the config.
    fn change(&mut self) -> Result<(), String> {
        let live = self.live_lbs();
        let roll = self.rng.below(100);
        let svcs = self.service_names();
        if roll < 45 {
            let Some((ns, name)) = self.rng.pick(&svcs).cloned() else {
                self.tally.change("svc-create", budget::SERVICE_CHANGE);
                return self.create_service();
            };
            let svc = self
                .api
                .get("services", &ns, &name)
                .map_err(|e| format!("get {ns}/{name}: {e}"))?;
            let mut ports = svc["spec"]["ports"].as_array().cloned().unwrap_or_default();
            let ours = is_ours(&svc);
            match self.rng.below(11) {
                0 | 1 if self.live_ports() + 3 <= MAX_LIVE_PORTS => {
                    self.tally.change("svc-create", budget::SERVICE_CHANGE);
                    self.create_service()
                }
                0..=2 => {
                    self.tally.change("svc-delete", budget::SERVICE_CHANGE);
                    self.api
                        .delete("services", &ns, &name)
                        .map_err(|e| format!("delete {ns}/{name}: {e}"))?;
                    // What the EndpointSlice controller does (GC of its owned slices).
                    let _ = self
                        .api
                        .delete("endpointslices", &ns, &format!("{name}-slice"));
                    Ok(())
                }
                9 if svc["spec"]["externalTrafficPolicy"] == "Local" && self.rng.chance(60) => {
                    // Pods come and go: the Local Service's ready endpoints change.
                    self.tally.change("slice-endpoints", budget::SERVICE_CHANGE);
                    self.write_slice(&ns, &name)
                }
                9 if ours => {
                    let local = svc["spec"]["externalTrafficPolicy"] == "Local";
                    let policy = if local { "Cluster" } else { "Local" };
                    self.tally
                        .change("svc-traffic-policy", budget::SERVICE_CHANGE);
                    if !local {
                        self.write_slice(&ns, &name)?;
                    }
                    self.patch_service(
                        &ns,
                        &name,
                        json!({"spec": {"externalTrafficPolicy": policy}}),
                    )
                }
                3 if !ports.is_empty() => {
                    // A Service port number change: same name, same nodePort; the LB port stays.
                    let i = self.rng.below(ports.len());
                    let mut n = 1000 + self.rng.below(8000) as u64;
                    while ports.iter().any(|p| p["port"].as_u64() == Some(n)) {
                        n += 1;
                    }
                    ports[i]["port"] = json!(n);
                    ports[i]["targetPort"] = json!(n);
                    self.tally.change("svc-port-number", budget::SERVICE_CHANGE);
                    self.patch_service(&ns, &name, json!({"spec": {"ports": ports}}))
                }
                4 if ports.len() < 3 && self.live_ports() < MAX_LIVE_PORTS => {
                    let p = self.new_port(&ports);
                    ports.push(p);
                    self.tally.change("svc-port-add", budget::SERVICE_CHANGE);
                    self.patch_service(&ns, &name, json!({"spec": {"ports": ports}}))
                }
                5 if ports.len() > 1 => {
                    ports.remove(self.rng.below(ports.len()));
                    self.tally.change("svc-port-remove", budget::SERVICE_CHANGE);
                    self.patch_service(&ns, &name, json!({"spec": {"ports": ports}}))
                }
                6 => {
                    // Stops (or starts again) being ours.
                    let back = !ours && self.live_ports() + ports.len() <= MAX_LIVE_PORTS;
                    let ty = if back { "LoadBalancer" } else { "ClusterIP" };
                    if ours || back {
                        self.tally.change("svc-type-flip", budget::SERVICE_CHANGE);
                        self.patch_service(&ns, &name, json!({"spec": {"type": ty}}))
                    } else {
                        Ok(())
                    }
                }
                8 if ours && self.rng.chance(50) => {
                    // `kubectl delete loadbalancer` of a live Service: finalized, then recreated.
                    self.tally
                        .change("lb-deleted-by-user", 2 * budget::SERVICE_CHANGE);
                    match self.api.delete("loadbalancers", &ns, &name) {
                        Ok(_) => Ok(()),
                        Err(e) if e.code == 404 => Ok(()),
                        Err(e) => Err(format!("delete loadbalancer {ns}/{name}: {e}")),
                    }
                }
                7 => {
                    // Another config: none (the default), the default by name (no change), or the
                    // spare one on updater B (the backends move there; the port stays).
                    let now = svc["metadata"]["annotations"]["lb.paperlb.com/config-name"]
                        .as_str()
                        .unwrap_or(CONFIG);
                    let choices = [Value::Null, json!(CONFIG), json!(SPARE)];
                    let value = self.rng.pick(&choices).cloned().unwrap_or(Value::Null);
                    let moves = value.as_str().unwrap_or(CONFIG) != now;
                    let (what, writes) = if moves {
                        ("svc-config-move", budget::SERVICE_CHANGE)
                    } else {
                        ("svc-annotation", 0)
                    };
                    self.tally.change(what, writes);
                    self.patch_service(
                        &ns,
                        &name,
                        json!({"metadata": {"annotations": {"lb.paperlb.com/config-name": value}}}),
                    )
                }
                _ => {
                    // An unrelated label: must cost nothing.
                    let id = self.id();
                    self.tally.change("svc-label", 0);
                    self.patch_service(
                        &ns,
                        &name,
                        json!({"metadata": {"labels": {"chaos": format!("l{id}")}}}),
                    )
                }
            }
        } else if roll < 85 {
            self.change_node(live)
        } else {
            self.change_config(live)
        }
    }

    fn change_node(&mut self, live: usize) -> Result<(), String> {
        let names = self.node_names();
        // node-0 always stays eligible, so every Service has a target (an empty upstream list is
        // refused by the updater by design).
        let others: Vec<String> = names.iter().filter(|n| *n != "node-0").cloned().collect();
        let pick_any = self.rng.pick(&names).cloned();
        let pick_other = self.rng.pick(&others).cloned();
        match self.rng.below(8) {
            0 if names.len() < MAX_NODES => {
                let name = format!("node-{}", self.id());
                self.tally
                    .change("node-add", budget::PER_LB_SPEC_AND_STATUS * live);
                self.add_node(&name)
            }
            1 if others.len() > 1 => {
                let Some(n) = pick_other else { return Ok(()) };
                self.tally
                    .change("node-remove", budget::PER_LB_SPEC_AND_STATUS * live);
                self.api
                    .delete("nodes", "", &n)
                    .map(|_| ())
                    .map_err(|e| format!("delete node {n}: {e}"))
            }
            0..=2 => {
                let Some(n) = pick_other else { return Ok(()) };
                self.tally
                    .change("node-ready-flip", budget::PER_LB_SPEC_AND_STATUS * live);
                self.edit_node_status(&n, |st| {
                    let ready = st["conditions"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|c| c["status"] == "True"));
                    st["conditions"] =
                        json!([{"type": "Ready", "status": if ready { "False" } else { "True" }}]);
                })
            }
            3 => {
                let Some(n) = pick_any else { return Ok(()) };
                let ip = self.fresh_address(false);
                self.tally
                    .change("node-address", budget::PER_LB_SPEC_AND_STATUS * live);
                self.edit_node_status(&n, |st| {
                    if let Some(addrs) = st["addresses"].as_array_mut() {
                        for a in addrs.iter_mut().filter(|a| a["type"] == "InternalIP") {
                            a["address"] = json!(ip);
                        }
                    }
                })
            }
            4 => {
                let Some(n) = pick_any else { return Ok(()) };
                let ip = self.fresh_address(true);
                self.tally
                    .change("node-external-ip", budget::PER_LB_SPEC_AND_STATUS * live);
                self.edit_node_status(&n, |st| {
                    if let Some(addrs) = st["addresses"].as_array_mut() {
                        let had = addrs.iter().any(|a| a["type"] == "ExternalIP");
                        addrs.retain(|a| a["type"] != "ExternalIP");
                        if !had {
                            addrs.push(json!({"type": "ExternalIP", "address": ip}));
                        }
                    }
                })
            }
            5 => {
                let Some(n) = pick_other else { return Ok(()) };
                let node = self
                    .api
                    .get("nodes", "", &n)
                    .map_err(|e| format!("get node {n}: {e}"))?;
                let has = !node["metadata"]["labels"][EXCLUDE_LABEL].is_null();
                let v = if has { Value::Null } else { json!("true") };
                self.tally
                    .change("node-exclude-label", budget::PER_LB_SPEC_AND_STATUS * live);
                self.api
                    .patch(
                        "nodes",
                        "",
                        &n,
                        json!({"metadata": {"labels": {EXCLUDE_LABEL: v}}}),
                    )
                    .map(|_| ())
                    .map_err(|e| format!("label node {n}: {e}"))
            }
            _ => {
                // A heartbeat: must cost nothing.
                let Some(n) = pick_any else { return Ok(()) };
                let id = self.id();
                self.tally.change("node-heartbeat", 0);
                self.api
                    .patch(
                        "nodes",
                        "",
                        &n,
                        json!({"metadata": {"annotations": {"chaos/heartbeat": format!("{id}")}}}),
                    )
                    .map(|_| ())
                    .map_err(|e| format!("heartbeat node {n}: {e}"))
            }
        }
    }

    /// Brings a deleted config back (same spec, a new object), when due or when `now`.
    fn config_return(&mut self, now: bool) -> Result<(), String> {
        let Some((name, spec, at)) = self.config_away.take() else {
            return Ok(());
        };
        if !now && Instant::now() < at {
            self.config_away = Some((name, spec, at));
            return Ok(());
        }
        let live = self.live_lbs();
        self.tally
            .change("config-recreated", budget::PER_LB_SPEC_AND_STATUS * live);
        self.api
            .create(
                "loadbalancerconfigs",
                json!({
                    "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": spec,
                }),
            )
            .map(|_| ())
            .map_err(|e| format!("recreate config: {e}"))
    }

    fn change_config(&mut self, live: usize) -> Result<(), String> {
        if self.config_away.is_some() {
            return Ok(());
        }
        let name = if self.rng.chance(60) { CONFIG } else { SPARE };
        if self.rng.chance(10) {
            // Deleted, then created again a little later: the LoadBalancers must stay put meanwhile
            // (a missing config is reported, nothing is torn down) and keep their ports after.
            let cfg = self
                .api
                .get("loadbalancerconfigs", NS, name)
                .map_err(|e| format!("get config: {e}"))?;
            self.api
                .delete("loadbalancerconfigs", NS, name)
                .map_err(|e| format!("delete config: {e}"))?;
            self.tally
                .change("config-deleted", budget::PER_LB_SPEC_AND_STATUS * live);
            let back = Instant::now() + self.rng.ms(200, 2000);
            self.config_away = Some((name, cfg["spec"].clone(), back));
            return Ok(());
        }
        let spec = match self.rng.below(4) {
            0 => {
                let t = *self.rng.pick(&[0u64, 30, 120, 600]).unwrap_or(&0);
                self.tally.change(
                    "config-proxy-timeout",
                    budget::PER_LB_SPEC_AND_STATUS * live,
                );
                json!({"proxyTimeoutSeconds": if t == 0 { Value::Null } else { json!(t) }})
            }
            1 => {
                let t = *self.rng.pick(&[0u64, 5, 20]).unwrap_or(&0);
                self.tally.change(
                    "config-connect-timeout",
                    budget::PER_LB_SPEC_AND_STATUS * live,
                );
                json!({"proxyConnectTimeoutSeconds": if t == 0 { Value::Null } else { json!(t) }})
            }
            2 => {
                let choices = [
                    Value::Null,
                    json!(["InternalIP"]),
                    json!(["ExternalIP", "InternalIP"]),
                    json!(["InternalIP", "ExternalIP"]),
                ];
                let v = self.rng.pick(&choices).cloned().unwrap_or(Value::Null);
                self.tally.change(
                    "config-address-types",
                    budget::PER_LB_SPEC_AND_STATUS * live,
                );
                json!({"targetAddressTypes": v})
            }
            _ => {
                // Never below what lowest-free allocation can have used (see MAX_LIVE_PORTS).
                let i = usize::from(name == SPARE);
                let low = self.low + RANGE_OFFSETS[i];
                let high = low + *self.rng.pick(&RANGE_SPANS).unwrap_or(&RANGE_SPANS[0]);
                self.tally.change("config-range-high", 0);
                json!({"portRange": {"low": low, "high": high}})
            }
        };
        self.api
            .patch("loadbalancerconfigs", NS, name, json!({"spec": spec}))
            .map(|_| ())
            .map_err(|e| format!("patch config: {e}"))
    }

    /// One random fault.
    fn fault(
        &mut self,
        pending_controller: &mut Option<Instant>,
        pending_updater: &mut Option<(usize, Instant, bool)>,
    ) {
        let slot = self.rng.below(self.slots.len());
        let live = self.live_lbs();
        let watch_paths = [
            "/api/v1/services",
            "/api/v1/nodes",
            "/apis/lb.paperlb.com/v1alpha1/loadbalancers",
            "/apis/lb.paperlb.com/v1alpha1/namespaces/paperlb-system/loadbalancerconfigs",
            "/apis/discovery.k8s.io/v1/endpointslices",
        ];
        let write_paths = [
            "/apis/lb.paperlb.com/v1alpha1/namespaces/",
            "/api/v1/namespaces/",
        ];
        match self.rng.below(100) {
            0..=9 => {
                if self.controller.running() && pending_controller.is_none() {
                    self.controller.kill9();
                    self.tally.fault("controller-kill-9", budget::REDO);
                    *pending_controller = Some(Instant::now() + self.rng.ms(0, 1500));
                }
            }
            10..=13 => {
                // Not while an updater is paused: the controller finishes its reconcile before it
                // exits, and a call to a stopped updater only ends at its timeout (60 s).
                let paused = pending_updater.is_some_and(|(_, _, restart)| !restart);
                if self.controller.running() && pending_controller.is_none() && !paused {
                    self.controller.terminate();
                    self.tally.fault("controller-sigterm", budget::REDO);
                    *pending_controller = Some(Instant::now() + self.rng.ms(0, 500));
                }
            }
            14..=21 => {
                let n = self.api.reset_connections();
                let _ = n;
                self.tally.fault("api-connections-reset", budget::REDO);
            }
            22..=29 => {
                self.api.compact();
                self.tally.fault("compaction-410", 0);
            }
            30..=49 => {
                let path = *self.rng.pick(&watch_paths).unwrap_or(&watch_paths[0]);
                let (what, prefix, kind) = match self.rng.below(6) {
                    0 => (
                        "watch-drop-mid-object",
                        format!("{path}?"),
                        FaultKind::DropMidObject,
                    ),
                    1 => (
                        "watch-stall",
                        format!("{path}?"),
                        FaultKind::StallStream(self.rng.ms(500, 4000)),
                    ),
                    2 => (
                        "watch-end-early",
                        format!("{path}?"),
                        FaultKind::EndEarly(self.rng.below(3)),
                    ),
                    3 => (
                        "watch-410",
                        format!("{path}?watch=1"),
                        FaultKind::Status(410),
                    ),
                    4 => (
                        "list-or-watch-500",
                        format!("{path}?"),
                        FaultKind::Status(500),
                    ),
                    _ => ("api-drop", format!("{path}?"), FaultKind::Drop),
                };
                self.api.inject(Fault::new(
                    Some("GET"),
                    &prefix,
                    1 + self.rng.below(2),
                    kind,
                ));
                self.tally.fault(what, 0);
                // Faults meet new requests: sometimes make the watches reconnect now.
                if self.rng.chance(50) {
                    self.api.reset_connections();
                }
            }
            50..=79 => {
                let method = *self
                    .rng
                    .pick(&["POST", "PATCH", "PATCH", "DELETE"])
                    .unwrap_or(&"PATCH");
                let prefix = *self.rng.pick(&write_paths).unwrap_or(&write_paths[0]);
                let (what, kind) = match self.rng.below(8) {
                    7 => (
                        "write-committed-late",
                        FaultKind::DropThenApplyAfter(self.rng.ms(5, 400)),
                    ),
                    6 => ("write-answer-lost", FaultKind::ApplyThenDrop),
                    0 => ("write-409", FaultKind::Status(409)),
                    1 => ("write-429", FaultKind::Status(429)),
                    2 => ("write-429-apf", FaultKind::Throttled { retry_after: 1 }),
                    3 => ("write-500", FaultKind::Status(500)),
                    4 => ("write-stall", FaultKind::Stall(self.rng.ms(200, 2000))),
                    _ => ("write-dropped", FaultKind::Drop),
                };
                let count = 1 + self.rng.below(3);
                self.api
                    .inject(Fault::new(Some(method), prefix, count, kind));
                self.tally.fault(what, budget::REDO * count);
            }
            80..=89 => {
                if self.slots[slot].proc.running() && pending_updater.is_none() {
                    self.slots[slot].proc.pause();
                    self.tally
                        .fault("updater-paused", budget::UPDATER_OUTAGE_PER_LB * live);
                    *pending_updater = Some((slot, Instant::now() + self.rng.ms(300, 3000), false));
                }
            }
            95..=99 => {
                // The LB host loses its whole config (a reboot with an empty streams.d, a rebuild):
                // nothing in the cluster changes; only the controller's drift check brings it back.
                match self.slots[slot].wipe() {
                    Ok(()) => self.tally.fault("lb-host-config-lost", 0),
                    Err(e) => self.incidents.push(format!("wiping LB host {slot}: {e}")),
                }
            }
            _ => {
                if self.slots[slot].proc.running() && pending_updater.is_none() {
                    self.tally.updater_calls_before_restarts +=
                        updater_calls(self.slots[slot].addr).unwrap_or(0);
                    self.slots[slot].proc.terminate();
                    self.tally
                        .fault("updater-restarted", budget::UPDATER_OUTAGE_PER_LB * live);
                    *pending_updater = Some((slot, Instant::now() + self.rng.ms(200, 3000), true));
                }
            }
        }
    }

    fn restart_controller(&mut self) -> Result<(), String> {
        self.controller = start_controller(&self.bin, &self.dir, &self.kubeconfig)?;
        Ok(())
    }

    fn restart_updater(&mut self, i: usize) -> Result<(), String> {
        let slot = &self.slots[i];
        let proc = start_updater(
            &self.bin,
            &self.dir,
            &slot.nginx,
            (slot.addr, HOSTS[i]),
            self.low,
            &slot.log,
        )?;
        self.slots[i].proc = proc;
        Ok(())
    }

    fn updater_addrs(&self) -> Vec<SocketAddr> {
        self.slots.iter().map(|s| s.addr).collect()
    }

    /// POST and DELETE calls answered by every updater process so far.
    fn updater_calls_total(&self) -> Option<u64> {
        let mut n = self.tally.updater_calls_before_restarts;
        for s in &self.slots {
            n += updater_calls(s.addr)?;
        }
        Some(n)
    }

    /// Notes a child that exited without being asked to, and starts it again.
    fn watch_children(
        &mut self,
        pending_controller: bool,
        pending_updater: Option<usize>,
    ) -> Result<(), String> {
        if !pending_controller && let Some(st) = self.controller.exited() {
            self.incidents.push(format!(
                "controller-exited: the controller exited on its own ({st})"
            ));
            self.restart_controller()?;
        }
        for i in 0..self.slots.len() {
            if pending_updater == Some(i) {
                continue;
            }
            if let Some(st) = self.slots[i].proc.exited() {
                self.incidents.push(format!(
                    "updater-exited: updater {} exited on its own ({st})",
                    self.slots[i].addr
                ));
                self.restart_updater(i)?;
            }
        }
        Ok(())
    }

    fn api_writes(&self) -> (usize, usize, usize) {
        let mut writes = 0;
        let mut events = 0;
        let mut failed = 0;
        for r in self.api.requests() {
            if r.method == "GET" {
                continue;
            }
            if r.path.contains("/events") {
                events += 1;
            } else if r.status >= 300 || r.status == 0 {
                failed += 1;
            } else {
                writes += 1;
            }
        }
        (writes, events, failed)
    }

    fn print_logs(&self) {
        let mut logs: Vec<String> = vec!["controller.log".into()];
        logs.extend(self.slots.iter().map(|s| s.log.clone()));
        for name in logs {
            let lines = tail(&self.dir.join(&name), 25);
            if !lines.is_empty() {
                eprintln!("--- last lines of {name} ---");
                for l in lines {
                    eprintln!("{l}");
                }
            }
        }
        for s in &self.slots {
            let nginx = tail(&s.nginx.error_log, 10);
            if !nginx.is_empty() {
                eprintln!("--- last lines of {} ---", s.nginx.error_log.display());
                for l in nginx {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.controller.terminate();
        for s in &mut self.slots {
            s.proc.terminate();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One seed

/// Polls the invariants until they hold or `CONVERGE_LIMIT` passes; the last result and how long
/// it took.
fn converge(
    w: &mut World,
    window: (u16, u16),
) -> Result<(Result<(), Vec<String>>, Duration), String> {
    let from = Instant::now();
    let mut last: Result<(), Vec<String>> = Err(vec!["not checked".into()]);
    while from.elapsed() < CONVERGE_LIMIT {
        w.watch_children(false, None)?;
        last = check(&w.api, &w.updater_addrs(), window);
        if last.is_ok() {
            break;
        }
        nap(Duration::from_millis(250))?;
    }
    Ok((last, from.elapsed()))
}

/// Proves the checker can fail on this very world: with the controller down, a stray backend on
/// the updater and a new Ready node must be reported (leftover; targets and updater contents, when
/// a LoadBalancer Service forwards to every node). Then the controller comes back and must catch up. Returns what the
/// checker missed.
fn probe_checker(w: &mut World, window: (u16, u16)) -> Result<Vec<String>, String> {
    let mut missed = Vec::new();
    w.controller.kill9();
    let port = w.low + WINDOW - 1; // top of the window: lowest-free allocation never gets there
    let stray = json!({"backendName": "chaos_probe", "lbPort": port, "lbProtocol": "TCP",
        "upstreamServers": [{"host": "127.0.0.2", "port": 1}]});
    let posted = http_send(w.slots[0].addr, "POST", "/api/v1/lb", &stray)?;
    if posted != 200 {
        missed.push(format!(
            "checker probe: the updater answered {posted} to the stray backend"
        ));
    }
    let name = format!("node-{}", w.id());
    w.add_node(&name)?;
    w.tally.change(
        "probe-node-add",
        budget::PER_LB_SPEC_AND_STATUS * w.live_lbs(),
    );
    let found = check(&w.api, &w.updater_addrs(), window)
        .err()
        .unwrap_or_default();
    let mut want = vec!["updater-leftover: backend chaos_probe"];
    let cluster_policy = w
        .api
        .list("services", "")
        .iter()
        .any(|v| is_ours(v) && v["spec"]["externalTrafficPolicy"] != "Local");
    if cluster_policy {
        want.extend(["targets: ", "updater-differs: "]);
    }
    for prefix in want {
        if !found.iter().any(|f| f.starts_with(prefix)) {
            missed.push(format!(
                "checker probe: expected a {prefix:?} finding, got {found:?}"
            ));
        }
    }
    let deleted = http_send(
        w.slots[0].addr,
        "DELETE",
        "/api/v1/lb",
        &json!({"backendName": "chaos_probe"}),
    )?;
    if deleted != 200 {
        missed.push(format!(
            "checker probe: the updater answered {deleted} to deleting the stray backend"
        ));
    }
    w.restart_controller()?;
    Ok(missed)
}

/// Real traffic through nginx, loopback only: for up to `TRAFFIC_SAMPLE` TCP ports of each config's
/// LoadBalancers (picked by the seed), a server that answers with its own address listens on every
/// target (node address, nodePort), and three connections to the LB port on each host of the
/// config must each be answered by one of them. The failures, and how many connections were made.
fn traffic_check(w: &mut World) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut sent = 0;
    let lbs = w.api.list("loadbalancers", "");
    for cfg in CONFIGS {
        let view = match config_view(&w.api, cfg) {
            Ok(v) => v,
            Err(e) => {
                bad.push(format!("traffic: {e}"));
                continue;
            }
        };
        // (LoadBalancer, LB port, its targets)
        let mut candidates: Vec<(String, u16, &Value)> = Vec::new();
        for lb in lbs.iter().filter(|l| l["spec"]["configName"] == cfg) {
            let key = format!(
                "{}/{}",
                s(&lb["metadata"]["namespace"]),
                s(&lb["metadata"]["name"])
            );
            for (i, p) in lb["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if p["protocol"] != "UDP" {
                    let port = p["port"].as_u64().unwrap_or(0) as u16;
                    candidates.push((key.clone(), port, port_targets(&lb["spec"], i)));
                }
            }
        }
        let mut sampled = 0;
        while sampled < TRAFFIC_SAMPLE && !candidates.is_empty() {
            let (key, port, targets) = candidates.remove(w.rng.below(candidates.len()));
            let targets = upstreams_of(targets);
            // A target's address and port taken by something else on this box: sample another.
            let Ok(_servers) = targets
                .iter()
                .map(|(ip, p)| IdentServer::try_tcp_on(ip, *p, &format!("{ip}:{p}")))
                .collect::<Result<Vec<_>, _>>()
            else {
                continue;
            };
            sampled += 1;
            let want: BTreeSet<String> =
                targets.iter().map(|(ip, p)| format!("{ip}:{p}")).collect();
            for (host, _) in &view.hosts {
                let Ok(ip) = host.parse::<std::net::IpAddr>() else {
                    bad.push(format!(
                        "traffic: config {cfg} host {host} is not an address"
                    ));
                    continue;
                };
                for _ in 0..3 {
                    sent += 1;
                    let got = tcp_ident_at(SocketAddr::new(ip, port));
                    if !got.as_ref().is_some_and(|g| want.contains(g)) {
                        bad.push(format!(
                            "traffic: LoadBalancer {key} port {port} via {host}: answered by {got:?}, want one of {want:?}"
                        ));
                    }
                }
            }
        }
        if sampled == 0 {
            bad.push(format!(
                "traffic: no TCP port of config {cfg} to send traffic to"
            ));
        }
    }
    (bad, sent)
}

struct Outcome {
    summary: String,
    failures: Vec<String>,
}

/// Sets the flag when dropped: the monitor thread ends with the seed, however the seed ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn run_dir(seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!("paperlb-chaos-{}-{seed}", std::process::id()))
}

/// One seed; the run's directory goes away afterwards unless it failed and `keep` is set.
fn run_seed(seed: u64, duration: Duration, keep: bool) -> Result<Outcome, String> {
    let result = run_seed_inner(seed, duration);
    let failed = !matches!(&result, Ok(o) if o.failures.is_empty());
    if keep && failed {
        eprintln!("(kept {})", run_dir(seed).display());
    } else {
        let _ = std::fs::remove_dir_all(run_dir(seed));
    }
    result
}

fn run_seed_inner(seed: u64, duration: Duration) -> Result<Outcome, String> {
    let started = Instant::now();
    let mut w = World::new(seed)?;
    let window = (w.low, w.low + WINDOW - 1);

    // The cluster before the chaos: three ready nodes, the two configs, `MIN_SERVICES` Services.
    for i in 0..3 {
        w.add_node(&format!("node-{i}"))?;
    }
    // kube-proxy's health port for the updaters' checks (configs' `spec.healthCheck.port`), on
    // every loopback address the nodes have: checks pass, so upstream health stays put and a
    // steady state has no health figure to write.
    let healthz = paperlb::http::Server::bind(
        "0.0.0.0:0",
        paperlb::http::Limits::default(),
        None,
        |_: &paperlb::http::Request| paperlb::http::Response::text(200, "ok\n"),
    )
    .map_err(|e| format!("health endpoint: {e}"))?;
    let health_port = healthz.local_addr().port();
    for (i, name) in CONFIGS.iter().enumerate() {
        let updater_url = format!("http://{}", w.slots[i].addr);
        let mut spec = json!({"default": *name == CONFIG,
                 "healthCheck": {"port": health_port},
                 "portRange": {"low": w.low + RANGE_OFFSETS[i],
                               "high": w.low + RANGE_OFFSETS[i] + RANGE_SPANS[0]}});
        if *name == CONFIG {
            // Both LB hosts: every edge Service is on each (the Go form is the spare's).
            spec["hosts"] = (0..2)
                .map(|h| {
                    json!({"name": format!("lb-{h}"), "host": HOSTS[h],
                        "httpUpdaterURL": format!("http://{}/api/v1/lb", w.slots[h].addr)})
                })
                .collect();
        } else {
            spec["httpUpdaterURL"] = json!(updater_url);
            spec["host"] = json!(HOSTS[i]);
        }
        w.api
            .apply(
                "loadbalancerconfigs",
                json!({
                    "apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
                    "metadata": {"name": name, "namespace": NS},
                    "spec": spec,
                }),
            )
            .map_err(|e| format!("config {name}: {e}"))?;
    }
    // One in three on `spare`, a few with a second port.
    for i in 0..MIN_SERVICES {
        let ports = 1 + usize::from(w.rng.chance(25));
        let config = (i % 3 == 2).then_some(SPARE);
        w.create_service_with(ports, config, false)?;
        w.tally.change("svc-create", budget::SERVICE_CHANGE);
    }

    // The monitor samples the LoadBalancers every 20 ms until the end of the steady window.
    let monitor = Arc::new(Mutex::new(Monitor::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_monitor = StopOnDrop(stop.clone());
    let handle = {
        let (api, monitor, stop) = (w.api.clone(), monitor.clone(), stop.clone());
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                monitor
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sample(&api);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    // The chaos.
    let mut pending_controller: Option<Instant> = None;
    let mut pending_updater: Option<(usize, Instant, bool)> = None;
    let mut errors: Vec<String> = Vec::new();
    let chaos_end = Instant::now() + duration;
    let mut steps = 0usize;
    let trace = std::env::var_os("PAPERLB_CHAOS_TRACE").is_some();
    while Instant::now() < chaos_end && steps < 100_000 {
        steps += 1;
        let step_started = Instant::now();
        w.tally.last = "none";
        if w.rng.chance(65) {
            if let Err(e) = w.change() {
                // A change the fake refused (e.g. a race with a delete) is not a finding.
                errors.push(e);
            }
        } else {
            w.fault(&mut pending_controller, &mut pending_updater);
        }
        if trace {
            eprintln!(
                "chaos: step {steps} {} took {:?}",
                w.tally.last,
                step_started.elapsed()
            );
        }
        let pause = w.rng.ms(10, 250);
        nap(pause)?;
        if pending_controller.is_some_and(|t| Instant::now() >= t) {
            pending_controller = None;
            w.restart_controller()?;
        }
        if let Some((i, t, restart)) = pending_updater
            && Instant::now() >= t
        {
            pending_updater = None;
            if restart {
                w.restart_updater(i)?;
            } else {
                w.slots[i].proc.resume();
            }
        }
        w.watch_children(
            pending_controller.is_some(),
            pending_updater.map(|(i, _, _)| i),
        )?;
        if let Err(e) = w.config_return(false) {
            errors.push(e);
        }
    }

    // Stop the chaos: no more faults; everything runs, the config is back; enough Services.
    w.api.clear_faults();
    w.config_return(true)?;
    w.top_up()?;
    if pending_controller.take().is_some() {
        w.restart_controller()?;
    }
    if let Some((i, _, restart)) = pending_updater.take() {
        if restart {
            w.restart_updater(i)?;
        } else {
            w.slots[i].proc.resume();
        }
    }

    // Converge (bounded); then the checker's probe, and converge again after it.
    let mut failures: Vec<String> = Vec::new();
    let (mut last, took) = converge(&mut w, window)?;
    let converged = last.is_ok().then_some(took);
    if last.is_ok() {
        failures.extend(probe_checker(&mut w, window)?);
        last = converge(&mut w, window)?.0;
        if let Err(e) = &mut last {
            e.insert(
                0,
                "(after the checker probe: controller down, stray backend, new node)".into(),
            );
        }
    }
    let requests_at_convergence = w.api.requests().len();
    let mut connections = 0;
    let calls_at_convergence = w.updater_calls_total();
    match &last {
        Ok(()) => {
            // Steady state: nothing changes, so nothing may be written or applied.
            nap(STEADY)?;
            w.watch_children(false, None)?;
            let steady_writes: Vec<String> = w
                .api
                .requests()
                .into_iter()
                .skip(requests_at_convergence)
                .filter(|r| r.method != "GET")
                .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                .collect();
            if !steady_writes.is_empty() {
                failures.push(format!(
                    "steady-writes: {} API writes (Events included) in {}s of steady state after convergence, first ones: {:?}",
                    steady_writes.len(),
                    STEADY.as_secs(),
                    &steady_writes[..steady_writes.len().min(10)]
                ));
            }
            let calls_after = w.updater_calls_total();
            if calls_after != calls_at_convergence {
                failures.push(format!(
                    "steady-updater-calls: updater POST/DELETE count went from {calls_at_convergence:?} to {calls_after:?} in steady state"
                ));
            }
            // Still converged after the steady window.
            if let Err(e) = check(&w.api, &w.updater_addrs(), window) {
                failures.extend(e.into_iter().map(|e| format!("after steady state: {e}")));
            }
            let (bad, sent) = traffic_check(&mut w);
            connections = sent;
            failures.extend(bad);
        }
        Err(e) => {
            failures.push(format!(
                "convergence: not converged {}s after the chaos stopped; failing invariants:",
                CONVERGE_LIMIT.as_secs()
            ));
            failures.extend(e.iter().take(30).map(|e| format!("  {e}")));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let _ = handle.join();
    {
        let mut m = monitor.lock().unwrap_or_else(|p| p.into_inner());
        m.sample(&w.api);
        failures.extend(m.violations.iter().cloned());
    }
    failures.extend(w.incidents.iter().cloned());
    let per_config = w.services_per_config();
    let population = per_config.values().map(|v| v.0).sum::<usize>();
    if population < MIN_SERVICES || per_config.values().any(|v| v.0 == 0) {
        failures.push(format!(
            "population: {population} LoadBalancer Services at the end ({per_config:?} per config: Services, with TCP), want at least {MIN_SERVICES} on every config"
        ));
    }

    let (writes, events, failed) = w.api_writes();
    let budget = w.tally.budget + budget::SLACK;
    if writes > budget {
        failures.push(format!(
            "write-budget: {writes} API writes (Events apart) > budget {budget} (see `mod budget` in examples/chaos.rs)"
        ));
    }
    let calls = w.updater_calls_total().unwrap_or(0);
    let fmt_counts = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let samples = monitor.lock().map(|m| m.samples).unwrap_or(0);
    let summary = format!(
        "seed {seed}: {} in {:.1}s ({}s of chaos, {} steps, {} refused by the fake)\n  changes: {}\n  faults: {}\n  API writes {writes} (budget {budget}; Events {events}; failed/faulted {failed}), updater POST+DELETE {calls}\n  converged {} after the chaos; monitor samples {samples}; LoadBalancer Services {population} ({}); {connections} connections through nginx",
        if failures.is_empty() { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        duration.as_secs(),
        steps,
        errors.len(),
        fmt_counts(&w.tally.changes),
        fmt_counts(&w.tally.faults),
        converged.map_or_else(
            || "never".to_string(),
            |d| format!("{:.1}s", d.as_secs_f64())
        ),
        per_config
            .iter()
            .map(|(c, v)| format!("{c} {}", v.0))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if !failures.is_empty() {
        w.print_logs();
    }
    Ok(Outcome { summary, failures })
}

fn usage() -> &'static str {
    "usage: chaos [--duration SECS] [--latency off|etcd|read=MS,write=MS,jitter=PCT,writes=N] [--keep] SEED...   (see `make chaos`)"
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = install_signal_handler() {
        eprintln!("chaos: {e}");
        return ExitCode::FAILURE;
    }
    let mut duration = DEFAULT_DURATION;
    let mut keep = false;
    let mut seeds: Vec<u64> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            "--keep" => keep = true,
            "--latency" => match args.next().map(|v| Latency::parse(&v)) {
                Some(Ok(l)) => {
                    let _ = LATENCY.set(l);
                }
                Some(Err(e)) => {
                    eprintln!("chaos: {e}\n{}", usage());
                    return ExitCode::from(2);
                }
                None => {
                    eprintln!("chaos: --latency needs a profile\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--duration" => match args.next().and_then(|v| v.parse::<u64>().ok()) {
                Some(d) if (1..=3600).contains(&d) => duration = Duration::from_secs(d),
                _ => {
                    eprintln!("chaos: --duration needs 1 to 3600 seconds\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            other => match other.parse::<u64>() {
                Ok(s) => seeds.push(s),
                Err(_) => {
                    eprintln!("chaos: not a seed: {other:?}\n{}", usage());
                    return ExitCode::from(2);
                }
            },
        }
    }
    if seeds.is_empty() {
        seeds = vec![1, 2, 3];
    }
    let mut failed: Vec<u64> = Vec::new();
    for seed in seeds {
        println!(
            "==> chaos seed {seed} ({}s, API latency {})",
            duration.as_secs(),
            LATENCY.get().copied().unwrap_or_default()
        );
        match run_seed(seed, duration, keep) {
            Ok(o) => {
                println!("{}", o.summary);
                if !o.failures.is_empty() {
                    eprintln!("chaos: seed {seed} FAILED; invariants that do not hold:");
                    for f in &o.failures {
                        eprintln!("  {f}");
                    }
                    eprintln!(
                        "chaos: reproduce with `make chaos SEEDS={seed} DURATION={}`",
                        duration.as_secs()
                    );
                    failed.push(seed);
                }
            }
            Err(_) if INTERRUPTED.load(Ordering::SeqCst) => return ExitCode::from(130),
            Err(e) => {
                eprintln!("chaos: seed {seed}: could not run: {e}");
                failed.push(seed);
            }
        }
    }
    if failed.is_empty() {
        println!("==> chaos: every seed converged with every invariant holding");
        ExitCode::SUCCESS
    } else {
        eprintln!("==> chaos: FAILED seeds: {failed:?}");
        ExitCode::FAILURE
    }
}

/// The targets of the `i`th port of a stored LoadBalancer spec: the first port's are the Go field
/// `targets` when it lists none itself (paperlb writes them once).
fn port_targets(spec: &Value, i: usize) -> &Value {
    let own = &spec["ports"][i]["targets"];
    match (i, own.as_array().is_none_or(|a| a.is_empty())) {
        (0, true) => &spec["targets"],
        _ => own,
    }
}
