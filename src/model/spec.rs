//! Checked forms of our custom resources: what the controller decides with once the lenient stored
//! fields have been validated. Every error message names the field and the bad value.
//! Pure: no I/O, no clock.

use super::hosts::{AuthRefs, LbHost, SecretRef, host_at, url_at};
use super::lenient::Lenient;
use super::paperlb::{
    CheckTimingsResource, HealthCheckResource, HostSpec, LoadBalancerConfig, LoadBalancerSpec,
    SecretKeyRef, TargetSpec,
};
use super::url::check_host;
pub use crate::updater::validate::Protocol;
use crate::updater::validate::{Balance, MAX_TIMEOUT_SECONDS};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// One upstream of a backend: a node address and a nodePort (stored as `{host, port}`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

pub const EXTERNAL_IP: &str = "ExternalIP";
pub const INTERNAL_IP: &str = "InternalIP";

/// A LoadBalancerConfig that passed validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidConfig {
    pub name: String,
    pub namespace: String,
    pub low: u16,
    pub high: u16,
    /// Node address types to try, in order; empty = the controller's default (`--address-type`).
    pub address_types: Vec<String>,
    pub proxy_timeout_seconds: u32,
    pub proxy_connect_timeout_seconds: u32,
    /// `spec.healthCheck`: what replaces the check derived from each Service.
    pub health_check: HealthOverride,
    /// Every host, in order; never empty: the Go form (`host` + `httpUpdaterURL`) is one unnamed
    /// host.
    pub hosts: Vec<LbHost>,
    /// How the controller authenticates to each host's updater and verifies it, in the order of
    /// `hosts`.
    pub auths: Vec<AuthRefs>,
}

/// A config's `spec.healthCheck`, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum HealthOverride {
    /// Absent: each Service's derived check, with the updater's timings.
    #[default]
    Derived,
    /// `type: none`: no check (no `healthCheck` field is sent).
    Off,
    /// Fields that replace the derived check's (absent ones keep it).
    Check {
        /// `http` or `tcp`; None = the derived type.
        kind: Option<String>,
        port: Option<u16>,
        path: Option<String>,
        timings: CheckTimings,
    },
}

/// Intervals and thresholds of a health check; None = the updater's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckTimings {
    pub interval_seconds: Option<u32>,
    pub timeout_seconds: Option<u32>,
    pub unhealthy_threshold: Option<u32>,
    pub healthy_threshold: Option<u32>,
}

/// Default key of `updaterTokenSecretRef`.
pub const TOKEN_KEY: &str = "token";
/// Default key of `updaterCASecretRef`.
pub const CA_KEY: &str = "ca.crt";

impl AuthRefs {
    /// The Secret keys these refs read (token, then CA).
    pub fn refs(&self) -> impl Iterator<Item = &SecretRef> {
        self.token.iter().chain(self.ca.iter())
    }
}

impl ValidConfig {
    /// The credentials of the host naming the updater at `url` (None when no host names it).
    pub fn auth_for(&self, url: &str) -> Option<&AuthRefs> {
        let i = (self.hosts.iter()).position(|h| super::url::same_updater(&h.url, url))?;
        self.auths.get(i)
    }

    /// The node address types to try: the config's, else `default` (`--address-type`).
    pub fn address_types_or<'a>(&'a self, default: &'a [String]) -> &'a [String] {
        match self.address_types.is_empty() {
            true => default,
            false => &self.address_types,
        }
    }

    /// Every Secret key the config's hosts reference.
    pub fn all_refs(&self) -> BTreeSet<SecretRef> {
        let refs = self.auths.iter().flat_map(AuthRefs::refs);
        refs.cloned().collect()
    }
}

impl LoadBalancerConfig {
    /// `spec.default` is true (a mangled value counts as false, and `validate` reports it).
    pub fn is_default(&self) -> bool {
        self.spec.default.get().copied().unwrap_or(false)
    }

