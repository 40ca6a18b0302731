/*
 * inputs.c -- the binary codec of one record's input values (inputs.h).
 *
 * Encoding runs for every prediction served, so it makes one pass over
 * the values with no allocation and no formatting: numbers are copied as
 * their eight bytes, and categories are matched by length before their
 * bytes are compared (a Telco record is about 90 bytes and encodes in
 * well under a microsecond).
 *
 * Decoding reads blobs from the store, which may have been edited, cut
 * short or written by another build, so every length is checked before
 * the bytes it covers are read. One walker serves both decoders: it runs
 * once to check the whole blob and, only when that passes, once more to
 * fill the caller's arrays, so that a bad blob leaves them untouched (the
 * rule that out-parameters are written only on success); the second walk
 * over a blob of a hundred bytes costs less than anything done with its
 * result.
 */
#include "ch/inputs.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/text.h"

/* The bits written for a missing number: the default quiet NaN. Readers
 * take any NaN as missing. */
#define MISSING_BITS 0x7FF8000000000000ull

static int is_skipped(ch_kind k)
{
    return k == CH_KIND_ID || k == CH_KIND_TARGET;
}

/* Byte order is spelled out with shifts rather than memcpy of the host
 * value, so the format is little endian on any machine; compilers turn
 * these loops into one load or store on little-endian hosts. */
