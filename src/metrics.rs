//! Counters, gauges and histograms with Prometheus text exposition. (placeholder)
