#!/usr/bin/env bash
# The collector beside a bare pixel server, on one machine, in one run.
#
# Serves the pixel twice, each server pinned to the same single core (SERVER_CPU):
#   - footfall-collector (one tokio worker thread) writing every hit to a real ClickHouse;
#   - nginx answering `empty_gif` with an access log and the same Set-Cookie (a fresh random
#     id per hit, from $request_id) and Cache-Control headers.
# The load client runs on another core (CLIENT_CPU) with the same settings against both: wrk,
# and footfall-loadgen (closed loop, then open loop at half the collector's peak). Every round
# runs each server in turn; the script prints the median of ROUNDS rounds, the ratio
# collector/nginx, each server's CPU time per request (from /proc/PID/stat: it holds when other
# processes share the core, where throughput does not), the open-loop p99, the collector's peak
# RSS (VmHWM), the hits lost (acknowledged but not in ClickHouse; must be 0) and, when it started
# ClickHouse itself, ClickHouse's CPU time per request while each server was loaded.
#
#   benches/compare.sh                     # defaults below; settings through the environment
#   ROUNDS=5 DURATION=20 CONNECTIONS=100 benches/compare.sh
#   COLLECTOR_ARGS="--batch-rows 50000" benches/compare.sh
#   COLLECTOR=/path/to/footfall-collector benches/compare.sh   # another build (an older one)
#   STORE_WAIT_SECS=300 benches/compare.sh  # how long wrk's hits may take to be stored (120)
#
# ClickHouse: FOOTFALL_CLICKHOUSE_URL if it answers, else one started with scripts/clickhouse
# on CH_PORT with a throwaway data dir. Installs nginx and wrk with apt-get when missing. Runs
# nginx from a temporary prefix on a loopback port (not the system service) and removes
# everything it made on exit, the benchmark database included.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
CH_PORT=${CH_PORT:-18700}
COLLECTOR_PORT=${COLLECTOR_PORT:-18711}
NGINX_PORT=${NGINX_PORT:-18712}
RESULT_JSON=${RESULT_JSON:-}
# Added to the collector's `serve` options, e.g. COLLECTOR_ARGS="--batch-rows 50000".
COLLECTOR_ARGS=${COLLECTOR_ARGS:-}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/common.sh
source benches/common.sh
ch_url=${FOOTFALL_CLICKHOUSE_URL:-http://127.0.0.1:$CH_PORT}
tmp=$(mktemp -d -t footfall-compare.XXXXXX)
db="footfall_compare_$(date +%s)"
collector_pid=""
nginx_pid=""
started_clickhouse=""
# The ClickHouse this script started (its CPU is counted); unknown for one it did not start.
clickhouse_pid=""

log() { echo "compare: $*" >&2; }

cleanup() {
  [ -n "$collector_pid" ] && kill "$collector_pid" 2>/dev/null && wait "$collector_pid" 2>/dev/null
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  curl -fsS --max-time 5 "$ch_url/" --data-binary "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  [ -n "$started_clickhouse" ] && scripts/clickhouse stop --port "$CH_PORT" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

install_tools() {
  local missing=()
  command -v nginx >/dev/null || missing+=(nginx-light)
  command -v wrk >/dev/null || missing+=(wrk)
  command -v taskset >/dev/null || missing+=(util-linux)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  apt-get install -y "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; } \
    || { missing=("${missing[@]/nginx-light/nginx}"); apt-get install -y "${missing[@]}" >/dev/null; }
}

wait_http() { # url
  for _ in $(seq 1 100); do curl -fsS --max-time 1 "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "$1 did not answer"; return 1
}

# CPU seconds the server has used so far (user + system, every thread; nginx: master and workers).
server_cpu() { # name
  local pids=$collector_pid
  [ "$1" = nginx ] && pids="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
  if [ "$1" = clickhouse ]; then
    [ -n "$clickhouse_pid" ] || { echo null; return; }
    pids=$clickhouse_pid
  fi
  # shellcheck disable=SC2086
  awk -v tck="$(getconf CLK_TCK)" '{ t += $14 + $15 } END { printf "%.2f", t / tck }' \
    $(printf '/proc/%s/stat ' $pids)
}

cpu_since() { # name earlier-reading
  [ "$2" = null ] && { echo null; return; }
  awk -v a="$(server_cpu "$1")" -v b="$2" 'BEGIN { printf "%.2f", a - b }'
}

ch_count() { # site
  curl -fsS "$ch_url/?database=$db" --data-binary "SELECT count() FROM events WHERE site = '$1'"
}

install_tools
log "building the collector and footfall-loadgen (release)"
cargo build --release --quiet -p footfall-collector -p footfall-benches
collector_bin=${COLLECTOR:-$root/target/release/footfall-collector}
loadgen_bin=$root/target/release/footfall-loadgen

if ! curl -fsS --max-time 2 "$ch_url/ping" >/dev/null 2>&1; then
  scripts/clickhouse start --port "$CH_PORT" --data "$tmp/clickhouse" >&2
  started_clickhouse=1
  ch_url=http://127.0.0.1:$CH_PORT
  clickhouse_pid=$(cat ".cache/clickhouse-$CH_PORT/pid")
fi

# The collector: pinned, one runtime worker (tokio reads TOKIO_WORKER_THREADS; under taskset it
# would pick one anyway, since it counts the CPUs it may run on).
port_free "$COLLECTOR_PORT"
port_free "$NGINX_PORT"
# shellcheck disable=SC2086 # COLLECTOR_ARGS is split into options on purpose
TOKIO_WORKER_THREADS=1 MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 FOOTFALL_LOG=warn taskset -c "$SERVER_CPU" "$collector_bin" serve --dev \
  --listen "127.0.0.1:$COLLECTOR_PORT" --metrics-listen off --clickhouse-url "$ch_url" --clickhouse-database "$db" \
  --data-dir "$tmp/collector-data" $COLLECTOR_ARGS 2>"$tmp/collector.log" &
collector_pid=$!
wait_http "http://127.0.0.1:$COLLECTOR_PORT/healthz"

# nginx: its own prefix and config (benches/common.sh).
nginx_pixel_conf "$tmp/nginx" "$NGINX_PORT"
taskset -c "$SERVER_CPU" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>"$tmp/nginx/logs/stderr.log" &
nginx_pid=$!
wait_http "http://127.0.0.1:$NGINX_PORT/p.gif"

# wrk's "Requests/sec", p50 and p99 (in µs) as JSON.
run_wrk() { # name port site round
  local out="$tmp/wrk-$1-$4.txt"
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
    "http://127.0.0.1:$2$(pixel_path "$3")" >"$out"
  python3 - "$out" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
def us(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
try:
    print(json.dumps({
        "throughput": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "requests": int(re.search(r"(\d+) requests in", text).group(1)),
        "p50_us": us(re.search(r"^\s*50%\s+(\S+)", text, re.M).group(1)),
        "p99_us": us(re.search(r"^\s*99%\s+(\S+)", text, re.M).group(1)),
        "non_2xx": int((re.search(r"Non-2xx or 3xx responses: (\d+)", text) or [0, 0])[1]),
    }))
except (AttributeError, ValueError):
    sys.exit("compare: could not read wrk's output:\n" + text)
PY
}

run_loadgen() { # name port label loadgen-args...
  local name=$1 port=$2 label=$3; shift 3
  local verify=(--clickhouse-url "$ch_url" --clickhouse-database "$db")
  [ "$name" = nginx ] && verify=(--no-verify)
  taskset -c "$CLIENT_CPU" "$loadgen_bin" --target "127.0.0.1:$port" --duration-secs "$DURATION" \
    "${verify[@]}" --json "$tmp/loadgen-$name-$label.json" "$@" 2>>"$tmp/loadgen.log" >&2 || true
  tr -d '\n' <"$tmp/loadgen-$name-$label.json"; echo
}

results=$tmp/results.jsonl
for round in $(seq 1 "$ROUNDS"); do
  for name in collector nginx; do
    port=$COLLECTOR_PORT; [ "$name" = nginx ] && port=$NGINX_PORT
    site="wrk-$round-$(date +%s)"
    log "round $round/$ROUNDS: $name: wrk"
    cpu=$(server_cpu "$name") ch_cpu=$(server_cpu clickhouse)
    result=$(run_wrk "$name" "$port" "$site" "$round")
    cpu=$(cpu_since "$name" "$cpu") ch_cpu=$(cpu_since clickhouse "$ch_cpu")
    echo "{\"round\": $round, \"server\": \"$name\", \"tool\": \"wrk\", \"site\": \"$site\", \"cpu_s\": $cpu, \"clickhouse_cpu_s\": $ch_cpu, \"result\": $result}" >>"$results"
    log "round $round/$ROUNDS: $name: footfall-loadgen closed loop"
    cpu=$(server_cpu "$name") ch_cpu=$(server_cpu clickhouse)
    result=$(run_loadgen "$name" "$port" "closed-$round" --connections "$CONNECTIONS")
    cpu=$(cpu_since "$name" "$cpu") ch_cpu=$(cpu_since clickhouse "$ch_cpu")
    echo "{\"round\": $round, \"server\": \"$name\", \"tool\": \"loadgen\", \"cpu_s\": $cpu, \"clickhouse_cpu_s\": $ch_cpu, \"result\": $result}" >>"$results"
  done
done

# Open loop at half the collector's median closed-loop throughput, against both servers.
half=$(python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(round(statistics.median(r["result"]["throughput"] for r in rows
      if r["server"] == "collector" and r["tool"] == "loadgen") / 2))
PY
)
for round in $(seq 1 "$ROUNDS"); do
  for name in collector nginx; do
    port=$COLLECTOR_PORT; [ "$name" = nginx ] && port=$NGINX_PORT
    log "round $round/$ROUNDS: $name: footfall-loadgen open loop at $half/s"
    echo "{\"round\": $round, \"server\": \"$name\", \"tool\": \"open\", \"result\": $(run_loadgen "$name" "$port" "open-$round" --connections "$CONNECTIONS" --rate "$half")}" >>"$results"
  done
done

# wrk does not check storage: count its sites' rows until each holds as many as wrk had answers
# (it can hold more: answers in flight when wrk stopped counting), for at most STORE_WAIT_SECS
# after the run; the spool may still be draining a backlog, and a hit stored late is not lost.
STORE_WAIT_SECS=${STORE_WAIT_SECS:-120}
while read -r site requests; do
  for ((waited = 0; ; waited++)); do
    stored=$(ch_count "$site" || echo 0)
    [ "$stored" -ge "$requests" ] || [ "$waited" -ge $((STORE_WAIT_SECS * 5)) ] && break
    sleep 0.2
  done
  [ "$waited" -gt 0 ] && log "wrk site $site: $stored of $requests answers stored $((waited / 5)) s after the run"
  echo "{\"wrk_site\": \"$site\", \"stored\": $stored}" >>"$results"
done < <(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("tool") == "wrk" and r["server"] == "collector": print(r["site"], r["result"]["requests"])
' "$results")

hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$collector_pid/status")
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)
nginx_hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$nginx_worker/status")

python3 - "$results" "$hwm_kib" "$nginx_hwm_kib" "$half" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$RESULT_JSON" <<'PY'
import json, statistics, sys
path, hwm, nginx_hwm, half, rounds, duration, conns, out = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
def cpu_us(server, tool):
    return statistics.median(r["cpu_s"] * 1e6 / r["result"]["requests"]
                             for r in rows if r.get("server") == server and r.get("tool") == tool)
def clickhouse_us(server, tool):
    # None when ClickHouse was not started here (FOOTFALL_CLICKHOUSE_URL): its CPU is unknown.
    runs = [r for r in rows if r.get("server") == server and r.get("tool") == tool]
    if any(r["clickhouse_cpu_s"] is None for r in runs):
        return None
    return statistics.median(r["clickhouse_cpu_s"] * 1e6 / r["result"]["requests"] for r in runs)
def med(server, tool, key, sub=None):
    vals = [r["result"][key] if sub is None else r["result"][key][sub]
            for r in rows if r.get("server") == server and r.get("tool") == tool]
    return statistics.median(vals)
wrk_stored = {r["wrk_site"]: r["stored"] for r in rows if "wrk_site" in r}
wrk_lost = sum(max(0, r["result"]["requests"] - wrk_stored[r["site"]])
               for r in rows if r.get("tool") == "wrk" and r["server"] == "collector")
loadgen_lost = sum(r["result"]["lost"] or 0 for r in rows
                   if r.get("server") == "collector" and r.get("tool") in ("loadgen", "open"))
summary = {
    "rounds": int(rounds), "duration_secs": float(duration), "connections": int(conns),
    "wrk": {s: {"throughput": med(s, "wrk", "throughput"), "p50_us": med(s, "wrk", "p50_us"),
                "p99_us": med(s, "wrk", "p99_us"), "cpu_us_per_request": cpu_us(s, "wrk"),
                "clickhouse_cpu_us_per_request": clickhouse_us(s, "wrk")}
            for s in ("collector", "nginx")},
    "loadgen": {s: {"throughput": med(s, "loadgen", "throughput"),
                    "cpu_us_per_request": cpu_us(s, "loadgen"),
                    "clickhouse_cpu_us_per_request": clickhouse_us(s, "loadgen"),
                    "p50_us": med(s, "loadgen", "latency", "p50_us"),
                    "p99_us": med(s, "loadgen", "latency", "p99_us")} for s in ("collector", "nginx")},
    "open_loop": {"rate": int(half), **{s: {"p50_us": med(s, "open", "latency", "p50_us"),
                  "p99_us": med(s, "open", "latency", "p99_us"),
                  "p999_us": med(s, "open", "latency", "p999_us")} for s in ("collector", "nginx")}},
    "collector_peak_rss_mib": int(hwm) / 1024, "nginx_worker_peak_rss_mib": int(nginx_hwm) / 1024,
    "lost": {"loadgen": loadgen_lost, "wrk": wrk_lost},
    "runs": rows,
}
for tool in ("wrk", "loadgen"):
    c, n = summary[tool]["collector"], summary[tool]["nginx"]
    summary[tool]["ratio"] = c["throughput"] / n["throughput"]
    summary[tool]["cpu_ratio"] = n["cpu_us_per_request"] / c["cpu_us_per_request"]
    print(f"{tool:8} collector {c['throughput']:9.0f} req/s (p50 {c['p50_us']/1000:.3f} ms, p99 {c['p99_us']/1000:.3f} ms,"
          f" {c['cpu_us_per_request']:.1f} µs CPU/req)"
          f" | nginx {n['throughput']:9.0f} req/s (p50 {n['p50_us']/1000:.3f} ms, p99 {n['p99_us']/1000:.3f} ms,"
          f" {n['cpu_us_per_request']:.1f} µs CPU/req)"
          f" | ratio {summary[tool]['ratio']:.2f} (by CPU per request {summary[tool]['cpu_ratio']:.2f})")
if summary["wrk"]["collector"]["clickhouse_cpu_us_per_request"] is not None:
    # ClickHouse shares the machine's cores: what it spends storing a hit is CPU the collector
    # (and the client) do not get, while nginx runs beside an idle ClickHouse.
    print("ClickHouse CPU per request while each server ran (wrk / loadgen):"
          f" collector's {summary['wrk']['collector']['clickhouse_cpu_us_per_request']:.1f}"
          f" / {summary['loadgen']['collector']['clickhouse_cpu_us_per_request']:.1f} µs,"
          f" nginx's {summary['wrk']['nginx']['clickhouse_cpu_us_per_request']:.2f}"
          f" / {summary['loadgen']['nginx']['clickhouse_cpu_us_per_request']:.2f} µs")
o = summary["open_loop"]
print(f"open loop at {o['rate']}/s: collector p99 {o['collector']['p99_us']/1000:.3f} ms"
      f" (p99.9 {o['collector']['p999_us']/1000:.3f} ms) | nginx p99 {o['nginx']['p99_us']/1000:.3f} ms")
print(f"collector peak RSS {summary['collector_peak_rss_mib']:.1f} MiB (nginx worker {summary['nginx_worker_peak_rss_mib']:.1f} MiB);"
      f" hits lost: loadgen {loadgen_lost}, wrk {wrk_lost}")
print(f"medians of {rounds} rounds, {duration} s each, {conns} connections")
if out:
    with open(out, "w") as f:
        json.dump(summary, f, indent=2)
sys.exit(1 if loadgen_lost or wrk_lost else 0)
PY
