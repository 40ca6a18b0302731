/*
 * err.c -- error text and the ch_error detail buffer.
 *
 * Messages are written once, where an error starts, and gain context on
 * the way up through ch_error_prefix(). Nothing here allocates.
 */
#include "ch/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ch_strerror(ch_err code)
{
    switch (code) {
    case CH_OK:
        return "ok";
    case CH_ENOMEM:
        return "out of memory";
    case CH_EINVAL:
        return "invalid argument";
    case CH_EIO:
        return "input/output error";
    case CH_EFORMAT:
        return "malformed input";
    case CH_ENOTFOUND:
        return "not found";
    case CH_EDB:
        return "tracking store error";
    case CH_EMODEL:
        return "model error";
    case CH_EBUSY:
        return "resource busy";
    case CH_ERANGE:
        return "value out of range";
    case CH_ELIMIT:
        return "limit exceeded";
    case CH_ESCHEMA:
        return "schema mismatch";
    case CH_EDATA:
        return "unusable data";
    case CH_EAUTH:
        return "authentication failed";
    case CH_EDENIED:
        return "permission denied";
    case CH_ECANCELLED:
        return "cancelled";
    }
    return "unknown error";
}

ch_err ch_error_vset(ch_error *err, ch_err code, const char *fmt, va_list ap)
{
    if (err != NULL) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

ch_err ch_error_set(ch_error *err, ch_err code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ch_error_vset(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void ch_error_prefix(ch_error *err, const char *fmt, ...)
{
    char head[sizeof err->msg];
    size_t hl;
    size_t ol;
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    hl = strlen(head);
    ol = strnlen(err->msg, sizeof err->msg - 1);
    if (ol > 0 && hl + 2 < sizeof err->msg) {
        /* Shift the old text right, cutting its end if needed. */
        size_t keep = ol;
        if (hl + 2 + keep > sizeof err->msg - 1)
            keep = sizeof err->msg - 1 - hl - 2;
        memmove(err->msg + hl + 2, err->msg, keep);
        err->msg[hl + 2 + keep] = '\0';
        memcpy(err->msg + hl, ": ", 2);
        memcpy(err->msg, head, hl);
    } else {
        memcpy(err->msg, head, hl + 1);
    }
}

void ch_error_clear(ch_error *err)
{
    if (err != NULL) {
        err->code = CH_OK;
        err->msg[0] = '\0';
    }
}

void ch_panic_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "churn: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
