/*
 * model_xgb.c -- the "xgboost" model family: gradient-boosted trees through
 * the XGBoost C API. This is the only file that includes xgboost/c_api.h;
 * nothing else sees a BoosterHandle, a DMatrix or XGBoost's error text.
 *
 * The state is one booster plus the number of features it was fitted on.
 * Every booster is configured the same way: binary:logistic, tree_method
 * hist, base_score 0.5 set explicitly, verbosity 0. base_score 0.5 makes
 * the base margin logit(0.5) = 0 exactly, so the margin of a model is the
 * plain sum of its trees' leaves: per-round margins add up during early
 * stopping, and margins of models fitted on different data are comparable
 * (XGBoost 2.x would otherwise estimate a base score from the labels).
 *
 * Invariants and why they hold:
 *   - Errors: XGBoost returns -1 and keeps the text in a thread-local
 *     string that the next call may overwrite, so xgb_error() copies it
 *     into the caller's ch_error immediately after the failing call.
 *   - Determinism: the seed goes to XGBoost's per-thread random engine,
 *     which a new booster reseeds when it is first configured, and
 *     seed_per_iteration is off; the saved JSON is written by XGBoost with
 *     sorted keys. Equal data, parameters and seed give the same bytes.
 *     With XGBoost 1.7.4 the thread count does not change them either
 *     (test_model_xgb.c checks 1 against 2 threads); the interface does
 *     not promise that.
 *   - Thread safety of predict: inplace prediction builds its proxy matrix
 *     per call and returns its result in a buffer that XGBoost keeps per
 *     (thread, booster), so concurrent calls on one booster are safe once
 *     the booster is configured. XGBoost configures lazily, behind a
 *     double-checked flag that is not atomic, so fit() and load() run one
 *     warm-up prediction before the state is published.
 *   - Doubles become floats only inside XGBoost: matrices are handed over
 *     as array interfaces of type f8, which XGBoost casts to float per
 *     value (the same rounding as a C cast, and what Python's DMatrix does
 *     with a float64 array). Labels and weights are converted here.
 *
 * Workload: fitted rarely (seconds), scored often. A fitted model predicts
 * with opts->n_threads threads per call; a loaded one with one thread per
 * call, because a server scores small batches from many threads at once.
 */
#include "ch/model.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xgboost/c_api.h>

#include "ch/alloc.h"

/* Largest embedded model load() turns back into text, in bytes. */
#ifndef CH_XGB_MAX_MODEL_BYTES
#define CH_XGB_MAX_MODEL_BYTES ((size_t)1 << 30)
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define XGB_F8 ">f8"
#else
#define XGB_F8 "<f8"
#endif

typedef struct xgb_state {
    BoosterHandle booster; /* owned; immutable once published */
    size_t n_features;     /* columns the booster was fitted on */
} xgb_state;

/* One hyperparameter: its range, and whether XGBoost takes it as it is. */
typedef struct xgb_param {
    const char *name;
    double def;  /* default */
    double lo;   /* smallest allowed value (exclusive when 'lo_open') */
    double hi;   /* largest allowed value */
    int lo_open; /* 1: the value must be > 'lo' */
    int integer; /* 1: the value must be a whole number */
    int to_xgb;  /* 1: passed to XGBoosterSetParam under the same name */
} xgb_param;

/* Upper bound for unbounded non-negative parameters: XGBoost stores them
 * as floats, so anything near FLT_MAX would become infinite. */
#define XGB_BIG 1e30

