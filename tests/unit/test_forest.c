/*
 * test_forest.c -- the compiled forest (include/ch/forest.h), checked
 * against libxgboost itself.
 *
 * Boosters are trained here through the XGBoost C API on data from a
 * seeded splitmix64 generator, with NaN cells, discrete features (ties at
 * thresholds) and evaluation rows that sit exactly on, just below and
 * just above split thresholds (in double and in float), then saved as JSON
 * and loaded with ch_forest_from_xgb_json(). For every row:
 *   - the margin equals XGBoost's inplace margin exactly (we promise bit
 *     identity; the brief's tolerance is 1e-6);
 *   - contributions and bias agree with XGBoost's pred_contribs within
 *     1e-5 (XGBoost computes them in float);
 *   - contributions sum to the margin within 1e-6;
 *   - the fast kernel agrees with the classic TreeSHAP reference
 *     (forest_int.h) within 1e-9, and so do the kernel sets the CPU runs
 *     (generic, AVX2 with FMA, AVX-512) with each other;
 *   - ch_forest_shap_batch() gives every row the same bits as
 *     ch_forest_shap(), with every kernel set and batch size;
 *   - batch prediction on 1..3 threads equals single-row prediction.
 * Depths 2, 4, 6, 8 and 10; 10, 100 and 500 trees; hist and exact tree
 * methods; base_score 0.5 and others. Random hand-written models reach
 * what XGBoost's training rarely produces: paths with up to 40 distinct
 * features (several quadrature vectors), heavy feature repetition, zero
 * covers, a root that is a leaf, unreachable nodes; XGBoost loads those
 * too and is the reference again. A model from the project's own
 * "xgboost" family and, when the shared Telco CSV is present, one trained
 * on it through config/churn.json's pipeline are checked the same way.
 * Rows wider than the predictor's stack buffer, and one forest explained
 * from four threads at once, are covered too.
 * Malformed models must give CH_EFORMAT or CH_EMODEL with the JSON path,
 * and every allocation failure in the loader CH_ENOMEM without leaks.
 *
 * About 10 s in a normal build, 20 s under ASan. Under valgrind
 * (CH_VALGRIND=1, as tests/run sets it) the models keep their depths but
 * get at most 100 trees, and fewer rows are trained and checked.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xgboost/c_api.h>

#include "../harness.h"
#include "../../src/lib/forest_int.h"
#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/config.h"
#include "ch/features.h"
#include "ch/forest.h"
#include "ch/frame.h"
#include "ch/ingest.h"
#include "ch/json.h"
#include "ch/model.h"
#include "ch/schema.h"

#define XGB(call)                                                                                  \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            FAIL("%s: %s", #call, XGBGetLastError());                                              \
    } while (0)

/* ------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------ */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unif(rng *r)
{
    return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_norm(rng *r)
{
    double u = rng_unif(r);
    double v = rng_unif(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* 1 under valgrind: sizes shrink (see the top). */
static int slow_mode(void)
{
    const char *v = getenv("CH_VALGRIND");
    return v != NULL && strcmp(v, "1") == 0;
}

/* 'n' in a normal run, n / 'div' (at least 'min') under valgrind. */
static size_t scaled(size_t n, size_t div, size_t min)
{
    if (!slow_mode())
        return n;
    return n / div > min ? n / div : min;
}

static double z0(double v)
{
    return isnan(v) ? 0.0 : v;
}

/* 'n' rows of 'p' features (p >= 4): normals, every third feature a small
 * integer (ties), NaN with probability 'miss'; labels from a nonlinear
 * log-odds. 'y' may be NULL. */
static void gen_rows(double *x, double *y, size_t n, size_t p, uint64_t seed, double miss)
{
    rng r = {seed};
    for (size_t i = 0; i < n; i++) {
        double *row = x + i * p;
        double lo;
        for (size_t j = 0; j < p; j++) {
            row[j] = j % 3 == 2 ? floor(4 * rng_unif(&r)) : rng_norm(&r);
            if (rng_unif(&r) < miss)
                row[j] = NAN;
        }
        lo = 1.2 * z0(row[0]) + sin(2 * z0(row[1])) + z0(row[2]) * z0(row[3]) - 0.8 +
             (isnan(row[1]) ? 0.7 : 0.0) + (p > 5 ? 0.5 * z0(row[5]) * z0(row[5]) - 0.5 : 0.0);
        if (y != NULL)
            y[i] = rng_unif(&r) < 1.0 / (1.0 + exp(-lo)) ? 1.0 : 0.0;
    }
}

/* Split thresholds of a saved model, for rows on the boundaries. */
typedef struct thr_list {
    uint32_t *feat;
    float *thr;
    size_t n;
} thr_list;

static void thresholds(const ch_json *model, thr_list *out)
{
    const ch_json *trees = ch_json_get(
        ch_json_get(ch_json_get(ch_json_get(model, "learner"), "gradient_booster"), "model"),
        "trees");
    size_t cap = 0;
    for (size_t t = 0; t < ch_json_len(trees); t++)
        cap += ch_json_len(ch_json_get(ch_json_at(trees, t), "left_children"));
    out->feat = ch_malloc_array(cap + 1, sizeof *out->feat);
    out->thr = ch_malloc_array(cap + 1, sizeof *out->thr);
    ASSERT(out->feat != NULL && out->thr != NULL);
    out->n = 0;
    for (size_t t = 0; t < ch_json_len(trees); t++) {
        const ch_json *tr = ch_json_at(trees, t);
        const ch_json *l = ch_json_get(tr, "left_children");
        for (size_t j = 0; j < ch_json_len(l); j++) {
            double c;
            double s;
            double f;
            ASSERT(ch_json_num(ch_json_at(l, j), &c) == 0);
            if (c < 0)
                continue;
            ASSERT(ch_json_num(ch_json_at(ch_json_get(tr, "split_conditions"), j), &s) == 0);
            ASSERT(ch_json_num(ch_json_at(ch_json_get(tr, "split_indices"), j), &f) == 0);
            out->feat[out->n] = (uint32_t)f;
            out->thr[out->n] = (float)s;
            out->n++;
        }
    }
}

/* Overwrites some cells of the 'n' rows with split thresholds: exactly
 * the float threshold, the next double below it (which rounds back up to
 * it as a float: goes right), the next float below (goes left) or above. */
static void put_on_thresholds(double *x, size_t n, size_t p, const thr_list *tl, uint64_t seed)
{
    rng r = {seed};
    if (tl->n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            size_t m = (size_t)(rng_next(&r) % tl->n);
            float t = tl->thr[m];
            double v = (double)t;
            switch (rng_next(&r) % 4) {
            case 1:
                v = nextafter((double)t, -INFINITY);
                break;
            case 2:
                v = (double)nextafterf(t, -INFINITY);
                break;
            case 3:
                v = (double)nextafterf(t, INFINITY);
                break;
            default:
                break;
            }
            x[i * p + tl->feat[m]] = v;
        }
}

/* ------------------------------------------------------------------------
 * XGBoost helpers
 * ------------------------------------------------------------------------ */

static void array_iface(char *out, size_t cap, const double *x, size_t n, size_t p)
{
    snprintf(out, cap,
             "{\"data\": [%" PRIuPTR ", true], \"shape\": [%zu, %zu], \"typestr\": \"<f8\", "
             "\"version\": 3}",
             (uintptr_t)x, n, p);
}

static DMatrixHandle dmatrix(const double *x, const double *y, size_t n, size_t p)
{
    char arr[256];
    DMatrixHandle d = NULL;
    array_iface(arr, sizeof arr, x, n, p);
    XGB(XGDMatrixCreateFromDense(arr, "{\"missing\": NaN, \"nthread\": 1}", &d));
    if (y != NULL) {
        float *fy = ch_malloc_array(n, sizeof *fy);
        ASSERT(fy != NULL);
        for (size_t i = 0; i < n; i++)
            fy[i] = (float)y[i];
        XGB(XGDMatrixSetFloatInfo(d, "label", fy, n));
        ch_free(fy);
    }
    return d;
}

/* Trains 'rounds' rounds with 'params' (name, value pairs, NULL-ended)
 * on top of binary:logistic, hist, one thread. */
static BoosterHandle xgb_train(const double *x, const double *y, size_t n, size_t p,
                               const char *const *params, int rounds)
{
    DMatrixHandle d = dmatrix(x, y, n, p);
    BoosterHandle b = NULL;
    XGB(XGBoosterCreate(&d, 1, &b));
    XGB(XGBoosterSetParam(b, "verbosity", "0"));
    XGB(XGBoosterSetParam(b, "objective", "binary:logistic"));
    XGB(XGBoosterSetParam(b, "tree_method", "hist"));
    XGB(XGBoosterSetParam(b, "nthread", "1"));
    for (size_t k = 0; params != NULL && params[k] != NULL; k += 2)
        XGB(XGBoosterSetParam(b, params[k], params[k + 1]));
    for (int it = 0; it < rounds; it++)
        XGB(XGBoosterUpdateOneIter(b, it, d));
    XGDMatrixFree(d);
    return b;
}

static BoosterHandle xgb_load(const char *text, size_t len)
{
    BoosterHandle b = NULL;
    XGB(XGBoosterCreate(NULL, 0, &b));
    XGB(XGBoosterSetParam(b, "verbosity", "0"));
    XGB(XGBoosterSetParam(b, "nthread", "1"));
    XGB(XGBoosterLoadModelFromBuffer(b, text, len));
    return b;
}

/* The booster's JSON model, parsed. */
static ch_json *xgb_json(BoosterHandle b)
{
    bst_ulong len = 0;
    const char *text = NULL;
    ch_json *j = NULL;
    ch_error err = {0};
    XGB(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &len, &text));
    if (ch_json_parse(text, (size_t)len, &j, &err) != CH_OK)
        FAIL("parsing XGBoost's JSON: %s", err.msg);
    return j;
}

/* XGBoost's margins (inplace prediction), as doubles. */
static double *xgb_margins(BoosterHandle b, const double *x, size_t n, size_t p)
{
    char arr[256];
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    double *out = ch_malloc_array(n, sizeof *out);
    ASSERT(out != NULL);
    array_iface(arr, sizeof arr, x, n, p);
    XGB(XGBoosterPredictFromDense(b, arr,
                                  "{\"type\": 1, \"training\": false, \"iteration_begin\": 0, "
                                  "\"iteration_end\": 0, \"strict_shape\": false, "
                                  "\"missing\": NaN, \"cache_id\": 0}",
                                  NULL, &shape, &dim, &res));
    ASSERT(dim >= 1 && shape[0] == n);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)res[i];
    return out;
}

/* XGBoost's pred_contribs: n x (p + 1), bias last. */
static double *xgb_contribs(BoosterHandle b, const double *x, size_t n, size_t p)
{
    DMatrixHandle d = dmatrix(x, NULL, n, p);
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *res = NULL;
    double *out = ch_malloc_array(n * (p + 1), sizeof *out);
    ASSERT(out != NULL);
    XGB(XGBoosterPredictFromDMatrix(b, d,
                                    "{\"type\": 2, \"training\": false, \"iteration_begin\": 0, "
                                    "\"iteration_end\": 0, \"strict_shape\": false}",
                                    &shape, &dim, &res));
    ASSERT(dim == 2 && shape[0] == n && shape[1] == p + 1);
    for (size_t i = 0; i < n * (p + 1); i++)
        out[i] = (double)res[i];
    XGDMatrixFree(d);
    return out;
}

static ch_forest *load_forest(const ch_json *model, size_t p)
{
    ch_forest *f = NULL;
    ch_error err = {0};
    ch_err rc = ch_forest_from_xgb_json(model, p, &f, &err);
    if (rc != CH_OK)
        FAIL("ch_forest_from_xgb_json: %s: %s", ch_strerror(rc), err.msg);
    return f;
}

/* ------------------------------------------------------------------------
 * The comparison
 * ------------------------------------------------------------------------ */

/* Tolerances. Margins are compared for equality (see the top). */
#define TOL_XGB_CONTRIB 1e-5 /* against XGBoost's float TreeSHAP */
#define TOL_SUM         1e-6 /* sum of contributions against the margin */
#define TOL_CLASSIC     1e-9 /* fast kernel against the double classic reference */

/* Rows check_batch() explains: an odd count, so that a batch of 8 leaves
 * remainders of 4, 2 and 1. */
#define N_BATCH_CHECK 63

static const char *const kernel_names[] = {"generic", "avx2", "avx512"};

/*
 * ch_forest_shap_batch() against ch_forest_shap() on the first 'n' rows of
 * 'x' (at most N_BATCH_CHECK), with every kernel set the CPU runs and
 * every batch size: each row's contributions and margin must be the same
 * to the bit (every kernel of a set computes a lane the same way; see
 * SHAP_KERNEL in forest.c). Restores the forest's kernel set.
 */
static void check_batch(ch_forest *f, const double *x, size_t n, size_t p, const char *what)
{
    static const size_t sizes[] = {1, 2, 4, 8};
    char kernel[16];
    double *one = ch_malloc_array(N_BATCH_CHECK * (p + 1), sizeof *one);
    double *bat = ch_malloc_array(N_BATCH_CHECK * (p + 1), sizeof *bat);
    double m1[N_BATCH_CHECK];
    double mb[N_BATCH_CHECK];
    ch_forest_ws *ws = NULL;
    ch_error err = {0};

    ASSERT(one != NULL && bat != NULL);
    snprintf(kernel, sizeof kernel, "%s", ch__forest_kernel(f));
    n = n < N_BATCH_CHECK ? n : N_BATCH_CHECK;
    ASSERT_OK(ch_forest_ws_new(f, &ws, &err));
    for (size_t k = 0; k < 3; k++) {
        if (ch__forest_set_kernel(f, kernel_names[k]) != 0)
            continue;
        for (size_t i = 0; i < n; i++)
            m1[i] = ch_forest_shap(f, x + i * p, one + i * (p + 1), ws);
        for (size_t b = 0; b < 4; b++) {
            ASSERT(ch__forest_set_batch_rows(f, sizes[b]) == 0);
            ch_forest_shap_batch(f, x, n, bat, mb, ws);
            for (size_t i = 0; i < n; i++) {
                if (mb[i] != m1[i])
                    FAIL("%s: %s kernel, batches of %zu: row %zu: margin %.17g, alone %.17g", what,
                         kernel_names[k], sizes[b], i, mb[i], m1[i]);
                for (size_t j = 0; j <= p; j++)
                    if (bat[i * (p + 1) + j] != one[i * (p + 1) + j])
                        FAIL("%s: %s kernel, batches of %zu: row %zu, %zu: %.17g, alone %.17g",
                             what, kernel_names[k], sizes[b], i, j, bat[i * (p + 1) + j],
                             one[i * (p + 1) + j]);
            }
        }
        /* Margins may be left out. */
        ch_forest_shap_batch(f, x, n, bat, NULL, ws);
        ASSERT(memcmp(bat, one, n * (p + 1) * sizeof *bat) == 0);
    }
    ch_forest_shap_batch(f, x, 0, NULL, NULL, ws); /* nothing to do */
    ASSERT(ch__forest_set_batch_rows(f, 3) == -1);
    ASSERT(ch__forest_set_kernel(f, "sse9") == -1);
    ASSERT(ch__forest_set_kernel(f, kernel) == 0);
    ch_forest_ws_free(ws);
    ch_free(bat);
    ch_free(one);
}

/*
 * Checks forest 'f' against booster 'b' on the 'n' rows of 'x': margins
 * of all rows, batch prediction, and contributions of the first 'n_shap',
 * one row at a time with every kernel set the CPU runs and in batches.
 */
static void check_against(BoosterHandle b, ch_forest *f, const double *x, size_t n, size_t p,
                          size_t n_shap, const char *what)
{
    double *xm = xgb_margins(b, x, n, p);
    double *xc = n_shap > 0 ? xgb_contribs(b, x, n_shap, p) : NULL;
    double *bm = ch_malloc_array(n, sizeof *bm);
    double *phi = ch_malloc_array(p + 1, sizeof *phi);
    double *phc = ch_malloc_array(p + 1, sizeof *phc);
    double *phg = ch_malloc_array(p + 1, sizeof *phg);
    ch_forest_ws *ws = NULL;
    ch_error err = {0};
    double worst_xgb = 0;
    double worst_sum = 0;
    double worst_classic = 0;
    char kernel[16];

    ASSERT(bm != NULL && phi != NULL && phc != NULL && phg != NULL);
    ASSERT_INT_EQ(ch_forest_n_features(f), p);
    for (size_t i = 0; i < n; i++) {
        double m = ch_forest_predict(f, x + i * p);
        if (m != xm[i])
            FAIL("%s: row %zu: margin %.9g, XGBoost %.9g", what, i, m, xm[i]);
    }
    for (int t = 1; t <= 3; t++) {
        ASSERT_OK(ch_forest_predict_batch(f, x, n, bm, t, &err));
        for (size_t i = 0; i < n; i++)
            if (bm[i] != xm[i])
                FAIL("%s: row %zu: batch (%d threads) %.9g, single %.9g", what, i, t, bm[i], xm[i]);
    }
    ASSERT_OK(ch_forest_ws_new(f, &ws, &err));
    snprintf(kernel, sizeof kernel, "%s", ch__forest_kernel(f));
    for (size_t i = 0; i < n_shap; i++) {
        const double *row = x + i * p;
        double sum = 0;
        double mc = 0;
        double m = ch_forest_shap(f, row, phi, ws);
        if (m != xm[i])
            FAIL("%s: row %zu: ch_forest_shap margin %.9g, XGBoost %.9g", what, i, m, xm[i]);
        ASSERT_OK(ch__forest_shap_classic(f, row, phc, &mc, &err));
        ASSERT(mc == m);
        for (size_t j = 0; j <= p; j++) {
            double dx = fabs(phi[j] - xc[i * (p + 1) + j]);
            double dc = fabs(phi[j] - phc[j]);
            if (!(dx <= TOL_XGB_CONTRIB))
                FAIL("%s: row %zu, %s %zu: %.9g, XGBoost %.9g", what, i,
                     j == p ? "bias" : "feature", j, phi[j], xc[i * (p + 1) + j]);
            if (!(dc <= TOL_CLASSIC))
                FAIL("%s: row %zu, %s %zu: fast %.17g, classic %.17g", what, i,
                     j == p ? "bias" : "feature", j, phi[j], phc[j]);
            worst_xgb = dx > worst_xgb ? dx : worst_xgb;
            worst_classic = dc > worst_classic ? dc : worst_classic;
            sum += phi[j];
        }
        if (!(fabs(sum - m) <= TOL_SUM))
            FAIL("%s: row %zu: contributions sum to %.17g, margin %.17g", what, i, sum, m);
        worst_sum = fabs(sum - m) > worst_sum ? fabs(sum - m) : worst_sum;
        /* The other kernel sets (the instruction sets differ in FMA use). */
        for (size_t k = 0; k < 3 && i < 50; k++) {
            if (strcmp(kernel_names[k], kernel) == 0 ||
                ch__forest_set_kernel(f, kernel_names[k]) != 0)
                continue;
            ASSERT(ch_forest_shap(f, row, phg, ws) == m);
            ASSERT(ch__forest_set_kernel(f, kernel) == 0);
            for (size_t j = 0; j <= p; j++)
                if (!(fabs(phg[j] - phi[j]) <= TOL_CLASSIC))
                    FAIL("%s: row %zu, %zu: %s kernel %.17g, %s %.17g", what, i, j, kernel_names[k],
                         phg[j], kernel, phi[j]);
        }
    }
    check_batch(f, x, n_shap, p, what);
    {
        ch__forest_stats st;
        ch__forest_get_stats(f, &st);
        fprintf(stderr,
                "    %s: %zu trees, %zu splits (%zu on repeated features), depth %zu, "
                "%zu quadrature points, %zu classic trees; %zu rows, %zu explained; "
                "max |phi - xgb| %.2e, |sum - margin| %.2e, |fast - classic| %.2e\n",
                what, ch_forest_n_trees(f), st.n_internal, st.n_repeat, st.max_depth,
                st.quad_points, st.n_classic_trees, n, n_shap, worst_xgb, worst_sum, worst_classic);
    }
    ch_forest_ws_free(ws);
    ch_free(phg);
    ch_free(phc);
    ch_free(phi);
    ch_free(bm);
    ch_free(xc);
    ch_free(xm);
}

/* Trains on generated data and checks, with evaluation rows that have
 * NaN cells and cells on split thresholds. */
static void run_config(const char *what, size_t p, size_t n_train, int rounds,
                       const char *const *params, double miss, size_t n_eval, size_t n_shap)
{
    double *x;
    double *y;
    double *xe;
    BoosterHandle b;
    ch_json *model;
    ch_forest *f;
    thr_list tl;

    n_train = scaled(n_train, 3, 500);
    n_eval = scaled(n_eval, 10, 20);
    n_shap = scaled(n_shap, 10, 10);
    rounds = slow_mode() && rounds > 100 ? 100 : rounds;
    x = ch_malloc_array(n_train * p, sizeof *x);
    y = ch_malloc_array(n_train, sizeof *y);
    xe = ch_malloc_array(n_eval * p, sizeof *xe);
    ASSERT(x != NULL && y != NULL && xe != NULL);
    gen_rows(x, y, n_train, p, 1000 + p, miss);
    b = xgb_train(x, y, n_train, p, params, rounds);
    model = xgb_json(b);
    f = load_forest(model, p);
    ASSERT_INT_EQ(ch_forest_n_trees(f), rounds);
    gen_rows(xe, NULL, n_eval, p, 77, miss);
    thresholds(model, &tl);
    put_on_thresholds(xe + (n_eval / 2) * p, n_eval - n_eval / 2, p, &tl, 5);
    check_against(b, f, xe, n_eval, p, n_shap, what);
    ch_free(tl.feat);
    ch_free(tl.thr);
    ch_forest_free(f);
    ch_json_free(model);
    XGBoosterFree(b);
    ch_free(xe);
    ch_free(y);
    ch_free(x);
}

TEST(depth2_10_trees)
{
    static const char *const params[] = {"max_depth", "2", "eta", "0.3", "base_score", "0.5", NULL};
    run_config("depth 2, 10 trees", 8, 2000, 10, params, 0.1, 1000, 1000);
}

TEST(depth4_100_trees_base_score)
{
    /* base_score 0.3: the base margin is -logf(1/0.3 - 1), not 0. */
    static const char *const params[] = {"max_depth", "4", "eta", "0.2", "base_score", "0.3", NULL};
    run_config("depth 4, 100 trees, base_score 0.3", 12, 2000, 100, params, 0.15, 1000, 400);
}

TEST(depth6_100_trees_45_features)
{
    static const char *const params[] = {"max_depth", "6", "eta",        "0.1",  "subsample", "0.8",
                                         "seed",      "3", "base_score", "0.27", NULL};
    run_config("depth 6, 100 trees, 45 features", 45, 3000, 100, params, 0.2, 1000, 300);
}

TEST(depth6_500_trees)
{
    static const char *const params[] = {"max_depth",        "6",   "eta", "0.1",
                                         "min_child_weight", "0.5", NULL};
    run_config("depth 6, 500 trees", 10, 3000, 500, params, 0.1, 600, 150);
}

TEST(depth8_100_trees_5_features)
{
    /* Five features under depth 8: most paths split on a feature again. */
    static const char *const params[] = {"max_depth", "8",      "eta", "0.3", "min_child_weight",
                                         "0",         "lambda", "0.1", NULL};
    run_config("depth 8, 100 trees, 5 features", 5, 3000, 100, params, 0.1, 600, 200);
}

TEST(depth8_500_trees)
{
    static const char *const params[] = {"max_depth", "8",    "eta", "0.1", "colsample_bytree",
                                         "0.8",       "seed", "9",   NULL};
    run_config("depth 8, 500 trees", 20, 3000, 500, params, 0.1, 300, 60);
}

TEST(depth10_exact_method)
{
    /* Deeper than 8 distinct features per path needs two vectors of
     * quadrature points; the exact method learns its own default
     * directions. */
    static const char *const params[] = {
        "max_depth",        "10", "eta",        "0.3",  "tree_method", "exact",
        "min_child_weight", "0",  "base_score", "0.61", NULL};
    run_config("depth 10, exact, 30 trees", 16, 3000, 30, params, 0.15, 600, 200);
}

/* ------------------------------------------------------------------------
 * Hand-written models: shapes XGBoost's training rarely makes
 * ------------------------------------------------------------------------ */

/* One node of a generated tree. */
typedef struct gnode {
    int left;
    int right;
    int feat;
    float thr;
    float cover;
    int dl;
} gnode;

/* Writes a float so that XGBoost's JSON reader sees a real number. */
static void put_float(ch_buf *b, float v)
{
    ch_buf_printf(b, "%.9e", (double)v);
}

/*
 * A random tree: every split draws its feature from 'n_feat', sends a
 * random fraction of its cover left, and continues each child with
 * probability 'grow' (one side only when 'chain'), down to 'max_depth'.
 */
static size_t gen_tree(gnode *nd, size_t cap, rng *r, int n_feat, int max_depth, double grow,
                       int chain)
{
    size_t n = 1;
    size_t stack[512];
    int depth[512];
    size_t top = 0;
    nd[0].cover = (float)(50 + 1000 * rng_unif(r));
    stack[top] = 0;
    depth[top++] = 0;
    while (top > 0) {
        size_t i = stack[--top];
        int d = depth[top];
        int split = d < max_depth && (d == 0 || rng_unif(r) < grow) && n + 2 <= cap;
        nd[i].left = nd[i].right = -1;
        nd[i].feat = 0;
        nd[i].dl = 0;
        if (!split) {
            nd[i].thr = (float)(rng_norm(r) * 0.3);
            continue;
        }
        {
            double u = 0.05 + 0.9 * rng_unif(r);
            size_t l = n++;
            size_t rr = n++;
            nd[i].left = (int)l;
            nd[i].right = (int)rr;
            nd[i].feat = (int)(rng_next(r) % (uint64_t)n_feat);
            nd[i].thr = (float)rng_norm(r);
            nd[i].dl = (int)(rng_next(r) & 1);
            nd[l].cover = (float)(nd[i].cover * u);
            nd[rr].cover = (float)(nd[i].cover * (1 - u));
            if (chain) {
                size_t next = rng_next(r) & 1 ? l : rr;
                size_t leaf = next == l ? rr : l;
                nd[leaf].left = nd[leaf].right = -1;
                nd[leaf].thr = (float)(rng_norm(r) * 0.3);
                nd[leaf].feat = 0;
                nd[leaf].dl = 0;
                stack[top] = next;
                depth[top++] = d + 1;
            } else {
                stack[top] = rr;
                depth[top++] = d + 1;
                stack[top] = l;
                depth[top++] = d + 1;
            }
        }
    }
    return n;
}

/* Appends one tree in XGBoost 1.7's JSON layout. 'extra' unreachable
 * nodes are appended after the reachable ones. */
static void put_tree(ch_buf *b, const gnode *nd, size_t n, size_t id, int n_feat)
{
    static const char *const names[] = {
        "left_children", "right_children", "split_indices", "split_conditions", "default_left",
        "sum_hessian",   "base_weights",   "loss_changes",  "parents",          "split_type"};
    ch_buf_printf(b,
                  "{\"id\": %zu, \"categories\": [], \"categories_nodes\": [], "
                  "\"categories_segments\": [], \"categories_sizes\": [], "
                  "\"tree_param\": {\"num_deleted\": \"0\", \"num_feature\": \"%d\", "
                  "\"num_nodes\": \"%zu\", \"size_leaf_vector\": \"0\"}",
                  id, n_feat, n);
    for (size_t a = 0; a < sizeof names / sizeof names[0]; a++) {
        ch_buf_printf(b, ", \"%s\": [", names[a]);
        for (size_t j = 0; j < n; j++) {
            if (j > 0)
                ch_buf_puts(b, ", ");
            switch (a) {
            case 0:
                ch_buf_printf(b, "%d", nd[j].left);
                break;
            case 1:
                ch_buf_printf(b, "%d", nd[j].right);
                break;
            case 2:
                ch_buf_printf(b, "%d", nd[j].feat);
                break;
            case 3:
                put_float(b, nd[j].thr);
                break;
            case 4:
                ch_buf_printf(b, "%d", nd[j].dl);
                break;
            case 5:
                put_float(b, nd[j].cover);
                break;
            case 6:
            case 7:
                put_float(b, 0.0f);
                break;
            case 8: {
                int par = 2147483647;
                for (size_t k = 0; k < n; k++)
                    if (nd[k].left == (int)j || nd[k].right == (int)j)
                        par = (int)k;
                ch_buf_printf(b, "%d", par);
                break;
            }
            default:
                ch_buf_puts(b, "0");
                break;
            }
        }
        ch_buf_puts(b, "]");
    }
    ch_buf_puts(b, "}");
}

static void put_model_head(ch_buf *b, size_t n_trees)
{
    ch_buf_printf(b,
                  "{\"learner\": {\"attributes\": {}, \"feature_names\": [], "
                  "\"feature_types\": [], \"gradient_booster\": {\"model\": "
                  "{\"gbtree_model_param\": {\"num_parallel_tree\": \"1\", "
                  "\"num_trees\": \"%zu\", \"size_leaf_vector\": \"0\"}, \"tree_info\": [",
                  n_trees);
    for (size_t t = 0; t < n_trees; t++)
        ch_buf_printf(b, "%s0", t > 0 ? ", " : "");
    ch_buf_printf(b, "], \"trees\": [");
}

static void put_model_tail(ch_buf *b, int n_feat, const char *base_score)
{
    ch_buf_printf(b,
                  "]}, \"name\": \"gbtree\"}, \"learner_model_param\": {\"base_score\": "
                  "\"%s\", \"boost_from_average\": \"1\", \"num_class\": \"0\", "
                  "\"num_feature\": \"%d\", \"num_target\": \"1\"}, \"objective\": "
                  "{\"name\": \"binary:logistic\", \"reg_loss_param\": "
                  "{\"scale_pos_weight\": \"1\"}}}, \"version\": [1, 7, 4]}",
                  base_score, n_feat);
}

/* Random rows for a generated model: normals, NaN with probability 0.2,
 * sometimes exactly a threshold. */
static void gen_eval(double *x, size_t n, int n_feat, rng *r)
{
    for (size_t i = 0; i < n * (size_t)n_feat; i++) {
        double u = rng_unif(r);
        x[i] = u < 0.2 ? NAN : u < 0.25 ? floor(rng_norm(r) * 4) / 4 : rng_norm(r);
    }
}

/*
 * Random models written by hand, checked against XGBoost loading the same
 * text: 'chain' trees reach up to 'max_depth' distinct features on one
 * path (several quadrature vectors), few features force repetition.
 */
static void run_generated(const char *what, size_t n_trees, int n_feat, int max_depth, double grow,
                          int chain, uint64_t seed)
{
    enum { CAP = 4096 };
    gnode *nd = ch_malloc_array(CAP, sizeof *nd);
    ch_buf b;
    rng r = {seed};
    ch_json *model = NULL;
    ch_forest *f;
    BoosterHandle bh;
    double *x;
    size_t n_eval = scaled(300, 10, 20);
    ch_error err = {0};

    ASSERT(nd != NULL);
    n_trees = scaled(n_trees, 4, 5);
    ch_buf_init(&b, (size_t)1 << 28);
    put_model_head(&b, n_trees);
    for (size_t t = 0; t < n_trees; t++) {
        size_t n = gen_tree(nd, CAP, &r, n_feat, max_depth, grow, chain);
        if (t > 0)
            ch_buf_puts(&b, ", ");
        put_tree(&b, nd, n, t, n_feat);
    }
    put_model_tail(&b, n_feat, "0.4");
    ASSERT_OK(ch_buf_status(&b));
    ASSERT_OK(ch_json_parse(b.data, b.len, &model, &err));
    f = load_forest(model, (size_t)n_feat);
    bh = xgb_load(b.data, b.len);
    x = ch_malloc_array(n_eval * (size_t)n_feat, sizeof *x);
    ASSERT(x != NULL);
    gen_eval(x, n_eval, n_feat, &r);
    check_against(bh, f, x, n_eval, (size_t)n_feat, n_eval, what);
    ch_free(x);
    XGBoosterFree(bh);
    ch_forest_free(f);
    ch_json_free(model);
    ch_buf_reset(&b);
    ch_free(nd);
}

TEST(generated_deep_chains)
{
    /* Paths of up to 40 distinct features: 5 vectors of 4 points. */
    run_generated("generated chains, depth 40", 40, 60, 40, 1.0, 1, 11);
}

TEST(generated_bushy_repeats)
{
    /* Three features, depth 9: long runs of splits on one feature. */
    run_generated("generated bushy trees, 3 features", 60, 3, 9, 0.85, 0, 12);
}

TEST(generated_mixed_depths)
{
    run_generated("generated mixed trees, depth 14", 40, 12, 14, 0.7, 0, 13);
}

TEST(generated_wide_rows)
{
    /* Wider than ch_forest_predict()'s stack buffer: rows read in place. */
    run_generated("generated trees, 700 features", 30, 700, 8, 0.8, 0, 14);
}

/* One forest, several threads, one workspace each: the same numbers as
 * one thread alone. */
typedef struct share_job {
    const ch_forest *f;
    const double *x;
    size_t n;
    size_t p;
    double *phi; /* n x (p + 1) */
    double *m;   /* n */
    int ok;
} share_job;

static void *share_run(void *arg)
{
    share_job *j = arg;
    ch_forest_ws *ws = NULL;
    if (ch_forest_ws_new(j->f, &ws, NULL) != CH_OK)
        return NULL;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < j->n; i++) {
            j->m[i] = ch_forest_shap(j->f, j->x + i * j->p, j->phi + i * (j->p + 1), ws);
            if (ch_forest_predict(j->f, j->x + i * j->p) != j->m[i]) {
                ch_forest_ws_free(ws);
                return NULL;
            }
        }
    ch_forest_ws_free(ws);
    j->ok = 1;
    return NULL;
}

