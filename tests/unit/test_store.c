/*
 * test_store.c -- what the registry store keeps for the prediction
 * service, through include/ch/registry.h: users, API keys, the
 * hash-chained audit log (append, tail, verify, tampering, migration of
 * a layout-1 store), predictions and feedback, on real SQLite files, or
 * with CH_TEST_STORE_URL set to a PostgreSQL URL on a schema per test.
 *
 * Like test_registry.c, tests may use sqlite3.h directly (psql on
 * PostgreSQL) to build old layouts and to tamper with a store; the
 * single-includer rule binds library code only. Tests of SQLite files of
 * earlier layouts and of SQLite's allocator report a skip on PostgreSQL,
 * whose stores start at the current layout. Forked helpers end with
 * _exit().
 */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/auth.h"
#include "ch/buf.h"
#include "ch/hash.h"
#include "ch/json.h"
#include "ch/registry.h"
#include "../harness.h"

/* An encoded Argon2id hash (of "password"), as ch_password_hash() writes
 * them; the store only checks its shape. */
#define HASH_A                                                                                     \
    "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$RdescudvJCsgt3ub+b+dWRWJTmaaJObG"
#define HASH_B "$argon2id$v=19$m=65536,t=3,p=4$b3RoZXJzYWx0b3RoZXI$QWxsIHRoZSB3b3JsZCdzIGEgc3RhZ2U"

/* ---- helpers --------------------------------------------------------- */

static const char *tmp_path(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", ch_test_tmpdir(), name);
    return buf[k];
}

/* 'len' hex digits made from 'n' (static buffer, four in rotation). */
static const char *hex_of(unsigned n, size_t len)
{
    static char buf[4][65];
    static int k;
    k = (k + 1) % 4;
    for (size_t i = 0; i < len; i++)
        buf[k][i] = "0123456789abcdef"[(n >> (4 * (i % 8))) & 15];
    buf[k][len] = '\0';
    return buf[k];
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static ch_registry *open_ro(const char *url)
{
    ch_registry_opts o;
    ch_registry *r = NULL;
    ch_error err = {0};
    ch_registry_opts_default(&o);
    o.read_only = 1;
    if (ch_registry_open(url, &o, &r, &err) != CH_OK)
        FAIL("open %s read-only: %s", url, err.msg);
    return r;
}

static void check_ok(ch_registry *r)
{
    ch_error err = {0};
    ch_err rc = ch_registry_check(r, &err);
    if (rc != CH_OK)
        FAIL("check: %s: %s", ch_strerror(rc), err.msg);
}

/* Verifies the chain and returns the number of entries. */
static int64_t verify_ok(ch_registry *r)
{
    ch_error err = {0};
    int64_t n = -1;
    int64_t bad = -7;
    ch_err rc = ch_registry_audit_verify(r, &n, &bad, &err);
    if (rc != CH_OK)
        FAIL("audit verify: %s: %s", ch_strerror(rc), err.msg);
    ASSERT_INT_EQ(bad, -7); /* written only on CH_EDATA */
    return n;
}

static ch_json *parse_buf(ch_buf *b)
{
    ch_json *doc = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_buf_status(b));
    if (ch_json_parse(b->data, b->len, &doc, &err) != CH_OK)
        FAIL("output does not parse: %s: %.300s", err.msg, b->data);
    return doc;
}

typedef ch_err (*list_fn)(ch_registry *r, ch_buf *b, ch_error *err);

static ch_json *list_doc(ch_registry *r, list_fn fn, ch_buf *raw)
{
    ch_buf b;
    ch_json *doc;
    ch_error err = {0};
    ch_buf_init(&b, 1 << 24);
    if (fn(r, &b, &err) != CH_OK)
        FAIL("listing: %s", err.msg);
    doc = parse_buf(&b);
    if (raw != NULL)
        *raw = b;
    else
        ch_buf_reset(&b);
    return doc;
}

static ch_json *audit_tail(ch_registry *r, size_t limit)
{
    ch_buf b;
    ch_json *doc;
    ch_error err = {0};
    ch_buf_init(&b, 1 << 24);
    if (ch_registry_audit_tail_json(r, limit, &b, &err) != CH_OK)
        FAIL("audit_tail_json: %s", err.msg);
    doc = parse_buf(&b);
    ch_buf_reset(&b);
    return doc;
}

static ch_json *feedback_doc(ch_registry *r, size_t limit)
{
    ch_buf b;
    ch_json *doc;
    ch_error err = {0};
    ch_buf_init(&b, 1 << 24);
    if (ch_registry_feedback_json(r, limit, &b, &err) != CH_OK)
        FAIL("feedback_json: %s", err.msg);
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

static int is_null(const ch_json *obj, const char *key)
{
    return ch_json_typeof(ch_json_get(obj, key)) == CH_JSON_NULL;
}

static int64_t n_audit(ch_registry *r)
{
    ch_json *doc = audit_tail(r, 0);
    int64_t n = (int64_t)ch_json_len(doc);
    ch_json_free(doc);
    return n;
}

/* On PostgreSQL, the tampering scripts below drop a trigger to edit the
 * rows it guards; there the same is done by disabling it, which
 * ch_registry_check() notices just as well. */
static void pg_tamper_sql(const char *sql, char *out, size_t cap)
{
    static const struct {
        const char *from, *to;
    } map[] = {
        {"DROP TRIGGER audit_no_update", "ALTER TABLE audit DISABLE TRIGGER audit_no_update"},
        {"DROP TRIGGER audit_no_delete", "ALTER TABLE audit DISABLE TRIGGER audit_no_delete"},
        {"DROP TRIGGER audit_head_no_delete",
         "ALTER TABLE audit_head DISABLE TRIGGER audit_head_no_delete"},
    };
    size_t n = 0;
    out[0] = '\0';
    while (*sql != '\0' && n + 1 < cap) {
        size_t i, hit = sizeof map / sizeof map[0];
        for (i = 0; i < sizeof map / sizeof map[0]; i++)
            if (strncmp(sql, map[i].from, strlen(map[i].from)) == 0)
                hit = i;
        if (hit < sizeof map / sizeof map[0] && n + strlen(map[hit].to) + 1 < cap) {
            memcpy(out + n, map[hit].to, strlen(map[hit].to));
            n += strlen(map[hit].to);
            sql += strlen(map[hit].from);
        } else {
            out[n++] = *sql++;
        }
    }
    out[n] = '\0';
}

/* Runs raw SQL on a store; returns SQLite's result code and copies its
 * message. On PostgreSQL any failure reads as SQLITE_CONSTRAINT. */
static int raw_sql(const char *path, const char *sql, char *msg, size_t cap)
{
    sqlite3 *db = NULL;
    char *em = NULL;
    int rc;
    if (ch_test_store_pg()) {
        char pg_sql[2048];
        pg_tamper_sql(sql, pg_sql, sizeof pg_sql);
        return ch_test_pg_sql(path, pg_sql, msg, cap) == 0 ? SQLITE_OK : SQLITE_CONSTRAINT;
    }
    rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, &em);
    if (msg != NULL)
        snprintf(msg, cap, "%s", em != NULL ? em : sqlite3_errmsg(db));
    sqlite3_free(em);
    sqlite3_close(db);
    return rc;
}

static void sql_ok(const char *path, const char *sql)
{
    char msg[256];
    if (raw_sql(path, sql, msg, sizeof msg) != SQLITE_OK)
        FAIL("sql %s: %s", sql, msg);
}

/* A prediction record: id, customer and digest made from 'n'. */
static ch_prediction_rec pred(unsigned n, unsigned customer, int64_t time_ms)
{
    ch_prediction_rec p;
    memset(&p, 0, sizeof p);
    memcpy(p.id, hex_of(0x1000 + n, 32), 33);
    if (customer != 0)
        memcpy(p.customer, hex_of(0x5000 + customer, 32), 33);
    memcpy(p.features_sha256, hex_of(0x9000 + n, 64), 65);
    p.probability = (double)(n % 100) / 100.0;
    p.label = p.probability >= 0.5;
    p.model_version = n % 3;
    p.latency_s = 0.002;
    p.time_ms = time_ms;
    return p;
}

static const char *cust(unsigned c)
{
    return hex_of(0x5000 + c, 32);
}

/* ---- users ----------------------------------------------------------- */

