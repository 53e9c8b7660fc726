//! The metering pipeline's Prometheus metrics: names, descriptions and the few places that
//! touch them. None is labelled by tenant or key.

use std::sync::Once;

pub const QUEUE_DEPTH: &str = "tollgate_metering_queue_depth";
pub const FLUSHED: &str = "tollgate_metering_events_flushed_total";
pub const RETRIES: &str = "tollgate_metering_retries_total";
pub const SPOOLED: &str = "tollgate_metering_spooled_total";
pub const DROPPED: &str = "tollgate_metering_dropped_total";
pub const FLUSH_DURATION: &str = "tollgate_metering_flush_duration_seconds";

/// Registers the descriptions once per process (the recorder must be installed first).
pub fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(QUEUE_DEPTH, "Usage events waiting in the in-memory buffer.");
        metrics::describe_counter!(
            FLUSHED,
            "Usage events committed to the database by the batch writer (duplicates included)."
        );
        metrics::describe_counter!(
            RETRIES,
            "Failed batch writes that were retried after a backoff."
        );
        metrics::describe_counter!(
            SPOOLED,
            "Usage events written to the on-disk spool (buffer full or database down)."
        );
        metrics::describe_counter!(
            DROPPED,
            "Usage events lost because even the spool failed. Must stay 0."
        );
        metrics::describe_histogram!(
            FLUSH_DURATION,
            metrics::Unit::Seconds,
            "Duration of one committed batch write."
        );
    });
}

pub fn queue_depth(depth: usize) {
    metrics::gauge!(QUEUE_DEPTH).set(depth as f64);
}

pub fn flushed(count: usize, seconds: f64) {
    metrics::counter!(FLUSHED).increment(count as u64);
    metrics::histogram!(FLUSH_DURATION).record(seconds);
}

pub fn retried() {
    metrics::counter!(RETRIES).increment(1);
}

pub fn spooled(count: usize) {
    metrics::counter!(SPOOLED).increment(count as u64);
}

pub fn dropped(count: usize) {
    metrics::counter!(DROPPED).increment(count as u64);
}
