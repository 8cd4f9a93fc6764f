//! The real client, watcher and `paperlb check` against the fake API server over real TLS: every
//! auth method, certificate errors, injected faults, and a watch that must end with the server's
//! view while its streams are dropped at seeded points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use paperlb::kube::Error;
use paperlb::kube::client::{Client, ClientOptions, LEASES, ListParams};
use paperlb::kube::config::{LoadOptions, load};
use paperlb::kube::watch::{self, WatchMsg};
use serde_json::{Value, json};

use crate::support::fake_api::{ADMIN_USER, FakeApi, FakeOptions, Fault, FaultKind};

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("paperlb-kube-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A kubeconfig for `api` whose user entry is `user_yaml` (indented under `user:`).
fn kubeconfig(api: &FakeApi, dir: &Path, ca_pem: &str, user_yaml: &str) -> PathBuf {
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, ca_pem).unwrap();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    certificate-authority: ca.crt\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\ncurrent-context: fake\nusers:\n- name: u\n  user:\n{user_yaml}",
        api.url()
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

fn client_for(path: &Path, opts: ClientOptions) -> Result<Client, Error> {
    let cfg = load(&LoadOptions {
        kubeconfig: Some(path.to_path_buf()),
        ..LoadOptions::default()
    })?;
    Client::new(&cfg, opts)
}

fn quick() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(3),
        ..ClientOptions::default()
    }
}

/// The user the fake saw on the last request to `path_part`.
fn last_user(api: &FakeApi, path_part: &str) -> String {
    api.requests()
        .iter()
        .rev()
        .find(|r| r.path.contains(path_part) && r.status < 400)
        .map(|r| r.user.clone())
        .unwrap_or_default()
}

const SERVICES: &str = "/api/v1/namespaces/default/services";

#[test]
fn token_file_is_reread_after_a_401() {
    let api = FakeApi::start(FakeOptions::default());
    let dir = Dir::new("tokenfile");
    api.add_token("token-one", "alice");
    std::fs::write(dir.0.join("token"), "token-one\n").unwrap();
    let kc = kubeconfig(&api, &dir.0, &api.ca_pem(), "    tokenFile: token\n");
    let client = client_for(&kc, quick()).unwrap();
    let _: Value = client.get(SERVICES).unwrap();
    assert_eq!(last_user(&api, SERVICES), "alice");

    // Rotation: the file changes; a 401 makes the client re-read it and retry once.
    api.add_token("token-two", "bob");
    std::fs::write(dir.0.join("token"), "token-two\n").unwrap();
    api.inject(Fault::new(Some("GET"), SERVICES, 1, FaultKind::Status(401)));
    let _: Value = client.get(SERVICES).unwrap();
    assert_eq!(last_user(&api, SERVICES), "bob");
}

#[test]
fn client_certificate_authenticates_as_its_common_name() {
    let api = FakeApi::start(FakeOptions::default());
    let dir = Dir::new("cert");
    let (cert, key) = api.issue_client_cert("carol");
    std::fs::write(dir.0.join("c.crt"), cert).unwrap();
    std::fs::write(dir.0.join("c.key"), key).unwrap();
    let kc = kubeconfig(
        &api,
        &dir.0,
        &api.ca_pem(),
        "    client-certificate: c.crt\n    client-key: c.key\n",
    );
    let client = client_for(&kc, quick()).unwrap();
    let _: Value = client.get(SERVICES).unwrap();
    assert_eq!(last_user(&api, SERVICES), "carol");
}

