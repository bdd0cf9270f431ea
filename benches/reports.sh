#!/usr/bin/env bash
# Month reports over generated events: the rollups against a scan of the raw events.
#
# Usage: benches/reports.sh [EVENTS]   (default 10000000)
#
# Generates EVENTS events for March 2026, and as many custom events again, inside ClickHouse (INSERT ... SELECT FROM numbers(),
# so the materialized views fill the rollups as a collector's inserts would), recomputes the
# visit and monthly rollups, then times `footfall-aggregator export` of month reports (each run
# is a whole process: start, query, CSV, audit row) and the same page counts read straight from
# `events`.
# Everything happens in a dedicated database, dropped at the end.
#
# Environment: FOOTFALL_CLICKHOUSE_URL (default http://127.0.0.1:8123), FOOTFALL_BENCH_DATABASE
# (default footfall_bench_reports), FOOTFALL_AGGREGATOR (the binary; default: a release build).
set -euo pipefail

cd "$(dirname "$0")/.."
events=${1:-10000000}
url=${FOOTFALL_CLICKHOUSE_URL:-http://127.0.0.1:8123}
db=${FOOTFALL_BENCH_DATABASE:-footfall_bench_reports}
runs=5
if [[ -z ${FOOTFALL_AGGREGATOR:-} ]]; then
    cargo build --release --quiet -p footfall-aggregator
    FOOTFALL_AGGREGATOR=target/release/footfall-aggregator
fi
agg() { FOOTFALL_LOG=warn "$FOOTFALL_AGGREGATOR" "$@" --clickhouse-url "$url" --clickhouse-database "$db"; }
sql() { curl -fsS "$url/" --data-binary "$1"; }
ms() { echo $(($(date +%s%N) / 1000000)); }
cleanup() { sql "DROP DATABASE IF EXISTS $db SYNC" >/dev/null || true; }
trap cleanup EXIT

cleanup
agg migrate >/dev/null

# Ten events per visit, 1.5 million visitors, 2000 pages on 3 sites; every 10th event is an
# engagement beacon, every 50th a bot. Each visitor is on one of 49,750 networks (/24s): rows
# need K of them as well as K visitors.
start=$(ms)
sql "INSERT INTO $db.events (event_id, ts, site, kind, visitor_id, pageview_id, host, path, url,
        referrer_host, utm_source, utm_medium, utm_campaign, dwell_ms, country, browser, os,
        device, ip_prefix, is_bot)
SELECT generateUUIDv4(),
       toDateTime64('2026-03-01 00:00:00', 3, 'UTC')
         + toIntervalMillisecond(intDiv(number, 10) * 26784 % 2678400000 + (number % 10) * 40000),
       concat('site', toString(intDiv(number, 10) % 3)),
       if(number % 10 = 9, 'engagement', 'pageview'),
       concat('visitor', toString(cityHash64(intDiv(number, 10)) % 1500000)),
       toString(if(number % 10 = 9, number - 1, number)),
       'example.com',
       concat('/page/', toString(cityHash64(number) % 2000)),
       concat('https://example.com/page/', toString(cityHash64(number) % 2000)),
       ['', 'google.com', 'news.example', 'example.com', 'x.com'][number % 5 + 1],
       if(intDiv(number, 10) % 20 = 0, 'newsletter', ''),
       if(intDiv(number, 10) % 20 = 0, 'email', ''),
       if(intDiv(number, 10) % 20 = 0, concat('m', toString(intDiv(number, 10) % 7)), ''),
       if(number % 10 = 9, 15000, 0),
       ['DE', 'FR', 'US', 'GB', 'NL', 'IT', 'ES'][cityHash64(intDiv(number, 10), 1) % 7 + 1],
       ['Firefox', 'Chrome', 'Safari', 'Edge'][cityHash64(intDiv(number, 10), 2) % 4 + 1],
       ['Linux', 'Windows', 'macOS', 'iOS', 'Android'][cityHash64(intDiv(number, 10), 3) % 5 + 1],
       ['desktop', 'mobile', 'tablet'][cityHash64(intDiv(number, 10), 4) % 3 + 1],
       concat('10.', toString(cityHash64(intDiv(number, 10)) % 1500000 % 250), '.', toString(cityHash64(intDiv(number, 10)) % 1500000 % 199), '.0/24'),
       number % 50 = 0
