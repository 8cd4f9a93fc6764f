use super::*;
use serde_json::json;

/// The body of a recorded apiserver response (after the blank line ending the head).
fn fixture_body(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/apiserver/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[test]
fn decodes_recorded_service_with_shared_node_port() {
    let svc: Service =
        serde_json::from_str(&fixture_body("service-create-dns-shared-nodeport.http")).unwrap();
    assert_eq!(svc.metadata.name, "dns");
    assert_eq!(svc.spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(svc.spec.ports.len(), 2);
    assert_eq!(svc.spec.ports[0].node_port, svc.spec.ports[1].node_port);
    assert_eq!(svc.spec.allocate_load_balancer_node_ports, Some(true));
}

#[test]
fn decodes_recorded_loadbalancer_and_node() {
    let lb: LoadBalancer =
        serde_json::from_str(&fixture_body("loadbalancer-get-deleting.http")).unwrap();
    assert!(lb.metadata.is_deleting());
    assert!(lb.metadata.generation.is_some());
    let node: Node = serde_json::from_str(&fixture_body("node-get.http")).unwrap();
    assert_eq!(node.metadata.name, "node-a");
}

#[test]
fn null_lists_decode_as_empty() {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "web-abc", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
        "endpoints": null, "ports": null
    }))
    .unwrap();
    assert!(slice.endpoints.is_empty());
    assert_eq!(slice.service_name(), Some("web"));
    let slice: EndpointSlice = serde_json::from_value(json!({
        "endpoints": [{"addresses": null, "conditions": {}, "nodeName": "n1"}]
    }))
    .unwrap();
    assert!(slice.endpoints[0].is_ready());
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": "a", "finalizers": null}, "spec": {"ports": null}, "status": null}),
    )
    .unwrap();
    assert!(svc.spec.ports.is_empty());
}

#[test]
fn mangled_config_decodes_and_validation_names_the_field() {
    let cases = [
        (json!({"low": "8000", "high": 8100}), Ok((8000, 8100))),
        (json!({"low": 8000.0, "high": "8100"}), Ok((8000, 8100))),
        (
            json!({"low": "eight", "high": 8100}),
            Err("spec.portRange.low: \"eight\" is not an integer"),
        ),
        (json!({"high": 8100}), Err("spec.portRange.low is missing")),
        (
            json!({"low": 9000, "high": 8100}),
            Err("spec.portRange: low 9000 is greater than high 8100"),
        ),
        (
            json!({"low": 0, "high": 8100}),
            Err("spec.portRange.low: 0 is outside 1-65535"),
        ),
        (
            json!({"low": 8000, "high": 70000}),
            Err("spec.portRange.high: 70000 is outside 1-65535"),
        ),
        (json!("8000-8100"), Err("spec.portRange.low is missing")),
    ];
    for (range, want) in cases {
        let cfg: LoadBalancerConfig = serde_json::from_value(json!({
            "metadata": {"name": "edge", "namespace": "paperlb-system"},
            "spec": {"default": "true", "httpUpdaterURL": "http://10.0.0.1:3000", "host": "203.0.113.7", "portRange": range}
        }))
        .unwrap();
        assert!(cfg.is_default());
        let got = cfg.validate().map(|c| (c.low, c.high));
        assert_eq!(got, want.map_err(String::from), "range {range}");
    }
}

