/*
 * explain.c -- per-customer explanations: contributions, reasons and
 * what-if retention actions.
 *
 * Everything that depends only on the bundle is worked out once, in
 * ch_explainer_new(): the model's parameters (read back from the bundle's
 * model JSON, so no adapter's private state is touched), the baseline of
 * every model feature, the actionable columns' alternative values parsed
 * through the schema, and the retention economics. Explaining a record then
 * runs in a caller-owned workspace sized for the bundle and allocates
 * nothing, so the server can explain on its request path and many threads
 * can share one explainer.
 *
 * The baseline ("the average customer") is the training mean of each model
 * feature. The pipeline standardizes numeric and ordinal features with
 * their training means, so in the standardized space those means are 0.
 * One-hot, "(other)" and missing-indicator features are not standardized;
 * their training means are the shares of the level (or of missing values)
 * among the training rows, which the bundle's reference profile records per
 * input column (computed over the same rows the final pipeline was fitted
 * on). The "(other)" share is one minus the fitted levels' shares. A
 * feature whose mean the profile cannot give (an indicator on an
 * engineered column, or any feature of a pipeline fitted without
 * standardization) gets baseline 0; this moves contribution between that
 * feature and the bias but never breaks "contributions + bias = margin".
 *
 * Contributions by family:
 *   - logreg: phi_j = w_j * (x_j - mean_j), bias = b + sum_j w_j * mean_j.
 *     Exact; the same as integrated gradients or SHAP for a linear model
 *     with independent features.
 *   - mlp: integrated gradients along the straight path from the baseline
 *     x0 to x. Along that path the first layer's pre-activations are
 *     linear in the path parameter, z(a) = z0 + a * u with u = W1 (x - x0),
 *     and the gradient with respect to x is W1^T d(a). With one hidden layer
 *     d_k(a) = w_out_k * act'(z0_k + a * u_k), whose integral over [0, 1]
 *     is w_out_k * (act(z0_k + u_k) - act(z0_k)) / u_k: the path integral
 *     is computed in closed form, so the contributions are exact. With two
 *     ReLU layers the network is piecewise linear along the path and is
 *     integrated exactly piece by piece (ig_relu_two_layers()). With two
 *     tanh layers the integral of d(a) is taken numerically with
 *     CH_EXPLAIN_IG_STEPS evaluations (composite two-point Gauss-Legendre,
 *     ig_tanh_two_layers()); each costs O(hidden * hidden2), not a full
 *     gradient, because the first layer is applied once before and once
 *     after the loop. The bias is the baseline's margin.
 *   - xgboost: path-dependent TreeSHAP on the compiled forest (forest.h).
 * The returned margin is always the model's own: ch_model_predict_margin()
 * for logreg and mlp (bit-identical to scoring through the bundle), the
 * compiled forest for xgboost.
 *
 * Workload: one explanation per scored customer the UI or batch job asks
 * about; up to a few dozen pipeline transforms per record (one per candidate
 * action, under a microsecond each). On the Telco data (62 features, up to 7
 * single changes and 19 pairs) a full explanation with 5 reasons and 5
 * actions takes about 6 us (logreg), 18 us (xgboost, depth 3), 19 us (mlp,
 * one layer of 16) and 58 us (mlp, two tanh layers of 16) on one core.
 */
#include "ch/explain.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/forest.h"
#include "ch/text.h"

/* Gradient evaluations of the integrated-gradients path integral for
 * networks with two tanh layers (the other shapes are integrated exactly);
 * an even number. */
#ifndef CH_EXPLAIN_IG_STEPS
#define CH_EXPLAIN_IG_STEPS 64
#endif

/* Records ch_explain_records() transforms and explains together: a batch
 * for ch_forest_shap_batch(), whose kernels take up to 8 rows at once. */
#define BATCH_ROWS CH_EXPLAIN_BATCH

/* Below this |u_k| the divided difference of a hidden unit is replaced by
 * the derivative at the path's midpoint (its error is O(u_k^2)). */
#define IG_TINY 1e-7

enum { FAM_LOGREG, FAM_MLP, FAM_XGBOOST };

#define ACT_TANH 0
#define ACT_RELU 1

/* One value an action may set. */
typedef struct alt {
    size_t col;       /* schema column */
    ch_value v;       /* the value as a record would hold it ('str' borrowed from the schema) */
    const char *text; /* the schema's alternative text (borrowed) */
} alt;

/* The network of an "mlp" model, read from its JSON state. */
typedef struct mlp_net {
    size_t h1;     /* units in hidden layer 1 */
    size_t h2;     /* units in hidden layer 2, 0 for none */
    int act;       /* ACT_TANH or ACT_RELU */
    double *w1;    /* h1 x n_feat, row-major */
    double *b1;    /* h1 */
    double *w2;    /* h2 x h1, row-major (NULL without a second layer) */
    double *b2;    /* h2 */
    double *wo;    /* output weights, one per unit of the last hidden layer */
    double bo;     /* output bias */
    double *z0;    /* h1: first-layer pre-activations at the baseline */
    double *store; /* the one allocation behind the arrays above */
} mlp_net;

struct ch_explainer {
    const ch_bundle *b; /* borrowed */
    const ch_schema *schema;
    const ch_pipeline *pipe;
    const ch_model *model;
    const ch_calibrator *cal;
    int family;          /* FAM_* */
    size_t n_cols;       /* schema columns */
    size_t n_feat;       /* model features */
    double *mean;        /* n_feat: the baseline (training mean of each feature) */
    double bias;         /* expected margin: logreg and mlp */
    unsigned char *used; /* n_cols: 1 when some feature comes from the column */
    double *w;           /* logreg: n_feat weights */
    mlp_net net;         /* mlp */
    ch_forest *forest;   /* xgboost */
    alt *alts;           /* values actions may set, grouped by column */
    size_t n_alts;
    long revenue_col;    /* schema column of monthly revenue, or -1 */
    double horizon;      /* months of revenue a retained customer is worth */
    double offer_cost;   /* cost of one retention offer */
    double success_rate; /* share of would-be churners an offer retains */
};