static const xgb_param xgb_params[] = {
    {"max_depth", 4, 1, 32, 0, 1, 1},
    {"eta", 0.05, 0, 1, 1, 0, 1},
    {"n_rounds", 1000, 1, 100000, 0, 1, 0},
    {"early_stopping_rounds", 50, 1, 100000, 0, 1, 0},
    {"min_child_weight", 1, 0, XGB_BIG, 0, 0, 1},
    {"subsample", 0.8, 0, 1, 1, 0, 1},
    {"colsample_bytree", 0.8, 0, 1, 1, 0, 1},
    {"lambda", 1, 0, XGB_BIG, 0, 0, 1},
    {"alpha", 0, 0, XGB_BIG, 0, 0, 1},
    {"gamma", 0, 0, XGB_BIG, 0, 0, 1},
    {"max_bin", 256, 2, 65536, 0, 1, 1},
};
#define N_XGB_PARAMS (sizeof xgb_params / sizeof xgb_params[0])

/*
 * Copies the text of the XGBoost error just raised into 'err' as
 * CH_EMODEL, with the context 'fmt'. Must be called right after the call
 * that returned -1: the text lives in XGBoost's thread-local storage.
 * XGBoost's messages start with "[hh:mm:ss] path/file.cc:123: " and may
 * end in a stack trace; both are dropped so the useful part fits.
 */
static ch_err xgb_error(ch_error *err, const char *fmt, ...) CH_PRINTF(2, 3);
static ch_err xgb_error(ch_error *err, const char *fmt, ...)
{
    const char *msg = XGBGetLastError();
    char ctx[128];
    size_t len;
    va_list ap;

    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    if (msg[0] == '[') {
        const char *close = strstr(msg, "] ");
        if (close != NULL)
            msg = close + 2;
    }
    /* A "file.cc:123: " location has no space before its ": ". */
    {
        const char *colon = strstr(msg, ": ");
        if (colon != NULL && memchr(msg, ' ', (size_t)(colon - msg)) == NULL &&
            memchr(msg, ':', (size_t)(colon - msg)) != NULL)
            msg = colon + 2;
    }
    len = strcspn(msg, "\n");
    while (len > 0 && msg[len - 1] == ' ')
        len--;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    return ch_error_set(err, CH_EMODEL, "xgboost: %s: %.*s", ctx, (int)len, msg);
}

/* The value of parameter 'name' (which must be in xgb_params) in 'p', or
 * its default. */
static double param_value(const ch_params *p, const char *name)
{
    for (size_t k = 0; k < N_XGB_PARAMS; k++)
        if (strcmp(name, xgb_params[k].name) == 0)
            return ch_params_get(p, name, xgb_params[k].def);
    ch_panic("xgboost: no parameter \"%s\"", name);
}

/* Checks every parameter in 'p' against xgb_params. */
static ch_err xgb_check(const ch_params *p, ch_error *err)
{
    for (size_t i = 0; i < p->n; i++) {
        const xgb_param *d = NULL;
        double v = p->values[i];
        for (size_t k = 0; k < N_XGB_PARAMS; k++)
            if (strcmp(p->names[i], xgb_params[k].name) == 0)
                d = &xgb_params[k];
        if (d == NULL)
            return ch_error_set(err, CH_EINVAL, "xgboost: unknown parameter \"%s\"", p->names[i]);
        if (!isfinite(v) || (d->lo_open ? !(v > d->lo) : !(v >= d->lo)) || !(v <= d->hi))
            return ch_error_set(err, CH_EINVAL,
                                "xgboost: parameter \"%s\" is %g, must be in %c%g, %g]", d->name, v,
                                d->lo_open ? '(' : '[', d->lo, d->hi);
        if (d->integer && v != floor(v))
            return ch_error_set(err, CH_EINVAL,
                                "xgboost: parameter \"%s\" is %g, must be a whole number", d->name,
                                v);
    }
    return CH_OK;
}

/* Sets one booster parameter, translating a failure. */
static ch_err set_param(BoosterHandle b, const char *name, const char *value, ch_error *err)
{
    if (XGBoosterSetParam(b, name, value) != 0)
        return xgb_error(err, "setting %s=%s", name, value);
    return CH_OK;
}

