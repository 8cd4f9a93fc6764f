//! Reconcile tables against a tiny in-memory apiserver (merge patches, generation, finalizers), run
//! in shuffled orders: the plan must not depend on the order objects arrived in.

use super::*;
use crate::controller::decide::plan::EventSpec;
use crate::controller::testutil::{Rng, node, shuffled};
use crate::model::{DEFAULT_CLASS, Lenient, LoadBalancerConfig, Node, merge_patch};
use crate::updater::api::LbRequest;
use serde_json::Value;

/// The Ready condition's message, if any.
fn ready_message(lb: &LoadBalancer) -> Option<&str> {
    condition(&lb.status.conditions, READY).map(|c| c.message.as_str())
}

#[path = "reconcile_hosts_tests.rs"]
mod several_hosts;

const NS: &str = "paperlb-system";
const NOW: &str = "2024-05-01T10:00:00Z";

fn ctx() -> Context {
    Context::new(NS, NOW)
}

fn key(name: &str) -> Key {
    Key::new("default", name)
}

fn service(name: &str, ports: &[(&str, &str, i32, Option<i32>)]) -> Service {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, proto, port, np)| json!({"name": n, "protocol": proto, "port": port, "nodePort": np}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": "1"},
        "spec": {"type": "LoadBalancer", "ports": ports, "externalTrafficPolicy": "Cluster"},
    }))
    .unwrap()
}

fn web() -> Service {
    service(
        "web",
        &[
            ("http", "TCP", 80, Some(31080)),
            ("https", "TCP", 443, Some(31443)),
        ],
    )
}

fn config(
    name: &str,
    default: bool,
    host: &str,
    url: &str,
    low: i64,
    high: i64,
) -> LoadBalancerConfig {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1"},
        "spec": {"default": default, "host": host, "httpUpdaterURL": url, "portRange": {"low": low, "high": high}},
    }))
    .unwrap()
}

fn edge() -> LoadBalancerConfig {
    config(
        "edge",
        true,
        "203.0.113.7",
        "http://203.0.113.7:3000",
        8000,
        8010,
    )
}

fn nodes() -> Vec<Node> {
    vec![
        node("n2", "True", &[("InternalIP", "10.0.0.2")]),
        node(
            "n1",
            "True",
            &[("InternalIP", "10.0.0.1"), ("ExternalIP", "198.51.100.1")],
        ),
        // Not a target under either node-set rule (NotReady alone would be one while health
        // checks are on, KEP-3458).
        excluded(node("n3", "False", &[("InternalIP", "10.0.0.3")])),
    ]
}

fn excluded(mut n: Node) -> Node {
    n.metadata.labels.insert(
        crate::controller::decide::targets::EXCLUDE_LABEL.into(),
        "true".into(),
    );
    n
}

/// A cache holding the given objects, inserted in a shuffled order.
fn world(rng: &mut Rng, services: Vec<Service>, configs: Vec<LoadBalancerConfig>) -> Cache {
    let mut cache = Cache::default();
    let mut nodes = nodes();
    rng.shuffle(&mut nodes);
    cache.replace_nodes(nodes);
    let mut configs = configs;
    rng.shuffle(&mut configs);
    for c in configs {
        cache.apply_config(c);
    }
    let mut services = services;
    rng.shuffle(&mut services);
    for s in services {
        cache.apply_service(s);
    }
    cache
}

/// `lb` after a merge patch, as the apiserver applies one: its metadata fields (finalizers and
/// ownerReferences are lists, replaced whole) and status merged, the spec replaced by the patch's
/// (a spec patch names every field, `null` for the unset ones, so merging it is replacing), the
/// generation raised when the spec changes, a new resourceVersion.
fn patched(lb: &LoadBalancer, patch: &Value) -> LoadBalancer {
    let mut out = lb.clone();
    for (field, value) in patch["metadata"].as_object().into_iter().flatten() {
        let value = value.clone();
        match field.as_str() {
            "resourceVersion" => {} // the precondition
            "finalizers" => out.metadata.finalizers = serde_json::from_value(value).unwrap(),
            "ownerReferences" => {
                out.metadata.owner_references = serde_json::from_value(value).unwrap()
            }
            "deletionTimestamp" => {
                out.metadata.deletion_timestamp = serde_json::from_value(value).unwrap()
            }
            other => panic!("metadata.{other} is not simulated"),
        }
    }
    if let Some(patch) = patch.get("status") {
        let mut status = serde_json::to_value(&lb.status).unwrap();
        merge_patch(&mut status, patch);
        out.status = serde_json::from_value(status).unwrap();
    }
    if let Some(spec) = patch.get("spec") {
        out.spec = serde_json::from_value(spec.clone()).unwrap();
    }
    if out.spec != lb.spec {
        out.metadata.generation = Some(lb.metadata.generation.unwrap() + 1);
    }
    bump(&mut out.metadata);
    out
}

/// A new resourceVersion, as every write gives.
fn bump(meta: &mut crate::model::ObjectMeta) {
    let rv: u64 = meta.resource_version.parse().unwrap_or(1);
    meta.resource_version = (rv + 1).to_string();
}

/// What the updater was asked, in order: ("POST"|"DELETE", url, backend).
type Calls = Vec<(String, String, String)>;

/// Executes a plan as the apiserver and a healthy updater would, and returns the updater calls.
fn execute(cache: &mut Cache, plan: &Plan) -> Calls {
    let mut calls = Calls::new();
    for action in &plan.actions {
        match action {
            Action::CreateLoadBalancer { object, .. } => {
                let mut o = object.clone();
                o["metadata"]["uid"] = json!("uid-lb");
                o["metadata"]["resourceVersion"] = json!("10");
                o["metadata"]["generation"] = json!(1);
                cache.apply_load_balancer(serde_json::from_value(o).unwrap());
            }
            Action::PatchLoadBalancerSpec { key, patch }
            | Action::PatchFinalizers { key, patch } => {
                let lb = &cache.load_balancers[key];
                assert_eq!(
                    patch["metadata"]["resourceVersion"],
                    json!(lb.metadata.resource_version),
                    "patch carries the rv"
                );
                let lb = patched(lb, patch);
                cache.apply_load_balancer(lb);
            }
            Action::PatchLoadBalancerStatus { key, patch } => {
                let patch = json!({"status": patch["status"]});
                let lb = patched(&cache.load_balancers[key], &patch);
                cache.apply_load_balancer(lb);
            }
            Action::PatchServiceStatus { key, patch } => {
                // The only status field written: the ingress list (replaced whole, null = none).
                assert_eq!(patch.as_object().unwrap().len(), 1, "{patch}");
                assert_eq!(patch["status"].as_object().unwrap().len(), 1, "{patch}");
                let ingress = &patch["status"]["loadBalancer"]["ingress"];
                let mut svc = (*cache.services[key]).clone();
                svc.status.load_balancer.ingress = serde_json::from_value(ingress.clone())
                    .map(Option::unwrap_or_default)
                    .unwrap();
                bump(&mut svc.metadata);
                cache.apply_service(svc);
            }
            Action::DeleteLoadBalancer { key, .. } => {
                let lb = cache.load_balancers[key].clone();
                if lb.metadata.finalizers.is_empty() {
                    cache.delete_load_balancer(key);
                } else {
                    let deleting = json!({"metadata": {"deletionTimestamp": NOW}});
                    cache.apply_load_balancer(patched(&lb, &deleting));
                }
            }
            Action::UpdaterApply { url, request, .. } => {
                calls.push(("POST".into(), url.clone(), request.backend_name.clone()))
            }
            Action::UpdaterDelete {
                url, backend_name, ..
            } => calls.push(("DELETE".into(), url.clone(), backend_name.clone())),
            Action::Event(_) | Action::PatchConfigStatus { .. } | Action::Repair { .. } => {}
        }
    }
    calls
}

/// Reconciles and executes until the plan is empty; returns every updater call.
fn converge(cache: &mut Cache, k: &Key) -> Calls {
    let mut calls = Calls::new();
    for _ in 0..10 {
        let plan = reconcile(cache, k, &ctx());
        if plan.is_empty() {
            return calls;
        }
        calls.extend(execute(cache, &plan));
    }
    panic!("{k} did not converge: {:?}", reconcile(cache, k, &ctx()));
}

/// Short names of a plan's actions, for table comparisons.
fn kinds(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::CreateLoadBalancer { .. } => "create".to_string(),
            Action::PatchLoadBalancerSpec { .. } => "spec".to_string(),
            Action::PatchFinalizers { patch, .. } => {
                let list = patch["metadata"]["finalizers"].as_array().unwrap();
                match list.contains(&json!(FINALIZER)) {
                    true => "add-finalizer".to_string(),
                    false => "remove-finalizer".to_string(),
                }
            }
            Action::UpdaterApply { url, request, .. } => {
                format!("POST {url} {}", request.backend_name)
            }
            Action::UpdaterDelete {
                url, backend_name, ..
            } => format!("DELETE {url} {backend_name}"),
            Action::PatchLoadBalancerStatus { .. } => "lb-status".to_string(),
            Action::PatchServiceStatus { .. } => "svc-status".to_string(),
            Action::DeleteLoadBalancer { .. } => "delete".to_string(),
            Action::PatchConfigStatus { .. } => "config-status".to_string(),
            Action::Repair { .. } => "repair".to_string(),
            Action::Event(EventSpec { type_, reason, .. }) => {
                format!("event {} {reason}", type_.as_str())
            }
        })
        .collect()
}

const U: &str = "http://203.0.113.7:3000";

