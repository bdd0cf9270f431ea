-- Time on page, one row per page view of the days {from} to {to} (activity.sql says who counts).
-- Where the tracker ran, it is the engaged time it reported: the largest `dwell_ms` of the page
-- view's engagement beacons, since each reports the total so far, counted only from the page
-- view's own visitor, so no one can add time to another visitor's page view by naming its id.
-- For a pixel-only page view it is inferred: the time until the visitor's next page view in
-- the same visit, if that came within {gap_ms} ms. NULL when unknown (the last page view of a
-- visit, or a next page view more than 30 minutes later with only engagement beacons between):
-- such a page view is left out of the average rather than counted as 30 minutes no one saw.
-- Its scroll depth is the largest its engagement beacons reported, 0 when none did (pixel only,
-- or scroll depth switched off on the tracker).
SELECT v.site AS site, toDate(v.ts) AS day, v.path AS path, v.pageview_id AS pageview_id,
       v.visitor_id AS visitor_id, v.ts AS ts,
       if(e.pageview_id != '', toNullable(toUInt64(e.engaged_ms)),
          if(isNull(v.next) OR dateDiff('millisecond', v.ts, assumeNotNull(v.next)) > {gap_ms}, NULL,
             toNullable(toUInt64(dateDiff('millisecond', v.ts, assumeNotNull(v.next))))))
         AS time_on_page_ms,
       if(e.pageview_id != '', e.depth, 0) AS scroll_depth
FROM (
    SELECT site, path, pageview_id, visitor_id, ts,
           leadInFrame(toNullable(ts)) OVER (PARTITION BY site, visitor_id, visit ORDER BY ts
                                             ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next
    FROM ({activity}) WHERE kind = 'pageview'
) AS v
LEFT JOIN (
    SELECT pageview_id, visitor_id, max(dwell_ms) AS engaged_ms, max(scroll_depth) AS depth
    FROM ({activity})
    WHERE kind = 'engagement' AND pageview_id != '' GROUP BY pageview_id, visitor_id
) AS e ON v.pageview_id = e.pageview_id AND v.visitor_id = e.visitor_id
WHERE toDate(v.ts) BETWEEN toDate('{from}') AND toDate('{to}')
