//! The inserter: applies the schema, reads batches from the spool in order, and stores them in
//! ClickHouse.
//!
//! **Schema first, never blocking the start.** The collector listens and spools whether or not
//! ClickHouse answers; the inserter applies the schema as soon as it does (each attempt under a
//! timeout, so a server that accepts connections and never answers cannot hang it), before the
//! first insert, and again whenever an insert says the database or a table is gone.
//!
//! **Back to back, merged.** Batches waiting in the spool go out one insert after the other,
//! without waiting for the next cut, and consecutive batches are merged into one insert of up
//! to `merge_rows` rows: ClickHouse's cost per insert (a part per table and view, a round trip)
//! is what limited draining to about the incoming rate when every small batch went alone. A
//! merged insert gets a token of its own, recorded in the spool's commit mark *before* it is
//! sent ([`super::spool::Intent`]), so a replay after a crash sends the same rows with the same
//! token and ClickHouse stores them once.
//!
//! **Caught up, it yields.** On a host shared with ClickHouse, what sets the pixel's latency
//! tail is ClickHouse's share of the collector's core: an insert of a second's hits takes
//! ClickHouse a tenth of a second of CPU. An insert of one batch at its first attempt asks
//! ClickHouse for a lower priority (`--insert-nice`, [`Outgoing::urgent`]): open-loop p90 at
//! 10,000 hits/s a median of 0.72 ms against 1.09 ms, p99 4.6 against 5.6 ms (BENCHMARKS.md,
//! the open-loop tail). A backlog's inserts keep ClickHouse's own priority: with every insert
//! niced, a drain on two shared cores went at 1.8× the incoming rate, against 3.0–4.6×.
//!
//! **Failures told apart** ([`super::errors`]): retryable ones are retried with jittered backoff;
//! a missing database or table re-applies the schema; a batch ClickHouse refuses for good is
//! retried a few times, then moved to the [`super::quarantine`] (logged with the error, counted,
//! shown by `/readyz`) and the batches behind it go on. A merged insert refused for good is
//! split into its batches first, so only the batch at fault is quarantined.
//!
//! **A slow insert gets more time.** An insert that has not finished within its deadline
//! (`--insert-timeout-ms`, keys, erasure list and events together) is abandoned and sent again
//! with twice the time, up to ten minutes: with the same deadline every time, an
//! insert a loaded ClickHouse needs longer for would be sent forever and never committed, with
//! everything behind it. ClickHouse may have stored an abandoned insert; its token makes the
//! repeat a no-op.
//!
//! **Erasures first** ([`super::erasures`]): every insert starts with an erasure list at most
//! a second old and leaves out the rows an erasure made after they were answered covers.
//!
//! The inserter runs on a thread of its own with a single-threaded runtime ([`Inserter::spawn`]):
//! reading a batch back from the spool and compressing it (LZ4, for a server on another host)
//! takes milliseconds of CPU for a full batch, which on the server's runtime would stall every
//! connection of the worker it ran on. On its own thread that work, and the spool's file I/O, block nothing else.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clickhouse::Client;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::SinkStatus;
use super::backoff::Backoff;
use super::erasures::Erasures;
use super::errors::{Class, classify, setting_refused};
use super::insert::insert_filtered;
use super::quarantine::Quarantine;
use super::spool::{Intent, SpoolGauge, SpoolReader, SpooledBatch};
use crate::metrics::Metrics;
use footfall_store::ip_key::KeyRow;

/// How often the inserter looks at the spool when no cut woke it.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Longest one attempt to apply the schema may take.
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(10);
/// Most time one attempt at an insert is given, however often it timed out before.
const MAX_INSERT_DEADLINE: Duration = Duration::from_secs(600);
/// Attempts with a permanent error before a batch goes to the quarantine: a schema change in
/// progress may fail an insert once or twice.
const PERMANENT_ATTEMPTS: u32 = 3;

/// Applies the ClickHouse schema (every statement idempotent); the error is for the log.
pub type ApplySchema =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

pub struct Inserter {
    pub client: Client,
    /// `client` asking ClickHouse for a lower priority: for an insert while the spool is
    /// caught up (see [`Outgoing::urgent`]).
    pub caught_up_client: Client,
    pub reader: SpoolReader,
    pub gauge: Arc<SpoolGauge>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<SinkStatus>,
    pub cut_ready: Arc<Notify>,
    pub shutdown_grace: Duration,
    pub apply_schema: ApplySchema,
    pub quarantine: Quarantine,
    /// Most rows merged into one insert.
    pub merge_rows: u64,
    /// Time a first attempt at an insert is given; each timeout doubles it for the next one.
    pub insert_timeout: Duration,
    /// The erasures batches are filtered by before they go out.
    pub erasures: Erasures,
}