TEST(threads_share_a_forest)
{
    static const char *const params[] = {"max_depth", "6", "eta", "0.2", NULL};
    const size_t p = 12;
    const size_t n = 1000;
    const size_t n_rows = scaled(400, 10, 20);
    enum { N_THREADS = 4 };
    double *x = ch_malloc_array(n * p, sizeof *x);
    double *y = ch_malloc_array(n, sizeof *y);
    share_job jobs[N_THREADS];
    pthread_t tid[N_THREADS];
    BoosterHandle b;
    ch_json *model;
    ch_forest *f;

    ASSERT(x != NULL && y != NULL);
    gen_rows(x, y, n, p, 8, 0.1);
    b = xgb_train(x, y, n, p, params, 60);
    model = xgb_json(b);
    f = load_forest(model, p);
    for (int t = 0; t < N_THREADS; t++) {
        jobs[t].f = f;
        jobs[t].x = x;
        jobs[t].n = n_rows;
        jobs[t].p = p;
        jobs[t].phi = ch_malloc_array(n_rows * (p + 1), sizeof(double));
        jobs[t].m = ch_malloc_array(n_rows, sizeof(double));
        jobs[t].ok = 0;
        ASSERT(jobs[t].phi != NULL && jobs[t].m != NULL);
    }
    for (int t = 1; t < N_THREADS; t++)
        ASSERT(pthread_create(&tid[t], NULL, share_run, &jobs[t]) == 0);
    share_run(&jobs[0]);
    for (int t = 1; t < N_THREADS; t++)
        pthread_join(tid[t], NULL);
    for (int t = 0; t < N_THREADS; t++) {
        ASSERT(jobs[t].ok);
        ASSERT(memcmp(jobs[t].m, jobs[0].m, n_rows * sizeof(double)) == 0);
        ASSERT(memcmp(jobs[t].phi, jobs[0].phi, n_rows * (p + 1) * sizeof(double)) == 0);
    }
    for (int t = 0; t < N_THREADS; t++) {
        ch_free(jobs[t].phi);
        ch_free(jobs[t].m);
    }
    ch_forest_free(f);
    ch_json_free(model);
    XGBoosterFree(b);
    ch_free(y);
    ch_free(x);
}

