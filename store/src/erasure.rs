//! Erasures that reach hits still on their way to ClickHouse.
//!
//! `subject erase` deletes what ClickHouse holds. A collector that cannot reach ClickHouse keeps
//! answering and spools the hits; they are inserted once it reconnects, possibly after the
//! erasure finished, and would bring the person back. So the erasure is also recorded here, and
//! every collector drops, before each insert, the rows an erasure covers: the spool is read
//! back in order, so a row is filtered by what is known when it is sent, not when it was
//! answered.
//!
//! **What a record covers.** Every row answered before the erasure (`ts < until`) of
//! - a visitor (`visitor`): their events, whatever customer they carry;
//! - a customer (`customer`): events carrying their customer id, and email opens addressed to
//!   them;
//! - a customer's browser (`browser`): its unlinked events from `since` to `until`, the
//!   stretches in which the browser was the customer's by the rule of a subject request (from a
//!   link of theirs to the next link or sign-out). The collector follows the links and sign-outs
//!   in its own spool as well, so a browser first linked during the outage is covered, and
//!   another person who signs in on a shared computer keeps their hits.
//!
//! **No id, only keyed hashes.** A record holds HMAC-SHA256 (truncated to 128 bits) of the id
//! under a random key of `erasure_keys`, never the id, and reaches ClickHouse in an `INSERT`'s
//! body, never in a query's text (which `system.query_log` keeps). A key is made for each
//! calendar month (the first erasure of a month makes one; two made at once are both used,
//! each record names its key), so a collector hashes a row's ids once per month with erasures,
//! not once per erasure. HMAC rather than ClickHouse's SipHash: both programs hash in Rust, and
//! `hmac`/`sha2` are already the collector's.
//!
//! **How long.** A record lives as long as the events it stops would: FOOTFALL_RETENTION_DAYS
//! from the erasure. A hit answered before it and sent later still is older than the retention
//! period, and retention removes it like any expired event. The key of a month outlives the last
//! record hashed under it by at most a month (both expire by TTL and at once by
//! `footfall-aggregator retention`, [`crate::retention::RETENTION`]); then nobody can test the
//! hashes against an id any more, in a backup or anywhere else.
//!
//! **When a collector learns of one** ([`LIST_MAX_AGE`]). A collector starts no insert with a
//! list older than that (checked by [`version`], one row; the list is read again only when it
//! changed), so an erasure only has to wait for inserts that began within it of the
//! record, which it can see in `system.processes`: the alternative, a wait as long as the
//! longest insert may take, made every erasure last most of a minute.

use std::time::Duration;

use clickhouse::Client;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Oldest erasure list a collector may start an insert with.
pub const LIST_MAX_AGE: Duration = Duration::from_secs(1);

/// What a record matches ([`ErasureRow::target`]).
pub const VISITOR: &str = "visitor";
pub const CUSTOMER: &str = "customer";
pub const BROWSER: &str = "browser";

/// One row of `erasures`.
#[derive(Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct ErasureRow {
    /// The `erasure_keys` key the hash is made with.
    pub key_id: u64,
    /// [`VISITOR`], [`CUSTOMER`] or [`BROWSER`].
    pub target: String,
    /// [`Hasher::hash`] of the visitor or customer id.
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
    /// Rows answered from `since` (ms, inclusive) to `until` (ms, exclusive) are covered.
    pub since: i64,
    pub until: i64,
    /// When the erasure was made (ms); the record expires with the retention period from it.
    pub erased: i64,
}

/// One row of `erasure_keys`.
#[derive(Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct KeyRow {
    pub key_id: u64,
    /// Seconds since the Unix epoch (`DateTime('UTC')`).
    pub created: u32,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// The keyed hash of ids under one key, prepared once.
#[derive(Clone)]
pub struct Hasher(Hmac<Sha256>);

impl Hasher {
    pub fn new(key: &[u8]) -> Self {
        Self(Hmac::new_from_slice(key).expect("HMAC takes a key of any length"))
    }

