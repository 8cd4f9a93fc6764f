//! Credentials for requests: static tokens, token files re-read as they rotate, exec plugins with a
//! cached credential.
//!
//! Owns: when to re-read or re-run, keeping the last good token when a re-read fails, and running
//! exec credential plugins with bounded time and output.
//! Must not: log or display a token or key (errors name files and commands, never their secrets),
//! or read the process environment (plugins inherit it, as kubectl's do).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant, SystemTime};

use base64::prelude::{BASE64_STANDARD, Engine as _};
use serde_json::{Value, json};

use super::Error;
use super::config::{AuthSource, ClusterConfig, ExecConfig, read_token_file};
use super::tls::CertAndKey;
use crate::process::{kill, wait_until};
use crate::time::parse_rfc3339;

/// client-go re-reads token files every minute; kubelet rotates at 80 % of a ~1 h lifetime.
const TOKEN_FILE_REREAD: Duration = Duration::from_secs(60);
/// A plugin that has not answered within this is killed.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// An ExecCredential is a few KiB; more is a broken plugin.
const EXEC_STDOUT_CAP: u64 = 1 << 20;
/// How much of a plugin's stderr we keep for the log and error messages.
const EXEC_STDERR_KEEP: u64 = 64 << 10;
/// Re-run a plugin this long before its credential expires, so a request never carries a token that
/// expires in flight.
const EXPIRY_SKEW: Duration = Duration::from_secs(10);

/// Thread-safe source of the `Authorization` header. Shared by every request of a client. It has no
/// `Debug`, so no log line or panic message can show the token it holds:
/// ```compile_fail
/// fn show(c: &paperlb::kube::auth::Credentials) -> String { format!("{c:?}") }
/// ```
pub struct Credentials {
    source: AuthSource,
    /// `KUBERNETES_EXEC_INFO` for an exec plugin ("" for the other sources).
    exec_info: String,
    has_client_cert: bool,
    reread_interval: Duration,
    exec_timeout: Duration,
    // Held while a token file is read or a plugin runs: concurrent callers wait for one refresh
    // instead of starting their own.
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Token file: the last good token.
    token: Option<String>,
    read_at: Option<Instant>,
    /// Set by `invalidate()`: the next call re-reads or re-runs.
    stale: bool,
    /// A failed re-read was already logged; reset by the next good read.
    warned: bool,
    exec: Option<ExecCredential>,
}

#[derive(Clone)]
struct ExecCredential {
    token: Option<String>,
    cert: Option<CertAndKey>,
    expires: Option<SystemTime>,
}

impl Credentials {
    pub fn new(config: &ClusterConfig) -> Credentials {
        Credentials {
            source: config.auth.clone(),
            exec_info: match &config.auth {
                AuthSource::Exec(cfg) => exec_info(cfg, config),
                _ => String::new(),
            },
            has_client_cert: config.tls.client_identity.is_some(),
            reread_interval: TOKEN_FILE_REREAD,
            exec_timeout: EXEC_TIMEOUT,
            state: Mutex::new(State::default()),
        }
    }

    /// How often a token file is re-read (default 60 s).
    #[cfg(test)]
    fn set_token_reread_interval(&mut self, interval: Duration) {
        self.reread_interval = interval;
    }

    /// How long an exec plugin may run before it is killed (default 60 s).
    #[cfg(test)]
    fn set_exec_timeout(&mut self, timeout: Duration) {
        self.exec_timeout = timeout;
    }

    /// The value for the `Authorization` header (`Bearer …`), if any.
    pub fn authorization(&self) -> Result<Option<String>, Error> {
        let bearer = |t: &str| format!("Bearer {t}");
        match &self.source {
            AuthSource::None => Ok(None),
            AuthSource::Token(t) => Ok(Some(bearer(t))),
            AuthSource::TokenFile(path) => {
                let mut st = self.lock();
                self.refresh_token_file(&mut st, path)?;
                Ok(st.token.as_deref().map(bearer))
            }
            AuthSource::Exec(cfg) => Ok(self.exec_credential(cfg)?.token.map(|t| bearer(&t))),
        }
    }