/* Tree 0 of the test below: f0 three times along one path, cover
 * fractions 1e-30 and 1e-30 (their float product underflows to 0), and an
 * empty leaf. */
static const gnode zc_tree0[] = {
    {1, 2, 0, 0.5f, 1e30f, 1},     {3, 4, 0, -0.5f, 1.0f, 0},   {-1, -1, 0, 0.25f, 1e30f, 0},
    {5, 6, 0, -1.5f, 1e-30f, 1},   {-1, -1, 0, -2.0f, 1.0f, 0}, {-1, -1, 0, 3.0f, 5e-31f, 0},
    {-1, -1, 0, 0.0625f, 0.0f, 0},
};
/* A leaf root. */
static const gnode zc_tree1[] = {{-1, -1, 0, 0.125f, 3.0f, 0}};
/* A zero-cover leaf; as tree 3, with two unreachable nodes at the end
 * (which XGBoost itself cannot load). */
static const gnode zc_tree2[] = {
    {1, 2, 1, 0.0f, 4.0f, 0},   {-1, -1, 0, 1.0f, 0.0f, 0}, {-1, -1, 0, -1.0f, 4.0f, 0},
    {-1, -1, 0, 9.0f, 1.0f, 0}, {-1, -1, 0, 9.0f, 1.0f, 0},
};

