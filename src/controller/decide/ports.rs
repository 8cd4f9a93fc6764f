//! Port allocation on an LB host: keep what the LoadBalancer CR already records when still valid,
//! else the lowest free port of the config's range; unique per (host, port, protocol). The
//! [`PortIndex`] the cache keeps says which pairs are taken without scanning every LoadBalancer.
//! Pure: no I/O, no clock.

use crate::controller::key::Key;
use crate::model::{Lenient, LoadBalancer, LoadBalancerSpec, Protocol};
use std::collections::BTreeSet;

/// A Service port we can forward: its name, protocol and nodePort.
pub(crate) struct ServicePortSpec {
    pub(crate) name: String,
    pub(crate) protocol: Protocol,
    pub(crate) node_port: u16,
}

/// One Service port asking for an LB port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRequest {
    pub protocol: Protocol,
    /// The LB port (and its protocol) the existing CR records for this Service port.
    pub previous: Option<(u16, Protocol)>,
}

/// LB ports per Service port, in request order, or the protocol no free port of the range is left
/// for. `taken(port, protocol)` says whether another LoadBalancer holds that pair on the same host
/// (see [`PortIndex::holder`]).
pub fn allocate_ports(
    requests: &[PortRequest],
    (low, high): (u16, u16),
    taken: &dyn Fn(u16, Protocol) -> bool,
) -> Result<Vec<u16>, Protocol> {
    // Pairs this Service's own ports hold so far; `taken` covers everyone else's.
    let mut mine: BTreeSet<(u16, Protocol)> = BTreeSet::new();
    let mut out: Vec<Option<u16>> = vec![None; requests.len()];
    // Keep first, in a separate pass, so a port added in front cannot take a port kept behind it.
    for (slot, r) in out.iter_mut().zip(requests) {
        if let Some((port, protocol)) = r.previous
            && protocol == r.protocol
            && (low..=high).contains(&port)
            && !taken(port, protocol)
            && mine.insert((port, protocol))
        {
            *slot = Some(port);
        }
    }
    for (slot, r) in out.iter_mut().zip(requests) {
        if slot.is_some() {
            continue;
        }
        let free =
            (low..=high).find(|p| !taken(*p, r.protocol) && !mine.contains(&(*p, r.protocol)));
        let port = free.ok_or(r.protocol)?;
        mine.insert((port, r.protocol));
        *slot = Some(port);
    }
    Ok(out.into_iter().flatten().collect())
}

/// The LB hosts a stored spec claims its ports on, lower case: `host` and every `hosts[].host`.
pub fn stored_hosts(spec: &LoadBalancerSpec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .written_hosts()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Which LoadBalancers claim each (port, protocol) on each LB host, kept up to date by the cache
/// as LoadBalancers change, so an allocation never scans every LoadBalancer. Read straight from the
/// stored specs and applied backends (no full validation): a port an odd CR still claims, or a
/// backend not yet deleted from its updater holds, counts as taken; LoadBalancers being deleted
/// keep theirs until they are gone. Hosts compare case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortIndex {
    /// In that order: one host's claims, and one pair's claimants, are each a range of the set.
    claims: BTreeSet<Claim>,
}

/// (LB host in lower case, port, protocol, claimant).
pub type Claim = (String, u16, Protocol, Key);

impl PortIndex {
    /// The claims `spec` makes for `key`.
    pub fn spec_claims(key: &Key, spec: &LoadBalancerSpec) -> Vec<Claim> {
        let pairs = stored_ports(spec);
        let mut out = Vec::new();
        for host in stored_hosts(spec) {
            for (_, port, protocol) in &pairs {
                out.push((host.clone(), *port, *protocol, key.clone()));
            }
        }
        out
    }

