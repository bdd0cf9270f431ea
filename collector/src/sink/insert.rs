//! The ClickHouse I/O of the sink: one batch, one insert (after the keys it needs).

use std::time::Duration;

use clickhouse::Client;

use super::batch::Batch;
use footfall_store::ip_key::KeyRow;

/// Longest a single insert may take before it counts as failed and is retried.
const INSERT_TIMEOUT: Duration = Duration::from_secs(30);

/// Stores `keys` and then `batch`. Keys go first so that no stored event refers to a key that
/// is not stored; a key stored twice is harmless (`ip_keys` collapses by `key_id`).
pub async fn insert_batch(
    client: &Client,
    keys: &[KeyRow],
    batch: &Batch,
) -> clickhouse::error::Result<()> {
    if !keys.is_empty() {
        let mut insert = client
            .insert::<KeyRow>("ip_keys")
            .await?
            .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT))
            .with_setting("async_insert", "0");
        for key in keys {
            insert.write(key).await?;
        }
        insert.end().await?;
    }
    let mut insert = client
        .insert::<footfall_store::event::Event>("events")
        .await?
        .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT))
        .with_setting("insert_deduplication_token", batch.token.to_string())
        // An asynchronous insert ignores the token (a server may turn them on by default), and
        // without the second setting the materialized views would count a replayed batch again.
        .with_setting("async_insert", "0")
        .with_setting("deduplicate_blocks_in_dependent_materialized_views", "1");
    for event in &batch.events {
        insert.write(event).await?;
    }
    insert.end().await
}
