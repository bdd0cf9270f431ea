//! The spool: an append-only, checksummed log of every accepted event, on disk.
//!
//! Every event the collector accepts is appended here (by the [`super::appender`]) before it is
//! inserted into ClickHouse (by the [`super::inserter`]), so an event that was answered survives a
//! ClickHouse outage, a restart and, but for the last fsync window, a crash.
//!
//! The log is a folder of segment files (`00000000000000000001.log`, ...) of [`super::frame`]s:
//! events (each as the RowBinary row its insert sends, so a batch is read back as the insert's
//! body, with nothing decoded), the epoch keys they were sealed with, and a *cut* after each
//! batch carrying the batch's insert deduplication token. A batch therefore reads back with the
//! same token however often it is replayed, and ClickHouse stores it once. The file `committed` records how far batches have
//! been inserted (and, while several batches go out as one insert, which ones and with which
//! token); segments wholly before it are deleted. Segments rotate at a cut once they reach a
//! size (an eighth of the spool's bound, at most 8 MiB) or an age, so committed data leaves the
//! disk promptly and the disk holds at most the bound plus one segment.
//!
//! Writes that fail (full disk, I/O error, a write cut short) never leave a partial frame that
//! later frames follow: the writer keeps every frame since the last fsync in memory, cuts the
//! file back to the last good frame boundary and writes again once the disk takes it.
//!
//! [`open`] locks the folder (one collector per data dir), and recovers a spool the collector did
//! not close: it checks the commit mark against the segments, truncates a torn tail, and cuts
//! events that were appended but never cut, so they form a batch of their own.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::disk::{DiskFaults, SegmentFile};
use super::frame::{self, FrameKind};
use super::record;
use super::scan::{Item, Scanner};
use footfall_store::event::Event;
use footfall_store::ip_key::KeyRow;
use read::{BatchRead, read_batch};

mod read;

pub use read::{Damage, SpooledBatch, SpooledRows};

/// The writer hands its buffer to the OS when it grows past this, even between syncs.
const WRITE_BUFFER_BYTES: usize = 256 << 10;
const COMMIT_FILE: &str = "committed";
const LOCK_FILE: &str = "lock";

/// How the spool cuts its log into segments, and the faults injected into its files.
#[derive(Clone)]
pub struct SpoolOptions {
    /// A segment is closed at the next cut once it is this long...
    pub segment_bytes: u64,
    /// ...or this old (and not empty).
    pub segment_age: Duration,
    pub faults: Arc<DiskFaults>,
}

impl SpoolOptions {
    /// Segments for a spool bounded to `max_bytes`: an eighth of it, between 64 KiB and 8 MiB.
    pub fn for_bound(max_bytes: u64) -> Self {
        Self {
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 8 << 20),
            segment_age: Duration::from_secs(10),
            faults: Arc::default(),
        }
    }
}

/// A place in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// How far the reader may read: the end of the last cut the writer handed to the OS, or the
/// start of the writer's segment when it has written none there yet (everything before it is
/// whole). Past it lies only the open batch, which the reader would otherwise read and throw
/// away after every insert and every poll: the inserter spent more on copying such half-written
/// batches than on compressing the ones it sent (BENCHMARKS.md, where the microseconds go).
#[derive(Debug, Default)]
struct ReadableEnd(Mutex<Position>);

impl ReadableEnd {
    fn get(&self) -> Position {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, end: Position) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = end;
    }
}

/// Several batches sent as one insert: up to `end`, with `token`. Recorded before the insert,
/// so a replay after a crash sends exactly the same rows with the same token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub end: Position,
    pub token: Uuid,
}

/// What the spool holds, shared by the appender, the inserter and the metrics.
#[derive(Debug, Default)]
pub struct SpoolGauge {
    appended: AtomicU64,
    committed: AtomicU64,
    /// Bytes of the segments on disk other than the writer's.
    closed_bytes: AtomicU64,
    /// Length of the writer's segment, counting what it buffers.
    active_bytes: AtomicU64,
    appended_rows: AtomicU64,
    committed_rows: AtomicU64,
}

impl SpoolGauge {
    /// Bytes in the spool not yet inserted into ClickHouse.
    pub fn pending_bytes(&self) -> u64 {
        self.appended
            .load(Ordering::Relaxed)
            .saturating_sub(self.committed.load(Ordering::Relaxed))
    }

