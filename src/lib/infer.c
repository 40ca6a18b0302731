/*
 * infer.c -- guess a starter schema from a CSV file.
 *
 * One pass collects, per column: how many values parse as numbers, whether
 * they are whole, min and max, whether each value is the previous one plus
 * one (a row counter), the blank-looking tokens, and a table of its
 * distinct values with their counts. That table also says whether the
 * column repeats a value anywhere, which is what decides identifiers.
 * Then each column gets a kind:
 *   - the target (named, or guessed by a list of usual names), with its
 *     label mapping checked against the values seen;
 *   - numeric/integer when every non-missing value is a number (0/1-only
 *     columns become binary);
 *   - binary when the texts are exactly a yes/no style pair;
 *   - an id candidate when its values are unique on every row read (texts
 *     always, whole numbers only with an id-like name or as a row counter);
 *   - categorical otherwise: every distinct text, or, for a high-cardinality
 *     column, the 'max_categories' most frequent ones with the rest kept
 *     and read as "other".
 * Of the id candidates one becomes the id (texts before numbers, then an
 * id-like name, then the leftmost); the others are left out of the schema,
 * which then ignores extra columns. Ranges are widened to round numbers so
 * that future data a bit outside the sample is not rejected. Every choice a
 * person should review is described in the notes.
 *
 * Memory: the distinct-value table of a column whose values are all
 * different (an id) grows with the rows read, 24 bytes per value, plus the
 * text of the first VAL_TEXT_CAP values. A column that repeats values
 * stops recording new ones after VAL_TEXT_CAP, so the rest stays bounded.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/csv.h"
#include "ch/schema.h"
#include "ch/text.h"
#include "schema_int.h"

#define VAL_TEXT_CAP  65536 /* distinct values per column kept with their text */
#define FEW_DISTINCT  10    /* whole-number columns with at most this many values get a note */
#define ID_MIN_VALUES 20    /* unique texts without an id-like name need this many rows */

static const char *const target_names[] = {"churn",          "churned", "is_churn", "churn_flag",
                                           "target",         "label",   "exited",   "attrition",
                                           "attrition_flag", "left",    "y",        NULL};
static const char *const yes_tokens[] = {"yes", "true", "1", "y", "t"};
static const char *const no_tokens[] = {"no", "false", "0", "n", "f"};
static const char *const blank_tokens[] = {"",     " ",   "NA",  "N/A", "na", "n/a", "null",
                                           "NULL", "NaN", "nan", "?",   "-",  NULL};
/* Words that mark the churned side of a two-valued target ("Attrited
 * Customer" against "Existing Customer"), compared case-insensitively
 * as substrings. */
static const char *const churn_words[] = {"churn",  "attrit", "exit", "left", "leav",
                                          "cancel", "closed", "lost", NULL};

/* ---- distinct values ---------------------------------------------------- */

typedef struct val {
    uint64_t h;     /* hash of the text; 0 marks an empty slot */
    uint64_t count; /* rows with this value */
    char *text;     /* the value, or NULL past VAL_TEXT_CAP */
} val;

typedef struct vmap {
    val *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;   /* distinct values recorded */
} vmap;

static uint64_t hash_text(const char *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h != 0 ? h : 1;
}

static int vmap_grow(vmap *m)
{
    size_t cap = m->cap == 0 ? 64 : m->cap * 2;
    val *s = ch_calloc(cap, sizeof *s);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        size_t k;
        if (m->slots[i].h == 0)
            continue;
        for (k = m->slots[i].h & (cap - 1); s[k].h != 0; k = (k + 1) & (cap - 1))
            ;
        s[k] = m->slots[i];
    }
    ch_free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

/* Counts one occurrence of 'p'. A value not seen before is recorded only
 * when 'add' is set. '*was_new' gets 1 for a first occurrence (recorded or
 * not). Returns -1 when out of memory. Values are told apart by a 64-bit
 * hash, so two different texts are taken for one with probability about
 * n^2 / 2^65: for ten million rows, under 3 in a million. */
