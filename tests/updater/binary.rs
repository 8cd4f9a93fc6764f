//! The built binary: help text, the start-up check of nginx.conf, and serving the API.

use std::path::Path;
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
    // A start-up error, not a request error; a layout of unknown origin gets the load_module hint.
    assert!(!stderr.contains("invalid request"), "{stderr}");
    assert!(stderr.contains("load_module"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn on_the_debian_layout_the_missing_include_hint_keeps_the_loaded_stream_module() {
    let dir = nginx::temp_dir("debian");
    let (streams, enabled) = (dir.join("streams.d"), dir.join("modules-enabled"));
    std::fs::create_dir_all(&streams).unwrap();
    std::fs::create_dir_all(&enabled).unwrap();
    // What libnginx-mod-stream puts there on Debian and Ubuntu.
    let module = enabled.join("50-mod-stream.conf");
    std::fs::write(&module, "load_module modules/ngx_stream_module.so;\n").unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        "include modules-enabled/*.conf;\nevents {}\nhttp { include sites-enabled/*; }\n",
    )
    .unwrap();
    let child = updater_with(&["--listen", "127.0.0.1:0"], &streams, &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("include {}/*.conf;", streams.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("already loaded by {}", module.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("load_module modules/ngx_stream_module.so;\n")
            && !stderr.contains("`load_module")
            && !stderr.contains("invalid request"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `paperlb nginx-updater ARGS --streams-dir S --nginx-conf C --nginx-bin <none>`: no nginx is
/// needed to start (the start-up `nginx -t` just fails and /healthz says so).
fn updater_with(args: &[&str], streams: &Path, conf: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("nginx-updater")
        .args(args)
        .arg("--streams-dir")
        .arg(streams)
        .arg("--nginx-conf")
        .arg(conf)
        .args(["--nginx-bin", "/nonexistent/nginx"]);
    c
}

/// A streams directory and an nginx.conf that passes the start-up check (absolute pid and log
/// paths, so nothing asks nginx for its defaults).
fn minimal_conf(what: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = nginx::temp_dir(what);
    let streams = dir.join("streams");
    std::fs::create_dir_all(&streams).unwrap();
    let conf = dir.join("nginx.conf");
    let text = format!(
        "pid {0}/nginx.pid;\nerror_log {0}/error.log;\nevents {{}}\nstream {{ include {1}/*.conf; }}\n",
        dir.display(),
        streams.display()
    );
    std::fs::write(&conf, text).unwrap();
    (dir, streams, conf)
}

#[test]
fn listen_needs_an_address_or_a_colon_and_a_bare_port_is_a_usage_error() {
    let (dir, streams, conf) = minimal_conf("listen-usage");
    for bad in ["3000", "localhost"] {
        let out = updater_with(&["--listen", bad], &streams, &conf)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("--listen") && err.contains(&format!("{bad:?}")) && err.contains(":PORT"),
            "{bad}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn listen_port_only_serves_on_every_address_and_warns_once_listening() {
    let (dir, streams, conf) = minimal_conf("listen-port");
    let port = free_port();
    let child = updater_with(&["--listen", &format!(":{port}")], &streams, &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert!(wait_until(PATIENCE, || TcpStream::connect(addr).is_ok()));
    // No nginx runs: /healthz answers, and says so.
    let (code, body) = raw(addr, "GET", "/healthz", b"", &[]);
    assert_eq!(code, 503, "{body}");
    let _ = running.0.kill();
    let _ = running.0.wait();
    let mut stderr = String::new();
    if let Some(mut e) = running.0.stderr.take() {
        e.read_to_string(&mut stderr).unwrap();
    }
    let listening = stderr.find(&format!("listening on http://0.0.0.0:{port}"));
    let open = stderr.find(&format!("API on 0.0.0.0:{port} is OPEN"));
    assert!(
        matches!((listening, open), (Some(l), Some(o)) if l < o),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_open_api_warning_when_the_listen_address_is_taken() {
    let (dir, streams, conf) = minimal_conf("listen-taken");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let child = updater_with(&["--listen", &addr], &streams, &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("--listen {addr}")), "{stderr}");
    assert!(!stderr.contains("OPEN"), "{stderr}");
    drop(taken);
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
