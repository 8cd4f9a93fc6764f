//! Hand-rolled Kubernetes API access over ureq + rustls: configuration, credentials, TLS, the REST
//! client, watches and leases. Knows the wire, not the controller's decisions.

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod lease;
pub mod list_page;
pub mod tls;
pub mod transport;
pub mod watch;
pub mod yaml;

#[cfg(test)]
pub(crate) mod testutil;

pub use error::{ApiStatus, Error};
