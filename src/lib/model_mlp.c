/*
 * model_mlp.c -- the "mlp" family: a small fully connected neural network
 * (one or two hidden layers) trained with Adam on weighted binary
 * cross-entropy.
 *
 * Why our own code and not a library: the network is small (a few hundred
 * lines), it must be bit-for-bit deterministic for a given seed, and
 * prediction must not allocate on the request path. The one packaged
 * candidate, libfann in Debian, takes no per-row weights (class weights
 * are how the pipeline handles imbalance) and gives no control over early
 * stopping with weight restore.
 *
 * The network: inputs -> hidden (tanh or ReLU) [-> hidden2 (same)] -> one
 * linear output unit whose value is the margin (log-odds); the sigmoid of
 * the margin is the probability. The parameters live in one flat vector,
 * layer by layer, weights (row-major, one row per unit) then biases; see
 * model_mlp_int.h.
 *
 * Training minimizes, per mini-batch B of the training rows,
 *     sum_{i in B} w_i * logloss_i / (|B| * mean(w)) + (l2 / 2) * ||weights||^2
 * whose expectation over batches is the weighted mean log loss plus the
 * penalty (biases are not penalized; the penalty is added to the gradient,
 * not decoupled as in AdamW). Rows are shuffled every epoch with a seeded
 * generator; weights start from Glorot-uniform (tanh, output) or
 * He-uniform (ReLU) draws from the same generator, biases at zero. With a
 * validation set the weighted log loss on it is measured after every epoch;
 * training stops after 'patience' epochs without improvement and the best
 * weights are kept. Without one, exactly 'epochs' epochs run.
 *
 * Everything is single-threaded and in a fixed order, so the same data,
 * parameters and seed give bit-identical weights. Prediction runs one row
 * at a time in stack buffers of CH_MLP_MAX_UNITS doubles per hidden layer,
 * so it never allocates and is thread-safe.
 *
 * Workload: fitted once per fold and parameter set during a search (jobs
 * run in parallel threads, each fit on one), scored far more often.
 */
#include "ch/model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/split.h"
#include "model_mlp_int.h"

/* Largest hidden layer: bounds the stack used per row when predicting
 * (two buffers of this many doubles, 64 KiB at the default). */
#ifndef CH_MLP_MAX_UNITS
#define CH_MLP_MAX_UNITS 4096
#endif

#define ACT_TANH 0
#define ACT_RELU 1

/* Hyperparameters with their defaults. */
typedef struct mlp_cfg {
    double hidden;   /* units in hidden layer 1 [32] */
    double hidden2;  /* units in hidden layer 2, 0 = none [0] */
    double act;      /* 0 tanh, 1 ReLU [0] */
    double l2;       /* penalty on weights [1e-4] */
    double lr;       /* Adam step size [0.01] */
    double beta1;    /* Adam first-moment decay [0.9] */
    double beta2;    /* Adam second-moment decay [0.999] */
    double batch;    /* rows per mini-batch [128] */
    double epochs;   /* maximum passes over the data [200] */
    double patience; /* epochs without improvement before stopping [20] */
} mlp_cfg;

/* A fitted network. */
typedef struct mlp_state {
    ch__mlp_shape shape;
    size_t n_params; /* length of 'theta' */
    double theta[];  /* parameters, laid out as in model_mlp_int.h */
} mlp_state;

/* Working memory for one row's forward and backward pass. */
typedef struct scratch {
    double *a1; /* hidden layer 1 activations */
    double *a2; /* hidden layer 2 activations (one unused slot when none) */
    double *d1; /* gradient at hidden layer 1 pre-activations */
} scratch;

/* ---- parameters ----------------------------------------------------------- */

static const char *const param_names[] = {"hidden", "hidden2", "activation", "l2",     "lr",
                                          "beta1",  "beta2",   "batch",      "epochs", "patience"};
#define N_PARAM_NAMES (sizeof param_names / sizeof param_names[0])