/* A candidate action while ranking. */
typedef struct cand {
    size_t a[2]; /* indexes into e->alts; a[1] = SIZE_MAX for a single change */
    double p;    /* probability after */
    double drop; /* probability before - after */
    double ev;   /* expected value */
} cand;

struct ch_explain_ws {
    const ch_explainer *e; /* the explainer it was sized for */
    double *x;             /* BATCH_ROWS x n_feat: the records' features */
    double *xa;            /* n_feat: a modified record's features */
    double *phi;           /* BATCH_ROWS x (n_feat + 1) */
    double m[BATCH_ROWS];  /* the records' margins */
    double *col;           /* n_cols: contributions rolled up to columns */
    size_t *order;         /* n_cols */
    size_t *elig;          /* n_alts: alternatives that differ from the record */
    ch_value *vals;        /* n_cols: a copy of the record being modified */
    double *h;             /* mlp: 4 * h1 + 2 * h2 + 4 */
    ch_forest_ws *fws;     /* xgboost */
    cand best[CH_EXPLAIN_MAX_K];
};

/* ---- building ------------------------------------------------------------ */

static double act_fn(int act, double z)
{
    return act == ACT_RELU ? (z > 0 ? z : 0.0) : tanh(z);
}

/* Derivative of the activation from its value 'a'. */
static double act_deriv(int act, double a)
{
    if (act == ACT_RELU)
        return a > 0 ? 1.0 : 0.0;
    return 1.0 - a * a;
}

static double num_or(const ch_json *v, double def)
{
    double d;
    return ch_json_num(v, &d) == 0 && isfinite(d) ? d : def;
}

/*
 * Reads the weights of a "logreg" state {"w": [...], "b": ...} into 'e'.
 * Errors: CH_EMODEL (not that shape, or not 'e->n_feat' weights),
 * CH_ENOMEM.
 */
static ch_err load_logreg(ch_explainer *e, const ch_json *st, ch_error *err)
{
    const ch_json *w = ch_json_get(st, "w");
    if (ch_json_typeof(w) != CH_JSON_ARRAY || ch_json_len(w) != e->n_feat ||
        ch_json_num(ch_json_get(st, "b"), &e->bias) != 0)
        return ch_error_set(err, CH_EMODEL,
                            "explain: logreg state must have \"w\" (%zu numbers) and \"b\"",
                            e->n_feat);
    e->w = ch_malloc_array(e->n_feat, sizeof *e->w);
    if (e->w == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t j = 0; j < e->n_feat; j++)
        if (ch_json_num(ch_json_at(w, j), &e->w[j]) != 0 || !isfinite(e->w[j]))
            return ch_error_set(err, CH_EMODEL, "explain: logreg \"w\"[%zu] is not a number", j);
    return CH_OK;
}

/* Copies the 'n' numbers of array 'arr' into 'out'; -1 on a mismatch. */
static int read_nums(const ch_json *arr, size_t n, double *out)
{
    if (ch_json_typeof(arr) != CH_JSON_ARRAY || ch_json_len(arr) != n)
        return -1;
    for (size_t j = 0; j < n; j++)
        if (ch_json_num(ch_json_at(arr, j), &out[j]) != 0 || !isfinite(out[j]))
            return -1;
    return 0;
}

/* Reads an integer in [1, 1e6] from 'v' into '*out'; -1 otherwise. */
static int read_units(const ch_json *v, size_t *out)
{
    double d;
    if (ch_json_num(v, &d) != 0 || !(d >= 1 && d <= 1e6) || d != floor(d))
        return -1;
    *out = (size_t)d;
    return 0;
}

/*
 * Reads an "mlp" state (see model_mlp.c: "n_features", "hidden": [h1(,
 * h2)], "activation", "layers": [{"w", "b"}, ...]) into 'e->net'. Errors:
 * CH_EMODEL (another shape), CH_ENOMEM.
 */
