//! What `paperlb explain` read: the cluster objects, the controller's check of the Secrets, each
//! updater's answer, as plain data. `gather` fills it; `steps` diagnoses from it alone.
//! Must not: hold a Secret's value (the credentials used for an updater call stay in `gather`).
//! Pure: no I/O, no clock.

use crate::controller::Key;
use crate::controller::decide::updater_auth::AuthProblem;
use crate::model::{EndpointSlice, Event, LbHost, LoadBalancer, LoadBalancerConfig, Node, Service};
use crate::updater::api::LbRequest;
use serde::Serialize;

/// One read that failed: what was asked, the answer, and the permission it needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadError {
    /// `get services default/web`.
    pub what: String,
    pub message: String,
    /// `get services in namespace default`.
    pub needs: String,
}

/// `cannot get services default/web: <answer> (needs get services in namespace default)`.
impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {}: {} (needs {})",
            self.what, self.message, self.needs
        )
    }
}

pub type Read<T> = Result<T, ReadError>;

/// What one updater answered to `GET /api/v1/lb`, or why not: `Transport` (no answer),
/// `Config` (no call could be made: the URL or the credentials are unusable), `Unauthorized` (401,
/// 403), `Unsupported` (404, 405: no `GET`, the Go nginx-lb-updater), any other: refused.
pub type Probe = Result<Listing, crate::updater::Error>;

/// A `GET /api/v1/lb` answer as the controller's drift check reads it (`UpdaterClient::list_each`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    /// As listed, with each upstream's `healthy` where the updater reports it.
    pub backends: Vec<LbRequest>,
    pub version: Option<String>,
}

#[derive(Clone, Debug)]
pub struct HostFact {
    pub host: LbHost,
    /// `Err`: a Secret its credentials name could not be read, so it was not called.
    pub probe: Read<Probe>,
}

/// Everything one explain read.
#[derive(Clone, Debug)]
pub struct Facts {
    pub key: Key,
    pub service: Read<Option<Service>>,
    pub load_balancer: Read<Option<LoadBalancer>>,
    pub configs: Read<Vec<LoadBalancerConfig>>,
    /// Every LoadBalancer in the cluster (port claims).
    pub load_balancers: Read<Vec<LoadBalancer>>,
    pub nodes: Read<Vec<Node>>,
    /// This Service's EndpointSlices.
    pub slices: Read<Vec<EndpointSlice>>,
    /// Recent Events of the Service and its LoadBalancer, newest last.
    pub events: Read<Vec<Event>>,
    /// Names of k3s ServiceLB DaemonSets in kube-system serving this Service.
    pub svclb: Read<Vec<String>>,
    /// What the controller's own check of each host's credentials (`client_auth`) says of the
    /// Secrets they name, in the order of the config's hosts: `Ok(None)` usable or none named, or
    /// its problem; `Err` when a Secret the host names could not be read. Filled once the config is
    /// known (see `steps::to_read`).
    pub secrets: Vec<Read<Option<AuthProblem>>>,
    pub hosts: Vec<HostFact>,
}

impl Facts {
    /// Facts with nothing read yet but the names.
    #[cfg(test)]
    pub fn empty(key: Key) -> Facts {
        Facts {
            key,
            service: Ok(None),
            load_balancer: Ok(None),
            configs: Ok(Vec::new()),
            load_balancers: Ok(Vec::new()),
            nodes: Ok(Vec::new()),
            slices: Ok(Vec::new()),
            events: Ok(Vec::new()),
            svclb: Ok(Vec::new()),
            secrets: Vec::new(),
            hosts: Vec::new(),
        }
    }

    /// Every read that failed, in the order they were made, each once.
    pub fn failed_reads(&self) -> Vec<&ReadError> {
        let mut failed: Vec<&ReadError> = [
            self.service.as_ref().err(),
            self.load_balancer.as_ref().err(),
            self.configs.as_ref().err(),
            self.load_balancers.as_ref().err(),
            self.nodes.as_ref().err(),
            self.slices.as_ref().err(),
            self.events.as_ref().err(),
            self.svclb.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        .collect();
        // Hosts sharing a Secret share its failed read.
        for e in self.secrets.iter().filter_map(|s| s.as_ref().err()) {
            if !failed.contains(&e) {
                failed.push(e);
            }
        }
        failed
    }
}
