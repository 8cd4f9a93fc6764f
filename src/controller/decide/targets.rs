//! Which nodes a LoadBalancer forwards to, and at which address.
//!
//! Two rules. The stable node set (KEP-3458, the default when an updater health check is in
//! force): a node stays a target while it is NotReady, cordoned or tainted
//! `ToBeDeletedByClusterAutoscaler`, since the check drains it without cutting established
//! connections or pushing anything; it leaves only when deleted, excluded by label or without an
//! address. Without a check ([`super::traffic::keeps_stable_set`]) NotReady and doomed nodes
//! leave too, as before.
//! Pure: no I/O, no clock.

use crate::model::{EndpointSlice, LoadBalancer, Node, Target};
use std::collections::{BTreeMap, BTreeSet};

/// Label that keeps a node out of every external load balancer (unless its value parses as false).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// Taint the cluster autoscaler puts on a node it is about to remove.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// Condition on the LoadBalancer: False while its targets follow node readiness (absent while they
/// are a stable set). The cache requeues only these LoadBalancers when a node's readiness flips.
pub const STABLE_NODE_SET: &str = "StableNodeSet";

/// Whether `lb`'s status says its targets follow node readiness.
pub fn follows_readiness_recorded(lb: &LoadBalancer) -> bool {
    lb.status
        .conditions
        .iter()
        .any(|c| c.type_ == STABLE_NODE_SET && c.status == "False")
}

/// The reason when no eligible node has an address in one of the Service's `ipFamilies`:
/// `Ready=False` when it is every family (`no_targets`), `DualStack=False` when it is one of two
/// (`traffic::families_fault`).
pub const NO_ADDRESS_IN_FAMILY: &str = "NoAddressInFamily";

/// Why a node may not receive traffic (the first reason that applies, in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ineligible {
    /// No `Ready` condition with status `True`.
    NotReady,
    /// `metadata.deletionTimestamp` is set.
    Deleting,
    /// Labelled [`EXCLUDE_LABEL`] (with a value that does not parse as false).
    Excluded,
    /// Tainted [`TO_BE_DELETED_TAINT`].
    ToBeDeleted,
}

/// Why a node may not receive traffic, or `None` when it may: not being deleted, not excluded by
/// label and, unless `stable` (a health check drains it instead), Ready and not about to be removed
/// by the autoscaler. Cordoned nodes stay in (kube-proxy still forwards from them).
pub fn node_ineligibility(node: &Node, stable: bool) -> Option<Ineligible> {
    let ready = node
        .status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let excluded = node
        .metadata
        .labels
        .get(EXCLUDE_LABEL)
        .is_some_and(|v| !parses_false(v));
    let doomed = node
        .spec
        .taints
        .iter()
        .any(|t| t.key == TO_BE_DELETED_TAINT);
    if !ready && !stable {
        Some(Ineligible::NotReady)
    } else if node.metadata.is_deleting() {
        Some(Ineligible::Deleting)
    } else if excluded {
        Some(Ineligible::Excluded)
    } else if doomed && !stable {
        Some(Ineligible::ToBeDeleted)
    } else {
        None
    }
}

/// Go's `strconv.ParseBool` false spellings, as cloud-provider uses.
fn parses_false(v: &str) -> bool {
    matches!(v, "0" | "f" | "F" | "false" | "FALSE" | "False")
}

/// The node's first address of the first type in `address_types` that it has.
pub fn node_address<'a>(node: &'a Node, address_types: &[String]) -> Option<&'a str> {
    first_address(node, address_types, |_| true)
}

/// The node's first address that `fits`, of the first type in `address_types` that has one.
fn first_address<'a>(
    node: &'a Node,
    address_types: &[String],
    fits: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    address_types.iter().find_map(|t| {
        (node.status.addresses.iter())
            .find(|a| &a.type_ == t && !a.address.is_empty() && fits(&a.address))
            .map(|a| a.address.as_str())
    })
}

/// `IPv4` or `IPv6` for an IP literal; `None` for a DNS name.
pub fn ip_family(address: &str) -> Option<&'static str> {
    match address.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(_) => Some("IPv4"),
        std::net::IpAddr::V6(_) => Some("IPv6"),
    }
}

/// Whether `address` serves the `i`th of the Service's `families`: an IP literal of that family, or
/// a DNS name for the primary (first) one.
pub fn in_family(address: &str, families: &[String], i: usize) -> bool {
    ip_family(address).map_or(i == 0, |f| f == families[i])
}

/// The node's addresses to forward to for a Service of `families` (its `spec.ipFamilies`): per
/// family, the first address of that family in `address_types` order (a DNS name counts as the
/// primary family). Without families (servers before dual stack), [`node_address`]: the first
/// address of the first type, whatever its family.
pub fn node_addresses<'a>(
    node: &'a Node,
    address_types: &[String],
    families: &[String],
) -> Vec<&'a str> {
    if families.is_empty() {
        return node_address(node, address_types).into_iter().collect();
    }
    (0..families.len())
        .filter_map(|i| first_address(node, address_types, |a| in_family(a, families, i)))
        .collect()
}

