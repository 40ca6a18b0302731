/*
 * test_drift.c -- monitoring statistics, through include/ch/drift.h (and
 * metrics.h and split.h, whose functions the bootstrap and the
 * label-free estimates are defined by).
 *
 * Three kinds of check:
 *   - tiny cases worked out by hand (in the comments next to them);
 *   - slow, obviously correct references written here: qsort for the
 *     radix sort, the full two-sample KS for KS from counts, all O(n^2)
 *     pairs for the expected AUC, explicit resampling with metrics.h for
 *     the bootstrap, closed forms of the chi-square survival function;
 *   - scipy and numpy (tests/oracle/drift_ref.py, run as /usr/bin/python3)
 *     on generated samples with ties, heavy tails, very different sizes,
 *     k = 2 and k = 200 categories and empty bins. Tolerances, relative to
 *     scipy's value, with the largest deviation measured:
 *       KS statistic D               exact    (the same divisions as scipy)
 *       KS p-values, kstwo.sf        1e-10    (3.6e-12 over every region)
 *       chi-square survival          1e-12    (4.6e-13; dof 1..500, p down
 *                                              to 1e-300; below the smallest
 *                                              normal double scipy may keep
 *                                              a subnormal, we return 0)
 *       chi2_contingency stat, p     1e-12    (9.3e-14)
 *       Jensen-Shannon               1e-12    (1.1e-14)
 *         near-identical counts      1e-8     (1.2e-9: scipy's error; its
 *                                              two sums cancel, ours is off
 *                                              by 1.6e-14 from a 50-digit
 *                                              computation)
 *       Wasserstein-1                1e-12    (2.4e-16)
 *       PSI                          1e-12    (7.1e-16)
 *       edges, bin counts, BH, Holm  exact
 * The scipy test skips, saying why, when /usr/bin/python3 cannot import
 * scipy (apt install python3-scipy). Random data comes from a splitmix64
 * generator with fixed seeds, so every run is identical. Set
 * CH_TEST_VERBOSE=1 to print the largest deviation per measure.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/drift.h"
#include "ch/metrics.h"
#include "ch/split.h"
#include "../harness.h"

/* ---- helpers -------------------------------------------------------------- */

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

