/*
 * monitor.c -- drift, decay and label-free estimates against a model's
 * reference profile (include/ch/monitor.h, docs/monitoring.md).
 *
 * The reference is read once from the bundle's "profile" (profile_version
 * 2): for each input column either quantile edges with their counts, a
 * missing count and a sorted sample (numbers), or counts per category plus
 * "other" and "missing" (categories); for the score the same as a number
 * column, and the served threshold and test ROC AUC.
 *
 * A window streams rows into fixed counters, so that a million rows cost
 * a few binary searches each and no per-row allocation:
 *   - per number column: counts over the reference's quantile bins plus a
 *     missing bin (PSI, Jensen-Shannon), counts over the 2 n + 1 slots of
 *     the reference sample (ch_drift_ks_counts gives the same D as the
 *     whole sample would), and a reservoir of up to CH_MONITOR_SAMPLE_MAX
 *     values for the Wasserstein distance;
 *   - per category column: counts per category, other and missing;
 *   - probabilities, all of them (the estimate ranks them), and the
 *     labelled (label, probability) pairs in arrival order.
 * Judging follows docs/monitoring.md: a column has drifted when its PSI
 * reaches psi_alert, or when its adjusted p-value is below alpha and its
 * PSI reaches psi_warn, or (categories) when unseen values reach
 * unseen_alert; it is worth a look ("warn") when only one of the weaker
 * signs holds. A p-value alone never condemns a column: with a million
 * rows every test rejects for shifts far too small to matter.
 */
#include "ch/monitor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/drift.h"
#include "ch/json.h"
#include "ch/metrics.h"
#include "ch/schema.h"
#include "ch/split.h"

#define PROFILE_VERSION 2

/* ---- reference ----------------------------------------------------------- */

typedef struct rdist {
    double *edges; /* strictly increasing interior cut points */
    size_t n_edges;
    double *counts; /* n_edges + 1 bins, then the missing bin */
    double *sample; /* sorted */
    size_t n_sample;
    double *uniq;  /* the sample's distinct values, ascending */
    size_t *first; /* index in 'sample' of each one's first occurrence */
    size_t n_uniq;
    double sd; /* of the training values, for a scale-free Wasserstein */
} rdist;

typedef struct rcol {
    char *name;
    char *label;
    long j;  /* schema column */
    int cat; /* 1: categorical */
    rdist d; /* numbers */
    char **levels;
    size_t n_levels;
    double *cat_counts; /* n_levels, then other, then missing */
} rcol;

struct ch_monitor_ref {
    size_t n_schema;
    long *col_of; /* schema column -> index in 'cols', or -1 */
    rcol *cols;
    size_t n_cols;
    size_t ref_rows;
    char *target; /* the target column's name, or NULL */
    rdist score;
    double threshold;
    double auc;               /* test ROC AUC */
    ch_drift_perf score_perf; /* the estimate on the reference scores */
    int has_score_perf;
};

static void rdist_free(rdist *d)
{
    ch_free(d->edges);
    ch_free(d->counts);
    ch_free(d->sample);
    ch_free(d->uniq);
    ch_free(d->first);
}

/* The distinct values of the sample with where each starts, so that a
 * value's Kolmogorov-Smirnov slot is found among a few distinct values
 * (two for a yes/no column) rather than the whole sample. */
static ch_err index_sample(rdist *d, ch_error *err)
{
    d->uniq = ch_malloc_array(d->n_sample + 1, sizeof *d->uniq);
    d->first = ch_malloc_array(d->n_sample + 1, sizeof *d->first);
    if (d->uniq == NULL || d->first == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < d->n_sample; i++)
        if (i == 0 || d->sample[i] != d->sample[i - 1]) {
            d->uniq[d->n_uniq] = d->sample[i];
            d->first[d->n_uniq++] = i;
        }
    return CH_OK;
}

void ch_monitor_ref_free(ch_monitor_ref *r)
{
    if (r == NULL)
        return;
    for (size_t c = 0; c < r->n_cols; c++) {
        rcol *x = &r->cols[c];
        ch_free(x->name);
        ch_free(x->label);
        rdist_free(&x->d);
        for (size_t k = 0; k < x->n_levels; k++)
            ch_free(x->levels[k]);
        ch_free(x->levels);
        ch_free(x->cat_counts);
    }
    ch_free(r->cols);
    ch_free(r->col_of);
    ch_free(r->target);
    rdist_free(&r->score);
    ch_free(r);
}

void ch_monitor_opts_default(ch_monitor_opts *o)
{
    memset(o, 0, sizeof *o);
    o->psi_warn = 0.1;
    o->psi_alert = 0.25;
    o->alpha = 0.05;
    o->correction = CH_MONITOR_BH;
    o->unseen_alert = 0.01;
    o->min_rows = 200;
    o->min_labels = 200;
    o->auc_drop = 0.05;
    o->n_boot = 200;
    o->level = 0.95;
    o->n_segments = 10;
    o->seed = 42;
}

ch_err ch_monitor_opts_check(const ch_monitor_opts *o, ch_error *err)
{
    if (o == NULL)
        return ch_error_set(err, CH_EINVAL, "no monitoring options");
    if (!(o->psi_warn > 0 && o->psi_warn <= o->psi_alert && isfinite(o->psi_alert)))
        return ch_error_set(err, CH_EINVAL, "psi thresholds need 0 < psi_warn <= psi_alert");
    if (!(o->alpha > 0 && o->alpha < 1))
        return ch_error_set(err, CH_EINVAL, "alpha must be in (0, 1)");
    if (!(o->level > 0 && o->level < 1))
        return ch_error_set(err, CH_EINVAL, "the confidence level must be in (0, 1)");
    if (!(o->unseen_alert > 0 && o->unseen_alert <= 1))
        return ch_error_set(err, CH_EINVAL, "unseen_alert must be in (0, 1]");
    if (!(o->auc_drop >= 0 && o->auc_drop < 1))
        return ch_error_set(err, CH_EINVAL, "auc_drop must be in [0, 1)");
    if (o->n_boot < 10)
        return ch_error_set(err, CH_EINVAL, "n_boot must be at least 10");
    if (o->n_segments < 1 || o->n_segments > 100)
        return ch_error_set(err, CH_EINVAL, "n_segments must be 1 to 100");
    if (o->correction != CH_MONITOR_BH && o->correction != CH_MONITOR_HOLM)
        return ch_error_set(err, CH_EINVAL, "unknown multiple-testing correction");
    return CH_OK;
}

/* Reads a JSON array of numbers into a new array; '*n' its length. */
static ch_err num_array(const ch_json *a, double **out, size_t *n, const char *where, ch_error *err)
{
    size_t len = ch_json_len(a);
    double *v;
    if (ch_json_typeof(a) != CH_JSON_ARRAY)
        return ch_error_set(err, CH_EFORMAT, "profile: %s: expected an array", where);
    v = ch_malloc_array(len + 1, sizeof *v);
    if (v == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < len; i++)
        if (ch_json_num(ch_json_at(a, i), &v[i]) != 0 || !isfinite(v[i])) {
            ch_free(v);
            return ch_error_set(err, CH_EFORMAT, "profile: %s[%zu]: expected a number", where, i);
        }
    *out = v;
    *n = len;
    return CH_OK;
}

