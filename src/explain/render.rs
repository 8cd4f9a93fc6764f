//! `paperlb explain`'s two outputs: plain text for people, and JSON (`-o json`) with a stable schema
//! (`SCHEMA_VERSION`; the README documents every field). Fields are only ever added within a
//! version.
//! Pure: no I/O, no clock.

use super::facts::{EventLine, ReadError};
use super::steps::{HostReport, Report, Status, Step};
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write as _;

pub const SCHEMA_VERSION: u32 = 1;
pub const KIND: &str = "PaperlbExplanation";

fn mark(s: Status) -> &'static str {
    match s {
        Status::Ok => "✓",
        Status::Fail => "✗",
        Status::Unknown => "?",
    }
}

fn step_lines(out: &mut String, indent: &str, steps: &[Step]) {
    for s in steps {
        let _ = writeln!(out, "{indent}{} {:<12} {}", mark(s.status), s.id, s.message);
        if let Some(fix) = &s.fix {
            let _ = writeln!(out, "{indent}  {:<12} fix: {fix}", "");
        }
    }
}

pub fn text(r: &Report, events: &[EventLine], failed: &[&ReadError]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Service {}", r.key);
    step_lines(&mut out, "", &r.steps);
    for h in &r.hosts {
        let _ = writeln!(out, "host {} (updater {})", h.host.name, h.host.url);
        step_lines(&mut out, "  ", &h.steps);
    }
    if !events.is_empty() {
        let _ = writeln!(out, "recent events:");
        for e in events {
            let _ = writeln!(
                out,
                "  {} {} {} x{} on {}: {}",
                e.last_timestamp, e.type_, e.reason, e.count, e.kind, e.message
            );
        }
    }
    if !failed.is_empty() {
        let _ = writeln!(out, "could not read:");
        for e in failed {
            let _ = writeln!(out, "  {}: {} (needs {})", e.what, e.message, e.needs);
        }
    }
    let served = r.hosts.iter().filter(|h| h.served).count();
    if r.served {
        let _ = writeln!(out, "served on {served} of {} host(s)", r.hosts.len());
    } else {
        let _ = writeln!(out, "not served");
    }
    out
}

/// The JSON document; `to_value` sorts its keys, as the schema's examples show them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a> {
    kind: &'static str,
    version: u32,
    service: Value,
    served: bool,
    steps: &'a [Step],
    hosts: &'a [HostReport],
    events: &'a [EventLine],
    failed_reads: &'a [&'a ReadError],
}

pub fn json(r: &Report, events: &[EventLine], failed: &[&ReadError]) -> Value {
    let doc = Doc {
        kind: KIND,
        version: SCHEMA_VERSION,
        service: json!({"namespace": r.key.namespace, "name": r.key.name}),
        served: r.served,
        steps: &r.steps,
        hosts: &r.hosts,
        events,
        failed_reads: failed,
    };
    serde_json::to_value(doc).unwrap_or_default()
}
