//! Unit tests of the explain diagnosis: facts in, the expected failing step out. Each case builds a
//! healthy world, breaks one thing, and checks that the diagnosis stops at the step that names it.

use super::super::facts::{Facts, HostFact, Listing, ReadError};
use super::*;
use crate::controller::testutil::{Rng, shuffled};
use crate::controller::{Action, reconcile};
use crate::explain::explain;
use crate::model::{Event, LbHost, LoadBalancerConfig, Node, ObjectReference};
use crate::updater::Error;
use crate::updater::api::LbRequest;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Every step id, in the order the steps run: the cluster's, then each host's (the JSON schema and
/// the README list them).
const STEP_IDS: [&str; 14] = [
    "service",
    "class",
    "conflict",
    "config",
    "secrets",
    "nodeports",
    "nodes",
    "ports",
    "loadbalancer",
    "reachable",
    "authorized",
    "answering",
    "backend",
    "upstreams",
];

const NS: &str = "paperlb-system";
const URL: &str = "http://127.0.0.1:3000";
const HOST: &str = "127.0.0.10";

fn svc() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-web"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 31000}]},
    })
}

fn node(name: &str, ready: bool, ip: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        },
    })
}

fn config(name: &str, default: bool) -> Value {
    json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"default": default, "httpUpdaterURL": URL, "host": HOST, "portRange": {"low": 8100, "high": 8199}},
    })
}

fn config_fact(raw: Value) -> LoadBalancerConfig {
    serde_json::from_value(raw).unwrap()
}

/// A world before the controller acted: the Service, two Ready nodes, one default config.
fn world(service: Value) -> Facts {
    let mut f = Facts::empty(Key::new("default", "web"));
    f.service = Ok(Some(serde_json::from_value(service).unwrap()));
    f.nodes = Ok(vec![
        serde_json::from_value::<Node>(node("a", true, "127.0.0.2")).unwrap(),
        serde_json::from_value::<Node>(node("b", true, "127.0.0.3")).unwrap(),
    ]);
    f.configs = Ok(vec![config_fact(config("edge", true))]);
    f
}

/// Each host's credentials as `gather::secrets` finds them when the namespace holds `secrets`
/// (name → data).
fn auths_with(cfg: &ValidConfig, secrets: Value) -> Vec<Auth> {
    let mut store = SecretStore::default();
    store.want(cfg.all_refs().into_iter().collect());
    for (name, data) in secrets.as_object().unwrap() {
        let s = json!({"metadata": {"name": name, "namespace": NS}, "data": data});
        store.apply(serde_json::from_value(s).unwrap());
    }
    auths(cfg, &store)
}

/// The first host's problem (see [`auths_with`]).
fn first_problem(cfg: &ValidConfig, secrets: Value) -> Option<AuthProblem> {
    auths_with(cfg, secrets)[0].clone().err()
}

/// The config references a token Secret (`reference`); the namespace holds `secrets`.
fn with_token_secret(reference: Value, secrets: Value) -> Facts {
    let mut c = config("edge", true);
    c["spec"]["updaterTokenSecretRef"] = reference;
    let mut f = world(svc());
    let fact = config_fact(c);
    f.secrets = vec![Ok(first_problem(&fact.validate().unwrap(), secrets))];
    f.configs = Ok(vec![fact]);
    f
}

/// LoadBalancer `<namespace>/other`, holding `port`/TCP on the LB host.
fn holding(namespace: &str, port: u16) -> LoadBalancer {
    serde_json::from_value(json!({
        "metadata": {"name": "other", "namespace": namespace},
        "spec": {"host": HOST, "port": port, "protocol": "TCP"},
    }))
    .unwrap()
}

fn ctx() -> Context {
    Context::new(NS, "2026-01-01T00:00:00Z")
}

/// The world after the controller applied: the LoadBalancer it writes (from its own decision),
/// READY, and the updater listing exactly the implied backends.
fn served_world() -> Facts {
    served(svc())
}

/// The updater calls a reconcile of `key` plans once the LoadBalancer's status is cleared (not
/// applied): every backend on every host, as (raw updater URL, request).
fn pushed(cache: &Cache, key: &Key, ctx: &Context) -> Vec<(String, LbRequest)> {
    let mut cache = cache.clone();
    if let Some(lb) = cache.load_balancers.get(key) {
        let mut lb = lb.as_ref().clone();
        lb.status = LoadBalancerStatus::default();
        lb.metadata.resource_version = format!("{}-explain", lb.metadata.resource_version);
        cache.apply_load_balancer(lb);
    }
    (reconcile(&cache, key, ctx).actions.into_iter())
        .filter_map(|a| match a {
            Action::UpdaterApply { url, request, .. } => Some((url, request)),
            _ => None,
        })
        .collect()
}

/// `service` served: its LoadBalancer as the controller writes it, and the updater listing what
/// a reconcile pushes to it.
fn served(service: Value) -> Facts {
    let mut f = world(service);
    let cache = cache_of(&f);
    let s = f.service.clone().unwrap().unwrap();
    let (spec, _) = desired(&cache, &f.key, &s, None, &ctx())
        .ok()
        .flatten()
        .unwrap();
    let lb = json!({
        "metadata": {
            "name": "web", "namespace": "default", "uid": "u-lb", "generation": 2, "resourceVersion": "7",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u-web", "controller": true}],
            "finalizers": [crate::model::FINALIZER],
        },
        "spec": spec.to_json(),
        "status": {"phase": "READY", "observedGeneration": 2},
    });
    let lb: LoadBalancer = serde_json::from_value(lb).unwrap();
    f.load_balancer = Ok(Some(lb.clone()));
    f.load_balancers = Ok(vec![lb]);
    let requests = pushed(&cache_of(&f), &f.key, &ctx());
    f.hosts = vec![HostFact {
        host: LbHost {
            name: HOST.into(),
            host: HOST.into(),
            url: URL.into(),
        },
        probe: Ok(Ok(Listing {
            backends: requests.into_iter().map(|(_, r)| r).collect(),
            ..Listing::default()
        })),
    }];
    f
}

