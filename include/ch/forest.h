/*
 * forest.h -- compiled tree ensembles: fast prediction and exact TreeSHAP.
 *
 * A forest is loaded from an XGBoost JSON model (the format XGBoost's
 * SaveModel writes, objective binary:logistic; gbtree; any depth; missing
 * values follow each split's default direction; base_score included) into
 * a flat, cache-friendly layout of our own. It predicts margins for one
 * row or a batch (spread over threads), and computes exact per-feature
 * contributions: path-dependent TreeSHAP, the same quantity as XGBoost's
 * pred_contribs, so that contributions plus the bias sum to the margin.
 *
 * Nothing here includes XGBoost: the model is read from its JSON text,
 * and the tests check every number against libxgboost itself.
 *
 * A forest is immutable after loading and may be used by any number of
 * threads at once; per-call scratch memory comes from a caller-owned
 * workspace so the request path never allocates.
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
 * "learner" at the top). 'n_features' is what callers will feed (0: take
 * the model's). Errors: CH_EFORMAT (not a model this reader knows, with
 * the JSON path), CH_EMODEL (objective or booster not supported), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_forest_from_xgb_json(const ch_json *model, size_t n_features,
                                                   ch_forest **out, ch_error *err);
CH_API void ch_forest_free(ch_forest *f);

CH_API size_t ch_forest_n_features(const ch_forest *f);
CH_API size_t ch_forest_n_trees(const ch_forest *f);

/* Margin of one row 'x' (n_features doubles; NaN = missing). Thread-safe,
 * allocation-free. */
CH_API double ch_forest_predict(const ch_forest *f, const double *x);

/* Margins of 'n_rows' rows (row-major) into 'out', on up to 'n_threads'
 * threads. Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_forest_predict_batch(const ch_forest *f, const double *x,
                                                   size_t n_rows, double *out, int n_threads,
                                                   ch_error *err);

/* Scratch for ch_forest_shap(), sized for 'f'. One per thread. */
CH_API CH_NODISCARD ch_err ch_forest_ws_new(const ch_forest *f, ch_forest_ws **out,
                                            ch_error *err);
CH_API void ch_forest_ws_free(ch_forest_ws *ws);

/* Exact path-dependent TreeSHAP contributions of row 'x': 'phi' gets
 * n_features + 1 values, phi[n_features] being the bias (the expected
 * margin), and the sum of all of them equals the row's margin. Returns
 * the margin. Allocation-free; thread-safe with one 'ws' per thread. */
CH_API double ch_forest_shap(const ch_forest *f, const double *x, double *phi, ch_forest_ws *ws);

#ifdef __cplusplus
}
#endif
#endif /* CH_FOREST_H */
