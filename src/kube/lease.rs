//! Leader election on a `coordination.k8s.io/v1` Lease, after client-go's algorithm: acquire or renew
//! every retry period with optimistic concurrency on resourceVersion, treat another holder as valid
//! until our local time of its last observed change + leaseDurationSeconds, step down when no renewal
//! succeeded within the renew deadline, release on shutdown. Each attempt (a GET, then a PUT, or a
//! POST for a missing Lease; or the release) is bounded by the renew deadline, as client-go bounds a
//! renewal by its context: a hung call does not hold the elector for the client's general request
//! timeout.
//!
//! Owns: the elector thread and [`Leadership`], which the worker asks before every write. The decision
//! ([`decide`]) is pure. Must not: write anything but the Lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::Error;
use super::client::{Client, LEASES};
use super::watch::runner::sleep_unless;
use crate::time::micro_time;

/// Timings and identity; `Default` is client-go's (15 s lease, 10 s renew deadline, 2 s retry).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            name: "paperlb-controller".into(),
            namespace: "paperlb-system".into(),
            identity: String::new(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether this process may write now. Time-based, so a leader whose renewals stall loses the right to
/// write at the renew deadline even while the elector thread is blocked in a request: before any other
/// replica can take the lease over (renew deadline < lease duration).
#[derive(Debug, Default)]
pub struct Leadership {
    /// None: leader election is off and we always lead.
    renew_deadline: Option<Duration>,
    last_renew: Mutex<Option<Instant>>,
}

impl Leadership {
    /// No election: always the leader (a single replica, or tests).
    pub fn always() -> Arc<Leadership> {
        Arc::default()
    }

    pub fn elected(renew_deadline: Duration) -> Arc<Leadership> {
        Arc::new(Leadership {
            renew_deadline: Some(renew_deadline),
            ..Leadership::default()
        })
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader_at(Instant::now())
    }

    pub fn is_leader_at(&self, now: Instant) -> bool {
        let Some(deadline) = self.renew_deadline else {
            return true;
        };
        let last = self.last_renew.lock().map(|g| *g).unwrap_or(None);
        last.is_some_and(|t| now.saturating_duration_since(t) < deadline)
    }

    /// `Some(now)` after a renewal; `None` steps down.
    fn set_renewed(&self, at: Option<Instant>) {
        if let Ok(mut g) = self.last_renew.lock() {
            *g = at;
        }
    }
}

/// A Lease's `spec.holderIdentity`; "" when free.
fn holder(spec: &Value) -> &str {
    spec["holderIdentity"].as_str().unwrap_or_default()
}

/// What to do with the current record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew (keep acquireTime and transitions).
    Renew,
    /// Free or expired: take it (acquireTime = now, transitions + 1).
    Acquire,
    /// Another holder's lease is still valid.
    Wait,
}

/// Pure: `spec` is the Lease's; `observed_at` is our local time when it last changed (client-go does
/// not trust the other holder's clock, so renewTime is not used).
pub fn decide(spec: &Value, me: &str, observed_at: Instant, now: Instant) -> Decision {
    if holder(spec) == me {
        return Decision::Renew;
    }
    if holder(spec).is_empty() {
        return Decision::Acquire;
    }
    let valid_for = Duration::from_secs(spec["leaseDurationSeconds"].as_u64().unwrap_or(0));
    if now.saturating_duration_since(observed_at) < valid_for {
        Decision::Wait
    } else {
        Decision::Acquire
    }
}

/// The elector loop's memory between attempts.
struct Elector {
    client: Client,
    config: LeaseConfig,
    leadership: Arc<Leadership>,
    /// The Lease's spec as last seen, and our local time when it changed to that.
    observed: Option<(Value, Instant)>,
    leading: bool,
}

/// Runs the elector on its own thread until `shutdown`; `on_change(true|false)` is called when this
/// process gains or loses leadership (the worker uses it to wake up and resync, or to stop writing).
pub fn spawn(
    client: Client,
    config: LeaseConfig,
    leadership: Arc<Leadership>,
    shutdown: Arc<AtomicBool>,
    on_change: impl Fn(bool) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lease".into())
        .spawn(move || {
            let mut e = Elector {
                client,
                config,
                leadership,
                observed: None,
                leading: false,
            };
            let lease = format!("{}/{}", e.config.namespace, e.config.name);
            let id = e.config.identity.clone();
            log::info!("leader election: lease={lease} identity={id}");
            while !shutdown.load(Ordering::Relaxed) {
                let now = Instant::now();
                match e.try_acquire_or_renew(now) {
                    Ok(true) => e.leadership.set_renewed(Some(now)),
                    Ok(false) => {}
                    Err(err) => log::warn!("leader election: lease {lease}: {err}"),
                }
                let leading = e.leadership.is_leader();
                if leading != e.leading {
                    e.leading = leading;
                    if leading {
                        log::info!("leader election: became leader identity={id}");
                    } else {
                        log::warn!("leader election: lost leadership identity={id}; writes stop");
                    }
                    on_change(leading);
                }
                sleep_unless(&shutdown, e.config.retry_period);
            }
            if e.leading || e.leadership.is_leader() {
                e.leadership.set_renewed(None);
                on_change(false);
                match e.release() {
                    Ok(()) => log::info!("leader election: released lease {lease}"),
                    Err(err) => log::warn!("leader election: releasing lease: {err}"),
                }
            }
        })
}

