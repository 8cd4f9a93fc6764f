//! The transport under the REST client: the ureq `Agent` and its connector chain (TCP → cancellable
//! reads → our own rustls layer, so `tls-server-name` and exec-provided client certificates work),
//! connection buffer sizes and pooling, and ureq failures mapped to a [`kube::Error`](super::Error).
//!
//! Owns: cancelling a blocked read from another thread (`cancel_reads_on`), the TLS handshake and
//! its errors phrased for the user. `updater::client` reuses the TLS layer for https updaters.
//! Must not: know about Kubernetes paths, verbs, credentials or bodies (`client` does).

use std::cell::RefCell;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::ServerName;
use ureq::Agent;
use ureq::config::{AutoHeaderValue, ConfigBuilder};
use ureq::typestate::AgentScope;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::time::Duration as UDuration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};

use super::Error;
use super::tls::{self, CertAndKey, TlsSettings};

/// How often a cancellable read wakes up to look at its cancel flag.
const CANCEL_TICK: Duration = Duration::from_millis(250);
/// Size of each of a connection's input and output buffers (ureq's default is 128 KiB). A TLS
/// connection has four (socket and TLS, each way), zero-filled on first use, and the controller keeps
/// five watches open plus a pool: at 128 KiB that was 512 KiB per connection, about 2.5 MiB of the
/// idle controller's RSS. A TLS record carries at most 16 KiB, so reads are no smaller than before.
/// A response head must fit in the input buffer: the apiserver's are about 1 KiB.
pub const CONNECTION_BUFFER: usize = 16 * 1024;

/// Under TLS, the socket side's two buffers: they only stage TLS records on their way to and from
/// rustls (which keeps its own), so they can be smaller than a record; the TLS side keeps
/// [`CONNECTION_BUFFER`] (a request and a response head must fit there). 24 KiB less per warm
/// connection: at 1k after a cold start the controller holds ~30 (pool, pairs of status patches,
/// watches): RSS 24,516 -> 23,352 KiB in `make bench` (bench/RESULTS.md, "Memory at 1k").
const SOCKET_BUFFER: usize = 4 * 1024;

/// TCP connect plus TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept per API server: as many as the controller has requests in flight (its
/// I/O pool, the worker, the lease), so a burst reuses warm TLS connections instead of making new
/// ones (ureq keeps 3 by default). Watches hold their own connections while they stream.
const MAX_IDLE_CONNECTIONS: usize = 32;

/// Map a ureq failure to what the user can act on. `what` is `METHOD path`.
pub(crate) fn transport_error(server: &str, what: &str, e: ureq::Error) -> Error {
    let server = server.to_string();
    // TLS failures and timeouts have their own kinds; everything else failed to connect.
    let detail = match e {
        ureq::Error::Timeout(t) => {
            let what = format!("{what} ({t})");
            return Error::Timeout { server, what };
        }
        ureq::Error::Other(inner) => match inner.downcast_ref::<Failure>() {
            Some(Failure::Tls(detail) | Failure::Refused(detail)) => {
                let detail = detail.clone();
                return Error::Tls { server, detail };
            }
            Some(Failure::Cancelled) => format!("{what}: cancelled (shutting down)"),
            None => format!("{what}: {inner}"),
        },
        ureq::Error::Rustls(r) => {
            let detail = r.to_string();
            return Error::Tls { server, detail };
        }
        ureq::Error::Io(io) => {
            if let Some(r) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                let detail = r.to_string();
                return Error::Tls { server, detail };
            }
            if matches!(io.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) {
                let what = what.to_string();
                return Error::Timeout { server, what };
            }
            format!("{what}: {io}")
        }
        other => format!("{what}: {other}"),
    };
    Error::Connect { server, detail }
}

/// The agent for `server`: TLS (verified against `tls::server_name`) for `https://`, none for
/// `http://`.
pub(crate) fn build_agent(
    server: &str,
    settings: &TlsSettings,
    exec_identity: Option<&CertAndKey>,
    request_timeout: Duration,
) -> Result<Agent, Error> {
    let tls = if server.starts_with("https://") {
        Some(TlsConnector {
            name: tls::server_name(server, settings)?,
            config: tls::client_config(server, settings, exec_identity)?,
        })
    } else {
        None
    };
    let config = Agent::config_builder()
        .user_agent(AutoHeaderValue::None)
        .accept(AutoHeaderValue::None)
        .accept_encoding(AutoHeaderValue::None)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(request_timeout));
    Ok(agent(config, tls, MAX_IDLE_CONNECTIONS))
}

/// `config` completed as every agent of ours is (this one's and `updater::client`'s): answers of
/// any status returned, no redirect followed (the apiserver and the updaters do not redirect; one
/// from something else on the path would take the credentials elsewhere), no proxy (kubeconfig's
/// proxy-url is not supported, and `*_PROXY` meant for the Internet does not apply), our buffer
/// sizes, `idle` warm connections, over TCP → cancellable reads → `tls` when given.
pub(crate) fn agent(
    config: ConfigBuilder<AgentScope>,
    tls: Option<TlsConnector>,
    idle: usize,
) -> Agent {
    // The socket's buffers (plain http: the only ones; https: see SOCKET_BUFFER).
    let socket_buffer = if tls.is_some() {
        SOCKET_BUFFER
    } else {
        CONNECTION_BUFFER
    };
    let config = config
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .input_buffer_size(socket_buffer)
        .output_buffer_size(socket_buffer)
        .max_idle_connections(idle)
        .max_idle_connections_per_host(idle)
        .max_response_header_size(CONNECTION_BUFFER)
        .build();
    let connector = ().chain(TcpConnector::default()).chain(TlsLayer(tls));
    Agent::with_parts(config, connector, DefaultResolver::default())
}

