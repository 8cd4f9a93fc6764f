//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}` and the APIResourceLists,
//! shaped like kube-apiserver v1.36's. Pure: no I/O.

use serde_json::{Value, json};

use super::resources::{ALL, CRD_GROUP, ResourceDef};

/// `/version`: always indented, no trailing newline (as the real server writes it).
pub const VERSION: &str = "{\n  \"major\": \"1\",\n  \"minor\": \"36\",\n  \"emulationMajor\": \"1\",\n  \"emulationMinor\": \"36\",\n  \"minCompatibilityMajor\": \"1\",\n  \"minCompatibilityMinor\": \"35\",\n  \"gitVersion\": \"v1.36.2\",\n  \"gitCommit\": \"98b35193b2ac7a23a673325f5e9b830ecd5ba406\",\n  \"gitTreeState\": \"clean\",\n  \"buildDate\": \"2026-11-25T09:27:31Z\",\n  \"goVersion\": \"go1.26.6\",\n  \"compiler\": \"gc\",\n  \"platform\": \"linux/amd64\"\n}";

/// `/apis/lb.paperlb.com/v1alpha1` as captured, plus the `loadbalancerconfigs/status` entry that the
/// status subresource added to that CRD later gives (shaped like `loadbalancers/status`).
pub const PAPERLB_RESOURCES: &str = "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":\"lb.paperlb.com/v1alpha1\",\"resources\":[{\"name\":\"loadbalancers\",\"singularName\":\"loadbalancer\",\"namespaced\":true,\"kind\":\"LoadBalancer\",\"verbs\":[\"delete\",\"deletecollection\",\"get\",\"list\",\"patch\",\"create\",\"update\",\"watch\"],\"storageVersionHash\":\"f7Lw+QTAIqg=\"},{\"name\":\"loadbalancers/status\",\"singularName\":\"\",\"namespaced\":true,\"kind\":\"LoadBalancer\",\"verbs\":[\"get\",\"patch\",\"update\"]},{\"name\":\"loadbalancerconfigs\",\"singularName\":\"loadbalancerconfig\",\"namespaced\":true,\"kind\":\"LoadBalancerConfig\",\"verbs\":[\"delete\",\"deletecollection\",\"get\",\"list\",\"patch\",\"create\",\"update\",\"watch\"],\"storageVersionHash\":\"8GwHDbO2LHc=\"},{\"name\":\"loadbalancerconfigs/status\",\"singularName\":\"\",\"namespaced\":true,\"kind\":\"LoadBalancerConfig\",\"verbs\":[\"get\",\"patch\",\"update\"]}]}\n";

pub fn api_versions(server_address: &str) -> String {
    format!(
        "{{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],\"serverAddressByClientCIDRs\":[{{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"{server_address}\"}}]}}\n"
    )
}

fn groups(crds_installed: bool) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in ALL.iter().filter(|r| !r.group.is_empty()) {
        if (r.group != CRD_GROUP || crds_installed) && !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out.push(("authorization.k8s.io", "v1"));
    out
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn api_group_list(crds_installed: bool) -> Value {
    let groups: Vec<Value> = groups(crds_installed)
        .into_iter()
        .map(|(g, v)| group_json(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str, crds_installed: bool) -> Option<Value> {
    let (g, v) = groups(crds_installed)
        .into_iter()
        .find(|(g, _)| *g == group)?;
    let mut doc = group_json(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// The APIResourceList of a group version, with the resources `served` accepts.
pub fn resource_list(group: &str, version: &str, served: impl Fn(&ResourceDef) -> bool) -> Value {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for r in ALL
        .iter()
        .filter(|r| r.group == group && r.version == version && served(r))
    {
        resources.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": verbs
        }));
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]
            }));
        }
    }
    if group == "authorization.k8s.io" {
        resources.push(json!({
            "name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
            "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]
        }));
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}
