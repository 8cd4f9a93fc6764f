//! Each LoadBalancerConfig's own status: one `Accepted` condition that says whether its spec is
//! usable and, when it is not, which field is wrong (the same message its Services' LoadBalancers
//! carry). When accepted, the message shows where the controller will send updater calls (the
//! resolved endpoint of `httpUpdaterURL`), so a user can see how the URL was read.
//! Pure: the worker runs the plan `report` decides on.

use serde_json::json;

use super::plan::{Action, EventType, Plan, object_ref};
use super::status::{condition, set_condition};
use crate::controller::key::Key;
use crate::model::url::updater_endpoint;
use crate::model::{API_VERSION, CONFIG_KIND, LoadBalancerConfig};

/// The condition type on a LoadBalancerConfig (as Gateway API names a class's verdict).
pub const ACCEPTED: &str = "Accepted";

/// What to write for one config: a merge patch of its `/status`, then a Warning Event when it has
/// just become unusable (or its fault changed). None when the config's status already says what
/// its spec deserves.
pub fn report(cfg: &LoadBalancerConfig, now: &str) -> Option<Plan> {
    let generation = cfg.metadata.generation;
    let (ok, reason, message) = match cfg.validate() {
        Ok(v) => {
            let endpoints: Vec<String> = (v.hosts.iter())
                .map(|h| updater_endpoint(&h.url).unwrap_or(h.url.clone()))
                .collect();
            let hosts: Vec<&str> = v.hosts.iter().map(|h| h.host.as_str()).collect();
            let (low, high) = (v.low, v.high);
            let message = format!(
                "updater endpoint {}; ports {low}-{high} on {}",
                endpoints.join(", "),
                hosts.join(", ")
            );
            (true, "Valid", message)
        }
        Err(e) => (false, "InvalidConfig", e),
    };
    let before = condition(&cfg.status.conditions, ACCEPTED).cloned();
    let mut status = cfg.status.clone();
    let c = &mut status.conditions;
    set_condition(c, ACCEPTED, ok, reason, &message, now, generation);
    status.observed_generation = generation;
    if status == cfg.status {
        return None;
    }
    let news = before.is_none_or(|c| c.status != "False" || c.message != message);
    let mut plan = Plan::of(Action::PatchConfigStatus {
        key: Key::of(&cfg.metadata),
        patch: json!({"status": status}),
    });
    if !ok && news {
        let object = object_ref(API_VERSION, CONFIG_KIND, &cfg.metadata);
        let message = format!("LoadBalancerConfig {}: {message}", cfg.metadata.name);
        plan.event(&object, (EventType::Warning, reason, message));
    }
    Some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decide::plan::EventSpec;
    use serde_json::Value;

    /// A report's status patch and Event.
    fn parts(p: &Plan) -> (&Value, Option<&EventSpec>) {
        let Action::PatchConfigStatus { patch, .. } = &p.actions[0] else {
            panic!("{p:?}")
        };
        let event = p.actions.get(1).map(|a| match a {
            Action::Event(e) => e,
            other => panic!("{other:?}"),
        });
        (patch, event)
    }

    fn config(url: &str, generation: i64) -> LoadBalancerConfig {
        serde_json::from_value(json!({
            "metadata": {"name": "edge", "namespace": "paperlb-system", "uid": "u1", "generation": generation},
            "spec": {"default": true, "host": "192.168.64.1", "httpUpdaterURL": url,
                     "portRange": {"low": 8100, "high": 8200}},
        }))
        .unwrap()
    }

    /// The config as the apiserver has it after the patch.
    fn patched(cfg: &LoadBalancerConfig, r: &Plan) -> LoadBalancerConfig {
        let mut c = cfg.clone();
        c.status = serde_json::from_value(parts(r).0["status"].clone()).unwrap();
        c
    }

    #[test]
    fn accepted_config_shows_the_resolved_endpoint_once() {
        let cfg = config("http://192.168.64.1:3000/api/v1/lb", 1);
        let r = report(&cfg, "2026-01-01T00:00:00Z").expect("first report");
        let c = &parts(&r).0["status"]["conditions"][0];
        assert_eq!(c["type"], "Accepted");
        assert_eq!(c["status"], "True");
        assert_eq!(
            c["message"],
            "updater endpoint http://192.168.64.1:3000/api/v1/lb; ports 8100-8200 on 192.168.64.1"
        );
        assert_eq!(parts(&r).0["status"]["observedGeneration"], 1);
        assert_eq!(parts(&r).1, None);
        let cfg = patched(&cfg, &r);
        assert_eq!(report(&cfg, "2026-01-01T00:05:00Z"), None, "written once");
        let mut bare = cfg.clone();
        bare.spec = config("http://192.168.64.1:3000", 2).spec;
        bare.metadata.generation = Some(2);
        let r = report(&bare, "2026-01-01T00:06:00Z").expect("new generation");
        assert_eq!(parts(&r).0["status"]["observedGeneration"], 2);
        assert_eq!(
            parts(&r).0["status"]["conditions"][0]["message"],
            "updater endpoint http://192.168.64.1:3000/api/v1/lb; ports 8100-8200 on 192.168.64.1"
        );
    }

    #[test]
    fn refused_url_names_the_field_hides_the_query_and_warns_once() {
        let cfg = config("http://lb:3000/api/v1/lb?token=s3cret", 1);
        let r = report(&cfg, "2026-01-01T00:00:00Z").expect("report");
        let c = &parts(&r).0["status"]["conditions"][0];
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "InvalidConfig");
        let m = c["message"].as_str().unwrap();
        assert!(m.contains("spec.httpUpdaterURL"), "{m}");
        assert!(m.contains("query string"), "{m}");
        assert!(!m.contains("s3cret"), "no secret echoed: {m}");
        let e = parts(&r).1.expect("a Warning Event");
        assert_eq!(e.type_, EventType::Warning);
        assert_eq!(e.object.kind, "LoadBalancerConfig");
        assert!(!e.message.contains("s3cret"));
        let cfg = patched(&cfg, &r);
        assert_eq!(report(&cfg, "2026-01-01T00:01:00Z"), None);
        // Fixed: accepted again, and no Event for good news.
        let mut fixed = cfg.clone();
        fixed.spec = config("http://lb:3000", 2).spec;
        fixed.metadata.generation = Some(2);
        let r = report(&fixed, "2026-01-01T00:02:00Z").expect("fixed");
        assert_eq!(parts(&r).0["status"]["conditions"][0]["status"], "True");
        assert_eq!(parts(&r).1, None);
    }
}
