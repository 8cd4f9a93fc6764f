//! The fake API server's latency knob (`tests/support/fake_api/latency.rs`) really delays requests
//! and really caps writes in flight, so `make bench` cannot silently measure a 0 ms apiserver.
//! Lower bounds only: a loaded box makes everything slower, never faster.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use paperlb::kube::client::{Client, ClientOptions};
use paperlb::kube::config::{LoadOptions, load};
use serde_json::{Value, json};

use crate::support::fake_api::{Delay, FakeApi, FakeOptions, Latency};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn client(api: &FakeApi, tag: &str) -> (Client, Dir) {
    let dir = std::env::temp_dir().join(format!("paperlb-latency-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    api.write_kubeconfig(&path).unwrap();
    let cfg = load(&LoadOptions {
        kubeconfig: Some(path),
        ..LoadOptions::default()
    })
    .unwrap();
    (
        Client::new(&cfg, ClientOptions::default()).unwrap(),
        Dir(dir),
    )
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

fn lease(name: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
        "spec": {"holderIdentity": name}})
}

#[test]
fn reads_and_writes_wait_at_least_their_configured_delay() {
    let api = FakeApi::start(FakeOptions {
        latency: Latency {
            read: Delay::jittered(Duration::from_millis(30), 50),
            write: Delay::fixed(Duration::from_millis(60)),
            max_concurrent_writes: 0,
            write_cpu_per_kib: Duration::ZERO,
        },
        ..FakeOptions::default()
    });
    let (c, _dir) = client(&api, "delay");
    // Warm the connection: the first request also pays for the TLS handshake.
    let _: Value = c.get("/api/v1/namespaces/default").unwrap();
    let path = LEASES;
    for i in 0..3 {
        let t0 = Instant::now();
        let _: Value = c.create(path, &lease(&format!("c{i}"))).unwrap();
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(60), "write took {took:?}");

        let t0 = Instant::now();
        let _: Value = c.get(&format!("{path}/c{i}")).unwrap();
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(15), "read took {took:?}");
    }
    // Off again: the same requests no longer wait (no upper bound asserted: the box may be slow).
    api.set_latency(Latency::off());
    assert!(api.latency().is_off());
    let _: Value = c.get(&format!("{path}/c0")).unwrap();
}

/// Runs `n` creates at once (one client each, released together) and returns the most writes the
/// fake had in flight.
fn parallel_creates(api: &FakeApi, n: usize, tag: &str) -> usize {
    let clients: Vec<(Client, Dir)> = (0..n).map(|i| client(api, &format!("{tag}{i}"))).collect();
    for (c, _) in &clients {
        let _: Value = c.get("/api/v1/namespaces/default").unwrap();
    }
    api.reset_max_writes_in_flight();
    let barrier = Arc::new(Barrier::new(n));
    std::thread::scope(|s| {
        for (i, (c, _)) in clients.iter().enumerate() {
            let barrier = barrier.clone();
            s.spawn(move || {
                barrier.wait();
                let name = format!("{tag}-{i}");
                let _: Value = c.create(LEASES, &lease(&name)).unwrap();
            });
        }
    });
    api.max_writes_in_flight()
}

#[test]
fn writes_in_flight_never_exceed_the_cap() {
    let api = FakeApi::start(FakeOptions {
        latency: Latency {
            read: Delay::default(),
            write: Delay::fixed(Duration::from_millis(100)),
            max_concurrent_writes: 2,
            write_cpu_per_kib: Duration::ZERO,
        },
        ..FakeOptions::default()
    });
    let max = parallel_creates(&api, 8, "capped");
    assert!((1..=2).contains(&max), "max writes in flight {max}, cap 2");
    assert_eq!(api.list("leases", "default").len(), 8);

    // A cap of 1 serializes: 4 writes of 100 ms each take at least 400 ms together.
    api.set_latency(Latency {
        read: Delay::default(),
        write: Delay::fixed(Duration::from_millis(100)),
        max_concurrent_writes: 1,
        write_cpu_per_kib: Duration::ZERO,
    });
    let t0 = Instant::now();
    let max = parallel_creates(&api, 4, "serial");
    assert_eq!(max, 1);
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );

    // Without a cap, writes that wait 300 ms overlap: the counter can see more than one (it must
    // not be stuck at 1, or the test above would prove nothing). Given a loaded box, only require
    // that two of eight met at some moment.
    api.set_latency(Latency {
        read: Delay::default(),
        write: Delay::fixed(Duration::from_millis(300)),
        max_concurrent_writes: 0,
        write_cpu_per_kib: Duration::ZERO,
    });
    let max = parallel_creates(&api, 8, "free");
    assert!(max >= 2, "max writes in flight without a cap: {max}");
}

#[test]
fn profiles_parse() {
    assert!(Latency::parse("off").unwrap().is_off());
    let etcd = Latency::parse("etcd").unwrap();
    assert_eq!(etcd, Latency::etcd());
    assert_eq!(etcd.write.lower_bound(), Duration::from_micros(7_500));
    let custom = Latency::parse("read=2,write=8ms,jitter=10%,writes=4").unwrap();
    assert_eq!(custom.read, Delay::jittered(Duration::from_millis(2), 10));
    assert_eq!(custom.write, Delay::jittered(Duration::from_millis(8), 10));
    assert_eq!(custom.max_concurrent_writes, 4);
    assert!(Latency::parse("write").is_err());
    assert!(Latency::parse("wrote=5").is_err());
}

/// A real apiserver spends CPU in proportion to the object on every write (bench/RESULTS.md, "A real
/// apiserver"); with `write_cpu_per_kib` the fake burns it too, on the cores the client shares.
/// Lower bound: the process's CPU time grows by at least the charge (other tests only add to it).
#[test]
fn a_write_burns_cpu_in_proportion_to_the_object() {
    let api = FakeApi::start(FakeOptions {
        latency: Latency {
            write_cpu_per_kib: Duration::from_millis(4),
            ..Latency::off()
        },
        ..FakeOptions::default()
    });
    let (c, _dir) = client(&api, "cpu");
    // ~40 KiB written: at least 160 ms of CPU.
    let mut big = lease("big");
    big["metadata"]["annotations"] = json!({"pad": "x".repeat(40 * 1024)});
    let cpu0 = process_cpu_ms();
    let _: Value = c.create(LEASES, &big).unwrap();
    let spent = process_cpu_ms() - cpu0;
    assert!(spent >= 150, "a 40 KiB write burned only {spent} ms of CPU");
    assert_eq!(
        Latency::parse("cpu=2").unwrap().write_cpu_per_kib,
        Duration::from_millis(2)
    );
    assert_eq!(Latency::parse("apiserver").unwrap(), Latency::apiserver());
    assert!(!Latency::apiserver().write_cpu_per_kib.is_zero());
}

/// utime + stime of this process in ms (`/proc/self/stat`, 100 ticks a second).
fn process_cpu_ms() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = s.rsplit_once(')').unwrap().1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (f[11] + f[12]) * 10
}
