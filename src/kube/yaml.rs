//! A YAML-subset reader for kubeconfig files (and our own manifests and fixtures), producing
//! `serde_json::Value`.
//!
//! Owns: what kubeconfigs contain (written by kubectl, k3s, kind, minikube, aws-cli, gcloud, or by
//! hand after docs): block maps and sequences, plain and quoted scalars (single and double, with
//! the escapes double quotes allow), `{}` and `[]`, one-line flow collections of scalars
//! (`args: ["eks", "get-token"]`, `context: {cluster: c, user: u}`, `required: [spec]`), block
//! scalars (`|`, `>`, with `-`/`+`: installHints, CRD descriptions), comments, a leading `---`,
//! CRLF, and JSON.
//! A plain scalar may go on over more-indented lines (gcloud wraps a GKE kubeconfig's long
//! `installHint` so). Must not: do I/O, or guess. Anything else (anchors, aliases, tags, several
//! documents, quoted scalars or flow collections spanning lines, nested flow, tabs as indentation,
//! complex keys) is an error carrying the line number, never a wrong value.
//! Pure: no I/O, no clock.
//!
//! Scalars resolve with YAML 1.2's core schema, narrowed to what kubeconfig needs: `null`/`~`/empty,
//! `true`/`false`, and canonical decimal integers. Everything else stays a string (`0777`, `1.5`,
//! `yes`), so string fields keep their text; the few bool fields get a clear type error instead.

use std::fmt;

use serde_json::{Map, Value};

/// Nesting limit: real kubeconfigs nest 5 levels; this keeps hostile input from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// A parse error at a 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for YamlError {}

type Result<T> = std::result::Result<T, YamlError>;

fn err<T>(line: usize, message: impl Into<String>) -> Result<T> {
    Err(YamlError {
        line,
        message: message.into(),
    })
}

/// Parse one YAML (or JSON) document. An empty document is `Value::Null`.
pub fn parse(text: &str) -> Result<Value> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // JSON is (nearly) flow YAML, but it may span lines and serde_json keeps numbers exact.
    if text.trim_start().starts_with('{')
        && let Ok(v) = serde_json::from_str(text)
    {
        return Ok(v);
    }
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .collect();
    // Document markers at column 0 end any scalar in YAML, so checking them up front is exact.
    let mut seen_content = false;
    for (i, line) in lines.iter_mut().enumerate() {
        if is_marker(line, "---") {
            if seen_content {
                return err(i + 1, "several documents in one file are not supported");
            }
            if !is_blank(&line[3..]) {
                return err(i + 1, "content on the '---' line is not supported");
            }
            *line = "";
        } else if is_marker(line, "...") {
            return err(i + 1, "the document end marker '...' is not supported");
        } else if line.starts_with('%') {
            return err(i + 1, "directives (%YAML, %TAG) are not supported");
        }
        seen_content |= !is_blank(line);
    }
    let mut p = Parser {
        lines,
        pos: 0,
        depth: 0,
    };
    let Some((li, col)) = p.peek()? else {
        return Ok(Value::Null);
    };
    let v = p.node(li, col, -1)?;
    match p.peek()? {
        Some((li, _)) => err(
            li + 1,
            "unexpected content after the document (check the indentation)",
        ),
        None => Ok(v),
    }
}

fn is_marker(text: &str, marker: &str) -> bool {
    text.strip_prefix(marker)
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
}

/// Nothing, or nothing but spaces and a comment.
fn is_blank(text: &str) -> bool {
    let t = text.trim_start_matches([' ', '\t']);
    t.is_empty() || t.starts_with('#')
}

/// `-` followed by a separator: a block sequence entry.
fn is_seq_entry(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t")
}

fn indent_of(text: &str) -> usize {
    text.bytes().take_while(|b| *b == b' ').count()
}

/// Resolve a plain scalar (core schema, narrowed; see the module doc).
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if is_canonical_int(s) => s
            .parse::<i64>()
            .map_or_else(|_| Value::String(s.to_string()), Value::from),
        _ => Value::String(s.to_string()),
    }
}

