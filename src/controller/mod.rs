//! The controller: turns observed Services, Nodes, LoadBalancerConfigs and LoadBalancers into
//! LoadBalancer CRs, updater calls and Service status. Pure decisions in `reconcile`, `ports` and
//! `targets`; the `worker` thread owns the cache and queue and does the I/O.
pub mod cli;
