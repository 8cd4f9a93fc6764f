//! The REST client against loopback test servers: requests, answers, errors, timeouts, TLS.

use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::KeyPair;

use super::*;
use crate::kube::testutil::*;

impl ClientStats {
    fn count(&self, verb: &str, code: u16) -> u64 {
        let counts = self.counts.lock().unwrap();
        counts.get(&(verb, code)).copied().unwrap_or(0)
    }
}

fn client(url: &str) -> Client {
    Client::new(&config(url), ClientOptions::default()).unwrap()
}

fn quick() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(1),
        watch_idle_timeout: Duration::from_secs(1),
    }
}

fn tls_config(url: &str, ca_pem: &str) -> ClusterConfig {
    let mut c = config(url);
    c.tls.ca_pem = Some(ca_pem.as_bytes().to_vec());
    c
}

#[test]
fn client_is_cheap_to_share_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Client>();
}

#[test]
fn resource_paths_for_core_groups_namespaces_and_subresources() {
    assert_eq!(SERVICES.path(None, None, None), "/api/v1/services");
    assert_eq!(
        SERVICES.path(Some("ns"), Some("web"), Some("status")),
        "/api/v1/namespaces/ns/services/web/status"
    );
    assert_eq!(
        NODES.path(Some("ignored"), Some("n"), None),
        "/api/v1/nodes/n"
    );
    assert_eq!(
        LOADBALANCERS.path(Some("fixtures"), None, None),
        "/apis/lb.paperlb.com/v1alpha1/namespaces/fixtures/loadbalancers"
    );
    assert_eq!(
        SELF_SUBJECT_ACCESS_REVIEWS.path(None, None, None),
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    );
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(
        with_query("/p", &[("labelSelector", Some("app=web,tier!=db".into()))]),
        "/p?labelSelector=app%3Dweb%2Ctier%21%3Ddb"
    );
    assert_eq!(
        with_query("/p?a=1", &[("b", Some("2".into()))]),
        "/p?a=1&b=2"
    );
}

#[test]
fn get_sends_accept_user_agent_and_bearer_and_decodes() {
    let server = TestServer::http(|_| Reply::Raw(fixture("service-get.http")));
    let c = client(&server.url);
    let svc: serde_json::Value = c.get("/api/v1/namespaces/fixtures/services/dns").unwrap();
    assert_eq!(svc["metadata"]["name"], "dns");
    let req = &server.requests()[0];
    assert_eq!(req.header("accept"), Some("application/json"));
    assert!(req.header("user-agent").unwrap().starts_with("paperlb/"));
    assert_eq!(req.header("authorization"), Some("Bearer test-token"));
    assert_eq!(c.stats().count("get", 200), 1);
}

#[test]
fn status_404_is_not_found_and_carries_the_status() {
    let server = TestServer::http(|_| Reply::Raw(fixture("error-service-not-found.http")));
    let e = client(&server.url)
        .get::<serde_json::Value>("/api/v1/namespaces/fixtures/services/web")
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(matches!(&e, Error::Api(s) if s.reason == "NotFound"));
}

#[test]
fn text_404_for_an_unknown_group_is_http_not_found() {
    let server = TestServer::http(|_| Reply::Raw(fixture("error-unknown-group.http")));
    let e = client(&server.url)
        .get::<serde_json::Value>("/apis/nope.example.com/v1/things")
        .unwrap_err();
    assert!(e.is_not_found());
    assert!(
        matches!(&e, Error::Http { body, .. } if body == "404 page not found"),
        "{e:?}"
    );
}

#[test]
fn plain_text_429_keeps_retry_after() {
    let server = TestServer::http(|_| {
        Reply::Raw(response(
            "429 Too Many Requests",
            &[("Content-Type", "text/plain"), ("Retry-After", "3")],
            "Too many requests, please try again later.\n",
        ))
    });
    let e = client(&server.url)
        .get::<serde_json::Value>("/api/v1/nodes")
        .unwrap_err();
    assert!(
        matches!(&e, Error::Http { code: 429, retry_after: Some(d), .. } if *d == Duration::from_secs(3)),
        "{e:?}"
    );
}

