/*
 * record.c -- one customer's raw fields from a JSON object (record.h).
 *
 * The checks mirror ingestion (ch_schema_parse_value) so that a record
 * scores the same whether it came from a CSV file or an HTTP request; the
 * difference is that JSON carries types, and a number sent as a string or
 * a category sent as a number is a client bug worth reporting rather than
 * guessing.
 */
#include "ch/record.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ch/text.h"

static ch_err field_error(ch_record_info *info, ch_error *err, ch_err code, const char *field,
                          const char *fmt, ...) CH_PRINTF(5, 6);
static ch_err field_error(ch_record_info *info, ch_error *err, ch_err code, const char *field,
                          const char *fmt, ...)
{
    va_list ap;
    snprintf(info->field, sizeof info->field, "%s", field);
    va_start(ap, fmt);
    ch_error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

/* A number for a numeric or integer column: range and wholeness. */
static ch_err read_number(const ch_schema_col *c, double v, ch_value *out, ch_record_info *info,
                          ch_error *err)
{
    char num[32];
    if (c->kind == CH_KIND_INTEGER && v != floor(v)) {
        snprintf(num, sizeof num, "%.17g", v);
        return field_error(info, err, CH_ERANGE, c->name, "field '%s': %s is not a whole number",
                           c->name, num);
    }
    if ((c->has_min && v < c->min) || (c->has_max && v > c->max)) {
        char range[80];
        snprintf(range, sizeof range, "%.17g is outside [%.17g, %.17g]", v,
                 c->has_min ? c->min : -INFINITY, c->has_max ? c->max : INFINITY);
        return field_error(info, err, CH_ERANGE, c->name, "field '%s': %s", c->name, range);
    }
    out->num = v;
    return CH_OK;
}

/* A JSON value as both readers see it: from a parsed document (Jansson)
 * or from the single-pass reader below. */
typedef struct jv {
    ch_json_type t;
    const char *str; /* strings: unescaped text */
    size_t len;
    double num; /* numbers */
    int b;      /* booleans */
    int is_int; /* numbers written without '.', 'e' */
} jv;

static ch_err read_field(const ch_schema_col *c, size_t j, const jv *v, ch_value *out,
                         ch_record_info *info, ch_error *err)
{
    double num = 0;
    int32_t cat = -1;
    ch_reason why = CH_REASON_NONE;
    ch_value_status st;

    switch (c->kind) {
    case CH_KIND_NUMERIC:
    case CH_KIND_INTEGER:
        if (v->t != CH_JSON_NUMBER)
            return field_error(info, err, CH_EINVAL, c->name, "field '%s' must be a number, not %s",
                               c->name, ch_json_type_name(v->t));
        return read_number(c, v->num, out, info, err);
    case CH_KIND_BINARY:
        if (v->t == CH_JSON_BOOL) {
            out->num = v->b ? 1 : 0;
            return CH_OK;
        }
        if (v->t == CH_JSON_NUMBER && (v->num == 0 || v->num == 1)) {
            out->num = v->num;
            return CH_OK;
        }
        if (v->t == CH_JSON_STRING) {
            st = ch_schema_parse_value(c, v->str, v->len, &num, &cat, &why);
            if (st == CH_VALUE_OK) {
                out->num = num;
                return CH_OK;
            }
            if (st == CH_VALUE_MISSING)
                return CH_ESCHEMA; /* handled by the caller as missing */
            return field_error(info, err, CH_ESCHEMA, c->name, "field '%s': %s", c->name,
                               "not one of the yes/no values the schema accepts");
        }
        return field_error(info, err, CH_EINVAL, c->name,
                           "field '%s' must be true/false, 0/1 or a yes/no text, not %s", c->name,
                           ch_json_type_name(v->t));
    case CH_KIND_CATEGORICAL:
        if (v->t != CH_JSON_STRING)
            return field_error(info, err, CH_EINVAL, c->name, "field '%s' must be a string, not %s",
                               c->name, ch_json_type_name(v->t));
        st = ch_schema_parse_value(c, v->str, v->len, &num, &cat, &why);
        if (st == CH_VALUE_MISSING)
            return CH_ESCHEMA;
        if (st == CH_VALUE_BAD)
            return field_error(info, err, CH_EINVAL, c->name, "field '%s': %s", c->name,
                               ch_reason_text(why));
        if (st == CH_VALUE_UNKNOWN) {
            if (c->on_unknown != CH_UNKNOWN_KEEP)
                return field_error(info, err, CH_ESCHEMA, c->name, "field '%s': %s", c->name,
                                   "not one of the schema's categories");
            if (info->n_warnings < CH_RECORD_MAX_WARNINGS)
                info->warning_col[info->n_warnings++] = (int)j;
        }
        out->str = v->str;
        out->len = v->len;
        return CH_OK;
    default:
        return CH_OK;
    }
}

/* The id column: a string or a whole number. */
static ch_err read_id(const ch_schema_col *c, const jv *v, ch_record_info *info, ch_error *err)
{
    if (v->t == CH_JSON_STRING) {
        info->id = v->str;
        info->id_len = v->len;
    } else if (v->t == CH_JSON_NUMBER && v->is_int && fabs(v->num) < 1e18) {
        snprintf(info->id_num, sizeof info->id_num, "%.0f", v->num);
        info->id = info->id_num;
        info->id_len = strlen(info->id_num);
    } else {
        return field_error(info, err, CH_EINVAL, c->name,
                           "field '%s' (the customer id) must be a string, not %s", c->name,
                           ch_json_type_name(v->t));
    }
    if (info->id_len == 0 || info->id_len > 256)
        return field_error(info, err, CH_EINVAL, c->name, "field '%s': %s", c->name,
                           "the customer id must have 1 to 256 bytes");
    return CH_OK;
}

/* Reads column 'j' from 'v' (NULL: the key was absent) into 'vals[j]'. */
static ch_err read_column(const ch_schema *s, size_t j, const jv *v, ch_value *vals,
                          ch_record_info *info, ch_error *err)
{
    const ch_schema_col *c = ch_schema_col_ref(s, j);
    ch_err rc;
    memset(&vals[j], 0, sizeof vals[j]);
    if (c->kind == CH_KIND_TARGET || c->kind == CH_KIND_ID) {
        vals[j].missing = 1;
        if (c->kind == CH_KIND_ID && v != NULL && v->t != CH_JSON_NULL)
            return read_id(c, v, info, err);
        return CH_OK;
    }
    if (v == NULL)
        return field_error(info, err, CH_ESCHEMA, c->name,
                           "field '%s' is missing (send null when the value is unknown)", c->name);
    rc = v->t == CH_JSON_NULL ? CH_ESCHEMA : read_field(c, j, v, &vals[j], info, err);
    if (rc == CH_ESCHEMA && info->field[0] == '\0') {
        /* Missing: allowed only where the schema says so. */
        if (!c->nullable)
            return field_error(info, err, CH_ESCHEMA, c->name, "field '%s' is %s", c->name,
                               "required and missing");
        vals[j].missing = 1;
        return CH_OK;
    }
    return rc;
}

static void jv_from_json(const ch_json *v, jv *out)
{
    memset(out, 0, sizeof *out);
    out->t = ch_json_typeof(v);
    if (out->t == CH_JSON_STRING)
        out->str = ch_json_str(v, &out->len);
    else if (out->t == CH_JSON_NUMBER) {
        (void)ch_json_num(v, &out->num);
        out->is_int = ch_json_is_int(v);
    } else if (out->t == CH_JSON_BOOL)
        (void)ch_json_bool(v, &out->b);
}

ch_err ch_record_from_json(const ch_schema *s, const ch_json *obj, ch_value *vals,
                           ch_record_info *info, ch_error *err)
{
    size_t n = ch_schema_n_cols(s);
    memset(info, 0, sizeof *info);
    if (ch_json_typeof(obj) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EINVAL, "the body must be a JSON object of customer fields");
    if (!ch_schema_ignores_extra(s)) {
        for (size_t i = 0; i < ch_json_len(obj); i++) {
            const char *key = ch_json_member(obj, i, NULL);
            if (key != NULL && ch_schema_find(s, key) < 0) {
                snprintf(info->field, sizeof info->field, "%s", key);
                return ch_error_set(err, CH_EINVAL, "unknown field '%.64s'", key);
            }
        }
    }
    for (size_t j = 0; j < n; j++) {
        const ch_json *v = ch_json_get(obj, ch_schema_col_ref(s, j)->name);
        jv x;
        ch_err rc;
        if (v != NULL)
            jv_from_json(v, &x);
        rc = read_column(s, j, v != NULL ? &x : NULL, vals, info, err);
        if (rc != CH_OK)
            return rc;
    }
    return CH_OK;
}

/* ---- the single-pass reader -------------------------------------------------- */

/* Why a hand-written reader: the prediction service parses one small flat
 * object per request, and a general JSON parser spends most of its time
 * allocating a tree that is read once. This one makes no allocation: it
 * unescapes strings in place in the caller's buffer and hands out slices
 * of it. It accepts exactly RFC 8259 JSON (UTF-8 checked, no NaN or
 * Infinity, no trailing commas, nothing after the object); the fuzz target
 * checks that it agrees with the general parser on every input. */

typedef struct rd {
    char *p;
    char *end;
    char *start;
} rd;

static void ws(rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static ch_err syntax(rd *r, ch_error *err, const char *what)
{
    /* Line and column, as the general parser reports them. */
    size_t line = 1;
    size_t col = 1;
    for (const char *q = r->start; q < r->p && q < r->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return ch_error_set(err, CH_EFORMAT, "line %zu, column %zu: %s", line, col, what);
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at r->p (on its opening quote), unescaped in place; '*out'
 * points at it and '*len' is its length. The byte after it is free for a
 * NUL (at worst the closing quote). */
static ch_err read_string(rd *r, char **out, size_t *len, ch_error *err)
{
    char *o;
    char *begin;
    r->p++;
    begin = o = r->p;
    for (;;) {
        unsigned char c;
        if (r->p >= r->end)
            return syntax(r, err, "unterminated string");
        c = (unsigned char)*r->p;
        if (c == '"')
            break;
        if (c < 0x20)
            return syntax(r, err, "control character in a string");
        if (c != '\\') {
            *o++ = *r->p++;
            continue;
        }
        if (r->p + 1 >= r->end)
            return syntax(r, err, "unterminated string");
        r->p++;
        switch (*r->p) {
        case '"':
        case '\\':
        case '/':
            *o++ = *r->p++;
            break;
        case 'b':
            *o++ = '\b';
            r->p++;
            break;
        case 'f':
            *o++ = '\f';
            r->p++;
            break;
        case 'n':
            *o++ = '\n';
            r->p++;
            break;
        case 'r':
            *o++ = '\r';
            r->p++;
            break;
        case 't':
            *o++ = '\t';
            r->p++;
            break;
        case 'u': {
            unsigned cp;
            if (r->end - r->p < 5 || hex4(r->p + 1, &cp) != 0)
                return syntax(r, err, "invalid \\u escape");
            r->p += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
                    hex4(r->p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return syntax(r, err, "invalid \\u escape (unpaired surrogate)");
                r->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return syntax(r, err, "invalid \\u escape (unpaired surrogate)");
            } else if (cp == 0) {
                return syntax(r, err, "\\u0000 is not allowed in a string");
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            return syntax(r, err, "invalid escape in a string");
        }
    }
    *len = (size_t)(o - begin);
    if (!ch_text_utf8_valid(begin, *len))
        return syntax(r, err, "invalid UTF-8 in a string");
    r->p++; /* the closing quote */
    *out = begin;
    return CH_OK;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Whether integer text 'p' ('len' bytes: optional '-', digits without
 * leading zeros) fits in 64 signed bits: the general parser reads
 * integers as int64 and refuses larger ones, and so does this reader. */
static int int64_text(const char *p, size_t len)
{
    const char *lim = "9223372036854775807";
    if (len > 0 && *p == '-') {
        lim = "9223372036854775808";
        p++;
        len--;
    }
    if (len != 19)
        return len < 19;
    return memcmp(p, lim, 19) <= 0;
}

static ch_err read_value(rd *r, jv *v, ch_error *err)
{
    memset(v, 0, sizeof *v);
    if (r->p >= r->end)
        return syntax(r, err, "a value is missing");
    switch (*r->p) {
    case '"': {
        char *s;
        ch_err rc = read_string(r, &s, &v->len, err);
        v->t = CH_JSON_STRING;
        v->str = s;
        return rc;
    }
    case 't':
    case 'f':
    case 'n': {
        static const char *const words[] = {"true", "false", "null"};
        for (int i = 0; i < 3; i++) {
            size_t n = strlen(words[i]);
            if ((size_t)(r->end - r->p) >= n && memcmp(r->p, words[i], n) == 0) {
                r->p += n;
                v->t = i == 2 ? CH_JSON_NULL : CH_JSON_BOOL;
                v->b = i == 0;
                return CH_OK;
            }
        }
        return syntax(r, err, "invalid literal");
    }
    case '{':
        v->t = CH_JSON_OBJECT;
        return CH_OK; /* the caller reports the type; the rest is not read */
    case '[':
        v->t = CH_JSON_ARRAY;
        return CH_OK;
    default: {
        char *b = r->p;
        if (r->p < r->end && *r->p == '-')
            r->p++;
        if (r->p >= r->end || !is_digit(*r->p))
            return syntax(r, err, "invalid token");
        if (*r->p == '0')
            r->p++;
        else
            while (r->p < r->end && is_digit(*r->p))
                r->p++;
        v->is_int = 1;
        if (r->p < r->end && *r->p == '.') {
            v->is_int = 0;
            r->p++;
            if (r->p >= r->end || !is_digit(*r->p))
                return syntax(r, err, "invalid number");
            while (r->p < r->end && is_digit(*r->p))
                r->p++;
        }
        if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
            v->is_int = 0;
            r->p++;
            if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
                r->p++;
            if (r->p >= r->end || !is_digit(*r->p))
                return syntax(r, err, "invalid number");
            while (r->p < r->end && is_digit(*r->p))
                r->p++;
        }
        if (v->is_int && !int64_text(b, (size_t)(r->p - b)))
            return syntax(r, err, "too big integer");
        if (ch_parse_double(b, (size_t)(r->p - b), &v->num) != 0)
            return syntax(r, err, "number out of range");
        if (v->is_int && v->num == 0)
            v->num = 0; /* "-0" is the integer 0, as the general parser reads it */
        v->t = CH_JSON_NUMBER;
        return CH_OK;
    }
    }
}

#define MAX_COLS 512

ch_err ch_record_parse(const ch_schema *s, char *text, size_t len, ch_value *vals,
                       ch_record_info *info, ch_error *err)
{
    size_t n = ch_schema_n_cols(s);
    jv seen[MAX_COLS];
    unsigned char have[MAX_COLS];
    rd r = {text, text + len, text};
    size_t guess = 0;
    ch_err rc;

    memset(info, 0, sizeof *info);
    if (n > MAX_COLS)
        return ch_error_set(err, CH_EINVAL, "the schema has more than %d columns", MAX_COLS);
    memset(have, 0, n);
    ws(&r);
    if (r.p >= r.end || *r.p != '{') {
        if (r.p < r.end && (*r.p == '[' || *r.p == '"' || *r.p == '-' || is_digit(*r.p) ||
                            *r.p == 't' || *r.p == 'f' || *r.p == 'n'))
            return ch_error_set(err, CH_EINVAL,
                                "the body must be a JSON object of customer fields");
        return syntax(&r, err, r.p >= r.end ? "the body is empty" : "invalid token");
    }
    r.p++;
    ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
    } else {
        for (;;) {
            char *key;
            size_t klen;
            long j;
            jv v;
            ws(&r);
            if (r.p >= r.end || *r.p != '"')
                return syntax(&r, err, "a string key is expected");
            rc = read_string(&r, &key, &klen, err);
            if (rc != CH_OK)
                return rc;
            key[klen] = '\0'; /* over the closing quote, or earlier */
            ws(&r);
            if (r.p >= r.end || *r.p != ':')
                return syntax(&r, err, "':' is expected");
            r.p++;
            ws(&r);
            rc = read_value(&r, &v, err);
            if (rc != CH_OK)
                return rc;
            /* Clients mostly send fields in schema order: try the column
             * after the last one first. */
            if (strlen(key) != klen)
                j = -1;
            else if (guess < n && strcmp(ch_schema_col_ref(s, guess)->name, key) == 0)
                j = (long)guess;
            else
                j = ch_schema_find(s, key);
            if (j >= 0)
                guess = (size_t)j + 1;
            if (j < 0 && !ch_schema_ignores_extra(s)) {
                snprintf(info->field, sizeof info->field, "%s", key);
                return ch_error_set(err, CH_EINVAL, "unknown field '%.64s'", key);
            }
            if (v.t == CH_JSON_OBJECT || v.t == CH_JSON_ARRAY) {
                /* Never a customer field: report the field's type error
                 * where there is one, else refuse the nesting itself. */
                if (j >= 0) {
                    rc = read_column(s, (size_t)j, &v, vals, info, err);
                    if (rc != CH_OK)
                        return rc;
                }
                return syntax(&r, err, "nested values are not accepted");
            }
            if (j >= 0) {
                if (have[j])
                    return syntax(&r, err, "duplicate key");
                have[j] = 1;
                seen[j] = v;
            }
            ws(&r);
            if (r.p < r.end && *r.p == ',') {
                r.p++;
                continue;
            }
            if (r.p < r.end && *r.p == '}') {
                r.p++;
                break;
            }
            return syntax(&r, err, "',' or '}' is expected");
        }
    }
    ws(&r);
    if (r.p != r.end)
        return syntax(&r, err, "text after the object");
    for (size_t j = 0; j < n; j++) {
        rc = read_column(s, j, have[j] ? &seen[j] : NULL, vals, info, err);
        if (rc != CH_OK)
            return rc;
    }
    return CH_OK;
}