#[test]
fn exec_plugin_runs_once_until_a_401() {
    let api = FakeApi::start(FakeOptions::default());
    let dir = Dir::new("exec");
    api.add_token("exec-token", "dave");
    let count = dir.0.join("count");
    let script = dir.0.join("plugin.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho x >> {}\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"exec-token\"}}}}'\n",
            count.display()
        ),
    )
    .unwrap();
    let user = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: [\"plugin.sh\"]\n".to_string();
    let kc = kubeconfig(&api, &dir.0, &api.ca_pem(), &user);
    // The plugin runs with the kubeconfig's directory as a relative base only for commands with '/':
    // pass the script by absolute path.
    let text = std::fs::read_to_string(&kc)
        .unwrap()
        .replace("plugin.sh", &script.display().to_string());
    std::fs::write(&kc, text).unwrap();
    let client = client_for(&kc, quick()).unwrap();
    let runs = || {
        std::fs::read_to_string(&count)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let _: Value = client.get(SERVICES).unwrap();
    let _: Value = client.get(SERVICES).unwrap();
    assert_eq!(last_user(&api, SERVICES), "dave");
    assert_eq!(runs(), 1, "the credential is cached");
    api.inject(Fault::new(Some("GET"), SERVICES, 1, FaultKind::Status(401)));
    let _: Value = client.get(SERVICES).unwrap();
    assert_eq!(runs(), 2, "a 401 re-runs the plugin");
}

#[test]
fn wrong_ca_and_bad_token_are_named_errors() {
    let api = FakeApi::start(FakeOptions::default());
    let dir = Dir::new("ca");
    let other_ca = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/kubeconfig/ca.crt"
    ))
    .unwrap();
    let kc = kubeconfig(
        &api,
        &dir.0,
        &other_ca,
        &format!("    token: {}\n", api.admin_token()),
    );
    let err = client_for(&kc, quick())
        .unwrap()
        .get::<Value>(SERVICES)
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().contains("127.0.0.1"),
        "names the server: {err}"
    );

    let kc = kubeconfig(
        &api,
        &dir.0,
        &api.ca_pem(),
        "    token: not-a-valid-token\n",
    );
    let err = client_for(&kc, quick())
        .unwrap()
        .get::<Value>(SERVICES)
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
    assert!(
        !err.to_string().contains("not-a-valid-token"),
        "no secret in: {err}"
    );
}

#[test]
fn injected_faults_become_typed_errors_without_hanging() {
    let api = FakeApi::start(FakeOptions::default());
    let dir = Dir::new("faults");
    let kc = dir.0.join("kc");
    api.write_kubeconfig(&kc).unwrap();
    let client = client_for(&kc, quick()).unwrap();
    let get = |kind: FaultKind| {
        api.inject(Fault::new(Some("GET"), SERVICES, 1, kind));
        client.get::<Value>(SERVICES).unwrap_err()
    };
    assert!(get(FaultKind::Status(403)).is_forbidden());
    assert!(get(FaultKind::Status(409)).is_conflict());
    let e = get(FaultKind::Status(429));
    assert_eq!(e.code(), Some(429));
    assert!(e.retry_after().is_some(), "{e:?}");
    let e = get(FaultKind::Throttled { retry_after: 2 });
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)), "{e:?}");
    assert_eq!(get(FaultKind::Status(500)).code(), Some(500));
    assert_eq!(get(FaultKind::Status(503)).code(), Some(503));
    assert!(matches!(
        get(FaultKind::Stall(Duration::from_secs(10))),
        Error::Timeout { .. }
    ));
    assert!(matches!(get(FaultKind::Drop), Error::Connect { .. }));
    // And the next plain request works.
    let _: Value = client.get(SERVICES).unwrap();
}

fn check(kc: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paperlb"))
        .args(["check", "--kubeconfig"])
        .arg(kc)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_passes_then_names_missing_crds_and_denied_permissions() {
    let api = FakeApi::start(FakeOptions {
        namespaces: vec!["paperlb-system".into()],
        ..FakeOptions::default()
    });
    let dir = Dir::new("check");
    let kc = dir.0.join("kc");
    api.write_kubeconfig(&kc).unwrap();
    // All passes but a warning: no LoadBalancerConfig yet (exit 1, not a problem).
    let (code, text) = check(&kc);
    assert_eq!(code, 1, "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
    assert!(text.contains("WARNING: no LoadBalancerConfig"), "{text}");
    assert!(text.contains("server version: v1."), "{text}");
    assert!(!text.contains(&api.admin_token()), "never the secret");

    api.set_crds_installed(false);
    let (code, text) = check(&kc);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("CRDs of lb.paperlb.com/v1alpha1 are not installed"),
        "{text}"
    );

    api.set_crds_installed(true);
    // A review that cannot be made is a problem, and the permissions are no longer "all granted".
    let reviews = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    api.inject(Fault::new(Some("POST"), reviews, 1, FaultKind::Status(500)));
    let (code, text) = check(&kc);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("PROBLEM: cannot check get services"),
        "{text}"
    );
    assert!(!text.contains("permissions: all"), "{text}");

    api.deny(ADMIN_USER, "patch", "services/status");
    let (code, text) = check(&kc);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("permission denied: patch services/status"),
        "{text}"
    );
}

