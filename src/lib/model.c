/*
 * model.c -- the family table, hyperparameter sets and the ch_model
 * wrapper shared by every family.
 *
 * The wrapper checks what every family would otherwise check: shapes,
 * labels, weights, both classes present. Families can then assume clean
 * input.
 */
#include "ch/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"

static const ch_model_ops *const families[] = {&ch_model_logreg, &ch_model_xgboost, &ch_model_mlp};
#define N_FAMILIES (sizeof families / sizeof families[0])

struct ch_model {
    const ch_model_ops *ops;
    ch_params params;
    void *state;
};

const ch_model_ops *ch_model_family(const char *name)
{
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (strcmp(families[i]->name, name) == 0)
            return families[i];
    return NULL;
}

const ch_model_ops *ch_model_family_at(size_t i)
{
    return i < N_FAMILIES ? families[i] : NULL;
}

int ch_params_set(ch_params *p, const char *name, double value)
{
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof p->names[0])
        return -1;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->names[i], name) == 0) {
            p->values[i] = value;
            return 0;
        }
    }
    if (p->n == CH_PARAMS_MAX)
        return -1;
    memcpy(p->names[p->n], name, len + 1);
    p->values[p->n++] = value;
    return 0;
}

double ch_params_get(const ch_params *p, const char *name, double def)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return p->values[i];
    return def;
}

ch_err ch_params_to_json(const ch_params *p, ch_buf *b)
{
    ch_buf_putc(b, '{');
    for (size_t i = 0; i < p->n; i++) {
        if (i > 0)
            ch_buf_puts(b, ", ");
        ch_buf_json_str(b, p->names[i], strlen(p->names[i]));
        ch_buf_puts(b, ": ");
        ch_buf_json_num(b, p->values[i]);
    }
    return ch_buf_putc(b, '}');
}

ch_err ch_params_from_json(const ch_json *node, ch_params *out, ch_error *err)
{
    ch_params p = {0};
    if (ch_json_typeof(node) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "parameters must be an object of numbers");
    for (size_t i = 0; i < ch_json_len(node); i++) {
        const ch_json *v;
        const char *k = ch_json_member(node, i, &v);
        double d;
        if (ch_json_num(v, &d) != 0 || !isfinite(d))
            return ch_error_set(err, CH_EFORMAT, "parameter \"%s\" must be a finite number", k);
        if (ch_params_set(&p, k, d) != 0)
            return ch_error_set(err, CH_ELIMIT, "parameter \"%s\": name too long or more than %d",
                                k, CH_PARAMS_MAX);
    }
    *out = p;
    return CH_OK;
}

double ch_sigmoid(double m)
{
    if (m >= 0)
        return 1.0 / (1.0 + exp(-m));
    double e = exp(m);
    return e / (1.0 + e);
}

/* Checks shapes, labels and weights of a training or validation set. */
static ch_err check_set(const ch_dataset *d, const char *what, ch_error *err)
{
    size_t pos = 0;
    if (d->n_rows == 0 || d->n_features == 0)
        return ch_error_set(err, CH_EDATA, "%s set is empty (%zu rows, %zu features)", what,
                            d->n_rows, d->n_features);
    if (d->x == NULL || d->y == NULL)
        return ch_error_set(err, CH_EINVAL, "%s set has no features or labels", what);
    for (size_t i = 0; i < d->n_rows; i++) {
        if (d->y[i] != 0.0 && d->y[i] != 1.0)
            return ch_error_set(err, CH_EINVAL, "%s row %zu: label %g is not 0 or 1", what, i,
                                d->y[i]);
        if (d->w != NULL && !(d->w[i] > 0 && isfinite(d->w[i])))
            return ch_error_set(err, CH_EINVAL, "%s row %zu: weight %g is not positive", what, i,
                                d->w[i]);
        pos += d->y[i] == 1.0;
    }
    for (size_t i = 0; i < d->n_rows * d->n_features; i++)
        if (!isfinite(d->x[i]))
            return ch_error_set(err, CH_EINVAL, "%s row %zu, feature %zu is not a finite number",
                                what, i / d->n_features, i % d->n_features);
    if (pos == 0 || pos == d->n_rows)
        return ch_error_set(err, CH_EDATA, "%s set has one class only (%zu of %zu positive)", what,
                            pos, d->n_rows);
    return CH_OK;
}

