/*
 * model_linear.c -- the "logreg" family: L2-regularized logistic regression
 * trained by liblinear.
 *
 * This is the only file that includes <linear.h>. liblinear is used for
 * training only, and kept on a short leash:
 *   - Its print function is process-global state. It is set once, through
 *     pthread_once, to a function that discards everything, so the library
 *     never prints and concurrent fits never race on it. (Helgrind does not
 *     model pthread_once and reports the later reads in train() as a race;
 *     that report is a false positive.)
 *   - Its save_model()/load_model() switch the process locale, which is not
 *     thread-safe and breaks number formatting elsewhere. They are never
 *     called: the fitted weights are copied out of liblinear's model at once,
 *     the liblinear model is freed, and saving, loading and prediction work
 *     on that copy. Prediction is one dot product per row (margin = w.x + b),
 *     allocation-free and thread-safe.
 *   - check_parameter() runs before train(); its message becomes CH_EINVAL.
 *
 * The objective is liblinear's L2R_LR (primal trust-region Newton, which is
 * deterministic):
 *     min 0.5 * ||[w, b]||^2 + C * sum_i cw(y_i) * log(1 + exp(-s_i (w.x_i + b)))
 * with s_i = +1 for class 1 and -1 for class 0. The intercept is an extra
 * feature of constant value 1 (liblinear's "bias" 1), so liblinear 2.30
 * regularizes it like any weight. With standardized features and C around
 * 1 this shifts the intercept slightly towards 0; it is the price of using
 * the library as it is.
 *
 * liblinear 2.30 has no per-instance weights, only per-class weights that
 * scale C. The dataset's row weights are therefore accepted only when they
 * are constant within each class (class weights, which is how the pipeline
 * passes them); anything else is CH_EINVAL rather than a silent
 * approximation.
 *
 * Workload: fitted a few dozen times per search (once per fold and
 * parameter set, possibly from several threads at once), scored far more
 * often than fitted.
 */
#include "ch/model.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <linear.h>

#include "ch/alloc.h"

#define LR_DEFAULT_C   1.0
#define LR_DEFAULT_EPS 1e-4

/* A fitted model: margin = w.x + b, signs already set so that a positive
 * margin means class 1. */
typedef struct lr_state {
    size_t n_features; /* length of 'w' */
    double b;          /* intercept */
    double w[];        /* one weight per feature */
} lr_state;

/* ---- liblinear's global state --------------------------------------------- */

static pthread_once_t print_once = PTHREAD_ONCE_INIT;

static void print_nothing(const char *s)
{
    (void)s;
}

static void silence_liblinear(void)
{
    set_print_string_function(print_nothing);
}

/* ---- parameters ----------------------------------------------------------- */

/*
 * Reads 'p' into '*C' and '*eps', applying defaults. Rejects unknown names
 * and values that are not finite and positive (CH_EINVAL).
 */
static ch_err read_params(const ch_params *p, double *C, double *eps, ch_error *err)
{
    for (size_t i = 0; i < p->n; i++) {
        const char *name = p->names[i];
        double v = p->values[i];
        if (strcmp(name, "C") != 0 && strcmp(name, "eps") != 0)
            return ch_error_set(err, CH_EINVAL, "logreg: unknown parameter \"%s\" (known: C, eps)",
                                name);
        if (!isfinite(v) || !(v > 0))
            return ch_error_set(err, CH_EINVAL, "logreg: parameter %s must be > 0, got %g", name,
                                v);
    }
    *C = ch_params_get(p, "C", LR_DEFAULT_C);
    *eps = ch_params_get(p, "eps", LR_DEFAULT_EPS);
    return CH_OK;
}

static ch_err lr_check(const ch_params *p, ch_error *err)
{
    double C;
    double eps;
    return read_params(p, &C, &eps, err);
}

/* ---- fitting -------------------------------------------------------------- */

/*
 * Derives the two class weights from the row weights of 'd' into 'cw'
 * (cw[0] for class 0, cw[1] for class 1). Without row weights both are 1.
 * Returns CH_EINVAL when the weights differ within a class, since liblinear
 * 2.30 cannot weight single rows. Labels are already checked to be 0/1.
 */
static ch_err class_weights(const ch_dataset *d, double cw[2], ch_error *err)
{
    int seen[2] = {0, 0};
    cw[0] = 1.0;
    cw[1] = 1.0;
    if (d->w == NULL)
        return CH_OK;
    for (size_t i = 0; i < d->n_rows; i++) {
        int c = d->y[i] == 1.0;
        if (!seen[c]) {
            seen[c] = 1;
            cw[c] = d->w[i];
        } else if (d->w[i] != cw[c]) {
            return ch_error_set(err, CH_EINVAL,
                                "logreg supports class weights only: row weights must be equal "
                                "within each class (row %zu has %g, class %d has %g)",
                                i, d->w[i], c, cw[c]);
        }
    }
    return CH_OK;
}

/*
 * Builds liblinear's problem for 'd' in 'prob': one feature_node row per
 * data row, holding the non-zero features (1-based indexes), then the bias
 * feature (index n_features + 1, value 1), then the terminator (index -1).
 * Labels stay 0/1. The three arrays go to '*nodes', '*rows' and '*labels';
 * the caller frees them with ch_free() after train() has returned.
 */
