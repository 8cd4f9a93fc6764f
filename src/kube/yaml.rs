//! A small YAML-subset parser for kubeconfig files, producing `serde_json::Value`.
//!
//! Owns: the subset real kubeconfigs use (written by kubectl, k3s, kind, minikube, aws-cli, gcloud, and
//! by hand after docs): block maps and sequences, plain/quoted/block scalars, flow collections,
//! comments, a leading `---`, CRLF. JSON input works too.
//! Must not: do I/O, or guess. Anything outside the subset (anchors, aliases, tags, several documents,
//! tabs as indentation, complex keys) is an error carrying the line number, never a wrong value.
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
    // JSON is (nearly) flow YAML, but serde_json keeps numbers exact; flow YAML that is not JSON
    // (unquoted keys) falls through to the YAML parser.
    if text.trim_start().starts_with('{') {
        if let Ok(v) = serde_json::from_str(text) {
            return Ok(v);
        }
    }
    let mut p = Parser::new(text)?;
    p.document()
}

/// One source line. `start` moves right when a `- ` item's content is parsed as a node of its own
/// (`- name: x` is a map indented to the column of `name`).
struct Line<'a> {
    no: usize,
    text: &'a str,
    start: usize,
}

impl Line<'_> {
    fn tail(&self) -> &str {
        self.text.get(self.start..).unwrap_or("")
    }

    fn indent(&self) -> usize {
        self.start + self.tail().bytes().take_while(|b| *b == b' ').count()
    }

    fn rest(&self) -> &str {
        self.text.get(self.indent()..).unwrap_or("")
    }

    /// Blank, or nothing but a comment.
    fn is_blank(&self) -> bool {
        let r = self.rest().trim_start_matches([' ', '\t']);
        r.is_empty() || r.starts_with('#')
    }
}

/// A position inside the text for flow and quoted scalars, which may span lines.
#[derive(Clone, Copy)]
struct Cursor {
    line: usize,
    col: usize,
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
    depth: usize,
}

fn is_doc_marker(text: &str, marker: &str) -> bool {
    text.strip_prefix(marker)
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
}

/// `-` followed by a separator: a block sequence entry.
fn is_seq_entry(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ") || rest.starts_with("-\t")
}

/// Resolve a plain scalar (core schema, narrowed; see the module doc).
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if is_canonical_int(s) => match s.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::String(s.to_string()),
        },
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

