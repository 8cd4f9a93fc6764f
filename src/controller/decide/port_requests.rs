//! LB ports a Service asks for with the annotation
//! `lb.paperlb.com/lb-ports: "<port name or number>=<lbPort>,..."`: reading it, and deciding for each
//! Service port whether its request is granted, refused (outside the config's range, held by another
//! LoadBalancer, asked twice, unreadable) or absent. `ports::allocate_ports` stays the one
//! allocator: a granted port goes to it as the port to keep, so an unrequested port never takes it.
//! Also the `PortRequest` condition that says how the requests fared.
//!
//! A refused request never takes the port from its holder. The port keeps the LB port it had, if
//! that is still valid; a port that had none is left out of the spec (not pushed) until the request
//! can be granted: the cache requeues the Services asking for a port when a LoadBalancer lets it go.
//!
//! Pure: no I/O, no clock. Must not: decide what "free" means (the caller's `holder` does).

use super::ports::PortRequest;
use super::status::set_condition;
use super::traffic::record_fault;
use crate::controller::key::Key;
use crate::model::{LoadBalancerStatus, Protocol, Service};

pub const LB_PORTS_ANNOTATION: &str = "lb.paperlb.com/lb-ports";
/// Condition on the LoadBalancer: True when every requested port is granted.
pub const PORT_REQUEST: &str = "PortRequest";

/// One readable entry of the annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The Service port as the user wrote it (name or number).
    pub written: String,
    /// Index of that port in `spec.ports`.
    pub index: usize,
    pub lb_port: u16,
}

/// A request that cannot be granted now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The Service port it concerns, when known (that port is not allocated a new LB port).
    pub index: Option<usize>,
    /// `PortUnavailable` (held, outside the range, asked twice) or `InvalidAnnotation`.
    pub reason: &'static str,
    pub message: String,
}

/// Every entry of the annotation, and a fault for each one that cannot be read (the others stand).
pub fn parse(svc: &Service) -> (Vec<Entry>, Vec<Fault>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut faults = Vec::new();
    let Some(text) = svc.metadata.annotations.get(LB_PORTS_ANNOTATION) else {
        return (entries, faults);
    };
    let invalid = |index, message: String| Fault {
        index,
        reason: "InvalidAnnotation",
        message: format!("annotation {LB_PORTS_ANNOTATION}: {message}"),
    };
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((port, lb_port)) = entry.split_once('=') else {
            let message = format!("{entry:?} is not <port name or number>=<lbPort>");
            faults.push(invalid(None, message));
            continue;
        };
        let (port, lb_port) = (port.trim(), lb_port.trim());
        // A number names every port that has it (53/TCP and 53/UDP), a name its one port.
        let indexes: Vec<usize> = svc
            .spec
            .ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name.as_deref() == Some(port) || p.port.to_string() == port)
            .map(|(i, _)| i)
            .collect();
        let Some(&first) = indexes.first() else {
            let message = format!("{entry:?}: the Service has no port {port:?}");
            faults.push(invalid(None, message));
            continue;
        };
        let Some(lb_port) = lb_port.parse::<u16>().ok().filter(|p| *p > 0) else {
            let message = format!("{entry:?}: {lb_port:?} is not a port number (1-65535)");
            faults.push(invalid(Some(first), message));
            continue;
        };
        for index in indexes {
            if entries.iter().any(|x| x.index == index) {
                let message = format!("{entry:?}: port {port:?} is listed twice");
                faults.push(invalid(Some(index), message));
            } else {
                entries.push(Entry {
                    written: port.to_string(),
                    index,
                    lb_port,
                });
            }
        }
    }
    (entries, faults)
}

/// What a Service's ports get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Per Service port: its request to `allocate_ports`, or None (not served for now).
    pub requests: Vec<Option<PortRequest>>,
    pub faults: Vec<Fault>,
    /// The Service has the annotation.
    pub annotated: bool,
}

