#!/usr/bin/env bash
# Two collector builds against each other, in one run: what a change costs per request.
#
#   A=/path/to/old/footfall-collector benches/ab.sh          # A against this tree's release build
#   A=old B=new B_ARGS="--idle-release-ms 0" ROUNDS=7 benches/ab.sh
#
# Both collectors run at once, each with one tokio worker, pinned to the same core (SERVER_CPU),
# writing to the same ClickHouse (FOOTFALL_CLICKHOUSE_URL if it answers, else one started with
# scripts/clickhouse on CH_PORT); A_ARGS and B_ARGS are added to their `serve` options. Every
# round loads A, then B, with wrk and then footfall-loadgen (closed loop, CONNECTIONS keep-alive
# connections, pinned to CLIENT_CPU), so both see the same moments of a shared machine. Prints
# the median throughput and server CPU time per request (from /proc/PID/stat, which holds when
# other processes share the core) of each, the ratios B/A, each one's peak RSS, and the hits
# loadgen found lost; and under wrk, each kind of thread's CPU time and minor page faults per
# request (the request thread, the spool's appender, the inserter).
set -euo pipefail

A=${A:?A=path of the baseline footfall-collector}
B=${B:-}
A_ARGS=${A_ARGS:-}
B_ARGS=${B_ARGS:-}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CH_PORT=${CH_PORT:-18740}
A_PORT=${A_PORT:-18741}
B_PORT=${B_PORT:-18742}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/common.sh
source benches/common.sh
cargo build --release --quiet -p footfall-collector -p footfall-benches
B=${B:-$root/target/release/footfall-collector}
loadgen=$root/target/release/footfall-loadgen
ch_url=${FOOTFALL_CLICKHOUSE_URL:-http://127.0.0.1:$CH_PORT}
tmp=$(mktemp -d -t footfall-ab.XXXXXX)
db="footfall_ab_$(date +%s)"
pids=()
started_clickhouse=""

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  curl -fsS --max-time 5 "$ch_url/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  [ -n "$started_clickhouse" ] && scripts/clickhouse stop --port "$CH_PORT" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

if ! curl -fsS --max-time 2 "$ch_url/ping" >/dev/null 2>&1; then
  scripts/clickhouse start --port "$CH_PORT" --data "$tmp/clickhouse" >&2
  started_clickhouse=1
  ch_url=http://127.0.0.1:$CH_PORT
fi

start() { # bin port args
  port_free "$2"
  # shellcheck disable=SC2086
  TOKIO_WORKER_THREADS=1 MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 FOOTFALL_LOG=warn \
    taskset -c "$SERVER_CPU" "$1" serve --dev --listen "127.0.0.1:$2" --metrics-listen off \
    --clickhouse-url "$ch_url" --clickhouse-database "$db" --data-dir "$tmp/data-$2" $3 \
    2>"$tmp/collector-$2.log" &
  pids+=($!)
  for _ in $(seq 100); do curl -fsS --max-time 1 "http://127.0.0.1:$2/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "ab: the collector on $2 did not get ready" >&2; cat "$tmp/collector-$2.log" >&2; exit 1
}
start "$A" "$A_PORT" "$A_ARGS"
a_pid=${pids[-1]}
start "$B" "$B_PORT" "$B_ARGS"
b_pid=${pids[-1]}

cpu() { # pid: CPU seconds so far, every thread
  awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / tck }' "/proc/$1/stat"
}

# pid: CPU seconds and minor page faults so far of each kind of thread, as JSON
# ({"tokio-rt-worker": [cpu_s, faults], "footfall-append": ...}).
threads() {
  for task in /proc/"$1"/task/*; do
    # The first thread is named after the binary, which differs between builds. A name may hold
    # spaces: it is read from `comm`, the counters after its closing parenthesis.
    name=main
    [ "${task##*/}" = "$1" ] || name=$(tr ' ' _ <"$task/comm")
    printf '%s %s\n' "$name" "$(sed 's/.*) //' "$task/stat")"
  done | awk -v tck="$(getconf CLK_TCK)" '
    { cpu[$1] += ($13 + $14) / tck; faults[$1] += $9 }
    END { sep = ""; printf "{"; for (n in cpu) { printf "%s\"%s\": [%.2f, %d]", sep, n, cpu[n], faults[n]; sep = ", " }; printf "}" }'
}