/// Reject what a node may not start with in this subset; `what` says where we are.
fn check_node_start(line: usize, text: &str) -> Result<()> {
    let mut chars = text.chars();
    let c = chars.next();
    let sep = matches!(chars.next(), None | Some(' ' | '\t'));
    match c {
        Some('&') => err(line, "anchors (&name) are not supported"),
        Some('*') => err(line, "aliases (*name) are not supported"),
        Some('!') => err(line, "tags (!tag) are not supported"),
        Some('@' | '`') => err(line, "a plain value cannot start with '@' or '`': quote it"),
        Some('%') => err(line, "a plain value cannot start with '%': quote it"),
        Some('?') if sep => err(line, "complex mapping keys ('? ') are not supported"),
        Some(':') if sep => err(line, "a mapping entry has an empty key"),
        _ => Ok(()),
    }
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Parser<'a>> {
        let mut lines: Vec<Line<'a>> = text
            .split('\n')
            .enumerate()
            .map(|(i, t)| Line {
                no: i + 1,
                text: t.strip_suffix('\r').unwrap_or(t),
                start: 0,
            })
            .collect();
        // Document markers at column 0 end any scalar in YAML, so checking them up front is exact.
        let mut seen_content = false;
        for line in &mut lines {
            let t = line.text;
            if is_doc_marker(t, "---") {
                if seen_content {
                    return err(line.no, "several documents in one file are not supported");
                }
                let after = t[3..].trim_start_matches([' ', '\t']);
                if !after.is_empty() && !after.starts_with('#') {
                    return err(line.no, "content on the '---' line is not supported");
                }
                line.start = t.len();
                seen_content = true;
            } else if is_doc_marker(t, "...") {
                return err(line.no, "the document end marker '...' is not supported");
            } else if t.starts_with('%') {
                return err(line.no, "directives (%YAML, %TAG) are not supported");
            } else if !line.is_blank() {
                seen_content = true;
            }
        }
        Ok(Parser {
            lines,
            pos: 0,
            depth: 0,
        })
    }

    fn line_no(&self, i: usize) -> usize {
        self.lines.get(i).map_or(self.lines.len(), |l| l.no)
    }

    fn text(&self, i: usize) -> &'a str {
        self.lines.get(i).map_or("", |l| l.text)
    }

    fn enter(&mut self, line: usize) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(line, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    /// Skip blank and comment lines; the indentation of the next content line, if any.
    fn peek_content(&mut self) -> Result<Option<usize>> {
        while let Some(line) = self.lines.get(self.pos) {
            if line.is_blank() {
                self.pos += 1;
                continue;
            }
            if line.rest().starts_with('\t') {
                return err(
                    line.no,
                    "tab character used for indentation (YAML allows only spaces)",
                );
            }
            return Ok(Some(line.indent()));
        }
        Ok(None)
    }

    fn document(&mut self) -> Result<Value> {
        if self.peek_content()?.is_none() {
            return Ok(Value::Null);
        }
        let v = self.block_node(-1)?;
        if self.peek_content()?.is_some() {
            return err(
                self.line_no(self.pos),
                "unexpected content after the document (check the indentation)",
            );
        }
        Ok(v)
    }

    /// A node starting at the current (content) line, whose parent is indented `parent`.
    fn block_node(&mut self, parent: isize) -> Result<Value> {
        let no = self.line_no(self.pos);
        self.enter(no)?;
        let (indent, rest) = match self.lines.get(self.pos) {
            Some(l) => (l.indent(), l.rest()),
            None => return err(no, "unexpected end of input"),
        };
        let v = if is_seq_entry(rest) {
            self.block_seq(indent)
        } else if self.split_key(self.pos, indent)?.is_some() {
            self.block_map(indent)
        } else {
            self.inline_value(self.pos, indent, parent)
        };
        self.depth -= 1;
        v
    }

    /// If the text at (`li`, `col`) is `key: ...`, the key and the column after the `:`.
    fn split_key(&self, li: usize, col: usize) -> Result<Option<(String, usize)>> {
        let no = self.line_no(li);
        let text = self.text(li);
        let rest = text.get(col..).unwrap_or("");
        check_node_start(no, rest)?;
        let (key, end) = match rest.chars().next() {
            Some('"' | '\'') => {
                let mut cur = Cursor { line: li, col };
                let key = self.quoted(&mut cur)?;
                if cur.line != li {
                    return Ok(None); // a multi-line quoted scalar, not a key
                }
                (key, cur.col)
            }
            Some('[' | '{' | '|' | '>') | None => return Ok(None),
            Some(_) => match find_plain_colon(rest) {
                Some(i) => (rest[..i].trim_end().to_string(), col + i),
                None => return Ok(None),
            },
        };
        let after = text.get(end..).unwrap_or("");
        let trimmed = after.trim_start_matches([' ', '\t']);
        let colon = end + (after.len() - trimmed.len());
        let mut it = trimmed.chars();
        if it.next() == Some(':') && matches!(it.next(), None | Some(' ' | '\t')) {
            Ok(Some((key, colon + 1)))
        } else {
            Ok(None)
        }
    }

    fn block_map(&mut self, n: usize) -> Result<Value> {
        let mut map = Map::new();
        loop {
            match self.peek_content()? {
                None => break,
                Some(ind) if ind < n => break,
                Some(ind) if ind > n => {
                    return err(
                        self.line_no(self.pos),
                        "unexpected indentation (a line is indented more than its mapping)",
                    );
                }
                Some(_) => {}
            }
            let no = self.line_no(self.pos);
            if self
                .lines
                .get(self.pos)
                .is_some_and(|l| is_seq_entry(l.rest()))
            {
                return err(
                    no,
                    "a sequence item ('- ') where a mapping key was expected",
                );
            }
            let Some((key, after)) = self.split_key(self.pos, n)? else {
                return err(no, "expected a 'key: value' mapping entry");
            };
            if map.contains_key(&key) {
                return err(no, format!("duplicate key {key:?}"));
            }
            let value = self.map_value(n, after)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    /// The value of the mapping entry on the current line, starting at byte `col`.
    fn map_value(&mut self, n: usize, col: usize) -> Result<Value> {
        let text = self.text(self.pos);
        let after = text.get(col..).unwrap_or("");
        let trimmed = after.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            self.pos += 1;
            return self.nested_value(n, true);
        }
        let vcol = col + (after.len() - trimmed.len());
        if is_seq_entry(trimmed) {
            return err(
                self.line_no(self.pos),
                "a block sequence cannot start on the same line as its key",
            );
        }
        self.inline_value(self.pos, vcol, n as isize)
    }

    /// A value on the lines after a key or `-` with nothing after it.
    fn nested_value(&mut self, n: usize, allow_flush_seq: bool) -> Result<Value> {
        match self.peek_content()? {
            Some(ind) if ind > n => self.block_node(n as isize),
            Some(ind)
                if ind == n
                    && allow_flush_seq
                    && self
                        .lines
                        .get(self.pos)
                        .is_some_and(|l| is_seq_entry(l.rest())) =>
            {
                // `users:\n- name: x`: Go and Python writers put the sequence flush with its key.
                self.block_seq(n)
            }
            _ => Ok(Value::Null),
        }
    }

    fn block_seq(&mut self, n: usize) -> Result<Value> {
        let mut items = Vec::new();
        loop {
            match self.peek_content()? {
                None => break,
                Some(ind) if ind < n => break,
                Some(ind) if ind > n => {
                    return err(
                        self.line_no(self.pos),
                        "unexpected indentation (a line is indented more than its sequence)",
                    );
                }
                Some(_) => {}
            }
            let Some(line) = self.lines.get_mut(self.pos) else {
                break;
            };
            if !is_seq_entry(line.rest()) {
                break;
            }
            let after = line.text.get(n + 1..).unwrap_or("");
            let content = after.trim_start_matches(' ');
            if content.starts_with('\t') {
                return err(
                    line.no,
                    "tab after '-' (YAML indentation allows only spaces)",
                );
            }
            if content.is_empty() || content.starts_with('#') {
                self.pos += 1;
                items.push(self.nested_value(n, false)?);
            } else {
                // Parse the item's content as a node indented to its own column.
                line.start = n + 1 + (after.len() - content.len());
                items.push(self.block_node(n as isize)?);
            }
        }
        Ok(Value::Array(items))
    }

    /// A scalar or flow node starting at (`li`, `col`), not a block map or sequence. Leaves `pos` on
    /// the line after the node.
    fn inline_value(&mut self, li: usize, col: usize, parent: isize) -> Result<Value> {
        let no = self.line_no(li);
        let rest = self.text(li).get(col..).unwrap_or("");
        check_node_start(no, rest)?;
        match rest.chars().next() {
            Some('|' | '>') => self.block_scalar(li, col, parent),
            Some('"' | '\'' | '[' | '{') => {
                let mut cur = Cursor { line: li, col };
                let v = self.flow_node(&mut cur)?;
                self.finish_line(cur)?;
                Ok(v)
            }
            Some(c @ (',' | ']' | '}')) => err(no, format!("unexpected '{c}'")),
            _ => self.block_plain(li, col, parent),
        }
    }

    /// After a quoted or flow node only a comment may follow on its last line.
    fn finish_line(&mut self, cur: Cursor) -> Result<()> {
        let rest = self.text(cur.line).get(cur.col..).unwrap_or("");
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if !(trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())) {
            return err(self.line_no(cur.line), "unexpected text after a value");
        }
        self.pos = cur.line + 1;
        Ok(())
    }

    /// A plain scalar in block context; continuation lines (indented more than `parent`) are folded.
    fn block_plain(&mut self, li: usize, col: usize, parent: isize) -> Result<Value> {
        let no = self.line_no(li);
        let first = self.text(li).get(col..).unwrap_or("");
        let (seg, commented) = scan_plain_line(no, first)?;
        let mut out = seg.to_string();
        self.pos = li + 1;
        let mut i = li + 1;
        let mut blank_lines = 0;
        while !commented && i < self.lines.len() {
            let line = &self.lines[i];
            let trimmed = line.text.trim_matches([' ', '\t']);
            if trimmed.is_empty() {
                blank_lines += 1;
                i += 1;
                continue;
            }
            if line.indent() as isize <= parent || trimmed.starts_with('#') {
                break;
            }
            let (seg, commented) = scan_plain_line(line.no, trimmed)?;
            if blank_lines == 0 {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(blank_lines));
            }
            out.push_str(seg);
            blank_lines = 0;
            i += 1;
            self.pos = i;
            if commented {
                break;
            }
        }
        Ok(resolve_plain(&out))
    }

    /// `|` or `>` with optional chomping (`-`, `+`) and indentation (1-9) indicators.
    fn block_scalar(&mut self, li: usize, col: usize, parent: isize) -> Result<Value> {
        let no = self.line_no(li);
        let header = self.text(li).get(col..).unwrap_or("");
        let folded = header.starts_with('>');
        let mut chomp = ' ';
        let mut explicit: Option<usize> = None;
        let mut rest = &header[1..];
        for _ in 0..2 {
            match rest.chars().next() {
                Some(c @ ('+' | '-')) if chomp == ' ' => chomp = c,
                Some(c @ '1'..='9') if explicit.is_none() => {
                    explicit = Some(c as usize - '0' as usize);
                }
                _ => break,
            }
            rest = &rest[1..];
        }
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if !(trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())) {
            return err(no, "unexpected text after a block scalar indicator");
        }
        let base = parent.max(0) as usize;
        let mut content_indent = explicit.map(|m| base + m);
        let mut lines: Vec<&str> = Vec::new();
        let mut i = li + 1;
        while let Some(line) = self.lines.get(i) {
            let raw = line.text;
            let spaces = raw.bytes().take_while(|b| *b == b' ').count();
            if spaces == raw.len() {
                lines.push(content_indent.and_then(|ci| raw.get(ci..)).unwrap_or(""));
                i += 1;
                continue;
            }
            let ci = match content_indent {
                Some(ci) => ci,
                None if spaces as isize <= parent => break,
                None => {
                    content_indent = Some(spaces);
                    spaces
                }
            };
            if spaces < ci {
                break;
            }
            lines.push(raw.get(ci..).unwrap_or(""));
            i += 1;
        }
        self.pos = i;
        let last = lines.iter().rposition(|l| !l.is_empty());
        let (content, trailing) = match last {
            Some(k) => (&lines[..=k], lines.len() - k - 1),
            None => (&lines[..0], lines.len()),
        };
        let mut out = if folded {
            fold_lines(content)
        } else {
            content.join("\n")
        };
        match chomp {
            '-' => {}
            '+' => {
                if !content.is_empty() {
                    out.push('\n');
                }
                out.push_str(&"\n".repeat(trailing));
            }
            _ => {
                if !content.is_empty() {
                    out.push('\n');
                }
            }
        }
        Ok(Value::String(out))
    }

    fn flow_node(&mut self, cur: &mut Cursor) -> Result<Value> {
        self.skip_flow_space(cur, cur.line)?;
        let no = self.line_no(cur.line);
        let rest = self.text(cur.line).get(cur.col..).unwrap_or("");
        check_node_start(no, rest)?;
        let mut chars = rest.chars();
        let c = chars.next();
        let sep = matches!(chars.next(), None | Some(' ' | '\t'));
        match c {
            Some('[') => self.flow_seq(cur),
            Some('{') => self.flow_map(cur),
            Some('"' | '\'') => Ok(Value::String(self.quoted(cur)?)),
            Some('|' | '>') => err(
                no,
                "block scalars ('|', '>') cannot appear inside [ ] or { }",
            ),
            Some('-') if sep => err(no, "a block sequence item ('- ') inside [ ] or { }"),
            Some(c @ (',' | ']' | '}' | '#')) => err(no, format!("unexpected '{c}'")),
            _ => match self.flow_plain(cur) {
                "" => err(no, "expected a value"),
                s => Ok(resolve_plain(s)),
            },
        }
    }

    /// Skip spaces, comments and line ends inside a flow collection that began on line `from`.
    fn skip_flow_space(&self, cur: &mut Cursor, from: usize) -> Result<()> {
        loop {
            let text = self.text(cur.line);
            let rest = text.get(cur.col..).unwrap_or("");
            let trimmed = rest.trim_start_matches([' ', '\t']);
            cur.col += rest.len() - trimmed.len();
            let comment = trimmed.starts_with('#')
                && (cur.col == 0
                    || text
                        .get(..cur.col)
                        .is_some_and(|p| p.ends_with([' ', '\t'])));
            if !trimmed.is_empty() && !comment {
                return Ok(());
            }
            cur.line += 1;
            cur.col = 0;
            if cur.line >= self.lines.len() {
                return err(
                    self.line_no(from),
                    "unterminated flow collection ('[' or '{' without its closing bracket)",
                );
            }
        }
    }

    /// A plain scalar inside a flow collection: it ends at a flow indicator, `: `, ` #` or line end.
    fn flow_plain(&self, cur: &mut Cursor) -> &'a str {
        let text = self.text(cur.line);
        let rest = text.get(cur.col..).unwrap_or("");
        let bytes = rest.as_bytes();
        let mut end = bytes.len();
        for (i, c) in rest.char_indices() {
            let next = bytes.get(i + 1).copied();
            let stop = match c {
                ',' | '[' | ']' | '{' | '}' => true,
                ':' => next.is_none_or(|b| b" \t,[]{}".contains(&b)),
                '#' => i > 0 && matches!(bytes[i - 1], b' ' | b'\t'),
                _ => false,
            };
            if stop {
                end = i;
                break;
            }
        }
        cur.col += end;
        rest[..end].trim_end_matches([' ', '\t'])
    }

    fn flow_seq(&mut self, cur: &mut Cursor) -> Result<Value> {
        let from = cur.line;
        self.enter(self.line_no(from))?;
        cur.col += 1;
        let mut items = Vec::new();
        loop {
            self.skip_flow_space(cur, from)?;
            if self.peek(cur) == Some(']') {
                cur.col += 1;
                break;
            }
            items.push(self.flow_node(cur)?);
            self.skip_flow_space(cur, from)?;
            match self.peek(cur) {
                Some(',') => cur.col += 1,
                Some(']') => {
                    cur.col += 1;
                    break;
                }
                Some(':') => {
                    return err(
                        self.line_no(cur.line),
                        "'key: value' pairs inside [ ] are not supported",
                    );
                }
                _ => return err(self.line_no(cur.line), "expected ',' or ']'"),
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn flow_map(&mut self, cur: &mut Cursor) -> Result<Value> {
        let from = cur.line;
        self.enter(self.line_no(from))?;
        cur.col += 1;
        let mut map = Map::new();
        loop {
            self.skip_flow_space(cur, from)?;
            let no = self.line_no(cur.line);
            let key = match self.peek(cur) {
                Some('}') => {
                    cur.col += 1;
                    break;
                }
                Some('"' | '\'') => self.quoted(cur)?,
                Some('[' | '{') => return err(no, "complex mapping keys are not supported"),
                Some(c @ (',' | ']' | ':' | '#')) => return err(no, format!("unexpected '{c}'")),
                _ => {
                    let rest = self.text(cur.line).get(cur.col..).unwrap_or("");
                    check_node_start(no, rest)?;
                    self.flow_plain(cur).to_string()
                }
            };
            if key.is_empty() {
                return err(no, "a mapping entry has an empty key");
            }
            self.skip_flow_space(cur, from)?;
            let value = if self.peek(cur) == Some(':') {
                cur.col += 1;
                self.skip_flow_space(cur, from)?;
                match self.peek(cur) {
                    Some(',' | '}') => Value::Null,
                    _ => self.flow_node(cur)?,
                }
            } else {
                Value::Null
            };
            if map.contains_key(&key) {
                return err(no, format!("duplicate key {key:?}"));
            }
            map.insert(key, value);
            self.skip_flow_space(cur, from)?;
            match self.peek(cur) {
                Some(',') => cur.col += 1,
                Some('}') => {
                    cur.col += 1;
                    break;
                }
                _ => return err(self.line_no(cur.line), "expected ',' or '}'"),
            }
        }
        self.depth -= 1;
        Ok(Value::Object(map))
    }

    fn peek(&self, cur: &Cursor) -> Option<char> {
        self.text(cur.line).get(cur.col..)?.chars().next()
    }

    /// A single- or double-quoted scalar at the cursor; it may span lines (folded as YAML does).
    fn quoted(&self, cur: &mut Cursor) -> Result<String> {
        let from = self.line_no(cur.line);
        let double = self.peek(cur) == Some('"');
        cur.col += 1;
        let mut out = String::new();
        // Trailing spaces before a line break are dropped, except those written as escapes.
        let mut keep = 0;
        loop {
            let text = self.text(cur.line);
            let rest = text.get(cur.col..).unwrap_or("");
            let mut chars = rest.char_indices().peekable();
            let mut continued = false;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' if double => {
                        cur.col += i + 1;
                        return Ok(out);
                    }
                    '\'' if !double => {
                        if chars.peek().map(|p| p.1) == Some('\'') {
                            chars.next();
                            out.push('\'');
                        } else {
                            cur.col += i + 1;
                            return Ok(out);
                        }
                    }
                    '\\' if double => match chars.next() {
                        None => continued = true,
                        Some((_, e)) => {
                            out.push(unescape(self.line_no(cur.line), e, &mut chars)?);
                            keep = out.len();
                        }
                    },
                    _ => out.push(c),
                }
            }
            if !continued {
                let t = out[keep..].trim_end_matches([' ', '\t']).len();
                out.truncate(keep + t);
            }
            // Move to the next non-blank line, counting blank lines for folding.
            let mut blank_lines = 0;
            loop {
                cur.line += 1;
                cur.col = 0;
                if cur.line >= self.lines.len() {
                    return err(from, "unterminated quoted string");
                }
                let t = self.text(cur.line);
                let trimmed = t.trim_start_matches([' ', '\t']);
                if trimmed.is_empty() {
                    blank_lines += 1;
                    continue;
                }
                cur.col = t.len() - trimmed.len();
                break;
            }
            if blank_lines > 0 {
                out.push_str(&"\n".repeat(blank_lines));
            } else if !continued {
                out.push(' ');
            }
            keep = out.len();
        }
    }
}

