/*
 * calibrate.c -- mapping model margins to calibrated probabilities.
 *
 * A calibrator is fitted once per training run on out-of-fold margins and
 * then applied to every scored row, so fitting may sort and allocate but
 * ch_calibrator_apply() must be cheap, allocation-free and safe from many
 * threads: a calibrator is immutable after fit or load, and everything
 * apply reads lives in the one allocation that holds the handle.
 *
 * Three methods:
 *   - none: the logistic function of the margin, which is already a
 *     probability for models trained on log loss.
 *   - Platt: sigmoid(a * margin + b), fitted by Newton's method on the
 *     log loss against Platt's smoothed targets, as in Lin, Lin and Weng,
 *     "A note on Platt's probabilistic outputs for support vector
 *     machines" (2007): the targets keep a and b finite even on separable
 *     data, and a backtracking line search keeps every step from raising
 *     the loss (see platt_fit() for the end game, where the loss is flat
 *     to rounding).
 *   - isotonic: the weighted isotonic regression of the labels on the
 *     margins (pool-adjacent-violators). Each block of the solution is
 *     stored as one point (its weighted mean margin, its weighted positive
 *     rate); apply interpolates linearly between those points and is flat
 *     beyond the first and last, so the mapping is continuous and
 *     monotone non-decreasing.
 *
 * The JSON form stores every double with round-trip digits, so a loaded
 * calibrator gives bit-identical probabilities to the one that was saved.
 */
#include "ch/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/model.h"

/* Newton's method for Platt: stop when the gradient of the mean loss is
 * this small, after this many iterations, or when the line search finds
 * no acceptable step down to this size (the numerical minimum). */
#define PLATT_TOL      1e-10
#define PLATT_MAX_ITER 100
#define PLATT_MIN_STEP 1e-10
#define PLATT_RIDGE    1e-12 /* added to the Hessian's diagonal, as Lin et al. */
#define PLATT_ARMIJO   1e-4  /* sufficient-decrease constant of the line search */
#define PLATT_FLAT     1e-10 /* relative loss change that is rounding noise */

struct ch_calibrator {
    ch_calib_method method;
    double a;        /* Platt slope */
    double b;        /* Platt intercept */
    size_t n_blocks; /* isotonic points; 0 for the other methods */
    double *x;       /* n_blocks margins, strictly increasing; points into 'data' */
    double *y;       /* n_blocks probabilities in [0, 1], non-decreasing; into 'data' */
    double data[];   /* storage for 'x' then 'y' */
};

/* One row of the isotonic fit, sorted by margin. */
typedef struct mrow {
    double m; /* margin */
    double y; /* label */
    double w; /* weight */
    size_t i; /* original index: the tie-break */
} mrow;

/* One block of pooled rows in pool-adjacent-violators. */
typedef struct block {
    double sw;  /* total weight */
    double swy; /* weighted label sum */
    double swm; /* weighted margin sum */
    double lo;  /* smallest margin in the block */
    double hi;  /* largest margin in the block */
} block;

/* A calibrator of 'method' with room for 'n_blocks' isotonic points, all
 * fields zero. NULL when out of memory. */
static ch_calibrator *calib_new(ch_calib_method method, size_t n_blocks)
{
    ch_calibrator *c;
    if (n_blocks > (SIZE_MAX - sizeof *c) / (2 * sizeof(double)))
        return NULL;
    c = ch_malloc(sizeof *c + 2 * n_blocks * sizeof(double));
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof *c);
    c->method = method;
    c->n_blocks = n_blocks;
    c->x = c->data;
    c->y = c->data + n_blocks;
    return c;
}

void ch_calibrator_free(ch_calibrator *c)
{
    ch_free(c);
}

const char *ch_calib_method_name(ch_calib_method m)
{
    switch (m) {
    case CH_CALIB_NONE:
        return "none";
    case CH_CALIB_PLATT:
        return "platt";
    case CH_CALIB_ISOTONIC:
        return "isotonic";
    }
    return "unknown";
}

int ch_calib_method_parse(const char *name, ch_calib_method *out)
{
    static const ch_calib_method all[] = {CH_CALIB_NONE, CH_CALIB_PLATT, CH_CALIB_ISOTONIC};
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, ch_calib_method_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return -1;
}

ch_calib_method ch_calibrator_method(const ch_calibrator *c)
{
    return c != NULL ? c->method : CH_CALIB_NONE;
}

