//! Building LoadBalancer status, conditions, Service ingress and backend names, so that writing
//! "the same thing again" compares equal and is skipped.
//! Pure: no I/O, no clock (the time comes in as a string).

use crate::controller::key::Key;
use crate::model::{
    AppliedBackend, Condition, Ingress, LbPort, LbSpec, LoadBalancer, PHASE_READY, PortStatus,
};

/// Condition: the updater serves the current spec.
pub const READY: &str = "Ready";
/// Condition: the controller could compute the spec (config found and valid, ports free, Service
/// valid). False carries the reason a user must act on.
pub const RECONCILED: &str = "Reconciled";

/// Sets a condition, keeping `lastTransitionTime` when the status does not change (Kubernetes
/// convention; it also keeps a repeated decision byte-identical so nothing is written).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: &str,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" };
    let existing = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match existing.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.to_string(),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time,
        observed_generation: generation,
    };
    match existing {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The updater serves this LoadBalancer's current spec.
pub fn is_applied(lb: &LoadBalancer) -> bool {
    lb.status.phase.as_deref() == Some(PHASE_READY)
        && lb.status.observed_generation == lb.metadata.generation
}

/// `<namespace>_<name>` for the first port (as the Go controller names it), then
/// `<namespace>_<name>_<port name, or index if unnamed>`.
pub fn backend_name(key: &Key, index: usize, port_name: &str) -> String {
    match (index, port_name) {
        (0, _) => format!("{}_{}", key.namespace, key.name),
        (i, "") => format!("{}_{}_{i}", key.namespace, key.name),
        (_, n) => format!("{}_{}_{n}", key.namespace, key.name),
    }
}

/// The backends a spec puts on its updaters (one per port on each host), sorted.
pub fn backends_of(key: &Key, spec: &LbSpec) -> Vec<AppliedBackend> {
    let mut out = Vec::new();
    for h in &spec.hosts {
        for (i, p) in spec.ports.iter().enumerate() {
            out.push(AppliedBackend {
                backend_name: backend_name(key, i, &p.name),
                url: h.url.clone(),
                host: h.host.clone(),
                port: i64::from(p.port),
                protocol: p.protocol.as_str().to_string(),
            });
        }
    }
    out.sort();
    out
}

/// Backends that may exist on an updater for this LoadBalancer: those recorded in status plus those
/// its current spec names (a Go-era CR has no record). Deleting an absent backend is harmless.
pub fn known_backends(key: &Key, lb: &LoadBalancer) -> Vec<AppliedBackend> {
    let mut all = lb.status.applied.clone();
    if let Ok(spec) = LbSpec::from_resource(&lb.spec) {
        all.extend(backends_of(key, &spec));
    }
    // One entry per backend name and endpoint, whichever spelling of the URL recorded it.
    let mut out: Vec<AppliedBackend> = Vec::with_capacity(all.len());
    for b in all {
        if !out.iter().any(|o| o.same_place(&b)) {
            out.push(b);
        }
    }
    out.sort_by(|a, b| (&a.url, &a.backend_name).cmp(&(&b.url, &b.backend_name)));
    out
}

/// Whether an ingress entry names `host` (addresses compared in canonical form, so an entry
/// written before or after [`ingress_entry`] canonicalized it both count).
pub fn shows_host(i: &Ingress, host: &str) -> bool {
    let canon = |s: &str| {
        s.parse::<std::net::IpAddr>()
            .map_or(s.to_string(), |ip| ip.to_string())
    };
    [&i.ip, &i.hostname]
        .into_iter()
        .flatten()
        .any(|s| canon(s) == canon(host))
}

/// One ingress entry for an LB host: `ip` with `ipMode: Proxy` (so kube-proxy never binds the LB
/// host's address on nodes) for an address, else `hostname`.
/// An address is written in its canonical form (`2001:DB8:0::10` as `2001:db8::10`), which
/// apiservers with strict IP validation require.
pub fn ingress_entry(host: &str, ports: Vec<PortStatus>) -> Ingress {
    let ip = host.parse::<std::net::IpAddr>().ok();
    Ingress {
        ip: ip.map(|ip| ip.to_string()),
        hostname: ip.is_none().then(|| host.to_string()),
        ip_mode: ip.map(|_| "Proxy".to_string()),
        ports,
    }
}

/// LB ports as `8100/TCP, 8101/UDP`, for messages (`&spec.ports` for a spec's).
pub fn port_list<'a>(ports: impl IntoIterator<Item = &'a LbPort>) -> String {
    let ports: Vec<String> = ports
        .into_iter()
        .map(|p| format!("{}/{}", p.port, p.protocol.as_str()))
        .collect();
    ports.join(", ")
}

/// Condition type on a LoadBalancer whose updater's credentials cannot be used (or are refused).
pub const UPDATER_AUTH: &str = "UpdaterAuth";

/// Condition type: whether the controller can compare this LoadBalancer's updater with what it
/// should serve (False, reason `Unsupported`, on the Go nginx-lb-updater, which has no GET).
pub const DRIFT_CHECK: &str = "DriftCheck";

/// After a successful updater call: an `UpdaterAuth=False` left by an earlier failure turns True.
/// A LoadBalancer that never had the condition does not get it (nothing is written for it).
pub fn mark_accepted(
    conditions: &mut Vec<crate::model::Condition>,
    now: &str,
    generation: Option<i64>,
) {
    if condition(conditions, UPDATER_AUTH).is_some_and(|c| c.status != "True") {
        let (c, message) = (conditions, "the updater accepted the credentials");
        set_condition(c, UPDATER_AUTH, true, "Accepted", message, now, generation);
    }
}

#[cfg(test)]
mod tests {
    use super::ingress_entry;

    #[test]
    fn ingress_entries_write_addresses_canonically_and_names_as_hostnames() {
        let e = ingress_entry("2001:DB8:0::10", Vec::new());
        assert_eq!((e.ip.as_deref(), e.hostname), (Some("2001:db8::10"), None));
        assert_eq!(e.ip_mode.as_deref(), Some("Proxy"));
        let e = ingress_entry("127.0.0.10", Vec::new());
        assert_eq!(e.ip.as_deref(), Some("127.0.0.10"));
        let e = ingress_entry("lb.example.com", Vec::new());
        assert_eq!(
            (e.ip.clone(), e.hostname.as_deref()),
            (None, Some("lb.example.com"))
        );
        // Readers compare through the same form: the config's spelling still finds its entry.
        let v6 = ingress_entry("2001:DB8:0::10", Vec::new());
        assert!(super::shows_host(&v6, "2001:db8::10") && super::shows_host(&v6, "2001:DB8::10"));
        assert!(super::shows_host(&e, "lb.example.com") && !super::shows_host(&e, "127.0.0.10"));
    }
}
