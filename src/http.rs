//! Bounded HTTP/1.1 server used by probes, metrics and the updater API. (placeholder)
