/*
 * schema.h -- what a customer CSV must look like.
 *
 * A schema lists the columns of a dataset: name, kind, allowed categories,
 * valid range, the tokens that mean "missing", the target's label mapping,
 * a PII flag, a human-readable label (used for plain-language reasons) and
 * whether the column is actionable (with the alternative values a
 * retention offer could move it to). It is loaded from JSON (see
 * docs/schema.md for the format) and is immutable once loaded, so one
 * schema can be shared by any number of threads.
 *
 * ch_schema_parse_value() is the one place raw text becomes a typed value;
 * CSV ingestion and the server's record path both call it, so the two can
 * never disagree about what a field means.
 */
#ifndef CH_SCHEMA_H
#define CH_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/hash.h"
#include "ch/json.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_schema ch_schema; /* opaque, immutable after load */

typedef enum ch_kind {
    CH_KIND_ID = 0,          /* identifier: kept as text, never a feature */
    CH_KIND_NUMERIC = 1,     /* real number */
    CH_KIND_INTEGER = 2,     /* whole number */
    CH_KIND_CATEGORICAL = 3, /* one of a set of text values */
    CH_KIND_BINARY = 4,      /* yes/no, true/false, 1/0: read as 1 or 0 */
    CH_KIND_TARGET = 5       /* the label to predict, read like binary */
} ch_kind;

typedef enum ch_unknown_policy {
    CH_UNKNOWN_REJECT = 0, /* a value outside 'categories' rejects the row */
    CH_UNKNOWN_KEEP = 1    /* it is kept (and counted); models see it as "other" */
} ch_unknown_policy;

/* One column's description. Read-only; borrowed from the schema. */
typedef struct ch_schema_col {
    const char *name;              /* column name as in the CSV header */
    ch_kind kind;                  /* see ch_kind */
    const char *label;             /* human-readable name, e.g. "contract type" */
    int pii;                       /* 1: personal data, for consumers that log or export */
    int nullable;                  /* 1: a missing value is allowed (not for id/target) */
    const char *const *categories; /* allowed values (categorical), in declared order */
    size_t n_categories;
    ch_unknown_policy on_unknown; /* categorical: what to do with other values */
    int has_min, has_max;         /* whether 'min'/'max' apply */
    double min, max;              /* valid range, inclusive (numeric, integer) */
    const char *const *missing;   /* tokens meaning missing, compared exactly */
    size_t n_missing;
    const char *const *positive; /* binary/target: text read as 1 (case-insensitive) */
    size_t n_positive;
    const char *const *negative; /* binary/target: text read as 0 (case-insensitive) */
    size_t n_negative;
    int actionable;                  /* 1: a retention action may change this column */
    const char *const *alternatives; /* values an action may set (actionable columns) */
    size_t n_alternatives;
    /* Byte lengths of 'categories', 'missing', 'positive' and 'negative',
     * parallel to them (so field matching compares lengths first). */
    const size_t *category_lens;
    const size_t *missing_lens;
    const size_t *positive_lens;
    const size_t *negative_lens;
} ch_schema_col;

/* Result of reading one field. */
typedef enum ch_value_status {
    CH_VALUE_OK = 0,      /* 'num' (or 'cat') holds the value */
    CH_VALUE_MISSING = 1, /* a missing token (allowed or not: see nullable) */
    CH_VALUE_UNKNOWN = 2, /* categorical value outside the categories */
    CH_VALUE_BAD = 3      /* text that cannot be this kind of value; see 'reason' */
} ch_value_status;

/* Why a field was rejected; stable numbers, used as reject reasons. */
typedef enum ch_reason {
    CH_REASON_NONE = 0,
    CH_REASON_FIELD_COUNT = 1,    /* wrong number of fields in the row */
    CH_REASON_MALFORMED = 2,      /* malformed CSV (stray quote, ...) */
    CH_REASON_NOT_NUMBER = 3,     /* text in a numeric column */
    CH_REASON_NOT_INTEGER = 4,    /* a non-whole number in an integer column */
    CH_REASON_OUT_OF_RANGE = 5,   /* outside the column's range */
    CH_REASON_UNKNOWN_CAT = 6,    /* category not in the schema */
    CH_REASON_BAD_BOOL = 7,       /* binary value not in the yes/no mapping */
    CH_REASON_MISSING = 8,        /* missing value in a non-nullable column */
    CH_REASON_MISSING_TARGET = 9, /* missing target */
    CH_REASON_BAD_TARGET = 10,    /* target not in the label mapping */
    CH_REASON_BAD_UTF8 = 11,      /* text that is not valid UTF-8 */
    CH_REASON_DUPLICATE_ID = 12,  /* id seen on an earlier row */
    CH_REASON_COUNT_ = 13
} ch_reason;

/* Short stable name ("not_number", ...) and a sentence for a reason. */
CH_API const char *ch_reason_name(ch_reason r);
CH_API const char *ch_reason_text(ch_reason r);

/* Kind <-> name ("id", "numeric", "integer", "categorical", "binary",
 * "target"). ch_kind_parse returns -1 for an unknown name. */
