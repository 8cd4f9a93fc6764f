//! The controller's Deployment meets the restricted Pod Security profile (the namespace enforces it),
//! and starts the controller with flags the controller accepts and values the other manifests agree on.

use serde_json::{Value, json};

use crate::{object, str_at};

const DEPLOYMENT: &str = "manifests/base/deployment.yaml";

fn deployment() -> Value {
    object(DEPLOYMENT, "Deployment")
}

/// A container's setting, else the pod's (container-level securityContext wins, as in the kubelet).
fn effective<'a>(pod: &'a Value, container: &'a Value, key: &str) -> &'a Value {
    match &container["securityContext"][key] {
        Value::Null => &pod["securityContext"][key],
        v => v,
    }
}

/// `repo:tag` (tag not `latest`) or `repo@sha256:...`; a registry port is not a tag.
fn image_is_pinned(image: &str) -> bool {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.starts_with("sha256:") && digest.len() == 7 + 64;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    matches!(last.split_once(':'), Some((_, tag)) if !tag.is_empty() && tag != "latest")
}

/// Every way the Deployment falls short of the restricted profile and our own rules, one line each.
fn violations(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let pod = &d["spec"]["template"]["spec"];
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[key] == true {
            out.push(format!("pod: {key} is true"));
        }
    }
    for v in pod["volumes"].as_array().into_iter().flatten() {
        if !v["hostPath"].is_null() {
            out.push(format!("pod: volume {} is a hostPath", v["name"]));
        }
    }
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        out.push("pod: no containers".into());
    }
    let init = pod["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in containers.iter().chain(&init) {
        let name = c["name"].as_str().unwrap_or("?");
        let mut bad = |what: String| out.push(format!("container {name}: {what}"));
        if effective(pod, c, "runAsNonRoot") != true {
            bad("runAsNonRoot is not true".into());
        }
        match effective(pod, c, "runAsUser").as_u64() {
            Some(0) | None => bad("runAsUser is not a non-zero number".into()),
            Some(_) => {}
        }
        if effective(pod, c, "seccompProfile")["type"] != "RuntimeDefault" {
            bad("seccompProfile.type is not RuntimeDefault".into());
        }
        let sc = &c["securityContext"];
        if sc["allowPrivilegeEscalation"] != false {
            bad("allowPrivilegeEscalation is not false".into());
        }
        if sc["readOnlyRootFilesystem"] != true {
            bad("readOnlyRootFilesystem is not true".into());
        }
        if sc["privileged"] == true {
            bad("privileged".into());
        }
        let drop = sc["capabilities"]["drop"].as_array();
        if !drop.is_some_and(|d| d.iter().any(|c| c == "ALL")) {
            bad("capabilities.drop does not hold ALL".into());
        }
        if sc["capabilities"]["add"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            bad(format!("capabilities.add is {}", sc["capabilities"]["add"]));
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if !port["hostPort"].is_null() {
                bad(format!("hostPort {}", port["hostPort"]));
            }
        }
        let res = &c["resources"];
        for (path, v) in [
            ("resources.requests.cpu", &res["requests"]["cpu"]),
            ("resources.requests.memory", &res["requests"]["memory"]),
            ("resources.limits.memory", &res["limits"]["memory"]),
        ] {
            let set = v.is_number() || v.as_str().is_some_and(|s| !s.is_empty());
            if !set {
                bad(format!("{path} is not set"));
            }
        }
        if init.iter().all(|i| i != c) {
            for probe in ["livenessProbe", "readinessProbe"] {
                if !c[probe].is_object() {
                    bad(format!("no {probe}"));
                }
            }
        }
        let image = c["image"].as_str().unwrap_or("");
        if !image_is_pinned(image) {
            bad(format!("image {image:?} is not pinned to a tag or digest"));
        }
    }
    out
}

#[test]
fn deployment_meets_the_restricted_pod_security_profile() {
    assert_eq!(violations(&deployment()), Vec::<String>::new());
}

