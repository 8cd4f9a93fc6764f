//! Securing the LB host: the bearer token (401s with JSON, rotation of the token file) and HTTPS
//! (`--tls-cert/--tls-key`, verified by each `ClientTls` choice, reloaded when the files change).
//! Certificates are throwaway ones made here with rcgen (a dev-dependency).

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use paperlb::updater::Error;
use paperlb::updater::client::{ClientAuth, ClientTls, Timeouts, UpdaterClient};

use super::*;

/// A throwaway CA.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for the updater on 127.0.0.1.
    fn server_pair(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn client_with(url: &str, token: Option<&str>, tls: ClientTls) -> UpdaterClient {
    let auth = ClientAuth {
        token: token.map(str::to_string),
        tls,
    };
    UpdaterClient::new(url, auth, Timeouts::default()).unwrap()
}

/// Polls `ok` up to `PATIENCE`; true as soon as it holds.
fn eventually(mut ok: impl FnMut() -> bool) -> bool {
    wait_until(PATIENCE, &mut ok)
}

#[test]
fn missing_or_wrong_token_is_a_401_with_a_json_body_on_every_api_method() {
    let env = Env::start(Options {
        token: Some("right-token"),
        ..Options::default()
    });
    let body = go_body("ns_t", free_port(), "TCP", &[("127.0.0.2", 30080)]);
    let del = r#"{"backendName":"ns_t"}"#;
    for (method, payload) in [("POST", body.as_str()), ("DELETE", del), ("GET", "")] {
        for headers in [
            vec![],
            vec!["Authorization: Bearer wrong-token".to_string()],
            vec!["Authorization: Bearer right-token-and-more".to_string()],
            vec!["Authorization: right-token".to_string()],
        ] {
            let (code, resp) = raw(
                env.addr(),
                method,
                "/api/v1/lb",
                payload.as_bytes(),
                &headers,
            );
            assert_eq!(code, 401, "{method} {headers:?}: {resp}");
            let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
            assert!(
                v["err"].as_str().is_some_and(|e| !e.contains("token-")),
                "{v}"
            );
        }
    }
    // The scheme is case-insensitive (RFC 7235).
    let h = ["authorization: bearer right-token".to_string()];
    assert_eq!(raw(env.addr(), "GET", "/api/v1/lb", b"", &h).0, 200);
}

#[test]
fn a_rotated_token_file_takes_effect_and_the_old_token_is_refused() {
    let env = Env::start(Options {
        token: Some("old-token"),
        ..Options::default()
    });
    let path = env.token_file.clone().unwrap();
    let old = client_with(&env.endpoint(), Some("old-token"), ClientTls::SystemRoots);
    let new = client_with(&env.endpoint(), Some("new-token"), ClientTls::SystemRoots);
    list(&old).unwrap();
    assert!(list(&new).unwrap_err().is_unauthorized());

    // Rotation by rename (a new inode), as kubelet's projected files and most tools do it.
    std::fs::write(path.with_extension("tmp"), "new-token\n").unwrap();
    std::fs::rename(path.with_extension("tmp"), &path).unwrap();
    assert!(
        eventually(|| list(&new).is_ok()),
        "the new token never worked"
    );
    assert!(list(&old).unwrap_err().is_unauthorized());

    // Rotation in place (same inode, same size).
    std::fs::write(&path, "nex-token\n").unwrap();
    let next = client_with(&env.endpoint(), Some("nex-token"), ClientTls::SystemRoots);
    assert!(
        eventually(|| list(&next).is_ok()),
        "the in-place token never worked"
    );
    assert!(list(&new).unwrap_err().is_unauthorized());

    // A broken rotation (empty file) keeps the last good token.
    std::fs::write(&path, "").unwrap();
    for _ in 0..3 {
        list(&next).unwrap();
        std::thread::sleep(paperlb::updater::auth::RECHECK / 2);
    }
}

#[test]
fn tls_is_verified_against_the_given_ca_and_refused_with_another() {
    let ca = Ca::new("updater-ca");
    let env = Env::start(Options {
        token: Some("tls-token"),
        tls: Some(ca.server_pair()),
        ..Options::default()
    });
    let url = env.endpoint();
    assert!(url.starts_with("https://"));
    let port = free_port();
    let b = Backend::tcp("127.0.0.2", "b2");
    let body = go_body("ns_tls", port, "TCP", &[("127.0.0.2", b.port)]);
    let req: paperlb::updater::api::LbRequest = serde_json::from_str(&body).unwrap();

    // The right CA: the whole API works, and traffic flows through what it configured.
    let good = client_with(
        &url,
        Some("tls-token"),
        ClientTls::CaPem(ca.pem.clone().into()),
    );
    good.apply(&req).unwrap();
    assert_eq!(list(&good).unwrap().backends.len(), 1);
    assert!(wait_tcp(port, |s| s == Some("b2")));

    // Any other CA, or the system roots, refuse the certificate; nothing is sent.
    let other = Ca::new("someone-else");
    for tls in [
        ClientTls::CaPem(other.pem.clone().into()),
        ClientTls::SystemRoots,
    ] {
        let c = client_with(&url, Some("tls-token"), tls.clone());
        match list(&c) {
            Err(Error::Tls { detail, .. }) => {
                assert!(detail.contains("certificate"), "{tls:?}: {detail}")
            }
            other => panic!("{tls:?}: {other:?}"),
        }
    }
    // insecureSkipVerify talks to it anyway (and warns); the token is still required.
    let insecure = client_with(&url, Some("tls-token"), ClientTls::InsecureSkipVerify);
    assert_eq!(list(&insecure).unwrap().backends.len(), 1);
    let no_token = client_with(&url, None, ClientTls::InsecureSkipVerify);
    assert!(list(&no_token).unwrap_err().is_unauthorized());
    // Plain HTTP to the HTTPS port gets no answer, and certainly no configuration.
    let plain = client_with(
        &url.replacen("https", "http", 1),
        Some("tls-token"),
        ClientTls::SystemRoots,
    );
    assert!(list(&plain).unwrap_err().is_transport());
    good.delete("ns_tls").unwrap();
}

#[test]
fn a_new_certificate_is_picked_up_and_a_broken_one_keeps_the_old() {
    let (ca1, ca2, ca3) = (Ca::new("ca-1"), Ca::new("ca-2"), Ca::new("ca-3"));
    let env = Env::start(Options {
        tls: Some(ca1.server_pair()),
        ..Options::default()
    });
    let files = env.tls.clone().unwrap();
    let url = env.endpoint();
    let by = |ca: &Ca| client_with(&url, None, ClientTls::CaPem(ca.pem.clone().into()));
    list(&by(&ca1)).unwrap();
    assert!(list(&by(&ca2)).is_err());

    // Rotate to a pair from another CA: key first, then the certificate (a moment of mismatch).
    let (cert2, key2) = ca2.server_pair();
    std::fs::write(&files.key, &key2).unwrap();
    std::fs::write(&files.cert, &cert2).unwrap();
    assert!(
        eventually(|| list(&by(&ca2)).is_ok()),
        "the new certificate was never served"
    );
    assert!(list(&by(&ca1)).is_err());

    // A broken certificate file: the previous pair keeps serving through several rechecks.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    for _ in 0..3 {
        list(&by(&ca2)).unwrap();
        std::thread::sleep(paperlb::updater::auth::RECHECK);
    }
    // A pair whose key belongs to another certificate is refused the same way.
    let (cert3, _) = ca3.server_pair();
    std::fs::write(&files.cert, &cert3).unwrap();
    for _ in 0..2 {
        list(&by(&ca2)).unwrap();
        std::thread::sleep(paperlb::updater::auth::RECHECK);
    }
    // Fixing it is picked up again.
    let (cert3, key3) = ca3.server_pair();
    std::fs::write(&files.key, &key3).unwrap();
    std::fs::write(&files.cert, &cert3).unwrap();
    assert!(eventually(|| list(&by(&ca3)).is_ok()));
}

