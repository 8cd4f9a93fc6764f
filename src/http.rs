//! A bounded HTTP/1.1 server: one thread per connection up to a limit, one request per connection,
//! used by the updater API and the controller's probes and metrics.
//!
//! Owns: parsing and limits. The request line, the headers and the body are capped (414, 431, 413,
//! answered before reading more), every read has a timeout and the whole request a deadline (408),
//! malformed requests get 400, unsupported versions 505, chunked bodies 501, too many connections
//! 503. Errors the server produces itself have a JSON body `{"err": "..."}`.
//! With a rustls `ServerConfig` (`bind`'s `tls`) every connection is TLS; the handshake counts against
//! the same read timeout and request deadline as the request itself.
//! Must not: know any route (the handler does) or keep a connection open after answering.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, Stream};
use ureq::http::{HeaderName, HeaderValue, StatusCode};

/// Size and time limits. `Default` is right for an API on a private network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (method, target, version): 414 beyond.
    pub max_request_line: usize,
    /// Most bytes of header lines after the request line: 431 beyond.
    pub max_header_bytes: usize,
    /// Most header lines: 431 beyond.
    pub max_headers: usize,
    /// Largest body (Content-Length): 413 beyond.
    pub max_body: usize,
    /// Longest wait for any single read.
    pub read_timeout: Duration,
    /// Longest time to receive a whole request, so a client trickling bytes cannot hold a thread.
    pub request_timeout: Duration,
    /// Longest wait for any single write of the response.
    pub write_timeout: Duration,
    /// Most connections handled at once: 503 beyond.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body: 1024 * 1024,
            read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target's path; a query is dropped (no route reads one).
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response; `Content-Length` and `Connection: close` are added when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// `application/json` body from any serializable value.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, value: &T) -> Response {
        let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        body.push(b'\n');
        Response::new(status, "application/json", body)
    }

    /// `{"err": message}` with that status: the error shape of the updater API.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "err": message }))
    }

    /// `text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A running server; stops accepting when shut down or dropped. Requests in flight finish.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

impl Server {
    /// Binds and starts the accept thread; with `tls`, every connection speaks TLS.
    pub fn bind(
        addr: impl ToSocketAddrs,
        limits: Limits,
        tls: Option<Arc<ServerConfig>>,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let limits = Arc::new(limits);
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("http-{addr}"))
            .spawn(move || accept_loop(listener, limits, tls, handler, stop2))?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks until the server is shut down from elsewhere (or its accept loop fails).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return; // `wait` already joined it
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() with a connection to ourselves.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        let _ = thread.join();
    }
}

/// Decrements the connection count however the connection thread ends.
struct Slot(Arc<AtomicUsize>);
impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: TcpListener,
    limits: Arc<Limits>,
    tls: Option<Arc<ServerConfig>>,
    handler: Arc<Handler>,
    stop: Arc<AtomicBool>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut failures = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let (mut stream, peer) = match listener.accept() {
            Ok(c) => {
                failures = 0;
                c
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; keep serving when it clears.
                failures = failures.saturating_add(1);
                log::warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10 * u64::from(failures.min(100))));
                continue;
            }
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_connections {
            let _slot = Slot(active.clone());
            // A plain-text 503 means nothing to a TLS client, and a handshake here would stall
            // the accept loop: a TLS connection is closed at once.
            if tls.is_none() {
                let _ = stream.set_write_timeout(Some(limits.write_timeout));
                let busy = Response::error(503, "too many connections");
                let _ = write_response(&mut stream, &busy, false);
            }
            continue;
        }
        let slot = Slot(active.clone());
        let (limits, handler, tls) = (limits.clone(), handler.clone(), tls.clone());
        let spawned = std::thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve(stream, peer, &limits, tls, &*handler);
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
        }
    }
}

