/*
 * features.c -- declaring, fitting, applying and serializing pipelines.
 *
 * Internally a pipeline is a list of "columns": first every schema column
 * other than the id and the target (in schema order), then the engineered
 * columns in declared order. Each column is categorical (its value is a
 * level index) or numeric (a double, NaN when missing). Engineered columns
 * may read any earlier column. Columns not excluded then emit features:
 *   numeric      value (imputed, maybe standardized) [+ missing indicator]
 *   one-hot      one feature per fitted level + one "(other)" feature
 *   ordinal      rank among fitted levels, imputed when unknown [+ indicator]
 *
 * The declaration is kept as canonical JSON text: a spec is that text, a
 * fit re-reads it, and a saved pipeline embeds it. So the one parser is
 * exercised on every path, and a saved pipeline loads through the same
 * checks a config does.
 *
 * Record transform uses fixed-size stack arrays (CH_PIPELINE_MAX_COLS) so
 * the request path never allocates.
 */
#include "ch/features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/text.h"

#define PIPE_FORMAT  "churn-pipeline"
#define PIPE_VERSION 1
#define LVL_MISSING  (-1)
#define LVL_UNKNOWN  (-2)

typedef enum op { OP_NONE, OP_RATIO, OP_DIFF, OP_LOG1P, OP_BUCKET, OP_COUNT_EQ, OP_EQUALS } op;
static const char *const op_names[] = {"",       "ratio",       "difference", "log1p",
                                       "bucket", "count_equal", "equals"};
typedef enum enc { ENC_NUMERIC, ENC_ONEHOT, ENC_ORDINAL } enc;
typedef enum ind { IND_AUTO, IND_ALWAYS, IND_NEVER } ind;
static const char *const ind_names[] = {"auto", "always", "never"};

typedef struct pcol {
    char *name;
    char *label;
    int is_cat;    /* level-valued */
    long schema_j; /* schema column, or -1 for engineered */
    int emit;      /* 0 when excluded */
    enc encoder;
    /* categorical: levels[0..n_fit) are fitted (own one-hot feature);
     * levels[n_fit..n_levels) are only compared against */
    char **levels;
    size_t n_levels, n_fit;
    /* numeric */
    double median, mean, sd;
    int indicator;
    /* engineered */
    op op;
    size_t *in; /* input column indices */
    size_t n_in;
    double *edges; /* bucket */
    size_t n_edges;
    int zero_missing; /* ratio: x/0 is missing (1) or 'on_zero' (0) */
    double on_zero;
    char **cmp; /* count_equal: one value; equals: a set */
    size_t n_cmp;
    int32_t *cmp_lvl; /* per input (count_equal) or per value (equals): level index */
    double *cmp_num;  /* same, for numeric inputs */
    /* outputs */
    size_t out0, n_out;
    uint32_t *sources;
    size_t n_sources;
} pcol;

typedef struct feat {
    char *name;
    ch_feature_kind kind;
    size_t col;
} feat;

struct ch_pipeline {
    pcol *cols;
    size_t n_cols;
    size_t n_inputs; /* schema columns (all, including id/target) */
    long *input_col; /* schema column -> pipeline column, or -1 */
    feat *feats;
    size_t n_feats;
    int standardize;
    ind indicators;
    double min_count;
    char *decl; /* canonical declaration JSON */
    char schema_hash[CH_SHA256_HEX_LEN + 1];
};

struct ch_pipeline_spec {
    char *decl;
    int standardize;
    char schema_hash[CH_SHA256_HEX_LEN + 1];
};

/* ---- lifetime ---------------------------------------------------------- */

static void free_strs(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        ch_free(v[i]);
    ch_free(v);
}

void ch_pipeline_free(ch_pipeline *p)
{
    if (p == NULL)
        return;
    for (size_t c = 0; c < p->n_cols; c++) {
        pcol *x = &p->cols[c];
        ch_free(x->name);
        ch_free(x->label);
        free_strs(x->levels, x->n_levels);
        ch_free(x->in);
        ch_free(x->edges);
        free_strs(x->cmp, x->n_cmp);
        ch_free(x->cmp_lvl);
        ch_free(x->cmp_num);
        ch_free(x->sources);
    }
    for (size_t k = 0; k < p->n_feats; k++)
        ch_free(p->feats[k].name);
    ch_free(p->feats);
    ch_free(p->cols);
    ch_free(p->input_col);
    ch_free(p->decl);
    ch_free(p);
}

void ch_pipeline_spec_free(ch_pipeline_spec *s)
{
    if (s == NULL)
        return;
    ch_free(s->decl);
    ch_free(s);
}