FROM numbers($events)"
echo "generated $events events (rollups filled by the views) in $(($(ms) - start)) ms"
# As many custom events: 40 names, each with a `plan` (3 values) and an `n` (100 values); every
# 50th from a bot. Visitors as above, on the same 3 sites.
start=$(ms)
sql "INSERT INTO $db.events (event_id, ts, site, kind, visitor_id, pageview_id, host, path, url,
        event_name, props, ip_prefix, is_bot)
SELECT generateUUIDv4(),
       toDateTime64('2026-03-01 00:00:00', 3, 'UTC')
         + toIntervalMillisecond(intDiv(number, 10) * 26784 % 2678400000 + (number % 10) * 40000),
       concat('site', toString(intDiv(number, 10) % 3)),
       'custom',
       concat('visitor', toString(cityHash64(intDiv(number, 10)) % 1500000)),
       toString(number),
       'example.com',
       concat('/page/', toString(cityHash64(number) % 2000)),
       concat('https://example.com/page/', toString(cityHash64(number) % 2000)),
       concat('Event ', toString(cityHash64(number, 5) % 40)),
       map('plan', ['free', 'pro', 'team'][number % 3 + 1], 'n', toString(number % 100)),
       concat('10.', toString(cityHash64(intDiv(number, 10)) % 1500000 % 250), '.', toString(cityHash64(intDiv(number, 10)) % 1500000 % 199), '.0/24'),
       number % 50 = 0
FROM numbers($events)"
echo "generated $events custom events (rollups filled by the views) in $(($(ms) - start)) ms"
start=$(ms)
agg backfill --from 2026-03-01 --to 2026-03-31 >/dev/null
echo "recomputed the month's rollups (backfill) in $(($(ms) - start)) ms"
sql "SELECT 'rollup rows: traffic_keyed_daily ' || toString((SELECT count() FROM $db.traffic_keyed_daily))
         || ', sessions_daily ' || toString((SELECT count() FROM $db.sessions_daily))
         || '; events ' || toString((SELECT count() FROM $db.events))"

time_it() {
    local label=$1 best=999999 total=0 t
    shift
    for _ in $(seq $runs); do
        t=$(ms)
        "$@" >/dev/null
        t=$(($(ms) - t))
        total=$((total + t))
        ((t < best)) && best=$t
    done
    printf '%-58s best %5d ms, mean %5d ms (%d runs)\n' "$label" "$best" $((total / runs)) $runs
}

# March is over, so `backfill` computed its monthly rollup: a month's report reads that.
for report in daily pages referrers countries devices campaigns; do
    time_it "export --report $report (March, site0)" \
        agg export --report "$report" --from 2026-03-01 --to 2026-03-31 --site site0
done
time_it "export --report pages (March, all sites)" \
    agg export --report pages --from 2026-03-01 --to 2026-03-31
# Any other range merges the daily states.
time_it "export --report pages (March 1-30, site0: daily states)" \
    agg export --report pages --from 2026-03-01 --to 2026-03-30 --site site0
for report in events properties; do
    time_it "export --report $report (March, site0)" \
        agg export --report "$report" --from 2026-03-01 --to 2026-03-31 --site site0
done
time_it "export --report events (March 1-30, site0: daily states)" \
    agg export --report events --from 2026-03-01 --to 2026-03-30 --site site0
time_it "raw scan: events + exact visitors per name (March, site0)" \
    sql "SELECT event_name, count(), uniqExact(visitor_id) FROM $db.events
         WHERE site = 'site0' AND kind = 'custom' AND NOT is_bot
           AND toDate(ts) BETWEEN '2026-03-01' AND '2026-03-31'
         GROUP BY event_name FORMAT Null"
time_it "raw scan: page views + exact visitors per path (March, site0)" \
    sql "SELECT path, count(), uniqExact(visitor_id) FROM $db.events
         WHERE site = 'site0' AND kind = 'pageview' AND NOT is_bot
           AND toDate(ts) BETWEEN '2026-03-01' AND '2026-03-31'
         GROUP BY path FORMAT Null"
