//! Request handling: authentication, injected faults, authorization, routing and the verbs.
//! Produces a `Reply`; the connection code writes it. Runs under the state lock except for
//! watches, whose plan is made here and streamed later.

use std::time::Duration;

use serde_json::{Value, json};

use super::discovery;
use super::faults::{self, FaultKind};
use super::http::Request;
use super::json::{self, Layout};
use super::resources::{self, ObjectRoute, Route, parse_query};
use super::selectors::{FieldSelector, LabelSelector};
use super::state::{ListOptions, RequestRecord, State};
use super::status::{self, ApiError};
use super::watch::{self, WatchPlan};

pub const ANONYMOUS: &str = "system:anonymous";

/// What to send back.
pub enum Reply {
    Full {
        code: u16,
        content_type: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Watch(Box<WatchPlan>),
    /// Close the connection without a word.
    Drop,
}

impl Reply {
    fn error(e: &ApiError, pretty: bool) -> Reply {
        Reply::Full {
            code: e.code,
            content_type: e.content_type().into(),
            headers: e.headers.clone(),
            body: e.body(pretty),
        }
    }

    fn json(code: u16, v: &Value, layout: Layout<'_>, pretty: bool) -> Reply {
        Reply::Full {
            code,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: json::body(v, layout, pretty),
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Reply::Full { code, .. } => *code,
            Reply::Watch(_) => 200,
            Reply::Drop => 0,
        }
    }
}

/// Who is asking: `Err` means the credentials were bad (401).
pub fn authenticate(state: &State, req: &Request, cert_user: Option<&str>) -> Result<String, ()> {
    if let Some(auth) = req.header("Authorization") {
        let token = auth.strip_prefix("Bearer ").map(str::trim).ok_or(())?;
        return state.tokens.get(token).cloned().ok_or(());
    }
    Ok(cert_user.unwrap_or(ANONYMOUS).to_string())
}

fn pretty(req: &Request, query: &[(String, String)]) -> bool {
    match query
        .iter()
        .find(|(k, _)| k == "pretty")
        .map(|(_, v)| v.as_str())
    {
        Some("true") | Some("1") => return true,
        Some(_) => return false,
        None => {}
    }
    let ua = req.header("User-Agent").unwrap_or("");
    ["curl", "Wget", "Mozilla/5.0"]
        .iter()
        .any(|p| ua.starts_with(p))
}

fn q<'a>(query: &'a [(String, String)], key: &str) -> &'a str {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn is_watch(query: &[(String, String)]) -> bool {
    matches!(q(query, "watch"), "1" | "true")
}

/// The RBAC verb of a request on a resource route.
fn verb_of(method: &str, route: &ObjectRoute, watch: bool) -> &'static str {
    match (method, route.name.is_empty()) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "list",
        ("GET", false) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "deletecollection",
        ("DELETE", false) => "delete",
        _ => "unknown",
    }
}

/// Takes any fault for this request (so the caller can stall outside the lock).
pub fn take_fault(state: &mut State, req: &Request) -> Option<FaultKind> {
    let query = parse_query(&req.query);
    faults::take(
        &mut state.faults,
        &req.method,
        &req.target,
        is_watch(&query),
    )
}

/// Handles one request; `fault` is what `take_fault` returned.
pub fn handle(
    state: &mut State,
    req: &Request,
    user: Result<String, ()>,
    fault: Option<FaultKind>,
    cfg: &super::server::Config,
) -> Reply {
    let reply = dispatch(state, req, &user, fault, cfg);
    state.requests.push(RequestRecord {
        method: req.method.clone(),
        path: req.target.clone(),
        content_type: req.header("Content-Type").map(str::to_string),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        user: user.clone().unwrap_or_default(),
        status: reply.code(),
    });
    log::debug!(
        "fake-apiserver: {} {} as {} -> {}",
        req.method,
        req.target,
        user.as_deref().unwrap_or("<bad credentials>"),
        reply.code()
    );
    reply
}

