//! The release binary needs nothing from its filesystem: `paperlb version` and `paperlb check` run in
//! an empty root (chroot) that holds only the static binary and the service-account files, with
//! in-cluster configuration pointing at the fake API server on 127.0.0.1, as in a FROM scratch
//! container. `check` must pass end to end (version, CRDs, every SelfSubjectAccessReview) as the
//! service account.
//!
//! The static binary comes from `PAPERLB_STATIC_BIN`, which `make test` sets after `make release`.
//! Without it this test fails and says so: a plain `cargo test` builds only the dynamic debug binary,
//! and passing on that would prove nothing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fake_api::{FakeApi, FakeOptions};

const SA_DIR: &str = "var/run/secrets/kubernetes.io/serviceaccount";
const SA_USER: &str = "system:serviceaccount:paperlb-system:paperlb-controller";
const SA_TOKEN: &str = "empty-root-service-account-token";

/// A temporary directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Under target/ rather than /tmp: the binary must be executable there (no `noexec` mount).
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "paperlb-empty-root-{tag}-{}-{n}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The static binary under test, or a failure that says how to provide it.
fn static_binary() -> PathBuf {
    let Some(path) = std::env::var_os("PAPERLB_STATIC_BIN").filter(|p| !p.is_empty()) else {
        panic!(
            "PAPERLB_STATIC_BIN is not set. This test runs the static release binary in an empty root; \
             `make test` builds it (`make release`) and sets the variable. By hand: `make release && \
             PAPERLB_STATIC_BIN=$PWD/target/x86_64-unknown-linux-gnu/release/paperlb cargo test --test \
             manifests empty_root`, or skip it with `cargo test -- --skip empty_root`."
        )
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "PAPERLB_STATIC_BIN={}: no such file (run `make release`)",
        path.display()
    );
    path
}

/// Whether an ELF executable names a program interpreter (PT_INTERP), i.e. needs ld.so and the
/// shared libraries it loads. `None` if the file is not a 64-bit little-endian ELF.
fn has_interpreter(path: &Path) -> Option<bool> {
    let b = std::fs::read(path).ok()?;
    if b.get(0..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let phoff = u64::from_le_bytes(b.get(0x20..0x28)?.try_into().ok()?) as usize;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    let mut interp = false;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
        interp |= p_type == 3; // PT_INTERP
    }
    Some(interp)
}

/// An empty root holding only `/paperlb` (a copy of `bin`) and the service-account files.
fn make_root(tag: &str, bin: &Path, ca_pem: &str) -> Dir {
    let root = Dir::new(tag);
    std::fs::copy(bin, root.0.join("paperlb")).unwrap();
    let sa = root.0.join(SA_DIR);
    std::fs::create_dir_all(&sa).unwrap();
    std::fs::write(sa.join("token"), format!("{SA_TOKEN}\n")).unwrap();
    std::fs::write(sa.join("ca.crt"), ca_pem).unwrap();
    std::fs::write(sa.join("namespace"), "paperlb-system").unwrap();
    root
}