/* The text of a model of the 'n' trees 'which' (indices into the four
 * above). */
static void zc_model(ch_buf *b, const int *which, size_t n)
{
    const gnode *trees[] = {zc_tree0, zc_tree1, zc_tree2, zc_tree2};
    const size_t sizes[] = {sizeof zc_tree0 / sizeof zc_tree0[0], 1, 3,
                            sizeof zc_tree2 / sizeof zc_tree2[0]};
    ch_buf_init(b, 1 << 20);
    put_model_head(b, n);
    for (size_t t = 0; t < n; t++) {
        if (t > 0)
            ch_buf_puts(b, ", ");
        put_tree(b, trees[which[t]], sizes[which[t]], t, 2);
    }
    put_model_tail(b, 2, "5E-1");
    ASSERT_OK(ch_buf_status(b));
}

/* The forest of zc_model('which'). */
static ch_forest *zc_forest(const int *which, size_t n, ch_buf *b)
{
    ch_json *model = NULL;
    ch_forest *f;
    zc_model(b, which, n);
    ASSERT_OK(ch_json_parse(b->data, b->len, &model, NULL));
    f = load_forest(model, 2);
    ch_json_free(model);
    return f;
}

/*
 * Zero covers, underflow, a leaf root and unreachable nodes. Along tree 0's
 * path of three splits on f0 the merged cover fraction underflows to 0 in
 * float, as it does in XGBoost, so the third split's previous factor
 * cannot be divided out and the fast kernel hands the tree to classic
 * TreeSHAP. XGBoost loads the same text and is the reference for the
 * margins (its float TreeSHAP divides 0 by 0 on that path, so those
 * contributions are checked against our classic reference and their sum);
 * without tree 0, XGBoost's contributions are the reference again.
 */
