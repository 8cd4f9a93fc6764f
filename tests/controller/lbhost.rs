//! A real LB host on loopback for the controller's end-to-end tests: a private nginx and our
//! updater in-process (optionally requiring a token, optionally with `--lb-address` so several
//! hosts serve the same LB port on one machine), what the tests read back from it (the backends it
//! lists, its request and applier counters, the traffic on its address) and what they do to it
//! (wipe its config). Also the two small helpers every traffic test needs: the LB port of a
//! LoadBalancer, and whether traffic through nginx reaches a node upstream.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use paperlb::http::Server;
use paperlb::updater::api::ListedBackend;
use paperlb::updater::client::{ClientAuth, Timeouts, UpdaterClient};
use paperlb::updater::server::{Settings, start};
use paperlb::updater::validate::Policy;

use crate::harness::World;
use crate::support::backends::{tcp_ident, tcp_ident_at};
use crate::support::nginx::Nginx;
use crate::support::procs::http_get;

/// An LB host: a private nginx and our updater in-process; both stop on drop.
pub struct LbHost {
    server: Option<Server>,
    /// What the updater was started with (the address it got), to start it again.
    settings: Settings,
    pub nginx: Nginx,
    /// The updater's `--token-file`, when it requires a token.
    pub token_file: Option<PathBuf>,
    /// The updater's `--lb-address`: nginx listens on the LB ports there only (else everywhere).
    pub lb_address: Option<IpAddr>,
    /// The updater serves HTTPS (`--tls-cert`, `--tls-key`).
    https: bool,
}

impl LbHost {
    pub fn start() -> LbHost {
        LbHost::start_with_token(None)
    }

    /// With a token, the updater requires `Authorization: Bearer <token>` (read from a file).
    pub fn start_with_token(token: Option<&str>) -> LbHost {
        LbHost::start_with(token, None)
    }

    /// With `--lb-address lb_address` (a loopback address such as `127.0.0.3`): its LB ports
    /// listen there only, so other hosts started on other addresses can serve the same ports.
    pub fn start_on(lb_address: &str) -> LbHost {
        LbHost::start_with(None, Some(lb_address))
    }

    /// Token and LB address both optional: `start_with(None, None)` is `start()`.
    pub fn start_with(token: Option<&str>, lb_address: Option<&str>) -> LbHost {
        LbHost::start_at("127.0.0.1:0", token, lb_address)
    }

    /// A host whose updater listens on `listen` (a host that comes back where it was: a fresh
    /// nginx with an empty streams directory).
    pub fn start_at(listen: &str, token: Option<&str>, lb_address: Option<&str>) -> LbHost {
        LbHost::start_full(listen, token, lb_address, None)
    }

    /// Serving HTTPS with this (certificate PEM, key PEM) pair.
    pub fn start_tls(pair: (&str, &str)) -> LbHost {
        LbHost::start_full("127.0.0.1:0", None, None, Some(pair))
    }

    fn start_full(
        listen: &str,
        token: Option<&str>,
        lb_address: Option<&str>,
        tls: Option<(&str, &str)>,
    ) -> LbHost {
        let lb_address: Option<IpAddr> = lb_address.map(|a| a.parse().expect("an IP address"));
        assert!(
            lb_address.is_none_or(|a| a.is_loopback()),
            "tests serve loopback only: {lb_address:?}"
        );
        let nginx = Nginx::start();
        let token_file = token.map(|t| {
            let p = nginx.dir.join("token");
            std::fs::write(&p, format!("{t}\n")).expect("write token file");
            p
        });
        let settings = Settings {
            listen: listen.parse().expect("an IP:PORT"),
            streams_dir: nginx.streams.clone(),
            nginx_conf: nginx.conf.clone(),
            nginx_bin: nginx.wrapper().script.clone(),
            token_file: token_file.clone(),
            tls: tls.map(|(cert, key)| {
                let files = paperlb::updater::server::TlsFiles {
                    cert: nginx.dir.join("tls.crt"),
                    key: nginx.dir.join("tls.key"),
                };
                std::fs::write(&files.cert, cert).expect("write certificate");
                std::fs::write(&files.key, key).expect("write key");
                files
            }),
            policy: Policy {
                lb_addresses: lb_address.into_iter().collect(),
                ..Policy::default()
            },
            worker_shutdown_timeout: 0,
        };
        let server = start(&settings).expect("start updater");
        let settings = Settings {
            listen: server.local_addr(),
            ..settings
        };
        LbHost {
            server: Some(server),
            settings,
            nginx,
            token_file,
            lb_address,
            https: tls.is_some(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.settings.listen
    }

    /// The updater stops answering (its listener closes); nginx keeps serving what it has.
    pub fn stop_updater(&mut self) {
        if let Some(s) = self.server.take() {
            drop(s);
        }
    }

    /// The updater starts again at the same address, over the same nginx and streams directory.
    pub fn restart_updater(&mut self) {
        self.server = Some(start(&self.settings).expect("restart updater"));
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr())
    }

    /// Where clients reach LB port `port` on this host: its `--lb-address`, else 127.0.0.1.
    pub fn lb_addr(&self, port: u16) -> SocketAddr {
        let ip = self.lb_address.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        (ip, port).into()
    }

    /// Connects to LB port `port` on this host and returns what the upstream said (None if
    /// refused or nothing was said).
    pub fn ident(&self, port: u16) -> Option<String> {
        tcp_ident_at(self.lb_addr(port))
    }

    /// Traffic through this host's nginx on `port` reaches one of the two node upstreams (as the
    /// free function `serves`, on this host's address).
    pub fn serves(&self, port: u16) -> bool {
        matches!(self.ident(port).as_deref(), Some("node-a" | "node-b"))
    }

    /// An unauthenticated GET (`/metrics`; `/api/v1/lb` answers 401 when a token is set).
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(
            self.addr(),
            path,
            "lbhost-test",
            8 << 20,
            Duration::from_secs(10),
        )
        .expect("GET from the updater")
    }

