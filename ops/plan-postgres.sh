#!/usr/bin/env bash
# `make plan` with the reference service on PostgreSQL + Redis instead of the embedded defaults.
# Usage: ops/plan-postgres.sh [--pgbouncer | --compare-pgbouncer] [capkit plan options…]
#   --pgbouncer          the service reaches PostgreSQL through PgBouncer (transaction pooling)
#   --compare-pgbouncer  one run without PgBouncer, one with it, then the report of the second
#                        with the comparison page against the first (`capkit report B --compare A`)
# Env: CAPKIT_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/capkit_service),
#      CAPKIT_REDIS_URL (default redis://127.0.0.1:6379/0), PGBOUNCER_POOL_SIZE (default 5: the
#      server connections PgBouncer may open). The database is created if missing. PgBouncer
#      (installed with ops/install-system-deps.sh when missing) gets its own config in a temp dir,
#      listens on a free 127.0.0.1 port and is stopped by PID on the way out, also on Ctrl-C.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export CAPKIT_DATABASE_URL="${CAPKIT_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/capkit_service}"
export CAPKIT_REDIS_URL="${CAPKIT_REDIS_URL:-redis://127.0.0.1:6379/0}"
DIRECT_URL="$CAPKIT_DATABASE_URL"

mode=direct
case "${1:-}" in
  --pgbouncer) mode=pgbouncer; shift ;;
  --compare-pgbouncer) mode=compare; shift ;;
esac

.venv/bin/capkit db-create
[[ $mode == direct ]] && exec .venv/bin/capkit plan "$@"

pgb_pid="" pgb_dir=""
stop_pgbouncer() {
  if [[ -n $pgb_pid ]] && kill -0 "$pgb_pid" 2>/dev/null; then
    kill -TERM "$pgb_pid" 2>/dev/null || true
    wait "$pgb_pid" 2>/dev/null || true
  fi
  pgb_pid=""
  [[ -z $pgb_dir ]] || rm -rf "$pgb_dir"
  pgb_dir=""
}
trap stop_pgbouncer EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_pgbouncer() {
  command -v pgbouncer >/dev/null || [[ -x /usr/sbin/pgbouncer ]] || ops/install-system-deps.sh pgbouncer
  pgb_dir="$(mktemp -d -t capkit-pgbouncer.XXXXXX)"
  local out
  out="$(.venv/bin/python -m capkit.runs.pgbouncer --url "$DIRECT_URL" --dir "$pgb_dir" \
         --pool-size "${PGBOUNCER_POOL_SIZE:-5}")"
  local lines
  mapfile -t lines <<<"$out"
  local url="${lines[0]}" port="${lines[1]}"
  # its own session: Ctrl-C reaches capkit plan, which winds the run down; PgBouncer (which
  # would take SIGINT as "pause, then shut down") is stopped by PID afterwards, by the trap
  setsid "${lines[@]:2}" >"$pgb_dir/pgbouncer.log" 2>&1 </dev/null &
  pgb_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$pgb_pid" 2>/dev/null || { echo "capkit: error: PgBouncer did not start: $(tail -n 3 "$pgb_dir/pgbouncer.log")" >&2; exit 2; }
    sleep 0.1
  done
  echo "PgBouncer (transaction pooling, ${PGBOUNCER_POOL_SIZE:-5} server connections) on 127.0.0.1:$port, PID $pgb_pid"
  export CAPKIT_DATABASE_URL="$url" CAPKIT_DB_PGBOUNCER=true CAPKIT_DB_MONITOR_URL="$DIRECT_URL"
}

plan_run_id() {  # run `capkit plan "$@"`, echo its output to stderr, print its run id
  local log status=0
  log="$(mktemp)"
  .venv/bin/capkit plan "$@" 2>&1 | tee "$log" >&2 || status=$?
  sed -n 's/^capkit plan · run \([^ ]*\) .*/\1/p' "$log" | head -n 1
  rm -f "$log"
  return "$status"
}

if [[ $mode == pgbouncer ]]; then
  start_pgbouncer
  .venv/bin/capkit plan "$@"
  exit
fi

# compare: the same plan twice, each with its own Redis keys (rate-limit windows and caches of
# the first run must not carry into the second)
echo "== 1/2: without PgBouncer"
direct_run="$(CAPKIT_REDIS_PREFIX="capkit-direct-$$" plan_run_id "$@" --no-report)"
echo "== 2/2: with PgBouncer"
start_pgbouncer
pgb_run="$(CAPKIT_REDIS_PREFIX="capkit-pgbouncer-$$" plan_run_id "$@" --no-report)"
stop_pgbouncer
echo "== report: $pgb_run (PgBouncer) compared with $direct_run (direct)"
.venv/bin/capkit report "$pgb_run" --compare "$direct_run"
