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
#define CH__REGISTRY_TS_LEN CH_REGISTRY_TIME_LEN

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

/* A change to one user; every string has been checked. */
typedef enum ch__user_op {
    CH__USER_PASSWD = 1,  /* set 'hash' */
    CH__USER_ROLE = 2,    /* set 'role' */
    CH__USER_DISABLE = 3, /* set the disabled flag */
    CH__USER_ENABLE = 4   /* clear it */
} ch__user_op;

typedef struct ch__user_change {
    ch__user_op op;
    const char *name;
    const char *role; /* CH__USER_ROLE: a role name ch_role_parse() knows */
    const char *hash; /* CH__USER_PASSWD: an encoded Argon2id hash */
    const char *actor;
} ch__user_change;

/* A feedback record to add; every string has been checked. */
typedef struct ch__feedback {
    const char *prediction_id; /* 32 lowercase hex digits, or NULL */
    const char *customer;      /* a pseudonym, or NULL; one of the two is set */
    int churned;               /* 0 or 1 */
    const char *observed_date; /* "YYYY-MM-DD", a real date */
    const char *actor;
} ch__feedback;

/* A checked prediction query: rows with lo_ms <= time_ms <= hi_ms (both
 * inclusive, so no bound needs a sentinel outside int64), of
 * 'model_version' (0: any), with feedback when 'labelled_only', and of
 * those the latest 'last_n' (0: all). */
typedef struct ch__prediction_query {
    int64_t lo_ms;
    int64_t hi_ms;
    int64_t model_version;
    int labelled_only;
    int64_t last_n;
} ch__prediction_query;

/* One audit entry as the chain hashes it: every field as the text the
 * store keeps (integers in decimal), NULL for SQL NULL. */
typedef struct ch__audit_entry {
    const char *id;
    const char *at;
    const char *actor;
    const char *action;
    const char *alias;
    const char *from_version;
    const char *to_version;
    const char *target;
    const char *reason;
    const char *details;
} ch__audit_entry;

/* The 'prev_hash' of the first entry of a log. */
#define CH__AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* A job change; every string has been checked. */
typedef struct ch__job_change {
    const char *kind;     /* add */
    const char *trigger;  /* add: why, or NULL */
    const char *actor;    /* add, cancel */
    const char *json;     /* add: parameters; update: result; NULL keeps */
    ch_job_status status; /* update */
    double progress;      /* update: 0..1, or negative to keep */
    const char *stage;    /* update: NULL keeps */
    const char *error;    /* update, interrupt: NULL keeps */
    const char *owner;    /* claim: the runner; interrupt: its jobs whatever their heartbeat
                             (NULL: none) */
    int64_t stale_ms;     /* interrupt: only jobs whose heartbeat is older (0: every running
                             job) */
} ch__job_change;

/* A rollout change; every string and number has been checked. */
typedef enum ch__rollout_op {
    CH__ROLLOUT_ADVANCE = 0, /* shadow -> canary step 0 -> ... -> promoted */
    CH__ROLLOUT_PAUSE = 1,
    CH__ROLLOUT_RESUME = 2,
    CH__ROLLOUT_END = 3, /* rolled back or aborted */
    CH__ROLLOUT_EVAL = 4 /* keep the latest gate evaluation only */
} ch__rollout_op;

typedef struct ch__rollout_change {
    ch__rollout_op op;
    int64_t candidate;   /* start */
    const double *steps; /* start: percentages, increasing, the last 100 */
    size_t n_steps;
    int shadow;                    /* start: begin in shadow mode */
    const char *gates_json;        /* start */
    int expect_state, expect_step; /* move: what the caller saw, or -1 */
    ch_rollout_state end_state;    /* end */
    const char *eval_json;         /* move: the evaluation behind it, or NULL */
    const char *details;           /* audit details, or NULL */
    const char *actor;
    const char *reason;
} ch__rollout_change;

