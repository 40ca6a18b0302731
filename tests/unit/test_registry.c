/*
 * test_registry.c -- the experiment tracker and model registry, through
 * include/ch/registry.h, on real SQLite files in the test's temporary
 * directory, or, with CH_TEST_STORE_URL set to a PostgreSQL URL (tests/run
 * starts a server), on a schema of that database per test.
 *
 * Besides round trips of every call, these tests attack the promises the
 * header makes: concurrent writers in separate processes, a process
 * killed in the middle of a promotion or a registration, audit rows that
 * cannot be changed, read-only, missing, corrupt and "newer" stores, and
 * every allocation failing in turn.
 *
 * Tests may use sqlite3.h directly (and psql on PostgreSQL) to tamper with
 * a store: the rule that only registry_sqlite.c includes it binds library
 * code, not tests. Tests about SQLite's files run on SQLite only; on
 * PostgreSQL they report a skip that names the reason.
 *
 * Forked helper processes end with _exit(): exit() would run the
 * harness's atexit handler and remove the test's temporary directory
 * under the other processes' feet.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/json.h"
#include "ch/registry.h"
#include "../harness.h"

/* ---- helpers --------------------------------------------------------- */

static const char *tmp_path(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", ch_test_tmpdir(), name);
    return buf[k];
}

/* A 64-hex-digit hash made from 'n'. */
static const char *hash_of(unsigned n)
{
    static char buf[4][65];
    static int k;
    k = (k + 1) % 4;
    for (int i = 0; i < 64; i++)
        buf[k][i] = "0123456789abcdef"[(n >> (4 * (i % 8))) & 15];
    buf[k][64] = '\0';
    return buf[k];
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static ch_registry *open_store(const char *url)
{
    ch_registry *r = NULL;
    ch_error err = {0};
    ch_err rc = ch_registry_open(url, NULL, &r, &err);
    if (rc != CH_OK)
        FAIL("open %s: %s: %s", url, ch_strerror(rc), err.msg);
    return r;
}

/* A run on a fresh dataset, for registering versions. */
static int64_t new_run(ch_registry *r)
{
    int64_t id = 0;
    ch_error err = {0};
    ch_err rc = ch_registry_add_dataset(r, hash_of(7), "data/telco.csv", 7043, &err);
    if (rc == CH_OK)
        rc = ch_registry_run_begin(r, hash_of(7), "{\"seed\":1}", "{\"code\":\"t\"}", &id, &err);
    if (rc != CH_OK)
        FAIL("new run: %s: %s", ch_strerror(rc), err.msg);
    return id;
}

static int64_t reg(ch_registry *r, int64_t run, unsigned k)
{
    int64_t v = 0;
    ch_error err = {0};
    char path[64];
    ch_err rc;
    snprintf(path, sizeof path, "models/m%u.bundle", k);
    rc = ch_registry_register(r, run, path, hash_of(1000 + k), "xgboost", "{\"auc\":0.8}", "tester",
                              "test", &v, &err);
    if (rc != CH_OK)
        FAIL("register: %s: %s", ch_strerror(rc), err.msg);
    return v;
}

static int64_t alias_of(ch_registry *r, const char *alias)
{
    int64_t v = 0;
    ch_error err = {0};
    ch_err rc = ch_registry_resolve(r, alias, &v, NULL, 0, &err);
    if (rc == CH_ENOTFOUND)
        return 0;
    if (rc != CH_OK)
        FAIL("resolve %s: %s: %s", alias, ch_strerror(rc), err.msg);
    return v;
}

static void check_ok(ch_registry *r)
{
    ch_error err = {0};
    ch_err rc = ch_registry_check(r, &err);
    if (rc != CH_OK)
        FAIL("check: %s: %s", ch_strerror(rc), err.msg);
}

typedef ch_err (*json_call)(ch_registry *r, ch_buf *b, ch_error *err);

/* Parses the output of a read call; the caller frees the document. */
static ch_json *parse_buf(ch_buf *b)
{
    ch_json *doc = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_buf_status(b));
    if (ch_json_parse(b->data, b->len, &doc, &err) != CH_OK)
        FAIL("output does not parse: %s: %.300s", err.msg, b->data);
    return doc;
}

static ch_json *audit_doc(ch_registry *r)
{
    ch_buf b;
    ch_json *doc;
    ch_error err = {0};
    ch_buf_init(&b, 1 << 24);
    if (ch_registry_audit_json(r, &b, &err) != CH_OK)
        FAIL("audit_json: %s", err.msg);
    doc = parse_buf(&b);
    ch_buf_reset(&b);
    return doc;
}

static ch_json *models_doc(ch_registry *r)
{
    ch_buf b;
    ch_json *doc;
    ch_error err = {0};
    ch_buf_init(&b, 1 << 24);
    if (ch_registry_models_json(r, &b, &err) != CH_OK)
        FAIL("models_json: %s", err.msg);
    doc = parse_buf(&b);
    ch_buf_reset(&b);
    return doc;
}

static const char *str_of(const ch_json *obj, const char *key)
{
    const char *s = ch_json_str(ch_json_get(obj, key), NULL);
    return s != NULL ? s : "(not a string)";
}

static double num_of(const ch_json *obj, const char *key)
{
    double v = -12345;
    if (ch_json_num(ch_json_get(obj, key), &v) != 0)
        return -12345;
    return v;
}

/* Number of audit rows with 'action' (and 'to', when > 0). */
static int count_audit(ch_registry *r, const char *action, int64_t to)
{
    ch_json *doc = audit_doc(r);
    int n = 0;
    for (size_t i = 0; i < ch_json_len(doc); i++) {
        const ch_json *row = ch_json_at(doc, i);
        if (strcmp(str_of(row, "action"), action) == 0 && (to <= 0 || num_of(row, "to") == to))
            n++;
    }
    ch_json_free(doc);
    return n;
}

/* The last audit row, as a document of its own (caller frees). */
static ch_json *last_audit(ch_registry *r, size_t *n_rows)
{
    ch_json *doc = audit_doc(r);
    ch_buf b;
    ch_json *row = NULL;
    size_t n = ch_json_len(doc);
    ASSERT(n > 0);
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_json_dump(ch_json_at(doc, n - 1), &b));
    row = parse_buf(&b);
    ch_buf_reset(&b);
    ch_json_free(doc);
    if (n_rows != NULL)
        *n_rows = n;
    return row;
}

static void remove_store(const char *path)
{
    char side[700];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* Runs raw SQL on a store; returns SQLite's result code and copies its
 * message. On PostgreSQL any failure reads as SQLITE_CONSTRAINT. */
static int raw_sql(const char *path, const char *sql, char *msg, size_t cap)
{
    sqlite3 *db = NULL;
    char *em = NULL;
    int rc;
    if (ch_test_store_pg())
        return ch_test_pg_sql(path, sql, msg, cap) == 0 ? SQLITE_OK : SQLITE_CONSTRAINT;
    rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, &em);
    if (msg != NULL)
        snprintf(msg, cap, "%s", em != NULL ? em : sqlite3_errmsg(db));
    sqlite3_free(em);
    sqlite3_close(db);
    return rc;
}

/* ---- opening --------------------------------------------------------- */

TEST(opts_defaults)
{
    ch_registry_opts o;
    memset(&o, 0x55, sizeof o);
    ch_registry_opts_default(&o);
    ASSERT_INT_EQ(o.busy_timeout_ms, 10000);
    ASSERT_INT_EQ(o.read_only, 0);
    ASSERT_INT_EQ(o.test_pause_ms, 0);
}

