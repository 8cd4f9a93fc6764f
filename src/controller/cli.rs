//! `paperlb controller` flags, resolved once into a validated [`Config`].
//!
//! Must not: read the environment (main passes what it read) or start anything.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::{self, Arg, Usage};
use crate::controller::Context;
use crate::kube::client::ClientOptions;
use crate::kube::config::LoadOptions;
use crate::kube::lease::LeaseConfig;

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
  --leader-elect-lease-duration D
                             how long a standby waits before taking an unrenewed lease (default: 15s)
  --leader-elect-renew-deadline D
                             the leader stops writing when it has not renewed for this long
                             (default: 10s; less than the lease duration)
  --leader-elect-retry-period D
                             how often to try to acquire or renew the lease (default: 2s)
  --watch-idle-timeout D     a watch silent for this long is stalled: drop it and resume from its
                             resourceVersion (default: 5m; keep it above the apiserver's ~1 min bookmarks)
  --updater-resync D         compare each updater's backends with the LoadBalancers and repair
                             drift this often, ±10 % (default: 5m; 0 = only after start-up,
                             leadership and an updater's recovery)
  --host-failure-grace D     with several LB hosts per config (spec.hosts): a host whose updater
                             has not answered for this long leaves the Services' ingress; its
                             /healthz is probed every grace/6, 1s to 10s (default: 30s)
  --unreachable-delete-grace D
                             a LoadBalancer being deleted whose updater has not answered at all
                             for this long is let go: its finalizer is released with a Warning
                             Event naming the backend left on that host, which drift repair
                             removes once the updater answers again (default: 5m)
  --address-type LIST        node address types to use as targets, in order of preference, per
                             family of the Service's ipFamilies (default: ExternalIP,InternalIP)
  --stable-node-set[=BOOL]   with an updater health check in force, NotReady, cordoned and
                             autoscaler-tainted nodes stay targets and the check drains them
                             (KEP-3458); false: they leave the targets as soon as they turn
                             (every LoadBalancer is pushed again) (default: true)
  -v                         debug logging (same as RUST_LOG=debug)
  -h, --help                 this help

Durations are a number and a unit: 500ms, 15s, 5m.
";

/// Validated controller configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub load: LoadOptions,
    pub metrics_addr: Option<SocketAddr>,
    pub leader_elect: bool,
    /// The Lease, in the controller's namespace (`ctx.namespace`): identity and timings
    /// (client-go's defaults: 15 s, 10 s, 2 s; whole seconds for the lease duration).
    pub lease: LeaseConfig,
    /// What every reconcile starts from (the worker adds the time and the failing updaters):
    /// `--address-type`, `--stable-node-set` (keep NotReady nodes as targets while a health check
    /// drains them), `--host-failure-grace` (how long a failing host of a several-host config
    /// stays in the ingress) and `--unreachable-delete-grace` (how long an updater that does not
    /// answer may hold a LoadBalancer's deletion), and `--namespace`, where LoadBalancerConfigs,
    /// their Secrets and the Lease live.
    pub ctx: Context,
    pub verbose: bool,
    /// The API client's timeouts; `--watch-idle-timeout` sets the watches' stall detector.
    pub client: ClientOptions,
    /// Period of drift checks of each updater; zero: no periodic check.
    pub updater_resync: Duration,
}

/// Parses the flags after `controller`. `default_identity` is `$POD_NAME` or the hostname, read by main.
pub fn parse(
    args: &[String],
    load: LoadOptions,
    default_identity: &str,
) -> Result<Option<Config>, Usage> {
    let mut c = Config {
        load,
        metrics_addr: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
        leader_elect: false,
        lease: LeaseConfig::default(),
        ctx: Context::new("paperlb-system", ""),
        verbose: false,
        client: ClientOptions::default(),
        updater_resync: super::run::resync::DEFAULT_PERIOD,
    };
    let ms = |d: Duration| d.as_millis() as u64;
    for arg in cli::parse(args, HELP)? {
        match arg {
            Arg::Help => return Ok(None),
            Arg::Switch(s) if s == "leader-elect" => c.leader_elect = true,
            Arg::Switch(s) if s == "v" => c.verbose = true,
            Arg::Switch(s) if s == "stable-node-set" => c.ctx.stable_node_set = true,
            Arg::Value(k, v) => match k.as_str() {
                "kubeconfig" => c.load.kubeconfig = Some(v.into()),
                "context" => c.load.context = Some(v),
                "namespace" if !v.is_empty() => c.ctx.namespace = v,
                // `:8080` (all interfaces), `127.0.0.1:9090`, `[::]:8080`, or `off`.
                "metrics-addr" if v == "off" || v == "0" => c.metrics_addr = None,
                "metrics-addr" => {
                    let or_off = |Usage(m)| Usage(format!("{m}; or off to disable"));
                    c.metrics_addr = Some(cli::socket_addr(&k, &v).map_err(or_off)?)
                }
                "leader-elect" => c.leader_elect = cli::boolean(&k, &v)?,
                "stable-node-set" => c.ctx.stable_node_set = cli::boolean(&k, &v)?,
                "leader-elect-identity" if !v.is_empty() => c.lease.identity = v,
                "address-type" => c.ctx.address_types = parse_address_types(&v)?,
                "leader-elect-lease-duration" => c.lease.lease_duration = parse_duration(&k, &v)?,
                "leader-elect-renew-deadline" => c.lease.renew_deadline = parse_duration(&k, &v)?,
                "leader-elect-retry-period" => c.lease.retry_period = parse_duration(&k, &v)?,
                "watch-idle-timeout" => c.client.watch_idle_timeout = parse_duration(&k, &v)?,
                "updater-resync" if v == "0" || v == "0s" => c.updater_resync = Duration::ZERO,
                "updater-resync" => c.updater_resync = parse_duration(&k, &v)?,
                "host-failure-grace" => c.ctx.host_grace_ms = ms(parse_duration(&k, &v)?),
                "unreachable-delete-grace" => c.ctx.delete_grace_ms = ms(parse_duration(&k, &v)?),
                _ => return Err(Usage(format!("flag --{k}: invalid value {v:?}"))),
            },
            Arg::Switch(s) => return Err(Usage(format!("flag --{s} needs a value"))),
        }
    }
    check_timings(&c)?;
    c.lease.namespace = c.ctx.namespace.clone();
    if c.lease.identity.is_empty() {
        let base = Some(default_identity).filter(|s| !s.is_empty());
        let base = base.unwrap_or("paperlb");
        c.lease.identity = format!("{base}_{}", random_suffix());
    }
    Ok(Some(c))
}

/// `500ms`, `15s`, `5m`: a whole number and a unit.
fn parse_duration(flag: &str, v: &str) -> Result<Duration, Usage> {
    let bad = || {
        Usage(format!(
            "flag --{flag}: expected a duration such as 500ms, 15s or 5m, got {v:?}"
        ))
    };
    let digits = v.find(|ch: char| !ch.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = v[..digits].parse().map_err(|_| bad())?;
    let d = match &v[digits..] {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(Usage(format!(
            "flag --{flag}: must be more than 0, got {v:?}"
        )));
    }
    Ok(d)
}

/// client-go's rules: lease duration > renew deadline > 1.2 × retry period (so the leader stops
/// writing before a standby may take over, and gets a few tries before it stops). The lease is
/// written in whole seconds. A stall detector under a second would trip on healthy streams.
fn check_timings(c: &Config) -> Result<(), Usage> {
    let l = &c.lease;
    let (lease, renew, retry) = (l.lease_duration, l.renew_deadline, l.retry_period);
    let (resync, idle) = (c.updater_resync, c.client.watch_idle_timeout);
    let second = Duration::from_secs(1);
    let problem = if lease.subsec_nanos() != 0 {
        format!("leader-elect-lease-duration: must be whole seconds, got {lease:?}")
    } else if renew >= lease {
        format!(
            "leader-elect-renew-deadline: {renew:?} must be less than the lease duration {lease:?}"
        )
    } else if renew <= retry.mul_f64(1.2) {
        format!(
            "leader-elect-renew-deadline: {renew:?} must be more than 1.2 × the retry period {retry:?}"
        )
    } else if !resync.is_zero() && resync < second {
        format!("updater-resync: must be 0 (off) or at least 1s, got {resync:?}")
    } else if idle < second {
        format!("watch-idle-timeout: must be at least 1s, got {idle:?}")
    } else {
        return Ok(());
    };
    Err(Usage(format!("flag --{problem}")))
}

pub(crate) fn parse_address_types(v: &str) -> Result<Vec<String>, Usage> {
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
        assert_eq!(c.ctx.namespace, "paperlb-system");
        assert_eq!(c.metrics_addr, Some("0.0.0.0:8080".parse().unwrap()));
        assert!(!c.leader_elect);
        assert!(c.lease.identity.starts_with("pod-a_"));
        assert_eq!(c.ctx.address_types, vec!["ExternalIP", "InternalIP"]);
        let timings = (
            c.lease.lease_duration,
            c.lease.renew_deadline,
            c.lease.retry_period,
            c.client.watch_idle_timeout,
        );
        let secs = Duration::from_secs;
        assert_eq!(timings, (secs(15), secs(10), secs(2), secs(300)));
    }

    #[test]
    fn updater_resync_is_5m_by_default_0_turns_it_off() {
        let get = |a: &[&str]| {
            parse(&args(a), LoadOptions::default(), "").map(|c| c.unwrap().updater_resync)
        };
        assert_eq!(get(&[]).unwrap(), Duration::from_secs(300));
        assert_eq!(
            get(&["--updater-resync=2s"]).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(get(&["--updater-resync", "0"]).unwrap(), Duration::ZERO);
        assert_eq!(get(&["--updater-resync=0s"]).unwrap(), Duration::ZERO);
        for bad in [
            "--updater-resync=500ms",
            "--updater-resync=5",
            "--updater-resync=x",
        ] {
            assert!(get(&[bad]).is_err(), "{bad}");
        }
    }

    /// The flags are the ones the help lists, each taking a value or not as it shows.
    #[test]
    fn the_help_lists_every_flag_parse_takes() {
        let value = [
            "kubeconfig",
            "context",
            "namespace",
            "metrics-addr",
            "leader-elect-identity",
            "leader-elect-lease-duration",
            "leader-elect-renew-deadline",
            "leader-elect-retry-period",
            "watch-idle-timeout",
            "updater-resync",
            "host-failure-grace",
            "unreachable-delete-grace",
            "address-type",
        ];
        let switches = ["leader-elect", "stable-node-set", "v"];
        let mut want: Vec<(&str, bool)> = value.iter().map(|f| (*f, true)).collect();
        want.extend(switches.iter().map(|f| (*f, false)));
        let mut got = cli::flags(HELP);
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn timing_flags_parse_durations_and_keep_client_go_rules() {
        let c = parse(
            &args(&[
                "--leader-elect-lease-duration=4s",
                "--leader-elect-renew-deadline",
                "3s",
                "--leader-elect-retry-period=500ms",
                "--watch-idle-timeout=2m",
            ]),
            LoadOptions::default(),
            "",
        )
        .unwrap()
        .unwrap();
        let timings = (
            c.lease.lease_duration,
            c.lease.renew_deadline,
            c.lease.retry_period,
            c.client.watch_idle_timeout,
        );
        let ms = Duration::from_millis;
        assert_eq!(timings, (ms(4000), ms(3000), ms(500), ms(120_000)));
        for bad in [
            &["--watch-idle-timeout=5"][..],
            &["--watch-idle-timeout=5h"],
            &["--watch-idle-timeout=0s"],
            &["--watch-idle-timeout=500ms"],
            &["--watch-idle-timeout=-1s"],
            &["--watch-idle-timeout=99999999999999999999m"],
            &["--leader-elect-lease-duration=1500ms"],
            // Renew deadline not below the lease duration.
            &["--leader-elect-renew-deadline=15s"],
            // Renew deadline not above 1.2 × the retry period.
            &["--leader-elect-retry-period=9s"],
        ] {
            let e = parse(&args(bad), LoadOptions::default(), "");
            assert!(e.is_err(), "{bad:?} was accepted");
        }
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
            (c.ctx.namespace.as_str(), c.metrics_addr, c.leader_elect),
            ("x", None, true)
        );
        assert_eq!(c.ctx.address_types, vec!["InternalIP"]);
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
        let stable = |a: &[&str]| {
            parse(&args(a), LoadOptions::default(), "").map(|c| c.unwrap().ctx.stable_node_set)
        };
        assert!(stable(&[]).unwrap(), "on by default");
        assert!(!stable(&["--stable-node-set=false"]).unwrap());
        assert!(stable(&["--stable-node-set"]).unwrap());
        assert!(stable(&["--stable-node-set=no"]).is_err());
        assert!(parse(&args(&["--bogus"]), LoadOptions::default(), "").is_err());
        assert!(
            parse(&args(&["-h"]), LoadOptions::default(), "")
                .unwrap()
                .is_none()
        );
    }
}
