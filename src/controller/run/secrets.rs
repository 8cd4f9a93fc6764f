//! The Secrets that LoadBalancerConfigs reference (`updaterTokenSecretRef`, `updaterCASecretRef`),
//! and how a config's references become the `ClientAuth` of its updater.
//!
//! Owns: [`SecretStore`], the worker's view of the Secrets in the controller's namespace. It keeps
//! every Secret's name, resourceVersion and key names, but the bytes only of keys some valid config
//! references, so a namespace full of unrelated Secrets (Helm releases, service account tokens)
//! costs a few bytes each. A key that becomes referenced after its Secret arrived is reported as
//! [`AuthNeed::Read`], and the worker reads that Secret once. Also owns [`client_auth`]: the checks
//! of a token (UTF-8, not empty, sendable in a header) and a CA (PEM that parses), each failure an
//! [`AuthProblem`] naming the config, the field and the Secret.
//!
//! Pure: no I/O, no clock. Must not: log, or put a token or key bytes in a message or `Debug`.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use crate::controller::cache::Cache;
use crate::model::url::same_updater;
use crate::model::{AuthRefs, Secret, SecretRef, ValidConfig};
use crate::updater::client::{ClientAuth, ClientTls, check_token};

use crate::controller::decide::updater_auth::AuthProblem;

#[derive(Clone, Default, PartialEq, Eq)]
struct Stored {
    resource_version: String,
    keys: BTreeSet<String>,
    /// Decoded values of the referenced keys only; `None` for a value that is not base64.
    kept: BTreeMap<String, Option<Vec<u8>>>,
}

/// See the module docs. `Debug` shows names and key names, never values.
#[derive(Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, Stored>,
    /// The keys valid configs reference (see [`wanted`]): the only ones whose bytes are kept.
    wanted: BTreeSet<SecretRef>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.secrets.iter().map(|(n, s)| (n, &s.keys)))
            .finish()
    }
}

impl SecretStore {
    /// A relist: the Secrets now in the namespace. Returns the names whose kept view changed.
    pub fn replace(&mut self, items: Vec<Secret>) -> BTreeSet<String> {
        let old = std::mem::take(&mut self.secrets);
        for s in items {
            self.secrets
                .insert(s.metadata.name.clone(), stored(s, &self.wanted));
        }
        (old.keys().chain(self.secrets.keys()))
            .filter(|n| old.get(*n) != self.secrets.get(*n))
            .cloned()
            .collect()
    }

    /// An added or modified Secret; true when what is kept of it changed.
    pub fn apply(&mut self, s: Secret) -> bool {
        let name = s.metadata.name.clone();
        let stored = stored(s, &self.wanted);
        let changed = self.secrets.get(&name) != Some(&stored);
        self.secrets.insert(name, stored);
        changed
    }

    /// A deleted Secret; true when it was known.
    pub fn delete(&mut self, name: &str) -> bool {
        self.secrets.remove(name).is_some()
    }

    /// The keys to keep from now on: the bytes of keys no config references any more are dropped.
    pub fn want(&mut self, wanted: BTreeSet<SecretRef>) {
        for (name, s) in &mut self.secrets {
            s.kept.retain(|k, _| {
                wanted.contains(&SecretRef {
                    name: name.clone(),
                    key: k.clone(),
                })
            });
        }
        self.wanted = wanted;
    }
}

fn stored(s: Secret, wanted: &BTreeSet<SecretRef>) -> Stored {
    let name = s.metadata.name;
    let mut out = Stored {
        resource_version: s.metadata.resource_version,
        ..Stored::default()
    };
    for (key, value) in s.data {
        let Some(value) = value else { continue };
        let r = SecretRef {
            name: name.clone(),
            key: key.clone(),
        };
        if wanted.contains(&r) {
            let bytes = base64::engine::general_purpose::STANDARD.decode(value.as_bytes());
            out.kept.insert(key.clone(), bytes.ok());
        }
        out.keys.insert(key);
    }
    out
}

/// Every Secret key a valid config in `namespace` references.
pub fn wanted(cache: &Cache, namespace: &str) -> BTreeSet<SecretRef> {
    (cache.valid_configs(namespace))
        .flat_map(|c| c.all_refs())
        .collect()
}

/// What building a client for a config needs first.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthNeed {
    /// The config cannot be used: report it, send nothing.
    Problem(AuthProblem),
    /// Read this Secret (its referenced key was not kept), then ask again.
    Read(String),
}

