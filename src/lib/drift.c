/*
 * drift.c -- statistics for monitoring: sorting and binning, distances
 * between distributions, two-sample tests, multiple-testing corrections,
 * label-free performance estimates and bootstrap intervals.
 *
 * Invariants: every public function validates all of its input before it
 * writes any output, so a failure leaves caller memory as it was; nothing
 * is kept between calls. The workload is a monitoring window of about 1M
 * rows x 20 columns against a stored reference, so the per-value paths
 * (radix sort, binning) are written for speed and everything else is
 * O(n) or O(k) on already sorted data or counts.
 *
 * Numerics are plain IEEE double throughout (no long double: valgrind runs
 * x87 arithmetic in 64 bits, so results would change under it). Where a
 * textbook formula loses digits the code uses a rearranged form, and says
 * why next to it. The p-value functions follow published algorithms:
 * Simard and L'Ecuyer (2011) for the Kolmogorov-Smirnov distribution
 * (with Marsaglia, Tsang and Wang's evaluation of Durbin's matrix, the
 * Pelz-Good expansion and the Smirnov/Birnbaum-Tingey sum, whose terms are
 * binomial probabilities computed by Loader's (2000) saddle-point method),
 * and Legendre's continued fraction or the power series for the incomplete
 * gamma function.
 */
#include "ch/drift.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/metrics.h"
#include "ch/split.h"

#define PI         3.14159265358979323846
#define LN2        0.69314718055994530942
#define LN_2PI     1.83787706640934548356 /* log(2 pi) */
#define LN_SQRT2PI 0.91893853320467274178 /* log(sqrt(2 pi)) */
#define SQRT_2PI   2.50662827463100050242

/* ---- input checks ----------------------------------------------------------- */

/* 'v' must be n values in ascending order without NaN ('what' names the
 * array in the message); 'finite' also rejects infinities. */
static ch_err check_sorted(const double *v, size_t n, const char *what, int finite, ch_error *err)
{
    if (n == 0)
        return ch_error_set(err, CH_EINVAL, "%s is empty (n is 0)", what);
    if (v == NULL)
        return ch_error_set(err, CH_EINVAL, "%s is NULL", what);
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i]))
            return ch_error_set(err, CH_EINVAL, "%s[%zu] is NaN", what, i);
        if (finite && isinf(v[i]))
            return ch_error_set(err, CH_EINVAL, "%s[%zu] is infinite", what, i);
        if (i > 0 && v[i] < v[i - 1])
            return ch_error_set(err, CH_EINVAL, "%s is not sorted: %s[%zu] = %g < %s[%zu] = %g",
                                what, what, i, v[i], what, i - 1, v[i - 1]);
    }
    return CH_OK;
}

/* 'v' must be k non-negative finite counts with a positive sum, which goes
 * to '*sum'. */
static ch_err check_counts(const double *v, size_t k, const char *what, double *sum, ch_error *err)
{
    double s = 0.0;
    if (k == 0)
        return ch_error_set(err, CH_EINVAL, "no bins (k is 0)");
    if (v == NULL)
        return ch_error_set(err, CH_EINVAL, "%s is NULL", what);
    for (size_t i = 0; i < k; i++) {
        if (isnan(v[i]))
            return ch_error_set(err, CH_EINVAL, "%s[%zu] is NaN", what, i);
        if (v[i] < 0.0)
            return ch_error_set(err, CH_EINVAL, "%s[%zu] is negative (%g)", what, i, v[i]);
        if (isinf(v[i]))
            return ch_error_set(err, CH_EINVAL, "%s[%zu] is infinite", what, i);
        s += v[i];
    }
    if (!(s > 0.0))
        return ch_error_set(err, CH_EINVAL, "%s counts sum to 0", what);
    if (isinf(s))
        return ch_error_set(err, CH_EINVAL, "%s counts sum to infinity", what);
    *sum = s;
    return CH_OK;
}

/* Neumaier's compensated sum: the error of each addition is kept in 'c',
 * so long sums of terms of mixed size lose no more than a few ulps. */
typedef struct ksum {
    double s, c;
} ksum;

static void ksum_add(ksum *k, double x)
{
    double t = k->s + x;
    if (fabs(k->s) >= fabs(x))
        k->c += (k->s - t) + x;
    else
        k->c += (x - t) + k->s;
    k->s = t;
}

static double ksum_value(const ksum *k)
{
    return k->s + k->c;
}

/* ---- sorting ---------------------------------------------------------------- */

#define SORT_SMALL   32
#define RADIX_BITS   11
#define RADIX_SIZE   ((size_t)1 << RADIX_BITS)
#define RADIX_PASSES 6 /* ceil(64 / 11) */

/* Maps a double's bits to an unsigned key with the same order: positive
 * numbers get the sign bit set, negative ones are complemented (so larger
 * magnitudes sort lower). */
static uint64_t key_of(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u ^ ((0 - (u >> 63)) | 0x8000000000000000ull);
}

static double double_of(uint64_t k)
{
    uint64_t u = k ^ (((k >> 63) - 1) | 0x8000000000000000ull);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void insertion_sort(double *v, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        double x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

/* One counting-sort pass of 8-byte keys from 'src' to 'dst' on the digit at
 * 'shift', 'off' holding each digit's next output slot. The buffers are
 * bytes because one of them is the caller's double array holding key bits;
 * memcpy of 8 bytes compiles to a plain load or store. */
static void radix_pass(const unsigned char *src, unsigned char *dst, size_t n, unsigned shift,
                       size_t *off)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t k;
        memcpy(&k, src + 8 * i, 8);
        size_t d = (size_t)(k >> shift) & (RADIX_SIZE - 1);
        memcpy(dst + 8 * off[d], &k, 8);
        off[d]++;
    }
}

/*
 * LSD radix sort: one pass computes the keys (into the scratch buffer) and
 * all six digit histograms, then each digit that is not the same for every
 * key is a stable scatter between the scratch buffer and 'v'. Values of
 * one column usually share their sign and exponent range, so the top one
 * or two digits are often skipped. 11-bit digits: six passes instead of
 * eight with bytes, and 2048 counters per digit still fit in L1.
 */
ch_err ch_drift_sort(double *v, size_t n, ch_error *err)
{
    uint64_t *keys;
    size_t *hist;
    unsigned char *cur;
    unsigned char *other;

    if (n > 0 && v == NULL)
        return ch_error_set(err, CH_EINVAL, "values are NULL");
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i]))
            return ch_error_set(err, CH_EINVAL, "v[%zu] is NaN", i);
    if (n <= SORT_SMALL) {
        insertion_sort(v, n);
        return CH_OK;
    }
    keys = ch_malloc_array(n, sizeof *keys);
    hist = ch_calloc(RADIX_PASSES * RADIX_SIZE, sizeof *hist);
    if (keys == NULL || hist == NULL) {
        ch_free(keys);
        ch_free(hist);
        return ch_error_set(err, CH_ENOMEM, "out of memory sorting %zu values", n);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t k = key_of(v[i]);
        keys[i] = k;
        for (unsigned p = 0; p < RADIX_PASSES; p++)
            hist[p * RADIX_SIZE + ((k >> (p * RADIX_BITS)) & (RADIX_SIZE - 1))]++;
    }
    cur = (unsigned char *)keys;
    other = (unsigned char *)v;
    for (unsigned p = 0; p < RADIX_PASSES; p++) {
        size_t *h = hist + p * RADIX_SIZE;
        unsigned shift = p * RADIX_BITS;
        size_t sum = 0;
        uint64_t k0;
        unsigned char *t;
        memcpy(&k0, cur, 8);
        if (h[(k0 >> shift) & (RADIX_SIZE - 1)] == n)
            continue; /* every key has this digit: the pass would not move anything */
        for (size_t d = 0; d < RADIX_SIZE; d++) {
            size_t c = h[d];
            h[d] = sum;
            sum += c;
        }
        radix_pass(cur, other, n, shift, h);
        t = cur;
        cur = other;
        other = t;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t k;
        memcpy(&k, cur + 8 * i, 8);
        v[i] = double_of(k);
    }
    ch_free(hist);
    ch_free(keys);
    return CH_OK;
}