    /// The claims `lb` makes for `key`: its spec's, and where its backends are applied
    /// (`status.applied`: the port is busy on the updater until the backend is deleted there,
    /// whatever the spec says by then).
    pub fn claims_of(key: &Key, lb: &LoadBalancer) -> Vec<Claim> {
        let applied = lb.status.applied.iter().filter_map(|b| {
            let port = u16::try_from(b.port).ok().filter(|p| *p > 0)?;
            Some((
                b.host.to_ascii_lowercase(),
                port,
                Protocol::parse(&b.protocol)?,
                key.clone(),
            ))
        });
        let mut out = PortIndex::spec_claims(key, &lb.spec);
        out.extend(applied);
        out
    }

    pub fn add(&mut self, claims: impl IntoIterator<Item = Claim>) {
        self.claims.extend(claims);
    }

    pub fn take(&mut self, claims: &[Claim]) {
        for claim in claims {
            self.claims.remove(claim);
        }
    }

    /// The claims on `host`, from (port, protocol) on.
    fn from<'a>(
        &'a self,
        host: &str,
        (port, protocol): (u16, Protocol),
    ) -> impl Iterator<Item = &'a Claim> {
        let start = (host.to_ascii_lowercase(), port, protocol, Key::default());
        self.claims
            .range(&start..)
            .take_while(move |c| c.0 == start.0)
    }

    /// A LoadBalancer other than `except` claiming (port, protocol) on `host` (the first by key).
    pub fn holder(&self, host: &str, port: u16, protocol: Protocol, except: &Key) -> Option<&Key> {
        self.from(host, (port, protocol))
            .take_while(|c| (c.1, c.2) == (port, protocol))
            .map(|c| &c.3)
            .find(|k| *k != except)
    }

    /// Every pair claimed on `host` by LoadBalancers other than `except` (for tests and metrics).
    pub fn taken_on(&self, host: &str, except: &Key) -> BTreeSet<(u16, Protocol)> {
        self.from(host, (0, Protocol::Tcp))
            .filter(|c| c.3 != *except)
            .map(|c| (c.1, c.2))
            .collect()
    }
}

/// The reference the index must agree with: a scan of every LoadBalancer.
#[cfg(test)]
pub fn taken_ports<L: std::borrow::Borrow<crate::model::LoadBalancer>>(
    lbs: &std::collections::BTreeMap<Key, L>,
    host: &str,
    except: &Key,
) -> BTreeSet<(u16, Protocol)> {
    let mut taken = BTreeSet::new();
    for (key, lb) in lbs {
        if key == except {
            continue;
        }
        let lb: &crate::model::LoadBalancer = lb.borrow();
        let same_host = lb
            .spec
            .host
            .get()
            .is_some_and(|h| h.eq_ignore_ascii_case(host));
        if same_host {
            taken.extend(
                stored_ports(&lb.spec)
                    .into_iter()
                    .map(|(_, p, proto)| (p, proto)),
            );
        }
        let applied = lb.status.applied.iter();
        taken.extend(
            applied
                .filter(|b| b.host.eq_ignore_ascii_case(host) && b.port > 0)
                .filter_map(|b| Some((b.port as u16, Protocol::parse(&b.protocol)?))),
        );
    }
    taken
}

/// (name, port, protocol) of each readable port in a stored spec: the `ports` list, else the Go
/// fields as one unnamed port.
pub fn stored_ports(spec: &LoadBalancerSpec) -> Vec<(String, u16, Protocol)> {
    let one = |name: &Lenient<String>, port: &Lenient<i64>, protocol: &Lenient<String>| {
        let port = u16::try_from(*port.get()?).ok().filter(|p| *p > 0)?;
        let protocol = match protocol {
            Lenient::Missing => Protocol::Tcp,
            p => Protocol::parse(p.get()?)?,
        };
        Some((name.get().cloned().unwrap_or_default(), port, protocol))
    };
    if spec.ports.is_empty() {
        one(&Lenient::Missing, &spec.port, &spec.protocol)
            .into_iter()
            .collect()
    } else {
        spec.ports
            .iter()
            .filter_map(|p| one(&p.name, &p.port, &p.protocol))
            .collect()
    }
}

