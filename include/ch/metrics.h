/*
 * metrics.h -- evaluation of binary classifiers, thresholds, calibration.
 *
 * Every function takes labels 'y' (0/1), scores 'p' (probabilities in
 * [0, 1] unless said otherwise) and optional weights 'w' (NULL for 1),
 * 'n' rows; all three are borrowed for the call. Functions that only
 * compare scores (ROC AUC, PR AUC, confusion, deciles, the F1 threshold)
 * accept any non-NaN score, so they work on margins too. Functions that
 * order rows by score sort a scratch copy: O(n log n) time, O(n) memory
 * freed before they return; the others do not allocate. Nothing keeps
 * state: every function here is thread-safe.
 *
 * Ties in scores are handled exactly: ROC AUC counts a tied
 * positive/negative pair as one half (the Mann-Whitney statistic with
 * midranks), and PR curves step over tied scores together.
 *
 * Errors: CH_EDATA when a metric is undefined (no rows, for every metric;
 * ROC AUC with one class absent; PR AUC, deciles and the F1 threshold
 * without positives), CH_EINVAL for labels not 0/1, scores that are NaN,
 * probabilities outside [0, 1], weights that are not positive and finite
 * (the message names the row), CH_ENOMEM. Out-parameters are written only
 * on success.
 */
#ifndef CH_METRICS_H
#define CH_METRICS_H

#include <stddef.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Area under the ROC curve: the weighted share of positive/negative pairs
 * ranked correctly, ties counting one half. 'p' may be any scores. */
CH_API CH_NODISCARD ch_err ch_metric_roc_auc(const double *y, const double *p, const double *w,
                                             size_t n, double *out, ch_error *err);

/* Area under the precision-recall curve as average precision:
 * sum over distinct thresholds of (recall step) x precision. 'p' may be
 * any scores. CH_EDATA without positives. */
CH_API CH_NODISCARD ch_err ch_metric_pr_auc(const double *y, const double *p, const double *w,
                                            size_t n, double *out, ch_error *err);

/* Weighted mean log loss, probabilities clipped to [1e-15, 1 - 1e-15]. */
CH_API CH_NODISCARD ch_err ch_metric_log_loss(const double *y, const double *p, const double *w,
                                              size_t n, double *out, ch_error *err);

/* Weighted mean squared error of the probability (Brier score). */
CH_API CH_NODISCARD ch_err ch_metric_brier(const double *y, const double *p, const double *w,
                                           size_t n, double *out, ch_error *err);

/* Counts and rates at a threshold: predicted positive when p >= t. 'p'
 * may be any scores; a NaN 'threshold' is CH_EINVAL. */
typedef struct ch_confusion {
    double tp, fp, tn, fn;                  /* weighted counts */
    double accuracy, precision, recall, f1; /* precision/recall/F1 are 0 when undefined */
} ch_confusion;

CH_API CH_NODISCARD ch_err ch_metric_confusion(const double *y, const double *p, const double *w,
                                               size_t n, double threshold, ch_confusion *out,
                                               ch_error *err);

#define CH_CALIB_BINS_MAX 100

/* Reliability diagram with 'n_bins' equal-width bins over [0, 1] and the
 * expected calibration error: sum over bins of (bin weight / total) x
 * |mean predicted - observed rate|. A probability goes to bin
 * floor(p * n_bins), and p == 1 to the last bin. 'n_bins' outside
 * 1..CH_CALIB_BINS_MAX is CH_EINVAL; entries past 'n_bins' are 0. */
typedef struct ch_reliability {
    size_t n_bins;
    double count[CH_CALIB_BINS_MAX];     /* weight in the bin */
    double mean_pred[CH_CALIB_BINS_MAX]; /* mean probability in the bin (0 if empty) */
    double rate[CH_CALIB_BINS_MAX];      /* observed positive rate (0 if empty) */
    double ece;
} ch_reliability;

CH_API CH_NODISCARD ch_err ch_metric_reliability(const double *y, const double *p, const double *w,
                                                 size_t n, size_t n_bins, ch_reliability *out,
                                                 ch_error *err);

/* Lift and cumulative gains by decile of score, highest scores first.
 * Rows are ordered by score, ties by row index, and cut at rank
 * boundaries: decile k holds ranks [floor(k n / 10), floor((k + 1) n / 10)),
 * so deciles differ by at most one row and a run of tied scores may be
 * split across a boundary by row index. With n < 10 some deciles are
 * empty (rate and lift 0, gain as the decile before). 'p' may be any
 * scores. CH_EDATA without positives. */
typedef struct ch_deciles {
    double rate[10]; /* positive rate within the decile */
    double lift[10]; /* rate / overall rate */
    double gain[10]; /* cumulative share of all positives captured */
} ch_deciles;

CH_API CH_NODISCARD ch_err ch_metric_deciles(const double *y, const double *p, const double *w,
                                             size_t n, ch_deciles *out, ch_error *err);

