# churn schema infer/check and churn pipeline fit/show/transform.
. "$(dirname "$0")/lib.sh"
"$CHURN" simulate --rows 3000 --seed 5 -o "$T/sim.csv" 2>/dev/null

check "schema check on the shipped schema" "$CHURN" schema check config/telco.schema.json
check_grep "schema check reports the target" 'target Churn' "$T/.out"
check "schema infer on simulated data" "$CHURN" schema infer "$T/sim.csv" -o "$T/inferred.json"
check "inferred schema validates its data" "$CHURN" validate "$T/sim.csv" --schema "$T/inferred.json"
check_grep "inferred target is Churn" '"name": "Churn", "kind": "target"' "$T/inferred.json"
check_grep "inferred id is customerID" '"name": "customerID", "kind": "id"' "$T/inferred.json"
telco_csv=$(telco)
if [ -n "$telco_csv" ]; then
    check "schema infer on the Telco file" "$CHURN" schema infer "$telco_csv" -o "$T/telco.json"
    check "inferred Telco schema validates the Telco file" "$CHURN" validate "$telco_csv" --schema "$T/telco.json"
    check_grep "all 7043 rows accepted" '7043 accepted, 0 rejected' "$T/.out"
    check_grep "blank TotalCharges inferred as missing" '"name": "TotalCharges".*"missing": \["", " "\]' "$T/telco.json"
else
    skip "schema infer on the Telco file" "the IBM Telco CSV is not at ${CH_SHARED_DATA:-../shared/data}"
fi
printf 'a,b\n1,yes\n2,no\n' >"$T/notarget.csv"
check_fails "infer without a target exits 3" 3 "$CHURN" schema infer "$T/notarget.csv"
check_grep "infer says to name the target" '\-\-target' "$T/.err"
check "infer with --target" "$CHURN" schema infer "$T/notarget.csv" --target b
check_fails "schema check on a broken schema exits 3" 3 "$CHURN" schema check "$T/sim.csv"

