//! Issue 22, item 2: repeats of an Event update one object. A LoadBalancer whose updater keeps
//! failing is retried many times; its Service gets one `UpdaterFailed` Event whose count grows (a
//! PATCH of that Event, as client-go's correlator does), not one object per retry.

use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::harness::{Controller, World, wait_for};

fn failed_events(w: &World) -> Vec<Value> {
    w.api
        .list("events", "default")
        .into_iter()
        .filter(|e| e["reason"] == "UpdaterFailed")
        .collect()
}

#[test]
fn failed_retries_make_one_event_with_a_count() {
    let w = World::new("event-aggregation");
    w.updater.failing.store(true, Ordering::SeqCst);
    w.service("web", &[("http", 80, "TCP")]);
    let _c = Controller::start(&w.kubeconfig);
    wait_for("eight failed retries counted on one Event", || {
        failed_events(&w)
            .iter()
            .any(|e| e["count"].as_u64().is_some_and(|c| c >= 8))
    });
    let posts = w.updater.posts().len();
    assert!(posts >= 8, "{posts} POSTs");
    let events = failed_events(&w);
    assert_eq!(events.len(), 1, "one Event object: {events:#?}");
    let e = &events[0];
    assert_ne!(e["firstTimestamp"], Value::Null);
    assert_eq!(e["involvedObject"]["name"], "web");
    assert!(
        w.api
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.contains("/events/") && r.status == 200),
        "repeats are PATCHes of the one Event"
    );
}