    /// A client certificate and key (PEM) returned by an exec plugin, if the plugin gives one instead of a
    /// token. The client rebuilds its TLS configuration when this changes.
    pub fn exec_client_cert(&self) -> Result<Option<CertAndKey>, Error> {
        match &self.source {
            AuthSource::Exec(cfg) => Ok(self.exec_credential(cfg)?.cert),
            _ => Ok(None),
        }
    }

    /// Called after a 401: forget the cached credential so the next call re-reads or re-runs.
    pub fn invalidate(&self) {
        self.lock().stale = true;
    }

    /// Short description for `paperlb check` and logs, never the secret: `token`, `token file /p`, ...
    pub fn method(&self) -> String {
        match &self.source {
            AuthSource::None if self.has_client_cert => "client certificate".into(),
            AuthSource::None => "none".into(),
            AuthSource::Token(_) => "token".into(),
            AuthSource::TokenFile(p) => format!("token file {}", p.display()),
            AuthSource::Exec(e) => {
                let version = e.api_version.rsplit('/').next().unwrap_or("");
                format!("exec plugin {} ({version})", e.command)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves the state consistent (every field is
        // written whole), so keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh_token_file(&self, st: &mut State, path: &Path) -> Result<(), Error> {
        let due = st.token.is_none()
            || st.stale
            || st
                .read_at
                .is_none_or(|t| t.elapsed() >= self.reread_interval);
        if !due {
            return Ok(());
        }
        st.read_at = Some(Instant::now());
        st.stale = false;
        match read_token_file("token file", path) {
            Ok(token) => {
                st.token = Some(token);
                st.warned = false;
                Ok(())
            }
            Err(e) if st.token.is_none() => Err(e),
            Err(e) => {
                if !st.warned {
                    log::warn!("{e}; keeping the previous token");
                    st.warned = true;
                }
                Ok(())
            }
        }
    }

    fn exec_credential(&self, cfg: &ExecConfig) -> Result<ExecCredential, Error> {
        let mut st = self.lock();
        // Reused until invalidated, or until EXPIRY_SKEW before it expires.
        let until = SystemTime::now() + EXPIRY_SKEW;
        let cached = st
            .exec
            .as_ref()
            .filter(|c| !st.stale && c.expires.is_none_or(|e| until < e));
        if let Some(c) = cached {
            return Ok(c.clone());
        }
        let cred = self.run_plugin(cfg)?;
        st.stale = false;
        st.exec = Some(cred.clone());
        Ok(cred)
    }

    fn run_plugin(&self, cfg: &ExecConfig) -> Result<ExecCredential, Error> {
        let fail = |detail: String| Error::Exec {
            command: cfg.command.clone(),
            detail,
        };
        let mut child = Command::new(&cfg.command)
            .args(&cfg.args)
            .envs(cfg.env.iter().map(|var| (&var.name, &var.value)))
            .env("KUBERNETES_EXEC_INFO", &self.exec_info)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(spawn_failure(cfg, &e)))?;
        let stdout = read_in_thread(child.stdout.take(), EXEC_STDOUT_CAP);
        let stderr = read_in_thread(child.stderr.take(), EXEC_STDERR_KEEP);
        let deadline = Instant::now() + self.exec_timeout;

        // stdout closes when the plugin exits (or closes it): wait for that first, bounded.
        let out = match stdout.recv_timeout(self.exec_timeout) {
            Ok(Ok(out)) if out.len() as u64 <= EXEC_STDOUT_CAP => Ok(out),
            Ok(Ok(_)) => Err(format!("wrote more than {EXEC_STDOUT_CAP} bytes to stdout")),
            Ok(Err(e)) => Err(format!("reading its stdout: {e}")),
            Err(_) => Err(format!(
                "did not finish within {} s; killed",
                self.exec_timeout.as_secs()
            )),
        };
        let out = out.map_err(|detail| {
            kill(&mut child);
            fail(detail)
        })?;
        let status = wait_until(&mut child, deadline)
            .map_err(|e| fail(format!("waiting for it: {e}")))?
            .ok_or_else(|| fail("did not exit in time after closing stdout; killed".into()))?;
        let err_text = stderr
            .recv_timeout(Duration::from_secs(1))
            .ok()
            .and_then(Result::ok)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        log_stderr(&cfg.command, &err_text, status.success());
        if !status.success() {
            let first = err_text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let detail = match first {
                "" => format!("failed ({status})"),
                line => format!("failed ({status}): {}", super::error::snippet(line, 300)),
            };
            return Err(fail(detail));
        }
        parse_exec_output(cfg, &out)
    }
}

/// `KUBERNETES_EXEC_INFO`: the ExecCredential request a plugin reads.
fn exec_info(cfg: &ExecConfig, config: &ClusterConfig) -> String {
    let mut spec = json!({"interactive": false});
    if cfg.provide_cluster_info {
        let tls = &config.tls;
        let mut cluster = json!({
            "server": config.server,
            "certificate-authority-data": tls.ca_pem.as_ref().map(|ca| BASE64_STANDARD.encode(ca)),
            "insecure-skip-tls-verify": tls.insecure.then_some(true),
            "tls-server-name": tls.server_name,
        });
        // Fields without a value are left out, not sent as null.
        if let Value::Object(fields) = &mut cluster {
            fields.retain(|_, v| !v.is_null());
        }
        spec["cluster"] = cluster;
    }
    json!({"apiVersion": cfg.api_version, "kind": "ExecCredential", "spec": spec}).to_string()
}

fn spawn_failure(cfg: &ExecConfig, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => match cfg.install_hint.as_deref().map(str::trim) {
            Some(hint) if !hint.is_empty() => format!("not found. {hint}"),
            _ => "not found (is it installed and on PATH?)".into(),
        },
        std::io::ErrorKind::PermissionDenied => "cannot be executed (permission denied)".into(),
        _ => format!("could not be started: {e}"),
    }
}

/// Read up to `cap + 1` bytes of a pipe on a thread, so a slow or silent plugin cannot block us past
/// our deadline. The thread drops the pipe when done; a plugin still writing then gets SIGPIPE.
fn read_in_thread<R: Read + Send + 'static>(
    pipe: Option<R>,
    cap: u64,
) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let result = match pipe {
            Some(p) => p.take(cap + 1).read_to_end(&mut buf).map(|_| buf),
            None => Ok(buf),
        };
        let _ = tx.send(result);
    });
    rx
}