/* ---- binning ---------------------------------------------------------------- */

ch_err ch_drift_edges(const double *sorted, size_t n, size_t n_bins, double *edges, size_t *n_edges,
                      ch_error *err)
{
    ch_err rc;
    size_t q;
    size_t r;
    size_t m = 0;
    double last;

    if (n_bins < 1 || n_bins > CH_DRIFT_BINS_MAX)
        return ch_error_set(err, CH_EINVAL, "n_bins %zu is outside 1..%d", n_bins,
                            CH_DRIFT_BINS_MAX);
    if ((n_bins > 1 && edges == NULL) || n_edges == NULL)
        return ch_error_set(err, CH_EINVAL, "edges and n_edges are required");
    rc = check_sorted(sorted, n, "reference", 0, err);
    if (rc != CH_OK)
        return rc;
    /* floor(k n / n_bins) without overflow: k (n mod n_bins) < n_bins^2. */
    q = n / n_bins;
    r = n % n_bins;
    last = sorted[0];
    for (size_t k = 1; k < n_bins; k++) {
        double e = sorted[k * q + k * r / n_bins];
        if (e > last) {
            edges[m++] = e;
            last = e;
        }
    }
    *n_edges = m;
    return CH_OK;
}

/* The number of edges e[0..m) (m >= 1, non-decreasing) that are <= x:
 * numpy.searchsorted(e, x, side='right'). Branch-free halving, so the
 * loop has the same shape for every x and compiles to conditional moves. */
static size_t upper_bound(const double *e, size_t m, double x)
{
    const double *base = e;
    while (m > 1) {
        size_t half = m / 2;
        base = base[half] <= x ? base + half : base;
        m -= half;
    }
    return (size_t)(base - e) + (*base <= x);
}

/* The number of e[0..m) (m >= 1) that are < x (side='left'). */
static size_t lower_bound(const double *e, size_t m, double x)
{
    const double *base = e;
    while (m > 1) {
        size_t half = m / 2;
        base = base[half] < x ? base + half : base;
        m -= half;
    }
    return (size_t)(base - e) + (*base < x);
}

/* Bin counts for up to this many edges are sums of comparisons, which
 * vectorize; above it a binary search per value is cheaper. */
#define LINEAR_EDGES 16
#define BIN_BLOCK    256

ch_err ch_drift_bin_counts(const double *edges, size_t n_edges, const double *v, size_t n,
                           double *counts, ch_error *err)
{
    if (counts == NULL)
        return ch_error_set(err, CH_EINVAL, "counts is NULL");
    if (n_edges > 0 && edges == NULL)
        return ch_error_set(err, CH_EINVAL, "edges is NULL");
    if (n > 0 && v == NULL)
        return ch_error_set(err, CH_EINVAL, "values are NULL");
    for (size_t j = 0; j < n_edges; j++) {
        if (isnan(edges[j]))
            return ch_error_set(err, CH_EINVAL, "edges[%zu] is NaN", j);
        if (j > 0 && edges[j] < edges[j - 1])
            return ch_error_set(err, CH_EINVAL, "edges decrease at %zu (%g < %g)", j, edges[j],
                                edges[j - 1]);
    }
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i]))
            return ch_error_set(err, CH_EINVAL, "v[%zu] is NaN (missing values need their own bin)",
                                i);
    memset(counts, 0, (n_edges + 1) * sizeof *counts);
    if (n_edges == 0) {
        counts[0] = (double)n;
    } else if (n_edges <= LINEAR_EDGES) {
        /* Full blocks of values, one edge at a time: the inner loop has a
         * fixed length and is a vector compare-and-count. */
        size_t c[4][LINEAR_EDGES + 1] = {{0}}; /* four copies: a run of values in
                                                  one bin does not wait on one counter */
        double j[BIN_BLOCK];                   /* bin per value; doubles, because gcc vectorizes
                                                  double compare-and-add but not into integers */
        size_t at = 0;
        for (; at + BIN_BLOCK <= n; at += BIN_BLOCK) {
            const double *x = v + at;
            memset(j, 0, sizeof j);
            for (size_t k = 0; k < n_edges; k++) {
                double e = edges[k];
                for (size_t t = 0; t < BIN_BLOCK; t++)
                    j[t] += x[t] >= e ? 1.0 : 0.0;
            }
            for (size_t t = 0; t < BIN_BLOCK; t += 4) {
                c[0][(size_t)j[t]]++;
                c[1][(size_t)j[t + 1]]++;
                c[2][(size_t)j[t + 2]]++;
                c[3][(size_t)j[t + 3]]++;
            }
        }
        for (; at < n; at++) {
            size_t k = 0;
            for (size_t q = 0; q < n_edges; q++)
                k += edges[q] <= v[at];
            c[0][k]++;
        }
        for (size_t k = 0; k <= n_edges; k++)
            counts[k] = (double)(c[0][k] + c[1][k] + c[2][k] + c[3][k]);
    } else {
        for (size_t i = 0; i < n; i++)
            counts[upper_bound(edges, n_edges, v[i])] += 1.0;
    }
    return CH_OK;
}

/* ---- distances between count vectors ---------------------------------------- */

ch_err ch_drift_psi(const double *ref, const double *cur, size_t k, double eps, double *out,
                    ch_error *err)
{
    double sr;
    double sc;
    double psi = 0.0;
    ch_err rc;

    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    if (!(eps > 0.0 && eps < 1.0))
        return ch_error_set(err, CH_EINVAL, "eps %g is outside (0, 1)", eps);
    rc = check_counts(ref, k, "ref", &sr, err);
    if (rc == CH_OK)
        rc = check_counts(cur, k, "cur", &sc, err);
    if (rc != CH_OK)
        return rc;
    for (size_t i = 0; i < k; i++) {
        double r = fmax(ref[i] / sr, eps);
        double c = fmax(cur[i] / sc, eps);
        psi += (c - r) * log(c / r); /* every term is >= 0: no cancellation */
    }
    *out = psi;
    return CH_OK;
}

/* g(d) = (1 + d) ln(1 + d) + (1 - d) ln(1 - d) for |d| <= 1. The direct
 * form cancels for small d, where the series sum_k d^(2k) / (k (2k - 1))
 * (all terms positive) is used instead. */
static double js_g(double d)
{
    double a = fabs(d);
    if (a < 0.5) {
        double d2 = d * d;
        double pw = d2;
        double s = 0.0;
        for (int k = 1; k < 60; k++) {
            double t = pw / ((double)k * (double)(2 * k - 1));
            s += t;
            if (t < s * 1e-17)
                break;
            pw *= d2;
        }
        return s;
    }
    if (a >= 1.0)
        return 2.0 * LN2;
    return (1.0 + a) * log1p(a) + (1.0 - a) * log1p(-a);
}

/*
 * scipy sums p ln(p / m) and q ln(q / m) over bins separately; each of
 * those sums has terms of both signs and cancels when p and q are close.
 * Per bin the two terms add up to ((p + q) / 2) g((p - q) / (p + q)) >= 0,
 * so the total is a sum of non-negative terms, each accurate to a few ulps.
 */
