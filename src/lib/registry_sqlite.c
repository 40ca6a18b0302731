/*
 * registry_sqlite.c -- the SQLite back end of the registry: the only file
 * that includes sqlite3.h.
 *
 * One store is one SQLite file in WAL mode, so readers never wait for a
 * writer and a process killed at any point leaves the last committed
 * state. Invariants kept here:
 *   - every call is one transaction; writes start with BEGIN IMMEDIATE,
 *     which takes the write lock before anything is read, so a decision
 *     (the next version number, the champion a gate compares against) is
 *     made on the state it changes;
 *   - every alias move and registration writes its audit row in the same
 *     transaction, and triggers make audit rows append-only;
 *   - audit times never decrease with the id, even if the clock steps
 *     back (a row takes the later of now and the previous row's time);
 *   - audit rows form a hash chain (ch__audit_hash in registry.c): each
 *     row is written with the hash of the row before it, read from the
 *     head row 'audit_head', which the same transaction advances. The
 *     head, not the last row, is what a new row links to, so a log whose
 *     tail was cut stays visibly broken after further writes;
 *   - the layout is numbered in PRAGMA user_version; migrations[i] brings
 *     layout i to i + 1 in one transaction, and a newer layout is refused.
 *
 * SQLite's own allocations are routed through ch_malloc (see init_sqlite)
 * so that fault-injection tests reach the allocations inside SQLite too.
 *
 * Errors are translated where they happen: the SQLite result code picks
 * the ch_err (SQLITE_NOMEM -> CH_ENOMEM, busy -> CH_EBUSY once the wait is
 * spent, anything else -> CH_EDB) and sqlite3_errmsg() is copied into the
 * message at once, before another call can replace it.
 *
 * Workload: a few writes per training run and small reads; statements are
 * prepared per call rather than cached, which keeps the code simple and
 * costs microseconds against a transaction's fsync. The exception is the
 * prediction log, written in batches by the server's log thread: its
 * insert is prepared once per handle and reused for every record.
 */
#include "registry_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/hash.h"

/* The layout this build writes (PRAGMA user_version). */
#define LAYOUT 6

/* Audit rows cannot be changed once written. Layout 2's migration drops
 * and re-creates the update trigger to chain the existing rows, so the
 * text lives in one place. */
#define AUDIT_NO_UPDATE                                                                            \
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"                                      \
    "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;\n"

/* Layout 1. Alias names are a closed set; audit rows cannot change once
 * written. Audit columns carry no foreign keys on purpose: the log must
 * always be writable, whatever it refers to. */
static const char schema_v1[] =
    "CREATE TABLE datasets (\n"
    "    sha256     TEXT PRIMARY KEY NOT NULL,\n"
    "    path       TEXT NOT NULL,\n"
    "    n_rows     INTEGER NOT NULL CHECK (n_rows >= 0),\n"
    "    first_seen TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE runs (\n"
    "    id             INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    started        TEXT NOT NULL,\n"
    "    ended          TEXT,\n"
    "    status         TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')),\n"
    "    seconds        REAL,\n"
    "    dataset_sha256 TEXT REFERENCES datasets(sha256),\n"
    "    config_json    TEXT,\n"
    "    lineage_json   TEXT,\n"
    "    summary_json   TEXT\n"
    ");\n"
    "CREATE TABLE metrics (\n"
    "    run_id INTEGER NOT NULL REFERENCES runs(id),\n"
    "    scope  TEXT NOT NULL,\n"
    "    name   TEXT NOT NULL,\n"
    "    value  REAL,\n"
    "    PRIMARY KEY (run_id, scope, name)\n"
    ");\n"
    "CREATE TABLE artifacts (\n"
    "    id      INTEGER PRIMARY KEY,\n"
    "    run_id  INTEGER NOT NULL REFERENCES runs(id),\n"
    "    kind    TEXT NOT NULL,\n"
    "    path    TEXT NOT NULL,\n"
    "    sha256  TEXT NOT NULL,\n"
    "    created TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX artifacts_run ON artifacts(run_id);\n"
    "CREATE TABLE model_versions (\n"
    "    version       INTEGER PRIMARY KEY CHECK (version >= 1),\n"
    "    run_id        INTEGER NOT NULL REFERENCES runs(id),\n"
    "    family        TEXT NOT NULL,\n"
    "    bundle_path   TEXT NOT NULL,\n"
    "    bundle_sha256 TEXT NOT NULL,\n"
    "    metrics_json  TEXT,\n"
    "    created       TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE aliases (\n"
    "    name    TEXT PRIMARY KEY NOT NULL CHECK (name IN ('champion', 'challenger')),\n"
    "    version INTEGER NOT NULL REFERENCES model_versions(version)\n"
    ");\n"
    "CREATE TABLE audit (\n"
    "    id           INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    at           TEXT NOT NULL,\n"
    "    actor        TEXT NOT NULL,\n"
    "    action       TEXT NOT NULL,\n"
    "    alias        TEXT,\n"
    "    from_version INTEGER,\n"
    "    to_version   INTEGER,\n"
    "    reason       TEXT,\n"
    "    details_json TEXT\n"
    ");\n"
    "CREATE INDEX audit_alias ON audit(alias, id);\n"
    "CREATE INDEX audit_to ON audit(to_version, action);\n"
    "CREATE INDEX audit_from ON audit(from_version);\n" AUDIT_NO_UPDATE
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit\n"
    "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;\n";

/* Layout 2: what the prediction service keeps, and the audit chain.
 * - audit gains 'target' (the user, key or other object of a non-model
 *   entry) and the chain columns; 'audit_head' (one row) holds the count
 *   and the last hash. The head must be updated on every append, so only
 *   its deletion is refused.
 * - users and api_keys hold role names as text: the set of roles belongs
 *   to auth.h and the front checks it, so a new role needs no migration.
 * - predictions and feedback carry no foreign keys: predictions may be
 *   pruned under a retention policy, and the join is checked when the
 *   feedback is added. Customers are pseudonyms, never raw ids. */
static const char schema_v2[] =
    "ALTER TABLE audit ADD COLUMN target TEXT;\n"
    "ALTER TABLE audit ADD COLUMN prev_hash TEXT;\n"
    "ALTER TABLE audit ADD COLUMN hash TEXT;\n"
    "CREATE INDEX audit_target ON audit(target, id);\n"
    "CREATE TABLE audit_head (\n"
    "    id        INTEGER PRIMARY KEY CHECK (id = 1),\n"
    "    n_entries INTEGER NOT NULL CHECK (n_entries >= 0),\n"
    "    last_id   INTEGER NOT NULL,\n"
    "    last_hash TEXT NOT NULL\n"
    ");\n"
    "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head\n"
    "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;\n"
    "CREATE TABLE users (\n"
    "    name          TEXT PRIMARY KEY NOT NULL,\n"
    "    role          TEXT NOT NULL,\n"
    "    password_hash TEXT NOT NULL,\n"
    "    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),\n"
    "    created       TEXT NOT NULL,\n"
    "    updated       TEXT NOT NULL\n"
    ");\n"
    "CREATE TABLE api_keys (\n"
    "    id         TEXT PRIMARY KEY NOT NULL,\n"
    "    sha256     TEXT NOT NULL,\n"
    "    role       TEXT NOT NULL,\n"
    "    label      TEXT,\n"
    "    created    TEXT NOT NULL,\n"
    "    created_by TEXT NOT NULL,\n"
    "    last_used  TEXT,\n"
    "    revoked_at TEXT\n"
    ");\n"
    "CREATE TABLE predictions (\n"
    "    id              TEXT PRIMARY KEY NOT NULL,\n"
    "    customer        TEXT,\n"
    "    features_sha256 TEXT NOT NULL,\n"
    "    probability     REAL NOT NULL,\n"
    "    label           INTEGER NOT NULL CHECK (label IN (0, 1)),\n"
    "    model_version   INTEGER,\n"
    "    latency_s       REAL NOT NULL,\n"
    "    time_ms         INTEGER NOT NULL\n"
    ");\n"
    "CREATE INDEX predictions_customer ON predictions(customer, time_ms);\n"
    "CREATE TABLE feedback (\n"
    "    id            INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    prediction_id TEXT NOT NULL,\n"
    "    customer      TEXT,\n"
    "    churned       INTEGER NOT NULL CHECK (churned IN (0, 1)),\n"
    "    observed_date TEXT NOT NULL,\n"
    "    actor         TEXT NOT NULL,\n"
    "    at            TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX feedback_prediction ON feedback(prediction_id);\n";

/* Layout 3: the input values of each prediction (an inputs.h blob; NULL
 * for rows logged before, and for values too large for a log record), and
 * an index on time, which scans of a window of predictions read in order.
 * Adding a nullable column rewrites nothing: old rows read it as NULL. */
static const char schema_v3[] = "ALTER TABLE predictions ADD COLUMN inputs BLOB;\n"
                                "CREATE INDEX predictions_time ON predictions(time_ms);\n";

/* Layout 4: monitoring results, with their history (monitor.h, watch.h). */
static const char schema_v4[] =
    "CREATE TABLE monitor_results (\n"
    "    id            INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    kind          TEXT NOT NULL CHECK (kind IN ('drift', 'decay', 'estimate')),\n"
    "    model_version INTEGER,\n"
    "    computed_at   TEXT NOT NULL,\n"
    "    since_ms      INTEGER,\n"
    "    until_ms      INTEGER,\n"
    "    predictions   INTEGER NOT NULL CHECK (predictions >= 0),\n"
    "    result_json   TEXT NOT NULL\n"
    ");\n"
    "CREATE INDEX monitor_results_kind ON monitor_results(kind, id);\n";

/* Layout 5: background jobs (retraining), canary rollouts, and for each
 * prediction the arm that answered and the shadow candidate's score. At
 * most one job of a kind is queued or running, and at most one rollout is
 * active: both are unique indexes, so two servers on one store cannot
 * race past them. */
static const char schema_v5[] =
    "CREATE TABLE jobs (\n"
    "    id               INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    kind             TEXT NOT NULL,\n"
    "    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', "
    "'failed', 'cancelled', 'interrupted')),\n"
    "    trigger          TEXT,\n"
    "    actor            TEXT NOT NULL,\n"
    "    params_json      TEXT,\n"
    "    progress         REAL NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),\n"
    "    stage            TEXT,\n"
    "    result_json      TEXT,\n"
    "    error            TEXT,\n"
    "    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),\n"
    "    created_ms       INTEGER NOT NULL,\n"
    "    started_ms       INTEGER,\n"
    "    ended_ms         INTEGER\n"
    ");\n"
    "CREATE UNIQUE INDEX jobs_one_active ON jobs(kind) WHERE status IN ('queued', 'running');\n"
    "CREATE TABLE rollouts (\n"
    "    id              INTEGER PRIMARY KEY AUTOINCREMENT,\n"
    "    candidate       INTEGER NOT NULL REFERENCES model_versions(version),\n"
    "    champion        INTEGER REFERENCES model_versions(version),\n"
    "    state           TEXT NOT NULL CHECK (state IN ('shadow', 'canary', 'paused', "
    "'promoted', 'rolled_back', 'aborted')),\n"
    "    paused_from     TEXT CHECK (paused_from IN ('shadow', 'canary')),\n"
    "    step            INTEGER NOT NULL CHECK (step >= 0),\n"
    "    steps_json      TEXT NOT NULL,\n"
    "    gates_json      TEXT NOT NULL,\n"
    "    step_started_ms INTEGER NOT NULL,\n"
    "    created_ms      INTEGER NOT NULL,\n"
    "    ended_ms        INTEGER,\n"
    "    actor           TEXT NOT NULL,\n"
    "    reason          TEXT,\n"
    "    eval_json       TEXT\n"
    ");\n"
    "CREATE UNIQUE INDEX rollouts_one_active ON rollouts((1)) WHERE state IN ('shadow', 'canary', "
    "'paused');\n"
    "ALTER TABLE predictions ADD COLUMN arm TEXT CHECK (arm IN ('champion', 'candidate'));\n"
    "ALTER TABLE predictions ADD COLUMN shadow_probability REAL;\n"
    "ALTER TABLE predictions ADD COLUMN shadow_version INTEGER;\n";

/* Layout 6: the process that runs a job and its heartbeat, so that
 * servers sharing a store interrupt only the jobs whose runner is gone. */
static const char schema_v6[] = "ALTER TABLE jobs ADD COLUMN owner TEXT;\n"
                                "ALTER TABLE jobs ADD COLUMN heartbeat_ms INTEGER;\n";

/* Alias moves, as opposed to decisions that moved nothing. */
#define MOVES "('alias', 'promote', 'rollback')"

typedef struct sq {
    sqlite3 *db;
    char *path;          /* the store as the caller named it, for messages; owned */
    int read_only;       /* opened with opts.read_only */
    int busy_timeout_ms; /* budget for waiting on other writers */
    int test_pause_ms;   /* tests: sleep after the first write of a transaction */
    int bulk_log;        /* the prediction log writer: synchronous=NORMAL, larger cache */
    int in_write;        /* inside the body of a write transaction */
    int paused;          /* the test pause was taken in this transaction */
    int busy;            /* the last failure was SQLITE_BUSY or SQLITE_LOCKED */
    uint64_t rnd;        /* state for retry jitter */
    sqlite3_stmt *pred;  /* the prediction insert, prepared on first use; owned */
} sq;

static ch_err chain_audit(sq *s, ch_error *err);

/* migrations[i] brings layout i to i + 1: a script, then a step in C
 * (may be NULL) for what SQL alone cannot do. */
static const struct migration {
    const char *script;
    ch_err (*step)(sq *s, ch_error *err);
} migrations[LAYOUT] = {
    {schema_v1, NULL}, {schema_v2, chain_audit}, {schema_v3, NULL},
    {schema_v4, NULL}, {schema_v5, NULL},        {schema_v6, NULL},
};

/* ---- SQLite's memory through ch_malloc --------------------------------- */

/* Each block carries its size in a 16-byte header: SQLite's xSize needs
 * it, and 16 bytes keep the alignment malloc gives. */
#define HDR 16

static void *mem_malloc(int n)
{
    unsigned char *p;
    size_t len = n > 0 ? (size_t)n : 0;
    p = ch_malloc(len + HDR);
    if (p == NULL)
        return NULL;
    memcpy(p, &len, sizeof len);
    return p + HDR;
}

static void mem_free(void *p)
{
    if (p != NULL)
        ch_free((unsigned char *)p - HDR);
}

static void *mem_realloc(void *p, int n)
{
    unsigned char *q;
    size_t len = n > 0 ? (size_t)n : 0;
    if (p == NULL)
        return mem_malloc(n);
    q = ch_realloc((unsigned char *)p - HDR, len + HDR);
    if (q == NULL)
        return NULL;
    memcpy(q, &len, sizeof len);
    return q + HDR;
}

static int mem_size(void *p)
{
    size_t len;
    if (p == NULL)
        return 0;
    memcpy(&len, (unsigned char *)p - HDR, sizeof len);
    return (int)len;
}

static int mem_roundup(int n)
{
    return n > INT_MAX - 7 ? n : (n + 7) & ~7;
}

static int mem_init(void *app)
{
    (void)app;
    return SQLITE_OK;
}

static void mem_shutdown(void *app)
{
    (void)app;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Hands SQLite our allocator before it starts. This is process-wide
 * state, which the style keeps out of callers' sight: it is set once,
 * here, and only changes where SQLite's memory comes from. If something
 * else in the process started SQLite first, sqlite3_config() refuses
 * (SQLITE_MISUSE) and SQLite keeps the system allocator, which is also
 * correct; only fault injection then stops at SQLite's boundary. */
static void init_sqlite(void)
{
    static const sqlite3_mem_methods methods = {mem_malloc,  mem_free, mem_realloc,  mem_size,
                                                mem_roundup, mem_init, mem_shutdown, NULL};
    (void)sqlite3_config(SQLITE_CONFIG_MALLOC, &methods);
}

/* ---- time -------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- errors and statements --------------------------------------------- */

/* Translates SQLite result 'rc' from the call just made into a ch_err,
 * copying sqlite3_errmsg() before anything can replace it. 'what' says
 * what the store was doing. */
static ch_err db_fail(sq *s, int rc, const char *what, ch_error *err)
{
    int prim = rc & 0xff;
    s->busy = prim == SQLITE_BUSY || prim == SQLITE_LOCKED;
    if (prim == SQLITE_NOMEM)
        return ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
    return ch_error_set(err, s->busy ? CH_EBUSY : CH_EDB, "%s: %s: %s", s->path, what,
                        sqlite3_errmsg(s->db));
}

/* Prepares the first statement of 'sql' ('*tail' gets the rest, may be
 * NULL) and binds parameters ?1, ?2, ... from the arguments, one per
 * character of 'types':
 *   t  const char *   (NULL binds NULL)
 *   i  int64_t
 *   I  int64_t        (0 binds NULL: "no version")
 *   d  double         (NaN binds NULL, as SQLite does)
 * '*out' may be NULL on success when 'sql' held only whitespace. */
static ch_err vprep(sq *s, sqlite3_stmt **out, const char **tail, const char *what, ch_error *err,
                    const char *sql, const char *types, va_list ap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, tail);
    int i;

    if (rc != SQLITE_OK)
        return db_fail(s, rc, what, err);
    for (i = 0; types[i] != '\0'; i++) {
        int k = i + 1;
        switch (types[i]) {
        case 't': {
            const char *v = va_arg(ap, const char *);
            rc = v != NULL ? sqlite3_bind_text(st, k, v, -1, SQLITE_STATIC)
                           : sqlite3_bind_null(st, k);
            break;
        }
        case 'i':
            rc = sqlite3_bind_int64(st, k, va_arg(ap, int64_t));
            break;
        case 'I': {
            int64_t v = va_arg(ap, int64_t);
            rc = v != 0 ? sqlite3_bind_int64(st, k, v) : sqlite3_bind_null(st, k);
            break;
        }
        case 'd':
            rc = sqlite3_bind_double(st, k, va_arg(ap, double));
            break;
        default:
            ch_panic("registry: bad bind type '%c'", types[i]);
        }
        if (rc != SQLITE_OK) {
            ch_err e = db_fail(s, rc, what, err);
            sqlite3_finalize(st);
            return e;
        }
    }
    *out = st;
    return CH_OK;
}

static ch_err prep(sq *s, sqlite3_stmt **out, const char *what, ch_error *err, const char *sql,
                   const char *types, ...)
{
    va_list ap;
    ch_err rc;
    va_start(ap, types);
    rc = vprep(s, out, NULL, what, err, sql, types, ap);
    va_end(ap);
    return rc;
}

/* Steps 'st': '*row' is 1 for a row, 0 when done. In a write transaction
 * with opts.test_pause_ms set, sleeps after the transaction's first
 * statement that wrote, so a test can kill the process with a change
 * pending. */