ch_err ch_pipeline_spec_clone(const ch_pipeline_spec *spec, ch_pipeline_spec **out, ch_error *err)
{
    ch_pipeline_spec *c = ch_calloc(1, sizeof *c);
    if (c == NULL || (c->decl = ch_strdup(spec->decl)) == NULL) {
        ch_free(c);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    c->standardize = spec->standardize;
    memcpy(c->schema_hash, spec->schema_hash, sizeof c->schema_hash);
    *out = c;
    return CH_OK;
}

void ch_pipeline_spec_set_standardize(ch_pipeline_spec *s, int on)
{
    s->standardize = on != 0;
}

static long find_col(const ch_pipeline *p, const char *name)
{
    for (size_t c = 0; c < p->n_cols; c++)
        if (strcmp(p->cols[c].name, name) == 0)
            return (long)c;
    return -1;
}

static long find_level(const pcol *x, const char *s, size_t len)
{
    for (size_t k = 0; k < x->n_levels; k++)
        if (strncmp(x->levels[k], s, len) == 0 && x->levels[k][len] == '\0')
            return (long)k;
    return -1;
}

/* Appends a level to 'x' (known to be absent). */
static ch_err add_level(pcol *x, const char *s, ch_error *err)
{
    char **v = ch_realloc(x->levels, (x->n_levels + 1) * sizeof *v);
    if (v == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    x->levels = v;
    v[x->n_levels] = ch_strdup(s);
    if (v[x->n_levels] == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    x->n_levels++;
    return CH_OK;
}

/* ---- declaration: parse ------------------------------------------------ */

static ch_err str_list(const ch_json *node, const char *where, char ***out, size_t *n,
                       ch_error *err)
{
    char **v;
    if (ch_json_typeof(node) != CH_JSON_ARRAY || ch_json_len(node) == 0)
        return ch_error_set(err, CH_EFORMAT, "%s: expected a non-empty array of strings", where);
    v = ch_calloc(ch_json_len(node), sizeof *v);
    if (v == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < ch_json_len(node); i++) {
        const char *s = ch_json_str(ch_json_at(node, i), NULL);
        if (s == NULL) {
            free_strs(v, i);
            return ch_error_set(err, CH_EFORMAT, "%s[%zu]: expected a string", where, i);
        }
        v[i] = ch_strdup(s);
        if (v[i] == NULL) {
            free_strs(v, i);
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
    }
    *out = v;
    *n = ch_json_len(node);
    return CH_OK;
}

static ch_err check_keys(const ch_json *obj, const char *const *keys, const char *where,
                         ch_error *err)
{
    for (size_t i = 0; i < ch_json_len(obj); i++) {
        const char *k = ch_json_member(obj, i, NULL);
        int ok = 0;
        for (size_t m = 0; keys[m] != NULL && !ok; m++)
            ok = strcmp(k, keys[m]) == 0;
        if (!ok)
            return ch_error_set(err, CH_EFORMAT, "%s: unknown key \"%s\"", where, k);
    }
    return CH_OK;
}

static ch_err new_col(ch_pipeline *p, const char *name, const char *label, pcol **out,
                      ch_error *err)
{
    pcol *x;
    if (p->n_cols >= CH_PIPELINE_MAX_COLS)
        return ch_error_set(err, CH_ELIMIT, "more than %d columns", CH_PIPELINE_MAX_COLS);
    x = &p->cols[p->n_cols];
    memset(x, 0, sizeof *x);
    x->name = ch_strdup(name);
    x->label = ch_strdup(label);
    x->schema_j = -1;
    x->emit = 1;
    x->sd = 1.0;
    p->n_cols++;
    if (x->name == NULL || x->label == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    *out = x;
    return CH_OK;
}

/* Resolves the comparison value 'text' against input column 'x' (and its
 * schema column 'sc', when it is an input): a level index for categorical
 * columns (adding a compare-only level if needed), a number otherwise. */
static ch_err resolve_cmp(pcol *x, const ch_schema_col *sc, const char *text, int32_t *lvl,
                          double *num, const char *where, ch_error *err)
{
    *lvl = LVL_UNKNOWN;
    *num = NAN;
    if (x->is_cat) {
        long k = find_level(x, text, strlen(text));
        if (k < 0 && sc != NULL && sc->on_unknown == CH_UNKNOWN_REJECT)
            return ch_error_set(err, CH_EFORMAT,
                                "%s: \"%s\" is not a category of column \"%s\" (a typo?)", where,
                                text, x->name);
        if (k < 0) {
            ch_err rc = add_level(x, text, err);
            if (rc != CH_OK)
                return rc;
            k = (long)x->n_levels - 1;
        }
        *lvl = (int32_t)k;
        return CH_OK;
    }
    if (sc != NULL) {
        int32_t cat;
        ch_reason why;
        if (ch_schema_parse_value(sc, text, strlen(text), num, &cat, &why) == CH_VALUE_OK)
            return CH_OK;
    } else if (ch_parse_double(text, strlen(text), num) == 0) {
        return CH_OK;
    }
    return ch_error_set(err, CH_EFORMAT, "%s: \"%s\" is not a value of column \"%s\"", where, text,
                        x->name);
}

static const char *const derived_keys[] = {"name",  "op",     "inputs",  "label", "edges",
                                           "value", "values", "on_zero", NULL};

static ch_err parse_derived(ch_pipeline *p, const ch_schema *s, const ch_json *d, size_t i,
                            ch_error *err)
{
    char where[160];
    const char *name = ch_json_str(ch_json_get(d, "name"), NULL);
    const char *opn = ch_json_str(ch_json_get(d, "op"), NULL);
    const char *label = ch_json_str(ch_json_get(d, "label"), NULL);
    const ch_json *inputs = ch_json_get(d, "inputs");
    char **in_names = NULL;
    size_t n_in = 0;
    pcol *x = NULL;
    op o = OP_NONE;
    ch_err rc;

    snprintf(where, sizeof where, "derived[%zu]", i);
    if (ch_json_typeof(d) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "%s: expected an object", where);
    if (name == NULL || name[0] == '\0')
        return ch_error_set(err, CH_EFORMAT, "%s: \"name\" must be a non-empty string", where);
    snprintf(where, sizeof where, "derived[%zu] (%.100s)", i, name);
    if ((rc = check_keys(d, derived_keys, where, err)) != CH_OK)
        return rc;
    if (find_col(p, name) >= 0 || ch_schema_find(s, name) >= 0)
        return ch_error_set(err, CH_EFORMAT, "%s: the name is already used by a column", where);
    for (int k = 1; k < 7 && opn != NULL; k++)
        if (strcmp(opn, op_names[k]) == 0)
            o = (op)k;
    if (o == OP_NONE)
        return ch_error_set(err, CH_EFORMAT,
                            "%s: \"op\" must be one of ratio, difference, log1p, bucket, "
                            "count_equal, equals",
                            where);
    if (ch_json_get(d, "label") != NULL && label == NULL)
        return ch_error_set(err, CH_EFORMAT, "%s: \"label\" must be a string", where);
    {
        char w2[200];
        snprintf(w2, sizeof w2, "%s: inputs", where);
        if ((rc = str_list(inputs, w2, &in_names, &n_in, err)) != CH_OK)
            return rc;
    }
    if ((o == OP_RATIO || o == OP_DIFF) && n_in != 2) {
        rc = ch_error_set(err, CH_EFORMAT, "%s: %s takes exactly 2 inputs", where, opn);
        goto done;
    }
    if ((o == OP_LOG1P || o == OP_BUCKET || o == OP_EQUALS) && n_in != 1) {
        rc = ch_error_set(err, CH_EFORMAT, "%s: %s takes exactly 1 input", where, opn);
        goto done;
    }
    if ((rc = new_col(p, name, label != NULL ? label : name, &x, err)) != CH_OK)
        goto done;
    x->op = o;
    x->in = ch_calloc(n_in, sizeof *x->in);
    if (x->in == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    x->n_in = n_in;
    for (size_t k = 0; k < n_in; k++) {
        long c = find_col(p, in_names[k]);
        if (c < 0 || (size_t)c == p->n_cols - 1) {
            rc = ch_error_set(err, CH_EFORMAT,
                              "%s: input \"%s\" is not a schema column or an earlier derived "
                              "column (id and target cannot be inputs)",
                              where, in_names[k]);
            goto done;
        }
        if (p->cols[c].is_cat && o != OP_COUNT_EQ && o != OP_EQUALS) {
            rc = ch_error_set(err, CH_EFORMAT, "%s: input \"%s\" is categorical; %s needs numbers",
                              where, in_names[k], opn);
            goto done;
        }
        x->in[k] = (size_t)c;
    }
    if (o == OP_BUCKET) {
        const ch_json *e = ch_json_get(d, "edges");
        size_t n = ch_json_len(e);
        if (ch_json_typeof(e) != CH_JSON_ARRAY || n == 0) {
            rc = ch_error_set(err, CH_EFORMAT, "%s: bucket needs \"edges\", a non-empty array",
                              where);
            goto done;
        }
        x->edges = ch_calloc(n, sizeof *x->edges);
        if (x->edges == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        x->n_edges = n;
        for (size_t k = 0; k < n; k++) {
            if (ch_json_num(ch_json_at(e, k), &x->edges[k]) != 0 || !isfinite(x->edges[k]) ||
                (k > 0 && x->edges[k] <= x->edges[k - 1])) {
                rc = ch_error_set(err, CH_EFORMAT,
                                  "%s: edges[%zu]: edges must be increasing "
                                  "numbers",
                                  where, k);
                goto done;
            }
        }
    } else if (ch_json_get(d, "edges") != NULL) {
        rc = ch_error_set(err, CH_EFORMAT, "%s: \"edges\" applies only to bucket", where);
        goto done;
    }
    x->zero_missing = 1;
    if (ch_json_get(d, "on_zero") != NULL) {
        const ch_json *z = ch_json_get(d, "on_zero");
        if (o != OP_RATIO) {
            rc = ch_error_set(err, CH_EFORMAT, "%s: \"on_zero\" applies only to ratio", where);
            goto done;
        }
        if (ch_json_typeof(z) != CH_JSON_NULL) {
            if (ch_json_num(z, &x->on_zero) != 0) {
                rc = ch_error_set(err, CH_EFORMAT, "%s: \"on_zero\" must be a number or null",
                                  where);
                goto done;
            }
            x->zero_missing = 0;
        }
    }
    if (o == OP_COUNT_EQ || o == OP_EQUALS) {
        const ch_json *v1 = ch_json_get(d, "value");
        const ch_json *vs = ch_json_get(d, "values");
        size_t ncmp;
        if (o == OP_COUNT_EQ) {
            const char *v = ch_json_str(v1, NULL);
            if (v == NULL || vs != NULL) {
                rc = ch_error_set(err, CH_EFORMAT, "%s: count_equal needs \"value\", a string",
                                  where);
                goto done;
            }
            x->cmp = ch_calloc(1, sizeof *x->cmp);
            if (x->cmp == NULL || (x->cmp[0] = ch_strdup(v)) == NULL) {
                rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                goto done;
            }
            x->n_cmp = 1;
            ncmp = n_in;
        } else {
            char w2[200];
            snprintf(w2, sizeof w2, "%s: values", where);
            if (v1 != NULL) {
                rc = ch_error_set(err, CH_EFORMAT, "%s: equals takes \"values\" (a list)", where);
                goto done;
            }
            if ((rc = str_list(vs, w2, &x->cmp, &x->n_cmp, err)) != CH_OK)
                goto done;
            ncmp = x->n_cmp;
        }
        x->cmp_lvl = ch_calloc(ncmp, sizeof *x->cmp_lvl);
        x->cmp_num = ch_calloc(ncmp, sizeof *x->cmp_num);
        if (x->cmp_lvl == NULL || x->cmp_num == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < ncmp; k++) {
            pcol *src = &p->cols[x->in[o == OP_COUNT_EQ ? k : 0]];
            const char *text = x->cmp[o == OP_COUNT_EQ ? 0 : k];
            const ch_schema_col *sc =
                src->schema_j >= 0 ? ch_schema_col_ref(s, (size_t)src->schema_j) : NULL;
            rc = resolve_cmp(src, sc, text, &x->cmp_lvl[k], &x->cmp_num[k], where, err);
            if (rc != CH_OK)
                goto done;
        }
    } else if (ch_json_get(d, "value") != NULL || ch_json_get(d, "values") != NULL) {
        rc = ch_error_set(err, CH_EFORMAT, "%s: \"value(s)\" apply only to count_equal and equals",
                          where);
        goto done;
    }
    rc = CH_OK;
done:
    free_strs(in_names, n_in);
    return rc;
}

static const char *const spec_keys[] = {"derived",     "encoders",           "exclude",
                                        "standardize", "missing_indicators", "min_category_count",
                                        NULL};

/* Builds the unfitted columns of 'p' from declaration 'node'. */
static ch_err parse_decl(ch_pipeline *p, const ch_json *node, const ch_schema *s, ch_error *err)
{
    const ch_json *v;
    ch_err rc;
    size_t n_schema = ch_schema_n_cols(s);
    size_t n_derived;

    if (ch_json_typeof(node) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "features: expected an object");
    if ((rc = check_keys(node, spec_keys, "features", err)) != CH_OK)
        return rc;
    v = ch_json_get(node, "derived");
    if (v != NULL && ch_json_typeof(v) != CH_JSON_ARRAY)
        return ch_error_set(err, CH_EFORMAT, "features: \"derived\" must be an array");
    n_derived = ch_json_len(v);
    if (n_schema + n_derived > CH_PIPELINE_MAX_COLS)
        return ch_error_set(err, CH_ELIMIT, "features: more than %d columns", CH_PIPELINE_MAX_COLS);
    p->cols = ch_calloc(n_schema + n_derived, sizeof *p->cols);
    p->input_col = ch_calloc(n_schema, sizeof *p->input_col);
    if (p->cols == NULL || p->input_col == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    p->n_inputs = n_schema;
    memcpy(p->schema_hash, ch_schema_hash(s), CH_SHA256_HEX_LEN + 1);

    v = ch_json_get(node, "standardize");
    if (v != NULL && ch_json_bool(v, &p->standardize) != 0)
        return ch_error_set(err, CH_EFORMAT, "features: \"standardize\" must be true or false");
    p->indicators = IND_AUTO;
    v = ch_json_get(node, "missing_indicators");
    if (v != NULL) {
        const char *t = ch_json_str(v, NULL);
        int ok = 0;
        for (int k = 0; k < 3 && t != NULL; k++)
            if (strcmp(t, ind_names[k]) == 0) {
                p->indicators = (ind)k;
                ok = 1;
            }
        if (!ok)
            return ch_error_set(err, CH_EFORMAT,
                                "features: \"missing_indicators\" must be "
                                "\"auto\", \"always\" or \"never\"");
    }
    p->min_count = 1;
    v = ch_json_get(node, "min_category_count");
    if (v != NULL && (ch_json_num(v, &p->min_count) != 0 || p->min_count < 1 ||
                      p->min_count != floor(p->min_count)))
        return ch_error_set(err, CH_EFORMAT,
                            "features: \"min_category_count\" must be a whole number >= 1");

    for (size_t j = 0; j < n_schema; j++) {
        const ch_schema_col *sc = ch_schema_col_ref(s, j);
        pcol *x;
        p->input_col[j] = -1;
        if (sc->kind == CH_KIND_ID || sc->kind == CH_KIND_TARGET)
            continue;
        if ((rc = new_col(p, sc->name, sc->label, &x, err)) != CH_OK)
            return rc;
        x->schema_j = (long)j;
        x->is_cat = sc->kind == CH_KIND_CATEGORICAL;
        x->encoder = x->is_cat ? ENC_ONEHOT : ENC_NUMERIC;
        p->input_col[j] = (long)(p->n_cols - 1);
        for (size_t k = 0; x->is_cat && k < sc->n_categories; k++)
            if ((rc = add_level(x, sc->categories[k], err)) != CH_OK)
                return rc;
    }
    v = ch_json_get(node, "exclude");
    for (size_t i = 0; i < ch_json_len(v); i++) {
        const char *name = ch_json_str(ch_json_at(v, i), NULL);
        long c = name != NULL ? find_col(p, name) : -1;
        if (ch_json_typeof(v) != CH_JSON_ARRAY || c < 0)
            return ch_error_set(err, CH_EFORMAT,
                                "features: exclude[%zu]: not a feature column of the schema", i);
        p->cols[c].emit = 0;
    }
    if (v != NULL && ch_json_typeof(v) != CH_JSON_ARRAY)
        return ch_error_set(err, CH_EFORMAT, "features: \"exclude\" must be an array");
    v = ch_json_get(node, "derived");
    for (size_t i = 0; i < n_derived; i++)
        if ((rc = parse_derived(p, s, ch_json_at(v, i), i, err)) != CH_OK)
            return rc;
    v = ch_json_get(node, "encoders");
    if (v != NULL && ch_json_typeof(v) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "features: \"encoders\" must be an object");
    for (size_t i = 0; i < ch_json_len(v); i++) {
        const ch_json *e;
        const char *name = ch_json_member(v, i, &e);
        const char *t = ch_json_str(e, NULL);
        long c = find_col(p, name);
        if (c < 0)
            return ch_error_set(err, CH_EFORMAT, "features: encoders: \"%s\" is not a column",
                                name);
        if (t != NULL && strcmp(t, "onehot") == 0 && p->cols[c].is_cat)
            p->cols[c].encoder = ENC_ONEHOT;
        else if (t != NULL && strcmp(t, "ordinal") == 0 && p->cols[c].is_cat)
            p->cols[c].encoder = ENC_ORDINAL;
        else if (t != NULL && strcmp(t, "passthrough") == 0 && !p->cols[c].is_cat)
            p->cols[c].encoder = ENC_NUMERIC;
        else
            return ch_error_set(err, CH_EFORMAT,
                                "features: encoders: \"%s\": use onehot or ordinal for "
                                "categorical columns, passthrough for numeric ones",
                                name);
    }
    return CH_OK;
}

/* ---- declaration: canonical text -------------------------------------- */

static void json_strs(ch_buf *b, char **v, size_t n)
{
    ch_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ch_buf_puts(b, ", ");
        ch_buf_json_str(b, v[i], strlen(v[i]));
    }
    ch_buf_putc(b, ']');
}

static void write_decl(const ch_pipeline *p, ch_buf *b)
{
    int first = 1;
    ch_buf_printf(b,
                  "{\"standardize\": %s, \"missing_indicators\": \"%s\", "
                  "\"min_category_count\": %.0f, \"exclude\": [",
                  p->standardize ? "true" : "false", ind_names[p->indicators], p->min_count);
    for (size_t c = 0; c < p->n_cols; c++) {
        if (p->cols[c].emit)
            continue;
        ch_buf_puts(b, first ? "" : ", ");
        ch_buf_json_str(b, p->cols[c].name, strlen(p->cols[c].name));
        first = 0;
    }
    ch_buf_puts(b, "], \"encoders\": {");
    first = 1;
    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        if (!x->is_cat)
            continue;
        ch_buf_puts(b, first ? "" : ", ");
        ch_buf_json_str(b, x->name, strlen(x->name));
        ch_buf_puts(b, x->encoder == ENC_ORDINAL ? ": \"ordinal\"" : ": \"onehot\"");
        first = 0;
    }
    ch_buf_puts(b, "}, \"derived\": [");
    first = 1;
    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        if (x->op == OP_NONE)
            continue;
        ch_buf_puts(b, first ? "\n  {\"name\": " : ",\n  {\"name\": ");
        first = 0;
        ch_buf_json_str(b, x->name, strlen(x->name));
        ch_buf_printf(b, ", \"op\": \"%s\", \"label\": ", op_names[x->op]);
        ch_buf_json_str(b, x->label, strlen(x->label));
        ch_buf_puts(b, ", \"inputs\": [");
        for (size_t k = 0; k < x->n_in; k++) {
            const char *n = p->cols[x->in[k]].name;
            ch_buf_puts(b, k ? ", " : "");
            ch_buf_json_str(b, n, strlen(n));
        }
        ch_buf_putc(b, ']');
        if (x->op == OP_BUCKET) {
            ch_buf_puts(b, ", \"edges\": [");
            for (size_t k = 0; k < x->n_edges; k++) {
                ch_buf_puts(b, k ? ", " : "");
                ch_buf_json_num(b, x->edges[k]);
            }
            ch_buf_putc(b, ']');
        }
        if (x->op == OP_RATIO && !x->zero_missing) {
            ch_buf_puts(b, ", \"on_zero\": ");
            ch_buf_json_num(b, x->on_zero);
        }
        if (x->op == OP_COUNT_EQ) {
            ch_buf_puts(b, ", \"value\": ");
            ch_buf_json_str(b, x->cmp[0], strlen(x->cmp[0]));
        }
        if (x->op == OP_EQUALS) {
            ch_buf_puts(b, ", \"values\": ");
            json_strs(b, x->cmp, x->n_cmp);
        }
        ch_buf_putc(b, '}');
    }
    ch_buf_puts(b, "]}");
}

/* Parses 'node' against 's' into a new unfitted pipeline. */
static ch_err decl_load(const ch_json *node, const ch_schema *s, ch_pipeline **out, ch_error *err)
{
    ch_pipeline *p = ch_calloc(1, sizeof *p);
    ch_buf b;
    ch_err rc;
    if (p == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    rc = parse_decl(p, node, s, err);
    if (rc == CH_OK) {
        ch_buf_init(&b, (size_t)16 << 20);
        write_decl(p, &b);
        p->decl = ch_buf_take(&b, NULL);
        if (p->decl == NULL)
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    if (rc != CH_OK) {
        ch_pipeline_free(p);
        return rc;
    }
    *out = p;
    return CH_OK;
}

ch_err ch_pipeline_spec_from_json(const ch_json *node, const ch_schema *s, ch_pipeline_spec **out,
                                  ch_error *err)
{
    ch_pipeline *p = NULL;
    ch_pipeline_spec *spec;
    ch_err rc = decl_load(node, s, &p, err);
    if (rc != CH_OK)
        return rc;
    spec = ch_calloc(1, sizeof *spec);
    if (spec == NULL) {
        ch_pipeline_free(p);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    spec->decl = p->decl;
    spec->standardize = p->standardize;
    memcpy(spec->schema_hash, p->schema_hash, sizeof spec->schema_hash);
    p->decl = NULL;
    ch_pipeline_free(p);
    *out = spec;
    return CH_OK;
}

ch_err ch_pipeline_spec_auto(const ch_schema *s, ch_pipeline_spec **out, ch_error *err)
{
    ch_buf b;
    ch_json *doc = NULL;
    ch_err rc;
    int first = 1;
    ch_buf_init(&b, (size_t)16 << 20);
    ch_buf_puts(&b, "{\"exclude\": [");
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        if (!c->pii || c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET)
            continue;
        ch_buf_puts(&b, first ? "" : ", ");
        ch_buf_json_str(&b, c->name, strlen(c->name));
        first = 0;
    }
    ch_buf_puts(&b, "]}");
    if ((rc = ch_buf_status(&b)) != CH_OK) {
        ch_buf_reset(&b);
        return ch_error_set(err, rc, "out of memory");
    }
    rc = ch_json_parse(b.data, b.len, &doc, err);
    if (rc == CH_OK)
        rc = ch_pipeline_spec_from_json(doc, s, out, err);
    ch_json_free(doc);
    ch_buf_reset(&b);
    return rc;
}

ch_err ch_pipeline_spec_to_json(const ch_pipeline_spec *spec, ch_buf *b)
{
    return ch_buf_puts(b, spec->decl);
}

/* ---- evaluation --------------------------------------------------------- */

/* Computes engineered column 'x' from the row state 'val'/'lvl'. */
static double eval_op(const pcol *x, const double *val, const int32_t *lvl, const pcol *cols);

/* Computes engineered column 'x'; a result that overflows to an infinity
 * is treated as missing (imputed like any other missing value). */
static double eval_derived(const pcol *x, const double *val, const int32_t *lvl, const pcol *cols)
{
    double v = eval_op(x, val, lvl, cols);
    return isfinite(v) ? v : NAN;
}

static double eval_op(const pcol *x, const double *val, const int32_t *lvl, const pcol *cols)
{
    double a;
    double b;
    switch (x->op) {
    case OP_RATIO:
        a = val[x->in[0]];
        b = val[x->in[1]];
        if (isnan(a) || isnan(b))
            return NAN;
        if (b == 0.0)
            return x->zero_missing ? NAN : x->on_zero;
        return a / b;
    case OP_DIFF:
        return val[x->in[0]] - val[x->in[1]];
    case OP_LOG1P:
        a = val[x->in[0]];
        return a > -1.0 ? log1p(a) : NAN;
    case OP_BUCKET: {
        size_t k = 0;
        a = val[x->in[0]];
        if (isnan(a))
            return NAN;
        while (k < x->n_edges && a >= x->edges[k])
            k++;
        return (double)k;
    }
    case OP_COUNT_EQ: {
        double n = 0;
        for (size_t k = 0; k < x->n_in; k++) {
            size_t c = x->in[k];
            if (cols[c].is_cat ? lvl[c] == x->cmp_lvl[k] : val[c] == x->cmp_num[k])
                n += 1;
        }
        return n;
    }
    case OP_EQUALS: {
        size_t c = x->in[0];
        if (cols[c].is_cat ? lvl[c] < 0 && lvl[c] != LVL_UNKNOWN : isnan(val[c]))
            return NAN;
        for (size_t k = 0; k < x->n_cmp; k++)
            if (cols[c].is_cat ? lvl[c] == x->cmp_lvl[k] : val[c] == x->cmp_num[k])
                return 1.0;
        return 0.0;
    }
    case OP_NONE:
        break;
    }
    return NAN;
}

/* Fills engineered columns, then writes features into 'out'. 'val' and
 * 'lvl' hold every column's state; input columns are already set. */
static void encode_row(const ch_pipeline *p, double *val, int32_t *lvl, double *out,
                       ch_transform_stats *st)
{
    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        if (x->op != OP_NONE)
            val[c] = eval_derived(x, val, lvl, p->cols);
        if (!x->emit)
            continue;
        double *o = out + x->out0;
        if (x->encoder == ENC_ONEHOT) {
            int32_t l = lvl[c];
            memset(o, 0, x->n_out * sizeof *o);
            if (l >= 0 && (size_t)l < x->n_fit) {
                o[l] = 1.0;
            } else {
                o[x->n_fit] = 1.0;
                if (l == LVL_MISSING)
                    st->n_missing++;
                else
                    st->n_unknown++;
            }
            continue;
        }
        double v;
        if (x->encoder == ENC_ORDINAL) {
            int32_t l = lvl[c];
            if (l >= 0 && (size_t)l < x->n_fit) {
                v = (double)l;
            } else {
                v = NAN;
                if (l == LVL_MISSING)
                    st->n_missing++;
                else
                    st->n_unknown++;
            }
        } else {
            v = val[c];
            if (isnan(v))
                st->n_missing++;
        }
        int miss = isnan(v);
        if (miss)
            v = x->median;
        if (p->standardize)
            v = (v - x->mean) / x->sd;
        o[0] = v;
        if (x->indicator)
            o[1] = miss ? 1.0 : 0.0;
    }
    st->n_rows++;
}

void ch_pipeline_transform_record(const ch_pipeline *p, const ch_value *vals, double *out,
                                  ch_transform_stats *stats)
{
    double val[CH_PIPELINE_MAX_COLS];
    int32_t lvl[CH_PIPELINE_MAX_COLS];
    ch_transform_stats local = {0};
    ch_transform_stats *st = stats != NULL ? stats : &local;

    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        val[c] = NAN;
        lvl[c] = LVL_MISSING;
        if (x->schema_j < 0)
            continue;
        const ch_value *v = &vals[x->schema_j];
        if (v->missing)
            continue;
        if (x->is_cat) {
            long k = find_level(x, v->str, v->len);
            lvl[c] = k >= 0 ? (int32_t)k : LVL_UNKNOWN;
        } else {
            val[c] = v->num;
        }
    }
    encode_row(p, val, lvl, out, st);
}

/* Checks that 'f' has the schema's columns with the right types and
 * builds, for each categorical input, a map from frame codes to levels. */
static ch_err frame_maps(const ch_pipeline *p, const ch_frame *f, int32_t ***maps_out,
                         ch_error *err)
{
    int32_t **maps;
    if (ch_frame_n_cols(f) != p->n_inputs)
        return ch_error_set(err, CH_EINVAL, "frame has %zu columns, the pipeline expects %zu",
                            ch_frame_n_cols(f), p->n_inputs);
    maps = ch_calloc(p->n_cols, sizeof *maps);
    if (maps == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        size_t j = (size_t)x->schema_j;
        if (x->schema_j < 0)
            continue;
        if (strcmp(ch_frame_col_name(f, j), x->name) != 0 ||
            ch_frame_col_type(f, j) != (x->is_cat ? CH_COL_CAT : CH_COL_NUM)) {
            for (size_t k = 0; k < c; k++)
                ch_free(maps[k]);
            ch_free(maps);
            return ch_error_set(err, CH_EINVAL, "frame column %zu is not \"%s\" of the right type",
                                j, x->name);
        }
        if (!x->is_cat)
            continue;
        size_t nl = ch_frame_n_levels(f, j);
        maps[c] = ch_calloc(nl == 0 ? 1 : nl, sizeof **maps);
        if (maps[c] == NULL) {
            for (size_t k = 0; k < c; k++)
                ch_free(maps[k]);
            ch_free(maps);
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
        for (size_t k = 0; k < nl; k++) {
            const char *t = ch_frame_level(f, j, k);
            long l = find_level(x, t, strlen(t));
            maps[c][k] = l >= 0 ? (int32_t)l : LVL_UNKNOWN;
        }
    }
    *maps_out = maps;
    return CH_OK;
}

static void free_maps(int32_t **maps, size_t n)
{
    if (maps == NULL)
        return;
    for (size_t c = 0; c < n; c++)
        ch_free(maps[c]);
    ch_free(maps);
}

/* Loads row 'i' of 'f' into the input part of 'val'/'lvl'. */
static void load_row(const ch_pipeline *p, const ch_frame *f, int32_t *const *maps, size_t i,
                     double *val, int32_t *lvl)
{
    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        val[c] = NAN;
        lvl[c] = LVL_MISSING;
        if (x->schema_j < 0)
            continue;
        if (x->is_cat) {
            int32_t code = ch_frame_codes(f, (size_t)x->schema_j)[i];
            lvl[c] = code < 0 ? LVL_MISSING : maps[c][code];
        } else {
            val[c] = ch_frame_num(f, (size_t)x->schema_j)[i];
        }
    }
}

ch_err ch_pipeline_transform_frame(const ch_pipeline *p, const ch_frame *f, const size_t *rows,
                                   size_t n_rows, double *out, ch_transform_stats *stats,
                                   ch_error *err)
{
    double val[CH_PIPELINE_MAX_COLS];
    int32_t lvl[CH_PIPELINE_MAX_COLS];
    int32_t **maps = NULL;
    ch_transform_stats local = {0};
    ch_err rc = frame_maps(p, f, &maps, err);
    if (rc != CH_OK)
        return rc;
    if (rows == NULL)
        n_rows = ch_frame_n_rows(f);
    for (size_t r = 0; r < n_rows; r++) {
        size_t i = rows != NULL ? rows[r] : r;
        if (i >= ch_frame_n_rows(f)) {
            free_maps(maps, p->n_cols);
            return ch_error_set(err, CH_EINVAL, "row %zu is past the frame's %zu rows", i,
                                ch_frame_n_rows(f));
        }
        load_row(p, f, maps, i, val, lvl);
        encode_row(p, val, lvl, out + r * p->n_feats, &local);
    }
    free_maps(maps, p->n_cols);
    if (stats != NULL) {
        stats->n_rows += local.n_rows;
        stats->n_unknown += local.n_unknown;
        stats->n_missing += local.n_missing;
    }
    return CH_OK;
}

/* ---- layout ------------------------------------------------------------- */

/* Adds the schema columns behind column 'c' to its source list. */
static ch_err collect_sources(ch_pipeline *p, size_t c, ch_error *err)
{
    pcol *x = &p->cols[c];
    uint32_t buf[CH_PIPELINE_MAX_COLS];
    size_t n = 0;
    if (x->schema_j >= 0) {
        buf[n++] = (uint32_t)x->schema_j;
    } else {
        for (size_t k = 0; k < x->n_in; k++) {
            const pcol *src = &p->cols[x->in[k]];
            for (size_t m = 0; m < src->n_sources; m++) {
                size_t q = 0;
                while (q < n && buf[q] != src->sources[m])
                    q++;
                if (q == n)
                    buf[n++] = src->sources[m];
            }
        }
    }
    x->sources = ch_malloc_array(n, sizeof *x->sources);
    if (x->sources == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    memcpy(x->sources, buf, n * sizeof *buf);
    x->n_sources = n;
    return CH_OK;
}

static ch_err add_feat(ch_pipeline *p, size_t c, ch_feature_kind kind, const char *suffix,
                       ch_error *err)
{
    const pcol *x = &p->cols[c];
    feat *f = &p->feats[p->n_feats];
    size_t len = strlen(x->name) + (suffix != NULL ? strlen(suffix) + 1 : 0) + 1;
    f->name = ch_malloc(len);
    if (f->name == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    snprintf(f->name, len, "%s%s%s", x->name,
             suffix == NULL              ? ""
             : kind == CH_FEAT_INDICATOR ? ":"
                                         : "=",
             suffix != NULL ? suffix : "");
    f->kind = kind;
    f->col = c;
    p->n_feats++;
    return CH_OK;
}

/* Assigns output positions and names once levels and indicators are known. */
static ch_err layout(ch_pipeline *p, ch_error *err)
{
    size_t n = 0;
    ch_err rc;
    for (size_t c = 0; c < p->n_cols; c++) {
        pcol *x = &p->cols[c];
        if ((rc = collect_sources(p, c, err)) != CH_OK)
            return rc;
        x->out0 = n;
        x->n_out = 0;
        if (!x->emit)
            continue;
        x->n_out = x->encoder == ENC_ONEHOT ? x->n_fit + 1 : 1 + (size_t)(x->indicator != 0);
        n += x->n_out;
    }
    p->feats = ch_calloc(n == 0 ? 1 : n, sizeof *p->feats);
    if (p->feats == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        if (!x->emit)
            continue;
        if (x->encoder == ENC_ONEHOT) {
            for (size_t k = 0; k < x->n_fit; k++)
                if ((rc = add_feat(p, c, CH_FEAT_ONEHOT, x->levels[k], err)) != CH_OK)
                    return rc;
            rc = add_feat(p, c, CH_FEAT_OTHER, "(other)", err);
        } else {
            rc = add_feat(p, c, x->encoder == ENC_ORDINAL ? CH_FEAT_ORDINAL : CH_FEAT_NUMERIC, NULL,
                          err);
            if (rc == CH_OK && x->indicator)
                rc = add_feat(p, c, CH_FEAT_INDICATOR, "missing", err);
        }
        if (rc != CH_OK)
            return rc;
    }
    return CH_OK;
}

/* Points every count_equal/equals comparison at the level index its
 * value text has now (after fitting reorders levels, or after loading). */
static void resolve_comparisons(ch_pipeline *p)
{
    for (size_t c = 0; c < p->n_cols; c++) {
        pcol *x = &p->cols[c];
        if (x->op != OP_COUNT_EQ && x->op != OP_EQUALS)
            continue;
        size_t ncmp = x->op == OP_COUNT_EQ ? x->n_in : x->n_cmp;
        for (size_t k = 0; k < ncmp; k++) {
            const pcol *src = &p->cols[x->in[x->op == OP_COUNT_EQ ? k : 0]];
            const char *t = x->cmp[x->op == OP_COUNT_EQ ? 0 : k];
            if (src->is_cat)
                x->cmp_lvl[k] = (int32_t)find_level(src, t, strlen(t));
        }
    }
}

/* ---- fit ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Moves fitted levels (seen at least 'min_count' times) to the front in
 * their current order, the rest into the compare-only tail, and sets
 * n_fit. 'remap' (n_levels entries) gets each old index's new index. */
static ch_err fit_levels(pcol *x, const uint64_t *counts, double min_count, int32_t *remap,
                         ch_error *err)
{
    char **v = ch_calloc(x->n_levels == 0 ? 1 : x->n_levels, sizeof *v);
    size_t n = 0;
    if (v == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t k = 0; k < x->n_levels; k++)
        if ((double)counts[k] >= min_count) {
            remap[k] = (int32_t)n;
            v[n++] = x->levels[k];
        }
    x->n_fit = n;
    for (size_t k = 0; k < x->n_levels; k++)
        if ((double)counts[k] < min_count) {
            remap[k] = (int32_t)n;
            v[n++] = x->levels[k];
        }
    ch_free(x->levels);
    x->levels = v;
    return CH_OK;
}

ch_err ch_pipeline_fit(const ch_pipeline_spec *spec, const ch_schema *s, const ch_frame *f,
                       const size_t *rows, size_t n_rows, ch_pipeline **out, ch_error *err)
{
    ch_pipeline *p = NULL;
    ch_json *doc = NULL;
    int32_t **maps = NULL;
    double *vals = NULL;  /* n_rows x n_cols, column-major, for medians */
    int32_t *lvls = NULL; /* n_rows x n_cols */
    uint64_t *counts = NULL;
    double val[CH_PIPELINE_MAX_COLS];
    int32_t lvl[CH_PIPELINE_MAX_COLS];
    ch_err rc;

    if (strcmp(spec->schema_hash, ch_schema_hash(s)) != 0)
        return ch_error_set(err, CH_ESCHEMA, "the pipeline was declared for another schema");
    if (rows == NULL)
        n_rows = ch_frame_n_rows(f);
    if (n_rows == 0)
        return ch_error_set(err, CH_EDATA, "no training rows to fit the pipeline on");
    rc = ch_json_parse(spec->decl, strlen(spec->decl), &doc, err);
    if (rc == CH_OK)
        rc = decl_load(doc, s, &p, err);
    ch_json_free(doc);
    if (rc != CH_OK)
        return rc;
    p->standardize = spec->standardize;
    /* The canonical text must carry the overridden switch too. */
    {
        ch_buf b;
        ch_buf_init(&b, (size_t)16 << 20);
        write_decl(p, &b);
        ch_free(p->decl);
        p->decl = ch_buf_take(&b, NULL);
        if (p->decl == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
    }
    if ((rc = frame_maps(p, f, &maps, err)) != CH_OK)
        goto done;
    vals = ch_malloc_array(n_rows, p->n_cols * sizeof *vals);
    lvls = ch_malloc_array(n_rows, p->n_cols * sizeof *lvls);
    if (vals == NULL || lvls == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory for %zu training rows", n_rows);
        goto done;
    }
    /* Pass 1: every column's raw value for every training row. Engineered
     * columns depend only on declarations, never on fitted values. */
    for (size_t r = 0; r < n_rows; r++) {
        size_t i = rows != NULL ? rows[r] : r;
        if (i >= ch_frame_n_rows(f)) {
            rc = ch_error_set(err, CH_EINVAL, "training row %zu is past the frame's end", i);
            goto done;
        }
        load_row(p, f, maps, i, val, lvl);
        for (size_t c = 0; c < p->n_cols; c++) {
            if (p->cols[c].op != OP_NONE)
                val[c] = eval_derived(&p->cols[c], val, lvl, p->cols);
            vals[c * n_rows + r] = val[c];
            lvls[c * n_rows + r] = lvl[c];
        }
    }
    /* Pass 2: per column statistics. */
    for (size_t c = 0; c < p->n_cols; c++) {
        pcol *x = &p->cols[c];
        double *v = vals + c * n_rows;
        size_t n_ok = 0;
        size_t n_miss = 0;
        if (x->is_cat) {
            int32_t *l = lvls + c * n_rows;
            counts = ch_calloc(x->n_levels == 0 ? 1 : x->n_levels, sizeof *counts);
            if (counts == NULL) {
                rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                goto done;
            }
            for (size_t r = 0; r < n_rows; r++)
                if (l[r] >= 0)
                    counts[l[r]]++;
            /* Levels kept under on_unknown=keep appear in the frame's
             * dictionary but not in the schema: add those seen. */
            if (x->schema_j >= 0) {
                size_t j = (size_t)x->schema_j;
                for (size_t k = 0; k < ch_frame_n_levels(f, j); k++) {
                    if (maps[c][k] != LVL_UNKNOWN)
                        continue;
                    uint64_t n = 0;
                    for (size_t r = 0; r < n_rows; r++) {
                        size_t i = rows != NULL ? rows[r] : r;
                        n += ch_frame_codes(f, j)[i] == (int32_t)k;
                    }
                    if (n == 0)
                        continue;
                    uint64_t *cn = ch_realloc(counts, (x->n_levels + 1) * sizeof *cn);
                    if (cn == NULL) {
                        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                        goto done;
                    }
                    counts = cn;
                    counts[x->n_levels] = n;
                    if ((rc = add_level(x, ch_frame_level(f, j, k), err)) != CH_OK)
                        goto done;
                }
            }
            {
                int32_t *remap = ch_calloc(x->n_levels == 0 ? 1 : x->n_levels, sizeof *remap);
                if (remap == NULL) {
                    rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                    goto done;
                }
                rc = fit_levels(x, counts, p->min_count, remap, err);
                /* Ordinal value: the rank among fitted levels; others are
                 * missing (imputed, and flagged when indicators are on). */
                for (size_t r = 0; rc == CH_OK && r < n_rows; r++) {
                    int32_t nl = l[r] >= 0 ? remap[l[r]] : -1;
                    v[r] = nl >= 0 && (size_t)nl < x->n_fit ? (double)nl : NAN;
                }
                ch_free(remap);
                if (rc != CH_OK)
                    goto done;
            }
            ch_free(counts);
            counts = NULL;
            if (x->encoder != ENC_ORDINAL)
                continue;
        }
        /* Median over non-missing values (compacted in place). */
        for (size_t r = 0; r < n_rows; r++) {
            if (isnan(v[r]))
                n_miss++;
            else
                v[n_ok++] = v[r];
        }
        if (n_ok > 0) {
            qsort(v, n_ok, sizeof *v, cmp_double);
            x->median = n_ok % 2 ? v[n_ok / 2] : 0.5 * (v[n_ok / 2 - 1] + v[n_ok / 2]);
        } else {
            x->median = 0.0;
        }
        x->indicator = p->indicators == IND_ALWAYS || (p->indicators == IND_AUTO && n_miss > 0);
    }
    /* Levels were reordered: look the comparison values up again. */
    resolve_comparisons(p);
    if ((rc = layout(p, err)) != CH_OK)
        goto done;
    /* Pass 3: means and deviations of the encoded numeric features, over
     * the training rows only, after imputation. */
    if (p->standardize) {
        double *sum = ch_calloc(p->n_cols, sizeof *sum);
        double *sum2 = ch_calloc(p->n_cols, sizeof *sum2);
        double *row = ch_malloc_array(p->n_feats == 0 ? 1 : p->n_feats, sizeof *row);
        ch_transform_stats st = {0};
        if (sum == NULL || sum2 == NULL || row == NULL) {
            ch_free(sum);
            ch_free(sum2);
            ch_free(row);
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto done;
        }
        free_maps(maps, p->n_cols);
        maps = NULL;
        if ((rc = frame_maps(p, f, &maps, err)) != CH_OK) {
            ch_free(sum);
            ch_free(sum2);
            ch_free(row);
            goto done;
        }
        p->standardize = 0; /* raw encoded values first */
        for (size_t r = 0; r < n_rows; r++) {
            load_row(p, f, maps, rows != NULL ? rows[r] : r, val, lvl);
            encode_row(p, val, lvl, row, &st);
            for (size_t c = 0; c < p->n_cols; c++) {
                const pcol *x = &p->cols[c];
                if (!x->emit || x->encoder == ENC_ONEHOT)
                    continue;
                sum[c] += row[x->out0];
            }
        }
        for (size_t c = 0; c < p->n_cols; c++)
            p->cols[c].mean = sum[c] / (double)n_rows;
        /* Correct the mean by the mean residual (a constant column then
         * gets exactly its value), then a pass for the variance. */
        memset(sum, 0, p->n_cols * sizeof *sum);
        for (size_t r = 0; r < n_rows; r++) {
            load_row(p, f, maps, rows != NULL ? rows[r] : r, val, lvl);
            encode_row(p, val, lvl, row, &st);
            for (size_t c = 0; c < p->n_cols; c++) {
                const pcol *x = &p->cols[c];
                if (!x->emit || x->encoder == ENC_ONEHOT)
                    continue;
                sum[c] += row[x->out0] - x->mean;
            }
        }
        for (size_t c = 0; c < p->n_cols; c++)
            p->cols[c].mean += sum[c] / (double)n_rows;
        for (size_t r = 0; r < n_rows; r++) {
            load_row(p, f, maps, rows != NULL ? rows[r] : r, val, lvl);
            encode_row(p, val, lvl, row, &st);
            for (size_t c = 0; c < p->n_cols; c++) {
                const pcol *x = &p->cols[c];
                if (!x->emit || x->encoder == ENC_ONEHOT)
                    continue;
                double d = row[x->out0] - x->mean;
                sum2[c] += d * d;
            }
        }
        for (size_t c = 0; c < p->n_cols; c++) {
            pcol *x = &p->cols[c];
            double sd = sqrt(sum2[c] / (double)n_rows);
            /* A column constant up to rounding is only centred. */
            double tiny = 1e-12 * (fabs(x->mean) > 1.0 ? fabs(x->mean) : 1.0);
            x->sd = sd > tiny && isfinite(sd) ? sd : 1.0;
        }
        p->standardize = 1;
        ch_free(sum);
        ch_free(sum2);
        ch_free(row);
    }
    rc = CH_OK;
done:
    free_maps(maps, p != NULL ? p->n_cols : 0);
    ch_free(vals);
    ch_free(lvls);
    ch_free(counts);
    if (rc != CH_OK) {
        ch_pipeline_free(p);
        return rc;
    }
    *out = p;
    return CH_OK;
}

/* ---- accessors ---------------------------------------------------------- */

size_t ch_pipeline_n_features(const ch_pipeline *p)
{
    return p->n_feats;
}

const char *ch_pipeline_feature_name(const ch_pipeline *p, size_t k)
{
    return k < p->n_feats ? p->feats[k].name : NULL;
}

ch_feature_kind ch_pipeline_feature_kind(const ch_pipeline *p, size_t k)
{
    return p->feats[k].kind;
}

const uint32_t *ch_pipeline_feature_sources(const ch_pipeline *p, size_t k, size_t *n)
{
    const pcol *x = &p->cols[p->feats[k].col];
    *n = x->n_sources;
    return x->sources;
}

size_t ch_pipeline_n_inputs(const ch_pipeline *p)
{
    return p->n_inputs;
}

const char *ch_pipeline_schema_hash(const ch_pipeline *p)
{
    return p->schema_hash;
}

/* ---- serialization ------------------------------------------------------ */

ch_err ch_pipeline_to_json(const ch_pipeline *p, ch_buf *b)
{
    ch_buf_printf(b,
                  "{\"format\": \"" PIPE_FORMAT "\", \"version\": %d, \"schema_hash\": \"%s\",\n"
                  " \"spec\": ",
                  PIPE_VERSION, p->schema_hash);
    ch_buf_puts(b, p->decl);
    ch_buf_puts(b, ",\n \"fitted\": [");
    for (size_t c = 0; c < p->n_cols; c++) {
        const pcol *x = &p->cols[c];
        ch_buf_puts(b, c ? ",\n  {\"name\": " : "\n  {\"name\": ");
        ch_buf_json_str(b, x->name, strlen(x->name));
        if (x->is_cat) {
            ch_buf_printf(b, ", \"n_fit\": %zu, \"levels\": ", x->n_fit);
            json_strs(b, x->levels, x->n_levels);
        }
        ch_buf_puts(b, ", \"median\": ");
        ch_buf_json_num(b, x->median);
        ch_buf_puts(b, ", \"mean\": ");
        ch_buf_json_num(b, x->mean);
        ch_buf_puts(b, ", \"sd\": ");
        ch_buf_json_num(b, x->sd);
        ch_buf_printf(b, ", \"indicator\": %s}", x->indicator ? "true" : "false");
    }
    ch_buf_puts(b, "],\n \"features\": [");
    for (size_t k = 0; k < p->n_feats; k++) {
        ch_buf_puts(b, k ? ",\n  " : "\n  ");
        ch_buf_json_str(b, p->feats[k].name, strlen(p->feats[k].name));
    }
    return ch_buf_puts(b, "]}\n");
}

static ch_err read_num(const ch_json *o, const char *key, double *out, const char *where,
                       ch_error *err)
{
    const ch_json *v = ch_json_get(o, key);
    if (ch_json_num(v, out) == 0 && isfinite(*out))
        return CH_OK;
    return ch_error_set(err, CH_EFORMAT, "%s: \"%s\" must be a finite number", where, key);
}

ch_err ch_pipeline_from_json(const ch_json *node, const ch_schema *s, ch_pipeline **out,
                             ch_error *err)
{
    ch_pipeline *p = NULL;
    const char *t;
    const ch_json *fitted;
    const ch_json *feats;
    double ver;
    ch_err rc;

    t = ch_json_str(ch_json_get(node, "format"), NULL);
    if (t == NULL || strcmp(t, PIPE_FORMAT) != 0)
        return ch_error_set(err, CH_EFORMAT, "pipeline: \"format\" must be \"" PIPE_FORMAT "\"");
    if (ch_json_num(ch_json_get(node, "version"), &ver) != 0 || ver != PIPE_VERSION)
        return ch_error_set(err, CH_EFORMAT, "pipeline: unsupported version (this build reads %d)",
                            PIPE_VERSION);
    t = ch_json_str(ch_json_get(node, "schema_hash"), NULL);
    if (t == NULL || strcmp(t, ch_schema_hash(s)) != 0)
        return ch_error_set(err, CH_ESCHEMA,
                            "pipeline: fitted for a different schema (hash %.12s, "
                            "schema has %.12s)",
                            t != NULL ? t : "none", ch_schema_hash(s));
    rc = decl_load(ch_json_get(node, "spec"), s, &p, err);
    if (rc != CH_OK) {
        ch_error_prefix(err, "pipeline spec");
        return rc;
    }
    fitted = ch_json_get(node, "fitted");
    if (ch_json_typeof(fitted) != CH_JSON_ARRAY || ch_json_len(fitted) != p->n_cols) {
        rc = ch_error_set(err, CH_EFORMAT, "pipeline: \"fitted\" must list %zu columns", p->n_cols);
        goto done;
    }
    for (size_t c = 0; c < p->n_cols; c++) {
        pcol *x = &p->cols[c];
        const ch_json *o = ch_json_at(fitted, c);
        char where[160];
        int ind_flag = 0;
        snprintf(where, sizeof where, "pipeline: fitted[%zu]", c);
        t = ch_json_str(ch_json_get(o, "name"), NULL);
        if (t == NULL || strcmp(t, x->name) != 0) {
            rc = ch_error_set(err, CH_EFORMAT, "%s: expected column \"%s\"", where, x->name);
            goto done;
        }
        if ((rc = read_num(o, "median", &x->median, where, err)) != CH_OK ||
            (rc = read_num(o, "mean", &x->mean, where, err)) != CH_OK ||
            (rc = read_num(o, "sd", &x->sd, where, err)) != CH_OK)
            goto done;
        if (!(x->sd > 0)) {
            rc = ch_error_set(err, CH_EFORMAT, "%s: \"sd\" must be positive", where);
            goto done;
        }
        if (ch_json_bool(ch_json_get(o, "indicator"), &ind_flag) != 0) {
            rc = ch_error_set(err, CH_EFORMAT, "%s: \"indicator\" must be true or false", where);
            goto done;
        }
        x->indicator = ind_flag;
        if (x->is_cat) {
            double nf;
            char **lv = NULL;
            size_t nl = 0;
            char w2[200];
            snprintf(w2, sizeof w2, "%s: levels", where);
            if ((rc = str_list(ch_json_get(o, "levels"), w2, &lv, &nl, err)) != CH_OK)
                goto done;
            free_strs(x->levels, x->n_levels);
            x->levels = lv;
            x->n_levels = nl;
            if (ch_json_num(ch_json_get(o, "n_fit"), &nf) != 0 || nf < 0 || nf > (double)nl ||
                nf != floor(nf)) {
                rc =
                    ch_error_set(err, CH_EFORMAT, "%s: \"n_fit\" must be a count of levels", where);
                goto done;
            }
            x->n_fit = (size_t)nf;
            for (size_t a = 0; a < nl; a++)
                for (size_t b2 = 0; b2 < a; b2++)
                    if (strcmp(lv[a], lv[b2]) == 0) {
                        rc = ch_error_set(err, CH_EFORMAT, "%s: level \"%s\" is listed twice",
                                          where, lv[a]);
                        goto done;
                    }
        }
    }
    resolve_comparisons(p);
    if ((rc = layout(p, err)) != CH_OK)
        goto done;
    feats = ch_json_get(node, "features");
    if (feats != NULL) {
        if (ch_json_len(feats) != p->n_feats) {
            rc = ch_error_set(err, CH_EFORMAT, "pipeline: lists %zu features, its columns make %zu",
                              ch_json_len(feats), p->n_feats);
            goto done;
        }
        for (size_t k = 0; k < p->n_feats; k++) {
            t = ch_json_str(ch_json_at(feats, k), NULL);
            if (t == NULL || strcmp(t, p->feats[k].name) != 0) {
                rc = ch_error_set(err, CH_EFORMAT, "pipeline: features[%zu]: expected \"%s\"", k,
                                  p->feats[k].name);
                goto done;
            }
        }
    }
    rc = CH_OK;
done:
    if (rc != CH_OK) {
        ch_pipeline_free(p);
        return rc;
    }
    *out = p;
    return CH_OK;
}
