/*
 * inputs.h -- one record's input values as a compact binary blob.
 *
 * The prediction log keeps, with every prediction, the values the model
 * was given, so that monitoring can measure drift over a window of served
 * predictions and retraining can join feedback labels to the features
 * that were really served. This module is the codec of those values: the
 * request path encodes the ch_value array it has already parsed for
 * scoring, and readers of the log decode it back.
 *
 * The format (docs/registry.md has the same with an example):
 *   byte 0      the format, CH_INPUTS_FORMAT (1)
 *   then one entry per schema column except the id and the target, in
 *   schema order:
 *     numeric, integer, binary: 8 bytes, the IEEE-754 double, little
 *                  endian; a NaN is a missing value
 *     categorical: 2 bytes, an unsigned little-endian code: the index of
 *                  the value in the schema's categories; 0xFFFF missing;
 *                  0xFFFE a category outside the schema's list (kept by
 *                  its policy), followed by 1 byte, its length L, and L
 *                  bytes of its UTF-8 text (at most CH_INPUTS_TEXT_MAX:
 *                  longer texts are cut at a character boundary)
 *   and nothing after the last column.
 * A blob has no header naming its schema: it is read with the schema of
 * the model that served the prediction (its model version's bundle). The
 * exact length check at the end catches most mismatches.
 *
 * Everything here is allocation-free and thread-safe; the schema is
 * borrowed for the call. Encoding runs on the request path: one pass over
 * the values, categories matched by length before bytes.
 */
#ifndef CH_INPUTS_H
#define CH_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"
#include "ch/features.h"
#include "ch/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CH_INPUTS_FORMAT   1      /* the first byte of every blob */
#define CH_INPUTS_MISSING  0xFFFF /* categorical code: missing */
#define CH_INPUTS_UNKNOWN  0xFFFE /* categorical code: a kept category outside the list */
#define CH_INPUTS_TEXT_MAX 64     /* bytes of an unknown category's text kept at most */

/* Decoded categorical codes besides the category indexes. */
#define CH_INPUTS_CODE_MISSING (-1)
#define CH_INPUTS_CODE_UNKNOWN (-2)

/* Encodes 'vals' (ch_schema_n_cols(s) entries in schema order, as
 * ch_record_parse() fills them; id and target entries are not read) into
 * 'out' ('cap' bytes). '*len' gets the blob's length on success. A
 * non-missing number that is NaN is written as missing. A categorical
 * value is looked up in the schema's categories; one that is not there
 * is written as unknown with its text (cut to CH_INPUTS_TEXT_MAX bytes at
 * a UTF-8 character boundary), whatever the column's policy. Errors:
 * CH_ELIMIT (the blob needs more than 'cap' bytes, or a category index
 * does not fit a code; the bytes written to 'out' must then not be used),
 * CH_EINVAL (a NULL argument, a category text that is not UTF-8). Never
 * allocates. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_inputs_encode(const ch_schema *s, const ch_value *vals,
                                            unsigned char *out, size_t cap, size_t *len,
                                            ch_error *err);

/* Decodes blob 'p' ('len' bytes) written for schema 's'. For every schema
 * column j (each array has ch_schema_n_cols(s) entries): numeric, integer
 * and binary columns set num[j] (NaN when missing) and code[j] = -1;
 * categorical columns set code[j] to the category index,
 * CH_INPUTS_CODE_MISSING (-1) or CH_INPUTS_CODE_UNKNOWN (-2), and num[j]
 * to NaN; the id and target columns get NaN and -1. For an unknown
 * category, unknown_text[j] points at its text inside 'p' (borrowed: valid
 * as long as 'p' is; not NUL-terminated) and unknown_len[j] is its length;
 * for every other column they are NULL and 0. 'unknown_text' and
 * 'unknown_len' may both be NULL when the texts are not wanted. The arrays
 * are written only on success. Errors: CH_EFORMAT (empty or truncated
 * blob, another format byte, a category code out of range, an unknown
 * text longer than CH_INPUTS_TEXT_MAX or not UTF-8, bytes after the last
 * column; the message says which column and byte), CH_EINVAL (a NULL
 * argument). Never reads past 'len'. Never allocates. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_inputs_decode(const ch_schema *s, const unsigned char *p, size_t len,
                                            double *num, int32_t *code, const char **unknown_text,
                                            size_t *unknown_len, ch_error *err);

/* Decodes blob 'p' like ch_inputs_decode() into a record the pipeline
 * and explainer read ('vals': ch_schema_n_cols(s) entries), for
 * re-scoring or retraining: numbers in 'num'; a categorical value's 'str'
 * and 'len' point at the schema's category text or, for an unknown
 * category, at its text inside 'p' (borrowed from the schema and from
 * 'p'); missing values, the id and the target have 'missing' set. 'vals'
 * is written only on success. Errors as for ch_inputs_decode(). Never
 * allocates. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_inputs_to_values(const ch_schema *s, const unsigned char *p,
                                               size_t len, ch_value *vals, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_INPUTS_H */
