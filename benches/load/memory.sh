#!/usr/bin/env bash
# Memory with many active keys: the resident set of `tollgate serve` once each of KEYS API
# keys (default 100,000) has made calls within the last minute, so every one is in the key
# cache and has limiter state, in Redis + PostgreSQL and embedded modes. The keys are added
# straight to the database of a target prepared by benches/peers/tollgate-target.sh (copies
# of its imported key, secrets mem-bench-key-1 .. N), then `wrk -t1` cycles through them
# (benches/load/many_keys.lua) for DURATION, on CONNECTIONS connections (default 32). Loopback
# only; bounded by DURATION. RATE=<calls/s> paces the load instead of running it flat out: each
# connection waits PACE_MS (default 2) ms after every answer, on RATE x PACE_MS / 1000
# connections, so the server sees at most RATE calls a second (somewhat fewer: the answers'
# own latency adds to the pause). Unpaced, the server saturates the two cores and, over many
# keys, its metering writer falls behind and spools; paced at a rate it keeps up with, what it
# holds is the keys' state and the writer's steady work.
#
#   cargo build --release --bin tollgate
#   KEYS=100000 DURATION=30s benches/load/memory.sh      # MODES="redis embedded" by default
#   DRAIN=600 MODES=embedded KEYS=100000 DURATION=70s benches/load/memory.sh   # see below
#   RATE=20000 MODES=embedded KEYS=100000 DURATION=70s benches/load/memory.sh   # paced
#   TRACE=/tmp/rss.txt DRAIN=300 MODES=embedded … benches/load/memory.sh   # RSS every second
#
# Prints per mode: RSS before the load, RSS 5 s after it (the batches written, transient
# memory returned; every key still cached) with its anonymous and file-backed parts (the
# latter mostly the binary's own pages), the peak, the load's summary, and the metering
# writer's counters (flushed, spooled, still queued); with DRAIN, the RSS once every event is
# stored and again once every pending rollup row is added.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
KEYS="${KEYS:-100000}" DURATION="${DURATION:-30s}" MODES="${MODES:-redis embedded}" CONNECTIONS="${CONNECTIONS:-32}"
if [ -n "${RATE:-}" ]; then
  export PACE_MS="${PACE_MS:-2}"
  CONNECTIONS=$((RATE * PACE_MS / 1000))
  [ "$CONNECTIONS" -ge 1 ] || { echo "RATE x PACE_MS must be at least 1000" >&2; exit 2; }
fi
export KEYS PORT="${PORT:-18121}" BENCH_API_KEY="mem-bench-seed-key-0123456789abcdef"
export RL_LIMIT=1000000000 RL_WINDOW_SECS=60
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
helper=benches/peers/tollgate-target.sh
server=""
tracer=""
stop() {
  [ -n "$tracer" ] && kill "$tracer" 2>/dev/null; tracer=""
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=""
}
trap stop EXIT

add_keys() { # mode
  case "$1" in
    redis)
      base="${DATABASE_URL%%\?*}"
      psql "${base%/*}/${TOLLGATE_BENCH_DB:-tollgate_bench}" -v ON_ERROR_STOP=1 -q <<SQL
INSERT INTO api_keys (id, tenant_id, name, key_hash, prefix, last4, source, status,
                      limit_per_minute, limit_per_hour, limit_per_day, created_at, updated_at)
SELECT gen_random_uuid(), k.tenant_id, 'mem-' || n,
       encode(sha256(convert_to('mem-bench-key-' || n, 'UTF8')), 'hex'),
       'mem-bench-ke', lpad(right(n::text, 4), 4, '0'), 'imported', 'active',
       k.limit_per_minute, k.limit_per_hour, k.limit_per_day, now(), now()
FROM api_keys k, generate_series(1, $KEYS) AS n
WHERE k.name = 'peer-bench';
SQL
      ;;
    embedded)
      python3 - "${TOLLGATE_BENCH_DIR:-/tmp/tollgate-peers}/embedded-$PORT/data/tollgate.db" <<'PY'
import hashlib, os, sqlite3, sys, uuid
db = sqlite3.connect(sys.argv[1])
tenant, per_minute, per_hour, per_day, created = db.execute(
    "SELECT tenant_id, limit_per_minute, limit_per_hour, limit_per_day, created_at "
    "FROM api_keys WHERE name = 'peer-bench'").fetchone()