    /// Bytes the spool takes on disk (once its buffer is written), committed or not.
    pub fn disk_bytes(&self) -> u64 {
        self.closed_bytes.load(Ordering::Relaxed) + self.active_bytes.load(Ordering::Relaxed)
    }

    /// Events spooled and not yet inserted.
    pub fn backlog_rows(&self) -> u64 {
        self.appended_rows
            .load(Ordering::Relaxed)
            .saturating_sub(self.committed_rows.load(Ordering::Relaxed))
    }

    /// Counts `rows` found in the spool at start.
    pub fn add_recovered_rows(&self, rows: u64) {
        self.appended_rows.fetch_add(rows, Ordering::Relaxed);
    }
}

/// Something wrong with the commit mark, found (and repaired) at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkProblem {
    /// The `committed` file does not parse: everything in the spool is replayed (batches that
    /// were stored are deduplicated by their tokens).
    Damaged,
    /// The mark's segment is gone: reading goes on at the next segment there is.
    MissingSegment,
    /// The mark lies past the end of its segment (power loss cut the segment short): reading
    /// goes on after that segment.
    PastEnd { segment_len: u64 },
    /// The mark is inside a frame: reading resynchronises at the next frame, counting the skip.
    NotOnFrame,
}

/// What [`open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes after the last whole frame of the newest segment, cut off: a write cut short.
    pub torn_bytes: u64,
    /// Where they were.
    pub torn_at: Option<Position>,
    /// Whether events without a cut were found (and cut).
    pub cut_dangling: bool,
    /// The commit mark, when it did not match the segments.
    pub mark: Option<(Position, MarkProblem)>,
}

/// Why the spool cannot be opened.
pub fn locked_error(dir: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "another collector is using the spool in {} (its lock file is held); \
             give each collector a data dir of its own",
            dir.display()
        ),
    )
}

/// Opens (creating it if needed), locks and recovers the spool in `dir`.
pub fn open(
    dir: &Path,
    options: SpoolOptions,
    gauge: &SpoolGauge,
) -> io::Result<(SpoolWriter, SpoolReader, Recovery)> {
    fs::create_dir_all(dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(locked_error(dir)),
        Err(fs::TryLockError::Error(error)) => return Err(error),
    }
    let lock = Arc::new(lock);
    let segments = list_segments(dir)?;
    let mut recovery = Recovery::default();
    let (mut position, mut intent) = match read_commit(dir) {
        Ok(Some(mark)) => mark,
        Ok(None) => (first_position(&segments), None),
        Err(error) if error.kind() == io::ErrorKind::InvalidData => {
            recovery.mark = Some((first_position(&segments), MarkProblem::Damaged));
            (first_position(&segments), None)
        }
        Err(error) => return Err(error),
    };
    if recovery.mark.is_none()
        && let Some((repaired, problem)) = check_mark(dir, &segments, position)?
    {
        recovery.mark = Some((position, problem));
        position = repaired;
        intent = None;
    }
    if recovery.mark.is_some() {
        write_commit(dir, position, None)?;
    }
    for &seq in segments.iter().filter(|&&s| s < position.segment) {
        fs::remove_file(segment_path(dir, seq))?;
    }
    let last = segments
        .iter()
        .copied()
        .filter(|&s| s >= position.segment)
        .max();
    if let Some(last) = last {
        let start = if last == position.segment {
            position.offset
        } else {
            0
        };
        repair_tail(dir, last, start, &mut recovery)?;
    }
    let writer_segment = last.unwrap_or(position.segment).max(position.segment);
    let mut pending = 0;
    for seq in list_segments(dir)? {
        let len = fs::metadata(segment_path(dir, seq))?.len();
        if seq != writer_segment {
            gauge.closed_bytes.fetch_add(len, Ordering::Relaxed);
        }
        pending += if seq == position.segment {
            len.saturating_sub(position.offset)
        } else {
            len
        };
    }
    gauge.appended.fetch_add(pending, Ordering::Relaxed);
    let readable = Arc::new(ReadableEnd::default());
    let writer = SpoolWriter::create(
        dir,
        writer_segment,
        options,
        lock.clone(),
        readable.clone(),
        gauge,
    )?;
    let reader = SpoolReader {
        dir: dir.to_owned(),
        committed: position,
        cursor: position,
        intent,
        recovered_end: Position {
            segment: writer_segment,
            offset: writer.segment_len(),
        },
        pending_damage: Vec::new(),
        resumed: true,
        readable,
        _lock: lock,
    };
    Ok((writer, reader, recovery))
}

