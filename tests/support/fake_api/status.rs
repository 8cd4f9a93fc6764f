//! `metav1.Status` answers, worded as kube-apiserver words them (messages, reasons, `details.kind`
//! being the resource in 404/409 but the Kind in validation 422s). Pure: no I/O.

use serde_json::{Map, Value, json};

use super::json::{self, Layout};
use super::resources::ResourceDef;

/// An error answer: HTTP code plus the body and the extra headers that go with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    /// A `Status` object, or `None` for the text/plain `404 page not found`.
    pub status: Option<Value>,
    /// Extra response headers such as `Retry-After` or `X-Content-Type-Options`.
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    /// The reason (`NotFound`, `Conflict`, ...), empty for the text/plain 404.
    pub fn reason(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s["reason"].as_str())
            .unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s["message"].as_str())
            .unwrap_or("404 page not found")
    }

    /// Response body bytes (`Status` JSON ending in `\n`, or the plain-text 404).
    pub fn body(&self, pretty: bool) -> Vec<u8> {
        match &self.status {
            Some(s) => json::body(s, Layout::Go("Status"), pretty),
            None => b"404 page not found\n".to_vec(),
        }
    }

    pub fn content_type(&self) -> &'static str {
        if self.status.is_some() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }
    }

    fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason(), self.message())
    }
}

impl std::error::Error for ApiError {}

/// A Status object in Go field order (the encoder sorts, so plain `json!` is fine).
pub fn status_value(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Status"));
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), json!("Failure"));
    m.insert("message".into(), json!(message));
    if !reason.is_empty() {
        m.insert("reason".into(), json!(reason));
    }
    if let Some(d) = details {
        m.insert("details".into(), d);
    }
    m.insert("code".into(), json!(code));
    Value::Object(m)
}

pub fn error(code: u16, reason: &str, message: &str, details: Option<Value>) -> ApiError {
    ApiError {
        code,
        status: Some(status_value(code, reason, message, details)),
        headers: Vec::new(),
    }
}

/// `details` with name (if any), group (if not core) and the resource or Kind.
pub fn details(name: &str, group: &str, kind: &str) -> Value {
    let mut d = Map::new();
    if !name.is_empty() {
        d.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        d.insert("group".into(), json!(group));
    }
    d.insert("kind".into(), json!(kind));
    Value::Object(d)
}

pub fn not_found(res: &ResourceDef, name: &str) -> ApiError {
    error(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", res.qualified()),
        Some(details(name, res.group, res.plural)),
    )
}

pub fn namespace_not_found(ns: &str) -> ApiError {
    error(
        404,
        "NotFound",
        &format!("namespaces \"{ns}\" not found"),
        Some(details(ns, "", "namespaces")),
    )
}

/// A create in a namespace being deleted (NamespaceLifecycle admission).
pub fn namespace_terminating(res: &ResourceDef, name: &str, ns: &str) -> ApiError {
    error(
        403,
        "Forbidden",
        &format!(
            "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            res.qualified()
        ),
        Some(details(name, res.group, res.plural)),
    )
}

pub fn already_exists(res: &ResourceDef, name: &str) -> ApiError {
    error(
        409,
        "AlreadyExists",
        &format!("{} \"{name}\" already exists", res.qualified()),
        Some(details(name, res.group, res.plural)),
    )
}

pub fn conflict(res: &ResourceDef, name: &str, why: &str) -> ApiError {
    error(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            res.qualified()
        ),
        Some(details(name, res.group, res.plural)),
    )
}

pub const STALE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

pub fn bad_request(message: &str) -> ApiError {
    error(400, "BadRequest", message, None)
}

pub fn unauthorized() -> ApiError {
    error(401, "Unauthorized", "Unauthorized", None)
}

/// One validation failure (`causes[]` entry).
#[derive(Debug, Clone)]
pub struct Cause {
    pub reason: &'static str,
    /// The message without the field prefix, e.g. `Invalid value: 0: must be ...`.
    pub message: String,
    pub field: String,
}

impl Cause {
    pub fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason,
            message: message.into(),
            field: field.into(),
        }
    }
}

