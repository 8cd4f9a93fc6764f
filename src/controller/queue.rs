//! A de-duplicating work queue with client-go workqueue semantics, plus per-key exponential backoff
//! and delayed adds. A key is never processed twice at once and never lost: a key added while it is
//! being processed is marked dirty and queued again when `done` is called.
//! Time is passed in (`now`), so tests never sleep; `next_deadline` tells the worker how long it may
//! block in `recv_timeout` before a delayed key is due (no polling).
//! Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// client-go's default per-item backoff: 5 ms doubling to 1000 s.
pub const BASE_DELAY: Duration = Duration::from_millis(5);
pub const MAX_DELAY: Duration = Duration::from_secs(1000);

#[derive(Clone, Debug)]
pub struct Queue<K: Ord + Clone> {
    /// Keys ready to hand out, in order.
    queue: VecDeque<K>,
    /// Keys that need processing (queued, or to be queued again after `done`).
    dirty: BTreeSet<K>,
    /// Keys handed out and not yet `done`.
    processing: BTreeSet<K>,
    /// Delayed keys: earliest due time per key, and the same ordered by time.
    waiting: BTreeMap<K, Instant>,
    waiting_by_time: BTreeSet<(Instant, K)>,
    /// Consecutive failures per key, for backoff.
    failures: BTreeMap<K, u32>,
    base: Duration,
    max: Duration,
}

/// client-go's default backoff.
impl<K: Ord + Clone> Default for Queue<K> {
    fn default() -> Self {
        Queue::with_backoff(BASE_DELAY, MAX_DELAY)
    }
}

impl<K: Ord + Clone> Queue<K> {
    pub fn with_backoff(base: Duration, max: Duration) -> Queue<K> {
        Queue {
            queue: VecDeque::new(),
            dirty: BTreeSet::new(),
            processing: BTreeSet::new(),
            waiting: BTreeMap::new(),
            waiting_by_time: BTreeSet::new(),
            failures: BTreeMap::new(),
            base,
            max,
        }
    }

    /// Marks the key for processing now. Already queued: nothing. Being processed: it runs again
    /// after `done`.
    pub fn add(&mut self, key: K) {
        if !self.dirty.insert(key.clone()) {
            return;
        }
        if !self.processing.contains(&key) {
            self.queue.push_back(key);
        }
    }

