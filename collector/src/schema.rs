//! The ClickHouse schema and its versioned migrations.
//!
//! Migrations are numbered per component (`collector` here; the aggregator keeps its own) and
//! recorded in `schema_migrations`. Every statement is idempotent (`IF NOT EXISTS`), so two
//! collectors starting at once, or a migration interrupted half way, do no harm: applying again
//! finishes the job. Retention is not a migration but a setting: [`migrate`] brings the TTLs in
//! line with FOOTFALL_RETENTION_DAYS every time it runs.
//!
//! `events` is ordered by (site, day, visitor, time): reports filter by site and date range, and
//! sessionising a visitor's day reads adjacent rows. Partitions are months, so retention drops
//! whole parts. Insert deduplication (`non_replicated_deduplication_window`) makes a retried batch
//! with the same token a no-op; on a Replicated engine in a cluster this is the default.

use clickhouse::Client;

/// The schema's owner in `schema_migrations`.
const COMPONENT: &str = "collector";

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// SQL with `{db}` for the database.
    pub statements: &'static [&'static str],
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events and ip_keys",
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
        version: 3,
        name: "privacy: email proxies and identities",
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
        version: 4,
        name: "custom events and scroll depth",
        statements: &[
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS event_name LowCardinality(String) DEFAULT ''",
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS props Map(String, String) CODEC(ZSTD(1))",
            "ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS scroll_depth UInt8 DEFAULT 0",
        ],
    },
];

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
];

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("'{0}' is not a usable database name (letters, digits and _ only)")]
    BadDatabaseName(String),
    #[error("could not {what} in ClickHouse: {source}")]
    ClickHouse {
        what: String,
        #[source]
        source: clickhouse::error::Error,
    },
}

fn ch(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> SchemaError {
    let what = what.into();
    move |source| SchemaError::ClickHouse { what, source }
}

/// Creates the database and applies every migration not yet recorded, then the retention TTLs.
/// Returns the versions it applied.
pub async fn migrate(
    client: &Client,
    database: &str,
    retention_days: u32,
) -> Result<Vec<u32>, SchemaError> {
    let done = apply_migrations(client, database, COMPONENT, MIGRATIONS).await?;
    apply_retention(client, database, retention_days).await?;
    Ok(done)
}

/// Creates the database and applies every migration of `component` not yet recorded in
/// `schema_migrations`. Other components (the aggregator's rollups) keep their own versions.
/// Returns the versions it applied.
pub async fn apply_migrations(
    client: &Client,
    database: &str,
    component: &str,
    migrations: &[Migration],
) -> Result<Vec<u32>, SchemaError> {
    if database.is_empty()
        || !database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(SchemaError::BadDatabaseName(database.to_owned()));
    }
    let render = |sql: &str| sql.replace("{db}", database);
    client
        .query(&render("CREATE DATABASE IF NOT EXISTS {db}"))
        .execute()
        .await
        .map_err(ch(format!("create database {database}")))?;
    client
        .query(&render(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations
             (component LowCardinality(String), version UInt32, name String, applied_at DateTime('UTC') DEFAULT now())
             ENGINE = ReplacingMergeTree ORDER BY (component, version)",
        ))
        .execute()
        .await
        .map_err(ch("create schema_migrations"))?;
    let applied: Vec<u32> = client
        .query(&render(
            "SELECT version FROM {db}.schema_migrations FINAL WHERE component = ?",
        ))
        .bind(component)
        .fetch_all()
        .await
        .map_err(ch("read schema_migrations"))?;
    let mut done = Vec::new();
    for migration in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        for statement in migration.statements {
            client
                .query(&render(statement))
                .execute()
                .await
                .map_err(ch(format!(
                    "apply {component} migration {} ({})",
                    migration.version, migration.name
                )))?;
        }
        client
            .query(&render(
                "INSERT INTO {db}.schema_migrations (component, version, name) VALUES (?, ?, ?)",
            ))
            .bind(component)
            .bind(migration.version)
            .bind(migration.name)
            .execute()
            .await
            .map_err(ch("record a migration"))?;
        done.push(migration.version);
    }
    Ok(done)
}

/// Sets each table's TTL to the configured retention where it differs. Changing a TTL does not
/// rewrite existing parts at once (`materialize_ttl_after_modify = 0`): expired rows go as
/// parts merge, and `footfall-aggregator retention` enforces it immediately.
async fn apply_retention(
    client: &Client,
    database: &str,
    retention_days: u32,
) -> Result<(), SchemaError> {
    for Retained {
        table,
        time: column,
        extra_days,
    } in RETENTION
    {
        let days = retention_days + extra_days;
        let create: String = client
            .query("SELECT create_table_query FROM system.tables WHERE database = ? AND name = ?")
            .bind(database)
            .bind(*table)
            .fetch_one()
            .await
            .map_err(ch(format!("read the definition of {table}")))?;
        // ClickHouse shows `INTERVAL n DAY` as `toIntervalDay(n)`.
        if !create.contains(&format!(" TTL {column} + toIntervalDay({days})")) {
            client
                .query(&format!(
                    "ALTER TABLE {database}.{table} MODIFY TTL {column} + INTERVAL {days} DAY \
                     SETTINGS materialize_ttl_after_modify = 0"
                ))
                .execute()
                .await
                .map_err(ch(format!("set the retention of {table}")))?;
        }
    }
    Ok(())
}
