//! `UpdaterClient` against the real updater and against hostile fakes.

use std::time::Duration;

use paperlb::model::url::updater_endpoint;
use paperlb::updater::Error;
use paperlb::updater::api::{LbRequest, Upstream};
use paperlb::updater::client::{ClientAuth, MAX_LIST_RESPONSE, Timeouts, UpdaterClient};

use super::*;

fn request(name: &str, port: u16) -> LbRequest {
    LbRequest {
        backend_name: name.into(),
        lb_port: port,
        lb_protocol: "tcp".into(),
        upstream_servers: vec![Upstream {
            host: "127.0.0.2".into(),
            port: 30080,
            health: Default::default(),
        }],
        proxy_timeout_seconds: 0,
        proxy_connect_timeout_seconds: 0,
        traffic: Default::default(),
        owner: None,
    }
}

/// A client with this token (or none), trusting the system roots.
pub fn client(url: &str, token: Option<&str>, timeouts: Timeouts) -> UpdaterClient {
    let auth = ClientAuth {
        token: token.map(str::to_string),
        ..ClientAuth::default()
    };
    UpdaterClient::new(url, auth, timeouts).unwrap()
}

#[test]
fn client_applies_lists_and_deletes_against_the_real_updater() {
    let env = Env::start(Options {
        token: Some("tok"),
        ..Options::default()
    });
    // The endpoint as the controller resolves it from a config's bare `http://host:port/`.
    let endpoint = updater_endpoint(&format!("{}/", env.base_url())).unwrap();
    let c = client(&endpoint, Some("tok"), Timeouts::default());
    let port = free_port();
    c.apply(&request("ns_c", port)).unwrap();
    c.apply(&request("ns_c", port)).unwrap();
    let l = list(&c).unwrap();
    assert_eq!(l.backends.len(), 1);
    assert_eq!(l.backends[0].request.lb_protocol, "TCP");
    assert!(!l.backends[0].modified);
    c.delete("ns_c").unwrap();
    c.delete("ns_c").unwrap(); // already gone: "absent"
    assert!(list(&c).unwrap().backends.is_empty());
}

#[test]
fn client_surfaces_err_messages_and_auth_failures() {
    let env = Env::start(Options {
        token: Some("tok"),
        ..Options::default()
    });
    let c = client(&env.endpoint(), Some("tok"), Timeouts::default());
    let port = free_port();
    c.apply(&request("ns_a", port)).unwrap();
    match c.apply(&request("ns_b", port)) {
        Err(Error::Refused { code: 409, message }) => {
            assert!(message.contains("ns_a"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    match c.apply(&request("../x", port)) {
        Err(Error::Refused { code: 400, message }) => {
            assert!(message.contains("backendName"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let anon = client(&env.endpoint(), None, Timeouts::default());
    match anon.delete("ns_a") {
        Err(e @ Error::Unauthorized { code: 401, .. }) => assert!(e.is_unauthorized()),
        other => panic!("{other:?}"),
    }
}

/// A fake updater that answers one connection with `response` after `delay`, then stops.
fn hostile(response: Vec<u8>, delay: Duration) -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    let t = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < 1 && Instant::now() < end {
            let Ok((mut c, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            served += 1;
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            std::thread::sleep(delay);
            let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = c.write_all(&response);
        }
    });
    (url, t)
}

fn http(status: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

#[test]
fn client_summarises_html_answers_in_one_line() {
    let page = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>\n";
    let (url, t) = hostile(http("502 Bad Gateway", "text/html", page), Duration::ZERO);
    let c = client(&url, None, Timeouts::default());
    match c.apply(&request("ns_x", 8000)) {
        Err(Error::Refused { code: 502, message }) => {
            assert_eq!(message, "502 Bad Gateway 502 Bad Gateway");
        }
        other => panic!("{other:?}"),
    }
    drop(c);
    let _ = t.join();
}

#[test]
fn client_bounds_huge_answers() {
    // A list may be large (1 MiB is read, and garbage is a decode error), but not beyond the cap.
    let (url, t) = hostile(
        http("200 OK", "application/json", &vec![b'x'; 1024 * 1024]),
        Duration::ZERO,
    );
    let c = client(&url, None, Timeouts::default());
    assert!(matches!(list(&c), Err(Error::Decode { .. })));
    let _ = t.join();
    let huge = vec![b' '; MAX_LIST_RESPONSE as usize + 1024];
    let (url, t) = hostile(http("200 OK", "application/json", &huge), Duration::ZERO);
    let c = client(&url, None, Timeouts::default());
    match list(&c) {
        Err(Error::Transport { detail, .. }) => assert!(detail.contains("larger than"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let _ = t.join();
    // A POST answer keeps the small cap.
    let (url, t) = hostile(
        http("200 OK", "application/json", &vec![b' '; 100 * 1024]),
        Duration::ZERO,
    );
    let c = client(&url, None, Timeouts::default());
    match c.apply(&request("ns_x", 8000)) {
        Err(Error::Transport { detail, .. }) => assert!(detail.contains("larger than"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let _ = t.join();
    let (url, t) = hostile(
        http("500 Oops", "text/plain", &vec![b'y'; 1024 * 1024]),
        Duration::ZERO,
    );
    let c = client(&url, None, Timeouts::default());
    match c.apply(&request("ns_x", 8000)) {
        Err(Error::Refused { code: 500, message }) => {
            assert!(message.contains("larger than"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let _ = t.join();
}

#[test]
fn client_times_out_on_a_silent_updater() {
    let (url, t) = hostile(Vec::new(), Duration::from_secs(3));
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        call: Duration::from_millis(500),
    };
    let c = client(&url, None, timeouts);
    match c.apply(&request("ns_x", 8000)) {
        Err(Error::Transport { detail, .. }) => assert!(detail.contains("timed out"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let _ = t.join();
}

#[test]
fn client_tells_refused_credentials_and_a_missing_list_apart() {
    type Check = fn(&Error) -> bool;
    let cases: [(&str, bool, Check); 5] = [
        ("401 Unauthorized", true, |e| e.is_unauthorized()),
        ("403 Forbidden", true, |e| e.is_unauthorized()),
        ("404 Not Found", true, |e| e.is_unsupported()),
        ("405 Method Not Allowed", true, |e| e.is_unsupported()),
        // A POST answered 404 is a refusal, not "no GET".
        ("404 Not Found", false, |e| {
            matches!(e, Error::Refused { code: 404, .. })
        }),
    ];
    for (status, get, check) in cases {
        let (url, t) = hostile(
            http(status, "application/json", br#"{"err":"go away"}"#),
            Duration::ZERO,
        );
        let c = client(&url, Some("tok"), Timeouts::default());
        let e = if get {
            list(&c).unwrap_err()
        } else {
            c.apply(&request("ns_x", 8000)).unwrap_err()
        };
        assert!(check(&e), "{status}: {e:?}");
        assert!(e.to_string().contains("go away") || !get, "{e}");
        let _ = t.join();
    }
}
