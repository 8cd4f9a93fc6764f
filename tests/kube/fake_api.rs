//! Conformance of the fake API server (tests/support/fake_api) to kube-apiserver v1.36's wire
//! behaviour, checked against the captures in tests/fixtures/apiserver over real TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_api::{ADMIN_USER, FakeApi, FakeOptions, Fault, FaultKind};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/apiserver/");
const SA_USER: &str = "system:serviceaccount:fixtures:web-reader";
const SA_TOKEN: &str = "web-reader-token";

fn fixture(name: &str) -> (String, Vec<u8>) {
    let raw = std::fs::read(format!("{FIXTURES}{name}")).unwrap();
    let i = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8(raw[..i + 2].to_vec()).unwrap(),
        raw[i + 4..].to_vec(),
    )
}

/// A response read off the wire.
struct Resp {
    status: u16,
    /// Status line and headers (CRLF), without `Date`.
    head: String,
    /// The bytes after the head, framing included.
    raw_body: Vec<u8>,
    /// The body de-chunked.
    body: Vec<u8>,
    /// Sizes of the chunks, when chunked.
    chunks: Vec<usize>,
    /// Chunked and ended with the last chunk.
    ended: bool,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(": ")?;
            k.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    }
}

fn parse_response(raw: &[u8]) -> Resp {
    let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Resp {
            status: 0,
            head: String::from_utf8_lossy(raw).into_owned(),
            raw_body: Vec::new(),
            body: Vec::new(),
            chunks: Vec::new(),
            ended: false,
        };
    };
    let head_full = String::from_utf8_lossy(&raw[..i + 2]).into_owned();
    let head: String = head_full
        .split_inclusive("\r\n")
        .filter(|l| !l.starts_with("Date: "))
        .collect();
    let status = head[9..12].parse().unwrap();
    let raw_body = raw[i + 4..].to_vec();
    let mut body = Vec::new();
    let mut chunks = Vec::new();
    let mut ended = false;
    if head.contains("Transfer-Encoding: chunked") {
        let mut rest = &raw_body[..];
        while let Some(j) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..j]).unwrap(), 16).unwrap();
            rest = &rest[j + 2..];
            if size == 0 {
                ended = true;
                break;
            }
            let take = size.min(rest.len());
            body.extend_from_slice(&rest[..take]);
            chunks.push(size);
            if rest.len() < size + 2 {
                break;
            }
            rest = &rest[size + 2..];
        }
    } else {
        body = raw_body.clone();
    }
    Resp {
        status,
        head,
        raw_body,
        body,
        chunks,
        ended,
    }
}

fn tls_client(api: &FakeApi, client_cert: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(api.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Sends raw bytes over TLS and reads until the server closes.
fn exchange(api: &FakeApi, cert: Option<(String, String)>, request: &[u8]) -> Vec<u8> {
    let tcp = TcpStream::connect(api.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let conn =
        rustls::ClientConnection::new(tls_client(api, cert), "127.0.0.1".try_into().unwrap())
            .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request).unwrap();
    tls.flush().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// One request with `Connection: close`, as the fixtures were recorded (admin token by default).
fn call_as(
    api: &FakeApi,
    token: Option<&str>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: paperlb-fixtures/1.0\r\nConnection: close\r\n",
        api.addr()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    parse_response(&exchange(api, None, req.as_bytes()))
}

fn call(api: &FakeApi, method: &str, path: &str, body: Option<&str>) -> Resp {
    let ct = match method {
        "PATCH" => Some("application/merge-patch+json"),
        "POST" | "PUT" => Some("application/json"),
        _ => None,
    };
    call_as(api, Some(&api.admin_token()), method, path, ct, body)
}

fn get(api: &FakeApi, path: &str) -> Resp {
    call(api, "GET", path, None)
}

fn start() -> FakeApi {
    start_with(FakeOptions::default())
}

fn start_with(mut opts: FakeOptions) -> FakeApi {
    opts.namespaces.push("fixtures".into());
    let api = FakeApi::start(opts);
    api.add_token(SA_TOKEN, SA_USER);
    api
}

/// Asserts the response equals a fixture byte for byte (Date aside).
fn assert_fixture(r: &Resp, name: &str) {
    let (head, body) = fixture(name);
    assert_eq!(r.head, head, "{name}: head");
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        String::from_utf8_lossy(&body),
        "{name}: body"
    );
}

/// Replaces the string values of volatile keys (uids, RVs, times, continue tokens) with `*`.
fn normalise(s: &str) -> String {
    let mut out = s.to_string();
    for key in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "time",
        "continue",
        "clusterIP",
    ] {
        let pat = format!("\"{key}\":\"");
        let mut res = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&pat) {
            res.push_str(&rest[..i + pat.len()]);
            rest = &rest[i + pat.len()..];
            let end = rest.find('"').unwrap();
            res.push('*');
            rest = &rest[end..];
        }
        res.push_str(rest);
        out = res;
    }
    out
}

const WEB: &str = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"fixtures","labels":{"app":"web"}},"spec":{"type":"LoadBalancer","selector":{"app":"web"},"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080},{"name":"dns","protocol":"UDP","port":53,"targetPort":5353}]}}"#;
const DNS: &str = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"dns","namespace":"fixtures"},"spec":{"type":"LoadBalancer","selector":{"app":"dns"},"ports":[{"name":"dns-tcp","protocol":"TCP","port":53,"targetPort":5353},{"name":"dns-udp","protocol":"UDP","port":53,"targetPort":5353}]}}"#;
const LB: &str = r#"{"apiVersion":"lb.paperlb.com/v1alpha1","kind":"LoadBalancer","metadata":{"name":"web","namespace":"fixtures","labels":{"app":"web"}},"spec":{"configName":"edge","host":"127.0.0.10","port":8100,"protocol":"TCP","targets":[{"host":"127.0.0.2","port":30460},{"host":"127.0.0.3","port":30460}],"httpUpdater":{"url":"http://127.0.0.10:8000/api/v1/lb"}}}"#;
const LEASE: &str = r#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"paperlb","namespace":"fixtures"},"spec":{"holderIdentity":"paperlb-6f7c9d-x2x4q","leaseDurationSeconds":15,"acquireTime":"2026-11-25T10:15:30.123456Z","renewTime":"2026-11-25T10:15:30.123456Z","leaseTransitions":0}}"#;
const SVCS: &str = "/api/v1/namespaces/fixtures/services";
const LBS: &str = "/apis/lb.paperlb.com/v1alpha1/namespaces/fixtures/loadbalancers";