/// An answer the server gives without calling the handler.
struct Refusal(u16, &'static str);

/// A TCP connection with a deadline: every read waits at most the read timeout and never past the
/// deadline, whether rustls, the request parser or the health prober's status line reader asks for
/// the bytes.
pub(crate) struct Sock {
    pub tcp: TcpStream,
    pub deadline: Instant,
    pub read_timeout: Duration,
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.tcp
            .set_read_timeout(Some(left.min(self.read_timeout)))?;
        self.tcp.read(buf)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    limits: &Limits,
    tls: Option<Arc<ServerConfig>>,
    handler: &Handler,
) {
    let _ = stream.set_write_timeout(Some(limits.write_timeout));
    let _ = stream.set_nodelay(true);
    let mut sock = Sock {
        tcp: stream,
        deadline: Instant::now() + limits.request_timeout,
        read_timeout: limits.read_timeout,
    };
    let drain = match tls {
        None => exchange(&mut sock, peer, limits, handler),
        Some(config) => {
            let mut conn = match ServerConnection::new(config) {
                Ok(conn) => conn,
                Err(e) => return log::warn!("TLS session for {peer} not created: {e}"),
            };
            let mut tls = Stream::new(&mut conn, &mut sock);
            let drain = exchange(&mut tls, peer, limits, handler);
            if drain.is_some() {
                // End the session cleanly (close_notify) before the TCP write side is shut.
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            drain
        }
    };
    let Some(drain) = drain else { return };
    let _ = sock.tcp.shutdown(Shutdown::Write);
    if drain {
        // Read a little of what the client still sends, for a second at most (a client trickling
        // bytes must not keep its slot), so closing does not reset the connection before it has
        // read our answer.
        sock.deadline = Instant::now() + Duration::from_secs(1);
        let _ = io::copy(&mut (&mut sock).take(4 * 1024 * 1024), &mut io::sink());
    }
}

/// Reads the request and answers it. None when nothing was answered (the client sent nothing, or
/// TLS failed); else whether the client may still be sending (drain before closing).
fn exchange(
    stream: &mut (impl Read + Write),
    peer: SocketAddr,
    limits: &Limits,
    handler: &Handler,
) -> Option<bool> {
    let (response, head_only, drain) = match read_request(stream, limits) {
        Ok(None) => return None,
        Ok(Some(req)) => {
            let head_only = req.method == "HEAD";
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&req)))
                .unwrap_or_else(|_| Response::error(500, "internal error"));
            (r, head_only, false)
        }
        Err(Refusal(0, why)) => {
            // TLS refused (wrong protocol, untrusted certificate on the client's side, garbage).
            log::debug!("connection from {peer} dropped: {why}");
            return None;
        }
        Err(Refusal(code, msg)) => (Response::error(code, msg), false, true),
    };
    let _ = write_response(stream, &response, head_only);
    Some(drain)
}

/// What a failed read answers.
fn refusal(e: io::Error) -> Refusal {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            Refusal(408, "request not received in time")
        }
        // rustls reports a failed handshake or a bad record as InvalidData.
        io::ErrorKind::InvalidData => Refusal(0, "TLS error"),
        _ => Refusal(400, "connection error"),
    }
}

/// One CRLF-ended line of at most `max` bytes (CRLF not counted), else `too_long`; None when the
/// input ends before its first byte.
fn read_line(
    input: &mut impl BufRead,
    max: usize,
    too_long: Refusal,
) -> Result<Option<String>, Refusal> {
    let mut line = Vec::new();
    let limit = max as u64 + 2;
    input
        .by_ref()
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(refusal)?;
    match line.strip_suffix(b"\r\n") {
        Some(text) => String::from_utf8(text.to_vec())
            .map(Some)
            .map_err(|_| Refusal(400, "headers are not UTF-8")),
        None if line.is_empty() => Ok(None),
        None if line.len() as u64 == limit => Err(too_long),
        None if line.ends_with(b"\n") => Err(Refusal(400, "a line does not end with CRLF")),
        None => Err(Refusal(400, "connection closed mid-request")),
    }
}