fn new_service_two_ports_creates_lb_without_event(rng: &mut Rng) {
    let cache = world(rng, vec![web()], vec![edge()]);
    let plan = reconcile(&cache, &key("web"), &ctx());
    // No Normal Event until the phase changes (READY, after the updater call; see the next table).
    assert_eq!(kinds(&plan), ["create"]);
    let Action::CreateLoadBalancer { object, .. } = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(object["metadata"]["finalizers"], json!([FINALIZER]));
    assert_eq!(
        object["metadata"]["ownerReferences"][0]["uid"],
        json!("uid-web")
    );
    assert_eq!(
        object["metadata"]["ownerReferences"][0]["controller"],
        json!(true)
    );
    let spec = &object["spec"];
    assert_eq!(spec["port"], json!(8000));
    assert_eq!(spec["protocol"], json!("TCP"));
    assert_eq!(spec["configName"], json!("edge"));
    assert_eq!(spec["httpUpdater"]["url"], json!(U));
    assert_eq!(spec["ports"][1]["port"], json!(8001));
    assert_eq!(spec["ports"][1]["nodePort"], json!(31443));
    // ExternalIP first, InternalIP fallback; not-ready n3 left out; sorted.
    assert_eq!(
        spec["targets"],
        json!([{"host": "10.0.0.2", "port": 31080}, {"host": "198.51.100.1", "port": 31080}])
    );
}

fn unapplied_lb_gets_updater_calls_status_and_ingress(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    let first = reconcile(&cache, &k, &ctx());
    execute(&mut cache, &first);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        [
            format!("POST {U} default_web"),
            format!("POST {U} default_web_https"),
            "lb-status".into(),
            "svc-status".into(),
            // The phase changes to READY: one Normal Event, after the writes the ingress waits for.
            "event Normal UpdaterApplied".into(),
        ]
    );
    let Some(Action::Event(e)) = plan.actions.last() else {
        unreachable!()
    };
    assert_eq!(
        e.message,
        format!("updater {U} serves 8000/TCP, 8001/TCP on 203.0.113.7 with 2 target(s)")
    );
    assert_eq!(e.object.kind, "Service");
    let Action::UpdaterApply { request, .. } = &plan.actions[1] else {
        unreachable!()
    };
    assert_eq!(request.lb_port, 8001);
    assert_eq!(request.lb_protocol, "TCP");
    assert_eq!(
        upstreams(request),
        [
            ("10.0.0.2".to_string(), 31443),
            ("198.51.100.1".to_string(), 31443)
        ]
    );
    let Action::PatchLoadBalancerStatus { patch, .. } = &plan.actions[2] else {
        unreachable!()
    };
    assert_eq!(patch["status"]["phase"], json!("READY"));
    assert_eq!(patch["status"]["targetCount"], json!(2));
    assert_eq!(patch["status"]["observedGeneration"], json!(1));
    assert_eq!(patch["status"]["conditions"][0]["type"], json!("Ready"));
    assert_eq!(patch["status"]["conditions"][0]["status"], json!("True"));
    let Action::PatchServiceStatus { patch, .. } = &plan.actions[3] else {
        unreachable!()
    };
    assert_eq!(
        patch,
        &json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7", "ipMode": "Proxy",
            "ports": [{"port": 8000, "protocol": "TCP"}, {"port": 8001, "protocol": "TCP"}]}]}}})
    );
    execute(&mut cache, &plan);
    assert!(reconcile(&cache, &k, &ctx()).is_empty(), "converged");
}

fn converged_cluster_and_restart_write_nothing(rng: &mut Rng) {
    let services: Vec<Service> = (0..8)
        .map(|i| {
            service(
                &format!("s{i}"),
                &[
                    ("a", "TCP", 80, Some(30000 + i)),
                    ("b", "UDP", 53, Some(30100 + i)),
                ],
            )
        })
        .collect();
    let mut cache = world(rng, services.clone(), vec![edge()]);
    let mut keys: Vec<Key> = services.iter().map(|s| Key::of(&s.metadata)).collect();
    rng.shuffle(&mut keys);
    for k in &keys {
        converge(&mut cache, k);
    }
    let mut seen = std::collections::BTreeSet::new();
    for lb in cache.load_balancers.values() {
        for p in &lb.spec.ports {
            assert!(
                seen.insert((p.port.get().copied(), p.protocol.get().cloned())),
                "port shared"
            );
        }
    }
    // A restart: a fresh cache from the same objects, in another order.
    let mut fresh = Cache::default();
    let mut lbs: Vec<_> = cache
        .load_balancers
        .values()
        .map(|l| l.as_ref().clone())
        .collect();
    rng.shuffle(&mut lbs);
    fresh.replace_load_balancers(lbs);
    fresh.replace_nodes(nodes());
    fresh.replace_configs(vec![edge()]);
    fresh.replace_services(
        cache
            .services
            .values()
            .map(|s| s.as_ref().clone())
            .collect(),
    );
    rng.shuffle(&mut keys);
    for k in &keys {
        assert_eq!(
            reconcile(&fresh, k, &ctx()),
            Plan::default(),
            "{k} after restart"
        );
    }
}

fn node_flip_patches_spec_then_applies_without_service_write(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    let affected = cache.apply_node(node("n3", "True", &[("InternalIP", "10.0.0.3")]));
    assert_eq!(affected, [k.clone()].into());
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(kinds(&plan), ["spec"]);
    execute(&mut cache, &plan);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        [
            format!("POST {U} default_web"),
            format!("POST {U} default_web_https"),
            // Still READY: no Event for a re-apply.
            "lb-status".into()
        ]
    );
    execute(&mut cache, &plan);
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
    // A heartbeat-only node update affects nothing.
    let mut n = cache.nodes["n1"].clone();
    n.metadata.resource_version = "77".into();
    assert!(cache.apply_node(n).is_empty());
}

fn deleted_service_cleans_up_without_gc(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    cache.delete_service(&k);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        [
            format!("DELETE {U} default_web"),
            format!("DELETE {U} default_web_https"),
            "remove-finalizer".into(),
            "delete".into()
        ]
    );
    execute(&mut cache, &plan);
    assert!(!cache.load_balancers.contains_key(&k));
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
}

fn type_switch_cleans_up_and_clears_status(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    let mut svc = cache.services[&k].as_ref().clone();
    svc.spec.type_ = Some("ClusterIP".into());
    svc.metadata.resource_version = "99".into();
    cache.apply_service(svc);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        [
            "svc-status".to_string(),
            format!("DELETE {U} default_web"),
            format!("DELETE {U} default_web_https"),
            "remove-finalizer".into(),
            "delete".into(),
            "event Normal LoadBalancerDeleted".into()
        ]
    );
    execute(&mut cache, &plan);
    assert!(cache.services[&k].status.load_balancer.ingress.is_empty());
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
}

fn other_class_is_not_ours(rng: &mut Rng) {
    let mut svc = web();
    svc.spec.load_balancer_class = Some("example.com/other".into());
    let cache = world(rng, vec![svc], vec![edge()]);
    assert!(reconcile(&cache, &key("web"), &ctx()).is_empty());
    let mut svc = web();
    svc.spec.load_balancer_class = Some(DEFAULT_CLASS.into());
    let cache = world(rng, vec![svc], vec![edge()]);
    assert_eq!(kinds(&reconcile(&cache, &key("web"), &ctx()))[0], "create");
}

/// (case, configs, annotation, event reason, message fragment)
type ConfigCase = (
    &'static str,
    Vec<LoadBalancerConfig>,
    Option<&'static str>,
    &'static str,
    &'static str,
);