TEST(zero_cover_leaf_root_unreachable)
{
    static const double rows[][2] = {{0.0, 0.0},  {1.0, 1.0},  {NAN, -1.0}, {-1.0, NAN},
                                     {0.5, 0.0},  {-0.5, 2.0}, {NAN, NAN},  {-1.6, 0.0},
                                     {-1.5, 0.0}, {-3.0, -1.0}};
    static const int all[] = {0, 1, 2};
    static const int finite[] = {1, 2};
    static const int twice[] = {2, 2};
    static const int pruned[] = {2, 3};
    enum { N_ROWS = sizeof rows / sizeof rows[0] };
    ch_forest *f;
    ch_forest *g;
    ch_forest_ws *ws = NULL;
    ch_forest_ws *wg = NULL;
    ch__forest_stats st;
    ch_error err = {0};
    BoosterHandle bh;
    ch_buf b;
    double x[N_ROWS * 2];
    double *xm;

    memcpy(x, rows, sizeof x);
    f = zc_forest(all, 3, &b);
    ch__forest_get_stats(f, &st);
    ASSERT_INT_EQ(st.n_classic_trees, 1);
    ASSERT_INT_EQ(st.n_nodes, 7 + 1 + 3);
    ASSERT_OK(ch_forest_ws_new(f, &ws, &err));
    bh = xgb_load(b.data, b.len);
    xm = xgb_margins(bh, x, N_ROWS, 2);
    for (size_t i = 0; i < N_ROWS; i++) {
        double phi[3];
        double phc[3];
        double mc;
        double m = ch_forest_shap(f, rows[i], phi, ws);
        ASSERT(m == xm[i]);
        ASSERT(ch_forest_predict(f, rows[i]) == m);
        ASSERT_OK(ch__forest_shap_classic(f, rows[i], phc, &mc, &err));
        for (int j = 0; j < 3; j++) {
            ASSERT(isfinite(phi[j]));
            ASSERT_NEAR(phi[j], phc[j], TOL_CLASSIC);
        }
        ASSERT_NEAR(phi[0] + phi[1] + phi[2], m, TOL_SUM);
    }
    check_batch(f, x, N_ROWS, 2, "zero cover, a classic tree"); /* classic rows in batches */
    ch_free(xm);
    XGBoosterFree(bh);
    ch_forest_ws_free(ws);
    ch_forest_free(f);
    ch_buf_reset(&b);

    f = zc_forest(finite, 2, &b);
    bh = xgb_load(b.data, b.len);
    check_against(bh, f, x, N_ROWS, 2, N_ROWS, "zero cover, leaf root");
    XGBoosterFree(bh);
    ch_forest_free(f);
    ch_buf_reset(&b);

    /* Unreachable nodes are skipped: the same forest as without them. */
    f = zc_forest(twice, 2, &b);
    ch_buf_reset(&b);
    g = zc_forest(pruned, 2, &b);
    ch_buf_reset(&b);
    ch__forest_get_stats(g, &st);
    ASSERT_INT_EQ(st.n_nodes, 6);
    ASSERT_OK(ch_forest_ws_new(f, &ws, &err));
    ASSERT_OK(ch_forest_ws_new(g, &wg, &err));
    for (size_t i = 0; i < N_ROWS; i++) {
        double phi[3];
        double phg[3];
        ASSERT(ch_forest_shap(f, rows[i], phi, ws) == ch_forest_shap(g, rows[i], phg, wg));
        for (int j = 0; j < 3; j++)
            ASSERT(phi[j] == phg[j]);
    }
    ch_forest_ws_free(wg);
    ch_forest_ws_free(ws);
    ch_forest_free(g);
    ch_forest_free(f);
}

