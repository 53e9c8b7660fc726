#!/usr/bin/env bash
# Where a served call's CPU goes, per thread: `tollgate serve` (a target prepared by
# benches/peers/tollgate-target.sh, one key with limits out of reach) under `wrk -t1 -c32` on
# `GET /v1/ping`, with each thread's CPU time (utime + stime from /proc/<pid>/task/*/stat)
# summed by thread name over the measured run and divided by the calls served; in Redis mode
# also PostgreSQL's processes (the events' COPY and rollups). CPU per call is steadier than
# the request rate on a shared 2-core machine: compare binaries by alternating them.
# Loopback only; every run has a fixed length.
#
#   cargo build --release --bin tollgate
#   benches/load/threads.sh embedded                      # or: redis
#   TOLLGATE_BIN=/tmp/a DURATION=10 benches/load/threads.sh embedded
#
# Prints the rate, then µs of CPU per call for the HTTP workers (actix-server wo…), SQLite's
# worker thread (sqlx-sqlite-wor…), the Tokio runtime threads (limiter dispatcher, metering
# writer) and the total.
set -euo pipefail
mode="${1:?usage: threads.sh embedded|redis}"
project="$(cd "$(dirname "$0")/../.." && pwd)"
DURATION="${DURATION:-10}" WARMUP="${WARMUP:-3}"
export PORT="${PORT:-18190}" RL_LIMIT=1000000000 RL_WINDOW_SECS=60
export BENCH_API_KEY="tg_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export TOLLGATE_BIN="${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/tollgate-target}/release/tollgate}"
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

target="$project/benches/peers/tollgate-target.sh"
"$target" prepare "$mode" >/dev/null
"$target" start "$mode" >/dev/null 2>&1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
url="http://127.0.0.1:$PORT/v1/ping"
for _ in $(seq 1 100); do
  curl -fs -o /dev/null -H "X-API-Key: $BENCH_API_KEY" "$url" && break
  sleep 0.1
done
# `start` execs the server, so its pid is the one started above.
[ -d "/proc/$server/task" ] || { echo "the server did not start" >&2; exit 1; }

wrk -t1 -c32 -d"${WARMUP}s" -H "X-API-Key: $BENCH_API_KEY" "$url" >/dev/null
threads() {
  for task in /proc/"$server"/task/*; do
    printf '%s %s\n' "$(tr ' ' _ <"$task/comm")" "$(awk '{print $14 + $15}' "$task/stat")"
  done | awk '{ticks[$1] += $2} END {for (name in ticks) print name, ticks[name]}' | sort
}
postgres() { ps -C postgres -o times= 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
before="$(threads)" pg_before="$(postgres)"
out="$(wrk -t1 -c32 -d"${DURATION}s" -H "X-API-Key: $BENCH_API_KEY" "$url")"
after="$(threads)" pg_after="$(postgres)"
calls="$(awk '/requests in/ {print $1}' <<<"$out")"

grep 'Requests/sec' <<<"$out"
join <(echo "$before") <(echo "$after") | awk -v calls="$calls" -v hz="$(getconf CLK_TCK)" '
  { cpu = ($3 - $2) / hz; total += cpu; if (cpu > 0) printf "%-20s %6.2f us/call\n", $1, cpu * 1e6 / calls }
  END { printf "%-20s %6.2f us/call  (%d calls)\n", "total", total * 1e6 / calls, calls }'
if [ "$mode" = redis ]; then
  awk -v a="$pg_before" -v b="$pg_after" -v calls="$calls" \
    'BEGIN { printf "%-20s %6.2f us/call\n", "postgres", (b - a) * 1e6 / calls }'
fi