check "pipeline fit" "$CHURN" pipeline fit --data "$T/sim.csv" -o "$T/p.json" --set workdir="$T/work"
check_grep "fit reports the split" 'split +2400 training rows, 600 held-out' "$T/.err"
check "pipeline show" "$CHURN" pipeline show "$T/p.json"
check_grep "engineered feature with its sources" 'avg_monthly_spend +numeric +TotalCharges, tenure' "$T/.out"
check_grep "one-hot other bucket" 'Contract=\(other\) +other +Contract' "$T/.out"
check "pipeline transform" "$CHURN" pipeline transform --pipeline "$T/p.json" --data "$T/sim.csv" -o "$T/f.csv"
rows=$(($(wc -l <"$T/f.csv") - 1))
[ "$rows" -eq 3000 ] && pass "transform writes every row" || fail "transform writes every row" "got $rows"
check_grep "feature header" '^gender=Female,gender=Male,gender=\(other\),' "$T/f.csv"
# Same seed, same data: the fitted pipeline is byte-identical.
"$CHURN" pipeline fit --data "$T/sim.csv" -o "$T/p2.json" 2>/dev/null
cmp -s "$T/p.json" "$T/p2.json" && pass "fit is deterministic" || fail "fit is deterministic"
# Another split seed gives another fit (it only ever sees training rows).
"$CHURN" pipeline fit --data "$T/sim.csv" -o "$T/p3.json" --set split.seed=7 2>/dev/null
cmp -s "$T/p.json" "$T/p3.json" && fail "split seed changes the fit" || pass "split seed changes the fit"
# Default data: an empty data.path makes synthetic customers in the workdir.
check "fit on default data" "$CHURN" pipeline fit --set workdir="$T/w2" --set data.simulate_rows=500
[ -f "$T/w2/data/simulated-500-42.csv" ] && pass "default data generated in the workdir" || fail "default data generated in the workdir"
[ -f "$T/w2/pipeline.json" ] && pass "default pipeline path" || fail "default pipeline path"
check_fails "bad --set value" 1 "$CHURN" pipeline fit --set split.test_fraction=abc
check_fails "out-of-range --set" 3 "$CHURN" pipeline fit --set split.test_fraction=0.9
check_fails "unknown setting" 2 "$CHURN" pipeline fit --set no.such=1
echo '{"data": {"pth": "x"}}' >"$T/badcfg.json"
check_fails "config with an unknown key" 3 "$CHURN" pipeline fit --config "$T/badcfg.json"
check_grep "unknown key named" 'unknown setting "data.pth"' "$T/.err"
echo '{"features": {"derived": [{"name": "r", "op": "ratio", "inputs": ["tenure"]}]}}' >"$T/badfeat.json"
check_fails "bad features section" 3 "$CHURN" pipeline fit --config "$T/badfeat.json" --data "$T/sim.csv"
check_grep "feature error names the place" 'derived\[0\] \(r\): ratio takes exactly 2 inputs' "$T/.err"
check_fails "show a missing pipeline" 2 "$CHURN" pipeline show "$T/none.json"
echo '{"format": "churn-pipeline", "version": 99}' >"$T/v99.json"
check_fails "show a future pipeline version" 4 "$CHURN" pipeline show "$T/v99.json"
check "config get" "$CHURN" config get split.seed
check_grep "config get prints the value" '^42$' "$T/.out"
CHURN_SEED=9 "$CHURN" config show >"$T/env.txt"
check_grep "environment overrides the file" '^split.seed += 9 +\(set\)' "$T/env.txt"
# Any churn CSV: a bank-shaped file with the default (Telco) config.
"$CHURN" simulate --layout bank --rows 1500 --seed 3 -o "$T/bank.csv" 2>/dev/null
check "schema infer with a starter config" "$CHURN" schema infer "$T/bank.csv" -o "$T/bank.schema.json" --features-out "$T/bank.json"
check_grep "infer notes the id choice" 'CustomerId: a distinct value on every row: the id column' "$T/.err"
check_grep "starter config names the schema" "\"schema\": \"$T/bank.schema.json\"" "$T/bank.json"
check_grep "starter config spells out the features" '"exclude": \["Surname"\]' "$T/bank.json"
B=(--set "workdir=$T/wb" --set "registry.url=$T/wb/registry.db" --set train.folds=2 --set train.families=logreg)
check_fails "Telco features on another schema exit 3" 3 "$CHURN" train --data "$T/bank.csv" --set data.schema="$T/bank.schema.json" "${B[@]}"
check_grep "the refusal names the column" 'input "TotalCharges" is not a schema column' "$T/.err"
check_grep "the refusal says how to go on" '\-\-features auto builds the features from the schema alone' "$T/.err"
check "--features auto trains on any schema" "$CHURN" train --data "$T/bank.csv" --set data.schema="$T/bank.schema.json" --features auto "${B[@]}"
check_grep "no revenue column: F1 threshold only" 'note +.*only the F1 threshold was computed' "$T/.out"
check "the starter config trains as it is" "$CHURN" train --config "$T/bank.json" --set train.folds=2 --set train.families=logreg
check_fails "--features needs auto or config" 1 "$CHURN" train --features maybe
check "pipeline fit --features auto" "$CHURN" pipeline fit --data "$T/bank.csv" --set data.schema="$T/bank.schema.json" --features auto -o "$T/bank.pipe.json"
check_grep "auto features: one-hot with other" 'Geography=\(other\) +other +Geography' <("$CHURN" pipeline show "$T/bank.pipe.json" --set data.schema="$T/bank.schema.json")
echo '{"features": "sometimes"}' >"$T/badauto.json"
check_fails "features must be an object or auto" 3 "$CHURN" pipeline fit --config "$T/badauto.json" --data "$T/sim.csv"
( cd "$T" && "$CHURN" init bank.csv --dir cfg >"$T/init.out" 2>&1 )
check_grep "init writes the pair" 'wrote cfg/bank.json' "$T/init.out"
check_fails "init refuses to overwrite" 2 sh -c "cd '$T' && '$CHURN' init bank.csv --dir cfg"
check_grep "init names the existing file" 'cfg/bank.schema.json exists' "$T/.err"
check "init --force replaces" sh -c "cd '$T' && '$CHURN' init bank.csv --dir cfg --force"
check "validate --config" sh -c "cd '$T' && '$CHURN' validate --config cfg/bank.json"
check_grep "validate --config reads data.path" '1500 accepted, 0 rejected' "$T/.out"
printf 'x,label\n1,A\n2,B\n' >"$T/ab.csv"
check_fails "a two-valued target needs --positive" 3 "$CHURN" schema infer "$T/ab.csv"
check_grep "the refusal names the values" 'values "A" and "B": say which means churn with --positive' "$T/.err"
check "--positive picks the churned value" "$CHURN" schema infer "$T/ab.csv" --positive B
check_grep "positive value written" '"positive": \["B"\], "negative": \["A"\]' "$T/.out"
finish
