//! Two controllers with leader election: one leads; SIGTERM hands over at once (the lease is
//! released); kill -9 hands over once the lease expires; the survivor converges new Services.

use crate::harness::{Controller, World, wait_for};

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
