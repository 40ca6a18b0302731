/*
 * server.h -- the prediction service's shared state and the pieces that
 * handlers use: the served model, authentication, replies, metrics.
 *
 * Layout: http.c speaks HTTP (libmicrohttpd), routes.c holds the route
 * table and dispatch, server.c owns the state and its lifecycle (model
 * loading and hot swap, reload watcher, prediction log, signals),
 * metrics.c the counters, and h_<area>.c the handlers, which validate,
 * call the library and render JSON.
 */
#ifndef CH_SERVER_H
#define CH_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "ch/auth.h"
#include "ch/bundle.h"
#include "ch/config.h"
#include "ch/explain.h"
#include "ch/predlog.h"
#include "ch/registry.h"
#include "ch/watch.h"
#include "http.h"
#include "metrics.h"

/* A model being served: immutable, shared by requests, freed when the
 * last reference goes. */
typedef struct served {
    atomic_int refs;
    ch_bundle *bundle;
    ch_explainer *ex;
    int64_t version; /* registry version, 0 when served from a file */
    char alias[16];  /* "champion", or "" for a file */
    char family[16];
    char checksum[65];
    double threshold;    /* served threshold */
    double medium_from;  /* share of the threshold where "medium" starts */
    double load_seconds; /* time to load and compile */
} served;

/* Per-principal token buckets. */
typedef struct rate_limiter rate_limiter;

/* ---- the monitoring scheduler (jobs.c) -------------------------------------- */

#define MONITOR_MAX_FEATURES 256 /* columns exported as drift gauges */
#define MONITOR_MAX_VERSIONS 16  /* versions exported as performance gauges */

typedef struct feature_gauge {
    char name[64];
    double psi;
    int alert;
} feature_gauge;

/* The rollout controller's and the shadow thread's state (rollout.c). */
typedef struct rollout_live {
    pthread_t thr, shadow_thr;
    int started, shadow_started;
    int eval_s;      /* rollout.eval_s */
    atomic_int wake; /* 1: evaluate now (a rollout route changed it) */
    /* Guarded by app.model_mu: what the request path reads. */
    served *cand;    /* the candidate, NULL when no rollout runs */
    int64_t id;      /* the rollout */
    int route_state; /* CH_ROLLOUT_SHADOW or _CANARY (a paused one routes as before), -1 */
    double percent;  /* of customers the candidate answers */
    /* The shadow queue, guarded by 'qmu'. */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    ch_prediction_rec *q;
    size_t qhead, qn;
    int qstop;
    /* The controller's own. */
    int64_t seen_id, seen_started;
    int seen_state;
    size_t seen_step;
    arm_counts base[M_N_ARMS]; /* counters when the step began */
    double last_champion_p99, last_champion_error_rate;
    /* What this server's controller did (churn_rollout_transitions_total). */
    atomic_uint_fast64_t n_steps, n_promoted, n_rolled_back, n_aborted;
} rollout_live;

/* The retraining worker (retrain_job.c). */
typedef struct retrain_live {
    pthread_t thr;
    int started;
    atomic_int wake;     /* 1: a job was queued here: claim it now */
    char last_skip[512]; /* why monitoring's last signal queued no job (jobs thread only) */
    atomic_int running;  /* 1 while a job runs here */
    atomic_uint_fast64_t ended[6];            /* jobs this server ran, by CH_JOB_* end status */
    atomic_uint_fast64_t registered, refused; /* of the succeeded: challenger or gate refusal */
} retrain_live;

/* Who the server's own changes are audited as. */
#define ACTOR_SERVE "churn serve"

/* The scheduler's state; everything below 'mu' is guarded by it. */
typedef struct monitor_jobs {
    pthread_t thr;
    int started;
    atomic_int trigger; /* 1: run now (POST /v1/monitor/run) */
    atomic_int running; /* 1 while a job runs */
    int interval_s;     /* monitor.interval_s */
    int first;          /* the first run is due first_delay_s after start */
    int first_delay_s;
    ch_watch_job job; /* from the monitor.* settings, read once */
    pthread_mutex_t mu;
    char *doc[3];        /* latest drift, decay, estimate documents */
    int64_t computed_ms; /* when they were computed */
    int64_t version;     /* the model they measure */
    size_t rows;         /* predictions read */
    double seconds;      /* the job's duration */
    feature_gauge feat[MONITOR_MAX_FEATURES];
    size_t n_feat;
    double score_psi;
    int score_alert;
    ch_watch_version versions[MONITOR_MAX_VERSIONS];
    size_t n_versions;
    size_t min_labels;
    uint64_t runs_ok, runs_failed;
    double last_success_s; /* unix seconds, 0 when none */
    char last_error[256];
} monitor_jobs;

