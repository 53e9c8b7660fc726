//! The metering pipeline's Prometheus metrics: names, descriptions and the few places that
//! touch them. None is labelled by tenant or key.

use std::sync::Once;

pub const QUEUE_DEPTH: &str = "tollgate_metering_queue_depth";
pub const FLUSHED: &str = "tollgate_metering_events_flushed_total";
pub const RETRIES: &str = "tollgate_metering_retries_total";
pub const SPOOLED: &str = "tollgate_metering_spooled_total";
pub const SPOOL_QUEUE: &str = "tollgate_metering_spool_queue_depth";
pub const DROPPED: &str = "tollgate_metering_dropped_total";
pub const FLUSH_DURATION: &str = "tollgate_metering_flush_duration_seconds";
pub const COMPACTED: &str = "tollgate_metering_rollups_compacted_total";
pub const COMPACTION_PASS: &str = "tollgate_metering_compaction_pass_seconds";

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
        metrics::describe_gauge!(
            SPOOL_QUEUE,
            "Usage events handed to the spool thread and not yet written to its segment (in memory: the spool's queue has no bound)."
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
        metrics::describe_counter!(
            COMPACTED,
            "Pending rollup rows (a batch's minute bucket of one key, endpoint, method and status class) added to the rollup tables."
        );
        metrics::describe_histogram!(
            COMPACTION_PASS,
            metrics::Unit::Seconds,
            "Duration of one compactor pass over the pending rollups: how far rollups, peaks and key counters trail the stored events."
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

pub fn spool_queue(depth: usize) {
    metrics::gauge!(SPOOL_QUEUE).set(depth as f64);
}

pub fn dropped(count: usize) {
    metrics::counter!(DROPPED).increment(count as u64);
}

pub fn compacted(rows: usize) {
    metrics::counter!(COMPACTED).increment(rows as u64);
}

pub fn compaction_pass(seconds: f64) {
    metrics::histogram!(COMPACTION_PASS).record(seconds);
}
