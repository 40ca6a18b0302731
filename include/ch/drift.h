/*
 * drift.h -- statistics for monitoring: how far current data has moved
 * from a reference, and how well a model is likely doing without labels.
 *
 * Pure functions on arrays of doubles: no files, no frames, no I/O. Every
 * function here is stateless and thread-safe; input arrays are borrowed
 * for the call, output arrays belong to the caller and are written only on
 * success (an in-place sort leaves its input unchanged on failure). The
 * module has no handle because it has nothing to keep between calls.
 * docs/monitoring.md gives every formula, convention and tolerance.
 *
 * The expected workload is a monitoring window of about 1M rows x 20
 * columns against a stored reference: sort or bin each column once
 * (ch_drift_sort, ch_drift_bin_counts, ch_drift_ks_bin_counts) and compute
 * the measures from sorted samples or counts.
 *
 * Errors common to all functions: CH_EINVAL for a bad argument, with a
 * message naming it (a NULL array, n = 0, a NaN or a negative count at an
 * index, an unsorted sample, a level outside (0, 1), ...); CH_ENOMEM where
 * a function allocates scratch (said so below). Functions that do not say
 * they allocate never do.
 */
#ifndef CH_DRIFT_H
#define CH_DRIFT_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default floor for bin proportions in ch_drift_psi(). */
#define CH_DRIFT_PSI_EPS 1e-4

/* Largest 'n_bins' that ch_drift_edges() accepts. */
#define CH_DRIFT_BINS_MAX 65536

/* Result of a two-sample test. */
typedef struct ch_drift_test {
    double stat; /* the statistic: D for Kolmogorov-Smirnov, X^2 for chi-square */
    double p;    /* p-value in [0, 1]: two-sided for KS, upper tail for chi-square */
    size_t dof;  /* chi-square degrees of freedom; 0 for Kolmogorov-Smirnov */
} ch_drift_test;

/* ---- sorting and binning ------------------------------------------------- */

/* Sorts 'v' (n values, caller-owned, sorted in place) ascending. An LSD
 * radix sort on the bit patterns (11-bit digits, digits shared by every
 * value skipped); insertion sort for n <= 32. -0.0 and +0.0 compare equal
 * and may come out in either order; infinities are allowed.
 * Allocates 8n bytes of keys and 96 KB of counters for n > 32, freed
 * before returning. About 15 ms for 1M values (qsort: 115 ms). Errors:
 * CH_EINVAL (NULL 'v' with n > 0, a NaN: 'v' is then unchanged),
 * CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_sort(double *v, size_t n, ch_error *err);

/* Quantile bin edges from a reference sample 'sorted' (n values,
 * ascending, no NaN). Candidate k (k = 1 .. n_bins - 1) is the order
 * statistic sorted[floor(k n / n_bins)]; candidates equal to the minimum
 * or to the previous edge are dropped, so '*n_edges' <= n_bins - 1 and
 * edges[] is strictly increasing. A column with few distinct values gets
 * fewer bins; a constant column gets none (one bin). 'edges' (caller-owned)
 * needs room for n_bins - 1 values. Errors: CH_EINVAL (n = 0, n_bins
 * outside 1 .. CH_DRIFT_BINS_MAX, NaN or unsorted input). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_edges(const double *sorted, size_t n, size_t n_bins,
                                          double *edges, size_t *n_edges, ch_error *err);

/* Counts 'v' (n values, any order) into n_edges + 1 bins: value x goes to
 * bin j = the number of edges <= x, as numpy.searchsorted(edges, x,
 * side='right'). So bin 0 is x < edges[0], bin j is edges[j-1] <= x <
 * edges[j], the last bin is x >= edges[n_edges - 1]: a value equal to an
 * edge falls in the bin above it. 'edges' must be non-decreasing (equal
 * edges leave empty bins between them) and NaN-free; n_edges may be 0 and
 * n may be 0. 'counts' (caller-owned, n_edges + 1 entries) is overwritten.
 * Missing values are the caller's: count them as an extra bin. Errors:
 * CH_EINVAL (NaN in 'v' or 'edges', edges decreasing). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_bin_counts(const double *edges, size_t n_edges, const double *v,
                                               size_t n, double *counts, ch_error *err);

/* ---- distances between count vectors ------------------------------------- */

