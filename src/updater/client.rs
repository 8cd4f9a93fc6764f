//! The controller's side of the updater API: `UpdaterClient` talks to any nginx-lb-updater
//! compatible server (ours or the Go one) over plain HTTP or HTTPS.
//!
//! Owns: the bearer token and TLS trust of one endpoint ([`ClientAuth`]), timeouts, bounded reading
//! of answers (64 KiB, 32 MiB for a list), and turning answers into `updater::Error` (`{"err"}`
//! surfaced, HTML or garbage summarised in one line; 401/403 are `Unauthorized`, a GET answered
//! 404/405 is `Unsupported`). Must not: retry (the controller's work queue decides when to try
//! again), or put the token in an error or a log line (nothing here that holds it has `Debug`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use ureq::Agent;

use super::Error;
use super::api::{DeleteRequest, ErrBody, LbRequest, ListResponse, ListedBackend};
use crate::kube::tls;
use crate::kube::transport::{self, TlsConnector};

/// Largest answer to a POST or DELETE read from an updater.
pub const MAX_RESPONSE: u64 = 64 * 1024;
/// Largest `GET /api/v1/lb` answer: about 300 bytes per backend with a few upstreams, so room for
/// tens of thousands of backends while a hostile or broken peer still cannot exhaust memory.
pub const MAX_LIST_RESPONSE: u64 = 32 * 1024 * 1024;

/// Where the system's CA bundle lives on common distributions (Debian/Ubuntu/Alpine, Fedora/RHEL,
/// openSUSE, older RHEL, Alpine's alternative): the first readable one is used.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Timeouts of one call. `Default` allows for a group-committed reload behind a long batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// Whole call: send, wait for the reload that covers the request, read the answer.
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(60),
        }
    }
}

/// How an `https://` endpoint's certificate is verified. Ignored for `http://` endpoints, except
/// that a `CaPem` must still parse (a garbage CA is an error wherever it is given).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientTls {
    /// The system's CA bundle (the first of [`SYSTEM_CA_BUNDLES`] that exists).
    #[default]
    SystemRoots,
    /// Only the CA certificate(s) of this PEM bundle.
    CaPem(Vec<u8>),
    /// Any certificate is accepted (handshake signatures are still checked); warns when a client is
    /// made with it.
    InsecureSkipVerify,
}

/// Credentials and trust for one updater. `Default`: no token, system roots. No `Debug`: it holds
/// the token (nor has `UpdaterClient`, which keeps it).
/// ```compile_fail
/// fn show(a: &paperlb::updater::client::ClientAuth) -> String { format!("{a:?}") }
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ClientAuth {
    /// Sent as `Authorization: Bearer <token>` on every call.
    pub token: Option<String>,
    pub tls: ClientTls,
}

/// A client for one updater endpoint (one LoadBalancerConfig's resolved `httpUpdaterURL`).
/// ```compile_fail
/// fn show(c: &paperlb::updater::client::UpdaterClient) -> String { format!("{c:?}") }
/// ```
#[derive(Clone)]
pub struct UpdaterClient {
    url: String,
    /// `ClientAuth::token`; its `tls` lives on in the agent's TLS configuration.
    token: Option<String>,
    agent: Agent,
}