fn dispatch(
    state: &mut State,
    req: &Request,
    user: &Result<String, ()>,
    fault: Option<FaultKind>,
    cfg: &super::server::Config,
) -> Reply {
    let query = parse_query(&req.query);
    let pretty = pretty(req, &query);
    let route = match resources::route(&req.path, state.paperlb_group_served()) {
        // A CR whose CRD is not (yet) stored: unknown resource in a served group.
        Route::Object(o) if !state.crd_served(&o.res) => Route::Unknown,
        r => r,
    };
    let watch = is_watch(&query);

    if let Some(kind) = fault {
        match kind {
            // The server loop does the request later itself (see server.rs).
            FaultKind::Drop | FaultKind::DropThenApplyAfter(_) => return Reply::Drop,
            FaultKind::ApplyThenDrop => {
                if let Ok(user) = user {
                    let _ = route_reply(state, req, user, &route, &query, cfg, pretty);
                }
                return Reply::Drop;
            }
            FaultKind::Status(code) => {
                return Reply::error(
                    &fault_status(code, &route, user, &req.method, watch, &req.path),
                    pretty,
                );
            }
            FaultKind::Throttled { retry_after } => {
                return Reply::Full {
                    code: 429,
                    content_type: "text/plain; charset=utf-8".into(),
                    headers: vec![
                        ("Retry-After".into(), retry_after.to_string()),
                        ("X-Content-Type-Options".into(), "nosniff".into()),
                    ],
                    body: b"Too many requests, please try again later.\n".to_vec(),
                };
            }
            FaultKind::Stall(_) => {}
            other => return with_watch_fault(state, req, user, &route, &query, cfg, pretty, other),
        }
    }
    let Ok(user) = user else {
        return Reply::error(&status::unauthorized(), pretty);
    };
    match route_reply(state, req, user, &route, &query, cfg, pretty) {
        Ok(r) => r,
        Err(e) => Reply::error(&e, pretty),
    }
}

#[allow(clippy::too_many_arguments)]
fn with_watch_fault(
    state: &mut State,
    req: &Request,
    user: &Result<String, ()>,
    route: &Route,
    query: &[(String, String)],
    cfg: &super::server::Config,
    pretty: bool,
    kind: FaultKind,
) -> Reply {
    let Ok(user) = user else {
        return Reply::error(&status::unauthorized(), pretty);
    };
    match route_reply(state, req, user, route, query, cfg, pretty) {
        Ok(Reply::Watch(mut plan)) => {
            plan.fault = Some(kind);
            Reply::Watch(plan)
        }
        Ok(r) => r,
        Err(e) => Reply::error(&e, pretty),
    }
}

fn fault_status(
    code: u16,
    route: &Route,
    user: &Result<String, ()>,
    method: &str,
    watch: bool,
    path: &str,
) -> ApiError {
    let obj = match route {
        Route::Object(o) => Some(o),
        _ => None,
    };
    match code {
        401 => status::unauthorized(),
        403 => {
            let user = user.clone().unwrap_or_else(|_| ANONYMOUS.into());
            match obj {
                Some(o) => status::forbidden(
                    Some(&o.res),
                    o.subresource.as_deref(),
                    &o.name,
                    &o.namespace,
                    &user,
                    verb_of(method, o, watch),
                    path,
                ),
                None => status::forbidden(None, None, "", "", &user, "get", path),
            }
        }
        404 => match obj {
            Some(o) => status::not_found(&o.res, &o.name),
            None => status::unknown_core_resource(),
        },
        409 => match obj {
            Some(o) => status::conflict(&o.res, &o.name, status::STALE),
            None => status::error(409, "Conflict", "fault injected", None),
        },
        410 if watch => status::error(
            410,
            "Expired",
            "The resourceVersion for the provided watch is too old.",
            None,
        ),
        410 => status::list_rv_expired(),
        429 => status::too_many_requests(1),
        500 => status::internal("fault injected"),
        503 => status::service_unavailable(),
        504 => status::error(
            504,
            "Timeout",
            "Timeout: request did not complete within the allotted timeout",
            None,
        ),
        _ => status::error(code, "", "fault injected", None),
    }
}

