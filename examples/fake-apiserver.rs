//! Runs the test suite's fake Kubernetes API server on its own: the "cluster" of `make demo`.
//!
//! ```text
//! cargo run --example fake-apiserver -- --listen 127.0.0.1:6443 --kubeconfig-out PATH [--ca-out PATH]
//!     [--token TOKEN] [--plain-http]
//!     [--latency off|etcd|read=MS,write=MS,jitter=PCT,writes=N]
//! ```
//! Writes a kubeconfig (CA data, server URL, admin token) once it listens, with the paperlb CRDs
//! installed; create Nodes, Services and the rest over its HTTP API as kubectl would. Logs each
//! request at debug level (`RUST_LOG=debug`). Stops on Ctrl-C or SIGTERM, and when stdin is a pipe
//! or terminal that reaches end of file (stdin from /dev/null is ignored, so `&` in a script works).

#![forbid(unsafe_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::process::ExitCode;

use support::fake_api::{FakeApi, FakeOptions, Latency};

const HELP: &str = "\
fake-apiserver: a fake kube-apiserver on loopback, for demos and manual tests

USAGE:
    fake-apiserver --kubeconfig-out PATH [--listen ADDR] [--ca-out PATH] [--token TOKEN] [--plain-http]
                   [--latency PROFILE]

OPTIONS:
    --listen ADDR          loopback address to listen on [default: 127.0.0.1:6443]
    --kubeconfig-out PATH  write a kubeconfig for the admin user here
    --ca-out PATH          also write the CA certificate (PEM) here
    --token TOKEN          admin bearer token [default: random]
    --plain-http           serve HTTP instead of HTTPS
    --latency PROFILE      simulated apiserver latency: off, etcd (5 ms reads, 15 ms writes, both
                           +-50 %, 16 writes in flight) or read=MS,write=MS,jitter=PCT,writes=N
                           [default: off]
    -h, --help             print this help
";

struct Args {
    listen: SocketAddr,
    kubeconfig_out: PathBuf,
    ca_out: Option<PathBuf>,
    token: Option<String>,
    plain_http: bool,
    latency: Latency,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut listen: SocketAddr = "127.0.0.1:6443".parse().expect("default address");
    let mut kubeconfig_out = None;
    let mut ca_out = None;
    let mut token = None;
    let mut plain_http = false;
    let mut latency = Latency::off();
    while let Some(flag) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                let v = value("--listen")?;
                listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
                if !listen.ip().is_loopback() {
                    return Err(format!("--listen {v}: only loopback addresses are allowed"));
                }
            }
            "--kubeconfig-out" => kubeconfig_out = Some(PathBuf::from(value("--kubeconfig-out")?)),
            "--ca-out" => ca_out = Some(PathBuf::from(value("--ca-out")?)),
            "--token" => token = Some(value("--token")?),
            "--plain-http" => plain_http = true,
            "--latency" => latency = Latency::parse(&value("--latency")?)?,
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    let kubeconfig_out = kubeconfig_out.ok_or("--kubeconfig-out is required (see --help)")?;
    Ok(Some(Args {
        listen,
        kubeconfig_out,
        ca_out,
        token,
        plain_http,
        latency,
    }))
}

/// Writes next to the target and renames, so a script polling for the file never reads half of it.
fn write_atomic(
    path: &PathBuf,
    write: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    write(&tmp).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Whether end of file on stdin means "stop" (a pipe or terminal), not "no stdin" (/dev/null).
fn stdin_can_signal() -> bool {
    if std::io::stdin().is_terminal() {
        return true;
    }
    std::fs::metadata("/dev/stdin")
        .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
        .unwrap_or(false)
}

fn run(args: Args) -> Result<(), String> {
    let api = FakeApi::try_start(FakeOptions {
        listen: args.listen,
        tls: !args.plain_http,
        admin_token: args.token,
        latency: args.latency,
        ..FakeOptions::default()
    })
    .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    if let Some(ca) = &args.ca_out {
        let pem = api.ca_pem();
        write_atomic(ca, |p| std::fs::write(p, &pem))?;
    }
    write_atomic(&args.kubeconfig_out, |p| api.write_kubeconfig(p))?;
    log::info!(
        "fake API server listening on {}; kubeconfig in {}; latency {}",
        api.url(),
        args.kubeconfig_out.display(),
        api.latency()
    );
    if stdin_can_signal() {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        log::info!("stdin closed; stopping");
    } else {
        // Ctrl-C and SIGTERM end the process with their default action.
        loop {
            std::thread::park();
        }
    }
    drop(api);
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fake-apiserver: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("fake-apiserver: {e}");
            ExitCode::from(2)
        }
    }
}