#[test]
fn config_validation_rejects_bad_url_and_host() {
    let base = json!({"httpUpdaterURL": "http://10.0.0.1:3000", "host": "lb.example.com",
        "portRange": {"low": 1, "high": 2}});
    let cases = [
        (
            "httpUpdaterURL",
            json!("10.0.0.1:3000"),
            "spec.httpUpdaterURL \"10.0.0.1:3000\": must start with http:// or https://",
        ),
        (
            "httpUpdaterURL",
            json!(42),
            "spec.httpUpdaterURL: 42 is not a string",
        ),
        ("host", json!(""), "spec.host \"\": is empty"),
        (
            "host",
            json!("a b"),
            "spec.host \"a b\": is neither an IP address nor a DNS name",
        ),
        (
            "host",
            json!("[2001:db8::10]"),
            "spec.host \"[2001:db8::10]\": write an IPv6 address without brackets (2001:db8::10)",
        ),
        (
            "proxyTimeoutSeconds",
            json!(-1),
            "spec.proxyTimeoutSeconds: -1 is outside 0-604800 (the updater's limit)",
        ),
        (
            "proxyTimeoutSeconds",
            json!(700_000),
            "spec.proxyTimeoutSeconds: 700000 is outside 0-604800 (the updater's limit)",
        ),
        (
            "proxyConnectTimeoutSeconds",
            json!(604_801),
            "spec.proxyConnectTimeoutSeconds: 604801 is outside 0-604800 (the updater's limit)",
        ),
        (
            "targetAddressTypes",
            json!(["Hostname"]),
            "spec.targetAddressTypes[0]: \"Hostname\" is not ExternalIP or InternalIP",
        ),
    ];
    for (field, value, want) in cases {
        let mut spec = base.clone();
        spec[field] = value;
        let cfg: LoadBalancerConfig = serde_json::from_value(json!({"spec": spec})).unwrap();
        assert_eq!(cfg.validate(), Err(want.to_string()), "{field}");
    }
    let mut v6 = base.clone();
    v6["host"] = json!("2001:db8::10");
    let cfg: LoadBalancerConfig = serde_json::from_value(json!({"spec": v6})).unwrap();
    assert_eq!(cfg.validate().unwrap().hosts[0].host, "2001:db8::10");
    let cfg: LoadBalancerConfig = serde_json::from_value(json!({"spec": base})).unwrap();
    let valid = cfg.validate().unwrap();
    assert!(
        valid.address_types.is_empty(),
        "unset: the controller default applies"
    );
    assert_eq!(valid.proxy_timeout_seconds, 0);
    let mut longest = base.clone();
    longest["proxyTimeoutSeconds"] = json!(604_800);
    let cfg: LoadBalancerConfig = serde_json::from_value(json!({"spec": longest})).unwrap();
    assert_eq!(cfg.validate().unwrap().proxy_timeout_seconds, 604_800);
}

#[test]
fn go_style_loadbalancer_reads_as_one_port() {
    let lb: LoadBalancer = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "fixtures"},
        "spec": {"configName": "edge", "httpUpdater": {"url": "http://10.0.0.1:3000"}, "host": "203.0.113.7",
                 "port": "8100", "protocol": "TCP",
                 "targets": [{"host": "10.0.0.12", "port": 31000}, {"host": "10.0.0.11", "port": 31000}]},
        "status": {"phase": "READY", "targetCount": "two"}
    }))
    .unwrap();
    assert_eq!(lb.status, LoadBalancerStatus::default());
    let spec = LbSpec::from_resource(&lb.spec).unwrap();
    assert_eq!(spec.ports.len(), 1);
    assert_eq!(spec.ports[0].port, 8100);
    assert_eq!(spec.ports[0].targets[0].host, "10.0.0.11");
    // The Go form lacks `ports`, so it does not match our stored form and gets rewritten once.
    assert!(!spec.matches(&lb.spec));
    let stored: LoadBalancerSpec = serde_json::from_value(spec.to_json()).unwrap();
    assert!(spec.matches(&stored));
    assert_eq!(LbSpec::from_resource(&stored).unwrap(), spec);
}

