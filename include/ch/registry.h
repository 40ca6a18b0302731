/*
 * registry.h -- experiment tracking and the model registry.
 *
 * One store keeps: datasets (by SHA-256), training runs (config, lineage,
 * per-fold and final metrics, status, duration), artifacts (bundle and
 * report files with their hashes), registered model versions, the aliases
 * "champion" and "challenger", and an append-only audit log of every
 * registration and alias move (who, when, from -> to, reason, details).
 *
 * The store is reached only through this header. The SQLite back end
 * (src/lib/registry_sqlite.c, the only file that includes sqlite3.h) is
 * chosen for a plain path or "sqlite:PATH"; another back end (PostgreSQL
 * for many servers) can be added behind the same calls.
 *
 * Every change is one transaction: a process killed in the middle of a
 * promotion leaves either the old state or the new one, with its audit
 * row or without it, never half. Concurrent writers wait for each other
 * (up to 'busy_timeout_ms') rather than fail.
 *
 * Read calls return JSON text (documented per call) so that callers never
 * see back-end types. A handle is not thread-safe; open one per thread.
 *
 * Conventions for every call below: a NULL 'err' is allowed; out-
 * parameters are written only on success; hashes are 64 hex digits
 * (stored in lower case); JSON arguments may be NULL (stored as null) and
 * otherwise must be JSON objects (CH_EINVAL, or CH_EFORMAT when they do
 * not parse), because read calls embed them verbatim; 'actor' is required
 * and 'reason' may be NULL. Timestamps are UTC, "2024-05-01T12:34:56.789Z".
 * A write to a store opened read-only fails with CH_EDB. Any call may also
 * return CH_ENOMEM, CH_EDB (the store failed; the message has SQLite's
 * text) or CH_EBUSY (another writer held the store past the timeout).
 */
#ifndef CH_REGISTRY_H
#define CH_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_registry ch_registry;

typedef struct ch_registry_opts {
    int busy_timeout_ms; /* wait this long for another writer (default 10000) */
    int read_only;       /* 1: open without creating or writing (default 0) */
    int test_pause_ms;   /* tests only: sleep this long inside each write transaction,
                            after its first statement that changes the store (default 0) */
} ch_registry_opts;

CH_API void ch_registry_opts_default(ch_registry_opts *o);

/* Opens (creating when absent and not read-only) the store at 'url': a
 * path, "sqlite:PATH" or "sqlite:///ABSOLUTE/PATH". A name with a colon but
 * no "//" ("./a:b.db") is a path. Brings an older layout up to date. 'o'
 * may be NULL for the defaults. Close with ch_registry_close(). Errors:
 * CH_EDB (cannot open, corrupt, not a registry, newer layout than this
 * build knows, or a read-write open of a file that cannot be written),
 * CH_EINVAL (another "scheme://", named in the message), CH_ENOMEM.
 * Thread-safe (each call makes its own handle). */
CH_API CH_NODISCARD ch_err ch_registry_open(const char *url, const ch_registry_opts *o,
                                            ch_registry **out, ch_error *err);
CH_API void ch_registry_close(ch_registry *r); /* NULL is a no-op */

/* Records a dataset by content hash (idempotent: a known hash keeps its
 * first path and time). CH_ERANGE if 'n_rows' exceeds INT64_MAX. */
CH_API CH_NODISCARD ch_err ch_registry_add_dataset(ch_registry *r, const char *sha256,
                                                   const char *path, uint64_t n_rows,
                                                   ch_error *err);

/* Starts a run in status "running". 'config_json' is the effective
 * configuration, 'lineage_json' an object (dataset sha256, config hash,
 * code version, seed, ...). '*run_id' gets the new id. 'dataset_sha256'
 * may be NULL; otherwise the dataset must have been added (CH_ENOTFOUND). */
CH_API CH_NODISCARD ch_err ch_registry_run_begin(ch_registry *r, const char *dataset_sha256,
                                                 const char *config_json, const char *lineage_json,
                                                 int64_t *run_id, ch_error *err);

/* Adds metric 'name' = 'value' under 'scope' (for example "cv/xgboost/2/fold3",
 * "cv/xgboost/2/mean", "test"). Recording the same scope and name again
 * replaces the value. NaN is stored as null. CH_ENOTFOUND: no such run. */
CH_API CH_NODISCARD ch_err ch_registry_run_metric(ch_registry *r, int64_t run_id, const char *scope,
                                                  const char *name, double value, ch_error *err);

/* Ends a run: 'status' "ok" or "failed", 'summary_json' an object
 * (winner, thresholds, ...), wall 'seconds' (>= 0). A run ends once:
 * CH_EINVAL if it has already ended, CH_ENOTFOUND if there is no such run. */
CH_API CH_NODISCARD ch_err ch_registry_run_end(ch_registry *r, int64_t run_id, const char *status,
                                               const char *summary_json, double seconds,
                                               ch_error *err);

/* Records a file produced by a run ('kind': "bundle", "report").
 * CH_ENOTFOUND: no such run. */
CH_API CH_NODISCARD ch_err ch_registry_add_artifact(ch_registry *r, int64_t run_id,
                                                    const char *kind, const char *path,
                                                    const char *sha256, ch_error *err);

/* Registers the bundle of run 'run_id' as a new model version and points
 * the "challenger" alias at it, auditing both. 'metrics_json' is an
 * object stored with the version (test metrics, evaluation rows key).
 * When no champion exists yet, the new version also becomes champion
 * (audited as such). '*version' gets the version number (1, 2, ...):
 * numbers are allocated under the store's write lock, so concurrent
 * writers get distinct numbers without gaps. Audit rows: "register"
 * (to = version, details: run_id, family, bundle_sha256), then "alias"
 * for challenger (from = the old challenger), then, on a store without a
 * champion, "alias" for champion. CH_ENOTFOUND: no such run. */