/* Settings of a running server, read once from the configuration. */
typedef struct server_opts {
    char host[64];
    int port;
    int threads;
    size_t max_body_bytes;
    size_t batch_max_rows;
    int k_default;
    double rate_per_s; /* per principal; 0 = unlimited */
    double rate_burst;
    char cors_origin[256]; /* "" = no CORS headers */
    int log_block;         /* prediction log: 1 = block when full */
    size_t log_queue;
    int reload_ms;
    int drain_s;
    int64_t token_ttl_s;
} server_opts;

typedef struct app {
    const ch_config *cfg;
    server_opts o;
    http_server *http;
    char model_ref[4096]; /* what to serve: "champion" (followed) or a bundle path */
    int follow;           /* 1: follow the registry's champion */
    pthread_mutex_t model_mu;
    served *model;                 /* guarded by model_mu; NULL until one loads */
    const ch_schema *schema_fixed; /* first model's schema hash must stay */
    char schema_hash[65];
    pthread_mutex_t reg_mu; /* guards 'reg' */
    ch_registry *reg;       /* for request-side store calls */
    ch_jwt *jwt;
    unsigned char pseudo_key[32];
    ch_predlog *plog;
    ch_registry *plog_reg; /* the prediction log writer's own connection */
    metrics m;
    int access_fd;          /* JSON-lines access log, -1 = none */
    rate_limiter *rl;       /* per principal, NULL = unlimited */
    rate_limiter *rl_login; /* token requests per client address */
    pthread_t reload_thr;
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    int reload_started;
    atomic_int stopping;
    atomic_uint_fast64_t pred_seq;
    uint64_t pred_key;
    monitor_jobs jobs;
    rollout_live roll;
    retrain_live retrain;
} app;

/* One call of a route handler. */
typedef struct call {
    app *a;
    http_req *rq;
    http_resp *rs;
    ch_principal who; /* empty name and CH_ROLE_NONE on public routes */
    char param[64];   /* the {version} path segment, when the route has one */
    int route;        /* index in the route table */
} call;

/* ---- served model ---------------------------------------------------------- */

/* Takes a reference to the model being served, or NULL when none. */
served *served_acquire(app *a);
void served_release(served *m);
/* The explain workspace of the calling thread for 'm' (made on first use). */
ch_explain_ws *served_ws(served *m);
/* Loads the bundle at 'path' into a new served model (one reference,
 * for the caller), refusing a schema other than the one served. Errors:
 * CH_EMODEL, CH_ESCHEMA, CH_EIO, CH_ENOMEM. */
ch_err served_load(app *a, const char *path, int64_t version, const char *alias, served **out,
                   ch_error *err);
/* Loads the bundle at 'path' and swaps it in. On failure the old model
 * keeps serving; the error is logged and counted. */
ch_err server_load_model(app *a, const char *path, int64_t version, const char *alias,
                         ch_error *err);

/* ---- replies ------------------------------------------------------------- */

/* A JSON error body {error, code, message, field}. 'field' may be NULL. */
void reply_error(call *c, int status, const char *error, const char *message, const char *field);
/* The same for a library error: status and error name from the code. */
void reply_err(call *c, ch_err rc, const ch_error *err, const char *field);
/* 200 with what 'fn' writes from the store (under the store lock), or the
 * error it returns. */
void reply_store_json(call *c, ch_err (*fn)(ch_registry *, ch_buf *, ch_error *));
/* A store listing: entry 'id', or the latest 'limit' (0: all) of them. */
typedef ch_err (*store_list_fn)(ch_registry *r, int64_t id, size_t limit, ch_buf *b, ch_error *err);
/* 'status' with what 'fn' writes (under the store lock), or its error. */
void reply_store_list(call *c, int status, store_list_fn fn, int64_t id, size_t limit);
/* The request's JSON object body in '*doc' (NULL when the body is empty);
 * 0 after replying 400 for anything else. */
