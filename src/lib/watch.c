/*
 * watch.c -- monitoring jobs over the prediction log (include/ch/watch.h).
 *
 * One pass over the window: each logged prediction goes to the window of
 * the version that served it, its inputs decoded with that version's
 * schema. The store is read on the calling thread and the rows are
 * decoded and counted on a second one, in batches, so the two halves of
 * the work (about equal) overlap; rows are counted in the order read. Versions are loaded the first
 * time one of their predictions shows up (bundle, reference profile, window), so a window spanning
 * a promotion measures each model against its own training data. A version whose bundle cannot be
 * monitored (no profile, file gone) is listed with the reason and its predictions are counted as
 * skipped.
 */
#include "ch/watch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/bundle.h"
#include "ch/inputs.h"
#include "ch/json.h"
#include "ch/predlog.h"
#include "ch/schema.h"

#define MAX_VERSIONS 64 /* versions one window may hold; more are skipped and counted */

typedef struct vctx {
    int64_t version;
    ch_bundle *bundle;
    ch_monitor_ref *ref;
    ch_monitor_window *win;
    double *num;
    int32_t *code;
    size_t rows, skipped;
    char problem[256]; /* why it cannot be monitored, or "" */
} vctx;

/* One logged prediction on its way from the scan to the counting thread. */
typedef struct prow {
    vctx *v;
    double probability;
    int label;
    uint16_t len; /* of 'blob'; 0: no inputs */
    unsigned char blob[CH_PREDLOG_INPUTS_MAX];
} prow;

#define BATCH_ROWS 1024 /* rows handed over at a time */
#define N_BATCHES  4    /* batches in flight */

typedef struct batch {
    prow rows[BATCH_ROWS];
    size_t n;
} batch;

/* A registered version's bundle file, looked up before the scan: the
 * store's connection is inside the scan's read transaction while rows
 * arrive, so nothing may call the store from the callback. */
typedef struct vpath {
    int64_t version;
    char *path;
} vpath;

typedef struct scan {
    ch_registry *reg;
    const ch_watch_job *job;
    vpath *paths;
    size_t n_paths;
    vctx v[MAX_VERSIONS];
    size_t n_v;
    size_t rows, skipped;
    ch_err rc; /* a failure inside the callback */
    ch_error *err;
    /* The hand-over: the scan fills batches, the counting thread empties
     * them, in order; 'mu' guards everything below. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    batch *b;      /* N_BATCHES */
    size_t head;   /* batches handed over */
    size_t tail;   /* batches counted */
    int done;      /* the scan has ended */
    ch_err add_rc; /* the counting thread's failure */
    ch_error add_err;
    size_t decode_skipped; /* blobs the version's schema does not read */
} scan;

void ch_watch_job_default(ch_watch_job *j)
{
    memset(j, 0, sizeof *j);
    j->model = "champion";
    j->window = "7d";
    j->what = CH_WATCH_ALL;
    ch_monitor_opts_default(&j->opts);
}

ch_err ch_watch_job_from_config(const ch_config *cfg, ch_watch_job *j, ch_error *err)
{
    const char *corr = ch_config_str(cfg, "monitor.correction");
    int64_t span;
    size_t n;
    ch_err rc;
    ch_watch_job_default(j);
    j->window = ch_config_str(cfg, "monitor.window");
    j->opts.psi_warn = ch_config_num(cfg, "monitor.psi_warn");
    j->opts.psi_alert = ch_config_num(cfg, "monitor.psi_alert");
    j->opts.alpha = ch_config_num(cfg, "monitor.alpha");
    j->opts.unseen_alert = ch_config_num(cfg, "monitor.unseen_alert");
    j->opts.min_rows = (size_t)ch_config_num(cfg, "monitor.min_rows");
    j->opts.min_labels = (size_t)ch_config_num(cfg, "monitor.min_labels");
    j->opts.auc_drop = ch_config_num(cfg, "monitor.auc_drop");
    j->opts.n_boot = (size_t)ch_config_num(cfg, "monitor.bootstrap");
    j->opts.n_segments = (size_t)ch_config_num(cfg, "monitor.segments");
    if (strcmp(corr, "bh") == 0)
        j->opts.correction = CH_MONITOR_BH;
    else if (strcmp(corr, "holm") == 0)
        j->opts.correction = CH_MONITOR_HOLM;
    else
        return ch_error_set(err, CH_EINVAL,
                            "monitor.correction must be \"bh\" or \"holm\", not \"%s\"", corr);
    if ((rc = ch_watch_parse_window(j->window, &span, &n, err)) != CH_OK) {
        ch_error_prefix(err, "monitor.window");
        return rc;
    }
    if ((rc = ch_monitor_opts_check(&j->opts, err)) != CH_OK)
        ch_error_prefix(err, "monitor");
    return rc;
}

