//! Applying the schema: the migration runner.
//!
//! Applied migrations are recorded in `schema_migrations`. Every statement is idempotent
//! (`IF NOT EXISTS`), so a migration interrupted half way does no harm: applying again finishes
//! the job. Two programs starting at once (the collector applies the schema in the background
//! while the aggregator starts) can still trip each other: one drops a table that a statement of
//! an earlier migration, still being applied by the other, reads (`export_audit`,
//! `traffic_daily`). So a failed run is tried again from the records, which by then say what
//! the other program finished ([`ATTEMPTS`]). In cluster mode each statement is laid out for the
//! cluster ([`crate::cluster`]) and run on every node before the next (or once `ON CLUSTER`),
//! and each node records what it applied. Retention is not a migration but a setting:
//! [`migrate`] brings the TTLs in line with FOOTFALL_RETENTION_DAYS every time it runs
//! ([`crate::retention`]).

use std::time::Duration;

use clickhouse::Client;

use crate::cluster::{Layout, Scope};
use crate::schema::MIGRATIONS;
use crate::{backfill, retention, rollup, rollup_keys};

/// The owner of [`MIGRATIONS`] in `schema_migrations`.
const COMPONENT: &str = "footfall";

/// Runs of the list [`migrate`] makes before it gives up, waiting 0.2 s, 0.4 s, … between them:
/// enough for another program to finish the migration it is in.
const ATTEMPTS: u32 = 5;

/// The migration that creates the rollups and the views that fill them (the keyed ones; version
/// 3 made the first, unkeyed, which it drops): applied over stored events, it is followed by a
/// [`backfill`] of those events, once the keys of their months exist.
const ROLLUPS: u32 = 10;

/// Where applied migrations are recorded; made before any migration. In a cluster every node
/// has its own, and records what it has applied: a node that lost its tables (restarted
/// empty) has lost its records too, and gets every migration again.
const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(component LowCardinality(String), version UInt32, name String, applied_at DateTime('UTC') DEFAULT now())
ENGINE = ReplacingMergeTree
ORDER BY (component, version)";

pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// The record (component, version) the same migration had in the collector's or the
    /// aggregator's list, before there was one list.
    pub was: Option<(&'static str, u32)>,
    /// SQL with `{db}` for the database.
    pub statements: &'static [&'static str],
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("'{0}' is not a usable database name (letters, digits and _ only)")]
    BadDatabaseName(String),
    #[error("a statement cluster mode does not know how to lay out: {0}")]
    NotForCluster(String),
    #[error("could not {what} in ClickHouse: {source}")]
    ClickHouse {
        what: String,
        #[source]
        source: clickhouse::error::Error,
    },
}

pub(crate) fn ch(what: impl Into<String>) -> impl FnOnce(clickhouse::error::Error) -> SchemaError {
    let what = what.into();
    move |source| SchemaError::ClickHouse { what, source }
}

/// Creates the database and applies every migration not yet recorded, then the retention TTLs,
/// each statement laid out by `layout` (on every node of a cluster, or once `ON CLUSTER`).
/// `client` must not be bound to the database (it may not exist yet).
pub async fn migrate(
    client: &Client,
    database: &str,
    retention_days: u32,
    layout: &Layout,
) -> Result<Vec<u32>, SchemaError> {
    let client = &layout.configure(client.clone());
    let mut done = Vec::new();
    for attempt in 1.. {
        match apply_migrations(client, database, retention_days, layout, &mut done).await {
            Ok(()) => break,
            // The server refused a statement (a table dropped under it): not a server that cannot
            // be reached, which the caller hears of at once.
            Err(
                e @ SchemaError::ClickHouse {
                    source: clickhouse::error::Error::BadResponse(_),
                    ..
                },
            ) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "migrations failed; reading the records again");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
    retention::apply_ttls(client, database, retention_days, layout).await?;
    rollup_keys::ensure(client, database, retention_days, layout).await?;
    Ok(done)
}

/// Runs `sql` (with `{db}`, and `{member_hash}` for [`rollup::member_hash`]) as `layout` lays it
/// out: statement by statement, each on every node before the next, so that a later statement
/// finds what an earlier one made everywhere.
async fn run(
    client: &Client,
    nodes: &[Client],
    layout: &Layout,
    database: &str,
    sql: &str,
    what: &str,
) -> Result<(), SchemaError> {
    let sql = rollup::with_member_hash(client, database, sql)
        .await
        .map_err(ch("read the type of the rollup's states"))?;
    for (scope, statement) in layout.render(&sql, database)? {
        let targets = match scope {
            Scope::Once => std::slice::from_ref(client),
            Scope::EveryNode => nodes,
        };
        for target in targets {
            target.query(&statement).execute().await.map_err(ch(what))?;
        }
    }
    Ok(())
}

/// Creates the database and applies every migration of [`MIGRATIONS`] not yet recorded in
/// `schema_migrations`, under the current name or the one it had before ([`Migration::was`]).
/// Adds the versions it applied to `done`.
async fn apply_migrations(
    client: &Client,
    database: &str,
    retention_days: u32,
    layout: &Layout,
    done: &mut Vec<u32>,
) -> Result<(), SchemaError> {
    if database.is_empty()
        || !database
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(SchemaError::BadDatabaseName(database.to_owned()));
    }
    let render = |sql: &str| sql.replace("{db}", database);
    let nodes = layout
        .nodes(client)
        .await
        .map_err(ch("list the nodes of the cluster"))?;
    let create = format!("create database {database}");
    run(
        client,
        &nodes,
        layout,
        database,
        "CREATE DATABASE IF NOT EXISTS {db}",
        &create,
    )
    .await?;
    // Applied means recorded on every node.
    let mut applied: Option<Vec<(String, u32)>> = None;
    for node in &nodes {
        node.query(&render(SCHEMA_MIGRATIONS))
            .execute()
            .await
            .map_err(ch("create schema_migrations"))?;
        let here: Vec<(String, u32)> = node
            .query(&render(
                "SELECT component, version FROM {db}.schema_migrations FINAL",
            ))
            .fetch_all()
            .await
            .map_err(ch("read schema_migrations"))?;
        applied = Some(match applied {
            None => here,
            Some(before) => before.into_iter().filter(|r| here.contains(r)).collect(),
        });
    }
    let applied = applied.unwrap_or_default();
    let recorded = |component: &str, version: u32| {
        applied.iter().any(|(c, v)| c == component && *v == version)
    };
    let mut stored_before_views = None;
    for migration in MIGRATIONS {
        if recorded(COMPONENT, migration.version) {
            continue;
        }
        let applied_before = migration.was.is_some_and(|(c, v)| recorded(c, v));
        if !applied_before {
            // A cluster starts with a fresh database: it has no events older than its views.
            if migration.version == ROLLUPS && !layout.is_cluster() {
                stored_before_views = backfill::before_views(client, database).await?;
            }
            let what = format!("apply migration {} ({})", migration.version, migration.name);
            for statement in migration.statements {
                run(client, &nodes, layout, database, statement, &what).await?;
            }
            if !done.contains(&migration.version) {
                done.push(migration.version);
            }
        }
        for node in &nodes {
            node.query(&render(
                "INSERT INTO {db}.schema_migrations (component, version, name) VALUES (?, ?, ?)",
            ))
            .bind(COMPONENT)
            .bind(migration.version)
            .bind(migration.name)
            .execute()
            .await
            .map_err(ch("record a migration"))?;
        }
    }
    if let Some(parts) = stored_before_views {
        rollup_keys::ensure(client, database, retention_days, layout).await?;
        backfill::fill(client, database, &parts).await?;
    }
    Ok(())
}
