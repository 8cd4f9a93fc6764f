//! The per-host steps of `paperlb explain` (the updater answers, accepts the credentials, lists
//! every backend the LoadBalancer implies, unchanged, with healthy upstreams), and `paperlb check`'s
//! one-line summary of a host. Each host is judged on its own.
//! Pure: no I/O, no clock.

use super::facts::{HostFact, Listing};
use super::steps::{
    HostReport, Ready, Status, Step, check, count, fail, ok, unknown, used_in_range,
};
use crate::controller::decide::traffic::KUBE_PROXY_HEALTHZ_PORT;
use crate::model::url::host_port;
use crate::model::{LbHost, Protocol, ValidConfig};
use crate::updater::Error;
use crate::updater::api::{HealthCheck, LbRequest, Upstream};
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
    let (url, lb_host) = (&h.host.url, &h.host.host);
    let cfg = &ready.cfg;
    // The controller's namespace, where the config and its Secrets are.
    let (ns, name) = (&cfg.namespace, &cfg.name);
    let probe = match &h.probe {
        Ok(probe) => probe,
        Err(e) => {
            check(steps, "reachable", unknown(format!("not called: {e}")));
            return None;
        }
    };
    let reach = match probe {
        Err(Error::Transport { detail, .. }) => fail(
            format!("updater {url} does not answer: {detail}"),
            format!(
                "check that paperlb nginx-updater runs on {lb_host} and that its port is open to this machine (curl {url}/healthz); explain calls it from here, the controller from its pod"
            ),
        ),
        Err(Error::Config(detail)) => fail(
            format!("updater {url} cannot be called: {detail}"),
            format!(
                "fix this host's httpUpdaterURL or the Secrets it names in LoadBalancerConfig {ns}/{name} (a CA that parses, a token without line breaks)"
            ),
        ),
        _ => ok(format!("updater {url} answers")),
    };
    check(steps, "reachable", reach)?;
    let token = cfg.auth_for(url).and_then(|a| a.token.as_ref());
    let auth = match (probe, token) {
        (Err(Error::Unauthorized { code, message }), Some(r)) => fail(
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
            format!(
                "updater {url} wants a token ({code}: {message}), and LoadBalancerConfig {ns}/{name} names none"
            ),
            format!(
                "put the updater's token in a Secret in {ns} and set spec.updaterTokenSecretRef: {{name: <secret>, key: token}} on the config"
            ),
        ),
        (_, Some(r)) => ok(format!(
            "updater accepts the token from Secret {ns}/{}",
            r.name
        )),
        (_, None) => ok("updater answers without a token".into()),
    };
    check(steps, "authorized", auth)?;
    let listing = match probe {
        Ok(l) => l,
        Err(Error::Unsupported { code, .. }) => {
            let m = format!(
                "updater {url} has no GET /api/v1/lb ({code}; the Go nginx-lb-updater?), so what it serves cannot be checked"
            );
            check(steps, "answering", unknown(m));
            // The LoadBalancer's status is then the only word on it.
            return Some(ready.status.phase.as_deref() == Some(crate::model::PHASE_READY));
        }
        Err(Error::Decode { detail, .. }) => {
            let message = format!(
                "updater {url} answers GET /api/v1/lb with a list paperlb cannot read: {detail}"
            );
            let fix = "run the same paperlb version as the controller on the LB host (paperlb nginx-updater --version)";
            check(steps, "answering", fail(message, fix.to_string()));
            return None;
        }
        Err(e) => {
            let (code, message) = match e {
                Error::Refused { code, message } => (*code, message.clone()),
                e => (e.status(), e.to_string()),
            };
            let fix = format!(
                "read the updater's log on {lb_host} (journalctl -u paperlb-nginx-updater)"
            );
            let message = format!("updater {url} refuses: {code}: {message}");
            check(steps, "answering", fail(message, fix));
            return None;
        }
    };
    let version = (listing.version.as_ref()).map_or(String::new(), |v| format!(", version {v}"));
    let backends = count(listing.backends.len(), "backend");
    let message = format!("updater {url} lists {backends}{version}");
    check(steps, "answering", ok(message));
    let wanted = &ready.requests;
    check(steps, "backend", backend_step(&h.host, wanted, listing))?;
    let (step, served) = upstreams_step(cfg, wanted, listing);
    check(steps, "upstreams", step);
    Some(served)
}

/// What differs between the wanted request and the one the updater holds (empty: the same).
pub fn differences(want: &LbRequest, have: &LbRequest) -> Vec<String> {
    let upstreams = |r: &LbRequest| {
        let all: BTreeSet<String> = (r.upstream_servers.iter())
            .map(|u| host_port(&u.host, u.port))
            .collect();
        format!("[{}]", Vec::from_iter(all).join(", "))
    };
    let balance = |r: &LbRequest| r.traffic.balance.clone().unwrap_or("round-robin".into());
    let fields = |r: &LbRequest| {
        [
            ("lbPort", r.lb_port.to_string()),
            ("lbProtocol", r.lb_protocol.to_ascii_uppercase()),
            ("upstreams", upstreams(r)),
            ("proxyTimeoutSeconds", r.proxy_timeout_seconds.to_string()),
            (
                "proxyConnectTimeoutSeconds",
                r.proxy_connect_timeout_seconds.to_string(),
            ),
            ("balance", balance(r)),
        ]
    };
    (fields(want).into_iter().zip(fields(have)))
        .filter(|((_, w), (_, h))| w != h)
        .map(|((name, w), (_, h))| format!("{name} {h} (wanted {w})"))
        .collect()
}

