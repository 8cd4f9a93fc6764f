//! The resources the fake serves and how a request path maps onto them. Pure: no I/O.

/// One served resource (a built-in kind or one of our CRDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Served from a CustomResourceDefinition: alphabetical JSON, `generation`, Status on delete.
    pub custom: bool,
    pub status_subresource: bool,
    /// PUT without `metadata.resourceVersion` is allowed (Services, Nodes, ...; not Leases or CRs).
    pub unconditional_update: bool,
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `services`, `loadbalancers.lb.paperlb.com`: how messages name the resource.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Whether objects carry `metadata.generation` (1 at create, +1 per spec change): custom
    /// resources and the built-ins with a spec that we serve (Services and Nodes do not have one).
    pub fn has_generation(&self) -> bool {
        self.custom
            || matches!(
                self.plural,
                "deployments" | "daemonsets" | "customresourcedefinitions"
            )
    }
}

/// The name a CustomResourceDefinition for `res` must have: `<plural>.<group>`.
pub fn crd_name(res: &ResourceDef) -> String {
    format!("{}.{}", res.plural, res.group)
}

// A table row constructor: positional arguments read best next to each other below.
#[allow(clippy::too_many_arguments)]
const fn builtin(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    status_subresource: bool,
    unconditional_update: bool,
) -> ResourceDef {
    ResourceDef {
        group,
        version,
        plural,
        singular,
        kind,
        namespaced,
        custom: false,
        status_subresource,
        unconditional_update,
    }
}

pub const SERVICES: ResourceDef =
    builtin("", "v1", "services", "service", "Service", true, true, true);
pub const NODES: ResourceDef = builtin("", "v1", "nodes", "node", "Node", false, true, true);
pub const EVENTS: ResourceDef = builtin("", "v1", "events", "event", "Event", true, false, true);
pub const NAMESPACES: ResourceDef = builtin(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    false,
    true,
    true,
);
pub const ENDPOINTSLICES: ResourceDef = builtin(
    "discovery.k8s.io",
    "v1",
    "endpointslices",
    "endpointslice",
    "EndpointSlice",
    true,
    false,
    true,
);
pub const LEASES: ResourceDef = builtin(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    true,
    false,
    false,
);
pub const LOADBALANCERS: ResourceDef = ResourceDef {
    group: "lb.paperlb.com",
    version: "v1alpha1",
    plural: "loadbalancers",
    singular: "loadbalancer",
    kind: "LoadBalancer",
    namespaced: true,
    custom: true,
    status_subresource: true,
    unconditional_update: false,
};
pub const LOADBALANCERCONFIGS: ResourceDef = ResourceDef {
    group: "lb.paperlb.com",
    version: "v1alpha1",
    plural: "loadbalancerconfigs",
    singular: "loadbalancerconfig",
    kind: "LoadBalancerConfig",
    namespaced: true,
    custom: true,
    status_subresource: true,
    unconditional_update: false,
};

// What `kubectl apply -f manifests/paperlb.yaml` creates: generic storage, each with the real
// server's scope, status subresource and unconditional-update rule.
pub const SERVICEACCOUNTS: ResourceDef = builtin(
    "",
    "v1",
    "serviceaccounts",
    "serviceaccount",
    "ServiceAccount",
    true,
    false,
    true,
);
pub const CUSTOMRESOURCEDEFINITIONS: ResourceDef = builtin(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "customresourcedefinition",
    "CustomResourceDefinition",
    false,
    true,
    // apiextensions' CRD strategy: AllowUnconditionalUpdate() is false.
    false,
);
pub const CLUSTERROLES: ResourceDef = builtin(
    "rbac.authorization.k8s.io",
    "v1",
    "clusterroles",
    "clusterrole",
    "ClusterRole",
    false,
    false,
    true,
);
pub const CLUSTERROLEBINDINGS: ResourceDef = builtin(
    "rbac.authorization.k8s.io",
    "v1",
    "clusterrolebindings",
    "clusterrolebinding",
    "ClusterRoleBinding",
    false,
    false,
    true,
);
pub const ROLES: ResourceDef = builtin(
    "rbac.authorization.k8s.io",
    "v1",
    "roles",
    "role",
    "Role",
    true,
    false,
    true,
);
pub const ROLEBINDINGS: ResourceDef = builtin(
    "rbac.authorization.k8s.io",
    "v1",
    "rolebindings",
    "rolebinding",
    "RoleBinding",
    true,
    false,
    true,
);
pub const DEPLOYMENTS: ResourceDef = builtin(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
    true,
    true,
);