/* Values beyond float's range and infinities: XGBoost's cast makes them
 * +-inf, which compare as numbers (only NaN is missing). */
TEST(infinite_and_huge_inputs)
{
    static const double p_inf[] = {INFINITY, -INFINITY, 1e300, -1e300, 3.5e38, -3.5e38};
    gnode nd[64];
    rng r = {5};
    ch_buf b;
    ch_json *model = NULL;
    ch_forest *f;
    ch_forest_ws *ws = NULL;
    ch_error err = {0};
    double x[4];
    double phi[5];
    double phc[5];
    double mc;

    ch_buf_init(&b, 1 << 20);
    put_model_head(&b, 5);
    for (size_t t = 0; t < 5; t++) {
        size_t n = gen_tree(nd, 64, &r, 4, 4, 0.8, 0);
        if (t > 0)
            ch_buf_puts(&b, ", ");
        put_tree(&b, nd, n, t, 4);
    }
    put_model_tail(&b, 4, "0.5");
    ASSERT_OK(ch_json_parse(b.data, b.len, &model, &err));
    f = load_forest(model, 4);
    ASSERT_OK(ch_forest_ws_new(f, &ws, &err));
    for (size_t k = 0; k < 200; k++) {
        double m;
        double sum = 0;
        for (int j = 0; j < 4; j++)
            x[j] = p_inf[rng_next(&r) % 6];
        m = ch_forest_shap(f, x, phi, ws);
        ASSERT(m == ch_forest_predict(f, x));
        ASSERT_OK(ch__forest_shap_classic(f, x, phc, &mc, &err));
        ASSERT(mc == m);
        for (int j = 0; j < 5; j++) {
            ASSERT_NEAR(phi[j], phc[j], TOL_CLASSIC);
            sum += phi[j];
        }
        ASSERT_NEAR(sum, m, TOL_SUM);
    }
    ch_forest_ws_free(ws);
    ch_forest_free(f);
    ch_json_free(model);
    ch_buf_reset(&b);
}

/* ------------------------------------------------------------------------
 * Models from the project's own "xgboost" family
 * ------------------------------------------------------------------------ */

/* The XGBoost JSON inside ch_model_to_json()'s {"state": ...}, its text
 * (for a booster of our own), and the forest. */
static void family_forest(const ch_model *m, size_t p, ch_json **doc, ch_forest **f,
                          BoosterHandle *bh)
{
    ch_buf b;
    ch_buf st;
    const ch_json *state;
    ch_error err = {0};
    ch_buf_init(&b, (size_t)1 << 30);
    ASSERT_OK(ch_model_to_json(m, &b));
    ASSERT_OK(ch_json_parse(b.data, b.len, doc, &err));
    state = ch_json_get(*doc, "state");
    ASSERT(state != NULL);
    *f = load_forest(state, p);
    ch_buf_init(&st, (size_t)1 << 30);
    ASSERT_OK(ch_json_dump(state, &st));
    *bh = xgb_load(st.data, st.len);
    ch_buf_reset(&st);
    ch_buf_reset(&b);
}

/* Our margins equal the family's own predictions (XGBoost inplace). */
static void check_family_margins(const ch_model *m, const ch_forest *f, const double *x, size_t n,
                                 size_t p)
{
    double *mm = ch_malloc_array(n, sizeof *mm);
    ch_error err = {0};
    ASSERT(mm != NULL);
    ASSERT_OK(ch_model_predict_margin(m, x, n, p, mm, &err));
    for (size_t i = 0; i < n; i++)
        if (ch_forest_predict(f, x + i * p) != mm[i])
            FAIL("row %zu: forest %.9g, ch_model_predict_margin %.9g", i,
                 ch_forest_predict(f, x + i * p), mm[i]);
    ch_free(mm);
}

TEST(project_xgboost_family)
{
    const size_t p = 10;
    const size_t n = 2000;
    double *x = ch_malloc_array(n * p, sizeof *x);
    double *y = ch_malloc_array(n, sizeof *y);
    const ch_model_ops *ops = ch_model_family("xgboost");
    ch_params params;
    ch_dataset d;
    ch_model_fit_opts fo = {7, 1, NULL};
    ch_model *m = NULL;
    ch_json *doc = NULL;
    ch_forest *f = NULL;
    BoosterHandle bh;
    ch_error err = {0};

    ASSERT(x != NULL && y != NULL && ops != NULL);
    gen_rows(x, y, n, p, 21, 0.0); /* the model layer takes finite features only */
    memset(&params, 0, sizeof params);
    ASSERT(ch_params_set(&params, "max_depth", 5) == 0);
    ASSERT(ch_params_set(&params, "n_rounds", 120) == 0);
    ASSERT(ch_params_set(&params, "eta", 0.1) == 0);
    d.x = x;
    d.y = y;
    d.w = NULL;
    d.n_rows = n;
    d.n_features = p;
    ASSERT_OK(ch_model_fit(ops, &params, &d, &fo, &m, NULL, &err));
    family_forest(m, p, &doc, &f, &bh);
    ASSERT_INT_EQ(ch_forest_n_trees(f), 120);
    check_family_margins(m, f, x, n, p);
    check_against(bh, f, x, scaled(500, 10, 20), p, scaled(200, 10, 10),
                  "project family, 120 trees");
    /* A forest for the wrong width is refused. */
    {
        ch_forest *g = NULL;
        ASSERT_ERR(ch_forest_from_xgb_json(ch_json_get(doc, "state"), p + 1, &g, &err), CH_EMODEL);
        ASSERT_CONTAINS(err.msg, "features");
    }
    XGBoosterFree(bh);
    ch_forest_free(f);
    ch_json_free(doc);
    ch_model_free(m);
    ch_free(y);
    ch_free(x);
}

