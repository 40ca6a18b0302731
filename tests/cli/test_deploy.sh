# The deployment files under deploy/, checked offline (building and running
# the image is scripts/container-test, too slow for this tier):
#  - the Containerfile's runtime packages hold every library build/churn
#    needs, and its user, port and health check agree with the manifests;
#  - the entrypoint, run on build/churn with the image's environment and the
#    Kubernetes ConfigMap's settings: first-start setup, then a server on
#    127.0.0.1 that gets ready, answers predictions and runs a monitoring
#    job;
#  - deploy/k8s/churn.yaml against the Kubernetes schemas (kubernetes-models)
#    and for unknown fields;
#  - deploy/compose.yml (docker-compose config) and the configurations it
#    mounts (promtool, amtool);
#  - the Grafana dashboard against @grafana/schema, every query through
#    promtool and then in a real Prometheus scraping that server (no
#    evaluation error; the core panels have data), and every metric it uses
#    exported by the server.
. "$(dirname "$0")/lib.sh"
D="$(cd "$(dirname "$0")/../.." && pwd)"
CF=$D/deploy/container/Containerfile
K8S=$D/deploy/k8s/churn.yaml
DASH=$D/deploy/grafana/dashboards/churn.json
NM=$D/deploy/tests/node_modules

# The tools come with the test tier of scripts/install-deps: a missing one
# is a failure, not a skip.
need() { # tool package
    command -v "$1" >/dev/null && return 0
    fail "$1 is available" "$1 not found: install the Debian package $2 (scripts/install-deps)"
    return 1
}
have_node=0
if need node nodejs; then
    if [ -f "$NM/.package-lock.json" ]; then
        have_node=1
    else
        fail "deploy/tests npm packages are installed" \
            "$NM missing: scripts/install-deps runs npm ci there (from package-lock.json)"
    fi
fi
have_prom=0; need promtool prometheus && have_prom=1
have_am=0; need amtool prometheus-alertmanager && have_am=1
have_dc=0; need docker-compose docker-compose && have_dc=1
[ -x "$CHURN" ] || { fail "build/churn exists" "$CHURN: run make"; finish; exit 1; }

# ---- the image -----------------------------------------------------------
# The runtime stage's apt-get install list, and the packages (on this Debian
# 12 host, as in the image) holding each library the binary names.
runtime_pkgs() { # Containerfile
    awk '/^FROM/ { n++ } n == 2' "$1" | sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' \
        | grep -E '^lib[a-z0-9.+-]+$' | sort -u
}
libs_not_installed() { # Containerfile: prints LIB(PACKAGE) for each library not covered
    local pkgs lib path pkg
    pkgs=$(runtime_pkgs "$1")
    for lib in $(readelf -d "$CHURN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
        path=$(ldd "$CHURN" | awk -v l="$lib" '$1 == l { print $3 }')
        pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1)
        [ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1)
        case "$pkg" in
        libc6) ;; # essential: in every Debian base image
        "") echo "$lib(no package)" ;;
        *) grep -qx "$pkg" <<<"$pkgs" || echo "$lib($pkg)" ;;
        esac
    done
}
n_pkgs=$(runtime_pkgs "$CF" | wc -l)
[ "$n_pkgs" -ge 1 ] && pass "the runtime stage installs $n_pkgs library packages" \
    || fail "the runtime stage installs library packages"
missing=$(libs_not_installed "$CF")
[ -z "$missing" ] && pass "every library build/churn needs is in a runtime package" \
    || fail "every library build/churn needs is in a runtime package" "not installed: $missing"
sed 's/ libjwt0 / /' "$CF" >"$T/Containerfile"
missing=$(libs_not_installed "$T/Containerfile")
[ "$missing" = "libjwt.so.0(libjwt0)" ] && pass "without libjwt0 the check names libjwt.so.0" \
    || fail "without libjwt0 the check names libjwt.so.0" "got: $missing"

