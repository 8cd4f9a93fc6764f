//! Where the API server is and how to authenticate: kubeconfig files and in-cluster configuration,
//! resolved in client-go's order into one [`ClusterConfig`].
//!
//! Owns: the resolution order (`--kubeconfig`, `KUBECONFIG`, in-cluster, `~/.kube/config`), merging
//! of several kubeconfig files, relative path resolution, and reading the files they name.
//! Must not: open network connections, print secrets (the types holding them have no `Debug`), or read
//! the process environment anywhere but [`LoadOptions::from_env`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::Error;
use super::tls::{self, TlsSettings};
use super::yaml;

/// Where kubelet mounts the service account's token, CA bundle and namespace.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The exec credential API versions we speak (v1alpha1 was removed from Kubernetes in 1.24).
pub const EXEC_API_VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

/// Everything needed to reach one cluster as one user. Built once at start-up. It has no `Debug`
/// (nor have [`AuthSource`] and `TlsSettings`), so no log line or panic message can show a token,
/// a key or an exec plugin's arguments:
/// ```compile_fail
/// fn show(c: &paperlb::kube::config::ClusterConfig) -> String { format!("{c:?}") }
/// ```
#[derive(Clone, Default)]
pub struct ClusterConfig {
    /// Base URL without a trailing slash, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    pub tls: TlsSettings,
    pub auth: AuthSource,
    /// The context's namespace, or the in-cluster service account's namespace.
    pub namespace: Option<String>,
    /// Human description of where this came from, e.g. `kubeconfig /root/.kube/config` or `in-cluster`.
    pub origin: String,
    /// Names for `paperlb check` (empty when in-cluster).
    pub context_name: String,
    pub cluster_name: String,
    pub user_name: String,
}

/// Where the bearer token (or the exec-provided client certificate) comes from.
#[derive(Clone, Default)]
pub enum AuthSource {
    /// No token: anonymous or client certificate only.
    #[default]
    None,
    /// A static token from the kubeconfig.
    Token(String),
    /// A file re-read periodically and on 401 (`tokenFile`, the in-cluster service-account token).
    TokenFile(PathBuf),
    /// An exec credential plugin.
    Exec(ExecConfig),
}

/// `users[].user.exec` of a kubeconfig, read as written and then checked (and `command` resolved)
/// by `exec_settings`.
#[derive(Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase", expecting = "a mapping")]
pub struct ExecConfig {
    /// `client.authentication.k8s.io/v1` or `v1beta1`.
    pub api_version: String,
    /// Resolved command: relative commands containing `/` are made absolute against the kubeconfig's dir.
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    #[serde(deserialize_with = "flag")]
    pub provide_cluster_info: bool,
    pub install_hint: Option<String>,
    /// `Never` or `IfAvailable`: `Always` is refused, as paperlb runs without a terminal.
    pub interactive_mode: Option<String>,
}

/// `exec.env[]`: a variable set for the plugin. The name is never empty.
#[derive(Clone, Default, Deserialize)]
#[serde(default, expecting = "a mapping with name and value")]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// Options that pick the configuration: the CLI flags plus the environment values client-go consults,
/// captured once by [`LoadOptions::from_env`] so nothing deeper reads the environment.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--kubeconfig PATH`: this file only; it must exist.
    pub kubeconfig: Option<PathBuf>,
    /// `--context NAME`; else the kubeconfig's `current-context`.
    pub context: Option<String>,
    /// `KUBECONFIG`, unsplit (`:`-separated on Unix).
    pub kubeconfig_env: Option<OsString>,
    /// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`: both set means in-cluster.
    pub service_host: Option<String>,
    pub service_port: Option<String>,
    /// `HOME`, for `~/.kube/config`.
    pub home: Option<PathBuf>,
}