/// The credentials and trust config `cfg` gives its host whose updater is at `url`, checked; none
/// when no host names it.
pub fn client_auth(
    cfg: &ValidConfig,
    url: &str,
    store: &SecretStore,
) -> Result<ClientAuth, AuthNeed> {
    let Some(host) = (cfg.hosts.iter()).position(|h| same_updater(&h.url, url)) else {
        return Ok(ClientAuth::default());
    };
    let AuthRefs {
        token,
        ca,
        insecure_skip_verify,
    } = &cfg.auths[host];
    let token = match token {
        None => None,
        Some(r) => {
            let field = &field_of(cfg, host, "updaterTokenSecretRef");
            let bytes = bytes_of(cfg, field, "InvalidToken", r, store)?;
            let invalid = |why| AuthNeed::Problem(problem(cfg, "InvalidToken", field, r, why));
            Some(token_text(bytes).map_err(invalid)?)
        }
    };
    let tls = match (ca, insecure_skip_verify) {
        (Some(r), _) => {
            let field = &field_of(cfg, host, "updaterCASecretRef");
            let pem = bytes_of(cfg, field, "InvalidCA", r, store)?;
            if let Err(why) = crate::kube::tls::root_store(pem).map_err(|e| e.to_string()) {
                return Err(AuthNeed::Problem(problem(cfg, "InvalidCA", field, r, &why)));
            }
            ClientTls::CaPem(pem.to_vec())
        }
        (None, true) => ClientTls::InsecureSkipVerify,
        (None, false) => ClientTls::SystemRoots,
    };
    Ok(ClientAuth { token, tls })
}

/// Where reference `name` (`updaterTokenSecretRef`) of host `host` (an index into `cfg.hosts`)
/// comes from: `spec.<name>` for the Go form, else `<name> of spec.hosts[host], or of spec when the
/// host names none` (validation merged the two), never a field the config lacks.
pub fn field_of(cfg: &ValidConfig, host: usize, name: &str) -> String {
    if cfg.hosts.first().is_some_and(|h| h.name.is_empty()) {
        format!("spec.{name}")
    } else {
        format!("{name} of spec.hosts[{host}], or of spec when the host names none")
    }
}

/// The kept bytes of `r` (config `cfg`'s `field`), or why there are none: a problem to report
/// (`invalid` is its reason for a value that is not base64), or a Secret to read first.
fn bytes_of<'a>(
    cfg: &ValidConfig,
    field: &str,
    invalid: &'static str,
    r: &SecretRef,
    store: &'a SecretStore,
) -> Result<&'a [u8], AuthNeed> {
    let fail = |reason, why: &str| Err(AuthNeed::Problem(problem(cfg, reason, field, r, why)));
    let Some(s) = store.secrets.get(&r.name) else {
        let why = format!("no such Secret in namespace {}", cfg.namespace);
        return fail("SecretNotFound", &why);
    };
    if !s.keys.contains(&r.key) {
        // Not the keys it has: the message reaches the tenant's namespace (Events, conditions),
        // and would change with an unrelated key.
        return fail("KeyNotFound", "the Secret has no such key");
    }
    match s.kept.get(&r.key) {
        Some(Some(bytes)) => Ok(bytes),
        // The apiserver never stores such a value.
        Some(None) => fail(invalid, "the value is not base64"),
        // Nobody referenced the key when its Secret arrived: read it again.
        None => Err(AuthNeed::Read(r.name.clone())),
    }
}

/// `LoadBalancerConfig ns/name: spec.updaterTokenSecretRef (Secret "t", key "token"): why`.
fn problem(
    cfg: &ValidConfig,
    reason: &'static str,
    field: &str,
    r: &SecretRef,
    why: &str,
) -> AuthProblem {
    AuthProblem {
        reason,
        message: format!(
            "LoadBalancerConfig {}/{}: {field} (Secret {:?}, key {:?}): {why}; no updater call is sent",
            cfg.namespace, cfg.name, r.name, r.key
        ),
    }
}