/// Starts the binary with these extra flags; returns it and its address once it accepts.
fn run_binary(nginx: &Nginx, extra: &[&std::ffi::OsStr]) -> (std::process::Child, SocketAddr) {
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_paperlb"))
        .args(["nginx-updater", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--streams-dir")
        .arg(&nginx.streams)
        .arg("--nginx-conf")
        .arg(&nginx.conf)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    (child, addr)
}

/// Kills the child and returns what it logged.
fn stop(mut child: std::process::Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn the_binary_warns_when_open_and_serves_https_with_a_token() {
    let nginx = Nginx::start();
    let (child, addr) = run_binary(&nginx, &[]);
    let up = wait_until(PATIENCE, || TcpStream::connect(addr).is_ok());
    let log = stop(child);
    assert!(up, "{log}");
    assert!(
        log.contains("no --token-file") && log.contains("OPEN"),
        "{log}"
    );

    let ca = Ca::new("binary-ca");
    let (cert, key) = ca.server_pair();
    let (cert_path, key_path, token_path) = (
        nginx.dir.join("bin.crt"),
        nginx.dir.join("bin.key"),
        nginx.dir.join("bin.token"),
    );
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    std::fs::write(&token_path, "binary-secret-token\n").unwrap();
    let (child, addr) = run_binary(
        &nginx,
        &[
            "--token-file".as_ref(),
            token_path.as_os_str(),
            "--tls-cert".as_ref(),
            cert_path.as_os_str(),
            "--tls-key".as_ref(),
            key_path.as_os_str(),
        ],
    );
    let url = format!("https://{addr}/api/v1/lb");
    let good = client_with(
        &url,
        Some("binary-secret-token"),
        ClientTls::CaPem(ca.pem.clone().into()),
    );
    let served = wait_until(PATIENCE, || list(&good).is_ok());
    let wrong = client_with(&url, Some("nope"), ClientTls::CaPem(ca.pem.clone().into()));
    let refused = list(&wrong).map_err(|e| e.is_unauthorized());
    let log = stop(child);
    assert!(served, "{log}");
    assert_eq!(refused, Err(true), "{log}");
    assert!(
        !log.contains("OPEN") && !log.contains("binary-secret-token"),
        "{log}"
    );
}
