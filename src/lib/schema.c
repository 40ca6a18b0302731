/*
 * schema.c -- loading, writing and applying dataset schemas.
 *
 * A schema is parsed once and then only read, by any number of threads.
 * Unknown keys in the JSON are errors, not ignored: a misspelt
 * "catgories" must not silently turn a checked column into an unchecked
 * one. Every error names the JSON path of the offending value.
 *
 * ch_schema_parse_value() runs once per field during ingestion, so it
 * avoids allocation and compares short strings by length first.
 */
#include "ch/schema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/text.h"
#include "schema_int.h"

#define SCHEMA_FORMAT    "churn-schema"
#define SCHEMA_VERSION   1
#define MAX_SCHEMA_BYTES (4u << 20)
/* Canonical JSON repeats defaults (a label per column), so it may be
 * larger than the file it came from. */
#define MAX_CANONICAL_BYTES (64u << 20)

static const char *const default_missing[] = {""};
static const char *const default_positive[] = {"yes", "true", "1", "y", "t"};
static const char *const default_negative[] = {"no", "false", "0", "n", "f"};

static const char *const kind_names[] = {"id",          "numeric", "integer",
                                         "categorical", "binary",  "target"};

const char *ch_kind_name(ch_kind k)
{
    return (unsigned)k < 6 ? kind_names[k] : "?";
}

int ch_kind_parse(const char *name, ch_kind *out)
{
    for (int k = 0; k < 6; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (ch_kind)k;
            return 0;
        }
    }
    return -1;
}

static const struct {
    const char *name;
    const char *text;
} reasons[CH_REASON_COUNT_] = {
    {"none", "no problem"},
    {"field_count", "wrong number of fields"},
    {"malformed_csv", "malformed CSV"},
    {"not_number", "not a number"},
    {"not_integer", "not a whole number"},
    {"out_of_range", "outside the allowed range"},
    {"unknown_category", "category not in the schema"},
    {"bad_boolean", "not a yes/no value"},
    {"missing", "missing value in a required column"},
    {"missing_target", "missing target"},
    {"bad_target", "target value not in the label mapping"},
    {"bad_utf8", "text is not valid UTF-8"},
    {"duplicate_id", "id already seen on an earlier row"},
};

const char *ch_reason_name(ch_reason r)
{
    return (unsigned)r < CH_REASON_COUNT_ ? reasons[r].name : "unknown";
}

const char *ch_reason_text(ch_reason r)
{
    return (unsigned)r < CH_REASON_COUNT_ ? reasons[r].text : "unknown reason";
}

/* ---- string lists owned by a column ---------------------------------- */

static void free_list(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        ch_free(v[i]);
    ch_free(v);
}

