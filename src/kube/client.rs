//! The REST client: GET, paginated LIST, POST, PUT, merge-PATCH (also `/status`), DELETE and WATCH
//! requests against one API server, with explicit timeouts, credentials attached per request, and
//! error answers decoded into [`kube::Error`](super::Error).
//!
//! Owns: the ureq `Agent` and its connector chain (TCP → cancellable reads → our own rustls layer, so
//! `tls-server-name` and exec-provided client certificates work), the 401 refresh-and-retry-once rule,
//! body size caps, and per-verb/status request counts.
//! Must not: decide anything about objects, retry anything but a 401 once, or log credentials.

// kube::Error (shared, error.rs) carries an ApiStatus inline; boxing it is error.rs's call.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http::{self, Method, Response};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::time::Duration as UDuration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};
use ureq::{Agent, Body};

use super::auth::Credentials;
use super::config::{ClusterConfig, TlsSettings};
use super::error::snippet;
use super::watch::WatchStream;
use super::{ApiStatus, Error, tls};

/// Largest body we read for a successful answer (a LIST page of 500 big objects fits easily).
pub const MAX_BODY: u64 = 64 << 20;
/// Largest error body we read; the rest is dropped (a Status is a few hundred bytes).
pub const MAX_ERROR_BODY: u64 = 1 << 20;
/// How often a cancellable read wakes up to look at its cancel flag.
const CANCEL_TICK: Duration = Duration::from_millis(250);
/// Size of each of a connection's input and output buffers (ureq's default is 128 KiB). A TLS
/// connection has four (socket and TLS, each way), zero-filled on first use, and the controller keeps
/// five watches open plus a pool: at 128 KiB that was 512 KiB per connection, about 2.5 MiB of the
/// idle controller's RSS. A TLS record carries at most 16 KiB, so reads are no smaller than before.
/// A response head must fit in the input buffer: the apiserver's are about 1 KiB.
pub const CONNECTION_BUFFER: usize = 16 * 1024;

/// Under TLS, the socket side's two buffers: they only stage TLS records on their way to and from
/// rustls (which keeps its own), so they can be smaller than a record; the TLS side keeps
/// [`CONNECTION_BUFFER`] (a request and a response head must fit there). 24 KiB less per warm
/// connection: at 1k after a cold start the controller holds ~30 (pool, pairs of status patches,
/// watches): RSS 24,516 -> 23,352 KiB in `make bench` (bench/RESULTS.md, "Memory at 1k").
pub const SOCKET_BUFFER: usize = 4 * 1024;

/// Idle connections kept per API server: as many as the controller has requests in flight (its
/// I/O pool, the worker, the lease), so a burst reuses warm TLS connections instead of making new
/// ones (ureq keeps 3 by default). Watches hold their own connections while they stream.
pub const MAX_IDLE_CONNECTIONS: usize = 32;

/// Timeouts and identity of the client. `Default` is right for production.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Whole request, body included (not for watches).
    pub request_timeout: Duration,
    /// A watch that delivers no byte for this long is stalled: dropped and resumed.
    pub watch_idle_timeout: Duration,
    /// `User-Agent`; the text before `/` becomes the default fieldManager.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            watch_idle_timeout: Duration::from_secs(300),
            user_agent: format!("paperlb/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A kind of object on the API server and where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// API group, "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

pub const SERVICES: Resource = Resource::core("services", true);
pub const NODES: Resource = Resource::core("nodes", false);
pub const EVENTS: Resource = Resource::core("events", true);
pub const ENDPOINTSLICES: Resource = Resource {
    group: "discovery.k8s.io",
    version: "v1",
    plural: "endpointslices",
    namespaced: true,
};
pub const LEASES: Resource = Resource {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    namespaced: true,
};
pub const LOADBALANCERS: Resource = Resource {
    group: "lb.paperlb.com",
    version: "v1alpha1",
    plural: "loadbalancers",
    namespaced: true,
};
pub const LOADBALANCERCONFIGS: Resource = Resource {
    group: "lb.paperlb.com",
    version: "v1alpha1",
    plural: "loadbalancerconfigs",
    namespaced: true,
};
/// Watched by the controller (its namespace only) and read by `paperlb explain`: a config's
/// updater Secrets; and k3s ServiceLB's DaemonSets (explain).
pub const SECRETS: Resource = Resource::core("secrets", true);
pub const DAEMONSETS: Resource = Resource {
    group: "apps",
    version: "v1",
    plural: "daemonsets",
    namespaced: true,
};
pub const SELF_SUBJECT_ACCESS_REVIEWS: Resource = Resource {
    group: "authorization.k8s.io",
    version: "v1",
    plural: "selfsubjectaccessreviews",
    namespaced: false,
};

impl Resource {
    const fn core(plural: &'static str, namespaced: bool) -> Resource {
        Resource {
            group: "",
            version: "v1",
            plural,
            namespaced,
        }
    }

    /// `/api/v1/...` or `/apis/<group>/<version>/...`. `namespace: None` on a namespaced resource means
    /// all namespaces (lists and watches); it is ignored for cluster-scoped resources.
    pub fn path(
        &self,
        namespace: Option<&str>,
        name: Option<&str>,
        subresource: Option<&str>,
    ) -> String {
        let mut p = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if let (true, Some(ns)) = (self.namespaced, namespace) {
            p.push_str("/namespaces/");
            p.push_str(ns);
        }
        p.push('/');
        p.push_str(self.plural);
        if let Some(name) = name {
            p.push('/');
            p.push_str(name);
            if let Some(sub) = subresource {
                p.push('/');
                p.push_str(sub);
            }
        }
        p
    }
}

/// All items of a (paginated) LIST and the list's resourceVersion, to watch from.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectList<T> {
    pub resource_version: String,
    pub items: Vec<T>,
}

/// Selectors and page size of a LIST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// Page size; the client follows `continue` until the end. 0 = no limit parameter.
    pub limit: u32,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams {
            label_selector: None,
            field_selector: None,
            limit: 500,
        }
    }
}

/// One row of [`ClientStats::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCount {
    /// Kubernetes verb: get, list, create, update, patch, delete, watch.
    pub verb: &'static str,
    /// HTTP status, or 0 when no answer came (connect error, timeout).
    pub code: u16,
    pub count: u64,
}

/// Requests sent, by verb and answer. Shared by every clone of a client; read by the metrics page.
#[derive(Debug, Default)]
pub struct ClientStats {
    counts: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl ClientStats {
    fn record(&self, verb: &'static str, code: u16) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((verb, code)).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> Vec<RequestCount> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .map(|(&(verb, code), &count)| RequestCount { verb, code, count })
            .collect()
    }

    pub fn count(&self, verb: &str, code: u16) -> u64 {
        self.snapshot()
            .iter()
            .filter(|r| r.verb == verb && r.code == code)
            .map(|r| r.count)
            .sum()
    }
}

/// A client for one API server as one user. Cheap to clone; all clones share connections and stats.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Replaces `request_timeout` for this handle's plain requests (see [`Client::with_request_timeout`]).
    request_timeout: Option<Duration>,
}

struct Inner {
    server: String,
    namespace: Option<String>,
    opts: ClientOptions,
    credentials: Credentials,
    tls: TlsSettings,
    /// None for `http://` servers.
    name: Option<ServerName<'static>>,
    agent: RwLock<AgentState>,
    stats: Arc<ClientStats>,
}

/// The agent and the exec client identity it was built with: a new identity needs a new agent, so
/// that pooled connections made with the old certificate are not reused.
struct AgentState {
    agent: Agent,
    exec_identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.inner.server)
            .field("auth", &self.inner.credentials.method())
            .finish()
    }
}

/// What kind of call, for limits and timeouts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Plain,
    Watch,
}

