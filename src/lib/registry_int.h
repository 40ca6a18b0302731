/*
 * registry_int.h -- the seam between the registry front (registry.c) and
 * its storage back ends (registry_sqlite.c, and later others).
 *
 * The front owns everything that does not depend on the store: argument
 * checks, URL dispatch, the parsing of version references, the promotion
 * gate and the JSON helpers that every back end needs to render rows. A
 * back end owns a connection and turns each call into one transaction.
 *
 * Contract for every back end operation:
 *   - arguments have been checked by the front (non-NULL where required,
 *     hashes are 64 lowercase hex digits, JSON texts parse as objects);
 *   - every write happens in one transaction, including its audit rows;
 *   - errors are translated at once into a ch_err with a message that
 *     names the store; CH_EBUSY only when the wait budget is spent;
 *   - out-parameters are written only on success, and a failed read call
 *     leaves the caller's buffer as it was (the front renders into a
 *     scratch buffer and copies it on success).
 *
 * Adding a back end means one new file that defines a ch__registry_ops
 * and one line in the scheme table in registry.c.
 */
#ifndef CH_REGISTRY_INT_H
#define CH_REGISTRY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/registry.h"

/* The layout of a timestamp: "2024-05-01T12:34:56.789Z" plus the NUL. */
#define CH__REGISTRY_TS_LEN 25

/* The aliases a store knows. Alias names are a closed set, checked by the
 * store as well. */
#define CH__ALIAS_CHAMPION   "champion"
#define CH__ALIAS_CHALLENGER "challenger"

/* A model version to register; every string has been checked. */
typedef struct ch__registration {
    int64_t run_id;
    const char *bundle_path;
    const char *bundle_sha256; /* 64 lowercase hex digits */
    const char *family;
    const char *metrics_json; /* an object, or NULL */
    const char *actor;
    const char *reason; /* may be NULL */
} ch__registration;

/* A parsed version reference: either a number or an alias name. */
typedef struct ch__registry_ref {
    int64_t version;   /* > 0 when the reference is a number, else 0 */
    const char *alias; /* CH__ALIAS_* when it is an alias, else NULL */
} ch__registry_ref;

/* One back end. 'be' is the back end's own state, made by 'open'. */
typedef struct ch__registry_ops {
    const char *name; /* "sqlite": used in messages */
    ch_err (*open)(const char *target, const ch_registry_opts *o, void **be, ch_error *err);
    void (*close)(void *be);
    ch_err (*add_dataset)(void *be, const char *sha256, const char *path, int64_t n_rows,
                          ch_error *err);
    ch_err (*run_begin)(void *be, const char *dataset_sha256, const char *config_json,
                        const char *lineage_json, int64_t *run_id, ch_error *err);
    ch_err (*run_metric)(void *be, int64_t run_id, const char *scope, const char *name,
                         double value, ch_error *err);
    ch_err (*run_end)(void *be, int64_t run_id, const char *status, const char *summary_json,
                      double seconds, ch_error *err);
    ch_err (*add_artifact)(void *be, int64_t run_id, const char *kind, const char *path,
                           const char *sha256, ch_error *err);
    ch_err (*register_version)(void *be, const ch__registration *reg, int64_t *version,
                               ch_error *err);
    ch_err (*promote)(void *be, const ch_promotion *p, const char *actor, const char *reason,
                      ch_error *err);
    ch_err (*rollback)(void *be, const char *actor, const char *reason, int64_t *version,
                       ch_error *err);
    /* Appends the bundle path of the version to 'path'. */
    ch_err (*resolve)(void *be, const ch__registry_ref *ref, int64_t *version, ch_buf *path,
                      ch_error *err);
    ch_err (*runs_json)(void *be, size_t limit, ch_buf *b, ch_error *err);
    ch_err (*run_json)(void *be, int64_t run_id, ch_buf *b, ch_error *err);
    ch_err (*models_json)(void *be, ch_buf *b, ch_error *err);
    ch_err (*model_json)(void *be, int64_t version, ch_buf *b, ch_error *err);
    ch_err (*audit_json)(void *be, ch_buf *b, ch_error *err);
    ch_err (*check)(void *be, ch_error *err);
} ch__registry_ops;

/* The SQLite back end (registry_sqlite.c). */
extern const ch__registry_ops ch__registry_sqlite_ops;

/* ---- helpers shared by the back ends (defined in registry.c) ---------- */

/* Writes the current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ" into 'out'.
 * Strings in this layout sort in time order. */
void ch__registry_now(char out[CH__REGISTRY_TS_LEN]);

/* Whether the promotion gate passes on its own (without 'force'):
 * always when there is no champion, else when candidate_score >=
 * champion_score + margin. NaN scores fail the gate. */
int ch__registry_gate_passes(const ch_promotion *p, int64_t champion);

/* Appends the audit details of a promotion decision as one JSON object:
 * scores, margin, force, eval_key, the champion at decision time (null if
 * none) and whether the gate passed on its own. Returns the buffer's
 * status. */
ch_err ch__registry_promotion_details(ch_buf *b, const ch_promotion *p, int64_t champion);

/* Sets 'err' to the CH_EDATA message of a refused promotion, giving both
 * scores and the margin, and returns CH_EDATA. */
ch_err ch__registry_refused(ch_error *err, const ch_promotion *p, int64_t champion);

/* JSON rendering helpers for rows. ch__json_key() writes the separator
 * (a comma unless '*first') and "key":. ch__json_embed() appends stored
 * JSON text as a value: NULL becomes null, and text that does not parse
 * (a store edited by hand) becomes a JSON string rather than breaking
 * the document. Both return the buffer's status; ch__json_embed() may
 * also return CH_ENOMEM from the parser. */
void ch__json_key(ch_buf *b, int *first, const char *key);
ch_err ch__json_embed(ch_buf *b, const char *text, size_t len);
void ch__json_str_or_null(ch_buf *b, const char *s, size_t len);
void ch__json_int(ch_buf *b, int64_t v);

#endif /* CH_REGISTRY_INT_H */