fn first_position(segments: &[u64]) -> Position {
    Position {
        segment: segments.first().copied().unwrap_or(1),
        offset: 0,
    }
}

/// Whether the mark `at` fits the segments; if not, where reading should go on instead.
fn check_mark(
    dir: &Path,
    segments: &[u64],
    at: Position,
) -> io::Result<Option<(Position, MarkProblem)>> {
    let later = segments.iter().copied().find(|&s| s > at.segment);
    if !segments.contains(&at.segment) {
        if at.offset == 0 && later.is_none() {
            return Ok(None); // the writer creates the segment
        }
        let segment = later.unwrap_or(at.segment);
        return Ok(Some((
            Position { segment, offset: 0 },
            MarkProblem::MissingSegment,
        )));
    }
    let file = File::open(segment_path(dir, at.segment))?;
    let segment_len = file.metadata()?.len();
    if at.offset > segment_len {
        let segment = later.unwrap_or(at.segment + 1);
        return Ok(Some((
            Position { segment, offset: 0 },
            MarkProblem::PastEnd { segment_len },
        )));
    }
    if at.offset < segment_len
        && !matches!(
            Scanner::new(file, at.offset)?.next_item()?,
            Item::Frame { .. }
        )
    {
        return Ok(Some((at, MarkProblem::NotOnFrame)));
    }
    Ok(None)
}

/// Scans segment `seq` from `start`, cuts off what follows its last whole frame, and appends a
/// cut after events that lack one. Damage before the last frame is left for the reader, which
/// skips and counts it when it reads that batch.
fn repair_tail(dir: &Path, seq: u64, start: u64, recovery: &mut Recovery) -> io::Result<()> {
    let path = segment_path(dir, seq);
    let file = File::open(&path)?;
    let len = file.metadata()?.len();
    let mut scanner = Scanner::new(file, start)?;
    let (mut good_end, mut last_kind) = (start, None);
    loop {
        match scanner.next_item()? {
            Item::Frame { kind, offset, len } => {
                good_end = offset + len;
                last_kind = Some(kind);
            }
            Item::Skipped { .. } => {}
            Item::End { .. } => break,
        }
    }
    let file = OpenOptions::new().append(true).open(&path)?;
    if len > good_end {
        recovery.torn_bytes = len - good_end;
        recovery.torn_at = Some(Position {
            segment: seq,
            offset: good_end,
        });
        file.set_len(good_end)?;
    }
    if last_kind.is_some_and(|k| k != FrameKind::Cut) {
        let mut cut = Vec::new();
        frame::encode(FrameKind::Cut, Uuid::new_v4().as_bytes(), &mut cut);
        io::Write::write_all(&mut &file, &cut)?;
        recovery.cut_dangling = true;
    }
    file.sync_all()
}

/// Appends frames to the newest segment. Buffered: [`SpoolWriter::sync`] makes them durable.
///
/// Frames since the last successful fsync stay in `buf` (`written` of them are in the file), so
/// that after any failed write or sync the file can be cut back to a frame boundary and the
/// frames written again: nothing acknowledged is lost to a disk that fails for a while.
pub struct SpoolWriter {
    dir: PathBuf,
    segment: u64,
    file: SegmentFile,
    opened: Instant,
    options: SpoolOptions,
    /// File length known durable: always a frame boundary.
    synced_len: u64,
    buf: Vec<u8>,
    written: usize,
    /// A write or sync failed: the file may hold bytes past `synced_len + written`.
    broken: bool,
    /// Events in `buf`: lost if the collector must stop before the disk takes them.
    unsynced_rows: u64,
    scratch: Vec<u8>,
    /// Where the last cut in this segment ends (counting what is buffered), or where the
    /// segment started being written.
    last_cut: u64,
    /// What the last sync took from `buf`.
    last_synced: usize,
    readable: Arc<ReadableEnd>,
    _lock: Arc<File>,
}