#[test]
fn status_504_with_retry_after_header_fills_the_status() {
    let server = TestServer::http(|_| Reply::Raw(fixture("error-list-rv-too-large.http")));
    let e = client(&server.url)
        .get::<serde_json::Value>("/api/v1/services")
        .unwrap_err();
    assert!(
        matches!(&e, Error::Api(s) if s.code == 504 && s.retry_after == Some(Duration::from_secs(1))),
        "{e:?}"
    );
}

#[test]
fn html_502_is_an_http_error_with_a_snippet() {
    let server = TestServer::http(|_| {
        Reply::Raw(response(
            "502 Bad Gateway",
            &[("Content-Type", "text/html")],
            "<html><body>\n<h1>502 Bad Gateway</h1></body></html>",
        ))
    });
    let e = client(&server.url)
        .get::<serde_json::Value>("/api/v1/nodes")
        .unwrap_err();
    match &e {
        Error::Http {
            code: 502, body, ..
        } => assert!(body.contains("Bad Gateway") && !body.contains('\n')),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unauthorized_is_retried_once_then_reported() {
    let server = TestServer::http(|_| Reply::Raw(fixture("error-unauthorized.http")));
    let c = client(&server.url);
    let e = c.get::<serde_json::Value>("/api/v1/nodes").unwrap_err();
    assert!(
        matches!(&e, Error::Unauthorized { server } if *server == c.inner.server),
        "{e:?}"
    );
    assert_eq!(server.requests().len(), 2);
    assert_eq!(c.stats().count("get", 401), 2);
}

#[test]
fn unauthorized_then_ok_succeeds_on_the_retry() {
    let n = Arc::new(AtomicUsize::new(0));
    let server = {
        let n = n.clone();
        TestServer::http(move |_| {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::Raw(fixture("error-unauthorized.http"))
            } else {
                Reply::Raw(fixture("node-get.http"))
            }
        })
    };
    let node: serde_json::Value = client(&server.url).get("/api/v1/nodes/node-a").unwrap();
    assert_eq!(node["metadata"]["name"], "node-a");
}

#[test]
fn list_follows_continue_to_the_last_page() {
    let server = TestServer::http(|req| {
        if req.target.contains("continue=") {
            Reply::Raw(fixture("services-list-all-limit1-page2.http"))
        } else {
            Reply::Raw(fixture("services-list-all-limit1-page1.http"))
        }
    });
    let list: ObjectList<serde_json::Value> = client(&server.url)
        .list("/api/v1/services", &ListParams::default(), |t| {
            serde_json::from_str(t)
        })
        .unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(list.resource_version, "1086");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].target, "/api/v1/services?limit=500");
    assert_eq!(
        reqs[1].target,
        "/api/v1/services?limit=500&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MTA4Niwic3RhcnQiOiIvZGVmYXVsdC9rdWJlcm5ldGVzXHUwMDAwIn0"
    );
}

#[test]
fn list_with_an_expired_continue_token_is_gone() {
    let server = TestServer::http(|req| {
        if req.target.contains("continue=") {
            Reply::Raw(fixture("error-list-continue-expired.http"))
        } else {
            Reply::Raw(fixture("services-list-all-limit1-page1.http"))
        }
    });
    let e = client(&server.url)
        .list("/api/v1/services", &ListParams::default(), |t| {
            serde_json::from_str::<serde_json::Value>(t)
        })
        .unwrap_err();
    assert!(e.is_gone(), "{e:?}");
}

#[test]
fn chunked_list_decodes() {
    let server = TestServer::http(|_| Reply::Raw(fixture("services-list-all-rv0-limit1.raw")));
    let list: ObjectList<serde_json::Value> = client(&server.url)
        .list("/api/v1/services", &ListParams::default(), |t| {
            serde_json::from_str(t)
        })
        .unwrap();
    assert_eq!(list.items.len(), 2);
}