/* Population stability index between reference counts 'ref' and current
 * counts 'cur' over the same k bins: with proportions r_i = ref_i / sum(ref)
 * and c_i = cur_i / sum(cur), each floored at 'eps' (not renormalized),
 * PSI = sum_i (c_i - r_i) ln(c_i / r_i). Pass CH_DRIFT_PSI_EPS unless there
 * is a reason not to. Counts may be fractional (weights). Errors:
 * CH_EINVAL (k = 0, a negative, NaN or infinite count, a side summing to
 * 0, 'eps' outside (0, 1)). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_psi(const double *ref, const double *cur, size_t k, double eps,
                                        double *out, ch_error *err);

/* Jensen-Shannon distance, base 2, in [0, 1], between two count or
 * probability vectors of k entries (each normalized to sum 1): the square
 * root of (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2, logarithms
 * base 2. As scipy.spatial.distance.jensenshannon(p, q, base=2). Errors:
 * CH_EINVAL (k = 0, a negative, NaN or infinite entry, a side summing
 * to 0). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_js(const double *p, const double *q, size_t k, double *out,
                                       ch_error *err);

/* Chi-square test of homogeneity of the 2 x k table (reference counts,
 * current counts), without continuity correction, as
 * scipy.stats.chi2_contingency(table, correction=False) on the table with
 * the columns where both counts are 0 dropped. '*out' gets X^2 = sum over
 * cells of (observed - expected)^2 / expected with expected = row total x
 * column total / grand total, dof = (columns kept) - 1 and p =
 * ch_drift_chi2_sf(X^2, dof); with one column kept, X^2 = 0, dof = 0 and
 * p = 1. Counts may be fractional. Errors: CH_EINVAL (k = 0, a negative,
 * NaN or infinite count, a side summing to 0). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_chi2(const double *ref, const double *cur, size_t k,
                                         ch_drift_test *out, ch_error *err);

/* Survival function of the chi-square distribution with 'dof' degrees of
 * freedom (any real dof > 0): the regularized upper incomplete gamma
 * function Q(dof / 2, x / 2), accurate to about 1e-12 relative down to
 * the smallest normal double (docs/monitoring.md); results below it
 * (2.2e-308) are returned as 0. x = +inf gives 0.
 * Errors: CH_EINVAL (x negative or NaN, dof not positive and finite).
 * Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_chi2_sf(double x, double dof, double *out, ch_error *err);

/* ---- two-sample tests and distances on samples ---------------------------- */

