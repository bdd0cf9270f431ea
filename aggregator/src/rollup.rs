//! How the rollups are filled. Reports read rollups (their tables and views are in
//! `footfall-store`'s schema), except `hourly`, `current` and `funnel`, which need finer time or
//! the order within a visit:
//!
//! - `traffic_keyed_daily` holds page views and custom events with exact unique-visitor and
//!   unique-network states (keyed hashes) per site × day × dimension, and email opens.
//!   Materialized views fill it as events are inserted, so it is always up to date;
//!   [`backfill`] computes it afresh for events stored before the views existed, or after an
//!   erasure.
//! - `sessions_daily` holds what only a finished visit tells: visits, bounces, visit duration
//!   (per entry page, entry referrer, country, device, campaign), exits, engaged time and scroll
//!   depth per page, each with the keyed states of the visitors behind it. A
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

/// Recomputes `traffic_keyed_daily` for `[from, to]` from events, replacing what the views wrote:
/// for events that existed before the aggregator's schema, or after an erasure.
pub async fn backfill(
    client: &Client,
    layout: &Layout,
    from: Day,
    to: Day,
) -> Result<u64, ClickHouseError> {
    clear_days(client, layout, "traffic_keyed_daily", from, to).await?;
    let database = database(client).await?;
    let hash = member_hash(client, &database, "traffic_keyed_daily").await?;
    for select in rollup::traffic_daily(&database, &rollup::days(from, to), hash) {
        client
            .query(&format!("INSERT INTO traffic_keyed_daily {select}"))
            .execute()
            .await
            .map_err(ch("backfill traffic_keyed_daily"))?;
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
            "INSERT INTO traffic_monthly ({keys}, month, {METRICS})
             SELECT {keys}, toDate('{month}') AS month, {METRICS}
             FROM ({rows}) SETTINGS join_use_nulls = 0",
            rows = rows_select(keys, keys, &days, false),
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

/// The metric columns of a report row, in the order [`rows_select`] and `traffic_monthly` give
/// them.
pub const METRICS: &str = "hits, visitors, people, networks, visitor_days, visits, visit_people, \
                           bounces, visit_ms, engaged_ms, engaged_views, timed_people, exits, \
                           exit_people, scroll_sum, scroll_views, scroll_people";

/// One row per `group` (names of `select`, expressions over the rollups' key columns `site`,
/// `dimension`, `k1..k3` and, with `per_day`, `day`) of the rollup rows matching `filter`, with
/// [`METRICS`]:
///
/// - page views; distinct visitors (`visitors`), a visitor counted once per calendar month,
///   because the rollups' hashes are keyed per month; `people`, the most distinct visitors of
///   any one month, a lower bound on the people behind the row (and exact within a month);
///   `networks`, likewise the most distinct networks of any one month;
/// - visitor-days (each day's distinct visitors, summed);
/// - visits, bounces and durations, engaged time, exits, scroll depths, with `visit_people`,
///   `timed_people`, `exit_people` and `scroll_people`, the most distinct visitors of any one
///   month behind the visits, the timed page views, the exits and the scrolled page views.
pub fn rows_select(select: &str, group: &str, filter: &str, per_day: bool) -> String {
    let day = if per_day { ", day" } else { "" };
    let keys = format!("site, dimension, k1, k2, k3, toStartOfMonth(day) AS month{day}");
    let by = format!("site, dimension, k1, k2, k3, month{day}");
    format!(
        "SELECT {group}, {METRICS}
         FROM (
             SELECT {select}, sum(m_hits) AS hits, sum(m_visitors) AS visitors,
                    max(m_visitors) AS people, max(m_networks) AS networks,
                    sum(m_visitor_days) AS visitor_days
             FROM (
                 SELECT {keys}, sum(day_hits) AS m_hits, uniqExactMerge(day_visitors) AS m_visitors,
                        uniqExactMerge(day_networks) AS m_networks,
                        sum(day_uniques) AS m_visitor_days
                 FROM (
                     SELECT site, day, dimension, k1, k2, k3, sum(hits) AS day_hits,
                            uniqExactMergeState(visitors) AS day_visitors,
                            uniqExactMerge(visitors) AS day_uniques,
                            uniqExactMergeState(networks) AS day_networks
                     FROM traffic_keyed_daily WHERE {filter}
                     GROUP BY site, day, dimension, k1, k2, k3)
                 GROUP BY {by})
             GROUP BY {group}) AS t
         LEFT JOIN (
             SELECT {select}, sum(m_visits) AS visits, max(m_visit_people) AS visit_people,
                    sum(m_bounces) AS bounces, sum(m_visit_ms) AS visit_ms,
                    sum(m_engaged_ms) AS engaged_ms, sum(m_engaged_views) AS engaged_views,
                    max(m_timed_people) AS timed_people, sum(m_exits) AS exits,
                    max(m_exit_people) AS exit_people, sum(m_scroll_sum) AS scroll_sum,
                    sum(m_scroll_views) AS scroll_views, max(m_scroll_people) AS scroll_people
             FROM (
                 SELECT {keys}, sum(visits) AS m_visits,
                        uniqExactMerge(visit_visitors) AS m_visit_people,
                        sum(bounces) AS m_bounces, sum(visit_ms) AS m_visit_ms,
                        sum(engaged_ms) AS m_engaged_ms, sum(engaged_views) AS m_engaged_views,
                        uniqExactMerge(timed_visitors) AS m_timed_people,
                        sum(exits) AS m_exits, uniqExactMerge(exit_visitors) AS m_exit_people,
                        sum(scroll_sum) AS m_scroll_sum, sum(scroll_views) AS m_scroll_views,
                        uniqExactMerge(scroll_visitors) AS m_scroll_people
                 FROM sessions_daily WHERE {filter}
                 GROUP BY {by})
             GROUP BY {group}) AS s USING ({group})"
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
    let hash = member_hash(client, &database(client).await?, "sessions_daily").await?;
    let sql = format!(
        "INSERT INTO sessions_daily ({}) {} SETTINGS join_use_nulls = 0",
        rules::SESSIONS_DAILY_COLUMNS,
        rules::sessions_daily(from, to, hash)
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

/// The name of the database `client` is bound to.
pub(crate) async fn database(client: &Client) -> Result<String, ClickHouseError> {
    client
        .query("SELECT currentDatabase()")
        .fetch_one()
        .await
        .map_err(ch("read the database's name"))
}

/// `table`'s [`rollup::member_hash`] in `database`.
pub(crate) async fn member_hash(
    client: &Client,
    database: &str,
    table: &str,
) -> Result<&'static str, ClickHouseError> {
    rollup::member_hash(client, database, table)
        .await
        .map_err(ch(format!("read the type of {table}'s states")))
}
