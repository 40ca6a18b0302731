/*
 * config.c -- the settings table and the config file reader.
 *
 * Values are held as text and parsed when set, so a bad value is caught
 * where it enters (file, environment, flag) with that place in the
 * message, and reading a value back never fails.
 */
#include "ch/config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/text.h"

#define MAX_CONFIG_BYTES (4u << 20)

/* The settings table. Keep docs/config.md in step: `churn config docs`
 * prints it, and a test compares the two. */
static const ch_setting settings[] = {
    {"data.path", CH_SET_STRING, "", 0, 0, "CHURN_DATA",
     "training data CSV; empty means the built-in synthetic customers"},
    {"data.schema", CH_SET_STRING, "config/telco.schema.json", 0, 0, "CHURN_SCHEMA",
     "schema the data is checked against"},
    {"data.max_reject_rate", CH_SET_NUMBER, "0.01", 0, 1, "CHURN_MAX_REJECT_RATE",
     "fail when more than this share of rows is rejected"},
    {"data.simulate_rows", CH_SET_INT, "20000", 100, 1e9, NULL,
     "rows of synthetic customers generated when data.path is empty"},
    {"data.simulate_seed", CH_SET_INT, "42", 0, 9007199254740991.0, NULL,
     "seed of the synthetic customers"},
    {"split.test_fraction", CH_SET_NUMBER, "0.2", 0.05, 0.5, NULL,
     "share of rows held out (stratified) as the test set"},
    {"split.seed", CH_SET_INT, "42", 0, 9007199254740991.0, "CHURN_SEED",
     "seed of the train/test split"},
    {"workdir", CH_SET_STRING, "var", 0, 0, "CHURN_WORKDIR",
     "directory for generated data, fitted pipelines and run outputs"},
    {"train.families", CH_SET_STRING, "logreg,xgboost,mlp", 0, 0, NULL,
     "model families to train and compare, comma-separated"},
    {"train.folds", CH_SET_INT, "5", 2, 16, NULL, "folds of the stratified cross-validation"},
    {"train.threads", CH_SET_INT, "2", 1, 64, "CHURN_THREADS", "fits run in parallel"},
    {"train.early_stop_fraction", CH_SET_NUMBER, "0.15", 0.05, 0.45, NULL,
     "share of a fold's training rows that early-stopping families stop on"},
    {"train.class_weight", CH_SET_STRING, "balanced", 0, 0, NULL,
     "\"balanced\" (weights n / (2 n_class)) or \"none\""},
    {"train.calibration", CH_SET_STRING, "platt", 0, 0, NULL,
     "\"platt\", \"isotonic\" or \"none\", fitted on out-of-fold predictions"},
    {"train.select_by", CH_SET_STRING, "roc_auc", 0, 0, NULL,
     "mean CV score that picks grid points and the winner: \"roc_auc\" or \"pr_auc\" (ties: "
     "out-of-fold F1)"},
    {"train.threshold", CH_SET_STRING, "f1", 0, 0, NULL,
     "served threshold: \"f1\" (F1-optimal) or \"value\" (expected retained value)"},
    {"train.promotion_margin", CH_SET_NUMBER, "0.002", 0, 1, NULL,
     "ROC AUC a challenger must gain over the champion, on the same rows, to be promoted"},
    {"retrain.min_labels", CH_SET_INT, "500", 0, 1e9, NULL,
     "labelled predictions (with logged inputs, of the champion's schema) retraining needs"},
    {"retrain.base_data", CH_SET_STRING, "config", 0, 0, NULL,
     "what retraining adds the labelled predictions to: \"config\" (data.path, or the "
     "synthetic customers when it is empty) or \"none\""},
    {"retrain.margin", CH_SET_NUMBER, "0.002", 0, 1, NULL,
     "ROC AUC a retrained model must gain over the champion, on its held-out rows, to be "
     "registered as challenger"},
    {"value.revenue_column", CH_SET_STRING, "MonthlyCharges", 0, 0, NULL,
     "column holding each customer's monthly revenue"},
    {"value.horizon_months", CH_SET_NUMBER, "12", 0.1, 600, NULL,
     "months of revenue a retained customer is worth"},
    {"value.offer_cost", CH_SET_NUMBER, "20", 0, 1e9, NULL, "cost of one retention offer"},
    {"value.success_rate", CH_SET_NUMBER, "0.3", 0.001, 1, NULL,
     "share of would-be churners an offer retains"},
    {"registry.url", CH_SET_STRING, "var/registry.db", 0, 0, "CHURN_REGISTRY",
     "tracking store and model registry: a SQLite file path, or a postgresql:// URL "
     "(registry.md)"},
    {"serve.host", CH_SET_STRING, "127.0.0.1", 0, 0, "CHURN_HOST",
     "address the prediction service listens on (numeric IPv4 or IPv6)"},
    {"serve.port", CH_SET_INT, "8080", 0, 65535, "CHURN_PORT",
     "TCP port of the prediction service (0: any free port)"},
    {"serve.threads", CH_SET_INT, "2", 1, 256, NULL, "HTTP worker threads"},
    {"serve.max_body_bytes", CH_SET_INT, "1048576", 1024, 1073741824, NULL,
     "largest request body accepted (413 above)"},
    {"serve.batch_max_rows", CH_SET_INT, "1000", 1, 1000000, NULL,
     "most customers in one /v1/predict/batch request"},
    {"serve.reasons", CH_SET_INT, "3", 0, 16, NULL,
     "reasons per prediction when the request gives no k"},
    {"serve.rate_per_s", CH_SET_NUMBER, "50000", 0, 1e9, NULL,
     "requests per second allowed to one principal (0: no limit)"},
    {"serve.rate_burst", CH_SET_NUMBER, "100000", 1, 1e9, NULL,
     "requests one principal may make at once above the rate"},
    {"serve.login_per_min", CH_SET_NUMBER, "30", 1, 1e6, NULL,
     "token requests per minute allowed from one client address"},
    {"serve.cors_origin", CH_SET_STRING, "", 0, 0, NULL,
     "the one browser origin allowed to call the API (empty: none; never a wildcard)"},
    {"serve.jwt_alg", CH_SET_STRING, "HS256", 0, 0, NULL, "token signature: HS256 or RS256"},
    {"serve.jwt_secret_file", CH_SET_STRING, "var/jwt.secret", 0, 0, "CHURN_JWT_SECRET_FILE",
     "HS256 secret (made with 32 random bytes on first start if missing)"},
    {"serve.jwt_public_key", CH_SET_STRING, "", 0, 0, NULL,
     "RS256: PEM file of the public key that verifies tokens"},
    {"serve.jwt_private_key", CH_SET_STRING, "", 0, 0, NULL,
     "RS256: PEM file of the private key that signs tokens (empty: this server cannot issue)"},
    {"serve.jwt_issuer", CH_SET_STRING, "churn", 0, 0, NULL,
     "token issuer (iss) written and required"},
    {"serve.jwt_audience", CH_SET_STRING, "churn-api", 0, 0, NULL,
     "token audience (aud) written and required"},
    {"serve.token_ttl_s", CH_SET_INT, "3600", 60, 604800, NULL,
     "lifetime of issued tokens, seconds"},
    {"serve.pseudonym_key_file", CH_SET_STRING, "var/pseudonym.key", 0, 0,
     "CHURN_PSEUDONYM_KEY_FILE",
     "HMAC key that pseudonymizes customer ids (made on first start if missing)"},
    {"serve.log_mode", CH_SET_STRING, "drop", 0, 0, NULL,
     "prediction log when its queue is full: drop (counted) or block"},
    {"serve.log_queue", CH_SET_INT, "32768", 16, 16777216, NULL,
     "predictions the log queue holds (496 bytes each)"},
    {"serve.access_log", CH_SET_STRING, "var/access.log", 0, 0, NULL,
     "JSON-lines access log file (\"-\": standard error, empty: none)"},
    {"serve.reload_ms", CH_SET_INT, "500", 50, 60000, NULL,
     "how often the registry's champion is checked for a change"},
    {"serve.drain_s", CH_SET_INT, "10", 0, 600, NULL,
     "on SIGTERM, seconds to let requests in flight finish"},
    {"serve.idle_timeout_s", CH_SET_INT, "15", 1, 3600, NULL,
     "a connection silent this long is closed"},
    {"serve.body_timeout_s", CH_SET_INT, "10", 1, 3600, NULL,
     "a request body arriving slower than this gets 408"},
    {"serve.max_connections", CH_SET_INT, "1024", 1, 65536, NULL, "open connections at most"},
    {"serve.max_per_ip", CH_SET_INT, "256", 1, 65536, NULL,
     "open connections from one client address at most"},
    {"score.medium_from", CH_SET_NUMBER, "0.5", 0, 1, NULL,
     "risk band \"medium\" from this share of the served threshold (\"high\" from the "
     "threshold itself)"},
    {"monitor.window", CH_SET_STRING, "7d", 0, 0, NULL,
     "served predictions monitoring looks at: a duration (30m, 24h, 7d) or a count (50000)"},
    {"monitor.psi_warn", CH_SET_NUMBER, "0.1", 0.001, 10, NULL,
     "PSI from which a column is worth a look"},
    {"monitor.psi_alert", CH_SET_NUMBER, "0.25", 0.001, 10, NULL,
     "PSI from which a column has drifted"},
    {"monitor.alpha", CH_SET_NUMBER, "0.05", 1e-12, 0.5, NULL,
     "adjusted p-value below which a column's shift is significant"},
    {"monitor.correction", CH_SET_STRING, "bh", 0, 0, NULL,
     "multiple-testing correction across columns: \"bh\" (Benjamini-Hochberg) or \"holm\""},
    {"monitor.unseen_alert", CH_SET_NUMBER, "0.01", 1e-6, 1, NULL,
     "share of unseen categories in a column that counts as drift"},
    {"monitor.min_rows", CH_SET_INT, "200", 10, 1e9, NULL,
     "predictions a window needs before drift and the estimate are judged"},
    {"monitor.min_labels", CH_SET_INT, "200", 10, 1e9, NULL,
     "labelled predictions a model version needs before decay is judged"},
    {"monitor.auc_drop", CH_SET_NUMBER, "0.05", 0, 0.5, NULL,
     "ROC AUC below the reference by more than this is decay (realized) or a drop (estimated)"},
    {"monitor.bootstrap", CH_SET_INT, "200", 10, 100000, NULL,
     "bootstrap replicates for the decay confidence intervals"},
    {"monitor.segments", CH_SET_INT, "10", 1, 100, NULL,
     "time segments of the rolling metric lines"},
    {"monitor.interval_s", CH_SET_INT, "600", 0, 604800, NULL,
     "churn serve runs the drift, decay and estimate jobs this often, seconds (0: never)"},
    {"monitor.cpu_share", CH_SET_NUMBER, "0.05", 0.001, 1, NULL,
     "share of the time a monitoring job in churn serve may work while predictions are being "
     "served; it sleeps the rest (1: no pacing)"},
    {"retrain.signals", CH_SET_STRING, "decay,concept", 0, 0, NULL,
     "monitoring verdicts that start a retraining job in churn serve, comma-separated: decay, "
     "concept, estimate, drift (empty: never by itself)"},
    {"retrain.labels_window", CH_SET_STRING, "90d", 0, 0, NULL,
     "feedback-labelled predictions churn serve retrains on: a span ending now (30d)"},
    {"retrain.cooldown_s", CH_SET_INT, "3600", 0, 31536000, NULL,
     "seconds after a retraining job before a verdict may start another"},
    {"retrain.hook_secret_file", CH_SET_STRING, "", 0, 0, "CHURN_HOOK_SECRET_FILE",
     "file holding the shared secret of POST /v1/hooks/alertmanager (empty: the hook is off)"},
    {"retrain.hook_alerts", CH_SET_STRING,
     "ChurnModelDecay,ChurnEstimatedPerformanceDrop,ChurnFeatureDrift", 0, 0, NULL,
     "alert names that, firing at the hook, start a retraining job"},
    {"rollout.auto", CH_SET_INT, "1", 0, 1, NULL,
     "1: a challenger registered by a retraining job starts a canary rollout"},
    {"rollout.steps", CH_SET_STRING, "5,25,100", 0, 0, NULL,
     "percent of customers the candidate answers at each step, the last 100"},
    {"rollout.shadow", CH_SET_INT, "0", 0, 1, NULL,
     "1: a rollout begins in shadow mode (the candidate scores a copy of the traffic)"},
    {"rollout.min_requests", CH_SET_INT, "200", 1, 1e9, NULL,
     "predictions the candidate must answer (or shadow) in a step before it may pass"},
    {"rollout.min_seconds", CH_SET_INT, "60", 0, 604800, NULL, "seconds a step lasts at least"},
    {"rollout.max_error_rate_increase", CH_SET_NUMBER, "0.01", 0, 1, NULL,
     "candidate error rate allowed above the champion's"},
    {"rollout.max_p99_ratio", CH_SET_NUMBER, "2", 1, 1000, NULL,
     "candidate p99 scoring latency allowed, as a multiple of the champion's (plus 2 ms)"},
    {"rollout.max_score_psi", CH_SET_NUMBER, "0.25", 0.001, 10, NULL,
     "PSI allowed between the candidate's live scores and those of its own test set"},
    {"rollout.max_arms_psi", CH_SET_NUMBER, "3", 0, 10, NULL,
     "PSI allowed between the candidate's and the champion's live scores (0: no limit)"},
    {"rollout.max_estimate_drop", CH_SET_NUMBER, "0.05", 0, 1, NULL,
     "label-free estimated ROC AUC the candidate may lose against its own reference"},
    {"rollout.min_labels", CH_SET_INT, "100", 1, 1e9, NULL,
     "labels each arm needs before realized ROC AUC is compared"},
    {"rollout.max_auc_drop", CH_SET_NUMBER, "0.02", 0, 1, NULL,
     "realized ROC AUC the candidate may lose against the champion's in a step"},
    {"rollout.require_labels", CH_SET_INT, "0", 0, 1, NULL,
     "1: a step passes only once realized ROC AUC has been compared"},
    {"rollout.eval_s", CH_SET_INT, "5", 1, 3600, NULL,
     "how often churn serve evaluates a running rollout's gates, seconds"},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

static const char *const sections[] = {"features", "search", NULL};

struct ch_config {
    char *values[N_SETTINGS];
    const char *origin[N_SETTINGS];
    ch_json *doc; /* the file, for sections */
    char *path;
};

const ch_setting *ch_config_setting(size_t i)
{
    return i < N_SETTINGS ? &settings[i] : NULL;
}

static long find(const char *name)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0)
            return (long)i;
    return -1;
}