/// A token as files and `kubectl create secret --from-file` leave it: surrounding whitespace (the
/// final newline) is dropped; what remains must fit in a header ([`check_token`]).
fn token_text(bytes: &[u8]) -> Result<String, &'static str> {
    let t = std::str::from_utf8(bytes)
        .map_err(|_| "the token is not UTF-8")?
        .trim();
    check_token(t)?;
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LoadBalancerConfig;
    use serde_json::json;

    impl SecretStore {
        /// Secrets known.
        fn len(&self) -> usize {
            self.secrets.len()
        }

        /// Bytes held for referenced keys (the store's whole payload).
        fn kept_bytes(&self) -> usize {
            self.secrets
                .values()
                .flat_map(|s| s.kept.values().flatten())
                .map(Vec::len)
                .sum()
        }
    }

    fn secret(name: &str, data: serde_json::Value) -> Secret {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "paperlb-system",
            "resourceVersion": "1"}, "data": data}),
        )
        .unwrap()
    }

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn config(spec_extra: serde_json::Value) -> ValidConfig {
        let mut spec = json!({"httpUpdaterURL": "https://127.0.0.1:3000", "host": "127.0.0.1",
            "portRange": {"low": 8000, "high": 8001}});
        for (k, v) in spec_extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let c: LoadBalancerConfig = serde_json::from_value(json!({
            "metadata": {"name": "edge", "namespace": "paperlb-system"}, "spec": spec}))
        .unwrap();
        c.validate().unwrap()
    }

    fn refs(items: &[(&str, &str)]) -> BTreeSet<SecretRef> {
        items
            .iter()
            .map(|(n, k)| SecretRef {
                name: n.to_string(),
                key: k.to_string(),
            })
            .collect()
    }

    #[test]
    fn keeps_only_referenced_bytes() {
        let mut store = SecretStore::default();
        let big = b64(&vec![b'x'; 100_000]);
        store.want(refs(&[("lb-token", "token")]));
        let changed = store.replace(vec![
            secret("lb-token", json!({"token": b64(b"s3cret\n"), "other": big})),
            secret("helm-release", json!({"release": big})),
        ]);
        assert_eq!(changed.len(), 2);
        assert_eq!(store.len(), 2);
        assert_eq!(store.kept_bytes(), 7);
        let r = |n: &str, k: &str| SecretRef {
            name: n.into(),
            key: k.into(),
        };
        let cfg = config(json!({}));
        let lookup = |r: SecretRef| bytes_of(&cfg, "f", "InvalidToken", &r, &store);
        let reason = |r: SecretRef| match lookup(r) {
            Err(AuthNeed::Problem(p)) => p.reason,
            other => panic!("{:?}", other.err()),
        };
        assert_eq!(lookup(r("lb-token", "token")), Ok(&b"s3cret\n"[..]));
        let not_kept = Err(AuthNeed::Read("lb-token".into()));
        assert_eq!(lookup(r("lb-token", "other")), not_kept);
        assert_eq!(reason(r("lb-token", "nope")), "KeyNotFound");
        assert_eq!(reason(r("gone", "token")), "SecretNotFound");
        // The same Secret again changes nothing; a rotated value does.
        assert!(!store.apply(secret(
            "lb-token",
            json!({"token": b64(b"s3cret\n"), "other": "eA=="})
        )));
        assert!(store.apply(secret("lb-token", json!({"token": b64(b"new")}))));
        // No longer referenced: the bytes go.
        store.want(BTreeSet::new());
        assert_eq!(store.kept_bytes(), 0);
        assert!(store.delete("lb-token") && !store.delete("lb-token"));
        let shown = format!("{store:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("new"));
    }

    #[test]
    fn client_auth_reports_each_problem_by_config_field_and_secret() {
        let token_ref = json!({"updaterTokenSecretRef": {"name": "lb-token"}});
        let cfg = config(token_ref.clone());
        let wanted = refs(&[("lb-token", "token"), ("lb-ca", "ca.crt")]);
        let reason = |store: &SecretStore, cfg: &ValidConfig| match client_auth(
            cfg,
            &cfg.hosts[0].url,
            store,
        ) {
            Err(AuthNeed::Problem(p)) => {
                assert!(
                    p.message
                        .starts_with("LoadBalancerConfig paperlb-system/edge: spec.updater"),
                    "{}",
                    p.message
                );
                assert!(p.message.contains("\"lb-"), "{}", p.message);
                p.reason
            }
            other => panic!("{:?}", other.err()),
        };
        let mut store = SecretStore::default();
        store.want(wanted);
        assert_eq!(reason(&store, &cfg), "SecretNotFound");
        store.apply(secret("lb-token", json!({"tok": b64(b"x")})));
        assert_eq!(reason(&store, &cfg), "KeyNotFound");
        // Review of 7b413b3: the message reaches the tenant's namespace; it names none of the
        // Secret's other keys and stays the same when one of them changes.
        let message = |store: &SecretStore| match client_auth(&cfg, &cfg.hosts[0].url, store) {
            Err(AuthNeed::Problem(p)) => p.message,
            other => panic!("{:?}", other.err()),
        };
        let before = message(&store);
        assert!(
            !before.contains("tok,") && !before.contains("tok)"),
            "{before}"
        );
        store.apply(secret(
            "lb-token",
            json!({"tok": b64(b"x"), "ca": b64(b"y")}),
        ));
        assert_eq!(message(&store), before);
        for bad in [&b""[..], b" \n", b"a b", &[0xff, 0xfe]] {
            store.apply(secret("lb-token", json!({"token": b64(bad)})));
            assert_eq!(reason(&store, &cfg), "InvalidToken");
        }
        store.apply(secret("lb-token", json!({"token": "%%%not base64"})));
        assert_eq!(reason(&store, &cfg), "InvalidToken");
        store.apply(secret("lb-token", json!({"token": b64(b"s3cret\n")})));
        let auth = client_auth(&cfg, &cfg.hosts[0].url, &store).unwrap();
        assert_eq!(auth.token.as_deref(), Some("s3cret"));
        assert_eq!(auth.tls, ClientTls::SystemRoots);

        // A key present but not kept asks for a read.
        let mut cold = SecretStore::default();
        cold.apply(secret("lb-token", json!({"token": b64(b"s3cret")})));
        assert_eq!(
            client_auth(&cfg, &cfg.hosts[0].url, &cold).err(),
            Some(AuthNeed::Read("lb-token".into()))
        );

        let ca_cfg = config(json!({"updaterCASecretRef": {"name": "lb-ca"}}));
        store.apply(secret("lb-ca", json!({"ca.crt": b64(b"garbage")})));
        assert_eq!(reason(&store, &ca_cfg), "InvalidCA");
        let insecure = config(json!({"insecureSkipVerify": true}));
        assert_eq!(
            client_auth(&insecure, &insecure.hosts[0].url, &store)
                .unwrap()
                .tls,
            ClientTls::InsecureSkipVerify
        );
        // No refs: no token, system roots (Go YAML).
        let plain = config(json!({}));
        assert!(client_auth(&plain, &plain.hosts[0].url, &store).unwrap() == ClientAuth::default());
    }

    #[test]
    fn each_hosts_problem_names_that_host_even_when_several_share_the_refs() {
        // Hosts 0 and 1 take spec's token, host 2 names its own; no Secret exists.
        let host = |i: u16, own: serde_json::Value| {
            let mut h = json!({"name": format!("lb-{i}"), "host": "127.0.0.1",
                "httpUpdaterURL": format!("http://127.0.0.1:{}", 3000 + i)});
            if !own.is_null() {
                h["updaterTokenSecretRef"] = own;
            }
            h
        };
        let c: LoadBalancerConfig = serde_json::from_value(json!({
            "metadata": {"name": "edge", "namespace": "paperlb-system"},
            "spec": {"portRange": {"low": 8000, "high": 8001},
                "updaterTokenSecretRef": {"name": "shared"},
                "hosts": [host(0, json!(null)), host(1, json!(null)), host(2, json!({"name": "own"}))]}}))
        .unwrap();
        let cfg = c.validate().unwrap();
        let store = SecretStore::default();
        for (i, secret) in [(0, "shared"), (1, "shared"), (2, "own")] {
            let Err(AuthNeed::Problem(p)) = client_auth(&cfg, &cfg.hosts[i].url, &store) else {
                panic!("host {i}: no problem");
            };
            let field = format!("updaterTokenSecretRef of spec.hosts[{i}], or of spec when");
            assert!(p.message.contains(&field), "host {i}: {}", p.message);
            assert!(
                p.message.contains(&format!("(Secret {secret:?}")),
                "{}",
                p.message
            );
        }
        // A URL no host names: no credentials.
        let none = client_auth(&cfg, "http://127.0.0.1:3999", &store);
        assert!(none == Ok(ClientAuth::default()));
    }

    #[test]
    fn wanted_lists_refs_of_valid_configs_in_the_namespace_only() {
        let mut configs = Cache::default();
        let mk = |ns: &str, name: &str, secret: &str| -> LoadBalancerConfig {
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
                "spec": {"httpUpdaterURL": "http://127.0.0.1:3000", "host": "127.0.0.1",
                    "portRange": {"low": 8000, "high": 8001},
                    "updaterTokenSecretRef": {"name": secret, "key": "t"}}}))
            .unwrap()
        };
        configs.apply_config(mk("paperlb-system", "a", "s1"));
        configs.apply_config(mk("other", "b", "s2"));
        let mut broken = mk("paperlb-system", "c", "s3");
        broken.spec.base.host = crate::model::Lenient::Missing;
        configs.apply_config(broken);
        assert_eq!(wanted(&configs, "paperlb-system"), refs(&[("s1", "t")]));
    }
}