static int vmap_count(vmap *m, const char *p, size_t len, int add, int *was_new)
{
    uint64_t h = hash_text(p, len);
    size_t k;
    *was_new = 0;
    if (m->cap > 0)
        for (k = h & (m->cap - 1); m->slots[k].h != 0; k = (k + 1) & (m->cap - 1))
            if (m->slots[k].h == h) {
                m->slots[k].count++;
                return 0;
            }
    *was_new = 1;
    if (!add)
        return 0;
    if (2 * (m->n + 1) > m->cap && vmap_grow(m) != 0)
        return -1;
    for (k = h & (m->cap - 1); m->slots[k].h != 0; k = (k + 1) & (m->cap - 1))
        ;
    if (m->n < VAL_TEXT_CAP) {
        m->slots[k].text = ch_strndup(p, len);
        if (m->slots[k].text == NULL)
            return -1;
    }
    m->slots[k].h = h;
    m->slots[k].count = 1;
    m->n++;
    return 0;
}

static void vmap_free(vmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        ch_free(m->slots[i].text);
    ch_free(m->slots);
}

/* ---- per-column statistics ---------------------------------------------- */

typedef struct stat_col {
    char *name;
    uint64_t n_num, n_int, n_text, n_blank;
    double min, max;
    double prev;    /* the last number seen */
    int sequential; /* every value so far is a number, the previous one plus 1 */
    int repeated;   /* some value occurs on two rows */
    int stopped;    /* new distinct values are no longer recorded */
    vmap vals;      /* distinct non-blank values */
    char **blanks;  /* distinct blank-looking tokens seen (up to 8) */
    size_t n_blanks;
} stat_col;

/* What the second pass decided for a column. */
typedef enum role { ROLE_KEEP = 0, ROLE_ID = 1, ROLE_DROP = 2 } role;