/// Reads one request; `Ok(None)` when the client closed without sending anything.
fn read_request(
    stream: &mut (impl Read + Write),
    limits: &Limits,
) -> Result<Option<Request>, Refusal> {
    let mut input = BufReader::new(stream);
    let too_long = Refusal(414, "request line too long");
    let Some(request_line) = read_line(&mut input, limits.max_request_line, too_long)? else {
        return Ok(None);
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal(400, "malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Refusal(400, "malformed method"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Refusal(400, "malformed request target"));
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") => return Err(Refusal(505, "HTTP version not supported")),
        _ => return Err(Refusal(400, "malformed request line")),
    }
    // Header lines with their CRLFs share `max_header_bytes`.
    let mut left = limits.max_header_bytes;
    let mut headers = Vec::new();
    loop {
        let too_large = Refusal(431, "request headers too large");
        let line = read_line(&mut input, left, too_large)?;
        let line = line.ok_or(Refusal(400, "connection closed mid-request"))?;
        if line.is_empty() {
            break;
        }
        left = left.saturating_sub(line.len() + 2);
        if headers.len() >= limits.max_headers {
            return Err(Refusal(431, "too many headers"));
        }
        // A token for the name; no control character but tab in the value (the http crate's rules).
        let valid = |(n, v): &(&str, &str)| {
            HeaderName::from_bytes(n.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok()
        };
        let Some((name, value)) = line.split_once(':').filter(valid) else {
            return Err(Refusal(400, "malformed header line"));
        };
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |n: &'static str| headers.iter().filter(move |(k, _)| k == n).map(|(_, v)| v);
    if header("transfer-encoding").next().is_some() {
        return Err(Refusal(
            501,
            "chunked request bodies are not supported; send Content-Length",
        ));
    }
    let lengths: Vec<&String> = header("content-length").collect();
    let length = match lengths[..] {
        [] => 0,
        [v] => v
            .parse::<u64>()
            .map_err(|_| Refusal(400, "malformed Content-Length"))?,
        _ => return Err(Refusal(400, "more than one Content-Length")),
    };
    if length > limits.max_body as u64 {
        return Err(Refusal(413, "request body too large"));
    }
    if length > 0
        && header("expect").any(|v| v.eq_ignore_ascii_case("100-continue"))
        && input.buffer().is_empty()
    {
        let _ = input.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    // Bytes after the body (pipelining) stay unread: one request per connection.
    let mut body = Vec::new();
    let read = input.take(length).read_to_end(&mut body).map_err(refusal)?;
    if (read as u64) < length {
        return Err(Refusal(400, "connection closed mid-body"));
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
    }))
}

fn write_response(stream: &mut impl Write, r: &Response, head_only: bool) -> io::Result<()> {
    let reason = StatusCode::from_u16(r.status).ok();
    let reason = reason
        .and_then(|c| c.canonical_reason())
        .unwrap_or("Status");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", r.status);
    for (n, v) in &r.headers {
        // Handlers build headers from code, but a CR/LF must never split the response.
        if n.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            continue;
        }
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&r.body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(limits: Limits) -> Server {
        Server::bind("127.0.0.1:0", limits, None, |r: &Request| {
            Response::json(
                200,
                &serde_json::json!({"m": r.method, "p": r.path, "b": r.body.len(),
                                    "ct": r.header("Content-Type")}),
            )
        })
        .unwrap()
    }

    /// Sends raw bytes, returns the status code and body.
    fn raw(s: &Server, bytes: &[u8]) -> (u16, String) {
        let mut c = TcpStream::connect(s.local_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = c.write_all(bytes);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).to_string();
        let code = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (code, body)
    }

    /// A refused request whose client goes on trickling its body is closed within about a second
    /// of the answer, not drained for as long as bytes come (each within the read timeout).
    #[test]
    fn a_trickling_client_is_not_drained_for_ever() {
        let s = server(Limits::default());
        let mut c = TcpStream::connect(s.local_addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n")
            .unwrap();
        let mut head = [0u8; 12];
        c.read_exact(&mut head).unwrap();
        assert_eq!(&head[9..], b"413");
        // One byte every 100 ms for 10 s at most: a write fails once the server has closed.
        let closed = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            c.write_all(b"x").is_err()
        });
        assert!(closed, "still drained after 10 s");
    }

    #[test]
    fn answers_a_plain_request_and_drops_the_query() {
        let s = server(Limits::default());
        let (code, body) = raw(
            &s,
            b"POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert_eq!(code, 200);
        assert!(
            body.contains(r#""p":"/a/b""#) && body.contains(r#""b":3"#),
            "{body}"
        );
        assert!(body.contains(r#""ct":null"#));
        drop(s);
    }

    #[test]
    fn a_connection_over_the_limit_gets_503_and_the_slot_comes_back() {
        let s = server(Limits {
            max_connections: 1,
            ..Limits::default()
        });
        // Holds the only slot: connected, nothing sent yet.
        let mut first = TcpStream::connect(s.local_addr()).unwrap();
        let (code, body) = raw(&s, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(
            (code, body.as_str()),
            (503, "{\"err\":\"too many connections\"}\n")
        );
        first.write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
        first
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut answer = String::new();
        let _ = first.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        drop(first);
        // Bounded: the first connection's thread frees its slot as it ends.
        let until = Instant::now() + Duration::from_secs(30);
        while raw(&s, b"GET / HTTP/1.1\r\n\r\n").0 != 200 {
            assert!(Instant::now() < until, "the slot never came back");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(s);
    }

    #[test]
    fn refuses_oversize_malformed_and_slow_requests_with_json_errors() {
        let limits = Limits {
            max_request_line: 64,
            max_header_bytes: 256,
            max_headers: 4,
            max_body: 10,
            read_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        let s = server(limits);
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(100));
        let big_headers = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(300));
        let many = "GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\n\r\n".to_string();
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (long_target.into_bytes(), 414),
            (format!("GET /{}", "a".repeat(100)).into_bytes(), 414),
            (big_headers.into_bytes(), 431),
            (many.into_bytes(), 431),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n".to_vec(),
                413,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                501,
            ),
            (b"GET / HTTP/2.0\r\n\r\n".to_vec(), 505),
            (b"GET /\r\n\r\n".to_vec(), 400),
            (b"get / HTTP/1.1\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nbad header\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\n: x\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n".to_vec(), 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec(), 408),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab".to_vec(),
                408,
            ),
        ];
        for (bytes, want) in cases {
            let (code, body) = raw(&s, &bytes);
            assert_eq!(code, want, "{:?}", String::from_utf8_lossy(&bytes));
            assert!(body.starts_with("{\"err\":"), "{body}");
        }
    }

    #[test]
    fn tls_serves_rustls_clients_and_drops_silent_or_plain_ones() {
        use crate::kube::testutil::Pki;
        use crate::updater::client::{ClientAuth, ClientTls, Timeouts, UpdaterClient};
        let pki = Pki::new("http-test-ca");
        let limits = Limits {
            read_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let s = Server::bind(
            "127.0.0.1:0",
            limits,
            Some(pki.server_config(&["127.0.0.1"], None)),
            |_: &Request| Response::json(200, &serde_json::json!({"backends": []})),
        )
        .unwrap();
        let auth = ClientAuth {
            token: None,
            tls: ClientTls::CaPem(pki.ca_pem.clone().into_bytes()),
        };
        let url = format!("https://{}/api/v1/lb", s.local_addr());
        let c = UpdaterClient::new(&url, auth, Timeouts::default()).unwrap();
        let mut listed = 0;
        c.list_each(|_| listed += 1).unwrap();
        assert_eq!(listed, 0);
        // A client that never finishes the handshake is dropped at the request deadline; one that
        // speaks plain HTTP gets no HTTP answer.
        let (_, silent) = raw(&s, b"");
        assert_eq!(silent, "");
        let (code, _) = raw(&s, b"GET /api/v1/lb HTTP/1.1\r\n\r\n");
        assert_eq!(code, 0);
        let (code, _) = raw(&s, b"\x16\x03\x01\x00\x05hello");
        assert_eq!(code, 0);
        // The server still serves afterwards.
        assert!(c.list_each(|_| {}).is_ok());
    }

    #[test]
    fn a_panicking_handler_gets_500_and_the_server_keeps_serving() {
        let s = Server::bind("127.0.0.1:0", Limits::default(), None, |r: &Request| {
            if r.path == "/panic" {
                panic!("boom");
            }
            Response::text(200, "ok")
        })
        .unwrap();
        assert_eq!(raw(&s, b"GET /panic HTTP/1.1\r\n\r\n").0, 500);
        assert_eq!(
            raw(&s, b"GET /fine HTTP/1.1\r\n\r\n"),
            (200, "ok".to_string())
        );
    }
}