fn is_canonical_int(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    match digits.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Reject what a node may not start with in this subset.
fn check_node_start(line: usize, text: &str) -> Result<()> {
    let mut chars = text.chars();
    let c = chars.next();
    let sep = matches!(chars.next(), None | Some(' ' | '\t'));
    match c {
        Some('&') => err(line, "anchors (&name) are not supported"),
        Some('*') => err(line, "aliases (*name) are not supported"),
        Some('!') => err(line, "tags (!tag) are not supported"),
        Some(c @ ('@' | '`' | '%')) => err(
            line,
            format!("a plain value cannot start with '{c}': quote it"),
        ),
        Some('?') if sep => err(line, "complex mapping keys ('? ') are not supported"),
        Some(':') if sep => err(line, "a mapping entry has an empty key"),
        Some(c @ (',' | ']' | '}')) => err(line, format!("unexpected '{c}'")),
        _ => Ok(()),
    }
}

/// What may follow a value on its line: nothing, or a comment after a space.
fn check_line_end(no: usize, rest: &str) -> Result<()> {
    let t = rest.trim_start_matches([' ', '\t']);
    if t.is_empty() || (t.starts_with('#') && t.len() < rest.len()) {
        return Ok(());
    }
    err(no, "unexpected text after a value")
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    /// Skip blank and comment lines; the index and indentation of the next content line.
    fn peek(&mut self) -> Result<Option<(usize, usize)>> {
        while let Some(&text) = self.lines.get(self.pos) {
            if !is_blank(text) {
                let indent = indent_of(text);
                if text[indent..].starts_with('\t') {
                    return err(
                        self.pos + 1,
                        "tab character used for indentation (YAML allows only spaces)",
                    );
                }
                return Ok(Some((self.pos, indent)));
            }
            self.pos += 1;
        }
        Ok(None)
    }

    /// The node whose text starts at column `col` of line `li`; its parent is indented `parent`.
    fn node(&mut self, li: usize, col: usize, parent: isize) -> Result<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(li + 1, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        let rest = &self.lines[li][col..];
        let v = if is_seq_entry(rest) {
            self.block_seq(li, col)
        } else if split_key(li + 1, rest)?.is_some() {
            self.block_map(li, col)
        } else {
            self.inline(li, col, parent)
        };
        self.depth -= 1;
        v
    }

    /// Entries at column `n`, the first on line `li` (which may start mid-line, after a `- `).
    fn block_map(&mut self, mut li: usize, n: usize) -> Result<Value> {
        let mut map = Map::new();
        loop {
            let text = self.lines[li];
            let Some((key, after)) = split_key(li + 1, &text[n..])? else {
                return err(li + 1, "expected a 'key: value' mapping entry");
            };
            if map.contains_key(&key) {
                return err(li + 1, format!("duplicate key {key:?}"));
            }
            let vcol = n + after;
            let value = if is_blank(&text[vcol..]) {
                self.pos = li + 1;
                self.nested(n, true)?
            } else {
                let vcol = vcol + (text.len() - vcol - text[vcol..].trim_start().len());
                if is_seq_entry(&text[vcol..]) {
                    return err(
                        li + 1,
                        "a block sequence cannot start on the same line as its key",
                    );
                }
                self.inline(li, vcol, n as isize)?
            };
            map.insert(key, value);
            let Some(next) = self.next_at(n, "mapping")? else {
                return Ok(Value::Object(map));
            };
            if is_seq_entry(&self.lines[next][n..]) {
                return err(
                    next + 1,
                    "a sequence item ('- ') where a mapping key was expected",
                );
            }
            li = next;
        }
    }

    /// Items at column `n`, the first on line `li`.
    fn block_seq(&mut self, mut li: usize, n: usize) -> Result<Value> {
        let mut items = Vec::new();
        loop {
            let after = &self.lines[li][n + 1..];
            let content = after.trim_start_matches(' ');
            if content.starts_with('\t') {
                return err(
                    li + 1,
                    "tab after '-' (YAML indentation allows only spaces)",
                );
            }
            if is_blank(content) {
                self.pos = li + 1;
                items.push(self.nested(n, false)?);
            } else {
                items.push(self.node(li, n + 1 + after.len() - content.len(), n as isize)?);
            }
            match self.next_at(n, "sequence")? {
                Some(next) if is_seq_entry(&self.lines[next][n..]) => li = next,
                _ => return Ok(Value::Array(items)),
            }
        }
    }

    /// The next content line of a block `collection` (mapping or sequence) at column `n`, if there
    /// is one; a line indented more is an error.
    fn next_at(&mut self, n: usize, collection: &str) -> Result<Option<usize>> {
        match self.peek()? {
            Some((next, ind)) if ind > n => err(
                next + 1,
                format!("unexpected indentation (a line is indented more than its {collection})"),
            ),
            Some((next, ind)) => Ok((ind == n).then_some(next)),
            None => Ok(None),
        }
    }

    /// The value on the lines after a key or `-` with nothing after it.
    fn nested(&mut self, n: usize, allow_flush_seq: bool) -> Result<Value> {
        match self.peek()? {
            Some((li, ind)) if ind > n => self.node(li, ind, n as isize),
            // `users:\n- name: x`: Go and Python writers put the sequence flush with its key.
            Some((li, ind))
                if ind == n && allow_flush_seq && is_seq_entry(&self.lines[li][n..]) =>
            {
                self.block_seq(li, n)
            }
            _ => Ok(Value::Null),
        }
    }

    /// A scalar or flow node starting at (`li`, `col`): one line, except block scalars.
    fn inline(&mut self, li: usize, col: usize, parent: isize) -> Result<Value> {
        let no = li + 1;
        let rest = &self.lines[li][col..];
        check_node_start(no, rest)?;
        self.pos = li + 1;
        if rest.starts_with(['|', '>']) {
            return self.block_scalar(li, col, parent);
        }
        if !rest.starts_with(['"', '\'', '[', '{']) {
            return self.plain(li, col, parent);
        }
        let (v, end) = if rest.starts_with(['"', '\'']) {
            let (s, end) = quoted(no, rest, 0)?;
            (Value::String(s), end)
        } else {
            flow(no, rest)?
        };
        check_line_end(no, &rest[end..])?;
        Ok(v)
    }

    /// A plain scalar at (`li`, `col`), continued on the lines after it that are indented more than
    /// `parent`, joined by spaces: writers wrap long values so (gcloud's exec `installHint`). A
    /// comment or a blank line ends it.
    fn plain(&mut self, li: usize, col: usize, parent: isize) -> Result<Value> {
        let first = self.lines[li];
        let mut line = &first[col..];
        let mut text = plain_line(li + 1, line)?.to_string();
        while plain_end(line, false).is_none()
            && let Some(next) = self.lines.get(self.pos).copied()
            && !is_blank(next)
            && indent_of(next) as isize > parent
        {
            line = next.trim_start_matches([' ', '\t']);
            text.push(' ');
            text.push_str(plain_line(self.pos + 1, line)?);
            self.pos += 1;
        }
        Ok(resolve_plain(&text))
    }

    /// `|` or `>`, optionally followed by a chomping indicator (`-`, `+`).
    fn block_scalar(&mut self, li: usize, col: usize, parent: isize) -> Result<Value> {
        let header = &self.lines[li][col..];
        let folded = header.starts_with('>');
        let chomp = header[1..]
            .chars()
            .next()
            .filter(|c| matches!(c, '-' | '+'));
        let rest = &header[1 + chomp.map_or(0, char::len_utf8)..];
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            return err(
                li + 1,
                "block scalar indentation indicators are not supported",
            );
        }
        if !is_blank(rest) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            return err(li + 1, "unexpected text after a block scalar indicator");
        }
        let mut content_indent: Option<usize> = None;
        let mut lines: Vec<&str> = Vec::new();
        let mut i = li + 1;
        while let Some(&raw) = self.lines.get(i) {
            let spaces = indent_of(raw);
            if spaces == raw.len() {
                lines.push(content_indent.and_then(|ci| raw.get(ci..)).unwrap_or(""));
            } else {
                let ci = *content_indent.get_or_insert(spaces);
                if spaces < ci || spaces as isize <= parent {
                    break;
                }
                lines.push(&raw[ci..]);
            }
            i += 1;
        }
        self.pos = i;
        let blank_tail = lines.iter().rev().take_while(|l| l.is_empty()).count();
        let (content, trailing) = lines.split_at(lines.len() - blank_tail);
        let mut out = if folded {
            fold_lines(content)
        } else {
            content.join("\n")
        };
        if chomp != Some('-') && !content.is_empty() {
            out.push('\n');
        }
        if chomp == Some('+') {
            out.push_str(&"\n".repeat(trailing.len()));
        }
        Ok(Value::String(out))
    }
}

