//! The updater API (compatible with nginx-lb-updater): the client the controller uses, and our own
//! `paperlb nginx-updater` server that turns requests into nginx stream configuration.
//!
//! Owns: `updater::Error`, the one error type of this module for both halves. The wire types are in
//! `api`, validation in `validate` (pure), rendering and the nginx process in `nginx`, the file set
//! and group commit in `apply`, active health checks in `health`, routes in `server`, the controller's side in `client`.
//! Must not: hold or print secrets (the bearer token never appears in an error or a log line).

pub mod api;
pub mod apply;
pub mod auth;
pub mod cli;
pub mod client;
pub mod health;
pub mod nginx;
pub mod server;
pub mod tls;
pub mod validate;

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong on either side of the updater API. `Clone`, so one failed batch
/// answers each of its callers, and the controller can keep the error it got.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The request was refused by validation, naming the field (`upstreamServers[1].host`): 400.
    Invalid(validate::Error),
    /// The request conflicts with another backend (port already served, same protocol): HTTP 409.
    Conflict(String),
    /// At start: nginx.conf has no `include DIR/*.conf;` inside `stream {}`. Not a request error:
    /// the message is the fix, with a `module` hint written for the layout found.
    MissingInclude {
        conf: PathBuf,
        dir: PathBuf,
        module: String,
    },
    /// `nginx -t` or the reload refused the configuration, or the reload was not confirmed (the
    /// previous file set was restored): nginx's own message, trimmed.
    NginxRefused(String),
    /// No running nginx master: the pid file is missing, unreadable or names a dead process.
    NotRunning(String),
    /// Local I/O on the streams directory or nginx.conf; or a file or program that will not do: the
    /// nginx binary could not be run or ran past its deadline, the `--tls-cert`/`--tls-key` pair does
    /// not load (never key bytes). Names the path.
    Io {
        path: String,
        source: std::sync::Arc<std::io::Error>,
    },
    /// Client side: the updater answered with an error status (`{"err"}` body surfaced as `message`,
    /// anything else summarised in one line).
    Refused { code: u16, message: String },
    /// Client side: could not reach the updater, or the exchange broke or timed out.
    Transport { url: String, detail: String },
    /// Client side: the TLS handshake refused the updater's certificate (not signed by the
    /// configured CA, wrong name): the updater answered, our configuration does not trust it.
    Tls { url: String, detail: String },
    /// Client side: a 2xx answer that did not decode.
    Decode { url: String, detail: String },
    /// Client side: the updater refused our credentials (401 or 403); `message` is its `{"err"}`.
    Unauthorized { code: u16, message: String },
    /// Client side: the updater has no `GET /api/v1/lb` (404 or 405: the Go nginx-lb-updater).
    Unsupported { code: u16, message: String },
    /// Client side: the client cannot be set up (unusable CA PEM, no system CA bundle for an
    /// `https` endpoint, a token that cannot be sent in a header). Never holds secret bytes.
    Config(String),
}

impl Error {
    /// The HTTP status the server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::Conflict(_) => 409,
            Error::Refused { code, .. }
            | Error::Unauthorized { code, .. }
            | Error::Unsupported { code, .. } => *code,
            Error::Transport { .. } | Error::Tls { .. } | Error::Decode { .. } => 502,
            // nginx, local I/O, the certificate, the client's configuration.
            _ => 500,
        }
    }

    /// The updater refused the token (or its absence): 401 or 403.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Unauthorized { .. })
    }

    /// The updater does not serve `GET /api/v1/lb` (the Go one): drift checks cannot work there.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
    }

    /// The updater's certificate was refused: a configuration error, not an outage.
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Tls { .. })
    }

    /// No answer: the updater could not be reached, or the exchange broke or timed out.
    pub fn is_transport(&self) -> bool {
        matches!(self, Error::Transport { .. })
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source: std::sync::Arc::new(source),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(m) => write!(f, "invalid request: {m}"),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::MissingInclude { conf, dir, module } => {
                let (conf, dir) = (conf.display(), dir.display());
                write!(
                    f,
                    "{conf} does not include {dir}/*.conf inside its stream {{}} block, so nginx \
                     would never see the backends the updater writes. Add this at the top level of \
                     that file (not inside http {{}}):\n\nstream {{\n    include {dir}/*.conf;\n}}\
                     \n\n{module}"
                )
            }
            Error::NginxRefused(m) => write!(f, "nginx refused the change: {m}"),
            Error::NotRunning(m) => write!(f, "nginx is not running: {m}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::Refused { code, message } => write!(f, "updater answered {code}: {message}"),
            Error::Transport { url, detail } | Error::Tls { url, detail } => {
                write!(f, "updater {url}: {detail}")
            }
            Error::Decode { url, detail } => {
                write!(f, "updater {url}: undecodable answer: {detail}")
            }
            Error::Unauthorized { code, message } => {
                write!(f, "updater refused the credentials ({code}): {message}")
            }
            Error::Unsupported { code, message } => write!(
                f,
                "updater does not list its backends (GET answered {code}: {message}); \
                 the Go nginx-lb-updater has no GET /api/v1/lb"
            ),
            Error::Config(m) => write!(f, "updater client: {m}"),
        }
    }
}

/// No `source()`: the message of an `Io` or `Invalid` error already holds its cause's (a reader
/// walking the chain would print it twice), and nothing here walks it.
impl std::error::Error for Error {}

impl From<validate::Error> for Error {
    fn from(e: validate::Error) -> Error {
        Error::Invalid(e)
    }
}
