//! The example LoadBalancerConfig is what the controller accepts.

use paperlb::model::{API_VERSION, CONFIG_KIND, LoadBalancerConfig};

use crate::{object, str_at};

const EXAMPLE: &str = "manifests/examples/loadbalancerconfig.yaml";

#[test]
fn example_config_decodes_and_validates() {
    let value = object(EXAMPLE, CONFIG_KIND);
    assert_eq!(value["apiVersion"], API_VERSION);
    let config: LoadBalancerConfig = serde_json::from_value(value).expect("decodes");
    let valid = config
        .validate()
        .unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"));
    assert!(config.is_default(), "the example is the default config");
    assert_eq!(
        (
            valid.hosts[0].host.as_str(),
            valid.hosts[0].url.as_str(),
            valid.low,
            valid.high
        ),
        ("203.0.113.7", "http://203.0.113.7:3000", 8000, 8999)
    );
    assert_eq!(valid.address_types, ["ExternalIP", "InternalIP"]);
}

#[test]
fn example_config_lives_where_the_controller_looks() {
    // Configs are read from the controller's namespace only (the Role grants nothing elsewhere).
    let value = object(EXAMPLE, CONFIG_KIND);
    let deployment = object("manifests/base/deployment.yaml", "Deployment");
    assert_eq!(
        str_at(&value, &["metadata", "namespace"]),
        str_at(&deployment, &["metadata", "namespace"])
    );
}

/// The value of `--flag VALUE` in the updater's systemd unit (comments skipped).
fn unit_flag(unit: &str, flag: &str) -> String {
    let words: Vec<&str> = unit
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect();
    let at = words
        .iter()
        .position(|w| *w == flag)
        .unwrap_or_else(|| panic!("the unit has no {flag}"));
    words[at + 1].to_string()
}

#[test]
fn example_config_reaches_the_updater_the_lb_host_unit_runs() {
    // Following the example config and the unit as shipped must work: same port, allowed range.
    let value = object(EXAMPLE, CONFIG_KIND);
    let config: LoadBalancerConfig = serde_json::from_value(value).unwrap();
    let valid = config.validate().unwrap();
    let unit = crate::read("manifests/lb-host/paperlb-nginx-updater.service");
    let listen = unit_flag(&unit, "--listen");
    let url_port = valid.hosts[0].url.rsplit(':').next().unwrap();
    assert_eq!(
        listen.rsplit(':').next().unwrap(),
        url_port,
        "--listen {listen} vs {}",
        valid.hosts[0].url
    );
    let allowed = unit_flag(&unit, "--allowed-ports");
    let (low, high) = allowed.split_once('-').unwrap();
    let (low, high): (u16, u16) = (low.parse().unwrap(), high.parse().unwrap());
    assert!(
        low <= valid.low && valid.high <= high,
        "portRange {}-{} is outside --allowed-ports {allowed}",
        valid.low,
        valid.high
    );
    assert!(
        !(valid.low..=valid.high).contains(&url_port.parse::<u16>().unwrap()),
        "the updater's own port must not be handed out to Services"
    );
}

#[test]
fn the_lb_host_unit_requires_a_token_and_creates_it_where_it_reads_it() {
    let unit = crate::read("manifests/lb-host/paperlb-nginx-updater.service");
    let token = unit_flag(&unit, "--token-file");
    let pre = unit
        .lines()
        .find(|l| l.starts_with("ExecStartPre="))
        .expect("an ExecStartPre that creates the token");
    assert!(
        pre.contains(&format!("test -s {token}")) && pre.contains(&format!("> {token}")),
        "{pre}"
    );
    assert!(
        pre.contains("umask 077") && pre.contains("/dev/urandom"),
        "{pre}"
    );
}

#[test]
fn example_config_names_the_token_secret_the_lb_host_unit_requires() {
    // The unit always runs with --token-file: a config without a token gets 401 from it.
    let unit = crate::read("manifests/lb-host/paperlb-nginx-updater.service");
    assert_eq!(
        unit_flag(&unit, "--token-file"),
        "/etc/paperlb/updater-token"
    );
    let value = object(EXAMPLE, CONFIG_KIND);
    let name = str_at(&value, &["spec", "updaterTokenSecretRef", "name"]);
    assert_eq!(name, "paperlb-updater-token");
    // The install guide creates that Secret, with the key the reference uses.
    let key = str_at(&value, &["spec", "updaterTokenSecretRef", "key"]);
    let create =
        format!("kubectl -n paperlb-system create secret generic {name} --from-file={key}=");
    assert!(
        crate::read("README.md").contains(&create),
        "README lacks {create:?}"
    );
    assert!(
        crate::read(EXAMPLE).contains(&create),
        "{EXAMPLE} lacks {create:?}"
    );
}

#[test]
fn the_install_guide_installs_the_binary_make_release_builds() {
    let makefile = crate::read("Makefile");
    let target = makefile
        .lines()
        .find_map(|l| l.strip_prefix("RELEASE_TARGET := "))
        .expect("RELEASE_TARGET in the Makefile");
    let install = format!("install -m 0755 target/{target}/release/paperlb /usr/local/bin/paperlb");
    assert!(
        crate::read("README.md").contains(&install),
        "README lacks {install:?}"
    );
}