ch_err ch_watch_parse_window(const char *text, int64_t *span_ms, size_t *last_n, ch_error *err)
{
    size_t n = text != NULL ? strlen(text) : 0;
    uint64_t v = 0;
    int64_t unit = 0;
    if (n == 0 || n > 18)
        return ch_error_set(err, CH_EINVAL, "window \"%s\": give a span (24h, 7d) or a count",
                            text != NULL ? text : "");
    switch (text[n - 1]) {
    case 'm':
        unit = 60000;
        break;
    case 'h':
        unit = 3600000;
        break;
    case 'd':
        unit = 86400000;
        break;
    case 'w':
        unit = 7 * 86400000LL;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < n - (unit != 0); i++) {
        if (text[i] < '0' || text[i] > '9')
            return ch_error_set(err, CH_EINVAL,
                                "window \"%s\": give a span (30m, 24h, 7d, 2w) or a count (50000)",
                                text);
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (v == 0 || n - (unit != 0) == 0)
        return ch_error_set(err, CH_EINVAL, "window \"%s\" is empty", text);
    if (unit != 0) {
        if (v > (uint64_t)(INT64_MAX / unit))
            return ch_error_set(err, CH_EINVAL, "window \"%s\" is too long", text);
        *span_ms = (int64_t)v * unit;
        *last_n = 0;
    } else {
        *span_ms = 0;
        *last_n = (size_t)v;
    }
    return CH_OK;
}

static void vctx_free(vctx *c)
{
    ch_monitor_window_free(c->win);
    ch_monitor_ref_free(c->ref);
    ch_bundle_free(c->bundle);
    ch_free(c->num);
    ch_free(c->code);
    memset(c, 0, sizeof *c);
}

/* Loads version 'version' into 'c', from the bundle file looked up before
 * the scan. A bundle that cannot be monitored leaves c->problem set and
 * returns CH_OK; only CH_ENOMEM stops the job. */
static ch_err vctx_load(scan *S, vctx *c, int64_t version)
{
    const char *path = NULL;
    ch_error e = {0};
    ch_err rc = CH_OK;
    size_t n;
    c->version = version;
    for (size_t i = 0; i < S->n_paths; i++)
        if (S->paths[i].version == version)
            path = S->paths[i].path;
    if (path == NULL) {
        snprintf(c->problem, sizeof c->problem, "version %lld is not in the registry",
                 (long long)version);
        return CH_OK;
    }
    rc = ch_bundle_load(path, NULL, &c->bundle, &e);
    if (rc == CH_OK)
        rc = ch_monitor_ref_load(c->bundle, &c->ref, &e);
    if (rc == CH_OK)
        rc = ch_monitor_window_new(c->ref, S->job->opts.seed, &c->win, &e);
    if (rc == CH_ENOMEM)
        return ch_error_set(S->err, rc, "out of memory");
    if (rc != CH_OK) {
        snprintf(c->problem, sizeof c->problem, "%s", e.msg);
        return CH_OK;
    }
    n = ch_schema_n_cols(ch_bundle_schema(c->bundle));
    c->num = ch_malloc_array(n + 1, sizeof *c->num);
    c->code = ch_malloc_array(n + 1, sizeof *c->code);
    if (c->num == NULL || c->code == NULL)
        return ch_error_set(S->err, CH_ENOMEM, "out of memory");
    return CH_OK;
}

/* Every registered version's bundle path, from the model listing. */
static ch_err load_paths(scan *S, ch_error *err)
{
    ch_buf b;
    ch_json *doc = NULL;
    ch_err rc;
    ch_buf_init(&b, (size_t)256 << 20);
    rc = ch_registry_models_json(S->reg, &b, err);
    if (rc == CH_OK)
        rc = ch_json_parse(b.data, b.len, &doc, err);
    ch_buf_reset(&b);
    if (rc != CH_OK)
        return rc;
    S->paths = ch_calloc(ch_json_len(doc) + 1, sizeof *S->paths);
    if (S->paths == NULL)
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; rc == CH_OK && i < ch_json_len(doc); i++) {
        const ch_json *m = ch_json_at(doc, i);
        const char *path = ch_json_str(ch_json_get(m, "bundle"), NULL);
        double v = 0;
        if (path == NULL || ch_json_num(ch_json_get(m, "version"), &v) != 0)
            continue;
        S->paths[S->n_paths].version = (int64_t)v;
        S->paths[S->n_paths].path = ch_strdup(path);
        if (S->paths[S->n_paths++].path == NULL)
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    ch_json_free(doc);
    return rc;
}

static vctx *find_version(scan *S, int64_t version)
{
    for (size_t i = 0; i < S->n_v; i++)
        if (S->v[i].version == version)
            return &S->v[i];
    if (S->n_v == MAX_VERSIONS)
        return NULL;
    S->n_v++;
    if (vctx_load(S, &S->v[S->n_v - 1], version) != CH_OK) {
        S->rc = S->err != NULL ? S->err->code : CH_ENOMEM;
        return NULL;
    }
    return &S->v[S->n_v - 1];
}

/* Counts one row on the counting thread; the version's decode buffers
 * belong to this thread. */
static ch_err count_row(scan *S, const prow *r)
{
    vctx *c = r->v;
    if (r->len > 0 && ch_inputs_decode(ch_bundle_schema(c->bundle), r->blob, r->len, c->num,
                                       c->code, NULL, NULL, NULL) == CH_OK)
        return ch_monitor_window_add(c->win, c->num, c->code, r->probability, r->label,
                                     &S->add_err);
    /* No inputs, or a blob this version's schema does not read: the
     * score still counts, the inputs do not. */
    if (r->len > 0) {
        c->skipped++;
        S->decode_skipped++;
    }
    return ch_monitor_window_add(c->win, NULL, NULL, r->probability, r->label, &S->add_err);
}

/* The counting thread: decodes and counts batches as the scan hands them
 * over, so that reading the store and counting overlap on two cores. */
static void *counter_main(void *arg)
{
    scan *S = arg;
    pthread_mutex_lock(&S->mu);
    for (;;) {
        batch *b;
        ch_err rc = CH_OK;
        while (S->tail == S->head && !S->done)
            pthread_cond_wait(&S->cv, &S->mu);
        if (S->tail == S->head)
            break;
        b = &S->b[S->tail % N_BATCHES];
        pthread_mutex_unlock(&S->mu);
        for (size_t i = 0; i < b->n && rc == CH_OK; i++)
            rc = count_row(S, &b->rows[i]);
        pthread_mutex_lock(&S->mu);
        S->tail++;
        if (rc != CH_OK && S->add_rc == CH_OK)
            S->add_rc = rc;
        pthread_cond_broadcast(&S->cv);
    }
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

/* Hands the batch being filled over; waits while every batch is in use.
 * Returns the counting thread's failure, if any. */
static ch_err hand_over(scan *S)
{
    ch_err rc;
    pthread_mutex_lock(&S->mu);
    S->head++;
    pthread_cond_broadcast(&S->cv);
    while (S->head - S->tail >= N_BATCHES && S->add_rc == CH_OK)
        pthread_cond_wait(&S->cv, &S->mu);
    S->b[S->head % N_BATCHES].n = 0;
    rc = S->add_rc;
    pthread_mutex_unlock(&S->mu);
    return rc;
}

static int on_row(void *ctx, const ch_prediction_row *row)
{
    scan *S = ctx;
    vctx *c;
    batch *b;
    prow *r;
    S->rows++;
    c = row->model_version > 0 ? find_version(S, row->model_version) : NULL;
    if (S->rc != CH_OK)
        return 1;
    if (c == NULL || c->win == NULL) {
        S->skipped++;
        if (c != NULL)
            c->skipped++;
        return 0;
    }
    c->rows++;
    b = &S->b[S->head % N_BATCHES];
    r = &b->rows[b->n++];
    r->v = c;
    r->probability = row->probability;
    r->label = row->churned;
    r->len = 0;
    if (row->inputs != NULL && row->inputs_len > 0 && row->inputs_len <= sizeof r->blob) {
        memcpy(r->blob, row->inputs, row->inputs_len);
        r->len = (uint16_t)row->inputs_len;
    }
    if (b->n == BATCH_ROWS && (S->rc = hand_over(S)) != CH_OK)
        return 1;
    return 0;
}

/* Runs the scan with the counting thread beside it. */
static ch_err scan_log(scan *S, const ch_prediction_query *q, ch_error *err)
{
    pthread_t thr;
    ch_err rc;
    S->b = ch_calloc(N_BATCHES, sizeof *S->b);
    if (S->b == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);
    if (pthread_create(&thr, NULL, counter_main, S) != 0) {
        rc = ch_error_set(err, CH_EIO, "cannot start the counting thread");
        goto done;
    }
    rc = ch_registry_predictions_scan(S->reg, q, on_row, S, err);
    pthread_mutex_lock(&S->mu);
    if (S->b[S->head % N_BATCHES].n > 0)
        S->head++; /* the last, partly filled batch */
    S->done = 1;
    pthread_cond_broadcast(&S->cv);
    pthread_mutex_unlock(&S->mu);
    pthread_join(thr, NULL);
    if (rc == CH_OK && S->rc != CH_OK && S->rc != S->add_rc)
        rc = S->rc; /* a failure of the scan's own (a version that would not load) */
    if (rc == CH_OK && S->add_rc != CH_OK)
        rc = ch_error_set(err, S->add_rc, "%s", S->add_err.msg);
    S->skipped += S->decode_skipped;
done:
    pthread_cond_destroy(&S->cv);
    pthread_mutex_destroy(&S->mu);
    ch_free(S->b);
    S->b = NULL;
    return rc;
}

void ch_watch_result_reset(ch_watch_result *r)
{
    if (r == NULL)
        return;
    ch_free(r->drift_json);
    ch_free(r->decay_json);
    ch_free(r->estimate_json);
    ch_free(r->versions);
    memset(r, 0, sizeof *r);
}

static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Newest version first. */
static int cmp_version_desc(const void *a, const void *b)
{
    int64_t x = ((const vctx *)a)->version;
    int64_t y = ((const vctx *)b)->version;
    return (x < y) - (x > y);
}

/* Appends {"version": N, "rows": .., <doc members>} for every version
 * into 'b' using 'fn' (decay or estimate). */
static ch_err per_version(scan *S, const char *kind, ch_buf *b, ch_watch_result *out,
                          ch_err (*fn)(const ch_monitor_window *, const ch_monitor_opts *, ch_buf *,
                                       ch_monitor_summary *, ch_error *),
                          int is_decay)
{
    ch_buf_printf(b, "{\"kind\": \"%s\", \"versions\": [", kind);
    for (size_t i = 0; i < S->n_v; i++) {
        vctx *c = &S->v[i];
        ch_watch_version *wv = &out->versions[i];
        ch_monitor_summary sum;
        ch_err rc;
        ch_buf_printf(b, "%s\n  {\"version\": %lld, \"rows\": %zu, \"skipped\": %zu, ",
                      i ? "," : "", (long long)c->version, c->rows, c->skipped);
        if (c->win == NULL) {
            ch_buf_puts(b, "\"status\": \"not_monitored\", \"reason\": ");
            ch_buf_json_str(b, c->problem, strlen(c->problem));
            ch_buf_putc(b, '}');
            continue;
        }
        ch_buf_puts(b, "\"result\": ");
        if ((rc = fn(c->win, &S->job->opts, b, &sum, S->err)) != CH_OK)
            return rc;
        ch_buf_putc(b, '}');
        wv->labels = sum.labels;
        wv->reference_auc = sum.reference_auc;
        if (is_decay) {
            wv->realized_auc = sum.realized_auc;
            wv->decayed = sum.decayed;
        } else {
            snprintf(wv->diagnosis, sizeof wv->diagnosis, "%s", sum.diagnosis);
            wv->estimated_auc = sum.estimated_auc;
            wv->estimate_dropped = sum.estimate_dropped;
            if (isnan(wv->realized_auc))
                wv->realized_auc = sum.realized_auc;
        }
    }
    ch_buf_puts(b, "]}");
    return ch_buf_status(b);
}

ch_err ch_watch_run(ch_registry *reg, const ch_watch_job *job, ch_watch_result *out, ch_error *err)
{
    ch_prediction_query q;
    int64_t span = 0;
    size_t last_n = 0;
    int64_t model = 0;
    char path[4096];
    scan *S = NULL;
    ch_buf b;
    ch_err rc;
    ch_watch_result res;

    memset(&res, 0, sizeof res);
    if (job == NULL || reg == NULL || out == NULL)
        return ch_error_set(err, CH_EINVAL, "no job, store or result");
    if ((rc = ch_monitor_opts_check(&job->opts, err)) != CH_OK ||
        (rc = ch_watch_parse_window(job->window != NULL ? job->window : "7d", &span, &last_n,
                                    err)) != CH_OK)
        return rc;
    rc = ch_registry_resolve(reg, job->model != NULL ? job->model : "champion", &model, path,
                             sizeof path, err);
    if (rc != CH_OK)
        return rc;
    S = ch_calloc(1, sizeof *S);
    if (S == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    S->reg = reg;
    S->job = job;
    S->err = err;
    if ((rc = load_paths(S, err)) != CH_OK)
        goto done;
    /* The model itself is loaded first, so that a model without a
     * profile is an error and not a skipped version. */
    S->n_v = 1;
    if ((rc = vctx_load(S, &S->v[0], model)) != CH_OK)
        goto done;
    if (S->v[0].win == NULL) {
        rc = ch_error_set(err, CH_EFORMAT, "version %lld: %s", (long long)model, S->v[0].problem);
        goto done;
    }
    memset(&q, 0, sizeof q);
    res.until_ms = job->now_ms > 0 ? job->now_ms : clock_ms();
    if (span > 0) {
        q.since_ms = res.until_ms - span;
        q.until_ms = res.until_ms;
        res.since_ms = q.since_ms;
    } else {
        q.last_n = last_n;
        res.until_ms = 0;
    }
    rc = scan_log(S, &q, err);
    if (rc != CH_OK)
        goto done;
    res.version = model;
    res.rows = S->rows;
    res.skipped = S->skipped;
    qsort(S->v, S->n_v, sizeof S->v[0], cmp_version_desc);
    res.versions = ch_calloc(S->n_v, sizeof *res.versions);
    if (res.versions == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    res.n_versions = S->n_v;
    for (size_t i = 0; i < S->n_v; i++) {
        res.versions[i].version = S->v[i].version;
        res.versions[i].rows = S->v[i].rows;
        res.versions[i].reference_auc = res.versions[i].estimated_auc =
            res.versions[i].realized_auc = NAN;
    }
    ch_buf_init(&b, (size_t)64 << 20);
    for (size_t i = 0; i < S->n_v; i++) {
        if (S->v[i].version != model)
            continue;
        if (job->what & CH_WATCH_DRIFT) {
            rc = ch_monitor_drift(S->v[i].win, &job->opts, &b, &res.summary, err);
            res.drift_json = rc == CH_OK ? ch_buf_take(&b, NULL) : NULL;
            if (rc == CH_OK && res.drift_json == NULL)
                rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        }
    }
    if (rc == CH_OK && (job->what & CH_WATCH_DECAY)) {
        rc = per_version(S, "decay", &b, &res, ch_monitor_decay, 1);
        res.decay_json = rc == CH_OK ? ch_buf_take(&b, NULL) : NULL;
        if (rc == CH_OK && res.decay_json == NULL)
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    if (rc == CH_OK && (job->what & CH_WATCH_ESTIMATE)) {
        rc = per_version(S, "estimate", &b, &res, ch_monitor_estimate, 0);
        res.estimate_json = rc == CH_OK ? ch_buf_take(&b, NULL) : NULL;
        if (rc == CH_OK && res.estimate_json == NULL)
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    ch_buf_reset(&b);
    if (rc == CH_OK) {
        /* The model's summary: drift numbers from drift, the rest from its
         * version entry. */
        for (size_t i = 0; i < res.n_versions; i++)
            if (res.versions[i].version == model) {
                const ch_watch_version *wv = &res.versions[i];
                res.summary.labels = wv->labels;
                res.summary.reference_auc = wv->reference_auc;
                res.summary.estimated_auc = wv->estimated_auc;
                res.summary.realized_auc = wv->realized_auc;
                res.summary.decayed = wv->decayed;
                res.summary.estimate_dropped = wv->estimate_dropped;
                memcpy(res.summary.diagnosis, wv->diagnosis, sizeof wv->diagnosis);
            }
    }
done:
    for (size_t i = 0; S != NULL && i < S->n_v; i++)
        vctx_free(&S->v[i]);
    for (size_t i = 0; S != NULL && i < S->n_paths; i++)
        ch_free(S->paths[i].path);
    if (S != NULL)
        ch_free(S->paths);
    ch_free(S);
    if (rc != CH_OK) {
        ch_watch_result_reset(&res);
        return rc;
    }
    *out = res;
    return CH_OK;
}