impl LoadOptions {
    /// The flags plus `KUBECONFIG`, `KUBERNETES_SERVICE_HOST`/`_PORT` and `HOME` from the process
    /// environment. Called once, by `main`.
    pub fn from_env(kubeconfig: Option<PathBuf>, context: Option<String>) -> LoadOptions {
        LoadOptions {
            kubeconfig,
            context,
            kubeconfig_env: std::env::var_os("KUBECONFIG"),
            service_host: std::env::var("KUBERNETES_SERVICE_HOST").ok(),
            service_port: std::env::var("KUBERNETES_SERVICE_PORT").ok(),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }
}

/// Resolve the configuration in client-go's order: `--kubeconfig`; else `KUBECONFIG`; else in-cluster;
/// else `~/.kube/config`.
pub fn load(opts: &LoadOptions) -> Result<ClusterConfig, Error> {
    if let Some(path) = &opts.kubeconfig {
        return from_kubeconfigs(std::slice::from_ref(path), true, opts);
    }
    let listed = kubeconfig_list(opts.kubeconfig_env.as_deref());
    if !listed.is_empty() {
        return from_kubeconfigs(&listed, false, opts);
    }
    let host = opts.service_host.as_deref().unwrap_or("");
    let port = opts.service_port.as_deref().unwrap_or("");
    if !host.is_empty() && !port.is_empty() {
        return in_cluster(host, port, Path::new(DEFAULT_SERVICE_ACCOUNT_DIR));
    }
    let Some(home) = &opts.home else {
        return Err(no_configuration("HOME is not set"));
    };
    let path = home.join(".kube").join("config");
    if !path.exists() {
        return Err(no_configuration(&format!(
            "{} does not exist",
            path.display()
        )));
    }
    from_kubeconfigs(&[path], true, opts)
}

fn no_configuration(why: &str) -> Error {
    config_err(format!(
        "no Kubernetes configuration: no --kubeconfig, KUBECONFIG is unset, not in a cluster \
         (KUBERNETES_SERVICE_HOST/PORT unset), and {why}"
    ))
}

/// `KUBECONFIG` split on the platform's separator, empty entries dropped, duplicates removed (first kept).
fn kubeconfig_list(env: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in env.map(std::env::split_paths).into_iter().flatten() {
        if !p.as_os_str().is_empty() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// In-cluster

fn in_cluster(host: &str, port: &str, dir: &Path) -> Result<ClusterConfig, Error> {
    if port.parse::<u16>().is_err() {
        return Err(config_err(format!(
            "in-cluster: KUBERNETES_SERVICE_PORT {port:?} is not a port number"
        )));
    }
    let server = if host.contains(':') && !host.starts_with('[') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    };
    let what = format!("in-cluster service account {}", dir.display());
    let token_path = dir.join("token");
    read_token_file(&format!("{what}: token"), &token_path)?;
    let ca = read_file(&what, "ca.crt", &dir.join("ca.crt"))?;
    tls::certificates(&ca).map_err(|e| config_err(format!("{what}: ca.crt: {e}")))?;
    let namespace = match read_file(&what, "namespace", &dir.join("namespace")) {
        Ok(s) => Some(String::from_utf8_lossy(&s).trim().to_string()).filter(|s| !s.is_empty()),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(ClusterConfig {
        server,
        tls: TlsSettings {
            ca_pem: Some(ca),
            ..TlsSettings::default()
        },
        auth: AuthSource::TokenFile(token_path),
        namespace,
        origin: format!("in-cluster (service account {})", dir.display()),
        ..ClusterConfig::default()
    })
}

// ---------------------------------------------------------------------------------------------------
// kubeconfig files

/// A kubeconfig file as written (after [`normalize`]); unknown fields are ignored. Entries are typed
/// one by one, so an error names the list, the index and the entry's name.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct FileDoc {
    kind: Option<String>,
    current_context: Option<String>,
    #[serde(deserialize_with = "list")]
    clusters: Vec<Value>,
    #[serde(deserialize_with = "list")]
    users: Vec<Value>,
    #[serde(deserialize_with = "list")]
    contexts: Vec<Value>,
}

/// `clusters[].cluster`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct Cluster {
    server: Option<String>,
    proxy_url: Option<String>,
    #[serde(deserialize_with = "flag")]
    insecure_skip_tls_verify: bool,
    certificate_authority_data: Option<String>,
    certificate_authority: Option<String>,
    tls_server_name: Option<String>,
}

/// `users[].user`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct User {
    client_certificate_data: Option<String>,
    client_certificate: Option<String>,
    client_key_data: Option<String>,
    client_key: Option<String>,
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// Only its name is read: the rest holds secrets and is never parsed.
    auth_provider: Option<Value>,
    exec: Option<ExecConfig>,
}

/// `contexts[].context`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Context {
    cluster: Option<String>,
    user: Option<String>,
    namespace: Option<String>,
}

/// The document as the structs above read it: a number is its text (`name: 42`, as the YAML
/// reader resolved it), and a null or "" value in a mapping is no value at all.
fn normalize(v: &mut Value) {
    match v {
        Value::Number(n) => *v = Value::String(n.to_string()),
        Value::Array(items) => items.iter_mut().for_each(normalize),
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null() && v != "");
            m.values_mut().for_each(normalize);
        }
        _ => {}
    }
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    bool::deserialize(d).map_err(|_| de::Error::custom("expected true or false"))
}

fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Vec::deserialize(d).map_err(|_| de::Error::custom("expected a list"))
}

/// `v` as a `T`; a failure names `what` and the field (serde does not say which field failed, so
/// the first one that fails alone is named). serde's "invalid type: string \"…\"" would quote the
/// value, which may be a secret: only what was expected is kept.
fn typed<T: DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value::<T>(v.clone()).map_err(|e| {
        let e = e.to_string();
        let e = e
            .split_once(", expected ")
            .map_or(e.clone(), |(_, x)| format!("expected {x}"));
        let field = v.as_object().and_then(|m| {
            m.keys().find(|k| {
                let one = Map::from_iter([((*k).clone(), m[*k].clone())]);
                serde_json::from_value::<T>(Value::Object(one)).is_err()
            })
        });
        let field = field.map(|k| format!(": {k}")).unwrap_or_default();
        config_err(format!("{what}{field}: {e}"))
    })
}