#[test]
fn the_first_ports_targets_are_written_once_and_the_earlier_double_form_still_matches() {
    let lb: LoadBalancer = serde_json::from_value(json!({"spec": {
        "configName": "edge", "httpUpdater": {"url": "http://127.0.0.1:3000"}, "host": "127.0.0.10",
        "ports": [
            {"port": 8100, "protocol": "TCP", "targets": [{"host": "127.0.0.2", "port": 31000}]},
            {"name": "dns", "port": 8101, "protocol": "UDP", "targets": [{"host": "127.0.0.2", "port": 31001}]}]}}))
    .unwrap();
    let spec = LbSpec::from_resource(&lb.spec).unwrap();
    let json = spec.to_json();
    assert_eq!(
        json["targets"],
        json!([{"host": "127.0.0.2", "port": 31000}])
    );
    assert_eq!(json["ports"][0].get("targets"), None, "{json}");
    assert_eq!(
        json["ports"][1]["targets"],
        json!([{"host": "127.0.0.2", "port": 31001}])
    );
    let stored: LoadBalancerSpec = serde_json::from_value(json).unwrap();
    assert_eq!(LbSpec::from_resource(&stored).unwrap(), spec);
    assert!(spec.matches(&stored));
    // What earlier versions wrote (the first port's targets in both places) matches: no write.
    let mut double = spec.to_json();
    double["ports"][0]["targets"] = double["targets"].clone();
    let double: LoadBalancerSpec = serde_json::from_value(double).unwrap();
    assert!(spec.matches(&double));
}

#[test]
fn a_spec_holds_only_what_is_set_and_the_earlier_full_form_still_matches() {
    let plain: LoadBalancerSpec = serde_json::from_value(json!({
        "configName": "edge", "httpUpdater": {"url": "http://127.0.0.1:3000"}, "host": "127.0.0.10",
        "port": 8100, "protocol": "TCP", "targets": [{"host": "127.0.0.2", "port": 31000}],
        "ports": [{"name": "", "port": 8100, "protocol": "TCP"}]}))
    .unwrap();
    let spec = LbSpec::from_resource(&plain).unwrap();
    let json = spec.to_json();
    for unset in [
        "proxyTimeoutSeconds",
        "proxyConnectTimeoutSeconds",
        "sourceRanges",
        "proxyProtocol",
        "healthCheck",
        "hosts",
        "balance",
    ] {
        assert_eq!(json[unset], serde_json::Value::Null, "{unset}: {json}");
    }
    // What the previous version wrote (every field, at its default) matches: no write on upgrade.
    let mut full = json.clone();
    for (k, v) in [
        ("proxyTimeoutSeconds", json!(0)),
        ("proxyConnectTimeoutSeconds", json!(0)),
        ("sourceRanges", json!([])),
        ("proxyProtocol", json!(false)),
    ] {
        full[k] = v;
    }
    let full_spec: LoadBalancerSpec = serde_json::from_value(full).unwrap();
    assert!(spec.matches(&full_spec));
    // A spec patch over a spec with everything set removes all of it, nested timings included.
    let mut set = json.clone();
    set["proxyTimeoutSeconds"] = json!(60);
    set["sourceRanges"] = json!(["127.0.0.0/8"]);
    set["proxyProtocol"] = json!(true);
    set["balance"] = json!("hash");
    set["healthCheck"] = json!({"type": "tcp", "intervalSeconds": 5, "healthyThreshold": 2});
    let mut with_check = spec.clone();
    with_check.traffic.health_check = Some(LbHealthCheck {
        kind: "tcp".into(),
        port: None,
        path: String::new(),
        timings: Default::default(),
    });
    let mut after = set;
    crate::model::merge_patch(&mut after, &with_check.to_json());
    let check = after["healthCheck"].as_object().unwrap();
    assert!(
        check.keys().all(|k| ["type", "path"].contains(&k.as_str())),
        "{after}"
    );
    for gone in [
        "proxyTimeoutSeconds",
        "sourceRanges",
        "proxyProtocol",
        "balance",
    ] {
        assert!(after.get(gone).is_none(), "{gone}: {after}");
    }
    let stored: LoadBalancerSpec = serde_json::from_value(after).unwrap();
    assert!(with_check.matches(&stored));
}

