//! The worker's view of the cluster: one `BTreeMap` per kind, keyed by namespace/name (nodes by
//! name), so every iteration is in a stable order. Each change returns the reconcile keys it
//! affects; the worker queues them.
//! Pure: no I/O, no clock.

use super::decide::port_requests::{LB_PORTS_ANNOTATION, parse};
use super::decide::ports::{Claim, PortIndex};
use super::decide::targets::{follows_readiness_recorded, node_view, ready_endpoint_nodes};
use super::key::Key;
use crate::model::{
    CONFIG_ANNOTATION, EndpointSlice, LoadBalancer, LoadBalancerConfig, Node, ObjectMeta, Protocol,
    Service, ValidConfig,
};
use std::collections::{BTreeMap, BTreeSet};

/// Reconcile keys a change affects.
pub type Affected = BTreeSet<Key>;

#[derive(Clone, Debug, Default)]
pub struct Cache {
    /// Services and LoadBalancers are boxed: a B-tree node holds 11 values inline, and keys that
    /// arrive in order leave nodes about half full, so inline objects left ~0.8 MiB of empty slots
    /// at 1k (bench/RESULTS.md, "Memory at 1k").
    pub services: BTreeMap<Key, Box<Service>>,
    /// By node name.
    pub nodes: BTreeMap<String, Node>,
    /// Read freely; change only through the methods below, which keep `ports` in step.
    pub load_balancers: BTreeMap<Key, Box<LoadBalancer>>,
    /// The (host, port, protocol) claims of `load_balancers`.
    ports: PortIndex,
    /// Claims of plans in flight beyond `ports` (the worker's, see `batch::reservation`), until
    /// their answers are applied: by key, and the index of them.
    reserved: BTreeMap<Key, Vec<Claim>>,
    reserved_ports: PortIndex,
    pub configs: BTreeMap<Key, LoadBalancerConfig>,
    /// By slice namespace/name.
    pub endpoint_slices: BTreeMap<Key, EndpointSlice>,
    /// Service key → its slices.
    slices_by_service: BTreeMap<Key, BTreeSet<Key>>,
}

/// Same object at the same resourceVersion: nothing to do (relists repeat most objects).
fn unchanged(old: Option<&ObjectMeta>, new: &ObjectMeta) -> bool {
    old.is_some_and(|o| {
        !o.resource_version.is_empty() && o.resource_version == new.resource_version
    })
}

impl Cache {
    // ---- Services: a change affects its own key.

    pub fn apply_service(&mut self, svc: Service) -> Affected {
        let key = Key::of(&svc.metadata);
        if unchanged(self.services.get(&key).map(|s| &s.metadata), &svc.metadata) {
            return Affected::new();
        }
        self.services.insert(key.clone(), Box::new(svc));
        [key].into()
    }

    pub fn delete_service(&mut self, key: &Key) -> Affected {
        let gone = self.services.remove(key).map(|_| key.clone());
        gone.into_iter().collect()
    }

    pub fn replace_services(&mut self, items: Vec<Service>) -> Affected {
        let known = self.services.keys().cloned().collect();
        let (delete, apply) = (Cache::delete_service, Cache::apply_service);
        self.relist(items, known, |s| &s.metadata, delete, apply)
    }

    // ---- Nodes: a change to what the stable node set sees affects every LoadBalancer; a readiness
    // flip only those whose targets follow readiness (`StableNodeSet=False`, KEP-3458).

    pub fn apply_node(&mut self, node: Node) -> Affected {
        let name = node.metadata.name.clone();
        let (old, new) = (self.nodes.get(&name).map(node_view), node_view(&node));
        self.nodes.insert(name, node);
        match old {
            Some(old) => self.node_change(old.0 != new.0, old.1 != new.1),
            None => self.all_load_balancers(),
        }
    }

    pub fn delete_node(&mut self, name: &str) -> Affected {
        match self.nodes.remove(name) {
            Some(_) => self.all_load_balancers(),
            None => Affected::new(),
        }
    }