/// 422 Invalid. `kind` is the Kind for validation errors (`Service`, `LoadBalancer`) and the
/// resource for the missing-resourceVersion error (`leases`); `qualified` is what leads the message
/// (`Service`, `LoadBalancer.lb.paperlb.com`, `leases.coordination.k8s.io`).
pub fn invalid(qualified: &str, group: &str, kind: &str, name: &str, causes: &[Cause]) -> ApiError {
    // The message lists each distinct cause once (Go's aggregate dedupes); `causes` keeps all.
    let mut parts: Vec<String> = Vec::new();
    for c in causes {
        let p = format!("{}: {}", c.field, c.message);
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
    let joined = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    let mut d = match details(name, group, kind) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    d.insert(
        "causes".into(),
        Value::Array(
            causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect(),
        ),
    );
    error(
        422,
        "Invalid",
        &format!("{qualified} \"{name}\" is invalid: {joined}"),
        Some(Value::Object(d)),
    )
}

/// A validation 422 for an object of `res`, naming its Kind.
pub fn invalid_kind(res: &ResourceDef, name: &str, causes: &[Cause]) -> ApiError {
    let qualified = if res.group.is_empty() {
        res.kind.to_string()
    } else {
        format!("{}.{}", res.kind, res.group)
    };
    invalid(&qualified, res.group, res.kind, name, causes)
}

pub fn rv_required(res: &ResourceDef, name: &str) -> ApiError {
    invalid(
        &res.qualified(),
        res.group,
        res.plural,
        name,
        &[Cause::new(
            "FieldValueInvalid",
            "metadata.resourceVersion",
            "Invalid value: 0: must be specified for an update",
        )],
    )
}

/// The text/plain 404 of an unknown group, version or CRD resource.
pub fn page_not_found() -> ApiError {
    ApiError {
        code: 404,
        status: None,
        headers: vec![("X-Content-Type-Options".into(), "nosniff".into())],
    }
}

/// JSON 404 of an unknown resource in the core group.
pub fn unknown_core_resource() -> ApiError {
    error(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

pub fn method_not_allowed() -> ApiError {
    error(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

pub fn unsupported_patch(builtin: bool) -> ApiError {
    let types = if builtin {
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    };
    error(
        415,
        "UnsupportedMediaType",
        &format!(
            "the body of the request was in an unknown format - accepted media types include: {types}"
        ),
        None,
    )
}

pub fn forbidden(
    res: Option<&ResourceDef>,
    subresource: Option<&str>,
    name: &str,
    namespace: &str,
    user: &str,
    verb: &str,
    path: &str,
) -> ApiError {
    let msg;
    let det;
    match res {
        Some(res) => {
            let resource = match subresource {
                Some(s) => format!("{}/{s}", res.plural),
                None => res.plural.to_string(),
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{namespace}\"")
            };
            let subject = if name.is_empty() {
                res.qualified()
            } else {
                format!("{} \"{name}\"", res.qualified())
            };
            msg = format!(
                "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{}\" {scope}",
                res.group
            );
            det = Some(details(name, res.group, res.plural));
        }
        None => {
            msg = format!("forbidden: User \"{user}\" cannot {verb} path \"{path}\"");
            det = Some(json!({}));
        }
    }
    error(403, "Forbidden", &msg, det).with_header("X-Content-Type-Options", "nosniff")
}

pub fn expired_watch(message: &str) -> Value {
    status_value(410, "Expired", message, None)
}

pub fn list_rv_expired() -> ApiError {
    error(
        410,
        "Expired",
        "The resourceVersion for the provided list is too old.",
        None,
    )
}

pub fn continue_expired(new_token: &str) -> ApiError {
    let mut e = error(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        None,
    );
    if let Some(Value::Object(m)) = &mut e.status {
        m.insert("metadata".into(), json!({ "continue": new_token }));
    }
    e
}

pub fn rv_too_large(asked: u64, current: u64) -> ApiError {
    error(
        504,
        "Timeout",
        &format!("Timeout: Too large resource version: {asked}, current: {current}"),
        Some(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1
        })),
    )
    .with_header("Retry-After", "1")
}

pub fn internal(message: &str) -> ApiError {
    error(
        500,
        "InternalError",
        &format!("Internal error occurred: {message}"),
        Some(json!({"causes": [{"message": message}]})),
    )
}

pub fn too_many_requests(retry_after: u32) -> ApiError {
    error(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        Some(json!({ "retryAfterSeconds": retry_after })),
    )
    .with_header("Retry-After", &retry_after.to_string())
}

pub fn service_unavailable() -> ApiError {
    error(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
        None,
    )
}

pub fn request_too_large(limit: usize) -> ApiError {
    error(
        413,
        "RequestEntityTooLarge",
        &format!("Request entity too large: limit is {limit}"),
        None,
    )
}

/// The `Status` a CR delete without finalizers answers with.
pub fn delete_success(res: &ResourceDef, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": res.group, "kind": res.plural, "uid": uid}
    })
}