fn backend_step(host: &LbHost, wanted: &[LbRequest], listing: &Listing) -> Step {
    let fix = "the controller pushes backends again when it resyncs the updater or the Service changes; if this stays, read the controller's log for updater errors".to_string();
    let host = &host.name;
    for want in wanted {
        let name = &want.backend_name;
        let message = match listing.backends.iter().find(|b| &b.backend_name == name) {
            None => format!(
                "backend {name} ({}/{}) is missing on {host}",
                want.lb_port, want.lb_protocol
            ),
            Some(have) => match differences(want, have) {
                d if d.is_empty() => continue,
                d => format!(
                    "backend {name} on {host} differs from what the LoadBalancer implies: {}",
                    d.join("; ")
                ),
            },
        };
        return fail(message, fix);
    }
    let names: Vec<&str> = wanted.iter().map(|w| w.backend_name.as_str()).collect();
    let (noun, verb) = match names.len() {
        1 => ("backend", "matches"),
        _ => ("backends", "match"),
    };
    let names = names.join(", ");
    ok(format!("{noun} {names} on {host} {verb} the LoadBalancer"))
}

/// What the updater probes for upstream `u` under `check` (`http://…/healthz`, `tcp host:port`).
fn probe_of(check: Option<&HealthCheck>, u: &Upstream) -> String {
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
fn upstreams_step(cfg: &ValidConfig, wanted: &[LbRequest], listing: &Listing) -> (Step, bool) {
    let (mut unhealthy, mut probes) = (Vec::new(), BTreeSet::new());
    let (mut reported, mut dead_backend) = (0, false);
    for want in wanted {
        let listed = (listing.backends.iter()).find(|b| b.backend_name == want.backend_name);
        // The probe the updater runs: the listed backend's check, else the wanted one's.
        let check = listed.unwrap_or(want).traffic.health_check.as_ref();
        let held = listed.map_or(&[][..], |b| b.upstream_servers.as_slice());
        let health = |u: &Upstream| held.iter().find(|x| *x == u)?.health.healthy;
        let ups = &want.upstream_servers;
        let reports: Vec<(&Upstream, bool)> =
            ups.iter().filter_map(|u| Some((u, health(u)?))).collect();
        reported += reports.len();
        let bad: Vec<&Upstream> = (reports.iter()).filter(|r| !r.1).map(|r| r.0).collect();
        dead_backend |= !bad.is_empty() && bad.len() == ups.len();
        for u in bad {
            let name = &want.backend_name;
            unhealthy.push(format!("{name} → {}", host_port(&u.host, u.port)));
            probes.insert(probe_of(check, u));
        }
    }
    let step = if !unhealthy.is_empty() {
        let probes: Vec<String> = probes.into_iter().collect();
        fail(
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
        unknown("the updater reports no upstream health, so it is not checked".into())
    } else {
        ok(format!("all {reported} upstream(s) are healthy"))
    };
    (step, !dead_backend)
}

/// `paperlb check`'s line for one LB host of a config: `Ok` to print, `Err` a problem. `ready`
/// holds the config and no backend to look for; `used`, the (port, protocol) pairs LoadBalancers
/// claim on the host.
pub(super) fn host_summary(
    ready: &Ready,
    h: &HostFact,
    mut used: BTreeSet<(u16, Protocol)>,
) -> Result<String, String> {
    let (cfg, host) = (&ready.cfg, &h.host);
    let at = format!(
        "LB host {} of LoadBalancerConfig {}/{} (updater {})",
        host.name, cfg.namespace, cfg.name, host.url
    );
    // explain's own steps for this host.
    if let Some(s) = (host_report(ready, h).steps.iter()).find(|s| s.status == Status::Fail) {
        let fix = s.fix.as_deref().unwrap_or_default();
        return Err(format!("{at}: {}; fix: {fix}", s.message));
    }
    let probe = h
        .probe
        .as_ref()
        .map_err(|e| format!("{at}: not called: {e}"))?;
    let Ok(listing) = probe else {
        return Ok(format!(
            "{at}: reachable, authorized, version unknown (no GET /api/v1/lb: the Go updater?), free ports unknown"
        ));
    };
    let served = listing.backends.iter();
    used.extend(served.filter_map(|b| Some((b.lb_port, Protocol::parse(&b.lb_protocol)?))));
    let free = used_in_range(&used, cfg).map(|(p, n, total)| format!("{p} {}/{total}", total - n));
    Ok(format!(
        "{at}: reachable, authorized, version {}, free ports {} ({}-{})",
        listing.version.as_deref().unwrap_or("unknown"),
        free.join(", "),
        cfg.low,
        cfg.high
    ))
}
