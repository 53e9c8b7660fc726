#!/usr/bin/env bash
# Tollgate as a target of the shared peer harness (../shared/bench/peers/run.sh). The target files
# tollgate.conf (tollgate-redis) and tollgate-embedded.conf call it with run.sh's environment:
#
#   tollgate-target.sh prepare redis|embedded   PREPARE: a clean database (tollgate_bench, dropped and
#                                               re-created) or SQLite data dir, $BENCH_API_KEY imported
#                                               with $RL_LIMIT per $RL_WINDOW_SECS
#   tollgate-target.sh start   redis|embedded   START: exec `tollgate serve` on 127.0.0.1:$PORT
#
# From run.sh: PORT BENCH_API_KEY RL_LIMIT RL_WINDOW_SECS REDIS_URL DATABASE_URL (the harness's
# `postgres` database; only its server is used) and optionally WORKERS (HTTP worker threads).
# Overrides: TOLLGATE_BIN (the release binary), TOLLGATE_BENCH_DIR (/tmp/tollgate-peers),
# TOLLGATE_BENCH_DB (tollgate_bench), TOLLGATE_BENCH_PREFIX (Redis key prefix, tollgate-bench:).
# Build first: cargo build --release --bin tollgate
set -euo pipefail
action="${1:?usage: tollgate-target.sh prepare|start redis|embedded}"
mode="${2:?usage: tollgate-target.sh prepare|start redis|embedded}"
project="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
die() { echo "tollgate-target: $*" >&2; exit 1; }

# The binary: run.sh sets CARGO_TARGET_DIR to the peers' own target dir unless it was already set,
# so look there, then in this project's configured target dir, then in ./target.
bin="${TOLLGATE_BIN:-}"
if [ -z "$bin" ]; then
  for candidate in "${CARGO_TARGET_DIR:-/nonexistent}/release/tollgate" \
    "$HOME/.cache/tollgate-target/release/tollgate" "$project/target/release/tollgate"; do
    if [ -x "$candidate" ]; then bin="$candidate"; break; fi
  done
fi
[ -n "$bin" ] && [ -x "$bin" ] || die "no tollgate binary (cargo build --release --bin tollgate, or set TOLLGATE_BIN)"

# One fresh directory per target and port: SQLite file, spool, generated secrets.
run_dir="${TOLLGATE_BENCH_DIR:-/tmp/tollgate-peers}/$mode-${PORT:?PORT not set}"
export TOLLGATE__DATA__DIR="$run_dir/data"
# Peers run without access logs; Tollgate's request spans are at info, so warn silences them.
export TOLLGATE__LOG__LEVEL=warn RUST_LOG=warn
unset TOLLGATE_CONFIG
if [ -n "${WORKERS:-}" ]; then export TOLLGATE__SERVER__WORKERS="$WORKERS"; fi

case "$mode" in
  redis)
    # Tollgate reads DATABASE_URL / REDIS_URL itself; point it at a dedicated database on the
    # harness's server and a key prefix of its own.
    admin_url="${DATABASE_URL:?DATABASE_URL not set}"
    db="${TOLLGATE_BENCH_DB:-tollgate_bench}"
    base="${admin_url%%\?*}"
    export DATABASE_URL="${base%/*}/$db${admin_url#"$base"}"
    export REDIS_URL="${REDIS_URL:?REDIS_URL not set}"
    export TOLLGATE__REDIS__KEY_PREFIX="${TOLLGATE_BENCH_PREFIX:-tollgate-bench:}"
    ;;
  embedded)
    # SQLite in the data dir and in-process limits: neither URL may reach Tollgate.
    unset DATABASE_URL REDIS_URL
    ;;
  *) die "unknown mode '$mode' (redis | embedded)" ;;
esac

prepare() {
  case "$run_dir" in /?*/*) rm -rf "$run_dir" ;; *) die "refusing to clear '$run_dir'" ;; esac
  mkdir -p "$run_dir"
  newer="$(find "$project/src" "$project/migration" "$project/Cargo.lock" -newer "$bin" -type f 2>/dev/null | head -n 3 || true)"
  [ -z "$newer" ] || echo "tollgate-target: warning: $bin is older than $(echo "$newer" | tr '\n' ' ')" >&2

  if [ "$mode" = redis ]; then
    PGOPTIONS="-c client_min_messages=warning" psql "$admin_url" -v ON_ERROR_STOP=1 -q \
      -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" >/dev/null
    # earlier runs' counters (they expire, but the bench keeps Redis clean)
    redis-cli -u "$REDIS_URL" --scan --pattern "${TOLLGATE__REDIS__KEY_PREFIX}*" \
      | xargs -r -d '\n' redis-cli -u "$REDIS_URL" unlink >/dev/null
    # production mode refuses to start without these; throwaway values, one set per run
    umask 077
    {
      echo "TOLLGATE__AUTH__JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)"
      echo "TOLLGATE__CRYPTO__MASTER_KEY=$(head -c 32 /dev/urandom | base64 -w0)"
    } > "$run_dir/secrets.env"
    load_secrets
  fi

  # Only the window run.sh asks for binds; the others get Tollgate's largest accepted limit
  # (keys::limits::MAX_LIMIT). No monthly quota (the fresh tenant has no plan).
  local limit max=1000000000000 flags
  limit="$(printf '%.0f' "${RL_LIMIT:?RL_LIMIT not set}")"
  case "${RL_WINDOW_SECS:-60}" in
    60) flags=(--per-minute "$limit" --per-hour "$max" --per-day "$max") ;;
    3600) flags=(--per-minute "$max" --per-hour "$limit" --per-day "$max") ;;
    86400) flags=(--per-minute "$max" --per-hour "$max" --per-day "$limit") ;;
    *) die "RL_WINDOW_SECS=$RL_WINDOW_SECS: Tollgate's windows are 60, 3600 and 86400 s" ;;
  esac
  # import-key migrates the fresh database first, so `serve --no-migrate` below is safe.
  TOLLGATE_IMPORT_SECRET="${BENCH_API_KEY:?BENCH_API_KEY not set}" \
    "$bin" admin import-key --create-tenant "Peer bench" --name peer-bench "${flags[@]}"
}

load_secrets() {
  [ -f "$run_dir/secrets.env" ] || die "$run_dir/secrets.env missing: run prepare first"
  set -a; source "$run_dir/secrets.env"; set +a
}

case "$action" in
  prepare) prepare ;;
  start)
    if [ "$mode" = redis ]; then load_secrets; fi
    # exec: the PID run.sh started (and signals) is the server itself
    exec "$bin" serve --addr "127.0.0.1:$PORT" --no-migrate --no-workers
    ;;
  *) die "unknown action '$action' (prepare | start)" ;;
esac
