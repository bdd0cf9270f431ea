//! A batch: the rows of one ClickHouse insert and the token that makes the insert idempotent.

use bytes::Bytes;
use uuid::Uuid;

use super::record;
use footfall_store::event::Event;
use footfall_store::row_binary;

/// Events inserted together, as the rows the insert sends ([`record::encode`], back to back).
/// The token is sent as `insert_deduplication_token`, so a replayed batch, or a retried insert
/// that had in fact succeeded, is stored once.
pub struct Batch {
    pub token: Uuid,
    pub rows: Bytes,
    /// Where each row of `rows` ends: 4 bytes a row, so that a batch can be quarantined row by
    /// row and its oldest event found without decoding anything.
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

    /// The time of its oldest event, in milliseconds.
    pub fn oldest_ts(&self) -> Option<i64> {
        self.rows().filter_map(row_binary::timestamp).min()
    }
}

/// A row's end offset; batches are far below 4 GiB (the spool cuts them at a few MiB).
pub fn end_offset(len: usize) -> u32 {
    u32::try_from(len).expect("a batch is far below 4 GiB")
}
