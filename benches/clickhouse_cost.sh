#!/usr/bin/env bash
# What ClickHouse spends on each stored event, and which part of the schema spends it.
#
#   benches/clickhouse_cost.sh                  # INSERTS inserts of 50,000 rows per variant
#   INSERTS=20 ROWS=10000 benches/clickhouse_cost.sh
#
# On two cores ClickHouse is the largest user of CPU in a collector run (BENCHMARKS.md,
# ClickHouse's share), so this measures it alone. It starts a throwaway ClickHouse, has the
# release collector store ROWS hits of footfall-loadgen's traffic, and takes them back twice:
# as one `RowBinaryWithNamesAndTypes` body (the rows as the spool holds them, which inserts sent
# before) and as `Native` blocks of about 2,000 rows with every `LowCardinality(String)` column
# declared `String` (as the collector's inserts send them now). Then, for each variant of the
# schema, a database of its own gets the whole schema (`footfall-collector migrate`) and the
# variant's change, and a body is inserted INSERTS times, each under a token of its own with
# the settings the collector sends (so every insert is stored, and deduplicated as the
# collector's are). ClickHouse's CPU time (utime + stime of its process, /proc) is taken over
# the inserts, and again once its merges are done; both per event. The variants take parts of
# the schema away to show what each costs, or put back what databases made before a change keep
# (fixedstring_states); none is a proposal.
set -euo pipefail

INSERTS=${INSERTS:-12}
ROWS=${ROWS:-50000}
CH_PORT=${CH_PORT:-18760}
COLLECTOR_PORT=${COLLECTOR_PORT:-18761}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/common.sh
source benches/common.sh
tmp=$(mktemp -d -t footfall-clickhouse-cost.XXXXXX)
url=http://127.0.0.1:$CH_PORT
collector_pid=""

cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  scripts/clickhouse stop --port "$CH_PORT" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

log() { echo "clickhouse_cost: $*" >&2; }
q() { curl -sS --fail-with-body "$url/" --data-binary "$1"; }

cargo build --release -q -p footfall-collector -p footfall-benches --bin footfall-collector --bin footfall-loadgen
scripts/clickhouse start --port "$CH_PORT" --data "$tmp/clickhouse" >/dev/null
ch_pid=$(cat ".cache/clickhouse-$CH_PORT/pid")
ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$ch_pid/stat"; }
settled() { [ "$(q "SELECT count() FROM system.merges")" = 0 ]; }

log "storing $ROWS hits of footfall-loadgen's traffic"
port_free "$COLLECTOR_PORT"
MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 FOOTFALL_LOG=warn target/release/footfall-collector serve --dev \
  --listen "127.0.0.1:$COLLECTOR_PORT" --metrics-listen off --clickhouse-url "$url" \
  --clickhouse-database template --data-dir "$tmp/collector" &
collector_pid=$!
until curl -sf "http://127.0.0.1:$COLLECTOR_PORT/readyz" | grep -qx ready; do sleep 0.2; done
target/release/footfall-loadgen --target "127.0.0.1:$COLLECTOR_PORT" --connections 20 \
  --max-requests "$ROWS" --duration-secs 120 --clickhouse-url "$url" --clickhouse-database template \
  --site template >&2
