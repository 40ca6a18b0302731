/*
 * explain.h -- why a customer's churn probability is what it is, and what
 * would lower it.
 *
 * An explainer is built once from a loaded bundle and then answers for
 * one raw record at a time (the server's path) or for many (batch
 * scoring):
 *   - the calibrated probability and margin;
 *   - per-feature contributions in log-odds plus a bias, by model family:
 *       xgboost  path-dependent TreeSHAP on the compiled forest (forest.h;
 *                the same quantity as XGBoost's pred_contribs); exact;
 *       logreg   w_j x (x_j - mean_j) in the standardized feature space,
 *                bias = b + sum_j w_j x mean_j; exact;
 *       mlp      integrated gradients along the straight path from the
 *                baseline to the record, bias = the baseline's margin.
 *                Exact (to rounding) for one hidden layer and for two ReLU
 *                layers, where the path integral is computed in closed
 *                form or piece by piece; for two tanh layers a 64-point
 *                composite Gauss-Legendre rule, whose completeness error
 *                the tests bound by 1e-3 in log-odds (measured: ~2e-6).
 *     The baseline ("mean_j") is the training mean of each model feature:
 *     0 for standardized numeric and ordinal features, the training share
 *     of the level for one-hot and "(other)" features and of missing
 *     values for indicators of input columns (from the bundle's profile).
 *     Indicators of engineered columns, whose share the bundle does not
 *     record, get baseline 0. In every family contributions + bias =
 *     margin (within the tolerance above);
 *   - contributions rolled up to input columns (a feature with several
 *     source columns shares its contribution equally among them);
 *   - the top-k reasons in plain language from the schema's labels ("tenure
 *     in months is 2: raises churn risk"), each with its signed
 *     contribution in log-odds and in probability points (the change in
 *     calibrated probability if the column's contribution were removed)
 *     and a direction (raises / lowers);
 *   - what-if retention actions: for columns marked actionable, each
 *     allowed alternative value that differs from the record's (and every
 *     pair of them on two different columns), scored by the bundle's own
 *     pipeline, model and calibrator, ranked by the drop in churn
 *     probability or by expected value (see ch_action_item).
 *
 * An explainer is immutable and thread-safe; per-call scratch lives in a
 * caller-owned workspace, so explaining allocates nothing.
 */
#ifndef CH_EXPLAIN_H
#define CH_EXPLAIN_H

#include <stddef.h>

#include "ch/bundle.h"
#include "ch/features.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_explainer ch_explainer;
typedef struct ch_explain_ws ch_explain_ws;

#define CH_EXPLAIN_MAX_K   16
#define CH_REASON_TEXT_MAX 160
/* Records ch_explain_records() explains together (boosted trees: in one
 * walk of each tree); callers with many records pass it multiples of
 * this. */
#define CH_EXPLAIN_BATCH 8

typedef struct ch_reason_item {
    int column;                    /* schema column */
    double logodds;                /* signed contribution in log-odds */
    double points;                 /* 100 x (p(margin) - p(margin - logodds)), p calibrated */
    int raises;                    /* 1 raises churn risk (logodds > 0), 0 lowers it */
    char text[CH_REASON_TEXT_MAX]; /* "contract is Month-to-month: raises churn risk" */
} ch_reason_item;

/* One what-if action. Its text names the change ("Add <label>" for a
 * categorical "Yes" or a binary 1, "Switch <label> to <value>" for another
 * category, "Set <label> to <value>" otherwise; a pair joins two with
 * " and ") and the probabilities in whole percent. Expected value counts one offer per
 * change: drop x monthly revenue (the record's value of the bundle's
 * value.revenue_column, 0 when missing) x horizon_months x success_rate -
 * offer_cost x (1 or 2); it may be negative. */
typedef struct ch_action_item {
    int column[2];                 /* schema columns changed; column[1] = -1 for a single change */
    char value[2][64];             /* the new values, as the schema's alternatives spell them */
    double probability;            /* calibrated churn probability after the change */
    double drop;                   /* probability before - after, > 0 */
    double expected_value;         /* see above, in the revenue column's currency */
    char text[CH_REASON_TEXT_MAX]; /* "Switch contract to Two year: churn risk 62% -> 31%" */
} ch_action_item;