fn config_problems_give_event_and_condition_only(rng: &mut Rng) {
    let bad_range = config("edge", true, "203.0.113.7", U, 9000, 8000);
    let cases: Vec<ConfigCase> = vec![
        (
            "no config at all",
            vec![],
            None,
            "ConfigNotFound",
            "Service default/web: no LoadBalancerConfig in namespace paperlb-system has default: true; create one or annotate the Service with lb.paperlb.com/config-name",
        ),
        (
            "no default",
            vec![config("edge", false, "h", U, 1, 2)],
            None,
            "ConfigNotFound",
            "Service default/web: no LoadBalancerConfig in namespace paperlb-system has default: true; create one or annotate the Service with lb.paperlb.com/config-name",
        ),
        (
            "two defaults",
            vec![edge(), config("b", true, "h", U, 1, 2)],
            None,
            "InvalidConfig",
            "Service default/web: 2 LoadBalancerConfigs in namespace paperlb-system have default: true (b, edge); keep one, or annotate the Service with lb.paperlb.com/config-name",
        ),
        (
            "named config missing",
            vec![edge()],
            Some("nope"),
            "ConfigNotFound",
            "Service default/web: LoadBalancerConfig paperlb-system/nope (annotation lb.paperlb.com/config-name) not found",
        ),
        (
            "low > high",
            vec![bad_range],
            None,
            "InvalidConfig",
            "Service default/web: LoadBalancerConfig paperlb-system/edge: spec.portRange: low 9000 is greater than high 8000",
        ),
        (
            "bad url",
            vec![config("edge", true, "h", "ftp://x", 1, 2)],
            None,
            "InvalidConfig",
            "Service default/web: LoadBalancerConfig paperlb-system/edge: spec.httpUpdaterURL \"ftp://x\": must start with http:// or https://",
        ),
        (
            "empty host",
            vec![config("edge", true, "", U, 1, 2)],
            None,
            "InvalidConfig",
            "Service default/web: LoadBalancerConfig paperlb-system/edge: spec.host \"\": is empty",
        ),
        (
            "config in another namespace is ignored",
            vec![{
                let mut c = edge();
                c.metadata.namespace = "default".into();
                c
            }],
            None,
            "ConfigNotFound",
            "Service default/web: no LoadBalancerConfig in namespace paperlb-system has default: true; create one or annotate the Service with lb.paperlb.com/config-name",
        ),
    ];
    for (name, configs, annotation, reason, message) in shuffled(&cases, rng) {
        let mut svc = web();
        if let Some(a) = annotation {
            svc.metadata
                .annotations
                .insert(CONFIG_ANNOTATION.into(), a.to_string());
        }
        let cache = world(rng, vec![svc], configs.clone());
        let plan = reconcile(&cache, &key("web"), &ctx());
        assert_eq!(kinds(&plan), [format!("event Warning {reason}")], "{name}");
        let Action::Event(e) = &plan.actions[0] else {
            unreachable!()
        };
        assert_eq!(e.message, *message, "{name}");
    }
    // With a LoadBalancer: a condition (once) and an Event; no updater call, no spec change.
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    cache.apply_config({
        let mut c = config("edge", true, "203.0.113.7", U, 9000, 8000);
        c.metadata.resource_version = "2".into();
        c
    });
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(kinds(&plan), ["lb-status", "event Warning InvalidConfig"]);
    let Action::PatchLoadBalancerStatus { patch, .. } = &plan.actions[0] else {
        unreachable!()
    };
    let conds = patch["status"]["conditions"].as_array().unwrap();
    assert!(conds.iter().any(|c| c["type"] == "Reconciled"
        && c["status"] == "False"
        && c["reason"] == "InvalidConfig"));
    assert_eq!(
        patch["status"]["phase"],
        json!("READY"),
        "what the updater serves is untouched"
    );
    execute(&mut cache, &plan);
    assert!(
        reconcile(&cache, &k, &ctx()).is_empty(),
        "the Event is not repeated"
    );
    // Fixed: the condition flips back, nothing else.
    cache.apply_config({
        let mut c = edge();
        c.metadata.resource_version = "3".into();
        c
    });
    assert_eq!(kinds(&reconcile(&cache, &k, &ctx())), ["lb-status"]);
}

fn invalid_services(rng: &mut Rng) {
    let mut no_alloc = service("web", &[("http", "TCP", 80, None)]);
    no_alloc.spec.allocate_load_balancer_node_ports = Some(false);
    let many: Vec<(String, i32)> = (0..101).map(|i| (format!("p{i}"), 30000 + i)).collect();
    let many_refs: Vec<(&str, &str, i32, Option<i32>)> = many
        .iter()
        .map(|(n, np)| (n.as_str(), "TCP", 80, Some(*np)))
        .collect();
    let cases: Vec<(&str, Service, Option<&str>)> = vec![
        (
            "no ports",
            service("web", &[]),
            Some("event Warning InvalidService"),
        ),
        (
            "duplicate names",
            service(
                "web",
                &[("a", "TCP", 80, Some(30001)), ("a", "TCP", 81, Some(30002))],
            ),
            Some("event Warning InvalidService"),
        ),
        (
            "sctp",
            service("web", &[("a", "SCTP", 80, Some(30001))]),
            Some("event Warning InvalidService"),
        ),
        (
            "too many ports",
            service("web", &many_refs),
            Some("event Warning InvalidService"),
        ),
        (
            "no nodePorts allocated",
            no_alloc,
            Some("event Warning NoNodePorts"),
        ),
        (
            "nodePort not yet assigned: wait",
            service("web", &[("http", "TCP", 80, None)]),
            None,
        ),
    ];
    for (name, svc, want) in shuffled(&cases, rng) {
        let cache = world(rng, vec![svc.clone()], vec![edge()]);
        let got = kinds(&reconcile(&cache, &key("web"), &ctx()));
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "{name}");
    }
}

fn port_exhaustion_reports_config_and_range(rng: &mut Rng) {
    let small = config("edge", true, "203.0.113.7", U, 8000, 8000);
    let mut cache = world(
        rng,
        vec![
            service("a", &[("x", "TCP", 80, Some(30001))]),
            service("b", &[("x", "TCP", 80, Some(30002))]),
        ],
        vec![small],
    );
    converge(&mut cache, &key("a"));
    let plan = reconcile(&cache, &key("b"), &ctx());
    assert_eq!(kinds(&plan), ["event Warning PortRangeExhausted"]);
    let Action::Event(e) = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(
        e.message,
        "Service default/b: no free TCP port left on 203.0.113.7 in range 8000-8000 of LoadBalancerConfig paperlb-system/edge"
    );
}

fn port_added_and_removed(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    // Add a port in front: existing ports keep theirs.
    let mut svc = service(
        "web",
        &[
            ("metrics", "TCP", 9090, Some(31090)),
            ("http", "TCP", 80, Some(31080)),
            ("https", "TCP", 443, Some(31443)),
        ],
    );
    svc.metadata.resource_version = "5".into();
    cache.apply_service(svc);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(kinds(&plan), ["spec", "event Normal PortAllocated"]);
    let Action::PatchLoadBalancerSpec { patch, .. } = &plan.actions[0] else {
        unreachable!()
    };
    let ports: Vec<_> = patch["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].clone(), p["port"].clone()))
        .collect();
    assert_eq!(
        ports,
        [
            (json!("metrics"), json!(8002)),
            (json!("http"), json!(8000)),
            (json!("https"), json!(8001))
        ]
    );
    execute(&mut cache, &plan);
    // Backend names follow positions: the first port is `default_web`; `default_web_http` is new.
    let calls = converge(&mut cache, &k);
    assert_eq!(
        calls,
        [
            ("POST".to_string(), U.to_string(), "default_web".to_string()),
            ("POST".into(), U.into(), "default_web_http".into()),
            ("POST".into(), U.into(), "default_web_https".into()),
        ]
    );
    // Remove two ports: https keeps 8001 but becomes `default_web`, so `default_web_https` (which
    // holds 8001 on the updater, which refuses a port another backend serves) is deleted first;
    // `default_web_http` after the apply.
    let mut svc = service("web", &[("https", "TCP", 443, Some(31443))]);
    svc.metadata.resource_version = "60".into();
    cache.apply_service(svc);
    let calls = converge(&mut cache, &k);
    assert_eq!(
        calls,
        [
            (
                "DELETE".to_string(),
                U.to_string(),
                "default_web_https".to_string()
            ),
            ("POST".into(), U.into(), "default_web".into()),
            ("DELETE".into(), U.into(), "default_web_http".into()),
        ]
    );
    assert_eq!(
        cache.load_balancers[&k].spec.port.get(),
        Some(&8001),
        "https kept its port"
    );
}

/// Found by `make chaos`: a port was added, its apply never recorded (crash, failed status write),
/// and the port removed again; the spec patch then forgot the backend and nothing deleted it.
fn backends_of_an_unrecorded_apply_are_recorded_before_the_spec_forgets_them(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    let mut svc = service(
        "web",
        &[
            ("http", "TCP", 80, Some(31080)),
            ("https", "TCP", 443, Some(31443)),
            ("metrics", "TCP", 9090, Some(31090)),
        ],
    );
    svc.metadata.resource_version = "5".into();
    cache.apply_service(svc);
    let plan = reconcile(&cache, &k, &ctx());
    execute(&mut cache, &plan);
    // The apply of generation 2 ran (POSTs may have reached the updater) but recorded nothing.
    assert_eq!(
        kinds(&reconcile(&cache, &k, &ctx()))[..3],
        [
            format!("POST {U} default_web"),
            format!("POST {U} default_web_https"),
            format!("POST {U} default_web_metrics")
        ]
    );
    let mut svc = web();
    svc.metadata.resource_version = "6".into();
    cache.apply_service(svc);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        ["lb-status"],
        "record first, in its own write"
    );
    let Action::PatchLoadBalancerStatus { patch, .. } = &plan.actions[0] else {
        unreachable!()
    };
    let names: Vec<&str> = patch["status"]["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backendName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["default_web", "default_web_https", "default_web_metrics"],
        "the READY generation's record, plus the one the new spec forgets"
    );
    execute(&mut cache, &plan);
    let calls = converge(&mut cache, &k);
    assert!(
        calls.contains(&("DELETE".into(), U.into(), "default_web_metrics".into())),
        "{calls:?}"
    );
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
}

/// Found by `make chaos`: a change of the config's proxy timeouts alone was never applied (the
/// LoadBalancer's spec did not change, so it stayed READY with the old timeouts on the updater).
fn config_timeout_change_is_applied_again(rng: &mut Rng) {
    let with_timeouts = |t: i64, rv: &str| {
        let mut c = edge();
        c.spec.proxy_timeout_seconds = Lenient::Valid(t);
        c.spec.proxy_connect_timeout_seconds = Lenient::Valid(5);
        c.metadata.resource_version = rv.into();
        c
    };
    let mut cache = world(rng, vec![web()], vec![with_timeouts(30, "1")]);
    let k = key("web");
    let timeouts_posted = |cache: &mut Cache| -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for _ in 0..10 {
            let plan = reconcile(cache, &k, &ctx());
            if plan.is_empty() {
                return out;
            }
            for a in &plan.actions {
                if let Action::UpdaterApply { request, .. } = a {
                    out.push((
                        request.proxy_timeout_seconds,
                        request.proxy_connect_timeout_seconds,
                    ));
                }
            }
            execute(cache, &plan);
        }
        panic!("did not converge");
    };
    assert_eq!(timeouts_posted(&mut cache), [(30, 5), (30, 5)]);
    assert_eq!(
        cache.load_balancers[&k].spec.proxy_timeout_seconds,
        Lenient::Valid(30)
    );
    cache.apply_config(with_timeouts(120, "2"));
    assert_eq!(kinds(&reconcile(&cache, &k, &ctx())), ["spec"]);
    assert_eq!(timeouts_posted(&mut cache), [(120, 5), (120, 5)]);
    // Back to the updater's defaults (0): the spec says so, and the updater is told.
    cache.apply_config({
        let mut c = edge();
        c.metadata.resource_version = "3".into();
        c
    });
    assert_eq!(timeouts_posted(&mut cache), [(0, 0), (0, 0)]);
    // Unset is absent from the stored spec (the patch wrote null), which reads as 0.
    assert_eq!(
        cache.load_balancers[&k].spec.proxy_timeout_seconds,
        Lenient::Missing
    );
}

