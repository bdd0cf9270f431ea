//! The keys of the rollups' hashes: one random 128-bit SipHash key per calendar month.
//!
//! The rollups' exact-count states hold hashes of visitor ids, recipients and networks. Unkeyed,
//! anyone with a person's id could hash it and test every state for them, for as long as the
//! rollups are kept (which is longer than the events). Keyed per month, the test needs the
//! month's key; and once a month is past the retention period its key is destroyed
//! ([`destroy_expired`]), so nobody can test that month's states for anyone again, while their
//! counts stay readable.
//!
//! Keys live in `rollup_keys`, a `Join` table (ANY, keyed by month) that the materialized views
//! read with `joinGet` as events arrive: the first key stored for a month is the one used, so
//! two programs creating keys at once agree. [`ensure`] stores keys for every month from the
//! oldest one still within retention to two years ahead; both programs call it on every
//! migration, and `serve` keeps it topped up. A month without a key (past retention) is not
//! counted: its events are gone by then anyway. Keys come from the operating system's random
//! generator and reach ClickHouse only in an `INSERT`'s body, never in a query's text (which
//! the query log keeps).

use clickhouse::Client;
use rand::RngCore as _;
use serde::Serialize;

use crate::migrations::{SchemaError, ch};

/// Months ahead for which keys exist.
const MONTHS_AHEAD: u32 = 24;

#[derive(clickhouse::Row, Serialize)]
struct Key {
    /// The month's first day (`Date`: days since the Unix epoch).
    month: u16,
    k0: u64,
    k1: u64,
}

/// Stores a key for every month from the oldest still within `retention_days` to
/// [`MONTHS_AHEAD`] months ahead that has none.
pub async fn ensure(
    client: &Client,
    database: &str,
    retention_days: u32,
) -> Result<(), SchemaError> {
    let months: Vec<u16> = client
        .query(&format!(
            "SELECT m FROM (
                 SELECT addMonths(toStartOfMonth(today() - toIntervalDay({retention_days})), toInt32(number)) AS m
                 FROM numbers(1000))
             WHERE m <= addMonths(today(), {MONTHS_AHEAD})
               AND m NOT IN (SELECT month FROM {database}.rollup_keys)"
        ))
        .fetch_all()
        .await
        .map_err(ch("list the months without a rollup key"))?;
    if months.is_empty() {
        return Ok(());
    }
    let mut insert = client
        .clone()
        .with_database(database)
        .insert::<Key>("rollup_keys")
        .await
        .map_err(ch("store rollup keys"))?;
    let mut rng = rand::rngs::OsRng;
    for month in months {
        let key = Key {
            month,
            k0: rng.next_u64(),
            k1: rng.next_u64(),
        };
        insert.write(&key).await.map_err(ch("store rollup keys"))?;
    }
    insert.end().await.map_err(ch("store rollup keys"))
}

/// Destroys the keys of the months entirely older than `retention_days`; returns how many.
/// `client` is bound to the database.
pub async fn destroy_expired(
    client: &Client,
    retention_days: u32,
) -> Result<u64, clickhouse::error::Error> {
    let expired = format!("addMonths(month, 1) <= today() - toIntervalDay({retention_days})");
    let n: u64 = client
        .query(&format!("SELECT count() FROM rollup_keys WHERE {expired}"))
        .fetch_one()
        .await?;
    if n > 0 {
        client
            .query(&format!(
                "ALTER TABLE rollup_keys DELETE WHERE {expired} SETTINGS mutations_sync = 2"
            ))
            .execute()
            .await?;
    }
    Ok(n)
}
