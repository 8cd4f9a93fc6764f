//! nginx: rendering a validated backend into a stream config file (`listen PORT;`, or
//! `listen ADDR:PORT;` with the updater's `--lb-address`), reading that file's request header back,
//! reading the few directives we need from nginx.conf, and running the nginx binary (`-t`,
//! `-s reload`) with a bounded run time and captured output.
//!
//! Owns: the config file format and the meaning of "the reload took". `render` trusts its input:
//! only `validate::Backend` reaches it. Must not: touch the streams directory (that is `apply`).
//!
//! Why reloads are confirmed: `nginx -t` does not bind listen sockets, so a port held by another
//! process passes the test and fails only in the master during reload (`[emerg] bind() ... failed`),
//! which then keeps serving the old configuration while `nginx -s reload` itself exits 0. We take a
//! reload as done when the master has started new worker processes, and as failed when the error
//! log gains an `[emerg]` line or the master dies; anything else within the deadline is a failure.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Error;
use super::api::LbRequest;
use super::validate::{Backend, Balance, Protocol};
use crate::process::wait_until;

/// First line of every file we write; the rest of the line is the request as JSON.
pub const HEADER: &str = "# paperlb-request: ";
/// Continuation lines of a long header: nginx's parser refuses any token, a comment included,
/// longer than its 4 KiB buffer (`too long parameter`), so the JSON is split into short lines.
pub const HEADER_MORE: &str = "# paperlb-request+ ";
/// Longest piece of the header JSON on one line.
const HEADER_CHUNK: usize = 3000;

/// The complete content of `<name>.conf` for a validated backend.
pub fn render(b: &Backend) -> String {
    // serde_json escapes control characters, so the header stays one comment line whatever it holds.
    let json = serde_json::to_string(&b.request).unwrap_or_default();
    let (mut header, mut rest) = (HEADER.to_string(), json.as_str());
    while rest.len() > HEADER_CHUNK {
        // The largest char boundary within the chunk (0 always is one).
        let cut = (0..=HEADER_CHUNK).rev().find(|&c| rest.is_char_boundary(c));
        let cut = cut.unwrap_or(0);
        header = header + &rest[..cut] + "\n" + HEADER_MORE;
        rest = &rest[cut..];
    }
    let balance = match b.balance {
        Balance::RoundRobin => "",
        Balance::LeastConn => "    least_conn;\n",
        Balance::Hash => "    hash $remote_addr consistent;\n",
        Balance::RandomTwo => "    random two least_conn;\n",
    };
    // `down`: the prober found it unhealthy (never every upstream: see `health`, fail open).
    let down = |i| if b.down.contains(&i) { " down" } else { "" };
    let servers: String = (b.upstreams.iter().enumerate())
        .map(|(i, (h, p))| format!("    server {h}:{p}{};\n", down(i)))
        .collect();
    // Without `--lb-address`, `listen PORT;` as the Go updater writes it (every IPv4 address).
    let udp = if b.protocol == Protocol::Udp {
        " udp"
    } else {
        ""
    };
    let port = b.request.lb_port;
    let listen: String = match b.addresses.as_slice() {
        [] => format!("    listen {port}{udp};\n"),
        many => (many.iter())
            .map(|a| format!("    listen {}{udp};\n", SocketAddr::new(*a, port)))
            .collect(),
    };
    let mut access: String = (b.source_ranges.iter())
        .map(|c| format!("    allow {c};\n"))
        .collect();
    if !b.source_ranges.is_empty() {
        access.push_str("    deny all;\n");
    }
    let pp = if b.request.traffic.proxy_protocol {
        "    proxy_protocol on;\n"
    } else {
        ""
    };
    let (name, timeout, connect) = (&b.name, b.proxy_timeout, b.proxy_connect_timeout);
    format!(
        "{header}{rest}\n# Written by paperlb nginx-updater; changes made here are overwritten.\n\
         upstream paperlb_{name} {{\n{balance}{servers}}}\n\nserver {{\n{listen}{access}    \
         proxy_pass paperlb_{name};\n{pp}    proxy_timeout {timeout}s;\n    \
         proxy_connect_timeout {connect}s;\n}}\n"
    )
}

/// The indices of the upstreams a file marks `down` (the prober's verdicts it was rendered with).
pub fn down_marks(content: &str) -> BTreeSet<usize> {
    let servers = content.lines().filter(|l| l.starts_with("    server "));
    (servers.enumerate())
        .filter_map(|(i, l)| l.ends_with(" down;").then_some(i))
        .collect()
}