/// If `rest` is `key: ...`, the key and the offset just after the `:`.
fn split_key(no: usize, rest: &str) -> Result<Option<(String, usize)>> {
    check_node_start(no, rest)?;
    let (key, end) = match rest.chars().next() {
        Some('"' | '\'') => quoted(no, rest, 0)?,
        Some('[' | '{' | '|' | '>') | None => return Ok(None),
        // A plain key ends at its first `: ` (or `:` at the end), unless a comment starts first.
        Some(_) => match plain_end(rest, false).filter(|&i| i > 0 && rest.as_bytes()[i] == b':') {
            Some(i) => (rest[..i].trim_end().to_string(), i),
            None => return Ok(None),
        },
    };
    let after = &rest[end..];
    let t = after.trim_start_matches([' ', '\t']);
    // A `: ` (or a `:` ending the text) ends the key.
    let is_key = plain_end(t, false) == Some(0);
    Ok(is_key.then(|| (key, end + after.len() - t.len() + 1)))
}

/// A `#` after a space or tab at byte `i`: a comment starts there.
fn comment_at(b: &[u8], i: usize) -> bool {
    b[i] == b'#' && i > 0 && matches!(b[i - 1], b' ' | b'\t')
}

/// Where a plain scalar stops, if it does: at its first `: ` (or `:` ending the text) or ` #`, and
/// inside `[ ]` or `{ }` (`flow`) also at a flow indicator or a `:` before one.
fn plain_end(s: &str, flow: bool) -> Option<usize> {
    let b = s.as_bytes();
    let indicator = |c: &u8| flow && b",[]{}".contains(c);
    let separates = |i: usize| b.get(i).is_none_or(|c| b" \t".contains(c) || indicator(c));
    let colon = |i: usize| b[i] == b':' && separates(i + 1);
    (0..b.len()).find(|&i| indicator(&b[i]) || colon(i) || comment_at(b, i))
}