#[test]
fn undecodable_2xx_body_is_a_decode_error_naming_method_and_path() {
    let server = TestServer::http(|_| Reply::Raw(response("200 OK", &[], "{not json")));
    let e = client(&server.url)
        .get::<serde_json::Value>("/api/v1/nodes/x")
        .unwrap_err();
    assert!(
        matches!(&e, Error::Decode { what, .. } if what == "GET /api/v1/nodes/x"),
        "{e:?}"
    );
}

#[test]
fn writes_send_json_and_merge_patch_content_types() {
    let server = TestServer::http(|req| match req.method.as_str() {
        "POST" => Reply::Raw(fixture("service-create.http")),
        "PATCH" => Reply::Raw(fixture("service-status-patch.http")),
        "PUT" => Reply::Raw(fixture("lease-update.http")),
        _ => Reply::Raw(fixture("service-delete.http")),
    });
    let c = client(&server.url);
    let path = SERVICES.path(Some("fixtures"), None, None);
    let _: serde_json::Value = c.create(&path, &serde_json::json!({"a": 1})).unwrap();
    let _: serde_json::Value = c
        .merge_patch(
            &format!("{path}/web/status"),
            &serde_json::json!({"status": {}}),
        )
        .unwrap();
    let _: serde_json::Value = c
        .replace(&format!("{path}/web"), &serde_json::json!({}))
        .unwrap();
    c.delete(&format!("{path}/web")).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(reqs[0].body, br#"{"a":1}"#);
    assert_eq!(
        reqs[1].header("content-type"),
        Some("application/merge-patch+json")
    );
    assert_eq!(reqs[2].method, "PUT");
    assert_eq!(reqs[3].method, "DELETE");
    let stats = c.stats();
    for verb in ["create", "patch", "update", "delete"] {
        assert_eq!(
            stats.count(verb, if verb == "create" { 201 } else { 200 }),
            1,
            "{verb}"
        );
    }
}

#[test]
fn a_slow_server_is_a_timeout_not_a_hang() {
    let server =
        TestServer::http(|_| Reply::After(Duration::from_secs(30), fixture("node-get.http")));
    let c = Client::new(&config(&server.url), quick()).unwrap();
    let e = c
        .get::<serde_json::Value>("/api/v1/nodes/node-a")
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(c.stats().count("get", 0), 1);
}

#[test]
fn a_per_handle_request_timeout_replaces_the_clients_in_both_directions() {
    // Shorter: the client's own 30 s would wait; the handle's 200 ms gives up.
    let slow =
        TestServer::http(|_| Reply::After(Duration::from_secs(30), fixture("node-get.http")));
    let c = Client::new(&config(&slow.url), ClientOptions::default()).unwrap();
    let e = c
        .with_request_timeout(Duration::from_millis(200))
        .get::<serde_json::Value>("/api/v1/nodes/node-a")
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    // Same stats (and connections) as the client it came from.
    assert_eq!(c.stats().count("get", 0), 1);

    // Longer: quick()'s 1 s would time out on a 1.5 s answer; the handle's 20 s does not.
    let late =
        TestServer::http(|_| Reply::After(Duration::from_millis(1500), fixture("node-get.http")));
    let c = Client::new(&config(&late.url), quick()).unwrap();
    let node: serde_json::Value = c
        .with_request_timeout(Duration::from_secs(20))
        .get("/api/v1/nodes/node-a")
        .unwrap();
    assert_eq!(node["metadata"]["name"], "node-a");
    assert!(matches!(
        c.get::<serde_json::Value>("/api/v1/nodes/node-a"),
        Err(Error::Timeout { .. })
    ));
}

#[test]
fn connection_refused_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = client(&format!("http://127.0.0.1:{port}"))
        .get::<serde_json::Value>("/version")
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
}

