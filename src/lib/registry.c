/*
 * registry.c -- the front of the experiment tracker and model registry.
 *
 * Every public call lands here first. The front checks arguments, picks
 * the back end from the store URL (a plain path or "sqlite:PATH" for
 * SQLite; any other "scheme://" is refused by name), and forwards through
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
 * Workload: a handful of writes per training run and a few reads per
 * request to the server's model endpoints; nothing here is hot.
 */
#include "ch/registry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/json.h"
#include "ch/text.h"
#include "registry_int.h"

/* The largest stored JSON text or rendered read result we accept. */
#define JSON_MAX_LEN ((size_t)64 << 20)

struct ch_registry {
    const ch__registry_ops *ops; /* the back end */
    void *be;                    /* its state */
};

/* URL schemes with a back end. A plain path (no "scheme:") is SQLite. */
static const struct {
    const char *scheme;
    const ch__registry_ops *ops;
} schemes[] = {
    {"sqlite", &ch__registry_sqlite_ops},
};

void ch_registry_opts_default(ch_registry_opts *o)
{
    o->busy_timeout_ms = 10000;
    o->read_only = 0;
    o->test_pause_ms = 0;
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

/* ---- open and close ---------------------------------------------------- */

/* Splits 'url' into a back end and the target it understands. Rules:
 *   "sqlite:PATH"      -> SQLite, PATH as given;
 *   "sqlite:///PATH"   -> SQLite, "/PATH" (the URL form; no host allowed);
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
                            "(use a path or sqlite:PATH)",
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
    (void)arg;
    return r->ops->audit_json(r->be, b, err);
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
    return read_into(r, rd_audit, NULL, b, err);
}

ch_err ch_registry_check(ch_registry *r, ch_error *err)
{
    ch_err rc = need(r, "registry handle", err);
    if (rc != CH_OK)
        return rc;
    return r->ops->check(r->be, err);
}

/* ---- helpers shared with the back ends --------------------------------- */

void ch__registry_now(char out[CH__REGISTRY_TS_LEN])
{
    struct timespec ts;
    struct tm tm;
    time_t sec;
    long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    sec = ts.tv_sec;
    ms = ts.tv_nsec / 1000000;
    gmtime_r(&sec, &tm);
    snprintf(out, CH__REGISTRY_TS_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, ms);
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
