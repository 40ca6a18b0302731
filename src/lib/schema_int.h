/*
 * schema_int.h -- schema internals shared by schema.c and infer.c.
 */
#ifndef CH_SCHEMA_INT_H
#define CH_SCHEMA_INT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ch/schema.h"
#include "ch/text.h"

/* One column with the storage it owns; 'view' is what callers see. */
typedef struct ch__col {
    char *name;
    ch_kind kind;
    char *label;
    int pii;
    int nullable;
    char **categories;
    size_t n_categories;
    ch_unknown_policy on_unknown;
    int has_min, has_max;
    double min, max;
    char **missing;
    size_t n_missing;
    char **positive;
    size_t n_positive;
    char **negative;
    size_t n_negative;
    int actionable;
    char **alternatives;
    size_t n_alternatives;
    size_t *lens; /* one block: category, missing, positive, negative lengths */
    ch_schema_col view;
} ch__col;

struct ch_schema {
    char *name;
    ch__col *cols;
    size_t n_cols;
    long target; /* index or -1 */
    long id;     /* index or -1 */
    int ignore_extra;
    char hash[CH_SHA256_HEX_LEN + 1];
};

void ch__schema_col_clear(ch__col *c);
/* Publishes 'c' through its view; returns -1 when out of memory. */
int ch__schema_col_sync(ch__col *c);
/* Checks names, finds target and id, computes the hash. */
ch_err ch__schema_finish(ch_schema *s, ch_error *err);

/* ---- reading one field -------------------------------------------------
 * The body of ch_schema_parse_value(), inline so that the ingestion loop
 * (millions of fields) does not pay a call per field. Defined once, here. */

/* Equality of two byte strings of length 'len', word by word: the
 * tokens compared here are short, and a libc call per compare costs more
 * than the compare. */
static inline int ch__same_bytes(const char *a, const char *b, size_t len)
{
    while (len >= 8) {
        uint64_t x;
        uint64_t y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
        a += 8;
        b += 8;
        len -= 8;
    }
    while (len > 0) {
        if (*a++ != *b++)
            return 0;
        len--;
    }
    return 1;
}

static inline int ch__in_list(const char *p, size_t len, const char *const *v, const size_t *lens,
                              size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lens[i] == len && ch__same_bytes(v[i], p, len))
            return (int)i;
    return -1;
}

/* ASCII case-insensitive equality of 'a' and 'b', both 'len' bytes. */
static inline int ch__ieq(const char *a, const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char x = (unsigned char)a[i];
        unsigned char y = (unsigned char)b[i];
        if ((unsigned)(x - 'A') < 26u)
            x = (unsigned char)(x + 32);
        if ((unsigned)(y - 'A') < 26u)
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

static inline int ch__in_list_ci(const char *p, size_t len, const char *const *v,
                                 const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lens[i] == len && ch__ieq(p, v[i], len))
            return 1;
    return 0;
}

static inline void ch__trim(const char **p, size_t *len)
{
    while (*len > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t'))
        (*len)--;
}

static inline ch_value_status ch__parse_value(const ch_schema_col *c, const char *p, size_t len,
                                              double *num, int32_t *cat, ch_reason *reason)
{
    int k;
    *reason = CH_REASON_NONE;
    if (ch__in_list(p, len, c->missing, c->missing_lens, c->n_missing) >= 0)
        return CH_VALUE_MISSING;
    switch (c->kind) {
    case CH_KIND_ID:
        if (!ch_text_utf8_valid(p, len)) {
            *reason = CH_REASON_BAD_UTF8;
            return CH_VALUE_BAD;
        }
        return CH_VALUE_OK;
    case CH_KIND_CATEGORICAL:
        k = ch__in_list(p, len, c->categories, c->category_lens, c->n_categories);
        if (k >= 0) {
            *cat = k;
            return CH_VALUE_OK;
        }
        if (!ch_text_utf8_valid(p, len)) {
            *reason = CH_REASON_BAD_UTF8;
            return CH_VALUE_BAD;
        }
        *cat = -1;
        *reason = CH_REASON_UNKNOWN_CAT;
        return CH_VALUE_UNKNOWN;
    case CH_KIND_BINARY:
    case CH_KIND_TARGET:
        ch__trim(&p, &len);
        if (len == 0)
            return CH_VALUE_MISSING;
        if (ch__in_list_ci(p, len, c->positive, c->positive_lens, c->n_positive)) {
            *num = 1.0;
            return CH_VALUE_OK;
        }
        if (ch__in_list_ci(p, len, c->negative, c->negative_lens, c->n_negative)) {
            *num = 0.0;
            return CH_VALUE_OK;
        }
        *reason = c->kind == CH_KIND_TARGET ? CH_REASON_BAD_TARGET : CH_REASON_BAD_BOOL;
        return CH_VALUE_BAD;
    case CH_KIND_NUMERIC:
    case CH_KIND_INTEGER:
        ch__trim(&p, &len);
        if (len == 0)
            return CH_VALUE_MISSING;
        if (ch_parse_double(p, len, num) != 0) {
            *reason = CH_REASON_NOT_NUMBER;
            return CH_VALUE_BAD;
        }
        if (c->kind == CH_KIND_INTEGER && *num != floor(*num)) {
            *reason = CH_REASON_NOT_INTEGER;
            return CH_VALUE_BAD;
        }
        if ((c->has_min && *num < c->min) || (c->has_max && *num > c->max)) {
            *reason = CH_REASON_OUT_OF_RANGE;
            return CH_VALUE_BAD;
        }
        return CH_VALUE_OK;
    }
    return CH_VALUE_BAD;
}

#endif
