#!/usr/bin/env bash
# Added latency at half load: `GET /v1/ping` at a fixed request rate (open loop, oha with
# latency correction) against the bare actix-web ping of ../shared/bench/peers (the ceiling)
# and against `tollgate serve` in Redis + PostgreSQL and embedded modes, interleaved, the same
# rate for all. "Added p50" = a Tollgate target's p50 minus the bare ping's p50 in the same
# round. Loopback only; every run is bounded by DURATION.
#
#   cargo build --release --bin tollgate && ../shared/bench/peers/setup.sh
#   cargo install --locked oha --root /tmp/oha            # or OHA=/path/to/oha
#   ROUNDS=2 DURATION=10s benches/load/half_load.sh        # or RATE=18000 … for a fixed rate
#
# Without RATE, the script first measures the saturation: oha unthrottled (6 s after a 2 s
# warm-up) against tollgate-redis and tollgate-embedded, and uses half of the lower rate (2-core
# machines here have sustained from ~37k to ~76k req/s under oha, which costs more CPU than
# wrk). RATE=N skips that. Prints one line per target and round, then medians.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
project="$PWD"
peers="$project/../shared/bench/peers"
oha="${OHA:-$(command -v oha || echo /tmp/oha/bin/oha)}"
[ -x "$oha" ] || { echo "half_load: oha not found (cargo install --locked oha --root /tmp/oha)" >&2; exit 1; }
bare="${BARE_BIN:-$peers/.target/release/rs-actix-bare}"
[ -x "$bare" ] || { echo "half_load: $bare missing (run $peers/setup.sh)" >&2; exit 1; }

RATE="${RATE:-}" ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-10s}" CONNS="${CONNS:-32}"
export BENCH_API_KEY="bench-half-load-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export RL_LIMIT=1000000000 RL_WINDOW_SECS=60
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
helper="$project/benches/peers/tollgate-target.sh"
out="$(mktemp -d /tmp/half-load.XXXXXX)"
server=""
stop() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; server=""; }
trap stop EXIT

start() { # name port
  case "$1" in
    bare) PORT="$2" "$bare" >"$out/$1.log" 2>&1 & server=$! ;;
    tollgate-redis) PORT="$2" "$helper" prepare redis >"$out/$1.prep" 2>&1
      PORT="$2" "$helper" start redis >"$out/$1.log" 2>&1 & server=$! ;;
    tollgate-embedded) PORT="$2" "$helper" prepare embedded >"$out/$1.prep" 2>&1
      PORT="$2" "$helper" start embedded >"$out/$1.log" 2>&1 & server=$! ;;
  esac
  for _ in $(seq 100); do
    curl -fs -o /dev/null -H "X-API-Key: $BENCH_API_KEY" "http://127.0.0.1:$2/v1/ping" && return 0
    sleep 0.1
  done
  echo "half_load: $1 did not start (see $out/$1.log)" >&2; exit 1
}

p50_ms() { # json file
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f %.3f %.0f %s" % (d["latencyPercentiles"]["p50"]*1000, d["latencyPercentiles"]["p99"]*1000, d["summary"]["requestsPerSec"], d["summary"]["successRate"]))' "$1"
}

port=19480
if [ -z "$RATE" ]; then
  lowest=""
  for target in tollgate-redis tollgate-embedded; do
    port=$((port + 1))
    start "$target" "$port"
    url="http://127.0.0.1:$port/v1/ping"
    "$oha" --no-tui -z 2s -c "$CONNS" -H "X-API-Key: $BENCH_API_KEY" "$url" >/dev/null
    "$oha" --no-tui --output-format json -z 6s -c "$CONNS" -H "X-API-Key: $BENCH_API_KEY" "$url" \
      >"$out/$target.saturation.json"
    read -r _ _ rps _ < <(p50_ms "$out/$target.saturation.json")
    echo "saturation $target $rps req/s"
    if [ -z "$lowest" ] || [ "$rps" -lt "$lowest" ]; then lowest="$rps"; fi
    stop
  done
  RATE=$((lowest / 2))
  echo "half load: $RATE req/s"
fi
for round in $(seq "$ROUNDS"); do
  for target in bare tollgate-redis tollgate-embedded; do
    port=$((port + 1))
    start "$target" "$port"
    url="http://127.0.0.1:$port/v1/ping"
    "$oha" --no-tui -z 2s -c "$CONNS" -q "$RATE" -H "X-API-Key: $BENCH_API_KEY" "$url" >/dev/null
    "$oha" --no-tui --output-format json --latency-correction -z "$DURATION" -c "$CONNS" \
      -q "$RATE" -H "X-API-Key: $BENCH_API_KEY" "$url" >"$out/$target.$round.json"
    read -r p50 p99 rps ok < <(p50_ms "$out/$target.$round.json")
    printf '%-18s round %s  rate %6s  achieved %7s req/s  p50 %6s ms  p99 %7s ms  success %s\n' \
      "$target" "$round" "$RATE" "$rps" "$p50" "$p99" "$ok" | tee -a "$out/lines"
    stop
  done
done

python3 - "$out/lines" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[0], []).append(float(f[f.index("p50") + 1]))
bare = statistics.median(rows["bare"])
for target, p50s in rows.items():
    p50 = statistics.median(p50s)
    added = "" if target == "bare" else f"  added p50 {p50 - bare:+.3f} ms"
    print(f"median {target:<18} p50 {p50:.3f} ms{added}")
EOF
echo "results in $out"
