/*
 * registry.c -- the front of the experiment tracker and model registry.
 *
 * Every public call lands here first. The front checks arguments, picks
 * the back end from the store URL (a plain path or "sqlite:PATH" for
 * SQLite, "postgresql://..." for PostgreSQL; any other "scheme://" is
 * refused by name), and forwards through
 * the ch__registry_ops table in registry_int.h. Nothing here knows how a
 * store keeps its rows, so a PostgreSQL back end is one more file plus one
 * line in 'schemes' below.
 *
 * Rules that must not differ between back ends also live here: how a
 * version reference ("3", "v3", "champion") is read, when the promotion
 * gate passes, what a promotion's audit details hold, and the message of
 * a refused promotion. Stored JSON texts (config, lineage, summary,
 * metrics) are parsed once on the way in, so read calls can embed them as
 * JSON values without re-checking what they wrote.
 *
 * Read calls render into a scratch buffer and append it to the caller's
 * buffer only on success: a failed call leaves 'b' as it was.
 *
 * The audit chain's canonical text and hash are defined here too
 * (ch__audit_hash): a back end that hashed an entry differently would
 * make every store it wrote fail verification elsewhere. User names, role
 * names, key ids, prediction records and feedback dates are checked here,
 * so every back end stores the same well-formed values.
 *
 * Workload: a handful of writes per training run and a few reads per
 * request to the server's model endpoints; nothing here is hot.
 */
#include "ch/registry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/hash.h"
#include "ch/json.h"
#include "ch/text.h"
#include "registry_int.h"

/* The largest stored JSON text or rendered read result we accept. */
#define JSON_MAX_LEN ((size_t)64 << 20)

struct ch_registry {
    const ch__registry_ops *ops; /* the back end */
    void *be;                    /* its state */
};

/* URL schemes with a back end. A plain path (no "scheme:") is SQLite.
 * 'whole': the back end takes the URL as it is (libpq reads connection
 * URIs itself), else the part after "scheme:" or "scheme://". */
static const struct {
    const char *scheme;
    const ch__registry_ops *ops;
    int whole;
} schemes[] = {
    {"sqlite", &ch__registry_sqlite_ops, 0},
    {"postgresql", &ch__registry_pg_ops, 1},
    {"postgres", &ch__registry_pg_ops, 1},
};

void ch_registry_opts_default(ch_registry_opts *o)
{
    o->busy_timeout_ms = 10000;
    o->read_only = 0;
    o->test_pause_ms = 0;
    o->bulk_log = 0;
}

/* ---- argument checks --------------------------------------------------- */

static int is_blank(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* Copies 'sha' into 'out' in lowercase after checking it is 64 hex
 * digits; 'what' names the argument in the message. */
static ch_err check_sha(const char *sha, const char *what, char out[65], ch_error *err)
{
    size_t i;
    if (sha == NULL)
        return ch_error_set(err, CH_EINVAL, "%s is missing", what);
    for (i = 0; i < 64; i++) {
        char c = sha[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            break;
        out[i] = c;
    }
    if (i != 64 || sha[64] != '\0') {
        char ex[40];
        return ch_error_set(err, CH_EINVAL, "%s \"%s\" is not 64 hex digits", what,
                            ch_text_excerpt(ex, sizeof ex, sha, strlen(sha)));
    }
    out[64] = '\0';
    return CH_OK;
}

/* Checks that 'text' (may be NULL) parses as a JSON object; 'what' names
 * the argument. Stored texts are embedded verbatim in read results, so
 * anything else would corrupt those documents later. */
static ch_err check_object(const char *text, const char *what, ch_error *err)
{
    ch_json *doc = NULL;
    size_t len;
    ch_err rc;

    if (text == NULL)
        return CH_OK;
    len = strlen(text);
    if (len > JSON_MAX_LEN)
        return ch_error_set(err, CH_ELIMIT, "%s is longer than %zu bytes", what, JSON_MAX_LEN);
    rc = ch_json_parse(text, len, &doc, err);
    if (rc != CH_OK) {
        ch_error_prefix(err, "%s", what);
        return rc;
    }
    if (ch_json_typeof(doc) != CH_JSON_OBJECT) {
        rc = ch_error_set(err, CH_EINVAL, "%s must be a JSON object, not %s", what,
                          ch_json_type_name(ch_json_typeof(doc)));
        ch_json_free(doc);
        return rc;
    }
    ch_json_free(doc);
    return CH_OK;
}

static ch_err need(const void *p, const char *what, ch_error *err)
{
    if (p == NULL)
        return ch_error_set(err, CH_EINVAL, "%s is missing", what);
    return CH_OK;
}

static ch_err need_text(const char *s, const char *what, ch_error *err)
{
    if (is_blank(s))
        return ch_error_set(err, CH_EINVAL, "%s is missing or empty", what);
    return CH_OK;
}

static ch_err need_run(int64_t run_id, ch_error *err)
{
    if (run_id <= 0)
        return ch_error_set(err, CH_EINVAL, "run id %lld is not positive", (long long)run_id);
    return CH_OK;
}

/* Whether 's' is 'n' hex digits exactly; copies it in lower case into
 * 'out' ('n' + 1 bytes) when it is. */
static int is_hex(const char *s, size_t n, char *out)
{
    size_t i;
    if (s == NULL)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        out[i] = c;
    }
    if (s[n] != '\0')
        return 0;
    out[n] = '\0';
    return 1;
}

/* Whether 's' is 1 to 'max' characters, each a letter, digit or one of
 * 'extra'; 'lower_only' refuses capitals. */
static int is_word(const char *s, size_t max, const char *extra, int lower_only)
{
    size_t i;
    if (s == NULL || s[0] == '\0')
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (i >= max)
            return 0;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            (!lower_only && c >= 'A' && c <= 'Z'))
            continue;
        if (strchr(extra, c) == NULL)
            return 0;
    }
    return 1;
}

/* A user name: [a-zA-Z0-9._@-]{1,64}. */
static ch_err check_user_name(const char *name, ch_error *err)
{
    char ex[48];
    if (name == NULL)
        return ch_error_set(err, CH_EINVAL, "user name is missing");
    if (!is_word(name, 64, "._@-", 0))
        return ch_error_set(err, CH_EINVAL,
                            "user name \"%s\" must be 1 to 64 characters of a-z, A-Z, 0-9, "
                            "'.', '_', '@' and '-'",
                            ch_text_excerpt(ex, sizeof ex, name, strlen(name)));
    return CH_OK;
}

/* A role name that ch_role_parse() knows. */
static ch_err check_role(const char *role, ch_error *err)
{
    char ex[48];
    if (role == NULL)
        return ch_error_set(err, CH_EINVAL, "role is missing");
    if (ch_role_parse(role) == CH_ROLE_NONE)
        return ch_error_set(err, CH_EINVAL,
                            "unknown role \"%s\" (use admin, scientist, analyst or service)",
                            ch_text_excerpt(ex, sizeof ex, role, strlen(role)));
    return CH_OK;
}

/* An encoded Argon2id hash: "$argon2id$..." in printable ASCII that fits
 * CH_PASSWORD_HASH_MAX with its NUL. The store never parses it further:
 * ch_password_verify() does. */
static ch_err check_password_hash(const char *h, ch_error *err)
{
    size_t i;
    if (h == NULL)
        return ch_error_set(err, CH_EINVAL, "password hash is missing");
    if (strncmp(h, "$argon2id$", 10) != 0)
        return ch_error_set(err, CH_EINVAL,
                            "password hash is not an encoded Argon2id hash (hash the password "
                            "with ch_password_hash first)");
    for (i = 0; h[i] != '\0'; i++) {
        if (i + 1 >= CH_PASSWORD_HASH_MAX)
            return ch_error_set(err, CH_EINVAL, "password hash is longer than %d bytes",
                                CH_PASSWORD_HASH_MAX - 1);
        if (h[i] <= ' ' || h[i] > '~')
            return ch_error_set(err, CH_EINVAL, "password hash holds a character it cannot hold");
    }
    return CH_OK;
}

