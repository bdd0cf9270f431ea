//! The ClickHouse I/O of the sink: one insert of one or more spooled batches (after the keys
//! they need), and fetching the erasure list the batches are filtered by first.
//!
//! Events go in as `Native` blocks of about [`BLOCK_BYTES`], gathered from the spooled
//! RowBinary rows by cutting each row at its fields ([`footfall_store::native`]): ClickHouse
//! reads a block for about a third of what it spends reading the same rows, the largest cost
//! of an event anywhere in the system. The `clickhouse` crate's typed `Insert` would want rows
//! decoded into structs only to encode them again, so the blocks go through its
//! `insert_formatted_with`, which sends a body in a format of our choosing (LZ4-compressed like
//! the typed insert, unless ClickHouse is on this host: `footfall_store::config`). Every block
//! names its columns and types; ClickHouse converts a type it can (a `String` into the table's
//! `LowCardinality(String)`, a `UInt32` into a widened `UInt64`) and refuses the insert when it
//! cannot, or when a column is unknown to the table (`input_format_skip_unknown_fields=0`:
//! otherwise that column would be dropped without a word).
//!
//! Nothing here bounds how long an insert takes: its caller does, around the whole of it (keys,
//! erasure list, events), and gives a slow insert more time on each retry ([`super::inserter`]).

use std::io;

use clickhouse::Client;
use uuid::Uuid;

use super::batch::{Batch, Rows};
use super::body;
use super::erasures::{Erasures, List, keeps};
use footfall_store::erasure;
use footfall_store::ip_key::KeyRow;
use footfall_store::native::{Block, NotARow};

/// Rows gathered into one `Native` block before it is handed to the client (and compressed):
/// about the most an insert holds of its rows, whatever its size. Blocks of about 2,000 rows
/// cost ClickHouse no more than one of 50,000; blocks of 500 rows about a tenth more.
const BLOCK_BYTES: usize = 1 << 20;

const INSERT_EVENTS: &str = "INSERT INTO events FORMAT Native";

/// Stores the epoch `keys` a batch needs. They go before the events, so that no stored event
/// refers to a key that is not stored; a key stored twice is harmless (`ip_keys` collapses by
/// `key_id`).
async fn insert_keys(client: &Client, keys: &[KeyRow]) -> clickhouse::error::Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut insert = client
        .insert::<KeyRow>("ip_keys")
        .await?
        .with_setting("async_insert", "0");
    for key in keys {
        insert.write(key).await?;
    }
    insert.end().await
}

/// Stores the rows of `sources` (each opened as the insert reaches it) as one insert with
/// `token`, after [`insert_keys`], leaving out the rows `keep` refuses; returns how many it left
/// out. The rows go a block at a time, so the insert holds about one block whatever its size.
/// Nothing is sent when no row is kept. A source that cannot be read, or a row that is not one
/// of the events table, aborts the insert, which ClickHouse then does not store.
pub async fn insert_events<R: Rows>(
    client: &Client,
    token: Uuid,
    sources: impl IntoIterator<Item = io::Result<R>>,
    mut keep: impl FnMut(&[u8]) -> bool,
) -> clickhouse::error::Result<u64> {
    let mut insert = client
        .insert_formatted_with(INSERT_EVENTS)
        .with_setting("insert_deduplication_token", token.to_string())
        // An asynchronous insert ignores the token (a server may turn them on by default), and
        // without the second setting the materialized views would count a replayed batch again.
        .with_setting("async_insert", "0")
        .with_setting("deduplicate_blocks_in_dependent_materialized_views", "1")
        .with_setting("input_format_skip_unknown_fields", "0");
    let (mut dropped, mut started) = (0, false);
    let mut block = Block::new();
    for source in sources {
        let mut source = source.map_err(spool_error)?;
        while let Some(row) = source.next_row().map_err(spool_error)? {
            if !keep(row) {
                dropped += 1;
                continue;
            }
            block.push(row).map_err(not_a_row)?;
            started = true;
            if block.bytes() >= BLOCK_BYTES {
                insert.send(take(&mut block)).await?;
            }
        }
    }
    if !started {
        return Ok(dropped);
    }
    if block.rows() > 0 {
        insert.send(take(&mut block)).await?;
    }
    insert.end().await?;
    Ok(dropped)
}

/// The rows gathered in `block` as one `Native` block to send, leaving it empty.
fn take(block: &mut Block) -> bytes::Bytes {
    let mut body = body::buffer();
    block.write_to(&mut body);
    body::send(body)
}

/// Stores every row of `batch`, held in memory, under its token.
pub async fn insert_batch(client: &Client, batch: &Batch) -> clickhouse::error::Result<()> {
    let source = std::iter::once(Ok(batch.reader()));
    insert_events(client, batch.token, source, |_| true).await?;
    Ok(())
}

/// A spool read that failed mid-insert: retried like a network error.
fn spool_error(error: io::Error) -> clickhouse::error::Error {
    clickhouse::error::Error::Other(Box::new(error))
}

/// A row no insert can send: permanent ([`super::errors`]), so its batch goes to the quarantine.
fn not_a_row(error: NotARow) -> clickhouse::error::Error {
    clickhouse::error::Error::Other(Box::new(error))
}

/// Brings the erasure list in `erasures` up to date if it is older than an insert may start
/// with: one query of one row, and the records themselves only when they changed.
async fn refresh_erasures(
    client: &Client,
    erasures: &mut Erasures,
) -> clickhouse::error::Result<()> {
    let started = std::time::Instant::now();
    if !erasures.stale(started) {
        return Ok(());
    }
    let version = erasure::version(client).await?;
    if !erasures.current(version) {
        let (keys, rows) = erasure::fetch(client).await?;
        erasures.list = List::new(&keys, &rows);
    }
    erasures.checked(started, version);
    Ok(())
}

/// Stores `keys`, brings the erasure list up to date (just before the events go, so that the
/// list an insert starts with is never older than the bound an erasure relies on), then inserts
/// the rows of `sources` under `token` without the rows the list covers. Returns how many it
/// dropped. The markers the rows leave are kept only once the insert succeeded: a retry reads
/// the same rows again.
pub async fn insert_filtered<R: Rows>(
    client: &Client,
    erasures: &mut Erasures,
    keys: &[KeyRow],
    token: Uuid,
    sources: impl IntoIterator<Item = io::Result<R>>,
) -> clickhouse::error::Result<u64> {
    insert_keys(client, keys).await?;
    refresh_erasures(client, erasures).await?;
    let mut markers = erasures.markers.clone();
    let list = &erasures.list;
    let dropped =
        insert_events(client, token, sources, |row| keeps(list, &mut markers, row)).await?;
    erasures.markers = markers;
    Ok(dropped)
}
