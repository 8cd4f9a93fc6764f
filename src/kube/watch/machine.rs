//! The list-then-watch loop as an explicit state machine (after kube-rs's watcher and client-go's
//! reflector). Pure apart from its random draws: no I/O, no clock of its own (time is passed in);
//! its only randomness (watch timeouts, back-off jitter) comes from std's keyed hasher, and tests
//! check ranges, not values.
//!
//! Owns: when to list, watch, re-watch, relist and back off, and the resourceVersion to resume from.
//! Must not: do I/O or sleep; the runner executes the [`Action`]s and feeds back [`Input`]s.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use super::stream::{WatchEvent, WatchMsg};
use crate::kube::Error;
use crate::kube::client::ObjectList;

/// A watch that ends sooner than this without a single event is treated as a failure (client-go).
pub const MIN_HEALTHY_WATCH: Duration = Duration::from_secs(1);
/// Back-off after a 403: RBAC is fixed by a person, not by retrying fast.
pub const FORBIDDEN_BACKOFF: Duration = Duration::from_secs(30);

/// A random `u64` from std's randomly keyed hasher (no RNG crate): each `RandomState` has its
/// own keys (drawn from the OS per thread, stepped per use), so replicas and watchers differ. The
/// controller's resync jitter draws the same way.
fn random() -> u64 {
    RandomState::new().hash_one(0u8)
}

/// kube-rs's default watcher back-off: 800 ms doubling to 30 s, reset after 120 s without errors.
const FIRST_BACKOFF: Duration = Duration::from_millis(800);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const BACKOFF_RESET: Duration = Duration::from_secs(120);

/// Exponential back-off with jitter that resets after a quiet period (`FIRST_BACKOFF` doubling
/// to `MAX_BACKOFF`, reset after `BACKOFF_RESET` without errors).
#[derive(Debug, Clone)]
pub struct Backoff {
    /// Each delay is shortened by up to this fraction (0 to 1) at random, so it never exceeds
    /// `MAX_BACKOFF`.
    pub jitter: f64,
    current: Option<Duration>,
    last_failure: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            jitter: 0.25,
            current: None,
            last_failure: None,
        }
    }
}

impl Backoff {
    /// The delay after a failure at `now`.
    pub fn next(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last_failure
            && now.saturating_duration_since(last) >= BACKOFF_RESET
        {
            self.current = None;
        }
        self.last_failure = Some(now);
        let base = match self.current {
            None => FIRST_BACKOFF,
            Some(d) => d.saturating_mul(2).min(MAX_BACKOFF),
        };
        self.current = Some(base);
        // Uniform in [0, 1): the top 53 bits, as many as an f64 holds.
        let unit = (random() >> 11) as f64 / (1u64 << 53) as f64;
        base.mul_f64(1.0 - self.jitter * unit)
    }
}

/// What the runner feeds back after executing an [`Action`].
#[derive(Debug)]
pub enum Input<T> {
    /// The paginated LIST succeeded.
    Listed(ObjectList<T>),
    /// The WATCH request was answered 200: the stream is open.
    WatchOpened,
    /// One event off the open stream.
    Event(WatchEvent<T>),
    /// The server ended the stream normally.
    StreamEnded,
    /// The LIST, the WATCH request or the open stream failed (stalls are `Error::Timeout`).
    Failed(Error),
    /// The requested sleep is over.
    Slept,
}

/// What the runner must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    List,
    Watch {
        resource_version: String,
        timeout_seconds: u32,
    },
    /// Keep reading the open stream.
    Read,
    Sleep(Duration),
}

/// The outcome of one step: messages for the consumer, log lines, and the next action.
#[derive(Debug)]
pub struct Step<T> {
    pub msgs: Vec<WatchMsg<T>>,
    pub logs: Vec<(log::Level, String)>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Listing,
    /// The WATCH request from `rv` is outstanding.
    Opening {
        rv: String,
    },
    /// The stream opened at `opened` and has delivered `events` events; `rv` is the last one's.
    Watching {
        rv: String,
        opened: Instant,
        events: u64,
    },
    Backoff {
        /// Resume by watching from this RV, or relist if None.
        rv: Option<String>,
    },
}

/// The watcher of one resource. `name` appears in log lines (e.g. `services`).
#[derive(Debug)]
pub struct Machine {
    name: String,
    state: State,
    backoff: Backoff,
    synced: bool,
    forbidden_logged: bool,
}

