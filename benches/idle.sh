#!/usr/bin/env bash
# Memory per idle connection: the collector's resident memory with N connections open that
# have sent nothing, then with each idle after one pixel hit, then once all have closed.
#
#   benches/idle.sh              # N=5000, the release build (built when missing)
#   N=2000 benches/idle.sh
#   BIN=/path/to/footfall-collector benches/idle.sh    # another build
#
# The collector runs with --dev on a throwaway data dir and a ClickHouse address nobody
# answers on: it listens and spools without one, and no insert work blurs the figures. It is
# pinned to SERVER_CPU, the client (Python, one socket per connection) to CLIENT_CPU. VmRSS is
# read from /proc after each step has settled: 1 s, and after the hits 1 s more than twice
# FOOTFALL_IDLE_RELEASE_MS (the collector's default, 1000, unless set), by when every idle
# connection has been released.
set -euo pipefail

N=${N:-5000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18731}
export FOOTFALL_IDLE_RELEASE_MS=${FOOTFALL_IDLE_RELEASE_MS:-1000}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=benches/common.sh
source benches/common.sh
bin=${BIN:-target/release/footfall-collector}
[ -x "$bin" ] || cargo build --release -p footfall-collector
data=$(mktemp -d -t footfall-idle.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$data"
}
trap cleanup EXIT

ulimit -n $((N + 1024))
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
port_free "$PORT"
FOOTFALL_LOG=warn taskset -c "$SERVER_CPU" "$bin" serve --dev --listen "127.0.0.1:$PORT" \
  --data-dir "$data" --clickhouse-url "http://127.0.0.1:$closed" \
  --max-connections $((N + 100)) --header-read-timeout-ms 600000 &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done

taskset -c "$CLIENT_CPU" python3 - "$PORT" "$N" "$pid" "$FOOTFALL_IDLE_RELEASE_MS" <<'PY'
import socket, sys, time
port, n, pid, release_s = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]) / 1000

def rss_kib(settle=1):
    time.sleep(settle)
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

base = rss_kib()
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
silent = rss_kib()
hit = b"GET /p.gif?site=idle&url=https%3A%2F%2Fexample.com%2F HTTP/1.1\r\nHost: idle.test\r\n\r\n"
for s in socks:
    s.sendall(hit)
for s in socks:
    got = b""
    while b"GIF89a" not in got:
        got += s.recv(4096)
after_hit = rss_kib(1 + 2 * release_s)
for s in socks:
    s.close()
closed = rss_kib()
mib = lambda k: f"{k / 1024:.1f} MiB"
per = lambda k: f"{(k - base) / n:.1f} KiB per connection"
print(f"{n} connections: baseline {mib(base)}")
print(f"  silent (no byte sent): {mib(silent)}, {per(silent)}")
print(f"  idle after one pixel hit: {mib(after_hit)}, {per(after_hit)}")
print(f"  all closed: {mib(closed)} ({mib(closed - base)} above the baseline)")
PY
