//! Reconcile tables for the config's `hosts` form: every host gets each port, a failing host gets
//! no calls and leaves the ingress after the grace, a failed push leaves the others serving, a
//! removed host's backends are deleted without holding anything up, a deleted Service waits for a
//! failing host only for the delete grace, and a port is allocated only where it is free on every
//! host.

use super::*;

const A: &str = "http://127.0.0.2:3000";
const B: &str = "http://127.0.0.3:3000/api/v1/lb";
const A_ENDPOINT: &str = "http://127.0.0.2:3000/api/v1/lb";
const B_ENDPOINT: &str = "http://127.0.0.3:3000/api/v1/lb";

fn two_hosts(hosts: &[(&str, &str, &str)]) -> LoadBalancerConfig {
    let hosts: Vec<Value> = hosts
        .iter()
        .map(|(n, h, u)| json!({"name": n, "host": h, "httpUpdaterURL": u}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "pair", "namespace": NS, "resourceVersion": "1"},
        "spec": {"default": true, "hosts": hosts, "portRange": {"low": 8000, "high": 8010}},
    }))
    .unwrap()
}

fn pair() -> LoadBalancerConfig {
    two_hosts(&[("a", "127.0.0.2", A), ("b", "127.0.0.3", B)])
}

fn ctx_at(now_ms: u64, failing: &[(&str, u64)]) -> Context {
    let mut c = ctx();
    c.now_ms = now_ms;
    c.failing = failing.iter().map(|(e, s)| (e.to_string(), *s)).collect();
    c
}

fn converge_with(cache: &mut Cache, k: &Key, c: &Context) -> Calls {
    let mut calls = Calls::new();
    for _ in 0..10 {
        let plan = reconcile(cache, k, c);
        if plan.is_empty() {
            return calls;
        }
        calls.extend(execute(cache, &plan));
    }
    panic!("{k} did not converge: {:?}", reconcile(cache, k, c));
}

fn ingress_ips(cache: &Cache, k: &Key) -> Vec<String> {
    cache.services[k]
        .status
        .load_balancer
        .ingress
        .iter()
        .filter_map(|i| i.ip.clone())
        .collect()
}

fn host_condition(cache: &Cache, k: &Key, name: &str) -> (String, String) {
    let lb = &cache.load_balancers[k];
    let c = condition(&lb.status.conditions, &hosts::condition_type(name)).expect("host condition");
    (c.status.clone(), c.reason.clone())
}

fn phase(cache: &Cache, k: &Key) -> String {
    cache.load_balancers[k]
        .status
        .phase
        .clone()
        .unwrap_or_default()
}

fn every_host_gets_every_port_and_ingress_lists_both(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![pair()]);
    let k = key("web");
    let calls = converge(&mut cache, &k);
    let posts: Vec<(String, String)> = calls
        .iter()
        .filter(|c| c.0 == "POST")
        .map(|c| (c.1.clone(), c.2.clone()))
        .collect();
    assert_eq!(posts.len(), 4, "{calls:?}");
    for url in [A, B] {
        for b in ["default_web", "default_web_https"] {
            assert!(posts.contains(&(url.into(), b.into())), "{posts:?}");
        }
    }
    assert_eq!(phase(&cache, &k), "READY");
    assert_eq!(host_condition(&cache, &k, "a").0, "True");
    assert_eq!(host_condition(&cache, &k, "b").0, "True");
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2", "127.0.0.3"]);
    let lb = &cache.load_balancers[&k];
    assert_eq!(lb.status.hosts.as_deref(), Some("2/2"));
    assert_eq!(lb.spec.host.get().map(String::as_str), Some("127.0.0.2"));
    assert_eq!(lb.status.applied.len(), 4);
    // Converged: nothing to do, also with both hosts answering.
    assert!(reconcile(&cache, &k, &ctx_at(1_000, &[])).is_empty());
}

