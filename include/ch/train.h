/*
 * train.h -- the training protocol: from a validated frame to a bundle.
 *
 * 1. A seeded, stratified hold-out split sets the test rows aside; they
 *    are read once, at the end, to evaluate the chosen model.
 * 2. Stratified k-fold cross-validation on the training rows evaluates
 *    every family and every point of its search grid. In each fold the
 *    feature pipeline is fitted on that fold's training rows only, class
 *    weights come from those rows, and families that stop early do so on
 *    a stratified slice of those rows, never on the fold being scored.
 * 3. Each family's best grid point is chosen by mean CV ROC AUC (or PR
 *    AUC, 'select_by'; ties by F1 of its out-of-fold predictions); the
 *    best family wins.
 * 4. The winner's out-of-fold margins fit the calibrator and set the
 *    thresholds (F1-optimal, and value-based from the retention
 *    economics).
 * 5. The winner is refitted on all training rows (at the mean early-stop
 *    size of its folds) and evaluated once on the test rows.
 * Everything is deterministic for a given seed, whatever the thread
 * count: each fit is an independent job with its own seed.
 */
#ifndef CH_TRAIN_H
#define CH_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/config.h"
#include "ch/err.h"
#include "ch/features.h"
#include "ch/frame.h"
#include "ch/json.h"
#include "ch/metrics.h"
#include "ch/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*ch_train_progress_fn)(void *ctx, const char *stage, size_t done, size_t total);

typedef struct ch_train_opts {
    const char *families[8]; /* family names, in report order */
    size_t n_families;
    const ch_json *search;         /* {"family": {"param": [values...]}}; absent: defaults */
    unsigned folds;                /* k of k-fold (default 5) */
    double test_fraction;          /* held-out share (default 0.2) */
    uint64_t seed;                 /* split, folds and every fit (default 42) */
    int threads;                   /* parallel fits (default 2) */
    double early_stop_fraction;    /* share of a fold's training rows used to stop early (0.15) */
    int balanced;                  /* 1: class weights n / (2 n_class) (default 1) */
    ch_calib_method calibration;   /* default CH_CALIB_PLATT */
    const char *threshold_rule;    /* "f1" (default) or "value": the served threshold */
    const char *select_by;         /* "roc_auc" (default) or "pr_auc": the mean CV score that
                                      picks grid points and the winner (ties: out-of-fold F1) */
    const char *revenue_column;    /* monthly revenue, for the value threshold */
    ch_value_opts value;           /* retention economics */
    ch_train_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    const volatile int *cancel; /* NULL: never; otherwise training stops (CH_ECANCELLED) soon
                                   after *cancel becomes non-zero: see ch_train_run() */
} ch_train_opts;

CH_API void ch_train_opts_default(ch_train_opts *o);

/* Fills 'o' from the train.*, split.* and value.* settings of 'cfg'
 * (progress and cancel left unset); 'fams' ('cap' bytes) holds the family
 * names 'o' points into. Errors: CH_EINVAL naming a bad setting. */
CH_API CH_NODISCARD ch_err ch_train_opts_from_config(const ch_config *cfg, ch_train_opts *o,
                                                     char *fams, size_t cap, ch_error *err);

typedef struct ch_train_result ch_train_result;

/* Runs the protocol on 'frame' (ingested with 'schema') using the
 * pipeline declared in 'spec'. 'lineage_json' (an object) is stored in
 * the bundle with the training times added. 'progress' is called from
 * the training threads, one call at a time.
 *
 * Cancellation: when o->cancel is set, *o->cancel is read before
 * training starts, before each fold's pipeline fit, before every
 * cross-validation fit is started (on each thread) and before the final
 * refit; once it reads non-zero no new fit starts, the fits already
 * running finish (so the delay is at most one fit per thread), everything
 * is freed and CH_ECANCELLED is returned with the message "cancelled".
 * Any thread or a signal handler may set the flag (it is only read here);
 * setting it from the 'progress' callback works too.
 *
 * Errors: CH_EINVAL (options, unknown family or parameter), CH_EDATA
 * (too few rows of a class), CH_ECANCELLED, CH_EMODEL, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_train_run(const ch_schema *schema, const ch_frame *frame,
                                        const ch_pipeline_spec *spec, const ch_train_opts *o,
                                        const char *lineage_json, ch_train_result **out,
                                        ch_error *err);

CH_API void ch_train_result_free(ch_train_result *r);

/* The bundle document (borrowed; 'len' may be NULL). */
CH_API const char *ch_train_result_bundle(const ch_train_result *r, size_t *len);

/* A JSON object with everything measured: {"winner": {...}, "families":
 * [{"family", "best": {"params", "cv_auc_mean", "cv_auc_sd", ...},
 * "grid": [...]}], "test": {...}, "thresholds": {...}, "split": {...}}. */
CH_API const char *ch_train_result_json(const ch_train_result *r);

/* A short Markdown report of the same. */
CH_API const char *ch_train_result_report(const ch_train_result *r);

/* Every metric as (scope, name, value) for the tracking store; 'i' from 0
 * until it returns 0. */
CH_API int ch_train_result_metric(const ch_train_result *r, size_t i, const char **scope,
                                  const char **name, double *value);

/* The held-out test rows (borrowed, increasing), for evaluating another
 * model on the same rows. */
CH_API const size_t *ch_train_result_test_rows(const ch_train_result *r, size_t *n);

/* Evaluates calibrated probabilities 'p' against labels: fills a JSON
 * object with roc_auc, pr_auc, log_loss, brier, ece, reliability bins,
 * confusion and rates at 'threshold', lift and gains by decile. */
CH_API CH_NODISCARD ch_err ch_train_evaluate_json(const double *y, const double *p, size_t n,
                                                  double threshold, ch_buf *b, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_TRAIN_H */