/* Two-sample Kolmogorov-Smirnov test of sorted samples 'a' (n_a values)
 * and 'b' (n_b values): D = max over x of |F_a(x) - F_b(x)| with the
 * right-continuous empirical CDFs, and the two-sided p-value of
 * ch_drift_ks_sf(D, n_a, n_b). As scipy.stats.ks_2samp(a, b,
 * method='asymp'): D is the same double, p agrees to about 1e-11
 * relative. O(n_a + n_b) plus the p-value's cost. Allocates as
 * ch_drift_ks_sf() does. Errors: CH_EINVAL (an empty sample, NaN or
 * unsorted values), CH_EDATA (n_a = n_b = 1: the p-value is undefined),
 * CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_ks(const double *a, size_t n_a, const double *b, size_t n_b,
                                       ch_drift_test *out, ch_error *err);

/* The p-value scipy's ks_2samp(method='asymp') gives for statistic 'd':
 * the survival function at d of the exact distribution of the one-sample
 * two-sided statistic D_N (scipy.stats.kstwo) with N = m n / (m + n)
 * rounded half to even, m and n the sample sizes; computed by Simard and
 * L'Ecuyer's (2011) choice of methods (Durbin's matrix, Pelz-Good,
 * Smirnov's one-sided sum; docs/monitoring.md). p-values below the
 * smallest normal double (2.2e-308) are returned as 0. The cost grows
 * with N where p is small (about N terms of a sum): well under 1 ms for
 * N = 4000, about 20 ms for N = 500000. Where Durbin's matrix is used
 * (moderate D, N <= 100000) it allocates up to 440 KB of scratch, freed
 * before returning. Errors: CH_EINVAL ('d' outside [0, 1] or NaN, a size
 * of 0), CH_EDATA (n_a = n_b = 1), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_ks_sf(double d, size_t n_a, size_t n_b, double *out,
                                          ch_error *err);

/* Counts of current values 'v' (n, any order) against a sorted reference
 * sample 'ref' (n_ref values, duplicates allowed), laid out for
 * ch_drift_ks_counts(): 2 n_ref + 1 slots (caller-owned, overwritten).
 * With i = the number of reference values < x, x goes to slot 2i + 1 when
 * ref[i] == x (x equals a reference value; the first of a run of equal
 * values) and to slot 2i otherwise (x lies strictly between ref[i-1] and
 * ref[i], with ref[-1] = -inf and ref[n_ref] = +inf). Values equal to a
 * reference value need their own slot for D to be exact: see
 * ch_drift_ks_counts(). Errors: CH_EINVAL (n_ref = 0, NaN in either
 * array, 'ref' unsorted). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_ks_bin_counts(const double *ref, size_t n_ref, const double *v,
                                                  size_t n, double *counts, ch_error *err);

/* Two-sample Kolmogorov-Smirnov test of the sorted reference 'ref' (n_ref
 * values) against a current sample known only through 'counts' (2 n_ref +
 * 1 whole numbers laid out as ch_drift_ks_bin_counts() writes them; counts
 * in any slot belonging to a run of equal reference values count as equal
 * to that value). D is exactly (bit for bit) what ch_drift_ks() gives on
 * the full current sample, and p is ch_drift_ks_sf(D, n_ref, sum(counts)).
 * O(n_ref) plus the p-value's cost; allocates as ch_drift_ks_sf() does.
 * Errors: CH_EINVAL (n_ref = 0, NaN or unsorted 'ref', a count negative,
 * fractional or above 2^53, all counts 0), CH_EDATA (both samples of size
 * 1), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_ks_counts(const double *ref, size_t n_ref, const double *counts,
                                              ch_drift_test *out, ch_error *err);

/* Wasserstein-1 (earth mover's) distance between the empirical
 * distributions of sorted samples 'a' (n_a values) and 'b' (n_b values):
 * the integral of |F_a(x) - F_b(x)| dx. As
 * scipy.stats.wasserstein_distance(a, b). Serves a sorted reference
 * against sorted current data as well. O(n_a + n_b), compensated
 * summation. Errors: CH_EINVAL (an empty sample, a NaN, infinite or
 * unsorted value). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_wasserstein(const double *a, size_t n_a, const double *b,
                                                size_t n_b, double *out, ch_error *err);

/* ---- many tests at once ---------------------------------------------------- */

/* Benjamini-Hochberg adjusted p-values of k p-values 'p' (any order) into
 * 'adj' (caller-owned, k entries, may be 'p' itself): with p_(1) <= ... <=
 * p_(k), adj_(i) = min over j >= i of min(1, k p_(j) / j); monotone in p
 * and at most 1. Rejecting adj <= q controls the false discovery rate at
 * q. Allocates 16k bytes. Errors: CH_EINVAL (k = 0, a p-value NaN or
 * outside [0, 1]), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_bh(const double *p, size_t k, double *adj, ch_error *err);

/* Holm-Bonferroni adjusted p-values: adj_(i) = max over j <= i of
 * min(1, (k - j + 1) p_(j)), in the order of 'p'. Rejecting adj <= alpha
 * controls the family-wise error rate at alpha. Same arguments, errors and
 * allocation as ch_drift_bh(). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_holm(const double *p, size_t k, double *adj, ch_error *err);

/* ---- performance without labels -------------------------------------------- */

/* Expected performance from calibrated probabilities alone
 * (confidence-based performance estimation): each label is taken to be
 * Bernoulli(p_i), independently. */
