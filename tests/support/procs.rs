//! Child-process helpers of the tests and the example programs (`demo`, `chaos`): where the
//! `paperlb` binary is, a free loopback port, signals by pid, a minimal HTTP GET over loopback, and
//! a test child's log kept aside ([`ChildLog`]) and shown only when its test fails.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Set (to anything but `0`) to see test children's logs live on the test's stderr instead.
pub const LIVE_ENV: &str = "PAPERLB_TEST_LOG_LIVE";
/// The most of a child's log kept in memory: its tail.
const LOG_TAIL_BYTES: usize = 256 * 1024;

/// A test child's stderr, drained by a thread into a bounded tail (so a chatty child never blocks
/// on a full pipe) and printed when it is dropped while its test panics: the deliberate failures of
/// passing tests stay out of the output, a failing test shows what its children said.
pub struct ChildLog {
    name: String,
    tail: Arc<Mutex<VecDeque<u8>>>,
    reader: Option<JoinHandle<()>>,
}

/// Spawns `cmd` with its stderr captured in a [`ChildLog`] (inherited when [`LIVE_ENV`] is set).
pub fn spawn_logged(name: &str, cmd: &mut Command) -> std::io::Result<(Child, ChildLog)> {
    let live = std::env::var(LIVE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut child = cmd
        .stderr(if live {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        .spawn()?;
    let tail: Arc<Mutex<VecDeque<u8>>> = Arc::default();
    let reader = child.stderr.take().map(|mut pipe| {
        let tail = tail.clone();
        // Ends when the child (and whatever inherited its stderr) has exited.
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                t.extend(&buf[..n]);
                if t.len() > LOG_TAIL_BYTES {
                    let cut = t.len() - LOG_TAIL_BYTES;
                    t.drain(..cut);
                }
            }
        })
    });
    let log = ChildLog {
        name: name.to_string(),
        tail,
        reader,
    };
    Ok((child, log))
}

impl ChildLog {
    /// What the child logged so far (its last `LOG_TAIL_BYTES` at most).
    pub fn text(&self) -> String {
        let t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&t.iter().copied().collect::<Vec<u8>>()).into_owned()
    }
}

impl Drop for ChildLog {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // The owner stops the child first; give the reader a moment to take the last lines.
        if let Some(r) = self.reader.take() {
            let end = Instant::now() + Duration::from_secs(2);
            while !r.is_finished() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let text = self.text();
        if !text.is_empty() {
            eprintln!(
                "---- {} log (kept because the test failed; last {} KiB at most) ----\n{}\n---- end of {} log ----",
                self.name,
                LOG_TAIL_BYTES / 1024,
                text.trim_end(),
                self.name
            );
        }
    }
}

/// The paperlb binary: `PAPERLB_BIN`, else `target/<profile>/paperlb` next to
/// `target/<profile>/examples/<example>`.
pub fn paperlb_bin(example: &str) -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PAPERLB_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("locating the {example} binary: {e}"))?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("paperlb"))
        .ok_or("cannot locate target/<profile>/paperlb")?;
    if !bin.is_file() {
        return Err(format!(
            "{} not found: build it first (cargo build --bin paperlb --example {example}) or set PAPERLB_BIN",
            bin.display()
        ));
    }
    Ok(bin)
}

pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// `kill -<sig> <pid>`, best effort.
pub fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// One `GET` with `Connection: close` to a loopback address; (status, body), the answer read up to
/// `limit` bytes within `read_timeout`. Refuses any other address and chunked answers.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    agent: &str,
    limit: u64,
    read_timeout: Duration,
) -> Result<(u16, String), String> {
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: loopback only"));
    }
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(read_timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.take(limit)
        .read_to_end(&mut resp)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP response")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!("GET {path}: chunked answers are not expected"));
    }
    Ok((code, body.to_string()))
}