#[test]
fn mangled_loadbalancer_spec_is_reported_not_fatal() {
    let cases = [
        (
            json!({"host": "h", "port": 80}),
            "spec.httpUpdater.url is missing",
        ),
        (
            json!({"httpUpdater": {"url": "http://u"}, "host": "h", "port": 80, "protocol": "SCTP"}),
            "spec.protocol: \"SCTP\" is not TCP or UDP",
        ),
        (
            json!({"httpUpdater": {"url": "http://u"}, "host": "h", "ports": [{"port": 1, "targets": [{"host": "n", "port": "x"}]}]}),
            "spec.ports[0].targets[0].port: \"x\" is not an integer",
        ),
        // The first port's targets written as the Go field: the error names that field.
        (
            json!({"httpUpdater": {"url": "http://u"}, "host": "h", "ports": [{"port": 1}], "targets": [{"host": "n", "port": 2}, {"host": "n", "port": "x"}]}),
            "spec.targets[1].port: \"x\" is not an integer",
        ),
        (
            json!({"httpUpdater": {"url": "http://u"}, "host": "h", "port": 1, "targets": [{"port": 2}]}),
            "spec.targets[0].host is missing",
        ),
        (
            json!({"httpUpdater": {"url": "http://u"}, "host": "h", "ports": [{"port": 1}, {"port": 2, "targets": [{"host": "n"}]}], "targets": [{"host": "n", "port": 2}]}),
            "spec.ports[1].targets[0].port is missing",
        ),
        (
            json!({"httpUpdater": {"url": "http://u"}, "host": "h", "ports": [{"port": 1}, {"port": 1}]}),
            "spec.ports[1]: port 1/TCP is listed twice",
        ),
        (
            json!({"httpUpdater": {"url": "http://u"}, "host": "h", "ports": [{"port": 1}], "proxyTimeoutSeconds": 700_000}),
            "spec.proxyTimeoutSeconds: 700000 is outside 0-604800 (the updater's limit)",
        ),
    ];
    for (spec, want) in cases {
        let lb: LoadBalancer = serde_json::from_value(json!({"spec": spec})).unwrap();
        assert_eq!(LbSpec::from_resource(&lb.spec), Err(want.to_string()));
    }
}

fn crd(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/manifests/crds/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Printer columns as (name, jsonPath), by a line scan (the YAML parser lives elsewhere).
fn printer_columns(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut name = None;
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- name: ") {
            name = Some(n.to_string());
        } else if let Some(p) = line.strip_prefix("jsonPath: ")
            && let Some(n) = name.take()
        {
            out.push((n, p.to_string()));
        }
    }
    out
}

/// Every schema node (a `type:` line under openAPIV3Schema) has a `description:` sibling, so
/// `kubectl explain` has something to say for every field. `metadata` is the exception: the apiserver
/// rejects anything but its type there.
fn undocumented_nodes(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "openAPIV3Schema:")
        .unwrap();
    let mut missing = Vec::new();
    for i in start..lines.len() {
        if !lines[i].trim_start().starts_with("type: ") || lines[i - 1].trim() == "metadata:" {
            continue;
        }
        let n = indent(lines[i]);
        let sibling = |j: &usize| indent(lines[*j]) == n;
        let up = (start..i).rev().take_while(|j| indent(lines[*j]) >= n);
        let down = (i + 1..lines.len()).take_while(|j| indent(lines[*j]) >= n);
        let documented = up
            .chain(down)
            .filter(sibling)
            .any(|j| lines[j].trim_start().starts_with("description:"));
        if !documented {
            missing.push(i + 1);
        }
    }
    missing
}

