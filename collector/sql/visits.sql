-- Visits, sessionised at query time: a visit is a visitor's run of events on one site with no
-- gap of more than 30 minutes. One row per visit: when it started and ended, its duration
-- (first to last event; the tracker's engagement beacon on leaving makes that cover the last
-- page too), its page views, and whether it bounced (a single page view). Bots, and visitors
-- without an id (opted out, DNT, GPC), are left out: they cannot be told apart. A run of
-- engagement reports without a page view (a tab brought back hours later) is not a visit.
SELECT
    site,
    visitor_id,
    visit,
    min(ts) AS started,
    max(ts) AS ended,
    dateDiff('millisecond', min(ts), max(ts)) AS duration_ms,
    countIf(kind = 'pageview') AS pageviews,
    toBool(pageviews = 1) AS bounce
FROM
(
    SELECT
        site,
        visitor_id,
        ts,
        kind,
        sum(starts_visit) OVER (PARTITION BY site, visitor_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS visit
    FROM
    (
        SELECT
            site,
            visitor_id,
            ts,
            kind,
            ifNull(dateDiff('millisecond', lagInFrame(toNullable(ts)) OVER (PARTITION BY site, visitor_id ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW), ts) > 1800000, 1) AS starts_visit
        FROM events
        WHERE visitor_id != '' AND NOT is_bot AND kind IN ('pageview', 'engagement')
    )
)
GROUP BY site, visitor_id, visit
HAVING pageviews > 0
ORDER BY site, visitor_id, visit
