//! End-to-end tests of `paperlb nginx-updater` against a real nginx: the updater runs in-process
//! (its applier and HTTP server threads), nginx is a private instance, backends are small TCP/UDP
//! servers on 127.0.0.2 and 127.0.0.3 that answer with their own identity.

#[path = "../support/backends.rs"]
mod backends;
#[path = "../support/nginx.rs"]
mod nginx;
// The exposition-format checker; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../support/prom.rs"]
mod prom;

mod api;
mod balance;
mod binary;
mod client;
mod health;
mod ipv6;
mod listing;
mod netns;
mod reloads;
mod security;
mod traffic;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use paperlb::http::Server;
use paperlb::updater::api::ListResponse;
use paperlb::updater::client::UpdaterClient;
use paperlb::updater::server::{Settings, TlsFiles, start};
use paperlb::updater::validate::Policy;

pub use backends::{Backend, tcp_ident, tcp_ident_at};
pub use nginx::{Nginx, Wrapper, wait_until};

/// `GET /api/v1/lb` with every backend kept (the client hands them over one at a time).
pub fn list(c: &UpdaterClient) -> Result<ListResponse, paperlb::updater::Error> {
    let mut backends = Vec::new();
    let listed = c.list_each(|b| backends.push(b))?;
    Ok(ListResponse { backends, ..listed })
}

/// Long enough for a loaded 2-core machine; only ever an upper bound.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A private nginx plus an in-process updater on 127.0.0.1.
pub struct Env {
    pub server: Option<Server>,
    pub wrapper: Wrapper,
    pub token_file: Option<PathBuf>,
    /// With `Options::tls`: the certificate and key files the updater serves HTTPS with.
    pub tls: Option<TlsFiles>,
    /// With `Options::lb_address`: the updater's `--lb-address` (nginx listens only there).
    pub lb_addresses: Vec<IpAddr>,
    /// `--worker-shutdown-timeout` (0 here unless `Options` says: off, nginx's default).
    pub worker_shutdown_timeout: u64,
    pub nginx: Nginx,
}

#[derive(Default)]
pub struct Options {
    pub token: Option<&'static str>,
    /// Certificate chain and key PEM: the updater serves HTTPS (Env::call then does not work).
    pub tls: Option<(String, String)>,
    /// `--lb-address` (loopback addresses, comma-separated): LB ports listen there only.
    pub lb_address: Option<&'static str>,
    /// `--worker-shutdown-timeout` seconds; 0 (the default here): off.
    pub worker_shutdown_timeout: u64,
}

impl Env {
    pub fn start(opts: Options) -> Env {
        let nginx = Nginx::start();
        let wrapper = nginx.wrapper();
        let token_file = opts.token.map(|t| {
            let p = nginx.dir.join("token");
            std::fs::write(&p, format!("{t}\n")).unwrap();
            p
        });
        let tls = opts.tls.map(|(cert, key)| {
            let f = TlsFiles {
                cert: nginx.dir.join("tls.crt"),
                key: nginx.dir.join("tls.key"),
            };
            std::fs::write(&f.cert, cert).unwrap();
            std::fs::write(&f.key, key).unwrap();
            f
        });
        let mut env = Env {
            server: None,
            wrapper,
            token_file,
            tls,
            lb_addresses: (opts.lb_address.into_iter().flat_map(|a| a.split(',')))
                .map(|a| a.parse().expect("an IP address"))
                .collect(),
            worker_shutdown_timeout: opts.worker_shutdown_timeout,
            nginx,
        };
        env.restart_updater();
        env
    }

    pub fn settings(&self) -> Settings {
        Settings {
            listen: ([127, 0, 0, 1], 0).into(),
            streams_dir: self.nginx.streams.clone(),
            nginx_conf: self.nginx.conf.clone(),
            nginx_bin: self.wrapper.script.clone(),
            token_file: self.token_file.clone(),
            tls: self.tls.clone(),
            policy: Policy {
                lb_addresses: self.lb_addresses.clone(),
                ..Policy::default()
            },
            worker_shutdown_timeout: self.worker_shutdown_timeout,
        }
    }

