/*
 * train.c -- the training protocol (see train.h for the steps).
 *
 * Work is organised as independent jobs, one per (family, grid point,
 * fold), run by a small pool of threads. Each job reads only prepared,
 * immutable fold data and writes only its own slots, and seeds its fit
 * from (seed, family, grid point, fold), so results do not depend on the
 * number of threads or the order jobs finish in.
 *
 * Memory: each fold keeps its transformed matrices for the pipeline
 * variants the families need (raw and standardized), which for the Telco
 * data is a few megabytes; larger data scales linearly.
 */
#include "ch/train.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/config.h"
#include "ch/drift.h"
#include "ch/bundle.h"
#include "ch/model.h"
#include "ch/split.h"

#define MAX_GRID 64

/* ---- options -------------------------------------------------------------- */

void ch_train_opts_default(ch_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->families[0] = "logreg";
    o->families[1] = "xgboost";
    o->families[2] = "mlp";
    o->n_families = 3;
    o->folds = 5;
    o->test_fraction = 0.2;
    o->seed = 42;
    o->threads = 2;
    o->early_stop_fraction = 0.15;
    o->balanced = 1;
    o->calibration = CH_CALIB_PLATT;
    o->threshold_rule = "f1";
    o->select_by = "roc_auc";
    o->revenue_column = NULL;
    o->value.horizon_months = 12;
    o->value.offer_cost = 20;
    o->value.success_rate = 0.3;
}

/* Default search grids, used for a family the config does not mention. */
static const char *default_grid(const char *family)
{
    if (strcmp(family, "logreg") == 0)
        return "{\"C\": [0.03, 0.1, 0.3, 1]}";
    if (strcmp(family, "xgboost") == 0)
        return "{\"max_depth\": [2, 3], \"eta\": [0.05], \"min_child_weight\": [1, 5]}";
    if (strcmp(family, "mlp") == 0)
        return "{\"hidden\": [16], \"l2\": [0.001, 0.01]}";
    return "{}";
}

/* ---- state ---------------------------------------------------------------- */

typedef struct variant {
    int used;
    /* per fold */
    double *x_tr;  /* fold-train rows x nf */
    double *x_val; /* held-out fold rows x nf */
    double *x_fit; /* fold-train minus the early-stop slice */
    double *x_es;  /* early-stop slice */
    size_t nf;
} variant;

typedef struct fold {
    size_t *tr; /* frame rows */
    size_t n_tr;
    size_t *val;     /* frame rows */
    size_t *val_pos; /* positions in the training part, for out-of-fold arrays */
    size_t n_val;
    double *y_tr, *w_tr, *y_val;
    size_t *fit_idx, *es_idx; /* positions within tr */
    size_t n_fit, n_es;
    double *y_fit, *w_fit, *y_es, *w_es;
    variant v[2]; /* [0] raw, [1] standardized */
} fold;

typedef struct combo {
    ch_params params;
    double *oof; /* margins per training-part row */
    double fold_auc[16];
    double fold_pr[16];
    double best_iter[16];
    double auc_mean, auc_sd, oof_auc, oof_f1;
    double pr_mean, pr_sd;
    double score; /* the selection score: auc_mean or pr_mean */
    ch_err rc;    /* first failure of its jobs */
    ch_error err;
} combo;

typedef struct fam {
    const ch_model_ops *ops;
    combo *combos;
    size_t n_combos;
    size_t best;
} fam;

typedef struct job {
    size_t f, c, k;
} job;

typedef struct run {
    const ch_schema *schema;
    const ch_frame *frame;
    const ch_train_opts *o;
    const double *y_all; /* frame labels */
    size_t *train, *test;
    size_t n_train, n_test;
    unsigned *fold_of; /* per training-part position */
    fold *folds;
    fam fams[8];
    size_t n_fams;
    /* job pool */
    job *jobs;
    size_t n_jobs, next_job, done_jobs;
    int stopped; /* a worker saw the cancel flag and handed out no more jobs */
    pthread_mutex_t mu;
} run;