/// Decides the requests of `svc` over `previous` (what `ports::previous_ports` found for each of its
/// ports). `holder(port, protocol)` names the LoadBalancer other than this one holding that pair on
/// the config's host(s); `range` is the config's (low, high) and `config` its namespace/name.
pub fn decide<'a>(
    svc: &Service,
    previous: Vec<PortRequest>,
    (low, high): (u16, u16),
    config: &str,
    holder: &dyn Fn(u16, Protocol) -> Option<&'a Key>,
) -> Decision {
    let annotated = svc.metadata.annotations.contains_key(LB_PORTS_ANNOTATION);
    let (entries, mut faults) = parse(svc);
    let mut granted: Vec<(usize, (u16, Protocol))> = Vec::new();
    for e in &entries {
        let Some(r) = previous.get(e.index) else {
            continue;
        };
        let pair = (e.lb_port, r.protocol);
        let asked = format!(
            "port {} asks for LB port {}/{} ({LB_PORTS_ANNOTATION})",
            e.written,
            e.lb_port,
            r.protocol.as_str()
        );
        let refuse = |message: String| Fault {
            index: Some(e.index),
            reason: "PortUnavailable",
            message,
        };
        if !(low..=high).contains(&e.lb_port) {
            faults.push(refuse(format!(
                "{asked}, outside the range {low}-{high} of LoadBalancerConfig {config}"
            )));
        } else if let Some(h) = holder(e.lb_port, r.protocol) {
            faults.push(refuse(format!(
                "{asked}, held by LoadBalancer {h}; it is granted once {h} lets it go"
            )));
        } else if granted.iter().any(|(_, p)| *p == pair) {
            faults.push(refuse(format!(
                "{asked}, which another port of this Service asks for"
            )));
        } else {
            granted.push((e.index, pair));
        }
    }
    let refused: Vec<usize> = faults.iter().filter_map(|f| f.index).collect();
    let requests = previous
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if let Some((_, pair)) = granted.iter().find(|(g, _)| *g == i) {
                r.previous = Some(*pair);
                return Some(r);
            }
            // A granted pair is this port's; nobody else keeps it.
            if r.previous
                .is_some_and(|p| granted.iter().any(|(_, g)| *g == p))
            {
                r.previous = None;
            }
            if refused.contains(&i) {
                // Keeps what it had while that is valid; gets nothing new.
                let keeps = r.previous.is_some_and(|(port, proto)| {
                    proto == r.protocol
                        && (low..=high).contains(&port)
                        && holder(port, proto).is_none()
                });
                return keeps.then_some(r);
            }
            Some(r)
        })
        .collect();
    Decision {
        requests,
        faults,
        annotated,
    }
}

/// Sets `PortRequest` on `status` (True when every request is granted, False naming each fault;
/// removed when the Service has no annotation). Returns the Warning Event `(reason, message)` to
/// post when a fault is new (not on every reconcile).
pub fn record(
    status: &mut LoadBalancerStatus,
    decision: &Decision,
    at: (&str, Option<i64>),
) -> Option<(&'static str, String)> {
    let fault = (decision.faults.first()).map(|first| (first.reason, summary(&decision.faults)));
    if decision.annotated && fault.is_none() {
        let message = "every requested LB port is allocated";
        let (c, (now, generation)) = (&mut status.conditions, at);
        set_condition(c, PORT_REQUEST, true, "Granted", message, now, generation);
        return None;
    }
    record_fault(status, PORT_REQUEST, fault, at)
}