path="/p.gif?site=ab&url=https%3A%2F%2Fshop.example.com%2Fitem-7&ref=https%3A%2F%2Fwww.google.com%2F"
results=$tmp/results.jsonl
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    port=$A_PORT pid=$a_pid
    [ "$side" = B ] && port=$B_PORT pid=$b_pid
    echo "ab: round $round/$ROUNDS: $side" >&2
    before=$(cpu "$pid") threads_before=$(threads "$pid")
    requests=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$port$path" \
      | awk '/requests in/ { print $1 }')
    echo "{\"side\": \"$side\", \"tool\": \"wrk\", \"requests\": $requests, \"cpu_s\": $(awk -v a="$(cpu "$pid")" -v b="$before" 'BEGIN { print a - b }'), \"threads\": [$threads_before, $(threads "$pid")]}" >>"$results"
    before=$(cpu "$pid")
    taskset -c "$CLIENT_CPU" "$loadgen" --target "127.0.0.1:$port" --duration-secs "$DURATION" \
      --connections "$CONNECTIONS" --clickhouse-url "$ch_url" --clickhouse-database "$db" \
      --json "$tmp/loadgen.json" >/dev/null 2>>"$tmp/loadgen.log" || true
    echo "{\"side\": \"$side\", \"tool\": \"loadgen\", \"cpu_s\": $(awk -v a="$(cpu "$pid")" -v b="$before" 'BEGIN { print a - b }'), \"result\": $(tr -d '\n' <"$tmp/loadgen.json")}" >>"$results"
  done
done

hwm() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
python3 - "$results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$A_ARGS" "$B_ARGS" "$(hwm "$a_pid")" "$(hwm "$b_pid")" <<'PY'
import json, statistics, sys
path, rounds, duration, conns, a_args, b_args, a_hwm, b_hwm = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
def requests(r):
    return r["requests"] if r["tool"] == "wrk" else r["result"]["requests"]
lost = sum(r["result"]["lost"] or 0 for r in rows if r["tool"] == "loadgen")
for tool in ("wrk", "loadgen"):
    got = {}
    for side in ("A", "B"):
        runs = [r for r in rows if r["tool"] == tool and r["side"] == side]
        got[side] = (statistics.median(requests(r) / float(duration) for r in runs),
                     statistics.median(r["cpu_s"] * 1e6 / requests(r) for r in runs))
    (at, ac), (bt, bc) = got["A"], got["B"]
    print(f"{tool:8} A {at:8.0f} req/s {ac:5.2f} µs CPU/req | B {bt:8.0f} req/s {bc:5.2f} µs CPU/req"
          f" | B/A throughput {bt / at:.3f}, CPU per request {bc / ac:.3f}")
# Each kind of thread's share under wrk: CPU time and minor page faults per request.
names = sorted({n for r in rows if r["tool"] == "wrk" for n in r["threads"][1]})
for name in names:
    got = {}
    for side in ("A", "B"):
        runs = [r for r in rows if r["tool"] == "wrk" and r["side"] == side]
        def per_request(r, i):
            before, after = r["threads"]
            return (after.get(name, [0, 0])[i] - before.get(name, [0, 0])[i]) / requests(r)
        got[side] = (statistics.median(per_request(r, 0) * 1e6 for r in runs),
                     statistics.median(per_request(r, 1) for r in runs))
    (ac, af), (bc, bf) = got["A"], got["B"]
    print(f"wrk, {name:16} A {ac:5.2f} µs CPU/req {af:6.3f} faults/req"
          f" | B {bc:5.2f} µs CPU/req {bf:6.3f} faults/req")
print(f"peak RSS (VmHWM): A {a_hwm} MiB, B {b_hwm} MiB")
print(f"A: {a_args or '(defaults)'}; B: {b_args or '(defaults)'}; medians of {rounds} rounds, "
      f"{duration} s each, {conns} connections; hits lost (loadgen): {lost}")
sys.exit(1 if lost else 0)
PY
