//! paperlb: a Kubernetes operator that gives `type: LoadBalancer` Services an address on an external
//! nginx L4 load balancer, and the `nginx-updater` that runs beside that nginx. The binary in
//! `main.rs` only parses flags and maps errors to exit codes; everything else lives here.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod controller;
pub mod explain;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod model;
pub mod process;
pub mod time;
pub mod updater;
