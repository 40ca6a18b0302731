/*
 * text.c -- locale-independent number parsing and small text helpers.
 *
 * ch_parse_double() is on the ingestion hot path (several numeric fields
 * per row, millions of rows). It validates the grammar itself, then takes
 * Clinger's exact fast path: when the decimal significand has at most 15
 * digits and the power of ten is at most 22, both are exact doubles and a
 * single multiply or divide is correctly rounded. Anything else goes to
 * strtod_l() in the "C" locale, which is correctly rounded too.
 */
#define _GNU_SOURCE
#include "ch/text.h"

#include "ch/alloc.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static int slow_parse(const char *s, size_t len, double *out)
{
    char tmp[128];
    char *end;
    char *heap = NULL;
    char *p = tmp;
    double v;

    if (len >= sizeof tmp) {
        heap = ch_malloc(len + 1); /* rare: very long numbers only */
        if (heap == NULL)
            return -1;
        p = heap;
    }
    memcpy(p, s, len);
    p[len] = '\0';
    pthread_once(&c_locale_once, make_c_locale);
    v = c_locale != (locale_t)0 ? strtod_l(p, &end, c_locale) : strtod(p, &end);
    ch_free(heap);
    if (end != p + len || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int ch_parse_double(const char *s, size_t len, double *out)
{
    const char *p = s;
    const char *end = s + len;
    uint64_t mant = 0;
    int n_digits = 0; /* significant digits kept in 'mant' */
    int dropped = 0;  /* digits beyond 19 (then we go the slow way) */
    int exp10 = 0;
    int neg = 0;
    int any = 0;

    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
        p++;
    }
    for (; p < end && (unsigned)(*p - '0') < 10; p++) {
        any = 1;
        if (mant == 0 && *p == '0')
            continue;
        if (n_digits < 19) {
            mant = mant * 10 + (uint64_t)(*p - '0');
            n_digits++;
        } else {
            dropped++;
        }
    }
    if (p < end && *p == '.') {
        p++;
        for (; p < end && (unsigned)(*p - '0') < 10; p++) {
            any = 1;
            if (mant == 0 && *p == '0') {
                exp10--;
                continue;
            }
            if (n_digits < 19) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                n_digits++;
                exp10--;
            } else {
                dropped++;
            }
        }
    }
    if (!any)
        return -1;
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        int e = 0;
        int edigits = 0;
        p++;
        if (p < end && (*p == '-' || *p == '+')) {
            eneg = *p == '-';
            p++;
        }
        for (; p < end && (unsigned)(*p - '0') < 10; p++, edigits++) {
            if (e < 100000)
                e = e * 10 + (*p - '0');
        }
        if (edigits == 0)
            return -1;
        exp10 += eneg ? -e : e;
    }
    if (p != end)
        return -1;
    if (dropped == 0 && n_digits <= 15 && exp10 >= -22 && exp10 <= 22) {
        double v = (double)mant;
        v = exp10 < 0 ? v / pow10_exact[-exp10] : v * pow10_exact[exp10];
        *out = neg ? -v : v;
        return 0;
    }
    if (mant == 0 && dropped == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    return slow_parse(s, len, out);
}

size_t ch_text_fmt_double(char *out, size_t cap, int precision, double v)
{
    locale_t old = (locale_t)0;
    int n;
    pthread_once(&c_locale_once, make_c_locale);
    /* uselocale() switches only this thread, so formatting stays "C"
     * whatever the process locale is, without touching other threads. */
    if (c_locale != (locale_t)0)
        old = uselocale(c_locale);
    n = snprintf(out, cap, "%.*g", precision, v);
    if (old != (locale_t)0)
        uselocale(old);
    return n < 0 ? 0 : (size_t)n;
}

int ch_parse_int64(const char *s, size_t len, int64_t *out)
{
    const char *p = s;
    const char *end = s + len;
    uint64_t v = 0;
    int neg = 0;

    if (p < end && (*p == '-' || *p == '+')) {
        neg = *p == '-';
        p++;
    }
    if (p == end)
        return -1;
    for (; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (d >= 10)
            return -1;
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return -1;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)v;
    }
    return 0;
}

int ch_text_ieq(const char *a, size_t alen, const char *b)
{
    size_t i;
    for (i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i];
        unsigned char y = (unsigned char)b[i];
        if (y == '\0')
            return 0;
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return b[alen] == '\0';
}

int ch_text_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

char *ch_text_excerpt(char *out, size_t cap, const char *s, size_t len)
{
    size_t i;
    size_t n = len;
    int cut = 0;
    if (n > cap - 1) {
        n = cap - 4;
        cut = 1;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7F || c >= 0x80) ? '?' : (char)c;
    }
    if (cut) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}