/// What the inserter did, returned when it stops.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InserterReport {
    pub rows_written: u64,
    /// Bytes left in the spool at exit, to be inserted after the next start.
    pub bytes_left: u64,
}

/// One insert: consecutive spooled batches and the token they go out with.
struct Outgoing {
    parts: Vec<SpooledBatch>,
    token: Uuid,
}

impl Outgoing {
    fn rows(&self) -> u64 {
        self.parts.iter().map(SpooledBatch::len).sum()
    }

    /// The keys of every part, each once.
    fn keys(&self) -> Vec<KeyRow> {
        let mut keys: Vec<KeyRow> = Vec::new();
        for key in self.parts.iter().flat_map(|p| &p.keys) {
            if !keys.iter().any(|k| k.key_id == key.key_id) {
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Whether ClickHouse should give the insert its full priority: a merged insert is a
    /// backlog, and a retry one that failed or timed out before. One batch at its first attempt
    /// is the spool caught up, where storing it a little later costs nothing and the pixel's
    /// answers, on a host shared with ClickHouse, come first. A niced insert that ClickHouse
    /// starves lets batches gather behind it, and they go out merged, at full priority.
    fn urgent(&self, attempt: u32) -> bool {
        self.parts.len() > 1 || attempt > 0
    }

    /// When the oldest event in it was accepted (ms).
    fn oldest_ms(&self) -> Option<i64> {
        self.parts.iter().filter_map(|p| p.oldest_ms).min()
    }
}

/// The shutdown signal and the grace period that follows it.
struct Control {
    drain: watch::Receiver<bool>,
    draining_since: Option<Instant>,
    grace: Duration,
}

impl Control {
    fn draining(&self) -> bool {
        self.draining_since.is_some()
    }

    fn given_up(&self) -> bool {
        self.draining_since
            .is_some_and(|t| t.elapsed() >= self.grace)
    }

    /// Runs `work` to its end, unless the shutdown grace period ends first (`None`).
    async fn within_grace<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            let deadline = self.draining_since.map(|t| t + self.grace);
            let until = tokio::time::Instant::from_std(
                deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                out = &mut work => return Some(out),
                _ = self.drain.changed(), if !self.draining() => self.draining_since = Some(Instant::now()),
                _ = tokio::time::sleep_until(until), if deadline.is_some() => return None,
            }
        }
    }

    /// Waits `delay` (cut short by shutdown); false once the grace period is over.
    async fn pause(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.drain.changed(), if !self.draining() => self.draining_since = Some(Instant::now()),
        }
        !self.given_up()
    }
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
    async fn run(mut self, drain: watch::Receiver<bool>) -> InserterReport {
        let mut report = InserterReport::default();
        let mut ctl = Control {
            drain,
            draining_since: None,
            grace: self.shutdown_grace,
        };
        match self.reader.count_recovered_rows() {
            Ok(rows) => self.gauge.add_recovered_rows(rows),
            Err(error) => tracing::warn!(%error, "could not count the rows left in the spool"),
        }
        match self.quarantine.files() {
            Ok(files) => self.set_quarantined(files.len() as u64),
            Err(error) => tracing::warn!(%error, "could not list the quarantine"),
        }
        if self.ensure_schema(&mut ctl).await {
            loop {
                match self.next_outgoing() {
                    Ok(Some(outgoing)) => {
                        if !self.store(outgoing, &mut report, &mut ctl).await {
                            break;
                        }
                        continue;
                    }
                    Ok(None) => {
                        self.metrics.sink.spool_oldest_unsent_seconds.set(0.0);
                    }
                    Err(error) => tracing::error!(%error, "reading the spool failed"),
                }
                if ctl.draining() {
                    break;
                }
                tokio::select! {
                    _ = self.cut_ready.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = ctl.drain.changed() => ctl.draining_since = Some(Instant::now()),
                }
            }
        }
        report.bytes_left = self.gauge.pending_bytes();
        report
    }

