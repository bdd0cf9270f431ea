-- A visitor's activity, numbered into visits: the rule every visit, time-on-page and funnel
-- figure follows. A visit is a visitor's run of page views, engagement beacons and custom events
-- on one site with no gap of more than {gap_ms} ms (30 minutes); the engagement beacon the
-- tracker sends on leaving keeps a long read in its visit, a click or a form sent keeps the
-- visit going too. Bots, and visitors without an id (opted out, DNT, GPC), are
-- left out: they cannot be told apart. The days {from} to {to} are read with a day of margin on
-- both sides, so that a visit across midnight is one visit.
SELECT *, sum(starts) OVER (PARTITION BY site, visitor_id ORDER BY ts
                            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS visit
FROM (
    SELECT site, visitor_id, ts, kind, pageview_id, path,
           if(referrer_host = host, '', referrer_host) AS ref, country, device, browser, os,
           utm_source, utm_medium, utm_campaign, dwell_ms, scroll_depth, event_name, ip_prefix,
           if(dateDiff('millisecond',
                       lagInFrame(ts, 1, toDateTime64(0, 3, 'UTC')) OVER by_time, ts) > {gap_ms},
              1, 0) AS starts
    FROM events
    WHERE kind IN ('pageview', 'engagement', 'custom') AND NOT is_bot AND visitor_id != ''
      AND toDate(ts) BETWEEN toDate('{from}') - 1 AND toDate('{to}') + 1
    WINDOW by_time AS (PARTITION BY site, visitor_id ORDER BY ts
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
