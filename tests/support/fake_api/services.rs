//! Service registry logic: defaults, minimal validation, type-dependent field wiping and the
//! nodePort / healthCheckNodePort / clusterIP allocators (k/k pkg/registry/core/service).
//! Pure: the caller passes in what other Services hold and a random source.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::resources::SERVICES;
use super::status::{self, ApiError, Cause};

/// What the rest of the cluster already holds, and where to allocate from.
pub struct Alloc<'a> {
    pub node_ports_in_use: &'a BTreeSet<u16>,
    pub cluster_ips_in_use: &'a BTreeSet<String>,
    pub range: (u16, u16),
    pub rng: &'a mut dyn FnMut() -> u64,
}

fn port_num(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// Prepares a Service for create (`old` = None) or update, then validates it.
pub fn prepare(
    svc: &mut Value,
    old: Option<&Value>,
    alloc: &mut Alloc<'_>,
) -> Result<(), ApiError> {
    let name = svc["metadata"]["name"].as_str().unwrap_or("").to_string();
    if !svc["spec"].is_object() {
        svc["spec"] = json!({});
    }
    let old_spec = old.map(|o| o["spec"].clone()).unwrap_or(Value::Null);
    let old_type = old_spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    let spec = svc["spec"].as_object_mut().expect("spec is an object");
    let ty = spec
        .entry("type")
        .or_insert_with(|| json!("ClusterIP"))
        .as_str()
        .unwrap_or("")
        .to_string();
    let mut causes = Vec::new();

    // Defaults for each port.
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert_with(|| json!("TCP"));
            if !p.contains_key("targetPort") {
                let port = p.get("port").cloned().unwrap_or(Value::Null);
                p.insert("targetPort".into(), port);
            }
        }
    }

    // Fields that only make sense for some types are wiped when the type changes.
    let is_lb = ty == "LoadBalancer";
    let needs_node_ports = ty == "NodePort" || is_lb;
    if !needs_node_ports {
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
        spec.remove("healthCheckNodePort");
        spec.remove("externalTrafficPolicy");
        spec.remove("allocateLoadBalancerNodePorts");
    }
    if old.is_some() && old_type == "LoadBalancer" && !is_lb {
        spec.remove("loadBalancerClass");
        spec.remove("allocateLoadBalancerNodePorts");
    }
    if ty == "NodePort" {
        spec.remove("allocateLoadBalancerNodePorts");
    }

    // Defaults.
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));
    if ty != "ExternalName" {
        spec.entry("internalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
        spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
        spec.entry("ipFamilyPolicy")
            .or_insert_with(|| json!("SingleStack"));
    }
    if needs_node_ports {
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
    }
    if is_lb {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert_with(|| json!(true));
    }

    // Validation.
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty.as_str()) {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.type",
            format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        ));
    }
    let ports: Vec<Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.ports",
            "Required value",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pname = p["name"].as_str().unwrap_or("");
        if pname.is_empty() && ports.len() > 1 {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("spec.ports[{i}].name"),
                "Required value",
            ));
        } else if !pname.is_empty() && !names.insert(pname.to_string()) {
            causes.push(Cause::new(
                "FieldValueDuplicate",
                format!("spec.ports[{i}].name"),
                format!("Duplicate value: \"{pname}\""),
            ));
        }
        let range_msg =
            |v: &Value| format!("Invalid value: {v}: must be between 1 and 65535, inclusive");
        match port_num(&p["port"]) {
            Some(n) if (1..=65535).contains(&n) => {}
            _ => causes.push(Cause::new(
                "FieldValueInvalid",
                format!("spec.ports[{i}].port"),
                range_msg(&p["port"]),
            )),
        }
        let proto = p["protocol"].as_str().unwrap_or("");
        if !["TCP", "UDP", "SCTP"].contains(&proto) {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                format!("spec.ports[{i}].protocol"),
                format!(
                    "Unsupported value: \"{proto}\": supported values: \"SCTP\", \"TCP\", \"UDP\""
                ),
            ));
        }
        match &p["targetPort"] {
            Value::Number(n) if n.as_i64().is_some_and(|n| (1..=65535).contains(&n)) => {}
            Value::String(s) if !s.is_empty() => {}
            other => causes.push(Cause::new(
                "FieldValueInvalid",
                format!("spec.ports[{i}].targetPort"),
                range_msg(other),
            )),
        }
    }
    let class = spec
        .get("loadBalancerClass")
        .cloned()
        .unwrap_or(Value::Null);
    if !class.is_null() && !is_lb {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.loadBalancerClass",
            format!("Invalid value: {class}: may only be used when `type` is 'LoadBalancer'"),
        ));
    }
    if old.is_some() && old_type == "LoadBalancer" && is_lb {
        let old_class = old_spec["loadBalancerClass"].clone();
        if old_class != class {
            let shown = if class.is_null() {
                "\"null\"".to_string()
            } else {
                class.to_string()
            };
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.loadBalancerClass",
                format!("Invalid value: {shown}: may not change once set"),
            ));
        }
    }
    if let Some(etp) = spec.get("externalTrafficPolicy").and_then(Value::as_str)
        && etp != "Cluster"
        && etp != "Local"
    {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "spec.externalTrafficPolicy",
            format!("Unsupported value: \"{etp}\": supported values: \"Cluster\", \"Local\""),
        ));
    }
    if !causes.is_empty() {
        return Err(status::invalid_kind(&SERVICES, &name, &causes));
    }

    // clusterIP is allocated once and immutable.
    if ty != "ExternalName" {
        let old_ip = old_spec["clusterIP"].clone();
        let ip = match spec.get("clusterIP").and_then(Value::as_str) {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ if old_ip.is_string() => old_ip.as_str().unwrap_or("").to_string(),
            _ => allocate_cluster_ip(alloc),
        };
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
    }

    if needs_node_ports {
        assign_node_ports(spec, &old_spec, old_type.as_str(), is_lb, &name, alloc)?;
    }

    if !is_lb {
        svc["status"] = json!({"loadBalancer": {}});
    }
    Ok(())
}

