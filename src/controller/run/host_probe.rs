//! Liveness of the LB hosts of several-host configs (`spec.hosts`): one thread probes each
//! host's updater (`GET /healthz`) every `interval` and tells the worker each good answer, and when
//! one stops answering, with the time of its last good answer (the grace is measured from it, as a node's
//! heartbeat is). Single-host configs are not probed: with one host there is nothing to fail over
//! to, and their updater calls report failures as before.
//!
//! Owns: the probe loop and each target's last good answer. Must not: touch the cache or decide
//! anything (the worker keeps the failing set and reconciles).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crate::time::epoch_ms;

use crate::updater::client::UpdaterClient;

/// The probe period for a grace: a sixth of it (a host misses several probes before it is
/// dropped), between 1 s and 10 s.
pub fn interval_for(grace: Duration) -> Duration {
    (grace / 6).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// What the worker hands the prober: the endpoints to probe, with the client for each (its TLS
/// settings; `/healthz` needs no token).
#[derive(Default)]
pub struct Targets {
    clients: Mutex<BTreeMap<String, Arc<UpdaterClient>>>,
    changed: Condvar,
}

impl Targets {
    /// Replaces the set (a new endpoint is probed at once; the prober waits on when only the
    /// clients changed).
    pub fn set(&self, clients: BTreeMap<String, Arc<UpdaterClient>>) {
        if let Ok(mut c) = self.clients.lock() {
            *c = clients;
        }
        self.changed.notify_all();
    }
}

/// A change of one endpoint's liveness: `last_ok_ms` is its last good answer (ms since the epoch;
/// when the prober started if it never answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    pub endpoint: String,
    pub ok: bool,
    pub last_ok_ms: u64,
}

/// Starts the probe thread; it hands each report to `send`, and ends once the worker has dropped
/// `targets` (at the next round) or when `send` says the worker is gone (false).
pub fn spawn(
    targets: &Arc<Targets>,
    interval: Duration,
    send: impl Fn(Probed) -> bool + Send + 'static,
) -> std::io::Result<()> {
    let targets = Arc::downgrade(targets);
    std::thread::Builder::new()
        .name("host-probe".into())
        .spawn(move || run(&targets, interval, &send))
        .map(|_| ())
}

fn run(targets: &Weak<Targets>, interval: Duration, send: &dyn Fn(Probed) -> bool) {
    // Per endpoint: last good answer, and whether the worker was last told it fails.
    let mut state: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    loop {
        let Some(targets) = targets.upgrade() else {
            return;
        };
        let clients: Vec<(String, Arc<UpdaterClient>)> = {
            let Ok(t) = targets.clients.lock() else {
                return;
            };
            t.iter().map(|(e, c)| (e.clone(), c.clone())).collect()
        };
        state.retain(|e, _| clients.iter().any(|(c, _)| c == e));
        for (endpoint, client) in &clients {
            let started = epoch_ms(SystemTime::now());
            // A refused certificate is an answer (a configuration error the drift check and the
            // calls report), not an outage: the host stays in the ingress while nginx serves.
            let result = client
                .probe()
                .or_else(|e| if e.is_tls() { Ok(()) } else { Err(e) });
            let (last_ok_ms, failing) = state.entry(endpoint.clone()).or_insert((started, false));
            // Every good answer is reported (the worker may have seen a call to this host fail
            // meanwhile, and only this clears it); a failure only when it starts.
            match &result {
                Err(_) if *failing => continue,
                Err(e) => log::warn!("LB host updater {endpoint} does not answer: {e}"),
                Ok(()) if *failing => log::info!("LB host updater {endpoint} answers again"),
                Ok(()) => {}
            }
            let ok = result.is_ok();
            if ok {
                *last_ok_ms = epoch_ms(SystemTime::now());
            }
            *failing = !ok;
            let probed = Probed {
                endpoint: endpoint.clone(),
                ok,
                last_ok_ms: *last_ok_ms,
            };
            if !send(probed) {
                return;
            }
        }
        // Until the next round, or a change of endpoints.
        let Ok(t) = targets.clients.lock() else {
            return;
        };
        let keys: Vec<String> = t.keys().cloned().collect();
        let same = |t: &mut BTreeMap<String, Arc<UpdaterClient>>| t.keys().eq(keys.iter());
        if targets
            .changed
            .wait_timeout_while(t, interval, same)
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_sixth_of_the_grace_within_bounds() {
        assert_eq!(
            interval_for(Duration::from_secs(30)),
            Duration::from_secs(5)
        );
        assert_eq!(interval_for(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(
            interval_for(Duration::from_secs(600)),
            Duration::from_secs(10)
        );
    }
}