ch_err ch_drift_js(const double *p, const double *q, size_t k, double *out, ch_error *err)
{
    double sp;
    double sq;
    double s = 0.0;
    double d;
    ch_err rc;

    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    rc = check_counts(p, k, "p", &sp, err);
    if (rc == CH_OK)
        rc = check_counts(q, k, "q", &sq, err);
    if (rc != CH_OK)
        return rc;
    for (size_t i = 0; i < k; i++) {
        double a = p[i] / sp;
        double b = q[i] / sq;
        if (a + b > 0.0)
            s += 0.5 * (a + b) * js_g((a - b) / (a + b));
    }
    /* distance = sqrt((KL(p||m) + KL(q||m)) / (2 ln 2)) */
    d = sqrt(fmax(s, 0.0) / (2.0 * LN2));
    *out = fmin(d, 1.0);
    return CH_OK;
}

/* ---- chi-square ------------------------------------------------------------- */

/* log(Gamma(a)) - ((a - 1/2) log a - a + log sqrt(2 pi)): the remainder of
 * Stirling's series (Loader's stirlerr; for whole a, ln a! less Stirling's
 * formula for it, shifted by one). Directly for small a (magnitudes stay
 * small, so little cancels); the asymptotic series from 15 on, where its
 * first omitted term is below 3e-16. */
static double stirlerr(double a)
{
    if (a < 15.0)
        return lgamma(a) - ((a - 0.5) * log(a) - a + LN_SQRT2PI);
    {
        double r = 1.0 / (a * a);
        return (1.0 / 12 -
                r * (1.0 / 360 - r * (1.0 / 1260 - r * (1.0 / 1680 - r * (1.0 / 1188))))) /
               a;
    }
}

/* t - 1 - ln t for t = x / a > 0, accurate near t = 1: with u = (x - a) /
 * a and s = u / (2 + u), ln(1 + u) = 2 (s + s^3/3 + s^5/5 + ...) and
 * u - 2s = s u, so t - 1 - ln t = s u - 2 (s^3/3 + s^5/5 + ...), which does
 * not cancel. Far from 1, t itself (not 1 + u, which loses the digits of
 * a small t) goes into the logarithm. */
static double dev_from_one(double a, double x)
{
    double u = (x - a) / a;
    if (u > -0.5 && u < 1.0) {
        double s = u / (2.0 + u);
        double s2 = s * s;
        double pw = s * s2;
        double sum = 0.0;
        for (int k = 1; k < 60; k++) {
            double t = pw / (double)(2 * k + 1);
            sum += t;
            if (fabs(t) < fabs(sum) * 1e-17)
                break;
            pw *= s2;
        }
        return s * u - 2.0 * sum;
    }
    {
        double t = x / a;
        return (t - 1.0) - log(t);
    }
}

/* log(x^a e^-x / Gamma(a)), by Stirling: log sqrt(a / 2 pi) - a D(x / a) -
 * stirlerr(a) with D(t) = t - 1 - ln t. Computing a ln x - x - lgamma(a) instead
 * loses the digits of the large terms that cancel. */
static double log_gamma_prefactor(double a, double x)
{
    return 0.5 * log(a / (2.0 * PI)) - a * dev_from_one(a, x) - stirlerr(a);
}

/* Regularized upper incomplete gamma Q(a, x) for a > 0, x >= 0. */
static double gamma_q(double a, double x)
{
    double lf;
    if (x == 0.0)
        return 1.0;
    if (isinf(x))
        return 0.0;
    lf = log_gamma_prefactor(a, x);
    if (x < a + 1.0) {
        /* P(a, x) = x^a e^-x / Gamma(a + 1) sum_k x^k / ((a+1)...(a+k));
         * here P <= about 0.92, so 1 - P keeps its digits. */
        double term = 1.0;
        double sum = 1.0;
        for (int k = 1; k < 100000; k++) {
            term *= x / (a + k);
            sum += term;
            if (term < sum * 1e-17)
                break;
        }
        return 1.0 - exp(lf) / a * sum;
    }
    /* Legendre's continued fraction for Gamma(a, x) e^x x^-a,
     * 1 / (x + 1 - a - 1 (1 - a) / (x + 3 - a - 2 (2 - a) / (x + 5 - a - ...))),
     * by the modified Lentz method. */
    {
        const double tiny = 1e-300;
        double b = x + 1.0 - a;
        double c = 1.0 / tiny;
        double d = 1.0 / b;
        double h = d;
        for (int i = 1; i < 100000; i++) {
            double an = -i * (i - a);
            double del;
            b += 2.0;
            d = an * d + b;
            if (fabs(d) < tiny)
                d = tiny;
            c = b + an / c;
            if (fabs(c) < tiny)
                c = tiny;
            d = 1.0 / d;
            del = d * c;
            h *= del;
            if (fabs(del - 1.0) <= DBL_EPSILON)
                break;
        }
        return exp(lf) * h;
    }
}

/* Q(dof / 2, x / 2) in [0, 1]. Results below the smallest normal double
 * are returned as 0 (scipy returns 0 or a subnormal there): a subnormal
 * keeps only its few remaining bits, so it would be mostly rounding. */
static double chi2_sf(double x, double dof)
{
    double q = gamma_q(0.5 * dof, 0.5 * x);
    if (q < DBL_MIN)
        return 0.0;
    return fmin(q, 1.0);
}

ch_err ch_drift_chi2_sf(double x, double dof, double *out, ch_error *err)
{
    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    if (!(x >= 0.0))
        return ch_error_set(err, CH_EINVAL, "chi-square value %g is negative or NaN", x);
    if (!(dof > 0.0 && isfinite(dof)))
        return ch_error_set(err, CH_EINVAL, "degrees of freedom %g are not positive and finite",
                            dof);
    *out = chi2_sf(x, dof);
    return CH_OK;
}

ch_err ch_drift_chi2(const double *ref, const double *cur, size_t k, ch_drift_test *out,
                     ch_error *err)
{
    double sr;
    double sc;
    double total;
    double stat = 0.0;
    size_t kept = 0;
    ch_drift_test t;
    ch_err rc;

    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    rc = check_counts(ref, k, "ref", &sr, err);
    if (rc == CH_OK)
        rc = check_counts(cur, k, "cur", &sc, err);
    if (rc != CH_OK)
        return rc;
    total = sr + sc;
    for (size_t i = 0; i < k; i++) {
        double col = ref[i] + cur[i];
        double er;
        double ec;
        if (col == 0.0)
            continue;
        kept++;
        /* As scipy: expected = row total x column total / grand total. */
        er = sr * col / total;
        ec = sc * col / total;
        stat += (ref[i] - er) * (ref[i] - er) / er + (cur[i] - ec) * (cur[i] - ec) / ec;
    }
    t.dof = kept - 1;
    if (t.dof == 0) {
        t.stat = 0.0; /* one column: observed equals expected */
        t.p = 1.0;
    } else {
        t.stat = stat;
        t.p = chi2_sf(stat, (double)t.dof);
    }
    *out = t;
    return CH_OK;
}

/* ---- the Kolmogorov-Smirnov distribution ------------------------------------- */

/* Loader's deviance term x ln(x / M) + M - x, given d = x - M computed
 * without cancellation by the caller. Near x = M the series in v = d /
 * (x + M) replaces the cancelling logarithm. */
static double bd0(double x, double m, double d)
{
    if (fabs(d) < 0.1 * (x + m)) {
        double v = d / (x + m);
        double s = d * v;
        double ej = 2.0 * x * v;
        double v2 = v * v;
        for (int j = 1; j < 1000; j++) {
            double s1;
            ej *= v2;
            s1 = s + ej / (double)(2 * j + 1);
            if (s1 == s)
                return s1;
            s = s1;
        }
        return s;
    }
    return x * log(x / m) - d;
}

/* ln(n! / n^n) = ln sqrt(2 pi n) - n + stirlerr(n), without forming either
 * factor. */
