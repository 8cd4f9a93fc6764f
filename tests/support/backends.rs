//! Upstream servers for traffic tests: small TCP/UDP servers on loopback addresses (127.0.0.2, …)
//! that answer with their own identity, and the client side that reads it back through nginx (on
//! 127.0.0.1, or on the one address of an LB host started with `--lb-address`).
//! Every server thread ends when dropped, or after ten minutes at most.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A backend that answers every TCP connection (or UDP datagram) with its identity, until dropped.
pub struct Backend {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    /// TCP: writes `ident\n` and closes.
    pub fn tcp(ip: &str, ident: &str) -> Backend {
        Backend::tcp_on(ip, 0, ident)
    }

    /// TCP on a given port (a node's NodePort), as `tcp`.
    pub fn tcp_on(ip: &str, port: u16, ident: &str) -> Backend {
        Backend::try_tcp_on(ip, port, ident).unwrap()
    }

    /// As `tcp_on`, with the error when the address cannot be had.
    pub fn try_tcp_on(ip: &str, port: u16, ident: &str) -> std::io::Result<Backend> {
        Backend::serve_tcp(ip, port, ident, false)
    }

    /// TCP: writes `ident\n` and keeps the connection open until dropped (a long-lived client).
    #[allow(dead_code)] // used by tests/updater only
    pub fn tcp_holding(ip: &str, ident: &str) -> Backend {
        Backend::serve_tcp(ip, 0, ident, true).unwrap()
    }

    fn serve_tcp(ip: &str, port: u16, ident: &str, hold: bool) -> std::io::Result<Backend> {
        let l = TcpListener::bind((ip, port))?;
        l.set_nonblocking(true)?;
        let port = l.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, ident) = (stop.clone(), ident.to_string());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(600);
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) && Instant::now() < end {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
                        let _ = c.write_all(format!("{ident}\n").as_bytes());
                        if hold {
                            held.push(c);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Backend {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// UDP: answers each datagram with `ident:<datagram>`.
    pub fn udp(ip: &str, ident: &str) -> Backend {
        let sock = UdpSocket::bind((ip, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, ident) = (stop.clone(), ident.to_string());
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(600);
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::SeqCst) && Instant::now() < end {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let mut reply = format!("{ident}:").into_bytes();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        Backend {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects to the LB port on 127.0.0.1 and returns what the upstream said (None if refused).
pub fn tcp_ident(port: u16) -> Option<String> {
    tcp_ident_at(([127, 0, 0, 1], port).into())
}

/// As `tcp_ident`, on one address (an LB host started with `--lb-address`). Loopback only.
pub fn tcp_ident_at(addr: SocketAddr) -> Option<String> {
    assert!(
        addr.ip().is_loopback(),
        "tests send traffic to loopback only: {addr}"
    );
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    let s = s.trim().to_string();
    if s.is_empty() { None } else { Some(s) }
}

/// kube-proxy's node health check as a node at `ip` (loopback) serves it: `GET /healthz` on port
/// 10256, the port the controller's default health check probes, answering 200 with kube-proxy's
/// JSON; 404 for other paths. Used by the demo's nodes and the explain tests. Stops on drop.
#[allow(dead_code)] // tests/updater includes this file without it
pub fn kube_proxy_healthz(ip: &str) -> std::io::Result<paperlb::http::Server> {
    use paperlb::http::{Limits, Request, Response, Server};
    assert!(
        ip.parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback()),
        "tests serve loopback only: {ip}"
    );
    Server::bind(
        (ip, 10256),
        Limits::default(),
        None,
        |r: &Request| match r.path.as_str() {
            "/healthz" => {
                let body = serde_json::json!({"lastUpdated": "", "currentTime": ""});
                Response::json(200, &body)
            }
            _ => Response::error(404, "not found"),
        },
    )
}
