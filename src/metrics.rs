//! Counters, gauges and histograms with labels, and their Prometheus text exposition (format 0.0.4).
//! Shared by the controller and the nginx-updater.
//!
//! Owns: metric families, their series and rendering. Handles are cheap clones (an `Arc`), so a
//! component is handed the few it updates. Must not: do I/O or know about HTTP (the caller serves
//! `render()`), or grow without bound: label values come from code, never from raw request data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default histogram buckets, in seconds: 1 ms to 60 s.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Clone, Default)]
struct Series {
    /// Counter or gauge value; histogram sum.
    value: f64,
    /// Histogram only: cumulative counts per bucket, then the total count.
    buckets: Vec<u64>,
    count: u64,
}

impl Series {
    fn of(value: f64) -> Series {
        Series {
            value,
            ..Series::default()
        }
    }
}

/// Samples of a family read at render time: (label values, value) pairs.
pub type Samples = Vec<(Vec<String>, f64)>;

/// Reads the samples of a collected family from state another component owns (atomics a thread
/// keeps, a client's request counts), so nothing is copied between scrapes.
struct Collector(Box<dyn Fn() -> Samples + Send + Sync>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    /// `counter`, `gauge` or `histogram`, as the exposition's `# TYPE` line names it.
    kind: &'static str,
    labels: Vec<String>,
    bounds: Vec<f64>,
    series: Mutex<BTreeMap<Vec<String>, Series>>,
    /// Counters and gauges only: samples come from here instead of `series`.
    collect: Option<Collector>,
}

/// A panic elsewhere must not take the metrics down with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Family {
    fn with(&self, values: &[&str], f: impl FnOnce(&mut Series)) {
        // A wrong label count is a programming error; keep the series apart rather than panic.
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut map = lock(&self.series);
        let s = map.entry(key).or_insert_with(|| Series {
            buckets: vec![0; self.bounds.len()],
            ..Series::default()
        });
        f(s);
    }
}

/// A set of metric families rendered together.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Arc<Family>>>>,
}

/// A monotonically increasing counter family.
#[derive(Debug, Clone)]
pub struct Counter(Arc<Family>);
/// A gauge family: set to any value.
#[derive(Debug, Clone)]
pub struct Gauge(Arc<Family>);
/// A histogram family with fixed bucket bounds.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<Family>);

impl Registry {
    fn add(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[&str],
        bounds: &[f64],
        collect: Option<Collector>,
    ) -> Arc<Family> {
        let f = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            bounds: bounds.to_vec(),
            series: Mutex::new(BTreeMap::new()),
            collect,
        });
        lock(&self.families).push(f.clone());
        f
    }

    /// Registers a counter family with these label names (`&[]` for none).
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Counter {
        Counter(self.add(name, help, "counter", labels, &[], None))
    }

    /// Registers a counter family whose samples `collect` reads at render time from totals kept
    /// elsewhere (they must only go up). Each sample has one value per label name.
    pub fn counter_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        collect: impl Fn() -> Samples + Send + Sync + 'static,
    ) {
        let c = Some(Collector(Box::new(collect)));
        self.add(name, help, "counter", labels, &[], c);
    }

    /// Registers a gauge family whose samples `collect` reads at render time.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        collect: impl Fn() -> Samples + Send + Sync + 'static,
    ) {
        let c = Some(Collector(Box::new(collect)));
        self.add(name, help, "gauge", labels, &[], c);
    }

    /// Registers a gauge family.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Gauge {
        Gauge(self.add(name, help, "gauge", labels, &[], None))
    }

    /// Registers a histogram family with ascending bucket upper bounds (`+Inf` is implied).
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Histogram {
        Histogram(self.add(name, help, "histogram", labels, buckets, None))
    }

    /// Prometheus text exposition of every family, in registration order.
    pub fn render(&self) -> String {
        let families = lock(&self.families).clone();
        let mut out = String::new();
        for f in families {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            let series = match &f.collect {
                Some(collect) => collected(&f, collect),
                None => lock(&f.series).clone(),
            };
            for (values, s) in &series {
                let labels = label_text(&f.labels, values, None);
                if f.kind != "histogram" {
                    let _ = writeln!(out, "{}{labels} {}", f.name, num(s.value));
                    continue;
                }
                for (bound, n) in f.bounds.iter().zip(&s.buckets) {
                    let l = label_text(&f.labels, values, Some(&num(*bound)));
                    let _ = writeln!(out, "{}_bucket{l} {n}", f.name);
                }
                let l = label_text(&f.labels, values, Some("+Inf"));
                let _ = writeln!(out, "{}_bucket{l} {}", f.name, s.count);
                let _ = writeln!(out, "{}_sum{labels} {}", f.name, num(s.value));
                let _ = writeln!(out, "{}_count{labels} {}", f.name, s.count);
            }
        }
        out
    }
}

/// A collector's samples as series, sorted by label values; a sample with the wrong number of
/// label values is a programming error and is left out rather than rendered malformed.
fn collected(f: &Family, collect: &Collector) -> BTreeMap<Vec<String>, Series> {
    let samples = (collect.0)().into_iter();
    let right = samples.filter(|(values, _)| values.len() == f.labels.len());
    right.map(|(values, v)| (values, Series::of(v))).collect()
}

impl Counter {
    pub fn inc(&self, labels: &[&str]) {
        self.0.with(labels, |s| s.value += 1.0);
    }
    /// Current value (0 for a series never touched).
    #[cfg(test)]
    pub fn get(&self, labels: &[&str]) -> f64 {
        get(&self.0, labels)
    }
}