fn config_err(what: String) -> Error {
    Error::Config { what }
}

/// One named entry of `clusters`, `users` or `contexts`.
struct Entry<T> {
    name: String,
    /// `kubeconfig PATH: LIST[INDEX] "NAME"`, for error messages.
    what: String,
    /// The file that defined it: its relative paths resolve against the file's directory.
    file: PathBuf,
    body: T,
}

impl<T> Entry<T> {
    /// A configuration error in this entry.
    fn err(&self, detail: &str) -> Error {
        config_err(format!("{}: {detail}", self.what))
    }

    fn resolve(&self, p: &str) -> PathBuf {
        self.file
            .parent()
            .map_or(PathBuf::from(p), |dir| dir.join(p))
    }
}

/// The kubeconfig files read so far, merged by client-go's rule: the first file to define a name
/// wins it whole, and the first `current-context` set wins.
#[derive(Default)]
struct Kubeconfig {
    clusters: Vec<Entry<Cluster>>,
    users: Vec<Entry<User>>,
    contexts: Vec<Entry<Context>>,
    current_context: Option<String>,
}

fn from_kubeconfigs(
    paths: &[PathBuf],
    must_exist: bool,
    opts: &LoadOptions,
) -> Result<ClusterConfig, Error> {
    let mut merged = Kubeconfig::default();
    let mut read = Vec::new();
    for path in paths {
        match std::fs::read(path) {
            Ok(bytes) => {
                parse_kubeconfig(path, &bytes, &mut merged)?;
                read.push(path.as_path());
            }
            // client-go skips KUBECONFIG entries that do not exist.
            Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: format!("kubeconfig {}", path.display()),
                    source,
                });
            }
        }
    }
    if read.is_empty() {
        return Err(config_err(format!(
            "KUBECONFIG names no existing file ({})",
            join_paths(paths.iter().map(PathBuf::as_path))
        )));
    }
    select(
        &merged,
        &join_paths(read.into_iter()),
        opts.context.as_deref(),
    )
}

fn join_paths<'a>(paths: impl Iterator<Item = &'a Path>) -> String {
    paths
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_kubeconfig(path: &Path, bytes: &[u8], into: &mut Kubeconfig) -> Result<(), Error> {
    let what = format!("kubeconfig {}", path.display());
    let bad = |detail: &str| config_err(format!("{what}: {detail}"));
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8 text"))?;
    let mut doc = yaml::parse(text).map_err(|e| bad(&e.to_string()))?;
    match &doc {
        Value::Object(_) => {}
        Value::Null => return Err(bad("the file is empty")),
        _ => {
            return Err(bad(
                "not a kubeconfig (expected a mapping with clusters, users and contexts)",
            ));
        }
    }
    normalize(&mut doc);
    let doc: FileDoc = typed(doc, &what)?;
    if let Some(kind) = doc.kind.filter(|k| k != "Config") {
        return Err(bad(&format!("kind is {kind:?}, not \"Config\"")));
    }
    merge(&mut into.clusters, doc.clusters, "cluster", path, &what)?;
    merge(&mut into.users, doc.users, "user", path, &what)?;
    merge(&mut into.contexts, doc.contexts, "context", path, &what)?;
    into.current_context = into.current_context.take().or(doc.current_context);
    Ok(())
}

/// `{body}s: [{name, <body>: {...}}]`, each body typed on its own, added to `into` unless a name
/// is already there.
fn merge<T: DeserializeOwned + Default>(
    into: &mut Vec<Entry<T>>,
    items: Vec<Value>,
    body: &str,
    file: &Path,
    what: &str,
) -> Result<(), Error> {
    for (index, item) in items.into_iter().enumerate() {
        let here = format!("{what}: {body}s[{index}]");
        let Value::Object(mut item) = item else {
            return Err(config_err(format!(
                "{here}: expected a mapping with name and {body}"
            )));
        };
        let name = match item.remove("name") {
            Some(Value::String(name)) => name,
            None => return Err(config_err(format!("{here}: missing name"))),
            Some(_) => return Err(config_err(format!("{here}: name: expected a string"))),
        };
        let here = format!("{here} {name:?}");
        let body = match item.remove(body).unwrap_or_default() {
            Value::Null => T::default(),
            v @ Value::Object(_) => typed(v, &here)?,
            _ => return Err(config_err(format!("{here}: {body}: expected a mapping"))),
        };
        if !into.iter().any(|e| e.name == name) {
            into.push(Entry {
                name,
                what: here,
                file: file.to_path_buf(),
                body,
            });
        }
    }
    Ok(())
}

/// The entry named `name` in `list` (called `kind` in messages); none: the error
/// `{missing} ({kind}: the names defined)`.
fn find<'a, T>(
    list: &'a [Entry<T>],
    kind: &str,
    name: &str,
    missing: String,
) -> Result<&'a Entry<T>, Error> {
    let found = list.iter().find(|e| e.name == name);
    found.ok_or_else(|| config_err(format!("{missing} ({kind}: {})", names(list))))
}

