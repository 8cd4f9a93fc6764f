//! Several LB hosts per config (`spec.hosts`): the stored entries of a LoadBalancerConfig and of a
//! LoadBalancer, and their validation. The Go form (`host` + `httpUpdaterURL`) is one unnamed host;
//! `hosts` is the other form, exclusive with it, of at most [`MAX_HOSTS`] named entries.
//! Pure: no I/O, no clock.

use super::lenient::Lenient;
use super::paperlb::HostSpec;
use super::url::{check_host, updater_endpoint};
use super::url::{redacted, same_updater};
use serde_json::{Value, json};

/// More hosts than this in one config is refused: each Service port costs a call on every one.
pub const MAX_HOSTS: usize = 16;

/// The checked `updaterTokenSecretRef`, `updaterCASecretRef` and `insecureSkipVerify`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuthRefs {
    pub token: Option<SecretRef>,
    pub ca: Option<SecretRef>,
    pub insecure_skip_verify: bool,
}

/// A key of a Secret in the controller's namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

/// A checked host of a config or a LoadBalancer: name (empty for the Go form's one), address and
/// updater URL (as the user wrote it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct LbHost {
    pub name: String,
    pub host: String,
    pub url: String,
}

impl LbHost {
    /// The Go form's one host: no name.
    pub fn unnamed(host: &str, url: &str) -> LbHost {
        LbHost {
            name: String::new(),
            host: host.to_string(),
            url: url.to_string(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "host": self.host, "httpUpdaterURL": self.url})
    }
}

/// The hosts' addresses as messages name them: the Go form's one, else each once, comma-separated
/// (two hosts may share an address on different updater ports).
pub fn addresses(hosts: &[LbHost]) -> String {
    let mut all: Vec<&str> = Vec::new();
    for h in hosts {
        if !all.contains(&h.host.as_str()) {
            all.push(&h.host);
        }
    }
    all.join(", ")
}

/// A stored `spec.hosts` (of a config or a LoadBalancer), checked: each entry's name, address and
/// updater URL (`spec.hosts[i]`), then the list as a whole: 1 to [`MAX_HOSTS`] entries, names and
/// updater endpoints unique. The entries' credentials are the config's to check.
pub fn check_hosts(entries: &[HostSpec]) -> Result<Vec<LbHost>, String> {
    let mut hosts = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let at = format!("spec.hosts[{i}]");
        let name = e.name.require(&format!("{at}.name"), "a string")?;
        // A lowercase RFC 1123 label: it names a condition, `Host-<name>`.
        if !crate::updater::validate::dns_label(name, true) {
            let rule = "is not a DNS label (lowercase letters, digits and '-', at most 63)";
            return Err(format!("{at}.name {name:?}: {rule}"));
        }
        let url = url_at(&e.http_updater_url, &format!("{at}.httpUpdaterURL"))?;
        let host = host_at(&e.host, &format!("{at}.host"))?;
        hosts.push(LbHost {
            name: name.clone(),
            host: host.clone(),
            url: url.clone(),
        });
    }
    let at = "spec.hosts";
    if hosts.is_empty() {
        return Err(format!("{at}: is empty; list at least one host"));
    }
    if hosts.len() > MAX_HOSTS {
        return Err(format!(
            "{at}: {} hosts; at most {MAX_HOSTS} are allowed",
            hosts.len()
        ));
    }
    for (i, h) in hosts.iter().enumerate() {
        for (j, other) in hosts.iter().enumerate().take(i) {
            if other.name == h.name {
                return Err(format!(
                    "{at}[{i}].name {:?}: {at}[{j}] has the same name",
                    h.name
                ));
            }
            if same_updater(&other.url, &h.url) {
                return Err(format!(
                    "{at}[{i}].httpUpdaterURL {:?}: {at}[{j}] names the same updater",
                    redacted(&h.url)
                ));
            }
        }
    }
    Ok(hosts)
}

/// A required updater URL field (`field` names it), checked; the message quotes it redacted.
pub(super) fn url_at<'a>(l: &'a Lenient<String>, field: &str) -> Result<&'a String, String> {
    let url = l.require(field, "a string")?;
    // It must resolve to an updater endpoint (see `url::updater_endpoint`).
    updater_endpoint(url).map_err(|e| format!("{field} {:?}: {e}", redacted(url)))?;
    Ok(url)
}

