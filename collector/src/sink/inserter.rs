//! The inserter: reads batches from the spool, in order, and stores them in ClickHouse.
//!
//! Each batch is inserted with the deduplication token it was spooled with, retried with
//! backoff until ClickHouse takes it, and then committed in the spool. On shutdown the inserter
//! stores every complete batch it can within the grace period; whatever is left stays in the
//! spool for the next start.
//!
//! The inserter runs on a thread of its own with a single-threaded runtime ([`Inserter::spawn`]):
//! reading a batch back from the spool and compressing it (LZ4) takes milliseconds of CPU for a
//! full batch, which on the server's runtime would stall every connection of the
//! worker it ran on. On its own thread that work, and the spool's file I/O, block nothing else.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
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
    pub reader: SpoolReader,
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
    /// Starts the inserter on a thread of its own, with a single-threaded runtime.
    pub fn spawn(
        self,
        drain: watch::Receiver<bool>,
    ) -> std::io::Result<JoinHandle<InserterReport>> {
        // The runtime is built on the new thread: one dropped on the caller's (async) thread
        // would panic. Whether it could be built comes back over `ready`.
        let (ready, built) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("footfall-inserter".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match runtime {
                    Ok(runtime) => {
                        let _ = ready.send(Ok(()));
                        runtime.block_on(self.run(drain))
                    }
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        InserterReport::default()
                    }
                }
            })?;
        match built.recv() {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(std::io::Error::other("the inserter thread ended at start")),
        }
    }

    /// Runs until `drain` turns true and the spool holds no complete batch (or the grace period
    /// is over).
    async fn run(mut self, mut drain: watch::Receiver<bool>) -> InserterReport {
        let mut report = InserterReport::default();
        let mut draining_since: Option<Instant> = None;
        loop {
            match self.reader.next_batch() {
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
        &mut self,
        spooled: SpooledBatch,
        report: &mut InserterReport,
        draining_since: &mut Option<Instant>,
        drain: &mut watch::Receiver<bool>,
    ) -> bool {
        self.metrics
            .spool_corrupt_records
            .inc_by(spooled.corrupt_records);
        let rows = spooled.batch.len;
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
        if let Err(error) = self.reader.commit(spooled.end, &self.gauge) {
            // The batch is stored; replaying it after a restart is deduplicated by its token.
            tracing::error!(%error, "committing the spool position failed");
        }
        true
    }
}
