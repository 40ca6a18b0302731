/*
 * infer.c -- guess a starter schema from a CSV file.
 *
 * One pass collects, per column: how many values parse as numbers, whether
 * they are whole, min and max, the distinct texts (up to a cap), and the
 * blank-looking tokens. Then each column gets a kind:
 *   - the target (named, or guessed by a list of usual names);
 *   - numeric/integer when every non-missing value is a number (0/1-only
 *     columns become binary);
 *   - binary when the texts are exactly a yes/no style pair;
 *   - categorical up to 'max_categories' distinct texts;
 *   - id otherwise (never used as a feature, marked PII).
 * Ranges are widened to round numbers so that future data a bit outside
 * the sample is not rejected; the user is expected to review the result.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/csv.h"
#include "ch/schema.h"
#include "ch/text.h"
#include "schema_int.h"

static const char *const target_names[] = {"churn",          "churned", "is_churn", "churn_flag",
                                           "target",         "label",   "exited",   "attrition",
                                           "attrition_flag", "left",    "y",        NULL};
static const char *const yes_tokens[] = {"yes", "true", "1", "y", "t"};
static const char *const no_tokens[] = {"no", "false", "0", "n", "f"};
static const char *const blank_tokens[] = {"",     " ",   "NA",  "N/A", "na", "n/a", "null",
                                           "NULL", "NaN", "nan", "?",   "-",  NULL};

typedef struct stat_col {
    char *name;
    uint64_t n_num, n_int, n_text, n_blank;
    double min, max;
    char **texts; /* distinct non-numeric, non-blank texts (up to cap + 1) */
    uint64_t *counts;
    size_t n_texts;
    int too_many;  /* more distinct texts than the cap */
    char **blanks; /* distinct blank-looking tokens seen */
    size_t n_blanks;
    uint64_t n_distinct_all; /* distinct values of any kind, capped, for ids */
} stat_col;

void ch_schema_infer_opts_default(ch_schema_infer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_categories = 50;
}

static int is_blank_token(const char *p, size_t len)
{
    for (size_t k = 0; blank_tokens[k] != NULL; k++)
        if (strlen(blank_tokens[k]) == len && memcmp(blank_tokens[k], p, len) == 0)
            return 1;
    for (size_t i = 0; i < len; i++)
        if (p[i] != ' ' && p[i] != '\t')
            return 0;
    return 1;
}

static int add_text(char ***v, uint64_t **cnt, size_t *n, const char *p, size_t len)
{
    for (size_t k = 0; k < *n; k++)
        if (strncmp((*v)[k], p, len) == 0 && (*v)[k][len] == '\0') {
            if (cnt != NULL)
                (*cnt)[k]++;
            return 0;
        }
    char **nv = ch_realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL)
        return -1;
    *v = nv;
    if (cnt != NULL) {
        uint64_t *nc = ch_realloc(*cnt, (*n + 1) * sizeof *nc);
        if (nc == NULL)
            return -1;
        *cnt = nc;
        nc[*n] = 1;
    }
    nv[*n] = ch_strndup(p, len);
    if (nv[*n] == NULL)
        return -1;
    (*n)++;
    return 0;
}

static void free_stats(stat_col *s, size_t n)
{
    if (s == NULL)
        return;
    for (size_t j = 0; j < n; j++) {
        ch_free(s[j].name);
        for (size_t k = 0; k < s[j].n_texts; k++)
            ch_free(s[j].texts[k]);
        ch_free(s[j].texts);
        ch_free(s[j].counts);
        for (size_t k = 0; k < s[j].n_blanks; k++)
            ch_free(s[j].blanks[k]);
        ch_free(s[j].blanks);
    }
    ch_free(s);
}

static int in_ci(const char *t, const char *const *v, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (ch_text_ieq(t, strlen(t), v[k]))
            return 1;
    return 0;
}

/* Whether every text is a yes/no token and both sides appear. */
static int is_bool_pair(const stat_col *s)
{
    int yes = 0;
    int no = 0;
    if (s->n_texts == 0 || s->n_texts > 4 || s->too_many)
        return 0;
    for (size_t k = 0; k < s->n_texts; k++) {
        if (in_ci(s->texts[k], yes_tokens, 5))
            yes = 1;
        else if (in_ci(s->texts[k], no_tokens, 5))
            no = 1;
        else
            return 0;
    }
    return yes && no;
}