// ---- cancellable reads -------------------------------------------------------------------------

thread_local! {
    /// The cancel flag of the watch runner on this thread. ureq does all I/O on the calling thread, so
    /// a transport can find the flag of the request it serves here.
    static CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// While the guard lives, blocking reads of this client on this thread wake up every fraction of a
/// second and fail once `flag` is set: a watch thread stops promptly at shutdown without giving up
/// the idle timeout as its stall detector.
pub(crate) struct CancelGuard(Option<Arc<AtomicBool>>);

pub(crate) fn cancel_reads_on(flag: Arc<AtomicBool>) -> CancelGuard {
    CancelGuard(CANCEL.with(|c| c.borrow_mut().replace(flag)))
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        CANCEL.with(|c| *c.borrow_mut() = self.0.take());
    }
}

/// Splits each read wait into short slices and checks the thread's cancel flag between them. Sits
/// under TLS so a cancelled read never leaves a TLS record half-read (the connection is dropped).
#[derive(Debug)]
pub(crate) struct Cancellable<T> {
    inner: T,
}

impl<T: Transport> Transport for Cancellable<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let Some(flag) = CANCEL.with(|c| c.borrow().clone()) else {
            return self.inner.await_input(timeout);
        };
        let full = timeout.for_read();
        let deadline = (!full.after.is_not_happening()).then(|| Instant::now() + *full.after);
        // Bounded: each pass waits at least until the deadline approaches or the flag is set.
        loop {
            if flag.load(Ordering::Relaxed) {
                return Err(ureq::Error::Other(Box::new(Failure::Cancelled)));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(ureq::Error::Timeout(full.reason));
            }
            let slice = left.map_or(CANCEL_TICK, |l| l.min(CANCEL_TICK));
            let t = NextTimeout {
                after: UDuration::Exact(slice),
                reason: full.reason,
                per_read: None,
                per_write: timeout.per_write,
            };
            match self.inner.await_input(t) {
                Err(ureq::Error::Timeout(_)) => continue,
                other => return other,
            }
        }
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

// ---- TLS ---------------------------------------------------------------------------------------

/// How our own connector layers fail, carried through ureq as `ureq::Error::Other`.
#[derive(Debug)]
enum Failure {
    /// A handshake failure already phrased for the user (names the server name verified against).
    Tls(String),
    /// The same, where rustls refused the peer's certificate or the handshake: an answer, not an
    /// outage (the updater client tells the two apart).
    Refused(String),
    /// A cancellable read saw its flag set.
    Cancelled,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Tls(detail) | Failure::Refused(detail) => f.write_str(detail),
            Failure::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for Failure {}

/// The handshake's refusal (certificate or handshake refused by rustls), if `e` is one.
pub(crate) fn tls_refusal(e: &ureq::Error) -> Option<&str> {
    match e {
        ureq::Error::Other(inner) => match inner.downcast_ref::<Failure>() {
            Some(Failure::Refused(detail)) => Some(detail),
            _ => None,
        },
        _ => None,
    }
}

/// Shared with `updater::client`, whose https endpoints need the same verifier choices.
#[derive(Debug)]
pub(crate) struct TlsConnector {
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// `tls-server-name` or the URL's host; ureq itself can only verify against the URL's host.
    pub(crate) name: ServerName<'static>,
}

/// Makes the connection's reads [`Cancellable`], then wraps it in rustls for `https://` (plain
/// `http://` stays as is).
#[derive(Debug)]
struct TlsLayer(Option<TlsConnector>);

impl<In: Transport> Connector<In> for TlsLayer {
    type Out = Either<Cancellable<In>, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(inner) = chained else {
            return Ok(None);
        };
        let transport = Cancellable { inner };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let Some(tls) = &self.0 else {
            return Err(ureq::Error::Other(Box::new(Failure::Tls(
                "https URL but the client was configured for plain http".into(),
            ))));
        };
        let mut conn = ClientConnection::new(tls.config.clone(), tls.name.clone())?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        let name = tls.name.to_str();
        while conn.is_handshaking() {
            match conn.complete_io(&mut sock) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(ureq::Error::Other(Box::new(Failure::Tls(format!(
                        "connection closed during the TLS handshake with {name}"
                    )))));
                }
                Ok(_) => {}
                Err(e) => {
                    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                        return Err(ureq::Error::Other(Box::new(Failure::Refused(
                            tls::describe_handshake_error(r, &name),
                        ))));
                    }
                    return Err(e.into());
                }
            }
        }
        // The TLS side's own buffers (the config's sizes are the socket's, see SOCKET_BUFFER).
        let buffers = LazyBuffers::new(CONNECTION_BUFFER, CONNECTION_BUFFER);
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        // The timeout goes to the transport below unchanged: a TLS write may need to read too.
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let n = self.stream.read(input)?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
