//! What kube-apiserver's registry strategies do per kind on create and update (defaults the server
//! fills in, fields it drops, MicroTime decoding, CustomResourceDefinition names), apart from
//! Services (see `services`).
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
        "deployments" => {
            // apps/v1 SetDefaults_Deployment (the pod template's defaults are not filled in).
            if !obj["spec"].is_object() {
                obj["spec"] = json!({});
            }
            let spec = &mut obj["spec"];
            for (k, v) in [
                ("replicas", json!(1)),
                (
                    "strategy",
                    json!({"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                ),
                ("revisionHistoryLimit", json!(10)),
                ("progressDeadlineSeconds", json!(600)),
            ] {
                if spec.get(k).is_none() {
                    spec[k] = v;
                }
            }
            obj["status"] = json!({});
        }
        "secrets" => {
            // core/v1 SetDefaults_Secret, and the registry folding write-only stringData into data.
            if obj.get("type").is_none_or(|t| t.is_null() || t == "") {
                obj["type"] = json!("Opaque");
            }
            if let Some(Value::Object(plain)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                use base64::Engine as _;
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in plain {
                    let text = v.as_str().unwrap_or_default().to_string();
                    obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                }
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

/// Checks and defaults a new CustomResourceDefinition as apiextensions' strategy does: the name must
/// be `<spec.names.plural>.<spec.group>`, `names.singular` and `names.listKind` are derived, the
/// conversion strategy defaults to `None`, and status starts with no accepted names and the storage
/// version stored. (`established` sets what the naming and establishing controllers add.)
/// Schemas are stored as sent: no structural-schema validation.
pub fn prepare_crd(res: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let group = obj["spec"]["group"].as_str().unwrap_or("").to_string();
    let plural = obj["spec"]["names"]["plural"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let kind = obj["spec"]["names"]["kind"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut causes = Vec::new();
    if name != format!("{plural}.{group}") {
        causes.push(status::Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if kind.is_empty() {
        causes.push(status::Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    let storage: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    if storage.len() != 1 {
        causes.push(status::Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): must have exactly one version marked as storage version",
        ));
    }
    if !causes.is_empty() {
        return Err(status::invalid_kind(res, &name, &causes));
    }
    let names = &mut obj["spec"]["names"];
    if names.get("singular").is_none() {
        names["singular"] = json!(kind.to_lowercase());
    }
    if names.get("listKind").is_none() {
        names["listKind"] = json!(format!("{kind}List"));
    }
    if obj["spec"].get("conversion").is_none() {
        obj["spec"]["conversion"] = json!({"strategy": "None"});
    }
    obj["status"] = json!({
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": storage,
    });
    Ok(())
}

/// The status the naming and establishing controllers give a CRD whose names do not conflict:
/// accepted names are the spec's, NamesAccepted and Established are True.
pub fn established(crd: &Value) -> Value {
    let now = clock::rfc3339_now();
    let mut status = crd["status"].clone();
    status["acceptedNames"] = crd["spec"]["names"].clone();
    status["conditions"] = json!([
        {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now,
         "reason": "NoConflicts", "message": "no conflicts found"},
        {"type": "Established", "status": "True", "lastTransitionTime": now,
         "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
    ]);
    status
}