check_grep "both stages are FROM debian:12 (ARG DEBIAN)" '^ARG DEBIAN=debian:12$' "$CF"
[ "$(grep -c '^FROM \${DEBIAN}' "$CF")" -eq 2 ] && pass "two stages on \${DEBIAN}" \
    || fail "two stages on \${DEBIAN}"
check_grep "EXPOSE 8080" '^EXPOSE 8080$' "$CF"
grep -A1 '^HEALTHCHECK ' "$CF" | grep -q 'GET /healthz ' && pass "HEALTHCHECK asks /healthz" \
    || fail "HEALTHCHECK asks /healthz"
uid=$(sed -nE 's/^USER ([0-9]+):([0-9]+)$/\1/p' "$CF")
[ -n "$uid" ] && [ "$uid" -ne 0 ] && pass "USER is a numeric non-root uid ($uid)" \
    || fail "USER is a numeric non-root uid" "$(grep '^USER' "$CF")"
for f in build var data; do
    check_grep ".dockerignore keeps $f/ out of the context" "^$f\$" "$D/.dockerignore"
done
check "entrypoint.sh parses" bash -n "$D/deploy/container/entrypoint.sh"

# The entrypoint on build/churn, with the image's ENV (paths moved under $T,
# the address to loopback, any free port) and the ConfigMap's settings plus
# a small first model.
img_env=()
while read -r kv; do
    img_env+=("$kv")
done < <(awk '/^ENV /,!/\\$/' "$CF" | sed 's/^ENV //; s/ *\\$//; s/^ *//' \
    | sed "s|/var/lib/churn|$T/state|g; s|^CHURN_HOST=.*|CHURN_HOST=127.0.0.1|; s|^CHURN_PORT=.*|CHURN_PORT=0|")
