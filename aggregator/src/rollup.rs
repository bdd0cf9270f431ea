//! How the rollups are filled. Reports never read raw events; they read rollups (their tables
//! and views are in `footfall-store`'s schema):
//!
//! - `traffic_daily` holds page views and exact unique-visitor states per site × day ×
//!   dimension, and email opens. Materialized views fill it as events are inserted, so it is
//!   always up to date; [`backfill`] computes it afresh for events stored before the views
//!   existed, or after an erasure.
//! - `sessions_daily` holds what only a finished visit tells: visits, bounces, visit duration
//!   (per entry page, entry referrer, country, device, campaign) and engaged time per page. A
//!   visit may still be going on, so these rows are recomputed from events for whole days by
//!   [`refresh`] (`serve` does it for today and yesterday every few minutes; `backfill` for any
//!   range), with the rules of [`footfall_store::rules`].
//! - `traffic_monthly` holds both, finished, for each closed calendar month ([`close_month`]):
//!   exact distinct counts cannot be added up, and merging a month of daily states costs about
//!   as much as reading the events, so a month's report reads one ready row per key.

use clickhouse::Client;
use footfall_store::cluster::Layout;
use footfall_store::{rollup, rules};

use crate::day::Day;
use crate::{ClickHouseError, ch};

/// Deletes `table`'s rows of the days `[from, to]` (on every shard of a cluster, waiting until
/// ClickHouse has), before they are computed again; returns the SQL condition that selects
/// those days.
async fn clear_days(
    client: &Client,
    layout: &Layout,
    table: &str,
    from: Day,
    to: Day,
) -> Result<String, ClickHouseError> {
    let days = format!("day BETWEEN toDate('{from}') AND toDate('{to}')");
    layout
        .alter(
            client,
            table,
            &format!("DELETE WHERE {days} SETTINGS mutations_sync = 2"),
        )
        .await
        .map_err(ch(format!("clear {table} before computing it again")))?;
    Ok(days)
}

/// Recomputes `traffic_daily` for `[from, to]` from events, replacing what the views wrote:
/// for events that existed before the aggregator's schema, or after an erasure.
pub async fn backfill(
    client: &Client,
    layout: &Layout,
    from: Day,
    to: Day,
) -> Result<u64, ClickHouseError> {
    clear_days(client, layout, "traffic_daily", from, to).await?;
    for select in rollup::traffic_daily(&rollup::days(from, to)) {
        client
            .query(&format!("INSERT INTO traffic_daily {select}"))
            .execute()
            .await
            .map_err(ch("backfill traffic_daily"))?;
    }
    let rows = refresh(client, layout, from, to).await?;
    let mut month = from.month_start();
    while month <= to && month_closed(month) {
        close_month(client, layout, month).await?;
        month = month.month_end().plus(1);
    }
    Ok(rows)
}

/// Whether the month starting `month` is over and its days no longer refreshed by `serve`.
pub fn month_closed(month: Day) -> bool {
    month.month_end() < Day::today().plus(-1)
}

/// Whether `traffic_monthly` holds the month starting `month`.
pub async fn month_ready(client: &Client, month: Day) -> Result<bool, ClickHouseError> {
    client
        .query(&format!(
            "SELECT count() > 0 FROM traffic_monthly WHERE month = toDate('{month}')"
        ))
        .fetch_one::<bool>()
        .await
        .map_err(ch("read traffic_monthly"))
}

/// Computes `traffic_monthly` for the month starting `month` from the daily rollups, replacing
/// what was there. Returns the rows written.
pub async fn close_month(
    client: &Client,
    layout: &Layout,
    month: Day,
) -> Result<u64, ClickHouseError> {
    let end = month.month_end();
    layout
        .alter(
            client,
            "traffic_monthly",
            &format!("DELETE WHERE month = toDate('{month}') SETTINGS mutations_sync = 2"),
        )
        .await
        .map_err(ch("clear traffic_monthly"))?;
    let days = format!("day BETWEEN toDate('{month}') AND toDate('{end}')");
    let keys = "site, dimension, k1, k2, k3";
    client
        .query(&format!(
            "INSERT INTO traffic_monthly ({keys}, month, hits, visitors, visitor_days, visits, bounces,
                                          visit_ms, engaged_ms, engaged_views, exits, scroll_sum,
                                          scroll_views)
             SELECT {keys}, toDate('{month}') AS month, hits, visitors, visitor_days, visits,
                    bounces, visit_ms, engaged_ms, engaged_views, exits, scroll_sum, scroll_views
             FROM ({traffic}) AS t
             LEFT JOIN (
                 SELECT {keys}, sum(visits) AS visits, sum(bounces) AS bounces,
                        sum(visit_ms) AS visit_ms, sum(engaged_ms) AS engaged_ms,
                        sum(engaged_views) AS engaged_views, sum(exits) AS exits,
                        sum(scroll_sum) AS scroll_sum, sum(scroll_views) AS scroll_views
                 FROM sessions_daily WHERE {days} GROUP BY {keys}) AS s USING ({keys})
             SETTINGS join_use_nulls = 0",
            traffic = traffic_select(keys, keys, &days),
        ))
        .execute()
        .await
        .map_err(ch(format!("compute traffic_monthly for {month}")))?;
    client
        .query(&format!(
            "SELECT count() FROM traffic_monthly WHERE month = toDate('{month}')"
        ))
        .fetch_one::<u64>()
        .await
        .map_err(ch("count traffic_monthly"))
}

/// Page views, exact distinct visitors and visitor-days (each day's distinct visitors, summed)
/// of `traffic_daily` rows matching `filter`: `select` (expressions over the rollup's columns)
/// grouped by `group` (their names).
pub fn traffic_select(select: &str, group: &str, filter: &str) -> String {
    format!(
        "SELECT {select}, sum(day_hits) AS hits, uniqExactMerge(day_visitors) AS visitors,
                sum(day_uniques) AS visitor_days
         FROM (
             SELECT site, day, dimension, k1, k2, k3, sum(hits) AS day_hits,
                    uniqExactMergeState(visitors) AS day_visitors,
                    uniqExactMerge(visitors) AS day_uniques
             FROM traffic_daily WHERE {filter}
             GROUP BY site, day, dimension, k1, k2, k3)
         GROUP BY {group}"
    )
}

/// Recomputes `sessions_daily` for the days `[from, to]` from events ([`rules::sessions_daily`]:
/// visits, and time on page). Returns the rows written.
pub async fn refresh(
    client: &Client,
    layout: &Layout,
    from: Day,
    to: Day,
) -> Result<u64, ClickHouseError> {
    let days = clear_days(client, layout, "sessions_daily", from, to).await?;
    let sql = format!(
        "INSERT INTO sessions_daily ({}) {} SETTINGS join_use_nulls = 0",
        rules::SESSIONS_DAILY_COLUMNS,
        rules::sessions_daily(from, to)
    );
    client
        .query(&sql)
        .execute()
        .await
        .map_err(ch("recompute sessions_daily"))?;
    client
        .query(&format!("SELECT count() FROM sessions_daily WHERE {days}"))
        .fetch_one::<u64>()
        .await
        .map_err(ch("count sessions_daily"))
}