/* What a rollout move does, decided by ch__rollout_plan() from the rollout
 * as read inside the move's transaction: the same rules for every back
 * end, which only carry them out. */
typedef enum ch__rollout_move_kind {
    CH__MOVE_STEP,    /* state canary, step 'step', the step's clock from now */
    CH__MOVE_PROMOTE, /* past the last step: the candidate becomes champion */
    CH__MOVE_PAUSE,   /* paused_from = state, state paused */
    CH__MOVE_RESUME,  /* state = paused_from, the step's clock from now */
    CH__MOVE_END,     /* state c->end_state, ended now */
    CH__MOVE_EVAL     /* only the evaluation is kept; not audited */
} ch__rollout_move_kind;

typedef struct ch__rollout_move {
    ch__rollout_move_kind kind;
    int64_t step;       /* CH__MOVE_STEP */
    const char *action; /* the audit action (NULL for CH__MOVE_EVAL) */
    char target[32];    /* the audit target: "rollout N" */
} ch__rollout_move;

/* Checks change 'c' against rollout 'r' and says what it does. Errors
 * (naming 'store'): CH_EBUSY when the rollout has moved on from what the
 * caller saw, CH_EINVAL when the move is not one its state allows. */
ch_err ch__rollout_plan(const char *store, const ch_rollout *r, const ch__rollout_change *c,
                        ch__rollout_move *m, ch_error *err);

/* Whether a job stored with status 'from' may move to 'to' (a job changes
 * once it is queued or running; a finished one never). */
int ch__job_move_ok(const char *from, ch_job_status to);

/* Whether 't' ('len' bytes) has the shape of a stored timestamp,
 * "2024-05-01T12:34:56.789Z". */
int ch__registry_is_stamp(const char *t, size_t len);

