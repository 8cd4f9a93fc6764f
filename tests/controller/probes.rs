//! Probes while a watch stream is stalled: the apiserver keeps the Services watch open and silent.
//! As the README says: `/healthz` stays 200 (the worker is not stuck), `/readyz` stays 200 (every
//! watch synced once; a stall does not unsync the cache), and the stall ends at the client's idle
//! read timeout: the watch resumes from its resourceVersion, without a relist, and the restart and
//! error counters of that resource move. A Service created during the stall converges afterwards.

use std::time::Duration;

use crate::harness::{Controller, World, wait_for};
use crate::metrics::{free_port, metrics_addr, probe, scrape, val};
use crate::support::fake_api::{FakeOptions, Fault, FaultKind};
use crate::support::prom::Exposition;

const SERVICES_WATCH: &str = "/api/v1/services?watch=1";
/// The stalled streams would stay silent this long: far longer than any wait here, so only the
/// controller's idle timeout can end them.
const STALL: Duration = Duration::from_secs(600);
/// How many Services watches in a row stall.
const STALLS: usize = 2;

fn services(m: &Exposition, what: &str) -> f64 {
    val(
        m,
        &format!("paperlb_watch_{what}_total"),
        &[("resource", "services")],
    )
}

/// `resourceVersion=` of a watch request.
fn rv_of(path: &str) -> String {
    path.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("resourceVersion="))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn probes_stay_up_during_a_stalled_watch_which_resumes_at_the_idle_timeout() {
    // Bookmarks every second and the controller's own lease renewals keep healthy streams talking,
    // as node heartbeats and ~1 min bookmarks do on a real cluster (the idle timeout is 5 min).
    let w = World::with_options(
        "stall",
        FakeOptions {
            bookmark_interval: Duration::from_secs(1),
            ..FakeOptions::default()
        },
    );
    // Faults apply to new requests: the first Services watches (after the initial LIST) stall.
    w.api.inject(Fault::new(
        Some("GET"),
        SERVICES_WATCH,
        STALLS,
        FaultKind::StallStream(STALL),
    ));
    let port = free_port();
    let addr = metrics_addr(port);
    let _c = Controller::start_with(
        &w.kubeconfig,
        &[
            "--metrics-addr",
            addr.as_str(),
            "--leader-elect",
            "--watch-idle-timeout",
            "5s",
        ],
    );
    wait_for("/readyz 200", || probe(port, "/readyz") == 200);
    wait_for("the first Services watch (stalled) to open", || {
        w.api
            .requests()
            .iter()
            .any(|r| r.path.starts_with(SERVICES_WATCH))
    });

    // "During the stall" is when no stalled watch has been given up yet, before and after both
    // probes: the restart counter says so. A very loaded box may miss the first stall's window,
    // so the second stall gives another chance; each try is a few loopback requests.
    let mut observed = None;
    for _ in 0..200 {
        let m1 = scrape(port);
        let (healthz, readyz) = (probe(port, "/healthz"), probe(port, "/readyz"));
        let m2 = scrape(port);
        let restarts = services(&m1, "restarts");
        if restarts == services(&m2, "restarts") && restarts < STALLS as f64 {
            observed = Some((
                healthz,
                readyz,
                services(&m2, "events"),
                services(&m1, "events"),
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (healthz, readyz, events_after, events_before) =
        observed.expect("probes answered while a Services watch was stalled");
    assert_eq!(healthz, 200, "/healthz during the stall");
    assert_eq!(readyz, 200, "/readyz during the stall");
    assert_eq!(
        events_after, events_before,
        "a stalled stream delivers nothing"
    );

    // Created while the stream is silent: seen only once the watch has resumed.
    w.service("late", &[("http", 80, "TCP")]);
    wait_for("late READY after the stalls", || w.ready("late"));

    let m = scrape(port);
    assert!(
        services(&m, "restarts") >= STALLS as f64,
        "each stall ended in a restart: {}",
        services(&m, "restarts")
    );
    assert!(
        services(&m, "errors") >= STALLS as f64,
        "each stall counted as an error"
    );
    assert_eq!(services(&m, "relists"), 0.0, "resumed without a relist");
    assert_eq!(
        (probe(port, "/healthz"), probe(port, "/readyz")),
        (200, 200)
    );

    // The stalled watches and the one after them all asked for the same resourceVersion (nothing
    // arrived in between): a resume, not a fresh start.
    let watches: Vec<String> = w
        .api
        .requests()
        .iter()
        .filter(|r| r.path.starts_with(SERVICES_WATCH))
        .map(|r| rv_of(&r.path))
        .collect();
    assert!(watches.len() > STALLS, "{watches:?}");
    assert!(!watches[0].is_empty(), "{watches:?}");
    assert!(
        watches[..=STALLS].iter().all(|rv| *rv == watches[0]),
        "{watches:?}"
    );
    // Each asks the server to end it before the 5 s idle limit: a quiet watch that gets no
    // BOOKMARK ends at its timeout and is resumed, and is not called stalled.
    let timeouts: Vec<u64> = (w.api.requests().iter())
        .filter(|r| r.path.contains("watch=1"))
        .filter_map(|r| {
            let t = r
                .path
                .split(['?', '&'])
                .find_map(|kv| kv.strip_prefix("timeoutSeconds="));
            t.and_then(|t| t.parse().ok())
        })
        .collect();
    assert!(
        !timeouts.is_empty() && timeouts.iter().all(|t| *t < 5),
        "{timeouts:?}"
    );
}
