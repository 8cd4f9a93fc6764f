//! Drift repair, decided: what one updater should hold (from the cache), compared with what its
//! `GET /api/v1/lb` says it holds, gives the calls that make the two agree.
//!
//! - Every backend an applied LoadBalancer wants there that is missing, different, or flagged
//!   `modified` (its file edited by hand) is POSTed again.
//! - A backend is DELETEd only when its `owner` is paperlb's, no LoadBalancer in the cache names it
//!   (its spec or its `status.applied`, being deleted or not), and its LB port lies inside the port
//!   range of a config pointing at that updater (another cluster sharing the host with another
//!   range keeps its backends). Backends without our owner (written by the Go controller or by
//!   hand) and files the updater could not read are never touched.
//! - Deletes come first: a stray may hold the port a missing backend needs.
//!
//! Pure: no I/O, no clock. Must not: decide from an answer that could not be read (the worker skips
//! the resync then).

use std::collections::{BTreeMap, BTreeSet};

use super::context::Context;
use super::plan::{OWNER, Repair, updater_request};
use super::reconcile::applied_timeouts;
use super::status::{backend_name, known_backends};
use crate::controller::cache::Cache;
use crate::controller::key::Key;
use crate::model::LbSpec;
use crate::model::url::updater_endpoint;
use crate::updater::api::{LbRequest, ListedBackend};

/// What one updater endpoint should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Backends of applied LoadBalancers, by name: the LoadBalancer and the index of the port. The
    /// request itself is built when it is compared ([`request`]): built up front, a host's 1,000
    /// backends with 100 upstreams each were ~9 MiB held through every check.
    pub requests: BTreeMap<String, (Key, usize)>,
    /// Every backend name some LoadBalancer may have there (never deleted as a stray).
    pub owned: BTreeSet<String>,
    /// Port ranges of the configs pointing at this endpoint: strays are deleted only inside them.
    pub ranges: Vec<(u16, u16)>,
}

/// Every updater endpoint the cache names (valid configs in the controller's namespace, and
/// LoadBalancer specs), each with one raw URL that resolves to it.
pub fn endpoints(cache: &Cache, ctx: &Context) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let configs = (cache.valid_configs(&ctx.namespace)).flat_map(|c| c.hosts);
    let specs = (cache.load_balancers.values()).flat_map(|lb| lb.spec.written_urls().cloned());
    for raw in configs.map(|h| h.url).chain(specs) {
        if let Ok(e) = updater_endpoint(&raw) {
            out.entry(e).or_insert(raw);
        }
    }
    out
}

/// What names an updater now: the endpoints `endpoints` gave plus those a LoadBalancer's status
/// still records backends on, and the configs whose credentials a call may use (the cached
/// configs, those LoadBalancers name, and "" for none).
pub struct InUse {
    pub endpoints: BTreeSet<String>,
    configs: BTreeSet<String>,
}

impl InUse {
    /// Whether config `config`'s client for the raw URL `url` may still be used.
    pub fn client(&self, config: &str, url: &str) -> bool {
        self.configs.contains(config)
            && updater_endpoint(url).is_ok_and(|e| self.endpoints.contains(&e))
    }
}

/// The updaters and configs in use, given `endpoints(cache, ..)`.
pub fn in_use(cache: &Cache, endpoints: &BTreeMap<String, String>) -> InUse {
    let lbs = || cache.load_balancers.values();
    let applied = lbs().flat_map(|lb| lb.status.applied.iter());
    let mut configs: BTreeSet<String> = cache.configs.keys().map(|k| k.name.clone()).collect();
    configs.extend(lbs().map(|lb| lb.spec.config_name.get().cloned().unwrap_or_default()));
    configs.insert(String::new());
    InUse {
        endpoints: (endpoints.keys().cloned())
            .chain(applied.filter_map(|b| updater_endpoint(&b.url).ok()))
            .collect(),
        configs,
    }
}

/// What `endpoint` should hold, from the cache.
pub fn desired_for(cache: &Cache, ctx: &Context, endpoint: &str) -> Desired {
    let on_endpoint = |raw: &str| updater_endpoint(raw).is_ok_and(|e| e == endpoint);
    let mut d = Desired::default();
    for (key, lb) in &cache.load_balancers {
        for b in known_backends(key, lb) {
            if on_endpoint(&b.url) {
                d.owned.insert(b.backend_name);
            }
        }
        if lb.metadata.is_deleting() {
            continue;
        }
        let Ok(spec) = LbSpec::from_resource(&lb.spec) else {
            continue;
        };
        // What a host holds once the reconcile in progress is done is for it to decide.
        let holds = spec
            .hosts
            .iter()
            .any(|h| on_endpoint(&h.url) && super::hosts::applied_on(lb, h));
        if !holds {
            continue;
        }
        // A port without targets is held nowhere (`no_targets`).
        let with_targets = spec.ports.iter().enumerate();
        for (i, p) in with_targets.filter(|(_, p)| !p.targets.is_empty()) {
            d.requests
                .insert(backend_name(key, i, &p.name), (key.clone(), i));
        }
    }
    for v in cache.valid_configs(&ctx.namespace) {
        if v.hosts.iter().any(|h| on_endpoint(&h.url)) {
            d.ranges.push((v.low, v.high));
        }
    }
    d
}