void ch_config_free(ch_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < N_SETTINGS; i++)
        ch_free(c->values[i]);
    ch_json_free(c->doc);
    ch_free(c->path);
    ch_free(c);
}

ch_err ch_config_new(ch_config **out, ch_error *err)
{
    ch_config *c = ch_calloc(1, sizeof *c);
    if (c == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        c->values[i] = ch_strdup(settings[i].def);
        c->origin[i] = "default";
        if (c->values[i] == NULL) {
            ch_config_free(c);
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
    }
    *out = c;
    return CH_OK;
}

/* Checks 'text' against setting 'i'; on success stores it. */
static ch_err set_index(ch_config *c, size_t i, const char *text, const char *origin, ch_error *err)
{
    const ch_setting *s = &settings[i];
    char *copy;
    if (s->type != CH_SET_STRING) {
        double v;
        if (ch_parse_double(text, strlen(text), &v) != 0)
            return ch_error_set(err, CH_EINVAL, "%s: \"%s\" is not a number", s->name, text);
        if (s->type == CH_SET_INT && v != floor(v))
            return ch_error_set(err, CH_EINVAL, "%s: \"%s\" is not a whole number", s->name, text);
        if (v < s->min || v > s->max)
            return ch_error_set(err, CH_ERANGE, "%s: %s is outside [%g, %g]", s->name, text, s->min,
                                s->max);
    }
    copy = ch_strdup(text);
    if (copy == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    ch_free(c->values[i]);
    c->values[i] = copy;
    c->origin[i] = origin;
    return CH_OK;
}

ch_err ch_config_set(ch_config *c, const char *name, const char *value, ch_error *err)
{
    long i = find(name);
    if (i < 0)
        return ch_error_set(err, CH_ENOTFOUND, "no setting called \"%s\"", name);
    return set_index(c, (size_t)i, value, "set", err);
}

/* A bad value in the file is malformed input, not a bad argument. */
static ch_err file_err(ch_err rc, ch_error *err)
{
    if (rc == CH_EINVAL) {
        rc = CH_EFORMAT;
        if (err != NULL)
            err->code = rc;
    }
    return rc;
}

/* Whether some setting's name starts with "'name'." (a group in the file). */
static int is_prefix(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strncmp(settings[i].name, name, n) == 0 && settings[i].name[n] == '.')
            return 1;
    return 0;
}

/* Walks object 'obj' whose dotted prefix is 'prefix', applying settings. */
static ch_err walk(ch_config *c, const ch_json *obj, const char *prefix, ch_error *err)
{
    for (size_t m = 0; m < ch_json_len(obj); m++) {
        const ch_json *v;
        const char *key = ch_json_member(obj, m, &v);
        char name[128];
        long i;
        snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (prefix[0] == '\0') {
            int is_section = 0;
            for (size_t k = 0; sections[k] != NULL; k++)
                is_section |= strcmp(key, sections[k]) == 0;
            if (is_section)
                continue;
        }
        i = find(name);
        if (i < 0 && ch_json_typeof(v) == CH_JSON_OBJECT && is_prefix(name)) {
            ch_err rc = walk(c, v, name, err);
            if (rc != CH_OK)
                return rc;
            continue;
        }
        if (i < 0)
            return ch_error_set(err, CH_EFORMAT, "unknown setting \"%s\"", name);
        if (settings[i].type == CH_SET_STRING) {
            const char *s = ch_json_str(v, NULL);
            if (s == NULL)
                return ch_error_set(err, CH_EFORMAT, "%s: expected a string", name);
            ch_err rc = set_index(c, (size_t)i, s, "file", err);
            if (rc != CH_OK)
                return file_err(rc, err);
        } else {
            double d;
            char text[40];
            if (ch_json_num(v, &d) != 0)
                return ch_error_set(err, CH_EFORMAT, "%s: expected a number", name);
            ch_fmt_double(text, d);
            ch_err rc = set_index(c, (size_t)i, text, "file", err);
            if (rc != CH_OK)
                return file_err(rc, err);
        }
    }
    return CH_OK;
}

/* Applies a parsed document (adopted by 'c') to 'c'. */
static ch_err apply_doc(ch_config *c, ch_json *doc, ch_error *err)
{
    c->doc = doc;
    if (ch_json_typeof(doc) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "the config must be a JSON object");
    return walk(c, doc, "", err);
}

ch_err ch_config_parse(const char *text, size_t len, ch_config **out, ch_error *err)
{
    ch_config *c = NULL;
    ch_json *doc = NULL;
    ch_err rc = ch_config_new(&c, err);
    if (rc != CH_OK)
        return rc;
    rc = ch_json_parse(text, len, &doc, err);
    if (rc == CH_OK)
        rc = apply_doc(c, doc, err);
    if (rc != CH_OK) {
        ch_config_free(c);
        return rc;
    }
    *out = c;
    return CH_OK;
}

ch_err ch_config_load(const char *path, ch_config **out, ch_error *err)
{
    ch_config *c = NULL;
    ch_json *doc = NULL;
    ch_err rc = ch_config_new(&c, err);
    if (rc != CH_OK)
        return rc;
    rc = ch_json_load_file(path, MAX_CONFIG_BYTES, &doc, err);
    if (rc == CH_OK && (rc = apply_doc(c, doc, err)) != CH_OK)
        ch_error_prefix(err, "%s", path);
    if (rc == CH_OK && (c->path = ch_strdup(path)) == NULL)
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    if (rc != CH_OK) {
        ch_config_free(c);
        return rc;
    }
    *out = c;
    return CH_OK;
}

const char *ch_config_str(const ch_config *c, const char *name)
{
    long i = find(name);
    if (i < 0)
        ch_panic("unknown setting %s", name);
    return c->values[i];
}

double ch_config_num(const ch_config *c, const char *name)
{
    long i = find(name);
    double v = 0;
    if (i < 0 || settings[i].type == CH_SET_STRING)
        ch_panic("not a numeric setting: %s", name);
    if (ch_parse_double(c->values[i], strlen(c->values[i]), &v) != 0)
        ch_panic("unparsable stored value for %s", name);
    return v;
}

const char *ch_config_origin(const ch_config *c, const char *name)
{
    long i = find(name);
    return i < 0 ? NULL : c->origin[i];
}

const ch_json *ch_config_section(const ch_config *c, const char *name)
{
    return c->doc != NULL ? ch_json_get(c->doc, name) : NULL;
}

const char *ch_config_path(const ch_config *c)
{
    return c->path;
}

ch_err ch_config_to_json(const ch_config *c, ch_buf *b)
{
    ch_buf_puts(b, "{\"settings\": {");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        ch_buf_puts(b, i ? ", " : "");
        ch_buf_json_str(b, settings[i].name, strlen(settings[i].name));
        ch_buf_puts(b, ": ");
        ch_buf_json_str(b, c->values[i], strlen(c->values[i]));
    }
    ch_buf_putc(b, '}');
    for (size_t k = 0; sections[k] != NULL; k++) {
        const ch_json *v = ch_config_section(c, sections[k]);
        ch_buf_printf(b, ", \"%s\": ", sections[k]);
        ch_json_dump(v, b);
    }
    return ch_buf_putc(b, '}');
}