/// Targets for one Service port: every eligible node (`stable`: see [`node_ineligibility`]; only
/// those in `local_nodes` when the Service has `externalTrafficPolicy: Local`) at its preferred
/// address of each of the Service's `families` ([`node_addresses`]) and `node_port`; sorted and
/// deduplicated so equal sets give identical updater requests.
pub fn targets_for(
    node_port: u16,
    nodes: &BTreeMap<String, Node>,
    (address_types, families): (&[String], &[String]),
    local_nodes: Option<&BTreeSet<String>>,
    stable: bool,
) -> Vec<Target> {
    let mut targets: Vec<Target> = nodes
        .iter()
        .filter(|(name, _)| local_nodes.is_none_or(|l| l.contains(*name)))
        .filter(|(_, node)| node_ineligibility(node, stable).is_none())
        .flat_map(|(_, node)| node_addresses(node, address_types, families))
        .map(|host| Target {
            host: host.to_string(),
            port: node_port,
        })
        .collect();
    targets.sort();
    targets.dedup();
    targets
}

/// Nodes hosting at least one ready endpoint in these slices (for `externalTrafficPolicy: Local`).
pub fn ready_endpoint_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeSet<String> {
    slices
        .into_iter()
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.is_ready())
        .filter_map(|e| e.node_name.clone())
        .collect()
}

