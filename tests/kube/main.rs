//! Tests of Kubernetes API access: the fake API server's conformance to the real one's wire
//! behaviour, and the client, watcher and `paperlb check` against it.

#[path = "../support/mod.rs"]
mod support;

mod against_fake;
mod bench_guard;
mod fake_api;
mod fake_latency;
