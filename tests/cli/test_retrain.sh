# churn retrain: what the command can do without a running service (the
# prediction log stays empty; tests/unit/test_retrain.c covers retraining
# from logged predictions and feedback): usage, too few labels, no
# champion, a retraining on the base data alone that the gate refuses
# (the candidate is the champion's twin), and Ctrl-C.
. "$(dirname "$0")/lib.sh"
R=(--set "workdir=$T/var" --set "registry.url=$T/registry.db" --set train.folds=3
   --set train.families=logreg --set "data.path=$T/train.csv")
"$CHURN" simulate --rows 2000 --seed 31 -o "$T/train.csv" 2>/dev/null

check "retrain --help" "$CHURN" retrain --help
check_grep "help names the gate" 'beats the' "$T/.out"
check_grep "help lists exit codes" '^Exit codes: 0 registered, or refused by the gate' "$T/.out"
check_fails "unknown option" 1 "$CHURN" retrain --frobnicate
check_fails "bad date" 1 "$CHURN" retrain --since 2024-02-30
check_fails "since twice" 1 "$CHURN" retrain --since 2024-02-01 --since-ms 5
check_fails "min-labels not a number" 1 "$CHURN" retrain --min-labels many
check_fails "no champion yet" 5 "$CHURN" retrain "${R[@]}"
check_grep "no champion named" 'no champion to retrain' "$T/.err"

check "train a champion" "$CHURN" train "${R[@]}"
check_fails "too few labels" 3 "$CHURN" retrain "${R[@]}"
check_grep "the count is given" '0 labelled predictions usable for retraining .*at least 500 are needed' "$T/.err"
check_fails "too few labels since a date" 3 "$CHURN" retrain --since 2024-05-01 --min-labels 1 "${R[@]}"
check_fails "bad base_data setting" 1 "$CHURN" retrain "${R[@]}" --set retrain.base_data=file
check_fails "nothing to train on" 3 "$CHURN" retrain --no-base --min-labels 0 "${R[@]}"
check_grep "nothing to train on named" 'nothing to train on' "$T/.err"

# The base data alone, with the champion's settings: the candidate equals
# the champion, and equal is not better.
check "retrain on the base data alone" "$CHURN" retrain --min-labels 0 "${R[@]}" --set retrain.margin=0
check_grep "base rows printed" "^base +$T/train.csv: 2000 rows$" "$T/.out"
check_grep "label rows printed" '^labels +0 labelled predictions$' "$T/.out"
check_grep "both AUCs printed" '^candidate ROC AUC 0\.[0-9]{4} on its held-out test rows$' "$T/.out"
check_grep "champion AUC printed" '^champion +v1 ROC AUC 0\.[0-9]{4} on the same rows \(margin 0\)$' "$T/.out"
check_grep "verdict: refused" '^verdict +refused by the gate \(refused: (0\.[0-9]{4}) <= champion \1 \+ margin 0\); nothing registered$' "$T/.out"
run=$(sed -nE 's/^run +([0-9]+), outputs in .*/\1/p' "$T/.out")
for f in bundle.json report.md result.json data.csv; do
    [ -f "$T/var/retrain/$run/$f" ] && pass "run dir has $f" || fail "run dir has $f"
done
check_grep "report has the retraining section" '^## Retraining from feedback' "$T/var/retrain/$run/report.md"
check "models list" "$CHURN" models list "${R[@]}"
[ "$(grep -cE '^[0-9]+ ' "$T/.out")" -eq 1 ] && pass "nothing registered" || fail "nothing registered" "$(cat "$T/.out")"
check "audit list" "$CHURN" audit list --json "${R[@]}"
python3 - "$T/.out" "$run" <<'PY' && pass "refusal audited" || fail "refusal audited"
import json, sys
last = json.load(open(sys.argv[1]))[-1]
assert last["action"] == "retrain-refused" and last["target"] == "run " + sys.argv[2], last
assert last["details"]["candidate_auc"] == last["details"]["champion_auc"], last
PY
check "runs show" "$CHURN" runs show "$run" "${R[@]}"
python3 - "$T/.out" <<'PY' && pass "run ok, verdict in its summary" || fail "run ok, verdict in its summary"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok" and r["summary"]["retrain"]["verdict"] == "refused", r["summary"]
assert r["lineage"]["retrain"]["base_rows"] == 2000 and r["lineage"]["dataset_rows"] == 2000
PY
check "retrain --json" "$CHURN" retrain --min-labels 0 --json "${R[@]}"
python3 - "$T/.out" <<'PY' && pass "JSON result" || fail "JSON result" "$(head -c 600 "$T/.out")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["verdict"] == "refused" and r["version"] is None and r["champion"] == 1
assert r["base_rows"] == 2000 and r["label_rows"] == 0 and r["run_id"] > 0
assert r["candidate_auc"] == r["champion_auc"] and r["margin"] == 0.002
PY

# Ctrl-C while training: the run is marked failed ("cancelled"), exit 4.
"$CHURN" simulate --rows 30000 --seed 32 -o "$T/big.csv" 2>/dev/null
"$CHURN" retrain --min-labels 0 "${R[@]}" --set "data.path=$T/big.csv" --set train.families=mlp \
    --set train.folds=5 >"$T/int.out" 2>"$T/int.err" &
pid=$!
started=0
for _ in $(seq 1 300); do
    if "$CHURN" runs list --json "${R[@]}" 2>/dev/null | grep -qE '"status": *"running"'; then
        started=1; break
    fi
    sleep 0.1
done
kill -INT "$pid" 2>/dev/null
wait "$pid"; rc=$?
if [ "$started" -eq 1 ] && [ "$rc" -eq 4 ]; then pass "interrupted retrain exits 4"; else
    fail "interrupted retrain exits 4" "started $started, exit $rc: $(head -c 600 "$T/int.err")"; fi
check_grep "interruption reported" 'cancelled' "$T/int.err"
check "runs list after the interruption" "$CHURN" runs list --json "${R[@]}"
python3 - "$T/.out" <<'PY' && pass "interrupted run marked failed" || fail "interrupted run marked failed" "$(head -c 600 "$T/.out")"
import json, sys
r = json.load(open(sys.argv[1]))[0]
assert r["status"] == "failed" and r["summary"]["reason"] == "cancelled", r
PY
finish