/// A required LB host field (`field` names it), checked.
pub(super) fn host_at<'a>(l: &'a Lenient<String>, field: &str) -> Result<&'a String, String> {
    let host = l.require(field, "a string")?;
    check_host(host).map_err(|e| format!("{field} {host:?}: {e}"))?;
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_each_address_once() {
        let at = |host: &str, port: u16| LbHost::unnamed(host, &format!("http://{host}:{port}"));
        let hosts = [
            at("127.0.0.2", 3000),
            at("127.0.0.2", 3001),
            at("127.0.0.3", 3000),
        ];
        assert_eq!(addresses(&hosts), "127.0.0.2, 127.0.0.3");
        assert_eq!(addresses(&hosts[..1]), "127.0.0.2");
    }

    fn host(name: &str, url: &str) -> HostSpec {
        HostSpec {
            name: Lenient::Valid(name.into()),
            host: Lenient::Valid("127.0.0.2".into()),
            http_updater_url: Lenient::Valid(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn names_are_dns_labels() {
        let named = |name: &str| HostSpec {
            name: Lenient::Valid(name.into()),
            host: Lenient::Valid("127.0.0.2".into()),
            http_updater_url: Lenient::Valid("http://127.0.0.2:3000".into()),
            ..Default::default()
        };
        for ok in ["a", "lb-1", "0", &"x".repeat(63)] {
            assert!(check_hosts(&[named(ok)]).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "LB", "a.b", "a_b", &"x".repeat(64)] {
            let e = check_hosts(&[named(bad)]).unwrap_err();
            assert!(
                e.contains("spec.hosts[0].name") && e.contains("DNS label"),
                "{e}"
            );
        }
    }

    #[test]
    fn lists_are_bounded_and_unique_by_name_and_endpoint() {
        let a = host("a", "http://127.0.0.2:3000");
        let b = host("b", "http://127.0.0.3:3000/api/v1/lb");
        assert!(check_hosts(&[a.clone(), b.clone()]).is_ok());
        let e = check_hosts(&[]).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
        let e = check_hosts(&[a.clone(), host("a", "http://127.0.0.4:3000")]).unwrap_err();
        assert!(e.contains("spec.hosts[1].name"), "{e}");
        // Both spellings of one updater endpoint are the same updater.
        let e =
            check_hosts(&[a.clone(), host("c", "http://127.0.0.2:3000/api/v1/lb")]).unwrap_err();
        assert!(
            e.contains("spec.hosts[1].httpUpdaterURL") && e.contains("same updater"),
            "{e}"
        );
        let many: Vec<HostSpec> = (0..=MAX_HOSTS)
            .map(|i| host(&format!("h{i}"), &format!("http://127.0.0.2:{}", 3000 + i)))
            .collect();
        let e = check_hosts(&many).unwrap_err();
        assert!(e.contains("at most 16"), "{e}");
        assert!(check_hosts(&many[..MAX_HOSTS]).is_ok());
    }

    #[test]
    fn stored_entries_are_checked_field_by_field() {
        let entry = |name: Value, host: Value, url: Value| HostSpec {
            name: Lenient::from_value(name),
            host: Lenient::from_value(host),
            http_updater_url: Lenient::from_value(url),
            ..Default::default()
        };
        let ok = entry(
            json!("a"),
            json!("127.0.0.2"),
            json!("http://127.0.0.2:3000"),
        );
        assert_eq!(check_hosts(std::slice::from_ref(&ok)).unwrap().len(), 1);
        let e = check_hosts(&[entry(json!(1), json!("h"), json!("http://h:1"))]).unwrap_err();
        assert!(e.contains("spec.hosts[0].name"), "{e}");
        let e = check_hosts(&[entry(json!("a"), json!("h"), json!("ftp://h"))]).unwrap_err();
        assert!(e.contains("spec.hosts[0].httpUpdaterURL"), "{e}");
        let bad_host = entry(json!("b"), json!(""), json!("http://h:1"));
        let e = check_hosts(&[ok.clone(), bad_host]).unwrap_err();
        assert!(e.contains("spec.hosts[1].host"), "{e}");
        let e = check_hosts(&[]).unwrap_err();
        assert!(e.contains("spec.hosts: is empty"), "{e}");
    }

    fn validate(spec: Value) -> Result<crate::model::ValidConfig, String> {
        let c: crate::model::LoadBalancerConfig = serde_json::from_value(json!({
            "metadata": {"name": "pair", "namespace": "paperlb-system"},
            "spec": spec,
        }))
        .unwrap();
        c.validate()
    }

    fn entry(name: &str, port: u16) -> Value {
        json!({"name": name, "host": "127.0.0.2", "httpUpdaterURL": format!("http://127.0.0.2:{port}")})
    }

    #[test]
    fn a_config_takes_exactly_one_form() {
        let range = json!({"low": 8000, "high": 8010});
        let v =
            validate(json!({"hosts": [entry("a", 3000), entry("b", 3001)], "portRange": range}))
                .unwrap();
        assert_eq!(v.hosts.len(), 2);
        assert_eq!(addresses(&v.hosts), "127.0.0.2", "one address, named once");
        // The Go form is one unnamed place.
        let go = validate(
            json!({"host": "h", "httpUpdaterURL": "http://h:3000/api/v1/lb", "portRange": range}),
        )
        .unwrap();
        assert!(go.hosts.len() == 1 && go.hosts[0].name.is_empty());
        assert_eq!(addresses(&go.hosts), "h");
        let both = validate(json!({"hosts": [entry("a", 3000)], "host": "h", "portRange": range}));
        assert!(both.unwrap_err().contains("give one form"));
        let empty = validate(json!({"hosts": [], "portRange": range}));
        assert!(empty.unwrap_err().contains("spec.hosts: is empty"));
        let many: Vec<Value> = (0..100)
            .map(|i| entry(&format!("h{i}"), 3000 + i))
            .collect();
        let e = validate(json!({"hosts": many, "portRange": range})).unwrap_err();
        assert!(e.contains("100 hosts; at most 16"), "{e}");
        let e =
            validate(json!({"hosts": [entry("a", 3000), entry("a", 3001)], "portRange": range}))
                .unwrap_err();
        assert!(e.contains("spec.hosts[1].name"), "{e}");
        let e =
            validate(json!({"hosts": [entry("a", 3000), entry("b", 3000)], "portRange": range}))
                .unwrap_err();
        assert!(e.contains("spec.hosts[1].httpUpdaterURL"), "{e}");
        let e = validate(json!({"hosts": "a", "portRange": range})).unwrap_err();
        assert!(e.contains("spec.hosts"), "{e}");
    }

    #[test]
    fn a_host_may_carry_its_own_credentials_else_the_configs() {
        let range = json!({"low": 8000, "high": 8010});
        let mut b = entry("b", 3001);
        b["updaterTokenSecretRef"] = json!({"name": "b-token"});
        b["insecureSkipVerify"] = json!(true);
        let v = validate(json!({
            "hosts": [entry("a", 3000), b],
            "updaterTokenSecretRef": {"name": "shared"},
            "updaterCASecretRef": {"name": "ca"},
            "portRange": range,
        }))
        .unwrap();
        let a = &v.auths[0];
        assert_eq!(a.token.as_ref().map(|r| r.name.as_str()), Some("shared"));
        assert_eq!(a.ca.as_ref().map(|r| r.name.as_str()), Some("ca"));
        let b = &v.auths[1];
        assert_eq!(b.token.as_ref().map(|r| r.name.as_str()), Some("b-token"));
        assert!(b.ca.is_none() && b.insecure_skip_verify);
        let names: Vec<String> = v.all_refs().into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["b-token", "ca", "shared"]);
        // Each host's view of the config has its own credentials.
        let view = v.auth_for("http://127.0.0.2:3001/api/v1/lb");
        assert_eq!(view, Some(&v.auths[1]));
        assert!(v.auth_for("http://127.0.0.9:3000").is_none());
        let mut bad = entry("c", 3002);
        bad["updaterCASecretRef"] = json!({"name": "x"});
        bad["insecureSkipVerify"] = json!(true);
        let e = validate(json!({"hosts": [bad.clone()], "portRange": range})).unwrap_err();
        assert!(e.contains("spec.hosts[0].updaterCASecretRef"), "{e}");
        // Every entry's name, address and URL, and the list, are checked before any credentials.
        let e =
            validate(json!({"hosts": [bad, entry("c", 3003)], "portRange": range})).unwrap_err();
        assert!(e.contains("spec.hosts[1].name"), "{e}");
    }
}
