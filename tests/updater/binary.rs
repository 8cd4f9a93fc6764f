//! The built binary: help text, the start-up check of nginx.conf, and serving the API.

use std::process::{Child, Command, Stdio};

use super::*;

const BIN: &str = env!("CARGO_BIN_EXE_paperlb");

/// Kills the binary when the test ends, also on panic.
struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) for the process to exit; returns its code and stderr.
fn finish(mut c: Child) -> (Option<i32>, String) {
    let ok = wait_until(PATIENCE, || matches!(c.try_wait(), Ok(Some(_))));
    if !ok {
        let _ = c.kill();
    }
    let out = c.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn help_lists_every_flag_and_exits_0() {
    let out = Command::new(BIN)
        .args(["nginx-updater", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--streams-dir",
        "--nginx-conf",
        "--nginx-bin",
        "--token-file",
        "--allowed-ports",
        "--lb-address",
    ] {
        assert!(text.contains(flag), "{flag} in {text}");
    }
    let out = Command::new(BIN)
        .args(["nginx-updater", "--listen", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A bad --lb-address stops the start with a usage error, before anything is read.
    let out = Command::new(BIN)
        .args([
            "nginx-updater",
            "--listen",
            "127.0.0.1:0",
            "--streams-dir",
            "/nonexistent",
        ])
        .args([
            "--nginx-conf",
            "/nonexistent.conf",
            "--lb-address",
            "127.0.0.2:80",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--lb-address") && err.contains("\"127.0.0.2:80\""),
        "{err}"
    );
}

#[test]
fn an_nginx_conf_without_the_stream_include_is_explained_at_start() {
    let dir = nginx::temp_dir("noinclude");
    let streams = dir.join("streams");
    std::fs::create_dir_all(&streams).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        "events {}\nhttp { include /etc/nginx/conf.d/*.conf; }\n",
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["nginx-updater", "--listen", "127.0.0.1:0"])
        .arg("--streams-dir")
        .arg(&streams)
        .arg("--nginx-conf")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("stream {")
            && stderr.contains(&format!("include {}/*.conf;", streams.display())),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_binary_serves_the_api() {
    let nginx = Nginx::start();
    let port = free_port();
    let child = Command::new(BIN)
        .args(["nginx-updater", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--streams-dir")
        .arg(&nginx.streams)
        .arg("--nginx-conf")
        .arg(&nginx.conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _running = Running(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(wait_until(PATIENCE, || TcpStream::connect(addr).is_ok()));
    assert_eq!(raw(addr, "GET", "/healthz", b"", &[]).0, 200);
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let lb = free_port();
    let (code, resp) = raw(
        addr,
        "POST",
        "/api/v1/lb",
        go_body("ns_bin", lb, "TCP", &[("127.0.0.2", b2.port)]).as_bytes(),
        &[],
    );
    assert_eq!(code, 200, "{resp}");
    assert!(wait_tcp(lb, |s| s == Some("b2")));
}