CH_API const char *ch_kind_name(ch_kind k);
CH_API int ch_kind_parse(const char *name, ch_kind *out);

/* Builds a schema from a parsed JSON document. Errors: CH_EFORMAT with the
 * JSON path of the problem ("columns[3] (tenure): range: ..."), CH_ENOMEM.
 * Thread-safe. */
CH_API CH_NODISCARD ch_err ch_schema_from_json(const ch_json *root, ch_schema **out, ch_error *err);

/* Loads a schema file. Errors as above plus CH_EIO; messages name 'path'. */
CH_API CH_NODISCARD ch_err ch_schema_load_file(const char *path, ch_schema **out, ch_error *err);

/* Writes the schema as JSON that ch_schema_from_json() reads back to an
 * equal schema. Returns the buffer's status. */
CH_API ch_err ch_schema_to_json(const ch_schema *s, ch_buf *b);

/* NULL is a no-op. */
CH_API void ch_schema_free(ch_schema *s);

CH_API size_t ch_schema_n_cols(const ch_schema *s);
CH_API const ch_schema_col *ch_schema_col_ref(const ch_schema *s, size_t j);
CH_API const char *ch_schema_name(const ch_schema *s);

/* Index of the column called 'name', or -1. */
CH_API long ch_schema_find(const ch_schema *s, const char *name);

/* Index of the target column / the id column, or -1 if there is none. */
CH_API long ch_schema_target(const ch_schema *s);
CH_API long ch_schema_id(const ch_schema *s);

/* Whether extra columns in a file (not in the schema) are ignored (1) or
 * an error (0, the default). */
CH_API int ch_schema_ignores_extra(const ch_schema *s);

/* SHA-256 of the schema's canonical JSON, for lineage and for checking
 * that a model matches its data. */
CH_API const char *ch_schema_hash(const ch_schema *s);

/* Reads field text 'p' ('len' bytes) as a value of column 'c'.
 *   numeric/integer/binary/target: '*num' gets the number (1/0 for
 *     binary and target);
 *   categorical: '*cat' gets the category's index in c->categories, or
 *     -1 with CH_VALUE_UNKNOWN;
 *   id: CH_VALUE_OK unless missing or invalid UTF-8.
 * For numeric, integer, binary and target columns, spaces and tabs around
 * the value are ignored, and text that is blank after that counts as
 * missing; categorical and id text is compared exactly. On CH_VALUE_BAD '*reason' says why.
 * Does not allocate. Thread-safe. */
CH_API ch_value_status ch_schema_parse_value(const ch_schema_col *c, const char *p, size_t len,
                                             double *num, int32_t *cat, ch_reason *reason);

/* Options for ch_schema_infer(). */
typedef struct ch_schema_infer_opts {
    const char *target;    /* target column name, or NULL to guess by name */
    const char *positive;  /* the target value that means churned, or NULL to read yes/no
                              tokens (or guess from two values by their wording) */
    const char *name;      /* the schema's name (default "inferred") */
    size_t max_categories; /* a text column with more distinct values keeps this many, the most
                              frequent, as categories and reads the rest as "other" (default
                              100, at least 2) */
    uint64_t max_rows;     /* rows to read, 0 for all (default 0) */
    ch_buf *notes;         /* when not NULL, one line "column: what was chosen and why" is
                              appended for every choice a person should review (the id, a
                              left-out column, few-valued numbers, top-N categories, PII) */
} ch_schema_infer_opts;

CH_API void ch_schema_infer_opts_default(ch_schema_infer_opts *o);

/* Reads the CSV at 'path' and guesses a starter schema: kinds, categories,
 * ranges (widened to round numbers), missing tokens, the target (by name
 * when not given: churn, target, label, exited, attrition, ...) with its
 * label mapping, and the id: a column is the id only when its values are
 * unique on every row read (texts before whole numbers, then an id-like
 * name, break ties); other such columns are left out of the schema, which
 * then ignores extra columns. The rules are in docs/schema.md. Errors:
 * CH_EIO, CH_EFORMAT (unreadable CSV, an empty or duplicate header name),
 * CH_EDATA (empty file; a target without two usable values),
 * CH_ENOTFOUND (no target found or the given one absent), CH_EINVAL
 * (max_categories below 2), CH_ENOMEM. Memory grows with the distinct
 * values of identifier-like columns (about 24 bytes each). */
CH_API CH_NODISCARD ch_err ch_schema_infer(const char *path, const ch_schema_infer_opts *o,
                                           ch_schema **out, ch_error *err);

/* The column that most likely holds each customer's monthly revenue, by
 * name (MonthlyCharges, monthly_revenue, monthly_fee, ARPU, MRR, ...;
 * numeric or integer columns only), or -1 when none does. Used by
 * starter configurations for value-based thresholds. */
CH_API long ch_schema_guess_revenue(const ch_schema *s);

#ifdef __cplusplus
}
#endif
#endif /* CH_SCHEMA_H */
