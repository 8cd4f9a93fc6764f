//! `paperlb nginx-updater` flags and entry point. (placeholder: the updater work fills this in)

use crate::cli::Usage;

pub const HELP: &str = "paperlb nginx-updater: not implemented yet\n";

/// Validated configuration of the updater, built once from the flags.
#[derive(Debug, Clone, Default)]
pub struct Config {}

/// Parses the subcommand's flags (after `nginx-updater`). `Ok(None)` means `--help` was asked for.
pub fn parse(_args: &[String]) -> Result<Option<Config>, Usage> {
    Err(Usage("paperlb nginx-updater is not implemented yet".into()))
}

/// Runs the updater until shutdown.
pub fn run(_config: Config) -> Result<(), Box<dyn std::error::Error>> {
    Err("not implemented".into())
}
