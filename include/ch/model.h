/*
 * model.h -- one interface over the model families.
 *
 * A family (logistic regression, gradient-boosted trees, a small neural
 * network) is a table of operations, ch_model_ops; adding a family is one
 * new adapter file and one entry in the table behind ch_model_family().
 * Every family learns a binary classifier whose raw output is a margin
 * (log-odds): probability = 1 / (1 + exp(-margin)). Calibration and
 * thresholds live above this layer.
 *
 * Data comes as a dense row-major matrix of doubles (the feature
 * pipeline's output) with 0/1 labels and optional per-row weights (class
 * weights are passed this way; nothing is ever resampled).
 *
 * A fitted model is immutable: predicting from many threads at once is
 * safe. Everything random takes the seed in ch_model_fit_opts, so equal
 * inputs give bit-identical models.
 */
#ifndef CH_MODEL_H
#define CH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A dense training or scoring set. Borrowed for the duration of a call. */
typedef struct ch_dataset {
    const double *x; /* n_rows x n_features, row-major */
    const double *y; /* n_rows labels, 0 or 1 (NULL when only predicting) */
    const double *w; /* n_rows weights > 0, or NULL for all 1 */
    size_t n_rows;
    size_t n_features;
} ch_dataset;

#define CH_PARAMS_MAX 16

/* Hyperparameters as named numbers ("C", "max_depth", "eta", ...). A family
 * reads the names it knows, uses its defaults for absent ones, and rejects
 * names it does not know (a typo in a search space is an error). */
typedef struct ch_params {
    size_t n;
    char names[CH_PARAMS_MAX][32];
    double values[CH_PARAMS_MAX];
} ch_params;

/* Sets (or replaces) 'name'. Returns -1 when full or the name is too long. */
CH_API int ch_params_set(ch_params *p, const char *name, double value);
/* The value of 'name', or 'def' when absent. */
CH_API double ch_params_get(const ch_params *p, const char *name, double def);
/* Writes {"name": value, ...}. */
CH_API ch_err ch_params_to_json(const ch_params *p, ch_buf *b);
/* Reads an object of numbers. Errors: CH_EFORMAT, CH_ELIMIT (too many). */
CH_API CH_NODISCARD ch_err ch_params_from_json(const ch_json *node, ch_params *out, ch_error *err);

typedef struct ch_model_fit_opts {
    uint64_t seed;           /* for everything random in the fit */
    int n_threads;           /* threads the family may use (default 1) */
    const ch_dataset *valid; /* early-stopping set, or NULL: fixed size */
} ch_model_fit_opts;

/* What a fit reports besides the model. */
typedef struct ch_model_fit_info {
    double best_iteration; /* boosting rounds / epochs kept (0 when n/a) */
    double valid_loss;     /* weighted log loss on 'valid' at the kept point (NAN when n/a) */
} ch_model_fit_info;

typedef struct ch_model_ops {
    const char *name;       /* "logreg", "xgboost", "mlp" */
    int wants_standardized; /* 1: fit on standardized features */
    /* Checks that 'p' names only known parameters with valid values. */
    ch_err (*check)(const ch_params *p, ch_error *err);
    /* Fits on 'train'; '*state' gets the family's model. */
    ch_err (*fit)(const ch_params *p, const ch_dataset *train, const ch_model_fit_opts *o,
                  void **state, ch_model_fit_info *info, ch_error *err);
    /* Writes margins for 'n_rows' rows of 'x' (row-major, 'n_features'
     * wide) into 'out'. Must be thread-safe on one state. */
    ch_err (*predict)(const void *state, const double *x, size_t n_rows, size_t n_features,
                      double *out, ch_error *err);
    /* Appends the fitted model as one JSON value. */
    ch_err (*save)(const void *state, ch_buf *b);
    /* Reads a value written by save(); 'n_features' is what the caller
     * will feed, to be checked against the model. */
    ch_err (*load)(const ch_json *node, size_t n_features, void **state, ch_error *err);
    void (*free)(void *state);
    /* The parameter that sets the model's size when refitting without an
     * early-stopping set ("n_rounds", "epochs"), or NULL when none. */
    const char *size_param;
} ch_model_ops;

/* The family called 'name', or NULL. */
CH_API const ch_model_ops *ch_model_family(const char *name);
/* Family 'i' of the table, or NULL past the end (for listing). */
CH_API const ch_model_ops *ch_model_family_at(size_t i);

/* A fitted model: a family plus its state. */
typedef struct ch_model ch_model;

/* Fits a model of family 'ops'. Errors: CH_EINVAL (bad parameters),
 * CH_EDATA (one class only, no rows), CH_EMODEL (the back end failed),
 * CH_ENOMEM. Thread-safe for distinct arguments. */
CH_API CH_NODISCARD ch_err ch_model_fit(const ch_model_ops *ops, const ch_params *p,
                                        const ch_dataset *train, const ch_model_fit_opts *o,
                                        ch_model **out, ch_model_fit_info *info, ch_error *err);

/* Margins (log-odds) for the rows of 'x'. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_model_predict_margin(const ch_model *m, const double *x,
                                                   size_t n_rows, size_t n_features, double *out,
                                                   ch_error *err);

/* Writes {"family": name, "params": {...}, "state": <family JSON>}. */
CH_API ch_err ch_model_to_json(const ch_model *m, ch_buf *b);

/* Reads what ch_model_to_json() wrote. Errors: CH_EFORMAT, CH_ENOTFOUND
 * (unknown family), CH_EMODEL, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_model_from_json(const ch_json *node, size_t n_features,
                                              ch_model **out, ch_error *err);

CH_API const ch_model_ops *ch_model_ops_of(const ch_model *m);
CH_API const ch_params *ch_model_params(const ch_model *m);
/* The family's state, for code that needs the back end (TreeSHAP on the
 * XGBoost JSON, for instance). Borrowed. */
CH_API const void *ch_model_state(const ch_model *m);

/* NULL is a no-op. */
CH_API void ch_model_free(ch_model *m);

/* 1 / (1 + exp(-m)), computed without overflow. */
CH_API double ch_sigmoid(double m);

/* Family tables, defined in their adapter files. */
CH_API extern const ch_model_ops ch_model_logreg;  /* model_linear.c (liblinear) */
CH_API extern const ch_model_ops ch_model_xgboost; /* model_xgb.c (XGBoost C API) */
CH_API extern const ch_model_ops ch_model_mlp;     /* model_mlp.c (own implementation) */

#ifdef __cplusplus
}
#endif
#endif /* CH_MODEL_H */
