//! The writer task: drains the queue into batches and stores each one in ClickHouse.
//!
//! A batch is written when it reaches `batch_rows` or when its first event has waited one flush
//! interval. A failed insert is retried with backoff; meanwhile new
//! hits wait in the bounded queue. On shutdown the writer drains the queue, writes
//! what is left and returns; if ClickHouse stays unreachable past the shutdown grace period, it
//! reports how many events it could not store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clickhouse::Client;
use tokio::sync::watch;

use super::Queue;
use super::backoff::Backoff;
use super::batch::{Batch, Batcher};
use super::insert::insert_batch;
use crate::metrics::Metrics;
use crate::sealer::Sealer;

/// How often the writer looks for new events when the queue is quiet.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

pub struct WriterConfig {
    pub batch_rows: usize,
    pub flush_interval: Duration,
    /// How long shutdown may keep retrying a failing insert.
    pub shutdown_grace: Duration,
}

/// Whether the last insert succeeded: the writer's part of `/readyz`.
#[derive(Default)]
pub struct WriterHealth(AtomicBool);

impl WriterHealth {
    pub fn is_healthy(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Relaxed);
    }
}

/// What the writer did, returned when it stops.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WriterReport {
    pub rows_written: u64,
    pub rows_lost: u64,
}

pub struct Writer {
    pub client: Client,
    pub sealer: Arc<Sealer>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<WriterHealth>,
    pub config: WriterConfig,
}

impl Writer {
    /// Runs until `shutdown` turns true, then drains the queue and returns. The server stops
    /// pushing before it signals shutdown, so nothing is pushed after the final drain.
    pub async fn run(self, queue: Queue, mut shutdown: watch::Receiver<bool>) -> WriterReport {
        let mut batcher = Batcher::new(self.config.batch_rows);
        let mut report = WriterReport::default();
        let mut closing_since: Option<Instant> = None;
        let mut flush_at = Instant::now();
        loop {
            while let Some(event) = queue.pop() {
                if batcher.is_empty() {
                    flush_at = Instant::now() + self.config.flush_interval;
                }
                if let Some(batch) = batcher.push(*event) {
                    self.write(batch, &mut report, &mut closing_since, &mut shutdown)
                        .await;
                }
            }
            if closing_since.is_some() {
                break;
            }
            if !batcher.is_empty() && Instant::now() >= flush_at {
                let batch = batcher.take().expect("not empty");
                self.write(batch, &mut report, &mut closing_since, &mut shutdown)
                    .await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = queue.filling() => {}
                // Only ever changes to `true`; a dropped sender means the same.
                _ = shutdown.changed(), if closing_since.is_none() => {
                    closing_since = Some(Instant::now());
                }
            }
        }
        if let Some(batch) = batcher.take() {
            self.write(batch, &mut report, &mut closing_since, &mut shutdown)
                .await;
        }
        report
    }

    /// Inserts `batch`, retrying until it is stored or, once closing, the grace period is over.
    async fn write(
        &self,
        batch: Batch,
        report: &mut WriterReport,
        closing_since: &mut Option<Instant>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let rows = batch.events.len() as u64;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let keys = self.sealer.take_unsaved();
            let started = Instant::now();
            match insert_batch(&self.client, &keys, &batch).await {
                Ok(()) => {
                    self.metrics
                        .insert_seconds
                        .observe(started.elapsed().as_secs_f64());
                    self.metrics.batches_written.inc();
                    self.metrics.rows_written.inc_by(rows);
                    self.health.set(true);
                    report.rows_written += rows;
                    return;
                }
                Err(error) => {
                    self.sealer.return_unsaved(keys);
                    self.metrics.insert_failures.inc();
                    self.health.set(false);
                    if closing_since.is_some_and(|t| t.elapsed() >= self.config.shutdown_grace) {
                        tracing::error!(%error, rows, "shutting down with ClickHouse unreachable: these events are lost");
                        report.rows_lost += rows;
                        return;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, rows, retry_in_ms = delay.as_millis() as u64, "insert into ClickHouse failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed(), if closing_since.is_none() => {
                            *closing_since = Some(Instant::now());
                        }
                    }
                    self.metrics.insert_retries.inc();
                }
            }
        }
    }
}
