//! `paperlb controller`: starts the watch threads, the optional lease elector, the probe/metrics
//! server and the signal thread, then runs the worker on the calling thread until SIGTERM/SIGINT.
//!
//! Owns: thread start-up and orderly shutdown (stop taking work, finish the current reconcile,
//! release the Lease, stop the watches). Must not: decide anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::cli::Config;
use super::stats::Stats;
use super::worker::{self, Event, Health, Worker, WorkerConfig};
use crate::http::{Limits, Request, Response, Server};
use crate::kube::client::{
    Client, ClientOptions, ENDPOINTSLICES, LOADBALANCERCONFIGS, LOADBALANCERS, NODES, Resource,
    SERVICES,
};
use crate::kube::lease::{self, Leadership, LeaseConfig};
use crate::kube::watch::{self, WatchMsg};
use crate::kube::{self};
use crate::updater::client::Timeouts;

/// A reconcile running longer than this makes `/healthz` fail: every call inside has a timeout well
/// below it, so the loop must be stuck.
const MAX_BUSY: Duration = Duration::from_secs(300);

pub fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = kube::config::load(&config.load)?;
    let client = Client::new(&cluster, ClientOptions::default())?;
    log::info!(
        "paperlb controller {} server={} config={} namespace={}",
        env!("CARGO_PKG_VERSION"),
        cluster.server,
        cluster.origin,
        config.namespace
    );

    let shutdown = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Event>();
    spawn_signal_thread(tx.clone(), shutdown.clone())?;

    let stats = Arc::new(Stats::new(Some(client.clone())));
    let health = Arc::new(Health::default());
    let leadership = if config.leader_elect {
        let lease = LeaseConfig {
            namespace: config.namespace.clone(),
            identity: config.identity.clone(),
            ..LeaseConfig::default()
        };
        let leadership = Leadership::elected(lease.renew_deadline);
        let (tx, stats) = (tx.clone(), stats.clone());
        let elector = lease::spawn(
            client.clone(),
            lease,
            leadership.clone(),
            shutdown.clone(),
            move |leading| {
                stats.set_leader(leading);
                let _ = tx.send(Event::Leadership(leading));
            },
        )?;
        Some((leadership, elector))
    } else {
        stats.set_leader(true);
        None
    };
    let leadership_view = leadership
        .as_ref()
        .map(|(l, _)| l.clone())
        .unwrap_or_else(Leadership::always);

    let probes = match config.metrics_addr {
        Some(addr) => Some(serve_probes(addr, health.clone(), stats.clone())?),
        None => None,
    };

    let ns = config.namespace.as_str();
    let mut watchers = vec![
        spawn_watch(
            "services",
            &client,
            &SERVICES,
            None,
            &tx,
            &shutdown,
            Event::Services,
        )?,
        spawn_watch("nodes", &client, &NODES, None, &tx, &shutdown, Event::Nodes)?,
        spawn_watch(
            "loadbalancers",
            &client,
            &LOADBALANCERS,
            None,
            &tx,
            &shutdown,
            Event::LoadBalancers,
        )?,
        spawn_watch(
            "loadbalancerconfigs",
            &client,
            &LOADBALANCERCONFIGS,
            Some(ns),
            &tx,
            &shutdown,
            Event::Configs,
        )?,
        spawn_watch(
            "endpointslices",
            &client,
            &ENDPOINTSLICES,
            None,
            &tx,
            &shutdown,
            Event::Slices,
        )?,
    ];
    drop(tx);

    let worker_config = WorkerConfig {
        namespace: config.namespace.clone(),
        address_types: config.address_types.clone(),
        updater_timeouts: Timeouts::default(),
    };
    Worker::new(client, worker_config, leadership_view, health, stats).run(rx);

    // Stop order: the worker has returned (no more writes); release the lease so a standby takes
    // over at once; then let the watches and the probe server go.
    shutdown.store(true, Ordering::SeqCst);
    if let Some((_, elector)) = leadership {
        let _ = elector.join();
    }
    let deadline = Instant::now() + config.shutdown_grace;
    for w in watchers.drain(..) {
        join_until(w, deadline);
    }
    if let Some(p) = probes {
        p.shutdown();
    }
    log::info!("paperlb controller stopped");
    Ok(())
}

fn spawn_watch<T: DeserializeOwned + Send + 'static>(
    name: &str,
    client: &Client,
    resource: &Resource,
    namespace: Option<&str>,
    tx: &Sender<Event>,
    shutdown: &Arc<AtomicBool>,
    wrap: fn(WatchMsg<T>) -> Event,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let path = resource.path(namespace, None, None);
    Ok(watch::spawn(
        name,
        client.clone(),
        path,
        tx.clone(),
        wrap,
        shutdown.clone(),
    ))
}

/// SIGTERM and SIGINT become one `Event::Shutdown` (the binary may be PID 1, where the default action
/// of SIGTERM is to do nothing).
fn spawn_signal_thread(tx: Sender<Event>, shutdown: Arc<AtomicBool>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("received signal {sig}: shutting down");
                shutdown.store(true, Ordering::SeqCst);
                let _ = tx.send(Event::Shutdown);
            }
        })?;
    Ok(())
}

fn serve_probes(
    addr: std::net::SocketAddr,
    health: Arc<Health>,
    stats: Arc<Stats>,
) -> std::io::Result<Server> {
    let server = Server::bind(addr, Limits::default(), move |req: &Request| {
        probe(req, &health, &stats)
    })?;
    log::info!(
        "serving /healthz, /readyz and /metrics on {}",
        server.local_addr()
    );
    Ok(server)
}

fn probe(req: &Request, health: &Health, stats: &Stats) -> Response {
    if req.method != "GET" {
        return Response::error(405, "only GET is served here");
    }
    match req.path.as_str() {
        "/healthz" => match worker::healthy(health, MAX_BUSY) {
            Ok(()) => Response::text(200, "ok\n"),
            Err(why) => Response::text(503, format!("{why}\n")),
        },
        // Ready once every watch has synced, leader or standby alike: a standby's readiness says its
        // caches are warm, so it can take over at once.
        "/readyz" => {
            if health.synced.load(Ordering::Relaxed) {
                Response::text(200, "ok\n")
            } else {
                Response::text(503, "watches not synced yet\n")
            }
        }
        "/metrics" => Response::new(200, "text/plain; version=0.0.4", stats.render()),
        _ => Response::error(404, "not found"),
    }
}

/// Joins a thread, giving up at `deadline` (a watch blocked in a slow read must not stall shutdown).
fn join_until(handle: std::thread::JoinHandle<()>, deadline: Instant) {
    while !handle.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if handle.is_finished() {
        let _ = handle.join();
    }
}