static double log_fact_over_pow(double n)
{
    return 0.5 * log(2.0 * PI * n) - n + stirlerr(n);
}

/*
 * P(D+_n >= x), the one-sided Smirnov statistic, exactly, for 1/n < x <
 * 1 - 1/n, by the Birnbaum-Tingey (Smirnov) sum
 *   x sum_{j=0}^{ceil(n (1 - x)) - 1} C(n, j) (x + j/n)^(j-1) (1 - x - j/n)^(n-j).
 * Term j is (x / u) b(j; n, u) with u = x + j/n and b the binomial
 * probability, evaluated by Loader's saddle-point form (every piece is
 * small or cancels analytically, so each term is good to a few ulps
 * however large n is). All terms are positive. n x is carried as an exact
 * double-double (fma) so the last index and 1 - x - j/n are exact.
 * Beyond 10^6 it uses exp(-(6 n x + 1)^2 / (18 n)), as scipy does.
 */
static double smirnov_sf(double n, double x)
{
    double hi;
    double lo;
    double fl;
    double stn;
    ksum s = {0.0, 0.0};

    /* P(D+ >= x) <= exp(-2 n x^2) (Massart): below half the smallest
     * normal double, which ks_sf() returns as 0 anyway. */
    if (-2.0 * n * x * x < log(0.5 * DBL_MIN))
        return 0.0;
    if (n > 1e6)
        return exp(-pow(6.0 * n * x + 1.0, 2.0) / 18.0 / n);
    hi = n * x;
    lo = fma(n, x, -hi);
    fl = floor(hi);
    if (fl == hi && lo < 0.0)
        fl -= 1.0;
    stn = stirlerr(n);
    ksum_add(&s, exp(n * log1p(-x))); /* j = 0: (1 - x)^n */
    for (double j = 1.0; j <= n - fl - 1.0; j += 1.0) {
        double m1 = hi + j + lo;         /* n u */
        double m2 = ((n - j) - hi) - lo; /* n (1 - u) */
        double lc =
            stn - stirlerr(j) - stirlerr(n - j) - bd0(j, m1, -(hi + lo)) - bd0(n - j, m2, hi + lo);
        double lf = LN_2PI + log(j) + log1p(-j / n);
        ksum_add(&s, exp(lc - 0.5 * lf) * ((hi + lo) / m1));
    }
    return ksum_value(&s);
}

/* C = A B for m x m row-major matrices, then scaled by a power of two so
 * that the largest entry is in [0.5, 1); returns that power. */
static int mat_mul_scaled(const double *a, const double *b, double *c, int m)
{
    double big = 0.0;
    int e;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < m; j++)
            c[i * m + j] = 0.0;
        for (int k = 0; k < m; k++) {
            double aik = a[i * m + k];
            if (aik == 0.0)
                continue;
            for (int j = 0; j < m; j++)
                c[i * m + j] += aik * b[k * m + j];
        }
    }
    for (int i = 0; i < m * m; i++)
        big = fmax(big, fabs(c[i]));
    if (big == 0.0)
        return 0;
    (void)frexp(big, &e);
    for (int i = 0; i < m * m; i++)
        c[i] = ldexp(c[i], -e);
    return e;
}

/* A bound on the matrix durbin_cdf() builds: ks_choose() picks it only
 * while n x^1.5 <= 1.4 with n <= 100000 (k <= 59) or n <= 140 with
 * n x^2 <= 4 (k <= 24). */
#define DURBIN_MAX_M 127

/*
 * P(D_n < d), two-sided, by Durbin's matrix: with k = ceil(n d), h = k - n d
 * and the (2k-1) x (2k-1) matrix H of Marsaglia, Tsang and Wang (2003),
 * P = n! / n^n (H^n)[k-1][k-1]. The power is taken by squaring, every
 * product rescaled by a power of two (tracked in an exponent), and n!/n^n
 * is applied in the logarithm with e^-n split as 2^-q e^r (Cody-Waite), so
 * nothing underflows and the scale costs no digits. 'work' holds 4 m^2
 * doubles.
 */
static double durbin_cdf(double n, double d, double *work)
{
    double nd = n * d;
    int k = (int)ceil(nd);
    double h = (double)k - nd;
    int m = 2 * k - 1;
    double *hm = work;
    double *r = work + m * m;
    double *t = work + 2 * m * m;
    double *sq = work + 3 * m * m;
    double fact = 1.0; /* 1 / j! */
    int eh = 0;
    int er = 0;
    unsigned long nn = (unsigned long)n;
    double q;
    double rr;
    double lp;

    if (nd <= 0.5)
        return 0.0;
    CH_ASSERT(m <= DURBIN_MAX_M);
    for (int i = 0; i < m * m; i++)
        hm[i] = 0.0;
    /* H[i][j] = 1 / (i - j + 1)! for i - j + 1 >= 0, first column and last
     * row corrected by the powers of h. */
    for (int j = 0; j <= m; j++) {
        if (j > 0)
            fact /= j;
        for (int i = 0; i < m; i++) {
            int c = i + 1 - j;
            if (c >= 0 && c < m)
                hm[i * m + c] = fact;
        }
    }
    fact = 1.0;
    for (int i = 0; i < m; i++) {
        fact /= (i + 1);
        hm[i * m] = (1.0 - pow(h, i + 1)) * fact;  /* H[i][0] */
        hm[(m - 1) * m + (m - 1 - i)] = hm[i * m]; /* H[m-1][m-1-i] */
    }
    hm[(m - 1) * m] =
        (1.0 - 2.0 * pow(h, m) + (2.0 * h > 1.0 ? pow(2.0 * h - 1.0, m) : 0.0)) * fact;
    for (int i = 0; i < m * m; i++)
        r[i] = (i % (m + 1) == 0) ? 1.0 : 0.0;
    while (nn > 0) {
        if (nn & 1) {
            er += eh + mat_mul_scaled(r, hm, t, m);
            memcpy(r, t, (size_t)(m * m) * sizeof *r);
        }
        nn >>= 1;
        if (nn > 0) {
            eh = 2 * eh + mat_mul_scaled(hm, hm, sq, m);
            memcpy(hm, sq, (size_t)(m * m) * sizeof *hm);
        }
    }
    lp = r[(k - 1) * m + (k - 1)];
    if (lp <= 0.0)
        return 0.0;
    /* e^-n = 2^-q e^rr with q = round(n / ln 2); ln2 split in a part whose
     * products with q < 2^21 are exact and a small rest. */
    q = nearbyint(n / LN2);
    rr = (q * 6.93147180369123816490e-01 - n) + q * 1.90821492927058770002e-10;
    return ldexp(lp * exp(rr + stirlerr(n)) * sqrt(2.0 * PI * n), er - (int)q);
}

/* The Pelz-Good (1976) asymptotic expansion of P(D_n <= x) in z = x sqrt(n):
 * K0(z) + K1(z) / sqrt(n) + K2(z) / n + K3(z) / n^1.5, the theta-function
 * forms that converge fast for small z (as given by Simard and L'Ecuyer). */
