//! The `paperlb` binary: parses the command line and maps errors to exit codes (0 ok, 1 runtime
//! failure, 2 usage error). Everything else lives in the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    println!("paperlb {}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}
