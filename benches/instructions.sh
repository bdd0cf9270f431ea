#!/usr/bin/env bash
# User-space instructions per pixel request: the collector beside nginx `empty_gif`, counted.
#
#   benches/instructions.sh                      # this tree's release build
#   COLLECTOR=/path/to/footfall-collector TOP=60 benches/instructions.sh
#   KEEP=/path/to/collector.callgrind benches/instructions.sh   # keep the collector's dump
#
# Each server in turn runs under callgrind (valgrind) on SERVER_CPU: wrk (50 connections, on
# CLIENT_CPU, the request of benches/common.sh) warms it up, its counters are zeroed, wrk loads
# it for DURATION seconds, and the counters are dumped. Instructions over requests answered is
# the figure: callgrind counts instructions, not time, so it is the same on a busy shared
# machine as on a quiet one, where compare.sh's throughput is not. It counts only user space
# (every thread: the collector's appender and inserter too); the kernel's share is in perf's
# profile (BENCHMARKS.md, where the microseconds go). Prints both figures, their ratio, and the
# TOP functions of the collector by inclusive instructions per request.
#
# ClickHouse: FOOTFALL_CLICKHOUSE_URL if it answers, else one started with scripts/clickhouse on
# CH_PORT with a throwaway data dir. Installs valgrind, nginx and wrk with apt-get when missing.
set -euo pipefail

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-25}
TOP=${TOP:-40}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CH_PORT=${CH_PORT:-18750}
COLLECTOR_PORT=${COLLECTOR_PORT:-18751}
NGINX_PORT=${NGINX_PORT:-18752}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/common.sh
source benches/common.sh
ch_url=${FOOTFALL_CLICKHOUSE_URL:-http://127.0.0.1:$CH_PORT}
tmp=$(mktemp -d -t footfall-instructions.XXXXXX)
db="footfall_instructions_$(date +%s)"
pids=()
started_clickhouse=""

log() { echo "instructions: $*" >&2; }

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  curl -fsS --max-time 5 "$ch_url/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  [ -n "$started_clickhouse" ] && scripts/clickhouse stop --port "$CH_PORT" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

missing=()
command -v valgrind >/dev/null || missing+=(valgrind)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get install -y "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
fi

if [ -z "${COLLECTOR:-}" ]; then
  log "building the collector (release)"
  cargo build --release --quiet -p footfall-collector
  COLLECTOR=$root/target/release/footfall-collector
fi
if ! curl -fsS --max-time 2 "$ch_url/ping" >/dev/null 2>&1; then
  scripts/clickhouse start --port "$CH_PORT" --data "$tmp/clickhouse" >&2
  started_clickhouse=1
  ch_url=http://127.0.0.1:$CH_PORT
fi

# Runs "$@" under callgrind until it answers URL, loads it, and prints "requests instructions";
# the dump is left in $tmp/NAME.out.
count() { # name url command...
  local name=$1 url=$2; shift 2
  taskset -c "$SERVER_CPU" valgrind --tool=callgrind --callgrind-out-file="$tmp/$name.cg" "$@" \
    >"$tmp/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 240); do curl -fs -o /dev/null --max-time 2 "$url" && break; sleep 0.5; done
  # The collector builds its user-agent rules on a thread of its own at start, which under
  # callgrind takes many seconds: the warm-up outlasts it.
  taskset -c "$CLIENT_CPU" wrk -t1 -c50 -d"${WARMUP}s" "$url" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  local requests
  requests=$(taskset -c "$CLIENT_CPU" wrk -t1 -c50 -d"${DURATION}s" "$url" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null
  local dump
  for _ in $(seq 1 100); do
    dump=$(ls "$tmp/$name.cg".* 2>/dev/null | head -1)
    [ -n "$dump" ] && grep -q '^totals:' "$dump" 2>/dev/null && break
    sleep 0.2
  done
  mv "$dump" "$tmp/$name.out"
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  echo "$requests $(awk '/^totals:/ {print $2}' "$tmp/$name.out")"
}

port_free "$COLLECTOR_PORT"
port_free "$NGINX_PORT"
log "the collector under callgrind (warm-up ${WARMUP} s, then ${DURATION} s counted)"
read -r c_req c_ir < <(TOKIO_WORKER_THREADS=1 MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 \
  FOOTFALL_LOG=warn count collector "http://127.0.0.1:$COLLECTOR_PORT$(pixel_path instructions)" \
  "$COLLECTOR" serve --dev --listen "127.0.0.1:$COLLECTOR_PORT" --metrics-listen off \
  --clickhouse-url "$ch_url" --clickhouse-database "$db" --data-dir "$tmp/collector-data")

log "nginx under callgrind"
NGINX_MAIN="master_process off;" nginx_pixel_conf "$tmp/nginx" "$NGINX_PORT"
read -r n_req n_ir < <(count nginx "http://127.0.0.1:$NGINX_PORT$(pixel_path instructions)" \
  nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf")

python3 - "$c_req" "$c_ir" "$n_req" "$n_ir" <<'PY'
import sys
c_req, c_ir, n_req, n_ir = map(int, sys.argv[1:])
c, n = c_ir / c_req, n_ir / n_req
print(f"collector {c:8.0f} instructions per request ({c_req} requests)")
print(f"nginx     {n:8.0f} instructions per request ({n_req} requests)")
print(f"collector / nginx {c / n:.2f}")
PY
[ -n "${KEEP:-}" ] && cp "$tmp/collector.out" "$KEEP" && log "the collector's dump: $KEEP (callgrind_annotate)"
echo "collector, top functions by inclusive instructions per request:"
callgrind_annotate --inclusive=yes "$tmp/collector.out" 2>/dev/null | python3 -c '
import re, sys
requests, top = int(sys.argv[1]), int(sys.argv[2])
rows = (re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*?)(?: \[[^]]*\])?$", line) for line in sys.stdin)
for m in [m for m in rows if m and ":" in m.group(2)][:top]:
    count = int(m.group(1).replace(",", ""))
    where = re.sub(r"^.*/registry/src/[^/]+/|^/rustc/[0-9a-f]+/library/|^\S*/(?=collector/)", "", m.group(2))
    print(f"{count / requests:8.0f}  {where[:150]}")
' "$c_req" "$TOP"