impl UpdaterClient {
    /// `endpoint` is the full URL every call goes to (`http://h:3000/api/v1/lb`), as
    /// `model::url::updater_endpoint` resolves an `httpUpdaterURL`; it is used as given. Errors
    /// name the problem, never the token or the CA's bytes.
    pub fn new(
        endpoint: &str,
        auth: ClientAuth,
        timeouts: Timeouts,
    ) -> Result<UpdaterClient, Error> {
        let url = endpoint.to_string();
        let ClientAuth { token, tls } = auth;
        if let Some(t) = &token {
            check_token(t).map_err(|e| Error::Config(e.into()))?;
        }
        let https = url
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"));
        let tls = client_tls(&url, &tls, https)?;
        let config = Agent::config_builder()
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.call));
        // The controller runs up to 12 calls per updater at once (controller::batch): keep
        // that many connections warm (ureq keeps 3 per host by default).
        let agent = transport::agent(config, tls, 16);
        Ok(UpdaterClient { url, token, agent })
    }

    /// `POST`: Ok once the updater has applied (and reloaded) the request. Sent as given: the
    /// Go updater takes `lbProtocol` in Kubernetes case only, as `updater_request` writes it.
    pub fn apply(&self, req: &LbRequest) -> Result<(), Error> {
        self.send(self.agent.post(&self.url), req)
    }

    /// `DELETE`: a backend that is already gone (404) counts as deleted.
    pub fn delete(&self, backend_name: &str) -> Result<(), Error> {
        let backend_name = backend_name.to_string();
        let delete = self.agent.delete(&self.url).force_send_body();
        match self.send(delete, &DeleteRequest { backend_name }) {
            Err(Error::Refused { code: 404, .. }) => Ok(()),
            done => done,
        }
    }

    /// A JSON body with the token; Ok once the updater answered a success.
    fn send(
        &self,
        r: ureq::RequestBuilder<ureq::typestate::WithBody>,
        body: &impl serde::Serialize,
    ) -> Result<(), Error> {
        let body = serde_json::to_string(body)
            .map_err(|e| Error::Config(format!("cannot encode the request: {e}")))?;
        let resp = self
            .authorized(r)
            .content_type("application/json")
            .send(body.as_bytes());
        let mut resp = self.answer(resp, false)?;
        text_of(&mut resp, MAX_RESPONSE).map_err(|e| self.transport(e))?;
        Ok(())
    }

    fn authorized<B>(&self, r: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => r.header("Authorization", format!("Bearer {t}")),
            None => r,
        }
    }

    /// `GET`, read as it arrives: each backend is handed to `each` as soon as it is decoded, and
    /// dropped after; the answer's other fields come back (with `backends` empty). What a drift
    /// check holds is then one backend, not the answer: its text, a host's 1,000 backends with 100
    /// upstreams each, and (until this) a `Value` tree of it were some 20 MiB and 70 MiB at peak,
    /// which the controller's heap kept as RSS (bench/RESULTS.md, "Memory at 1k"). On an error the
    /// backends already handed over came from an answer that could not be read in full.
    pub fn list_each(&self, mut each: impl FnMut(ListedBackend)) -> Result<ListResponse, Error> {
        let get = self.authorized(self.agent.get(&self.url)).call();
        let mut resp = self.answer(get, true)?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_LIST_RESPONSE)
            .reader();
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(body));
        let decoded = serde::Deserializer::deserialize_map(&mut de, Listing { each: &mut each })
            .and_then(|listed| de.end().map(|()| listed));
        decoded.map_err(|e| self.undecodable(e))
    }

    /// A 2xx answer that did not decode (`Decode`), or whose reading broke under the decoder
    /// (`Transport`).
    fn undecodable(&self, e: serde_json::Error) -> Error {
        let (url, detail) = (self.url.clone(), e.to_string());
        if e.is_io() {
            Error::Transport { url, detail }
        } else {
            Error::Decode { url, detail }
        }
    }

    /// `GET /healthz` beside the API (`…/api/v1/lb` → `…/healthz`): Ok while the host answers
    /// below 500 (the Go updater's 404 included: it is up); its own 503 (nginx broken) or no answer
    /// is an Err naming why.
    pub fn probe(&self) -> Result<(), Error> {
        let base = self
            .url
            .strip_suffix(super::api::API_PATH)
            .unwrap_or(&self.url);
        match self.answer(self.agent.get(format!("{base}/healthz")).call(), false) {
            Err(Error::Refused { code, .. } | Error::Unauthorized { code, .. }) if code < 500 => {
                Ok(())
            }
            // Read to the end, so the connection is kept for the next probe.
            r => r.map(|mut resp| drop(text_of(&mut resp, MAX_RESPONSE))),
        }
    }

    /// The response when its status is a success; else the error it means, with its body
    /// summarised (bounded). A `list` answered 404 or 405 is `Unsupported`.
    fn answer(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        list: bool,
    ) -> Result<ureq::http::Response<ureq::Body>, Error> {
        let mut resp = resp.map_err(|e| self.transport(e))?;
        let code = resp.status().as_u16();
        if (200..300).contains(&code) {
            return Ok(resp);
        }
        let message = match text_of(&mut resp, MAX_RESPONSE) {
            Ok(t) => summarise(&t),
            Err(ureq::Error::BodyExceedsLimit(n)) => format!("answer larger than {n} bytes"),
            Err(e) => format!("unreadable answer: {}", self.transport(e)),
        };
        Err(match (code, list) {
            (401 | 403, _) => Error::Unauthorized { code, message },
            (404 | 405, true) => Error::Unsupported { code, message },
            _ => Error::Refused { code, message },
        })
    }

    fn transport(&self, e: ureq::Error) -> Error {
        let url = self.url.clone();
        if let Some(detail) = crate::kube::transport::tls_refusal(&e) {
            let detail = detail.to_string();
            return Error::Tls { url, detail };
        }
        let detail = match e {
            ureq::Error::Timeout(what) => format!("timed out ({what})"),
            ureq::Error::BodyExceedsLimit(n) => format!("answer larger than {n} bytes"),
            // TLS failures come phrased for the user already (kube::tls::describe_handshake_error).
            ureq::Error::Other(e) => e.to_string(),
            other => other.to_string(),
        };
        Error::Transport { url, detail }
    }
}