/// The updater at `URL` did not answer.
fn transport(detail: &str) -> Error {
    Error::Transport {
        url: URL.into(),
        detail: detail.into(),
    }
}

/// The updater has no `GET /api/v1/lb` (the Go one).
fn unsupported(code: u16) -> Error {
    Error::Unsupported {
        code,
        message: "404 page not found".into(),
    }
}

fn listing(f: &mut Facts) -> &mut Listing {
    match &mut f.hosts[0].probe {
        Ok(Ok(l)) => l,
        _ => panic!("not listed"),
    }
}

/// The first failed step (cluster steps, then the first host's), as (id, message, fix).
fn first_failure(r: &Report) -> Option<(&'static str, String, String)> {
    r.steps
        .iter()
        .chain(r.hosts.iter().flat_map(|h| h.steps.iter()))
        .find(|s| s.status == Status::Fail)
        .map(|s| (s.id, s.message.clone(), s.fix.clone().unwrap_or_default()))
}

fn denied(what: &str) -> ReadError {
    ReadError {
        what: what.into(),
        message: "forbidden".into(),
        needs: format!("{what} (RBAC)"),
    }
}

type Case = (&'static str, fn() -> Facts, &'static str, &'static str);

#[test]
fn each_diagnosis_stops_at_its_step() {
    let cases: Vec<Case> = vec![
        (
            "missing service",
            || {
                let mut f = world(svc());
                f.service = Ok(None);
                f
            },
            "service",
            "does not exist",
        ),
        (
            "ClusterIP",
            || {
                let mut s = svc();
                s["spec"]["type"] = json!("ClusterIP");
                world(s)
            },
            "service",
            "type ClusterIP",
        ),
        (
            "another class",
            || {
                let mut s = svc();
                s["spec"]["loadBalancerClass"] = json!("metallb.io/metallb");
                world(s)
            },
            "class",
            "metallb.io/metallb",
        ),
        (
            "k3s ServiceLB",
            || {
                let mut f = world(svc());
                f.svclb = Ok(vec!["kube-system/svclb-web-u-web".into()]);
                f
            },
            "conflict",
            "svclb-web",
        ),
        (
            "no default config",
            || {
                let mut f = world(svc());
                f.configs = Ok(vec![config_fact(config("edge", false))]);
                f
            },
            "config",
            "default: true",
        ),
        (
            "annotated config missing",
            || {
                let mut s = svc();
                s["metadata"]["annotations"] = json!({"lb.paperlb.com/config-name": "nope"});
                world(s)
            },
            "config",
            "nope",
        ),
        (
            "ambiguous default",
            || {
                let mut f = world(svc());
                f.configs = Ok(vec![
                    config_fact(config("edge", true)),
                    config_fact(config("other", true)),
                ]);
                f
            },
            "config",
            "edge, other",
        ),
        (
            "invalid config",
            || {
                let mut c = config("edge", true);
                c["spec"]["portRange"] = json!({"low": 9000, "high": 8000});
                let mut f = world(svc());
                f.configs = Ok(vec![config_fact(c)]);
                f
            },
            "config",
            "spec.portRange",
        ),
        (
            "token Secret missing",
            || with_token_secret(json!({"name": "upd"}), json!({})),
            "secrets",
            "(Secret \"upd\", key \"token\"): no such Secret in namespace paperlb-system",
        ),
        (
            "token Secret without the key",
            || {
                let secrets = json!({"upd": {"token": "eA=="}});
                with_token_secret(json!({"name": "upd", "key": "tok"}), secrets)
            },
            "secrets",
            "(Secret \"upd\", key \"tok\"): the Secret has no such key",
        ),
        (
            "token Secret with an empty key",
            || with_token_secret(json!({"name": "upd"}), json!({"upd": {"token": "Cg=="}})),
            "secrets",
            "spec.updaterTokenSecretRef (Secret \"upd\", key \"token\"): ",
        ),
        (
            "nodePorts disabled",
            || {
                let mut s = svc();
                s["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
                s["spec"]["ports"][0]["nodePort"] = Value::Null;
                world(s)
            },
            "nodeports",
            "allocateLoadBalancerNodePorts",
        ),
        (
            "no eligible node",
            || {
                let mut f = world(svc());
                // Checks off: NotReady and doomed nodes leave the targets (KEP-3458 otherwise).
                let mut c = config("edge", true);
                c["spec"]["healthCheck"] = json!({"type": "none"});
                f.configs = Ok(vec![config_fact(c)]);
                let mut excluded = node("c", true, "127.0.0.4");
                excluded["metadata"]["labels"] =
                    json!({"node.kubernetes.io/exclude-from-external-load-balancers": ""});
                let mut tainted = node("d", true, "127.0.0.5");
                tainted["spec"] = json!({"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]});
                let mut no_addr = node("e", true, "x");
                no_addr["status"]["addresses"] = json!([{"type": "Hostname", "address": "e"}]);
                f.nodes = Ok([
                    node("a", false, "127.0.0.2"),
                    node("b", false, "127.0.0.3"),
                    excluded,
                    tainted,
                    no_addr,
                ]
                .into_iter()
                .map(|n| serde_json::from_value(n).unwrap())
                .collect());
                f
            },
            "nodes",
            "of 5 nodes, 2 NotReady, 1 excluded by label node.kubernetes.io/exclude-from-external-load-balancers, 1 tainted ToBeDeletedByClusterAutoscaler, 1 without an address",
        ),
        (
            "Local without endpoints",
            || {
                let mut s = svc();
                s["spec"]["externalTrafficPolicy"] = json!("Local");
                world(s)
            },
            "nodes",
            "2 without a ready endpoint",
        ),
        (
            "IPv6-only Service, IPv4 nodes",
            || {
                let mut s = svc();
                s["spec"]["ipFamilies"] = json!(["IPv6"]);
                world(s)
            },
            "nodes",
            "of 2 nodes, 2 without an address of the wanted types and IP families",
        ),
        (
            "port range exhausted",
            || {
                let mut c = config("edge", true);
                c["spec"]["portRange"] = json!({"low": 8100, "high": 8100});
                let mut f = world(svc());
                f.configs = Ok(vec![config_fact(c)]);
                f.load_balancers = Ok(vec![holding("default", 8100)]);
                f
            },
            "ports",
            "1/1 TCP used",
        ),
        (
            "requested port held",
            || {
                let mut s = svc();
                s["metadata"]["annotations"] = json!({"lb.paperlb.com/lb-ports": "http=8150"});
                let mut f = world(s);
                f.load_balancers = Ok(vec![holding("team", 8150)]);
                f
            },
            "ports",
            "held by LoadBalancer team/other",
        ),
        (
            "requested port outside the range",
            || {
                let mut s = svc();
                s["metadata"]["annotations"] = json!({"lb.paperlb.com/lb-ports": "80=53"});
                world(s)
            },
            "ports",
            "outside the range 8100-8199",
        ),
        (
            // The controller serves the first and leaves the second out (PortRequest=False).
            "requested port asked twice",
            || {
                let mut s = svc();
                let https =
                    json!({"name": "https", "port": 443, "protocol": "TCP", "nodePort": 31001});
                s["spec"]["ports"].as_array_mut().unwrap().push(https);
                s["metadata"]["annotations"] =
                    json!({"lb.paperlb.com/lb-ports": "http=8150,https=8150"});
                world(s)
            },
            "ports",
            "port https asks for LB port 8150/TCP (lb.paperlb.com/lb-ports), which another port",
        ),
        (
            "requested port unreadable",
            || {
                let mut s = svc();
                s["metadata"]["annotations"] = json!({"lb.paperlb.com/lb-ports": "dns=53"});
                world(s)
            },
            "ports",
            "annotation lb.paperlb.com/lb-ports: \"dns=53\": the Service has no port \"dns\"",
        ),
        (
            "no LoadBalancer yet",
            || {
                let mut f = world(svc());
                f.events = Ok(vec![Event {
                    involved_object: ObjectReference {
                        kind: "Service".into(),
                        ..Default::default()
                    },
                    type_: "Warning".into(),
                    reason: "Odd".into(),
                    message: "something odd".into(),
                    count: 1,
                    last_timestamp: "t".into(),
                    ..Default::default()
                }]);
                f
            },
            "loadbalancer",
            "something odd",
        ),
        (
            "LoadBalancer behind the nodes",
            || {
                let mut f = served_world();
                f.nodes.as_mut().unwrap().pop();
                f
            },
            "loadbalancer",
            "has not caught up",
        ),
        (
            "LoadBalancer being deleted",
            || {
                let mut f = served_world();
                if let Ok(Some(lb)) = &mut f.load_balancer {
                    lb.metadata.deletion_timestamp = Some("2024-05-01T10:00:00Z".into());
                }
                f
            },
            "loadbalancer",
            "waits to delete default_web from updater",
        ),
        (
            "updater unreachable",
            || {
                let mut f = served_world();
                f.hosts[0].probe = Ok(Err(transport("connection refused")));
                f
            },
            "reachable",
            "connection refused",
        ),
        (
            "updater wants a token",
            || {
                let mut f = served_world();
                f.hosts[0].probe = Ok(Err(Error::Unauthorized {
                    code: 401,
                    message: "missing or wrong bearer token".into(),
                }));
                f
            },
            "authorized",
            "names none",
        ),
        (
            "updater refusing",
            || {
                let mut f = served_world();
                f.hosts[0].probe = Ok(Err(Error::Refused {
                    code: 500,
                    message: "disk full".into(),
                }));
                f
            },
            "answering",
            "500: disk full",
        ),
        (
            "updater list unreadable",
            || {
                let mut f = served_world();
                f.hosts[0].probe = Ok(Err(Error::Decode {
                    url: "http://127.0.0.1:3000/api/v1/lb".into(),
                    detail: "missing field `backends`".into(),
                }));
                f
            },
            "answering",
            "with a list paperlb cannot read: missing field `backends`",
        ),
        (
            "backend missing",
            || {
                let mut f = served_world();
                listing(&mut f).backends.clear();
                f
            },
            "backend",
            "default_web (8100/TCP) is missing",
        ),
        (
            "backend drifted",
            || {
                let mut f = served_world();
                listing(&mut f).backends[0].upstream_servers.pop();
                f
            },
            "backend",
            "upstreams [127.0.0.2:31000] (wanted [127.0.0.2:31000, 127.0.0.3:31000])",
        ),
        (
            "backend balance drifted",
            || {
                let mut f = served_world();
                listing(&mut f).backends[0].traffic.balance = Some("least-conn".into());
                f
            },
            "backend",
            "balance least-conn (wanted round-robin)",
        ),
        (
            "upstreams unhealthy",
            || {
                let mut f = served_world();
                for u in &mut listing(&mut f).backends[0].upstream_servers {
                    u.health.healthy = Some(false);
                }
                f
            },
            "upstreams",
            // The probe the updater runs (kube-proxy's port by default), not the nodePort.
            "default_web → 127.0.0.3:31000 (its probe: http://127.0.0.2:10256/healthz, http://127.0.0.3:10256/healthz)",
        ),
    ];
    let mut rng = Rng::new(15);
    for _ in 0..3 {
        for (name, make, id, text) in shuffled(&cases, &mut rng) {
            let f = make();
            let r = explain(&f, &ctx());
            let (got, message, fix) =
                first_failure(&r).unwrap_or_else(|| panic!("{name}: no failure in {r:#?}"));
            assert_eq!(got, *id, "{name}: {message}");
            assert!(message.contains(text), "{name}: {message:?} lacks {text:?}");
            assert!(!fix.is_empty(), "{name}: no fix");
            assert!(!r.served(), "{name}: served");
            assert_eq!(r.exit_code(), 1, "{name}: not served");
            // Stops there: nothing after the failing cluster step.
            if let Some(i) = r.steps.iter().position(|s| s.status == Status::Fail) {
                assert_eq!(i + 1, r.steps.len(), "{name}: steps after the failure");
                assert!(
                    r.hosts.is_empty(),
                    "{name}: hosts checked after a cluster failure"
                );
            }
        }
    }
}

#[test]
fn a_served_service_passes_every_step() {
    let mut f = served_world();
    let r = explain(&f, &ctx());
    assert!(r.served(), "{r:#?}");
    assert_eq!(r.exit_code(), 0);
    let ids: Vec<(&str, Status)> = r
        .steps
        .iter()
        .chain(&r.hosts[0].steps)
        .map(|s| (s.id, s.status))
        .collect();
    let want = STEP_IDS;
    assert_eq!(ids.iter().map(|(i, _)| *i).collect::<Vec<_>>(), want);
    // No health reported: unknown, not a failure.
    assert!(
        ids.iter()
            .all(|(i, s)| *s == Status::Ok || (*i == "upstreams" && *s == Status::Unknown)),
        "{ids:?}"
    );
    // Healthy upstreams make the last step pass; one unhealthy of two fails it but still serves.
    for u in &mut listing(&mut f).backends[0].upstream_servers {
        u.health.healthy = Some(true);
    }
    let r = explain(&f, &ctx());
    assert_eq!(r.hosts[0].steps.last().map(|s| s.status), Some(Status::Ok));
    listing(&mut f).backends[0].upstream_servers[0]
        .health
        .healthy = Some(false);
    let r = explain(&f, &ctx());
    assert_eq!(
        r.hosts[0].steps.last().map(|s| s.status),
        Some(Status::Fail)
    );
    assert!(r.served(), "one healthy upstream still serves");
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn the_ports_step_names_the_balance_and_what_the_affinity_rule_ignored() {
    let ports_step = |f: &Facts| {
        let r = explain(f, &ctx());
        assert!(r.served(), "{r:#?}");
        let step = r.steps.iter().find(|s| s.id == "ports").unwrap().clone();
        assert_eq!(step.status, Status::Ok);
        step.message
    };
    assert_eq!(
        ports_step(&served_world()),
        "LB port 8100/TCP on 127.0.0.10"
    );
    let mut s = svc();
    s["spec"]["sessionAffinity"] = json!("ClientIP");
    s["metadata"]["annotations"] = json!({"lb.paperlb.com/balance": "least-conn"});
    let mut f = served(s);
    assert_eq!(
        listing(&mut f).backends[0].traffic.balance.as_deref(),
        Some("hash")
    );
    assert_eq!(
        ports_step(&f),
        "LB port 8100/TCP on 127.0.0.10; balance hash; annotation lb.paperlb.com/balance asks \
         for least-conn, but spec.sessionAffinity: ClientIP keeps each client on one node: hash \
         (of the client address) is used"
    );
}

/// Against the Go nginx-lb-updater (no `GET`: `DriftCheck=False`, `Unsupported`) a balance other
/// than round robin is not served: the controller pushes round robin and sets `Balancing=False`,
/// `UpdaterWithoutBalance`; the ports step says so and what to do (still served, round robin).
#[test]
fn the_ports_step_says_the_go_updater_serves_round_robin_not_the_asked_balance() {
    let go_updater = |s: Value| {
        let mut f = served(s);
        let Ok(Some(lb)) = &mut f.load_balancer else {
            panic!("no LoadBalancer")
        };
        lb.status.conditions = serde_json::from_value(json!([
            {"type": "DriftCheck", "status": "False", "reason": "Unsupported", "message": "404"},
        ]))
        .unwrap();
        f.hosts[0].probe = Ok(Err(unsupported(404)));
        let r = explain(&f, &ctx());
        assert!(
            r.served(),
            "READY decides for an updater without GET: {r:#?}"
        );
        let step = r.steps.iter().find(|s| s.id == "ports").unwrap().clone();
        assert_eq!(step.status, Status::Ok);
        step.message
    };
    let mut s = svc();
    s["metadata"]["annotations"] = json!({"lb.paperlb.com/balance": "least-conn"});
    assert_eq!(
        go_updater(s),
        "LB port 8100/TCP on 127.0.0.10; balance least-conn is not served (Balancing=False, \
         UpdaterWithoutBalance): the updater is the Go nginx-lb-updater, which serves round robin \
         only; for least-conn run the paperlb updater (paperlb nginx-updater) on the LB host, or \
         drop the annotation lb.paperlb.com/balance"
    );
    let mut s = svc();
    s["spec"]["sessionAffinity"] = json!("ClientIP");
    assert_eq!(
        go_updater(s),
        "LB port 8100/TCP on 127.0.0.10; balance hash is not served (Balancing=False, \
         UpdaterWithoutBalance): the updater is the Go nginx-lb-updater, which serves round robin \
         only; for hash run the paperlb updater (paperlb nginx-updater) on the LB host, or drop \
         spec.sessionAffinity: ClientIP"
    );
    // ClientIP wins over a bad annotation value (InvalidAnnotation): only ClientIP sets the hash.
    let mut s = svc();
    s["spec"]["sessionAffinity"] = json!("ClientIP");
    s["metadata"]["annotations"] = json!({"lb.paperlb.com/balance": "fastest"});
    let message = go_updater(s);
    assert!(
        message.contains("on the LB host, or drop spec.sessionAffinity: ClientIP; annotation"),
        "the annotation is not what to drop"
    );
    // The condition's reason is its first fault, as the controller records it.
    assert!(
        message.contains("(Balancing=False, InvalidAnnotation)"),
        "{message}"
    );
    // Round robin asked (or nothing): nothing to say.
    let mut s = svc();
    s["metadata"]["annotations"] = json!({"lb.paperlb.com/balance": "round-robin"});
    assert_eq!(go_updater(s), "LB port 8100/TCP on 127.0.0.10");
}

#[test]
fn an_unreadable_service_or_config_stops_at_an_unknown_step_exit_2() {
    let mut f = world(svc());
    f.service = Err(denied("get services default/web"));
    let mut g = world(svc());
    g.configs = Err(denied("list loadbalancerconfigs"));
    for (f, id) in [(f, "service"), (g, "config")] {
        let r = explain(&f, &ctx());
        let last = r.steps.last().expect("a step");
        assert_eq!((last.id, last.status), (id, Status::Unknown), "{r:#?}");
        assert!(last.message.contains("(needs "), "{}", last.message);
        assert!(first_failure(&r).is_none() && r.hosts.is_empty(), "{r:#?}");
        assert_eq!(r.exit_code(), 2, "could not tell");
    }
}

#[test]
fn failed_reads_are_unknown_steps_and_the_rest_goes_on() {
    let mut f = served_world();
    f.svclb = Err(denied("list daemonsets"));
    f.nodes = Err(denied("list nodes"));
    let r = explain(&f, &ctx());
    let status = |id: &str| r.steps.iter().find(|s| s.id == id).map(|s| s.status);
    assert_eq!(status("conflict"), Some(Status::Unknown));
    assert_eq!(status("nodes"), Some(Status::Unknown));
    assert_eq!(f.failed_reads().len(), 2);
    // Without nodes the controller's decision has no targets: the LoadBalancer looks behind.
    assert_eq!(first_failure(&r).map(|f| f.0), Some("loadbalancer"));
}

#[test]
fn an_updater_without_get_leaves_the_lb_status_to_decide() {
    let mut f = served_world();
    f.hosts[0].probe = Ok(Err(unsupported(405)));
    let r = explain(&f, &ctx());
    assert!(r.served());
    assert_eq!(
        r.hosts[0].steps.last().map(|s| (s.id, s.status)),
        Some(("answering", Status::Unknown))
    );
}

#[test]
fn not_targets_agrees_with_the_controllers_targets() {
    let mut rng = Rng::new(3);
    for round in 0..200 {
        let mut f = world(svc());
        let local = rng.below(2) == 0;
        let mut nodes = Vec::new();
        let mut slices = Vec::new();
        for i in 0..rng.below(6) {
            let mut n = node(
                &format!("n{i}"),
                rng.below(3) > 0,
                &format!("127.0.0.{}", 2 + rng.below(3)),
            );
            match rng.below(5) {
                0 => {
                    n["metadata"]["labels"] =
                        json!({"node.kubernetes.io/exclude-from-external-load-balancers": "true"})
                }
                1 => n["status"]["addresses"] = json!([]),
                2 => n["metadata"]["deletionTimestamp"] = json!("t"),
                _ => {}
            }
            if rng.below(2) == 0 {
                slices.push(json!({"addresses": ["10.0.0.1"], "nodeName": format!("n{i}")}));
            }
            nodes.push(serde_json::from_value(n).unwrap());
        }
        f.nodes = Ok(nodes);
        f.slices = Ok(vec![serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "endpoints": slices,
        })).unwrap()]);
        let cache = cache_of(&f);
        let types = ctx().address_types;
        let stable = rng.below(2) == 0;
        let local_nodes = local.then(|| cache.local_nodes(&f.key));
        let why = not_targets(&cache, local_nodes.as_ref(), (&types, &[]), stable);
        let targets = targets_for(1, &cache.nodes, (&types, &[]), local_nodes.as_ref(), stable);
        let mut hosts: Vec<String> = cache
            .nodes
            .iter()
            .filter(|(n, _)| !why.contains_key(*n))
            .filter_map(|(_, node)| {
                crate::controller::decide::targets::node_address(node, &types).map(str::to_string)
            })
            .collect();
        hosts.sort();
        hosts.dedup();
        let want: Vec<String> = targets.iter().map(|t| t.host.clone()).collect();
        assert_eq!(hosts, want, "round {round}");
    }
}

/// The probe reads an updater's list with the controller's own decoder (the drift check's
/// `list_each`): each upstream's health and the version as listed; a backend that does not decode
/// makes the answer unreadable (`Decode`, the answering step's failure), as it does for the drift
/// check, instead of being left out.
#[test]
fn the_probe_reads_health_and_version_as_the_drift_check_does() {
    use crate::http::{Limits, Request, Response, Server};
    let good = json!({"backendName": "a", "lbPort": 8100, "lbProtocol": "TCP",
        "upstreamServers": [{"host": "127.0.0.2", "port": 31000, "healthy": false},
                            {"host": "127.0.0.3", "port": 31000}]});
    let answer = std::sync::Arc::new(std::sync::Mutex::new(json!({})));
    let served = answer.clone();
    let server = Server::bind(
        "127.0.0.1:0",
        Limits::default(),
        None,
        move |_: &Request| Response::json(200, &*served.lock().unwrap()),
    )
    .unwrap();
    let host = LbHost::unnamed("127.0.0.10", &format!("http://{}", server.local_addr()));
    *answer.lock().unwrap() = json!({"version": "0.1.0", "backends": [good]});
    let l = crate::explain::gather::probe(&host, &Ok(Default::default())).unwrap();
    assert_eq!(l.version.as_deref(), Some("0.1.0"));
    let healthy: Vec<(&str, Option<bool>)> = (l.backends[0].upstream_servers.iter())
        .map(|u| (u.host.as_str(), u.health.healthy))
        .collect();
    assert_eq!(healthy, [("127.0.0.2", Some(false)), ("127.0.0.3", None)]);
    *answer.lock().unwrap() = json!({"backends": [good, {"backendName": 7}]});
    let e = crate::explain::gather::probe(&host, &Ok(Default::default())).unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");
}

#[test]
fn the_secrets_step_names_each_field_and_defaults_the_key() {
    let cfg = |refs: Value| {
        let mut c = config("edge", true);
        for (k, v) in refs.as_object().unwrap() {
            c["spec"][k] = v.clone();
        }
        config_fact(c).validate().unwrap()
    };
    let both = cfg(json!({
        "updaterTokenSecretRef": {"name": "t"},
        "updaterCASecretRef": {"name": "c", "key": "bundle.pem"},
    }));
    assert_eq!(
        secrets_step(&both, &[Ok(None)]).message,
        "Secret paperlb-system/t (spec.updaterTokenSecretRef) has key token; \
         Secret paperlb-system/c (spec.updaterCASecretRef) has key bundle.pem"
    );
    for none in [json!({"updaterTokenSecretRef": null}), json!({})] {
        let step = secrets_step(&cfg(none), &[Ok(None)]);
        assert!(
            step.message.contains("references no updater Secret"),
            "{step:?}"
        );
    }
    // A Secret that could not be read: not checked, not a stop.
    let step = secrets_step(&both, &[Err(denied("get secrets paperlb-system/t"))]);
    assert_eq!(step.status, Status::Unknown);
    // The hosts form: the first host's own token, as the config's validation resolved it.
    let c = json!({"metadata": {"name": "edge", "namespace": NS}, "spec": {
        "default": true, "portRange": {"low": 8100, "high": 8199}, "hosts": [
            {"name": "lb-1", "host": HOST, "httpUpdaterURL": URL, "updaterTokenSecretRef": {"name": "t1"}},
        ],
    }});
    let listed = config_fact(c).validate().unwrap();
    // Its step names where such a reference can come from, never a field the config lacks.
    let field = "updaterTokenSecretRef of spec.hosts[0], or of spec when the host names none";
    let m = secrets_step(&listed, &[Ok(None)]).message;
    assert!(
        m.contains(&format!("Secret paperlb-system/t1 ({field})")),
        "{m}"
    );
    let step = secrets_step(&listed, &[Ok(first_problem(&listed, json!({})))]);
    assert_eq!(step.status, Status::Fail);
    assert!(
        step.message.contains(&format!("{field} (Secret \"t1\"")),
        "{}",
        step.message
    );
}

#[test]
fn check_summary_counts_free_ports_from_claims_and_the_updaters_list() {
    let cfg = cache_of(&world(svc()))
        .configs
        .values()
        .next()
        .map(|c| c.validate().unwrap())
        .unwrap();
    let ready = Ready {
        cfg,
        status: Default::default(),
        requests: Vec::new(),
    };
    let host = LbHost {
        name: HOST.into(),
        host: HOST.into(),
        url: URL.into(),
    };
    let summary = |probe| {
        let h = HostFact {
            host: host.clone(),
            probe: Ok(probe),
        };
        let claimed: BTreeSet<(u16, Protocol)> =
            [(8100, Protocol::Tcp), (9000, Protocol::Tcp)].into();
        super::super::hosts::host_summary(&ready, &h, claimed)
    };
    let served = |port: u16, proto: &str| LbRequest {
        backend_name: format!("b{port}"),
        lb_port: port,
        lb_protocol: proto.into(),
        upstream_servers: vec![],
        proxy_timeout_seconds: 0,
        proxy_connect_timeout_seconds: 0,
        traffic: Default::default(),
        owner: None,
    };
    let listed = Ok(Listing {
        // 8100/TCP is also claimed: counted once. 8101/udp is served by a backend no LB claims.
        backends: vec![served(8100, "TCP"), served(8101, "udp")],
        version: Some("9.9.9".into()),
    });
    let line = summary(listed).unwrap();
    assert!(
        line.ends_with(
            "reachable, authorized, version 9.9.9, free ports TCP 99/100, UDP 99/100 (8100-8199)"
        ),
        "{line}"
    );
    let no_list = summary(Err(unsupported(404)));
    assert!(no_list.unwrap().contains("version unknown"));
    let denied = Err(Error::Unauthorized {
        code: 401,
        message: "no".into(),
    });
    let err = summary(denied).unwrap_err();
    assert!(
        err.contains("wants a token (401: no)") && err.contains("fix: put the updater's token"),
        "{err}"
    );
    let gone = Err(transport("connection refused"));
    assert!(
        summary(gone)
            .unwrap_err()
            .contains("does not answer: connection refused; fix: ")
    );
    // Its Secret could not be read: its own line says so, naming the permission.
    let h = HostFact {
        host: host.clone(),
        probe: Err(super::super::facts::ReadError {
            what: "get secrets paperlb-system/t".into(),
            message: "403".into(),
            needs: "get secrets in namespace paperlb-system".into(),
        }),
    };
    let err = super::super::hosts::host_summary(&ready, &h, BTreeSet::new()).unwrap_err();
    assert!(
        err.starts_with(&format!("LB host {HOST} of LoadBalancerConfig"))
            && err.ends_with("not called: cannot get secrets paperlb-system/t: 403 (needs get secrets in namespace paperlb-system)"),
        "{err}"
    );
}

#[test]
fn several_hosts_are_each_probed_and_one_serving_host_is_enough() {
    const URL2: &str = "http://127.0.0.1:3001/api/v1/lb";
    let mut f = world(svc());
    let raw = json!({
        "metadata": {"name": "edge", "namespace": NS},
        "spec": {"default": true, "portRange": {"low": 8100, "high": 8199}, "hosts": [
            {"name": "lb-1", "host": HOST, "httpUpdaterURL": URL, "updaterCASecretRef": {"name": "ca"}},
            {"name": "lb-2", "host": "127.0.0.11", "httpUpdaterURL": URL2},
        ]},
    });
    f.configs = Ok(vec![config_fact(raw)]);
    let ctx = ctx();
    let s = f.service.clone().unwrap().unwrap();
    let hosts = hosts_of(&pick_config(&cache_of(&f), &f.key, &s, &ctx).ok().unwrap());
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["lb-1", "lb-2"]);
    // The LoadBalancer the controller writes, served on both hosts.
    let (spec, _) = desired(&cache_of(&f), &f.key, &s, None, &ctx)
        .ok()
        .flatten()
        .unwrap();
    assert_eq!(spec.hosts.len(), 2);
    let host_ok = |name: &str| {
        json!({"type": format!("Host-{name}"), "status": "True",
        "reason": "Applied", "observedGeneration": 2})
    };
    let lb: LoadBalancer = serde_json::from_value(json!({
        "metadata": {
            "name": "web", "namespace": "default", "uid": "u-lb", "generation": 2, "resourceVersion": "7",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u-web", "controller": true}],
            "finalizers": [crate::model::FINALIZER],
        },
        "spec": spec.to_json(),
        "status": {"phase": "READY", "observedGeneration": 2, "hosts": "2/2",
            "conditions": [host_ok("lb-1"), host_ok("lb-2")]},
    }))
    .unwrap();
    f.load_balancer = Ok(Some(lb.clone()));
    f.load_balancers = Ok(vec![lb]);
    let requests = pushed(&cache_of(&f), &f.key, &ctx);
    let on = |url: &str| -> Vec<LbRequest> {
        requests
            .iter()
            .filter(|(u, _)| u == url)
            .map(|(_, r)| r.clone())
            .collect()
    };
    assert_eq!(on(URL).len(), 1);
    assert_eq!(
        on(URL2).len(),
        1,
        "every host gets the backend: {requests:?}"
    );
    f.hosts = hosts
        .iter()
        .map(|h| HostFact {
            host: h.clone(),
            probe: Ok(Ok(Listing {
                backends: on(&h.url),
                ..Listing::default()
            })),
        })
        .collect();
    let r = explain(&f, &ctx);
    assert!(r.served() && r.hosts.len() == 2, "{r:#?}");
    // Review of the explain merge: host 1's CA does not parse. The controller still serves through
    // host 2, so the Service is served; host 1's own step names the CA, the secrets step passes.
    let cfg = pick_config(&cache_of(&f), &f.key, &s, &ctx).ok().unwrap();
    let auths = auths_with(&cfg, json!({"ca": {"ca.crt": "Z2FyYmFnZQ=="}}));
    f.secrets = auths.iter().map(|a| Ok(a.clone().err())).collect();
    let listing = std::mem::replace(
        &mut f.hosts[0].probe,
        Ok(crate::explain::gather::probe(&hosts[0], &auths[0])),
    );
    let r = explain(&f, &ctx);
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    let secrets = r.steps.iter().find(|s| s.id == "secrets").unwrap();
    assert_eq!(secrets.status, Status::Ok, "{secrets:?}");
    assert!(
        secrets
            .message
            .contains("LB host lb-1 is not called (see its reachable step)"),
        "{secrets:?}"
    );
    let reach = &r.hosts[0].steps[0];
    assert_eq!((reach.id, reach.status), ("reachable", Status::Fail));
    let ca =
        "updaterCASecretRef of spec.hosts[0], or of spec when the host names none (Secret \"ca\"";
    assert!(reach.message.contains(ca), "{reach:?}");
    // Both hosts' credentials refused: no host can be called, the secrets step says so and stops.
    let f_secrets_refused = f.secrets[0].clone();
    let mut g = f.clone();
    g.secrets = vec![f.secrets[0].clone(), f.secrets[0].clone()];
    let r = explain(&g, &ctx);
    assert_eq!(
        (first_failure(&r).map(|f| f.0), r.exit_code()),
        (Some("secrets"), 1)
    );
    f.hosts[0].probe = listing;
    // Review of the explain merge: a Secret only host 2 names cannot be read. Only host 2 is
    // untold (`?`, not called); host 1 is checked as before and serves.
    let unread = denied("get secrets paperlb-system/t2");
    f.secrets = vec![Ok(None), Err(unread.clone())];
    let host2 = std::mem::replace(&mut f.hosts[1].probe, Err(unread.clone()));
    let r = explain(&f, &ctx);
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    assert_eq!(r.hosts[1].steps.len(), 1, "{r:#?}");
    let reach = &r.hosts[1].steps[0];
    assert_eq!((reach.id, reach.status), ("reachable", Status::Unknown));
    assert!(reach.message.contains("(needs "), "{reach:?}");
    // Host 1 does not answer either: not served there, untold on host 2, so explain cannot tell.
    let mut g = f.clone();
    g.hosts[0].probe = Ok(Err(transport("connection refused")));
    assert_eq!(explain(&g, &ctx).exit_code(), 2);
    // Host 1's credentials refused too: no host can be called, and one is untold.
    g.secrets[0] = f_secrets_refused;
    let r = explain(&g, &ctx);
    let secrets = r.steps.iter().find(|s| s.id == "secrets").unwrap();
    assert_eq!(secrets.status, Status::Unknown, "{r:#?}");
    assert_eq!(r.exit_code(), 2, "{r:#?}");
    f.hosts[1].probe = host2;
    f.secrets.clear();
    // Host 2 unreachable: still served (on host 1), and its report says why not there.
    f.hosts[1].probe = Ok(Err(transport("connection refused")));
    let r = explain(&f, &ctx);
    assert!(r.served(), "{r:#?}");
    assert!(r.hosts[1].steps.iter().any(|s| s.status == Status::Fail));
    assert!(r.hosts[0].steps.iter().all(|s| s.status != Status::Fail));
    // Both unreachable: not served, and every host failed a step.
    f.hosts[0].probe = Ok(Err(transport("connection refused")));
    let r = explain(&f, &ctx);
    assert!(!r.served());
    assert_eq!(r.exit_code(), 1, "{r:#?}");
}

/// A dual-stack Service whose nodes have one family is served on it: every node still receives
/// traffic, and the ports step says what the controller's `DualStack=False` condition says.
#[test]
fn the_ports_step_says_a_dual_stack_service_is_served_on_one_family() {
    let step = |f: &Facts, id: &str| {
        let r = explain(f, &ctx());
        let step = r.steps.iter().find(|s| s.id == id).unwrap().clone();
        assert_eq!(step.status, Status::Ok, "{r:#?}");
        step.message
    };
    let mut s = svc();
    s["spec"]["ipFamilies"] = json!(["IPv4", "IPv6"]);
    let mut f = world(s);
    assert_eq!(
        step(&f, "nodes"),
        "2 of 2 nodes receive traffic (2 target addresses)"
    );
    assert_eq!(
        step(&f, "ports"),
        "LB port 8100/TCP on 127.0.0.10; DualStack=False (NoAddressInFamily): the Service's \
         ipFamilies are IPv4, IPv6, but no eligible node has an IPv6 address of the configured \
         types: it is served on IPv4 only; give the nodes IPv6 addresses, or make the Service \
         single-stack"
    );
    let mut dual = node("b", true, "127.0.0.3");
    dual["status"]["addresses"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "InternalIP", "address": "::1"}));
    f.nodes = Ok(vec![
        serde_json::from_value::<Node>(node("a", true, "127.0.0.2")).unwrap(),
        serde_json::from_value::<Node>(dual).unwrap(),
    ]);
    assert_eq!(
        step(&f, "nodes"),
        "2 of 2 nodes receive traffic (3 target addresses)"
    );
    assert_eq!(step(&f, "ports"), "LB port 8100/TCP on 127.0.0.10");
}

