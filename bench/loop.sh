#!/usr/bin/env bash
# bench/loop.sh -- the closed loop's timeline, at a larger scale.
#
#   bench/loop.sh [SCALE]      default 3
#
# Runs tests/http/test_loop.py with CHURN_LOOP_SCALE=SCALE: a champion
# trained on 5000 x SCALE simulated customers serves 40000 x SCALE customers
# of the concept-drift scenario, each outcome reported as feedback right
# after its prediction; the server diagnoses the drift, retrains on 10,000+
# feedback labels, canaries the new model 5% -> 25% -> 100% and promotes
# it, then rolls a broken candidate back at 5%. Prints the timeline (seconds
# from the start), the client's batch latency through it all, and the
# checks. Gate settings are the test's (3 s and 150 predictions a step),
# so the figures are the machinery's own time, not a production schedule.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-3}
make -s build/churn >/dev/null
echo "== bench/loop: $(nproc) cores, $(date -u +%Y-%m-%d), scale $SCALE"
out=$(CHURN_LOOP_SCALE=$SCALE python3 tests/http/test_loop.py 2>&1) || {
    echo "$out"
    exit 1
}
echo "$out" | sed -n '/^timeline:/,$p' | grep -v -e '^churn serve:' -e '^http_loop:'
echo "$out" | grep -E '^(FAIL|http_loop:)'
