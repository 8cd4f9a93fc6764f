//! HTTP/1.1 framing for the fake: bounded request parsing (request line, headers, body) and
//! responses framed as kube-apiserver frames them (Content-Length up to 2 KiB, chunked above, in
//! 2048-byte chunks; watch streams one chunk per event). No sockets here: any `Read`/`Write`.

use std::io::{self, Read, Write};

use super::clock;

/// Go's `http.DefaultMaxHeaderBytes`.
pub const MAX_HEAD: usize = 1 << 20;
/// kube-apiserver's request body limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// Responses above this size are chunked (Go's `bufferBeforeChunkingSize`).
pub const CHUNK: usize = 2048;

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn wants_close(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    /// Malformed request: answer 400 and close.
    Bad,
    /// Headers over the limit: answer 431 and close.
    HeadTooLarge,
    /// Body over the limit: answer 413 and close.
    BodyTooLarge,
    Io(io::Error),
}

/// Reads from a connection, keeping bytes read past one request for the next.
pub struct Conn<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Conn<S> {
    pub fn new(stream: S) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn fill(&mut self) -> Result<usize, ReadError> {
        let mut tmp = [0u8; 8192];
        match self.stream.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
            Err(e) => Err(ReadError::Io(e)),
        }
    }

    /// Reads one request head; the body is read by `read_body` (after any `100 Continue`).
    pub fn read_head(&mut self) -> Result<Request, ReadError> {
        let mut searched = 0;
        let end = loop {
            if let Some(i) = find(&self.buf[searched..], b"\r\n\r\n") {
                break searched + i;
            }
            searched = self.buf.len().saturating_sub(3);
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::HeadTooLarge);
            }
            if self.fill()? == 0 {
                return Err(if self.buf.is_empty() {
                    ReadError::Closed
                } else {
                    ReadError::Bad
                });
            }
        };
        if end > MAX_HEAD {
            return Err(ReadError::HeadTooLarge);
        }
        let head = String::from_utf8(self.buf[..end].to_vec()).map_err(|_| ReadError::Bad)?;
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let line = lines.next().ok_or(ReadError::Bad)?;
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ReadError::Bad);
        };
        if method.is_empty()
            || !method.bytes().all(|b| b.is_ascii_uppercase())
            || !target.starts_with('/')
            || !(version == "HTTP/1.1" || version == "HTTP/1.0")
        {
            return Err(ReadError::Bad);
        }
        let mut headers = Vec::new();
        for l in lines {
            let (k, v) = l.split_once(':').ok_or(ReadError::Bad)?;
            if k.is_empty() || k.contains(' ') {
                return Err(ReadError::Bad);
            }
            headers.push((k.to_string(), v.trim().to_string()));
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (target.to_string(), String::new()),
        };
        let mut req = Request {
            method: method.to_string(),
            target: target.to_string(),
            path,
            query,
            headers,
            body: Vec::new(),
        };
        if version == "HTTP/1.0" && req.header("Connection").is_none() {
            req.headers.push(("Connection".into(), "close".into()));
        }
        Ok(req)
    }

    /// Reads the body announced by `req`'s headers (Content-Length or chunked).
    pub fn read_body(&mut self, req: &mut Request) -> Result<(), ReadError> {
        let chunked = req
            .header("Transfer-Encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = find(&self.buf, b"\r\n") {
                        break i;
                    }
                    if self.buf.len() > 1024 || self.fill()? == 0 {
                        return Err(ReadError::Bad);
                    }
                };
                let size_str = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
                let size_hex = size_str.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_hex, 16).map_err(|_| ReadError::Bad)?;
                self.buf.drain(..line_end + 2);
                if body.len() + size > MAX_BODY {
                    return Err(ReadError::BodyTooLarge);
                }
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    loop {
                        if let Some(i) = find(&self.buf, b"\r\n") {
                            self.buf.drain(..i + 2);
                            if i == 0 {
                                break;
                            }
                            continue;
                        }
                        if self.buf.len() > 8192 || self.fill()? == 0 {
                            return Err(ReadError::Bad);
                        }
                    }
                    break;
                }
                while self.buf.len() < size + 2 {
                    if self.fill()? == 0 {
                        return Err(ReadError::Bad);
                    }
                }
                body.extend_from_slice(&self.buf[..size]);
                self.buf.drain(..size + 2);
            }
            req.body = body;
            return Ok(());
        }
        let len = match req.header("Content-Length") {
            Some(v) => v.parse::<usize>().map_err(|_| ReadError::Bad)?,
            None => 0,
        };
        if len > MAX_BODY {
            return Err(ReadError::BodyTooLarge);
        }
        while self.buf.len() < len {
            if self.fill()? == 0 {
                return Err(ReadError::Bad);
            }
        }
        req.body = self.buf.drain(..len).collect();
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The response head: sorted headers, then `Date`, then the framing header.
fn head(code: u16, content_type: &str, extra: &[(String, String)], framing: &str) -> Vec<u8> {
    let mut headers: Vec<(String, String)> = vec![
        ("Cache-Control".into(), "no-cache, private".into()),
        ("Content-Type".into(), content_type.into()),
    ];
    headers.extend(extra.iter().cloned());
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = format!("HTTP/1.1 {code} {}\r\n", reason_phrase(code));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Date: {}\r\n{framing}\r\n\r\n",
        clock::http_date_now()
    ));
    out.into_bytes()
}

/// Writes a complete response, chunked when the body is over 2 KiB.
pub fn write_response(
    w: &mut impl Write,
    code: u16,
    content_type: &str,
    extra: &[(String, String)],
    body: &[u8],
) -> io::Result<()> {
    if body.len() <= CHUNK {
        let mut out = head(
            code,
            content_type,
            extra,
            &format!("Content-Length: {}", body.len()),
        );
        out.extend_from_slice(body);
        w.write_all(&out)?;
    } else {
        let mut out = head(code, content_type, extra, "Transfer-Encoding: chunked");
        for c in body.chunks(CHUNK) {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        w.write_all(&out)?;
    }
    w.flush()
}

/// Starts a chunked stream (a watch) and flushes the head at once.
pub fn write_stream_head<W: Write + ?Sized>(w: &mut W) -> io::Result<()> {
    w.write_all(&head(
        200,
        "application/json",
        &[],
        "Transfer-Encoding: chunked",
    ))?;
    w.flush()
}

/// One chunk, flushed.
pub fn write_chunk<W: Write + ?Sized>(w: &mut W, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out)?;
    w.flush()
}

pub fn write_last_chunk<W: Write + ?Sized>(w: &mut W) -> io::Result<()> {
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

/// Go's answer to an unparseable request: plain text, then the connection closes.
pub fn write_plain_error(w: &mut impl Write, code: u16) -> io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {code} {r}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{code} {r}",
        r = reason_phrase(code)
    );
    w.write_all(msg.as_bytes())?;
    w.flush()
}
