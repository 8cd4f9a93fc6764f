//! Strict validation of every value that reaches nginx's configuration. Pure: no I/O, no clock.
//!
//! Owns: the rules (backend names, hosts, ports, protocol, timeouts, upstream count, allowed port
//! range) and the validated [`Backend`] that `nginx::render` trusts. Nothing unvalidated may be
//! rendered: a name or host that passes here contains no whitespace, `;`, `{`, `}`, `#`, quotes, `$`
//! or path separators, so it cannot add an nginx directive or escape the streams directory.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::api::{HealthCheck, LbRequest};

/// Largest accepted timeout, in seconds (one week, the CRDs' bound too: a config that worked with
/// the Go updater, which has none, keeps working unless it asked for more than a week).
pub const MAX_TIMEOUT_SECONDS: u64 = 604_800;
/// Most upstream servers per backend.
pub const MAX_UPSTREAMS: usize = 1000;
/// Most `sourceRanges` entries per backend.
pub const MAX_SOURCE_RANGES: usize = 256;
/// Longest health check interval or timeout, in seconds (one hour).
pub const MAX_CHECK_SECONDS: u64 = 3600;
/// Largest health check threshold.
pub const MAX_THRESHOLD: u32 = 100;
/// Longest health check path.
pub const MAX_PATH_LEN: usize = 1024;

/// Limits, defaults and the listen address the updater was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Inclusive range of LB ports a request may ask for.
    pub allowed_ports: (u16, u16),
    /// `proxy_timeout` when the request says 0, in seconds.
    pub proxy_timeout_default: u64,
    /// `proxy_connect_timeout` when the request says 0, in seconds.
    pub proxy_connect_timeout_default: u64,
    /// `--lb-address`: the addresses every LB port listens on (one `listen` line each, IPv6
    /// too); empty = every IPv4 address (`listen PORT;`, as the Go updater writes it).
    pub lb_addresses: Vec<IpAddr>,
}

impl Default for Policy {
    /// nginx's own defaults (10 minutes idle, 60 s connect), not the Go updater's 5 s.
    fn default() -> Self {
        Policy {
            allowed_ports: (1024, 65535),
            proxy_timeout_default: 600,
            proxy_connect_timeout_default: 60,
            lb_addresses: Vec::new(),
        }
    }
}

/// L4 protocols nginx's stream module forwards (the updater's and the controller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// Kubernetes spelling (`TCP`, `UDP`), as the Go controller sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// Any case, surrounding white space ignored (hand-written resources).
    pub fn parse(s: &str) -> Option<Protocol> {
        protocol(s.trim()).ok()
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that passed validation, with defaults filled in: the only input of `nginx::render`.
/// What is used as sent (`lbPort`, `proxyProtocol`) is read from `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    /// The addresses to listen on (the updater's `--lb-address`, not the request's); empty = all.
    pub addresses: Vec<IpAddr>,
    pub protocol: Protocol,
    /// Hosts as nginx wants them: IPv6 in brackets, so `server [::1]:80;` is unambiguous, names in
    /// lower case.
    pub upstreams: Vec<(String, u16)>,
    pub proxy_timeout: u64,
    pub proxy_connect_timeout: u64,
    /// Networks allowed to connect, canonical (`10.0.0.0/8`, `2001:db8::/32`); empty = everyone.
    pub source_ranges: Vec<String>,
    /// The active health check, if any.
    pub health_check: Option<Check>,
    pub balance: Balance,
    /// Indices into `upstreams` rendered `down` (set by the applier from the prober's verdicts,
    /// never from the request).
    pub down: BTreeSet<usize>,
    /// The request as it will be stored and listed: protocol in Kubernetes case, the rest as sent.
    pub request: LbRequest,
}

/// How nginx picks an upstream for a new connection (the request's `balance`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Balance {
    /// nginx's default.
    #[default]
    RoundRobin,
    /// `least_conn;`: fewest active connections, for long-lived ones.
    LeastConn,
    /// `hash $remote_addr consistent;`: a client address keeps its upstream, and a node that comes
    /// or goes moves only its share of the clients (ketama).
    Hash,
    /// `random two least_conn;`: the less busy of two upstreams picked at random.
    RandomTwo,
}

