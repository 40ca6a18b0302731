/*
 * features.h -- the feature pipeline: raw columns in, model features out.
 *
 * A pipeline is declared in the "features" section of the config (see
 * docs/features.md): engineered columns built from a few generic
 * transforms (ratio, difference, log1p, bucket, count_equal, equals), an
 * encoder per categorical column (one-hot with an explicit "other"
 * bucket, or ordinal; numeric columns pass through), median imputation
 * with missing-indicator columns,
 * and optional standardization (for the linear and neural models).
 *
 * ch_pipeline_fit() learns its parameters (category levels, medians,
 * means, deviations) from the training rows it is given and from nothing
 * else. The fitted pipeline serializes to JSON and loads back to produce
 * bit-identical features; it travels inside the model bundle so serving
 * can never disagree with training.
 *
 * Transform has two entry points over one code path: a whole frame
 * (batch), and one record (the server), which allocates nothing. A value
 * never seen in training is counted and goes to its column's "other"
 * bucket (one-hot), or is imputed with the median rank and flagged by the
 * indicator when the column has one (ordinal); nothing is silently
 * mapped to -1.
 *
 * Every output feature knows the input column(s) it came from, so that
 * explanations can be rolled up to the columns a person recognises.
 *
 * A fitted pipeline is immutable and may be used by many threads at once.
 */
#ifndef CH_FEATURES_H
#define CH_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/frame.h"
#include "ch/json.h"
#include "ch/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CH_PIPELINE_MAX_COLS 1024 /* inputs plus engineered columns */

typedef struct ch_pipeline_spec ch_pipeline_spec; /* parsed, unfitted declaration */
typedef struct ch_pipeline ch_pipeline;           /* fitted, immutable */

typedef enum ch_feature_kind {
    CH_FEAT_NUMERIC = 0,   /* a number (input or engineered), imputed, maybe standardized */
    CH_FEAT_INDICATOR = 1, /* 1 when the source value was missing */
    CH_FEAT_ONEHOT = 2,    /* 1 when the category is this level */
    CH_FEAT_OTHER = 3,     /* 1 when the category was unknown or missing */
    CH_FEAT_ORDINAL = 4    /* the category's rank in declared order */
} ch_feature_kind;

/* One raw value of a record, for ch_pipeline_transform_record(). */
typedef struct ch_value {
    double num;      /* numeric, integer, binary columns */
    const char *str; /* categorical columns: the category text (need not be NUL-terminated) */
    size_t len;      /* bytes of 'str' */
    int missing;     /* 1: the value is missing */
} ch_value;

/* Counts from a transform. */
typedef struct ch_transform_stats {
    uint64_t n_rows;    /* rows transformed */
    uint64_t n_unknown; /* categorical values sent to an "other" bucket as unseen */
    uint64_t n_missing; /* missing values imputed or sent to "other" */
} ch_transform_stats;

/* Parses the "features" object of a config against 'schema'. Checks that
 * every referenced column exists and suits its transform. Errors:
 * CH_EFORMAT naming the JSON path, CH_ELIMIT (more than
 * CH_PIPELINE_MAX_COLS columns), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_pipeline_spec_from_json(const ch_json *node, const ch_schema *schema,
                                                      ch_pipeline_spec **out, ch_error *err);
CH_API void ch_pipeline_spec_free(ch_pipeline_spec *spec);

/* The declaration that fits any schema, used when a config has no
 * "features" section (or says "auto"): no derived columns, one-hot with an
 * "other" bucket for every categorical column, median imputation with
 * missing indicators ("auto") for the others, no standardization (the
 * families that need it turn it on), and every column marked pii left
 * out. Errors: CH_ELIMIT (too many columns), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_pipeline_spec_auto(const ch_schema *schema, ch_pipeline_spec **out,
                                                 ch_error *err);

/* Writes the declaration of 'spec' as a "features" object that
 * ch_pipeline_spec_from_json() reads back to the same spec (every
 * encoder and exclusion spelt out). Returns the buffer's status. */
CH_API ch_err ch_pipeline_spec_to_json(const ch_pipeline_spec *spec, ch_buf *b);

/* A copy of 'spec' (free with ch_pipeline_spec_free). Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_pipeline_spec_clone(const ch_pipeline_spec *spec,
                                                  ch_pipeline_spec **out, ch_error *err);

/* Overrides the spec's standardization switch (models that need scaled
 * inputs turn it on). */
CH_API void ch_pipeline_spec_set_standardize(ch_pipeline_spec *spec, int on);

/* Fits a pipeline on rows 'rows[0..n_rows)' of 'frame' (a frame built by
 * ch_ingest_file() with 'schema'); other rows are never read. 'rows' may
 * be NULL to use every row. Errors: CH_EDATA (no rows), CH_EINVAL (frame
 * does not match the schema), CH_ESCHEMA (the spec was declared for
 * another schema), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_pipeline_fit(const ch_pipeline_spec *spec, const ch_schema *schema,
                                           const ch_frame *frame, const size_t *rows, size_t n_rows,
                                           ch_pipeline **out, ch_error *err);

/* NULL is a no-op. */
CH_API void ch_pipeline_free(ch_pipeline *p);

/* Output features. */
CH_API size_t ch_pipeline_n_features(const ch_pipeline *p);
CH_API const char *ch_pipeline_feature_name(const ch_pipeline *p, size_t k);
CH_API ch_feature_kind ch_pipeline_feature_kind(const ch_pipeline *p, size_t k);

/* Input columns (schema indices) feature 'k' came from; '*n' gets the
 * count. The array is borrowed from 'p'. */
CH_API const uint32_t *ch_pipeline_feature_sources(const ch_pipeline *p, size_t k, size_t *n);

/* Inputs a record must supply: one ch_value per schema column, in schema
 * order (id and target columns are ignored and may be left missing). */
CH_API size_t ch_pipeline_n_inputs(const ch_pipeline *p);

/* Transforms rows of a frame into a row-major matrix 'out' of n_rows x
 * ch_pipeline_n_features() doubles. 'rows' may be NULL for all rows.
 * 'stats' may be NULL. Errors: CH_EINVAL (frame/schema mismatch),
 * CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_pipeline_transform_frame(const ch_pipeline *p, const ch_frame *frame,
                                                       const size_t *rows, size_t n_rows,
                                                       double *out, ch_transform_stats *stats,
                                                       ch_error *err);

/* Transforms one record ('vals', one per schema column) into 'out'
 * (ch_pipeline_n_features() doubles). Allocates nothing; 'stats' (may be
 * NULL) is added to. Never fails. Thread-safe. */
CH_API void ch_pipeline_transform_record(const ch_pipeline *p, const ch_value *vals, double *out,
                                         ch_transform_stats *stats);

/* Writes the fitted pipeline as JSON. Returns the buffer's status. */
CH_API ch_err ch_pipeline_to_json(const ch_pipeline *p, ch_buf *b);

/* Loads a pipeline written by ch_pipeline_to_json(), for 'schema' (whose
 * hash must match the one recorded). Errors: CH_EFORMAT (with JSON path),
 * CH_ESCHEMA (schema mismatch), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_pipeline_from_json(const ch_json *node, const ch_schema *schema,
                                                 ch_pipeline **out, ch_error *err);

/* Hash of the schema the pipeline was fitted with. */
CH_API const char *ch_pipeline_schema_hash(const ch_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* CH_FEATURES_H */