rows = ((uuid.uuid4().bytes, tenant, f"mem-{n}",
         hashlib.sha256(f"mem-bench-key-{n}".encode()).hexdigest(), "mem-bench-ke",
         str(n)[-4:].rjust(4, "0"), "imported", "active", per_minute, per_hour, per_day,
         created, created) for n in range(1, int(os.environ["KEYS"]) + 1))
db.executemany(
    "INSERT INTO api_keys (id, tenant_id, name, key_hash, prefix, last4, source, status, "
    "limit_per_minute, limit_per_hour, limit_per_day, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
db.commit()
PY
      ;;
  esac
}

pending() { # mode: rows in usage_rollup_pending
  case "$1" in
    redis)
      base="${DATABASE_URL%%\?*}"
      psql "${base%/*}/${TOLLGATE_BENCH_DB:-tollgate_bench}" -tAq -c "SELECT count(*) FROM usage_rollup_pending" ;;
    embedded)
      python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM usage_rollup_pending").fetchone()[0])' \
        "${TOLLGATE_BENCH_DIR:-/tmp/tollgate-peers}/embedded-$PORT/data/tollgate.db" ;;
  esac
}

rss() { awk -v f="$2" '$1 == f":" {printf "%.1f MB", $2 / 1024}' "/proc/$1/status"; }

for mode in $MODES; do
  "$helper" prepare "$mode" >/dev/null
  add_keys "$mode"
  "$helper" start "$mode" >/dev/null 2>&1 & server=$!
  if [ -n "${TRACE:-}" ]; then
    # TRACE=<file>: one line a second while the server runs: time, RSS (then its anonymous and
    # file-backed parts) and the writer's counters (flushed, spooled, queued in the buffer and
    # in the spool's queue) and the keys reloaded ahead, to see which phase holds the memory.
    while kill -0 "$server" 2>/dev/null; do
      echo "$(date +%s) $mode $(rss "$server" VmRSS 2>/dev/null) anon=$(rss "$server" RssAnon 2>/dev/null) file=$(rss "$server" RssFile 2>/dev/null)" \
        "$(curl -fs -m 1 "http://127.0.0.1:$PORT/metrics" | awk '/^tollgate_(metering_(events_flushed_total|spooled_total|queue_depth|spool_queue_depth)|key_cache_reloaded_ahead_total) / {sub(/^tollgate_(metering_)?/, "", $1); printf "%s=%d ", $1, $2}')"
      sleep 1
    done >>"$TRACE" & tracer=$!
  fi
  for _ in $(seq 100); do curl -fso /dev/null "http://127.0.0.1:$PORT/livez" && break; sleep 0.1; done
  idle="$(rss "$server" VmRSS)"
  load="$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s benches/load/many_keys.lua "http://127.0.0.1:$PORT/v1/ping" | grep LOADJSON)"
  sleep 5
  echo "$mode: keys $KEYS  RSS idle $idle  settled $(rss "$server" VmRSS) (anon $(rss "$server" RssAnon), file $(rss "$server" RssFile))  peak $(rss "$server" VmHWM)  load ${load#LOADJSON }"
  # Whether the writer kept up: events flushed and spooled so far, events still queued.
  curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^tollgate_metering_(events_flushed_total|spooled_total|queue_depth|spool_queue_depth)/ {printf "  %s %s", $1, $2} END {print ""}'
  if [ -n "${DRAIN:-}" ]; then
    # DRAIN=<seconds>: wait (at most that long) until every call's event is in the database,
    # spooled ones replayed, and print the RSS then: the memory of the keys without a backlog.
    calls="$(echo "$load" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')"
    waited=0
    flushed() { curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^tollgate_metering_events_flushed_total/ {print int($2)}'; }
    while [ "$(flushed)" -lt "$calls" ] && [ "$waited" -lt "$DRAIN" ]; do sleep 5; waited=$((waited + 5)); done
    echo "  drained after ${waited} s: flushed $(flushed) of $calls  RSS $(rss "$server" VmRSS) (anon $(rss "$server" RssAnon))"
    # Then until the compactor has added every pending rollup row (same bound).
    while [ "$(pending "$mode")" -gt 0 ] && [ "$waited" -lt "$DRAIN" ]; do sleep 5; waited=$((waited + 5)); done
    echo "  compacted after ${waited} s: $(pending "$mode") rollup rows pending  RSS $(rss "$server" VmRSS) (anon $(rss "$server" RssAnon))"
  fi
  stop
done
