//! The guard of `bench kube` (the controller workload against any apiserver): it creates and deletes
//! Nodes, Services and a default LoadBalancerConfig, so it runs against a loopback server only
//! unless the user says `--allow-remote`.

use std::net::IpAddr;
use std::path::Path;

use paperlb::kube::config::{LoadOptions, load};

/// The server of `kubeconfig` (`context`, else its current context), if it may be benched: a
/// loopback address (127.0.0.0/8, ::1) or `localhost`, or anything when `allow_remote`. The name is
/// not resolved: only what the kubeconfig says counts.
pub fn bench_server(
    kubeconfig: &Path,
    context: Option<&str>,
    allow_remote: bool,
) -> Result<String, String> {
    let cluster = load(&LoadOptions {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: context.map(str::to_string),
        ..LoadOptions::default()
    })
    .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
    if allow_remote || is_loopback_url(&cluster.server) {
        return Ok(cluster.server);
    }
    Err(format!(
        "{}: server {} is not a loopback address; the bench creates and deletes Nodes, Services and \
         a default LoadBalancerConfig there: pass --allow-remote to bench it anyway",
        kubeconfig.display(),
        cluster.server
    ))
}

/// `https://127.x.y.z[:port]`, `https://[::1][:port]` or `https://localhost[:port]` (any scheme).
pub fn is_loopback_url(server: &str) -> bool {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']').map_or("", |(h, _)| h)
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
