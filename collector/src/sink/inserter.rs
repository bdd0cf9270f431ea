//! The inserter: reads batches from the spool, in order, and stores them in ClickHouse.
//!
//! Each batch is inserted with the deduplication token it was spooled with, retried with
//! backoff until ClickHouse takes it, and then committed in the spool. Reading and committing
//! are file I/O, so they run on tokio's blocking pool. On shutdown the inserter stores every
//! complete batch it can within the grace period; whatever is left stays in the spool for the
//! next start.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clickhouse::Client;
use tokio::sync::{Notify, watch};

use super::SinkStatus;
use super::backoff::Backoff;
use super::insert::insert_batch;
use super::spool::{SpoolGauge, SpoolReader, SpooledBatch};
use crate::metrics::Metrics;

/// How often the inserter looks at the spool when no cut woke it.
const IDLE_POLL: Duration = Duration::from_millis(200);

pub struct Inserter {
    pub client: Client,
    pub reader: Arc<Mutex<SpoolReader>>,
    pub gauge: Arc<SpoolGauge>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SinkStatus>,
    pub cut_ready: Arc<Notify>,
    pub shutdown_grace: Duration,
}

/// What the inserter did, returned when it stops.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InserterReport {
    pub rows_written: u64,
    /// Bytes left in the spool at exit, to be inserted after the next start.
    pub bytes_left: u64,
}

impl Inserter {
    /// Runs until `drain` turns true and the spool holds no complete batch (or the grace period
    /// is over).
    pub async fn run(self, mut drain: watch::Receiver<bool>) -> InserterReport {
        let mut report = InserterReport::default();
        let mut draining_since: Option<Instant> = None;
        loop {
            match self.with_reader(SpoolReader::next_batch).await {
                Ok(Some(spooled)) => {
                    if !self
                        .store(spooled, &mut report, &mut draining_since, &mut drain)
                        .await
                    {
                        break;
                    }
                }
                Ok(None) if draining_since.is_some() => break,
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(%error, "reading the spool failed");
                    if draining_since.is_some() {
                        break;
                    }
                }
            }
            if draining_since.is_none() {
                tokio::select! {
                    _ = self.cut_ready.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = drain.changed() => draining_since = Some(Instant::now()),
                }
            }
        }
        report.bytes_left = self.gauge.pending_bytes();
        report
    }

    /// Inserts one spooled batch until it is stored, then commits it. Returns false if it gave
    /// up because the shutdown grace period ran out.
    async fn store(
        &self,
        spooled: SpooledBatch,
        report: &mut InserterReport,
        draining_since: &mut Option<Instant>,
        drain: &mut watch::Receiver<bool>,
    ) -> bool {
        self.metrics
            .spool_corrupt_records
            .inc_by(spooled.corrupt_records);
        let rows = spooled.batch.events.len() as u64;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let started = Instant::now();
            match insert_batch(&self.client, &spooled.keys, &spooled.batch).await {
                Ok(()) => {
                    self.metrics
                        .insert_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.batches_written.inc();
                    self.metrics.rows_written.inc_by(rows);
                    self.status.insert_ok.store(true, Ordering::Relaxed);
                    report.rows_written += rows;
                    break;
                }
                Err(error) => {
                    self.metrics.insert_failures.inc();
                    self.status.insert_ok.store(false, Ordering::Relaxed);
                    if draining_since.is_some_and(|t| t.elapsed() >= self.shutdown_grace) {
                        tracing::warn!(%error, "ClickHouse still unreachable at shutdown: the rest stays in the spool");
                        return false;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, rows, retry_in_ms = delay.as_millis() as u64, "insert into ClickHouse failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = drain.changed(), if draining_since.is_none() => *draining_since = Some(Instant::now()),
                    }
                    self.metrics.insert_retries.inc();
                }
            }
        }
        let (gauge, end) = (self.gauge.clone(), spooled.end);
        if let Err(error) = self
            .with_reader(move |reader| reader.commit(end, &gauge))
            .await
        {
            // The batch is stored; replaying it after a restart is deduplicated by its token.
            tracing::error!(%error, "committing the spool position failed");
        }
        true
    }

    /// Runs `f` on the spool reader on tokio's blocking pool: it does file I/O.
    async fn with_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SpoolReader) -> T + Send + 'static,
    ) -> T {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            f(&mut reader.lock().unwrap_or_else(|e| e.into_inner()))
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
    }
}
