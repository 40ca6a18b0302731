#!/usr/bin/env bash
# bench/infer.sh -- single-row latency, explanation latency and batch
# throughput of the compiled forest (src/lib/forest.c) against libxgboost.
#
#   bench/infer.sh [TREES [DEPTH [FEATURES [CALLS]]]]
#                  defaults: 300 trees, depth 6, 45 features, 100000 calls
#   CH_FOREST_KERNEL=generic|avx2|avx512 bench/infer.sh   another SHAP kernel set
#
# Builds build/bench/infer and runs it: one model trained in the run, the
# same rows for both sides (see bench/infer.c for what is timed). Targets:
#   single-row predict >= 10x faster than XGBoost inplace predict
#   predict + SHAP <= 50 us per row and >= 20x faster than pred_contribs
#   batch rows/s >= XGBoost's with the same thread count (2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
make -s "$BUILD/bench/infer" >/dev/null
echo "== $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d)"
"$BUILD/bench/infer" "$@" 2>/dev/null