typedef struct ch_drift_perf {
    double tp, fp, fn, tn; /* expected counts at the threshold (p >= t is positive) */
    double accuracy;       /* (tp + tn) / n: the expected accuracy exactly */
    double precision;      /* tp / (tp + fp); 0 when nothing is predicted positive */
    double recall;         /* tp / (tp + fn); 0 when sum(p) = 0 */
    double f1;             /* 2 tp / (2 tp + fp + fn); 0 when that is 0 / 0 */
    double roc_auc;        /* expected Mann-Whitney statistic, ties one half */
} ch_drift_perf;

/* Confidence-based performance estimation on 'p' (n probabilities in
 * [0, 1], borrowed) at 'threshold': expected TP = sum p [p >= t], FP = sum
 * (1 - p) [p >= t], FN = sum p [p < t], TN = sum (1 - p) [p < t].
 * Precision, recall and F1 are ratios of these expectations, not
 * expectations of ratios (which differ by O(1/n)). The expected ROC AUC is
 * sum_{i != j} p_i (1 - p_j) ([p_i > p_j] + [p_i = p_j] / 2) / sum_{i != j}
 * p_i (1 - p_j), in O(n log n). Allocates a sorted copy of 'p' (and
 * ch_drift_sort()'s scratch). Errors: CH_EINVAL (n = 0, a probability NaN
 * or outside [0, 1], a NaN threshold), CH_EDATA (the AUC's denominator is
 * 0: n = 1, or every p is 0, or every p is 1), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_cbpe(const double *p, size_t n, double threshold,
                                         ch_drift_perf *out, ch_error *err);

/* Metrics that ch_drift_bootstrap() can bracket. */
typedef enum ch_drift_metric {
    CH_DRIFT_ROC_AUC = 0,  /* ch_metric_roc_auc */
    CH_DRIFT_PR_AUC = 1,   /* ch_metric_pr_auc */
    CH_DRIFT_BRIER = 2,    /* ch_metric_brier */
    CH_DRIFT_LOG_LOSS = 3, /* ch_metric_log_loss */
    CH_DRIFT_F1 = 4        /* ch_metric_confusion(...).f1 at 'threshold' */
} ch_drift_metric;

/* Percentile bootstrap confidence interval at 'level' (in (0, 1), e.g.
 * 0.95) for 'metric' of labels 'y' (0/1) and probabilities 'p' (n rows,
 * borrowed). Replicate b = 0 .. n_boot-1 draws n rows with replacement
 * using ch_rng_below(n) from one ch_rng seeded with 'seed' (n draws per
 * replicate, in order); its value is the metrics.h function on that
 * resample. (Brier, log loss and F1 are evaluated by metrics.h with the
 * draw counts as weights; ROC and PR AUC from the draw counts per distinct
 * score, walked exactly as metrics.h does, which gives the same double
 * without sorting each resample.) Replicates where the metric is undefined
 * (ROC AUC with one class, PR AUC without positives, F1 when 2 tp + fp +
 * fn = 0) are skipped and counted in '*n_skipped'. '*lo' and '*hi' are the
 * (1 - level) / 2 and (1 + level) / 2 quantiles of the remaining values,
 * interpolated linearly at position q (count - 1) between order
 * statistics (numpy's default percentile). Same seed, same interval.
 * 'threshold' is used by CH_DRIFT_F1 only. Allocates about 40n + 8 n_boot
 * bytes; n = 50000 with 200 replicates takes about 0.1 s. Errors:
 * CH_EINVAL (unknown metric, n = 0, n_boot = 0, a label not 0/1, a
 * probability NaN or outside [0, 1], a NaN threshold for CH_DRIFT_F1,
 * 'level' outside (0, 1)), CH_EDATA (every replicate undefined),
 * CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_drift_bootstrap(ch_drift_metric metric, const double *y,
                                              const double *p, size_t n, double threshold,
                                              size_t n_boot, uint64_t seed, double level,
                                              double *lo, double *hi, size_t *n_skipped,
                                              ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_DRIFT_H */