/* Checks that 'v' is an integer in [lo, hi]. */
static ch_err check_int(const char *name, double v, double lo, double hi, ch_error *err)
{
    if (!(v >= lo && v <= hi && v == floor(v)))
        return ch_error_set(err, CH_EINVAL,
                            "mlp: parameter %s must be an integer in [%g, %g], got %g", name, lo,
                            hi, v);
    return CH_OK;
}

/*
 * Reads 'p' into 'c' with defaults for absent names. Errors: CH_EINVAL for
 * an unknown name or a value out of range.
 */
static ch_err read_params(const ch_params *p, mlp_cfg *c, ch_error *err)
{
    ch_err rc;
    for (size_t i = 0; i < p->n; i++) {
        size_t k = 0;
        while (k < N_PARAM_NAMES && strcmp(p->names[i], param_names[k]) != 0)
            k++;
        if (k == N_PARAM_NAMES)
            return ch_error_set(err, CH_EINVAL,
                                "mlp: unknown parameter \"%s\" (known: hidden, hidden2, "
                                "activation, l2, lr, beta1, beta2, batch, epochs, patience)",
                                p->names[i]);
    }
    c->hidden = ch_params_get(p, "hidden", 32);
    c->hidden2 = ch_params_get(p, "hidden2", 0);
    c->act = ch_params_get(p, "activation", ACT_TANH);
    c->l2 = ch_params_get(p, "l2", 1e-4);
    c->lr = ch_params_get(p, "lr", 0.01);
    c->beta1 = ch_params_get(p, "beta1", 0.9);
    c->beta2 = ch_params_get(p, "beta2", 0.999);
    c->batch = ch_params_get(p, "batch", 128);
    c->epochs = ch_params_get(p, "epochs", 200);
    c->patience = ch_params_get(p, "patience", 20);

    rc = check_int("hidden", c->hidden, 1, CH_MLP_MAX_UNITS, err);
    if (rc == CH_OK)
        rc = check_int("hidden2", c->hidden2, 0, CH_MLP_MAX_UNITS, err);
    if (rc == CH_OK)
        rc = check_int("activation", c->act, ACT_TANH, ACT_RELU, err);
    if (rc == CH_OK)
        rc = check_int("batch", c->batch, 1, 1 << 30, err);
    if (rc == CH_OK)
        rc = check_int("epochs", c->epochs, 1, 1000000, err);
    if (rc == CH_OK)
        rc = check_int("patience", c->patience, 1, 1000000, err);
    if (rc != CH_OK)
        return rc;
    if (!(c->l2 >= 0 && isfinite(c->l2)))
        return ch_error_set(err, CH_EINVAL, "mlp: parameter l2 must be >= 0, got %g", c->l2);
    if (!(c->lr > 0 && isfinite(c->lr)))
        return ch_error_set(err, CH_EINVAL, "mlp: parameter lr must be > 0, got %g", c->lr);
    if (!(c->beta1 >= 0 && c->beta1 < 1))
        return ch_error_set(err, CH_EINVAL, "mlp: parameter beta1 must be in [0, 1), got %g",
                            c->beta1);
    if (!(c->beta2 >= 0 && c->beta2 < 1))
        return ch_error_set(err, CH_EINVAL, "mlp: parameter beta2 must be in [0, 1), got %g",
                            c->beta2);
    return CH_OK;
}

static ch_err mlp_check(const ch_params *p, ch_error *err)
{
    mlp_cfg c;
    return read_params(p, &c, err);
}

/* ---- the network ---------------------------------------------------------- */

size_t ch__mlp_n_params(const ch__mlp_shape *s)
{
    /* With every hidden layer at most M = CH_MLP_MAX_UNITS units the count
     * is at most (M + 1) * (n_in + M + 3); keeping n_in below the cap
     * leaves room for the state's header in bytes as well. */
    size_t cap = SIZE_MAX / sizeof(double) / (CH_MLP_MAX_UNITS + 1);
    size_t last = s->hidden2 > 0 ? s->hidden2 : s->hidden;
    size_t n;
    if (s->n_in + CH_MLP_MAX_UNITS + 4 > cap)
        return 0;
    n = s->hidden * (s->n_in + 1);
    if (s->hidden2 > 0)
        n += s->hidden2 * (s->hidden + 1);
    return n + last + 1;
}