CH_API CH_NODISCARD ch_err ch_registry_register(ch_registry *r, int64_t run_id,
                                                const char *bundle_path, const char *bundle_sha256,
                                                const char *family, const char *metrics_json,
                                                const char *actor, const char *reason,
                                                int64_t *version, ch_error *err);

/* The decision of a promotion gate, computed by the caller on the same
 * evaluation rows for both versions, recorded in the audit row. */
typedef struct ch_promotion {
    int64_t version;        /* to promote */
    double candidate_score; /* e.g. ROC AUC of 'version' on the evaluation rows */
    double champion_score;  /* same metric of the current champion on the same rows (NAN if none) */
    double margin;          /* required improvement */
    int force;              /* 1: promote even if the gate fails (recorded) */
    const char *eval_key;   /* what the rows were (dataset sha + split), for the audit */
} ch_promotion;

/* Moves "champion" to p->version when candidate_score >= champion_score +
 * margin, or when forced, in one transaction with its audit row; the
 * previous champion becomes the rollback target. The champion is read
 * inside the transaction; the gate always passes when there is none, and
 * a NaN score fails it. The audit row ("promote", or "promote-refused")
 * has from = the champion at that moment, to = p->version, and details
 * {candidate_score, champion_score, margin, force, eval_key, champion,
 * gate_passed}. The challenger alias is left alone. Promoting the current
 * champion changes and records nothing and returns CH_OK (so a retry after
 * a lost reply is harmless). Errors: CH_ENOTFOUND (no such version),
 * CH_EDATA (the gate failed and not forced; nothing changes, and the
 * refusal is audited; the message gives both scores and the margin),
 * CH_EINVAL (margin not finite), CH_EDB, CH_EBUSY. */
CH_API CH_NODISCARD ch_err ch_registry_promote(ch_registry *r, const ch_promotion *p,
                                               const char *actor, const char *reason,
                                               ch_error *err);

/* Returns "champion" to the version it had before its last promotion, in
 * one transaction with its audit row. The target is the 'from' of the
 * latest "promote" audit row whose 'to' is the current champion, so
 * repeated rollbacks walk back one promotion at a time, and a champion
 * restored by rollback walks back from its own promotion. '*version' (may
 * be NULL) gets the version now champion. Errors: CH_ENOTFOUND (no
 * champion, or it did not come from a promotion over an earlier one). */
CH_API CH_NODISCARD ch_err ch_registry_rollback(ch_registry *r, const char *actor,
                                                const char *reason, int64_t *version,
                                                ch_error *err);

/* Resolves 'ref': a version number ("3"), "v3", or an alias ("champion").
 * '*version' (may be NULL) gets the number, 'path' ('cap' bytes; NULL with
 * cap 0 when not wanted) the bundle path. Errors: CH_ENOTFOUND (unknown
 * or malformed reference, or an alias that is not set; the message names
 * it), CH_ELIMIT (the path needs more than 'cap' bytes). */
CH_API CH_NODISCARD ch_err ch_registry_resolve(ch_registry *r, const char *ref, int64_t *version,
                                               char *path, size_t cap, ch_error *err);

/* Read calls; each appends one JSON value to 'b':
 *   runs_json     [{"id","started","ended","status","seconds","dataset","summary"}...]
 *                 newest first, at most 'limit' (0 = all)
 *   run_json      {"id",...,"config","lineage","metrics":[{"scope","name","value"}],
 *                  "artifacts":[{"kind","path","sha256"}]}
 *   models_json   [{"version","run_id","family","bundle","sha256","created","metrics",
 *                   "aliases":[...]}...]
 *   model_json    one of those, plus "audit": the rows that concern it
 *   audit_json    [{"id","at","actor","action","alias","from","to","reason","details"}...]
 *                 oldest first
 * Stored JSON (config, lineage, summary, metrics, details) is embedded as
 * JSON values; absent values are null ("ended", "seconds" of a running
 * run; "from"/"to" meaning none). run_json also has "summary", and each
 * artifact a "created" time; models_json lists newest first; "aliases"
 * holds "champion" and/or "challenger". Actions in the audit: "register",
 * "alias", "promote", "promote-refused", "rollback". A failed call leaves
 * 'b' as it was. Errors: CH_ENOTFOUND (no such run/version), CH_ELIMIT
 * (the result would pass b->max_len), CH_EDB. */
CH_API CH_NODISCARD ch_err ch_registry_runs_json(ch_registry *r, size_t limit, ch_buf *b,
                                                 ch_error *err);
CH_API CH_NODISCARD ch_err ch_registry_run_json(ch_registry *r, int64_t run_id, ch_buf *b,
                                                ch_error *err);
CH_API CH_NODISCARD ch_err ch_registry_models_json(ch_registry *r, ch_buf *b, ch_error *err);
CH_API CH_NODISCARD ch_err ch_registry_model_json(ch_registry *r, int64_t version, ch_buf *b,
                                                  ch_error *err);
CH_API CH_NODISCARD ch_err ch_registry_audit_json(ch_registry *r, ch_buf *b, ch_error *err);

/* Checks the store's invariants: integrity_check and foreign keys pass,
 * the audit log's append-only triggers exist, aliases point at versions,
 * each alias equals the 'to' of the latest audit row that moved it, every
 * version has its "register" row and numbers have no gaps, and audit times
 * are well-formed and never decrease as ids increase. Errors: CH_EDB with
 * the first violation. */
CH_API CH_NODISCARD ch_err ch_registry_check(ch_registry *r, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_REGISTRY_H */