static void put_u64(unsigned char *o, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        o[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_u16(unsigned char *o, unsigned v)
{
    o[0] = (unsigned char)(v & 0xFF);
    o[1] = (unsigned char)(v >> 8);
}

static unsigned get_u16(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

/* The index of text 'p' ('len' bytes) among the categories of 'c', or -1.
 * Lengths first: most candidates differ there, and a length compare is
 * one load. */
static long find_category(const ch_schema_col *c, const char *p, size_t len)
{
    for (size_t k = 0; k < c->n_categories; k++)
        if (c->category_lens[k] == len && (len == 0 || memcmp(c->categories[k], p, len) == 0))
            return (long)k;
    return -1;
}

/* How much of an unknown category's text is kept: all of it up to
 * CH_INPUTS_TEXT_MAX bytes, else the longest prefix that ends before a
 * character starts (a UTF-8 continuation byte is 10xxxxxx). */
static size_t kept_len(const char *p, size_t len)
{
    size_t keep = len;
    if (keep > CH_INPUTS_TEXT_MAX) {
        keep = CH_INPUTS_TEXT_MAX;
        while (keep > 0 && ((unsigned char)p[keep] & 0xC0) == 0x80)
            keep--;
    }
    return keep;
}

static ch_err no_room(const ch_schema_col *c, size_t cap, ch_error *err)
{
    return ch_error_set(err, CH_ELIMIT, "inputs: column '%s': the blob needs more than %zu bytes",
                        c->name, cap);
}

ch_err ch_inputs_encode(const ch_schema *s, const ch_value *vals, unsigned char *out, size_t cap,
                        size_t *len, ch_error *err)
{
    size_t n;
    size_t at = 1;

    if (s == NULL || vals == NULL || out == NULL || len == NULL)
        return ch_error_set(err, CH_EINVAL, "inputs: %s is NULL",
                            s == NULL      ? "the schema"
                            : vals == NULL ? "the values"
                            : out == NULL  ? "the output buffer"
                                           : "the length pointer");
    if (cap < 1)
        return ch_error_set(err, CH_ELIMIT, "inputs: the blob needs more than 0 bytes");
    out[0] = CH_INPUTS_FORMAT;
    n = ch_schema_n_cols(s);
    for (size_t j = 0; j < n; j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        const ch_value *v = &vals[j];
        if (is_skipped(c->kind))
            continue;
        if (c->kind != CH_KIND_CATEGORICAL) {
            uint64_t bits = MISSING_BITS;
            if (cap - at < 8)
                return no_room(c, cap, err);
            if (!v->missing && !isnan(v->num))
                memcpy(&bits, &v->num, sizeof bits);
            put_u64(out + at, bits);
            at += 8;
            continue;
        }
        if (cap - at < 2)
            return no_room(c, cap, err);
        if (v->missing) {
            put_u16(out + at, CH_INPUTS_MISSING);
            at += 2;
            continue;
        }
        if (v->str == NULL && v->len > 0)
            return ch_error_set(err, CH_EINVAL, "inputs: column '%s': the category text is NULL",
                                c->name);
        long k = find_category(c, v->str, v->len);
        if (k >= CH_INPUTS_UNKNOWN)
            return ch_error_set(err, CH_ELIMIT,
                                "inputs: column '%s': category %ld does not fit a 16-bit code",
                                c->name, k);
        if (k >= 0) {
            put_u16(out + at, (unsigned)k);
            at += 2;
            continue;
        }
        size_t keep = kept_len(v->str, v->len);
        if (!ch_text_utf8_valid(v->str, keep))
            return ch_error_set(err, CH_EINVAL, "inputs: column '%s': the category is not UTF-8",
                                c->name);
        if (cap - at < 3 + keep)
            return no_room(c, cap, err);
        put_u16(out + at, CH_INPUTS_UNKNOWN);
        out[at + 2] = (unsigned char)keep;
        if (keep > 0)
            memcpy(out + at + 3, v->str, keep);
        at += 3 + keep;
    }
    *len = at;
    return CH_OK;
}

/* One column as the walker read it. */
typedef struct entry {
    double num;       /* numbers; NaN when missing or categorical */
    int32_t code;     /* categories: index, CH_INPUTS_CODE_*; else -1 */
    const char *text; /* an unknown category's text inside the blob, else NULL */
    size_t text_len;
} entry;

/* Where the walker puts what it read; NULL fields are not written. */
typedef struct sink {
    double *num;
    int32_t *code;
    const char **text;
    size_t *text_len;
    ch_value *vals;
} sink;

static void put_entry(const ch_schema_col *c, size_t j, const entry *e, const sink *k)
{
    if (k->num != NULL)
        k->num[j] = e->num;
    if (k->code != NULL)
        k->code[j] = e->code;
    if (k->text != NULL) {
        k->text[j] = e->text;
        k->text_len[j] = e->text_len;
    }
    if (k->vals != NULL) {
        ch_value *v = &k->vals[j];
        memset(v, 0, sizeof *v);
        if (c->kind == CH_KIND_CATEGORICAL && e->code >= 0) {
            v->str = c->categories[e->code];
            v->len = c->category_lens[e->code];
        } else if (e->code == CH_INPUTS_CODE_UNKNOWN) {
            v->str = e->text;
            v->len = e->text_len;
        } else if (c->kind != CH_KIND_CATEGORICAL && !is_skipped(c->kind) && !isnan(e->num)) {
            v->num = e->num;
        } else {
            v->missing = 1;
        }
    }
}

static ch_err bad(ch_error *err, size_t at, const ch_schema_col *c, const char *what)
{
    return ch_error_set(err, CH_EFORMAT, "inputs: byte %zu, column '%s': %s", at, c->name, what);
}

/* Reads the categorical entry at 'p + *at' for column 'c' into 'e'. */
static ch_err read_category(const ch_schema_col *c, const unsigned char *p, size_t len, size_t *at,
                            entry *e, ch_error *err)
{
    unsigned code;
    size_t tl;
    if (len - *at < 2)
        return bad(err, *at, c, "the blob ends inside the category code");
    code = get_u16(p + *at);
    if (code == CH_INPUTS_MISSING) {
        e->code = CH_INPUTS_CODE_MISSING;
        *at += 2;
        return CH_OK;
    }
    if (code != CH_INPUTS_UNKNOWN) {
        if (code >= c->n_categories) {
            char what[96];
            snprintf(what, sizeof what, "category code %u is out of range (%zu categories)", code,
                     c->n_categories);
            return bad(err, *at, c, what);
        }
        e->code = (int32_t)code;
        *at += 2;
        return CH_OK;
    }
    if (len - *at < 3)
        return bad(err, *at, c, "the blob ends before the unknown category's length");
    tl = p[*at + 2];
    if (tl > CH_INPUTS_TEXT_MAX)
        return bad(err, *at, c, "the unknown category's text is longer than 64 bytes");
    if (len - *at - 3 < tl)
        return bad(err, *at, c, "the blob ends inside the unknown category's text");
    e->text = (const char *)p + *at + 3;
    e->text_len = tl;
    if (!ch_text_utf8_valid(e->text, tl))
        return bad(err, *at, c, "the unknown category's text is not UTF-8");
    e->code = CH_INPUTS_CODE_UNKNOWN;
    *at += 3 + tl;
    return CH_OK;
}

/* Checks blob 'p' against 's' and, when 'k' is not NULL, hands every
 * column to it. Returns CH_OK or CH_EFORMAT; reads nothing at or past
 * 'len'. */
static ch_err walk(const ch_schema *s, const unsigned char *p, size_t len, const sink *k,
                   ch_error *err)
{
    size_t n = ch_schema_n_cols(s);
    size_t at = 1;

    if (len == 0)
        return ch_error_set(err, CH_EFORMAT, "inputs: the blob is empty");
    if (p[0] != CH_INPUTS_FORMAT)
        return ch_error_set(err, CH_EFORMAT, "inputs: format %u, this build reads format %d",
                            (unsigned)p[0], CH_INPUTS_FORMAT);
    for (size_t j = 0; j < n; j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        entry e = {NAN, -1, NULL, 0};
        if (c->kind == CH_KIND_CATEGORICAL) {
            ch_err rc = read_category(c, p, len, &at, &e, err);
            if (rc != CH_OK)
                return rc;
        } else if (!is_skipped(c->kind)) {
            uint64_t bits;
            if (len - at < 8)
                return bad(err, at, c, "the blob ends inside the number");
            bits = get_u64(p + at);
            memcpy(&e.num, &bits, sizeof bits);
            if (isnan(e.num))
                e.num = NAN;
            at += 8;
        }
        if (k != NULL)
            put_entry(c, j, &e, k);
    }
    if (at != len)
        return ch_error_set(err, CH_EFORMAT,
                            "inputs: %zu bytes after the last column (a blob of another schema?)",
                            len - at);
    return CH_OK;
}

ch_err ch_inputs_decode(const ch_schema *s, const unsigned char *p, size_t len, double *num,
                        int32_t *code, const char **unknown_text, size_t *unknown_len,
                        ch_error *err)
{
    sink k = {num, code, unknown_text, unknown_len, NULL};
    ch_err rc;
    if (s == NULL || (p == NULL && len > 0) || num == NULL || code == NULL ||
        (unknown_text == NULL) != (unknown_len == NULL))
        return ch_error_set(err, CH_EINVAL, "inputs: a required argument is NULL");
    rc = walk(s, p, len, NULL, err);
    if (rc == CH_OK)
        rc = walk(s, p, len, &k, err);
    return rc;
}

ch_err ch_inputs_to_values(const ch_schema *s, const unsigned char *p, size_t len, ch_value *vals,
                           ch_error *err)
{
    sink k = {NULL, NULL, NULL, NULL, vals};
    ch_err rc;
    if (s == NULL || (p == NULL && len > 0) || vals == NULL)
        return ch_error_set(err, CH_EINVAL, "inputs: a required argument is NULL");
    rc = walk(s, p, len, NULL, err);
    if (rc == CH_OK)
        rc = walk(s, p, len, &k, err);
    return rc;
}
