//! A fake kube-apiserver for tests and the demo: HTTPS (rustls, ring) on loopback, bearer-token and
//! client-certificate auth, the resources paperlb uses with the real server's wire behaviour
//! (Status bodies, framing, resourceVersions, watches, finalizers, status subresources, Service
//! nodePorts), generic storage for the other kinds `manifests/paperlb.yaml` holds (CRDs, which serve
//! our group once Established, ServiceAccounts, RBAC, Deployments), plus test hooks: direct store
//! access, RBAC denials, compaction, fault injection and simulated latency (`latency.rs`).
//!
//! It must not depend on the paperlb library: it stands in for the real server the library is
//! checked against.

mod api;
pub mod certs;
mod clock;
mod discovery;
mod faults;
mod http;
mod json;
mod kinds;
mod latency;
mod patch;
mod resources;
mod selectors;
mod server;
mod services;
mod state;
mod status;
mod store;
mod watch;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

pub use faults::{Fault, FaultKind};
pub use latency::{Delay, Latency};
pub use state::RequestRecord;
pub use status::ApiError;

use resources::ResourceDef;
use server::{Config, Shared};
use state::State;

/// The user the admin token authenticates as.
pub const ADMIN_USER: &str = "kubernetes-admin";

/// How to start a fake server. `Default` is what tests normally want.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Where to listen; must be a loopback address. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Serve HTTPS (default) or plain HTTP.
    pub tls: bool,
    /// Whether the lb.paperlb.com CRDs count as installed (served) without being stored. When
    /// false, each kind is served once its CustomResourceDefinition is created (and Established).
    pub crds_installed: bool,
    /// Periodic BOOKMARK interval (the real server: about 60 s).
    pub bookmark_interval: Duration,
    /// The final BOOKMARK comes this long before `timeoutSeconds` (real: 2 s); never earlier than
    /// half the timeout.
    pub bookmark_before_timeout: Duration,
    /// Watch length when the request gives no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// How many change events are kept for watches to resume from; older RVs answer 410.
    pub history_limit: usize,
    /// The Service nodePort range (real default 30000-32767).
    pub node_port_range: (u16, u16),
    /// Create `default/kubernetes` (ClusterIP) as a real cluster has.
    pub kubernetes_service: bool,
    /// Namespaces created at start besides default, kube-system, kube-public and kube-node-lease.
    pub namespaces: Vec<String>,
    /// Fixed admin token (default: random).
    pub admin_token: Option<String>,
    /// Simulated request latency and write cap (default: off; see `latency.rs`).
    pub latency: Latency,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            crds_installed: true,
            bookmark_interval: Duration::from_secs(60),
            bookmark_before_timeout: Duration::from_secs(2),
            default_watch_timeout: Duration::from_secs(1800),
            history_limit: 10_000,
            node_port_range: (30000, 32767),
            kubernetes_service: true,
            namespaces: Vec::new(),
            admin_token: None,
            latency: Latency::off(),
        }
    }
}

/// A running fake API server; dropping it stops it and joins its threads.
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: bool,
    ca: certs::Ca,
    admin_token: String,
    accept: Option<JoinHandle<()>>,
}

fn def(resource: &str) -> ResourceDef {
    resources::by_plural(resource)
        .unwrap_or_else(|| panic!("fake api: unknown resource {resource}"))
}

fn seed() -> u64 {
    let (s, us) = clock::now_micros();
    s.wrapping_mul(1_000_003) ^ u64::from(us) ^ (std::process::id() as u64).rotate_left(32)
}

impl FakeApi {
    /// Binds, installs the default objects and starts serving. Panics if it cannot bind (tests).
    pub fn start(opts: FakeOptions) -> FakeApi {
        Self::try_start(opts).expect("start the fake API server")
    }

