//! `manifests/paperlb.yaml` applies to the fake API server as `kubectl create -f` would: each
//! document's resource and scope come from discovery (kubectl's REST mapping), it is POSTed to its
//! collection and answered 201, a second create of each is a 409 AlreadyExists Status, and a GET
//! returns what was sent. Once the CRDs are in, `paperlb check` passes against that same server.

use std::path::PathBuf;
use std::process::Command;

use paperlb::kube::Error;
use paperlb::kube::client::{Client, ClientOptions};
use paperlb::kube::config::{LoadOptions, load};
use serde_json::Value;

use crate::support::fake_api::{FakeApi, FakeOptions};
use crate::{objects, str_at};

const BUNDLE: &str = "manifests/paperlb.yaml";

/// A temporary directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "paperlb-manifests-{tag}-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fake cluster as a fresh one: no paperlb CRDs, no paperlb-system namespace.
fn fresh_cluster() -> (FakeApi, Dir, PathBuf, Client) {
    let api = FakeApi::start(FakeOptions {
        crds_installed: false,
        ..FakeOptions::default()
    });
    let dir = Dir::new("apply");
    let kc = dir.0.join("kubeconfig");
    api.write_kubeconfig(&kc).unwrap();
    let cfg = load(&LoadOptions {
        kubeconfig: Some(kc.clone()),
        ..LoadOptions::default()
    })
    .unwrap();
    let client = Client::new(&cfg, ClientOptions::default()).unwrap();
    (api, dir, kc, client)
}

