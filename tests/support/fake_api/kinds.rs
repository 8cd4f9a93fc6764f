//! What kube-apiserver's registry strategies do per kind on create and update (defaults the server
//! fills in, fields it drops, MicroTime decoding), apart from Services (see `services`).
//! Pure: no I/O.

use serde_json::{Value, json};

use super::clock;
use super::resources::ResourceDef;
use super::status::{self, ApiError};

/// Fills in the server-side defaults of a new object of a built-in kind.
pub fn defaults_on_create(res: &ResourceDef, obj: &mut Value) {
    match res.plural {
        "namespaces" => {
            let name = obj["metadata"]["name"].clone();
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        "nodes" => {
            // The TaintNodesByCondition admission plugin marks new nodes not ready.
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            let taint = json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"});
            match obj["spec"]["taints"].as_array_mut() {
                Some(t) if !t.iter().any(|x| x["key"] == taint["key"]) => t.push(taint),
                Some(_) => {}
                None => obj["spec"]["taints"] = json!([taint]),
            }
            if !obj["status"].is_object() {
                obj["status"] = json!({});
            }
            let st = &mut obj["status"];
            if st["daemonEndpoints"].is_null() {
                st["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": 0}});
            }
            if st["nodeInfo"].is_null() {
                st["nodeInfo"] = json!({
                    "machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                    "osImage": "", "containerRuntimeVersion": "", "kubeletVersion": "",
                    "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""
                });
            }
        }
        "events" => {
            for (k, v) in [
                ("eventTime", Value::Null),
                ("reportingComponent", json!("")),
                ("reportingInstance", json!("")),
            ] {
                if obj.get(k).is_none() {
                    obj[k] = v;
                }
            }
        }
        _ => {}
    }
}

/// Decodes a Lease's MicroTime fields as Go would: exactly six fractional digits, normalised to UTC.
pub fn check_lease_times(obj: &mut Value) -> Result<(), ApiError> {
    for field in ["acquireTime", "renewTime"] {
        let Some(s) = obj["spec"][field].as_str().map(str::to_string) else {
            continue;
        };
        match clock::parse_micro_time(&s) {
            Ok(utc) => obj["spec"][field] = json!(utc),
            Err(e) => {
                return Err(status::bad_request(&format!(
                    "Lease in version \"v1\" cannot be handled as a Lease: {e}"
                )));
            }
        }
    }
    Ok(())
}

/// Whether a CR write changed anything that bumps `metadata.generation`: everything but metadata,
/// and but status when status is a subresource.
pub fn generation_changes(res: &ResourceDef, old: &Value, new: &Value) -> bool {
    // Compared field by field, without copying either object (these can be large).
    let counts = |k: &str| k != "metadata" && !(res.status_subresource && k == "status");
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => {
            let differs = |a: &serde_json::Map<String, Value>,
                           b: &serde_json::Map<String, Value>| {
                a.iter().any(|(k, v)| counts(k) && b.get(k) != Some(v))
            };
            differs(o, n) || differs(n, o)
        }
        _ => old != new,
    }
}
