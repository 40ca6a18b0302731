#!/usr/bin/env bash
# bench/store_pg.sh -- the prediction log on SQLite and on PostgreSQL.
#
#   bench/store_pg.sh [ROWS [FEEDBACK]]     defaults: 200000 predictions, 1000 feedback
#
# Runs build/bench/predlog_scan (see bench/predlog_scan.c) twice with the
# same records: once on a temporary SQLite file, once on a schema of a
# throwaway PostgreSQL server started in a temporary directory
# (tests/pg/cluster.sh: unix socket only, default durability settings,
# stopped and removed at the end). The "fill" line is the log sink: batches
# of 1024 records through ch_registry_log_predictions() on a bulk_log
# connection, as the server's log writer sends them. Prints rows/s of both.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROWS=${1:-200000}
FB=${2:-1000}
make -s "$BUILD/bench/predlog_scan" >/dev/null
. tests/pg/cluster.sh
dir=$(mktemp -d "${TMPDIR:-/tmp}/churn-bench-pg.XXXXXX")
trap 'pg_stop; rm -rf "$dir"' EXIT
pg_start "$dir"

rate() { # output of predlog_scan -> rows/s of its fill line
    awk '$1 == "fill" { printf "%.0f", $2 / $4 }' <<<"$1"
}
echo "--- SQLite"
sq=$("$BUILD/bench/predlog_scan" "$ROWS" "$FB")
printf '%s\n' "$sq"
echo "--- PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}')"
pg=$("$BUILD/bench/predlog_scan" "$ROWS" "$FB" "$CH_PG_URL&options=-csearch_path%3Dbench")
printf '%s\n' "$pg"
echo "--- log sink: SQLite $(rate "$sq") rows/s, PostgreSQL $(rate "$pg") rows/s"
