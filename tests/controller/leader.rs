//! Two controllers with leader election: one leads; SIGTERM hands over at once (the lease is
//! released); kill -9 hands over once the lease expires; the survivor converges new Services.
//! A leader whose Lease calls hang and then fail stops writing at its renew deadline, and writes
//! resume only after a Lease write succeeds again.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{Controller, World, upstream_hosts, wait_for};
use crate::metrics::{free_port, metrics_addr, scrape, try_scrape, val};
use crate::support::fake_api::{ADMIN_USER, Fault, FaultKind, RequestRecord};
use crate::support::prom::Exposition;

fn holder(w: &World) -> String {
    w.api
        .get("leases", "paperlb-system", "paperlb-controller")
        .ok()
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn elected(w: &World, id: &str) -> Controller {
    Controller::start_with(
        &w.kubeconfig,
        &["--leader-elect", "--leader-elect-identity", id],
    )
}

#[test]
fn standby_takes_over_after_sigterm_and_after_kill() {
    let w = World::new("leader");
    let mut a = elected(&w, "ctl-a");
    wait_for("ctl-a holds the lease", || holder(&w) == "ctl-a");
    let mut b = elected(&w, "ctl-b");
    w.service("one", &[("http", 80, "TCP")]);
    wait_for("one READY", || w.ready("one"));
    assert_eq!(holder(&w), "ctl-a", "the standby did not take the lease");
    assert_eq!(
        w.updater.posts().len(),
        1,
        "only the leader called the updater"
    );

    // SIGTERM: the leader releases the lease, so the standby need not wait for it to expire.
    assert_eq!(a.terminate(), Some(0));
    wait_for("ctl-b holds the lease", || holder(&w) == "ctl-b");
    w.service("two", &[("http", 80, "TCP")]);
    wait_for("two READY under ctl-b", || w.ready("two"));

    // kill -9: no release; a new standby takes over after the lease expires (15 s).
    let _a = elected(&w, "ctl-a2");
    b.kill();
    wait_for("ctl-a2 holds the lease", || holder(&w) == "ctl-a2");
    w.service("three", &[("http", 80, "TCP")]);
    wait_for("three READY under ctl-a2", || w.ready("three"));
    assert_eq!(
        w.updater.posts().len(),
        3,
        "one updater call per Service, no duplicates across leaders"
    );
}

/// Lease timings short enough for a test, in client-go's proportions.
const FAST_LEASE: [&str; 6] = [
    "--leader-elect-lease-duration",
    "6s",
    "--leader-elect-renew-deadline",
    "4s",
    "--leader-elect-retry-period",
    "1s",
];

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/paperlb-system/leases";

fn is_lease(r: &RequestRecord) -> bool {
    r.path.starts_with(LEASES)
}

/// A write the controller makes for the cluster (anything but reads and its own Lease).
fn is_cluster_write(r: &RequestRecord) -> bool {
    r.method != "GET" && !is_lease(r)
}

/// A kubeconfig for `w`'s fake API that authenticates as another user, so the request log tells
/// the two replicas apart.
fn kubeconfig_as(w: &World, user: &str) -> PathBuf {
    let token = format!("{user}-token");
    w.api.add_token(&token, user);
    let text = std::fs::read_to_string(&w.kubeconfig).expect("read kubeconfig");
    let path = w.kubeconfig.with_file_name(format!("kubeconfig-{user}"));
    std::fs::write(&path, text.replace(&w.api.admin_token(), &token)).expect("write kubeconfig");
    path
}

#[test]
fn leader_whose_lease_calls_hang_then_fail_stops_writing_until_a_renewal_succeeds() {
    let w = World::new("leader-faults");
    let port = free_port();
    let addr = metrics_addr(port);
    let a_flags = [
        &FAST_LEASE[..],
        &["--leader-elect", "--leader-elect-identity", "ctl-a"],
        &["--metrics-addr", addr.as_str()],
    ]
    .concat();
    let _a = Controller::start_with(&w.kubeconfig, &a_flags);
    wait_for("ctl-a holds the lease", || holder(&w) == "ctl-a");
    let b_flags = [
        &FAST_LEASE[..],
        &["--leader-elect", "--leader-elect-identity", "ctl-b"],
    ]
    .concat();
    let _b = Controller::start_with(&kubeconfig_as(&w, "standby"), &b_flags);
    w.service("one", &[("http", 80, "TCP")]);
    wait_for("one READY", || w.ready("one"));
    assert_eq!(val(&scrape(port), "paperlb_leader", &[]), 1.0);

    // From now on the next Lease request of each elector hangs (8 s, past the 4 s renew deadline),
    // and every Lease request after that fails with 500.
    w.api.inject(Fault::new(
        None,
        LEASES,
        2,
        FaultKind::Stall(Duration::from_secs(8)),
    ));
    w.api
        .inject(Fault::new(None, LEASES, 1_000_000, FaultKind::Status(500)));
    wait_for("ctl-a to say it may no longer write", || {
        try_scrape(port).is_some_and(|m| val(&m, "paperlb_leader", &[]) == 0.0)
    });
    let lost_at = w.api.requests().len();
    let updater_calls = w.updater.calls().len();
    let seen = scrape(port);
    let events = |m: &Exposition, r: &str| val(m, "paperlb_watch_events_total", &[("resource", r)]);

    // Two changes that need writes and updater calls: a new Service, and a node leaving.
    w.service("two", &[("http", 80, "TCP")]);
    w.exclude("node-b", true);
    wait_for("ctl-a to receive both changes", || {
        let m = scrape(port);
        events(&m, "services") > events(&seen, "services")
            && events(&m, "nodes") > events(&seen, "nodes")
    });
    // Let the old leader run on: its stalled renewal returns, and several more attempts fail.
    wait_for("three failed Lease calls by ctl-a", || {
        w.api.requests()[lost_at..]
            .iter()
            .filter(|r| is_lease(r) && r.user == ADMIN_USER && r.status == 500)
            .count()
            >= 3
    });
    // Gained at start, lost now (more only if a loaded box made a renewal miss its deadline).
    let changes = val(&scrape(port), "paperlb_leader_changes_total", &[]);
    assert!(changes >= 2.0, "leadership changes counted: {changes}");
    let log = w.api.requests();
    let writes: Vec<_> = log[lost_at..]
        .iter()
        .filter(|r| is_cluster_write(r))
        .map(|r| (&r.user, &r.method, &r.path))
        .collect();
    assert!(
        writes.is_empty(),
        "writes while no lease was renewed: {writes:?}"
    );
    assert_eq!(
        w.updater.calls().len(),
        updater_calls,
        "updater calls while no lease was renewed"
    );
    assert!(w.lb("two").is_none(), "no LoadBalancer for two yet");

    // The API heals: whichever replica renews or takes the lease first converges both changes.
    let healed_at = w.api.requests().len();
    w.api.clear_faults();
    wait_for("two READY", || w.ready("two"));
    wait_for("one's backend without node-b", || {
        w.updater
            .backend("default_one")
            .is_some_and(|b| upstream_hosts(&b) == ["127.0.0.2"])
            && w.ready("one")
    });
    // Every write after the heal comes from the replica whose Lease write last succeeded.
    let mut lease_writer: Option<String> = None;
    for r in &w.api.requests()[healed_at..] {
        if is_lease(r) && r.method == "PUT" && r.status == 200 {
            lease_writer = Some(r.user.clone());
        } else if is_cluster_write(r) {
            assert_eq!(
                lease_writer.as_deref(),
                Some(r.user.as_str()),
                "{} {} by {} before its Lease write succeeded",
                r.method,
                r.path,
                r.user
            );
        }
    }
    assert!(lease_writer.is_some(), "a Lease was renewed or taken");
}