/// Reads the request header back from a file's content; the error is what `GET` lists for a file
/// without one (not written by paperlb) or with one that does not decode.
pub fn parse_header(content: &str) -> Result<LbRequest, String> {
    let mut lines = content.lines();
    let first = lines.next().unwrap_or("");
    let no_header = || "no paperlb-request header line (not written by paperlb)".to_string();
    let mut json = first
        .strip_prefix(HEADER)
        .ok_or_else(no_header)?
        .to_string();
    for more in lines.map_while(|l| l.strip_prefix(HEADER_MORE)) {
        json.push_str(more);
    }
    serde_json::from_str(&json).map_err(|e| format!("unreadable paperlb-request header: {e}"))
}

/// One directive of nginx.conf with the names of the blocks around it (`["stream"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub blocks: Vec<String>,
    pub name: String,
    pub args: Vec<String>,
}

/// A small reader of nginx.conf syntax: enough for `pid`, `error_log` and `include` inside
/// `stream {}`. Quotes are stripped, not interpreted; that is all our checks need.
pub fn directives(conf: &str) -> Vec<Directive> {
    // Tokens: `{`, `}` and `;` on their own, words split at white space, quote characters dropped.
    let spaced: String = (conf.lines())
        .map(|l| l.split('#').next().unwrap_or("").replace(['"', '\''], ""))
        .map(|l| {
            l.replace('{', " { ")
                .replace('}', " } ")
                .replace(';', " ; ")
                + "\n"
        })
        .collect();
    let mut out = Vec::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut stmt: Vec<String> = Vec::new();
    for t in spaced.split_whitespace() {
        match t {
            ";" => {
                if !stmt.is_empty() {
                    let name = stmt.remove(0);
                    out.push(Directive {
                        blocks: blocks.clone(),
                        name,
                        args: std::mem::take(&mut stmt),
                    });
                }
            }
            "{" => {
                blocks.push(stmt.first().cloned().unwrap_or_default());
                stmt.clear();
            }
            "}" => {
                blocks.pop();
                stmt.clear();
            }
            _ => stmt.push(t.to_string()),
        }
    }
    out
}

/// Checks that nginx.conf includes `<dir>/*.conf` inside its `stream {}` block; the error says how
/// to fix it.
pub fn check_include(conf_path: &Path, conf: &str, dir: &Path) -> Result<(), Error> {
    let base = conf_path.parent().unwrap_or(Path::new("/"));
    let found = directives(conf).iter().any(|d| {
        d.name == "include"
            && d.blocks.iter().any(|b| b == "stream")
            && d.args.first().is_some_and(|a| includes_dir(base, a, dir))
    });
    if found {
        return Ok(());
    }
    Err(Error::MissingInclude {
        conf: conf_path.to_path_buf(),
        dir: dir.to_path_buf(),
        module: stream_module(base, conf),
    })
}

/// Whether `include ARG` (relative to `base`) is `dir/*.conf`, however either path is spelled.
fn includes_dir(base: &Path, arg: &str, dir: &Path) -> bool {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let p = base.join(arg);
    p.file_name().is_some_and(|f| f == "*.conf")
        && p.parent()
            .is_some_and(|parent| canonical(parent) == canonical(dir))
}

