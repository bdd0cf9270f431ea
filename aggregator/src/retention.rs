//! `retention`: delete now what the retention period no longer allows.
//!
//! ClickHouse TTLs (set by the schema, `footfall-store`, from FOOTFALL_RETENTION_DAYS) remove expired
//! rows when parts merge, which may be days later. This command enforces the period at once,
//! for every table in [`RETENTION`] (raw events with their sealed IPs and email opens,
//! identities, and the IP epoch keys one day later), waiting for ClickHouse to finish. Deleting
//! an epoch's key makes whatever it sealed unreadable even where a row lingers. Likewise it
//! destroys the keys of the rollups' hashes for months past the period, after which nobody can
//! test those rollups for a person ([`rollup_keys`]).

use clickhouse::Client;
use footfall_store::cluster::Layout;
use footfall_store::retention::{RETENTION, Retained};
use footfall_store::rollup_keys;

use crate::{ClickHouseError, ch};

/// Rows one table lost.
#[derive(Debug)]
pub struct Purged {
    pub table: &'static str,
    pub days: u32,
    pub rows: u64,
}

/// Deletes every row older than `retention_days` (plus each table's extra days), on every shard
/// of a cluster.
pub async fn enforce(
    client: &Client,
    layout: &Layout,
    retention_days: u32,
) -> Result<Vec<Purged>, ClickHouseError> {
    let mut purged = Vec::new();
    for Retained {
        table,
        time,
        extra_days,
    } in RETENTION
    {
        let days = retention_days + extra_days;
        let expired = format!("{time} < now() - INTERVAL {days} DAY");
        let rows: u64 = client
            .query(&format!("SELECT count() FROM {table} WHERE {expired}"))
            .fetch_one()
            .await
            .map_err(ch(format!("count expired rows in {table}")))?;
        if rows > 0 {
            layout
                .alter(
                    client,
                    table,
                    &format!("DELETE WHERE {expired} SETTINGS mutations_sync = 2"),
                )
                .await
                .map_err(ch(format!("delete expired rows from {table}")))?;
        }
        purged.push(Purged { table, days, rows });
    }
    // The rollups outlive the events; the keys of their hashes do not.
    let rows = rollup_keys::destroy_expired(client, retention_days, layout)
        .await
        .map_err(ch("destroy expired rollup keys"))?;
    purged.push(Purged {
        table: "rollup_keys",
        days: retention_days,
        rows,
    });
    Ok(purged)
}
