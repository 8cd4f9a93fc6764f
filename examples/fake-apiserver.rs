//! Runs the test suite's fake Kubernetes API server on its own (used by `make demo`). (placeholder)
fn main() {}
