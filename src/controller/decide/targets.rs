//! Which nodes a LoadBalancer forwards to, and at which address.
//! Pure: no I/O, no clock.

use crate::model::{EndpointSlice, Node, Target};
use std::collections::{BTreeMap, BTreeSet};

/// Label that keeps a node out of every external load balancer (unless its value parses as false).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// Taint the cluster autoscaler puts on a node it is about to remove.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

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

/// Whether a node may receive traffic: Ready, not being deleted, not excluded by label, not about to
/// be removed by the autoscaler. Cordoned nodes stay in (kube-proxy still forwards from them).
pub fn node_eligible(node: &Node) -> bool {
    node_ineligibility(node).is_none()
}

/// `node_eligible` with the reason: `None` when the node may receive traffic.
pub fn node_ineligibility(node: &Node) -> Option<Ineligible> {
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
    if !ready {
        Some(Ineligible::NotReady)
    } else if node.metadata.is_deleting() {
        Some(Ineligible::Deleting)
    } else if excluded {
        Some(Ineligible::Excluded)
    } else if doomed {
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
    address_types.iter().find_map(|t| {
        node.status
            .addresses
            .iter()
            .find(|a| &a.type_ == t && !a.address.is_empty())
            .map(|a| a.address.as_str())
    })
}

/// Targets for one Service port: every eligible node (only those in `local_nodes` when the Service
/// has `externalTrafficPolicy: Local`) at its preferred address and `node_port`; sorted and
/// deduplicated so equal sets give identical updater requests.
pub fn targets_for(
    node_port: u16,
    nodes: &BTreeMap<String, Node>,
    address_types: &[String],
    local_nodes: Option<&BTreeSet<String>>,
) -> Vec<Target> {
    let mut targets: Vec<Target> = nodes
        .iter()
        .filter(|(name, _)| local_nodes.is_none_or(|l| l.contains(*name)))
        .filter(|(_, node)| node_eligible(node))
        .filter_map(|(_, node)| node_address(node, address_types))
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

/// What about a node matters to targets: a node update that leaves this unchanged (heartbeats,
/// unrelated labels) affects no LoadBalancer.
pub fn node_view(node: &Node) -> (bool, Vec<(String, String)>) {
    let mut addresses: Vec<(String, String)> = node
        .status
        .addresses
        .iter()
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    addresses.sort();
    (node_eligible(node), addresses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::testutil::{Rng, node, shuffled};
    use crate::model::{Endpoint, EndpointConditions, Taint};

    fn types(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn eligibility_table() {
        let base = || node("n1", "True", &[("InternalIP", "10.0.0.1")]);
        let cases: Vec<(&str, Node, bool)> = vec![
            ("ready node", base(), true),
            ("not ready", node("n1", "False", &[]), false),
            ("ready unknown", node("n1", "Unknown", &[]), false),
            ("no conditions", Node::default(), false),
            (
                "deleting",
                {
                    let mut n = base();
                    n.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".into());
                    n
                },
                false,
            ),
            (
                "excluded by label",
                {
                    let mut n = base();
                    n.metadata.labels.insert(EXCLUDE_LABEL.into(), "".into());
                    n
                },
                false,
            ),
            (
                "exclude label true",
                {
                    let mut n = base();
                    n.metadata
                        .labels
                        .insert(EXCLUDE_LABEL.into(), "true".into());
                    n
                },
                false,
            ),
            (
                "exclude label false",
                {
                    let mut n = base();
                    n.metadata
                        .labels
                        .insert(EXCLUDE_LABEL.into(), "false".into());
                    n
                },
                true,
            ),
            (
                "exclude label F",
                {
                    let mut n = base();
                    n.metadata.labels.insert(EXCLUDE_LABEL.into(), "F".into());
                    n
                },
                true,
            ),
            (
                "autoscaler taint",
                {
                    let mut n = base();
                    n.spec.taints.push(Taint {
                        key: TO_BE_DELETED_TAINT.into(),
                        value: Some("123".into()),
                        effect: "NoSchedule".into(),
                    });
                    n
                },
                false,
            ),
            (
                "cordoned stays",
                {
                    let mut n = base();
                    n.spec.unschedulable = true;
                    n
                },
                true,
            ),
        ];
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            for (name, n, want) in shuffled(&cases, &mut rng) {
                assert_eq!(node_eligible(n), *want, "{name}");
            }
        }
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

    fn slice(endpoints: &[(&str, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            endpoints: endpoints
                .iter()
                .map(|(n, ready)| Endpoint {
                    addresses: vec!["10.42.0.1".into()],
                    conditions: EndpointConditions {
                        ready: *ready,
                        ..Default::default()
                    },
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
        type Case = (&'static str, Option<BTreeSet<String>>, Vec<Target>);
        let cases: Vec<Case> = vec![
            ("cluster policy", None, t(&["10.0.0.1", "10.0.0.3"])),
            (
                "local: a ready, b not eligible, c endpoint not ready",
                Some(local_a),
                t(&["10.0.0.1"]),
            ),
            ("local: no endpoints", Some(BTreeSet::new()), vec![]),
        ];
        let mut rng = Rng::new(11);
        for _ in 0..20 {
            for (name, local, want) in shuffled(&cases, &mut rng) {
                assert_eq!(
                    &targets_for(31000, &nodes, &pref, local.as_ref()),
                    want,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn node_view_ignores_unrelated_changes() {
        let a = node("n", "True", &[("InternalIP", "10.0.0.1")]);
        let mut b = a.clone();
        b.metadata.resource_version = "999".into();
        b.metadata.labels.insert("team".into(), "x".into());
        assert_eq!(node_view(&a), node_view(&b));
        let c = node("n", "False", &[("InternalIP", "10.0.0.1")]);
        assert_ne!(node_view(&a), node_view(&c));
    }
}
