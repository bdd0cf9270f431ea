//! The aggregator's own tables, and how the rollups are filled.
//!
//! Reports never read raw events; they read two daily rollups:
//!
//! - `traffic_daily` (AggregatingMergeTree) holds page views and exact unique-visitor states per
//!   site × day × dimension (page path, referrer host, country, device, browser, OS, UTM
//!   source/medium/campaign, and the site as a whole) and email opens with unique-recipient
//!   states per campaign. Materialized views fill it as events are inserted, so it is always up
//!   to date. `uniqExact` (not HLL) because the K-anonymity threshold must not be approximate.
//! - `sessions_daily` holds what only a finished visit tells: visits, bounces, visit duration
//!   (per entry page, entry referrer, country, device, campaign) and engaged time per page, with
//!   the time of pixel-only page views inferred. A visit may still be going on, so these rows are
//!   recomputed from events for whole days by [`refresh`] (`serve` does it for today and
//!   yesterday every few minutes; `backfill` for any range).
//! - `traffic_monthly` holds both, finished, for each closed calendar month ([`close_month`]):
//!   exact distinct counts cannot be added up, and merging a month of daily states costs about
//!   as much as reading the events, so a month's report reads one ready row per key.
//!
//! The aggregator's migrations live in `schema_migrations` under the component `aggregator`,
//! applied by the collector's migration runner. `api_tokens` and `audit_log` are here too.

use clickhouse::Client;
use footfall_collector::schema::{self, Migration, SchemaError};

use crate::day::Day;
use crate::{ClickHouseError, ch};

/// The schema's owner in `schema_migrations`.
const COMPONENT: &str = "aggregator";

/// A visit ends after this long without activity of the visitor on the site.
pub const VISIT_GAP_MS: u64 = 30 * 60 * 1000;

/// The `SELECT` that turns page views of `$events` (a table name; `$filter` adds conditions)
/// into `traffic_daily` rows, one per dimension: (dimension, k1, k2, k3). Internal navigation
/// (referrer on the same host) counts as no referrer. A macro so that the materialized view, a
/// `&'static str` migration, and the backfill are one text.
macro_rules! pageview_rollup {
    ($events:literal, $filter:literal) => {
        concat!(
            "SELECT site, toDate(ts) AS day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3,
       toUInt64(count()) AS hits, uniqExactStateIf(visitor_id, visitor_id != '') AS visitors
FROM ",
            $events,
            "
ARRAY JOIN [('all', '', '', ''), ('page', path, '', ''),
    ('referrer', if(referrer_host = host, '', referrer_host), '', ''), ('country', country, '', ''),
    ('device', device, '', ''), ('browser', browser, '', ''), ('os', os, '', ''),
    ('campaign', utm_source, utm_medium, utm_campaign)] AS d
WHERE kind = 'pageview' AND NOT is_bot",
            $filter,
            "
GROUP BY site, day, dimension, k1, k2, k3"
        )
    };
}

/// Email opens as `traffic_daily` rows (site empty: opens belong to no site); as above.
macro_rules! email_rollup {
    ($events:literal, $filter:literal) => {
        concat!(
            "SELECT '' AS site, toDate(ts) AS day, 'email' AS dimension, campaign AS k1, '' AS k2,
       '' AS k3, toUInt64(count()) AS hits, uniqExactStateIf(recipient, recipient != '') AS visitors
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

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "rollups, api tokens, export audit",
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
            concat!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_from_pageviews TO {db}.traffic_daily AS\n",
                pageview_rollup!("{db}.events", "")
            ),
            concat!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.traffic_from_email_opens TO {db}.traffic_daily AS\n",
                email_rollup!("{db}.events", "")
            ),
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
        version: 2,
        name: "monthly rollup of closed months",
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
        version: 3,
        name: "audit of every export, subject request and refusal, with dates past 2149",
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
];

/// Applies the collector's schema (the rollups read `events`) and then the aggregator's.
pub async fn migrate(
    client: &Client,
    database: &str,
    retention_days: u32,
) -> Result<Vec<u32>, SchemaError> {
    schema::migrate(client, database, retention_days).await?;
    schema::apply_migrations(client, database, COMPONENT, MIGRATIONS).await
}