fn failing_host_gets_no_calls_and_leaves_ingress_after_the_grace(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![pair()]);
    let k = key("web");
    converge(&mut cache, &k);
    let grace = ctx().host_grace_ms;
    let since = 100_000;
    // Within the grace: nothing changes, b stays in the ingress.
    let within = ctx_at(since + grace - 1, &[(B_ENDPOINT, since)]);
    assert!(reconcile(&cache, &k, &within).is_empty());
    // After it: b's condition goes False, the phase DEGRADED, the ingress keeps only a; no calls.
    let after = ctx_at(since + grace, &[(B_ENDPOINT, since)]);
    let calls = converge_with(&mut cache, &k, &after);
    assert!(calls.is_empty(), "{calls:?}");
    assert_eq!(
        host_condition(&cache, &k, "b"),
        ("False".into(), "Unreachable".into())
    );
    assert_eq!(phase(&cache, &k), hosts::PHASE_DEGRADED);
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2"]);
    // A node flip meanwhile goes to a only.
    cache.apply_node(node("n4", "True", &[("InternalIP", "10.0.0.4")]));
    let calls = converge_with(&mut cache, &k, &after);
    assert!(calls.iter().all(|c| c.1 == A), "{calls:?}");
    assert_eq!(calls.len(), 2, "{calls:?}");
    // b answers again: it gets the current spec, and the ingress both hosts.
    let calls = converge_with(&mut cache, &k, &ctx_at(since + grace + 10, &[]));
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| c.0 == "POST" && c.1 == B), "{calls:?}");
    assert_eq!(phase(&cache, &k), "READY");
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2", "127.0.0.3"]);
    // Both fail past the grace: phase ERROR, but the ingress is left as it was (no host serves,
    // nothing better to point at, and nginx may still forward), as the Go form always did.
    let both = ctx_at(
        since + 3 * grace,
        &[(A_ENDPOINT, since + grace), (B_ENDPOINT, since + grace)],
    );
    converge_with(&mut cache, &k, &both);
    assert_eq!(phase(&cache, &k), "ERROR");
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2", "127.0.0.3"]);
}

fn failed_push_to_one_host_leaves_the_other_serving(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![pair()]);
    let k = key("web");
    let first = reconcile(&cache, &k, &ctx());
    execute(&mut cache, &first); // the create
    let plan = reconcile(&cache, &k, &ctx());
    let failed = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::UpdaterApply { url, .. } if url == B))
        .expect("a push to b");
    let fallback = on_updater_error(&cache, &k, &ctx(), &plan, failed, "port in use", None);
    execute(&mut cache, &fallback);
    assert_eq!(phase(&cache, &k), hosts::PHASE_DEGRADED);
    assert_eq!(
        host_condition(&cache, &k, "a"),
        ("True".into(), "Applied".into())
    );
    assert_eq!(
        host_condition(&cache, &k, "b"),
        ("False".into(), "UpdaterFailed".into())
    );
    // The retry pushes to b only, and a is in the ingress meanwhile.
    let retry = reconcile(&cache, &k, &ctx());
    let calls = execute(&mut cache, &retry);
    assert!(
        calls.iter().all(|c| c.1 == B) && calls.len() == 2,
        "{calls:?}"
    );
    converge(&mut cache, &k);
    assert_eq!(phase(&cache, &k), "READY");
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2", "127.0.0.3"]);
}

fn removed_host_is_cleaned_up_best_effort_and_added_host_gets_everything(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![pair()]);
    let k = key("web");
    converge(&mut cache, &k);
    let mut one = two_hosts(&[("a", "127.0.0.2", A)]);
    one.metadata.resource_version = "2".into();
    cache.apply_config(one);
    let mut deletes = Vec::new();
    let mut posts = 0;
    for _ in 0..10 {
        let plan = reconcile(&cache, &k, &ctx());
        if plan.is_empty() {
            break;
        }
        for a in &plan.actions {
            match a {
                Action::UpdaterDelete {
                    url, best_effort, ..
                } => deletes.push((url.clone(), *best_effort)),
                Action::UpdaterApply { .. } => posts += 1,
                _ => {}
            }
        }
        execute(&mut cache, &plan);
    }
    assert_eq!(deletes, [(B.to_string(), true), (B.to_string(), true)]);
    assert_eq!(posts, 0, "a holds the spec: the removal sends it nothing");
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2"]);
    assert!(
        cache.load_balancers[&k]
            .status
            .applied
            .iter()
            .all(|b| b.url == A)
    );
    assert!(condition(&cache.load_balancers[&k].status.conditions, "Host-b").is_none());
    // Added back: b gets both ports.
    let mut back = pair();
    back.metadata.resource_version = "3".into();
    cache.apply_config(back);
    let calls = converge(&mut cache, &k);
    let to_b = calls.iter().filter(|c| c.0 == "POST" && c.1 == B).count();
    assert_eq!(to_b, 2, "{calls:?}");
    // a holds the spec already: one POST per port to the new host, none to the others.
    assert!(calls.iter().all(|c| c.1 == B), "{calls:?}");
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2", "127.0.0.3"]);
    // To the Go form on host a: the hosts form's conditions and figure go, b loses our backends.
    let mut go = config("pair", true, "127.0.0.2", A, 8000, 8010);
    go.metadata.resource_version = "5".into();
    cache.apply_config(go);
    let calls = converge(&mut cache, &k);
    assert!(
        calls.iter().all(|c| (c.0 == "POST") == (c.1 == A)),
        "{calls:?}"
    );
    let lb = &cache.load_balancers[&k];
    assert!(lb.spec.hosts.is_empty() && lb.status.hosts.is_none());
    assert!(
        lb.status
            .conditions
            .iter()
            .all(|c| !c.type_.starts_with("Host-")),
        "{:?}",
        lb.status.conditions
    );
    assert_eq!(phase(&cache, &k), "READY");
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2"]);
}