/// How to get the stream module loaded, as far as nginx.conf shows. Debian and Ubuntu load
/// dynamic modules with a top-level `include .../modules-enabled/*.conf;`, one small file per
/// module (`50-mod-stream.conf`): when one there loads `ngx_stream_module`, adding `load_module`
/// again would break nginx (`module already loaded`); when none does, its package puts it there.
/// Any other layout: stream is built in, or needs a `load_module` line.
fn stream_module(base: &Path, conf: &str) -> String {
    let Some(enabled) = directives(conf).into_iter().find_map(|d| {
        let p = base.join(d.args.first()?);
        let dir = p.parent()?;
        let top = d.blocks.is_empty() && d.name == "include";
        (top && dir.file_name()? == "modules-enabled").then(|| dir.to_path_buf())
    }) else {
        return "If your nginx builds stream as a dynamic module, also add \
                `load_module modules/ngx_stream_module.so;` at the top."
            .into();
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&enabled)
        .map(|rd| rd.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default();
    files.sort();
    let loads = |p: &PathBuf| {
        std::fs::read_to_string(p).is_ok_and(|t| {
            directives(&t).iter().any(|d| {
                d.name == "load_module" && d.args.iter().any(|a| a.contains("ngx_stream_module"))
            })
        })
    };
    match files.into_iter().find(loads) {
        Some(by) => format!(
            "The stream module is already loaded by {}: do not add a load_module line.",
            by.display()
        ),
        None => format!(
            "No file in {} loads the stream module: unless your nginx has it built in (`nginx -V` \
             shows --with-stream, not --with-stream=dynamic), install it (Debian/Ubuntu: `apt-get \
             install libnginx-mod-stream`), which enables it there; do not add a load_module line \
             yourself.",
            enabled.display()
        ),
    }
}

/// How to run nginx against one nginx.conf.
#[derive(Debug, Clone)]
pub struct Nginx {
    pub bin: PathBuf,
    pub conf: PathBuf,
    /// The master's pid file (from nginx.conf's `pid`, else nginx's compiled-in default).
    pub pid_file: PathBuf,
    /// The error log file, when it is a file (we read it to see a reload fail).
    pub error_log: Option<PathBuf>,
}

/// Longest run of `nginx -t` or `nginx -s reload` before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the master to show that a reload took.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Bytes of nginx output kept for messages.
const OUTPUT_CAP: u64 = 64 * 1024;

impl Nginx {
    /// Reads `pid` and `error_log` from nginx.conf, falling back to the paths `nginx -V` reports.
    pub fn new(bin: PathBuf, conf: PathBuf, conf_text: &str) -> Nginx {
        let mut n = Nginx {
            bin,
            conf,
            pid_file: PathBuf::from("/run/nginx.pid"),
            error_log: None,
        };
        // Top-level `pid` (the last one counts) and `error_log` (the first one).
        let top = directives(conf_text);
        let arg = |name: &'static str| {
            (top.iter()
                .filter(move |d| d.blocks.is_empty() && d.name == name))
            .filter_map(|d| d.args.first().cloned())
        };
        let mut pid = arg("pid").next_back();
        let mut error_log = arg("error_log").next();
        let relative = |p: &Option<String>| p.as_ref().is_none_or(|p| !p.starts_with('/'));
        let mut prefix = PathBuf::from("/");
        if relative(&pid) || relative(&error_log) {
            // Relative paths are relative to nginx's compiled-in prefix, which `-V` reports.
            let v = n.run(&["-V"]).unwrap_or_default();
            let flag = |name: &str| {
                v.split_whitespace()
                    .find_map(|w| w.strip_prefix(name).map(str::to_string))
            };
            pid = pid.or_else(|| flag("--pid-path="));
            error_log = error_log.or_else(|| flag("--error-log-path="));
            if let Some(p) = flag("--prefix=") {
                prefix = PathBuf::from(p);
            }
        }
        if let Some(p) = pid {
            n.pid_file = prefix.join(p);
        }
        n.error_log = error_log
            .filter(|e| e != "stderr" && !e.starts_with("syslog:") && !e.starts_with("memory:"))
            .map(|e| prefix.join(e));
        n
    }

    /// `nginx -t -c CONF`: Ok, or nginx's message.
    pub fn test(&self) -> Result<(), Error> {
        let conf = self.conf.display().to_string();
        self.run(&["-t", "-q", "-c", &conf]).map(drop)
    }

    /// `nginx -s reload -c CONF`, then waits until the master shows the reload took (see the module
    /// doc) or failed.
    pub fn reload(&self) -> Result<(), Error> {
        let master = self.master_pid()?;
        let before = children(master);
        let log_len = self
            .error_log
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        let conf = self.conf.display().to_string();
        self.run(&["-s", "reload", "-c", &conf])?;
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some(msg) = self.new_emerg(log_len) {
                return Err(Error::NginxRefused(msg));
            }
            if !alive(master) {
                let msg = format!("nginx master {master} exited during reload");
                return Err(Error::NginxRefused(msg));
            }
            if children(master).difference(&before).next().is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::NginxRefused(format!(
                    "reload not confirmed within {:?}: the master started no new workers",
                    RELOAD_TIMEOUT
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// The master's pid, if it is running.
    pub fn master_pid(&self) -> Result<u32, Error> {
        let file = self.pid_file.display();
        let text = std::fs::read_to_string(&self.pid_file)
            .map_err(|e| Error::NotRunning(format!("pid file {file}: {e}")))?;
        let pid: u32 = text
            .trim()
            .parse()
            .map_err(|_| Error::NotRunning(format!("pid file {file} holds {:?}", text.trim())))?;
        if alive(pid) {
            Ok(pid)
        } else {
            let msg = format!("master {pid} (from {file}) is gone");
            Err(Error::NotRunning(msg))
        }
    }

    fn new_emerg(&self, from: u64) -> Option<String> {
        let path = self.error_log.as_ref()?;
        let mut f = std::fs::File::open(path).ok()?;
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut buf = Vec::new();
        f.take(OUTPUT_CAP).read_to_end(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("[emerg]")).collect();
        // A bind failure is retried by the master (5 times, 500 ms apart) before it gives up with
        // "still could not bind()"; a reload sent before that would be judged by these lines.
        if lines.is_empty()
            || (lines.iter().any(|l| l.contains("bind()"))
                && !lines.iter().any(|l| l.contains("still could not bind")))
        {
            return None;
        }
        let mut unique: Vec<&str> = Vec::new();
        for l in lines {
            // Drop the "2024/01/01 00:00:00 " timestamp and "123#123: " pid prefix.
            let l = match (l.find("[emerg]"), l.find(": ")) {
                (Some(e), Some(c)) if c > e => &l[c + 2..],
                _ => l,
            };
            if !unique.contains(&l) {
                unique.push(l);
            }
        }
        Some(trim_message(&format!("[emerg] {}", unique.join("; "))))
    }

    /// Runs nginx with a bounded run time; returns its output, or when it fails its message as
    /// `Refused`. stdout and stderr share one pipe, read by a thread that keeps the first
    /// [`OUTPUT_CAP`] bytes and drains the rest, so nginx never blocks on a full pipe.
    fn run(&self, args: &[&str]) -> Result<String, Error> {
        let run_error = |detail: String| Error::io(&self.bin, std::io::Error::other(detail));
        let cannot = |e: std::io::Error| run_error(format!("cannot run it: {e}"));
        let (mut reader, writer) = std::io::pipe().map_err(cannot)?;
        let mut child = Command::new(&self.bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().map_err(cannot)?)
            .stderr(writer)
            .spawn()
            .map_err(cannot)?;
        let output = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut reader).take(OUTPUT_CAP).read_to_end(&mut buf);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            String::from_utf8_lossy(&buf).into_owned()
        });
        let status = wait_until(&mut child, Instant::now() + RUN_TIMEOUT)
            .ok()
            .flatten();
        let out = output.join().unwrap_or_default();
        match status {
            Some(s) if s.success() => Ok(out),
            Some(_) => Err(Error::NginxRefused(trim_message(&out))),
            None => Err(run_error(format!(
                "{} did not finish within {:?} and was killed",
                args.join(" "),
                RUN_TIMEOUT
            ))),
        }
    }
}