impl Balance {
    pub const ALL: [Balance; 4] = [
        Balance::RoundRobin,
        Balance::LeastConn,
        Balance::Hash,
        Balance::RandomTwo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastConn => "least-conn",
            Balance::Hash => "hash",
            Balance::RandomTwo => "random-two",
        }
    }

    /// The wire and annotation spelling, in any case.
    pub fn parse(s: &str) -> Option<Balance> {
        Balance::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckKind {
    Tcp,
    Http,
}

/// A validated health check with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    pub kind: CheckKind,
    /// Port probed on each upstream's host; `None` = the upstream's own port.
    pub port: Option<u16>,
    /// HTTP path: starts with `/`, visible ASCII only (no spaces or control characters).
    pub path: String,
    pub interval_seconds: u64,
    pub timeout_seconds: u64,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

/// Why a request was refused: the field (as the JSON names it) and the value sent, so the sender
/// knows what to change.
/// `field` holds `value` (numbers as is, text quoted and clipped, `has N` for a list), which
/// breaks `rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The field as the JSON names it; empty for a value checked on its own (`cidr`).
    pub field: String,
    pub value: String,
    pub rule: String,
}

impl Error {
    fn value(field: &str, value: impl fmt::Display, rule: impl Into<String>) -> Error {
        Error {
            field: field.into(),
            value: value.to_string(),
            rule: rule.into(),
        }
    }

    /// Text sent by the client, quoted and clipped.
    fn text(field: &str, value: &str, rule: impl Into<String>) -> Error {
        Error::value(field, format!("{:?}", clip(value, 64)), rule)
    }

    /// The same error for a field nested at `at` (`upstreamServers[1].host`).
    fn at(self, field: String) -> Error {
        Error { field, ..self }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Error { field, value, rule } = self;
        // A value checked on its own (`cidr`): its caller names the field in front.
        if field.is_empty() {
            write!(f, "{value} is {rule}")
        } else {
            write!(f, "{field} {value}: {rule}")
        }
    }
}

impl std::error::Error for Error {}

/// Validates a whole POST body. The error names the field and the offending value.
pub fn backend(req: &LbRequest, policy: &Policy) -> Result<Backend, Error> {
    backend_name(&req.backend_name)?;
    // The temp file a backend is written through, `.<name>.conf.tmp`, must fit 255 bytes.
    if req.backend_name.len() > 245 {
        let rule = "must be at most 245 characters to be written";
        return Err(Error::text("backendName", &req.backend_name, rule));
    }
    let protocol = protocol(&req.lb_protocol)?;
    let (low, high) = policy.allowed_ports;
    if req.lb_port < low || req.lb_port > high || req.lb_port == 0 {
        let rule = format!("must be inside the allowed range {low}-{high}");
        return Err(Error::value("lbPort", req.lb_port, rule));
    }
    let ups = &req.upstream_servers;
    count("upstreamServers", ups.len(), 1, MAX_UPSTREAMS)?;
    let mut upstreams = Vec::with_capacity(ups.len());
    for (i, u) in ups.iter().enumerate() {
        let h = host(&u.host).map_err(|e| e.at(format!("upstreamServers[{i}].host")))?;
        if u.port == 0 {
            let field = format!("upstreamServers[{i}].port");
            return Err(Error::value(&field, 0, "must be 1-65535"));
        }
        upstreams.push((h, u.port));
    }
    let proxy_timeout = timeout(
        "proxyTimeoutSeconds",
        req.proxy_timeout_seconds,
        policy.proxy_timeout_default,
    )?;
    let proxy_connect_timeout = timeout(
        "proxyConnectTimeoutSeconds",
        req.proxy_connect_timeout_seconds,
        policy.proxy_connect_timeout_default,
    )?;
    let t = &req.traffic;
    count("sourceRanges", t.source_ranges.len(), 0, MAX_SOURCE_RANGES)?;
    let source_ranges = (t.source_ranges.iter().enumerate())
        .map(|(i, c)| cidr(c).map_err(|e| e.at(format!("sourceRanges[{i}]"))))
        .collect::<Result<_, _>>()?;
    if t.proxy_protocol && protocol == Protocol::Udp {
        let rule = "only for TCP backends (lbProtocol is UDP)";
        return Err(Error::value("proxyProtocol", true, rule));
    }
    let health_check = t.health_check.as_ref().map(health_check).transpose()?;
    let balance = match t.balance.as_deref() {
        None => Balance::RoundRobin,
        Some(b) => Balance::parse(b).ok_or_else(|| {
            let rule = "must be round-robin, least-conn, hash or random-two";
            Error::text("balance", b, rule)
        })?,
    };
    if let Some(o) = &req.owner {
        owner(o)?;
    }
    let mut request = req.clone();
    request.lb_protocol = protocol.as_str().to_string();
    request.traffic.balance = t.balance.as_ref().map(|_| balance.as_str().to_string());
    for u in &mut request.upstream_servers {
        // Output-only fields: a client echoing a GET answer back must not store them.
        u.health = Default::default();
    }
    Ok(Backend {
        name: req.backend_name.clone(),
        addresses: policy.lb_addresses.clone(),
        protocol,
        upstreams,
        proxy_timeout,
        proxy_connect_timeout,
        source_ranges,
        health_check,
        balance,
        down: BTreeSet::new(),
        request,
    })
}