/// The names defined in `list`, for error messages.
fn names<T>(list: &[Entry<T>]) -> String {
    if list.is_empty() {
        return "none defined".into();
    }
    let names: Vec<String> = list.iter().map(|e| format!("{:?}", e.name)).collect();
    names.join(", ")
}

fn select(k: &Kubeconfig, all_files: &str, context: Option<&str>) -> Result<ClusterConfig, Error> {
    let Some(ctx_name) = context.or(k.current_context.as_deref()) else {
        return Err(config_err(format!(
            "kubeconfig {all_files}: no current-context; pass --context (contexts: {})",
            names(&k.contexts)
        )));
    };
    let missing = format!("kubeconfig {all_files}: context {ctx_name:?} not found");
    let ctx = find(&k.contexts, "contexts", ctx_name, missing)?;
    let ctx_what = &ctx.what;
    let Some(cluster_name) = ctx.body.cluster.clone() else {
        return Err(ctx.err("context names no cluster"));
    };
    let user_name = ctx.body.user.clone().unwrap_or_default();
    let missing = format!("{ctx_what}: cluster {cluster_name:?} is not defined in {all_files}");
    let cluster = find(&k.clusters, "clusters", &cluster_name, missing)?;
    let (server, mut tls) = cluster_settings(cluster)?;

    let mut auth = AuthSource::None;
    if !user_name.is_empty() {
        let missing = format!("{ctx_what}: user {user_name:?} is not defined in {all_files}");
        let user = find(&k.users, "users", &user_name, missing)?;
        auth = user_settings(user, &mut tls)?;
    }
    Ok(ClusterConfig {
        server,
        tls,
        auth,
        namespace: ctx.body.namespace.clone(),
        origin: format!("kubeconfig {}", ctx.file.display()),
        context_name: ctx_name.to_string(),
        cluster_name,
        user_name,
    })
}

fn cluster_settings(e: &Entry<Cluster>) -> Result<(String, TlsSettings), Error> {
    let what = &e.what;
    let c = &e.body;
    let Some(server) = &c.server else {
        return Err(e.err("server is missing"));
    };
    let server = check_server(what, server)?;
    if c.proxy_url.is_some() {
        return Err(e.err("proxy-url is not supported"));
    }
    let insecure = c.insecure_skip_tls_verify;
    if insecure && (c.certificate_authority_data.is_some() || c.certificate_authority.is_some()) {
        return Err(e.err(
            "certificate-authority and insecure-skip-tls-verify together: remove one of them",
        ));
    }
    let ca_pem = pem_field(
        e,
        "certificate-authority",
        &c.certificate_authority_data,
        &c.certificate_authority,
    )?;
    if let Some(ca) = &ca_pem {
        tls::certificates(ca).map_err(|d| e.err(&format!("certificate-authority: {d}")))?;
    }
    let tls = TlsSettings {
        ca_pem,
        insecure,
        server_name: c.tls_server_name.clone(),
        ..TlsSettings::default()
    };
    Ok((server, tls))
}

/// `https://host[:port][/path]` or `http://…`, returned without a trailing slash.
fn check_server(what: &str, server: &str) -> Result<String, Error> {
    let bad = |why: &str| config_err(format!("{what}: server {server:?} {why}"));
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an https:// or http:// URL"))?;
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        return Err(bad("has no host"));
    }
    if server.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains spaces or control characters"));
    }
    Ok(server.trim_end_matches('/').to_string())
}

fn user_settings(e: &Entry<User>, tls: &mut TlsSettings) -> Result<AuthSource, Error> {
    let what = &e.what;
    let u = &e.body;
    // A null auth-provider was dropped by `normalize`.
    if let Some(provider) = &u.auth_provider {
        let name = provider.get("name").and_then(Value::as_str).unwrap_or("");
        return Err(e.err(&format!(
            "auth-provider {name:?} is not supported; use an exec credential plugin \
             (e.g. kubelogin for OIDC) or a token"
        )));
    }
    if u.username.is_some() || u.password.is_some() {
        return Err(e.err(
            "username/password (basic auth) is not supported; use a token, tokenFile, \
             client certificate or an exec credential plugin",
        ));
    }
    let cert = pem_field(
        e,
        "client-certificate",
        &u.client_certificate_data,
        &u.client_certificate,
    )?;
    let key = pem_field(e, "client-key", &u.client_key_data, &u.client_key)?;
    match (&cert, &key) {
        // Parsed, and checked to belong together, as the client will use them.
        (Some(c), Some(k)) => {
            tls::certified_key("client-certificate", c, k).map_err(|d| e.err(&d.to_string()))?;
        }
        (Some(_), None) => return Err(e.err("client-certificate without client-key")),
        (None, Some(_)) => return Err(e.err("client-key without client-certificate")),
        (None, None) => {}
    }
    tls.client_identity = cert.zip(key);

    if u.exec.is_some() && (u.token.is_some() || u.token_file.is_some()) {
        return Err(e.err("exec together with token or tokenFile: keep only one"));
    }
    if let Some(exec) = &u.exec {
        return Ok(AuthSource::Exec(exec_settings(e, exec.clone())?));
    }
    // tokenFile wins over token: client-go prefers the file's last good value.
    if let Some(p) = &u.token_file {
        let path = e.resolve(p);
        read_token_file(&format!("{what}: tokenFile"), &path)?;
        return Ok(AuthSource::TokenFile(path));
    }
    Ok(u.token.clone().map_or(AuthSource::None, AuthSource::Token))
}

