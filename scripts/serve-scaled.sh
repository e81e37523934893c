#!/bin/sh
# `make serve-scaled`: API_PROCESSES uvicorn workers behind one port and SCAN_WORKERS
# `mailwidget worker` processes, on the database of DATABASE_URL (PostgreSQL advised:
# postgresql+psycopg://user:password@host/db). Ctrl-C or SIGTERM stops them all.
set -eu
BIN=${BIN:-.venv/bin}
MAILWIDGET="${PYTHON:-$BIN/python} -m widget_api.cli"
API_PROCESSES=${API_PROCESSES:-2}
SCAN_WORKERS=${SCAN_WORKERS:-2}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
SCAN_INTERVAL=${SCAN_INTERVAL:-300}
case "${DATABASE_URL:-}" in
  postgresql*) ;;
  *) echo "serve-scaled: set DATABASE_URL=postgresql+psycopg://user:password@host/db (several processes on SQLite take turns for every write)" >&2; exit 2 ;;
esac
$MAILWIDGET users >/dev/null  # migrates the database once, before any process starts
pids=""
trap 'kill $pids 2>/dev/null; wait' EXIT INT TERM
i=0
while [ "$i" -lt "$SCAN_WORKERS" ]; do
  $MAILWIDGET worker --interval "$SCAN_INTERVAL" &
  pids="$pids $!"
  i=$((i + 1))
done
$MAILWIDGET serve --host "$HOST" --port "$PORT" --workers "$API_PROCESSES" --no-scan &
pids="$pids $!"
wait
