//! `paperlb explain <namespace>/<service>`: why a Service is (not) served. Reads what the controller
//! reads, plus each updater's `GET /api/v1/lb`, and prints the path as steps.
//!
//! `facts` holds what was read, `gather` reads it (I/O only), `steps` diagnoses the cluster side and
//! `hosts` each LB host (pure, the controller's own decisions), `render` prints text or JSON. Must not: write to the cluster or an
//! updater, or print a Secret's value.

pub mod facts;
pub mod gather;
pub mod hosts;
pub mod render;
pub mod steps;

use crate::cli::{self, Arg, Exit, Usage};
use crate::controller::{Context, Key};
use crate::kube::client::{Client, ClientOptions, LOADBALANCERCONFIGS, LOADBALANCERS, ListParams};
use crate::kube::config::{self, LoadOptions};
use crate::model::LoadBalancerConfig;

pub const HELP: &str = "\
paperlb explain: say why a LoadBalancer Service is or is not served

Usage: paperlb explain <namespace>/<service> [flags]

Reads the Service, its LoadBalancer, the LoadBalancerConfig (and its Secrets, checked as the controller
checks them, never their values), Nodes, EndpointSlices, recent Events, and each LB host's updater (GET /api/v1/lb),
then prints the path as steps: ✓ passed, ✗ failed (with the fix; the steps stop there), ? could not
be checked. Read-only. Exits 0 when the Service is served on at least one LB host, 1 when it is
not (a step failed), 2 when that cannot be told (no kubeconfig, the API server cannot be reached,
a read the diagnosis needs was refused) or on a usage error.

Flags:
  -o, --output FORMAT  text (default) or json (schema: README, \"paperlb explain\")
  --kubeconfig PATH    kubeconfig file (default: $KUBECONFIG, in-cluster, then ~/.kube/config)
  --context NAME       kubeconfig context (default: current-context)
  --namespace NS       the controller's namespace (default: paperlb-system)
  --address-type LIST  the controller's --address-type, if it runs with one (default:
                       ExternalIP,InternalIP)
  -h, --help           this help
";

#[derive(Debug, Clone)]
pub struct Config {
    pub load: LoadOptions,
    /// The controller's view, as its flags set it: its namespace and `--address-type` (for configs
    /// that name none).
    pub ctx: Context,
    pub key: Key,
    pub json: bool,
}

/// Parses the arguments after `explain`; `Ok(None)` means help was asked for.
pub fn parse(args: &[String], mut load: LoadOptions) -> Result<Option<Config>, Usage> {
    // The one positional argument: not a flag, not a flag's value; `cli::parse` refuses a second.
    let value_flags = cli::flags(HELP);
    let target = (0..args.len()).find(|&i| {
        let after_value_flag =
            i > 0 && value_flags.contains(&(args[i - 1].trim_start_matches('-'), true));
        !args[i].starts_with('-') && !after_value_flag
    });
    let mut flags = args.to_vec();
    let target = target.map(|i| flags.remove(i)).unwrap_or_default();
    let mut ctx = Context::new("paperlb-system", "");
    let mut json = false;
    for arg in cli::parse(&flags, HELP)? {
        match arg {
            Arg::Help => return Ok(None),
            Arg::Value(k, v) if k == "kubeconfig" => load.kubeconfig = Some(v.into()),
            Arg::Value(k, v) if k == "context" => load.context = Some(v),
            Arg::Value(k, v) if k == "namespace" => ctx.namespace = v,
            Arg::Value(k, v) if k == "address-type" => {
                ctx.address_types = crate::controller::cli::parse_address_types(&v)?
            }
            Arg::Value(k, v) if k == "o" || k == "output" => {
                json = match v.as_str() {
                    "json" => true,
                    "text" => false,
                    _ => return Err(Usage(format!("flag -o: expected text or json, got {v:?}"))),
                }
            }
            other => return Err(Usage(format!("unexpected flag {other:?}"))),
        }
    }
    let key = match target.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Key::new(ns, name)
        }
        _ => {
            return Err(Usage(format!(
                "expected one <namespace>/<service> argument, got {target:?}"
            )));
        }
    };
    if ctx.namespace.is_empty() {
        return Err(Usage("flag --namespace: must not be empty".into()));
    }
    Ok(Some(Config {
        load,
        ctx,
        key,
        json,
    }))
}