static double pelz_good_cdf(double n, double x)
{
    double z = sqrt(n) * x;
    double z2 = z * z;
    double z4 = z2 * z2;
    double z6 = z4 * z2;
    double qlog = -PI * PI / 8.0 / z2;
    double pi2 = PI * PI;
    double pi4 = pi2 * pi2;
    double pi6 = pi4 * pi2;
    double k0 = 0.0;
    double k1 = 0.0;
    double k2 = 0.0;
    double k3 = 0.0;
    double k2x = 0.0;
    double k3x = 0.0;
    int kmax;

    if (qlog < -708.0)
        return 0.0;
    kmax = (int)ceil(16.0 * z / PI);
    if (kmax < 1)
        kmax = 1;
    for (int k = kmax; k >= 1; k--) {
        double m = 2.0 * k - 1.0;
        double m2 = m * m;
        double m4 = m2 * m2;
        double e = exp(qlog * m2);
        double kk = (double)k * k;
        double ex = exp(-pi2 * kk / 2.0 / z2);
        k0 += e;
        k1 += (pi2 * m2 / 4.0 - z2) * e;
        k2 += (6.0 * z6 + 2.0 * z4 + (2.0 * z4 - 5.0 * z2) * pi2 * m2 / 4.0 +
               pi4 * (1.0 - 2.0 * z2) * m4 / 16.0) *
              e;
        k3 += (pi6 * (5.0 - 30.0 * z2) * m4 * m2 / 64.0 +
               pi4 * (-60.0 * z2 + 212.0 * z4) * m4 / 16.0 +
               pi2 * (135.0 * z4 - 96.0 * z6) * m2 / 4.0 - 30.0 * z6 - 90.0 * z4 * z4) *
              e;
        k2x += kk * ex;
        k3x += (3.0 * z2 - pi2 * kk) * kk * ex;
    }
    k0 *= SQRT_2PI / z;
    k1 *= SQRT_2PI / (6.0 * z4);
    k2 = k2 * SQRT_2PI / (72.0 * z6 * z) - k2x * pi2 * SQRT_2PI / (36.0 * z2 * z);
    k3 = k3 * SQRT_2PI / (6480.0 * z6 * z4) + k3x * pi2 * SQRT_2PI / (216.0 * z6);
    return k0 + k1 / sqrt(n) + k2 / n + k3 / (n * sqrt(n));
}

/* How ks_sf() evaluates P(D_n >= x) in each region. */
typedef enum ks_method {
    KS_ONE,      /* n x <= 1/2: the statistic is always at least 1/(2n) */
    KS_ZERO,     /* x >= 1, or negligible (n x^2 >= 370, n > 140) */
    KS_RG_LOW,   /* 1/2 < n x <= 1: Ruben-Gambino, 1 - n!/n^n (2 n x - 1)^n */
    KS_RG_HIGH,  /* n x >= n - 1: Ruben-Gambino, 2 (1 - x)^n */
    KS_SMIRNOV,  /* twice the one-sided probability */
    KS_DURBIN,   /* 1 - Durbin's matrix */
    KS_PELZ_GOOD /* 1 - the Pelz-Good expansion */
} ks_method;

/*
 * Simard and L'Ecuyer's choice of method for P(D_n >= x), the two-sided
 * one-sample statistic, with the same cut-offs as scipy's kstwo, so both
 * give the same approximation where one is used: twice the one-sided
 * probability for x >= 0.5 (the two one-sided events cannot both happen)
 * and beyond n x^2 = 4 (n <= 140) or 2.2 (n > 140), where their joint
 * probability is negligible; Durbin's matrix for n <= 140, or for n <=
 * 100000 while n x^1.5 <= 1.4; Pelz-Good otherwise. (scipy uses
 * Pomeranz's recursion for n <= 140 and 0.754693 < n x^2 <= 4; it is
 * exact, as Durbin's matrix is, so the values agree.)
 */
static ks_method ks_choose(double n, double x)
{
    double t;
    double nx2;
    if (x >= 1.0)
        return KS_ZERO;
    t = n * x;
    if (t <= 0.5)
        return KS_ONE;
    if (t <= 1.0)
        return KS_RG_LOW;
    if (t >= n - 1.0)
        return KS_RG_HIGH;
    if (x >= 0.5)
        return KS_SMIRNOV;
    nx2 = t * x;
    if (n <= 140.0)
        return nx2 <= 4.0 ? KS_DURBIN : KS_SMIRNOV;
    if (nx2 >= 370.0)
        return KS_ZERO;
    if (nx2 >= 2.2)
        return KS_SMIRNOV;
    if (n <= 100000.0 && n * pow(x, 1.5) <= 1.4)
        return KS_DURBIN;
    return KS_PELZ_GOOD;
}

/* P(D_n >= x) by 'method'; 'work' is durbin_cdf()'s for KS_DURBIN. */
static double ks_sf(ks_method method, double n, double x, double *work)
{
    double p = 0.0;
    switch (method) {
    case KS_ONE:
        p = 1.0;
        break;
    case KS_ZERO:
        p = 0.0;
        break;
    case KS_RG_LOW:
        p = 1.0 - exp(log_fact_over_pow(n) + n * log(2.0 * n * x - 1.0));
        break;
    case KS_RG_HIGH:
        p = 2.0 * pow(1.0 - x, n);
        break;
    case KS_SMIRNOV:
        p = 2.0 * smirnov_sf(n, x);
        break;
    case KS_DURBIN:
        p = 1.0 - durbin_cdf(n, x, work);
        break;
    case KS_PELZ_GOOD:
        p = 1.0 - pelz_good_cdf(n, x);
        break;
    }
    /* As for chi-square: a subnormal p-value would be mostly rounding. */
    if (p < DBL_MIN)
        return 0.0;
    return fmin(p, 1.0);
}

/* N = m n / (m + n) rounded half to even, m >= n, as scipy's ks_2samp. */
static double ks_effective_n(size_t n_a, size_t n_b)
{
    double m = (double)(n_a > n_b ? n_a : n_b);
    double n = (double)(n_a > n_b ? n_b : n_a);
    return nearbyint(m * n / (m + n));
}

