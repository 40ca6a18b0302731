/*
 * record.h -- one customer's raw fields from a JSON object.
 *
 * The prediction service receives customers as JSON objects keyed by the
 * schema's column names. This module turns one object into the ch_value
 * array the pipeline and explainer read, with the checks a CSV row gets
 * at ingestion: kinds, categories, ranges, required fields. Every problem
 * is reported with the field it concerns, so that an HTTP client is told
 * exactly what to fix.
 *
 * Typing is strict where JSON allows it: numeric and integer columns take
 * JSON numbers; binary columns take true/false, 0/1 or the schema's
 * yes/no texts; categorical columns take strings; the id column a string
 * or a whole number. null is a missing value (refused where the schema
 * does not allow one); an absent key is an error, so that a misspelt or
 * forgotten field is not silently imputed. The id column may be absent.
 * The target column, if present, is ignored (clients often send whole
 * rows).
 */
#ifndef CH_RECORD_H
#define CH_RECORD_H

#include <stddef.h>

#include "ch/features.h"
#include "ch/json.h"
#include "ch/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CH_RECORD_MAX_WARNINGS 8

/* What reading a record found besides its values. */
typedef struct ch_record_info {
    const char *id;    /* the customer id text (borrowed from the JSON), or NULL */
    size_t id_len;     /* bytes */
    char id_num[24];   /* storage when the id was given as a number */
    size_t n_warnings; /* unknown categories kept by the schema's policy */
    int warning_col[CH_RECORD_MAX_WARNINGS]; /* their schema columns */
    char field[64];                          /* on error: the field at fault ("" when none) */
} ch_record_info;

/* Reads JSON object 'obj' into 'vals' (ch_schema_n_cols(s) entries,
 * written in schema order). Category strings in 'vals' are borrowed from
 * 'obj'. On error, 'info->field' names the field. Errors: CH_EINVAL (not
 * an object, a wrong JSON type, an unknown field when the schema does not
 * ignore extras), CH_ESCHEMA (a field absent, null where the schema allows no missing value, a
 * category the schema rejects, a binary text outside its mapping), CH_ERANGE (outside the column's
 * range, a fractional integer). Allocation-free. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_record_from_json(const ch_schema *s, const ch_json *obj,
                                               ch_value *vals, ch_record_info *info, ch_error *err);

/* The same as parsing 'text' ('len' bytes) with ch_json_parse() and
 * calling ch_record_from_json(), without building a document: the
 * service's per-request path. Strings are unescaped in place, so 'text'
 * is modified, and category strings in 'vals' point into it. Duplicate
 * keys and nested values are errors. Besides the errors above: CH_EFORMAT
 * (not JSON; the message gives line and column). At most 512 schema
 * columns. Allocation-free. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_record_parse(const ch_schema *s, char *text, size_t len,
                                           ch_value *vals, ch_record_info *info, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_RECORD_H */
