//! Small hand-rolled flag parsing shared by the subcommands: `--flag value`, `--flag=value`, `-h/--help`,
//! unknown flags rejected. Each subcommand turns its raw flags into a validated config once.
//! Must not: read the environment (main does, once) or exit the process.

use std::fmt;
use std::net::SocketAddr;

/// A usage error: bad or unknown flag, missing value. main prints it with a hint and exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// An outcome with its own exit code, returned by a subcommand's `run`: main prints `message` and
/// exits with `code`. The codes: 1 a definite "no" (explain: not served; check: warnings
/// only), 2 could not tell (configuration, API server, problems found). Other errors exit 1, and a
/// boxed `Usage` 2, as a usage error found by `parse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

impl Exit {
    /// Could not tell (exit 2): the configuration, the API server or a check failed.
    pub fn unsure(e: impl fmt::Display) -> Exit {
        Exit {
            code: 2,
            message: e.to_string(),
        }
    }
}

/// One parsed command-line item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// `--name value` or `--name=value` (the name without dashes) for flags that take a value.
    Value(String, String),
    /// A boolean flag such as `--insecure` (`--flag=false` is parsed as `Value`).
    Switch(String),
    /// `-h` or `--help`.
    Help,
}

/// Splits `args` into flags. `takes_value` names the flags that need a value; `switches` the boolean
/// ones (and `-v`). Anything else, and any positional argument, is a usage error.
pub fn parse(args: &[String], takes_value: &[&str], switches: &[&str]) -> Result<Vec<Arg>, Usage> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-h" || a == "--help" {
            out.push(Arg::Help);
            continue;
        }
        let Some(body) = a
            .strip_prefix("--")
            .or_else(|| a.strip_prefix('-').filter(|b| b.len() == 1))
        else {
            return Err(Usage(format!("unexpected argument {a:?}")));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if takes_value.contains(&name) {
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| Usage(format!("flag --{name} needs a value")))?,
            };
            out.push(Arg::Value(name.to_string(), value));
        } else if switches.contains(&name) {
            match inline {
                None => out.push(Arg::Switch(name.to_string())),
                Some(v) => out.push(Arg::Value(name.to_string(), v)),
            }
        } else {
            return Err(Usage(format!("unknown flag {a:?}")));
        }
    }
    Ok(out)
}

/// Parses a flag value with `FromStr`, naming the flag in the error.
pub fn value<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Usage> {
    v.parse()
        .map_err(|_| Usage(format!("flag --{name}: invalid value {v:?}")))
}

/// A listen address: `IP:PORT` (`127.0.0.1:9090`, `[::]:8080`), `HOST:PORT` (resolved once, here:
/// `localhost:3000`), or `:PORT` for every IPv4 address (`0.0.0.0:PORT`, as Go programs read it).
pub fn socket_addr(name: &str, v: &str) -> Result<SocketAddr, Usage> {
    use std::net::ToSocketAddrs;
    let full = match v.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => v.to_string(),
    };
    full.parse()
        .ok()
        .or_else(|| full.to_socket_addrs().ok()?.next())
        .ok_or_else(|| {
            Usage(format!(
                "flag --{name}: expected IP:PORT, HOST:PORT, [IPv6]:PORT or :PORT (every address), got {v:?}"
            ))
        })
}

/// Parses a switch given as `--flag=true|false`.
pub fn boolean(name: &str, v: &str) -> Result<bool, Usage> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Usage(format!(
            "flag --{name}: expected true or false, got {v:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_both_value_forms_switches_and_help() {
        let got = parse(
            &s(&["--a", "1", "--b=2", "--x", "-h", "-v"]),
            &["a", "b"],
            &["x", "v"],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Arg::Value("a".into(), "1".into()),
                Arg::Value("b".into(), "2".into()),
                Arg::Switch("x".into()),
                Arg::Help,
                Arg::Switch("v".into()),
            ]
        );
    }

    #[test]
    fn socket_addrs_take_port_only_as_every_address() {
        for (v, want) in [
            (":3000", "0.0.0.0:3000"),
            ("127.0.0.1:3000", "127.0.0.1:3000"),
            ("[::1]:3000", "[::1]:3000"),
            ("[::]:0", "[::]:0"),
        ] {
            assert_eq!(socket_addr("listen", v), Ok(want.parse().unwrap()), "{v}");
        }
        // A host name is resolved once (/etc/hosts names localhost on any machine).
        let local = socket_addr("listen", "localhost:3000").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 3000, "{local}");
    }

    #[test]
    fn rejects_unknown_flags_positionals_and_missing_values() {
        assert!(
            parse(&s(&["--nope"]), &["a"], &[])
                .unwrap_err()
                .0
                .contains("unknown flag")
        );
        assert!(
            parse(&s(&["pos"]), &["a"], &[])
                .unwrap_err()
                .0
                .contains("unexpected argument")
        );
        assert!(
            parse(&s(&["--a"]), &["a"], &[])
                .unwrap_err()
                .0
                .contains("needs a value")
        );
        assert!(value::<u16>("port", "x").is_err());
        for bad in ["3000", "x", ":", ":x", ":70000", "127.0.0.1"] {
            let e = socket_addr("listen", bad).unwrap_err().0;
            assert!(e.contains("--listen") && e.contains(":PORT"), "{bad}: {e}");
        }
        assert!(boolean("x", "maybe").is_err());
    }
}