kill "$collector_pid" && wait "$collector_pid" 2>/dev/null || true
collector_pid=""
q "SELECT * FROM template.events ORDER BY ts LIMIT $ROWS FORMAT RowBinaryWithNamesAndTypes" >"$tmp/body"
log "one insert: $ROWS rows, $(stat -c %s "$tmp/body") bytes"
# The same rows as the collector sends them now: Native blocks of about 2,000 rows, every
# LowCardinality(String) column declared String (footfall_store::native).
columns=$(q "SELECT arrayStringConcat(groupArray(if(type = 'LowCardinality(String)', 'CAST(' || name || ' AS String) AS ' || name, name)), ', ')
  FROM (SELECT name, type FROM system.columns WHERE database = 'template' AND table = 'events' ORDER BY position)")
curl -sS --fail-with-body "$url/?max_block_size=2000" \
  --data-binary "SELECT $columns FROM template.events ORDER BY ts LIMIT $ROWS FORMAT Native" >"$tmp/native"

# variant NAME [SQL...]: the schema with SQL applied ({db} is the variant's database), the rows
# sent in FORMAT (RowBinaryWithNamesAndTypes unless set).
variant() {
  local name=$1 db="cost_$1" format=${FORMAT:-RowBinaryWithNamesAndTypes} body=$tmp/body
  [ "$format" = Native ] && body=$tmp/native
  shift
  q "DROP DATABASE IF EXISTS $db" >/dev/null
  target/release/footfall-collector migrate --clickhouse-url "$url" --clickhouse-database "$db" >/dev/null
  local sql
  for sql in "$@"; do q "${sql//\{db\}/$db}" >/dev/null; done
  until settled; do sleep 0.2; done
  local c0 c1 c2 i
  c0=$(cpu)
  for ((i = 1; i <= INSERTS; i++)); do
    curl -fsS "$url/?query=INSERT%20INTO%20$db.events%20FORMAT%20$format&insert_deduplication_token=$db-$i&async_insert=0&deduplicate_blocks_in_dependent_materialized_views=1&input_format_skip_unknown_fields=0" \
      --data-binary "@$body" >/dev/null
  done
  c1=$(cpu)
  sleep 2
  until settled; do sleep 0.2; done
  c2=$(cpu)
  local stored
  stored=$(q "SELECT count() FROM $db.events")
  [ "$stored" = $((INSERTS * ROWS)) ] || { log "$name: $stored rows stored, not $((INSERTS * ROWS))"; exit 1; }
  awk -v name="$name" -v ev="$stored" -v c0="$c0" -v c1="$c1" -v c2="$c2" -v t="$ticks" 'BEGIN {
    printf "%-26s %6.2f µs/event inserting, %5.2f merging, %6.2f in all\n", name,
      (c1 - c0) / t / ev * 1e6, (c2 - c1) / t / ev * 1e6, (c2 - c0) / t / ev * 1e6 }'
  q "DROP DATABASE $db" >/dev/null
}

drop_views=()
for view in identities_from_events traffic_keyed_from_pageviews traffic_keyed_from_email_opens \
  traffic_keyed_from_custom_events; do
  drop_views+=("DROP VIEW {db}.$view")
done
variant schema
FORMAT=Native variant schema_native_blocks
variant events_alone "${drop_views[@]}"
FORMAT=Native variant events_alone_native_blocks "${drop_views[@]}"
variant no_pageview_rollup "DROP VIEW {db}.traffic_keyed_from_pageviews"
variant alone_compact_parts "${drop_views[@]}" \
  "ALTER TABLE {db}.events MODIFY SETTING min_bytes_for_wide_part = 1000000000, min_rows_for_wide_part = 100000000"
variant alone_no_dedup_window "${drop_views[@]}" \
  "ALTER TABLE {db}.events MODIFY SETTING non_replicated_deduplication_window = 0"
variant lz4_not_zstd "ALTER TABLE {db}.events MODIFY COLUMN url String CODEC(LZ4), MODIFY COLUMN title String CODEC(LZ4), MODIFY COLUMN referrer String CODEC(LZ4), MODIFY COLUMN user_agent String CODEC(LZ4), MODIFY COLUMN props Map(String, String) CODEC(LZ4)"
# The rollup's exact-count states as databases made before they were 64-bit keep them: over
# SipHash-128 FixedString(16) values, which uniqExact hashes again and keeps in 16 bytes, where
# it keeps a UInt64 as it is. The table and the page-view view as the schema makes them, with
# those two changes; the email and custom-event views go (their states would not match), page
# views are all this traffic has.
ddl() {
  q "SELECT create_table_query FROM system.tables WHERE database = 'template' AND name = '$1' FORMAT TSVRaw" |
    sed -e 's/template\./{db}./g' -e 's/uniqExact, UInt64/uniqExact, FixedString(16)/g' -e 's/sipHash64Keyed/sipHash128Keyed/g'
}
FORMAT=Native variant fixedstring_states "${drop_views[@]:1}" "DROP TABLE {db}.traffic_keyed_daily" \
  "$(ddl traffic_keyed_daily)" "$(ddl traffic_keyed_from_pageviews)"
variant schema_again
