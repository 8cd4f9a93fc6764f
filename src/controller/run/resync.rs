//! When drift checks run, and how many repair calls of one check run at once.
//!
//! [`Timers`]: one due time per updater endpoint, kept by the worker beside its work queue; the
//! worker's `recv_timeout` also wakes for the earliest, so nothing polls. A check is due after the
//! first sync, on gaining leadership, when an updater answers again after failing, and every
//! `--updater-resync` (±10 % jitter, so replicas and hosts do not fall into step; 0 = no periodic
//! check). A failed check is retried sooner (10 s, doubling, never later than the period).
//!
//! A check's repairs are `Action::Repair`s of one plan, run by the executor on the I/O pool
//! ([`PARALLEL`] at once, see `batch::all_at_once`); the worker applies their answers.
//!
//! Must not: decide what to repair (that is `drift`), or touch the cache.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use crate::controller::queue::Queue;

/// Repair calls in flight at once on one updater: enough for its group commit to cover dozens of
/// requests per reload (`make bench`, 1,000 backends lost: 64 at once gave 27 reloads, 128 fewer);
/// each is one short-lived thread and one connection, well inside the updater's 512.
pub const PARALLEL: usize = 128;

/// First retry of a failed check.
const RETRY: Duration = Duration::from_secs(10);

/// Default `--updater-resync`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(300);

/// The checks to run: updater endpoints in a work queue, whose rate limiter retries a failed
/// check (10 s doubling, never later than the period).
#[derive(Debug, Clone, Default)]
pub struct Timers {
    queue: Queue<String>,
    /// Zero: no periodic check.
    period: Duration,
}

impl Timers {
    pub fn new(period: Duration) -> Timers {
        Timers {
            queue: Queue::with_backoff(RETRY, period),
            period,
        }
    }

    /// A check of `endpoint` now.
    pub fn at(&mut self, endpoint: &str) {
        self.queue.add(endpoint.to_string());
    }

    /// After a check: the next periodic one (none when the period is 0), or a sooner retry. Any
    /// other time it was due at is dropped.
    pub fn checked(&mut self, endpoint: &str, ok: bool, now: Instant) {
        let e = endpoint.to_string();
        self.queue.remove(&e);
        if ok {
            self.queue.forget(&e);
        }
        if self.period.is_zero() {
            return;
        }
        if ok {
            self.queue.add_after(e, jittered(self.period), now);
        } else {
            self.queue.add_rate_limited(e, now);
        }
    }

    /// No more checks of `endpoint` until something schedules one.
    pub fn cancel(&mut self, endpoint: &str) {
        let e = endpoint.to_string();
        self.queue.remove(&e);
        self.queue.forget(&e);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        if self.queue.is_empty() {
            self.queue.next_deadline()
        } else {
            Some(Instant::now())
        }
    }

    /// The next endpoint due at `now`; it is scheduled again only by `checked` or `at`.
    pub fn next_due(&mut self, now: Instant) -> Option<String> {
        let e = self.queue.get(now)?;
        self.queue.done(&e);
        Some(e)
    }

    pub fn is_scheduled(&self, endpoint: &str) -> bool {
        self.queue.contains(&endpoint.to_string())
    }
}

/// `period` ± 10 %, spread by std's randomly keyed hasher (no RNG crate): each `RandomState` has
/// its own keys.
fn jittered(period: Duration) -> Duration {
    let permille = 900 + RandomState::new().hash_one(0u8) % 201; // 900..=1100
    period.mul_f64(permille as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let p = Duration::from_secs(300);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let d = jittered(p);
            assert!(
                d >= Duration::from_secs(270) && d <= Duration::from_secs(330),
                "{d:?}"
            );
            seen.insert(d.as_secs());
        }
        assert!(seen.len() > 20, "{seen:?}");
    }

    #[test]
    fn timers_schedule_retry_sooner_and_period_zero_is_off() {
        let now = Instant::now();
        let mut t = Timers::new(Duration::from_secs(300));
        t.at("e");
        t.at("e"); // once
        assert_eq!(t.next_due(now).as_deref(), Some("e"));
        assert_eq!(t.next_due(now), None);
        t.checked("e", true, now);
        let next = t.next_deadline().unwrap();
        assert!(next >= now + Duration::from_secs(270) && next <= now + Duration::from_secs(330));
        assert_eq!(t.next_due(now), None);
        t.at("e"); // due now as well: the check drops the earlier time
        t.checked("e", false, now);
        assert_eq!(t.next_deadline(), Some(now + RETRY));
        t.checked("e", false, now);
        assert_eq!(t.next_deadline(), Some(now + 2 * RETRY));
        for _ in 0..20 {
            t.checked("e", false, now);
        }
        assert!(t.next_deadline().unwrap() <= now + Duration::from_secs(300));
        t.checked("e", true, now); // a success resets the retries
        t.checked("e", false, now);
        assert_eq!(t.next_deadline(), Some(now + RETRY));
        t.cancel("e");
        assert_eq!(t.next_deadline(), None);

        let mut off = Timers::new(Duration::ZERO);
        off.at("e");
        assert!(off.is_scheduled("e"));
        assert_eq!(off.next_due(now).as_deref(), Some("e"));
        off.checked("e", true, now);
        assert_eq!(off.next_deadline(), None);
        assert!(!off.is_scheduled("e"));
    }
}
