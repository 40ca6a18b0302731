/*
 * drift.c -- timings of the monitoring statistics (include/ch/drift.h) at
 * the sizes monitoring uses: a window of 1M values per column against a
 * stored reference.
 *
 * usage: build/bench/drift [N]   (default N = 1000000)
 *
 * Prints the best of 5 runs, in ms, of:
 *   sort        ch_drift_sort vs qsort of N doubles (a normal bulk with a
 *               heavy-tailed tenth, 1% ties on a grid)
 *   bins        ch_drift_bin_counts of N values into 10 quantile bins
 *   ks_counts   ch_drift_ks_bin_counts + ch_drift_ks_counts of N values
 *               against a 4096-value reference (D and p without sorting)
 *   wasserstein ch_drift_wasserstein of two sorted samples of N values
 *   ks_sorted   ch_drift_ks of two sorted samples of N values
 *   cbpe        ch_drift_cbpe of N probabilities
 *   bootstrap   ch_drift_bootstrap, ROC AUC and F1, n = 50000, 200 replicates
 * Single-threaded; the library functions are thread-safe, so columns can
 * be spread over cores.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/drift.h"

#define RUNS  5
#define N_REF 4096

static uint64_t rng_state = 12345;

static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double unif(void)
{
    return ((double)(next_u64() >> 11) + 0.5) * 0x1.0p-53;
}

static double draw(double shift)
{
    double u = unif();
    if (u < 0.01)
        return floor(10.0 * unif()); /* ties */
    if (u < 0.1)
        return shift + tan(3.141592653589793 * (unif() - 0.5)); /* Cauchy tail */
    return shift + sqrt(-2.0 * log(unif())) * cos(6.283185307179586 * unif());
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *xalloc(size_t n, size_t size)
{
    void *p = ch_malloc_array(n, size);
    if (p == NULL) {
        fprintf(stderr, "drift: out of memory\n");
        exit(2);
    }
    return p;
}

static void check(ch_err rc, const ch_error *e, const char *what)
{
    if (rc != CH_OK) {
        fprintf(stderr, "drift: %s: %s\n", what, e->msg);
        exit(2);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    double *v = xalloc(n, sizeof *v);
    double *w = xalloc(n, sizeof *w);
    double *sa = xalloc(n, sizeof *sa);
    double *sb = xalloc(n, sizeof *sb);
    double *ref = xalloc(N_REF, sizeof *ref);
    double *counts = xalloc(2 * N_REF + 1, sizeof *counts);
    double *y = xalloc(50000, sizeof *y);
    double *p = xalloc(50000, sizeof *p);
    double edges[9];
    double bins[10];
    size_t n_edges;
    double best;
    double t0;
    double d = 0.0;
    ch_drift_test test;
    ch_drift_perf perf;
    ch_error e;

    if (n < 2) {
        fprintf(stderr, "usage: drift [N >= 2]\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = draw(0.0);
    for (size_t i = 0; i < N_REF; i++)
        ref[i] = draw(0.0);
    check(ch_drift_sort(ref, N_REF, &e), &e, "sort reference");
    printf("drift bench: N = %zu, reference %d values, best of %d\n", n, N_REF, RUNS);

    best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        memcpy(w, v, n * sizeof *w);
        t0 = now_ms();
        check(ch_drift_sort(w, n, &e), &e, "sort");
        best = fmin(best, now_ms() - t0);
    }
    memcpy(sa, w, n * sizeof *sa);
    printf("  sort         ch_drift_sort %8.2f ms", best);
    best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        memcpy(w, v, n * sizeof *w);
        t0 = now_ms();
        qsort(w, n, sizeof *w, cmp_double);
        best = fmin(best, now_ms() - t0);
    }
    printf("   qsort %8.2f ms\n", best);
    if (memcmp(w, sa, n * sizeof *w) != 0) {
        for (size_t i = 0; i < n; i++)
            if (w[i] != sa[i]) {
                fprintf(stderr, "drift: radix sort differs from qsort at %zu\n", i);
                return 2;
            }
    }

    check(ch_drift_edges(ref, N_REF, 10, edges, &n_edges, &e), &e, "edges");
    best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        t0 = now_ms();
        check(ch_drift_bin_counts(edges, n_edges, v, n, bins, &e), &e, "bin counts");
        best = fmin(best, now_ms() - t0);
    }
    printf("  bins         %zu bins         %8.2f ms\n", n_edges + 1, best);

    best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        t0 = now_ms();
        check(ch_drift_ks_bin_counts(ref, N_REF, v, n, counts, &e), &e, "ks bin counts");
        check(ch_drift_ks_counts(ref, N_REF, counts, &test, &e), &e, "ks counts");
        best = fmin(best, now_ms() - t0);
    }
    printf("  ks_counts    D %.6f p %.3g %8.2f ms\n", test.stat, test.p, best);

    for (size_t i = 0; i < n; i++)
        sb[i] = draw(0.01);
    check(ch_drift_sort(sb, n, &e), &e, "sort");
    best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        t0 = now_ms();
        check(ch_drift_wasserstein(sa, n, sb, n, &d, &e), &e, "wasserstein");
        best = fmin(best, now_ms() - t0);
    }
    printf("  wasserstein  W1 %.6f     %8.2f ms\n", d, best);

    best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        t0 = now_ms();
        check(ch_drift_ks(sa, n, sb, n, &test, &e), &e, "ks");
        best = fmin(best, now_ms() - t0);
    }
    printf("  ks_sorted    D %.6f p %.3g %8.2f ms\n", test.stat, test.p, best);

    for (size_t i = 0; i < n; i++)
        w[i] = 1.0 / (1.0 + exp(-v[i]));
    best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        t0 = now_ms();
        check(ch_drift_cbpe(w, n, 0.5, &perf, &e), &e, "cbpe");
        best = fmin(best, now_ms() - t0);
    }
    printf("  cbpe         AUC %.4f      %8.2f ms\n", perf.roc_auc, best);

    for (size_t i = 0; i < 50000; i++) {
        p[i] = 1.0 / (1.0 + exp(-draw(0.0)));
        y[i] = unif() < p[i] ? 1.0 : 0.0;
    }
    {
        static const ch_drift_metric metrics[] = {CH_DRIFT_ROC_AUC, CH_DRIFT_F1};
        static const char *const names[] = {"ROC AUC", "F1"};
        for (int k = 0; k < 2; k++) {
            double lo = 0.0;
            double hi = 0.0;
            size_t skipped = 0;
            best = INFINITY;
            for (int r = 0; r < RUNS; r++) {
                t0 = now_ms();
                check(ch_drift_bootstrap(metrics[k], y, p, 50000, 0.5, 200, 7, 0.95, &lo, &hi,
                                         &skipped, &e),
                      &e, "bootstrap");
                best = fmin(best, now_ms() - t0);
            }
            printf("  bootstrap    %-7s [%.4f, %.4f] %8.2f ms\n", names[k], lo, hi, best);
        }
    }
    ch_free(v);
    ch_free(w);
    ch_free(sa);
    ch_free(sb);
    ch_free(ref);
    ch_free(counts);
    ch_free(y);
    ch_free(p);
    return 0;
}
