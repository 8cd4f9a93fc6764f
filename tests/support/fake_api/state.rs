//! The cluster state behind the lock, and the verbs on it (create, get, list, update, patch,
//! delete) as the apiserver's generic registry runs them. Both the HTTP handlers and the test-facing
//! `FakeApi` methods call these, so direct writes emit the same watch events. Pure: no I/O.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine;

use serde_json::{Value, json};

use super::clock;
use super::faults::Fault;
use super::kinds;
use super::patch;
use super::resources::{CUSTOMRESOURCEDEFINITIONS, NAMESPACES, ResourceDef, SERVICES, crd_name};
use super::selectors::{FieldSelector, LabelSelector};
use super::services;
use super::status::{self, ApiError, Cause};
use super::store::Store;

/// One request as the server saw it, for tests that count writes.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
    pub user: String,
    pub status: u16,
}

pub struct State {
    pub store: Store,
    pub tokens: HashMap<String, String>,
    /// (user, verb, resource) triples that are forbidden; `*` matches anything.
    pub denies: Vec<(String, String, String)>,
    pub faults: VecDeque<Fault>,
    pub requests: Vec<RequestRecord>,
    pub crds_installed: bool,
    /// LoadBalancer `spec` fields the installed CRD does not list (an older CRD).
    pub lb_spec_unknown: Vec<String>,
    pub node_port_range: (u16, u16),
    rng: u64,
}

/// A list request's options.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: usize,
    pub continue_token: String,
    pub resource_version: String,
    pub resource_version_match: String,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

