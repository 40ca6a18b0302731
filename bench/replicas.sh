#!/usr/bin/env bash
# bench/replicas.sh -- churn serve replicas behind nginx, on loopback.
#
#   bench/replicas.sh [SECONDS]      default 10
#
# Trains a champion and a second model on synthetic customers, then starts
# two `churn serve` replicas on one store (STORE_URL: default a SQLite file
# in a temp dir; "pg" for a throwaway PostgreSQL server on a unix socket,
# tests/pg/cluster.sh; or any postgresql://... URL) and
# the same secrets files, and Debian's nginx in front of them with
# deploy/nginx/churn.conf (only its listen address and replica list
# changed). With wrk (-t2 -c64, keep-alive, after a 3 s warm-up), POST
# /v1/predict with top-3 reasons:
#   1. straight to one replica (the reference);
#   2. through nginx with one replica behind it;
#   3. through nginx with both.
# Then a canary of the second model at 30% is started from the CLI, and
# 2,000 customers are each scored on replica 1, on replica 2 and twice
# through nginx: every customer must get the same arm from all four, and the
# candidate's share is printed. Both replicas must also name the same
# champion before and after a promotion made from the CLI.
# On 2 cores, wrk, nginx and the replicas share the same two cores, so the
# second replica cannot add capacity here: the figures show what the
# balancer costs and that nothing is lost; on separate hosts each replica
# brings its own cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
BUILD=${BUILD:-build}
churn="$PWD/$BUILD/churn"
for t in wrk nginx; do
    command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] ||
        { echo "bench/replicas: $t is not installed (scripts/install-deps --bench)" >&2; exit 1; }
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
make -s "$BUILD/churn" >/dev/null
tmp=$(mktemp -d "${TMPDIR:-/tmp}/churn-bench-replicas-XXXXXX")
pids=()
cleanup() {
    [ -f "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
if [ "${STORE_URL:-}" = pg ]; then
    . tests/pg/cluster.sh
    pgdir=$(mktemp -d "${TMPDIR:-/tmp}/churn-bench-pg-XXXXXX")
    trap 'cleanup; pg_stop; rm -rf "$pgdir"' EXIT
    pg_start "$pgdir" || exit 1
    STORE_URL=$CH_PG_URL
fi
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
S=(--set "registry.url=${STORE_URL:-$tmp/r.db}" --set "serve.jwt_secret_file=$tmp/jwt"
   --set "serve.pseudonym_key_file=$tmp/pkey" --set serve.reload_ms=100
   --set serve.rate_per_s=0 --set monitor.interval_s=0 --set retrain.signals=
   --set serve.login_per_min=1000000 --set serve.max_per_ip=4096)
"$churn" simulate --rows 4000 --seed 3 -o "$tmp/customers.csv" >/dev/null 2>&1
"$churn" train "${S[@]}" --set "workdir=$tmp/var" --set train.families=logreg >/dev/null 2>&1
"$churn" train "${S[@]}" --set "workdir=$tmp/var" --set train.families=logreg \
    --set split.seed=7 >/dev/null 2>&1
printf 'bench-pass-1\n' | "$churn" users add bench --role service "${S[@]}" >/dev/null 2>&1

# Starts replica N on a free port, waits for /readyz; sets port_N.
start_replica() {
    local n=$1 port
    port=$(free_port)
    "$churn" serve --port "$port" "${S[@]}" --set "workdir=$tmp/var$n" \
        --set "serve.access_log=$tmp/access$n.log" >"$tmp/serve$n.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.05
    done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null ||
        { echo "bench/replicas: replica $n did not become ready" >&2; cat "$tmp/serve$n.log" >&2; exit 1; }
    eval "port_$n=$port"
}
start_replica 1
start_replica 2
lb_port=$(free_port)

# nginx with deploy/nginx/churn.conf; the replicas given as arguments.
start_nginx() {
    [ -f "$tmp/nginx.pid" ] && { kill "$(cat "$tmp/nginx.pid")"; sleep 0.3; }
    local list="" p
    for p in "$@"; do list+="        server 127.0.0.1:$p max_fails=3 fail_timeout=5s;\n"; done
    sed -e "/# replicas begin/,/# replicas end/c\\$list" \
        -e "s|listen 127.0.0.1:8080;|listen 127.0.0.1:$lb_port;|" \
        -e "s|^http {|http {\n    client_body_temp_path $tmp/nginx-body;\n    proxy_temp_path $tmp/nginx-proxy;|" \
        deploy/nginx/churn.conf >"$tmp/nginx.conf"
    "$nginx" -q -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" \
        -g "pid $tmp/nginx.pid;" 2>"$tmp/nginx-start.log" ||
        { echo "bench/replicas: nginx did not start:" >&2; cat "$tmp/nginx-start.log" >&2; exit 1; }
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$lb_port/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench/replicas: nginx does not reach the replicas" >&2
    cat "$tmp/nginx-error.log" >&2
    exit 1
}

base1="http://127.0.0.1:$port_1"
token=$(curl -s -X POST "$base1/v1/auth/token" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench-pass-1"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
body=$(python3 - "$tmp/customers.csv" <<'PY'
import csv, json, sys
row = next(csv.DictReader(open(sys.argv[1], newline="")))
row.pop("Churn")
for k in ("tenure", "SeniorCitizen"):
    row[k] = int(row[k])
for k in ("MonthlyCharges", "TotalCharges"):
    row[k] = float(row[k]) if row[k].strip() else None
print(json.dumps(row))
PY
)
cat >"$tmp/predict.lua" <<EOF
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
EOF

run() { # name url
    local out rps p50 p99 non2xx errs
    wrk -t2 -c64 -d3s -s "$tmp/predict.lua" "$2" >/dev/null 2>&1 # warm-up
    out=$(wrk -t2 -c64 -d"${SECS}s" --latency -s "$tmp/predict.lua" "$2" 2>&1)
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    errs=$(echo "$out" | awk '/Socket errors/ {print $0}')
    printf '%-36s %10s req/s  p50 %8s  p99 %8s  non-2xx %s%s\n' "$1" "$rps" "$p50" "$p99" \
        "${non2xx:-0}" "${errs:+  ($errs)}"
    [ -z "$non2xx" ] && [ -z "$errs" ] || failed=1
}

failed=0
echo "== bench/replicas: $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c64 -d${SECS}s," \
    "store $(case "${STORE_URL:-}" in postgres*) echo PostgreSQL ;; *) echo SQLite ;; esac), nginx $("$nginx" -v 2>&1 | sed 's|.*/||')"
run "one replica, direct" "$base1/v1/predict?k=3"
start_nginx "$port_1"
run "nginx, one replica" "http://127.0.0.1:$lb_port/v1/predict?k=3"
start_nginx "$port_1" "$port_2"
run "nginx, two replicas" "http://127.0.0.1:$lb_port/v1/predict?k=3"
# Token requests are limited per client address by nginx (burst 10).
codes=$(for _ in $(seq 1 15); do
    curl -s -o /dev/null -w '%{http_code}\n' -X POST "http://127.0.0.1:$lb_port/v1/auth/token" \
        -H 'Content-Type: application/json' -d '{"username":"bench","password":"bench-pass-1"}'
done | sort | uniq -c | tr -s ' \n' ' ')
echo "15 token requests at once through nginx: ${codes}(HTTP status: count first)"
case "$codes" in *" 429"*) ;; *) echo "bench/replicas: nginx did not limit token requests" >&2; failed=1 ;; esac
for n in 1 2; do
    p=$(eval echo "\$port_$n")
    c=$(curl -s "http://127.0.0.1:$p/metrics" | awk '/^churn_predictions_total/ {s += $2} END {print s + 0}')
    echo "replica $n answered $c predictions"
done

# The same champion on both, and both follow a promotion from the CLI.
"$churn" rollout start --candidate 2 --steps 30,100 --gate min_requests=100000000 \
    --gate min_seconds=86400 --reason "bench: arms across replicas" "${S[@]}" >/dev/null
python3 - "$tmp/customers.csv" "$token" "http://127.0.0.1:$port_1" "http://127.0.0.1:$port_2" \
    "http://127.0.0.1:$lb_port" <<'PY' || failed=1
import csv, http.client, json, sys, time, urllib.parse
path, token, urls = sys.argv[1], sys.argv[2], sys.argv[3:]
conns = [http.client.HTTPConnection(urllib.parse.urlsplit(u).netloc, timeout=10) for u in urls]
rows = list(csv.DictReader(open(path, newline="")))[:2000]
def ask(c, row):
    body = {k: v for k, v in row.items() if k != "Churn"}
    for k in ("tenure", "SeniorCitizen"):
        body[k] = int(body[k])
    for k in ("MonthlyCharges", "TotalCharges"):
        body[k] = float(body[k]) if body[k].strip() else None
    c.request("POST", "/v1/predict", json.dumps(body),
              {"Content-Type": "application/json", "Authorization": "Bearer " + token})
    r = c.getresponse()
    doc = json.loads(r.read())
    if r.status != 200:
        sys.exit("predict: %d %s" % (r.status, doc))
    return doc.get("arm"), doc["model"]["version"]
# Both replicas pick the rollout up from the store within serve.reload_ms.
def percent(u):
    c = http.client.HTTPConnection(urllib.parse.urlsplit(u).netloc, timeout=5)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith("churn_rollout_candidate_percent "):
            return float(line.split()[1])
deadline = time.time() + 10
while [percent(u) for u in urls[:2]] != [30.0, 30.0]:
    if time.time() > deadline:
        sys.exit("the replicas did not take the rollout up: %s" % [percent(u) for u in urls[:2]])
    time.sleep(0.1)
same = cand = 0
for row in rows:
    answers = [ask(conns[0], row), ask(conns[1], row), ask(conns[2], row), ask(conns[2], row)]
    if len({a for a, _ in answers}) == 1 and len(set(answers)) == 1:
        same += 1
    cand += answers[0][0] == "candidate"
print("canary at 30%%: %d of %d customers got the same arm and version from replica 1, "
      "replica 2 and twice through nginx; %.1f%% on the candidate" % (same, len(rows),
                                                                      100.0 * cand / len(rows)))
if same != len(rows) or not 20 <= 100.0 * cand / len(rows) <= 40:
    sys.exit("arms differ across replicas")
PY
rid=$("$churn" rollout status --json "${S[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$churn" rollout abort "$rid" --reason "bench: done" "${S[@]}" >/dev/null
"$churn" models promote 2 --force "${S[@]}" >/dev/null 2>&1
python3 - "$token" "http://127.0.0.1:$port_1" "http://127.0.0.1:$port_2" <<'PY' || failed=1
import http.client, json, sys, time, urllib.parse
token, urls = sys.argv[1], sys.argv[2:]
deadline = time.time() + 5
while True:
    seen = []
    for u in urls:
        c = http.client.HTTPConnection(urllib.parse.urlsplit(u).netloc, timeout=5)
        c.request("GET", "/readyz")
        seen.append(json.loads(c.getresponse().read())["model"]["version"])
    if seen == [2, 2] or time.time() > deadline:
        break
    time.sleep(0.05)
print("after a CLI promotion both replicas serve: %s" % seen)
if seen != [2, 2]:
    sys.exit("the replicas did not follow the promotion")
PY
[ "$failed" = 0 ] || { echo "bench/replicas: FAILED" >&2; exit 1; }
