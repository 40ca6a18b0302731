/*
 * infer.c -- latency and throughput of the compiled forest against
 * libxgboost, in the same run on the same model and rows.
 *
 * usage: build/bench/infer [TREES [DEPTH [FEATURES [CALLS]]]]
 *        defaults: 300 trees, depth 6, 45 features, 100000 calls
 *        CH_FOREST_KERNEL=generic|avx2|avx512 picks the SHAP kernel set
 *        (default: the best the CPU runs)
 *
 * Trains a binary:logistic booster (hist, eta 0.1) on 20000 generated rows
 * with 10% NaN cells, loads its JSON with ch_forest_from_xgb_json(), checks
 * that both give the same margins, then measures, each call timed on its
 * own with CLOCK_MONOTONIC (median and 99th percentile per call):
 *   predict   ch_forest_predict vs XGBoosterPredictFromDense on one row
 *             (inplace prediction, its fastest single-row path; the row is
 *             copied into a buffer whose array interface is built once)
 *   explain   ch_forest_shap (margin + contributions) vs XGBoost's
 *             pred_contribs for one row: XGDMatrixCreateFromDense +
 *             XGBoosterPredictFromDMatrix {"type": 2} + XGDMatrixFree, the
 *             least a caller must do (fewer calls: it is slow; the count is
 *             printed); the prediction call alone is reported too
 *   explain8  ch_forest_shap_batch on 8 rows per call (how batch scoring
 *             explains), per row, after checking that it gives every row
 *             the same bits as ch_forest_shap
 *   batch     rows/s of ch_forest_predict_batch on 2 threads vs
 *             XGBoosterPredictFromDense with nthread 2, 100000 rows, best of 5
 * and prints the ratios against the targets:
 *   single-row predict >= 10x faster than XGBoost inplace;
 *   predict+SHAP <= 50 us per row and >= 20x faster than pred_contribs;
 *   batch throughput >= XGBoost's with the same thread count.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xgboost/c_api.h>

#include "../src/lib/forest_int.h"
#include "ch/alloc.h"
#include "ch/forest.h"
#include "ch/json.h"

#define N_TRAIN 20000
#define N_EVAL  4096
#define N_BATCH 100000

static void xgb_check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "infer: %s: %s\n", what, XGBGetLastError());
        exit(2);
    }
}

static void *xalloc(size_t n, size_t size)
{
    void *p = ch_malloc_array(n, size);
    if (p == NULL) {
        fprintf(stderr, "infer: out of memory\n");
        exit(2);
    }
    return p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and 99th percentile of 'n' times, in microseconds. */
static void summarize(double *t, size_t n, double *med, double *p99)
{
    qsort(t, n, sizeof *t, cmp);
    *med = t[n / 2] * 1e6;
    *p99 = t[(size_t)((double)n * 0.99)] * 1e6;
}

