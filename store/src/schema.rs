//! The whole schema of both programs, as one list of versioned migrations.
//!
//! One list, so that a table has one definition and whichever program starts first creates all
//! of it: the rollups' materialized views exist before the first hit is stored, and no report
//! starts out empty. Append new migrations at the end with the next version; never change one
//! that has shipped (databases that applied it would not see the change; version 10 says why it
//! is the one exception).
//!
//! - `events` (one row per accepted hit) is ordered by (site, day, visitor, time): reports filter
//!   by site and date range, and sessionising a visitor's day reads adjacent rows. Partitions are
//!   months, so retention drops whole parts. Insert deduplication
//!   (`non_replicated_deduplication_window`) makes a retried batch with the same token a no-op.
//! - `ip_keys` holds each epoch's data key, sealed to the IP public key.
//! - `identities` (which visitor ids a customer was seen with) is filled from events by a view.
//! - `traffic_keyed_daily` (AggregatingMergeTree; `traffic_daily` before its hashes were keyed)
//!   holds page views and exact unique-visitor and network states per site × day × dimension,
//!   custom events (per name, and per name, property and value) and email opens with
//!   unique-recipient states per campaign, filled by
//!   materialized views as events are inserted ([`crate::rollup`] holds their `SELECT`s).
//!   `uniqExact` (not HLL) because the K-anonymity threshold must not be approximate. Like
//!   `events` it keeps the hashes of recent blocks, so a replayed insert is counted once.
//! - `sessions_daily` holds what only a finished visit tells (visits, bounces, visit duration,
//!   engaged time, exits and scroll depth per page), each with a keyed unique-visitor state of
//!   the visitors behind it, recomputed for whole days by the aggregator ([`crate::rules`]).
//! - `rollup_keys` holds the monthly keys of the rollups' hashes ([`crate::rollup_keys`]).
//! - `traffic_monthly` holds both, finished, for each closed calendar month.
//! - `erasures` and `erasure_keys`: every erasure, as keyed hashes, for collectors to drop the
//!   hits still in their spools that it covers ([`crate::erasure`]).
//! - `goals` and `funnels`: what each site counts as a conversion, and its funnel's steps.
//! - `api_tokens` and `audit_log`: who may export, and every export, subject request and refusal
//!   (`export_audit`, its predecessor, is copied into it and dropped).
//!
//! Before this list existed the collector and the aggregator kept their own (`component`
//! `collector` versions 1, 3 and 4, `aggregator` 1 to 3 in `schema_migrations`); [`Migration::was`]
//! says which old record stands for each migration, so such a database is upgraded without
//! applying anything twice.

use crate::migrations::Migration;