/// Where an object of `apiVersion`/`kind` lives, found in discovery as kubectl's REST mapper does:
/// (collection path without namespace, plural, namespaced).
fn rest_mapping(client: &Client, api_version: &str, kind: &str) -> (String, String, bool) {
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let list: Value = client
        .get(&base)
        .unwrap_or_else(|e| panic!("discovery {base}: {e}"));
    let found = list["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == kind && !str_at(r, &["name"]).contains('/'))
        .unwrap_or_else(|| panic!("discovery {base} has no resource of kind {kind}: {list}"));
    (
        base,
        str_at(found, &["name"]).to_string(),
        found["namespaced"] == true,
    )
}

/// (collection path, object path) of a manifest object.
fn paths(client: &Client, obj: &Value) -> (String, String) {
    let (base, plural, namespaced) =
        rest_mapping(client, str_at(obj, &["apiVersion"]), str_at(obj, &["kind"]));
    let ns = str_at(obj, &["metadata", "namespace"]);
    let collection = if namespaced {
        assert!(
            !ns.is_empty(),
            "{BUNDLE}: namespaced {} {} names no namespace",
            obj["kind"],
            obj["metadata"]["name"]
        );
        format!("{base}/namespaces/{ns}/{plural}")
    } else {
        assert!(
            ns.is_empty(),
            "{BUNDLE}: cluster-scoped {} {} names a namespace",
            obj["kind"],
            obj["metadata"]["name"]
        );
        format!("{base}/{plural}")
    };
    let name = str_at(obj, &["metadata", "name"]);
    (collection.clone(), format!("{collection}/{name}"))
}

/// Every field of `want` is in `have` with the same value (the server may add defaults, metadata
/// and status, but must not lose or change anything that was sent). Arrays must match item by item.
fn assert_contains(have: &Value, want: &Value, at: &str) {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => {
            for (k, wv) in w {
                let hv = h
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k}: sent but missing from the GET"));
                assert_contains(hv, wv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(h), Value::Array(w)) => {
            assert_eq!(h.len(), w.len(), "{at}: array length");
            for (i, (hv, wv)) in h.iter().zip(w).enumerate() {
                assert_contains(hv, wv, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(have, want, "{at}"),
    }
}

fn check(kc: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paperlb"))
        .args(["check", "--kubeconfig"])
        .arg(kc)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn bundle_applies_to_a_fresh_cluster_and_every_object_reads_back() {
    let (api, _dir, _kc, client) = fresh_cluster();
    let docs = objects(BUNDLE);
    assert!(docs.len() >= 9, "{BUNDLE}: {} documents", docs.len());

    // The custom group is not served until its CRDs are applied.
    let e = client
        .get::<Value>("/apis/lb.paperlb.com/v1alpha1")
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");

    api.clear_requests();
    for obj in &docs {
        let (collection, _) = paths(&client, obj);
        let created: Result<Value, Error> = client.create(&collection, obj);
        let created = created.unwrap_or_else(|e| panic!("POST {collection}: {e}"));
        assert_eq!(created["kind"], obj["kind"], "POST {collection}");
        assert!(
            !str_at(&created, &["metadata", "uid"]).is_empty(),
            "POST {collection}: no uid in {created}"
        );
    }
    let posts: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), docs.len(), "one POST per document");
    for r in &posts {
        assert_eq!(r.status, 201, "POST {} answered {}", r.path, r.status);
    }

    for obj in &docs {
        let (collection, object) = paths(&client, obj);
        let again = client.create::<Value>(&collection, obj).unwrap_err();
        assert!(
            again.is_already_exists(),
            "second POST {collection}: {again:?}"
        );
        let Error::Api(status) = &again else {
            panic!("second POST {collection}: not a Status: {again:?}");
        };
        assert_eq!(status.code, 409);
        let details = status.details.as_ref().expect("AlreadyExists has details");
        assert_eq!(details.name, str_at(obj, &["metadata", "name"]));
        assert!(
            collection.ends_with(&format!("/{}", details.kind)),
            "details.kind is the resource: {} for {collection}",
            details.kind
        );
        let got: Value = client
            .get(&object)
            .unwrap_or_else(|e| panic!("GET {object}: {e}"));
        assert_contains(&got, obj, &object);
    }

    // Applying the CRDs made the group served, with exactly the two kinds.
    let served: Value = client.get("/apis/lb.paperlb.com/v1alpha1").unwrap();
    let names: Vec<&str> = served["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for want in [
        "loadbalancers",
        "loadbalancers/status",
        "loadbalancerconfigs",
    ] {
        assert!(names.contains(&want), "{want} not served: {names:?}");
    }
    let crd: Value = client
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/loadbalancers.lb.paperlb.com")
        .unwrap();
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True"),
        "{crd}"
    );

    // The example LoadBalancerConfig can now be created in the bundle's namespace.
    let example = objects("manifests/examples/loadbalancerconfig.yaml");
    for obj in &example {
        let (collection, object) = paths(&client, obj);
        client
            .create::<Value>(&collection, obj)
            .unwrap_or_else(|e| panic!("POST {collection}: {e}"));
        let got: Value = client.get(&object).unwrap();
        assert_contains(&got, obj, &object);
    }
}

#[test]
fn check_fails_on_a_fresh_cluster_and_passes_once_the_bundle_is_applied() {
    let (_api, _dir, kc, client) = fresh_cluster();
    let (code, text) = check(&kc);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("CRDs of lb.paperlb.com/v1alpha1 are not installed"),
        "{text}"
    );

    for obj in objects(BUNDLE) {
        let (collection, _) = paths(&client, &obj);
        client
            .create::<Value>(&collection, &obj)
            .unwrap_or_else(|e| panic!("POST {collection}: {e}"));
    }
    // No problem left; the one warning: no LoadBalancerConfig yet (the bundle holds none).
    let (code, text) = check(&kc);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
    assert!(text.contains("WARNING: no LoadBalancerConfig"), "{text}");
    assert!(
        text.contains("CRD loadbalancers.lb.paperlb.com: installed"),
        "{text}"
    );
    assert!(
        text.contains("CRD loadbalancerconfigs.lb.paperlb.com: installed"),
        "{text}"
    );
}