#[test]
fn the_restricted_checklist_catches_each_kind_of_violation() {
    // The checklist itself must not pass everything: break one field at a time.
    let cases: &[(&str, Value, &str)] = &[
        (
            "/securityContext/runAsNonRoot",
            json!(false),
            "runAsNonRoot",
        ),
        ("/securityContext/runAsUser", json!(0), "runAsUser"),
        (
            "/securityContext/seccompProfile/type",
            json!("Unconfined"),
            "seccompProfile",
        ),
        ("/hostNetwork", json!(true), "hostNetwork"),
        ("/hostPID", json!(true), "hostPID"),
        ("/hostIPC", json!(true), "hostIPC"),
        (
            "/volumes",
            json!([{"name": "h", "hostPath": {"path": "/"}}]),
            "hostPath",
        ),
        (
            "/containers/0/securityContext/allowPrivilegeEscalation",
            json!(true),
            "allowPrivilegeEscalation",
        ),
        (
            "/containers/0/securityContext/readOnlyRootFilesystem",
            json!(false),
            "readOnlyRootFilesystem",
        ),
        (
            "/containers/0/securityContext/privileged",
            json!(true),
            "privileged",
        ),
        (
            "/containers/0/securityContext/capabilities/drop",
            json!(["NET_RAW"]),
            "drop",
        ),
        (
            "/containers/0/securityContext/capabilities/add",
            json!(["NET_ADMIN"]),
            "add",
        ),
        ("/containers/0/resources/limits", json!({}), "limits.memory"),
        (
            "/containers/0/resources/requests/cpu",
            Value::Null,
            "requests.cpu",
        ),
        ("/containers/0/livenessProbe", Value::Null, "livenessProbe"),
        (
            "/containers/0/readinessProbe",
            Value::Null,
            "readinessProbe",
        ),
        (
            "/containers/0/image",
            json!("ghcr.io/paperlb/paperlb:latest"),
            "not pinned",
        ),
        (
            "/containers/0/image",
            json!("ghcr.io/paperlb/paperlb"),
            "not pinned",
        ),
        (
            "/containers/0/image",
            json!("localhost:5000/paperlb"),
            "not pinned",
        ),
    ];
    for (pointer, value, want) in cases {
        let mut d = deployment();
        let pod = &mut d["spec"]["template"]["spec"];
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            pod
        } else {
            pod.pointer_mut(parent)
                .unwrap_or_else(|| panic!("{pointer}: no such parent"))
        };
        parent[key] = value.clone();
        let found = violations(&d);
        assert!(
            found.iter().any(|v| v.contains(want)),
            "setting {pointer} to {value} went unnoticed: {found:?}"
        );
    }
    assert!(image_is_pinned(&format!(
        "ghcr.io/paperlb/paperlb@sha256:{}",
        "a".repeat(64)
    )));
    assert!(image_is_pinned("localhost:5000/paperlb:0.1.0"));
}

#[test]
fn deployment_starts_the_controller_with_flags_it_accepts_and_consistent_values() {
    let d = deployment();
    let ns = str_at(&d, &["metadata", "namespace"]);
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args: Vec<String> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[0], "controller", "the image's entrypoint is /paperlb");
    let config = paperlb::controller::cli::parse(
        &args[1..],
        paperlb::kube::config::LoadOptions::default(),
        "paperlb-controller-0",
    )
    .unwrap_or_else(|e| panic!("{DEPLOYMENT}: controller rejects {args:?}: {e:?}"))
    .expect("not --help");
    assert_eq!(
        config.ctx.namespace, ns,
        "--namespace is where the Deployment runs"
    );
    let replicas = d["spec"]["replicas"].as_u64().unwrap_or(1);
    assert!(
        replicas == 1 || config.leader_elect,
        "{replicas} replicas need --leader-elect"
    );

    // The metrics port serves the probes.
    let metrics = config.metrics_addr.expect("--metrics-addr is not off");
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    assert_eq!(port["containerPort"], metrics.port());
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"]["path"], path);
        assert!(
            c[probe]["httpGet"]["port"] == "metrics"
                || c[probe]["httpGet"]["port"] == metrics.port(),
            "{probe} must use the metrics port"
        );
    }
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
        "POD_NAME gives the Lease a readable holder identity"
    );
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "GLIBC_TUNABLES"
                && e["value"]
                    .as_str()
                    .is_some_and(|v| v.contains("glibc.malloc.arena_max=1")
                        && v.contains("glibc.malloc.tcache_count=0"))),
        "one malloc arena and no thread caches keep the I/O pool's threads from each holding memory \
         (README, Performance)"
    );

    // The service account exists and is the one the bindings name.
    let sa = object("manifests/base/serviceaccount.yaml", "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    assert_eq!(sa["metadata"]["namespace"], ns);
}

#[test]
fn deployment_image_is_this_version_and_runs_as_the_image_user() {
    let d = deployment();
    let pod = &d["spec"]["template"]["spec"];
    let image = str_at(&pod["containers"][0], &["image"]);
    assert_eq!(
        image,
        format!("ghcr.io/paperlb/paperlb:{}", env!("CARGO_PKG_VERSION")),
        "bump the image tag with the crate version"
    );
    let user = pod["securityContext"]["runAsUser"].as_u64().unwrap();
    let group = pod["securityContext"]["runAsGroup"].as_u64().unwrap();
    let dockerfile = crate::read("Dockerfile");
    assert!(
        dockerfile
            .lines()
            .any(|l| l.trim() == format!("USER {user}:{group}")),
        "Dockerfile must say USER {user}:{group}, as the Deployment does"
    );
}

#[test]
fn namespace_enforces_the_restricted_profile() {
    let ns = object("manifests/base/namespace.yaml", "Namespace");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_eq!(
        ns["metadata"]["name"],
        str_at(&deployment(), &["metadata", "namespace"])
    );
}