/* splitmix64 */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unif(uint64_t *s)
{
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_norm(uint64_t *s)
{
    double u = rng_unif(s);
    double v = rng_unif(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Rows like the churn features: normals, every third feature a small
 * integer, 10% NaN; labels from a log-odds that uses a dozen of them. */
static void gen(double *x, float *y, size_t n, size_t p, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        double *r = x + i * p;
        double lo = -0.5;
        for (size_t j = 0; j < p; j++) {
            r[j] = j % 3 == 2 ? floor(4 * rng_unif(&seed)) : rng_norm(&seed);
            if (rng_unif(&seed) < 0.1)
                r[j] = NAN;
        }
        for (size_t j = 0; j < p && j < 12; j++) {
            double v = isnan(r[j]) ? 0.0 : r[j];
            lo += (j % 2 ? 0.4 : -0.3) * v + (j % 4 == 1 ? 0.3 * sin(2 * v) : 0.0);
        }
        if (p > 3)
            lo += (isnan(r[0]) ? 0 : r[0]) * (isnan(r[3]) ? 0 : r[3]) * 0.5;
        if (y != NULL)
            y[i] = rng_unif(&seed) < 1.0 / (1.0 + exp(-lo)) ? 1.0f : 0.0f;
    }
}

static void iface(char *out, size_t cap, const double *x, size_t n, size_t p)
{
    snprintf(out, cap,
             "{\"data\": [%" PRIuPTR ", true], \"shape\": [%zu, %zu], \"typestr\": \"<f8\", "
             "\"version\": 3}",
             (uintptr_t)x, n, p);
}

static const char *met(int ok)
{
    return ok ? "met" : "NOT met";
}

int main(int argc, char **argv)
{
    int n_trees = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 300;
    int depth = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 6;
    size_t p = argc > 3 ? (size_t)strtol(argv[3], NULL, 10) : 45;
    size_t calls = argc > 4 ? (size_t)strtoull(argv[4], NULL, 10) : 100000;
    size_t xgb_shap_calls = 2000;
    char num[32];
    char arr[256];
    double *xt = xalloc((size_t)N_TRAIN * p, sizeof *xt);
    float *yt = xalloc(N_TRAIN, sizeof *yt);
    double *xe = xalloc((size_t)N_EVAL * p, sizeof *xe);
    double *xb = xalloc((size_t)N_BATCH * p, sizeof *xb);
    double *out = xalloc(N_BATCH, sizeof *out);
    double *row = xalloc(p, sizeof *row);
    double *phi = xalloc(p + 1, sizeof *phi);
    double *phib = xalloc(8 * (p + 1), sizeof *phib);
    double mb[8];
    double *times = xalloc(calls > xgb_shap_calls ? calls : xgb_shap_calls, sizeof *times);
    double *times2 = xalloc(xgb_shap_calls, sizeof *times2);
    DMatrixHandle dtrain;
    BoosterHandle b;
    bst_ulong len;
    const char *text;
    ch_json *model = NULL;
    ch_forest *f = NULL;
    ch_forest_ws *ws = NULL;
    ch_error err = {0};
    ch__forest_stats st;
    const bst_ulong *shape;
    bst_ulong dim;
    const float *res;
    double sink = 0;
    double p_med, p_p99, x_med, x_p99, s_med, s_p99, c_med, c_p99, c2_med, c2_p99, b_med, b_p99;
    size_t batch_diff = 0;
    double ours_rps = 0;
    double xgb_rps = 0;
    size_t mismatches = 0;

    if (n_trees < 1 || depth < 1 || p < 4 || calls < 100) {
        fprintf(stderr, "usage: %s [TREES [DEPTH [FEATURES [CALLS]]]]\n", argv[0]);
        return 1;
    }

    /* The model. */
    gen(xt, yt, N_TRAIN, p, 1);
    gen(xe, NULL, N_EVAL, p, 2);
    gen(xb, NULL, N_BATCH, p, 3);
    iface(arr, sizeof arr, xt, N_TRAIN, p);
    xgb_check(XGDMatrixCreateFromDense(arr, "{\"missing\": NaN, \"nthread\": 2}", &dtrain),
              "training matrix");
    xgb_check(XGDMatrixSetFloatInfo(dtrain, "label", yt, N_TRAIN), "labels");
    xgb_check(XGBoosterCreate(&dtrain, 1, &b), "booster");
    xgb_check(XGBoosterSetParam(b, "verbosity", "0"), "verbosity");
    xgb_check(XGBoosterSetParam(b, "objective", "binary:logistic"), "objective");
    xgb_check(XGBoosterSetParam(b, "tree_method", "hist"), "tree_method");
    xgb_check(XGBoosterSetParam(b, "eta", "0.1"), "eta");
    xgb_check(XGBoosterSetParam(b, "base_score", "0.5"), "base_score");
    snprintf(num, sizeof num, "%d", depth);
    xgb_check(XGBoosterSetParam(b, "max_depth", num), "max_depth");
    xgb_check(XGBoosterSetParam(b, "nthread", "2"), "nthread");
    for (int it = 0; it < n_trees; it++)
        xgb_check(XGBoosterUpdateOneIter(b, it, dtrain), "training");
    XGDMatrixFree(dtrain);
    xgb_check(XGBoosterSaveModelToBuffer(b, "{\"format\": \"json\"}", &len, &text), "saving");
    if (ch_json_parse(text, (size_t)len, &model, &err) != CH_OK ||
        ch_forest_from_xgb_json(model, p, &f, &err) != CH_OK ||
        ch_forest_ws_new(f, &ws, &err) != CH_OK) {
        fprintf(stderr, "infer: %s\n", err.msg);
        return 2;
    }
    ch__forest_get_stats(f, &st);
    if (getenv("CH_FOREST_KERNEL") != NULL &&
        ch__forest_set_kernel(f, getenv("CH_FOREST_KERNEL")) != 0) {
        fprintf(stderr, "infer: CH_FOREST_KERNEL=%s: unknown, or not on this CPU\n",
                getenv("CH_FOREST_KERNEL"));
        return 1;
    }

    /* Same margins, or the comparison means nothing. */
    iface(arr, sizeof arr, xe, N_EVAL, p);
    xgb_check(XGBoosterPredictFromDense(b, arr,
                                        "{\"type\": 1, \"training\": false, \"iteration_begin\": "
                                        "0, \"iteration_end\": 0, \"strict_shape\": false, "
                                        "\"missing\": NaN, \"cache_id\": 0}",
                                        NULL, &shape, &dim, &res),
              "predicting");
    for (size_t i = 0; i < N_EVAL; i++)
        mismatches += ch_forest_predict(f, xe + i * p) != (double)res[i];

    printf("== bench/infer: %d trees, depth %d, %zu features (%zu splits, %zu on repeated "
           "features), %s SHAP kernel, %zu KB of nodes\n",
           n_trees, depth, p, st.n_internal, st.n_repeat, ch__forest_kernel(f),
           st.model_bytes / 1024);
    printf("check      margins equal to XGBoost's on %d rows: %s\n", N_EVAL,
           mismatches == 0 ? "yes" : "NO");

    /* Single-row predict: ours. */
    for (size_t i = 0; i < 20000; i++)
        sink += ch_forest_predict(f, xe + (i % N_EVAL) * p);
    for (size_t i = 0; i < calls; i++) {
        const double *r = xe + (i % N_EVAL) * p;
        double a = now();
        sink += ch_forest_predict(f, r);
        times[i] = now() - a;
    }
    summarize(times, calls, &p_med, &p_p99);

    /* Single-row predict: XGBoost inplace. One thread per call, as a
     * server scoring small requests from many threads would set it. */
    xgb_check(XGBoosterSetParam(b, "nthread", "1"), "nthread");
    iface(arr, sizeof arr, row, 1, p);
    for (size_t i = 0; i < calls + 2000; i++) {
        const char *cfg = "{\"type\": 1, \"training\": false, \"iteration_begin\": 0, "
                          "\"iteration_end\": 0, \"strict_shape\": false, \"missing\": NaN, "
                          "\"cache_id\": 0}";
        double a;
        memcpy(row, xe + (i % N_EVAL) * p, p * sizeof *row);
        a = now();
        xgb_check(XGBoosterPredictFromDense(b, arr, cfg, NULL, &shape, &dim, &res), "inplace");
        sink += res[0];
        if (i >= 2000)
            times[i - 2000] = now() - a;
    }
    summarize(times, calls, &x_med, &x_p99);
    printf("predict    ours     median %8.2f us   p99 %8.2f us   (%zu calls, ch_forest_predict)\n",
           p_med, p_p99, calls);
    printf("predict    xgboost  median %8.2f us   p99 %8.2f us   (%zu calls, "
           "XGBoosterPredictFromDense, one row, nthread 1)\n",
           x_med, x_p99, calls);
    printf("ratio      xgboost / ours (median) = %.1fx   target >= 10x: %s\n", x_med / p_med,
           met(x_med / p_med >= 10));

    /* Predict + SHAP: ours. */
    for (size_t i = 0; i < 5000; i++)
        sink += ch_forest_shap(f, xe + (i % N_EVAL) * p, phi, ws);
    for (size_t i = 0; i < calls; i++) {
        const double *r = xe + (i % N_EVAL) * p;
        double a = now();
        sink += ch_forest_shap(f, r, phi, ws);
        times[i] = now() - a;
        sink += phi[i % (p + 1)];
    }
    summarize(times, calls, &s_med, &s_p99);

    /* pred_contribs for one row: a DMatrix is the only way in. */
    for (size_t i = 0; i < xgb_shap_calls + 50; i++) {
        DMatrixHandle d;
        double a;
        double c;
        memcpy(row, xe + (i % N_EVAL) * p, p * sizeof *row);
        a = now();
        xgb_check(XGDMatrixCreateFromDense(arr, "{\"missing\": NaN, \"nthread\": 1}", &d),
                  "matrix");
        c = now();
        xgb_check(XGBoosterPredictFromDMatrix(b, d,
                                              "{\"type\": 2, \"training\": false, "
                                              "\"iteration_begin\": 0, \"iteration_end\": 0, "
                                              "\"strict_shape\": false}",
                                              &shape, &dim, &res),
                  "pred_contribs");
        sink += res[0];
        if (i >= 50)
            times2[i - 50] = now() - c;
        XGDMatrixFree(d);
        if (i >= 50)
            times[i - 50] = now() - a;
    }
    summarize(times, xgb_shap_calls, &c_med, &c_p99);
    summarize(times2, xgb_shap_calls, &c2_med, &c2_p99);
    printf("explain    ours     median %8.2f us   p99 %8.2f us   (%zu calls, ch_forest_shap: "
           "margin + %zu contributions + bias)\n",
           s_med, s_p99, calls, p);
    printf("explain    xgboost  median %8.2f us   p99 %8.2f us   (%zu calls, DMatrix + "
           "pred_contribs + free, nthread 1)\n",
           c_med, c_p99, xgb_shap_calls);
    printf("           xgboost  median %8.2f us   p99 %8.2f us   (the same, "
           "XGBoosterPredictFromDMatrix alone)\n",
           c2_med, c2_p99);
    printf("ratio      xgboost / ours (median) = %.1fx (%.1fx against the prediction call "
           "alone)   target >= 20x: %s\n",
           c_med / s_med, c2_med / s_med, met(c_med / s_med >= 20));
    printf("target     predict+SHAP median <= 50 us: %s (p99 %.2f us)\n", met(s_med <= 50), s_p99);

    /* Predict + SHAP, 8 rows per call: the same bits, then the time. */
    for (size_t i = 0; i + 8 <= N_EVAL; i += 8) {
        ch_forest_shap_batch(f, xe + i * p, 8, phib, mb, ws);
        for (size_t r = 0; r < 8; r++) {
            batch_diff += ch_forest_shap(f, xe + (i + r) * p, phi, ws) != mb[r];
            batch_diff += memcmp(phi, phib + r * (p + 1), (p + 1) * sizeof *phi) != 0;
        }
    }
    for (size_t i = 0; i < calls / 8; i++) {
        const double *r = xe + ((i * 8) % (N_EVAL - 7)) * p;
        double a = now();
        ch_forest_shap_batch(f, r, 8, phib, mb, ws);
        times[i] = (now() - a) / 8;
        sink += mb[i % 8] + phib[i % (p + 1)];
    }
    summarize(times, calls / 8, &b_med, &b_p99);
    printf("explain8   ours     median %8.2f us   p99 %8.2f us   per row (%zu calls of 8 rows, "
           "ch_forest_shap_batch; %.2fx the rows/s of one at a time)\n",
           b_med, b_p99, calls / 8, s_med / b_med);
    printf("check      batch contributions and margins the same bits as one row at a time on %d "
           "rows: %s\n",
           N_EVAL, batch_diff == 0 ? "yes" : "NO");
    mismatches += batch_diff;

    /* Batch throughput, 2 threads each, best of 5. */
    xgb_check(XGBoosterSetParam(b, "nthread", "2"), "nthread");
    iface(arr, sizeof arr, xb, N_BATCH, p);
    for (int rep = 0; rep < 6; rep++) {
        double a = now();
        double dt;
        if (ch_forest_predict_batch(f, xb, N_BATCH, out, 2, &err) != CH_OK) {
            fprintf(stderr, "infer: %s\n", err.msg);
            return 2;
        }
        dt = now() - a;
        if (rep > 0 && N_BATCH / dt > ours_rps)
            ours_rps = N_BATCH / dt;
        a = now();
        xgb_check(XGBoosterPredictFromDense(b, arr,
                                            "{\"type\": 1, \"training\": false, "
                                            "\"iteration_begin\": 0, \"iteration_end\": 0, "
                                            "\"strict_shape\": false, \"missing\": NaN, "
                                            "\"cache_id\": 0}",
                                            NULL, &shape, &dim, &res),
                  "batch");
        dt = now() - a;
        if (rep > 0 && N_BATCH / dt > xgb_rps)
            xgb_rps = N_BATCH / dt;
        if (rep == 0)
            for (size_t i = 0; i < N_BATCH; i++)
                mismatches += out[i] != (double)res[i];
    }
    printf("batch      ours     %10.0f rows/s   (%d rows, 2 threads, best of 5)\n", ours_rps,
           N_BATCH);
    printf("batch      xgboost  %10.0f rows/s   (%d rows, nthread 2, best of 5)\n", xgb_rps,
           N_BATCH);
    printf("ratio      ours / xgboost = %.2fx   target >= 1x: %s\n", ours_rps / xgb_rps,
           met(ours_rps >= xgb_rps));
    if (mismatches != 0)
        printf("check      %zu margins differ from XGBoost's\n", mismatches);
    fprintf(stderr, "(checksum %g)\n", sink);

    ch_forest_ws_free(ws);
    ch_forest_free(f);
    ch_json_free(model);
    XGBoosterFree(b);
    ch_free(times2);
    ch_free(times);
    ch_free(phib);
    ch_free(phi);
    ch_free(row);
    ch_free(out);
    ch_free(xb);
    ch_free(xe);
    ch_free(yt);
    ch_free(xt);
    return mismatches == 0 ? 0 : 3;
}
