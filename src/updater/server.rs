//! The updater's routes: `POST|DELETE|GET /api/v1/lb`, `GET /healthz`, `GET /metrics`, bearer-token
//! auth on `/api/*` (`auth`), and `start`, which wires the applier and the HTTP(S) server together.
//!
//! Owns: mapping HTTP to applier calls and errors to `{"err"}` answers. Must not: write files or run
//! nginx itself (the applier does), or log the token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::Error;
use super::api::{DeleteRequest, LbRequest};
use super::apply::{self, Applier, Op};
use super::auth::TokenFile;
use super::nginx::{self, Nginx};
use super::tls;
use super::validate::{self, Policy};
use crate::http::{self, Limits, Request, Response};
use crate::metrics::{Counter, DEFAULT_BUCKETS, Histogram, Registry};

/// Everything `start` needs, resolved from flags by `cli` (or built by tests).
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub streams_dir: PathBuf,
    pub nginx_conf: PathBuf,
    pub nginx_bin: PathBuf,
    pub token_file: Option<PathBuf>,
    /// `--tls-cert` and `--tls-key`: serve HTTPS with this pair (reloaded when either changes).
    pub tls: Option<TlsFiles>,
    pub policy: Policy,
    /// `--worker-shutdown-timeout` in seconds (0: leave nginx's as it is); see
    /// [`apply::shutdown_timeout`].
    pub worker_shutdown_timeout: u64,
}

/// The certificate chain and private key files (PEM) of the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The running updater: shared by every request thread.
struct Updater {
    applier: Applier,
    nginx: Nginx,
    policy: Policy,
    token: Option<TokenFile>,
    registry: Registry,
    requests: Counter,
    seconds: Histogram,
}

/// Checks nginx.conf, starts the applier and binds the server. The caller keeps the `Server` (drop
/// or `shutdown` stops it, and the applier and prober with it); its metrics are `GET /metrics`.
pub fn start(s: &Settings) -> Result<http::Server, Error> {
    let conf_text =
        std::fs::read_to_string(&s.nginx_conf).map_err(|e| Error::io(&s.nginx_conf, e))?;
    if !s.streams_dir.is_dir() {
        return Err(Error::io(
            &s.streams_dir,
            std::io::Error::other("not a directory (create it, owned by the updater's user)"),
        ));
    }
    nginx::check_include(&s.nginx_conf, &conf_text, &s.streams_dir)?;
    let nginx = Nginx::new(s.nginx_bin.clone(), s.nginx_conf.clone(), &conf_text);
    let source = nginx::shutdown_timeout_source(&s.nginx_conf, &conf_text, &s.streams_dir);
    apply::shutdown_timeout(&s.streams_dir, &nginx, source, s.worker_shutdown_timeout)?;
    let registry = Registry::default();
    let n = nginx.clone();
    registry.gauge_fn(
        "paperlb_updater_nginx_old_workers",
        "nginx worker processes shutting down after a reload (still serving connections of an \
         older configuration, for at most worker_shutdown_timeout).",
        &[],
        move || match n.master_pid() {
            Ok(m) => vec![(vec![], nginx::shutting_down(m) as f64)],
            Err(_) => Vec::new(),
        },
    );
    let applier = Applier::start(s.streams_dir.clone(), nginx.clone(), &registry, &s.policy)?;
    let token = s.token_file.clone().map(TokenFile::load).transpose()?;
    let updater = Arc::new(Updater {
        applier,
        nginx,
        policy: s.policy.clone(),
        token,
        requests: registry.counter(
            "paperlb_updater_http_requests_total",
            "HTTP requests by route, method and status code.",
            &["route", "method", "code"],
        ),
        seconds: registry.histogram(
            "paperlb_updater_http_request_seconds",
            "Time to answer, by route (POST includes waiting for the reload).",
            &["route"],
            DEFAULT_BUCKETS,
        ),
        registry,
    });
    let handler = move |r: &Request| updater.handle(r);
    let config = (s.tls.as_ref().map(|f| tls::server_config(&f.cert, &f.key))).transpose()?;
    http::Server::bind(s.listen, Limits::default(), config, handler)
        .map_err(|e| Error::io(format!("--listen {}", s.listen), e))
}

