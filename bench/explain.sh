#!/usr/bin/env bash
# bench/explain.sh -- batch scoring with explanations, end to end.
#
#   bench/explain.sh [ROWS]      default 1000000
#
# Trains a gradient-boosted model of exactly 300 trees of depth 6 on 20,000
# simulated customers (the Telco layout: 62 pipeline features), then times
# `churn score --explain 3` on ROWS other simulated customers, CSV in to CSV
# out on 2 threads, and the same with --actions 2. Target for --explain 3:
# >= 50,000 rows/s. Each line also gives the CPU time per row (user +
# system, all threads; from /usr/bin/time when installed), which does not
# depend on what else the machine is running.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
BUILD=${BUILD:-build}
churn="$BUILD/churn"
make -s "$churn" >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/churn-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/cfg.json" <<'PY'
import json, sys
cfg = json.load(open("config/churn.json"))
# 300 rounds at a learning rate small enough that the validation loss still
# falls at round 300, and early stopping that never triggers: the refit keeps
# all 300 trees (the script prints the count).
cfg["search"] = {"xgboost": {"max_depth": [6], "eta": [0.004], "n_rounds": [300],
                             "early_stopping_rounds": [100000]}}
json.dump(cfg, open(sys.argv[1], "w"))
PY
set_tmp=(--config "$tmp/cfg.json" --set "workdir=$tmp/var" --set "registry.url=$tmp/r.db"
         --set train.families=xgboost --set train.folds=2)
"$churn" simulate --rows 20000 --seed 31 -o "$tmp/train.csv" 2>/dev/null
"$churn" train --data "$tmp/train.csv" "${set_tmp[@]}" >/dev/null 2>&1
trees=$(python3 -c "import json,sys; b=json.load(open(sys.argv[1])); print(len(b['model']['state']['learner']['gradient_booster']['model']['trees']))" "$tmp/var/runs/1/bundle.json")
"$churn" simulate --rows "$ROWS" --seed 32 -o "$tmp/in.csv" 2>/dev/null
timer=()
if [ -x /usr/bin/time ]; then
    timer=(/usr/bin/time -f "%U %S" -o "$tmp/cpu")
fi
echo "== bench/explain: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d), model: $trees trees of depth 6"
for args in "" "--explain 3" "--explain 3 --actions 2"; do
    rm -f "$tmp/cpu"
    # shellcheck disable=SC2086
    line=$("${timer[@]}" "$churn" score --model "$tmp/var/runs/1/bundle.json" --in "$tmp/in.csv" \
        --out "$tmp/out.csv" $args "${set_tmp[@]}" 2>&1 | tail -1)
    cpu=""
    if [ -s "$tmp/cpu" ]; then
        cpu=$(awk -v n="$ROWS" '{ printf ", %.1f us CPU per row", ($1 + $2) / n * 1e6 }' "$tmp/cpu")
    fi
    printf 'score %-24s %s%s\n' "${args:-(no explanations)}" "${line#score: }" "$cpu"
done
echo "target: --explain 3 >= 50000 rows/s"
