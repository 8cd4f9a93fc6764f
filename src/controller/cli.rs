//! `paperlb controller` flags, resolved once into a validated [`Config`].
//!
//! Must not: read the environment (main passes what it read) or start anything.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{self, Arg, Usage};
use crate::kube::config::LoadOptions;

pub const HELP: &str = "\
paperlb controller: give type: LoadBalancer Services an address on an external nginx

Usage: paperlb controller [flags]

Watches Services, Nodes, EndpointSlices, LoadBalancers and LoadBalancerConfigs; allocates a port on the
load balancer host for every Service port, records it in a LoadBalancer resource, pushes the upstreams
to the config's updater and sets the Service's external address.

Flags:
  --kubeconfig PATH          kubeconfig file (default: $KUBECONFIG, in-cluster, then ~/.kube/config)
  --context NAME             kubeconfig context (default: current-context)
  --namespace NS             where LoadBalancerConfigs and the Lease live (default: paperlb-system)
  --metrics-addr ADDR        serve /healthz, /readyz and /metrics here (default: :8080; \"off\" disables)
  --leader-elect[=BOOL]      elect a leader on Lease paperlb-controller before writing (default: false)
  --leader-elect-identity ID identity in the Lease (default: $POD_NAME or hostname, plus a random suffix)
  --address-type LIST        node address types to use as targets, in order of preference
                             (default: ExternalIP,InternalIP)
  -v                         debug logging (same as RUST_LOG=debug)
  -h, --help                 this help
";

/// Validated controller configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub load: LoadOptions,
    pub namespace: String,
    pub metrics_addr: Option<SocketAddr>,
    pub leader_elect: bool,
    pub identity: String,
    pub address_types: Vec<String>,
    pub verbose: bool,
    /// How long to wait for a clean stop after SIGTERM before giving up on the current work.
    pub shutdown_grace: Duration,
}

/// Parses the flags after `controller`. `default_identity` is `$POD_NAME` or the hostname, read by main.
pub fn parse(
    args: &[String],
    load: LoadOptions,
    default_identity: &str,
) -> Result<Option<Config>, Usage> {
    let mut c = Config {
        load,
        namespace: "paperlb-system".into(),
        metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
        leader_elect: false,
        identity: String::new(),
        address_types: vec!["ExternalIP".into(), "InternalIP".into()],
        verbose: false,
        shutdown_grace: Duration::from_secs(5),
    };
    let values = [
        "kubeconfig",
        "context",
        "namespace",
        "metrics-addr",
        "leader-elect-identity",
        "address-type",
    ];
    for arg in cli::parse(args, &values, &["leader-elect", "v"])? {
        match arg {
            Arg::Help => return Ok(None),
            Arg::Switch(s) if s == "leader-elect" => c.leader_elect = true,
            Arg::Switch(s) if s == "v" => c.verbose = true,
            Arg::Value(k, v) => match k.as_str() {
                "kubeconfig" => c.load.kubeconfig = Some(v.into()),
                "context" => c.load.context = Some(v),
                "namespace" if !v.is_empty() => c.namespace = v,
                "metrics-addr" => c.metrics_addr = parse_addr(&v)?,
                "leader-elect" => c.leader_elect = cli::boolean(&k, &v)?,
                "leader-elect-identity" if !v.is_empty() => c.identity = v,
                "address-type" => c.address_types = parse_address_types(&v)?,
                _ => return Err(Usage(format!("flag --{k}: invalid value {v:?}"))),
            },
            Arg::Switch(s) => return Err(Usage(format!("flag --{s} needs a value"))),
        }
    }
    if c.identity.is_empty() {
        c.identity = format!(
            "{}_{}",
            default_identity_or_host(default_identity),
            random_suffix()
        );
    }
    Ok(Some(c))
}

/// `:8080` (all interfaces), `127.0.0.1:9090`, `[::]:8080`, or `off`.
fn parse_addr(v: &str) -> Result<Option<SocketAddr>, Usage> {
    if v == "off" || v == "0" {
        return Ok(None);
    }
    let full = if v.starts_with(':') {
        format!("0.0.0.0{v}")
    } else {
        v.to_string()
    };
    full.parse().map(Some).map_err(|_| {
        Usage(format!(
            "flag --metrics-addr: expected HOST:PORT, :PORT or off, got {v:?}"
        ))
    })
}

fn parse_address_types(v: &str) -> Result<Vec<String>, Usage> {
    let mut out = Vec::new();
    for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        match t {
            "ExternalIP" | "InternalIP" => out.push(t.to_string()),
            _ => {
                return Err(Usage(format!(
                    "flag --address-type: {t:?} is not ExternalIP or InternalIP"
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(Usage(
            "flag --address-type: name at least one of ExternalIP, InternalIP".into(),
        ));
    }
    Ok(out)
}

fn default_identity_or_host(d: &str) -> &str {
    if d.is_empty() { "paperlb" } else { d }
}

/// Distinguishes two processes started with the same pod name or hostname (client-go appends a UUID).
fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:08x}", nanos ^ std::process::id().rotate_left(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_are_production_ones() {
        let c = parse(&[], LoadOptions::default(), "pod-a")
            .unwrap()
            .unwrap();
        assert_eq!(c.namespace, "paperlb-system");
        assert_eq!(c.metrics_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert!(!c.leader_elect);
        assert!(c.identity.starts_with("pod-a_"));
        assert_eq!(c.address_types, vec!["ExternalIP", "InternalIP"]);
    }

    #[test]
    fn flags_override_and_bad_values_are_usage_errors() {
        let c = parse(
            &args(&[
                "--namespace=x",
                "--metrics-addr",
                "off",
                "--leader-elect=true",
                "--address-type",
                "InternalIP",
            ]),
            LoadOptions::default(),
            "",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (c.namespace.as_str(), c.metrics_addr, c.leader_elect),
            ("x", None, true)
        );
        assert_eq!(c.address_types, vec!["InternalIP"]);
        assert!(
            parse(
                &args(&["--address-type", "Hostname"]),
                LoadOptions::default(),
                ""
            )
            .is_err()
        );
        assert!(
            parse(
                &args(&["--metrics-addr", "nope"]),
                LoadOptions::default(),
                ""
            )
            .is_err()
        );
        assert!(parse(&args(&["--leader-elect=maybe"]), LoadOptions::default(), "").is_err());
        assert!(parse(&args(&["--bogus"]), LoadOptions::default(), "").is_err());
        assert!(
            parse(&args(&["-h"]), LoadOptions::default(), "")
                .unwrap()
                .is_none()
        );
    }
}