int body_object(call *c, ch_json **doc);
/* The path's {id}, a positive number; 0 after replying 404 "no such
 * <what>". */
int64_t param_id(call *c, const char *what);
/* ?limit=N within [1, max] ('def' when absent); 0 after replying 400. */
int query_limit(call *c, size_t def, size_t max, size_t *out);
/* The HTTP status of a library error. */
int status_of(ch_err rc);

/* ---- helpers --------------------------------------------------------------- */

/* Fast writers for the hot path (printf's %g costs more than a whole
 * prediction): an unsigned integer; 'v' rounded to 'dec' decimals (at most
 * 9) without trailing zeros, or null when not finite (values beyond 1e15
 * fall back to the shortest round-trip form); 16 lowercase hex digits. */
void buf_u64(ch_buf *b, uint64_t v);
void buf_fixed(ch_buf *b, double v, int dec);
void hex64(char out[16], uint64_t v);

/* The model that answered, as predictions and GET /v1/schema name it:
 * {"version": N, "alias": "champion", "family": "logreg"}; version and
 * alias null for a served file. */
void buf_model(ch_buf *b, const served *m);

/* Drops cached API-key lookups (after a revocation through the API). */
void server_forget_keys(void);

/* Appends an audit entry for a state change made through the API. */
void server_audit(app *a, const call *c, const char *action, const char *target,
                  const char *details_json);
/* Writes one log line to stderr: "churn serve: <message>". */
void server_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Moves the calling thread below the request threads (SCHED_IDLE, else
 * nice 19), for work off the request path; 'what' names it in the log
 * when neither is possible (jobs.c). */
void background_thread(const char *what);
/* Names the calling thread (at most 15 characters), for top -H and ps. */
void thread_name(const char *name);
/* Unix time in seconds / milliseconds. */
int64_t unix_now(void);
int64_t unix_now_ms(void);

/* ---- monitoring jobs (jobs.c) ------------------------------------------------ */

/* Reads the monitor.* settings and starts the scheduler thread (not when
 * monitor.interval_s is 0 or the server serves a file). Errors: CH_EINVAL
 * (a bad setting), CH_EIO (no thread). */
ch_err jobs_start(app *a, ch_error *err);
/* Joins the scheduler (after 'stopping' is set and stop_cv broadcast)
 * and frees its results. */
void jobs_stop(app *a);
/* Asks for a run now; 0 when the scheduler is not running. */
int jobs_trigger(app *a);
/* Appends the latest result of 'kind' ("drift", "decay", "estimate") as
 * {"kind", "computed_at", "model_version", "window", "predictions",
 * "seconds", "result"}; returns 0 (nothing appended) when there is none. */
int jobs_latest(app *a, const char *kind, ch_buf *b);
/* Appends the monitoring gauges in Prometheus text format. */
void jobs_metrics(app *a, ch_buf *b);
/* The rollout's gauges and this server's transitions (rollout.c). */
void rollout_metrics(app *a, ch_buf *b);
/* This server's retraining jobs (retrain_job.c). */
void retrain_metrics(app *a, ch_buf *b);

/* ---- rollouts (rollout.c) ---------------------------------------------------- */

/* Starts the rollout controller and the shadow thread (not when a file is
 * served). Errors: CH_EIO, CH_ENOMEM. */
ch_err rollout_start_threads(app *a, ch_error *err);
/* Joins both (after 'stopping' is set and stop_cv broadcast); the shadow
 * queue is drained into the prediction log first. */
void rollout_stop_threads(app *a);
/* Asks the controller to look at the store now. */
void rollout_wake(app *a);
/* Who answers a record: a reference to the model (the caller releases
 * it), '*arm' (CH_ARM_*), and in shadow mode a reference to the shadow
 * candidate in '*shadow' (else NULL). NULL when no model is loaded. */
served *rollout_pick(app *a, const char *pseudonym, const char *prediction_id, int *arm,
                     served **shadow);
/* Hands 'rec' to the shadow thread, which logs it with the candidate's
 * score; 0 when it cannot take it (queue full, no inputs): the caller
 * logs it itself. */
