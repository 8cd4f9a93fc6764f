//! The CRDs serve `lb.paperlb.com/v1alpha1` with structural schemas, a status subresource, and the
//! printer columns users see in `kubectl get lb`.

use serde_json::Value;

use crate::{manifest_files, object, str_at};

const GROUP: &str = "lb.paperlb.com";

fn crds() -> Vec<(String, Value)> {
    let files: Vec<String> = manifest_files()
        .into_iter()
        .filter(|f| f.starts_with("manifests/crds/"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    files
        .into_iter()
        .map(|f| {
            let crd = object(&f, "CustomResourceDefinition");
            (f, crd)
        })
        .collect()
}

fn crd_of(kind: &str) -> Value {
    crds()
        .into_iter()
        .map(|(_, c)| c)
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

fn version(crd: &Value) -> &Value {
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .expect("version v1alpha1")
}

/// Every place where `node` breaks the structural-schema rules the apiserver enforces that we can check
/// without it: a type on every node (unless int-or-string or preserve-unknown-fields), `type: object`
/// wherever `properties` is, and no `additionalProperties` beside `properties`.
fn structural_problems(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        out.push(format!("{path}: not a map"));
        return;
    };
    let loose = node["x-kubernetes-int-or-string"] == true
        || node["x-kubernetes-preserve-unknown-fields"] == true;
    if node["type"].is_null() && !loose {
        out.push(format!("{path}: no type"));
    }
    if map.contains_key("properties") {
        if node["type"] != "object" {
            out.push(format!("{path}: has properties but type {}", node["type"]));
        }
        if map.contains_key("additionalProperties") {
            out.push(format!("{path}: additionalProperties beside properties"));
        }
    }
    for (name, child) in node["properties"].as_object().into_iter().flatten() {
        structural_problems(child, &format!("{path}.{name}"), out);
    }
    if node["items"].is_object() {
        structural_problems(&node["items"], &format!("{path}[]"), out);
    }
    if node["additionalProperties"].is_object() {
        structural_problems(&node["additionalProperties"], &format!("{path}{{*}}"), out);
    }
    if node["type"] == "array" && !node["items"].is_object() {
        out.push(format!("{path}: array without items"));
    }
}

#[test]
fn crds_serve_v1alpha1_of_lb_paperlb_com_as_the_storage_version() {
    for (f, crd) in crds() {
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1", "{f}");
        assert_eq!(str_at(&crd, &["spec", "group"]), GROUP, "{f}");
        assert_eq!(crd["spec"]["scope"], "Namespaced", "{f}");
        let plural = str_at(&crd, &["spec", "names", "plural"]);
        assert_eq!(
            str_at(&crd, &["metadata", "name"]),
            format!("{plural}.{GROUP}"),
            "{f}: the name must be <plural>.<group>"
        );
        let versions = crd["spec"]["versions"].as_array().unwrap();
        let storage = versions.iter().filter(|v| v["storage"] == true).count();
        assert_eq!(storage, 1, "{f}: exactly one storage version");
        let v = version(&crd);
        assert_eq!(v["served"], true, "{f}");
        assert_eq!(v["storage"], true, "{f}");
    }
}

#[test]
fn crd_schemas_are_structural() {
    for (f, crd) in crds() {
        let schema = &version(&crd)["schema"]["openAPIV3Schema"];
        assert_eq!(schema["type"], "object", "{f}");
        let mut problems = Vec::new();
        structural_problems(schema, "openAPIV3Schema", &mut problems);
        assert_eq!(problems, Vec::<String>::new(), "{f}");
        for field in ["spec", "status"] {
            // The Go controller's config has no status; ours does not need one either.
            if field == "status" && crd["spec"]["names"]["kind"] != "LoadBalancer" {
                continue;
            }
            assert_eq!(
                schema["properties"][field]["type"], "object",
                "{f}: {field}"
            );
        }
    }
}

#[test]
fn structural_check_rejects_untyped_and_mixed_nodes() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"properties": {"x": {"type": "string"}}},
            "b": {"type": "object", "properties": {}, "additionalProperties": true},
            "c": {"description": "no type"},
            "d": {"type": "array"},
            "e": {"x-kubernetes-int-or-string": true},
        }
    });
    let mut problems = Vec::new();
    structural_problems(&bad, "s", &mut problems);
    assert_eq!(
        problems,
        [
            "s.a: no type",
            "s.a: has properties but type null",
            "s.b: additionalProperties beside properties",
            "s.c: no type",
            "s.d: array without items",
        ]
    );
}

