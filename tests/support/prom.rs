//! A checker for the Prometheus text exposition format (version 0.0.4), for tests that scrape
//! `/metrics`: [`parse`] accepts a page only if every line is a well-formed `# HELP`, `# TYPE`,
//! comment or sample line, and the families are consistent; the result answers value queries.
//!
//! Checked, as Prometheus's own parser (expfmt) does: metric and label name syntax, label value
//! escapes (`\\`, `\"`, `\n` only), HELP escapes (`\\`, `\n`), float values (`+Inf`, `-Inf`, `NaN`),
//! an optional integer timestamp, `\n` line ends with one after the last line, one HELP and one TYPE
//! per family with TYPE before its samples, a family's lines kept together, no duplicate series, no
//! duplicate label names in a series. Histograms: every series has ascending `le` buckets with
//! non-decreasing integer counts, ending in `le="+Inf"`, plus `_sum` and `_count`, and the `+Inf`
//! bucket equals `_count`. Counters: no negative or NaN values.
//! Stricter than Prometheus on purpose: every sample needs a TYPE (our exporters always write one),
//! and empty lines are refused (we never write them).
//!
//! Must not: depend on the paperlb library; it checks what that library writes.

use std::collections::{BTreeMap, BTreeSet};

/// Label (name, value) pairs.
pub type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family: its HELP, TYPE and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    pub help: Option<String>,
    /// counter, gauge, histogram, summary or untyped.
    pub kind: String,
    pub samples: Vec<Sample>,
}

/// A parsed, checked page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// Every sample, in page order.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// The value of the series named `name` with exactly these labels (in any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeSet<(&str, &str)> = labels.iter().copied().collect();
        self.samples()
            .find(|s| {
                s.name == name
                    && s.labels.len() == want.len()
                    && s.labels
                        .iter()
                        .all(|(n, v)| want.contains(&(n.as_str(), v.as_str())))
            })
            .map(|s| s.value)
    }

    /// The sum over every series named `name` that has at least these labels (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples()
            .filter(|s| s.name == name && labels.iter().all(|(n, v)| s.label(n) == Some(*v)))
            .map(|s| s.value)
            .sum()
    }

    /// Label values of `label` over the series named `name`, sorted.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .samples()
            .filter(|s| s.name == name)
            .filter_map(|s| s.label(label).map(str::to_string))
            .collect();
        set.into_iter().collect()
    }
}

/// Parses and checks a page; the error names the line (1-based) and what is wrong with it.
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with \\n".into());
    }
    let mut p = Parser::default();
    // Not `lines()`: it would take a "\r\n" for a line end.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines = body.split('\n').filter(|_| !text.is_empty());
    for (i, line) in lines.enumerate() {
        p.line(line)
            .map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
    }
    p.finish()
}

#[derive(Default)]
struct Parser {
    families: Vec<Family>,
    /// Index of the family the last line belonged to.
    current: Option<usize>,
    /// Families whose lines have ended (another family's line came after them).
    closed: BTreeSet<String>,
    /// (sample name, sorted labels) of every series seen.
    series: BTreeSet<(String, Labels)>,
    /// Families with a TYPE line, and whether they had samples when it came.
    typed: BTreeSet<String>,
    helped: BTreeSet<String>,
}

