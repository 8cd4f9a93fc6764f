//! Where the API server is and how to authenticate: kubeconfig files and in-cluster configuration,
//! resolved in client-go's order into one [`ClusterConfig`].
//!
//! Owns: the resolution order (`--kubeconfig`, `KUBECONFIG`, in-cluster, `~/.kube/config`), merging
//! of several kubeconfig files, relative path resolution, and reading the files they name.
//! Must not: open network connections or print secrets.

// kube::Error is large (its Api variant holds a whole Status); boxing it is error.rs's call, not ours.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use super::Error;

/// Everything needed to reach one cluster as one user. Built once at start-up.
#[derive(Debug, Clone, Default)]
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

/// How to verify the server and present ourselves at the TLS layer. PEM bytes, already read from files.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// CA bundle (one or more PEM certificates); None = the platform has none we use: an error for https.
    pub ca_pem: Option<Vec<u8>>,
    /// `insecure-skip-tls-verify`.
    pub insecure: bool,
    /// `tls-server-name`: the name to send as SNI and verify the certificate against.
    pub server_name: Option<String>,
    /// Static client certificate chain and key (PEM), from `client-certificate(-data)`/`client-key(-data)`.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
}

/// Where the bearer token (or the exec-provided client certificate) comes from.
#[derive(Debug, Clone, Default)]
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

/// `users[].user.exec` of a kubeconfig.
#[derive(Debug, Clone, Default)]
pub struct ExecConfig {
    /// `client.authentication.k8s.io/v1` or `v1beta1`.
    pub api_version: String,
    /// Resolved command: relative commands containing `/` are made absolute against the kubeconfig's dir.
    pub command: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub provide_cluster_info: bool,
    pub install_hint: Option<String>,
}

/// Options that pick the configuration (from the CLI).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// Resolve the configuration in client-go's order. Placeholder until the kubeconfig work lands.
pub fn load(_opts: &LoadOptions) -> Result<ClusterConfig, Error> {
    Err(Error::Config {
        what: "kubeconfig loading is not implemented yet".into(),
    })
}