/// `GET`'s answer, decoded field by field (`visit_map`), and its `backends` one element at a time
/// (`visit_seq`, reached through the seed): see `list_each`.
struct Listing<'f, F> {
    each: &'f mut F,
}

impl<'de, F: FnMut(ListedBackend)> serde::de::Visitor<'de> for Listing<'_, F> {
    type Value = ListResponse;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GET /api/v1/lb answer and its list of backends")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ListResponse, A::Error> {
        let mut listed = ListResponse::default();
        let mut backends = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "backends" => {
                    map.next_value_seed(Listing { each: self.each })?;
                    backends = true;
                }
                "unreadable" => listed.unreadable = map.next_value()?,
                "version" => listed.version = map.next_value()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        if !backends {
            return Err(serde::de::Error::missing_field("backends"));
        }
        Ok(listed)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ListResponse, A::Error> {
        while let Some(b) = seq.next_element::<ListedBackend>()? {
            (self.each)(b);
        }
        Ok(ListResponse::default())
    }
}

/// The `backends` array.
impl<'de, F: FnMut(ListedBackend)> serde::de::DeserializeSeed<'de> for Listing<'_, F> {
    type Value = ListResponse;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<ListResponse, D::Error> {
        d.deserialize_seq(self)
    }
}

/// A token must fit in a header line: visible ASCII (RFC 6750's b64token and more), not empty.
/// The reason it cannot be sent (empty; a space, a line break, a non-ASCII character) never quotes
/// the token.
pub fn check_token(t: &str) -> Result<(), &'static str> {
    if t.is_empty() {
        Err("the bearer token is empty")
    } else if !t.bytes().all(|b| b.is_ascii_graphic()) {
        Err(
            "the bearer token holds characters an HTTP header cannot carry \
             (only visible ASCII, no spaces or line breaks)",
        )
    } else {
        Ok(())
    }
}