/* An API key id: CH_API_KEY_ID_LEN hex digits, copied in lower case. */
static ch_err check_key_id(const char *id, char out[CH_API_KEY_ID_LEN + 1], ch_error *err)
{
    char ex[48];
    if (id == NULL)
        return ch_error_set(err, CH_EINVAL, "API key id is missing");
    if (!is_hex(id, CH_API_KEY_ID_LEN, out))
        return ch_error_set(err, CH_EINVAL, "API key id \"%s\" is not %d hex digits",
                            ch_text_excerpt(ex, sizeof ex, id, strlen(id)), CH_API_KEY_ID_LEN);
    return CH_OK;
}

/* Free text ('what' in messages): valid UTF-8 of at most 'max' bytes
 * without control characters. NULL is allowed. */
static ch_err check_text(const char *s, size_t max, const char *what, ch_error *err)
{
    size_t len;
    size_t i;
    if (s == NULL)
        return CH_OK;
    len = strlen(s);
    if (len > max)
        return ch_error_set(err, CH_EINVAL, "%s is longer than %zu bytes", what, max);
    if (!ch_text_utf8_valid(s, len))
        return ch_error_set(err, CH_EINVAL, "%s is not valid UTF-8", what);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return ch_error_set(err, CH_EINVAL, "%s holds a control character", what);
    }
    return CH_OK;
}

/* An action of ch_registry_audit_append(): a word, and not one of the
 * registry's own, so that an entry the server writes can never pass for
 * a promotion or a user change. */
static ch_err check_action(const char *action, ch_error *err)
{
    static const char *const own[] = {"register", "alias", "promote", "promote-refused",
                                      "rollback"};
    char ex[48];
    size_t i;
    if (action == NULL)
        return ch_error_set(err, CH_EINVAL, "audit action is missing");
    if (!is_word(action, 64, "._:-", 1))
        return ch_error_set(err, CH_EINVAL,
                            "audit action \"%s\" must be 1 to 64 characters of a-z, 0-9, '.', "
                            "'_', ':' and '-'",
                            ch_text_excerpt(ex, sizeof ex, action, strlen(action)));
    for (i = 0; i < sizeof own / sizeof own[0]; i++)
        if (strcmp(action, own[i]) == 0)
            break;
    if (i < sizeof own / sizeof own[0] || strncmp(action, "user-", 5) == 0 ||
        strncmp(action, "key-", 4) == 0)
        return ch_error_set(err, CH_EINVAL,
                            "audit action \"%s\" is reserved for the registry's own entries",
                            action);
    return CH_OK;
}

/* Whether "YYYY-MM-DD" names a real date (Gregorian, years 1 to 9999). */
static int is_date(const char *s)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 0;
    int m;
    int d;
    int i;
    int leap;
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return 0;
    for (i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !(s[i] >= '0' && s[i] <= '9'))
            return 0;
    for (i = 0; i < 4; i++)
        y = y * 10 + (s[i] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return 0;
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap);
}

/* Checks prediction record 'i' of a batch. */
static ch_err check_prediction(const ch_prediction_rec *p, size_t i, ch_error *err)
{
    char tmp[65];
    const char *bad = NULL;
    if (memchr(p->id, '\0', sizeof p->id) == NULL || !is_hex(p->id, CH_PREDICTION_ID_LEN, tmp) ||
        strcmp(tmp, p->id) != 0)
        bad = "id is not 32 lowercase hex digits";
    else if (memchr(p->customer, '\0', sizeof p->customer) == NULL ||
             (p->customer[0] != '\0' &&
              (!is_hex(p->customer, CH_PSEUDONYM_LEN, tmp) || strcmp(tmp, p->customer) != 0)))
        bad = "customer is neither empty nor a pseudonym (32 lowercase hex digits)";
    else if (memchr(p->features_sha256, '\0', sizeof p->features_sha256) == NULL ||
             !is_hex(p->features_sha256, 64, tmp) || strcmp(tmp, p->features_sha256) != 0)
        bad = "features_sha256 is not 64 lowercase hex digits";
    else if (!(p->probability >= 0 && p->probability <= 1))
        bad = "probability is not in [0, 1]";
    else if (p->label != 0 && p->label != 1)
        bad = "label is not 0 or 1";
    else if (p->model_version < 0)
        bad = "model_version is negative";
    else if (!(isfinite(p->latency_s) && p->latency_s >= 0))
        bad = "latency_s is not a non-negative number";
    else if (p->time_ms <= 0)
        bad = "time_ms is not positive";
    else if (p->inputs_len > CH_PREDLOG_INPUTS_MAX)
        bad = "inputs_len is above CH_PREDLOG_INPUTS_MAX";
    else if (p->arm < CH_ARM_NONE || p->arm > CH_ARM_CANDIDATE)
        bad = "arm is not one of CH_ARM_*";
    else if (p->shadow_version < 0 ||
             (p->shadow_version > 0 && !(p->shadow_probability >= 0 && p->shadow_probability <= 1)))
        bad = "shadow probability is not in [0, 1]";
    if (bad != NULL)
        return ch_error_set(err, CH_EINVAL, "prediction record %zu: %s", i, bad);
    return CH_OK;
}

/* ---- open and close ---------------------------------------------------- */

/* Splits 'url' into a back end and the target it understands. Rules:
 *   "sqlite:PATH"      -> SQLite, PATH as given;
 *   "sqlite:///PATH"   -> SQLite, "/PATH" (the URL form; no host allowed);
 *   "postgresql://..." -> PostgreSQL, the whole URL ("postgres://" too);
 *   "scheme://..."     -> the back end of 'scheme', or CH_EINVAL;
 *   anything else      -> a plain SQLite path (so "./a:b.db" stays a path).
 * '*target' points into 'url'. */
static ch_err pick_backend(const char *url, const ch__registry_ops **ops, const char **target,
                           ch_error *err)
{
    size_t n = 0;
    size_t i;

    while ((url[n] >= 'a' && url[n] <= 'z') || (url[n] >= 'A' && url[n] <= 'Z') ||
           (n > 0 &&
            ((url[n] >= '0' && url[n] <= '9') || url[n] == '+' || url[n] == '-' || url[n] == '.')))
        n++;
    if (n == 0 || url[n] != ':') {
        *ops = &ch__registry_sqlite_ops;
        *target = url;
        return CH_OK;
    }
    for (i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        const char *rest = url + n + 1;
        if (strlen(schemes[i].scheme) != n || !ch_text_ieq(url, n, schemes[i].scheme))
            continue;
        if (schemes[i].whole) {
            if (strncmp(rest, "//", 2) != 0)
                return ch_error_set(err, CH_EINVAL,
                                    "store URL \"%s\": write %.*s://[user@][host][:port]/database",
                                    url, (int)n, url);
            *ops = schemes[i].ops;
            *target = url;
            return CH_OK;
        }
        if (strncmp(rest, "//", 2) == 0) {
            if (rest[2] != '/')
                return ch_error_set(err, CH_EINVAL,
                                    "%.*s URLs take no host: write %.*s:///absolute/path or "
                                    "%.*s:relative/path",
                                    (int)n, url, (int)n, url, (int)n, url);
            rest += 2;
        }
        if (rest[0] == '\0')
            return ch_error_set(err, CH_EINVAL, "store URL \"%s\" has no path", url);
        *ops = schemes[i].ops;
        *target = rest;
        return CH_OK;
    }
    if (strncmp(url + n + 1, "//", 2) == 0)
        return ch_error_set(err, CH_EINVAL,
                            "store URL scheme \"%.*s\" is not supported by this build "
                            "(use a path, sqlite:PATH or postgresql://...)",
                            (int)n, url);
    /* "name:rest" without "//" is a file name that happens to hold a colon. */
    *ops = &ch__registry_sqlite_ops;
    *target = url;
    return CH_OK;
}

ch_err ch_registry_open(const char *url, const ch_registry_opts *o, ch_registry **out,
                        ch_error *err)
{
    ch_registry_opts def;
    const ch__registry_ops *ops = NULL;
    const char *target = NULL;
    ch_registry *r;
    ch_err rc;

    if (url == NULL || url[0] == '\0' || out == NULL)
        return ch_error_set(err, CH_EINVAL, "registry open: missing store URL or result pointer");
    if (o == NULL) {
        ch_registry_opts_default(&def);
        o = &def;
    }
    if (o->busy_timeout_ms < 0 || o->test_pause_ms < 0)
        return ch_error_set(err, CH_EINVAL,
                            "registry open: negative busy_timeout_ms or "
                            "test_pause_ms");
    rc = pick_backend(url, &ops, &target, err);
    if (rc != CH_OK)
        return rc;
    r = ch_malloc(sizeof *r);
    if (r == NULL)
        return ch_error_set(err, CH_ENOMEM, "%s: out of memory opening the store", url);
    r->ops = ops;
    r->be = NULL;
    rc = ops->open(target, o, &r->be, err);
    if (rc != CH_OK) {
        ch_free(r);
        return rc;
    }
    *out = r;
    return CH_OK;
}