fn moved_to_another_updater_deletes_old_backend_after_apply(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    let mut moved = config(
        "edge",
        true,
        "lb2.example.com",
        "http://lb2.example.com:3000",
        8000,
        8010,
    );
    moved.metadata.resource_version = "2".into();
    assert!(cache.apply_config(moved).contains(&k));
    let calls = converge(&mut cache, &k);
    let u2 = "http://lb2.example.com:3000";
    assert_eq!(
        calls,
        [
            (
                "POST".to_string(),
                u2.to_string(),
                "default_web".to_string()
            ),
            ("POST".into(), u2.into(), "default_web_https".into()),
            ("DELETE".into(), U.into(), "default_web".into()),
            ("DELETE".into(), U.into(), "default_web_https".into()),
        ]
    );
    // A DNS host becomes `hostname`, without ipMode.
    let ingress = &cache.services[&k].status.load_balancer.ingress;
    assert_eq!(ingress[0].hostname.as_deref(), Some("lb2.example.com"));
    assert_eq!(ingress[0].ip_mode, None);
    // Same updater, new port (range moved): same backend name, the POST replaces it; no DELETE.
    let mut shifted = config("edge", true, "lb2.example.com", u2, 9000, 9010);
    shifted.metadata.resource_version = "3".into();
    cache.apply_config(shifted);
    let calls = converge(&mut cache, &k);
    assert!(calls.iter().all(|(m, _, _)| m == "POST"), "{calls:?}");
}

fn hand_made_lb_applied_as_is_and_cleaned_up(rng: &mut Rng) {
    let mut cache = world(rng, vec![], vec![edge()]);
    let k = key("manual");
    let lb: LoadBalancer = serde_json::from_value(json!({
        "metadata": {"name": "manual", "namespace": "default", "uid": "u1", "resourceVersion": "3", "generation": 1},
        "spec": {"httpUpdater": {"url": U}, "host": "203.0.113.7", "port": 9999, "protocol": "UDP",
                 "targets": [{"host": "10.9.9.9", "port": 30053}]},
    }))
    .unwrap();
    cache.apply_load_balancer(lb);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        [
            "add-finalizer".to_string(),
            format!("POST {U} default_manual"),
            "lb-status".into(),
            "event Normal UpdaterApplied".into()
        ]
    );
    let Action::UpdaterApply { request, .. } = &plan.actions[1] else {
        unreachable!()
    };
    assert_eq!(
        (request.lb_port, request.lb_protocol.as_str()),
        (9999, "UDP")
    );
    assert_eq!(
        plan.actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some(e.object.kind.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>(),
        ["LoadBalancer"]
    );
    execute(&mut cache, &plan);
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
    // Its port counts as taken for Services.
    assert!(
        cache
            .port_holder("203.0.113.7", 9999, Protocol::Udp, &key("x"))
            .is_some()
    );
    // User deletes it: backends removed, then the finalizer.
    execute(
        &mut cache,
        &Plan {
            actions: vec![Action::DeleteLoadBalancer {
                key: k.clone(),
                uid: "u1".into(),
            }],
        },
    );
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        [
            format!("DELETE {U} default_manual"),
            "remove-finalizer".into()
        ]
    );
    execute(&mut cache, &plan);
    assert!(!cache.load_balancers.contains_key(&k));
}

fn invalid_hand_made_lb_reports_once(rng: &mut Rng) {
    let mut cache = world(rng, vec![], vec![]);
    let k = key("manual");
    let lb: LoadBalancer = serde_json::from_value(json!({
        "metadata": {"name": "manual", "namespace": "default", "resourceVersion": "3", "generation": 1},
        "spec": {"httpUpdater": {"url": U}, "host": "h", "port": "eighty"},
    }))
    .unwrap();
    cache.apply_load_balancer(lb);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(kinds(&plan), ["lb-status", "event Warning InvalidSpec"]);
    let Action::Event(e) = &plan.actions[1] else {
        unreachable!()
    };
    assert_eq!(
        e.message,
        "LoadBalancer default/manual: spec.port: \"eighty\" is not an integer"
    );
    execute(&mut cache, &plan);
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
}

fn updater_failure_sets_error_then_retries(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    let first = reconcile(&cache, &k, &ctx());
    execute(&mut cache, &first);
    let plan = reconcile(&cache, &k, &ctx());
    // The first POST succeeded, the second failed.
    let failure = on_updater_error(&cache, &k, &ctx(), &plan, 1, "nginx -t failed", None);
    assert_eq!(
        kinds(&failure),
        ["lb-status", "event Warning UpdaterFailed"]
    );
    let Action::PatchLoadBalancerStatus { patch, .. } = &failure.actions[0] else {
        unreachable!()
    };
    assert_eq!(patch["status"]["phase"], json!("ERROR"));
    assert_eq!(
        patch["status"]["applied"][0]["backendName"],
        json!("default_web")
    );
    let Action::Event(e) = &failure.actions[1] else {
        unreachable!()
    };
    assert_eq!(
        e.message,
        format!("updater {U} refused backend default_web_https: nginx -t failed")
    );
    assert_eq!(e.object.kind, "Service");
    execute(&mut cache, &failure);
    // The same failure again writes nothing new (only the rate-limited Event).
    let again = on_updater_error(&cache, &k, &ctx(), &plan, 1, "nginx -t failed", None);
    assert_eq!(kinds(&again), ["event Warning UpdaterFailed"]);
    // The retry (after backoff) calls the updater again.
    let retry = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&retry)[..2],
        [
            format!("POST {U} default_web"),
            format!("POST {U} default_web_https")
        ]
    );
    execute(&mut cache, &retry);
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
    assert_eq!(
        ready_message(&cache.load_balancers[&k]),
        Some(
            "updater http://203.0.113.7:3000 serves 8000/TCP, 8001/TCP on 203.0.113.7 with 2 target(s)"
        )
    );
}

fn user_deletes_lb_of_live_service(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    execute(
        &mut cache,
        &Plan {
            actions: vec![Action::DeleteLoadBalancer {
                key: k.clone(),
                uid: "uid-lb".into(),
            }],
        },
    );
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(
        kinds(&plan),
        [
            format!("DELETE {U} default_web"),
            format!("DELETE {U} default_web_https"),
            "remove-finalizer".into()
        ]
    );
    execute(&mut cache, &plan);
    // Recreated with the same ports (lowest free again) on the next pass.
    assert_eq!(kinds(&reconcile(&cache, &k, &ctx())), ["create"]);
}

fn deletion_stops_waiting_on_an_updater_silent_past_the_grace(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    let delete = Plan {
        actions: vec![Action::DeleteLoadBalancer {
            key: k.clone(),
            uid: "uid-lb".into(),
        }],
    };
    execute(&mut cache, &delete);
    let at = |now_ms: u64| {
        let mut c = ctx();
        c.now_ms = now_ms;
        c.delete_grace_ms = 5_000;
        c.failing = [(U.to_string() + "/api/v1/lb", 1_000)].into();
        c
    };
    // Silent for less than the grace: the deletion still waits on it.
    assert_eq!(
        kinds(&reconcile(&cache, &k, &at(5_999))),
        [
            format!("DELETE {U} default_web"),
            format!("DELETE {U} default_web_https"),
            "remove-finalizer".into()
        ]
    );
    // Past it: let go, with one Warning Event on the config naming what is left where.
    let plan = reconcile(&cache, &k, &at(6_000));
    assert_eq!(
        kinds(&plan),
        ["event Warning BackendLeft", "remove-finalizer"]
    );
    let Action::Event(e) = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(
        (e.object.kind.as_str(), e.object.name.as_str()),
        ("LoadBalancerConfig", "edge")
    );
    assert!(
        e.message.contains("default_web on host 203.0.113.7")
            && e.message.contains("default_web_https"),
        "{}",
        e.message
    );
}

fn local_policy_targets_only_endpoint_nodes(rng: &mut Rng) {
    let mut svc = web();
    svc.spec.external_traffic_policy = Some("Local".into());
    let mut cache = world(rng, vec![svc], vec![edge()]);
    let k = key("web");
    let slice: crate::model::EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-1", "namespace": "default", "resourceVersion": "1", "labels": {"kubernetes.io/service-name": "web"}},
        "endpoints": [{"addresses": ["10.42.0.5"], "nodeName": "n2", "conditions": {"ready": true}}],
    }))
    .unwrap();
    assert_eq!(cache.apply_endpoint_slice(slice), [k.clone()].into());
    let plan = reconcile(&cache, &k, &ctx());
    let Action::CreateLoadBalancer { object, .. } = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(
        object["spec"]["targets"],
        json!([{"host": "10.0.0.2", "port": 31080}])
    );
}