/// Deletes `table`'s rows of the days `[from, to]` (waiting until ClickHouse has), before they
/// are computed again; returns the SQL condition that selects those days.
async fn clear_days(
    client: &Client,
    table: &str,
    from: Day,
    to: Day,
) -> Result<String, ClickHouseError> {
    let days = format!("day BETWEEN toDate('{from}') AND toDate('{to}')");
    client
        .query(&format!(
            "ALTER TABLE {table} DELETE WHERE {days} SETTINGS mutations_sync = 2"
        ))
        .execute()
        .await
        .map_err(ch(format!("clear {table} before computing it again")))?;
    Ok(days)
}

/// Recomputes `traffic_daily` for `[from, to]` from events, replacing what the views wrote:
/// for events that existed before the aggregator's schema, or after an erasure.
pub async fn backfill(client: &Client, from: Day, to: Day) -> Result<u64, ClickHouseError> {
    clear_days(client, "traffic_daily", from, to).await?;
    let pageviews = format!(
        pageview_rollup!(
            "events",
            " AND toDate(ts) BETWEEN toDate('{from}') AND toDate('{to}')"
        ),
        from = from,
        to = to
    );
    let opens = format!(
        email_rollup!(
            "events",
            " AND toDate(ts) BETWEEN toDate('{from}') AND toDate('{to}')"
        ),
        from = from,
        to = to
    );
    for select in [pageviews, opens] {
        client
            .query(&format!("INSERT INTO traffic_daily {select}"))
            .execute()
            .await
            .map_err(ch("backfill traffic_daily"))?;
    }
    let rows = refresh(client, from, to).await?;
    let mut month = from.month_start();
    while month <= to && month_closed(month) {
        close_month(client, month).await?;
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
pub async fn close_month(client: &Client, month: Day) -> Result<u64, ClickHouseError> {
    let end = month.month_end();
    client
        .query(&format!(
            "ALTER TABLE traffic_monthly DELETE WHERE month = toDate('{month}') \
             SETTINGS mutations_sync = 2"
        ))
        .execute()
        .await
        .map_err(ch("clear traffic_monthly"))?;
    let days = format!("day BETWEEN toDate('{month}') AND toDate('{end}')");
    let keys = "site, dimension, k1, k2, k3";
    client
        .query(&format!(
            "INSERT INTO traffic_monthly ({keys}, month, hits, visitors, visitor_days, visits, bounces,
                                          visit_ms, engaged_ms, engaged_views)
             SELECT {keys}, toDate('{month}') AS month, hits, visitors, visitor_days, visits,
                    bounces, visit_ms, engaged_ms, engaged_views
             FROM ({traffic}) AS t
             LEFT JOIN (
                 SELECT {keys}, sum(visits) AS visits, sum(bounces) AS bounces,
                        sum(visit_ms) AS visit_ms, sum(engaged_ms) AS engaged_ms,
                        sum(engaged_views) AS engaged_views
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

/// Recomputes `sessions_daily` for the days `[from, to]` from events. Returns the rows written.
///
/// The rules are the collector's (`collector/sql/visits.sql`, `time_on_page.sql`). A visit is a
/// visitor's run of page views and engagement beacons on one site with no gap of more than
/// [`VISIT_GAP_MS`]; it belongs to the day it starts on, and is read with a day of margin on both
/// sides so that a visit across midnight is one visit. Its duration is its last activity minus
/// its first; a bounce is a visit with one page view. Time on page is the largest `dwell_ms` of
/// the page view's engagement beacons from the same visitor (each reports the total so far); a
/// page view without one (pixel only) gets the gap to the visitor's next page view in the same
/// visit; the last page view of such a visit has no time and is left out of the average.
pub async fn refresh(client: &Client, from: Day, to: Day) -> Result<u64, ClickHouseError> {
    let days = clear_days(client, "sessions_daily", from, to).await?;
    let gap = VISIT_GAP_MS;
    let (before, after) = (from.plus(-1), to.plus(1));
    let sql = format!(
        "INSERT INTO sessions_daily
            (site, day, dimension, k1, k2, k3, visits, bounces, visit_ms, engaged_ms, engaged_views)
WITH
activity AS (
    SELECT site, visitor_id, ts, kind, pageview_id, path,
           if(referrer_host = host, '', referrer_host) AS ref, country, device, browser, os,
           utm_source, utm_medium, utm_campaign, dwell_ms,
           if(dateDiff('millisecond',
                       lagInFrame(ts, 1, toDateTime64(0, 3, 'UTC')) OVER by_time, ts) > {gap},
              1, 0) AS starts
    FROM events
    WHERE kind IN ('pageview', 'engagement') AND NOT is_bot AND visitor_id != ''
      AND toDate(ts) BETWEEN toDate('{before}') AND toDate('{after}')
    WINDOW by_time AS (PARTITION BY site, visitor_id ORDER BY ts
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
numbered AS (
    SELECT *, sum(starts) OVER (PARTITION BY site, visitor_id ORDER BY ts
                                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS visit
    FROM activity
),
visits AS (
    SELECT site, toDate(min(ts)) AS day, countIf(kind = 'pageview') AS views,
           toUInt64(dateDiff('millisecond', min(ts), max(ts))) AS duration,
           argMinIf(path, ts, kind = 'pageview') AS entry, argMinIf(ref, ts, kind = 'pageview') AS r,
           argMinIf(country, ts, kind = 'pageview') AS c, argMinIf(device, ts, kind = 'pageview') AS dv,
           argMinIf(browser, ts, kind = 'pageview') AS b, argMinIf(os, ts, kind = 'pageview') AS o,
           argMinIf(utm_source, ts, kind = 'pageview') AS us,
           argMinIf(utm_medium, ts, kind = 'pageview') AS um,
           argMinIf(utm_campaign, ts, kind = 'pageview') AS uc
    FROM numbered
    GROUP BY site, visitor_id, visit
    HAVING views > 0 AND {days}
),
engaged AS (
    SELECT pageview_id, visitor_id, max(dwell_ms) AS ms FROM numbered
    WHERE kind = 'engagement' AND pageview_id != '' GROUP BY pageview_id, visitor_id
),
views AS (
    SELECT site, toDate(ts) AS day, path, pageview_id, visitor_id, ts,
           leadInFrame(toNullable(ts)) OVER (PARTITION BY site, visitor_id, visit ORDER BY ts
                                             ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next
    FROM numbered WHERE kind = 'pageview'
),
timed AS (
    SELECT site, day, path,
           if(engaged.pageview_id != '', toNullable(toUInt64(engaged.ms)),
              if(isNull(next), NULL,
                 toNullable(least(toUInt64(dateDiff('millisecond', ts, assumeNotNull(next))), {gap}))))
             AS ms
    FROM views AS v
    LEFT JOIN engaged ON v.pageview_id = engaged.pageview_id AND v.visitor_id = engaged.visitor_id
    WHERE {days}
)
SELECT site, day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3, toUInt64(count()) AS visits,
       toUInt64(countIf(views = 1)) AS bounces, sum(duration) AS visit_ms,
       toUInt64(0) AS engaged_ms, toUInt64(0) AS engaged_views
FROM visits
ARRAY JOIN [('all', '', '', ''), ('page', entry, '', ''), ('referrer', r, '', ''),
            ('country', c, '', ''), ('device', dv, '', ''), ('browser', b, '', ''),
            ('os', o, '', ''), ('campaign', us, um, uc)] AS d
GROUP BY site, day, dimension, k1, k2, k3
UNION ALL
SELECT site, day, 'page' AS dimension, path AS k1, '' AS k2, '' AS k3, toUInt64(0), toUInt64(0),
       toUInt64(0), toUInt64(sum(assumeNotNull(ms))), toUInt64(count(ms))
FROM timed
GROUP BY site, day, path
SETTINGS join_use_nulls = 0"
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