static ch_err step(sq *s, sqlite3_stmt *st, int *row, const char *what, ch_error *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *row = 1;
        return CH_OK;
    }
    if (rc != SQLITE_DONE)
        return db_fail(s, rc, what, err);
    *row = 0;
    if (s->in_write && !s->paused && s->test_pause_ms > 0 && !sqlite3_stmt_readonly(st)) {
        s->paused = 1;
        sleep_ms(s->test_pause_ms);
    }
    return CH_OK;
}

/* Runs a statement that returns no rows worth reading. */
static ch_err exec(sq *s, const char *what, ch_error *err, const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    ch_err rc;
    int row = 1;

    va_start(ap, types);
    rc = vprep(s, &st, NULL, what, err, sql, types, ap);
    va_end(ap);
    while (rc == CH_OK && row)
        rc = step(s, st, &row, what, err);
    sqlite3_finalize(st);
    return rc;
}

/* Like prep() for the first statement of 'sql', with '*tail' set to the
 * rest. */
static ch_err prep_tail(sq *s, sqlite3_stmt **out, const char **tail, const char *what,
                        ch_error *err, const char *sql, const char *types, ...)
{
    va_list ap;
    ch_err rc;
    va_start(ap, types);
    rc = vprep(s, out, tail, what, err, sql, types, ap);
    va_end(ap);
    return rc;
}

/* Runs every statement of 'script' (no parameters) in order. */
static ch_err exec_script(sq *s, const char *what, ch_error *err, const char *script)
{
    const char *sql = script;
    ch_err rc = CH_OK;

    while (rc == CH_OK && sql != NULL && sql[0] != '\0') {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        int row = 1;
        rc = prep_tail(s, &st, &tail, what, err, sql, "");
        while (rc == CH_OK && st != NULL && row)
            rc = step(s, st, &row, what, err);
        sqlite3_finalize(st);
        sql = tail;
    }
    return rc;
}

/* Runs a query and reads the first column of its first row as an integer.
 * '*found' is 0 when there is no row or the value is NULL. */