#[test]
fn loadbalancer_crd_has_columns_fields_and_descriptions() {
    let text = crd("loadbalancers.yaml");
    let cols = printer_columns(&text);
    let want = [
        ("HOST", ".spec.host"),
        ("PORT", ".spec.port"),
        ("PROTOCOL", ".spec.protocol"),
        ("TARGETCOUNT", ".status.targetCount"),
        ("STATUS", ".status.phase"),
        ("HOSTS", ".status.hosts"),
        ("HEALTHY", ".status.healthy"),
        ("AGE", ".metadata.creationTimestamp"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(cols, want);
    assert_eq!(undocumented_nodes(&text), Vec::<usize>::new());
    for needle in [
        "name: loadbalancers.lb.paperlb.com",
        "subresources:\n      status: {}",
        "required: [host, httpUpdater]",
        "enum: [TCP, UDP]",
        "enum: [PENDING, READY, DEGRADED, ERROR]",
        "x-kubernetes-validations:",
        "x-kubernetes-list-map-keys: [type]",
    ] {
        assert!(text.contains(needle), "missing {needle:?}");
    }
    // The Go project's fields are all still there.
    for field in [
        "configName:",
        "httpUpdater:",
        "url:",
        "host:",
        "port:",
        "protocol:",
        "targets:",
        "phase:",
        "targetCount:",
    ] {
        assert!(
            text.lines().any(|l| l.trim() == field),
            "missing Go field {field}"
        );
    }
}

#[test]
fn config_crd_has_columns_fields_and_descriptions() {
    let text = crd("loadbalancerconfigs.yaml");
    let names: Vec<String> = printer_columns(&text).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["HOST", "URL", "DEFAULT", "LOW", "HIGH", "ACCEPTED", "AGE"]
    );
    assert_eq!(undocumented_nodes(&text), Vec::<usize>::new());
    for needle in [
        "name: loadbalancerconfigs.lb.paperlb.com",
        "required: [portRange]",
        "maxItems: 16",
        "pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        "required: [low, high]",
        "rule: self.low <= self.high",
        "maximum: 65535",
    ] {
        assert!(text.contains(needle), "missing {needle:?}");
    }
    for field in [
        "default:",
        "httpUpdaterURL:",
        "host:",
        "portRange:",
        "low:",
        "high:",
    ] {
        assert!(
            text.lines().any(|l| l.trim() == field),
            "missing Go field {field}"
        );
    }
}

#[test]
fn example_config_is_valid() {
    // The example is plain YAML; its values are checked through the same validation as live objects.
    let text = std::fs::read_to_string(format!(
        "{}/manifests/examples/loadbalancerconfig.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for needle in [
        "kind: LoadBalancerConfig",
        "httpUpdaterURL: http://203.0.113.7:3000",
        "low: 8000",
        "high: 8999",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    let cfg: LoadBalancerConfig = serde_json::from_value(json!({
        "metadata": {"name": "edge", "namespace": "paperlb-system"},
        "spec": {"default": true, "httpUpdaterURL": "http://203.0.113.7:3000", "host": "203.0.113.7",
                 "portRange": {"low": 8000, "high": 8999}, "targetAddressTypes": ["ExternalIP", "InternalIP"],
                 "proxyTimeoutSeconds": 0, "proxyConnectTimeoutSeconds": 0}
    }))
    .unwrap();
    assert!(cfg.validate().is_ok());
}

/// What the forgiving decoders must give for odd shapes, decoded from text as a watch stream is
/// (no `Value` in between) and from a `Value` as tests build objects: the same answer both ways.
#[test]
fn odd_loadbalancer_shapes_decode_the_same_from_text_and_value() {
    fn target(host: &str, port: i64) -> TargetSpec {
        TargetSpec {
            host: Lenient::valid(host.into()),
            port: Lenient::valid(port),
        }
    }
    type Check = fn(&LoadBalancer) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        (r#"{"spec": "nonsense"}"#, |l| {
            l.spec == LoadBalancerSpec::default()
        }),
        (r#"{"spec": [1, {"a": 2}]}"#, |l| {
            l.spec == LoadBalancerSpec::default()
        }),
        (r#"{"spec": null, "status": {"phase": "READY"}}"#, |l| {
            l.spec == LoadBalancerSpec::default() && l.status.phase.as_deref() == Some("READY")
        }),
        (r#"{"spec": {"port": "8080", "host": 5}}"#, |l| {
            l.spec.port == Lenient::valid(8080)
                && l.spec.host == Lenient::Invalid(Box::new(json!(5)))
        }),
        (r#"{"spec": {"port": 8080.0, "protocol": ["TCP"]}}"#, |l| {
            l.spec.port == Lenient::valid(8080)
                && l.spec.protocol == Lenient::Invalid(Box::new(json!(["TCP"])))
        }),
        (
            r#"{"spec": {"port": 1e300, "configName": {"x": 1}}}"#,
            |l| {
                matches!(l.spec.port, Lenient::Invalid(_))
                    && l.spec.config_name == Lenient::Invalid(Box::new(json!({"x": 1})))
            },
        ),
        (r#"{"spec": {"port": 18446744073709551615}}"#, |l| {
            matches!(l.spec.port, Lenient::Invalid(_))
        }),
        (
            r#"{"spec": {"targets": "n1:80", "ports": {"a": 1}, "httpUpdater": 3}}"#,
            |l| {
                l.spec.targets.is_empty()
                    && l.spec.ports.is_empty()
                    && l.spec.http_updater.url.is_missing()
            },
        ),
        (
            r#"{"spec": {"targets": [{"host": "a", "port": 1}, "b", {"host": "c", "port": 2}]}}"#,
            |l| l.spec.targets.is_empty(),
        ),
        (
            r#"{"spec": {"targets": [{"host": "a", "port": "1", "extra": [1]}, {"host": "c", "port": 2}]}}"#,
            |l| *l.spec.targets == [target("a", 1), target("c", 2)],
        ),
        (
            r#"{"spec": {"ports": [{"name": "x", "port": 1, "targets": [[1], {"host": "a"}]}, {"port": 2}]}}"#,
            |l| {
                l.spec.ports.len() == 2
                    && l.spec.ports[0].targets.is_empty()
                    && l.spec.ports[1].port == Lenient::valid(2)
            },
        ),
        (
            r#"{"spec": {"httpUpdater": {"url": "http://u", "url2": null}, "host": null}}"#,
            |l| {
                l.spec.http_updater.url == Lenient::valid("http://u".to_string())
                    && l.spec.host.is_missing()
            },
        ),
    ];
    for (text, check) in cases {
        let streamed: LoadBalancer =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let buffered: LoadBalancer = serde_json::from_value(value).unwrap();
        assert_eq!(streamed, buffered, "{text}");
        assert!(check(&streamed), "{text}: {streamed:?}");
    }
    // A list of them, as a LIST body carries: one odd spec never fails its neighbours.
    let list: Vec<LoadBalancer> =
        serde_json::from_str(r#"[{"spec": 1}, {"spec": {"port": "x"}}, {"spec": {"port": 3}}]"#)
            .unwrap();
    assert_eq!(list[2].spec.port, Lenient::valid(3));
}