impl Parser {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.contains('\r') {
            return Err("carriage return in a line".into());
        }
        if line.is_empty() {
            return Err("empty line".into());
        }
        if let Some(rest) = line.strip_prefix('#') {
            return self.comment(rest);
        }
        let sample = sample(line)?;
        let at = self.family_of(&sample.name).ok_or_else(|| {
            format!(
                "sample {} has no # TYPE line before it (or does not fit its family's type)",
                sample.name
            )
        })?;
        self.enter(at)?;
        let mut key_labels = sample.labels.clone();
        key_labels.sort();
        if key_labels.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("a label name appears twice".into());
        }
        if !self.series.insert((sample.name.clone(), key_labels)) {
            return Err("duplicate series".into());
        }
        let fam = &mut self.families[at];
        if fam.kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
            return Err("a counter must not be negative or NaN".into());
        }
        if fam.kind != "histogram" && sample.label("le").is_some() {
            return Err("label le outside a histogram's _bucket".into());
        }
        fam.samples.push(sample);
        Ok(())
    }

    fn comment(&mut self, rest: &str) -> Result<(), String> {
        let Some(rest) = rest.strip_prefix(' ') else {
            return Ok(()); // "#foo": a plain comment
        };
        let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        match keyword {
            "HELP" => {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                check_metric_name(name)?;
                let help = unescape_help(help)?;
                let at = self.declare(name)?;
                if !self.helped.insert(name.to_string()) {
                    return Err(format!("second HELP for {name}"));
                }
                self.families[at].help = Some(help);
                Ok(())
            }
            "TYPE" => {
                let (name, kind) = rest.split_once(' ').ok_or("TYPE needs a name and a type")?;
                check_metric_name(name)?;
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(format!("unknown type {kind:?}"));
                }
                let at = self.declare(name)?;
                if !self.typed.insert(name.to_string()) {
                    return Err(format!("second TYPE for {name}"));
                }
                if !self.families[at].samples.is_empty() {
                    return Err(format!("TYPE for {name} after its samples"));
                }
                self.families[at].kind = kind.to_string();
                Ok(())
            }
            _ => Ok(()), // any other comment
        }
    }

    /// The family a HELP or TYPE line names, created if new; it becomes the current one.
    fn declare(&mut self, name: &str) -> Result<usize, String> {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help: None,
                    kind: "untyped".into(),
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        self.enter(at)?;
        Ok(at)
    }

    /// Moves to family `at`; coming back to a family after another one's lines is an error.
    fn enter(&mut self, at: usize) -> Result<(), String> {
        if self.current == Some(at) {
            return Ok(());
        }
        let name = self.families[at].name.clone();
        if self.closed.contains(&name) {
            return Err(format!("the lines of family {name} are not together"));
        }
        if let Some(prev) = self.current {
            self.closed.insert(self.families[prev].name.clone());
        }
        self.current = Some(at);
        Ok(())
    }

    /// A typed family this sample belongs to: its own name, or a histogram/summary's suffixes.
    fn family_of(&self, sample: &str) -> Option<usize> {
        let typed = |name: &str| {
            self.families
                .iter()
                .position(|f| f.name == name && self.typed.contains(name))
        };
        if let Some(at) = typed(sample) {
            let kind = self.families[at].kind.as_str();
            // A histogram has no sample under its bare name.
            return (kind != "histogram").then_some(at);
        }
        for (suffix, kinds) in [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"]),
            ("_count", &["histogram", "summary"]),
        ] {
            if let Some(base) = sample.strip_suffix(suffix)
                && let Some(at) = typed(base)
                && kinds.contains(&self.families[at].kind.as_str())
            {
                return Some(at);
            }
        }
        None
    }

    fn finish(self) -> Result<Exposition, String> {
        for f in &self.families {
            if f.kind == "histogram" {
                check_histogram(f)?;
            }
            if f.kind == "summary" {
                for s in f.samples.iter().filter(|s| s.name == f.name) {
                    if s.label("quantile").is_none() {
                        return Err(format!("summary {}: a sample without quantile", f.name));
                    }
                }
            }
        }
        Ok(Exposition {
            families: self.families,
        })
    }
}