static ch_err query_i64(sq *s, int64_t *out, int *found, const char *what, ch_error *err,
                        const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    ch_err rc;
    int row = 0;

    va_start(ap, types);
    rc = vprep(s, &st, NULL, what, err, sql, types, ap);
    va_end(ap);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    *found = 0;
    if (rc == CH_OK && row && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(st, 0);
        *found = 1;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Like query_i64() for a text value, copied into 'out' ('cap' bytes, cut
 * if longer). */
static ch_err query_text(sq *s, char *out, size_t cap, int *found, const char *what, ch_error *err,
                         const char *sql, const char *types, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    ch_err rc;
    int row = 0;

    va_start(ap, types);
    rc = vprep(s, &st, NULL, what, err, sql, types, ap);
    va_end(ap);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    *found = 0;
    if (rc == CH_OK && row && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        } else {
            snprintf(out, cap, "%s", (const char *)t);
            *found = 1;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- transactions ------------------------------------------------------ */

typedef ch_err (*txn_body)(sq *s, void *ctx, ch_error *err);

/* Rolls back whatever transaction is open, ignoring errors: after a
 * failure there is nothing better to do, and SQLite rolls back on close
 * if even this fails. */
static void abandon(sq *s)
{
    if (!sqlite3_get_autocommit(s->db))
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Runs 'attempt' again while it fails because the store is busy, with
 * growing, jittered sleeps, until busy_timeout_ms is spent; then the
 * error is CH_EBUSY. sqlite3_busy_timeout() already waits inside most
 * calls; this loop covers the cases where SQLite returns busy at once to
 * avoid a deadlock (a connection holding a read lock that needs the
 * write lock, as a journal mode change does), or while another
 * connection recovers the WAL. */
static ch_err with_retry(sq *s, txn_body attempt, void *ctx, const char *what, ch_error *err)
{
    int64_t deadline = now_ms() + s->busy_timeout_ms;
    int delay_ms = 1;
    ch_err rc;

    for (;;) {
        s->busy = 0;
        rc = attempt(s, ctx, err);
        if (rc == CH_OK || !s->busy || now_ms() >= deadline)
            break;
        s->rnd = s->rnd * 6364136223846793005ull + 1442695040888963407ull;
        sleep_ms(delay_ms + (int)((s->rnd >> 33) % (uint64_t)delay_ms));
        delay_ms = delay_ms < 64 ? delay_ms * 2 : 100;
    }
    if (rc != CH_OK && s->busy)
        return ch_error_set(err, CH_EBUSY,
                            "%s: %s: another process held the store for more than %d ms", s->path,
                            what, s->busy_timeout_ms);
    return rc;
}

typedef struct txn_ctx {
    int write;
    txn_body body;
    void *ctx;
    const char *what;
} txn_ctx;

/* One attempt at a transaction; on failure nothing of it remains. */
static ch_err txn_attempt(sq *s, void *vc, ch_error *err)
{
    txn_ctx *t = vc;
    ch_err rc;

    abandon(s);
    rc = exec(s, t->what, err, t->write ? "BEGIN IMMEDIATE" : "BEGIN", "");
    if (rc == CH_OK) {
        s->in_write = t->write;
        s->paused = 0;
        rc = t->body(s, t->ctx, err);
        s->in_write = 0;
        if (rc == CH_OK)
            rc = exec(s, t->what, err, "COMMIT", "");
    }
    if (rc != CH_OK)
        abandon(s);
    return rc;
}

/* Runs 'body' in one transaction, retried whole while the store is busy:
 * BEGIN IMMEDIATE for a write, so the write lock is held before anything
 * is read; a plain BEGIN (one consistent snapshot) for a read. */
static ch_err txn(sq *s, int write, txn_body body, void *ctx, const char *what, ch_error *err)
{
    txn_ctx t = {write, body, ctx, what};
    if (write && s->read_only)
        return ch_error_set(err, CH_EDB, "%s: %s: the store is open read-only", s->path, what);
    return with_retry(s, txn_attempt, &t, what, err);
}

/* ---- shared steps ------------------------------------------------------ */

static ch_err alias_get(sq *s, const char *name, int64_t *version, ch_error *err)
{
    int found = 0;
    ch_err rc = query_i64(s, version, &found, "reading an alias", err,
                          "SELECT version FROM aliases WHERE name = ?1", "t", name);
    if (rc == CH_OK && !found)
        *version = 0;
    return rc;
}

static ch_err alias_set(sq *s, const char *name, int64_t version, ch_error *err)
{
    return exec(s, "moving an alias", err,
                "INSERT INTO aliases(name, version) VALUES (?1, ?2) "
                "ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                "ti", name, version);
}

/* The audit head: the number of entries and the last one's id and hash.
 * A store without a head row (only possible by hand) reads as an empty
 * log, so the next entry starts a new chain and verification reports the
 * break. */
typedef struct audit_head {
    int64_t n;
    int64_t last_id;
    char last_hash[65];
    int found; /* the head row exists */
} audit_head;

static ch_err read_head(sq *s, audit_head *h, ch_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *what = "reading the audit head";
    int row = 0;
    ch_err rc = prep(s, &st, what, err,
                     "SELECT n_entries, last_id, last_hash FROM audit_head WHERE id = 1", "");
    h->n = 0;
    h->last_id = 0;
    memcpy(h->last_hash, CH__AUDIT_GENESIS, 65);
    h->found = 0;
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && row) {
        const char *t = (const char *)sqlite3_column_text(st, 2);
        h->n = sqlite3_column_int64(st, 0);
        h->last_id = sqlite3_column_int64(st, 1);
        h->found = 1;
        if (t == NULL && sqlite3_column_type(st, 2) != SQLITE_NULL)
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        else if (t != NULL)
            snprintf(h->last_hash, sizeof h->last_hash, "%s", t);
    }
    sqlite3_finalize(st);
    return rc;
}

static void i64_text(char out[24], int64_t v)
{
    snprintf(out, 24, "%lld", (long long)v);
}

/* Appends an audit row. Its time is the later of now and the previous
 * row's, so times never decrease with the id. 'from'/'to' 0 mean none.
 * The row links to the head's hash and takes the next id explicitly
 * (past the head, the largest id and AUTOINCREMENT's counter), because
 * the id is part of what its hash covers. */
static ch_err audit_add(sq *s, const char *actor, const char *action, const char *alias,
                        int64_t from, int64_t to, const char *target, const char *reason,
                        const char *details, ch_error *err)
{
    const char *what = "writing the audit log";
    char at[CH__REGISTRY_TS_LEN];
    char last[CH__REGISTRY_TS_LEN];
    char id_s[24];
    char from_s[24];
    char to_s[24];
    char hash[65];
    audit_head h;
    ch__audit_entry e;
    int64_t top = 0;
    int64_t id;
    int found = 0;
    ch_err rc;

    ch__registry_now(at);
    rc = query_text(s, last, sizeof last, &found, what, err,
                    "SELECT at FROM audit ORDER BY id DESC LIMIT 1", "");
    if (rc != CH_OK)
        return rc;
    if (found && strcmp(last, at) > 0)
        memcpy(at, last, sizeof at);
    rc = read_head(s, &h, err);
    if (rc == CH_OK)
        rc = query_i64(s, &top, &found, what, err,
                       "SELECT MAX(COALESCE((SELECT MAX(id) FROM audit), 0), "
                       "COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0))",
                       "");
    if (rc != CH_OK)
        return rc;
    id = (top > h.last_id ? top : h.last_id) + 1;
    i64_text(id_s, id);
    i64_text(from_s, from);
    i64_text(to_s, to);
    e.id = id_s;
    e.at = at;
    e.actor = actor;
    e.action = action;
    e.alias = alias;
    e.from_version = from != 0 ? from_s : NULL;
    e.to_version = to != 0 ? to_s : NULL;
    e.target = target;
    e.reason = reason;
    e.details = details;
    rc = ch__audit_hash(h.last_hash, &e, hash, err);
    if (rc != CH_OK)
        return rc;
    rc = exec(s, what, err,
              "INSERT INTO audit(id, at, actor, action, alias, from_version, to_version, target, "
              "reason, details_json, prev_hash, hash) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
              "ittttIIttttt", id, at, actor, action, alias, from, to, target, reason, details,
              h.last_hash, hash);
    if (rc == CH_OK)
        rc =
            exec(s, what, err,
                 "INSERT INTO audit_head(id, n_entries, last_id, last_hash) VALUES (1, ?1, ?2, ?3) "
                 "ON CONFLICT(id) DO UPDATE SET n_entries = excluded.n_entries, "
                 "last_id = excluded.last_id, last_hash = excluded.last_hash",
                 "iit", h.n + 1, id, hash);
    return rc;
}

static ch_err need_row(sq *s, const char *sql, int64_t id, const char *noun, ch_error *err)
{
    int64_t one = 0;
    int found = 0;
    ch_err rc = query_i64(s, &one, &found, "looking up a row", err, sql, "i", id);
    if (rc == CH_OK && !found)
        rc = ch_error_set(err, CH_ENOTFOUND, "%s: no %s %lld", s->path, noun, (long long)id);
    return rc;
}

static ch_err need_run(sq *s, int64_t run_id, ch_error *err)
{
    return need_row(s, "SELECT 1 FROM runs WHERE id = ?1", run_id, "run", err);
}

static ch_err need_version(sq *s, int64_t version, ch_error *err)
{
    return need_row(s, "SELECT 1 FROM model_versions WHERE version = ?1", version, "model version",
                    err);
}

/* ---- the audit chain ---------------------------------------------------- */

/* The columns an audit row is hashed from, then its stored links. */
#define CHAIN_COLS                                                                                 \
    "id, at, actor, action, alias, from_version, to_version, target, reason, details_json, "       \
    "prev_hash, hash"

/* Reads the current row of a CHAIN_COLS statement: the entry as it is
 * hashed, and the stored 'prev_hash' and 'hash' (NULL when absent). The
 * texts are SQLite's, valid until the next step. */
static ch_err chain_row(sq *s, sqlite3_stmt *st, ch__audit_entry *e, const char **prev,
                        const char **hash, ch_error *err)
{
    const char *v[12];
    int i;
    for (i = 0; i < 12; i++) {
        v[i] = NULL;
        if (sqlite3_column_type(st, i) == SQLITE_NULL)
            continue;
        v[i] = (const char *)sqlite3_column_text(st, i);
        if (v[i] == NULL)
            return ch_error_set(err, CH_ENOMEM, "%s: reading the audit log: out of memory",
                                s->path);
    }
    e->id = v[0];
    e->at = v[1];
    e->actor = v[2];
    e->action = v[3];
    e->alias = v[4];
    e->from_version = v[5];
    e->to_version = v[6];
    e->target = v[7];
    e->reason = v[8];
    e->details = v[9];
    *prev = v[10];
    *hash = v[11];
    return CH_OK;
}

/* Layout 2's step: links the rows a layout-1 store already holds, in id
 * order, and writes the head. The update trigger is dropped for the
 * length of this transaction only. Rows are read one statement at a time
 * ("the next id after") rather than through one open cursor over the
 * table being updated. */
static ch_err chain_audit(sq *s, ch_error *err)
{
    const char *what = "chaining the audit log";
    char running[65] = CH__AUDIT_GENESIS;
    int64_t last = 0;
    int64_t n = 0;
    ch_err rc = exec(s, what, err, "DROP TRIGGER audit_no_update", "");

    while (rc == CH_OK) {
        sqlite3_stmt *st = NULL;
        ch__audit_entry e;
        const char *prev = NULL;
        const char *hash = NULL;
        char h[65];
        int row = 0;
        rc = prep(s, &st, what, err,
                  "SELECT " CHAIN_COLS " FROM audit WHERE id > ?1 ORDER BY id LIMIT 1", "i", last);
        if (rc == CH_OK)
            rc = step(s, st, &row, what, err);
        if (rc == CH_OK && row)
            rc = chain_row(s, st, &e, &prev, &hash, err);
        if (rc == CH_OK && row)
            rc = ch__audit_hash(running, &e, h, err);
        if (rc == CH_OK && row)
            last = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (rc != CH_OK || !row)
            break;
        rc = exec(s, what, err, "UPDATE audit SET prev_hash = ?2, hash = ?3 WHERE id = ?1", "itt",
                  last, running, h);
        memcpy(running, h, sizeof running);
        n++;
    }
    if (rc == CH_OK)
        rc = exec_script(s, what, err, AUDIT_NO_UPDATE);
    if (rc == CH_OK)
        rc =
            exec(s, what, err,
                 "INSERT INTO audit_head(id, n_entries, last_id, last_hash) VALUES (1, ?1, ?2, ?3)",
                 "iit", n, last, running);
    return rc;
}

/* The outcome of walking the chain. */
typedef struct chain_walk {
    int64_t n;     /* entries read */
    int64_t bad;   /* first bad entry when broken (0: the head alone) */
    int broken;    /* 1: the chain does not hold */
    char why[200]; /* what is wrong, naming the entry */
} chain_walk;

/* Walks the audit log in id order, recomputing every hash, then compares
 * the head. Fills 'w'; returns an error only when the store fails. */
static ch_err walk_chain(sq *s, chain_walk *w, ch_error *err)
{
    const char *what = "verifying the audit log";
    sqlite3_stmt *st = NULL;
    char running[65] = CH__AUDIT_GENESIS;
    int64_t prev_id = 0;
    audit_head h;
    int row = 1;
    ch_err rc;

    memset(w, 0, sizeof *w);
    rc = prep(s, &st, what, err, "SELECT " CHAIN_COLS " FROM audit ORDER BY id", "");
    while (rc == CH_OK) {
        ch__audit_entry e;
        const char *prev = NULL;
        const char *hash = NULL;
        char mine[65];
        int64_t id;
        rc = step(s, st, &row, what, err);
        if (rc != CH_OK || !row)
            break;
        id = sqlite3_column_int64(st, 0);
        w->n++;
        rc = chain_row(s, st, &e, &prev, &hash, err);
        if (rc != CH_OK)
            break;
        if (prev == NULL || strcmp(prev, running) != 0) {
            w->broken = 1;
            w->bad = id;
            if (prev_id == 0)
                snprintf(w->why, sizeof w->why,
                         "entry %lld is the first but does not start the chain (entries before "
                         "it were removed, or it was changed)",
                         (long long)id);
            else
                snprintf(w->why, sizeof w->why,
                         "entry %lld does not follow entry %lld (an entry between them was "
                         "removed, or one of them was changed)",
                         (long long)id, (long long)prev_id);
            break;
        }
        rc = ch__audit_hash(prev, &e, mine, err);
        if (rc != CH_OK)
            break;
        if (hash == NULL || strcmp(hash, mine) != 0) {
            w->broken = 1;
            w->bad = id;
            snprintf(w->why, sizeof w->why,
                     "entry %lld was changed after it was written (its hash does not match its "
                     "content)",
                     (long long)id);
            break;
        }
        memcpy(running, hash, sizeof running);
        prev_id = id;
    }
    sqlite3_finalize(st);
    if (rc != CH_OK || w->broken)
        return rc;
    rc = read_head(s, &h, err);
    if (rc != CH_OK)
        return rc;
    if (!h.found) {
        w->broken = 1;
        w->bad = 0;
        snprintf(w->why, sizeof w->why, "the audit head row is missing");
    } else if (h.n != w->n || h.last_id != prev_id || strcmp(h.last_hash, running) != 0) {
        w->broken = 1;
        if (h.n > w->n) {
            w->bad = prev_id + 1;
            snprintf(w->why, sizeof w->why,
                     "the log ends at entry %lld with %lld entries, but its head records %lld "
                     "entries ending at entry %lld (entries were removed from the end)",
                     (long long)prev_id, (long long)w->n, (long long)h.n, (long long)h.last_id);
        } else {
            w->bad = h.last_id < prev_id ? h.last_id + 1 : prev_id;
            snprintf(w->why, sizeof w->why,
                     "the log ends at entry %lld with %lld entries, but its head records %lld "
                     "entries ending at entry %lld (the head or the last entries were changed)",
                     (long long)prev_id, (long long)w->n, (long long)h.n, (long long)h.last_id);
        }
    }
    return CH_OK;
}

typedef struct verify_ctx {
    chain_walk w;
} verify_ctx;

static ch_err verify_body(sq *s, void *vc, ch_error *err)
{
    verify_ctx *c = vc;
    return walk_chain(s, &c->w, err);
}

static ch_err sq_audit_verify(void *be, int64_t *n, int64_t *first_bad, ch_error *err)
{
    sq *s = be;
    verify_ctx c;
    ch_err rc = txn(s, 0, verify_body, &c, "verifying the audit log", err);
    if (rc != CH_OK)
        return rc;
    *n = c.w.n;
    if (!c.w.broken)
        return CH_OK;
    *first_bad = c.w.bad;
    return ch_error_set(err, CH_EDATA, "%s: audit chain broken: %s", s->path, c.w.why);
}

typedef struct append_ctx {
    const char *actor;
    const char *action;
    const char *target;
    const char *details;
} append_ctx;

static ch_err append_body(sq *s, void *vc, ch_error *err)
{
    append_ctx *c = vc;
    return audit_add(s, c->actor, c->action, NULL, 0, 0, c->target, NULL, c->details, err);
}

static ch_err sq_audit_append(void *be, const char *actor, const char *action, const char *target,
                              const char *details_json, ch_error *err)
{
    append_ctx c = {actor, action, target, details_json};
    return txn(be, 1, append_body, &c, "writing the audit log", err);
}

/* ---- open, layout, close ----------------------------------------------- */

static ch_err migrate_body(sq *s, void *ctx, ch_error *err)
{
    int64_t layout = 0;
    int64_t n = 0;
    int found = 0;
    char sql[64];
    ch_err rc;

    (void)ctx;
    rc = query_i64(s, &layout, &found, "reading the store layout", err, "PRAGMA user_version", "");
    if (rc != CH_OK)
        return rc;
    if (layout > LAYOUT)
        return ch_error_set(err, CH_EDB,
                            "%s: the store has layout %lld, newer than this build knows (%d); "
                            "use a newer churn",
                            s->path, (long long)layout, LAYOUT);
    if (layout == 0) {
        rc = query_i64(s, &n, &found, "reading the store layout", err,
                       "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite%'", "");
        if (rc != CH_OK)
            return rc;
        if (n > 0)
            return ch_error_set(err, CH_EDB,
                                "%s: not a churn registry (it holds other tables and no layout "
                                "number)",
                                s->path);
    }
    for (; layout < LAYOUT; layout++) {
        rc = exec_script(s, "creating the store layout", err, migrations[layout].script);
        if (rc == CH_OK && migrations[layout].step != NULL)
            rc = migrations[layout].step(s, err);
        if (rc != CH_OK)
            return rc;
    }
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", LAYOUT);
    return exec(s, "recording the store layout", err, sql, "");
}

/* Checks the store's 'layout' and brings an older one up to date
 * (read-write only). */
static ch_err open_layout(sq *s, int64_t layout, ch_error *err)
{
    if (layout > LAYOUT)
        return ch_error_set(err, CH_EDB,
                            "%s: the store has layout %lld, newer than this build knows (%d); "
                            "use a newer churn",
                            s->path, (long long)layout, LAYOUT);
    if (layout == LAYOUT)
        return CH_OK;
    if (s->read_only) {
        if (layout == 0)
            return ch_error_set(err, CH_EDB, "%s: not a churn registry (no layout number)",
                                s->path);
        return ch_error_set(err, CH_EDB,
                            "%s: the store has the older layout %lld; open it read-write once "
                            "to upgrade it",
                            s->path, (long long)layout);
    }
    return txn(s, 1, migrate_body, NULL, "creating the store layout", err);
}

/* Connection settings. WAL lets readers run beside a writer; FULL
 * synchronous makes each commit durable across power loss, which an audit
 * log wants and a few writes per run can afford. A file system without
 * WAL support (some network mounts) keeps its journal mode: locking stays
 * correct, only readers then wait for writers. */
/* Reads the file, sets the connection up and reads the layout number
 * into '*ctx' (an int64_t). */
static ch_err settings_attempt(sq *s, void *ctx, ch_error *err)
{
    int64_t n = 0;
    int found = 0;
    char mode[16];
    ch_err rc;

    /* The first statement reads the file: a corrupt one fails here. */
    rc = query_i64(s, &n, &found, "reading the store", err, "SELECT count(*) FROM sqlite_master",
                   "");
    if (rc == CH_OK)
        rc = exec(s, "configuring the store", err, "PRAGMA foreign_keys = ON", "");
    if (rc == CH_OK && !s->read_only)
        rc = query_text(s, mode, sizeof mode, &found, "switching to WAL mode", err,
                        "PRAGMA journal_mode = WAL", "");
    if (rc == CH_OK && !s->read_only)
        rc = exec(s, "configuring the store", err,
                  s->bulk_log ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL", "");
    if (rc == CH_OK && s->bulk_log)
        rc = exec(s, "configuring the store", err, "PRAGMA cache_size = -8192", "");
    /* A long read (a monitoring job over a million predictions) holds the
     * WAL from being reset while the log writer goes on appending, and
     * the file keeps the size it reached: cut it back to 64 MB at the next
     * checkpoint that can. */
    if (rc == CH_OK && !s->read_only)
        rc = exec(s, "configuring the store", err, "PRAGMA journal_size_limit = 67108864", "");
    if (rc == CH_OK)
        rc = query_i64(s, ctx, &found, "reading the store layout", err, "PRAGMA user_version", "");
    return rc;
}

static ch_err configure(sq *s, ch_error *err)
{
    int64_t layout = 0;
    ch_err rc = with_retry(s, settings_attempt, &layout, "opening the store", err);
    if (rc == CH_OK)
        rc = open_layout(s, layout, err);
    return rc;
}

static void sq_close(void *be)
{
    sq *s = be;
    if (s == NULL)
        return;
    if (s->db != NULL) {
        abandon(s);
        sqlite3_finalize(s->pred);
        sqlite3_close_v2(s->db);
    }
    ch_free(s->path);
    ch_free(s);
}

/* Opens the SQLite file 'target'. A name that starts with "file:" gets
 * "./" in front: this SQLite is built to read such names as URIs, and a
 * plain path must stay a path. */
static ch_err sq_open(const char *target, const ch_registry_opts *o, void **out, ch_error *err)
{
    sq *s;
    char *name = NULL;
    int flags;
    int rc;
    ch_err e = CH_OK;

    s = ch_calloc(1, sizeof *s);
    if (s == NULL)
        return ch_error_set(err, CH_ENOMEM, "%s: out of memory opening the store", target);
    s->read_only = o->read_only != 0;
    s->busy_timeout_ms = o->busy_timeout_ms;
    s->test_pause_ms = o->test_pause_ms;
    s->bulk_log = o->bulk_log != 0;
    s->rnd = (uint64_t)(uintptr_t)s ^ (uint64_t)now_ms();
    s->path = ch_strdup(target);
    if (s->path == NULL) {
        e = ch_error_set(err, CH_ENOMEM, "%s: out of memory opening the store", target);
        goto fail;
    }
    pthread_once(&init_once, init_sqlite);
    rc = sqlite3_initialize();
    if (rc != SQLITE_OK) {
        e = ch_error_set(err, (rc & 0xff) == SQLITE_NOMEM ? CH_ENOMEM : CH_EDB,
                         "%s: cannot start SQLite: %s", target, sqlite3_errstr(rc));
        goto fail;
    }
    if (strncmp(target, "file:", 5) == 0) {
        size_t len = strlen(target);
        name = ch_malloc(len + 3);
        if (name == NULL) {
            e = ch_error_set(err, CH_ENOMEM, "%s: out of memory opening the store", target);
            goto fail;
        }
        memcpy(name, "./", 2);
        memcpy(name + 2, target, len + 1);
    }
    flags = s->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    /* One handle per thread (registry.h), so SQLite's per-connection
     * mutex would only cost time. */
    flags |= SQLITE_OPEN_NOMUTEX;
    rc = sqlite3_open_v2(name != NULL ? name : target, &s->db, flags, NULL);
    ch_free(name);
    if (rc != SQLITE_OK) {
        e = ch_error_set(err, (rc & 0xff) == SQLITE_NOMEM ? CH_ENOMEM : CH_EDB,
                         "%s: cannot open the store: %s", target,
                         s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, s->busy_timeout_ms);
    if (!s->read_only && sqlite3_db_readonly(s->db, "main") == 1) {
        e = ch_error_set(err, CH_EDB,
                         "%s: the store is not writable (open it read-only to read it)", target);
        goto fail;
    }
    e = configure(s, err);
    if (e != CH_OK)
        goto fail;
    *out = s;
    return CH_OK;
fail:
    sq_close(s);
    return e;
}

/* ---- runs and datasets ------------------------------------------------- */

typedef struct ds_ctx {
    const char *sha256;
    const char *path;
    int64_t n_rows;
} ds_ctx;

static ch_err ds_body(sq *s, void *vc, ch_error *err)
{
    ds_ctx *c = vc;
    char now[CH__REGISTRY_TS_LEN];
    ch__registry_now(now);
    return exec(s, "recording a dataset", err,
                "INSERT INTO datasets(sha256, path, n_rows, first_seen) VALUES (?1, ?2, ?3, ?4) "
                "ON CONFLICT(sha256) DO NOTHING",
                "ttit", c->sha256, c->path, c->n_rows, now);
}

static ch_err sq_add_dataset(void *be, const char *sha256, const char *path, int64_t n_rows,
                             ch_error *err)
{
    ds_ctx c = {sha256, path, n_rows};
    return txn(be, 1, ds_body, &c, "recording a dataset", err);
}

typedef struct run_ctx {
    int64_t id;
    const char *dataset;
    const char *config;
    const char *lineage;
    const char *status;
    const char *summary;
    double seconds;
    const char *scope;
    const char *name;
    double value;
    const char *kind;
    const char *path;
    const char *sha256;
} run_ctx;

static ch_err run_begin_body(sq *s, void *vc, ch_error *err)
{
    run_ctx *c = vc;
    char now[CH__REGISTRY_TS_LEN];
    int64_t one = 0;
    int found = 0;
    ch_err rc;

    if (c->dataset != NULL) {
        rc = query_i64(s, &one, &found, "looking up a dataset", err,
                       "SELECT 1 FROM datasets WHERE sha256 = ?1", "t", c->dataset);
        if (rc != CH_OK)
            return rc;
        if (!found)
            return ch_error_set(err, CH_ENOTFOUND, "%s: no dataset %.16s... (add it first)",
                                s->path, c->dataset);
    }
    ch__registry_now(now);
    rc = exec(s, "starting a run", err,
              "INSERT INTO runs(started, status, dataset_sha256, config_json, lineage_json) "
              "VALUES (?1, 'running', ?2, ?3, ?4)",
              "tttt", now, c->dataset, c->config, c->lineage);
    if (rc == CH_OK)
        c->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static ch_err sq_run_begin(void *be, const char *dataset_sha256, const char *config_json,
                           const char *lineage_json, int64_t *run_id, ch_error *err)
{
    run_ctx c = {0};
    ch_err rc;
    c.dataset = dataset_sha256;
    c.config = config_json;
    c.lineage = lineage_json;
    rc = txn(be, 1, run_begin_body, &c, "starting a run", err);
    if (rc == CH_OK)
        *run_id = c.id;
    return rc;
}

static ch_err run_metric_body(sq *s, void *vc, ch_error *err)
{
    run_ctx *c = vc;
    ch_err rc = need_run(s, c->id, err);
    if (rc != CH_OK)
        return rc;
    /* The same metric recorded twice (a retried step) keeps the last value. */
    return exec(s, "recording a metric", err,
                "INSERT INTO metrics(run_id, scope, name, value) VALUES (?1, ?2, ?3, ?4) "
                "ON CONFLICT(run_id, scope, name) DO UPDATE SET value = excluded.value",
                "ittd", c->id, c->scope, c->name, c->value);
}

static ch_err sq_run_metric(void *be, int64_t run_id, const char *scope, const char *name,
                            double value, ch_error *err)
{
    run_ctx c = {0};
    c.id = run_id;
    c.scope = scope;
    c.name = name;
    c.value = value;
    return txn(be, 1, run_metric_body, &c, "recording a metric", err);
}

static ch_err run_end_body(sq *s, void *vc, ch_error *err)
{
    run_ctx *c = vc;
    char status[16];
    char now[CH__REGISTRY_TS_LEN];
    int found = 0;
    ch_err rc;

    rc = query_text(s, status, sizeof status, &found, "ending a run", err,
                    "SELECT status FROM runs WHERE id = ?1", "i", c->id);
    if (rc != CH_OK)
        return rc;
    if (!found)
        return ch_error_set(err, CH_ENOTFOUND, "%s: no run %lld", s->path, (long long)c->id);
    if (strcmp(status, "running") != 0)
        return ch_error_set(err, CH_EINVAL, "%s: run %lld has already ended (%s)", s->path,
                            (long long)c->id, status);
    ch__registry_now(now);
    return exec(s, "ending a run", err,
                "UPDATE runs SET ended = ?2, status = ?3, seconds = ?4, summary_json = ?5 "
                "WHERE id = ?1",
                "ittdt", c->id, now, c->status, c->seconds, c->summary);
}

static ch_err sq_run_end(void *be, int64_t run_id, const char *status, const char *summary_json,
                         double seconds, ch_error *err)
{
    run_ctx c = {0};
    c.id = run_id;
    c.status = status;
    c.summary = summary_json;
    c.seconds = seconds;
    return txn(be, 1, run_end_body, &c, "ending a run", err);
}

static ch_err artifact_body(sq *s, void *vc, ch_error *err)
{
    run_ctx *c = vc;
    char now[CH__REGISTRY_TS_LEN];
    ch_err rc = need_run(s, c->id, err);
    if (rc != CH_OK)
        return rc;
    ch__registry_now(now);
    return exec(s, "recording an artifact", err,
                "INSERT INTO artifacts(run_id, kind, path, sha256, created) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
                "itttt", c->id, c->kind, c->path, c->sha256, now);
}

static ch_err sq_add_artifact(void *be, int64_t run_id, const char *kind, const char *path,
                              const char *sha256, ch_error *err)
{
    run_ctx c = {0};
    c.id = run_id;
    c.kind = kind;
    c.path = path;
    c.sha256 = sha256;
    return txn(be, 1, artifact_body, &c, "recording an artifact", err);
}

/* ---- model versions and aliases ---------------------------------------- */

typedef struct reg_ctx {
    const ch__registration *reg;
    int64_t version; /* out */
} reg_ctx;

/* Registration: the version, its audit row, the challenger move and its
 * row, and, on a store without a champion, the champion move and its row.
 * The version number is read under the write lock, so concurrent writers
 * get distinct, gap-free numbers. */
static ch_err register_body(sq *s, void *vc, ch_error *err)
{
    reg_ctx *c = vc;
    const ch__registration *g = c->reg;
    char now[CH__REGISTRY_TS_LEN];
    int64_t v = 0;
    int64_t old = 0;
    int found = 0;
    ch_buf d;
    ch_err rc;

    rc = need_run(s, g->run_id, err);
    if (rc == CH_OK)
        rc = query_i64(s, &v, &found, "numbering a model version", err,
                       "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions", "");
    if (rc != CH_OK)
        return rc;
    ch__registry_now(now);
    rc = exec(s, "registering a model version", err,
              "INSERT INTO model_versions(version, run_id, family, bundle_path, bundle_sha256, "
              "metrics_json, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
              "iittttt", v, g->run_id, g->family, g->bundle_path, g->bundle_sha256, g->metrics_json,
              now);
    if (rc != CH_OK)
        return rc;

    ch_buf_init(&d, 1 << 16);
    ch_buf_printf(&d, "{\"run_id\":%lld,\"family\":", (long long)g->run_id);
    ch_buf_json_str(&d, g->family, strlen(g->family));
    ch_buf_puts(&d, ",\"bundle_sha256\":");
    ch_buf_json_str(&d, g->bundle_sha256, strlen(g->bundle_sha256));
    ch_buf_putc(&d, '}');
    if (ch_buf_status(&d) != CH_OK)
        return ch_error_set(err, CH_ENOMEM, "%s: out of memory writing the audit log", s->path);
    rc = audit_add(s, g->actor, "register", NULL, 0, v, NULL, g->reason, d.data, err);
    ch_buf_reset(&d);

    if (rc == CH_OK)
        rc = alias_get(s, CH__ALIAS_CHALLENGER, &old, err);
    if (rc == CH_OK)
        rc = alias_set(s, CH__ALIAS_CHALLENGER, v, err);
    if (rc == CH_OK)
        rc = audit_add(s, g->actor, "alias", CH__ALIAS_CHALLENGER, old, v, NULL, g->reason, NULL,
                       err);
    if (rc == CH_OK)
        rc = alias_get(s, CH__ALIAS_CHAMPION, &old, err);
    if (rc == CH_OK && old == 0) {
        rc = alias_set(s, CH__ALIAS_CHAMPION, v, err);
        if (rc == CH_OK)
            rc = audit_add(s, g->actor, "alias", CH__ALIAS_CHAMPION, 0, v, NULL, g->reason, NULL,
                           err);
    }
    if (rc == CH_OK)
        c->version = v;
    return rc;
}

static ch_err sq_register(void *be, const ch__registration *reg, int64_t *version, ch_error *err)
{
    reg_ctx c = {reg, 0};
    ch_err rc = txn(be, 1, register_body, &c, "registering a model version", err);
    if (rc == CH_OK)
        *version = c.version;
    return rc;
}

typedef struct promote_ctx {
    const ch_promotion *p;
    const char *actor;
    const char *reason;
    int64_t champion; /* out: the champion the gate compared against */
    int refused;      /* out: the gate failed and the refusal was audited */
} promote_ctx;

/* Promotion: the champion is read under the write lock, so the gate
 * decides on the state it changes. A refusal is committed too: its audit
 * row is the record that someone tried. Promoting the current champion
 * changes nothing and writes nothing (a retried call after a lost reply
 * must not create a from == to row, which rollback would follow to
 * itself). */
static ch_err promote_body(sq *s, void *vc, ch_error *err)
{
    promote_ctx *c = vc;
    const ch_promotion *p = c->p;
    int64_t champ = 0;
    ch_buf d;
    ch_err rc;

    c->refused = 0;
    rc = need_version(s, p->version, err);
    if (rc == CH_OK)
        rc = alias_get(s, CH__ALIAS_CHAMPION, &champ, err);
    if (rc != CH_OK)
        return rc;
    c->champion = champ;
    if (champ == p->version)
        return CH_OK;
    ch_buf_init(&d, 1 << 16);
    if (ch__registry_promotion_details(&d, p, champ) != CH_OK)
        return ch_error_set(err, CH_ENOMEM, "%s: out of memory writing the audit log", s->path);
    if (p->force || ch__registry_gate_passes(p, champ)) {
        rc = alias_set(s, CH__ALIAS_CHAMPION, p->version, err);
        if (rc == CH_OK)
            rc = audit_add(s, c->actor, "promote", CH__ALIAS_CHAMPION, champ, p->version, NULL,
                           c->reason, d.data, err);
    } else {
        rc = audit_add(s, c->actor, "promote-refused", CH__ALIAS_CHAMPION, champ, p->version, NULL,
                       c->reason, d.data, err);
        c->refused = 1;
    }
    ch_buf_reset(&d);
    return rc;
}

static ch_err sq_promote(void *be, const ch_promotion *p, const char *actor, const char *reason,
                         ch_error *err)
{
    promote_ctx c = {p, actor, reason, 0, 0};
    ch_err rc = txn(be, 1, promote_body, &c, "promoting a model version", err);
    if (rc == CH_OK && c.refused)
        return ch__registry_refused(err, p, c.champion);
    return rc;
}

typedef struct rollback_ctx {
    const char *actor;
    const char *reason;
    int64_t version; /* out */
} rollback_ctx;

/* Rollback follows the promotion that made the current champion: the
 * latest "promote" row whose 'to' is the champion names the version to
 * return to. Repeated rollbacks therefore walk back one promotion at a
 * time, and a champion restored by rollback walks back from its own
 * promotion. */
static ch_err rollback_body(sq *s, void *vc, ch_error *err)
{
    rollback_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "rolling back the champion";
    int64_t champ = 0;
    int64_t target = 0;
    int64_t audit_id = 0;
    int row = 0;
    char details[64];
    ch_err rc;

    rc = alias_get(s, CH__ALIAS_CHAMPION, &champ, err);
    if (rc != CH_OK)
        return rc;
    if (champ == 0)
        return ch_error_set(err, CH_ENOTFOUND, "%s: there is no champion to roll back", s->path);
    rc = prep(s, &st, what, err,
              "SELECT id, from_version FROM audit WHERE action = 'promote' AND to_version = ?1 "
              "ORDER BY id DESC LIMIT 1",
              "i", champ);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && row && sqlite3_column_type(st, 1) != SQLITE_NULL) {
        audit_id = sqlite3_column_int64(st, 0);
        target = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if (rc != CH_OK)
        return rc;
    if (target == 0)
        return ch_error_set(err, CH_ENOTFOUND,
                            "%s: champion v%lld was not made by a promotion from an earlier "
                            "champion; nothing to roll back to",
                            s->path, (long long)champ);
    rc = need_version(s, target, err);
    if (rc == CH_OK)
        rc = alias_set(s, CH__ALIAS_CHAMPION, target, err);
    snprintf(details, sizeof details, "{\"undoes_audit_id\":%lld}", (long long)audit_id);
    if (rc == CH_OK)
        rc = audit_add(s, c->actor, "rollback", CH__ALIAS_CHAMPION, champ, target, NULL, c->reason,
                       details, err);
    if (rc == CH_OK)
        c->version = target;
    return rc;
}

static ch_err sq_rollback(void *be, const char *actor, const char *reason, int64_t *version,
                          ch_error *err)
{
    rollback_ctx c = {actor, reason, 0};
    ch_err rc = txn(be, 1, rollback_body, &c, "rolling back the champion", err);
    if (rc == CH_OK)
        *version = c.version;
    return rc;
}

typedef struct resolve_ctx {
    const ch__registry_ref *ref;
    int64_t version; /* out */
    ch_buf *path;    /* out */
} resolve_ctx;

static ch_err resolve_body(sq *s, void *vc, ch_error *err)
{
    resolve_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "resolving a model version";
    int row = 0;
    ch_err rc;

    if (c->ref->alias != NULL)
        rc = prep(s, &st, what, err,
                  "SELECT m.version, m.bundle_path FROM aliases a "
                  "JOIN model_versions m ON m.version = a.version WHERE a.name = ?1",
                  "t", c->ref->alias);
    else
        rc = prep(s, &st, what, err,
                  "SELECT version, bundle_path FROM model_versions WHERE version = ?1", "i",
                  c->ref->version);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && !row) {
        if (c->ref->alias != NULL)
            rc = ch_error_set(err, CH_ENOTFOUND, "%s: alias \"%s\" is not set", s->path,
                              c->ref->alias);
        else
            rc = ch_error_set(err, CH_ENOTFOUND, "%s: no model version %lld", s->path,
                              (long long)c->ref->version);
    }
    if (rc == CH_OK) {
        const char *p = (const char *)sqlite3_column_text(st, 1);
        if (p == NULL)
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        else if (ch_buf_append(c->path, p, (size_t)sqlite3_column_bytes(st, 1)) != CH_OK)
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        c->version = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

static ch_err sq_resolve(void *be, const ch__registry_ref *ref, int64_t *version, ch_buf *path,
                         ch_error *err)
{
    resolve_ctx c = {ref, 0, path};
    ch_err rc = txn(be, 0, resolve_body, &c, "resolving a model version", err);
    if (rc == CH_OK)
        *version = c.version;
    return rc;
}

/* ---- JSON rendering ---------------------------------------------------- */

/* One JSON object being written from the current row of 'st'. 'rc' is
 * sticky: CH_ENOMEM when SQLite could not convert a value. */
typedef struct obj {
    ch_buf *b;
    sqlite3_stmt *st;
    int first;
    ch_err rc;
} obj;

static void obj_open(obj *o, ch_buf *b, sqlite3_stmt *st)
{
    o->b = b;
    o->st = st;
    o->first = 1;
    o->rc = CH_OK;
    ch_buf_putc(b, '{');
}

static const char *col_text(obj *o, int col, size_t *len)
{
    const char *t = (const char *)sqlite3_column_text(o->st, col);
    *len = (size_t)sqlite3_column_bytes(o->st, col);
    if (t == NULL)
        o->rc = CH_ENOMEM;
    return t;
}

static void o_text(obj *o, const char *key, int col)
{
    size_t len = 0;
    const char *t;
    ch__json_key(o->b, &o->first, key);
    if (sqlite3_column_type(o->st, col) == SQLITE_NULL) {
        ch_buf_puts(o->b, "null");
        return;
    }
    t = col_text(o, col, &len);
    if (t != NULL)
        ch_buf_json_str(o->b, t, len);
}

static void o_int(obj *o, const char *key, int col)
{
    ch__json_key(o->b, &o->first, key);
    if (sqlite3_column_type(o->st, col) == SQLITE_NULL)
        ch_buf_puts(o->b, "null");
    else
        ch__json_int(o->b, sqlite3_column_int64(o->st, col));
}

static void o_num(obj *o, const char *key, int col)
{
    ch__json_key(o->b, &o->first, key);
    if (sqlite3_column_type(o->st, col) == SQLITE_NULL)
        ch_buf_puts(o->b, "null");
    else
        ch_buf_json_num(o->b, sqlite3_column_double(o->st, col));
}

/* A stored JSON text, embedded as a value. */
static void o_json(obj *o, const char *key, int col)
{
    size_t len = 0;
    const char *t;
    ch__json_key(o->b, &o->first, key);
    if (sqlite3_column_type(o->st, col) == SQLITE_NULL) {
        ch_buf_puts(o->b, "null");
        return;
    }
    t = col_text(o, col, &len);
    if (t != NULL && ch__json_embed(o->b, t, len) == CH_ENOMEM)
        o->rc = CH_ENOMEM;
}

/* An integer column as true (non-zero) or false. */
static void o_bool(obj *o, const char *key, int col)
{
    ch__json_key(o->b, &o->first, key);
    ch_buf_puts(o->b, sqlite3_column_int64(o->st, col) != 0 ? "true" : "false");
}

/* A column of unix milliseconds as a timestamp, or null. */
static void o_ms_time(obj *o, const char *key, int col)
{
    char t[CH__REGISTRY_TS_LEN];
    ch__json_key(o->b, &o->first, key);
    if (sqlite3_column_type(o->st, col) == SQLITE_NULL) {
        ch_buf_puts(o->b, "null");
        return;
    }
    ch__registry_fmt_time(sqlite3_column_int64(o->st, col), t);
    ch_buf_json_str(o->b, t, strlen(t));
}

/* Ends an object; returns its sticky status, the buffer's included. */
static ch_err obj_close(obj *o)
{
    ch_buf_putc(o->b, '}');
    if (o->rc != CH_OK)
        return o->rc;
    return ch_buf_status(o->b);
}

/* Maps a rendering failure to an error message. */
static ch_err render_fail(sq *s, ch_err rc, ch_error *err)
{
    if (rc == CH_ELIMIT)
        return ch_error_set(err, rc, "%s: the listing exceeds the output buffer's cap", s->path);
    return ch_error_set(err, rc, "%s: out of memory rendering a listing", s->path);
}

/* Columns 0..6 of RUN_COLS, as a run's summary fields (no closing brace). */
#define RUN_COLS "id, started, ended, status, seconds, dataset_sha256, summary_json"

static void run_fields(obj *o)
{
    o_int(o, "id", 0);
    o_text(o, "started", 1);
    o_text(o, "ended", 2);
    o_text(o, "status", 3);
    o_num(o, "seconds", 4);
    o_text(o, "dataset", 5);
    o_json(o, "summary", 6);
}

typedef struct list_ctx {
    ch_buf *b;
    int64_t id;    /* run or version; 0 for whole lists */
    int64_t limit; /* -1: all */
} list_ctx;

/* Writes every row of 'st' as an object made by 'fields', comma
 * separated. */
static ch_err rows(sq *s, sqlite3_stmt *st, ch_buf *b, void (*fields)(obj *), const char *what,
                   ch_error *err)
{
    int row = 1;
    int n = 0;
    ch_err rc = CH_OK;

    for (;;) {
        obj o;
        rc = step(s, st, &row, what, err);
        if (rc != CH_OK || !row)
            break;
        if (n++ > 0)
            ch_buf_putc(b, ',');
        obj_open(&o, b, st);
        fields(&o);
        rc = obj_close(&o);
        if (rc != CH_OK) {
            rc = render_fail(s, rc, err);
            break;
        }
    }
    return rc;
}

/* Writes the rows of 'st' as one JSON array and finalizes 'st'. */
static ch_err array_rows(sq *s, sqlite3_stmt *st, ch_buf *b, void (*fields)(obj *),
                         const char *what, ch_error *err)
{
    ch_err rc;
    ch_buf_putc(b, '[');
    rc = rows(s, st, b, fields, what, err);
    ch_buf_putc(b, ']');
    sqlite3_finalize(st);
    return rc;
}

static ch_err runs_body(sq *s, void *vc, ch_error *err)
{
    list_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "listing runs";
    ch_err rc = prep(s, &st, what, err, "SELECT " RUN_COLS " FROM runs ORDER BY id DESC LIMIT ?1",
                     "i", c->limit);
    if (rc != CH_OK)
        return rc;
    return array_rows(s, st, c->b, run_fields, what, err);
}

static ch_err sq_runs_json(void *be, size_t limit, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, 0, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit};
    return txn(be, 0, runs_body, &c, "listing runs", err);
}

static void metric_fields(obj *o)
{
    o_text(o, "scope", 0);
    o_text(o, "name", 1);
    o_num(o, "value", 2);
}

static void artifact_fields(obj *o)
{
    o_text(o, "kind", 0);
    o_text(o, "path", 1);
    o_text(o, "sha256", 2);
    o_text(o, "created", 3);
}

/* Writes '"key":[rows of sql]' where 'sql' takes the id as ?1. */
static ch_err sub_list(sq *s, ch_buf *b, const char *key, const char *sql, int64_t id,
                       void (*fields)(obj *), const char *what, ch_error *err)
{
    sqlite3_stmt *st = NULL;
    ch_err rc = prep(s, &st, what, err, sql, "i", id);
    if (rc != CH_OK)
        return rc;
    ch_buf_putc(b, ',');
    ch_buf_json_str(b, key, strlen(key));
    ch_buf_puts(b, ":[");
    rc = rows(s, st, b, fields, what, err);
    ch_buf_putc(b, ']');
    sqlite3_finalize(st);
    return rc;
}

static ch_err run_body(sq *s, void *vc, ch_error *err)
{
    list_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "reading a run";
    int row = 0;
    obj o;
    ch_err rc;

    rc = prep(s, &st, what, err,
              "SELECT " RUN_COLS ", config_json, lineage_json FROM runs WHERE id = ?1", "i", c->id);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && !row)
        rc = ch_error_set(err, CH_ENOTFOUND, "%s: no run %lld", s->path, (long long)c->id);
    if (rc != CH_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    obj_open(&o, c->b, st);
    run_fields(&o);
    o_json(&o, "config", 7);
    o_json(&o, "lineage", 8);
    rc = o.rc != CH_OK ? render_fail(s, o.rc, err) : CH_OK;
    sqlite3_finalize(st);
    if (rc == CH_OK)
        rc = sub_list(s, c->b, "metrics",
                      "SELECT scope, name, value FROM metrics WHERE run_id = ?1 ORDER BY rowid",
                      c->id, metric_fields, what, err);
    if (rc == CH_OK)
        rc = sub_list(s, c->b, "artifacts",
                      "SELECT kind, path, sha256, created FROM artifacts WHERE run_id = ?1 "
                      "ORDER BY id",
                      c->id, artifact_fields, what, err);
    ch_buf_putc(c->b, '}');
    return rc;
}

static ch_err sq_run_json(void *be, int64_t run_id, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, run_id, -1};
    return txn(be, 0, run_body, &c, "reading a run", err);
}

#define AUDIT_COLS                                                                                 \
    "id, at, actor, action, alias, from_version, to_version, target, reason, details_json, "       \
    "prev_hash, hash"

static void audit_fields(obj *o)
{
    o_int(o, "id", 0);
    o_text(o, "at", 1);
    o_text(o, "actor", 2);
    o_text(o, "action", 3);
    o_text(o, "alias", 4);
    o_int(o, "from", 5);
    o_int(o, "to", 6);
    o_text(o, "target", 7);
    o_text(o, "reason", 8);
    o_json(o, "details", 9);
    o_text(o, "prev_hash", 10);
    o_text(o, "hash", 11);
}

#define MODEL_COLS "version, run_id, family, bundle_path, bundle_sha256, created, metrics_json"

/* The aliases, read once per listing: the set is closed and tiny. */
typedef struct alias_now {
    int64_t champion;
    int64_t challenger;
} alias_now;

static void model_fields(obj *o, const alias_now *a)
{
    int64_t v = sqlite3_column_int64(o->st, 0);
    int n = 0;
    o_int(o, "version", 0);
    o_int(o, "run_id", 1);
    o_text(o, "family", 2);
    o_text(o, "bundle", 3);
    o_text(o, "sha256", 4);
    o_text(o, "created", 5);
    o_json(o, "metrics", 6);
    ch__json_key(o->b, &o->first, "aliases");
    ch_buf_putc(o->b, '[');
    if (a->champion == v) {
        ch_buf_puts(o->b, "\"" CH__ALIAS_CHAMPION "\"");
        n++;
    }
    if (a->challenger == v)
        ch_buf_puts(o->b, n > 0 ? ",\"" CH__ALIAS_CHALLENGER "\"" : "\"" CH__ALIAS_CHALLENGER "\"");
    ch_buf_putc(o->b, ']');
}

static ch_err read_aliases(sq *s, alias_now *a, ch_error *err)
{
    ch_err rc = alias_get(s, CH__ALIAS_CHAMPION, &a->champion, err);
    if (rc == CH_OK)
        rc = alias_get(s, CH__ALIAS_CHALLENGER, &a->challenger, err);
    return rc;
}

static ch_err models_body(sq *s, void *vc, ch_error *err)
{
    list_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "listing model versions";
    alias_now a;
    int row = 1;
    int n = 0;
    ch_err rc;

    rc = read_aliases(s, &a, err);
    if (rc == CH_OK)
        rc = prep(s, &st, what, err,
                  "SELECT " MODEL_COLS " FROM model_versions ORDER BY version DESC", "");
    if (rc != CH_OK)
        return rc;
    ch_buf_putc(c->b, '[');
    for (;;) {
        obj o;
        rc = step(s, st, &row, what, err);
        if (rc != CH_OK || !row)
            break;
        if (n++ > 0)
            ch_buf_putc(c->b, ',');
        obj_open(&o, c->b, st);
        model_fields(&o, &a);
        rc = obj_close(&o);
        if (rc != CH_OK) {
            rc = render_fail(s, rc, err);
            break;
        }
    }
    ch_buf_putc(c->b, ']');
    sqlite3_finalize(st);
    return rc;
}

static ch_err sq_models_json(void *be, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, 0, -1};
    return txn(be, 0, models_body, &c, "listing model versions", err);
}

static ch_err model_body(sq *s, void *vc, ch_error *err)
{
    list_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "reading a model version";
    alias_now a;
    int row = 0;
    obj o;
    ch_err rc;

    rc = read_aliases(s, &a, err);
    if (rc == CH_OK)
        rc = prep(s, &st, what, err, "SELECT " MODEL_COLS " FROM model_versions WHERE version = ?1",
                  "i", c->id);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && !row)
        rc =
            ch_error_set(err, CH_ENOTFOUND, "%s: no model version %lld", s->path, (long long)c->id);
    if (rc != CH_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    obj_open(&o, c->b, st);
    model_fields(&o, &a);
    rc = o.rc != CH_OK ? render_fail(s, o.rc, err) : CH_OK;
    sqlite3_finalize(st);
    if (rc == CH_OK)
        rc = sub_list(s, c->b, "audit",
                      "SELECT " AUDIT_COLS " FROM audit WHERE from_version = ?1 OR to_version = ?1 "
                      "ORDER BY id",
                      c->id, audit_fields, what, err);
    ch_buf_putc(c->b, '}');
    return rc;
}

static ch_err sq_model_json(void *be, int64_t version, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, version, -1};
    return txn(be, 0, model_body, &c, "reading a model version", err);
}

static ch_err audit_body(sq *s, void *vc, ch_error *err)
{
    list_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "reading the audit log";
    ch_err rc = prep(s, &st, what, err,
                     "SELECT * FROM (SELECT " AUDIT_COLS " FROM audit ORDER BY id DESC LIMIT ?1) "
                     "ORDER BY id",
                     "i", c->limit);
    if (rc != CH_OK)
        return rc;
    return array_rows(s, st, c->b, audit_fields, what, err);
}

static ch_err sq_audit_json(void *be, size_t limit, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, 0, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit};
    return txn(be, 0, audit_body, &c, "reading the audit log", err);
}

/* ---- users and API keys ------------------------------------------------ */

/* Writes the audit details {"k1": v1[, "k2": v2]} (string values, NULL
 * as null) into 'd'. */
static ch_err details_of(sq *s, ch_buf *d, ch_error *err, const char *k1, const char *v1,
                         const char *k2, const char *v2)
{
    int first = 1;
    ch_buf_putc(d, '{');
    ch__json_key(d, &first, k1);
    ch__json_str_or_null(d, v1, v1 != NULL ? strlen(v1) : 0);
    if (k2 != NULL) {
        ch__json_key(d, &first, k2);
        ch__json_str_or_null(d, v2, v2 != NULL ? strlen(v2) : 0);
    }
    if (ch_buf_putc(d, '}') != CH_OK)
        return ch_error_set(err, CH_ENOMEM, "%s: out of memory writing the audit log", s->path);
    return CH_OK;
}

typedef struct user_ctx {
    const char *name;
    const char *role;
    const char *hash;
    const char *actor;
    const ch__user_change *change;
    ch_registry_user out;
} user_ctx;

static ch_err user_add_body(sq *s, void *vc, ch_error *err)
{
    user_ctx *c = vc;
    const char *what = "adding a user";
    char now[CH__REGISTRY_TS_LEN];
    int64_t one = 0;
    int found = 0;
    ch_buf d;
    ch_err rc;

    rc = query_i64(s, &one, &found, what, err, "SELECT 1 FROM users WHERE name = ?1", "t", c->name);
    if (rc != CH_OK)
        return rc;
    if (found)
        return ch_error_set(err, CH_EINVAL, "%s: user '%s' exists", s->path, c->name);
    ch__registry_now(now);
    rc = exec(s, what, err,
              "INSERT INTO users(name, role, password_hash, disabled, created, updated) "
              "VALUES (?1, ?2, ?3, 0, ?4, ?4)",
              "tttt", c->name, c->role, c->hash, now);
    if (rc != CH_OK)
        return rc;
    ch_buf_init(&d, 1 << 12);
    rc = details_of(s, &d, err, "role", c->role, NULL, NULL);
    if (rc == CH_OK)
        rc = audit_add(s, c->actor, "user-add", NULL, 0, 0, c->name, NULL, d.data, err);
    ch_buf_reset(&d);
    return rc;
}

static ch_err sq_user_add(void *be, const char *name, const char *role, const char *hash,
                          const char *actor, ch_error *err)
{
    user_ctx c = {name, role, hash, actor, NULL, {CH_ROLE_NONE, "", 0, ""}};
    return txn(be, 1, user_add_body, &c, "adding a user", err);
}

static ch_err user_get_body(sq *s, void *vc, ch_error *err)
{
    user_ctx *c = vc;
    const char *what = "reading a user";
    sqlite3_stmt *st = NULL;
    int row = 0;
    ch_err rc = prep(s, &st, what, err,
                     "SELECT role, password_hash, disabled, created FROM users WHERE name = ?1",
                     "t", c->name);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && !row)
        rc = ch_error_set(err, CH_ENOTFOUND, "%s: no user '%s'", s->path, c->name);
    if (rc == CH_OK) {
        const char *role = (const char *)sqlite3_column_text(st, 0);
        const char *hash = (const char *)sqlite3_column_text(st, 1);
        const char *created = (const char *)sqlite3_column_text(st, 3);
        if (role == NULL || hash == NULL || created == NULL)
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        else if (strlen(hash) >= sizeof c->out.password_hash)
            rc = ch_error_set(err, CH_EDB, "%s: the stored password hash of '%s' is too long",
                              s->path, c->name);
        if (rc == CH_OK) {
            c->out.role = ch_role_parse(role);
            snprintf(c->out.password_hash, sizeof c->out.password_hash, "%s", hash);
            c->out.disabled = sqlite3_column_int64(st, 2) != 0;
            snprintf(c->out.created, sizeof c->out.created, "%s", created);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static ch_err sq_user_get(void *be, const char *name, ch_registry_user *out, ch_error *err)
{
    user_ctx c = {name, NULL, NULL, NULL, NULL, {CH_ROLE_NONE, "", 0, ""}};
    ch_err rc = txn(be, 0, user_get_body, &c, "reading a user", err);
    if (rc == CH_OK)
        *out = c.out;
    return rc;
}

/* One change to a user. A change to the state the user is already in
 * (same role, already disabled, already enabled) writes nothing, so a
 * retried request does not add audit entries. A new password is always
 * written: the hash differs even for the same password. */
static ch_err user_change_body(sq *s, void *vc, ch_error *err)
{
    user_ctx *c = vc;
    const ch__user_change *u = c->change;
    const char *what = "changing a user";
    char old_role[64] = "";
    char now[CH__REGISTRY_TS_LEN];
    sqlite3_stmt *st = NULL;
    int disabled = 0;
    int row = 0;
    ch_buf d;
    ch_err rc;

    rc = prep(s, &st, what, err, "SELECT role, disabled FROM users WHERE name = ?1", "t", u->name);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && !row)
        rc = ch_error_set(err, CH_ENOTFOUND, "%s: no user '%s'", s->path, u->name);
    if (rc == CH_OK) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t == NULL)
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        else
            snprintf(old_role, sizeof old_role, "%s", t);
        disabled = sqlite3_column_int64(st, 1) != 0;
    }
    sqlite3_finalize(st);
    if (rc != CH_OK)
        return rc;
    ch__registry_now(now);
    switch (u->op) {
    case CH__USER_PASSWD:
        rc = exec(s, what, err, "UPDATE users SET password_hash = ?2, updated = ?3 WHERE name = ?1",
                  "ttt", u->name, u->hash, now);
        if (rc == CH_OK)
            rc = audit_add(s, u->actor, "user-passwd", NULL, 0, 0, u->name, NULL, NULL, err);
        return rc;
    case CH__USER_ROLE:
        if (strcmp(old_role, u->role) == 0)
            return CH_OK;
        rc = exec(s, what, err, "UPDATE users SET role = ?2, updated = ?3 WHERE name = ?1", "ttt",
                  u->name, u->role, now);
        ch_buf_init(&d, 1 << 12);
        if (rc == CH_OK)
            rc = details_of(s, &d, err, "from", old_role, "to", u->role);
        if (rc == CH_OK)
            rc = audit_add(s, u->actor, "user-role", NULL, 0, 0, u->name, NULL, d.data, err);
        ch_buf_reset(&d);
        return rc;
    case CH__USER_DISABLE:
    case CH__USER_ENABLE: {
        int want = u->op == CH__USER_DISABLE;
        if (disabled == want)
            return CH_OK;
        rc = exec(s, what, err, "UPDATE users SET disabled = ?2, updated = ?3 WHERE name = ?1",
                  "tit", u->name, (int64_t)want, now);
        if (rc == CH_OK)
            rc = audit_add(s, u->actor, want ? "user-disable" : "user-enable", NULL, 0, 0, u->name,
                           NULL, NULL, err);
        return rc;
    }
    }
    ch_panic("registry: unknown user change %d", (int)u->op);
}

static ch_err sq_user_change(void *be, const ch__user_change *u, ch_error *err)
{
    user_ctx c = {NULL, NULL, NULL, NULL, u, {CH_ROLE_NONE, "", 0, ""}};
    return txn(be, 1, user_change_body, &c, "changing a user", err);
}

static void user_fields(obj *o)
{
    o_text(o, "name", 0);
    o_text(o, "role", 1);
    o_bool(o, "disabled", 2);
    o_text(o, "created", 3);
    o_text(o, "updated", 4);
}

/* Appends every row of 'sql' (no parameters) as a JSON array of objects
 * made by 'fields'. */
static ch_err list_all(sq *s, list_ctx *c, const char *sql, void (*fields)(obj *), const char *what,
                       ch_error *err)
{
    sqlite3_stmt *st = NULL;
    ch_err rc = prep(s, &st, what, err, sql, "");
    if (rc != CH_OK)
        return rc;
    return array_rows(s, st, c->b, fields, what, err);
}

static ch_err users_body(sq *s, void *vc, ch_error *err)
{
    return list_all(s, vc, "SELECT name, role, disabled, created, updated FROM users ORDER BY name",
                    user_fields, "listing users", err);
}

static ch_err sq_users_json(void *be, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, 0, -1};
    return txn(be, 0, users_body, &c, "listing users", err);
}

typedef struct key_ctx {
    const char *id;
    const char *sha256;
    const char *role;
    const char *label;
    const char *actor;
    char now[CH__REGISTRY_TS_LEN];
    char since[CH__REGISTRY_TS_LEN]; /* lookup: a use after this time is recent */
    ch_registry_key out;             /* lookup */
    int match;                       /* lookup: the digest matched */
    int touch;                       /* lookup: the use should be recorded */
} key_ctx;

static ch_err key_add_body(sq *s, void *vc, ch_error *err)
{
    key_ctx *c = vc;
    const char *what = "adding an API key";
    int64_t one = 0;
    int found = 0;
    ch_buf d;
    ch_err rc;

    rc = query_i64(s, &one, &found, what, err, "SELECT 1 FROM api_keys WHERE id = ?1", "t", c->id);
    if (rc != CH_OK)
        return rc;
    if (found)
        return ch_error_set(err, CH_EINVAL, "%s: API key '%s' exists", s->path, c->id);
    ch__registry_now(c->now);
    rc = exec(s, what, err,
              "INSERT INTO api_keys(id, sha256, role, label, created, created_by) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
              "tttttt", c->id, c->sha256, c->role, c->label, c->now, c->actor);
    if (rc != CH_OK)
        return rc;
    ch_buf_init(&d, 1 << 12);
    rc = details_of(s, &d, err, "role", c->role, "label", c->label);
    if (rc == CH_OK)
        rc = audit_add(s, c->actor, "key-create", NULL, 0, 0, c->id, NULL, d.data, err);
    ch_buf_reset(&d);
    return rc;
}

static ch_err sq_key_add(void *be, const char *id, const char *sha256, const char *role,
                         const char *label, const char *created_by, ch_error *err)
{
    key_ctx c;
    memset(&c, 0, sizeof c);
    c.id = id;
    c.sha256 = sha256;
    c.role = role;
    c.label = label;
    c.actor = created_by;
    return txn(be, 1, key_add_body, &c, "adding an API key", err);
}

static ch_err key_lookup_body(sq *s, void *vc, ch_error *err)
{
    key_ctx *c = vc;
    const char *what = "looking up an API key";
    sqlite3_stmt *st = NULL;
    int row = 0;
    ch_err rc = prep(s, &st, what, err,
                     "SELECT sha256, role, revoked_at IS NOT NULL, label, last_used FROM api_keys "
                     "WHERE id = ?1",
                     "t", c->id);
    c->match = 0;
    c->touch = 0;
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && row) {
        const char *sha = (const char *)sqlite3_column_text(st, 0);
        const char *role = (const char *)sqlite3_column_text(st, 1);
        const char *label = (const char *)sqlite3_column_text(st, 3);
        const char *used = (const char *)sqlite3_column_text(st, 4);
        if (sha == NULL || role == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        } else if (strlen(sha) == 64 && ch_ct_equal(sha, c->sha256, 64)) {
            c->match = 1;
            c->out.role = ch_role_parse(role);
            c->out.revoked = sqlite3_column_int64(st, 2) != 0;
            snprintf(c->out.label, sizeof c->out.label, "%s", label != NULL ? label : "");
            c->touch = !c->out.revoked && (used == NULL || strcmp(used, c->since) <= 0);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static ch_err touch_body(sq *s, void *vc, ch_error *err)
{
    key_ctx *c = vc;
    /* The condition is repeated here: another handle may have recorded a
     * use since this one looked. */
    return exec(s, "recording an API key's use", err,
                "UPDATE api_keys SET last_used = ?2 WHERE id = ?1 AND revoked_at IS NULL AND "
                "(last_used IS NULL OR last_used <= ?3)",
                "ttt", c->id, c->now, c->since);
}

/* Records the use of a key: one attempt that does not wait for the write
 * lock (the busy timeout is 0 for its length), because it runs on the
 * request path of the server; if another writer holds the store, a later
 * use records it. Its errors are dropped for the same reason. */
static void touch_key(sq *s, key_ctx *c)
{
    txn_ctx t = {1, touch_body, c, "recording an API key's use"};
    if (s->read_only)
        return;
    sqlite3_busy_timeout(s->db, 0);
    (void)txn_attempt(s, &t, NULL);
    sqlite3_busy_timeout(s->db, s->busy_timeout_ms);
}

static ch_err sq_key_lookup(void *be, const char *id, const char *sha256, ch_registry_key *out,
                            ch_error *err)
{
    sq *s = be;
    key_ctx c;
    int64_t now = ch__registry_now_ms();
    ch_err rc;

    memset(&c, 0, sizeof c);
    c.id = id;
    c.sha256 = sha256;
    ch__registry_fmt_time(now, c.now);
    ch__registry_fmt_time(now - 60000, c.since);
    rc = txn(s, 0, key_lookup_body, &c, "looking up an API key", err);
    if (rc != CH_OK)
        return rc;
    if (!c.match)
        return ch_error_set(err, CH_EAUTH, "unknown API key or wrong secret");
    if (c.touch)
        touch_key(s, &c);
    *out = c.out;
    return CH_OK;
}

static ch_err key_revoke_body(sq *s, void *vc, ch_error *err)
{
    key_ctx *c = vc;
    const char *what = "revoking an API key";
    int64_t revoked = 0;
    int found = 0;
    ch_err rc = query_i64(s, &revoked, &found, what, err,
                          "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = ?1", "t", c->id);
    if (rc != CH_OK)
        return rc;
    if (!found)
        return ch_error_set(err, CH_ENOTFOUND, "%s: no API key '%s'", s->path, c->id);
    if (revoked)
        return CH_OK;
    ch__registry_now(c->now);
    rc = exec(s, what, err, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1", "tt", c->id,
              c->now);
    if (rc == CH_OK)
        rc = audit_add(s, c->actor, "key-revoke", NULL, 0, 0, c->id, NULL, NULL, err);
    return rc;
}

static ch_err sq_key_revoke(void *be, const char *id, const char *actor, ch_error *err)
{
    key_ctx c;
    memset(&c, 0, sizeof c);
    c.id = id;
    c.actor = actor;
    return txn(be, 1, key_revoke_body, &c, "revoking an API key", err);
}

static void key_fields(obj *o)
{
    o_text(o, "id", 0);
    o_text(o, "label", 1);
    o_text(o, "role", 2);
    o_text(o, "created", 3);
    o_text(o, "created_by", 4);
    o_text(o, "last_used", 5);
    o_bool(o, "revoked", 6);
    o_text(o, "revoked_at", 7);
}

static ch_err keys_body(sq *s, void *vc, ch_error *err)
{
    return list_all(s, vc,
                    "SELECT id, label, role, created, created_by, last_used, "
                    "revoked_at IS NOT NULL, revoked_at FROM api_keys ORDER BY created, rowid",
                    key_fields, "listing API keys", err);
}

static ch_err sq_keys_json(void *be, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, 0, -1};
    return txn(be, 0, keys_body, &c, "listing API keys", err);
}

/* ---- predictions and feedback ------------------------------------------ */

typedef struct pred_ctx {
    const ch_prediction_rec *recs;
    size_t n;
} pred_ctx;

/* Binds one record to the cached insert. The texts are bound STATIC: the
 * records outlive the statement's use, and the bindings are cleared
 * before the call returns. */
static ch_err bind_prediction(sq *s, sqlite3_stmt *st, const ch_prediction_rec *p, const char *what,
                              ch_error *err)
{
    int rc = sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = p->customer[0] != '\0' ? sqlite3_bind_text(st, 2, p->customer, -1, SQLITE_STATIC)
                                    : sqlite3_bind_null(st, 2);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, p->features_sha256, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 4, p->probability);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, p->label);
    if (rc == SQLITE_OK)
        rc = p->model_version > 0 ? sqlite3_bind_int64(st, 6, p->model_version)
                                  : sqlite3_bind_null(st, 6);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 7, p->latency_s);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 8, p->time_ms);
    if (rc == SQLITE_OK)
        rc = p->inputs_len > 0 ? sqlite3_bind_blob(st, 9, p->inputs, p->inputs_len, SQLITE_STATIC)
                               : sqlite3_bind_null(st, 9);
    if (rc == SQLITE_OK)
        rc = p->arm == CH_ARM_CHAMPION ? sqlite3_bind_text(st, 10, "champion", -1, SQLITE_STATIC)
             : p->arm == CH_ARM_CANDIDATE
                 ? sqlite3_bind_text(st, 10, "candidate", -1, SQLITE_STATIC)
                 : sqlite3_bind_null(st, 10);
    if (rc == SQLITE_OK)
        rc = p->shadow_version > 0 ? sqlite3_bind_double(st, 11, p->shadow_probability)
                                   : sqlite3_bind_null(st, 11);
    if (rc == SQLITE_OK)
        rc = p->shadow_version > 0 ? sqlite3_bind_int64(st, 12, p->shadow_version)
                                   : sqlite3_bind_null(st, 12);
    return rc == SQLITE_OK ? CH_OK : db_fail(s, rc, what, err);
}

