//! The object store: one global resourceVersion counter, objects keyed by resource/namespace/name,
//! and a bounded history of change events (each with the object's previous state) from which
//! watches resume and consistent list snapshots at an older RV are rebuilt. Stored objects are
//! shared (`Arc`) between the map and the history, so a write copies no object tree.
//! Pure: no I/O, no locks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watchers see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub resource: &'static str,
    pub namespace: String,
    pub name: String,
    pub kind: EventType,
    /// The new state (for DELETED: the last state, at the delete's RV).
    pub object: Arc<Value>,
    /// The state before this change (`None` for ADDED).
    pub prev: Option<Arc<Value>>,
}

type Key = (&'static str, String, String);

pub struct Store {
    /// The newest resourceVersion handed out.
    pub rv: u64,
    /// Watches and exact lists from an RV below this answer 410 Expired.
    pub compacted: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Event>,
    history_limit: usize,
}

fn key(res: &'static str, ns: &str, name: &str) -> Key {
    (res, ns.to_string(), name.to_string())
}

pub fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        Store {
            rv: 1,
            compacted: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
        }
    }

    pub fn get(&self, res: &'static str, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(res, ns, name)).map(|v| &**v)
    }

    /// The stored object itself, shared (no copy).
    pub fn get_shared(&self, res: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects.get(&key(res, ns, name)).cloned()
    }

    /// Objects of a resource in `(namespace, name)` order; `ns` empty means all namespaces.
    pub fn list(&self, res: &'static str, ns: &str) -> Vec<Value> {
        self.objects
            .range(key(res, "", "")..)
            .take_while(|((r, _, _), _)| *r == res)
            .filter(|((_, n, _), _)| ns.is_empty() || n == ns)
            .map(|(_, v)| (**v).clone())
            .collect()
    }

    /// The objects of a resource as they were at `rv`, or `None` if history no longer reaches it.
    pub fn list_at(&self, res: &'static str, ns: &str, rv: u64) -> Option<Vec<Value>> {
        if rv < self.compacted {
            return None;
        }
        let mut map: BTreeMap<(String, String), Value> = self
            .list(res, ns)
            .into_iter()
            .map(|o| {
                let meta = &o["metadata"];
                let k = (
                    meta["namespace"].as_str().unwrap_or("").to_string(),
                    meta["name"].as_str().unwrap_or("").to_string(),
                );
                (k, o)
            })
            .collect();
        for ev in self.history.iter().rev() {
            if ev.rv <= rv {
                break;
            }
            if ev.resource != res || !(ns.is_empty() || ev.namespace == ns) {
                continue;
            }
            let k = (ev.namespace.clone(), ev.name.clone());
            match &ev.prev {
                Some(p) => map.insert(k, (**p).clone()),
                None => map.remove(&k),
            };
        }
        Some(map.into_values().collect())
    }

    /// Stores `obj` at a new RV and records the event; returns the stored object.
    pub fn put(&mut self, res: &'static str, ns: &str, name: &str, mut obj: Value) -> Value {
        self.rv += 1;
        set_rv(&mut obj, self.rv);
        let shared = Arc::new(obj);
        let prev = self.objects.insert(key(res, ns, name), shared.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(res, ns, name, kind, shared.clone(), prev);
        Arc::unwrap_or_clone(shared)
    }

    /// Removes an object at a new RV; returns its last state carrying that RV.
    pub fn remove(&mut self, res: &'static str, ns: &str, name: &str) -> Option<Value> {
        let prev = self.objects.remove(&key(res, ns, name))?;
        self.rv += 1;
        let mut last = (*prev).clone();
        set_rv(&mut last, self.rv);
        let last = Arc::new(last);
        self.record(res, ns, name, EventType::Deleted, last.clone(), Some(prev));
        Some((*last).clone())
    }

    fn record(
        &mut self,
        res: &'static str,
        ns: &str,
        name: &str,
        kind: EventType,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
    ) {
        self.history.push_back(Event {
            rv: self.rv,
            resource: res,
            namespace: ns.to_string(),
            name: name.to_string(),
            kind,
            object,
            prev,
        });
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = self.compacted.max(old.rv);
            }
        }
    }

    /// Events newer than `rv`, oldest first.
    pub fn events_after(&self, rv: u64) -> impl Iterator<Item = &Event> {
        let start = self.history.partition_point(|e| e.rv <= rv);
        self.history.range(start..)
    }

    /// Makes every RV older than the current one expired, as an etcd compaction would.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
    }

    /// Every stored object of every resource (used for the nodePort allocator).
    pub fn all(&self, res: &'static str) -> impl Iterator<Item = &Value> {
        self.objects
            .range(key(res, "", "")..)
            .take_while(move |((r, _, _), _)| *r == res)
            .map(|(_, v)| &**v)
    }
}
