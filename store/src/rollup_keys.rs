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
use serde::{Deserialize, Serialize};

use crate::cluster::Layout;
use crate::migrations::{SchemaError, ch};

/// Months ahead for which keys exist.
const MONTHS_AHEAD: u32 = 24;

#[derive(clickhouse::Row, Serialize, Deserialize)]
struct Key {
    /// The month's first day (`Date`: days since the Unix epoch).
    month: u16,
    k0: u64,
    k1: u64,
}

/// Stores a key for every month from the oldest still within `retention_days` to
/// [`MONTHS_AHEAD`] months ahead that has none. In a cluster every node's views read the keys
/// of its own `rollup_keys`, so every node must hold the same ones: they are made on the first
/// node and copied from it to each other node that lacks them (a node restarted empty gets
/// them all again); with different keys, an id seen on two shards would count twice.
pub async fn ensure(
    client: &Client,
    database: &str,
    retention_days: u32,
    layout: &Layout,
) -> Result<(), SchemaError> {
    let nodes = layout
        .nodes(client)
        .await
        .map_err(ch("list the cluster's nodes"))?;
    let (first, others) = nodes.split_first().expect("at least one node");
    let months: Vec<u16> = first
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
    let mut rng = rand::rngs::OsRng;
    let made: Vec<Key> = months
        .into_iter()
        .map(|month| Key {
            month,
            k0: rng.next_u64(),
            k1: rng.next_u64(),
        })
        .collect();
    store(first, database, &made).await?;
    if others.is_empty() {
        return Ok(());
    }
    let keys: Vec<Key> = first
        .query(&format!("SELECT ?fields FROM {database}.rollup_keys"))
        .fetch_all()
        .await
        .map_err(ch("read the rollup keys"))?;
    for node in others {
        let held: Vec<u16> = node
            .query(&format!("SELECT month FROM {database}.rollup_keys"))
            .fetch_all()
            .await
            .map_err(ch("list a node's rollup keys"))?;
        let missing: Vec<&Key> = keys.iter().filter(|k| !held.contains(&k.month)).collect();
        store(node, database, &missing).await?;
    }
    Ok(())
}

/// Inserts `keys` (in the body, never in a query's text).
async fn store<K: std::borrow::Borrow<Key>>(
    client: &Client,
    database: &str,
    keys: &[K],
) -> Result<(), SchemaError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut insert = client
        .clone()
        .with_database(database)
        .insert::<Key>("rollup_keys")
        .await
        .map_err(ch("store rollup keys"))?;
    for key in keys {
        insert
            .write(key.borrow())
            .await
            .map_err(ch("store rollup keys"))?;
    }
    insert.end().await.map_err(ch("store rollup keys"))
}

/// Destroys the keys of the months entirely older than `retention_days`, on every node;
/// returns how many months lost theirs. `client` is bound to the database.
pub async fn destroy_expired(
    client: &Client,
    retention_days: u32,
    layout: &Layout,
) -> Result<u64, clickhouse::error::Error> {
    let expired = format!("addMonths(month, 1) <= today() - toIntervalDay({retention_days})");
    let mut destroyed = 0;
    for node in layout.nodes(client).await? {
        let n: u64 = node
            .query(&format!("SELECT count() FROM rollup_keys WHERE {expired}"))
            .fetch_one()
            .await?;
        if n > 0 {
            node.query(&format!(
                "ALTER TABLE rollup_keys DELETE WHERE {expired} SETTINGS mutations_sync = 2"
            ))
            .execute()
            .await?;
        }
        destroyed = destroyed.max(n);
    }
    Ok(destroyed)
}