/* One batch: the insert is prepared once per handle (the log thread calls
 * this for every batch) and stepped once per record, all inside one
 * transaction, so a batch costs one commit. */
static ch_err pred_body(sq *s, void *vc, ch_error *err)
{
    pred_ctx *c = vc;
    const char *what = "logging predictions";
    ch_err rc = CH_OK;
    size_t i;

    if (s->pred == NULL) {
        int r = sqlite3_prepare_v3(s->db,
                                   "INSERT INTO predictions(id, customer, features_sha256, "
                                   "probability, label, model_version, latency_s, time_ms, "
                                   "inputs, arm, shadow_probability, shadow_version) VALUES (?1, "
                                   "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
                                   "ON CONFLICT(id) DO NOTHING",
                                   -1, SQLITE_PREPARE_PERSISTENT, &s->pred, NULL);
        if (r != SQLITE_OK)
            return db_fail(s, r, what, err);
    }
    for (i = 0; rc == CH_OK && i < c->n; i++) {
        int row = 0;
        rc = bind_prediction(s, s->pred, &c->recs[i], what, err);
        if (rc == CH_OK)
            rc = step(s, s->pred, &row, what, err);
        sqlite3_reset(s->pred);
    }
    sqlite3_clear_bindings(s->pred);
    return rc;
}