/* Sets the parameters every booster of this family gets, plus the
 * hyperparameters of 'p' (defaults for absent ones), 'n_threads' and
 * 'seed'. */
static ch_err configure(BoosterHandle b, const ch_params *p, int n_threads, uint64_t seed,
                        ch_error *err)
{
    static const char *const fixed[][2] = {
        {"verbosity", "0"},    {"objective", "binary:logistic"}, {"tree_method", "hist"},
        {"base_score", "0.5"}, {"eval_metric", "logloss"},       {"seed_per_iteration", "0"},
    };
    char num[32];
    ch_err rc;

    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if ((rc = set_param(b, fixed[i][0], fixed[i][1], err)) != CH_OK)
            return rc;
    snprintf(num, sizeof num, "%d", n_threads > 0 ? n_threads : 1);
    if ((rc = set_param(b, "nthread", num, err)) != CH_OK)
        return rc;
    /* XGBoost seeds a 32-bit Mersenne twister with the seed, so only its
     * low 32 bits count (1 and 1 + 2^32 give the same model). Folding the
     * high half in keeps every seed below 2^32 as it is and lets the rest
     * of the 64 bits matter. */
    snprintf(num, sizeof num, "%" PRIu64, (seed ^ (seed >> 32)) & 0xffffffffu);
    if ((rc = set_param(b, "seed", num, err)) != CH_OK)
        return rc;
    for (size_t k = 0; k < N_XGB_PARAMS; k++) {
        const xgb_param *d = &xgb_params[k];
        if (!d->to_xgb)
            continue;
        ch_fmt_double(num, param_value(p, d->name));
        if ((rc = set_param(b, d->name, num, err)) != CH_OK)
            return rc;
    }
    return CH_OK;
}

/* Writes the __array_interface__ of a C-contiguous 'n_rows' x 'n_cols'
 * matrix of doubles at 'x' into 'out' (at least 160 bytes). */
static void array_interface(char *out, size_t cap, const double *x, size_t n_rows, size_t n_cols)
{
    snprintf(out, cap,
             "{\"data\": [%" PRIuPTR ", true], \"shape\": [%zu, %zu], \"typestr\": \"" XGB_F8
             "\", \"version\": 3}",
             (uintptr_t)x, n_rows, n_cols);
}

/*
 * Margins of 'b' for the 'n_rows' rows of 'x' ('n_features' wide), using
 * boosting rounds [it_begin, it_end) (0, 0: all). On success '*res' points
 * into XGBoost's buffer for this thread and booster, valid until the next
 * prediction with 'b' on this thread. Errors: CH_EMODEL.
 */
static ch_err margins(BoosterHandle b, const double *x, size_t n_rows, size_t n_features,
                      int it_begin, int it_end, const float **res, ch_error *err)
{
    char arr[192];
    char cfg[192];
    const bst_ulong *shape = NULL;
    bst_ulong dim = 0;
    const float *out = NULL;

    array_interface(arr, sizeof arr, x, n_rows, n_features);
    snprintf(cfg, sizeof cfg,
             "{\"type\": 1, \"training\": false, \"iteration_begin\": %d, \"iteration_end\": %d, "
             "\"strict_shape\": false, \"missing\": NaN, \"cache_id\": 0}",
             it_begin, it_end);
    if (XGBoosterPredictFromDense(b, arr, cfg, NULL, &shape, &dim, &out) != 0)
        return xgb_error(err, "predicting %zu rows", n_rows);
    if (dim < 1 || shape[0] != n_rows || (dim == 2 && shape[1] != 1) || dim > 2)
        return ch_error_set(err, CH_EMODEL, "xgboost: prediction has an unexpected shape");
    *res = out;
    return CH_OK;
}

/* Predicts one row of zeros, so that XGBoost finishes its lazy
 * configuration before other threads can see 'b'. */