TEST(users_round_trip)
{
    ch_registry *r = open_store(ch_test_store("users.db"));
    ch_error err = {0};
    ch_registry_user u;
    ch_json *doc;
    ch_buf raw;

    ASSERT_OK(ch_registry_user_add(r, "alice", "admin", HASH_A, "root", &err));
    ASSERT_OK(ch_registry_user_add(r, "bob.smith@example-1_x", "analyst", HASH_B, "root", &err));
    memset(&u, 0x55, sizeof u);
    ASSERT_OK(ch_registry_user_get(r, "alice", &u, &err));
    ASSERT_INT_EQ(u.role, CH_ROLE_ADMIN);
    ASSERT_STR_EQ(u.password_hash, HASH_A);
    ASSERT_INT_EQ(u.disabled, 0);
    ASSERT_INT_EQ(strlen(u.created), 24);

    /* Duplicate, bad name, bad role, bad hash. */
    ASSERT_ERR(ch_registry_user_add(r, "alice", "service", HASH_B, "root", &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "user 'alice' exists");
    ASSERT_ERR(ch_registry_user_add(r, "", "admin", HASH_A, "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_add(r, "a b", "admin", HASH_A, "root", &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "user name");
    ASSERT_ERR(ch_registry_user_add(r, "x/y", "admin", HASH_A, "root", &err), CH_EINVAL);
    {
        char long_name[70];
        memset(long_name, 'a', 65);
        long_name[65] = '\0';
        ASSERT_ERR(ch_registry_user_add(r, long_name, "admin", HASH_A, "root", &err), CH_EINVAL);
        long_name[64] = '\0';
        ASSERT_OK(ch_registry_user_add(r, long_name, "service", HASH_A, "root", &err));
    }
    ASSERT_ERR(ch_registry_user_add(r, "carol", "root", HASH_A, "root", &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "unknown role");
    ASSERT_ERR(ch_registry_user_add(r, "carol", "none", HASH_A, "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_add(r, "carol", NULL, HASH_A, "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_add(r, "carol", "admin", "password", "root", &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "Argon2id");
    ASSERT_ERR(ch_registry_user_add(r, "carol", "admin", "$argon2id$v=19 x", "root", &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_user_add(r, "carol", "admin", NULL, "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_add(r, "carol", "admin", HASH_A, "", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_add(NULL, "carol", "admin", HASH_A, "root", &err), CH_EINVAL);
    {
        char big[CH_PASSWORD_HASH_MAX + 10];
        memset(big, 'x', sizeof big - 1);
        memcpy(big, "$argon2id$", 10);
        big[CH_PASSWORD_HASH_MAX] = '\0'; /* one byte too long for the buffer */
        ASSERT_ERR(ch_registry_user_add(r, "carol", "admin", big, "root", &err), CH_EINVAL);
        big[CH_PASSWORD_HASH_MAX - 1] = '\0';
        ASSERT_OK(ch_registry_user_add(r, "carol", "admin", big, "root", &err));
        ASSERT_OK(ch_registry_user_get(r, "carol", &u, &err));
        ASSERT_STR_EQ(u.password_hash, big);
    }

    /* Changes. */
    ASSERT_OK(ch_registry_user_set_password(r, "alice", HASH_B, "root", &err));
    ASSERT_OK(ch_registry_user_get(r, "alice", &u, &err));
    ASSERT_STR_EQ(u.password_hash, HASH_B);
    ASSERT_OK(ch_registry_user_set_role(r, "alice", "scientist", "root", &err));
    ASSERT_OK(ch_registry_user_get(r, "alice", &u, &err));
    ASSERT_INT_EQ(u.role, CH_ROLE_SCIENTIST);
    ASSERT_OK(ch_registry_user_set_disabled(r, "alice", 1, "root", &err));
    ASSERT_OK(ch_registry_user_get(r, "alice", &u, &err));
    ASSERT_INT_EQ(u.disabled, 1);

    /* No-op changes write nothing. */
    {
        int64_t before = n_audit(r);
        ASSERT_OK(ch_registry_user_set_disabled(r, "alice", 1, "root", &err));
        ASSERT_OK(ch_registry_user_set_role(r, "alice", "scientist", "root", &err));
        ASSERT_INT_EQ(n_audit(r), before);
    }
    ASSERT_OK(ch_registry_user_set_disabled(r, "alice", 0, "root", &err));
    ASSERT_OK(ch_registry_user_get(r, "alice", &u, &err));
    ASSERT_INT_EQ(u.disabled, 0);

    /* Unknown users, on every call. */
    ASSERT_ERR(ch_registry_user_get(r, "zed", &u, &err), CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "zed");
    ASSERT_ERR(ch_registry_user_get(r, "not a name", &u, &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_user_get(r, NULL, &u, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_get(r, "alice", NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_set_password(r, "zed", HASH_A, "root", &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_user_set_role(r, "zed", "admin", "root", &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_user_set_disabled(r, "zed", 1, "root", &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_user_set_role(r, "alice", "king", "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_set_password(r, "alice", "nope", "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_set_disabled(r, "alice", 1, NULL, &err), CH_EINVAL);

    /* The listing: sorted by name, never a hash. */
    doc = list_doc(r, ch_registry_users_json, &raw);
    ASSERT_INT_EQ(ch_json_len(doc), 4);
    ASSERT_STR_EQ(str_of(ch_json_at(doc, 1), "name"), "alice");
    ASSERT_STR_EQ(str_of(ch_json_at(doc, 1), "role"), "scientist");
    ASSERT(ch_json_typeof(ch_json_get(ch_json_at(doc, 1), "disabled")) == CH_JSON_BOOL);
    ASSERT_STR_EQ(str_of(ch_json_at(doc, 2), "name"), "bob.smith@example-1_x");
    ASSERT(strstr(raw.data, "argon2") == NULL);
    ASSERT(strstr(raw.data, "hash") == NULL);
    ch_buf_reset(&raw);
    ch_json_free(doc);

    /* The audit trail of alice. */
    {
        static const char *const want[] = {"user-add",     "user-passwd", "user-role",
                                           "user-disable", "user-enable", NULL};
        ch_json *a = audit_tail(r, 0);
        size_t k = 0;
        for (size_t i = 0; i < ch_json_len(a); i++) {
            const ch_json *e = ch_json_at(a, i);
            if (strcmp(str_of(e, "target"), "alice") != 0)
                continue;
            ASSERT(want[k] != NULL);
            ASSERT_STR_EQ(str_of(e, "action"), want[k]);
            ASSERT_STR_EQ(str_of(e, "actor"), "root");
            ASSERT(is_null(e, "alias"));
            if (strcmp(want[k], "user-role") == 0) {
                ASSERT_STR_EQ(str_of(ch_json_get(e, "details"), "from"), "admin");
                ASSERT_STR_EQ(str_of(ch_json_get(e, "details"), "to"), "scientist");
            }
            if (strcmp(want[k], "user-add") == 0)
                ASSERT_STR_EQ(str_of(ch_json_get(e, "details"), "role"), "admin");
            k++;
        }
        ASSERT(want[k] == NULL);
        ch_json_free(a);
    }
    ASSERT_INT_EQ(verify_ok(r), 8); /* 4 adds, then passwd, role, disable, enable */
    check_ok(r);
    ch_registry_close(r);
}

/* A hash from the real Argon2id code round-trips through the store. */
TEST(users_with_real_password_hash)
{
    ch_registry *r = open_store(ch_test_store("pw.db"));
    ch_error err = {0};
    char hash[CH_PASSWORD_HASH_MAX];
    ch_registry_user u;

    ASSERT_OK(ch_password_hash("correct horse battery", hash, &err));
    ASSERT_OK(ch_registry_user_add(r, "dora", "analyst", hash, "root", &err));
    ASSERT_OK(ch_registry_user_get(r, "dora", &u, &err));
    ASSERT_INT_EQ(u.role, CH_ROLE_ANALYST);
    ASSERT_OK(ch_password_verify(u.password_hash, "correct horse battery", &err));
    ASSERT_ERR(ch_password_verify(u.password_hash, "wrong horse battery", &err), CH_EAUTH);
    ch_registry_close(r);
}

/* ---- API keys -------------------------------------------------------- */

/* The stored last-use time of key 'id' ("" when never). */
static void last_used_of(ch_registry *r, const char *id, char out[32])
{
    ch_json *doc = list_doc(r, ch_registry_keys_json, NULL);
    out[0] = '\0';
    for (size_t i = 0; i < ch_json_len(doc); i++) {
        const ch_json *k = ch_json_at(doc, i);
        if (strcmp(str_of(k, "id"), id) == 0 && !is_null(k, "last_used"))
            snprintf(out, 32, "%s", str_of(k, "last_used"));
    }
    ch_json_free(doc);
}

TEST(api_keys)
{
    const char *path = ch_test_store("keys.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    char key[CH_API_KEY_LEN + 1];
    char id[CH_API_KEY_ID_LEN + 1];
    char sha[65];
    char id2[CH_API_KEY_ID_LEN + 1];
    char sha2[65];
    char t1[32];
    char t2[32];
    ch_registry_key k;
    ch_json *doc;
    ch_buf raw;

    ASSERT_OK(ch_api_key_new(key, id, sha, &err));
    ASSERT_OK(ch_registry_key_add(r, id, sha, "service", "nightly batch", "root", &err));
    ASSERT_OK(ch_api_key_new(key, id2, sha2, &err));
    ASSERT_OK(ch_registry_key_add(r, id2, sha2, "analyst", NULL, "root", &err));

    /* A match: role, label, not revoked; the use is recorded. */
    memset(&k, 0x55, sizeof k);
    ASSERT_OK(ch_registry_key_lookup(r, id, sha, &k, &err));
    ASSERT_INT_EQ(k.role, CH_ROLE_SERVICE);
    ASSERT_INT_EQ(k.revoked, 0);
    ASSERT_STR_EQ(k.label, "nightly batch");
    ASSERT_OK(ch_registry_key_lookup(r, id2, sha2, &k, &err));
    ASSERT_STR_EQ(k.label, "");
    last_used_of(r, id, t1);
    ASSERT_INT_EQ(strlen(t1), 24);

    /* At most once a minute: an immediate second use writes nothing. */
    sleep_ms(5);
    ASSERT_OK(ch_registry_key_lookup(r, id, sha, &k, &err));
    last_used_of(r, id, t2);
    ASSERT_STR_EQ(t2, t1);
    /* A use more than a minute after the last is recorded. */
    sql_ok(path, "UPDATE api_keys SET last_used = '2000-01-01T00:00:00.000Z'");
    ASSERT_OK(ch_registry_key_lookup(r, id, sha, &k, &err));
    last_used_of(r, id, t2);
    ASSERT(strcmp(t2, t1) >= 0);
    last_used_of(r, id2, t2);
    ASSERT_STR_EQ(t2, "2000-01-01T00:00:00.000Z");

    /* Wrong digest, unknown id, malformed input: one answer. */
    {
        char bad[65];
        memcpy(bad, sha, 65);
        bad[63] = bad[63] == '0' ? '1' : '0';
        ASSERT_ERR(ch_registry_key_lookup(r, id, bad, &k, &err), CH_EAUTH);
        ASSERT_STR_EQ(err.msg, "unknown API key or wrong secret");
        ASSERT_ERR(ch_registry_key_lookup(r, id, sha2, &k, &err), CH_EAUTH);
        ASSERT_ERR(ch_registry_key_lookup(r, "000000000000", sha, &k, &err), CH_EAUTH);
        ASSERT_STR_EQ(err.msg, "unknown API key or wrong secret");
        ASSERT_ERR(ch_registry_key_lookup(r, "xyz", sha, &k, &err), CH_EAUTH);
        ASSERT_ERR(ch_registry_key_lookup(r, id, "abc", &k, &err), CH_EAUTH);
        ASSERT_ERR(ch_registry_key_lookup(r, NULL, sha, &k, &err), CH_EAUTH);
        ASSERT_ERR(ch_registry_key_lookup(r, id, sha, NULL, &err), CH_EINVAL);
    }
    /* Upper-case input is the same key. */
    {
        char up[65];
        for (int i = 0; i < 65; i++)
            up[i] = (char)(sha[i] >= 'a' && sha[i] <= 'f' ? sha[i] - 'a' + 'A' : sha[i]);
        ASSERT_OK(ch_registry_key_lookup(r, id, up, &k, &err));
    }

    /* Adding: duplicates and bad arguments. */
    ASSERT_ERR(ch_registry_key_add(r, id, sha2, "service", NULL, "root", &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "exists");
    ASSERT_ERR(ch_registry_key_add(r, "12345", sha, "service", NULL, "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_key_add(r, "abcdefabcdeg", sha, "service", NULL, "root", &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_key_add(r, "abcdefabcdef", "12", "service", NULL, "root", &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_key_add(r, "abcdefabcdef", sha, "robot", NULL, "root", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_key_add(r, "abcdefabcdef", sha, "service", "tab\there", "root", &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_key_add(r, "abcdefabcdef", sha, "service", "\xff\xfe", "root", &err),
               CH_EINVAL);
    {
        char label[140];
        memset(label, 'l', 129);
        label[129] = '\0';
        ASSERT_ERR(ch_registry_key_add(r, "abcdefabcdef", sha, "service", label, "root", &err),
                   CH_EINVAL);
        label[128] = '\0';
        ASSERT_OK(ch_registry_key_add(r, "ABCDEFABCDEF", sha, "service", label, "root", &err));
        ASSERT_OK(ch_registry_key_lookup(r, "abcdefabcdef", sha, &k, &err));
        ASSERT_STR_EQ(k.label, label);
    }
    ASSERT_ERR(ch_registry_key_add(r, "abcdefabcde0", sha, "service", NULL, NULL, &err), CH_EINVAL);

    /* Revocation: the key still matches, flagged, and its use is not
     * recorded; revoking again changes nothing. */
    ASSERT_OK(ch_registry_key_revoke(r, id, "root", &err));
    sql_ok(path, "UPDATE api_keys SET last_used = NULL");
    ASSERT_OK(ch_registry_key_lookup(r, id, sha, &k, &err));
    ASSERT_INT_EQ(k.revoked, 1);
    ASSERT_INT_EQ(k.role, CH_ROLE_SERVICE);
    last_used_of(r, id, t1);
    ASSERT_STR_EQ(t1, "");
    {
        int64_t before = n_audit(r);
        ASSERT_OK(ch_registry_key_revoke(r, id, "root", &err));
        ASSERT_INT_EQ(n_audit(r), before);
    }
    ASSERT_ERR(ch_registry_key_revoke(r, "000000000000", "root", &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_key_revoke(r, "nonsense", "root", &err), CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_key_revoke(r, id2, "", &err), CH_EINVAL);

    /* The listing: no digests. */
    doc = list_doc(r, ch_registry_keys_json, &raw);
    ASSERT_INT_EQ(ch_json_len(doc), 3);
    {
        const ch_json *k0 = ch_json_at(doc, 0);
        ASSERT_STR_EQ(str_of(k0, "id"), id);
        ASSERT_STR_EQ(str_of(k0, "label"), "nightly batch");
        ASSERT_STR_EQ(str_of(k0, "role"), "service");
        ASSERT_STR_EQ(str_of(k0, "created_by"), "root");
        ASSERT(ch_json_typeof(ch_json_get(k0, "revoked")) == CH_JSON_BOOL);
        ASSERT_INT_EQ(strlen(str_of(k0, "revoked_at")), 24);
        ASSERT(is_null(ch_json_at(doc, 1), "label"));
        ASSERT(is_null(ch_json_at(doc, 1), "revoked_at"));
    }
    ASSERT(strstr(raw.data, sha) == NULL);
    ASSERT(strstr(raw.data, sha2) == NULL);
    ch_buf_reset(&raw);
    ch_json_free(doc);

    /* Audit: key-create x3, key-revoke x1, with the id as target. */
    {
        ch_json *a = audit_tail(r, 0);
        int creates = 0;
        int revokes = 0;
        for (size_t i = 0; i < ch_json_len(a); i++) {
            const ch_json *e = ch_json_at(a, i);
            if (strcmp(str_of(e, "action"), "key-create") == 0)
                creates++;
            if (strcmp(str_of(e, "action"), "key-revoke") == 0) {
                revokes++;
                ASSERT_STR_EQ(str_of(e, "target"), id);
            }
            ASSERT(strstr(str_of(e, "details"), sha) == NULL);
        }
        ASSERT_STR_EQ(str_of(ch_json_get(ch_json_at(a, 0), "details"), "label"), "nightly batch");
        ASSERT_INT_EQ(creates, 3);
        ASSERT_INT_EQ(revokes, 1);
        ch_json_free(a);
    }
    ASSERT_INT_EQ(verify_ok(r), 4);
    check_ok(r);
    ch_registry_close(r);

    /* Read-only: lookups work and record nothing. */
    sql_ok(path, "UPDATE api_keys SET last_used = NULL");
    r = open_ro(path);
    ASSERT_OK(ch_registry_key_lookup(r, id2, sha2, &k, &err));
    last_used_of(r, id2, t1);
    ASSERT_STR_EQ(t1, "");
    ASSERT_ERR(ch_registry_key_revoke(r, id2, "root", &err), CH_EDB);
    ASSERT_ERR(ch_registry_key_add(r, "aaaaaaaaaaaa", sha, "service", NULL, "root", &err), CH_EDB);
    ch_registry_close(r);
}

/* Recording a key's use never waits for another writer: with the write
 * lock held elsewhere, a lookup returns at once and records nothing. */
TEST(key_use_does_not_wait)
{
    const char *path = ch_test_store("keywait.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    char key[CH_API_KEY_LEN + 1];
    char id[CH_API_KEY_ID_LEN + 1];
    char sha[65];
    char t[32];
    ch_registry_key k;
    sqlite3 *db = NULL;
    int64_t t0;

    ASSERT_OK(ch_api_key_new(key, id, sha, &err));
    ASSERT_OK(ch_registry_key_add(r, id, sha, "service", NULL, "root", &err));
    if (ch_test_store_pg()) {
        /* Another session holds the key's row for two seconds. */
        char sql[300];
        pid_t pid;
        int st = 0;
        snprintf(sql, sizeof sql,
                 "BEGIN; UPDATE api_keys SET label = label WHERE id = '%s'; "
                 "SELECT pg_sleep(2); ROLLBACK",
                 id);
        pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0)
            _exit(ch_test_pg_sql(path, sql, NULL, 0) == 0 ? 0 : 1);
        sleep_ms(700);
        t0 = mono_ms();
        ASSERT_OK(ch_registry_key_lookup(r, id, sha, &k, &err));
        ASSERT(mono_ms() - t0 < 1000);
        ASSERT(waitpid(pid, &st, 0) == pid);
        ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        (void)db;
    } else {
        ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
        ASSERT_INT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        t0 = mono_ms();
        ASSERT_OK(ch_registry_key_lookup(r, id, sha, &k, &err));
        ASSERT(mono_ms() - t0 < 1000); /* the default busy budget is 10 s */
        ASSERT_INT_EQ(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    last_used_of(r, id, t);
    ASSERT_STR_EQ(t, "");
    /* Once the lock is gone, the next use records it. */
    ASSERT_OK(ch_registry_key_lookup(r, id, sha, &k, &err));
    last_used_of(r, id, t);
    ASSERT_INT_EQ(strlen(t), 24);
    ch_registry_close(r);
}

/* ---- the audit chain ---------------------------------------------------- */

TEST(audit_append_and_tail)
{
    ch_registry *r = open_store(ch_test_store("append.db"));
    ch_error err = {0};
    ch_json *doc;
    const ch_json *e;
    int64_t n = -1;

    ASSERT_INT_EQ(verify_ok(r), 0);
    ASSERT_OK(ch_registry_audit_append(r, "admin", "config-set", "serve.threads",
                                       "{\"from\":4,\"to\":8}", &err));
    ASSERT_OK(ch_registry_audit_append(r, "key:0123456789ab", "model.reload", NULL, NULL, &err));
    ASSERT_OK(ch_registry_audit_append(r, "admin", "a:b_c.d-9", "t\xc3\xa9st", NULL, &err));

    /* Refused: reserved actions, bad words, bad details and targets. */
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "promote", NULL, NULL, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "reserved");
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "register", NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "user-add", "x", NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "key-revoke", "x", NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "Config", NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "a b", NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "", NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", NULL, NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "", "x", NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "x", NULL, "[1]", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "x", NULL, "{", &err), CH_EFORMAT);
    ASSERT_ERR(ch_registry_audit_append(r, "admin", "x", "a\nb", NULL, &err), CH_EINVAL);
    {
        char target[300];
        memset(target, 't', 257);
        target[257] = '\0';
        ASSERT_ERR(ch_registry_audit_append(r, "admin", "x", target, NULL, &err), CH_EINVAL);
        char action[70];
        memset(action, 'a', 65);
        action[65] = '\0';
        ASSERT_ERR(ch_registry_audit_append(r, "admin", action, NULL, NULL, &err), CH_EINVAL);
    }
    ASSERT_ERR(ch_registry_audit_append(NULL, "admin", "x", NULL, NULL, &err), CH_EINVAL);

    /* The listing: fields, hashes linked, oldest first. */
    doc = audit_tail(r, 0);
    ASSERT_INT_EQ(ch_json_len(doc), 3);
    e = ch_json_at(doc, 0);
    ASSERT_INT_EQ(num_of(e, "id"), 1);
    ASSERT_STR_EQ(str_of(e, "actor"), "admin");
    ASSERT_STR_EQ(str_of(e, "action"), "config-set");
    ASSERT_STR_EQ(str_of(e, "target"), "serve.threads");
    ASSERT_INT_EQ(num_of(ch_json_get(e, "details"), "to"), 8);
    ASSERT(is_null(e, "alias") && is_null(e, "from") && is_null(e, "to") && is_null(e, "reason"));
    ASSERT_STR_EQ(str_of(e, "prev_hash"),
                  "0000000000000000000000000000000000000000000000000000000000000000");
    ASSERT_INT_EQ(strlen(str_of(e, "hash")), 64);
    for (size_t i = 1; i < 3; i++)
        ASSERT_STR_EQ(str_of(ch_json_at(doc, i), "prev_hash"),
                      str_of(ch_json_at(doc, i - 1), "hash"));
    ASSERT(is_null(ch_json_at(doc, 1), "target"));
    ASSERT_STR_EQ(str_of(ch_json_at(doc, 2), "target"), "t\xc3\xa9st");
    ch_json_free(doc);

    /* The tail: the last N, still oldest first. */
    doc = audit_tail(r, 2);
    ASSERT_INT_EQ(ch_json_len(doc), 2);
    ASSERT_INT_EQ(num_of(ch_json_at(doc, 0), "id"), 2);
    ASSERT_INT_EQ(num_of(ch_json_at(doc, 1), "id"), 3);
    ch_json_free(doc);
    doc = audit_tail(r, 99);
    ASSERT_INT_EQ(ch_json_len(doc), 3);
    ch_json_free(doc);
    {
        ch_buf small;
        ch_buf_init(&small, 30);
        ASSERT_ERR(ch_registry_audit_tail_json(r, 0, &small, &err), CH_ELIMIT);
        ch_buf_reset(&small);
    }

    ASSERT_OK(ch_registry_audit_verify(r, &n, NULL, &err));
    ASSERT_INT_EQ(n, 3);
    ASSERT_OK(ch_registry_audit_verify(r, NULL, NULL, &err));
    ASSERT_ERR(ch_registry_audit_verify(NULL, &n, NULL, &err), CH_EINVAL);
    check_ok(r);
    ch_registry_close(r);
}

/* The first entry's hash, computed here from the documented canonical
 * text, equals the stored one: the layout in docs/registry.md is what
 * the code hashes. */
TEST(audit_hash_matches_documented_layout)
{
    ch_registry *r = open_store(ch_test_store("canon.db"));
    ch_error err = {0};
    ch_json *doc;
    const ch_json *e;
    ch_sha256 *h = NULL;
    char want[65];
    char text[1024];
    int n;

    ASSERT_OK(ch_registry_audit_append(r, "ann", "reload", "v3", "{\"a\":1}", &err));
    doc = audit_tail(r, 0);
    e = ch_json_at(doc, 0);
    n = snprintf(text, sizeof text,
                 "0000000000000000000000000000000000000000000000000000000000000000"
                 "churn-audit-v1\n"
                 "id=1:1\n"
                 "at=24:%s\n"
                 "actor=3:ann\n"
                 "action=6:reload\n"
                 "alias=~\n"
                 "from=~\n"
                 "to=~\n"
                 "target=2:v3\n"
                 "reason=~\n"
                 "details=7:{\"a\":1}\n",
                 str_of(e, "at"));
    ASSERT_OK(ch_sha256_new(&h, &err));
    ch_sha256_update(h, text, (size_t)n);
    ch_sha256_final_hex(h, want);
    ch_sha256_free(h);
    ASSERT_STR_EQ(str_of(e, "hash"), want);
    ch_json_free(doc);
    ch_registry_close(r);
}

/* A store with some history: a model version with its three audit rows,
 * user and key entries, generic entries. Returns the number of entries. */
static int64_t busy_history(const char *path)
{
    ch_registry *r = open_store(path);
    ch_error err = {0};
    int64_t run = 0;
    int64_t v = 0;
    ASSERT_OK(ch_registry_add_dataset(r, hex_of(7, 64), "d.csv", 10, &err));
    ASSERT_OK(ch_registry_run_begin(r, hex_of(7, 64), NULL, NULL, &run, &err));
    ASSERT_OK(
        ch_registry_register(r, run, "m1", hex_of(1, 64), "xgboost", NULL, "t", "r", &v, &err));
    ASSERT_OK(ch_registry_user_add(r, "ann", "admin", HASH_A, "root", &err));
    ASSERT_OK(ch_registry_audit_append(r, "ann", "config-set", "a", NULL, &err));
    ASSERT_OK(ch_registry_audit_append(r, "ann", "config-set", "b", NULL, &err));
    ASSERT_OK(ch_registry_audit_append(r, "ann", "config-set", "c", NULL, &err));
    ch_registry_close(r);
    return 7;
}

/* Expects verification to fail at 'bad' with 'needle' in the message,
 * and check to fail too (on the chain, or first on a trigger the
 * tampering dropped). */
static void expect_broken(const char *path, int64_t bad, const char *needle)
{
    ch_registry *r = open_store(path);
    ch_error err = {0};
    int64_t n = -1;
    int64_t b = -1;
    ASSERT_ERR(ch_registry_audit_verify(r, &n, &b, &err), CH_EDATA);
    ASSERT_INT_EQ(b, bad);
    ASSERT_CONTAINS(err.msg, needle);
    ASSERT_CONTAINS(err.msg, "audit chain broken");
    ASSERT_ERR(ch_registry_check(r, &err), CH_EDB);
    if (strstr(err.msg, "triggers") == NULL)
        ASSERT_CONTAINS(err.msg, "audit chain broken");
    ch_registry_close(r);
}

/* Copies a store file. On PostgreSQL, where a store is no file, saving
 * the copy does nothing and restoring it rebuilds the store's history
 * afresh in an empty schema: the same entries with the same ids. */
static void copy_file(const char *from, const char *to)
{
    char cmd[1400];
    if (ch_test_store_pg()) {
        if (strncmp(to, "postgres", 8) == 0) {
            snprintf(cmd, sizeof cmd, "DROP SCHEMA %s CASCADE", strstr(to, "%3D") + 3);
            sql_ok(to, cmd);
            ASSERT_INT_EQ(busy_history(to), 7);
        }
        return;
    }
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    ASSERT(system(cmd) == 0);
}

TEST(audit_tampering_is_found)
{
    const char *path = ch_test_store("chain.db");
    const char *keep = tmp_path("chain.keep");
    char msg[256];
    ch_registry *r;

    ASSERT_INT_EQ(busy_history(path), 7);
    copy_file(path, keep);
    r = open_store(path);
    ASSERT_INT_EQ(verify_ok(r), 7);
    ch_registry_close(r);

    /* The triggers still refuse plain edits. */
    ASSERT_INT_EQ(raw_sql(path, "UPDATE audit SET actor = 'x' WHERE id = 2", msg, sizeof msg),
                  SQLITE_CONSTRAINT);
    ASSERT_INT_EQ(raw_sql(path, "DELETE FROM audit_head", msg, sizeof msg), SQLITE_CONSTRAINT);

    /* An edited entry (trigger dropped first). */
    sql_ok(path, "DROP TRIGGER audit_no_update; UPDATE audit SET reason = 'other' WHERE id = 3");
    expect_broken(path, 3, "entry 3 was changed");
    /* Edited details, an edited time, a NULL made from a value. */
    copy_file(keep, path);
    sql_ok(path, "DROP TRIGGER audit_no_update; UPDATE audit SET details_json = "
                 "'{\"run_id\":2}' WHERE id = 1");
    expect_broken(path, 1, "entry 1 was changed");
    copy_file(keep, path);
    sql_ok(path, "DROP TRIGGER audit_no_update; UPDATE audit SET target = NULL WHERE id = 5");
    expect_broken(path, 5, "entry 5");
    /* An edit whose hash was recomputed breaks the next link instead. */
    copy_file(keep, path);
    sql_ok(path, "DROP TRIGGER audit_no_update; UPDATE audit SET hash = "
                 "'1111111111111111111111111111111111111111111111111111111111111111' WHERE id = 4");
    expect_broken(path, 4, "entry 4 was changed");

    /* An entry removed in the middle: the next one does not follow. */
    copy_file(keep, path);
    sql_ok(path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 4");
    expect_broken(path, 5, "entry 5 does not follow entry 3");
    /* The first entry removed. */
    copy_file(keep, path);
    sql_ok(path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 1");
    expect_broken(path, 2, "entry 2 is the first");

    /* The tail cut: the head still counts the entries. */
    copy_file(keep, path);
    sql_ok(path, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id >= 6");
    expect_broken(path, 6, "removed from the end");
    /* ... and it stays broken after further writes. */
    r = open_store(path);
    ASSERT_OK(ch_registry_audit_append(r, "ann", "after-cut", NULL, NULL, NULL));
    ch_registry_close(r);
    expect_broken(path, 8, "entry 8 does not follow entry 5");

    /* The head removed, or changed. */
    copy_file(keep, path);
    sql_ok(path, "DROP TRIGGER audit_head_no_delete; DELETE FROM audit_head");
    expect_broken(path, 0, "head row is missing");
    copy_file(keep, path);
    sql_ok(path, "UPDATE audit_head SET n_entries = 6, last_id = 6");
    expect_broken(path, 7, "head records 6 entries");

    /* Restored, it holds again. */
    copy_file(keep, path);
    r = open_store(path);
    ASSERT_INT_EQ(verify_ok(r), 7);
    check_ok(r);
    ch_registry_close(r);
}

/* Layout 1 as earlier builds wrote it (a copy of registry_sqlite.c's
 * schema_v1), with some history in it. */
#define LAYOUT1_TABLES                                                                             \
    "CREATE TABLE datasets (sha256 TEXT PRIMARY KEY NOT NULL, path TEXT NOT NULL, n_rows "         \
    "INTEGER NOT NULL CHECK (n_rows >= 0), first_seen TEXT NOT NULL);"                             \
    "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, ended "       \
    "TEXT, status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')), seconds REAL, "     \
    "dataset_sha256 TEXT REFERENCES datasets(sha256), config_json TEXT, lineage_json TEXT, "       \
    "summary_json TEXT);"                                                                          \
    "CREATE TABLE metrics (run_id INTEGER NOT NULL REFERENCES runs(id), scope TEXT NOT NULL, "     \
    "name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, scope, name));"                          \
    "CREATE TABLE artifacts (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES "          \
    "runs(id), kind TEXT NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, created TEXT NOT "    \
    "NULL);"                                                                                       \
    "CREATE INDEX artifacts_run ON artifacts(run_id);"                                             \
    "CREATE TABLE model_versions (version INTEGER PRIMARY KEY CHECK (version >= 1), run_id "       \
    "INTEGER NOT NULL REFERENCES runs(id), family TEXT NOT NULL, bundle_path TEXT NOT NULL, "      \
    "bundle_sha256 TEXT NOT NULL, metrics_json TEXT, created TEXT NOT NULL);"                      \
    "CREATE TABLE aliases (name TEXT PRIMARY KEY NOT NULL CHECK (name IN ('champion', "            \
    "'challenger')), version INTEGER NOT NULL REFERENCES model_versions(version));"                \
    "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT "  \
    "NULL, action TEXT NOT NULL, alias TEXT, from_version INTEGER, to_version INTEGER, reason "    \
    "TEXT, details_json TEXT);"                                                                    \
    "CREATE INDEX audit_alias ON audit(alias, id);"                                                \
    "CREATE INDEX audit_to ON audit(to_version, action);"                                          \
    "CREATE INDEX audit_from ON audit(from_version);"                                              \
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit rows " \
    "are append-only'); END;"                                                                      \
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit rows " \
    "are append-only'); END;"
static const char layout1[] = LAYOUT1_TABLES
    "INSERT INTO runs(started, status) VALUES ('2024-01-01T00:00:00.000Z', 'ok');"
    "INSERT INTO model_versions VALUES (1, 1, 'xgboost', 'm1', "
    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', NULL, "
    "'2024-01-01T00:00:01.000Z');"
    "INSERT INTO model_versions VALUES (2, 1, 'linear', 'm2', "
    "'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', NULL, "
    "'2024-01-01T00:00:02.000Z');"
    "INSERT INTO aliases VALUES ('champion', 2), ('challenger', 2);"
    "INSERT INTO audit(at, actor, action, alias, from_version, to_version, reason, details_json) "
    "VALUES ('2024-01-01T00:00:01.000Z', 't', 'register', NULL, NULL, 1, 'r', '{\"run_id\":1}'),"
    " ('2024-01-01T00:00:01.000Z', 't', 'alias', 'challenger', NULL, 1, 'r', NULL),"
    " ('2024-01-01T00:00:01.000Z', 't', 'alias', 'champion', NULL, 1, 'r', NULL),"
    " ('2024-01-01T00:00:02.000Z', 't', 'register', NULL, NULL, 2, 'r', '{\"run_id\":1}'),"
    " ('2024-01-01T00:00:02.000Z', 't', 'alias', 'challenger', 1, 2, 'r', NULL),"
    " ('2024-01-01T00:00:03.000Z', 't', 'promote', 'champion', 1, 2, 'better', "
    "'{\"force\":true}');"
    "PRAGMA user_version = 1;";

TEST(migration_chains_existing_rows)
{
    const char *path = ch_test_store("v1.db");
    ch_registry *r;
    ch_error err = {0};
    ch_json *doc;
    char msg[256];
    int64_t v = 0;

    if (ch_test_store_pg())
        SKIP("builds a SQLite file of layout 1; PostgreSQL stores start at the current layout");

    sql_ok(path, layout1);
    /* Read-only cannot upgrade. */
    {
        ch_registry_opts o;
        ch_registry_opts_default(&o);
        o.read_only = 1;
        r = NULL;
        ASSERT_ERR(ch_registry_open(path, &o, &r, &err), CH_EDB);
        ASSERT_CONTAINS(err.msg, "older layout 1");
    }
    r = open_store(path);
    check_ok(r);
    ASSERT_INT_EQ(verify_ok(r), 6);
    doc = audit_tail(r, 0);
    ASSERT_INT_EQ(ch_json_len(doc), 6);
    ASSERT_STR_EQ(str_of(ch_json_at(doc, 0), "prev_hash"),
                  "0000000000000000000000000000000000000000000000000000000000000000");
    for (size_t i = 0; i < 6; i++) {
        const ch_json *e = ch_json_at(doc, i);
        ASSERT_INT_EQ(strlen(str_of(e, "hash")), 64);
        ASSERT(is_null(e, "target"));
        if (i > 0)
            ASSERT_STR_EQ(str_of(e, "prev_hash"), str_of(ch_json_at(doc, i - 1), "hash"));
    }
    ASSERT_STR_EQ(str_of(ch_json_at(doc, 5), "reason"), "better");
    ch_json_free(doc);
    /* The old history still works: rollback follows the promotion. */
    ASSERT_OK(ch_registry_rollback(r, "t", "back", &v, &err));
    ASSERT_INT_EQ(v, 1);
    ASSERT_OK(ch_registry_user_add(r, "ann", "admin", HASH_A, "root", &err));
    ASSERT_INT_EQ(verify_ok(r), 8);
    check_ok(r);
    ch_registry_close(r);
    /* The triggers are back after the migration. */
    ASSERT_INT_EQ(raw_sql(path, "UPDATE audit SET actor = 'x' WHERE id = 2", msg, sizeof msg),
                  SQLITE_CONSTRAINT);
    ASSERT_CONTAINS(msg, "append-only");
    ASSERT_INT_EQ(raw_sql(path, "DELETE FROM audit WHERE id = 8", msg, sizeof msg),
                  SQLITE_CONSTRAINT);
    /* Opening again changes nothing. */
    r = open_store(path);
    ASSERT_INT_EQ(verify_ok(r), 8);
    ch_registry_close(r);
}

/* Writers in four processes append at once; the chain stays one chain. */
TEST(concurrent_appends_keep_one_chain)
{
    const char *path = ch_test_store("conc.db");
    pid_t pids[4];
    ch_registry *r = open_store(path);
    ch_registry_close(r);

    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        ASSERT(pids[i] >= 0);
        if (pids[i] == 0) {
            ch_registry *w = NULL;
            ch_error err = {0};
            int status = 0;
            if (ch_registry_open(path, NULL, &w, &err) != CH_OK)
                _exit(10);
            for (int k = 0; k < 25 && status == 0; k++) {
                char target[32];
                char name[32];
                snprintf(target, sizeof target, "w%d-%d", i, k);
                if (ch_registry_audit_append(w, "writer", "tick", target, NULL, &err) != CH_OK)
                    status = 11;
                snprintf(name, sizeof name, "u%d-%d", i, k);
                if (k % 5 == 0 &&
                    ch_registry_user_add(w, name, "service", HASH_A, "writer", &err) != CH_OK)
                    status = 12;
            }
            if (status != 0)
                fprintf(stderr, "    writer %d: %s\n", i, err.msg);
            ch_registry_close(w);
            _exit(status);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st = 0;
        ASSERT(waitpid(pids[i], &st, 0) == pids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            FAIL("writer %d ended with status %d", i, st);
    }
    r = open_store(path);
    ASSERT_INT_EQ(verify_ok(r), 120);
    check_ok(r);
    ch_registry_close(r);
}

/* ---- predictions and feedback -------------------------------------------- */

TEST(predictions_and_feedback)
{
    const char *path = ch_test_store("fb.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    ch_prediction_rec recs[50];
    char got[CH_PREDICTION_ID_LEN + 1];
    int64_t n = -1;
    ch_json *doc;
    const ch_json *f;

    /* Record i is customer i % 3's at time 1000 + i, except that records
     * 9, 19, ... have no customer: the latest of customer 1 is record 46
     * (49 has none). */
    for (unsigned i = 0; i < 50; i++)
        recs[i] = pred(i, i % 10 == 9 ? 0 : i % 3, 1000 + (int64_t)i);
    ASSERT_OK(ch_registry_log_predictions(r, recs, 50, &err));
    /* A retried batch is harmless. */
    ASSERT_OK(ch_registry_log_predictions(r, recs, 50, &err));
    ASSERT_OK(ch_registry_feedback_count(r, &n, &err));
    ASSERT_INT_EQ(n, 0);

    /* By prediction id. */
    memset(got, 'x', sizeof got);
    ASSERT_OK(ch_registry_feedback_add(r, recs[7].id, NULL, 1, "2024-06-30", "svc", got, &err));
    ASSERT_STR_EQ(got, recs[7].id);
    /* By customer: the latest prediction. */
    ASSERT_OK(ch_registry_feedback_add(r, NULL, cust(1), 0, "2024-02-29", "svc", got, &err));
    ASSERT_STR_EQ(got, recs[46].id);
    /* Both, agreeing; out may be NULL. Upper-case hex is the same id. */
    ASSERT_OK(
        ch_registry_feedback_add(r, recs[41].id, cust(2), 1, "2024-07-01", "svc", NULL, &err));
    {
        char up[33];
        for (int i = 0; i < 33; i++)
            up[i] = (char)(recs[8].id[i] >= 'a' && recs[8].id[i] <= 'f' ? recs[8].id[i] - 32
                                                                        : recs[8].id[i]);
        ASSERT_OK(ch_registry_feedback_add(r, up, NULL, 0, "2024-07-01", "svc", got, &err));
        ASSERT_STR_EQ(got, recs[8].id);
    }
    ASSERT_OK(ch_registry_feedback_count(r, &n, &err));
    ASSERT_INT_EQ(n, 4);

    /* Not found: nothing recorded. */
    ASSERT_ERR(
        ch_registry_feedback_add(r, hex_of(0xdead, 32), NULL, 1, "2024-06-30", "svc", got, &err),
        CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "no prediction");
    ASSERT_CONTAINS(err.msg, "not recorded");
    ASSERT_ERR(ch_registry_feedback_add(r, NULL, cust(77), 1, "2024-06-30", "svc", got, &err),
               CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "for customer");
    ASSERT_ERR(ch_registry_feedback_add(r, recs[41].id, cust(1), 1, "2024-06-30", "svc", got, &err),
               CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "is not for customer");
    /* A prediction without a customer cannot be some customer's. */
    ASSERT_ERR(ch_registry_feedback_add(r, recs[9].id, cust(0), 1, "2024-06-30", "svc", got, &err),
               CH_ENOTFOUND);
    ASSERT_OK(ch_registry_feedback_count(r, &n, &err));
    ASSERT_INT_EQ(n, 4);

    /* Bad arguments. */
    ASSERT_ERR(ch_registry_feedback_add(r, NULL, NULL, 1, "2024-06-30", "svc", got, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_feedback_add(r, "abc", NULL, 1, "2024-06-30", "svc", got, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_feedback_add(r, NULL, "xyz", 1, "2024-06-30", "svc", got, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_feedback_add(r, recs[7].id, NULL, 2, "2024-06-30", "svc", got, &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_feedback_add(r, recs[7].id, NULL, 1, "2024-06-30", "", got, &err),
               CH_EINVAL);
    {
        static const char *const bad_dates[] = {
            "2023-02-29", "2100-02-29", "2024-13-01", "2024-00-10",       "2024-04-31",
            "2024-1-01",  "24-01-01",   "2024/01/01", "2024-01-01T00:00", "0000-01-01",
            "",           "2024-06-3x", NULL};
        for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++) {
            ASSERT_ERR(
                ch_registry_feedback_add(r, recs[7].id, NULL, 1, bad_dates[i], "svc", got, &err),
                CH_EINVAL);
            if (bad_dates[i] != NULL)
                ASSERT_CONTAINS(err.msg, "YYYY-MM-DD");
        }
        ASSERT_OK(ch_registry_feedback_add(r, recs[7].id, NULL, 1, "2000-02-29", "svc", got, &err));
        ASSERT_OK(ch_registry_feedback_add(r, recs[7].id, NULL, 1, "2024-12-31", "svc", got, &err));
    }
    ASSERT_OK(ch_registry_feedback_count(r, &n, &err));
    ASSERT_INT_EQ(n, 6);
    ASSERT_ERR(ch_registry_feedback_count(r, NULL, &err), CH_EINVAL);

    /* The listing: newest first, joined to the prediction. */
    doc = feedback_doc(r, 0);
    ASSERT_INT_EQ(ch_json_len(doc), 6);
    f = ch_json_at(doc, 5);
    ASSERT_INT_EQ(num_of(f, "id"), 1);
    ASSERT_STR_EQ(str_of(f, "prediction_id"), recs[7].id);
    ASSERT_STR_EQ(str_of(f, "customer"), cust(1)); /* record 7 is customer 1's */
    ASSERT_INT_EQ(num_of(f, "churned"), 1);
    ASSERT_STR_EQ(str_of(f, "observed_date"), "2024-06-30");
    ASSERT_STR_EQ(str_of(f, "actor"), "svc");
    ASSERT_INT_EQ(strlen(str_of(f, "at")), 24);
    ASSERT_NEAR(num_of(f, "probability"), 0.07, 0);
    ASSERT_INT_EQ(num_of(f, "label"), 0);
    ASSERT_INT_EQ(num_of(f, "model_version"), 1);
    ASSERT_STR_EQ(str_of(f, "predicted_at"), "1970-01-01T00:00:01.007Z");
    f = ch_json_at(doc, 2); /* the fourth: record 8, model version 2 */
    ASSERT_STR_EQ(str_of(f, "prediction_id"), recs[8].id);
    ASSERT_INT_EQ(num_of(f, "model_version"), 2);
    ch_json_free(doc);
    doc = feedback_doc(r, 2);
    ASSERT_INT_EQ(ch_json_len(doc), 2);
    ASSERT_INT_EQ(num_of(ch_json_at(doc, 0), "id"), 6);
    ch_json_free(doc);
    /* Model version 0 (served from a file) reads as null; no customer as
     * null. */
    ASSERT_OK(ch_registry_feedback_add(r, recs[9].id, NULL, 0, "2024-01-01", "svc", got, &err));
    doc = feedback_doc(r, 1);
    ASSERT(is_null(ch_json_at(doc, 0), "model_version"));
    ASSERT(is_null(ch_json_at(doc, 0), "customer"));
    ch_json_free(doc);

    /* Predictions and feedback are data, not audited changes. */
    ASSERT_INT_EQ(n_audit(r), 0);
    check_ok(r);
    ch_registry_close(r);

    /* Read-only. */
    r = open_ro(path);
    ASSERT_OK(ch_registry_feedback_count(r, &n, &err));
    ASSERT_INT_EQ(n, 7);
    ASSERT_ERR(ch_registry_feedback_add(r, recs[9].id, NULL, 0, "2024-01-01", "svc", got, &err),
               CH_EDB);
    ASSERT_ERR(ch_registry_log_predictions(r, recs, 1, &err), CH_EDB);
    ch_registry_close(r);
}

TEST(prediction_batches_are_checked_and_atomic)
{
    const char *path = ch_test_store("batch.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    ch_prediction_rec recs[10];
    char got[CH_PREDICTION_ID_LEN + 1];

    for (unsigned i = 0; i < 10; i++)
        recs[i] = pred(100 + i, 1, 5000 + (int64_t)i);

    /* Every record is checked before anything is written. */
    {
        ch_prediction_rec bad[10];
        memcpy(bad, recs, sizeof bad);
        bad[6].probability = 1.5;
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "record 6");
        ASSERT_CONTAINS(err.msg, "probability");
        memcpy(bad, recs, sizeof bad);
        bad[3].probability = NAN;
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        bad[2].label = 2;
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        bad[2].id[5] = 'G';
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "id");
        memcpy(bad, recs, sizeof bad);
        bad[2].id[5] = 'A'; /* ids are lower case */
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        memset(bad[2].id, 'a', sizeof bad[2].id); /* no NUL */
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        bad[1].customer[4] = 'z';
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "customer");
        memcpy(bad, recs, sizeof bad);
        bad[1].features_sha256[10] = '\0';
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        bad[9].model_version = -1;
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        bad[9].latency_s = -0.5;
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        bad[9].time_ms = 0;
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        memcpy(bad, recs, sizeof bad);
        bad[4].inputs_len = CH_PREDLOG_INPUTS_MAX + 1;
        ASSERT_ERR(ch_registry_log_predictions(r, bad, 10, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "record 4: inputs_len");
        ASSERT_ERR(ch_registry_log_predictions(r, recs, 0, &err), CH_EINVAL);
        ASSERT_ERR(ch_registry_log_predictions(r, NULL, 1, &err), CH_EINVAL);
        ASSERT_ERR(ch_registry_log_predictions(NULL, recs, 1, &err), CH_EINVAL);
    }
    ASSERT_ERR(ch_registry_feedback_add(r, recs[0].id, NULL, 1, "2024-01-01", "t", got, &err),
               CH_ENOTFOUND);

    /* The store failing in the middle of a batch keeps none of it. */
    if (ch_test_store_pg())
        sql_ok(path, "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$BEGIN RAISE EXCEPTION 'boom'; END$$; CREATE TRIGGER boom BEFORE INSERT ON "
                     "predictions FOR EACH ROW WHEN (NEW.time_ms = 5007) EXECUTE FUNCTION boom()");
    else
        sql_ok(path, "CREATE TRIGGER boom BEFORE INSERT ON predictions WHEN NEW.time_ms = 5007 "
                     "BEGIN SELECT RAISE(ABORT, 'boom'); END;");
    ASSERT_ERR(ch_registry_log_predictions(r, recs, 10, &err), CH_EDB);
    ASSERT_CONTAINS(err.msg, "boom");
    ASSERT_ERR(ch_registry_feedback_add(r, recs[0].id, NULL, 1, "2024-01-01", "t", got, &err),
               CH_ENOTFOUND);
    ASSERT_ERR(ch_registry_feedback_add(r, NULL, cust(1), 1, "2024-01-01", "t", got, &err),
               CH_ENOTFOUND);
    /* The cached statement survives the failure. */
    sql_ok(path, ch_test_store_pg() ? "DROP TRIGGER boom ON predictions" : "DROP TRIGGER boom");
    ASSERT_OK(ch_registry_log_predictions(r, recs, 10, &err));
    ASSERT_OK(ch_registry_feedback_add(r, NULL, cust(1), 1, "2024-01-01", "t", got, &err));
    ASSERT_STR_EQ(got, recs[9].id);
    /* Batches of one, many times over one handle. */
    for (unsigned i = 0; i < 200; i++) {
        ch_prediction_rec p = pred(1000 + i, 3, 9000 + (int64_t)i);
        ASSERT_OK(ch_registry_log_predictions(r, &p, 1, &err));
    }
    ASSERT_OK(ch_registry_feedback_add(r, NULL, cust(3), 0, "2024-01-01", "t", got, &err));
    ASSERT_STR_EQ(got, pred(1199, 3, 1).id);
    check_ok(r);
    ch_registry_close(r);
}

/* A process killed in the middle of a batch leaves none of it. */
TEST(killed_mid_batch)
{
    const char *path = ch_test_store("kill.db");
    ch_registry *r = open_store(path);
    ch_prediction_rec recs[20];
    char got[CH_PREDICTION_ID_LEN + 1];
    ch_error err = {0};
    int fds[2];
    pid_t pid;
    char c = 0;
    int st = 0;

    ch_registry_close(r);
    for (unsigned i = 0; i < 20; i++)
        recs[i] = pred(i, 1, 100 + (int64_t)i);
    ASSERT(pipe(fds) == 0);
    pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        ch_registry_opts o;
        ch_registry *cr = NULL;
        ch_registry_opts_default(&o);
        o.test_pause_ms = 3000;
        close(fds[0]);
        if (ch_registry_open(path, &o, &cr, NULL) != CH_OK)
            _exit(2);
        if (write(fds[1], "o", 1) != 1)
            _exit(3);
        ch_err rc = ch_registry_log_predictions(cr, recs, 20, NULL);
        _exit(rc == CH_OK ? 4 : 5);
    }
    close(fds[1]);
    ASSERT(read(fds[0], &c, 1) == 1);
    close(fds[0]);
    sleep_ms(300);
    ASSERT(kill(pid, SIGKILL) == 0);
    ASSERT(waitpid(pid, &st, 0) == pid);
    ASSERT(WIFSIGNALED(st));
    r = open_store(path);
    ASSERT_ERR(ch_registry_feedback_add(r, recs[0].id, NULL, 1, "2024-01-01", "t", got, &err),
               CH_ENOTFOUND);
    check_ok(r);
    ch_registry_close(r);
}

/* ---- reading the prediction log -------------------------------------------- */

/* A row as a scan delivered it, copied out of the callback. */
typedef struct got_row {
    char id[CH_PREDICTION_ID_LEN + 1];
    char customer[CH_PSEUDONYM_LEN + 1];
    int has_customer;
    double probability;
    int label;
    int64_t model_version;
    int64_t time_ms;
    unsigned char inputs[CH_PREDLOG_INPUTS_MAX];
    size_t inputs_len;
    int has_inputs;
    int churned;
    char observed_date[11];
    int has_date;
    int arm;
    int64_t shadow_version;
    double shadow_probability;
} got_row;

typedef struct got {
    got_row *rows;
    size_t n;
    size_t cap;
    size_t stop_after; /* 0: never stop */
    int bad;           /* a row broke the contract (pointers, lengths) */
} scan_out;

static int collect(void *ctx, const ch_prediction_row *r)
{
    scan_out *g = ctx;
    got_row *o;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        got_row *rows = ch_realloc(g->rows, cap * sizeof *rows);
        if (rows == NULL) {
            g->bad = 1;
            return 1;
        }
        g->rows = rows;
        g->cap = cap;
    }
    o = &g->rows[g->n++];
    memset(o, 0, sizeof *o);
    if (r->id == NULL || strlen(r->id) != CH_PREDICTION_ID_LEN ||
        (r->inputs == NULL) != (r->inputs_len == 0) || r->inputs_len > CH_PREDLOG_INPUTS_MAX ||
        (r->churned < 0) != (r->observed_date == NULL) || r->churned > 1)
        g->bad = 1;
    else
        memcpy(o->id, r->id, sizeof o->id);
    if (r->customer != NULL) {
        o->has_customer = 1;
        snprintf(o->customer, sizeof o->customer, "%s", r->customer);
    }
    o->probability = r->probability;
    o->label = r->label;
    o->model_version = r->model_version;
    o->time_ms = r->time_ms;
    if (r->inputs != NULL && r->inputs_len <= CH_PREDLOG_INPUTS_MAX) {
        o->has_inputs = 1;
        o->inputs_len = r->inputs_len;
        memcpy(o->inputs, r->inputs, r->inputs_len);
    }
    o->arm = r->arm;
    o->shadow_version = r->shadow_version;
    o->shadow_probability = r->shadow_probability;
    o->churned = r->churned;
    if (r->observed_date != NULL) {
        o->has_date = 1;
        snprintf(o->observed_date, sizeof o->observed_date, "%s", r->observed_date);
    }
    return g->stop_after != 0 && g->n >= g->stop_after;
}

/* Scans with 'q' into 'g' (emptied first); fails the test on an error. */
static void scan(ch_registry *r, const ch_prediction_query *q, scan_out *g)
{
    ch_error err = {0};
    ch_err rc;
    g->n = 0;
    g->bad = 0;
    rc = ch_registry_predictions_scan(r, q, collect, g, &err);
    if (rc != CH_OK)
        FAIL("scan: %s: %s", ch_strerror(rc), err.msg);
    ASSERT(!g->bad);
}

static int64_t count_of(ch_registry *r, const ch_prediction_query *q)
{
    ch_error err = {0};
    int64_t n = -1;
    ch_err rc = ch_registry_predictions_count(r, q, &n, &err);
    if (rc != CH_OK)
        FAIL("count: %s: %s", ch_strerror(rc), err.msg);
    return n;
}

/* Input bytes of record 'n': 'len' bytes that depend on 'n'. */
static void fill_inputs(ch_prediction_rec *p, unsigned n, size_t len)
{
    p->inputs_len = (uint16_t)len;
    for (size_t i = 0; i < len; i++)
        p->inputs[i] = (unsigned char)(n * 13 + i * 7);
}

/* Every field comes back as it was logged; the blob byte for byte, NULL
 * when none was logged, and the same from a read-only handle. */
TEST(prediction_scan_round_trip)
{
    static const size_t lens[] = {87, 0, 1, CH_PREDLOG_INPUTS_MAX, 95, 0, 151};
    const char *path = ch_test_store("scan.db");
    ch_registry *r = open_store(path);
    ch_prediction_rec recs[7];
    ch_error err = {0};
    scan_out g = {0};

    for (unsigned i = 0; i < 7; i++) {
        recs[i] = pred(i, i % 2 ? 0 : 1 + i, 1000 + (int64_t)i);
        fill_inputs(&recs[i], i, lens[i]);
        recs[i].arm = (int)(i % 3); /* none, champion, candidate */
        if (i % 2 == 0) {
            recs[i].shadow_version = 7;
            recs[i].shadow_probability = 0.125 * i;
        }
        /* Bytes past inputs_len are not part of the record. */
        if (lens[i] < CH_PREDLOG_INPUTS_MAX)
            recs[i].inputs[lens[i]] = 0xAB;
    }
    ASSERT_OK(ch_registry_log_predictions(r, recs, 7, &err));
    ASSERT_OK(ch_registry_feedback_add(r, recs[2].id, NULL, 1, "2024-06-30", "t", NULL, &err));
    for (int pass = 0; pass < 2; pass++) {
        scan(r, NULL, &g);
        ASSERT_INT_EQ(g.n, 7);
        for (unsigned i = 0; i < 7; i++) {
            const got_row *o = &g.rows[i];
            ASSERT_STR_EQ(o->id, recs[i].id);
            ASSERT_INT_EQ(o->has_customer, recs[i].customer[0] != '\0');
            if (o->has_customer)
                ASSERT_STR_EQ(o->customer, recs[i].customer);
            ASSERT(o->probability == recs[i].probability);
            ASSERT_INT_EQ(o->label, recs[i].label);
            ASSERT_INT_EQ(o->model_version, recs[i].model_version);
            ASSERT_INT_EQ(o->time_ms, recs[i].time_ms);
            ASSERT_INT_EQ(o->has_inputs, lens[i] > 0);
            ASSERT_INT_EQ(o->inputs_len, lens[i]);
            ASSERT(memcmp(o->inputs, recs[i].inputs, lens[i]) == 0);
            ASSERT_INT_EQ(o->churned, i == 2 ? 1 : -1);
            ASSERT_INT_EQ(o->has_date, i == 2);
            ASSERT_INT_EQ(o->arm, recs[i].arm);
            ASSERT_INT_EQ(o->shadow_version, recs[i].shadow_version);
            if (i % 2 == 0)
                ASSERT(o->shadow_probability == recs[i].shadow_probability);
            else
                ASSERT(isnan(o->shadow_probability));
        }
        ASSERT_STR_EQ(g.rows[2].observed_date, "2024-06-30");
        ASSERT_INT_EQ(count_of(r, NULL), 7);
        check_ok(r);
        ch_registry_close(r);
        r = open_ro(path);
    }
    ch_registry_close(r);
    ch_free(g.rows);
}

/* The reference: what a scan with 'q' must deliver from 'n' records
 * logged in the order 'order' (rowid k is order[k]), with the feedback
 * 'fb_pred' (prediction index) / 'fb_churned' in the order recorded:
 * 'out' gets record indexes, oldest first. Written the slow, obvious way. */
static size_t reference(const ch_prediction_rec *recs, const unsigned *order, size_t n,
                        const unsigned *fb_pred, const int *fb_churned, size_t n_fb,
                        const ch_prediction_query *q, unsigned *out, int *churned)
{
    size_t m = 0;
    size_t first = 0;
    /* Walk in rowid order, keep what matches, then sort by time (stable:
     * equal times keep rowid order). */
    for (size_t k = 0; k < n; k++) {
        const ch_prediction_rec *p = &recs[order[k]];
        int last = -1;
        for (size_t f = 0; f < n_fb; f++)
            if (fb_pred[f] == order[k])
                last = fb_churned[f];
        if (p->time_ms < q->since_ms || (q->until_ms != 0 && p->time_ms >= q->until_ms))
            continue;
        if (q->model_version != 0 && p->model_version != q->model_version)
            continue;
        if (q->labelled_only && last < 0)
            continue;
        out[m] = order[k];
        churned[m] = last;
        m++;
    }
    for (size_t i = 1; i < m; i++)
        for (size_t j = i; j > 0 && recs[out[j - 1]].time_ms > recs[out[j]].time_ms; j--) {
            unsigned t = out[j];
            int c = churned[j];
            out[j] = out[j - 1];
            churned[j] = churned[j - 1];
            out[j - 1] = t;
            churned[j - 1] = c;
        }
    if (q->last_n != 0 && m > q->last_n)
        first = m - q->last_n;
    memmove(out, out + first, (m - first) * sizeof *out);
    memmove(churned, churned + first, (m - first) * sizeof *churned);
    return m - first;
}

/* Runs 600 random queries against the reference, with the first 'n_fb'
 * feedback records given. */
static void check_queries(ch_registry *r, const ch_prediction_rec *recs, const unsigned *order,
                          size_t n, const unsigned *fb_pred, const int *fb_churned, size_t n_fb,
                          uint64_t *xs, scan_out *g)
{
    unsigned want[512];
    int want_churned[512];
    ASSERT(n <= 512);
    for (int t = 0; t < 600; t++) {
        ch_prediction_query q;
        uint64_t x;
        size_t m;
        memset(&q, 0, sizeof q);
        *xs ^= *xs << 13, *xs ^= *xs >> 7, *xs ^= *xs << 17;
        x = *xs;
        if (x % 3 == 0)
            q.since_ms = 90 + (int64_t)(x >> 8) % 220;
        if ((x >> 3) % 3 == 0)
            q.until_ms = q.since_ms + 1 + (int64_t)(x >> 16) % 150;
        if ((x >> 5) % 3 == 0)
            q.last_n = (size_t)(x >> 24) % 60;
        if ((x >> 7) % 3 == 0)
            q.model_version = (int64_t)(x >> 32) % 4;
        q.labelled_only = (x >> 9) % 4 == 0;
        m = reference(recs, order, n, fb_pred, fb_churned, n_fb, &q, want, want_churned);
        scan(r, &q, g);
        if (g->n != m)
            FAIL("query %d (since %lld, until %lld, last %zu, version %lld, labelled %d): %zu "
                 "rows, want %zu",
                 t, (long long)q.since_ms, (long long)q.until_ms, q.last_n,
                 (long long)q.model_version, q.labelled_only, g->n, m);
        for (size_t i = 0; i < m; i++) {
            const ch_prediction_rec *p = &recs[want[i]];
            ASSERT_STR_EQ(g->rows[i].id, p->id);
            ASSERT_INT_EQ(g->rows[i].churned, want_churned[i]);
            ASSERT_INT_EQ(g->rows[i].inputs_len, p->inputs_len);
            ASSERT(memcmp(g->rows[i].inputs, p->inputs, p->inputs_len) == 0);
        }
        ASSERT_INT_EQ(count_of(r, &q), m);
    }
}

/* Filters, order (time, then the order stored), last_n, the labelled
 * join with the latest feedback, and count, against the reference over
 * many random queries. */
TEST(prediction_scan_filters_and_order)
{
    enum { N = 400, N_FB = 120 };
    const char *path = ch_test_store("filters.db");
    ch_registry *r = open_store(path);
    static ch_prediction_rec recs[N];
    unsigned order[N];
    unsigned fb_pred[N_FB];
    int fb_churned[N_FB];
    ch_error err = {0};
    scan_out g = {0};
    uint64_t x = 88172645463325252ull;

    /* Times from 100 to 299 in random order, so many are shared, and
     * stored in an order unrelated to time. */
    for (unsigned i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        recs[i] = pred(i, 1 + i % 7, 100 + (int64_t)(x % 200));
        recs[i].model_version = (int64_t)(x >> 20) % 4; /* 0: served from a file */
        fill_inputs(&recs[i], i, i % 5 == 0 ? 0 : 80 + i % 9);
        order[i] = i;
    }
    for (unsigned i = N - 1; i > 0; i--) {
        unsigned j;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        j = (unsigned)(x % (i + 1));
        unsigned t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (unsigned k = 0; k < N;) {
        ch_prediction_rec batch[37];
        unsigned m = 0;
        while (m < 37 && k < N)
            batch[m++] = recs[order[k++]];
        ASSERT_OK(ch_registry_log_predictions(r, batch, m, &err));
    }
    /* Feedback in three stages, each followed by random queries: none
     * at all; 15 records, so that a long window has many predictions per
     * record and a short one few (the store joins feedback from one side
     * or the other by those numbers); 120, some predictions twice, the
     * later report winning. */
    for (unsigned stage = 0, n_fb = 0; stage < 3; stage++) {
        unsigned upto = stage == 0 ? 0 : stage == 1 ? 15 : N_FB;
        for (; n_fb < upto; n_fb++) {
            char date[16];
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            fb_pred[n_fb] = n_fb < 90 ? (unsigned)(x % N) : fb_pred[n_fb - 90];
            fb_churned[n_fb] = (int)(x >> 40) & 1;
            snprintf(date, sizeof date, "2024-01-%02u", 1 + n_fb % 28);
            ASSERT_OK(ch_registry_feedback_add(r, recs[fb_pred[n_fb]].id, NULL, fb_churned[n_fb],
                                               date, "t", NULL, &err));
        }
        check_queries(r, recs, order, N, fb_pred, fb_churned, n_fb, &x, &g);
    }
    /* The latest feedback's date comes with it. */
    {
        ch_prediction_query q;
        memset(&q, 0, sizeof q);
        q.labelled_only = 1;
        scan(r, &q, &g);
        for (size_t i = 0; i < g.n; i++) {
            int last = -1;
            for (unsigned f = 0; f < N_FB; f++)
                if (strcmp(recs[fb_pred[f]].id, g.rows[i].id) == 0)
                    last = (int)f;
            ASSERT(last >= 0);
            ASSERT_INT_EQ(g.rows[i].observed_date[8] - '0', (1 + (unsigned)last % 28) / 10);
        }
    }
    /* A callback that stops ends the scan: CH_OK, no more rows. */
    g.stop_after = 5;
    scan(r, NULL, &g);
    ASSERT_INT_EQ(g.n, 5);
    g.stop_after = 0;
    check_ok(r);
    ch_registry_close(r);
    ch_free(g.rows);
}

/* Layout 2, as the build before inputs wrote it: layout 1's tables and a
 * copy of registry_sqlite.c's schema_v2, with predictions and feedback. */
static const char layout2[] = LAYOUT1_TABLES
    "ALTER TABLE audit ADD COLUMN target TEXT;"
    "ALTER TABLE audit ADD COLUMN prev_hash TEXT;"
    "ALTER TABLE audit ADD COLUMN hash TEXT;"
    "CREATE INDEX audit_target ON audit(target, id);"
    "CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), n_entries INTEGER NOT NULL "
    "CHECK (n_entries >= 0), last_id INTEGER NOT NULL, last_hash TEXT NOT NULL);"
    "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head BEGIN SELECT RAISE(ABORT, "
    "'audit rows are append-only'); END;"
    "CREATE TABLE users (name TEXT PRIMARY KEY NOT NULL, role TEXT NOT NULL, password_hash TEXT "
    "NOT NULL, disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)), created TEXT NOT "
    "NULL, updated TEXT NOT NULL);"
    "CREATE TABLE api_keys (id TEXT PRIMARY KEY NOT NULL, sha256 TEXT NOT NULL, role TEXT NOT "
    "NULL, label TEXT, created TEXT NOT NULL, created_by TEXT NOT NULL, last_used TEXT, "
    "revoked_at TEXT);"
    "CREATE TABLE predictions (id TEXT PRIMARY KEY NOT NULL, customer TEXT, features_sha256 TEXT "
    "NOT NULL, probability REAL NOT NULL, label INTEGER NOT NULL CHECK (label IN (0, 1)), "
    "model_version INTEGER, latency_s REAL NOT NULL, time_ms INTEGER NOT NULL);"
    "CREATE INDEX predictions_customer ON predictions(customer, time_ms);"
    "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, prediction_id TEXT NOT NULL, "
    "customer TEXT, churned INTEGER NOT NULL CHECK (churned IN (0, 1)), observed_date TEXT NOT "
    "NULL, actor TEXT NOT NULL, at TEXT NOT NULL);"
    "CREATE INDEX feedback_prediction ON feedback(prediction_id);"
    "INSERT INTO audit_head VALUES (1, 0, 0, "
    "'0000000000000000000000000000000000000000000000000000000000000000');"
    "INSERT INTO predictions VALUES ('00000000000000000000000000000b02', NULL, "
    "'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc', 0.25, 0, 1, 0.001, 2000),"
    " ('00000000000000000000000000000b01', '0123456789abcdef0123456789abcdef', "
    "'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd', 0.75, 1, NULL, 0.002, "
    "1000);"
    "INSERT INTO feedback(prediction_id, customer, churned, observed_date, actor, at) VALUES "
    "('00000000000000000000000000000b01', '0123456789abcdef0123456789abcdef', 1, '2024-03-01', "
    "'t', '2024-03-02T00:00:00.000Z');"
    "PRAGMA user_version = 2;";

/* A layout-2 store migrates on a read-write open: its rows read back with
 * inputs NULL, new rows carry theirs, and the new index exists. */
TEST(layout2_store_migrates)
{
    const char *path = ch_test_store("v2.db");
    ch_registry *r;
    ch_prediction_rec p;
    ch_error err = {0};
    scan_out g = {0};
    char msg[256];

    if (ch_test_store_pg())
        SKIP("builds a SQLite file of layout 2; PostgreSQL stores start at the current layout");

    sql_ok(path, layout2);
    {
        ch_registry_opts o;
        ch_registry_opts_default(&o);
        o.read_only = 1;
        r = NULL;
        ASSERT_ERR(ch_registry_open(path, &o, &r, &err), CH_EDB);
        ASSERT_CONTAINS(err.msg, "older layout 2");
    }
    r = open_store(path);
    check_ok(r);
    scan(r, NULL, &g);
    ASSERT_INT_EQ(g.n, 2);
    ASSERT_STR_EQ(g.rows[0].id, "00000000000000000000000000000b01");
    ASSERT_INT_EQ(g.rows[0].has_inputs, 0);
    ASSERT_INT_EQ(g.rows[0].model_version, 0);
    ASSERT_INT_EQ(g.rows[0].churned, 1);
    ASSERT_STR_EQ(g.rows[0].observed_date, "2024-03-01");
    ASSERT_STR_EQ(g.rows[0].customer, "0123456789abcdef0123456789abcdef");
    ASSERT_INT_EQ(g.rows[1].has_inputs, 0);
    ASSERT_INT_EQ(g.rows[1].has_customer, 0);
    ASSERT_INT_EQ(g.rows[1].churned, -1);
    ASSERT(g.rows[1].probability == 0.25);
    p = pred(77, 1, 1500);
    fill_inputs(&p, 77, 87);
    ASSERT_OK(ch_registry_log_predictions(r, &p, 1, &err));
    scan(r, NULL, &g);
    ASSERT_INT_EQ(g.n, 3);
    ASSERT_STR_EQ(g.rows[1].id, p.id);
    ASSERT_INT_EQ(g.rows[1].inputs_len, 87);
    ASSERT(memcmp(g.rows[1].inputs, p.inputs, 87) == 0);
    ASSERT_OK(ch_registry_feedback_add(r, NULL, "0123456789abcdef0123456789abcdef", 0, "2024-04-01",
                                       "t", NULL, &err));
    check_ok(r);
    ch_registry_close(r);
    /* Layout 3 with its index; opening again changes nothing. */
    ASSERT_INT_EQ(
        raw_sql(path, "CREATE INDEX predictions_time ON predictions(time_ms)", msg, sizeof msg),
        SQLITE_ERROR);
    ASSERT_CONTAINS(msg, "already exists");
    r = open_ro(path);
    ASSERT_INT_EQ(count_of(r, NULL), 3);
    ch_registry_close(r);
    {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        ASSERT_INT_EQ(sqlite3_open(path, &db), SQLITE_OK);
        ASSERT_INT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ASSERT_INT_EQ(sqlite3_step(st), SQLITE_ROW);
        ASSERT_INT_EQ(sqlite3_column_int(st, 0), 6); /* migrated through to the current layout */
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    ch_free(g.rows);
}

/* Bad queries are CH_EINVAL and touch nothing. */
TEST(prediction_query_arguments)
{
    const char *path = ch_test_store("q.db");
    ch_registry *r = open_store(path);
    ch_prediction_query q;
    ch_error err = {0};
    int64_t n = -7;
    scan_out g = {0};

    memset(&q, 0, sizeof q);
    ASSERT_ERR(ch_registry_predictions_scan(NULL, &q, collect, &g, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_predictions_scan(r, &q, NULL, &g, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "callback");
    ASSERT_ERR(ch_registry_predictions_count(NULL, &q, &n, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_predictions_count(r, &q, NULL, &err), CH_EINVAL);
    {
        static const struct {
            int64_t since, until, version;
            size_t last_n;
            int labelled;
            const char *says;
        } bad[] = {
            {-1, 0, 0, 0, 0, "since_ms"},
            {0, -5, 0, 0, 0, "until_ms is negative"},
            {100, 100, 0, 0, 0, "not after since_ms"},
            {100, 50, 0, 0, 0, "not after since_ms"},
            {0, 0, -1, 0, 0, "model_version"},
            {0, 0, 0, 0, 2, "labelled_only"},
            {0, 0, 0, 0, -1, "labelled_only"},
            {0, 0, 0, (size_t)INT64_MAX + 1, 0, "last_n"},
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            q.since_ms = bad[i].since;
            q.until_ms = bad[i].until;
            q.model_version = bad[i].version;
            q.last_n = bad[i].last_n;
            q.labelled_only = bad[i].labelled;
            ASSERT_ERR(ch_registry_predictions_scan(r, &q, collect, &g, &err), CH_EINVAL);
            ASSERT_CONTAINS(err.msg, bad[i].says);
            ASSERT_ERR(ch_registry_predictions_count(r, &q, &n, NULL), CH_EINVAL);
        }
    }
    ASSERT_INT_EQ(n, -7);
    ASSERT_INT_EQ(g.n, 0);
    /* Edges that are fine: an empty store, a window of one millisecond,
     * the largest last_n. */
    memset(&q, 0, sizeof q);
    q.since_ms = 5;
    q.until_ms = 6;
    q.last_n = (size_t)INT64_MAX;
    scan(r, &q, &g);
    ASSERT_INT_EQ(g.n, 0);
    ASSERT_INT_EQ(count_of(r, &q), 0);
    ch_registry_close(r);
}

/* ---- argument checks common to every call -------------------------------- */

TEST(null_handles_and_buffers)
{
    ch_error err = {0};
    ch_registry_user u;
    ch_registry_key k;
    int64_t n;
    ch_buf b;
    ch_buf_init(&b, 1 << 10);
    ASSERT_ERR(ch_registry_user_add(NULL, "a", "admin", HASH_A, "t", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_get(NULL, "a", &u, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_set_password(NULL, "a", HASH_A, "t", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_set_role(NULL, "a", "admin", "t", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_user_set_disabled(NULL, "a", 1, "t", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_users_json(NULL, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_key_add(NULL, "aaaaaaaaaaaa", hex_of(1, 64), "service", NULL, "t", &err),
               CH_EINVAL);
    ASSERT_ERR(ch_registry_key_lookup(NULL, "aaaaaaaaaaaa", hex_of(1, 64), &k, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_key_revoke(NULL, "aaaaaaaaaaaa", "t", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_keys_json(NULL, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_audit_tail_json(NULL, 1, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_feedback_count(NULL, &n, &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_feedback_json(NULL, 1, &b, &err), CH_EINVAL);
    ASSERT_ERR(
        ch_registry_feedback_add(NULL, hex_of(1, 32), NULL, 1, "2024-01-01", "t", NULL, &err),
        CH_EINVAL);
    /* A NULL error detail is allowed everywhere. */
    ASSERT_ERR(ch_registry_user_get(NULL, "a", &u, NULL), CH_EINVAL);
    ch_buf_reset(&b);
}

/* ---- allocation failures --------------------------------------------------- */

/* The life of the new tables on an open handle: users, keys, the chain,
 * predictions, feedback and every listing. */
static ch_err scenario(ch_registry *r, ch_error *err)
{
    ch_registry_key k;
    ch_registry_user u;
    ch_prediction_rec recs[3];
    char got[CH_PREDICTION_ID_LEN + 1];
    int64_t n = 0;
    ch_buf b;
    ch_err rc;

    for (unsigned i = 0; i < 3; i++) {
        recs[i] = pred(i, 1, 100 + (int64_t)i);
        fill_inputs(&recs[i], i, 90);
    }
    ch_buf_init(&b, 1 << 20);
    rc = ch_registry_user_add(r, "ann", "admin", HASH_A, "t", err);
    if (rc == CH_OK)
        rc = ch_registry_user_set_role(r, "ann", "analyst", "t", err);
    if (rc == CH_OK)
        rc = ch_registry_user_get(r, "ann", &u, err);
    if (rc == CH_OK)
        rc = ch_registry_key_add(r, "abcdefabcdef", hex_of(5, 64), "service", "l", "t", err);
    if (rc == CH_OK)
        rc = ch_registry_key_lookup(r, "abcdefabcdef", hex_of(5, 64), &k, err);
    if (rc == CH_OK)
        rc = ch_registry_key_revoke(r, "abcdefabcdef", "t", err);
    if (rc == CH_OK)
        rc = ch_registry_audit_append(r, "t", "reload", "x", "{\"a\":[1,2]}", err);
    if (rc == CH_OK)
        rc = ch_registry_log_predictions(r, recs, 3, err);
    if (rc == CH_OK)
        rc = ch_registry_feedback_add(r, NULL, cust(1), 1, "2024-01-01", "t", got, err);
    if (rc == CH_OK)
        rc = ch_registry_feedback_count(r, &n, err);
    if (rc == CH_OK)
        rc = ch_registry_users_json(r, &b, err);
    if (rc == CH_OK)
        rc = ch_registry_keys_json(r, &b, err);
    if (rc == CH_OK)
        rc = ch_registry_feedback_json(r, 0, &b, err);
    if (rc == CH_OK) {
        ch_prediction_query q;
        scan_out g = {0};
        memset(&q, 0, sizeof q);
        rc = ch_registry_predictions_scan(r, &q, collect, &g, err);
        if (rc == CH_OK && g.n != 3)
            rc = ch_error_set(err, CH_EDATA, "scan gave %zu rows", g.n);
        q.labelled_only = 1;
        q.last_n = 1;
        if (rc == CH_OK)
            rc = ch_registry_predictions_scan(r, &q, collect, &g, err);
        if (rc == CH_OK)
            rc = ch_registry_predictions_count(r, &q, &n, err);
        ch_free(g.rows);
    }
    if (rc == CH_OK)
        rc = ch_registry_audit_tail_json(r, 0, &b, err);
    if (rc == CH_OK)
        rc = ch_registry_audit_verify(r, &n, NULL, err);
    if (rc == CH_OK)
        rc = ch_registry_check(r, err);
    ch_buf_reset(&b);
    return rc;
}

static void remove_store(const char *path)
{
    char side[720];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* A directory for the loops: /dev/shm when there is one (the file system
 * is not what they test, and it is many times faster). */
static const char *oom_dir(char dir[64])
{
    struct stat sb;
    dir[0] = '\0';
    if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0) {
        snprintf(dir, 64, "/dev/shm/churn-oom-XXXXXX");
        if (mkdtemp(dir) == NULL)
            dir[0] = '\0';
    }
    return dir[0] != '\0' ? dir : ch_test_tmpdir();
}

/* After a failure, what was committed must open and pass check (the
 * chain included). */
static void reopen_checks(const char *path, long n, const ch_error *err)
{
    ch_registry *r = NULL;
    ch_error e2 = {0};
    if (access(path, F_OK) != 0)
        return;
    if (ch_registry_open(path, NULL, &r, &e2) != CH_OK)
        FAIL("after allocation %ld failed (%s), reopen: %s", n, err->msg, e2.msg);
    check_ok(r);
    ch_registry_close(r);
}

static void copy_bytes(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    char buf[1 << 14];
    size_t k;
    ASSERT(in != NULL && out != NULL);
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        ASSERT(fwrite(buf, 1, k, out) == k);
    ASSERT(fclose(in) == 0);
    ASSERT(fclose(out) == 0);
}

/* Allocation 'n' and every one after it fail while the scenario runs on
 * a freshly opened store (opening is test_registry's loop). Every failure
 * must be a clean error with a message. Under valgrind (CH_VALGRIND=1)
 * every 7th allocation past the first 400 is tried. */
TEST(out_of_memory)
{
    char dir[64];
    char path[700];
    long n;
    long stride = getenv("CH_VALGRIND") != NULL ? 7 : 1;
    int failures = 0;

    if (ch_test_store_pg())
        SKIP("allocation failures reach SQLite's allocator; libpq allocates on its own");

    char tpl[700];

    oom_dir(dir);
    snprintf(path, sizeof path, "%s/oom.db", dir[0] != '\0' ? dir : ch_test_tmpdir());
    snprintf(tpl, sizeof tpl, "%s/oom.tpl", dir[0] != '\0' ? dir : ch_test_tmpdir());
    /* An empty store of the current layout, copied for each round:
     * opening it is much cheaper than creating one. */
    ch_registry_close(open_store(tpl));
    for (n = 1; n < 200000; n += n < 400 ? 1 : stride) {
        ch_registry *r;
        ch_error err = {0};
        ch_err rc;
        remove_store(path);
        copy_bytes(tpl, path);
        r = open_store(path);
        ch_alloc_fail_after(n);
        rc = scenario(r, &err);
        ch_registry_close(r);
        ch_alloc_fail_after(0);
        if (rc == CH_OK)
            break;
        if (rc != CH_ENOMEM && rc != CH_EDB)
            FAIL("allocation %ld failing gave %s: %s", n, ch_strerror(rc), err.msg);
        ASSERT_INT_EQ(err.code, rc);
        ASSERT(err.msg[0] != '\0');
        failures++;
        reopen_checks(path, n, &err);
    }
    remove_store(path);
    remove_store(tpl);
    if (dir[0] != '\0')
        rmdir(dir);
    printf("    %ld allocations, %d failures\n", n, failures);
    ASSERT(failures > 20);
    ASSERT(n < 200000);
}

/* The migration of a layout-1 store with history, with allocation 'n' and
 * all after it failing: the store is left at layout 1 (the migration is
 * one transaction) or fully migrated with its chain intact. */
TEST(out_of_memory_migrating)
{
    char dir[64];
    char tpl[700];
    char path[700];
    long n;
    long stride = getenv("CH_VALGRIND") != NULL ? 7 : 1;
    int failures = 0;

    if (ch_test_store_pg())
        SKIP("allocation failures reach SQLite's allocator; libpq allocates on its own");

    oom_dir(dir);
    snprintf(tpl, sizeof tpl, "%s/v1.tpl", dir[0] != '\0' ? dir : ch_test_tmpdir());
    snprintf(path, sizeof path, "%s/mig.db", dir[0] != '\0' ? dir : ch_test_tmpdir());
    /* SQLite takes ch_malloc only if the registry starts it: a raw
     * sqlite3_open() first would leave it on the system allocator, out of
     * the injection's reach. */
    ch_registry_close(open_store(path));
    remove_store(path);
    sql_ok(tpl, layout1);
    for (n = 1; n < 200000; n += n < 400 ? 1 : stride) {
        ch_registry *r = NULL;
        ch_error err = {0};
        ch_err rc;
        remove_store(path);
        copy_bytes(tpl, path);
        ch_alloc_fail_after(n);
        rc = ch_registry_open(path, NULL, &r, &err);
        ch_registry_close(r);
        ch_alloc_fail_after(0);
        if (rc == CH_OK)
            break;
        if (rc != CH_ENOMEM && rc != CH_EDB)
            FAIL("allocation %ld failing gave %s: %s", n, ch_strerror(rc), err.msg);
        ASSERT(err.msg[0] != '\0');
        failures++;
        reopen_checks(path, n, &err);
    }
    {
        ch_registry *r = open_store(path);
        ASSERT_INT_EQ(verify_ok(r), 6);
        ch_registry_close(r);
    }
    remove_store(path);
    remove_store(tpl);
    if (dir[0] != '\0')
        rmdir(dir);
    printf("    %ld allocations, %d failures\n", n, failures);
    ASSERT(failures > 20);
}

/* Monitoring results: kept with their history, newest first, bounded to
 * CH_REGISTRY_MONITOR_KEEP per kind; bad arguments touch nothing. */
TEST(monitor_results)
{
    const char *path = ch_test_store("mon.db");
    ch_registry *r = open_store(path);
    ch_error err = {0};
    ch_buf b;
    ch_json *doc = NULL;
    char json[64];
    ASSERT_OK(ch_registry_monitor_put(r, "drift", 3, 1000, 2000, 10, "{\"n\": 1}", &err));
    ASSERT_OK(ch_registry_monitor_put(r, "drift", 3, 0, 0, 20, "{\"n\": 2}", &err));
    ASSERT_OK(ch_registry_monitor_put(r, "decay", 0, 0, 0, 0, "{\"n\": 3}", &err));
    ASSERT_ERR(ch_registry_monitor_put(r, "drifts", 3, 0, 0, 1, "{}", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_monitor_put(r, "drift", 3, 0, 0, 1, "[1]", &err), CH_EINVAL);
    ASSERT_ERR(ch_registry_monitor_put(r, "drift", 3, 0, 0, -1, "{}", &err), CH_EINVAL);
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_registry_monitor_list(r, "drift", 0, &b, &err));
    ASSERT_OK(ch_json_parse(b.data, b.len, &doc, &err));
    ASSERT_INT_EQ(ch_json_len(doc), 2);
    {
        double n = 0, pred = 0;
        const ch_json *first = ch_json_at(doc, 0);
        ch_json_num(ch_json_get(ch_json_get(first, "result"), "n"), &n);
        ch_json_num(ch_json_get(first, "predictions"), &pred);
        ASSERT(n == 2 && pred == 20);
        ASSERT(ch_json_typeof(ch_json_get(first, "since")) == CH_JSON_NULL);
        ASSERT_STR_EQ(ch_json_str(ch_json_get(ch_json_at(doc, 1), "since"), NULL),
                      "1970-01-01T00:00:01.000Z");
    }
    ch_json_free(doc);
    ch_buf_clear(&b);
    ASSERT_ERR(ch_registry_monitor_list(r, "nope", 0, &b, &err), CH_EINVAL);
    for (int i = 0; i < CH_REGISTRY_MONITOR_KEEP + 5; i++) {
        snprintf(json, sizeof json, "{\"i\": %d}", i);
        ASSERT_OK(ch_registry_monitor_put(r, "estimate", 1, 0, 0, 1, json, &err));
    }
    ASSERT_OK(ch_registry_monitor_list(r, "estimate", 0, &b, &err));
    ASSERT_OK(ch_json_parse(b.data, b.len, &doc, &err));
    ASSERT_INT_EQ(ch_json_len(doc), CH_REGISTRY_MONITOR_KEEP);
    {
        double first = -1, last = -1;
        ch_json_num(ch_json_get(ch_json_get(ch_json_at(doc, 0), "result"), "i"), &first);
        ch_json_num(
            ch_json_get(ch_json_get(ch_json_at(doc, CH_REGISTRY_MONITOR_KEEP - 1), "result"), "i"),
            &last);
        ASSERT(first == CH_REGISTRY_MONITOR_KEEP + 4 && last == 5);
    }
    ch_json_free(doc);
    ch_buf_reset(&b);
    ASSERT_OK(ch_registry_check(r, &err));
    ch_registry_close(r);
}

TEST_MAIN(T(monitor_results), T(users_round_trip), T(users_with_real_password_hash), T(api_keys),
          T(key_use_does_not_wait), T(audit_append_and_tail),
          T(audit_hash_matches_documented_layout), T(audit_tampering_is_found),
          T(migration_chains_existing_rows), T(concurrent_appends_keep_one_chain),
          T(predictions_and_feedback), T(prediction_batches_are_checked_and_atomic),
          T(killed_mid_batch), T(prediction_scan_round_trip), T(prediction_scan_filters_and_order),
          T(layout2_store_migrates), T(prediction_query_arguments), T(null_handles_and_buffers),
          T(out_of_memory), T(out_of_memory_migrating))