impl Machine {
    pub fn new(name: impl Into<String>, backoff: Backoff) -> Machine {
        Machine {
            name: name.into(),
            state: State::Listing,
            backoff,
            synced: false,
            forbidden_logged: false,
        }
    }

    /// The first action: list.
    pub fn start<T>(&mut self) -> Step<T> {
        self.state = State::Listing;
        Step::to(Action::List)
    }

    /// Has the first LIST been delivered?
    #[cfg(test)]
    pub fn synced(&self) -> bool {
        self.synced
    }

    fn watch_from(&mut self, rv: String) -> Action {
        // client-go: 5–10 min, random so watchers do not all restart in lock-step.
        let timeout_seconds = 300 + (random() % 301) as u32;
        self.state = State::Opening { rv: rv.clone() };
        Action::Watch {
            resource_version: rv,
            timeout_seconds,
        }
    }

    pub fn step<T>(&mut self, input: Input<T>, now: Instant) -> Step<T> {
        // Listing, unless the branch taken moves on to another state.
        let state = std::mem::replace(&mut self.state, State::Listing);
        match (state, input) {
            (State::Listing, Input::Listed(list)) => {
                let n = list.items.len();
                let verb = if self.synced { "relisted" } else { "synced" };
                let log = format!("{verb} {}: {n} objects", self.name);
                self.synced = true;
                self.forbidden_logged = false;
                let mut step = Step::to(self.watch_from(list.resource_version.clone()));
                step.msgs
                    .push(WatchMsg::Restarted(list.items, list.resource_version));
                step.log(log::Level::Info, log)
            }
            (State::Opening { rv }, Input::WatchOpened) => {
                self.state = State::Watching {
                    rv,
                    opened: now,
                    events: 0,
                };
                Step::to(Action::Read)
            }
            (State::Watching { rv, opened, events }, Input::Event(event)) => {
                self.on_event(rv, opened, events, event, now)
            }
            (State::Watching { rv, opened, events }, Input::StreamEnded) => {
                if events == 0 && now.saturating_duration_since(opened) < MIN_HEALTHY_WATCH {
                    let detail = "watch ended at once without events";
                    return self.fail(Some(rv), detail, None, now);
                }
                let line = format!("{}: watch ended, re-watching", self.name);
                Step::to(self.watch_from(rv)).log(log::Level::Debug, line)
            }
            (State::Watching { rv, .. }, Input::Failed(e @ Error::Timeout { .. })) => {
                // A stalled stream: the connection died silently. Resume, no back-off needed: it
                // took the whole idle timeout to notice.
                let line = format!("{}: {e}; resuming", self.name);
                Step::to(self.watch_from(rv)).log(log::Level::Info, line)
            }
            (State::Opening { rv } | State::Watching { rv, .. }, Input::Failed(e)) => {
                if e.is_gone() {
                    return self.relist(&e.to_string());
                }
                self.fail_with(Some(rv), e, now)
            }
            (State::Listing, Input::Failed(e)) => self.fail_with(None, e, now),
            (State::Backoff { rv: Some(rv) }, Input::Slept) => Step::to(self.watch_from(rv)),
            (State::Backoff { rv: None }, Input::Slept) => Step::to(Action::List),
            (state, input) => {
                // A runner bug, not a server problem: say so and start over cleanly.
                let log = format!(
                    "{}: unexpected {} in state {state:?}; relisting",
                    self.name,
                    input_name(&input)
                );
                Step::to(Action::List).log(log::Level::Error, log)
            }
        }
    }

    fn on_event<T>(
        &mut self,
        rv: String,
        opened: Instant,
        events: u64,
        event: WatchEvent<T>,
        now: Instant,
    ) -> Step<T> {
        let (msg, new_rv) = match event {
            WatchEvent::Added(object, rv) | WatchEvent::Modified(object, rv) => {
                (Some(WatchMsg::Applied(object)), rv)
            }
            WatchEvent::Deleted(object, rv) => (Some(WatchMsg::Deleted(object)), rv),
            WatchEvent::Bookmark(rv) => (None, rv),
            WatchEvent::Error(status) => {
                let e = Error::Api(Box::new(status));
                if e.is_gone() {
                    return self.relist(&e.to_string());
                }
                return self.fail_with(Some(rv), e, now);
            }
        };
        // An object without an RV (never from a real server) must not lose our place.
        let rv = if new_rv.is_empty() { rv } else { new_rv };
        let events = events + 1;
        self.state = State::Watching { rv, opened, events };
        let mut step = Step::to(Action::Read);
        step.msgs.extend(msg);
        step
    }

