//! From events to ClickHouse: queue → spool → batch → insert.
//!
//! Request handlers only ever call [`Queue::push`], which never waits: the event goes into a
//! bounded lock-free queue or, when that is full, is refused at once (the caller counts it).
//! The [`appender`] thread moves queued events into the [`spool`], an append-only log on disk,
//! cutting them into batches; the [`inserter`] thread reads batches back in order and [`insert`]s
//! each into ClickHouse, retrying with [`backoff`] until it is stored. Framing, spooling,
//! batching, retry and I/O are separate pieces, each testable alone.
//!
//! The appender polls the queue every 2 ms instead of being woken per event: a wake-up per hit
//! (a futex call when its thread sleeps) cost more than the rest of the pixel path together, and
//! at 100k hits/s a poll finds some 200 events, far below the queue's capacity.

pub mod appender;
pub mod backoff;
pub mod batch;
mod body;
pub mod disk;
pub mod erasures;
pub mod errors;
pub mod frame;
pub mod insert;
pub mod inserter;
pub mod metrics;
pub mod quarantine;
pub mod record;
pub mod scan;
pub mod spool;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::sync::{Notify, watch};

use self::appender::Appender;
use self::disk::DiskFaults;
use self::inserter::{ApplySchema, Inserter, InserterReport};
use self::quarantine::Quarantine;
use self::record::Row;
use self::spool::{MarkProblem, Recovery, SpoolGauge, SpoolOptions};
use crate::metrics::{Metrics, Rejection};
use crate::sealer::Sealer;

/// The request handlers' side of the writer's queue: events as their spool records
/// ([`Row`]), bounded both in rows and in bytes. Cloning shares the queue.
///
/// The byte bound counts every hit acknowledged and not yet durable: a row's bytes stay counted
/// after the appender pops it, until the fsync that makes it durable ([`Queue::release`]),
/// because until then the spool keeps its frame in memory too (to write it again should the
/// write or the sync fail). Counted only while queued, rows of twice the bound could wait in
/// memory behind a stalled disk: a full queue, and in the spool's buffer all it held before.
///
/// Slots are reserved before rows go in, so that a beacon's events are queued all together or
/// not at all ([`Queue::push_all`]): pushing them one by one stored the first ones of a beacon
/// that was then refused for want of room. Rows and bytes are counted in one atomic word, so
/// the reservation is one atomic operation per push on each side, as it was for rows alone.
#[derive(Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

struct Shared {
    rows: ArrayQueue<Row>,
    /// Rows queued plus slots reserved for rows about to be, in the low [`ROW_BITS`] bits, and
    /// their bytes above: never above the bounds, so a push into a reserved slot cannot fail.
    held: AtomicU64,
    max_bytes: u64,
}

/// Bits of [`Shared::held`] that count rows: room for the largest capacity the options allow.
const ROW_BITS: u32 = 24;
const ROW_MASK: u64 = (1 << ROW_BITS) - 1;
/// Room under which the queue counts as full (`/readyz`): a pixel hit's row takes 300–450
/// bytes, one with every field at its bound a few KiB.
const FULL_SLACK: u64 = 4 << 10;

impl Queue {
    /// A queue holding up to `capacity` rows (an empty queue costs 24 bytes a slot: a row's
    /// pointer and length, and the slot's stamp) and up to `max_bytes` of them. Capacities past
    /// 2^24 rows are taken as 2^24 - 1.
    pub fn bounded(capacity: usize, max_bytes: u64) -> Self {
        let capacity = capacity.clamp(1, ROW_MASK as usize);
        Self {
            shared: Arc::new(Shared {
                rows: ArrayQueue::new(capacity),
                held: AtomicU64::new(0),
                max_bytes: max_bytes.min(u64::MAX >> ROW_BITS),
            }),
        }
    }

    /// Hands `row` to the writer without waiting. Gives it back when the queue is full.
    pub fn push(&self, row: Row) -> Result<(), Row> {
        if !self.reserve(1, row.bytes().len()) {
            return Err(row);
        }
        self.push_reserved(row);
        Ok(())
    }

    /// Hands all of `rows` to the writer, or none of them when they do not all fit.
    pub fn push_all(&self, rows: Vec<Row>) -> Result<(), Vec<Row>> {
        let bytes = rows.iter().map(|row| row.bytes().len()).sum();
        if !self.reserve(rows.len(), bytes) {
            return Err(rows);
        }
        for row in rows {
            self.push_reserved(row);
        }
        Ok(())
    }

    /// Takes the oldest waiting row. Its slot is free at once; its bytes stay counted until the
    /// taker [`release`](Self::release)s them, once the row is durable.
    pub fn pop(&self) -> Option<Row> {
        let row = self.shared.rows.pop()?;
        self.shared.held.fetch_sub(1, Ordering::Release);
        Some(row)
    }