/// A plain scalar in block context: the text before any ` #` comment.
fn plain_line(no: usize, s: &str) -> Result<&str> {
    match plain_end(s, false) {
        Some(i) if s.as_bytes()[i] == b':' => err(
            no,
            "': ' inside a plain value (quote the value, or check the indentation)",
        ),
        end => Ok(s[..end.unwrap_or(s.len())].trim_end_matches([' ', '\t'])),
    }
}

/// A one-line flow collection of scalars at the start of `line`: `{}`, `[]`, a sequence (`[spec]`,
/// `["True", "False"]`) or a mapping (`{cluster: c, user: u}`, as hand-edited kubeconfigs write a
/// context); the value and the byte after it. It must close on the line it opens.
fn flow(no: usize, line: &str) -> Result<(Value, usize)> {
    let mapping = line.starts_with('{');
    let close = if mapping { '}' } else { ']' };
    let mut items = Vec::new();
    let mut entries = Map::new();
    let mut j = skip_space(line, 1);
    while !line[j..].starts_with(close) {
        let start = j;
        let (item, end) = flow_scalar(no, line, j)?;
        j = skip_space(line, end);
        if mapping {
            if !line[j..].starts_with(':') {
                return err(no, "expected ': ' after a key inside { }");
            }
            // A plain key keeps its text, as a block mapping's does (`True`, `+1`, `~`).
            let key = match item {
                Value::String(k) => k,
                _ if start == end => return err(no, "an empty key inside { }"),
                _ => line[start..end].trim_end().to_string(),
            };
            let at = skip_space(line, j + 1);
            let (value, end) = if line[at..].starts_with([',', '}']) {
                (Value::Null, at)
            } else {
                flow_scalar(no, line, at)?
            };
            if entries.insert(key, value).is_some() {
                return err(no, "duplicate key inside { }");
            }
            j = skip_space(line, end);
        } else {
            items.push(item);
        }
        match line[j..].chars().next() {
            Some(',') => j = skip_space(line, j + 1),
            Some(c) if c == close => {}
            Some(':') if mapping => return err(no, "': ' inside a value in { } (quote the value)"),
            Some(':') => return err(no, "'key: value' pairs inside [ ] are not supported"),
            None | Some('#') => return err(no, FLOW_UNCLOSED),
            _ => return err(no, format!("expected ',' or '{close}'")),
        }
    }
    let value = if mapping {
        Value::Object(entries)
    } else {
        Value::Array(items)
    };
    Ok((value, j + 1))
}

