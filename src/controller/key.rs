//! `Key`: a namespaced object's namespace/name, the reconcile key shared by the cache, the queue,
//! the decisions and the worker. Pure: no I/O, no clock.

use crate::model::ObjectMeta;
use std::fmt;

/// A namespaced object's identity; also the reconcile key (a Service and its LoadBalancer share it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: &str, name: &str) -> Key {
        Key {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of(meta: &ObjectMeta) -> Key {
        Key::new(&meta.namespace, &meta.name)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