static ch_err sq_log_predictions(void *be, const ch_prediction_rec *recs, size_t n, ch_error *err)
{
    pred_ctx c = {recs, n};
    return txn(be, 1, pred_body, &c, "logging predictions", err);
}

/* Feedback is acknowledged to a client that will not send it again, so
 * it must survive a power loss once the call returns. In WAL mode that
 * takes synchronous=FULL, which syncs the WAL at every commit; NORMAL
 * syncs only at checkpoints, and a power loss could take the last
 * commits with it. The connection is opened with FULL (settings_attempt);
 * this checks the level again before each feedback transaction, so that
 * relaxing the connection's default one day (for prediction batches, say)
 * cannot quietly weaken this promise. The level cannot change inside a
 * transaction, hence here, before BEGIN. */
static ch_err ensure_full_sync(sq *s, ch_error *err)
{
    const char *what = "making feedback durable";
    int64_t level = 0;
    int found = 0;
    ch_err rc = query_i64(s, &level, &found, what, err, "PRAGMA synchronous", "");
    if (rc == CH_OK && (!found || level < 2))
        rc = exec(s, what, err, "PRAGMA synchronous = FULL", "");
    return rc;
}

typedef struct fb_ctx {
    const ch__feedback *f;
    char pid[CH_PREDICTION_ID_LEN + 1]; /* out: the prediction joined */
} fb_ctx;

