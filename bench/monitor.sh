#!/usr/bin/env bash
# bench/monitor.sh -- monitoring a million served predictions.
#
#   bench/monitor.sh [ROWS]      default 1000000
#
# Trains a champion (logreg) on 20,000 simulated customers, logs ROWS
# customers of the "price" drift scenario as served predictions (inputs
# included), then times `ch_watch_run` over the whole log: drift alone
# (scan, decode, count, every measure of every column and the score), and
# drift with decay and the estimate; and the measures alone on values in
# memory, against numpy/scipy computing PSI plus KS or chi-square on the
# same arrays (bench/monitor_ref.py, Debian's python3-scipy).
# Target (2 cores): drift over 1,000,000 predictions x all columns <= 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
BUILD=${BUILD:-build}
churn="$PWD/$BUILD/churn"
make -s "$BUILD/churn" "$BUILD/bench/monitor" >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/churn-bench-monitor-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
S=(--set "workdir=$tmp/var" --set "registry.url=$tmp/r.db")
"$churn" simulate --rows 20000 --seed 1 -o "$tmp/train.csv" 2>/dev/null
"$churn" train --data "$tmp/train.csv" "${S[@]}" --set train.families=logreg >/dev/null 2>&1
"$churn" simulate --rows "$ROWS" --seed 2 --drift price -o "$tmp/current.csv" 2>/dev/null
mkdir -p "$tmp/dump"
echo "== bench/monitor: $(nproc) cores, $(date -u +%Y-%m-%d), $ROWS predictions (price drift)"
"$BUILD/bench/monitor" "$tmp/r.db" "$tmp/current.csv" "$tmp/dump"
if /usr/bin/python3 -c 'import numpy, scipy' 2>/dev/null; then
    /usr/bin/python3 bench/monitor_ref.py "$tmp/dump" >"$tmp/ref.txt"
    head -1 "$tmp/ref.txt"
else
    echo "numpy/scipy reference skipped: /usr/bin/python3 cannot import scipy (apt install python3-scipy)"
fi
