//! The controller's side of the updater API: `UpdaterClient` talks to any nginx-lb-updater
//! compatible server (ours or the Go one) over plain HTTP or HTTPS.
//!
//! Owns: timeouts, bounded reading of answers (64 KiB), and turning answers into `updater::Error`
//! (`{"err"}` surfaced, HTML or garbage summarised in one line). Must not: retry (the controller's
//! work queue decides when to try again), or put the token in an error or a log line.

use std::sync::Arc;
use std::time::Duration;

use ureq::Agent;
use ureq::tls::{TlsConfig, TlsProvider};

use super::Error;
use super::api::{DeleteRequest, ErrBody, LbRequest, ListResponse};

/// Largest answer read from an updater.
pub const MAX_RESPONSE: u64 = 64 * 1024;

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

/// A client for one updater endpoint (one LoadBalancerConfig's `httpUpdaterURL`, resolved).
#[derive(Debug, Clone)]
pub struct UpdaterClient {
    endpoint: String,
    token: Option<String>,
    agent: Agent,
}

impl UpdaterClient {
    /// `endpoint` is the full URL every call goes to (`http://host:3000/api/v1/lb`), as
    /// `model::url::updater_endpoint` resolves an `httpUpdaterURL`; it is used as given.
    pub fn new(endpoint: &str, token: Option<String>, timeouts: Timeouts) -> UpdaterClient {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.call))
            .max_response_header_size(16 * 1024)
            // ureq's 128 KiB buffers, zero-filled, would cost 256 KiB per pooled connection.
            .input_buffer_size(16 * 1024)
            .output_buffer_size(16 * 1024)
            .tls_config(tls)
            .build()
            .into();
        UpdaterClient {
            endpoint: endpoint.to_string(),
            token,
            agent,
        }
    }

    fn url(&self) -> String {
        self.endpoint.clone()
    }

    /// `POST` to the endpoint (`/api/v1/lb`): Ok once the updater has applied (and reloaded) the request.
    pub fn apply(&self, req: &LbRequest) -> Result<(), Error> {
        // Kubernetes case, as the Go controller sends it: the Go updater accepts only that.
        let mut req = req.clone();
        req.lb_protocol = req.lb_protocol.to_ascii_uppercase();
        let body = body_of(&req)?;
        let mut r = self.agent.post(self.url());
        if let Some(t) = &self.token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let resp = r.content_type("application/json").send(body.as_bytes());
        self.finish(resp, false).map(|_| ())
    }

    /// `DELETE /api/v1/lb`: a backend that is already gone (404) counts as deleted.
    pub fn delete(&self, backend_name: &str) -> Result<(), Error> {
        let body = body_of(&DeleteRequest {
            backend_name: backend_name.to_string(),
        })?;
        let mut r = self.agent.delete(self.url()).force_send_body();
        if let Some(t) = &self.token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let resp = r.content_type("application/json").send(body.as_bytes());
        self.finish(resp, true).map(|_| ())
    }

    /// `GET /api/v1/lb` (our updater only; the Go one answers 404/405).
    pub fn list(&self) -> Result<ListResponse, Error> {
        let v = self.list_json()?;
        serde_json::from_value(v).map_err(|e| Error::Decode {
            url: self.url(),
            detail: e.to_string(),
        })
    }

    /// `GET /api/v1/lb` as JSON, for readers that want fields `ListResponse` does not model
    /// (`paperlb explain`: per-upstream health, the updater's version).
    pub fn list_json(&self) -> Result<serde_json::Value, Error> {
        let mut r = self.agent.get(self.url());
        if let Some(t) = &self.token {
            r = r.header("Authorization", format!("Bearer {t}"));
        }
        let text = self.finish(r.call(), false)?;
        serde_json::from_str(&text).map_err(|e| Error::Decode {
            url: self.url(),
            detail: e.to_string(),
        })
    }

    /// Reads at most `MAX_RESPONSE` bytes and maps the status.
    fn finish(
        &self,
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        not_found_is_ok: bool,
    ) -> Result<String, Error> {
        let mut resp = resp.map_err(|e| self.transport(e))?;
        let code = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .lossy_utf8(true)
            .read_to_string();
        if (200..300).contains(&code) {
            return text.map_err(|e| self.transport(e));
        }
        if code == 404 && not_found_is_ok {
            return Ok(String::new());
        }
        let message = match text {
            Ok(t) => summarise(&t),
            Err(ureq::Error::BodyExceedsLimit(_)) => {
                format!("answer larger than {MAX_RESPONSE} bytes")
            }
            Err(e) => format!("unreadable answer: {}", self.transport(e)),
        };
        Err(Error::Refused { code, message })
    }

    fn transport(&self, e: ureq::Error) -> Error {
        let detail = match e {
            ureq::Error::Timeout(what) => format!("timed out ({what})"),
            ureq::Error::BodyExceedsLimit(n) => format!("answer larger than {n} bytes"),
            other => other.to_string(),
        };
        Error::Transport {
            url: self.url(),
            detail,
        }
    }
}

fn body_of<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(e.to_string()))
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
    let mut s: String = one_line.chars().take(200).collect();
    if s.len() < one_line.len() {
        s.push('…');
    }
    if s.is_empty() {
        s = "(empty answer)".into();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::summarise;

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
