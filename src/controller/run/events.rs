//! Event rate limiting, as client-go's recorder does it: a token bucket per (object, reason), burst
//! 25, one new token every 300 s, so a failing object cannot flood the API. The worker asks
//! `allow` before creating each Event.
//! Pure: no I/O, no clock (time is passed in).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const BURST: u32 = 25;
pub const REFILL_EVERY: Duration = Duration::from_secs(300);
/// Above this many buckets, full ones are dropped (they behave exactly like a fresh bucket).
const MAX_BUCKETS: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct EventLimiter {
    /// Per (object, reason): when its bucket is full again, each Event sent moving it on by one
    /// period (a token bucket kept as one time, GCRA's "theoretical arrival time"; client-go's
    /// limiter refills continuously as well). In the past: full.
    buckets: BTreeMap<(String, String), Instant>,
}

/// The object an Event's bucket is keyed by: kind included, so a Service and its LoadBalancer (same
/// namespace and name) have a bucket each.
pub fn object_key(o: &crate::model::ObjectReference) -> String {
    format!("{} {}/{}", o.kind, o.namespace, o.name)
}

impl EventLimiter {
    /// Whether an Event for `object` (e.g. `Service ns/name`) with `reason` may be sent now; takes a
    /// token if so.
    pub fn allow(&mut self, object: &str, reason: &str, now: Instant) -> bool {
        if self.buckets.len() >= MAX_BUCKETS {
            self.buckets.retain(|_, full_at| *full_at > now);
        }
        let key = (object.to_string(), reason.to_string());
        let full_at = self.buckets.entry(key).or_insert(now);
        // Sending takes one period's worth: allowed while that leaves at most `BURST` periods owed.
        let owed = (*full_at).max(now) + REFILL_EVERY;
        if owed.saturating_duration_since(now) > REFILL_EVERY * BURST {
            return false;
        }
        *full_at = owed;
        true
    }

    /// Gives back the token `allow` took for an Event that was then never sent (a bucket full
    /// again is full: `allow` never counts a time in the past).
    pub fn refund(&mut self, object: &str, reason: &str) {
        let key = (object.to_string(), reason.to_string());
        if let Some(full_at) = self.buckets.get_mut(&key)
            && let Some(earlier) = full_at.checked_sub(REFILL_EVERY)
        {
            *full_at = earlier;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_and_its_load_balancer_have_a_bucket_each() {
        let of = |kind: &str| crate::model::ObjectReference {
            kind: kind.into(),
            namespace: "ns".into(),
            name: "web".into(),
            ..Default::default()
        };
        assert_eq!(object_key(&of("Service")), "Service ns/web");
        let t0 = Instant::now();
        let mut l = EventLimiter::default();
        let svc = object_key(&of("Service"));
        let sent = (0..30)
            .filter(|_| l.allow(&svc, "UpdaterFailed", t0))
            .count();
        assert_eq!(sent, 25);
        assert!(l.allow(&object_key(&of("LoadBalancer")), "UpdaterFailed", t0));
    }

    #[test]
    fn burst_then_one_per_period_per_object_and_reason() {
        let t0 = Instant::now();
        let mut l = EventLimiter::default();
        let sent = (0..30)
            .filter(|_| l.allow("Service ns/web", "UpdaterFailed", t0))
            .count();
        assert_eq!(sent, 25);
        assert!(
            l.allow("Service ns/web", "PortAllocated", t0),
            "other reason has its own bucket"
        );
        assert!(
            l.allow("Service ns/db", "UpdaterFailed", t0),
            "other object has its own bucket"
        );
        assert!(!l.allow(
            "Service ns/web",
            "UpdaterFailed",
            t0 + Duration::from_secs(299)
        ));
        assert!(l.allow(
            "Service ns/web",
            "UpdaterFailed",
            t0 + Duration::from_secs(300)
        ));
        assert!(!l.allow(
            "Service ns/web",
            "UpdaterFailed",
            t0 + Duration::from_secs(301)
        ));
        let later = t0 + Duration::from_secs(300 * 100);
        let sent = (0..30)
            .filter(|_| l.allow("Service ns/web", "UpdaterFailed", later))
            .count();
        assert_eq!(sent, 25, "refills up to the burst, not beyond");
    }

    #[test]
    fn a_refunded_token_can_be_used_again_but_never_beyond_the_burst() {
        let t0 = Instant::now();
        let mut l = EventLimiter::default();
        assert!((0..BURST).all(|_| l.allow("svc a", "R", t0)));
        assert!(!l.allow("svc a", "R", t0));
        l.refund("svc a", "R");
        assert!(l.allow("svc a", "R", t0));
        assert!(!l.allow("svc a", "R", t0));
        for _ in 0..BURST + 5 {
            l.refund("svc a", "R");
        }
        assert!((0..BURST).all(|_| l.allow("svc a", "R", t0)));
        assert!(!l.allow("svc a", "R", t0), "refunds stop at the burst");
        l.refund("svc b", "R"); // unknown bucket: nothing to give back
        assert!(l.allow("svc b", "R", t0));
    }
}