ch_err ch_model_fit(const ch_model_ops *ops, const ch_params *p, const ch_dataset *train,
                    const ch_model_fit_opts *o, ch_model **out, ch_model_fit_info *info,
                    ch_error *err)
{
    ch_model_fit_opts defaults = {0, 1, NULL};
    ch_model_fit_info local = {0, NAN};
    ch_model *m;
    ch_err rc;

    if (o == NULL)
        o = &defaults;
    if (info == NULL)
        info = &local;
    info->best_iteration = 0;
    info->valid_loss = NAN;
    if ((rc = ops->check(p, err)) != CH_OK)
        return rc;
    if ((rc = check_set(train, "training", err)) != CH_OK)
        return rc;
    if (o->valid != NULL) {
        if (o->valid->n_features != train->n_features)
            return ch_error_set(err, CH_EINVAL, "validation set has %zu features, training %zu",
                                o->valid->n_features, train->n_features);
        if ((rc = check_set(o->valid, "validation", err)) != CH_OK)
            return rc;
    }
    m = ch_calloc(1, sizeof *m);
    if (m == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    m->ops = ops;
    m->params = *p;
    rc = ops->fit(p, train, o, &m->state, info, err);
    if (rc != CH_OK) {
        ch_free(m);
        return rc;
    }
    *out = m;
    return CH_OK;
}

ch_err ch_model_predict_margin(const ch_model *m, const double *x, size_t n_rows, size_t n_features,
                               double *out, ch_error *err)
{
    return m->ops->predict(m->state, x, n_rows, n_features, out, err);
}

ch_err ch_model_to_json(const ch_model *m, ch_buf *b)
{
    ch_buf_puts(b, "{\"family\": ");
    ch_buf_json_str(b, m->ops->name, strlen(m->ops->name));
    ch_buf_puts(b, ", \"params\": ");
    ch_params_to_json(&m->params, b);
    ch_buf_puts(b, ", \"state\": ");
    ch_err rc = m->ops->save(m->state, b);
    if (rc != CH_OK)
        return rc;
    return ch_buf_putc(b, '}');
}

ch_err ch_model_from_json(const ch_json *node, size_t n_features, ch_model **out, ch_error *err)
{
    const char *fam = ch_json_str(ch_json_get(node, "family"), NULL);
    const ch_model_ops *ops;
    ch_model *m;
    ch_err rc;

    if (fam == NULL)
        return ch_error_set(err, CH_EFORMAT, "model: \"family\" must be a string");
    ops = ch_model_family(fam);
    if (ops == NULL)
        return ch_error_set(err, CH_ENOTFOUND, "model: unknown family \"%s\"", fam);
    m = ch_calloc(1, sizeof *m);
    if (m == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    m->ops = ops;
    rc = ch_params_from_json(ch_json_get(node, "params"), &m->params, err);
    if (rc == CH_OK)
        rc = ops->load(ch_json_get(node, "state"), n_features, &m->state, err);
    if (rc != CH_OK) {
        ch_error_prefix(err, "model (%s)", fam);
        ch_free(m);
        return rc;
    }
    *out = m;
    return CH_OK;
}

const ch_model_ops *ch_model_ops_of(const ch_model *m)
{
    return m->ops;
}

const ch_params *ch_model_params(const ch_model *m)
{
    return &m->params;
}

const void *ch_model_state(const ch_model *m)
{
    return m->state;
}

void ch_model_free(ch_model *m)
{
    if (m == NULL)
        return;
    m->ops->free(m->state);
    ch_free(m);
}