#[test]
fn service_errors_match_the_fixtures_byte_for_byte() {
    let api = start();
    assert_fixture(
        &get(&api, &format!("{SVCS}/web")),
        "error-service-not-found.http",
    );
    let created = call(&api, "POST", SVCS, Some(WEB));
    assert_eq!(created.status, 201);
    let create_rv = created.json()["metadata"]["resourceVersion"].clone();
    let again = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"fixtures"},"spec":{"type":"LoadBalancer","selector":{"app":"web"},"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}]}}"#;
    assert_fixture(
        &call(&api, "POST", SVCS, Some(again)),
        "error-service-already-exists.http",
    );
    let status =
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.10","ipMode":"Proxy"}]}}}"#;
    assert_eq!(
        call(&api, "PATCH", &format!("{SVCS}/web/status"), Some(status)).status,
        200
    );
    let stale =
        format!(r#"{{"metadata":{{"resourceVersion":{create_rv},"labels":{{"tier":"edge"}}}}}}"#);
    assert_fixture(
        &call(&api, "PATCH", &format!("{SVCS}/web"), Some(&stale)),
        "error-service-stale-rv.http",
    );
    assert_fixture(
        &call_as(&api, Some("not-a-valid-token"), "GET", SVCS, None, None),
        "error-unauthorized.http",
    );
    api.deny(SA_USER, "*", "*");
    assert_fixture(
        &call_as(&api, Some(SA_TOKEN), "GET", SVCS, None, None),
        "error-forbidden.http",
    );
    let invalid = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web-invalid","namespace":"fixtures"},"spec":{"type":"LoadBalancer","selector":{"app":"web"},"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080},{"name":"http","protocol":"ICMP","port":70000}]}}"#;
    assert_fixture(
        &call(&api, "POST", SVCS, Some(invalid)),
        "error-service-invalid.http",
    );
}

#[test]
fn unknown_paths_match_the_fixtures() {
    let api = start();
    assert_fixture(
        &get(&api, "/apis/nope.example.com/v1/things"),
        "error-unknown-group.http",
    );
    assert_fixture(
        &get(
            &api,
            "/apis/lb.paperlb.com/v1alpha1/namespaces/fixtures/nopes",
        ),
        "error-unknown-resource.http",
    );
    assert_fixture(
        &get(&api, "/api/v1/namespaces/fixtures/nopes"),
        "error-unknown-core-resource.http",
    );
    api.set_crds_installed(false);
    assert_fixture(&get(&api, LBS), "error-unknown-group.http");
    api.set_crds_installed(true);
    assert_eq!(get(&api, LBS).status, 200);
}

#[test]
fn discovery_matches_the_fixtures() {
    let api = start();
    assert_fixture(&get(&api, "/version"), "version.http");
    // Captured before LoadBalancerConfig had a status subresource: the real server lists it as it
    // lists loadbalancers/status, right after its resource.
    let (head, body) = fixture("discovery-lb-paperlb-v1alpha1.http");
    let body = String::from_utf8(body).unwrap().replacen(
        "\"storageVersionHash\":\"8GwHDbO2LHc=\"}",
        "\"storageVersionHash\":\"8GwHDbO2LHc=\"},{\"name\":\"loadbalancerconfigs/status\",\"singularName\":\"\",\"namespaced\":true,\"kind\":\"LoadBalancerConfig\",\"verbs\":[\"get\",\"patch\",\"update\"]}",
        1,
    );
    let head = head.replace(
        "Content-Length: 673",
        &format!("Content-Length: {}", body.len()),
    );
    let r = get(&api, "/apis/lb.paperlb.com/v1alpha1");
    assert_eq!(r.head, head);
    assert_eq!(r.text(), body);
    let r = get(&api, "/api");
    let (_, body) = fixture("api.http");
    let expected = String::from_utf8(body)
        .unwrap()
        .replace("127.0.0.1:6443", &api.addr().to_string());
    assert_eq!(r.text(), expected);
    assert_eq!(get(&api, "/apis").json()["kind"], "APIGroupList");
}