static ch_err build_problem(const ch_dataset *d, struct problem *prob, struct feature_node **nodes,
                            struct feature_node ***rows, double **labels, ch_error *err)
{
    size_t nnz = 0;
    size_t k = 0;
    struct feature_node *nd;
    struct feature_node **rw;
    double *lab;

    for (size_t i = 0; i < d->n_rows * d->n_features; i++)
        nnz += d->x[i] != 0.0;
    nd = ch_malloc_array(nnz + 2 * d->n_rows, sizeof *nd);
    rw = ch_malloc_array(d->n_rows, sizeof *rw);
    lab = ch_malloc_array(d->n_rows, sizeof *lab);
    if (nd == NULL || rw == NULL || lab == NULL) {
        ch_free(nd);
        ch_free(rw);
        ch_free(lab);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < d->n_rows; i++) {
        const double *x = d->x + i * d->n_features;
        rw[i] = nd + k;
        for (size_t j = 0; j < d->n_features; j++) {
            /* Exact zeros contribute nothing to w.x; skipping them saves
             * time on one-hot blocks. */
            if (x[j] != 0.0) {
                nd[k].index = (int)(j + 1);
                nd[k].value = x[j];
                k++;
            }
        }
        nd[k].index = (int)(d->n_features + 1);
        nd[k].value = 1.0;
        k++;
        nd[k].index = -1;
        nd[k].value = 0.0;
        k++;
        lab[i] = d->y[i];
    }
    prob->l = (int)d->n_rows;
    prob->n = (int)(d->n_features + 1);
    prob->y = lab;
    prob->x = rw;
    prob->bias = 1.0;
    *nodes = nd;
    *rows = rw;
    *labels = lab;
    return CH_OK;
}

/*
 * Copies the weights of a two-class liblinear model 'm' (fitted on
 * 'n_features' features plus the bias feature) into a new state in
 * '*out'. liblinear orders the classes by first appearance in the
 * training labels and its decision value is positive for label[0], so the
 * signs are flipped when class 0 came first.
 */
