-- `sessions_daily` rows of the days {from} to {to}: visits, bounces and visit duration per
-- dimension of the visit's entry (visits.sql), exits per page (the visit's last page view),
-- engaged time and scroll depth per page (time_on_page.sql; a depth of 0 is no depth). The
-- visitors behind the visits, the exits, the timed and the scrolled page views are kept as
-- exact-count states of their ids, hashed under their month's key with {member_hash} (as in
-- `traffic_keyed_daily`; `rollup::member_hash`), so that a report shows such a number only when it stands for K
-- visitors. Columns by position, in the order of `rules::SESSIONS_DAILY_COLUMNS`.
WITH (joinGet('rollup_keys', 'k0', toStartOfMonth(day)),
      joinGet('rollup_keys', 'k1', toStartOfMonth(day))) AS key
SELECT site, day, d.1 AS dimension, d.2 AS k1, d.3 AS k2, d.4 AS k3, toUInt64(count()) AS visits,
       uniqExactStateIf({member_hash}(key, visitor_id), key.1 != 0) AS visit_visitors,
       toUInt64(countIf(bounce)) AS bounces, sum(duration_ms) AS visit_ms,
       toUInt64(0) AS engaged_ms, toUInt64(0) AS engaged_views,
       uniqExactStateIf({member_hash}(key, visitor_id), false) AS timed_visitors,
       toUInt64(0) AS exits, uniqExactStateIf({member_hash}(key, visitor_id), false) AS exit_visitors,
       toUInt64(0) AS scroll_sum, toUInt64(0) AS scroll_views,
       uniqExactStateIf({member_hash}(key, visitor_id), false) AS scroll_visitors
FROM ({visits})
ARRAY JOIN [('all', '', '', ''), ('page', entry, '', ''), ('referrer', entry_ref, '', ''),
            ('country', entry_country, '', ''), ('device', entry_device, '', ''),
            ('browser', entry_browser, '', ''), ('os', entry_os, '', ''),
            ('campaign', entry_utm_source, entry_utm_medium, entry_utm_campaign)] AS d
GROUP BY site, day, dimension, k1, k2, k3
UNION ALL
SELECT site, day, 'page' AS dimension, exit AS k1, '' AS k2, '' AS k3, toUInt64(0),
       uniqExactStateIf({member_hash}(key, visitor_id), false),
       toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
       uniqExactStateIf({member_hash}(key, visitor_id), false),
       toUInt64(count()), uniqExactStateIf({member_hash}(key, visitor_id), key.1 != 0),
       toUInt64(0), toUInt64(0), uniqExactStateIf({member_hash}(key, visitor_id), false)
FROM ({visits})
GROUP BY site, day, exit
UNION ALL
SELECT site, day, 'page' AS dimension, path AS k1, '' AS k2, '' AS k3, toUInt64(0),
       uniqExactStateIf({member_hash}(key, visitor_id), false),
       toUInt64(0), toUInt64(0), toUInt64(sum(assumeNotNull(time_on_page_ms))),
       toUInt64(count(time_on_page_ms)),
       uniqExactStateIf({member_hash}(key, visitor_id),
                        key.1 != 0 AND isNotNull(time_on_page_ms)),
       toUInt64(0), uniqExactStateIf({member_hash}(key, visitor_id), false),
       toUInt64(sumIf(scroll_depth, scroll_depth > 0)), toUInt64(countIf(scroll_depth > 0)),
       uniqExactStateIf({member_hash}(key, visitor_id), key.1 != 0 AND scroll_depth > 0)
FROM ({time_on_page})
GROUP BY site, day, path
