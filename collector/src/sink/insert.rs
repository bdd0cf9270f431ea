//! The ClickHouse I/O of the sink: one insert of one or more spooled batches (after the keys
//! they need).

use std::time::Duration;

use clickhouse::Client;
use uuid::Uuid;

use super::batch::Batch;
use footfall_store::ip_key::KeyRow;

/// Longest a single insert may take before it counts as failed and is retried.
pub const INSERT_TIMEOUT: Duration = Duration::from_secs(30);

/// Stores `keys` and then the events of `batches` as one insert with `token`. Keys go first so
/// that no stored event refers to a key that is not stored; a key stored twice is harmless
/// (`ip_keys` collapses by `key_id`).
pub async fn insert_batch(
    client: &Client,
    keys: &[KeyRow],
    token: Uuid,
    batches: &[&Batch],
) -> clickhouse::error::Result<()> {
    if !keys.is_empty() {
        let mut insert = client
            .insert::<KeyRow>("ip_keys")
            .await?
            .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT));
        for key in keys {
            insert.write(key).await?;
        }
        insert.end().await?;
    }
    let mut insert = client
        .insert::<footfall_store::event::Event>("events")
        .await?
        .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT))
        .with_setting("insert_deduplication_token", token.to_string());
    for event in batches.iter().flat_map(|b| &b.events) {
        insert.write(event).await?;
    }
    insert.end().await
}