    pub fn replace_nodes(&mut self, items: Vec<Node>) -> Affected {
        let fresh: BTreeMap<String, Node> = items
            .into_iter()
            .map(|n| (n.metadata.name.clone(), n))
            .collect();
        // Only what targets depend on counts: a heartbeat-only relist must not requeue every LB.
        let pairs = || self.nodes.iter().zip(fresh.iter());
        let stable = self.nodes.len() != fresh.len()
            || pairs().any(|((ka, a), (kb, b))| ka != kb || node_view(a).0 != node_view(b).0);
        let ready = pairs().any(|((_, a), (_, b))| node_view(a).1 != node_view(b).1);
        self.nodes = fresh;
        self.node_change(stable, ready)
    }

    fn node_change(&self, stable: bool, ready: bool) -> Affected {
        if stable {
            return self.all_load_balancers();
        }
        self.load_balancers
            .iter()
            .filter(|(_, lb)| ready && follows_readiness_recorded(lb))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn all_load_balancers(&self) -> Affected {
        self.load_balancers.keys().cloned().collect()
    }

    // ---- LoadBalancers: a change affects its own key.

    /// Also takes the worker's own write responses. An object that is being deleted and has no
    /// finalizer left is gone (the apiserver echoes it once when the last finalizer is removed).
    pub fn apply_load_balancer(&mut self, mut lb: LoadBalancer) -> Affected {
        let key = Key::of(&lb.metadata);
        if lb.metadata.is_deleting() && lb.metadata.finalizers.is_empty() {
            return self.delete_load_balancer(&key);
        }
        let old = self.load_balancers.get(&key);
        if unchanged(old.map(|l| &l.metadata), &lb.metadata) {
            return Affected::new();
        }
        let old = old.map_or(Vec::new(), |o| PortIndex::claims_of(&key, o));
        let new = PortIndex::claims_of(&key, &lb);
        let mut affected = self.waiters(&numbers(&old) - &numbers(&new));
        self.ports.take(&old);
        lb.spec.share_first_port_targets();
        self.ports.add(new);
        self.load_balancers.insert(key.clone(), Box::new(lb));
        affected.insert(key);
        affected
    }

    pub fn delete_load_balancer(&mut self, key: &Key) -> Affected {
        match self.load_balancers.remove(key) {
            Some(old) => {
                let old = PortIndex::claims_of(key, &old);
                self.ports.take(&old);
                let mut affected = self.waiters(numbers(&old));
                affected.insert(key.clone());
                affected
            }
            None => Affected::new(),
        }
    }

    pub fn replace_load_balancers(&mut self, items: Vec<LoadBalancer>) -> Affected {
        let known = self.load_balancers.keys().cloned().collect();
        let (delete, apply) = (Cache::delete_load_balancer, Cache::apply_load_balancer);
        self.relist(items, known, |l| &l.metadata, delete, apply)
    }

    /// A LoadBalancer other than `except` that holds (port, protocol) on `host`, or whose write
    /// in flight claims it.
    pub fn port_holder(
        &self,
        host: &str,
        port: u16,
        protocol: Protocol,
        except: &Key,
    ) -> Option<&Key> {
        self.ports
            .holder(host, port, protocol, except)
            .or_else(|| self.reserved_ports.holder(host, port, protocol, except))
    }

    /// When LB port numbers were `released`, the Services that may be served now: those whose
    /// `lb.paperlb.com/lb-ports` asks for one, and those refused for want of a free port (a
    /// `type: LoadBalancer` Service with no LoadBalancer yet, or one whose LoadBalancer says
    /// `PortRangeExhausted`): nothing else would look at them again.
    fn waiters(&self, released: BTreeSet<u16>) -> Affected {
        if released.is_empty() {
            return Affected::new();
        }
        let asks = |s: &Service| {
            s.metadata.annotations.contains_key(LB_PORTS_ANNOTATION)
                && parse(s).0.iter().any(|e| released.contains(&e.lb_port))
        };
        let refused = |k: &Key, s: &Service| {
            let lb = self.load_balancers.get(k);
            s.spec.type_.as_deref() == Some("LoadBalancer")
                && lb.is_none_or(|l| {
                    l.status
                        .conditions
                        .iter()
                        .any(|c| c.reason == "PortRangeExhausted")
                })
        };
        self.services
            .iter()
            .filter(|(k, s)| asks(s) || refused(k, s))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Claims ports for a plan in flight, until `release_ports` of their keys.
    pub fn reserve_ports(&mut self, claims: Vec<Claim>) {
        for claim in &claims {
            self.reserved
                .entry(claim.3.clone())
                .or_default()
                .push(claim.clone());
        }
        self.reserved_ports.add(claims);
    }

    /// Drops `key`'s reservations (its plan's answers are applied: a key has one plan in flight,
    /// as it stays processing until then); the Services that may be served now if it holds fewer
    /// ports than it reserved (see `waiters`).
    pub fn release_ports(&mut self, key: &Key) -> Affected {
        let Some(claims) = self.reserved.remove(key) else {
            return Affected::new();
        };
        self.reserved_ports.take(&claims);
        let held = self.load_balancers.get(key);
        let held = held.map_or(Vec::new(), |lb| PortIndex::claims_of(key, lb));
        self.waiters(&numbers(&claims) - &numbers(&held))
    }

    /// The valid LoadBalancerConfigs in `namespace` (the controller's).
    pub fn valid_configs<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = ValidConfig> + 'a {
        (self.configs.iter())
            .filter(move |(k, _)| k.namespace == namespace)
            .filter_map(|(_, c)| c.validate().ok())
    }

    /// Every (port, protocol) LoadBalancers other than `except` hold on `host`.
    pub fn ports_taken_on(&self, host: &str, except: &Key) -> BTreeSet<(u16, Protocol)> {
        self.ports.taken_on(host, except)
    }

    // ---- Configs: a change affects the LoadBalancers that use it and the LoadBalancer Services that
    // name it or take the default.

    pub fn apply_config(&mut self, cfg: LoadBalancerConfig) -> Affected {
        let key = Key::of(&cfg.metadata);
        let old = self.configs.get(&key);
        if unchanged(old.map(|c| &c.metadata), &cfg.metadata) {
            return Affected::new();
        }
        // A status write (the controller's own `Accepted` condition) changes nothing its users see.
        let spec_changed = old.is_none_or(|c| c.spec != cfg.spec);
        self.configs.insert(key.clone(), cfg);
        if !spec_changed {
            return Affected::new();
        }
        self.users_of_config(&key.name)
    }

    pub fn delete_config(&mut self, key: &Key) -> Affected {
        match self.configs.remove(key) {
            Some(_) => self.users_of_config(&key.name),
            None => Affected::new(),
        }
    }

    pub fn replace_configs(&mut self, items: Vec<LoadBalancerConfig>) -> Affected {
        let known = self.configs.keys().cloned().collect();
        let (delete, apply) = (Cache::delete_config, Cache::apply_config);
        self.relist(items, known, |c| &c.metadata, delete, apply)
    }

    fn users_of_config(&self, name: &str) -> Affected {
        let lbs = self
            .load_balancers
            .iter()
            .filter(|(_, lb)| lb.spec.config_name.get().is_some_and(|n| n == name))
            .map(|(k, _)| k.clone());
        let services = self
            .services
            .iter()
            .filter(|(_, s)| s.spec.type_.as_deref() == Some("LoadBalancer"))
            .filter(|(_, s)| {
                s.metadata
                    .annotations
                    .get(CONFIG_ANNOTATION)
                    .is_none_or(|n| n == name)
            })
            .map(|(k, _)| k.clone());
        lbs.chain(services).collect()
    }

    // ---- EndpointSlices: a change affects its Service when that Service is
    // `externalTrafficPolicy: Local` and the set of nodes with a ready endpoint changed.

    pub fn apply_endpoint_slice(&mut self, slice: EndpointSlice) -> Affected {
        let key = Key::of(&slice.metadata);
        let old = self.endpoint_slices.get(&key);
        if unchanged(old.map(|s| &s.metadata), &slice.metadata) {
            return Affected::new();
        }
        let service = |s: &EndpointSlice| s.service_name().map(|n| Key::new(&key.namespace, n));
        let (old_service, new_service) = (old.and_then(service), service(&slice));
        // Node sets before the change, to tell whether the Service's targets can differ.
        let before: Vec<(Key, BTreeSet<String>)> = old_service
            .iter()
            .chain(new_service.iter())
            .map(|s| (s.clone(), self.local_nodes(s)))
            .collect();
        self.remove_slice(&key);
        if let Some(svc) = &new_service {
            self.slices_by_service
                .entry(svc.clone())
                .or_default()
                .insert(key.clone());
        }
        self.endpoint_slices.insert(key, slice);
        (before.into_iter())
            .filter(|(svc, nodes)| self.local_nodes(svc) != *nodes)
            .flat_map(|(svc, _)| self.if_local(&svc))
            .collect()
    }

    pub fn delete_endpoint_slice(&mut self, key: &Key) -> Affected {
        let Some(svc) = self.remove_slice(key) else {
            return Affected::new();
        };
        self.if_local(&svc)
    }

    pub fn replace_endpoint_slices(&mut self, items: Vec<EndpointSlice>) -> Affected {
        let known = self.endpoint_slices.keys().cloned().collect();
        let (delete, apply) = (Cache::delete_endpoint_slice, Cache::apply_endpoint_slice);
        self.relist(items, known, |s| &s.metadata, delete, apply)
    }

    /// Removes a slice and its index entry; returns the Service it belonged to.
    fn remove_slice(&mut self, key: &Key) -> Option<Key> {
        let old = self.endpoint_slices.remove(key)?;
        let svc = Key::new(&key.namespace, old.service_name()?);
        if let Some(set) = self.slices_by_service.get_mut(&svc) {
            set.remove(key);
            if set.is_empty() {
                self.slices_by_service.remove(&svc);
            }
        }
        Some(svc)
    }

    fn if_local(&self, svc: &Key) -> Affected {
        let local = self
            .services
            .get(svc)
            .is_some_and(|s| s.spec.external_traffic_policy.as_deref() == Some("Local"));
        local.then(|| svc.clone()).into_iter().collect()
    }

    /// A relist of one kind: deletes the `known` keys that `items` no longer hold, then applies each.
    fn relist<T>(
        &mut self,
        items: Vec<T>,
        known: Vec<Key>,
        meta: fn(&T) -> &ObjectMeta,
        delete: fn(&mut Cache, &Key) -> Affected,
        apply: fn(&mut Cache, T) -> Affected,
    ) -> Affected {
        let fresh: BTreeSet<Key> = items.iter().map(|i| Key::of(meta(i))).collect();
        let gone = known.iter().filter(|k| !fresh.contains(*k));
        let mut affected: Affected = gone.flat_map(|k| delete(self, k)).collect();
        for item in items {
            affected.extend(apply(self, item));
        }
        affected
    }

    /// Nodes with a ready endpoint of this Service.
    pub fn local_nodes(&self, svc: &Key) -> BTreeSet<String> {
        let slices = self
            .slices_by_service
            .get(svc)
            .into_iter()
            .flatten()
            .filter_map(|k| self.endpoint_slices.get(k));
        ready_endpoint_nodes(slices)
    }
}

/// The LB port numbers of `claims`.
fn numbers(claims: &[Claim]) -> BTreeSet<u16> {
    claims.iter().map(|c| c.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testutil::{Rng, node, shuffled};
    use serde_json::json;

    fn svc(name: &str, rv: &str, annotation: Option<&str>, policy: &str) -> Service {
        let mut s: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
        }))
        .unwrap();
        if let Some(a) = annotation {
            s.metadata
                .annotations
                .insert(CONFIG_ANNOTATION.into(), a.into());
        }
        s
    }

    fn lb(name: &str, rv: &str, config: &str) -> LoadBalancer {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
            "spec": {"configName": config},
        }))
        .unwrap()
    }

    fn cfg(name: &str, rv: &str) -> LoadBalancerConfig {
        serde_json::from_value(
            json!({"metadata": {"name": name, "namespace": "sys", "resourceVersion": rv}}),
        )
        .unwrap()
    }

    fn slice(name: &str, rv: &str, svc: &str, nodes: &[&str]) -> EndpointSlice {
        let eps: Vec<_> = nodes
            .iter()
            .map(|n| json!({"addresses": ["10.42.0.1"], "nodeName": n}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": eps,
        }))
        .unwrap()
    }

    fn keys(names: &[&str]) -> Affected {
        names.iter().map(|n| Key::new("ns", n)).collect()
    }

    fn filled(rng: &mut Rng) -> Cache {
        let mut c = Cache::default();
        // b's targets follow node readiness (no health check), as its status says.
        let mut b = lb("b", "1", "other");
        b.status.conditions = serde_json::from_value(
            json!([{"type": "StableNodeSet", "status": "False", "reason": "NoHealthCheck"}]),
        )
        .unwrap();
        let mut lbs = vec![lb("a", "1", "edge"), b, lb("c", "1", "edge")];
        rng.shuffle(&mut lbs);
        c.replace_load_balancers(lbs);
        let mut svcs = vec![
            svc("a", "1", None, "Cluster"),
            svc("d", "1", Some("edge"), "Local"),
            svc("e", "1", Some("other"), "Cluster"),
        ];
        rng.shuffle(&mut svcs);
        c.replace_services(svcs);
        c.replace_nodes(vec![node("n1", "True", &[("InternalIP", "10.0.0.1")])]);
        c.replace_configs(vec![cfg("edge", "1")]);
        c
    }

    #[test]
    fn affected_keys_table() {
        type Step = fn(&mut Cache) -> Affected;
        let cases: Vec<(&str, Step, Affected)> = vec![
            (
                "service change: its key",
                |c| c.apply_service(svc("x", "1", None, "Cluster")),
                keys(&["x"]),
            ),
            (
                "same rv again: nothing",
                |c| c.apply_service(svc("a", "1", None, "Cluster")),
                keys(&[]),
            ),
            (
                "service delete",
                |c| c.delete_service(&Key::new("ns", "a")),
                keys(&["a"]),
            ),
            (
                "unknown delete: nothing",
                |c| c.delete_service(&Key::new("ns", "zz")),
                keys(&[]),
            ),
            (
                "lb change: its key",
                |c| c.apply_load_balancer(lb("b", "2", "other")),
                keys(&["b"]),
            ),
            (
                "node NotReady: only the lb following readiness (KEP-3458)",
                |c| c.apply_node(node("n1", "False", &[("InternalIP", "10.0.0.1")])),
                keys(&["b"]),
            ),
            (
                "node tainted by the autoscaler: only the lb following readiness",
                |c| {
                    let mut n = node("n1", "True", &[("InternalIP", "10.0.0.1")]);
                    n.spec.taints = serde_json::from_value(
                        json!([{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]),
                    )
                    .unwrap();
                    c.apply_node(n)
                },
                keys(&["b"]),
            ),
            (
                "node cordoned: nothing",
                |c| {
                    let mut n = node("n1", "True", &[("InternalIP", "10.0.0.1")]);
                    n.spec.unschedulable = true;
                    c.apply_node(n)
                },
                keys(&[]),
            ),
            (
                "node excluded by label: every lb",
                |c| {
                    let mut n = node("n1", "True", &[("InternalIP", "10.0.0.1")]);
                    n.metadata.labels.insert(
                        "node.kubernetes.io/exclude-from-external-load-balancers".into(),
                        "true".into(),
                    );
                    c.apply_node(n)
                },
                keys(&["a", "b", "c"]),
            ),
            (
                "node loses its address: every lb",
                |c| c.apply_node(node("n1", "True", &[])),
                keys(&["a", "b", "c"]),
            ),
            (
                "node deleted: every lb",
                |c| c.delete_node("n1"),
                keys(&["a", "b", "c"]),
            ),
            (
                "node relist with a NotReady flip: only the lb following readiness",
                |c| c.replace_nodes(vec![node("n1", "False", &[("InternalIP", "10.0.0.1")])]),
                keys(&["b"]),
            ),
            (
                "new node: every lb",
                |c| c.apply_node(node("n2", "True", &[])),
                keys(&["a", "b", "c"]),
            ),
            (
                "node heartbeat: nothing",
                |c| {
                    let mut n = node("n1", "True", &[("InternalIP", "10.0.0.1")]);
                    n.metadata.resource_version = "2".into();
                    c.apply_node(n)
                },
                keys(&[]),
            ),
            (
                "node relist unchanged: nothing",
                |c| c.replace_nodes(vec![node("n1", "True", &[("InternalIP", "10.0.0.1")])]),
                keys(&[]),
            ),
            (
                "config change: its LBs and Services naming it or the default",
                |c| {
                    let mut x = cfg("edge", "2");
                    x.spec.base.host = crate::model::Lenient::valid("lb2".to_string());
                    c.apply_config(x)
                },
                keys(&["a", "c", "d"]),
            ),
            (
                "config status written, spec the same: nothing to reconcile",
                |c| {
                    let mut x = c.configs[&Key::new("sys", "edge")].clone();
                    x.metadata.resource_version = "2".into();
                    x.status.observed_generation = Some(1);
                    let out = c.apply_config(x);
                    assert_eq!(
                        c.configs[&Key::new("sys", "edge")]
                            .metadata
                            .resource_version,
                        "2"
                    );
                    out
                },
                keys(&[]),
            ),
            (
                "config delete",
                |c| c.delete_config(&Key::new("sys", "edge")),
                keys(&["a", "c", "d"]),
            ),
            (
                "slice for Local service",
                |c| c.apply_endpoint_slice(slice("d-1", "1", "d", &["n1"])),
                keys(&["d"]),
            ),
            (
                "slice for Cluster service: nothing",
                |c| c.apply_endpoint_slice(slice("a-1", "1", "a", &["n1"])),
                keys(&[]),
            ),
            (
                "relist drops deleted lb",
                |c| c.replace_load_balancers(vec![lb("a", "1", "edge"), lb("b", "1", "other")]),
                keys(&["c"]),
            ),
            (
                "relist drops deleted service and sees changed one",
                |c| {
                    c.replace_services(vec![
                        svc("a", "2", None, "Cluster"),
                        svc("d", "1", Some("edge"), "Local"),
                    ])
                },
                keys(&["a", "e"]),
            ),
            (
                "deleting lb without finalizers is gone",
                |c| {
                    let mut l = lb("a", "9", "edge");
                    l.metadata.deletion_timestamp = Some("t".into());
                    let out = c.apply_load_balancer(l);
                    assert!(!c.load_balancers.contains_key(&Key::new("ns", "a")));
                    out
                },
                keys(&["a"]),
            ),
        ];
        let mut rng = Rng::new(17);
        for _ in 0..20 {
            for (name, step, want) in shuffled(&cases, &mut rng) {
                let mut c = filled(&mut rng);
                assert_eq!(&step(&mut c), want, "{name}");
            }
        }
    }

    #[test]
    fn port_index_follows_applies_deletes_and_relists() {
        use crate::controller::decide::ports::taken_ports;
        let lb_on = |name: &str, rv: usize, host: &str, port: usize| -> LoadBalancer {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv.to_string()},
                "spec": {"host": host, "ports": [{"name": "a", "port": port, "protocol": "TCP"}]},
            }))
            .unwrap()
        };
        let mut rng = Rng::new(5);
        let mut c = Cache::default();
        for step in 0..500 {
            let name = format!("lb{}", rng.below(20));
            let host = ["h1", "h2"][rng.below(2)];
            let port = 8000 + rng.below(10);
            match rng.below(5) {
                0 => {
                    c.delete_load_balancer(&Key::new("ns", &name));
                }
                1 => {
                    let items = (0..rng.below(8))
                        .map(|i| lb_on(&format!("lb{i}"), step, host, 8000 + i))
                        .collect();
                    c.replace_load_balancers(items);
                }
                2 => {
                    let mut l = lb_on(&name, step, host, port);
                    l.metadata.deletion_timestamp = Some("t".into());
                    c.apply_load_balancer(l);
                }
                _ => {
                    c.apply_load_balancer(lb_on(&name, step, host, port));
                }
            }
            let except = Key::new("ns", &format!("lb{}", rng.below(20)));
            for h in ["h1", "h2"] {
                assert_eq!(
                    c.ports_taken_on(h, &except),
                    taken_ports(&c.load_balancers, h, &except),
                    "step {step}"
                );
            }
        }
    }

    #[test]
    fn reserved_ports_are_taken_for_other_keys_until_released() {
        let spec: crate::model::LoadBalancerSpec = serde_json::from_value(
            json!({"host": "H1", "ports": [{"name": "a", "port": 8000, "protocol": "TCP"}]}),
        )
        .unwrap();
        let (a, b) = (Key::new("ns", "a"), Key::new("ns", "b"));
        let mut c = Cache::default();
        c.reserve_ports(PortIndex::spec_claims(&a, &spec));
        assert!(c.port_holder("h1", 8000, Protocol::Tcp, &b).is_some());
        assert!(
            c.port_holder("h1", 8000, Protocol::Tcp, &a).is_none(),
            "its own claim"
        );
        assert!(c.port_holder("h1", 8000, Protocol::Udp, &b).is_none());
        assert!(c.port_holder("h2", 8000, Protocol::Tcp, &b).is_none());
        c.reserve_ports(PortIndex::spec_claims(&a, &spec));
        c.release_ports(&a);
        assert!(
            c.port_holder("h1", 8000, Protocol::Tcp, &b).is_none(),
            "released"
        );
        assert!(c.release_ports(&a).is_empty(), "released once");
    }

    /// A port the spec let go stays taken while a backend is applied there (its DELETE not yet
    /// answered, or failed: the updater still listens there); the status that drops the backend
    /// frees it and wakes the Services waiting for a port.
    #[test]
    fn an_applied_backend_holds_its_port_until_the_status_drops_it() {
        let (a, w) = (Key::new("ns", "a"), Key::new("ns", "w"));
        let mut c = Cache::default();
        c.apply_service(
            serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "w"},
                "spec": {"type": "LoadBalancer"}}))
            .unwrap(),
        );
        let lb = |rv: &str, applied: serde_json::Value| -> LoadBalancer {
            serde_json::from_value(json!({
                "metadata": {"namespace": "ns", "name": "a", "resourceVersion": rv},
                "spec": {"host": "h1", "ports": [{"name": "", "port": 8000, "protocol": "TCP"}]},
                "status": {"applied": applied}}))
            .unwrap()
        };
        let dns = json!([{"backendName": "ns_a_dns", "url": "http://u", "host": "H1",
            "port": 8001, "protocol": "UDP"}]);
        c.apply_load_balancer(lb("1", dns));
        assert_eq!(c.port_holder("h1", 8001, Protocol::Udp, &w), Some(&a));
        assert!(c.port_holder("h1", 8001, Protocol::Tcp, &w).is_none());
        let affected = c.apply_load_balancer(lb("2", json!([])));
        assert!(affected.contains(&w), "{affected:?}");
        assert!(c.port_holder("h1", 8001, Protocol::Udp, &w).is_none());
    }

    /// A reservation that ends with its port not held (the write failed) wakes a Service waiting
    /// for a free port; one whose port the LoadBalancer now holds does not.
    #[test]
    fn a_released_port_wakes_the_services_waiting_for_one() {
        let (a, w) = (Key::new("ns", "a"), Key::new("ns", "w"));
        let spec = json!({"host": "h1", "ports": [{"name": "a", "port": 8000, "protocol": "TCP"}]});
        let mut c = Cache::default();
        c.apply_service(
            serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "w"},
                "spec": {"type": "LoadBalancer"}}))
            .unwrap(),
        );
        let claims = PortIndex::spec_claims(&a, &serde_json::from_value(spec.clone()).unwrap());
        c.reserve_ports(claims.clone());
        assert_eq!(c.release_ports(&a), Affected::from([w]), "not held");
        c.apply_load_balancer(
            serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "a"},
                "spec": spec}))
            .unwrap(),
        );
        c.reserve_ports(claims);
        assert!(c.release_ports(&a).is_empty(), "held by its LoadBalancer");
    }

    #[test]
    fn slice_index_follows_updates_and_deletes() {
        let mut c = filled(&mut Rng::new(1));
        let d = Key::new("ns", "d");
        c.apply_endpoint_slice(slice("d-1", "1", "d", &["n1"]));
        c.apply_endpoint_slice(slice("d-2", "1", "d", &["n2"]));
        assert_eq!(
            c.local_nodes(&d),
            ["n1", "n2"].iter().map(|s| s.to_string()).collect()
        );
        assert_eq!(
            c.apply_endpoint_slice(slice("d-2", "2", "d", &["n1"])),
            keys(&["d"])
        );
        assert_eq!(
            c.apply_endpoint_slice(slice("d-2", "3", "d", &["n1"])),
            keys(&[]),
            "same node set"
        );
        assert_eq!(
            c.delete_endpoint_slice(&Key::new("ns", "d-1")),
            keys(&["d"])
        );
        c.replace_endpoint_slices(vec![]);
        assert!(c.local_nodes(&d).is_empty());
    }

    #[test]
    fn a_released_lb_port_requeues_the_services_asking_for_it() {
        let holder = |rv: &str, port: u16| -> LoadBalancer {
            serde_json::from_value(json!({
                "metadata": {"name": "front", "namespace": "ns", "resourceVersion": rv},
                "spec": {"host": "h", "ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
            }))
            .unwrap()
        };
        let mut c = Cache::default();
        for (name, ask) in [
            ("waiter", Some("http=8005")),
            ("other", Some("http=8006")),
            ("plain", None),
        ] {
            let mut s = svc(name, "1", None, "Cluster");
            // Served (a LoadBalancer of their own): only a request brings them back.
            let lb = json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"},
                "spec": {"host": "h", "ports": [{"name": "http", "port": 8100, "protocol": "TCP"}]}});
            c.apply_load_balancer(serde_json::from_value(lb).unwrap());
            s.spec.ports = serde_json::from_value(json!([{"name": "http", "port": 80}])).unwrap();
            if let Some(a) = ask {
                s.metadata
                    .annotations
                    .insert(LB_PORTS_ANNOTATION.into(), a.into());
            }
            c.apply_service(s);
        }
        assert_eq!(c.apply_load_balancer(holder("1", 8005)), keys(&["front"]));
        assert_eq!(
            c.apply_load_balancer(holder("2", 8005)),
            keys(&["front"]),
            "nothing released"
        );
        assert_eq!(
            c.apply_load_balancer(holder("3", 8009)),
            keys(&["front", "waiter"]),
            "8005 released"
        );
        assert_eq!(
            c.delete_load_balancer(&Key::new("ns", "front")),
            keys(&["front"]),
            "8009: nobody asks"
        );
        c.apply_load_balancer(holder("4", 8006));
        assert_eq!(
            c.delete_load_balancer(&Key::new("ns", "front")),
            keys(&["front", "other"])
        );

        // Refused for want of a free port: no LoadBalancer yet, or one that says so.
        c.apply_service(svc("new", "1", None, "Cluster"));
        let full = json!({"metadata": {"name": "plain", "namespace": "ns", "resourceVersion": "2"},
            "spec": {"host": "h", "ports": [{"name": "http", "port": 8100, "protocol": "TCP"}]},
            "status": {"conditions": [{"type": "Reconciled", "status": "False",
                "reason": "PortRangeExhausted"}]}});
        c.apply_load_balancer(serde_json::from_value(full).unwrap());
        c.apply_load_balancer(holder("5", 8007));
        assert_eq!(
            c.delete_load_balancer(&Key::new("ns", "front")),
            keys(&["front", "new", "plain"])
        );
    }
}
