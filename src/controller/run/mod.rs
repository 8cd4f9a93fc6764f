//! `paperlb controller`: starts the watch threads, the optional lease elector, the probe/metrics
//! server and the signal thread, then runs the worker on the calling thread until SIGTERM/SIGINT.
//!
//! Owns: thread start-up and orderly shutdown (stop taking work, finish the current reconcile,
//! release the Lease, stop the watches). Must not: decide anything. Its submodules are the
//! controller's effects: the worker, the I/O pool (`batch`), probes, drift timers, Events, metrics.

pub mod batch;
pub mod event_correlator;
pub mod events;
pub mod host_probe;
pub mod resync;
pub mod secrets;
pub mod stats;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;

use self::stats::Stats;
use self::worker::{Event, Health, Worker};
use super::cli::Config;
use crate::http::{Limits, Request, Response, Server};
use crate::kube::client::{
    Client, ENDPOINTSLICES, LOADBALANCERCONFIGS, LOADBALANCERS, NODES, Resource, SECRETS, SERVICES,
};
use crate::kube::lease::{self, Leadership};
use crate::kube::watch::{self, WatchMsg};
use crate::kube::{self};
use crate::time::epoch_ms;

/// A reconcile running longer than this makes `/healthz` fail: every call inside has a timeout well
/// below it, so the loop must be stuck.
const MAX_BUSY: Duration = Duration::from_secs(300);
/// How long to wait for a clean stop after SIGTERM before giving up on the current work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = kube::config::load(&config.load)?;
    let client = Client::new(&cluster, config.client.clone())?;
    log::info!(
        "paperlb controller {} server={} config={} namespace={}",
        env!("CARGO_PKG_VERSION"),
        cluster.server,
        cluster.origin,
        config.ctx.namespace
    );

    let shutdown = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Event>();
    // Told when a signal arrives (false) and when the worker returns (true).
    let (ended_tx, ended_rx) = mpsc::channel::<bool>();
    spawn_signal_thread(tx.clone(), shutdown.clone(), ended_tx.clone())?;

    let leadership_view = if config.leader_elect {
        Leadership::elected(config.lease.renew_deadline)
    } else {
        Leadership::always()
    };
    let stats = Arc::new(Stats::new(client.stats(), leadership_view.clone()));
    let health = Arc::new(Health::default());
    let elector = if config.leader_elect {
        let (tx, stats) = (tx.clone(), stats.clone());
        Some(lease::spawn(
            client.clone(),
            config.lease.clone(),
            leadership_view.clone(),
            shutdown.clone(),
            move |leading| {
                stats.leader_changes.inc(&[]);
                let _ = tx.send(Event::Leadership(leading));
            },
        )?)
    } else {
        None
    };

    let probes = match config.metrics_addr {
        Some(addr) => {
            let (health, stats) = (health.clone(), stats.clone());
            let server = Server::bind(addr, Limits::default(), None, move |req: &Request| {
                probe(req, &health, &stats)
            })?;
            log::info!(
                "serving /healthz, /readyz and /metrics on {}",
                server.local_addr()
            );
            Some(server)
        }
        None => None,
    };

    let ns = config.ctx.namespace.as_str();
    let env = WatchEnv {
        client: &client,
        tx: &tx,
        shutdown: &shutdown,
        stats: &stats,
    };
    let watchers = [
        spawn_watch(&env, &SERVICES, None, Event::Services),
        spawn_watch(&env, &NODES, None, Event::Nodes),
        spawn_watch(&env, &LOADBALANCERS, None, Event::LoadBalancers),
        spawn_watch(&env, &LOADBALANCERCONFIGS, Some(ns), Event::Configs),
        spawn_watch(&env, &ENDPOINTSLICES, None, Event::Slices),
        // Updater tokens and CAs: Secrets of our own namespace only (a Role, not a ClusterRole).
        spawn_watch(&env, &SECRETS, Some(ns), Event::Secrets),
    ];
    // The I/O pool and the host prober report through `tx`.
    let worker = Worker::new(client, config.clone(), leadership_view, health, stats, tx);
    // Not joined: when it is still stuck in a call, returning from main ends it.
    let _worker = std::thread::Builder::new()
        .name("worker".into())
        .spawn(move || {
            // Sent on return and after a panic (a debug build unwinds), so main never waits forever.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run(rx)));
            let _ = ended_tx.send(true);
        })?;
    if ended_rx.recv() == Ok(false) {
        // A signal: the worker finishes its current reconcile, but a call to an unresponsive updater
        // may take its whole timeout (60 s), longer than the pod's grace period. The lease is
        // released already (the elector steps down first, so nothing after that call is written);
        // wait `SHUTDOWN_GRACE` (5 s), then exit without it, as a SIGKILL would, only sooner and cleanly.
        if ended_rx.recv_timeout(SHUTDOWN_GRACE) != Ok(true) {
            log::warn!(
                "worker: the current reconcile is still waiting on a call after {:?}; exiting without it",
                SHUTDOWN_GRACE
            );
        }
    }

    // Stop order: the worker has returned (or is left behind in one call); the elector, told by the
    // signal, has stepped down and released the lease (a standby takes over at once) or does so
    // now; then let the watches and the probe server go.
    shutdown.store(true, Ordering::SeqCst);
    if let Some(elector) = elector {
        let _ = elector.join();
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    // Until every watch has ended, or the deadline (a watch blocked in a slow read must not stall
    // shutdown); an ended thread needs no join, and one still running is left behind.
    while watchers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stops the probe server and waits for its accept thread.
    drop(probes);
    log::info!("paperlb controller stopped");
    Ok(())
}