/// In cluster mode ([`crate::cluster`]), the shard of a row of these tables is decided by this
/// key, not the default hash of the sorting key: a visitor's events on one shard (so a visit is
/// sessionised where it is stored, and identities meet their events), email opens (no visitor
/// id) spread by their own id.
pub const SHARDING_KEYS: &[(&str, &str)] = &[(
    "events",
    "cityHash64(if(visitor_id = '', toString(event_id), visitor_id))",
)];

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events and ip_keys",
        was: Some(("collector", 1)),
        statements: &[
            r"CREATE TABLE IF NOT EXISTS {db}.events
(
    event_id UUID,
    ts DateTime64(3, 'UTC'),
    site LowCardinality(String),
    kind LowCardinality(String),
    visitor_id String,
    pageview_id String,
    customer_id String,
    url String CODEC(ZSTD(1)),
    host LowCardinality(String),
    path String,
    title String CODEC(ZSTD(1)),
    referrer String CODEC(ZSTD(1)),
    referrer_host LowCardinality(String),
    utm_source LowCardinality(String),
    utm_medium LowCardinality(String),
    utm_campaign LowCardinality(String),
    utm_term String,
    utm_content String,
    dwell_ms UInt32,
    ip_key_id UInt64,
    ip_sealed String,
    ip_prefix LowCardinality(String),
    country LowCardinality(String),
    region LowCardinality(String),
    city LowCardinality(String),
    browser LowCardinality(String),
    os LowCardinality(String),
    device LowCardinality(String),
    is_bot Bool,
    user_agent String CODEC(ZSTD(1)),
    campaign LowCardinality(String),
    recipient String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (site, toDate(ts), visitor_id, ts)
SETTINGS non_replicated_deduplication_window = 10000",
            r"CREATE TABLE IF NOT EXISTS {db}.ip_keys
(
    key_id UInt64,
    created DateTime('UTC'),
    sealed_key String
)
ENGINE = ReplacingMergeTree
ORDER BY key_id",
        ],
    },
    Migration {
        version: 2,
        name: "privacy: email proxies and identities",
        was: Some(("collector", 3)),
        statements: &[
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS via_proxy Bool DEFAULT false",
            // Which visitor ids a customer has been seen with, and when first and last. Filled by
            // the materialized view below from signed customer links on events, so the hot path
            // writes nothing extra; min/max are idempotent, so a retried insert changes nothing.
            r"CREATE TABLE IF NOT EXISTS {db}.identities
(
    customer_id String,
    visitor_id String,
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (customer_id, visitor_id)",
            r"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.identities_from_events TO {db}.identities AS
SELECT customer_id, visitor_id, min(ts) AS first_seen, max(ts) AS last_seen
FROM {db}.events
WHERE customer_id != '' AND visitor_id != ''
GROUP BY customer_id, visitor_id",
        ],
    },
    Migration {
        version: 3,
        name: "rollups, api tokens, export audit",
        was: Some(("aggregator", 1)),
        statements: &[
            r"CREATE TABLE IF NOT EXISTS {db}.traffic_daily
(
    site LowCardinality(String),
    day Date,
    dimension LowCardinality(String),
    k1 String,
    k2 String,
    k3 String,
    hits SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, site, day, k1, k2, k3)",
            // As shipped (version 10 replaces both views): the rollups' current text is in
            // crate::rollup.
            r"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_from_pageviews TO {db}.traffic_daily AS
SELECT site, toDate(ts) AS day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3,
       toUInt64(count()) AS hits, uniqExactStateIf(visitor_id, visitor_id != '') AS visitors
FROM {db}.events
ARRAY JOIN [('all', '', '', ''), ('page', path, '', ''),
    ('referrer', if(referrer_host = host, '', referrer_host), '', ''), ('country', country, '', ''),
    ('device', device, '', ''), ('browser', browser, '', ''), ('os', os, '', ''),
    ('campaign', utm_source, utm_medium, utm_campaign)] AS d
WHERE kind = 'pageview' AND NOT is_bot
GROUP BY site, day, dimension, k1, k2, k3",
            r"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_from_email_opens TO {db}.traffic_daily AS
SELECT '' AS site, toDate(ts) AS day, 'email' AS dimension, campaign AS k1, '' AS k2,
       '' AS k3, toUInt64(count()) AS hits, uniqExactStateIf(recipient, recipient != '') AS visitors
FROM {db}.events
WHERE kind = 'email_open'
GROUP BY day, k1",
            r"CREATE TABLE IF NOT EXISTS {db}.sessions_daily
(
    site LowCardinality(String),
    day Date,
    dimension LowCardinality(String),
    k1 String,
    k2 String,
    k3 String,
    visits UInt64,
    bounces UInt64,
    visit_ms UInt64,
    engaged_ms UInt64,
    engaged_views UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, site, day, k1, k2, k3)",
            r"CREATE TABLE IF NOT EXISTS {db}.api_tokens
(
    name String,
    token_sha256 String,
    reports Array(String),
    sites Array(String),
    created DateTime('UTC'),
    revoked Bool,
    updated DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated)
ORDER BY name",
            r"CREATE TABLE IF NOT EXISTS {db}.export_audit
(
    at DateTime64(3, 'UTC'),
    actor String,
    report LowCardinality(String),
    from_day Date,
    to_day Date,
    site String,
    min_visitors UInt32,
    epsilon Float64,
    rows UInt64
)
ENGINE = MergeTree
ORDER BY at",
        ],
    },
    Migration {
        version: 4,
        name: "monthly rollup of closed months",
        was: Some(("aggregator", 2)),
        statements: &[r"CREATE TABLE IF NOT EXISTS {db}.traffic_monthly
(
    site LowCardinality(String),
    month Date,
    dimension LowCardinality(String),
    k1 String,
    k2 String,
    k3 String,
    hits UInt64,
    visitors UInt64,
    visitor_days UInt64,
    visits UInt64,
    bounces UInt64,
    visit_ms UInt64,
    engaged_ms UInt64,
    engaged_views UInt64
)
ENGINE = MergeTree
ORDER BY (dimension, site, month, k1, k2, k3)"],
    },
    Migration {
        version: 5,
        name: "custom events and scroll depth",
        was: Some(("collector", 4)),
        statements: &[
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS event_name LowCardinality(String) DEFAULT ''",
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS props Map(String, String) CODEC(ZSTD(1))",
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS scroll_depth UInt8 DEFAULT 0",
        ],
    },
    Migration {
        version: 6,
        name: "audit of every export, subject request and refusal, with dates past 2149",
        was: Some(("aggregator", 3)),
        statements: &[
            r"CREATE TABLE IF NOT EXISTS {db}.audit_log
(
    at DateTime64(3, 'UTC'),
    actor String,
    action LowCardinality(String),
    status UInt16,
    report LowCardinality(String),
    from_day Date32,
    to_day Date32,
    site String,
    min_visitors UInt32,
    epsilon_thousandths UInt32,
    budget_left_thousandths Nullable(UInt64),
    rows UInt64,
    detail String
)
ENGINE = MergeTree
ORDER BY at",
            r"INSERT INTO {db}.audit_log (at, actor, action, status, report, from_day, to_day, site,
                                 min_visitors, epsilon_thousandths, rows)
SELECT at, actor, 'export', 200, report, from_day, to_day, site, min_visitors,
       toUInt32(round(epsilon * 1000)), rows
FROM {db}.export_audit",
            "DROP TABLE IF EXISTS {db}.export_audit",
        ],
    },
    Migration {
        version: 7,
        name: "custom events in the traffic rollup, goals, funnels, exits and scroll depth",
        was: None,
        statements: &[
            // As shipped (version 10 replaces it): the rollup's current text is in crate::rollup.
            r"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_from_custom_events TO {db}.traffic_daily AS
SELECT site, toDate(ts) AS day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3,
       toUInt64(count()) AS hits, uniqExactStateIf(visitor_id, visitor_id != '') AS visitors
FROM {db}.events
ARRAY JOIN arrayConcat([('event', toString(event_name), '', '')],
    arrayMap((k, v) -> ('event_prop', toString(event_name), k, v), mapKeys(props), mapValues(props))) AS d
WHERE kind = 'custom' AND NOT is_bot
GROUP BY site, day, dimension, k1, k2, k3",
            r"CREATE TABLE IF NOT EXISTS {db}.goals
(
    site LowCardinality(String),
    name String,
    page String,
    event String,
    prop_key String,
    prop_value String,
    removed Bool,
    updated DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated)
ORDER BY (site, name)",
            r"CREATE TABLE IF NOT EXISTS {db}.funnels
(
    site LowCardinality(String),
    steps String,
    updated DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated)
ORDER BY site",
            "ALTER TABLE {db}.sessions_daily ADD COLUMN IF NOT EXISTS exits UInt64",
            "ALTER TABLE {db}.sessions_daily ADD COLUMN IF NOT EXISTS scroll_sum UInt64",
            "ALTER TABLE {db}.sessions_daily ADD COLUMN IF NOT EXISTS scroll_views UInt64",
            "ALTER TABLE {db}.traffic_monthly ADD COLUMN IF NOT EXISTS exits UInt64",
            "ALTER TABLE {db}.traffic_monthly ADD COLUMN IF NOT EXISTS scroll_sum UInt64",
            "ALTER TABLE {db}.traffic_monthly ADD COLUMN IF NOT EXISTS scroll_views UInt64",
        ],
    },
    Migration {
        version: 8,
        name: "a replayed insert is counted once in traffic_daily",
        was: None,
        // The collector inserts with deduplicate_blocks_in_dependent_materialized_views, which
        // deduplicates a view's block only in a target table that keeps the hashes of recent
        // blocks, as `events` does. (`identities` needs none: min and max count nothing twice.)
        statements: &[
            "ALTER TABLE {db}.traffic_daily MODIFY SETTING non_replicated_deduplication_window = 10000",
        ],
    },
    Migration {
        version: 9,
        name: "browser and OS versions beside their families",
        was: None,
        statements: &[
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS browser_version LowCardinality(String) DEFAULT ''",
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS os_version LowCardinality(String) DEFAULT ''",
        ],
    },
    Migration {
        version: 10,
        name: "keyed rollup hashes, networks, visitors behind every average, months-only tokens",
        was: None,
        statements: &[
            // One SipHash key per calendar month, destroyed once the month is past retention
            // (crate::rollup_keys); the keys themselves are stored by the migration runner.
            "CREATE TABLE IF NOT EXISTS {db}.rollup_keys (month Date, k0 UInt64, k1 UInt64)
ENGINE = Join(ANY, LEFT, month)",
            "DROP VIEW IF EXISTS {db}.traffic_from_pageviews",
            "DROP VIEW IF EXISTS {db}.traffic_from_email_opens",
            "DROP VIEW IF EXISTS {db}.traffic_from_custom_events",
            // Its states held unkeyed hashes of visitor ids: testable for anyone, forever. The
            // keyed rollup has a name of its own, so that applying the list again (as after an
            // interrupted migration) ends in the same place; `footfall-aggregator backfill`
            // fills it for past days. Its states, and those it adds to sessions_daily, were
            // `FixedString(16)` (SipHash-128) when this shipped, and stay so where it was applied
            // then: the views below and the rollups' SQL hash as each table holds
            // (`{member_hash}`, crate::rollup::member_hash), which is the one exception to never
            // changing a migration that has shipped.
            "DROP TABLE IF EXISTS {db}.traffic_daily",
            r"CREATE TABLE IF NOT EXISTS {db}.traffic_keyed_daily
(
    site LowCardinality(String),
    day Date,
    dimension LowCardinality(String),
    k1 String,
    k2 String,
    k3 String,
    hits SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqExact, UInt64),
    networks AggregateFunction(uniqExact, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (dimension, site, day, k1, k2, k3)
SETTINGS non_replicated_deduplication_window = 10000",
            concat!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_keyed_from_pageviews TO {db}.traffic_keyed_daily AS\n",
                pageview_rollup!("{db}.events", "{db}.rollup_keys", "")
            ),
            concat!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_keyed_from_email_opens TO {db}.traffic_keyed_daily AS\n",
                email_rollup!("{db}.events", "{db}.rollup_keys", "")
            ),
            concat!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_keyed_from_custom_events TO {db}.traffic_keyed_daily AS\n",
                custom_event_rollup!("{db}.events", "{db}.rollup_keys", "")
            ),
            "TRUNCATE TABLE IF EXISTS {db}.sessions_daily",
            "ALTER TABLE {db}.sessions_daily
ADD COLUMN IF NOT EXISTS visit_visitors AggregateFunction(uniqExact, UInt64) AFTER visits,
ADD COLUMN IF NOT EXISTS timed_visitors AggregateFunction(uniqExact, UInt64),
ADD COLUMN IF NOT EXISTS exit_visitors AggregateFunction(uniqExact, UInt64),
ADD COLUMN IF NOT EXISTS scroll_visitors AggregateFunction(uniqExact, UInt64)",
            "TRUNCATE TABLE IF EXISTS {db}.traffic_monthly",
            "ALTER TABLE {db}.traffic_monthly
ADD COLUMN IF NOT EXISTS people UInt64 AFTER visitors,
ADD COLUMN IF NOT EXISTS networks UInt64 AFTER people,
ADD COLUMN IF NOT EXISTS visit_people UInt64 AFTER visits,
ADD COLUMN IF NOT EXISTS timed_people UInt64,
ADD COLUMN IF NOT EXISTS exit_people UInt64,
ADD COLUMN IF NOT EXISTS scroll_people UInt64",
            "ALTER TABLE {db}.api_tokens ADD COLUMN IF NOT EXISTS months_only Bool DEFAULT false AFTER sites",
        ],
    },
    Migration {
        version: 11,
        name: "erasures reach hits still in a collector's spool",
        was: None,
        statements: &[
            r"CREATE TABLE IF NOT EXISTS {db}.erasures
(
    key_id UInt64,
    target LowCardinality(String),
    hash String,
    since DateTime64(3, 'UTC'),
    until DateTime64(3, 'UTC'),
    erased DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (key_id, hash)",
            r"CREATE TABLE IF NOT EXISTS {db}.erasure_keys
(
    key_id UInt64,
    created DateTime('UTC'),
    key String
)
ENGINE = MergeTree
ORDER BY key_id",
        ],
    },
];
