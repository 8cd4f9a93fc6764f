//! Injected faults: the next N requests matching a method and path prefix get a failure instead
//! of (or before) their normal answer. Pure: matching only; the server acts on the result.

use std::time::Duration;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Answer with this HTTP status and the matching Status body (401, 403, 409, 410, 429 with
    /// `Retry-After: 1`, 500, 503, ...).
    Status(u16),
    /// API Priority and Fairness rejection: 429 text/plain with `Retry-After`.
    Throttled { retry_after: u32 },
    /// Wait this long, then answer normally.
    Stall(Duration),
    /// Close the connection without answering.
    Drop,
    /// Do the request, then close the connection without answering: the client cannot tell
    /// whether its write happened (a connection cut after the apiserver committed it).
    ApplyThenDrop,
    /// Close the connection without answering, and do the request this long afterwards: a write
    /// the server commits after the client gave up on it (and maybe after it read the object again).
    DropThenApplyAfter(Duration),
    /// Watch only: send the first half of the first event line, then close.
    DropMidObject,
    /// Watch only: send headers, then nothing for this long, even past the watch's timeout (a dead
    /// peer or a partition: a live server ends a quiet watch at its timeout), then end the stream
    /// cleanly.
    StallStream(Duration),
    /// Watch only: send one line that is not JSON, then close.
    Garbage,
    /// Watch only: end the stream cleanly (`0\r\n\r\n`) after this many events.
    EndEarly(usize),
}

impl FaultKind {
    /// Faults that only make sense on a watch stream.
    pub fn watch_only(&self) -> bool {
        matches!(
            self,
            FaultKind::DropMidObject
                | FaultKind::StallStream(_)
                | FaultKind::Garbage
                | FaultKind::EndEarly(_)
        )
    }
}

/// A fault for the next `count` requests whose method (if given) and path+query prefix match.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub method: Option<String>,
    /// Compared against the request's path and query, e.g. `/api/v1/services?watch=1` or `/api/v1`.
    /// Ending in `$`: that path exactly, with or without a query (so `.../loadbalancers/a$` is the
    /// main resource, not its `/status`).
    pub path_prefix: String,
    pub count: usize,
    pub kind: FaultKind,
}

impl Fault {
    pub fn new(method: Option<&str>, path_prefix: &str, count: usize, kind: FaultKind) -> Self {
        Fault {
            method: method.map(str::to_string),
            path_prefix: path_prefix.to_string(),
            count,
            kind,
        }
    }

    fn matches(&self, method: &str, target: &str, is_watch: bool) -> bool {
        self.count > 0
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && match self.path_prefix.strip_suffix('$') {
                Some(exact) => {
                    target == exact
                        || target
                            .strip_prefix(exact)
                            .is_some_and(|q| q.starts_with('?'))
                }
                None => target.starts_with(&self.path_prefix),
            }
            && (is_watch || !self.kind.watch_only())
    }
}

/// Takes one use of the first fault that matches; spent faults are removed.
pub fn take(
    faults: &mut std::collections::VecDeque<Fault>,
    method: &str,
    target: &str,
    is_watch: bool,
) -> Option<FaultKind> {
    let i = faults
        .iter()
        .position(|f| f.matches(method, target, is_watch))?;
    faults[i].count -= 1;
    let kind = faults[i].kind.clone();
    if faults[i].count == 0 {
        faults.remove(i);
    }
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_below_it_and_a_dollar_only_the_path_itself() {
        let f = |p: &str| Fault::new(Some("PATCH"), p, 1, FaultKind::Status(500));
        let lb = "/apis/lb.paperlb.com/v1alpha1/namespaces/default/loadbalancers/a";
        assert!(f(lb).matches("PATCH", &format!("{lb}/status"), false));
        assert!(f(lb).matches("patch", lb, false));
        let exact = f(&format!("{lb}$"));
        assert!(exact.matches("PATCH", lb, false));
        assert!(exact.matches("PATCH", &format!("{lb}?fieldManager=x"), false));
        assert!(!exact.matches("PATCH", &format!("{lb}/status"), false));
        assert!(!exact.matches("PATCH", &format!("{lb}b"), false));
        assert!(!exact.matches("GET", lb, false));
    }
}