impl Client {
    pub fn new(config: &ClusterConfig, opts: ClientOptions) -> Result<Client, Error> {
        let server = config.server.trim_end_matches('/').to_string();
        let name = if server.starts_with("https://") {
            Some(tls::server_name(&server, &config.tls)?)
        } else if server.starts_with("http://") {
            log::warn!(
                "API server {server} is plain http: requests and credentials are not encrypted"
            );
            None
        } else {
            return Err(Error::Config {
                what: format!("server {server:?}: must start with https:// (or http://)"),
            });
        };
        let credentials = Credentials::new(config);
        let exec_identity = credentials.exec_client_cert()?;
        let agent = build_agent(
            &server,
            &config.tls,
            name.as_ref(),
            exec_identity.as_ref(),
            &opts,
        )?;
        Ok(Client {
            inner: Arc::new(Inner {
                server,
                namespace: config.namespace.clone(),
                opts,
                credentials,
                tls: config.tls.clone(),
                name,
                agent: RwLock::new(AgentState {
                    agent,
                    exec_identity,
                }),
                stats: Arc::new(ClientStats::default()),
            }),
            request_timeout: None,
        })
    }

    /// A handle on the same connections, credentials and stats whose plain requests (not watches)
    /// each get `timeout` as their whole-request budget instead of `ClientOptions::request_timeout`.
    /// For callers with their own deadline, e.g. a Lease renewal bounded by the renew deadline.
    pub fn with_request_timeout(&self, timeout: Duration) -> Client {
        Client {
            inner: self.inner.clone(),
            request_timeout: Some(timeout),
        }
    }

    /// Base URL, e.g. `https://127.0.0.1:6443`.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    pub fn default_namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub fn stats(&self) -> Arc<ClientStats> {
        self.inner.stats.clone()
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let resp = self.send("get", Method::GET, path, None, Call::Plain)?;
        self.decode(resp, "GET", path)
    }

    /// LIST every page, following `continue`. A 410 on a continue token is returned as is: the caller
    /// relists from scratch (the token's inconsistent resume is never used).
    pub fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &ListParams,
    ) -> Result<ObjectList<T>, Error> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        // A server that keeps handing out tokens must not keep us here forever.
        for _page in 0..100_000 {
            let mut query = Vec::new();
            if params.limit > 0 {
                query.push(("limit", params.limit.to_string()));
            }
            if let Some(s) = &params.label_selector {
                query.push(("labelSelector", s.clone()));
            }
            if let Some(s) = &params.field_selector {
                query.push(("fieldSelector", s.clone()));
            }
            if let Some(t) = &token {
                query.push(("continue", t.clone()));
            }
            let url_path = with_query(path, &query);
            let resp = self.send("list", Method::GET, &url_path, None, Call::Plain)?;
            let page: ListPage<T> = self.decode(resp, "GET", path)?;
            let rv = page.metadata.resource_version;
            items.extend(page.items.unwrap_or_default());
            match page.metadata.continue_token.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => {
                    return Ok(ObjectList {
                        resource_version: rv,
                        items,
                    });
                }
            }
        }
        Err(Error::Decode {
            what: format!("GET {path}"),
            detail: "the server kept returning continue tokens".into(),
        })
    }

    /// POST.
    pub fn create<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let bytes = self.encode(body, "POST", path)?;
        let resp = self.send(
            "create",
            Method::POST,
            path,
            Some(("application/json", bytes)),
            Call::Plain,
        )?;
        self.decode(resp, "POST", path)
    }

    /// PUT. Only with an object read whole: fields we do not model would be erased.
    pub fn replace<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let bytes = self.encode(body, "PUT", path)?;
        let resp = self.send(
            "update",
            Method::PUT,
            path,
            Some(("application/json", bytes)),
            Call::Plain,
        )?;
        self.decode(resp, "PUT", path)
    }

    /// PATCH with `application/merge-patch+json` (`null` deletes, arrays replaced whole).
    pub fn merge_patch<T: DeserializeOwned>(
        &self,
        path: &str,
        patch: &serde_json::Value,
    ) -> Result<T, Error> {
        let bytes = self.encode(patch, "PATCH", path)?;
        let resp = self.send(
            "patch",
            Method::PATCH,
            path,
            Some(("application/merge-patch+json", bytes)),
            Call::Plain,
        )?;
        self.decode(resp, "PATCH", path)
    }

    /// DELETE. Answers the object (built-ins, or a CR with finalizers) or a Success `Status`.
    pub fn delete(&self, path: &str) -> Result<serde_json::Value, Error> {
        let resp = self.send("delete", Method::DELETE, path, None, Call::Plain)?;
        self.decode(resp, "DELETE", path)
    }

    /// Start a WATCH from `resource_version` with bookmarks. An HTTP error answer (410 included) is an
    /// `Err`; an in-stream ERROR event comes out of the stream.
    pub fn watch(
        &self,
        path: &str,
        resource_version: &str,
        timeout_seconds: u32,
    ) -> Result<WatchStream, Error> {
        let url_path = with_query(
            path,
            &[
                ("watch", "1".to_string()),
                ("allowWatchBookmarks", "true".to_string()),
                ("resourceVersion", resource_version.to_string()),
                ("timeoutSeconds", timeout_seconds.to_string()),
            ],
        );
        let resp = self.send("watch", Method::GET, &url_path, None, Call::Watch)?;
        let reader = resp.into_body().into_reader();
        Ok(WatchStream::new(
            Box::new(reader),
            format!("WATCH {path}"),
            self.inner.server.clone(),
            self.inner.opts.watch_idle_timeout,
        ))
    }

    fn encode(&self, body: &impl Serialize, method: &str, path: &str) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(body).map_err(|e| Error::Decode {
            what: format!("{method} {path} (request body)"),
            detail: e.to_string(),
        })
    }

    fn decode<T: DeserializeOwned>(
        &self,
        resp: Response<Body>,
        method: &str,
        path: &str,
    ) -> Result<T, Error> {
        let what = format!("{method} {path}");
        let bytes = match resp
            .into_body()
            .into_with_config()
            .limit(MAX_BODY)
            .read_to_vec()
        {
            Ok(b) => b,
            Err(ureq::Error::BodyExceedsLimit(n)) => {
                return Err(Error::Decode {
                    what,
                    detail: format!("answer larger than {n} bytes"),
                });
            }
            Err(e) => return Err(transport_error(&self.inner.server, &what, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            what,
            detail: format!(
                "{e} (body starts {:?})",
                snippet(&String::from_utf8_lossy(&bytes), 120)
            ),
        })
    }

    /// The agent to use now: rebuilt when the exec plugin hands out another client certificate.
    fn agent(&self) -> Result<Agent, Error> {
        let identity = self.inner.credentials.exec_client_cert()?;
        {
            let state = self.inner.agent.read().unwrap_or_else(|p| p.into_inner());
            if state.exec_identity == identity {
                return Ok(state.agent.clone());
            }
        }
        let inner = &self.inner;
        let agent = build_agent(
            &inner.server,
            &inner.tls,
            inner.name.as_ref(),
            identity.as_ref(),
            &inner.opts,
        )?;
        log::info!(
            "client certificate from the exec plugin changed: reconnecting to {}",
            inner.server
        );
        let mut state = self.inner.agent.write().unwrap_or_else(|p| p.into_inner());
        state.agent = agent.clone();
        state.exec_identity = identity;
        Ok(agent)
    }

    /// Send one request (twice after a 401), returning a 2xx/1xx answer or the error it carries.
    fn send(
        &self,
        verb: &'static str,
        method: Method,
        path_and_query: &str,
        body: Option<(&'static str, Vec<u8>)>,
        call: Call,
    ) -> Result<Response<Body>, Error> {
        let inner = &self.inner;
        let url = format!("{}{}", inner.server, path_and_query);
        let what = format!("{method} {path_and_query}");
        for attempt in 0..2 {
            let agent = self.agent()?;
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .header("Accept", "application/json")
                .header("User-Agent", &inner.opts.user_agent);
            if let Some(value) = inner.credentials.authorization()? {
                builder = builder.header("Authorization", value);
            }
            let result = match &body {
                Some((content_type, bytes)) => {
                    let req = builder
                        .header("Content-Type", *content_type)
                        .body(bytes.clone())
                        .map_err(|e| bad_request(&url, e))?;
                    run(&agent, req, call, &inner.opts, self.request_timeout)
                }
                None => {
                    let req = builder.body(()).map_err(|e| bad_request(&url, e))?;
                    run(&agent, req, call, &inner.opts, self.request_timeout)
                }
            };
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    inner.stats.record(verb, 0);
                    return Err(transport_error(&inner.server, &what, e));
                }
            };
            let code = resp.status().as_u16();
            inner.stats.record(verb, code);
            if code == 401 {
                // The token may have rotated (service-account file, exec plugin): re-read and retry once.
                inner.credentials.invalidate();
                if attempt == 0 {
                    log::debug!("{what}: 401 from {}, refreshing credentials", inner.server);
                    continue;
                }
                return Err(Error::Unauthorized {
                    server: inner.server.clone(),
                });
            }
            if code >= 300 {
                return Err(error_answer(resp));
            }
            return Ok(resp);
        }
        Err(Error::Unauthorized {
            server: inner.server.clone(),
        })
    }
}

