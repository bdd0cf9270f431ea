//! The sink's metrics: spool, inserter, quarantine. Registered into the collector's registry
//! by [`crate::metrics::Metrics`]; kept here so the sink's counters live next to the code that
//! moves them.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct SinkMetrics {
    pub batches_written: Counter,
    pub rows_written: Counter,
    pub insert_retries: Counter,
    pub insert_failures: Counter,
    pub insert_permanent_failures: Counter,
    pub insert_timeouts: Counter,
    pub insert_seconds: Histogram,
    pub schema_applied: Counter,
    pub schema_failures: Counter,
    pub spool_bytes: Gauge,
    pub spool_disk_bytes: Gauge,
    pub spool_backlog_rows: Gauge,
    pub spool_oldest_unsent_seconds: Gauge<f64, AtomicU64>,
    pub spool_torn_bytes: Counter,
    pub spool_corrupt_records: Counter,
    pub spool_skipped_bytes: Counter,
    pub spool_mark_repairs: Counter,
    pub spool_write_failures: Counter,
    pub spool_commit_failures: Counter,
    pub spool_lost_events: Counter,
    pub batches_quarantined: Counter,
    pub rows_quarantined: Counter,
    pub rows_erased: Counter,
    pub quarantine_batches: Gauge,
}

impl SinkMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            batches_written: Counter::default(),
            rows_written: Counter::default(),
            insert_retries: Counter::default(),
            insert_failures: Counter::default(),
            insert_permanent_failures: Counter::default(),
            insert_timeouts: Counter::default(),
            insert_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            schema_applied: Counter::default(),
            schema_failures: Counter::default(),
            spool_bytes: Gauge::default(),
            spool_disk_bytes: Gauge::default(),
            spool_backlog_rows: Gauge::default(),
            spool_oldest_unsent_seconds: Gauge::default(),
            spool_torn_bytes: Counter::default(),
            spool_corrupt_records: Counter::default(),
            spool_skipped_bytes: Counter::default(),
            spool_mark_repairs: Counter::default(),
            spool_write_failures: Counter::default(),
            spool_commit_failures: Counter::default(),
            spool_lost_events: Counter::default(),
            batches_quarantined: Counter::default(),
            rows_quarantined: Counter::default(),
            rows_erased: Counter::default(),
            quarantine_batches: Gauge::default(),
        };
        let r = registry;
        r.register(
            "batches_written",
            "Inserts into ClickHouse that succeeded (one may carry several spooled batches)",
            m.batches_written.clone(),
        );
        r.register(
            "rows_written",
            "Events inserted into ClickHouse",
            m.rows_written.clone(),
        );
        r.register(
            "insert_retries",
            "Inserts tried again after a failure",
            m.insert_retries.clone(),
        );
        r.register(
            "insert_failures",
            "Inserts that failed, for any reason",
            m.insert_failures.clone(),
        );
        r.register(
            "insert_permanent_failures",
            "Inserts that failed with an error retrying cannot fix (the batch is quarantined)",
            m.insert_permanent_failures.clone(),
        );
        r.register(
            "insert_timeouts",
            "Inserts abandoned at their deadline (each is sent again with twice the time)",
            m.insert_timeouts.clone(),
        );
        r.register(
            "insert_duration_seconds",
            "Time to insert one batch",
            m.insert_seconds.clone(),
        );
        r.register(
            "schema_applied",
            "Times the ClickHouse schema was applied (at start, and when the database or a table was gone)",
            m.schema_applied.clone(),
        );
        r.register(
            "schema_failures",
            "Attempts to apply the ClickHouse schema that failed or timed out",
            m.schema_failures.clone(),
        );
        r.register(
            "spool_bytes",
            "Bytes in the spool not yet stored in ClickHouse",
            m.spool_bytes.clone(),
        );
        r.register(
            "spool_disk_bytes",
            "Bytes the spool takes on disk (bounded by FOOTFALL_SPOOL_MAX_BYTES plus one segment)",
            m.spool_disk_bytes.clone(),
        );
        r.register(
            "spool_backlog_rows",
            "Events in the spool not yet stored in ClickHouse",
            m.spool_backlog_rows.clone(),
        );
        r.register(
            "spool_oldest_unsent_age_seconds",
            "Age of the oldest spooled event not yet stored in ClickHouse (0 when none waits)",
            m.spool_oldest_unsent_seconds.clone(),
        );
        r.register(
            "spool_torn_bytes",
            "Bytes after the last whole record of the spool, cut off at start (a write cut short)",
            m.spool_torn_bytes.clone(),
        );
        r.register(
            "spool_corrupt_records",
            "Damaged stretches of the spool skipped (each cost one record or more)",
            m.spool_corrupt_records.clone(),
        );
        r.register(
            "spool_skipped_bytes",
            "Bytes of damaged spool records skipped",
            m.spool_skipped_bytes.clone(),
        );
        r.register(
            "spool_commit_mark_repairs",
            "Commit marks that did not match the spool's segments at start, repaired",
            m.spool_mark_repairs.clone(),
        );
        r.register(
            "spool_write_failures",
            "Times writing the spool failed (disk full, I/O error); hits are refused until it recovers",
            m.spool_write_failures.clone(),
        );
        r.register(
            "spool_commit_failures",
            "Times recording how far the spool is stored failed (disk full); retried before anything else is sent",
            m.spool_commit_failures.clone(),
        );
        r.register(
            "spool_lost_events",
            "Accepted events lost because the spool could not be written before the collector stopped",
            m.spool_lost_events.clone(),
        );
        r.register(
            "batches_quarantined",
            "Batches ClickHouse refused for good, moved to the quarantine (see spool replay-quarantine)",
            m.batches_quarantined.clone(),
        );
        r.register(
            "rows_quarantined",
            "Events in quarantined batches",
            m.rows_quarantined.clone(),
        );
        r.register(
            "rows_erased",
            "Spooled events not inserted because an erasure made after they were answered covers them",
            m.rows_erased.clone(),
        );
        r.register(
            "quarantine_batches",
            "Batches waiting in the quarantine folder",
            m.quarantine_batches.clone(),
        );
        m
    }
}
