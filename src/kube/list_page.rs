//! A LIST page read as it streams: each element of `items` is cut out of the bytes as they arrive
//! and decoded from its own text, so a page (500 LoadBalancers over 100 nodes are ~5 MB of JSON) is
//! never held whole beside its objects, and every object goes through the same `from_str` decoder
//! as watch events and other answers (serde emits its code once per type and input kind: a
//! `from_reader` here would add ~150 KB to the binary). Items are handed out as text, so this code
//! is in the binary once, whatever the caller decodes them into.
//!
//! The cutter knows only JSON's framing: strings (with escapes), nesting, and the top-level key
//! `items`; the rest of the page (its `metadata`) is decoded as a small [`Envelope`] at the end.

use std::io::BufRead;

/// What the client reads of a page's or an object's `metadata`: the resourceVersion (to watch
/// from) and a page's `continue` token. Watch events read an object's resourceVersion with it too.
#[derive(serde::Deserialize, Debug, Default)]
pub struct Envelope {
    #[serde(default)]
    pub metadata: Meta,
}

#[derive(serde::Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Meta {
    pub resource_version: String,
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
}

/// Why a page could not be read.
#[derive(Debug)]
pub enum Error {
    /// The connection failed mid-page.
    Io(std::io::Error),
    /// The page is not the JSON of a list.
    Json(String),
}

/// Reads one page from `input`: its envelope (the page without its items), each item handed to
/// `item` as its JSON text (an `Err` stops the read).
pub fn read(
    mut input: impl BufRead,
    item: &mut dyn FnMut(&str) -> serde_json::Result<()>,
) -> Result<Envelope, Error> {
    let mut cut = Cutter::default();
    let mut n_items = 0;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        };
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for &b in chunk {
            if let Some(text) = cut.byte(b) {
                let text = std::str::from_utf8(&text)
                    .map_err(|e| Error::Json(format!("items[{n_items}]: {e}")))?;
                item(text).map_err(|e| Error::Json(format!("items[{n_items}]: {e}")))?;
                n_items += 1;
            }
        }
        input.consume(n);
    }
    if cut.depth != 0 || cut.in_string {
        return Err(Error::Json("the page ends before its JSON does".into()));
    }
    let envelope = std::str::from_utf8(&cut.envelope).map_err(|e| Error::Json(e.to_string()))?;
    serde_json::from_str(envelope).map_err(|e| Error::Json(e.to_string()))
}

/// Splits the page's bytes into the envelope (everything but the items' elements) and one
/// element at a time.
#[derive(Default)]
struct Cutter {
    envelope: Vec<u8>,
    element: Vec<u8>,
    /// Nesting: 1 inside the page's object, 2 inside `items`' array.
    depth: u32,
    in_string: bool,
    escaped: bool,
    in_items: bool,
    /// The last string at depth 1 (a key when a value follows), its first bytes only.
    key: Vec<u8>,
}

impl Cutter {
    /// Takes one byte; returns an element's text when this byte ended it.
    fn byte(&mut self, b: u8) -> Option<Vec<u8>> {
        let in_element = self.in_items && self.depth >= 2;
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => {
                    self.escaped = false;
                    if self.depth == 1 {
                        self.key.push(b'\\'); // a key with an escape is never `items`
                    }
                }
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ if self.depth == 1 && self.key.len() < 8 => self.key.push(b),
                _ => {}
            }
        } else {
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 {
                        self.key.clear();
                    }
                }
                b'[' if self.depth == 1 && !self.in_items && self.key == b"items" => {
                    self.in_items = true;
                    self.depth = 2;
                    self.envelope.push(b);
                    return None;
                }
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.in_items && self.depth == 1 {
                        self.in_items = false;
                        self.envelope.push(b);
                        return self.take();
                    }
                }
                b',' if self.in_items && self.depth == 2 => return self.take(),
                _ => {}
            }
        }
        match in_element {
            true => self.element.push(b),
            false => self.envelope.push(b),
        }
        None
    }

    /// The element collected so far, unless it is only white space (`[]`, or a trailing comma).
    fn take(&mut self) -> Option<Vec<u8>> {
        let text = std::mem::take(&mut self.element);
        (!text.iter().all(u8::is_ascii_whitespace)).then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn read_in_chunks(text: &str, chunk: usize) -> Result<(Envelope, Vec<Value>), Error> {
        let reader = std::io::BufReader::with_capacity(chunk, text.as_bytes());
        let mut items = Vec::new();
        let meta = read(reader, &mut |t| {
            items.push(serde_json::from_str(t)?);
            Ok(())
        })?;
        Ok((meta, items))
    }

    #[test]
    fn items_are_cut_out_at_any_chunk_size_and_the_rest_is_the_envelope() {
        let page = json!({
            "kind": "List", "apiVersion": "v1",
            "metadata": {"resourceVersion": "7", "continue": "items\"[,]"},
            "items": [
                {"metadata": {"name": "a"}, "data": {"k": "a \"quoted\" ] , } [ {"}},
                {"metadata": {"name": "b"}, "spec": {"items": [1, 2, {"x": []}]}},
                {"metadata": {"name": "c\\"}},
            ],
        });
        let text = serde_json::to_string_pretty(&page).unwrap();
        for chunk in [1, 2, 3, 7, 64, 1 << 16] {
            let (meta, items) = read_in_chunks(&text, chunk).unwrap();
            let meta = meta.metadata;
            assert_eq!(meta.resource_version, "7", "chunk {chunk}");
            let token = meta.continue_token.as_deref();
            assert_eq!(token, Some("items\"[,]"), "chunk {chunk}");
            assert_eq!(Value::from(items), page["items"], "chunk {chunk}");
        }
    }

    #[test]
    fn empty_null_or_absent_items_are_none_and_a_broken_page_is_an_error() {
        for text in [
            r#"{"metadata":{},"items":[]}"#,
            r#"{"metadata":{},"items":null}"#,
            r#"{"metadata":{}}"#,
            r#"{"items":[ ],"metadata":{}}"#,
            // A key with an escape is not `items`: its array stays in the (ignoring) envelope.
            r#"{"metadata":{},"item\"s":[{"a":1}]}"#,
        ] {
            let (_, items) = read_in_chunks(text, 4).unwrap();
            assert!(items.is_empty(), "{text}");
        }
        for (text, says) in [
            (r#"{"metadata":{},"items":[{"a":1},{"b":"#, "ends before"),
            (r#"{"metadata":{},"items":[{"a":1},{"b":}]}"#, "items[1]"),
            (
                r#"{"metadata":{},"items":[{"a":1}],"x":}"#,
                "expected value",
            ),
        ] {
            match read_in_chunks(text, 4) {
                Err(Error::Json(e)) => assert!(e.contains(says), "{text}: {e}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
