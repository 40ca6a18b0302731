#!/usr/bin/env bash
# bench/train.sh -- training and batch-scoring figures.
#
#   bench/train.sh [RUNS]     default 3 runs of the Telco training
#
# 1. `churn train` with the default config (three families, 5-fold CV, the
#    search grids of config/churn.json) on the IBM Telco CSV: wall time of
#    each run, median. Target: <= 15 s on 2 cores.
# 2. `churn train` on 1,000,000 simulated customers: wall time and peak
#    RSS (one run).
# 3. `churn score` of 1,000,000 rows, CSV in to CSV out: rows/s (median of
#    3). Target: >= 500,000 rows/s.
# Each step works in a temporary workdir and registry, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
BUILD=${BUILD:-build}
churn="$BUILD/churn"
make -s "$churn" >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/churn-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
telco=${CH_SHARED_DATA:-../shared/data}/WA_Fn-UseC_-Telco-Customer-Churn.csv
set_tmp=(--set "workdir=$tmp/var" --set "registry.url=$tmp/registry.db")

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() { /usr/bin/time -f '%e %M' -o "$tmp/time" "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }; cat "$tmp/time"; }

echo "== bench/train: $(nproc) cores, $(date -u +%Y-%m-%d)"
if [ -r "$telco" ]; then
    for i in $(seq "$RUNS"); do wall "$churn" train --data "$telco" "${set_tmp[@]}"; done >"$tmp/t"
    t=$(awk '{print $1}' "$tmp/t" | median)
    echo "telco train: median ${t} s over $RUNS runs (each: $(awk '{printf "%s ", $1}' "$tmp/t")s); target <= 15 s"
else
    echo "telco train: SKIPPED, the IBM Telco CSV is not at $telco"
fi

"$churn" simulate --rows 1000000 --seed 7 -o "$tmp/big.csv" 2>/dev/null
read -r t rss < <(wall "$churn" train --data "$tmp/big.csv" "${set_tmp[@]}" --set train.folds=3)
echo "1M-row train (3-fold CV): ${t} s wall, peak RSS $((rss / 1024)) MB"

"$churn" simulate --rows 1000000 --seed 8 -o "$tmp/score.csv" 2>/dev/null
for i in 1 2 3; do
    /usr/bin/time -f '%e' -o "$tmp/time" "$churn" score --model champion --in "$tmp/score.csv" \
        --out "$tmp/out.csv" "${set_tmp[@]}" 2>/dev/null
    cat "$tmp/time"
done >"$tmp/s"
s=$(median <"$tmp/s")
echo "score 1M rows: median ${s} s, $(awk -v s="$s" 'BEGIN {printf "%.0f", 1000000 / s}') rows/s; target >= 500000 rows/s"