void ch_registry_close(ch_registry *r)
{
    if (r == NULL)
        return;
    r->ops->close(r->be);
    ch_free(r);
}

/* ---- writes ------------------------------------------------------------ */

ch_err ch_registry_add_dataset(ch_registry *r, const char *sha256, const char *path,
                               uint64_t n_rows, ch_error *err)
{
    char sha[65];
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = check_sha(sha256, "dataset sha256", sha, err);
    if (rc == CH_OK)
        rc = need_text(path, "dataset path", err);
    if (rc == CH_OK && n_rows > (uint64_t)INT64_MAX)
        rc = ch_error_set(err, CH_ERANGE, "dataset row count %llu is too large",
                          (unsigned long long)n_rows);
    if (rc != CH_OK)
        return rc;
    return r->ops->add_dataset(r->be, sha, path, (int64_t)n_rows, err);
}

ch_err ch_registry_run_begin(ch_registry *r, const char *dataset_sha256, const char *config_json,
                             const char *lineage_json, int64_t *run_id, ch_error *err)
{
    char sha[65];
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(run_id, "run id result pointer", err);
    if (rc == CH_OK && dataset_sha256 != NULL)
        rc = check_sha(dataset_sha256, "run dataset sha256", sha, err);
    if (rc == CH_OK)
        rc = check_object(config_json, "run config", err);
    if (rc == CH_OK)
        rc = check_object(lineage_json, "run lineage", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->run_begin(r->be, dataset_sha256 != NULL ? sha : NULL, config_json, lineage_json,
                             run_id, err);
}

ch_err ch_registry_run_metric(ch_registry *r, int64_t run_id, const char *scope, const char *name,
                              double value, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need_run(run_id, err);
    if (rc == CH_OK)
        rc = need_text(scope, "metric scope", err);
    if (rc == CH_OK)
        rc = need_text(name, "metric name", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->run_metric(r->be, run_id, scope, name, value, err);
}

ch_err ch_registry_run_end(ch_registry *r, int64_t run_id, const char *status,
                           const char *summary_json, double seconds, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need_run(run_id, err);
    if (rc == CH_OK &&
        (status == NULL || (strcmp(status, "ok") != 0 && strcmp(status, "failed") != 0)))
        rc = ch_error_set(err, CH_EINVAL, "run status must be \"ok\" or \"failed\"");
    if (rc == CH_OK && !(isfinite(seconds) && seconds >= 0))
        rc =
            ch_error_set(err, CH_EINVAL, "run duration %g s is not a non-negative number", seconds);
    if (rc == CH_OK)
        rc = check_object(summary_json, "run summary", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->run_end(r->be, run_id, status, summary_json, seconds, err);
}

ch_err ch_registry_add_artifact(ch_registry *r, int64_t run_id, const char *kind, const char *path,
                                const char *sha256, ch_error *err)
{
    char sha[65];
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need_run(run_id, err);
    if (rc == CH_OK)
        rc = need_text(kind, "artifact kind", err);
    if (rc == CH_OK)
        rc = need_text(path, "artifact path", err);
    if (rc == CH_OK)
        rc = check_sha(sha256, "artifact sha256", sha, err);
    if (rc != CH_OK)
        return rc;
    return r->ops->add_artifact(r->be, run_id, kind, path, sha, err);
}

ch_err ch_registry_register(ch_registry *r, int64_t run_id, const char *bundle_path,
                            const char *bundle_sha256, const char *family, const char *metrics_json,
                            const char *actor, const char *reason, int64_t *version, ch_error *err)
{
    char sha[65];
    ch__registration reg;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(version, "version result pointer", err);
    if (rc == CH_OK)
        rc = need_run(run_id, err);
    if (rc == CH_OK)
        rc = need_text(bundle_path, "bundle path", err);
    if (rc == CH_OK)
        rc = check_sha(bundle_sha256, "bundle sha256", sha, err);
    if (rc == CH_OK)
        rc = need_text(family, "model family", err);
    if (rc == CH_OK)
        rc = check_object(metrics_json, "model metrics", err);
    if (rc == CH_OK)
        rc = need_text(actor, "actor", err);
    if (rc != CH_OK)
        return rc;
    reg.run_id = run_id;
    reg.bundle_path = bundle_path;
    reg.bundle_sha256 = sha;
    reg.family = family;
    reg.metrics_json = metrics_json;
    reg.actor = actor;
    reg.reason = reason;
    return r->ops->register_version(r->be, &reg, version, err);
}

ch_err ch_registry_promote(ch_registry *r, const ch_promotion *p, const char *actor,
                           const char *reason, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(p, "promotion", err);
    if (rc == CH_OK && p->version <= 0)
        rc = ch_error_set(err, CH_EINVAL, "version %lld is not positive", (long long)p->version);
    if (rc == CH_OK && !isfinite(p->margin))
        rc = ch_error_set(err, CH_EINVAL, "promotion margin is not a finite number");
    if (rc == CH_OK)
        rc = need_text(actor, "actor", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->promote(r->be, p, actor, reason, err);
}

ch_err ch_registry_rollback(ch_registry *r, const char *actor, const char *reason, int64_t *version,
                            ch_error *err)
{
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need_text(actor, "actor", err);
    if (rc == CH_OK)
        rc = r->ops->rollback(r->be, actor, reason, &v, err);
    if (rc == CH_OK && version != NULL)
        *version = v;
    return rc;
}

/* ---- version references ------------------------------------------------ */

/* Reads 'ref': digits, 'v' or 'V' then digits, or an alias name. */
static ch_err parse_ref(const char *ref, ch__registry_ref *out, ch_error *err)
{
    const char *digits = ref;
    int64_t v = 0;
    char ex[48];

    out->version = 0;
    out->alias = NULL;
    if (strcmp(ref, CH__ALIAS_CHAMPION) == 0) {
        out->alias = CH__ALIAS_CHAMPION;
        return CH_OK;
    }
    if (strcmp(ref, CH__ALIAS_CHALLENGER) == 0) {
        out->alias = CH__ALIAS_CHALLENGER;
        return CH_OK;
    }
    if (digits[0] == 'v' || digits[0] == 'V')
        digits++;
    /* ch_parse_int64 takes a sign; a reference does not. */
    if (digits[0] >= '0' && digits[0] <= '9' && ch_parse_int64(digits, strlen(digits), &v) == 0 &&
        v > 0) {
        out->version = v;
        return CH_OK;
    }
    return ch_error_set(err, CH_ENOTFOUND,
                        "no model version or alias \"%s\" (use a number, vN, champion or "
                        "challenger)",
                        ch_text_excerpt(ex, sizeof ex, ref, strlen(ref)));
}

ch_err ch_registry_resolve(ch_registry *r, const char *ref, int64_t *version, char *path,
                           size_t cap, ch_error *err)
{
    ch__registry_ref pr;
    ch_buf pb;
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);

    if (rc == CH_OK)
        rc = need(ref, "version reference", err);
    if (rc == CH_OK && path == NULL && cap > 0)
        rc = ch_error_set(err, CH_EINVAL, "path buffer is NULL but its size is %zu", cap);
    if (rc == CH_OK)
        rc = parse_ref(ref, &pr, err);
    if (rc != CH_OK)
        return rc;
    ch_buf_init(&pb, JSON_MAX_LEN);
    rc = r->ops->resolve(r->be, &pr, &v, &pb, err);
    if (rc == CH_OK && ch_buf_status(&pb) != CH_OK)
        rc = ch_error_set(err, ch_buf_status(&pb), "out of memory resolving \"%s\"", ref);
    if (rc == CH_OK && cap > 0 && pb.len + 1 > cap)
        rc = ch_error_set(err, CH_ELIMIT, "bundle path of version %lld needs %zu bytes, have %zu",
                          (long long)v, pb.len + 1, cap);
    if (rc == CH_OK) {
        if (cap > 0) {
            if (pb.len > 0)
                memcpy(path, pb.data, pb.len);
            path[pb.len] = '\0';
        }
        if (version != NULL)
            *version = v;
    }
    ch_buf_reset(&pb);
    return rc;
}

/* ---- read calls -------------------------------------------------------- */

/* Runs one read back end call into a scratch buffer and appends the
 * result to 'b' only when it succeeded. */
typedef ch_err (*read_fn)(ch_registry *r, const void *arg, ch_buf *b, ch_error *err);

static ch_err read_into(ch_registry *r, read_fn fn, const void *arg, ch_buf *b, ch_error *err)
{
    ch_buf tmp;
    ch_err rc = need(r, "registry handle", err);

    if (rc == CH_OK)
        rc = need(b, "output buffer", err);
    if (rc != CH_OK)
        return rc;
    if (ch_buf_status(b) != CH_OK)
        return ch_error_set(err, ch_buf_status(b), "output buffer is already in error");
    ch_buf_init(&tmp, b->max_len - (b->len < b->max_len ? b->len : b->max_len));
    rc = fn(r, arg, &tmp, err);
    if (rc == CH_OK && ch_buf_status(&tmp) != CH_OK)
        rc = ch_error_set(err, ch_buf_status(&tmp),
                          ch_buf_status(&tmp) == CH_ELIMIT
                              ? "registry listing exceeds the output buffer's cap"
                              : "out of memory rendering a registry listing");
    if (rc == CH_OK && ch_buf_append(b, tmp.data != NULL ? tmp.data : "", tmp.len) != CH_OK)
        rc = ch_error_set(err, ch_buf_status(b), "cannot append the registry listing");
    ch_buf_reset(&tmp);
    return rc;
}

static ch_err rd_runs(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    return r->ops->runs_json(r->be, *(const size_t *)arg, b, err);
}

static ch_err rd_run(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    return r->ops->run_json(r->be, *(const int64_t *)arg, b, err);
}

static ch_err rd_models(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    (void)arg;
    return r->ops->models_json(r->be, b, err);
}

static ch_err rd_model(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    return r->ops->model_json(r->be, *(const int64_t *)arg, b, err);
}

static ch_err rd_audit(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    return r->ops->audit_json(r->be, *(const size_t *)arg, b, err);
}

static ch_err rd_users(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    (void)arg;
    return r->ops->users_json(r->be, b, err);
}

static ch_err rd_keys(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    (void)arg;
    return r->ops->keys_json(r->be, b, err);
}

static ch_err rd_feedback(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    return r->ops->feedback_json(r->be, *(const size_t *)arg, b, err);
}

ch_err ch_registry_runs_json(ch_registry *r, size_t limit, ch_buf *b, ch_error *err)
{
    return read_into(r, rd_runs, &limit, b, err);
}

ch_err ch_registry_run_json(ch_registry *r, int64_t run_id, ch_buf *b, ch_error *err)
{
    if (r != NULL && run_id <= 0)
        return ch_error_set(err, CH_ENOTFOUND, "no run %lld", (long long)run_id);
    return read_into(r, rd_run, &run_id, b, err);
}

ch_err ch_registry_models_json(ch_registry *r, ch_buf *b, ch_error *err)
{
    return read_into(r, rd_models, NULL, b, err);
}

ch_err ch_registry_model_json(ch_registry *r, int64_t version, ch_buf *b, ch_error *err)
{
    if (r != NULL && version <= 0)
        return ch_error_set(err, CH_ENOTFOUND, "no model version %lld", (long long)version);
    return read_into(r, rd_model, &version, b, err);
}

ch_err ch_registry_audit_json(ch_registry *r, ch_buf *b, ch_error *err)
{
    size_t all = 0;
    return read_into(r, rd_audit, &all, b, err);
}

ch_err ch_registry_audit_tail_json(ch_registry *r, size_t limit, ch_buf *b, ch_error *err)
{
    return read_into(r, rd_audit, &limit, b, err);
}

ch_err ch_registry_users_json(ch_registry *r, ch_buf *b, ch_error *err)
{
    return read_into(r, rd_users, NULL, b, err);
}

ch_err ch_registry_keys_json(ch_registry *r, ch_buf *b, ch_error *err)
{
    return read_into(r, rd_keys, NULL, b, err);
}

ch_err ch_registry_feedback_json(ch_registry *r, size_t limit, ch_buf *b, ch_error *err)
{
    return read_into(r, rd_feedback, &limit, b, err);
}

ch_err ch_registry_check(ch_registry *r, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->check(r->be, err);
}

/* ---- the audit chain --------------------------------------------------- */

ch_err ch_registry_audit_append(ch_registry *r, const char *actor, const char *action,
                                const char *target, const char *details_json, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need_text(actor, "actor", err);
    if (rc == CH_OK)
        rc = check_action(action, err);
    if (rc == CH_OK)
        rc = check_text(target, 256, "audit target", err);
    if (rc == CH_OK)
        rc = check_object(details_json, "audit details", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->audit_append(r->be, actor, action, target, details_json, err);
}

ch_err ch_registry_audit_verify(ch_registry *r, int64_t *n_entries, int64_t *first_bad_id,
                                ch_error *err)
{
    int64_t n = 0;
    int64_t bad = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc != CH_OK)
        return rc;
    rc = r->ops->audit_verify(r->be, &n, &bad, err);
    if (rc == CH_OK || rc == CH_EDATA) {
        if (n_entries != NULL)
            *n_entries = n;
        if (rc == CH_EDATA && first_bad_id != NULL)
            *first_bad_id = bad;
    }
    return rc;
}

/* ---- users and API keys ------------------------------------------------ */

ch_err ch_registry_user_add(ch_registry *r, const char *name, const char *role,
                            const char *password_hash, const char *actor, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = check_user_name(name, err);
    if (rc == CH_OK)
        rc = check_role(role, err);
    if (rc == CH_OK)
        rc = check_password_hash(password_hash, err);
    if (rc == CH_OK)
        rc = need_text(actor, "actor", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->user_add(r->be, name, role, password_hash, actor, err);
}

ch_err ch_registry_user_get(ch_registry *r, const char *name, ch_registry_user *out, ch_error *err)
{
    ch_registry_user u;
    char ex[48];
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(out, "user result pointer", err);
    if (rc == CH_OK)
        rc = need(name, "user name", err);
    if (rc != CH_OK)
        return rc;
    /* A name that could never have been added is simply not there. */
    if (check_user_name(name, NULL) != CH_OK)
        return ch_error_set(err, CH_ENOTFOUND, "no user \"%s\"",
                            ch_text_excerpt(ex, sizeof ex, name, strlen(name)));
    rc = r->ops->user_get(r->be, name, &u, err);
    if (rc == CH_OK)
        *out = u;
    return rc;
}

static ch_err user_change(ch_registry *r, const ch__user_change *c, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = check_user_name(c->name, err);
    if (rc == CH_OK && c->op == CH__USER_ROLE)
        rc = check_role(c->role, err);
    if (rc == CH_OK && c->op == CH__USER_PASSWD)
        rc = check_password_hash(c->hash, err);
    if (rc == CH_OK)
        rc = need_text(c->actor, "actor", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->user_change(r->be, c, err);
}

ch_err ch_registry_user_set_password(ch_registry *r, const char *name, const char *password_hash,
                                     const char *actor, ch_error *err)
{
    ch__user_change c = {CH__USER_PASSWD, name, NULL, password_hash, actor};
    return user_change(r, &c, err);
}

ch_err ch_registry_user_set_role(ch_registry *r, const char *name, const char *role,
                                 const char *actor, ch_error *err)
{
    ch__user_change c = {CH__USER_ROLE, name, role, NULL, actor};
    return user_change(r, &c, err);
}

ch_err ch_registry_user_set_disabled(ch_registry *r, const char *name, int disabled,
                                     const char *actor, ch_error *err)
{
    ch__user_change c = {disabled ? CH__USER_DISABLE : CH__USER_ENABLE, name, NULL, NULL, actor};
    return user_change(r, &c, err);
}

ch_err ch_registry_key_add(ch_registry *r, const char *id, const char *sha256, const char *role,
                           const char *label, const char *created_by, ch_error *err)
{
    char kid[CH_API_KEY_ID_LEN + 1];
    char sha[65];
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = check_key_id(id, kid, err);
    if (rc == CH_OK)
        rc = check_sha(sha256, "API key digest", sha, err);
    if (rc == CH_OK)
        rc = check_role(role, err);
    if (rc == CH_OK)
        rc = check_text(label, 128, "API key label", err);
    if (rc == CH_OK)
        rc = need_text(created_by, "actor", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->key_add(r->be, kid, sha, role, label, created_by, err);
}

ch_err ch_registry_key_lookup(ch_registry *r, const char *id, const char *sha256,
                              ch_registry_key *out, ch_error *err)
{
    char kid[CH_API_KEY_ID_LEN + 1];
    char sha[65];
    ch_registry_key k;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(out, "API key result pointer", err);
    if (rc != CH_OK)
        return rc;
    /* Malformed input fails like a wrong key: the caller answers both the
     * same way, and the message tells an attacker nothing. */
    if (check_key_id(id, kid, NULL) != CH_OK || check_sha(sha256, "digest", sha, NULL) != CH_OK)
        return ch_error_set(err, CH_EAUTH, "unknown API key or wrong secret");
    rc = r->ops->key_lookup(r->be, kid, sha, &k, err);
    if (rc == CH_OK)
        *out = k;
    return rc;
}

ch_err ch_registry_key_revoke(ch_registry *r, const char *id, const char *actor, ch_error *err)
{
    char kid[CH_API_KEY_ID_LEN + 1];
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(id, "API key id", err);
    if (rc == CH_OK)
        rc = need_text(actor, "actor", err);
    if (rc != CH_OK)
        return rc;
    if (check_key_id(id, kid, NULL) != CH_OK) {
        char ex[48];
        return ch_error_set(err, CH_ENOTFOUND, "no API key \"%s\"",
                            ch_text_excerpt(ex, sizeof ex, id, strlen(id)));
    }
    return r->ops->key_revoke(r->be, kid, actor, err);
}

/* ---- predictions and feedback ------------------------------------------- */

ch_err ch_registry_log_predictions(ch_registry *r, const ch_prediction_rec *recs, size_t n,
                                   ch_error *err)
{
    size_t i;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(recs, "prediction records", err);
    if (rc == CH_OK && n == 0)
        rc = ch_error_set(err, CH_EINVAL, "no prediction records to log");
    for (i = 0; rc == CH_OK && i < n; i++)
        rc = check_prediction(&recs[i], i, err);
    if (rc != CH_OK)
        return rc;
    return r->ops->log_predictions(r->be, recs, n, err);
}

/* Checks 'q' (NULL: everything) and writes its store form to 'out'. */
static ch_err check_query(const ch_prediction_query *q, ch__prediction_query *out, ch_error *err)
{
    ch_prediction_query all;
    const char *bad = NULL;
    if (q == NULL) {
        memset(&all, 0, sizeof all);
        q = &all;
    }
    if (q->since_ms < 0)
        bad = "since_ms is negative";
    else if (q->until_ms < 0)
        bad = "until_ms is negative";
    else if (q->until_ms != 0 && q->until_ms <= q->since_ms)
        bad = "until_ms is not after since_ms (the window is empty)";
    else if (q->model_version < 0)
        bad = "model_version is negative";
    else if (q->labelled_only != 0 && q->labelled_only != 1)
        bad = "labelled_only is not 0 or 1";
    else if (q->last_n > (uint64_t)INT64_MAX)
        bad = "last_n is above INT64_MAX";
    if (bad != NULL)
        return ch_error_set(err, CH_EINVAL, "prediction query: %s", bad);
    out->lo_ms = q->since_ms;
    out->hi_ms = q->until_ms != 0 ? q->until_ms - 1 : INT64_MAX;
    out->model_version = q->model_version;
    out->labelled_only = q->labelled_only;
    out->last_n = (int64_t)q->last_n;
    return CH_OK;
}

ch_err ch_registry_predictions_scan(ch_registry *r, const ch_prediction_query *q,
                                    ch_prediction_row_fn fn, void *ctx, ch_error *err)
{
    ch__prediction_query cq;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK && fn == NULL)
        rc = ch_error_set(err, CH_EINVAL, "the row callback is NULL");
    if (rc == CH_OK)
        rc = check_query(q, &cq, err);
    if (rc != CH_OK)
        return rc;
    return r->ops->predictions_scan(r->be, &cq, fn, ctx, err);
}

ch_err ch_registry_predictions_count(ch_registry *r, const ch_prediction_query *q, int64_t *n,
                                     ch_error *err)
{
    ch__prediction_query cq;
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(n, "count result pointer", err);
    if (rc == CH_OK)
        rc = check_query(q, &cq, err);
    if (rc == CH_OK)
        rc = r->ops->predictions_count(r->be, &cq, &v, err);
    if (rc == CH_OK)
        *n = v;
    return rc;
}

ch_err ch_registry_feedback_add(ch_registry *r, const char *prediction_id, const char *customer,
                                int churned, const char *observed_date, const char *actor,
                                char out_prediction_id[CH_PREDICTION_ID_LEN + 1], ch_error *err)
{
    char pid[CH_PREDICTION_ID_LEN + 1];
    char cust[CH_PSEUDONYM_LEN + 1];
    char got[CH_PREDICTION_ID_LEN + 1];
    char ex[48];
    ch__feedback f;
    ch_err rc = need(r, "registry handle", err);

    if (rc == CH_OK && prediction_id == NULL && customer == NULL)
        rc = ch_error_set(err, CH_EINVAL, "feedback needs a prediction id or a customer");
    if (rc == CH_OK && prediction_id != NULL && !is_hex(prediction_id, CH_PREDICTION_ID_LEN, pid))
        rc = ch_error_set(err, CH_EINVAL, "prediction id \"%s\" is not %d hex digits",
                          ch_text_excerpt(ex, sizeof ex, prediction_id, strlen(prediction_id)),
                          CH_PREDICTION_ID_LEN);
    if (rc == CH_OK && customer != NULL && !is_hex(customer, CH_PSEUDONYM_LEN, cust))
        rc = ch_error_set(err, CH_EINVAL, "customer \"%s\" is not a pseudonym (%d hex digits)",
                          ch_text_excerpt(ex, sizeof ex, customer, strlen(customer)),
                          CH_PSEUDONYM_LEN);
    if (rc == CH_OK && churned != 0 && churned != 1)
        rc = ch_error_set(err, CH_EINVAL, "churned must be 0 or 1, not %d", churned);
    if (rc == CH_OK && !is_date(observed_date))
        rc = ch_error_set(err, CH_EINVAL,
                          "observed date \"%s\" is not a real date written YYYY-MM-DD",
                          observed_date == NULL ? "(missing)"
                                                : ch_text_excerpt(ex, sizeof ex, observed_date,
                                                                  strlen(observed_date)));
    if (rc == CH_OK)
        rc = need_text(actor, "actor", err);
    if (rc != CH_OK)
        return rc;
    f.prediction_id = prediction_id != NULL ? pid : NULL;
    f.customer = customer != NULL ? cust : NULL;
    f.churned = churned;
    f.observed_date = observed_date;
    f.actor = actor;
    rc = r->ops->feedback_add(r->be, &f, got, err);
    if (rc == CH_OK && out_prediction_id != NULL)
        memcpy(out_prediction_id, got, sizeof got);
    return rc;
}

ch_err ch_registry_feedback_count(ch_registry *r, int64_t *n, ch_error *err)
{
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(n, "count result pointer", err);
    if (rc == CH_OK)
        rc = r->ops->feedback_count(r->be, &v, err);
    if (rc == CH_OK)
        *n = v;
    return rc;
}

/* ---- monitoring results ------------------------------------------------- */

static ch_err monitor_kind(const char *kind, ch_error *err)
{
    if (kind == NULL ||
        (strcmp(kind, "drift") != 0 && strcmp(kind, "decay") != 0 && strcmp(kind, "estimate") != 0))
        return ch_error_set(err, CH_EINVAL,
                            "monitoring result kind must be drift, decay or estimate");
    return CH_OK;
}

ch_err ch_registry_monitor_put(ch_registry *r, const char *kind, int64_t version, int64_t since_ms,
                               int64_t until_ms, int64_t predictions, const char *json,
                               ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = monitor_kind(kind, err);
    if (rc == CH_OK && (version < 0 || since_ms < 0 || until_ms < 0 || predictions < 0))
        rc = ch_error_set(err, CH_EINVAL, "monitoring result: negative version, time or count");
    if (rc == CH_OK)
        rc = need(json, "monitoring result", err);
    if (rc == CH_OK)
        rc = check_object(json, "monitoring result", err);
    if (rc == CH_OK)
        rc = r->ops->monitor_put(r->be, kind, version, since_ms, until_ms, predictions, json, err);
    return rc;
}

typedef struct monitor_list_arg {
    const char *kind;
    size_t limit;
} monitor_list_arg;

static ch_err rd_monitor(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    const monitor_list_arg *a = arg;
    return r->ops->monitor_list(r->be, a->kind, a->limit, b, err);
}

ch_err ch_registry_monitor_list(ch_registry *r, const char *kind, size_t limit, ch_buf *b,
                                ch_error *err)
{
    monitor_list_arg a = {kind, limit};
    ch_err rc = monitor_kind(kind, err);
    return rc != CH_OK ? rc : read_into(r, rd_monitor, &a, b, err);
}

/* ---- jobs -------------------------------------------------------------------- */

static const char *const job_status_names[] = {"queued", "running",   "succeeded",
                                               "failed", "cancelled", "interrupted"};

const char *ch_job_status_name(ch_job_status s)
{
    return (unsigned)s < 6 ? job_status_names[s] : "unknown";
}

int ch__job_move_ok(const char *from, ch_job_status to)
{
    if (strcmp(from, "queued") == 0)
        return to != CH_JOB_QUEUED && to != CH_JOB_SUCCEEDED;
    if (strcmp(from, "running") == 0)
        return to != CH_JOB_QUEUED && to != CH_JOB_RUNNING;
    return 0;
}

int ch__registry_is_stamp(const char *t, size_t len)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (len != sizeof shape - 1)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (shape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9') : t[i] != shape[i])
            return 0;
    }
    return 1;
}

/* A short word: letters, digits, '-', '_' (job kinds). */
static ch_err word_arg(const char *w, const char *what, ch_error *err)
{
    size_t n = w != NULL ? strlen(w) : 0;
    if (n == 0 || n > 32)
        return ch_error_set(err, CH_EINVAL, "%s must be 1 to 32 characters", what);
    for (size_t i = 0; i < n; i++) {
        char c = w[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return ch_error_set(err, CH_EINVAL, "%s \"%s\": lower-case letters, digits, - and _",
                                what, w);
    }
    return CH_OK;
}

/* Free text for a log column: valid UTF-8 of at most 'max' bytes. */
static ch_err text_arg(const char *t, size_t max, const char *what, ch_error *err)
{
    if (t != NULL && (strlen(t) > max || !ch_text_utf8_valid(t, strlen(t))))
        return ch_error_set(err, CH_EINVAL, "%s must be UTF-8 of at most %zu bytes", what, max);
    return CH_OK;
}

ch_err ch_registry_job_add(ch_registry *r, const char *kind, const char *trigger,
                           const char *params_json, const char *actor, int64_t *id, ch_error *err)
{
    ch__job_change j = {kind, trigger, actor, params_json, CH_JOB_QUEUED, -1, NULL, NULL, NULL, 0};
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(id, "job id result pointer", err);
    if (rc == CH_OK)
        rc = word_arg(kind, "job kind", err);
    if (rc == CH_OK)
        rc = text_arg(trigger, 200, "job trigger", err);
    if (rc == CH_OK)
        rc = need(actor, "actor", err);
    if (rc == CH_OK)
        rc = text_arg(actor, 200, "actor", err);
    if (rc == CH_OK)
        rc = check_object(params_json, "job parameters", err);
    if (rc == CH_OK)
        rc = r->ops->job_add(r->be, &j, &v, err);
    if (rc == CH_OK)
        *id = v;
    return rc;
}

ch_err ch_registry_job_update(ch_registry *r, int64_t id, ch_job_status status, double progress,
                              const char *stage, const char *result_json, const char *error,
                              ch_error *err)
{
    ch__job_change j = {NULL,  NULL, NULL, result_json, status, progress < 0 ? -1 : progress, stage,
                        error, NULL, 0};
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK && ((unsigned)status >= 6 || isnan(progress) || progress > 1))
        rc = ch_error_set(err, CH_EINVAL, "job update: bad status or progress");
    if (rc == CH_OK)
        rc = text_arg(stage, 200, "job stage", err);
    if (rc == CH_OK)
        rc = text_arg(error, 1000, "job error", err);
    if (rc == CH_OK)
        rc = check_object(result_json, "job result", err);
    if (rc == CH_OK)
        rc = r->ops->job_update(r->be, id, &j, err);
    return rc;
}

ch_err ch_registry_job_claim(ch_registry *r, const char *kind, int64_t *id, ch_error *err)
{
    return ch_registry_job_claim_as(r, kind, NULL, id, err);
}

ch_err ch_registry_job_claim_as(ch_registry *r, const char *kind, const char *owner, int64_t *id,
                                ch_error *err)
{
    ch__job_change j = {kind, NULL, NULL, NULL, CH_JOB_RUNNING, -1, NULL, NULL, owner, 0};
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(id, "job id result pointer", err);
    if (rc == CH_OK)
        rc = word_arg(kind, "job kind", err);
    if (rc == CH_OK)
        rc = text_arg(owner, 200, "job owner", err);
    if (rc == CH_OK)
        rc = r->ops->job_claim(r->be, &j, &v, err);
    if (rc == CH_OK)
        *id = v;
    return rc;
}

ch_err ch_registry_job_heartbeat(ch_registry *r, int64_t id, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = r->ops->job_heartbeat(r->be, id, err);
    return rc;
}

ch_err ch_registry_job_cancel(ch_registry *r, int64_t id, const char *actor, ch_job_status *status,
                              ch_error *err)
{
    ch__job_change j = {NULL, NULL, actor, NULL, CH_JOB_CANCELLED, -1, NULL, NULL, NULL, 0};
    int st = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(actor, "actor", err);
    if (rc == CH_OK)
        rc = r->ops->job_cancel(r->be, id, &j, &st, err);
    if (rc == CH_OK && status != NULL)
        *status = (ch_job_status)st;
    return rc;
}

ch_err ch_registry_job_cancel_requested(ch_registry *r, int64_t id, int *yes, ch_error *err)
{
    int v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(yes, "result pointer", err);
    if (rc == CH_OK)
        rc = r->ops->job_cancel_requested(r->be, id, &v, err);
    if (rc == CH_OK)
        *yes = v;
    return rc;
}

ch_err ch_registry_jobs_interrupt(ch_registry *r, const char *why, int64_t *n, ch_error *err)
{
    ch__job_change j = {NULL, NULL, NULL, NULL, CH_JOB_INTERRUPTED, -1, NULL, why, NULL, 0};
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = text_arg(why, 1000, "reason", err);
    if (rc == CH_OK)
        rc = r->ops->jobs_interrupt(r->be, &j, &v, err);
    if (rc == CH_OK && n != NULL)
        *n = v;
    return rc;
}

ch_err ch_registry_jobs_interrupt_stale(ch_registry *r, const char *why, int64_t stale_ms,
                                        const char *owner, int64_t *n, ch_error *err)
{
    ch__job_change j = {NULL, NULL, NULL, NULL, CH_JOB_INTERRUPTED, -1, NULL, why, owner, stale_ms};
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK && stale_ms <= 0)
        rc = ch_error_set(err, CH_EINVAL, "interrupting stale jobs: the age must be positive");
    if (rc == CH_OK)
        rc = text_arg(why, 1000, "reason", err);
    if (rc == CH_OK)
        rc = text_arg(owner, 200, "job owner", err);
    if (rc == CH_OK)
        rc = r->ops->jobs_interrupt(r->be, &j, &v, err);
    if (rc == CH_OK && n != NULL)
        *n = v;
    return rc;
}

typedef struct by_id_arg {
    int64_t id;
    size_t limit;
} by_id_arg;

static ch_err rd_jobs(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    const by_id_arg *a = arg;
    return r->ops->jobs_json(r->be, a->id, a->limit, b, err);
}

ch_err ch_registry_jobs_json(ch_registry *r, int64_t id, size_t limit, ch_buf *b, ch_error *err)
{
    by_id_arg a = {id, limit};
    return read_into(r, rd_jobs, &a, b, err);
}

/* ---- rollouts ------------------------------------------------------------------ */

static const char *const rollout_state_names[] = {"shadow",   "canary",      "paused",
                                                  "promoted", "rolled_back", "aborted"};

const char *ch_rollout_state_name(ch_rollout_state s)
{
    return (unsigned)s < 6 ? rollout_state_names[s] : "unknown";
}

ch_err ch__rollout_plan(const char *store, const ch_rollout *r, const ch__rollout_change *c,
                        ch__rollout_move *m, ch_error *err)
{
    const char *now = ch_rollout_state_name(r->state);
    int running = r->state == CH_ROLLOUT_SHADOW || r->state == CH_ROLLOUT_CANARY;
    memset(m, 0, sizeof *m);
    snprintf(m->target, sizeof m->target, "rollout %lld", (long long)r->id);
    if ((c->expect_state >= 0 && (int)r->state != c->expect_state) ||
        (c->expect_step >= 0 && (int64_t)r->step != c->expect_step))
        return ch_error_set(err, CH_EBUSY, "%s: rollout %lld has moved on (now %s, step %zu)",
                            store, (long long)r->id, now, r->step);
    switch (c->op) {
    case CH__ROLLOUT_ADVANCE:
        if (!running)
            return ch_error_set(err, CH_EINVAL, "%s: rollout %lld is %s", store, (long long)r->id,
                                now);
        if (r->state == CH_ROLLOUT_CANARY && r->step + 1 >= r->n_steps) {
            m->kind = CH__MOVE_PROMOTE;
            m->action = "rollout-promoted";
        } else {
            m->kind = CH__MOVE_STEP;
            m->step = r->state == CH_ROLLOUT_SHADOW ? 0 : (int64_t)r->step + 1;
            m->action = "rollout-step";
        }
        return CH_OK;
    case CH__ROLLOUT_PAUSE:
        if (!running)
            return ch_error_set(err, CH_EINVAL, "%s: rollout %lld is %s, not running", store,
                                (long long)r->id, now);
        m->kind = CH__MOVE_PAUSE;
        m->action = "rollout-pause";
        return CH_OK;
    case CH__ROLLOUT_RESUME:
        if (r->state != CH_ROLLOUT_PAUSED)
            return ch_error_set(err, CH_EINVAL, "%s: rollout %lld is %s, not paused", store,
                                (long long)r->id, now);
        m->kind = CH__MOVE_RESUME;
        m->action = "rollout-resume";
        return CH_OK;
    case CH__ROLLOUT_END:
        if (r->state == CH_ROLLOUT_PROMOTED || r->state == CH_ROLLOUT_ROLLED_BACK ||
            r->state == CH_ROLLOUT_ABORTED)
            return ch_error_set(err, CH_EINVAL, "%s: rollout %lld has already ended (%s)", store,
                                (long long)r->id, now);
        m->kind = CH__MOVE_END;
        m->action = c->end_state == CH_ROLLOUT_ROLLED_BACK ? "rollout-rollback" : "rollout-abort";
        return CH_OK;
    case CH__ROLLOUT_EVAL:
        m->kind = CH__MOVE_EVAL;
        return CH_OK;
    default:
        return ch_error_set(err, CH_EINVAL, "%s: rollout %lld: not a move", store,
                            (long long)r->id);
    }
}

size_t ch__registry_parse_steps(const char *text, double *steps, size_t max)
{
    ch_json *doc = NULL;
    size_t n = 0;
    if (text == NULL || ch_json_parse(text, strlen(text), &doc, NULL) != CH_OK)
        return 0;
    for (size_t i = 0; i < ch_json_len(doc) && n < max; i++)
        if (ch_json_num(ch_json_at(doc, i), &steps[n]) == 0)
            n++;
    ch_json_free(doc);
    return n;
}

void ch__registry_format_steps(const double *steps, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    int w = snprintf(out, cap, "[");
    o = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        char num[40];
        ch_fmt_double(num, steps[i]);
        w = snprintf(out + o, cap - o, "%s%s", i ? ", " : "", num);
        o += w > 0 ? (size_t)w : 0;
    }
    if (o < cap)
        snprintf(out + o, cap - o, "]");
}

ch_err ch_registry_rollout_start(ch_registry *r, int64_t candidate, const double *steps,
                                 size_t n_steps, int shadow, const char *gates_json,
                                 const char *actor, const char *reason, int64_t *id, ch_error *err)
{
    ch__rollout_change c;
    int64_t v = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(id, "rollout id result pointer", err);
    if (rc == CH_OK && (n_steps < 1 || n_steps > CH_ROLLOUT_MAX_STEPS || steps == NULL))
        rc = ch_error_set(err, CH_EINVAL, "a rollout needs 1 to %d steps", CH_ROLLOUT_MAX_STEPS);
    for (size_t i = 0; rc == CH_OK && i < n_steps; i++)
        if (!(steps[i] > 0 && steps[i] <= 100) || (i > 0 && !(steps[i] > steps[i - 1])))
            rc = ch_error_set(err, CH_EINVAL,
                              "rollout steps must increase strictly within (0, 100]");
    if (rc == CH_OK && steps[n_steps - 1] != 100)
        rc = ch_error_set(err, CH_EINVAL, "the last rollout step must be 100 (percent)");
    if (rc == CH_OK && candidate <= 0)
        rc = ch_error_set(err, CH_EINVAL, "no candidate version");
    if (rc == CH_OK)
        rc = need(gates_json, "gate settings", err);
    if (rc == CH_OK)
        rc = check_object(gates_json, "gate settings", err);
    if (rc == CH_OK && strlen(gates_json) >= sizeof(((ch_rollout *)0)->gates_json))
        rc = ch_error_set(err, CH_EINVAL, "gate settings are too long");
    if (rc == CH_OK)
        rc = need(actor, "actor", err);
    if (rc == CH_OK)
        rc = text_arg(reason, 1000, "reason", err);
    if (rc != CH_OK)
        return rc;
    memset(&c, 0, sizeof c);
    c.candidate = candidate;
    c.steps = steps;
    c.n_steps = n_steps;
    c.shadow = shadow != 0;
    c.gates_json = gates_json;
    c.details = gates_json;
    c.actor = actor;
    c.reason = reason;
    rc = r->ops->rollout_start(r->be, &c, &v, err);
    if (rc == CH_OK)
        *id = v;
    return rc;
}

ch_err ch_registry_rollout_get(ch_registry *r, int64_t id, ch_rollout *out, int *found,
                               ch_error *err)
{
    ch_rollout tmp;
    int f = 0;
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(out, "rollout result pointer", err);
    if (rc == CH_OK)
        rc = need(found, "found result pointer", err);
    if (rc == CH_OK)
        rc = r->ops->rollout_get(r->be, id < 0 ? 0 : id, &tmp, &f, err);
    if (rc == CH_OK) {
        *found = f;
        if (f)
            *out = tmp;
    }
    return rc;
}

static ch_err rollout_move(ch_registry *r, int64_t id, ch__rollout_change *c, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc == CH_OK)
        rc = need(c->actor, "actor", err);
    if (rc == CH_OK)
        rc = text_arg(c->reason, 1000, "reason", err);
    if (rc == CH_OK)
        rc = check_object(c->eval_json, "gate evaluation", err);
    if (rc == CH_OK && id <= 0)
        rc = ch_error_set(err, CH_EINVAL, "no rollout id");
    if (rc == CH_OK) {
        c->details = c->eval_json;
        rc = r->ops->rollout_move(r->be, id, c, err);
    }
    return rc;
}

ch_err ch_registry_rollout_advance(ch_registry *r, int64_t id, int expect_state, int expect_step,
                                   const char *eval_json, const char *actor, const char *reason,
                                   ch_error *err)
{
    ch__rollout_change c;
    memset(&c, 0, sizeof c);
    c.op = CH__ROLLOUT_ADVANCE;
    c.expect_state = expect_state;
    c.expect_step = expect_step;
    c.eval_json = eval_json;
    c.actor = actor;
    c.reason = reason;
    return rollout_move(r, id, &c, err);
}

static ch_err rollout_simple(ch_registry *r, int64_t id, ch__rollout_op op, const char *actor,
                             const char *reason, ch_error *err)
{
    ch__rollout_change c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.expect_state = -1;
    c.expect_step = -1;
    c.actor = actor;
    c.reason = reason;
    return rollout_move(r, id, &c, err);
}

ch_err ch_registry_rollout_pause(ch_registry *r, int64_t id, const char *actor, const char *reason,
                                 ch_error *err)
{
    return rollout_simple(r, id, CH__ROLLOUT_PAUSE, actor, reason, err);
}

ch_err ch_registry_rollout_resume(ch_registry *r, int64_t id, const char *actor, const char *reason,
                                  ch_error *err)
{
    return rollout_simple(r, id, CH__ROLLOUT_RESUME, actor, reason, err);
}

ch_err ch_registry_rollout_end(ch_registry *r, int64_t id, ch_rollout_state end, int expect_state,
                               int expect_step, const char *eval_json, const char *actor,
                               const char *reason, ch_error *err)
{
    ch__rollout_change c;
    if (end != CH_ROLLOUT_ROLLED_BACK && end != CH_ROLLOUT_ABORTED)
        return ch_error_set(err, CH_EINVAL, "a rollout ends rolled back or aborted");
    memset(&c, 0, sizeof c);
    c.op = CH__ROLLOUT_END;
    c.end_state = end;
    c.expect_state = expect_state;
    c.expect_step = expect_step;
    c.eval_json = eval_json;
    c.actor = actor;
    c.reason = reason;
    return rollout_move(r, id, &c, err);
}

ch_err ch_registry_rollout_evaluated(ch_registry *r, int64_t id, const char *eval_json,
                                     ch_error *err)
{
    ch__rollout_change c;
    ch_err rc = need(eval_json, "gate evaluation", err);
    if (rc != CH_OK)
        return rc;
    memset(&c, 0, sizeof c);
    c.op = CH__ROLLOUT_EVAL;
    c.expect_state = -1;
    c.expect_step = -1;
    c.eval_json = eval_json;
    c.actor = "churn";
    return rollout_move(r, id, &c, err);
}

static ch_err rd_rollouts(ch_registry *r, const void *arg, ch_buf *b, ch_error *err)
{
    const by_id_arg *a = arg;
    return r->ops->rollouts_json(r->be, a->id, a->limit, b, err);
}

ch_err ch_registry_rollouts_json(ch_registry *r, int64_t id, size_t limit, ch_buf *b, ch_error *err)
{
    by_id_arg a = {id, limit};
    return read_into(r, rd_rollouts, &a, b, err);
}

/* ---- helpers shared with the back ends --------------------------------- */

/* Feeds one field of the canonical text: "name=~\n" or
 * "name=<len>:<bytes>\n". The length prefix keeps the text unambiguous
 * whatever bytes a field holds. */
static void hash_field(ch_sha256 *h, const char *name, const char *v)
{
    char head[48];
    int n;
    if (v == NULL) {
        n = snprintf(head, sizeof head, "%s=~\n", name);
        ch_sha256_update(h, head, (size_t)n);
        return;
    }
    n = snprintf(head, sizeof head, "%s=%zu:", name, strlen(v));
    ch_sha256_update(h, head, (size_t)n);
    ch_sha256_update(h, v, strlen(v));
    ch_sha256_update(h, "\n", 1);
}

ch_err ch__audit_hash(const char *prev, const ch__audit_entry *e, char out[65], ch_error *err)
{
    static const char magic[] = "churn-audit-v1\n";
    ch_sha256 *h = NULL;
    ch_err rc = ch_sha256_new(&h, err);
    if (rc != CH_OK)
        return rc;
    ch_sha256_update(h, prev, strlen(prev));
    ch_sha256_update(h, magic, sizeof magic - 1);
    hash_field(h, "id", e->id);
    hash_field(h, "at", e->at);
    hash_field(h, "actor", e->actor);
    hash_field(h, "action", e->action);
    hash_field(h, "alias", e->alias);
    hash_field(h, "from", e->from_version);
    hash_field(h, "to", e->to_version);
    hash_field(h, "target", e->target);
    hash_field(h, "reason", e->reason);
    hash_field(h, "details", e->details);
    ch_sha256_final_hex(h, out);
    ch_sha256_free(h);
    return CH_OK;
}

/* ---- helpers shared with the back ends (JSON) -------------------------- */

int64_t ch__registry_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ch__registry_fmt_time(int64_t unix_ms, char out[CH__REGISTRY_TS_LEN])
{
    char wide[96];
    struct tm tm;
    int64_t ms = unix_ms % 1000;
    time_t sec = (time_t)(unix_ms / 1000);

    if (ms < 0) {
        ms += 1000;
        sec -= 1;
    }
    gmtime_r(&sec, &tm);
    /* Formatted into room for any int values, then cut to the layout's
     * length, which every real date fits. */
    snprintf(wide, sizeof wide, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
    memcpy(out, wide, CH__REGISTRY_TS_LEN - 1);
    out[CH__REGISTRY_TS_LEN - 1] = '\0';
}

void ch__registry_now(char out[CH__REGISTRY_TS_LEN])
{
    ch__registry_fmt_time(ch__registry_now_ms(), out);
}

int ch__registry_gate_passes(const ch_promotion *p, int64_t champion)
{
    if (champion <= 0)
        return 1;
    /* Written so that any NaN fails the gate. */
    return p->candidate_score >= p->champion_score + p->margin;
}

ch_err ch__registry_promotion_details(ch_buf *b, const ch_promotion *p, int64_t champion)
{
    int first = 1;

    ch_buf_putc(b, '{');
    ch__json_key(b, &first, "candidate_score");
    ch_buf_json_num(b, p->candidate_score);
    ch__json_key(b, &first, "champion_score");
    ch_buf_json_num(b, p->champion_score);
    ch__json_key(b, &first, "margin");
    ch_buf_json_num(b, p->margin);
    ch__json_key(b, &first, "force");
    ch_buf_puts(b, p->force ? "true" : "false");
    ch__json_key(b, &first, "eval_key");
    ch__json_str_or_null(b, p->eval_key, p->eval_key != NULL ? strlen(p->eval_key) : 0);
    ch__json_key(b, &first, "champion");
    if (champion > 0)
        ch__json_int(b, champion);
    else
        ch_buf_puts(b, "null");
    ch__json_key(b, &first, "gate_passed");
    ch_buf_puts(b, ch__registry_gate_passes(p, champion) ? "true" : "false");
    return ch_buf_putc(b, '}');
}

ch_err ch__registry_refused(ch_error *err, const ch_promotion *p, int64_t champion)
{
    /* Shortest round-trip text: "%.6g" could print 0.81 < 0.8 + 0.01 for a
     * refusal that is real in binary floating point. */
    char cand[32];
    char champ[32];
    char margin[32];
    ch_fmt_double(cand, p->candidate_score);
    ch_fmt_double(champ, p->champion_score);
    ch_fmt_double(margin, p->margin);
    return ch_error_set(err, CH_EDATA,
                        "promotion of v%lld refused: candidate score %s is below champion v%lld "
                        "score %s + margin %s (force to override)",
                        (long long)p->version, cand, (long long)champion, champ, margin);
}

void ch__json_key(ch_buf *b, int *first, const char *key)
{
    if (!*first)
        ch_buf_putc(b, ',');
    *first = 0;
    ch_buf_json_str(b, key, strlen(key));
    ch_buf_putc(b, ':');
}

ch_err ch__json_embed(ch_buf *b, const char *text, size_t len)
{
    ch_json *doc = NULL;
    ch_err rc;

    if (text == NULL)
        return ch_buf_puts(b, "null");
    rc = ch_json_parse(text, len, &doc, NULL);
    if (rc == CH_ENOMEM)
        return CH_ENOMEM;
    if (rc != CH_OK)
        return ch_buf_json_str(b, text, len);
    ch_json_free(doc);
    return ch_buf_append(b, text, len);
}

void ch__json_str_or_null(ch_buf *b, const char *s, size_t len)
{
    if (s == NULL)
        ch_buf_puts(b, "null");
    else
        ch_buf_json_str(b, s, len);
}

void ch__json_int(ch_buf *b, int64_t v)
{
    ch_buf_printf(b, "%lld", (long long)v);
}
