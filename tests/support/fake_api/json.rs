//! JSON encoding the way kube-apiserver writes it: built-in kinds in Go struct field order, custom
//! resources in alphabetical key order (the order `serde_json::Map` already keeps), Go's escaping
//! of `<`, `>` and `&`, and compact bodies ending in `\n` unless pretty-printed.
//! Pure: no I/O.

use serde_json::Value;

/// Field order of the Go structs we serve, by `Kind` and dotted path (`[]` for array items).
/// Keys not listed follow in alphabetical order.
fn order(kind: &str, path: &str) -> &'static [&'static str] {
    const META: &[&str] = &[
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    ];
    const ROOT: &[&str] = &["kind", "apiVersion", "metadata", "spec", "status"];
    match (kind, path) {
        (_, "metadata.ownerReferences[]") => &[
            "apiVersion",
            "kind",
            "name",
            "uid",
            "controller",
            "blockOwnerDeletion",
        ],
        ("Status", "") => &[
            "kind",
            "apiVersion",
            "metadata",
            "status",
            "message",
            "reason",
            "details",
            "code",
        ],
        ("Status", "metadata") => &[
            "selfLink",
            "resourceVersion",
            "continue",
            "remainingItemCount",
        ],
        ("Status", "details") => &[
            "name",
            "group",
            "kind",
            "uid",
            "causes",
            "retryAfterSeconds",
        ],
        ("Status", "details.causes[]") => &["reason", "message", "field"],
        ("List", "") => &["kind", "apiVersion", "metadata", "items"],
        ("List", "metadata") => &[
            "selfLink",
            "resourceVersion",
            "continue",
            "remainingItemCount",
        ],
        (_, "metadata") => META,
        ("WatchEvent", "") => &["type", "object"],
        ("Event", "") => &[
            "kind",
            "apiVersion",
            "metadata",
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ],
        ("Event", "involvedObject") | ("Event", "related") => &[
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        ],
        ("Event", "source") => &["component", "host"],
        ("Secret", "") => &[
            "kind",
            "apiVersion",
            "metadata",
            "immutable",
            "data",
            "stringData",
            "type",
        ],
        ("EndpointSlice", "") => &[
            "kind",
            "apiVersion",
            "metadata",
            "addressType",
            "endpoints",
            "ports",
        ],
        ("EndpointSlice", "endpoints[]") => &[
            "addresses",
            "conditions",
            "hostname",
            "targetRef",
            "deprecatedTopology",
            "nodeName",
            "zone",
            "hints",
        ],
        ("EndpointSlice", "endpoints[].conditions") => &["ready", "serving", "terminating"],
        ("EndpointSlice", "ports[]") => &["name", "protocol", "port", "appProtocol"],
        ("Service", "spec") => &[
            "ports",
            "selector",
            "clusterIP",
            "clusterIPs",
            "type",
            "externalIPs",
            "sessionAffinity",
            "loadBalancerIP",
            "loadBalancerSourceRanges",
            "externalName",
            "externalTrafficPolicy",
            "healthCheckNodePort",
            "publishNotReadyAddresses",
            "sessionAffinityConfig",
            "ipFamilies",
            "ipFamilyPolicy",
            "allocateLoadBalancerNodePorts",
            "loadBalancerClass",
            "internalTrafficPolicy",
            "trafficDistribution",
        ],
        ("Service", "spec.ports[]") => &[
            "name",
            "protocol",
            "appProtocol",
            "port",
            "targetPort",
            "nodePort",
        ],
        ("Service", "status") => &["loadBalancer", "conditions"],
        ("Service", "status.loadBalancer.ingress[]") => &["ip", "hostname", "ipMode", "ports"],
        ("Service", "status.loadBalancer.ingress[].ports[]") => &["port", "protocol", "error"],
        ("Node", "spec") => &[
            "podCIDR",
            "podCIDRs",
            "providerID",
            "unschedulable",
            "taints",
            "configSource",
            "externalID",
        ],
        ("Node", "spec.taints[]") => &["key", "value", "effect", "timeAdded"],
        ("Node", "status") => &[
            "capacity",
            "allocatable",
            "phase",
            "conditions",
            "addresses",
            "daemonEndpoints",
            "nodeInfo",
            "images",
            "volumesInUse",
            "volumesAttached",
            "config",
            "runtimeHandlers",
            "features",
        ],
        ("Node", "status.conditions[]") => &[
            "type",
            "status",
            "lastHeartbeatTime",
            "lastTransitionTime",
            "reason",
            "message",
        ],
        ("Node", "status.addresses[]") => &["type", "address"],
        ("Node", "status.nodeInfo") => &[
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
            "swap",
        ],
        ("Lease", "spec") => &[
            "holderIdentity",
            "leaseDurationSeconds",
            "acquireTime",
            "renewTime",
            "leaseTransitions",
            "strategy",
            "preferredHolder",
        ],
        ("Namespace", "status") => &["phase", "conditions"],
        ("SelfSubjectAccessReview", "spec.resourceAttributes") => &[
            "namespace",
            "verb",
            "group",
            "version",
            "resource",
            "subresource",
            "name",
        ],
        ("SelfSubjectAccessReview", "status") => {
            &["allowed", "denied", "reason", "evaluationError"]
        }
        ("APIResourceList", "resources[]") => &[
            "name",
            "singularName",
            "namespaced",
            "group",
            "version",
            "kind",
            "verbs",
            "shortNames",
            "categories",
            "storageVersionHash",
        ],
        ("APIGroupList", "groups[]") | ("APIGroup", "") => {
            &["kind", "apiVersion", "name", "versions", "preferredVersion"]
        }
        ("ServiceAccount", "") => &[
            "kind",
            "apiVersion",
            "metadata",
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        ("ClusterRole", "") | ("Role", "") => {
            &["kind", "apiVersion", "metadata", "rules", "aggregationRule"]
        }
        ("ClusterRole", "rules[]") | ("Role", "rules[]") => &[
            "verbs",
            "apiGroups",
            "resources",
            "resourceNames",
            "nonResourceURLs",
        ],
        ("ClusterRoleBinding", "") | ("RoleBinding", "") => {
            &["kind", "apiVersion", "metadata", "subjects", "roleRef"]
        }
        ("ClusterRoleBinding", "subjects[]") | ("RoleBinding", "subjects[]") => {
            &["kind", "apiGroup", "name", "namespace"]
        }
        ("ClusterRoleBinding", "roleRef") | ("RoleBinding", "roleRef") => {
            &["apiGroup", "kind", "name"]
        }
        ("Deployment", "spec") => &[
            "replicas",
            "selector",
            "template",
            "strategy",
            "minReadySeconds",
            "revisionHistoryLimit",
            "paused",
            "progressDeadlineSeconds",
        ],
        ("Deployment", "spec.strategy") => &["type", "rollingUpdate"],
        ("Deployment", "spec.strategy.rollingUpdate") => &["maxUnavailable", "maxSurge"],
        ("CustomResourceDefinition", "spec") => &[
            "group",
            "names",
            "scope",
            "versions",
            "conversion",
            "preserveUnknownFields",
        ],
        ("CustomResourceDefinition", "spec.names")
        | ("CustomResourceDefinition", "status.acceptedNames") => &[
            "plural",
            "singular",
            "shortNames",
            "kind",
            "listKind",
            "categories",
        ],
        ("CustomResourceDefinition", "spec.versions[]") => &[
            "name",
            "served",
            "storage",
            "deprecated",
            "deprecationWarning",
            "schema",
            "subresources",
            "additionalPrinterColumns",
            "selectableFields",
        ],
        ("CustomResourceDefinition", "status") => {
            &["conditions", "acceptedNames", "storedVersions"]
        }
        ("CustomResourceDefinition", "status.conditions[]") => {
            &["type", "status", "lastTransitionTime", "reason", "message"]
        }
        (_, "") => ROOT,
        _ => &[],
    }
}

/// How to lay keys out: Go struct order for built-in kinds, alphabetical for custom resources.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout<'a> {
    Go(&'a str),
    Alphabetical,
}

/// Encodes one value; `pretty` indents with two spaces like Go's `json.MarshalIndent`.
pub fn encode(v: &Value, layout: Layout<'_>, pretty: bool) -> String {
    let mut out = String::with_capacity(256);
    write(&mut out, v, layout, "", pretty, 0);
    out
}

/// A response body: compact with a trailing newline, or indented without one.
pub fn body(v: &Value, layout: Layout<'_>, pretty: bool) -> Vec<u8> {
    let mut s = encode(v, layout, pretty);
    if !pretty {
        s.push('\n');
    }
    s.into_bytes()
}

fn newline(out: &mut String, pretty: bool, depth: usize) {
    if pretty {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
}

/// Writes `v`; `layout` applies to the nested objects of a built-in kind.
pub fn write(
    out: &mut String,
    v: &Value,
    layout: Layout<'_>,
    path: &str,
    pretty: bool,
    depth: usize,
) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            let item_path = format!("{path}[]");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, pretty, depth + 1);
                write(out, item, layout, &item_path, pretty, depth + 1);
            }
            newline(out, pretty, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            let mut keys: Vec<&String> = map.keys().collect();
            if let Layout::Go(kind) = layout {
                let known = order(kind, path);
                keys.sort_by_key(|k| {
                    (
                        known.iter().position(|x| x == k).unwrap_or(usize::MAX),
                        k.as_str(),
                    )
                });
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, pretty, depth + 1);
                write_str(out, k);
                out.push(':');
                if pretty {
                    out.push(' ');
                }
                let child = if path.is_empty() {
                    (*k).clone()
                } else {
                    format!("{path}.{k}")
                };
                write(out, &map[k.as_str()], layout, &child, pretty, depth + 1);
            }
            newline(out, pretty, depth);
            out.push('}');
        }
    }
}

/// Go's `encoding/json` string escaping (HTML-safe).
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