/// nginx's messages without the `nginx: ` prefixes, the success chatter and blank lines, at most
/// 2000 characters.
pub fn trim_message(out: &str) -> String {
    let lines: Vec<&str> = out
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .filter(|l| !l.contains("test is successful") && !l.contains("syntax is ok"))
        .filter(|l| !l.contains("signal process started"))
        .map(|l| l.strip_prefix("nginx: ").unwrap_or(l))
        .collect();
    match lines.is_empty() {
        true => "nginx failed without a message".into(),
        false => super::validate::clip(&lines.join("; "), 2000),
    }
}

/// A live (not zombie) process.
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state != 'Z')
}

/// (state, ppid) from /proc/<pid>/stat; the command name may hold spaces and parentheses.
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Default `--worker-shutdown-timeout`: an old worker generation left by a reload closes the
/// connections it still serves after this long, so generations cannot pile up under churn.
pub const DEFAULT_WORKER_SHUTDOWN_TIMEOUT_SECONDS: u64 = 30;

/// The directory under the streams directory whose `*.conf` nginx.conf includes at its top level
/// (outside every block): where the updater writes `worker_shutdown_timeout`.
pub const MAIN_DIR: &str = "main";

/// How `worker_shutdown_timeout` is in force, decided at start from nginx.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownTimeout {
    /// nginx.conf sets it itself (its value, as written): ours is not written.
    InConf(String),
    /// nginx.conf includes `<streams>/main/*.conf` at its top level: the updater writes it there.
    Written,
    /// Neither: old workers wait for their last connection to close.
    Absent,
}

