#!/usr/bin/env bash
# Load-test the chat + analytics service with the seed's four scenarios (chat with streaming,
# analytics dashboard, token validation, WebSocket chat) through the capkit CLI.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ops/run-load-tests.sh [options] [-- extra capkit options]

Runs the seed's scenarios (chat, analytics, auth, websocket) as one stepped load test and
stores it in the results store (runs/capkit.sqlite unless CAPKIT_STORE_URL is set).

Options:
  --profile NAME     smoke (≤ 1 min), quick (default, ≤ 4 min) or full
  --stages PLAN      custom steps, e.g. 0x20,10x30,20x30 or arrival rates 0x10,r20x30,r40x30
  --mix WEIGHTS      scenario weights (default chat=4,analytics=1,auth=1,ws=1)
  --think MIN,MAX    think time between a user's tasks in seconds (default 0.5,1.5)
  --target URL       load a service that is already running (default: start the reference service)
  --pid PID          with --target: the service's PID, for its CPU and memory
  --prometheus URL   with --target: its /metrics, for its resources when there is no PID
  --processes N      local Locust processes (default 1)
  --report           also publish the capacity report (capkit plan; reference service only)
  -h, --help         show this help

Examples:
  ops/run-load-tests.sh --profile smoke
  ops/run-load-tests.sh --target http://127.0.0.1:8000 --pid 12345 --stages 0x10,10x30,20x30
USAGE
}

ROOT="$(git rev-parse --show-toplevel)"
CAPKIT="${CAPKIT:-$ROOT/.venv/bin/capkit}"
MIX="chat=4,analytics=1,auth=1,ws=1"
REPORT=0
ARGS=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --mix) MIX="$2"; shift 2 ;;
    --report) REPORT=1; shift ;;
    --profile|--stages|--think|--target|--pid|--prometheus|--processes)
      [[ $# -ge 2 ]] || { echo "run-load-tests: $1 needs a value (see --help)" >&2; exit 2; }
      ARGS+=("$1" "$2"); shift 2 ;;
    --) shift; ARGS+=("$@"); break ;;
    *) echo "run-load-tests: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$ROOT"
if [[ "$REPORT" == 1 ]]; then
  exec "$CAPKIT" plan --mix "$MIX" ${ARGS[@]+"${ARGS[@]}"}
fi
exec "$CAPKIT" run --mix "$MIX" ${ARGS[@]+"${ARGS[@]}"}