fn port_taken_on_one_host_is_not_allocated(rng: &mut Rng) {
    // A single-host config on b's address holds 8000 there.
    let solo = config(
        "solo",
        false,
        "127.0.0.3",
        "http://127.0.0.3:3001",
        8000,
        8000,
    );
    let mut other = service("other", &[("", "TCP", 53, Some(30053))]);
    other
        .metadata
        .annotations
        .insert(CONFIG_ANNOTATION.into(), "solo".into());
    let mut cache = world(rng, vec![other, web()], vec![pair(), solo]);
    converge(&mut cache, &key("other"));
    converge(&mut cache, &key("web"));
    let ports: Vec<u16> = LbSpec::from_resource(&cache.load_balancers[&key("web")].spec)
        .unwrap()
        .ports
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [8001, 8002]);
}

/// Was `deleted_service_is_not_held_up_by_a_failing_host` (the failing host's deletes were best
/// effort at once, the stray left to drift repair without an Event). Both forms now follow the
/// Go form's rule (issue 22): a failing updater holds the deletion up until
/// `--unreachable-delete-grace`, then it is let go; drift repair removes what is left there.
fn deleted_service_waits_for_a_failing_host_only_for_the_delete_grace(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![pair()]);
    let k = key("web");
    converge(&mut cache, &k);
    cache.delete_service(&k);
    let mut failing = ctx_at(1_000, &[(B_ENDPOINT, 500)]);
    failing.delete_grace_ms = 5_000;
    let plan = reconcile(&cache, &k, &failing);
    let deletes: Vec<(String, bool)> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::UpdaterDelete {
                url, best_effort, ..
            } => Some((url.clone(), *best_effort)),
            _ => None,
        })
        .collect();
    // Both hosts are asked, and every delete must succeed (none is best effort).
    assert_eq!(deletes.len(), 4, "{deletes:?}");
    assert!(deletes.iter().all(|(_, b)| !b), "{deletes:?}");
    // Past the grace: only the answering host is asked; the other is let go (`stuck_delete`).
    failing.now_ms = 5_500;
    let plan = reconcile(&cache, &k, &failing);
    let asked: Vec<String> = kinds(&plan)
        .into_iter()
        .filter(|k| k.starts_with("DELETE"))
        .collect();
    assert_eq!(
        asked,
        [
            format!("DELETE {A} default_web"),
            format!("DELETE {A} default_web_https")
        ]
    );
    assert!(kinds(&plan).ends_with(&["remove-finalizer".to_string(), "delete".to_string()]));
}

fn no_targets_deletes_on_every_host_and_keeps_both_in_the_ingress(rng: &mut Rng) {
    let mut cache = world(rng, vec![web()], vec![pair()]);
    let k = key("web");
    converge(&mut cache, &k);
    for n in ["n1", "n2", "n3"] {
        cache.apply_node(excluded(node(n, "False", &[("InternalIP", "10.0.0.9")])));
    }
    let calls = converge(&mut cache, &k);
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(calls.iter().all(|c| c.0 == "DELETE"), "{calls:?}");
    let lb = &cache.load_balancers[&k];
    let ready = condition(&lb.status.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NoTargets")
    );
    assert_eq!(ingress_ips(&cache, &k), ["127.0.0.2", "127.0.0.3"]);
    // A later reconcile (a restart, another node) writes nothing: Ready keeps its transition time.
    let mut later = ctx();
    later.now = "2031-01-01T00:00:00Z".into();
    let plan = reconcile(&cache, &k, &later);
    assert!(plan.is_empty(), "{plan:?}");
    cache.apply_node(node("n1", "True", &[("InternalIP", "10.0.0.1")]));
    let calls = converge(&mut cache, &k);
    assert_eq!(
        calls.iter().filter(|c| c.0 == "POST").count(),
        4,
        "{calls:?}"
    );
}

pub(super) fn cases() -> Vec<Case> {
    vec![
        (
            "hosts: all ports everywhere",
            every_host_gets_every_port_and_ingress_lists_both,
        ),
        (
            "hosts: grace",
            failing_host_gets_no_calls_and_leaves_ingress_after_the_grace,
        ),
        (
            "hosts: failed push",
            failed_push_to_one_host_leaves_the_other_serving,
        ),
        (
            "hosts: removed and added",
            removed_host_is_cleaned_up_best_effort_and_added_host_gets_everything,
        ),
        (
            "hosts: port taken on one",
            port_taken_on_one_host_is_not_allocated,
        ),
        (
            "hosts: no targets",
            no_targets_deletes_on_every_host_and_keeps_both_in_the_ingress,
        ),
        (
            "hosts: deleted with one failing",
            deleted_service_waits_for_a_failing_host_only_for_the_delete_grace,
        ),
    ]
}
