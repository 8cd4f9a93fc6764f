//! `metadata` and references shared by every kind.
//! Pure: no I/O, no clock.

use super::lenient::null_default;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metadata fields paperlb reads (it writes metadata as JSON: a create's body, a merge patch).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// Empty for cluster-scoped kinds (Node).
    #[serde(deserialize_with = "null_default")]
    pub namespace: String,
    #[serde(deserialize_with = "null_default")]
    pub uid: String,
    #[serde(deserialize_with = "null_default")]
    pub resource_version: String,
    pub generation: Option<i64>,
    #[serde(deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
    #[serde(deserialize_with = "null_default")]
    pub finalizers: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub owner_references: Vec<OwnerReference>,
    pub deletion_timestamp: Option<String>,
}

impl ObjectMeta {
    pub fn is_deleting(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }

    /// The ownerReference to a core/v1 Service, if any.
    pub fn service_owner(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|o| o.kind == "Service" && o.api_version == "v1")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct OwnerReference {
    #[serde(deserialize_with = "null_default")]
    pub api_version: String,
    #[serde(deserialize_with = "null_default")]
    pub kind: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// Names an object in an Event (`involvedObject`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
}