    /// Stops the updater (if running) and starts a fresh one on the same directories.
    pub fn restart_updater(&mut self) {
        if let Some(s) = self.server.take() {
            drop(s);
        }
        self.server = Some(start(&self.settings()).expect("start updater"));
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// The API endpoint a client calls (`base_url` + `/api/v1/lb`).
    pub fn endpoint(&self) -> String {
        format!("{}/api/v1/lb", self.base_url())
    }

    pub fn post(&self, body: &str) -> (u16, String) {
        self.call("POST", "/api/v1/lb", body, &[])
    }

    pub fn delete(&self, name: &str) -> (u16, String) {
        self.call(
            "DELETE",
            "/api/v1/lb",
            &format!(r#"{{"backendName":"{name}"}}"#),
            &[],
        )
    }

    pub fn call(&self, method: &str, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
        let mut h: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        if let Some(t) = &self.token_file {
            let t = std::fs::read_to_string(t).unwrap();
            if !headers.iter().any(|x| x.starts_with("Authorization")) {
                h.push(format!("Authorization: Bearer {}", t.trim()));
            }
        }
        raw(self.addr(), method, path, body.as_bytes(), &h)
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.call("GET", "/metrics", "", &[]);
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn conf_file(&self, name: &str) -> PathBuf {
        self.nginx.streams.join(format!("{name}.conf"))
    }

    /// Where clients reach LB port `port` on this host: the first `--lb-address`, else 127.0.0.1.
    pub fn lb_addr(&self, port: u16) -> SocketAddr {
        let ip = (self.lb_addresses.first().copied()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
        (ip, port).into()
    }
}

/// One HTTP/1.1 exchange over a fresh connection, as the Go client does it (no Content-Type
/// unless given). Returns the status code and the body.
pub fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[String],
) -> (u16, String) {
    let mut c = TcpStream::connect_timeout(&addr, PATIENCE).unwrap();
    c.set_read_timeout(Some(PATIENCE * 4)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Accept-Encoding: gzip\r\n\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let _ = c.write_all(&bytes);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    parse_response(&out)
}

pub fn parse_response(out: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(out).to_string();
    let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (code, body)
}

/// A port no one listens on right now (nginx will bind it on all addresses, or on the
/// `--lb-address` only).
/// A port for an LB port or a test listener, free for TCP and UDP on every address now, taken from
/// 20000-32767: below the kernel's ephemeral range (32768 and up), so no connection's source port
/// and no listener on port 0 of a test running beside this one can take it before nginx binds it
/// (nginx binds LB ports on 0.0.0.0, which any listener on the same port blocks). Each port is
/// handed out once per test process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20000;
    const SPAN: u16 = 12768;
    // Spread over the range by process, so two test processes rarely walk the same ports.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 64) as u16 * 199;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (start + n) % SPAN;
        let tcp = TcpListener::bind(("0.0.0.0", port)).is_ok();
        let udp = std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok();
        if tcp && udp {
            return port;
        }
    }
    panic!("no free port in {LOW}-{}", LOW + SPAN - 1);
}

/// The Go controller's body for a backend with these upstreams.
pub fn go_body(name: &str, port: u16, proto: &str, upstreams: &[(&str, u16)]) -> String {
    let ups: Vec<String> = upstreams
        .iter()
        .map(|(h, p)| format!(r#"{{"host":"{h}","port":{p}}}"#))
        .collect();
    format!(
        "{{\"backendName\":\"{name}\",\"lbPort\":{port},\"lbProtocol\":\"{proto}\",\"upstreamServers\":[{}],\"proxyTimeoutSeconds\":0,\"proxyConnectTimeoutSeconds\":0}}\n",
        ups.join(",")
    )
}

/// Waits until connections to `port` get an answer satisfying `ok`.
pub fn wait_tcp(port: u16, ok: impl Fn(Option<&str>) -> bool) -> bool {
    wait_until(PATIENCE, || ok(tcp_ident(port).as_deref()))
}

/// Sends one datagram through the LB port and returns the answer.
pub fn udp_roundtrip(port: u16, msg: &str) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.send_to(msg.as_bytes(), ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}