fn route_reply(
    state: &mut State,
    req: &Request,
    user: &str,
    route: &Route,
    query: &[(String, String)],
    cfg: &super::server::Config,
    pretty: bool,
) -> Result<Reply, ApiError> {
    let anonymous = user == ANONYMOUS;
    let forbid_path = |verb: &str| status::forbidden(None, None, "", "", user, verb, &req.path);
    let get_only = || -> Result<(), ApiError> {
        if req.method == "GET" {
            Ok(())
        } else {
            Err(status::method_not_allowed())
        }
    };
    match route {
        Route::Version => {
            get_only()?;
            Ok(Reply::Full {
                code: 200,
                content_type: "application/json".into(),
                headers: Vec::new(),
                body: discovery::VERSION.as_bytes().to_vec(),
            })
        }
        Route::Health => Ok(Reply::Full {
            code: 200,
            content_type: "text/plain; charset=utf-8".into(),
            headers: vec![("X-Content-Type-Options".into(), "nosniff".into())],
            body: b"ok".to_vec(),
        }),
        _ if anonymous && !matches!(route, Route::Object(_) | Route::AccessReview) => {
            Err(forbid_path("get"))
        }
        Route::ApiVersions => {
            get_only()?;
            Ok(Reply::Full {
                code: 200,
                content_type: "application/json".into(),
                headers: Vec::new(),
                body: discovery::api_versions(&cfg.advertise).into_bytes(),
            })
        }
        Route::ApiGroups => {
            get_only()?;
            let doc = discovery::api_group_list(state.paperlb_group_served());
            Ok(Reply::json(200, &doc, Layout::Go("APIGroupList"), pretty))
        }
        Route::Group { group } => {
            get_only()?;
            let doc = discovery::api_group(group, state.paperlb_group_served())
                .ok_or_else(status::page_not_found)?;
            Ok(Reply::json(200, &doc, Layout::Go("APIGroup"), pretty))
        }
        Route::GroupVersion { group, version } => {
            get_only()?;
            let all_served = resources::ALL
                .iter()
                .filter(|r| r.group == group.as_str())
                .all(|r| state.crd_served(r));
            if group == resources::CRD_GROUP && !pretty && all_served {
                return Ok(Reply::Full {
                    code: 200,
                    content_type: "application/json".into(),
                    headers: Vec::new(),
                    body: discovery::PAPERLB_RESOURCES.as_bytes().to_vec(),
                });
            }
            let doc = discovery::resource_list(group, version, |r| state.crd_served(r));
            Ok(Reply::json(
                200,
                &doc,
                Layout::Go("APIResourceList"),
                pretty,
            ))
        }
        Route::AccessReview => {
            if req.method != "POST" {
                return Err(status::method_not_allowed());
            }
            Ok(Reply::json(
                201,
                &access_review(state, user, &req.body)?,
                Layout::Go("SelfSubjectAccessReview"),
                pretty,
            ))
        }
        Route::UnknownCore => Err(status::unknown_core_resource()),
        Route::Unknown => Err(status::page_not_found()),
        Route::Object(o) => object_reply(state, req, user, o, query, cfg, pretty),
    }
}

fn access_review(state: &State, user: &str, body: &[u8]) -> Result<Value, ApiError> {
    let review: Value = serde_json::from_slice(body).map_err(|e| {
        status::bad_request(&format!(
            "SelfSubjectAccessReview in version \"v1\" cannot be handled as a SelfSubjectAccessReview: {e}"
        ))
    })?;
    let attrs = &review["spec"]["resourceAttributes"];
    let verb = attrs["verb"].as_str().unwrap_or("");
    let resource = match attrs["subresource"].as_str() {
        Some(s) if !s.is_empty() => format!("{}/{s}", attrs["resource"].as_str().unwrap_or("")),
        _ => attrs["resource"].as_str().unwrap_or("").to_string(),
    };
    let allowed = user != ANONYMOUS && state.is_allowed(user, verb, &resource);
    Ok(json!({
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {},
        "spec": review["spec"].clone(),
        "status": {"allowed": allowed},
    }))
}

