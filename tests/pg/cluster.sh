# tests/pg/cluster.sh -- a throwaway PostgreSQL server for tests and
# benchmarks, sourced by tests/run, tests/pg/run and bench scripts.
#
#   pg_start DIR   initialises a cluster under DIR (a fresh directory) and
#                  starts it listening only on a unix socket in DIR; sets
#                  CH_PG_URL to a libpq URI of its "postgres" database.
#                  Extra server settings: CH_PG_OPTS (e.g. "-c fsync=off").
#   pg_stop        stops the server started by pg_start (safe to call twice).
#
# The server binaries come from Debian's postgresql package
# (/usr/lib/postgresql/<major>/bin; CH_PG_BIN overrides). PostgreSQL refuses
# to run as root, so under root the cluster belongs to the 'postgres' user
# the package creates. Nothing listens on TCP.

pg_bin() {
    local d
    if [ -n "${CH_PG_BIN:-}" ]; then
        echo "$CH_PG_BIN"
        return
    fi
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/postgres" ] && echo "$d"
    done | sort -V | tail -1
}

pg_start() {
    local dir=$1 bin
    bin=$(pg_bin)
    if [ -z "$bin" ] || [ ! -x "$bin/postgres" ] || [ ! -x "$bin/initdb" ]; then
        echo "pg_start: no PostgreSQL server binaries (install the Debian package 'postgresql'," \
            "or run scripts/install-deps)" >&2
        return 1
    fi
    PG_AS=()
    if [ "$(id -u)" -eq 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            echo "pg_start: running as root and there is no 'postgres' user to own the cluster" >&2
            return 1
        fi
        chown postgres "$dir"
        PG_AS=(runuser -u postgres --)
    fi
    PG_DIR=$dir
    PG_BIN=$bin
    if ! "${PG_AS[@]}" "$bin/initdb" -D "$dir/data" -A trust -U churn -E UTF8 --locale=C \
        --no-sync >"$dir/initdb.log" 2>&1; then
        echo "pg_start: initdb failed:" >&2
        cat "$dir/initdb.log" >&2
        return 1
    fi
    # A socket in DIR only; the port just names the socket file.
    if ! "${PG_AS[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=200 ${CH_PG_OPTS:-}" \
        start >"$dir/pg_ctl.log" 2>&1; then
        echo "pg_start: the server did not start:" >&2
        cat "$dir/pg_ctl.log" "$dir/server.log" >&2
        return 1
    fi
    export CH_PG_URL="postgresql:///postgres?host=$dir&user=churn"
}

pg_stop() {
    [ -n "${PG_DIR:-}" ] || return 0
    "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1
    PG_DIR=
}