[ ${#img_env[@]} -ge 5 ] && pass "the image's ENV has its settings (${#img_env[@]})" \
    || fail "the image's ENV has its settings" "${img_env[*]}"
# The ConfigMap's settings.conf (the YAML block under "settings.conf: |").
awk '/settings.conf: \|/ { on = 1; next } on && /^    / { sub(/^    /, ""); print; next } on { exit }' \
    "$K8S" >"$T/settings.conf"
grep -q '^# registry.url=postgresql://' "$T/settings.conf" \
    && pass "the ConfigMap has the commented PostgreSQL registry.url" \
    || fail "the ConfigMap has the commented PostgreSQL registry.url" "$(cat "$T/settings.conf")"
cp "$T/settings.conf" "$T/test.conf"
# Monitoring on (its first run is at start, later ones on request) with a
# small window, so that the drift gauges exist for the dashboard's checks.
printf 'data.simulate_rows=1500\ntrain.families=logreg\ntrain.folds=2\nmonitor.interval_s=3600\nmonitor.min_rows=10\n' \
    >>"$T/test.conf"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/admin.password"
ep_env=(env "${img_env[@]}" CHURN_BIN="$CHURN" CHURN_SETTINGS_FILE="$T/test.conf"
        CHURN_ADMIN_PASSWORD_FILE="$T/admin.password")
entry=$D/deploy/container/entrypoint.sh
cd "$D" || exit 1 # the config names its schema relative to the source tree, as /opt/churn in the image
check "entrypoint setup: trains a first model, adds admin" "${ep_env[@]}" "$entry" setup
check "the first model is champion" "${ep_env[@]}" "$entry" models show champion
"${ep_env[@]}" "$entry" users list --json >"$T/users.json" 2>&1
check_grep "the user admin exists" '"admin"' "$T/users.json"
check "entrypoint setup again: nothing to do" "${ep_env[@]}" "$entry" setup
[ "$(ls "$T/state/runs" | wc -l)" -eq 1 ] && pass "no second training run" \
    || fail "no second training run" "$(ls "$T/state/runs")"
printf 'not a setting\n' >"$T/bad.conf"
check_fails "a settings line that is not NAME=VALUE is refused" 1 \
    timeout 30 env "${img_env[@]}" CHURN_BIN="$CHURN" CHURN_SETTINGS_FILE="$T/bad.conf" "$entry"
printf 'serve.no_such=1\n' >"$T/bad.conf"
timeout 30 env "${img_env[@]}" CHURN_BIN="$CHURN" CHURN_SETTINGS_FILE="$T/bad.conf" "$entry" \
    >/dev/null 2>"$T/.err"
rc=$?
[ $rc -ne 0 ] && grep -q 'no setting called "serve.no_such"' "$T/.err" \
    && pass "an unknown setting is refused (exit $rc)" \
    || fail "an unknown setting is refused" "exit $rc: $(head -c 300 "$T/.err")"

"${ep_env[@]}" "$entry" >"$T/serve.out" 2>"$T/serve.err" &
srv=$!
trap 'kill $srv 2>/dev/null; rm -rf "$T"' EXIT
port=""
for _ in $(seq 1 100); do
    port=$(sed -nE 's|.*listening on http://127\.0\.0\.1:([0-9]+)/.*|\1|p' "$T/serve.err")
    [ -n "$port" ] && break
    kill -0 $srv 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    fail "the entrypoint serves on 127.0.0.1" "$(head -c 600 "$T/serve.err")"
else
    pass "the entrypoint serves on 127.0.0.1 (port $port)"
    U=http://127.0.0.1:$port
    check "GET /healthz" curl -sf -m 5 "$U/healthz"
    check "GET /readyz (the champion is loaded)" curl -sf -m 5 "$U/readyz"
    tok=$(curl -s -m 5 -X POST "$U/v1/auth/token" -H 'Content-Type: application/json' \
        -d "{\"username\":\"admin\",\"password\":\"$(cat "$T/admin.password")\"}" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' 2>/dev/null)
    [ -n "$tok" ] && pass "admin gets a token" || fail "admin gets a token"
    rec='{"customerID":"7590-VHVEG","gender":"Female","SeniorCitizen":0,"Partner":"Yes","Dependents":"No","tenure":1,"PhoneService":"No","MultipleLines":"No phone service","InternetService":"DSL","OnlineSecurity":"No","OnlineBackup":"Yes","DeviceProtection":"No","TechSupport":"No","StreamingTV":"No","StreamingMovies":"No","Contract":"Month-to-month","PaperlessBilling":"Yes","PaymentMethod":"Electronic check","MonthlyCharges":29.85,"TotalCharges":29.85}'
    curl -s -m 5 -X POST "$U/v1/predict?k=2" -H "Authorization: Bearer $tok" \
        -H 'Content-Type: application/json' -d "$rec" >"$T/predict.json"
    check_grep "a prediction with a probability" '"probability":0\.[0-9]+' "$T/predict.json"
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST "$U/v1/predict" \
        -H 'Content-Type: application/json' -d "$rec")
    [ "$code" = 401 ] && pass "a prediction without credentials is refused (401)" \
        || fail "a prediction without credentials is refused (401)" "got $code"
    # 50 more customers in one CSV upload, then a monitoring run over them.
    "$CHURN" simulate --rows 50 --seed 7 -o "$T/batch.csv" >/dev/null 2>&1
    code=$(curl -s -m 10 -o "$T/batch.json" -w '%{http_code}' -X POST "$U/v1/predict/batch" \
        -H "Authorization: Bearer $tok" -H 'Content-Type: text/csv' --data-binary @"$T/batch.csv")
    [ "$code" = 200 ] && pass "a batch of 50 customers (text/csv)" || fail "a batch of 50 customers" "$code"
    # The run reads the prediction log, which is written behind the requests.
    for _ in $(seq 1 100); do
        n=$(curl -s -m 5 "$U/metrics" | awk '$1 == "churn_prediction_log_written_total" { print $2 }')
        [ "${n:-0}" -ge 51 ] 2>/dev/null && break
        sleep 0.1
    done
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST "$U/v1/monitor/run" -H "Authorization: Bearer $tok")
    # (the score gauge exists from the start, as NaN; a column's PSI only
    # once a run has judged a window)
    for _ in $(seq 1 200); do
        curl -s -m 5 "$U/metrics" >"$T/metrics.txt"
        grep -q '^churn_feature_drift_psi{' "$T/metrics.txt" && break
        sleep 0.1
    done
    [ "$code" = 202 ] && grep -q '^churn_feature_drift_psi{' "$T/metrics.txt" \
        && pass "a monitoring run sets the drift gauges" \
        || fail "a monitoring run sets the drift gauges" "POST /v1/monitor/run: $code"
    grep -q '"path":"/readyz"' "$T/serve.err" && pass "the access log goes to standard error" \
        || fail "the access log goes to standard error" "$(tail -c 300 "$T/serve.err")"
fi
# (the server keeps running for the dashboard's queries below)

# ---- Kubernetes -----------------------------------------------------------
if [ $have_node = 1 ]; then
    check "deploy/k8s/churn.yaml matches the Kubernetes schemas, no unknown field" \
        node "$D/deploy/tests/check-k8s.mjs" "$K8S"
    sed 's/livenessProbe:/livenesProbe:/' "$K8S" >"$T/typo.yaml"
    check_fails "the validator rejects a misspelt field" 1 node "$D/deploy/tests/check-k8s.mjs" "$T/typo.yaml"
    sed 's/containerPort: 8080/containerPort: "8080"/' "$K8S" >"$T/type.yaml"
    check_fails "the validator rejects a wrong type" 1 node "$D/deploy/tests/check-k8s.mjs" "$T/type.yaml"
fi
grep -A2 'livenessProbe:' "$K8S" | grep -q 'path: /healthz' && pass "livenessProbe is /healthz" \
    || fail "livenessProbe is /healthz"
grep -A2 'readinessProbe:' "$K8S" | grep -q 'path: /readyz' && pass "readinessProbe is /readyz" \
    || fail "readinessProbe is /readyz"
check_grep "runAsNonRoot" '^ +runAsNonRoot: true$' "$K8S"
check_grep "runAsUser is the image's uid" "^ +runAsUser: $uid\$" "$K8S"
check_grep "resources with a memory limit" '^ +memory: [0-9]+[MG]i$' "$K8S"
n_empty=$(sed -n '/^stringData:/,/^---/p' "$K8S" | grep -cE '^  [a-z.]+: ""')
n_keys=$(sed -n '/^stringData:/,/^---/p' "$K8S" | grep -cE '^  [a-z.]+:')
[ "$n_keys" -ge 3 ] && [ "$n_empty" -eq "$n_keys" ] \
    && pass "the Secret has its $n_keys keys, and no value is committed" \
    || fail "the Secret has its keys, and no value is committed" "$n_empty of $n_keys empty"
# Every CHURN_ variable the manifests set is a setting's or the entrypoint's.
"$CHURN" config docs >"$T/config.md"
for v in $(grep -ohE 'CHURN_[A-Z_]+' "$K8S" "$D/deploy/compose.yml" | sort -u); do
    if grep -q "\`$v\`" "$T/config.md" || grep -qE "^#   $v[ =]" "$entry"; then
        pass "$v is a setting's variable or the entrypoint's"
    else
        fail "$v is a setting's variable or the entrypoint's"
    fi
done

# ---- compose ----------------------------------------------------------------
if [ $have_dc = 1 ]; then
    check "docker-compose config accepts deploy/compose.yml" \
        docker-compose -f "$D/deploy/compose.yml" config -q
    if [ $have_node = 1 ]; then
        docker-compose -f "$D/deploy/compose.yml" config >"$T/compose.yml" 2>"$T/.err"
        check "compose: mounted files exist, ports on 127.0.0.1, secrets declared" \
            node "$D/deploy/tests/check-compose.mjs" <"$T/compose.yml"
    fi
fi
grep -q '^      # CHURN_REGISTRY: postgresql://' "$D/deploy/compose.yml" \
    && pass "compose has the commented PostgreSQL CHURN_REGISTRY" \
    || fail "compose has the commented PostgreSQL CHURN_REGISTRY"
strip() { grep -v '^ *#' "$1" | sed 's/ *#.*$//; /^$/d'; }
if [ $have_prom = 1 ]; then
    mkdir -p "$T/prom"
    cp "$D/deploy/compose/prometheus.yml" "$D/deploy/prometheus/churn.rules.yml" "$T/prom/"
    check "promtool check config compose/prometheus.yml (with the rule file)" \
        promtool check config "$T/prom/prometheus.yml"
fi
if [ $have_am = 1 ]; then
    check "amtool check-config compose/alertmanager.yml" \
        amtool check-config "$D/deploy/compose/alertmanager.yml"
fi
diff <(strip "$D/deploy/prometheus/prometheus.yml" \
        | sed 's/127.0.0.1:8080/churn:8080/; s/127.0.0.1:9093/alertmanager:9093/') \
    <(strip "$D/deploy/compose/prometheus.yml") >"$T/diff" \
    && pass "compose/prometheus.yml is prometheus/prometheus.yml but for the addresses" \
    || fail "compose/prometheus.yml is prometheus/prometheus.yml but for the addresses" "$(cat "$T/diff")"
diff <(strip "$D/deploy/alertmanager/alertmanager.yml" \
        | sed 's|127.0.0.1:8080|churn:8080|; s|/etc/prometheus/churn-hook.secret|/run/secrets/hook.secret|') \
    <(strip "$D/deploy/compose/alertmanager.yml") >"$T/diff" \
    && pass "compose/alertmanager.yml is alertmanager/alertmanager.yml but for the hook's address and secret" \
    || fail "compose/alertmanager.yml is alertmanager/alertmanager.yml but for the hook's address and secret" \
        "$(cat "$T/diff")"

# ---- Grafana ------------------------------------------------------------------
check_grep "the provisioned datasource has uid prometheus" '^    uid: prometheus$' \
    "$D/deploy/grafana/provisioning/datasources/prometheus.yml"
check_grep "the dashboard provider reads the compose mount" '^      path: /etc/grafana/dashboards$' \
    "$D/deploy/grafana/provisioning/dashboards/churn.yml"
check_grep "compose mounts the dashboards there" 'grafana/dashboards:/etc/grafana/dashboards:ro' \
    "$D/deploy/compose.yml"
if [ $have_node = 1 ]; then
    check "the dashboard matches @grafana/schema; layout, datasources, queries, variables" \
        node "$D/deploy/tests/check-dashboard.mjs" "$DASH" --rules "$T/dash.rules.yml" \
        --metrics "$T/dash.metrics"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["panels"][1]["titel"]="x"; json.dump(d,open(sys.argv[2],"w"))' \
        "$DASH" "$T/bad.json"
    check_fails "the checker rejects an unknown panel field" 1 node "$D/deploy/tests/check-dashboard.mjs" "$T/bad.json"
    if [ $have_prom = 1 ] && [ -s "$T/dash.rules.yml" ]; then
        n=$(grep -c 'record:' "$T/dash.rules.yml")
        check "promtool check rules: the dashboard's $n queries parse" promtool check rules "$T/dash.rules.yml"
    fi
    # Each metric the dashboard uses is a family the live server above
    # exported (with _bucket/_sum/_count for histograms).
    if [ -s "$T/dash.metrics" ] && [ -s "$T/metrics.txt" ]; then
        awk '$1 == "#" && $2 == "TYPE" { print $3; if ($4 == "histogram") { print $3 "_bucket"; print $3 "_sum"; print $3 "_count" } }' \
            "$T/metrics.txt" | sort -u >"$T/live.metrics"
        n_live=0
        unknown_metrics() { # names file: prints the names the server does not export
            local m
            while read -r m; do
                if grep -qx "$m" "$T/live.metrics"; then
                    n_live=$((n_live + 1))
                else
                    echo "$m"
                fi
            done <"$1"
        }
        unknown_metrics "$T/dash.metrics" >"$T/bad.out"
        bad=$(cat "$T/bad.out")
        [ -z "$bad" ] \
            && pass "the dashboard's $n_live metrics are in the server's /metrics" \
            || fail "the dashboard's metrics are the server's" "unknown: $bad"
        printf 'churn_predictions_total\nchurn_prediction_scores_bucket\n' >"$T/bad.metrics"
        bad=$(unknown_metrics "$T/bad.metrics")
        [ "$bad" = churn_prediction_scores_bucket ] && pass "a misspelt metric name is caught" \
            || fail "a misspelt metric name is caught" "got: $bad"
    else
        fail "the dashboard's metrics are the server's" "no metric list or no /metrics from the server"
    fi
    # The queries in a real Prometheus scraping the server above every
    # second: every one evaluates without error ("health ok" as a recording
    # rule), and those of the panels that must show data after predictions
    # and a monitoring run return samples.
    if [ $have_prom = 1 ] && [ -n "$port" ] && [ -s "$T/dash.rules.yml" ]; then
        if timeout 60 python3 - "$D/tests/http" "$T" "$port" "$T/dash.rules.yml" >"$T/prom.out" 2>&1 <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1])
