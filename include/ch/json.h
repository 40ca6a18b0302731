/*
 * json.h -- read-only JSON documents, for configuration, schemas, fitted
 * pipelines and model bundles.
 *
 * A parsed document is a tree of borrowed nodes owned by its root. Values
 * are reached with ch_json_get()/ch_json_at() and read with typed
 * accessors. Writing JSON is done with ch_buf (buf.h), which keeps output
 * byte-for-byte under our control.
 *
 * The parser (an adapter over Jansson; src/lib/json.c is the only file
 * that includes jansson.h) reports errors as "line L, column C: what".
 * Duplicate keys in an object are rejected, because a config file where
 * the second value silently wins hides mistakes.
 */
#ifndef CH_JSON_H
#define CH_JSON_H

#include <stddef.h>

#include "ch/buf.h"
#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_json ch_json; /* opaque node */

typedef enum ch_json_type {
    CH_JSON_NULL = 0,
    CH_JSON_BOOL = 1,
    CH_JSON_NUMBER = 2,
    CH_JSON_STRING = 3,
    CH_JSON_ARRAY = 4,
    CH_JSON_OBJECT = 5
} ch_json_type;

/* Parses 'len' bytes of 'text' into a document. On success '*out' is the
 * root, which the caller frees with ch_json_free(). Errors: CH_EFORMAT
 * (syntax, duplicate key, with line and column), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_json_parse(const char *text, size_t len, ch_json **out,
                                         ch_error *err);

/* Reads and parses the file at 'path' (at most 'max_bytes'). Errors as
 * ch_json_parse(), plus CH_EIO and CH_ELIMIT; messages start with 'path'. */
CH_API CH_NODISCARD ch_err ch_json_load_file(const char *path, size_t max_bytes, ch_json **out,
                                             ch_error *err);

/* Frees a document returned by a parse call. NULL is a no-op. Nodes
 * reached from it become invalid. */
CH_API void ch_json_free(ch_json *root);

/* The type of 'v'. A NULL 'v' reads as CH_JSON_NULL. */
CH_API ch_json_type ch_json_typeof(const ch_json *v);

/* Name of a type, for messages ("object", "array", ...). */
CH_API const char *ch_json_type_name(ch_json_type t);

/* Member 'key' of object 'obj', or NULL when absent or 'obj' is not an
 * object. The result is borrowed from the document. */
CH_API const ch_json *ch_json_get(const ch_json *obj, const char *key);

/* Number of elements of an array or members of an object; 0 otherwise. */
CH_API size_t ch_json_len(const ch_json *v);

/* Element 'i' of an array, or NULL. */
CH_API const ch_json *ch_json_at(const ch_json *arr, size_t i);

/* Member 'i' of an object in document order: its key (borrowed) and value.
 * Returns NULL when out of range. */
CH_API const char *ch_json_member(const ch_json *obj, size_t i, const ch_json **val);

/* Accessors. ch_json_str() returns NULL unless 'v' is a string; its length
 * goes to '*len' when 'len' is non-NULL. ch_json_num() returns 0 and sets
 * '*out' unless 'v' is not a number (then -1). ch_json_bool() likewise. */
CH_API const char *ch_json_str(const ch_json *v, size_t *len);
CH_API int ch_json_num(const ch_json *v, double *out);
CH_API int ch_json_bool(const ch_json *v, int *out);

/* Appends 'v' as compact JSON text (keys in document order, reals with
 * 17 significant digits, so every double reads back exactly). Used to
 * hand an embedded document -- an XGBoost model inside a bundle -- to the
 * library that reads it. Returns the buffer's status (CH_ENOMEM,
 * CH_ELIMIT). */
CH_API ch_err ch_json_dump(const ch_json *v, ch_buf *b);

/* Whether a number node was written as an integer (no '.', 'e'). */
CH_API int ch_json_is_int(const ch_json *v);

#ifdef __cplusplus
}
#endif
#endif /* CH_JSON_H */
