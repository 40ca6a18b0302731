#!/usr/bin/env bash
# bench/predlog_scan.sh -- reading the prediction log back.
#
#   bench/predlog_scan.sh [ROWS [FEEDBACK]]     defaults: 1000000 predictions, 1000 feedback
#
# Builds build/bench/predlog_scan and runs it on a temporary store filled
# with ROWS predictions carrying Telco inputs (see bench/predlog_scan.c for
# what is timed). Target: a full scan of 1,000,000 predictions well under
# 0.5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s "$BUILD/bench/predlog_scan" >/dev/null
"$BUILD/bench/predlog_scan" "$@"