/// `<field>-data` (base64, wins, as in client-go) or `<field>` (a path), read into PEM bytes.
fn pem_field<T>(
    e: &Entry<T>,
    field: &str,
    data: &Option<String>,
    path: &Option<String>,
) -> Result<Option<Vec<u8>>, Error> {
    match (data, path) {
        (Some(data), _) => {
            // Go's decoder skips line breaks; hand-edited files sometimes wrap long values.
            let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
            let bad = |_| e.err(&format!("{field}-data: invalid base64"));
            BASE64_STANDARD.decode(compact).map(Some).map_err(bad)
        }
        (None, Some(path)) => read_file(&e.what, field, &e.resolve(path)).map(Some),
        (None, None) => Ok(None),
    }
}

/// `exec` checked, its command resolved. Empty texts are absent ([`normalize`] dropped them).
fn exec_settings(user: &Entry<User>, mut exec: ExecConfig) -> Result<ExecConfig, Error> {
    let bad = |detail: String| config_err(format!("{}: exec: {detail}", user.what));
    let api_version = &exec.api_version;
    if !EXEC_API_VERSIONS.contains(&api_version.as_str()) {
        return Err(bad(format!(
            "apiVersion {api_version:?} is not supported (use {} or {})",
            EXEC_API_VERSIONS[0], EXEC_API_VERSIONS[1]
        )));
    }
    if exec.command.is_empty() {
        return Err(bad("command is missing".into()));
    }
    // A bare name is looked up on PATH; a relative path is relative to the kubeconfig (client-go).
    if exec.command.contains('/') {
        exec.command = user.resolve(&exec.command).display().to_string();
    }
    if let Some(i) = exec.env.iter().position(|var| var.name.is_empty()) {
        return Err(bad(format!("env[{i}]: name is missing")));
    }
    if exec.interactive_mode.as_deref() == Some("Always") {
        return Err(bad(
            "interactiveMode Always needs a terminal, and paperlb runs without one".into(),
        ));
    }
    Ok(exec)
}

// ---------------------------------------------------------------------------------------------------
// Files, base64, PEM

fn read_file(what: &str, field: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: format!("{what}: {field} {}", path.display()),
        source,
    })
}