fn log_stderr(command: &str, text: &str, success: bool) {
    let level = if success {
        log::Level::Info
    } else {
        log::Level::Warn
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(20) {
        let line = super::error::snippet(line, 500);
        log::log!(level, "exec plugin {command}: {line}");
    }
}

/// Check an ExecCredential from a plugin's stdout. Messages never quote the output: it holds secrets.
fn parse_exec_output(cfg: &ExecConfig, out: &[u8]) -> Result<ExecCredential, Error> {
    let fail = |detail: &str| Error::Exec {
        command: cfg.command.clone(),
        detail: detail.to_string(),
    };
    let v: Value = std::str::from_utf8(out)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(t).map_err(|e| e.to_string()))
        .map_err(|e| format!("stdout is not an ExecCredential JSON object ({e})"))
        .map_err(|e| fail(&e))?;
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api_version != cfg.api_version {
        return Err(fail(&format!(
            "returned apiVersion {api_version:?}, expected {:?}",
            cfg.api_version
        )));
    }
    if v.get("kind").and_then(Value::as_str) != Some("ExecCredential") {
        return Err(fail("returned an object whose kind is not ExecCredential"));
    }
    let Some(status) = v.get("status").filter(|s| s.is_object()) else {
        return Err(fail("returned an ExecCredential without status"));
    };
    let text = |key: &str| {
        status
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let token = text("token").map(str::to_string);
    let cert = match (text("clientCertificateData"), text("clientKeyData")) {
        (Some(c), Some(k)) => {
            super::tls::certified_key("status.clientCertificateData", c.as_bytes(), k.as_bytes())
                .map_err(|e| fail(&e.to_string()))?;
            Some((c.as_bytes().to_vec(), k.as_bytes().to_vec()))
        }
        (None, None) => None,
        _ => {
            return Err(fail(
                "returned only one of status.clientCertificateData and clientKeyData",
            ));
        }
    };
    if token.is_none() && cert.is_none() {
        return Err(fail(
            "returned neither status.token nor status.clientCertificateData and clientKeyData",
        ));
    }
    let expires = match status.get("expirationTimestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            parse_rfc3339(s)
                .ok_or_else(|| fail(&format!("invalid status.expirationTimestamp {s:?}")))?,
        ),
        Some(_) => return Err(fail("status.expirationTimestamp is not a string")),
    };
    Ok(ExecCredential {
        token,
        cert,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::config::EnvVar;
    use crate::kube::tls::TlsSettings;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    const V1: &str = "client.authentication.k8s.io/v1";

    /// A unique directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "paperlb-auth-test-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p
        }

        fn calls(&self) -> usize {
            std::fs::read_to_string(self.0.join("calls"))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn creds(auth: AuthSource) -> Credentials {
        Credentials::new(&ClusterConfig {
            server: "https://127.0.0.1:6443".into(),
            tls: TlsSettings {
                ca_pem: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
                server_name: Some("kubernetes.default.svc".into()),
                ..TlsSettings::default()
            },
            auth,
            ..ClusterConfig::default()
        })
    }

    #[test]
    fn credentials_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Credentials>();
    }

    #[test]
    fn token_file_rotates_on_invalidate_and_keeps_the_old_token_on_failure() {
        let dir = TempDir::new();
        let path = dir.write("token", "one\n");
        let mut c = creds(AuthSource::TokenFile(path.clone()));
        // An hour: nothing below depends on the clock.
        c.set_token_reread_interval(Duration::from_secs(3600));
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer one");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer one");
        c.invalidate();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer two");

        std::fs::remove_file(&path).unwrap();
        c.invalidate();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer two");
        std::fs::write(&path, "  \n").unwrap();
        c.invalidate();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer two");
        std::fs::write(&path, "three").unwrap();
        c.invalidate();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer three");

        c.set_token_reread_interval(Duration::ZERO);
        std::fs::write(&path, "four").unwrap();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer four");
        assert_eq!(c.method(), format!("token file {}", path.display()));
    }

    #[test]
    fn token_file_missing_at_first_read_is_an_error() {
        let dir = TempDir::new();
        let c = creds(AuthSource::TokenFile(dir.0.join("absent")));
        let e = c.authorization().unwrap_err().to_string();
        assert!(e.contains("absent"), "{e}");
    }

    #[test]
    fn static_token_and_none() {
        let c = creds(AuthSource::Token("s3cr3t".into()));
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer s3cr3t");
        assert_eq!(c.method(), "token");
        assert_eq!(c.exec_client_cert().unwrap(), None);
        let n = creds(AuthSource::None);
        assert_eq!(n.authorization().unwrap(), None);
        assert_eq!(n.method(), "none");
    }

    /// A plugin run through /bin/sh (running the script itself could race with a fork elsewhere in
    /// the test process and fail with ETXTBSY). It logs each call, and prints `response`.
    fn plugin(dir: &TempDir, provide_cluster_info: bool) -> ExecConfig {
        let script = dir.write(
            "plugin.sh",
            "#!/bin/sh\nd=$(dirname \"$0\")\necho call >> \"$d/calls\"\nprintf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$d/info\"\nprintf '%s' \"$PLUGIN_ENV\" > \"$d/env\"\nif [ -f \"$d/fail\" ]; then echo 'boom: no credentials' >&2; echo 'second line' >&2; exit 3; fi\necho 'plugin: a note on stderr' >&2\ncat \"$d/response\"\n",
        );
        ExecConfig {
            api_version: V1.into(),
            command: "/bin/sh".into(),
            args: vec![script.display().to_string()],
            env: vec![EnvVar {
                name: "PLUGIN_ENV".into(),
                value: "from-kubeconfig".into(),
            }],
            provide_cluster_info,
            ..ExecConfig::default()
        }
    }

    fn token_response(token: &str, expires: Option<&str>) -> String {
        let mut status = json!({"token": token});
        if let Some(e) = expires {
            status["expirationTimestamp"] = json!(e);
        }
        json!({"apiVersion": V1, "kind": "ExecCredential", "status": status}).to_string()
    }

    #[test]
    fn exec_token_is_cached_until_invalidated() {
        let dir = TempDir::new();
        dir.write(
            "response",
            &token_response("t1", Some("2999-01-01T00:00:00Z")),
        );
        let c = creds(AuthSource::Exec(plugin(&dir, true)));
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer t1");
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer t1");
        assert_eq!(dir.calls(), 1);
        dir.write("response", &token_response("t2", None));
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer t1");
        c.invalidate();
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer t2");
        assert_eq!(dir.calls(), 2);
        // No expiry: cached for good.
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer t2");
        assert_eq!(c.exec_client_cert().unwrap(), None);
        assert_eq!(dir.calls(), 2);

        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.0.join("info")).unwrap()).unwrap();
        assert_eq!(info["apiVersion"], V1);
        assert_eq!(info["kind"], "ExecCredential");
        assert_eq!(info["spec"]["interactive"], false);
        assert_eq!(info["spec"]["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(
            info["spec"]["cluster"]["tls-server-name"],
            "kubernetes.default.svc"
        );
        assert!(info["spec"]["cluster"]["certificate-authority-data"].is_string());
        // insecure-skip-tls-verify is false: left out, not sent as null or false.
        assert_eq!(info["spec"]["cluster"].as_object().unwrap().len(), 3);
        let env = std::fs::read_to_string(dir.0.join("env")).unwrap();
        assert_eq!(env, "from-kubeconfig");
        assert_eq!(c.method(), "exec plugin /bin/sh (v1)");
    }

    #[test]
    fn exec_info_omits_cluster_without_provide_cluster_info() {
        let dir = TempDir::new();
        dir.write("response", &token_response("t", None));
        let c = creds(AuthSource::Exec(plugin(&dir, false)));
        c.authorization().unwrap();
        let info: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.0.join("info")).unwrap()).unwrap();
        assert_eq!(
            info,
            json!({"apiVersion": V1, "kind": "ExecCredential", "spec": {"interactive": false}})
        );
    }

    #[test]
    fn expired_exec_credential_is_rerun() {
        let dir = TempDir::new();
        dir.write(
            "response",
            &token_response("old", Some("2001-02-03T04:05:06.789+02:00")),
        );
        let c = creds(AuthSource::Exec(plugin(&dir, false)));
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer old");
        assert_eq!(c.authorization().unwrap().unwrap(), "Bearer old");
        assert_eq!(dir.calls(), 2);
    }

    fn fixture(name: &str) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubeconfig");
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    #[test]
    fn exec_failures_are_clear_errors() {
        let dir = TempDir::new();
        let c = creds(AuthSource::Exec(plugin(&dir, false)));
        // A v3 certificate (the fixture's is v1, whose key webpki cannot compare) and another key.
        let v3_cert = crate::kube::testutil::Pki::new("ca")
            .issue(&["u"], &rcgen::KeyPair::generate().unwrap());
        let cases: Vec<(Option<String>, &str)> = vec![
            (None, "exit status: 3): boom: no credentials"),
            (Some("not json at all".into()), "not an ExecCredential JSON"),
            (Some(token_response("t", Some("yesterday"))), "invalid status.expirationTimestamp"),
            (Some(json!({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", "status": {"token": "t"}}).to_string()), "returned apiVersion"),
            (Some(json!({"apiVersion": V1, "kind": "Other", "status": {"token": "t"}}).to_string()), "kind"),
            (Some(json!({"apiVersion": V1, "kind": "ExecCredential", "status": {}}).to_string()), "neither status.token"),
            (Some(json!({"apiVersion": V1, "kind": "ExecCredential", "status": {"clientKeyData": "k"}}).to_string()), "only one"),
            (Some(json!({"apiVersion": V1, "kind": "ExecCredential", "status": {"clientCertificateData": "c", "clientKeyData": "k"}}).to_string()), "status.clientCertificateData: no PEM certificate"),
            (Some(json!({"apiVersion": V1, "kind": "ExecCredential", "status": {"clientCertificateData": fixture("client.crt"), "clientKeyData": "k"}}).to_string()), "status.clientCertificateData key: no usable private key"),
            (Some(json!({"apiVersion": V1, "kind": "ExecCredential", "status": {"clientCertificateData": v3_cert, "clientKeyData": rcgen::KeyPair::generate().unwrap().serialize_pem()}}).to_string()), "do not belong together"),
        ];
        for (response, needle) in cases {
            let _ = std::fs::remove_file(dir.0.join("fail"));
            match &response {
                Some(r) => {
                    dir.write("response", r);
                }
                None => {
                    dir.write("fail", "");
                }
            }
            c.invalidate();
            let e = c.authorization().unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, Error::Exec { .. }), "{msg}");
            assert!(
                msg.contains("/bin/sh") && msg.contains(needle),
                "{msg:?} wanted {needle:?}"
            );
            assert!(!msg.contains("\"t\""), "{msg}");
        }
    }

    #[test]
    fn exec_client_certificate_is_returned() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubeconfig");
        let cert = std::fs::read_to_string(fixtures.join("client.crt")).unwrap();
        let key = std::fs::read_to_string(fixtures.join("client.key")).unwrap();
        let dir = TempDir::new();
        let response = json!({"apiVersion": V1, "kind": "ExecCredential", "status": {
            "clientCertificateData": cert, "clientKeyData": key,
            "expirationTimestamp": "2999-12-31T23:59:59Z"}});
        dir.write("response", &response.to_string());
        let c = creds(AuthSource::Exec(plugin(&dir, false)));
        let (got_cert, got_key) = c.exec_client_cert().unwrap().unwrap();
        assert_eq!(got_cert, cert.as_bytes());
        assert_eq!(got_key, key.as_bytes());
        assert_eq!(c.authorization().unwrap(), None);
        assert_eq!(dir.calls(), 1);
    }

    #[test]
    fn missing_plugin_error_carries_the_install_hint() {
        let cfg = ExecConfig {
            api_version: V1.into(),
            command: "paperlb-test-no-such-plugin".into(),
            install_hint: Some("Install it with: brew install no-such-plugin\n".into()),
            ..ExecConfig::default()
        };
        let e = creds(AuthSource::Exec(cfg))
            .authorization()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("paperlb-test-no-such-plugin") && e.contains("not found"),
            "{e}"
        );
        assert!(e.contains("brew install no-such-plugin"), "{e}");
    }

    #[test]
    fn slow_plugin_is_killed_at_the_timeout() {
        let dir = TempDir::new();
        let script = dir.write("slow.sh", "#!/bin/sh\nexec sleep 30\n");
        let mut c = creds(AuthSource::Exec(ExecConfig {
            api_version: V1.into(),
            command: "/bin/sh".into(),
            args: vec![script.display().to_string()],
            ..ExecConfig::default()
        }));
        c.set_exec_timeout(Duration::from_millis(200));
        let e = c.authorization().unwrap_err().to_string();
        assert!(e.contains("did not finish"), "{e}");
    }
}