/// The error for a flow collection that does not close on its line.
const FLOW_UNCLOSED: &str = "unterminated flow collection ('[' or '{' must close on its line)";

/// One scalar inside `[ ]` or `{ }` at byte `j` of `line`, quoted or plain; the value and the byte
/// after it.
fn flow_scalar(no: usize, line: &str, j: usize) -> Result<(Value, usize)> {
    let rest = &line[j..];
    check_node_start(no, rest)?;
    match rest.chars().next() {
        Some('"' | '\'') => quoted(no, line, j).map(|(s, end)| (Value::String(s), end)),
        Some('[' | '{') => err(no, "nested flow collections are not supported"),
        Some(c @ ('|' | '>')) => err(
            no,
            format!("block scalars ('{c}') cannot appear inside [ ] or {{ }}"),
        ),
        None | Some('#') => err(no, FLOW_UNCLOSED),
        _ if is_seq_entry(rest) => err(no, "a block sequence item ('- ') inside [ ]"),
        _ => {
            let end = j + plain_end(rest, true).unwrap_or(rest.len());
            Ok((resolve_plain(line[j..end].trim_end()), end))
        }
    }
}

fn skip_space(line: &str, i: usize) -> usize {
    i + line[i..].len() - line[i..].trim_start_matches([' ', '\t']).len()
}

/// A single- or double-quoted scalar at byte `i` of `line`; the text and the byte after it.
/// It must end on the same line.
fn quoted(no: usize, line: &str, i: usize) -> Result<(String, usize)> {
    let double = line[i..].starts_with('"');
    let mut out = String::new();
    let mut chars = line[i + 1..].char_indices().peekable();
    while let Some((j, c)) = chars.next() {
        match c {
            '"' if double => return Ok((out, i + 1 + j + 1)),
            '\'' if !double => {
                if chars.peek().map(|p| p.1) == Some('\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok((out, i + 1 + j + 1));
                }
            }
            '\\' if double => match chars.next() {
                Some((_, e)) => out.push(unescape(no, e, &mut chars)?),
                None => break,
            },
            _ => out.push(c),
        }
    }
    err(
        no,
        "unterminated quoted string (a quoted value must end on its line)",
    )
}

/// Fold `>` block scalar lines: a break between two text lines becomes a space, blank lines become
/// newlines, and lines starting with a space keep their breaks.
fn fold_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut blank = 0;
    let mut prev_spaced = None;
    for line in lines {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        let spaced = line.starts_with([' ', '\t']);
        match prev_spaced {
            None => out.push_str(&"\n".repeat(blank)),
            Some(false) if !spaced && blank == 0 => out.push(' '),
            Some(false) if !spaced => out.push_str(&"\n".repeat(blank)),
            Some(_) => out.push_str(&"\n".repeat(blank + 1)),
        }
        out.push_str(line);
        blank = 0;
        prev_spaced = Some(spaced);
    }
    out
}

