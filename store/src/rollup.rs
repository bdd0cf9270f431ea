//! The `SELECT`s that turn events into `traffic_keyed_daily` rows: one text for the materialized
//! views (as events are inserted) and the backfill (for events stored before the views existed,
//! or after an erasure).
//!
//! Macros, so that the views' `&'static str` migrations and the backfill are one text. The
//! text says `{member_hash}` for the hash ids enter the states as: [`member_hash`] tells which
//! one the database's `traffic_keyed_daily` holds (`sessions_daily.sql` says it too, for that
//! table's).

use std::borrow::Cow;

use clickhouse::Client;

/// The key of the month of the event being read, from `$keys` (the `rollup_keys` table), as
/// the tuple a keyed SipHash takes; (0, 0) when the month has none (past retention).
macro_rules! month_key {
    ($keys:literal) => {
        concat!(
            "WITH (joinGet('",
            $keys,
            "', 'k0', toStartOfMonth(ts)), joinGet('",
            $keys,
            "', 'k1', toStartOfMonth(ts))) AS key\n"
        )
    };
}

/// A `SELECT` of `traffic_keyed_daily` rows from the events of `$kind` in `$events` (a table
/// name; `$filter` adds conditions), one per element of `$dimensions` (an array of
/// (dimension, k1, k2, k3) tuples). Visitor ids and networks enter the exact-count states only
/// as keyed SipHashes ([`member_hash`]) under their month's key from `$keys`
/// ([`crate::rollup_keys`]); a month without a key counts no one. Bots are left out.
macro_rules! keyed_rollup {
    ($events:literal, $keys:literal, $kind:literal, $dimensions:literal, $filter:literal) => {
        concat!(
            month_key!($keys),
            "SELECT site, toDate(ts) AS day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3,
       toUInt64(count()) AS hits,
       uniqExactStateIf({member_hash}(key, visitor_id), visitor_id != '' AND key.1 != 0)
           AS visitors,
       uniqExactStateIf({member_hash}(key, ip_prefix),
                        ip_prefix != '' AND visitor_id != '' AND key.1 != 0) AS networks
FROM ",
            $events,
            "
ARRAY JOIN ",
            $dimensions,
            " AS d
WHERE kind = '",
            $kind,
            "' AND NOT is_bot",
            $filter,
            "
GROUP BY site, day, dimension, k1, k2, k3"
        )
    };
}

/// Page views as `traffic_keyed_daily` rows, one per dimension. Internal navigation (referrer
/// on the same host) counts as no referrer.
macro_rules! pageview_rollup {
    ($events:literal, $keys:literal, $filter:literal) => {
        keyed_rollup!(
            $events,
            $keys,
            "pageview",
            "[('all', '', '', ''), ('page', path, '', ''),
    ('referrer', if(referrer_host = host, '', referrer_host), '', ''), ('country', country, '', ''),
    ('device', device, '', ''), ('browser', browser, '', ''), ('os', os, '', ''),
    ('campaign', utm_source, utm_medium, utm_campaign)]",
            $filter
        )
    };
}

/// Custom events as `traffic_keyed_daily` rows: one `event` row per name, and one `event_prop`
/// row per name, property and value.
macro_rules! custom_event_rollup {
    ($events:literal, $keys:literal, $filter:literal) => {
        keyed_rollup!(
            $events,
            $keys,
            "custom",
            "arrayConcat([('event', toString(event_name), '', '')],
    arrayMap((k, v) -> ('event_prop', toString(event_name), k, v), mapKeys(props), mapValues(props)))",
            $filter
        )
    };
}