/// Reconciles and executes until the plan is empty; returns the updater calls and the Events
/// as (type, reason, message).
fn converge_events(cache: &mut Cache, k: &Key) -> (Calls, Vec<(String, String, String)>) {
    let mut calls = Calls::new();
    let mut events = Vec::new();
    for _ in 0..10 {
        let plan = reconcile(cache, k, &ctx());
        if plan.is_empty() {
            return (calls, events);
        }
        for a in &plan.actions {
            if let Action::Event(e) = a {
                let t = e.type_.as_str().to_string();
                events.push((t, e.reason.clone(), e.message.clone()));
            }
        }
        calls.extend(execute(cache, &plan));
    }
    panic!("{k} did not converge: {:?}", reconcile(cache, k, &ctx()));
}

fn no_targets_deletes_the_backends_keeps_the_ports_and_resumes(rng: &mut Rng) {
    let mut svc = web();
    svc.spec.external_traffic_policy = Some("Local".into());
    let mut cache = world(rng, vec![svc], vec![edge()]);
    let k = key("web");
    let slice = |ready: bool, rv: &str| -> crate::model::EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "resourceVersion": rv,
                "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": ["10.42.0.5"], "nodeName": "n2", "conditions": {"ready": ready}}],
        }))
        .unwrap()
    };
    let posts = |calls: &Calls| calls.iter().filter(|c| c.0 == "POST").count();
    let ready = |cache: &Cache| cache.load_balancers[&k].status.conditions.clone();
    let ingress_ports = |cache: &Cache| {
        serde_json::to_value(&cache.services[&k].status.load_balancer.ingress).unwrap()[0]["ports"]
            .clone()
    };
    cache.apply_endpoint_slice(slice(true, "1"));
    let (calls, _) = converge_events(&mut cache, &k);
    assert_eq!(posts(&calls), 2);
    let ports = ingress_ports(&cache);
    assert_eq!(ports.as_array().map(Vec::len), Some(2));

    // Scaled to 0: no POST of an empty list; both backends deleted; the ports stay, in the
    // ingress too; Ready=False NoTargets saying why; one Warning Event.
    cache.apply_endpoint_slice(slice(false, "2"));
    let (calls, events) = converge_events(&mut cache, &k);
    assert_eq!(
        calls,
        [
            (
                "DELETE".to_string(),
                U.to_string(),
                "default_web".to_string()
            ),
            (
                "DELETE".to_string(),
                U.to_string(),
                "default_web_https".to_string()
            ),
        ]
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("Warning", "NoTargets")
    );
    let lb = &cache.load_balancers[&k];
    assert_eq!(lb.status.phase.as_deref(), Some("READY"));
    assert_eq!(lb.status.target_count, Some(0));
    assert_eq!(lb.spec.port.get(), Some(&8000));
    let conditions = ready(&cache);
    let c = condition(&conditions, READY).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "NoTargets")
    );
    assert!(
        c.message.contains("no node has a ready endpoint") && c.message.contains("8000/TCP"),
        "{}",
        c.message
    );
    assert_eq!(
        ingress_ports(&cache),
        ports,
        "the LB ports stay in the ingress"
    );
    assert!(
        reconcile(&cache, &k, &ctx()).is_empty(),
        "no retry, no repeat"
    );

    // Back: pushed again by itself, Ready=True, one Normal Event.
    cache.apply_endpoint_slice(slice(true, "3"));
    let (calls, events) = converge_events(&mut cache, &k);
    assert_eq!(posts(&calls), 2, "{calls:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("Normal", "TargetsAvailable")
    );
    let conditions = ready(&cache);
    assert_eq!(condition(&conditions, READY).unwrap().status, "True");

    // Cluster policy and no eligible node: the same, saying so.
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("db");
    cache.apply_service(service("db", &[("pg", "TCP", 5432, Some(31432))]));
    converge_events(&mut cache, &k);
    for n in ["n1", "n2", "n3"] {
        cache.apply_node(excluded(node(n, "False", &[("InternalIP", "10.0.0.9")])));
    }
    let (calls, events) = converge_events(&mut cache, &k);
    assert_eq!(
        calls,
        [(
            "DELETE".to_string(),
            U.to_string(),
            "default_db".to_string()
        )]
    );
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].2.contains("no eligible node (of 3 node(s)"),
        "{}",
        events[0].2
    );
}

/// `spec.ipFamilies` picks the family pushed: IPv6 only with IPv4-only nodes is
/// `Ready=False NoAddressInFamily` and a Warning Event, not an empty push; an IPv6 address on a node
/// serves it; a dual-stack Service gets both families in one upstream per port.
fn ip_families_pick_the_targets_and_an_unserved_family_is_reported(rng: &mut Rng) {
    let mut svc = service("v6", &[("http", "TCP", 80, Some(31080))]);
    svc.spec.ip_families = vec!["IPv6".into()];
    let mut cache = world(rng, vec![svc], vec![edge()]);
    let k = key("v6");
    let (reqs, events) = converge_requests(&mut cache, &k);
    assert!(reqs.is_empty(), "{reqs:?}");
    assert_eq!(events, ["Warning NoAddressInFamily"]);
    let lb = &cache.load_balancers[&k];
    let c = condition(&lb.status.conditions, READY).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "NoAddressInFamily")
    );
    assert!(
        c.message.contains("ipFamilies are IPv6") && c.message.contains("2 eligible"),
        "{}",
        c.message
    );
    assert!(reconcile(&cache, &k, &ctx()).is_empty(), "reported once");

    // n2 gains an IPv6 InternalIP: served on it alone, and the condition clears with an Event.
    let v6_node = || {
        node(
            "n2",
            "True",
            &[("InternalIP", "10.0.0.2"), ("InternalIP", "fd00::2")],
        )
    };
    let mut n2 = v6_node();
    n2.metadata.resource_version = "2".into();
    cache.apply_node(n2);
    let (reqs, events) = converge_requests(&mut cache, &k);
    assert_eq!(reqs.len(), 1);
    // On the wire IPv6 goes in brackets (the Go updater writes `server HOST:PORT;` verbatim).
    assert_eq!(upstreams(&reqs[0]), [("[fd00::2]".to_string(), 31080)]);
    assert_eq!(events, ["Normal TargetsAvailable"]);

    // Dual stack: every node in each family, in one upstream (one LB port, one backend).
    let mut dual = service("dual", &[("http", "TCP", 80, Some(31081))]);
    dual.spec.ip_families = vec!["IPv4".into(), "IPv6".into()];
    cache.apply_service(dual);
    let (reqs, _) = converge_requests(&mut cache, &key("dual"));
    let hosts: Vec<String> = upstreams(&reqs[0]).into_iter().map(|(h, _)| h).collect();
    assert_eq!(hosts, ["10.0.0.2", "198.51.100.1", "[fd00::2]"]);
    // IPv4 only: the IPv6 address is not pushed (no ipFamilies: the first address, as before).
    let mut v4 = service("v4", &[("http", "TCP", 80, Some(31082))]);
    v4.spec.ip_families = vec!["IPv4".into()];
    cache.apply_service(v4);
    let (reqs, _) = converge_requests(&mut cache, &key("v4"));
    let hosts: Vec<String> = upstreams(&reqs[0]).into_iter().map(|(h, _)| h).collect();
    assert_eq!(hosts, ["10.0.0.2", "198.51.100.1"]);

    // n2 loses its IPv6 address: the dual-stack Service stays served on IPv4, `DualStack=False`
    // names IPv6, one Warning; the address back, both families again and the condition goes.
    use crate::controller::decide::traffic::DUAL_STACK;
    let mut n2 = node("n2", "True", &[("InternalIP", "10.0.0.2")]);
    n2.metadata.resource_version = "3".into();
    cache.apply_node(n2);
    let (reqs, events) = converge_requests(&mut cache, &key("dual"));
    let hosts: Vec<String> = upstreams(&reqs[0]).into_iter().map(|(h, _)| h).collect();
    assert_eq!(hosts, ["10.0.0.2", "198.51.100.1"]);
    assert_eq!(events, ["Warning NoAddressInFamily"]);
    let c = condition_of(&cache, "dual", DUAL_STACK).expect("DualStack condition");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "NoAddressInFamily")
    );
    assert!(c.message.contains("served on IPv4 only"), "{}", c.message);
    let ready = condition_of(&cache, "dual", READY).unwrap();
    assert_eq!(ready.status, "True", "traffic flows: {}", ready.message);
    assert!(
        reconcile(&cache, &key("dual"), &ctx()).is_empty(),
        "reported once"
    );
    let mut n2 = v6_node();
    n2.metadata.resource_version = "4".into();
    cache.apply_node(n2);
    let (reqs, events) = converge_requests(&mut cache, &key("dual"));
    assert_eq!(reqs[0].upstream_servers.len(), 3, "{reqs:?}");
    assert!(
        events.iter().all(|e| !e.starts_with("Warning")),
        "{events:?}"
    );
    assert!(condition_of(&cache, "dual", DUAL_STACK).is_none());

    // An IPv6 LB host: the ingress `ip` holds the literal, without brackets.
    let v6_edge = config(
        "edge",
        true,
        "2001:db8::7",
        "http://[2001:db8::7]:3000",
        8000,
        8010,
    );
    let mut cache = world(rng, vec![web()], vec![v6_edge]);
    converge(&mut cache, &key("web"));
    let ingress = serde_json::to_value(&cache.services[&key("web")].status.load_balancer.ingress);
    assert_eq!(ingress.unwrap()[0]["ip"], "2001:db8::7");
}

