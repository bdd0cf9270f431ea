#!/usr/bin/env bash
# How fast the collector drains a spool backlog after a ClickHouse outage while traffic goes on.
#
#   benches/drain.sh RATE [OUTAGE_SECS] [-- collector options...]
#   e.g. benches/drain.sh 500 20 -- --flush-interval-ms 200
#        benches/drain.sh 50000 20
#
# Starts a throwaway ClickHouse and the release collector (pinned to core 0, the load
# generator to core 1), sends RATE hits/s (open loop) for the whole run, stops ClickHouse for
# OUTAGE_SECS, starts it again, and samples footfall_spool_backlog_rows every 250 ms until the
# backlog is back to what two flush intervals bring. Prints the backlog at the restart, the time
# it took to empty, and the drain rate (backlog plus hits that arrived meanwhile, per second)
# against the incoming rate. The load runs on to OUTAGE_SECS + DRAIN_WINDOW_SECS (60) in all;
# then the load generator checks that every acknowledged hit was stored once. Last, the
# collector's peak RSS (VmHWM). COLLECTOR=<binary> runs another build of the collector (an
# older one, to compare), as instructions.sh takes it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/common.sh
source benches/common.sh
rate=${1:?RATE hits per second}
outage=${2:-20}
shift $(($# >= 2 ? 2 : 1))
[ "${1:-}" = "--" ] && shift
port=${DRAIN_CLICKHOUSE_PORT:-18223}
listen=127.0.0.1:${DRAIN_COLLECTOR_PORT:-18280}
metrics=127.0.0.1:${DRAIN_METRICS_PORT:-18281}
data=$(mktemp -d -t footfall-drain.XXXXXX)
collector_pid=""
load_pid=""

cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null || true
  scripts/clickhouse stop --port "$port" >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap cleanup EXIT

cargo build --release -q -p footfall-collector -p footfall-benches --bin footfall-collector --bin footfall-loadgen
collector_bin=${COLLECTOR:-target/release/footfall-collector}
scripts/clickhouse start --port "$port" --data "$data/clickhouse" >/dev/null

# The image's allocator settings (Dockerfile), as compare.sh runs it.
port_free "${listen##*:}"
port_free "${metrics##*:}"
MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 FOOTFALL_LOG=warn taskset -c 0 "$collector_bin" serve --dev --listen "$listen" \
  --metrics-listen "$metrics" --clickhouse-url "http://127.0.0.1:$port" --clickhouse-database footfall_drain \
  --data-dir "$data/collector" --shutdown-grace-secs 60 "$@" &
collector_pid=$!
until curl -sf "http://$listen/readyz" | grep -qx ready; do sleep 0.2; done

backlog() { curl -sf "http://$metrics/metrics" | awk '$1 == "footfall_spool_backlog_rows" { print $2 }'; }
accepted() { curl -sf "http://$metrics/metrics" | awk '$1 ~ /^footfall_hits_accepted_total/ { s += $2 } END { print s }'; }
now() { date +%s.%N; }

run_secs=$((outage + ${DRAIN_WINDOW_SECS:-60}))
taskset -c 1 target/release/footfall-loadgen --target "$listen" --rate "$rate" --connections 64 \
  --duration-secs "$run_secs" --clickhouse-url "http://127.0.0.1:$port" \
  --clickhouse-database footfall_drain --verify-timeout-secs 300 > "$data/load.txt" &
load_pid=$!

sleep 5
scripts/clickhouse stop --port "$port" >/dev/null
sleep "$outage"
scripts/clickhouse start --port "$port" --data "$data/clickhouse" >/dev/null
restored=$(now)
at_restore=$(backlog)
accepted_at_restore=$(accepted)
flush_ms=1000
for ((i = 1; i <= $#; i++)); do [ "${!i}" = "--flush-interval-ms" ] && j=$((i + 1)) && flush_ms=${!j}; done
empty=$(awk -v r="$rate" -v f="$flush_ms" 'BEGIN { print int(r * f / 1000 * 2) + 100 }')
while [ "$(backlog)" -gt "$empty" ]; do
  sleep 0.25
  if awk -v t0="$restored" -v t="$(now)" 'BEGIN { exit !(t - t0 > 600) }'; then
    echo "the backlog did not empty within 600 s" >&2
    exit 1
  fi
done
drained=$(now)
arrived=$(($(accepted) - accepted_at_restore))
awk -v b="$at_restore" -v a="$arrived" -v t0="$restored" -v t1="$drained" -v r="$rate" 'BEGIN {
  s = t1 - t0; d = (b + a) / s; in_rate = a / s
  printf "outage backlog %d rows; emptied in %.2f s while %d hits arrived (%.0f/s, target %d/s): drained %.0f rows/s = %.1fx the incoming rate\n", b, s, a, in_rate, r, d, d / in_rate
}'
# The load goes on to its end; then the load generator checks what it was acknowledged.
wait "$load_pid"
load_pid=""
cat "$data/load.txt"
echo "collector peak RSS $(awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$collector_pid/status")"
