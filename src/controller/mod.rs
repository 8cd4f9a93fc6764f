//! The controller: turns observed Services, Nodes, LoadBalancerConfigs, EndpointSlices and
//! LoadBalancers into LoadBalancer CRs, updater calls and Service status. Pure decisions live in
//! `reconcile` (with `plan`, `ports`, `targets`, `status`); `cache`, `queue` and `events` are the pure
//! state the `worker` thread owns; only the worker does I/O (`batch` runs the I/O of independent
//! plans on short-lived threads for it). `run` starts the threads; `cli` parses the flags; `stats`
//! holds the metrics.

pub mod cache;
pub mod cli;
pub mod decide;
pub mod key;
pub mod queue;
pub mod run;

#[cfg(test)]
pub(crate) mod testutil;

pub use cache::{Affected, Cache};
pub use decide::context::Context;
pub use decide::plan::{Action, EventSpec, EventType, Plan, UpdaterRequest};
pub use decide::reconcile::{on_updater_error, reconcile};
pub use key::Key;
pub use queue::Queue;
pub use run::events::EventLimiter;