fn run<B: ureq::AsSendBody>(
    agent: &Agent,
    req: http::Request<B>,
    call: Call,
    opts: &ClientOptions,
    request_timeout: Option<Duration>,
) -> Result<Response<Body>, ureq::Error> {
    match call {
        Call::Plain => match request_timeout {
            // The agent's global timeout is opts.request_timeout; this one request gets its own.
            Some(t) => {
                let req = agent.configure_request(req).timeout_global(Some(t)).build();
                agent.run(req)
            }
            None => agent.run(req),
        },
        Call::Watch => {
            // A watch lasts minutes: no total budget. The headers must still come within the
            // request timeout, and a body silent for watch_idle_timeout is a stalled stream.
            let req = agent
                .configure_request(req)
                .timeout_global(None)
                .timeout_recv_response(Some(opts.request_timeout))
                .timeout_per_read(Some(opts.watch_idle_timeout))
                .build();
            agent.run(req)
        }
    }
}

fn bad_request(url: &str, e: http::Error) -> Error {
    Error::Config {
        what: format!("invalid request URL {url:?}: {e}"),
    }
}

#[derive(serde::Deserialize)]
struct ListPage<T> {
    #[serde(default)]
    metadata: ListMeta,
    // `null` as well as absent must mean "no items".
    #[serde(default = "Option::default")]
    items: Option<Vec<T>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListMeta {
    resource_version: String,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// `path?k=v&…`, values percent-encoded (selectors carry `=`, `!`, `,`, spaces and parentheses).
fn with_query(path: &str, query: &[(&str, String)]) -> String {
    let mut out = path.to_string();
    let mut sep = if path.contains('?') { '&' } else { '?' };
    for (k, v) in query {
        out.push(sep);
        sep = '&';
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// Turn a >= 300 answer into an error: a JSON `Status` becomes `Error::Api`, anything else (the
/// text/plain `404 page not found`, APF's plain-text 429, an HTML page from a proxy) `Error::Http`.
fn error_answer(resp: Response<Body>) -> Error {
    let code = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut bytes = Vec::new();
    // A broken or slow error body must not hide the status we already have.
    let _ = resp
        .into_body()
        .into_reader()
        .take(MAX_ERROR_BODY)
        .read_to_end(&mut bytes);
    status_or_http(code, &bytes, retry_after)
}

fn status_or_http(code: u16, bytes: &[u8], retry_after: Option<Duration>) -> Error {
    let value: Option<serde_json::Value> = serde_json::from_slice(bytes).ok();
    if let Some(v) = value.filter(|v| v.get("kind").and_then(|k| k.as_str()) == Some("Status")) {
        if let Ok(mut status) = serde_json::from_value::<ApiStatus>(v) {
            if status.code == 0 {
                status.code = code;
            }
            status.retry_after = retry_after;
            return Error::Api(Box::new(status));
        }
    }
    Error::Http {
        code,
        body: snippet(String::from_utf8_lossy(bytes).trim(), 512),
        retry_after,
    }
}

/// Map a ureq failure to what the user can act on. `what` is `METHOD path`.
pub(crate) fn transport_error(server: &str, what: &str, e: ureq::Error) -> Error {
    match e {
        ureq::Error::Timeout(t) => Error::Timeout {
            server: server.to_string(),
            what: format!("{what} ({t})"),
        },
        ureq::Error::Other(inner) => {
            if let Some(f) = inner.downcast_ref::<TlsFailure>() {
                Error::Tls {
                    server: server.to_string(),
                    detail: f.0.clone(),
                }
            } else if inner.is::<Cancelled>() {
                Error::Connect {
                    server: server.to_string(),
                    detail: format!("{what}: cancelled (shutting down)"),
                }
            } else {
                Error::Connect {
                    server: server.to_string(),
                    detail: format!("{what}: {inner}"),
                }
            }
        }
        ureq::Error::Rustls(r) => Error::Tls {
            server: server.to_string(),
            detail: r.to_string(),
        },
        ureq::Error::Io(io) => {
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Error::Tls {
                    server: server.to_string(),
                    detail: r.to_string(),
                }
            } else if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                Error::Timeout {
                    server: server.to_string(),
                    what: what.to_string(),
                }
            } else {
                Error::Connect {
                    server: server.to_string(),
                    detail: format!("{what}: {io}"),
                }
            }
        }
        other => Error::Connect {
            server: server.to_string(),
            detail: format!("{what}: {other}"),
        },
    }
}

fn build_agent(
    server: &str,
    settings: &TlsSettings,
    name: Option<&ServerName<'static>>,
    exec_identity: Option<&(Vec<u8>, Vec<u8>)>,
    opts: &ClientOptions,
) -> Result<Agent, Error> {
    let tls = match name {
        Some(name) => Some(TlsConnector {
            config: tls::client_config(
                server,
                settings,
                exec_identity.map(|(c, k)| (c.as_slice(), k.as_slice())),
            )?,
            name: name.clone(),
        }),
        None => None,
    };
    let socket_buffer = if tls.is_some() {
        SOCKET_BUFFER
    } else {
        CONNECTION_BUFFER
    };
    let config = Agent::config_builder()
        .http_status_as_error(false)
        // The apiserver does not redirect; a redirect would come from something else on the path.
        .max_redirects(0)
        // kubeconfig's proxy-url is not supported; ignore *_PROXY rather than half-support it.
        .proxy(None)
        .user_agent(ureq::config::AutoHeaderValue::None)
        .accept(ureq::config::AutoHeaderValue::None)
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_global(Some(opts.request_timeout))
        // The socket's buffers (plain http: the only ones; https: see SOCKET_BUFFER).
        .input_buffer_size(socket_buffer)
        .output_buffer_size(socket_buffer)
        .max_idle_connections(MAX_IDLE_CONNECTIONS)
        .max_idle_connections_per_host(MAX_IDLE_CONNECTIONS)
        .max_response_header_size(CONNECTION_BUFFER)
        .build();
    let connector = ().chain(TcpConnector::default()).chain(CancelConnector).chain(TlsLayer(tls));
    Ok(Agent::with_parts(
        config,
        connector,
        DefaultResolver::default(),
    ))
}

// ---- cancellable reads -------------------------------------------------------------------------

thread_local! {
    /// The cancel flag of the watch runner on this thread. ureq does all I/O on the calling thread, so
    /// a transport can find the flag of the request it serves here.
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// While the guard lives, blocking reads of this client on this thread wake up every fraction of a
/// second and fail once `flag` is set: a watch thread stops promptly at shutdown without giving up
/// the idle timeout as its stall detector.
pub(crate) struct CancelGuard(Option<Arc<AtomicBool>>);

pub(crate) fn cancel_reads_on(flag: Arc<AtomicBool>) -> CancelGuard {
    CancelGuard(CANCEL.with(|c| c.borrow_mut().replace(flag)))
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        CANCEL.with(|c| *c.borrow_mut() = previous);
    }
}

#[derive(Debug)]
struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

#[derive(Debug)]
struct CancelConnector;

impl<In: Transport> Connector<In> for CancelConnector {
    type Out = Cancellable<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| Cancellable { inner }))
    }
}