impl SpoolWriter {
    /// Opens segment `segment` for appending; what it holds already is whole (see [`open`]).
    fn create(
        dir: &Path,
        segment: u64,
        options: SpoolOptions,
        lock: Arc<File>,
        readable: Arc<ReadableEnd>,
        gauge: &SpoolGauge,
    ) -> io::Result<Self> {
        let file = SegmentFile::open(&segment_path(dir, segment), options.faults.clone())?;
        let synced_len = file.file_len()?;
        sync_dir(dir)?;
        gauge.active_bytes.store(synced_len, Ordering::Relaxed);
        readable.set(Position {
            segment,
            offset: synced_len,
        });
        Ok(Self {
            dir: dir.to_owned(),
            segment,
            file,
            opened: Instant::now(),
            options,
            synced_len,
            buf: Vec::new(),
            written: 0,
            broken: false,
            unsynced_rows: 0,
            scratch: Vec::with_capacity(1024),
            last_cut: synced_len,
            last_synced: 0,
            readable,
            _lock: lock,
        })
    }

    /// The segment's length, counting what is buffered.
    pub fn segment_len(&self) -> u64 {
        self.synced_len + self.buf.len() as u64
    }

    /// The segment's size limit.
    pub fn segment_bytes(&self) -> u64 {
        self.options.segment_bytes
    }

    /// Events buffered since the last successful sync.
    pub fn unsynced_rows(&self) -> u64 {
        self.unsynced_rows
    }

    /// Whether the last write or sync failed (and the buffer waits to be written again).
    pub fn failing(&self) -> bool {
        self.broken
    }

    /// Buffers one event, as the row its insert will send; returns the bytes it took. For
    /// writers that hold events, not rows: tools and tests.
    pub fn append_event(&mut self, event: &Event, gauge: &SpoolGauge) -> usize {
        let mut row = std::mem::take(&mut self.scratch);
        row.clear();
        record::encode(event, &mut row);
        let len = self.append_row(&row, gauge);
        self.scratch = row;
        len
    }

    /// Buffers one event's row ([`record::Row`]); returns the bytes it took.
    pub fn append_row(&mut self, row: &[u8], gauge: &SpoolGauge) -> usize {
        let len = self.append_frame(FrameKind::Row, row, gauge);
        gauge.appended_rows.fetch_add(1, Ordering::Relaxed);
        self.unsynced_rows += 1;
        len
    }

