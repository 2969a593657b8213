#!/usr/bin/env bash
# `make plan` with the reference service on PostgreSQL + Redis instead of the embedded defaults.
# Usage: ops/plan-postgres.sh [capkit plan options…]
# Env: CAPKIT_DATABASE_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/capkit_service),
#      CAPKIT_REDIS_URL (default redis://127.0.0.1:6379/0). The database is created if missing.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export CAPKIT_DATABASE_URL="${CAPKIT_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/capkit_service}"
export CAPKIT_REDIS_URL="${CAPKIT_REDIS_URL:-redis://127.0.0.1:6379/0}"
.venv/bin/capkit db-create
exec .venv/bin/capkit plan "$@"