/// The faults as one sentence (when no port at all can be served).
pub fn summary(faults: &[Fault]) -> String {
    let messages: Vec<&str> = faults.iter().map(|f| f.message.as_str()).collect();
    messages.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Protocol::{Tcp, Udp};
    use serde_json::json;

    fn svc(annotation: Option<&str>) -> Service {
        let mut v = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "admin", "port": 9000, "protocol": "TCP"}]}});
        if let Some(a) = annotation {
            v["metadata"]["annotations"] = json!({LB_PORTS_ANNOTATION: a});
        }
        serde_json::from_value(v).unwrap()
    }

    fn prev(p: [Option<u16>; 3]) -> Vec<PortRequest> {
        let names = [("http", Tcp), ("dns", Udp), ("admin", Tcp)];
        names
            .iter()
            .zip(p)
            .map(|((_, proto), p)| PortRequest {
                protocol: *proto,
                previous: p.map(|p| (p, *proto)),
            })
            .collect()
    }

    fn kept(d: &Decision) -> Vec<Option<Option<u16>>> {
        d.requests
            .iter()
            .map(|r| r.as_ref().map(|r| r.previous.map(|p| p.0)))
            .collect()
    }

    fn nobody<'a>(_: u16, _: Protocol) -> Option<&'a Key> {
        None
    }

    #[test]
    fn entries_by_name_or_number_and_each_bad_one_named() {
        let (e, f) = parse(&svc(Some(" http = 8150 ,53=8053,, ")));
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(
            e,
            [
                Entry {
                    written: "http".into(),
                    index: 0,
                    lb_port: 8150
                },
                Entry {
                    written: "53".into(),
                    index: 1,
                    lb_port: 8053
                }
            ]
        );
        let (e, f) = parse(&svc(Some(
            "http,nope=1,dns=0,admin=70000,admin=8001,admin=8002",
        )));
        assert_eq!(
            e,
            [Entry {
                written: "admin".into(),
                index: 2,
                lb_port: 8001
            }]
        );
        let got: Vec<(Option<usize>, &str)> =
            f.iter().map(|f| (f.index, f.message.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    None,
                    "annotation lb.paperlb.com/lb-ports: \"http\" is not <port name or number>=<lbPort>"
                ),
                (
                    None,
                    "annotation lb.paperlb.com/lb-ports: \"nope=1\": the Service has no port \"nope\""
                ),
                (
                    Some(1),
                    "annotation lb.paperlb.com/lb-ports: \"dns=0\": \"0\" is not a port number (1-65535)"
                ),
                (
                    Some(2),
                    "annotation lb.paperlb.com/lb-ports: \"admin=70000\": \"70000\" is not a port number (1-65535)"
                ),
                (
                    Some(2),
                    "annotation lb.paperlb.com/lb-ports: \"admin=8002\": port \"admin\" is listed twice"
                ),
            ]
        );
        assert_eq!(parse(&svc(None)), (vec![], vec![]));

        // A number that two ports share (53/TCP and 53/UDP) asks for both.
        let mut dns = svc(Some("53=8053"));
        let tcp = serde_json::json!({"name": "dns-tcp", "port": 53, "protocol": "TCP"});
        dns.spec
            .ports
            .insert(1, serde_json::from_value(tcp).unwrap());
        let (e, f) = parse(&dns);
        assert!(f.is_empty(), "{f:?}");
        let asked: Vec<(usize, u16)> = e.iter().map(|e| (e.index, e.lb_port)).collect();
        assert_eq!(asked, [(1, 8053), (2, 8053)]);
    }

    #[test]
    fn decisions_table() {
        let front = Key::new("shop", "front");
        let holder_of_8150 =
            |p: u16, proto: Protocol| ((p, proto) == (8150, Tcp)).then_some(&front);
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            [Option<u16>; 3],
            &'a dyn Fn(u16, Protocol) -> Option<&'a Key>,
            Vec<Option<Option<u16>>>,
            usize,
        );
        let cases: Vec<Case> = vec![
            (
                "no annotation: as before",
                None,
                [Some(8100), None, Some(8101)],
                &nobody,
                vec![Some(Some(8100)), Some(None), Some(Some(8101))],
                0,
            ),
            (
                "granted: kept as the port's own",
                Some("http=8150"),
                [None, None, None],
                &nobody,
                vec![Some(Some(8150)), Some(None), Some(None)],
                0,
            ),
            (
                "granted over another port's previous",
                Some("http=8101"),
                [Some(8100), None, Some(8101)],
                &nobody,
                vec![Some(Some(8101)), Some(None), Some(None)],
                0,
            ),
            (
                "held: a new port waits, not served",
                Some("http=8150"),
                [None, None, None],
                &holder_of_8150,
                vec![None, Some(None), Some(None)],
                1,
            ),
            (
                "held: an allocated port keeps its own meanwhile",
                Some("http=8150"),
                [Some(8100), None, None],
                &holder_of_8150,
                vec![Some(Some(8100)), Some(None), Some(None)],
                1,
            ),
            (
                "outside the range",
                Some("http=53"),
                [None, None, None],
                &nobody,
                vec![None, Some(None), Some(None)],
                1,
            ),
            (
                "the same pair twice: the second waits",
                Some("http=8150,admin=8150"),
                [None, None, None],
                &nobody,
                vec![Some(Some(8150)), Some(None), None],
                1,
            ),
            (
                "tcp and udp may share a number",
                Some("http=8150,dns=8150"),
                [None, None, None],
                &nobody,
                vec![Some(Some(8150)), Some(Some(8150)), Some(None)],
                0,
            ),
            (
                "an unreadable lbPort: that port waits",
                Some("http=x"),
                [None, None, None],
                &nobody,
                vec![None, Some(None), Some(None)],
                1,
            ),
            (
                "an unknown port: the others are untouched",
                Some("web=8150"),
                [Some(8100), None, None],
                &nobody,
                vec![Some(Some(8100)), Some(None), Some(None)],
                1,
            ),
        ];
        for (name, annotation, previous, holder, want, faults) in cases {
            let d = decide(
                &svc(annotation),
                prev(previous),
                (8100, 8199),
                "paperlb-system/edge",
                holder,
            );
            assert_eq!(kept(&d), want, "{name}");
            assert_eq!(d.faults.len(), faults, "{name}: {:?}", d.faults);
            assert_eq!(d.annotated, annotation.is_some(), "{name}");
        }
    }

    #[test]
    fn a_conflict_names_the_holder_and_the_range_names_the_config() {
        let front = Key::new("shop", "front");
        let holder = |_: u16, _: Protocol| Some(&front);
        let d = decide(
            &svc(Some("http=8150")),
            prev([None; 3]),
            (8100, 8199),
            "paperlb-system/edge",
            &holder,
        );
        assert_eq!(
            d.faults[0].message,
            "port http asks for LB port 8150/TCP (lb.paperlb.com/lb-ports), held by LoadBalancer \
             shop/front; it is granted once shop/front lets it go"
        );
        let d = decide(
            &svc(Some("dns=53")),
            prev([None; 3]),
            (8100, 8199),
            "paperlb-system/edge",
            &nobody,
        );
        assert_eq!(
            d.faults[0].message,
            "port dns asks for LB port 53/UDP (lb.paperlb.com/lb-ports), outside the range \
             8100-8199 of LoadBalancerConfig paperlb-system/edge"
        );
    }

    #[test]
    fn the_condition_follows_the_decision_and_an_event_comes_once_per_new_fault() {
        let front = Key::new("shop", "front");
        let holder = |_: u16, _: Protocol| Some(&front);
        let held = decide(
            &svc(Some("http=8150")),
            prev([None; 3]),
            (8100, 8199),
            "edge",
            &holder,
        );
        let mut status = LoadBalancerStatus::default();
        let event = record(&mut status, &held, ("t1", Some(1)));
        assert_eq!(event.map(|e| e.0), Some("PortUnavailable"));
        assert_eq!(status.conditions[0].status, "False");
        assert!(status.conditions[0].message.contains("shop/front"));
        assert_eq!(
            record(&mut status, &held, ("t2", Some(1))),
            None,
            "same fault: no Event"
        );
        assert_eq!(status.conditions[0].last_transition_time, "t1");
        let granted = decide(
            &svc(Some("http=8150")),
            prev([None; 3]),
            (8100, 8199),
            "edge",
            &nobody,
        );
        assert_eq!(record(&mut status, &granted, ("t3", Some(2))), None);
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("True", "Granted")
        );
        let none = decide(&svc(None), prev([None; 3]), (8100, 8199), "edge", &nobody);
        record(&mut status, &none, ("t4", Some(3)));
        assert!(status.conditions.is_empty(), "removed with the annotation");
    }
}
