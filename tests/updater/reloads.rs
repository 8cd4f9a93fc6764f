//! Reload hygiene (issue 24 item 4): with `--worker-shutdown-timeout`, the old worker generation
//! each reload leaves behind closes the long-lived connections it still serves after the timeout,
//! so generations do not pile up; the updater counts reloads and old workers in its metrics.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// An upstream that answers `held\n` and then keeps every connection open, until dropped (ten
/// minutes at most).
struct Holder {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Holder {
    fn start(ip: &str) -> Holder {
        let l = TcpListener::bind((ip, 0)).expect("bind holder");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(600);
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) && Instant::now() < end {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
                        let _ = c.write_all(b"held\n");
                        held.push(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Holder {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A connection through nginx to the holder, once it said `held` (so a worker of the current
/// generation serves it).
fn held_connection(port: u16) -> Option<TcpStream> {
    let mut c = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), PATIENCE).ok()?;
    c.set_read_timeout(Some(PATIENCE)).ok()?;
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).ok()?;
    (&buf == b"held\n").then_some(c)
}

#[test]
fn many_pushes_under_long_lived_connections_leave_at_most_one_old_generation() {
    let env = Env::start(Options {
        worker_shutdown_timeout: 2,
        ..Options::default()
    });
    let written =
        std::fs::read_to_string(env.nginx.streams.join("main/worker-shutdown-timeout.conf"))
            .expect("the updater wrote worker_shutdown_timeout");
    assert!(written.contains("worker_shutdown_timeout 2s;"), "{written}");
    let holder = Holder::start("127.0.0.2");
    let port = free_port();
    let body = |i: u32| {
        go_body("long_lived", port, "TCP", &[("127.0.0.2", holder.port)]).replace(
            "\"proxyTimeoutSeconds\":0",
            &format!("\"proxyTimeoutSeconds\":{}", 600 + i),
        )
    };
    let (code, resp) = env.post(&body(0));
    assert_eq!(code, 200, "{resp}");
    let reloads = env.metric("paperlb_updater_nginx_reloads_total");
    // Each push changes the file (its proxy_timeout), so each is a reload, and each leaves the
    // generation that holds the connection opened just before it.
    let pushes = 8;
    let mut conns = Vec::new();
    for i in 1..=pushes {
        let mut c = None;
        assert!(
            wait_until(PATIENCE, || {
                c = held_connection(port);
                c.is_some()
            }),
            "connection {i} through nginx"
        );
        conns.extend(c);
        let (code, resp) = env.post(&body(i));
        assert_eq!(code, 200, "{resp}");
    }
    assert!(env.metric("paperlb_updater_nginx_reloads_total") >= reloads + f64::from(pushes));
    // Every one of those connections is closed by its old worker once the timeout is over (the
    // holder never closes them: without the timeout each read would wait for PATIENCE, then fail).
    for (i, c) in conns.iter_mut().enumerate() {
        let mut rest = Vec::new();
        let r = c.read_to_end(&mut rest);
        assert!(r.is_ok(), "connection {i} still open: {r:?}");
    }
    assert!(
        wait_until(PATIENCE, || env.metric("paperlb_updater_nginx_old_workers")
            <= 1.0),
        "old workers: {}",
        env.metric("paperlb_updater_nginx_old_workers")
    );
}

#[test]
fn old_workers_are_counted_and_zero_is_off() {
    // Off: nothing is written, nginx keeps its own default.
    let env = Env::start(Options::default());
    assert!(
        !env.nginx
            .streams
            .join("main/worker-shutdown-timeout.conf")
            .exists()
    );
    // Without a connection to hold it no old worker outlives a reload: the gauge is there, at 0.
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let port = free_port();
    let (code, resp) = env.post(&go_body("short", port, "TCP", &[("127.0.0.2", b2.port)]));
    assert_eq!(code, 200, "{resp}");
    let (_, text) = env.call("GET", "/metrics", "", &[]);
    assert!(
        text.contains("# TYPE paperlb_updater_nginx_old_workers gauge"),
        "{text}"
    );
    assert!(wait_until(PATIENCE, || env
        .metric("paperlb_updater_nginx_old_workers")
        == 0.0));
}

#[test]
fn a_shutdown_timeout_file_from_an_earlier_start_goes_when_off_or_set_in_nginx_conf() {
    let file = |env: &Env| env.nginx.streams.join("main/worker-shutdown-timeout.conf");
    let b2 = Backend::tcp("127.0.0.2", "b2");
    let mut env = Env::start(Options {
        worker_shutdown_timeout: 2,
        ..Options::default()
    });
    assert!(file(&env).exists(), "written at start");
    // Off: the old value must not stay in force.
    env.worker_shutdown_timeout = 0;
    env.restart_updater();
    assert!(!file(&env).exists(), "removed when off");
    // nginx.conf sets it itself: ours would duplicate it and every `nginx -t` would fail.
    env.worker_shutdown_timeout = 2;
    env.restart_updater();
    assert!(file(&env).exists(), "written again");
    let conf = std::fs::read_to_string(&env.nginx.conf).expect("nginx.conf");
    std::fs::write(
        &env.nginx.conf,
        format!("worker_shutdown_timeout 10s;\n{conf}"),
    )
    .expect("write nginx.conf");
    env.restart_updater();
    assert!(!file(&env).exists(), "removed when nginx.conf sets it");
    let port = free_port();
    let (code, resp) = env.post(&go_body("in_conf", port, "TCP", &[("127.0.0.2", b2.port)]));
    assert_eq!(code, 200, "nginx -t passes: {resp}");
}
