//! The spool: an append-only, checksummed log of every accepted event, on disk.
//!
//! Every event the collector accepts is appended here (by the [`super::appender`]) before it is
//! inserted into ClickHouse (by the [`super::inserter`]), so an event that was answered survives a
//! ClickHouse outage, a restart and, but for the last fsync window, a crash.
//!
//! The log is a folder of segment files (`00000000000000000001.log`, ...) of [`super::frame`]s:
//! events (each as the RowBinary row its insert sends, so a batch is read back as the insert's
//! body, with nothing decoded), the epoch keys they were sealed with, and a *cut* after each
//! batch carrying the batch's insert deduplication token. A batch therefore reads back with the same token however often it
//! is replayed, and ClickHouse stores it once. The file `committed` records how far batches have
//! been inserted; segments wholly before it are deleted.
//!
//! [`open`] recovers a spool the collector did not close: it truncates a torn last record, and
//! cuts events that were appended but never cut, so they form a batch of their own.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use super::batch::Batch;
use super::frame::{self, Decoded, FrameKind};
use footfall_store::event::Event;
use footfall_store::ip_key::KeyRow;
use footfall_store::row_binary;

/// A segment is closed (at the next cut) once it grows past this.
const SEGMENT_BYTES: u64 = 8 << 20;
/// The writer hands its buffer to the OS when it grows past this, even between syncs.
const WRITE_BUFFER_BYTES: usize = 256 << 10;
/// How much the reader reads from a segment at a time.
const READ_CHUNK_BYTES: u64 = 1 << 20;
const COMMIT_FILE: &str = "committed";

/// A place in the spool: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// Bytes appended and bytes committed since the spool was opened; their difference is what waits.
#[derive(Debug, Default)]
pub struct SpoolGauge {
    appended: AtomicU64,
    committed: AtomicU64,
}

impl SpoolGauge {
    /// Bytes in the spool not yet inserted into ClickHouse.
    pub fn pending_bytes(&self) -> u64 {
        self.appended
            .load(Ordering::Relaxed)
            .saturating_sub(self.committed.load(Ordering::Relaxed))
    }
}

/// What [`open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes of a torn last record, cut off.
    pub torn_bytes: u64,
    /// Damaged records skipped while scanning.
    pub corrupt_records: u64,
    /// Whether events without a cut were found (and cut).
    pub cut_dangling: bool,
}

/// Opens (creating it if needed) and recovers the spool in `dir`.
pub fn open(dir: &Path, gauge: &SpoolGauge) -> io::Result<(SpoolWriter, SpoolReader, Recovery)> {
    fs::create_dir_all(dir)?;
    let segments = list_segments(dir)?;
    let committed = read_commit(dir)?.unwrap_or(Position {
        segment: segments.first().copied().unwrap_or(1),
        offset: 0,
    });
    for &seq in segments.iter().filter(|&&s| s < committed.segment) {
        fs::remove_file(segment_path(dir, seq))?;
    }
    let mut recovery = Recovery::default();
    let last = segments
        .iter()
        .copied()
        .filter(|&s| s >= committed.segment)
        .max();
    if let Some(last) = last {
        let start = if last == committed.segment {
            committed.offset
        } else {
            0
        };
        recovery = repair_tail(&segment_path(dir, last), start)?;
    }
    let mut pending = 0;
    for seq in list_segments(dir)? {
        let len = fs::metadata(segment_path(dir, seq))?.len();
        pending += if seq == committed.segment {
            len.saturating_sub(committed.offset)
        } else {
            len
        };
    }
    gauge.appended.fetch_add(pending, Ordering::Relaxed);
    // Recovery left the last segment ending on a cut (or empty): the writer goes on in it.
    let writer = SpoolWriter::create(dir, last.unwrap_or(committed.segment))?;
    let reader = SpoolReader {
        dir: dir.to_owned(),
        position: committed,
    };
    Ok((writer, reader, recovery))
}

