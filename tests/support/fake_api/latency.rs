//! Simulated apiserver latency: a delay before each request is served (one for reads, one for
//! writes, each fixed or with ± jitter) and a cap on writes in flight, which models etcd's commit
//! pipeline (a write holds one of the slots while its delay runs and while it is applied). Watches
//! are delayed once, when they are opened; their events are not. Off by default.
//!
//! Owns only timing: which requests wait, for how long, and how many writes were in flight at most
//! (so a test can prove the knob works). Must not change what a request answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// One delay: `base`, varied uniformly by ± `jitter_pct` percent of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delay {
    pub base: Duration,
    pub jitter_pct: u32,
}

impl Delay {
    pub fn fixed(base: Duration) -> Delay {
        Delay {
            base,
            jitter_pct: 0,
        }
    }

    pub fn jittered(base: Duration, jitter_pct: u32) -> Delay {
        Delay {
            base,
            jitter_pct: jitter_pct.min(100),
        }
    }

    /// The shortest delay this can give.
    pub fn lower_bound(&self) -> Duration {
        self.base
            .saturating_sub(self.base * self.jitter_pct.min(100) / 100)
    }

    /// A delay for one request; `r` is a uniform random number.
    fn sample(&self, r: u64) -> Duration {
        if self.jitter_pct == 0 || self.base.is_zero() {
            return self.base;
        }
        let base = self.base.as_micros() as i128;
        let spread = base * i128::from(self.jitter_pct.min(100)) / 100;
        // Uniform in [-spread, +spread].
        let offset = (r % (2 * spread as u64 + 1)) as i128 - spread;
        Duration::from_micros((base + offset).max(0) as u64)
    }
}

/// The latency profile of the fake API server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// GET (get, list, and the opening of a watch).
    pub read: Delay,
    /// POST, PUT, PATCH, DELETE.
    pub write: Delay,
    /// Writes in flight at most (0: no cap). A write waits for a free slot before its delay.
    pub max_concurrent_writes: usize,
    /// CPU a write burns on the serving thread per KiB of the object it sends or gets back (0:
    /// none), after it is applied and outside the store's lock. A real kube-apiserver spends CPU
    /// in proportion to the object on every write (decode, merge, schema validation, managedFields,
    /// encode, etcd, the watch cache's decode): ~1-1.2 ms per KiB of a LoadBalancer of 100 targets
    /// in the server's own CPU profile on a 2-core box (bench/RESULTS.md, "A real apiserver"), and that CPU is taken from the cores the
    /// controller runs on. A sleep does not model it: sleeping writes overlap for free.
    pub write_cpu_per_kib: Duration,
}

impl Latency {
    /// `etcd` plus [`Latency::write_cpu_per_kib`] of 2 ms: a kube-apiserver with etcd on the same
    /// 2 cores per LoadBalancer write; 2 ms, not the profile's ~1.1, because the fake's objects
    /// are smaller (no managedFields) and etcd and the watch fan-out cost CPU too: calibrated so the
    /// fake's cold start lands within 30 % of the real one (bench/RESULTS.md, "A real apiserver").
    pub fn apiserver() -> Latency {
        Latency {
            write_cpu_per_kib: Duration::from_millis(2),
            ..Latency::etcd()
        }
    }

    /// No delay, no cap: the fake as fast as it is.
    pub fn off() -> Latency {
        Latency::default()
    }

    /// The bench's realistic profile: 5 ms reads, 15 ms writes, both ± 50 %, 16 writes in flight.
    /// A kube-apiserver with etcd on one small node commits a write in ~5-30 ms (fsync, admission,
    /// the watch cache); etcd batches commits, so a few writes proceed together, but not hundreds.
    pub fn etcd() -> Latency {
        Latency {
            read: Delay::jittered(Duration::from_millis(5), 50),
            write: Delay::jittered(Duration::from_millis(15), 50),
            max_concurrent_writes: 16,
            write_cpu_per_kib: Duration::ZERO,
        }
    }

    pub fn is_off(&self) -> bool {
        *self == Latency::off()
    }