/// The character for the double-quoted escape `\e`, reading hex digits from `chars` as needed.
fn unescape(
    no: usize,
    e: char,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<char> {
    // YAML 1.2's escapes, each with the character it stands for at the same place in MEANS.
    const ESCAPES: &str = "0abt\tnvfre \"/\\N_LP";
    const MEANS: &str = "\0\u{7}\u{8}\t\t\n\u{b}\u{c}\r\u{1b} \"/\\\u{85}\u{a0}\u{2028}\u{2029}";
    if let Some((_, c)) = ESCAPES.chars().zip(MEANS.chars()).find(|(k, _)| *k == e) {
        return Ok(c);
    }
    let width = match e {
        'x' => 2,
        'u' => 4,
        'U' => 8,
        _ => {
            return err(
                no,
                format!("invalid escape '\\{e}' in a double-quoted string"),
            );
        }
    };
    let code = (0..width).try_fold(0, |code, _| Some(code * 16 + chars.next()?.1.to_digit(16)?));
    let Some(code) = code else {
        return err(no, "escape needs hexadecimal digits");
    };
    char::from_u32(code).map_or_else(|| err(no, "escape is not a valid Unicode character"), Ok)
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(src: &str) -> Value {
        match parse(src) {
            Ok(v) => v,
            Err(e) => panic!("{src:?}: {e}"),
        }
    }

    #[test]
    fn parses_the_kubeconfig_subset() {
        let cases: Vec<(&str, Value)> = vec![
            ("", Value::Null),
            ("# only a comment\n", Value::Null),
            ("a: b", json!({"a": "b"})),
            ("---\na: b\n", json!({"a": "b"})),
            ("--- # doc\na: b\n", json!({"a": "b"})),
            ("a: b\r\nc: d\r\n", json!({"a": "b", "c": "d"})),
            ("\u{feff}a: b", json!({"a": "b"})),
            // sequences flush with the key, and indented
            (
                "users:\n- name: x\n  user: {}\nkind: Config",
                json!({"users": [{"name": "x", "user": {}}], "kind": "Config"}),
            ),
            (
                "users:\n  - name: x\n    user:\n      token: t\nk: v",
                json!({"users": [{"name": "x", "user": {"token": "t"}}], "k": "v"}),
            ),
            (
                "- a\n- - b\n  - c\n-\n- # c\n  d",
                json!(["a", ["b", "c"], null, "d"]),
            ),
            (
                "args:\n- --region\n- eu-west-1\n- -\n",
                json!({"args": ["--region", "eu-west-1", [null]]}),
            ),
            // plain scalars with : / @ , \\ inside
            (
                "name: arn:aws:eks:r:1:cluster/x",
                json!({"name": "arn:aws:eks:r:1:cluster/x"}),
            ),
            ("user: admin@k3d-x", json!({"user": "admin@k3d-x"})),
            (
                "ca: C:\\Users\\u\\ca.crt",
                json!({"ca": "C:\\Users\\u\\ca.crt"}),
            ),
            (
                "last-update: Wed, 26 Aug 2026 23:15:12 UTC",
                json!({"last-update": "Wed, 26 Aug 2026 23:15:12 UTC"}),
            ),
            (
                "server: https://[::1]:6443/k8s/c-1?x=1#frag",
                json!({"server": "https://[::1]:6443/k8s/c-1?x=1#frag"}),
            ),
            (
                "arn:aws:eks:r:1:cluster/x: v",
                json!({"arn:aws:eks:r:1:cluster/x": "v"}),
            ),
            ("key : v", json!({"key": "v"})),
            // comments
            (
                "a: b # c\n# d\ne: f #g\ng: h#i",
                json!({"a": "b", "e": "f", "g": "h#i"}),
            ),
            ("a: 'x' # c\nb: [1, 2] # c", json!({"a": "x", "b": [1, 2]})),
            // quoting
            ("a: 'it''s: #x'", json!({"a": "it's: #x"})),
            (
                "a: \"q\\\" \\\\ \\n \\t \\u00e9 \\x41 \\U0001F600 \\/\"",
                json!({"a": "q\" \\ \n \t \u{e9} A \u{1F600} /"}),
            ),
            (
                "\"quoted key\": 1\n'k2' : 2",
                json!({"quoted key": 1, "k2": 2}),
            ),
            ("a: \"\"\nb: ''", json!({"a": "", "b": ""})),
            // null, booleans, integers
            (
                "a: null\nb: ~\nc:\nd: Null",
                json!({"a": null, "b": null, "c": null, "d": null}),
            ),
            (
                "a: true\nb: False\nc: yes\nd: 'true'",
                json!({"a": true, "b": false, "c": "yes", "d": "true"}),
            ),
            (
                "a: 42\nb: -7\nc: 0777\nd: 1.5\ne: 0x1F\nf: 0\ng: 99999999999999999999",
                json!({"a": 42, "b": -7, "c": "0777", "d": "1.5", "e": "0x1F", "f": 0, "g": "99999999999999999999"}),
            ),
            // flow collections
            ("a: {}\nb: []", json!({"a": {}, "b": []})),
            (
                "args: [\"eks\", 'get-token', --x, 3]",
                json!({"args": ["eks", "get-token", "--x", 3]}),
            ),
            (
                "a: [ ]\nb: { }\nc: [x, ]",
                json!({"a": [], "b": {}, "c": ["x"]}),
            ),
            (
                "- context: {cluster: c, user: 'u', namespace: \"a, b\"}\n  name: x",
                json!([{"context": {"cluster": "c", "user": "u", "namespace": "a, b"}, "name": "x"}]),
            ),
            (
                "m: {port: 443, tls: true, empty: , url: https://x:1/p, True: 1, ~: 2}",
                json!({"m": {"port": 443, "tls": true, "empty": null, "url": "https://x:1/p",
                    "True": 1, "~": 2}}),
            ),
            // plain scalars wrapped over more-indented lines (gcloud's installHint)
            (
                "installHint: Install it by following\n  https://x.test/a#b\nk: v",
                json!({"installHint": "Install it by following https://x.test/a#b", "k": "v"}),
            ),
            ("- a\n  b\n- c", json!(["a b", "c"])),
            (
                "just text\n  more\nand more",
                json!("just text more and more"),
            ),
            // block scalars
            (
                "h: |\n  line 1\n   line 2\n\nk: v",
                json!({"h": "line 1\n line 2\n", "k": "v"}),
            ),
            ("h: |-\n  a\n  b\n\n", json!({"h": "a\nb"})),
            ("h: |+\n  a\n\n\nk: v", json!({"h": "a\n\n\n", "k": "v"})),
            (
                "h: >\n  a\n  b\n\n  c\n    d\n  e\nk: v",
                json!({"h": "a b\nc\n  d\ne\n", "k": "v"}),
            ),
            ("h: >-\n  a\n  b\n", json!({"h": "a b"})),
            (
                "h: | # c\n  # not a comment\n# a comment\nk: |\nz: 1",
                json!({"h": "# not a comment\n", "k": "", "z": 1}),
            ),
            ("- |\n  a\n- b", json!(["a\n", "b"])),
            // JSON input
            (
                "{\"apiVersion\": \"v1\", \"n\": 1.5, \"clusters\": []}",
                json!({"apiVersion": "v1", "n": 1.5, "clusters": []}),
            ),
            ("[1, \"two\"]", json!([1, "two"])),
        ];
        for (src, want) in cases {
            assert_eq!(ok(src), want, "input {src:?}");
        }
    }

    #[test]
    fn rejects_unsupported_or_malformed_input_with_line_numbers() {
        let cases: Vec<(&str, usize, &str)> = vec![
            ("a: &x b", 1, "anchors"),
            ("a: b\nc: *x", 2, "aliases"),
            ("a: !!str b", 1, "tags"),
            ("- !t b", 1, "tags"),
            ("a: [&x b]", 1, "anchors"),
            ("a: b\n---\nc: d", 2, "several documents"),
            ("a: b\n...\n", 2, "'...'"),
            ("%YAML 1.2\n---\na: b", 1, "directives"),
            ("--- a: b", 1, "'---'"),
            ("a:\n\tb: c", 2, "tab"),
            ("a:\n  b: c\n\t  d: e", 3, "tab"),
            ("-\tb", 1, "tab"),
            ("a: b\na: c", 2, "duplicate key"),
            ("a: {x: 1, x: 2}", 1, "duplicate key"),
            ("a: {: 1}", 1, "empty key"),
            ("a: {x 1}", 1, "expected ': '"),
            ("a: {x: b: c}", 1, "quote the value"),
            ("a: {x: 1", 1, "unterminated"),
            ("a: [x, [y]]", 1, "nested flow"),
            ("a: b: c", 1, "': '"),
            ("a: b\n  c: d", 2, "indentation"),
            ("a:\n  b: 1\n    c: 2", 3, "indentation"),
            ("a:\n    b: 1\n  c: 2", 3, "indentation"),
            ("a:\n  - b\n  c: d", 3, "indentation"),
            ("a: - b", 1, "same line"),
            ("a: b\n- c", 2, "sequence item"),
            ("a: 'abc", 1, "unterminated quoted"),
            ("a: \"abc\n\nb: c", 1, "unterminated quoted"),
            ("a: \"\\q\"", 1, "invalid escape"),
            ("a: \"\\u12\"", 1, "hexadecimal"),
            ("a: \"\\ud800x\"", 1, "not a valid Unicode"),
            // what kubeconfigs do not contain: a value wrapped after a comment or a blank line,
            // quoted values spanning lines, indentation indicators
            ("hint: install it # c\n  from the web", 2, "indentation"),
            ("hint: install it\n\n  from the web", 3, "indentation"),
            ("just text\n  more: x", 2, "': '"),
            ("a: 'one\n  two'", 1, "unterminated quoted"),
            ("a: \"one \\\n  two\"", 1, "unterminated quoted"),
            ("args: [\n  a,\n]", 1, "unterminated flow"),
            ("h: |2\n    a\n  b\n", 1, "indentation indicators"),
            ("a: [1, 2\nb: c", 1, "unterminated flow"),
            ("a: [1, 2\n", 1, "unterminated flow"),
            ("a: {", 1, "unterminated flow"),
            ("a: [\"1\" 2]", 1, "expected ','"),
            ("a: [1, , 2]", 1, "unexpected ','"),
            ("a: [b: c]", 1, "pairs inside"),
            ("a: [b] d", 1, "after a value"),
            ("a: 'x' y", 1, "after a value"),
            ("? a\n: b", 1, "complex"),
            (": b", 1, "empty key"),
            ("a: @x", 1, "'@'"),
            ("a: |x\n  b", 1, "block scalar"),
            ("a: [|, b]", 1, "block scalars"),
            ("a: ]", 1, "unexpected ']'"),
            ("a: {[b]: c}", 1, "nested flow"),
        ];
        for (src, line, needle) in cases {
            match parse(src) {
                Ok(v) => panic!("{src:?} parsed as {v}"),
                Err(e) => {
                    assert_eq!(e.line, line, "{src:?}: {e}");
                    assert!(e.message.contains(needle), "{src:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let flow = "[".repeat(10_000);
        assert!(parse(&flow).is_err());
        let block = "- ".repeat(10_000) + "x";
        assert!(parse(&block).unwrap_err().message.contains("nesting"));
        let mut maps = String::new();
        for i in 0..200 {
            maps.push_str(&" ".repeat(i));
            maps.push_str("k:\n");
        }
        assert!(parse(&maps).unwrap_err().message.contains("nesting"));
    }

    #[test]
    fn very_long_lines_parse() {
        let data = "QUJD".repeat(100_000);
        let v = ok(&format!("users:\n- user:\n    token: {data}\n"));
        assert_eq!(v["users"][0]["user"]["token"], Value::String(data));
    }

    fn fixtures() -> Vec<(String, String)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubeconfig");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                out.push((
                    path.display().to_string(),
                    std::fs::read_to_string(&path).unwrap(),
                ));
            }
        }
        assert!(out.len() >= 5);
        out
    }

    #[test]
    fn every_fixture_parses_and_every_truncation_is_ok_or_err() {
        let extra = [
            "a: \"x\\u00e9 y\"\nb: [1, 'd''e']\nh: >+\n   x\n\nk: |\n  z\n- q",
            "{\"a\": [1, 2, {\"b\": \"\\ud83d\\ude00\"}]}",
        ];
        let mut inputs = fixtures();
        inputs.extend(extra.iter().map(|s| ("extra".to_string(), s.to_string())));
        for (name, text) in inputs {
            if name != "extra" {
                let v = parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(v["kind"], "Config", "{name}");
            }
            for i in 0..=text.len() {
                if text.is_char_boundary(i) {
                    let _ = parse(&text[..i]);
                }
            }
        }
    }

    /// The other YAML the project reads with this parser (the Go project's examples in
    /// tests/controller/gocompat.rs, the demo's files; manifests/ has its own test binary) stays
    /// inside the subset.
    #[test]
    fn go_fixtures_and_demo_files_parse() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in [
            "tests/fixtures/go-paperlb/load_balancer_config.yaml",
            "tests/fixtures/go-paperlb/service.yaml",
            "demo/loadbalancerconfig.yaml",
            "demo/service.yaml",
            "demo/app.yaml",
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let v = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(v["kind"].is_string(), "{file}: {v}");
        }
    }

    #[test]
    fn fixture_values_come_out_right() {
        for (name, text) in fixtures() {
            let v = parse(&text).unwrap();
            if name.ends_with("minikube.yaml") {
                let ext = &v["clusters"][0]["cluster"]["extensions"][0];
                assert_eq!(
                    ext["extension"]["last-update"],
                    "Tue, 24 Nov 2026 10:12:44 UTC"
                );
                assert_eq!(ext["name"], "cluster_info");
            }
            if name.ends_with("eks-exec.yaml") {
                let exec = &v["users"][0]["user"]["exec"];
                assert_eq!(exec["args"][0], "--region");
                assert_eq!(exec["env"][0]["value"], "edge-admin");
                assert_eq!(exec["provideClusterInfo"], false);
            }
        }
    }
}
