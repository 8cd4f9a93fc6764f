//! Per-port health in a LoadBalancer's status (`status.ports[]`: ready upstreams / total, and
//! `status.healthy`, the `HEALTHY` column), learned from the drift check's `GET /api/v1/lb` (each
//! upstream's `healthy`), which runs anyway: no extra poll.
//!
//! - [`observed`]: the figures a GET answer gives; [`patch`] writes them only when they differ from
//!   the status (a steady state writes nothing).
//! - [`carried`]: what an apply writes in the status patch it makes anyway. The updater starts new
//!   upstreams healthy and keeps the tallies of those that stay, so the last report's unhealthy
//!   upstreams that are still targets stay unhealthy and every other target counts as ready: the
//!   next GET normally agrees, and no extra write follows a change.
//!
//! Pure: no I/O, no clock. Must not: decide what to push (that is `reconcile`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::plan::Action;
use super::status::backend_name;
use super::traffic::port_check;
use crate::controller::key::Key;
use crate::model::url::host_port;
use crate::model::{LbPort, LbSpec, LoadBalancer, PortHealth};
use crate::updater::api::ListedBackend;

/// The ports of `spec` (with their index) pushed with a health check (a UDP port asked for a tcp
/// check of its own port is not).
fn checked(spec: &LbSpec) -> impl Iterator<Item = (usize, &LbPort)> {
    (spec.ports.iter().enumerate()).filter(|(_, p)| port_check(&spec.traffic, p.protocol).is_some())
}

fn entry(p: &LbPort, total: usize, unhealthy: Vec<String>) -> PortHealth {
    PortHealth {
        name: p.name.clone(),
        port: i64::from(p.port),
        protocol: p.protocol.as_str().to_string(),
        ready: (total - unhealthy.len().min(total)) as i64,
        total: total as i64,
        unhealthy,
    }
}

/// What a GET answer says of one backend's health, kept while the answer is read (the answer itself
/// is not kept, see `UpdaterClient::list_each`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub lb_port: u16,
    /// Upstreams listed.
    pub total: usize,
    /// `host:port` of those failing their check, sorted; None when no upstream reports health.
    pub unhealthy: Option<Vec<String>>,
}

/// Reports by backend name.
pub type Reports = BTreeMap<String, Reported>;

/// Adds one listed backend's report (a name listed twice: the first one counts).
pub fn report(reports: &mut Reports, b: &ListedBackend) {
    let ups = &b.request.upstream_servers;
    let unhealthy = ups.iter().any(|u| u.health.healthy.is_some()).then(|| {
        let mut v: Vec<String> = ups
            .iter()
            .filter(|u| u.health.healthy == Some(false))
            .map(|u| host_port(&u.host, u.port))
            .collect();
        v.sort();
        v.dedup();
        v
    });
    reports
        .entry(b.request.backend_name.clone())
        .or_insert(Reported {
            lb_port: b.request.lb_port,
            total: ups.len(),
            unhealthy,
        });
}

/// The figures of `spec`'s ports after an updater's answer: a port whose backend is listed with
/// health reports gets its upstreams passing their check; a port without a check has none; a port
/// whose backend is missing or reported without health (an updater that does not report it) keeps
/// what `previous` had (nothing is known that would change it).
pub fn observed(
    key: &Key,
    spec: &LbSpec,
    previous: &[PortHealth],
    reports: &Reports,
) -> Vec<PortHealth> {
    let mut out = Vec::new();
    for (i, p) in checked(spec) {
        let reported = reports.get(&backend_name(key, i, &p.name));
        let reported = reported.filter(|r| r.lb_port == p.port);
        match reported.and_then(|r| Some((r.total, r.unhealthy.clone()?))) {
            Some((total, unhealthy)) => out.push(entry(p, total, unhealthy)),
            None => {
                let (port, protocol) = (i64::from(p.port), p.protocol.as_str());
                let kept = (previous.iter())
                    .find(|h| h.name == p.name && h.port == port && h.protocol == protocol);
                out.extend(kept.cloned());
            }
        }
    }
    out
}

/// What an apply of `spec` leaves true, given the last report `previous`: targets the report
/// named unhealthy stay so, the others (kept or new) count as ready. Ports without a check are
/// left out. (The Go updater ignores `healthCheck` and uses every upstream: all count as ready.)
pub fn carried(previous: &[PortHealth], spec: &LbSpec) -> Vec<PortHealth> {
    let mut out = Vec::new();
    for (_, p) in checked(spec) {
        let targets: BTreeSet<String> =
            (p.targets.iter().map(|t| host_port(&t.host, t.port))).collect();
        let before = previous
            .iter()
            .find(|h| h.name == p.name && h.protocol == p.protocol.as_str());
        let unhealthy = (before.into_iter().flat_map(|h| &h.unhealthy))
            .filter(|u| targets.contains(*u))
            .cloned()
            .collect();
        out.push(entry(p, targets.len(), unhealthy));
    }
    out
}

/// `ready/total` over every port, or None without figures.
pub fn summary(ports: &[PortHealth]) -> Option<String> {
    if ports.is_empty() {
        return None;
    }
    let ready: i64 = ports.iter().map(|p| p.ready).sum();
    let total: i64 = ports.iter().map(|p| p.total).sum();
    Some(format!("{ready}/{total}"))
}

