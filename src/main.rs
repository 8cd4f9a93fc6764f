//! The `paperlb` binary: dispatches subcommands and maps errors to exit codes (0 ok, 1 runtime
//! failure, 2 usage error; an error may carry its own, `cli::Exit`: explain and check use 1 and 2,
//! see their help). Everything else lives in the library; nothing below main exits.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use paperlb::cli::{Exit, Usage};
use paperlb::kube::config::LoadOptions;
use paperlb::{check, controller, explain, updater};

const HELP: &str = "\
paperlb: external nginx load balancers for Kubernetes LoadBalancer Services

Usage: paperlb <command> [flags]

Commands:
  controller      run the operator (watches Services, allocates LB ports, drives updaters)
  nginx-updater   run the HTTP updater on the load balancer host (writes nginx stream config)
  check           check access to the cluster: config, server version, CRDs, permissions, LB hosts
  explain         say why a LoadBalancer Service is or is not served (NS/NAME)
  version         print the version (also -V, --version)

Run `paperlb <command> --help` for a command's flags. Logging: RUST_LOG (default info).
Exit codes: 0 ok, 1 failure, 2 usage error (explain and check: see their --help).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    // KUBECONFIG, the in-cluster variables and HOME: read here only (flags override them).
    let from_env = || LoadOptions::from_env(None, None);
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        "version" | "--version" | "-V" => {
            println!("paperlb {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "check" => run(check::parse(rest, from_env()), check::HELP, check::run),
        "explain" => run(
            explain::parse(rest, from_env()),
            explain::HELP,
            explain::run,
        ),
        "controller" => {
            let parsed = controller::cli::parse(rest, from_env(), &default_identity());
            init_logging(matches!(&parsed, Ok(Some(c)) if c.verbose));
            run(parsed, controller::cli::HELP, controller::run::run)
        }
        "nginx-updater" => run(
            updater::cli::parse(rest),
            updater::cli::HELP,
            updater::cli::run,
        ),
        other => usage(
            &Usage(format!("unknown command {other:?}")),
            "paperlb --help",
        ),
    }
}

/// Shared tail of every subcommand: help, usage errors (2), errors (an `Exit`'s own code, else 1).
fn run<C>(
    parsed: Result<Option<C>, Usage>,
    help: &str,
    body: impl FnOnce(C) -> Result<(), Box<dyn std::error::Error>>,
) -> ExitCode {
    match parsed {
        Ok(None) => {
            print!("{help}");
            ExitCode::SUCCESS
        }
        Err(u) => usage(&u, "--help"),
        Ok(Some(config)) => {
            init_logging(false);
            match body(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(e.downcast_ref::<Exit>().map_or(1, |x| x.code))
                }
            }
        }
    }
}

fn usage(u: &Usage, hint: &str) -> ExitCode {
    eprintln!("error: {u}\n(see {hint})");
    ExitCode::from(2)
}

/// Logging to stderr, `info` unless RUST_LOG says otherwise (`verbose`, the controller's `-v`:
/// `debug`). The first call sets it up; later ones change nothing.
fn init_logging(verbose: bool) {
    let env = env_logger::Env::default().default_filter_or(if verbose { "debug" } else { "info" });
    let _ = (env_logger::Builder::from_env(env).format_timestamp_millis()).try_init();
}

/// The leader-election identity's base: the pod name in a cluster, else the host name.
fn default_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