    /// Gives back the room of popped rows of `bytes` in all.
    pub fn release(&self, bytes: u64) {
        self.shared
            .held
            .fetch_sub(bytes << ROW_BITS, Ordering::Release);
    }

    /// Rows waiting for the writer.
    pub fn depth(&self) -> usize {
        self.shared.rows.len()
    }

    /// Bytes of the rows acknowledged and not yet durable: queued, about to be, or popped and
    /// not yet released.
    pub fn bytes(&self) -> u64 {
        self.shared.held.load(Ordering::Relaxed) >> ROW_BITS
    }

    /// Whether a usual row no longer fits: every slot taken, or less than [`FULL_SLACK`] bytes
    /// of room left.
    pub fn is_full(&self) -> bool {
        let held = self.shared.held.load(Ordering::Relaxed);
        (held & ROW_MASK) >= self.shared.rows.capacity() as u64
            || (held >> ROW_BITS) + FULL_SLACK > self.shared.max_bytes
    }

    /// Claims `n` free slots for `bytes`, if there is room for both.
    fn reserve(&self, n: usize, bytes: usize) -> bool {
        let (capacity, max_bytes) = (self.shared.rows.capacity() as u64, self.shared.max_bytes);
        let (n, bytes) = (n as u64, bytes as u64);
        self.shared
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let fits =
                    (held & ROW_MASK) + n <= capacity && (held >> ROW_BITS) + bytes <= max_bytes;
                fits.then_some(held + ((bytes << ROW_BITS) | n))
            })
            .is_ok()
    }

    fn push_reserved(&self, row: Row) {
        if self.shared.rows.push(row).is_err() {
            unreachable!("a reserved slot is free: `held` bounds the queued rows");
        }
    }
}

/// Whether new hits are taken, as one atomic: the request path reads it once per hit.
const ACCEPTING: u8 = 0;
const SPOOL_FULL: u8 = 1;
const DISK_FAILING: u8 = 2;

/// What `/readyz` and the request handlers need to know of the sink.
pub struct SinkStatus {
    refusing: AtomicU8,
    /// Whether the last insert into ClickHouse succeeded.
    pub insert_ok: AtomicBool,
    /// Whether the schema has been applied since the collector started (inserts wait for it).
    pub schema_ready: AtomicBool,
    /// Batches in the quarantine folder, waiting for `spool replay-quarantine`.
    pub quarantined: AtomicU64,
}

impl Default for SinkStatus {
    fn default() -> Self {
        Self {
            refusing: AtomicU8::new(ACCEPTING),
            insert_ok: AtomicBool::new(true),
            schema_ready: AtomicBool::new(false),
            quarantined: AtomicU64::new(0),
        }
    }
}

impl SinkStatus {
    /// Why new hits are refused now, if they are.
    pub fn refusal(&self) -> Option<Rejection> {
        match self.refusing.load(Ordering::Relaxed) {
            ACCEPTING => None,
            SPOOL_FULL => Some(Rejection::SpoolFull),
            _ => Some(Rejection::DiskFailing),
        }
    }

    fn refuse(&self, why: Option<Rejection>) {
        let state = match why {
            None => ACCEPTING,
            Some(Rejection::SpoolFull) => SPOOL_FULL,
            Some(_) => DISK_FAILING,
        };
        self.refusing.store(state, Ordering::Relaxed);
    }
}

pub struct SinkConfig {
    /// The spool's folder.
    pub dir: PathBuf,
    /// Where batches ClickHouse refuses for good are kept.
    pub quarantine_dir: PathBuf,
    pub batch_rows: usize,
    pub flush_interval: Duration,
    /// Time a first attempt at an insert is given (doubled after each timeout).
    pub insert_timeout: Duration,
    /// Nice value asked of ClickHouse for an insert while the spool is caught up (0: none).
    pub insert_nice: u8,
    pub fsync_interval: Duration,
    pub max_bytes: u64,
    /// How long shutdown may keep retrying ClickHouse before leaving batches in the spool.
    pub shutdown_grace: Duration,
    /// Faults to inject into the spool's files (tests only; none otherwise).
    pub faults: Arc<DiskFaults>,
}

/// The running sink: the appender thread and the inserter thread.
pub struct Sink {
    stop_appender: Arc<AtomicBool>,
    appender: std::thread::JoinHandle<()>,
    drain: watch::Sender<bool>,
    inserter: std::thread::JoinHandle<InserterReport>,
}