/// Where `worker_shutdown_timeout` comes from, given nginx.conf's text.
pub fn shutdown_timeout_source(conf_path: &Path, conf: &str, dir: &Path) -> ShutdownTimeout {
    let base = conf_path.parent().unwrap_or(Path::new("/"));
    let top = directives(conf).into_iter().filter(|d| d.blocks.is_empty());
    let main = dir.join(MAIN_DIR);
    let mut included = false;
    for d in top {
        match (d.name.as_str(), d.args.first()) {
            ("worker_shutdown_timeout", Some(v)) => return ShutdownTimeout::InConf(v.clone()),
            ("include", Some(a)) => included |= includes_dir(base, a, &main),
            _ => {}
        }
    }
    if included {
        ShutdownTimeout::Written
    } else {
        ShutdownTimeout::Absent
    }
}

/// Old worker processes of `master` still serving connections after a reload: nginx retitles them
/// `nginx: worker process is shutting down`. Reads at most `MAX_WORKERS_READ` cmdlines.
pub fn shutting_down(master: u32) -> usize {
    const MAX_WORKERS_READ: usize = 4096;
    children(master)
        .into_iter()
        .take(MAX_WORKERS_READ)
        .filter(|pid| {
            let mut buf = Vec::new();
            std::fs::File::open(format!("/proc/{pid}/cmdline"))
                .and_then(|f| f.take(256).read_to_end(&mut buf))
                .is_ok_and(|_| String::from_utf8_lossy(&buf).contains("shutting down"))
        })
        .count()
}