/// Scans one segment from `start`, cuts off a torn or unreadable tail, and appends a cut after
/// events that lack one.
fn repair_tail(path: &Path, start: u64) -> io::Result<Recovery> {
    let bytes = fs::read(path)?;
    let mut recovery = Recovery::default();
    let mut at = (start as usize).min(bytes.len());
    let mut dangling = false;
    while at < bytes.len() {
        match frame::decode(&bytes[at..]) {
            Decoded::Frame { kind, len, .. } => {
                dangling = kind != FrameKind::Cut;
                at += len;
            }
            Decoded::Corrupt { skip: Some(len) } => {
                recovery.corrupt_records += 1;
                at += len;
            }
            Decoded::Incomplete | Decoded::Corrupt { skip: None } => break,
        }
    }
    recovery.torn_bytes = (bytes.len() - at) as u64;
    let mut file = OpenOptions::new().write(true).open(path)?;
    if recovery.torn_bytes > 0 {
        file.set_len(at as u64)?;
    }
    if dangling {
        let mut cut = Vec::new();
        frame::encode(FrameKind::Cut, Uuid::new_v4().as_bytes(), &mut cut);
        file.seek(SeekFrom::End(0))?;
        file.write_all(&cut)?;
        recovery.cut_dangling = true;
    }
    file.sync_all()?;
    Ok(recovery)
}

/// Appends frames to the newest segment. Buffered: [`SpoolWriter::sync`] makes them durable.
pub struct SpoolWriter {
    dir: PathBuf,
    segment: u64,
    file: File,
    segment_len: u64,
    buffer: Vec<u8>,
    scratch: Vec<u8>,
    unsynced: bool,
}

impl SpoolWriter {
    fn create(dir: &Path, segment: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(segment_path(dir, segment))?;
        let segment_len = file.metadata()?.len();
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            segment,
            file,
            segment_len,
            buffer: Vec::with_capacity(WRITE_BUFFER_BYTES),
            scratch: Vec::with_capacity(1024),
            unsynced: false,
        })
    }

    /// Appends one event, as the row its insert will send; returns the bytes it took.
    pub fn append_event(&mut self, event: &Event, gauge: &SpoolGauge) -> io::Result<usize> {
        let mut row = std::mem::take(&mut self.scratch);
        row.clear();
        row_binary::encode(event, &mut row);
        let len = self.append_frame(FrameKind::Row, &row, gauge);
        self.scratch = row;
        self.flush_if_full()?;
        Ok(len)
    }

    pub fn append_key(&mut self, key: &KeyRow, gauge: &SpoolGauge) -> io::Result<usize> {
        self.append_encoded(FrameKind::Key, key, gauge)
    }

    /// Ends the current batch, hands everything to the OS (so the reader sees it), and starts a
    /// new segment if this one is full.
    pub fn cut(&mut self, token: Uuid, gauge: &SpoolGauge) -> io::Result<()> {
        self.append_frame(FrameKind::Cut, &token.as_bytes()[..], gauge);
        self.flush()?;
        if self.segment_len >= SEGMENT_BYTES {
            self.sync()?;
            *self = Self::create(&self.dir, self.segment + 1)?;
        }
        Ok(())
    }

    /// Writes the buffer to the file and the file to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    fn append_encoded<T: serde::Serialize>(
        &mut self,
        kind: FrameKind,
        value: &T,
        gauge: &SpoolGauge,
    ) -> io::Result<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let encoded = postcard::to_extend(value, scratch).map_err(io::Error::other)?;
        let len = self.append_frame(kind, &encoded, gauge);
        self.scratch = encoded;
        self.flush_if_full()?;
        Ok(len)
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buffer.len() >= WRITE_BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn append_frame(&mut self, kind: FrameKind, payload: &[u8], gauge: &SpoolGauge) -> usize {
        let before = self.buffer.len();
        frame::encode(kind, payload, &mut self.buffer);
        let len = self.buffer.len() - before;
        gauge.appended.fetch_add(len as u64, Ordering::Relaxed);
        len
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.file.write_all(&self.buffer)?;
            self.segment_len += self.buffer.len() as u64;
            self.buffer.clear();
            self.unsynced = true;
        }
        Ok(())
    }
}

/// A batch read back from the spool.
pub struct SpooledBatch {
    pub batch: Batch,
    pub keys: Vec<KeyRow>,
    /// Where the next batch starts; commit it once this batch is stored.
    pub end: Position,
    /// Damaged records skipped on the way.
    pub corrupt_records: u64,
}

/// Reads whole batches in order, from the committed position on.
pub struct SpoolReader {
    dir: PathBuf,
    position: Position,
}