/* "[5, 25, 100]" <-> numbers; parse returns the count read (0 on error). */
size_t ch__registry_parse_steps(const char *text, double *steps, size_t max);
void ch__registry_format_steps(const double *steps, size_t n, char *out, size_t cap);

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
    /* The last 'limit' entries (0 = all), oldest first. */
    ch_err (*audit_json)(void *be, size_t limit, ch_buf *b, ch_error *err);
    ch_err (*check)(void *be, ch_error *err);

    /* The audit chain. 'action' is not one of the registry's own. */
    ch_err (*audit_append)(void *be, const char *actor, const char *action, const char *target,
                           const char *details_json, ch_error *err);
    /* CH_EDATA names the first bad entry; '*n' and '*first_bad' are
     * written on CH_OK ('*n' only) and on CH_EDATA. */
    ch_err (*audit_verify)(void *be, int64_t *n, int64_t *first_bad, ch_error *err);

    /* Users and API keys. 'role' is a role name ch_role_parse() knows. */
    ch_err (*user_add)(void *be, const char *name, const char *role, const char *hash,
                       const char *actor, ch_error *err);
    ch_err (*user_get)(void *be, const char *name, ch_registry_user *out, ch_error *err);
    ch_err (*user_change)(void *be, const ch__user_change *c, ch_error *err);
    ch_err (*users_json)(void *be, ch_buf *b, ch_error *err);
    ch_err (*key_add)(void *be, const char *id, const char *sha256, const char *role,
                      const char *label, const char *created_by, ch_error *err);
    ch_err (*key_lookup)(void *be, const char *id, const char *sha256, ch_registry_key *out,
                         ch_error *err);
    ch_err (*key_revoke)(void *be, const char *id, const char *actor, ch_error *err);
    ch_err (*keys_json)(void *be, ch_buf *b, ch_error *err);

    /* Predictions and feedback. Records have been checked. */
    ch_err (*log_predictions)(void *be, const ch_prediction_rec *recs, size_t n, ch_error *err);
    ch_err (*feedback_add)(void *be, const ch__feedback *f, char out_id[CH_PREDICTION_ID_LEN + 1],
                           ch_error *err);
    ch_err (*feedback_count)(void *be, int64_t *n, ch_error *err);
    ch_err (*feedback_json)(void *be, size_t limit, ch_buf *b, ch_error *err);
    /* Rows in time order, oldest first (ties in the order stored); 'fn'
     * returning non-zero ends the scan with CH_OK. One read snapshot, and
     * never a row twice (a busy store after the first row is an error,
     * not a retry). */
    ch_err (*predictions_scan)(void *be, const ch__prediction_query *q, ch_prediction_row_fn fn,
                               void *ctx, ch_error *err);
    ch_err (*predictions_count)(void *be, const ch__prediction_query *q, int64_t *n, ch_error *err);

    /* Monitoring results; 'kind' has been checked. */
    ch_err (*monitor_put)(void *be, const char *kind, int64_t version, int64_t since_ms,
                          int64_t until_ms, int64_t predictions, const char *json, ch_error *err);
    ch_err (*monitor_list)(void *be, const char *kind, size_t limit, ch_buf *b, ch_error *err);

    /* Jobs and rollouts (registry.h). */
    ch_err (*job_add)(void *be, const ch__job_change *j, int64_t *id, ch_error *err);
    ch_err (*job_update)(void *be, int64_t id, const ch__job_change *j, ch_error *err);
    ch_err (*job_cancel)(void *be, int64_t id, const ch__job_change *j, int *status, ch_error *err);
    ch_err (*job_cancel_requested)(void *be, int64_t id, int *yes, ch_error *err);
    /* Claims the oldest queued job of j->kind for j->owner (may be NULL). */
    ch_err (*job_claim)(void *be, const ch__job_change *j, int64_t *id, ch_error *err);
    /* Refreshes the heartbeat of job 'id' if it is running. */
    ch_err (*job_heartbeat)(void *be, int64_t id, ch_error *err);
    ch_err (*jobs_interrupt)(void *be, const ch__job_change *j, int64_t *n, ch_error *err);
    ch_err (*jobs_json)(void *be, int64_t id, size_t limit, ch_buf *b, ch_error *err);
    ch_err (*rollout_start)(void *be, const ch__rollout_change *c, int64_t *id, ch_error *err);
    ch_err (*rollout_move)(void *be, int64_t id, const ch__rollout_change *c, ch_error *err);
    ch_err (*rollout_get)(void *be, int64_t id, ch_rollout *out, int *found, ch_error *err);
    ch_err (*rollouts_json)(void *be, int64_t id, size_t limit, ch_buf *b, ch_error *err);
} ch__registry_ops;

/* The SQLite back end (registry_sqlite.c). */
extern const ch__registry_ops ch__registry_sqlite_ops;

/* The PostgreSQL back end (registry_pg.c). */
extern const ch__registry_ops ch__registry_pg_ops;

/* ---- helpers shared by the back ends (defined in registry.c) ---------- */

/* Writes the current UTC time as "YYYY-MM-DDTHH:MM:SS.mmmZ" into 'out'.
 * Strings in this layout sort in time order. */
void ch__registry_now(char out[CH__REGISTRY_TS_LEN]);

/* The current UTC time in unix milliseconds, and the timestamp text of
 * any such time. */
int64_t ch__registry_now_ms(void);
void ch__registry_fmt_time(int64_t unix_ms, char out[CH__REGISTRY_TS_LEN]);

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

/* Computes the chain hash of audit entry 'e' that follows an entry whose
 * hash is 'prev' (64 hex digits; CH__AUDIT_GENESIS for the first):
 * SHA-256 of 'prev' followed by the canonical text of 'e', written as 64
 * lowercase hex digits into 'out'. The canonical text is the line
 * "churn-audit-v1", then one line per field in the order of
 * ch__audit_entry: "name=~" for NULL, else "name=<byte length>:<bytes>".
 * Every back end must hash exactly this. Errors: CH_ENOMEM. */
ch_err ch__audit_hash(const char *prev, const ch__audit_entry *e, char out[65], ch_error *err);

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