from alerting import Prometheus
workdir, port, rules_path = sys.argv[2], int(sys.argv[3]), sys.argv[4]
must = ["Requests by route", "Latency by route (p50, p99)", "Served model", "Uptime",
        "Predictions by label", "Predictions by model version", "Score distribution over time",
        "Score distribution (time range)", "Log queue", "Log writes, drops, errors",
        "Churn share of predictions", "Feature drift (PSI) per feature", "Score drift (PSI)",
        "Features in drift", "Monitoring jobs", "Monitoring runs by result"]
n = open(rules_path).read().count("record:")
with Prometheus(workdir, "127.0.0.1:%d" % port, rules_path) as prom:
    prom.wait_scraped('churn_prediction_score_count > 0')
    time.sleep(2.5)  # a second and third scrape, for rate() and increase()
    rules = prom.wait_rules_healthy(n, timeout=20)
    empty_must, empty, data = [], [], 0
    for r in rules:
        got = prom.query(r["name"])
        data += bool(got)
        what = "%s %s" % (r["labels"]["panel"], r["labels"]["ref"])
        if not got:
            empty.append(what)
        if not got and any(r["labels"]["panel"].endswith('"%s"' % t) for t in must):
            empty_must.append(what)
    print("no data (yet): " + "; ".join(empty))
    print("%d queries evaluated, health ok; %d return data" % (len(rules), data))
    if empty_must:
        print("no data: " + "; ".join(empty_must))
        sys.exit(1)
PY
        then
            pass "Prometheus: $(tail -n 1 "$T/prom.out"), all of the core panels"
            echo "    $(tail -n 2 "$T/prom.out" | head -n 1)"
        else
            fail "the dashboard's queries in a real Prometheus" "$(tail -c 1500 "$T/prom.out")"
        fi
    fi
fi

kill -TERM $srv 2>/dev/null
wait $srv
rc=$?
[ $rc -eq 0 ] && pass "SIGTERM stops the server cleanly" || fail "SIGTERM stops the server cleanly" "exit $rc"

check_grep "docs/deploy.md is in README's docs list" '\(docs/deploy\.md\)' "$D/README.md"
finish