    /// Checks what the controller validates again even with CEL in the CRD (not every cluster has
    /// CEL): URL, host, range inside 1–65535 with low <= high, address types, timeouts.
    pub fn validate(&self) -> Result<ValidConfig, String> {
        let spec = &self.spec;
        spec.default.optional("spec.default", "a boolean")?;
        let auth = refs_at("spec", &spec.base, &AuthRefs::default())?;
        let (mut hosts, mut auths) = config_hosts(self, &auth)?;
        if hosts.is_empty() {
            // The Go form: `host` and `httpUpdaterURL` are one unnamed host.
            let url = url_at(&spec.base.http_updater_url, "spec.httpUpdaterURL")?;
            hosts.push(LbHost::unnamed(host_at(&spec.base.host, "spec.host")?, url));
            auths.push(auth);
        }
        let low = port_at(&spec.port_range.low, "spec.portRange.low")?;
        let high = port_at(&spec.port_range.high, "spec.portRange.high")?;
        if low > high {
            return Err(format!(
                "spec.portRange: low {low} is greater than high {high}"
            ));
        }
        let mut address_types = Vec::new();
        for (i, t) in spec.target_address_types.iter().enumerate() {
            let field = format!("spec.targetAddressTypes[{i}]");
            let t = t.require(&field, "a string")?;
            if t != EXTERNAL_IP && t != INTERNAL_IP {
                return Err(format!(
                    "{field}: {t:?} is not {EXTERNAL_IP} or {INTERNAL_IP}"
                ));
            }
            if !address_types.contains(t) {
                address_types.push(t.clone());
            }
        }
        Ok(ValidConfig {
            name: self.metadata.name.clone(),
            namespace: self.metadata.namespace.clone(),
            low,
            high,
            address_types,
            proxy_timeout_seconds: timeout(
                &spec.proxy_timeout_seconds,
                "spec.proxyTimeoutSeconds",
            )?,
            proxy_connect_timeout_seconds: timeout(
                &spec.proxy_connect_timeout_seconds,
                "spec.proxyConnectTimeoutSeconds",
            )?,
            health_check: health_override(&spec.health_check)?,
            hosts,
            auths,
        })
    }
}

/// `spec.healthCheck` of a config: type tcp|http|none, port 1-65535, path and timings as the
/// updater accepts them (its own validation decides, so paperlb never sends a check it refuses).
fn health_override(field: &Lenient<HealthCheckResource>) -> Result<HealthOverride, String> {
    let at = "spec.healthCheck";
    let Some(h) = field.optional(at, "an object")? else {
        return Ok(HealthOverride::Derived);
    };
    let kind = h.type_.optional(&format!("{at}.type"), "a string")?;
    match kind.map(String::as_str) {
        None | Some("http") | Some("tcp") => {}
        Some("none") => return Ok(HealthOverride::Off),
        Some(k) => return Err(format!("{at}.type {k:?}: must be tcp, http or none")),
    }
    let check = health_check(h, at, kind.map_or("http", String::as_str))?;
    crate::updater::validate::health_check(&check.to_api()).map_err(|e| format!("spec.{e}"))?;
    Ok(HealthOverride::Check {
        kind: kind.cloned(),
        port: check.port,
        path: h.path.get().cloned(),
        timings: check.timings,
    })
}

/// The check `h` at `at` describes, of type `kind`: its port, path (`/healthz` when absent) and
/// timings checked.
fn health_check(h: &HealthCheckResource, at: &str, kind: &str) -> Result<LbHealthCheck, String> {
    Ok(LbHealthCheck {
        kind: kind.to_string(),
        port: opt_port(&h.port, &format!("{at}.port"))?,
        path: (h.path.optional(&format!("{at}.path"), "a string")?)
            .map_or_else(|| "/healthz".into(), String::clone),
        timings: check_timings(&h.timings, at)?,
    })
}

/// Timings as written, each checked against the updater's limits (1-3600 s, thresholds 1-100).
fn check_timings(t: &CheckTimingsResource, at: &str) -> Result<CheckTimings, String> {
    let one = |l: &Lenient<i64>, name: &str, max: i64| -> Result<Option<u32>, String> {
        let field = format!("{at}.{name}");
        match l.optional(&field, "an integer")? {
            None => Ok(None),
            Some(v) if (1..=max).contains(v) => Ok(Some(*v as u32)),
            Some(v) => Err(format!("{field}: {v} is outside 1-{max}")),
        }
    };
    Ok(CheckTimings {
        interval_seconds: one(&t.interval_seconds, "intervalSeconds", 3600)?,
        timeout_seconds: one(&t.timeout_seconds, "timeoutSeconds", 3600)?,
        unhealthy_threshold: one(&t.unhealthy_threshold, "unhealthyThreshold", 100)?,
        healthy_threshold: one(&t.healthy_threshold, "healthyThreshold", 100)?,
    })
}