    /// `off`, `etcd` (see [`Latency::etcd`]), `apiserver` ([`Latency::apiserver`]), or
    /// `read=MS,write=MS,jitter=PCT,writes=N,cpu=MS_PER_KIB` (any subset; missing parts are 0 / no
    /// cap).
    pub fn parse(s: &str) -> Result<Latency, String> {
        match s.trim() {
            "" | "off" | "0" | "0ms" => return Ok(Latency::off()),
            "etcd" | "15ms" => return Ok(Latency::etcd()),
            "apiserver" => return Ok(Latency::apiserver()),
            _ => {}
        }
        let (mut read, mut write, mut jitter, mut cap, mut cpu) = (0u64, 0u64, 0u32, 0usize, 0u64);
        for part in s.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("latency: {part:?} is not key=value"))?;
            let v = v.trim().trim_end_matches("ms").trim_end_matches('%');
            let bad = |_| format!("latency: {part:?}: not a number");
            match k.trim() {
                "read" => read = v.parse().map_err(bad)?,
                "write" => write = v.parse().map_err(bad)?,
                "jitter" => jitter = v.parse().map_err(bad)?,
                "writes" => cap = v.parse().map_err(bad)?,
                "cpu" => cpu = v.parse().map_err(bad)?,
                other => return Err(format!("latency: unknown key {other:?}")),
            }
        }
        Ok(Latency {
            read: Delay::jittered(Duration::from_millis(read), jitter),
            write: Delay::jittered(Duration::from_millis(write), jitter),
            max_concurrent_writes: cap,
            write_cpu_per_kib: Duration::from_millis(cpu),
        })
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_off() {
            return write!(f, "off");
        }
        write!(
            f,
            "read {} ms ±{} %, write {} ms ±{} %, ",
            self.read.base.as_millis(),
            self.read.jitter_pct,
            self.write.base.as_millis(),
            self.write.jitter_pct
        )?;
        match self.max_concurrent_writes {
            0 => write!(f, "no write cap")?,
            n => write!(f, "{n} writes in flight")?,
        }
        match self.write_cpu_per_kib.as_millis() {
            0 => Ok(()),
            n => write!(f, ", {n} ms CPU per KiB written"),
        }
    }
}

#[derive(Default)]
struct Slots {
    in_flight: usize,
    max_in_flight: usize,
}

/// The shared state: the profile, the write slots, and a random source for the jitter.
pub struct Gate {
    profile: Mutex<Latency>,
    slots: Mutex<Slots>,
    freed: Condvar,
    rng: AtomicU64,
}

/// A write's slot; freed on drop.
pub struct Permit<'a> {
    gate: &'a Gate,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.slots.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight = s.in_flight.saturating_sub(1);
        drop(s);
        self.gate.freed.notify_one();
    }
}

impl Gate {
    pub fn new(profile: Latency, seed: u64) -> Gate {
        Gate {
            profile: Mutex::new(profile),
            slots: Mutex::new(Slots::default()),
            freed: Condvar::new(),
            rng: AtomicU64::new(seed | 1),
        }
    }

    pub fn set(&self, profile: Latency) {
        *self.profile.lock().unwrap_or_else(|e| e.into_inner()) = profile;
        self.freed.notify_all();
    }

    pub fn get(&self) -> Latency {
        *self.profile.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most writes that were in flight at once since the last reset (counted whether or not a
    /// cap is set, while any write delay or cap is on).
    pub fn max_in_flight(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .max_in_flight
    }

    pub fn reset_max(&self) {
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        s.max_in_flight = s.in_flight;
    }

    /// Burns the CPU a write of `bytes` (the larger of its request and answer bodies) costs under
    /// the profile, on this thread: spins until the thread's own CPU time has grown by that much
    /// (`/proc/thread-self/schedstat`; wall time where it cannot be read), so a loaded box makes the
    /// write take longer, as it does a real apiserver's.
    pub fn charge_write(&self, bytes: usize) {
        let per_kib = self.get().write_cpu_per_kib;
        if per_kib.is_zero() || bytes == 0 {
            return;
        }
        let cost = per_kib.as_nanos() as u64 * bytes as u64 / 1024;
        let wall = std::time::Instant::now();
        let start = thread_cpu_ns();
        let mut x = 0u64;
        loop {
            for i in 0..5_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let spent = match (start, thread_cpu_ns()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => wall.elapsed().as_nanos() as u64,
            };
            if spent >= cost {
                return;
            }
        }
    }

    /// splitmix64.
    fn random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Waits as the profile says before a request is served. A write first takes a slot (waiting
    /// while the cap is reached) and keeps it, through its delay, until the returned permit is
    /// dropped (after the request is applied). Returns at once, with no permit, when latency is off.
    pub fn enter(&self, method: &str, shutdown: &AtomicBool) -> Option<Permit<'_>> {
        let profile = self.get();
        if profile.is_off() {
            return None;
        }
        let write = !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD");
        if !write {
            std::thread::sleep(profile.read.sample(self.random()));
            return None;
        }
        let mut s = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let cap = self.get().max_concurrent_writes;
            if cap == 0 || s.in_flight < cap || shutdown.load(Ordering::SeqCst) {
                break;
            }
            s = match self.freed.wait_timeout(s, Duration::from_millis(100)) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        drop(s);
        let permit = Permit { gate: self };
        std::thread::sleep(profile.write.sample(self.random()));
        Some(permit)
    }
}

/// Nanoseconds this thread has run on a CPU (the first field of `/proc/thread-self/schedstat`).
pub fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
