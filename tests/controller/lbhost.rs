//! A real LB host on loopback for the controller's end-to-end tests: a private nginx and our
//! updater in-process (optionally requiring a token), what the tests read back from it (the
//! backends it lists, its request and applier counters) and what they do to it (wipe its config).
//! Also the two small helpers every traffic test needs: the LB port of a LoadBalancer, and whether
//! traffic through nginx reaches a node upstream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use paperlb::http::{Limits, Server};
use paperlb::updater::api::ListedBackend;
use paperlb::updater::client::{ClientAuth, Timeouts, UpdaterClient};
use paperlb::updater::server::{Settings, Updater, start};
use paperlb::updater::validate::Policy;

use crate::harness::World;
use crate::support::backends::tcp_ident;
use crate::support::nginx::Nginx;
use crate::support::procs::http_get;

/// An LB host: a private nginx and our updater in-process; both stop on drop.
pub struct LbHost {
    server: Option<Server>,
    _updater: Arc<Updater>,
    pub nginx: Nginx,
    /// The updater's `--token-file`, when it requires a token.
    pub token_file: Option<PathBuf>,
}

impl LbHost {
    pub fn start() -> LbHost {
        LbHost::start_with_token(None)
    }

    /// With a token, the updater requires `Authorization: Bearer <token>` (read from a file).
    pub fn start_with_token(token: Option<&str>) -> LbHost {
        let nginx = Nginx::start();
        let token_file = token.map(|t| {
            let p = nginx.dir.join("token");
            std::fs::write(&p, format!("{t}\n")).expect("write token file");
            p
        });
        let settings = Settings {
            listen: "127.0.0.1:0".into(),
            streams_dir: nginx.streams.clone(),
            nginx_conf: nginx.conf.clone(),
            nginx_bin: nginx.wrapper().script.clone(),
            token_file: token_file.clone(),
            tls: None,
            policy: Policy::default(),
            limits: Limits::default(),
        };
        let (server, updater) = start(&settings).expect("start updater");
        LbHost {
            server: Some(server),
            _updater: updater,
            nginx,
            token_file,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .map(|s| s.local_addr())
            .expect("server")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
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
        self.client(token).list().map(|l| l.backends)
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
            s.shutdown();
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