struct ch_train_result {
    ch_buf bundle;
    ch_buf json;
    ch_buf report;
    size_t *test_rows;
    size_t n_test;
    /* metrics for the store */
    char (*scopes)[64];
    char (*names)[32];
    double *values;
    size_t n_metrics, cap_metrics;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Whether the caller has asked training to stop (ch_train_opts.cancel).
 * The flag is volatile so that every check reads it again. */
static int cancelled(const ch_train_opts *o)
{
    return o->cancel != NULL && *o->cancel != 0;
}

static ch_err cancel_error(ch_error *err)
{
    return ch_error_set(err, CH_ECANCELLED, "cancelled");
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t job_seed(uint64_t seed, size_t f, size_t c, size_t k)
{
    return mix(seed ^ mix((uint64_t)f * 1000003u + (uint64_t)c * 1009u + (uint64_t)k));
}

static int add_metric(ch_train_result *r, const char *scope, const char *name, double v)
{
    if (r->n_metrics == r->cap_metrics) {
        size_t cap = r->cap_metrics == 0 ? 256 : r->cap_metrics * 2;
        char(*s)[64] = ch_realloc(r->scopes, cap * sizeof *s);
        if (s == NULL)
            return -1;
        r->scopes = s;
        char(*n)[32] = ch_realloc(r->names, cap * sizeof *n);
        if (n == NULL)
            return -1;
        r->names = n;
        double *d = ch_realloc(r->values, cap * sizeof *d);
        if (d == NULL)
            return -1;
        r->values = d;
        r->cap_metrics = cap;
    }
    snprintf(r->scopes[r->n_metrics], 64, "%s", scope);
    snprintf(r->names[r->n_metrics], 32, "%s", name);
    r->values[r->n_metrics++] = v;
    return 0;
}

/* ---- grids ---------------------------------------------------------------- */

/* Expands {"param": [v1, v2], "other": v} into the cartesian product. */
static ch_err expand_grid(const ch_model_ops *ops, const ch_json *node, combo **out, size_t *n_out,
                          ch_error *err)
{
    size_t n_params = ch_json_len(node);
    size_t total = 1;
    combo *cs;

    if (ch_json_typeof(node) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "search.%s: expected an object of parameter lists",
                            ops->name);
    for (size_t i = 0; i < n_params; i++) {
        const ch_json *v;
        const char *k = ch_json_member(node, i, &v);
        size_t len = ch_json_typeof(v) == CH_JSON_ARRAY ? ch_json_len(v) : 1;
        if (len == 0 || (ch_json_typeof(v) != CH_JSON_ARRAY && ch_json_typeof(v) != CH_JSON_NUMBER))
            return ch_error_set(err, CH_EFORMAT,
                                "search.%s.%s: expected a number or a non-empty list of numbers",
                                ops->name, k);
        total *= len;
        if (total > MAX_GRID)
            return ch_error_set(err, CH_ELIMIT, "search.%s: more than %d grid points", ops->name,
                                MAX_GRID);
    }
    cs = ch_calloc(total, sizeof *cs);
    if (cs == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t g = 0; g < total; g++) {
        size_t rest = g;
        for (size_t i = 0; i < n_params; i++) {
            const ch_json *v;
            const char *k = ch_json_member(node, i, &v);
            double d;
            size_t len = ch_json_typeof(v) == CH_JSON_ARRAY ? ch_json_len(v) : 1;
            const ch_json *e = ch_json_typeof(v) == CH_JSON_ARRAY ? ch_json_at(v, rest % len) : v;
            rest /= len;
            if (ch_json_num(e, &d) != 0 || ch_params_set(&cs[g].params, k, d) != 0) {
                ch_free(cs);
                return ch_error_set(err, CH_EFORMAT,
                                    "search.%s.%s: not a number (or too many "
                                    "parameters)",
                                    ops->name, k);
            }
        }
        ch_err rc = ops->check(&cs[g].params, err);
        if (rc != CH_OK) {
            ch_free(cs);
            ch_error_prefix(err, "search.%s", ops->name);
            return rc;
        }
    }
    *out = cs;
    *n_out = total;
    return CH_OK;
}

/* ---- folds ---------------------------------------------------------------- */

static void fold_free(fold *f)
{
    ch_free(f->tr);
    ch_free(f->val);
    ch_free(f->val_pos);
    ch_free(f->y_tr);
    ch_free(f->w_tr);
    ch_free(f->y_val);
    ch_free(f->fit_idx);
    ch_free(f->es_idx);
    ch_free(f->y_fit);
    ch_free(f->w_fit);
    ch_free(f->y_es);
    ch_free(f->w_es);
    for (int v = 0; v < 2; v++) {
        ch_free(f->v[v].x_tr);
        ch_free(f->v[v].x_val);
        ch_free(f->v[v].x_fit);
        ch_free(f->v[v].x_es);
    }
}

/* Balanced class weights n / (2 n_c) over 'y', or all 1. */
static void class_weights(const double *y, size_t n, int balanced, double *w)
{
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += y[i] == 1.0;
    for (size_t i = 0; i < n; i++) {
        if (!balanced || pos == 0 || pos == n)
            w[i] = 1.0;
        else
            w[i] = y[i] == 1.0 ? (double)n / (2.0 * (double)pos)
                               : (double)n / (2.0 * (double)(n - pos));
    }
}

static ch_err gather(const double *x, size_t nf, const size_t *idx, size_t n, double **out)
{
    double *d = ch_malloc_array(n + 1, nf * sizeof *d);
    if (d == NULL)
        return CH_ENOMEM;
    for (size_t i = 0; i < n; i++)
        memcpy(d + i * nf, x + idx[i] * nf, nf * sizeof *d);
    *out = d;
    return CH_OK;
}

/* Fits the pipeline ('spec', standardized or not) on the fold's training
 * rows only and fills the variant's matrices. */
static ch_err prepare_variant(run *R, const ch_pipeline_spec *spec, fold *fd, int std,
                              ch_error *err)
{
    variant *v = &fd->v[std];
    ch_pipeline *p = NULL;
    ch_err rc = ch_pipeline_fit(spec, R->schema, R->frame, fd->tr, fd->n_tr, &p, err);
    if (rc != CH_OK)
        return rc;
    v->nf = ch_pipeline_n_features(p);
    v->x_tr = ch_malloc_array(fd->n_tr + 1, v->nf * sizeof(double));
    v->x_val = ch_malloc_array(fd->n_val + 1, v->nf * sizeof(double));
    if (v->x_tr == NULL || v->x_val == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    rc = ch_pipeline_transform_frame(p, R->frame, fd->tr, fd->n_tr, v->x_tr, NULL, err);
    if (rc == CH_OK)
        rc = ch_pipeline_transform_frame(p, R->frame, fd->val, fd->n_val, v->x_val, NULL, err);
    if (rc == CH_OK && (gather(v->x_tr, v->nf, fd->fit_idx, fd->n_fit, &v->x_fit) != CH_OK ||
                        gather(v->x_tr, v->nf, fd->es_idx, fd->n_es, &v->x_es) != CH_OK))
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    v->used = rc == CH_OK;
done:
    ch_pipeline_free(p);
    return rc;
}

/* 'specs' are the raw [0] and standardized [1] variants; need[v] says
 * which the families use. */
static ch_err prepare_folds(run *R, ch_pipeline_spec *const specs[2], const int need[2],
                            ch_error *err)
{
    const ch_train_opts *o = R->o;
    ch_err rc = CH_OK;

    R->folds = ch_calloc(o->folds, sizeof *R->folds);
    R->fold_of = ch_calloc(R->n_train, sizeof *R->fold_of);
    if (R->folds == NULL || R->fold_of == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    rc = ch_split_kfold(R->y_all, R->train, R->n_train, o->folds, mix(o->seed ^ 0xF01D), R->fold_of,
                        err);
    if (rc != CH_OK)
        return rc;
    for (unsigned k = 0; k < o->folds && rc == CH_OK; k++) {
        fold *fd = &R->folds[k];
        size_t nv = 0;
        if (cancelled(o))
            return cancel_error(err);
        for (size_t i = 0; i < R->n_train; i++)
            nv += R->fold_of[i] == k;
        fd->n_val = nv;
        fd->n_tr = R->n_train - nv;
        fd->tr = ch_malloc_array(fd->n_tr + 1, sizeof *fd->tr);
        fd->val = ch_malloc_array(nv + 1, sizeof *fd->val);
        fd->val_pos = ch_malloc_array(nv + 1, sizeof *fd->val_pos);
        fd->y_tr = ch_malloc_array(fd->n_tr + 1, sizeof *fd->y_tr);
        fd->w_tr = ch_malloc_array(fd->n_tr + 1, sizeof *fd->w_tr);
        fd->y_val = ch_malloc_array(nv + 1, sizeof *fd->y_val);
        if (!fd->tr || !fd->val || !fd->val_pos || !fd->y_tr || !fd->w_tr || !fd->y_val)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        size_t a = 0;
        size_t b = 0;
        for (size_t i = 0; i < R->n_train; i++) {
            size_t row = R->train[i];
            if (R->fold_of[i] == k) {
                fd->val[b] = row;
                fd->val_pos[b] = i;
                fd->y_val[b++] = R->y_all[row];
            } else {
                fd->tr[a] = row;
                fd->y_tr[a++] = R->y_all[row];
            }
        }
        class_weights(fd->y_tr, fd->n_tr, o->balanced, fd->w_tr);
        /* The early-stopping slice: stratified, from this fold's training rows. */
        {
            size_t *fit = NULL;
            size_t *es = NULL;
            rc =
                ch_split_holdout(fd->y_tr, fd->n_tr, o->early_stop_fraction,
                                 mix(o->seed ^ (0xE5u + k)), &fit, &fd->n_fit, &es, &fd->n_es, err);
            if (rc != CH_OK)
                return rc;
            fd->fit_idx = fit;
            fd->es_idx = es;
        }
        fd->y_fit = ch_malloc_array(fd->n_fit + 1, sizeof(double));
        fd->w_fit = ch_malloc_array(fd->n_fit + 1, sizeof(double));
        fd->y_es = ch_malloc_array(fd->n_es + 1, sizeof(double));
        fd->w_es = ch_malloc_array(fd->n_es + 1, sizeof(double));
        if (!fd->y_fit || !fd->w_fit || !fd->y_es || !fd->w_es)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        for (size_t i = 0; i < fd->n_fit; i++)
            fd->y_fit[i] = fd->y_tr[fd->fit_idx[i]];
        for (size_t i = 0; i < fd->n_es; i++)
            fd->y_es[i] = fd->y_tr[fd->es_idx[i]];
        class_weights(fd->y_fit, fd->n_fit, o->balanced, fd->w_fit);
        class_weights(fd->y_es, fd->n_es, o->balanced, fd->w_es);
        for (int v = 0; v < 2 && rc == CH_OK; v++)
            if (need[v])
                rc = prepare_variant(R, specs[v], fd, v, err);
    }
    return rc;
}

/* ---- jobs ----------------------------------------------------------------- */

static void run_job(run *R, const job *j)
{
    fam *F = &R->fams[j->f];
    combo *C = &F->combos[j->c];
    fold *fd = &R->folds[j->k];
    variant *v = &fd->v[F->ops->wants_standardized ? 1 : 0];
    int stops = F->ops->size_param != NULL;
    ch_dataset train;
    ch_dataset valid;
    ch_model_fit_opts fo;
    ch_model_fit_info info;
    ch_model *m = NULL;
    ch_error err = {0};
    double *margin = ch_malloc_array(fd->n_val + 1, sizeof *margin);
    ch_err rc;

    if (margin == NULL) {
        rc = ch_error_set(&err, CH_ENOMEM, "out of memory");
        goto done;
    }
    if (stops) {
        train = (ch_dataset){v->x_fit, fd->y_fit, fd->w_fit, fd->n_fit, v->nf};
        valid = (ch_dataset){v->x_es, fd->y_es, fd->w_es, fd->n_es, v->nf};
    } else {
        train = (ch_dataset){v->x_tr, fd->y_tr, fd->w_tr, fd->n_tr, v->nf};
    }
    fo.seed = job_seed(R->o->seed, j->f, j->c, j->k);
    fo.n_threads = 1;
    fo.valid = stops ? &valid : NULL;
    rc = ch_model_fit(F->ops, &C->params, &train, &fo, &m, &info, &err);
    if (rc == CH_OK)
        rc = ch_model_predict_margin(m, v->x_val, fd->n_val, v->nf, margin, &err);
    if (rc == CH_OK) {
        for (size_t i = 0; i < fd->n_val; i++)
            C->oof[fd->val_pos[i]] = margin[i];
        C->best_iter[j->k] = info.best_iteration;
        rc = ch_metric_roc_auc(fd->y_val, margin, NULL, fd->n_val, &C->fold_auc[j->k], &err);
        if (rc == CH_OK)
            rc = ch_metric_pr_auc(fd->y_val, margin, NULL, fd->n_val, &C->fold_pr[j->k], &err);
    }
done:
    ch_model_free(m);
    ch_free(margin);
    if (rc != CH_OK) {
        pthread_mutex_lock(&R->mu);
        if (C->rc == CH_OK) {
            C->rc = rc;
            C->err = err;
            ch_error_prefix(&C->err, "%s fold %zu", F->ops->name, j->k + 1);
        }
        pthread_mutex_unlock(&R->mu);
    }
}

static void *worker(void *arg)
{
    run *R = arg;
    for (;;) {
        size_t i;
        pthread_mutex_lock(&R->mu);
        if (!R->stopped && cancelled(R->o)) {
            /* No thread takes another job; fits already running finish. */
            R->stopped = 1;
            R->next_job = R->n_jobs;
        }
        i = R->next_job < R->n_jobs ? R->next_job++ : R->n_jobs;
        pthread_mutex_unlock(&R->mu);
        if (i >= R->n_jobs)
            return NULL;
        run_job(R, &R->jobs[i]);
        pthread_mutex_lock(&R->mu);
        R->done_jobs++;
        if (R->o->progress != NULL)
            R->o->progress(R->o->progress_ctx, "cross-validation", R->done_jobs, R->n_jobs);
        pthread_mutex_unlock(&R->mu);
    }
}

static ch_err run_jobs(run *R, ch_error *err)
{
    pthread_t th[16];
    int n = R->o->threads < 1 ? 1 : R->o->threads > 16 ? 16 : R->o->threads;
    int started = 0;
    for (int t = 1; t < n; t++) {
        if (pthread_create(&th[started], NULL, worker, R) != 0)
            break;
        started++;
    }
    worker(R);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    /* A cancelled run has combos that never ran: they are not results. */
    if (R->stopped || cancelled(R->o))
        return cancel_error(err);
    for (size_t f = 0; f < R->n_fams; f++)
        for (size_t c = 0; c < R->fams[f].n_combos; c++)
            if (R->fams[f].combos[c].rc != CH_OK) {
                if (err != NULL)
                    *err = R->fams[f].combos[c].err;
                return R->fams[f].combos[c].rc;
            }
    return CH_OK;
}

/* ---- evaluation ----------------------------------------------------------- */

static void mean_sd(const double *v, size_t n, double *mean, double *sd)
{
    double s = 0;
    double s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    *mean = n > 0 ? s / (double)n : NAN;
    for (size_t i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (double)(n - 1)) : 0.0;
}

ch_err ch_train_evaluate_json(const double *y, const double *p, size_t n, double threshold,
                              ch_buf *b, ch_error *err)
{
    double auc;
    double prauc;
    double ll;
    double brier;
    ch_confusion cm;
    ch_reliability rel;
    ch_deciles dec;
    ch_err rc;

    if ((rc = ch_metric_roc_auc(y, p, NULL, n, &auc, err)) != CH_OK ||
        (rc = ch_metric_pr_auc(y, p, NULL, n, &prauc, err)) != CH_OK ||
        (rc = ch_metric_log_loss(y, p, NULL, n, &ll, err)) != CH_OK ||
        (rc = ch_metric_brier(y, p, NULL, n, &brier, err)) != CH_OK ||
        (rc = ch_metric_confusion(y, p, NULL, n, threshold, &cm, err)) != CH_OK ||
        (rc = ch_metric_reliability(y, p, NULL, n, 10, &rel, err)) != CH_OK ||
        (rc = ch_metric_deciles(y, p, NULL, n, &dec, err)) != CH_OK)
        return rc;
    ch_buf_printf(b, "{\"rows\": %zu, \"roc_auc\": ", n);
    ch_buf_json_num(b, auc);
    ch_buf_puts(b, ", \"pr_auc\": ");
    ch_buf_json_num(b, prauc);
    ch_buf_puts(b, ", \"log_loss\": ");
    ch_buf_json_num(b, ll);
    ch_buf_puts(b, ", \"brier\": ");
    ch_buf_json_num(b, brier);
    ch_buf_puts(b, ", \"ece\": ");
    ch_buf_json_num(b, rel.ece);
    ch_buf_puts(b, ", \"threshold\": ");
    ch_buf_json_num(b, threshold);
    ch_buf_printf(b, ", \"confusion\": {\"tp\": %.0f, \"fp\": %.0f, \"tn\": %.0f, \"fn\": %.0f}",
                  cm.tp, cm.fp, cm.tn, cm.fn);
    ch_buf_puts(b, ", \"accuracy\": ");
    ch_buf_json_num(b, cm.accuracy);
    ch_buf_puts(b, ", \"precision\": ");
    ch_buf_json_num(b, cm.precision);
    ch_buf_puts(b, ", \"recall\": ");
    ch_buf_json_num(b, cm.recall);
    ch_buf_puts(b, ", \"f1\": ");
    ch_buf_json_num(b, cm.f1);
    ch_buf_puts(b, ", \"reliability\": [");
    for (size_t i = 0; i < rel.n_bins; i++) {
        ch_buf_printf(b, "%s{\"count\": %.0f, \"mean_pred\": ", i ? ", " : "", rel.count[i]);
        ch_buf_json_num(b, rel.mean_pred[i]);
        ch_buf_puts(b, ", \"rate\": ");
        ch_buf_json_num(b, rel.rate[i]);
        ch_buf_putc(b, '}');
    }
    ch_buf_puts(b, "], \"deciles\": [");
    for (int i = 0; i < 10; i++) {
        ch_buf_puts(b, i ? ", {\"rate\": " : "{\"rate\": ");
        ch_buf_json_num(b, dec.rate[i]);
        ch_buf_puts(b, ", \"lift\": ");
        ch_buf_json_num(b, dec.lift[i]);
        ch_buf_puts(b, ", \"gain\": ");
        ch_buf_json_num(b, dec.gain[i]);
        ch_buf_putc(b, '}');
    }
    return ch_buf_puts(b, "]}");
}

/* Mean CV AUC over folds, out-of-fold AUC and F1 of one grid point. */
static ch_err summarize(run *R, combo *C, ch_error *err)
{
    double *y = ch_malloc_array(R->n_train + 1, sizeof *y);
    double *p = ch_malloc_array(R->n_train + 1, sizeof *p);
    double t;
    ch_err rc;
    if (y == NULL || p == NULL) {
        ch_free(y);
        ch_free(p);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < R->n_train; i++) {
        y[i] = R->y_all[R->train[i]];
        p[i] = ch_sigmoid(C->oof[i]);
    }
    mean_sd(C->fold_auc, R->o->folds, &C->auc_mean, &C->auc_sd);
    mean_sd(C->fold_pr, R->o->folds, &C->pr_mean, &C->pr_sd);
    C->score = strcmp(R->o->select_by, "pr_auc") == 0 ? C->pr_mean : C->auc_mean;
    rc = ch_metric_roc_auc(y, p, NULL, R->n_train, &C->oof_auc, err);
    if (rc == CH_OK)
        rc = ch_threshold_f1(y, p, NULL, R->n_train, &t, &C->oof_f1, err);
    ch_free(y);
    ch_free(p);
    return rc;
}

static int better(const combo *a, const combo *b)
{
    if (a->score != b->score)
        return a->score > b->score;
    return a->oof_f1 > b->oof_f1;
}

/* ---- reference profile ------------------------------------------------------ */

#define PROFILE_VERSION 2    /* the layout monitoring reads (include/ch/monitor.h) */
#define PROFILE_BINS    10   /* quantile bins per numeric column and for the score */
#define PROFILE_SAMPLE  2048 /* sorted values kept per numeric column and for the score */

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static void quantiles(ch_buf *b, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_d);
    ch_buf_puts(b, "[");
    for (int q = 0; q <= 10; q++) {
        double x = n == 0 ? NAN : v[(size_t)((double)(n - 1) * q / 10.0 + 0.5)];
        if (q > 0)
            ch_buf_puts(b, ", ");
        ch_buf_json_num(b, x);
    }
    ch_buf_puts(b, "]");
}

/* Writes the monitoring part of a numeric profile from the sorted values
 * 'v[0..n)': "edges" (the distinct interior cut points of PROFILE_BINS
 * quantile bins), "counts" (values per bin, a value v falling in the bin
 * numbered by how many edges are <= v), and "sample" (every value when
 * there are at most PROFILE_SAMPLE, else PROFILE_SAMPLE evenly spaced
 * order statistics), which KS and Wasserstein distances compare against. */
static void profile_dist(ch_buf *b, const double *v, size_t n)
{
    double edges[PROFILE_BINS];
    double counts[PROFILE_BINS];
    size_t n_edges = 0;
    size_t m = n < PROFILE_SAMPLE ? n : PROFILE_SAMPLE;
    /* Both calls only fail on bad input, which sorted finite values are
     * not; an empty column gets no edges and one empty bin. */
    if (n == 0 || ch_drift_edges(v, n, PROFILE_BINS, edges, &n_edges, NULL) != CH_OK)
        n_edges = 0;
    if (ch_drift_bin_counts(edges, n_edges, v, n, counts, NULL) != CH_OK)
        memset(counts, 0, sizeof counts);
    ch_buf_puts(b, ", \"edges\": [");
    for (size_t k = 0; k < n_edges; k++) {
        ch_buf_puts(b, k ? ", " : "");
        ch_buf_json_num(b, edges[k]);
    }
    ch_buf_puts(b, "], \"counts\": [");
    for (size_t k = 0; k <= n_edges; k++)
        ch_buf_printf(b, "%s%.0f", k ? ", " : "", counts[k]);
    ch_buf_puts(b, "], \"sample\": [");
    for (size_t i = 0; i < m; i++) {
        size_t at = m == n ? i : (size_t)(((double)i + 0.5) * (double)n / (double)m);
        ch_buf_puts(b, i ? ", " : "");
        ch_buf_json_num(b, v[at < n ? at : n - 1]);
    }
    ch_buf_putc(b, ']');
}

/* Reference profile (profile_version 2): per input column on the training
 * rows (numeric: row and missing counts, mean, sd, deciles, quantile bins
 * and a sorted sample; categorical: counts and shares per fitted level,
 * missing, and values outside the levels), and the final model's
 * calibrated scores on the test rows (the same distribution summary, a
 * 20-bin histogram, and a 10-bin calibration table against the test
 * labels): what monitoring compares live traffic against. */
static ch_err profile_json(run *R, const double *test_p, const double *test_y, ch_buf *b,
                           ch_error *err)
{
    double *tmp = ch_malloc_array(R->n_train + R->n_test + 1, sizeof *tmp);
    ch_err rc;
    if (tmp == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    ch_buf_printf(b,
                  "{\"profile_version\": %d, \"rows\": %zu, \"bins\": %d, \"sample_max\": %d, "
                  "\"columns\": {",
                  PROFILE_VERSION, R->n_train, PROFILE_BINS, PROFILE_SAMPLE);
    for (size_t j = 0, first = 1; j < ch_schema_n_cols(R->schema); j++) {
        const ch_schema_col *c = ch_schema_col_ref(R->schema, j);
        if (c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET)
            continue;
        ch_buf_puts(b, first ? "" : ", ");
        first = 0;
        ch_buf_json_str(b, c->name, strlen(c->name));
        if (ch_frame_col_type(R->frame, j) == CH_COL_CAT) {
            const int32_t *codes = ch_frame_codes(R->frame, j);
            size_t nl = ch_frame_n_levels(R->frame, j);
            size_t miss = 0;
            size_t other = 0;
            ch_buf_printf(b, ": {\"kind\": \"categorical\", \"n\": %zu, \"levels\": {", R->n_train);
            for (size_t k = 0; k < nl; k++) {
                size_t cnt = 0;
                for (size_t i = 0; i < R->n_train; i++)
                    cnt += codes[R->train[i]] == (int32_t)k;
                const char *name = ch_frame_level(R->frame, j, k);
                ch_buf_puts(b, k ? ", " : "");
                ch_buf_json_str(b, name, strlen(name));
                ch_buf_puts(b, ": ");
                ch_buf_json_num(b, (double)cnt / (double)R->n_train);
            }
            ch_buf_puts(b, "}, \"counts\": {");
            for (size_t k = 0; k < nl; k++) {
                size_t cnt = 0;
                const char *name = ch_frame_level(R->frame, j, k);
                for (size_t i = 0; i < R->n_train; i++)
                    cnt += codes[R->train[i]] == (int32_t)k;
                /* Levels past the schema's categories are values kept by
                 * on_unknown: "keep"; monitoring counts them as "other". */
                if (k >= c->n_categories) {
                    other += cnt;
                    continue;
                }
                ch_buf_puts(b, k ? ", " : "");
                ch_buf_json_str(b, name, strlen(name));
                ch_buf_printf(b, ": %zu", cnt);
            }
            for (size_t i = 0; i < R->n_train; i++)
                miss += codes[R->train[i]] < 0;
            ch_buf_printf(b, "}, \"n_missing\": %zu, \"n_other\": %zu, \"missing\": ", miss, other);
            ch_buf_json_num(b, (double)miss / (double)R->n_train);
            ch_buf_putc(b, '}');
        } else {
            const double *num = ch_frame_num(R->frame, j);
            size_t n = 0;
            double sum = 0;
            double ss = 0;
            for (size_t i = 0; i < R->n_train; i++) {
                double v = num[R->train[i]];
                if (!isnan(v)) {
                    tmp[n++] = v;
                    sum += v;
                }
            }
            for (size_t i = 0; i < n; i++)
                ss += (tmp[i] - sum / (double)n) * (tmp[i] - sum / (double)n);
            ch_buf_printf(b, ": {\"kind\": \"numeric\", \"n\": %zu, \"n_missing\": %zu, \"mean\": ",
                          R->n_train, R->n_train - n);
            ch_buf_json_num(b, n > 0 ? sum / (double)n : NAN);
            ch_buf_puts(b, ", \"sd\": ");
            ch_buf_json_num(b, n > 0 ? sqrt(ss / (double)n) : NAN);
            ch_buf_puts(b, ", \"missing\": ");
            ch_buf_json_num(b, (double)(R->n_train - n) / (double)R->n_train);
            ch_buf_puts(b, ", \"deciles\": ");
            quantiles(b, tmp, n); /* sorts 'tmp' */
            profile_dist(b, tmp, n);
            ch_buf_putc(b, '}');
        }
    }
    ch_buf_printf(b,
                  "}, \"score\": {\"source\": \"test rows\", \"n\": %zu, \"deciles\": ", R->n_test);
    memcpy(tmp, test_p, R->n_test * sizeof *tmp);
    quantiles(b, tmp, R->n_test);
    profile_dist(b, tmp, R->n_test);
    ch_buf_puts(b, ", \"histogram\": [");
    {
        size_t h[20] = {0};
        for (size_t i = 0; i < R->n_test; i++) {
            int k = (int)(test_p[i] * 20);
            h[k < 0 ? 0 : k > 19 ? 19 : k]++;
        }
        for (int k = 0; k < 20; k++)
            ch_buf_printf(b, "%s%zu", k ? ", " : "", h[k]);
    }
    ch_buf_puts(b, "]");
    {
        ch_reliability rel;
        rc = ch_metric_reliability(test_y, test_p, NULL, R->n_test, 10, &rel, err);
        if (rc != CH_OK) {
            ch_free(tmp);
            return rc;
        }
        ch_buf_puts(b, ", \"calibration\": {\"bins\": 10, \"count\": [");
        for (size_t k = 0; k < rel.n_bins; k++)
            ch_buf_printf(b, "%s%.0f", k ? ", " : "", rel.count[k]);
        ch_buf_puts(b, "], \"mean_predicted\": [");
        for (size_t k = 0; k < rel.n_bins; k++) {
            ch_buf_puts(b, k ? ", " : "");
            ch_buf_json_num(b, rel.mean_pred[k]);
        }
        ch_buf_puts(b, "], \"observed_rate\": [");
        for (size_t k = 0; k < rel.n_bins; k++) {
            ch_buf_puts(b, k ? ", " : "");
            ch_buf_json_num(b, rel.rate[k]);
        }
        ch_buf_puts(b, "], \"ece\": ");
        ch_buf_json_num(b, rel.ece);
        ch_buf_putc(b, '}');
    }
    ch_buf_puts(b, "}}");
    ch_free(tmp);
    return ch_buf_status(b);
}

/* ---- the run --------------------------------------------------------------- */

static void run_free(run *R)
{
    if (R->folds != NULL)
        for (unsigned k = 0; k < R->o->folds; k++)
            fold_free(&R->folds[k]);
    ch_free(R->folds);
    ch_free(R->fold_of);
    for (size_t f = 0; f < R->n_fams; f++) {
        for (size_t c = 0; c < R->fams[f].n_combos; c++)
            ch_free(R->fams[f].combos[c].oof);
        ch_free(R->fams[f].combos);
    }
    ch_free(R->jobs);
    ch_free(R->train);
    ch_free(R->test);
    pthread_mutex_destroy(&R->mu);
}

void ch_train_result_free(ch_train_result *r)
{
    if (r == NULL)
        return;
    ch_buf_reset(&r->bundle);
    ch_buf_reset(&r->json);
    ch_buf_reset(&r->report);
    ch_free(r->test_rows);
    ch_free(r->scopes);
    ch_free(r->names);
    ch_free(r->values);
    ch_free(r);
}

const char *ch_train_result_bundle(const ch_train_result *r, size_t *len)
{
    if (len != NULL)
        *len = r->bundle.len;
    return r->bundle.data;
}

const char *ch_train_result_json(const ch_train_result *r)
{
    return r->json.data;
}

const char *ch_train_result_report(const ch_train_result *r)
{
    return r->report.data;
}

int ch_train_result_metric(const ch_train_result *r, size_t i, const char **scope,
                           const char **name, double *value)
{
    if (i >= r->n_metrics)
        return 0;
    *scope = r->scopes[i];
    *name = r->names[i];
    *value = r->values[i];
    return 1;
}

const size_t *ch_train_result_test_rows(const ch_train_result *r, size_t *n)
{
    *n = r->n_test;
    return r->test_rows;
}

static void utc_now(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The schema column of 'o->revenue_column' when it names a numeric
 * column of the frame, else -1 (no value threshold is computed). */
static long revenue_col(const ch_schema *s, const ch_frame *f, const ch_train_opts *o)
{
    long j;
    if (o->revenue_column == NULL || o->revenue_column[0] == '\0')
        return -1;
    j = ch_schema_find(s, o->revenue_column);
    return j >= 0 && ch_frame_col_type(f, (size_t)j) == CH_COL_NUM ? j : -1;
}

static ch_err check_opts(const ch_schema *s, const ch_frame *f, const ch_train_opts *o,
                         ch_error *err)
{
    if (o->n_families == 0 || o->n_families > 8)
        return ch_error_set(err, CH_EINVAL, "train: give 1 to 8 model families");
    for (size_t i = 0; i < o->n_families; i++) {
        if (ch_model_family(o->families[i]) == NULL)
            return ch_error_set(err, CH_EINVAL, "train: unknown model family \"%s\"",
                                o->families[i]);
        for (size_t k = 0; k < i; k++)
            if (strcmp(o->families[i], o->families[k]) == 0)
                return ch_error_set(err, CH_EINVAL, "train: family \"%s\" listed twice",
                                    o->families[i]);
    }
    if (o->folds < 2 || o->folds > 16)
        return ch_error_set(err, CH_EINVAL, "train: folds must be 2 to 16, not %u", o->folds);
    if (!(o->test_fraction > 0 && o->test_fraction < 1))
        return ch_error_set(err, CH_EINVAL, "train: test fraction must be between 0 and 1");
    if (!(o->early_stop_fraction > 0 && o->early_stop_fraction < 0.5))
        return ch_error_set(err, CH_EINVAL, "train: early-stop fraction must be in (0, 0.5)");
    if (o->select_by == NULL ||
        (strcmp(o->select_by, "roc_auc") != 0 && strcmp(o->select_by, "pr_auc") != 0))
        return ch_error_set(err, CH_EINVAL, "train: select_by must be \"roc_auc\" or \"pr_auc\"");
    if (strcmp(o->threshold_rule, "f1") != 0 && strcmp(o->threshold_rule, "value") != 0)
        return ch_error_set(err, CH_EINVAL, "train: threshold rule must be \"f1\" or \"value\"");
    if (ch_schema_target(s) < 0)
        return ch_error_set(err, CH_EINVAL, "train: the schema has no target column");
    if (revenue_col(s, f, o) < 0 && strcmp(o->threshold_rule, "value") == 0) {
        if (o->revenue_column == NULL || o->revenue_column[0] == '\0')
            return ch_error_set(err, CH_EINVAL,
                                "train: the value threshold needs a revenue column");
        return ch_error_set(err, CH_EINVAL,
                            "train: the value threshold needs a revenue column, and \"%s\" is "
                            "not a numeric schema column",
                            o->revenue_column);
    }
    if (!(o->value.horizon_months > 0) || !(o->value.offer_cost >= 0) ||
        !(o->value.success_rate > 0 && o->value.success_rate <= 1))
        return ch_error_set(err, CH_EINVAL,
                            "train: value settings need horizon > 0, cost >= 0, success rate in "
                            "(0, 1]");
    return CH_OK;
}

/* Why only the F1 threshold was computed, into 'msg'. */
static void no_revenue_text(const ch_train_opts *o, char *msg, size_t cap)
{
    if (o->revenue_column == NULL || o->revenue_column[0] == '\0')
        snprintf(msg, cap,
                 "no revenue column is set (value.revenue_column): only the F1 threshold was "
                 "computed");
    else
        snprintf(msg, cap,
                 "the schema has no numeric column \"%.200s\" (value.revenue_column): only the "
                 "F1 threshold was computed",
                 o->revenue_column);
}

static void report_md(ch_train_result *res, run *R, size_t wf, double thr_f1, double thr_val,
                      double served, const char *test_json_text, double seconds)
{
    ch_buf *b = &res->report;
    const fam *W = &R->fams[wf];
    ch_json *t = NULL;
    double v;
    ch_buf_printf(b,
                  "# Training report\n\n%zu training rows (%d-fold stratified CV), %zu "
                  "held-out test rows, seed %llu, %.1f s.\n\n",
                  R->n_train, (int)R->o->folds, R->n_test, (unsigned long long)R->o->seed, seconds);
    ch_buf_puts(b, "## Cross-validation (ROC AUC)\n\n| family | best parameters | CV mean | CV sd "
                   "| OOF AUC | grid points |\n|---|---|---:|---:|---:|---:|\n");
    for (size_t f = 0; f < R->n_fams; f++) {
        const fam *F = &R->fams[f];
        const combo *C = &F->combos[F->best];
        ch_buf_printf(b, "| %s%s | `", F->ops->name, f == wf ? " (winner)" : "");
        ch_params_to_json(&C->params, b);
        ch_buf_printf(b, "` | %.4f | %.4f | %.4f | %zu |\n", C->auc_mean, C->auc_sd, C->oof_auc,
                      F->n_combos);
    }
    ch_buf_printf(b, "\nWinner: **%s**, calibrated with %s on its out-of-fold margins.\n\n",
                  W->ops->name, ch_calib_method_name(R->o->calibration));
    ch_buf_printf(b, "## Thresholds\n\n| rule | threshold |\n|---|---:|\n| F1-optimal | %.4f |\n",
                  thr_f1);
    if (isnan(thr_val)) {
        ch_buf_puts(b, "| expected value | not computed |\n");
    } else {
        ch_buf_printf(b, "| expected value | %.4f |\n", thr_val);
    }
    ch_buf_printf(b, "| served (%s) | %.4f |\n\n", R->o->threshold_rule, served);
    if (isnan(thr_val)) {
        char msg[320];
        no_revenue_text(R->o, msg, sizeof msg);
        ch_buf_printf(b, "Note: %s.\n\n", msg);
    }
    if (ch_json_parse(test_json_text, strlen(test_json_text), &t, NULL) == CH_OK) {
        static const char *const keys[] = {"roc_auc",  "pr_auc",    "log_loss", "brier", "ece",
                                           "accuracy", "precision", "recall",   "f1",    NULL};
        ch_buf_puts(b, "## Held-out test set\n\n| metric | value |\n|---|---:|\n");
        for (size_t k = 0; keys[k] != NULL; k++)
            if (ch_json_num(ch_json_get(t, keys[k]), &v) == 0)
                ch_buf_printf(b, "| %s | %.4f |\n", keys[k], v);
        ch_buf_puts(b, "\nLift by decile (highest scores first): ");
        for (size_t k = 0; k < 10; k++)
            if (ch_json_num(ch_json_get(ch_json_at(ch_json_get(t, "deciles"), k), "lift"), &v) == 0)
                ch_buf_printf(b, "%s%.2f", k ? ", " : "", v);
        ch_buf_puts(b, "\n");
        ch_json_free(t);
    }
}

ch_err ch_train_run(const ch_schema *schema, const ch_frame *frame, const ch_pipeline_spec *spec,
                    const ch_train_opts *opts, const char *lineage_json, ch_train_result **out,
                    ch_error *err)
{
    ch_train_opts defaults;
    const ch_train_opts *o = opts;
    run R;
    ch_train_result *res = NULL;
    ch_pipeline_spec *specs[2] = {NULL, NULL};
    ch_pipeline *final_pipe = NULL;
    ch_model *final_model = NULL;
    ch_calibrator *cal = NULL;
    double *y_tr = NULL, *p_tr = NULL, *rev = NULL;
    double *x = NULL, *w = NULL, *m_te = NULL, *p_te = NULL, *y_te = NULL;
    ch_buf test_json, oof_json, metrics_json, profile, lineage, value_json;
    int need[2] = {0, 0};
    size_t wf = 0;
    double thr_f1 = 0.5, f1_at = 0, thr_val = NAN, val_at = 0, served;
    long rev_j;
    double t0 = now_s();
    char started[32];
    char finished[32];
    ch_err rc;

    if (o == NULL) {
        ch_train_opts_default(&defaults);
        o = &defaults;
    }
    utc_now(started);
    memset(&R, 0, sizeof R);
    R.schema = schema;
    R.frame = frame;
    R.o = o;
    pthread_mutex_init(&R.mu, NULL);
    ch_buf_init(&test_json, 1 << 20);
    ch_buf_init(&oof_json, 1 << 20);
    ch_buf_init(&metrics_json, 1 << 22);
    ch_buf_init(&profile, 1 << 24);
    ch_buf_init(&lineage, 1 << 20);
    ch_buf_init(&value_json, 1 << 16);
    if ((rc = check_opts(schema, frame, o, err)) != CH_OK)
        goto done;
    if (cancelled(o)) {
        rc = cancel_error(err);
        goto done;
    }
    rev_j = revenue_col(schema, frame, o);
    R.y_all = ch_frame_num(frame, (size_t)ch_schema_target(schema));

    /* 1. Hold out the test rows. */
    rc = ch_split_holdout(R.y_all, ch_frame_n_rows(frame), o->test_fraction, o->seed, &R.train,
                          &R.n_train, &R.test, &R.n_test, err);
    if (rc != CH_OK)
        goto done;

    /* Families and their grids. */
    for (size_t i = 0; i < o->n_families; i++) {
        fam *F = &R.fams[R.n_fams];
        const ch_json *g = ch_json_get(o->search, o->families[i]);
        ch_json *def = NULL;
        F->ops = ch_model_family(o->families[i]);
        if (g == NULL) {
            const char *text = default_grid(F->ops->name);
            if ((rc = ch_json_parse(text, strlen(text), &def, err)) != CH_OK)
                goto done;
            g = def;
        }
        rc = expand_grid(F->ops, g, &F->combos, &F->n_combos, err);
        ch_json_free(def);
        if (rc != CH_OK)
            goto done;
        R.n_fams++;
        need[F->ops->wants_standardized ? 1 : 0] = 1;
    }
    for (int v = 0; v < 2; v++) {
        if ((rc = ch_pipeline_spec_clone(spec, &specs[v], err)) != CH_OK)
            goto done;
        ch_pipeline_spec_set_standardize(specs[v], v);
    }

    /* 2. Folds, each with its own pipeline fit, then every job. */
    if (o->progress != NULL)
        o->progress(o->progress_ctx, "preparing folds", 0, o->folds);
    if ((rc = prepare_folds(&R, specs, need, err)) != CH_OK)
        goto done;
    for (size_t f = 0; f < R.n_fams; f++)
        R.n_jobs += R.fams[f].n_combos * o->folds;
    R.jobs = ch_calloc(R.n_jobs, sizeof *R.jobs);
    if (R.jobs == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    {
        size_t n = 0;
        for (size_t f = 0; f < R.n_fams; f++)
            for (size_t c = 0; c < R.fams[f].n_combos; c++) {
                combo *C = &R.fams[f].combos[c];
                C->oof = ch_calloc(R.n_train, sizeof *C->oof);
                if (C->oof == NULL) {
                    rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                    goto done;
                }
                for (unsigned k = 0; k < o->folds; k++)
                    R.jobs[n++] = (job){f, c, k};
            }
    }
    if ((rc = run_jobs(&R, err)) != CH_OK)
        goto done;

    /* 3. Selection. */
    res = ch_calloc(1, sizeof *res);
    if (res == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    ch_buf_init(&res->bundle, (size_t)1 << 30);
    ch_buf_init(&res->json, 1 << 24);
    ch_buf_init(&res->report, 1 << 20);
    for (size_t f = 0; f < R.n_fams; f++) {
        fam *F = &R.fams[f];
        for (size_t c = 0; c < F->n_combos; c++) {
            combo *C = &F->combos[c];
            char scope[64];
            if ((rc = summarize(&R, C, err)) != CH_OK)
                goto done;
            if (better(C, &F->combos[F->best]))
                F->best = c;
            snprintf(scope, sizeof scope, "cv/%s/%zu", F->ops->name, c);
            for (unsigned k = 0; k < o->folds; k++) {
                char name[32];
                snprintf(name, sizeof name, "auc_fold%u", k + 1);
                add_metric(res, scope, name, C->fold_auc[k]);
            }
            add_metric(res, scope, "auc_mean", C->auc_mean);
            add_metric(res, scope, "auc_sd", C->auc_sd);
            add_metric(res, scope, "pr_auc_mean", C->pr_mean);
            add_metric(res, scope, "oof_auc", C->oof_auc);
            add_metric(res, scope, "oof_f1", C->oof_f1);
        }
        if (better(&F->combos[F->best], &R.fams[wf].combos[R.fams[wf].best]))
            wf = f;
    }

    /* 4. Calibration and thresholds from the winner's out-of-fold margins. */
    {
        combo *WC = &R.fams[wf].combos[R.fams[wf].best];
        y_tr = ch_malloc_array(R.n_train + 1, sizeof *y_tr);
        p_tr = ch_malloc_array(R.n_train + 1, sizeof *p_tr);
        rev = ch_malloc_array(R.n_train + 1, sizeof *rev);
        if (y_tr == NULL || p_tr == NULL || rev == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < R.n_train; i++)
            y_tr[i] = R.y_all[R.train[i]];
        rc = ch_calibrator_fit(o->calibration, y_tr, WC->oof, NULL, R.n_train, &cal, err);
        if (rc != CH_OK)
            goto done;
        for (size_t i = 0; i < R.n_train; i++)
            p_tr[i] = ch_calibrator_apply(cal, WC->oof[i]);
        if ((rc = ch_threshold_f1(y_tr, p_tr, NULL, R.n_train, &thr_f1, &f1_at, err)) != CH_OK)
            goto done;
        if (rev_j >= 0) {
            const double *r = ch_frame_num(frame, (size_t)rev_j);
            for (size_t i = 0; i < R.n_train; i++)
                rev[i] = isnan(r[R.train[i]]) ? 0.0 : r[R.train[i]];
            rc = ch_threshold_value(y_tr, p_tr, rev, R.n_train, &o->value, &thr_val, &val_at, err);
            if (rc != CH_OK)
                goto done;
        }
        served = strcmp(o->threshold_rule, "value") == 0 ? thr_val : thr_f1;
        if ((rc = ch_train_evaluate_json(y_tr, p_tr, R.n_train, served, &oof_json, err)) != CH_OK)
            goto done;
    }

    /* 5. Refit the winner on every training row, then the test rows, once. */
    {
        fam *W = &R.fams[wf];
        combo *WC = &W->combos[W->best];
        ch_params params = WC->params;
        ch_model_fit_opts fo = {job_seed(o->seed, 99, 99, 99), o->threads, NULL};
        ch_dataset d;
        size_t nf;
        if (cancelled(o)) {
            rc = cancel_error(err);
            goto done;
        }
        if (o->progress != NULL)
            o->progress(o->progress_ctx, "refitting the winner", 0, 1);
        if (W->ops->size_param != NULL) {
            double mean;
            double sd;
            mean_sd(WC->best_iter, o->folds, &mean, &sd);
            ch_params_set(&params, W->ops->size_param, mean < 1 ? 1 : floor(mean + 0.5));
        }
        rc = ch_pipeline_fit(specs[W->ops->wants_standardized ? 1 : 0], schema, frame, R.train,
                             R.n_train, &final_pipe, err);
        if (rc != CH_OK)
            goto done;
        nf = ch_pipeline_n_features(final_pipe);
        x = ch_malloc_array(R.n_train + 1, nf * sizeof *x);
        w = ch_malloc_array(R.n_train + 1, sizeof *w);
        if (x == NULL || w == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        rc = ch_pipeline_transform_frame(final_pipe, frame, R.train, R.n_train, x, NULL, err);
        if (rc != CH_OK)
            goto done;
        class_weights(y_tr, R.n_train, o->balanced, w);
        d = (ch_dataset){x, y_tr, w, R.n_train, nf};
        if ((rc = ch_model_fit(W->ops, &params, &d, &fo, &final_model, NULL, err)) != CH_OK)
            goto done;
        ch_free(x);
        x = ch_malloc_array(R.n_test + 1, nf * sizeof *x);
        m_te = ch_malloc_array(R.n_test + 1, sizeof *m_te);
        p_te = ch_malloc_array(R.n_test + 1, sizeof *p_te);
        y_te = ch_malloc_array(R.n_test + 1, sizeof *y_te);
        if (x == NULL || m_te == NULL || p_te == NULL || y_te == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        rc = ch_pipeline_transform_frame(final_pipe, frame, R.test, R.n_test, x, NULL, err);
        if (rc == CH_OK)
            rc = ch_model_predict_margin(final_model, x, R.n_test, nf, m_te, err);
        if (rc != CH_OK)
            goto done;
        for (size_t i = 0; i < R.n_test; i++) {
            p_te[i] = ch_calibrator_apply(cal, m_te[i]);
            y_te[i] = R.y_all[R.test[i]];
        }
        if ((rc = ch_train_evaluate_json(y_te, p_te, R.n_test, served, &test_json, err)) != CH_OK)
            goto done;
    }

    /* 6. The bundle. */
    {
        fam *W = &R.fams[wf];
        combo *WC = &W->combos[W->best];
        ch_bundle_parts parts;
        ch_json *tj = NULL;
        double v;
        if ((rc = profile_json(&R, p_te, y_te, &profile, err)) != CH_OK)
            goto done;
        utc_now(finished);
        if (lineage_json != NULL && lineage_json[0] == '{') {
            size_t l = strlen(lineage_json);
            while (l > 0 && lineage_json[l - 1] != '}')
                l--;
            ch_buf_append(&lineage, lineage_json, l > 0 ? l - 1 : 0);
            ch_buf_puts(&lineage, l > 2 ? ", " : "");
        } else {
            ch_buf_putc(&lineage, '{');
        }
        ch_buf_printf(&lineage, "\"seed\": %llu, \"started\": \"%s\", \"finished\": \"%s\"}",
                      (unsigned long long)o->seed, started, finished);
        ch_buf_puts(&value_json, "{\"revenue_column\": ");
        if (rev_j >= 0)
            ch_buf_json_str(&value_json, o->revenue_column, strlen(o->revenue_column));
        else
            ch_buf_puts(&value_json, "null");
        ch_buf_puts(&value_json, ", \"horizon_months\": ");
        ch_buf_json_num(&value_json, o->value.horizon_months);
        ch_buf_puts(&value_json, ", \"offer_cost\": ");
        ch_buf_json_num(&value_json, o->value.offer_cost);
        ch_buf_puts(&value_json, ", \"success_rate\": ");
        ch_buf_json_num(&value_json, o->value.success_rate);
        ch_buf_putc(&value_json, '}');
        ch_buf_printf(&metrics_json,
                      "{\"selection\": \"%s\", \"winner\": \"%s\", "
                      "\"cv\": {\"folds\": %u, \"auc_mean\": ",
                      o->select_by, W->ops->name, o->folds);
        ch_buf_json_num(&metrics_json, WC->auc_mean);
        ch_buf_puts(&metrics_json, ", \"auc_sd\": ");
        ch_buf_json_num(&metrics_json, WC->auc_sd);
        ch_buf_puts(&metrics_json, ", \"params\": ");
        ch_params_to_json(&WC->params, &metrics_json);
        ch_buf_puts(&metrics_json, ", \"oof_calibrated\": ");
        ch_buf_puts(&metrics_json, oof_json.data);
        ch_buf_puts(&metrics_json, "}, \"test\": ");
        ch_buf_puts(&metrics_json, test_json.data);
        ch_buf_putc(&metrics_json, '}');
        if (ch_buf_status(&metrics_json) != CH_OK || ch_buf_status(&profile) != CH_OK ||
            ch_buf_status(&lineage) != CH_OK || ch_buf_status(&value_json) != CH_OK) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        parts = (ch_bundle_parts){
            schema, final_pipe, final_model,       cal,          served,       o->threshold_rule,
            thr_f1, thr_val,    metrics_json.data, profile.data, lineage.data, value_json.data};
        if ((rc = ch_bundle_write(&parts, &res->bundle)) != CH_OK) {
            ch_error_set(err, rc, "out of memory writing the bundle");
            goto done;
        }
        if (ch_json_parse(test_json.data, test_json.len, &tj, NULL) == CH_OK) {
            static const char *const keys[] = {"roc_auc",  "pr_auc",    "log_loss", "brier", "ece",
                                               "accuracy", "precision", "recall",   "f1",    NULL};
            for (size_t k = 0; keys[k] != NULL; k++)
                if (ch_json_num(ch_json_get(tj, keys[k]), &v) == 0)
                    add_metric(res, "test", keys[k], v);
            ch_json_free(tj);
        }
        add_metric(res, "thresholds", "f1", thr_f1);
        add_metric(res, "thresholds", "value", thr_val);
        add_metric(res, "thresholds", "served", served);
    }

    /* 7. Result document and report. */
    {
        ch_buf *b = &res->json;
        fam *W = &R.fams[wf];
        ch_buf_printf(b, "{\"winner\": {\"family\": \"%s\", \"params\": ", W->ops->name);
        ch_params_to_json(&W->combos[W->best].params, b);
        ch_buf_printf(b,
                      "}, \"split\": {\"train\": %zu, \"test\": %zu, \"folds\": %u, "
                      "\"seed\": %llu}, \"thresholds\": {\"f1\": ",
                      R.n_train, R.n_test, o->folds, (unsigned long long)o->seed);
        ch_buf_json_num(b, thr_f1);
        ch_buf_puts(b, ", \"value\": ");
        ch_buf_json_num(b, thr_val);
        ch_buf_puts(b, ", \"served\": ");
        ch_buf_json_num(b, served);
        ch_buf_printf(b, ", \"rule\": \"%s\"}, \"notes\": [", o->threshold_rule);
        if (rev_j < 0) {
            char msg[320];
            no_revenue_text(o, msg, sizeof msg);
            ch_buf_json_str(b, msg, strlen(msg));
        }
        ch_buf_puts(b, "], \"families\": [");
        for (size_t f = 0; f < R.n_fams; f++) {
            fam *F = &R.fams[f];
            ch_buf_printf(b, "%s{\"family\": \"%s\", \"best\": %zu, \"grid\": [", f ? ", " : "",
                          F->ops->name, F->best);
            for (size_t c = 0; c < F->n_combos; c++) {
                combo *C = &F->combos[c];
                ch_buf_puts(b, c ? ", {\"params\": " : "{\"params\": ");
                ch_params_to_json(&C->params, b);
                ch_buf_puts(b, ", \"cv_auc_mean\": ");
                ch_buf_json_num(b, C->auc_mean);
                ch_buf_puts(b, ", \"cv_auc_sd\": ");
                ch_buf_json_num(b, C->auc_sd);
                ch_buf_puts(b, ", \"cv_pr_auc_mean\": ");
                ch_buf_json_num(b, C->pr_mean);
                ch_buf_puts(b, ", \"oof_auc\": ");
                ch_buf_json_num(b, C->oof_auc);
                ch_buf_puts(b, ", \"oof_f1\": ");
                ch_buf_json_num(b, C->oof_f1);
                ch_buf_puts(b, ", \"fold_auc\": [");
                for (unsigned k = 0; k < o->folds; k++) {
                    ch_buf_puts(b, k ? ", " : "");
                    ch_buf_json_num(b, C->fold_auc[k]);
                }
                ch_buf_puts(b, "], \"best_iteration\": [");
                for (unsigned k = 0; k < o->folds; k++) {
                    ch_buf_puts(b, k ? ", " : "");
                    ch_buf_json_num(b, C->best_iter[k]);
                }
                ch_buf_puts(b, "]}");
            }
            ch_buf_puts(b, "]}");
        }
        ch_buf_puts(b, "], \"oof_calibrated\": ");
        ch_buf_puts(b, oof_json.data);
        ch_buf_puts(b, ", \"test\": ");
        ch_buf_puts(b, test_json.data);
        ch_buf_puts(b, ", \"seconds\": ");
        ch_buf_json_num(b, now_s() - t0);
        ch_buf_putc(b, '}');
        report_md(res, &R, wf, thr_f1, thr_val, served, test_json.data, now_s() - t0);
        if (ch_buf_status(b) != CH_OK || ch_buf_status(&res->report) != CH_OK) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        res->test_rows = R.test;
        res->n_test = R.n_test;
        R.test = NULL;
    }
    rc = CH_OK;
done:
    ch_free(y_tr);
    ch_free(p_tr);
    ch_free(rev);
    ch_free(x);
    ch_free(w);
    ch_free(m_te);
    ch_free(p_te);
    ch_free(y_te);
    ch_buf_reset(&test_json);
    ch_buf_reset(&oof_json);
    ch_buf_reset(&metrics_json);
    ch_buf_reset(&profile);
    ch_buf_reset(&lineage);
    ch_buf_reset(&value_json);
    ch_calibrator_free(cal);
    ch_model_free(final_model);
    ch_pipeline_free(final_pipe);
    ch_pipeline_spec_free(specs[0]);
    ch_pipeline_spec_free(specs[1]);
    run_free(&R);
    if (rc != CH_OK) {
        ch_train_result_free(res);
        return rc;
    }
    *out = res;
    return CH_OK;
}

ch_err ch_train_opts_from_config(const ch_config *cfg, ch_train_opts *o, char *fams, size_t cap,
                                 ch_error *err)
{
    const char *cal = ch_config_str(cfg, "train.calibration");
    const char *cw = ch_config_str(cfg, "train.class_weight");
    char *save = NULL;
    char *tok;

    ch_train_opts_default(o);
    snprintf(fams, cap, "%s", ch_config_str(cfg, "train.families"));
    o->n_families = 0;
    for (tok = strtok_r(fams, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (o->n_families == 8)
            return ch_error_set(err, CH_EINVAL, "train.families: at most 8 families");
        o->families[o->n_families++] = tok;
    }
    o->search = ch_config_section(cfg, "search");
    o->folds = (unsigned)ch_config_num(cfg, "train.folds");
    o->test_fraction = ch_config_num(cfg, "split.test_fraction");
    o->seed = (uint64_t)ch_config_num(cfg, "split.seed");
    o->threads = (int)ch_config_num(cfg, "train.threads");
    o->early_stop_fraction = ch_config_num(cfg, "train.early_stop_fraction");
    if (strcmp(cw, "balanced") == 0)
        o->balanced = 1;
    else if (strcmp(cw, "none") == 0)
        o->balanced = 0;
    else
        return ch_error_set(err, CH_EINVAL, "train.class_weight must be \"balanced\" or \"none\"");
    if (ch_calib_method_parse(cal, &o->calibration) != 0)
        return ch_error_set(err, CH_EINVAL,
                            "train.calibration must be \"platt\", \"isotonic\" or \"none\"");
    o->threshold_rule = ch_config_str(cfg, "train.threshold");
    o->select_by = ch_config_str(cfg, "train.select_by");
    o->revenue_column = ch_config_str(cfg, "value.revenue_column");
    if (o->revenue_column[0] == '\0')
        o->revenue_column = NULL;
    o->value.horizon_months = ch_config_num(cfg, "value.horizon_months");
    o->value.offer_cost = ch_config_num(cfg, "value.offer_cost");
    o->value.success_rate = ch_config_num(cfg, "value.success_rate");
    return CH_OK;
}
