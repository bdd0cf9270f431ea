//! The writer task: drains the queue into batches and stores each one in ClickHouse.
//!
//! A batch is written when it reaches `batch_rows` or when the flush interval ticks, so no hit
//! waits longer than about one interval. A failed insert is retried with backoff; meanwhile new
//! hits wait in the bounded queue. On shutdown the writer closes the queue, drains it, writes
//! what is left and returns; if ClickHouse stays unreachable past the shutdown grace period, it
//! reports how many events it could not store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clickhouse::Client;
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::batch::{Batch, Batcher};
use super::insert::insert_batch;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::sealer::Sealer;

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
    /// Runs until `shutdown` turns true and the queue is drained.
    pub async fn run(self, mut rx: mpsc::Receiver<Event>, mut shutdown: watch::Receiver<bool>) -> WriterReport {
        let mut batcher = Batcher::new(self.config.batch_rows);
        let mut ticker = tokio::time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report = WriterReport::default();
        let mut closing_since: Option<Instant> = None;
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(event) => {
                        if let Some(batch) = batcher.push(event) {
                            self.write(batch, &mut report, &mut closing_since, &mut shutdown).await;
                        }
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    if let Some(batch) = batcher.take() {
                        self.write(batch, &mut report, &mut closing_since, &mut shutdown).await;
                    }
                }
                // Only ever changes to `true`; a dropped sender means the same.
                _ = shutdown.changed(), if closing_since.is_none() => {
                    closing_since = Some(Instant::now());
                }
            }
            if closing_since.is_some() {
                rx.close();
            }
        }
        if let Some(batch) = batcher.take() {
            closing_since.get_or_insert_with(Instant::now);
            self.write(batch, &mut report, &mut closing_since, &mut shutdown).await;
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
                    self.metrics.insert_seconds.observe(started.elapsed().as_secs_f64());
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