fn object_reply(
    state: &mut State,
    req: &Request,
    user: &str,
    o: &ObjectRoute,
    query: &[(String, String)],
    cfg: &super::server::Config,
    pretty: bool,
) -> Result<Reply, ApiError> {
    let watch = is_watch(query);
    let verb = verb_of(&req.method, o, watch);
    let resource = match &o.subresource {
        Some(s) => format!("{}/{s}", o.res.plural),
        None => o.res.plural.to_string(),
    };
    if user == ANONYMOUS || !state.is_allowed(user, verb, &resource) {
        return Err(status::forbidden(
            Some(&o.res),
            o.subresource.as_deref(),
            &o.name,
            &o.namespace,
            user,
            verb,
            &req.path,
        ));
    }
    let layout = watch::layout(&o.res);
    let pruned = older_crd(state, o, &req.method, query, &req.body)?;
    let body = pruned.as_deref().unwrap_or(&req.body);
    let parse_body = || -> Result<Value, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            status::bad_request(&format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                o.res.kind, o.res.version, o.res.kind
            ))
        })
    };
    let (code, obj) = match (req.method.as_str(), o.name.is_empty()) {
        ("GET", true) if watch => {
            return Ok(Reply::Watch(Box::new(watch_plan(state, o, query, cfg)?)));
        }
        ("GET", true) => {
            let opts = ListOptions {
                label_selector: q(query, "labelSelector").into(),
                field_selector: q(query, "fieldSelector").into(),
                limit: q(query, "limit").parse().unwrap_or(0),
                continue_token: q(query, "continue").into(),
                resource_version: q(query, "resourceVersion").into(),
                resource_version_match: q(query, "resourceVersionMatch").into(),
            };
            let list = state.list(&o.res, &o.namespace, &opts)?;
            return Ok(Reply::Full {
                code: 200,
                content_type: "application/json".into(),
                headers: Vec::new(),
                body: list_body(&list, &o.res, pretty),
            });
        }
        ("GET", false) => (200, state.get(&o.res, &o.namespace, &o.name)?),
        ("POST", true) => (201, state.create(&o.res, &o.namespace, parse_body()?)?),
        ("PUT", false) => state.update(
            &o.res,
            &o.namespace,
            &o.name,
            parse_body()?,
            o.subresource.as_deref(),
        )?,
        ("PATCH", false) => {
            let ct = req.header("Content-Type").unwrap_or("");
            (
                200,
                state.patch(
                    &o.res,
                    &o.namespace,
                    &o.name,
                    o.subresource.as_deref(),
                    ct,
                    body,
                )?,
            )
        }
        ("DELETE", false) => {
            let opts = if req.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&req.body).map_err(|e| {
                    status::bad_request(&format!("DeleteOptions cannot be decoded: {e}"))
                })?
            };
            let out = state.delete(&o.res, &o.namespace, &o.name, &opts)?;
            if out["kind"] == "Status" {
                return Ok(Reply::json(200, &out, Layout::Go("Status"), pretty));
            }
            (200, out)
        }
        _ => return Err(status::method_not_allowed()),
    };
    Ok(Reply::json(code, &obj, layout, pretty))
}