/// What about a node matters to targets, in two parts: what the stable set sees (eligibility under
/// it, addresses), which affects every LoadBalancer, and readiness (eligibility under the old
/// rule), which affects only those that follow it. A node update that changes neither
/// (heartbeats, unrelated labels) affects no LoadBalancer.
pub fn node_view(node: &Node) -> ((bool, Vec<(String, String)>), bool) {
    let mut addresses: Vec<(String, String)> = (node.status.addresses.iter())
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    addresses.sort();
    (
        (node_ineligibility(node, true).is_none(), addresses),
        node_ineligibility(node, false).is_none(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testutil::{Rng, node, shuffled};
    use crate::model::{Endpoint, EndpointConditions, Taint};

    fn types(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    /// Each node-set rule under both rules: (case, node, target in the stable set, target when
    /// following readiness). A deleted node is simply absent (see the targets table).
    #[test]
    fn eligibility_table_stable_and_following_readiness() {
        let base = || node("n1", "True", &[("InternalIP", "10.0.0.1")]);
        let with = |f: &dyn Fn(&mut Node)| {
            let mut n = base();
            f(&mut n);
            n
        };
        let label = |v: &'static str| {
            with(&move |n: &mut Node| {
                n.metadata.labels.insert(EXCLUDE_LABEL.into(), v.into());
            })
        };
        let taint = with(&|n: &mut Node| {
            n.spec.taints.push(Taint {
                key: TO_BE_DELETED_TAINT.into(),
            })
        });
        let cases: Vec<(&str, Node, bool, bool)> = vec![
            ("ready node", base(), true, true),
            ("not ready", node("n1", "False", &[]), true, false),
            ("ready unknown", node("n1", "Unknown", &[]), true, false),
            ("no conditions", Node::default(), true, false),
            (
                "deleting",
                with(&|n: &mut Node| {
                    n.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into())
                }),
                false,
                false,
            ),
            ("excluded by label", label(""), false, false),
            ("exclude label true", label("true"), false, false),
            ("exclude label false", label("false"), true, true),
            ("exclude label F", label("F"), true, true),
            ("autoscaler taint", taint, true, false),
            (
                "cordoned stays",
                with(&|n: &mut Node| n.spec.unschedulable = true),
                true,
                true,
            ),
            (
                "not ready and excluded",
                {
                    let mut n = node("n1", "False", &[]);
                    n.metadata.labels.insert(EXCLUDE_LABEL.into(), "".into());
                    n
                },
                false,
                false,
            ),
        ];
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            for (name, n, stable, following) in shuffled(&cases, &mut rng) {
                assert_eq!(
                    node_ineligibility(n, true).is_none(),
                    *stable,
                    "{name} (stable set)"
                );
                assert_eq!(
                    node_ineligibility(n, false).is_none(),
                    *following,
                    "{name} (readiness)"
                );
            }
        }
        assert_eq!(
            node_ineligibility(&node("n1", "False", &[]), false),
            Some(Ineligible::NotReady)
        );
    }

    #[test]
    fn address_falls_back_in_configured_order() {
        let both = node(
            "n",
            "True",
            &[("InternalIP", "10.0.0.1"), ("ExternalIP", "203.0.113.1")],
        );
        let internal = node(
            "n",
            "True",
            &[("Hostname", "n"), ("InternalIP", "10.0.0.2")],
        );
        let none = node("n", "True", &[("Hostname", "n")]);
        let ext_first = types(&["ExternalIP", "InternalIP"]);
        let int_first = types(&["InternalIP", "ExternalIP"]);
        let ext_only = types(&["ExternalIP"]);
        assert_eq!(node_address(&both, &ext_first), Some("203.0.113.1"));
        assert_eq!(node_address(&both, &int_first), Some("10.0.0.1"));
        assert_eq!(node_address(&internal, &ext_first), Some("10.0.0.2"));
        assert_eq!(node_address(&internal, &ext_only), None);
        assert_eq!(node_address(&none, &ext_first), None);
    }

    /// Family selection: (case, node addresses, address types, Service ipFamilies, targets).
    #[test]
    fn family_table_per_family_in_type_order() {
        let dual = [
            ("InternalIP", "10.0.0.1"),
            ("InternalIP", "fd00::1"),
            ("ExternalIP", "2001:db8::1"),
        ];
        let v4_only = [("InternalIP", "10.0.0.2"), ("ExternalIP", "203.0.113.2")];
        let v6_only = [("InternalIP", "fd00::3")];
        let named = [("Hostname", "n4.example"), ("InternalIP", "fd00::4")];
        let ext_int = ["ExternalIP", "InternalIP"];
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: Vec<Case> = vec![
            (
                "no ipFamilies: first type, any family",
                &dual,
                &ext_int,
                &[],
                &["2001:db8::1"],
            ),
            (
                "no ipFamilies, v4 node",
                &v4_only,
                &ext_int,
                &[],
                &["203.0.113.2"],
            ),
            (
                "IPv4 only: skips the IPv6 ExternalIP",
                &dual,
                &ext_int,
                &["IPv4"],
                &["10.0.0.1"],
            ),
            (
                "IPv6 only: ExternalIP first",
                &dual,
                &ext_int,
                &["IPv6"],
                &["2001:db8::1"],
            ),
            (
                "IPv6 only, InternalIP first",
                &dual,
                &["InternalIP", "ExternalIP"],
                &["IPv6"],
                &["fd00::1"],
            ),
            (
                "dual stack: one per family",
                &dual,
                &ext_int,
                &["IPv4", "IPv6"],
                &["10.0.0.1", "2001:db8::1"],
            ),
            (
                "dual stack, IPv6 primary",
                &dual,
                &ext_int,
                &["IPv6", "IPv4"],
                &["2001:db8::1", "10.0.0.1"],
            ),
            (
                "dual stack, v4-only node",
                &v4_only,
                &ext_int,
                &["IPv4", "IPv6"],
                &["203.0.113.2"],
            ),
            (
                "IPv6 only, v4-only node: none",
                &v4_only,
                &ext_int,
                &["IPv6"],
                &[],
            ),
            (
                "IPv4 only, v6-only node: none",
                &v6_only,
                &ext_int,
                &["IPv4"],
                &[],
            ),
            (
                "IPv6 type filtered out",
                &v6_only,
                &["ExternalIP"],
                &["IPv6"],
                &[],
            ),
            (
                "a DNS name is the primary family",
                &named,
                &["Hostname", "InternalIP"],
                &["IPv4", "IPv6"],
                &["n4.example", "fd00::4"],
            ),
            (
                "a DNS name is not a secondary family",
                &named,
                &["Hostname"],
                &["IPv6", "IPv4"],
                &["n4.example"],
            ),
        ];
        for (name, addrs, order, families, want) in cases {
            let n = node("n", "True", addrs);
            let (order, families) = (types(order), types(families));
            assert_eq!(
                node_addresses(&n, &order, &families),
                want.to_vec(),
                "{name}"
            );
        }
        // Over nodes: a dual-stack Service gets every node in each family it has.
        let mut nodes = BTreeMap::new();
        for (name, addrs) in [("a", &dual[..]), ("b", &v4_only[..]), ("c", &v6_only[..])] {
            nodes.insert(name.to_string(), node(name, "True", addrs));
        }
        let hosts = |families: &[&str]| -> Vec<String> {
            let (order, families) = (types(&ext_int), types(families));
            let t = targets_for(31000, &nodes, (&order, &families), None, true);
            t.into_iter().map(|t| t.host).collect()
        };
        let all = ["10.0.0.1", "2001:db8::1", "203.0.113.2", "fd00::3"];
        assert_eq!(hosts(&["IPv4", "IPv6"]), all);
        assert_eq!(hosts(&["IPv4"]), ["10.0.0.1", "203.0.113.2"]);
        assert_eq!(hosts(&["IPv6"]), ["2001:db8::1", "fd00::3"]);
        assert_eq!(hosts(&[]), ["2001:db8::1", "203.0.113.2", "fd00::3"]);
    }

    fn slice(endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            endpoints: endpoints
                .iter()
                .map(|(n, ready)| Endpoint {
                    conditions: EndpointConditions { ready: *ready },
                    node_name: Some(n.to_string()),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn targets_table_sorted_deduplicated_local_policy() {
        let mut nodes = BTreeMap::new();
        for (name, ready, ip) in [
            ("c", "True", "10.0.0.3"),
            ("a", "True", "10.0.0.1"),
            ("b", "False", "10.0.0.2"),
            ("d", "True", "10.0.0.1"), // same address as a: one target
            ("e", "True", ""),         // no usable address
        ] {
            let addrs: Vec<(&str, &str)> = if ip.is_empty() {
                vec![]
            } else {
                vec![("InternalIP", ip)]
            };
            nodes.insert(name.to_string(), node(name, ready, &addrs));
        }
        let pref = types(&["ExternalIP", "InternalIP"]);
        let t = |hosts: &[&str]| -> Vec<Target> {
            hosts
                .iter()
                .map(|h| Target {
                    host: h.to_string(),
                    port: 31000,
                })
                .collect()
        };
        let local_a: BTreeSet<String> =
            ready_endpoint_nodes(&[slice(&[("a", None), ("b", Some(true)), ("c", Some(false))])]);
        assert_eq!(local_a, ["a", "b"].iter().map(|s| s.to_string()).collect());
        // (case, local nodes, stable set, following readiness)
        type Case = (&'static str, Option<BTreeSet<String>>, bool, Vec<Target>);
        let cases: Vec<Case> = vec![
            ("cluster policy", None, false, t(&["10.0.0.1", "10.0.0.3"])),
            (
                "cluster policy, stable: b NotReady stays",
                None,
                true,
                t(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            ),
            (
                "local: a ready, b not eligible, c endpoint not ready",
                Some(local_a.clone()),
                false,
                t(&["10.0.0.1"]),
            ),
            (
                "local, stable: a and b (NotReady) have ready endpoints, c's is not ready",
                Some(local_a),
                true,
                t(&["10.0.0.1", "10.0.0.2"]),
            ),
            ("local: no endpoints", Some(BTreeSet::new()), false, vec![]),
            (
                "local, stable: no endpoints",
                Some(BTreeSet::new()),
                true,
                vec![],
            ),
        ];
        let mut rng = Rng::new(11);
        for _ in 0..20 {
            for (name, local, stable, want) in shuffled(&cases, &mut rng) {
                assert_eq!(
                    &targets_for(31000, &nodes, (&pref, &[]), local.as_ref(), *stable),
                    want,
                    "{name}"
                );
            }
        }
        // A deleted node is gone from the map: it leaves the targets under both rules.
        nodes.remove("c");
        for stable in [true, false] {
            assert!(
                !targets_for(31000, &nodes, (&pref, &[]), None, stable)
                    .contains(&t(&["10.0.0.3"])[0])
            );
        }
    }

    #[test]
    fn node_view_ignores_unrelated_changes_and_splits_readiness() {
        let a = node("n", "True", &[("InternalIP", "10.0.0.1")]);
        let mut b = a.clone();
        b.metadata.resource_version = "999".into();
        b.metadata.labels.insert("team".into(), "x".into());
        assert_eq!(node_view(&a), node_view(&b));
        // Readiness flips, cordons and the autoscaler taint change only the readiness part.
        let not_ready = node("n", "False", &[("InternalIP", "10.0.0.1")]);
        let mut doomed = a.clone();
        doomed.spec.taints.push(Taint {
            key: TO_BE_DELETED_TAINT.into(),
        });
        let mut cordoned = a.clone();
        cordoned.spec.unschedulable = true;
        for (name, n, readiness_changes) in [
            ("not ready", &not_ready, true),
            ("doomed", &doomed, true),
            ("cordoned", &cordoned, false),
        ] {
            assert_eq!(node_view(&a).0, node_view(n).0, "{name}");
            assert_eq!(
                node_view(&a).1 != node_view(n).1,
                readiness_changes,
                "{name}"
            );
        }
        // The exclude label, deletion and addresses change what the stable set sees.
        let mut excluded = a.clone();
        excluded
            .metadata
            .labels
            .insert(EXCLUDE_LABEL.into(), "true".into());
        let mut deleting = a.clone();
        deleting.metadata.deletion_timestamp = Some("t".into());
        let moved = node("n", "True", &[("InternalIP", "10.0.0.9")]);
        let bare = node("n", "True", &[]);
        for (name, n) in [
            ("excluded", &excluded),
            ("deleting", &deleting),
            ("moved", &moved),
            ("no address", &bare),
        ] {
            assert_ne!(node_view(&a).0, node_view(n).0, "{name}");
        }
    }
}
