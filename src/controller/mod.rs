//! The controller: turns observed Services, Nodes, LoadBalancerConfigs, EndpointSlices and
//! LoadBalancers into LoadBalancer CRs, updater calls and Service status. Pure decisions live in
//! `reconcile` (with `plan`, `ports`, `targets`, `status`); `cache`, `queue` and `events` are the pure
//! state the `worker` thread owns; only the worker does I/O (`batch` runs the I/O of independent
//! plans on short-lived threads for it). `run` starts the threads; `cli` parses the flags; `stats`
//! holds the metrics.

pub mod batch;
pub mod cache;
pub mod cli;
pub mod config_status;
pub mod drift;
pub mod event_correlator;
pub mod events;
pub mod health_status;
pub mod host_probe;
pub mod hosts;
pub mod no_targets;
pub mod plan;
pub mod port_requests;
pub mod ports;
pub mod queue;
pub mod reconcile;
pub mod resync;
pub mod run;
pub mod secrets;
pub mod stats;
pub mod status;
pub mod stuck_delete;
pub mod targets;
pub mod traffic;
pub mod updater_auth;
pub mod worker;

#[cfg(test)]
pub(crate) mod testutil;

pub use cache::{Affected, Cache, Key};
pub use events::EventLimiter;
pub use plan::{Action, EventSpec, EventType, Plan, UpdaterRequest};
pub use queue::Queue;
pub use reconcile::{Context, on_updater_error, reconcile};
