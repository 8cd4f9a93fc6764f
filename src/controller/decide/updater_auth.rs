//! The `UpdaterAuth` and `DriftCheck` conditions of a LoadBalancer: what the worker writes when a
//! drift check finds an updater's credentials refused, or an updater that cannot be checked for
//! drift, and how a later success clears them (a failed call's `UpdaterAuth` is written by
//! `reconcile::on_updater_error`).
//!
//! Pure: no I/O, no clock (the time comes in as a string).

use super::plan::{Action, status_patch};
use super::status::{UPDATER_AUTH, condition, mark_accepted, set_condition};
use crate::controller::key::Key;
use crate::model::{Condition, LoadBalancer};

/// Why a config's updater gets no call; reason `SecretNotFound`, `KeyNotFound`, `InvalidToken`,
/// `InvalidCA`, `ClientSetup` or `Unauthorized`.
pub type AuthProblem = super::plan::Problem;

pub use super::status::DRIFT_CHECK;

/// The status patch that sets condition `type_` to False with `reason`, or None when the
/// LoadBalancer has it already (the condition is written once, not on every check).
pub fn condition_patch(
    key: &Key,
    lb: &LoadBalancer,
    type_: &str,
    reason: &str,
    message: &str,
    now: &str,
) -> Option<Action> {
    if condition(&lb.status.conditions, type_)
        .is_some_and(|c| c.status == "False" && c.reason == reason && c.message == message)
    {
        return None;
    }
    let mut status = lb.status.clone();
    let (c, generation) = (&mut status.conditions, lb.metadata.generation);
    set_condition(c, type_, false, reason, message, now, generation);
    Some(status_patch(key, &status))
}

/// Reason of `UpdaterAuth=False` when the TLS handshake refused the updater's certificate.
pub const CERTIFICATE_REFUSED: &str = "CertificateRefused";

/// After an updater answered a drift check: `DriftCheck` left False turns True, and so does an
/// `UpdaterAuth` that was False because the updater refused the token (or we its certificate).
/// None when nothing changes.
pub fn ok_patch(key: &Key, lb: &LoadBalancer, now: &str) -> Option<Action> {
    let mut status = lb.status.clone();
    if condition(&status.conditions, DRIFT_CHECK).is_some_and(|c| c.status != "True") {
        let message = "the updater lists its backends; drift is repaired";
        let (c, generation) = (&mut status.conditions, lb.metadata.generation);
        set_condition(c, DRIFT_CHECK, true, "Checked", message, now, generation);
    }
    let refused = |c: &Condition| matches!(c.reason.as_str(), "Unauthorized" | CERTIFICATE_REFUSED);
    if condition(&status.conditions, UPDATER_AUTH).is_some_and(refused) {
        mark_accepted(&mut status.conditions, now, lb.metadata.generation);
    }
    (status != lb.status).then(|| status_patch(key, &status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::cache::Cache;
    use crate::controller::decide::context::Context;
    use crate::controller::decide::plan::{EventType, Plan};
    use crate::controller::decide::reconcile::on_updater_error;
    use crate::controller::decide::status::mark_accepted;
    use crate::model::Condition;
    use crate::model::LoadBalancerStatus;
    use crate::updater::api::LbRequest;
    use serde_json::json;

    fn lb() -> LoadBalancer {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "generation": 2, "uid": "u1"},
            "spec": {"httpUpdater": {"url": "http://127.0.0.1:3000"}, "host": "127.0.0.1",
                     "port": 8100, "protocol": "TCP", "targets": []},
            "status": {"phase": "READY", "observedGeneration": 1,
                "conditions": [{"type": "Ready", "status": "True", "reason": "Applied",
                                "message": "", "lastTransitionTime": "t0"}]}
        }))
        .unwrap()
    }

    #[test]
    fn auth_error_sets_condition_and_warns_and_success_clears_it() {
        let mut cache = Cache::default();
        let key = Key::new("default", "web");
        cache.apply_load_balancer(lb());
        let ctx = Context::new("paperlb-system", "t1");
        let plan = Plan {
            actions: vec![Action::UpdaterApply {
                key: key.clone(),
                url: "http://127.0.0.1:3000".into(),
                request: LbRequest {
                    backend_name: "default_web".into(),
                    lb_port: 8100,
                    lb_protocol: "TCP".into(),
                    ..Default::default()
                },
            }],
        };
        let problem = AuthProblem {
            reason: "SecretNotFound",
            message: "LoadBalancerConfig paperlb-system/edge: spec.updaterTokenSecretRef: gone"
                .into(),
        };
        let message = &problem.message;
        let out = on_updater_error(&cache, &key, &ctx, &plan, 0, message, Some(&problem));
        let status: LoadBalancerStatus = match &out.actions[0] {
            Action::PatchLoadBalancerStatus { patch, .. } => {
                serde_json::from_value(patch["status"].clone()).unwrap()
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(status.phase.as_deref(), Some("ERROR"));
        let c = condition(&status.conditions, UPDATER_AUTH).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "SecretNotFound")
        );
        assert_eq!(c.message, problem.message);
        match &out.actions[1] {
            Action::Event(e) => {
                assert_eq!(e.reason, UPDATER_AUTH);
                assert_eq!(e.type_, EventType::Warning);
                assert_eq!(e.object.name, "web");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.actions.len(), 2);

        let mut conditions = status.conditions.clone();
        mark_accepted(&mut conditions, "t2", Some(2));
        let c = condition(&conditions, UPDATER_AUTH).unwrap();
        assert_eq!((c.status.as_str(), c.reason.as_str()), ("True", "Accepted"));
        // Never added where it was not.
        let mut none: Vec<Condition> = Vec::new();
        mark_accepted(&mut none, "t2", Some(2));
        assert!(none.is_empty());
    }

    #[test]
    fn drift_condition_is_written_once() {
        let key = Key::new("default", "web");
        let mut l = lb();
        let patch = condition_patch(&key, &l, DRIFT_CHECK, "Unsupported", "m", "t1").unwrap();
        let Action::PatchLoadBalancerStatus { patch, .. } = patch else {
            panic!()
        };
        l.status = serde_json::from_value(patch["status"].clone()).unwrap();
        assert_eq!(
            condition_patch(&key, &l, DRIFT_CHECK, "Unsupported", "m", "t2"),
            None
        );
    }
}