/// The rustls side of an `https` endpoint; `None` for `http` (a `CaPem` is still checked).
fn client_tls(url: &str, t: &ClientTls, https: bool) -> Result<Option<TlsConnector>, Error> {
    let provider = tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS versions: {e}")))?;
    let builder = match t {
        ClientTls::CaPem(pem) => {
            let roots = tls::root_store(pem).map_err(|e| Error::Config(e.to_string()))?;
            if !https {
                return Ok(None);
            }
            builder.with_root_certificates(roots)
        }
        _ if !https => return Ok(None),
        ClientTls::SystemRoots => builder.with_root_certificates(system_roots()?),
        ClientTls::InsecureSkipVerify => {
            log::warn!(
                "insecureSkipVerify: the certificate of updater {url} is not verified; anyone on \
                 the path can impersonate it and read the bearer token"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(tls::AnyServerCert::new(&provider)))
        }
    };
    // The URL's host, as the API server's is taken without tls-server-name.
    let name =
        tls::server_name(url, &Default::default()).map_err(|e| Error::Config(e.to_string()))?;
    Ok(Some(TlsConnector {
        config: Arc::new(builder.with_no_client_auth()),
        name,
    }))
}

/// The system CA bundle, read and parsed once per process (retried while it cannot be read).
fn system_roots() -> Result<rustls::RootCertStore, Error> {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    if let Some(r) = ROOTS.get() {
        return Ok(r.clone());
    }
    for path in SYSTEM_CA_BUNDLES {
        let Ok(pem) = std::fs::read(path) else {
            continue;
        };
        let roots = tls::root_store(&pem).map_err(|e| Error::Config(format!("{path}: {e}")))?;
        return Ok(ROOTS.get_or_init(|| roots).clone());
    }
    Err(Error::Config(format!(
        "no system CA bundle found (looked for {}); give the updater's CA instead",
        SYSTEM_CA_BUNDLES.join(", ")
    )))
}

/// The answer's body as text, at most `limit` bytes.
fn text_of(resp: &mut ureq::http::Response<ureq::Body>, limit: u64) -> Result<String, ureq::Error> {
    let body = resp.body_mut().with_config().limit(limit);
    body.lossy_utf8(true).read_to_string()
}

