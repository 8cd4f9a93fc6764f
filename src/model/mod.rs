//! serde types for exactly the Kubernetes fields paperlb uses.
//!
//! Reading: unknown fields are ignored, and every field has a default, so one odd object never makes a
//! whole list or watch stream undecodable. Writing: we never PUT these structs back (fields we do not
//! model would be erased); the controller sends JSON merge patches of the fields it owns, built as
//! `serde_json::Value`.
//!
//! Leniency, decided per origin of the data:
//! - Built-in kinds (Service, Node, EndpointSlice) are validated by the apiserver, so their fields
//!   have plain types; lists and objects that may arrive as `null` decode as empty (`null_default`).
//! - Our custom resources may be hand-edited and their CRD may be an old one with a loose schema (or no
//!   CEL), so every scalar a user writes is a [`Lenient`] value: it keeps a wrong-typed value as raw JSON
//!   instead of failing, and accepts numbers and booleans written as strings (`"8080"`). Nested objects
//!   and lists decode as empty when their shape is wrong (`or_default`). Validation functions
//!   (`LoadBalancerConfig::validate`, `LbSpec::from_resource`) then turn these into checked values or a
//!   message that names the field and the bad value, which ends up in an Event and a condition.
//!
//! Pure: no I/O, no clock.

mod core;
mod hosts;
mod lenient;
mod meta;
mod paperlb;
mod spec;
pub mod url;

pub use self::core::*;
pub use hosts::{AuthRefs, LbHost, MAX_HOSTS, SecretRef, addresses};
pub use lenient::{Lenient, null_default, or_default};
pub use meta::*;
pub use paperlb::*;
pub use spec::*;

#[cfg(test)]
mod tests;

/// RFC 7386 JSON merge patch, as the apiserver applies a merge patch (for tests).
#[cfg(test)]
pub(crate) fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}