static double activate(int act, double z)
{
    if (act == ACT_RELU)
        return z > 0 ? z : 0.0;
    return tanh(z);
}

/* Derivative of the activation, from the activation's value 'a'. */
static double activate_deriv(int act, double a)
{
    if (act == ACT_RELU)
        return a > 0 ? 1.0 : 0.0;
    return 1.0 - a * a;
}

/* log(1 + exp(z)) without overflow. */
static double softplus(double z)
{
    return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
}

/* Log loss of margin 'm' for label 'y' (0 or 1). */
static double margin_loss(double m, double y)
{
    return softplus(y == 1.0 ? -m : m);
}

/*
 * Runs row 'x' through the network 'theta' of shape 's', leaving the
 * hidden activations in 'a1' and 'a2' ('a2' unused without a second hidden
 * layer), and returns the margin. Training, validation and prediction all
 * use this one function, so a margin is the same bits wherever it is
 * computed.
 */
static double forward(const ch__mlp_shape *s, const double *theta, const double *x, double *a1,
                      double *a2)
{
    const double *w = theta;
    const double *b = theta + s->hidden * s->n_in;
    const double *last = a1;
    size_t n_last = s->hidden;
    double m;

    for (size_t j = 0; j < s->hidden; j++) {
        const double *row = w + j * s->n_in;
        double z = b[j];
        for (size_t k = 0; k < s->n_in; k++)
            z += row[k] * x[k];
        a1[j] = activate(s->activation, z);
    }
    w = b + s->hidden;
    if (s->hidden2 > 0) {
        b = w + s->hidden2 * s->hidden;
        for (size_t j = 0; j < s->hidden2; j++) {
            const double *row = w + j * s->hidden;
            double z = b[j];
            for (size_t k = 0; k < s->hidden; k++)
                z += row[k] * a1[k];
            a2[j] = activate(s->activation, z);
        }
        w = b + s->hidden2;
        last = a2;
        n_last = s->hidden2;
    }
    m = w[n_last];
    for (size_t k = 0; k < n_last; k++)
        m += w[k] * last[k];
    return m;
}

/*
 * Adds to 'grad' the gradient of c * logloss with respect to the
 * parameters, for the row 'x' whose forward pass left its activations in
 * 'sc', where 'c_out' is c * (sigmoid(margin) - y), the derivative at the
 * margin. Plain backpropagation, layer by layer from the output.
 */
static void backward(const ch__mlp_shape *s, const double *theta, const double *x, double c_out,
                     scratch *sc, double *grad)
{
    size_t o1 = s->hidden * (s->n_in + 1); /* start of layer 2 or output */
    size_t o2 = s->hidden2 > 0 ? o1 + s->hidden2 * (s->hidden + 1) : o1; /* output */
    size_t n_last = s->hidden2 > 0 ? s->hidden2 : s->hidden;
    const double *last = s->hidden2 > 0 ? sc->a2 : sc->a1;
    const double *w_out = theta + o2;
    double *g_out = grad + o2;
    double *g_w1 = grad;
    double *g_b1 = grad + s->hidden * s->n_in;

    for (size_t k = 0; k < n_last; k++)
        g_out[k] += c_out * last[k];
    g_out[n_last] += c_out;

    if (s->hidden2 > 0) {
        const double *w2 = theta + o1;
        double *g_w2 = grad + o1;
        double *g_b2 = g_w2 + s->hidden2 * s->hidden;
        for (size_t k = 0; k < s->hidden; k++)
            sc->d1[k] = 0;
        for (size_t j = 0; j < s->hidden2; j++) {
            double dz = c_out * w_out[j] * activate_deriv(s->activation, sc->a2[j]);
            const double *row = w2 + j * s->hidden;
            double *grow = g_w2 + j * s->hidden;
            if (dz == 0)
                continue;
            for (size_t k = 0; k < s->hidden; k++) {
                grow[k] += dz * sc->a1[k];
                sc->d1[k] += dz * row[k];
            }
            g_b2[j] += dz;
        }
        for (size_t k = 0; k < s->hidden; k++)
            sc->d1[k] *= activate_deriv(s->activation, sc->a1[k]);
    } else {
        for (size_t j = 0; j < s->hidden; j++)
            sc->d1[j] = c_out * w_out[j] * activate_deriv(s->activation, sc->a1[j]);
    }
    for (size_t j = 0; j < s->hidden; j++) {
        double dz = sc->d1[j];
        double *grow = g_w1 + j * s->n_in;
        if (dz == 0)
            continue;
        for (size_t k = 0; k < s->n_in; k++)
            grow[k] += dz * x[k];
        g_b1[j] += dz;
    }
}