/// `healthCheck` with defaults: interval 2 s, timeout 1 s, thresholds 2 and 2, path `/healthz`.
pub fn health_check(h: &HealthCheck) -> Result<Check, Error> {
    const TCP_OR_HTTP: &str = "must be tcp or http";
    let kind = match h.kind.to_ascii_lowercase().as_str() {
        "tcp" => CheckKind::Tcp,
        "http" => CheckKind::Http,
        _ => return Err(Error::text("healthCheck.type", &h.kind, TCP_OR_HTTP)),
    };
    if h.port == Some(0) {
        return Err(Error::value("healthCheck.port", 0, "must be 1-65535"));
    }
    let path = h.path.clone().unwrap_or_else(|| "/healthz".into());
    let path_ok = path.starts_with('/')
        && path.len() <= MAX_PATH_LEN
        && path.bytes().all(|b| b.is_ascii_graphic());
    if !path_ok {
        let rule = format!(
            "must start with / and hold at most {MAX_PATH_LEN} visible ASCII characters (no \
             spaces or control characters)"
        );
        return Err(Error::text("healthCheck.path", &path, rule));
    }
    let bounded = |field: &str, v: u64, max: u64| match v {
        _ if (1..=max).contains(&v) => Ok(v),
        _ => Err(Error::value(
            &format!("healthCheck.{field}"),
            v,
            format!("must be 1-{max}"),
        )),
    };
    let seconds =
        |field, v: Option<u64>, default| bounded(field, v.unwrap_or(default), MAX_CHECK_SECONDS);
    // A threshold is at most MAX_THRESHOLD, so it fits a u32.
    let threshold = |field, v: Option<u32>| {
        bounded(field, v.unwrap_or(2).into(), MAX_THRESHOLD.into()).map(|n| n as u32)
    };
    Ok(Check {
        kind,
        port: h.port,
        path,
        interval_seconds: seconds("intervalSeconds", h.interval_seconds, 2)?,
        timeout_seconds: seconds("timeoutSeconds", h.timeout_seconds, 1)?,
        unhealthy_threshold: threshold("unhealthyThreshold", h.unhealthy_threshold)?,
        healthy_threshold: threshold("healthyThreshold", h.healthy_threshold)?,
    })
}

/// An IPv4 or IPv6 CIDR (`addr/prefix`), returned with the host bits cleared, as nginx wants it
/// (Kubernetes accepts `10.0.0.1/8` in `loadBalancerSourceRanges`; nginx would warn about it).
pub fn cidr(c: &str) -> Result<String, Error> {
    let bad = || Error::text("", c, "not an IPv4 or IPv6 CIDR (address/prefix)");
    let (addr, prefix) = c.split_once('/').ok_or_else(bad)?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    match addr.parse::<IpAddr>().map_err(|_| bad())? {
        IpAddr::V4(a) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            Ok(format!("{}/{prefix}", Ipv4Addr::from(u32::from(a) & mask)))
        }
        IpAddr::V6(a) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            Ok(format!("{}/{prefix}", Ipv6Addr::from(u128::from(a) & mask)))
        }
        _ => Err(bad()),
    }
}