static ch_err ks_pvalue(double d, size_t n_a, size_t n_b, double *out, ch_error *err)
{
    double en = ks_effective_n(n_a, n_b);
    double *work = NULL;
    ks_method method;
    if (en < 1.0)
        return ch_error_set(err, CH_EDATA,
                            "the Kolmogorov-Smirnov p-value is undefined for two samples of one "
                            "value each");
    method = ks_choose(en, d);
    if (method == KS_DURBIN) {
        /* Four m x m matrices, m = 2 ceil(N d) - 1 <= 117: up to 438 KB,
         * too much for a thread's stack. */
        size_t m = 2 * (size_t)ceil(en * d) - 1;
        work = ch_malloc_array(4 * m * m, sizeof *work);
        if (work == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory for the KS p-value");
    }
    *out = ks_sf(method, en, d, work);
    ch_free(work);
    return CH_OK;
}

ch_err ch_drift_ks_sf(double d, size_t n_a, size_t n_b, double *out, ch_error *err)
{
    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    if (!(d >= 0.0 && d <= 1.0))
        return ch_error_set(err, CH_EINVAL, "statistic %g is outside [0, 1]", d);
    if (n_a == 0 || n_b == 0)
        return ch_error_set(err, CH_EINVAL, "a sample size is 0");
    return ks_pvalue(d, n_a, n_b, out, err);
}

ch_err ch_drift_ks(const double *a, size_t n_a, const double *b, size_t n_b, ch_drift_test *out,
                   ch_error *err)
{
    double na = (double)n_a;
    double nb = (double)n_b;
    double dmax = 0.0;
    size_t i = 0;
    size_t j = 0;
    ch_drift_test t;
    ch_err rc;

    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    rc = check_sorted(a, n_a, "a", 0, err);
    if (rc == CH_OK)
        rc = check_sorted(b, n_b, "b", 0, err);
    if (rc != CH_OK)
        return rc;
    /* At every distinct value x of either sample, the ECDFs are i / n_a and
     * j / n_b with i, j the counts <= x: the same divisions and subtraction
     * scipy evaluates, so D is the same double. */
    while (i < n_a || j < n_b) {
        double x = (j >= n_b || (i < n_a && a[i] <= b[j])) ? a[i] : b[j];
        while (i < n_a && a[i] <= x)
            i++;
        while (j < n_b && b[j] <= x)
            j++;
        dmax = fmax(dmax, fabs((double)i / na - (double)j / nb));
    }
    t.stat = dmax;
    t.dof = 0;
    rc = ks_pvalue(dmax, n_a, n_b, &t.p, err);
    if (rc != CH_OK)
        return rc;
    *out = t;
    return CH_OK;
}

#define KS_LANES 8

ch_err ch_drift_ks_bin_counts(const double *ref, size_t n_ref, const double *v, size_t n,
                              double *counts, ch_error *err)
{
    ch_err rc;
    if (counts == NULL)
        return ch_error_set(err, CH_EINVAL, "counts is NULL");
    if (n > 0 && v == NULL)
        return ch_error_set(err, CH_EINVAL, "values are NULL");
    rc = check_sorted(ref, n_ref, "reference", 0, err);
    if (rc != CH_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (isnan(v[i]))
            return ch_error_set(err, CH_EINVAL, "v[%zu] is NaN", i);
    memset(counts, 0, (2 * n_ref + 1) * sizeof *counts);
    /* Eight searches in step: each halving is a dependent load, so running
     * several independent ones side by side hides most of the latency. */
    {
        size_t i = 0;
        for (; i + KS_LANES <= n; i += KS_LANES) {
            size_t b[KS_LANES];
            const double *x = v + i;
            size_t len = n_ref;
            for (int t = 0; t < KS_LANES; t++)
                b[t] = 0;
            while (len > 1) {
                size_t half = len / 2;
                for (int t = 0; t < KS_LANES; t++)
                    b[t] += (size_t)(ref[b[t] + half] < x[t]) * half;
                len -= half;
            }
            for (int t = 0; t < KS_LANES; t++) {
                size_t at = b[t] + (ref[b[t]] < x[t]);
                counts[2 * at + (at < n_ref && ref[at] == x[t])] += 1.0;
            }
        }
        for (; i < n; i++) {
            size_t at = lower_bound(ref, n_ref, v[i]);
            counts[2 * at + (at < n_ref && ref[at] == v[i])] += 1.0;
        }
    }
    return CH_OK;
}

/*
 * Why D from these counts is exact. Let r_1 < ... < r_u be the distinct
 * reference values and G(x) = F_ref(x) - F_cur(x), both right-continuous
 * step functions. Cut the line into the open gaps (-inf, r_1), (r_1, r_2),
 * ..., (r_u, inf) and the points r_1, ..., r_u. At a point r_s the counts
 * give both ECDFs exactly: F_ref(r_s) = (reference values <= r_s) / m and
 * F_cur(r_s) = (counts up to and including r_s's slots) / n. On a gap
 * F_ref is constant, equal to its value at the gap's left end, and F_cur
 * is non-decreasing, so |G| on the gap is largest at one of its ends:
 *   - at the left end r_s itself (F_cur is smallest there; right
 *     continuity makes the gap's infimum of F_cur equal F_cur(r_s)), a
 *     point already listed; for the first gap F_ref = F_cur = 0 there;
 *   - just before the right end r_{s+1}, where F_cur(r_{s+1}-) = (counts
 *     of all slots before r_{s+1}'s "equal" slot) / n; that value is taken
 *     on the gap (from its last current value on), or, if the gap holds no
 *     current value, equals the value at r_s.
 * So D = max over s of |G(r_s)| and |G(r_{s+1}-)|, and each of these is
 * |i / m - j / n| for counts i, j that ch_drift_ks() also divides at some
 * data point; conversely every data point's value lies between two of
 * these (F_cur is monotone, and division and subtraction are monotone in
 * floating point), so the maxima are the same double.
 *
 * The "equal" slots are what makes this work. With only half-open
 * intervals [r_{s-1}, r_s) (numpy's side='right' bins) F_cur(r_s) is not
 * known: reference {0} against current {0} and against {0.5} give the
 * same counts (0, 1) but D = 0 and D = 1.
 */
ch_err ch_drift_ks_counts(const double *ref, size_t n_ref, const double *counts, ch_drift_test *out,
                          ch_error *err)
{
    double total = 0.0;
    double m = (double)n_ref;
    double n;
    double dmax = 0.0;
    double run = 0.0;
    size_t size;
    size_t i;
    ch_drift_test t;
    ch_err rc;

    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    rc = check_sorted(ref, n_ref, "reference", 0, err);
    if (rc != CH_OK)
        return rc;
    if (counts == NULL)
        return ch_error_set(err, CH_EINVAL, "counts is NULL");
    for (size_t s = 0; s < 2 * n_ref + 1; s++) {
        double c = counts[s];
        if (!(c >= 0.0 && c <= 9007199254740992.0 && c == floor(c)))
            return ch_error_set(err, CH_EINVAL, "counts[%zu] = %g is not a whole number in 0..2^53",
                                s, c);
        total += c;
    }
    if (total == 0.0)
        return ch_error_set(err, CH_EINVAL, "counts are all 0 (no current values)");
    if (total > 9007199254740992.0)
        return ch_error_set(err, CH_EINVAL, "counts sum beyond 2^53");
    n = total;
    i = 0;
    while (i < n_ref) {
        size_t end = i;
        while (end + 1 < n_ref && ref[end + 1] == ref[i])
            end++;
        /* just below ref[i]: i reference values, 'run' + the gap's count */
        run += counts[2 * i];
        dmax = fmax(dmax, fabs((double)i / m - run / n));
        /* at ref[i]: every slot of the run of equal values */
        for (size_t s = 2 * i + 1; s <= 2 * end + 1; s++)
            run += counts[s];
        dmax = fmax(dmax, fabs((double)(end + 1) / m - run / n));
        i = end + 1;
    }
    t.stat = dmax;
    t.dof = 0;
    size = (size_t)n;
    rc = ks_pvalue(dmax, n_ref, size, &t.p, err);
    if (rc != CH_OK)
        return rc;
    *out = t;
    return CH_OK;
}

/* ---- Wasserstein ------------------------------------------------------------ */

ch_err ch_drift_wasserstein(const double *a, size_t n_a, const double *b, size_t n_b, double *out,
                            ch_error *err)
{
    double na = (double)n_a;
    double nb = (double)n_b;
    size_t i = 0;
    size_t j = 0;
    double x;
    ksum s = {0.0, 0.0};
    ch_err rc;

    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    rc = check_sorted(a, n_a, "a", 1, err);
    if (rc == CH_OK)
        rc = check_sorted(b, n_b, "b", 1, err);
    if (rc != CH_OK)
        return rc;
    /* Between consecutive distinct values x < next of the pooled sample
     * both ECDFs are constant: the integral is a sum of |F_a - F_b| times
     * the gap, each term as scipy forms it. */
    x = a[0] < b[0] ? a[0] : b[0];
    while (i < n_a && a[i] <= x)
        i++;
    while (j < n_b && b[j] <= x)
        j++;
    while (i < n_a || j < n_b) {
        double next = (j >= n_b || (i < n_a && a[i] <= b[j])) ? a[i] : b[j];
        ksum_add(&s, fabs((double)i / na - (double)j / nb) * (next - x));
        x = next;
        while (i < n_a && a[i] <= x)
            i++;
        while (j < n_b && b[j] <= x)
            j++;
    }
    *out = ksum_value(&s);
    return CH_OK;
}

/* ---- multiple testing ------------------------------------------------------- */

typedef struct ranked {
    double p;
    size_t i;
} ranked;

static int cmp_ranked(const void *x, const void *y)
{
    const ranked *a = x;
    const ranked *b = y;
    if (a->p != b->p)
        return a->p < b->p ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Validates 'p' and returns a new array of (p, index) in ascending order
 * of p, ties by index; the caller frees it. */
static ch_err rank_pvalues(const double *p, size_t k, const double *adj, ranked **out,
                           ch_error *err)
{
    ranked *r;
    if (k == 0)
        return ch_error_set(err, CH_EINVAL, "no p-values (k is 0)");
    if (p == NULL || adj == NULL)
        return ch_error_set(err, CH_EINVAL, "p and adj are required");
    for (size_t i = 0; i < k; i++)
        if (!(p[i] >= 0.0 && p[i] <= 1.0))
            return ch_error_set(err, CH_EINVAL, "p[%zu] = %g is not in [0, 1]", i, p[i]);
    r = ch_malloc_array(k, sizeof *r);
    if (r == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory ranking %zu p-values", k);
    for (size_t i = 0; i < k; i++) {
        r[i].p = p[i];
        r[i].i = i;
    }
    qsort(r, k, sizeof *r, cmp_ranked);
    *out = r;
    return CH_OK;
}

ch_err ch_drift_bh(const double *p, size_t k, double *adj, ch_error *err)
{
    ranked *r = NULL;
    double run = 1.0;
    ch_err rc = rank_pvalues(p, k, adj, &r, err);
    if (rc != CH_OK)
        return rc;
    for (size_t j = k; j-- > 0;) {
        double v = (double)k * r[j].p / (double)(j + 1);
        run = fmin(run, v);
        r[j].p = run;
    }
    for (size_t j = 0; j < k; j++)
        adj[r[j].i] = r[j].p;
    ch_free(r);
    return CH_OK;
}

ch_err ch_drift_holm(const double *p, size_t k, double *adj, ch_error *err)
{
    ranked *r = NULL;
    double run = 0.0;
    ch_err rc = rank_pvalues(p, k, adj, &r, err);
    if (rc != CH_OK)
        return rc;
    for (size_t j = 0; j < k; j++) {
        double v = fmin(1.0, (double)(k - j) * r[j].p);
        run = fmax(run, v);
        r[j].p = run;
    }
    for (size_t j = 0; j < k; j++)
        adj[r[j].i] = r[j].p;
    ch_free(r);
    return CH_OK;
}

/* ---- confidence-based performance estimation --------------------------------- */

/* Validates probabilities p[0..n): non-NaN, in [0, 1]. */
static ch_err check_probs(const double *p, size_t n, ch_error *err)
{
    if (n == 0)
        return ch_error_set(err, CH_EINVAL, "no rows (n is 0)");
    if (p == NULL)
        return ch_error_set(err, CH_EINVAL, "probabilities are NULL");
    for (size_t i = 0; i < n; i++)
        if (!(p[i] >= 0.0 && p[i] <= 1.0))
            return ch_error_set(err, CH_EINVAL, "p[%zu] = %g is not a probability in [0, 1]", i,
                                p[i]);
    return CH_OK;
}

/*
 * The expected AUC in O(n log n): sort the probabilities; for a run of c
 * equal values v preceded by values whose (1 - p) sum to L, the pairs with
 * i in the run contribute c v L (strictly greater than j) plus one half of
 * the c (c - 1) ordered pairs inside the run, v (1 - v) each. The
 * denominator over all ordered pairs i != j is sum(p) sum(1 - p) -
 * sum p (1 - p).
 */
ch_err ch_drift_cbpe(const double *p, size_t n, double threshold, ch_drift_perf *out, ch_error *err)
{
    ch_drift_perf r;
    double *s;
    double sp = 0.0;
    double sq = 0.0;
    double s2 = 0.0;
    double below = 0.0;
    double num = 0.0;
    double den;
    ch_err rc;

    if (out == NULL)
        return ch_error_set(err, CH_EINVAL, "out is NULL");
    rc = check_probs(p, n, err);
    if (rc != CH_OK)
        return rc;
    if (isnan(threshold))
        return ch_error_set(err, CH_EINVAL, "threshold is NaN");
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= threshold) {
            r.tp += p[i];
            r.fp += 1.0 - p[i];
        } else {
            r.fn += p[i];
            r.tn += 1.0 - p[i];
        }
        sp += p[i];
        sq += 1.0 - p[i];
        s2 += p[i] * (1.0 - p[i]);
    }
    den = sp * sq - s2;
    if (!(den > 0.0))
        return ch_error_set(err, CH_EDATA,
                            "the expected ROC AUC is undefined: no pair of rows can be a "
                            "positive and a negative (n = %zu)",
                            n);
    r.accuracy = (r.tp + r.tn) / (double)n;
    r.precision = r.tp + r.fp > 0.0 ? r.tp / (r.tp + r.fp) : 0.0;
    r.recall = r.tp + r.fn > 0.0 ? r.tp / (r.tp + r.fn) : 0.0;
    r.f1 = 2.0 * r.tp + r.fp + r.fn > 0.0 ? 2.0 * r.tp / (2.0 * r.tp + r.fp + r.fn) : 0.0;

    s = ch_malloc_array(n, sizeof *s);
    if (s == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory sorting %zu probabilities", n);
    memcpy(s, p, n * sizeof *s);
    rc = ch_drift_sort(s, n, err);
    if (rc != CH_OK) {
        ch_free(s);
        return rc;
    }
    for (size_t i = 0; i < n;) {
        size_t end = i;
        double v = s[i];
        double c;
        double run_q = 0.0;
        while (end < n && s[end] == v) {
            run_q += 1.0 - s[end];
            end++;
        }
        c = (double)(end - i);
        num += c * v * below + 0.5 * v * (1.0 - v) * c * (c - 1.0);
        below += run_q;
        i = end;
    }
    ch_free(s);
    r.roc_auc = fmin(fmax(num / den, 0.0), 1.0);
    *out = r;
    return CH_OK;
}

/* ---- bootstrap -------------------------------------------------------------- */

typedef struct row_order {
    double p;
    size_t i;
} row_order;

/* Score descending, then row index: the order metrics.c walks rows in. */
static int cmp_row_order(const void *x, const void *y)
{
    const row_order *a = x;
    const row_order *b = y;
    if (a->p != b->p)
        return a->p > b->p ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* The metric on rows (y, p) with weights w through metrics.h; '*defined'
 * is 0 when the metric is undefined on them. Other failures (CH_ENOMEM)
 * are returned. */
static ch_err eval_metric(ch_drift_metric metric, const double *y, const double *p, const double *w,
                          size_t m, double threshold, double *v, int *defined, ch_error *err)
{
    ch_err rc = CH_OK;
    ch_confusion c;
    *defined = 1;
    switch (metric) {
    case CH_DRIFT_ROC_AUC:
        rc = ch_metric_roc_auc(y, p, w, m, v, err);
        break;
    case CH_DRIFT_PR_AUC:
        rc = ch_metric_pr_auc(y, p, w, m, v, err);
        break;
    case CH_DRIFT_BRIER:
        rc = ch_metric_brier(y, p, w, m, v, err);
        break;
    case CH_DRIFT_LOG_LOSS:
        rc = ch_metric_log_loss(y, p, w, m, v, err);
        break;
    case CH_DRIFT_F1:
        rc = ch_metric_confusion(y, p, w, m, threshold, &c, err);
        if (rc == CH_OK) {
            if (2.0 * c.tp + c.fp + c.fn > 0.0)
                *v = c.f1;
            else
                *defined = 0;
        }
        break;
    }
    if (rc == CH_EDATA) {
        *defined = 0;
        ch_error_clear(err);
        return CH_OK;
    }
    return rc;
}

/*
 * ROC AUC or PR AUC from per-group draw counts: 'gpos'/'gneg' hold the
 * positive and negative rows drawn for each of 'n_groups' distinct scores,
 * highest score first. The walk is metrics.c's (same groups, same order,
 * same arithmetic), and the counts are whole numbers, so the value is the
 * one ch_metric_roc_auc() / ch_metric_pr_auc() give on the resample.
 */
static int rank_metric(ch_drift_metric metric, const double *gpos, const double *gneg,
                       size_t n_groups, double *v)
{
    double pos = 0.0;
    double neg = 0.0;
    for (size_t g = 0; g < n_groups; g++) {
        pos += gpos[g];
        neg += gneg[g];
    }
    if (metric == CH_DRIFT_ROC_AUC) {
        double above = 0.0;
        double pairs = 0.0;
        if (pos == 0.0 || neg == 0.0)
            return 0;
        for (size_t g = 0; g < n_groups; g++) {
            pairs += gneg[g] * (above + 0.5 * gpos[g]);
            above += gpos[g];
        }
        *v = pairs / (pos * neg);
    } else {
        double tp = 0.0;
        double fp = 0.0;
        double ap = 0.0;
        if (pos == 0.0)
            return 0;
        for (size_t g = 0; g < n_groups; g++) {
            tp += gpos[g];
            fp += gneg[g];
            if (gpos[g] > 0.0)
                ap += (gpos[g] / pos) * (tp / (tp + fp));
        }
        *v = ap;
    }
    return 1;
}

/* numpy's default ("linear") percentile of sorted v[0..n) at q in [0, 1]:
 * linear interpolation at position q (n - 1), from the nearer order
 * statistic (numpy's lerp), so positions on an order statistic are exact. */
static double percentile(const double *v, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    double fl = floor(pos);
    size_t i = (size_t)fl;
    double t = pos - fl;
    double diff;
    if (i + 1 >= n)
        return v[n - 1];
    diff = v[i + 1] - v[i];
    return t >= 0.5 ? v[i + 1] - diff * (1.0 - t) : v[i] + diff * t;
}

/*
 * Each replicate draws n row indices. For the rank metrics the rows are
 * sorted by score once and each draw adds one to its row's score group
 * (positive or negative), so a replicate costs O(n + groups) with no sort;
 * the value is metrics.h's on that resample (rank_metric). For the others
 * each row's draw count becomes its weight and the rows drawn at least
 * once go to the metrics.h function, which is the resample with repeated
 * rows up to the order of summation. All buffers are allocated once.
 */
ch_err ch_drift_bootstrap(ch_drift_metric metric, const double *y, const double *p, size_t n,
                          double threshold, size_t n_boot, uint64_t seed, double level, double *lo,
                          double *hi, size_t *n_skipped, ch_error *err)
{
    int rank = metric == CH_DRIFT_ROC_AUC || metric == CH_DRIFT_PR_AUC;
    row_order *order = NULL;
    size_t *group = NULL; /* rank metrics: each row's score group */
    double *gpos = NULL;
    double *gneg = NULL;
    uint32_t *drawn = NULL; /* other metrics: each row's draw count */
    double *ys = NULL;
    double *ps = NULL;
    double *ws = NULL;
    double *vals = NULL;
    size_t n_groups = 0;
    size_t n_vals = 0;
    ch_rng rng;
    ch_err rc;

    if (lo == NULL || hi == NULL || n_skipped == NULL)
        return ch_error_set(err, CH_EINVAL, "lo, hi and n_skipped are required");
    if ((int)metric < CH_DRIFT_ROC_AUC || (int)metric > CH_DRIFT_F1)
        return ch_error_set(err, CH_EINVAL, "unknown metric %d", (int)metric);
    if (n_boot == 0)
        return ch_error_set(err, CH_EINVAL, "n_boot is 0");
    if (!(level > 0.0 && level < 1.0))
        return ch_error_set(err, CH_EINVAL, "level %g is outside (0, 1)", level);
    if (metric == CH_DRIFT_F1 && isnan(threshold))
        return ch_error_set(err, CH_EINVAL, "threshold is NaN");
    rc = check_probs(p, n, err);
    if (rc != CH_OK)
        return rc;
    if (y == NULL)
        return ch_error_set(err, CH_EINVAL, "labels are NULL");
    for (size_t i = 0; i < n; i++)
        if (y[i] != 0.0 && y[i] != 1.0)
            return ch_error_set(err, CH_EINVAL, "y[%zu] = %g is not 0 or 1", i, y[i]);
    if (n > UINT32_MAX)
        return ch_error_set(err, CH_EINVAL, "n %zu is above 2^32 - 1 rows", n);

    vals = ch_malloc_array(n_boot, sizeof *vals);
    if (rank) {
        order = ch_malloc_array(n, sizeof *order);
        group = ch_malloc_array(n, sizeof *group);
        gpos = ch_malloc_array(n, sizeof *gpos);
        gneg = ch_malloc_array(n, sizeof *gneg);
        if (order == NULL || group == NULL || gpos == NULL || gneg == NULL)
            goto nomem;
        for (size_t i = 0; i < n; i++) {
            order[i].p = p[i];
            order[i].i = i;
        }
        qsort(order, n, sizeof *order, cmp_row_order);
        for (size_t k = 0; k < n; k++) {
            if (k == 0 || order[k].p != order[k - 1].p)
                n_groups++;
            group[order[k].i] = n_groups - 1;
        }
    } else {
        drawn = ch_malloc_array(n, sizeof *drawn);
        ys = ch_malloc_array(n, sizeof *ys);
        ps = ch_malloc_array(n, sizeof *ps);
        ws = ch_malloc_array(n, sizeof *ws);
        if (drawn == NULL || ys == NULL || ps == NULL || ws == NULL)
            goto nomem;
    }
    if (vals == NULL)
        goto nomem;

    ch_rng_seed(&rng, seed);
    for (size_t b = 0; b < n_boot; b++) {
        double v = 0.0;
        int defined;
        if (rank) {
            memset(gpos, 0, n_groups * sizeof *gpos);
            memset(gneg, 0, n_groups * sizeof *gneg);
            for (size_t k = 0; k < n; k++) {
                size_t i = (size_t)ch_rng_below(&rng, n);
                if (y[i] == 1.0)
                    gpos[group[i]] += 1.0;
                else
                    gneg[group[i]] += 1.0;
            }
            defined = rank_metric(metric, gpos, gneg, n_groups, &v);
        } else {
            size_t m = 0;
            memset(drawn, 0, n * sizeof *drawn);
            for (size_t k = 0; k < n; k++)
                drawn[ch_rng_below(&rng, n)]++;
            for (size_t i = 0; i < n; i++) {
                if (drawn[i] == 0)
                    continue;
                ys[m] = y[i];
                ps[m] = p[i];
                ws[m] = (double)drawn[i];
                m++;
            }
            rc = eval_metric(metric, ys, ps, ws, m, threshold, &v, &defined, err);
            if (rc != CH_OK)
                goto done;
        }
        if (defined)
            vals[n_vals++] = v;
    }
    if (n_vals == 0) {
        rc = ch_error_set(err, CH_EDATA, "the metric is undefined on all %zu resamples", n_boot);
        goto done;
    }
    rc = ch_drift_sort(vals, n_vals, err);
    if (rc != CH_OK)
        goto done;
    *lo = percentile(vals, n_vals, 0.5 * (1.0 - level));
    *hi = percentile(vals, n_vals, 0.5 * (1.0 + level));
    *n_skipped = n_boot - n_vals;
    goto done;

nomem:
    rc = ch_error_set(err, CH_ENOMEM, "out of memory for a bootstrap of %zu rows", n);
done:
    ch_free(ws);
    ch_free(ps);
    ch_free(ys);
    ch_free(drawn);
    ch_free(gneg);
    ch_free(gpos);
    ch_free(group);
    ch_free(order);
    ch_free(vals);
    return rc;
}
