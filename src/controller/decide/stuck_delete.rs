//! A gone LB host must not hold a namespace hostage (issue 22): a LoadBalancer being deleted waits
//! for its backends to be deleted from the updaters, but an updater that has not answered at all
//! (no answer, not an error answer) for `--unreachable-delete-grace` is given up on: the
//! finalizer is released with a Warning Event naming the host and the backend left there, and the
//! drift check deletes that stray backend once the updater answers again (no LoadBalancer names
//! it any more). The Event goes to the LoadBalancer's config, in the controller's namespace: the
//! LoadBalancer's own namespace may be the one being deleted.
//! Pure: no I/O, no clock (the worker's failing updaters and the time come in through `Context`).

use super::context::Context;
use super::hosts::failing_since;
use super::plan::{EventType, Plan, lb_ref, object_ref};
use super::status::known_backends;
use crate::controller::cache::Cache;
use crate::controller::key::Key;
use crate::model::{API_VERSION, CONFIG_KIND, LoadBalancer};

/// The updater at `url` has not answered for the grace or longer: a deletion no longer waits on it.
pub fn given_up(ctx: &Context, url: &str) -> bool {
    failing_since(ctx, url)
        .is_some_and(|since| ctx.now_ms >= since.saturating_add(ctx.delete_grace_ms))
}

/// One Warning Event for the backends of `lb` left on updaters given up on, if any.
pub fn let_go(cache: &Cache, key: &Key, lb: &LoadBalancer, ctx: &Context, plan: &mut Plan) {
    let left: Vec<String> = (known_backends(key, lb).into_iter())
        .filter(|b| given_up(ctx, &b.url))
        .map(|b| {
            format!(
                "backend {} on host {} (updater {})",
                b.backend_name, b.host, b.url
            )
        })
        .collect();
    if left.is_empty() {
        return;
    }
    let config = lb.spec.config_name.get().cloned().unwrap_or_default();
    let object = match cache.configs.get(&Key::new(&ctx.namespace, &config)) {
        Some(c) => object_ref(API_VERSION, CONFIG_KIND, &c.metadata),
        None => lb_ref(lb),
    };
    let message = format!(
        "LoadBalancer {key} released although its updater has not answered for \
         --unreachable-delete-grace: {} left there; drift repair removes it when the updater \
         answers again",
        left.join(", ")
    );
    plan.event(&object, (EventType::Warning, "BackendLeft", message));
}
