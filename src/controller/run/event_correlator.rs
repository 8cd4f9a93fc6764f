//! Event aggregation, as client-go's `EventCorrelator` (its `EventLogger` part) does it: a repeat
//! of the same (object, type, reason, message) is the Event already posted with its `count` raised
//! and a new `lastTimestamp`, sent as a PATCH of that one object, not a new object per retry. The
//! rate limit per object and reason (`events`) is asked first, as client-go's spam filter is.
//! Bounded: above `MAX_SEEN` repeats remembered, the least recently used is forgotten (its next
//! repeat starts a new Event). An entry is a 64-bit hash of the identity, the Event's name and its
//! first time (~100 bytes, not the six strings of the identity: at 1k Services that was ~0.7 MiB).
//! Pure: no I/O, no clock (the time comes in as a string).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::controller::decide::plan::EventSpec;
use crate::model::Event;

/// client-go's LRU holds 4096 entries.
const MAX_SEEN: usize = 4096;

/// A hash of (object kind, namespace, name, uid, type, reason, message). `DefaultHasher::new()`
/// has fixed keys: the same identity always gives the same hash.
type Identity = u64;

#[derive(Debug, Default)]
pub struct Correlator {
    seen: BTreeMap<Identity, Seen>,
    /// Increases with every Event: the least recently used entry has the lowest, and a new
    /// Event's name adds it to the time.
    tick: u64,
}

#[derive(Debug)]
struct Seen {
    name: String,
    first: String,
    count: i32,
    used: u64,
}

impl Correlator {
    /// The Event to send for `spec` at `now` (RFC 3339; `nanos`: the same in ns since the epoch):
    /// a new one (count 1, named `<object>.<hex nanos + tick>`, unique within one nanosecond), or
    /// the earlier one for the same object, type, reason and message with its count raised (the
    /// sender PATCHes it when `count > 1`).
    pub fn correlate(&mut self, spec: &EventSpec, now: &str, nanos: u64) -> Event {
        self.tick += 1;
        let id = identity(spec);
        let unique = format!("{:x}", nanos.wrapping_add(self.tick));
        let mut event = spec.to_event(now, &unique);
        let seen = &mut self.seen;
        if !seen.contains_key(&id)
            && seen.len() >= MAX_SEEN
            && let Some(oldest) = seen.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k)
        {
            seen.remove(&oldest);
        }
        // A first is remembered as sent; a repeat takes the name and first time of the first.
        let s = seen.entry(id).or_insert_with(|| Seen {
            name: event.metadata.name.clone(),
            first: now.to_string(),
            count: 0,
            used: 0,
        });
        s.count = s.count.saturating_add(1);
        s.used = self.tick;
        event.metadata.name.clone_from(&s.name);
        event.first_timestamp.clone_from(&s.first);
        event.count = s.count;
        event
    }

    /// `spec`'s last `correlate` was not sent after all: its next repeat is counted as this one.
    pub fn unsent(&mut self, spec: &EventSpec) {
        let id = identity(spec);
        if let Some(s) = self.seen.get_mut(&id) {
            s.count -= 1;
            if s.count < 1 {
                self.seen.remove(&id);
            }
        }
    }
}

fn identity(spec: &EventSpec) -> Identity {
    let o = &spec.object;
    let mut h = DefaultHasher::new();
    (&o.kind, &o.namespace, &o.name, &o.uid, spec.type_.as_str()).hash(&mut h);
    (&spec.reason, &spec.message).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decide::plan::EventType;
    use crate::model::ObjectReference;

    fn spec(name: &str, message: &str) -> EventSpec {
        EventSpec {
            object: ObjectReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                namespace: "default".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
            },
            type_: EventType::Warning,
            reason: "UpdaterFailed".into(),
            message: message.into(),
        }
    }

    #[test]
    fn fifty_repeats_are_one_event_with_a_count_and_other_messages_their_own() {
        let mut c = Correlator::default();
        let first = c.correlate(&spec("web", "refused"), "t0", 0x100);
        assert_eq!((first.count, first.metadata.name.as_str()), (1, "web.101"));
        let mut last = first.clone();
        for i in 2..=50 {
            last = c.correlate(&spec("web", "refused"), &format!("t{i}"), 0x100);
        }
        assert_eq!(last.count, 50);
        assert_eq!(last.metadata.name, "web.101", "the same object");
        assert_eq!(last.first_timestamp, "t0");
        assert_eq!(last.last_timestamp, "t50");
        let other = c.correlate(&spec("web", "another message"), "t51", 0x100);
        assert_eq!(
            (other.count, other.metadata.name.as_str()),
            (1, "web.133"),
            "named anew in the same ns"
        );
        let db = c.correlate(&spec("db", "refused"), "t52", 0x100);
        assert_eq!((db.count, db.metadata.name.as_str()), (1, "db.134"));
    }

    #[test]
    fn an_event_not_sent_is_not_counted_as_a_repeat() {
        let mut c = Correlator::default();
        c.correlate(&spec("web", "refused"), "t0", 0x100);
        c.correlate(&spec("web", "refused"), "t1", 0x100);
        c.unsent(&spec("web", "refused"));
        assert_eq!(c.correlate(&spec("web", "refused"), "t2", 0x100).count, 2);
        c.unsent(&spec("db", "refused")); // never seen: nothing
        c.correlate(&spec("db", "refused"), "t3", 0x100);
        c.unsent(&spec("db", "refused"));
        let again = c.correlate(&spec("db", "refused"), "t4", 0x100);
        assert_eq!(
            (again.count, again.metadata.name.as_str()),
            (1, "db.105"),
            "a new Event"
        );
    }

    #[test]
    fn the_least_recently_used_is_forgotten_beyond_the_bound() {
        let mut c = Correlator::default();
        for i in 0..MAX_SEEN {
            c.correlate(&spec(&format!("s{i}"), "m"), "t", 0x100);
        }
        c.correlate(&spec("s0", "m"), "t", 0x100); // s0 used again: s1 is now the oldest
        c.correlate(&spec("new", "m"), "t", 0x100);
        assert_eq!(c.seen.len(), MAX_SEEN);
        assert_eq!(c.correlate(&spec("s0", "m"), "t", 0x100).count, 3);
        assert_eq!(
            c.correlate(&spec("s1", "m"), "t", 0x100).count,
            1,
            "forgotten"
        );
    }
}
