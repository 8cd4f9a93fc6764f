//! Test harness: a private nginx with the stream module, in its own directory under the system temp
//! dir, with its own nginx.conf (`pid`, `error_log`, `stream { include <dir>/streams/*.conf; }`),
//! run in the foreground (`daemon off`) as a child of the test so it can be stopped on drop, also
//! when the test panics. Also a `--nginx-bin` wrapper script that logs every call and can fail
//! `nginx -t` or slow it down on demand.
//! Must not: listen anywhere but what the tests' configs say, or outlive the test.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const NGINX: &str = "/usr/sbin/nginx";
pub const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running private nginx.
pub struct Nginx {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub streams: PathBuf,
    pub pid_file: PathBuf,
    pub error_log: PathBuf,
    child: Option<Child>,
}

/// A fresh directory (mode 0755: nginx runs as root here and drops its workers to `nobody`).
pub fn temp_dir(what: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("paperlb-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// A private nginx.conf: stream module, foreground master (so Ctrl-C and drop reach it), one worker,
/// `stream { include STREAMS/*.conf; }` for the updater to write into, and its top-level
/// `include STREAMS/main/*.conf;` (`--worker-shutdown-timeout`). Shared with the demo.
pub fn config_text(pid_file: &Path, error_log: &Path, streams: &Path) -> String {
    format!(
        "load_module {STREAM_MODULE};\n\
         daemon off;\n\
         worker_processes 1;\n\
         pid {pid};\n\
         error_log {log};\n\
         events {{ worker_connections 256; }}\n\
         include {streams}/main/*.conf;\n\
         stream {{\n    include {streams}/*.conf;\n}}\n",
        pid = pid_file.display(),
        log = error_log.display(),
        streams = streams.display(),
    )
}

impl Nginx {
    /// Writes the config and starts nginx; returns once the master has written its pid file.
    pub fn start() -> Nginx {
        let dir = temp_dir("nginx");
        let streams = dir.join("streams");
        std::fs::create_dir_all(&streams).unwrap();
        let conf = dir.join("nginx.conf");
        let pid_file = dir.join("nginx.pid");
        let error_log = dir.join("error.log");
        std::fs::write(&conf, config_text(&pid_file, &error_log, &streams)).unwrap();
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx {
            dir,
            conf,
            streams,
            pid_file,
            error_log,
            child: Some(child),
        };
        let ok = wait_until(Duration::from_secs(20), || {
            n.master_pid().is_some_and(|p| !children(p).is_empty())
        });
        if !ok {
            let log = std::fs::read_to_string(&n.error_log).unwrap_or_default();
            n.stop();
            panic!("nginx did not start: {log}");
        }
        n
    }

    pub fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The workers that accept connections: the master's children, less those shutting down after
    /// a reload (nginx sets that title as it closes their listening sockets). For a reload to count
    /// as done, wait until none of the workers seen before it is left here: for at least 100 ms
    /// after a reload the old worker and the new one both accept.
    pub fn accepting_workers(&self) -> BTreeSet<u32> {
        let Some(master) = self.master_pid() else {
            return BTreeSet::new();
        };
        let shutting = |pid| {
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&title).contains("shutting down")
        };
        children(master)
            .into_iter()
            .filter(|&pid| !shutting(pid))
            .collect()
    }

    /// Stops nginx (TERM to the master, then KILL to anything left, workers included).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let master = child.id();
        let workers = children(master);
        let _ = Command::new("kill")
            .args(["-TERM", &master.to_string()])
            .stderr(Stdio::null())
            .status();
        let exited = wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
        for w in workers.into_iter().chain(children(master)) {
            let _ = Command::new("kill")
                .args(["-KILL", &w.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// A `--nginx-bin` wrapper around the real nginx. It appends each call's arguments to
    /// `calls.log`; while `fail-test` exists in `dir`, `-t` fails with a message; while
    /// `slow-test` exists, `-t` first sleeps half a second (to make requests pile up).
    pub fn wrapper(&self) -> Wrapper {
        let dir = self.dir.join("wrapper");
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("nginx");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 echo \"$*\" >> {d}/calls.log\n\
                 case \" $* \" in *\" -t \"*)\n\
                   if [ -e {d}/slow-test ]; then sleep 0.5; fi\n\
                   if [ -e {d}/fail-test ]; then echo 'nginx: [emerg] forced failure by the test wrapper' >&2; exit 1; fi;;\n\
                 esac\n\
                 exec {NGINX} \"$@\"\n",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Wrapper { dir, script }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Wrapper {
    pub dir: PathBuf,
    pub script: PathBuf,
}

impl Wrapper {
    pub fn set(&self, flag: &str, on: bool) {
        let p = self.dir.join(flag);
        if on {
            std::fs::write(p, "").unwrap();
        } else {
            let _ = std::fs::remove_file(p);
        }
    }

    /// How many times nginx was asked to test its configuration (`-t`).
    #[allow(dead_code)] // tests/controller includes this file without it
    pub fn tests(&self) -> usize {
        std::fs::read_to_string(self.dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| format!(" {l} ").contains(" -t "))
            .count()
    }

    /// How many times nginx was asked to reload.
    pub fn reloads(&self) -> usize {
        std::fs::read_to_string(self.dir.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("-s reload"))
            .count()
    }
}

/// Polls `f` until it holds or `limit` passes (bounded in time and in count).
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    for _ in 0..100_000 {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Live children of a process (nginx's workers when it is the master).
pub fn children(parent: u32) -> BTreeSet<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(i) = s.rfind(')') else { return false };
            let mut it = s[i + 1..].split_whitespace();
            let state = it.next().unwrap_or("Z");
            let ppid: u32 = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            ppid == parent && state != "Z"
        })
        .collect()
}

/// Whether a path exists (for asserting on the streams directory).
pub fn exists(p: &Path) -> bool {
    p.exists()
}
