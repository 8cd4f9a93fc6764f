//! The `paperlb` binary: dispatches subcommands and maps errors to exit codes (0 ok, 1 runtime
//! failure, 2 usage error). Everything else lives in the library; nothing below main exits.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use paperlb::cli::Usage;
use paperlb::kube::config::LoadOptions;

const HELP: &str = "\
paperlb: external nginx load balancers for Kubernetes LoadBalancer Services

Usage: paperlb <command> [flags]

Commands:
  controller      run the operator (watches Services, allocates LB ports, drives updaters)
  nginx-updater   run the HTTP updater on the load balancer host (writes nginx stream config)
  check           check access to the cluster: config, server version, CRDs, permissions
  version         print the version

Run `paperlb <command> --help` for a command's flags. Logging: RUST_LOG (default info).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        "version" | "--version" => {
            println!("paperlb {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "check" => {
            let load = LoadOptions::from_env(None, None);
            run(
                paperlb::check::parse(rest, load),
                paperlb::check::HELP,
                paperlb::check::run,
            )
        }
        "nginx-updater" => {
            let parsed = paperlb::updater::cli::parse(rest);
            run(
                parsed,
                paperlb::updater::cli::HELP,
                paperlb::updater::cli::run,
            )
        }
        other => usage(
            &Usage(format!("unknown command {other:?}")),
            "paperlb --help",
        ),
    }
}

/// Shared tail of every subcommand: help, usage errors (2), runtime errors (1).
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
            init_logging();
            match body(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn usage(u: &Usage, hint: &str) -> ExitCode {
    eprintln!("error: {u}\n(see {hint})");
    ExitCode::from(2)
}

fn init_logging() {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .init();
}