/* A round number at or beyond 'v' in the direction away from zero. */
static double widen(double v)
{
    double a = fabs(v);
    double p;
    if (a == 0)
        return 0;
    p = pow(10, floor(log10(a)));
    a = ceil(a * 2 / p) * p; /* twice the magnitude, rounded up to one digit */
    return v < 0 ? -a : a;
}

/* Turns "MonthlyCharges", "customer_id" into "monthly charges", "customer id". */
static char *humanize(const char *name)
{
    size_t n = strlen(name);
    char *out = ch_malloc(2 * n + 1);
    size_t o = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int upper = c >= 'A' && c <= 'Z';
        int prev_lower = i > 0 && ((name[i - 1] >= 'a' && name[i - 1] <= 'z') ||
                                   (name[i - 1] >= '0' && name[i - 1] <= '9'));
        int next_lower = i + 1 < n && name[i + 1] >= 'a' && name[i + 1] <= 'z';
        int prev_upper = i > 0 && name[i - 1] >= 'A' && name[i - 1] <= 'Z';
        if (c == '_' || c == '-') {
            out[o++] = ' ';
            continue;
        }
        if (upper && o > 0 && out[o - 1] != ' ' && (prev_lower || (prev_upper && next_lower)))
            out[o++] = ' ';
        out[o++] = upper ? (char)(c + 32) : c;
    }
    out[o] = '\0';
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static ch_err set_list(char ***dst, size_t *n_dst, char **src, size_t n, ch_error *err)
{
    *dst = ch_calloc(n == 0 ? 1 : n, sizeof **dst);
    if (*dst == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        (*dst)[k] = ch_strdup(src[k]);
        if ((*dst)[k] == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        *n_dst = k + 1;
    }
    return CH_OK;
}

/* Personal data by name: compared after lower-casing and dropping '_',
 * '-' and spaces, so "First_Name" and "firstname" match. Plain words such
 * as "phone" alone are too broad ("PhoneService"), so only the specific
 * forms are listed. */
static const char *const pii_parts[] = {
    "email", "firstname",   "lastname",     "fullname", "surname", "address", "ssn",
    "birth", "phonenumber", "mobilenumber", "msisdn",   "iban",    NULL};
static const char *const pii_exact[] = {"name", "phone", "mobile", "dob", NULL};

static int looks_pii(const char *name)
{
    char low[256];
    size_t n = 0;
    for (size_t i = 0; name[i] != '\0' && n + 1 < sizeof low; i++) {
        char c = name[i];
        if (c == '_' || c == '-' || c == ' ')
            continue;
        low[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    low[n] = '\0';
    for (size_t k = 0; pii_parts[k] != NULL; k++)
        if (strstr(low, pii_parts[k]) != NULL)
            return 1;
    for (size_t k = 0; pii_exact[k] != NULL; k++)
        if (strcmp(low, pii_exact[k]) == 0)
            return 1;
    return 0;
}

/* Whether a text column whose values are all distinct is an identifier:
 * always with 20 or more values, and in a smaller sample when its name
 * says so ("id", "customerID", "account_id", ...). */
static int looks_id(const char *name, uint64_t n_values)
{
    size_t n = strlen(name);
    if (n_values >= 20)
        return 1;
    return n >= 2 && (name[n - 2] == 'i' || name[n - 2] == 'I') &&
           (name[n - 1] == 'd' || name[n - 1] == 'D');
}

/* Decides column 'c' from its statistics 's'. */
static ch_err build_col(ch__col *c, stat_col *s, int is_target, size_t max_cat, uint64_t rows,
                        ch_error *err)
{
    static const char *const def_missing[] = {""};
    uint64_t n_values = s->n_num + s->n_text;
    ch_err rc;

    c->name = ch_strdup(s->name);
    c->label = humanize(s->name);
    if (c->name == NULL || c->label == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    if (is_target) {
        c->kind = CH_KIND_TARGET;
    } else if (n_values == 0) {
        c->kind = CH_KIND_NUMERIC; /* nothing but blanks: a nullable column, kind unknown */
    } else if (s->n_text == 0) {
        if (s->n_int == s->n_num && s->min >= 0 && s->max <= 1)
            c->kind = CH_KIND_BINARY;
        else
            c->kind = s->n_int == s->n_num ? CH_KIND_INTEGER : CH_KIND_NUMERIC;
    } else if (is_bool_pair(s)) {
        c->kind = CH_KIND_BINARY;
    } else if (!s->too_many && s->n_texts == n_values && looks_id(s->name, n_values)) {
        c->kind = CH_KIND_ID; /* every value distinct: an identifier */
    } else if (!s->too_many && s->n_texts > 0 && s->n_texts <= max_cat &&
               (s->n_texts < 20 || (double)s->n_texts < 0.5 * (double)rows)) {
        c->kind = CH_KIND_CATEGORICAL;
    } else {
        c->kind = CH_KIND_ID;
    }
    c->nullable = c->kind != CH_KIND_ID && c->kind != CH_KIND_TARGET;
    c->pii = c->kind == CH_KIND_ID || looks_pii(s->name);

    /* Missing tokens: the blank-looking texts seen, or just "". */
    if (c->kind != CH_KIND_ID && s->n_blanks > 0 &&
        add_text(&s->blanks, NULL, &s->n_blanks, def_missing[0], 0) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    if (c->kind != CH_KIND_ID && s->n_blanks > 0) {
        qsort(s->blanks, s->n_blanks, sizeof *s->blanks, cmp_str);
        rc = set_list(&c->missing, &c->n_missing, s->blanks, s->n_blanks, err);
    } else {
        rc = set_list(&c->missing, &c->n_missing, (char **)def_missing, 1, err);
    }
    if (rc != CH_OK)
        return rc;
    if (c->kind == CH_KIND_BINARY || c->kind == CH_KIND_TARGET) {
        rc = set_list(&c->positive, &c->n_positive, (char **)yes_tokens, 5, err);
        if (rc == CH_OK)
            rc = set_list(&c->negative, &c->n_negative, (char **)no_tokens, 5, err);
        if (rc != CH_OK)
            return rc;
    }
    if (c->kind == CH_KIND_CATEGORICAL) {
        qsort(s->texts, s->n_texts, sizeof *s->texts, cmp_str);
        if ((rc = set_list(&c->categories, &c->n_categories, s->texts, s->n_texts, err)) != CH_OK)
            return rc;
    }
    if ((c->kind == CH_KIND_INTEGER || c->kind == CH_KIND_NUMERIC) && s->n_num > 0) {
        c->has_min = 1;
        c->has_max = 1;
        c->min = s->min >= 0 ? 0 : widen(s->min);
        c->max = s->max <= 0 ? 0 : widen(s->max);
    }
    if (ch__schema_col_sync(c) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    return CH_OK;
}

static int is_target_name(const char *name)
{
    for (size_t k = 0; target_names[k] != NULL; k++)
        if (ch_text_ieq(name, strlen(name), target_names[k]))
            return 1;
    return 0;
}

/* Folds one field into its column's statistics. Every distinct
 * non-blank text is remembered (up to the cap), numbers included, so
 * that a column of codes such as "1", "2", "x" keeps all its values as
 * categories whatever order they come in. */
static int observe(stat_col *s, const char *p, size_t len, size_t max_cat)
{
    double v;
    if (is_blank_token(p, len)) {
        s->n_blank++;
        if (s->n_blanks < 8)
            return add_text(&s->blanks, NULL, &s->n_blanks, p, len);
        return 0;
    }
    if (ch_parse_double(p, len, &v) == 0) {
        s->n_num++;
        if (v == floor(v))
            s->n_int++;
        if (s->n_num == 1 || v < s->min)
            s->min = v;
        if (s->n_num == 1 || v > s->max)
            s->max = v;
    } else {
        s->n_text++;
    }
    if (s->too_many)
        return 0;
    if (s->n_texts > max_cat) {
        s->too_many = 1;
        return 0;
    }
    return add_text(&s->texts, &s->counts, &s->n_texts, p, len);
}

ch_err ch_schema_infer(const char *path, const ch_schema_infer_opts *opts, ch_schema **out,
                       ch_error *err)
{
    ch_schema_infer_opts defaults;
    const ch_schema_infer_opts *o = opts;
    ch_csv *csv = NULL;
    ch_csv_record rec;
    stat_col *st = NULL;
    ch_schema *s = NULL;
    size_t n = 0;
    uint64_t rows = 0;
    long target = -1;
    int got = 0;
    ch_err rc;

    if (o == NULL) {
        ch_schema_infer_opts_default(&defaults);
        o = &defaults;
    }
    rc = ch_csv_open_file(path, NULL, &csv, err);
    if (rc != CH_OK)
        return rc;
    rc = ch_csv_next(csv, &rec, &got, err);
    if (rc != CH_OK)
        goto fail;
    if (!got) {
        rc = ch_error_set(err, CH_EDATA, "empty file: no header line");
        goto fail;
    }
    n = rec.n_fields;
    st = ch_calloc(n, sizeof *st);
    if (st == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < n; j++) {
        const ch_csv_field *f = &rec.fields[j];
        if (f->len == 0 || memchr(f->p, '\0', f->len) != NULL ||
            !ch_text_utf8_valid(f->p, f->len)) {
            rc = ch_error_set(err, CH_EFORMAT, "header: column %zu has an empty or invalid name",
                              j + 1);
            goto fail;
        }
        st[j].name = ch_strndup(f->p, f->len);
        if (st[j].name == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t k = 0; k < j; k++)
            if (strcmp(st[k].name, st[j].name) == 0) {
                rc = ch_error_set(err, CH_EFORMAT, "header: column \"%s\" appears twice",
                                  st[j].name);
                goto fail;
            }
        if (o->target != NULL ? strcmp(st[j].name, o->target) == 0
                              : target < 0 && is_target_name(st[j].name))
            target = (long)j;
    }
    if (target < 0) {
        rc = o->target != NULL
                 ? ch_error_set(err, CH_ENOTFOUND, "no column called \"%s\" for the target",
                                o->target)
                 : ch_error_set(err, CH_ENOTFOUND,
                                "no target column found by name (churn, target, label, "
                                "exited, attrition, ...): name it with --target");
        goto fail;
    }
    for (;;) {
        rc = ch_csv_next(csv, &rec, &got, err);
        if (rc != CH_OK)
            goto fail;
        if (!got || (o->max_rows > 0 && rows >= o->max_rows))
            break;
        if (rec.n_fields != n || rec.problem != NULL)
            continue; /* a starter schema is a guess; odd rows are judged by validate */
        rows++;
        for (size_t j = 0; j < n; j++)
            if (observe(&st[j], rec.fields[j].p, rec.fields[j].len, o->max_categories) != 0) {
                rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                goto fail;
            }
    }
    s = ch_calloc(1, sizeof *s);
    if (s == NULL || (s->cols = ch_calloc(n, sizeof *s->cols)) == NULL ||
        (s->name = ch_strdup("inferred")) == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < n; j++) {
        s->n_cols = j + 1;
        rc = build_col(&s->cols[j], &st[j], (long)j == target, o->max_categories, rows, err);
        if (rc != CH_OK)
            goto fail;
    }
    /* A schema has one id column; a second identifier-like column is
     * reported rather than guessed at. */
    {
        int seen_id = 0;
        for (size_t j = 0; j < n; j++) {
            if (s->cols[j].kind != CH_KIND_ID)
                continue;
            if (seen_id) {
                rc = ch_error_set(err, CH_EFORMAT,
                                  "columns \"%s\" and another look like identifiers; a schema "
                                  "has one id column (drop one of them from the file first)",
                                  s->cols[j].name);
                goto fail;
            }
            seen_id = 1;
        }
    }
    rc = ch__schema_finish(s, err);
    if (rc != CH_OK)
        goto fail;
    free_stats(st, n);
    ch_csv_free(csv);
    *out = s;
    return CH_OK;
fail:
    ch_error_prefix(err, "%s", path);
    ch_schema_free(s);
    free_stats(st, n);
    ch_csv_free(csv);
    return rc;
}
