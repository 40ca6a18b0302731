#!/usr/bin/env bash
# bench/ingest.sh -- MB/s of CSV parse + validate + frame build, one thread.
#
#   bench/ingest.sh [ROWS] [REPEATS]     defaults: 1000000 rows, 5 repeats
#
# Generates ROWS simulated customers (Telco layout, seed 1), then times:
#   tokenize / ingest / validate   build/bench/ingest (see bench/ingest.c)
#   python csv (reference)         Python's csv module reading the same file
#                                  in the same run, for a ratio that does not
#                                  depend on the machine
# Target: ingest >= 200 MB/s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
REPEATS=${2:-5}
BUILD=${BUILD:-build}
make -s "$BUILD/churn" "$BUILD/bench/ingest" >/dev/null
dir=$(mktemp -d "${TMPDIR:-/tmp}/churn-bench-XXXXXX")
trap 'rm -rf "$dir"' EXIT
data="$dir/customers.csv"
"$BUILD/churn" simulate --rows "$ROWS" --seed 1 -o "$data" 2>/dev/null

echo "== bench/ingest: $ROWS rows, $(nproc) cores, $(date -u +%Y-%m-%d)"
out=$("$BUILD/bench/ingest" config/telco.schema.json "$data" "$REPEATS")
echo "$out"
py=$(python3 - "$data" <<'PY'
import csv, os, sys, time
path = sys.argv[1]
best = None
for _ in range(2):
    t = time.perf_counter()
    with open(path, newline="") as f:
        n = sum(1 for _ in csv.reader(f))
    t = time.perf_counter() - t
    best = t if best is None or t < best else best
print(f"{os.path.getsize(path) / 1e6 / best:.1f}")
PY
)
echo "python csv median-of-2 best ${py} MB/s (reference: tokenizing only, no validation)"
ingest=$(awk '$1 == "ingest" {print $3}' <<<"$out")
awk -v a="$ingest" -v b="$py" 'BEGIN { printf "ratio      ingest / python csv = %.1fx\n", a / b }'
awk -v a="$ingest" 'BEGIN { if (a >= 200) print "target     ingest >= 200 MB/s: met"; else print "target     ingest >= 200 MB/s: NOT met" }'
