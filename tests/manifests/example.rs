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
            valid.host.as_str(),
            valid.url.as_str(),
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
