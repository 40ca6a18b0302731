# churn rollout and churn jobs against the store, without a running
# service (tests/http/test_rollout.py and test_loop.py drive them through
# churn serve): usage errors, the state machine's refusals with their exit
# codes, what status prints, the audit rows, and queueing a job.
. "$(dirname "$0")/lib.sh"
R=(--set "workdir=$T/var" --set "registry.url=$T/registry.db" --set train.folds=2
   --set train.families=logreg)
"$CHURN" simulate --rows 1500 --seed 41 -o "$T/a.csv" 2>/dev/null
"$CHURN" simulate --rows 1500 --seed 42 -o "$T/b.csv" 2>/dev/null

check "rollout --help" "$CHURN" rollout --help
check_grep "help lists the gates" 'max_score_psi' "$T/.out"
check_grep "help lists exit codes" '^Exit codes: 0 ok' "$T/.out"
check "jobs --help" "$CHURN" jobs --help
check_grep "jobs help names queue" 'churn jobs queue retrain' "$T/.out"
check_fails "rollout without a subcommand" 1 "$CHURN" rollout
check_fails "rollout frobnicate" 1 "$CHURN" rollout frobnicate
check_fails "start without --candidate" 1 "$CHURN" rollout start "${R[@]}"
check_fails "pause without an id" 1 "$CHURN" rollout pause "${R[@]}"
check_fails "bad --gate" 1 "$CHURN" rollout start --candidate 2 --gate nope=1 "${R[@]}"
check_fails "jobs queue without a kind" 1 "$CHURN" jobs queue "${R[@]}"
check_fails "jobs queue sweep" 1 "$CHURN" jobs queue sweep "${R[@]}"
check_fails "jobs show without an id" 1 "$CHURN" jobs show "${R[@]}"

check "train v1" "$CHURN" train --data "$T/a.csv" "${R[@]}"
check "train v2" "$CHURN" train --data "$T/b.csv" "${R[@]}"
check_fails "no such candidate" 2 "$CHURN" rollout start --candidate 9 "${R[@]}"
check_fails "the champion is no candidate" 3 "$CHURN" rollout start --candidate champion "${R[@]}"
check_fails "steps must end at 100" 1 "$CHURN" rollout start --candidate 2 --steps 5,25 "${R[@]}"
check_fails "steps must increase" 1 "$CHURN" rollout start --candidate 2 --steps 50,20,100 "${R[@]}"
check "status without a rollout" "$CHURN" rollout status "${R[@]}"
check_grep "says none runs" 'no rollout' "$T/.out"

check "start a rollout" "$CHURN" rollout start --candidate challenger --steps 10,50,100 \
    --gate min_seconds=120 --reason "cli test" "${R[@]}"
check_grep "start prints the id and state" 'rollout 1.*canary' "$T/.out"
check_fails "a second one is refused" 3 "$CHURN" rollout start --candidate 2 "${R[@]}"
check "status" "$CHURN" rollout status "${R[@]}"
check_grep "status names candidate and step" 'v2.*10%' "$T/.out"
check "status --json" "$CHURN" rollout status --json "${R[@]}"
python3 - "$T/.out" <<'PY' && pass "status JSON: the gates as started" || fail "status JSON: the gates as started" "$(head -c 600 "$T/.out")"
import json, sys
doc = json.load(open(sys.argv[1]))
r = doc[0] if isinstance(doc, list) else doc
assert r["state"] == "canary" and r["steps"] == [10, 50, 100], r
assert r["gates"]["min_seconds"] == 120 and r["reason"] == "cli test", r
PY
check_fails "resume a running rollout" 3 "$CHURN" rollout resume 1 "${R[@]}"
check "pause" "$CHURN" rollout pause 1 --reason "hold" "${R[@]}"
check_fails "pause twice" 3 "$CHURN" rollout pause 1 "${R[@]}"
check "resume" "$CHURN" rollout resume 1 "${R[@]}"
check "abort" "$CHURN" rollout abort 1 --reason "done testing" "${R[@]}"
check_fails "abort an ended rollout" 3 "$CHURN" rollout abort 1 "${R[@]}"
check_fails "no such rollout" 2 "$CHURN" rollout pause 7 "${R[@]}"
check "audit list" "$CHURN" audit list --json "${R[@]}"
python3 - "$T/.out" <<'PY' && pass "every move audited" || fail "every move audited" "$(tail -c 600 "$T/.out")"
import json, sys
acts = [e["action"] for e in json.load(open(sys.argv[1]))]
for a in ("rollout-start", "rollout-pause", "rollout-resume", "rollout-abort"):
    assert a in acts, (a, acts)
PY
check "models list: the champion is still v1" "$CHURN" models list --json "${R[@]}"
python3 - "$T/.out" <<'PY' && pass "champion unchanged" || fail "champion unchanged" "$(head -c 400 "$T/.out")"
import json, sys
ms = json.load(open(sys.argv[1]))
ms = ms.get("models", ms) if isinstance(ms, dict) else ms
champ = [m for m in ms if "champion" in (m.get("aliases") or [])]
assert len(champ) == 1 and champ[0]["version"] == 1, ms
PY

check "jobs queue retrain" "$CHURN" jobs queue retrain "${R[@]}"
check_grep "queue prints the id" '^queued job 1 ' "$T/.out"
check_fails "one retraining job at a time" 3 "$CHURN" jobs queue retrain "${R[@]}"
check "jobs list" "$CHURN" jobs list "${R[@]}"
check_grep "list shows it queued" '^1 +retrain +queued ' "$T/.out"
check "jobs cancel" "$CHURN" jobs cancel 1 "${R[@]}"
check_grep "cancelled at once" '^job 1 cancelled' "$T/.out"
check_fails "cancel it again" 3 "$CHURN" jobs cancel 1 "${R[@]}"
check_fails "no such job" 2 "$CHURN" jobs show 5 "${R[@]}"
check "models check" "$CHURN" models check "${R[@]}"
check_grep "registry ok" '^registry ok$' "$T/.out"
finish