/* Linear interpolation between the isotonic points, flat outside them.
 * The result is clamped to the segment's end values: rounding in
 * y0 + (y1 - y0) t could otherwise step past y1 and break monotonicity
 * where two segments meet. */
static double isotonic_apply(const ch_calibrator *c, double m)
{
    size_t lo = 0;
    size_t hi = c->n_blocks - 1;
    double t;
    double v;

    if (isnan(m))
        return m;
    if (m <= c->x[0])
        return c->y[0];
    if (m >= c->x[hi])
        return c->y[hi];
    /* Invariant: x[lo] < m < x[hi]. */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->x[mid] <= m)
            lo = mid;
        else
            hi = mid;
    }
    t = (m - c->x[lo]) / (c->x[hi] - c->x[lo]);
    v = c->y[lo] + (c->y[hi] - c->y[lo]) * t;
    return fmin(fmax(v, c->y[lo]), c->y[hi]);
}

double ch_calibrator_apply(const ch_calibrator *c, double margin)
{
    if (c == NULL)
        return ch_sigmoid(margin);
    switch (c->method) {
    case CH_CALIB_PLATT:
        return ch_sigmoid(c->a * margin + c->b);
    case CH_CALIB_ISOTONIC:
        return isotonic_apply(c, margin);
    case CH_CALIB_NONE:
        break;
    }
    return ch_sigmoid(margin);
}

/*
 * Validates the fitting rows: labels 0/1, finite margins, positive finite
 * weights. '*pos' and '*neg' get the weight of each class.
 */
static ch_err check_fit_rows(const double *y, const double *m, const double *w, size_t n,
                             double *pos, double *neg, ch_error *err)
{
    *pos = 0.0;
    *neg = 0.0;
    if (n > 0 && (y == NULL || m == NULL))
        return ch_error_set(err, CH_EINVAL, "labels and margins are required");
    for (size_t i = 0; i < n; i++) {
        double wi = w != NULL ? w[i] : 1.0;
        if (y[i] != 0.0 && y[i] != 1.0)
            return ch_error_set(err, CH_EINVAL, "row %zu: label %g is not 0 or 1", i, y[i]);
        if (!isfinite(m[i]))
            return ch_error_set(err, CH_EINVAL, "row %zu: margin is not a finite number", i);
        if (!(wi > 0.0 && isfinite(wi)))
            return ch_error_set(err, CH_EINVAL, "row %zu: weight %g is not positive and finite", i,
                                wi);
        if (y[i] == 1.0)
            *pos += wi;
        else
            *neg += wi;
    }
    return CH_OK;
}

/* The fitting data of Platt's method with its smoothed targets. */
typedef struct platt_data {
    const double *y;
    const double *m;
    const double *w;
    size_t n;
    double t_pos; /* target for a positive row, (N+ + 1) / (N+ + 2) */
    double t_neg; /* target for a negative row, 1 / (N- + 2) */
} platt_data;

/* Weighted log loss of sigmoid(a m + b) against the smoothed targets,
 * written as log(1 + e^z) - t z in a form that neither overflows nor
 * loses the small term for large |z|. */
static double platt_loss(const platt_data *d, double a, double b)
{
    double f = 0.0;
    for (size_t i = 0; i < d->n; i++) {
        double z = a * d->m[i] + b;
        double t = d->y[i] == 1.0 ? d->t_pos : d->t_neg;
        double wi = d->w != NULL ? d->w[i] : 1.0;
        f += wi * (fmax(z, 0.0) + log1p(exp(-fabs(z))) - t * z);
    }
    return f;
}

/* Gradient 'g' (d/da, d/db) and Hessian 'h' (aa, ab, bb) of platt_loss. */
static void platt_derivs(const platt_data *d, double a, double b, double g[2], double h[3])
{
    g[0] = g[1] = 0.0;
    h[0] = h[1] = h[2] = 0.0;
    for (size_t i = 0; i < d->n; i++) {
        double mi = d->m[i];
        double z = a * mi + b;
        double t = d->y[i] == 1.0 ? d->t_pos : d->t_neg;
        double wi = d->w != NULL ? d->w[i] : 1.0;
        double p = ch_sigmoid(z);
        double s = wi * p * ch_sigmoid(-z); /* w p (1 - p) without cancellation */
        double r = wi * (p - t);
        g[0] += r * mi;
        g[1] += r;
        h[0] += s * mi * mi;
        h[1] += s * mi;
        h[2] += s;
    }
}

