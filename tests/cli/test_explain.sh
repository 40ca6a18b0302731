# churn score --explain / --actions: reasons and what-if retention actions
# in batch, for each model family.
. "$(dirname "$0")/lib.sh"
R=(--set "workdir=$T/var" --set "registry.url=$T/registry.db" --set train.folds=3)
"$CHURN" simulate --rows 2500 --seed 21 -o "$T/train.csv" 2>/dev/null
"$CHURN" simulate --rows 300 --seed 22 -o "$T/new.csv" 2>/dev/null
cut -d, -f1-20 "$T/new.csv" >"$T/in.csv"
for fam in logreg xgboost mlp; do
    check "train $fam" "$CHURN" train --data "$T/train.csv" "${R[@]}" --set train.families=$fam \
        --no-register
    b=$(ls -d "$T"/var/runs/*/ | sort -t/ -k1 | tail -1)bundle.json
    check "score $fam --explain 3 --actions 2" "$CHURN" score --model "$b" --in "$T/in.csv" \
        --out "$T/$fam.csv" --explain 3 --actions 2 "${R[@]}"
    check_grep "$fam header" '^id,probability,label,risk_band,reason_1,reason_1_logodds,reason_1_points,reason_2,reason_2_logodds,reason_2_points,reason_3,reason_3_logodds,reason_3_points,action_1,action_1_probability,action_1_value,action_2,action_2_probability,action_2_value$' "$T/$fam.csv"
    check_grep "$fam reasons are plain language" ',[a-z][a-z ]+ is [^,]+: (raises|lowers) churn risk,[+-][0-9]+\.[0-9]{4},[+-][0-9]+\.[0-9]{2},' "$T/$fam.csv"
    if python3 - "$T/$fam.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 300
for r in rows:
    lo = [float(r[f"reason_{k}_logodds"]) for k in (1, 2, 3) if r[f"reason_{k}_logodds"]]
    assert lo == sorted(lo, key=lambda v: -abs(v)), lo             # ranked by size
    for k in (1, 2, 3):
        t, p = r[f"reason_{k}"], r[f"reason_{k}_points"]
        if t:
            assert ("raises" in t) == (float(p) > 0), (t, p)        # direction matches sign
            assert (float(r[f"reason_{k}_logodds"]) > 0) == (float(p) > 0)
    for k in (1, 2):
        a = r[f"action_{k}"]
        if a:
            after = float(r[f"action_{k}_probability"])
            assert after < float(r["probability"]), (a, after)      # actions lower the risk
            assert "churn risk" in a
PY
    then pass "$fam reasons ranked, signed, actions lower risk"; else fail "$fam reasons ranked, signed, actions lower risk"; fi
done
check_fails "--explain 0 is a usage error" 1 "$CHURN" score --model "$b" --in "$T/in.csv" --out "$T/x.csv" --explain 0
check_fails "--actions 17 is a usage error" 1 "$CHURN" score --model "$b" --in "$T/in.csv" --out "$T/x.csv" --actions 17
finish
