//! A batch: the rows of one ClickHouse insert and the token that makes the insert idempotent,
//! and [`Rows`], how an insert reads them one after the other.
//!
//! The inserter never holds a spooled batch whole: it streams the rows from the spool file to
//! ClickHouse a chunk at a time ([`super::spool::SpooledBatch::rows`]), so the memory an insert
//! takes does not grow with its size, and inserts can be as large as ClickHouse likes them
//! (its cost per insert, a part per table and view, was the collector's largest CPU cost:
//! BENCHMARKS.md, ClickHouse's share). Held whole, a 50,000-row batch took the collector's peak
//! RSS from 57 to 88 MiB. [`Batch`] holds rows in memory where a whole batch is wanted: a
//! quarantined batch replayed by the operator's command (a process of its own), and tests.

use std::io;

use bytes::Bytes;
use uuid::Uuid;

use super::record;
use footfall_store::event::Event;

/// Rows read one after the other, wherever they are kept.
pub trait Rows {
    /// The next row's bytes, or `None` after the last.
    fn next_row(&mut self) -> io::Result<Option<&[u8]>>;
}

/// Events inserted together, as the rows the insert sends ([`record::encode`], back to back).
/// The token is sent as `insert_deduplication_token`, so a replayed batch, or a retried insert
/// that had in fact succeeded, is stored once.
pub struct Batch {
    pub token: Uuid,
    pub rows: Bytes,
    /// Where each row of `rows` ends: 4 bytes a row, so that rows are told apart without
    /// decoding anything.
    pub ends: Vec<u32>,
}

impl Batch {
    /// The batch of `events`, encoded here; the collector's own batches come from the spool,
    /// which holds them encoded already.
    pub fn of(token: Uuid, events: &[Event]) -> Self {
        let mut rows = Vec::new();
        let mut ends = Vec::with_capacity(events.len());
        for event in events {
            record::encode(event, &mut rows);
            ends.push(end_offset(rows.len()));
        }
        Self {
            token,
            rows: rows.into(),
            ends,
        }
    }

    /// Every row of `source`, held in memory.
    #[cfg(test)]
    pub fn read(token: Uuid, source: &mut impl Rows) -> io::Result<Self> {
        let (mut rows, mut ends) = (Vec::new(), Vec::new());
        while let Some(row) = source.next_row()? {
            rows.extend_from_slice(row);
            ends.push(end_offset(rows.len()));
        }
        Ok(Self {
            token,
            rows: rows.into(),
            ends,
        })
    }

    /// How many rows the batch holds.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each row's bytes, in order.
    pub fn rows(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.rows[start as usize..end as usize])
    }

    /// Its rows as a [`Rows`] source, for an insert.
    pub fn reader(&self) -> impl Rows + '_ {
        InMemory {
            batch: self,
            next: 0,
        }
    }
}

struct InMemory<'a> {
    batch: &'a Batch,
    next: usize,
}

impl Rows for InMemory<'_> {
    fn next_row(&mut self) -> io::Result<Option<&[u8]>> {
        let Some(&end) = self.batch.ends.get(self.next) else {
            return Ok(None);
        };
        let start = self.next.checked_sub(1).map_or(0, |i| self.batch.ends[i]);
        self.next += 1;
        Ok(Some(&self.batch.rows[start as usize..end as usize]))
    }
}

/// A row's end offset; batches are far below 4 GiB (the spool cuts them at a few MiB).
pub(super) fn end_offset(len: usize) -> u32 {
    u32::try_from(len).expect("a batch is far below 4 GiB")
}