// Read by `paperlb explain`: a config's updater Secrets, and k3s ServiceLB's DaemonSets.
pub const SECRETS: ResourceDef =
    builtin("", "v1", "secrets", "secret", "Secret", true, false, true);
pub const DAEMONSETS: ResourceDef = builtin(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    true,
    true,
    true,
);

pub const ALL: [ResourceDef; 17] = [
    SERVICES,
    NODES,
    EVENTS,
    NAMESPACES,
    ENDPOINTSLICES,
    LEASES,
    LOADBALANCERS,
    LOADBALANCERCONFIGS,
    SERVICEACCOUNTS,
    CUSTOMRESOURCEDEFINITIONS,
    CLUSTERROLES,
    CLUSTERROLEBINDINGS,
    ROLES,
    ROLEBINDINGS,
    DEPLOYMENTS,
    SECRETS,
    DAEMONSETS,
];

pub const CRD_GROUP: &str = "lb.paperlb.com";

/// Looks a resource up by plural name (unique among what we serve).
pub fn by_plural(plural: &str) -> Option<ResourceDef> {
    ALL.iter().copied().find(|r| r.plural == plural)
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    ApiVersions,
    ApiGroups,
    /// `/api/v1` or `/apis/{group}/{version}`.
    GroupVersion {
        group: String,
        version: String,
    },
    /// `/apis/{group}`.
    Group {
        group: String,
    },
    AccessReview,
    Object(ObjectRoute),
    /// Unknown path in the core group: JSON 404.
    UnknownCore,
    /// Unknown group, version or resource: text/plain 404.
    Unknown,
}

/// A resource path: collection (`name` empty) or object, maybe a subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRoute {
    pub res: ResourceDef,
    /// Empty for cluster-scoped resources and all-namespace collections.
    pub namespace: String,
    pub name: String,
    pub subresource: Option<String>,
}

/// Maps a path (without query) to a route; `crds_installed` decides whether our group exists.
pub fn route(path: &str, crds_installed: bool) -> Route {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz"] | ["livez"] | ["readyz"] => return Route::Health,
        ["api"] => return Route::ApiVersions,
        ["apis"] => return Route::ApiGroups,
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] => {
            return Route::AccessReview;
        }
        _ => {}
    }
    let (group, version, rest, core) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest, true),
        ["api", ..] => return Route::UnknownCore,
        ["apis", group, version, rest @ ..] => (*group, *version, rest, false),
        ["apis", group] => {
            return if group_known(group, crds_installed) {
                Route::Group {
                    group: group.to_string(),
                }
            } else {
                Route::Unknown
            };
        }
        _ => return Route::Unknown,
    };
    let known_gv = ALL
        .iter()
        .any(|r| r.group == group && r.version == version && (!r.custom || crds_installed))
        || (group == "authorization.k8s.io" && version == "v1");
    if !known_gv {
        return Route::Unknown;
    }
    let unknown = if core {
        Route::UnknownCore
    } else {
        Route::Unknown
    };
    if rest.is_empty() {
        return Route::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        };
    }
    let find = |plural: &str| {
        ALL.iter()
            .copied()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    };
    // `namespaces/{ns}` and `namespaces/{ns}/status` address Namespace objects themselves.
    let (namespace, tail): (&str, &[&str]) = match rest {
        ["namespaces", ns, "status"] if core => {
            return Route::Object(ObjectRoute {
                res: NAMESPACES,
                namespace: String::new(),
                name: ns.to_string(),
                subresource: Some("status".into()),
            });
        }
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (*ns, tail),
        other => ("", other),
    };
    let Some(res) = tail.first().and_then(|p| find(p)) else {
        return unknown;
    };
    if !namespace.is_empty() && !res.namespaced {
        return unknown;
    }
    let (name, sub) = match &tail[1..] {
        [] => ("", None),
        [name] => (*name, None),
        [name, "status"] if res.status_subresource => (*name, Some("status".to_string())),
        _ => return unknown,
    };
    if res.namespaced && namespace.is_empty() && !name.is_empty() {
        return unknown;
    }
    Route::Object(ObjectRoute {
        res,
        namespace: namespace.to_string(),
        name: name.to_string(),
        subresource: sub,
    })
}

fn group_known(group: &str, crds_installed: bool) -> bool {
    ALL.iter()
        .any(|r| r.group == group && !r.group.is_empty() && (!r.custom || crds_installed))
        || group == "authorization.k8s.io"
}

/// Decodes `%XX` escapes and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits `a=1&b=2` into decoded pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}