/* The larger absolute component of a gradient. */
static double grad_norm(const double g[2])
{
    return fmax(fabs(g[0]), fabs(g[1]));
}

/*
 * Newton's method on (a, b) from Platt's starting point a = 0,
 * b = log((N+ + 1) / (N- + 1)). Each Newton direction is tried with
 * step 1 and halved until the loss decreases enough (Armijo).
 *
 * Near the optimum the decrease a Newton step promises falls below the
 * rounding noise of the summed loss (a loss of ~1e3 resolves changes of
 * ~1e-13 at best), so the Armijo test fails on noise and would stall the
 * fit well short of the 1e-10 gradient tolerance. When the full step
 * changes the loss by less than PLATT_FLAT relative, the loss is no
 * guide, and the step is judged by the gradient instead: it is taken if
 * it shrinks the gradient, which is what Newton's method does there.
 *
 * Running out of iterations or of step size is not an error: every
 * accepted step improved the fit, so the current (a, b) is the best found.
 */
static void platt_fit(const platt_data *d, double w_all, double n_pos, double n_neg, double *pa,
                      double *pb)
{
    double a = 0.0;
    double b = log((n_pos + 1.0) / (n_neg + 1.0));
    double f = platt_loss(d, a, b);
    double g[2];
    double h[3];

    platt_derivs(d, a, b, g, h);
    for (int it = 0; it < PLATT_MAX_ITER; it++) {
        double det;
        double da;
        double db;
        double gd;
        double step;
        int moved = 0;

        if (grad_norm(g) <= PLATT_TOL * w_all)
            break;
        h[0] += PLATT_RIDGE;
        h[2] += PLATT_RIDGE;
        det = h[0] * h[2] - h[1] * h[1];
        if (!(det > 0.0))
            break;
        da = -(h[2] * g[0] - h[1] * g[1]) / det;
        db = -(h[0] * g[1] - h[1] * g[0]) / det;
        gd = g[0] * da + g[1] * db;
        for (step = 1.0; step >= PLATT_MIN_STEP && !moved; step /= 2.0) {
            double na = a + step * da;
            double nb = b + step * db;
            double nf = platt_loss(d, na, nb);
            if (nf <= f + PLATT_ARMIJO * step * gd) {
                platt_derivs(d, na, nb, g, h);
                moved = 1;
            } else if (step == 1.0 && fabs(nf - f) <= PLATT_FLAT * fabs(f)) {
                double ng[2];
                double nh[3];
                platt_derivs(d, na, nb, ng, nh);
                if (grad_norm(ng) < grad_norm(g)) {
                    memcpy(g, ng, sizeof ng);
                    memcpy(h, nh, sizeof nh);
                    moved = 1;
                }
            }
            if (moved) {
                a = na;
                b = nb;
                f = nf;
            }
        }
        if (!moved)
            break;
    }
    *pa = a;
    *pb = b;
}