/// The credentials fields of `h`, under `at`; each one absent falls back to `inherited`'s (the
/// config's for an entry of `hosts`, none for the config itself).
fn refs_at(at: &str, h: &HostSpec, inherited: &AuthRefs) -> Result<AuthRefs, String> {
    let token_at = format!("{at}.updaterTokenSecretRef");
    let token = secret_ref(&h.updater_token_secret_ref, &token_at, TOKEN_KEY)?
        .or_else(|| inherited.token.clone());
    let ca_at = format!("{at}.updaterCASecretRef");
    let own_ca = secret_ref(&h.updater_ca_secret_ref, &ca_at, CA_KEY)?;
    let own_insecure = h
        .insecure_skip_verify
        .optional(&format!("{at}.insecureSkipVerify"), "a boolean")?
        .copied();
    if own_insecure == Some(true) && own_ca.is_some() {
        return Err(format!(
            "{at}.updaterCASecretRef and {at}.insecureSkipVerify: a CA to verify against and no \
             verification at all contradict each other; set one"
        ));
    }
    // A host's own CA or skip setting replaces both of the config's.
    let (ca, insecure_skip_verify) = match (own_ca, own_insecure) {
        (Some(ca), _) => (Some(ca), false),
        (None, Some(skip)) => (None, skip),
        (None, None) => (inherited.ca.clone(), inherited.insecure_skip_verify),
    };
    Ok(AuthRefs {
        token,
        ca,
        insecure_skip_verify,
    })
}

/// `spec.hosts`, checked, and each one's credentials (`auth`, the config's, unless it has its
/// own); empty for the Go form. Exactly one of the two forms must be given.
fn config_hosts(
    config: &LoadBalancerConfig,
    auth: &AuthRefs,
) -> Result<(Vec<LbHost>, Vec<AuthRefs>), String> {
    let spec = &config.spec;
    let Some(entries) = spec
        .hosts
        .optional("spec.hosts", "a list of {name, host, httpUpdaterURL}")?
    else {
        return Ok(Default::default());
    };
    if !spec.base.host.is_missing() || !spec.base.http_updater_url.is_missing() {
        return Err(
            "spec.hosts and spec.host/spec.httpUpdaterURL: give one form, hosts or host with \
             httpUpdaterURL, not both"
                .into(),
        );
    }
    let hosts = super::hosts::check_hosts(entries)?;
    let mut auths = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        auths.push(refs_at(&format!("spec.hosts[{i}]"), e, auth)?);
    }
    Ok((hosts, auths))
}

/// `{name, key}`: name a DNS subdomain (a Secret's name), key as Secrets allow (`[-._a-zA-Z0-9]+`).
fn secret_ref(
    field: &Lenient<SecretKeyRef>,
    at: &str,
    default_key: &str,
) -> Result<Option<SecretRef>, String> {
    let Some(r) = field.optional(at, "an object {name, key}")? else {
        return Ok(None);
    };
    let name = r.name.require(&format!("{at}.name"), "a string")?;
    // A Secret's name: a lowercase RFC 1123 subdomain of at most 253 characters.
    let label = |l: &str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label) {
        let rule = "is not a Secret name (lowercase letters, digits, '-' and '.')";
        return Err(format!("{at}.name {name:?}: {rule}"));
    }
    let key = (r.key.optional(&format!("{at}.key"), "a string")?)
        .map_or_else(|| default_key.to_string(), String::clone);
    if !crate::updater::validate::is_token(&key, 253) {
        return Err(format!(
            "{at}.key {key:?}: is not a Secret key (letters, digits, '-', '_', '.')"
        ));
    }
    Ok(Some(SecretRef {
        name: name.clone(),
        key,
    }))
}

/// 1–65535, or a message saying why not.
pub fn port_number(v: i64) -> Result<u16, String> {
    u16::try_from(v)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{v} is outside 1-65535"))
}

/// A required port field, 1-65535.
fn port_at(l: &Lenient<i64>, field: &str) -> Result<u16, String> {
    port_number(*l.require(field, "an integer")?).map_err(|e| format!("{field}: {e}"))
}