int rollout_shadow_offer(app *a, const ch_prediction_rec *rec);

/* ---- retraining (retrain_job.c) ---------------------------------------------- */

/* Marks jobs left over from a stopped server interrupted and starts the
 * worker (not when a file is served). Errors: CH_EDB, CH_EIO. */
ch_err retrain_start(app *a, ch_error *err);
/* Joins the worker (after 'stopping' is set and stop_cv broadcast). */
void retrain_stop(app *a);
/* Queues a retraining job for 'trigger' ("decay", "alertmanager:...",
 * "manual") by 'actor' on store handle 'reg' (the caller's, with any lock
 * it needs held). With 'respect_cooldown' (automatic triggers), nothing
 * is queued while a rollout runs or within retrain.cooldown_s of the last
 * job. '*id' gets the job, or 0 with the reason in 'why' (also when a
 * job is already queued or running). Errors: CH_EDB, CH_ENOMEM. */
ch_err retrain_request(app *a, ch_registry *reg, const char *trigger, const char *actor,
                       int respect_cooldown, int64_t *id, char *why, size_t why_cap, ch_error *err);

/* ---- handlers (h_*.c) ------------------------------------------------------ */

void h_predict_one(call *c);
void h_predict_batch(call *c);
void h_feedback_add(call *c);
void h_models_list(call *c);
void h_models_show(call *c);
void h_models_promote(call *c);
void h_models_rollback(call *c);
void h_auth_token(call *c);
void h_users_list(call *c);
void h_users_add(call *c);
void h_keys_list(call *c);
void h_keys_create(call *c);
void h_keys_revoke(call *c);
void h_audit_list(call *c);
void h_ops_healthz(call *c);
void h_ops_readyz(call *c);
void h_ops_metrics(call *c);
void h_ops_openapi(call *c);
void h_monitor_get(call *c);
void h_monitor_run(call *c);
void h_rollouts_list(call *c);
void h_rollouts_start(call *c);
void h_rollouts_show(call *c);
void h_rollouts_pause(call *c);
void h_rollouts_resume(call *c);
void h_rollouts_abort(call *c);
void h_jobs_list(call *c);
void h_jobs_show(call *c);
void h_jobs_start(call *c);
void h_jobs_cancel(call *c);
void h_hooks_alertmanager(call *c);
void h_ui_index(call *c);
void h_ui_file(call *c);
void h_schema_get(call *c);

/* ---- the web UI's static files (h_ui.c) ------------------------------------ */

/* One file of web/, compiled in by scripts/embed-web (build/gen/web_assets.c). */
typedef struct ui_asset {
    const char *name; /* "app.js": the path segment after /ui/ */
    const char *type; /* Content-Type */
    const char *data; /* the bytes (NUL-terminated, 'len' without the NUL) */
    size_t len;
    const char *etag; /* quoted prefix of the SHA-256 of the bytes */
} ui_asset;

extern const ui_asset ui_assets[];
extern const size_t n_ui_assets;

/* ---- routes (routes.c) ----------------------------------------------------- */

#define ROUTE_PUBLIC (-1)

typedef struct route {
    const char *method;
    const char *path; /* "/v1/models/{version}": one {param} segment at most */
    void (*fn)(call *c);
    int perm; /* a ch_perm, or ROUTE_PUBLIC */
} route;

extern const route routes[];
extern const size_t n_routes;

/* Finds the route for 'method' and 'path'. Returns its index, or -1 with
 * '*path_known' set when another method serves the path (405). Copies a
 * {param} segment into 'param'. */
int route_find(const char *method, const char *path, char param[64], int *path_known);
/* "GET, POST" for a path, for the Allow header. */
void route_allow(const char *path, char *out, size_t cap);

/* The handler the HTTP layer calls. */
void server_handle(void *app, http_req *rq, http_resp *rs);
void server_done(void *app, const http_req *rq, int status, size_t resp_bytes);

/* Runs the service on 'cfg' until SIGTERM or SIGINT. 'model_ref' is
 * "champion" (followed as it changes) or a bundle path (served as is).
 * Returns a CLI exit code. */
int server_run(const ch_config *cfg, const char *model_ref);

#endif /* CH_SERVER_H */
