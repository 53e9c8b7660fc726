#!/usr/bin/env bash
# End-to-end load on the hot path: wrk against `GET /v1/ping` of `tollgate serve` (key cache +
# four-window limiter + headers + metering) in embedded mode and, when PostgreSQL and Redis
# answer, in production mode — beside a bare actix-web ping built from this repository as the
# ceiling, interleaved in the same run. 127.0.0.1 only; every run has a fixed length.
#
#   benches/load/ping.sh                  # ROUNDS=2 DURATION=10s CONNS=32 by default
#   PG_URL=postgres://postgres@127.0.0.1:5432 REDIS_URL=redis://127.0.0.1:6379 benches/load/ping.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-3s}" CONNS="${CONNS:-32}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}" REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/tollgate-target}"
SECRET="tg_live_loadtest$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK="$(mktemp -d)" PIDS=() DB=""

cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$DB" ] && psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin tollgate --example bare_ping
BIN="$TARGET/release/tollgate"

wait_ready() { for _ in $(seq 1 100); do curl -fs "http://$1/livez" >/dev/null 2>&1 && return; \
  curl -fs -o /dev/null "http://$1/v1/ping" 2>/dev/null && return; sleep 0.1; done; }

start_tollgate() { # name addr [env...]
  local name=$1 addr=$2; shift 2
  mkdir -p "$WORK/$name"
  env "$@" TOLLGATE__DATA__DIR="$WORK/$name" TOLLGATE__LOG__LEVEL=warn TOLLGATE_IMPORT_SECRET="$SECRET" \
    "$BIN" admin import-key --create-tenant "Load test" --name load \
    --per-minute 1000000000 --per-hour 1000000000 --per-day 1000000000 >/dev/null
  env "$@" TOLLGATE__DATA__DIR="$WORK/$name" TOLLGATE__LOG__LEVEL=warn \
    "$BIN" serve --addr "$addr" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$addr"
}

# name address path: "livez" is Tollgate's unmetered /livez (global middleware only), which
# separates the framework's and middleware's share from the hot path's own cost.
TARGETS=("bare 127.0.0.1:18090 /v1/ping")
"$TARGET/release/examples/bare_ping" 127.0.0.1:18090 & PIDS+=($!)
sleep 0.5
start_tollgate embedded 127.0.0.1:18091
TARGETS+=("livez 127.0.0.1:18091 /livez" "embedded 127.0.0.1:18091 /v1/ping")
if pg_isready -q -h 127.0.0.1 && redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  DB="load_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  psql "$PG_URL/postgres" -qc "CREATE DATABASE $DB" >/dev/null
  start_tollgate production 127.0.0.1:18092 DATABASE_URL="$PG_URL/$DB" REDIS_URL="$REDIS_URL" \
    TOLLGATE__REDIS__KEY_PREFIX="load_$DB:" \
    TOLLGATE__AUTH__JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n')" \
    TOLLGATE__CRYPTO__MASTER_KEY="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  TARGETS+=("redis+postgres 127.0.0.1:18092 /v1/ping")
else
  echo "skipped: production mode needs PostgreSQL and Redis on 127.0.0.1" >&2
fi

declare -A RPS P50 P99 BAD
for round in $(seq 1 "$ROUNDS"); do
  for target in "${TARGETS[@]}"; do
    read -r name addr path <<<"$target"
    BENCH_API_KEY="$SECRET" wrk -t1 -c"$CONNS" -d"$WARMUP" -s benches/load/ping.lua "http://$addr$path" >/dev/null
    line=$(BENCH_API_KEY="$SECRET" wrk -t1 -c"$CONNS" -d"$DURATION" -s benches/load/ping.lua \
      "http://$addr$path" | grep LOADJSON | sed 's/LOADJSON //')
    rps=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['rps'])" "$line")
    RPS[$name]="${RPS[$name]:-} $rps"
    P50[$name]="${P50[$name]:-} $(python3 -c "import json,sys; print(json.loads(sys.argv[1])['p50_us'])" "$line")"
    P99[$name]="${P99[$name]:-} $(python3 -c "import json,sys; print(json.loads(sys.argv[1])['p99_us'])" "$line")"
    BAD[$name]=$(( ${BAD[$name]:-0} + $(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d['non2xx']+d['errors'])" "$line") ))
    echo "round $round $name: $line" >&2
  done
done

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
bare=$(median ${RPS[bare]})
echo
echo "| target | req/s (median of $ROUNDS × $DURATION, wrk -t1 -c$CONNS) | vs bare | p50 µs | p99 µs | non-2xx |"
echo "|---|---|---|---|---|---|"
for target in "${TARGETS[@]}"; do
  read -r name _ _ <<<"$target"
  rps=$(median ${RPS[$name]})
  ratio=$(python3 -c "print(f'{$rps / $bare:.2f}×')")
  printf '| %s | %.0f | %s | %.0f | %.0f | %s |\n' "$name" "$rps" "$ratio" \
    "$(median ${P50[$name]})" "$(median ${P99[$name]})" "${BAD[$name]}"
done
