//! `bench kube` (examples/bench.rs) benches any apiserver from a kubeconfig: it must refuse a server
//! that is not on loopback unless told `--allow-remote`. No connection is made here.

use std::path::PathBuf;

use crate::support::loopback::{bench_server, is_loopback_url};

fn kubeconfig(name: &str, server: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paperlb-bench-guard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n\
             users:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn bench_refuses_a_remote_apiserver_unless_allowed() {
    let remote = [
        "https://10.0.0.1:6443",
        "https://192.168.1.10",
        "https://kubernetes.default.svc:443",
        "https://localhost.example.com:6443",
        "https://[2001:db8::1]:6443",
        "https://127.0.0.1.example.com",
    ];
    for (i, server) in remote.iter().enumerate() {
        let path = kubeconfig(&format!("remote-{i}"), server);
        let err = bench_server(&path, None, false).expect_err(server);
        assert!(err.contains("--allow-remote"), "{server}: {err}");
        assert!(err.contains(server), "{server}: {err}");
        assert_eq!(bench_server(&path, None, true).as_deref(), Ok(*server));
    }
    let local = [
        "https://127.0.0.1:6443",
        "https://127.3.4.5",
        "https://[::1]:6443",
        "https://localhost:6443",
        "http://LOCALHOST",
    ];
    for (i, server) in local.iter().enumerate() {
        let path = kubeconfig(&format!("local-{i}"), server);
        assert_eq!(bench_server(&path, None, false).as_deref(), Ok(*server));
    }
    assert!(!is_loopback_url("https://user@10.1.2.3:6443/"));
    assert!(is_loopback_url("https://127.0.0.1:6443/prefix"));
    let missing = std::env::temp_dir().join("paperlb-bench-guard-no-such-file");
    assert!(bench_server(&missing, None, false).is_err());
    let _ = std::fs::remove_dir_all(kubeconfig("x", "https://127.0.0.1").parent().unwrap());
}
