//! The REST client: GET, paginated LIST, POST, PUT, merge-PATCH (also `/status`), DELETE and WATCH
//! requests against one API server, with explicit timeouts, credentials attached per request, and
//! error answers decoded into [`kube::Error`](super::Error).
//!
//! Owns: the 401 refresh-and-retry-once rule, rebuilding the transport when an exec plugin hands out
//! another client certificate, body size caps, and per-verb/status request counts. The connections
//! themselves (TCP, cancellable reads, TLS) are `transport`'s.
//! Must not: decide anything about objects, retry anything but a 401 once, or log credentials.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::http::{self, Method, Response};
use ureq::{Agent, Body};

use super::auth::Credentials;
use super::config::ClusterConfig;
use super::error::snippet;
use super::list_page;
use super::tls::{CertAndKey, TlsSettings};
use super::transport::{build_agent, transport_error};
use super::watch::stream::WatchStream;
use super::{ApiStatus, Error};

/// Largest body we read for a successful answer (a LIST page of 500 big objects fits easily).
pub const MAX_BODY: u64 = 64 << 20;
/// Read buffer of a LIST page decoded as it streams.
const STREAM_BUFFER: usize = 16 * 1024;
/// Largest error body we read; the rest is dropped (a Status is a few hundred bytes).
pub const MAX_ERROR_BODY: u64 = 1 << 20;
/// `User-Agent`; the text before `/` becomes the server's default fieldManager.
const USER_AGENT: &str = concat!("paperlb/", env!("CARGO_PKG_VERSION"));
/// Timeouts of the client. `Default` is right for production.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Whole request, body included (not for watches).
    pub request_timeout: Duration,
    /// A watch that delivers no byte for this long is stalled: dropped and resumed.
    pub watch_idle_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(30),
            watch_idle_timeout: Duration::from_secs(300),
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

pub const SERVICES: Resource = Resource::new("", "v1", "services", true);
pub const NODES: Resource = Resource::new("", "v1", "nodes", false);
pub const EVENTS: Resource = Resource::new("", "v1", "events", true);
pub const ENDPOINTSLICES: Resource =
    Resource::new("discovery.k8s.io", "v1", "endpointslices", true);
pub const LEASES: Resource = Resource::new("coordination.k8s.io", "v1", "leases", true);
pub const LOADBALANCERS: Resource =
    Resource::new("lb.paperlb.com", "v1alpha1", "loadbalancers", true);
pub const LOADBALANCERCONFIGS: Resource =
    Resource::new("lb.paperlb.com", "v1alpha1", "loadbalancerconfigs", true);
/// Watched by the controller (its namespace only) and read by `paperlb explain`: a config's
/// updater Secrets; and k3s ServiceLB's DaemonSets (explain).
pub const SECRETS: Resource = Resource::new("", "v1", "secrets", true);
pub const DAEMONSETS: Resource = Resource::new("apps", "v1", "daemonsets", true);
pub const SELF_SUBJECT_ACCESS_REVIEWS: Resource = Resource::new(
    "authorization.k8s.io",
    "v1",
    "selfsubjectaccessreviews",
    false,
);

impl Resource {
    pub const fn new(
        group: &'static str,
        version: &'static str,
        plural: &'static str,
        namespaced: bool,
    ) -> Resource {
        Resource {
            group,
            version,
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
            p = format!("{p}/namespaces/{ns}");
        }
        p = format!("{p}/{}", self.plural);
        if let Some(name) = name {
            p = format!("{p}/{name}");
            if let Some(sub) = subresource {
                p = format!("{p}/{sub}");
            }
        }
        p
    }

    /// What RBAC must grant to `verb` this resource (its `/subresource` when not empty), as
    /// `paperlb check` and `paperlb explain` say it: `patch services/status in all namespaces`,
    /// `list loadbalancerconfigs.lb.paperlb.com in namespace paperlb-system`.
    pub fn access(&self, verb: &str, subresource: &str, namespace: Option<&str>) -> String {
        let dot = if self.group.is_empty() { "" } else { "." };
        let slash = if subresource.is_empty() { "" } else { "/" };
        let scope = namespace.map_or("all namespaces".into(), |ns| format!("namespace {ns}"));
        let (plural, group) = (self.plural, self.group);
        format!("{verb} {plural}{dot}{group}{slash}{subresource} in {scope}")
    }
}