    /// Adds the key once `delay` has passed. A key already waiting keeps the earlier due time.
    pub fn add_after(&mut self, key: K, delay: Duration, now: Instant) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let due = now + delay;
        if let Some(&existing) = self.waiting.get(&key) {
            if existing <= due {
                return;
            }
            self.waiting_by_time.remove(&(existing, key.clone()));
        }
        self.waiting.insert(key.clone(), due);
        self.waiting_by_time.insert((due, key));
    }

    /// Adds the key after its backoff (5 ms, 10 ms, 20 ms, … up to 1000 s) and counts a failure.
    /// Returns the delay.
    pub fn add_rate_limited(&mut self, key: K, now: Instant) -> Duration {
        self.add_rate_limited_at_least(key, Duration::ZERO, now)
    }

    /// As `add_rate_limited`, but not sooner than `at_least` (the server's Retry-After, capped at
    /// the longest backoff): a later `add_after` cannot postpone a key already waiting, so the wait
    /// is decided here, once.
    pub fn add_rate_limited_at_least(
        &mut self,
        key: K,
        at_least: Duration,
        now: Instant,
    ) -> Duration {
        let failures = self.failures.entry(key.clone()).or_insert(0);
        // `base * 2^failures`, capped at `max`.
        let backoff = self.base.saturating_mul(2u32.saturating_pow(*failures));
        let delay = backoff.min(self.max).max(at_least.min(self.max));
        *failures = failures.saturating_add(1);
        self.add_after(key, delay, now);
        delay
    }

    /// Resets the key's backoff (after a success).
    pub fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// The next key to process, moving delayed keys that are due into the queue first. The caller
    /// must call `done` with it.
    pub fn get(&mut self, now: Instant) -> Option<K> {
        self.promote_due(now);
        let key = self.queue.pop_front()?;
        self.dirty.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }

    /// Processing of `key` finished; if it was added meanwhile, it is queued again.
    pub fn done(&mut self, key: &K) {
        self.processing.remove(key);
        if self.dirty.contains(key) {
            self.queue.push_back(key.clone());
        }
    }

    /// When the earliest delayed key is due (None: nothing waits).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting_by_time.first().map(|(t, _)| *t)
    }

    /// Keys ready to hand out now (not counting delayed ones).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queued, delayed, or being processed.
    pub fn contains(&self, key: &K) -> bool {
        self.dirty.contains(key) || self.waiting.contains_key(key) || self.processing.contains(key)
    }

    /// Drops the key wherever it waits (queued, delayed, or due again after `done`); its
    /// backoff count stays.
    pub fn remove(&mut self, key: &K) {
        if self.dirty.remove(key) {
            self.queue.retain(|k| k != key);
        }
        if let Some(due) = self.waiting.remove(key) {
            self.waiting_by_time.remove(&(due, key.clone()));
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while self.next_deadline().is_some_and(|due| due <= now)
            && let Some((_, key)) = self.waiting_by_time.pop_first()
        {
            self.waiting.remove(&key);
            self.add(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::controller::testutil::{Rng, shuffled};

    impl<K: Ord + Clone> Queue<K> {
        fn num_requeues(&self, key: &K) -> u32 {
            self.failures.get(key).copied().unwrap_or(0)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(&'static str),
        AddAfter(&'static str, u64),
        Get(Option<&'static str>),
        Done(&'static str),
        Advance(u64),
        Deadline(Option<u64>),
    }
    use Op::*;

    /// Runs ops from t0; `Get` checks what comes out, `Deadline` the ms offset of the next deadline.
    fn run(name: &str, ops: &[Op]) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut q: Queue<&'static str> = Queue::default();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Add(k) => q.add(k),
                AddAfter(k, ms) => q.add_after(k, Duration::from_millis(*ms), now),
                Get(want) => assert_eq!(q.get(now), *want, "{name}: op {i}"),
                Done(k) => q.done(k),
                Advance(ms) => now += Duration::from_millis(*ms),
                Deadline(want) => assert_eq!(
                    q.next_deadline()
                        .map(|d| d.duration_since(t0).as_millis() as u64),
                    *want,
                    "{name}: op {i}"
                ),
            }
        }
    }

    #[test]
    fn queue_semantics_table() {
        let cases: Vec<(&str, Vec<Op>)> = vec![
            (
                "fifo",
                vec![
                    Add("a"),
                    Add("b"),
                    Get(Some("a")),
                    Get(Some("b")),
                    Get(None),
                ],
            ),
            (
                "dedup while queued",
                vec![Add("a"), Add("a"), Get(Some("a")), Get(None)],
            ),
            (
                "added while processing runs again after done, not before",
                vec![
                    Add("a"),
                    Get(Some("a")),
                    Add("a"),
                    Get(None),
                    Done("a"),
                    Get(Some("a")),
                    Done("a"),
                    Get(None),
                ],
            ),
            (
                "added twice while processing runs once more",
                vec![
                    Add("a"),
                    Get(Some("a")),
                    Add("a"),
                    Add("a"),
                    Done("a"),
                    Get(Some("a")),
                    Done("a"),
                    Get(None),
                ],
            ),
            (
                "done without re-add drops it",
                vec![Add("a"), Get(Some("a")), Done("a"), Get(None)],
            ),
            (
                "others proceed while one is processing",
                vec![
                    Add("a"),
                    Get(Some("a")),
                    Add("b"),
                    Add("a"),
                    Get(Some("b")),
                    Get(None),
                    Done("a"),
                    Get(Some("a")),
                ],
            ),
            (
                "delayed key due only after its delay",
                vec![
                    AddAfter("a", 100),
                    Deadline(Some(100)),
                    Get(None),
                    Advance(99),
                    Get(None),
                    Advance(1),
                    Get(Some("a")),
                    Deadline(None),
                ],
            ),
            (
                "earlier delay wins",
                vec![
                    AddAfter("a", 100),
                    AddAfter("a", 50),
                    AddAfter("a", 200),
                    Deadline(Some(50)),
                    Advance(50),
                    Get(Some("a")),
                    Get(None),
                    Deadline(None),
                ],
            ),
            (
                "delayed key already queued is not doubled",
                vec![
                    Add("a"),
                    AddAfter("a", 10),
                    Advance(10),
                    Get(Some("a")),
                    Get(None),
                ],
            ),
            (
                "delayed key due while processing waits for done",
                vec![
                    Add("a"),
                    Get(Some("a")),
                    AddAfter("a", 10),
                    Advance(10),
                    Get(None),
                    Done("a"),
                    Get(Some("a")),
                ],
            ),
            (
                "zero delay is immediate",
                vec![AddAfter("a", 0), Get(Some("a")), Deadline(None)],
            ),
            (
                "deadline is the earliest of several",
                vec![
                    AddAfter("a", 30),
                    AddAfter("b", 10),
                    AddAfter("c", 20),
                    Deadline(Some(10)),
                    Advance(25),
                    Get(Some("b")),
                    Get(Some("c")),
                    Get(None),
                    Deadline(Some(30)),
                ],
            ),
        ];
        let mut rng = Rng::new(5);
        for _ in 0..50 {
            for (name, ops) in shuffled(&cases, &mut rng) {
                run(name, ops);
            }
        }
    }

    #[test]
    fn backoff_doubles_from_5ms_to_1000s_and_forget_resets() {
        let now = Instant::now();
        let mut q: Queue<&str> = Queue::default();
        let delays: Vec<u128> = (0..4)
            .map(|_| q.add_rate_limited("a", now).as_millis())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40]);
        assert_eq!(q.num_requeues(&"a"), 4);
        assert_eq!(q.add_rate_limited("b", now).as_millis(), 5, "per key");
        for _ in 0..100 {
            q.add_rate_limited("a", now);
        }
        assert_eq!(q.add_rate_limited("a", now), MAX_DELAY);
        q.forget(&"a");
        assert_eq!(q.add_rate_limited("a", now).as_millis(), 5);
        // Earliest deadline is the first 5 ms of "a" (added first, before any longer ones).
        assert_eq!(q.next_deadline(), Some(now + Duration::from_millis(5)));
    }

    #[test]
    fn retry_after_longer_than_the_backoff_is_waited_for() {
        let now = Instant::now();
        let mut q: Queue<&str> = Queue::default();
        let d = q.add_rate_limited_at_least("a", Duration::from_secs(3), now);
        assert_eq!(d, Duration::from_secs(3));
        assert_eq!(
            q.get(now + Duration::from_secs(1)),
            None,
            "not before Retry-After"
        );
        assert_eq!(q.get(now + Duration::from_secs(3)), Some("a"));
        q.done(&"a");
        // Shorter than the backoff: the backoff wins, and it still counts as a failure.
        let d = q.add_rate_limited_at_least("a", Duration::from_millis(1), now);
        assert_eq!(d, Duration::from_millis(10));
        assert_eq!(q.num_requeues(&"a"), 2);
    }

    #[test]
    fn never_lost_never_concurrent_under_random_ops() {
        let mut rng = Rng::new(99);
        let keys = ["a", "b", "c", "d"];
        for _ in 0..200 {
            let mut q: Queue<&str> = Queue::default();
            let now = Instant::now();
            let mut in_hand: Vec<&str> = Vec::new();
            let mut pending: BTreeSet<&str> = BTreeSet::new(); // added since last handed out
            for _ in 0..60 {
                let k = keys[(rng.next() % 4) as usize];
                match rng.next() % 3 {
                    0 => {
                        q.add(k);
                        pending.insert(k);
                    }
                    1 => {
                        if let Some(got) = q.get(now) {
                            assert!(!in_hand.contains(&got), "{got} handed out twice at once");
                            pending.remove(got);
                            in_hand.push(got);
                        }
                    }
                    _ => {
                        if !in_hand.is_empty() {
                            let i = (rng.next() as usize) % in_hand.len();
                            q.done(&in_hand.swap_remove(i));
                        }
                    }
                }
            }
            for k in in_hand.drain(..) {
                q.done(&k);
            }
            let mut drained = BTreeSet::new();
            while let Some(k) = q.get(now) {
                drained.insert(k);
                q.done(&k);
            }
            assert!(
                pending.is_subset(&drained),
                "lost: {pending:?} vs {drained:?}"
            );
        }
    }

    /// A Retry-After beyond the longest backoff (a proxy's day, or a number near u64::MAX that
    /// would overflow the due time) waits the longest backoff.
    #[test]
    fn a_huge_retry_after_waits_the_longest_backoff() {
        let mut q: Queue<u32> = Queue::with_backoff(Duration::from_millis(5), MAX_DELAY);
        let now = Instant::now();
        let delay = q.add_rate_limited_at_least(1, Duration::from_secs(u64::MAX), now);
        assert_eq!(delay, MAX_DELAY);
        assert_eq!(q.next_deadline(), Some(now + MAX_DELAY));
    }
}