/// Email opens as `traffic_keyed_daily` rows (site empty: opens belong to no site), recipients keyed
/// as above; no networks (recipients are signed, and image proxies hide networks).
macro_rules! email_rollup {
    ($events:literal, $keys:literal, $filter:literal) => {
        concat!(
            month_key!($keys),
            "SELECT '' AS site, toDate(ts) AS day, 'email' AS dimension, campaign AS k1, '' AS k2,
       '' AS k3, toUInt64(count()) AS hits,
       uniqExactStateIf({member_hash}(key, recipient), recipient != '' AND key.1 != 0)
           AS visitors,
       uniqExactStateIf({member_hash}(key, ip_prefix), false) AS networks
FROM ",
            $events,
            "
WHERE kind = 'email_open'",
            $filter,
            "
GROUP BY day, k1"
        )
    };
}

/// The `SELECT`s that compute `traffic_keyed_daily` rows from the events matching `filter` (an
/// SQL condition on `events`), with the keys of `database` and its [`member_hash`]. The keys'
/// table is named with its database: in a cluster each shard computes its part of the
/// `SELECT`, and there an unnamed database is `default`.
pub fn traffic_daily(database: &str, filter: &str, member_hash: &str) -> [String; 3] {
    let filter = format!(" AND ({filter})");
    let keys = format!("{database}.rollup_keys");
    [
        pageview_rollup!("events", "{keys}", "{filter}"),
        email_rollup!("events", "{keys}", "{filter}"),
        custom_event_rollup!("events", "{keys}", "{filter}"),
    ]
    .map(|select| {
        select
            .replace("{filter}", &filter)
            .replace("{keys}", &keys)
            .replace("{member_hash}", member_hash)
    })
}

/// The hash, under its month's key, that ids enter the exact-count states of `table`
/// (`traffic_keyed_daily` or `sessions_daily`) as, in the database `database`:
/// `sipHash64Keyed`, or `sipHash128Keyed` where the table was made before its states were
/// 64-bit. The rollups' SQL says `{member_hash}` for it, and a membership test must hash with
/// it too.
///
/// 64 bits because `uniqExact` keeps a `UInt64` as it is, but hashes a `FixedString(16)` again
/// (SipHash-128 of its bytes) and keeps 16 bytes: the 128-bit states cost ClickHouse 0.9–2.6 µs
/// more per stored page view, 8–23 % of all it spends on one (`benches/clickhouse_cost.sh`,
/// BENCHMARKS.md). A collision only makes a count one lower, so it never lifts a row past K;
/// n ids under one month's key collide with a probability of about n²/2⁶⁵ (3·10⁻⁶ for ten
/// million). The 128-bit states a database already holds cannot be converted (they hold hashes
/// of hashes), and the rollups outlive the events they were made from, so such a database keeps
/// them, and its views and backfill keep hashing to match.
pub async fn member_hash(
    client: &Client,
    database: &str,
    table: &str,
) -> Result<&'static str, clickhouse::error::Error> {
    let wide: u64 = client
        .query(
            "SELECT count() FROM system.columns WHERE database = ? AND table = ? \
             AND type = 'AggregateFunction(uniqExact, FixedString(16))'",
        )
        .bind(database)
        .bind(table)
        .fetch_one()
        .await?;
    Ok(if wide > 0 {
        "sipHash128Keyed"
    } else {
        "sipHash64Keyed"
    })
}

/// The condition on `events` of the days `[from, to]` (anything that prints as `YYYY-MM-DD`).
pub fn days(from: impl std::fmt::Display, to: impl std::fmt::Display) -> String {
    format!("toDate(ts) BETWEEN toDate('{from}') AND toDate('{to}')")
}

/// `sql` (a view of `traffic_keyed_daily`) with its `{member_hash}`, if it has one, replaced by
/// that table's [`member_hash`] in `database`.
pub async fn with_member_hash<'a>(
    client: &Client,
    database: &str,
    sql: &'a str,
) -> Result<Cow<'a, str>, clickhouse::error::Error> {
    if !sql.contains("{member_hash}") {
        return Ok(Cow::Borrowed(sql));
    }
    let hash = member_hash(client, database, "traffic_keyed_daily").await?;
    Ok(Cow::Owned(sql.replace("{member_hash}", hash)))
}