impl Updater {
    /// Routes one request and records it.
    fn handle(&self, r: &Request) -> Response {
        let started = Instant::now();
        let route = match r.path.as_str() {
            "/api/v1/lb" | "/healthz" | "/metrics" => r.path.as_str(),
            p if p.starts_with("/api/") => "/api/other",
            _ => "other",
        };
        let resp = self.route(r, route);
        let method = match r.method.as_str() {
            m @ ("GET" | "HEAD" | "POST" | "DELETE" | "PUT" | "PATCH") => m,
            _ => "other",
        };
        self.requests
            .inc(&[route, method, &resp.status.to_string()]);
        self.seconds
            .observe(&[route], started.elapsed().as_secs_f64());
        resp
    }

    fn route(&self, r: &Request, route: &str) -> Response {
        if route.starts_with("/api/")
            && let Some(t) = &self.token
            && !t.allows(r.header("authorization"))
        {
            return Response::error(401, "missing or wrong bearer token")
                .with_header("WWW-Authenticate", "Bearer");
        }
        match (route, r.method.as_str()) {
            ("/api/v1/lb", "POST" | "DELETE") => self.write(r).unwrap_or_else(|e| e),
            ("/api/v1/lb", "GET") => {
                let listed = self.applier.list(&self.policy);
                listed.map_or_else(err, |l| Response::json(200, &l))
            }
            ("/healthz", "GET" | "HEAD") => self.healthz(),
            ("/metrics", "GET" | "HEAD") => Response::new(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self.registry.render(),
            ),
            ("/api/v1/lb", _) => method_not_allowed("GET, POST, DELETE"),
            ("/healthz" | "/metrics", _) => method_not_allowed("GET, HEAD"),
            _ => Response::error(
                404,
                &format!("no route for {}", validate::clip(&r.path, 64)),
            ),
        }
    }

    /// `POST` applies a backend, `DELETE` removes one; an Err is the answer already.
    fn write(&self, r: &Request) -> Result<Response, Response> {
        // No Content-Type check: the Go controller sends none. A trailing newline is whitespace.
        let op = if r.method == "POST" {
            let req: LbRequest = json_body(&r.body)?;
            let backend = validate::backend(&req, &self.policy).map_err(err)?;
            Op::Apply(Box::new(backend))
        } else {
            let req: DeleteRequest = json_body(&r.body)?;
            validate::backend_name(&req.backend_name).map_err(err)?;
            Op::Delete(req.backend_name)
        };
        let name = op.name().to_string();
        let status = self.applier.submit(op).map_err(err)?.as_str();
        let body = serde_json::json!({"status": status, "backendName": name});
        Ok(Response::json(200, &body))
    }

    fn healthz(&self) -> Response {
        match self.nginx.master_pid() {
            Err(e) => Response::error(503, &e.to_string()),
            Ok(_) if !self.applier.config_valid() => Response::error(
                503,
                "the stream configuration on disk did not pass nginx -t (see the updater's log)",
            ),
            Ok(pid) => Response::json(
                200,
                &serde_json::json!({"status": "ok", "nginxMasterPid": pid}),
            ),
        }
    }
}

/// A request body as `T`, else a 400 answer. Decoded from text, as every JSON in the binary is, so
/// serde's code for each type exists once (a byte-slice reader would be a second copy).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    std::str::from_utf8(body)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
        .map_err(|e| Response::error(400, &format!("malformed JSON body: {e}")))
}

fn err(e: impl Into<Error>) -> Response {
    let e = e.into();
    Response::error(e.status(), &e.to_string())
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(405, "method not allowed").with_header("Allow", allow)
}