/// The first `: ` (or `:` at the end) of a plain key, unless a comment starts first.
fn find_plain_colon(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b':' if matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) => {
                return if i == 0 { None } else { Some(i) };
            }
            b'#' if i > 0 && matches!(bytes[i - 1], b' ' | b'\t') => return None,
            _ => {}
        }
    }
    None
}

/// One line of a block plain scalar: the text before any ` #` comment, and whether a comment ended it.
fn scan_plain_line(no: usize, s: &str) -> Result<(&str, bool)> {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'#' if i > 0 && matches!(bytes[i - 1], b' ' | b'\t') => {
                return Ok((s[..i].trim_end_matches([' ', '\t']), true));
            }
            b':' if matches!(bytes.get(i + 1), None | Some(b' ' | b'\t')) => {
                return err(
                    no,
                    "': ' inside a plain value (quote the value, or check the indentation)",
                );
            }
            _ => {}
        }
    }
    Ok((s.trim_end_matches([' ', '\t']), false))
}

/// Fold `>` block scalar lines: a break between two text lines becomes a space, blank lines become
/// newlines, and lines starting with a space keep their breaks.
fn fold_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    let mut blank = 0;
    let mut first = true;
    let mut prev_spaced = false;
    for line in lines {
        if line.is_empty() {
            blank += 1;
            continue;
        }
        let spaced = line.starts_with([' ', '\t']);
        if first {
            out.push_str(&"\n".repeat(blank));
        } else if !spaced && !prev_spaced {
            if blank == 0 {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(blank));
            }
        } else {
            out.push_str(&"\n".repeat(blank + 1));
        }
        out.push_str(line);
        blank = 0;
        first = false;
        prev_spaced = spaced;
    }
    out
}