TEST(telco_pipeline_model)
{
    const char *csv = ch_test_telco_csv();
    ch_schema *schema = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    ch_config *cfg = NULL;
    ch_pipeline_spec *spec = NULL;
    ch_pipeline *pl = NULL;
    ch_params params;
    ch_model_fit_opts fo = {42, 1, NULL};
    ch_model *m = NULL;
    ch_json *doc = NULL;
    ch_forest *f = NULL;
    BoosterHandle bh;
    ch_dataset d;
    ch_error err = {0};
    double *x;
    size_t n;
    size_t p;

    if (csv == NULL)
        SKIP("the Telco CSV (WA_Fn-UseC_-Telco-Customer-Churn.csv) is not in the shared data "
             "folder; set CH_SHARED_DATA");
    ASSERT_OK(ch_schema_load_file(ch_test_path("config/telco.schema.json"), &schema, &err));
    ASSERT_OK(ch_ingest_file(schema, csv, NULL, &frame, &rep, &err));
    ch_ingest_report_free(rep);
    ASSERT_OK(ch_config_load(ch_test_path("config/churn.json"), &cfg, &err));
    ASSERT_OK(ch_pipeline_spec_from_json(ch_config_section(cfg, "features"), schema, &spec, &err));
    ASSERT_OK(ch_pipeline_fit(spec, schema, frame, NULL, 0, &pl, &err));
    n = ch_frame_n_rows(frame);
    p = ch_pipeline_n_features(pl);
    x = ch_malloc_array(n * p, sizeof *x);
    ASSERT(x != NULL);
    ASSERT_OK(ch_pipeline_transform_frame(pl, frame, NULL, n, x, NULL, &err));
    d.x = x;
    d.y = ch_frame_num(frame, (size_t)ch_schema_target(schema));
    d.w = NULL;
    d.n_rows = n;
    d.n_features = p;
    memset(&params, 0, sizeof params);
    ASSERT(ch_params_set(&params, "max_depth", 6) == 0);
    ASSERT(ch_params_set(&params, "n_rounds", slow_mode() ? 50 : 300) == 0);
    ASSERT(ch_params_set(&params, "eta", 0.05) == 0);
    ASSERT_OK(ch_model_fit(ch_model_family("xgboost"), &params, &d, &fo, &m, NULL, &err));
    family_forest(m, p, &doc, &f, &bh);
    check_family_margins(m, f, x, n, p);
    check_against(bh, f, x, scaled(n, 10, 100), p, scaled(300, 10, 20), "Telco, trees of depth 6");
    XGBoosterFree(bh);
    ch_forest_free(f);
    ch_json_free(doc);
    ch_model_free(m);
    ch_free(x);
    ch_pipeline_free(pl);
    ch_pipeline_spec_free(spec);
    ch_config_free(cfg);
    ch_frame_free(frame);
    ch_schema_free(schema);
}

/* ------------------------------------------------------------------------
 * Malformed models and allocation failures
 * ------------------------------------------------------------------------ */

/* A valid two-feature model with one three-node tree; cases edit it. */
static const char base_model[] =
    "{\"learner\": {\"gradient_booster\": {\"name\": \"gbtree\", \"model\": {"
    "\"gbtree_model_param\": {\"num_trees\": \"1\"}, \"tree_info\": [0], \"trees\": ["
    "{\"tree_param\": {\"num_nodes\": \"3\", \"size_leaf_vector\": \"0\"},"
    " \"left_children\": [1, -1, -1], \"right_children\": [2, -1, -1],"
    " \"split_indices\": [1, 0, 0], \"split_conditions\": [0.5, -0.25, 0.75],"
    " \"default_left\": [1, 0, 0], \"split_type\": [0, 0, 0],"
    " \"sum_hessian\": [10.0, 4.0, 6.0]}]}},"
    " \"learner_model_param\": {\"base_score\": \"5E-1\", \"num_class\": \"0\","
    " \"num_feature\": \"2\"}, \"objective\": {\"name\": \"binary:logistic\"}}}";

/* 'base_model' with the first 'from' replaced by 'to'. */
static ch_json *edited(const char *from, const char *to)
{
    static char text[4096];
    const char *at = strstr(base_model, from);
    ch_json *j = NULL;
    ch_error err = {0};
    if (at == NULL)
        FAIL("\"%s\" is not in the base model", from);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - base_model), base_model, to,
             at + strlen(from));
    if (ch_json_parse(text, strlen(text), &j, &err) != CH_OK)
        FAIL("case text does not parse: %s", err.msg);
    return j;
}

