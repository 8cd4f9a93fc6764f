//! One open watch response: its lines decoded into [`WatchEvent`]s, and what a watcher emits
//! ([`WatchMsg`]).
//!
//! Owns: splitting the body into lines (bounded by [`MAX_LINE`]), event decoding (an object is
//! decoded once, straight into `T`), the idle-stall error.
//! Must not: decide what to do next (`machine`) or open connections (`runner`, through the client).

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use crate::kube::error::snippet;
use crate::kube::list_page::Envelope;
use crate::kube::transport::{CONNECTION_BUFFER, transport_error};
use crate::kube::{ApiStatus, Error};

/// What a watcher tells its consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchMsg<T> {
    /// A full snapshot from a (re)list at its resourceVersion: everything not in it is gone. The
    /// first one means synced.
    Restarted(Vec<T>, String),
    /// Added or modified.
    Applied(T),
    /// Deleted (the last state, at the delete's resourceVersion).
    Deleted(T),
}

/// One line of a watch stream; the `String` is the event's resourceVersion.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent<T> {
    Added(T, String),
    Modified(T, String),
    Deleted(T, String),
    /// Only the resourceVersion counts: the rest of a bookmark object is an empty skeleton.
    Bookmark(String),
    /// An in-stream failure, e.g. 410 `Expired` for a too-old resourceVersion.
    Error(ApiStatus),
}

/// One watch line as text: the object is kept as raw JSON and decoded once, straight into `T`.
#[derive(serde::Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    object: &'a serde_json::value::RawValue,
}

/// Decode one watch line, the object by `decode` (the watch runner's type-erased objects). `what`
/// names the watch for errors (`WATCH /api/v1/services`).
pub fn decode_event<T>(
    line: &[u8],
    what: &str,
    decode: fn(&str) -> serde_json::Result<T>,
) -> Result<WatchEvent<T>, Error> {
    let decode_err = |detail: String| Error::Decode {
        what: what.to_string(),
        detail: format!(
            "{detail} (line starts {:?})",
            snippet(&String::from_utf8_lossy(&line[..line.len().min(200)]), 120)
        ),
    };
    let text = std::str::from_utf8(line).map_err(|e| decode_err(e.to_string()))?;
    let raw: RawEvent = serde_json::from_str(text).map_err(|e| decode_err(e.to_string()))?;
    let object = || decode(raw.object.get()).map_err(|e| decode_err(e.to_string()));
    // Just `metadata.resourceVersion`, read leniently (anything else reads as "").
    let meta = serde_json::from_str::<Envelope>(raw.object.get()).map(|e| e.metadata);
    let rv = meta.unwrap_or_default().resource_version;
    Ok(match raw.kind.as_ref() {
        "ADDED" => WatchEvent::Added(object()?, rv),
        "MODIFIED" => WatchEvent::Modified(object()?, rv),
        "DELETED" => WatchEvent::Deleted(object()?, rv),
        "BOOKMARK" => WatchEvent::Bookmark(rv),
        "ERROR" => WatchEvent::Error(
            serde_json::from_str::<ApiStatus>(raw.object.get())
                .map_err(|e| decode_err(format!("ERROR event without a Status: {e}")))?,
        ),
        other => return Err(decode_err(format!("unknown event type {other:?}"))),
    })
}

/// Longest watch line accepted: far above any real object (etcd caps objects at 1.5 MiB by
/// default), low enough that a broken stream cannot make us buffer without end.
pub const MAX_LINE: usize = 16 << 20;

/// An open watch response, read line by line. Blocks in [`WatchStream::next_event`].
pub struct WatchStream {
    /// As large as a connection's input buffer: one read returns no more than that holds.
    reader: BufReader<Box<dyn Read + Send>>,
    /// The line being read (an event may span many reads, a read may hold several events).
    line: Vec<u8>,
    what: String,
    server: String,
    idle: Duration,
}

impl WatchStream {
    /// `reader` yields the de-chunked body; its reads fail with a timeout after `idle` without a byte.
    pub(crate) fn new(
        reader: Box<dyn Read + Send>,
        what: String,
        server: String,
        idle: Duration,
    ) -> WatchStream {
        WatchStream {
            reader: BufReader::with_capacity(CONNECTION_BUFFER, reader),
            line: Vec::new(),
            what,
            server,
            idle,
        }
    }

    /// The next event, its object decoded by `decode`, or `None` when the server ended the stream
    /// (timeoutSeconds, restarts). A stall (no byte for the idle timeout) is `Error::Timeout`.
    /// Blank lines are skipped.
    pub fn next_event<T>(
        &mut self,
        decode: fn(&str) -> serde_json::Result<T>,
    ) -> Result<Option<WatchEvent<T>>, Error> {
        loop {
            self.line.clear();
            let mut bounded = (&mut self.reader).take(MAX_LINE as u64 + 1);
            let n = bounded
                .read_until(b'\n', &mut self.line)
                .map_err(|e| self.read_error(e))?;
            if !self.line.ends_with(b"\n") {
                if n > MAX_LINE {
                    return Err(Error::Decode {
                        what: self.what.clone(),
                        detail: format!("a watch event is longer than {MAX_LINE} bytes"),
                    });
                }
                if n > 0 {
                    log::debug!(
                        "{}: stream ended inside an event ({n} bytes dropped)",
                        self.what
                    );
                }
                return Ok(None);
            }
            let line = self.line.trim_ascii();
            if !line.is_empty() {
                return decode_event(line, &self.what, decode).map(Some);
            }
        }
    }

