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

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Repair calls in flight at once on one updater: enough for its group commit to cover dozens of
/// requests per reload (`make bench`, 1,000 backends lost: 64 at once gave 27 reloads, 128 fewer);
/// each is one short-lived thread and one connection, well inside the updater's 512.
pub const PARALLEL: usize = 128;

/// First retry of a failed check.
const RETRY: Duration = Duration::from_secs(10);

/// Default `--updater-resync`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Timers {
    due: BTreeMap<String, Instant>,
    failures: BTreeMap<String, u32>,
    /// Zero: no periodic check.
    period: Duration,
    seq: u64,
}

impl Timers {
    pub fn new(period: Duration) -> Timers {
        Timers {
            due: BTreeMap::new(),
            failures: BTreeMap::new(),
            period,
            seq: 0,
        }
    }

    /// A check of `endpoint` at `at` (an earlier due time is kept).
    pub fn at(&mut self, endpoint: &str, at: Instant) {
        let e = self.due.entry(endpoint.to_string()).or_insert(at);
        if at < *e {
            *e = at;
        }
    }

    /// After a check: the next periodic one (none when the period is 0), or a sooner retry.
    pub fn checked(&mut self, endpoint: &str, ok: bool, now: Instant) {
        self.due.remove(endpoint);
        let failures = if ok {
            self.failures.remove(endpoint);
            0
        } else {
            let f = self.failures.entry(endpoint.to_string()).or_insert(0);
            *f = f.saturating_add(1);
            *f
        };
        if self.period.is_zero() {
            return;
        }
        self.seq = self.seq.wrapping_add(1);
        let mut next = jittered(self.period, self.seq);
        if failures > 0 {
            next = next.min(RETRY.saturating_mul(1 << (failures - 1).min(16)));
        }
        self.at(endpoint, now + next);
    }

    /// No more checks of `endpoint` until something schedules one.
    pub fn cancel(&mut self, endpoint: &str) {
        self.due.remove(endpoint);
        self.failures.remove(endpoint);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// The endpoints due at `now` (they stay scheduled until `checked` or `cancel`).
    pub fn due(&self, now: Instant) -> Vec<String> {
        self.due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(e, _)| e.clone())
            .collect()
    }

    pub fn is_scheduled(&self, endpoint: &str) -> bool {
        self.due.contains_key(endpoint)
    }
}

/// `period` ± 10 %, spread by the clock's nanoseconds and a sequence number (no RNG crate).
fn jittered(period: Duration, seq: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    // splitmix64 of the two: well spread over 0..1000.
    let mut z = nanos ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let permille = 900 + (z % 201); // 900..=1100
    period.mul_f64(permille as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let p = Duration::from_secs(300);
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..200 {
            let d = jittered(p, seq);
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
        t.at("e", now);
        t.at("e", now + Duration::from_secs(5)); // the earlier stays
        assert_eq!(t.due(now), ["e"]);
        t.checked("e", true, now);
        let next = t.next_deadline().unwrap();
        assert!(next >= now + Duration::from_secs(270) && next <= now + Duration::from_secs(330));
        assert!(t.due(now).is_empty());
        t.checked("e", false, now);
        assert_eq!(t.next_deadline(), Some(now + RETRY));
        t.checked("e", false, now);
        assert_eq!(t.next_deadline(), Some(now + 2 * RETRY));
        for _ in 0..20 {
            t.checked("e", false, now);
        }
        assert!(t.next_deadline().unwrap() <= now + Duration::from_secs(330));
        t.cancel("e");
        assert_eq!(t.next_deadline(), None);

        let mut off = Timers::new(Duration::ZERO);
        off.at("e", now);
        off.checked("e", true, now);
        assert_eq!(off.next_deadline(), None);
        assert!(!off.is_scheduled("e"));
    }
}