/// Per series (labels without `le`): buckets ascending by `le`, cumulative counts, `+Inf` last and
/// equal to `_count`, and a `_sum`.
fn check_histogram(f: &Family) -> Result<(), String> {
    type Key = Labels;
    let key = |s: &Sample| -> Key {
        let mut k: Key = s
            .labels
            .iter()
            .filter(|(n, _)| n != "le")
            .cloned()
            .collect();
        k.sort();
        k
    };
    let mut buckets: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    let mut sums: BTreeMap<Key, f64> = BTreeMap::new();
    let mut counts: BTreeMap<Key, f64> = BTreeMap::new();
    let name = &f.name;
    for s in &f.samples {
        if s.name.ends_with("_bucket") {
            let le = s
                .label("le")
                .ok_or_else(|| format!("histogram {name}: a bucket without le"))?;
            let bound: f64 = parse_float(le)
                .ok_or_else(|| format!("histogram {name}: le={le:?} is not a number"))?;
            if bound.is_nan() {
                return Err(format!("histogram {name}: le is NaN"));
            }
            if !is_count(s.value) {
                return Err(format!(
                    "histogram {name}: bucket count {} is not a count",
                    s.value
                ));
            }
            buckets.entry(key(s)).or_default().push((bound, s.value));
        } else {
            if s.label("le").is_some() {
                return Err(format!("histogram {name}: le on {}", s.name));
            }
            if s.name.ends_with("_sum") {
                sums.insert(key(s), s.value);
            } else {
                if !is_count(s.value) {
                    return Err(format!(
                        "histogram {name}: _count {} is not a count",
                        s.value
                    ));
                }
                counts.insert(key(s), s.value);
            }
        }
    }
    let keys: BTreeSet<&Key> = buckets
        .keys()
        .chain(sums.keys())
        .chain(counts.keys())
        .collect();
    for k in keys {
        let series = format!("histogram {name}{k:?}");
        let b = buckets
            .get(k)
            .ok_or_else(|| format!("{series}: no buckets"))?;
        for w in b.windows(2) {
            if w[1].0 <= w[0].0 {
                return Err(format!(
                    "{series}: le {} after {}: not ascending",
                    w[1].0, w[0].0
                ));
            }
            if w[1].1 < w[0].1 {
                return Err(format!("{series}: bucket counts go down at le {}", w[1].0));
            }
        }
        let (last_le, last_count) = b[b.len() - 1];
        if last_le != f64::INFINITY {
            return Err(format!("{series}: no le=\"+Inf\" bucket"));
        }
        let count = counts
            .get(k)
            .ok_or_else(|| format!("{series}: no _count"))?;
        if *count != last_count {
            return Err(format!(
                "{series}: _count {count} differs from the +Inf bucket {last_count}"
            ));
        }
        if !sums.contains_key(k) {
            return Err(format!("{series}: no _sum"));
        }
    }
    Ok(())
}

fn is_count(v: f64) -> bool {
    v >= 0.0 && v.fract() == 0.0
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!("invalid label name {name:?}"));
    }
    if name.starts_with("__") {
        return Err(format!("label name {name:?} is reserved"));
    }
    Ok(())
}

/// Go's ParseFloat as expfmt uses it, for the forms an exporter writes (no hex floats).
fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with("0x") || s.starts_with("0X") {
        return None;
    }
    s.parse().ok()
}

/// `name{label="value",...} value [timestamp]`
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' ', '\t'])
        .ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(after)?;
        labels = parsed;
        rest = after;
    }
    let rest = rest
        .strip_prefix(' ')
        .or_else(|| rest.strip_prefix('\t'))
        .ok_or("no blank between the series and its value")?;
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = fields.next().ok_or("no value")?;
    let value = parse_float(value).ok_or_else(|| format!("value {value:?} is not a number"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("timestamp {ts:?} is not an integer"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The labels after `{`, and what follows the closing `}`. A trailing comma is allowed.
fn label_set(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("a label without =")?;
        let name = &s[..eq];
        check_label_name(name)?;
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name}: value not quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {name}: unterminated value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => {
                        return Err(format!(
                            "label {name}: invalid escape \\{}",
                            other.map_or(String::new(), |(_, c)| c.to_string())
                        ));
                    }
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((name.to_string(), value));
        s = &s[end + 1..];
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        } else if !s.starts_with('}') {
            return Err(format!("label {name}: expected , or }} after the value"));
        }
    }
}

/// HELP text: `\\` and `\n` are the only escapes.
fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            other => {
                return Err(format!(
                    "invalid escape \\{} in HELP",
                    other.map_or(String::new(), |c| c.to_string())
                ));
            }
        }
    }
    Ok(out)
}
