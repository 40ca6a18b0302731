/*
 * buf.h -- a growable byte buffer with a hard size cap.
 *
 * Used to build strings, CSV and JSON. Errors are sticky: once an append
 * fails (out of memory or past 'max_len') the buffer frees its bytes,
 * records the error and ignores further appends, so a caller can build a
 * whole document and check once at the end with ch_buf_status().
 */
#ifndef CH_BUF_H
#define CH_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_buf {
    char *data;     /* bytes, always NUL-terminated when non-NULL; owned */
    size_t len;     /* bytes in use, not counting the NUL */
    size_t cap;     /* bytes allocated */
    size_t max_len; /* hard cap on 'len' */
    ch_err err;     /* CH_OK, or the first error (CH_ENOMEM, CH_ELIMIT) */
} ch_buf;

/* Prepares caller-owned 'b' as empty with the cap 'max_len'. Never fails. */
CH_API void ch_buf_init(ch_buf *b, size_t max_len);

/* Frees the bytes and empties 'b' (keeping its cap). Clears the error. */
CH_API void ch_buf_reset(ch_buf *b);

/* Empties 'b' but keeps its memory for reuse. Clears the error. */
CH_API void ch_buf_clear(ch_buf *b);

/* Appends bytes. All return the buffer's sticky status. */
CH_API ch_err ch_buf_append(ch_buf *b, const void *p, size_t n);
CH_API ch_err ch_buf_puts(ch_buf *b, const char *s);
CH_API ch_err ch_buf_putc(ch_buf *b, char c);
CH_API ch_err ch_buf_printf(ch_buf *b, const char *fmt, ...) CH_PRINTF(2, 3);

/* Makes room for 'n' more bytes and returns a pointer to them, or NULL on
 * failure. Commit what was written with ch_buf_commit(). */
CH_API char *ch_buf_reserve(ch_buf *b, size_t n);
CH_API void ch_buf_commit(ch_buf *b, size_t n);

/* Appends 's' ('len' bytes) as a JSON string literal with quotes and
 * escapes. Bytes >= 0x80 are copied as they are (the caller guarantees
 * UTF-8). */
CH_API ch_err ch_buf_json_str(ch_buf *b, const char *s, size_t len);

/* Appends a double as the shortest text that reads back to the same
 * value (%.17g when needed); NaN and infinities become null. */
CH_API ch_err ch_buf_json_num(ch_buf *b, double v);

/* Appends 's' as one CSV field, quoted only when it has to be (comma,
 * quote, CR or LF inside). */
CH_API ch_err ch_buf_csv_field(ch_buf *b, const char *s, size_t len);

/* The buffer's sticky status. */
CH_API ch_err ch_buf_status(const ch_buf *b);

/* Hands the bytes to the caller (free with ch_free) and empties 'b'.
 * Returns NULL if the buffer is in error. '*len' (may be NULL) gets the
 * length. */
CH_API char *ch_buf_take(ch_buf *b, size_t *len);

/* Formats 'v' into 'out' (at least 32 bytes) as the shortest round-trip
 * text, locale-independent. Returns the length. NaN gives "nan". */
CH_API size_t ch_fmt_double(char *out, double v);

#ifdef __cplusplus
}
#endif
#endif /* CH_BUF_H */