/// `{"err": m}` gives `m`; anything else becomes one line of at most 200 characters, tags stripped
/// so an HTML error page from a proxy reads as its text.
fn summarise(body: &str) -> String {
    if let Ok(e) = serde_json::from_str::<ErrBody>(body) {
        return e.err;
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if in_tag => {}
            c if c.is_control() || c.is_whitespace() => text.push(' '),
            c => text.push(c),
        }
    }
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.is_empty() {
        true => "(empty answer)".into(),
        false => super::validate::clip(&one_line, 200),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tokens_and_cas_are_refused_without_echoing_them() {
        let t = Timeouts::default();
        for token in ["", "a b", "tok\r\nX: y", "tökén"] {
            let auth = ClientAuth {
                token: Some(token.into()),
                ..ClientAuth::default()
            };
            let e = UpdaterClient::new("http://127.0.0.1:1", auth, t)
                .err()
                .unwrap();
            assert!(matches!(e, Error::Config(_)), "{e}");
            if !token.is_empty() {
                assert!(!e.to_string().contains(token), "{e}");
            }
        }
        let auth = ClientAuth {
            token: None,
            tls: ClientTls::CaPem(b"SECRETGARBAGE".to_vec()),
        };
        for url in ["http://127.0.0.1:1", "https://127.0.0.1:1"] {
            let e = UpdaterClient::new(url, auth.clone(), t).err().unwrap();
            assert!(e.to_string().contains("certificate authority"), "{e}");
            assert!(!e.to_string().contains("SECRETGARBAGE"), "{e}");
        }
    }

    #[test]
    fn an_https_host_that_is_no_name_to_verify_is_a_config_error_naming_it() {
        let auth = ClientAuth {
            token: None,
            tls: ClientTls::InsecureSkipVerify,
        };
        let e = UpdaterClient::new("https://bad host:1/api/v1/lb", auth, Timeouts::default());
        let e = e.err().unwrap();
        assert!(matches!(e, Error::Config(_)), "{e}");
        assert!(
            e.to_string()
                .contains("\"bad host\" is not a valid DNS name or IP address to verify against"),
            "{e}"
        );
    }

    #[test]
    fn a_token_that_cannot_be_sent_is_a_typed_fault_with_the_same_words() {
        let unsendable = "the bearer token holds characters an HTTP header cannot carry \
                          (only visible ASCII, no spaces or line breaks)";
        let cases = [
            ("", "the bearer token is empty"),
            ("a b", unsendable),
            ("tok\r\nX: y", unsendable),
            ("tökén", unsendable),
        ];
        for (token, message) in cases {
            assert_eq!(check_token(token), Err(message), "{token:?}");
            let auth = ClientAuth {
                token: Some(token.into()),
                ..ClientAuth::default()
            };
            let e = UpdaterClient::new("http://127.0.0.1:1", auth, Timeouts::default());
            assert_eq!(
                e.err().unwrap().to_string(),
                format!("updater client: {message}")
            );
        }
        assert_eq!(check_token("Zm9v.YmFy~+/="), Ok(()));
    }

    #[test]
    fn list_hands_over_backends_as_read_and_refuses_an_unreadable_answer() {
        use crate::http::{Limits, Request, Response, Server};
        let good = r#"{"version":"v1","backends":[
            {"backendName":"a","lbPort":8100,"lbProtocol":"TCP","upstreamServers":[{"host":"h","port":1,"healthy":false}]},
            {"backendName":"b","lbPort":8101,"lbProtocol":"UDP","upstreamServers":[],"modified":true}],
            "future":{"x":[1]},"unreadable":[{"file":"f.conf","err":"no header"}]}"#;
        let answers: Vec<(u16, String)> = vec![
            (200, good.into()),
            (200, good[..good.len() / 2].into()),
            (200, r#"{"unreadable":[]}"#.into()),
            (200, format!("{good} trailing")),
            (404, "no such path".into()),
        ];
        let at = std::sync::atomic::AtomicUsize::new(0);
        let s = Server::bind(
            "127.0.0.1:0",
            Limits::default(),
            None,
            move |_: &Request| {
                let (code, body) = &answers[at.fetch_add(1, std::sync::atomic::Ordering::SeqCst)];
                Response::new(*code, "application/json", body.as_bytes())
            },
        )
        .unwrap();
        let url = format!("http://{}/api/v1/lb", s.local_addr());
        let c = UpdaterClient::new(&url, ClientAuth::default(), Timeouts::default()).unwrap();
        let mut seen = Vec::new();
        let rest = c
            .list_each(|b| seen.push((b.request.backend_name, b.modified)))
            .unwrap();
        assert_eq!(seen, [("a".to_string(), false), ("b".to_string(), true)]);
        assert_eq!(
            (rest.version.as_deref(), rest.unreadable.len()),
            (Some("v1"), 1)
        );
        assert!(rest.backends.is_empty());
        for what in ["truncated", "no backends", "trailing garbage"] {
            let e = c.list_each(drop).unwrap_err();
            assert!(matches!(e, Error::Decode { .. }), "{what}: {e}");
        }
        assert!(c.list_each(drop).unwrap_err().is_unsupported());
    }

    #[test]
    fn summarises_err_bodies_html_and_garbage_in_one_line() {
        assert_eq!(summarise(r#"{"err":"lbPort taken"}"#), "lbPort taken");
        assert_eq!(
            summarise(
                "<html><head><title>502 Bad Gateway</title></head>\n<body><h1>502 Bad Gateway</h1></body></html>"
            ),
            "502 Bad Gateway 502 Bad Gateway"
        );
        assert_eq!(summarise(""), "(empty answer)");
        let long = summarise(&"x\n".repeat(1000));
        assert!(!long.contains('\n') && long.chars().count() <= 201);
    }
}