    pub fn hash(&self, id: &[u8]) -> [u8; 16] {
        let mut mac = self.0.clone();
        mac.update(id);
        let full = mac.finalize().into_bytes();
        let mut out = [0; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

/// What an erasure covers, by id (hashed before it is stored).
pub enum Entry<'a> {
    Visitor(&'a str),
    Customer(&'a str),
    /// One stretch of a customer's browser; ms, `since` inclusive, `until` exclusive.
    Browser {
        visitor: &'a str,
        since: i64,
        until: i64,
    },
}

/// The time on ClickHouse's clock (ms): the one clock every program talks to, so the erasure
/// time is compared with hit times of collectors kept in step with it.
pub async fn now_ms(client: &Client) -> clickhouse::error::Result<i64> {
    client
        .query("SELECT toUnixTimestamp64Milli(now64(3))")
        .fetch_one()
        .await
}

/// Records an erasure made at `erased` (ms) covering `entries`, each until `erased` unless it
/// says otherwise. `client` is bound to the database.
pub async fn record(
    client: &Client,
    entries: &[Entry<'_>],
    erased: i64,
) -> clickhouse::error::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let key = month_key(client).await?;
    let hasher = Hasher::new(&key.key);
    let rows: Vec<ErasureRow> = entries
        .iter()
        .map(|entry| {
            let (target, id, since, until) = match *entry {
                Entry::Visitor(id) => (VISITOR, id, 0, erased),
                Entry::Customer(id) => (CUSTOMER, id, 0, erased),
                Entry::Browser {
                    visitor,
                    since,
                    until,
                } => (BROWSER, visitor, since, until),
            };
            ErasureRow {
                key_id: key.key_id,
                target: target.to_owned(),
                hash: hasher.hash(id.as_bytes()).to_vec(),
                since,
                until,
                erased,
            }
        })
        .collect();
    let mut insert = client.insert::<ErasureRow>("erasures").await?;
    for row in &rows {
        insert.write(row).await?;
    }
    insert.end().await
}

/// This month's key: the newest made this month, or a new one.
async fn month_key(client: &Client) -> clickhouse::error::Result<KeyRow> {
    let held: Option<KeyRow> = client
        .query(
            "SELECT ?fields FROM erasure_keys
             WHERE toStartOfMonth(created) = toStartOfMonth(now())
             ORDER BY created DESC, key_id LIMIT 1",
        )
        .fetch_optional()
        .await?;
    if let Some(key) = held {
        return Ok(key);
    }
    let mut rng = rand::rngs::OsRng;
    let mut bytes = vec![0; 32];
    rng.fill_bytes(&mut bytes);
    let created: u32 = client.query("SELECT toUInt32(now())").fetch_one().await?;
    let key = KeyRow {
        key_id: rng.next_u64(),
        created,
        key: bytes,
    };
    let mut insert = client.insert::<KeyRow>("erasure_keys").await?;
    insert.write(&key).await?;
    insert.end().await?;
    Ok(key)
}

/// What identifies the set of erasure records: how many there are and the latest erasure.
/// Records are only added (each a later erasure) and expired, so either changes with the set.
pub async fn version(client: &Client) -> clickhouse::error::Result<(u64, i64)> {
    client
        .query("SELECT count(), toUnixTimestamp64Milli(max(erased)) FROM erasures")
        .fetch_one()
        .await
}

/// Every erasure record, and the keys they are hashed with (no second query when there is
/// none, the usual case).
pub async fn fetch(client: &Client) -> clickhouse::error::Result<(Vec<KeyRow>, Vec<ErasureRow>)> {
    let rows: Vec<ErasureRow> = client
        .query("SELECT ?fields FROM erasures")
        .fetch_all()
        .await?;
    if rows.is_empty() {
        return Ok((Vec::new(), rows));
    }
    let keys = client
        .query("SELECT ?fields FROM erasure_keys WHERE key_id IN (SELECT key_id FROM erasures)")
        .fetch_all()
        .await?;
    Ok((keys, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_the_key_and_the_id() {
        let (a, b) = (Hasher::new(&[1; 32]), Hasher::new(&[2; 32]));
        assert_eq!(a.hash(b"v1"), a.hash(b"v1"));
        assert_ne!(a.hash(b"v1"), a.hash(b"v2"));
        assert_ne!(a.hash(b"v1"), b.hash(b"v1"));
    }
}
