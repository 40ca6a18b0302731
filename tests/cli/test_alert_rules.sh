# The Prometheus alert rules and example configs under deploy/: promtool
# and amtool accept them, the rule unit tests pass, and every alert is
# unit-tested and documented.
. "$(dirname "$0")/lib.sh"
D="$(cd "$(dirname "$0")/../.." && pwd)"
RULES=$D/deploy/prometheus/churn.rules.yml
RTEST=$D/deploy/prometheus/tests/churn.rules.test.yml

# promtool and amtool come with the test tier (Debian packages prometheus and
# prometheus-alertmanager): missing tools are a failure, not a skip.
need() { # tool package
    command -v "$1" >/dev/null && return 0
    fail "$1 is available" "$1 not found: install the Debian package $2 (scripts/install-deps)"
    return 1
}

if need promtool prometheus; then
    check "promtool check rules churn.rules.yml" promtool check rules "$RULES"
    check "promtool check config prometheus.yml (and the rule file it names)" \
        promtool check config "$D/deploy/prometheus/prometheus.yml"
    check "promtool test rules churn.rules.test.yml" promtool test rules "$RTEST"
fi
if need amtool prometheus-alertmanager; then
    check "amtool check-config alertmanager.yml" \
        amtool check-config "$D/deploy/alertmanager/alertmanager.yml"
fi

# Every alert has a unit test, a `for:`, a severity and a row in docs/monitoring.md.
alerts=$(sed -nE 's/^ *- alert: *([A-Za-z0-9_]+).*/\1/p' "$RULES" | sort -u)
[ -n "$alerts" ] && pass "the rule file defines alerts" || fail "the rule file defines alerts"
for a in $alerts; do
    check_grep "$a is unit-tested" "alertname: $a\$" "$RTEST"
    check_grep "$a is documented" "^\| \`$a\` " "$D/docs/monitoring.md"
done
n_alert=$(grep -cE '^ *- alert:' "$RULES")
n_for=$(grep -cE '^ *for: ' "$RULES")
n_sev=$(grep -cE '^ *severity: (warning|critical)$' "$RULES")
[ "$n_alert" -eq "$n_for" ] && [ "$n_alert" -eq "$n_sev" ] \
    && pass "every alert has for: and severity warning|critical" \
    || fail "every alert has for: and severity warning|critical" \
        "$n_alert alerts, $n_for for:, $n_sev severities"
finish