    /// A client of our own, as another tool on the host would write backends.
    pub fn client(&self, token: Option<&str>) -> UpdaterClient {
        let auth = ClientAuth {
            token: token.map(str::to_string),
            ..ClientAuth::default()
        };
        UpdaterClient::new(
            &format!("{}/api/v1/lb", self.url()),
            auth,
            Timeouts::default(),
        )
        .expect("updater client")
    }

    /// `GET /api/v1/lb` with this token, through the crate's client.
    pub fn backends(
        &self,
        token: Option<&str>,
    ) -> Result<Vec<ListedBackend>, paperlb::updater::Error> {
        let mut backends = Vec::new();
        (self.client(token).list_each(|b| backends.push(b))).map(|_| backends)
    }

    /// The backend names the updater lists, sorted.
    pub fn names(&self, token: Option<&str>) -> Vec<String> {
        let mut n: Vec<String> = self
            .backends(token)
            .expect("list backends")
            .into_iter()
            .map(|b| b.request.backend_name)
            .collect();
        n.sort();
        n
    }

    /// Sum of the updater's counter `metric` over its series whose labels contain every `label`.
    fn counted(&self, metric: &str, labels: &[&str]) -> u64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(metric) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Requests to `/api/v1/lb` the updater counted with this method (any code).
    pub fn requests(&self, method: &str) -> u64 {
        let method = format!("method=\"{method}\"");
        self.counted(
            "paperlb_updater_http_requests_total",
            &[&method, "route=\"/api/v1/lb\""],
        )
    }

    /// Requests on any route that the updater answered with this status code.
    pub fn requests_with_code(&self, code: u16) -> u64 {
        let code = format!("code=\"{code}\"");
        self.counted("paperlb_updater_http_requests_total", &[&code])
    }

    /// Applier outcomes counted so far (`deleted`, `applied`, ...).
    pub fn applies(&self, outcome: &str) -> u64 {
        let outcome = format!("outcome=\"{outcome}\"");
        self.counted("paperlb_updater_applies_total", &[&outcome])
    }

    /// The LB host loses its whole config: every file of the streams directory removed, nginx
    /// reloaded (it stops listening on every LB port).
    pub fn wipe(&self) {
        for e in std::fs::read_dir(&self.nginx.streams).expect("streams dir") {
            let _ = std::fs::remove_file(e.expect("entry").path());
        }
        let pid = self.nginx.master_pid().expect("nginx master");
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "reload nginx");
    }
}

impl Drop for LbHost {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            drop(s);
        }
        self.nginx.stop();
    }
}

/// The LB port of a LoadBalancer's first Service port.
pub fn lb_port(w: &World, name: &str) -> u16 {
    w.lb(name)
        .and_then(|lb| lb["spec"]["port"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .expect("LB port")
}

/// Traffic through nginx on the LB port reaches one of the two node upstreams.
pub fn serves(port: u16) -> bool {
    matches!(tcp_ident(port).as_deref(), Some("node-a" | "node-b"))
}

#[test]
fn hosts_started_on_their_own_address_serve_the_same_lb_port() {
    use crate::support::backends::Backend;
    use paperlb::updater::api::{LbRequest, Upstream};
    let hosts = [LbHost::start_on("127.0.0.2"), LbHost::start_on("127.0.0.3")];
    let nodes = [
        Backend::tcp("127.0.0.2", "node-a"),
        Backend::tcp("127.0.0.3", "node-b"),
    ];
    // Below the ephemeral range (a listener on port 0 elsewhere cannot hold it).
    let port = 9340;
    for (host, (node, ip)) in hosts
        .iter()
        .zip(nodes.iter().zip(["127.0.0.2", "127.0.0.3"]))
    {
        let req = LbRequest {
            backend_name: "default_web".into(),
            lb_port: port,
            lb_protocol: "TCP".into(),
            upstream_servers: vec![Upstream {
                host: ip.into(),
                port: node.port,
                ..Upstream::default()
            }],
            ..LbRequest::default()
        };
        host.client(None).apply(&req).expect("apply");
    }
    let both = || {
        hosts[0].ident(port).as_deref() == Some("node-a")
            && hosts[1].ident(port).as_deref() == Some("node-b")
    };
    assert!(
        crate::support::nginx::wait_until(Duration::from_secs(30), both),
        "{:?} {:?}",
        hosts[0].ident(port),
        hosts[1].ident(port)
    );
    assert!(hosts.iter().all(|h| h.serves(port)));
    assert_eq!(
        hosts[1].lb_addr(port),
        SocketAddr::from(([127, 0, 0, 3], port))
    );
    // Not on 127.0.0.1, where an LbHost without an address would listen.
    assert!(!serves(port));
    assert_eq!(hosts[0].names(None), ["default_web"]);
}
