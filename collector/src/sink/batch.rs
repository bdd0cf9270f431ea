//! A batch: the events of one ClickHouse insert and the token that makes the insert idempotent.

use uuid::Uuid;

use footfall_store::event::Event;

/// Events inserted together. The token is sent as `insert_deduplication_token`, so a replayed
/// batch, or a retried insert that had in fact succeeded, is stored once.
pub struct Batch {
    pub token: Uuid,
    pub events: Vec<Event>,
}