#[test]
fn load_balancer_has_a_status_subresource_and_its_printer_columns() {
    let crd = crd_of("LoadBalancer");
    let v = version(&crd);
    assert!(
        v["subresources"]["status"].is_object(),
        "status subresource"
    );
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "HOST",
            "PORT",
            "PROTOCOL",
            "TARGETCOUNT",
            "STATUS",
            "HOSTS",
            "HEALTHY",
            "AGE"
        ]
    );
    // Every column shows a field the schema has (a typo shows an empty column, silently).
    let schema = &v["schema"]["openAPIV3Schema"];
    for c in v["additionalPrinterColumns"].as_array().unwrap() {
        let path = c["jsonPath"].as_str().unwrap();
        if path == ".metadata.creationTimestamp" {
            assert_eq!(c["type"], "date");
            continue;
        }
        let node = path
            .trim_start_matches('.')
            .split('.')
            .fold(schema, |n, k| &n["properties"][k]);
        assert!(
            node.is_object(),
            "column {}: {path} is not in the schema",
            c["name"]
        );
        let want = match node["type"].as_str() {
            Some("integer") => "integer",
            _ => "string",
        };
        assert_eq!(c["type"], want, "column {}", c["name"]);
    }
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["plb"])
    );
}

#[test]
fn status_subresource_exists_wherever_the_schema_has_a_status() {
    // The controller patches status through /status; without the subresource those patches 404.
    for (f, crd) in crds() {
        let v = version(&crd);
        if v["schema"]["openAPIV3Schema"]["properties"]["status"].is_object() {
            assert!(v["subresources"]["status"].is_object(), "{f}");
        }
    }
}

/// Every proxy timeout field under `node`, as (path, minimum, maximum).
fn timeout_bounds(node: &Value, path: &str, out: &mut Vec<(String, Value, Value)>) {
    for (name, child) in node["properties"].as_object().into_iter().flatten() {
        let at = format!("{path}.{name}");
        if name.starts_with("proxy") && name.ends_with("TimeoutSeconds") {
            out.push((
                at.clone(),
                child["minimum"].clone(),
                child["maximum"].clone(),
            ));
        }
        timeout_bounds(child, &at, out);
    }
}

/// `targetAddressTypes` has no schema default: the apiserver would write it into every config, and
/// the controller's `--address-type` (for configs that leave the field out) would never apply.
#[test]
fn target_address_types_are_left_to_the_controller_when_unset() {
    let crd = crd_of("LoadBalancerConfig");
    let spec = &version(&crd)["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let field = &spec["properties"]["targetAddressTypes"];
    assert_eq!(field["type"], "array", "{field}");
    assert!(field.get("default").is_none(), "{field}");
}

#[test]
fn crd_proxy_timeouts_stop_where_the_updater_does() {
    // A bound above the updater's accepts a value that every push then fails with a 400.
    let max = paperlb::updater::validate::MAX_TIMEOUT_SECONDS;
    let mut found = Vec::new();
    for (_, crd) in crds() {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        timeout_bounds(
            &version(&crd)["schema"]["openAPIV3Schema"],
            &kind,
            &mut found,
        );
    }
    let paths: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "LoadBalancerConfig.spec.proxyConnectTimeoutSeconds",
            "LoadBalancerConfig.spec.proxyTimeoutSeconds",
            "LoadBalancer.spec.proxyConnectTimeoutSeconds",
            "LoadBalancer.spec.proxyTimeoutSeconds",
        ]
    );
    for (path, min, high) in &found {
        assert_eq!(
            (min, high),
            (&serde_json::json!(0), &serde_json::json!(max)),
            "{path}"
        );
    }
}
