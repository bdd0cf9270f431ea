//! The `SELECT`s that turn events into `traffic_daily` rows: one text for the materialized
//! views (as events are inserted) and the backfill (for events stored before the views existed,
//! or after an erasure).
//!
//! Macros, so that the views' `&'static str` migrations and the backfill are one text.

/// The `SELECT` that turns page views of `$events` (a table name; `$filter` adds conditions)
/// into `traffic_daily` rows, one per dimension: (dimension, k1, k2, k3). Internal navigation
/// (referrer on the same host) counts as no referrer.
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

/// Custom events as `traffic_daily` rows, as above: one `event` row per name, and one
/// `event_prop` row per name, property and value.
macro_rules! custom_event_rollup {
    ($events:literal, $filter:literal) => {
        concat!(
            "SELECT site, toDate(ts) AS day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3,
       toUInt64(count()) AS hits, uniqExactStateIf(visitor_id, visitor_id != '') AS visitors
FROM ",
            $events,
            "
ARRAY JOIN arrayConcat([('event', toString(event_name), '', '')],
    arrayMap((k, v) -> ('event_prop', toString(event_name), k, v), mapKeys(props), mapValues(props))) AS d
WHERE kind = 'custom' AND NOT is_bot",
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

/// The `SELECT`s that compute `traffic_daily` rows from the events matching `filter` (an SQL
/// condition on `events`).
pub fn traffic_daily(filter: &str) -> [String; 3] {
    let filter = format!(" AND ({filter})");
    [
        pageview_rollup!("events", "{filter}").replace("{filter}", &filter),
        email_rollup!("events", "{filter}").replace("{filter}", &filter),
        custom_event_rollup!("events", "{filter}").replace("{filter}", &filter),
    ]
}

/// The condition on `events` of the days `[from, to]` (anything that prints as `YYYY-MM-DD`).
pub fn days(from: impl std::fmt::Display, to: impl std::fmt::Display) -> String {
    format!("toDate(ts) BETWEEN toDate('{from}') AND toDate('{to}')")
}