/* Finds the prediction the feedback is about (by id, or the customer's
 * latest), then records the feedback; nothing is written when there is no
 * such prediction. */
static ch_err fb_body(sq *s, void *vc, ch_error *err)
{
    fb_ctx *c = vc;
    const ch__feedback *f = c->f;
    const char *what = "recording feedback";
    char cust[CH_PSEUDONYM_LEN + 1] = "";
    char now[CH__REGISTRY_TS_LEN];
    sqlite3_stmt *st = NULL;
    int row = 0;
    ch_err rc;

    if (f->prediction_id != NULL)
        rc = prep(s, &st, what, err, "SELECT id, customer FROM predictions WHERE id = ?1", "t",
                  f->prediction_id);
    else
        rc = prep(s, &st, what, err,
                  "SELECT id, customer FROM predictions WHERE customer = ?1 "
                  "ORDER BY time_ms DESC, rowid DESC LIMIT 1",
                  "t", f->customer);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && row) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *cu = (const char *)sqlite3_column_text(st, 1);
        if (id == NULL || (cu == NULL && sqlite3_column_type(st, 1) != SQLITE_NULL))
            rc = ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
        else {
            snprintf(c->pid, sizeof c->pid, "%s", id);
            snprintf(cust, sizeof cust, "%s", cu != NULL ? cu : "");
        }
    }
    sqlite3_finalize(st);
    if (rc != CH_OK)
        return rc;
    if (!row && f->prediction_id != NULL)
        return ch_error_set(err, CH_ENOTFOUND, "%s: no prediction %s; feedback not recorded",
                            s->path, f->prediction_id);
    if (!row)
        return ch_error_set(err, CH_ENOTFOUND,
                            "%s: no prediction for customer %s; feedback not recorded", s->path,
                            f->customer);
    if (f->customer != NULL && strcmp(cust, f->customer) != 0)
        return ch_error_set(err, CH_ENOTFOUND,
                            "%s: prediction %s is not for customer %s; feedback not recorded",
                            s->path, c->pid, f->customer);
    ch__registry_now(now);
    return exec(s, what, err,
                "INSERT INTO feedback(prediction_id, customer, churned, observed_date, actor, at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                "ttittt", c->pid, cust[0] != '\0' ? cust : NULL, (int64_t)f->churned,
                f->observed_date, f->actor, now);
}

static ch_err sq_feedback_add(void *be, const ch__feedback *f,
                              char out_id[CH_PREDICTION_ID_LEN + 1], ch_error *err)
{
    sq *s = be;
    fb_ctx c;
    ch_err rc;

    memset(&c, 0, sizeof c);
    c.f = f;
    if (s->read_only)
        return ch_error_set(err, CH_EDB, "%s: recording feedback: the store is open read-only",
                            s->path);
    rc = ensure_full_sync(s, err);
    if (rc == CH_OK)
        rc = txn(s, 1, fb_body, &c, "recording feedback", err);
    if (rc == CH_OK)
        memcpy(out_id, c.pid, sizeof c.pid);
    return rc;
}

typedef struct count_ctx {
    int64_t n;
} count_ctx;

static ch_err fb_count_body(sq *s, void *vc, ch_error *err)
{
    count_ctx *c = vc;
    int found = 0;
    return query_i64(s, &c->n, &found, "counting feedback", err, "SELECT count(*) FROM feedback",
                     "");
}

static ch_err sq_feedback_count(void *be, int64_t *n, ch_error *err)
{
    count_ctx c = {0};
    ch_err rc = txn(be, 0, fb_count_body, &c, "counting feedback", err);
    if (rc == CH_OK)
        *n = c.n;
    return rc;
}

static void feedback_fields(obj *o)
{
    o_int(o, "id", 0);
    o_text(o, "prediction_id", 1);
    o_text(o, "customer", 2);
    o_int(o, "churned", 3);
    o_text(o, "observed_date", 4);
    o_text(o, "actor", 5);
    o_text(o, "at", 6);
    o_num(o, "probability", 7);
    o_int(o, "label", 8);
    o_int(o, "model_version", 9);
    o_ms_time(o, "predicted_at", 10);
}

static ch_err feedback_body(sq *s, void *vc, ch_error *err)
{
    list_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "listing feedback";
    ch_err rc = prep(s, &st, what, err,
                     "SELECT f.id, f.prediction_id, f.customer, f.churned, f.observed_date, "
                     "f.actor, f.at, p.probability, p.label, p.model_version, p.time_ms "
                     "FROM feedback f LEFT JOIN predictions p ON p.id = f.prediction_id "
                     "ORDER BY f.id DESC LIMIT ?1",
                     "i", c->limit);
    if (rc != CH_OK)
        return rc;
    return array_rows(s, st, c->b, feedback_fields, what, err);
}

static ch_err sq_feedback_json(void *be, size_t limit, ch_buf *b, ch_error *err)
{
    list_ctx c = {b, 0, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit};
    return txn(be, 0, feedback_body, &c, "listing feedback", err);
}

/* ---- reading the prediction log ---------------------------------------- */

/* How a scan reads (bench/predlog_scan.c measures each case):
 *   - predictions come from the time index in (time_ms, rowid) order, so
 *     they stream out sorted, with no sort step and no memory that grows
 *     with the log;
 *   - the latest N are found by walking the time index backwards over N
 *     entries, and then read forwards from there;
 *   - each row's latest feedback is joined one of two ways, whichever
 *     costs less (see plan_feedback()): from the predictions, a lookup in
 *     the feedback index per prediction of the window (about 0.3 us
 *     each), or from the feedback, a second statement that lists the
 *     labelled predictions of the query, sorted the same way, merged
 *     with the first (about 2 us per feedback record ever given, since
 *     each finds its prediction by id). A full scan of a large log with
 *     little feedback takes the second way, a short window the first;
 *     a store without feedback joins nothing;
 *   - column types are asked only when a value comes back NULL.
 * What is left is SQLite's own cost of a row (about 0.3 us here); mapping
 * the file for a scan (PRAGMA mmap_size) saved only 5% of it, not worth
 * a mapping's failure modes.
 *
 * Parameters of every statement: ?1 lo_ms, ?2 hi_ms, ?3 model_version
 * (0: any), ?4 and ?5 the time and rowid of the oldest row that last_n
 * keeps (INT64_MIN: every row), and ?6 the offset of the cut. */
#define PRED_WHERE                                                                                 \
    "p.time_ms >= ?1 AND p.time_ms <= ?2 AND (?3 = 0 OR p.model_version = ?3)"                     \
    " AND (p.time_ms > ?4 OR p.rowid >= ?5)"

/* The latest feedback of prediction 'p'. */
#define PRED_LATEST "(SELECT max(x.id) FROM feedback x WHERE x.prediction_id = p.id)"

/* Joined from the feedback: the labelled predictions, each once with its
 * latest feedback 'f'. The CROSS JOIN keeps feedback as the outer loop:
 * left to itself the planner may prefer the time index. */
#define FROM_FEEDBACK                                                                              \
    " FROM feedback f CROSS JOIN predictions p ON p.id = f.prediction_id"                          \
    " WHERE f.id = (SELECT max(x.id) FROM feedback x WHERE x.prediction_id = f.prediction_id)"     \
    " AND "

/* Joined from the predictions: the window's predictions with (LEFT JOIN)
 * or only with (CROSS JOIN, which keeps predictions outside) feedback. */
#define FROM_PREDICTIONS_ALL                                                                       \
    " FROM predictions p LEFT JOIN feedback f ON f.id = " PRED_LATEST " WHERE "
#define FROM_PREDICTIONS_LABELLED                                                                  \
    " FROM predictions p CROSS JOIN feedback f ON f.id = " PRED_LATEST " WHERE "
#define HAS_FEEDBACK " AND EXISTS (SELECT 1 FROM feedback x WHERE x.prediction_id = p.id)"

/* Columns 0 to 10 of a row statement; 11 and 12, when joined, are
 * churned (-1 without feedback) and the observed date. */
#define PRED_COLS                                                                                  \
    "SELECT p.id, p.customer, p.probability, p.label, p.model_version, p.time_ms, p.rowid, "       \
    "p.inputs, p.arm, p.shadow_probability, p.shadow_version"
#define FB_COLS ", coalesce(f.churned, -1), f.observed_date"

#define PRED_ORDER " ORDER BY p.time_ms, p.rowid"
#define CUT_ORDER  " ORDER BY p.time_ms DESC, p.rowid DESC LIMIT 1 OFFSET ?6"

/* How feedback is joined to a scan or count. */
typedef enum fb_plan {
    FB_NONE = 0,         /* the store has no feedback */
    FB_FROM_PREDICTIONS, /* a lookup per prediction */
    FB_FROM_FEEDBACK     /* from the feedback side */
} fb_plan;

/* One feedback record joined from the feedback side costs about as much
 * as this many predictions joined from theirs. */
#define FEEDBACK_COST 8

typedef struct scan_ctx {
    const ch__prediction_query *q;
    ch_prediction_row_fn fn;
    void *ctx;
    int64_t n;         /* count: rows selected */
    int64_t delivered; /* scan: rows handed to 'fn' */
} scan_ctx;

/* Picks the cheaper way to join feedback to the predictions with
 * lo_ms <= time_ms <= q->hi_ms: FB_FROM_FEEDBACK when the window holds
 * more than FEEDBACK_COST predictions per feedback record. The feedback
 * is sized by its largest id (no rows are deleted from it, and an
 * overestimate only favours the per-prediction join), and the window is
 * counted on the time index, stopping at that many, so that deciding
 * never costs more than a fraction of either join. */
static ch_err plan_feedback(sq *s, const ch__prediction_query *q, int64_t lo_ms, fb_plan *plan,
                            const char *what, ch_error *err)
{
    int64_t n_fb = 0;
    int64_t n_window = 0;
    int64_t cap;
    int found = 0;
    ch_err rc = query_i64(s, &n_fb, &found, what, err, "SELECT max(id) FROM feedback", "");
    if (rc != CH_OK)
        return rc;
    if (!found || n_fb <= 0) {
        *plan = FB_NONE;
        return CH_OK;
    }
    cap = n_fb > INT64_MAX / FEEDBACK_COST ? INT64_MAX : n_fb * FEEDBACK_COST;
    rc = query_i64(s, &n_window, &found, what, err,
                   "SELECT count(*) FROM (SELECT 1 FROM predictions "
                   "WHERE time_ms >= ?1 AND time_ms <= ?2 LIMIT ?3)",
                   "iii", lo_ms, q->hi_ms, cap);
    if (rc == CH_OK)
        *plan = n_window >= cap ? FB_FROM_FEEDBACK : FB_FROM_PREDICTIONS;
    return rc;
}

/* Prepares 'sql' and binds ?1 to ?5 from 'q', with the last_n cut at
 * ('cut_ms', 'cut_rowid'). */
static ch_err prep_query(sq *s, sqlite3_stmt **out, const char *sql, const ch__prediction_query *q,
                         int64_t cut_ms, int64_t cut_rowid, const char *what, ch_error *err)
{
    /* The cut is also a lower bound on time, which the index range uses. */
    int64_t lo = cut_ms > q->lo_ms ? cut_ms : q->lo_ms;
    return prep(s, out, what, err, sql, "iiiii", lo, q->hi_ms, q->model_version, cut_ms, cut_rowid);
}

/* Finds where the latest q->last_n rows start: '*cut_ms' and '*cut_rowid'
 * get the time and rowid of the oldest of them, or stay INT64_MIN when
 * the query selects no more than that (or last_n is 0). 'plan' says how
 * a labelled-only query finds its labelled rows. */
static ch_err find_cut(sq *s, const ch__prediction_query *q, fb_plan plan, int64_t *cut_ms,
                       int64_t *cut_rowid, const char *what, ch_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *sql;
    int row = 0;
    int r;
    ch_err rc;

    *cut_ms = INT64_MIN;
    *cut_rowid = INT64_MIN;
    if (q->last_n == 0)
        return CH_OK;
    if (!q->labelled_only)
        sql = "SELECT p.time_ms, p.rowid FROM predictions p WHERE " PRED_WHERE CUT_ORDER;
    else if (plan == FB_FROM_FEEDBACK)
        sql = "SELECT p.time_ms, p.rowid" FROM_FEEDBACK PRED_WHERE CUT_ORDER;
    else
        sql =
            "SELECT p.time_ms, p.rowid FROM predictions p WHERE " PRED_WHERE HAS_FEEDBACK CUT_ORDER;
    rc = prep_query(s, &st, sql, q, INT64_MIN, INT64_MIN, what, err);
    if (rc != CH_OK)
        return rc;
    r = sqlite3_bind_int64(st, 6, q->last_n - 1);
    rc = r == SQLITE_OK ? step(s, st, &row, what, err) : db_fail(s, r, what, err);
    if (rc == CH_OK && row) {
        *cut_ms = sqlite3_column_int64(st, 0);
        *cut_rowid = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}

static ch_err no_memory(sq *s, const char *what, ch_error *err)
{
    return ch_error_set(err, CH_ENOMEM, "%s: %s: out of memory", s->path, what);
}

/* Reads the current row of a row statement (PRED_COLS) into 'r'. Each
 * column call costs about as much as SQLite's whole step per column, so
 * column types are asked only when a value comes back NULL (SQL NULL, or
 * SQLite out of memory), and the rowid (column 6) only by a merge that
 * needs it. */
static ch_err read_row(sq *s, sqlite3_stmt *st, ch_prediction_row *r, const char *what,
                       ch_error *err)
{
    int n;
    r->id = (const char *)sqlite3_column_text(st, 0);
    if (r->id == NULL)
        return sqlite3_column_type(st, 0) == SQLITE_NULL
                   ? ch_error_set(err, CH_EDB, "%s: %s: a prediction without an id", s->path, what)
                   : no_memory(s, what, err);
    r->customer = (const char *)sqlite3_column_text(st, 1);
    if (r->customer == NULL && sqlite3_column_type(st, 1) != SQLITE_NULL)
        return no_memory(s, what, err);
    r->probability = sqlite3_column_double(st, 2);
    r->label = (int)sqlite3_column_int64(st, 3);
    r->model_version = sqlite3_column_int64(st, 4); /* NULL (from a file) reads as 0 */
    r->time_ms = sqlite3_column_int64(st, 5);
    r->inputs = sqlite3_column_blob(st, 7);
    n = sqlite3_column_bytes(st, 7);
    if (r->inputs == NULL && n > 0)
        return no_memory(s, what, err);
    r->inputs_len = n > 0 ? (size_t)n : 0;
    if (n == 0)
        r->inputs = NULL;
    {
        const unsigned char *arm = sqlite3_column_text(st, 8);
        r->arm = arm == NULL                      ? CH_ARM_NONE
                 : arm[0] == 'c' && arm[1] == 'h' ? CH_ARM_CHAMPION
                                                  : CH_ARM_CANDIDATE;
    }
    r->shadow_version = sqlite3_column_int64(st, 10);
    r->shadow_probability = r->shadow_version > 0 ? sqlite3_column_double(st, 9) : NAN;
    r->churned = -1;
    r->observed_date = NULL;
    return CH_OK;
}

/* Reads churned (-1: none) and the observed date from columns 'i' and
 * 'i' + 1 of 'st'. */
static ch_err read_feedback(sq *s, sqlite3_stmt *st, int i, ch_prediction_row *r, const char *what,
                            ch_error *err)
{
    r->churned = (int)sqlite3_column_int64(st, i);
    if (r->churned < 0) {
        r->churned = -1;
        return CH_OK;
    }
    r->observed_date = (const char *)sqlite3_column_text(st, i + 1);
    return r->observed_date != NULL ? CH_OK : no_memory(s, what, err);
}

/* The feedback side of a merged scan: the next labelled prediction's key
 * and feedback, or 'more' 0 at the end. */
typedef struct fb_cursor {
    sqlite3_stmt *st;
    int more;
    int64_t time_ms;
    int64_t rowid;
} fb_cursor;

static ch_err fb_next(sq *s, fb_cursor *f, const char *what, ch_error *err)
{
    ch_err rc = step(s, f->st, &f->more, what, err);
    if (rc == CH_OK && f->more) {
        f->time_ms = sqlite3_column_int64(f->st, 0);
        f->rowid = sqlite3_column_int64(f->st, 1);
    }
    return rc;
}

/* Attaches to row 'r' (the current row of 'st') its feedback from the
 * merged cursor 'f', which lists labelled rows in the same order as 'st':
 * advances 'f' past the rows before 'r', and takes its feedback when 'f'
 * is on 'r'. */
static ch_err merge_feedback(sq *s, sqlite3_stmt *st, fb_cursor *f, ch_prediction_row *r,
                             const char *what, ch_error *err)
{
    int64_t rowid;
    ch_err rc = CH_OK;
    while (rc == CH_OK && f->more && f->time_ms < r->time_ms)
        rc = fb_next(s, f, what, err);
    if (rc != CH_OK || !f->more || f->time_ms != r->time_ms)
        return rc;
    rowid = sqlite3_column_int64(st, 6);
    while (rc == CH_OK && f->more && f->time_ms == r->time_ms && f->rowid < rowid)
        rc = fb_next(s, f, what, err);
    if (rc == CH_OK && f->more && f->time_ms == r->time_ms && f->rowid == rowid)
        rc = read_feedback(s, f->st, 2, r, what, err);
    return rc;
}

/* Hands the rows of 'st' to the callback. With 'joined', 'st' has the
 * feedback columns; with 'f', the feedback of the rows it lists is
 * merged in. */
static ch_err deliver(sq *s, scan_ctx *c, sqlite3_stmt *st, int joined, fb_cursor *f,
                      const char *what, ch_error *err)
{
    int row = 1;
    ch_err rc = CH_OK;
    while (rc == CH_OK) {
        ch_prediction_row r;
        rc = step(s, st, &row, what, err);
        if (rc != CH_OK || !row)
            break;
        rc = read_row(s, st, &r, what, err);
        if (rc == CH_OK && joined)
            rc = read_feedback(s, st, 11, &r, what, err);
        if (rc == CH_OK && f != NULL)
            rc = merge_feedback(s, st, f, &r, what, err);
        if (rc != CH_OK)
            break;
        c->delivered++;
        if (c->fn(c->ctx, &r) != 0)
            break;
    }
    return rc;
}

/* The row statement (and, joining from the feedback side without
 * labelled_only, the feedback statement to merge) for 'plan'. */
static void scan_sql(const ch__prediction_query *q, fb_plan plan, const char **rows,
                     const char **fb)
{
    *fb = NULL;
    if (q->labelled_only)
        *rows = plan == FB_FROM_FEEDBACK
                    ? PRED_COLS FB_COLS FROM_FEEDBACK PRED_WHERE PRED_ORDER
                    : PRED_COLS FB_COLS FROM_PREDICTIONS_LABELLED PRED_WHERE PRED_ORDER;
    else if (plan == FB_FROM_PREDICTIONS)
        *rows = PRED_COLS FB_COLS FROM_PREDICTIONS_ALL PRED_WHERE PRED_ORDER;
    else
        *rows = PRED_COLS " FROM predictions p WHERE " PRED_WHERE PRED_ORDER;
    if (!q->labelled_only && plan == FB_FROM_FEEDBACK)
        *fb = "SELECT p.time_ms, p.rowid, f.churned, f.observed_date" FROM_FEEDBACK PRED_WHERE
            PRED_ORDER;
}

static ch_err scan_body(sq *s, void *vc, ch_error *err)
{
    scan_ctx *c = vc;
    const char *what = "reading predictions";
    sqlite3_stmt *st = NULL;
    fb_cursor f = {NULL, 0, 0, 0};
    const char *rows_sql;
    const char *fb_sql;
    fb_plan plan = FB_NONE;
    int64_t cut_ms = INT64_MIN;
    int64_t cut_rowid = INT64_MIN;
    ch_err rc;

    c->delivered = 0;
    rc = plan_feedback(s, c->q, c->q->lo_ms, &plan, what, err);
    if (rc != CH_OK || (plan == FB_NONE && c->q->labelled_only))
        return rc;
    rc = find_cut(s, c->q, plan, &cut_ms, &cut_rowid, what, err);
    /* A cut narrows the window: decide again for what is left. */
    if (rc == CH_OK && plan != FB_NONE && cut_ms > c->q->lo_ms)
        rc = plan_feedback(s, c->q, cut_ms, &plan, what, err);
    if (rc != CH_OK)
        return rc;
    scan_sql(c->q, plan, &rows_sql, &fb_sql);
    rc = prep_query(s, &st, rows_sql, c->q, cut_ms, cut_rowid, what, err);
    if (rc == CH_OK && fb_sql != NULL)
        rc = prep_query(s, &f.st, fb_sql, c->q, cut_ms, cut_rowid, what, err);
    if (rc == CH_OK && f.st != NULL)
        rc = fb_next(s, &f, what, err);
    if (rc == CH_OK)
        rc = deliver(s, c, st, plan == FB_FROM_PREDICTIONS || c->q->labelled_only,
                     f.st != NULL ? &f : NULL, what, err);
    sqlite3_finalize(f.st);
    sqlite3_finalize(st);
    /* Rows already delivered must not come again: a store that fails
     * after them fails the scan rather than retrying it. */
    if (rc != CH_OK && c->delivered > 0)
        s->busy = 0;
    return rc;
}

static ch_err sq_predictions_scan(void *be, const ch__prediction_query *q, ch_prediction_row_fn fn,
                                  void *ctx, ch_error *err)
{
    scan_ctx c = {q, fn, ctx, 0, 0};
    return txn(be, 0, scan_body, &c, "reading predictions", err);
}

static ch_err pred_count_body(sq *s, void *vc, ch_error *err)
{
    scan_ctx *c = vc;
    const char *what = "counting predictions";
    sqlite3_stmt *st = NULL;
    fb_plan plan = FB_NONE;
    const char *sql = "SELECT count(*) FROM predictions p WHERE " PRED_WHERE;
    int row = 0;
    ch_err rc;

    c->n = 0;
    if (c->q->labelled_only) {
        rc = plan_feedback(s, c->q, c->q->lo_ms, &plan, what, err);
        if (rc != CH_OK || plan == FB_NONE)
            return rc;
        sql = plan == FB_FROM_FEEDBACK
                  ? "SELECT count(*)" FROM_FEEDBACK PRED_WHERE
                  : "SELECT count(*) FROM predictions p WHERE " PRED_WHERE HAS_FEEDBACK;
    }
    rc = prep_query(s, &st, sql, c->q, INT64_MIN, INT64_MIN, what, err);
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && row)
        c->n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (c->q->last_n > 0 && c->n > c->q->last_n)
        c->n = c->q->last_n;
    return rc;
}