    fn read_error(&self, e: std::io::Error) -> Error {
        match ureq::Error::from(e) {
            ureq::Error::Timeout(_) => Error::Timeout {
                server: self.server.clone(),
                what: format!("{}: no data for {:?}, stream stalled", self.what, self.idle),
            },
            other => transport_error(&self.server, &self.what, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the runner's `decode` does for one type.
    fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
        serde_json::from_str(text)
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Obj {
        metadata: Meta,
    }
    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Meta {
        #[serde(default)]
        name: String,
    }

    fn fixture_body(name: &str) -> Vec<u8> {
        let raw = std::fs::read(format!(
            "{}/tests/fixtures/apiserver/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        raw[at + 4..].to_vec()
    }

    #[test]
    fn fixture_events_decode_in_order_with_their_resource_versions() {
        let body = fixture_body("services-watch.http");
        let events: Vec<WatchEvent<Obj>> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| decode_event(l, "WATCH services", from_str).unwrap())
            .collect();
        let rvs: Vec<(&str, &str)> = events
            .iter()
            .map(|e| match e {
                WatchEvent::Added(_, rv) => ("ADDED", rv.as_str()),
                WatchEvent::Modified(_, rv) => ("MODIFIED", rv.as_str()),
                WatchEvent::Deleted(_, rv) => ("DELETED", rv.as_str()),
                WatchEvent::Bookmark(rv) => ("BOOKMARK", rv.as_str()),
                WatchEvent::Error(_) => ("ERROR", ""),
            })
            .collect();
        assert_eq!(
            rvs,
            [
                ("ADDED", "1097"),
                ("MODIFIED", "1105"),
                ("MODIFIED", "1108"),
                ("DELETED", "1118"),
                ("BOOKMARK", "1118")
            ]
        );
    }

    #[test]
    fn in_stream_expired_error_decodes_to_a_gone_status() {
        let body = fixture_body("services-watch-expired.http");
        let line = body.split(|&b| b == b'\n').next().unwrap();
        match decode_event(line, "w", from_str::<Obj>).unwrap() {
            WatchEvent::Error(s) => {
                assert_eq!(s.code, 410);
                assert!(Error::Api(Box::new(s)).is_gone());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_json_line_is_a_decode_error_not_a_panic() {
        for line in [
            &b"{\"type\":\"ADDED\",\"object\":{"[..],
            b"not json",
            b"{\"type\":\"WHAT\",\"object\":{}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":5}}",
            b"\xff\xfe",
        ] {
            let e = decode_event(line, "WATCH /x", from_str::<Obj>).unwrap_err();
            assert!(
                matches!(&e, Error::Decode { what, .. } if what == "WATCH /x"),
                "{e}"
            );
        }
    }

    /// A reader handing out the body in tiny pieces, as sockets do.
    struct Trickle(Vec<u8>, usize, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.2.min(buf.len()).min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn stream_reassembles_events_across_small_reads_and_reports_the_end() {
        let body = fixture_body("services-watch.http");
        for step in [1, 2, 3, 5, 7, 97, 4096] {
            let mut s = WatchStream::new(
                Box::new(Trickle(body.clone(), 0, step)),
                "WATCH s".into(),
                "http://x".into(),
                Duration::from_secs(1),
            );
            let mut n = 0;
            while let Some(_e) = s.next_event(from_str::<Obj>).unwrap() {
                n += 1;
                assert!(n < 100);
            }
            assert_eq!(n, 5);
        }
    }

    #[test]
    fn blank_lines_and_crlf_are_skipped_and_a_cut_last_line_ends_the_stream() {
        let body = b"\n\r\n{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"7\"}}}\r\n{\"type\"".to_vec();
        let mut s = WatchStream::new(
            Box::new(Trickle(body, 0, 3)),
            "WATCH s".into(),
            "http://x".into(),
            Duration::from_secs(1),
        );
        match s.next_event(from_str::<Obj>).unwrap() {
            Some(WatchEvent::Bookmark(rv)) => assert_eq!(rv, "7"),
            other => panic!("{other:?}"),
        }
        assert!(s.next_event(from_str::<Obj>).unwrap().is_none());
    }

    #[test]
    fn a_line_of_exactly_max_line_bytes_is_read_whole() {
        let mut body = b"{\"type\":\"BOOKMARK\",\"object\":{\"a\":\"".to_vec();
        body.resize(MAX_LINE - 3, b'x');
        body.extend_from_slice(b"\"}}\n");
        assert_eq!(body.len(), MAX_LINE + 1);
        let mut s = WatchStream::new(
            Box::new(Trickle(body, 0, 1 << 20)),
            "WATCH big".into(),
            "http://x".into(),
            Duration::from_secs(1),
        );
        assert!(matches!(
            s.next_event(from_str::<Obj>).unwrap(),
            Some(WatchEvent::Bookmark { .. })
        ));
    }

    #[test]
    fn oversize_event_is_a_decode_error() {
        let mut body = b"{\"type\":\"ADDED\",\"object\":{\"a\":\"".to_vec();
        body.resize(MAX_LINE + 10, b'x');
        let mut s = WatchStream::new(
            Box::new(Trickle(body, 0, 1 << 20)),
            "WATCH big".into(),
            "http://x".into(),
            Duration::from_secs(1),
        );
        let e = s.next_event(from_str::<Obj>).unwrap_err();
        assert!(
            matches!(&e, Error::Decode { detail, .. } if detail.contains("longer than")),
            "{e}"
        );
    }
}