/// A LoadBalancer write under an older CRD (`FakeApi::set_lb_crd_without`): refused when strict,
/// else the body without the fields the CRD does not know (None: nothing to take out).
fn older_crd(
    state: &State,
    o: &ObjectRoute,
    method: &str,
    query: &[(String, String)],
    body: &[u8],
) -> Result<Option<Vec<u8>>, ApiError> {
    if o.res.plural != "loadbalancers" || o.subresource.is_some() || method == "GET" {
        return Ok(None);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return Ok(None);
    };
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(None);
    };
    // A merge patch's null removes the field, so the patched object does not hold it.
    let unknown: Vec<&String> = (state.lb_spec_unknown.iter())
        .filter(|f| {
            spec.get(f.as_str())
                .is_some_and(|v| method != "PATCH" || !v.is_null())
        })
        .collect();
    if unknown.is_empty() {
        return Ok(None);
    }
    if q(query, "fieldValidation") == "Strict" {
        let what = (unknown.iter())
            .map(|f| format!("unknown field \"spec.{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let kind = o.res.kind;
        return Err(if method == "PATCH" {
            // The real message quotes the patched object; the patch stands in for it here.
            let value = format!(
                "Invalid value: {:?}: strict decoding error: {what}",
                v.to_string()
            );
            let causes =
                json!([{"reason": "FieldValueInvalid", "message": value, "field": "patch"}]);
            status::error(
                422,
                "Invalid",
                &format!(" \"\" is invalid: patch: {value}"),
                Some(json!({"causes": causes})),
            )
        } else {
            status::bad_request(&format!(
                "{kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {what}",
                o.res.version
            ))
        });
    }
    for f in unknown {
        spec.remove(f.as_str());
    }
    Ok(serde_json::to_vec(&v).ok())
}

/// Lists: built-in ones in Go order, CR ones alphabetical (items carry kind/apiVersion).
fn list_body(list: &Value, res: &resources::ResourceDef, pretty: bool) -> Vec<u8> {
    if res.custom {
        return json::body(list, Layout::Alphabetical, pretty);
    }
    // Go order for the envelope, the item kind's order for each item.
    let mut s = String::new();
    let nl = if pretty { "\n  " } else { "" };
    let sp = if pretty { " " } else { "" };
    s.push('{');
    s.push_str(nl);
    s.push_str(&format!("\"kind\":{sp}"));
    json::write_str(&mut s, list["kind"].as_str().unwrap_or(""));
    s.push(',');
    s.push_str(nl);
    s.push_str(&format!("\"apiVersion\":{sp}"));
    json::write_str(&mut s, list["apiVersion"].as_str().unwrap_or(""));
    s.push(',');
    s.push_str(nl);
    s.push_str(&format!("\"metadata\":{sp}"));
    json::write(
        &mut s,
        &list["metadata"],
        Layout::Go("List"),
        "metadata",
        pretty,
        1,
    );
    s.push(',');
    s.push_str(nl);
    s.push_str(&format!("\"items\":{sp}"));
    let items = list["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        s.push_str("[]");
    } else {
        s.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            if pretty {
                s.push_str("\n    ");
            }
            json::write(&mut s, item, Layout::Go(res.kind), "", pretty, 2);
        }
        if pretty {
            s.push_str("\n  ");
        }
        s.push(']');
    }
    if pretty {
        s.push('\n');
    }
    s.push('}');
    if !pretty {
        s.push('\n');
    }
    s.into_bytes()
}

fn watch_plan(
    state: &State,
    o: &ObjectRoute,
    query: &[(String, String)],
    cfg: &super::server::Config,
) -> Result<WatchPlan, ApiError> {
    let labels =
        LabelSelector::parse(q(query, "labelSelector")).map_err(|e| status::bad_request(&e))?;
    let fields = FieldSelector::parse(q(query, "fieldSelector"), o.res.plural)
        .map_err(|e| status::bad_request(&e))?;
    let timeout = match q(query, "timeoutSeconds").parse::<u64>() {
        Ok(s) if s > 0 => Duration::from_secs(s),
        _ => cfg.default_watch_timeout,
    };
    let rv = q(query, "resourceVersion");
    let mut plan = WatchPlan {
        res: o.res,
        namespace: o.namespace.clone(),
        labels,
        fields,
        initial: Vec::new(),
        from_rv: state.store.rv,
        expired: false,
        bookmarks: matches!(q(query, "allowWatchBookmarks"), "1" | "true"),
        timeout,
        fault: None,
    };
    match rv {
        "" | "0" => {
            plan.initial = state
                .store
                .list(o.res.plural, &o.namespace)
                .into_iter()
                .filter(|obj| plan.labels.matches(obj) && plan.fields.matches(obj))
                .collect();
        }
        n => {
            let n: u64 = n
                .parse()
                .map_err(|_| status::bad_request(&format!("invalid resource version: {n}")))?;
            if n < state.store.compacted {
                plan.expired = true;
            }
            plan.from_rv = n;
        }
    }
    Ok(plan)
}
