/*
 * buf.c -- growable byte buffer with a cap and a sticky error.
 *
 * Growth doubles the allocation so appends are amortized O(1). The cap
 * protects servers and parsers from unbounded input: going past it is a
 * CH_ELIMIT error, never a silent truncation.
 */
#include "ch/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/text.h"

void ch_buf_init(ch_buf *b, size_t max_len)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max_len = max_len;
    b->err = CH_OK;
}

void ch_buf_reset(ch_buf *b)
{
    ch_free(b->data);
    ch_buf_init(b, b->max_len);
}

void ch_buf_clear(ch_buf *b)
{
    b->len = 0;
    b->err = CH_OK;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static void fail(ch_buf *b, ch_err e)
{
    ch_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = e;
}

char *ch_buf_reserve(ch_buf *b, size_t n)
{
    size_t need;
    size_t cap;
    char *p;

    if (b->err != CH_OK)
        return NULL;
    if (n > b->max_len || b->len > b->max_len - n) {
        fail(b, CH_ELIMIT);
        return NULL;
    }
    need = b->len + n + 1;
    if (need <= b->cap)
        return b->data + b->len;
    cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = ch_realloc(b->data, cap);
    if (p == NULL) {
        fail(b, CH_ENOMEM);
        return NULL;
    }
    b->data = p;
    b->cap = cap;
    return b->data + b->len;
}

void ch_buf_commit(ch_buf *b, size_t n)
{
    if (b->err != CH_OK)
        return;
    b->len += n;
    b->data[b->len] = '\0';
}

ch_err ch_buf_append(ch_buf *b, const void *p, size_t n)
{
    char *dst = ch_buf_reserve(b, n);
    if (dst == NULL)
        return b->err;
    if (n > 0)
        memcpy(dst, p, n);
    ch_buf_commit(b, n);
    return CH_OK;
}

ch_err ch_buf_puts(ch_buf *b, const char *s)
{
    return ch_buf_append(b, s, strlen(s));
}

ch_err ch_buf_putc(ch_buf *b, char c)
{
    return ch_buf_append(b, &c, 1);
}

ch_err ch_buf_printf(ch_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;

    if (b->err != CH_OK)
        return b->err;
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fail(b, CH_EINVAL);
        return b->err;
    }
    if ((size_t)n < sizeof small)
        return ch_buf_append(b, small, (size_t)n);
    {
        char *dst = ch_buf_reserve(b, (size_t)n);
        if (dst == NULL)
            return b->err;
        va_start(ap, fmt);
        vsnprintf(dst, (size_t)n + 1, fmt, ap);
        va_end(ap);
        ch_buf_commit(b, (size_t)n);
    }
    return CH_OK;
}

ch_err ch_buf_json_str(ch_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    size_t start = 0;

    ch_buf_putc(b, '"');
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ch_buf_append(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"':
            ch_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            ch_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            ch_buf_append(b, "\\n", 2);
            break;
        case '\r':
            ch_buf_append(b, "\\r", 2);
            break;
        case '\t':
            ch_buf_append(b, "\\t", 2);
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ch_buf_append(b, u, 6);
        }
        }
    }
    ch_buf_append(b, s + start, len - start);
    return ch_buf_putc(b, '"');
}

size_t ch_fmt_double(char *out, double v)
{
    double back;
    size_t n;
    if (isnan(v)) {
        memcpy(out, "nan", 4);
        return 3;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "inf" : "-inf", v > 0 ? 4 : 5);
        return v > 0 ? 3 : 4;
    }
    if (v == 0 && signbit(v)) {
        /* "-0" would read back as the integer 0. */
        memcpy(out, "-0.0", 5);
        return 4;
    }
    /* Integers print without a fraction; otherwise try 15 then 17 digits
     * and keep the shorter one that reads back exactly. All of it in the
     * "C" locale: a decimal comma must never reach a file. */
    if (v == floor(v) && fabs(v) < 1e15)
        return ch_text_fmt_double(out, 32, 17, v);
    n = ch_text_fmt_double(out, 32, 15, v);
    if (ch_parse_double(out, n, &back) != 0 || back != v)
        n = ch_text_fmt_double(out, 32, 17, v);
    return n;
}

ch_err ch_buf_json_num(ch_buf *b, double v)
{
    char tmp[32];
    size_t n;
    if (!isfinite(v))
        return ch_buf_append(b, "null", 4);
    n = ch_fmt_double(tmp, v);
    return ch_buf_append(b, tmp, n);
}

ch_err ch_buf_csv_field(ch_buf *b, const char *s, size_t len)
{
    size_t i;
    int quote = 0;
    for (i = 0; i < len; i++) {
        char c = s[i];
        if (c == ',' || c == '"' || c == '\r' || c == '\n') {
            quote = 1;
            break;
        }
    }
    if (!quote)
        return ch_buf_append(b, s, len);
    ch_buf_putc(b, '"');
    for (i = 0; i < len; i++) {
        if (s[i] == '"')
            ch_buf_putc(b, '"');
        ch_buf_putc(b, s[i]);
    }
    return ch_buf_putc(b, '"');
}

ch_err ch_buf_status(const ch_buf *b)
{
    return b->err;
}

char *ch_buf_take(ch_buf *b, size_t *len)
{
    char *p;
    if (b->err != CH_OK)
        return NULL;
    if (b->data == NULL) {
        if (ch_buf_reserve(b, 0) == NULL)
            return NULL;
        b->data[0] = '\0';
    }
    p = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