#[test]
fn watch_streams_the_fixture_events_then_ends() {
    let server = TestServer::http(|_| Reply::Raw(fixture("services-watch.raw")));
    let c = client(&server.url);
    let mut s = c
        .watch("/api/v1/namespaces/fixtures/services", "1093", 20)
        .unwrap();
    let mut kinds = Vec::new();
    while let Some(e) = s
        .next_event(|t| serde_json::from_str::<serde_json::Value>(t))
        .unwrap()
    {
        kinds.push(match e {
            crate::kube::watch::WatchEvent::Added { .. } => "ADDED",
            crate::kube::watch::WatchEvent::Modified { .. } => "MODIFIED",
            crate::kube::watch::WatchEvent::Deleted { .. } => "DELETED",
            crate::kube::watch::WatchEvent::Bookmark { .. } => "BOOKMARK",
            crate::kube::watch::WatchEvent::Error(_) => "ERROR",
        });
        assert!(kinds.len() < 100);
    }
    assert_eq!(
        kinds,
        ["ADDED", "MODIFIED", "MODIFIED", "DELETED", "BOOKMARK"]
    );
    assert_eq!(
        server.requests()[0].target,
        "/api/v1/namespaces/fixtures/services?watch=1&allowWatchBookmarks=true&resourceVersion=1093&timeoutSeconds=20"
    );
}

#[test]
fn a_silent_watch_is_reported_as_stalled() {
    let head =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    let server = TestServer::http(move |_| Reply::Hold(head.clone(), Duration::from_secs(30)));
    let c = Client::new(&config(&server.url), quick()).unwrap();
    let mut s = c.watch("/api/v1/nodes", "1", 300).unwrap();
    let e = s
        .next_event(|t| serde_json::from_str::<serde_json::Value>(t))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Timeout { what, .. } if what.contains("stalled")),
        "{e:?}"
    );
}

// ---- TLS over loopback -----------------------------------------------------------------------

fn version_reply(_: &Req) -> Reply {
    Reply::Raw(fixture("version.http"))
}

#[test]
fn tls_with_the_right_ca_and_an_ip_san_works() {
    let pki = Pki::new("ca");
    let server = TestServer::tls(pki.server_config(&["127.0.0.1"], None), version_reply);
    let c = Client::new(
        &tls_config(&server.url, &pki.ca_pem),
        ClientOptions::default(),
    )
    .unwrap();
    let v: serde_json::Value = c.get("/version").unwrap();
    assert_eq!(v["major"], "1");
    // A second request (pooled or not) works too.
    let _: serde_json::Value = c.get("/version").unwrap();
}

#[test]
fn ca_bundle_with_several_certificates_works() {
    let pki = Pki::new("ca");
    let other = Pki::new("other");
    let server = TestServer::tls(pki.server_config(&["127.0.0.1"], None), version_reply);
    let bundle = format!("{}{}", other.ca_pem, pki.ca_pem);
    let c = Client::new(&tls_config(&server.url, &bundle), ClientOptions::default()).unwrap();
    let _: serde_json::Value = c.get("/version").unwrap();
}