/* qsort order: margin ascending, then row index ascending. */
static int cmp_mrow(const void *a, const void *b)
{
    const mrow *x = a;
    const mrow *y = b;
    if (x->m != y->m)
        return x->m < y->m ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/*
 * Weighted pool-adjacent-violators. Rows with equal margins start in one
 * block (a margin must map to one probability); then blocks are pushed in
 * margin order and the top two are merged while the lower one has the
 * higher rate. Only strict violations merge, so equal neighbours stay
 * apart. Each block's point is its weighted mean margin, clamped to the
 * block's margin range so rounding cannot make the points non-increasing
 * (blocks are disjoint ranges of distinct margins, so the clamped points
 * strictly increase).
 */
static ch_err isotonic_fit(const double *y, const double *m, const double *w, size_t n,
                           ch_calibrator **out, ch_error *err)
{
    mrow *r = ch_malloc_array(n, sizeof *r);
    block *s = ch_malloc_array(n, sizeof *s);
    ch_calibrator *c = NULL;
    size_t top = 0;
    ch_err rc = CH_OK;

    if (r == NULL || s == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory fitting isotonic calibration");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        r[i].m = m[i];
        r[i].y = y[i];
        r[i].w = w != NULL ? w[i] : 1.0;
        r[i].i = i;
    }
    qsort(r, n, sizeof *r, cmp_mrow);
    for (size_t at = 0; at < n;) {
        block nb = {0.0, 0.0, 0.0, r[at].m, r[at].m};
        size_t end = at;
        while (end < n && r[end].m == r[at].m) {
            nb.sw += r[end].w;
            nb.swy += r[end].w * r[end].y;
            nb.swm += r[end].w * r[end].m;
            end++;
        }
        at = end;
        s[top++] = nb;
        while (top >= 2 && s[top - 2].swy / s[top - 2].sw > s[top - 1].swy / s[top - 1].sw) {
            s[top - 2].sw += s[top - 1].sw;
            s[top - 2].swy += s[top - 1].swy;
            s[top - 2].swm += s[top - 1].swm;
            s[top - 2].hi = s[top - 1].hi;
            top--;
        }
    }
    c = calib_new(CH_CALIB_ISOTONIC, top);
    if (c == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory fitting isotonic calibration");
        goto done;
    }
    for (size_t k = 0; k < top; k++) {
        c->x[k] = fmin(fmax(s[k].swm / s[k].sw, s[k].lo), s[k].hi);
        c->y[k] = s[k].swy / s[k].sw;
    }
    *out = c;
done:
    ch_free(s);
    ch_free(r);
    return rc;
}

ch_err ch_calibrator_fit(ch_calib_method method, const double *y, const double *m, const double *w,
                         size_t n, ch_calibrator **out, ch_error *err)
{
    double pos;
    double neg;
    ch_calibrator *c;
    ch_err rc;

    if (method != CH_CALIB_NONE && method != CH_CALIB_PLATT && method != CH_CALIB_ISOTONIC)
        return ch_error_set(err, CH_EINVAL, "unknown calibration method %d", (int)method);
    rc = check_fit_rows(y, m, w, n, &pos, &neg, err);
    if (rc != CH_OK)
        return rc;
    if (method == CH_CALIB_NONE) {
        c = calib_new(CH_CALIB_NONE, 0);
        if (c == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        *out = c;
        return CH_OK;
    }
    if (pos == 0.0 || neg == 0.0)
        return ch_error_set(err, CH_EDATA, "%s calibration needs both classes: no %s rows",
                            ch_calib_method_name(method), pos == 0.0 ? "positive" : "negative");
    if (method == CH_CALIB_ISOTONIC)
        return isotonic_fit(y, m, w, n, out, err);
    c = calib_new(CH_CALIB_PLATT, 0);
    if (c == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    {
        platt_data d = {y, m, w, n, (pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0)};
        platt_fit(&d, pos + neg, pos, neg, &c->a, &c->b);
    }
    *out = c;
    return CH_OK;
}

/* Appends 'n' doubles as a JSON array. */
static void put_array(ch_buf *b, const double *v, size_t n)
{
    ch_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ch_buf_puts(b, ", ");
        ch_buf_json_num(b, v[i]);
    }
    ch_buf_putc(b, ']');
}

ch_err ch_calibrator_to_json(const ch_calibrator *c, ch_buf *b)
{
    ch_calib_method method = ch_calibrator_method(c);
    ch_buf_puts(b, "{\"method\": ");
    ch_buf_json_str(b, ch_calib_method_name(method), strlen(ch_calib_method_name(method)));
    if (method == CH_CALIB_PLATT) {
        ch_buf_puts(b, ", \"a\": ");
        ch_buf_json_num(b, c->a);
        ch_buf_puts(b, ", \"b\": ");
        ch_buf_json_num(b, c->b);
    } else if (method == CH_CALIB_ISOTONIC) {
        ch_buf_puts(b, ", \"x\": ");
        put_array(b, c->x, c->n_blocks);
        ch_buf_puts(b, ", \"y\": ");
        put_array(b, c->y, c->n_blocks);
    }
    return ch_buf_putc(b, '}');
}

/* Reads member 'key' of 'node' as a finite number. */
static ch_err json_finite(const ch_json *node, const char *key, double *out, ch_error *err)
{
    const ch_json *v = ch_json_get(node, key);
    if (v == NULL)
        return ch_error_set(err, CH_EFORMAT, "missing \"%s\"", key);
    if (ch_json_num(v, out) != 0 || !isfinite(*out))
        return ch_error_set(err, CH_EFORMAT, "\"%s\" must be a finite number", key);
    return CH_OK;
}

/* Rejects members other than "method" and the ones 'method' uses. */
static ch_err json_known_keys(const ch_json *node, ch_calib_method method, ch_error *err)
{
    static const char *const keys[][3] = {
        [CH_CALIB_NONE] = {"method", NULL, NULL},
        [CH_CALIB_PLATT] = {"method", "a", "b"},
        [CH_CALIB_ISOTONIC] = {"method", "x", "y"},
    };
    for (size_t i = 0; i < ch_json_len(node); i++) {
        const ch_json *v;
        const char *k = ch_json_member(node, i, &v);
        int known = 0;
        for (size_t j = 0; j < 3; j++)
            known |= keys[method][j] != NULL && strcmp(k, keys[method][j]) == 0;
        if (!known)
            return ch_error_set(err, CH_EFORMAT, "unknown member \"%s\" for %s", k,
                                ch_calib_method_name(method));
    }
    return CH_OK;
}

/*
 * Loads the isotonic points from arrays "x" and "y" of 'node', checking
 * everything apply relies on: equal non-zero lengths, finite values,
 * strictly increasing margins, non-decreasing probabilities in [0, 1].
 */
static ch_err isotonic_from_json(const ch_json *node, ch_calibrator **out, ch_error *err)
{
    const ch_json *jx = ch_json_get(node, "x");
    const ch_json *jy = ch_json_get(node, "y");
    size_t n = ch_json_len(jx);
    ch_calibrator *c;

    if (ch_json_typeof(jx) != CH_JSON_ARRAY || ch_json_typeof(jy) != CH_JSON_ARRAY)
        return ch_error_set(err, CH_EFORMAT, "isotonic needs arrays \"x\" and \"y\"");
    if (n == 0 || ch_json_len(jy) != n)
        return ch_error_set(err, CH_EFORMAT,
                            "\"x\" and \"y\" have %zu and %zu elements; need equal "
                            "non-zero lengths",
                            n, ch_json_len(jy));
    c = calib_new(CH_CALIB_ISOTONIC, n);
    if (c == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        double xi;
        double yi;
        if (ch_json_num(ch_json_at(jx, i), &xi) != 0 || !isfinite(xi) ||
            ch_json_num(ch_json_at(jy, i), &yi) != 0 || !isfinite(yi)) {
            ch_calibrator_free(c);
            return ch_error_set(err, CH_EFORMAT, "point %zu is not a pair of finite numbers", i);
        }
        if (!(yi >= 0.0 && yi <= 1.0)) {
            ch_calibrator_free(c);
            return ch_error_set(err, CH_EFORMAT, "y[%zu] = %g is outside [0, 1]", i, yi);
        }
        if (i > 0 && !(xi > c->x[i - 1] && yi >= c->y[i - 1])) {
            ch_calibrator_free(c);
            return ch_error_set(err, CH_EFORMAT,
                                "point %zu breaks the order (x must increase, y "
                                "must not decrease)",
                                i);
        }
        c->x[i] = xi;
        c->y[i] = yi;
    }
    *out = c;
    return CH_OK;
}

ch_err ch_calibrator_from_json(const ch_json *node, ch_calibrator **out, ch_error *err)
{
    const char *name;
    ch_calib_method method;
    ch_calibrator *c;
    ch_err rc;

    if (ch_json_typeof(node) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "expected a calibration object, got %s",
                            node == NULL ? "nothing" : ch_json_type_name(ch_json_typeof(node)));
    name = ch_json_str(ch_json_get(node, "method"), NULL);
    if (name == NULL)
        return ch_error_set(err, CH_EFORMAT, "\"method\" must be a string");
    if (ch_calib_method_parse(name, &method) != 0)
        return ch_error_set(err, CH_EFORMAT, "unknown calibration method \"%s\"", name);
    rc = json_known_keys(node, method, err);
    if (rc != CH_OK)
        return rc;
    if (method == CH_CALIB_ISOTONIC)
        return isotonic_from_json(node, out, err);
    if (method == CH_CALIB_PLATT) {
        double a;
        double b;
        rc = json_finite(node, "a", &a, err);
        if (rc == CH_OK)
            rc = json_finite(node, "b", &b, err);
        if (rc != CH_OK)
            return rc;
        c = calib_new(CH_CALIB_PLATT, 0);
        if (c == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        c->a = a;
        c->b = b;
    } else {
        c = calib_new(CH_CALIB_NONE, 0);
        if (c == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    *out = c;
    return CH_OK;
}
