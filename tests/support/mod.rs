//! Test support shared by the integration test binaries (and the demo): the fake Kubernetes API
//! server, the private-nginx harness, identity-answering upstream servers, the Prometheus exposition-format checker, and the child-process
//! helpers of the example programs.
//!
//! Each test binary includes this module with `#[path = "../support/mod.rs"] mod support;` and uses
//! what it needs; the rest is allowed to be dead code in that binary.
#![allow(dead_code, unused_imports)]

pub mod backends;
pub mod fake_api;
pub mod loopback;
pub mod nginx;
pub mod procs;
pub mod prom;