impl Sink {
    /// Opens (and recovers) the spool and starts draining `queue` through it into ClickHouse,
    /// applying the schema with `apply_schema` before the first insert.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        config: SinkConfig,
        queue: Queue,
        client: clickhouse::Client,
        apply_schema: ApplySchema,
        sealer: Arc<Sealer>,
        metrics: Arc<Metrics>,
        status: Arc<SinkStatus>,
    ) -> std::io::Result<Self> {
        let gauge = Arc::new(SpoolGauge::default());
        let options = SpoolOptions {
            faults: config.faults.clone(),
            ..SpoolOptions::for_bound(config.max_bytes)
        };
        let (writer, reader, recovery) = spool::open(&config.dir, options, &gauge)?;
        report_recovery(&recovery, &metrics);
        let cut_ready = Arc::new(Notify::new());
        let appender = Appender {
            queue,
            spool: writer,
            gauge: gauge.clone(),
            sealer,
            metrics: metrics.clone(),
            status: status.clone(),
            cut_ready: cut_ready.clone(),
            batch_rows: config.batch_rows,
            flush_interval: config.flush_interval,
            fsync_interval: config.fsync_interval,
            max_bytes: config.max_bytes,
        };
        // The inserter first: if the appender cannot start, it is told to drain and exits.
        let inserter = Inserter {
            caught_up_client: caught_up_client(&client, config.insert_nice),
            client,
            reader,
            gauge,
            metrics,
            status,
            cut_ready,
            shutdown_grace: config.shutdown_grace,
            apply_schema,
            quarantine: Quarantine::new(config.quarantine_dir),
            merge_rows: merge_rows(config.batch_rows),
            insert_timeout: config.insert_timeout,
            erasures: Default::default(),
        };
        let (drain, drain_rx) = watch::channel(false);
        let inserter = inserter.spawn(drain_rx)?;
        let stop_appender = Arc::new(AtomicBool::new(false));
        let stop = stop_appender.clone();
        let appender = std::thread::Builder::new()
            .name("footfall-appender".into())
            .spawn(move || appender.run(&stop))
            .inspect_err(|_| {
                let _ = drain.send(true);
            })?;
        Ok(Self {
            stop_appender,
            appender,
            drain,
            inserter,
        })
    }

    /// Spools what is queued, syncs it, then inserts what it can within the grace period. Call
    /// it only once nothing pushes to the queue any more.
    pub async fn shutdown(self) -> InserterReport {
        self.stop_appender.store(true, Ordering::Release);
        let appender = self.appender;
        if tokio::task::spawn_blocking(move || appender.join())
            .await
            .map_or(true, |joined| joined.is_err())
        {
            tracing::error!("the spool appender panicked");
        }
        let _ = self.drain.send(true);
        let inserter = self.inserter;
        match tokio::task::spawn_blocking(move || inserter.join()).await {
            Ok(Ok(report)) => report,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }
}

/// The client for inserts while the spool is caught up: `client`, asking ClickHouse to run
/// its threads at `nice`. `os_thread_priority` rather than its newer name
/// (`os_threads_nice_value_query`): every server version knows it (one that refuses it anyway
/// makes the inserter stop asking, see `Inserter::store`).
fn caught_up_client(client: &clickhouse::Client, nice: u8) -> clickhouse::Client {
    match nice {
        0 => client.clone(),
        nice => client
            .clone()
            .with_setting("os_thread_priority", nice.to_string()),
    }
}

/// Most rows merged into one insert while a backlog drains: several batches (one insert per
/// batch was what held draining to the incoming rate). The inserter streams a merged insert
/// from the spool, so memory does not bound this; time does. A recorded merged insert must be
/// sent again alike until it is stored, however long ClickHouse takes (each timeout doubles its
/// deadline), so it should fit the first deadline on a slow server too. Merging stops at the
/// batch that reaches 50,000 rows: at most 100,000 at the default batch size, which needs
/// ClickHouse to take 3,400 rows/s within the default 30 s. A cap of 200,000 drained no faster
/// (BENCHMARKS.md, draining a backlog) and would have needed 6,700.
fn merge_rows(batch_rows: usize) -> u64 {
    (batch_rows as u64 * 8).min(50_000).max(batch_rows as u64)
}