ch_err ch_config_docs(ch_buf *b)
{
    static const char *const type_names[] = {"string", "number", "integer"};
    ch_buf_puts(b, "# Configuration\n\n"
                   "`config/churn.json` holds the settings below (dotted names are nested\n"
                   "objects in the file) and the structured sections `features` (see\n"
                   "[features.md](features.md)) and `search` (the training grids, see\n"
                   "[training.md](training.md)). Every setting can be overridden by its\n"
                   "environment variable, where it has one, and on the command line with\n"
                   "`--set NAME=VALUE`. Precedence: flag, then environment, then file, then\n"
                   "default. `churn config show` prints the values in effect and where each\n"
                   "came from. This page is generated by `churn config docs`.\n\n"
                   "| setting | type | default | range | environment | meaning |\n"
                   "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const ch_setting *s = &settings[i];
        ch_buf_printf(b, "| `%s` | %s | `%s` | ", s->name, type_names[s->type],
                      s->def[0] ? s->def : "\"\"");
        if (s->type == CH_SET_INT)
            ch_buf_printf(b, "%.0f to %.0f", s->min, s->max);
        else if (s->type == CH_SET_NUMBER)
            ch_buf_printf(b, "%g to %g", s->min, s->max);
        ch_buf_printf(b, " | %s%s%s | %s |\n", s->env ? "`" : "", s->env ? s->env : "",
                      s->env ? "`" : "", s->help);
    }
    return ch_buf_status(b);
}
