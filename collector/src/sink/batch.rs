//! A batch: the rows of one ClickHouse insert and the token that makes the insert idempotent.

use bytes::Bytes;
use uuid::Uuid;

use footfall_store::event::Event;
use footfall_store::row_binary;

/// Events inserted together, as the RowBinary rows the insert sends ([`row_binary::encode`],
/// back to back). The token is sent as `insert_deduplication_token`, so a replayed batch, or a
/// retried insert that had in fact succeeded, is stored once.
pub struct Batch {
    pub token: Uuid,
    /// How many rows `rows` holds.
    pub len: u64,
    pub rows: Bytes,
}

impl Batch {
    /// The batch of `events`, encoded here; the collector's own batches come from the spool,
    /// which holds them encoded already.
    pub fn of(token: Uuid, events: &[Event]) -> Self {
        let mut rows = Vec::new();
        for event in events {
            row_binary::encode(event, &mut rows);
        }
        Self {
            token,
            len: events.len() as u64,
            rows: rows.into(),
        }
    }
}