/// The status patch that records an answer's figures (`reports`) for this LoadBalancer, or None
/// when its status already says so (or its spec cannot be read).
pub fn patch(key: &Key, lb: &LoadBalancer, reports: &Reports) -> Option<Action> {
    let spec = LbSpec::from_resource(&lb.spec).ok()?;
    let ports = observed(key, &spec, &lb.status.ports, reports);
    let healthy = summary(&ports);
    if ports == lb.status.ports && healthy == lb.status.healthy {
        return None;
    }
    Some(Action::PatchLoadBalancerStatus {
        key: key.clone(),
        patch: json!({"status": {"ports": ports, "healthy": healthy}}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updater::api::{LbRequest, ListResponse, ListedBackend, Upstream, UpstreamHealth};

    /// The reports of a whole answer.
    fn reports(list: &ListResponse) -> Reports {
        let mut out = Reports::new();
        for b in &list.backends {
            report(&mut out, b);
        }
        out
    }

    fn lb(check: bool, hosts: &[&str]) -> LoadBalancer {
        let targets: Vec<_> = hosts
            .iter()
            .map(|h| json!({"host": h, "port": 30080}))
            .collect();
        let mut spec = json!({"configName": "edge", "httpUpdater": {"url": "http://127.0.0.1:3000"},
            "host": "127.0.0.1", "ports": [
                {"name": "http", "port": 8100, "protocol": "TCP", "nodePort": 30080, "targets": targets},
                {"name": "dns", "port": 8100, "protocol": "UDP", "nodePort": 30080, "targets": targets}]});
        if check {
            spec["healthCheck"] = json!({"type": "http", "port": 10256, "path": "/healthz"});
        }
        serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": spec}))
        .unwrap()
    }

    fn listed(name: &str, port: u16, health: &[(&str, Option<bool>)]) -> ListedBackend {
        ListedBackend {
            request: LbRequest {
                backend_name: name.into(),
                lb_port: port,
                upstream_servers: health
                    .iter()
                    .map(|(h, ok)| Upstream {
                        host: h.to_string(),
                        port: 30080,
                        health: UpstreamHealth {
                            healthy: *ok,
                            last_check: None,
                        },
                    })
                    .collect(),
                ..Default::default()
            },
            modified: false,
        }
    }

    fn key() -> Key {
        Key::new("default", "web")
    }

    #[test]
    fn figures_come_from_the_answer_and_are_written_only_when_they_change() {
        let mut l = lb(true, &["127.0.0.2", "fd00::3", "127.0.0.4"]);
        let list = ListResponse {
            backends: vec![
                listed(
                    "default_web",
                    8100,
                    &[
                        ("127.0.0.2", Some(true)),
                        ("fd00::3", Some(false)),
                        ("127.0.0.4", Some(true)),
                    ],
                ),
                listed("default_web_dns", 8100, &[("127.0.0.2", Some(true))]),
                listed("default_other", 8101, &[("127.0.0.9", Some(false))]),
            ],
            ..Default::default()
        };
        let Some(Action::PatchLoadBalancerStatus { patch, .. }) =
            patch(&key(), &l, &reports(&list))
        else {
            panic!("a patch");
        };
        assert_eq!(patch["status"]["healthy"], "3/4");
        assert_eq!(patch["status"]["ports"][0]["ready"], 2);
        assert_eq!(
            patch["status"]["ports"][0]["unhealthy"],
            json!(["[fd00::3]:30080"])
        );
        assert_eq!(patch["status"]["ports"][1]["total"], 1);
        // Recorded: the same answer writes nothing.
        let status: crate::model::LoadBalancerStatus =
            serde_json::from_value(patch["status"].clone()).unwrap();
        l.status.ports = status.ports;
        l.status.healthy = status.healthy;
        assert_eq!(super::patch(&key(), &l, &reports(&list)), None);
        // An updater that does not report health: nothing known changes, nothing is written.
        let quiet = ListResponse {
            backends: vec![listed("default_web", 8100, &[("127.0.0.2", None)])],
            ..Default::default()
        };
        assert_eq!(super::patch(&key(), &l, &reports(&quiet)), None);
        // Nor when a backend is missing from the answer (drift repair puts it back).
        assert_eq!(super::patch(&key(), &l, &Reports::new()), None);
        let off = lb(false, &["127.0.0.2"]);
        assert_eq!(super::patch(&key(), &off, &reports(&list)), None);
    }

    #[test]
    fn an_apply_carries_the_last_report_forward() {
        let before = vec![PortHealth {
            name: "http".into(),
            port: 8100,
            protocol: "TCP".into(),
            ready: 1,
            total: 3,
            unhealthy: vec!["[fd00::3]:30080".into(), "127.0.0.4:30080".into()],
        }];
        // 127.0.0.4 left, 127.0.0.5 came (starts healthy), fd00::3 stays unhealthy (IPv6 in brackets).
        let spec =
            LbSpec::from_resource(&lb(true, &["127.0.0.2", "fd00::3", "127.0.0.5"]).spec).unwrap();
        let got = carried(&before, &spec);
        assert_eq!(
            (got[0].ready, got[0].total, got[0].unhealthy.clone()),
            (2, 3, vec!["[fd00::3]:30080".to_string()])
        );
        assert_eq!(
            (got[1].ready, got[1].total),
            (3, 3),
            "a port new to the report"
        );
        assert_eq!(summary(&got).as_deref(), Some("5/6"));
        let off = LbSpec::from_resource(&lb(false, &["127.0.0.2"]).spec).unwrap();
        assert!(carried(&before, &off).is_empty(), "no check: no figures");
        assert_eq!(summary(&[]), None);
    }
}
