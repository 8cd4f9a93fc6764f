//! The per-host steps of `paperlb explain` (the updater answers, accepts the credentials, lists
//! every backend the LoadBalancer implies, unchanged, with healthy upstreams), and `paperlb check`'s
//! one-line summary of a host. Each host is judged on its own.
//! Pure: no I/O, no clock.

use super::facts::{HostFact, Listing, Probe};
use super::steps::{
    HostReport, Ready, Status, Step, count, fail, ok, push, unknown, used_in_range,
};
use crate::controller::decide::traffic::KUBE_PROXY_HEALTHZ_PORT;
use crate::model::url::host_port;
use crate::model::{LbHost, Protocol, ValidConfig};
use crate::updater::Error;
use crate::updater::api::{LbRequest, Upstream};
use std::collections::BTreeSet;

pub(super) fn host_report(ready: &Ready, h: &HostFact) -> HostReport {
    let mut steps = Vec::new();
    let served = host_steps(ready, h, &mut steps).unwrap_or(false);
    HostReport {
        host: h.host.clone(),
        steps,
        served,
    }
}

/// The steps of one host; `Some(served)` when they got far enough to tell.
fn host_steps(ready: &Ready, h: &HostFact, steps: &mut Vec<Step>) -> Option<bool> {
    let url = &h.host.url;
    let cfg = &ready.cfg;
    // The controller's namespace, where the config and its Secrets are.
    let ns = &cfg.namespace;
    let reach = match &h.probe {
        Err(Error::Transport { detail, .. }) => fail(
            "reachable",
            format!("updater {url} does not answer: {detail}"),
            format!(
                "check that paperlb nginx-updater runs on {} and that its port is open to this machine (curl {url}/healthz); explain calls it from here, the controller from its pod",
                h.host.host
            ),
        ),
        Err(Error::Config(detail)) => fail(
            "reachable",
            format!("updater {url} cannot be called: {detail}"),
            format!(
                "fix spec.httpUpdaterURL or the Secrets of LoadBalancerConfig {}/{} (a CA that parses, a token without line breaks)",
                cfg.namespace, cfg.name
            ),
        ),
        _ => ok("reachable", format!("updater {url} answers")),
    };
    push(steps, (reach, Some(())))?;
    let auth = match (&h.probe, &cfg.auth.token) {
        (Err(Error::Unauthorized { code, message }), Some(r)) => fail(
            "authorized",
            format!(
                "updater {url} refuses the token from Secret {ns}/{} ({code}: {message})",
                r.name
            ),
            format!(
                "the Secret's key {} must hold the token in the updater's --token-file",
                r.key
            ),
        ),
        (Err(Error::Unauthorized { code, message }), None) => fail(
            "authorized",
            format!(
                "updater {url} wants a token ({code}: {message}), and LoadBalancerConfig {}/{} names none",
                cfg.namespace, cfg.name
            ),
            format!(
                "put the updater's token in a Secret in {ns} and set spec.updaterTokenSecretRef: {{name: <secret>, key: token}} on the config"
            ),
        ),
        (_, Some(r)) => ok(
            "authorized",
            format!("updater accepts the token from Secret {ns}/{}", r.name),
        ),
        (_, None) => ok("authorized", "updater answers without a token".into()),
    };
    push(steps, (auth, Some(())))?;
    let listing = match &h.probe {
        Ok(l) => l,
        Err(Error::Unsupported { code, .. }) => {
            steps.push(unknown(
                "answering",
                format!(
                    "updater {url} has no GET /api/v1/lb ({code}; the Go nginx-lb-updater?), so what it serves cannot be checked"
                ),
            ));
            // The LoadBalancer's status is then the only word on it.
            return Some(ready.status.phase.as_deref() == Some(crate::model::PHASE_READY));
        }
        Err(e) => {
            let (code, message) = match e {
                Error::Refused { code, message } => (*code, message.clone()),
                e => (e.status(), e.to_string()),
            };
            steps.push(fail(
                "answering",
                format!("updater {url} refuses: {code}: {message}"),
                format!(
                    "read the updater's log on {} (journalctl -u paperlb-nginx-updater)",
                    h.host.host
                ),
            ));
            return None;
        }
    };
    let version = listing
        .version
        .as_ref()
        .map(|v| format!(", version {v}"))
        .unwrap_or_default();
    steps.push(ok(
        "answering",
        format!(
            "updater {url} lists {}{version}",
            count(listing.backends.len(), "backend")
        ),
    ));
    let wanted: Vec<&LbRequest> = ready
        .requests
        .iter()
        .filter(|(u, _)| crate::model::url::same_updater(u, url))
        .map(|(_, r)| r)
        .collect();
    push(steps, backend_step(&h.host, &wanted, listing))?;
    let (step, served) = upstreams_step(cfg, &wanted, listing);
    steps.push(step);
    Some(served)
}