static ch_err sq_predictions_count(void *be, const ch__prediction_query *q, int64_t *n,
                                   ch_error *err)
{
    scan_ctx c = {q, NULL, NULL, 0, 0};
    ch_err rc = txn(be, 0, pred_count_body, &c, "counting predictions", err);
    if (rc == CH_OK)
        *n = c.n;
    return rc;
}

/* ---- invariants -------------------------------------------------------- */

static ch_err violation(sq *s, ch_error *err, const char *fmt, ...) CH_PRINTF(3, 4);

static ch_err violation(sq *s, ch_error *err, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ch_error_set(err, CH_EDB, "%s: check failed: %s", s->path, msg);
}

/* Whether 't' has the layout "YYYY-MM-DDTHH:MM:SS.mmmZ". */
/* Audit ids increase (by construction of ORDER BY id, so this checks for
 * duplicates) and times, well-formed, never decrease. */
static ch_err check_audit_order(sq *s, ch_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *what = "checking the audit log";
    char prev_at[CH__REGISTRY_TS_LEN] = "";
    int64_t prev_id = 0;
    int row = 1;
    ch_err rc = prep(s, &st, what, err, "SELECT id, at FROM audit ORDER BY id", "");

    while (rc == CH_OK) {
        int64_t id;
        const char *at;
        size_t len;
        rc = step(s, st, &row, what, err);
        if (rc != CH_OK || !row)
            break;
        id = sqlite3_column_int64(st, 0);
        at = (const char *)sqlite3_column_text(st, 1);
        len = (size_t)sqlite3_column_bytes(st, 1);
        if (at == NULL || !ch__registry_is_stamp(at, len))
            rc = violation(s, err, "audit row %lld has a malformed time", (long long)id);
        else if (id <= prev_id)
            rc = violation(s, err, "audit id %lld does not increase", (long long)id);
        else if (strcmp(at, prev_at) < 0)
            rc = violation(s, err, "audit row %lld (%s) is earlier than row %lld (%s)",
                           (long long)id, at, (long long)prev_id, prev_at);
        else {
            prev_id = id;
            memcpy(prev_at, at, len + 1);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static ch_err check_body(sq *s, void *vc, ch_error *err)
{
    static const char *const names[] = {CH__ALIAS_CHAMPION, CH__ALIAS_CHALLENGER};
    char text[160];
    int64_t n = 0;
    int64_t m = 0;
    int found = 0;
    size_t i;
    ch_err rc;

    (void)vc;
    rc = query_text(s, text, sizeof text, &found, "checking integrity", err,
                    "PRAGMA integrity_check", "");
    if (rc == CH_OK && (!found || strcmp(text, "ok") != 0))
        rc = violation(s, err, "integrity_check: %s", found ? text : "no result");
    if (rc == CH_OK)
        rc = query_text(s, text, sizeof text, &found, "checking foreign keys", err,
                        "PRAGMA foreign_key_check", "");
    if (rc == CH_OK && found)
        rc = violation(s, err, "table %s has a row that refers to a missing row", text);
    if (rc == CH_OK)
        rc = query_i64(s, &n, &found, "checking the audit log", err,
                       "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN "
                       "('audit_no_update', 'audit_no_delete', 'audit_head_no_delete')",
                       "");
    if (rc == CH_OK && n != 3)
        rc = violation(s, err, "the audit log's append-only triggers are missing");
    if (rc == CH_OK)
        rc = query_text(s, text, sizeof text, &found, "checking aliases", err,
                        "SELECT a.name FROM aliases a LEFT JOIN model_versions m "
                        "ON m.version = a.version WHERE m.version IS NULL",
                        "");
    if (rc == CH_OK && found)
        rc = violation(s, err, "alias %s points at a missing version", text);
    for (i = 0; rc == CH_OK && i < sizeof names / sizeof names[0]; i++) {
        int64_t cur = 0;
        int64_t last = 0;
        rc = alias_get(s, names[i], &cur, err);
        if (rc == CH_OK)
            rc = query_i64(s, &last, &found, "checking aliases", err,
                           "SELECT to_version FROM audit WHERE alias = ?1 AND action IN " MOVES
                           " ORDER BY id DESC LIMIT 1",
                           "t", names[i]);
        if (rc == CH_OK && !found)
            last = 0;
        if (rc == CH_OK && cur != last)
            rc = violation(s, err, "alias %s is v%lld but its last audited move is to v%lld",
                           names[i], (long long)cur, (long long)last);
    }
    if (rc == CH_OK)
        rc = query_i64(s, &n, &found, "checking model versions", err,
                       "SELECT version FROM model_versions m WHERE NOT EXISTS (SELECT 1 FROM audit "
                       "WHERE action = 'register' AND to_version = m.version) LIMIT 1",
                       "");
    if (rc == CH_OK && found)
        rc = violation(s, err, "version %lld has no registration audit row", (long long)n);
    if (rc == CH_OK)
        rc = query_i64(s, &n, &found, "checking model versions", err,
                       "SELECT count(*) FROM model_versions", "");
    if (rc == CH_OK)
        rc = query_i64(s, &m, &found, "checking model versions", err,
                       "SELECT COALESCE(MAX(version), 0) FROM model_versions", "");
    if (rc == CH_OK && n != m)
        rc = violation(s, err, "version numbers have gaps (%lld versions, highest %lld)",
                       (long long)n, (long long)m);
    if (rc == CH_OK)
        rc = check_audit_order(s, err);
    if (rc == CH_OK) {
        chain_walk w;
        rc = walk_chain(s, &w, err);
        if (rc == CH_OK && w.broken)
            rc = violation(s, err, "audit chain broken: %s", w.why);
    }
    return rc;
}

static ch_err sq_check(void *be, ch_error *err)
{
    return txn(be, 0, check_body, NULL, "checking the store", err);
}

/* ---- monitoring results ------------------------------------------------ */

typedef struct monitor_put_ctx {
    const char *kind;
    int64_t version, since_ms, until_ms, predictions;
    const char *json;
} monitor_put_ctx;

static ch_err monitor_put_body(sq *s, void *vc, ch_error *err)
{
    monitor_put_ctx *c = vc;
    char at[CH__REGISTRY_TS_LEN];
    const char *what = "storing a monitoring result";
    ch_err rc;
    ch__registry_now(at);
    rc =
        exec(s, what, err,
             "INSERT INTO monitor_results (kind, model_version, computed_at, since_ms, until_ms, "
             "predictions, result_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
             "tItIIit", c->kind, c->version, at, c->since_ms, c->until_ms, c->predictions, c->json);
    /* History is bounded: the oldest of a kind go past the limit. */
    if (rc == CH_OK)
        rc = exec(s, what, err,
                  "DELETE FROM monitor_results WHERE kind = ?1 AND id <= (SELECT id FROM "
                  "monitor_results WHERE kind = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                  "ti", c->kind, (int64_t)CH_REGISTRY_MONITOR_KEEP);
    return rc;
}

static ch_err sq_monitor_put(void *be, const char *kind, int64_t version, int64_t since_ms,
                             int64_t until_ms, int64_t predictions, const char *json, ch_error *err)
{
    monitor_put_ctx c = {kind, version, since_ms, until_ms, predictions, json};
    return txn(be, 1, monitor_put_body, &c, "storing a monitoring result", err);
}

static void monitor_fields(obj *o)
{
    o_int(o, "id", 0);
    o_text(o, "kind", 1);
    o_int(o, "model_version", 2);
    o_text(o, "computed_at", 3);
    o_ms_time(o, "since", 4);
    o_ms_time(o, "until", 5);
    o_int(o, "predictions", 6);
    o_json(o, "result", 7);
}

typedef struct monitor_list_ctx {
    const char *kind;
    int64_t limit;
    ch_buf *b;
} monitor_list_ctx;

static ch_err monitor_list_body(sq *s, void *vc, ch_error *err)
{
    monitor_list_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "listing monitoring results";
    ch_err rc =
        prep(s, &st, what, err,
             "SELECT id, kind, model_version, computed_at, since_ms, until_ms, predictions, "
             "result_json FROM monitor_results WHERE kind = ?1 ORDER BY id DESC LIMIT ?2",
             "ti", c->kind, c->limit);
    if (rc != CH_OK)
        return rc;
    return array_rows(s, st, c->b, monitor_fields, what, err);
}

static ch_err sq_monitor_list(void *be, const char *kind, size_t limit, ch_buf *b, ch_error *err)
{
    monitor_list_ctx c = {kind, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit, b};
    return txn(be, 0, monitor_list_body, &c, "listing monitoring results", err);
}

/* ---- background jobs ----------------------------------------------------- */

#define JOB_COLS                                                                                   \
    "id, kind, status, trigger, actor, params_json, progress, stage, result_json, error, "         \
    "cancel_requested, created_ms, started_ms, ended_ms, owner, heartbeat_ms"

static void job_fields(obj *o)
{
    o_int(o, "id", 0);
    o_text(o, "kind", 1);
    o_text(o, "status", 2);
    o_text(o, "trigger", 3);
    o_text(o, "actor", 4);
    o_json(o, "params", 5);
    o_num(o, "progress", 6);
    o_text(o, "stage", 7);
    o_json(o, "result", 8);
    o_text(o, "error", 9);
    o_bool(o, "cancel_requested", 10);
    o_ms_time(o, "created", 11);
    o_ms_time(o, "started", 12);
    o_ms_time(o, "ended", 13);
    o_text(o, "owner", 14);
    o_ms_time(o, "heartbeat", 15);
}

typedef struct job_ctx {
    const ch__job_change *j;
    int64_t id; /* in: the job; out: a new job's id */
    int64_t n;  /* jobs interrupted */
    int status; /* out: the status after a cancel */
    ch_buf *b;  /* listings */
    int64_t limit;
} job_ctx;

static ch_err job_add_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    const char *what = "adding a job";
    int64_t other = 0;
    int found = 0;
    ch_err rc = query_i64(s, &other, &found, what, err,
                          "SELECT id FROM jobs WHERE kind = ?1 AND status IN ('queued', 'running')",
                          "t", c->j->kind);
    if (rc != CH_OK)
        return rc;
    if (found)
        return ch_error_set(err, CH_EBUSY, "%s: a %s job is already queued or running (job %lld)",
                            s->path, c->j->kind, (long long)other);
    rc = exec(s, what, err,
              "INSERT INTO jobs (kind, status, trigger, actor, params_json, created_ms) "
              "VALUES (?1, 'queued', ?2, ?3, ?4, ?5)",
              "tttti", c->j->kind, c->j->trigger, c->j->actor, c->j->json, ch__registry_now_ms());
    if (rc == CH_OK)
        c->id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static ch_err sq_job_add(void *be, const ch__job_change *j, int64_t *id, ch_error *err)
{
    job_ctx c = {j, 0, 0, 0, NULL, 0};
    ch_err rc = txn(be, 1, job_add_body, &c, "adding a job", err);
    if (rc == CH_OK)
        *id = c.id;
    return rc;
}

/* Which status may follow which: queued -> running -> an end, and queued
 * straight to an end (cancelled, failed). */
static ch_err job_update_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    const ch__job_change *j = c->j;
    const char *what = "updating a job";
    char from[16];
    int found = 0;
    int64_t now = ch__registry_now_ms();
    ch_err rc = query_text(s, from, sizeof from, &found, what, err,
                           "SELECT status FROM jobs WHERE id = ?1", "i", c->id);
    if (rc != CH_OK)
        return rc;
    if (!found)
        return ch_error_set(err, CH_ENOTFOUND, "%s: no job %lld", s->path, (long long)c->id);
    if (strcmp(from, ch_job_status_name(j->status)) != 0 && !ch__job_move_ok(from, j->status))
        return ch_error_set(err, CH_EINVAL, "%s: job %lld is %s and cannot become %s", s->path,
                            (long long)c->id, from, ch_job_status_name(j->status));
    rc = exec(s, what, err,
              "UPDATE jobs SET status = ?2, progress = CASE WHEN ?3 < 0 THEN progress ELSE ?3 END, "
              "stage = COALESCE(?4, stage), result_json = COALESCE(?5, result_json), "
              "error = COALESCE(?6, error), "
              "started_ms = CASE WHEN ?2 = 'running' AND started_ms IS NULL THEN ?7 ELSE "
              "started_ms END, "
              "ended_ms = CASE WHEN ?2 IN ('succeeded', 'failed', 'cancelled', 'interrupted') "
              "THEN ?7 ELSE ended_ms END, "
              "heartbeat_ms = CASE WHEN ?2 = 'running' THEN ?7 ELSE heartbeat_ms END WHERE id = ?1",
              "itdttti", c->id, ch_job_status_name(j->status), j->progress, j->stage, j->json,
              j->error, now);
    return rc;
}

static ch_err sq_job_update(void *be, int64_t id, const ch__job_change *j, ch_error *err)
{
    job_ctx c = {j, id, 0, 0, NULL, 0};
    return txn(be, 1, job_update_body, &c, "updating a job", err);
}

static ch_err job_claim_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    int64_t id = 0;
    int64_t now = ch__registry_now_ms();
    int found = 0;
    ch_err rc = query_i64(s, &id, &found, "claiming a job", err,
                          "SELECT id FROM jobs WHERE kind = ?1 AND status = 'queued' ORDER BY id "
                          "LIMIT 1",
                          "t", c->j->kind);
    c->id = 0;
    if (rc != CH_OK || !found)
        return rc;
    rc = exec(s, "claiming a job", err,
              "UPDATE jobs SET status = 'running', started_ms = ?2, heartbeat_ms = ?2, owner = ?3 "
              "WHERE id = ?1 AND status = 'queued'",
              "iit", id, now, c->j->owner);
    if (rc == CH_OK && sqlite3_changes(s->db) == 1)
        c->id = id;
    return rc;
}

static ch_err sq_job_claim(void *be, const ch__job_change *j, int64_t *id, ch_error *err)
{
    job_ctx c = {j, 0, 0, 0, NULL, 0};
    ch_err rc = txn(be, 1, job_claim_body, &c, "claiming a job", err);
    if (rc == CH_OK)
        *id = c.id;
    return rc;
}

static ch_err job_beat_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    return exec(s, "recording a job's heartbeat", err,
                "UPDATE jobs SET heartbeat_ms = ?2 WHERE id = ?1 AND status = 'running'", "ii",
                c->id, ch__registry_now_ms());
}

static ch_err sq_job_heartbeat(void *be, int64_t id, ch_error *err)
{
    job_ctx c = {NULL, id, 0, 0, NULL, 0};
    return txn(be, 1, job_beat_body, &c, "recording a job's heartbeat", err);
}

static ch_err job_cancel_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    const char *what = "cancelling a job";
    char from[16];
    int found = 0;
    ch_err rc = query_text(s, from, sizeof from, &found, what, err,
                           "SELECT status FROM jobs WHERE id = ?1", "i", c->id);
    if (rc != CH_OK)
        return rc;
    if (!found)
        return ch_error_set(err, CH_ENOTFOUND, "%s: no job %lld", s->path, (long long)c->id);
    if (strcmp(from, "queued") == 0) {
        c->status = CH_JOB_CANCELLED;
        rc = exec(s, what, err,
                  "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, ended_ms = ?2, "
                  "error = 'cancelled before it started' WHERE id = ?1",
                  "ii", c->id, ch__registry_now_ms());
    } else if (strcmp(from, "running") == 0) {
        c->status = CH_JOB_RUNNING;
        rc = exec(s, what, err, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", "i", c->id);
    } else {
        return ch_error_set(err, CH_EINVAL, "%s: job %lld has already ended (%s)", s->path,
                            (long long)c->id, from);
    }
    if (rc == CH_OK) {
        char target[32];
        snprintf(target, sizeof target, "job %lld", (long long)c->id);
        rc = audit_add(s, c->j->actor, "job-cancel", NULL, 0, 0, target, NULL, NULL, err);
    }
    return rc;
}

static ch_err sq_job_cancel(void *be, int64_t id, const ch__job_change *j, int *status,
                            ch_error *err)
{
    job_ctx c = {j, id, 0, 0, NULL, 0};
    ch_err rc = txn(be, 1, job_cancel_body, &c, "cancelling a job", err);
    if (rc == CH_OK)
        *status = c.status;
    return rc;
}

/* The running jobs an interrupt takes: every one (?3 = 0), or those
 * whose heartbeat (their start, before the first) is older than ?4, and
 * those of owner ?5. */
#define JOBS_GONE                                                                                  \
    "status = 'running' AND (?3 = 0 OR COALESCE(heartbeat_ms, started_ms, created_ms) < ?4 OR "    \
    "owner = ?5)"

static ch_err job_interrupt_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    char now[CH__REGISTRY_TS_LEN];
    int64_t now_ms = ch__registry_now_ms();
    int64_t cut = now_ms - c->j->stale_ms;
    ch_err rc;
    /* The tracked run an unfinished job had begun (its result names it)
     * ends with the job: failed, "interrupted", not running for ever. */
    ch__registry_now(now);
    rc = exec(s, "ending the runs of interrupted jobs", err,
              "UPDATE runs SET status = 'failed', ended = ?1, "
              "summary_json = '{\"reason\": \"interrupted\", \"error\": ' || "
              "json_quote(COALESCE(?2, 'the server stopped while the job ran')) || '}' "
              "WHERE status = 'running' AND id IN (SELECT json_extract(result_json, '$.run_id') "
              "FROM jobs WHERE " JOBS_GONE " AND json_valid(result_json))",
              "ttiit", now, c->j->error, c->j->stale_ms, cut, c->j->owner);
    if (rc != CH_OK)
        return rc;
    rc = exec(s, "marking jobs interrupted", err,
              "UPDATE jobs SET status = 'interrupted', ended_ms = ?1, "
              "error = COALESCE(?2, 'interrupted') WHERE " JOBS_GONE,
              "itiit", now_ms, c->j->error, c->j->stale_ms, cut, c->j->owner);
    if (rc == CH_OK)
        c->n = sqlite3_changes(s->db);
    return rc;
}