/// `[A-Za-z0-9_.-]{1,253}` not starting with `.`: safe as a file name and as an nginx token. The
/// leading dot is refused (not only `.` and `..`) because nginx's `include dir/*.conf` glob skips
/// hidden files: `.a` would be accepted, written and never served. A POST is held to 245 more (see
/// [`backend`]); a DELETE or a file read back, to this.
pub fn backend_name(name: &str) -> Result<(), Error> {
    if !is_token(name, 253) || name.starts_with('.') {
        let rule = "must be 1-253 characters of A-Z a-z 0-9 _ . - not starting with .";
        return Err(Error::text("backendName", name, rule));
    }
    Ok(())
}

/// `owner`: 1-63 characters of `A-Z a-z 0-9 _ . -`, a label such as `paperlb`. It reaches only the
/// file's JSON header, never a directive; the limit keeps listings small and readable.
pub fn owner(o: &str) -> Result<(), Error> {
    if !is_token(o, 63) {
        let rule = "must be 1-63 characters of A-Z a-z 0-9 _ . -";
        return Err(Error::text("owner", o, rule));
    }
    Ok(())
}

/// 1 to `max` characters of `A-Z a-z 0-9 _ . -` (also what a Secret's key may hold).
pub(crate) fn is_token(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && (s.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `tcp` or `udp` in any case.
pub fn protocol(p: &str) -> Result<Protocol, Error> {
    match p.to_ascii_uppercase().as_str() {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        _ => Err(Error::text("lbProtocol", p, "must be TCP or UDP")),
    }
}

/// An IPv4 or IPv6 literal (IPv6 with or without brackets, no zone) or an RFC 1123 DNS name, in
/// the form nginx wants it: IPv6 in brackets, a name in lower case.
pub fn host(h: &str) -> Result<String, Error> {
    if let Ok(a) = h.parse::<Ipv4Addr>() {
        return Ok(a.to_string());
    }
    let inner = h
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(h);
    if let Ok(a) = inner.parse::<Ipv6Addr>() {
        return Ok(format!("[{a}]"));
    }
    if dns_name(h) {
        return Ok(h.to_ascii_lowercase());
    }
    let rule = "not an IPv4/IPv6 address or a DNS name";
    Err(Error::text("host", h, rule))
}

/// RFC 1123 host name: dot-separated labels of 1-63 letters, digits and inner hyphens, 253 at most,
/// and a last label that is not all digits (so `1.2.3` is not taken for a name).
fn dns_name(h: &str) -> bool {
    let labels: Vec<&str> = h.split('.').collect();
    let numeric = |l: &&str| l.bytes().all(|b| b.is_ascii_digit());
    h.len() <= 253
        && labels.iter().all(|l| dns_label(l, false))
        && !labels.last().is_some_and(numeric)
}

/// An RFC 1123 label: 1-63 letters (lowercase only with `lower`), digits and inner hyphens.
pub fn dns_label(l: &str, lower: bool) -> bool {
    let letter = |c: char| c.is_ascii_lowercase() || (!lower && c.is_ascii_uppercase());
    (1..=63).contains(&l.len())
        && l.chars()
            .all(|c| letter(c) || c.is_ascii_digit() || c == '-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// A list of `got` entries, within `min..=max`.
fn count(field: &str, got: usize, min: usize, max: usize) -> Result<(), Error> {
    if (min..=max).contains(&got) {
        return Ok(());
    }
    let (value, rule) = (format!("has {got}"), format!("need {min} to {max} entries"));
    Err(Error::value(field, value, rule))
}

fn timeout(field: &str, v: u64, default: u64) -> Result<u64, Error> {
    if v > MAX_TIMEOUT_SECONDS {
        let rule = format!("must be 0 (default) to {MAX_TIMEOUT_SECONDS}");
        return Err(Error::value(field, v, rule));
    }
    Ok(if v == 0 { default } else { v })
}

/// At most `max` characters of `s`, and `…` when that cut it: error messages quote what was sent
/// (64 here), and a megabyte-long name must not make a megabyte-long answer.
pub(crate) fn clip(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updater::api::Upstream;

    fn req(name: &str, host: &str) -> LbRequest {
        LbRequest {
            backend_name: name.into(),
            lb_port: 8100,
            lb_protocol: "TCP".into(),
            upstream_servers: vec![Upstream {
                host: host.into(),
                port: 30080,
                health: Default::default(),
            }],
            proxy_timeout_seconds: 0,
            proxy_connect_timeout_seconds: 0,
            traffic: Default::default(),
            owner: None,
        }
    }

    #[test]
    fn backend_names_accept_only_the_safe_alphabet() {
        let cases: &[(&str, bool)] = &[
            ("default_nginx", true),
            ("a.b-c_d.0", true),
            ("a..", true),
            ("...", false),
            (".a", false),
            (&"a".repeat(253), true),
            (&"a".repeat(254), false),
            ("", false),
            (".", false),
            ("..", false),
            ("../x", false),
            ("a/b", false),
            ("a;}", false),
            ("a b", false),
            ("a\nb", false),
            ("a{", false),
            ("a#", false),
            ("a$x", false),
            ("é", false),
        ];
        for (name, ok) in cases {
            assert_eq!(backend_name(name).is_ok(), *ok, "{name:?}");
        }
    }

    #[test]
    fn hosts_are_ip_literals_or_rfc1123_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.2", Some("127.0.0.2")),
            ("::1", Some("[::1]")),
            ("[2001:db8::1]", Some("[2001:db8::1]")),
            ("node-1.example.com", Some("node-1.example.com")),
            ("Node1", Some("node1")),
            ("1.2.3.4; include /etc/passwd", None),
            ("1.2.3.4\n", None),
            ("a}b", None),
            ("-a.com", None),
            ("a-.com", None),
            ("a..com", None),
            ("a.com.", None),
            ("1.2.3", None),
            ("256.1.1.1", None),
            ("fe80::1%eth0", None),
            ("[::1", None),
            ("", None),
            ("a b", None),
            ("a:80", None),
            ("$host", None),
            ("unix:/tmp/x", None),
        ];
        for (h, want) in cases {
            let got = host(h).ok().map(|h| h.to_string());
            assert_eq!(got.as_deref(), *want, "{h:?}");
        }
        assert!(host(&format!("{}.com", "a".repeat(64))).is_err());
        // 253 characters at most (four labels: 63 + 63 + 63 + 61, and three dots).
        let long = |last| format!("{0}.{0}.{0}.{1}", "a".repeat(63), "a".repeat(last));
        assert!(host(&long(61)).is_ok());
        assert!(host(&long(62)).is_err());
    }

    #[test]
    fn protocol_accepts_any_case_and_stores_kubernetes_case() {
        let p = Policy::default();
        for (sent, want) in [
            ("TCP", Protocol::Tcp),
            ("tcp", Protocol::Tcp),
            ("Udp", Protocol::Udp),
        ] {
            let mut r = req("a", "127.0.0.2");
            r.lb_protocol = sent.into();
            let b = backend(&r, &p).unwrap();
            assert_eq!(b.protocol, want);
            assert_eq!(b.request.lb_protocol, want.as_str());
        }
        let mut r = req("a", "127.0.0.2");
        r.lb_protocol = "SCTP".into();
        assert_eq!(backend(&r, &p).unwrap_err().field, "lbProtocol");
    }

    #[test]
    fn balance_is_one_of_four_names_in_any_case_and_absent_is_round_robin() {
        let p = Policy::default();
        assert_eq!(
            backend(&req("a", "127.0.0.2"), &p).unwrap().balance,
            Balance::RoundRobin
        );
        for (sent, want) in [
            ("round-robin", Balance::RoundRobin),
            ("least-conn", Balance::LeastConn),
            ("HASH", Balance::Hash),
            ("random-two", Balance::RandomTwo),
        ] {
            let mut r = req("a", "127.0.0.2");
            r.traffic.balance = Some(sent.into());
            let b = backend(&r, &p).unwrap();
            assert_eq!(b.balance, want);
            assert_eq!(b.request.traffic.balance.as_deref(), Some(want.as_str()));
        }
        for bad in ["", "least_conn", "ip_hash", "hash $remote_addr", "random"] {
            let mut r = req("a", "127.0.0.2");
            r.traffic.balance = Some(bad.into());
            let e = backend(&r, &p).unwrap_err();
            assert_eq!(e.field, "balance", "{bad:?}");
            assert!(
                e.to_string()
                    .ends_with("must be round-robin, least-conn, hash or random-two"),
                "{e}"
            );
        }
    }

    #[test]
    fn ports_timeouts_and_counts_are_bounded() {
        let p = Policy {
            allowed_ports: (8000, 8999),
            ..Policy::default()
        };
        let ok = backend(&req("a", "127.0.0.2"), &p).unwrap();
        assert_eq!((ok.proxy_timeout, ok.proxy_connect_timeout), (600, 60));
        type Mutation = Box<dyn Fn(&mut LbRequest)>;
        let bad: Vec<(Mutation, &str)> = vec![
            (Box::new(|r| r.lb_port = 7999), "lbPort"),
            (Box::new(|r| r.lb_port = 9000), "lbPort"),
            (Box::new(|r| r.upstream_servers.clear()), "upstreamServers"),
            (
                Box::new(|r| r.upstream_servers = vec![r.upstream_servers[0].clone(); 1001]),
                "upstreamServers",
            ),
            (
                Box::new(|r| r.upstream_servers[0].port = 0),
                "upstreamServers[0].port",
            ),
            (
                Box::new(|r| r.proxy_timeout_seconds = 604_801),
                "proxyTimeoutSeconds",
            ),
            (
                Box::new(|r| r.proxy_connect_timeout_seconds = 604_801),
                "proxyConnectTimeoutSeconds",
            ),
            (Box::new(|r| r.owner = Some(String::new())), "owner"),
            (Box::new(|r| r.owner = Some("a b".into())), "owner"),
            (Box::new(|r| r.owner = Some("x".repeat(64))), "owner"),
        ];
        for (mutate, field) in bad {
            let mut r = req("a", "127.0.0.2");
            mutate(&mut r);
            let e = backend(&r, &p).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
        let mut r = req("a", "127.0.0.2");
        r.proxy_timeout_seconds = 5;
        r.proxy_connect_timeout_seconds = 604_800;
        let b = backend(&r, &p).unwrap();
        assert_eq!((b.proxy_timeout, b.proxy_connect_timeout), (5, 604_800));
        r.owner = Some("paperlb".into());
        assert_eq!(
            backend(&r, &p).unwrap().request.owner.as_deref(),
            Some("paperlb")
        );
    }

    #[test]
    fn cidrs_are_validated_and_canonical() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.2/32", Some("127.0.0.2/32")),
            ("10.1.2.3/8", Some("10.0.0.0/8")),
            ("0.0.0.0/0", Some("0.0.0.0/0")),
            ("::1/128", Some("::1/128")),
            ("2001:db8::7/32", Some("2001:db8::/32")),
            ("::/0", Some("::/0")),
            ("10.0.0.0/33", None),
            ("::/129", None),
            ("10.0.0.0", None),
            ("10.0.0.0/", None),
            ("10.0.0.0/+8", None),
            ("10.0.0.0/08x", None),
            ("a.b/8", None),
            ("10.0.0.0/8; allow all", None),
            ("[::1]/128", None),
            ("", None),
        ];
        for (c, want) in cases {
            assert_eq!(cidr(c).ok().as_deref(), *want, "{c:?}");
        }
        assert_eq!(
            cidr("x").unwrap_err().to_string(),
            "\"x\" is not an IPv4 or IPv6 CIDR (address/prefix)"
        );
    }

    #[test]
    fn traffic_fields_are_checked_and_udp_refuses_proxy_protocol() {
        let p = Policy::default();
        let mut r = req("a", "127.0.0.2");
        r.traffic.source_ranges = vec!["127.0.0.2/32".into(), "10.9.9.9/8".into()];
        r.traffic.proxy_protocol = true;
        let b = backend(&r, &p).unwrap();
        assert_eq!(b.source_ranges, ["127.0.0.2/32", "10.0.0.0/8"]);
        assert!(b.request.traffic.proxy_protocol && b.health_check.is_none());
        r.lb_protocol = "UDP".into();
        assert_eq!(backend(&r, &p).unwrap_err().field, "proxyProtocol");
        let mut r = req("a", "127.0.0.2");
        r.traffic.source_ranges = vec!["127.0.0.2/32".into(), "x".into()];
        let e = backend(&r, &p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "sourceRanges[1] \"x\": not an IPv4 or IPv6 CIDR (address/prefix)"
        );
        r.traffic.source_ranges = vec!["127.0.0.2/32".into(); MAX_SOURCE_RANGES + 1];
        assert_eq!(backend(&r, &p).unwrap_err().field, "sourceRanges");
    }

    #[test]
    fn health_checks_take_defaults_and_refuse_bad_fields() {
        let hc = |kind: &str| HealthCheck {
            kind: kind.into(),
            ..HealthCheck::default()
        };
        let c = health_check(&hc("TCP")).unwrap();
        assert_eq!(
            c,
            Check {
                kind: CheckKind::Tcp,
                port: None,
                path: "/healthz".into(),
                interval_seconds: 2,
                timeout_seconds: 1,
                unhealthy_threshold: 2,
                healthy_threshold: 2,
            }
        );
        type Mutation = Box<dyn Fn(&mut HealthCheck)>;
        let bad: Vec<(Mutation, &str)> = vec![
            (Box::new(|h| h.kind = "icmp".into()), "healthCheck.type"),
            (Box::new(|h| h.kind = "".into()), "healthCheck.type"),
            (Box::new(|h| h.port = Some(0)), "healthCheck.port"),
            (
                Box::new(|h| h.path = Some("healthz".into())),
                "healthCheck.path",
            ),
            (
                Box::new(|h| h.path = Some("/a b".into())),
                "healthCheck.path",
            ),
            (
                Box::new(|h| h.path = Some("/a\r\nX: y".into())),
                "healthCheck.path",
            ),
            (
                Box::new(|h| h.path = Some(format!("/{}", "a".repeat(1024)))),
                "healthCheck.path",
            ),
            (
                Box::new(|h| h.interval_seconds = Some(0)),
                "healthCheck.intervalSeconds",
            ),
            (
                Box::new(|h| h.interval_seconds = Some(3601)),
                "healthCheck.intervalSeconds",
            ),
            (
                Box::new(|h| h.timeout_seconds = Some(0)),
                "healthCheck.timeoutSeconds",
            ),
            (
                Box::new(|h| h.unhealthy_threshold = Some(0)),
                "healthCheck.unhealthyThreshold",
            ),
            (
                Box::new(|h| h.healthy_threshold = Some(101)),
                "healthCheck.healthyThreshold",
            ),
        ];
        for (mutate, field) in bad {
            let mut h = hc("http");
            mutate(&mut h);
            let mut r = req("a", "127.0.0.2");
            r.traffic.health_check = Some(h);
            let e = backend(&r, &Policy::default()).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    #[test]
    fn error_messages_clip_long_values() {
        let e = backend_name(&"x;".repeat(10_000)).unwrap_err().to_string();
        assert!(e.len() < 300, "{}", e.len());
        let mut r = req("a", "a b");
        r.upstream_servers.push(r.upstream_servers[0].clone());
        r.upstream_servers[0].host = "127.0.0.2".into();
        assert_eq!(
            backend(&r, &Policy::default()).unwrap_err().to_string(),
            "upstreamServers[1].host \"a b\": not an IPv4/IPv6 address or a DNS name"
        );
    }
}
