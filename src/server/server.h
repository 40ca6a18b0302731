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

/* Drops cached API-key lookups (after a revocation through the API). */
void server_forget_keys(void);

/* Appends an audit entry for a state change made through the API. */
void server_audit(app *a, const call *c, const char *action, const char *target,
                  const char *details_json);
/* Writes one log line to stderr: "churn serve: <message>". */
void server_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Unix time in seconds / milliseconds. */
int64_t unix_now(void);
int64_t unix_now_ms(void);

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