static ch_err sq_jobs_interrupt(void *be, const ch__job_change *j, int64_t *n, ch_error *err)
{
    job_ctx c = {j, 0, 0, 0, NULL, 0};
    ch_err rc = txn(be, 1, job_interrupt_body, &c, "marking jobs interrupted", err);
    if (rc == CH_OK)
        *n = c.n;
    return rc;
}

static ch_err jobs_list_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "listing jobs";
    ch_err rc;
    if (c->id > 0) {
        int row = 0;
        obj o;
        rc = prep(s, &st, what, err, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1", "i", c->id);
        if (rc == CH_OK)
            rc = step(s, st, &row, what, err);
        if (rc == CH_OK && !row)
            rc = ch_error_set(err, CH_ENOTFOUND, "%s: no job %lld", s->path, (long long)c->id);
        if (rc == CH_OK) {
            obj_open(&o, c->b, st);
            job_fields(&o);
            rc = obj_close(&o);
            if (rc != CH_OK)
                rc = render_fail(s, rc, err);
        }
        sqlite3_finalize(st);
        return rc;
    }
    rc = prep(s, &st, what, err, "SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?1", "i",
              c->limit);
    if (rc != CH_OK)
        return rc;
    return array_rows(s, st, c->b, job_fields, what, err);
}

static ch_err sq_jobs_json(void *be, int64_t id, size_t limit, ch_buf *b, ch_error *err)
{
    job_ctx c = {NULL, id, 0, 0, b, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit};
    return txn(be, 0, jobs_list_body, &c, "listing jobs", err);
}

static ch_err job_flag_body(sq *s, void *vc, ch_error *err)
{
    job_ctx *c = vc;
    int found = 0;
    int64_t v = 0;
    ch_err rc = query_i64(s, &v, &found, "reading a job", err,
                          "SELECT cancel_requested FROM jobs WHERE id = ?1", "i", c->id);
    if (rc == CH_OK && !found)
        rc = ch_error_set(err, CH_ENOTFOUND, "%s: no job %lld", s->path, (long long)c->id);
    c->status = (int)v;
    return rc;
}

static ch_err sq_job_cancel_requested(void *be, int64_t id, int *yes, ch_error *err)
{
    job_ctx c = {NULL, id, 0, 0, NULL, 0};
    ch_err rc = txn(be, 0, job_flag_body, &c, "reading a job", err);
    if (rc == CH_OK)
        *yes = c.status;
    return rc;
}

/* ---- rollouts ------------------------------------------------------------- */

static int rollout_state_of(const char *t)
{
    for (int k = 0; k < 6; k++)
        if (t != NULL && strcmp(t, ch_rollout_state_name((ch_rollout_state)k)) == 0)
            return k;
    return -1;
}

#define ROLLOUT_COLS                                                                               \
    "id, candidate, champion, state, paused_from, step, steps_json, gates_json, step_started_ms, " \
    "created_ms, ended_ms, actor, reason, eval_json"

static void rollout_fields(obj *o)
{
    o_int(o, "id", 0);
    o_int(o, "candidate", 1);
    o_int(o, "champion", 2);
    o_text(o, "state", 3);
    o_text(o, "paused_from", 4);
    o_int(o, "step", 5);
    o_json(o, "steps", 6);
    o_json(o, "gates", 7);
    o_ms_time(o, "step_started", 8);
    o_ms_time(o, "created", 9);
    o_ms_time(o, "ended", 10);
    o_text(o, "actor", 11);
    o_text(o, "reason", 12);
    o_json(o, "last_evaluation", 13);
}

typedef struct rollout_ctx {
    const ch__rollout_change *c;
    ch_rollout *out;
    int found;
    ch_buf *b;
    int64_t limit;
    int64_t id;
} rollout_ctx;

/* Reads rollout 'id' (or the active one, id 0) into 'r'. */
static ch_err rollout_read(sq *s, int64_t id, ch_rollout *r, int *found, ch_error *err)
{
    sqlite3_stmt *st = NULL;
    const char *what = "reading a rollout";
    int row = 0;
    ch_err rc = prep(s, &st, what, err,
                     id > 0 ? "SELECT " ROLLOUT_COLS " FROM rollouts WHERE id = ?1"
                            : "SELECT " ROLLOUT_COLS " FROM rollouts WHERE ?1 = 0 AND state IN "
                              "('shadow', 'canary', 'paused')",
                     "i", id);
    *found = 0;
    if (rc == CH_OK)
        rc = step(s, st, &row, what, err);
    if (rc == CH_OK && row) {
        const char *t;
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        r->candidate = sqlite3_column_int64(st, 1);
        r->champion = sqlite3_column_int64(st, 2);
        r->state = (ch_rollout_state)rollout_state_of((const char *)sqlite3_column_text(st, 3));
        t = (const char *)sqlite3_column_text(st, 4);
        r->paused_from = t != NULL ? (ch_rollout_state)rollout_state_of(t) : r->state;
        r->step = (size_t)sqlite3_column_int64(st, 5);
        t = (const char *)sqlite3_column_text(st, 6);
        r->n_steps = ch__registry_parse_steps(t, r->steps, CH_ROLLOUT_MAX_STEPS);
        t = (const char *)sqlite3_column_text(st, 7);
        snprintf(r->gates_json, sizeof r->gates_json, "%s", t != NULL ? t : "{}");
        r->step_started_ms = sqlite3_column_int64(st, 8);
        r->created_ms = sqlite3_column_int64(st, 9);
        r->ended_ms = sqlite3_column_int64(st, 10);
        *found = 1;
    }
    sqlite3_finalize(st);
    return rc;
}

static ch_err rollout_start_body(sq *s, void *vc, ch_error *err)
{
    rollout_ctx *x = vc;
    const ch__rollout_change *c = x->c;
    const char *what = "starting a rollout";
    int64_t champ = 0;
    ch_rollout cur;
    int found = 0;
    char steps[256];
    char target[32];
    ch_err rc = need_version(s, c->candidate, err);
    if (rc == CH_OK)
        rc = alias_get(s, CH__ALIAS_CHAMPION, &champ, err);
    if (rc == CH_OK)
        rc = rollout_read(s, 0, &cur, &found, err);
    if (rc != CH_OK)
        return rc;
    if (found)
        return ch_error_set(err, CH_EBUSY, "%s: rollout %lld (version %lld) is still %s", s->path,
                            (long long)cur.id, (long long)cur.candidate,
                            ch_rollout_state_name(cur.state));
    if (champ == 0)
        return ch_error_set(err, CH_EINVAL, "%s: there is no champion to roll out against",
                            s->path);
    if (champ == c->candidate)
        return ch_error_set(err, CH_EINVAL, "%s: version %lld is already the champion", s->path,
                            (long long)champ);
    ch__registry_format_steps(c->steps, c->n_steps, steps, sizeof steps);
    rc = exec(s, what, err,
              "INSERT INTO rollouts (candidate, champion, state, step, steps_json, gates_json, "
              "step_started_ms, created_ms, actor, reason) VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?6, "
              "?7, ?8)",
              "iitttitt", c->candidate, champ, c->shadow ? "shadow" : "canary", steps,
              c->gates_json, ch__registry_now_ms(), c->actor, c->reason);
    if (rc != CH_OK)
        return rc;
    x->id = sqlite3_last_insert_rowid(s->db);
    snprintf(target, sizeof target, "rollout %lld", (long long)x->id);
    return audit_add(s, c->actor, "rollout-start", NULL, champ, c->candidate, target, c->reason,
                     c->details, err);
}

/* One transition, checked against what the caller saw ('expect_state',
 * 'expect_step'), so that two controllers on one store never move a
 * rollout twice: the second finds it moved and gets CH_EBUSY. */
static ch_err rollout_move_body(sq *s, void *vc, ch_error *err)
{
    rollout_ctx *x = vc;
    const ch__rollout_change *c = x->c;
    const char *what = "moving a rollout";
    ch_rollout r;
    ch__rollout_move m;
    int found = 0;
    int64_t champ = 0;
    int64_t now = ch__registry_now_ms();
    ch_err rc = rollout_read(s, x->id, &r, &found, err);
    if (rc != CH_OK)
        return rc;
    if (!found)
        return ch_error_set(err, CH_ENOTFOUND, "%s: no rollout %lld", s->path, (long long)x->id);
    if ((rc = ch__rollout_plan(s->path, &r, c, &m, err)) != CH_OK)
        return rc;
    switch (m.kind) {
    case CH__MOVE_PROMOTE:
        /* Past the last step: the candidate becomes champion, in the
         * same transaction as the rollout's end. */
        rc = alias_get(s, CH__ALIAS_CHAMPION, &champ, err);
        if (rc == CH_OK)
            rc = alias_set(s, CH__ALIAS_CHAMPION, r.candidate, err);
        if (rc == CH_OK)
            rc = audit_add(s, c->actor, "promote", CH__ALIAS_CHAMPION, champ, r.candidate, m.target,
                           c->reason != NULL ? c->reason : "rollout completed", c->details, err);
        if (rc == CH_OK)
            rc = exec(s, what, err,
                      "UPDATE rollouts SET state = 'promoted', ended_ms = ?2, eval_json = "
                      "COALESCE(?3, eval_json) WHERE id = ?1",
                      "iit", r.id, now, c->eval_json);
        break;
    case CH__MOVE_STEP:
        rc = exec(s, what, err,
                  "UPDATE rollouts SET state = 'canary', step = ?2, step_started_ms = ?3, "
                  "eval_json = COALESCE(?4, eval_json) WHERE id = ?1",
                  "iiit", r.id, m.step, now, c->eval_json);
        break;
    case CH__MOVE_PAUSE:
        rc = exec(s, what, err,
                  "UPDATE rollouts SET paused_from = state, state = 'paused' WHERE id = ?1", "i",
                  r.id);
        break;
    case CH__MOVE_RESUME:
        /* The step's clock starts again: a pause must not count as time
         * the candidate was watched. */
        rc = exec(s, what, err,
                  "UPDATE rollouts SET state = paused_from, paused_from = NULL, step_started_ms = "
                  "?2 WHERE id = ?1",
                  "ii", r.id, now);
        break;
    case CH__MOVE_END:
        rc = exec(s, what, err,
                  "UPDATE rollouts SET state = ?2, ended_ms = ?3, eval_json = COALESCE(?4, "
                  "eval_json), reason = COALESCE(?5, reason) WHERE id = ?1",
                  "ititt", r.id, ch_rollout_state_name(c->end_state), now, c->eval_json, c->reason);
        break;
    case CH__MOVE_EVAL:
        return exec(s, what, err, "UPDATE rollouts SET eval_json = ?2 WHERE id = ?1", "it", r.id,
                    c->eval_json);
    }
    if (rc == CH_OK)
        rc = audit_add(s, c->actor, m.action, NULL, r.champion, r.candidate, m.target, c->reason,
                       c->details, err);
    return rc;
}

static ch_err sq_rollout_start(void *be, const ch__rollout_change *c, int64_t *id, ch_error *err)
{
    rollout_ctx x = {c, NULL, 0, NULL, 0, 0};
    ch_err rc = txn(be, 1, rollout_start_body, &x, "starting a rollout", err);
    if (rc == CH_OK)
        *id = x.id;
    return rc;
}

static ch_err sq_rollout_move(void *be, int64_t id, const ch__rollout_change *c, ch_error *err)
{
    rollout_ctx x = {c, NULL, 0, NULL, 0, id};
    return txn(be, 1, rollout_move_body, &x, "moving a rollout", err);
}

static ch_err rollout_get_body(sq *s, void *vc, ch_error *err)
{
    rollout_ctx *x = vc;
    return rollout_read(s, x->id, x->out, &x->found, err);
}

static ch_err sq_rollout_get(void *be, int64_t id, ch_rollout *out, int *found, ch_error *err)
{
    rollout_ctx x = {NULL, out, 0, NULL, 0, id};
    ch_err rc = txn(be, 0, rollout_get_body, &x, "reading a rollout", err);
    if (rc == CH_OK)
        *found = x.found;
    return rc;
}

static ch_err rollouts_list_body(sq *s, void *vc, ch_error *err)
{
    rollout_ctx *x = vc;
    sqlite3_stmt *st = NULL;
    const char *what = "listing rollouts";
    ch_err rc;
    if (x->id > 0) {
        int row = 0;
        obj o;
        rc = prep(s, &st, what, err, "SELECT " ROLLOUT_COLS " FROM rollouts WHERE id = ?1", "i",
                  x->id);
        if (rc == CH_OK)
            rc = step(s, st, &row, what, err);
        if (rc == CH_OK && !row)
            rc = ch_error_set(err, CH_ENOTFOUND, "%s: no rollout %lld", s->path, (long long)x->id);
        if (rc == CH_OK) {
            obj_open(&o, x->b, st);
            rollout_fields(&o);
            rc = obj_close(&o);
            if (rc != CH_OK)
                rc = render_fail(s, rc, err);
        }
        sqlite3_finalize(st);
        return rc;
    }
    rc = prep(s, &st, what, err, "SELECT " ROLLOUT_COLS " FROM rollouts ORDER BY id DESC LIMIT ?1",
              "i", x->limit);
    if (rc != CH_OK)
        return rc;
    return array_rows(s, st, x->b, rollout_fields, what, err);
}

static ch_err sq_rollouts_json(void *be, int64_t id, size_t limit, ch_buf *b, ch_error *err)
{
    rollout_ctx x = {NULL, NULL, 0, b, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit, id};
    return txn(be, 0, rollouts_list_body, &x, "listing rollouts", err);
}

const ch__registry_ops ch__registry_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .add_dataset = sq_add_dataset,
    .run_begin = sq_run_begin,
    .run_metric = sq_run_metric,
    .run_end = sq_run_end,
    .add_artifact = sq_add_artifact,
    .register_version = sq_register,
    .promote = sq_promote,
    .rollback = sq_rollback,
    .resolve = sq_resolve,
    .runs_json = sq_runs_json,
    .run_json = sq_run_json,
    .models_json = sq_models_json,
    .model_json = sq_model_json,
    .audit_json = sq_audit_json,
    .check = sq_check,
    .audit_append = sq_audit_append,
    .audit_verify = sq_audit_verify,
    .user_add = sq_user_add,
    .user_get = sq_user_get,
    .user_change = sq_user_change,
    .users_json = sq_users_json,
    .key_add = sq_key_add,
    .key_lookup = sq_key_lookup,
    .key_revoke = sq_key_revoke,
    .keys_json = sq_keys_json,
    .log_predictions = sq_log_predictions,
    .feedback_add = sq_feedback_add,
    .feedback_count = sq_feedback_count,
    .feedback_json = sq_feedback_json,
    .predictions_scan = sq_predictions_scan,
    .predictions_count = sq_predictions_count,
    .monitor_put = sq_monitor_put,
    .monitor_list = sq_monitor_list,
    .job_add = sq_job_add,
    .job_update = sq_job_update,
    .job_cancel = sq_job_cancel,
    .job_cancel_requested = sq_job_cancel_requested,
    .job_claim = sq_job_claim,
    .job_heartbeat = sq_job_heartbeat,
    .jobs_interrupt = sq_jobs_interrupt,
    .jobs_json = sq_jobs_json,
    .rollout_start = sq_rollout_start,
    .rollout_move = sq_rollout_move,
    .rollout_get = sq_rollout_get,
    .rollouts_json = sq_rollouts_json,
};
