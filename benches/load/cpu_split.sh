#!/usr/bin/env bash
# CPU per served call, by the server's thread names, plus Redis's and PostgreSQL's processes:
# runs benches/load/memory.sh's saturating load (calls spread over KEYS keys) and reads
# /proc over WINDOW seconds in its middle. Served calls = events flushed + spooled.
#
#   TOLLGATE_BIN=… MODE=redis KEYS=100000 benches/load/cpu_split.sh
#
# Bounded: one load of DURATION (default 45 s) against 127.0.0.1, as memory.sh runs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
MODE="${MODE:-redis}" WARMUP="${WARMUP:-15}" WINDOW="${WINDOW:-20}"
export KEYS="${KEYS:-100000}" DURATION="${DURATION:-45s}" PORT="${PORT:-18121}"
[ "$((WARMUP + WINDOW))" -lt "${DURATION%s}" ] || { echo "WARMUP + WINDOW must end before DURATION" >&2; exit 2; }

MODES="$MODE" benches/load/memory.sh >/tmp/cpu_split.load 2>&1 &
load=$!
trap 'kill "$load" 2>/dev/null || true' EXIT
sleep "$WARMUP"
# The process listening on PORT: the server memory.sh started.
server="$(ss -Hltnp "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)"
[ -n "$server" ] || { echo "no server running; see /tmp/cpu_split.load" >&2; exit 1; }

# Clock ticks of each of the server's threads, summed by thread name; of the peers' processes.
threads() { for t in /proc/"$server"/task/*; do echo "$(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort; }
ticks() { for p in $(pgrep -x "$1"); do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s + 0}'; }
calls() { curl -fs "http://127.0.0.1:$PORT/metrics" | awk '/^tollgate_metering_(events_flushed|spooled)_total / {s += $2} END {print int(s)}'; }

c1="$(calls)" t1="$(threads)" r1="$(ticks redis-server)" p1="$(ticks postgres)"
sleep "$WINDOW"
c2="$(calls)" t2="$(threads)" r2="$(ticks redis-server)" p2="$(ticks postgres)"
wait "$load" || true
trap - EXIT

hz="$(getconf CLK_TCK)" n=$((c2 - c1))
[ "$n" -gt 0 ] || { echo "no calls served in the window" >&2; exit 1; }
per() { awk -v d="$1" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", d * 1e6 / hz / n}'; }
echo "$MODE, $KEYS keys: $((n / WINDOW)) calls/s over ${WINDOW} s; µs of CPU per call:"
# Ticks each thread name spent in the window (threads idle throughout left out).
spent="$(join <(echo "$t1") <(echo "$t2") | awk '$3 > $2 {print $1, $3 - $2}')"
while read -r name ticks; do echo "  server $name $(per "$ticks")"; done <<<"$spent"
echo "  server total $(per "$(awk '{s += $2} END {print s}' <<<"$spent")")"
echo "  redis-server $(per $((r2 - r1)))  postgres $(per $((p2 - p1)))"
grep -o 'load {.*' /tmp/cpu_split.load || true
