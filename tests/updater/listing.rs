//! `GET /api/v1/lb` as drift repair reads it: the owner mark round-trips, a hand-edited file is
//! reported as modified (and a POST mends it), and Go-shaped requests list exactly as before.

use paperlb::updater::api::{LbRequest, Upstream};

use super::client::client;
use super::*;

fn owned(name: &str, port: u16, upstream: u16) -> LbRequest {
    LbRequest {
        backend_name: name.into(),
        lb_port: port,
        lb_protocol: "TCP".into(),
        upstream_servers: vec![Upstream {
            host: "127.0.0.2".into(),
            port: upstream,
            health: Default::default(),
        }],
        owner: Some("paperlb".into()),
        ..LbRequest::default()
    }
}

#[test]
fn owner_mark_round_trips_and_go_requests_list_without_one() {
    let env = Env::start(Options::default());
    let c = client(&env.endpoint(), None, Default::default());
    let b = Backend::tcp("127.0.0.2", "b2");
    let (p1, p2) = (free_port(), free_port());
    c.apply(&owned("ns_ours", p1, b.port)).unwrap();
    let (code, resp) = env.post(&go_body("ns_go", p2, "TCP", &[("127.0.0.2", b.port)]));
    assert_eq!(code, 200, "{resp}");
    assert!(wait_tcp(p1, |s| s == Some("b2")));

    let l = list(&c).unwrap();
    // The answering updater names its version (`paperlb check` shows it).
    assert_eq!(l.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    let names: Vec<(&str, Option<&str>, bool)> = l
        .backends
        .iter()
        .map(|b| {
            (
                b.request.backend_name.as_str(),
                b.request.owner.as_deref(),
                b.modified,
            )
        })
        .collect();
    assert_eq!(
        names,
        [("ns_go", None, false), ("ns_ours", Some("paperlb"), false)]
    );
    // On the wire a Go backend carries neither field, as nginx-lb-updater's clients expect.
    let (code, body) = env.call("GET", "/api/v1/lb", "", &[]);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let go = &v["backends"][0];
    assert_eq!(go["backendName"], "ns_go");
    assert!(
        go.get("owner").is_none() && go.get("modified").is_none(),
        "{go}"
    );
    assert_eq!(v["backends"][1]["owner"], "paperlb");
    // The mark is in the file's header line.
    let text = std::fs::read_to_string(env.conf_file("ns_ours")).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains(r#""owner":"paperlb""#),
        "{text}"
    );
    // A bad owner is refused by name.
    let mut bad = owned("ns_bad", free_port(), b.port);
    bad.owner = Some("two words".into());
    match c.apply(&bad) {
        Err(paperlb::updater::Error::Refused { code: 400, message }) => {
            assert!(message.contains("owner"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hand_edited_backend_is_listed_as_modified_until_reposted() {
    let env = Env::start(Options::default());
    let c = client(&env.endpoint(), None, Default::default());
    let (b2, b3) = (
        Backend::tcp("127.0.0.2", "b2"),
        Backend::tcp("127.0.0.3", "b3"),
    );
    let port = free_port();
    let want = owned("ns_edit", port, b2.port);
    c.apply(&want).unwrap();
    assert!(wait_tcp(port, |s| s == Some("b2")));

    // Someone points the upstream elsewhere by hand; the header still holds the original request.
    let path = env.conf_file("ns_edit");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace(
        &format!("server 127.0.0.2:{};", b2.port),
        &format!("server 127.0.0.3:{};", b3.port),
    );
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();

    let l = list(&c).unwrap();
    assert_eq!(l.backends.len(), 1);
    assert_eq!(l.backends[0].request, want);
    assert!(l.backends[0].modified, "{l:?}");

    // POSTing the wanted request rewrites the file (it is not "unchanged") and clears the mark.
    let (code, resp) = env.post(&serde_json::to_string(&want).unwrap());
    assert_eq!(code, 200, "{resp}");
    assert!(resp.contains("applied"), "{resp}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert!(!list(&c).unwrap().backends[0].modified);
    assert!(wait_tcp(port, |s| s == Some("b2")));
}
