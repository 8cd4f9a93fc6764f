//! Watch streams: the plan made under the store lock (where the watch starts, what it filters),
//! the event lines, and the loop that streams chunks until timeoutSeconds, a fault or shutdown.

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::faults::FaultKind;
use super::http;
use super::json::{self, Layout};
use super::resources::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::status;
use super::store::EventType;

/// Everything a watch needs once the lock is released.
pub struct WatchPlan {
    pub res: ResourceDef,
    pub namespace: String,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// Synthetic ADDED events sent first (RV unset or `0`).
    pub initial: Vec<Value>,
    /// Send events with an RV above this.
    pub from_rv: u64,
    /// The RV asked for is compacted: one ERROR event, then the end.
    pub expired: bool,
    pub bookmarks: bool,
    pub timeout: Duration,
    pub fault: Option<FaultKind>,
}

pub fn layout(res: &ResourceDef) -> Layout<'static> {
    if res.custom {
        Layout::Alphabetical
    } else {
        Layout::Go(res.kind)
    }
}

/// `{"type":"ADDED","object":{...}}\n`
pub fn event_line(kind: &str, object: &Value, layout: Layout<'_>) -> Vec<u8> {
    let mut s = String::from("{\"type\":");
    json::write_str(&mut s, kind);
    s.push_str(",\"object\":");
    json::write(&mut s, object, layout, "", false, 0);
    s.push_str("}\n");
    s.into_bytes()
}

/// A BOOKMARK object: only the RV for custom resources; built-ins carry their empty structs.
pub fn bookmark_object(res: &ResourceDef, rv: u64) -> Value {
    let mut obj = json!({
        "kind": res.kind,
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
    });
    if res.custom {
        return obj;
    }
    let extra = match res.plural {
        "services" => json!({"spec": {}, "status": {"loadBalancer": {}}}),
        "nodes" => json!({"spec": {}, "status": {
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                "osImage": "", "containerRuntimeVersion": "", "kubeletVersion": "",
                "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""}}}),
        "namespaces" => json!({"spec": {}, "status": {}}),
        "leases" => json!({"spec": {}}),
        "endpointslices" => json!({"addressType": "", "endpoints": null}),
        "events" => json!({"involvedObject": {}, "reason": "", "message": "", "source": {},
            "firstTimestamp": null, "lastTimestamp": null, "type": "", "eventTime": null,
            "reportingComponent": "", "reportingInstance": ""}),
        _ => json!({}),
    };
    if let (Some(o), Value::Object(e)) = (obj.as_object_mut(), extra) {
        o.extend(e);
    }
    obj
}

impl WatchPlan {
    fn selected(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// The watch event type for a change, after selectors (objects moving in or out of the
    /// selection appear as ADDED or DELETED).
    fn translate(
        &self,
        kind: EventType,
        obj: &Value,
        prev: Option<&Value>,
    ) -> Option<&'static str> {
        let now = self.selected(obj);
        match kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => now.then_some("DELETED"),
            EventType::Modified => {
                let before = prev.is_some_and(|p| self.selected(p));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }
    }
}

/// Why a stream ended.
pub enum End {
    /// Ended cleanly with the last chunk: the connection may serve more requests.
    Clean,
    /// Closed mid-stream (fault or shutdown): the connection must close.
    Abort,
}

/// Streams a watch until its timeout, a fault or shutdown.
pub fn stream(shared: &Shared, plan: WatchPlan, w: &mut impl Write) -> io::Result<End> {
    http::write_stream_head(w)?;
    let layout = layout(&plan.res);
    if plan.expired {
        let st = status::expired_watch("The resourceVersion for the provided watch is too old.");
        http::write_chunk(w, &event_line("ERROR", &st, Layout::Go("Status")))?;
        http::write_last_chunk(w)?;
        return Ok(End::Clean);
    }
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let before = shared.cfg.bookmark_before_timeout.min(plan.timeout / 2);
    let final_bookmark_at = deadline - before;
    let mut next_bookmark = started + shared.cfg.bookmark_interval;
    let mut final_bookmark_sent = false;
    let start_rv = plan.from_rv;
    let mut scanned = plan.from_rv;
    let mut sent = 0usize;

    if let Some(FaultKind::StallStream(d)) = &plan.fault {
        // As documented: silent for `d` whatever the watch's timeout (a live server would end
        // the stream at its timeout; only a dead peer or a partition stays silent past it).
        shared.sleep(*d);
        http::write_last_chunk(w)?;
        return Ok(End::Clean);
    }
    if plan.fault == Some(FaultKind::Garbage) {
        http::write_chunk(w, b"this is not JSON {\"type\":\n")?;
    }
    let end_after = match plan.fault {
        Some(FaultKind::EndEarly(n)) => Some(n),
        _ => None,
    };
    let drop_mid = plan.fault == Some(FaultKind::DropMidObject);

    // Returns Ok(false) when the stream must stop.
    let mut send = |line: Vec<u8>, w: &mut dyn Write| -> io::Result<bool> {
        if end_after.is_some_and(|n| sent >= n) {
            return Ok(false);
        }
        if drop_mid {
            let half = &line[..line.len() / 2];
            http::write_chunk(w, half)?;
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "fault"));
        }
        http::write_chunk(w, &line)?;
        sent += 1;
        Ok(end_after.is_none_or(|n| sent < n))
    };

    let mut stop = false;
    for obj in &plan.initial {
        if !send(event_line("ADDED", obj, layout), w)? {
            stop = true;
            break;
        }
    }
    while !stop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return Ok(End::Abort);
        }
        let (lines, current) = {
            let st = shared.lock();
            let mut lines = Vec::new();
            for ev in st.store.events_after(scanned) {
                if ev.resource != plan.res.plural
                    || !(plan.namespace.is_empty() || ev.namespace == plan.namespace)
                {
                    continue;
                }
                if let Some(t) = plan.translate(ev.kind, &ev.object, ev.prev.as_deref()) {
                    lines.push(event_line(t, &ev.object, layout));
                }
            }
            (lines, st.store.rv)
        };
        scanned = current;
        for line in lines {
            if !send(line, w)? {
                stop = true;
                break;
            }
        }
        if stop {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let bookmark_due =
            now >= next_bookmark || (!final_bookmark_sent && now >= final_bookmark_at);
        if bookmark_due {
            if now >= final_bookmark_at {
                final_bookmark_sent = true;
            }
            while next_bookmark <= now {
                next_bookmark += shared.cfg.bookmark_interval;
            }
            if plan.bookmarks && current > start_rv {
                let obj = bookmark_object(&plan.res, current);
                http::write_chunk(w, &event_line("BOOKMARK", &obj, layout))?;
            }
        }
        let mut wake = deadline.min(next_bookmark);
        if !final_bookmark_sent {
            wake = wake.min(final_bookmark_at);
        }
        let guard = shared.lock();
        if guard.store.rv == scanned && !shared.shutdown.load(Ordering::SeqCst) {
            let wait = wake
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(500));
            let _unused = shared.changed.wait_timeout(guard, wait);
        }
    }
    http::write_last_chunk(w)?;
    Ok(End::Clean)
}