#[test]
fn custom_resource_lifecycle_matches_the_fixtures() {
    let api = start();
    let list = get(&api, LBS);
    assert_eq!(
        normalise(&list.text()),
        normalise(&String::from_utf8(fixture("loadbalancers-list-fixtures.http").1).unwrap())
    );
    let list_rv = list.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_fixture(
        &get(&api, &format!("{LBS}/web")),
        "error-loadbalancer-not-found.http",
    );

    let created = call(&api, "POST", LBS, Some(LB));
    assert_eq!(created.status, 201);
    assert_eq!(created.json()["metadata"]["generation"], 1);
    let create_rv = created.json()["metadata"]["resourceVersion"].clone();
    let st = call(
        &api,
        "PATCH",
        &format!("{LBS}/web/status"),
        Some(r#"{"status":{"phase":"READY","targetCount":2}}"#),
    );
    assert_eq!(
        st.json()["status"],
        json!({"phase": "READY", "targetCount": 2})
    );
    assert_eq!(st.json()["metadata"]["generation"], 1);
    let stale =
        format!(r#"{{"metadata":{{"resourceVersion":{create_rv}}},"status":{{"phase":"ERROR"}}}}"#);
    assert_fixture(
        &call(&api, "PATCH", &format!("{LBS}/web/status"), Some(&stale)),
        "error-loadbalancer-stale-rv.http",
    );
    let spec = call(
        &api,
        "PATCH",
        &format!("{LBS}/web"),
        Some(r#"{"spec":{"port":8101,"targets":[{"host":"127.0.0.2","port":30460}]}}"#),
    );
    assert_eq!(spec.json()["metadata"]["generation"], 2);
    assert_eq!(
        spec.json()["spec"]["targets"],
        json!([{"host": "127.0.0.2", "port": 30460}])
    );
    let smp = call_as(
        &api,
        Some(&api.admin_token()),
        "PATCH",
        &format!("{LBS}/web"),
        Some("application/strategic-merge-patch+json"),
        Some(r#"{"spec":{"port":8102}}"#),
    );
    assert_fixture(&smp, "error-loadbalancer-strategic-merge-patch.http");
    let fin = call(
        &api,
        "PATCH",
        &format!("{LBS}/web"),
        Some(r#"{"metadata":{"finalizers":["lb.paperlb.com/updater-cleanup"]}}"#),
    );
    assert_eq!(fin.json()["metadata"]["generation"], 2);
    let del = call(&api, "DELETE", &format!("{LBS}/web"), None);
    assert_eq!(del.status, 200);
    let d = del.json();
    assert_eq!(d["metadata"]["generation"], 3);
    assert_eq!(d["metadata"]["deletionGracePeriodSeconds"], 0);
    assert!(d["metadata"]["deletionTimestamp"].is_string());
    let more =
        r#"{"metadata":{"finalizers":["lb.paperlb.com/updater-cleanup","example.com/another"]}}"#;
    assert_fixture(
        &call(&api, "PATCH", &format!("{LBS}/web"), Some(more)),
        "error-loadbalancer-finalizer-while-deleting.http",
    );
    let deleting = get(&api, &format!("{LBS}/web"));
    assert_eq!(deleting.json(), d);
    let removed = call(
        &api,
        "PATCH",
        &format!("{LBS}/web"),
        Some(r#"{"metadata":{"finalizers":null}}"#),
    );
    assert_eq!(removed.status, 200);
    let rm = removed.json();
    assert!(rm["metadata"].get("finalizers").is_none());
    assert_eq!(
        rm["metadata"]["resourceVersion"],
        d["metadata"]["resourceVersion"]
    );
    assert_fixture(
        &get(&api, &format!("{LBS}/web")),
        "error-loadbalancer-not-found.http",
    );
    // The byte shape of the served objects: alphabetical keys, like the real server.
    let (_, fixture_body) = fixture("loadbalancer-finalizer-remove.http");
    let ours = normalise(&removed.text());
    let theirs = normalise(&String::from_utf8(fixture_body).unwrap());
    let strip_mf = |s: &str| {
        let v: Value = serde_json::from_str(s).unwrap();
        let mut v = v;
        v["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        serde_json::to_string(&v).unwrap()
    };
    assert_eq!(strip_mf(&ours), strip_mf(&theirs));

    // The watch from the list's RV sees exactly the fixture's event sequence.
    let w = get(
        &api,
        &format!("{LBS}?watch=1&resourceVersion={list_rv}&timeoutSeconds=1"),
    );
    assert_eq!(w.status, 200);
    assert!(w.ended);
    let events = w.lines();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"
        ]
    );
    let gens: Vec<i64> = events
        .iter()
        .map(|e| e["object"]["metadata"]["generation"].as_i64().unwrap())
        .collect();
    assert_eq!(gens, [1, 1, 2, 2, 3, 3]);
    let last = &events[5]["object"];
    assert_eq!(
        last["metadata"]["finalizers"],
        json!(["lb.paperlb.com/updater-cleanup"])
    );
    let rv = |v: &Value| {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(rv(last), rv(&d) + 1);
    assert_eq!(w.chunks.len(), 6, "one chunk per event");
    assert!(w.text().starts_with(r#"{"type":"ADDED","object":{"apiVersion":"lb.paperlb.com/v1alpha1","kind":"LoadBalancer","metadata":{"creationTimestamp""#));
}

#[test]
fn deleting_a_custom_resource_without_finalizers_answers_a_success_status() {
    let api = start();
    let cfg = r#"{"apiVersion":"lb.paperlb.com/v1alpha1","kind":"LoadBalancerConfig","metadata":{"name":"edge","namespace":"fixtures"},"spec":{"default":true,"httpUpdaterURL":"http://127.0.0.10:8000/api/v1/lb","host":"127.0.0.10","portRange":{"low":8100,"high":8199}}}"#;
    let path = "/apis/lb.paperlb.com/v1alpha1/namespaces/fixtures/loadbalancerconfigs";
    assert_eq!(call(&api, "POST", path, Some(cfg)).status, 201);
    let r = call(&api, "DELETE", &format!("{path}/edge"), None);
    let (head, body) = fixture("loadbalancerconfig-delete.http");
    assert_eq!(r.head, head);
    assert_eq!(
        normalise(&r.text()),
        normalise(&String::from_utf8(body).unwrap())
    );
}

#[test]
fn lease_writes_match_the_fixtures() {
    let api = start();
    let path = "/apis/coordination.k8s.io/v1/namespaces/fixtures/leases";
    let created = call(&api, "POST", path, Some(LEASE));
    assert_eq!(created.status, 201);
    assert_eq!(
        created.json()["spec"]["renewTime"],
        "2026-11-25T10:15:30.123456Z"
    );
    assert_fixture(
        &call(&api, "PUT", &format!("{path}/paperlb"), Some(LEASE)),
        "error-lease-update-no-rv.http",
    );
    let rv = created.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let three = LEASE
        .replace(
            "\"namespace\":\"fixtures\"}",
            &format!("\"namespace\":\"fixtures\",\"resourceVersion\":\"{rv}\"}}"),
        )
        .replace(
            "\"renewTime\":\"2026-11-25T10:15:30.123456Z\"",
            "\"renewTime\":\"2026-11-25T10:15:34.123Z\"",
        );
    assert_fixture(
        &call(&api, "PUT", &format!("{path}/paperlb"), Some(&three)),
        "error-lease-renewtime-3-digits.http",
    );
    let offset = three.replace("10:15:34.123Z", "12:15:34.123456+02:00");
    let updated = call(&api, "PUT", &format!("{path}/paperlb"), Some(&offset));
    assert_eq!(updated.status, 200);
    assert_eq!(
        updated.json()["spec"]["renewTime"],
        "2026-11-25T10:15:34.123456Z"
    );
    assert_ne!(updated.json()["metadata"]["resourceVersion"], rv.as_str());
}

#[test]
fn services_get_node_ports_shared_by_tcp_and_udp_on_the_same_port() {
    let api = start();
    let dns = call(&api, "POST", SVCS, Some(DNS)).json();
    let ports = dns["spec"]["ports"].as_array().unwrap();
    let np = ports[0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&np));
    assert_eq!(ports[1]["nodePort"].as_u64(), Some(np));
    let spec = &dns["spec"];
    assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
    assert_eq!(spec["externalTrafficPolicy"], "Cluster");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(dns["status"], json!({"loadBalancer": {}}));
    // Same key order as the real server's Service.
    let (_, fixture_body) = fixture("service-create-dns-shared-nodeport.http");
    let fix: Value = serde_json::from_slice(&fixture_body).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&dns["spec"]), keys(&fix["spec"]));
    let spec_text = String::from_utf8_lossy(&fixture_body).to_string();
    let ours = call(&api, "GET", &format!("{SVCS}/dns"), None).text();
    let pos = |s: &str, k: &str| s.find(k).unwrap();
    for pair in [
        ("\"spec\"", "\"status\""),
        ("\"clusterIP\"", "\"type\""),
        ("\"protocol\"", "\"port\""),
    ] {
        assert!(pos(&ours, pair.0) < pos(&ours, pair.1));
        assert!(pos(&spec_text, pair.0) < pos(&spec_text, pair.1));
    }

    let web = call(&api, "POST", SVCS, Some(WEB)).json();
    let w = web["spec"]["ports"].as_array().unwrap();
    assert_ne!(w[0]["nodePort"], w[1]["nodePort"]);

    // A requested nodePort that is taken, or out of range, is a 422 on that field.
    let taken = json!({"metadata": {"name": "taken", "namespace": "fixtures"}, "spec": {"type": "NodePort",
        "ports": [{"port": 1, "nodePort": np}]}});
    let r = call(&api, "POST", SVCS, Some(&taken.to_string()));
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["details"]["causes"][0]["field"],
        "spec.ports[0].nodePort"
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .ends_with("provided port is already allocated")
    );
    let out = json!({"metadata": {"name": "out", "namespace": "fixtures"}, "spec": {"type": "NodePort",
        "ports": [{"port": 1, "nodePort": 80}]}});
    assert_eq!(call(&api, "POST", SVCS, Some(&out.to_string())).status, 422);

    // externalTrafficPolicy Local gets a healthCheckNodePort; switching to ClusterIP wipes it all.
    let local = call(
        &api,
        "PATCH",
        &format!("{SVCS}/web"),
        Some(r#"{"spec":{"externalTrafficPolicy":"Local"}}"#),
    )
    .json();
    assert!(local["spec"]["healthCheckNodePort"].as_u64().is_some());
    assert_eq!(
        local["spec"]["ports"], web["spec"]["ports"],
        "nodePorts kept across updates"
    );
    api.patch_status(
        "services",
        "fixtures",
        "web",
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.10"}]}}}),
    )
    .unwrap();
    let class = call(
        &api,
        "PATCH",
        &format!("{SVCS}/web"),
        Some(r#"{"spec":{"loadBalancerClass":"other"}}"#),
    );
    assert_eq!(class.status, 422);
    assert!(class.text().contains("may not change once set"));
    let cip = call(
        &api,
        "PATCH",
        &format!("{SVCS}/web"),
        Some(r#"{"spec":{"type":"ClusterIP"}}"#),
    )
    .json();
    assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
    assert!(cip["spec"].get("healthCheckNodePort").is_none());
    assert!(cip["spec"].get("externalTrafficPolicy").is_none());
    assert_eq!(cip["status"], json!({"loadBalancer": {}}));
}

#[test]
fn a_full_node_port_range_is_an_internal_error() {
    let api = start_with(FakeOptions {
        node_port_range: (30000, 30001),
        ..FakeOptions::default()
    });
    let svc = |name: &str| {
        json!({"metadata": {"name": name, "namespace": "fixtures"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
        .to_string()
    };
    assert_eq!(call(&api, "POST", SVCS, Some(&svc("a"))).status, 201);
    assert_eq!(call(&api, "POST", SVCS, Some(&svc("b"))).status, 201);
    let r = call(&api, "POST", SVCS, Some(&svc("c")));
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["reason"], "InternalError");
}

#[test]
fn status_subresource_and_main_resource_ignore_each_others_fields() {
    let api = start();
    let with_status = WEB.replacen(
        "\"spec\"",
        "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"1.2.3.4\"}]}},\"spec\"",
        1,
    );
    let created = call(&api, "POST", SVCS, Some(&with_status)).json();
    assert_eq!(
        created["status"],
        json!({"loadBalancer": {}}),
        "create ignores status"
    );
    let r = call(
        &api,
        "PATCH",
        &format!("{SVCS}/web"),
        Some(r#"{"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}}}"#),
    );
    assert_eq!(
        r.json(),
        created,
        "a main-resource write of status is a no-op"
    );
    let st = call(&api, "PATCH", &format!("{SVCS}/web/status"), Some(r#"{"spec":{"type":"ClusterIP"},"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}}}"#)).json();
    assert_eq!(st["spec"]["type"], "LoadBalancer");
    assert_eq!(st["status"]["loadBalancer"]["ingress"][0]["ip"], "1.2.3.4");
    // A no-op write keeps the RV and sends no event.
    let rv = api.resource_version();
    let again = call(
        &api,
        "PATCH",
        &format!("{SVCS}/web/status"),
        Some(r#"{"status":{"loadBalancer":{"ingress":[{"ip":"1.2.3.4"}]}}}"#),
    )
    .json();
    assert_eq!(
        again["metadata"]["resourceVersion"],
        st["metadata"]["resourceVersion"]
    );
    assert_eq!(api.resource_version(), rv);
    // CR /status resets metadata and spec changes.
    call(&api, "POST", LBS, Some(LB));
    let st = call(
        &api,
        "PATCH",
        &format!("{LBS}/web/status"),
        Some(r#"{"metadata":{"labels":{"x":"y"}},"spec":{"port":1},"status":{"phase":"READY"}}"#),
    )
    .json();
    assert_eq!(st["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(st["spec"]["port"], 8100);
    assert_eq!(st["metadata"]["generation"], 1);
    let lbl = call(
        &api,
        "PATCH",
        &format!("{LBS}/web"),
        Some(r#"{"metadata":{"labels":{"x":"y"}}}"#),
    )
    .json();
    assert_eq!(
        lbl["metadata"]["generation"], 1,
        "metadata changes keep the generation"
    );
    let put = lbl.clone();
    let mut put2 = put.clone();
    put2["spec"]["port"] = json!(9000);
    put2["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let r = call(&api, "PUT", &format!("{LBS}/web"), Some(&put2.to_string()));
    assert_eq!(r.status, 422, "a CR PUT needs a resourceVersion");
    put2["metadata"]["resourceVersion"] = put["metadata"]["resourceVersion"].clone();
    let r = call(&api, "PUT", &format!("{LBS}/web"), Some(&put2.to_string())).json();
    assert_eq!(r["metadata"]["generation"], 2);
    assert_eq!(r["status"], json!({"phase": "READY"}));
}

#[test]
fn create_checks_resource_version_and_namespace() {
    let api = start();
    let with_rv = WEB.replace(
        "\"namespace\":\"fixtures\"",
        "\"namespace\":\"fixtures\",\"resourceVersion\":\"5\"",
    );
    assert_eq!(call(&api, "POST", SVCS, Some(&with_rv)).status, 400);
    let r = call(
        &api,
        "POST",
        "/api/v1/namespaces/default/services",
        Some(WEB),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
    let r = call(
        &api,
        "POST",
        "/api/v1/namespaces/nope/services",
        Some(&WEB.replace("fixtures", "nope")),
    );
    assert_eq!(r.status, 404);
    assert_eq!(call(&api, "POST", SVCS, Some("{not json")).status, 400);
}

#[test]
fn list_pages_share_one_resource_version() {
    let api = start();
    call(&api, "POST", SVCS, Some(DNS));
    call(&api, "POST", SVCS, Some(WEB));
    let p1 = get(&api, "/api/v1/services?limit=1");
    let m1 = p1.json()["metadata"].clone();
    assert_eq!(p1.json()["items"][0]["metadata"]["name"], "kubernetes");
    assert!(
        p1.json()["items"][0].get("kind").is_none(),
        "built-in list items have no kind"
    );
    assert_eq!(m1["remainingItemCount"], 2);
    // Writes between pages do not show up in the later pages.
    call(&api, "DELETE", &format!("{SVCS}/web"), None);
    let token = m1["continue"].as_str().unwrap();
    let p2 = get(&api, &format!("/api/v1/services?limit=1&continue={token}"));
    let m2 = p2.json()["metadata"].clone();
    assert_eq!(m2["resourceVersion"], m1["resourceVersion"]);
    assert_eq!(p2.json()["items"][0]["metadata"]["name"], "dns");
    let token = m2["continue"].as_str().unwrap();
    let p3 = get(&api, &format!("/api/v1/services?limit=1&continue={token}"));
    assert_eq!(p3.json()["items"][0]["metadata"]["name"], "web");
    assert!(p3.json()["metadata"].get("continue").is_none());
    assert!(p3.json()["metadata"].get("remainingItemCount").is_none());
    // resourceVersion=0 ignores limit.
    let all = get(&api, "/api/v1/services?limit=1&resourceVersion=0").json();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert!(all["metadata"].get("continue").is_none());
    // After compaction the token is expired.
    api.compact();
    let r = get(
        &api,
        &format!(
            "/api/v1/services?limit=1&continue={}",
            m1["continue"].as_str().unwrap()
        ),
    );
    assert_eq!(r.status, 410);
    let (head, body) = fixture("error-list-continue-expired.http");
    let fix: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r.json()["message"], fix["message"]);
    assert_eq!(r.json()["reason"], "Expired");
    assert!(r.json()["metadata"]["continue"].is_string());
    assert_eq!(r.head.lines().next(), head.lines().next());
}

#[test]
fn large_bodies_are_chunked_at_2048_bytes() {
    let api = start();
    for i in 0..4 {
        let svc = DNS.replace("\"name\":\"dns\"", &format!("\"name\":\"dns{i}\""));
        call(&api, "POST", SVCS, Some(&svc));
    }
    let r = get(&api, SVCS);
    assert_eq!(r.header("Transfer-Encoding").as_deref(), Some("chunked"));
    assert!(r.header("Content-Length").is_none());
    assert!(r.chunks.len() > 1);
    assert!(r.chunks[..r.chunks.len() - 1].iter().all(|c| *c == 2048));
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 4);
    let small = get(&api, &format!("{SVCS}/dns0"));
    assert_eq!(
        small.header("Content-Length"),
        Some(small.body.len().to_string())
    );
    assert!(small.text().ends_with("}\n"));
}

#[test]
fn selectors_filter_lists_and_watches() {
    let api = start();
    call(&api, "POST", SVCS, Some(WEB));
    call(&api, "POST", SVCS, Some(DNS));
    let names = |r: &Resp| -> Vec<String> {
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&get(&api, &format!("{SVCS}?labelSelector=app%3Dweb"))),
        ["web"]
    );
    assert_eq!(
        names(&get(&api, &format!("{SVCS}?labelSelector=app!%3Dweb"))),
        ["dns"]
    );
    assert_eq!(
        names(&get(&api, &format!("{SVCS}?labelSelector=!app"))),
        ["dns"]
    );
    assert_eq!(
        names(&get(&api, &format!("{SVCS}?labelSelector=app"))),
        ["web"]
    );
    assert_eq!(
        names(&get(
            &api,
            &format!("{SVCS}?labelSelector=app%20in%20(web,x)")
        )),
        ["web"]
    );
    assert_eq!(
        names(&get(
            &api,
            &format!("{SVCS}?fieldSelector=metadata.name%3Ddns")
        )),
        ["dns"]
    );
    assert_eq!(
        get(&api, &format!("{SVCS}?fieldSelector=spec.nope%3Dx")).status,
        400
    );
    let w = get(
        &api,
        &format!("{SVCS}?watch=1&labelSelector=app%3Dweb&timeoutSeconds=1"),
    );
    let ev = w.lines();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["type"], "ADDED");
    assert_eq!(ev[0]["object"]["kind"], "Service");
}

#[test]
fn watch_from_a_resource_version_sends_exactly_the_later_events() {
    let api = start();
    call(&api, "POST", SVCS, Some(DNS));
    let rv = get(&api, SVCS).json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let created = call(&api, "POST", SVCS, Some(WEB)).json();
    call(
        &api,
        "PATCH",
        &format!("{SVCS}/web/status"),
        Some(r#"{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.10","ipMode":"Proxy"}]}}}"#),
    );
    call(
        &api,
        "PATCH",
        &format!("{SVCS}/web"),
        Some(r#"{"metadata":{"labels":{"lb.paperlb.com/managed":"true"}}}"#),
    );
    let deleted = call(&api, "DELETE", &format!("{SVCS}/web"), None);
    assert_eq!(deleted.status, 200);
    let d = deleted.json();
    assert_eq!(d["kind"], "Service");
    let w = get(
        &api,
        &format!("{SVCS}?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
    );
    let (fixture_head, _) = fixture("services-watch.http");
    assert_eq!(w.head, fixture_head);
    assert!(
        w.ended,
        "the stream ends with the last chunk at timeoutSeconds"
    );
    let events = w.lines();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]);
    assert_eq!(
        events[0]["object"]["metadata"]["uid"],
        created["metadata"]["uid"]
    );
    assert_eq!(
        events[3]["object"], d,
        "DELETED carries the last state at the delete's RV"
    );
    assert_eq!(w.chunks.len(), 4);
    for (chunk, line) in w.chunks.iter().zip(w.text().split_inclusive('\n')) {
        assert_eq!(
            *chunk,
            line.len(),
            "one chunk per event, ending with its newline"
        );
    }
    assert!(w.raw_body.ends_with(b"}\n\r\n0\r\n\r\n"));
    // Without a resourceVersion the watch opens with the current objects.
    let w = get(&api, &format!("{SVCS}?watch=1&timeoutSeconds=1"));
    let events = w.lines();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["metadata"]["name"], "dns");
}

#[test]
fn bookmarks_carry_only_the_resource_version() {
    let api = start_with(FakeOptions {
        bookmark_interval: Duration::from_millis(200),
        ..FakeOptions::default()
    });
    let rv = api.resource_version();
    api.create("namespaces", json!({"metadata": {"name": "other"}}))
        .unwrap();
    let current = api.resource_version();
    let w = get(
        &api,
        &format!("{SVCS}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=1"),
    );
    let lines: Vec<&str> = w
        .text()
        .lines()
        .map(|l| l.to_owned())
        .collect::<Vec<_>>()
        .leak()
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert!(!lines.is_empty());
    let expected = format!(
        r#"{{"type":"BOOKMARK","object":{{"kind":"Service","apiVersion":"v1","metadata":{{"resourceVersion":"{current}"}},"spec":{{}},"status":{{"loadBalancer":{{}}}}}}}}"#
    );
    assert!(lines.iter().all(|l| *l == expected), "{lines:?}");
    let w = get(
        &api,
        &format!("{LBS}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=1"),
    );
    let expected = format!(
        r#"{{"type":"BOOKMARK","object":{{"apiVersion":"lb.paperlb.com/v1alpha1","kind":"LoadBalancer","metadata":{{"resourceVersion":"{current}"}}}}}}"#
    );
    assert!(!w.text().is_empty());
    assert!(w.text().lines().all(|l| l == expected), "{}", w.text());
    // No bookmarks unless asked for.
    let w = get(
        &api,
        &format!("{SVCS}?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
    );
    assert!(w.body.is_empty());
}

#[test]
fn a_compacted_resource_version_expires_the_watch() {
    let api = start();
    let rv = api.resource_version();
    call(&api, "POST", SVCS, Some(WEB));
    api.compact();
    let w = get(
        &api,
        &format!("{SVCS}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=20"),
    );
    let raw = std::fs::read(format!("{FIXTURES}services-watch-expired.raw")).unwrap();
    let i = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert_eq!(w.head.as_bytes(), &raw[..i + 2]);
    assert_eq!(w.raw_body, &raw[i + 4..]);
    // A watch from the current RV still works.
    let now = api.resource_version();
    assert!(
        get(
            &api,
            &format!("{SVCS}?watch=1&resourceVersion={now}&timeoutSeconds=1")
        )
        .ended
    );
    // The other form: HTTP 410 to the watch request itself.
    api.inject(Fault::new(Some("GET"), SVCS, 1, FaultKind::Status(410)));
    let r = get(&api, &format!("{SVCS}?watch=1&resourceVersion={now}"));
    assert_eq!(r.status, 410);
    assert_eq!(r.json()["reason"], "Expired");
    // Lists: only an exact RV (or RV with limit) is refused.
    assert_eq!(
        get(
            &api,
            &format!("{SVCS}?resourceVersion={rv}&resourceVersionMatch=Exact")
        )
        .status,
        410
    );
    assert_eq!(
        get(&api, &format!("{SVCS}?resourceVersion={rv}")).status,
        200
    );
}

#[test]
fn injected_faults_do_what_they_say() {
    let api = start();
    call(&api, "POST", SVCS, Some(WEB));
    for code in [401u16, 403, 409, 500, 503] {
        api.inject(Fault::new(Some("GET"), SVCS, 1, FaultKind::Status(code)));
        let r = get(&api, &format!("{SVCS}/web"));
        assert_eq!(r.status, code);
        assert_eq!(r.json()["code"], code);
        assert_eq!(
            get(&api, &format!("{SVCS}/web")).status,
            200,
            "only the next request"
        );
    }
    api.inject(Fault::new(None, "/api/v1", 2, FaultKind::Status(429)));
    let r = get(&api, SVCS);
    assert_eq!(
        (r.status, r.header("Retry-After").as_deref()),
        (429, Some("1"))
    );
    assert_eq!(get(&api, SVCS).status, 429);
    assert_eq!(get(&api, SVCS).status, 200);
    api.inject(Fault::new(
        None,
        "/",
        1,
        FaultKind::Throttled { retry_after: 3 },
    ));
    let r = get(&api, SVCS);
    assert_eq!(
        (r.status, r.header("Retry-After").as_deref()),
        (429, Some("3"))
    );
    assert_eq!(r.text(), "Too many requests, please try again later.\n");
    api.inject(Fault::new(Some("PATCH"), SVCS, 1, FaultKind::Drop));
    assert_eq!(get(&api, SVCS).status, 200, "method must match");
    let r = call(&api, "PATCH", &format!("{SVCS}/web"), Some("{}"));
    assert_eq!(r.status, 0);
    assert!(r.head.is_empty(), "dropped without an answer");
    api.inject(Fault::new(
        None,
        SVCS,
        1,
        FaultKind::Stall(Duration::from_millis(100)),
    ));
    assert_eq!(get(&api, SVCS).status, 200);

    let watch = format!("{SVCS}?watch=1");
    api.inject(Fault::new(None, &watch, 1, FaultKind::DropMidObject));
    let r = get(&api, &format!("{watch}&timeoutSeconds=5"));
    assert_eq!(r.status, 200);
    assert!(!r.ended);
    assert!(!r.text().ends_with('\n') && r.text().starts_with("{\"type\":\"ADDED\""));
    api.inject(Fault::new(None, &watch, 1, FaultKind::Garbage));
    let r = get(&api, &format!("{watch}&timeoutSeconds=1"));
    assert!(serde_json::from_str::<Value>(r.text().lines().next().unwrap()).is_err());
    call(&api, "POST", SVCS, Some(DNS));
    api.inject(Fault::new(None, &watch, 1, FaultKind::EndEarly(1)));
    let r = get(&api, &format!("{watch}&timeoutSeconds=30"));
    assert!(r.ended);
    assert_eq!(r.lines().len(), 1);
    api.inject(Fault::new(
        None,
        &watch,
        1,
        FaultKind::StallStream(Duration::from_millis(300)),
    ));
    let r = get(&api, &format!("{watch}&timeoutSeconds=30"));
    assert!(r.ended && r.body.is_empty());
    // Watch-only faults leave plain requests alone.
    api.inject(Fault::new(None, SVCS, 1, FaultKind::Garbage));
    assert_eq!(get(&api, SVCS).status, 200);
    api.clear_faults();
}

#[test]
fn self_subject_access_reviews_answer_201() {
    let api = start();
    api.deny(SA_USER, "patch", "services/status");
    let body = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"namespace":"fixtures","verb":"patch","resource":"services","subresource":"status"}}}"#;
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    for (token, file, allowed) in [
        (api.admin_token(), "ssar-allowed.http", true),
        (SA_TOKEN.to_string(), "ssar-denied.http", false),
    ] {
        let r = call_as(
            &api,
            Some(&token),
            "POST",
            path,
            Some("application/json"),
            Some(body),
        );
        let (head, fbody) = fixture(file);
        assert_eq!(
            r.head.lines().take(3).collect::<Vec<_>>(),
            head.lines().take(3).collect::<Vec<_>>()
        );
        let mut fix: Value = serde_json::from_slice(&fbody).unwrap();
        fix["metadata"] = json!({});
        assert_eq!(r.json(), fix);
        assert_eq!(r.json()["status"]["allowed"], allowed);
        assert!(r.text().starts_with(r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{},"spec":{"resourceAttributes":{"namespace":"fixtures","verb":"patch","resource":"services","subresource":"status"}},"status":{"allowed":"#));
    }
    // The denial applies to the real request too, but not to the main resource.
    let r = call_as(
        &api,
        Some(SA_TOKEN),
        "PATCH",
        &format!("{SVCS}/web/status"),
        Some("application/merge-patch+json"),
        Some("{}"),
    );
    assert_eq!(r.status, 403);
    assert!(
        r.text()
            .contains(r#"cannot patch resource \"services/status\""#)
    );
    let r = call_as(
        &api,
        Some(SA_TOKEN),
        "GET",
        &format!("{SVCS}/web"),
        None,
        None,
    );
    assert_eq!(r.status, 404);
}

#[test]
fn client_certificates_authenticate_as_their_common_name() {
    let api = start();
    let cert = api.issue_client_cert("alice");
    let req = format!("GET {SVCS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = parse_response(&exchange(&api, Some(cert.clone()), req.as_bytes()));
    assert_eq!(r.status, 200);
    api.deny("alice", "list", "services");
    let r = parse_response(&exchange(&api, Some(cert), req.as_bytes()));
    assert_eq!(r.status, 403);
    assert!(r.text().contains("User \\\"alice\\\" cannot list"));
    // No credentials at all: anonymous, forbidden except for /version.
    let r = parse_response(&exchange(&api, None, req.as_bytes()));
    assert_eq!(r.status, 403);
    let v = "GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(
        parse_response(&exchange(&api, None, v.as_bytes())).status,
        200
    );
    let rec = api.requests();
    assert!(rec.iter().any(|r| r.user == "alice" && r.status == 403));
}

#[test]
fn malformed_requests_get_400_and_a_closed_connection() {
    let api = start();
    let r = parse_response(&exchange(&api, None, b"GARBAGE\r\n\r\n"));
    assert_eq!(r.status, 400);
    let mut huge = b"GET /version HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1_100_000));
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(parse_response(&exchange(&api, None, &huge)).status, 431);
    let bad_len = format!("POST {SVCS} HTTP/1.1\r\nContent-Length: nope\r\n\r\n");
    assert_eq!(
        parse_response(&exchange(&api, None, bad_len.as_bytes())).status,
        400
    );
    call(&api, "POST", SVCS, Some(WEB));
    for body in [
        r#"{"metadata":5}"#,
        r#"{"spec":{"ports":[7]}}"#,
        "[1]",
        "nope",
        r#"{"metadata":{"labels":"x"}}"#,
    ] {
        let r = call(&api, "PATCH", &format!("{SVCS}/web"), Some(body));
        assert!((400..500).contains(&r.status), "{body}: {}", r.status);
    }
    let root = call_as(
        &api,
        Some(&api.admin_token()),
        "PATCH",
        &format!("{SVCS}/web"),
        Some("application/json-patch+json"),
        Some(r#"[{"op":"add","path":"","value":3}]"#),
    );
    assert_eq!(root.status, 400);
    for body in [r#"{"metadata":7,"spec":3}"#, "[]", r#"{"kind":"Node"}"#] {
        assert!(
            (400..500).contains(&call(&api, "POST", SVCS, Some(body)).status),
            "{body}"
        );
    }
    assert_eq!(get(&api, "/version").status, 200, "the server is still up");
}

#[test]
fn ureq_clients_reuse_connections_and_read_error_bodies() {
    let api = start();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![
            ureq::tls::Certificate::from_pem(api.ca_pem().as_bytes()).unwrap(),
        ])))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let auth = format!("Bearer {}", api.admin_token());
    let url = format!("{}{SVCS}", api.url());
    let mut r = agent
        .post(&url)
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send(WEB)
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.body_mut().read_json().unwrap();
    assert_eq!(v["metadata"]["name"], "web");
    for _ in 0..3 {
        let mut r = agent
            .get(&format!("{url}/nope"))
            .header("Authorization", &auth)
            .call()
            .unwrap();
        assert_eq!(r.status(), 404);
        let s: Value = r.body_mut().read_json().unwrap();
        assert_eq!(s["message"], "services \"nope\" not found");
    }
    let rec = api.requests();
    assert_eq!(rec.iter().filter(|r| r.method == "POST").count(), 1);
    assert_eq!(rec[0].content_type.as_deref(), Some("application/json"));
    api.clear_requests();
    assert!(api.requests().is_empty());
}

#[test]
fn direct_store_access_emits_watch_events() {
    let api = start();
    let rv = api.resource_version();
    let node = api
        .create(
            "nodes",
            json!({"metadata": {"name": "node-a", "labels": {"kubernetes.io/hostname": "node-a"}}}),
        )
        .unwrap();
    assert_eq!(
        node["spec"]["taints"][0]["key"],
        "node.kubernetes.io/not-ready"
    );
    assert_eq!(
        node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        0
    );
    api.patch_status(
        "nodes",
        "",
        "node-a",
        json!({"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.2"}]}}),
    )
    .unwrap();
    assert_eq!(api.list("nodes", "").len(), 1);
    api.delete("nodes", "", "node-a").unwrap();
    assert!(api.get("nodes", "", "node-a").is_err());
    let w = get(
        &api,
        &format!("/api/v1/nodes?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
    );
    let types: Vec<String> = w
        .lines()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["ADDED", "MODIFIED", "DELETED"]);
    let err = api.get("services", "default", "nope").unwrap_err();
    assert_eq!((err.code, err.reason()), (404, "NotFound"));
    let applied = api
        .apply(
            "services",
            json!({"metadata": {"name": "a", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap();
    assert_eq!(applied["spec"]["type"], "ClusterIP");
}

#[test]
fn kubeconfig_names_the_server_and_the_admin_token() {
    let api = start();
    let dir = std::env::temp_dir().join(format!("fake-api-kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    api.write_kubeconfig(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("server: {}", api.url())));
    assert!(text.contains(&format!("token: {}", api.admin_token())));
    assert!(text.contains("certificate-authority-data: "));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(ADMIN_USER, "kubernetes-admin");
}

#[test]
fn plain_http_mode_serves_the_same_api() {
    let mut api = FakeApi::start(FakeOptions {
        tls: false,
        ..FakeOptions::default()
    });
    let mut tcp = TcpStream::connect(api.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /api/v1/namespaces/default/services/kubernetes HTTP/1.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        api.admin_token()
    );
    tcp.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out);
    let r = parse_response(&out);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["clusterIP"], "10.96.0.1");
    api.stop();
    api.stop();
}

#[test]
fn bundle_kinds_have_generic_storage_with_the_real_scopes_and_errors() {
    let api = start();
    // Cluster-scoped under a namespace, and namespaced without one, are unknown paths (JSON 404
    // in the core group, text/plain in the others), as on the real server.
    assert_eq!(
        get(&api, "/api/v1/namespaces/fixtures/namespaces/x").status,
        404
    );
    let r = get(
        &api,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/fixtures/clusterroles",
    );
    assert_eq!((r.status, r.text()), (404, "404 page not found\n".into()));
    for (path, body) in [
        (
            "/api/v1/namespaces/fixtures/serviceaccounts",
            r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"}}"#,
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
            r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["nodes"],"verbs":["get"]}]}"#,
        ),
        (
            "/apis/apps/v1/namespaces/fixtures/deployments",
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#,
        ),
    ] {
        let r = call(&api, "POST", path, Some(body));
        assert_eq!(r.status, 201, "{path}: {}", r.text());
        let created = r.json();
        let name = created["metadata"]["name"].as_str().unwrap().to_string();
        assert_eq!(get(&api, &format!("{path}/{name}")).json(), created);
        let again = call(&api, "POST", path, Some(body));
        assert_eq!(again.status, 409, "{path}");
        let st = again.json();
        assert_eq!(st["kind"], "Status");
        assert_eq!(st["reason"], "AlreadyExists");
        assert_eq!(st["details"]["name"], name.as_str());
        assert_eq!(
            st["details"]["kind"],
            path.rsplit('/').next().unwrap(),
            "details.kind is the resource"
        );
        // Go struct order for built-ins: kind, apiVersion, metadata first.
        assert!(r.text().starts_with(r#"{"kind":"#), "{}", r.text());
    }
    let d = get(&api, "/apis/apps/v1/namespaces/fixtures/deployments/d").json();
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    // A namespaced create into a namespace that does not exist.
    let r = call(
        &api,
        "POST",
        "/api/v1/namespaces/nope/serviceaccounts",
        Some(r#"{"metadata":{"name":"sa"}}"#),
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["message"], r#"namespaces "nope" not found"#);
    // Discovery lists the new groups and their resources.
    let groups = get(&api, "/apis").json();
    for g in ["apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io"] {
        assert!(
            groups["groups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["name"] == g),
            "{g} not in /apis"
        );
    }
    let core = get(&api, "/api/v1").json();
    let sa = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "serviceaccounts")
        .expect("serviceaccounts in /api/v1");
    assert_eq!(sa["namespaced"], true);
}

#[test]
fn custom_resources_are_served_once_their_crd_is_established() {
    let api = start_with(FakeOptions {
        crds_installed: false,
        ..FakeOptions::default()
    });
    assert_fixture(&get(&api, LBS), "error-unknown-group.http");
    const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let crd = |name: &str, plural: &str, kind: &str| {
        format!(
            r#"{{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{{"name":"{name}"}},"spec":{{"group":"lb.paperlb.com","scope":"Namespaced","names":{{"plural":"{plural}","kind":"{kind}"}},"versions":[{{"name":"v1alpha1","served":true,"storage":true,"schema":{{"openAPIV3Schema":{{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}},"subresources":{{"status":{{}}}}}}]}}}}"#
        )
    };
    // The name must be <plural>.<group>.
    let r = call(
        &api,
        "POST",
        CRDS,
        Some(&crd(
            "wrong.lb.paperlb.com",
            "loadbalancers",
            "LoadBalancer",
        )),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["details"]["causes"][0]["field"], "metadata.name");

    let r = call(
        &api,
        "POST",
        CRDS,
        Some(&crd(
            "loadbalancers.lb.paperlb.com",
            "loadbalancers",
            "LoadBalancer",
        )),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // The create answers before the establishing controller has run; a GET sees it Established.
    assert_eq!(r.json()["status"]["acceptedNames"]["kind"], "");
    let got = get(&api, &format!("{CRDS}/loadbalancers.lb.paperlb.com")).json();
    assert_eq!(got["status"]["acceptedNames"]["kind"], "LoadBalancer");
    assert_eq!(
        got["status"]["acceptedNames"]["listKind"],
        "LoadBalancerList"
    );
    assert_eq!(got["status"]["storedVersions"], json!(["v1alpha1"]));
    assert_eq!(got["status"]["conditions"][1]["type"], "Established");

    // Only the kind whose CRD exists is served.
    assert_eq!(get(&api, LBS).status, 200);
    let r = get(
        &api,
        "/apis/lb.paperlb.com/v1alpha1/namespaces/fixtures/loadbalancerconfigs",
    );
    assert_eq!((r.status, r.text()), (404, "404 page not found\n".into()));
    let names: Vec<String> = get(&api, "/apis/lb.paperlb.com/v1alpha1").json()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["loadbalancers", "loadbalancers/status"]);

    let r = call(
        &api,
        "POST",
        LBS,
        Some(
            r#"{"apiVersion":"lb.paperlb.com/v1alpha1","kind":"LoadBalancer","metadata":{"name":"web"}}"#,
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Deleting the CRD deletes its objects and stops serving it.
    let r = call(
        &api,
        "DELETE",
        &format!("{CRDS}/loadbalancers.lb.paperlb.com"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_fixture(&get(&api, LBS), "error-unknown-group.http");
    assert!(api.list("loadbalancers", "").is_empty());
}

/// An older LoadBalancer CRD (`set_lb_crd_without`), as kube-apiserver v1.36 answered on
/// 2026-12-07 with a CRD lacking `spec.balance`: a strict create is a 400 BadRequest and a strict
/// merge patch a 422 Invalid, both ending in the unknown field; without `fieldValidation=Strict`
/// the field is dropped and the write succeeds.
#[test]
fn an_older_crd_refuses_unknown_fields_when_strict_and_drops_them_otherwise() {
    let api = start();
    api.set_lb_crd_without(&["balance"]);
    let lbs = LBS;
    let lb = |name: &str| {
        json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancer",
            "metadata": {"name": name},
            "spec": {"host": "127.0.0.1", "port": 10000, "balance": "hash",
                "httpUpdater": {"url": "http://127.0.0.1:3000"}}})
        .to_string()
    };
    let r = call(
        &api,
        "POST",
        &format!("{lbs}?fieldValidation=Strict"),
        Some(&lb("a")),
    );
    assert_eq!(r.status, 400);
    let status = r.json();
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "LoadBalancer in version \"v1alpha1\" cannot be handled as a LoadBalancer: \
         strict decoding error: unknown field \"spec.balance\""
    );
    let created = call(&api, "POST", lbs, Some(&lb("a")));
    assert_eq!(created.status, 201);
    assert!(created.json()["spec"].get("balance").is_none(), "pruned");
    let patch = r#"{"spec":{"balance":"hash"}}"#;
    let r = call(
        &api,
        "PATCH",
        &format!("{lbs}/a?fieldValidation=Strict"),
        Some(patch),
    );
    assert_eq!(r.status, 422);
    let status = r.json();
    assert_eq!(status["reason"], "Invalid");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(" \"\" is invalid: patch: Invalid value: \""),
        "{message}"
    );
    assert!(message.ends_with("\": strict decoding error: unknown field \"spec.balance\""));
    assert_eq!(status["details"]["causes"][0]["field"], "patch");
    let r = call(&api, "PATCH", &format!("{lbs}/a"), Some(patch));
    assert_eq!(r.status, 200);
    assert!(r.json()["spec"].get("balance").is_none(), "pruned");
    api.set_lb_crd_without(&[]);
    let r = call(
        &api,
        "PATCH",
        &format!("{lbs}/a?fieldValidation=Strict"),
        Some(patch),
    );
    assert_eq!(
        (r.status, r.json()["spec"]["balance"].clone()),
        (200, json!("hash"))
    );
}
