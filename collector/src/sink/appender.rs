//! The appender: moves accepted events' rows from the in-memory queue into the spool.
//!
//! It runs on a thread of its own because it does blocking file I/O (writes and fsyncs) that
//! must never stall the request threads. It cuts a batch when it reaches `batch_rows` events or
//! when its first event has waited one flush interval, writing the epoch keys the batch needs
//! just before the cut. Whenever it has drained the queue it hands what it appended to the OS,
//! so a crash of the process costs only the events still queued; every `fsync_interval` it
//! makes what it appended durable, so power loss costs at most that interval.
//!
//! When a write fails (disk full, I/O error) the spool keeps what it could not write in memory;
//! the appender stops taking events from the queue, the collector refuses new hits
//! (`disk_failing`), and every `IO_RETRY` it tries again, until the disk takes the writes and
//! everything resumes by itself. The events already acknowledged wait in the queue meanwhile.
//! Their bytes count against the queue's bound until a sync makes them durable, not just until
//! they leave the queue: the spool holds their frames in memory until then.
//! It also stops taking events while the spool is at its bound plus half a segment, so the disk
//! never holds more than the bound plus one segment.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use super::spool::{SpoolGauge, SpoolWriter};
use super::{Queue, SinkStatus};
use crate::metrics::{Metrics, Rejection};
use crate::sealer::Sealer;

/// How long the appender sleeps when the queue is empty.
const IDLE_POLL: Duration = Duration::from_millis(2);
/// How long it waits before trying the disk again after a write failed.
const IO_RETRY: Duration = Duration::from_millis(200);
/// How long shutdown keeps trying a failing disk before it gives the unwritten events up.
const SHUTDOWN_IO_TRIES: u32 = 10;

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
        let mut failed_tries = 0u32;
        // Bytes of the rows appended since the last successful sync: still held in the queue's
        // bound, as the spool keeps their frames in memory until then.
        let mut unsynced_bytes = 0u64;
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let mut appended = false;
            if self.spool.failing() {
                std::thread::sleep(IO_RETRY);
                match self.sync(&mut unsynced_bytes) {
                    Ok(()) => self.disk_recovered(),
                    Err(_) if stopping && failed_tries >= SHUTDOWN_IO_TRIES => {
                        let lost = self.queue.depth() as u64 + self.spool.unsynced_rows();
                        tracing::error!(
                            lost,
                            "the spool is still not writable at shutdown: unwritten hits are lost"
                        );
                        self.metrics.sink.spool_lost_events.inc_by(lost);
                        return;
                    }
                    Err(_) => failed_tries += 1,
                }
            } else {
                failed_tries = 0;
                while self.has_room() {
                    let Some(row) = self.queue.pop() else { break };
                    appended = true;
                    if in_batch == 0 {
                        batch_deadline = Instant::now() + self.flush_interval;
                    }
                    self.spool.append_row(row.bytes(), &self.gauge);
                    unsynced_bytes += row.bytes().len() as u64;
                    in_batch += 1;
                    if in_batch >= self.batch_rows {
                        in_batch = self.cut();
                    } else if let Err(error) = self.spool.flush_if_large(&self.gauge) {
                        self.disk_failed(&error);
                    }
                    if self.spool.failing() {
                        break;
                    }
                }
            }
            // Hand what was appended to the OS as soon as the queue is drained: a crash of the
            // process alone (`kill -9`, a panic) then costs only what was still queued, and the
            // fsync interval only bounds what power loss costs. One write per drain: at most one
            // every `IDLE_POLL` when traffic is light, fewer and larger ones when it is heavy.
            if appended
                && !self.spool.failing()
                && let Err(error) = self.spool.flush(&self.gauge)
            {
                self.disk_failed(&error);
            }
            // At the bound, cut what is open so the inserter can free space.
            let cut_due = stopping || Instant::now() >= batch_deadline || !self.has_room();
            if in_batch > 0 && cut_due && !self.spool.failing() {
                in_batch = self.cut();
            }
            if (stopping || Instant::now() >= next_sync) && !self.spool.failing() {
                if let Err(error) = self.sync(&mut unsynced_bytes) {
                    self.disk_failed(&error);
                }
                next_sync = Instant::now() + self.fsync_interval;
            }
            self.update_fullness();
            if stopping && self.queue.depth() == 0 && in_batch == 0 && !self.spool.failing() {
                return;
            }
            if !appended {
                std::thread::sleep(IDLE_POLL);
            }
        }
    }

    /// Makes what was appended durable, and gives the `unsynced` bytes of its rows back to the
    /// queue's bound.
    fn sync(&mut self, unsynced: &mut u64) -> std::io::Result<()> {
        self.spool.sync(&self.gauge)?;
        self.queue.release(std::mem::take(unsynced));
        Ok(())
    }

    /// Whether the disk may take more events: below the bound plus half a segment (the other
    /// half is room for cuts and keys).
    fn has_room(&self) -> bool {
        self.gauge.disk_bytes() < self.max_bytes + self.spool.segment_bytes() / 2
    }

    /// Ends the open batch: keys first, then the cut. Returns the rows left open (none: a cut
    /// that could not be written yet stays buffered and is written when the disk recovers).
    fn cut(&mut self) -> usize {
        for key in self.sealer.take_unsaved() {
            if let Err(error) = self.spool.append_key(&key, &self.gauge) {
                tracing::error!(%error, "an epoch key could not be encoded for the spool");
            }
        }
        match self.spool.cut(Uuid::new_v4(), &self.gauge) {
            Ok(()) => self.cut_ready.notify_one(),
            Err(error) => self.disk_failed(&error),
        }
        0
    }

    /// Refuses new hits while the spool is over its bound, until it is below 90 % of it.
    fn update_fullness(&self) {
        let disk = self.gauge.disk_bytes();
        let sink = &self.metrics.sink;
        sink.spool_bytes.set(self.gauge.pending_bytes() as i64);
        sink.spool_disk_bytes.set(disk as i64);
        sink.spool_backlog_rows
            .set(self.gauge.backlog_rows() as i64);
        if self.spool.failing() {
            return;
        }
        let full = self.status.refusal() == Some(Rejection::SpoolFull);
        if !full && disk >= self.max_bytes {
            tracing::warn!(
                disk,
                max = self.max_bytes,
                "spool full: refusing new hits until ClickHouse catches up"
            );
            self.status.refuse(Some(Rejection::SpoolFull));
        } else if full && disk < self.max_bytes / 10 * 9 {
            tracing::info!(disk, "spool below its bound again: accepting hits");
            self.status.refuse(None);
        }
    }

    /// A write to the spool failed: refuse new hits until the disk takes writes again.
    fn disk_failed(&self, error: &std::io::Error) {
        self.metrics.sink.spool_write_failures.inc();
        if self.status.refusal() != Some(Rejection::DiskFailing) {
            tracing::error!(%error, "writing the spool failed: refusing new hits until the disk recovers");
            self.status.refuse(Some(Rejection::DiskFailing));
        }
    }

    fn disk_recovered(&self) {
        tracing::info!("the spool is writable again: accepting hits");
        self.status.refuse(None);
        self.cut_ready.notify_one();
    }
}