/// `paperlb check`'s LB host report: per config in `namespace`, per host, a line (`Ok`) or a
/// problem (`Err`): reachable, authorized, version, free ports. Empty when there is no config.
pub fn check_hosts(client: &Client, namespace: &str) -> Vec<Result<String, String>> {
    let all = ListParams::default();
    let configs = gather::list(client, &LOADBALANCERCONFIGS, Some(namespace), &all);
    let configs: Vec<LoadBalancerConfig> = match configs {
        Ok(c) => c,
        Err(e) => return vec![Err(e.to_string())],
    };
    let lbs = gather::list(client, &LOADBALANCERS, None, &all);
    let why = "free ports count only what the updaters serve";
    let mut out: Vec<_> = (lbs.as_ref().err().into_iter())
        .map(|e| Err(format!("{e}; {why}")))
        .collect();
    let mut cache = crate::controller::Cache::default();
    cache.replace_load_balancers(lbs.unwrap_or_default());
    for c in configs {
        let name = format!("{namespace}/{}", c.metadata.name);
        let cfg = match c.validate() {
            Ok(cfg) => cfg,
            Err(e) => {
                out.push(Err(format!("LoadBalancerConfig {name} is invalid: {e}")));
                continue;
            }
        };
        // A host whose credentials the controller refuses, or whose Secret cannot be read, says
        // so in its own line.
        let auths = gather::secrets(client, &cfg);
        let hosts = gather::probe_hosts(&cfg, &auths);
        let ready = steps::Ready {
            cfg,
            status: Default::default(),
            requests: Vec::new(),
        };
        for h in hosts {
            let claimed = cache.ports_taken_on(&h.host.host, &Key::default());
            out.push(hosts::host_summary(&ready, &h, claimed));
        }
    }
    out
}

/// Explains, printing to stdout. `Err` with exit code 1 when the Service is not served, 2 when
/// that cannot be told (no configuration, no API server, a read the diagnosis needs failed).
pub fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = config::load(&config.load).map_err(Exit::unsure)?;
    let client = Client::new(&cluster, ClientOptions::default()).map_err(Exit::unsure)?;
    // Without an API server, or with credentials it refuses, every read below fails alike: say so
    // once and stop. (A 403 here still lets the reads try: /version may be locked down alone.)
    match client.get::<serde_json::Value>("/version") {
        Err(e) if e.code().is_none() => {
            return Err(Exit::unsure(format!("cannot reach the API server: {e}")).into());
        }
        Err(e) if e.is_unauthorized() => return Err(Exit::unsure(e).into()),
        _ => {}
    }
    let ctx = &config.ctx;
    let mut facts = gather::cluster(&client, &config.key, &ctx.namespace);
    if let Some(cfg) = steps::to_read(&facts, ctx) {
        let auths = gather::secrets(&client, &cfg);
        facts.secrets = auths.iter().map(|a| a.clone().map(|a| a.err())).collect();
        // The updaters only when the cluster side holds: the steps stop at its first failure.
        if steps::cluster_steps(&facts, ctx, &mut Vec::new()).is_some() {
            facts.hosts = gather::probe_hosts(&cfg, &auths);
        }
    }
    let report = explain(&facts, ctx);
    let out = match config.json {
        true => serde_json::to_string_pretty(&render::json(&report, &facts))? + "\n",
        false => render::text(&report, &facts),
    };
    use std::io::Write;
    std::io::stdout().lock().write_all(out.as_bytes())?;
    let code = report.exit_code();
    let message = match code {
        0 => return Ok(()),
        1 => format!("Service {} is not served", config.key),
        _ => format!("cannot tell whether Service {} is served", config.key),
    };
    Err(Exit { code, message }.into())
}

/// The whole diagnosis: the cluster steps (`steps`), then each host's (`hosts`) once they pass.
pub fn explain(f: &facts::Facts, ctx: &Context) -> steps::Report {
    let mut cluster = Vec::new();
    let ready = steps::cluster_steps(f, ctx, &mut cluster);
    let hosts: Vec<steps::HostReport> = (ready.iter())
        .flat_map(|r| f.hosts.iter().map(move |h| hosts::host_report(r, h)))
        .collect();
    steps::Report {
        steps: cluster,
        hosts,
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn load() -> LoadOptions {
        LoadOptions::from_env(None, None)
    }

    #[test]
    fn the_target_may_stand_anywhere_among_the_flags() {
        let c = parse(
            &args(&[
                "--namespace",
                "lb",
                "team/web",
                "-o",
                "json",
                "--address-type=InternalIP",
            ]),
            load(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.key, Key::new("team", "web"));
        assert_eq!(c.ctx.namespace, "lb");
        assert!(c.json);
        assert_eq!(c.ctx.address_types, vec!["InternalIP"]);
        let c = parse(&args(&["default/web"]), load()).unwrap().unwrap();
        assert!(!c.json);
        assert_eq!(c.ctx.namespace, "paperlb-system");
        assert_eq!(c.ctx.address_types, vec!["ExternalIP", "InternalIP"]);
        assert!(parse(&args(&["--help"]), load()).unwrap().is_none());
    }

    #[test]
    fn bad_targets_and_flags_are_usage_errors() {
        for bad in [
            &["web"][..],
            &["/web"],
            &["default/"],
            &["a/b/c"],
            &[],
            &["a/b", "c/d"],
            &["a/b", "-o", "yaml"],
            &["a/b", "--nope"],
            &["a/b", "--address-type", "Hostname"],
        ] {
            assert!(parse(&args(bad), load()).is_err(), "{bad:?}");
        }
    }
}