    /// Like `start`, but a bind failure (or a non-loopback address) is an error.
    pub fn try_start(opts: FakeOptions) -> io::Result<FakeApi> {
        if !opts.listen.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: the fake API server binds loopback only", opts.listen),
            ));
        }
        let listener = TcpListener::bind(opts.listen)?;
        let addr = listener.local_addr()?;
        let ca = certs::Ca::new();
        let mut state = State::new(opts.history_limit, opts.node_port_range, seed());
        let admin_token = opts
            .admin_token
            .clone()
            .unwrap_or_else(|| format!("admin-{:016x}{:016x}", state.random(), state.random()));
        state.tokens.insert(admin_token.clone(), ADMIN_USER.into());
        let mut namespaces: Vec<String> =
            ["default", "kube-system", "kube-public", "kube-node-lease"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        namespaces.extend(opts.namespaces.iter().cloned());
        for ns in namespaces {
            let _ = state.create(
                &resources::NAMESPACES,
                "",
                json!({"metadata": {"name": ns}}),
            );
        }
        if opts.kubernetes_service {
            let svc = json!({
                "metadata": {"name": "kubernetes", "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "type": "ClusterIP", "sessionAffinity": "None",
                    "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": addr.port()}]}
            });
            state
                .create(&resources::SERVICES, "default", svc)
                .expect("default/kubernetes");
        }
        state.crds_installed = opts.crds_installed;
        let cfg = Config {
            bookmark_interval: opts.bookmark_interval.max(Duration::from_millis(10)),
            bookmark_before_timeout: opts.bookmark_before_timeout,
            default_watch_timeout: opts.default_watch_timeout,
            idle_timeout: Duration::from_secs(120),
            advertise: addr.to_string(),
        };
        let gate = latency::Gate::new(opts.latency, seed());
        let shared = Arc::new(Shared::new(state, cfg, gate));
        let tls = opts.tls.then(|| server::tls_config(&ca));
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fake-apiserver-accept".into())
            .spawn(move || server::accept_loop(s, listener, tls))?;
        Ok(FakeApi {
            shared,
            addr,
            tls: opts.tls,
            ca,
            admin_token,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` in plain mode).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA that signed the serving certificate and the client certificates.
    pub fn ca_pem(&self) -> String {
        self.ca.cert_pem.clone()
    }

    pub fn admin_token(&self) -> String {
        self.admin_token.clone()
    }

    /// A client certificate and key (PEM) that authenticate as `user` (the CN).
    pub fn issue_client_cert(&self, user: &str) -> (String, String) {
        self.ca.client_cert(user, &[])
    }

    /// Makes `token` authenticate as `user`.
    pub fn add_token(&self, token: &str, user: &str) {
        self.shared.lock().tokens.insert(token.into(), user.into());
    }

    /// Writes a kubeconfig (CA data, server URL, admin token) for clients of this server.
    pub fn write_kubeconfig(&self, path: &Path) -> io::Result<()> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let ca_line = if self.tls {
            format!(
                "    certificate-authority-data: {}\n",
                b64.encode(self.ca.cert_pem.as_bytes())
            )
        } else {
            String::new()
        };
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n{ca_line}    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: admin\n    namespace: default\ncurrent-context: fake\nusers:\n- name: admin\n  user:\n    token: {}\n",
            self.url(),
            self.admin_token
        );
        std::fs::write(path, text)
    }

    /// Forbids `verb` (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `*`) on
    /// `resource` (`services`, `services/status` or `*`) for `user`: 403 as the real RBAC answers,
    /// and SelfSubjectAccessReviews say `allowed: false`.
    pub fn deny(&self, user: &str, verb: &str, resource: &str) {
        self.shared
            .lock()
            .denies
            .push((user.into(), verb.into(), resource.into()));
    }

    /// Lifts every denial.
    pub fn allow_all(&self) {
        self.shared.lock().denies.clear();
    }

    /// When false, the lb.paperlb.com group answers `404 page not found` (CRDs not installed)
    /// unless a stored CustomResourceDefinition serves it.
    pub fn set_crds_installed(&self, installed: bool) {
        self.shared.lock().crds_installed = installed;
    }

    /// Serve a LoadBalancer CRD older than the controller, whose schema lacks these `spec` fields:
    /// a write with `fieldValidation=Strict` that sets one is refused (400 on a create, 422 on a
    /// patch, worded as kube-apiserver v1.36 words them); any other write loses them (pruned).
    pub fn set_lb_crd_without(&self, fields: &[&str]) {
        self.shared.lock().lb_spec_unknown = fields.iter().map(|f| f.to_string()).collect();
    }

    /// The next `fault.count` matching requests get `fault.kind`.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Changes the simulated latency from the next request on.
    pub fn set_latency(&self, latency: Latency) {
        self.shared.latency.set(latency);
    }

    pub fn latency(&self) -> Latency {
        self.shared.latency.get()
    }

    /// The most writes in flight at once (inside the latency gate) since the last reset; counted
    /// only while latency is on.
    pub fn max_writes_in_flight(&self) -> usize {
        self.shared.latency.max_in_flight()
    }

    pub fn reset_max_writes_in_flight(&self) {
        self.shared.latency.reset_max();
    }

    /// Every RV older than the current one becomes too old (410), as after an etcd compaction.
    pub fn compact(&self) {
        self.shared.lock().store.compact();
        self.shared.notify();
    }

    /// Resets every open connection without stopping (watch streams end mid-stream, requests in
    /// flight get no answer, whether or not they were applied); returns how many were open.
    pub fn reset_connections(&self) -> usize {
        let n = server::reset_connections(&self.shared);
        self.shared.notify();
        n
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.rv
    }

    /// Every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    fn write<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.shared.lock());
        self.shared.notify();
        out
    }

    /// Creates an object (namespace from `metadata.namespace`, default `default`), as a POST would.
    pub fn create(&self, resource: &str, obj: Value) -> Result<Value, ApiError> {
        let res = def(resource);
        let ns = namespace_of(&res, &obj);
        self.write(|st| st.create(&res, &ns, obj))
    }

    /// GET; `namespace` is ignored for cluster-scoped resources.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let res = def(resource);
        let ns = if res.namespaced { namespace } else { "" };
        self.shared.lock().get(&res, ns, name)
    }

    /// The objects of a resource (`namespace` empty: all namespaces), in (namespace, name) order.
    pub fn list(&self, resource: &str, namespace: &str) -> Vec<Value> {
        let res = def(resource);
        let ns = if res.namespaced { namespace } else { "" };
        self.shared.lock().store.list(res.plural, ns)
    }

    /// PUT of the whole object (its `metadata.resourceVersion`, if any, is checked).
    pub fn update(&self, resource: &str, obj: Value) -> Result<Value, ApiError> {
        self.put(resource, obj, None)
    }

    /// PUT to `/status`.
    pub fn update_status(&self, resource: &str, obj: Value) -> Result<Value, ApiError> {
        self.put(resource, obj, Some("status"))
    }

    fn put(&self, resource: &str, obj: Value, sub: Option<&str>) -> Result<Value, ApiError> {
        let res = def(resource);
        let ns = namespace_of(&res, &obj);
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.write(|st| st.update(&res, &ns, &name, obj, sub).map(|(_, o)| o))
    }

    /// JSON merge patch of the main resource.
    pub fn patch(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        self.merge_patch(resource, namespace, name, patch, None)
    }

    /// JSON merge patch of `/status`.
    pub fn patch_status(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        self.merge_patch(resource, namespace, name, patch, Some("status"))
    }

    fn merge_patch(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        patch: Value,
        sub: Option<&str>,
    ) -> Result<Value, ApiError> {
        let res = def(resource);
        let ns = if res.namespaced { namespace } else { "" };
        let body = serde_json::to_vec(&patch).expect("patch encodes");
        self.write(|st| st.patch(&res, ns, name, sub, "application/merge-patch+json", &body))
    }

    /// Creates the object, or merge-patches it into the existing one (spec and metadata; and its
    /// status through `/status` when it has one), like a simple `kubectl apply`.
    pub fn apply(&self, resource: &str, obj: Value) -> Result<Value, ApiError> {
        let res = def(resource);
        let ns = namespace_of(&res, &obj);
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if self.get(resource, &ns, &name).is_err() {
            let created = self.create(resource, obj.clone())?;
            if res.status_subresource && obj.get("status").is_some() {
                return self.patch_status(resource, &ns, &name, json!({"status": obj["status"]}));
            }
            return Ok(created);
        }
        let mut out = self.patch(resource, &ns, &name, obj.clone())?;
        if res.status_subresource && obj.get("status").is_some() {
            out = self.patch_status(resource, &ns, &name, json!({"status": obj["status"]}))?;
        }
        Ok(out)
    }

    /// DELETE: the object, or for custom resources without finalizers the Success Status.
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let res = def(resource);
        let ns = if res.namespaced { namespace } else { "" };
        self.write(|st| st.delete(&res, ns, name, &Value::Null))
    }

    /// Stops serving: closes every connection (watches end without their last chunk) and joins
    /// every thread. Also done on drop.
    pub fn stop(&mut self) {
        if self.shared.shutdown.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.notify();
        server::wake(self.addr);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        server::close_all(&self.shared);
    }
}

fn namespace_of(res: &ResourceDef, obj: &Value) -> String {
    if !res.namespaced {
        return String::new();
    }
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) if !ns.is_empty() => ns.to_string(),
        _ => "default".to_string(),
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop();
    }
}