/// The request port `i` of LoadBalancer `key` wants on its updater, as POSTed, in normal form (None
/// when the cache no longer has it).
pub fn request(cache: &Cache, ctx: &Context, key: &Key, i: usize) -> Option<LbRequest> {
    let lb = cache.load_balancers.get(key)?;
    let spec = LbSpec::from_resource(&lb.spec).ok()?;
    let p = spec.ports.get(i)?;
    let timeouts = applied_timeouts(cache, ctx, lb, &spec);
    Some(normal(updater_request(key, i, p, timeouts, &spec.traffic)))
}

/// The calls that make an updater hold `desired`, one listed backend at a time: a drift check
/// reads the GET as it arrives and keeps no more of it than names and the requests to send
/// (deletes first, then creates and updates, each in name order).
pub struct Compare<'a> {
    cache: &'a Cache,
    ctx: &'a Context,
    desired: &'a Desired,
    seen: BTreeSet<String>,
    deletes: BTreeSet<String>,
    updates: BTreeMap<String, LbRequest>,
}

impl<'a> Compare<'a> {
    pub fn new(cache: &'a Cache, ctx: &'a Context, desired: &'a Desired) -> Compare<'a> {
        Compare {
            cache,
            ctx,
            desired,
            seen: BTreeSet::new(),
            deletes: BTreeSet::new(),
            updates: BTreeMap::new(),
        }
    }

    /// One backend of the answer (a name listed twice: the last one counts).
    pub fn observe(&mut self, b: &ListedBackend) {
        let have = &b.request;
        let name = have.backend_name.as_str();
        self.seen.insert(name.to_string());
        self.deletes.remove(name);
        self.updates.remove(name);
        match self.desired.requests.get(name) {
            Some((key, i)) => {
                let want = request(self.cache, self.ctx, key, *i);
                if let Some(want) = want.filter(|w| b.modified || normal(have.clone()) != *w) {
                    self.updates.insert(name.to_string(), want);
                }
            }
            None => {
                let ours = have.owner.as_deref() == Some(OWNER);
                let in_range = self
                    .desired
                    .ranges
                    .iter()
                    .any(|(low, high)| (*low..=*high).contains(&have.lb_port));
                if ours && in_range && !self.desired.owned.contains(name) {
                    self.deletes.insert(name.to_string());
                }
            }
        }
    }

    /// The calls, once every backend was observed.
    pub fn repairs(mut self) -> Vec<Repair> {
        let mut out: Vec<Repair> = self.deletes.into_iter().map(Repair::Delete).collect();
        for (name, (key, i)) in &self.desired.requests {
            if !self.seen.contains(name) {
                out.extend(request(self.cache, self.ctx, key, *i).map(Repair::Create));
            } else if let Some(want) = self.updates.remove(name) {
                out.push(Repair::Update(want));
            }
        }
        out
    }
}

/// A request in the form two equal meanings compare equal: protocol in upper case, upstreams
/// sorted and deduplicated.
fn normal(mut r: LbRequest) -> LbRequest {
    r.lb_protocol = r.lb_protocol.to_ascii_uppercase();
    r.upstream_servers
        .sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    r.upstream_servers.dedup();
    r
}

/// Keys of the LoadBalancers with a backend on `endpoint` (by spec URL).
pub fn users_of(cache: &Cache, endpoint: &str) -> Vec<Key> {
    cache
        .load_balancers
        .iter()
        .filter(|(_, lb)| {
            (lb.spec.written_urls()).any(|u| updater_endpoint(u).is_ok_and(|e| e == endpoint))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calls that make `observed` hold `desired` (deletes first, then creates and updates, each in
    /// name order).
    fn repairs(
        cache: &Cache,
        ctx: &Context,
        observed: &ListResponse,
        desired: &Desired,
    ) -> Vec<Repair> {
        let mut c = Compare::new(cache, ctx, desired);
        for b in &observed.backends {
            c.observe(b);
        }
        c.repairs()
    }
    use crate::model::{LoadBalancer, LoadBalancerConfig};
    use crate::updater::api::{ListResponse, ListedBackend, Upstream};
    use serde_json::json;

    const URL: &str = "http://127.0.0.1:3000";
    const ENDPOINT: &str = "http://127.0.0.1:3000/api/v1/lb";

    #[test]
    fn a_deleted_config_or_a_changed_url_is_no_longer_in_use() {
        let ctx = ctx();
        let mut c = cache();
        let other = "http://127.0.0.9:3000";
        c.apply_load_balancer(lb("web", other, 8100, true, false));
        let used = in_use(&c, &endpoints(&c, &ctx));
        assert!(used.client("edge", URL));
        assert!(used.client("edge", other), "a LoadBalancer still names it");
        assert!(!used.client("gone", URL), "no such config");
        assert!(
            !used.client("edge", "http://127.0.0.8:3000"),
            "no one names it"
        );
        c.delete_load_balancer(&Key::new("default", "web"));
        c.delete_config(&Key::new("paperlb-system", "edge"));
        let used = in_use(&c, &endpoints(&c, &ctx));
        assert!(!used.client("edge", URL) && !used.client("edge", other));
        assert!(used.endpoints.is_empty());
    }

    fn cache() -> Cache {
        let mut c = Cache::default();
        let cfg: LoadBalancerConfig = serde_json::from_value(json!({
            "metadata": {"name": "edge", "namespace": "paperlb-system"},
            "spec": {"httpUpdaterURL": URL, "host": "127.0.0.1",
                     "portRange": {"low": 8100, "high": 8199}}}))
        .unwrap();
        c.apply_config(cfg);
        c
    }

    /// An applied (READY for its generation) LoadBalancer `name` on `url` serving `port`.
    fn lb(name: &str, url: &str, port: u16, applied: bool, deleting: bool) -> LoadBalancer {
        let generation = 3;
        let mut v = json!({
            "metadata": {"name": name, "namespace": "default", "generation": generation,
                "resourceVersion": "1", "uid": format!("uid-{name}")},
            "spec": {"configName": "edge", "httpUpdater": {"url": url}, "host": "127.0.0.1",
                "port": port, "protocol": "TCP",
                "targets": [{"host": "127.0.0.3", "port": 30080}, {"host": "127.0.0.2", "port": 30080}],
                "ports": [{"name": "", "port": port, "protocol": "TCP", "nodePort": 30080,
                    "targets": [{"host": "127.0.0.3", "port": 30080}, {"host": "127.0.0.2", "port": 30080}]}]},
            "status": {"phase": if applied { "READY" } else { "ERROR" },
                       "observedGeneration": if applied { generation } else { 2 }}
        });
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            v["metadata"]["finalizers"] = json!(["lb.paperlb.com/lb-finalizer"]);
        }
        serde_json::from_value(v).unwrap()
    }

    fn listed(name: &str, port: u16, owner: Option<&str>, hosts: &[&str]) -> ListedBackend {
        ListedBackend {
            request: LbRequest {
                backend_name: name.into(),
                lb_port: port,
                lb_protocol: "tcp".into(),
                upstream_servers: hosts
                    .iter()
                    .map(|h| Upstream {
                        host: h.to_string(),
                        port: 30080,
                        health: Default::default(),
                    })
                    .collect(),
                owner: owner.map(str::to_string),
                ..LbRequest::default()
            },
            modified: false,
        }
    }

    fn ctx() -> Context {
        Context::new("paperlb-system", "t")
    }

    #[test]
    fn converged_host_needs_nothing() {
        let mut c = cache();
        c.apply_load_balancer(lb("web", URL, 8100, true, false));
        let d = desired_for(&c, &ctx(), ENDPOINT);
        assert_eq!(d.requests.len(), 1);
        let got = ListResponse {
            backends: vec![listed(
                "default_web",
                8100,
                Some(OWNER),
                &["127.0.0.3", "127.0.0.2"],
            )],
            unreadable: vec![],
            version: None,
        };
        assert_eq!(repairs(&c, &ctx(), &got, &d), vec![]);
        // The Go form of the same updater's URL names the same endpoint.
        let mut c2 = cache();
        c2.apply_load_balancer(lb("web", &format!("{URL}/api/v1/lb"), 8100, true, false));
        let d2 = desired_for(&c2, &ctx(), ENDPOINT);
        assert_eq!(repairs(&c2, &ctx(), &got, &d2), vec![]);
    }

    #[test]
    fn missing_different_and_modified_backends_are_posted_again() {
        let mut c = cache();
        for (name, port) in [("a", 8100), ("b", 8101), ("c", 8102), ("d", 8103)] {
            c.apply_load_balancer(lb(name, URL, port, true, false));
        }
        let d = desired_for(&c, &ctx(), ENDPOINT);
        let both = ["127.0.0.2", "127.0.0.3"];
        let mut modified = listed("default_c", 8102, Some(OWNER), &both);
        modified.modified = true;
        let got = ListResponse {
            backends: vec![
                // a: missing; b: one target short; c: edited by hand; d: fine, but unowned
                listed("default_b", 8101, Some(OWNER), &["127.0.0.2"]),
                modified,
                listed("default_d", 8103, None, &both),
            ],
            unreadable: vec![],
            version: None,
        };
        let r = repairs(&c, &ctx(), &got, &d);
        let names: Vec<(&str, &str)> = r.iter().map(|r| (r.action(), r.backend_name())).collect();
        assert_eq!(
            names,
            [
                ("create", "default_a"),
                ("update", "default_b"),
                ("update", "default_c"),
                ("update", "default_d"),
            ]
        );
        match &r[0] {
            Repair::Create(req) => {
                assert_eq!(req.owner.as_deref(), Some(OWNER));
                assert_eq!(req.lb_port, 8100);
                assert_eq!(req.upstream_servers.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_our_strays_inside_our_ranges_are_deleted() {
        let mut c = cache();
        c.apply_load_balancer(lb("web", URL, 8100, true, false));
        // Not applied yet, and being deleted: owned, so never deleted, and not re-posted either.
        c.apply_load_balancer(lb("pending", URL, 8101, false, false));
        c.apply_load_balancer(lb("going", URL, 8102, true, true));
        let d = desired_for(&c, &ctx(), ENDPOINT);
        assert_eq!(d.requests.keys().collect::<Vec<_>>(), ["default_web"]);
        let both = ["127.0.0.2", "127.0.0.3"];
        let got = ListResponse {
            backends: vec![
                listed("default_web", 8100, Some(OWNER), &both),
                listed("default_pending", 8101, Some(OWNER), &["127.0.0.9"]),
                listed("default_going", 8102, Some(OWNER), &both),
                listed("default_stray", 8150, Some(OWNER), &both),
                listed("go_written", 8151, None, &both),
                listed("other_tool", 8152, Some("someone-else"), &both),
                listed("other_cluster", 9000, Some(OWNER), &both),
            ],
            unreadable: vec![],
            version: None,
        };
        assert_eq!(
            repairs(&c, &ctx(), &got, &d),
            vec![Repair::Delete("default_stray".into())]
        );
    }

    #[test]
    fn other_endpoints_and_unreadable_files_are_left_alone() {
        let mut c = cache();
        c.apply_load_balancer(lb("elsewhere", "http://127.0.0.1:3001", 8100, true, false));
        let d = desired_for(&c, &ctx(), ENDPOINT);
        assert!(d.requests.is_empty() && d.owned.is_empty());
        let got = ListResponse {
            backends: vec![],
            unreadable: vec![crate::updater::api::Unreadable {
                file: "hand.conf".into(),
                err: "no header".into(),
            }],
            version: None,
        };
        assert_eq!(repairs(&c, &ctx(), &got, &d), vec![]);
        let e = endpoints(&c, &ctx());
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[ENDPOINT], URL);
        assert_eq!(users_of(&c, "http://127.0.0.1:3001/api/v1/lb").len(), 1);
    }

    #[test]
    fn decisions_do_not_depend_on_listing_order() {
        let mut c = cache();
        for i in 0..20u16 {
            c.apply_load_balancer(lb(&format!("s{i:02}"), URL, 8100 + i, true, false));
        }
        let d = desired_for(&c, &ctx(), ENDPOINT);
        let mut backends: Vec<ListedBackend> = (0..20u16)
            .filter(|i| i % 3 != 0)
            .map(|i| {
                listed(
                    &format!("default_s{i:02}"),
                    8100 + i,
                    Some(OWNER),
                    &["127.0.0.2"],
                )
            })
            .chain((0..5u16).map(|i| listed(&format!("x{i}"), 8180 + i, Some(OWNER), &[])))
            .collect();
        let want = repairs(
            &c,
            &ctx(),
            &ListResponse {
                backends: backends.clone(),
                unreadable: vec![],
                version: None,
            },
            &d,
        );
        assert_eq!(want.iter().filter(|r| r.action() == "delete").count(), 5);
        assert_eq!(want.iter().filter(|r| r.action() == "create").count(), 7);
        assert_eq!(want.iter().filter(|r| r.action() == "update").count(), 13);
        for seed in 1..20u64 {
            // A cheap deterministic shuffle.
            let n = backends.len();
            for i in 0..n {
                let j = ((seed * 2654435761 + i as u64 * 40503) % n as u64) as usize;
                backends.swap(i, j);
            }
            let got = repairs(
                &c,
                &ctx(),
                &ListResponse {
                    backends: backends.clone(),
                    unreadable: vec![],
                    version: None,
                },
                &d,
            );
            assert_eq!(got, want, "seed {seed}");
        }
    }
}