#[test]
fn updater_auth_fields_are_optional_defaulted_and_checked_by_name() {
    let base = json!({"httpUpdaterURL": "https://127.0.0.1:3000", "host": "127.0.0.1",
                      "portRange": {"low": 8000, "high": 8100}});
    let valid = |spec: &serde_json::Value| -> Result<ValidConfig, String> {
        let cfg: LoadBalancerConfig = serde_json::from_value(json!({"spec": spec})).unwrap();
        cfg.validate()
    };
    // Go YAML: nothing set, nothing required.
    assert_eq!(valid(&base).unwrap().auths[0], AuthRefs::default());

    let mut spec = base.clone();
    spec["updaterTokenSecretRef"] = json!({"name": "lb-token"});
    spec["updaterCASecretRef"] = json!({"name": "lb-ca", "key": "root.pem"});
    let auth = valid(&spec).unwrap().auths[0].clone();
    assert_eq!(
        auth.token,
        Some(SecretRef {
            name: "lb-token".into(),
            key: "token".into()
        })
    );
    assert_eq!(
        auth.ca,
        Some(SecretRef {
            name: "lb-ca".into(),
            key: "root.pem".into()
        })
    );
    assert!(!auth.insecure_skip_verify);
    let mut spec = base.clone();
    spec["updaterCASecretRef"] = json!({"name": "lb-ca"});
    assert_eq!(
        valid(&spec).unwrap().auths[0].clone().ca.unwrap().key,
        "ca.crt"
    );
    let mut spec = base.clone();
    spec["insecureSkipVerify"] = json!("true");
    assert!(valid(&spec).unwrap().auths[0].insecure_skip_verify);

    let cases = [
        (
            "updaterTokenSecretRef",
            json!("lb-token"),
            "spec.updaterTokenSecretRef: \"lb-token\" is not an object {name, key}",
        ),
        (
            "updaterTokenSecretRef",
            json!({"key": "t"}),
            "spec.updaterTokenSecretRef.name is missing",
        ),
        (
            "updaterTokenSecretRef",
            json!({"name": "Bad_Name"}),
            "spec.updaterTokenSecretRef.name \"Bad_Name\": is not a Secret name (lowercase letters, digits, '-' and '.')",
        ),
        (
            "updaterCASecretRef",
            json!({"name": "ca", "key": "a/b"}),
            "spec.updaterCASecretRef.key \"a/b\": is not a Secret key (letters, digits, '-', '_', '.')",
        ),
        (
            "updaterCASecretRef",
            json!({"name": "ca", "key": 7}),
            "spec.updaterCASecretRef.key: 7 is not a string",
        ),
        (
            "insecureSkipVerify",
            json!("maybe"),
            "spec.insecureSkipVerify: \"maybe\" is not a boolean",
        ),
    ];
    for (field, value, want) in cases {
        let mut spec = base.clone();
        spec[field] = value;
        assert_eq!(valid(&spec), Err(want.to_string()), "{field}");
    }
    let mut spec = base.clone();
    spec["updaterCASecretRef"] = json!({"name": "ca"});
    spec["insecureSkipVerify"] = json!(true);
    assert!(
        valid(&spec)
            .unwrap_err()
            .starts_with("spec.updaterCASecretRef and spec.insecureSkipVerify")
    );
}