/// Live children of `parent`: nginx's worker processes when `parent` is the master.
pub fn children(parent: u32) -> BTreeSet<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|(st, pp)| pp == parent && st != 'Z'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updater::api::Upstream;
    use crate::updater::validate::{Policy, backend};

    fn req(proto: &str, hosts: &[&str]) -> LbRequest {
        LbRequest {
            backend_name: "default_nginx".into(),
            lb_port: 8100,
            lb_protocol: proto.into(),
            upstream_servers: hosts
                .iter()
                .map(|h| Upstream {
                    host: h.to_string(),
                    port: 30080,
                    health: Default::default(),
                })
                .collect(),
            proxy_timeout_seconds: 0,
            proxy_connect_timeout_seconds: 5,
            traffic: Default::default(),
            owner: None,
        }
    }

    #[test]
    fn renders_tcp_udp_and_ipv6_and_reads_the_header_back() {
        let cases = [
            (
                req("tcp", &["127.0.0.2", "::1", "node-1.example"]),
                "upstream paperlb_default_nginx {\n    server 127.0.0.2:30080;\n    server [::1]:30080;\n    server node-1.example:30080;\n}\n\nserver {\n    listen 8100;\n    proxy_pass paperlb_default_nginx;\n    proxy_timeout 600s;\n    proxy_connect_timeout 5s;\n}\n",
            ),
            (
                req("UDP", &["127.0.0.3"]),
                "upstream paperlb_default_nginx {\n    server 127.0.0.3:30080;\n}\n\nserver {\n    listen 8100 udp;\n    proxy_pass paperlb_default_nginx;\n    proxy_timeout 600s;\n    proxy_connect_timeout 5s;\n}\n",
            ),
        ];
        for (r, body) in cases {
            let b = backend(&r, &Policy::default()).unwrap();
            let text = render(&b);
            assert!(text.starts_with(HEADER));
            assert!(text.ends_with(body), "{text}");
            let back = parse_header(&text).unwrap();
            assert_eq!(back, b.request);
            assert_eq!(back.lb_protocol, r.lb_protocol.to_uppercase());
        }
        assert!(parse_header("server { listen 1; }").is_err());
        assert!(parse_header("# paperlb-request: {nope").is_err());
    }

    #[test]
    fn renders_source_ranges_proxy_protocol_and_down_marks() {
        let mut r = req("tcp", &["127.0.0.2", "127.0.0.3"]);
        r.traffic.source_ranges = vec!["127.0.0.2/32".into(), "::1/128".into()];
        r.traffic.proxy_protocol = true;
        let mut b = backend(&r, &Policy::default()).unwrap();
        b.down.insert(1);
        let text = render(&b);
        assert!(text.ends_with("upstream paperlb_default_nginx {\n    server 127.0.0.2:30080;\n    server 127.0.0.3:30080 down;\n}\n\nserver {\n    listen 8100;\n    allow 127.0.0.2/32;\n    allow ::1/128;\n    deny all;\n    proxy_pass paperlb_default_nginx;\n    proxy_protocol on;\n    proxy_timeout 600s;\n    proxy_connect_timeout 5s;\n}\n"), "{text}");
        assert_eq!(down_marks(&text), BTreeSet::from([1]));
        b.down.clear();
        assert!(down_marks(&render(&b)).is_empty());
        // The header holds the request, not the prober's verdicts.
        assert_eq!(parse_header(&text).unwrap(), b.request);
        let json = serde_json::to_string(&b.request).unwrap();
        assert!(
            json.contains(r#""sourceRanges":["127.0.0.2/32","::1/128"],"proxyProtocol":true"#),
            "{json}"
        );
        // Unset additions stay out of the JSON (the Go controller's bodies are unchanged).
        let plain = serde_json::to_string(&req("tcp", &["127.0.0.2"])).unwrap();
        assert_eq!(
            plain,
            r#"{"backendName":"default_nginx","lbPort":8100,"lbProtocol":"tcp","upstreamServers":[{"host":"127.0.0.2","port":30080}],"proxyTimeoutSeconds":0,"proxyConnectTimeoutSeconds":5}"#
        );
    }

    #[test]
    fn balance_renders_its_directive_first_in_the_upstream_block() {
        let cases = [
            (None, ""),
            (Some("round-robin"), ""),
            (Some("least-conn"), "    least_conn;\n"),
            (Some("Hash"), "    hash $remote_addr consistent;\n"),
            (Some("random-two"), "    random two least_conn;\n"),
        ];
        for (balance, line) in cases {
            for proto in ["tcp", "udp"] {
                let mut r = req(proto, &["127.0.0.2", "127.0.0.3"]);
                r.traffic.balance = balance.map(String::from);
                let b = backend(&r, &Policy::default()).unwrap();
                let text = render(&b);
                let block = format!(
                    "upstream paperlb_default_nginx {{\n{line}    server 127.0.0.2:30080;\n    server 127.0.0.3:30080;\n}}\n"
                );
                assert!(text.contains(&block), "{balance:?} {proto}: {text}");
                // Stored in its canonical spelling, and read back from the header.
                let back = parse_header(&text).unwrap();
                assert_eq!(back, b.request);
                assert_eq!(
                    back.traffic.balance.as_deref(),
                    balance.map(|b| b.to_ascii_lowercase()).as_deref()
                );
            }
        }
        let mut r = req("tcp", &["127.0.0.2"]);
        r.traffic.balance = Some("least-conn".into());
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.ends_with(r#""proxyConnectTimeoutSeconds":5,"balance":"least-conn"}"#),
            "{json}"
        );
    }

    #[test]
    fn an_lb_address_goes_on_the_listen_line_and_the_file_reads_back_the_same() {
        let plain = Policy::default();
        let cases = [
            ("tcp", "127.0.0.2", "    listen 127.0.0.2:8100;\n"),
            ("udp", "127.0.0.2", "    listen 127.0.0.2:8100 udp;\n"),
            ("tcp", "::1", "    listen [::1]:8100;\n"),
            ("UDP", "0:0::1", "    listen [::1]:8100 udp;\n"),
            ("tcp", "2001:db8::10", "    listen [2001:db8::10]:8100;\n"),
        ];
        for (proto, addr, line) in cases {
            let with = Policy {
                lb_addresses: vec![addr.parse().unwrap()],
                ..Policy::default()
            };
            let mut r = req(proto, &["127.0.0.3", "::1"]);
            r.traffic.source_ranges = vec!["127.0.0.0/8".into()];
            let mut b = backend(&r, &with).unwrap();
            b.down.insert(1);
            let text = render(&b);
            assert_eq!(
                text.lines().filter(|l| l.contains("listen")).count(),
                1,
                "{text}"
            );
            assert!(text.contains(line), "{line:?} in {text}");
            // Only the listen line differs from the rendering without the address.
            let mut bare = backend(&r, &plain).unwrap();
            bare.down.insert(1);
            let bare_line = if proto.eq_ignore_ascii_case("udp") {
                "    listen 8100 udp;\n"
            } else {
                "    listen 8100;\n"
            };
            assert_eq!(text.replace(line, bare_line), render(&bare));
            // The header holds the request, not the address: read back and rendered again under
            // the same flag, the file is byte for byte what is on disk (GET lists it unmodified).
            let back = parse_header(&text).unwrap();
            assert_eq!(back, b.request);
            let mut again = backend(&back, &with).unwrap();
            again.down = down_marks(&text);
            assert_eq!(render(&again), text);
            // Under the other flag it is rendered differently (listed as modified, rewritten).
            let mut other = backend(&back, &plain).unwrap();
            other.down = down_marks(&text);
            assert_ne!(render(&other), text);
        }
    }

    #[test]
    fn dual_stack_lb_addresses_listen_once_each_before_ipv6_upstreams() {
        let with = Policy {
            lb_addresses: vec!["127.0.0.2".parse().unwrap(), "::".parse().unwrap()],
            ..Policy::default()
        };
        for (proto, suffix) in [("tcp", ""), ("udp", " udp")] {
            let b = backend(&req(proto, &["[fd00::2]", "127.0.0.3", "FD00::0:3"]), &with).unwrap();
            let text = render(&b);
            let want = format!(
                "upstream paperlb_default_nginx {{\n    server [fd00::2]:30080;\n    server 127.0.0.3:30080;\n    server [fd00::3]:30080;\n}}\n\nserver {{\n    listen 127.0.0.2:8100{suffix};\n    listen [::]:8100{suffix};\n"
            );
            assert!(text.contains(&want), "{text}");
        }
    }

    #[test]
    fn a_file_written_without_an_address_still_reads_back() {
        let r = req("tcp", &["127.0.0.2"]);
        let text = render(&backend(&r, &Policy::default()).unwrap());
        assert!(text.contains("    listen 8100;\n"), "{text}");
        let back = parse_header(&text).unwrap();
        assert_eq!(back, backend(&r, &Policy::default()).unwrap().request);
        assert_eq!(render(&backend(&back, &Policy::default()).unwrap()), text);
        let with = Policy {
            lb_addresses: vec!["127.0.0.2".parse().unwrap()],
            ..Policy::default()
        };
        // An updater started with the address reads the old file's request just the same.
        let b = backend(&back, &with).unwrap();
        assert_eq!(b.request, back);
        assert!(render(&b).contains("    listen 127.0.0.2:8100;\n"));
    }

    #[test]
    fn long_headers_are_split_into_lines_nginx_accepts() {
        let hosts: Vec<String> = (0..1000).map(|i| format!("node-{i}.example.com")).collect();
        let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
        let b = backend(&req("tcp", &refs), &Policy::default()).unwrap();
        let text = render(&b);
        assert!(
            text.lines().all(|l| l.len() < 4000),
            "a line nginx would refuse"
        );
        assert!(text.lines().nth(1).unwrap().starts_with(HEADER_MORE));
        assert_eq!(parse_header(&text).unwrap(), b.request);
        assert_eq!(parse_header(&text).unwrap().upstream_servers.len(), 1000);
    }

    #[test]
    fn pid_is_the_last_top_level_one_and_error_log_the_first() {
        let conf = "pid /run/a.pid;\nerror_log /var/log/first.log;\nerror_log /var/log/second.log;\n\
                    stream { pid /run/inner.pid; error_log /var/log/inner.log; }\npid /run/b.pid;\n";
        // Both paths absolute: nginx -V is not run, so the binary need not exist.
        let n = Nginx::new(
            "/nonexistent/nginx".into(),
            "/etc/nginx/nginx.conf".into(),
            conf,
        );
        assert_eq!(n.pid_file, PathBuf::from("/run/b.pid"));
        assert_eq!(n.error_log, Some(PathBuf::from("/var/log/first.log")));
        let to_stderr = Nginx::new(
            "/nonexistent/nginx".into(),
            "/x.conf".into(),
            "pid /p; error_log stderr;",
        );
        assert_eq!(to_stderr.error_log, None);
    }

    #[test]
    fn reads_directives_and_checks_the_stream_include() {
        let conf = "pid /run/x.pid; # comment { }\nerror_log /var/log/e.log warn;\nevents {}\n\
                    http { include /etc/nginx/streams.d/*.conf; }\n\
                    stream {\n  include \"/etc/nginx/streams.d/*.conf\";\n}\n";
        let d = directives(conf);
        assert_eq!(d[0].name, "pid");
        assert_eq!(d[0].args, ["/run/x.pid"]);
        assert_eq!(d.last().unwrap().blocks, ["stream"]);
        let p = Path::new("/etc/nginx/nginx.conf");
        assert!(check_include(p, conf, Path::new("/etc/nginx/streams.d")).is_ok());
        assert!(check_include(p, conf, Path::new("/etc/nginx/other")).is_err());
        let only_http = "http { include /etc/nginx/streams.d/*.conf; }";
        let e = check_include(p, only_http, Path::new("/etc/nginx/streams.d")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("stream {") && text.contains("load_module"),
            "{e}"
        );
        assert!(!text.contains("invalid request"), "{e}");
        let relative = "stream { include streams.d/*.conf; }";
        assert!(check_include(p, relative, Path::new("/etc/nginx/streams.d")).is_ok());
    }

    #[test]
    fn a_missing_include_on_the_debian_layout_does_not_ask_for_load_module() {
        let dir = std::env::temp_dir().join(format!("paperlb-nginx-deb-{}", std::process::id()));
        let enabled = dir.join("modules-enabled");
        std::fs::create_dir_all(&enabled).unwrap();
        let conf_path = dir.join("nginx.conf");
        let streams = dir.join("streams.d");
        // Stock Debian: the modules come from modules-enabled, relative or absolute.
        for include in [
            "include modules-enabled/*.conf;".to_string(),
            format!("include {}/*.conf;", enabled.display()),
        ] {
            let conf = format!("{include}\nevents {{}}\nhttp {{ include conf.d/*.conf; }}\n");
            let _ = std::fs::remove_file(enabled.join("50-mod-stream.conf"));
            std::fs::write(
                enabled.join("10-mod-mail.conf"),
                "load_module modules/ngx_mail_module.so;\n",
            )
            .unwrap();
            let e = check_include(&conf_path, &conf, &streams).unwrap_err();
            let text = e.to_string();
            let in_enabled = format!("No file in {} loads the stream module", enabled.display());
            assert!(text.contains(&in_enabled), "{text}");
            assert!(
                text.contains("libnginx-mod-stream") && !text.contains("load_module modules/"),
                "{text}"
            );
            let stream_conf = enabled.join("50-mod-stream.conf");
            std::fs::write(&stream_conf, "load_module modules/ngx_stream_module.so;\n").unwrap();
            let e = check_include(&conf_path, &conf, &streams).unwrap_err();
            let text = e.to_string();
            let by = format!("already loaded by {}:", stream_conf.display());
            assert!(text.contains(&by), "{text}");
            assert!(
                !text.contains("load_module modules/") && !text.contains("invalid request"),
                "{text}"
            );
            assert!(
                text.contains(&format!(
                    "stream {{\n    include {}/*.conf;\n}}",
                    streams.display()
                )),
                "{text}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_shutdown_timeout_comes_from_nginx_conf_else_our_top_level_include() {
        let (conf, dir) = (
            Path::new("/etc/nginx/nginx.conf"),
            Path::new("/etc/nginx/streams.d"),
        );
        let stream = "stream { include /etc/nginx/streams.d/*.conf; }\n";
        let ours = "include /etc/nginx/streams.d/main/*.conf;\n";
        let cases = [
            (format!("{ours}{stream}"), ShutdownTimeout::Written),
            (
                format!("include streams.d/main/*.conf;\n{stream}"),
                ShutdownTimeout::Written,
            ),
            (
                format!("worker_shutdown_timeout 10s;\n{ours}{stream}"),
                ShutdownTimeout::InConf("10s".into()),
            ),
            (stream.to_string(), ShutdownTimeout::Absent),
            // Inside a block it would be refused by nginx (and is not ours).
            (
                "stream { include /etc/nginx/streams.d/main/*.conf; }\n".into(),
                ShutdownTimeout::Absent,
            ),
        ];
        for (text, want) in cases {
            assert_eq!(shutdown_timeout_source(conf, &text, dir), want, "{text}");
        }
    }

    #[test]
    fn trims_nginx_output() {
        let out = "nginx: [emerg] unknown directive \"x\" in /a.conf:1\nnginx: configuration file /n.conf test failed\n";
        assert_eq!(
            trim_message(out),
            "[emerg] unknown directive \"x\" in /a.conf:1; configuration file /n.conf test failed"
        );
        assert!(trim_message(&"x".repeat(5000)).len() < 2010);
    }
}