static ch_err copy_list(const char *const *src, size_t n, char ***out, ch_error *err)
{
    char **v = ch_calloc(n == 0 ? 1 : n, sizeof *v);
    if (v == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        v[i] = ch_strdup(src[i]);
        if (v[i] == NULL) {
            free_list(v, i);
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
    }
    *out = v;
    return CH_OK;
}

void ch__schema_col_clear(ch__col *c)
{
    ch_free(c->name);
    ch_free(c->label);
    free_list(c->categories, c->n_categories);
    free_list(c->missing, c->n_missing);
    free_list(c->positive, c->n_positive);
    free_list(c->negative, c->n_negative);
    free_list(c->alternatives, c->n_alternatives);
    ch_free(c->lens);
    memset(c, 0, sizeof *c);
}

/* Publishes an owned column's fields through its read-only view, with
 * the token lengths the matcher uses. Returns -1 when out of memory. */
int ch__schema_col_sync(ch__col *c)
{
    ch_schema_col *v = &c->view;
    size_t n = c->n_categories + c->n_missing + c->n_positive + c->n_negative;
    size_t *lens = ch_malloc_array(n == 0 ? 1 : n, sizeof *lens);
    size_t k = 0;
    if (lens == NULL)
        return -1;
    ch_free(c->lens);
    c->lens = lens;
    v->category_lens = lens + k;
    for (size_t i = 0; i < c->n_categories; i++)
        lens[k++] = strlen(c->categories[i]);
    v->missing_lens = lens + k;
    for (size_t i = 0; i < c->n_missing; i++)
        lens[k++] = strlen(c->missing[i]);
    v->positive_lens = lens + k;
    for (size_t i = 0; i < c->n_positive; i++)
        lens[k++] = strlen(c->positive[i]);
    v->negative_lens = lens + k;
    for (size_t i = 0; i < c->n_negative; i++)
        lens[k++] = strlen(c->negative[i]);
    v->name = c->name;
    v->kind = c->kind;
    v->label = c->label;
    v->pii = c->pii;
    v->nullable = c->nullable;
    v->categories = (const char *const *)c->categories;
    v->n_categories = c->n_categories;
    v->on_unknown = c->on_unknown;
    v->has_min = c->has_min;
    v->has_max = c->has_max;
    v->min = c->min;
    v->max = c->max;
    v->missing = (const char *const *)c->missing;
    v->n_missing = c->n_missing;
    v->positive = (const char *const *)c->positive;
    v->n_positive = c->n_positive;
    v->negative = (const char *const *)c->negative;
    v->n_negative = c->n_negative;
    v->actionable = c->actionable;
    v->alternatives = (const char *const *)c->alternatives;
    v->n_alternatives = c->n_alternatives;
    return 0;
}

void ch_schema_free(ch_schema *s)
{
    if (s == NULL)
        return;
    for (size_t j = 0; j < s->n_cols; j++)
        ch__schema_col_clear(&s->cols[j]);
    ch_free(s->cols);
    ch_free(s->name);
    ch_free(s);
}

/* ---- JSON reading ------------------------------------------------------ */

/* Reads an array of strings at 'node' into a fresh list. 'what' names the
 * value for messages. */
static ch_err read_str_list(const ch_json *node, const char *what, char ***out, size_t *n_out,
                            ch_error *err)
{
    size_t n = ch_json_len(node);
    char **v;

    if (ch_json_typeof(node) != CH_JSON_ARRAY)
        return ch_error_set(err, CH_EFORMAT, "%s: expected an array of strings, got %s", what,
                            ch_json_type_name(ch_json_typeof(node)));
    v = ch_calloc(n == 0 ? 1 : n, sizeof *v);
    if (v == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = ch_json_str(ch_json_at(node, i), &len);
        if (s == NULL) {
            free_list(v, i);
            return ch_error_set(err, CH_EFORMAT, "%s[%zu]: expected a string", what, i);
        }
        if (!ch_text_utf8_valid(s, len) || strlen(s) != len) {
            free_list(v, i);
            return ch_error_set(err, CH_EFORMAT, "%s[%zu]: not valid text", what, i);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(v[k], s) == 0) {
                free_list(v, i);
                return ch_error_set(err, CH_EFORMAT, "%s[%zu]: \"%s\" is listed twice", what, i, s);
            }
        }
        v[i] = ch_strdup(s);
        if (v[i] == NULL) {
            free_list(v, i);
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
    }
    *out = v;
    *n_out = n;
    return CH_OK;
}

static ch_err read_bool(const ch_json *node, const char *what, int *out, ch_error *err)
{
    if (node == NULL)
        return CH_OK;
    if (ch_json_bool(node, out) != 0)
        return ch_error_set(err, CH_EFORMAT, "%s: expected true or false", what);
    return CH_OK;
}

static const char *const col_keys[] = {"name",         "kind",        "label",      "pii",
                                       "nullable",     "categories",  "on_unknown", "range",
                                       "missing",      "positive",    "negative",   "actionable",
                                       "alternatives", "description", NULL};

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

/* Parses column 'i' of the schema from 'node' into 'c'. */
static ch_err read_column(const ch_json *node, size_t i, ch__col *c, ch_error *err)
{
    char where[160];
    char what[200];
    const char *name;
    const char *s;
    const ch_json *v;
    ch_err rc;

    snprintf(where, sizeof where, "columns[%zu]", i);
    if (ch_json_typeof(node) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "%s: expected an object", where);
    name = ch_json_str(ch_json_get(node, "name"), NULL);
    if (name == NULL || name[0] == '\0')
        return ch_error_set(err, CH_EFORMAT, "%s: \"name\" must be a non-empty string", where);
    snprintf(where, sizeof where, "columns[%zu] (%.100s)", i, name);
    rc = check_keys(node, col_keys, where, err);
    if (rc != CH_OK)
        return rc;
    c->name = ch_strdup(name);
    if (c->name == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");

    s = ch_json_str(ch_json_get(node, "kind"), NULL);
    if (s == NULL || ch_kind_parse(s, &c->kind) != 0)
        return ch_error_set(err, CH_EFORMAT,
                            "%s: \"kind\" must be one of id, numeric, integer, categorical, "
                            "binary, target",
                            where);

    s = ch_json_str(ch_json_get(node, "label"), NULL);
    if (ch_json_get(node, "label") != NULL && s == NULL)
        return ch_error_set(err, CH_EFORMAT, "%s: \"label\" must be a string", where);
    c->label = ch_strdup(s != NULL ? s : name);
    if (c->label == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");

    c->nullable = c->kind != CH_KIND_ID && c->kind != CH_KIND_TARGET;
    c->pii = c->kind == CH_KIND_ID;
    snprintf(what, sizeof what, "%s: pii", where);
    if ((rc = read_bool(ch_json_get(node, "pii"), what, &c->pii, err)) != CH_OK)
        return rc;
    snprintf(what, sizeof what, "%s: nullable", where);
    if ((rc = read_bool(ch_json_get(node, "nullable"), what, &c->nullable, err)) != CH_OK)
        return rc;
    if (c->nullable && (c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET))
        return ch_error_set(err, CH_EFORMAT, "%s: the %s column cannot be nullable", where,
                            ch_kind_name(c->kind));

    v = ch_json_get(node, "categories");
    if (c->kind == CH_KIND_CATEGORICAL) {
        snprintf(what, sizeof what, "%s: categories", where);
        if (v == NULL)
            return ch_error_set(err, CH_EFORMAT, "%s: a categorical column needs \"categories\"",
                                where);
        if ((rc = read_str_list(v, what, &c->categories, &c->n_categories, err)) != CH_OK)
            return rc;
        if (c->n_categories == 0)
            return ch_error_set(err, CH_EFORMAT, "%s: \"categories\" is empty", where);
    } else if (v != NULL) {
        return ch_error_set(err, CH_EFORMAT, "%s: \"categories\" applies only to categorical",
                            where);
    }

    v = ch_json_get(node, "on_unknown");
    if (v != NULL) {
        s = ch_json_str(v, NULL);
        if (c->kind != CH_KIND_CATEGORICAL)
            return ch_error_set(err, CH_EFORMAT, "%s: \"on_unknown\" applies only to categorical",
                                where);
        if (s != NULL && strcmp(s, "reject") == 0)
            c->on_unknown = CH_UNKNOWN_REJECT;
        else if (s != NULL && strcmp(s, "keep") == 0)
            c->on_unknown = CH_UNKNOWN_KEEP;
        else
            return ch_error_set(err, CH_EFORMAT,
                                "%s: \"on_unknown\" must be \"reject\" or "
                                "\"keep\"",
                                where);
    }

    v = ch_json_get(node, "range");
    if (v != NULL) {
        const ch_json *lo = ch_json_at(v, 0);
        const ch_json *hi = ch_json_at(v, 1);
        if (c->kind != CH_KIND_NUMERIC && c->kind != CH_KIND_INTEGER)
            return ch_error_set(err, CH_EFORMAT,
                                "%s: \"range\" applies only to numeric and "
                                "integer columns",
                                where);
        if (ch_json_typeof(v) != CH_JSON_ARRAY || ch_json_len(v) != 2)
            return ch_error_set(err, CH_EFORMAT,
                                "%s: \"range\" must be [min, max] (null for "
                                "no bound)",
                                where);
        c->has_min = ch_json_num(lo, &c->min) == 0;
        c->has_max = ch_json_num(hi, &c->max) == 0;
        if ((!c->has_min && ch_json_typeof(lo) != CH_JSON_NULL) ||
            (!c->has_max && ch_json_typeof(hi) != CH_JSON_NULL))
            return ch_error_set(err, CH_EFORMAT, "%s: \"range\" bounds must be numbers or null",
                                where);
        if (c->has_min && c->has_max && c->min > c->max)
            return ch_error_set(err, CH_EFORMAT, "%s: \"range\" minimum %g is above maximum %g",
                                where, c->min, c->max);
    }

    v = ch_json_get(node, "missing");
    snprintf(what, sizeof what, "%s: missing", where);
    if (v != NULL)
        rc = read_str_list(v, what, &c->missing, &c->n_missing, err);
    else
        rc = copy_list(default_missing, 1, &c->missing, err), c->n_missing = 1;
    if (rc != CH_OK)
        return rc;

    if (c->kind == CH_KIND_BINARY || c->kind == CH_KIND_TARGET) {
        v = ch_json_get(node, "positive");
        snprintf(what, sizeof what, "%s: positive", where);
        if (v != NULL)
            rc = read_str_list(v, what, &c->positive, &c->n_positive, err);
        else
            rc = copy_list(default_positive, 5, &c->positive, err), c->n_positive = 5;
        if (rc != CH_OK)
            return rc;
        v = ch_json_get(node, "negative");
        snprintf(what, sizeof what, "%s: negative", where);
        if (v != NULL)
            rc = read_str_list(v, what, &c->negative, &c->n_negative, err);
        else
            rc = copy_list(default_negative, 5, &c->negative, err), c->n_negative = 5;
        if (rc != CH_OK)
            return rc;
        for (size_t a = 0; a < c->n_positive; a++)
            for (size_t b = 0; b < c->n_negative; b++)
                if (ch_text_ieq(c->positive[a], strlen(c->positive[a]), c->negative[b]))
                    return ch_error_set(err, CH_EFORMAT,
                                        "%s: \"%s\" is both a positive and a negative value", where,
                                        c->positive[a]);
    } else if (ch_json_get(node, "positive") != NULL || ch_json_get(node, "negative") != NULL) {
        return ch_error_set(err, CH_EFORMAT,
                            "%s: \"positive\"/\"negative\" apply only to binary and target", where);
    }

    snprintf(what, sizeof what, "%s: actionable", where);
    if ((rc = read_bool(ch_json_get(node, "actionable"), what, &c->actionable, err)) != CH_OK)
        return rc;
    v = ch_json_get(node, "alternatives");
    if (v != NULL) {
        snprintf(what, sizeof what, "%s: alternatives", where);
        if (!c->actionable)
            return ch_error_set(err, CH_EFORMAT,
                                "%s: \"alternatives\" given but the column is not actionable",
                                where);
        if ((rc = read_str_list(v, what, &c->alternatives, &c->n_alternatives, err)) != CH_OK)
            return rc;
        for (size_t a = 0; a < c->n_alternatives; a++) {
            double num;
            int32_t cat;
            ch_reason why;
            ch_value_status st;
            if (ch__schema_col_sync(c) != 0)
                return ch_error_set(err, CH_ENOMEM, "out of memory");
            st = ch_schema_parse_value(&c->view, c->alternatives[a], strlen(c->alternatives[a]),
                                       &num, &cat, &why);
            if (st != CH_VALUE_OK)
                return ch_error_set(err, CH_EFORMAT,
                                    "%s: alternative \"%s\" is not a valid value of the column",
                                    where, c->alternatives[a]);
        }
    }
    if (c->actionable && c->n_alternatives == 0)
        return ch_error_set(err, CH_EFORMAT, "%s: an actionable column needs \"alternatives\"",
                            where);
    if (c->actionable && (c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET))
        return ch_error_set(err, CH_EFORMAT, "%s: the %s column cannot be actionable", where,
                            ch_kind_name(c->kind));
    if (ch__schema_col_sync(c) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    return CH_OK;
}

static const char *const top_keys[] = {"format",        "version",     "name", "columns",
                                       "extra_columns", "description", NULL};

ch_err ch__schema_finish(ch_schema *s, ch_error *err)
{
    ch_buf b;
    ch_err rc;
    s->target = -1;
    s->id = -1;
    for (size_t j = 0; j < s->n_cols; j++) {
        for (size_t k = 0; k < j; k++)
            if (strcmp(s->cols[j].name, s->cols[k].name) == 0)
                return ch_error_set(err, CH_EFORMAT, "columns[%zu]: column \"%s\" is listed twice",
                                    j, s->cols[j].name);
        if (s->cols[j].kind == CH_KIND_TARGET) {
            if (s->target >= 0)
                return ch_error_set(err, CH_EFORMAT, "columns[%zu] (%s): a second target column", j,
                                    s->cols[j].name);
            s->target = (long)j;
        }
        if (s->cols[j].kind == CH_KIND_ID) {
            if (s->id >= 0)
                return ch_error_set(err, CH_EFORMAT, "columns[%zu] (%s): a second id column", j,
                                    s->cols[j].name);
            s->id = (long)j;
        }
    }
    ch_buf_init(&b, MAX_CANONICAL_BYTES);
    ch_schema_to_json(s, &b);
    if (ch_buf_status(&b) != CH_OK) {
        rc = ch_buf_status(&b);
        ch_buf_reset(&b);
        return rc == CH_ENOMEM ? ch_error_set(err, rc, "out of memory")
                               : ch_error_set(err, rc, "schema too large");
    }
    rc = ch_sha256_hex(b.data, b.len, s->hash, err);
    ch_buf_reset(&b);
    return rc;
}

ch_err ch_schema_from_json(const ch_json *root, ch_schema **out, ch_error *err)
{
    ch_schema *s = NULL;
    const ch_json *cols;
    const char *str;
    double ver;
    ch_err rc = CH_OK;

    if (ch_json_typeof(root) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EFORMAT, "a schema must be a JSON object");
    if ((rc = check_keys(root, top_keys, "schema", err)) != CH_OK)
        return rc;
    str = ch_json_str(ch_json_get(root, "format"), NULL);
    if (str == NULL || strcmp(str, SCHEMA_FORMAT) != 0)
        return ch_error_set(err, CH_EFORMAT, "\"format\" must be \"%s\"", SCHEMA_FORMAT);
    if (ch_json_num(ch_json_get(root, "version"), &ver) != 0 || ver != floor(ver))
        return ch_error_set(err, CH_EFORMAT, "\"version\" must be a whole number");
    if (ver != SCHEMA_VERSION)
        return ch_error_set(err, CH_EFORMAT,
                            "schema version %.0f is not supported (this build reads version %d)",
                            ver, SCHEMA_VERSION);
    cols = ch_json_get(root, "columns");
    if (ch_json_typeof(cols) != CH_JSON_ARRAY || ch_json_len(cols) == 0)
        return ch_error_set(err, CH_EFORMAT, "\"columns\" must be a non-empty array");

    s = ch_calloc(1, sizeof *s);
    if (s == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    str = ch_json_str(ch_json_get(root, "name"), NULL);
    s->name = ch_strdup(str != NULL ? str : "unnamed");
    s->cols = ch_calloc(ch_json_len(cols), sizeof *s->cols);
    if (s->name == NULL || s->cols == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    str = ch_json_str(ch_json_get(root, "extra_columns"), NULL);
    if (ch_json_get(root, "extra_columns") != NULL) {
        if (str != NULL && strcmp(str, "ignore") == 0) {
            s->ignore_extra = 1;
        } else if (str == NULL || strcmp(str, "error") != 0) {
            rc = ch_error_set(err, CH_EFORMAT,
                              "\"extra_columns\" must be \"error\" or "
                              "\"ignore\"");
            goto done;
        }
    }
    for (size_t j = 0; j < ch_json_len(cols); j++) {
        s->n_cols = j + 1;
        rc = read_column(ch_json_at(cols, j), j, &s->cols[j], err);
        if (rc != CH_OK)
            goto done;
    }
    rc = ch__schema_finish(s, err);
done:
    if (rc != CH_OK) {
        ch_schema_free(s);
        return rc;
    }
    *out = s;
    return CH_OK;
}

ch_err ch_schema_load_file(const char *path, ch_schema **out, ch_error *err)
{
    ch_json *root = NULL;
    ch_err rc = ch_json_load_file(path, MAX_SCHEMA_BYTES, &root, err);
    if (rc != CH_OK)
        return rc;
    rc = ch_schema_from_json(root, out, err);
    if (rc != CH_OK)
        ch_error_prefix(err, "%s", path);
    ch_json_free(root);
    return rc;
}

/* ---- JSON writing ------------------------------------------------------ */

static void write_list(ch_buf *b, const char *key, char **v, size_t n)
{
    ch_buf_printf(b, ", \"%s\": [", key);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ch_buf_puts(b, ", ");
        ch_buf_json_str(b, v[i], strlen(v[i]));
    }
    ch_buf_putc(b, ']');
}

static int list_is(char **v, size_t n, const char *const *d, size_t dn)
{
    if (n != dn)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], d[i]) != 0)
            return 0;
    return 1;
}

ch_err ch_schema_to_json(const ch_schema *s, ch_buf *b)
{
    ch_buf_puts(b, "{\n  \"format\": \"" SCHEMA_FORMAT "\",\n  \"version\": 1,\n  \"name\": ");
    ch_buf_json_str(b, s->name, strlen(s->name));
    if (s->ignore_extra)
        ch_buf_puts(b, ",\n  \"extra_columns\": \"ignore\"");
    ch_buf_puts(b, ",\n  \"columns\": [\n");
    for (size_t j = 0; j < s->n_cols; j++) {
        const ch__col *c = &s->cols[j];
        int def_null = c->kind != CH_KIND_ID && c->kind != CH_KIND_TARGET;
        ch_buf_puts(b, "    {\"name\": ");
        ch_buf_json_str(b, c->name, strlen(c->name));
        ch_buf_printf(b, ", \"kind\": \"%s\", \"label\": ", ch_kind_name(c->kind));
        ch_buf_json_str(b, c->label, strlen(c->label));
        if (c->pii != (c->kind == CH_KIND_ID))
            ch_buf_printf(b, ", \"pii\": %s", c->pii ? "true" : "false");
        if (c->nullable != def_null)
            ch_buf_printf(b, ", \"nullable\": %s", c->nullable ? "true" : "false");
        if (c->kind == CH_KIND_CATEGORICAL) {
            write_list(b, "categories", c->categories, c->n_categories);
            if (c->on_unknown == CH_UNKNOWN_KEEP)
                ch_buf_puts(b, ", \"on_unknown\": \"keep\"");
        }
        if (c->has_min || c->has_max) {
            ch_buf_puts(b, ", \"range\": [");
            if (c->has_min)
                ch_buf_json_num(b, c->min);
            else
                ch_buf_puts(b, "null");
            ch_buf_puts(b, ", ");
            if (c->has_max)
                ch_buf_json_num(b, c->max);
            else
                ch_buf_puts(b, "null");
            ch_buf_putc(b, ']');
        }
        if (!list_is(c->missing, c->n_missing, default_missing, 1))
            write_list(b, "missing", c->missing, c->n_missing);
        if (c->kind == CH_KIND_BINARY || c->kind == CH_KIND_TARGET) {
            if (!list_is(c->positive, c->n_positive, default_positive, 5))
                write_list(b, "positive", c->positive, c->n_positive);
            if (!list_is(c->negative, c->n_negative, default_negative, 5))
                write_list(b, "negative", c->negative, c->n_negative);
        }
        if (c->actionable) {
            ch_buf_puts(b, ", \"actionable\": true");
            write_list(b, "alternatives", c->alternatives, c->n_alternatives);
        }
        ch_buf_puts(b, j + 1 < s->n_cols ? "},\n" : "}\n");
    }
    return ch_buf_puts(b, "  ]\n}\n");
}

/* ---- accessors --------------------------------------------------------- */

size_t ch_schema_n_cols(const ch_schema *s)
{
    return s->n_cols;
}

const ch_schema_col *ch_schema_col_ref(const ch_schema *s, size_t j)
{
    return j < s->n_cols ? &s->cols[j].view : NULL;
}

const char *ch_schema_name(const ch_schema *s)
{
    return s->name;
}

long ch_schema_find(const ch_schema *s, const char *name)
{
    for (size_t j = 0; j < s->n_cols; j++)
        if (strcmp(s->cols[j].name, name) == 0)
            return (long)j;
    return -1;
}

long ch_schema_target(const ch_schema *s)
{
    return s->target;
}

long ch_schema_id(const ch_schema *s)
{
    return s->id;
}

int ch_schema_ignores_extra(const ch_schema *s)
{
    return s->ignore_extra;
}

const char *ch_schema_hash(const ch_schema *s)
{
    return s->hash;
}

/* ---- values ------------------------------------------------------------ */

ch_value_status ch_schema_parse_value(const ch_schema_col *c, const char *p, size_t len,
                                      double *num, int32_t *cat, ch_reason *reason)
{
    return ch__parse_value(c, p, len, num, cat, reason);
}