fn continue_token(rv: i64, start: &str) -> String {
    let raw = format!(
        "{{\"v\":\"meta.k8s.io/v1\",\"rv\":{rv},\"start\":\"{}\\u0000\"}}",
        start.replace('\\', "\\\\").replace('"', "\\\"")
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn parse_continue(token: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let start = v["start"].as_str()?.trim_end_matches('\u{0}').to_string();
    Some((v["rv"].as_i64()?, start))
}

/// Sort/continue key of an object: `/namespace/name` (or `/name` when cluster-scoped).
fn list_key(obj: &Value) -> String {
    let ns = meta_str(obj, "namespace");
    if ns.is_empty() {
        format!("/{}", meta_str(obj, "name"))
    } else {
        format!("/{ns}/{}", meta_str(obj, "name"))
    }
}

impl State {
    pub fn new(history_limit: usize, node_port_range: (u16, u16), seed: u64) -> Self {
        State {
            store: Store::new(history_limit),
            tokens: HashMap::new(),
            denies: Vec::new(),
            faults: VecDeque::new(),
            requests: Vec::new(),
            crds_installed: true,
            lb_spec_unknown: Vec::new(),
            node_port_range,
            rng: seed | 1,
        }
    }

    pub fn random(&mut self) -> u64 {
        // xorshift64*: plenty for uids and port picks.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn uid(&mut self) -> String {
        let a = self.random();
        let b = self.random();
        let h = format!("{a:016x}{b:016x}");
        format!(
            "{}-{}-4{}-{}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            ["8", "9", "a", "b"][(b % 4) as usize],
            &h[17..20],
            &h[20..32]
        )
    }

    pub fn is_allowed(&self, user: &str, verb: &str, resource: &str) -> bool {
        !self
            .denies
            .iter()
            .any(|(u, v, r)| u == user && (v == "*" || v == verb) && (r == "*" || r == resource))
    }

    /// The NamespaceLifecycle admission check of a create: the namespace exists and is not being
    /// deleted.
    fn check_namespace(&self, res: &ResourceDef, ns: &str, name: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        match self.store.get(NAMESPACES.plural, "", ns) {
            None => Err(status::namespace_not_found(ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                Err(status::namespace_terminating(res, name, ns))
            }
            Some(_) => Ok(()),
        }
    }

    /// A namespace being deleted goes once the last object in it is gone (the namespace
    /// controller's last step).
    fn finish_namespace(&mut self, ns: &str) {
        let terminating = self
            .store
            .get(NAMESPACES.plural, "", ns)
            .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null());
        let empty = super::resources::ALL
            .iter()
            .filter(|r| r.namespaced)
            .all(|r| self.store.list(r.plural, ns).is_empty());
        if terminating && empty {
            self.store.remove(NAMESPACES.plural, "", ns);
        }
    }

    pub fn get(&self, res: &ResourceDef, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.store
            .get(res.plural, ns, name)
            .cloned()
            .ok_or_else(|| status::not_found(res, name))
    }

    /// POST: 201 with the stored object.
    pub fn create(
        &mut self,
        res: &ResourceDef,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(status::bad_request(&format!(
                "{} in version \"{}\" cannot be handled as a {}: expected an object",
                res.kind, res.version, res.kind
            )));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != res.kind
        {
            return Err(status::bad_request(&format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                obj["apiVersion"].as_str().unwrap_or(""),
                res.api_version()
            )));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        check_meta_types(res, &obj)?;
        if !meta_str(&obj, "resourceVersion").is_empty() {
            return Err(status::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let body_ns = meta_str(&obj, "namespace").to_string();
        if res.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let mut name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let prefix = meta_str(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(status::invalid_kind(
                    res,
                    "",
                    &[Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
            const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let suffix: String = (0..5)
                .map(|_| CHARS[(self.random() % CHARS.len() as u64) as usize] as char)
                .collect();
            name = format!("{prefix}{suffix}");
            obj["metadata"]["name"] = json!(name);
        }
        if !valid_name(&name) {
            return Err(status::invalid_kind(
                res,
                &name,
                &[Cause::new(
                    "FieldValueInvalid",
                    "metadata.name",
                    format!(
                        "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                    ),
                )],
            ));
        }
        self.check_namespace(res, ns, &name)?;
        if self.store.get(res.plural, ns, &name).is_some() {
            return Err(status::already_exists(res, &name));
        }
        obj["kind"] = json!(res.kind);
        obj["apiVersion"] = json!(res.api_version());
        let uid = self.uid();
        let meta = obj["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        for k in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(k);
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(clock::rfc3339_now()));
        if res.has_generation() {
            meta.insert("generation".into(), json!(1));
        }
        // The main resource ignores .status (Nodes allow it on create).
        if res.status_subresource
            && res.plural != "nodes"
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        match res.plural {
            "services" => {
                obj["status"] = json!({"loadBalancer": {}});
                self.prepare_service(&mut obj, None)?;
            }
            "leases" => kinds::check_lease_times(&mut obj)?,
            "customresourcedefinitions" => kinds::prepare_crd(res, &mut obj)?,
            _ => kinds::defaults_on_create(res, &mut obj),
        }
        let stored = self.store.put(res.plural, ns, &name, obj);
        if res.plural == CUSTOMRESOURCEDEFINITIONS.plural {
            // The naming and establishing controllers, condensed: they run at once, after the
            // create has been answered (the real ones take well under a second).
            let mut established = stored.clone();
            established["status"] = kinds::established(&stored);
            self.store.put(res.plural, ns, &name, established);
        }
        Ok(stored)
    }

    /// Whether a custom resource of ours is served: always while `crds_installed` is set (the
    /// CRDs count as installed without being stored), else once its CustomResourceDefinition is
    /// stored and Established, as after `kubectl apply -f manifests/paperlb.yaml`.
    pub fn crd_served(&self, res: &ResourceDef) -> bool {
        if !res.custom {
            return true;
        }
        if self.crds_installed {
            return true;
        }
        self.store
            .get(CUSTOMRESOURCEDEFINITIONS.plural, "", &crd_name(res))
            .and_then(|crd| crd["status"]["conditions"].as_array())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Established" && c["status"] == "True")
            })
    }

    /// Whether the lb.paperlb.com group is served at all (some CRD of it is).
    pub fn paperlb_group_served(&self) -> bool {
        super::resources::ALL
            .iter()
            .any(|r| r.custom && self.crd_served(r))
    }

    fn prepare_service(&mut self, svc: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let (ns, name) = (
            meta_str(svc, "namespace").to_string(),
            meta_str(svc, "name").to_string(),
        );
        let mut ports = BTreeSet::new();
        let mut ips = BTreeSet::new();
        for other in self.store.all(SERVICES.plural) {
            if meta_str(other, "namespace") == ns && meta_str(other, "name") == name {
                continue;
            }
            ports.extend(services::node_ports_of(other));
            if let Some(ip) = other["spec"]["clusterIP"].as_str() {
                ips.insert(ip.to_string());
            }
        }
        let range = self.node_port_range;
        let mut rng = || self.random();
        let mut alloc = services::Alloc {
            node_ports_in_use: &ports,
            cluster_ips_in_use: &ips,
            range,
            rng: &mut rng,
        };
        services::prepare(svc, old, &mut alloc)
    }

    /// PUT (and the second half of PATCH): 200 with the stored object, or 201 when a Service is
    /// created by PUT. `subresource` is `Some("status")` for `/status`.
    pub fn update(
        &mut self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
    ) -> Result<(u16, Value), ApiError> {
        if !obj.is_object() || !obj["metadata"].is_object() {
            if !obj.is_object() {
                return Err(status::bad_request(&format!(
                    "{} in version \"{}\" cannot be handled as a {}: expected an object",
                    res.kind, res.version, res.kind
                )));
            }
            obj["metadata"] = json!({});
        }
        check_meta_types(res, &obj)?;
        let body_name = meta_str(&obj, "name");
        if body_name.is_empty() {
            obj["metadata"]["name"] = json!(name);
        } else if body_name != name {
            return Err(status::bad_request(&format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&obj, "namespace");
        if res.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(status::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let Some(old) = self.store.get_shared(res.plural, ns, name) else {
            if res.plural == SERVICES.plural && subresource.is_none() {
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                return self.create(res, ns, obj).map(|o| (201, o));
            }
            return Err(status::not_found(res, name));
        };
        let old_rv = meta_str(&old, "resourceVersion").to_string();
        let rv = meta_str(&obj, "resourceVersion").to_string();
        if rv.is_empty() {
            if !res.unconditional_update {
                return Err(status::rv_required(res, name));
            }
        } else if rv != old_rv {
            return Err(status::conflict(res, name, status::STALE));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != res.kind
        {
            return Err(status::bad_request(&format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                obj["apiVersion"].as_str().unwrap_or(""),
                res.api_version()
            )));
        }
        obj["kind"] = json!(res.kind);
        obj["apiVersion"] = json!(res.api_version());
        if subresource == Some("status") {
            let new_status = obj.get("status").cloned();
            if res.custom {
                // The CR status strategy keeps only .status from the request.
                obj = (*old).clone();
            } else {
                obj["spec"] = old["spec"].clone();
            }
            let m = obj.as_object_mut().expect("object");
            match new_status {
                Some(s) => m.insert("status".into(), s),
                None => m.remove("status"),
            };
        } else if res.status_subresource {
            let m = obj.as_object_mut().expect("object");
            match old.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        // Metadata the server owns.
        {
            let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
            let meta = obj["metadata"].as_object_mut().expect("metadata");
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "resourceVersion",
            ] {
                match old_meta.get(k) {
                    Some(v) => meta.insert(k.into(), v.clone()),
                    None => meta.remove(k),
                };
            }
            meta.remove("managedFields");
            meta.remove("selfLink");
        }
        let deleting = !old["metadata"]["deletionTimestamp"].is_null();
        if deleting {
            let old_f = finalizers(&old);
            let added: Vec<String> = finalizers(&obj)
                .into_iter()
                .filter(|f| !old_f.contains(f))
                .collect();
            if !added.is_empty() {
                let list = added
                    .iter()
                    .map(|f| format!("\"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                let cause = Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"
                    ),
                );
                // CR validation runs the object-meta update check twice, hence the repeat.
                let causes = if res.custom {
                    vec![cause.clone(), cause]
                } else {
                    vec![cause]
                };
                return Err(status::invalid_kind(res, name, &causes));
            }
        }
        match res.plural {
            "services" => self.prepare_service(&mut obj, Some(&old))?,
            "leases" => kinds::check_lease_times(&mut obj)?,
            _ => {}
        }
        if res.has_generation() && kinds::generation_changes(res, &old, &obj) {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        if obj == *old {
            return Ok((200, Arc::unwrap_or_clone(old)));
        }
        if deleting && finalizers(&obj).is_empty() {
            self.store.remove(res.plural, ns, name);
            self.finish_namespace(ns);
            return Ok((200, obj));
        }
        Ok((200, self.store.put(res.plural, ns, name, obj)))
    }

    /// PATCH by content type; answers like `update`.
    pub fn patch(
        &mut self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        subresource: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let ct = content_type.split(';').next().unwrap_or("").trim();
        let strategic = ct == "application/strategic-merge-patch+json";
        if !(ct == "application/merge-patch+json"
            || ct == "application/json-patch+json"
            || (strategic && !res.custom))
        {
            return Err(status::unsupported_patch(!res.custom));
        }
        let patch_doc: Value = serde_json::from_slice(body)
            .map_err(|e| status::bad_request(&format!("error decoding patch: {e}")))?;
        let mut doc = self.get(res, ns, name)?;
        let current_rv = meta_str(&doc, "resourceVersion").to_string();
        if ct == "application/json-patch+json" {
            patch::json_patch(&mut doc, &patch_doc).map_err(|e| {
                status::error(
                    422,
                    "Invalid",
                    &format!("the server rejected our request due to an error in our request: {e}"),
                    None,
                )
            })?;
        } else {
            if !patch_doc.is_object() {
                return Err(status::bad_request(
                    "error decoding patch: not a JSON object",
                ));
            }
            // Strategic merge for built-ins is served as a JSON merge patch (lists replaced).
            patch::merge(&mut doc, &patch_doc);
        }
        if !doc.is_object() || !doc["metadata"].is_object() {
            return Err(status::bad_request(&format!(
                "{} in version \"{}\" cannot be handled as a {}: the patched object has no metadata object",
                res.kind, res.version, res.kind
            )));
        }
        let wanted_rv = meta_str(&doc, "resourceVersion").to_string();
        if !wanted_rv.is_empty() && wanted_rv != current_rv {
            return Err(status::conflict(res, name, status::STALE));
        }
        doc["metadata"]["resourceVersion"] = json!(current_rv);
        self.update(res, ns, name, doc, subresource).map(|(_, o)| o)
    }

    /// DELETE: the object (built-ins, or any object whose deletion waits on finalizers) or a
    /// Success Status (CRs).
    pub fn delete(
        &mut self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let mut obj = self.get(res, ns, name)?;
        let pre = &options["preconditions"];
        if let Some(uid) = pre["uid"].as_str() {
            let actual = meta_str(&obj, "uid");
            if uid != actual {
                return Err(status::conflict(
                    res,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
                    ),
                ));
            }
        }
        if let Some(rv) = pre["resourceVersion"].as_str() {
            let actual = meta_str(&obj, "resourceVersion");
            if rv != actual {
                return Err(status::conflict(
                    res,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
                    ),
                ));
            }
        }
        let mut fins = finalizers(&obj);
        match options["propagationPolicy"].as_str() {
            Some("Foreground") if !fins.iter().any(|f| f == "foregroundDeletion") => {
                fins.push("foregroundDeletion".into())
            }
            Some("Orphan") if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
            _ => {}
        }
        if res.plural == NAMESPACES.plural {
            return Ok(self.delete_namespace(name));
        }
        if res.plural == CUSTOMRESOURCEDEFINITIONS.plural {
            self.delete_custom_resources_of(name);
        }
        if !fins.is_empty() {
            if !obj["metadata"]["deletionTimestamp"].is_null() {
                return Ok(obj);
            }
            obj["metadata"]["finalizers"] = json!(fins);
            obj["metadata"]["deletionTimestamp"] = json!(clock::rfc3339_now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if let Some(g) = obj["metadata"]["generation"].as_i64() {
                obj["metadata"]["generation"] = json!(g + 1);
            }
            return Ok(self.store.put(res.plural, ns, name, obj));
        }
        let last = self
            .store
            .remove(res.plural, ns, name)
            .ok_or_else(|| status::not_found(res, name))?;
        self.finish_namespace(ns);
        if res.custom {
            return Ok(status::delete_success(res, name, meta_str(&last, "uid")));
        }
        Ok(last)
    }

    /// Namespace deletion, condensed: the namespace controller's work (deleting what the namespace
    /// holds) happens at once; the namespace goes then, or, while objects held by finalizers
    /// remain, stays `Terminating` (creates in it answer 403) until the last of them goes.
    fn delete_namespace(&mut self, name: &str) -> Value {
        for res in super::resources::ALL.iter().filter(|r| r.namespaced) {
            for obj in self.store.list(res.plural, name) {
                let n = meta_str(&obj, "name").to_string();
                let _ = self.delete(res, name, &n, &Value::Null);
            }
        }
        let held = super::resources::ALL
            .iter()
            .filter(|r| r.namespaced)
            .any(|r| !self.store.list(r.plural, name).is_empty());
        let Some(mut last) = self.store.get(NAMESPACES.plural, "", name).cloned() else {
            return Value::Null;
        };
        if last["metadata"]["deletionTimestamp"].is_null() {
            last["metadata"]["deletionTimestamp"] = json!(clock::rfc3339_now());
            last["status"]["phase"] = json!("Terminating");
        }
        if held {
            return self.store.put(NAMESPACES.plural, "", name, last);
        }
        self.store.remove(NAMESPACES.plural, "", name);
        last
    }

    /// CRD deletion, condensed: the real registry adds the `customresourcecleanup` finalizer and a
    /// controller deletes every object of the kind before the CRD goes; here that happens at once
    /// (objects with finalizers of their own are left being deleted, as they would be).
    fn delete_custom_resources_of(&mut self, crd: &str) {
        for res in super::resources::ALL
            .iter()
            .filter(|r| r.custom && crd_name(r) == crd)
        {
            for obj in self.store.list(res.plural, "") {
                let (ns, n) = (meta_str(&obj, "namespace"), meta_str(&obj, "name"));
                let _ = self.delete(res, ns, n, &Value::Null);
            }
        }
    }

    /// LIST: the list object (built-in items without kind/apiVersion).
    pub fn list(&self, res: &ResourceDef, ns: &str, opts: &ListOptions) -> Result<Value, ApiError> {
        let labels =
            LabelSelector::parse(&opts.label_selector).map_err(|e| status::bad_request(&e))?;
        let fields = FieldSelector::parse(&opts.field_selector, res.plural)
            .map_err(|e| status::bad_request(&e))?;
        let current = self.store.rv;
        let mut limit = opts.limit;
        let mut start_after = String::new();
        let list_rv: u64;
        let items: Vec<Value>;
        if !opts.continue_token.is_empty() {
            let Some((rv, start)) = parse_continue(&opts.continue_token) else {
                return Err(status::bad_request(
                    "continue key is not valid: illegal base64 data",
                ));
            };
            start_after = start;
            if rv < 0 {
                list_rv = current;
                items = self.store.list(res.plural, ns);
            } else {
                match self.store.list_at(res.plural, ns, rv as u64) {
                    Some(v) => {
                        list_rv = rv as u64;
                        items = v;
                    }
                    None => {
                        return Err(status::continue_expired(&continue_token(-1, &start_after)));
                    }
                }
            }
        } else {
            let rv = opts.resource_version.as_str();
            let exact = opts.resource_version_match == "Exact"
                || (limit > 0 && !rv.is_empty() && rv != "0");
            if rv == "0" {
                limit = 0;
            }
            match rv.parse::<u64>() {
                Ok(n) if n > current => return Err(status::rv_too_large(n, current)),
                Ok(n) if n != 0 && exact => match self.store.list_at(res.plural, ns, n) {
                    Some(v) => {
                        list_rv = n;
                        items = v;
                    }
                    None => return Err(status::list_rv_expired()),
                },
                _ => {
                    list_rv = current;
                    items = self.store.list(res.plural, ns);
                }
            }
        }
        let mut matching: Vec<Value> = items
            .into_iter()
            .filter(|o| labels.matches(o) && fields.matches(o))
            .filter(|o| start_after.is_empty() || list_key(o) > start_after)
            .collect();
        let mut next = None;
        let mut remaining = 0;
        if limit > 0 && matching.len() > limit {
            remaining = matching.len() - limit;
            matching.truncate(limit);
            next = matching
                .last()
                .map(|o| continue_token(list_rv as i64, &list_key(o)));
        }
        let mut meta = serde_json::Map::new();
        meta.insert("resourceVersion".into(), json!(list_rv.to_string()));
        if let Some(t) = next {
            meta.insert("continue".into(), json!(t));
            meta.insert("remainingItemCount".into(), json!(remaining));
        } else if res.custom {
            meta.insert("continue".into(), json!(""));
        }
        let items: Vec<Value> = if res.custom {
            matching
        } else {
            matching
                .into_iter()
                .map(|mut o| {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    o
                })
                .collect()
        };
        Ok(json!({
            "kind": res.list_kind(),
            "apiVersion": res.api_version(),
            "metadata": Value::Object(meta),
            "items": items,
        }))
    }
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The decode errors Go's typed ObjectMeta gives for wrongly typed metadata fields.
fn check_meta_types(res: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let meta = &obj["metadata"];
    let fail = |field: &str, want: &str| {
        Err(status::bad_request(&format!(
            "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field} of type {want}",
            res.kind, res.version, res.kind
        )))
    };
    for field in ["labels", "annotations"] {
        match &meta[field] {
            Value::Null => {}
            Value::Object(m) if m.values().all(Value::is_string) => {}
            _ => return fail(field, "map[string]string"),
        }
    }
    match &meta["finalizers"] {
        Value::Null => {}
        Value::Array(a) if a.iter().all(Value::is_string) => {}
        _ => return fail("finalizers", "[]string"),
    }
    for field in ["name", "namespace", "generateName", "resourceVersion"] {
        if !matches!(meta[field], Value::Null | Value::String(_)) {
            return fail(field, "string");
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}
