//! Reading a batch back from the spool, twice: once to learn what it is, once to send it.
//!
//! The first pass ([`read_batch`]) walks the batch's frames to its cut and keeps only what the
//! inserter must know before the insert starts: the token (in the cut, after the rows), the
//! keys, how many rows, the oldest row's time and the damage skipped. The second pass
//! ([`SpooledBatch::rows`]) reads the rows again as the insert sends them, a chunk at a time.
//! Holding the rows between the two passes instead cost the collector a batch's size in memory
//! (88 MiB peak RSS with 50,000-row batches, 57 MiB with 10,000); reading twice costs a second
//! checksum and copy per row from the page cache, which the bigger inserts it allows repay many
//! times over in ClickHouse (BENCHMARKS.md, ClickHouse's share).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::super::batch::Rows;
use super::super::frame::FrameKind;
use super::super::scan::{Item, Scanner};
use super::Position;
use footfall_store::ip_key::KeyRow;
use footfall_store::row_binary;

/// A stretch of the spool that held no readable record, skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Damage {
    pub at: Position,
    pub len: u64,
}

/// A batch found in the spool: what an insert needs to know of it before its rows are sent.
pub struct SpooledBatch {
    /// The insert's deduplication token.
    pub token: Uuid,
    pub keys: Vec<KeyRow>,
    pub start: Position,
    /// Where the next batch starts; commit it once this batch is stored.
    pub end: Position,
    /// Damaged stretches skipped on the way (each cost one record or more).
    pub damage: Vec<Damage>,
    /// When its oldest event was accepted (ms).
    pub oldest_ms: Option<i64>,
    rows: u64,
    segment: PathBuf,
}

impl SpooledBatch {
    /// How many rows it holds.
    pub fn len(&self) -> u64 {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Its rows, read from the segment again. Every insert attempt reads them anew.
    pub fn rows(&self) -> io::Result<SpooledRows> {
        SpooledRows::open(&self.segment, self.start.offset, self.end.offset, self.rows)
    }
}

/// The rows of a [`SpooledBatch`] (or of a quarantined batch, kept in the same frames), read
/// from its file one after the other.
pub struct SpooledRows {
    scanner: Scanner,
    end: u64,
    expected: u64,
    read: u64,
    done: bool,
}

impl SpooledRows {
    /// The `expected` rows of the batch from `start` to `end` (or its cut) in the file at
    /// `path`; fewer or more fail the read.
    pub(in crate::sink) fn open(
        path: &Path,
        start: u64,
        end: u64,
        expected: u64,
    ) -> io::Result<Self> {
        Ok(Self {
            scanner: Scanner::new(File::open(path)?, start)?,
            end,
            expected,
            read: 0,
            done: false,
        })
    }
}

impl Rows for SpooledRows {
    fn next_row(&mut self) -> io::Result<Option<&[u8]>> {
        while !self.done {
            match self.scanner.next_item()? {
                Item::Frame { kind, offset, .. } if offset < self.end => match kind {
                    FrameKind::Row => {
                        self.read += 1;
                        return Ok(Some(self.scanner.payload()));
                    }
                    FrameKind::Key => {}
                    FrameKind::Cut => self.done = true,
                },
                // Counted when the batch was first read.
                Item::Skipped { .. } => {}
                Item::Frame { .. } | Item::End { .. } => self.done = true,
            }
        }
        if self.read != self.expected {
            // A segment is never written again once a cut is in it; if it was, the insert
            // fails (and is retried) rather than send rows the batch did not hold.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a spooled batch read back with {} rows instead of {}",
                    self.read, self.expected
                ),
            ));
        }
        Ok(None)
    }
}

pub(super) enum BatchRead {
    Complete(SpooledBatch),
    /// A closed segment holds nothing more but this damage.
    Exhausted(Vec<Damage>),
    Unfinished,
}

/// Reads frames up to and including the next cut, keeping none of the rows. In a closed
/// segment, records after the last cut (left by a crash or a failed write) form a batch of
/// their own, with a token derived from where they lie so that a replay carries the same one.
pub(super) fn read_batch(
    scanner: &mut Scanner,
    segment: u64,
    path: PathBuf,
    closed: bool,
) -> io::Result<BatchRead> {
    let start = Position {
        segment,
        offset: scanner.offset(),
    };
    let at = |offset| Position { segment, offset };
    let mut batch = SpooledBatch {
        token: Uuid::nil(),
        keys: Vec::new(),
        start,
        end: start,
        damage: Vec::new(),
        oldest_ms: None,
        rows: 0,
        segment: path,
    };
    loop {
        match scanner.next_item()? {
            Item::Frame { kind, offset, len } => match kind {
                FrameKind::Row => {
                    batch.rows += 1;
                    if let Some(ts) = row_binary::timestamp(scanner.payload()) {
                        batch.oldest_ms = Some(batch.oldest_ms.map_or(ts, |o| o.min(ts)));
                    }
                }
                FrameKind::Key => match postcard::from_bytes::<KeyRow>(scanner.payload()) {
                    Ok(key) => batch.keys.push(key),
                    Err(_) => batch.damage.push(Damage {
                        at: at(offset),
                        len,
                    }),
                },
                FrameKind::Cut => {
                    batch.token = Uuid::from_slice(scanner.payload())
                        .unwrap_or_else(|_| derived_token(start, batch.rows));
                    batch.end = at(offset + len);
                    return Ok(BatchRead::Complete(batch));
                }
            },
            Item::Skipped { offset, len } => batch.damage.push(Damage {
                at: at(offset),
                len,
            }),
            Item::End { .. } if !closed => return Ok(BatchRead::Unfinished),
            Item::End { tail } => {
                if tail > 0 {
                    batch.damage.push(Damage {
                        at: at(scanner.offset()),
                        len: tail,
                    });
                }
                if batch.rows == 0 && batch.keys.is_empty() {
                    return Ok(BatchRead::Exhausted(batch.damage));
                }
                batch.token = derived_token(start, batch.rows);
                batch.end = at(scanner.offset() + tail);
                return Ok(BatchRead::Complete(batch));
            }
        }
    }
}

/// A token for records whose cut was lost: the same for the same records at the same place.
fn derived_token(start: Position, rows: u64) -> Uuid {
    Uuid::from_u64_pair(
        start.segment ^ 0x5350_4f4f_4c00_0000,
        (start.offset << 24) ^ rows,
    )
}