    pub fn append_key(&mut self, key: &KeyRow, gauge: &SpoolGauge) -> io::Result<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let encoded = postcard::to_extend(key, scratch).map_err(io::Error::other)?;
        let len = self.append_frame(FrameKind::Key, &encoded, gauge);
        self.scratch = encoded;
        Ok(len)
    }

    /// Ends the current batch and hands everything to the OS (so the reader sees it); closes the
    /// segment if it is full or old. The cut stays buffered if the write fails.
    pub fn cut(&mut self, token: Uuid, gauge: &SpoolGauge) -> io::Result<()> {
        self.append_frame(FrameKind::Cut, &token.as_bytes()[..], gauge);
        self.last_cut = self.segment_len();
        self.flush(gauge)?;
        let old = self.opened.elapsed() >= self.options.segment_age && self.segment_len() > 0;
        if self.segment_len() >= self.options.segment_bytes || old {
            self.sync(gauge)?;
            let next = self.successor(gauge);
            gauge
                .closed_bytes
                .fetch_add(self.synced_len, Ordering::Relaxed);
            match next {
                Ok(next) => *self = next,
                Err(error) => {
                    gauge
                        .closed_bytes
                        .fetch_sub(self.synced_len, Ordering::Relaxed);
                    gauge
                        .active_bytes
                        .store(self.segment_len(), Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Writes what is buffered once it is large, between cuts.
    pub fn flush_if_large(&mut self, gauge: &SpoolGauge) -> io::Result<()> {
        if self.buf.len() - self.written >= WRITE_BUFFER_BYTES {
            self.flush(gauge)?;
        }
        Ok(())
    }

    /// Writes the buffer to the file and the file to disk.
    pub fn sync(&mut self, gauge: &SpoolGauge) -> io::Result<()> {
        self.flush(gauge)?;
        if self.written > 0 {
            if let Err(error) = self.file.sync_data() {
                // What the failed sync covered may not be on disk: write it all again.
                self.broken = true;
                self.written = 0;
                return Err(error);
            }
            self.synced_len += self.written as u64;
            // The buffer is shrunk only when it holds over four times what the last two syncs
            // took, to twice that: under a steady load it then never grows again (shrunk to a
            // fixed size, it was regrown, copied and faulted in every interval, a fifth of the
            // appender's CPU; sized by one sync alone, a short one, as when a segment closed
            // just before, still shrank it), and what a burst took is given back soon after.
            let keep = 2 * self.buf.len().max(self.last_synced).max(WRITE_BUFFER_BYTES);
            self.last_synced = self.buf.len();
            self.buf.clear();
            self.written = 0;
            self.unsynced_rows = 0;
            if self.buf.capacity() > 2 * keep {
                self.buf.shrink_to(keep);
            }
        }
        gauge
            .active_bytes
            .store(self.segment_len(), Ordering::Relaxed);
        Ok(())
    }

    fn append_frame(&mut self, kind: FrameKind, payload: &[u8], gauge: &SpoolGauge) -> usize {
        let before = self.buf.len();
        frame::encode(kind, payload, &mut self.buf);
        let len = self.buf.len() - before;
        gauge.appended.fetch_add(len as u64, Ordering::Relaxed);
        gauge
            .active_bytes
            .store(self.segment_len(), Ordering::Relaxed);
        len
    }

    /// Bytes of the segment in the file, ending on a frame boundary.
    fn written_len(&self) -> u64 {
        self.synced_len + self.written as u64
    }

    /// The disk is full: ends this segment at its last whole frame and goes on in a new one
    /// with what is left to write. Once the old segment's batches are stored it is deleted,
    /// freeing the space the rest needs; without this a spool that filled the disk itself
    /// would wait forever for room its own segment holds. Records after the old segment's last
    /// cut read back as a batch of their own (see [`read_batch`]).
    fn close_early(&mut self, gauge: &SpoolGauge) -> io::Result<()> {
        let keep = self.written_len();
        self.file.set_len(keep)?;
        if let Err(error) = self.file.sync_data() {
            tracing::warn!(%error, "syncing a segment closed on a full disk failed");
        }
        let mut next = self.successor(gauge)?;
        gauge.closed_bytes.fetch_add(keep, Ordering::Relaxed);
        // A cut among the frames moved along now lies that much earlier in the new segment.
        next.last_cut = self.last_cut.saturating_sub(keep);
        next.unsynced_rows = self.unsynced_rows;
        next.broken = true;
        gauge
            .active_bytes
            .store(next.segment_len(), Ordering::Relaxed);
        *self = next;
        Ok(())
    }

    /// The writer of the next segment. It takes over this one's buffer, holding the frames not
    /// yet written: its room goes on too, rather than being regrown (copied and faulted in)
    /// from empty in every segment. On an error this writer is left as it was.
    fn successor(&mut self, gauge: &SpoolGauge) -> io::Result<Self> {
        let mut next = Self::create(
            &self.dir,
            self.segment + 1,
            self.options.clone(),
            self._lock.clone(),
            self.readable.clone(),
            gauge,
        )?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.drain(..self.written);
        next.buf = buf;
        next.last_synced = self.last_synced;
        Ok(next)
    }

    /// Writes the buffer's unwritten frames, first cutting the file back to its last good frame
    /// boundary if an earlier write or sync failed.
    pub fn flush(&mut self, gauge: &SpoolGauge) -> io::Result<()> {
        if self.broken {
            self.file.set_len(self.synced_len + self.written as u64)?;
            self.broken = false;
        }
        if self.written < self.buf.len() {
            if let Err(error) = self.file.write_all(&self.buf[self.written..]) {
                self.broken = true;
                if error.kind() == io::ErrorKind::StorageFull
                    && self.written_len() > 0
                    && let Err(close) = self.close_early(gauge)
                {
                    tracing::debug!(%close, "closing a segment on a full disk failed");
                }
                return Err(error);
            }
            self.written = self.buf.len();
        }
        self.readable.set(Position {
            segment: self.segment,
            offset: self.last_cut,
        });
        gauge
            .active_bytes
            .store(self.segment_len(), Ordering::Relaxed);
        Ok(())
    }
}

/// Reads whole batches in order, from the committed position on.
pub struct SpoolReader {
    dir: PathBuf,
    committed: Position,
    /// Where the next read starts: past the batches read but not yet committed.
    cursor: Position,
    intent: Option<Intent>,
    /// Where the spool ended when it was opened: rows before it are counted at start.
    recovered_end: Position,
    /// Damage found where no batch followed in the same segment, reported with the next batch.
    pending_damage: Vec<Damage>,
    /// No commit since the spool was opened (see [`SpoolReader::first_may_be_sent`]).
    resumed: bool,
    readable: Arc<ReadableEnd>,
    _lock: Arc<File>,
}

impl SpoolReader {
    /// Whether the first batch after the commit mark may have been inserted alone already: it
    /// may, until the first commit after opening, if the collector stopped between an insert
    /// and its commit. Such a batch must then go alone again, under its own token (unless a
    /// recorded intent covers it): merged with later ones under a new token, its rows would be
    /// stored twice.
    pub fn first_may_be_sent(&self) -> bool {
        self.resumed && self.intent.is_none()
    }

    /// The merged insert recorded before a crash, to be replayed exactly.
    pub fn intent(&self) -> Option<Intent> {
        self.intent
    }

    /// Reads again from `to` (a batch boundary after the commit mark).
    pub fn rewind(&mut self, to: Position) {
        self.cursor = to.max(self.committed);
    }

    /// Where the next read starts.
    pub fn cursor(&self) -> Position {
        self.cursor
    }

    /// The next complete batch after the ones already read, or `None` when the spool holds no
    /// complete batch yet.
    pub fn next_batch(&mut self) -> io::Result<Option<SpooledBatch>> {
        loop {
            if self.cursor >= self.readable.get() {
                return Ok(None);
            }
            let path = segment_path(&self.dir, self.cursor.segment);
            let later_segment = self.later_segment()?;
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => match later_segment {
                    Some(next) => {
                        self.cursor = Position {
                            segment: next,
                            offset: 0,
                        };
                        continue;
                    }
                    None => return Ok(None),
                },
                Err(e) => return Err(e),
            };
            let mut scanner = Scanner::new(file, self.cursor.offset)?;
            // A segment with a later one is closed: the writer never goes back to it.
            let closed = later_segment.is_some();
            match read_batch(&mut scanner, self.cursor.segment, path, closed)? {
                BatchRead::Complete(mut batch) => {
                    if !self.pending_damage.is_empty() {
                        self.pending_damage.append(&mut batch.damage);
                        batch.damage = std::mem::take(&mut self.pending_damage);
                    }
                    self.cursor = batch.end;
                    return Ok(Some(batch));
                }
                BatchRead::Exhausted(damage) => {
                    self.pending_damage.extend(damage);
                    self.cursor = Position {
                        segment: later_segment.expect("only closed segments are exhausted"),
                        offset: 0,
                    };
                }
                BatchRead::Unfinished => return Ok(None),
            }
        }
    }

    /// Event records in the spool when it was opened, from the commit mark on.
    pub fn count_recovered_rows(&self) -> io::Result<u64> {
        let mut rows = 0;
        for seq in list_segments(&self.dir)?
            .into_iter()
            .filter(|&s| s >= self.committed.segment && s <= self.recovered_end.segment)
        {
            let file = match File::open(segment_path(&self.dir, seq)) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let start = if seq == self.committed.segment {
                self.committed.offset
            } else {
                0
            };
            let mut scanner = Scanner::new(file, start)?;
            loop {
                match scanner.next_item()? {
                    Item::Frame { kind, offset, .. } => {
                        let at = Position {
                            segment: seq,
                            offset,
                        };
                        if at >= self.recovered_end {
                            break;
                        }
                        rows += u64::from(kind == FrameKind::Row);
                    }
                    Item::Skipped { .. } => {}
                    Item::End { .. } => break,
                }
            }
        }
        Ok(rows)
    }

    /// Records, before the insert, that the batches up to `intent.end` go out as one insert
    /// with `intent.token`.
    pub fn record_intent(&mut self, intent: Intent) -> io::Result<()> {
        write_commit(&self.dir, self.committed, Some(intent))?;
        self.intent = Some(intent);
        Ok(())
    }

    /// Forgets a recorded intent (its batches are sent one by one instead).
    pub fn drop_intent(&mut self) -> io::Result<()> {
        if self.intent.take().is_some() {
            write_commit(&self.dir, self.committed, None)?;
        }
        Ok(())
    }

    /// Records that everything before `end` (`rows` events) is stored, and deletes segments
    /// wholly before it.
    pub fn commit(&mut self, end: Position, rows: u64, gauge: &SpoolGauge) -> io::Result<()> {
        let consumed_bytes = self.distance_to(end)?;
        write_commit(&self.dir, end, None)?;
        self.intent = None;
        let segments = list_segments(&self.dir)?;
        let has_later = segments.iter().any(|&s| s > end.segment);
        for seq in segments {
            let path = segment_path(&self.dir, seq);
            let done = seq < end.segment
                || (seq == end.segment
                    && has_later
                    && fs::metadata(&path).is_ok_and(|m| m.len() <= end.offset));
            if done {
                let len = fs::metadata(&path)?.len();
                fs::remove_file(&path)?;
                gauge.closed_bytes.fetch_sub(len, Ordering::Relaxed);
            }
        }
        gauge.committed.fetch_add(consumed_bytes, Ordering::Relaxed);
        gauge.committed_rows.fetch_add(rows, Ordering::Relaxed);
        self.committed = end;
        self.cursor = self.cursor.max(end);
        self.resumed = false;
        Ok(())
    }

    /// Bytes from the commit mark to `end`, counting whole segments in between.
    fn distance_to(&self, end: Position) -> io::Result<u64> {
        if end.segment == self.committed.segment {
            return Ok(end.offset.saturating_sub(self.committed.offset));
        }
        let mut total = end.offset;
        for seq in list_segments(&self.dir)?
            .into_iter()
            .filter(|&s| s >= self.committed.segment && s < end.segment)
        {
            let len = fs::metadata(segment_path(&self.dir, seq))?.len();
            total += if seq == self.committed.segment {
                len.saturating_sub(self.committed.offset)
            } else {
                len
            };
        }
        Ok(total)
    }

    fn later_segment(&self) -> io::Result<Option<u64>> {
        Ok(list_segments(&self.dir)?
            .into_iter()
            .find(|&s| s > self.cursor.segment))
    }
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut segments: Vec<u64> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()
        })
        .collect();
    segments.sort_unstable();
    Ok(segments)
}

/// The commit mark: `segment offset`, then `end_segment end_offset token` while an intent is
/// recorded.
fn read_commit(dir: &Path) -> io::Result<Option<(Position, Option<Intent>)>> {
    let text = match fs::read_to_string(dir.join(COMMIT_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let damaged = || io::Error::new(io::ErrorKind::InvalidData, "the commit mark is damaged");
    let parts: Vec<&str> = text.split_whitespace().collect();
    let number = |i: usize| parts[i].parse::<u64>().map_err(|_| damaged());
    let position = |i: usize| -> io::Result<Position> {
        Ok(Position {
            segment: number(i)?,
            offset: number(i + 1)?,
        })
    };
    match parts.len() {
        2 => Ok(Some((position(0)?, None))),
        5 => {
            let token = Uuid::parse_str(parts[4]).map_err(|_| damaged())?;
            let end = position(2)?;
            Ok(Some((position(0)?, Some(Intent { end, token }))))
        }
        _ => Err(damaged()),
    }
}

fn write_commit(dir: &Path, at: Position, intent: Option<Intent>) -> io::Result<()> {
    let mut text = format!("{} {}", at.segment, at.offset);
    if let Some(Intent { end, token }) = intent {
        text += &format!(" {} {} {token}", end.segment, end.offset);
    }
    text.push('\n');
    replace_durably(&dir.join(COMMIT_FILE), text.as_bytes())
}

/// Writes `path` whole or not at all, durably: a temporary file (mode 0600) synced, renamed
/// over `path`, and the directory synced.
fn replace_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_durably_with(path, |file| io::Write::write_all(file, bytes))
}

/// [`replace_durably`] with the contents written by `write`, for a file too large to build in
/// memory first.
pub(super) fn replace_durably_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    if let Err(error) = write(&mut file).and_then(|()| file.sync_all()) {
        // A full disk is the likely cause: leave nothing behind that takes more of it.
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().expect("a file in a folder"))
}

/// Makes a new file's directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