void ch_schema_infer_opts_default(ch_schema_infer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_categories = 100;
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

static int add_blank(stat_col *s, const char *p, size_t len)
{
    char **nv;
    for (size_t k = 0; k < s->n_blanks; k++)
        if (strncmp(s->blanks[k], p, len) == 0 && s->blanks[k][len] == '\0')
            return 0;
    nv = ch_realloc(s->blanks, (s->n_blanks + 1) * sizeof *nv);
    if (nv == NULL)
        return -1;
    s->blanks = nv;
    nv[s->n_blanks] = ch_strndup(p, len);
    if (nv[s->n_blanks] == NULL)
        return -1;
    s->n_blanks++;
    return 0;
}

static void free_stats(stat_col *s, size_t n)
{
    if (s == NULL)
        return;
    for (size_t j = 0; j < n; j++) {
        ch_free(s[j].name);
        vmap_free(&s[j].vals);
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

/* Whether every distinct value is a yes/no token (any case) and both
 * sides appear. */
static int is_bool_pair(const stat_col *s)
{
    int yes = 0;
    int no = 0;
    if (s->vals.n == 0 || s->vals.n > 10 || s->stopped)
        return 0;
    for (size_t k = 0; k < s->vals.cap; k++) {
        const char *t = s->vals.slots[k].text;
        if (s->vals.slots[k].h == 0)
            continue;
        if (t != NULL && in_ci(t, yes_tokens, 5))
            yes = 1;
        else if (t != NULL && in_ci(t, no_tokens, 5))
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

/* Most frequent first; equal counts in byte order of the text. */
static int cmp_val_count(const void *a, const void *b)
{
    const val *x = *(const val *const *)a;
    const val *y = *(const val *const *)b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->text, y->text);
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

/* Lower-cases 'name' without '_', '-' and spaces into 'low' (cap bytes). */
static void squash(const char *name, char *low, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; name[i] != '\0' && n + 1 < cap; i++) {
        char c = name[i];
        if (c == '_' || c == '-' || c == ' ')
            continue;
        low[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    low[n] = '\0';
}

/* Personal data by name. The name is split into lower-case words as for
 * labels ("EmailAddress" gives "email address"), so that a word inside
 * another ("voice mail" is not "email") does not count. */
static const char *const pii_words[] = {
    "email", "surname", "lastname", "firstname", "fullname", "address",   "ssn", "msisdn",
    "iban",  "dob",     "passport", "birthdate", "birthday", "telephone", NULL};
static const char *const pii_pairs[] = {"first name",    "last name",   "full name", "phone number",
                                        "mobile number", "birth date",  "of birth",  "e mail",
                                        "given name",    "family name", NULL};
static const char *const pii_whole[] = {"name", "phone", "mobile", NULL};

/* Whether 'words' (space-separated) holds 'w' as whole words. */
static int has_words(const char *words, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = strstr(words, w); p != NULL; p = strstr(p + 1, w))
        if ((p == words || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return 1;
    return 0;
}

/* Whether a column whose label is 'words' (humanize()'d) is personal data. */
static int looks_pii(const char *words)
{
    for (size_t k = 0; pii_words[k] != NULL; k++)
        if (has_words(words, pii_words[k]))
            return 1;
    for (size_t k = 0; pii_pairs[k] != NULL; k++)
        if (has_words(words, pii_pairs[k]))
            return 1;
    for (size_t k = 0; pii_whole[k] != NULL; k++)
        if (strcmp(words, pii_whole[k]) == 0)
            return 1;
    return 0;
}

/* Whether 'name' reads as an identifier: "id", "ID", "customerID",
 * "CustomerId", "account_id", "user-id", "account id", or holding "uuid"
 * or "guid". A word merely ending in "id" ("Paid", "Valid") is not one:
 * the "id" must stand alone, follow a separator, or start with a capital
 * after a lower-case letter. */
static int looks_id(const char *name)
{
    size_t n = strlen(name);
    char low[256];
    squash(name, low, sizeof low);
    if (strstr(low, "uuid") != NULL || strstr(low, "guid") != NULL)
        return 1;
    if (n < 2 || (name[n - 1] != 'd' && name[n - 1] != 'D') ||
        (name[n - 2] != 'i' && name[n - 2] != 'I'))
        return 0;
    if (n == 2)
        return 1;
    {
        char before = name[n - 3];
        if (before == '_' || before == '-' || before == ' ' || before == '.')
            return 1;
        return name[n - 2] == 'I' && before >= 'a' && before <= 'z';
    }
}

/* Whether 't' names the churned side of a two-valued target. */
static int churn_word(const char *t)
{
    char low[256];
    squash(t, low, sizeof low);
    for (size_t k = 0; churn_words[k] != NULL; k++)
        if (strstr(low, churn_words[k]) != NULL)
            return 1;
    return 0;
}

static void note(ch_buf *notes, const char *col, const char *fmt, ...) CH_PRINTF(3, 4);
static void note(ch_buf *notes, const char *col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (notes == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ch_buf_printf(notes, "%s: %s\n", col, msg);
}

/* Up to 'max' distinct values of 's' in byte order into 'out', joined
 * with ", " (for notes). */
static void list_values(const stat_col *s, size_t max, char *out, size_t cap)
{
    const char *v[FEW_DISTINCT];
    size_t n = 0;
    size_t o = 0;
    for (size_t k = 0; k < s->vals.cap && n < FEW_DISTINCT; k++)
        if (s->vals.slots[k].h != 0 && s->vals.slots[k].text != NULL)
            v[n++] = s->vals.slots[k].text;
    qsort(v, n, sizeof *v, cmp_str);
    out[0] = '\0';
    for (size_t i = 0; i < n && i < max; i++) {
        int w = snprintf(out + o, cap - o, "%s%s", i ? ", " : "", v[i]);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
}

/* Whether column 's' (read over 'rows' rows) may be the id: every row has
 * a value and no value repeats; a text column needs ID_MIN_VALUES rows or
 * an id-like name, a whole-number column an id-like name or to count
 * rows. Returns a rank (higher wins) or 0. */
static int id_rank(const stat_col *s, uint64_t rows)
{
    uint64_t n_values = s->n_num + s->n_text;
    int named = looks_id(s->name);
    if (rows == 0 || s->repeated || s->n_blank > 0 || n_values != rows)
        return 0;
    if (s->n_text > 0)
        return named || n_values >= ID_MIN_VALUES ? 3 + named : 0;
    if (s->n_int == s->n_num && (named || (s->sequential && rows >= 2)))
        return 1 + named;
    return 0;
}

/* Sets the label mapping of target column 'c' from the values of 's'.
 * With 'positive' given, that value is churned and the other one is not.
 * Otherwise yes/no tokens in any case (TRUE/False/yes/No/1/0 ...) use the
 * default lists, and two other values need one of them to read as churn
 * ("Attrited Customer"). */
static ch_err target_labels(ch__col *c, const stat_col *s, const char *positive, ch_buf *notes,
                            ch_error *err)
{
    char *v[2] = {NULL, NULL};
    size_t n = 0;
    int tokens = 1;
    int pos;
    ch_err rc;
    for (size_t k = 0; k < s->vals.cap; k++) {
        char *t = s->vals.slots[k].text;
        if (s->vals.slots[k].h == 0)
            continue;
        if (t == NULL || (!in_ci(t, yes_tokens, 5) && !in_ci(t, no_tokens, 5)))
            tokens = 0;
        if (n < 2)
            v[n] = t;
        n++;
    }
    if (n == 2 && v[0] != NULL && v[1] != NULL && strcmp(v[0], v[1]) > 0) {
        char *t = v[0]; /* byte order, whatever order the table holds them in */
        v[0] = v[1];
        v[1] = t;
    }
    if (s->n_blank > 0)
        note(notes, s->name, "%llu rows have no target value; validation rejects them",
             (unsigned long long)s->n_blank);
    if (n == 0)
        return ch_error_set(err, CH_EDATA, "target \"%s\" has no values", s->name);
    if (positive == NULL && tokens) {
        if (!is_bool_pair(s))
            note(notes, s->name, "only one class of the target in the rows read");
        rc = set_list(&c->positive, &c->n_positive, (char **)yes_tokens, 5, err);
        return rc != CH_OK ? rc
                           : set_list(&c->negative, &c->n_negative, (char **)no_tokens, 5, err);
    }
    if (n != 2 || v[0] == NULL || v[1] == NULL)
        return ch_error_set(err, CH_EDATA,
                            "target \"%s\" has %zu distinct values, not yes/no tokens; a target "
                            "needs two values (churned or not)%s",
                            s->name, n, n == 1 ? ": say which means churn with --positive" : "");
    if (positive != NULL) {
        if (strcmp(v[0], positive) != 0 && strcmp(v[1], positive) != 0)
            return ch_error_set(err, CH_EDATA,
                                "target \"%s\": --positive \"%s\" is neither \"%s\" nor \"%s\"",
                                s->name, positive, v[0], v[1]);
        pos = strcmp(v[0], positive) == 0 ? 0 : 1;
    } else if (churn_word(v[0]) != churn_word(v[1])) {
        pos = churn_word(v[0]) ? 0 : 1;
        note(notes, s->name, "\"%s\" read as churned and \"%s\" as stayed (by the wording)", v[pos],
             v[1 - pos]);
    } else {
        return ch_error_set(err, CH_EDATA,
                            "target \"%s\" has the values \"%s\" and \"%s\": say which means "
                            "churn with --positive",
                            s->name, v[0], v[1]);
    }
    rc = set_list(&c->positive, &c->n_positive, &v[pos], 1, err);
    return rc != CH_OK ? rc : set_list(&c->negative, &c->n_negative, &v[1 - pos], 1, err);
}

/* The categories of text column 's': every distinct value in byte order,
 * or the 'max_cat' most frequent (then sorted) with the rest kept as
 * unknown ("other") values. */
static ch_err set_categories(ch__col *c, const stat_col *s, size_t max_cat, uint64_t n_values,
                             ch_buf *notes, ch_error *err)
{
    val **v = ch_malloc_array(s->vals.n + 1, sizeof *v);
    char **names = ch_malloc_array(s->vals.n + 1, sizeof *names);
    size_t n = 0;
    size_t keep;
    uint64_t covered = 0;
    ch_err rc;
    if (v == NULL || names == NULL) {
        ch_free(v);
        ch_free(names);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < s->vals.cap; k++)
        if (s->vals.slots[k].h != 0 && s->vals.slots[k].text != NULL)
            v[n++] = &s->vals.slots[k];
    qsort(v, n, sizeof *v, cmp_val_count);
    keep = n < max_cat ? n : max_cat;
    for (size_t k = 0; k < keep; k++) {
        names[k] = v[k]->text;
        covered += v[k]->count;
    }
    qsort(names, keep, sizeof *names, cmp_str);
    if (!s->repeated && s->n_blank > 0)
        note(notes, s->name,
             "no value repeats, but %llu rows are blank: not taken as the id (an id needs a value "
             "on every row)",
             (unsigned long long)s->n_blank);
    if (keep < n || n < s->vals.n || s->stopped) {
        c->on_unknown = CH_UNKNOWN_KEEP;
        note(notes, s->name,
             "%s%zu distinct texts: the %zu most frequent are categories (%.1f%% of rows), the "
             "others are kept and read as \"other\" (on_unknown: keep)",
             s->stopped ? "over " : "", s->vals.n, keep,
             n_values > 0 ? 100.0 * (double)covered / (double)n_values : 0.0);
    }
    rc = set_list(&c->categories, &c->n_categories, names, keep, err);
    ch_free(v);
    ch_free(names);
    return rc;
}

/* Decides column 'c' from its statistics 's'. */
static ch_err build_col(ch__col *c, stat_col *s, int is_target, role r,
                        const ch_schema_infer_opts *o, ch_error *err)
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
    } else if (r == ROLE_ID) {
        c->kind = CH_KIND_ID;
    } else if (n_values == 0) {
        c->kind = CH_KIND_NUMERIC; /* nothing but blanks: a nullable column, kind unknown */
        note(o->notes, s->name, "no value in any row: declared numeric and nullable");
    } else if (s->n_text == 0) {
        if (s->n_int == s->n_num && s->min >= 0 && s->max <= 1)
            c->kind = CH_KIND_BINARY;
        else
            c->kind = s->n_int == s->n_num ? CH_KIND_INTEGER : CH_KIND_NUMERIC;
        /* A few values that are not a run of consecutive numbers (0..7
         * service calls is a count) look like codes: 408, 415, 510. */
        if (c->kind == CH_KIND_INTEGER && !s->stopped && s->vals.n <= FEW_DISTINCT &&
            s->max - s->min + 1 > (double)s->vals.n) {
            char vals[256];
            list_values(s, FEW_DISTINCT, vals, sizeof vals);
            note(o->notes, s->name,
                 "whole numbers with only %zu distinct values (%s), not consecutive: declared "
                 "integer; if they are codes (an area code, a plan number), make it categorical",
                 s->vals.n, vals);
        }
    } else if (is_bool_pair(s)) {
        c->kind = CH_KIND_BINARY;
    } else {
        c->kind = CH_KIND_CATEGORICAL;
        if (s->n_num > 0)
            note(o->notes, s->name,
                 "%llu values are numbers and %llu are text: declared categorical",
                 (unsigned long long)s->n_num, (unsigned long long)s->n_text);
    }
    c->nullable = c->kind != CH_KIND_ID && c->kind != CH_KIND_TARGET;
    c->pii = c->kind == CH_KIND_ID || looks_pii(c->label);
    if (c->pii && c->kind != CH_KIND_ID)
        note(o->notes, s->name,
             "the name suggests personal data: marked pii; generated feature configs exclude it");

    /* Missing tokens: the blank-looking texts seen, or just "". */
    if (c->kind != CH_KIND_ID && s->n_blanks > 0 && add_blank(s, def_missing[0], 0) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    if (c->kind != CH_KIND_ID && s->n_blanks > 0) {
        qsort(s->blanks, s->n_blanks, sizeof *s->blanks, cmp_str);
        rc = set_list(&c->missing, &c->n_missing, s->blanks, s->n_blanks, err);
    } else {
        rc = set_list(&c->missing, &c->n_missing, (char **)def_missing, 1, err);
    }
    if (rc != CH_OK)
        return rc;
    if (c->kind == CH_KIND_TARGET) {
        if ((rc = target_labels(c, s, o->positive, o->notes, err)) != CH_OK)
            return rc;
    } else if (c->kind == CH_KIND_BINARY) {
        rc = set_list(&c->positive, &c->n_positive, (char **)yes_tokens, 5, err);
        if (rc == CH_OK)
            rc = set_list(&c->negative, &c->n_negative, (char **)no_tokens, 5, err);
        if (rc != CH_OK)
            return rc;
    }
    if (c->kind == CH_KIND_CATEGORICAL &&
        (rc = set_categories(c, s, o->max_categories, n_values, o->notes, err)) != CH_OK)
        return rc;
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

/* Folds one field into its column's statistics. Every distinct non-blank
 * text is counted, numbers included, so that a column of codes such as
 * "1", "2", "x" keeps all its values as categories whatever order they
 * come in. Once a column holds VAL_TEXT_CAP distinct values and is known
 * not to be an identifier (a value repeats, or a number has a fraction),
 * new values are no longer recorded. */
static int observe(stat_col *s, const char *p, size_t len)
{
    double v;
    int was_new;
    if (is_blank_token(p, len)) {
        s->n_blank++;
        s->sequential = 0;
        if (s->n_blanks < 8)
            return add_blank(s, p, len);
        return 0;
    }
    if (ch_parse_double(p, len, &v) == 0) {
        s->n_num++;
        if (v == floor(v))
            s->n_int++;
        if (s->n_num > 1 && v != s->prev + 1)
            s->sequential = 0;
        s->prev = v;
        if (s->n_num == 1 || v < s->min)
            s->min = v;
        if (s->n_num == 1 || v > s->max)
            s->max = v;
    } else {
        s->n_text++;
        s->sequential = 0;
    }
    if (!s->stopped && s->vals.n >= VAL_TEXT_CAP && (s->repeated || s->n_int < s->n_num))
        s->stopped = 1;
    if (vmap_count(&s->vals, p, len, !s->stopped, &was_new) != 0)
        return -1;
    if (!was_new)
        s->repeated = 1;
    return 0;
}

/* Picks the id among the candidates and marks the others to be left out;
 * 'roles' gets one entry per column. */
static void choose_id(const stat_col *st, size_t n, long target, uint64_t rows, role *roles,
                      ch_buf *notes)
{
    long best = -1;
    int best_rank = 0;
    for (size_t j = 0; j < n; j++) {
        int r = (long)j == target ? 0 : id_rank(&st[j], rows);
        roles[j] = ROLE_KEEP;
        if (r > best_rank) {
            best_rank = r;
            best = (long)j;
        }
    }
    if (best < 0) {
        note(notes, "(schema)", "no column has a distinct value on every row: no id column");
        return;
    }
    roles[best] = ROLE_ID;
    note(notes, st[best].name, "a distinct value on every row: the id column (pii)");
    for (size_t j = 0; j < n; j++) {
        if ((long)j == best || (long)j == target || id_rank(&st[j], rows) == 0)
            continue;
        roles[j] = ROLE_DROP;
        note(notes, st[j].name,
             "%s: left out of the schema, which ignores extra columns (extra_columns: ignore)",
             st[j].sequential && st[j].n_text == 0 ? "a row counter (each value the previous + 1)"
                                                   : "a second identifier (unique on every row)");
    }
}

ch_err ch_schema_infer(const char *path, const ch_schema_infer_opts *opts, ch_schema **out,
                       ch_error *err)
{
    ch_schema_infer_opts defaults;
    const ch_schema_infer_opts *o = opts;
    ch_csv *csv = NULL;
    ch_csv_record rec;
    stat_col *st = NULL;
    role *roles = NULL;
    ch_schema *s = NULL;
    size_t n = 0;
    uint64_t rows = 0;
    uint64_t skipped = 0;
    long target = -1;
    int got = 0;
    ch_err rc;

    if (o == NULL) {
        ch_schema_infer_opts_default(&defaults);
        o = &defaults;
    }
    if (o->max_categories < 2)
        return ch_error_set(err, CH_EINVAL, "max_categories must be at least 2");
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
    roles = ch_calloc(n, sizeof *roles);
    if (st == NULL || roles == NULL) {
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
        st[j].sequential = 1;
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
        if (rec.n_fields != n || rec.problem != NULL) {
            skipped++; /* a starter schema is a guess; odd rows are judged by validate */
            continue;
        }
        rows++;
        for (size_t j = 0; j < n; j++)
            if (observe(&st[j], rec.fields[j].p, rec.fields[j].len) != 0) {
                rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                goto fail;
            }
    }
    if (skipped > 0)
        note(o->notes, "(schema)",
             "%llu rows with the wrong number of fields or malformed CSV were not read",
             (unsigned long long)skipped);
    choose_id(st, n, target, rows, roles, o->notes);
    s = ch_calloc(1, sizeof *s);
    if (s == NULL || (s->cols = ch_calloc(n, sizeof *s->cols)) == NULL ||
        (s->name = ch_strdup(o->name != NULL ? o->name : "inferred")) == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t j = 0; j < n; j++) {
        if (roles[j] == ROLE_DROP) {
            s->ignore_extra = 1;
            continue;
        }
        rc = build_col(&s->cols[s->n_cols++], &st[j], (long)j == target, roles[j], o, err);
        if (rc != CH_OK)
            goto fail;
    }
    rc = ch__schema_finish(s, err);
    if (rc != CH_OK)
        goto fail;
    if (o->notes != NULL && ch_buf_status(o->notes) != CH_OK) {
        rc = ch_error_set(err, ch_buf_status(o->notes), "notes: out of memory");
        goto fail;
    }
    free_stats(st, n);
    ch_free(roles);
    ch_csv_free(csv);
    *out = s;
    return CH_OK;
fail:
    ch_error_prefix(err, "%s", path);
    ch_schema_free(s);
    free_stats(st, n);
    ch_free(roles);
    ch_csv_free(csv);
    return rc;
}

/* Squashed names (see squash()) of monthly-revenue columns. */
static const char *const revenue_names[] = {
    "monthlycharges", "monthlycharge", "monthlyrevenue", "monthlyfee", "monthlyfees", "monthlybill",
    "monthlyspend",   "monthlyamount", "revenue",        "arpu",       "mrr",         NULL};

long ch_schema_guess_revenue(const ch_schema *s)
{
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        char low[256];
        if (c->kind != CH_KIND_NUMERIC && c->kind != CH_KIND_INTEGER)
            continue;
        squash(c->name, low, sizeof low);
        for (size_t k = 0; revenue_names[k] != NULL; k++)
            if (strcmp(low, revenue_names[k]) == 0)
                return (long)j;
    }
    return -1;
}