/// An optional port field: absent, or 1-65535.
fn opt_port(l: &Lenient<i64>, field: &str) -> Result<Option<u16>, String> {
    (l.optional(field, "an integer")?)
        .map(|p| port_number(*p).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

/// A LoadBalancer spec, checked and normalised (targets sorted and deduplicated), so two specs that
/// mean the same compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbSpec {
    /// Empty for a hand-made LoadBalancer that names no config.
    pub config_name: String,
    /// In Service port order; never empty.
    pub ports: Vec<LbPort>,
    /// nginx proxy timeouts in seconds (the config's); 0 = not set.
    pub proxy_timeout_seconds: u32,
    pub proxy_connect_timeout_seconds: u32,
    /// Source ranges, PROXY protocol and health check (from the Service).
    pub traffic: LbTraffic,
    /// Every LB host; never empty: the Go form is one unnamed host ([`LbSpec::is_go_form`]), and
    /// the Go fields (`host`, `httpUpdater.url`) hold the first.
    pub hosts: Vec<LbHost>,
}

/// What the Service asks of the traffic itself; all optional on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LbTraffic {
    /// Canonical CIDRs; empty = everyone.
    pub source_ranges: Vec<String>,
    /// PROXY protocol v1 on TCP ports (UDP ports are pushed without it).
    pub proxy_protocol: bool,
    pub health_check: Option<LbHealthCheck>,
    /// How nginx picks a target (`spec.sessionAffinity`, the annotation `lb.paperlb.com/balance`).
    pub balance: Balance,
}

/// The health check the updater runs against every target. Serialized as stored in a
/// LoadBalancer's spec; unset fields are `null`, so a merge patch removes what an earlier spec had.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LbHealthCheck {
    /// `http` or `tcp`.
    #[serde(rename = "type")]
    pub kind: String,
    /// None: each target's own port (a tcp check of the nodePort).
    pub port: Option<u16>,
    pub path: String,
    /// The config's override; all None by default (the updater's defaults, not sent).
    #[serde(flatten)]
    pub timings: CheckTimings,
}