    /// Applies the schema, retrying until ClickHouse takes it. False if shutdown's grace
    /// period ran out first.
    async fn ensure_schema(&mut self, ctl: &mut Control) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let attempt = tokio::time::timeout(SCHEMA_TIMEOUT, (self.apply_schema)());
            let error = match ctl.within_grace(attempt).await {
                None => return false,
                Some(Ok(Ok(()))) => {
                    tracing::info!("ClickHouse schema applied");
                    self.metrics.sink.schema_applied.inc();
                    self.status.schema_ready.store(true, Ordering::Relaxed);
                    return true;
                }
                Some(Ok(Err(error))) => error,
                Some(Err(_)) => format!("no answer within {} s", SCHEMA_TIMEOUT.as_secs()),
            };
            self.metrics.sink.schema_failures.inc();
            let delay = backoff.next_delay();
            tracing::warn!(
                %error,
                retry_in_ms = delay.as_millis() as u64,
                "applying the ClickHouse schema failed: hits wait in the spool"
            );
            if !ctl.pause(delay).await {
                return false;
            }
        }
    }

    /// The next insert: the batches after the last one read, merged up to `merge_rows`, or
    /// exactly the ones of a recorded intent.
    fn next_outgoing(&mut self) -> std::io::Result<Option<Outgoing>> {
        let intent = self.reader.intent();
        let alone = self.reader.first_may_be_sent();
        let mut parts: Vec<SpooledBatch> = Vec::new();
        let mut rows = 0u64;
        loop {
            let enough = match intent {
                Some(intent) => self.reader.cursor() >= intent.end,
                None => rows >= self.merge_rows || (alone && !parts.is_empty()),
            };
            if enough {
                break;
            }
            match self.reader.next_batch() {
                Ok(Some(batch)) => {
                    self.count_damage(&batch);
                    rows += batch.len();
                    parts.push(batch);
                }
                Ok(None) => break,
                Err(error) if parts.is_empty() => return Err(error),
                Err(error) => {
                    tracing::error!(%error, "reading the spool failed");
                    break;
                }
            }
        }
        let token = match (intent, parts.len()) {
            (_, 0) => return Ok(None),
            (Some(intent), _) => intent.token,
            (None, 1) => parts[0].token,
            (None, _) => {
                let intent = Intent {
                    end: parts.last().expect("several").end,
                    token: Uuid::new_v4(),
                };
                match self.reader.record_intent(intent) {
                    Ok(()) => intent.token,
                    Err(error) => {
                        // Unrecorded, a merge could not be replayed alike: send one batch.
                        tracing::error!(%error, "recording a merged insert failed: sending batches one by one");
                        parts.truncate(1);
                        self.reader.rewind(parts[0].end);
                        parts[0].token
                    }
                }
            }
        };
        Ok(Some(Outgoing { parts, token }))
    }

    /// Damage skipped on the way to a batch: counted, and logged with where it was.
    fn count_damage(&self, batch: &SpooledBatch) {
        for damage in &batch.damage {
            tracing::error!(
                segment = damage.at.segment,
                offset = damage.at.offset,
                bytes = damage.len,
                "damaged spool records skipped"
            );
            self.metrics.sink.spool_corrupt_records.inc();
            self.metrics.sink.spool_skipped_bytes.inc_by(damage.len);
        }
    }

    /// Inserts `outgoing` until it is stored (or quarantined), then commits it. Returns false
    /// if it gave up because the shutdown grace period ran out.
    async fn store(
        &mut self,
        outgoing: Outgoing,
        report: &mut InserterReport,
        ctl: &mut Control,
    ) -> bool {
        let mut work = VecDeque::from([outgoing]);
        'work: while let Some(outgoing) = work.pop_front() {
            let rows = outgoing.rows();
            let keys = outgoing.keys();
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            let mut permanent = 0;
            let mut deadline = self.insert_timeout;
            let mut attempt = 0;
            while rows > 0 || !keys.is_empty() {
                self.show_oldest(&outgoing);
                let started = Instant::now();
                let urgent = outgoing.urgent(attempt);
                let client = match urgent {
                    true => &self.client,
                    false => &self.caught_up_client,
                };
                attempt += 1;
                let insert = tokio::time::timeout(
                    deadline,
                    insert_filtered(
                        client,
                        &mut self.erasures,
                        &keys,
                        outgoing.token,
                        outgoing.parts.iter().map(SpooledBatch::rows),
                    ),
                );
                let error = match ctl.within_grace(insert).await {
                    None => {
                        tracing::warn!(
                            "ClickHouse still not taking inserts at shutdown: the rest stays in the spool"
                        );
                        return false;
                    }
                    Some(Ok(Ok(erased))) => {
                        let sink = &self.metrics.sink;
                        sink.insert_seconds.observe(started.elapsed().as_secs_f64());
                        sink.batches_written.inc();
                        sink.rows_written.inc_by(rows - erased);
                        self.status.insert_ok.store(true, Ordering::Relaxed);
                        report.rows_written += rows - erased;
                        if erased > 0 {
                            sink.rows_erased.inc_by(erased);
                            tracing::info!(
                                rows = erased,
                                "spooled events of erased subjects dropped: an erasure made after they were answered covers them"
                            );
                        }
                        break;
                    }
                    Some(Ok(Err(error))) => error,
                    Some(Err(_)) => {
                        let longer = (deadline * 2).min(MAX_INSERT_DEADLINE);
                        tracing::warn!(
                            rows,
                            deadline_ms = deadline.as_millis() as u64,
                            next_deadline_ms = longer.as_millis() as u64,
                            "an insert took longer than its deadline: it is sent again with more time"
                        );
                        self.metrics.sink.insert_timeouts.inc();
                        deadline = longer;
                        clickhouse::error::Error::TimedOut
                    }
                };
                self.metrics.sink.insert_failures.inc();
                self.status.insert_ok.store(false, Ordering::Relaxed);
                if !urgent && setting_refused(&error) {
                    tracing::warn!(%error, "ClickHouse will not lower an insert's priority: inserts go at its own from now on (set --insert-nice 0 to stop asking)");
                    self.caught_up_client = self.client.clone();
                }
                match classify(&error) {
                    Class::SchemaGone => {
                        tracing::warn!(%error, "the database or a table is gone: applying the schema again");
                        self.status.schema_ready.store(false, Ordering::Relaxed);
                        if !self.ensure_schema(ctl).await {
                            return false;
                        }
                        continue;
                    }
                    Class::Permanent if outgoing.parts.len() > 1 => {
                        tracing::warn!(%error, batches = outgoing.parts.len(), "ClickHouse refused a merged insert: sending its batches one by one");
                        if let Err(error) = self.reader.drop_intent() {
                            tracing::error!(%error, "forgetting the merged insert failed");
                        }
                        for part in outgoing.parts.into_iter().rev() {
                            let token = part.token;
                            work.push_front(Outgoing {
                                parts: vec![part],
                                token,
                            });
                        }
                        continue 'work;
                    }
                    Class::Permanent => {
                        self.metrics.sink.insert_permanent_failures.inc();
                        permanent += 1;
                        if permanent >= PERMANENT_ATTEMPTS
                            && self.quarantine(&outgoing, &keys, &error)
                        {
                            break;
                        }
                    }
                    Class::Retry => {}
                }
                let delay = backoff.next_delay();
                tracing::warn!(%error, rows, retry_in_ms = delay.as_millis() as u64, "insert into ClickHouse failed");
                if !ctl.pause(delay).await {
                    tracing::warn!(
                        "ClickHouse still not taking inserts at shutdown: the rest stays in the spool"
                    );
                    return false;
                }
                self.metrics.sink.insert_retries.inc();
            }
            // The rows are stored. Until the mark says so nothing else is read: what is sent
            // next must be exactly what a restart would replay from the mark on disk.
            let end = outgoing.parts.last().expect("never empty").end;
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            while let Err(error) = self.reader.commit(end, rows, &self.gauge) {
                self.metrics.sink.spool_commit_failures.inc();
                let delay = backoff.next_delay();
                tracing::error!(%error, retry_in_ms = delay.as_millis() as u64, "committing the spool position failed (the rows are stored; a restart replays them and ClickHouse drops the repeat)");
                if !ctl.pause(delay).await {
                    return false;
                }
            }
        }
        true
    }

    /// Moves a batch ClickHouse keeps refusing to the quarantine. False if it could not be
    /// written there (it is then retried like any failed insert).
    fn quarantine(
        &self,
        outgoing: &Outgoing,
        keys: &[KeyRow],
        error: &clickhouse::error::Error,
    ) -> bool {
        let part = &outgoing.parts[0];
        let put = part
            .rows()
            .and_then(|mut rows| self.quarantine.put(keys, part.token, &mut rows));
        match put {
            Ok((file, rows)) => {
                tracing::error!(
                    %error,
                    rows,
                    token = %part.token,
                    file = %file.display(),
                    "ClickHouse refuses this batch for good: quarantined; fix the cause, then run `footfall-collector spool replay-quarantine`"
                );
                self.metrics.sink.batches_quarantined.inc();
                self.metrics.sink.rows_quarantined.inc_by(rows);
                self.set_quarantined(self.status.quarantined.load(Ordering::Relaxed) + 1);
                true
            }
            Err(io) => {
                tracing::error!(%io, %error, "ClickHouse refuses a batch for good, and writing it to the quarantine failed");
                false
            }
        }
    }

    fn set_quarantined(&self, batches: u64) {
        self.status.quarantined.store(batches, Ordering::Relaxed);
        self.metrics.sink.quarantine_batches.set(batches as i64);
    }

    fn show_oldest(&self, outgoing: &Outgoing) {
        let age = outgoing.oldest_ms().map_or(0.0, |ts| {
            (crate::routes::now_ms() - ts).max(0) as f64 / 1000.0
        });
        self.metrics.sink.spool_oldest_unsent_seconds.set(age);
    }
}
