//! Splits a de-chunked watch body into lines. Pure: no I/O, no clock.
//!
//! Owns: reassembling lines from reads of any size (an event may span many reads, a read may hold
//! several events) and the line length bound. Must not: interpret the lines.

/// Longest line accepted: far above any real object (etcd caps objects at 1.5 MiB by default), low
/// enough that a broken stream cannot make us buffer without end.
pub const MAX_LINE: usize = 16 << 20;

/// A line grew past the bound without a newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong {
    pub max: usize,
}

/// Accumulates bytes; hands out complete `\n`-terminated lines (without the newline).
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
    /// Bytes after `start` already known to hold no newline, so long lines are not rescanned.
    scanned: usize,
    max: usize,
}

impl Default for LineDecoder {
    fn default() -> Self {
        LineDecoder::new(MAX_LINE)
    }
}

impl LineDecoder {
    pub fn new(max: usize) -> LineDecoder {
        LineDecoder {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            // Compact once the consumed prefix dominates, keeping feeds amortised O(n).
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line, `None` if more bytes are needed. Empty lines are skipped.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineTooLong> {
        loop {
            let pending = &self.buf[self.start..];
            let Some(pos) = pending[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = pending.len();
                if pending.len() > self.max {
                    return Err(LineTooLong { max: self.max });
                }
                return Ok(None);
            };
            let end = self.scanned + pos;
            if end > self.max {
                return Err(LineTooLong { max: self.max });
            }
            let mut line = pending[..end].to_vec();
            self.start += end + 1;
            self.scanned = 0;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Ok(Some(line));
        }
    }

    /// Bytes received after the last complete line (a stream that ends here ended mid-event).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Vec<u8> {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/apiserver/services-watch.http"
        ))
        .unwrap();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        raw[at + 4..].to_vec()
    }

    fn drain(d: &mut LineDecoder, out: &mut Vec<Vec<u8>>) {
        for _ in 0..1000 {
            match d.next_line().unwrap() {
                Some(l) => out.push(l),
                None => return,
            }
        }
        panic!("too many lines");
    }

    #[test]
    fn every_split_point_of_the_fixture_watch_body_gives_the_same_lines() {
        let body = body();
        let expected: Vec<Vec<u8>> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| l.to_vec())
            .collect();
        assert_eq!(expected.len(), 5);
        for split in 0..=body.len() {
            let mut d = LineDecoder::default();
            let mut out = Vec::new();
            d.feed(&body[..split]);
            drain(&mut d, &mut out);
            d.feed(&body[split..]);
            drain(&mut d, &mut out);
            assert_eq!(out, expected, "split at {split}");
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn byte_by_byte_and_three_way_splits_give_the_same_lines() {
        let body = body();
        let mut d = LineDecoder::default();
        let mut out = Vec::new();
        for b in &body {
            d.feed(std::slice::from_ref(b));
            drain(&mut d, &mut out);
        }
        assert_eq!(out.len(), 5);
        // Three pieces, at a coarse grid of split pairs (every pair would be quadratic).
        for a in (0..body.len()).step_by(97) {
            for b in (a..body.len()).step_by(89) {
                let mut d = LineDecoder::default();
                let mut got = Vec::new();
                for piece in [&body[..a], &body[a..b], &body[b..]] {
                    d.feed(piece);
                    drain(&mut d, &mut got);
                }
                assert_eq!(got, out, "splits {a},{b}");
            }
        }
    }

    #[test]
    fn oversize_line_is_an_error_not_unbounded_buffering() {
        let mut d = LineDecoder::new(10);
        d.feed(b"0123456789");
        assert_eq!(d.next_line(), Ok(None));
        d.feed(b"abc");
        assert_eq!(d.next_line(), Err(LineTooLong { max: 10 }));
        let mut d = LineDecoder::new(10);
        d.feed(b"0123456789abc\n");
        assert_eq!(d.next_line(), Err(LineTooLong { max: 10 }));
        let mut d = LineDecoder::new(10);
        d.feed(b"0123456789\nok\n");
        assert_eq!(d.next_line().unwrap().unwrap(), b"0123456789");
        assert_eq!(d.next_line().unwrap().unwrap(), b"ok");
    }

    #[test]
    fn blank_lines_and_crlf_are_skipped() {
        let mut d = LineDecoder::default();
        d.feed(b"\n\r\n{}\r\n");
        assert_eq!(d.next_line().unwrap().unwrap(), b"{}");
        assert_eq!(d.next_line().unwrap(), None);
    }
}
