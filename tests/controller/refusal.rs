//! Issue 22, item 6: a refusal is not an outage. An LB host whose certificate the config's CA no
//! longer verifies (a CA Secret rotated wrong) answers: that is a configuration error shown as
//! `UpdaterAuth=False CertificateRefused` with one Event, and the host stays in the Service's
//! ingress past the host failure grace while its nginx still serves.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Controller, LB_HOST, World, wait_for};
use crate::lbhost::{LbHost, lb_port, serves};
use crate::support::backends::Backend;
use crate::support::fake_api::certs::Ca;

fn auth_condition(w: &World) -> Option<Value> {
    let lb = w.lb("web")?;
    lb["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "UpdaterAuth")
        .cloned()
}

#[test]
fn a_refused_certificate_is_a_condition_and_one_event_and_the_host_stays_in_the_ingress() {
    let (right, wrong) = (Ca::new(), Ca::new());
    let (cert, key) = right.server_pem();
    let host = LbHost::start_tls((&cert, &key));
    let w = World::new("refusal");
    w.secret("updater-ca", "ca.crt", &right.cert_pem);
    let cfg = json!({"apiVersion": "lb.paperlb.com/v1alpha1", "kind": "LoadBalancerConfig",
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "portRange": {"low": 8660, "high": 8669},
            "hosts": [{"name": "a", "host": LB_HOST, "httpUpdaterURL": host.url()}],
            "updaterCASecretRef": {"name": "updater-ca"}, "healthCheck": {"type": "none"}}});
    // The harness's `edge` has the one-host form: replaced by this one.
    let _ = w
        .api
        .delete("loadbalancerconfigs", "paperlb-system", "edge");
    w.api.create("loadbalancerconfigs", cfg).expect("config");
    w.service("web", &[("http", 80, "TCP")]);
    let np = u16::try_from(w.node_port("web", 0)).expect("nodePort");
    let (_a, _b) = (
        Backend::tcp_on("127.0.0.2", np, "node-a"),
        Backend::tcp_on("127.0.0.3", np, "node-b"),
    );
    let grace = Duration::from_secs(2);
    let _c = Controller::start_with(
        &w.kubeconfig,
        &["--host-failure-grace", "2s", "--updater-resync", "1s"],
    );
    wait_for("web READY over HTTPS", || w.ready("web"));
    let port = lb_port(&w, "web");
    wait_for("traffic", || serves(port));

    // The CA Secret rotated to the wrong CA: the updater still answers, its certificate is refused.
    w.secret("updater-ca", "ca.crt", &wrong.cert_pem);
    wait_for("UpdaterAuth=False CertificateRefused", || {
        auth_condition(&w)
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "CertificateRefused")
    });
    let c = auth_condition(&w).expect("UpdaterAuth");
    assert!(
        c["message"]
            .as_str()
            .is_some_and(|m| m.contains("LoadBalancerConfig paperlb-system/edge")
                && m.contains("certificate")
                // The hosts form has no spec.updaterCASecretRef of its own to name.
                && m.contains("check updaterCASecretRef of spec.hosts[0], or of spec")),
        "{c}"
    );
    // Well past the grace (drift checks every second keep failing meanwhile).
    std::thread::sleep(grace * 3);
    assert!(
        w.ready("web"),
        "the host stays in the ingress: {:?}",
        w.svc("web")
    );
    assert!(serves(port), "nginx still serves");
    let events: Vec<Value> = w
        .api
        .list("events", "default")
        .into_iter()
        .filter(|e| e["reason"] == "UpdaterAuth")
        .collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["count"], json!(1), "one Event: {events:#?}");
}