/* The threshold that maximizes F1 (ties: the lowest such threshold); it is
 * one of the scores, so p >= t classifies exactly as evaluated. '*f1' gets
 * that F1. 'p' may be any scores. CH_EDATA without positives. */
CH_API CH_NODISCARD ch_err ch_threshold_f1(const double *y, const double *p, const double *w,
                                           size_t n, double *threshold, double *f1, ch_error *err);

/* Retention economics for the value-based threshold. */
typedef struct ch_value_opts {
    double horizon_months; /* months of revenue a retained customer is worth */
    double offer_cost;     /* cost of one retention offer */
    double success_rate;   /* share of would-be churners an offer retains */
} ch_value_opts;

/* The threshold that maximizes expected retained value when every
 * customer with p >= t gets an offer: sum over targeted rows of
 * y * success_rate * revenue_i * horizon - offer_cost, where 'revenue' is
 * each row's monthly revenue (required, finite). Candidates are the
 * distinct probabilities in 'p'; of equal maxima the highest threshold
 * (fewest offers) wins. '*value' gets that total at the threshold; when no
 * threshold earns more than 0, '*value' is 0 and '*threshold' is
 * nextafter(1.0, 2.0), which targets no one. CH_EINVAL also for a NULL
 * 'o', negative or non-finite horizon or cost, success_rate outside
 * [0, 1]. */
CH_API CH_NODISCARD ch_err ch_threshold_value(const double *y, const double *p,
                                              const double *revenue, size_t n,
                                              const ch_value_opts *o, double *threshold,
                                              double *value, ch_error *err);

/* ---- calibration --------------------------------------------------------- */

typedef enum ch_calib_method {
    CH_CALIB_NONE = 0,    /* probability = sigmoid(margin) */
    CH_CALIB_PLATT = 1,   /* probability = sigmoid(a * margin + b) */
    CH_CALIB_ISOTONIC = 2 /* monotone piecewise-linear function of the margin (PAV) */
} ch_calib_method;

typedef struct ch_calibrator ch_calibrator; /* immutable after fit */

/* Fits 'method' on margins 'm' with labels 'y' (out-of-fold predictions)
 * and optional weights 'w'. Platt uses Newton's method on the log loss
 * with Platt's smoothed targets; isotonic uses pool-adjacent-violators on
 * the sorted margins (equal margins pooled first) and interpolates
 * linearly between block centres (weighted mean margins), flat beyond
 * the first and last. CH_CALIB_NONE fits nothing and accepts any 'n',
 * including 0. On success the caller frees '*out' with
 * ch_calibrator_free(). Errors: CH_EDATA (one class only or no rows, for
 * Platt and isotonic), CH_EINVAL (unknown method, labels not 0/1,
 * non-finite margins, bad weights), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_calibrator_fit(ch_calib_method method, const double *y,
                                             const double *m, const double *w, size_t n,
                                             ch_calibrator **out, ch_error *err);

/* Probability for a margin; monotone non-decreasing in 'margin'. A NULL
 * 'c' acts as CH_CALIB_NONE; a NaN margin gives NaN. Thread-safe;
 * allocation-free. */
CH_API double ch_calibrator_apply(const ch_calibrator *c, double margin);

/* The method of 'c' (CH_CALIB_NONE for NULL). */
CH_API ch_calib_method ch_calibrator_method(const ch_calibrator *c);
/* "none", "platt", "isotonic"; "unknown" for other values. Static text. */
CH_API const char *ch_calib_method_name(ch_calib_method m);
/* Parses one of those exact names: 0 and '*out' set, or -1. */
CH_API int ch_calib_method_parse(const char *name, ch_calib_method *out);

/* JSON round trip: {"method": "none"}, {"method": "platt", "a": A, "b": B}
 * or {"method": "isotonic", "x": [...], "y": [...]}, doubles in round-trip
 * digits so a loaded calibrator applies bit-identically. to_json appends
 * to 'b' (a NULL 'c' writes "none") and returns the buffer's status.
 * from_json reads 'node' (borrowed; NULL means absent) strictly: anything
 * but an object, an unknown method or member, a missing or non-finite
 * number, arrays of different or zero length, x not strictly increasing,
 * y decreasing or outside [0, 1] is CH_EFORMAT; also CH_ENOMEM. The
 * caller frees '*out' with ch_calibrator_free(). */
CH_API ch_err ch_calibrator_to_json(const ch_calibrator *c, ch_buf *b);
CH_API CH_NODISCARD ch_err ch_calibrator_from_json(const ch_json *node, ch_calibrator **out,
                                                   ch_error *err);

/* NULL is a no-op. */
CH_API void ch_calibrator_free(ch_calibrator *c);

#ifdef __cplusplus
}
#endif
#endif /* CH_METRICS_H */