/// What differs between the wanted request and the one the updater holds (empty: the same).
pub fn differences(want: &LbRequest, have: &LbRequest) -> Vec<String> {
    let mut out = Vec::new();
    if want.lb_port != have.lb_port {
        out.push(format!("lbPort {} (wanted {})", have.lb_port, want.lb_port));
    }
    if !want.lb_protocol.eq_ignore_ascii_case(&have.lb_protocol) {
        out.push(format!(
            "lbProtocol {} (wanted {})",
            have.lb_protocol, want.lb_protocol
        ));
    }
    let sorted = |r: &LbRequest| -> Vec<String> {
        let all = r
            .upstream_servers
            .iter()
            .map(|u| host_port(&u.host, u.port));
        all.collect::<BTreeSet<_>>().into_iter().collect()
    };
    let (w, h) = (sorted(want), sorted(have));
    if w != h {
        out.push(format!(
            "upstreams [{}] (wanted [{}])",
            h.join(", "),
            w.join(", ")
        ));
    }
    for (name, w, h) in [
        (
            "proxyTimeoutSeconds",
            want.proxy_timeout_seconds,
            have.proxy_timeout_seconds,
        ),
        (
            "proxyConnectTimeoutSeconds",
            want.proxy_connect_timeout_seconds,
            have.proxy_connect_timeout_seconds,
        ),
    ] {
        if w != h {
            out.push(format!("{name} {h} (wanted {w})"));
        }
    }
    let balance = |r: &LbRequest| r.traffic.balance.clone().unwrap_or("round-robin".into());
    if balance(want) != balance(have) {
        out.push(format!(
            "balance {} (wanted {})",
            balance(have),
            balance(want)
        ));
    }
    out
}

fn backend_step(host: &LbHost, wanted: &[&LbRequest], listing: &Listing) -> (Step, Option<()>) {
    let fix = "the controller pushes backends again when it resyncs the updater or the Service changes; if this stays, read the controller's log for updater errors".to_string();
    for want in wanted {
        let have = listing
            .backends
            .iter()
            .find(|b| b.backend_name == want.backend_name);
        let Some(have) = have else {
            let step = fail(
                "backend",
                format!(
                    "backend {} ({}/{}) is missing on {}",
                    want.backend_name, want.lb_port, want.lb_protocol, host.name
                ),
                fix,
            );
            return (step, None);
        };
        let diffs = differences(want, have);
        if !diffs.is_empty() {
            let step = fail(
                "backend",
                format!(
                    "backend {} on {} differs from what the LoadBalancer implies: {}",
                    want.backend_name,
                    host.name,
                    diffs.join("; ")
                ),
                fix,
            );
            return (step, None);
        }
    }
    let names: Vec<&str> = wanted.iter().map(|w| w.backend_name.as_str()).collect();
    let step = ok(
        "backend",
        format!(
            "{} {} on {} {} the LoadBalancer",
            if names.len() == 1 {
                "backend"
            } else {
                "backends"
            },
            names.join(", "),
            host.name,
            if names.len() == 1 { "matches" } else { "match" }
        ),
    );
    (step, Some(()))
}