/// The nodes step counts NotReady nodes as the controller does, per port: under a config's
/// `healthCheck: {type: tcp}` a UDP port has no check (it would probe its own port over TCP), so
/// its targets follow readiness.
#[test]
fn the_nodes_step_leaves_notready_nodes_out_for_a_port_that_follows_readiness() {
    let nodes_step = |s: Value| {
        let mut f = world(s);
        let mut c = config("edge", true);
        c["spec"]["healthCheck"] = json!({"type": "tcp"});
        f.configs = Ok(vec![config_fact(c)]);
        f.nodes = Ok(vec![
            serde_json::from_value::<Node>(node("a", true, "127.0.0.2")).unwrap(),
            serde_json::from_value::<Node>(node("b", false, "127.0.0.3")).unwrap(),
        ]);
        let r = explain(&f, &ctx());
        r.steps
            .iter()
            .find(|s| s.id == "nodes")
            .unwrap()
            .message
            .clone()
    };
    assert_eq!(
        nodes_step(svc()),
        "2 of 2 nodes receive traffic (2 target addresses)",
        "TCP: checked, the stable set keeps the NotReady node"
    );
    let mut udp = svc();
    udp["spec"]["ports"][0]["protocol"] = json!("UDP");
    assert_eq!(
        nodes_step(udp),
        "1 of 2 nodes receive traffic (1 target address); left out: 1 NotReady"
    );
}
