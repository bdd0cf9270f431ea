//! Rollups for events stored before the rollups' views existed.
//!
//! A database made by an older collector holds events but no rollups; the views that fill the
//! rollups see only rows inserted after them. So when [`crate::migrations`] creates the views
//! over an `events` table that already has rows, it fills the rollups for exactly those rows:
//! it stops merges of `events`, notes its parts, creates the views, and computes the rollups of
//! the noted parts. New rows go to new parts (and through the views), so nothing is counted
//! twice and nothing is missed; merges resume at the end, whatever happened.

use clickhouse::Client;

use crate::migrations::{SchemaError, ch};
use crate::{rollup, rules};

/// The parts of `events` stored before the views, with merges stopped; `None` when there is no
/// `events` table or it is empty.
pub(crate) async fn before_views(
    client: &Client,
    database: &str,
) -> Result<Option<Vec<String>>, SchemaError> {
    let exists: u64 = client
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'events'")
        .bind(database)
        .fetch_one()
        .await
        .map_err(ch("look for events"))?;
    if exists == 0 {
        return Ok(None);
    }
    client
        .query(&format!("SYSTEM STOP MERGES {database}.events"))
        .execute()
        .await
        .map_err(ch("stop merges of events"))?;
    let parts: Vec<String> = client
        .query(
            "SELECT name FROM system.parts WHERE database = ? AND table = 'events' AND active \
             AND rows > 0",
        )
        .bind(database)
        .fetch_all()
        .await
        .map_err(ch("list the parts of events"))?;
    if parts.is_empty() {
        resume_merges(client, database).await?;
        return Ok(None);
    }
    Ok(Some(parts))
}

/// Computes the rollups of the events in `parts` and lets merges of `events` resume.
pub(crate) async fn fill(
    client: &Client,
    database: &str,
    parts: &[String],
) -> Result<(), SchemaError> {
    let filled = fill_parts(&client.clone().with_database(database), database, parts).await;
    resume_merges(client, database).await?;
    filled
}

async fn fill_parts(client: &Client, database: &str, parts: &[String]) -> Result<(), SchemaError> {
    let quoted: Vec<String> = parts.iter().map(|p| format!("'{p}'")).collect();
    let stored = format!("_part IN ({})", quoted.join(", "));
    let hash = rollup::member_hash(client, database, "traffic_keyed_daily")
        .await
        .map_err(ch("read the type of the rollup's states"))?;
    for select in rollup::traffic_daily(database, &stored, hash) {
        client
            .query(&format!("INSERT INTO traffic_keyed_daily {select}"))
            .execute()
            .await
            .map_err(ch(
                "fill traffic_keyed_daily for the events stored before it",
            ))?;
    }
    let (from, to): (String, String) = client
        .query(&format!(
            "SELECT toString(min(toDate(ts))), toString(max(toDate(ts))) FROM events WHERE {stored}"
        ))
        .fetch_one()
        .await
        .map_err(ch("find the days of the events stored before the rollups"))?;
    let hash = rollup::member_hash(client, database, "sessions_daily")
        .await
        .map_err(ch("read the type of sessions_daily's states"))?;
    client
        .query(&format!(
            "INSERT INTO sessions_daily ({}) {} SETTINGS join_use_nulls = 0",
            rules::SESSIONS_DAILY_COLUMNS,
            rules::sessions_daily(from, to, hash)
        ))
        .execute()
        .await
        .map_err(ch("fill sessions_daily for the events stored before it"))
}

async fn resume_merges(client: &Client, database: &str) -> Result<(), SchemaError> {
    client
        .query(&format!("SYSTEM START MERGES {database}.events"))
        .execute()
        .await
        .map_err(ch("let merges of events resume"))
}