fn go_era_lb_is_upgraded_once(rng: &mut Rng) {
    let mut cache = world(
        rng,
        vec![service("web", &[("http", "TCP", 80, Some(31080))])],
        vec![edge()],
    );
    let k = key("web");
    let lb: LoadBalancer = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "5", "generation": 3,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web", "controller": true}],
                     "finalizers": [FINALIZER]},
        "spec": {"configName": "edge", "httpUpdater": {"url": U}, "host": "203.0.113.7", "port": 8005, "protocol": "TCP",
                 "targets": [{"host": "198.51.100.1", "port": 31080}]},
        "status": {"phase": "READY", "targetCount": 1},
    }))
    .unwrap();
    cache.apply_load_balancer(lb);
    let plan = reconcile(&cache, &k, &ctx());
    assert_eq!(kinds(&plan), ["spec"], "no PortAllocated: the port is kept");
    let Action::PatchLoadBalancerSpec { patch, .. } = &plan.actions[0] else {
        unreachable!()
    };
    assert_eq!(patch["spec"]["port"], json!(8005));
    converge(&mut cache, &k);
    assert!(reconcile(&cache, &k, &ctx()).is_empty());
}

/// A user who rewrites the URL from the bare form to the Go form (or back) names the same updater:
/// the spec records the new spelling and the backends are pushed again, and nothing is deleted
/// (a DELETE after the POST would remove the backend just written, on the same updater).
fn url_respelled_to_the_go_form_is_the_same_updater(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![edge()]);
    let k = key("web");
    converge(&mut cache, &k);
    for (rv, url) in [
        ("2", "http://203.0.113.7:3000/api/v1/lb"),
        ("3", "http://203.0.113.7:3000/"),
    ] {
        let mut c = config("edge", true, "203.0.113.7", url, 8000, 8010);
        c.metadata.resource_version = rv.into();
        cache.apply_config(c);
        let calls = converge(&mut cache, &k);
        assert!(
            calls.iter().all(|(m, _, _)| m == "POST"),
            "{url}: {calls:?}"
        );
        assert_eq!(calls.len(), 2, "{url}: {calls:?}");
        let lb = &cache.load_balancers[&k];
        assert_eq!(
            lb.spec.http_updater.url.get().map(String::as_str),
            Some(url)
        );
        let applied: Vec<&str> = lb
            .status
            .applied
            .iter()
            .map(|b| b.backend_name.as_str())
            .collect();
        assert_eq!(
            applied,
            ["default_web", "default_web_https"],
            "one record per backend"
        );
    }
}

/// Under the old resolution a Go-form URL was called at `/api/v1/lb/api/v1/lb` and refused: the
/// LoadBalancer is in ERROR with its backend recorded as perhaps written. Upgraded, it is pushed
/// once to the right endpoint, and the record is not taken for a stale backend elsewhere.
fn lb_errored_under_the_old_resolution_converges_without_orphans(rng: &mut Rng) {
    let go_url = "http://203.0.113.7:3000/api/v1/lb";
    let go = config("edge", true, "203.0.113.7", go_url, 8000, 8010);
    let mut cache = world(
        rng,
        vec![service("web", &[("http", "TCP", 80, Some(31080))])],
        vec![go],
    );
    let k = key("web");
    let lb: LoadBalancer = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u", "resourceVersion": "5", "generation": 1,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "uid-web", "controller": true}],
                     "finalizers": [FINALIZER]},
        "spec": {"configName": "edge", "httpUpdater": {"url": go_url}, "host": "203.0.113.7", "port": 8000, "protocol": "TCP",
                 "targets": [{"host": "10.0.0.2", "port": 31080}, {"host": "198.51.100.1", "port": 31080}],
                 "ports": [{"name": "http", "port": 8000, "protocol": "TCP", "nodePort": 31080,
                            "targets": [{"host": "10.0.0.2", "port": 31080}, {"host": "198.51.100.1", "port": 31080}]}]},
        "status": {"phase": "ERROR", "targetCount": 2, "observedGeneration": 1,
                   "applied": [{"backendName": "default_web", "url": go_url, "host": "203.0.113.7", "port": 8000, "protocol": "TCP"}]},
    }))
    .unwrap();
    cache.apply_load_balancer(lb);
    let calls = converge(&mut cache, &k);
    assert_eq!(
        calls,
        [(
            "POST".to_string(),
            go_url.to_string(),
            "default_web".to_string()
        )]
    );
    let lb = &cache.load_balancers[&k];
    assert_eq!(lb.status.phase.as_deref(), Some("READY"));
    assert_eq!(lb.status.applied.len(), 1);
}

type Case = (&'static str, fn(&mut Rng));

/// (host, port) of each upstream a request sends.
fn upstreams(r: &LbRequest) -> Vec<(String, u16)> {
    (r.upstream_servers.iter())
        .map(|u| (u.host.clone(), u.port))
        .collect()
}

/// Reconciles to convergence; returns the updater requests and the event reasons on the way.
fn converge_requests(cache: &mut Cache, k: &Key) -> (Vec<LbRequest>, Vec<String>) {
    let (mut reqs, mut events) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let plan = reconcile(cache, k, &ctx());
        if plan.is_empty() {
            return (reqs, events);
        }
        for a in &plan.actions {
            match a {
                Action::UpdaterApply { request, .. } => reqs.push(request.clone()),
                Action::Event(EventSpec { type_, reason, .. }) => {
                    events.push(format!("{} {reason}", type_.as_str()))
                }
                _ => {}
            }
        }
        execute(cache, &plan);
    }
    panic!(
        "{k} did not converge: {:?} {:?}",
        kinds(&reconcile(cache, k, &ctx())),
        crate::model::LbSpec::from_resource(&cache.load_balancers[k].spec)
    );
}

fn traffic_fields_reach_the_updater_requests(rng: &mut Rng) {
    let mut svc = service(
        "web",
        &[
            ("http", "TCP", 80, Some(31080)),
            ("dns", "UDP", 53, Some(31053)),
        ],
    );
    svc.spec.external_traffic_policy = Some("Local".into());
    svc.spec.health_check_node_port = Some(31555);
    svc.spec.load_balancer_source_ranges = vec!["127.0.0.2/32".into(), "10.9.8.7/8".into()];
    svc.metadata
        .annotations
        .insert("lb.paperlb.com/proxy-protocol".into(), "true".into());
    let mut cache = world(rng, vec![svc.clone()], vec![edge()]);
    // A ready endpoint (without one nothing is POSTed: `no_targets`).
    cache.apply_endpoint_slice(
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "resourceVersion": "1",
                "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": [{"addresses": ["10.42.0.5"], "nodeName": "n2", "conditions": {"ready": true}}],
        }))
        .unwrap(),
    );
    let (reqs, events) = converge_requests(&mut cache, &key("web"));
    let warned = events
        .iter()
        .filter(|e| *e == "Warning ProxyProtocolUnsupported")
        .count();
    assert_eq!(warned, 1, "{events:?}");
    let c = condition(
        &cache.load_balancers[&key("web")].status.conditions,
        "ProxyProtocol",
    )
    .expect("ProxyProtocol condition");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "ProxyProtocolUnsupported")
    );
    assert!(c.message.contains("dns"), "{}", c.message);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let check = Some(crate::model::LbHealthCheck {
        kind: "http".into(),
        port: Some(31555),
        path: "/healthz".into(),
        timings: Default::default(),
    });
    for r in &reqs {
        assert_eq!(r.traffic.source_ranges, ["127.0.0.2/32", "10.0.0.0/8"]);
        assert_eq!(r.traffic.health_check, check.as_ref().map(|h| h.to_api()));
        assert_eq!(r.traffic.proxy_protocol, r.lb_protocol == "TCP", "{r:?}");
    }
    // The stored LoadBalancer holds them, so a restart over it writes nothing.
    let lb = &cache.load_balancers[&key("web")];
    let spec = crate::model::LbSpec::from_resource(&lb.spec).unwrap();
    assert_eq!(spec.traffic.health_check, check);
    assert!(reconcile(&cache, &key("web"), &ctx()).is_empty());
    // The wire body: Cluster services ask for kube-proxy's node check.
    let json = serde_json::to_value(&reqs[0]).unwrap();
    assert_eq!(
        json["healthCheck"],
        json!({"type": "http", "port": 31555, "path": "/healthz"})
    );

    // An invalid CIDR: condition + Event, nothing pushed (the old config keeps serving).
    let mut bad = cache.services[&key("web")].as_ref().clone();
    bad.spec.load_balancer_source_ranges = vec!["127.0.0.2/33".into()];
    bad.metadata.resource_version = "99".into();
    cache.apply_service(bad);
    let plan = reconcile(&cache, &key("web"), &ctx());
    assert_eq!(
        kinds(&plan),
        ["lb-status", "event Warning InvalidSourceRange"],
        "{plan:?}"
    );
    // A new Service with an invalid annotation gets only the Event: no LoadBalancer, no port.
    let mut fresh = service("api", &[("http", "TCP", 80, Some(31081))]);
    fresh.metadata.annotations.insert(
        "service.beta.kubernetes.io/load-balancer-source-ranges".into(),
        "10.0.0.0".into(),
    );
    let cache = world(rng, vec![fresh], vec![edge()]);
    assert_eq!(
        kinds(&reconcile(&cache, &key("api"), &ctx())),
        ["event Warning InvalidSourceRange"]
    );
}