/* Uniform in (0, 1). */
static double rng_unif(rng *r)
{
    return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

static size_t rng_below(rng *r, size_t n)
{
    return (size_t)(rng_next(r) % n);
}

static double rng_normal(rng *r)
{
    return sqrt(-2.0 * log(rng_unif(r))) * cos(6.283185307179586 * rng_unif(r));
}

static double rng_cauchy(rng *r)
{
    return tan(3.141592653589793 * (rng_unif(r) - 0.5));
}

static double *doubles(size_t n)
{
    double *v = ch_calloc(n + 1, sizeof *v);
    ASSERT(v != NULL);
    return v;
}

static double *copy_of(const double *v, size_t n)
{
    double *c = doubles(n);
    memcpy(c, v, n * sizeof *c);
    return c;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static void qsort_doubles(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
}

/* |a - b| <= rtol |b| */
#define ASSERT_REL(a, b, rtol)                                                                     \
    do {                                                                                           \
        double ra_ = (a), rb_ = (b);                                                               \
        if (!(fabs(ra_ - rb_) <= (rtol)*fabs(rb_)))                                                \
            FAIL("%s ~ %s: %.17g vs %.17g (rel %.3g > %g)", #a, #b, ra_, rb_,                      \
                 fabs(ra_ - rb_) / fabs(rb_), (double)(rtol));                                     \
    } while (0)

/* Bitwise equality of doubles (both NaN counts as equal). */
#define ASSERT_SAME(a, b)                                                                          \
    do {                                                                                           \
        double sa_ = (a), sb_ = (b);                                                               \
        if (memcmp(&sa_, &sb_, sizeof sa_) != 0)                                                   \
            FAIL("%s == %s: %.17g != %.17g", #a, #b, sa_, sb_);                                    \
    } while (0)

/* ---- sorting -------------------------------------------------------------- */

TEST(sort_small_by_hand)
{
    double v[] = {3.0, -1.0, 2.0, -0.0, 0.0, -INFINITY, INFINITY, 1e-310, -1e-310};
    const double want[] = {-INFINITY, -1.0, -1e-310, 0.0, 0.0, 1e-310, 2.0, 3.0, INFINITY};
    ASSERT_OK(ch_drift_sort(v, 9, NULL));
    for (size_t i = 0; i < 9; i++)
        ASSERT(v[i] == want[i]);
    ASSERT_OK(ch_drift_sort(NULL, 0, NULL));
    ASSERT_OK(ch_drift_sort(v, 1, NULL));
}

/* Random doubles of several kinds: 0 uniform in (-1, 1); 1 normal times
 * 10^(+-300); 2 subnormals of both signs; 3 +-0 and a few small integers
 * (heavy duplication); 4 any bit pattern that is not a NaN (every
 * magnitude, infinities included). */
static double random_double(rng *r, int kind)
{
    uint64_t u;
    double d;
    switch (kind) {
    case 0:
        return 2.0 * rng_unif(r) - 1.0;
    case 1:
        return rng_normal(r) * pow(10.0, (double)rng_below(r, 601) - 300.0);
    case 2:
        u = rng_next(r) & 0x800FFFFFFFFFFFFFull; /* exponent 0 */
        memcpy(&d, &u, sizeof d);
        return d;
    case 3:
        switch (rng_below(r, 4)) {
        case 0:
            return 0.0;
        case 1:
            return -0.0;
        default:
            return (double)rng_below(r, 7) - 3.0;
        }
    default:
        do {
            u = rng_next(r);
            memcpy(&d, &u, sizeof d);
        } while (isnan(d));
        return d;
    }
}

TEST(sort_matches_qsort)
{
    static const size_t sizes[] = {2, 3, 31, 32, 33, 34, 100, 1000, 4097, 100000};
    rng r = {7};
    for (int kind = 0; kind < 6; kind++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            double *v = doubles(n);
            double *want;
            size_t neg_zero_v = 0;
            size_t neg_zero_w = 0;
            for (size_t i = 0; i < n; i++)
                v[i] = random_double(&r, kind == 5 ? (int)rng_below(&r, 5) : kind);
            want = copy_of(v, n);
            qsort_doubles(want, n);
            ASSERT_OK(ch_drift_sort(v, n, NULL));
            for (size_t i = 0; i < n; i++) {
                if (!(v[i] == want[i]))
                    FAIL("kind %d, n %zu: [%zu] %.17g != %.17g", kind, n, i, v[i], want[i]);
                neg_zero_v += v[i] == 0.0 && signbit(v[i]);
                neg_zero_w += want[i] == 0.0 && signbit(want[i]);
            }
            ASSERT_INT_EQ(neg_zero_v, neg_zero_w); /* a permutation: the same zeros */
            ch_free(v);
            ch_free(want);
        }
    }
}

TEST(sort_rejects_nan_and_leaves_input)
{
    ch_error e;
    double v[100];
    double keep[100];
    for (size_t i = 0; i < 100; i++)
        v[i] = (double)(100 - i);
    v[57] = NAN;
    memcpy(keep, v, sizeof v);
    ASSERT_ERR(ch_drift_sort(v, 100, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "v[57] is NaN");
    ASSERT(memcmp(v, keep, sizeof v) == 0);
    ASSERT_ERR(ch_drift_sort(v, 10, &e), CH_OK); /* the NaN is past n */
    ASSERT_ERR(ch_drift_sort(NULL, 3, &e), CH_EINVAL);
}

/* ---- edges and bins ------------------------------------------------------- */

TEST(edges_by_hand)
{
    /* n = 10, 4 bins: candidates s[2] = 1 (the minimum: dropped), s[5] = 2,
     * s[7] = 4. The reference then falls 4 / 3 / 3 into the bins. */
    const double s[] = {1, 1, 1, 1, 2, 2, 3, 4, 5, 6};
    const double flat[] = {7, 7, 7};
    double e[200];
    double c[4];
    size_t m = 99;
    ASSERT_OK(ch_drift_edges(s, 10, 4, e, &m, NULL));
    ASSERT_INT_EQ(m, 2);
    ASSERT(e[0] == 2.0 && e[1] == 4.0);
    ASSERT_OK(ch_drift_bin_counts(e, m, s, 10, c, NULL));
    ASSERT(c[0] == 4.0 && c[1] == 3.0 && c[2] == 3.0);
    /* Ten bins of ten distinct values: edges 2..6 where they exist. */
    ASSERT_OK(ch_drift_edges(s, 10, 10, e, &m, NULL));
    ASSERT_INT_EQ(m, 5);
    for (size_t i = 0; i < 5; i++)
        ASSERT(e[i] == (double)(i + 2));
    ASSERT_OK(ch_drift_edges(flat, 3, 10, e, &m, NULL));
    ASSERT_INT_EQ(m, 0);
    ASSERT_OK(ch_drift_edges(s, 10, 1, NULL, &m, NULL));
    ASSERT_INT_EQ(m, 0);
    /* More bins than values: at most the distinct values above the minimum. */
    ASSERT_OK(ch_drift_edges(s, 10, 200, e, &m, NULL));
    ASSERT_INT_EQ(m, 5);
}

TEST(bin_counts_edge_side)
{
    /* searchsorted(side='right'): a value equal to an edge goes above it;
     * the repeated edge 2 leaves bin 2 ([2, 2)) empty. */
    const double e[] = {1, 2, 2, 3};
    const double v[] = {0.5, 1, 1.5, 2, 2.5, 3, 3.5, -INFINITY, INFINITY};
    const double want[] = {2, 2, 0, 2, 3};
    double c[5];
    ASSERT_OK(ch_drift_bin_counts(e, 4, v, 9, c, NULL));
    for (size_t i = 0; i < 5; i++)
        ASSERT(c[i] == want[i]);
    ASSERT_OK(ch_drift_bin_counts(NULL, 0, v, 9, c, NULL));
    ASSERT(c[0] == 9.0);
    ASSERT_OK(ch_drift_bin_counts(e, 4, NULL, 0, c, NULL));
    ASSERT(c[0] == 0.0 && c[4] == 0.0);
}

/* Both code paths (a sum of comparisons for few edges, binary search for
 * many) against counting by the definition. */
TEST(bin_counts_match_definition)
{
    rng r = {11};
    for (size_t n_edges = 1; n_edges <= 40; n_edges += 3) {
        size_t n = 1000 + rng_below(&r, 700);
        double *e = doubles(n_edges);
        double *v = doubles(n);
        double *c = doubles(n_edges + 1);
        double *want = doubles(n_edges + 1);
        for (size_t j = 0; j < n_edges; j++)
            e[j] = (double)rng_below(&r, 20);
        qsort_doubles(e, n_edges);
        for (size_t i = 0; i < n; i++)
            v[i] = (double)rng_below(&r, 44) / 2.0 - 1.0; /* hits every edge exactly */
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            while (j < n_edges && e[j] <= v[i])
                j++;
            want[j] += 1.0;
        }
        ASSERT_OK(ch_drift_bin_counts(e, n_edges, v, n, c, NULL));
        for (size_t j = 0; j <= n_edges; j++)
            if (c[j] != want[j])
                FAIL("%zu edges: bin %zu: %g != %g", n_edges, j, c[j], want[j]);
        ch_free(e);
        ch_free(v);
        ch_free(c);
        ch_free(want);
    }
}

/* ---- PSI, Jensen-Shannon, chi-square -------------------------------------- */

TEST(psi_by_hand)
{
    /* (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.25 ln 3 */
    const double r1[] = {50, 50};
    const double c1[] = {25, 75};
    /* An empty reference bin floored at eps = 1e-4 (not renormalized):
     * (0.5 - 1) ln(0.5) + (0.5 - 1e-4) ln(0.5 / 1e-4). */
    const double r2[] = {100, 0};
    const double c2[] = {50, 50};
    double v;
    ASSERT_OK(ch_drift_psi(r1, c1, 2, CH_DRIFT_PSI_EPS, &v, NULL));
    ASSERT_REL(v, 0.25 * log(3.0), 1e-15);
    ASSERT_OK(ch_drift_psi(r2, c2, 2, CH_DRIFT_PSI_EPS, &v, NULL));
    ASSERT_REL(v, -0.5 * log(0.5) + (0.5 - 1e-4) * log(5000.0), 1e-15);
    ASSERT_OK(ch_drift_psi(r1, r1, 2, CH_DRIFT_PSI_EPS, &v, NULL));
    ASSERT(v == 0.0);
}

TEST(js_by_hand)
{
    const double a[] = {1, 0};
    const double b[] = {0, 1};
    const double h[] = {1, 1};
    double v;
    double kl1;
    double kl2;
    ASSERT_OK(ch_drift_js(a, b, 2, &v, NULL));
    ASSERT(v == 1.0);
    ASSERT_OK(ch_drift_js(h, h, 2, &v, NULL));
    ASSERT(v == 0.0);
    /* p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4):
     * KL(p||m) = (log2(2/3) + 1) / 2, KL(q||m) = log2(4/3). */
    kl1 = 0.5 * (log2(2.0 / 3.0) + 1.0);
    kl2 = log2(4.0 / 3.0);
    ASSERT_OK(ch_drift_js(h, a, 2, &v, NULL));
    ASSERT_REL(v, sqrt((kl1 + kl2) / 2.0), 1e-15);
}

TEST(chi2_by_hand)
{
    /* Totals 30 and 70 of 100, columns 40 and 60: expected 12, 18 / 28, 42;
     * X^2 = 4/12 + 4/18 + 4/28 + 4/42, dof 1, p = erfc(sqrt(X^2 / 2)). */
    const double r[] = {10, 20, 0};
    const double c[] = {30, 40, 0};
    const double r1[] = {5, 0};
    const double c1[] = {7, 0};
    double x2 = 4.0 / 12 + 4.0 / 18 + 4.0 / 28 + 4.0 / 42;
    ch_drift_test t;
    ASSERT_OK(ch_drift_chi2(r, c, 3, &t, NULL));
    ASSERT_REL(t.stat, x2, 1e-14);
    ASSERT_INT_EQ(t.dof, 1); /* the empty third column is dropped */
    ASSERT_REL(t.p, erfc(sqrt(x2 / 2.0)), 1e-14);
    /* One column left: X^2 = 0, dof 0, p = 1 (scipy's degenerate case). */
    ASSERT_OK(ch_drift_chi2(r1, c1, 2, &t, NULL));
    ASSERT(t.stat == 0.0 && t.p == 1.0);
    ASSERT_INT_EQ(t.dof, 0);
}

/* Closed forms: Q(m, y) = e^-y sum_{i<m} y^i / i! for whole m (even dof),
 * erfc(sqrt(y)) for dof 1. Each term of the sum is formed in logarithms,
 * good to about 1e-13 over this range. */
TEST(chi2_sf_closed_forms)
{
    double v;
    ASSERT_OK(ch_drift_chi2_sf(0.0, 3.0, &v, NULL));
    ASSERT(v == 1.0);
    ASSERT_OK(ch_drift_chi2_sf(INFINITY, 3.0, &v, NULL));
    ASSERT(v == 0.0);
    ASSERT_OK(ch_drift_chi2_sf(1e5, 1.0, &v, NULL));
    ASSERT(v == 0.0); /* underflow */
    for (double x = 0.01; x < 1400.0; x *= 1.37) {
        ASSERT_OK(ch_drift_chi2_sf(x, 2.0, &v, NULL));
        ASSERT_REL(v, exp(-x / 2.0), 1e-12);
        if (x < 1200.0) {
            ASSERT_OK(ch_drift_chi2_sf(x, 1.0, &v, NULL));
            ASSERT_REL(v, erfc(sqrt(x / 2.0)), 1e-12);
        }
    }
    for (int m = 1; m <= 60; m++) {
        for (double x = 0.05; x < 1300.0; x *= 1.21) {
            double y = x / 2.0;
            double want = 0.0;
            for (int i = 0; i < m; i++)
                want += exp((double)i * log(y) - y - lgamma((double)i + 1.0));
            if (want < 1e-290)
                continue;
            ASSERT_OK(ch_drift_chi2_sf(x, 2.0 * m, &v, NULL));
            if (!(fabs(v - want) <= 1e-12 * want))
                FAIL("dof %d, x %g: %.17g vs %.17g", 2 * m, x, v, want);
        }
    }
}

/* ---- Kolmogorov-Smirnov --------------------------------------------------- */

TEST(ks_by_hand)
{
    /* a = {1,2,3}, b = {2,4}: |F_a - F_b| = 1/3, 1/6, 1/2, 0 -> D = 1/2.
     * N = round(6/5) = 1 and D_1 >= 1/2 always, so p = 1. */
    const double a[] = {1, 2, 3};
    const double b[] = {2, 4};
    /* a = {1,2,3,4}, b = {1.5}: D = 3/4 at 1.5; N = round(4/5) = 1 and
     * P(D_1 >= x) = 2 (1 - x): p = 1/2. */
    const double a4[] = {1, 2, 3, 4};
    const double b1[] = {1.5};
    const double z[] = {0};
    ch_drift_test t;
    double p;
    ASSERT_OK(ch_drift_ks(a, 3, b, 2, &t, NULL));
    ASSERT(t.stat == 0.5 && t.p == 1.0);
    ASSERT_INT_EQ(t.dof, 0);
    ASSERT_OK(ch_drift_ks(a4, 4, b1, 1, &t, NULL));
    ASSERT(t.stat == 0.75);
    ASSERT_REL(t.p, 0.5, 1e-15);
    ASSERT_OK(ch_drift_ks(a4, 4, z, 1, &t, NULL));
    ASSERT(t.stat == 1.0 && t.p == 0.0);
    ASSERT_OK(ch_drift_ks(a4, 4, a4, 4, &t, NULL));
    ASSERT(t.stat == 0.0 && t.p == 1.0);
    /* N = 2 (sizes 4 and 4): for 1/4 < x <= 1/2, P(D_2 >= x) =
     * 1 - 2!/2^2 (4x - 1)^2; at x = 3/8 that is 7/8. For x >= 1/2 it is
     * 2 (1 - x)^2. */
    ASSERT_OK(ch_drift_ks_sf(0.375, 4, 4, &p, NULL));
    ASSERT_REL(p, 0.875, 1e-15);
    ASSERT_OK(ch_drift_ks_sf(0.75, 4, 4, &p, NULL));
    ASSERT_REL(p, 0.125, 1e-15);
    ASSERT_OK(ch_drift_ks_sf(0.0, 4, 4, &p, NULL));
    ASSERT(p == 1.0);
}

TEST(ks_counts_need_the_equal_slots)
{
    /* Reference {0}; current {0} has D = 0, current {0.5} has D = 1. With
     * side='right' bins both would be (0, 1); with the equal slots they are
     * (0, 1, 0) and (0, 0, 1). */
    const double ref[] = {0};
    const double v0[] = {0};
    double c[3];
    ch_drift_test t;
    ch_error e;
    ASSERT_OK(ch_drift_ks_bin_counts(ref, 1, v0, 1, c, NULL));
    ASSERT(c[0] == 0.0 && c[1] == 1.0 && c[2] == 0.0);
    ASSERT_ERR(ch_drift_ks_counts(ref, 1, c, &t, &e), CH_EDATA); /* sizes 1 and 1 */
    {
        const double v00[] = {0, 0};
        ASSERT_OK(ch_drift_ks_bin_counts(ref, 1, v00, 2, c, NULL));
        ASSERT_OK(ch_drift_ks_counts(ref, 1, c, &t, NULL));
        ASSERT(t.stat == 0.0 && t.p == 1.0);
    }
    {
        const double v55[] = {0.5, 0.5};
        ASSERT_OK(ch_drift_ks_bin_counts(ref, 1, v55, 2, c, NULL));
        ASSERT(c[0] == 0.0 && c[1] == 0.0 && c[2] == 2.0);
        ASSERT_OK(ch_drift_ks_counts(ref, 1, c, &t, NULL));
        ASSERT(t.stat == 1.0);
    }
    /* A run of equal reference values: counts may sit in any of its slots. */
    {
        const double r3[] = {1, 2, 2, 2, 3};
        const double v[] = {2, 2, 2.5, 0};
        double cc[11];
        ch_drift_test t2;
        ASSERT_OK(ch_drift_ks_bin_counts(r3, 5, v, 4, cc, NULL));
        ASSERT(cc[0] == 1.0 && cc[3] == 2.0 && cc[8] == 1.0); /* 0 | =2 first slot | (2,3) */
        ASSERT_OK(ch_drift_ks_counts(r3, 5, cc, &t, NULL));
        cc[3] = 0.0;
        cc[5] = 1.0;
        cc[7] = 1.0;
        ASSERT_OK(ch_drift_ks_counts(r3, 5, cc, &t2, NULL));
        ASSERT_SAME(t.stat, t2.stat);
    }
}

/* D by the definition: the largest |F_a(x) - F_b(x)| over every data
 * value x, each ECDF counted from scratch. O((n_a + n_b)^2). */
static double slow_ks_d(const double *a, size_t na, const double *b, size_t nb)
{
    double d = 0.0;
    for (size_t s = 0; s < na + nb; s++) {
        double x = s < na ? a[s] : b[s - na];
        size_t ca = 0;
        size_t cb = 0;
        for (size_t i = 0; i < na; i++)
            ca += a[i] <= x;
        for (size_t j = 0; j < nb; j++)
            cb += b[j] <= x;
        d = fmax(d, fabs((double)ca / (double)na - (double)cb / (double)nb));
    }
    return d;
}

/* 600 random cases: reference and current on shared grids (so current
 * values often equal reference values), sizes from 1 to 3000, some
 * shifted. KS from counts must give the full two-sample result bit for
 * bit, and both must equal D by the definition on the smaller cases. */
TEST(ks_counts_equal_full_ks)
{
    rng r = {2024};
    static const double grids[] = {2, 3, 10, 60, 1e9};
    for (int trial = 0; trial < 600; trial++) {
        size_t m = 1 + rng_below(&r, trial < 300 ? 40 : 300);
        size_t n = 1 + rng_below(&r, trial < 300 ? 60 : 3000);
        double g = grids[rng_below(&r, 5)];
        double shift = (double)rng_below(&r, 3) / g;
        double *ref = doubles(m);
        double *cur = doubles(n);
        double *counts = doubles(2 * m + 1);
        ch_drift_test full;
        ch_drift_test cnt;
        ch_err rc_full;
        ch_err rc_cnt;
        for (size_t i = 0; i < m; i++)
            ref[i] = floor(rng_unif(&r) * g) / g;
        for (size_t j = 0; j < n; j++)
            cur[j] = floor(rng_unif(&r) * g) / g + shift;
        qsort_doubles(ref, m);
        ASSERT_OK(ch_drift_ks_bin_counts(ref, m, cur, n, counts, NULL));
        rc_cnt = ch_drift_ks_counts(ref, m, counts, &cnt, NULL);
        qsort_doubles(cur, n);
        rc_full = ch_drift_ks(ref, m, cur, n, &full, NULL);
        ASSERT_INT_EQ(rc_cnt, rc_full);
        if (m == 1 && n == 1) {
            ASSERT_INT_EQ(rc_full, CH_EDATA);
        } else {
            ASSERT_INT_EQ(rc_full, CH_OK);
            if (memcmp(&cnt.stat, &full.stat, sizeof full.stat) != 0 || cnt.p != full.p)
                FAIL("trial %d (m %zu, n %zu, grid %g): counts D %.17g p %.17g, full D %.17g "
                     "p %.17g",
                     trial, m, n, g, cnt.stat, cnt.p, full.stat, full.p);
            if (trial < 300)
                ASSERT_SAME(full.stat, slow_ks_d(ref, m, cur, n));
        }
        ch_free(ref);
        ch_free(cur);
        ch_free(counts);
    }
}

/* ---- Wasserstein, multiple testing ---------------------------------------- */

TEST(wasserstein_by_hand)
{
    /* a = {0, 1}, b = {1/2}: |F_a - F_b| = 1/2 on [0, 1): W = 1/2. */
    const double a[] = {0, 1};
    const double b[] = {0.5};
    const double z[] = {0};
    const double t[] = {3};
    double w;
    ASSERT_OK(ch_drift_wasserstein(a, 2, b, 1, &w, NULL));
    ASSERT(w == 0.5);
    ASSERT_OK(ch_drift_wasserstein(z, 1, t, 1, &w, NULL));
    ASSERT(w == 3.0);
    ASSERT_OK(ch_drift_wasserstein(a, 2, a, 2, &w, NULL));
    ASSERT(w == 0.0);
}

TEST(bh_and_holm_by_hand)
{
    /* Sorted 0.01, 0.03, 0.04, 0.5 (k = 4).
     * BH: k p / rank = 0.04, 0.06, 0.0533, 0.5 -> running minimum from the
     * top: 0.04, 0.0533, 0.0533, 0.5.
     * Holm: (k - rank + 1) p = 0.04, 0.09, 0.08, 0.5 -> running maximum:
     * 0.04, 0.09, 0.09, 0.5. */
    const double p[] = {0.01, 0.04, 0.03, 0.5};
    double a[4];
    double same[4] = {0.01, 0.04, 0.03, 0.5};
    ASSERT_OK(ch_drift_bh(p, 4, a, NULL));
    ASSERT_REL(a[0], 0.04, 1e-15);
    ASSERT_REL(a[1], 4 * 0.04 / 3, 1e-15);
    ASSERT_REL(a[2], 4 * 0.04 / 3, 1e-15);
    ASSERT(a[3] == 0.5);
    ASSERT_OK(ch_drift_holm(p, 4, a, NULL));
    ASSERT_REL(a[0], 0.04, 1e-15);
    ASSERT_REL(a[1], 0.09, 1e-15);
    ASSERT_REL(a[2], 0.09, 1e-15);
    ASSERT(a[3] == 0.5);
    ASSERT_OK(ch_drift_bh(same, 4, same, NULL)); /* in place */
    ASSERT_REL(same[1], 4 * 0.04 / 3, 1e-15);
    {
        const double big[] = {0.9, 0.8};
        ASSERT_OK(ch_drift_holm(big, 2, a, NULL));
        ASSERT(a[0] == 1.0 && a[1] == 1.0); /* capped at 1 */
    }
}

/* ---- confidence-based performance estimation ------------------------------- */

TEST(cbpe_by_hand)
{
    /* p = {0.2, 0.6, 0.9}, t = 0.5: TP = 1.5, FP = 0.5, FN = 0.2, TN = 0.8.
     * AUC numerator over i != j with p_i > p_j: 0.6*0.8 + 0.9*0.8 + 0.9*0.4
     * = 1.56; denominator sum(p) sum(1-p) - sum p(1-p) = 1.7*1.3 - 0.49 =
     * 1.72. */
    const double p[] = {0.2, 0.6, 0.9};
    const double tie[] = {0.5, 0.5};
    ch_drift_perf r;
    ASSERT_OK(ch_drift_cbpe(p, 3, 0.5, &r, NULL));
    ASSERT_REL(r.tp, 1.5, 1e-15);
    ASSERT_REL(r.fp, 0.5, 1e-15);
    ASSERT_REL(r.fn, 0.2, 1e-15);
    ASSERT_REL(r.tn, 0.8, 1e-15);
    ASSERT_REL(r.accuracy, 2.3 / 3, 1e-15);
    ASSERT_REL(r.precision, 0.75, 1e-15);
    ASSERT_REL(r.recall, 1.5 / 1.7, 1e-15);
    ASSERT_REL(r.f1, 3.0 / 3.7, 1e-15);
    ASSERT_REL(r.roc_auc, 1.56 / 1.72, 1e-14);
    /* Two tied rows: every pair is a tie, AUC 1/2. */
    ASSERT_OK(ch_drift_cbpe(tie, 2, 0.5, &r, NULL));
    ASSERT_REL(r.roc_auc, 0.5, 1e-15);
    /* Nothing predicted positive: precision and F1 are 0 by convention. */
    ASSERT_OK(ch_drift_cbpe(p, 3, 2.0, &r, NULL));
    ASSERT(r.tp == 0.0 && r.precision == 0.0 && r.f1 == 0.0);
}

/* The expected AUC by all ordered pairs i != j, O(n^2). */
static double slow_expected_auc(const double *p, size_t n)
{
    double num = 0.0;
    double den = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double w;
            if (i == j)
                continue;
            w = p[i] * (1.0 - p[j]);
            den += w;
            if (p[i] > p[j])
                num += w;
            else if (p[i] == p[j])
                num += 0.5 * w;
        }
    return num / den;
}

TEST(cbpe_matches_slow_reference)
{
    rng r = {5};
    for (int trial = 0; trial < 20; trial++) {
        size_t n = 2 + rng_below(&r, 700);
        size_t levels = trial % 2 == 0 ? 11 : 1000000; /* many ties, or almost none */
        double *p = doubles(n);
        double tp = 0.0;
        double fp = 0.0;
        double fn = 0.0;
        double tn = 0.0;
        ch_drift_perf e;
        for (size_t i = 0; i < n; i++)
            p[i] = (double)rng_below(&r, levels + 1) / (double)levels;
        for (size_t i = 0; i < n; i++) {
            if (p[i] >= 0.3) {
                tp += p[i];
                fp += 1.0 - p[i];
            } else {
                fn += p[i];
                tn += 1.0 - p[i];
            }
        }
        ASSERT_OK(ch_drift_cbpe(p, n, 0.3, &e, NULL));
        ASSERT_REL(e.roc_auc, slow_expected_auc(p, n), 1e-12);
        ASSERT_REL(e.tp, tp, 1e-15);
        ASSERT_REL(e.fp, fp, 1e-15);
        ASSERT_REL(e.fn, fn, 1e-15);
        ASSERT_REL(e.tn, tn, 1e-15);
        ASSERT_REL(e.f1, 2 * tp / (2 * tp + fp + fn), 1e-15);
        ch_free(p);
    }
}

/*
 * Monte Carlo: the estimates against the average realized metric over
 * 2000 label draws y_i ~ Bernoulli(p_i) on n = 2000 fixed probabilities
 * (logistic of a normal score, mean about 0.32), realized metrics from
 * metrics.h. Accuracy is an exact expectation and the AUC's and
 * precision's numerators and denominators are too, so what remains is
 * Monte Carlo error (standard errors of the mean 2.0e-4 to 3.8e-4 here)
 * plus, for the ratios, the O(1/n) gap between a ratio of expectations
 * and the expected ratio. Tolerance 1.5e-3 absolute (four to seven
 * standard errors); measured deviations: accuracy 1.1e-4, precision
 * 6.0e-5, recall 9.3e-5, F1 1.3e-4, ROC AUC 1.5e-4, each below one
 * standard error.
 */
TEST(cbpe_monte_carlo)
{
    const size_t n = 2000;
    const int draws = 2000;
    const double t = 0.4;
    rng r = {99};
    double *p = doubles(n);
    double *y = doubles(n);
    double sum[5] = {0};
    double sq[5] = {0};
    double est[5];
    static const char *const names[] = {"accuracy", "precision", "recall", "F1", "ROC AUC"};
    ch_drift_perf e;
    for (size_t i = 0; i < n; i++)
        p[i] = 1.0 / (1.0 + exp(-(1.5 * rng_normal(&r) - 1.0)));
    ASSERT_OK(ch_drift_cbpe(p, n, t, &e, NULL));
    est[0] = e.accuracy;
    est[1] = e.precision;
    est[2] = e.recall;
    est[3] = e.f1;
    est[4] = e.roc_auc;
    for (int d = 0; d < draws; d++) {
        ch_confusion c;
        double v[5];
        for (size_t i = 0; i < n; i++)
            y[i] = rng_unif(&r) < p[i] ? 1.0 : 0.0;
        ASSERT_OK(ch_metric_confusion(y, p, NULL, n, t, &c, NULL));
        ASSERT_OK(ch_metric_roc_auc(y, p, NULL, n, &v[4], NULL));
        v[0] = c.accuracy;
        v[1] = c.precision;
        v[2] = c.recall;
        v[3] = c.f1;
        for (int k = 0; k < 5; k++) {
            sum[k] += v[k];
            sq[k] += v[k] * v[k];
        }
    }
    for (int k = 0; k < 5; k++) {
        double mean = sum[k] / draws;
        double se = sqrt(fmax(sq[k] / draws - mean * mean, 0.0) / draws);
        if (getenv("CH_TEST_VERBOSE") != NULL)
            fprintf(stderr,
                    "    cbpe - %-9s estimate %.5f, mean of draws %.5f, deviation %.2e, "
                    "standard error %.2e\n",
                    names[k], est[k], mean, fabs(est[k] - mean), se);
        if (!(fabs(est[k] - mean) <= 1.5e-3))
            FAIL("%s: estimate %.6f, Monte Carlo mean %.6f", names[k], est[k], mean);
    }
    ch_free(p);
    ch_free(y);
}

/* ---- bootstrap ------------------------------------------------------------ */

/* numpy's linear percentile, as documented for ch_drift_bootstrap(). */
static double ref_percentile(const double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    double t = pos - floor(pos);
    if (i + 1 >= n)
        return v[n - 1];
    return t >= 0.5 ? v[i + 1] - (v[i + 1] - v[i]) * (1.0 - t) : v[i] + (v[i + 1] - v[i]) * t;
}

/* The interval by explicit resampling: the documented draws, the resample
 * built with repeated rows, the metrics.h function on it unweighted. */
static void ref_bootstrap(ch_drift_metric metric, const double *y, const double *p, size_t n,
                          double threshold, size_t n_boot, uint64_t seed, double level, double *lo,
                          double *hi, size_t *skipped)
{
    double *yb = doubles(n);
    double *pb = doubles(n);
    double *vals = doubles(n_boot);
    size_t nv = 0;
    ch_rng g;
    ch_rng_seed(&g, seed);
    for (size_t b = 0; b < n_boot; b++) {
        double v = 0.0;
        ch_err rc = CH_OK;
        ch_confusion c;
        for (size_t k = 0; k < n; k++) {
            size_t i = (size_t)ch_rng_below(&g, n);
            yb[k] = y[i];
            pb[k] = p[i];
        }
        switch (metric) {
        case CH_DRIFT_ROC_AUC:
            rc = ch_metric_roc_auc(yb, pb, NULL, n, &v, NULL);
            break;
        case CH_DRIFT_PR_AUC:
            rc = ch_metric_pr_auc(yb, pb, NULL, n, &v, NULL);
            break;
        case CH_DRIFT_BRIER:
            rc = ch_metric_brier(yb, pb, NULL, n, &v, NULL);
            break;
        case CH_DRIFT_LOG_LOSS:
            rc = ch_metric_log_loss(yb, pb, NULL, n, &v, NULL);
            break;
        case CH_DRIFT_F1:
            rc = ch_metric_confusion(yb, pb, NULL, n, threshold, &c, NULL);
            if (rc == CH_OK && 2 * c.tp + c.fp + c.fn == 0.0)
                rc = CH_EDATA;
            v = c.f1;
            break;
        }
        ASSERT(rc == CH_OK || rc == CH_EDATA);
        if (rc == CH_OK)
            vals[nv++] = v;
    }
    ASSERT(nv > 0);
    qsort_doubles(vals, nv);
    *lo = ref_percentile(vals, nv, 0.5 * (1.0 - level));
    *hi = ref_percentile(vals, nv, 0.5 * (1.0 + level));
    *skipped = n_boot - nv;
    ch_free(yb);
    ch_free(pb);
    ch_free(vals);
}

/* Every metric against explicit resampling. Rank metrics must agree bit
 * for bit (the same group sums of whole numbers); the others within
 * 1e-12 relative (weights instead of repeated rows change the order of
 * summation only). */
TEST(bootstrap_matches_explicit_resampling)
{
    rng r = {31};
    const size_t n = 400;
    double *y = doubles(n);
    double *p = doubles(n);
    for (size_t i = 0; i < n; i++) {
        p[i] = (double)rng_below(&r, 21) / 20.0; /* ties */
        y[i] = rng_unif(&r) < 0.1 + 0.8 * p[i] ? 1.0 : 0.0;
    }
    for (int m = CH_DRIFT_ROC_AUC; m <= CH_DRIFT_F1; m++) {
        double lo;
        double hi;
        double rlo;
        double rhi;
        size_t sk;
        size_t rsk;
        ASSERT_OK(ch_drift_bootstrap((ch_drift_metric)m, y, p, n, 0.5, 150, 77, 0.9, &lo, &hi, &sk,
                                     NULL));
        ref_bootstrap((ch_drift_metric)m, y, p, n, 0.5, 150, 77, 0.9, &rlo, &rhi, &rsk);
        ASSERT_INT_EQ(sk, rsk);
        ASSERT(lo <= hi);
        if (m == CH_DRIFT_ROC_AUC || m == CH_DRIFT_PR_AUC) {
            ASSERT_SAME(lo, rlo);
            ASSERT_SAME(hi, rhi);
        } else {
            ASSERT_REL(lo, rlo, 1e-12);
            ASSERT_REL(hi, rhi, 1e-12);
        }
    }
    ch_free(y);
    ch_free(p);
}

TEST(bootstrap_counts_skipped_replicates)
{
    /* One positive among 12 rows: a resample misses it with probability
     * (11/12)^12 = 0.35, and then ROC AUC, PR AUC and F1 are undefined. */
    double y[12] = {0};
    double p[12];
    double lo;
    double hi;
    double rlo;
    double rhi;
    size_t sk;
    size_t rsk;
    ch_error e;
    for (size_t i = 0; i < 12; i++)
        p[i] = (double)i / 12.0;
    y[11] = 1.0;
    for (int m = CH_DRIFT_ROC_AUC; m <= CH_DRIFT_F1; m++) {
        ASSERT_OK(ch_drift_bootstrap((ch_drift_metric)m, y, p, 12, 0.9, 400, 3, 0.95, &lo, &hi, &sk,
                                     NULL));
        ref_bootstrap((ch_drift_metric)m, y, p, 12, 0.9, 400, 3, 0.95, &rlo, &rhi, &rsk);
        ASSERT_INT_EQ(sk, rsk);
        if (m == CH_DRIFT_BRIER || m == CH_DRIFT_LOG_LOSS)
            ASSERT_INT_EQ(sk, 0);
        else
            ASSERT(sk > 100 && sk < 180);
    }
    /* No positives at all: every ROC replicate is undefined. */
    y[11] = 0.0;
    lo = hi = -1.0;
    ASSERT_ERR(ch_drift_bootstrap(CH_DRIFT_ROC_AUC, y, p, 12, 0.5, 50, 3, 0.95, &lo, &hi, &sk, &e),
               CH_EDATA);
    ASSERT_CONTAINS(e.msg, "undefined on all 50 resamples");
    ASSERT(lo == -1.0 && hi == -1.0);
    /* The same seed gives the same interval; another seed another one. */
    {
        double lo2;
        double hi2;
        y[11] = 1.0;
        y[5] = 1.0;
        ASSERT_OK(
            ch_drift_bootstrap(CH_DRIFT_BRIER, y, p, 12, 0.5, 99, 8, 0.8, &lo, &hi, &sk, NULL));
        ASSERT_OK(
            ch_drift_bootstrap(CH_DRIFT_BRIER, y, p, 12, 0.5, 99, 8, 0.8, &lo2, &hi2, &sk, NULL));
        ASSERT_SAME(lo, lo2);
        ASSERT_SAME(hi, hi2);
        ASSERT_OK(
            ch_drift_bootstrap(CH_DRIFT_BRIER, y, p, 12, 0.5, 99, 9, 0.8, &lo2, &hi2, &sk, NULL));
        ASSERT(lo != lo2 || hi != hi2);
    }
}

/* ---- input checks ---------------------------------------------------------- */

/* Each bad call must return CH_EINVAL (or the code given), name the
 * problem, and leave the output alone. */
TEST(input_checks)
{
    const double good[] = {1, 2, 3};
    const double unsorted[] = {1, 3, 2};
    const double with_nan[] = {1, NAN, 3};
    const double negative[] = {1, -2, 3};
    const double zeros[] = {0, 0, 0};
    const double frac[] = {0, 0.5, 1, 0, 1, 0, 0};
    const double y[] = {0, 1, 2};
    const double pr[] = {0.1, 0.5, 1.5};
    const double pgood[] = {0.1, 0.5, 0.9};
    double out = -7.0;
    double arr[16] = {0};
    size_t m = 99;
    ch_drift_test t = {-7.0, -7.0, 99};
    ch_drift_perf perf;
    double lo = -7.0;
    double hi = -7.0;
    ch_error e;

    ASSERT_ERR(ch_drift_edges(good, 0, 4, arr, &m, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "n is 0");
    ASSERT_ERR(ch_drift_edges(good, 3, 0, arr, &m, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "n_bins 0");
    ASSERT_ERR(ch_drift_edges(good, 3, CH_DRIFT_BINS_MAX + 1, arr, &m, &e), CH_EINVAL);
    ASSERT_ERR(ch_drift_edges(unsorted, 3, 2, arr, &m, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "not sorted");
    ASSERT_ERR(ch_drift_edges(with_nan, 3, 2, arr, &m, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "[1] is NaN");
    ASSERT_INT_EQ(m, 99);

    ASSERT_ERR(ch_drift_bin_counts(unsorted, 3, good, 3, arr, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "edges decrease at 2");
    ASSERT_ERR(ch_drift_bin_counts(good, 3, with_nan, 3, arr, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "v[1] is NaN");
    ASSERT_ERR(ch_drift_bin_counts(good, 3, good, 3, NULL, &e), CH_EINVAL);
    ASSERT(arr[0] == 0.0);

    ASSERT_ERR(ch_drift_psi(good, negative, 3, CH_DRIFT_PSI_EPS, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "cur[1] is negative");
    ASSERT_ERR(ch_drift_psi(with_nan, good, 3, CH_DRIFT_PSI_EPS, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "ref[1] is NaN");
    ASSERT_ERR(ch_drift_psi(zeros, good, 3, CH_DRIFT_PSI_EPS, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "ref counts sum to 0");
    ASSERT_ERR(ch_drift_psi(good, good, 3, 0.0, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "eps 0 is outside (0, 1)");
    ASSERT_ERR(ch_drift_psi(good, good, 0, CH_DRIFT_PSI_EPS, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "k is 0");
    {
        const double inf[] = {1, INFINITY, 3};
        ASSERT_ERR(ch_drift_psi(good, inf, 3, CH_DRIFT_PSI_EPS, &out, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "cur[1] is infinite");
    }
    ASSERT_ERR(ch_drift_js(good, zeros, 3, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "q counts sum to 0");
    ASSERT_ERR(ch_drift_chi2(negative, good, 3, &t, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "ref[1] is negative");
    ASSERT_ERR(ch_drift_chi2_sf(-1.0, 2.0, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "negative or NaN");
    ASSERT_ERR(ch_drift_chi2_sf(NAN, 2.0, &out, &e), CH_EINVAL);
    ASSERT_ERR(ch_drift_chi2_sf(1.0, 0.0, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "degrees of freedom");
    ASSERT_ERR(ch_drift_chi2_sf(1.0, INFINITY, &out, &e), CH_EINVAL);

    ASSERT_ERR(ch_drift_ks(good, 0, good, 3, &t, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "a is empty");
    ASSERT_ERR(ch_drift_ks(good, 3, unsorted, 3, &t, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "b is not sorted");
    ASSERT_ERR(ch_drift_ks(good, 3, with_nan, 3, &t, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "b[1] is NaN");
    ASSERT_ERR(ch_drift_ks(good, 1, good, 1, &t, &e), CH_EDATA);
    ASSERT_CONTAINS(e.msg, "one value each");
    ASSERT_ERR(ch_drift_ks_sf(1.5, 3, 3, &out, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "outside [0, 1]");
    ASSERT_ERR(ch_drift_ks_sf(NAN, 3, 3, &out, &e), CH_EINVAL);
    ASSERT_ERR(ch_drift_ks_sf(0.5, 0, 3, &out, &e), CH_EINVAL);
    ASSERT_ERR(ch_drift_ks_bin_counts(good, 0, good, 3, arr, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "reference is empty");
    ASSERT_ERR(ch_drift_ks_bin_counts(good, 3, with_nan, 3, arr, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "v[1] is NaN");
    ASSERT_ERR(ch_drift_ks_counts(good, 3, frac, &t, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "counts[1] = 0.5 is not a whole number");
    {
        const double z7[7] = {0};
        const double neg7[7] = {0, 0, -1, 0, 0, 0, 0};
        ASSERT_ERR(ch_drift_ks_counts(good, 3, z7, &t, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "all 0");
        ASSERT_ERR(ch_drift_ks_counts(good, 3, neg7, &t, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "counts[2] = -1");
    }
    ASSERT_ERR(ch_drift_wasserstein(good, 3, unsorted, 3, &out, &e), CH_EINVAL);
    {
        const double inf[] = {1, 2, INFINITY};
        ASSERT_ERR(ch_drift_wasserstein(good, 3, inf, 3, &out, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "b[2] is infinite");
    }
    ASSERT(out == -7.0);
    ASSERT(t.stat == -7.0 && t.p == -7.0);

    ASSERT_ERR(ch_drift_bh(pr, 3, arr, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "p[2] = 1.5 is not in [0, 1]");
    ASSERT_ERR(ch_drift_holm(with_nan, 3, arr, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "p[1] = nan is not in [0, 1]");
    ASSERT_ERR(ch_drift_bh(good, 0, arr, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "k is 0");
    ASSERT(arr[0] == 0.0);

    memset(&perf, 0, sizeof perf);
    ASSERT_ERR(ch_drift_cbpe(pr, 3, 0.5, &perf, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "p[2] = 1.5 is not a probability");
    ASSERT_ERR(ch_drift_cbpe(pr, 2, NAN, &perf, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "threshold is NaN");
    ASSERT_ERR(ch_drift_cbpe(pr, 0, 0.5, &perf, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "n is 0");
    {
        const double ones[] = {1, 1, 1};
        ASSERT_ERR(ch_drift_cbpe(ones, 3, 0.5, &perf, &e), CH_EDATA);
        ASSERT_CONTAINS(e.msg, "undefined");
        ASSERT_ERR(ch_drift_cbpe(pr, 1, 0.5, &perf, &e), CH_EDATA);
    }
    ASSERT(perf.tp == 0.0 && perf.roc_auc == 0.0);

    ASSERT_ERR(
        ch_drift_bootstrap(CH_DRIFT_ROC_AUC, y, pgood, 3, 0.5, 10, 1, 0.95, &lo, &hi, &m, &e),
        CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "y[2] = 2 is not 0 or 1");
    ASSERT_ERR(
        ch_drift_bootstrap(CH_DRIFT_ROC_AUC, good, pr, 3, 0.5, 10, 1, 0.95, &lo, &hi, &m, &e),
        CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "p[2] = 1.5");
    ASSERT_ERR(ch_drift_bootstrap(CH_DRIFT_BRIER, y, pr, 2, 0.5, 10, 1, 1.0, &lo, &hi, &m, &e),
               CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "level 1 is outside (0, 1)");
    ASSERT_ERR(ch_drift_bootstrap(CH_DRIFT_BRIER, y, pr, 2, 0.5, 0, 1, 0.9, &lo, &hi, &m, &e),
               CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "n_boot is 0");
    ASSERT_ERR(ch_drift_bootstrap((ch_drift_metric)9, y, pr, 2, 0.5, 5, 1, 0.9, &lo, &hi, &m, &e),
               CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "unknown metric 9");
    ASSERT_ERR(ch_drift_bootstrap(CH_DRIFT_F1, y, pr, 2, NAN, 5, 1, 0.9, &lo, &hi, &m, &e),
               CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "threshold is NaN");
    ASSERT_ERR(ch_drift_bootstrap(CH_DRIFT_F1, y, pr, 0, 0.5, 5, 1, 0.9, &lo, &hi, &m, &e),
               CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "n is 0");
    ASSERT(lo == -7.0 && hi == -7.0 && m == 99);
}

/* ---- scipy and numpy ----------------------------------------------------------- */

/* One reference job: the line for drift_ref.py and our answer. */
typedef struct job {
    char line[256];
    const char *what; /* the measure, for messages and the deviation summary */
    double *want;     /* our values (owned) */
    size_t n_want;
    double rtol0; /* allowed |ours - scipy| / |scipy| for the first value */
    double rtol;  /* ... for the other values */
    double atol;  /* plus this much absolute (0 unless said) */
} job;

#define MAX_JOBS 16384

static job *jobs;
static size_t n_jobs;
static size_t n_files;

/* Writes 'v' (n doubles) to a fresh file under the test's temporary
 * directory; returns its path (static storage, rotated). */
static const char *put_array(const double *v, size_t n)
{
    static char paths[4][600];
    char *path = paths[n_files % 4];
    FILE *f;
    snprintf(path, 600, "%s/a%zu.bin", ch_test_tmpdir(), n_files++);
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT(fwrite(v, sizeof *v, n, f) == n);
    ASSERT(fclose(f) == 0);
    return path;
}

static job *add_job(const char *what, double rtol, const double *want, size_t n_want)
{
    job *j;
    ASSERT(n_jobs < MAX_JOBS);
    j = &jobs[n_jobs++];
    j->what = what;
    j->rtol0 = rtol;
    j->rtol = rtol;
    j->atol = 0.0;
    j->want = copy_of(want, n_want);
    j->n_want = n_want;
    return j;
}

static void job_ks(const double *a, size_t na, const double *b, size_t nb)
{
    ch_drift_test t;
    double w[2];
    job *j;
    const char *pa;
    ASSERT_OK(ch_drift_ks(a, na, b, nb, &t, NULL));
    w[0] = t.stat;
    w[1] = t.p;
    j = add_job("ks_2samp D, p", 1e-10, w, 2);
    j->rtol0 = 0.0; /* D: the same divisions as scipy, so the same double */
    j->atol = DBL_MIN;
    pa = put_array(a, na);
    snprintf(j->line, sizeof j->line, "ks %s %s", pa, put_array(b, nb));
}

static void job_kssf(double d, size_t n)
{
    double p;
    job *j;
    /* Samples of 2n and 2n values have N = 2n 2n / 4n = n. */
    ASSERT_OK(ch_drift_ks_sf(d, 2 * n, 2 * n, &p, NULL));
    j = add_job("kstwo.sf", 1e-10, &p, 1);
    j->atol = DBL_MIN; /* scipy may keep a subnormal where we return 0 */
    snprintf(j->line, sizeof j->line, "kssf %.17g %zu", d, n);
}

static void job_chi2sf(double x, double dof)
{
    double p;
    job *j;
    ASSERT_OK(ch_drift_chi2_sf(x, dof, &p, NULL));
    j = add_job("chi2.sf", 1e-12, &p, 1);
    j->atol = DBL_MIN; /* scipy may keep a subnormal where we return 0 */
    snprintf(j->line, sizeof j->line, "chi2sf %.17g %.17g", x, dof);
}

static void job_counts(const char *op, const double *r, const double *c, size_t k, double eps)
{
    double w[3];
    size_t nw = 1;
    job *j;
    const char *pr;
    if (strcmp(op, "chi2") == 0) {
        ch_drift_test t;
        ASSERT_OK(ch_drift_chi2(r, c, k, &t, NULL));
        w[0] = t.stat;
        w[1] = t.p;
        w[2] = (double)t.dof;
        nw = 3;
        j = add_job("chi2_contingency stat, p, dof", 1e-12, w, nw);
    } else if (strcmp(op, "js") == 0) {
        ASSERT_OK(ch_drift_js(r, c, k, &w[0], NULL));
        j = add_job("jensenshannon", 1e-12, w, nw);
    } else {
        ASSERT_OK(ch_drift_psi(r, c, k, eps, &w[0], NULL));
        j = add_job("psi", 1e-12, w, nw);
    }
    pr = put_array(r, k);
    if (strcmp(op, "psi") == 0)
        snprintf(j->line, sizeof j->line, "psi %.17g %s %s", eps, pr, put_array(c, k));
    else
        snprintf(j->line, sizeof j->line, "%s %s %s", op, pr, put_array(c, k));
}

/* Two count vectors that differ by one count moved between two of 200
 * bins of 400000: the distance is about 1e-6 and scipy's two sums of
 * terms of both signs keep only part of its digits, so this case gets its
 * own tolerance. */
static void job_counts_js_twin(const double *r, double *c, size_t k)
{
    double w;
    job *j;
    const char *pr;
    c[3] += 1.0;
    c[150] -= 1.0;
    ASSERT_OK(ch_drift_js(r, c, k, &w, NULL));
    j = add_job("jensenshannon, near-identical", 1e-8, &w, 1);
    pr = put_array(r, k);
    snprintf(j->line, sizeof j->line, "js %s %s", pr, put_array(c, k));
}

static void job_w1(const double *a, size_t na, const double *b, size_t nb)
{
    double w;
    job *j;
    const char *pa;
    ASSERT_OK(ch_drift_wasserstein(a, na, b, nb, &w, NULL));
    j = add_job("wasserstein_distance", 1e-12, &w, 1);
    pa = put_array(a, na);
    snprintf(j->line, sizeof j->line, "w1 %s %s", pa, put_array(b, nb));
}

static void job_adjust(const double *p, size_t k)
{
    double *a = doubles(k);
    job *j;
    ASSERT_OK(ch_drift_bh(p, k, a, NULL));
    j = add_job("Benjamini-Hochberg", 0.0, a, k);
    snprintf(j->line, sizeof j->line, "bh %s", put_array(p, k));
    ASSERT_OK(ch_drift_holm(p, k, a, NULL));
    j = add_job("Holm", 0.0, a, k);
    snprintf(j->line, sizeof j->line, "holm %s", put_array(p, k));
    ch_free(a);
}

/* Edges of 'sorted' and the bin counts of 'v' with them. */
static void job_edges_bins(const double *sorted, size_t n, size_t n_bins, const double *v,
                           size_t nv)
{
    double *e = doubles(n_bins);
    double *c = doubles(n_bins + 1);
    size_t m;
    job *j;
    const char *pe;
    ASSERT_OK(ch_drift_edges(sorted, n, n_bins, e, &m, NULL));
    j = add_job("edges", 0.0, e, m);
    snprintf(j->line, sizeof j->line, "edges %zu %s", n_bins, put_array(sorted, n));
    if (m > 0) {
        ASSERT_OK(ch_drift_bin_counts(e, m, v, nv, c, NULL));
        j = add_job("bin counts", 0.0, c, m + 1);
        pe = put_array(e, m);
        snprintf(j->line, sizeof j->line, "bins %s %s", pe, put_array(v, nv));
    }
    ch_free(e);
    ch_free(c);
}

/* Sample generators for the oracle cases. */
typedef enum sample_kind { S_NORMAL, S_CAUCHY, S_GRID, S_PARETO } sample_kind;

static double *sample(rng *r, size_t n, sample_kind kind, double shift, double scale)
{
    double *v = doubles(n);
    for (size_t i = 0; i < n; i++) {
        double x = 0.0;
        switch (kind) {
        case S_NORMAL:
            x = rng_normal(r);
            break;
        case S_CAUCHY:
            x = rng_cauchy(r);
            break;
        case S_GRID:
            x = (double)rng_below(r, 12); /* heavy ties */
            break;
        case S_PARETO:
            x = pow(rng_unif(r), -1.0 / 1.5); /* heavy right tail */
            break;
        }
        v[i] = shift + scale * x;
    }
    qsort_doubles(v, n);
    return v;
}

/* Counts over k categories: a geometric-ish profile tilted by 'tilt', with
 * every 'hole'-th category empty (0 means none). */
static double *category_counts(rng *r, size_t k, size_t total, double tilt, size_t hole)
{
    double *c = doubles(k);
    double *w = doubles(k);
    double sw = 0.0;
    for (size_t i = 0; i < k; i++) {
        w[i] = (hole != 0 && i % hole == hole - 1)
                   ? 0.0
                   : exp(-(double)i * 0.02 + tilt * (double)i / (double)k);
        sw += w[i];
    }
    for (size_t t = 0; t < total; t++) {
        double u = rng_unif(r) * sw;
        size_t i = 0;
        while (i + 1 < k && (u -= w[i]) > 0.0)
            i++;
        while (w[i] == 0.0)
            i--;
        c[i] += 1.0;
    }
    ch_free(w);
    return c;
}

static void build_oracle_jobs(void)
{
    rng r = {4242};
    /* Kolmogorov-Smirnov on samples. */
    {
        static const struct {
            size_t na, nb;
            sample_kind ka, kb;
            double shift, scale;
        } ks[] = {
            {1000, 1200, S_NORMAL, S_NORMAL, 0.1, 1.0},
            {5000, 3000, S_GRID, S_GRID, 0.0, 1.0},
            {2000, 2000, S_CAUCHY, S_CAUCHY, 0.0, 1.3},
            {5, 100000, S_NORMAL, S_NORMAL, 0.0, 1.0},
            {1, 50, S_NORMAL, S_NORMAL, 0.0, 1.0},
            {3, 7, S_GRID, S_GRID, 0.0, 1.0},
            {4096, 200000, S_NORMAL, S_NORMAL, 0.01, 1.0},
            {20, 30, S_NORMAL, S_NORMAL, 0.3, 1.0},
            {100, 150, S_PARETO, S_PARETO, 0.0, 1.0},
            {300, 300, S_GRID, S_GRID, 0.5, 1.0},
            {300000, 300000, S_NORMAL, S_NORMAL, 0.0, 1.0},
            {40000, 60000, S_PARETO, S_PARETO, 0.0, 1.02},
            {800, 900, S_NORMAL, S_NORMAL, 0.0, 1.0},
            {2, 2, S_GRID, S_GRID, 0.0, 1.0},
        };
        for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
            double *a = sample(&r, ks[i].na, ks[i].ka, 0.0, 1.0);
            double *b = sample(&r, ks[i].nb, ks[i].kb, ks[i].shift, ks[i].scale);
            job_ks(a, ks[i].na, b, ks[i].nb);
            job_w1(a, ks[i].na, b, ks[i].nb);
            if (i == 0) {
                job_ks(a, ks[i].na, a, ks[i].na); /* identical: D = 0 */
                job_w1(a, ks[i].na, a, ks[i].na);
            }
            ch_free(a);
            ch_free(b);
        }
    }
    /* The KS distribution itself, across Simard and L'Ecuyer's regions;
     * fewer points for N >= 100000, where scipy's own sums are slow. */
    {
        static const size_t ns[] = {1,   2,    5,     10,     50,     139,    140,    141,
                                    500, 4079, 50000, 100000, 100001, 500000, 1000001};
        static const double nx2[] = {0.3, 0.754, 0.76, 1.0,  2.0,  2.19, 2.21,
                                     3.9, 4.1,   8.0,  20.0, 100., 369., 371.};
        static const double nx2_big[] = {0.3, 1.0, 2.19, 2.21, 30.0, 369.0};
        static const double fixed[] = {0.3, 0.5, 0.75, 1.0, 1.5, 3.0};
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            double n = (double)ns[i];
            int big = ns[i] >= 100000;
            size_t n_q = big ? sizeof nx2_big / sizeof nx2_big[0] : sizeof nx2 / sizeof nx2[0];
            for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
                if (fixed[k] / n <= 1.0)
                    job_kssf(fixed[k] / n, ns[i]);
            for (size_t k = 0; k < n_q; k++) {
                double q = big ? nx2_big[k] : nx2[k];
                if (sqrt(q / n) < 1.0)
                    job_kssf(sqrt(q / n), ns[i]);
            }
            job_kssf(0.3, ns[i]);
            job_kssf(0.5, ns[i]);
            job_kssf(0.7, ns[i]);
            job_kssf(1.0 - 1.0 / n, ns[i]);
            job_kssf(1.0 - 0.5 / n, ns[i]);
            job_kssf(1.0, ns[i]);
            if (big)
                job_kssf(pow(1.4 / n, 2.0 / 3.0) * 1.01, ns[i]); /* just past Durbin's region */
        }
    }
    /* Chi-square survival: dof 1..500 and a few fractional ones, x from
     * tiny through the body to tails of 1e-300 and underflow. */
    for (int dof = 1; dof <= 500; dof++) {
        static const double f[] = {1e-6, 0.1, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0};
        static const double tail[] = {1300, 1380, 1420, 1500, 1700, 2000, 2400, 2800, 1e4};
        double k = (double)dof;
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
            job_chi2sf(f[i] * k, k);
        job_chi2sf(k + 1.0, k);
        job_chi2sf(k + 10.0 * sqrt(2.0 * k), k);
        for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
            job_chi2sf(tail[i], k);
    }
    {
        static const double fdof[] = {0.3, 1.5, 2.5, 7.7, 1000, 5000};
        for (size_t i = 0; i < sizeof fdof / sizeof fdof[0]; i++)
            for (double x = 1e-3; x < 2e4; x *= 3.3)
                job_chi2sf(x, fdof[i]);
    }
    /* Count vectors: k = 2, k = 200 with and without empty bins, near
     * identical, disjoint, fractional. */
    {
        double r2[] = {480, 520};
        double c2[] = {530, 470};
        double d2a[] = {10, 0};
        double d2b[] = {0, 7};
        double *ra = category_counts(&r, 200, 20000, 0.0, 0);
        double *ca = category_counts(&r, 200, 15000, 0.8, 0);
        double *rh = category_counts(&r, 200, 20000, 0.0, 7);
        double *chh = category_counts(&r, 200, 9000, 0.5, 5); /* some bins empty on one side */
        double *near = category_counts(&r, 200, 400000, 0.0, 0);
        double *near2 = category_counts(&r, 200, 400000, 0.0, 0);
        double *twin = copy_of(near, 200); /* one count moved: scipy's sums cancel */
        double frac_r[] = {0.5, 1.25, 3.0, 0.0};
        double frac_c[] = {1.5, 0.25, 2.0, 0.0};
        static const char *const ops[] = {"chi2", "js", "psi"};
        for (size_t o = 0; o < 3; o++) {
            job_counts(ops[o], r2, c2, 2, CH_DRIFT_PSI_EPS);
            job_counts(ops[o], ra, ca, 200, CH_DRIFT_PSI_EPS);
            job_counts(ops[o], rh, chh, 200, CH_DRIFT_PSI_EPS);
            job_counts(ops[o], near, near2, 200, CH_DRIFT_PSI_EPS);
            job_counts(ops[o], frac_r, frac_c, 4, CH_DRIFT_PSI_EPS);
            if (o == 1)
                job_counts_js_twin(near, twin, 200);
            if (o != 0)
                job_counts(ops[o], d2a, d2b, 2, CH_DRIFT_PSI_EPS);
        }
        job_counts("psi", rh, chh, 200, 1e-6);
        job_counts("psi", rh, chh, 200, 0.01);
        ch_free(ra);
        ch_free(ca);
        ch_free(rh);
        ch_free(chh);
        ch_free(near);
        ch_free(near2);
        ch_free(twin);
    }
    /* Adjusted p-values: one, twenty with ties, two hundred with extremes. */
    {
        double one[] = {0.03};
        double p20[20];
        double p200[200];
        for (size_t i = 0; i < 20; i++)
            p20[i] = (double)rng_below(&r, 8) / 100.0;
        for (size_t i = 0; i < 200; i++)
            p200[i] = i % 17 == 0 ? 0.0 : i % 23 == 0 ? 1.0 : pow(rng_unif(&r), 4.0);
        job_adjust(one, 1);
        job_adjust(p20, 20);
        job_adjust(p200, 200);
    }
    /* Edges and bins: ties, few distinct values, one bin, many bins. */
    {
        double *s = sample(&r, 5000, S_NORMAL, 0.0, 1.0);
        double *g = sample(&r, 3000, S_GRID, 0.0, 1.0);
        double *pa = sample(&r, 777, S_PARETO, 0.0, 1.0);
        double *v = sample(&r, 20000, S_NORMAL, 0.2, 1.1);
        double *vg = sample(&r, 9000, S_GRID, 0.0, 1.0); /* equals the edges often */
        job_edges_bins(s, 5000, 10, v, 20000);
        job_edges_bins(s, 5000, 200, v, 20000);
        job_edges_bins(g, 3000, 10, vg, 9000);
        job_edges_bins(g, 3000, 2, vg, 9000);
        job_edges_bins(pa, 777, 50, v, 20000);
        job_edges_bins(pa, 777, 1, v, 20000);
        ch_free(s);
        ch_free(g);
        ch_free(pa);
        ch_free(v);
        ch_free(vg);
    }
}

/* Largest relative deviation seen per measure, for CH_TEST_VERBOSE. */
typedef struct deviation {
    const char *what;
    double worst;
} deviation;

TEST(matches_scipy)
{
    char jobs_path[600];
    char cmd[2048];
    FILE *f;
    char *line = NULL;
    size_t cap = 0;
    size_t at = 0;
    deviation dev[16];
    size_t n_dev = 0;

    /* tests/run traces children under valgrind, which would run the Python
     * interpreter under it as well, very slowly. */
    if (getenv("CH_VALGRIND") != NULL && strcmp(getenv("CH_VALGRIND"), "1") == 0)
        SKIP("CH_VALGRIND=1: not running Python under valgrind; the scipy comparison runs in "
             "`make test`");
    if (system("/usr/bin/python3 -c 'import scipy.stats, scipy.spatial, numpy' >/dev/null 2>&1") !=
        0)
        SKIP("/usr/bin/python3 cannot import scipy (apt install python3-scipy)");
    jobs = ch_calloc(MAX_JOBS, sizeof *jobs);
    ASSERT(jobs != NULL);
    build_oracle_jobs();
    snprintf(jobs_path, sizeof jobs_path, "%s/jobs.txt", ch_test_tmpdir());
    f = fopen(jobs_path, "w");
    ASSERT(f != NULL);
    for (size_t i = 0; i < n_jobs; i++)
        fprintf(f, "%s\n", jobs[i].line);
    ASSERT(fclose(f) == 0);

    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'",
             ch_test_path("tests/oracle/drift_ref.py"), jobs_path);
    f = popen(cmd, "r");
    ASSERT(f != NULL);
    while (getline(&line, &cap, f) > 0) {
        job *j;
        char *s = line;
        size_t k = 0;
        size_t d;
        ASSERT(at < n_jobs);
        j = &jobs[at];
        for (d = 0; d < n_dev && strcmp(dev[d].what, j->what) != 0; d++)
            ;
        if (d == n_dev) {
            ASSERT(n_dev < 16);
            dev[n_dev].what = j->what;
            dev[n_dev++].worst = 0.0;
        }
        for (;;) {
            char *end;
            double want;
            double ours;
            double diff;
            double tol;
            want = strtod(s, &end);
            if (end == s)
                break;
            s = end;
            if (k >= j->n_want)
                FAIL("job %zu (%s): scipy gave more than our %zu values", at, j->line, j->n_want);
            ours = j->want[k];
            diff = fabs(ours - want);
            tol = k == 0 ? j->rtol0 : j->rtol;
            if (!(diff <= tol * fabs(want) + (k == 0 && tol == 0.0 ? 0.0 : j->atol)) &&
                !(ours == want))
                FAIL("job %zu: %s: value %zu: ours %.17g, scipy %.17g (rel %.3g > %g)", at, j->line,
                     k, ours, want, diff / fabs(want), tol);
            if (want != 0.0 && fabs(want) >= DBL_MIN)
                dev[d].worst = fmax(dev[d].worst, diff / fabs(want));
            k++;
        }
        if (k != j->n_want)
            FAIL("job %zu (%s): scipy gave %zu values, we %zu", at, j->line, k, j->n_want);
        at++;
    }
    free(line); /* getline's buffer comes from the C library */
    ASSERT_INT_EQ(pclose(f), 0);
    ASSERT_INT_EQ(at, n_jobs);
    if (getenv("CH_TEST_VERBOSE") != NULL)
        for (size_t d = 0; d < n_dev; d++)
            fprintf(stderr, "    scipy - %-30s largest relative deviation %.3g\n", dev[d].what,
                    dev[d].worst);
    for (size_t i = 0; i < n_jobs; i++)
        ch_free(jobs[i].want);
    ch_free(jobs);
}

/* ---- fault injection ------------------------------------------------------- */

/* Runs 'fn' with allocation k failing, k = 1, 2, ... until it succeeds;
 * every failure must be CH_ENOMEM. Returns the number of failing runs. */
typedef ch_err (*scenario_fn)(void);

static long torture(scenario_fn fn, const char *name)
{
    long k;
    for (k = 1;; k++) {
        ch_err rc;
        ch_alloc_fail_after(k);
        rc = fn();
        ch_alloc_fail_after(0);
        if (rc == CH_OK)
            break;
        if (rc != CH_ENOMEM)
            FAIL("%s: allocation %ld failing gave %s", name, k, ch_strerror(rc));
        if (k > 100)
            FAIL("%s: still failing after %ld allocations", name, k);
    }
    return k - 1;
}

static double tv[2000];
static double tv2[2000];
static double ty[2000];

static void torture_data(void)
{
    rng r = {17};
    for (size_t i = 0; i < 2000; i++) {
        tv[i] = rng_unif(&r);
        tv2[i] = rng_unif(&r);
        ty[i] = rng_unif(&r) < tv[i] ? 1.0 : 0.0;
    }
}

static ch_err sc_sort(void)
{
    double v[1000];
    double keep[1000];
    ch_err rc;
    memcpy(v, tv, sizeof v);
    memcpy(keep, v, sizeof v);
    rc = ch_drift_sort(v, 1000, NULL);
    if (rc != CH_OK && memcmp(v, keep, sizeof v) != 0)
        FAIL("ch_drift_sort changed its input on failure");
    return rc;
}

static ch_err sc_bh(void)
{
    double a[300];
    return ch_drift_bh(tv, 300, a, NULL);
}

static ch_err sc_holm(void)
{
    double a[300];
    return ch_drift_holm(tv, 300, a, NULL);
}

static ch_err sc_cbpe(void)
{
    ch_drift_perf e;
    return ch_drift_cbpe(tv, 2000, 0.5, &e, NULL);
}

static ch_err boot(ch_drift_metric m)
{
    double lo;
    double hi;
    size_t sk;
    return ch_drift_bootstrap(m, ty, tv, 500, 0.5, 20, 1, 0.9, &lo, &hi, &sk, NULL);
}

static ch_err sc_boot_roc(void)
{
    return boot(CH_DRIFT_ROC_AUC);
}

static ch_err sc_boot_pr(void)
{
    return boot(CH_DRIFT_PR_AUC);
}

static ch_err sc_boot_brier(void)
{
    return boot(CH_DRIFT_BRIER);
}

static ch_err sc_boot_logloss(void)
{
    return boot(CH_DRIFT_LOG_LOSS);
}

static ch_err sc_boot_f1(void)
{
    return boot(CH_DRIFT_F1);
}

/* N = 4079 (samples of 8158), d = 0.003: Durbin's matrix, which allocates. */
static ch_err sc_ks_sf(void)
{
    double p;
    return ch_drift_ks_sf(0.003, 8158, 8158, &p, NULL);
}

/* Two samples of 50 from one distribution: N = 25 and D well inside
 * Durbin's region. */
static ch_err sc_ks(void)
{
    static double a[50];
    static double b[50];
    ch_drift_test t;
    memcpy(a, tv, sizeof a);
    memcpy(b, tv2, sizeof b);
    qsort_doubles(a, 50);
    qsort_doubles(b, 50);
    return ch_drift_ks(a, 50, b, 50, &t, NULL);
}

static ch_err sc_ks_counts(void)
{
    static double ref[50];
    static double c[101];
    ch_drift_test t;
    ch_err rc;
    memcpy(ref, tv, sizeof ref);
    qsort_doubles(ref, 50);
    rc = ch_drift_ks_bin_counts(ref, 50, tv2, 50, c, NULL);
    if (rc != CH_OK)
        return rc;
    return ch_drift_ks_counts(ref, 50, c, &t, NULL);
}

TEST(out_of_memory_never_crashes_or_leaks)
{
    torture_data();
    ASSERT_INT_EQ(torture(sc_sort, "sort"), 2);
    ASSERT_INT_EQ(torture(sc_bh, "bh"), 1);
    ASSERT_INT_EQ(torture(sc_holm, "holm"), 1);
    ASSERT_INT_EQ(torture(sc_cbpe, "cbpe"), 3);
    ASSERT(torture(sc_boot_roc, "bootstrap roc") >= 5);
    ASSERT(torture(sc_boot_pr, "bootstrap pr") >= 5);
    ASSERT(torture(sc_boot_brier, "bootstrap brier") >= 5);
    ASSERT(torture(sc_boot_logloss, "bootstrap log loss") >= 5);
    ASSERT(torture(sc_boot_f1, "bootstrap f1") >= 5);
    ASSERT_INT_EQ(torture(sc_ks_sf, "ks_sf"), 1);
    ASSERT_INT_EQ(torture(sc_ks, "ks"), 1);
    ASSERT_INT_EQ(torture(sc_ks_counts, "ks_counts"), 1);
}

TEST_MAIN(T(sort_small_by_hand), T(sort_matches_qsort), T(sort_rejects_nan_and_leaves_input),
          T(edges_by_hand), T(bin_counts_edge_side), T(bin_counts_match_definition), T(psi_by_hand),
          T(js_by_hand), T(chi2_by_hand), T(chi2_sf_closed_forms), T(ks_by_hand),
          T(ks_counts_need_the_equal_slots), T(ks_counts_equal_full_ks), T(wasserstein_by_hand),
          T(bh_and_holm_by_hand), T(cbpe_by_hand), T(cbpe_matches_slow_reference),
          T(cbpe_monte_carlo), T(bootstrap_matches_explicit_resampling),
          T(bootstrap_counts_skipped_replicates), T(input_checks), T(matches_scipy),
          T(out_of_memory_never_crashes_or_leaks))
