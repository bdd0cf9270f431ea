//! The appender: moves accepted events from the in-memory queue into the spool.
//!
//! It runs on a thread of its own because it does blocking file I/O (writes and fsyncs) that
//! must never stall the request threads. It cuts a batch when it reaches `batch_rows` events or
//! when its first event has waited one flush interval, writing the epoch keys the batch needs
//! just before the cut. Every `fsync_interval` it makes what it appended durable: that interval
//! is all a crash (`kill -9`, power loss) can cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use super::spool::{SpoolGauge, SpoolWriter};
use super::{Queue, SinkStatus};
use crate::metrics::Metrics;
use crate::sealer::Sealer;

/// How long the appender sleeps when the queue is empty.
const IDLE_POLL: Duration = Duration::from_millis(2);
/// How long it waits before trying the disk again after a write failed.
const IO_RETRY: Duration = Duration::from_millis(500);

pub struct Appender {
    pub queue: Queue,
    pub spool: SpoolWriter,
    pub gauge: Arc<SpoolGauge>,
    pub sealer: Arc<Sealer>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SinkStatus>,
    /// Woken at every cut: a new batch is ready to insert.
    pub cut_ready: Arc<Notify>,
    pub batch_rows: usize,
    pub flush_interval: Duration,
    pub fsync_interval: Duration,
    pub max_bytes: u64,
}

impl Appender {
    /// Runs until `stop` is set and the queue is empty; then cuts and syncs what it holds.
    pub fn run(mut self, stop: &AtomicBool) {
        let mut in_batch = 0usize;
        let mut batch_deadline = Instant::now();
        let mut next_sync = Instant::now() + self.fsync_interval;
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let mut appended = false;
            while let Some(event) = self.queue.pop() {
                appended = true;
                if in_batch == 0 {
                    batch_deadline = Instant::now() + self.flush_interval;
                }
                match self.spool.append_event(&event, &self.gauge) {
                    Ok(_) => in_batch += 1,
                    Err(error) => self.disk_failed(&error, 1),
                }
                if in_batch >= self.batch_rows {
                    in_batch = self.cut(in_batch);
                }
            }
            if in_batch > 0 && (stopping || Instant::now() >= batch_deadline) {
                in_batch = self.cut(in_batch);
            }
            if stopping || Instant::now() >= next_sync {
                if let Err(error) = self.spool.sync() {
                    self.disk_failed(&error, 0);
                }
                next_sync = Instant::now() + self.fsync_interval;
            }
            self.update_fullness();
            if stopping && self.queue.depth() == 0 {
                return;
            }
            if !appended {
                std::thread::sleep(IDLE_POLL);
            }
        }
    }

    /// Ends the batch of `rows` events: keys first, then the cut. Returns the rows left open.
    fn cut(&mut self, rows: usize) -> usize {
        for key in self.sealer.take_unsaved() {
            if let Err(error) = self.spool.append_key(&key, &self.gauge) {
                self.disk_failed(&error, 0);
            }
        }
        match self.spool.cut(Uuid::new_v4(), &self.gauge) {
            Ok(()) => {
                self.cut_ready.notify_one();
                0
            }
            Err(error) => {
                self.disk_failed(&error, 0);
                rows
            }
        }
    }

    /// The spool is over its bound: refuse new hits until the inserter has caught up a little.
    fn update_fullness(&self) {
        let pending = self.gauge.pending_bytes();
        self.metrics.spool_bytes.set(pending as i64);
        let full = self.status.spool_full.load(Ordering::Relaxed);
        if !full && pending >= self.max_bytes {
            tracing::warn!(
                pending,
                max = self.max_bytes,
                "spool full: refusing new hits until ClickHouse catches up"
            );
            self.status.spool_full.store(true, Ordering::Relaxed);
        } else if full && pending < self.max_bytes / 10 * 9 {
            tracing::info!(pending, "spool below its bound again: accepting hits");
            self.status.spool_full.store(false, Ordering::Relaxed);
        }
    }

    /// A write to the spool failed (disk full, I/O error): the events it held are lost. Refuse
    /// hits for a moment rather than acknowledge more that cannot be kept.
    fn disk_failed(&self, error: &std::io::Error, lost: u64) {
        tracing::error!(%error, "writing the spool failed");
        self.metrics.spool_lost_events.inc_by(lost);
        self.status.spool_full.store(true, Ordering::Relaxed);
        std::thread::sleep(IO_RETRY);
    }
}