#[test]
fn config_health_check_override_is_optional_and_each_bad_field_is_named() {
    let base = json!({"httpUpdaterURL": "http://127.0.0.1:3000", "host": "127.0.0.1",
                      "portRange": {"low": 8000, "high": 8100}});
    let valid = |hc: Option<serde_json::Value>| -> Result<HealthOverride, String> {
        let mut spec = base.clone();
        if let Some(hc) = hc {
            spec["healthCheck"] = hc;
        }
        let cfg: LoadBalancerConfig = serde_json::from_value(json!({"spec": spec})).unwrap();
        cfg.validate().map(|v| v.health_check)
    };
    assert_eq!(valid(None), Ok(HealthOverride::Derived), "Go YAML");
    assert_eq!(
        valid(Some(json!({"type": "none"}))),
        Ok(HealthOverride::Off)
    );
    assert_eq!(
        valid(Some(
            json!({"type": "tcp", "port": 8081, "intervalSeconds": 5,
            "timeoutSeconds": 2, "unhealthyThreshold": 3, "healthyThreshold": 1})
        )),
        Ok(HealthOverride::Check {
            kind: Some("tcp".into()),
            port: Some(8081),
            path: None,
            timings: CheckTimings {
                interval_seconds: Some(5),
                timeout_seconds: Some(2),
                unhealthy_threshold: Some(3),
                healthy_threshold: Some(1),
            },
        })
    );
    let cases = [
        (json!("tcp"), "spec.healthCheck: \"tcp\" is not an object"),
        (
            json!({"type": "udp"}),
            "spec.healthCheck.type \"udp\": must be tcp, http or none",
        ),
        (
            json!({"port": 0}),
            "spec.healthCheck.port: 0 is outside 1-65535",
        ),
        (
            json!({"port": 70000}),
            "spec.healthCheck.port: 70000 is outside 1-65535",
        ),
        (
            json!({"port": "x"}),
            "spec.healthCheck.port: \"x\" is not an integer",
        ),
        (
            json!({"path": "/a b"}),
            "spec.healthCheck.path \"/a b\": must start with / and hold at most 1024 visible ASCII \
             characters (no spaces or control characters)",
        ),
        (
            json!({"path": "healthz"}),
            "spec.healthCheck.path \"healthz\": must start with / and hold at most 1024 visible \
             ASCII characters (no spaces or control characters)",
        ),
        (
            json!({"intervalSeconds": 0}),
            "spec.healthCheck.intervalSeconds: 0 is outside 1-3600",
        ),
        (
            json!({"timeoutSeconds": 3601}),
            "spec.healthCheck.timeoutSeconds: 3601 is outside 1-3600",
        ),
        (
            json!({"unhealthyThreshold": -1}),
            "spec.healthCheck.unhealthyThreshold: -1 is outside 1-100",
        ),
        (
            json!({"healthyThreshold": 101}),
            "spec.healthCheck.healthyThreshold: 101 is outside 1-100",
        ),
    ];
    for (hc, want) in cases {
        assert_eq!(valid(Some(hc.clone())), Err(want.to_string()), "{hc}");
    }
}

