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
 * The same store keeps what the prediction service persists: users
 * (Argon2id password hashes, roles), service API keys (digests only),
 * every prediction served, and feedback labels joined to predictions.
 * The audit log is hash-chained: each entry carries SHA-256(previous
 * entry's hash || canonical text of its own fields), and a head row holds
 * the entry count and the last hash, so an edited, removed or truncated
 * log is found by ch_registry_audit_verify() (docs/registry.md).
 *
 * Read calls return JSON text (documented per call) so that callers never
 * see back-end types.
 *
 * Threads: a ch_registry handle is one connection to the store and must
 * be used by one thread at a time (calls on one handle are not
 * synchronized, and nothing here locks). A program with several threads
 * opens one handle per thread that needs one; handles in any number of
 * threads and processes may share one store, which serializes their
 * writes itself.
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

#include "ch/auth.h"
#include "ch/buf.h"
#include "ch/err.h"
#include "ch/predlog.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_registry ch_registry;

/* A timestamp as the store writes it, "2024-05-01T12:34:56.789Z", plus
 * the NUL. */
#define CH_REGISTRY_TIME_LEN 25

typedef struct ch_registry_opts {
    int busy_timeout_ms; /* wait this long for another writer (default 10000) */
    int read_only;       /* 1: open without creating or writing (default 0) */
    int test_pause_ms;   /* tests only: sleep this long inside each write transaction,
                            after its first statement that changes the store (default 0) */
    int bulk_log;        /* 1: a connection that only appends the prediction log: commits
                            are synced at checkpoints (WAL synchronous=NORMAL; the store
                            stays consistent, a power loss may take the last batches) and
                            the page cache is larger (default 0: every commit synced) */
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
 *   audit_json    [{"id","at","actor","action","alias","from","to","target","reason",
 *                   "details","prev_hash","hash"}...] oldest first
 * Stored JSON (config, lineage, summary, metrics, details) is embedded as
 * JSON values; absent values are null ("ended", "seconds" of a running
 * run; "from"/"to" meaning none). run_json also has "summary", and each
 * artifact a "created" time; models_json lists newest first; "aliases"
 * holds "champion" and/or "challenger". Actions in the audit: "register",
 * "alias", "promote", "promote-refused", "rollback", the "user-..." and
 * "key-..." actions below, and those of ch_registry_audit_append(); model
 * entries have a null "target". A failed call leaves
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

/* Like ch_registry_audit_json() for the last 'limit' entries only (0 =
 * all), still oldest first. Each entry also has "target" (the user, key or
 * object a non-model entry concerns, else null), "prev_hash" and "hash"
 * (64 hex digits: see ch_registry_audit_verify()). Errors as for the other
 * read calls. */
CH_API CH_NODISCARD ch_err ch_registry_audit_tail_json(ch_registry *r, size_t limit, ch_buf *b,
                                                       ch_error *err);

/* ---- the audit chain ----------------------------------------------------
 *
 * Every call that changes the store's state writes its audit entries in
 * the same transaction: register, promote (refusals included), rollback,
 * the user and API key calls below, and ch_registry_audit_append(). Each
 * entry's "hash" is SHA-256 of the previous entry's hash (64 zeros for the
 * first) followed by the canonical text of the entry's own fields (id,
 * time, actor, action, alias, from, to, target, reason, details; the
 * layout is in docs/registry.md). A head row keeps the number of entries
 * and the hash of the last one. Predictions, feedback and the "last used"
 * time of API keys are data, not audited state changes. */

/* Appends an entry for a state change made outside the store (the
 * server's own settings, a reload, ...): 'actor' (required) did 'action'
 * (required: 1 to 64 characters of a-z, 0-9, '.', '_', ':' and '-'; the
 * registry's own actions -- "register", "alias", "promote",
 * "promote-refused", "rollback" and any "user-..." or "key-..." -- are
 * refused) to 'target' (may be NULL; at most 256 bytes of UTF-8), with
 * 'details_json' (an object or NULL). Errors: CH_EINVAL, CH_EFORMAT,
 * CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_audit_append(ch_registry *r, const char *actor,
                                                    const char *action, const char *target,
                                                    const char *details_json, ch_error *err);

/* Walks the whole audit log in id order and checks that every entry's
 * "prev_hash" is the hash of the entry before it (zeros for the first)
 * and that its "hash" matches its content, then that the head row's count
 * and last hash match the last entry. CH_OK: the chain holds; '*n_entries'
 * (may be NULL) gets the number of entries. CH_EDATA: the chain is broken;
 * the message names the first bad entry and what is wrong with it (its
 * content was changed; it does not follow the entry before it, so an
 * entry was removed or changed there; entries were removed from the end;
 * the head row is missing), and on this code only '*n_entries' gets the
 * entries read and '*first_bad_id' (may be NULL) the id of the first bad
 * entry (for entries removed from the end: the last intact id + 1; for a
 * head that counts fewer entries than the log: the first id past it; 0
 * when the head row is missing). A tamperer who rewrites every later hash
 * and the head as well is found only by comparing the head hash with a
 * copy kept elsewhere (`churn audit verify` prints it). Works on a
 * read-only store. Errors also: CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_audit_verify(ch_registry *r, int64_t *n_entries,
                                                    int64_t *first_bad_id, ch_error *err);

/* ---- users ----------------------------------------------------------------
 *
 * A user has a name (1 to 64 characters of a-z, A-Z, 0-9, '.', '_', '@'
 * and '-'; case matters), a role (a name that ch_role_parse() knows), the
 * Argon2id hash of the password as ch_password_hash() encodes it (the
 * store never sees a password), a disabled flag and times. Every change
 * is audited with 'actor' (required) and the user's name as target:
 * "user-add" (details: role), "user-passwd", "user-role" (details: from,
 * to), "user-disable", "user-enable". */

typedef struct ch_registry_user {
    ch_role role;                             /* CH_ROLE_NONE if the stored name is unknown */
    char password_hash[CH_PASSWORD_HASH_MAX]; /* encoded Argon2id hash */
    int disabled;                             /* 1: may not sign in */
    char created[CH_REGISTRY_TIME_LEN];       /* UTC */
} ch_registry_user;

/* Adds user 'name' with 'role' and the encoded hash 'password_hash' (must
 * start "$argon2id$" and fit CH_PASSWORD_HASH_MAX with its NUL). Errors:
 * CH_EINVAL (bad name, unknown role, not an encoded hash, or "user 'x'
 * exists"), CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_user_add(ch_registry *r, const char *name, const char *role,
                                                const char *password_hash, const char *actor,
                                                ch_error *err);

/* Reads user 'name' into '*out'. Errors: CH_ENOTFOUND (no such user; a
 * malformed name is not found either), CH_EDB (the stored hash does not
 * fit), CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_user_get(ch_registry *r, const char *name,
                                                ch_registry_user *out, ch_error *err);

/* Replaces the password hash of 'name' (checked as for add). Errors:
 * CH_EINVAL, CH_ENOTFOUND, CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_user_set_password(ch_registry *r, const char *name,
                                                         const char *password_hash,
                                                         const char *actor, ch_error *err);

/* Gives 'name' the role 'role'. Setting the role it has already changes
 * and audits nothing. Errors: CH_EINVAL (unknown role), CH_ENOTFOUND,
 * CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_user_set_role(ch_registry *r, const char *name,
                                                     const char *role, const char *actor,
                                                     ch_error *err);

/* Disables ('disabled' 1) or enables (0) 'name'. A user already in that
 * state is left alone and nothing is audited. Errors: CH_ENOTFOUND,
 * CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_user_set_disabled(ch_registry *r, const char *name,
                                                         int disabled, const char *actor,
                                                         ch_error *err);

/* Appends [{"name","role","disabled","created","updated"}...] sorted by
 * name; never a password hash. Errors as for the other read calls. */
CH_API CH_NODISCARD ch_err ch_registry_users_json(ch_registry *r, ch_buf *b, ch_error *err);

/* ---- API keys -------------------------------------------------------------
 *
 * A key is stored as its id (CH_API_KEY_ID_LEN lowercase hex digits,
 * public) and the SHA-256 of the whole key (from ch_api_key_new()); the
 * key itself is never stored. Changes are audited with the key id as
 * target: "key-create" (details: role, label), "key-revoke". */

typedef struct ch_registry_key {
    ch_role role;    /* CH_ROLE_NONE if the stored name is unknown */
    int revoked;     /* 1: the key must be refused */
    char label[129]; /* free text, "" when none */
} ch_registry_key;

/* Records a new key: 'id', its 'sha256' digest, 'role', 'label' (may be
 * NULL; at most 128 bytes of UTF-8 without control characters), made by
 * 'created_by' (the actor). Errors: CH_EINVAL (bad id, digest, role or
 * label, or "API key 'x' exists"), CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_key_add(ch_registry *r, const char *id, const char *sha256,
                                               const char *role, const char *label,
                                               const char *created_by, ch_error *err);

/* Authenticates a presented key: finds key 'id' and compares 'sha256'
 * (the digest of the presented key, from ch_api_key_parse()) with the
 * stored digest in time independent of where they differ. On a match
 * fills '*out' (a revoked key matches too: the caller refuses it and can
 * say why) and, for a key that is not revoked, records the time of use,
 * at most once a minute per key so that a busy client does not cost a
 * write per request. Recording the use never waits for another writer and
 * never fails the call: if the store is busy or the write fails, the next
 * use records it. Errors: CH_EAUTH (no key 'id', or a digest that does
 * not match: one message for both), CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_key_lookup(ch_registry *r, const char *id,
                                                  const char *sha256, ch_registry_key *out,
                                                  ch_error *err);

/* Revokes key 'id' for good. Revoking a revoked key changes and audits
 * nothing. Errors: CH_ENOTFOUND, CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_key_revoke(ch_registry *r, const char *id, const char *actor,
                                                  ch_error *err);

/* Appends [{"id","label","role","created","created_by","last_used",
 * "revoked","revoked_at"}...] oldest first; "revoked" is a boolean,
 * "last_used" and "revoked_at" are times or null. Never a digest. Errors
 * as for the other read calls. */
CH_API CH_NODISCARD ch_err ch_registry_keys_json(ch_registry *r, ch_buf *b, ch_error *err);

/* ---- predictions and feedback --------------------------------------------- */

/* Stores 'n' predictions (n >= 1) in one transaction: all or none. A
 * record whose id is already stored is skipped, so a batch retried after
 * a lost reply is harmless. Every record is checked first: id 32
 * lowercase hex digits, customer "" or CH_PSEUDONYM_LEN lowercase hex
 * digits, features_sha256 64 hex digits, probability in [0, 1], label 0
 * or 1, model_version >= 0, latency_s finite and >= 0, time_ms > 0,
 * inputs_len <= CH_PREDLOG_INPUTS_MAX (CH_EINVAL names the first bad
 * record; nothing is written). The first 'inputs_len' bytes of 'inputs'
 * are stored as they are (the store does not know the schema to check
 * them against); inputs_len 0 stores none (NULL). Suits
 * ch_predlog_sink_fn. Errors also: CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_log_predictions(ch_registry *r,
                                                       const ch_prediction_rec *recs, size_t n,
                                                       ch_error *err);

/* Which logged predictions ch_registry_predictions_scan() and _count()
 * read. All zero (or a NULL query) means every prediction. */
typedef struct ch_prediction_query {
    int64_t since_ms;      /* only time_ms >= since_ms (unix ms; 0: no lower bound) */
    int64_t until_ms;      /* only time_ms < until_ms (0: no upper bound) */
    size_t last_n;         /* only the latest N of those, by time (0: all of them) */
    int64_t model_version; /* only this registry version (0: any, including predictions
                              served from a file) */
    int labelled_only;     /* 1: only predictions that have feedback; 0: all */
} ch_prediction_query;

/* One logged prediction, as a scan delivers it. Every pointer is borrowed
 * for the callback only: copy what must outlive it. */
typedef struct ch_prediction_row {
    const char *id;              /* 32 lowercase hex digits */
    const char *customer;        /* the pseudonym, or NULL when none */
    double probability;          /* calibrated */
    int label;                   /* 1 = predicted to churn */
    int64_t model_version;       /* 0 when served from a file */
    int64_t time_ms;             /* unix time, milliseconds */
    const unsigned char *inputs; /* the input values (an inputs.h blob), or NULL when
                                    not logged (older stores, or values too large) */
    size_t inputs_len;           /* bytes of 'inputs'; 0 when NULL */
    int churned;                 /* the latest feedback for this prediction (by the order
                                    it was recorded): 0 or 1; -1 when there is none */
    const char *observed_date;   /* that feedback's "YYYY-MM-DD", or NULL when none */
    int arm;                     /* CH_ARM_* (predlog.h) */
    int64_t shadow_version;      /* the shadow candidate that also scored it, 0: none */
    double shadow_probability;   /* its probability; NaN when none */
} ch_prediction_row;

/* Receives one row; returns 0 to go on, anything else to stop the scan
 * (which then returns CH_OK). */
typedef int (*ch_prediction_row_fn)(void *ctx, const ch_prediction_row *row);

/* Calls 'fn' for every logged prediction that 'q' selects (NULL: all), in
 * time order, oldest first; predictions with the same time_ms come in
 * the order they were stored. With q->last_n the latest N are chosen and
 * still delivered oldest first. The whole scan reads one snapshot of the
 * store (a read transaction), streaming: memory does not grow with the
 * number of rows. A slow callback holds the snapshot open, which keeps
 * the store's write-ahead log from being checkpointed meanwhile; 'fn'
 * must not call the registry on 'r'. A full scan of a million
 * predictions takes about 0.3 s (bench/predlog_scan.c); feedback is
 * joined by a lookup per prediction of the window or by one pass over the
 * feedback, whichever costs less, so a short window stays cheap however
 * much feedback the store holds. Works on a read-only store.
 * Errors: CH_EINVAL ('r' or 'fn' NULL; since_ms or until_ms negative;
 * until_ms not after since_ms; model_version negative; labelled_only not
 * 0 or 1; last_n above INT64_MAX), CH_EDB, CH_EBUSY (rows already
 * delivered are not delivered again), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_predictions_scan(ch_registry *r,
                                                        const ch_prediction_query *q,
                                                        ch_prediction_row_fn fn, void *ctx,
                                                        ch_error *err);

/* '*n' gets the number of predictions a scan with 'q' (NULL: all) would
 * deliver. Errors as for ch_registry_predictions_scan() (with 'n' in
 * place of 'fn'). */
CH_API CH_NODISCARD ch_err ch_registry_predictions_count(ch_registry *r,
                                                         const ch_prediction_query *q, int64_t *n,
                                                         ch_error *err);

/* Records what a customer did: 'churned' (0 or 1) observed on
 * 'observed_date' ("YYYY-MM-DD", a real calendar date), reported by
 * 'actor'. The feedback joins the prediction 'prediction_id' when given;
 * otherwise the latest prediction (by time) of 'customer' (a pseudonym).
 * When both are given the prediction must be that customer's. At least
 * one is required. 'out_prediction_id' (may be NULL) gets the prediction
 * joined. The call returns once the feedback is durable: committed with
 * full synchronization, so it survives a power loss. Errors: CH_EINVAL
 * (bad arguments), CH_ENOTFOUND (no such prediction, or no prediction for
 * that customer: nothing is recorded), CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err
ch_registry_feedback_add(ch_registry *r, const char *prediction_id, const char *customer,
                         int churned, const char *observed_date, const char *actor,
                         char out_prediction_id[CH_PREDICTION_ID_LEN + 1], ch_error *err);

/* '*n' gets the number of feedback records. Errors: CH_EDB, CH_EBUSY,
 * CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_feedback_count(ch_registry *r, int64_t *n, ch_error *err);

/* Appends the latest 'limit' feedback records (0 = all), newest first:
 * [{"id","prediction_id","customer","churned","observed_date","actor",
 * "at","probability","label","model_version","predicted_at"}...], where
 * "customer" is the pseudonym or null and the last four come from the
 * prediction ("model_version" null when it was served from a file;
 * "predicted_at" its time, the prediction's fields null if it has since
 * been removed). Errors as for the other read calls. */
CH_API CH_NODISCARD ch_err ch_registry_feedback_json(ch_registry *r, size_t limit, ch_buf *b,
                                                     ch_error *err);

/* ---- monitoring results ------------------------------------------------- */

#define CH_REGISTRY_MONITOR_KEEP 1000 /* results of each kind kept; older ones go */

/* Keeps one monitoring result: 'kind' "drift", "decay" or "estimate",
 * the model version it measured (0: none), its window ('since_ms' and
 * 'until_ms', 0 for an open end), the predictions read and the document
 * 'json' (a JSON object, stored as given). Only the latest
 * CH_REGISTRY_MONITOR_KEEP of a kind are kept. Errors: CH_EINVAL (an
 * unknown kind, 'json' not an object, negative counts), CH_EDB, CH_EBUSY,
 * CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_monitor_put(ch_registry *r, const char *kind,
                                                   int64_t version, int64_t since_ms,
                                                   int64_t until_ms, int64_t predictions,
                                                   const char *json, ch_error *err);

/* Appends the latest 'limit' results of 'kind' (0: all), newest first:
 * [{"id", "kind", "model_version", "computed_at", "since", "until",
 * "predictions", "result"}...]. Errors: CH_EINVAL (unknown kind), and as
 * for the other read calls. */
CH_API CH_NODISCARD ch_err ch_registry_monitor_list(ch_registry *r, const char *kind, size_t limit,
                                                    ch_buf *b, ch_error *err);

/* ---- background jobs ------------------------------------------------------- */

typedef enum ch_job_status {
    CH_JOB_QUEUED = 0,
    CH_JOB_RUNNING = 1,
    CH_JOB_SUCCEEDED = 2,
    CH_JOB_FAILED = 3,
    CH_JOB_CANCELLED = 4,
    CH_JOB_INTERRUPTED = 5 /* the process ended while it was queued or running */
} ch_job_status;

/* "queued", "running", ... ("unknown" outside the enum). */
CH_API const char *ch_job_status_name(ch_job_status s);

/* Adds a queued job of 'kind' (a word: "retrain"), started by 'actor'
 * for 'trigger' (why: "decay", "alertmanager", "manual", ...; may be
 * NULL), with parameters 'params_json' (an object, or NULL); '*id' gets
 * its number. One job of a kind at a time: CH_EBUSY (naming it) while
 * another is queued or running, whichever process added it. Errors also:
 * CH_EINVAL, CH_EDB, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_job_add(ch_registry *r, const char *kind,
                                               const char *trigger, const char *params_json,
                                               const char *actor, int64_t *id, ch_error *err);

/* Moves job 'id' to 'status' with its 'progress' (0 to 1; negative keeps
 * it), 'stage' (what it is doing; NULL keeps), 'result_json' (an object;
 * NULL keeps) and 'error' (NULL keeps). Allowed: queued to running or to
 * an end (failed, cancelled, interrupted), running to an end, and a
 * status to itself (progress only). Errors: CH_ENOTFOUND, CH_EINVAL (a
 * move not allowed, bad arguments), CH_EDB, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_registry_job_update(ch_registry *r, int64_t id, ch_job_status status,
                                                  double progress, const char *stage,
                                                  const char *result_json, const char *error,
                                                  ch_error *err);

/* Takes the oldest queued job of 'kind' for running it: moves it to
 * running in one statement, so that of several servers polling one store
 * exactly one gets it. '*id' gets the job, 0 when none was queued.
 * Errors: CH_EINVAL, CH_EDB. Same as ch_registry_job_claim_as() without
 * an owner. */
CH_API CH_NODISCARD ch_err ch_registry_job_claim(ch_registry *r, const char *kind, int64_t *id,
                                                 ch_error *err);

/* Like ch_registry_job_claim(), recording 'owner' (the process that runs
 * the job, e.g. "host:pid:start"; up to 200 characters; may be NULL) and
 * the job's first heartbeat. Errors: CH_EINVAL, CH_EDB. */
CH_API CH_NODISCARD ch_err ch_registry_job_claim_as(ch_registry *r, const char *kind,
                                                    const char *owner, int64_t *id, ch_error *err);

/* Records that running job 'id' is still being worked on (its heartbeat,
 * in unix ms); ch_registry_job_update() of a running job does too. A job
 * that is not running is left as it is. The runner calls this every few
 * seconds, so that other servers on the store can tell a job whose runner
 * died from one that takes long. Errors: CH_EDB. Thread-safe as the
 * handle is (one thread at a time). */
CH_API CH_NODISCARD ch_err ch_registry_job_heartbeat(ch_registry *r, int64_t id, ch_error *err);

/* Asks job 'id' to stop, audited as 'actor': a queued job is cancelled
 * at once, a running one is flagged for its runner
 * (ch_registry_job_cancel_requested). '*status' (may be NULL) gets the
 * status after the call. Errors: CH_ENOTFOUND, CH_EINVAL (already
 * ended), CH_EDB. */
CH_API CH_NODISCARD ch_err ch_registry_job_cancel(ch_registry *r, int64_t id, const char *actor,
                                                  ch_job_status *status, ch_error *err);

/* '*yes' gets 1 when job 'id' has been asked to stop. */
CH_API CH_NODISCARD ch_err ch_registry_job_cancel_requested(ch_registry *r, int64_t id, int *yes,
                                                            ch_error *err);

/* Marks every running job interrupted, with 'why' (NULL: keep the job's
 * own error or say "interrupted"), and ends as failed ("interrupted") the
 * tracked run a job's result names as "run_id" if it is still running;
 * queued jobs stay queued, for the next claim. '*n' (may be NULL) gets how
 * many jobs. Called when a server starts: no process runs those jobs any
 * more. Errors: CH_EDB. */
CH_API CH_NODISCARD ch_err ch_registry_jobs_interrupt(ch_registry *r, const char *why, int64_t *n,
                                                      ch_error *err);

/* Like ch_registry_jobs_interrupt(), for the running jobs whose runner is
 * gone: those whose last heartbeat (or, without one, their start) is more
 * than 'stale_ms' (> 0) old, and those of 'owner' (may be NULL) whatever
 * their heartbeat (a runner known to be dead: a process of this host
 * that no longer exists). For many servers on one store, each calling
 * this when it starts and periodically. Errors: CH_EINVAL, CH_EDB. */
CH_API CH_NODISCARD ch_err ch_registry_jobs_interrupt_stale(ch_registry *r, const char *why,
                                                            int64_t stale_ms, const char *owner,
                                                            int64_t *n, ch_error *err);

/* Appends the latest 'limit' jobs (0: all), newest first, or with 'id' >
 * 0 that one job: {"id", "kind", "status", "trigger", "actor", "params",
 * "progress", "stage", "result", "error", "cancel_requested", "created",
 * "started", "ended", "owner", "heartbeat"}. Errors: CH_ENOTFOUND (no such job), as for the
 * other read calls. */
CH_API CH_NODISCARD ch_err ch_registry_jobs_json(ch_registry *r, int64_t id, size_t limit,
                                                 ch_buf *b, ch_error *err);

/* ---- rollouts ------------------------------------------------------------- */

#define CH_ROLLOUT_MAX_STEPS 8

typedef enum ch_rollout_state {
    CH_ROLLOUT_SHADOW = 0,      /* the candidate scores a copy of the traffic; nothing served */
    CH_ROLLOUT_CANARY = 1,      /* the candidate answers steps[step] percent of customers */
    CH_ROLLOUT_PAUSED = 2,      /* held where it was; nothing moves */
    CH_ROLLOUT_PROMOTED = 3,    /* ended: the candidate is champion */
    CH_ROLLOUT_ROLLED_BACK = 4, /* ended: a gate failed; the candidate answers no one */
    CH_ROLLOUT_ABORTED = 5      /* ended by hand */
} ch_rollout_state;

/* "shadow", "canary", ... ("unknown" outside the enum). */
CH_API const char *ch_rollout_state_name(ch_rollout_state s);

/* A rollout as stored. */
typedef struct ch_rollout {
    int64_t id;
    int64_t candidate, champion; /* versions; the champion when it started */
    ch_rollout_state state;
    ch_rollout_state paused_from;       /* shadow or canary, while paused */
    size_t step;                        /* index into 'steps' */
    double steps[CH_ROLLOUT_MAX_STEPS]; /* percent of customers, increasing, the last 100 */
    size_t n_steps;
    char gates_json[2048];                         /* the gate settings it runs with */
    int64_t step_started_ms, created_ms, ended_ms; /* ended 0 while active */
} ch_rollout;

/* Starts a rollout of version 'candidate' against the champion: in
 * shadow mode first when 'shadow', else at steps[0]. 'steps' (1 to
 * CH_ROLLOUT_MAX_STEPS percentages, strictly increasing, in (0, 100], the
 * last 100); 'gates_json' an object. Audited ("rollout-start"). '*id' gets
 * its number. Errors: CH_EBUSY (another rollout is active), CH_EINVAL (no
 * champion, the candidate is the champion, bad steps), CH_ENOTFOUND (no
 * such version), CH_EDB. */
CH_API CH_NODISCARD ch_err ch_registry_rollout_start(ch_registry *r, int64_t candidate,
                                                     const double *steps, size_t n_steps,
                                                     int shadow, const char *gates_json,
                                                     const char *actor, const char *reason,
                                                     int64_t *id, ch_error *err);

/* The active rollout (shadow, canary or paused) with '*found' 1, or
 * '*found' 0; with 'id' > 0 that rollout whatever its state. */
CH_API CH_NODISCARD ch_err ch_registry_rollout_get(ch_registry *r, int64_t id, ch_rollout *out,
                                                   int *found, ch_error *err);

/* Moves rollout 'id' on, if it still is in 'expect_state' at
 * 'expect_step' (either -1: whatever), so that two controllers sharing a
 * store never move it twice (the second gets CH_EBUSY). Shadow goes to
 * the first canary step, a canary step to the next; past the last step
 * the candidate becomes champion in the same transaction (audited as a
 * "promote" of the champion alias) and the rollout ends "promoted".
 * 'eval_json' (an object, or NULL) is the gate evaluation behind the
 * move, kept with the rollout and in the audit details. Errors: CH_EBUSY,
 * CH_EINVAL (not running), CH_ENOTFOUND, CH_EDB. */
CH_API CH_NODISCARD ch_err ch_registry_rollout_advance(ch_registry *r, int64_t id, int expect_state,
                                                       int expect_step, const char *eval_json,
                                                       const char *actor, const char *reason,
                                                       ch_error *err);

/* Pauses a running rollout / resumes a paused one (the step's clock
 * starts again) / ends an active one as CH_ROLLOUT_ROLLED_BACK (a gate
 * failed) or CH_ROLLOUT_ABORTED (by hand). Audited. Errors as above. */
CH_API CH_NODISCARD ch_err ch_registry_rollout_pause(ch_registry *r, int64_t id, const char *actor,
                                                     const char *reason, ch_error *err);
CH_API CH_NODISCARD ch_err ch_registry_rollout_resume(ch_registry *r, int64_t id, const char *actor,
                                                      const char *reason, ch_error *err);
CH_API CH_NODISCARD ch_err ch_registry_rollout_end(ch_registry *r, int64_t id, ch_rollout_state end,
                                                   int expect_state, int expect_step,
                                                   const char *eval_json, const char *actor,
                                                   const char *reason, ch_error *err);

/* Keeps 'eval_json' as the rollout's latest gate evaluation (not audited:
 * it changes at every evaluation). */
CH_API CH_NODISCARD ch_err ch_registry_rollout_evaluated(ch_registry *r, int64_t id,
                                                         const char *eval_json, ch_error *err);

/* Appends the latest 'limit' rollouts (0: all), newest first, or with
 * 'id' > 0 that one: {"id", "candidate", "champion", "state",
 * "paused_from", "step", "steps", "gates", "step_started", "created",
 * "ended", "actor", "reason", "last_evaluation"}. */
CH_API CH_NODISCARD ch_err ch_registry_rollouts_json(ch_registry *r, int64_t id, size_t limit,
                                                     ch_buf *b, ch_error *err);

/* Checks the store's invariants: integrity_check and foreign keys pass,
 * the audit log's append-only triggers exist, aliases point at versions,
 * each alias equals the 'to' of the latest audit row that moved it, every
 * version has its "register" row and numbers have no gaps, and audit times
 * are well-formed and never decrease as ids increase, and the audit chain
 * holds (as ch_registry_audit_verify() checks it). Errors: CH_EDB with the
 * first violation. */
CH_API CH_NODISCARD ch_err ch_registry_check(ch_registry *r, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_REGISTRY_H */
