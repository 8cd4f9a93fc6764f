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
/// only), 2 could not tell (configuration, API server, problems found). Other errors exit 1.
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

/// The flags a command's `help` lists, each with whether it takes a value: a flag line starts
/// with two spaces and a dash, then the flag's names (`--output`, `-o, --output`) and, for a flag
/// that takes one, its value's name (`--output FORMAT`); a boolean flag is bare (`-v`) or
/// `--name[=BOOL]`. `-h, --help` is left out: `parse` knows it.
pub fn flags(help: &str) -> Vec<(&str, bool)> {
    let mut out = Vec::new();
    for line in help.lines().filter(|l| l.starts_with("  -")) {
        // The first column ends at two spaces.
        let column = line.trim_start().split("  ").next().unwrap_or_default();
        let mut words = column.split(' ').peekable();
        let mut names = Vec::new();
        while let Some(w) = words.next_if(|w| w.starts_with('-')) {
            let name = w.trim_start_matches('-').trim_end_matches(',');
            names.push(name.split_once("[=").map_or(name, |(n, _)| n));
        }
        let takes_value = words.next().is_some();
        let named = names.into_iter().filter(|n| !["h", "help"].contains(n));
        out.extend(named.map(|n| (n, takes_value)));
    }
    out
}

/// Splits `args` into the flags `help` lists ([`flags`]). Anything else, and any positional
/// argument, is a usage error.
pub fn parse(args: &[String], help: &str) -> Result<Vec<Arg>, Usage> {
    let known = flags(help);
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
        match (known.iter().find(|(n, _)| *n == name), inline) {
            (None, _) => return Err(Usage(format!("unknown flag {a:?}"))),
            (Some((_, false)), None) => out.push(Arg::Switch(name.to_string())),
            (Some((_, true)), None) => {
                let value = it.next().cloned();
                let value = value.ok_or_else(|| Usage(format!("flag --{name} needs a value")))?;
                out.push(Arg::Value(name.to_string(), value));
            }
            (Some(_), Some(v)) => out.push(Arg::Value(name.to_string(), v)),
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

    /// A help text in the commands' layout: flags in the first column, a value's name after a
    /// flag that takes one, the text after two spaces or on the next lines.
    const HELP: &str = "\
cmd: does things -a lot

Flags:
  --a N        text
  -b, --bee ID text -not a flag
  --x[=BOOL]   a switch
  --long-flag-name VALUE
               text -c
  -v           a switch
  -h, --help   this help
";

    #[test]
    fn the_flags_are_those_the_help_lists() {
        let want = [
            ("a", true),
            ("b", true),
            ("bee", true),
            ("x", false),
            ("long-flag-name", true),
            ("v", false),
        ];
        assert_eq!(flags(HELP), want);
        // In the other commands' helps, every flag takes a value.
        let values = |help| Vec::from_iter(flags(help).into_iter().map(|(n, v)| (v, n)));
        let all = |names: &[&'static str]| Vec::from_iter(names.iter().map(|n| (true, *n)));
        let cluster = ["kubeconfig", "context", "namespace"];
        assert_eq!(values(crate::check::HELP), all(&cluster));
        let explain = [&["o", "output"][..], &cluster, &["address-type"]].concat();
        assert_eq!(values(crate::explain::HELP), all(&explain));
        let updater = [
            "listen",
            "streams-dir",
            "nginx-conf",
            "nginx-bin",
            "token-file",
            "tls-cert",
            "tls-key",
            "allowed-ports",
            "lb-address",
            "proxy-timeout-default",
            "proxy-connect-timeout-default",
            "worker-shutdown-timeout",
        ];
        assert_eq!(values(crate::updater::cli::HELP), all(&updater));
    }

    #[test]
    fn parses_both_value_forms_switches_and_help() {
        let got = parse(&s(&["--a", "1", "--bee=2", "--x", "-h", "-v"]), HELP).unwrap();
        assert_eq!(
            got,
            vec![
                Arg::Value("a".into(), "1".into()),
                Arg::Value("bee".into(), "2".into()),
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
            parse(&s(&["--nope"]), HELP)
                .unwrap_err()
                .0
                .contains("unknown flag")
        );
        assert!(
            parse(&s(&["pos"]), HELP)
                .unwrap_err()
                .0
                .contains("unexpected argument")
        );
        assert!(
            parse(&s(&["--a"]), HELP)
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