/// The trimmed token, or an error naming the file as `label PATH` (never its content). Read at
/// start-up, so a token file is readable and non-empty from the start, and again by `auth` as the
/// token rotates.
pub(crate) fn read_token_file(label: &str, path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: format!("{label} {}", path.display()),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::Config {
            what: format!("{label} {} is empty", path.display()),
        });
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubeconfig")
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(fixture_dir().join(name)).unwrap()
    }

    /// A unique directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "paperlb-config-test-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn load_file(path: &Path, context: Option<&str>) -> Result<ClusterConfig, Error> {
        load(&LoadOptions {
            kubeconfig: Some(path.to_path_buf()),
            context: context.map(str::to_string),
            ..LoadOptions::default()
        })
    }

    fn load_fixture(name: &str, context: Option<&str>) -> ClusterConfig {
        load_file(&fixture_dir().join(name), context).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn load_text(text: &str) -> Result<ClusterConfig, Error> {
        let dir = TempDir::new();
        let path = dir.write("config", text);
        load_file(&path, None)
    }

    fn err_text(r: Result<ClusterConfig, Error>) -> String {
        match r {
            Ok(c) => panic!("expected an error, got a config for {}", c.server),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn k3s_and_kind_give_server_ca_and_client_cert_from_data() {
        for (name, server, ctx) in [
            ("k3s.yaml", "https://127.0.0.1:6443", "default"),
            ("kind.yaml", "https://127.0.0.1:39031", "kind-kind"),
        ] {
            let c = load_fixture(name, None);
            assert_eq!(c.server, server, "{name}");
            assert_eq!(c.context_name, ctx);
            assert!(
                c.tls
                    .ca_pem
                    .as_ref()
                    .unwrap()
                    .starts_with(b"-----BEGIN CERTIFICATE")
            );
            assert!(c.tls.client_identity.is_some());
            assert!(matches!(c.auth, AuthSource::None));
            assert_eq!(c.namespace, None);
            assert!(!c.tls.insecure);
        }
    }

    #[test]
    fn minikube_resolves_relative_files_against_the_kubeconfig_dir() {
        let c = load_fixture("minikube.yaml", None);
        assert_eq!(c.server, "https://127.0.0.1:8443");
        assert_eq!(c.namespace.as_deref(), Some("default"));
        assert_eq!(c.tls.ca_pem.unwrap(), fixture("ca.crt").into_bytes());
        let (cert, key) = c.tls.client_identity.unwrap();
        assert_eq!(cert, fixture("client.crt").into_bytes());
        assert_eq!(key, fixture("client.key").into_bytes());
    }

    #[test]
    fn eks_exec_is_parsed_not_run() {
        let c = load_fixture("eks-exec.yaml", None);
        assert_eq!(c.server, "https://127.0.0.1:7443");
        assert_eq!(
            c.context_name,
            "arn:aws:eks:eu-west-1:111122223333:cluster/edge"
        );
        let AuthSource::Exec(e) = &c.auth else {
            panic!("expected exec")
        };
        assert_eq!(e.api_version, "client.authentication.k8s.io/v1beta1");
        assert_eq!(e.command, "aws");
        assert_eq!(
            e.args,
            [
                "--region",
                "eu-west-1",
                "eks",
                "get-token",
                "--cluster-name",
                "edge",
                "--output",
                "json"
            ]
        );
        let env: Vec<_> = (e.env.iter())
            .map(|v| (v.name.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(env, [("AWS_PROFILE", "edge-admin")]);
        assert!(!e.provide_cluster_info);
    }

    #[test]
    fn multi_context_gives_token_and_token_file_contexts() {
        let a = load_fixture("multi-context.yaml", None);
        assert_eq!(a.server, "https://127.0.0.1:6443");
        assert_eq!(a.tls.server_name.as_deref(), Some("kubernetes.default.svc"));
        assert_eq!(a.namespace.as_deref(), Some("paperlb-system"));
        assert!(matches!(&a.auth, AuthSource::Token(t) if t == "fixture-token-abcdef0123456789"));
        assert_eq!(a.user_name, "ops-token");

        let b = load_fixture("multi-context.yaml", Some("edge-b"));
        assert_eq!(b.server, "https://127.0.0.2:6443");
        assert!(b.tls.insecure && b.tls.ca_pem.is_none());
        assert_eq!(b.namespace, None);
        assert!(
            matches!(&b.auth, AuthSource::TokenFile(p) if *p == fixture_dir().join("token.txt"))
        );
    }

    #[test]
    fn kubeconfig_list_merges_first_definition_wins_whole() {
        let dir = TempDir::new();
        let first = dir.write(
            "first",
            "current-context: one\nclusters:\n- name: shared\n  cluster:\n    server: https://first:6443\n    insecure-skip-tls-verify: true\ncontexts:\n- name: one\n  context:\n    cluster: shared\n    user: u\n",
        );
        let second = dir.write(
            "second",
            "current-context: two\nclusters:\n- name: shared\n  cluster:\n    server: https://second:6443\n    tls-server-name: second\nusers:\n- name: u\n  user:\n    token: t2\ncontexts:\n- name: two\n  context:\n    cluster: shared\n    user: u\n",
        );
        let list = std::env::join_paths([
            first.clone(),
            dir.0.join("missing"),
            second.clone(),
            first.clone(),
        ])
        .unwrap();
        let opts = LoadOptions {
            kubeconfig_env: Some(list),
            ..LoadOptions::default()
        };
        let c = load(&opts).unwrap();
        assert_eq!(c.context_name, "one");
        assert_eq!(c.server, "https://first:6443");
        // No field merge: the first file's cluster has no tls-server-name.
        assert_eq!(c.tls.server_name, None);
        assert!(c.tls.insecure);
        assert!(matches!(&c.auth, AuthSource::Token(t) if t == "t2"));

        let c = load(&LoadOptions {
            context: Some("two".into()),
            ..opts.clone()
        })
        .unwrap();
        assert_eq!(c.server, "https://first:6443");

        let none = LoadOptions {
            kubeconfig_env: Some(dir.0.join("nope").into_os_string()),
            ..LoadOptions::default()
        };
        assert!(err_text(load(&none)).contains("no existing file"));
    }

    #[test]
    fn in_cluster_reads_the_service_account_dir_and_brackets_ipv6() {
        let dir = TempDir::new();
        dir.write("token", "sa-token\n");
        dir.write("ca.crt", &(fixture("ca.crt") + &fixture("client.crt")));
        dir.write("namespace", "paperlb-system\n");
        // load() goes in-cluster when both variables are set, reading the kubelet's mount.
        let opts = LoadOptions {
            service_host: Some("fd00::1".into()),
            service_port: Some("443".into()),
            home: Some(dir.0.clone()),
            ..LoadOptions::default()
        };
        if !Path::new(DEFAULT_SERVICE_ACCOUNT_DIR).exists() {
            assert!(err_text(load(&opts)).contains(DEFAULT_SERVICE_ACCOUNT_DIR));
        }
        let c = in_cluster("fd00::1", "443", &dir.0).unwrap();
        assert_eq!(c.server, "https://[fd00::1]:443");
        assert_eq!(c.namespace.as_deref(), Some("paperlb-system"));
        assert!(matches!(&c.auth, AuthSource::TokenFile(p) if *p == dir.0.join("token")));
        assert_eq!(
            rustls_pki_types::CertificateDer::pem_slice_iter(c.tls.ca_pem.as_deref().unwrap())
                .count(),
            2
        );

        let v4 = in_cluster("10.43.0.1", "443", &dir.0).unwrap();
        assert_eq!(v4.server, "https://10.43.0.1:443");

        let bad_port = load(&LoadOptions {
            service_port: Some("https".into()),
            ..opts.clone()
        });
        assert!(err_text(bad_port).contains("not a port"));

        std::fs::remove_file(dir.0.join("token")).unwrap();
        assert!(err_text(in_cluster("fd00::1", "443", &dir.0)).contains("token"));
    }

    #[test]
    fn home_kube_config_is_the_last_resort() {
        let dir = TempDir::new();
        let opts = LoadOptions {
            home: Some(dir.0.clone()),
            ..LoadOptions::default()
        };
        assert!(err_text(load(&opts)).contains("no Kubernetes configuration"));
        std::fs::create_dir_all(dir.0.join(".kube")).unwrap();
        std::fs::copy(
            fixture_dir().join("k3s.yaml"),
            dir.0.join(".kube").join("config"),
        )
        .unwrap();
        assert_eq!(load(&opts).unwrap().server, "https://127.0.0.1:6443");
        assert!(err_text(load(&LoadOptions::default())).contains("HOME"));
    }

    const GOOD: &str = "clusters:\n- name: c\n  cluster:\n    server: https://h:6443\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\nusers:\n- name: u\n  user:\n";

    #[test]
    fn bad_inputs_give_clear_errors() {
        let key_b64 = BASE64_STANDARD.encode(fixture("client.key"));
        let cert_b64 = BASE64_STANDARD.encode(fixture("client.crt"));
        let not_pem = BASE64_STANDARD.encode("hello");
        // A v3 certificate (the fixture's is v1, whose key webpki cannot compare) and another key.
        let v3_cert = crate::kube::testutil::Pki::new("ca")
            .issue(&["u"], &rcgen::KeyPair::generate().unwrap());
        let v3_cert_b64 = BASE64_STANDARD.encode(v3_cert);
        let other_key_b64 =
            BASE64_STANDARD.encode(rcgen::KeyPair::generate().unwrap().serialize_pem());
        let cases: Vec<(String, &str)> = vec![
            ("".into(), "empty"),
            ("hello world\n".into(), "not a kubeconfig"),
            ("a: b\n  c: d\n".into(), "line 2"),
            ("apiVersion: v1\nkind: Pod\n".into(), "Pod"),
            ("clusters: {}\n".into(), "clusters: expected a list"),
            (GOOD.replace("current-context: x\n", ""), "no current-context"),
            (GOOD.replace("current-context: x", "current-context: y"), "context \"y\" not found"),
            (GOOD.replace("cluster: c\n    user", "cluster: gone\n    user"), "cluster \"gone\" is not defined"),
            (GOOD.replace("user: u\n", "user: nobody\n"), "user \"nobody\" is not defined"),
            (GOOD.replace("https://h:6443", "h:6443"), "not an https:// or http:// URL"),
            (GOOD.replace("https://h:6443", "https:///x"), "has no host"),
            (GOOD.replace("    server: https://h:6443\n", ""), "server is missing"),
            (GOOD.replace("https://h:6443\n", "https://h:6443\n    insecure-skip-tls-verify: yes\n"), "expected true or false"),
            (
                GOOD.replace("https://h:6443\n", "https://h:6443\n    insecure-skip-tls-verify: true\n    certificate-authority: ca.crt\n"),
                "certificate-authority and insecure-skip-tls-verify",
            ),
            (GOOD.replace("https://h:6443\n", "https://h:6443\n    certificate-authority-data: '%%%'\n"), "certificate-authority-data: invalid base64"),
            (GOOD.replace("https://h:6443\n", &format!("https://h:6443\n    certificate-authority-data: {not_pem}\n")), "no PEM certificate"),
            (GOOD.replace("https://h:6443\n", &format!("https://h:6443\n    certificate-authority-data: {key_b64}\n")), "no PEM certificate"),
            (GOOD.replace("https://h:6443\n", "https://h:6443\n    certificate-authority: /nonexistent/ca.crt\n"), "/nonexistent/ca.crt"),
            (format!("{GOOD}    client-certificate-data: {cert_b64}\n    client-key-data: '!!'\n"), "users[0] \"u\": client-key-data: invalid base64"),
            (format!("{GOOD}    client-certificate-data: {cert_b64}\n    client-key-data: {cert_b64}\n"), "client-certificate key: no usable private key"),
            (format!("{GOOD}    client-certificate-data: {v3_cert_b64}\n    client-key-data: {other_key_b64}\n"), "client-certificate and key do not belong together"),
            (format!("{GOOD}    client-certificate-data: {cert_b64}\n"), "without client-key"),
            (format!("{GOOD}    auth-provider:\n      name: oidc\n      config:\n        id-token: secret-id-token\n"), "auth-provider \"oidc\" is not supported; use an exec"),
            (format!("{GOOD}    username: admin\n    password: hunter2\n"), "basic auth"),
            (format!("{GOOD}    exec: hunter2\n"), "exec: expected a mapping"),
            (format!("{GOOD}    exec:\n      env: [hunter2]\n"), "exec: expected a mapping with name and value"),
            (format!("{GOOD}    tokenFile: /nonexistent/token\n"), "tokenFile /nonexistent/token"),
            // A boolean is not text (client-go refuses it too); a number is (see numbers_are_text_…).
            (format!("{GOOD}    token: true\n"), "users[0] \"u\": token: expected a string"),
            (format!("{GOOD}    token: abc\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: x\n"), "keep only one"),
            (format!("{GOOD}    exec:\n      apiVersion: client.authentication.k8s.io/v1alpha1\n      command: x\n"), "apiVersion \"client.authentication.k8s.io/v1alpha1\" is not supported"),
            (format!("{GOOD}    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"), "command is missing"),
            (format!("{GOOD}    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: x\n      env:\n      - value: v\n"), "env[0]: name is missing"),
        ];
        for (text, needle) in cases {
            let msg = err_text(load_text(&text));
            assert!(
                msg.contains(needle),
                "{text:?}\n  gave {msg:?}\n  wanted {needle:?}"
            );
            assert!(
                !msg.contains("secret-id-token") && !msg.contains("hunter2"),
                "{msg}"
            );
            assert!(msg.contains("kubeconfig "), "{msg}");
        }
        let missing = load_file(Path::new("/nonexistent/kubeconfig"), None);
        assert!(err_text(missing).contains("/nonexistent/kubeconfig"));
    }

    #[test]
    fn numbers_are_text_and_empty_or_null_values_are_absent() {
        let text = GOOD
            .replace("- name: c\n", "- name: 42\n")
            .replace("cluster: c\n", "cluster: 42\n    namespace: ''\n")
            .replace(
                "https://h:6443\n",
                "https://h:6443\n    tls-server-name: ~\n",
            );
        let c = load_text(&format!("{text}    token: 0777\n")).unwrap();
        assert_eq!(c.cluster_name, "42");
        assert_eq!((c.namespace, c.tls.server_name), (None, None));
        assert!(matches!(&c.auth, AuthSource::Token(t) if t == "0777"));
        let c = load_text(&format!("{text}    token: 7\n")).unwrap();
        assert!(matches!(&c.auth, AuthSource::Token(t) if t == "7"));
    }

    /// A hand-edited kubeconfig as docs write one: the context as a flow mapping.
    #[test]
    fn a_context_written_as_a_flow_mapping_loads() {
        let text = GOOD.replace(
            "  context:\n    cluster: c\n    user: u\n",
            "  context: {cluster: c, user: u, namespace: team-a}\n",
        );
        assert_ne!(text, GOOD);
        let c = load_text(&format!("{text}    token: t\n")).unwrap();
        assert_eq!(c.server, "https://h:6443");
        assert_eq!(c.namespace.as_deref(), Some("team-a"));
    }

    #[test]
    fn gcloud_kubeconfig_with_a_wrapped_install_hint_loads() {
        // What `gcloud container clusters get-credentials` writes: the hint goes on over a second,
        // more-indented line.
        let text = format!(
            "{GOOD}    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: gke-gcloud-auth-plugin\n      installHint: Install gke-gcloud-auth-plugin for use with kubectl by following\n        https://cloud.google.com/blog/products/containers-kubernetes/kubectl-auth-changes-in-gke\n      provideClusterInfo: true\n"
        );
        let AuthSource::Exec(e) = load_text(&text).unwrap().auth else {
            panic!()
        };
        assert_eq!(e.command, "gke-gcloud-auth-plugin");
        assert_eq!(
            e.install_hint.as_deref(),
            Some(
                "Install gke-gcloud-auth-plugin for use with kubectl by following \
                 https://cloud.google.com/blog/products/containers-kubernetes/kubectl-auth-changes-in-gke"
            )
        );
        assert!(e.provide_cluster_info);
    }

    #[test]
    fn exec_paths_and_env_resolve() {
        let dir = TempDir::new();
        let text = format!(
            "{GOOD}    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: bin/plugin\n      args: [a, 2]\n      env: null\n      provideClusterInfo: true\n      installHint: |\n        get it\n"
        );
        let path = dir.write("config", &text);
        let c = load_file(&path, None).unwrap();
        let AuthSource::Exec(e) = c.auth else {
            panic!()
        };
        assert_eq!(e.command, dir.0.join("bin/plugin").display().to_string());
        assert_eq!(e.args, ["a", "2"]);
        assert!(e.env.is_empty() && e.provide_cluster_info);
        assert_eq!(e.install_hint.as_deref(), Some("get it\n"));
    }
}
