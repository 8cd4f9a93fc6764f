//! The one error type of the Kubernetes API access layer (`kube::Error`).
//!
//! Owns: the apiserver's `Status` body decoded into [`ApiStatus`], and the classification helpers
//! callers match on (not found, conflict, gone, retry-after). Variants say what the user can act on.
//! Must not: hold secrets. No variant carries a token, an Authorization header or key material.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A Kubernetes `Status` failure, as the apiserver sends it with any HTTP status >= 400.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiStatus {
    /// `Status` on a Status body (anything else decoding here is not one).
    pub kind: String,
    /// HTTP status code (`code` in the body; equals the response status).
    pub code: u16,
    /// Machine-readable reason: `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Expired`, ...
    pub reason: String,
    /// Human-readable message from the server.
    pub message: String,
    /// Optional details: the object's name and kind, retry-after.
    pub details: Option<StatusDetails>,
    /// Not in the body: taken from the `Retry-After` header when present.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

/// `Status.details`: the object's name and kind (`AlreadyExists` names them) and retry-after. Field
/// causes are left out: they repeat `message`, and nothing read them (~10 KB of serde code).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StatusDetails {
    pub name: String,
    pub kind: String,
    pub retry_after_seconds: Option<u64>,
}

/// Everything that can go wrong talking to (or configuring access to) the Kubernetes API.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Configuration could not be resolved: `what` names the file and field.
    Config { what: String },
    /// TLS set-up or handshake failed (bad CA, bad client key, certificate not valid for the server).
    Tls { server: String, detail: String },
    /// Could not connect, or the connection broke mid-request.
    Connect { server: String, detail: String },
    /// No answer within the configured timeout.
    Timeout { server: String, what: String },
    /// 401: the credentials were refused (after one refresh and retry).
    Unauthorized { server: String },
    /// The apiserver answered with a `Status` failure body.
    Api(Box<ApiStatus>),
    /// A non-`Status` error answer: e.g. `404 page not found` (unknown group or resource), a plain-text
    /// 429 from API Priority and Fairness, or an HTML page from something that is not an apiserver.
    Http {
        code: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// A 2xx body (or watch line) that did not decode as the expected type.
    Decode { what: String, detail: String },
    /// A credential plugin (`exec`) failed: not found, exit status, junk on stdout.
    Exec { command: String, detail: String },
    /// Local I/O (reading a file named by the configuration).
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Error {
    /// The HTTP status code this error carries, if it came from a server answer.
    pub fn code(&self) -> Option<u16> {
        match self {
            Error::Api(s) => Some(s.code),
            Error::Http { code, .. } => Some(*code),
            Error::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }

    /// The `reason` of a `Status` answer, or "" when there was none.
    pub fn reason(&self) -> &str {
        match self {
            Error::Api(s) => &s.reason,
            _ => "",
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// 409 `AlreadyExists` on create.
    pub fn is_already_exists(&self) -> bool {
        self.code() == Some(409) && self.reason() == "AlreadyExists"
    }

    /// 409 `Conflict`: a stale resourceVersion; re-read and retry.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409) && self.reason() != "AlreadyExists"
    }

    /// 410 `Expired`/`Gone`: the resourceVersion or continue token is too old; relist.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410) || matches!(self.reason(), "Expired" | "Gone")
    }

    pub fn is_forbidden(&self) -> bool {
        self.code() == Some(403)
    }

    pub fn is_unauthorized(&self) -> bool {
        self.code() == Some(401)
    }

    /// How long the server asked us to wait (`Retry-After` or `details.retryAfterSeconds`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(s) => s.retry_after.or_else(|| {
                s.details
                    .as_ref()
                    .and_then(|d| d.retry_after_seconds)
                    .map(Duration::from_secs)
            }),
            Error::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What the apiserver's message says after the object when `fieldValidation=Strict` refuses a field.
const STRICT_ERROR: &str = "strict decoding error: ";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { what } => write!(f, "configuration: {what}"),
            Error::Tls { server, detail } => write!(f, "TLS with {server}: {detail}"),
            Error::Connect { server, detail } => write!(f, "connecting to {server}: {detail}"),
            Error::Timeout { server, what } => write!(f, "timed out waiting for {server}: {what}"),
            Error::Unauthorized { server } => write!(
                f,
                "{server} refused the credentials (401 Unauthorized): check the token, client certificate or exec plugin"
            ),
            Error::Api(s) => {
                let reason = if s.reason.is_empty() {
                    "Failure"
                } else {
                    &s.reason
                };
                write!(f, "{} {reason}", s.code)?;
                // A strict patch's 422 quotes the whole patched object before what is wrong.
                let message = match s.message.rfind(STRICT_ERROR) {
                    Some(at) if s.code == 422 => &s.message[at..],
                    _ => s.message.as_str(),
                };
                match message {
                    "" => Ok(()),
                    message => write!(f, ": {message}"),
                }
            }
            Error::Http { code, body, .. } => match body.trim() {
                "" => write!(f, "HTTP {code}"),
                body => write!(f, "HTTP {code}: {}", snippet(body, 200)),
            },
            Error::Decode { what, detail } => write!(f, "decoding {what}: {detail}"),
            Error::Exec { command, detail } => write!(f, "credential plugin {command}: {detail}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// At most `max` characters of `s` on one line, for error messages built from untrusted bodies.
pub fn snippet(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> Error {
        Error::Api(Box::new(ApiStatus {
            code,
            reason: reason.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn classification_follows_code_and_reason() {
        assert!(status(404, "NotFound").is_not_found());
        assert!(status(409, "AlreadyExists").is_already_exists());
        assert!(!status(409, "AlreadyExists").is_conflict());
        assert!(status(409, "Conflict").is_conflict());
        assert!(status(410, "Expired").is_gone());
        assert!(status(500, "Expired").is_gone());
    }

    #[test]
    fn a_strict_422_shows_what_is_wrong_without_the_quoted_object() {
        let strict = |code, message: &str| {
            let e = Error::Api(Box::new(ApiStatus {
                code,
                reason: "Invalid".into(),
                message: message.into(),
                ..Default::default()
            }));
            e.to_string()
        };
        let tail = "strict decoding error: unknown field \"spec.balance\"";
        let long =
            format!(" \"\" is invalid: patch: Invalid value: \"{{\\\"spec\\\":{{}}}}\": {tail}");
        assert_eq!(strict(422, &long), format!("422 Invalid: {tail}"));
        assert_eq!(
            strict(400, &format!("x: {tail}")),
            format!("400 Invalid: x: {tail}")
        );
    }

    #[test]
    fn retry_after_prefers_header_then_details() {
        let mut s = ApiStatus {
            code: 429,
            ..Default::default()
        };
        s.details = Some(StatusDetails {
            retry_after_seconds: Some(3),
            ..Default::default()
        });
        assert_eq!(
            Error::Api(Box::new(s.clone())).retry_after(),
            Some(Duration::from_secs(3))
        );
        s.retry_after = Some(Duration::from_secs(1));
        assert_eq!(
            Error::Api(Box::new(s)).retry_after(),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn status_body_decodes_from_fixture_shape() {
        let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \"web\" not found","reason":"NotFound","details":{"name":"web","kind":"services"},"code":404}"#;
        let s: ApiStatus = serde_json::from_str(body).unwrap();
        assert_eq!(s.code, 404);
        assert_eq!(s.details.unwrap().name, "web");
    }

    #[test]
    fn snippet_cuts_and_flattens_untrusted_text() {
        assert_eq!(snippet("a\nb", 10), "a b");
        assert_eq!(snippet("abcdef", 3), "abc…");
    }
}
