# churn train / runs / models / evaluate / score: the whole model life cycle
# on simulated data, in a temporary workdir and registry.
. "$(dirname "$0")/lib.sh"
R=(--set "workdir=$T/var" --set "registry.url=$T/registry.db" --set train.folds=3)
FAST='{"search": {"logreg": {"C": [0.1, 1]}, "xgboost": {"max_depth": [2], "eta": [0.2], "n_rounds": [150]}, "mlp": {"hidden": [8], "epochs": [30]}}}'
python3 - "$T/fast.json" "$FAST" <<'PY'
import json, sys
cfg = json.load(open("config/churn.json"))
cfg.update(json.loads(sys.argv[2]))
json.dump(cfg, open(sys.argv[1], "w"))
PY
C=(--config "$T/fast.json")
"$CHURN" simulate --rows 3000 --seed 11 -o "$T/train.csv" 2>/dev/null
"$CHURN" simulate --rows 500 --seed 12 -o "$T/new.csv" 2>/dev/null
cut -d, -f1-20 "$T/new.csv" >"$T/unlabelled.csv"

check "train all three families" "$CHURN" train --data "$T/train.csv" "${C[@]}" "${R[@]}"
check_grep "summary names the winner" '^winner +(logreg|xgboost|mlp)$' "$T/.out"
for f in logreg xgboost mlp; do check_grep "CV result for $f" "^$f " "$T/.out"; done
check_grep "first version registered" 'version 1 registered' "$T/.out"
[ -f "$T/var/runs/1/bundle.json" ] && pass "bundle written" || fail "bundle written"
check_grep "report written" '^\| family \| best parameters' "$T/var/runs/1/report.md"
check "models list" "$CHURN" models list "${C[@]}" "${R[@]}"
check_grep "first model is champion and challenger" '^1 +1 +[a-z]+ +champion,challenger' "$T/.out"
check "runs list" "$CHURN" runs list "${C[@]}" "${R[@]}"
check_grep "run 1 ok" '^1 .* ok ' "$T/.out"
check "runs show --json parses" "$CHURN" runs show 1 "${C[@]}" "${R[@]}"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["status"]=="ok" and len(r["metrics"])>20 and r["lineage"]["dataset_sha256"]' "$T/.out" \
    && pass "run record holds metrics and lineage" || fail "run record holds metrics and lineage"

# A worse configuration does not replace the champion without --force.
check "train a weak challenger" "$CHURN" train --data "$T/train.csv" "${C[@]}" "${R[@]}" \
    --set train.families=logreg --set train.class_weight=none --reason "weak config" \
    --config "$T/fast.json"
python3 - "$T/weak.json" <<'PY'
import json, sys
cfg = json.load(open("config/churn.json"))
cfg["search"] = {"logreg": {"C": [0.00001]}}
cfg["features"]["exclude"] = ["Contract", "tenure", "TotalCharges", "InternetService", "PaymentMethod"]
json.dump(cfg, open(sys.argv[1], "w"))
PY
check "train a much weaker challenger" "$CHURN" train --data "$T/train.csv" --config "$T/weak.json" \
    "${R[@]}" --set train.families=logreg --reason "weak features"
check_fails "gate refuses the weaker challenger" 3 "$CHURN" models promote challenger "${C[@]}" "${R[@]}"
check_grep "refusal names both scores" 'refused.*below champion v1' "$T/.err"
check "models list after refusal" "$CHURN" models list "${C[@]}" "${R[@]}"
check_grep "champion unchanged" '^1 +1 .*champion' "$T/.out"
check "forced promotion" "$CHURN" models promote challenger --force --reason "testing force" "${C[@]}" "${R[@]}"
check_grep "forced promotion reported" 'now champion \(forced\)' "$T/.out"
check "rollback" "$CHURN" models rollback --reason "back" "${C[@]}" "${R[@]}"
check_grep "rollback returns to v1" 'champion is version 1 again' "$T/.out"
check "audit log" "$CHURN" models audit "${C[@]}" "${R[@]}"
for a in register promote-refused promote rollback; do check_grep "audit has $a" " $a " "$T/.out"; done
check_grep "audit keeps the force reason" 'testing force' "$T/.out"
check_fails "rollback past the first champion" 5 "$CHURN" models rollback "${C[@]}" "${R[@]}"

# Evaluate and score with the champion.
check "evaluate the champion" "$CHURN" evaluate --model champion --data "$T/new.csv" "${C[@]}" "${R[@]}"
check_grep "evaluate prints ROC AUC" '^roc_auc +0\.[6-9]' "$T/.out"
check "score unlabelled rows" "$CHURN" score --model champion --in "$T/unlabelled.csv" --out "$T/scores.csv" "${C[@]}" "${R[@]}"
check_grep "score header" '^id,probability,label,risk_band$' "$T/scores.csv"
rows=$(($(wc -l <"$T/scores.csv") - 1))
[ "$rows" -eq 500 ] && pass "a score per row" || fail "a score per row" "got $rows"
check_grep "score rows well formed" '^[0-9]{4}-[A-Z]{5},0\.[0-9]{6},[01],(low|medium|high)$' "$T/scores.csv"
if awk -F, 'NR > 1 && ($3 == 1) != ($4 == "high") {bad = 1} END {exit bad}' "$T/scores.csv"; then
    pass "label 1 exactly in the high band"; else fail "label 1 exactly in the high band"; fi
check "score by bundle path" "$CHURN" score --model "$T/var/runs/1/bundle.json" --in "$T/unlabelled.csv" --out "$T/s2.csv" "${C[@]}" "${R[@]}"
cmp -s "$T/scores.csv" "$T/s2.csv" && pass "path and alias give the same scores" || fail "path and alias give the same scores"
{ head -1 "$T/unlabelled.csv"; sed -n 2,3p "$T/unlabelled.csv"; echo "bad-row,Male"; } >"$T/withbad.csv"
check "score keeps going past a bad row" "$CHURN" score --model champion --in "$T/withbad.csv" --out "$T/s3.csv" "${C[@]}" "${R[@]}"
check_grep "bad row reported" '1 rejected \(in .*s3.csv.rejects.csv\)' "$T/.err"
check_grep "rejects file names the line" '^4,,field_count' "$T/s3.csv.rejects.csv"

# Damaged and foreign bundles are refused with a clear message.
sed 's/"served": 0\./"served": 0.0/' "$T/var/runs/1/bundle.json" >"$T/tampered.json"
check_fails "tampered bundle refused" 4 "$CHURN" evaluate --model "$T/tampered.json" --data "$T/new.csv" "${C[@]}" "${R[@]}"
check_grep "tampering named" 'checksum mismatch' "$T/.err"
head -c 1000 "$T/var/runs/1/bundle.json" >"$T/truncated.json"
check_fails "truncated bundle refused" 4 "$CHURN" score --model "$T/truncated.json" --in "$T/unlabelled.csv" --out "$T/x.csv" "${C[@]}" "${R[@]}"
check_fails "unknown version" 5 "$CHURN" models show v99 "${C[@]}" "${R[@]}"
check_fails "unknown family is a config error" 3 "$CHURN" train --data "$T/train.csv" "${C[@]}" "${R[@]}" --set train.families=forest
check_fails "score without --out" 1 "$CHURN" score --model champion --in "$T/unlabelled.csv"
finish