/// The character for the double-quoted escape `\e`, reading hex digits from `chars` as needed.
fn unescape(
    no: usize,
    e: char,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<char> {
    let simple = match e {
        '0' => Some('\0'),
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        't' | '\t' => Some('\t'),
        'n' => Some('\n'),
        'v' => Some('\u{b}'),
        'f' => Some('\u{c}'),
        'r' => Some('\r'),
        'e' => Some('\u{1b}'),
        ' ' => Some(' '),
        '"' => Some('"'),
        '/' => Some('/'),
        '\\' => Some('\\'),
        'N' => Some('\u{85}'),
        '_' => Some('\u{a0}'),
        'L' => Some('\u{2028}'),
        'P' => Some('\u{2029}'),
        _ => None,
    };
    if let Some(c) = simple {
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
    let code = read_hex(no, width, chars)?;
    if (0xD800..0xDC00).contains(&code) && width == 4 {
        // A UTF-16 surrogate pair written as two \u escapes (as JSON does).
        let low = match (chars.next(), chars.next()) {
            (Some((_, '\\')), Some((_, 'u'))) => read_hex(no, 4, chars)?,
            _ => return err(no, "unpaired surrogate in a \\u escape"),
        };
        if !(0xDC00..0xE000).contains(&low) {
            return err(no, "unpaired surrogate in a \\u escape");
        }
        let c = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        return char::from_u32(c).map_or_else(|| err(no, "invalid \\u escape"), Ok);
    }
    char::from_u32(code).map_or_else(|| err(no, "escape is not a valid Unicode character"), Ok)
}

fn read_hex(
    no: usize,
    width: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<u32> {
    let mut code: u32 = 0;
    for _ in 0..width {
        match chars.next().and_then(|(_, c)| c.to_digit(16)) {
            Some(d) => code = code * 16 + d,
            None => return err(no, "escape needs hexadecimal digits"),
        }
    }
    Ok(code)
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
            // multi-line plain scalars
            (
                "hint: install it\n  from the web\n\n  today\nx: y",
                json!({"hint": "install it from the web\ntoday", "x": "y"}),
            ),
            ("- a\n  b\n- c", json!(["a b", "c"])),
            ("k:\n  v1\n  v2 # c\n", json!({"k": "v1 v2"})),
            // quoting
            ("a: 'it''s: #x'", json!({"a": "it's: #x"})),
            (
                "a: \"q\\\" \\\\ \\n \\t \\u00e9 \\x41 \\U0001F600 \\ud83d\\ude00\"",
                json!({"a": "q\" \\ \n \t \u{e9} A \u{1F600} \u{1F600}"}),
            ),
            (
                "a: \"one\n  two\n\n  three  \\\n  four\"",
                json!({"a": "one two\nthree  four"}),
            ),
            ("a: 'one\n  two'", json!({"a": "one two"})),
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
                "context: {cluster: c, user: u, namespace: }",
                json!({"context": {"cluster": "c", "user": "u", "namespace": null}}),
            ),
            (
                "c: {server: https://h:6443, list: [a, {b: c}], }",
                json!({"c": {"server": "https://h:6443", "list": ["a", {"b": "c"}]}}),
            ),
            (
                "args: [\n  a, # first\n  b,\n]\nk: v",
                json!({"args": ["a", "b"], "k": "v"}),
            ),
            (
                "- {\"a\":1,\"b\":[true,null]}",
                json!([{"a": 1, "b": [true, null]}]),
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
            ("h: |2\n    a\n  b\n", json!({"h": "  a\nb\n"})),
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
            ("  {a: b}", json!({"a": "b"})),
            ("[1, \"two\"]", json!([1, "two"])),
            // a scalar document
            ("just text\n  more", json!("just text more")),
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
            ("a: b: c", 1, "': '"),
            ("a: b\n  c: d", 2, "': '"),
            ("a:\n  b: 1\n    c: 2", 3, "indentation"),
            ("a:\n    b: 1\n  c: 2", 3, "indentation"),
            ("a:\n  - b\n  c: d", 3, "indentation"),
            ("a: - b", 1, "same line"),
            ("a: b\n- c", 2, "sequence item"),
            ("a: 'abc", 1, "unterminated quoted"),
            ("a: \"abc\n\nb: c", 1, "unterminated quoted"),
            ("a: \"\\q\"", 1, "invalid escape"),
            ("a: \"\\u12\"", 1, "hexadecimal"),
            ("a: \"\\ud800x\"", 1, "surrogate"),
            ("a: [1, 2\nb: c", 2, "expected ','"),
            ("a: [1, 2\n", 1, "unterminated flow"),
            ("a: {b: c", 1, "unterminated flow"),
            ("a: [\"1\" 2]", 1, "expected ','"),
            ("a: [1, , 2]", 1, "unexpected ','"),
            ("a: [b: c]", 1, "pairs inside"),
            ("a: {b: c} d", 1, "after a value"),
            ("a: 'x' y", 1, "after a value"),
            ("? a\n: b", 1, "complex"),
            (": b", 1, "empty key"),
            ("a: @x", 1, "'@'"),
            ("a: |x\n  b", 1, "block scalar"),
            ("a: [|, b]", 1, "block scalars"),
            ("a: ]", 1, "unexpected ']'"),
            ("a: {[b]: c}", 1, "complex"),
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
            "a: \"x\\u00e9 \\\n y\"\nb: [1, {c: 'd''e'}]\nh: >+2\n   x\n\nk: |\n  z\n- q",
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
