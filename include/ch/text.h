/*
 * text.h -- locale-independent text helpers shared by the parsers.
 *
 * Number parsing here never depends on the process locale: the library
 * must read "29.85" the same way inside a server whose host locale uses a
 * decimal comma.
 */
#ifndef CH_TEXT_H
#define CH_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses all of 's' ('len' bytes, no surrounding space allowed) as a
 * decimal floating-point number ("-12", "3.5", "1e-3", ".5"). Returns 0
 * and sets '*out' on success; -1 if the text is not a finite number
 * (which includes "nan", "inf", hex floats, and empty text). Results are
 * correctly rounded. Thread-safe. */
CH_API int ch_parse_double(const char *s, size_t len, double *out);

/* Formats 'v' with printf's "%.*g" ('precision' digits) into 'out'
 * ('cap' bytes) in the "C" locale, whatever the process locale is.
 * Returns the length that snprintf() reports. Thread-safe. */
CH_API size_t ch_text_fmt_double(char *out, size_t cap, int precision, double v);

/* Parses all of 's' as a decimal integer with optional sign. Returns 0 on
 * success, -1 on bad text or overflow. */
CH_API int ch_parse_int64(const char *s, size_t len, int64_t *out);

/* ASCII case-insensitive equality of 'a' ('alen' bytes) and NUL-terminated
 * 'b'. */
CH_API int ch_text_ieq(const char *a, size_t alen, const char *b);

/* Whether 's' is valid UTF-8 (no overlongs, no surrogates). */
CH_API int ch_text_utf8_valid(const char *s, size_t len);

/* Copies 's' into 'out' (capacity 'cap' >= 4) for a message: control
 * characters and every byte >= 0x80 become '?' (so messages stay plain
 * ASCII whatever the input), and long text is cut with
 * "...". Returns 'out'. */
CH_API char *ch_text_excerpt(char *out, size_t cap, const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* CH_TEXT_H */