static ch_err warm_up(BoosterHandle b, size_t n_features, ch_error *err)
{
    double *row = ch_calloc(n_features, sizeof *row);
    const float *res;
    ch_err rc;

    if (row == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    rc = margins(b, row, 1, n_features, 0, 0, &res, err);
    ch_free(row);
    return rc;
}

/* Weighted mean log loss of margins 'm' against labels 'y' and weights
 * 'w' (NULL: all 1), in double precision. */
static double log_loss(const double *m, const double *y, const double *w, size_t n)
{
    double sum = 0;
    double sum_w = 0;
    for (size_t i = 0; i < n; i++) {
        /* log(1 + exp(m)) - y m, without overflow. */
        double sp = m[i] > 0 ? m[i] + log1p(exp(-m[i])) : log1p(exp(m[i]));
        double wi = w != NULL ? w[i] : 1.0;
        sum += wi * (sp - y[i] * m[i]);
        sum_w += wi;
    }
    return sum / sum_w;
}

/* A training DMatrix with labels and weights from 'd'. */
static ch_err make_dmatrix(const ch_dataset *d, int n_threads, DMatrixHandle *out, ch_error *err)
{
    char arr[192];
    char cfg[64];
    DMatrixHandle m = NULL;
    float *buf = NULL;
    ch_err rc = CH_OK;

    array_interface(arr, sizeof arr, d->x, d->n_rows, d->n_features);
    snprintf(cfg, sizeof cfg, "{\"missing\": NaN, \"nthread\": %d}", n_threads > 0 ? n_threads : 1);
    if (XGDMatrixCreateFromDense(arr, cfg, &m) != 0)
        return xgb_error(err, "creating the training matrix (%zu x %zu)", d->n_rows, d->n_features);
    buf = ch_malloc_array(d->n_rows, sizeof *buf);
    if (buf == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < d->n_rows; i++)
        buf[i] = (float)d->y[i];
    if (XGDMatrixSetFloatInfo(m, "label", buf, d->n_rows) != 0) {
        rc = xgb_error(err, "setting labels");
        goto done;
    }
    if (d->w != NULL) {
        for (size_t i = 0; i < d->n_rows; i++)
            buf[i] = (float)d->w[i];
        if (XGDMatrixSetFloatInfo(m, "weight", buf, d->n_rows) != 0) {
            rc = xgb_error(err, "setting weights");
            goto done;
        }
    }
done:
    ch_free(buf);
    if (rc != CH_OK) {
        XGDMatrixFree(m);
        return rc;
    }
    *out = m;
    return CH_OK;
}

/*
 * Boosts up to n_rounds rounds on 'train'. With 'o->valid', the weighted
 * log loss on it is computed after every round from margins accumulated
 * here in double (each round predicts only its own trees, which add up
 * because the base margin is 0), training stops after
 * early_stopping_rounds rounds without a strict improvement, and the
 * booster is sliced to the best prefix. 'info->valid_loss' is then
 * recomputed from the kept model's own predictions, so it is exactly
 * what a caller gets from the saved model. The input was validated by
 * ch_model_fit().
 */
static ch_err xgb_fit(const ch_params *p, const ch_dataset *train, const ch_model_fit_opts *o,
                      void **state, ch_model_fit_info *info, ch_error *err)
{
    const ch_dataset *valid = o->valid;
    int n_rounds = (int)param_value(p, "n_rounds");
    int patience = (int)param_value(p, "early_stopping_rounds");
    DMatrixHandle dtrain = NULL;
    BoosterHandle b = NULL;
    xgb_state *st = NULL;
    double *vm = NULL;
    double best_loss = INFINITY;
    int best = -1;
    ch_err rc;

    if ((rc = make_dmatrix(train, o->n_threads, &dtrain, err)) != CH_OK)
        return rc;
    /* Passing the training matrix lets XGBoost cache its predictions, so
     * each round's gradients cost one tree, not the whole model. */
    if (XGBoosterCreate(&dtrain, 1, &b) != 0) {
        rc = xgb_error(err, "creating the booster");
        goto done;
    }
    if ((rc = configure(b, p, o->n_threads, o->seed, err)) != CH_OK)
        goto done;
    if (valid != NULL) {
        vm = ch_calloc(valid->n_rows, sizeof *vm);
        if (vm == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
    }
    for (int it = 0; it < n_rounds; it++) {
        const float *res;
        double loss;
        if (XGBoosterUpdateOneIter(b, it, dtrain) != 0) {
            rc = xgb_error(err, "training round %d", it);
            goto done;
        }
        if (valid == NULL)
            continue;
        rc = margins(b, valid->x, valid->n_rows, valid->n_features, it, it + 1, &res, err);
        if (rc != CH_OK)
            goto done;
        for (size_t i = 0; i < valid->n_rows; i++)
            vm[i] += (double)res[i];
        loss = log_loss(vm, valid->y, valid->w, valid->n_rows);
        if (loss < best_loss) {
            best_loss = loss;
            best = it;
        } else if (it - best >= patience) {
            break;
        }
    }
    if (valid != NULL) {
        int done_rounds = 0;
        if (XGBoosterBoostedRounds(b, &done_rounds) != 0) {
            rc = xgb_error(err, "counting rounds");
            goto done;
        }
        if (best < 0) /* only when every loss was NaN, which finite margins exclude */
            best = 0;
        if (best + 1 < done_rounds) {
            BoosterHandle cut = NULL;
            int r = XGBoosterSlice(b, 0, best + 1, 1, &cut);
            if (r == -1) {
                rc = xgb_error(err, "keeping rounds [0, %d)", best + 1);
                goto done;
            }
            if (r != 0) {
                rc = ch_error_set(err, CH_EMODEL, "xgboost: rounds [0, %d) out of range (%d)",
                                  best + 1, done_rounds);
                goto done;
            }
            XGBoosterFree(b);
            b = cut;
        }
    }
    if ((rc = warm_up(b, train->n_features, err)) != CH_OK)
        goto done;
    if (valid != NULL) {
        const float *res;
        rc = margins(b, valid->x, valid->n_rows, valid->n_features, 0, 0, &res, err);
        if (rc != CH_OK)
            goto done;
        for (size_t i = 0; i < valid->n_rows; i++)
            vm[i] = (double)res[i];
        info->valid_loss = log_loss(vm, valid->y, valid->w, valid->n_rows);
        info->best_iteration = best + 1;
    } else {
        info->best_iteration = n_rounds;
    }
    st = ch_malloc(sizeof *st);
    if (st == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    st->booster = b;
    st->n_features = train->n_features;
    b = NULL;
    *state = st;
done:
    ch_free(vm);
    if (b != NULL)
        XGBoosterFree(b);
    XGDMatrixFree(dtrain);
    return rc;
}

/* Margins for 'n_rows' rows of 'x'. Safe from many threads at once on
 * one state (see the file comment). Errors: CH_EINVAL (width), CH_EMODEL. */
static ch_err xgb_predict(const void *state, const double *x, size_t n_rows, size_t n_features,
                          double *out, ch_error *err)
{
    const xgb_state *st = state;
    const float *res;
    ch_err rc;

    if (n_features != st->n_features)
        return ch_error_set(err, CH_EINVAL, "xgboost: model has %zu features, input has %zu",
                            st->n_features, n_features);
    if (n_rows == 0)
        return CH_OK;
    if ((rc = margins(st->booster, x, n_rows, n_features, 0, 0, &res, err)) != CH_OK)
        return rc;
    for (size_t i = 0; i < n_rows; i++)
        out[i] = (double)res[i];
    return CH_OK;
}

/*
 * Appends the booster in XGBoost's JSON model format, as a JSON object
 * that Python's xgboost.Booster(model_file=...) reads as it is. The save
 * interface has no ch_error, so an XGBoost failure (in practice only out
 * of memory inside XGBoost) empties 'b' and leaves CH_EMODEL as its
 * sticky status: a broken document is never produced.
 */
static ch_err xgb_save(const void *state, ch_buf *b)
{
    const xgb_state *st = state;
    bst_ulong len = 0;
    const char *text = NULL;

    if (XGBoosterSaveModelToBuffer(st->booster, "{\"format\": \"json\"}", &len, &text) != 0 ||
        len == 0 || text[0] != '{') {
        if (ch_buf_status(b) == CH_OK) {
            ch_buf_reset(b);
            b->err = CH_EMODEL;
        }
        return ch_buf_status(b);
    }
    return ch_buf_append(b, text, len);
}

/*
 * Loads what xgb_save() wrote: 'node' is dumped back to text and handed
 * to XGBoost. The objective must be binary:logistic (otherwise margins
 * would not be log-odds) and the model must expect 'n_features' features.
 * Errors: CH_EFORMAT (not an XGBoost model object), CH_EMODEL, CH_ENOMEM.
 */
static ch_err xgb_load(const ch_json *node, size_t n_features, void **state, ch_error *err)
{
    const char *obj;
    BoosterHandle b = NULL;
    bst_ulong n_model = 0;
    xgb_state *st;
    ch_buf text;
    ch_err rc;

    if (ch_json_typeof(node) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "xgboost: state must be an XGBoost JSON model, not %s",
                            ch_json_type_name(ch_json_typeof(node)));
    obj = ch_json_str(ch_json_get(ch_json_get(ch_json_get(node, "learner"), "objective"), "name"),
                      NULL);
    if (obj == NULL)
        return ch_error_set(err, CH_EFORMAT, "xgboost: state has no learner.objective.name");
    if (strcmp(obj, "binary:logistic") != 0)
        return ch_error_set(err, CH_EMODEL, "xgboost: objective is \"%s\", not binary:logistic",
                            obj);
    ch_buf_init(&text, CH_XGB_MAX_MODEL_BYTES);
    if ((rc = ch_json_dump(node, &text)) != CH_OK) {
        ch_buf_reset(&text);
        return ch_error_set(err, rc, "xgboost: model text: %s", ch_strerror(rc));
    }
    if (XGBoosterCreate(NULL, 0, &b) != 0) {
        rc = xgb_error(err, "creating the booster");
        goto done;
    }
    if ((rc = set_param(b, "verbosity", "0", err)) != CH_OK)
        goto done;
    if ((rc = set_param(b, "nthread", "1", err)) != CH_OK)
        goto done;
    if (XGBoosterLoadModelFromBuffer(b, text.data, text.len) != 0) {
        rc = xgb_error(err, "loading the model");
        goto done;
    }
    if (XGBoosterGetNumFeature(b, &n_model) != 0) {
        rc = xgb_error(err, "reading the number of features");
        goto done;
    }
    if (n_model != n_features) {
        rc = ch_error_set(err, CH_EMODEL, "xgboost: model expects %" PRIu64 " features, got %zu",
                          (uint64_t)n_model, n_features);
        goto done;
    }
    if ((rc = warm_up(b, n_features, err)) != CH_OK)
        goto done;
    st = ch_malloc(sizeof *st);
    if (st == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    st->booster = b;
    st->n_features = n_features;
    b = NULL;
    *state = st;
done:
    ch_buf_reset(&text);
    if (b != NULL)
        XGBoosterFree(b);
    return rc;
}

static void xgb_free(void *state)
{
    xgb_state *st = state;
    if (st == NULL)
        return;
    XGBoosterFree(st->booster);
    ch_free(st);
}

const ch_model_ops ch_model_xgboost = {
    "xgboost", 0, xgb_check, xgb_fit, xgb_predict, xgb_save, xgb_load, xgb_free, "n_rounds",
};
