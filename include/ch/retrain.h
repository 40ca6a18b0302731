/*
 * retrain.h -- retraining from feedback: the closed loop.
 *
 * When monitoring sees a model decay, the service retrains on the
 * configured training data plus the predictions whose true outcome came
 * back as feedback -- the input values logged with each prediction
 * (inputs.h) joined to the feedback's label -- and registers the result
 * as "challenger" only when it beats the champion on held-out rows.
 *
 * ch_retrain_run() does it in one call:
 *   1. the champion's bundle gives the schema; the base file (optional)
 *      is read with it;
 *   2. the labelled predictions logged since 'labels_since_ms' are read
 *      from the store and decoded with the schema of the version that
 *      served each one; predictions of a version with another schema (or
 *      served from a file, or of a version whose bundle does not load),
 *      and predictions without usable logged inputs, are skipped and
 *      counted;
 *   3. one dataset is written: every accepted row of the base file, then
 *      one row per labelled prediction (its id is the prediction id, its
 *      target the feedback's "churned"), as a CSV file read back through
 *      the schema like any training file, so there is one code path and
 *      the dataset has a SHA-256 for lineage;
 *   4. the dataset and a run are recorded (track.h), the training
 *      protocol runs (train.h) and the bundle, report and result are
 *      written into the run's directory;
 *   5. the gate: the candidate and the champion are scored on the
 *      candidate's held-out test rows; the candidate is registered
 *      (alias challenger; the champion is never moved) only when its
 *      ROC AUC beats the champion's by more than 'margin'. Otherwise the
 *      refusal is recorded in the run's summary and in an audit entry
 *      ("retrain-refused") and nothing is registered.
 *
 * Files: the dataset is stored once by content, at
 * <workdir>/retrain/data/<sha256>.csv (the path the run's lineage and
 * the datasets table record, which the promotion gate re-reads later),
 * and is linked into the run's directory <workdir>/retrain/<run id>/ as
 * data.csv (a hard link, or a relative symbolic link where hard links
 * are not possible) beside bundle.json, report.md and result.json.
 *
 * Expected workload: one call every few hours or days, taking as long as
 * a training run (seconds to minutes), on a job thread of its own.
 */
#ifndef CH_RETRAIN_H
#define CH_RETRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"
#include "ch/json.h"
#include "ch/registry.h"
#include "ch/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_retrain_opts {
    const char *base_csv;     /* the configured training file, or NULL for none */
    int64_t labels_since_ms;  /* feedback-labelled predictions logged at or after this, unix ms
                                 (0: all) */
    size_t min_labels;        /* refuse (CH_EDATA, message says how many there are) below this
                                 many usable labelled predictions (default 500) */
    const char *workdir;      /* where the combined CSV, bundle, report go:
                                 <workdir>/retrain/<run id>/ (default "var") */
    double margin;            /* the gate: candidate ROC AUC must beat the champion's by more
                                 than this (default 0.002) */
    ch_train_opts train;      /* families, folds, seeds, threads, progress, cancel ...
                                 (default ch_train_opts_default) */
    const ch_json *features;  /* the "features" section, or NULL (or the string "auto") for
                                 ch_pipeline_spec_auto */
    const char *actor;        /* for the registry's audit (default "churn") */
    const char *reason;       /* for the registry's audit; may be NULL */
    const char *config_json;  /* the effective config, recorded with the run; may be NULL */
    const char *code_version; /* recorded in the lineage (default "unknown") */
    double max_reject_rate;   /* share of rows of the base file, and of the combined file,
                                 that the schema may reject (default 0.01, as
                                 data.max_reject_rate) */
    void (*on_run)(void *ctx, int64_t run_id); /* called once the tracked run exists, before
                                                  training (NULL: none); ctx is
                                                  train.progress_ctx */
} ch_retrain_opts;

typedef struct ch_retrain_result {
    int64_t run_id;                     /* the tracked run (always recorded, even when the gate
                                           refuses) */
    int64_t version;                    /* registered version, 0 when the gate refused */
    int64_t champion;                   /* champion version at the time, 0 if none */
    size_t base_rows, label_rows;       /* rows from the file and from feedback */
    double candidate_auc, champion_auc; /* on the candidate's held-out test rows (NAN when
                                           not measured) */
    char bundle_path[4096];
    char note[256];        /* e.g. "refused: 0.8412 <= champion 0.8440 + margin 0.002" */
    size_t skipped_schema; /* labelled predictions skipped: served by a version of another
                              schema, by a version whose bundle does not load, or from a
                              bundle file (no version) */
    size_t skipped_inputs; /* labelled predictions skipped: no inputs logged, or inputs that
                              do not decode with their version's schema */
    size_t rejected_rows;  /* rows of the combined file the schema rejected (the dataset
                              holds base_rows + label_rows - rejected_rows) */
    char dataset_sha256[CH_SHA256_HEX_LEN + 1]; /* of the combined file */
    char dataset_path[4096];                    /* the combined file (content-addressed) */
    char run_dir[4096];                         /* <workdir>/retrain/<run id> */
} ch_retrain_result;

/* Fills 'o' with the defaults above. Never fails. Thread-safe. */
CH_API void ch_retrain_opts_default(ch_retrain_opts *o);

/* Retrains as described at the top of this header, with the store 'reg'
 * (borrowed; not used by anyone else during the call), options 'o'
 * (borrowed). Returns CH_OK both when the candidate was registered
 * (out->version > 0) and when the gate refused it (out->version == 0,
 * out->note says why); '*out' is written then, and also when a failure
 * comes after the run was recorded (out->run_id > 0, out->version 0), so
 * that the caller can name the failed run; otherwise '*out' is left
 * alone.
 *
 * Cancellation: o->train.cancel (train.h) is read before any work, by
 * the training between fits, and once more after training, before the
 * gate registers anything. A cancelled call marks its run failed with
 * summary {"reason": "cancelled"}, registers nothing and returns
 * CH_ECANCELLED.
 *
 * Errors: CH_EINVAL (bad options), CH_ENOTFOUND (no champion), CH_EMODEL
 * (a bundle does not load, or training failed: the run is marked failed
 * with the reason), CH_ESCHEMA (the base file does not fit the
 * champion's schema), CH_EIO, CH_EFORMAT, CH_ELIMIT (the base file or
 * the combined file), CH_EDATA (fewer than o->min_labels usable labelled
 * predictions -- nothing is recorded then -- or nothing to train on),
 * CH_ECANCELLED, the store's errors (CH_EDB, CH_EBUSY), CH_ENOMEM.
 * Not thread-safe for the same 'reg'; calls with separate handles may
 * run at once. */
CH_API CH_NODISCARD ch_err ch_retrain_run(ch_registry *reg, const ch_retrain_opts *o,
                                          ch_retrain_result *out, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_RETRAIN_H */
