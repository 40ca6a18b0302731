/*
 * forest.h -- compiled tree ensembles: fast prediction and exact TreeSHAP.
 *
 * A forest is loaded from an XGBoost JSON model (the format XGBoost's
 * SaveModel writes, objective binary:logistic; gbtree; numerical splits;
 * depth up to 256; missing values follow each split's default direction;
 * base_score included) into a flat, cache-friendly layout of our own. It
 * predicts margins for one row or a batch (spread over threads), and
 * computes exact per-feature contributions: path-dependent TreeSHAP, the
 * same quantity as XGBoost's pred_contribs, so that contributions plus the
 * bias sum to the margin.
 *
 * Rows are n_features doubles. NaN is missing; every other value,
 * infinities included, is converted to float and compared as XGBoost does,
 * so margins are bit-identical to XGBoost's (inplace predict or
 * output_margin) and contributions agree with pred_contribs to XGBoost's
 * float rounding (about 1e-6).
 *
 * Nothing here includes XGBoost: the model is read from its JSON text,
 * and the tests check every number against libxgboost itself.
 *
 * A forest is immutable after loading and may be used by any number of
 * threads at once; per-call scratch memory comes from a caller-owned
 * workspace so the request path never allocates. Typical cost, 300 trees
 * of depth 6: about 1.4 us per prediction, 45 us per explanation, 20 us
 * per row when explaining rows in batches with AVX-512 (bench/infer.sh).
 */
#ifndef CH_FOREST_H
#define CH_FOREST_H

#include <stddef.h>

#include "ch/err.h"
#include "ch/json.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_forest ch_forest;       /* immutable */
typedef struct ch_forest_ws ch_forest_ws; /* per-thread scratch */

/* Loads the XGBoost JSON model 'model' (the object XGBoost saves, with
 * "learner" at the top; borrowed, nothing is kept from it). 'n_features'
 * is what callers will feed: 0 takes the model's num_feature, anything
 * else must equal it. On success '*out' is the forest, freed with
 * ch_forest_free(). Errors: CH_EFORMAT (malformed model, the message names
 * the JSON path), CH_EMODEL (objective other than binary:logistic, booster
 * other than gbtree, categorical splits, vector leaves, multi-class, a
 * different feature count, beyond the size limits), CH_EINVAL (NULL
 * arguments), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_forest_from_xgb_json(const ch_json *model, size_t n_features,
                                                   ch_forest **out, ch_error *err);
/* NULL is a no-op. */
CH_API void ch_forest_free(ch_forest *f);

CH_API size_t ch_forest_n_features(const ch_forest *f);
CH_API size_t ch_forest_n_trees(const ch_forest *f);

/* Margin (log-odds) of one row 'x' (n_features doubles; NaN = missing),
 * equal to XGBoost's. Thread-safe, allocation-free. */
CH_API double ch_forest_predict(const ch_forest *f, const double *x);

/* Margins of 'n_rows' rows (row-major, n_features wide) into 'out', on up
 * to 'n_threads' threads (the calling thread is one of them; values below
 * 2 use it alone; small batches use fewer). Each margin equals
 * ch_forest_predict()'s for the row. A thread that cannot be started
 * leaves its rows to the calling thread. Errors: CH_EINVAL ('f', 'x' or
 * 'out' NULL with rows to do). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_forest_predict_batch(const ch_forest *f, const double *x,
                                                   size_t n_rows, double *out, int n_threads,
                                                   ch_error *err);

/* Scratch for ch_forest_shap() and ch_forest_shap_batch() with 'f' (or
 * another forest whose trees are no bigger and features no more; checked
 * by assertion). One per thread; free with ch_forest_ws_free(). Errors:
 * CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_forest_ws_new(const ch_forest *f, ch_forest_ws **out, ch_error *err);
/* NULL is a no-op. */
CH_API void ch_forest_ws_free(ch_forest_ws *ws);

/* Exact path-dependent TreeSHAP contributions of row 'x': 'phi' gets
 * n_features + 1 values, phi[n_features] being the bias (the expected
 * margin: base margin plus each tree's cover-weighted mean leaf), and the
 * sum of all of them equals the row's margin (to double rounding). Returns
 * the margin, the same value as ch_forest_predict(). Features the trees
 * never split on get 0. Allocation-free; thread-safe with one 'ws' per
 * thread. */
CH_API double ch_forest_shap(const ch_forest *f, const double *x, double *phi, ch_forest_ws *ws);

/* ch_forest_shap() for 'n_rows' rows 'x' (row-major, n_features wide):
 * 'phi' gets n_rows x (n_features + 1) values, row-major, each row as
 * ch_forest_shap() gives it, to the bit; 'margins' (may be NULL) gets the
 * n_rows margins. Up to 8 rows share each walk of a tree, so a row costs
 * less than on its own (with AVX-512 about half; see docs/inference.md).
 * 'n_rows' 0 does nothing. Allocation-free; thread-safe with one 'ws' per
 * thread. */
CH_API void ch_forest_shap_batch(const ch_forest *f, const double *x, size_t n_rows, double *phi,
                                 double *margins, ch_forest_ws *ws);

#ifdef __cplusplus
}
#endif
#endif /* CH_FOREST_H */
