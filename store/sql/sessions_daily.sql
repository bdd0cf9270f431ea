-- `sessions_daily` rows of the days {from} to {to}: visits, bounces and visit duration per
-- dimension of the visit's entry (visits.sql), exits per page (the visit's last page view),
-- engaged time and scroll depth per page (time_on_page.sql; a depth of 0 is no depth).
SELECT site, day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3, toUInt64(count()) AS visits,
       toUInt64(countIf(bounce)) AS bounces, sum(duration_ms) AS visit_ms,
       toUInt64(0) AS engaged_ms, toUInt64(0) AS engaged_views, toUInt64(0) AS exits,
       toUInt64(0) AS scroll_sum, toUInt64(0) AS scroll_views
FROM ({visits})
ARRAY JOIN [('all', '', '', ''), ('page', entry, '', ''), ('referrer', entry_ref, '', ''),
            ('country', entry_country, '', ''), ('device', entry_device, '', ''),
            ('browser', entry_browser, '', ''), ('os', entry_os, '', ''),
            ('campaign', entry_utm_source, entry_utm_medium, entry_utm_campaign)] AS d
GROUP BY site, day, dimension, k1, k2, k3
UNION ALL
SELECT site, day, 'page' AS dimension, exit AS k1, '' AS k2, '' AS k3, toUInt64(0), toUInt64(0),
       toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(count()), toUInt64(0), toUInt64(0)
FROM ({visits})
GROUP BY site, day, exit
UNION ALL
SELECT site, day, 'page' AS dimension, path AS k1, '' AS k2, '' AS k3, toUInt64(0), toUInt64(0),
       toUInt64(0), toUInt64(sum(assumeNotNull(time_on_page_ms))), toUInt64(count(time_on_page_ms)),
       toUInt64(0), toUInt64(sumIf(scroll_depth, scroll_depth > 0)),
       toUInt64(countIf(scroll_depth > 0))
FROM ({time_on_page})
GROUP BY site, day, path
