//! Credentials for requests: static tokens, token files re-read as they rotate, exec plugins with a
//! cached credential.
//!
//! Owns: when to re-read or re-run, and keeping the last good token when a re-read fails.
//! Must not: log or display a token.

// kube::Error is large (its Api variant holds a whole Status); boxing it is error.rs's call, not ours.
#![allow(clippy::result_large_err)]

use std::sync::Mutex;

use super::Error;
use super::config::{AuthSource, ClusterConfig};

/// A client certificate chain and its private key, both PEM.
pub type CertAndKey = (Vec<u8>, Vec<u8>);

/// Thread-safe source of the `Authorization` header. Shared by every request of a client.
#[derive(Debug)]
pub struct Credentials {
    source: AuthSource,
    cached: Mutex<Option<String>>,
}

impl Credentials {
    pub fn new(config: &ClusterConfig) -> Credentials {
        Credentials {
            source: config.auth.clone(),
            cached: Mutex::new(None),
        }
    }

    /// The value for the `Authorization` header (`Bearer …`), if any. Placeholder: static tokens only.
    pub fn authorization(&self) -> Result<Option<String>, Error> {
        match &self.source {
            AuthSource::None => Ok(None),
            AuthSource::Token(t) => Ok(Some(format!("Bearer {t}"))),
            _ => Err(Error::Config {
                what: "token files and exec plugins are not implemented yet".into(),
            }),
        }
    }

    /// A client certificate and key (PEM) returned by an exec plugin, if the plugin gives one instead of a
    /// token. The client rebuilds its TLS configuration when this changes. Placeholder: never.
    pub fn exec_client_cert(&self) -> Result<Option<CertAndKey>, Error> {
        Ok(None)
    }

    /// Called after a 401: forget the cached credential so the next call re-reads or re-runs.
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cached.lock() {
            *c = None;
        }
    }

    /// Short description for `paperlb check` and logs, never the secret: `token`, `token file /p`, ...
    pub fn method(&self) -> String {
        match &self.source {
            AuthSource::None => "none".into(),
            AuthSource::Token(_) => "token".into(),
            AuthSource::TokenFile(p) => format!("token file {}", p.display()),
            AuthSource::Exec(e) => format!("exec plugin {}", e.command),
        }
    }
}