/// Splits each read wait into short slices and checks the thread's cancel flag between them. Sits
/// under TLS so a cancelled read never leaves a TLS record half-read (the connection is dropped).
#[derive(Debug)]
struct Cancellable<T> {
    inner: T,
}

impl<T: Transport> Transport for Cancellable<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let Some(flag) = CANCEL.with(|c| c.borrow().clone()) else {
            return self.inner.await_input(timeout);
        };
        let full = timeout.for_read();
        let deadline = if full.after.is_not_happening() {
            None
        } else {
            Some(Instant::now() + *full.after)
        };
        // Bounded: each pass waits at least until the deadline approaches or the flag is set.
        loop {
            if flag.load(Ordering::Relaxed) {
                return Err(ureq::Error::Other(Box::new(Cancelled)));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(ureq::Error::Timeout(full.reason));
            }
            let slice = left.map_or(CANCEL_TICK, |l| l.min(CANCEL_TICK));
            let t = NextTimeout {
                after: UDuration::Exact(slice),
                reason: full.reason,
                per_read: None,
                per_write: timeout.per_write,
            };
            match self.inner.await_input(t) {
                Err(ureq::Error::Timeout(_)) => continue,
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

// ---- TLS ---------------------------------------------------------------------------------------

/// A handshake failure already phrased for the user (names the server name verified against), and
/// whether it is a refusal (rustls refused the peer's certificate or the handshake: an answer, not
/// an outage) rather than a connection lost mid-handshake.
#[derive(Debug)]
pub(crate) struct TlsFailure(pub(crate) String, pub(crate) bool);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsFailure {}

/// Shared with `updater::client`, whose https endpoints need the same verifier choices.
#[derive(Debug)]
pub(crate) struct TlsConnector {
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// `tls-server-name` or the URL's host; ureq itself can only verify against the URL's host.
    pub(crate) name: ServerName<'static>,
}

/// Wraps the connection in rustls for `https://`; passes plain `http://` through.
#[derive(Debug)]
pub(crate) struct TlsLayer(pub(crate) Option<TlsConnector>);

impl<In: Transport> Connector<In> for TlsLayer {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let Some(tls) = &self.0 else {
            return Err(ureq::Error::Other(Box::new(TlsFailure(
                "https URL but the client was configured for plain http".into(),
                false,
            ))));
        };
        let mut conn = ClientConnection::new(tls.config.clone(), tls.name.clone())?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        let name = tls.name.to_str();
        while conn.is_handshaking() {
            match conn.complete_io(&mut sock) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(ureq::Error::Other(Box::new(TlsFailure(
                        format!("connection closed during the TLS handshake with {name}"),
                        false,
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                        return Err(ureq::Error::Other(Box::new(TlsFailure(
                            tls::describe_handshake_error(r, &name),
                            true,
                        ))));
                    }
                    return Err(e.into());
                }
            }
        }
        // The TLS side's own buffers (the config's sizes are the socket's, see SOCKET_BUFFER).
        let buffers = LazyBuffers::new(CONNECTION_BUFFER, CONNECTION_BUFFER);
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // The timeout goes to the transport below unchanged: a TLS write may need to read too.
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let n = self.stream.read(input)?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// Loopback servers and throwaway certificates for the client's and the watcher's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use crate::kube::config::{AuthSource, ClusterConfig};

    /// One request as the server saw it.
    #[derive(Debug, Clone)]
    pub struct Req {
        pub method: String,
        pub target: String,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Req {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    pub enum Reply {
        /// Write these bytes (a whole HTTP response) and close.
        Raw(Vec<u8>),
        /// Wait, then write the bytes (or nothing if the server is stopped first) and close.
        After(Duration, Vec<u8>),
        /// Write the bytes, then keep the connection open and silent for up to this long.
        Hold(Vec<u8>, Duration),
    }

    pub type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

    /// A server thread on 127.0.0.1 answering each connection's first request with the handler.
    pub struct TestServer {
        pub url: String,
        pub seen: Arc<Mutex<Vec<Req>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    /// The longest any test server lives, whatever the test does.
    const SERVER_LIFETIME: Duration = Duration::from_secs(120);

    impl TestServer {
        pub fn http(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> TestServer {
            TestServer::start(None, Arc::new(handler))
        }

        pub fn tls(
            config: Arc<rustls::ServerConfig>,
            handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
        ) -> TestServer {
            TestServer::start(Some(config), Arc::new(handler))
        }

        fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Handler) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let scheme = if tls.is_some() { "https" } else { "http" };
            let stop = Arc::new(AtomicBool::new(false));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let thread = {
                let (stop, seen) = (stop.clone(), seen.clone());
                std::thread::spawn(move || accept_loop(listener, tls, handler, stop, seen))
            };
            TestServer {
                url: format!("{scheme}://127.0.0.1:{port}"),
                seen,
                stop,
                thread: Some(thread),
            }
        }

        pub fn requests(&self) -> Vec<Req> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn accept_loop(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Handler,
        stop: Arc<AtomicBool>,
        seen: Arc<Mutex<Vec<Req>>>,
    ) {
        let born = Instant::now();
        let mut conns = Vec::new();
        while !stop.load(Ordering::SeqCst) && born.elapsed() < SERVER_LIFETIME {
            match listener.accept() {
                Ok((sock, _)) => {
                    let (tls, handler, stop, seen) =
                        (tls.clone(), handler.clone(), stop.clone(), seen.clone());
                    conns.push(std::thread::spawn(move || {
                        let _ = serve(sock, tls, handler, stop, seen);
                    }));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        stop.store(true, Ordering::SeqCst);
        for c in conns {
            let _ = c.join();
        }
    }

    fn serve(
        sock: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Handler,
        stop: Arc<AtomicBool>,
        seen: Arc<Mutex<Vec<Req>>>,
    ) -> std::io::Result<()> {
        sock.set_nonblocking(false)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
        sock.set_write_timeout(Some(Duration::from_secs(10)))?;
        match tls {
            None => exchange(sock, &handler, &stop, &seen),
            Some(cfg) => {
                let conn = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
                exchange(rustls::StreamOwned::new(conn, sock), &handler, &stop, &seen)
            }
        }
    }

    fn exchange(
        mut s: impl Read + Write,
        handler: &Handler,
        stop: &AtomicBool,
        seen: &Mutex<Vec<Req>>,
    ) -> std::io::Result<()> {
        let req = read_request(&mut s)?;
        seen.lock().unwrap().push(req.clone());
        match handler(&req) {
            Reply::Raw(bytes) => s.write_all(&bytes)?,
            Reply::After(d, bytes) => {
                if wait(d, stop) {
                    s.write_all(&bytes)?;
                }
            }
            Reply::Hold(bytes, d) => {
                s.write_all(&bytes)?;
                s.flush()?;
                wait(d, stop);
            }
        }
        s.flush()
    }

    /// Sleep up to `d`, in small steps; false if the server was stopped first.
    fn wait(d: Duration, stop: &AtomicBool) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    fn read_request(s: &mut impl Read) -> std::io::Result<Req> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if buf.len() > 64 * 1024 || s.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let method = first.next().unwrap_or("").to_string();
        let target = first.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len.min(1 << 20)];
        s.read_exact(&mut body)?;
        Ok(Req {
            method,
            target,
            headers,
            body,
        })
    }

    /// A fixture response from tests/fixtures/apiserver, told to close the connection after it.
    pub fn fixture(name: &str) -> Vec<u8> {
        let raw = std::fs::read(format!(
            "{}/tests/fixtures/apiserver/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let mut out = raw[..eol + 2].to_vec();
        out.extend_from_slice(b"Connection: close\r\n");
        out.extend_from_slice(&raw[eol + 2..]);
        out
    }

    /// A made-up response with `Connection: close`.
    pub fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        out.into_bytes()
    }

    pub fn config(url: &str) -> ClusterConfig {
        ClusterConfig {
            server: url.to_string(),
            auth: AuthSource::Token("test-token".into()),
            namespace: Some("fixtures".into()),
            ..Default::default()
        }
    }

    /// A throwaway CA that signs server and client certificates.
    pub struct Pki {
        pub ca_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Pki {
        pub fn new(name: &str) -> Pki {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Pki {
                ca_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// Certificate PEM for `key` with these SANs (IPs become IP SANs).
        pub fn issue(&self, sans: &[&str], key: &KeyPair) -> String {
            let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
            let mut params = CertificateParams::new(names).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "paperlb-test");
            params.signed_by(key, &self.issuer).unwrap().pem()
        }

        /// A server config for these SANs; with `client_ca`, client certificates from it are required.
        pub fn server_config(
            &self,
            sans: &[&str],
            client_ca: Option<&Pki>,
        ) -> Arc<rustls::ServerConfig> {
            use rustls_pki_types::pem::PemObject;
            let key = KeyPair::generate().unwrap();
            let cert_pem = self.issue(sans, &key);
            let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key =
                rustls_pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                    .unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap();
            let builder = match client_ca {
                None => builder.with_no_client_auth(),
                Some(ca) => {
                    let mut roots = rustls::RootCertStore::empty();
                    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.ca_pem.as_bytes())
                    {
                        roots.add(c.unwrap()).unwrap();
                    }
                    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                        Arc::new(roots),
                        provider,
                    )
                    .build()
                    .unwrap();
                    builder.with_client_cert_verifier(verifier)
                }
            };
            Arc::new(builder.with_single_cert(certs, key).unwrap())
        }
    }

    // Throwaway test keys (openssl genrsa 2048 / ecparam prime256v1), each in two encodings, so that
    // PKCS#1 and SEC1 keys are exercised too: ring cannot generate RSA keys, rcgen writes PKCS#8 only.
    pub const RSA1: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEAn7ScbyqdPURXshwPHcOX3rybJNLK57hSlj6bQ7+SoEWjQVga\n\
FxfJdnXkoMLCg8bRhnIy0X2Cgtszyf5oRfsLDSOjzu9HhJZ6FQjcUY/PZc6HSXD8\n\
rK0fDVZXb+9bnNdLr8uwaDoviE39Dngdlq25Q92Z+DcfG9NhiZZMtAZJPOtlsSuZ\n\
055I82INslXCrD6tPiLrnkakZKn4ocZWJ6mbb5Cal7PCdwt3N8UWmRIUD9Cn8HYp\n\
Xg6/7Czs4jXsKWUyYTTjtz60xOHPcciYcmzw0Qelzrl3KbIMCg9Gq8rVIx27sgtU\n\
/xgc3daiyoe9vz7OER/v2CKXDXvyrDe87MUZHQIDAQABAoIBADdokKuq88HJX8me\n\
HYp8jUjMU+FLNvV9CD4zO2geY48yiekGWYrwiEeOsIMr/xN8G76TCVmQO4MN7SJk\n\
HyZEanmlB1SoxL3V/UYl/FZZ2CFgraRHzIpWSAM3FP/zYewA8DPuLeaDZXFbaXQn\n\
LVDVNgU7MYuiCCt9w4XaPQNqeOdm0WnJz3LZmEZUx1i7kTS07rDyFcWLo6jbeqNw\n\
+A5n9435DugC79iFrjh2FPP3VUg9cMTHTEJblXYm6BIM3VjeRKApwCC63S3rz/78\n\
jKnx9GrwhxP/rL7ol4rMzwzuMKt+MA902YUEQ1LETBYaBFV+G/bUJOa3tjOpQwMe\n\
wGu4F4sCgYEA25BYrxyLTqpXE4/d527Y264GA+yiH9KAloD/VjYOiTCFdXSj6wi9\n\
heuusWL/rzi8Sls5VbQXskRO1+aX1LdNMDRfR1aClCdK867etzgUstTXFuY3Ng7G\n\
U/uOj5hjvdKq1Uu4oiRlNk3W20tjqyjoTrl7IflGD4JfuGEtBDeJMicCgYEAujVS\n\
6sCzNTFhsnAILgMujibFbpSBanND/Pv7YFmMRwjRudJXvK+MuDrOp4aakWKjHKIi\n\
S3Iq5DnQG2xpB4XeadqSicF9FYLVIHz4+2HpsqVPjFonVH36jCuo06dmD0u7odHl\n\
xMwCJI85/sjnE/u2xecdeY9A/mwag6+R5sTBGRsCgYEAnOlHt716gTmTCVPjjiXV\n\
rQltGxjdtEhHxUdjM0VmlfyrJAm7q5iPeUm5iuPpPlwZlDole249ERVoEzukfkyR\n\
SUXkYaMdpqt+ETCD0gSuJi+dl6vnAScF7bb1ZwHNJjeMBusahCXmfyyZxBbYn9WY\n\
T8qWiO0QeLz/k1E/Tqgx0DkCgYBHcN33IyeeaOvKwiDhRmc+MrHc0y0z4jVbgnHX\n\
bYPcXQ3Z9VGkGtYqeKWAsKvsy6M5ARuXRp4eIfAuFVHWiQ3kHu/J2mpbLm8Gn+wG\n\
xnIbEEGM36nnSM4vqTCEw9zsUWoTk6xL7NmFnU3q6rl9eT2OgDVWxhdxhZhGnb2k\n\
hChxsQKBgBUF23jG4fgfCzDrsvEEPD5ESrJrozLZBq5gE9KiKbnOAuDAj1/18SHx\n\
XijIJtoovqb/QK71WxP9xtngcf8fJL9DAl41fPWUC6G7GRrkql3HpedCI+MbRf7q\n\
beXXZIMyP+bz5P78Z4PgBNkF4g+LCmpZiii7qZRLo8840g7xSuu5\n\
-----END RSA PRIVATE KEY-----\n\
";
    pub const RSA8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCftJxvKp09RFey\n\
HA8dw5fevJsk0srnuFKWPptDv5KgRaNBWBoXF8l2deSgwsKDxtGGcjLRfYKC2zPJ\n\
/mhF+wsNI6PO70eElnoVCNxRj89lzodJcPysrR8NVldv71uc10uvy7BoOi+ITf0O\n\
eB2WrblD3Zn4Nx8b02GJlky0Bkk862WxK5nTnkjzYg2yVcKsPq0+IuueRqRkqfih\n\
xlYnqZtvkJqXs8J3C3c3xRaZEhQP0KfwdileDr/sLOziNewpZTJhNOO3PrTE4c9x\n\
yJhybPDRB6XOuXcpsgwKD0arytUjHbuyC1T/GBzd1qLKh72/Ps4RH+/YIpcNe/Ks\n\
N7zsxRkdAgMBAAECggEAN2iQq6rzwclfyZ4dinyNSMxT4Us29X0IPjM7aB5jjzKJ\n\
6QZZivCIR46wgyv/E3wbvpMJWZA7gw3tImQfJkRqeaUHVKjEvdX9RiX8VlnYIWCt\n\
pEfMilZIAzcU//Nh7ADwM+4t5oNlcVtpdCctUNU2BTsxi6IIK33Dhdo9A2p452bR\n\
acnPctmYRlTHWLuRNLTusPIVxYujqNt6o3D4Dmf3jfkO6ALv2IWuOHYU8/dVSD1w\n\
xMdMQluVdiboEgzdWN5EoCnAILrdLevP/vyMqfH0avCHE/+svuiXiszPDO4wq34w\n\
D3TZhQRDUsRMFhoEVX4b9tQk5re2M6lDAx7Aa7gXiwKBgQDbkFivHItOqlcTj93n\n\
btjbrgYD7KIf0oCWgP9WNg6JMIV1dKPrCL2F666xYv+vOLxKWzlVtBeyRE7X5pfU\n\
t00wNF9HVoKUJ0rzrt63OBSy1NcW5jc2DsZT+46PmGO90qrVS7iiJGU2TdbbS2Or\n\
KOhOuXsh+UYPgl+4YS0EN4kyJwKBgQC6NVLqwLM1MWGycAguAy6OJsVulIFqc0P8\n\
+/tgWYxHCNG50le8r4y4Os6nhpqRYqMcoiJLcirkOdAbbGkHhd5p2pKJwX0VgtUg\n\
fPj7YemypU+MWidUffqMK6jTp2YPS7uh0eXEzAIkjzn+yOcT+7bF5x15j0D+bBqD\n\
r5HmxMEZGwKBgQCc6Ue3vXqBOZMJU+OOJdWtCW0bGN20SEfFR2MzRWaV/KskCbur\n\
mI95SbmK4+k+XBmUOiV7bj0RFWgTO6R+TJFJReRhox2mq34RMIPSBK4mL52Xq+cB\n\
JwXttvVnAc0mN4wG6xqEJeZ/LJnEFtif1ZhPypaI7RB4vP+TUT9OqDHQOQKBgEdw\n\
3fcjJ55o68rCIOFGZz4ysdzTLTPiNVuCcddtg9xdDdn1UaQa1ip4pYCwq+zLozkB\n\
G5dGnh4h8C4VUdaJDeQe78naalsubwaf7AbGchsQQYzfqedIzi+pMITD3OxRahOT\n\
rEvs2YWdTerquX15PY6ANVbGF3GFmEadvaSEKHGxAoGAFQXbeMbh+B8LMOuy8QQ8\n\
PkRKsmujMtkGrmAT0qIpuc4C4MCPX/XxIfFeKMgm2ii+pv9ArvVbE/3G2eBx/x8k\n\
v0MCXjV89ZQLobsZGuSqXcel50Ij4xtF/upt5ddkgzI/5vPk/vxng+AE2QXiD4sK\n\
almKKLuplEujzzjSDvFK67k=\n\
-----END PRIVATE KEY-----\n\
";
    pub const EC1: &str = "\
-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEIInSujYuN4QG/qGl2eyIgfv1agb0ZFMzoEHZx/SrHMJeoAoGCCqGSM49\n\
AwEHoUQDQgAEm2yPNBYmyg1aDjQKfu6lYuG3QVDqRvJSwxKdxBV//lMNqH3y53HO\n\
S0kvMalBmVWbwOsqfwDkH1TdgNY9soi0ew==\n\
-----END EC PRIVATE KEY-----\n\
";
    pub const EC8: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgidK6Ni43hAb+oaXZ\n\
7IiB+/VqBvRkUzOgQdnH9Kscwl6hRANCAASbbI80FibKDVoONAp+7qVi4bdBUOpG\n\
8lLDEp3EFX/+Uw2offLncc5LSS8xqUGZVZvA6yp/AOQfVN2A1j2yiLR7\n\
-----END PRIVATE KEY-----\n\
";
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use rcgen::KeyPair;

    use super::test_support::*;
    use super::*;

    fn client(url: &str) -> Client {
        Client::new(&config(url), ClientOptions::default()).unwrap()
    }

    fn quick() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(1),
            watch_idle_timeout: Duration::from_secs(1),
            user_agent: "paperlb-test/1".into(),
        }
    }

    fn tls_config(url: &str, ca_pem: &str) -> ClusterConfig {
        let mut c = config(url);
        c.tls.ca_pem = Some(ca_pem.as_bytes().to_vec());
        c
    }

    #[test]
    fn client_is_cheap_to_share_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Client>();
    }

    #[test]
    fn resource_paths_for_core_groups_namespaces_and_subresources() {
        assert_eq!(SERVICES.path(None, None, None), "/api/v1/services");
        assert_eq!(
            SERVICES.path(Some("ns"), Some("web"), Some("status")),
            "/api/v1/namespaces/ns/services/web/status"
        );
        assert_eq!(
            NODES.path(Some("ignored"), Some("n"), None),
            "/api/v1/nodes/n"
        );
        assert_eq!(
            LOADBALANCERS.path(Some("fixtures"), None, None),
            "/apis/lb.paperlb.com/v1alpha1/namespaces/fixtures/loadbalancers"
        );
        assert_eq!(
            SELF_SUBJECT_ACCESS_REVIEWS.path(None, None, None),
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            with_query("/p", &[("labelSelector", "app=web,tier!=db".into())]),
            "/p?labelSelector=app%3Dweb%2Ctier%21%3Ddb"
        );
        assert_eq!(with_query("/p?a=1", &[("b", "2".into())]), "/p?a=1&b=2");
    }

    #[test]
    fn get_sends_accept_user_agent_and_bearer_and_decodes() {
        let server = TestServer::http(|_| Reply::Raw(fixture("service-get.http")));
        let c = client(&server.url);
        let svc: serde_json::Value = c.get("/api/v1/namespaces/fixtures/services/dns").unwrap();
        assert_eq!(svc["metadata"]["name"], "dns");
        let req = &server.requests()[0];
        assert_eq!(req.header("accept"), Some("application/json"));
        assert!(req.header("user-agent").unwrap().starts_with("paperlb/"));
        assert_eq!(req.header("authorization"), Some("Bearer test-token"));
        assert_eq!(c.stats().count("get", 200), 1);
    }

    #[test]
    fn status_404_is_not_found_and_carries_the_status() {
        let server = TestServer::http(|_| Reply::Raw(fixture("error-service-not-found.http")));
        let e = client(&server.url)
            .get::<serde_json::Value>("/api/v1/namespaces/fixtures/services/web")
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(matches!(&e, Error::Api(s) if s.reason == "NotFound"));
    }

    #[test]
    fn text_404_for_an_unknown_group_is_http_not_found() {
        let server = TestServer::http(|_| Reply::Raw(fixture("error-unknown-group.http")));
        let e = client(&server.url)
            .get::<serde_json::Value>("/apis/nope.example.com/v1/things")
            .unwrap_err();
        assert!(e.is_not_found());
        assert!(
            matches!(&e, Error::Http { body, .. } if body == "404 page not found"),
            "{e:?}"
        );
    }

    #[test]
    fn plain_text_429_keeps_retry_after() {
        let server = TestServer::http(|_| {
            Reply::Raw(response(
                "429 Too Many Requests",
                &[("Content-Type", "text/plain"), ("Retry-After", "3")],
                "Too many requests, please try again later.\n",
            ))
        });
        let e = client(&server.url)
            .get::<serde_json::Value>("/api/v1/nodes")
            .unwrap_err();
        assert!(
            matches!(&e, Error::Http { code: 429, retry_after: Some(d), .. } if *d == Duration::from_secs(3)),
            "{e:?}"
        );
        assert!(e.is_transient());
    }

    #[test]
    fn status_504_with_retry_after_header_fills_the_status() {
        let server = TestServer::http(|_| Reply::Raw(fixture("error-list-rv-too-large.http")));
        let e = client(&server.url)
            .get::<serde_json::Value>("/api/v1/services")
            .unwrap_err();
        assert!(
            matches!(&e, Error::Api(s) if s.code == 504 && s.retry_after == Some(Duration::from_secs(1))),
            "{e:?}"
        );
    }

    #[test]
    fn html_502_is_an_http_error_with_a_snippet() {
        let server = TestServer::http(|_| {
            Reply::Raw(response(
                "502 Bad Gateway",
                &[("Content-Type", "text/html")],
                "<html><body>\n<h1>502 Bad Gateway</h1></body></html>",
            ))
        });
        let e = client(&server.url)
            .get::<serde_json::Value>("/api/v1/nodes")
            .unwrap_err();
        match &e {
            Error::Http {
                code: 502, body, ..
            } => assert!(body.contains("Bad Gateway") && !body.contains('\n')),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unauthorized_is_retried_once_then_reported() {
        let server = TestServer::http(|_| Reply::Raw(fixture("error-unauthorized.http")));
        let c = client(&server.url);
        let e = c.get::<serde_json::Value>("/api/v1/nodes").unwrap_err();
        assert!(
            matches!(&e, Error::Unauthorized { server } if server == c.server()),
            "{e:?}"
        );
        assert_eq!(server.requests().len(), 2);
        assert_eq!(c.stats().count("get", 401), 2);
    }

    #[test]
    fn unauthorized_then_ok_succeeds_on_the_retry() {
        let n = Arc::new(AtomicUsize::new(0));
        let server = {
            let n = n.clone();
            TestServer::http(move |_| {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    Reply::Raw(fixture("error-unauthorized.http"))
                } else {
                    Reply::Raw(fixture("node-get.http"))
                }
            })
        };
        let node: serde_json::Value = client(&server.url).get("/api/v1/nodes/node-a").unwrap();
        assert_eq!(node["metadata"]["name"], "node-a");
    }

    #[test]
    fn list_follows_continue_to_the_last_page() {
        let server = TestServer::http(|req| {
            if req.target.contains("continue=") {
                Reply::Raw(fixture("services-list-all-limit1-page2.http"))
            } else {
                Reply::Raw(fixture("services-list-all-limit1-page1.http"))
            }
        });
        let params = ListParams {
            limit: 1,
            ..Default::default()
        };
        let list: ObjectList<serde_json::Value> = client(&server.url)
            .list("/api/v1/services", &params)
            .unwrap();
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.resource_version, "1086");
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].target, "/api/v1/services?limit=1");
        assert_eq!(
            reqs[1].target,
            "/api/v1/services?limit=1&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTA4Niwic3RhcnQiOiIvZGVmYXVsdC9rdWJlcm5ldGVzXHUwMDAwIn0"
        );
    }

    #[test]
    fn list_with_an_expired_continue_token_is_gone() {
        let server = TestServer::http(|req| {
            if req.target.contains("continue=") {
                Reply::Raw(fixture("error-list-continue-expired.http"))
            } else {
                Reply::Raw(fixture("services-list-all-limit1-page1.http"))
            }
        });
        let e = client(&server.url)
            .list::<serde_json::Value>("/api/v1/services", &ListParams::default())
            .unwrap_err();
        assert!(e.is_gone(), "{e:?}");
    }

    #[test]
    fn chunked_list_decodes() {
        let server = TestServer::http(|_| Reply::Raw(fixture("services-list-all-rv0-limit1.raw")));
        let list: ObjectList<serde_json::Value> = client(&server.url)
            .list("/api/v1/services", &ListParams::default())
            .unwrap();
        assert_eq!(list.items.len(), 2);
    }

    #[test]
    fn undecodable_2xx_body_is_a_decode_error_naming_method_and_path() {
        let server = TestServer::http(|_| Reply::Raw(response("200 OK", &[], "{not json")));
        let e = client(&server.url)
            .get::<serde_json::Value>("/api/v1/nodes/x")
            .unwrap_err();
        assert!(
            matches!(&e, Error::Decode { what, .. } if what == "GET /api/v1/nodes/x"),
            "{e:?}"
        );
    }

    #[test]
    fn writes_send_json_and_merge_patch_content_types() {
        let server = TestServer::http(|req| match req.method.as_str() {
            "POST" => Reply::Raw(fixture("service-create.http")),
            "PATCH" => Reply::Raw(fixture("service-status-patch.http")),
            "PUT" => Reply::Raw(fixture("lease-update.http")),
            _ => Reply::Raw(fixture("service-delete.http")),
        });
        let c = client(&server.url);
        let path = SERVICES.path(Some("fixtures"), None, None);
        let _: serde_json::Value = c.create(&path, &serde_json::json!({"a": 1})).unwrap();
        let _: serde_json::Value = c
            .merge_patch(
                &format!("{path}/web/status"),
                &serde_json::json!({"status": {}}),
            )
            .unwrap();
        let _: serde_json::Value = c
            .replace(&format!("{path}/web"), &serde_json::json!({}))
            .unwrap();
        c.delete(&format!("{path}/web")).unwrap();
        let reqs = server.requests();
        assert_eq!(reqs[0].header("content-type"), Some("application/json"));
        assert_eq!(reqs[0].body, br#"{"a":1}"#);
        assert_eq!(
            reqs[1].header("content-type"),
            Some("application/merge-patch+json")
        );
        assert_eq!(reqs[2].method, "PUT");
        assert_eq!(reqs[3].method, "DELETE");
        let stats = c.stats();
        for verb in ["create", "patch", "update", "delete"] {
            assert_eq!(
                stats.count(verb, if verb == "create" { 201 } else { 200 }),
                1,
                "{verb}"
            );
        }
    }

    #[test]
    fn a_slow_server_is_a_timeout_not_a_hang() {
        let server =
            TestServer::http(|_| Reply::After(Duration::from_secs(30), fixture("node-get.http")));
        let c = Client::new(&config(&server.url), quick()).unwrap();
        let e = c
            .get::<serde_json::Value>("/api/v1/nodes/node-a")
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
        assert_eq!(c.stats().count("get", 0), 1);
    }

    #[test]
    fn a_per_handle_request_timeout_replaces_the_clients_in_both_directions() {
        // Shorter: the client's own 30 s would wait; the handle's 200 ms gives up.
        let slow =
            TestServer::http(|_| Reply::After(Duration::from_secs(30), fixture("node-get.http")));
        let c = Client::new(&config(&slow.url), ClientOptions::default()).unwrap();
        let e = c
            .with_request_timeout(Duration::from_millis(200))
            .get::<serde_json::Value>("/api/v1/nodes/node-a")
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
        // Same stats (and connections) as the client it came from.
        assert_eq!(c.stats().count("get", 0), 1);

        // Longer: quick()'s 1 s would time out on a 1.5 s answer; the handle's 20 s does not.
        let late = TestServer::http(|_| {
            Reply::After(Duration::from_millis(1500), fixture("node-get.http"))
        });
        let c = Client::new(&config(&late.url), quick()).unwrap();
        let node: serde_json::Value = c
            .with_request_timeout(Duration::from_secs(20))
            .get("/api/v1/nodes/node-a")
            .unwrap();
        assert_eq!(node["metadata"]["name"], "node-a");
        assert!(matches!(
            c.get::<serde_json::Value>("/api/v1/nodes/node-a"),
            Err(Error::Timeout { .. })
        ));
    }

    #[test]
    fn connection_refused_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = client(&format!("http://127.0.0.1:{port}"))
            .get::<serde_json::Value>("/version")
            .unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    }

    #[test]
    fn watch_streams_the_fixture_events_then_ends() {
        let server = TestServer::http(|_| Reply::Raw(fixture("services-watch.raw")));
        let c = client(&server.url);
        let mut s = c
            .watch("/api/v1/namespaces/fixtures/services", "1093", 20)
            .unwrap();
        let mut kinds = Vec::new();
        while let Some(e) = s.next_event::<serde_json::Value>().unwrap() {
            kinds.push(match e {
                crate::kube::watch::WatchEvent::Added { .. } => "ADDED",
                crate::kube::watch::WatchEvent::Modified { .. } => "MODIFIED",
                crate::kube::watch::WatchEvent::Deleted { .. } => "DELETED",
                crate::kube::watch::WatchEvent::Bookmark { .. } => "BOOKMARK",
                crate::kube::watch::WatchEvent::Error(_) => "ERROR",
            });
            assert!(kinds.len() < 100);
        }
        assert_eq!(
            kinds,
            ["ADDED", "MODIFIED", "MODIFIED", "DELETED", "BOOKMARK"]
        );
        assert_eq!(
            server.requests()[0].target,
            "/api/v1/namespaces/fixtures/services?watch=1&allowWatchBookmarks=true&resourceVersion=1093&timeoutSeconds=20"
        );
    }

    #[test]
    fn a_silent_watch_is_reported_as_stalled() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let server = TestServer::http(move |_| Reply::Hold(head.clone(), Duration::from_secs(30)));
        let c = Client::new(&config(&server.url), quick()).unwrap();
        let mut s = c.watch("/api/v1/nodes", "1", 300).unwrap();
        let e = s.next_event::<serde_json::Value>().unwrap_err();
        assert!(
            matches!(&e, Error::Timeout { what, .. } if what.contains("stalled")),
            "{e:?}"
        );
    }

    // ---- TLS over loopback -----------------------------------------------------------------------

    fn version_reply(_: &Req) -> Reply {
        Reply::Raw(fixture("version.http"))
    }

    #[test]
    fn tls_with_the_right_ca_and_an_ip_san_works() {
        let pki = Pki::new("ca");
        let server = TestServer::tls(pki.server_config(&["127.0.0.1"], None), version_reply);
        let c = Client::new(
            &tls_config(&server.url, &pki.ca_pem),
            ClientOptions::default(),
        )
        .unwrap();
        let v: serde_json::Value = c.get("/version").unwrap();
        assert_eq!(v["major"], "1");
        // A second request (pooled or not) works too.
        let _: serde_json::Value = c.get("/version").unwrap();
    }

    #[test]
    fn ca_bundle_with_several_certificates_works() {
        let pki = Pki::new("ca");
        let other = Pki::new("other");
        let server = TestServer::tls(pki.server_config(&["127.0.0.1"], None), version_reply);
        let bundle = format!("{}{}", other.ca_pem, pki.ca_pem);
        let c = Client::new(&tls_config(&server.url, &bundle), ClientOptions::default()).unwrap();
        let _: serde_json::Value = c.get("/version").unwrap();
    }

    #[test]
    fn wrong_ca_is_a_tls_error_naming_the_server() {
        let pki = Pki::new("ca");
        let wrong = Pki::new("wrong");
        let server = TestServer::tls(pki.server_config(&["127.0.0.1"], None), version_reply);
        let c = Client::new(
            &tls_config(&server.url, &wrong.ca_pem),
            ClientOptions::default(),
        )
        .unwrap();
        let e = c.get::<serde_json::Value>("/version").unwrap_err();
        match &e {
            Error::Tls { server: s, detail } => {
                assert_eq!(s, &server.url);
                assert!(detail.contains("not trusted for 127.0.0.1"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(&server.url));
    }

    #[test]
    fn tls_server_name_overrides_the_name_verified() {
        let pki = Pki::new("ca");
        let server = TestServer::tls(pki.server_config(&["apiserver.test"], None), version_reply);
        // By address: the certificate does not name 127.0.0.1.
        let c = Client::new(
            &tls_config(&server.url, &pki.ca_pem),
            ClientOptions::default(),
        )
        .unwrap();
        let e = c.get::<serde_json::Value>("/version").unwrap_err();
        assert!(
            matches!(&e, Error::Tls { detail, .. } if detail.contains("not valid for 127.0.0.1")),
            "{e:?}"
        );
        let mut cfg = tls_config(&server.url, &pki.ca_pem);
        cfg.tls.server_name = Some("apiserver.test".into());
        let c = Client::new(&cfg, ClientOptions::default()).unwrap();
        let _: serde_json::Value = c.get("/version").unwrap();
    }

    #[test]
    fn insecure_skip_verify_accepts_an_unknown_ca() {
        let pki = Pki::new("ca");
        let server = TestServer::tls(pki.server_config(&["elsewhere.test"], None), version_reply);
        let mut cfg = config(&server.url);
        cfg.tls.insecure = true;
        let c = Client::new(&cfg, ClientOptions::default()).unwrap();
        let _: serde_json::Value = c.get("/version").unwrap();
    }

    #[test]
    fn client_certificates_with_rsa_and_ecdsa_keys_in_every_encoding_authenticate() {
        let server_pki = Pki::new("server-ca");
        let client_pki = Pki::new("client-ca");
        let server = TestServer::tls(
            server_pki.server_config(&["127.0.0.1"], Some(&client_pki)),
            version_reply,
        );
        let generated = KeyPair::generate().unwrap();
        let cases: Vec<(&str, KeyPair, String)> = vec![
            (
                "RSA PKCS#1",
                KeyPair::from_pem(RSA8).unwrap(),
                RSA1.to_string(),
            ),
            (
                "RSA PKCS#8",
                KeyPair::from_pem(RSA8).unwrap(),
                RSA8.to_string(),
            ),
            (
                "ECDSA SEC1",
                KeyPair::from_pem(EC8).unwrap(),
                EC1.to_string(),
            ),
            (
                "ECDSA PKCS#8",
                KeyPair::from_pem(EC8).unwrap(),
                EC8.to_string(),
            ),
            (
                "ECDSA rcgen",
                KeyPair::from_pem(&generated.serialize_pem()).unwrap(),
                generated.serialize_pem(),
            ),
        ];
        for (what, key, key_pem) in cases {
            let mut cfg = tls_config(&server.url, &server_pki.ca_pem);
            cfg.tls.client_cert_pem = Some(client_pki.issue(&["paperlb"], &key).into_bytes());
            cfg.tls.client_key_pem = Some(key_pem.into_bytes());
            let c = Client::new(&cfg, ClientOptions::default()).unwrap();
            let r: Result<serde_json::Value, _> = c.get("/version");
            assert!(r.is_ok(), "{what}: {r:?}");
        }
        // Without a client certificate the server refuses us.
        let c = Client::new(
            &tls_config(&server.url, &server_pki.ca_pem),
            ClientOptions::default(),
        )
        .unwrap();
        assert!(c.get::<serde_json::Value>("/version").is_err());
    }

    #[test]
    fn mismatched_client_key_is_refused_before_connecting() {
        let pki = Pki::new("ca");
        let key = KeyPair::generate().unwrap();
        let mut cfg = tls_config("https://127.0.0.1:1", &pki.ca_pem);
        cfg.tls.client_cert_pem = Some(pki.issue(&["x"], &key).into_bytes());
        cfg.tls.client_key_pem = Some(EC1.as_bytes().to_vec());
        let e = Client::new(&cfg, ClientOptions::default()).unwrap_err();
        assert!(
            matches!(&e, Error::Tls { detail, .. } if detail.contains("do not belong together")),
            "{e:?}"
        );
    }

    #[test]
    fn kubeconfig_fixture_client_certificate_is_accepted_by_the_client() {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubeconfig/");
        let server_pki = Pki::new("server-ca");
        let server = TestServer::tls(
            server_pki.server_config(&["127.0.0.1"], None),
            version_reply,
        );
        let mut cfg = tls_config(&server.url, &server_pki.ca_pem);
        cfg.tls.client_cert_pem = Some(std::fs::read(format!("{base}client.crt")).unwrap());
        cfg.tls.client_key_pem = Some(std::fs::read(format!("{base}client.key")).unwrap());
        let c = Client::new(&cfg, ClientOptions::default()).unwrap();
        let _: serde_json::Value = c.get("/version").unwrap();
    }
}
