//! `paperlb explain`'s two outputs: plain text for people, and JSON (`-o json`) with a stable schema
//! (`SCHEMA_VERSION`; the README documents every field). Fields are only ever added within a
//! version.
//! Pure: no I/O, no clock.

use super::facts::Facts;
use super::steps::{Report, Status, Step};
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

pub fn text(r: &Report, f: &Facts) -> String {
    let (events, failed) = (f.events.as_deref().unwrap_or_default(), f.failed_reads());
    let mut out = String::new();
    let _ = writeln!(out, "Service {}", f.key);
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
                e.last_timestamp, e.type_, e.reason, e.count, e.involved_object.kind, e.message
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
    if r.served() {
        let _ = writeln!(out, "served on {served} of {} host(s)", r.hosts.len());
    } else {
        let _ = writeln!(out, "not served");
    }
    out
}

/// The JSON document; its keys come out sorted, as the schema's examples show them.
pub fn json(r: &Report, f: &Facts) -> Value {
    let events = f.events.as_deref().unwrap_or_default().iter();
    let events: Vec<Value> = events
        .map(|e| {
            json!({"object": e.involved_object.kind, "type": e.type_, "reason": e.reason,
                "message": e.message, "count": e.count, "lastTimestamp": e.last_timestamp})
        })
        .collect();
    json!({
        "kind": KIND,
        "version": SCHEMA_VERSION,
        "service": {"namespace": f.key.namespace, "name": f.key.name},
        "served": r.served(),
        "steps": r.steps,
        "hosts": r.hosts,
        "events": events,
        "failedReads": f.failed_reads(),
    })
}