impl LbHealthCheck {
    /// The updater API's `healthCheck`: an http check names its path; unset timings are left out.
    pub fn to_api(&self) -> crate::updater::api::HealthCheck {
        let t = &self.timings;
        crate::updater::api::HealthCheck {
            kind: self.kind.clone(),
            port: self.port,
            path: (self.kind == "http").then(|| self.path.clone()),
            interval_seconds: t.interval_seconds.map(u64::from),
            timeout_seconds: t.timeout_seconds.map(u64::from),
            unhealthy_threshold: t.unhealthy_threshold,
            healthy_threshold: t.healthy_threshold,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbPort {
    /// The Service port's name (may be empty for a single unnamed port).
    pub name: String,
    /// The port on the LB host.
    pub port: u16,
    pub protocol: Protocol,
    pub node_port: Option<u16>,
    pub targets: Vec<Target>,
}

impl LbSpec {
    /// Reads a stored spec: the `ports` list when present, else the Go form (`port`, `protocol`,
    /// `targets`) as a single port.
    pub fn from_resource(spec: &LoadBalancerSpec) -> Result<LbSpec, String> {
        let config_name = spec
            .config_name
            .optional("spec.configName", "a string")?
            .cloned()
            .unwrap_or_default();
        let url = url_at(&spec.http_updater.url, "spec.httpUpdater.url")?;
        let host = host_at(&spec.host, "spec.host")?;
        let mut ports: Vec<LbPort> = Vec::new();
        if spec.ports.is_empty() {
            let targets = (&spec.targets[..], true);
            ports.push(parse_port(&spec.port, &spec.protocol, targets, "spec")?);
        }
        for (i, p) in spec.ports.iter().enumerate() {
            let at = format!("spec.ports[{i}]");
            // The first port's targets are the Go field `targets` when it lists none itself.
            let targets = match (i, p.targets.is_empty()) {
                (0, true) => (&spec.targets[..], true),
                _ => (&p.targets[..], false),
            };
            let mut port = parse_port(&p.port, &p.protocol, targets, &at)?;
            let name = p.name.optional(&format!("{at}.name"), "a string")?;
            port.name = name.cloned().unwrap_or_default();
            port.node_port = opt_port(&p.node_port, &format!("{at}.nodePort"))?;
            let (n, protocol) = (port.port, port.protocol);
            if ports.iter().any(|q| (q.port, q.protocol) == (n, protocol)) {
                return Err(format!("{at}: port {n}/{protocol} is listed twice"));
            }
            ports.push(port);
        }
        Ok(LbSpec {
            config_name,
            ports,
            proxy_timeout_seconds: timeout(
                &spec.proxy_timeout_seconds,
                "spec.proxyTimeoutSeconds",
            )?,
            proxy_connect_timeout_seconds: timeout(
                &spec.proxy_connect_timeout_seconds,
                "spec.proxyConnectTimeoutSeconds",
            )?,
            traffic: traffic_of(spec)?,
            // No `hosts`: the Go form, whose `host` and `httpUpdater.url` are one unnamed host.
            hosts: if spec.hosts.is_empty() {
                vec![LbHost::unnamed(host, url)]
            } else {
                super::hosts::check_hosts(&spec.hosts)?
            },
        })
    }

    /// The Go form: one unnamed host, stored in the Go fields only (`host`, `httpUpdater.url`).
    pub fn is_go_form(&self) -> bool {
        matches!(self.hosts.as_slice(), [h] if h.name.is_empty())
    }

    /// The host whose updater `url` names (either spelling of its endpoint), if one does.
    pub fn host_of(&self, url: &str) -> Option<&LbHost> {
        self.hosts
            .iter()
            .find(|h| super::url::same_updater(&h.url, url))
    }

    /// True when `stored` holds exactly this spec, including the Go fields mirroring the first port.
    pub fn matches(&self, stored: &LoadBalancerSpec) -> bool {
        let Ok(parsed) = LbSpec::from_resource(stored) else {
            return false;
        };
        if parsed != *self || stored.ports.len() != self.ports.len() {
            return false;
        }
        // The Go fields mirror the first host.
        let go = (stored.host.get(), stored.http_updater.url.get());
        if Some(go) != self.hosts.first().map(|h| (Some(&h.host), Some(&h.url))) {
            return false;
        }
        let Some(first) = self.ports.first() else {
            return false;
        };
        // The Go fields mirror the first port (its name and nodePort live in `ports` only).
        let targets = (&stored.targets[..], true);
        parse_port(&stored.port, &stored.protocol, targets, "spec").is_ok_and(|p| {
            (p.port, p.protocol, &p.targets) == (first.port, first.protocol, &first.targets)
        })
    }

    /// The stored form: Go fields for the first port plus the `ports` list. The first port's
    /// targets are written once, as the Go field `targets`: the list is most of the object, and
    /// the apiserver's CPU per write grows with its size (bench/RESULTS.md, "a real apiserver").
    pub fn to_json(&self) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut v = json!({
                    "name": p.name,
                    "port": p.port,
                    "protocol": p.protocol.as_str(),
                });
                if i > 0 {
                    v["targets"] = json!(p.targets);
                }
                if let Some(np) = p.node_port {
                    v["nodePort"] = json!(np);
                }
                v
            })
            .collect();
        let t = &self.traffic;
        // Every field beyond the Go ones is written, `null` when unset (0, false, empty, round
        // robin, the Go form's one host), so a merge patch removes what an earlier spec had; a
        // create leaves the nulls out (`without_nulls`). A stored spec without them reads as
        // unset, so older LoadBalancers match without a write, and a CRD older than a feature
        // refuses only a spec that uses it (writes are strict).
        let set = |v: Value, on: bool| if on { v } else { Value::Null };
        let go = self.hosts.first(); // the Go fields hold the first host
        let mut spec = json!({
            "configName": self.config_name,
            "httpUpdater": {"url": go.map(|h| &h.url)},
            "host": go.map(|h| &h.host),
            "ports": ports,
            "proxyTimeoutSeconds": set(json!(self.proxy_timeout_seconds), self.proxy_timeout_seconds > 0),
            "proxyConnectTimeoutSeconds": set(json!(self.proxy_connect_timeout_seconds), self.proxy_connect_timeout_seconds > 0),
            "sourceRanges": set(json!(t.source_ranges), !t.source_ranges.is_empty()),
            "proxyProtocol": set(json!(true), t.proxy_protocol),
            "healthCheck": t.health_check,
            "hosts": (!self.is_go_form()).then(|| self.hosts.iter().map(|h| h.to_json()).collect::<Vec<_>>()),
            "balance": set(json!(t.balance.as_str()), t.balance != Balance::RoundRobin),
        });
        if let Some(first) = self.ports.first() {
            spec["port"] = json!(first.port);
            spec["protocol"] = json!(first.protocol.as_str());
            spec["targets"] = json!(first.targets);
        }
        spec
    }

