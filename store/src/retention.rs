//! Retention: which tables hold personal data, and the TTLs that expire it.
//!
//! Every table here expires with FOOTFALL_RETENTION_DAYS: by TTL as parts merge (set by
//! [`crate::migrations::migrate`]), and at once by `footfall-aggregator retention`, which reads
//! the same list. A table holding personal data that is missing here would be kept forever.

use clickhouse::Client;

use crate::cluster::Layout;
use crate::migrations::{SchemaError, ch};

/// A table whose rows expire with the retention period.
pub struct Retained {
    pub table: &'static str,
    /// The time (a `DateTime`) a row's age is counted from.
    pub time: &'static str,
    /// Days kept beyond the retention period.
    pub extra_days: u32,
}

/// Every table holding personal data; all of it expires (TTL here, `footfall-aggregator
/// retention` at once). An epoch key outlives the events sealed under it by a day, so no stored
/// event ever lacks its key, and none outlives them by more. Email opens are `events` rows.
/// Erasure records ([`crate::erasure`]) hold no id, only keyed hashes, and are kept as long as
/// the events they stop would be.
pub const RETENTION: &[Retained] = &[
    Retained {
        table: "events",
        time: "toDateTime(ts)",
        extra_days: 0,
    },
    Retained {
        table: "identities",
        time: "toDateTime(last_seen)",
        extra_days: 0,
    },
    Retained {
        table: "ip_keys",
        time: "created",
        extra_days: 1,
    },
    Retained {
        table: "erasures",
        time: "toDateTime(erased)",
        extra_days: 0,
    },
    // A month's key is made by its first erasure and hashes its last: it outlives the records
    // it hashed by at most a month.
    Retained {
        table: "erasure_keys",
        time: "created",
        extra_days: 31,
    },
];

/// Sets each table's TTL to the configured retention where it differs (in a cluster, on the
/// local tables of every node that differs). Changing a TTL does not rewrite existing parts at
/// once (`materialize_ttl_after_modify = 0`): expired rows go as parts merge, and
/// `footfall-aggregator retention` enforces it immediately.
pub(crate) async fn apply_ttls(
    client: &Client,
    database: &str,
    retention_days: u32,
    layout: &Layout,
) -> Result<(), SchemaError> {
    let nodes = layout
        .nodes(client)
        .await
        .map_err(ch("list the nodes of the cluster"))?;
    for Retained {
        table,
        time: column,
        extra_days,
    } in RETENTION
    {
        let days = retention_days + extra_days;
        let stored = layout.stored(table);
        let mut differs = false;
        for node in &nodes {
            let create: String = node
                .query(
                    "SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?",
                )
                .bind(database)
                .bind(&stored)
                .fetch_one()
                .await
                .map_err(ch(format!("read the definition of {stored}")))?;
            // ClickHouse shows `INTERVAL n DAY` as `toIntervalDay(n)`.
            differs |= !create.contains(&format!(" TTL {column} + toIntervalDay({days})"));
        }
        if differs {
            layout
                .alter(
                    client,
                    &format!("{database}.{table}"),
                    &format!(
                        "MODIFY TTL {column} + INTERVAL {days} DAY \
                         SETTINGS materialize_ttl_after_modify = 0"
                    ),
                )
                .await
                .map_err(ch(format!("set the retention of {table}")))?;
        }
    }
    Ok(())
}