/// What the existing CR records for each Service port: matched by port name. A single unnamed
/// port (a Go-form CR, or a one-port Service whose port was named when a second was added: the
/// apiserver requires names then) goes to the Service port with its node port, else to the first,
/// so it keeps its LB port.
pub(crate) fn previous_ports(
    existing: Option<&LoadBalancerSpec>,
    wanted: &[ServicePortSpec],
) -> Vec<PortRequest> {
    let stored = existing.map(stored_ports).unwrap_or_default();
    let single = matches!(&stored[..], [(name, _, _)] if name.is_empty());
    // The single port's node port (its targets'), to find it again if a port was added in front.
    let node_port = existing.and_then(|s| {
        let targets = s.ports.first().map_or(&s.targets, |p| &p.targets);
        targets
            .first()
            .and_then(|t| u16::try_from(*t.port.get()?).ok())
    });
    let heir = wanted
        .iter()
        .position(|w| Some(w.node_port) == node_port)
        .unwrap_or(0);
    let found = |i: usize, name: &str| {
        if single {
            stored.first().filter(|_| i == heir)
        } else {
            stored.iter().find(|(n, _, _)| n == name)
        }
    };
    (wanted.iter().enumerate())
        .map(|(i, w)| PortRequest {
            protocol: w.protocol,
            previous: found(i, &w.name).map(|(_, p, proto)| (*p, *proto)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testutil::{Rng, shuffled};
    use crate::model::LoadBalancer;
    use Protocol::{Tcp, Udp};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn req(_name: &str, protocol: Protocol, previous: Option<(u16, Protocol)>) -> PortRequest {
        PortRequest { protocol, previous }
    }

    fn wanted(names: &[&str]) -> Vec<ServicePortSpec> {
        (names.iter())
            .map(|n| ServicePortSpec {
                name: n.to_string(),
                protocol: Tcp,
                node_port: 30000,
            })
            .collect()
    }

    type Case = (
        &'static str,
        Vec<PortRequest>,
        (u16, u16),
        Vec<(u16, Protocol)>,
        Result<Vec<u16>, ()>,
    );

    #[test]
    fn allocation_table() {
        let cases: Vec<Case> = vec![
            (
                "lowest free",
                vec![req("a", Tcp, None)],
                (8000, 8010),
                vec![],
                Ok(vec![8000]),
            ),
            (
                "skips taken",
                vec![req("a", Tcp, None)],
                (8000, 8010),
                vec![(8000, Tcp), (8001, Tcp)],
                Ok(vec![8002]),
            ),
            (
                "keeps existing",
                vec![req("a", Tcp, Some((8005, Tcp)))],
                (8000, 8010),
                vec![],
                Ok(vec![8005]),
            ),
            (
                "other protocol does not collide",
                vec![req("a", Udp, None)],
                (8000, 8010),
                vec![(8000, Tcp)],
                Ok(vec![8000]),
            ),
            (
                "tcp and udp of one service share a number",
                vec![req("dns-tcp", Tcp, None), req("dns-udp", Udp, None)],
                (8000, 8010),
                vec![],
                Ok(vec![8000, 8000]),
            ),
            (
                "two tcp ports differ",
                vec![req("a", Tcp, None), req("b", Tcp, None)],
                (8000, 8010),
                vec![],
                Ok(vec![8000, 8001]),
            ),
            (
                "existing taken by another LB moves",
                vec![req("a", Tcp, Some((8005, Tcp)))],
                (8000, 8010),
                vec![(8005, Tcp)],
                Ok(vec![8000]),
            ),
            (
                "protocol changed: reallocate",
                vec![req("a", Udp, Some((8005, Tcp)))],
                (8000, 8010),
                vec![],
                Ok(vec![8000]),
            ),
            (
                "range shrink keeps ports inside",
                vec![
                    req("a", Tcp, Some((8003, Tcp))),
                    req("b", Tcp, Some((8009, Tcp))),
                ],
                (8002, 8005),
                vec![],
                Ok(vec![8003, 8002]),
            ),
            (
                "new port in front does not steal kept port",
                vec![req("new", Tcp, None), req("old", Tcp, Some((8000, Tcp)))],
                (8000, 8010),
                vec![],
                Ok(vec![8001, 8000]),
            ),
            (
                "duplicate previous: second reallocated",
                vec![
                    req("a", Tcp, Some((8000, Tcp))),
                    req("b", Tcp, Some((8000, Tcp))),
                ],
                (8000, 8010),
                vec![],
                Ok(vec![8000, 8001]),
            ),
            (
                "exhausted",
                vec![req("a", Tcp, None), req("b", Tcp, None)],
                (8000, 8001),
                vec![(8000, Tcp)],
                Err(()),
            ),
            (
                "single-port range",
                vec![req("a", Tcp, None)],
                (9000, 9000),
                vec![],
                Ok(vec![9000]),
            ),
        ];
        let mut rng = Rng::new(42);
        for _ in 0..20 {
            for (name, reqs, (low, high), taken, want) in shuffled(&cases, &mut rng) {
                let taken: BTreeSet<_> = taken.iter().copied().collect();
                let got =
                    allocate_ports(reqs, (*low, *high), &|p, proto| taken.contains(&(p, proto)));
                match want {
                    Ok(ports) => assert_eq!(got.as_ref(), Ok(ports), "{name}"),
                    Err(()) => assert!(got.is_err(), "{name}"),
                }
            }
        }
    }

    #[test]
    fn exhaustion_names_the_protocol_left_without_a_port() {
        let taken = |p, proto| (p, proto) == (8000, Tcp);
        let reqs = [req("a", Udp, None), req("b", Tcp, None)];
        assert_eq!(allocate_ports(&reqs, (8000, 8000), &taken), Err(Tcp));
    }

    fn lb(host: &str, ports: &[(&str, u16, &str)]) -> LoadBalancer {
        let ports: Vec<_> = ports
            .iter()
            .map(|(n, p, proto)| json!({"name": n, "port": p, "protocol": proto}))
            .collect();
        serde_json::from_value(json!({"spec": {"host": host, "ports": ports}})).unwrap()
    }

    fn key(name: &str) -> Key {
        Key::new("ns", name)
    }

    #[test]
    fn taken_ports_per_host_excluding_self() {
        let mut lbs = BTreeMap::new();
        lbs.insert(
            key("a"),
            lb("h1", &[("x", 8000, "TCP"), ("y", 8000, "UDP")]),
        );
        lbs.insert(key("b"), lb("H1", &[("x", 8001, "TCP")]));
        lbs.insert(key("c"), lb("h2", &[("x", 8002, "TCP")]));
        let go: LoadBalancer =
            serde_json::from_value(json!({"spec": {"host": "h1", "port": "8003"}})).unwrap();
        lbs.insert(key("d"), go);
        let got = taken_ports(&lbs, "h1", &key("b"));
        assert_eq!(
            got,
            [(8000, Tcp), (8000, Udp), (8003, Tcp)]
                .into_iter()
                .collect()
        );
    }

    #[test]
    fn index_agrees_with_a_scan_after_random_changes() {
        let mut rng = Rng::new(11);
        let hosts = ["h1", "H1", "h2"];
        let protos = ["TCP", "UDP", "SCTP", ""];
        let mut lbs: BTreeMap<Key, LoadBalancer> = BTreeMap::new();
        let mut index = PortIndex::default();
        for step in 0..2000 {
            let k = key(&format!("lb{}", rng.below(30)));
            if let Some(old) = lbs.remove(&k) {
                index.take(&PortIndex::claims_of(&k, &old));
            }
            if rng.below(4) != 0 {
                let ports: Vec<(String, u16, &str)> = (0..rng.below(3))
                    .map(|i| {
                        let port = 8000 + rng.below(12) as u16;
                        (format!("p{i}"), port, protos[rng.below(protos.len())])
                    })
                    .collect();
                let ports: Vec<(&str, u16, &str)> =
                    ports.iter().map(|(n, p, t)| (n.as_str(), *p, *t)).collect();
                let mut l = lb(hosts[rng.below(hosts.len())], &ports);
                // Backends still applied: on a port of the spec or another, on any host.
                for _ in 0..rng.below(3) {
                    let b = json!({"host": hosts[rng.below(hosts.len())],
                        "port": 8000 + rng.below(12), "protocol": protos[rng.below(protos.len())]});
                    l.status.applied.push(serde_json::from_value(b).unwrap());
                }
                index.add(PortIndex::claims_of(&k, &l));
                lbs.insert(k, l);
            }
            let except = key(&format!("lb{}", rng.below(30)));
            for host in ["h1", "h2", "h3"] {
                let want = taken_ports(&lbs, host, &except);
                assert_eq!(
                    index.taken_on(host, &except),
                    want,
                    "step {step} host {host}"
                );
                for port in 8000..8012 {
                    for proto in [Tcp, Udp] {
                        assert_eq!(
                            index.holder(host, port, proto, &except).is_some(),
                            want.contains(&(port, proto)),
                            "step {step}"
                        );
                    }
                }
            }
        }
        for (k, l) in &lbs {
            index.take(&PortIndex::claims_of(k, l));
        }
        assert_eq!(
            index,
            PortIndex::default(),
            "nothing left once all are removed"
        );
    }

    #[test]
    fn previous_ports_match_by_name_or_go_form() {
        let stored = lb("h", &[("http", 8000, "TCP"), ("https", 8001, "TCP")]).spec;
        let got = previous_ports(Some(&stored), &wanted(&["https", "metrics"]));
        assert_eq!(got[0].previous, Some((8001, Tcp)));
        assert_eq!(got[1].previous, None);
        let go: LoadBalancer =
            serde_json::from_value(json!({"spec": {"host": "h", "port": 8100, "protocol": "TCP"}}))
                .unwrap();
        let got = previous_ports(Some(&go.spec), &wanted(&["http", "b"]));
        assert_eq!(got[0].previous, Some((8100, Tcp)));
        assert_eq!(got[1].previous, None);
        // A one-port Service's unnamed port, named when a second port is added, keeps its port:
        // the first Service port, or the one with its node port when the new one went in front.
        let one = lb("h", &[("", 8005, "TCP")]).spec;
        let got = previous_ports(Some(&one), &wanted(&["http", "https"]));
        assert_eq!(got[0].previous, Some((8005, Tcp)));
        assert_eq!(got[1].previous, None);
        let mut front = wanted(&["admin", "http"]);
        front[1].node_port = 30080;
        let stored: LoadBalancer = serde_json::from_value(json!({"spec": {"host": "h", "ports": [
            {"name": "", "port": 8005, "protocol": "TCP", "targets": [{"host": "n", "port": 30080}]}]}}))
        .unwrap();
        let got = previous_ports(Some(&stored.spec), &front);
        assert_eq!(
            (got[0].previous, got[1].previous),
            (None, Some((8005, Tcp)))
        );
    }

    #[test]
    fn fifty_services_never_share_a_port() {
        let mut rng = Rng::new(3);
        for round in 0..10 {
            let mut lbs: BTreeMap<Key, LoadBalancer> = BTreeMap::new();
            let mut order: Vec<usize> = (0..50).collect();
            rng.shuffle(&mut order);
            for i in order {
                let k = key(&format!("svc{i}"));
                let taken = taken_ports(&lbs, "h", &k);
                let taken = |p, proto| taken.contains(&(p, proto));
                let reqs = [
                    req("a", Tcp, None),
                    req("b", Udp, None),
                    req("c", Tcp, None),
                ];
                let got = allocate_ports(&reqs, (8000, 8200), &taken).unwrap();
                lbs.insert(
                    k,
                    lb(
                        "h",
                        &[
                            ("a", got[0], "TCP"),
                            ("b", got[1], "UDP"),
                            ("c", got[2], "TCP"),
                        ],
                    ),
                );
            }
            let mut seen = BTreeSet::new();
            for l in lbs.values() {
                for (_, p, proto) in stored_ports(&l.spec) {
                    assert!(
                        seen.insert((p, proto)),
                        "round {round}: {p}/{proto:?} twice"
                    );
                }
            }
            assert_eq!(seen.len(), 150);
        }
    }
}
