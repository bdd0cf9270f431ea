-- Time on page, one row per page view (bots left out). Where the tracker ran, it is the engaged
-- time it reported: the largest `dwell_ms` of the page view's engagement rows, since each report
-- is the total so far. For pixel-only page views it is inferred: the time until the same
-- visitor's next page view on the site, if that came within 30 minutes (so in the same visit).
-- NULL when unknown: the last page of a pixel-only visit, or a visitor without an id.
-- Engagement rows count only from the page view's own visitor, so no one can add time to
-- another visitor's page view by naming its id.
SELECT
    p.site AS site,
    p.path AS path,
    p.pageview_id AS pageview_id,
    p.ts AS ts,
    coalesce(e.engaged_ms, if(p.next_ms <= 1800000, p.next_ms, NULL)) AS time_on_page_ms
FROM
(
    SELECT
        site,
        visitor_id,
        path,
        pageview_id,
        ts,
        if(visitor_id = '', NULL, dateDiff('millisecond', ts, leadInFrame(toNullable(ts)) OVER (PARTITION BY site, visitor_id ORDER BY ts ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING))) AS next_ms
    FROM events
    WHERE kind = 'pageview' AND NOT is_bot
) AS p
LEFT JOIN
(
    SELECT pageview_id, visitor_id, toNullable(max(dwell_ms)) AS engaged_ms
    FROM events
    WHERE kind = 'engagement'
    GROUP BY pageview_id, visitor_id
) AS e ON e.pageview_id = p.pageview_id AND e.visitor_id = p.visitor_id
ORDER BY site, ts, pageview_id