/// Logs and counts what opening the spool found and repaired.
fn report_recovery(recovery: &Recovery, metrics: &Metrics) {
    let sink = &metrics.sink;
    if let Some(at) = recovery.torn_at {
        tracing::warn!(
            bytes = recovery.torn_bytes,
            segment = at.segment,
            offset = at.offset,
            "the spool ended in a write cut short: cut off"
        );
        sink.spool_torn_bytes.inc_by(recovery.torn_bytes);
    }
    if recovery.cut_dangling {
        tracing::warn!("events spooled before a crash without their batch's end: cut as a batch");
    }
    if let Some((at, problem)) = recovery.mark {
        let what = match problem {
            MarkProblem::Damaged => {
                "the commit mark was damaged: the spool is replayed from its start (stored batches are deduplicated)"
            }
            MarkProblem::MissingSegment => {
                "the commit mark points into a segment that is gone: reading goes on at the next one"
            }
            MarkProblem::PastEnd { .. } => {
                "the commit mark lies past the end of its segment (power loss?): reading goes on after it"
            }
            MarkProblem::NotOnFrame => {
                "the commit mark is not on a record boundary: reading resynchronises at the next record"
            }
        };
        tracing::error!(segment = at.segment, offset = at.offset, ?problem, "{what}");
        sink.spool_mark_repairs.inc();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use footfall_store::event::{Event, Kind};
    use footfall_store::row_binary;

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| Row::of(&Event::new(Kind::Pageview, i as i64)))
            .collect()
    }

    #[test]
    fn push_all_queues_every_row_or_none() {
        let queue = Queue::bounded(5, u64::MAX);
        assert!(queue.push_all(rows(3)).is_ok());
        let refused = queue.push_all(rows(3)).unwrap_err();
        assert_eq!(refused.len(), 3, "all given back");
        assert_eq!(queue.depth(), 3, "none of the refused ones queued");
        assert!(!queue.is_full());
        assert!(queue.push_all(rows(2)).is_ok(), "what fits goes in");
        assert!(queue.push(rows(1).pop().unwrap()).is_err(), "full");
        assert!(queue.is_full());
        let first = queue.pop().unwrap();
        assert_eq!(row_binary::timestamp(first.bytes()), Some(0), "in order");
        assert!(queue.push(rows(1).pop().unwrap()).is_ok(), "a slot freed");
        assert!(queue.push_all(rows(6)).is_err(), "larger than the queue");
    }

    #[test]
    fn the_bytes_held_are_bounded_too() {
        let mut long = Event::new(Kind::Pageview, 0);
        long.url = "u".repeat(2_000).into();
        let (small, large) = (rows(1).pop().unwrap(), Row::of(&long));
        let (small_len, large_len) = (small.bytes().len() as u64, large.bytes().len() as u64);
        let queue = Queue::bounded(1_000, large_len + 2 * small_len);
        assert!(queue.push(large).is_ok());
        assert!(queue.push_all(rows(2)).is_ok());
        assert_eq!(queue.bytes(), large_len + 2 * small_len);
        assert!(
            queue.push(rows(1).pop().unwrap()).is_err(),
            "no byte to spare"
        );
        assert!(queue.is_full());
        assert_eq!(queue.depth(), 3, "while slots are free");
        let popped = queue.pop().unwrap();
        assert_eq!(popped.bytes().len() as u64, large_len);
        assert_eq!(
            queue.bytes(),
            large_len + 2 * small_len,
            "held until durable"
        );
        assert!(
            queue.push(rows(1).pop().unwrap()).is_err(),
            "a popped row's room is not free"
        );
        queue.release(large_len);
        assert_eq!(queue.bytes(), 2 * small_len, "released");
        assert!(queue.push_all(rows(5)).is_ok(), "the long row's room");
        assert!(queue.push(Row::of(&long)).is_err());
        let roomy = Queue::bounded(1_000, 1 << 20);
        assert!(roomy.push_all(rows(100)).is_ok());
        assert!(
            !roomy.is_full(),
            "a full queue has less than a long row's room left"
        );
    }

    #[test]
    fn concurrent_pushes_never_overfill_or_lose_a_row() {
        let row_len = rows(1)[0].bytes().len() as u64;
        // The byte bound is the tighter one: 40 rows where 64 slots are.
        let queue = Queue::bounded(64, 40 * row_len);
        let pushed = AtomicUsize::new(0);
        let producers_done = AtomicUsize::new(0);
        let mut popped = 0;
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..2_000 {
                        if queue.push_all(rows(7)).is_ok() {
                            pushed.fetch_add(7, Ordering::Relaxed);
                        }
                    }
                    producers_done.fetch_add(1, Ordering::Release);
                });
            }
            while producers_done.load(Ordering::Acquire) < 4 || queue.depth() > 0 {
                assert!(queue.depth() <= 40);
                assert!(queue.bytes() <= 40 * row_len);
                if let Some(row) = queue.pop() {
                    queue.release(row.bytes().len() as u64);
                    popped += 1;
                }
            }
        });
        assert!(popped > 0);
        assert_eq!(pushed.into_inner(), popped);
        assert_eq!(queue.bytes(), 0);
    }
}