impl SpoolReader {
    /// The next complete batch, or `None` when the spool holds no complete batch yet.
    pub fn next_batch(&mut self) -> io::Result<Option<SpooledBatch>> {
        loop {
            let path = segment_path(&self.dir, self.position.segment);
            let later_segment = self.later_segment()?;
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => match later_segment {
                    Some(next) => {
                        self.position = Position {
                            segment: next,
                            offset: 0,
                        };
                        continue;
                    }
                    None => return Ok(None),
                },
                Err(e) => return Err(e),
            };
            file.seek(SeekFrom::Start(self.position.offset))?;
            match read_batch(&mut file)? {
                BatchRead::Complete {
                    batch,
                    keys,
                    len,
                    corrupt_records,
                } => {
                    let end = Position {
                        segment: self.position.segment,
                        offset: self.position.offset + len,
                    };
                    return Ok(Some(SpooledBatch {
                        batch,
                        keys,
                        end,
                        corrupt_records,
                    }));
                }
                // A closed segment always ends in a cut; what follows the last one is debris.
                BatchRead::Unfinished if later_segment.is_some() => {
                    self.position = Position {
                        segment: later_segment.expect("checked"),
                        offset: 0,
                    };
                }
                BatchRead::Unfinished => return Ok(None),
            }
        }
    }

    /// Records that everything before `end` is stored, and deletes segments wholly before it.
    pub fn commit(&mut self, end: Position, gauge: &SpoolGauge) -> io::Result<()> {
        let consumed_bytes = self.distance_to(end)?;
        let tmp = self.dir.join(format!("{COMMIT_FILE}.tmp"));
        fs::write(&tmp, format!("{} {}\n", end.segment, end.offset))?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, self.dir.join(COMMIT_FILE))?;
        for seq in list_segments(&self.dir)?
            .into_iter()
            .filter(|&s| s < end.segment)
        {
            fs::remove_file(segment_path(&self.dir, seq))?;
        }
        gauge.committed.fetch_add(consumed_bytes, Ordering::Relaxed);
        self.position = end;
        Ok(())
    }

    /// Bytes from the reader's position to `end`, counting whole segments in between.
    fn distance_to(&self, end: Position) -> io::Result<u64> {
        if end.segment == self.position.segment {
            return Ok(end.offset - self.position.offset);
        }
        let mut total = end.offset;
        for seq in list_segments(&self.dir)?
            .into_iter()
            .filter(|&s| s >= self.position.segment && s < end.segment)
        {
            let len = fs::metadata(segment_path(&self.dir, seq))?.len();
            total += if seq == self.position.segment {
                len.saturating_sub(self.position.offset)
            } else {
                len
            };
        }
        Ok(total)
    }

    fn later_segment(&self) -> io::Result<Option<u64>> {
        Ok(list_segments(&self.dir)?
            .into_iter()
            .find(|&s| s > self.position.segment))
    }
}

enum BatchRead {
    Complete {
        batch: Batch,
        keys: Vec<KeyRow>,
        len: u64,
        corrupt_records: u64,
    },
    Unfinished,
}