    /// Distinct target hosts over all ports (the `TARGETCOUNT` column).
    pub fn target_count(&self) -> usize {
        let hosts = self.ports.iter().flat_map(|p| &p.targets).map(|t| &t.host);
        hosts.collect::<BTreeSet<_>>().len()
    }
}

/// `sourceRanges`, `proxyProtocol`, `healthCheck` and `balance` of a stored spec (absent = none).
fn traffic_of(spec: &LoadBalancerSpec) -> Result<LbTraffic, String> {
    let mut source_ranges = Vec::new();
    for (i, c) in spec.source_ranges.iter().enumerate() {
        let field = format!("spec.sourceRanges[{i}]");
        let c = c.require(&field, "a string")?;
        source_ranges.push(crate::updater::validate::cidr(c).map_err(|e| format!("{field}: {e}"))?);
    }
    let proxy_protocol = spec
        .proxy_protocol
        .optional("spec.proxyProtocol", "a boolean")?
        .copied()
        .unwrap_or(false);
    let h = &spec.health_check;
    let health_check = match h.type_.optional("spec.healthCheck.type", "a string")? {
        None => None,
        Some(kind) if kind != "http" && kind != "tcp" => {
            return Err(format!(
                "spec.healthCheck.type {kind:?}: must be http or tcp"
            ));
        }
        Some(kind) => Some(health_check(h, "spec.healthCheck", kind)?),
    };
    let balance = match spec.balance.optional("spec.balance", "a string")? {
        None => Balance::RoundRobin,
        Some(b) => Balance::parse(b).ok_or_else(|| {
            format!("spec.balance {b:?}: must be round-robin, least-conn, hash or random-two")
        })?,
    };
    Ok(LbTraffic {
        source_ranges,
        proxy_protocol,
        health_check,
        balance,
    })
}

/// A proxy timeout in seconds: absent or 0 means "the default"; the bound is the updater's, so a
/// config or LoadBalancer accepted here is never refused by the updater on every push.
fn timeout(l: &Lenient<i64>, field: &str) -> Result<u32, String> {
    let v = l.optional(field, "an integer")?.copied().unwrap_or(0);
    match u32::try_from(v) {
        Ok(s) if u64::from(s) <= MAX_TIMEOUT_SECONDS => Ok(s),
        _ => Err(format!(
            "{field}: {v} is outside 0-{MAX_TIMEOUT_SECONDS} (the updater's limit)"
        )),
    }
}

/// One port at field path `at`; its targets are its own `{at}.targets`, or the Go field
/// `spec.targets` (`go_field`: the Go form, or a first port that lists none itself), which an
/// error names.
fn parse_port(
    port: &Lenient<i64>,
    protocol: &Lenient<String>,
    (targets, go_field): (&[TargetSpec], bool),
    at: &str,
) -> Result<LbPort, String> {
    let port = port_at(port, &format!("{at}.port"))?;
    let protocol = match protocol.optional(&format!("{at}.protocol"), "a string")? {
        None => Protocol::Tcp,
        Some(p) => {
            Protocol::parse(p).ok_or_else(|| format!("{at}.protocol: {p:?} is not TCP or UDP"))?
        }
    };
    let mut out = Vec::with_capacity(targets.len());
    let list_at = if go_field { "spec" } else { at };
    for (i, t) in targets.iter().enumerate() {
        // Field names are formatted only for an error: this runs for every target on every reconcile.
        let field = |f: &str| format!("{list_at}.targets[{i}].{f}");
        let host = t.host.require_with(|| field("host"), "a string")?;
        check_host(host).map_err(|e| format!("{} {host:?}: {e}", field("host")))?;
        let p = port_number(*t.port.require_with(|| field("port"), "an integer")?)
            .map_err(|e| format!("{}: {e}", field("port")))?;
        out.push(Target {
            host: host.to_string(),
            port: p,
        });
    }
    out.sort();
    out.dedup();
    Ok(LbPort {
        name: String::new(),
        port,
        protocol,
        node_port: None,
        targets: out,
    })
}