/// Every file under `dir`, relative, sorted (directories left out).
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn chroot_program() -> PathBuf {
    [
        "/usr/sbin/chroot",
        "/usr/bin/chroot",
        "/sbin/chroot",
        "/bin/chroot",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("chroot(8) (coreutils) is needed for the empty-root test")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs `/paperlb args...` inside `root` with only the in-cluster environment; at most 60 s.
/// Returns (exit code, stdout, stderr).
fn run_in_root(root: &Path, port: u16, args: &[&str]) -> (Option<i32>, String, String) {
    let mut cmd = if is_root() {
        Command::new(chroot_program())
    } else {
        // Not root: an unprivileged user namespace may chroot (needs kernel.unprivileged_userns_clone).
        let mut c = Command::new("unshare");
        c.args(["--user", "--map-root-user"]).arg(chroot_program());
        c
    };
    let out = root.with_extension("stdout");
    let err = root.with_extension("stderr");
    cmd.arg(root)
        .arg("/paperlb")
        .args(args)
        .env_clear()
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    let mut child = cmd.spawn().expect("start chroot");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| {
        let s = std::fs::read_to_string(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        s
    };
    let (stdout, stderr) = (read(&out), read(&err));
    let Some(status) = status else {
        panic!("/paperlb {args:?} in the empty root did not finish within 60 s: {stdout}{stderr}");
    };
    (status.code(), stdout, stderr)
}

#[test]
fn empty_root_static_binary_runs_version_and_check_in_cluster() {
    let bin = static_binary();
    assert_eq!(
        has_interpreter(&bin),
        Some(false),
        "{} is not a static x86_64 ELF executable (it names an interpreter, or is no ELF)",
        bin.display()
    );
    let api = FakeApi::start(FakeOptions {
        namespaces: vec!["paperlb-system".into()],
        ..FakeOptions::default()
    });
    api.add_token(SA_TOKEN, SA_USER);
    let port = api.addr().port();
    let root = make_root("static", &bin, &api.ca_pem());
    assert_eq!(
        files_under(&root.0),
        [
            "paperlb",
            &format!("{SA_DIR}/ca.crt"),
            &format!("{SA_DIR}/namespace"),
            &format!("{SA_DIR}/token"),
        ],
        "the root holds the binary and the service-account files, nothing else"
    );

    let (code, stdout, stderr) = run_in_root(&root.0, port, &["version"]);
    assert_eq!(code, Some(0), "version: {stdout}{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("paperlb {}", env!("CARGO_PKG_VERSION")),
        "{stderr}"
    );

    api.clear_requests();
    // Everything passes; the one warning (exit 1): no LoadBalancerConfig yet.
    let (code, stdout, stderr) = run_in_root(&root.0, port, &["check"]);
    assert_eq!(code, Some(1), "check: {stdout}{stderr}");
    assert!(!stdout.contains("PROBLEM"), "{stdout}{stderr}");
    for want in [
        "configuration: in-cluster (service account /var/run/secrets/kubernetes.io/serviceaccount)",
        "server: https://127.0.0.1:",
        "server version: v1.",
        "CRD loadbalancers.lb.paperlb.com: installed",
        "CRD loadbalancerconfigs.lb.paperlb.com: installed",
        "WARNING: no LoadBalancerConfig in namespace",
    ] {
        assert!(stdout.contains(want), "no {want:?} in:\n{stdout}{stderr}");
    }
    assert!(!stdout.contains(SA_TOKEN) && !stderr.contains(SA_TOKEN));
    // Every call was made as the service account, over TLS verified with the mounted ca.crt.
    let requests = api.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.user, SA_USER, "{} {} as {:?}", r.method, r.path, r.user);
    }
    let reviews = requests
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path.contains("selfsubjectaccessreviews") && r.status == 201
        })
        .count();
    assert_eq!(reviews, paperlb::check::permissions().len());
}

#[test]
fn empty_root_really_is_empty_a_dynamic_binary_cannot_start_there() {
    // The control: the debug test build links glibc dynamically, so without ld.so and libc in the
    // root it must fail to start. If it ran, the root would not be what the other test claims.
    let dynamic = Path::new(env!("CARGO_BIN_EXE_paperlb"));
    if has_interpreter(dynamic) != Some(true) {
        panic!(
            "{} names no ELF interpreter: was the debug build made static (RUSTFLAGS)? \
             The control needs a dynamic binary.",
            dynamic.display()
        );
    }
    let root = make_root("dynamic", dynamic, "not used");
    let (code, stdout, stderr) = run_in_root(&root.0, 1, &["version"]);
    assert_ne!(
        code,
        Some(0),
        "a dynamic binary ran in the empty root: {stdout}{stderr}"
    );
    assert!(!stdout.contains("paperlb "), "{stdout}");
}