    /// Called from `step` only, where the state is already `Listing`.
    fn relist<T>(&mut self, why: &str) -> Step<T> {
        let line = format!("{}: relisting after 410 ({why})", self.name);
        Step::to(Action::List).log(log::Level::Info, line)
    }

    fn fail_with<T>(&mut self, rv: Option<String>, e: Error, now: Instant) -> Step<T> {
        if e.is_forbidden() {
            self.state = State::Backoff { rv };
            let step = Step::to(Action::Sleep(FORBIDDEN_BACKOFF));
            if self.forbidden_logged {
                return step;
            }
            self.forbidden_logged = true;
            let secs = FORBIDDEN_BACKOFF.as_secs();
            let line = format!(
                "{}: forbidden (missing RBAC?): {e}; retrying every {secs}s",
                self.name
            );
            return step.log(log::Level::Error, line);
        }
        // A 410 while listing (continue token expired) lands here too: relist after a pause.
        self.fail(rv, &e.to_string(), e.retry_after(), now)
    }

    fn fail<T>(
        &mut self,
        rv: Option<String>,
        detail: &str,
        retry_after: Option<Duration>,
        now: Instant,
    ) -> Step<T> {
        let mut delay = self.backoff.next(now);
        if let Some(ra) = retry_after {
            // Honour the server's wish, within reason.
            delay = delay.max(ra.min(MAX_BACKOFF));
        }
        self.state = State::Backoff { rv };
        let secs = delay.as_secs_f64();
        let line = format!("{}: backing off {secs:.1}s: {detail}", self.name);
        Step::to(Action::Sleep(delay)).log(log::Level::Info, line)
    }
}

impl<T> Step<T> {
    /// Go on with `action`; no messages, no log lines.
    fn to(action: Action) -> Step<T> {
        let (msgs, logs) = (Vec::new(), Vec::new());
        Step { msgs, logs, action }
    }

    fn log(mut self, level: log::Level, line: String) -> Step<T> {
        self.logs.push((level, line));
        self
    }
}

