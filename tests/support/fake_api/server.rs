//! Sockets: the accept loop, one thread per connection (TLS via rustls with the ring provider, or
//! plain HTTP), HTTP/1.1 keep-alive, and shutdown that closes every socket and joins every thread.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::ServerConnection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::api::{self, Reply};
use super::certs;
use super::http::{self, Conn, ReadError};
use super::latency::Gate;
use super::state::State;
use super::watch::{self, End};

/// Timings that tests may shorten.
#[derive(Debug, Clone)]
pub struct Config {
    pub bookmark_interval: Duration,
    pub bookmark_before_timeout: Duration,
    pub default_watch_timeout: Duration,
    pub idle_timeout: Duration,
    /// `host:port` reported in `/api`.
    pub advertise: String,
}

pub struct Shared {
    pub state: Mutex<State>,
    /// Signalled after every change to the state and at shutdown.
    pub changed: Condvar,
    pub shutdown: AtomicBool,
    pub cfg: Config,
    /// Simulated latency (off unless asked for).
    pub latency: Gate,
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

impl Shared {
    pub fn new(state: State, cfg: Config, latency: Gate) -> Self {
        Shared {
            latency,
            state: Mutex::new(state),
            changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
            cfg,
            conns: Mutex::new(Vec::new()),
        }
    }

    /// Locks the state; a panicked holder does not poison the fake for everyone else.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps up to `d`, waking early at shutdown.
    pub fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut guard = self.lock();
        while !self.shutdown.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = match self
                .changed
                .wait_timeout(guard, left.min(Duration::from_millis(200)))
            {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    pub fn notify(&self) {
        self.changed.notify_all();
    }
}

/// The TLS setup: serving certificate from the CA, client certificates optional but verified.
pub fn tls_config(ca: &certs::Ca) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert_der.clone()))
        .expect("CA certificate");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .expect("client verifier");
    let (cert, key) = ca.server_cert();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![
                CertificateDer::from(cert),
                CertificateDer::from(ca.cert_der.clone()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Stream {
    /// Closes the socket for real: the accept loop holds a clone of it, so dropping is not enough.
    fn close(&mut self) {
        let tcp = match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => {
                s.conn.send_close_notify();
                let _ = s.flush();
                &s.sock
            }
        };
        let _ = tcp.shutdown(Shutdown::Both);
    }

    fn cert_user(&self) -> Option<String> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(s) => s
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| certs::subject_cn(c.as_ref())),
        }
    }
}

/// Accepts connections until shutdown.
pub fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    for conn in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(tcp) = conn else { continue };
        let Ok(handle_clone) = tcp.try_clone() else {
            continue;
        };
        let _ = tcp.set_read_timeout(Some(shared.cfg.idle_timeout));
        let _ = tcp.set_write_timeout(Some(Duration::from_secs(30)));
        let _ = tcp.set_nodelay(true);
        let stream = match &tls {
            Some(cfg) => match ServerConnection::new(cfg.clone()) {
                Ok(c) => Stream::Tls(Box::new(rustls::StreamOwned::new(c, tcp))),
                Err(_) => continue,
            },
            None => Stream::Plain(tcp),
        };
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("fake-apiserver-conn".into())
            .spawn(move || serve(&s, stream));
        let Ok(handle) = spawned else { continue };
        let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|(_, h)| !h.is_finished());
        conns.push((handle_clone, handle));
    }
}

/// Closes every connection and joins its thread.
pub fn close_all(shared: &Shared) {
    let conns = std::mem::take(&mut *shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
    for (tcp, _) in &conns {
        let _ = tcp.shutdown(Shutdown::Both);
    }
    for (_, h) in conns {
        let _ = h.join();
    }
}

/// Resets every open connection (watches, keep-alive, requests in flight) and keeps serving, as
/// when a load balancer in front of the apiserver drops its connections. Returns how many were open.
pub fn reset_connections(shared: &Shared) -> usize {
    let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
    conns.retain(|(_, h)| !h.is_finished());
    for (tcp, _) in conns.iter() {
        let _ = tcp.shutdown(Shutdown::Both);
    }
    conns.len()
}

/// Wakes a blocked `accept` so the loop sees the shutdown flag.
pub fn wake(addr: SocketAddr) {
    let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
}

/// Serves requests on one connection until it closes.
fn serve(shared: &Shared, stream: Stream) {
    let mut conn = Conn::new(stream);
    serve_requests(shared, &mut conn);
    conn.stream.close();
}

fn serve_requests(shared: &Shared, conn: &mut Conn<Stream>) {
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        let mut req = match conn.read_head() {
            Ok(r) => r,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return,
            Err(ReadError::Bad) => {
                let _ = http::write_plain_error(&mut conn.stream, 400);
                return;
            }
            Err(ReadError::HeadTooLarge) => {
                let _ = http::write_plain_error(&mut conn.stream, 431);
                return;
            }
            Err(ReadError::BodyTooLarge) => return,
        };
        if req
            .header("Expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && conn
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
        {
            return;
        }
        match conn.read_body(&mut req) {
            Ok(()) => {}
            Err(ReadError::BodyTooLarge) => {
                let e = super::status::request_too_large(http::MAX_BODY);
                let _ = http::write_response(
                    &mut conn.stream,
                    413,
                    e.content_type(),
                    &e.headers,
                    &e.body(false),
                );
                return;
            }
            Err(ReadError::Bad) => {
                let _ = http::write_plain_error(&mut conn.stream, 400);
                return;
            }
            Err(_) => return,
        }
        let cert_user = conn.stream.cert_user();
        let fault = {
            let mut st = shared.lock();
            api::take_fault(&mut st, &req)
        };
        if let Some(super::faults::FaultKind::Stall(d)) = &fault {
            shared.sleep(*d);
        }
        if let Some(super::faults::FaultKind::DropThenApplyAfter(d)) = &fault {
            let sock = match &conn.stream {
                Stream::Plain(s) => s,
                Stream::Tls(s) => &s.sock,
            };
            let _ = sock.shutdown(Shutdown::Both);
            shared.sleep(*d);
            let mut st = shared.lock();
            let user = api::authenticate(&st, &req, cert_user.as_deref());
            let _ = api::handle(&mut st, &req, user, None, &shared.cfg);
            drop(st);
            shared.notify();
            return;
        }
        // A write keeps its slot until it is applied; the answer is sent after the slot is free.
        let permit = shared.latency.enter(&req.method, &shared.shutdown);
        let reply = {
            let mut st = shared.lock();
            let user = api::authenticate(&st, &req, cert_user.as_deref());
            api::handle(&mut st, &req, user, fault, &shared.cfg)
        };
        if permit.is_some()
            && let Reply::Full { body, .. } = &reply
        {
            shared.latency.charge_write(body.len().max(req.body.len()));
        }
        drop(permit);
        shared.notify();
        let keep = match reply {
            Reply::Drop => {
                // No close_notify: the peer sees the connection cut.
                if let Stream::Tls(s) = &conn.stream {
                    let _ = s.sock.shutdown(Shutdown::Both);
                }
                false
            }
            Reply::Full {
                code,
                content_type,
                headers,
                body,
            } => {
                http::write_response(&mut conn.stream, code, &content_type, &headers, &body).is_ok()
            }
            Reply::Watch(plan) => matches!(
                watch::stream(shared, *plan, &mut conn.stream),
                Ok(End::Clean)
            ),
        };
        if !keep || req.wants_close() {
            return;
        }
    }
}
