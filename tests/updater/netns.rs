//! IPv6 across network namespaces: an LB namespace and a node namespace joined by a veth pair
//! carrying ULA test addresses made here (fd9c:1b5a:7e11::1 and ::2, on the veth ends only, never
//! in the root namespace), so traffic stays on those veths inside this box. This test binary is
//! re-run inside each namespace (`ip netns exec`) as a helper: the LB helper runs nginx and the
//! updater dual stack (`--lb-address 127.0.0.1,fd9c:1b5a:7e11::1`), the node helper serves the
//! NodePort on its IPv6 address and is the client from across the veth. Needs root and `ip netns`;
//! without them the test says so and skips (the ::1 tests in `ipv6.rs` always run).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

const LB_V6: &str = "fd9c:1b5a:7e11::1";
const NODE_V6: &str = "fd9c:1b5a:7e11::2";
const ROLE: &str = "PAPERLB_NETNS_ROLE";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!("ip {}: {}", args.join(" "), err.trim()))
    }
}

/// The two namespaces; deleting them takes the veth pair (which lives only inside them) along.
struct Namespaces([String; 2]);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// A helper process; killed on drop if it is still running.
struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    fn spawn(ns: &str, role: &str, env: &[(&str, String)]) -> Helper {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(exe)
            .args(["netns::helper", "--exact", "--ignored", "--nocapture"])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn helper");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Helper {
            child,
            stdin,
            lines,
        }
    }

    /// The value of the helper's next `KEY value` line (None if it ended or went silent).
    fn value(&self, key: &str) -> Option<String> {
        let end = Instant::now() + PATIENCE * 2;
        while let Ok(line) = self
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            if let Some(v) = line.strip_prefix(key).and_then(|r| r.strip_prefix(' ')) {
                return Some(v.to_string());
            }
        }
        None
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to helper");
    }

    /// Waits (bounded) for the helper to exit; true when it succeeded.
    fn succeeded(&mut self) -> bool {
        self.stdin = None;
        wait_until(PATIENCE * 2, || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) && self
            .child
            .try_wait()
            .ok()
            .flatten()
            .is_some_and(|s| s.success())
    }
}

impl Drop for Helper {
    /// Closes its stdin first: the helper then ends by itself and stops its nginx; killed only if
    /// it does not (a killed helper would leave its nginx running).
    fn drop(&mut self) {
        self.stdin = None;
        wait_until(PATIENCE, || !matches!(self.child.try_wait(), Ok(None)));
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[test]
fn ipv6_lb_port_across_a_veth_to_an_ipv6_node_and_dual_stack_on_the_lb_host() {
    let id = std::process::id() % 100_000;
    let (lb, node) = (format!("plb6-lb-{id}"), format!("plb6-node-{id}"));
    if let Err(e) = ip(&["netns", "add", &lb]) {
        eprintln!(
            "SKIPPED: network namespaces are not permitted here ({e}); the ::1 tests cover IPv6"
        );
        return;
    }
    let _ns = Namespaces([lb.clone(), node.clone()]);
    let (vl, vn) = (format!("plb6l{id}"), format!("plb6n{id}"));
    let setup = [
        vec!["netns", "add", &node],
        vec![
            "-n", &lb, "link", "add", &vl, "type", "veth", "peer", "name", &vn, "netns", &node,
        ],
        vec![
            "-n",
            &lb,
            "addr",
            "add",
            "fd9c:1b5a:7e11::1/64",
            "dev",
            &vl,
            "nodad",
        ],
        vec![
            "-n",
            &node,
            "addr",
            "add",
            "fd9c:1b5a:7e11::2/64",
            "dev",
            &vn,
            "nodad",
        ],
        vec!["-n", &lb, "link", "set", &vl, "up"],
        vec!["-n", &node, "link", "set", &vn, "up"],
        vec!["-n", &lb, "link", "set", "lo", "up"],
        vec!["-n", &node, "link", "set", "lo", "up"],
    ];
    for args in &setup {
        ip(args).unwrap();
    }
    let mut node_helper = Helper::spawn(&node, "node", &[]);
    let up = node_helper.value("PORT").expect("the node's NodePort");
    let mut lb_helper = Helper::spawn(&lb, "lb", &[("PAPERLB_NETNS_UPSTREAM", up)]);
    let lb_port = lb_helper.value("LBPORT").expect("the LB helper served");
    node_helper.say(&format!("LBPORT {lb_port}"));
    assert_eq!(node_helper.value("SEEN").as_deref(), Some("lb-v4 node-v6"));
    assert!(node_helper.succeeded(), "node helper failed");
    lb_helper.say("DONE");
    assert!(lb_helper.succeeded(), "LB helper failed");
}

/// What answers a connection to `addr`, an address of this test's veths or loopback only.
fn ident(addr: SocketAddr) -> Option<String> {
    let ours = addr.ip().is_loopback() || addr.ip().to_string().starts_with("fd9c:1b5a:7e11::");
    assert!(
        ours,
        "traffic to loopback or this test's veths only: {addr}"
    );
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Waits until 8 connections to `addr` are answered by exactly `want`; prints and returns them.
fn seen(addr: SocketAddr, want: &str) -> String {
    let all = || {
        let mut v: Vec<String> = (0..8).filter_map(|_| ident(addr)).collect();
        v.sort();
        v.dedup();
        v.join(" ")
    };
    wait_until(PATIENCE, || all() == want);
    all()
}

fn read_line() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim().to_string()
}

/// Run by the test above inside a namespace (ignored otherwise; does nothing without the role).
#[test]
#[ignore]
fn helper() {
    match std::env::var(ROLE).as_deref() {
        Ok("node") => {
            let b = Backend::tcp_on(NODE_V6, 0, "node-v6");
            println!("PORT {}", b.port);
            let line = read_line();
            let port: u16 = line
                .strip_prefix("LBPORT ")
                .and_then(|p| p.parse().ok())
                .unwrap();
            // From the node's side of the veth to the LB host's IPv6 address.
            let lb: SocketAddr = (LB_V6.parse::<std::net::IpAddr>().unwrap(), port).into();
            println!("SEEN {}", seen(lb, "lb-v4 node-v6"));
        }
        Ok("lb") => {
            let up: u16 = std::env::var("PAPERLB_NETNS_UPSTREAM")
                .unwrap()
                .parse()
                .unwrap();
            let v4 = Backend::tcp("127.0.0.1", "lb-v4");
            let env = Env::start(Options {
                lb_address: Some("127.0.0.1,fd9c:1b5a:7e11::1"),
                ..Options::default()
            });
            let port = free_port();
            let ups = [(NODE_V6, up), ("127.0.0.1", v4.port)];
            let (code, resp) = env.post(&go_body("default_dual", port, "TCP", &ups));
            assert_eq!(code, 200, "{resp}");
            // The IPv4 listener reaches both families, the IPv6 node across the veth.
            let local: SocketAddr = ([127, 0, 0, 1], port).into();
            assert_eq!(seen(local, "lb-v4 node-v6"), "lb-v4 node-v6");
            println!("LBPORT {port}");
            assert_eq!(read_line(), "DONE");
        }
        _ => {}
    }
}