static ch_err copy_model(const struct model *m, size_t n_features, lr_state **out, ch_error *err)
{
    lr_state *s;
    double sign;

    if (m->nr_class != 2 || m->nr_feature != (int)n_features || m->w == NULL || m->label == NULL ||
        (m->label[0] != 0 && m->label[0] != 1))
        return ch_error_set(err, CH_EMODEL,
                            "logreg: liblinear returned an unexpected model "
                            "(%d classes, %d features)",
                            m->nr_class, m->nr_feature);
    sign = m->label[0] == 1 ? 1.0 : -1.0;
    s = ch_malloc(sizeof *s + n_features * sizeof s->w[0]);
    if (s == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    s->n_features = n_features;
    for (size_t j = 0; j < n_features; j++)
        s->w[j] = sign * m->w[j];
    s->b = sign * m->w[n_features] * m->bias;
    for (size_t j = 0; j < n_features; j++) {
        if (!isfinite(s->w[j])) {
            ch_free(s);
            return ch_error_set(err, CH_EMODEL, "logreg: liblinear produced a non-finite weight");
        }
    }
    if (!isfinite(s->b)) {
        ch_free(s);
        return ch_error_set(err, CH_EMODEL, "logreg: liblinear produced a non-finite intercept");
    }
    *out = s;
    return CH_OK;
}

/*
 * Fits the training set 'd' with the parameters 'p'. 'o' is not used: the
 * solver is deterministic and single-threaded, and there is nothing to
 * stop early. 'info' reports no iteration and no validation loss.
 *
 * liblinear allocates with C++ new inside train(); an out-of-memory there
 * aborts the process instead of returning CH_ENOMEM. Our own buffers, the
 * copy of the input (about 16 bytes per non-zero feature), are allocated
 * first and fail cleanly.
 */
static ch_err lr_fit(const ch_params *p, const ch_dataset *d, const ch_model_fit_opts *o,
                     void **state, ch_model_fit_info *info, ch_error *err)
{
    struct problem prob;
    struct parameter param;
    struct feature_node *nodes = NULL;
    struct feature_node **rows = NULL;
    double *labels = NULL;
    struct model *m = NULL;
    int weight_label[2] = {0, 1};
    double cw[2];
    double C;
    double eps;
    const char *msg;
    lr_state *s = NULL;
    ch_err rc;

    (void)o;
    info->best_iteration = 0;
    info->valid_loss = NAN;
    rc = read_params(p, &C, &eps, err);
    if (rc != CH_OK)
        return rc;
    if (d->n_rows > INT_MAX || d->n_features >= INT_MAX - 1 ||
        d->n_rows * d->n_features / d->n_features != d->n_rows)
        return ch_error_set(err, CH_ELIMIT,
                            "logreg: %zu rows x %zu features is too large for liblinear", d->n_rows,
                            d->n_features);
    rc = class_weights(d, cw, err);
    if (rc != CH_OK)
        return rc;
    rc = build_problem(d, &prob, &nodes, &rows, &labels, err);
    if (rc != CH_OK)
        return rc;

    memset(&param, 0, sizeof param);
    param.solver_type = L2R_LR;
    param.eps = eps;
    param.C = C;
    param.nr_weight = 2;
    param.weight_label = weight_label;
    param.weight = cw;
    param.p = 0.1; /* SVR only; check_parameter() wants it >= 0 */
    param.init_sol = NULL;

    msg = check_parameter(&prob, &param);
    if (msg != NULL) {
        rc = ch_error_set(err, CH_EINVAL, "logreg: liblinear rejects the parameters: %s", msg);
        goto done;
    }
    pthread_once(&print_once, silence_liblinear);
    m = train(&prob, &param);
    if (m == NULL) {
        rc = ch_error_set(err, CH_EMODEL, "logreg: liblinear training failed");
        goto done;
    }
    rc = copy_model(m, d->n_features, &s, err);
    if (rc != CH_OK)
        goto done;
    *state = s;

done:
    /* The model's copy of 'param' points at our stack arrays; freeing the
     * model frees only its weights and labels. */
    if (m != NULL)
        free_and_destroy_model(&m);
    ch_free(labels);
    ch_free(rows);
    ch_free(nodes);
    return rc;
}

/* ---- prediction ----------------------------------------------------------- */

/* Writes w.x + b for each of the 'n_rows' rows of 'x'. */
static ch_err lr_predict(const void *state, const double *x, size_t n_rows, size_t n_features,
                         double *out, ch_error *err)
{
    const lr_state *s = state;
    if (n_features != s->n_features)
        return ch_error_set(err, CH_EINVAL, "logreg: model has %zu features, got %zu",
                            s->n_features, n_features);
    for (size_t i = 0; i < n_rows; i++) {
        const double *r = x + i * n_features;
        double m = s->b;
        for (size_t j = 0; j < n_features; j++)
            m += s->w[j] * r[j];
        out[i] = m;
    }
    return CH_OK;
}

/* ---- saving and loading --------------------------------------------------- */

/* Writes {"w": [...], "b": ..., "n_features": ...} with round-trip doubles. */
static ch_err lr_save(const void *state, ch_buf *b)
{
    const lr_state *s = state;
    ch_buf_puts(b, "{\"w\": [");
    for (size_t j = 0; j < s->n_features; j++) {
        if (j > 0)
            ch_buf_puts(b, ", ");
        ch_buf_json_num(b, s->w[j]);
    }
    ch_buf_puts(b, "], \"b\": ");
    ch_buf_json_num(b, s->b);
    ch_buf_printf(b, ", \"n_features\": %zu}", s->n_features);
    return ch_buf_status(b);
}

/*
 * Reads what lr_save() wrote. Errors: CH_EFORMAT (not that shape, or a
 * number that is not finite), CH_EMODEL (the model was fitted on a number
 * of features other than 'n_features'), CH_ENOMEM.
 */
static ch_err lr_load(const ch_json *node, size_t n_features, void **state, ch_error *err)
{
    const ch_json *w = ch_json_get(node, "w");
    double nf;
    double b;
    lr_state *s;

    if (ch_json_typeof(node) != CH_JSON_OBJECT || ch_json_typeof(w) != CH_JSON_ARRAY ||
        ch_json_num(ch_json_get(node, "b"), &b) != 0 ||
        ch_json_num(ch_json_get(node, "n_features"), &nf) != 0)
        return ch_error_set(err, CH_EFORMAT,
                            "logreg: state must be {\"w\": [numbers], \"b\": number, "
                            "\"n_features\": number}");
    if (!ch_json_is_int(ch_json_get(node, "n_features")) || nf < 1 || nf != (double)ch_json_len(w))
        return ch_error_set(err, CH_EFORMAT,
                            "logreg: \"n_features\" (%g) must equal the length "
                            "of \"w\" (%zu)",
                            nf, ch_json_len(w));
    if ((size_t)nf != n_features)
        return ch_error_set(err, CH_EMODEL, "logreg: model has %zu features, the caller has %zu",
                            (size_t)nf, n_features);
    if (!isfinite(b))
        return ch_error_set(err, CH_EFORMAT, "logreg: \"b\" is not finite");
    s = ch_malloc(sizeof *s + n_features * sizeof s->w[0]);
    if (s == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    s->n_features = n_features;
    s->b = b;
    for (size_t j = 0; j < n_features; j++) {
        if (ch_json_num(ch_json_at(w, j), &s->w[j]) != 0 || !isfinite(s->w[j])) {
            ch_free(s);
            return ch_error_set(err, CH_EFORMAT, "logreg: \"w\"[%zu] is not a finite number", j);
        }
    }
    *state = s;
    return CH_OK;
}

static void lr_free(void *state)
{
    ch_free(state);
}

const ch_model_ops ch_model_logreg = {
    "logreg",   1 /* wants standardized features */,
    lr_check,   lr_fit,
    lr_predict, lr_save,
    lr_load,    lr_free,
    NULL /* no size parameter */
};