/// The threads a watcher needs besides its resource: where to send, when to stop, what to count.
struct WatchEnv<'a> {
    client: &'a Client,
    tx: &'a Sender<Event>,
    shutdown: &'a Arc<AtomicBool>,
    stats: &'a Stats,
}

fn spawn_watch<T: DeserializeOwned + Send + 'static>(
    env: &WatchEnv<'_>,
    resource: &Resource,
    namespace: Option<&str>,
    wrap: fn(WatchMsg<T>) -> Event,
) -> std::thread::JoinHandle<()> {
    let path = resource.path(namespace, None, None);
    watch::runner::spawn_with_stats(
        resource.plural,
        env.client.clone(),
        path,
        env.tx.clone(),
        wrap,
        env.shutdown.clone(),
        env.stats.watch(resource.plural),
    )
}

/// SIGTERM and SIGINT become one `Event::Shutdown` (the binary may be PID 1, where the default action
/// of SIGTERM is to do nothing).
fn spawn_signal_thread(
    tx: Sender<Event>,
    shutdown: Arc<AtomicBool>,
    ended: Sender<bool>,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("received signal {sig}: shutting down");
                shutdown.store(true, Ordering::SeqCst);
                let _ = tx.send(Event::Shutdown);
                let _ = ended.send(false);
            }
        })?;
    Ok(())
}

fn probe(req: &Request, health: &Health, stats: &Stats) -> Response {
    if req.method != "GET" {
        return Response::error(405, "only GET is served here");
    }
    match req.path.as_str() {
        // Read without locks: the worker stores when its oldest work in flight started (0: idle).
        "/healthz" => {
            let since = health.busy_since_ms.load(Ordering::Relaxed);
            let busy = Duration::from_millis(epoch_ms(SystemTime::now()).saturating_sub(since));
            if since == 0 || busy <= MAX_BUSY {
                Response::text(200, "ok\n")
            } else {
                let secs = busy.as_secs();
                Response::text(503, format!("one reconcile has been running for {secs}s\n"))
            }
        }
        // Ready once every watch has synced, leader or standby alike: a standby's readiness says its
        // caches are warm, so it can take over at once.
        "/readyz" => {
            if health.synced.load(Ordering::Relaxed) {
                Response::text(200, "ok\n")
            } else {
                Response::text(503, "watches not synced yet\n")
            }
        }
        "/metrics" => Response::new(200, "text/plain; version=0.0.4", stats.registry.render()),
        _ => Response::error(404, "not found"),
    }
}