/*
 * The batch objective: sets 'grad' to the gradient of
 *     scale * sum_{r in rows} w_r * logloss_r + (l2 / 2) * ||weights||^2
 * at 'theta' and returns its value. 'rows' holds 'n' indexes into 'd'.
 */
static double batch_objective(const ch__mlp_shape *s, const double *theta, size_t n_params,
                              const ch_dataset *d, const size_t *rows, size_t n, double scale,
                              double l2, scratch *sc, double *grad)
{
    size_t o1 = s->hidden * (s->n_in + 1);
    size_t o2 = s->hidden2 > 0 ? o1 + s->hidden2 * (s->hidden + 1) : o1;
    size_t n_last = s->hidden2 > 0 ? s->hidden2 : s->hidden;
    double data = 0;
    double pen = 0;

    memset(grad, 0, n_params * sizeof *grad);
    for (size_t r = 0; r < n; r++) {
        size_t i = rows[r];
        const double *x = d->x + i * d->n_features;
        double c = scale * (d->w != NULL ? d->w[i] : 1.0);
        double m = forward(s, theta, x, sc->a1, sc->a2);
        data += c * margin_loss(m, d->y[i]);
        backward(s, theta, x, c * (ch_sigmoid(m) - d->y[i]), sc, grad);
    }
    /* The penalty covers the weight blocks only, not the biases. */
    for (size_t j = 0; j < s->hidden * s->n_in; j++) {
        pen += theta[j] * theta[j];
        grad[j] += l2 * theta[j];
    }
    if (s->hidden2 > 0) {
        for (size_t j = o1; j < o1 + s->hidden2 * s->hidden; j++) {
            pen += theta[j] * theta[j];
            grad[j] += l2 * theta[j];
        }
    }
    for (size_t j = o2; j < o2 + n_last; j++) {
        pen += theta[j] * theta[j];
        grad[j] += l2 * theta[j];
    }
    return data + 0.5 * l2 * pen;
}

/* Allocates the per-row working memory for shape 's'. */
static ch_err scratch_new(const ch__mlp_shape *s, scratch *sc)
{
    size_t h2 = s->hidden2 > 0 ? s->hidden2 : 1;
    double *all = ch_malloc_array(2 * s->hidden + h2, sizeof *all);
    if (all == NULL)
        return CH_ENOMEM;
    sc->a1 = all;
    sc->d1 = all + s->hidden;
    sc->a2 = all + 2 * s->hidden;
    return CH_OK;
}

static void scratch_free(scratch *sc)
{
    ch_free(sc->a1);
}

ch_err ch__mlp_objective(const ch__mlp_shape *s, const double *theta, const ch_dataset *d,
                         double l2, double *loss, double *grad)
{
    size_t n_params = ch__mlp_n_params(s);
    size_t *rows = ch_malloc_array(d->n_rows, sizeof *rows);
    double *g = grad != NULL ? grad : ch_malloc_array(n_params, sizeof *g);
    double wsum = 0;
    scratch sc = {0};
    ch_err rc = CH_ENOMEM;

    if (rows != NULL && g != NULL && scratch_new(s, &sc) == CH_OK) {
        for (size_t i = 0; i < d->n_rows; i++) {
            rows[i] = i;
            wsum += d->w != NULL ? d->w[i] : 1.0;
        }
        *loss = batch_objective(s, theta, n_params, d, rows, d->n_rows, 1.0 / wsum, l2, &sc, g);
        rc = CH_OK;
    }
    scratch_free(&sc);
    if (g != grad)
        ch_free(g);
    ch_free(rows);
    return rc;
}

