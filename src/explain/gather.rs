//! The reads of `paperlb explain` (and of `paperlb check`'s host report): Kubernetes GETs and LISTs,
//! the Secrets a config names, and each updater's `GET /api/v1/lb`. A failed read is kept as a
//! `ReadError` naming the permission it needs; nothing here decides anything (the credentials are
//! checked by `steps::auths`).
//! Must not: write anything, or print, log or keep a Secret's value (the token goes to the updater
//! call and nowhere else).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::facts::{Facts, HostFact, Listing, Probe, Read, ReadError};
use super::steps::{self, Auth};
use crate::controller::Key;
use crate::controller::run::secrets::SecretStore;
use crate::kube::Error;
use crate::kube::client::{
    Client, DAEMONSETS, ENDPOINTSLICES, EVENTS, LOADBALANCERCONFIGS, LOADBALANCERS, ListParams,
    NODES, Resource, SECRETS, SERVICES,
};
use crate::model::{
    AuthRefs, Event, LOAD_BALANCER_KIND, LbHost, SERVICE_NAME_LABEL, Secret, Service, ValidConfig,
};
use crate::updater::client::{Timeouts, UpdaterClient};

/// Where k3s runs its ServiceLB DaemonSets.
pub const K3S_SERVICELB_NAMESPACE: &str = "kube-system";
/// Events shown per explain.
pub const MAX_EVENTS: usize = 10;

fn read_error(
    verb: &str,
    res: &Resource,
    namespace: Option<&str>,
    what: &str,
    e: &Error,
) -> ReadError {
    ReadError {
        what: format!("{verb} {} {what}", res.plural),
        message: e.to_string(),
        needs: res.access(verb, "", namespace),
    }
}

/// GET one object; a 404 is `None`.
fn get<T: DeserializeOwned>(
    client: &Client,
    res: &Resource,
    ns: &str,
    name: &str,
) -> Result<Option<T>, ReadError> {
    let what = format!("{ns}/{name}");
    match client.get::<T>(&res.path(Some(ns), Some(name), None)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(read_error("get", res, Some(ns), &what, &e)),
    }
}

/// LIST (all pages); a 404 (the resource or namespace does not exist) is an empty list.
pub fn list<T: DeserializeOwned>(
    client: &Client,
    res: &Resource,
    ns: Option<&str>,
    params: &ListParams,
) -> Result<Vec<T>, ReadError> {
    match client.list(&res.path(ns, None, None), params, |t| {
        serde_json::from_str::<T>(t)
    }) {
        Ok(l) => Ok(l.items),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => {
            let what = ns.map_or("in all namespaces".into(), |n| format!("in {n}"));
            Err(read_error("list", res, ns, &what, &e))
        }
    }
}

/// Every cluster read explain makes before it knows the config: the Service, its LoadBalancer, the
/// configs, all LoadBalancers (port claims), Nodes, the Service's EndpointSlices, recent Events of
/// both objects, and k3s ServiceLB DaemonSets for the Service.
pub fn cluster(client: &Client, key: &Key, namespace: &str) -> Facts {
    let (ns, name) = (key.namespace.as_str(), key.name.as_str());
    let all = ListParams::default();
    let by_service = ListParams {
        label_selector: Some(format!("{SERVICE_NAME_LABEL}={name}")),
        ..ListParams::default()
    };
    let by_name = ListParams {
        field_selector: Some(format!("involvedObject.name={name}")),
        ..ListParams::default()
    };
    let service: Read<Option<Service>> = get(client, &SERVICES, ns, name);
    let uid = match &service {
        Ok(Some(s)) => s.metadata.uid.clone(),
        _ => String::new(),
    };
    Facts {
        key: key.clone(),
        service,
        load_balancer: get(client, &LOADBALANCERS, ns, name),
        configs: list(client, &LOADBALANCERCONFIGS, Some(namespace), &all),
        load_balancers: list(client, &LOADBALANCERS, None, &all),
        nodes: list(client, &NODES, None, &all),
        slices: list(client, &ENDPOINTSLICES, Some(ns), &by_service),
        events: list::<Event>(client, &EVENTS, Some(ns), &by_name).map(event_lines),
        svclb: list::<Value>(client, &DAEMONSETS, Some(K3S_SERVICELB_NAMESPACE), &all)
            .map(|items| servicelb_daemonsets(&items, key, &uid)),
        // Read once the config is known.
        secrets: Vec::new(),
        hosts: Vec::new(),
    }
}

/// The Service's and its LoadBalancer's Events, oldest first, at most `MAX_EVENTS`.
fn event_lines(mut events: Vec<Event>) -> Vec<Event> {
    let kinds = ["Service", LOAD_BALANCER_KIND];
    events.retain(|e| kinds.contains(&e.involved_object.kind.as_str()));
    events.sort_by(|a, b| a.last_timestamp.cmp(&b.last_timestamp));
    let skip = events.len().saturating_sub(MAX_EVENTS);
    events.split_off(skip)
}

