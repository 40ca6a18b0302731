#!/usr/bin/env bash
# The container's entrypoint: `churn serve` on 0.0.0.0:8080 with its state
# under /var/lib/churn (a volume), after two optional first-start steps.
#
#   CHURN_BOOTSTRAP=1          no champion in the registry yet: generate the
#                              synthetic customers (data.simulate_rows, seed
#                              data.simulate_seed) unless data.path names a
#                              file, validate them and train, as `make run`
#                              does; 0 (the default) serves as is, and
#                              /readyz answers 503 until a champion exists.
#   CHURN_ADMIN_PASSWORD_FILE  no user yet: create the user `admin` (role
#                              admin) with the password in this file.
#   CHURN_SETTINGS_FILE        a file of NAME=VALUE lines (# comments), each
#                              passed as --set NAME=VALUE to every churn
#                              command here: any setting, also those without
#                              an environment variable (deploy/k8s/churn.yaml
#                              mounts its ConfigMap there).
#   CHURN_ACCESS_LOG           serve.access_log ("-", the image's default:
#                              standard error, for the container's log).
#   PGPASSWORD_FILE            a file holding the PostgreSQL password of a
#                              postgresql:// registry.url, exported as libpq's
#                              PGPASSWORD (a mounted secret; libpq ignores a
#                              ~/.pgpass that others may read).
#
# Settings with an environment variable (docs/config.md) can be given as
# such. Arguments are passed on to `churn serve` after everything above,
# so they win (e.g. --set monitor.interval_s=60). A first argument `setup`
# runs the first-start steps, with CHURN_BOOTSTRAP defaulting to 1, and
# exits (a Kubernetes init container); any
# other first argument that is not an option runs that churn command
# instead: `podman run IMAGE models list`. CHURN_BIN names the binary
# (tests/cli/test_deploy.sh runs this script on build/churn).
set -euo pipefail
churn=${CHURN_BIN:-/usr/local/bin/churn}

sets=()
if [ -n "${CHURN_SETTINGS_FILE:-}" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%$'\r'}
        case "$line" in
        "" | "#"*) continue ;;
        *=*) sets+=(--set "$line") ;;
        *) echo "churn-entrypoint: $CHURN_SETTINGS_FILE: not NAME=VALUE: $line" >&2; exit 1 ;;
        esac
    done <"$CHURN_SETTINGS_FILE"
fi
[ -n "${CHURN_ACCESS_LOG:-}" ] && sets+=(--set "serve.access_log=$CHURN_ACCESS_LOG")
if [ -n "${PGPASSWORD_FILE:-}" ]; then
    IFS= read -r PGPASSWORD <"$PGPASSWORD_FILE" \
        || { echo "churn-entrypoint: cannot read PGPASSWORD_FILE $PGPASSWORD_FILE" >&2; exit 1; }
    export PGPASSWORD
fi

mode=serve
bootstrap=${CHURN_BOOTSTRAP:-0}
case "${1:-}" in
"" | -*) ;;
setup) mode=setup; bootstrap=${CHURN_BOOTSTRAP:-1}; shift ;;
*) exec "$churn" "$@" ;;
esac

get() { "$churn" config get "$1" "${sets[@]}"; }

if [ "$bootstrap" = 1 ] && ! "$churn" models show champion "${sets[@]}" >/dev/null 2>&1; then
    work=$(get workdir)
    data=$(get data.path)
    if [ -z "$data" ]; then
        data="$work/data/simulated-$(get data.simulate_rows)-$(get data.simulate_seed).csv"
        mkdir -p "$work/data"
        [ -f "$data" ] || "$churn" simulate --rows "$(get data.simulate_rows)" \
            --seed "$(get data.simulate_seed)" -o "$data"
    fi
    "$churn" validate "$data" --schema "$(get data.schema)" --rejects "$work/rejects.csv" \
        --max-reject-rate "$(get data.max_reject_rate)" >/dev/null
    "$churn" train --data "$data" --reason "initial model at the container's first start" "${sets[@]}"
fi

if [ -n "${CHURN_ADMIN_PASSWORD_FILE:-}" ] \
    && [ "$("$churn" users list --json "${sets[@]}")" = "[]" ]; then
    "$churn" users add admin --role admin --password-file "$CHURN_ADMIN_PASSWORD_FILE" "${sets[@]}"
fi

[ "$mode" = setup ] && exit 0
exec "$churn" serve "${sets[@]}" "$@"
