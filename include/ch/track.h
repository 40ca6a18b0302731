/*
 * track.h -- recording a training run in the tracking store.
 *
 * What `churn train` and retraining (retrain.h) share, so that a run is
 * recorded the same way whoever trains:
 *   1. ch_track_begin(), before training, so that a failed training is
 *      recorded too: the dataset (by SHA-256) and a run in status
 *      "running" with the effective configuration and the lineage
 *      (dataset SHA-256, path and rows, config SHA-256, where the
 *      features came from, code version, test fraction);
 *   2. ch_track_save(), after training: bundle.json, report.md and
 *      result.json written into the run's directory (each atomically:
 *      a temporary file, synced, then renamed), the bundle and report
 *      recorded as artifacts with their SHA-256, and every metric of the
 *      result recorded;
 *   3. ch_registry_run_end(), then, to make a model version of it,
 *      ch_track_register(): the bundle registered with its test metrics
 *      and the key of its evaluation rows, which the promotion gate
 *      (promote.h) uses to rebuild the same held-out rows later.
 *
 * Nothing here prints. Each call writes to the store in its own
 * transaction (registry.h). Not thread-safe for the same 'reg'.
 */
#ifndef CH_TRACK_H
#define CH_TRACK_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/hash.h"
#include "ch/registry.h"
#include "ch/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a run is trained on and with. All borrowed. */
typedef struct ch_track_run {
    const char *dataset_sha256; /* the training file's SHA-256 (ch_ingest_report.sha256) */
    const char *dataset_path;   /* the training file; recorded as its absolute path when it
                                   resolves, else as given */
    uint64_t dataset_rows;      /* rows accepted from it */
    const char *config_json;    /* the effective configuration (ch_config_to_json), stored
                                   with the run; its SHA-256 goes into the lineage */
    const char *features;       /* where the feature declaration came from: "auto" or
                                   "config" */
    const char *code_version;   /* "0.1.0+<git revision>" */
    double test_fraction;       /* the held-out share the run uses */
    const char *extra_json;     /* NULL, or a JSON object whose members are appended to the
                                   lineage (for example {"retrain": {...}}) */
} ch_track_run;

/* What ch_track_save() wrote. */
typedef struct ch_track_saved {
    char bundle_path[4096];                    /* bundle.json, absolute when it resolves */
    char bundle_sha256[CH_SHA256_HEX_LEN + 1]; /* of the bundle's bytes */
    char family[32];                           /* the winning family */
    double seconds;                            /* the training's wall time, from the result */
} ch_track_saved;

/* Appends the lineage object of 'r' to 'b':
 *   {"dataset_sha256", "dataset_path", "dataset_rows", "config_sha256",
 *    "features", "code_version", "test_fraction", then the members of
 *    'extra_json'}.
 * "config_sha256" is null when 'config_json' is NULL. Errors: CH_EINVAL
 * (a NULL argument or field, 'extra_json' not an object), CH_ENOMEM,
 * CH_ELIMIT ('b' full). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_track_lineage(const ch_track_run *r, ch_buf *b, ch_error *err);

/* Records the dataset of 'r' (idempotent by hash) and starts a run in
 * status "running" with 'r->config_json' and the lineage above.
 * '*run_id' gets its id. 'lineage' (may be NULL) gets the lineage text
 * appended, for ch_train_run(), which copies it into the bundle. Errors:
 * those of ch_track_lineage() and of the store (registry.h). */
CH_API CH_NODISCARD ch_err ch_track_begin(ch_registry *reg, const ch_track_run *r, ch_buf *lineage,
                                          int64_t *run_id, ch_error *err);

/* Creates directory 'dir' (and its parents) and writes into it
 * bundle.json (the result's bundle), report.md and result.json; records
 * the bundle (by its absolute path) and the report (by 'dir'/report.md)
 * as artifacts of run 'run_id', and every metric of 'res'
 * (ch_train_result_metric). 'result_json' and 'report_md' replace the
 * result's own document and report when not NULL (a caller that adds to
 * them). '*out' is written on success. Errors: CH_EIO ("cannot create
 * DIR: ...", or "PATH: ..." for a file that cannot be written; files
 * already written stay), CH_ENOTFOUND (no such run), CH_EINVAL, the
 * store's errors, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_track_save(ch_registry *reg, int64_t run_id, const char *dir,
                                         const ch_train_result *res, const char *result_json,
                                         const char *report_md, ch_track_saved *out, ch_error *err);

/* Registers the bundle that ch_track_save() wrote for run 'run_id' as a
 * new model version (ch_registry_register(): alias challenger, and
 * champion when there is none), with the metrics {"test": the result's
 * test metrics, "eval_rows": {"dataset_sha256", "seed", "test_fraction"}}
 * that the promotion gate reads. The registration is one transaction of
 * the store: the version, its aliases and their audit rows all exist, or
 * none do. '*version' gets the number. Errors: those of
 * ch_registry_register(), CH_EINVAL, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_track_register(ch_registry *reg, int64_t run_id,
                                             const ch_track_saved *saved,
                                             const ch_train_result *res, const char *dataset_sha256,
                                             uint64_t seed, double test_fraction, const char *actor,
                                             const char *reason, int64_t *version, ch_error *err);

/* Writes 'len' bytes to 'path' atomically: into "PATH.tmp.<pid>",
 * flushed and synced, then renamed over 'path', so that a reader sees
 * the old file or the new one, never part of one. Errors: CH_EIO
 * ("PATH: <system error>"; the temporary file is removed). */
CH_API CH_NODISCARD ch_err ch_track_write_file(const char *path, const char *data, size_t len,
                                               ch_error *err);

/* Creates directory 'path' and any missing parents (mode 0777 before the
 * umask). Errors: CH_EIO ("cannot create PATH: <system error>"). */
CH_API CH_NODISCARD ch_err ch_track_mkdirs(const char *path, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_TRACK_H */