/// All items of a (paginated) LIST and the list's resourceVersion, to watch from.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectList<T> {
    pub resource_version: String,
    pub items: Vec<T>,
}

/// Selectors of a LIST.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

/// Objects per LIST page (client-go's reflector pages by 500 too); the client follows `continue`
/// until the end.
const PAGE_SIZE: &str = "500";

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

    /// Requests so far by (Kubernetes verb: get, list, create, update, patch, delete, watch; HTTP
    /// status, or 0 when no answer came: connect error, timeout).
    pub fn snapshot(&self) -> BTreeMap<(&'static str, u16), u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
    opts: ClientOptions,
    credentials: Credentials,
    tls: TlsSettings,
    /// Built by `Client::new`; None only inside it.
    agent: RwLock<Option<AgentState>>,
    stats: Arc<ClientStats>,
}

/// The agent and the exec client identity it was built with: a new identity needs a new agent, so
/// that pooled connections made with the old certificate are not reused.
struct AgentState {
    agent: Agent,
    exec_identity: Option<CertAndKey>,
}

/// For tests' `unwrap_err`: the server and the auth method, never a credential.
#[cfg(test)]
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
        if server.starts_with("http://") {
            log::warn!(
                "API server {server} is plain http: requests and credentials are not encrypted"
            );
        } else if !server.starts_with("https://") {
            return Err(Error::Config {
                what: format!("server {server:?}: must start with https:// (or http://)"),
            });
        } else {
            // Before any credential: a bad name is the error, not a failing exec plugin's.
            super::tls::server_name(&server, &config.tls)?;
        }
        let client = Client {
            inner: Arc::new(Inner {
                server,
                opts,
                credentials: Credentials::new(config),
                tls: config.tls.clone(),
                agent: RwLock::new(None),
                stats: Arc::new(ClientStats::default()),
            }),
            request_timeout: None,
        };
        // Built now, so a bad TLS setting or a failing exec plugin is an error here.
        client.agent()?;
        Ok(client)
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

    pub fn stats(&self) -> Arc<ClientStats> {
        self.inner.stats.clone()
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call("get", Method::GET, path, None)
    }

    /// LIST every page, following `continue`, each item decoded by `decode` (`|t|
    /// serde_json::from_str(t)`, or the watch runner's type-erased objects). A 410 on a continue
    /// token is returned as is: the caller relists from scratch (the token's inconsistent resume is
    /// never used).
    pub fn list<T>(
        &self,
        path: &str,
        params: &ListParams,
        decode: fn(&str) -> serde_json::Result<T>,
    ) -> Result<ObjectList<T>, Error> {
        let mut items = Vec::new();
        let resource_version = self.list_each(path, params, &mut |text| {
            items.push(decode(text)?);
            Ok(())
        })?;
        Ok(ObjectList {
            resource_version,
            items,
        })
    }

    /// Every page's items as text to `item`, in order; the resourceVersion of the last page. Not
    /// generic, so the paging is in the binary once whatever the items become.
    fn list_each(
        &self,
        path: &str,
        params: &ListParams,
        item: &mut dyn FnMut(&str) -> serde_json::Result<()>,
    ) -> Result<String, Error> {
        let mut token: Option<String> = None;
        // A server that keeps handing out tokens must not keep us here forever.
        for _page in 0..100_000 {
            let query = [
                ("limit", Some(PAGE_SIZE.to_string())),
                ("labelSelector", params.label_selector.clone()),
                ("fieldSelector", params.field_selector.clone()),
                ("continue", token.take()),
            ];
            let url_path = with_query(path, &query);
            let resp = self.send("list", Method::GET, &url_path, None, Call::Plain)?;
            // The page from the socket as it arrives (`list_page`): never held whole. Read to the
            // end, so the connection goes back to the pool.
            let reader = resp.into_body().into_with_config().limit(MAX_BODY).reader();
            let reader = std::io::BufReader::with_capacity(STREAM_BUFFER, reader);
            let page = list_page::read(reader, item).map_err(|e| match e {
                // The same kinds as a body read whole (`call`): too large, timeout, TLS, cancel.
                list_page::Error::Io(e) => self.body_error(&format!("GET {path}"), e.into()),
                list_page::Error::Json(detail) => Error::Decode {
                    what: format!("GET {path}"),
                    detail,
                },
            })?;
            match page.metadata.continue_token.filter(|c| !c.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(page.metadata.resource_version),
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
        self.write("create", Method::POST, "application/json", path, body)
    }

    /// PUT. Only with an object read whole: fields we do not model would be erased.
    pub fn replace<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        self.write("update", Method::PUT, "application/json", path, body)
    }

    /// PATCH with `application/merge-patch+json` (`null` deletes, arrays replaced whole).
    pub fn merge_patch<T: DeserializeOwned>(
        &self,
        path: &str,
        patch: &serde_json::Value,
    ) -> Result<T, Error> {
        self.write(
            "patch",
            Method::PATCH,
            "application/merge-patch+json",
            path,
            patch,
        )
    }

    /// DELETE. Answers the object (built-ins, or a CR with finalizers) or a Success `Status`, as
    /// JSON text for the caller to decode.
    pub fn delete(&self, path: &str) -> Result<Box<serde_json::value::RawValue>, Error> {
        self.call("delete", Method::DELETE, path, None)
    }

    /// Start a WATCH from `resource_version` with bookmarks, ended by the server after
    /// `timeout_seconds` ([`server_timeout`]). An HTTP error answer (410 included) is an `Err`; an
    /// in-stream ERROR event comes out of the stream.
    pub fn watch(
        &self,
        path: &str,
        resource_version: &str,
        timeout_seconds: u32,
    ) -> Result<WatchStream, Error> {
        let timeout_seconds = server_timeout(timeout_seconds, self.inner.opts.watch_idle_timeout);
        let url_path = with_query(
            path,
            &[
                ("watch", Some("1".to_string())),
                ("allowWatchBookmarks", Some("true".to_string())),
                ("resourceVersion", Some(resource_version.to_string())),
                ("timeoutSeconds", Some(timeout_seconds.to_string())),
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

    /// Send a JSON body and decode the answer.
    fn write<T: DeserializeOwned>(
        &self,
        verb: &'static str,
        method: Method,
        content_type: &'static str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Decode {
            what: format!("{method} {path} (request body)"),
            detail: e.to_string(),
        })?;
        self.call(verb, method, path, Some((content_type, bytes)))
    }

    /// A plain request whose answer is decoded whole into `T`.
    fn call<T: DeserializeOwned>(
        &self,
        verb: &'static str,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<T, Error> {
        let what = format!("{method} {path}");
        let resp = self.send(verb, method, path, body, Call::Plain)?;
        let body = resp.into_body().into_with_config().limit(MAX_BODY);
        let bytes = body.read_to_vec().map_err(|e| self.body_error(&what, e))?;
        // From text, as the watch decodes: one copy of serde's code per type in the binary.
        let decoded = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(t).map_err(|e| e.to_string()));
        decoded.map_err(|e| Error::Decode {
            what,
            detail: format!(
                "{e} (body starts {:?})",
                snippet(&String::from_utf8_lossy(&bytes), 120)
            ),
        })
    }

    /// A body read that failed: too large, or the transport's failure.
    fn body_error(&self, what: &str, e: ureq::Error) -> Error {
        match e {
            ureq::Error::BodyExceedsLimit(n) => Error::Decode {
                what: what.to_string(),
                detail: format!("answer larger than {n} bytes"),
            },
            e => transport_error(&self.inner.server, what, e),
        }
    }

    /// The agent to use now: rebuilt when the exec plugin hands out another client certificate.
    fn agent(&self) -> Result<Agent, Error> {
        let inner = &self.inner;
        let identity = inner.credentials.exec_client_cert()?;
        let state = inner.agent.read().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = state.as_ref().filter(|s| s.exec_identity == identity) {
            return Ok(s.agent.clone());
        }
        let changed = state.is_some();
        drop(state);
        let agent = build_agent(
            &inner.server,
            &inner.tls,
            identity.as_ref(),
            inner.opts.request_timeout,
        )?;
        if changed {
            log::info!(
                "client certificate from the exec plugin changed: reconnecting to {}",
                inner.server
            );
        }
        let state = AgentState {
            agent: agent.clone(),
            exec_identity: identity,
        };
        *inner.agent.write().unwrap_or_else(|p| p.into_inner()) = Some(state);
        Ok(agent)
    }

    /// Send one request (twice after a 401), returning a 2xx/1xx answer or the error it carries; a
    /// second 401 is `Error::Unauthorized`.
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
                .header("User-Agent", USER_AGENT);
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
            let resp = result.map_err(|e| {
                inner.stats.record(verb, 0);
                transport_error(&inner.server, &what, e)
            })?;
            let code = resp.status().as_u16();
            inner.stats.record(verb, code);
            if code == 401 {
                // The token may have rotated (service-account file, exec plugin): re-read and retry once.
                inner.credentials.invalidate();
                if attempt == 0 {
                    log::debug!("{what}: 401 from {}, refreshing credentials", inner.server);
                }
                continue;
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
    let req = agent.configure_request(req);
    let req = match call {
        // The agent's global timeout is opts.request_timeout; a handle may give its own.
        Call::Plain => req.timeout_global(Some(request_timeout.unwrap_or(opts.request_timeout))),
        // A watch lasts minutes: no total budget. The headers must still come within the
        // request timeout, and a body silent for watch_idle_timeout is a stalled stream.
        Call::Watch => req
            .timeout_global(None)
            .timeout_recv_response(Some(opts.request_timeout))
            .timeout_per_read(Some(opts.watch_idle_timeout)),
    };
    agent.run(req.build())
}

/// The `timeoutSeconds` of a watch drawn as `drawn` (client-go's 300-600 s): one that would not
/// end well before the stall detector's `idle` limit (15/16 of it) is scaled by `idle` / 640 s, so
/// even the longest ends 6 % before the limit. The apiserver sends no BOOKMARK while nothing is
/// newer than a watch's start, so a quiet watch (LoadBalancerConfigs) would otherwise be cut as
/// stalled every `idle`.
fn server_timeout(drawn: u32, idle: Duration) -> u32 {
    let idle = idle.as_secs();
    if u64::from(drawn) < idle * 15 / 16 {
        return drawn;
    }
    let scaled = u64::from(drawn) * idle.min(640) / 640;
    u32::try_from(scaled).unwrap_or(drawn).max(1)
}

fn bad_request(url: &str, e: http::Error) -> Error {
    Error::Config {
        what: format!("invalid request URL {url:?}: {e}"),
    }
}

/// `path?k=v&…` for the parameters with a value, values percent-encoded (selectors carry `=`, `!`,
/// `,`, spaces and parentheses).
fn with_query(path: &str, query: &[(&str, Option<String>)]) -> String {
    let mut out = path.to_string();
    for (k, v) in query.iter().filter_map(|(k, v)| Some((k, v.as_ref()?))) {
        let sep = if out.contains('?') { '&' } else { '?' };
        out = format!("{out}{sep}{k}=");
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
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    match serde_json::from_str::<ApiStatus>(text) {
        Ok(status) if status.kind == "Status" => Error::Api(Box::new(ApiStatus {
            code: if status.code == 0 { code } else { status.code },
            retry_after,
            ..status
        })),
        _ => Error::Http {
            code,
            body: snippet(String::from_utf8_lossy(&bytes).trim(), 512),
            retry_after,
        },
    }
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
