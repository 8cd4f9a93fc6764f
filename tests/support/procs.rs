//! Helpers the example programs (`demo`, `chaos`) share for their child processes: where the
//! `paperlb` binary is, a free loopback port, signals by pid, and a minimal HTTP GET over loopback.
//! No test binary depends on these.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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
