/*
 * bundle.h -- a trained model in one self-describing, versioned file.
 *
 * A bundle is a JSON document holding everything needed to score a raw
 * customer record the way training did: the schema, the fitted feature
 * pipeline, the model (for gradient-boosted trees, the booster in
 * XGBoost's own JSON model format, loadable by Python xgboost as-is), the
 * calibrator, the thresholds, the evaluation metrics, a reference profile
 * of training features and scores (for drift checks), lineage (dataset
 * SHA-256, config hash, code version, seed, timestamps) and a checksum.
 *
 * The checksum is the SHA-256 of the file's bytes with the checksum's own
 * 64 hex digits replaced by zeros; it is the last member of the top-level
 * object. Loading rejects an unknown major version, a checksum mismatch,
 * or a schema that differs from the one the caller expects, each with a
 * clear error. A loaded bundle is immutable and may be shared by threads.
 */
#ifndef CH_BUNDLE_H
#define CH_BUNDLE_H

#include <stddef.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/features.h"
#include "ch/json.h"
#include "ch/metrics.h"
#include "ch/model.h"
#include "ch/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CH_BUNDLE_FORMAT "churn-bundle"
#define CH_BUNDLE_MAJOR  1
#define CH_BUNDLE_MINOR  0

typedef struct ch_bundle ch_bundle;

/* The parts a trainer hands over to be written. All borrowed. The JSON
 * strings ('metrics_json', 'profile_json', 'lineage_json', 'extra_json')
 * must each be one JSON object. */
typedef struct ch_bundle_parts {
    const ch_schema *schema;
    const ch_pipeline *pipeline;
    const ch_model *model;
    const ch_calibrator *calibrator;
    double threshold;           /* the served threshold */
    const char *threshold_rule; /* "f1" or "value" */
    double threshold_f1;        /* F1-optimal threshold */
    double threshold_value;     /* value-based threshold */
    const char *metrics_json;   /* held-out and CV metrics */
    const char *profile_json;   /* reference profile */
    const char *lineage_json;   /* dataset hash, config hash, code version, seed, times */
    const char *value_json;     /* retention economics used for the value threshold */
} ch_bundle_parts;

/* Writes a bundle document (with its checksum) into 'b'. Returns the
 * buffer's status. */
CH_API ch_err ch_bundle_write(const ch_bundle_parts *parts, ch_buf *b);

/* Loads a bundle from 'len' bytes of text. When 'expect' is non-NULL the
 * bundle's schema must have the same hash. Errors: CH_EFORMAT (not a
 * bundle, malformed, unknown major version, checksum mismatch), CH_ESCHEMA
 * (schema differs from 'expect'), CH_EMODEL (model part does not load),
 * CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_bundle_parse(const char *text, size_t len, const ch_schema *expect,
                                           ch_bundle **out, ch_error *err);

/* Reads and parses the file at 'path' (messages start with the path). */
CH_API CH_NODISCARD ch_err ch_bundle_load(const char *path, const ch_schema *expect,
                                          ch_bundle **out, ch_error *err);

CH_API void ch_bundle_free(ch_bundle *b);

/* Borrowed parts of a loaded bundle. */
CH_API const ch_schema *ch_bundle_schema(const ch_bundle *b);
CH_API const ch_pipeline *ch_bundle_pipeline(const ch_bundle *b);
CH_API const ch_model *ch_bundle_model(const ch_bundle *b);
CH_API const ch_calibrator *ch_bundle_calibrator(const ch_bundle *b);
CH_API double ch_bundle_threshold(const ch_bundle *b);
/* Top-level members as parsed JSON ("metrics", "profile", "lineage",
 * "thresholds", "value"), or NULL. */
CH_API const ch_json *ch_bundle_section(const ch_bundle *b, const char *name);
/* SHA-256 of the file (the checksum). */
CH_API const char *ch_bundle_checksum(const ch_bundle *b);

/* Calibrated probabilities for the rows of a frame ingested with the
 * bundle's schema: pipeline, model margin, calibrator. 'rows' may be NULL
 * for all rows. 'margins' may be NULL. Errors: CH_EINVAL (frame does not
 * match), CH_ENOMEM, CH_EMODEL. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_bundle_score_frame(const ch_bundle *b, const ch_frame *f,
                                                 const size_t *rows, size_t n_rows, double *prob,
                                                 double *margins, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_BUNDLE_H */