/// k3s names a Service's ServiceLB DaemonSet `svclb-<name>-<first 8 of its uid>` and labels it
/// `svccontroller.k3s.cattle.io/svcname` / `svcnamespace`.
pub fn servicelb_daemonsets(items: &[Value], key: &Key, uid: &str) -> Vec<String> {
    items
        .iter()
        .filter_map(|ds| {
            let name = ds["metadata"]["name"].as_str()?;
            let labels = &ds["metadata"]["labels"];
            let by_label = labels["svccontroller.k3s.cattle.io/svcname"] == key.name.as_str()
                && labels["svccontroller.k3s.cattle.io/svcnamespace"]
                    .as_str()
                    .is_none_or(|n| n == key.namespace);
            let prefix = format!("svclb-{}-", key.name);
            let by_name = name.strip_prefix(&prefix).is_some_and(|rest| {
                uid.len() < 8 || uid.get(..8).is_some_and(|u| rest.starts_with(u))
            });
            (by_label || by_name).then(|| format!("{K3S_SERVICELB_NAMESPACE}/{name}"))
        })
        .collect()
}

/// Each host's credentials for its updater call ([`Auth`], one per host, [`steps::auths`]: the
/// controller's own check) from the Secrets `cfg` names, read here into the controller's own
/// store. A host naming a Secret that could not be read gets that read's error (it is not called);
/// the others are checked as usual. The credentials never go into the facts (only each host's
/// problem does, [`Facts::secrets`]; `ClientAuth` has no `Debug`).
pub fn secrets(client: &Client, cfg: &ValidConfig) -> Vec<Read<Auth>> {
    let wanted = cfg.all_refs();
    let names: BTreeSet<&str> = wanted.iter().map(|r| r.name.as_str()).collect();
    let mut store = SecretStore::default();
    store.want(wanted.clone());
    let mut unread = BTreeMap::new();
    for name in names {
        match get::<Secret>(client, &SECRETS, &cfg.namespace, name) {
            Ok(Some(secret)) => {
                store.apply(secret);
            }
            Ok(None) => {}
            Err(e) => {
                unread.insert(name, e);
            }
        }
    }
    let unread_of = |refs: &AuthRefs| refs.refs().find_map(|r| unread.get(r.name.as_str()));
    (cfg.auths.iter().zip(steps::auths(cfg, &store)))
        .map(|(refs, auth)| unread_of(refs).map_or(Ok(auth), |e| Err(e.clone())))
        .collect()
}

/// Every host of `cfg` probed with its own credentials (`auths`, one per host, from [`secrets`]);
/// a host whose Secret could not be read is not called.
pub fn probe_hosts(cfg: &ValidConfig, auths: &[Read<Auth>]) -> Vec<HostFact> {
    let hosts = steps::hosts_of(cfg).into_iter().zip(auths);
    hosts
        .map(|(host, auth)| HostFact {
            probe: auth.clone().map(|a| probe(&host, &a)),
            host,
        })
        .collect()
}

/// One `GET /api/v1/lb` to a host's updater, with its credentials; none is made when the
/// controller refuses them (the probe is that problem, as `Config`).
pub fn probe(host: &LbHost, auth: &Auth) -> Probe {
    use crate::updater::Error;
    let auth = auth.clone().map_err(|p| Error::Config(p.message))?;
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        call: Duration::from_secs(15),
    };
    let endpoint = crate::model::url::updater_endpoint(&host.url)
        .map_err(|e| Error::Config(format!("httpUpdaterURL {:?}: {e}", host.url)))?;
    let client =
        UpdaterClient::new(&endpoint, auth, timeouts).map_err(|e| Error::Config(e.to_string()))?;
    let mut backends = Vec::new();
    let listed = client.list_each(|b| backends.push(b.request))?;
    let version = listed.version;
    Ok(Listing { backends, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_read_names_the_permission_with_group_and_scope() {
        let e = Error::Unauthorized {
            server: "https://127.0.0.1:6443".into(),
        };
        let r = read_error("list", &LOADBALANCERS, None, "in all namespaces", &e);
        assert_eq!(
            (r.what.as_str(), r.needs.as_str()),
            (
                "list loadbalancers in all namespaces",
                "list loadbalancers.lb.paperlb.com in all namespaces",
            )
        );
        let e = Error::Http {
            code: 500,
            body: "boom".into(),
            retry_after: None,
        };
        let r = read_error("get", &SERVICES, Some("default"), "default/web", &e);
        assert_eq!(
            (r.what.as_str(), r.needs.as_str()),
            (
                "get services default/web",
                "get services in namespace default",
            )
        );
    }
}
