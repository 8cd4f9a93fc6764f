//! `paperlb check` verifies exactly the permissions `manifests/base/rbac.yaml` grants: nothing the
//! controller needs is left ungranted, and nothing is granted that the controller does not use.

use std::collections::BTreeSet;

use paperlb::check::permissions;
use serde_json::Value;

use crate::{objects, str_at};

const RBAC: &str = "manifests/base/rbac.yaml";

/// (group, resource, subresource, verb, namespaced)
type Grant = (String, String, String, String, bool);

fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{RBAC}: {what} is not a list"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("{RBAC}: {what}: {s}"))
                .to_string()
        })
        .collect()
}

/// Every rule of the ClusterRole (namespaced = false) and the Role (true), one verb at a time.
fn granted() -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for o in objects(RBAC) {
        let namespaced = match str_at(&o, &["kind"]) {
            "ClusterRole" => false,
            "Role" => true,
            _ => continue,
        };
        for rule in o["rules"].as_array().expect("rules") {
            assert!(
                rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null(),
                "{RBAC}: resourceNames/nonResourceURLs are not modelled by paperlb check"
            );
            for group in strings(&rule["apiGroups"], "apiGroups") {
                for resource in strings(&rule["resources"], "resources") {
                    let (resource, sub) = resource.split_once('/').unwrap_or((&resource, ""));
                    for verb in strings(&rule["verbs"], "verbs") {
                        assert!(
                            group != "*" && resource != "*" && verb != "*",
                            "{RBAC}: no wildcards in a least-privilege role"
                        );
                        let grant = (
                            group.clone(),
                            resource.to_string(),
                            sub.to_string(),
                            verb,
                            namespaced,
                        );
                        assert!(out.insert(grant.clone()), "{RBAC}: {grant:?} granted twice");
                    }
                }
            }
        }
    }
    out
}

fn checked() -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for p in permissions() {
        let grant = (
            p.group.to_string(),
            p.resource.to_string(),
            p.subresource.to_string(),
            p.verb.to_string(),
            p.namespaced,
        );
        assert!(
            out.insert(grant.clone()),
            "permissions() lists {grant:?} twice"
        );
    }
    out
}

#[test]
fn check_permissions_equal_what_rbac_grants() {
    let granted = granted();
    let checked = checked();
    let not_checked: Vec<_> = granted.difference(&checked).collect();
    let not_granted: Vec<_> = checked.difference(&granted).collect();
    assert!(
        not_checked.is_empty() && not_granted.is_empty(),
        "granted in {RBAC} but not in paperlb::check::permissions(): {not_checked:?}\n\
         in permissions() but not granted by {RBAC}: {not_granted:?}"
    );
}

#[test]
fn bindings_give_the_roles_to_the_controller_service_account() {
    let sa = crate::object("manifests/base/serviceaccount.yaml", "ServiceAccount");
    let subject = (
        str_at(&sa, &["metadata", "name"]).to_string(),
        str_at(&sa, &["metadata", "namespace"]).to_string(),
    );
    let objs = objects(RBAC);
    for (binding, role) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let b = objs.iter().find(|o| o["kind"] == binding).expect(binding);
        let r = objs.iter().find(|o| o["kind"] == role).expect(role);
        assert_eq!(b["roleRef"]["kind"], role);
        assert_eq!(b["roleRef"]["name"], r["metadata"]["name"]);
        assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        let subjects = b["subjects"].as_array().expect("subjects");
        assert_eq!(subjects.len(), 1, "{binding}: only the controller");
        assert_eq!(subjects[0]["kind"], "ServiceAccount");
        assert_eq!(
            (
                str_at(&subjects[0], &["name"]).to_string(),
                str_at(&subjects[0], &["namespace"]).to_string()
            ),
            subject
        );
        if role == "Role" {
            // The Role grants configs and the Lease in the controller's namespace only.
            assert_eq!(r["metadata"]["namespace"], sa["metadata"]["namespace"]);
            assert_eq!(b["metadata"]["namespace"], sa["metadata"]["namespace"]);
        }
    }
}