static ch_err load_mlp(ch_explainer *e, const ch_json *st, ch_error *err)
{
    mlp_net *n = &e->net;
    const ch_json *hidden = ch_json_get(st, "hidden");
    const ch_json *layers = ch_json_get(st, "layers");
    const char *act = ch_json_str(ch_json_get(st, "activation"), NULL);
    size_t nf = 0;
    size_t n_layers;
    size_t last;
    size_t total;
    double ob;

    if (read_units(ch_json_get(st, "n_features"), &nf) != 0 || nf != e->n_feat ||
        ch_json_typeof(hidden) != CH_JSON_ARRAY || ch_json_len(hidden) < 1 ||
        ch_json_len(hidden) > 2 || read_units(ch_json_at(hidden, 0), &n->h1) != 0 ||
        (ch_json_len(hidden) == 2 && read_units(ch_json_at(hidden, 1), &n->h2) != 0) ||
        act == NULL || (strcmp(act, "tanh") != 0 && strcmp(act, "relu") != 0))
        return ch_error_set(err, CH_EMODEL, "explain: mlp state is not a network over %zu features",
                            e->n_feat);
    n->act = strcmp(act, "relu") == 0 ? ACT_RELU : ACT_TANH;
    n_layers = n->h2 > 0 ? 3 : 2;
    last = n->h2 > 0 ? n->h2 : n->h1;
    if (ch_json_typeof(layers) != CH_JSON_ARRAY || ch_json_len(layers) != n_layers)
        return ch_error_set(err, CH_EMODEL, "explain: mlp state needs %zu layers", n_layers);
    total = n->h1 * (e->n_feat + 2) + n->h2 * (n->h1 + 1) + last;
    n->store = ch_malloc_array(total, sizeof *n->store);
    if (n->store == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    n->w1 = n->store;
    n->b1 = n->w1 + n->h1 * e->n_feat;
    n->z0 = n->b1 + n->h1;
    n->w2 = n->h2 > 0 ? n->z0 + n->h1 : NULL;
    n->b2 = n->h2 > 0 ? n->w2 + n->h2 * n->h1 : NULL;
    n->wo = n->h2 > 0 ? n->b2 + n->h2 : n->z0 + n->h1;
    if (read_nums(ch_json_get(ch_json_at(layers, 0), "w"), n->h1 * e->n_feat, n->w1) != 0 ||
        read_nums(ch_json_get(ch_json_at(layers, 0), "b"), n->h1, n->b1) != 0 ||
        (n->h2 > 0 &&
         (read_nums(ch_json_get(ch_json_at(layers, 1), "w"), n->h2 * n->h1, n->w2) != 0 ||
          read_nums(ch_json_get(ch_json_at(layers, 1), "b"), n->h2, n->b2) != 0)) ||
        read_nums(ch_json_get(ch_json_at(layers, n_layers - 1), "w"), last, n->wo) != 0 ||
        read_nums(ch_json_get(ch_json_at(layers, n_layers - 1), "b"), 1, &ob) != 0)
        return ch_error_set(err, CH_EMODEL, "explain: mlp layer sizes do not match the model");
    n->bo = ob;
    return CH_OK;
}

/*
 * Share of the training rows where input column 'name' had level 'level'
 * ("levels" of the profile); 0 when the profile does not list it.
 */
static double level_share(const ch_json *profile, const char *name, const char *level)
{
    const ch_json *levels =
        ch_json_get(ch_json_get(ch_json_get(profile, "columns"), name), "levels");
    return num_or(ch_json_get(levels, level), 0.0);
}

/*
 * Whether feature name 'fname' belongs to input column 'col': it is the
 * column's name, or the name followed by '=' (a level) or ':' (an
 * indicator). Engineered columns have their own names.
 */
static const char *feature_suffix(const char *fname, const char *col)
{
    size_t n = strlen(col);
    if (strncmp(fname, col, n) != 0)
        return NULL;
    if (fname[n] == '\0' || fname[n] == '=' || fname[n] == ':')
        return fname + n;
    return NULL;
}

/*
 * Share of missing-or-unfitted values of an input column, for its missing
 * indicator: the profile's "missing" share for a numeric column, one minus
 * the fitted levels' shares for an ordinal categorical one. -1 when
 * unknown.
 */
static double indicator_share(const ch_json *profile, const ch_json *fitted, const char *name)
{
    const ch_json *pc = ch_json_get(ch_json_get(profile, "columns"), name);
    if (pc == NULL)
        return -1;
    if (ch_json_get(pc, "levels") == NULL)
        return num_or(ch_json_get(pc, "missing"), -1);
    for (size_t c = 0; c < ch_json_len(fitted); c++) {
        const ch_json *f = ch_json_at(fitted, c);
        const char *fn = ch_json_str(ch_json_get(f, "name"), NULL);
        const ch_json *levels = ch_json_get(f, "levels");
        double n_fit = num_or(ch_json_get(f, "n_fit"), -1);
        double sum = 0;
        if (fn == NULL || strcmp(fn, name) != 0)
            continue;
        if (n_fit < 0 || n_fit > (double)ch_json_len(levels))
            return -1;
        for (size_t k = 0; k < (size_t)n_fit; k++) {
            const char *lv = ch_json_str(ch_json_at(levels, k), NULL);
            if (lv != NULL)
                sum += level_share(profile, name, lv);
        }
        return 1.0 - sum;
    }
    return -1;
}

/*
 * Fills 'e->mean' with the baseline of each feature (see the top of the
 * file): 0 for standardized numeric and ordinal features, the training
 * share for one-hot, "(other)" and indicator features of input columns,
 * 0 when the profile does not give it.
 */
static void feature_means(ch_explainer *e)
{
    const ch_json *profile = ch_bundle_section(e->b, "profile");
    const ch_json *pj = ch_bundle_section(e->b, "pipeline");
    const ch_json *fitted = ch_json_get(pj, "fitted");
    size_t k = 0;

    while (k < e->n_feat) {
        ch_feature_kind kind = ch_pipeline_feature_kind(e->pipe, k);
        const char *fname = ch_pipeline_feature_name(e->pipe, k);
        size_t n_src = 0;
        const uint32_t *src = ch_pipeline_feature_sources(e->pipe, k, &n_src);
        const char *col = n_src == 1 ? ch_schema_col_ref(e->schema, src[0])->name : NULL;
        const char *suffix = col != NULL ? feature_suffix(fname, col) : NULL;
        double m = 0;

        if (kind == CH_FEAT_ONEHOT || kind == CH_FEAT_OTHER) {
            /* A column's levels are consecutive features ending with its
             * "(other)" feature, which takes what the levels leave. */
            int known =
                col != NULL &&
                ch_json_get(ch_json_get(ch_json_get(profile, "columns"), col), "levels") != NULL;
            double sum = 0;
            while (k < e->n_feat && ch_pipeline_feature_kind(e->pipe, k) == CH_FEAT_ONEHOT) {
                suffix = known ? feature_suffix(ch_pipeline_feature_name(e->pipe, k), col) : NULL;
                m = suffix != NULL && suffix[0] == '=' ? level_share(profile, col, suffix + 1) : 0;
                e->mean[k++] = m;
                sum += m;
            }
            if (k < e->n_feat && ch_pipeline_feature_kind(e->pipe, k) == CH_FEAT_OTHER)
                e->mean[k++] = known ? fmax(0.0, 1.0 - sum) : 0.0;
            continue;
        }
        if (kind == CH_FEAT_INDICATOR && suffix != NULL && suffix[0] == ':') {
            m = indicator_share(profile, fitted, col);
            if (m < 0)
                m = 0;
        }
        e->mean[k++] = m;
    }
}

/* Layer-1 pre-activations at the baseline, and the baseline's margin. */
static void mlp_baseline(ch_explainer *e)
{
    mlp_net *n = &e->net;
    double m = n->bo;
    for (size_t u = 0; u < n->h1; u++) {
        const double *row = n->w1 + u * e->n_feat;
        double z = n->b1[u];
        for (size_t j = 0; j < e->n_feat; j++)
            z += row[j] * e->mean[j];
        n->z0[u] = z;
    }
    if (n->h2 == 0) {
        for (size_t u = 0; u < n->h1; u++)
            m += n->wo[u] * act_fn(n->act, n->z0[u]);
    } else {
        for (size_t v = 0; v < n->h2; v++) {
            double z = n->b2[v];
            for (size_t u = 0; u < n->h1; u++)
                z += n->w2[v * n->h1 + u] * act_fn(n->act, n->z0[u]);
            m += n->wo[v] * act_fn(n->act, z);
        }
    }
    e->bias = m;
}

/* Parses the alternatives of every actionable column into 'e->alts'. An
 * alternative the schema cannot read as a value of its column is left
 * out, and so is a column no model feature reads (changing it cannot
 * change the score). */
static ch_err load_actions(ch_explainer *e, ch_error *err)
{
    size_t n = 0;
    for (size_t j = 0; j < e->n_cols; j++) {
        const ch_schema_col *c = ch_schema_col_ref(e->schema, j);
        if (c->actionable && e->used[j])
            n += c->n_alternatives;
    }
    e->alts = ch_calloc(n == 0 ? 1 : n, sizeof *e->alts);
    if (e->alts == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t j = 0; j < e->n_cols; j++) {
        const ch_schema_col *c = ch_schema_col_ref(e->schema, j);
        if (!c->actionable || !e->used[j])
            continue;
        for (size_t i = 0; i < c->n_alternatives; i++) {
            const char *t = c->alternatives[i];
            alt *a = &e->alts[e->n_alts];
            double num = 0;
            int32_t cat = -1;
            ch_reason why = CH_REASON_NONE;
            ch_value_status s = ch_schema_parse_value(c, t, strlen(t), &num, &cat, &why);
            if (s == CH_VALUE_BAD || s == CH_VALUE_MISSING ||
                (s == CH_VALUE_UNKNOWN && c->kind != CH_KIND_CATEGORICAL))
                continue;
            a->col = j;
            a->text = t;
            a->v.missing = 0;
            if (c->kind == CH_KIND_CATEGORICAL) {
                a->v.str = t;
                a->v.len = strlen(t);
            } else {
                a->v.num = num;
            }
            e->n_alts++;
        }
    }
    return CH_OK;
}

/* Reads the bundle's "value" section (retention economics). Absent
 * numbers count as 0 and an absent revenue column as no revenue. */
static void load_value(ch_explainer *e)
{
    const ch_json *v = ch_bundle_section(e->b, "value");
    const char *rc = ch_json_str(ch_json_get(v, "revenue_column"), NULL);
    e->revenue_col = rc != NULL ? ch_schema_find(e->schema, rc) : -1;
    e->horizon = num_or(ch_json_get(v, "horizon_months"), 0);
    e->offer_cost = num_or(ch_json_get(v, "offer_cost"), 0);
    e->success_rate = num_or(ch_json_get(v, "success_rate"), 0);
}

ch_err ch_explainer_new(const ch_bundle *b, ch_explainer **out, ch_error *err)
{
    const ch_json *model = ch_bundle_section(b, "model");
    const ch_json *state = ch_json_get(model, "state");
    const char *fam = ch_model_ops_of(ch_bundle_model(b))->name;
    ch_explainer *e;
    ch_err rc;

    e = ch_calloc(1, sizeof *e);
    if (e == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    e->b = b;
    e->schema = ch_bundle_schema(b);
    e->pipe = ch_bundle_pipeline(b);
    e->model = ch_bundle_model(b);
    e->cal = ch_bundle_calibrator(b);
    e->n_cols = ch_schema_n_cols(e->schema);
    e->n_feat = ch_pipeline_n_features(e->pipe);
    if (strcmp(fam, "logreg") == 0) {
        e->family = FAM_LOGREG;
    } else if (strcmp(fam, "mlp") == 0) {
        e->family = FAM_MLP;
    } else if (strcmp(fam, "xgboost") == 0) {
        e->family = FAM_XGBOOST;
    } else {
        rc = ch_error_set(err, CH_EMODEL, "explain: no explainer for model family \"%s\"", fam);
        goto fail;
    }
    e->mean = ch_calloc(e->n_feat + 1, sizeof *e->mean);
    e->used = ch_calloc(e->n_cols + 1, 1);
    if (e->mean == NULL || e->used == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t k = 0; k < e->n_feat; k++) {
        size_t n_src = 0;
        const uint32_t *src = ch_pipeline_feature_sources(e->pipe, k, &n_src);
        for (size_t s = 0; s < n_src; s++)
            e->used[src[s]] = 1;
    }
    feature_means(e);
    switch (e->family) {
    case FAM_LOGREG:
        rc = load_logreg(e, state, err);
        if (rc == CH_OK)
            for (size_t j = 0; j < e->n_feat; j++)
                e->bias += e->w[j] * e->mean[j];
        break;
    case FAM_MLP:
        rc = load_mlp(e, state, err);
        if (rc == CH_OK)
            mlp_baseline(e);
        break;
    default:
        rc = ch_forest_from_xgb_json(state, e->n_feat, &e->forest, err);
        if (rc != CH_OK)
            ch_error_prefix(err, "explain");
        break;
    }
    if (rc == CH_OK)
        rc = load_actions(e, err);
    if (rc != CH_OK)
        goto fail;
    load_value(e);
    *out = e;
    return CH_OK;

fail:
    ch_explainer_free(e);
    return rc;
}

void ch_explainer_free(ch_explainer *e)
{
    if (e == NULL)
        return;
    ch_free(e->alts);
    ch_forest_free(e->forest);
    ch_free(e->net.store);
    ch_free(e->w);
    ch_free(e->used);
    ch_free(e->mean);
    ch_free(e);
}

ch_err ch_explain_ws_new(const ch_explainer *e, ch_explain_ws **out, ch_error *err)
{
    ch_explain_ws *ws = ch_calloc(1, sizeof *ws);
    if (ws == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    ws->e = e;
    ws->x = ch_malloc_array(BATCH_ROWS * e->n_feat + 1, sizeof *ws->x);
    ws->xa = ch_malloc_array(e->n_feat + 1, sizeof *ws->xa);
    ws->phi = ch_malloc_array(BATCH_ROWS * (e->n_feat + 1), sizeof *ws->phi);
    ws->col = ch_malloc_array(e->n_cols + 1, sizeof *ws->col);
    ws->order = ch_malloc_array(e->n_cols + 1, sizeof *ws->order);
    ws->elig = ch_malloc_array(e->n_alts + 1, sizeof *ws->elig);
    ws->vals = ch_malloc_array(e->n_cols + 1, sizeof *ws->vals);
    ws->h = ch_malloc_array(4 * e->net.h1 + 2 * e->net.h2 + 4, sizeof *ws->h);
    if (ws->x == NULL || ws->xa == NULL || ws->phi == NULL || ws->col == NULL ||
        ws->order == NULL || ws->elig == NULL || ws->vals == NULL || ws->h == NULL) {
        ch_explain_ws_free(ws);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    if (e->forest != NULL) {
        ch_err rc = ch_forest_ws_new(e->forest, &ws->fws, err);
        if (rc != CH_OK) {
            ch_explain_ws_free(ws);
            return rc;
        }
    }
    *out = ws;
    return CH_OK;
}

void ch_explain_ws_free(ch_explain_ws *ws)
{
    if (ws == NULL)
        return;
    ch_forest_ws_free(ws->fws);
    ch_free(ws->h);
    ch_free(ws->vals);
    ch_free(ws->elig);
    ch_free(ws->order);
    ch_free(ws->col);
    ch_free(ws->phi);
    ch_free(ws->xa);
    ch_free(ws->x);
    ch_free(ws);
}

/* ---- contributions -------------------------------------------------------- */

/* ---- integrated gradients ---------------------------------------------- */

/*
 * The path integrals below all produce 'dint', the integral over a in
 * [0, 1] of the gradient of the margin with respect to the first layer's
 * pre-activations z(a) = z0 + a * u. Then phi = (x - x0) * W1^T dint, and
 * sum(phi) = dint . u = the integral of dm/da = m(x) - m(x0) up to the
 * quadrature error.
 */

/* One hidden layer: d_k(a) = w_out_k * act'(z0_k + a u_k), whose integral
 * is the divided difference of act between the path's ends. Exact. */
static void ig_one_layer(const mlp_net *n, const double *u, double *dint)
{
    for (size_t k = 0; k < n->h1; k++) {
        double z0 = n->z0[k];
        double mean_deriv;
        if (fabs(u[k]) > IG_TINY)
            mean_deriv = (act_fn(n->act, z0 + u[k]) - act_fn(n->act, z0)) / u[k];
        else
            mean_deriv = act_deriv(n->act, act_fn(n->act, z0 + 0.5 * u[k]));
        dint[k] = n->wo[k] * mean_deriv;
    }
}

/* Restores the heap property below 'i' of the 'n' values of 'v'. */
static void sift_down(double *v, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        double t;
        if (c >= n)
            return;
        if (c + 1 < n && v[c + 1] > v[c])
            c++;
        if (v[i] >= v[c])
            return;
        t = v[i];
        v[i] = v[c];
        v[c] = t;
        i = c;
    }
}

/* Sorts 'n' doubles in place, ascending (heapsort: no allocation, unlike
 * glibc's qsort, and O(n log n) for wide layers). */
static void sort_doubles(double *v, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(v, i, n);
    for (size_t end = n; end-- > 1;) {
        double t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift_down(v, 0, end);
    }
}

/*
 * Two ReLU layers: the network is piecewise linear along the path, so the
 * gradient is piecewise constant. Layer-1 units switch at a = -z0_k / u_k;
 * between those points layer 1 is linear in 'a', so each layer-2
 * pre-activation is c_v + a * s_v and switches at -c_v / s_v. On every
 * piece between consecutive switch points the gradient is evaluated once
 * at the piece's middle and weighted by its length. Exact. Uses
 * 2 * h1 + h2 + 4 doubles of 'tmp'.
 */
static void ig_relu_two_layers(const mlp_net *n, const double *u, double *dint, double *tmp)
{
    double *cut1 = tmp;              /* h1 + 2 */
    double *cut2 = cut1 + n->h1 + 2; /* h2 + 2 */
    double *g1 = cut2 + n->h2 + 2;   /* h1: gradient at layer-1 activations */
    size_t n1 = 0;

    cut1[n1++] = 0;
    cut1[n1++] = 1;
    for (size_t k = 0; k < n->h1; k++) {
        double a = u[k] != 0 ? -n->z0[k] / u[k] : 0;
        if (a > 0 && a < 1)
            cut1[n1++] = a;
    }
    sort_doubles(cut1, n1);
    for (size_t k = 0; k < n->h1; k++)
        dint[k] = 0;
    for (size_t i = 0; i + 1 < n1; i++) {
        double lo = cut1[i];
        double hi = cut1[i + 1];
        double mid = 0.5 * (lo + hi);
        size_t n2 = 0;
        if (!(hi > lo))
            continue;
        cut2[n2++] = lo;
        cut2[n2++] = hi;
        for (size_t v = 0; v < n->h2; v++) {
            const double *row = n->w2 + v * n->h1;
            double cv = n->b2[v];
            double sv = 0;
            for (size_t k = 0; k < n->h1; k++) {
                if (n->z0[k] + mid * u[k] > 0) {
                    cv += row[k] * n->z0[k];
                    sv += row[k] * u[k];
                }
            }
            if (sv != 0 && -cv / sv > lo && -cv / sv < hi)
                cut2[n2++] = -cv / sv;
        }
        sort_doubles(cut2, n2);
        for (size_t j = 0; j + 1 < n2; j++) {
            double lo2 = cut2[j];
            double hi2 = cut2[j + 1];
            double mid2 = 0.5 * (lo2 + hi2);
            if (!(hi2 > lo2))
                continue;
            for (size_t k = 0; k < n->h1; k++)
                g1[k] = 0;
            for (size_t v = 0; v < n->h2; v++) {
                const double *row = n->w2 + v * n->h1;
                double z = n->b2[v];
                for (size_t k = 0; k < n->h1; k++)
                    if (n->z0[k] + mid2 * u[k] > 0)
                        z += row[k] * (n->z0[k] + mid2 * u[k]);
                if (z > 0)
                    for (size_t k = 0; k < n->h1; k++)
                        g1[k] += n->wo[v] * row[k];
            }
            for (size_t k = 0; k < n->h1; k++)
                if (n->z0[k] + mid2 * u[k] > 0)
                    dint[k] += (hi2 - lo2) * g1[k];
        }
    }
}
/*
 * Two smooth (tanh) layers: composite two-point Gauss-Legendre with
 * CH_EXPLAIN_IG_STEPS / 2 segments and two nodes each, at the centre -/+
 * h / (2 sqrt(3)). It is exact for cubics on each segment, so the error
 * falls as h^4 (the midpoint rule's falls as h^2) for the same number of
 * evaluations. Each evaluation costs O(h1 * h2). Uses 2 * h1 + h2 doubles
 * of 'tmp'.
 */
static void ig_tanh_two_layers(const mlp_net *n, const double *u, double *dint, double *tmp)
{
    const size_t n_seg = CH_EXPLAIN_IG_STEPS / 2 > 0 ? CH_EXPLAIN_IG_STEPS / 2 : 1;
    const double h = 1.0 / (double)n_seg;
    const double off = h / (2.0 * sqrt(3.0));
    double *a1 = tmp;        /* h1: layer-1 activations at a node */
    double *g1 = a1 + n->h1; /* h1: gradient at layer-1 activations */

    for (size_t k = 0; k < n->h1; k++)
        dint[k] = 0;
    for (size_t s = 0; s < 2 * n_seg; s++) {
        double a = ((double)(s / 2) + 0.5) * h + (s % 2 == 0 ? -off : off);
        for (size_t k = 0; k < n->h1; k++) {
            a1[k] = act_fn(n->act, n->z0[k] + a * u[k]);
            g1[k] = 0;
        }
        for (size_t v = 0; v < n->h2; v++) {
            const double *row = n->w2 + v * n->h1;
            double z = n->b2[v];
            double d2;
            for (size_t k = 0; k < n->h1; k++)
                z += row[k] * a1[k];
            d2 = n->wo[v] * act_deriv(n->act, act_fn(n->act, z));
            for (size_t k = 0; k < n->h1; k++)
                g1[k] += d2 * row[k];
        }
        for (size_t k = 0; k < n->h1; k++)
            dint[k] += 0.5 * h * g1[k] * act_deriv(n->act, a1[k]);
    }
}

/*
 * Integrated gradients of the network from the baseline to 'x' into
 * 'phi' (n_feat values; see the top of the file). Uses 'ws->xa' and
 * 4 * h1 + 2 * h2 + 4 doubles of 'ws->h'.
 */
static void mlp_ig(const ch_explainer *e, const double *x, double *phi, ch_explain_ws *ws)
{
    const mlp_net *n = &e->net;
    double *u = ws->h;        /* h1: W1 (x - x0) */
    double *dint = u + n->h1; /* h1: integral of the gradient at layer-1 pre-activations */
    double *tmp = dint + n->h1;
    double *dx = ws->xa; /* x - x0 */

    for (size_t j = 0; j < e->n_feat; j++)
        dx[j] = x[j] - e->mean[j];
    for (size_t k = 0; k < n->h1; k++) {
        const double *row = n->w1 + k * e->n_feat;
        double s = 0;
        for (size_t j = 0; j < e->n_feat; j++)
            s += row[j] * dx[j];
        u[k] = s;
    }
    if (n->h2 == 0)
        ig_one_layer(n, u, dint);
    else if (n->act == ACT_RELU)
        ig_relu_two_layers(n, u, dint, tmp);
    else
        ig_tanh_two_layers(n, u, dint, tmp);
    for (size_t j = 0; j < e->n_feat; j++) {
        double g = 0;
        for (size_t k = 0; k < n->h1; k++)
            g += n->w1[k * e->n_feat + j] * dint[k];
        phi[j] = dx[j] * g;
    }
}

/* Margin of feature row 'x' by the model itself. */
static double margin_of(const ch_explainer *e, const double *x)
{
    double m = NAN;
    if (e->forest != NULL)
        return ch_forest_predict(e->forest, x);
    if (ch_model_predict_margin(e->model, x, 1, e->n_feat, &m, NULL) != CH_OK)
        return NAN;
    return m;
}

/* Contributions of feature row 'x' into 'phi'; returns the margin. */
static double contributions(const ch_explainer *e, const double *x, double *phi, ch_explain_ws *ws)
{
    switch (e->family) {
    case FAM_XGBOOST:
        return ch_forest_shap(e->forest, x, phi, ws->fws);
    case FAM_LOGREG:
        for (size_t j = 0; j < e->n_feat; j++)
            phi[j] = e->w[j] * (x[j] - e->mean[j]);
        break;
    default:
        mlp_ig(e, x, phi, ws);
        break;
    }
    phi[e->n_feat] = e->bias;
    return margin_of(e, x);
}

double ch_explain_contributions(const ch_explainer *e, const ch_value *vals, double *phi,
                                ch_explain_ws *ws)
{
    CH_ASSERT(ws->e == e);
    ch_pipeline_transform_record(e->pipe, vals, ws->x, NULL);
    return contributions(e, ws->x, phi, ws);
}

/* ---- text ------------------------------------------------------------------ */

/* A bounded string being built; once something did not fit, nothing more
 * is added, and text is never cut inside a UTF-8 sequence. */
typedef struct tbuf {
    char *p;
    size_t cap; /* bytes of 'p', including the NUL */
    size_t len;
    int full;
} tbuf;

static void tb_init(tbuf *t, char *p, size_t cap)
{
    t->p = p;
    t->cap = cap;
    t->len = 0;
    t->full = 0;
    p[0] = '\0';
}

static void tb_put(tbuf *t, const char *s, size_t n)
{
    size_t room;
    if (t->full)
        return;
    room = t->cap - 1 - t->len;
    if (n > room) {
        n = room;
        /* Back off to the start of the sequence the cut falls in. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        t->full = 1;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void tb_str(tbuf *t, const char *s)
{
    tb_put(t, s, strlen(s));
}

static void tb_int(tbuf *t, long v)
{
    char b[32];
    int n = snprintf(b, sizeof b, "%ld", v);
    tb_put(t, b, n > 0 ? (size_t)n : 0);
}

static const char *label_of(const ch_schema_col *c)
{
    return c->label != NULL && c->label[0] != '\0' ? c->label : c->name;
}

/* Writes the value 'v' of column 'c' as a person would say it. */
static void tb_value(tbuf *t, const ch_schema_col *c, const ch_value *v)
{
    char b[40];
    if (v->missing) {
        tb_str(t, "missing");
    } else if (c->kind == CH_KIND_BINARY) {
        tb_str(t, v->num != 0 ? "yes" : "no");
    } else if (c->kind == CH_KIND_CATEGORICAL) {
        tb_put(t, v->str != NULL ? v->str : "", v->str != NULL ? v->len : 0);
    } else {
        size_t n = ch_text_fmt_double(b, sizeof b, 8, v->num);
        tb_put(t, b, n < sizeof b ? n : sizeof b - 1);
    }
}

static int is_yes(const char *s)
{
    return ch_text_ieq(s, strlen(s), "yes");
}

/* Writes the phrase for setting alternative 'a', capitalized or not:
 * "Add tech support", "Switch contract to Two year", "Set <label> to
 * <value>". */
static void tb_action(tbuf *t, const ch_explainer *e, const alt *a, int capital)
{
    const ch_schema_col *c = ch_schema_col_ref(e->schema, a->col);
    if ((c->kind == CH_KIND_CATEGORICAL && is_yes(a->text)) ||
        (c->kind == CH_KIND_BINARY && a->v.num != 0)) {
        tb_str(t, capital ? "Add " : "add ");
        tb_str(t, label_of(c));
        return;
    }
    tb_str(t, c->kind == CH_KIND_CATEGORICAL ? (capital ? "Switch " : "switch ")
                                             : (capital ? "Set " : "set "));
    tb_str(t, label_of(c));
    tb_str(t, " to ");
    tb_value(t, c, &a->v);
}

static long percent(double p)
{
    return lround(100.0 * p);
}

/* ---- reasons ------------------------------------------------------------- */

/*
 * Rolls 'phi' up to schema columns in 'ws->col' and fills the top 'k'
 * columns by absolute contribution into 'out->reasons'. Ties keep schema
 * order.
 */
static void reasons(const ch_explainer *e, const ch_value *vals, const double *phi, size_t k,
                    ch_explanation *out, ch_explain_ws *ws)
{
    double *col = ws->col;
    size_t n = 0;

    for (size_t j = 0; j < e->n_cols; j++)
        col[j] = 0;
    for (size_t f = 0; f < e->n_feat; f++) {
        size_t n_src = 0;
        const uint32_t *src = ch_pipeline_feature_sources(e->pipe, f, &n_src);
        for (size_t s = 0; s < n_src; s++)
            col[src[s]] += phi[f] / (double)n_src;
    }
    /* Insertion into the first k places of 'order' by |contribution|. */
    for (size_t j = 0; j < e->n_cols; j++) {
        size_t i;
        if (!e->used[j])
            continue;
        i = n < k ? n++ : k;
        while (i > 0 && fabs(col[ws->order[i - 1]]) < fabs(col[j])) {
            if (i < k)
                ws->order[i] = ws->order[i - 1];
            i--;
        }
        if (i < k)
            ws->order[i] = j;
    }
    out->n_reasons = n;
    for (size_t r = 0; r < n; r++) {
        size_t j = ws->order[r];
        const ch_schema_col *c = ch_schema_col_ref(e->schema, j);
        ch_reason_item *it = &out->reasons[r];
        tbuf t;
        it->column = (int)j;
        it->logodds = col[j];
        it->points = 100.0 * (out->probability - ch_calibrator_apply(e->cal, out->margin - col[j]));
        it->raises = col[j] > 0;
        tb_init(&t, it->text, sizeof it->text);
        tb_str(&t, label_of(c));
        tb_str(&t, " is ");
        tb_value(&t, c, &vals[j]);
        tb_str(&t, it->raises ? ": raises churn risk" : ": lowers churn risk");
    }
}

/* ---- actions ----------------------------------------------------------- */

/* Whether alternative 'a' differs from the record's value. */
static int differs(const ch_explainer *e, const alt *a, const ch_value *v)
{
    if (v->missing)
        return 1;
    if (ch_schema_col_ref(e->schema, a->col)->kind == CH_KIND_CATEGORICAL)
        return v->str == NULL || v->len != a->v.len || memcmp(v->str, a->v.str, v->len) != 0;
    return v->num != a->v.num;
}

/* Inserts 'c' into the best 'k' of 'ws->best' ('*n' filled), by expected
 * value when 'by_value' and by drop otherwise; ties keep the first seen. */
static void keep_best(ch_explain_ws *ws, size_t *n, size_t k, int by_value, const cand *c)
{
    double key = by_value ? c->ev : c->drop;
    size_t i = *n < k ? (*n)++ : k;
    while (i > 0) {
        const cand *p = &ws->best[i - 1];
        double pk = by_value ? p->ev : p->drop;
        if (!(pk < key || (by_value && pk == key && p->drop < c->drop)))
            break;
        if (i < k)
            ws->best[i] = *p;
        i--;
    }
    if (i < k)
        ws->best[i] = *c;
}

/* Probability after setting alternative 'a0' (and 'a1' unless SIZE_MAX)
 * in the record copy 'ws->vals', which is restored from 'vals'. */
static double what_if(const ch_explainer *e, const ch_value *vals, size_t a0, size_t a1,
                      ch_explain_ws *ws)
{
    const alt *x = &e->alts[a0];
    const alt *y = a1 != SIZE_MAX ? &e->alts[a1] : NULL;
    double m;
    ws->vals[x->col] = x->v;
    if (y != NULL)
        ws->vals[y->col] = y->v;
    ch_pipeline_transform_record(e->pipe, ws->vals, ws->xa, NULL);
    m = margin_of(e, ws->xa);
    ws->vals[x->col] = vals[x->col];
    if (y != NULL)
        ws->vals[y->col] = vals[y->col];
    return ch_calibrator_apply(e->cal, m);
}

/*
 * Evaluates every single change and every pair of changes to two
 * different actionable columns, and fills the best 'k' with a positive
 * drop into 'out->actions'.
 */
static void actions(const ch_explainer *e, const ch_value *vals, size_t k, int by_value,
                    ch_explanation *out, ch_explain_ws *ws)
{
    size_t n_elig = 0;
    size_t n = 0;
    double revenue = 0;
    double gain;

    if (e->revenue_col >= 0 && !vals[e->revenue_col].missing && isfinite(vals[e->revenue_col].num))
        revenue = vals[e->revenue_col].num;
    gain = revenue * e->horizon * e->success_rate;
    memcpy(ws->vals, vals, e->n_cols * sizeof *vals);
    for (size_t i = 0; i < e->n_alts; i++)
        if (differs(e, &e->alts[i], &vals[e->alts[i].col]))
            ws->elig[n_elig++] = i;
    for (size_t i = 0; i < n_elig; i++) {
        for (size_t j = i; j < n_elig; j++) {
            size_t a0 = ws->elig[i];
            size_t a1 = j == i ? SIZE_MAX : ws->elig[j];
            cand c;
            if (a1 != SIZE_MAX && e->alts[a0].col == e->alts[a1].col)
                continue;
            c.a[0] = a0;
            c.a[1] = a1;
            c.p = what_if(e, vals, a0, a1, ws);
            c.drop = out->probability - c.p;
            /* Each change is an offer of its own, so a pair costs two. */
            c.ev = c.drop * gain - e->offer_cost * (a1 == SIZE_MAX ? 1.0 : 2.0);
            if (c.drop > 0)
                keep_best(ws, &n, k, by_value, &c);
        }
    }
    out->n_actions = n;
    for (size_t r = 0; r < n; r++) {
        const cand *c = &ws->best[r];
        ch_action_item *it = &out->actions[r];
        tbuf t;
        for (int s = 0; s < 2; s++) {
            it->column[s] = -1;
            it->value[s][0] = '\0';
            if (c->a[s] == SIZE_MAX)
                continue;
            it->column[s] = (int)e->alts[c->a[s]].col;
            tb_init(&t, it->value[s], sizeof it->value[s]);
            tb_str(&t, e->alts[c->a[s]].text);
        }
        it->probability = c->p;
        it->drop = c->drop;
        it->expected_value = c->ev;
        tb_init(&t, it->text, sizeof it->text);
        tb_action(&t, e, &e->alts[c->a[0]], 1);
        if (c->a[1] != SIZE_MAX) {
            tb_str(&t, " and ");
            tb_action(&t, e, &e->alts[c->a[1]], 0);
        }
        tb_str(&t, ": churn risk ");
        tb_int(&t, percent(out->probability));
        tb_str(&t, "% -> ");
        tb_int(&t, percent(c->p));
        tb_str(&t, "%");
    }
}

/* Fills 'out' for record 'vals' from its contributions 'phi' and margin
 * 'm'. */
static void finish(const ch_explainer *e, const ch_value *vals, const double *phi, double m,
                   size_t k_reasons, size_t k_actions, int by_value, ch_explanation *out,
                   ch_explain_ws *ws)
{
    out->margin = m;
    out->bias = phi[e->n_feat];
    out->probability = ch_calibrator_apply(e->cal, m);
    out->n_reasons = 0;
    out->n_actions = 0;
    if (k_reasons > 0)
        reasons(e, vals, phi, k_reasons, out, ws);
    if (k_actions > 0)
        actions(e, vals, k_actions, by_value, out, ws);
}

/*
 * BATCH_ROWS records at a time: transform them, take the contributions of
 * all of them (boosted trees: in one ch_forest_shap_batch() call, whose
 * rows share each walk of a tree), then finish each. A record gets the
 * same bits alone or in a batch (ch_forest_shap_batch() promises it).
 */
void ch_explain_records(const ch_explainer *e, const ch_value *vals, size_t n_records,
                        size_t k_reasons, size_t k_actions, int by_value, ch_explanation *out,
                        ch_explain_ws *ws)
{
    size_t nf = e->n_feat;

    CH_ASSERT(ws->e == e);
    if (k_reasons > CH_EXPLAIN_MAX_K)
        k_reasons = CH_EXPLAIN_MAX_K;
    if (k_actions > CH_EXPLAIN_MAX_K)
        k_actions = CH_EXPLAIN_MAX_K;
    for (size_t at = 0; at < n_records; at += BATCH_ROWS) {
        size_t nb = n_records - at < BATCH_ROWS ? n_records - at : BATCH_ROWS;
        const ch_value *v = vals + at * e->n_cols;
        for (size_t i = 0; i < nb; i++)
            ch_pipeline_transform_record(e->pipe, v + i * e->n_cols, ws->x + i * nf, NULL);
        if (e->family == FAM_XGBOOST) {
            ch_forest_shap_batch(e->forest, ws->x, nb, ws->phi, ws->m, ws->fws);
        } else {
            for (size_t i = 0; i < nb; i++)
                ws->m[i] = contributions(e, ws->x + i * nf, ws->phi + i * (nf + 1), ws);
        }
        for (size_t i = 0; i < nb; i++)
            finish(e, v + i * e->n_cols, ws->phi + i * (nf + 1), ws->m[i], k_reasons, k_actions,
                   by_value, &out[at + i], ws);
    }
}

void ch_explain_record(const ch_explainer *e, const ch_value *vals, size_t k_reasons,
                       size_t k_actions, int by_value, ch_explanation *out, ch_explain_ws *ws)
{
    ch_explain_records(e, vals, 1, k_reasons, k_actions, by_value, out, ws);
}