fn input_name<T>(input: &Input<T>) -> &'static str {
    match input {
        Input::Listed(_) => "list result",
        Input::WatchOpened => "watch opened",
        Input::Event(_) => "event",
        Input::StreamEnded => "stream end",
        Input::Failed(_) => "failure",
        Input::Slept => "end of sleep",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::ApiStatus;

    type Obj = (&'static str, &'static str); // (name, rv)

    fn machine(jitter: f64) -> Machine {
        Machine::new(
            "services",
            Backoff {
                jitter,
                ..Backoff::default()
            },
        )
    }

    fn list(rv: &str, items: Vec<Obj>) -> Input<Obj> {
        Input::Listed(ObjectList {
            resource_version: rv.into(),
            items,
        })
    }

    fn added(name: &'static str, rv: &'static str) -> Input<Obj> {
        Input::Event(WatchEvent::Added((name, rv), rv.into()))
    }

    fn deleted(name: &'static str, rv: &'static str) -> Input<Obj> {
        Input::Event(WatchEvent::Deleted((name, rv), rv.into()))
    }

    fn bookmark(rv: &str) -> Input<Obj> {
        Input::Event(WatchEvent::Bookmark(rv.into()))
    }

    fn status(code: u16, reason: &str) -> ApiStatus {
        ApiStatus {
            code,
            reason: reason.into(),
            ..Default::default()
        }
    }

    fn watch_rv(a: &Action) -> &str {
        match a {
            Action::Watch {
                resource_version, ..
            } => resource_version,
            other => panic!("expected a watch, got {other:?}"),
        }
    }

    /// Run a script of inputs at `t0 + offset`, returning every step.
    fn run(m: &mut Machine, t0: Instant, script: Vec<(u64, Input<Obj>)>) -> Vec<Step<Obj>> {
        script
            .into_iter()
            .map(|(ms, input)| m.step(input, t0 + Duration::from_millis(ms)))
            .collect()
    }

    #[test]
    fn list_watch_bookmark_end_rewatches_from_the_bookmark_without_relisting() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let first: Step<Obj> = m.start();
        assert_eq!(first.action, Action::List);
        let steps = run(
            &mut m,
            t0,
            vec![
                (0, list("100", vec![("web", "90")])),
                (10, Input::WatchOpened),
                (20, added("dns", "101")),
                (30, bookmark("150")),
                (400_000, Input::StreamEnded),
            ],
        );
        assert_eq!(
            steps[0].msgs,
            vec![WatchMsg::Restarted(vec![("web", "90")], "100".into())]
        );
        assert!(m.synced());
        assert_eq!(watch_rv(&steps[0].action), "100");
        match steps[0].action {
            Action::Watch {
                timeout_seconds, ..
            } => assert!((300..=600).contains(&timeout_seconds)),
            _ => unreachable!(),
        }
        assert_eq!(steps[1].action, Action::Read);
        assert_eq!(steps[2].msgs, vec![WatchMsg::Applied(("dns", "101"))]);
        assert!(steps[3].msgs.is_empty(), "a bookmark emits nothing");
        assert_eq!(watch_rv(&steps[4].action), "150");
        assert!(steps[4].msgs.is_empty());
    }

    #[test]
    fn watch_timeouts_are_spread_over_300_to_600_seconds() {
        let mut m = machine(0.0);
        let mut seen = std::collections::BTreeSet::new();
        let _: Step<Obj> = m.start();
        let mut s = m.step(list("1", vec![]), Instant::now());
        for _ in 0..200 {
            let Action::Watch {
                timeout_seconds, ..
            } = s.action
            else {
                panic!()
            };
            assert!((300..=600).contains(&timeout_seconds));
            seen.insert(timeout_seconds);
            let t = Instant::now();
            m.step::<Obj>(Input::WatchOpened, t);
            s = m.step(Input::StreamEnded, t + Duration::from_secs(300));
        }
        assert!(seen.len() > 50, "{seen:?}");
    }

    #[test]
    fn expired_in_stream_error_relists_and_the_snapshot_drops_objects_deleted_in_the_gap() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let _: Step<Obj> = m.start();
        let steps = run(
            &mut m,
            t0,
            vec![
                (0, list("100", vec![("web", "90"), ("dns", "95")])),
                (1, Input::WatchOpened),
                (2, Input::Event(WatchEvent::Error(status(410, "Expired")))),
                (3, list("300", vec![("dns", "95")])),
            ],
        );
        assert_eq!(steps[2].action, Action::List);
        assert!(
            steps[2]
                .logs
                .iter()
                .any(|(_, l)| l.contains("relisting after 410"))
        );
        assert_eq!(
            steps[3].msgs,
            vec![WatchMsg::Restarted(vec![("dns", "95")], "300".into())]
        );
        assert_eq!(watch_rv(&steps[3].action), "300");
    }

    #[test]
    fn http_410_on_the_watch_request_relists_at_once() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let _: Step<Obj> = m.start();
        let steps = run(
            &mut m,
            t0,
            vec![
                (0, list("100", vec![("web", "90")])),
                (1, Input::Failed(Error::Api(Box::new(status(410, "Gone"))))),
                (2, list("200", vec![])),
            ],
        );
        assert_eq!(steps[1].action, Action::List);
        assert_eq!(
            steps[2].msgs,
            vec![WatchMsg::Restarted(vec![], "200".into())]
        );
    }

    #[test]
    fn deleted_events_are_emitted_and_advance_the_rv() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let _: Step<Obj> = m.start();
        let steps = run(
            &mut m,
            t0,
            vec![
                (0, list("100", vec![("web", "90")])),
                (1, Input::WatchOpened),
                (2, deleted("web", "120")),
                (5_000, Input::StreamEnded),
            ],
        );
        assert_eq!(steps[2].msgs, vec![WatchMsg::Deleted(("web", "120"))]);
        assert_eq!(watch_rv(&steps[3].action), "120");
    }

    fn sleep_of(s: &Step<Obj>) -> Duration {
        match s.action {
            Action::Sleep(d) => d,
            ref other => panic!("expected sleep, got {other:?}"),
        }
    }

    #[test]
    fn backoff_doubles_from_800ms_to_30s_and_resets_after_120s_healthy() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let _: Step<Obj> = m.start();
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let s = m.step::<Obj>(
                Input::Failed(Error::Connect {
                    server: "s".into(),
                    detail: "refused".into(),
                }),
                now,
            );
            let d = sleep_of(&s);
            delays.push(d.as_millis());
            now += d;
            assert_eq!(m.step::<Obj>(Input::Slept, now).action, Action::List);
        }
        assert_eq!(delays, [800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
        // Healthy for 120 s: list, watch, a long stream; then a failure starts over at 800 ms.
        m.step(list("1", vec![]), now);
        m.step::<Obj>(Input::WatchOpened, now);
        now += Duration::from_secs(121);
        let s = m.step::<Obj>(
            Input::Failed(Error::Http {
                code: 500,
                body: String::new(),
                retry_after: None,
            }),
            now,
        );
        assert_eq!(sleep_of(&s), Duration::from_millis(800));
        // After back-off the watch resumes from its RV, without a relist.
        assert_eq!(watch_rv(&m.step::<Obj>(Input::Slept, now).action), "1");
    }

    #[test]
    fn jitter_only_shortens_delays() {
        let mut m = machine(0.5);
        let mut now = Instant::now();
        let _: Step<Obj> = m.start();
        for i in 0..20 {
            let s = m.step::<Obj>(
                Input::Failed(Error::Connect {
                    server: "s".into(),
                    detail: "x".into(),
                }),
                now,
            );
            let d = sleep_of(&s);
            let base = Duration::from_millis(800 * (1u64 << i.min(6))).min(Duration::from_secs(30));
            assert!(d <= base && d >= base / 2, "{i}: {d:?} vs {base:?}");
            now += d;
            m.step::<Obj>(Input::Slept, now);
        }
    }

    #[test]
    fn a_watch_that_ends_at_once_without_events_counts_as_an_error() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let _: Step<Obj> = m.start();
        let steps = run(
            &mut m,
            t0,
            vec![
                (0, list("100", vec![])),
                (1, Input::WatchOpened),
                (50, Input::StreamEnded),
                (900, Input::Slept),
                (901, Input::WatchOpened),
                (950, Input::StreamEnded),
            ],
        );
        assert_eq!(sleep_of(&steps[2]), Duration::from_millis(800));
        assert_eq!(watch_rv(&steps[3].action), "100");
        assert_eq!(sleep_of(&steps[5]), Duration::from_millis(1600));
    }

    #[test]
    fn forbidden_logs_once_naming_rbac_and_waits_30s() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let _: Step<Obj> = m.start();
        let forbidden = || Input::Failed(Error::Api(Box::new(status(403, "Forbidden"))));
        let steps = run(
            &mut m,
            t0,
            vec![
                (0, forbidden()),
                (30_000, Input::Slept),
                (30_001, forbidden()),
            ],
        );
        assert_eq!(sleep_of(&steps[0]), FORBIDDEN_BACKOFF);
        assert_eq!(sleep_of(&steps[2]), FORBIDDEN_BACKOFF);
        let errors: Vec<_> = steps
            .iter()
            .flat_map(|s| &s.logs)
            .filter(|(l, _)| *l == log::Level::Error)
            .collect();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].1.contains("services") && errors[0].1.contains("missing RBAC?"));
    }

    #[test]
    fn unauthorized_backs_off_and_retries() {
        let mut m = machine(0.0);
        let _: Step<Obj> = m.start();
        let s = m.step::<Obj>(
            Input::Failed(Error::Unauthorized { server: "s".into() }),
            Instant::now(),
        );
        assert_eq!(sleep_of(&s), Duration::from_millis(800));
        assert_eq!(
            m.step::<Obj>(Input::Slept, Instant::now()).action,
            Action::List
        );
    }

    #[test]
    fn a_stalled_stream_resumes_from_the_last_rv_without_backoff() {
        let mut m = machine(0.0);
        let t0 = Instant::now();
        let _: Step<Obj> = m.start();
        let steps = run(
            &mut m,
            t0,
            vec![
                (0, list("100", vec![])),
                (1, Input::WatchOpened),
                (2, added("a", "105")),
                (
                    300_000,
                    Input::Failed(Error::Timeout {
                        server: "s".into(),
                        what: "stalled".into(),
                    }),
                ),
            ],
        );
        assert_eq!(watch_rv(&steps[3].action), "105");
    }

    #[test]
    fn retry_after_lengthens_the_pause() {
        let mut m = machine(0.0);
        let _: Step<Obj> = m.start();
        let s = m.step::<Obj>(
            Input::Failed(Error::Http {
                code: 429,
                body: "Too many requests".into(),
                retry_after: Some(Duration::from_secs(7)),
            }),
            Instant::now(),
        );
        assert_eq!(sleep_of(&s), Duration::from_secs(7));
    }

    #[test]
    fn unexpected_input_restarts_with_a_list_instead_of_panicking() {
        let mut m = machine(0.0);
        let _: Step<Obj> = m.start();
        let s = m.step::<Obj>(Input::WatchOpened, Instant::now());
        assert_eq!(s.action, Action::List);
        assert_eq!(s.logs[0].0, log::Level::Error);
        // The machine is listing again: the LIST's answer leads to a watch from its RV.
        let s = m.step(list("9", vec![]), Instant::now());
        assert_eq!(watch_rv(&s.action), "9");
    }
}
