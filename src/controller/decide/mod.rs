//! Pure decisions: from the cache's state to a `Plan` of effects (`reconcile`, with `ports`,
//! `port_requests`, `targets`, `traffic`, `hosts`, `status`, `health_status`, `config_status`,
//! `updater_auth`, `drift`, `no_targets`, `stuck_delete`). Pure: no I/O, no clock (time is passed in), no threads.

pub mod config_status;
pub mod context;
pub mod drift;
pub mod health_status;
pub mod hosts;
pub mod no_targets;
pub mod plan;
pub mod port_requests;
pub mod ports;
pub mod reconcile;
pub mod status;
pub mod stuck_delete;
pub mod targets;
pub mod traffic;
pub mod updater_auth;