impl Gauge {
    pub fn set(&self, labels: &[&str], v: f64) {
        self.0.with(labels, |s| s.value = v);
    }
    #[cfg(test)]
    pub fn get(&self, labels: &[&str]) -> f64 {
        get(&self.0, labels)
    }
    /// Replaces every series at once: series not in `samples` disappear (a deleted config's ports),
    /// and a concurrent render sees either the old set or the new one.
    pub fn replace_all(&self, samples: Samples) {
        let mut map = lock(&self.0.series);
        *map = samples
            .into_iter()
            .map(|(k, v)| (k, Series::of(v)))
            .collect();
    }
}

impl Histogram {
    pub fn observe(&self, labels: &[&str], v: f64) {
        let bounds = &self.0.bounds;
        self.0.with(labels, |s| {
            for (b, n) in bounds.iter().zip(s.buckets.iter_mut()) {
                if v <= *b {
                    *n += 1;
                }
            }
            s.count += 1;
            s.value += v;
        });
    }
    /// Number of observations.
    #[cfg(test)]
    pub fn count(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|v| v.to_string()).collect();
        lock(&self.0.series).get(&key).map_or(0, |s| s.count)
    }
}

#[cfg(test)]
fn get(f: &Family, labels: &[&str]) -> f64 {
    let key: Vec<String> = labels.iter().map(|v| v.to_string()).collect();
    lock(&f.series).get(&key).map_or(0.0, |s| s.value)
}

fn label_text(names: &[String], values: &[String], le: Option<&str>) -> String {
    let pairs = (names.iter().zip(values)).map(|(n, v)| format!("{n}=\"{}\"", escape_value(v)));
    let parts: Vec<String> = pairs.chain(le.map(|le| format!("le=\"{le}\""))).collect();
    match parts.is_empty() {
        true => String::new(),
        false => format!("{{{}}}", parts.join(",")),
    }
}

fn num(v: f64) -> String {
    match v {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        // Rust writes NaN as Prometheus does.
        _ => v.to_string(),
    }
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_prometheus_reads_them() {
        let cases = [
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.25, "0.25"),
            (3.0, "3"),
            (-1.5, "-1.5"),
        ];
        for (v, text) in cases {
            assert_eq!(num(v), text, "{v}");
        }
    }

    #[test]
    fn renders_counters_gauges_and_histograms_in_text_format() {
        let r = Registry::default();
        let c = r.counter("x_requests_total", "Requests.", &["route", "code"]);
        for _ in 0..3 {
            c.inc(&["POST /a", "200"]);
        }
        c.inc(&["weird\"\\\n", "500"]);
        let g = r.gauge("x_last_reload_timestamp_seconds", "Last reload.", &[]);
        g.set(&[], 1700000000.0);
        let h = r.histogram("x_apply_seconds", "Apply time.", &[], &[0.1, 1.0]);
        h.observe(&[], 0.05);
        h.observe(&[], 0.5);
        h.observe(&[], 5.0);
        assert_eq!(c.get(&["POST /a", "200"]), 3.0);
        assert_eq!(h.count(&[]), 3);
        let text = r.render();
        let want = "\
# HELP x_requests_total Requests.
# TYPE x_requests_total counter
x_requests_total{route=\"POST /a\",code=\"200\"} 3
x_requests_total{route=\"weird\\\"\\\\\\n\",code=\"500\"} 1
# HELP x_last_reload_timestamp_seconds Last reload.
# TYPE x_last_reload_timestamp_seconds gauge
x_last_reload_timestamp_seconds 1700000000
# HELP x_apply_seconds Apply time.
# TYPE x_apply_seconds histogram
x_apply_seconds_bucket{le=\"0.1\"} 1
x_apply_seconds_bucket{le=\"1\"} 2
x_apply_seconds_bucket{le=\"+Inf\"} 3
x_apply_seconds_sum 5.55
x_apply_seconds_count 3
";
        assert_eq!(text, want);
    }

    #[test]
    fn collected_families_show_the_owners_value_at_render_time() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let r = Registry::default();
        let n = Arc::new(AtomicU64::new(0));
        let held = n.clone();
        r.counter_fn("x_events_total", "Events.", &["resource"], move || {
            vec![
                (vec!["services".into()], held.load(Ordering::Relaxed) as f64),
                // Wrong label count: left out, not rendered malformed.
                (vec!["a".into(), "b".into()], 1.0),
            ]
        });
        r.gauge_fn("x_up", "Up.", &[], || vec![(vec![], 1.0)]);
        let want = |v: u64| {
            format!(
                "# HELP x_events_total Events.\n# TYPE x_events_total counter\n\
                 x_events_total{{resource=\"services\"}} {v}\n\
                 # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
            )
        };
        assert_eq!(r.render(), want(0));
        n.store(7, Ordering::Relaxed);
        assert_eq!(r.render(), want(7));
    }

    #[test]
    fn replace_all_drops_the_series_it_is_not_given() {
        let r = Registry::default();
        let g = r.gauge("x_ports", "Ports.", &["config"]);
        g.set(&["old"], 3.0);
        g.replace_all(vec![(vec!["new".into()], 5.0)]);
        assert_eq!((g.get(&["old"]), g.get(&["new"])), (0.0, 5.0));
        assert!(!r.render().contains("old"), "{}", r.render());
    }
}