TEST(url_schemes)
{
    ch_registry *r = NULL;
    ch_error err = {0};
    char url[700];

    /* A plain path creates the store; "sqlite:" and "sqlite:///" reach
     * the same file. */
    r = open_store(tmp_path("a.db"));
    reg(r, new_run(r), 1);
    ch_registry_close(r);
    snprintf(url, sizeof url, "sqlite:%s", tmp_path("a.db"));
    r = open_store(url);
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    ch_registry_close(r);
    ASSERT(tmp_path("a.db")[0] == '/');
    snprintf(url, sizeof url, "sqlite://%s", tmp_path("a.db"));
    r = open_store(url);
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    ch_registry_close(r);

    /* Other schemes are refused by name, and PostgreSQL wants a URI. */
    r = NULL;
    ASSERT_ERR(ch_registry_open("mysql://db.example/churn", NULL, &r, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "mysql");
    ASSERT(r == NULL);
    ASSERT_ERR(ch_registry_open("postgresql:churn", NULL, &r, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "postgresql://");
    ASSERT(r == NULL);
    ASSERT_ERR(ch_registry_open("sqlite://host/x.db", NULL, &r, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_open("sqlite:", NULL, &r, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_open("", NULL, &r, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_open(NULL, NULL, &r, &err), CH_EINVAL);
    ASSERT(r == NULL);

    /* A colon without "//" is part of a file name, and "file:" names are
     * not read as SQLite URIs. */
    ASSERT(chdir(ch_test_tmpdir()) == 0);
    r = open_store("odd:name.db");
    ch_registry_close(r);
    ASSERT(access("odd:name.db", F_OK) == 0);
    r = open_store("file:x.db?mode=memory");
    ch_registry_close(r);
    ASSERT(access("file:x.db?mode=memory", F_OK) == 0);
    ch_registry_close(NULL);
}

/* A PostgreSQL store that cannot be reached: a clear error naming the
 * store, with the password kept out of the message. No server is needed:
 * the socket directory does not exist. */
TEST(postgresql_unreachable)
{
    ch_registry *r = NULL;
    ch_error err = {0};
    ASSERT_ERR(ch_registry_open("postgresql://ann:s3cret-pw@/churn?host=/nonexistent/churn-pg"
                                "&connect_timeout=2",
                                NULL, &r, &err),
               CH_EDB);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(err.msg, "cannot open the store");
    ASSERT_CONTAINS(err.msg, "postgresql://ann:***@/churn");
    ASSERT(strstr(err.msg, "s3cret") == NULL);
    memset(&err, 0, sizeof err);
    ASSERT_ERR(
        ch_registry_open("postgres:///churn?host=/nonexistent/x&password=hunter2", NULL, &r, &err),
        CH_EDB);
    ASSERT_CONTAINS(err.msg, "password=***");
    ASSERT(strstr(err.msg, "hunter2") == NULL);
    /* A URL libpq cannot read is refused as the store's error too. */
    ASSERT_ERR(ch_registry_open("postgresql://[::1/churn", NULL, &r, &err), CH_EDB);
    ASSERT(r == NULL);
}

/* The server ends the store's idle connection (as a restart or a proxy
 * would): the next call, read or write, reconnects and succeeds. */
TEST(postgresql_connection_dropped)
{
    char url[1200];
    char app[64];
    char sql[256];
    char msg[512];
    ch_registry *r;
    ch_error err = {0};
    ch_buf b;
    int64_t run;

    if (!ch_test_store_pg())
        SKIP("a PostgreSQL connection the server ends");
    snprintf(app, sizeof app, "churn_drop_%ld", (long)getpid());
    snprintf(url, sizeof url, "%s&application_name=%s", ch_test_store("drop"), app);
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '%s' "
             "AND pid <> pg_backend_pid()",
             app);
    r = open_store(url);
    run = new_run(r);
    ASSERT(run > 0);
    ASSERT(ch_test_pg_sql(url, sql, msg, sizeof msg) == 0);
    sleep_ms(100);
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_registry_runs_json(r, 10, &b, &err));
    ASSERT(b.data != NULL && strstr(b.data, "\"id\":") != NULL);
    ch_buf_reset(&b);
    ASSERT(ch_test_pg_sql(url, sql, msg, sizeof msg) == 0);
    sleep_ms(100);
    ASSERT(new_run(r) > run);
    check_ok(r);
    ch_registry_close(r);
}

TEST(read_only_missing_file)
{
    ch_registry_opts o;
    ch_registry *r = NULL;
    ch_error err = {0};
    ch_registry_opts_default(&o);
    o.read_only = 1;
    if (ch_test_store_pg()) {
        /* A schema that does not exist is not created by a read-only open. */
        ASSERT_ERR(ch_registry_open(ch_test_store("none.db"), &o, &r, &err), CH_EDB);
        ASSERT(r == NULL);
        ASSERT_CONTAINS(err.msg, "not a churn registry");
        ASSERT_CONTAINS(err.msg, "none_db");
        return;
    }
    ASSERT_ERR(ch_registry_open(tmp_path("none.db"), &o, &r, &err), CH_EDB);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(err.msg, "none.db");
    ASSERT(access(tmp_path("none.db"), F_OK) != 0);
    /* Read-write in a missing directory fails the same way. */
    ASSERT_ERR(ch_registry_open(tmp_path("no/such/dir.db"), NULL, &r, &err), CH_EDB);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT(fwrite(data, 1, len, f) == len);
    ASSERT(fclose(f) == 0);
}

TEST(corrupt_file)
{
    unsigned char junk[8192];
    ch_registry *r = NULL;
    ch_error err = {0};
    ch_registry_opts o;
    uint32_t x = 12345;

    if (ch_test_store_pg())
        SKIP("the bytes of a SQLite file: PostgreSQL checks its own pages");
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    write_file(tmp_path("junk.db"), junk, sizeof junk);
    ASSERT_ERR(ch_registry_open(tmp_path("junk.db"), NULL, &r, &err), CH_EDB);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(err.msg, "junk.db");
    ASSERT_CONTAINS(err.msg, "not a database");
    ch_registry_opts_default(&o);
    o.read_only = 1;
    ASSERT_ERR(ch_registry_open(tmp_path("junk.db"), &o, &r, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "not a database");

    /* A short text file. */
    write_file(tmp_path("text.db"), "hello, registry\n", 16);
    ASSERT_ERR(ch_registry_open(tmp_path("text.db"), NULL, &r, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "not a database");

    /* A good store whose pages were overwritten in the middle: open may
     * still work (the header is intact), but check must not pass. */
    r = open_store(tmp_path("torn.db"));
    {
        int64_t run = new_run(r);
        for (unsigned k = 0; k < 40; k++)
            reg(r, run, k);
    }
    ch_registry_close(r);
    {
        int fd = open(tmp_path("torn.db"), O_WRONLY);
        ASSERT(fd >= 0);
        ASSERT(pwrite(fd, junk, 4096, 4096) == 4096);
        ASSERT(close(fd) == 0);
    }
    r = NULL;
    {
        ch_err rc = ch_registry_open(tmp_path("torn.db"), NULL, &r, &err);
        if (rc == CH_OK) {
            ASSERT_ERR(ch_registry_check(r, &err), CH_EDB);
            ch_registry_close(r);
        } else {
            ASSERT_INT_EQ(rc, CH_EDB);
        }
    }
}

TEST(sqlite_file_of_another_program)
{
    ch_registry *r = NULL;
    ch_error err = {0};
    if (ch_test_store_pg()) {
        /* A schema of another program: tables, but no layout number. */
        const char *url = ch_test_store("other.db");
        char sql[300];
        snprintf(sql, sizeof sql,
                 "CREATE SCHEMA %s; CREATE TABLE %s.notes(x int); INSERT INTO %s.notes VALUES (1)",
                 strstr(url, "%3D") + 3, strstr(url, "%3D") + 3, strstr(url, "%3D") + 3);
        ASSERT_INT_EQ(raw_sql(url, sql, NULL, 0), SQLITE_OK);
        ASSERT_ERR(ch_registry_open(url, NULL, &r, &err), CH_EDB);
        ASSERT_CONTAINS(err.msg, "not a churn registry");
        return;
    }
    ASSERT_INT_EQ(raw_sql(tmp_path("other.db"),
                          "CREATE TABLE notes(x); INSERT INTO notes VALUES(1)", NULL, 0),
                  SQLITE_OK);
    ASSERT_ERR(ch_registry_open(tmp_path("other.db"), NULL, &r, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "not a churn registry");
}

TEST(newer_layout)
{
    const char *path = ch_test_store("new.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    ch_registry_opts o;
    ch_registry_close(r);
    ASSERT_INT_EQ(raw_sql(path,
                          ch_test_store_pg() ? "UPDATE churn_layout SET layout = 99"
                                             : "PRAGMA user_version = 99",
                          NULL, 0),
                  SQLITE_OK);
    r = NULL;
    ASSERT_ERR(ch_registry_open(path, NULL, &r, &err), CH_EDB);
    ASSERT(r == NULL);
    ASSERT_CONTAINS(err.msg, "layout 99");
    ch_registry_opts_default(&o);
    o.read_only = 1;
    ASSERT_ERR(ch_registry_open(path, &o, &r, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "newer");
}

TEST(read_only_store)
{
    ch_registry_opts o;
    ch_registry *r = open_store(ch_test_store("ro.db"));
    ch_error err = {0};
    int64_t run = new_run(r);
    int64_t v = 0;
    ch_buf b;

    reg(r, run, 1);
    ch_registry_close(r);

    ch_registry_opts_default(&o);
    o.read_only = 1;
    r = NULL;
    ASSERT_OK(ch_registry_open(ch_test_store("ro.db"), &o, &r, &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_registry_models_json(r, &b, &err));
    ch_buf_reset(&b);
    check_ok(r);
    ASSERT_ERR(
        ch_registry_register(r, run, "m.bundle", hash_of(5), "xgboost", NULL, "t", NULL, &v, &err),
        CH_EDB);
    ASSERT_CONTAINS(err.msg, "read-only");
    ASSERT_ERR(ch_registry_add_dataset(r, hash_of(9), "x.csv", 1, &err), CH_EDB);
    ASSERT_ERR(ch_registry_rollback(r, "t", NULL, &v, &err), CH_EDB);
    ch_registry_close(r);

    /* A file the process cannot write. Root ignores permissions, so this
     * part only runs for other users. */
    if (geteuid() != 0 && !ch_test_store_pg()) {
        ASSERT(chmod(tmp_path("ro.db"), 0444) == 0);
        r = NULL;
        ASSERT_ERR(ch_registry_open(tmp_path("ro.db"), NULL, &r, &err), CH_EDB);
        ASSERT_CONTAINS(err.msg, "not writable");
        ASSERT_OK(ch_registry_open(tmp_path("ro.db"), &o, &r, &err));
        ASSERT_INT_EQ(alias_of(r, "champion"), 1);
        ASSERT_ERR(ch_registry_add_dataset(r, hash_of(9), "x.csv", 1, &err), CH_EDB);
        ch_registry_close(r);
    }
}

/* ---- runs ------------------------------------------------------------ */

TEST(runs_round_trip)
{
    ch_registry *r = open_store(ch_test_store("runs.db"));
    ch_error err = {0};
    int64_t id1 = 0;
    int64_t id2 = 0;
    ch_buf b;
    ch_json *doc;
    const ch_json *run;
    const ch_json *x;

    ASSERT_OK(ch_registry_add_dataset(r, hash_of(1), "data/a.csv", 100, &err));
    /* Idempotent, and the first path stays. */
    ASSERT_OK(ch_registry_add_dataset(r, hash_of(1), "data/a-copy.csv", 100, &err));
    ASSERT_OK(ch_registry_run_begin(
        r, hash_of(1), "{\"model\":{\"family\":\"xgboost\",\"depth\":4},\"note\":\"a \\\"q\\\"\"}",
        "{\"dataset\":\"abc\",\"seed\":42,\"code\":\"1.2.3\"}", &id1, &err));
    ASSERT(id1 > 0);
    ASSERT_OK(ch_registry_run_metric(r, id1, "cv/xgboost/2/fold1", "auc", 0.81, &err));
    ASSERT_OK(ch_registry_run_metric(r, id1, "cv/xgboost/2/fold1", "logloss", 0.43, &err));
    ASSERT_OK(ch_registry_run_metric(r, id1, "test", "auc", 0.8, &err));
    /* The same metric again keeps the last value. */
    ASSERT_OK(ch_registry_run_metric(r, id1, "test", "auc", 0.805, &err));
    ASSERT_OK(ch_registry_run_metric(r, id1, "test", "nan", NAN, &err));
    ASSERT_OK(ch_registry_add_artifact(r, id1, "bundle", "out/m.bundle", hash_of(2), &err));
    ASSERT_OK(ch_registry_add_artifact(r, id1, "report", "out/report.html", hash_of(3), &err));
    ASSERT_OK(ch_registry_run_end(r, id1, "ok", "{\"winner\":\"xgboost\",\"threshold\":0.35}", 12.5,
                                  &err));
    ASSERT_OK(ch_registry_run_begin(r, NULL, NULL, NULL, &id2, &err));
    ASSERT(id2 > id1);

    /* runs_json: newest first, summary embedded as an object. */
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_registry_runs_json(r, 0, &b, &err));
    doc = parse_buf(&b);
    ASSERT_INT_EQ(ch_json_len(doc), 2);
    run = ch_json_at(doc, 0);
    ASSERT_INT_EQ(num_of(run, "id"), id2);
    ASSERT_STR_EQ(str_of(run, "status"), "running");
    ASSERT(ch_json_typeof(ch_json_get(run, "ended")) == CH_JSON_NULL);
    ASSERT(ch_json_typeof(ch_json_get(run, "dataset")) == CH_JSON_NULL);
    run = ch_json_at(doc, 1);
    ASSERT_INT_EQ(num_of(run, "id"), id1);
    ASSERT_STR_EQ(str_of(run, "status"), "ok");
    ASSERT_NEAR(num_of(run, "seconds"), 12.5, 0);
    ASSERT_STR_EQ(str_of(run, "dataset"), hash_of(1));
    ASSERT_STR_EQ(str_of(ch_json_get(run, "summary"), "winner"), "xgboost");
    ASSERT(strlen(str_of(run, "started")) == 24);
    ASSERT(str_of(run, "started")[23] == 'Z');
    ASSERT(strcmp(str_of(run, "ended"), str_of(run, "started")) >= 0);
    ch_json_free(doc);

    /* The limit. */
    ch_buf_clear(&b);
    ASSERT_OK(ch_registry_runs_json(r, 1, &b, &err));
    doc = parse_buf(&b);
    ASSERT_INT_EQ(ch_json_len(doc), 1);
    ch_json_free(doc);

    /* run_json: config and lineage embedded, metrics and artifacts. */
    ch_buf_clear(&b);
    ASSERT_OK(ch_registry_run_json(r, id1, &b, &err));
    doc = parse_buf(&b);
    ASSERT_INT_EQ(num_of(doc, "id"), id1);
    x = ch_json_get(doc, "config");
    ASSERT(ch_json_typeof(x) == CH_JSON_OBJECT);
    ASSERT_NEAR(num_of(ch_json_get(x, "model"), "depth"), 4, 0);
    ASSERT_STR_EQ(str_of(x, "note"), "a \"q\"");
    ASSERT_NEAR(num_of(ch_json_get(doc, "lineage"), "seed"), 42, 0);
    ASSERT_STR_EQ(str_of(ch_json_get(doc, "summary"), "winner"), "xgboost");
    x = ch_json_get(doc, "metrics");
    ASSERT_INT_EQ(ch_json_len(x), 4);
    ASSERT_STR_EQ(str_of(ch_json_at(x, 0), "scope"), "cv/xgboost/2/fold1");
    ASSERT_STR_EQ(str_of(ch_json_at(x, 0), "name"), "auc");
    ASSERT_NEAR(num_of(ch_json_at(x, 0), "value"), 0.81, 0);
    ASSERT_STR_EQ(str_of(ch_json_at(x, 2), "scope"), "test");
    ASSERT_NEAR(num_of(ch_json_at(x, 2), "value"), 0.805, 0);
    ASSERT(ch_json_typeof(ch_json_get(ch_json_at(x, 3), "value")) == CH_JSON_NULL);
    x = ch_json_get(doc, "artifacts");
    ASSERT_INT_EQ(ch_json_len(x), 2);
    ASSERT_STR_EQ(str_of(ch_json_at(x, 0), "kind"), "bundle");
    ASSERT_STR_EQ(str_of(ch_json_at(x, 0), "path"), "out/m.bundle");
    ASSERT_STR_EQ(str_of(ch_json_at(x, 0), "sha256"), hash_of(2));
    ASSERT_STR_EQ(str_of(ch_json_at(x, 1), "kind"), "report");
    ch_json_free(doc);

    /* A run without config: nulls, empty lists. */
    ch_buf_clear(&b);
    ASSERT_OK(ch_registry_run_json(r, id2, &b, &err));
    doc = parse_buf(&b);
    ASSERT(ch_json_typeof(ch_json_get(doc, "config")) == CH_JSON_NULL);
    ASSERT(ch_json_typeof(ch_json_get(doc, "metrics")) == CH_JSON_ARRAY);
    ASSERT_INT_EQ(ch_json_len(ch_json_get(doc, "metrics")), 0);
    ch_json_free(doc);

    /* A failed read leaves the buffer as it was. */
    ch_buf_clear(&b);
    ASSERT_OK(ch_buf_puts(&b, "kept"));
    ASSERT_ERR(ch_registry_run_json(r, 999, &b, &err), CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "999");
    ASSERT_STR_EQ(b.data, "kept");
    /* A cap too small for the listing is an error, not a cut. */
    {
        ch_buf small;
        ch_buf_init(&small, 20);
        ASSERT_ERR(ch_registry_runs_json(r, 0, &small, &err), CH_ELIMIT);
        ch_buf_reset(&small);
    }
    ch_buf_reset(&b);

    /* Errors. */
    ASSERT_ERR(ch_registry_run_begin(r, hash_of(99), NULL, NULL, &id2, &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_run_begin(r, "abc", NULL, NULL, &id2, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_run_begin(r, NULL, "{\"a\":", NULL, &id2, &err), CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "run config");
    ASSERT_ERR(ch_registry_run_begin(r, NULL, NULL, "[1,2]", &id2, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_run_begin(r, NULL, "{\"a\":1,\"a\":2}", NULL, &id2, &err), CH_EFORMAT);
    ASSERT_ERR(ch_registry_run_metric(r, 999, "test", "auc", 1, &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_run_metric(r, id1, "", "auc", 1, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_run_end(r, id1, "ok", NULL, 1, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "already ended");
    ASSERT_ERR(ch_registry_run_end(r, id2, "done", NULL, 1, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_run_end(r, id2, "failed", NULL, -1, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_run_end(r, 999, "failed", NULL, 1, &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_add_artifact(r, 999, "bundle", "x", hash_of(2), &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_add_artifact(r, id1, "bundle", "x", "zz", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_add_dataset(r, hash_of(4), "", 1, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_add_dataset(NULL, hash_of(4), "x", 1, &err), CH_EINVAL);
    ASSERT_OK(ch_registry_run_end(r, id2, "failed", NULL, 0.25, &err));
    check_ok(r);
    ch_registry_close(r);
}

/* ---- versions, aliases, promotion, rollback ---------------------------- */

TEST(register_and_resolve)
{
    ch_registry *r = open_store(ch_test_store("reg.db"));
    ch_error err = {0};
    int64_t run = new_run(r);
    int64_t v = 0;
    char path[64];
    ch_json *doc;
    const ch_json *m;
    const ch_json *a;

    ASSERT_INT_EQ(alias_of(r, "champion"), 0);
    ASSERT_ERR(ch_registry_resolve(r, "champion", &v, path, sizeof path, &err), CH_ENOTFOUND);
    ASSERT_INT_EQ(reg(r, run, 1), 1);
    /* The first version becomes champion and challenger. */
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    ASSERT_INT_EQ(alias_of(r, "challenger"), 1);
    ASSERT_INT_EQ(reg(r, run, 2), 2);
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    ASSERT_INT_EQ(alias_of(r, "challenger"), 2);

    ASSERT_OK(ch_registry_resolve(r, "2", &v, path, sizeof path, &err));
    ASSERT_INT_EQ(v, 2);
    ASSERT_STR_EQ(path, "models/m2.bundle");
    ASSERT_OK(ch_registry_resolve(r, "v1", &v, path, sizeof path, &err));
    ASSERT_INT_EQ(v, 1);
    ASSERT_STR_EQ(path, "models/m1.bundle");
    ASSERT_OK(ch_registry_resolve(r, "V2", NULL, path, sizeof path, &err));
    ASSERT_STR_EQ(path, "models/m2.bundle");
    ASSERT_OK(ch_registry_resolve(r, "champion", &v, path, sizeof path, &err));
    ASSERT_INT_EQ(v, 1);
    ASSERT_ERR(ch_registry_resolve(r, "v9", &v, path, sizeof path, &err), CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "9");
    ASSERT_ERR(ch_registry_resolve(r, "newest", &v, path, sizeof path, &err), CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "newest");
    ASSERT_ERR(ch_registry_resolve(r, "-1", &v, path, sizeof path, &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_resolve(r, "v", &v, path, sizeof path, &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_resolve(r, "0", &v, path, sizeof path, &err), CH_ENOTFOUND);
    /* The path must fit: "models/m2.bundle" needs 17 bytes. */
    v = 77;
    ASSERT_ERR(ch_registry_resolve(r, "2", &v, path, 16, &err), CH_ELIMIT);
    ASSERT_INT_EQ(v, 77);
    ASSERT_OK(ch_registry_resolve(r, "2", &v, path, 17, &err));

    /* models_json: newest first, aliases, metrics embedded. */
    doc = models_doc(r);
    ASSERT_INT_EQ(ch_json_len(doc), 2);
    m = ch_json_at(doc, 0);
    ASSERT_INT_EQ(num_of(m, "version"), 2);
    ASSERT_INT_EQ(num_of(m, "run_id"), run);
    ASSERT_STR_EQ(str_of(m, "family"), "xgboost");
    ASSERT_STR_EQ(str_of(m, "bundle"), "models/m2.bundle");
    ASSERT_STR_EQ(str_of(m, "sha256"), hash_of(1002));
    ASSERT_NEAR(num_of(ch_json_get(m, "metrics"), "auc"), 0.8, 0);
    a = ch_json_get(m, "aliases");
    ASSERT_INT_EQ(ch_json_len(a), 1);
    ASSERT_STR_EQ(ch_json_str(ch_json_at(a, 0), NULL), "challenger");
    a = ch_json_get(ch_json_at(doc, 1), "aliases");
    ASSERT_INT_EQ(ch_json_len(a), 1);
    ASSERT_STR_EQ(ch_json_str(ch_json_at(a, 0), NULL), "champion");
    ch_json_free(doc);

    /* The audit: register, challenger move, champion move, register,
     * challenger move. */
    doc = audit_doc(r);
    ASSERT_INT_EQ(ch_json_len(doc), 5);
    {
        static const char *const actions[] = {"register", "alias", "alias", "register", "alias"};
        static const char *const aliases[] = {NULL, "challenger", "champion", NULL, "challenger"};
        static const int from[] = {0, 0, 0, 0, 1};
        static const int to[] = {1, 1, 1, 2, 2};
        for (size_t i = 0; i < 5; i++) {
            const ch_json *row = ch_json_at(doc, i);
            ASSERT_STR_EQ(str_of(row, "action"), actions[i]);
            if (aliases[i] == NULL)
                ASSERT(ch_json_typeof(ch_json_get(row, "alias")) == CH_JSON_NULL);
            else
                ASSERT_STR_EQ(str_of(row, "alias"), aliases[i]);
            if (from[i] == 0)
                ASSERT(ch_json_typeof(ch_json_get(row, "from")) == CH_JSON_NULL);
            else
                ASSERT_INT_EQ(num_of(row, "from"), from[i]);
            ASSERT_INT_EQ(num_of(row, "to"), to[i]);
            ASSERT_STR_EQ(str_of(row, "actor"), "tester");
            ASSERT_STR_EQ(str_of(row, "reason"), "test");
            ASSERT_INT_EQ(num_of(row, "id"), (double)(i + 1));
        }
        ASSERT_NEAR(num_of(ch_json_get(ch_json_at(doc, 0), "details"), "run_id"), (double)run, 0);
    }
    ch_json_free(doc);

    /* model_json: one version plus the audit rows about it. */
    {
        ch_buf b;
        ch_buf_init(&b, 1 << 20);
        ASSERT_OK(ch_registry_model_json(r, 1, &b, &err));
        doc = parse_buf(&b);
        ASSERT_INT_EQ(num_of(doc, "version"), 1);
        ASSERT_INT_EQ(ch_json_len(ch_json_get(doc, "audit")), 4);
        ch_json_free(doc);
        ASSERT_ERR(ch_registry_model_json(r, 3, &b, &err), CH_ENOTFOUND);
        ch_buf_reset(&b);
    }

    /* Registration errors. */
    ASSERT_ERR(ch_registry_register(r, 999, "m", hash_of(1), "xgboost", NULL, "t", NULL, &v, &err),
               CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_register(r, run, "m", hash_of(1), "xgboost", "[3]", "t", NULL, &v, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_register(r, run, "m", hash_of(1), "xgboost", NULL, "", NULL, &v, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_register(r, run, "m", hash_of(1), "", NULL, "t", NULL, &v, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_register(r, run, "m", hash_of(1), "x", NULL, "t", NULL, NULL, &err),
               CH_EINVAL);
    /* Upper-case hashes are stored in lower case. */
    {
        char up[65];
        memcpy(up, hash_of(0xABCDEF), 65);
        for (int i = 0; i < 64; i++)
            if (up[i] >= 'a' && up[i] <= 'f')
                up[i] = (char)(up[i] - 'a' + 'A');
        ASSERT_OK(ch_registry_register(r, run, "m3", up, "linear", NULL, "t", NULL, &v, &err));
        doc = models_doc(r);
        ASSERT_STR_EQ(str_of(ch_json_at(doc, 0), "sha256"), hash_of(0xABCDEF));
        ASSERT(ch_json_typeof(ch_json_get(ch_json_at(doc, 0), "metrics")) == CH_JSON_NULL);
        ch_json_free(doc);
    }
    check_ok(r);
    ch_registry_close(r);
}

TEST(promotion_gate)
{
    ch_registry *r = open_store(ch_test_store("gate.db"));
    ch_error err = {0};
    int64_t run = new_run(r);
    ch_promotion p;
    ch_json *row;
    const ch_json *d;
    size_t n_before = 0;
    size_t n_after = 0;

    reg(r, run, 1);
    reg(r, run, 2);
    reg(r, run, 3);
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);

    /* Refused: 0.80 < 0.79 + 0.02. Nothing moves; the refusal is audited. */
    row = last_audit(r, &n_before);
    ch_json_free(row);
    p = (ch_promotion){2, 0.80, 0.79, 0.02, 0, "sha:abc/test"};
    ASSERT_ERR(ch_registry_promote(r, &p, "ci", "nightly", &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "0.8");
    ASSERT_CONTAINS(err.msg, "0.79");
    ASSERT_CONTAINS(err.msg, "0.02");
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    ASSERT_INT_EQ(alias_of(r, "challenger"), 3);
    row = last_audit(r, &n_after);
    ASSERT_INT_EQ(n_after, n_before + 1);
    ASSERT_STR_EQ(str_of(row, "action"), "promote-refused");
    ASSERT_STR_EQ(str_of(row, "actor"), "ci");
    ASSERT_STR_EQ(str_of(row, "reason"), "nightly");
    ASSERT_INT_EQ(num_of(row, "from"), 1);
    ASSERT_INT_EQ(num_of(row, "to"), 2);
    d = ch_json_get(row, "details");
    ASSERT_NEAR(num_of(d, "candidate_score"), 0.80, 0);
    ASSERT_NEAR(num_of(d, "champion_score"), 0.79, 0);
    ASSERT_NEAR(num_of(d, "margin"), 0.02, 0);
    ASSERT_STR_EQ(str_of(d, "eval_key"), "sha:abc/test");
    {
        int f = 1;
        ASSERT(ch_json_bool(ch_json_get(d, "force"), &f) == 0 && f == 0);
    }
    ch_json_free(row);
    ASSERT_INT_EQ(count_audit(r, "promote", 0), 0);
    check_ok(r);

    /* Forced: moves, and the force is in the details. */
    p.force = 1;
    ASSERT_OK(ch_registry_promote(r, &p, "ci", "override", &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), 2);
    row = last_audit(r, NULL);
    ASSERT_STR_EQ(str_of(row, "action"), "promote");
    ASSERT_STR_EQ(str_of(row, "alias"), "champion");
    ASSERT_INT_EQ(num_of(row, "from"), 1);
    ASSERT_INT_EQ(num_of(row, "to"), 2);
    {
        int f = 0;
        int passed = 1;
        d = ch_json_get(row, "details");
        ASSERT(ch_json_bool(ch_json_get(d, "force"), &f) == 0 && f == 1);
        ASSERT(ch_json_bool(ch_json_get(d, "gate_passed"), &passed) == 0 && passed == 0);
    }
    ch_json_free(row);

    /* Passes on its own with enough margin; challenger is left alone when
     * it is the version promoted. */
    p = (ch_promotion){3, 0.85, 0.80, 0.02, 0, NULL};
    ASSERT_OK(ch_registry_promote(r, &p, "ci", NULL, &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), 3);
    ASSERT_INT_EQ(alias_of(r, "challenger"), 3);
    row = last_audit(r, NULL);
    ASSERT_INT_EQ(num_of(row, "from"), 2);
    ASSERT(ch_json_typeof(ch_json_get(ch_json_get(row, "details"), "eval_key")) == CH_JSON_NULL);
    ASSERT(ch_json_typeof(ch_json_get(row, "reason")) == CH_JSON_NULL);
    ch_json_free(row);

    /* Exactly at the margin passes (>=); NaN scores never pass. */
    reg(r, run, 4);
    p = (ch_promotion){4, 0.75, 0.5, 0.25, 0, "k"};
    ASSERT_OK(ch_registry_promote(r, &p, "ci", NULL, &err));
    reg(r, run, 5);
    p = (ch_promotion){5, NAN, 0.5, 0.0, 0, "k"};
    ASSERT_ERR(ch_registry_promote(r, &p, "ci", NULL, &err), CH_EDATA);
    p = (ch_promotion){5, 0.9, NAN, 0.0, 0, "k"};
    ASSERT_ERR(ch_registry_promote(r, &p, "ci", NULL, &err), CH_EDATA);
    ASSERT_INT_EQ(alias_of(r, "champion"), 4);

    /* Promoting the champion again changes and records nothing. */
    row = last_audit(r, &n_before);
    ch_json_free(row);
    p = (ch_promotion){4, 0.1, 0.9, 0.5, 0, "k"};
    ASSERT_OK(ch_registry_promote(r, &p, "ci", NULL, &err));
    row = last_audit(r, &n_after);
    ch_json_free(row);
    ASSERT_INT_EQ(n_after, n_before);

    /* Errors. */
    p = (ch_promotion){42, 1, 0, 0, 1, "k"};
    ASSERT_ERR(ch_registry_promote(r, &p, "ci", NULL, &err), CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "42");
    p = (ch_promotion){5, 1, 0, NAN, 0, "k"};
    ASSERT_ERR(ch_registry_promote(r, &p, "ci", NULL, &err), CH_EINVAL);
    p = (ch_promotion){5, 1, 0, 0, 0, "k"};
    ASSERT_ERR(ch_registry_promote(r, &p, NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_promote(r, NULL, "ci", NULL, &err), CH_EINVAL);
    ASSERT_INT_EQ(alias_of(r, "champion"), 4);
    ASSERT_INT_EQ(count_audit(r, "promote-refused", 0), 3);
    check_ok(r);
    ch_registry_close(r);
}

static void promote_to(ch_registry *r, int64_t v)
{
    ch_error err = {0};
    ch_promotion p = {v, 0.9, 0.5, 0.01, 0, "eval"};
    ch_err rc = ch_registry_promote(r, &p, "ci", "better", &err);
    if (rc != CH_OK)
        FAIL("promote v%lld: %s", (long long)v, err.msg);
}

TEST(rollback_chain)
{
    ch_registry *r = open_store(ch_test_store("rb.db"));
    ch_error err = {0};
    int64_t run = new_run(r);
    int64_t v = 0;
    ch_json *row;

    for (unsigned k = 1; k <= 5; k++)
        reg(r, run, k);
    ASSERT_ERR(ch_registry_rollback(r, "ops", NULL, &v, &err), CH_ENOTFOUND);
    promote_to(r, 2);
    promote_to(r, 3);
    promote_to(r, 4);

    ASSERT_OK(ch_registry_rollback(r, "ops", "bad canary", &v, &err));
    ASSERT_INT_EQ(v, 3);
    ASSERT_INT_EQ(alias_of(r, "champion"), 3);
    row = last_audit(r, NULL);
    ASSERT_STR_EQ(str_of(row, "action"), "rollback");
    ASSERT_STR_EQ(str_of(row, "alias"), "champion");
    ASSERT_STR_EQ(str_of(row, "actor"), "ops");
    ASSERT_STR_EQ(str_of(row, "reason"), "bad canary");
    ASSERT_INT_EQ(num_of(row, "from"), 4);
    ASSERT_INT_EQ(num_of(row, "to"), 3);
    ch_json_free(row);
    check_ok(r);

    ASSERT_OK(ch_registry_rollback(r, "ops", NULL, &v, &err));
    ASSERT_INT_EQ(v, 2);
    ASSERT_OK(ch_registry_rollback(r, "ops", NULL, NULL, &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    /* v1 became champion by registration, not promotion. */
    v = 77;
    ASSERT_ERR(ch_registry_rollback(r, "ops", NULL, &v, &err), CH_ENOTFOUND);
    ASSERT_INT_EQ(v, 77);
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    ASSERT_INT_EQ(count_audit(r, "rollback", 0), 3);

    /* A champion restored by rollback walks back from its own promotion:
     * promote 5 (from 1), roll back to 1, promote 3 (from 1), roll back to
     * 1 again. Then forward again from a rolled-back state. */
    promote_to(r, 5);
    ASSERT_OK(ch_registry_rollback(r, "ops", NULL, &v, &err));
    ASSERT_INT_EQ(v, 1);
    promote_to(r, 3);
    promote_to(r, 4);
    ASSERT_OK(ch_registry_rollback(r, "ops", NULL, &v, &err));
    ASSERT_INT_EQ(v, 3);
    ASSERT_OK(ch_registry_rollback(r, "ops", NULL, &v, &err));
    ASSERT_INT_EQ(v, 1);
    ASSERT_ERR(ch_registry_rollback(r, "", NULL, &v, &err), CH_EINVAL);
    check_ok(r);
    ch_registry_close(r);
}

TEST(audit_is_append_only)
{
    ch_registry *r = open_store(ch_test_store("audit.db"));
    int64_t run = new_run(r);
    char msg[256];

    reg(r, run, 1);
    reg(r, run, 2);
    promote_to(r, 2);
    ch_registry_close(r);

    ASSERT_INT_EQ(
        raw_sql(ch_test_store("audit.db"), "UPDATE audit SET actor = 'mallory'", msg, sizeof msg),
        SQLITE_CONSTRAINT);
    ASSERT_CONTAINS(msg, "append-only");
    ASSERT_INT_EQ(
        raw_sql(ch_test_store("audit.db"), "DELETE FROM audit WHERE id = 1", msg, sizeof msg),
        SQLITE_CONSTRAINT);
    ASSERT_CONTAINS(msg, "append-only");
    ASSERT_INT_EQ(raw_sql(ch_test_store("audit.db"), "DELETE FROM audit", msg, sizeof msg),
                  SQLITE_CONSTRAINT);
    if (ch_test_store_pg()) {
        ASSERT_INT_EQ(raw_sql(ch_test_store("audit.db"), "TRUNCATE audit", msg, sizeof msg),
                      SQLITE_CONSTRAINT);
        ASSERT_CONTAINS(msg, "append-only");
    }

    r = open_store(ch_test_store("audit.db"));
    ASSERT_INT_EQ(count_audit(r, "register", 0), 2);
    {
        ch_json *row = last_audit(r, NULL);
        ASSERT_STR_EQ(str_of(row, "actor"), "ci");
        ch_json_free(row);
    }
    check_ok(r);
    ch_registry_close(r);
}

TEST(check_finds_tampering)
{
    ch_registry *r = open_store(ch_test_store("tamper.db"));
    ch_error err = {0};
    int64_t run = new_run(r);
    char msg[256];

    reg(r, run, 1);
    reg(r, run, 2);
    ch_registry_close(r);

    /* An alias moved without its audit row. */
    ASSERT_INT_EQ(raw_sql(ch_test_store("tamper.db"),
                          "UPDATE aliases SET version = 2 WHERE name = "
                          "'champion'",
                          msg, sizeof msg),
                  SQLITE_OK);
    r = open_store(ch_test_store("tamper.db"));
    ASSERT_ERR(ch_registry_check(r, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "champion");
    ch_registry_close(r);
    ASSERT_INT_EQ(raw_sql(ch_test_store("tamper.db"),
                          "UPDATE aliases SET version = 1 WHERE name = 'champion'", msg,
                          sizeof msg),
                  SQLITE_OK);
    r = open_store(ch_test_store("tamper.db"));
    check_ok(r);
    ch_registry_close(r);

    /* The triggers dropped. */
    ASSERT_INT_EQ(raw_sql(ch_test_store("tamper.db"),
                          ch_test_store_pg() ? "ALTER TABLE audit DISABLE TRIGGER audit_no_update"
                                             : "DROP TRIGGER audit_no_update",
                          msg, sizeof msg),
                  SQLITE_OK);
    r = open_store(ch_test_store("tamper.db"));
    ASSERT_ERR(ch_registry_check(r, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "append-only");
    ch_registry_close(r);

    /* An audit time going backwards (possible once the trigger is gone). */
    ASSERT_INT_EQ(raw_sql(ch_test_store("tamper.db"),
                          ch_test_store_pg()
                              ? "ALTER TABLE audit ENABLE TRIGGER audit_no_update"
                              : "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN "
                                "SELECT RAISE(ABORT, 'audit rows are append-only'); END;",
                          msg, sizeof msg),
                  SQLITE_OK);
    r = open_store(ch_test_store("tamper.db"));
    check_ok(r);
    ch_registry_close(r);
    ASSERT_INT_EQ(raw_sql(ch_test_store("tamper.db"),
                          ch_test_store_pg()
                              ? "ALTER TABLE audit DISABLE TRIGGER audit_no_update; UPDATE audit "
                                "SET at = '2000-01-01T00:00:00.000Z' WHERE id = 3; ALTER TABLE "
                                "audit ENABLE TRIGGER audit_no_update"
                              : "DROP TRIGGER audit_no_update; UPDATE audit SET at = "
                                "'2000-01-01T00:00:00.000Z' WHERE id = 3; CREATE TRIGGER "
                                "audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, "
                                "'x'); END;",
                          msg, sizeof msg),
                  SQLITE_OK);
    r = open_store(ch_test_store("tamper.db"));
    ASSERT_ERR(ch_registry_check(r, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "earlier");
    ch_registry_close(r);
}

/* ---- processes ------------------------------------------------------- */

/* One concurrent writer: opens the store (racing the others to create
 * it), registers 25 versions and promotes some with random scores and
 * force flags. Returns an exit status: 0 or the failing step. */
static int writer(const char *path, unsigned seed)
{
    ch_registry *r = NULL;
    ch_error err = {0};
    int64_t run = 0;
    uint32_t x = seed * 2654435761u + 1;
    int status = 0;

    if (ch_registry_open(path, NULL, &r, &err) != CH_OK) {
        fprintf(stderr, "    writer %u: open: %s\n", seed, err.msg);
        return 10;
    }
    if (ch_registry_add_dataset(r, hash_of(seed), "d.csv", 10, &err) != CH_OK ||
        ch_registry_run_begin(r, hash_of(seed), NULL, NULL, &run, &err) != CH_OK) {
        fprintf(stderr, "    writer %u: run: %s\n", seed, err.msg);
        status = 11;
    }
    for (unsigned k = 0; status == 0 && k < 25; k++) {
        int64_t v = 0;
        ch_err rc = ch_registry_register(r, run, "m.bundle", hash_of(seed * 100 + k), "linear",
                                         NULL, "writer", NULL, &v, &err);
        if (rc != CH_OK) {
            fprintf(stderr, "    writer %u: register: %s\n", seed, err.msg);
            status = 12;
            break;
        }
        x = x * 1664525u + 1013904223u;
        if ((x >> 24) % 3 == 0) {
            ch_promotion p = {v,    (double)(x % 1000) / 1000.0, 0.5,
                              0.01, (int)((x >> 12) & 1),        "race"};
            rc = ch_registry_promote(r, &p, "writer", NULL, &err);
            if (rc != CH_OK && rc != CH_EDATA) {
                fprintf(stderr, "    writer %u: promote: %s\n", seed, err.msg);
                status = 13;
            }
        }
    }
    if (status == 0 && ch_registry_run_end(r, run, "ok", NULL, 1.0, &err) != CH_OK)
        status = 14;
    ch_registry_close(r);
    return status;
}

TEST(concurrent_writers)
{
    const char *path = ch_test_store("conc.db");
    pid_t pids[4];
    ch_registry *r;
    ch_json *doc;
    char seen[101] = {0};
    int go[2];

    /* The writers wait on 'go' so that they all race to create the store
     * at the same moment. */
    ASSERT(pipe(go) == 0);
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0)
                _exit(9);
            _exit(writer(path, (unsigned)i + 1));
        }
    }
    close(go[0]);
    close(go[1]);
    for (int i = 0; i < 4; i++) {
        int st = 0;
        ASSERT(waitpid(pids[i], &st, 0) == pids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            FAIL("writer %d ended with status %d", i + 1, st);
    }

    r = open_store(path);
    check_ok(r);
    doc = models_doc(r);
    ASSERT_INT_EQ(ch_json_len(doc), 100);
    for (size_t i = 0; i < 100; i++) {
        double v = num_of(ch_json_at(doc, i), "version");
        ASSERT(v >= 1 && v <= 100);
        ASSERT(!seen[(int)v]);
        seen[(int)v] = 1;
    }
    ch_json_free(doc);
    ASSERT_INT_EQ(count_audit(r, "register", 0), 100);
    ASSERT_INT_EQ(count_audit(r, "alias", 0), 101); /* 100 challenger moves, 1 first champion */
    {
        ch_buf b;
        ch_buf_init(&b, 1 << 20);
        ASSERT_OK(ch_registry_runs_json(r, 0, &b, NULL));
        doc = parse_buf(&b);
        ASSERT_INT_EQ(ch_json_len(doc), 4);
        ch_json_free(doc);
        ch_buf_reset(&b);
    }
    ch_registry_close(r);
}

/* Kills a child in the middle of a promotion (what = 0) or a
 * registration (what = 1): the child opens with test_pause_ms, so it
 * sleeps inside the write transaction after its first change. The store
 * must come back in the old state without the new audit rows, or in the
 * new state with them. */
static void kill_mid(int what)
{
    const char *path = ch_test_store(what == 0 ? "kill-promote.db" : "kill-register.db");
    ch_registry *r = open_store(path);
    int64_t run = new_run(r);
    int fds[2];
    pid_t pid;
    char c = 0;
    int st = 0;
    int64_t champ;

    reg(r, run, 1);
    reg(r, run, 2);
    ch_registry_close(r);
    ASSERT(pipe(fds) == 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        ch_registry_opts o;
        ch_registry *cr = NULL;
        int64_t v = 0;
        ch_registry_opts_default(&o);
        o.test_pause_ms = 2000;
        close(fds[0]);
        if (ch_registry_open(path, &o, &cr, NULL) != CH_OK)
            _exit(2);
        if (write(fds[1], "o", 1) != 1)
            _exit(3);
        ch_err rc;
        if (what == 0) {
            ch_promotion p = {2, 0.9, 0.8, 0.01, 0, "k"};
            rc = ch_registry_promote(cr, &p, "child", NULL, NULL);
        } else {
            rc = ch_registry_register(cr, run, "m3", hash_of(3), "xgboost", NULL, "child", NULL, &v,
                                      NULL);
        }
        ch_registry_close(cr);
        _exit(rc == CH_OK ? 0 : 5);
    }
    close(fds[1]);
    ASSERT(read(fds[0], &c, 1) == 1);
    close(fds[0]);
    sleep_ms(300);
    ASSERT(kill(pid, SIGKILL) == 0);
    ASSERT(waitpid(pid, &st, 0) == pid);
    ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

    r = open_store(path);
    check_ok(r);
    champ = alias_of(r, "champion");
    if (what == 0) {
        int n = count_audit(r, "promote", 0);
        if (champ == 1)
            ASSERT_INT_EQ(n, 0);
        else if (champ == 2)
            ASSERT_INT_EQ(count_audit(r, "promote", 2), 1);
        else
            FAIL("champion is v%lld", (long long)champ);
        /* Killed in the pause, which is the point of the test. */
        ASSERT_INT_EQ(champ, 1);
    } else {
        ch_json *doc = models_doc(r);
        size_t n = ch_json_len(doc);
        ch_json_free(doc);
        ASSERT_INT_EQ(champ, 1);
        if (n == 2) {
            ASSERT_INT_EQ(count_audit(r, "register", 3), 0);
            ASSERT_INT_EQ(alias_of(r, "challenger"), 2);
        } else {
            ASSERT_INT_EQ(n, 3);
            ASSERT_INT_EQ(count_audit(r, "register", 3), 1);
            ASSERT_INT_EQ(alias_of(r, "challenger"), 3);
        }
        ASSERT_INT_EQ(n, 2);
    }
    /* The lock died with the process: the store takes writes at once. */
    {
        ch_registry_opts o;
        ch_registry *w = NULL;
        ch_error err = {0};
        ch_registry_opts_default(&o);
        o.busy_timeout_ms = 500;
        ASSERT_OK(ch_registry_open(path, &o, &w, &err));
        reg(w, run, 4);
        promote_to(w, 2);
        check_ok(w);
        ch_registry_close(w);
    }
    ch_registry_close(r);
}

TEST(killed_mid_promotion)
{
    kill_mid(0);
}

TEST(killed_mid_registration)
{
    kill_mid(1);
}

TEST(busy_writer_times_out)
{
    const char *path = ch_test_store("busy.db");
    ch_registry *r = open_store(path);
    int64_t run = new_run(r);
    ch_registry_opts o;
    ch_error err = {0};
    int fds[2];
    pid_t pid;
    char c = 0;
    int st = 0;
    int64_t v = 0;
    int64_t t0;
    struct timespec ts;

    reg(r, run, 1);
    reg(r, run, 2);
    ch_registry_close(r);
    ASSERT(pipe(fds) == 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        ch_registry *cr = NULL;
        ch_promotion p = {2, 0.9, 0.8, 0.01, 1, "k"};
        int rc;
        ch_registry_opts_default(&o);
        o.test_pause_ms = 1500;
        close(fds[0]);
        if (ch_registry_open(path, &o, &cr, NULL) != CH_OK)
            _exit(2);
        if (write(fds[1], "o", 1) != 1)
            _exit(3);
        rc = ch_registry_promote(cr, &p, "child", NULL, NULL);
        ch_registry_close(cr);
        _exit(rc == CH_OK ? 0 : 4);
    }
    close(fds[1]);
    ASSERT(read(fds[0], &c, 1) == 1);
    close(fds[0]);
    sleep_ms(300);

    /* A short budget runs out while the child holds the lock. Reads do
     * not wait for writers. */
    ch_registry_opts_default(&o);
    o.busy_timeout_ms = 100;
    r = NULL;
    ASSERT_OK(ch_registry_open(path, &o, &r, &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), 1);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ASSERT_ERR(ch_registry_register(r, run, "m3", hash_of(3), "xgboost", NULL, "t", NULL, &v, &err),
               CH_EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - t0 < 1000);
    ASSERT_CONTAINS(err.msg, "100 ms");
    ch_registry_close(r);

    /* The default budget waits for the child and then succeeds. */
    r = open_store(path);
    ASSERT_INT_EQ(reg(r, run, 3), 3);
    ASSERT(waitpid(pid, &st, 0) == pid);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_INT_EQ(alias_of(r, "champion"), 2);
    check_ok(r);
    ch_registry_close(r);
}

/* ---- allocation failures --------------------------------------------- */

/* Open a fresh store and register a version, with allocation 'n' and all
 * after it failing. Every failure must be a clean error, and the store
 * left behind must pass check.
 *
 * About 3,000 allocations, each a fresh store with several fsyncs: the
 * loop runs on /dev/shm when there is one (8x faster; the file system is
 * not what this test is about). Under valgrind (CH_VALGRIND=1, set by
 * `make valgrind`) it tries every 7th allocation past the first 400,
 * which still reaches every stage of open, schema creation and
 * registration. */
TEST(out_of_memory)
{
    char dir[64] = "";
    char path[700];
    long n;
    long stride = getenv("CH_VALGRIND") != NULL ? 7 : 1;
    int failures = 0;
    struct stat sb;

    if (ch_test_store_pg())
        SKIP("allocation failures reach SQLite's allocator; libpq allocates on its own");
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0) {
        snprintf(dir, sizeof dir, "/dev/shm/churn-oom-XXXXXX");
        if (mkdtemp(dir) == NULL)
            dir[0] = '\0';
    }
    snprintf(path, sizeof path, "%s/oom.db", dir[0] != '\0' ? dir : ch_test_tmpdir());

    for (n = 1; n < 100000; n += n < 400 ? 1 : stride) {
        ch_registry *r = NULL;
        ch_error err = {0};
        int64_t run = 0;
        int64_t v = 0;
        ch_err rc;

        remove_store(path);
        ch_alloc_fail_after(n);
        rc = ch_registry_open(path, NULL, &r, &err);
        if (rc == CH_OK)
            rc = ch_registry_add_dataset(r, hash_of(1), "d.csv", 5, &err);
        if (rc == CH_OK)
            rc = ch_registry_run_begin(r, hash_of(1), "{\"a\":1}", NULL, &run, &err);
        if (rc == CH_OK)
            rc = ch_registry_register(r, run, "m", hash_of(2), "linear", "{\"auc\":0.7}", "t", NULL,
                                      &v, &err);
        ch_registry_close(r);
        ch_alloc_fail_after(0);
        if (rc == CH_OK) {
            ASSERT_INT_EQ(v, 1);
            break;
        }
        if (rc != CH_ENOMEM && rc != CH_EDB)
            FAIL("allocation %ld failing gave %s: %s", n, ch_strerror(rc), err.msg);
        ASSERT_INT_EQ(err.code, rc);
        ASSERT(err.msg[0] != '\0');
        failures++;
        /* What was committed is consistent. */
        if (access(path, F_OK) == 0) {
            ch_error e2 = {0};
            r = NULL;
            rc = ch_registry_open(path, NULL, &r, &e2);
            if (rc != CH_OK)
                FAIL("after allocation %ld failed (%s), reopen: %s", n, err.msg, e2.msg);
            check_ok(r);
            ch_registry_close(r);
        }
    }
    remove_store(path);
    if (dir[0] != '\0')
        rmdir(dir);
    printf("    %ld allocations, %d failures\n", n, failures);
    ASSERT(failures > 20);
    ASSERT(n < 100000);
}

/* A run's status, from its JSON (static buffer). */
static const char *run_status(ch_registry *r, int64_t id)
{
    static char out[32];
    ch_buf b;
    ch_json *doc;
    ch_error err = {0};
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_registry_run_json(r, id, &b, &err));
    doc = parse_buf(&b);
    snprintf(out, sizeof out, "%s", str_of(doc, "status"));
    ch_json_free(doc);
    ch_buf_reset(&b);
    return out;
}

/* Jobs: one of a kind at a time, the allowed moves, cancellation, and
 * interruption when a server starts again. */
TEST(jobs_life_cycle)
{
    ch_registry *r = open_store(ch_test_store("jobs.db"));
    ch_error err = {0};
    int64_t a = 0, b = 0, n = 0;
    int yes = 0;
    ch_job_status st;
    ch_buf buf;
    ch_json *doc;
    ASSERT_OK(
        ch_registry_job_add(r, "retrain", "decay", "{\"window\": \"7d\"}", "tester", &a, &err));
    ASSERT_ERR(ch_registry_job_add(r, "retrain", "manual", NULL, "tester", &b, &err), CH_EBUSY);
    ASSERT_CONTAINS(err.msg, "already queued or running");
    ASSERT_ERR(ch_registry_job_add(r, "Re train", NULL, NULL, "tester", &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_job_update(r, a, CH_JOB_SUCCEEDED, 1, NULL, NULL, NULL, &err),
               CH_EINVAL); /* queued cannot succeed without running */
    ASSERT_OK(ch_registry_job_update(r, a, CH_JOB_RUNNING, 0.1, "training", NULL, NULL, &err));
    ASSERT_OK(ch_registry_job_update(r, a, CH_JOB_RUNNING, 0.5, NULL, NULL, NULL, &err));
    ASSERT_OK(ch_registry_job_cancel_requested(r, a, &yes, &err));
    ASSERT_INT_EQ(yes, 0);
    ASSERT_OK(ch_registry_job_cancel(r, a, "tester", &st, &err));
    ASSERT_INT_EQ(st, CH_JOB_RUNNING);
    ASSERT_OK(ch_registry_job_cancel_requested(r, a, &yes, &err));
    ASSERT_INT_EQ(yes, 1);
    ASSERT_OK(ch_registry_job_update(r, a, CH_JOB_CANCELLED, -1, NULL, NULL, "cancelled", &err));
    ASSERT_ERR(ch_registry_job_cancel(r, a, "tester", &st, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_job_update(r, a, CH_JOB_RUNNING, 0, NULL, NULL, NULL, &err), CH_EINVAL);
    ASSERT_OK(ch_registry_job_add(r, "retrain", "manual", NULL, "tester", &b, &err));
    ASSERT_OK(ch_registry_job_cancel(r, b, "tester", &st, &err));
    ASSERT_INT_EQ(st, CH_JOB_CANCELLED); /* queued: at once */
    ASSERT_OK(ch_registry_job_add(r, "retrain", "manual", NULL, "tester", &b, &err));
    {
        int64_t got = 0;
        ASSERT_OK(ch_registry_job_claim(r, "retrain", &got, &err));
        ASSERT_INT_EQ(got, b);
        ASSERT_OK(ch_registry_job_claim(r, "retrain", &got, &err));
        ASSERT_INT_EQ(got, 0); /* running now: nothing left to claim */
    }
    ASSERT_OK(ch_registry_job_update(r, b, CH_JOB_RUNNING, 0.2, "reading", NULL, NULL, &err));
    {
        /* The job had begun a tracked run: it ends with the job. */
        int64_t run = 0, other = 0;
        char rj[64];
        ASSERT_OK(ch_registry_run_begin(r, NULL, NULL, NULL, &run, &err));
        ASSERT_OK(ch_registry_run_begin(r, NULL, NULL, NULL, &other, &err));
        int64_t odd = 0;
        snprintf(rj, sizeof rj, "{\"run_id\": %lld}", (long long)run);
        ASSERT_OK(ch_registry_job_update(r, b, CH_JOB_RUNNING, -1, NULL, rj, NULL, &err));
        /* A result whose run cannot be a run's id is interrupted as well,
         * without failing the others. */
        ASSERT_OK(ch_registry_job_add(r, "odd", "manual", NULL, "tester", &odd, &err));
        ASSERT_OK(ch_registry_job_update(r, odd, CH_JOB_RUNNING, -1, NULL, "{\"run_id\": 1e30}",
                                         NULL, &err));
        ASSERT_OK(ch_registry_jobs_interrupt(r, "the server restarted", &n, &err));
        ASSERT_INT_EQ(n, 2);
        ASSERT_STR_EQ(run_status(r, run), "failed");
        ASSERT_STR_EQ(run_status(r, other), "running"); /* someone else's: untouched */
        ASSERT_OK(ch_registry_run_end(r, other, "ok", "{}", 1, &err));
    }
    {
        /* A queued job is not running anywhere: it waits for a claim. */
        int64_t q = 0;
        ASSERT_OK(ch_registry_job_add(r, "other", "manual", NULL, "tester", &q, &err));
        ASSERT_OK(ch_registry_jobs_interrupt(r, NULL, &n, &err));
        ASSERT_INT_EQ(n, 0);
        ASSERT_OK(ch_registry_job_cancel(r, q, "tester", &st, &err));
    }
    ch_buf_init(&buf, 1 << 20);
    ASSERT_OK(ch_registry_jobs_json(r, b, 0, &buf, &err));
    doc = parse_buf(&buf);
    ASSERT_STR_EQ(str_of(doc, "status"), "interrupted");
    ASSERT_STR_EQ(str_of(doc, "error"), "the server restarted");
    ASSERT(num_of(doc, "progress") == 0.2);
    ch_json_free(doc);
    ch_buf_clear(&buf);
    ASSERT_OK(ch_registry_jobs_json(r, 0, 0, &buf, &err));
    doc = parse_buf(&buf);
    ASSERT_INT_EQ(ch_json_len(doc), 5);
    ASSERT_STR_EQ(str_of(ch_json_at(doc, 4), "trigger"), "decay");
    ch_json_free(doc);
    ch_buf_reset(&buf);
    ASSERT_ERR(ch_registry_jobs_json(r, 99, 0, &buf, &err), CH_ENOTFOUND);
    ASSERT_INT_EQ(count_audit(r, "job-cancel", 0), 3);
    check_ok(r);
    ch_registry_close(r);
}

/* Jobs of several servers on one store: a claim records its owner and a
 * heartbeat; only jobs whose heartbeat went stale, or whose owner is
 * named, are interrupted, and a heartbeat or a progress write keeps a job
 * alive. */
TEST(jobs_owner_and_heartbeat)
{
    ch_registry *r = open_store(ch_test_store("beat.db"));
    ch_error err = {0};
    int64_t a = 0, b = 0, got = 0, n = -1;
    int64_t run = 0;
    char rj[64];
    ch_buf buf;
    ch_json *doc;

    ASSERT_OK(ch_registry_job_add(r, "retrain", "manual", NULL, "tester", &a, &err));
    ASSERT_OK(ch_registry_job_add(r, "monitor", "manual", NULL, "tester", &b, &err));
    ASSERT_OK(ch_registry_job_claim_as(r, "retrain", "host-a:11:1", &got, &err));
    ASSERT_INT_EQ(got, a);
    ASSERT_OK(ch_registry_job_claim_as(r, "monitor", "host-b:22:2", &got, &err));
    ASSERT_INT_EQ(got, b);
    ASSERT_OK(ch_registry_run_begin(r, NULL, NULL, NULL, &run, &err));
    snprintf(rj, sizeof rj, "{\"run_id\": %lld}", (long long)run);
    ASSERT_OK(ch_registry_job_update(r, a, CH_JOB_RUNNING, 0.3, "training", rj, NULL, &err));

    ch_buf_init(&buf, 1 << 20);
    ASSERT_OK(ch_registry_jobs_json(r, a, 0, &buf, &err));
    doc = parse_buf(&buf);
    ASSERT_STR_EQ(str_of(doc, "owner"), "host-a:11:1");
    ASSERT(str_of(doc, "heartbeat") != NULL && strlen(str_of(doc, "heartbeat")) == 24);
    ch_json_free(doc);
    ch_buf_clear(&buf);

    /* Fresh heartbeats: nothing is taken for abandoned. */
    ASSERT_OK(ch_registry_jobs_interrupt_stale(r, "gone", 60000, NULL, &n, &err));
    ASSERT_INT_EQ(n, 0);
    ASSERT_ERR(ch_registry_jobs_interrupt_stale(r, "gone", 0, NULL, &n, &err), CH_EINVAL);
    /* A named owner's jobs go whatever their heartbeat; the run ends too. */
    ASSERT_OK(
        ch_registry_jobs_interrupt_stale(r, "host-a restarted", 60000, "host-a:11:1", &n, &err));
    ASSERT_INT_EQ(n, 1);
    ASSERT_STR_EQ(run_status(r, run), "failed");
    ASSERT_OK(ch_registry_jobs_json(r, a, 0, &buf, &err));
    doc = parse_buf(&buf);
    ASSERT_STR_EQ(str_of(doc, "status"), "interrupted");
    ASSERT_STR_EQ(str_of(doc, "error"), "host-a restarted");
    ch_json_free(doc);
    ch_buf_clear(&buf);

    /* b's heartbeat ages past a short limit; a heartbeat renews it. */
    sleep_ms(150);
    ASSERT_OK(ch_registry_job_heartbeat(r, b, &err));
    ASSERT_OK(ch_registry_jobs_interrupt_stale(r, "gone", 100, NULL, &n, &err));
    ASSERT_INT_EQ(n, 0);
    sleep_ms(150);
    ASSERT_OK(ch_registry_job_update(r, b, CH_JOB_RUNNING, 0.5, NULL, NULL, NULL, &err));
    ASSERT_OK(ch_registry_jobs_interrupt_stale(r, "gone", 100, NULL, &n, &err));
    ASSERT_INT_EQ(n, 0); /* a progress write is a heartbeat too */
    sleep_ms(150);
    ASSERT_OK(ch_registry_jobs_interrupt_stale(r, "its server stopped", 100, NULL, &n, &err));
    ASSERT_INT_EQ(n, 1);
    ASSERT_OK(ch_registry_jobs_json(r, b, 0, &buf, &err));
    doc = parse_buf(&buf);
    ASSERT_STR_EQ(str_of(doc, "status"), "interrupted");
    ASSERT_STR_EQ(str_of(doc, "owner"), "host-b:22:2");
    ch_json_free(doc);
    ch_buf_reset(&buf);
    /* A heartbeat of a job that ended changes nothing. */
    ASSERT_OK(ch_registry_job_heartbeat(r, b, &err));
    ASSERT_OK(ch_registry_job_heartbeat(r, 999, &err));
    check_ok(r);
    ch_registry_close(r);
}

/* Servers claiming at the same moment: each queued job goes to exactly
 * one of them (on PostgreSQL, FOR UPDATE SKIP LOCKED; on SQLite, the
 * write lock), and no claim fails. */
TEST(concurrent_claims)
{
    const char *path = ch_test_store("claims.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    int64_t jobs[3];
    int fds[2];
    pid_t pids[6];
    int64_t got[6];
    int rfd[6];
    int st = 0;
    char go[6] = "gggggg";
    const char *kinds[3] = {"retrain", "monitor", "export"};

    for (int k = 0; k < 3; k++)
        ASSERT_OK(ch_registry_job_add(r, kinds[k], "manual", NULL, "tester", &jobs[k], &err));
    ch_registry_close(r);
    ASSERT(pipe(fds) == 0);
    for (int i = 0; i < 6; i++) {
        int out[2];
        ASSERT(pipe(out) == 0);
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            ch_registry *cr = NULL;
            int64_t id = -1;
            char c;
            close(fds[1]);
            close(out[0]);
            if (ch_registry_open(path, NULL, &cr, NULL) != CH_OK)
                _exit(2);
            if (read(fds[0], &c, 1) != 1)
                _exit(3);
            if (ch_registry_job_claim_as(cr, kinds[i % 3], "claimer", &id, NULL) != CH_OK)
                _exit(4);
            if (write(out[1], &id, sizeof id) != (ssize_t)sizeof id)
                _exit(5);
            ch_registry_close(cr);
            _exit(0);
        }
        close(out[1]);
        rfd[i] = out[0]; /* the child's claim comes back here */
    }
    close(fds[0]);
    sleep_ms(300);
    ASSERT(write(fds[1], go, sizeof go) == (ssize_t)sizeof go);
    close(fds[1]);
    for (int i = 0; i < 6; i++) {
        int64_t id = -1;
        ASSERT(waitpid(pids[i], &st, 0) == pids[i]);
        ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ASSERT(read(rfd[i], &id, sizeof id) == (ssize_t)sizeof id);
        close(rfd[i]);
        got[i] = id;
    }
    for (int k = 0; k < 3; k++) {
        /* Children k and k + 3 claimed kind k: one got the job, one none. */
        ASSERT((got[k] == jobs[k] && got[k + 3] == 0) || (got[k] == 0 && got[k + 3] == jobs[k]));
    }
    r = open_store(path);
    {
        ch_buf b;
        ch_json *doc;
        ch_buf_init(&b, 1 << 20);
        ASSERT_OK(ch_registry_jobs_json(r, 0, 0, &b, &err));
        doc = parse_buf(&b);
        ASSERT_INT_EQ(ch_json_len(doc), 3);
        for (size_t i = 0; i < 3; i++)
            ASSERT_STR_EQ(str_of(ch_json_at(doc, i), "status"), "running");
        ch_json_free(doc);
        ch_buf_reset(&b);
    }
    ch_registry_close(r);
}

static const double default_steps[] = {5, 25, 100};

/* A rollout walks its steps and promotes the candidate in one
 * transaction with the rollout's end; pauses, a stale controller and a
 * second rollout are refused; the registry's invariants hold. */
TEST(rollout_walks_its_steps)
{
    ch_registry *r = open_store(ch_test_store("roll.db"));
    ch_error err = {0};
    int64_t run = new_run(r);
    int64_t v1 = reg(r, run, 1), v2 = reg(r, run, 2), id = 0, other = 0;
    ch_rollout ro;
    int found = 0;
    const double bad[] = {5, 25};
    const double bad2[] = {25, 5, 100};
    ASSERT_INT_EQ(alias_of(r, "champion"), v1);
    ASSERT_ERR(ch_registry_rollout_start(r, v1, default_steps, 3, 0, "{}", "ci", NULL, &id, &err),
               CH_EINVAL); /* already champion */
    ASSERT_ERR(ch_registry_rollout_start(r, v2, bad, 2, 0, "{}", "ci", NULL, &id, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_rollout_start(r, v2, bad2, 3, 0, "{}", "ci", NULL, &id, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_rollout_start(r, 99, default_steps, 3, 0, "{}", "ci", NULL, &id, &err),
               CH_ENOTFOUND);
    ASSERT_OK(ch_registry_rollout_start(r, v2, default_steps, 3, 1, "{\"min_requests\": 10}", "ci",
                                        "retrained", &id, &err));
    ASSERT_ERR(
        ch_registry_rollout_start(r, v2, default_steps, 3, 0, "{}", "ci", NULL, &other, &err),
        CH_EBUSY);
    ASSERT_OK(ch_registry_rollout_get(r, 0, &ro, &found, &err));
    ASSERT(found && ro.id == id && ro.state == CH_ROLLOUT_SHADOW && ro.n_steps == 3 &&
           ro.steps[2] == 100 && ro.champion == v1);
    /* shadow -> 5% -> 25%; a controller that saw an older state is refused */
    ASSERT_OK(ch_registry_rollout_advance(r, id, CH_ROLLOUT_SHADOW, 0, "{\"ok\": true}", "ci", NULL,
                                          &err));
    ASSERT_ERR(ch_registry_rollout_advance(r, id, CH_ROLLOUT_SHADOW, 0, NULL, "ci", NULL, &err),
               CH_EBUSY);
    ASSERT_OK(ch_registry_rollout_pause(r, id, "ci", "look", &err));
    ASSERT_ERR(ch_registry_rollout_advance(r, id, -1, -1, NULL, "ci", NULL, &err), CH_EINVAL);
    ASSERT_OK(ch_registry_rollout_resume(r, id, "ci", NULL, &err));
    ASSERT_OK(ch_registry_rollout_get(r, id, &ro, &found, &err));
    ASSERT(ro.state == CH_ROLLOUT_CANARY && ro.step == 0);
    ASSERT_OK(ch_registry_rollout_evaluated(r, id, "{\"error_rate\": 0}", &err));
    ASSERT_OK(ch_registry_rollout_advance(r, id, CH_ROLLOUT_CANARY, 0, NULL, "ci", NULL, &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), v1);
    ASSERT_OK(ch_registry_rollout_advance(r, id, CH_ROLLOUT_CANARY, 1, NULL, "ci", NULL, &err));
    ASSERT_OK(ch_registry_rollout_advance(r, id, CH_ROLLOUT_CANARY, 2, "{\"passed\": 1}", "ci",
                                          NULL, &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), v2);
    ASSERT_OK(ch_registry_rollout_get(r, id, &ro, &found, &err));
    ASSERT(ro.state == CH_ROLLOUT_PROMOTED && ro.ended_ms > 0);
    ASSERT_OK(ch_registry_rollout_get(r, 0, &ro, &found, &err));
    ASSERT_INT_EQ(found, 0);
    ASSERT_INT_EQ(count_audit(r, "rollout-step", 0), 3);
    ASSERT_INT_EQ(count_audit(r, "promote", v2), 1);
    ASSERT_INT_EQ(count_audit(r, "rollout-promoted", v2), 1);
    check_ok(r);
    /* A rollback leaves the champion alone. */
    ASSERT_OK(ch_registry_rollout_start(r, v1, default_steps, 3, 0, "{}", "ci", NULL, &id, &err));
    ASSERT_OK(ch_registry_rollout_end(r, id, CH_ROLLOUT_ROLLED_BACK, CH_ROLLOUT_CANARY, 0,
                                      "{\"failed\": \"p99\"}", "ci", "p99 too high", &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), v2);
    ASSERT_ERR(ch_registry_rollout_end(r, id, CH_ROLLOUT_ABORTED, -1, -1, NULL, "ci", NULL, &err),
               CH_EINVAL);
    {
        ch_buf b;
        ch_json *doc;
        ch_buf_init(&b, 1 << 20);
        ASSERT_OK(ch_registry_rollouts_json(r, 0, 0, &b, &err));
        doc = parse_buf(&b);
        ASSERT_INT_EQ(ch_json_len(doc), 2);
        ASSERT_STR_EQ(str_of(ch_json_at(doc, 0), "state"), "rolled_back");
        ASSERT_STR_EQ(str_of(ch_json_at(doc, 1), "state"), "promoted");
        ch_json_free(doc);
        ch_buf_reset(&b);
    }
    check_ok(r);
    ch_registry_close(r);
}

/* A process killed while it finishes a rollout leaves either the old
 * champion with the rollout still at its last step, or the candidate as
 * champion with the rollout promoted: never one without the other. */
TEST(killed_mid_rollout_promotion)
{
    const char *path = ch_test_store("kill-rollout.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    int64_t run = new_run(r);
    int64_t id = 0;
    int fds[2];
    pid_t pid;
    char c = 0;
    int st = 0;
    ch_rollout ro;
    int found = 0;
    const double one[] = {100};
    reg(r, run, 1);
    reg(r, run, 2);
    ASSERT_OK(ch_registry_rollout_start(r, 2, one, 1, 0, "{}", "ci", NULL, &id, &err));
    ch_registry_close(r);
    ASSERT(pipe(fds) == 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        ch_registry_opts o;
        ch_registry *cr = NULL;
        ch_registry_opts_default(&o);
        o.test_pause_ms = 2000;
        close(fds[0]);
        if (ch_registry_open(path, &o, &cr, NULL) != CH_OK)
            _exit(2);
        if (write(fds[1], "o", 1) != 1)
            _exit(3);
        _exit(ch_registry_rollout_advance(cr, id, CH_ROLLOUT_CANARY, 0, NULL, "child", NULL,
                                          NULL) == CH_OK
                  ? 0
                  : 5);
    }
    close(fds[1]);
    ASSERT(read(fds[0], &c, 1) == 1);
    close(fds[0]);
    sleep_ms(300);
    ASSERT(kill(pid, SIGKILL) == 0);
    ASSERT(waitpid(pid, &st, 0) == pid);
    r = open_store(path);
    check_ok(r);
    ASSERT_OK(ch_registry_rollout_get(r, id, &ro, &found, &err));
    if (alias_of(r, "champion") == 1)
        ASSERT(ro.state == CH_ROLLOUT_CANARY);
    else
        ASSERT(alias_of(r, "champion") == 2 && ro.state == CH_ROLLOUT_PROMOTED);
    /* and it can be finished now */
    if (ro.state == CH_ROLLOUT_CANARY)
        ASSERT_OK(ch_registry_rollout_advance(r, id, CH_ROLLOUT_CANARY, 0, NULL, "ci", NULL, &err));
    ASSERT_INT_EQ(alias_of(r, "champion"), 2);
    check_ok(r);
    ch_registry_close(r);
}

/* A role or server whose defaults change how values read back as text
 * (fewer float digits, old-style string literals) gives the same store. */
TEST(postgresql_session_defaults)
{
    char url[1200];
    ch_registry *r;
    ch_error err = {0};
    ch_buf b;
    ch_json *doc;
    int64_t run, job = 0, n = 0;
    char rj[64];

    if (!ch_test_store_pg())
        SKIP("PostgreSQL session settings");
    /* ch_test_store() ends with the options parameter: add to it. */
    snprintf(url, sizeof url,
             "%s%%20-cextra_float_digits%%3D-3%%20-cstandard_conforming_strings%%3Doff"
             "%%20-cbytea_output%%3Descape",
             ch_test_store("defaults"));
    r = open_store(url);
    run = new_run(r);
    ASSERT_OK(ch_registry_run_metric(r, run, "test", "auc", 1.0 / 3.0, &err));
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_registry_run_json(r, run, &b, &err));
    doc = parse_buf(&b);
    ASSERT(num_of(ch_json_at(ch_json_get(doc, "metrics"), 0), "value") == 1.0 / 3.0);
    ch_json_free(doc);
    ch_buf_reset(&b);
    ASSERT_OK(ch_registry_job_add(r, "retrain", "manual", NULL, "tester", &job, &err));
    snprintf(rj, sizeof rj, "{\"run_id\": %lld}", (long long)run);
    ASSERT_OK(ch_registry_job_update(r, job, CH_JOB_RUNNING, 0.1, NULL, rj, NULL, &err));
    ASSERT_OK(ch_registry_jobs_interrupt(r, NULL, &n, &err));
    ASSERT_INT_EQ(n, 1);
    ASSERT_STR_EQ(run_status(r, run), "failed");
    ch_registry_close(r);
}

TEST_MAIN(T(jobs_life_cycle), T(jobs_owner_and_heartbeat), T(concurrent_claims),
          T(rollout_walks_its_steps), T(killed_mid_rollout_promotion), T(opts_defaults),
          T(url_schemes), T(postgresql_unreachable), T(postgresql_connection_dropped),
          T(postgresql_session_defaults), T(read_only_missing_file), T(corrupt_file),
          T(sqlite_file_of_another_program), T(newer_layout), T(read_only_store),
          T(runs_round_trip), T(register_and_resolve), T(promotion_gate), T(rollback_chain),
          T(audit_is_append_only), T(check_finds_tampering), T(concurrent_writers),
          T(killed_mid_promotion), T(killed_mid_registration), T(busy_writer_times_out),
          T(out_of_memory))