static int increasing(const double *v, size_t n, int strict)
{
    for (size_t i = 1; i < n; i++)
        if (strict ? !(v[i] > v[i - 1]) : !(v[i] >= v[i - 1]))
            return 0;
    return 1;
}

/* Reads "edges", "counts", "sample" (and "n_missing", "sd") of 'node'. */
static ch_err read_dist(const ch_json *node, rdist *d, const char *where, ch_error *err)
{
    double *counts = NULL;
    size_t n_counts = 0;
    double miss = 0;
    ch_err rc;
    char w[160];
    snprintf(w, sizeof w, "%s: edges", where);
    if ((rc = num_array(ch_json_get(node, "edges"), &d->edges, &d->n_edges, w, err)) != CH_OK)
        return rc;
    snprintf(w, sizeof w, "%s: counts", where);
    if ((rc = num_array(ch_json_get(node, "counts"), &counts, &n_counts, w, err)) != CH_OK)
        return rc;
    snprintf(w, sizeof w, "%s: sample", where);
    rc = num_array(ch_json_get(node, "sample"), &d->sample, &d->n_sample, w, err);
    if (rc != CH_OK) {
        ch_free(counts);
        return rc;
    }
    if (n_counts != d->n_edges + 1 || !increasing(d->edges, d->n_edges, 1) ||
        !increasing(d->sample, d->n_sample, 0) || d->n_sample == 0) {
        ch_free(counts);
        return ch_error_set(err, CH_EFORMAT,
                            "profile: %s: edges, counts and sample do not fit together", where);
    }
    if (ch_json_get(node, "n_missing") != NULL &&
        (ch_json_num(ch_json_get(node, "n_missing"), &miss) != 0 || miss < 0)) {
        ch_free(counts);
        return ch_error_set(err, CH_EFORMAT, "profile: %s: bad n_missing", where);
    }
    d->counts = ch_realloc(counts, (n_counts + 1) * sizeof *counts);
    if (d->counts == NULL) {
        ch_free(counts);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    d->counts[n_counts] = miss;
    for (size_t k = 0; k < n_counts; k++)
        if (!(d->counts[k] >= 0))
            return ch_error_set(err, CH_EFORMAT, "profile: %s: negative count", where);
    d->sd = NAN;
    if (ch_json_get(node, "sd") != NULL)
        ch_json_num(ch_json_get(node, "sd"), &d->sd);
    return index_sample(d, err);
}

static ch_err read_col(rcol *x, const ch_schema_col *sc, const ch_json *node, ch_error *err)
{
    ch_err rc;
    x->name = ch_strdup(sc->name);
    x->label = ch_strdup(sc->label != NULL ? sc->label : sc->name);
    if (x->name == NULL || x->label == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    if (node == NULL)
        return ch_error_set(err, CH_EFORMAT, "profile: column \"%s\" is missing", sc->name);
    x->cat = sc->kind == CH_KIND_CATEGORICAL;
    if (!x->cat)
        return read_dist(node, &x->d, sc->name, err);
    {
        const ch_json *counts = ch_json_get(node, "counts");
        double v;
        x->levels = ch_calloc(sc->n_categories + 1, sizeof *x->levels);
        x->cat_counts = ch_calloc(sc->n_categories + 2, sizeof *x->cat_counts);
        if (x->levels == NULL || x->cat_counts == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        if (ch_json_typeof(counts) != CH_JSON_OBJECT)
            return ch_error_set(err, CH_EFORMAT, "profile: %s: counts: expected an object",
                                sc->name);
        for (size_t k = 0; k < sc->n_categories; k++) {
            const ch_json *c = ch_json_get(counts, sc->categories[k]);
            x->levels[k] = ch_strdup(sc->categories[k]);
            if (x->levels[k] == NULL)
                return ch_error_set(err, CH_ENOMEM, "out of memory");
            x->n_levels = k + 1;
            if (c != NULL && (ch_json_num(c, &v) != 0 || !(v >= 0)))
                return ch_error_set(err, CH_EFORMAT, "profile: %s: counts: bad count for \"%s\"",
                                    sc->name, sc->categories[k]);
            x->cat_counts[k] = c != NULL ? v : 0;
        }
        rc = CH_OK;
        if (ch_json_num(ch_json_get(node, "n_other"), &x->cat_counts[x->n_levels]) != 0 ||
            ch_json_num(ch_json_get(node, "n_missing"), &x->cat_counts[x->n_levels + 1]) != 0)
            rc = ch_error_set(err, CH_EFORMAT, "profile: %s: n_other and n_missing are required",
                              sc->name);
        return rc;
    }
}

ch_err ch_monitor_ref_load(const ch_bundle *b, ch_monitor_ref **out, ch_error *err)
{
    const ch_json *prof = ch_bundle_section(b, "profile");
    const ch_json *cols = ch_json_get(prof, "columns");
    const ch_schema *s = ch_bundle_schema(b);
    ch_monitor_ref *r;
    double ver = 0;
    double rows = 0;
    ch_err rc;

    if (prof == NULL || ch_json_num(ch_json_get(prof, "profile_version"), &ver) != 0 ||
        ver < PROFILE_VERSION)
        return ch_error_set(err, CH_EFORMAT,
                            "this model's bundle has no monitoring profile (it was written before "
                            "profile_version %d): retrain the model to monitor it",
                            PROFILE_VERSION);
    if (ver != PROFILE_VERSION)
        return ch_error_set(err, CH_EFORMAT,
                            "the bundle's profile_version %.0f is newer than this build reads (%d)",
                            ver, PROFILE_VERSION);
    r = ch_calloc(1, sizeof *r);
    if (r == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    r->n_schema = ch_schema_n_cols(s);
    r->col_of = ch_malloc_array(r->n_schema + 1, sizeof *r->col_of);
    r->cols = ch_calloc(r->n_schema + 1, sizeof *r->cols);
    if (r->col_of == NULL || r->cols == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto fail;
    }
    ch_json_num(ch_json_get(prof, "rows"), &rows);
    if (ch_schema_target(s) >= 0 &&
        (r->target = ch_strdup(ch_schema_col_ref(s, (size_t)ch_schema_target(s))->name)) == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto fail;
    }
    r->ref_rows = rows > 0 ? (size_t)rows : 0;
    for (size_t j = 0; j < r->n_schema; j++) {
        const ch_schema_col *sc = ch_schema_col_ref(s, j);
        r->col_of[j] = -1;
        if (sc->kind == CH_KIND_ID || sc->kind == CH_KIND_TARGET)
            continue;
        r->cols[r->n_cols].j = (long)j;
        r->col_of[j] = (long)r->n_cols;
        rc = read_col(&r->cols[r->n_cols++], sc, ch_json_get(cols, sc->name), err);
        if (rc != CH_OK)
            goto fail;
    }
    rc = read_dist(ch_json_get(prof, "score"), &r->score, "score", err);
    if (rc != CH_OK)
        goto fail;
    r->threshold = ch_bundle_threshold(b);
    r->auc = NAN;
    ch_json_num(ch_json_get(ch_json_get(ch_bundle_section(b, "metrics"), "test"), "roc_auc"),
                &r->auc);
    r->has_score_perf = ch_drift_cbpe(r->score.sample, r->score.n_sample, r->threshold,
                                      &r->score_perf, NULL) == CH_OK;
    *out = r;
    return CH_OK;
fail:
    ch_monitor_ref_free(r);
    return rc;
}

double ch_monitor_ref_threshold(const ch_monitor_ref *r)
{
    return r->threshold;
}

double ch_monitor_ref_auc(const ch_monitor_ref *r)
{
    return r->auc;
}

/* ---- window -------------------------------------------------------------- */

typedef struct wdist {
    double *bins;  /* n_edges + 1 bins, then missing */
    double *slots; /* 2 n_sample + 1 Kolmogorov-Smirnov slots */
    double *res;   /* reservoir of values */
    size_t n_res;
    uint64_t seen; /* non-missing values offered to the reservoir */
} wdist;

typedef struct wcol {
    wdist d;
    double *cat; /* n_levels, other, missing */
} wcol;

struct ch_monitor_window {
    const ch_monitor_ref *ref;
    wcol *cols;
    wdist score;
    double *prob; /* every probability, in arrival order */
    size_t n_prob, cap_prob;
    double *lab_y, *lab_p; /* labelled rows, in arrival order */
    size_t n_lab, cap_lab;
    size_t rows;
    ch_rng rng;
};

static ch_err wdist_init(wdist *w, const rdist *r, ch_error *err)
{
    w->bins = ch_calloc(r->n_edges + 2, sizeof *w->bins);
    w->slots = ch_calloc(2 * r->n_sample + 1, sizeof *w->slots);
    if (w->bins == NULL || w->slots == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    return CH_OK;
}

static void wdist_free(wdist *w)
{
    ch_free(w->bins);
    ch_free(w->slots);
    ch_free(w->res);
}

void ch_monitor_window_free(ch_monitor_window *w)
{
    if (w == NULL)
        return;
    for (size_t c = 0; w->cols != NULL && c < w->ref->n_cols; c++) {
        wdist_free(&w->cols[c].d);
        ch_free(w->cols[c].cat);
    }
    ch_free(w->cols);
    wdist_free(&w->score);
    ch_free(w->prob);
    ch_free(w->lab_y);
    ch_free(w->lab_p);
    ch_free(w);
}

ch_err ch_monitor_window_new(const ch_monitor_ref *ref, uint64_t seed, ch_monitor_window **out,
                             ch_error *err)
{
    ch_monitor_window *w = ch_calloc(1, sizeof *w);
    ch_err rc = CH_OK;
    if (w == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    w->ref = ref;
    ch_rng_seed(&w->rng, seed);
    w->cols = ch_calloc(ref->n_cols + 1, sizeof *w->cols);
    if (w->cols == NULL)
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t c = 0; rc == CH_OK && c < ref->n_cols; c++) {
        const rcol *x = &ref->cols[c];
        if (x->cat) {
            w->cols[c].cat = ch_calloc(x->n_levels + 2, sizeof *w->cols[c].cat);
            if (w->cols[c].cat == NULL)
                rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        } else {
            rc = wdist_init(&w->cols[c].d, &x->d, err);
        }
    }
    if (rc == CH_OK)
        rc = wdist_init(&w->score, &ref->score, err);
    if (rc != CH_OK) {
        ch_monitor_window_free(w);
        return rc;
    }
    *out = w;
    return CH_OK;
}

/* Number of entries of sorted 'v' that are <= x (upper bound), and that
 * are < x (lower bound). Branch-free halving: each step is a compare and
 * a conditional move, so random values cost no mispredicted branches
 * (about half the time of the plain loop on a 2048-value sample). */
static size_t count_le(const double *v, size_t n, double x)
{
    const double *base = v;
    if (n == 0)
        return 0;
    while (n > 1) {
        size_t half = n / 2;
        base = base[half - 1] <= x ? base + half : base;
        n -= half;
    }
    return (size_t)(base - v) + (base[0] <= x);
}

static size_t count_lt(const double *v, size_t n, double x)
{
    const double *base = v;
    if (n == 0)
        return 0;
    while (n > 1) {
        size_t half = n / 2;
        base = base[half - 1] < x ? base + half : base;
        n -= half;
    }
    return (size_t)(base - v) + (base[0] < x);
}

/* A uniform index below 'n' (Lemire's multiply-shift: no division; its
 * bias, below n / 2^64, is far under anything a sample could show). */
static uint64_t below(ch_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)ch_rng_next(r) * n) >> 64);
}

/* Counts value 'x' (NaN: missing) of a number column or the score. The
 * slot layout is ch_drift_ks_bin_counts()'s. The reservoir keeps a
 * uniform sample of CH_MONITOR_SAMPLE_MAX values (Vitter's algorithm R). */
static ch_err wdist_add(ch_monitor_window *w, wdist *d, const rdist *r, double x, ch_error *err)
{
    size_t i;
    if (isnan(x)) {
        d->bins[r->n_edges + 1] += 1;
        return CH_OK;
    }
    d->bins[count_le(r->edges, r->n_edges, x)] += 1;
    /* The slot of ch_drift_ks_bin_counts(): with i the number of sample
     * values below x, 2i + 1 when x equals sample[i], else 2i. */
    i = count_lt(r->uniq, r->n_uniq, x);
    if (i < r->n_uniq)
        d->slots[r->uniq[i] == x ? 2 * r->first[i] + 1 : 2 * r->first[i]] += 1;
    else
        d->slots[2 * r->n_sample] += 1;
    d->seen++;
    if (d->n_res < CH_MONITOR_SAMPLE_MAX) {
        if (d->res == NULL) {
            d->res = ch_malloc_array(CH_MONITOR_SAMPLE_MAX, sizeof *d->res);
            if (d->res == NULL)
                return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
        d->res[d->n_res++] = x;
    } else {
        uint64_t k = below(&w->rng, d->seen);
        if (k < CH_MONITOR_SAMPLE_MAX)
            d->res[k] = x;
    }
    return CH_OK;
}

static ch_err push(double **v, size_t *n, size_t *cap, double x, ch_error *err)
{
    if (*n == *cap) {
        size_t nc = *cap == 0 ? 1024 : *cap * 2;
        double *nv = ch_realloc(*v, nc * sizeof *nv);
        if (nv == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = x;
    return CH_OK;
}

/* Appends a labelled row to the parallel arrays lab_y / lab_p. */
static ch_err push_label(ch_monitor_window *w, double y, double p, ch_error *err)
{
    if (w->n_lab == w->cap_lab) {
        size_t nc = w->cap_lab == 0 ? 1024 : w->cap_lab * 2;
        double *ny = ch_realloc(w->lab_y, nc * sizeof *ny);
        double *np;
        if (ny == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        w->lab_y = ny; /* larger than cap_lab says: harmless, grown again next time */
        np = ch_realloc(w->lab_p, nc * sizeof *np);
        if (np == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        w->lab_p = np;
        w->cap_lab = nc;
    }
    w->lab_y[w->n_lab] = y;
    w->lab_p[w->n_lab++] = p;
    return CH_OK;
}

/* Adds the score part of a row. */
static ch_err add_outcome(ch_monitor_window *w, double probability, int label, ch_error *err)
{
    ch_err rc;
    if (isnan(probability))
        return CH_OK;
    if ((rc = wdist_add(w, &w->score, &w->ref->score, probability, err)) != CH_OK ||
        (rc = push(&w->prob, &w->n_prob, &w->cap_prob, probability, err)) != CH_OK)
        return rc;
    return label < 0 ? CH_OK : push_label(w, (double)label, probability, err);
}

ch_err ch_monitor_window_add(ch_monitor_window *w, const double *num, const int32_t *code,
                             double probability, int label, ch_error *err)
{
    const ch_monitor_ref *r = w->ref;
    ch_err rc;
    if (!(isnan(probability) || (probability >= 0 && probability <= 1)))
        return ch_error_set(err, CH_EINVAL, "probability %g is outside [0, 1]", probability);
    if (label < -1 || label > 1)
        return ch_error_set(err, CH_EINVAL, "label must be 0, 1 or -1 (unknown), not %d", label);
    for (size_t c = 0; num != NULL && code != NULL && c < r->n_cols; c++) {
        const rcol *x = &r->cols[c];
        if (x->cat) {
            int32_t k = code[x->j];
            size_t bin = k >= 0 && (size_t)k < x->n_levels ? (size_t)k
                         : k == -1                         ? x->n_levels + 1
                                                           : x->n_levels;
            w->cols[c].cat[bin] += 1;
        } else if ((rc = wdist_add(w, &w->cols[c].d, &x->d, num[x->j], err)) != CH_OK) {
            return rc;
        }
    }
    if ((rc = add_outcome(w, probability, label, err)) != CH_OK)
        return rc;
    w->rows++;
    return CH_OK;
}

ch_err ch_monitor_window_add_frame(ch_monitor_window *w, const ch_frame *f, const double *prob,
                                   ch_error *err)
{
    const ch_monitor_ref *r = w->ref;
    size_t n = ch_frame_n_rows(f);
    long *fc = ch_malloc_array(r->n_cols + 1, sizeof *fc);
    long target = -1;
    ch_err rc = CH_OK;
    if (fc == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t c = 0; c < r->n_cols; c++) {
        fc[c] = ch_frame_find(f, r->cols[c].name);
        if (fc[c] < 0 ||
            (ch_frame_col_type(f, (size_t)fc[c]) == CH_COL_CAT) != (r->cols[c].cat != 0)) {
            rc = ch_error_set(err, CH_EINVAL, "the data has no column \"%s\" of the model's kind",
                              r->cols[c].name);
            goto done;
        }
    }
    if (r->target != NULL)
        target = ch_frame_find(f, r->target);
    for (size_t i = 0; i < n && rc == CH_OK; i++) {
        for (size_t c = 0; c < r->n_cols && rc == CH_OK; c++) {
            const rcol *x = &r->cols[c];
            if (x->cat) {
                int32_t k = ch_frame_codes(f, (size_t)fc[c])[i];
                size_t bin = k >= 0 && (size_t)k < x->n_levels ? (size_t)k
                             : k < 0                           ? x->n_levels + 1
                                                               : x->n_levels;
                w->cols[c].cat[bin] += 1;
            } else {
                rc = wdist_add(w, &w->cols[c].d, &x->d, ch_frame_num(f, (size_t)fc[c])[i], err);
            }
        }
        if (rc == CH_OK && prob != NULL) {
            double y = target >= 0 ? ch_frame_num(f, (size_t)target)[i] : NAN;
            rc = add_outcome(w, prob[i], isnan(y) ? -1 : (int)y, err);
        }
        if (rc == CH_OK)
            w->rows++;
    }
done:
    ch_free(fc);
    return rc;
}

size_t ch_monitor_window_rows(const ch_monitor_window *w)
{
    return w->rows;
}

size_t ch_monitor_window_labels(const ch_monitor_window *w)
{
    return w->n_lab;
}

/* ---- drift ---------------------------------------------------------------- */

/* One column's (or the score's) measures. */
typedef struct measure {
    double psi, js, wasserstein, wasserstein_sd;
    ch_drift_test test;
    double p_adj;
    double miss_ref, miss_cur, unseen;
    size_t n;   /* current rows counted */
    int status; /* 0 ok, 1 warn, 2 drift */
} measure;

static const char *const status_names[] = {"ok", "warn", "drift"};

/* PSI and Jensen-Shannon over 'k' bins; zero-count sides are undefined. */
static ch_err psi_js(const double *ref, const double *cur, size_t k, measure *m, ch_error *err)
{
    double sr = 0;
    double sc = 0;
    ch_err rc;
    for (size_t i = 0; i < k; i++) {
        sr += ref[i];
        sc += cur[i];
    }
    m->psi = m->js = NAN;
    if (sr <= 0 || sc <= 0)
        return CH_OK;
    if ((rc = ch_drift_psi(ref, cur, k, CH_DRIFT_PSI_EPS, &m->psi, err)) != CH_OK)
        return rc;
    return ch_drift_js(ref, cur, k, &m->js, err);
}

static ch_err measure_dist(const rdist *r, const wdist *d, measure *m, ch_error *err)
{
    size_t nb = r->n_edges + 1;
    double ref_total = 0;
    ch_err rc;
    memset(m, 0, sizeof *m);
    for (size_t k = 0; k <= nb; k++)
        ref_total += r->counts[k];
    m->n = (size_t)d->seen + (size_t)d->bins[nb];
    m->miss_ref = ref_total > 0 ? r->counts[nb] / ref_total : NAN;
    m->miss_cur = m->n > 0 ? d->bins[nb] / (double)m->n : NAN;
    m->unseen = NAN;
    m->p_adj = NAN;
    m->test.p = NAN;
    m->test.stat = NAN;
    m->wasserstein = m->wasserstein_sd = NAN;
    if ((rc = psi_js(r->counts, d->bins, nb + 1, m, err)) != CH_OK)
        return rc;
    if (d->seen == 0)
        return CH_OK;
    rc = ch_drift_ks_counts(r->sample, r->n_sample, d->slots, &m->test, err);
    if (rc == CH_EDATA) {
        m->test.p = NAN;
        rc = CH_OK;
    }
    if (rc != CH_OK)
        return rc;
    {
        double *v = ch_malloc_array(d->n_res + 1, sizeof *v);
        if (v == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        memcpy(v, d->res, d->n_res * sizeof *v);
        rc = ch_drift_sort(v, d->n_res, err);
        if (rc == CH_OK)
            rc = ch_drift_wasserstein(r->sample, r->n_sample, v, d->n_res, &m->wasserstein, err);
        ch_free(v);
        if (rc != CH_OK)
            return rc;
        if (r->sd > 0)
            m->wasserstein_sd = m->wasserstein / r->sd;
    }
    return CH_OK;
}

static ch_err measure_cat(const rcol *x, const wcol *c, measure *m, ch_error *err)
{
    size_t k = x->n_levels + 2;
    double ref_total = 0;
    ch_err rc;
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < k; i++) {
        ref_total += x->cat_counts[i];
        m->n += (size_t)c->cat[i];
    }
    m->miss_ref = ref_total > 0 ? x->cat_counts[k - 1] / ref_total : NAN;
    m->miss_cur = m->n > 0 ? c->cat[k - 1] / (double)m->n : NAN;
    m->unseen = m->n > 0 ? c->cat[k - 2] / (double)m->n : NAN;
    m->wasserstein = m->wasserstein_sd = NAN;
    m->p_adj = NAN;
    m->test.stat = m->test.p = NAN;
    if ((rc = psi_js(x->cat_counts, c->cat, k, m, err)) != CH_OK || m->n == 0 || ref_total <= 0)
        return rc;
    return ch_drift_chi2(x->cat_counts, c->cat, k, &m->test, err);
}

static int judge(const measure *m, const ch_monitor_opts *o)
{
    int sig = !isnan(m->p_adj) && m->p_adj < o->alpha;
    if (isnan(m->psi))
        return 0;
    if (m->psi >= o->psi_alert || (sig && m->psi >= o->psi_warn) ||
        (!isnan(m->unseen) && m->unseen >= o->unseen_alert))
        return 2;
    return m->psi >= o->psi_warn || sig ? 1 : 0;
}

/* Measures every column and the score, adjusts the p-values and judges. */
static void pace(const ch_monitor_opts *o)
{
    if (o->pace != NULL)
        o->pace(o->pace_ctx);
}

static ch_err measure_all(const ch_monitor_window *w, const ch_monitor_opts *o, measure *cols,
                          measure *score, ch_error *err)
{
    const ch_monitor_ref *r = w->ref;
    double *p = ch_malloc_array(r->n_cols + 2, sizeof *p);
    size_t *at = ch_malloc_array(r->n_cols + 2, sizeof *at);
    size_t n_p = 0;
    ch_err rc = CH_OK;
    if (p == NULL || at == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t c = 0; c < r->n_cols && rc == CH_OK; c++) {
        pace(o);
        rc = r->cols[c].cat ? measure_cat(&r->cols[c], &w->cols[c], &cols[c], err)
                            : measure_dist(&r->cols[c].d, &w->cols[c].d, &cols[c], err);
        if (rc == CH_OK && !isnan(cols[c].test.p)) {
            p[n_p] = cols[c].test.p;
            at[n_p++] = c;
        }
    }
    if (rc == CH_OK)
        rc = measure_dist(&r->score, &w->score, score, err);
    if (rc == CH_OK && n_p > 0) {
        rc = o->correction == CH_MONITOR_HOLM ? ch_drift_holm(p, n_p, p, err)
                                              : ch_drift_bh(p, n_p, p, err);
        for (size_t i = 0; rc == CH_OK && i < n_p; i++)
            cols[at[i]].p_adj = p[i];
    }
    if (rc != CH_OK)
        goto done;                /* a measure may be unset: nothing to judge */
    score->p_adj = score->test.p; /* one test of its own */
    for (size_t c = 0; c < r->n_cols; c++)
        cols[c].status = judge(&cols[c], o);
    score->status = judge(score, o);
done:
    ch_free(p);
    ch_free(at);
    return rc;
}

static void json_num_or_null(ch_buf *b, double v)
{
    if (isfinite(v))
        ch_buf_json_num(b, v);
    else
        ch_buf_puts(b, "null");
}

static void key_num(ch_buf *b, const char *key, double v)
{
    ch_buf_printf(b, ", \"%s\": ", key);
    json_num_or_null(b, v);
}

/* Shares of 'v' (k entries) as a JSON array. */
static void shares(ch_buf *b, const double *v, size_t k)
{
    double s = 0;
    for (size_t i = 0; i < k; i++)
        s += v[i];
    ch_buf_putc(b, '[');
    for (size_t i = 0; i < k; i++) {
        ch_buf_puts(b, i ? ", " : "");
        json_num_or_null(b, s > 0 ? v[i] / s : NAN);
    }
    ch_buf_putc(b, ']');
}

static void write_measure(ch_buf *b, const measure *m, const char *test_name)
{
    ch_buf_printf(b, ", \"rows\": %zu, \"status\": \"%s\"", m->n, status_names[m->status]);
    key_num(b, "psi", m->psi);
    key_num(b, "js", m->js);
    ch_buf_printf(b, ", \"test\": {\"name\": \"%s\"", test_name);
    key_num(b, "statistic", m->test.stat);
    if (strcmp(test_name, "chi2") == 0)
        ch_buf_printf(b, ", \"dof\": %zu", m->test.dof);
    key_num(b, "p", m->test.p);
    key_num(b, "p_adjusted", m->p_adj);
    ch_buf_putc(b, '}');
    if (strcmp(test_name, "ks") == 0) {
        key_num(b, "wasserstein", m->wasserstein);
        key_num(b, "wasserstein_sd", m->wasserstein_sd);
    }
    ch_buf_puts(b, ", \"missing_share\": {\"reference\": ");
    json_num_or_null(b, m->miss_ref);
    ch_buf_puts(b, ", \"current\": ");
    json_num_or_null(b, m->miss_cur);
    ch_buf_putc(b, '}');
    if (strcmp(test_name, "chi2") == 0)
        key_num(b, "unseen_share", m->unseen);
}

/* Bin labels and both sides' shares of a number distribution. */
static void write_dist_bins(ch_buf *b, const rdist *r, const wdist *d)
{
    char t[96];
    size_t nb = r->n_edges + 1;
    ch_buf_puts(b, ", \"bins\": {\"labels\": [");
    for (size_t k = 0; k < nb; k++) {
        char lo[40];
        char hi[40];
        if (k > 0)
            ch_fmt_double(lo, r->edges[k - 1]);
        if (k < r->n_edges)
            ch_fmt_double(hi, r->edges[k]);
        if (nb == 1)
            snprintf(t, sizeof t, "all");
        else if (k == 0)
            snprintf(t, sizeof t, "< %s", hi);
        else if (k == r->n_edges)
            snprintf(t, sizeof t, ">= %s", lo);
        else
            snprintf(t, sizeof t, "%s to %s", lo, hi);
        ch_buf_puts(b, k ? ", " : "");
        ch_buf_json_str(b, t, strlen(t));
    }
    ch_buf_puts(b, ", \"(missing)\"], \"reference\": ");
    shares(b, r->counts, nb + 1);
    ch_buf_puts(b, ", \"current\": ");
    shares(b, d->bins, nb + 1);
    ch_buf_putc(b, '}');
}

static void write_cat_bins(ch_buf *b, const rcol *x, const wcol *c)
{
    ch_buf_puts(b, ", \"bins\": {\"labels\": [");
    for (size_t k = 0; k < x->n_levels; k++) {
        ch_buf_puts(b, k ? ", " : "");
        ch_buf_json_str(b, x->levels[k], strlen(x->levels[k]));
    }
    ch_buf_puts(b, x->n_levels ? ", " : "");
    ch_buf_puts(b, "\"(other)\", \"(missing)\"], \"reference\": ");
    shares(b, x->cat_counts, x->n_levels + 2);
    ch_buf_puts(b, ", \"current\": ");
    shares(b, c->cat, x->n_levels + 2);
    ch_buf_putc(b, '}');
}

static void summary_init(ch_monitor_summary *sum, const ch_monitor_window *w)
{
    memset(sum, 0, sizeof *sum);
    sum->rows = w->rows;
    sum->labels = w->n_lab;
    sum->max_psi = sum->score_psi = NAN;
    sum->reference_auc = w->ref->auc;
    sum->estimated_auc = sum->realized_auc = NAN;
    sum->realized_lo = sum->realized_hi = NAN;
    snprintf(sum->diagnosis, sizeof sum->diagnosis, "unknown");
}

/* Drift without the document: for the estimate's diagnosis. */
static ch_err drift_counts(const ch_monitor_window *w, const ch_monitor_opts *o,
                           ch_monitor_summary *sum, measure *cols, measure *score, ch_error *err)
{
    ch_err rc = measure_all(w, o, cols, score, err);
    if (rc != CH_OK)
        return rc;
    for (size_t c = 0; c < w->ref->n_cols; c++) {
        sum->n_drifted += cols[c].status == 2;
        if (!isnan(cols[c].psi) && (isnan(sum->max_psi) || cols[c].psi > sum->max_psi))
            sum->max_psi = cols[c].psi;
    }
    sum->score_psi = score->psi;
    sum->score_drifted = score->status == 2;
    return CH_OK;
}

ch_err ch_monitor_drift(const ch_monitor_window *w, const ch_monitor_opts *o, ch_buf *b,
                        ch_monitor_summary *sum, ch_error *err)
{
    const ch_monitor_ref *r = w->ref;
    ch_monitor_summary tmp;
    measure *cols = NULL;
    measure score;
    ch_err rc;
    if ((rc = ch_monitor_opts_check(o, err)) != CH_OK)
        return rc;
    if (sum == NULL)
        sum = &tmp;
    summary_init(sum, w);
    ch_buf_printf(
        b,
        "{\"kind\": \"drift\", \"rows\": %zu, \"reference_rows\": %zu, \"min_rows\": %zu, "
        "\"correction\": \"%s\"",
        w->rows, r->ref_rows, o->min_rows, o->correction == CH_MONITOR_HOLM ? "holm" : "bh");
    key_num(b, "alpha", o->alpha);
    key_num(b, "psi_warn", o->psi_warn);
    key_num(b, "psi_alert", o->psi_alert);
    key_num(b, "unseen_alert", o->unseen_alert);
    if (w->rows < o->min_rows) {
        ch_buf_puts(b, ", \"status\": \"insufficient_data\", \"drifted\": [], \"columns\": []}");
        return ch_buf_status(b);
    }
    cols = ch_calloc(r->n_cols + 1, sizeof *cols);
    if (cols == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    rc = drift_counts(w, o, sum, cols, &score, err);
    if (rc != CH_OK) {
        ch_free(cols);
        return rc;
    }
    ch_buf_printf(b, ", \"status\": \"%s\", \"drifted\": [",
                  sum->n_drifted > 0 || sum->score_drifted ? "drift" : "ok");
    for (size_t c = 0, first = 1; c < r->n_cols; c++)
        if (cols[c].status == 2) {
            ch_buf_puts(b, first ? "" : ", ");
            ch_buf_json_str(b, r->cols[c].name, strlen(r->cols[c].name));
            first = 0;
        }
    ch_buf_puts(b, "], \"columns\": [");
    for (size_t c = 0; c < r->n_cols; c++) {
        const rcol *x = &r->cols[c];
        ch_buf_puts(b, c ? ",\n  {\"name\": " : "\n  {\"name\": ");
        ch_buf_json_str(b, x->name, strlen(x->name));
        ch_buf_puts(b, ", \"label\": ");
        ch_buf_json_str(b, x->label, strlen(x->label));
        ch_buf_printf(b, ", \"kind\": \"%s\"", x->cat ? "categorical" : "numeric");
        write_measure(b, &cols[c], x->cat ? "chi2" : "ks");
        if (x->cat)
            write_cat_bins(b, x, &w->cols[c]);
        else
            write_dist_bins(b, &x->d, &w->cols[c].d);
        ch_buf_putc(b, '}');
    }
    ch_buf_puts(b, "],\n \"score\": {\"name\": \"probability\", \"kind\": \"score\"");
    write_measure(b, &score, "ks");
    write_dist_bins(b, &r->score, &w->score);
    ch_buf_puts(b, "}}");
    ch_free(cols);
    return ch_buf_status(b);
}

/* ---- decay ----------------------------------------------------------------- */

static const struct {
    const char *name;
    ch_drift_metric m;
} decay_metrics[] = {{"roc_auc", CH_DRIFT_ROC_AUC},
                     {"pr_auc", CH_DRIFT_PR_AUC},
                     {"brier", CH_DRIFT_BRIER},
                     {"log_loss", CH_DRIFT_LOG_LOSS},
                     {"f1", CH_DRIFT_F1}};
#define N_DECAY_METRICS 5

/* The value of 'm' on (y, p); NaN when undefined. */
static ch_err metric_value(ch_drift_metric m, const double *y, const double *p, size_t n,
                           double threshold, double *out, ch_error *err)
{
    ch_confusion cm;
    ch_err rc;
    switch (m) {
    case CH_DRIFT_ROC_AUC:
        rc = ch_metric_roc_auc(y, p, NULL, n, out, err);
        break;
    case CH_DRIFT_PR_AUC:
        rc = ch_metric_pr_auc(y, p, NULL, n, out, err);
        break;
    case CH_DRIFT_BRIER:
        rc = ch_metric_brier(y, p, NULL, n, out, err);
        break;
    case CH_DRIFT_LOG_LOSS:
        rc = ch_metric_log_loss(y, p, NULL, n, out, err);
        break;
    default:
        rc = ch_metric_confusion(y, p, NULL, n, threshold, &cm, err);
        if (rc == CH_OK)
            *out = cm.f1;
        break;
    }
    if (rc == CH_EDATA) {
        *out = NAN;
        return CH_OK;
    }
    return rc;
}

/* Rows a bootstrap replicate draws at most. Past it, replicates of
 * BOOT_MAX rows are drawn and their spread around the full-sample value
 * is scaled by sqrt(BOOT_MAX / n) (the m-out-of-n bootstrap for
 * statistics that settle at the 1/sqrt(n) rate, as these do): a window of
 * a million labels then costs what 50,000 do, with the interval it would
 * have had. */
#define BOOT_MAX 50000

/* The bootstrap interval of 'm' around 'value' into '*lo', '*hi'. */
static ch_err boot_ci(ch_drift_metric m, const double *y, const double *p, size_t n,
                      double threshold, const ch_monitor_opts *o, double value, double *lo,
                      double *hi, ch_error *err)
{
    size_t skipped = 0;
    ch_err rc;
    *lo = *hi = NAN;
    pace(o);
    if (n <= BOOT_MAX) {
        rc = ch_drift_bootstrap(m, y, p, n, threshold, o->n_boot, o->seed, o->level, lo, hi,
                                &skipped, err);
        return rc == CH_EDATA ? CH_OK : rc;
    }
    {
        /* A seeded subsample of BOOT_MAX rows (a partial Fisher-Yates over
         * row indices) stands for the window; the replicates resample it. */
        double *sy = ch_malloc_array(BOOT_MAX, sizeof *sy);
        double *sp = ch_malloc_array(BOOT_MAX, sizeof *sp);
        size_t *idx = ch_malloc_array(n, sizeof *idx);
        double sub_value = NAN;
        double scale = sqrt((double)BOOT_MAX / (double)n);
        ch_rng r;
        if (sy == NULL || sp == NULL || idx == NULL) {
            ch_free(sy);
            ch_free(sp);
            ch_free(idx);
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
        ch_rng_seed(&r, o->seed ^ 0x5b0075);
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        for (size_t i = 0; i < BOOT_MAX; i++) {
            size_t j = i + (size_t)ch_rng_below(&r, n - i);
            size_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
            sy[i] = y[idx[i]];
            sp[i] = p[idx[i]];
        }
        rc = metric_value(m, sy, sp, BOOT_MAX, threshold, &sub_value, err);
        if (rc == CH_OK && !isnan(sub_value)) {
            rc = ch_drift_bootstrap(m, sy, sp, BOOT_MAX, threshold, o->n_boot, o->seed, o->level,
                                    lo, hi, &skipped, err);
            if (rc == CH_OK) {
                *lo = value + (*lo - sub_value) * scale;
                *hi = value + (*hi - sub_value) * scale;
            } else if (rc == CH_EDATA) {
                rc = CH_OK;
            }
        }
        ch_free(sy);
        ch_free(sp);
        ch_free(idx);
        return rc;
    }
}

/* {"value", "lo", "hi"} of metric 'm' on (y, p). */
static ch_err metric_ci(ch_buf *b, ch_drift_metric m, const double *y, const double *p, size_t n,
                        const ch_monitor_opts *o, double threshold, double *value, double *lo,
                        double *hi, ch_error *err)
{
    ch_err rc = metric_value(m, y, p, n, threshold, value, err);
    *lo = *hi = NAN;
    if (rc != CH_OK)
        return rc;
    if (!isnan(*value) && (rc = boot_ci(m, y, p, n, threshold, o, *value, lo, hi, err)) != CH_OK)
        return rc;
    ch_buf_puts(b, "{\"value\": ");
    json_num_or_null(b, *value);
    key_num(b, "lo", *lo);
    key_num(b, "hi", *hi);
    ch_buf_putc(b, '}');
    return CH_OK;
}

/* Realized metrics of the labelled rows, into 'b' as "metrics": {...} and
 * "segments": [...]; the overall ROC AUC and its interval in 'auc'. */
static ch_err realized(const ch_monitor_window *w, const ch_monitor_opts *o, ch_buf *b,
                       double auc[3], ch_error *err)
{
    double t = w->ref->threshold;
    size_t n = w->n_lab;
    size_t n_seg = o->n_segments;
    ch_err rc = CH_OK;
    ch_buf_puts(b, ", \"metrics\": {");
    for (size_t k = 0; k < N_DECAY_METRICS && rc == CH_OK; k++) {
        double v, lo, hi;
        ch_buf_printf(b, "%s\"%s\": ", k ? ", " : "", decay_metrics[k].name);
        rc = metric_ci(b, decay_metrics[k].m, w->lab_y, w->lab_p, n, o, t, &v, &lo, &hi, err);
        if (k == 0) {
            auc[0] = v;
            auc[1] = lo;
            auc[2] = hi;
        }
    }
    ch_buf_puts(b, "}, \"segments\": [");
    if (n / n_seg < 50)
        n_seg = n / 50 > 0 ? n / 50 : 1; /* each segment needs a few dozen labels */
    for (size_t s = 0; s < n_seg && rc == CH_OK; s++) {
        size_t from = n * s / n_seg;
        size_t to = n * (s + 1) / n_seg;
        double v, lo, hi;
        ch_buf_printf(b, "%s{\"from\": %zu, \"to\": %zu, \"labels\": %zu, \"roc_auc\": ",
                      s ? ", " : "", from, to, to - from);
        rc = metric_ci(b, CH_DRIFT_ROC_AUC, w->lab_y + from, w->lab_p + from, to - from, o, t, &v,
                       &lo, &hi, err);
        ch_buf_putc(b, '}');
    }
    ch_buf_putc(b, ']');
    return rc;
}

ch_err ch_monitor_decay(const ch_monitor_window *w, const ch_monitor_opts *o, ch_buf *b,
                        ch_monitor_summary *sum, ch_error *err)
{
    ch_monitor_summary tmp;
    double auc[3] = {NAN, NAN, NAN};
    double pos = 0;
    ch_err rc;
    if ((rc = ch_monitor_opts_check(o, err)) != CH_OK)
        return rc;
    if (sum == NULL)
        sum = &tmp;
    summary_init(sum, w);
    for (size_t i = 0; i < w->n_lab; i++)
        pos += w->lab_y[i];
    ch_buf_printf(b,
                  "{\"kind\": \"decay\", \"labels\": %zu, \"positives\": %.0f, \"min_labels\": %zu",
                  w->n_lab, pos, o->min_labels);
    key_num(b, "reference_roc_auc", w->ref->auc);
    key_num(b, "threshold", w->ref->threshold);
    key_num(b, "auc_drop", o->auc_drop);
    key_num(b, "level", o->level);
    if (w->n_lab < o->min_labels || pos == 0 || pos == (double)w->n_lab) {
        ch_buf_puts(b, ", \"status\": \"insufficient_labels\", \"decayed\": false");
        if (w->n_lab > 0 && (rc = realized(w, o, b, auc, err)) != CH_OK)
            return rc;
        ch_buf_putc(b, '}');
        return ch_buf_status(b);
    }
    if ((rc = realized(w, o, b, auc, err)) != CH_OK)
        return rc;
    sum->realized_auc = auc[0];
    sum->realized_lo = auc[1];
    sum->realized_hi = auc[2];
    /* Decayed: the realized AUC is more than auc_drop below the reference,
     * and its interval does not reach the reference either. */
    sum->decayed =
        !isnan(w->ref->auc) && auc[0] < w->ref->auc - o->auc_drop && !(auc[2] >= w->ref->auc);
    ch_buf_printf(b, ", \"status\": \"%s\", \"decayed\": %s", sum->decayed ? "decayed" : "ok",
                  sum->decayed ? "true" : "false");
    ch_buf_putc(b, '}');
    return ch_buf_status(b);
}

/* ---- estimate -------------------------------------------------------------- */

static void write_perf(ch_buf *b, const ch_drift_perf *p)
{
    ch_buf_puts(b, "{\"roc_auc\": ");
    json_num_or_null(b, p->roc_auc);
    key_num(b, "f1", p->f1);
    key_num(b, "accuracy", p->accuracy);
    key_num(b, "precision", p->precision);
    key_num(b, "recall", p->recall);
    ch_buf_putc(b, '}');
}

static ch_err cbpe(const double *p, size_t n, double t, ch_drift_perf *out, ch_error *err)
{
    ch_err rc = ch_drift_cbpe(p, n, t, out, err);
    if (rc == CH_EDATA) {
        memset(out, 0, sizeof *out);
        out->roc_auc = out->f1 = out->accuracy = out->precision = out->recall = NAN;
        return CH_OK;
    }
    return rc;
}

ch_err ch_monitor_estimate(const ch_monitor_window *w, const ch_monitor_opts *o, ch_buf *b,
                           ch_monitor_summary *sum, ch_error *err)
{
    const ch_monitor_ref *r = w->ref;
    ch_monitor_summary tmp;
    ch_drift_perf est;
    measure *cols = NULL;
    measure score;
    double t = r->threshold;
    double ref_est = r->has_score_perf ? r->score_perf.roc_auc : NAN;
    const char *why;
    ch_err rc;
    if ((rc = ch_monitor_opts_check(o, err)) != CH_OK)
        return rc;
    if (sum == NULL)
        sum = &tmp;
    summary_init(sum, w);
    ch_buf_printf(b, "{\"kind\": \"estimate\", \"rows\": %zu, \"min_rows\": %zu", w->n_prob,
                  o->min_rows);
    key_num(b, "threshold", t);
    key_num(b, "reference_roc_auc", r->auc);
    key_num(b, "auc_drop", o->auc_drop);
    ch_buf_puts(b, ", \"reference_estimate\": ");
    if (r->has_score_perf)
        write_perf(b, &r->score_perf);
    else
        ch_buf_puts(b, "null");
    if (w->n_prob < o->min_rows) {
        ch_buf_puts(b, ", \"status\": \"insufficient_data\"}");
        return ch_buf_status(b);
    }
    if ((rc = cbpe(w->prob, w->n_prob, t, &est, err)) != CH_OK)
        return rc;
    sum->estimated_auc = est.roc_auc;
    sum->estimate_dropped = !isnan(ref_est) && est.roc_auc < ref_est - o->auc_drop;
    ch_buf_printf(
        b, ", \"status\": \"%s\", \"estimated\": ", sum->estimate_dropped ? "dropped" : "ok");
    write_perf(b, &est);
    ch_buf_puts(b, ", \"segments\": [");
    {
        size_t n = w->n_prob;
        size_t n_seg = o->n_segments;
        if (n / n_seg < 100)
            n_seg = n / 100 > 0 ? n / 100 : 1;
        for (size_t s = 0; s < n_seg; s++) {
            ch_drift_perf sp;
            size_t from = n * s / n_seg;
            size_t to = n * (s + 1) / n_seg;
            if ((rc = cbpe(w->prob + from, to - from, t, &sp, err)) != CH_OK)
                return rc;
            ch_buf_printf(b, "%s{\"from\": %zu, \"to\": %zu, \"estimated\": ", s ? ", " : "", from,
                          to);
            write_perf(b, &sp);
            ch_buf_putc(b, '}');
        }
    }
    ch_buf_putc(b, ']');

    /* Diagnosis: inputs moved or not (drift), and whether the labels, when
     * there are enough, fall short of what the scores promise. */
    cols = ch_calloc(r->n_cols + 1, sizeof *cols);
    if (cols == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    if (w->rows >= o->min_rows)
        rc = drift_counts(w, o, sum, cols, &score, err);
    ch_free(cols);
    if (rc != CH_OK)
        return rc;
    {
        int moved = sum->n_drifted > 0 || sum->score_drifted;
        double pos = 0;
        for (size_t i = 0; i < w->n_lab; i++)
            pos += w->lab_y[i];
        if (w->n_lab >= o->min_labels && pos > 0 && pos < (double)w->n_lab) {
            double auc[3];
            ch_drift_perf at_labels;
            ch_buf_printf(b, ", \"realized\": {\"labels\": %zu, \"roc_auc\": ", w->n_lab);
            rc = metric_ci(b, CH_DRIFT_ROC_AUC, w->lab_y, w->lab_p, w->n_lab, o, t, &auc[0],
                           &auc[1], &auc[2], err);
            if (rc != CH_OK)
                return rc;
            /* The estimate over the labelled rows themselves, so the gap
             * compares like with like. */
            if ((rc = cbpe(w->lab_p, w->n_lab, t, &at_labels, err)) != CH_OK)
                return rc;
            ch_buf_puts(b, ", \"estimated_on_labelled\": ");
            write_perf(b, &at_labels);
            key_num(b, "gap", auc[0] - at_labels.roc_auc);
            ch_buf_putc(b, '}');
            sum->realized_auc = auc[0];
            sum->realized_lo = auc[1];
            sum->realized_hi = auc[2];
            if (auc[2] < at_labels.roc_auc && at_labels.roc_auc - auc[0] > o->auc_drop / 2) {
                snprintf(sum->diagnosis, sizeof sum->diagnosis, "concept_drift");
                why = "the labels fall short of what the calibrated scores promise: the relation "
                      "between the inputs and churn has changed; retrain on recent labels";
            } else if (moved) {
                snprintf(sum->diagnosis, sizeof sum->diagnosis, "covariate_shift");
                why = "the inputs moved, and the realized performance matches the estimate: the "
                      "model still describes churn for these customers";
            } else {
                snprintf(sum->diagnosis, sizeof sum->diagnosis, "stable");
                why = "no input drift, and the realized performance matches the estimate";
            }
        } else {
            snprintf(sum->diagnosis, sizeof sum->diagnosis, "%s",
                     moved ? "covariate_shift" : "stable");
            why = moved ? "the inputs moved; without enough labels, a change in how inputs relate "
                          "to churn (concept drift) cannot be seen yet"
                        : "no input drift; without enough labels, concept drift cannot be seen yet";
            ch_buf_puts(b, ", \"realized\": null");
        }
    }
    ch_buf_printf(b, ", \"diagnosis\": \"%s\", \"diagnosis_text\": ", sum->diagnosis);
    ch_buf_json_str(b, why, strlen(why));
    ch_buf_putc(b, '}');
    return ch_buf_status(b);
}
