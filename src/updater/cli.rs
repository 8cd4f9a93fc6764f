//! `paperlb nginx-updater` flags and entry point: flags become a validated `Config` once, `run`
//! starts the server and blocks. Must not: read the environment or exit the process (main does).

use std::net::IpAddr;
use std::path::PathBuf;

use super::server::{self, Settings, TlsFiles};
use super::validate::{MAX_TIMEOUT_SECONDS, Policy};
use crate::cli::{Arg, Usage, parse as parse_args, socket_addr, value};

pub const HELP: &str = "\
paperlb nginx-updater: serve the updater API on a load balancer host and turn its requests into
nginx stream configuration (one file per backend), tested with `nginx -t` and reloaded.

Usage: paperlb nginx-updater --listen ADDR --streams-dir DIR --nginx-conf FILE [flags]

Required:
  --listen ADDR                  address to serve the API on: IP:PORT, e.g. 192.0.2.10:3000,
                                 HOST:PORT (resolved at start), or :PORT for every address, e.g. :3000
  --streams-dir DIR              directory of the generated <backendName>.conf files
  --nginx-conf FILE              the main nginx.conf; it must `include DIR/*.conf;` inside its
                                 `stream {}` block (checked at start)

Optional:
  --nginx-bin PATH               nginx binary (default /usr/sbin/nginx)
  --token-file FILE              require `Authorization: Bearer <token>` on /api/*, token read from
                                 FILE (re-read when it changes, within 2 s); without it the API is
                                 open to anyone who can reach the port (a warning is logged)
  --tls-cert FILE                serve HTTPS with this PEM certificate chain (needs --tls-key);
                                 reloaded when it changes, a broken new pair keeps the old one
  --tls-key FILE                 the PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
  --allowed-ports LOW-HIGH       LB ports requests may use (default 1024-65535)
  --lb-address ADDR[,ADDR]       IPv4 or IPv6 addresses the LB ports listen on (one `listen ADDR:PORT;`
                                 each), e.g. 203.0.113.10, 2001:db8::10 or both (dual stack), `::`
                                 for every IPv6 address; without it they listen on every IPv4
                                 address (`listen PORT;`)
  --proxy-timeout-default S      proxy_timeout when a request says 0 (default 600, nginx's own)
  --proxy-connect-timeout-default S
                                 proxy_connect_timeout when a request says 0 (default 60)
  --worker-shutdown-timeout S    after a reload, old nginx workers close the connections they
                                 still serve after S seconds, so they cannot pile up (default
                                 30, 1-3600; 0 leaves nginx's setting alone). Written to
                                 DIR/main/worker-shutdown-timeout.conf, which nginx.conf includes
                                 at its top level; a worker_shutdown_timeout in nginx.conf wins
  -h, --help                     show this help

API: POST/DELETE/GET /api/v1/lb (nginx-lb-updater compatible JSON), GET /healthz, GET /metrics.
Logging: RUST_LOG (default info).
";

/// Parses the subcommand's flags (after `nginx-updater`) into the validated settings, once.
/// `Ok(None)` means `--help` was asked for.
pub fn parse(args: &[String]) -> Result<Option<Settings>, Usage> {
    let flags = parse_args(args, HELP)?;
    let mut listen = None;
    let mut streams_dir = None;
    let mut nginx_conf = None;
    let mut nginx_bin = PathBuf::from("/usr/sbin/nginx");
    let mut token_file = None;
    let (mut tls_cert, mut tls_key) = (None, None);
    let mut policy = Policy::default();
    let mut worker_shutdown_timeout = super::nginx::DEFAULT_WORKER_SHUTDOWN_TIMEOUT_SECONDS;
    let week = (1, MAX_TIMEOUT_SECONDS);
    for f in flags {
        // No switches are declared: every flag but --help has a value.
        let Arg::Value(name, v) = f else {
            return Ok(None);
        };
        match name.as_str() {
            "listen" => listen = Some(socket_addr(&name, &v)?),
            "streams-dir" => streams_dir = Some(PathBuf::from(v)),
            "nginx-conf" => nginx_conf = Some(PathBuf::from(v)),
            "nginx-bin" => nginx_bin = PathBuf::from(v),
            "token-file" => token_file = Some(PathBuf::from(v)),
            "tls-cert" => tls_cert = Some(PathBuf::from(v)),
            "tls-key" => tls_key = Some(PathBuf::from(v)),
            "allowed-ports" => policy.allowed_ports = port_range(&v)?,
            "lb-address" => {
                policy.lb_addresses = v.split(',').map(lb_address).collect::<Result<_, _>>()?;
                policy.lb_addresses.sort_unstable();
                policy.lb_addresses.dedup();
            }
            "proxy-timeout-default" => policy.proxy_timeout_default = seconds(&name, &v, week)?,
            "proxy-connect-timeout-default" => {
                policy.proxy_connect_timeout_default = seconds(&name, &v, week)?
            }
            "worker-shutdown-timeout" => worker_shutdown_timeout = seconds(&name, &v, (0, 3600))?,
            _ => return Err(Usage(format!("unknown flag --{name}"))),
        }
    }
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => {
            return Err(Usage(
                "flags --tls-cert and --tls-key go together: give both or neither".into(),
            ));
        }
    };
    Ok(Some(Settings {
        listen: need(listen, "listen")?,
        streams_dir: need(streams_dir, "streams-dir")?,
        nginx_conf: need(nginx_conf, "nginx-conf")?,
        nginx_bin,
        token_file,
        tls,
        policy,
        worker_shutdown_timeout,
    }))
}

fn need<T>(v: Option<T>, name: &str) -> Result<T, Usage> {
    v.ok_or_else(|| Usage(format!("flag --{name} is required")))
}

fn port_range(v: &str) -> Result<(u16, u16), Usage> {
    let bad = || {
        Usage(format!(
            "flag --allowed-ports: expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535, got {v:?}"
        ))
    };
    let (l, h) = v.split_once('-').ok_or_else(bad)?;
    let (l, h): (u16, u16) = (l.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if l == 0 || l > h {
        return Err(bad());
    }
    Ok((l, h))
}

/// An IPv4 or IPv6 address without a port (`[::1]` is taken as `::1`).
fn lb_address(v: &str) -> Result<IpAddr, Usage> {
    let bare = v
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(v);
    match bare.parse() {
        // nginx listens on IPv6 sockets with ipv6only=on: a mapped address never binds.
        Ok(IpAddr::V6(a)) if a.to_ipv4_mapped().is_some() => Err(Usage(format!(
            "flag --lb-address: {v} is an IPv4-mapped IPv6 address, which nginx cannot listen on; \
             give the IPv4 form {}",
            a.to_canonical()
        ))),
        Ok(a) => Ok(a),
        Err(_) => Err(Usage(format!(
            "flag --lb-address: expected an IPv4 or IPv6 address without a port (203.0.113.10, \
             2001:db8::10), got {v:?}"
        ))),
    }
}

/// Whole seconds from `min` (0: off) to `max`.
fn seconds(name: &str, v: &str, (min, max): (u64, u64)) -> Result<u64, Usage> {
    let s: u64 = value(name, v)?;
    if !(min..=max).contains(&s) {
        let from = if min == 0 { "0 (off) or 1" } else { "1" };
        let rule = format!("must be {from} to {max} seconds, got {v}");
        return Err(Usage(format!("flag --{name}: {rule}")));
    }
    Ok(s)
}

/// Runs the updater until the process is stopped. Every write is atomic, so SIGTERM at any moment
/// leaves each file either old or new.
pub fn run(s: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let server = server::start(&s)?;
    let (addr, p) = (server.local_addr(), &s.policy);
    let scheme = s.tls.as_ref().map_or("http", |_| "https");
    let on: Vec<String> = p.lb_addresses.iter().map(IpAddr::to_string).collect();
    let on = Some(on.join(", ")).filter(|on| !on.is_empty());
    let auth = s.token_file.as_ref().map_or("off", |_| "bearer token");
    let (low, high) = p.allowed_ports;
    log::info!(
        "nginx-updater listening on {scheme}://{addr} (streams {}, nginx.conf {}, ports {low}-{high} \
         on {}, auth {auth})",
        s.streams_dir.display(),
        s.nginx_conf.display(),
        on.as_deref().unwrap_or("every IPv4 address"),
    );
    if s.token_file.is_none() {
        log::warn!(
            "!!! no --token-file: the updater API on {addr} is OPEN. Anyone who can reach this port \
             can rewrite nginx. Create a token (README, \"Securing the LB host\") and pass \
             --token-file, or at least firewall the port to the cluster's nodes. !!!"
        );
    }
    server.wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const REQUIRED: &[&str] = &[
        "--listen",
        "127.0.0.1:8000",
        "--streams-dir",
        "/d",
        "--nginx-conf",
        "/n.conf",
    ];

    #[test]
    fn help_names_every_flag() {
        assert!(parse(&s(&["--help"])).unwrap().is_none());
        for flag in [
            "--listen",
            "--streams-dir",
            "--nginx-conf",
            "--nginx-bin",
            "--token-file",
            "--tls-cert",
            "--tls-key",
            "--allowed-ports",
            "--lb-address",
            "--proxy-timeout-default",
            "--proxy-connect-timeout-default",
            "--worker-shutdown-timeout",
        ] {
            assert!(HELP.contains(flag), "{flag}");
        }
    }

    #[test]
    fn help_examples_stay_out_of_the_readme_lb_range() {
        // The README's LB ports are 8000-8999: an updater example there would take an LB port.
        let ports = HELP
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u32>().ok());
        for p in ports {
            assert!(!(8000..=8999).contains(&p), "{p} in --help");
        }
        assert!(HELP.contains(":3000"), "{HELP}");
    }

    #[test]
    fn parses_required_and_optional_flags() {
        let c = parse(&s(REQUIRED)).unwrap().unwrap();
        assert_eq!(c.listen, "127.0.0.1:8000".parse().unwrap());
        let mut args = s(REQUIRED);
        args.extend(s(&["--listen", ":3000"]));
        let c = parse(&args).unwrap().unwrap();
        assert_eq!(c.listen, "0.0.0.0:3000".parse().unwrap());
        assert_eq!(c.nginx_bin, PathBuf::from("/usr/sbin/nginx"));
        assert_eq!(c.policy, Policy::default());
        assert!(c.policy.lb_addresses.is_empty());
        for (v, want) in [
            ("127.0.0.2", &["127.0.0.2"][..]),
            ("::1", &["::1"]),
            ("[::1]", &["::1"]),
            ("2001:DB8::10", &["2001:db8::10"]),
            (
                "203.0.113.10,[2001:db8::10]",
                &["203.0.113.10", "2001:db8::10"],
            ),
            ("0.0.0.0,::", &["0.0.0.0", "::"]),
        ] {
            let mut args = s(REQUIRED);
            args.extend(s(&["--lb-address", v]));
            let c = parse(&args).unwrap().unwrap();
            let want: Vec<IpAddr> = want.iter().map(|a| a.parse().unwrap()).collect();
            assert_eq!(c.policy.lb_addresses, want, "{v}");
        }
        let mut args = s(REQUIRED);
        args.extend(s(&[
            "--allowed-ports=30000-30100",
            "--proxy-timeout-default",
            "30",
            "--proxy-connect-timeout-default=5",
            "--token-file",
            "/t",
            "--nginx-bin",
            "/x",
        ]));
        let c = parse(&args).unwrap().unwrap();
        assert_eq!(c.policy.allowed_ports, (30000, 30100));
        assert_eq!(
            (
                c.policy.proxy_timeout_default,
                c.policy.proxy_connect_timeout_default
            ),
            (30, 5)
        );
        assert_eq!(c.token_file, Some(PathBuf::from("/t")));
        assert_eq!(c.tls, None);
        let mut args = s(REQUIRED);
        args.extend(s(&["--tls-cert", "/c.pem", "--tls-key=/k.pem"]));
        let c = parse(&args).unwrap().unwrap();
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            })
        );
    }

    #[test]
    fn worker_shutdown_timeout_defaults_to_30_and_0_is_off() {
        let t = |extra: &[&str]| {
            let mut args = s(REQUIRED);
            args.extend(s(extra));
            parse(&args).unwrap().unwrap().worker_shutdown_timeout
        };
        assert_eq!(t(&[]), 30);
        assert_eq!(t(&["--worker-shutdown-timeout", "0"]), 0);
        assert_eq!(t(&["--worker-shutdown-timeout", "3600"]), 3600);
    }

    #[test]
    fn refuses_missing_and_bad_values() {
        assert!(
            parse(&s(&["--listen", ":3000"]))
                .unwrap_err()
                .0
                .contains("--streams-dir")
        );
        for bad in [
            &["--allowed-ports", "5-1"][..],
            &["--allowed-ports", "0-10"],
            &["--allowed-ports", "10"],
            &["--proxy-timeout-default", "0"],
            &["--proxy-connect-timeout-default", "604801"],
            &["--worker-shutdown-timeout", "3601"],
            &["--worker-shutdown-timeout", "30s"],
            &["--worker-shutdown-timeout", "-1"],
            &["--bogus", "1"],
            &["--listen", "3000"],
            &["--listen", "localhost"],
            &["--tls-cert", "/c.pem"],
            &["--tls-key", "/k.pem"],
        ] {
            let mut args = s(REQUIRED);
            args.extend(s(bad));
            assert!(parse(&args).is_err(), "{bad:?}");
        }
        for bad in [
            "",
            "localhost",
            "127.0.0.2:8000",
            "[::1]:8000",
            "127.0.0.256",
            "10.0.0.0/8",
            "127.0.0.2 ",
            "::1%lo",
            "127.0.0.2,",
            "127.0.0.2,x",
        ] {
            let mut args = s(REQUIRED);
            args.extend(s(&["--lb-address", bad]));
            let e = parse(&args).unwrap_err().0;
            assert!(
                e.contains("--lb-address") && e.contains("IPv4 or IPv6"),
                "{bad:?}: {e}"
            );
        }
        let mut args = s(REQUIRED);
        args.extend(s(&["--lb-address", "127.0.0.1,::ffff:127.0.0.2"]));
        let e = parse(&args).unwrap_err().0;
        assert!(e.contains("IPv4-mapped") && e.contains("127.0.0.2"), "{e}");
    }
}