/// Reads frames from `file` up to and including the next cut.
fn read_batch(file: &mut File) -> io::Result<BatchRead> {
    // Room for a chunk and a partial frame carried over: no regrowth while reading.
    let mut buf = Vec::with_capacity(2 * READ_CHUNK_BYTES as usize);
    let mut at = 0;
    let mut consumed = 0u64;
    let (mut rows, mut row_count, mut keys, mut corrupt_records) = (Vec::new(), 0, Vec::new(), 0);
    loop {
        match frame::decode(&buf[at..]) {
            Decoded::Frame { kind, payload, len } => {
                at += len;
                consumed += len as u64;
                match kind {
                    FrameKind::Row => {
                        rows.extend_from_slice(payload);
                        row_count += 1;
                    }
                    FrameKind::Event => match postcard::from_bytes::<Event>(payload) {
                        Ok(event) => {
                            row_binary::encode(&event, &mut rows);
                            row_count += 1;
                        }
                        Err(_) => corrupt_records += 1,
                    },
                    FrameKind::Key => match postcard::from_bytes::<KeyRow>(payload) {
                        Ok(key) => keys.push(key),
                        Err(_) => corrupt_records += 1,
                    },
                    FrameKind::Cut => {
                        let token = Uuid::from_slice(payload).unwrap_or_else(|_| Uuid::new_v4());
                        let batch = Batch {
                            token,
                            len: row_count,
                            rows: rows.into(),
                        };
                        return Ok(BatchRead::Complete {
                            batch,
                            keys,
                            len: consumed,
                            corrupt_records,
                        });
                    }
                }
            }
            Decoded::Corrupt { skip: Some(len) } => {
                at += len;
                consumed += len as u64;
                corrupt_records += 1;
            }
            Decoded::Incomplete => {
                buf.drain(..at);
                at = 0;
                if Read::by_ref(file)
                    .take(READ_CHUNK_BYTES)
                    .read_to_end(&mut buf)?
                    == 0
                {
                    return Ok(BatchRead::Unfinished);
                }
            }
            Decoded::Corrupt { skip: None } => return Ok(BatchRead::Unfinished),
        }
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

fn read_commit(dir: &Path) -> io::Result<Option<Position>> {
    match fs::read_to_string(dir.join(COMMIT_FILE)) {
        Ok(text) => {
            let mut parts = text.split_whitespace().map(str::parse::<u64>);
            match (parts.next(), parts.next()) {
                (Some(Ok(segment)), Some(Ok(offset))) => Ok(Some(Position { segment, offset })),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the spool's commit file is damaged",
                )),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes a new file's directory entry durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use footfall_store::event::Kind;

    fn event(ts: i64) -> Event {
        let mut e = Event::new(Kind::Pageview, ts);
        e.event_id = Uuid::from_u128(ts as u128);
        e.site = "s".into();
        e.ip_sealed.0 = Some([7; footfall_seal::SEALED_IP_LEN]);
        e
    }

    fn key(id: u64) -> KeyRow {
        KeyRow {
            key_id: id,
            created: 1,
            sealed_key: vec![1, 2, 3],
        }
    }

    /// The `ts` of each row, which follows the 16-byte event id. The rows of a batch in these
    /// tests are all as long as each other.
    fn timestamps(batch: &SpooledBatch) -> Vec<i64> {
        let Batch { len, rows, .. } = &batch.batch;
        if *len == 0 {
            return Vec::new();
        }
        rows.chunks(rows.len() / *len as usize)
            .map(|row| i64::from_le_bytes(row[16..24].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn batches_read_back_in_order_with_their_keys_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, mut reader, recovery) = open(dir.path(), &gauge).unwrap();
        assert_eq!(recovery, Recovery::default());
        assert!(reader.next_batch().unwrap().is_none(), "empty spool");
        let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
        writer.append_event(&event(1), &gauge).unwrap();
        writer.append_event(&event(2), &gauge).unwrap();
        writer.append_key(&key(9), &gauge).unwrap();
        writer.cut(first, &gauge).unwrap();
        writer.append_event(&event(3), &gauge).unwrap();
        assert!(gauge.pending_bytes() > 0);

        let batch = reader.next_batch().unwrap().unwrap();
        assert_eq!(timestamps(&batch), [1, 2]);
        assert_eq!(batch.batch.token, first);
        assert_eq!(batch.keys.iter().map(|k| k.key_id).collect::<Vec<_>>(), [9]);
        assert_eq!(
            batch.batch.rows,
            Batch::of(first, &[event(1), event(2)]).rows,
            "the spool holds each event as its row, byte for byte"
        );
        reader.commit(batch.end, &gauge).unwrap();
        assert!(
            reader.next_batch().unwrap().is_none(),
            "the second batch has no cut yet"
        );
        writer.cut(second, &gauge).unwrap();
        let batch = reader.next_batch().unwrap().unwrap();
        assert_eq!((timestamps(&batch), batch.batch.token), (vec![3], second));
        reader.commit(batch.end, &gauge).unwrap();
        assert_eq!(gauge.pending_bytes(), 0);
    }

    #[test]
    fn an_uncommitted_batch_is_replayed_after_a_restart_with_the_same_token() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, _, _) = open(dir.path(), &gauge).unwrap();
        let token = Uuid::new_v4();
        writer.append_event(&event(1), &gauge).unwrap();
        writer.cut(token, &gauge).unwrap();
        writer.sync().unwrap();
        drop(writer);
        let (_, mut reader, _) = open(dir.path(), &SpoolGauge::default()).unwrap();
        let batch = reader.next_batch().unwrap().unwrap();
        assert_eq!((timestamps(&batch), batch.batch.token), (vec![1], token));
    }

    #[test]
    fn committed_batches_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, mut reader, _) = open(dir.path(), &gauge).unwrap();
        writer.append_event(&event(1), &gauge).unwrap();
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        let batch = reader.next_batch().unwrap().unwrap();
        reader.commit(batch.end, &gauge).unwrap();
        writer.append_event(&event(2), &gauge).unwrap();
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        drop((writer, reader));
        let (_, mut reader, _) = open(dir.path(), &SpoolGauge::default()).unwrap();
        let batch = reader.next_batch().unwrap().unwrap();
        assert_eq!(timestamps(&batch), [2]);
        reader.commit(batch.end, &SpoolGauge::default()).unwrap();
        drop(reader);
        for _ in 0..3 {
            let (_, mut reader, _) = open(dir.path(), &SpoolGauge::default()).unwrap();
            assert!(reader.next_batch().unwrap().is_none());
        }
        assert_eq!(
            list_segments(dir.path()).unwrap().len(),
            1,
            "restarts do not pile up segments"
        );
    }

    #[test]
    fn full_segments_rotate_at_a_cut_and_go_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, mut reader, _) = open(dir.path(), &gauge).unwrap();
        let mut big = event(0);
        big.url = "x".repeat(2000).into();
        let per_batch = 1000;
        let batches = (SEGMENT_BYTES as usize / (per_batch * 2000)) + 2;
        for b in 0..batches {
            for i in 0..per_batch {
                big.ts = (b * per_batch + i) as i64;
                writer.append_event(&big, &gauge).unwrap();
            }
            writer.cut(Uuid::new_v4(), &gauge).unwrap();
        }
        assert!(
            list_segments(dir.path()).unwrap().len() >= 2,
            "the log rotated"
        );
        let mut next_ts = 0;
        while let Some(batch) = reader.next_batch().unwrap() {
            assert_eq!(
                batch.batch.len, per_batch as u64,
                "a batch never spans two segments"
            );
            assert_eq!(timestamps(&batch)[0], next_ts, "in order, none skipped");
            next_ts += per_batch as i64;
            reader.commit(batch.end, &gauge).unwrap();
        }
        assert_eq!(next_ts, (batches * per_batch) as i64);
        assert_eq!(
            list_segments(dir.path()).unwrap().len(),
            1,
            "consumed segments are deleted"
        );
        assert_eq!(gauge.pending_bytes(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_dangling_events_get_a_cut() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, _, _) = open(dir.path(), &gauge).unwrap();
        writer.append_event(&event(1), &gauge).unwrap();
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        writer.append_event(&event(2), &gauge).unwrap();
        writer.append_event(&event(3), &gauge).unwrap();
        writer.sync().unwrap();
        drop(writer);
        // A crash in the middle of writing the next record.
        let segment = segment_path(
            dir.path(),
            *list_segments(dir.path()).unwrap().last().unwrap(),
        );
        let mut torn = Vec::new();
        frame::encode(FrameKind::Event, &[5; 200], &mut torn);
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&torn[..100]).unwrap();
        drop(file);

        let (_, mut reader, recovery) = open(dir.path(), &SpoolGauge::default()).unwrap();
        assert_eq!(recovery.torn_bytes, 100);
        assert!(recovery.cut_dangling);
        let first = reader.next_batch().unwrap().unwrap();
        assert_eq!(timestamps(&first), [1]);
        reader.commit(first.end, &SpoolGauge::default()).unwrap();
        let dangling = reader.next_batch().unwrap().unwrap();
        assert_eq!(
            timestamps(&dangling),
            [2, 3],
            "events without a cut form a batch of their own"
        );
        assert_eq!(
            dangling.corrupt_records, 0,
            "the torn record is never read as data"
        );
    }

    #[test]
    fn damaged_records_are_skipped_not_inserted() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, mut reader, _) = open(dir.path(), &gauge).unwrap();
        writer.append_event(&event(1), &gauge).unwrap();
        writer.append_event(&event(2), &gauge).unwrap();
        writer.cut(Uuid::new_v4(), &gauge).unwrap();
        let segment = segment_path(
            dir.path(),
            *list_segments(dir.path()).unwrap().last().unwrap(),
        );
        let mut bytes = fs::read(&segment).unwrap();
        bytes[frame::HEADER_LEN + 4] ^= 0xff;
        fs::write(&segment, bytes).unwrap();
        let batch = reader.next_batch().unwrap().unwrap();
        assert_eq!(timestamps(&batch), [2]);
        assert_eq!(batch.corrupt_records, 1);
    }

    #[test]
    fn events_spooled_before_rows_are_read_back_as_rows() {
        let dir = tempfile::tempdir().unwrap();
        let gauge = SpoolGauge::default();
        let (mut writer, mut reader, _) = open(dir.path(), &gauge).unwrap();
        writer
            .append_encoded(FrameKind::Event, &event(1), &gauge)
            .unwrap();
        writer.append_event(&event(2), &gauge).unwrap();
        let token = Uuid::new_v4();
        writer.cut(token, &gauge).unwrap();
        let batch = reader.next_batch().unwrap().unwrap();
        assert_eq!(batch.corrupt_records, 0);
        assert_eq!(batch.batch.len, 2);
        assert_eq!(
            batch.batch.rows,
            Batch::of(token, &[event(1), event(2)]).rows
        );
    }
}
