-- Visits that started on the days {from} to {to}, one row each (activity.sql says what a visit
-- is). A visit belongs to the day it starts on. Its duration is its last activity minus its
-- first; a bounce is a visit of one page view; its entry page, referrer (internal navigation
-- counts as none), country, device, browser, OS and UTM tags are its first page view's; its exit
-- page is its last page view's path. A run of
-- engagement beacons without a page view (a tab brought back hours later) is not a visit.
SELECT site, visitor_id, visit, toDate(min(ts)) AS day, min(ts) AS started, max(ts) AS ended,
       toUInt64(dateDiff('millisecond', min(ts), max(ts))) AS duration_ms,
       countIf(kind = 'pageview') AS pageviews, toBool(pageviews = 1) AS bounce,
       argMinIf(path, ts, kind = 'pageview') AS entry, argMinIf(ref, ts, kind = 'pageview') AS entry_ref,
       argMaxIf(path, ts, kind = 'pageview') AS exit,
       argMinIf(country, ts, kind = 'pageview') AS entry_country,
       argMinIf(device, ts, kind = 'pageview') AS entry_device,
       argMinIf(browser, ts, kind = 'pageview') AS entry_browser,
       argMinIf(os, ts, kind = 'pageview') AS entry_os,
       argMinIf(utm_source, ts, kind = 'pageview') AS entry_utm_source,
       argMinIf(utm_medium, ts, kind = 'pageview') AS entry_utm_medium,
       argMinIf(utm_campaign, ts, kind = 'pageview') AS entry_utm_campaign
FROM ({activity})
GROUP BY site, visitor_id, visit
HAVING pageviews > 0 AND day BETWEEN toDate('{from}') AND toDate('{to}')