fn allocate_cluster_ip(alloc: &mut Alloc<'_>) -> String {
    for _ in 0..10_000 {
        let r = (alloc.rng)();
        let ip = format!("10.96.{}.{}", (r >> 8) % 256, 2 + r % 252);
        if !alloc.cluster_ips_in_use.contains(&ip) {
            return ip;
        }
    }
    "10.96.0.2".to_string()
}

fn allocate_one(alloc: &mut Alloc<'_>, taken: &BTreeSet<u16>) -> Option<u16> {
    let (lo, hi) = alloc.range;
    let size = u64::from(hi.saturating_sub(lo)) + 1;
    let start = (alloc.rng)() % size;
    (0..size)
        .map(|i| lo + ((start + i) % size) as u16)
        .find(|p| !alloc.node_ports_in_use.contains(p) && !taken.contains(p))
}

fn assign_node_ports(
    spec: &mut Map<String, Value>,
    old_spec: &Value,
    old_type: &str,
    is_lb: bool,
    name: &str,
    alloc: &mut Alloc<'_>,
) -> Result<(), ApiError> {
    let allocate = !is_lb || spec["allocateLoadBalancerNodePorts"] != json!(false);
    let old_needed = old_type == "NodePort" || old_type == "LoadBalancer";
    let mut ports: Vec<Value> = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // A port left without a nodePort keeps the one it had under the same name.
    if old_needed {
        let in_new: BTreeSet<i64> = ports
            .iter()
            .filter_map(|p| p["nodePort"].as_i64())
            .collect();
        if let Some(old_ports) = old_spec["ports"].as_array() {
            for p in ports.iter_mut() {
                if p["nodePort"].as_i64().unwrap_or(0) != 0 {
                    continue;
                }
                let old = old_ports.iter().find(|o| o["name"] == p["name"]);
                if let Some(np) = old.and_then(|o| o["nodePort"].as_i64())
                    && !in_new.contains(&np)
                {
                    p["nodePort"] = json!(np);
                }
            }
        }
        if spec.get("healthCheckNodePort").is_none()
            && let Some(h) = old_spec.get("healthCheckNodePort")
        {
            spec.insert("healthCheckNodePort".into(), h.clone());
        }
    }
    let (lo, hi) = alloc.range;
    let mut causes = Vec::new();
    let mut taken: BTreeSet<u16> = BTreeSet::new();
    // Requested ports first: range and conflicts with other Services.
    for (i, p) in ports.iter().enumerate() {
        let Some(np) = p["nodePort"].as_i64().filter(|n| *n != 0) else {
            continue;
        };
        if np < i64::from(lo) || np > i64::from(hi) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("spec.ports[{i}].nodePort"),
                format!("Invalid value: {np}: provided port is not in the valid range. The range of valid ports is {lo}-{hi}"),
            ));
        } else if alloc.node_ports_in_use.contains(&(np as u16)) {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("spec.ports[{i}].nodePort"),
                format!("Invalid value: {np}: provided port is already allocated"),
            ));
        } else {
            taken.insert(np as u16);
        }
    }
    if !causes.is_empty() {
        return Err(status::invalid_kind(&SERVICES, name, &causes));
    }
    if allocate {
        for i in 0..ports.len() {
            if ports[i]["nodePort"].as_i64().unwrap_or(0) != 0 {
                continue;
            }
            // The same port number under another protocol shares its nodePort.
            let shared = ports.iter().enumerate().find_map(|(j, q)| {
                (j != i && q["port"] == ports[i]["port"] && q["protocol"] != ports[i]["protocol"])
                    .then(|| q["nodePort"].as_i64())
                    .flatten()
                    .filter(|n| *n != 0)
            });
            let np = match shared {
                Some(n) => n as u16,
                None => allocate_one(alloc, &taken).ok_or_else(|| {
                    status::internal("failed to allocate a nodePort: range is full")
                })?,
            };
            taken.insert(np);
            ports[i]["nodePort"] = json!(np);
        }
    }
    spec.insert("ports".into(), Value::Array(ports));
    let local = spec.get("externalTrafficPolicy") == Some(&json!("Local"));
    if is_lb && local {
        let current = spec
            .get("healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if current == 0 {
            let hc = allocate_one(alloc, &taken)
                .ok_or_else(|| status::internal("failed to allocate a nodePort: range is full"))?;
            spec.insert("healthCheckNodePort".into(), json!(hc));
        }
    } else {
        spec.remove("healthCheckNodePort");
    }
    Ok(())
}

/// The nodePorts and healthCheckNodePort a stored Service holds.
pub fn node_ports_of(svc: &Value) -> impl Iterator<Item = u16> + '_ {
    let ports = svc["spec"]["ports"].as_array().into_iter().flatten();
    ports
        .filter_map(|p| p["nodePort"].as_u64())
        .chain(svc["spec"]["healthCheckNodePort"].as_u64())
        .map(|n| n as u16)
}
