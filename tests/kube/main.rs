//! Tests of Kubernetes API access: the fake API server's conformance to the real one's wire
//! behaviour, and (later) the client against it.

#[path = "../support/mod.rs"]
mod support;

mod fake_api;