fn affinity_and_balance_annotations_reach_the_requests_and_the_spec(rng: &mut Rng) {
    use crate::controller::decide::traffic::{BALANCE_ANNOTATION, BALANCING, TIMEOUT_ANNOTATIONS};
    let mut svc = service("db", &[("pg", "TCP", 5432, Some(31432))]);
    svc.spec.session_affinity = Some("ClientIP".into());
    let a = &mut svc.metadata.annotations;
    a.insert(BALANCE_ANNOTATION.into(), "least-conn".into());
    a.insert(TIMEOUT_ANNOTATIONS[0].into(), "3600".into());
    a.insert(TIMEOUT_ANNOTATIONS[1].into(), "soon".into());
    let mut cache = world(rng, vec![svc], vec![edge()]);
    let (reqs, events) = converge_requests(&mut cache, &key("db"));
    // The Service field wins; the bad connect timeout falls back to the config's (0 = unset).
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.traffic.balance.as_deref(), Some("hash"));
        assert_eq!(
            (r.proxy_timeout_seconds, r.proxy_connect_timeout_seconds),
            (3600, 0)
        );
    }
    let wire = serde_json::to_value(&reqs[0]).unwrap();
    assert_eq!(wire["balance"], "hash");
    let warnings: Vec<&String> = events.iter().filter(|e| e.starts_with("Warning")).collect();
    assert_eq!(
        warnings,
        ["Warning SessionAffinityWins"],
        "once: {events:?}"
    );
    let c = condition_of(&cache, "db", BALANCING).expect("Balancing condition");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "SessionAffinityWins")
    );
    assert!(
        c.message.contains("proxy-connect-timeout-seconds \"soon\""),
        "{}",
        c.message
    );
    assert_eq!(
        cache.load_balancers[&key("db")]
            .spec
            .balance
            .get()
            .map(String::as_str),
        Some("hash")
    );

    // Back to round robin: the spec loses `balance`, the request leaves it out, the condition goes.
    let mut plain = cache.services[&key("db")].as_ref().clone();
    plain.spec.session_affinity = None;
    plain.metadata.annotations.clear();
    plain.metadata.resource_version = "99".into();
    cache.apply_service(plain);
    let (reqs, events) = converge_requests(&mut cache, &key("db"));
    assert!(
        events.iter().all(|e| !e.starts_with("Warning")),
        "{events:?}"
    );
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.traffic.balance, None, "round robin");
        let wire = serde_json::to_value(r).unwrap();
        assert!(wire.get("balance").is_none(), "{wire}");
    }
    assert!(cache.load_balancers[&key("db")].spec.balance.is_missing());
    assert!(condition_of(&cache, "db", BALANCING).is_none());
}

fn condition_of<'a>(
    cache: &'a Cache,
    name: &str,
    type_: &str,
) -> Option<&'a crate::model::Condition> {
    condition(&cache.load_balancers[&key(name)].status.conditions, type_)
}

fn requested_ports_granted_refused_and_moved(rng: &mut Rng) {
    use crate::controller::decide::port_requests::{LB_PORTS_ANNOTATION, PORT_REQUEST};
    let annotate = |s: &mut Service, v: Option<&str>| {
        match v {
            Some(v) => s
                .metadata
                .annotations
                .insert(LB_PORTS_ANNOTATION.into(), v.into()),
            None => s.metadata.annotations.remove(LB_PORTS_ANNOTATION),
        };
        let rv: u64 = s.metadata.resource_version.parse().unwrap_or(1);
        s.metadata.resource_version = (rv + 100).to_string();
    };
    let mut front = service("front", &[("http", "TCP", 80, Some(31080))]);
    annotate(&mut front, Some("http=8005"));
    let mut web = service(
        "web",
        &[
            ("admin", "TCP", 9000, Some(31900)),
            ("http", "TCP", 80, Some(31081)),
        ],
    );
    annotate(&mut web, Some("http=8005"));
    let mut cache = world(rng, vec![front], vec![edge()]);
    converge(&mut cache, &key("front"));
    assert_eq!(
        crate::model::LbSpec::from_resource(&cache.load_balancers[&key("front")].spec)
            .unwrap()
            .ports[0]
            .port,
        8005,
        "granted"
    );
    assert_eq!(
        condition_of(&cache, "front", PORT_REQUEST).unwrap().status,
        "True"
    );

    // The waiter: its other port is served, the requested one is not; the holder keeps it.
    cache.apply_service(web.clone());
    let mut events = Vec::new();
    for _ in 0..10 {
        let plan = reconcile(&cache, &key("web"), &ctx());
        if plan.is_empty() {
            break;
        }
        events.extend(
            kinds(&plan)
                .into_iter()
                .filter(|k| k.starts_with("event Warning")),
        );
        execute(&mut cache, &plan);
    }
    assert_eq!(
        events,
        ["event Warning PortUnavailable"],
        "one Event per new fault"
    );
    let spec =
        crate::model::LbSpec::from_resource(&cache.load_balancers[&key("web")].spec).unwrap();
    let ports: Vec<(&str, u16)> = spec
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.port))
        .collect();
    assert_eq!(ports, [("admin", 8000)]);
    let c = condition_of(&cache, "web", PORT_REQUEST).unwrap();
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "PortUnavailable")
    );
    assert!(
        c.message.contains("held by LoadBalancer default/front"),
        "{}",
        c.message
    );

    // The holder goes: its release requeues the waiter, which is granted with one POST.
    cache.delete_service(&key("front"));
    converge(&mut cache, &key("front"));
    assert!(!cache.load_balancers.contains_key(&key("front")));
    // Every port of a changed spec is POSTed again (the updater answers `unchanged` for the
    // others, without a reload); nothing is deleted.
    let want = vec![
        ("POST".to_string(), U.to_string(), "default_web".to_string()),
        (
            "POST".to_string(),
            U.to_string(),
            "default_web_http".to_string(),
        ),
    ];
    assert_eq!(converge(&mut cache, &key("web")), want);
    let spec =
        crate::model::LbSpec::from_resource(&cache.load_balancers[&key("web")].spec).unwrap();
    assert_eq!(spec.ports[1].port, 8005);
    assert_eq!(
        condition_of(&cache, "web", PORT_REQUEST).unwrap().status,
        "True"
    );

    // A changed request moves that port alone: its backend is POSTed with the new port (same
    // name: the updater moves it in one change), no DELETE.
    let mut web = cache.services[&key("web")].as_ref().clone();
    annotate(&mut web, Some("http=8007"));
    cache.apply_service(web.clone());
    assert_eq!(converge(&mut cache, &key("web")), want);
    let spec =
        crate::model::LbSpec::from_resource(&cache.load_balancers[&key("web")].spec).unwrap();
    assert_eq!((spec.ports[0].port, spec.ports[1].port), (8000, 8007));

    // Removed: the port keeps its allocation (no call), and the condition goes.
    let mut web = cache.services[&key("web")].as_ref().clone();
    annotate(&mut web, None);
    cache.apply_service(web.clone());
    assert_eq!(converge(&mut cache, &key("web")), Calls::new());
    assert!(condition_of(&cache, "web", PORT_REQUEST).is_none());

    // Outside the range, for a new single-port Service: nothing to serve, an Event, no LoadBalancer.
    let mut dns = service("dns", &[("dns", "UDP", 53, Some(31053))]);
    annotate(&mut dns, Some("dns=53"));
    cache.apply_service(dns);
    let plan = reconcile(&cache, &key("dns"), &ctx());
    assert_eq!(kinds(&plan), ["event Warning PortUnavailable"], "{plan:?}");
}

/// Two ports of one Service that swap LB ports (one is requested where the other was), or one
/// that takes the port of another POSTed after it: each plan deletes the backend in the way before
/// POSTing the one that takes its port, as the updater holds one backend per port and answers 409
/// otherwise, on every retry.
fn own_ports_that_swap_lb_ports_free_them_first(rng: &mut Rng) {
    use crate::controller::decide::port_requests::LB_PORTS_ANNOTATION;
    let admin = ("admin", "TCP", 9000, Some(31900));
    let http = ("http", "TCP", 80, Some(31081));
    for (ports, also) in [([admin, http], ""), ([http, admin], ",admin=8009")] {
        let mut cache = world(rng, vec![service("web", &ports)], vec![edge()]);
        converge(&mut cache, &key("web"));
        let lb = &cache.load_balancers[&key("web")];
        let spec = crate::model::LbSpec::from_resource(&lb.spec).unwrap();
        let at =
            |s: &crate::model::LbSpec, name| s.ports.iter().find(|p| p.name == name).unwrap().port;
        let admins = at(&spec, "admin");
        // The updater as the LoadBalancer left it: (LB port, protocol) → backend.
        let mut held: std::collections::BTreeMap<(i64, String), String> = lb
            .status
            .applied
            .iter()
            .map(|b| ((b.port, b.protocol.clone()), b.backend_name.clone()))
            .collect();
        let mut web = cache.services[&key("web")].as_ref().clone();
        let request = format!("http={admins}{also}");
        web.metadata
            .annotations
            .insert(LB_PORTS_ANNOTATION.into(), request);
        web.metadata.resource_version = "500".into();
        cache.apply_service(web);
        for _ in 0..10 {
            let plan = reconcile(&cache, &key("web"), &ctx());
            for a in &plan.actions {
                match a {
                    Action::UpdaterDelete { backend_name, .. } => {
                        held.retain(|_, n| n != backend_name)
                    }
                    Action::UpdaterApply { request: r, .. } => {
                        let at = (i64::from(r.lb_port), r.lb_protocol.clone());
                        let holder = held.get(&at).filter(|n| **n != r.backend_name);
                        assert_eq!(
                            holder,
                            None,
                            "409 for {}: {:?}",
                            r.backend_name,
                            kinds(&plan)
                        );
                        held.retain(|_, n| *n != r.backend_name);
                        held.insert(at, r.backend_name.clone());
                    }
                    _ => {}
                }
            }
            if plan.is_empty() {
                break;
            }
            execute(&mut cache, &plan);
        }
        let lb = &cache.load_balancers[&key("web")];
        let spec = crate::model::LbSpec::from_resource(&lb.spec).unwrap();
        assert_eq!(at(&spec, "http"), admins, "http took admin's port");
        assert_ne!(at(&spec, "admin"), admins);
    }
}