#[test]
fn loadbalancer_health_check_timings_round_trip_and_absent_ones_match_older_specs() {
    let hc = LbHealthCheck {
        kind: "tcp".into(),
        port: None,
        path: "/healthz".into(),
        timings: CheckTimings {
            interval_seconds: Some(5),
            ..Default::default()
        },
    };
    let spec = LbSpec {
        config_name: "edge".into(),
        ports: vec![LbPort {
            name: String::new(),
            port: 8000,
            protocol: Protocol::Tcp,
            node_port: Some(30080),
            targets: vec![],
        }],
        proxy_timeout_seconds: 0,
        proxy_connect_timeout_seconds: 0,
        traffic: LbTraffic {
            health_check: Some(hc.clone()),
            ..Default::default()
        },
        hosts: vec![LbHost::unnamed("127.0.0.1", "http://127.0.0.1:3000")],
    };
    let stored: LoadBalancer = serde_json::from_value(json!({"spec": spec.to_json()})).unwrap();
    assert!(spec.matches(&stored.spec));
    assert_eq!(
        LbSpec::from_resource(&stored.spec)
            .unwrap()
            .traffic
            .health_check,
        Some(hc)
    );
    // A spec written before timings existed reads as the derived check with none.
    let old: LoadBalancer = serde_json::from_value(json!({"spec": {"host": "h",
        "httpUpdater": {"url": "http://127.0.0.1:3000"}, "port": 8000,
        "healthCheck": {"type": "http", "port": 10256, "path": "/healthz"}}}))
    .unwrap();
    let got = LbSpec::from_resource(&old.spec)
        .unwrap()
        .traffic
        .health_check;
    assert_eq!(got.unwrap().timings, CheckTimings::default());
}

#[test]
fn loadbalancer_balance_round_trips_and_round_robin_is_left_out() {
    let stored = |v: serde_json::Value| -> LoadBalancer {
        serde_json::from_value(json!({"spec": {"host": "h",
            "httpUpdater": {"url": "http://127.0.0.1:3000"}, "port": 8000, "balance": v}}))
        .unwrap()
    };
    for b in crate::updater::validate::Balance::ALL {
        let spec = LbSpec::from_resource(&stored(json!(b.as_str())).spec).unwrap();
        assert_eq!(spec.traffic.balance, b);
        let json = spec.to_json();
        let written = json.get("balance").and_then(|v| v.as_str());
        assert_eq!(written, (b.as_str() != "round-robin").then_some(b.as_str()));
        let back: LoadBalancer = serde_json::from_value(json!({"spec": json})).unwrap();
        assert!(spec.matches(&back.spec), "{b:?}");
    }
    let err = LbSpec::from_resource(&stored(json!("least_conn")).spec).unwrap_err();
    assert_eq!(
        err,
        "spec.balance \"least_conn\": must be round-robin, least-conn, hash or random-two"
    );
}