/* ---- training ------------------------------------------------------------- */

/* Uniform in [0, 1) with 53 random bits. */
static double uniform01(ch_rng *r)
{
    return (double)(ch_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Fills 'n_out' x 'n_in' weights uniformly in [-a, a), where 'a' is
 * Glorot's sqrt(6 / (fan_in + fan_out)), or He's sqrt(6 / fan_in) for ReLU
 * layers. */
static void init_layer(double *w, size_t n_out, size_t n_in, int relu, ch_rng *r)
{
    double a = relu ? sqrt(6.0 / (double)n_in) : sqrt(6.0 / (double)(n_in + n_out));
    for (size_t j = 0; j < n_out * n_in; j++)
        w[j] = (2.0 * uniform01(r) - 1.0) * a;
}

/* Draws the starting parameters of shape 's' from 'r'; biases start at 0. */
static void init_params(const ch__mlp_shape *s, double *theta, size_t n_params, ch_rng *r)
{
    int relu = s->activation == ACT_RELU;
    double *p = theta;
    memset(theta, 0, n_params * sizeof *theta);
    init_layer(p, s->hidden, s->n_in, relu, r);
    p += s->hidden * (s->n_in + 1);
    if (s->hidden2 > 0) {
        init_layer(p, s->hidden2, s->hidden, relu, r);
        p += s->hidden2 * (s->hidden + 1);
    }
    init_layer(p, 1, s->hidden2 > 0 ? s->hidden2 : s->hidden, 0, r);
}

/* Weighted mean log loss of 'theta' on all rows of 'd'. */
static double set_loss(const ch__mlp_shape *s, const double *theta, const ch_dataset *d,
                       scratch *sc)
{
    double num = 0;
    double den = 0;
    for (size_t i = 0; i < d->n_rows; i++) {
        double w = d->w != NULL ? d->w[i] : 1.0;
        double m = forward(s, theta, d->x + i * d->n_features, sc->a1, sc->a2);
        num += w * margin_loss(m, d->y[i]);
        den += w;
    }
    return num / den;
}

/* Adam state and its hyperparameters. */
typedef struct adam {
    double *m;      /* first moment, n_params */
    double *v;      /* second moment, n_params */
    double lr;      /* step size */
    double beta1;   /* first-moment decay */
    double beta2;   /* second-moment decay */
    double beta1_t; /* beta1 to the power of the step count */
    double beta2_t; /* beta2 likewise */
} adam;

/* One Adam step on 'theta' along 'grad' (Kingma and Ba, algorithm 1). */
static void adam_step(adam *a, double *theta, const double *grad, size_t n)
{
    double c1;
    double c2;
    a->beta1_t *= a->beta1;
    a->beta2_t *= a->beta2;
    c1 = 1.0 - a->beta1_t;
    c2 = 1.0 - a->beta2_t;
    for (size_t j = 0; j < n; j++) {
        a->m[j] = a->beta1 * a->m[j] + (1.0 - a->beta1) * grad[j];
        a->v[j] = a->beta2 * a->v[j] + (1.0 - a->beta2) * grad[j] * grad[j];
        theta[j] -= a->lr * (a->m[j] / c1) / (sqrt(a->v[j] / c2) + 1e-8);
    }
}

static int all_finite(const double *v, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (!isfinite(v[j]))
            return 0;
    return 1;
}

/*
 * Fits a network to 'd' with the hyperparameters in 'p', seeded by
 * 'o->seed', stopping early on 'o->valid' when given. 'o->n_threads' is
 * ignored: one fit is one thread, which keeps the result bit-identical.
 * Errors: CH_EINVAL (parameters), CH_EMODEL (the loss diverged),
 * CH_ENOMEM.
 */
static ch_err mlp_fit(const ch_params *p, const ch_dataset *d, const ch_model_fit_opts *o,
                      void **state, ch_model_fit_info *info, ch_error *err)
{
    mlp_cfg c;
    ch__mlp_shape s;
    size_t n_params;
    size_t batch;
    size_t epochs;
    size_t patience;
    size_t best_epoch = 0;
    double best_loss = INFINITY;
    double wsum = 0;
    mlp_state *st = NULL;
    double *grad = NULL;
    double *best = NULL;
    size_t *perm = NULL;
    adam a = {0};
    scratch sc = {0};
    ch_rng rng;
    ch_err rc;

    rc = read_params(p, &c, err);
    if (rc != CH_OK)
        return rc;
    s.n_in = d->n_features;
    s.hidden = (size_t)c.hidden;
    s.hidden2 = (size_t)c.hidden2;
    s.activation = (int)c.act;
    n_params = ch__mlp_n_params(&s);
    if (n_params == 0)
        return ch_error_set(err, CH_ELIMIT, "mlp: %zu features is too many", d->n_features);
    batch = (size_t)c.batch < d->n_rows ? (size_t)c.batch : d->n_rows;
    epochs = (size_t)c.epochs;
    patience = (size_t)c.patience;

    st = ch_malloc(sizeof *st + n_params * sizeof st->theta[0]);
    grad = ch_malloc_array(n_params, sizeof *grad);
    a.m = ch_calloc(n_params, sizeof *a.m);
    a.v = ch_calloc(n_params, sizeof *a.v);
    perm = ch_malloc_array(d->n_rows, sizeof *perm);
    if (o->valid != NULL)
        best = ch_malloc_array(n_params, sizeof *best);
    if (st == NULL || grad == NULL || a.m == NULL || a.v == NULL || perm == NULL ||
        (o->valid != NULL && best == NULL) || scratch_new(&s, &sc) != CH_OK) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    st->shape = s;
    st->n_params = n_params;
    a.lr = c.lr;
    a.beta1 = c.beta1;
    a.beta2 = c.beta2;
    a.beta1_t = 1.0;
    a.beta2_t = 1.0;
    ch_rng_seed(&rng, o->seed);
    init_params(&s, st->theta, n_params, &rng);
    for (size_t i = 0; i < d->n_rows; i++) {
        perm[i] = i;
        wsum += d->w != NULL ? d->w[i] : 1.0;
    }

    for (size_t epoch = 1; epoch <= epochs; epoch++) {
        double train_loss = 0;
        /* Fisher-Yates on the previous order: the sequence of orders
         * depends only on the seed. */
        for (size_t i = d->n_rows; i > 1; i--) {
            size_t j = (size_t)ch_rng_below(&rng, i);
            size_t t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        for (size_t start = 0; start < d->n_rows; start += batch) {
            size_t nb = d->n_rows - start < batch ? d->n_rows - start : batch;
            /* Dividing by the batch's share of the total weight, not by
             * its own weight, keeps each batch an unbiased estimate of
             * the full objective when weights differ between rows. */
            double scale = (double)d->n_rows / ((double)nb * wsum);
            train_loss += batch_objective(&s, st->theta, n_params, d, perm + start, nb, scale, c.l2,
                                          &sc, grad);
            adam_step(&a, st->theta, grad, n_params);
        }
        if (!isfinite(train_loss) || !all_finite(st->theta, n_params)) {
            rc = ch_error_set(err, CH_EMODEL,
                              "mlp: training diverged at epoch %zu (lower lr, currently %g)", epoch,
                              c.lr);
            goto done;
        }
        if (o->valid != NULL) {
            double loss = set_loss(&s, st->theta, o->valid, &sc);
            if (loss < best_loss) {
                best_loss = loss;
                best_epoch = epoch;
                memcpy(best, st->theta, n_params * sizeof *best);
            } else if (epoch - best_epoch >= patience) {
                break;
            }
        }
    }
    if (o->valid != NULL) {
        if (best_epoch == 0) {
            rc = ch_error_set(err, CH_EMODEL, "mlp: validation loss is never finite");
            goto done;
        }
        memcpy(st->theta, best, n_params * sizeof *best);
        info->best_iteration = (double)best_epoch;
        info->valid_loss = best_loss;
    } else {
        info->best_iteration = (double)epochs;
        info->valid_loss = NAN;
    }
    *state = st;
    st = NULL;
    rc = CH_OK;

done:
    scratch_free(&sc);
    ch_free(best);
    ch_free(perm);
    ch_free(a.v);
    ch_free(a.m);
    ch_free(grad);
    ch_free(st);
    return rc;
}

/* ---- prediction ----------------------------------------------------------- */

static ch_err mlp_predict(const void *state, const double *x, size_t n_rows, size_t n_features,
                          double *out, ch_error *err)
{
    const mlp_state *st = state;
    double a1[CH_MLP_MAX_UNITS];
    double a2[CH_MLP_MAX_UNITS];
    if (n_features != st->shape.n_in)
        return ch_error_set(err, CH_EINVAL, "mlp: model has %zu features, got %zu", st->shape.n_in,
                            n_features);
    for (size_t i = 0; i < n_rows; i++)
        out[i] = forward(&st->shape, st->theta, x + i * n_features, a1, a2);
    return CH_OK;
}

/* ---- saving and loading --------------------------------------------------- */

static void put_nums(ch_buf *b, const double *v, size_t n)
{
    ch_buf_putc(b, '[');
    for (size_t j = 0; j < n; j++) {
        if (j > 0)
            ch_buf_puts(b, ", ");
        ch_buf_json_num(b, v[j]);
    }
    ch_buf_putc(b, ']');
}

/*
 * Writes
 *   {"n_features": n, "hidden": [h1(, h2)], "activation": "tanh"|"relu",
 *    "layers": [{"w": [...], "b": [...]}, ...]}
 * one layer per hidden layer plus the output unit; "w" is row-major, one
 * row of inputs per unit. Doubles are written to read back exactly.
 */
static ch_err mlp_save(const void *state, ch_buf *b)
{
    const mlp_state *st = state;
    const ch__mlp_shape *s = &st->shape;
    size_t units[3] = {s->hidden, s->hidden2, 1};
    size_t n_layers = s->hidden2 > 0 ? 3 : 2;
    size_t in = s->n_in;
    const double *p = st->theta;

    if (n_layers == 2)
        units[1] = 1;
    ch_buf_printf(b, "{\"n_features\": %zu, \"hidden\": [%zu", s->n_in, s->hidden);
    if (s->hidden2 > 0)
        ch_buf_printf(b, ", %zu", s->hidden2);
    ch_buf_printf(b, "], \"activation\": \"%s\", \"layers\": [",
                  s->activation == ACT_RELU ? "relu" : "tanh");
    for (size_t l = 0; l < n_layers; l++) {
        ch_buf_puts(b, l > 0 ? ", {\"w\": " : "{\"w\": ");
        put_nums(b, p, units[l] * in);
        ch_buf_puts(b, ", \"b\": ");
        put_nums(b, p + units[l] * in, units[l]);
        ch_buf_putc(b, '}');
        p += units[l] * (in + 1);
        in = units[l];
    }
    return ch_buf_puts(b, "]}");
}

/* Reads a size from 'v': an integer in [lo, hi]. Returns -1 otherwise. */
static int read_size(const ch_json *v, double lo, double hi, size_t *out)
{
    double d;
    if (ch_json_num(v, &d) != 0 || !ch_json_is_int(v) || !(d >= lo && d <= hi))
        return -1;
    *out = (size_t)d;
    return 0;
}

/* Copies the 'n' finite numbers of array 'arr' into 'out'. */
static int read_nums(const ch_json *arr, size_t n, double *out)
{
    if (ch_json_typeof(arr) != CH_JSON_ARRAY || ch_json_len(arr) != n)
        return -1;
    for (size_t j = 0; j < n; j++)
        if (ch_json_num(ch_json_at(arr, j), &out[j]) != 0 || !isfinite(out[j]))
            return -1;
    return 0;
}

/*
 * Reads what mlp_save() wrote. Errors: CH_EFORMAT (shape, sizes, a number
 * that is not finite), CH_EMODEL (fitted on other than 'n_features'
 * features), CH_ENOMEM.
 */
static ch_err mlp_load(const ch_json *node, size_t n_features, void **state, ch_error *err)
{
    const ch_json *hidden = ch_json_get(node, "hidden");
    const ch_json *layers = ch_json_get(node, "layers");
    const char *act = ch_json_str(ch_json_get(node, "activation"), NULL);
    ch__mlp_shape s = {0};
    size_t units[3];
    size_t n_layers;
    size_t n_params;
    size_t in;
    double *p;
    mlp_state *st;

    if (ch_json_typeof(node) != CH_JSON_OBJECT || ch_json_typeof(hidden) != CH_JSON_ARRAY ||
        ch_json_typeof(layers) != CH_JSON_ARRAY || act == NULL)
        return ch_error_set(err, CH_EFORMAT,
                            "mlp: state must be an object with \"n_features\", "
                            "\"hidden\", \"activation\" and \"layers\"");
    if (read_size(ch_json_get(node, "n_features"), 1, 1e15, &s.n_in) != 0)
        return ch_error_set(err, CH_EFORMAT, "mlp: \"n_features\" must be a positive integer");
    if (ch_json_len(hidden) < 1 || ch_json_len(hidden) > 2 ||
        read_size(ch_json_at(hidden, 0), 1, CH_MLP_MAX_UNITS, &s.hidden) != 0 ||
        (ch_json_len(hidden) == 2 &&
         read_size(ch_json_at(hidden, 1), 1, CH_MLP_MAX_UNITS, &s.hidden2) != 0))
        return ch_error_set(err, CH_EFORMAT,
                            "mlp: \"hidden\" must list one or two sizes in [1, %d]",
                            CH_MLP_MAX_UNITS);
    if (strcmp(act, "tanh") == 0)
        s.activation = ACT_TANH;
    else if (strcmp(act, "relu") == 0)
        s.activation = ACT_RELU;
    else
        return ch_error_set(err, CH_EFORMAT, "mlp: unknown activation \"%s\"", act);
    n_layers = s.hidden2 > 0 ? 3 : 2;
    if (ch_json_len(layers) != n_layers)
        return ch_error_set(err, CH_EFORMAT, "mlp: %zu layers for %zu hidden layers",
                            ch_json_len(layers), n_layers - 1);
    if (s.n_in != n_features)
        return ch_error_set(err, CH_EMODEL, "mlp: model has %zu features, the caller has %zu",
                            s.n_in, n_features);
    n_params = ch__mlp_n_params(&s);
    if (n_params == 0)
        return ch_error_set(err, CH_EFORMAT, "mlp: %zu features is too many", s.n_in);
    st = ch_malloc(sizeof *st + n_params * sizeof st->theta[0]);
    if (st == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    st->shape = s;
    st->n_params = n_params;
    units[0] = s.hidden;
    units[1] = n_layers == 3 ? s.hidden2 : 1;
    units[2] = 1;
    in = s.n_in;
    p = st->theta;
    for (size_t l = 0; l < n_layers; l++) {
        const ch_json *layer = ch_json_at(layers, l);
        if (read_nums(ch_json_get(layer, "w"), units[l] * in, p) != 0 ||
            read_nums(ch_json_get(layer, "b"), units[l], p + units[l] * in) != 0) {
            ch_free(st);
            return ch_error_set(err, CH_EFORMAT,
                                "mlp: layer %zu must have \"w\" (%zu finite numbers) and \"b\" "
                                "(%zu)",
                                l + 1, units[l] * in, units[l]);
        }
        p += units[l] * (in + 1);
        in = units[l];
    }
    *state = st;
    return CH_OK;
}

static void mlp_free(void *state)
{
    ch_free(state);
}

const ch_model_ops ch_model_mlp = {"mlp",       1 /* wants standardized features */,
                                   mlp_check,   mlp_fit,
                                   mlp_predict, mlp_save,
                                   mlp_load,    mlp_free,
                                   "epochs"};