impl Elector {
    fn path(&self, name: bool) -> String {
        LEASES.path(
            Some(&self.config.namespace),
            name.then_some(self.config.name.as_str()),
            None,
        )
    }

    /// A client whose requests end by `deadline`: every call of one attempt shares its budget.
    fn client_until(&self, deadline: Instant) -> Client {
        let left = deadline.saturating_duration_since(Instant::now());
        self.client
            .with_request_timeout(left.max(Duration::from_millis(1)))
    }

    /// One attempt, bounded by the renew deadline. `Ok(true)`: we hold the lease as of `now`.
    fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, Error> {
        let deadline = now + self.config.renew_deadline;
        let wall = micro_time(SystemTime::now());
        let (mut lease, exists) = match self.client_until(deadline).get(&self.path(true)) {
            Ok(l) => (l, true),
            // None yet: ours to create, with no transition (client-go's first record).
            Err(e) if e.is_not_found() => {
                let lease = json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.config.name, "namespace": self.config.namespace},
                });
                (lease, false)
            }
            Err(e) => return Err(e),
        };
        let observed_at = match &self.observed {
            Some((spec, at)) if *spec == lease["spec"] => *at,
            _ => {
                self.observed = Some((lease["spec"].clone(), now));
                now
            }
        };
        let decision = decide(&lease["spec"], &self.config.identity, observed_at, now);
        if decision == Decision::Wait {
            return Ok(false);
        }
        let transitions = lease["spec"]["leaseTransitions"].as_u64().unwrap_or(0);
        let spec = &mut lease["spec"];
        spec["holderIdentity"] = json!(self.config.identity);
        spec["leaseDurationSeconds"] = json!(self.config.lease_duration.as_secs());
        spec["renewTime"] = json!(wall);
        if decision == Decision::Acquire {
            spec["acquireTime"] = json!(wall);
            spec["leaseTransitions"] = json!(if exists { transitions + 1 } else { 0 });
        }
        // PUT carries the resourceVersion we read: a concurrent writer makes this a 409 and we
        // lose, as a concurrent create does.
        let client = self.client_until(deadline);
        let written = if exists {
            client.replace::<Value>(&self.path(true), &lease)
        } else {
            client.create::<Value>(&self.path(false), &lease)
        };
        match written {
            Ok(mut updated) => {
                self.observed = Some((updated["spec"].take(), now));
                Ok(true)
            }
            Err(e) if e.code() == Some(409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Clears the holder so a standby takes over at once instead of waiting for expiry.
    fn release(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.renew_deadline;
        let mut lease: Value = self.client_until(deadline).get(&self.path(true))?;
        if holder(&lease["spec"]) != self.config.identity {
            return Ok(());
        }
        let wall = micro_time(SystemTime::now());
        let spec = &mut lease["spec"];
        spec["holderIdentity"] = json!("");
        spec["leaseDurationSeconds"] = json!(1);
        spec["renewTime"] = json!(wall);
        self.client_until(deadline)
            .replace::<Value>(&self.path(true), &lease)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str, secs: u64) -> Value {
        json!({"holderIdentity": holder, "leaseDurationSeconds": secs})
    }

    #[test]
    fn holder_renews_free_lease_is_acquired() {
        let t = Instant::now();
        assert_eq!(decide(&rec("me", 15), "me", t, t), Decision::Renew);
        assert_eq!(decide(&rec("", 15), "me", t, t), Decision::Acquire);
    }

    #[test]
    fn other_holder_valid_until_observed_change_plus_duration() {
        let t0 = Instant::now();
        let r = rec("other", 15);
        assert_eq!(
            decide(&r, "me", t0, t0 + Duration::from_secs(14)),
            Decision::Wait
        );
        assert_eq!(
            decide(&r, "me", t0, t0 + Duration::from_secs(15)),
            Decision::Acquire
        );
    }

    #[test]
    fn leadership_lapses_at_renew_deadline_without_renewal() {
        let l = Leadership::elected(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!l.is_leader_at(t0));
        l.set_renewed(Some(t0));
        assert!(l.is_leader_at(t0 + Duration::from_secs(9)));
        assert!(!l.is_leader_at(t0 + Duration::from_secs(10)));
        l.set_renewed(Some(t0 + Duration::from_secs(9)));
        assert!(l.is_leader_at(t0 + Duration::from_secs(18)));
        l.set_renewed(None);
        assert!(!l.is_leader_at(t0 + Duration::from_secs(9)));
        assert!(Leadership::always().is_leader());
    }
}