fn lease(name: &str, holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"holderIdentity": holder}})
}

/// A tiny seeded xorshift: the fault points are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn watcher_view_equals_server_after_churn_with_dropped_streams() {
    let api = FakeApi::start(FakeOptions::default());
    let dir = Dir::new("churn");
    let kc = dir.0.join("kc");
    api.write_kubeconfig(&kc).unwrap();
    let client = client_for(
        &kc,
        ClientOptions {
            watch_idle_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let path = LEASES.path(Some("default"), None, None);
    let watch_prefix = "/apis/coordination.k8s.io/v1/namespaces/default/leases?";
    // Faults apply to new requests: the first watch ends early too, so every reconnection meets the
    // next queued fault.
    api.inject(Fault::new(
        Some("GET"),
        watch_prefix,
        1,
        FaultKind::EndEarly(2),
    ));
    let (tx, rx) = mpsc::channel::<WatchMsg<Value>>();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = watch::runner::spawn_with_stats(
        "leases",
        client.clone(),
        path.clone(),
        tx,
        |m| m,
        stop.clone(),
        Arc::default(),
    );

    let mut view: BTreeMap<String, String> = BTreeMap::new();
    let apply = |view: &mut BTreeMap<String, String>, msg: WatchMsg<Value>| {
        let key = |o: &Value| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let rv = |o: &Value| {
            o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        match msg {
            WatchMsg::Restarted(items, _) => {
                view.clear();
                for o in items {
                    assert!(
                        view.insert(key(&o), rv(&o)).is_none(),
                        "duplicate in a snapshot"
                    );
                }
            }
            WatchMsg::Applied(o) => {
                view.insert(key(&o), rv(&o));
            }
            WatchMsg::Deleted(o) => {
                view.remove(&key(&o));
            }
        }
    };

    let mut rng = Rng(0x5eed_1234_abcd);
    // Each broken stream costs a growing backoff (0.8 s, 1.6 s, ...): a few of those, many clean ends.
    let mut broken = 0;
    let mut live: Vec<String> = Vec::new();
    for i in 0..200u32 {
        let fault = match rng.next(10) {
            0 if broken < 2 => {
                broken += 1;
                Some(FaultKind::DropMidObject)
            }
            0..=2 => Some(FaultKind::EndEarly(1 + rng.next(3) as usize)),
            _ => None,
        };
        if let Some(kind) = fault {
            api.inject(Fault::new(Some("GET"), watch_prefix, 1, kind));
        }
        if i == 50 || i == 150 {
            api.compact();
        }
        if i == 20 {
            // Faults are taken in order, one per reconnection, and events end each faulted stream:
            // queue these early, while the churn still drives reconnections.
            // The next reconnection is answered 410 Gone (the HTTP form): it must relist.
            let only_watches = format!("{watch_prefix}watch=1");
            api.inject(Fault::new(
                Some("GET"),
                &only_watches,
                1,
                FaultKind::Status(410),
            ));
            // Longer than the client's idle timeout: detected as stalled and resumed.
            api.inject(Fault::new(
                Some("GET"),
                watch_prefix,
                1,
                FaultKind::StallStream(Duration::from_secs(6)),
            ));
        }
        let name = format!("l{i:03}");
        api.create("leases", lease(&name, "a")).unwrap();
        live.push(name);
        if i % 3 == 0 {
            let n = live[rng.next(live.len() as u64) as usize].clone();
            api.patch(
                "leases",
                "default",
                &n,
                json!({"spec": {"holderIdentity": format!("b{i}")}}),
            )
            .unwrap();
        }
        if i % 4 == 0 {
            let n = live.remove(rng.next(live.len() as u64) as usize);
            api.delete("leases", "default", &n).unwrap();
        }
        while let Ok(m) = rx.try_recv() {
            apply(&mut view, m);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let server: BTreeMap<String, String> = api
        .list("leases", "default")
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap().to_string(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    // Wait until the queued faults have all met a reconnection and the view has caught up.
    let watch_count = || {
        api.requests()
            .iter()
            .filter(|r| r.path.starts_with(watch_prefix) && r.path.contains("watch="))
            .count()
    };
    let list_count = || {
        api.requests()
            .iter()
            .filter(|r| r.path.starts_with(watch_prefix) && !r.path.contains("watch="))
            .count()
    };
    let end = Instant::now() + Duration::from_secs(90);
    while (view != server || watch_count() < 10 || list_count() < 2) && Instant::now() < end {
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(200)) {
            apply(&mut view, m);
        }
    }
    stop.store(true, Ordering::SeqCst);
    drop(rx);
    assert_eq!(
        view.len(),
        server.len(),
        "same objects (no missed deletes, no extras)"
    );
    assert_eq!(view, server, "same objects at the same resourceVersions");
    let reqs = api.requests();
    let watches = reqs
        .iter()
        .filter(|r| r.path.starts_with(watch_prefix) && r.path.contains("watch="))
        .count();
    let lists = reqs
        .iter()
        .filter(|r| r.path.starts_with(watch_prefix) && !r.path.contains("watch="))
        .count();
    assert!(
        watches >= 10,
        "streams were dropped and resumed: {watches} watch requests"
    );
    assert!(
        lists >= 2,
        "a 410 after compaction made it relist: {lists} lists"
    );
    // Also the LIST path agrees.
    let listed = client
        .list(&path, &ListParams::default(), |t| {
            serde_json::from_str::<Value>(t)
        })
        .unwrap();
    assert_eq!(listed.items.len(), server.len());
    let end = Instant::now() + Duration::from_secs(10);
    while !handle.is_finished() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        handle.is_finished(),
        "the watcher stops promptly when asked"
    );
}

/// A Lease call that hangs is given up at the renew deadline, not at the client's general request
/// timeout (here ten minutes, far beyond what the test waits): the elector reports lost leadership
/// and makes its next attempt while the hung request is still hanging on the server.
#[test]
fn a_hung_lease_renewal_is_given_up_at_the_renew_deadline() {
    use paperlb::kube::lease::{self, Leadership, LeaseConfig};

    let api = FakeApi::start(FakeOptions::default());
    let dir = Dir::new("lease-hang");
    let kc = dir.0.join("kc");
    api.write_kubeconfig(&kc).unwrap();
    let client = client_for(
        &kc,
        ClientOptions {
            request_timeout: Duration::from_secs(600),
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let config = LeaseConfig {
        name: "hang".into(),
        namespace: "default".into(),
        identity: "me".into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(1),
        retry_period: Duration::from_millis(200),
    };
    let leadership = Leadership::elected(config.renew_deadline);
    let (tx, rx) = mpsc::channel::<bool>();
    let stop = Arc::new(AtomicBool::new(false));
    let elector = lease::spawn(client, config, leadership.clone(), stop.clone(), move |l| {
        let _ = tx.send(l);
    })
    .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(true), "leads");

    // Drop any flips a loaded machine caused so far: only what follows the fault counts.
    while rx.try_recv().is_ok() {}
    // The next Lease request hangs for ten minutes; every one after it fails with 500.
    let leases = LEASES.path(Some("default"), None, None);
    api.inject(Fault::new(
        None,
        &leases,
        1,
        FaultKind::Stall(Duration::from_secs(600)),
    ));
    api.inject(Fault::new(None, &leases, 1_000_000, FaultKind::Status(500)));
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)),
        Ok(false),
        "lost leadership is reported while the renewal still hangs"
    );
    assert!(!leadership.is_leader());
    let deadline = Instant::now() + Duration::from_secs(60);
    let later_attempt = || {
        api.requests()
            .iter()
            .any(|r| r.path.starts_with(&leases) && r.status == 500)
    };
    while !later_attempt() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Faults are taken in order, so the first Lease request after the injection got the stall; the
    // elector makes one call at a time, so a 500 means it gave the stalled call up.
    assert!(
        later_attempt(),
        "a later attempt was made: {:?}",
        api.requests()
    );
    stop.store(true, Ordering::SeqCst);
    elector.join().unwrap();
}