/// KEP-3458: with a health check in force a NotReady flip or the autoscaler's taint queues nothing
/// and costs no call and no write, while the exclude label does; with checks off, against the Go
/// updater or under `--stable-node-set=false` a flip re-pushes and the status says why.
fn node_set_rule_decides_what_a_readiness_flip_costs(rng: &mut Rng) {
    use crate::controller::decide::traffic::STABLE_NODE_SET;
    let k = key("web");
    let converge_with = |cache: &mut Cache, ctx: &Context| {
        let mut calls = Calls::new();
        for _ in 0..10 {
            let plan = reconcile(cache, &k, ctx);
            if plan.is_empty() {
                return calls;
            }
            calls.extend(execute(cache, &plan));
        }
        panic!("{k} did not converge");
    };
    let hosts = |cache: &Cache| -> Vec<String> {
        let spec = LbSpec::from_resource(&cache.load_balancers[&k].spec).unwrap();
        spec.ports[0]
            .targets
            .iter()
            .map(|t| t.host.clone())
            .collect()
    };
    let reason = |cache: &Cache| {
        condition(&cache.load_balancers[&k].status.conditions, STABLE_NODE_SET)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let n1 = |ready: &str| {
        node(
            "n1",
            ready,
            &[("InternalIP", "10.0.0.1"), ("ExternalIP", "198.51.100.1")],
        )
    };
    let go =
        json!([{"type": "DriftCheck", "status": "False", "reason": "Unsupported", "message": "m"}]);
    // (case, config healthCheck, the updater is the Go one, --stable-node-set, expected reason)
    type Case = (
        &'static str,
        Option<Value>,
        bool,
        bool,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        ("checks on (default)", None, false, true, None),
        (
            "checks off",
            Some(json!({"type": "none"})),
            false,
            true,
            Some("NoHealthCheck"),
        ),
        ("Go updater", None, true, true, Some("UpdaterWithoutChecks")),
        ("flag off", None, false, false, Some("Disabled")),
    ];
    for (name, check, go_updater, flag, want) in cases {
        let mut cfg = edge();
        if let Some(c) = check {
            cfg.spec.health_check = serde_json::from_value(c).unwrap();
        }
        let mut ctx = ctx();
        ctx.stable_node_set = flag;
        let mut cache = world(rng, vec![web()], vec![cfg]);
        converge_with(&mut cache, &ctx);
        if go_updater {
            // What the worker writes when the updater has no GET /api/v1/lb.
            let patch = json!({"status": {"conditions": go}});
            let lb = patched(&cache.load_balancers[&k], &patch);
            cache.apply_load_balancer(lb);
            assert!(
                converge_with(&mut cache, &ctx).is_empty(),
                "{name}: no call"
            );
        }
        assert_eq!(
            reason(&cache),
            want.map(|r| ("False".to_string(), r.to_string())),
            "{name}"
        );
        assert_eq!(hosts(&cache), ["10.0.0.2", "198.51.100.1"], "{name}");
        let queued = cache.apply_node(n1("False"));
        let mut doomed = n1("False");
        doomed.spec.taints = serde_json::from_value(
            json!([{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]),
        )
        .unwrap();
        let queued_taint = cache.apply_node(doomed);
        let calls = converge_with(&mut cache, &ctx);
        if want.is_none() {
            assert!(
                queued.is_empty() && queued_taint.is_empty(),
                "{name}: nothing queued"
            );
            assert!(calls.is_empty(), "{name}: {calls:?}");
            assert_eq!(
                hosts(&cache),
                ["10.0.0.2", "198.51.100.1"],
                "{name}: n1 stays"
            );
        } else {
            assert!(queued.contains(&k), "{name}: queued");
            let posts = calls.iter().filter(|c| c.0 == "POST").count();
            assert_eq!(posts, 2, "{name}: both ports re-pushed: {calls:?}");
            assert_eq!(hosts(&cache), ["10.0.0.2"], "{name}: n1 leaves");
        }
        // Excluded by label: it leaves under every rule.
        cache.apply_node(excluded(n1("True")));
        converge_with(&mut cache, &ctx);
        assert_eq!(hosts(&cache), ["10.0.0.2"], "{name}: excluded");
    }
}

fn config_health_check_override_reaches_the_requests(rng: &mut Rng) {
    let svc = service(
        "web",
        &[
            ("http", "TCP", 80, Some(31080)),
            ("dns", "UDP", 53, Some(31053)),
        ],
    );
    let mut cfg = edge();
    cfg.spec.health_check =
        serde_json::from_value(json!({"type": "tcp", "intervalSeconds": 7})).unwrap();
    let mut cache = world(rng, vec![svc], vec![cfg]);
    let (reqs, _) = converge_requests(&mut cache, &key("web"));
    let check = |proto: &str| {
        reqs.iter()
            .find(|r| r.lb_protocol == proto)
            .map(|r| r.traffic.health_check.clone())
            .expect("request")
    };
    let tcp = check("TCP").expect("a tcp check");
    assert_eq!(
        (tcp.kind.as_str(), tcp.port, tcp.interval_seconds),
        ("tcp", None, Some(7)),
        "the nodePort itself, every 7 s"
    );
    assert_eq!(check("UDP"), None, "a UDP nodePort cannot take a tcp check");
    // The apply's status carries a figure for the checked port only (both targets count ready).
    let lb = &cache.load_balancers[&key("web")];
    assert_eq!(lb.status.healthy.as_deref(), Some("2/2"));
    assert_eq!(lb.status.ports.len(), 1);
    // type: none sends no check at all, and the stored spec says so.
    let mut cfg = edge();
    cfg.spec.health_check = serde_json::from_value(json!({"type": "none"})).unwrap();
    cfg.metadata.resource_version = "2".into();
    cache.apply_config(cfg);
    let (reqs, _) = converge_requests(&mut cache, &key("web"));
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter().all(|r| r.traffic.health_check.is_none()),
        "{reqs:?}"
    );
    let lb = &cache.load_balancers[&key("web")];
    assert!(lb.status.ports.is_empty() && lb.status.healthy.is_none());
}

#[test]
fn reconcile_tables_in_shuffled_order() {
    let cases: Vec<Case> = vec![
        (
            "new service",
            new_service_two_ports_creates_lb_without_event,
        ),
        (
            "unapplied",
            unapplied_lb_gets_updater_calls_status_and_ingress,
        ),
        (
            "converged/restart",
            converged_cluster_and_restart_write_nothing,
        ),
        (
            "node flip",
            node_flip_patches_spec_then_applies_without_service_write,
        ),
        ("service deleted", deleted_service_cleans_up_without_gc),
        ("type switched", type_switch_cleans_up_and_clears_status),
        ("class", other_class_is_not_ours),
        (
            "config problems",
            config_problems_give_event_and_condition_only,
        ),
        ("invalid services", invalid_services),
        ("exhaustion", port_exhaustion_reports_config_and_range),
        ("port added/removed", port_added_and_removed),
        ("config timeouts", config_timeout_change_is_applied_again),
        (
            "unrecorded apply",
            backends_of_an_unrecorded_apply_are_recorded_before_the_spec_forgets_them,
        ),
        (
            "moved",
            moved_to_another_updater_deletes_old_backend_after_apply,
        ),
        ("hand-made", hand_made_lb_applied_as_is_and_cleaned_up),
        ("hand-made invalid", invalid_hand_made_lb_reports_once),
        ("updater failure", updater_failure_sets_error_then_retries),
        ("user deletes lb", user_deletes_lb_of_live_service),
        (
            "silent updater past the delete grace",
            deletion_stops_waiting_on_an_updater_silent_past_the_grace,
        ),
        ("local policy", local_policy_targets_only_endpoint_nodes),
        (
            "no targets",
            no_targets_deletes_the_backends_keeps_the_ports_and_resumes,
        ),
        (
            "ip families",
            ip_families_pick_the_targets_and_an_unserved_family_is_reported,
        ),
        ("traffic fields", traffic_fields_reach_the_updater_requests),
        (
            "affinity and balance",
            affinity_and_balance_annotations_reach_the_requests_and_the_spec,
        ),
        ("requested ports", requested_ports_granted_refused_and_moved),
        (
            "own ports swapping",
            own_ports_that_swap_lb_ports_free_them_first,
        ),
        (
            "config health check",
            config_health_check_override_reaches_the_requests,
        ),
        (
            "node set rule",
            node_set_rule_decides_what_a_readiness_flip_costs,
        ),
        ("go-era lb", go_era_lb_is_upgraded_once),
        (
            "url respelled",
            url_respelled_to_the_go_form_is_the_same_updater,
        ),
        (
            "old resolution",
            lb_errored_under_the_old_resolution_converges_without_orphans,
        ),
    ];
    let mut cases = cases;
    cases.extend(several_hosts::cases());
    let mut rng = Rng::new(2024);
    for _ in 0..10 {
        for (_, case) in shuffled(&cases, &mut rng) {
            case(&mut rng);
        }
    }
}