/// What the updater probes for an upstream, as the backend it lists says (`http://…/healthz`, `tcp
/// host:port`); the wanted request's check when the listing has none.
fn probe_of(want: &LbRequest, listing: &Listing, u: &Upstream) -> String {
    let listed = listing
        .backends
        .iter()
        .find(|b| b.backend_name == want.backend_name);
    let check = listed.unwrap_or(want).traffic.health_check.as_ref();
    match check {
        None => format!("no check, {}", host_port(&u.host, u.port)),
        Some(c) if c.kind.eq_ignore_ascii_case("tcp") => {
            format!("tcp {}", host_port(&u.host, c.port.unwrap_or(u.port)))
        }
        Some(c) => format!(
            "http://{}{}",
            host_port(&u.host, c.port.unwrap_or(u.port)),
            c.path.as_deref().unwrap_or("/healthz")
        ),
    }
}

/// The upstream health step and whether the host still serves (no backend with every upstream
/// reported unhealthy).
fn upstreams_step(cfg: &ValidConfig, wanted: &[&LbRequest], listing: &Listing) -> (Step, bool) {
    let mut unhealthy = Vec::new();
    let mut probes = BTreeSet::new();
    let mut reported = 0;
    let mut dead_backend = false;
    for want in wanted {
        let mut bad_here = 0;
        for u in &want.upstream_servers {
            match listing.healthy(&want.backend_name, u) {
                Some(true) => reported += 1,
                Some(false) => {
                    reported += 1;
                    bad_here += 1;
                    unhealthy.push(format!(
                        "{} → {}",
                        want.backend_name,
                        host_port(&u.host, u.port)
                    ));
                    probes.insert(probe_of(want, listing, u));
                }
                None => {}
            }
        }
        if bad_here > 0 && bad_here == want.upstream_servers.len() {
            dead_backend = true;
        }
    }
    let step = if !unhealthy.is_empty() {
        let probes: Vec<String> = probes.into_iter().collect();
        fail(
            "upstreams",
            format!(
                "the updater reports unhealthy upstream(s): {} (its probe: {})",
                unhealthy.join(", "),
                probes.join(", ")
            ),
            format!(
                "make those nodes answer that probe from the LB host (port {KUBE_PROXY_HEALTHZ_PORT} is kube-proxy's health check: kube-proxy must run there; a healthCheckNodePort answers only where a ready pod runs), or set spec.healthCheck of LoadBalancerConfig {}/{}",
                cfg.namespace, cfg.name
            ),
        )
    } else if reported == 0 {
        unknown(
            "upstreams",
            "the updater reports no upstream health, so it is not checked".into(),
        )
    } else {
        ok(
            "upstreams",
            format!("all {reported} upstream(s) are healthy"),
        )
    };
    (step, !dead_backend)
}

/// `paperlb check`'s line for one LB host of a config: `Ok` to print, `Err` a problem. `claimed`
/// holds the (port, protocol) pairs LoadBalancers claim on the host.
pub fn host_summary(
    cfg: &ValidConfig,
    host: &LbHost,
    probe: &Probe,
    claimed: &BTreeSet<(u16, Protocol)>,
) -> Result<String, String> {
    let at = format!(
        "LB host {} of LoadBalancerConfig {}/{} (updater {})",
        host.name, cfg.namespace, cfg.name, host.url
    );
    // explain's own steps for this host, with no backend to look for.
    let ready = Ready {
        cfg: cfg.clone(),
        status: Default::default(),
        requests: Vec::new(),
    };
    let h = HostFact {
        host: host.clone(),
        probe: probe.clone(),
    };
    if let Some(s) = (host_report(&ready, &h).steps.iter()).find(|s| s.status == Status::Fail) {
        let fix = s.fix.as_deref().unwrap_or_default();
        return Err(format!("{at}: {}; fix: {fix}", s.message));
    }
    let Ok(listing) = probe else {
        return Ok(format!(
            "{at}: reachable, authorized, version unknown (no GET /api/v1/lb: the Go updater?), free ports unknown"
        ));
    };
    let mut used = claimed.clone();
    for b in &listing.backends {
        if let Some(p) = Protocol::parse(&b.lb_protocol) {
            used.insert((b.lb_port, p));
        }
    }
    let free = used_in_range(&used, cfg).map(|(p, n, total)| format!("{p} {}/{total}", total - n));
    Ok(format!(
        "{at}: reachable, authorized, version {}, free ports {} ({}-{})",
        listing.version.as_deref().unwrap_or("unknown"),
        free.join(", "),
        cfg.low,
        cfg.high
    ))
}
