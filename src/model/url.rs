//! Where an `httpUpdaterURL` points: the one rule that turns the URL a user wrote into the updater
//! endpoint every call (POST, DELETE, GET) goes to. Specs and status keep the URL as written (the Go
//! controller copies it verbatim into each LoadBalancer); only the edge that talks to the updater
//! resolves it, and backends are compared by endpoint, so both spellings of one updater are one place.
//! Pure: no I/O.

use crate::updater::api::API_PATH;
use crate::updater::validate::dns_label;

/// The endpoint a raw `httpUpdaterURL` names:
/// - path exactly `/api/v1/lb` (a trailing `/` allowed): the endpoint itself (the Go form);
/// - empty path or `/`: `/api/v1/lb` is appended (the bare form);
/// - any other path is a prefix (a reverse proxy): `/prefix` gives `/prefix/api/v1/lb`.
///
/// Query strings and fragments are refused, as are URLs without `http://`/`https://` or a host.
pub fn updater_endpoint(raw: &str) -> Result<String, String> {
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace".into());
    }
    let not_http = "must start with http:// or https://";
    let (scheme, rest) = raw.split_once("://").ok_or(not_http)?;
    // Lowercased: `HTTP://` is a valid spelling.
    let mut known = ["http", "https"].into_iter();
    let scheme = known
        .find(|s| scheme.eq_ignore_ascii_case(s))
        .ok_or(not_http)?;
    if raw.contains('?') {
        return Err("has a query string (?…), which the updater API does not take".into());
    }
    if raw.contains('#') {
        return Err("has a fragment (#…), which the updater API does not take".into());
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.starts_with(':') || authority.starts_with('@') {
        return Err("has no host".into());
    }
    if authority.contains('@') {
        return Err("has user information (user@host); use updaterTokenSecretRef instead".into());
    }
    let path = path.trim_end_matches('/');
    let prefix = if path == API_PATH { "" } else { path };
    Ok(format!("{scheme}://{authority}{prefix}{API_PATH}"))
}

/// Whether two raw URLs name the same updater endpoint (URLs that do not resolve compare as
/// written).
pub fn same_updater(a: &str, b: &str) -> bool {
    a == b || matches!((updater_endpoint(a), updater_endpoint(b)), (Ok(a), Ok(b)) if a == b)
}

/// The URL fit for a message: a query string or fragment (which may carry a token) becomes `?…`
/// or `#…`, and user information becomes `…@`.
pub fn redacted(raw: &str) -> String {
    let cut = raw.find(['?', '#']).unwrap_or(raw.len());
    let mut out = raw[..cut].to_string();
    if let Some(at) = out.find('@') {
        let start = out.find("://").map(|i| i + 3).unwrap_or(0);
        if start <= at {
            out.replace_range(start..at, "…");
        }
    }
    if let Some(c) = raw[cut..].chars().next() {
        out.push(c);
        out.push('…');
    }
    out
}

/// The LB host: an IP address or a DNS name (it becomes the Service's ingress ip or hostname).
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("is empty".into());
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if host.starts_with('[') {
        return Err("write an IPv6 address without brackets (2001:db8::10)".into());
    }
    let dns_ok = host.len() <= 253 && host.split('.').all(|l| dns_label(l, false));
    if dns_ok {
        Ok(())
    } else {
        Err("is neither an IP address nor a DNS name".into())
    }
}

/// `host:port`, an IPv6 literal in brackets (`[fd00::2]:31080`), for messages and status.
pub fn host_port(host: &str, port: impl std::fmt::Display) -> String {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{host}]:{port}"),
        Err(_) => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{redacted, same_updater, updater_endpoint};

    #[test]
    fn resolves_every_form_once() {
        let table = [
            // The Go project's README form: the endpoint itself.
            (
                "http://192.168.64.1:3000/api/v1/lb",
                "http://192.168.64.1:3000/api/v1/lb",
            ),
            ("http://lb:3000/api/v1/lb/", "http://lb:3000/api/v1/lb"),
            // The bare form: the API path is appended.
            ("http://lb:3000", "http://lb:3000/api/v1/lb"),
            ("http://lb:3000/", "http://lb:3000/api/v1/lb"),
            ("http://lb", "http://lb/api/v1/lb"),
            (
                "https://lb.example:8443",
                "https://lb.example:8443/api/v1/lb",
            ),
            ("HTTPS://lb:8443/", "https://lb:8443/api/v1/lb"),
            ("http://[::1]:3000", "http://[::1]:3000/api/v1/lb"),
            // A prefix behind a reverse proxy.
            ("http://proxy/updater", "http://proxy/updater/api/v1/lb"),
            ("http://proxy/updater/", "http://proxy/updater/api/v1/lb"),
            ("http://proxy/a/b", "http://proxy/a/b/api/v1/lb"),
            (
                "http://proxy/edge/api/v1/lb",
                "http://proxy/edge/api/v1/lb/api/v1/lb",
            ),
            // Only the exact path is the endpoint: these are prefixes.
            ("http://lb/api/v1", "http://lb/api/v1/api/v1/lb"),
            ("http://lb/api/v1/lbx", "http://lb/api/v1/lbx/api/v1/lb"),
        ];
        for (raw, want) in table {
            assert_eq!(updater_endpoint(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_queries_fragments_and_broken_urls_naming_why() {
        let table = [
            ("http://lb:3000/api/v1/lb?x=1", "query string"),
            ("http://lb:3000?token=abc", "query string"),
            ("http://lb:3000/#frag", "fragment"),
            ("http://lb:3000/api/v1/lb#", "fragment"),
            ("ftp://lb:3000", "http:// or https://"),
            ("lb:3000", "http:// or https://"),
            ("http://", "no host"),
            ("http:///api/v1/lb", "no host"),
            ("http://:3000", "no host"),
            ("http://user:pw@lb:3000", "user information"),
            ("http://lb :3000", "whitespace"),
            ("http://lb:3000/\n", "whitespace"),
            ("", "http:// or https://"),
        ];
        for (raw, why) in table {
            let e = updater_endpoint(raw).expect_err(raw);
            assert!(e.contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn messages_never_show_queries_fragments_or_user_information() {
        assert_eq!(
            redacted("http://lb:3000/api/v1/lb?token=s3cret"),
            "http://lb:3000/api/v1/lb?…"
        );
        assert_eq!(redacted("http://lb:3000#s3cret"), "http://lb:3000#…");
        assert_eq!(redacted("http://user:s3cret@lb:3000"), "http://…@lb:3000");
        assert_eq!(redacted("http://lb:3000"), "http://lb:3000");
    }

    #[test]
    fn both_spellings_of_one_updater_are_the_same_place() {
        assert!(same_updater("http://lb:3000", "http://lb:3000/api/v1/lb"));
        assert!(same_updater("http://lb:3000/", "http://lb:3000/api/v1/lb/"));
        assert!(!same_updater("http://lb:3000", "http://lb:3001"));
        assert!(!same_updater("http://lb:3000", "https://lb:3000"));
        assert!(!same_updater("http://proxy/a", "http://proxy/b"));
        assert!(same_updater("not a url", "not a url"));
        assert!(!same_updater("not a url", "http://lb"));
    }
}