#[test]
fn wrong_ca_is_a_tls_error_naming_the_server() {
    let pki = Pki::new("ca");
    let wrong = Pki::new("wrong");
    let server = TestServer::tls(pki.server_config(&["127.0.0.1"], None), version_reply);
    let c = Client::new(
        &tls_config(&server.url, &wrong.ca_pem),
        ClientOptions::default(),
    )
    .unwrap();
    let e = c.get::<serde_json::Value>("/version").unwrap_err();
    match &e {
        Error::Tls { server: s, detail } => {
            assert_eq!(s, &server.url);
            assert!(detail.contains("not trusted for 127.0.0.1"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&server.url));
}

#[test]
fn tls_server_name_overrides_the_name_verified() {
    let pki = Pki::new("ca");
    let server = TestServer::tls(pki.server_config(&["apiserver.test"], None), version_reply);
    // By address: the certificate does not name 127.0.0.1.
    let c = Client::new(
        &tls_config(&server.url, &pki.ca_pem),
        ClientOptions::default(),
    )
    .unwrap();
    let e = c.get::<serde_json::Value>("/version").unwrap_err();
    assert!(
        matches!(&e, Error::Tls { detail, .. } if detail.contains("not valid for 127.0.0.1")),
        "{e:?}"
    );
    let mut cfg = tls_config(&server.url, &pki.ca_pem);
    cfg.tls.server_name = Some("apiserver.test".into());
    let c = Client::new(&cfg, ClientOptions::default()).unwrap();
    let _: serde_json::Value = c.get("/version").unwrap();
}

#[test]
fn insecure_skip_verify_accepts_an_unknown_ca() {
    let pki = Pki::new("ca");
    let server = TestServer::tls(pki.server_config(&["elsewhere.test"], None), version_reply);
    let mut cfg = config(&server.url);
    cfg.tls.insecure = true;
    let c = Client::new(&cfg, ClientOptions::default()).unwrap();
    let _: serde_json::Value = c.get("/version").unwrap();
}

#[test]
fn client_certificates_with_rsa_and_ecdsa_keys_in_every_encoding_authenticate() {
    let server_pki = Pki::new("server-ca");
    let client_pki = Pki::new("client-ca");
    let server = TestServer::tls(
        server_pki.server_config(&["127.0.0.1"], Some(&client_pki)),
        version_reply,
    );
    let generated = KeyPair::generate().unwrap();
    let cases: Vec<(&str, KeyPair, String)> = vec![
        (
            "RSA PKCS#1",
            KeyPair::from_pem(RSA8).unwrap(),
            RSA1.to_string(),
        ),
        (
            "RSA PKCS#8",
            KeyPair::from_pem(RSA8).unwrap(),
            RSA8.to_string(),
        ),
        (
            "ECDSA SEC1",
            KeyPair::from_pem(EC8).unwrap(),
            EC1.to_string(),
        ),
        (
            "ECDSA PKCS#8",
            KeyPair::from_pem(EC8).unwrap(),
            EC8.to_string(),
        ),
        (
            "ECDSA rcgen",
            KeyPair::from_pem(&generated.serialize_pem()).unwrap(),
            generated.serialize_pem(),
        ),
    ];
    for (what, key, key_pem) in cases {
        let mut cfg = tls_config(&server.url, &server_pki.ca_pem);
        let cert = client_pki.issue(&["paperlb"], &key).into_bytes();
        cfg.tls.client_identity = Some((cert, key_pem.into_bytes()));
        let c = Client::new(&cfg, ClientOptions::default()).unwrap();
        let r: Result<serde_json::Value, _> = c.get("/version");
        assert!(r.is_ok(), "{what}: {r:?}");
    }
    // Without a client certificate the server refuses us.
    let c = Client::new(
        &tls_config(&server.url, &server_pki.ca_pem),
        ClientOptions::default(),
    )
    .unwrap();
    assert!(c.get::<serde_json::Value>("/version").is_err());
}

/// An exec plugin that hands out a client certificate: the client connects with it, and builds a
/// new agent (no pooled connection reused) when the plugin hands out another one.
#[test]
fn a_new_exec_client_certificate_gets_a_new_agent() {
    let server_pki = Pki::new("server-ca");
    let trusted = Pki::new("client-ca");
    let untrusted = Pki::new("other-ca");
    let server = TestServer::tls(
        server_pki.server_config(&["127.0.0.1"], Some(&trusted)),
        version_reply,
    );
    let dir = std::env::temp_dir().join(format!("paperlb-exec-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let answer = dir.join("answer.json");
    // Expired at once, so the plugin runs again before every request.
    let hand_out = |pki: &Pki| {
        let key = KeyPair::generate().unwrap();
        let status = serde_json::json!({
            "clientCertificateData": pki.issue(&["paperlb"], &key),
            "clientKeyData": key.serialize_pem(),
            "expirationTimestamp": "2001-01-01T00:00:00Z",
        });
        let cred = serde_json::json!({"apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential", "status": status});
        std::fs::write(&answer, cred.to_string()).unwrap();
    };
    hand_out(&trusted);
    let mut cfg = tls_config(&server.url, &server_pki.ca_pem);
    cfg.auth = crate::kube::config::AuthSource::Exec(crate::kube::config::ExecConfig {
        api_version: "client.authentication.k8s.io/v1".into(),
        command: "/bin/cat".into(),
        args: vec![answer.display().to_string()],
        ..Default::default()
    });
    let c = Client::new(&cfg, ClientOptions::default()).unwrap();
    let get = || c.get::<serde_json::Value>("/version");
    assert!(get().is_ok(), "{:?}", get());
    hand_out(&untrusted);
    let e = get().unwrap_err();
    assert!(
        matches!(e, Error::Tls { .. } | Error::Connect { .. }),
        "{e:?}"
    );
    hand_out(&trusted);
    assert!(get().is_ok(), "{:?}", get());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A name to verify that is no name is the error before an exec plugin runs (its failure, e.g. an
/// expired login, would hide it).
#[test]
fn a_bad_tls_server_name_is_refused_before_the_exec_plugin_runs() {
    let mut cfg = config("https://127.0.0.1:1");
    cfg.tls.server_name = Some("bad name:1".into());
    cfg.auth = crate::kube::config::AuthSource::Exec(crate::kube::config::ExecConfig {
        api_version: "client.authentication.k8s.io/v1".into(),
        command: "/nonexistent/plugin".into(),
        ..Default::default()
    });
    let Err(e) = Client::new(&cfg, ClientOptions::default()) else {
        panic!("a bad tls-server-name accepted");
    };
    assert!(
        matches!(&e, Error::Tls { detail, .. } if detail.contains("is not a valid DNS name")),
        "{e:?}"
    );
}

#[test]
fn mismatched_client_key_is_refused_before_connecting() {
    let pki = Pki::new("ca");
    let key = KeyPair::generate().unwrap();
    let mut cfg = tls_config("https://127.0.0.1:1", &pki.ca_pem);
    let cert = pki.issue(&["x"], &key).into_bytes();
    cfg.tls.client_identity = Some((cert, EC1.as_bytes().to_vec()));
    let e = Client::new(&cfg, ClientOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::Tls { detail, .. } if detail.contains("do not belong together")),
        "{e:?}"
    );
}

#[test]
fn kubeconfig_fixture_client_certificate_is_accepted_by_the_client() {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kubeconfig/");
    let server_pki = Pki::new("server-ca");
    let server = TestServer::tls(
        server_pki.server_config(&["127.0.0.1"], None),
        version_reply,
    );
    let mut cfg = tls_config(&server.url, &server_pki.ca_pem);
    let read = |f: &str| std::fs::read(format!("{base}{f}")).unwrap();
    cfg.tls.client_identity = Some((read("client.crt"), read("client.key")));
    let c = Client::new(&cfg, ClientOptions::default()).unwrap();
    let _: serde_json::Value = c.get("/version").unwrap();
}

/// A watch's server-side timeout ends before the stall detector would cut it (the apiserver sends
/// no BOOKMARK on a quiet watch), keeping client-go's spread; a long idle limit changes nothing.
#[test]
fn watch_timeouts_end_before_the_idle_limit() {
    let idle = Duration::from_secs(300);
    let (short, long) = (server_timeout(300, idle), server_timeout(600, idle));
    assert!(long < 300 && short < long, "{short}..{long}");
    assert_eq!(server_timeout(450, Duration::from_secs(3600)), 450);
    assert_eq!(
        server_timeout(20, idle),
        20,
        "well before the limit: as drawn"
    );
    assert_eq!(
        server_timeout(300, Duration::from_secs(1)),
        1,
        "never 0 (no timeout)"
    );
}
