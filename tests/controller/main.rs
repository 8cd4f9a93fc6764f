//! The controller's end-to-end tests: the real binary against the fake API server and a recording
//! updater. One test binary for the area.

#[path = "../support/mod.rs"]
mod support;

mod balance;
mod config_first;
mod credentials;
mod event_aggregation;
mod explain;
mod flows;
mod gocompat;
mod harness;
mod health;
mod hosts;
mod ipv6;
mod lbhost;
mod leader;
mod metrics;
mod no_targets;
mod node_set;
mod port_requests;
mod probes;
mod refusal;
mod regressions;
mod selfheal;
mod stuck_delete;
mod traffic;