TEST(malformed_models)
{
    static const struct {
        const char *from;
        const char *to;
        ch_err code;
        const char *msg;
    } cases[] = {
        {"{\"learner\": {", "{\"learnr\": {", CH_EFORMAT, "learner: missing"},
        {"\"binary:logistic\"", "\"reg:squarederror\"", CH_EMODEL, "reg:squarederror"},
        {"\"name\": \"binary:logistic\"", "\"nam\": \"binary:logistic\"", CH_EFORMAT,
         "learner.objective.name"},
        {"\"gbtree\"", "\"dart\"", CH_EMODEL, "dart"},
        {"\"gbtree\"", "\"gblinear\"", CH_EMODEL, "gblinear"},
        {"\"5E-1\"", "\"half\"", CH_EFORMAT, "base_score"},
        {"\"5E-1\"", "\"1.5\"", CH_EMODEL, "base_score"},
        {"\"5E-1\"", "0", CH_EMODEL, "base_score"},
        {"\"num_feature\": \"2\"", "\"num_feature\": \"two\"", CH_EFORMAT, "num_feature"},
        {"\"num_feature\": \"2\"", "\"num_feature\": \"1\"", CH_EFORMAT,
         "trees[0].split_indices[0]"},
        {"\"num_class\": \"0\"", "\"num_class\": \"3\"", CH_EMODEL, "num_class"},
        {"\"tree_info\": [0]", "\"tree_info\": [1]", CH_EMODEL, "tree_info[0]"},
        {"\"tree_info\": [0]", "\"tree_info\": [0, 0]", CH_EFORMAT, "tree_info"},
        {"\"num_trees\": \"1\"", "\"num_trees\": \"2\"", CH_EFORMAT, "num_trees"},
        {"\"trees\": [", "\"trees\": 5, \"x\": [", CH_EFORMAT, "trees: expected array"},
        {"\"trees\": [", "\"trees\": [\"t\"], \"unused\": [", CH_EFORMAT,
         "trees[0]: expected object"},
        {"\"left_children\": [1, -1, -1]", "\"left_children\": [1, -1]", CH_EFORMAT,
         "trees[0].right_children: 3 entries"},
        {"\"left_children\": [1, -1, -1]", "\"left_children\": [3, -1, -1]", CH_EFORMAT,
         "trees[0].left_children[0]"},
        {"\"left_children\": [1, -1, -1]", "\"left_children\": [0, -1, -1]", CH_EFORMAT,
         "trees[0].left_children[0]"},
        {"\"left_children\": [1, -1, -1]", "\"left_children\": [1.5, -1, -1]", CH_EFORMAT,
         "trees[0].left_children[0]"},
        {"\"left_children\": [1, -1, -1]", "\"left_children\": [2, -1, -1]", CH_EFORMAT,
         "children 2 and 2"},
        {"\"left_children\": [1, -1, -1]", "\"left_children\": [1, -1, 1]", CH_EFORMAT,
         "trees[0]: node 2 has children"},
        {"\"left_children\": [1, -1, -1], \"right_children\": [2, -1, -1]",
         "\"left_children\": [1, 2, -1], \"right_children\": [2, 1, -1]", CH_EFORMAT,
         "reached twice"},
        {"\"split_indices\": [1, 0, 0]", "\"split_indices\": [2, 0, 0]", CH_EFORMAT,
         "trees[0].split_indices[0]"},
        {"\"split_indices\": [1, 0, 0]", "\"split_indices\": [-1, 0, 0]", CH_EFORMAT,
         "trees[0].split_indices[0]"},
        {"\"split_conditions\": [0.5,", "\"split_conditions\": [\"0.5\",", CH_EFORMAT,
         "trees[0].split_conditions[0]"},
        {"\"split_conditions\": [0.5,", "\"split_conditions\": [1e39,", CH_EFORMAT,
         "trees[0].split_conditions[0]"},
        {"\"default_left\": [1, 0, 0]", "\"default_left\": [2, 0, 0]", CH_EFORMAT,
         "trees[0].default_left[0]"},
        {"\"split_type\": [0, 0, 0]", "\"split_type\": [1, 0, 0]", CH_EMODEL, "categorical"},
        {"\"split_type\": [0, 0, 0]", "\"split_type\": [0]", CH_EFORMAT, "split_type"},
        {"\"sum_hessian\": [10.0,", "\"sum_hessian\": [-1.0,", CH_EFORMAT,
         "trees[0].sum_hessian[0]"},
        {"\"sum_hessian\": [10.0,", "\"sum_hessian\": [0.0,", CH_EFORMAT,
         "trees[0].sum_hessian[0]"},
        {"\"sum_hessian\": [10.0, 4.0, 6.0]", "\"sum_hessian\": 1", CH_EFORMAT,
         "trees[0].sum_hessian: expected array"},
        {"\"size_leaf_vector\": \"0\"", "\"size_leaf_vector\": \"2\"", CH_EMODEL,
         "size_leaf_vector"},
        {"\"num_nodes\": \"3\"", "\"num_nodes\": \"4\"", CH_EFORMAT, "num_nodes"},
        {"\"left_children\": [1, -1, -1], \"right_children\": [2, -1, -1],"
         " \"split_indices\": [1, 0, 0], \"split_conditions\": [0.5, -0.25, 0.75],"
         " \"default_left\": [1, 0, 0], \"split_type\": [0, 0, 0],"
         " \"sum_hessian\": [10.0, 4.0, 6.0]",
         "\"left_children\": [], \"right_children\": [], \"split_indices\": [],"
         " \"split_conditions\": [], \"default_left\": [], \"sum_hessian\": []",
         CH_EFORMAT, "empty tree"},
    };
    ch_error err;
    ch_forest *f = NULL;
    ch_json *j;

    /* The base model itself loads. */
    j = edited("{", "{");
    ASSERT_OK(ch_forest_from_xgb_json(j, 0, &f, &err));
    ASSERT_INT_EQ(ch_forest_n_features(f), 2);
    ch_forest_free(f);
    f = NULL;
    ASSERT_ERR(ch_forest_from_xgb_json(j, 3, &f, &err), CH_EMODEL);
    ch_json_free(j);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ch_err rc;
        j = edited(cases[k].from, cases[k].to);
        memset(&err, 0, sizeof err);
        rc = ch_forest_from_xgb_json(j, 0, &f, &err);
        if (rc != cases[k].code)
            FAIL("case %zu (%s): expected %s, got %s: %s", k, cases[k].to,
                 ch_strerror(cases[k].code), ch_strerror(rc), err.msg);
        ASSERT(f == NULL);
        if (strstr(err.msg, cases[k].msg) == NULL)
            FAIL("case %zu: message \"%s\" does not mention \"%s\"", k, err.msg, cases[k].msg);
        ch_json_free(j);
    }
    {
        /* Not an object at all. */
        ch_json *arr = NULL;
        ASSERT_OK(ch_json_parse("[1, 2]", 6, &arr, NULL));
        ASSERT_ERR(ch_forest_from_xgb_json(arr, 0, &f, &err), CH_EFORMAT);
        ch_json_free(arr);
    }
}

TEST(allocation_failures)
{
    static const char *const params[] = {"max_depth", "5", "eta", "0.3", NULL};
    const size_t p = 6;
    const size_t n = 500;
    double *x = ch_malloc_array(n * p, sizeof *x);
    double *y = ch_malloc_array(n, sizeof *y);
    BoosterHandle b;
    ch_json *model;
    long k;
    ch_err rc = CH_ENOMEM;

    ASSERT(x != NULL && y != NULL);
    gen_rows(x, y, n, p, 3, 0.1);
    b = xgb_train(x, y, n, p, params, 20);
    model = xgb_json(b);
    for (k = 1; rc != CH_OK; k++) {
        ch_forest *f = NULL;
        ch_forest_ws *ws = NULL;
        ch_error err = {0};
        ch_alloc_fail_after(k);
        rc = ch_forest_from_xgb_json(model, p, &f, &err);
        if (rc == CH_OK) {
            rc = ch_forest_ws_new(f, &ws, &err);
            ASSERT(rc == CH_OK || ws == NULL);
        }
        ch_alloc_fail_after(0);
        if (rc != CH_OK) {
            ASSERT_INT_EQ(rc, CH_ENOMEM);
            ASSERT_CONTAINS(err.msg, "out of memory");
        } else {
            double phi[7];
            double m = ch_forest_shap(f, x, phi, ws);
            ASSERT(m == ch_forest_predict(f, x));
        }
        ch_forest_ws_free(ws);
        ch_forest_free(f);
        ASSERT(k < 1000);
    }
    ASSERT(k > 3);
    ch_json_free(model);
    XGBoosterFree(b);
    ch_free(y);
    ch_free(x);
}

TEST(batch_edge_cases)
{
    static const char *const params[] = {"max_depth", "3", NULL};
    const size_t p = 4;
    const size_t n = 1500;
    double *x = ch_malloc_array(n * p, sizeof *x);
    double *y = ch_malloc_array(n, sizeof *y);
    double *out = ch_malloc_array(n, sizeof *out);
    BoosterHandle b;
    ch_json *model;
    ch_forest *f;
    ch_error err = {0};

    ASSERT(x != NULL && y != NULL && out != NULL);
    gen_rows(x, y, n, p, 4, 0.1);
    b = xgb_train(x, y, n, p, params, 13); /* not a multiple of the group of 8 */
    model = xgb_json(b);
    f = load_forest(model, p);
    ASSERT_OK(ch_forest_predict_batch(f, x, 0, out, 4, &err));
    ASSERT_ERR(ch_forest_predict_batch(f, NULL, 3, out, 1, &err), CH_EINVAL);
    for (int t = 0; t <= 70; t += 7) {
        for (size_t rows = 1; rows <= n; rows = rows * 3 + 1) {
            ASSERT_OK(ch_forest_predict_batch(f, x, rows, out, t, &err));
            for (size_t i = 0; i < rows; i++)
                ASSERT(out[i] == ch_forest_predict(f, x + i * p));
        }
    }
    ch_forest_free(f);
    ch_json_free(model);
    XGBoosterFree(b);
    ch_free(out);
    ch_free(y);
    ch_free(x);
}

TEST_MAIN(T(depth2_10_trees), T(depth4_100_trees_base_score), T(depth6_100_trees_45_features),
          T(depth6_500_trees), T(depth8_100_trees_5_features), T(depth8_500_trees),
          T(depth10_exact_method), T(generated_deep_chains), T(generated_bushy_repeats),
          T(generated_mixed_depths), T(generated_wide_rows), T(threads_share_a_forest),
          T(zero_cover_leaf_root_unreachable), T(infinite_and_huge_inputs),
          T(project_xgboost_family), T(telco_pipeline_model), T(malformed_models),
          T(allocation_failures), T(batch_edge_cases))
