//! Watches: decoding the watch stream into events, the list-then-watch state machine, and the thread
//! that drives it for one resource.
//!
//! Owns: `stream` (one open response split into bounded lines and decoded into events), `machine`
//! (pure: what to do next), `runner` (the only part with I/O, one OS thread per resource).
//! Must not: decide anything about the objects it carries; the worker does.

pub mod machine;
pub mod runner;
pub mod stream;

pub use stream::{WatchEvent, WatchMsg, WatchStream, decode_event};