typedef struct ch_explanation {
    double probability; /* calibrated */
    double margin;      /* model log-odds */
    double bias;        /* baseline margin: the feature contributions sum to margin - bias */
    size_t n_reasons;
    ch_reason_item reasons[CH_EXPLAIN_MAX_K]; /* by |logodds|, largest first */
    size_t n_actions;
    ch_action_item actions[CH_EXPLAIN_MAX_K]; /* best first */
} ch_explanation;

/* Builds an explainer for 'b' (borrowed: it must outlive the explainer):
 * reads the model's parameters from the bundle's model JSON (xgboost:
 * compiles the forest), the features' baseline from its profile, the
 * actionable columns' alternatives from its schema and the retention
 * economics from its "value" section. Free with ch_explainer_free().
 * Errors: CH_EMODEL (a family without an explainer, or a model state it
 * cannot read), CH_EFORMAT (an XGBoost model the forest cannot read),
 * CH_ENOMEM. Thread-safe for distinct outputs. */
CH_API CH_NODISCARD ch_err ch_explainer_new(const ch_bundle *b, ch_explainer **out, ch_error *err);
/* NULL is a no-op. Free every workspace of 'e' first. */
CH_API void ch_explainer_free(ch_explainer *e);

/* Scratch for explaining with 'e' (borrowed; it must outlive the
 * workspace), sized once: one per thread. Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_explain_ws_new(const ch_explainer *e, ch_explain_ws **out,
                                             ch_error *err);
/* NULL is a no-op. */
CH_API void ch_explain_ws_free(ch_explain_ws *ws);

/* Per-feature contributions of one record ('vals': one ch_value per schema
 * column) into 'phi': ch_pipeline_n_features() + 1 values, the last the
 * bias; their sum is the margin (see the family notes above). Returns the
 * margin: for logreg and mlp exactly the bundle's (ch_model_predict_margin
 * on the transformed record), for xgboost the compiled forest's, which
 * may differ from XGBoost's own float arithmetic by about 1e-6.
 * 'ws' must come from ch_explain_ws_new(e). Allocation-free; thread-safe
 * with one 'ws' per thread. */
CH_API double ch_explain_contributions(const ch_explainer *e, const ch_value *vals, double *phi,
                                       ch_explain_ws *ws);

/* Explains one record ('vals': one ch_value per schema column) into 'out':
 * the probability, the top 'k_reasons' reasons (columns some feature comes
 * from, by |contribution|) and the best 'k_actions' actions with a positive
 * drop (each at most CH_EXPLAIN_MAX_K, larger values are clamped; 0 skips
 * that part). Actions are ranked by drop in probability; 'by_value' ranks
 * them by expected value instead (ties: larger drop first). 'vals' and
 * its strings are only read during the call; 'out' holds no pointers.
 * Text in 'out' is cut at a UTF-8 character boundary when it does not
 * fit. Allocation-free. Thread-safe with one 'ws' per thread. */
CH_API void ch_explain_record(const ch_explainer *e, const ch_value *vals, size_t k_reasons,
                              size_t k_actions, int by_value, ch_explanation *out,
                              ch_explain_ws *ws);

/* ch_explain_record() for 'n_records' records: record i is the
 * ch_schema_n_cols() values at vals + i * ch_schema_n_cols(), and its
 * explanation goes to out[i], the same, to the bit, as
 * ch_explain_record() gives for it; its probability is also the one
 * ch_bundle_score_frame() gives the record. Boosted trees explain
 * CH_EXPLAIN_BATCH records per walk of each tree, which costs about half
 * as much per record with AVX-512 (batch scoring uses this). 'n_records'
 * 0 does nothing. Allocation-free. Thread-safe with one 'ws' per
 * thread. */
CH_API void ch_explain_records(const ch_explainer *e, const ch_value *vals, size_t n_records,
                               size_t k_reasons, size_t k_actions, int by_value,
                               ch_explanation *out, ch_explain_ws *ws);

#ifdef __cplusplus
}
#endif
#endif /* CH_EXPLAIN_H */
