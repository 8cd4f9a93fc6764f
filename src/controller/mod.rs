//! The controller: turns observed Services, Nodes, LoadBalancerConfigs, EndpointSlices and
//! LoadBalancers into LoadBalancer CRs, updater calls and Service status. `decide/` holds the pure
//! decisions (`reconcile` returns a `Plan`); `run/` holds the effects (the `worker` thread that owns
//! the cache and executes plans, the I/O pool in `batch`, probes, drift checks, metrics); `key`,
//! `cache` and `queue` are shared by both and import nothing from `run/`; `cli` parses the flags.

pub mod cache;
pub mod cli;
pub mod decide;
pub mod key;
pub mod queue;
pub mod run;

#[cfg(test)]
pub(crate) mod testutil;

pub use cache::Cache;
pub use decide::context::Context;
pub use decide::plan::Action;
pub use decide::reconcile::reconcile;
pub use key::Key;
