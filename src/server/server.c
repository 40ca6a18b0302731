/*
 * server.c -- `churn serve`: state, lifecycle, authentication and dispatch
 * of the prediction service.
 *
 * The served model is a refcounted, immutable `served`. A request takes a
 * reference at its start and drops it at its end, so a swap (promotion,
 * rollback, from this process or another) never changes the model under
 * a request: the new one is loaded and compiled off the request path by
 * the reload watcher, then the pointer is replaced under a mutex, and the
 * old model is freed when its last request finishes. A bundle that fails
 * to load, or whose schema differs from the one being served, is refused
 * and logged; the old model keeps serving.
 *
 * Each worker thread keeps its explain workspace in thread-local storage,
 * tied to the model it was made for (and holding a reference to it), so
 * the request path allocates no scratch.
 *
 * Shutdown (SIGTERM or SIGINT): stop accepting connections, let requests
 * in flight finish (at most serve.drain_s), stop the pool, then drain the
 * prediction log into the store.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/hash.h"

/* ---- small helpers --------------------------------------------------------- */

void server_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "churn serve: %s\n", line);
}

int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

int64_t unix_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int status_of(ch_err rc)
{
    switch (rc) {
    case CH_OK:
        return 200;
    case CH_EINVAL:
    case CH_EFORMAT:
        return 400;
    case CH_EAUTH:
        return 401;
    case CH_EDENIED:
        return 403;
    case CH_ENOTFOUND:
        return 404;
    case CH_EDATA:
    case CH_ECANCELLED: /* a job stopped on request: the state, not the request, is at odds */
        return 409;
    case CH_ELIMIT:
        return 413;
    case CH_ESCHEMA:
    case CH_ERANGE:
        return 422;
    case CH_ENOMEM:
    case CH_EBUSY:
    case CH_EDB:
        return 503;
    case CH_EIO:
    case CH_EMODEL:
        return 500;
    }
    return 500;
}

static const char *error_name(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 409:
        return "conflict";
    case 413:
        return "payload_too_large";
    case 415:
        return "unsupported_media_type";
    case 422:
        return "unprocessable";
    case 429:
        return "rate_limited";
    case 503:
        return "unavailable";
    default:
        return "internal";
    }
}

void reply_error(call *c, int status, const char *error, const char *message, const char *field)
{
    ch_buf *b = &c->rs->body;
    ch_buf_clear(b);
    c->rs->status = status;
    c->rs->content_type = NULL;
    ch_buf_puts(b, "{\"error\":");
    ch_buf_json_str(b, error, strlen(error));
    ch_buf_printf(b, ",\"code\":%d,\"message\":", status);
    ch_buf_json_str(b, message, strlen(message));
    ch_buf_puts(b, ",\"field\":");
    if (field != NULL && field[0] != '\0')
        ch_buf_json_str(b, field, strlen(field));
    else
        ch_buf_puts(b, "null");
    ch_buf_putc(b, '}');
}

void reply_err(call *c, ch_err rc, const ch_error *err, const char *field)
{
    int status = status_of(rc);
    const char *msg = err != NULL && err->msg[0] != '\0' ? err->msg : ch_strerror(rc);
    reply_error(c, status, error_name(status), msg, field);
}

void buf_u64(ch_buf *b, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    ch_buf_append(b, tmp + sizeof tmp - n, (size_t)n);
}

void buf_model(ch_buf *b, const served *m)
{
    ch_buf_puts(b, "{\"version\":");
    if (m->version > 0)
        buf_u64(b, (uint64_t)m->version);
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ",\"alias\":");
    if (m->alias[0] != '\0')
        ch_buf_json_str(b, m->alias, strlen(m->alias));
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ",\"family\":");
    ch_buf_json_str(b, m->family, strlen(m->family));
    ch_buf_putc(b, '}');
}

void buf_fixed(ch_buf *b, double v, int dec)
{
    static const uint64_t pow10[10] = {1,      10,      100,      1000,      10000,
                                       100000, 1000000, 10000000, 100000000, 1000000000};
    uint64_t scaled, ip, fp;
    char frac[10];
    int n;
    if (!isfinite(v)) {
        ch_buf_puts(b, "null");
        return;
    }
    if (fabs(v) >= 1e15 || dec < 0 || dec > 9) {
        ch_buf_json_num(b, v);
        return;
    }
    scaled = (uint64_t)llround(fabs(v) * (double)pow10[dec]);
    ip = scaled / pow10[dec];
    fp = scaled % pow10[dec];
    if (v < 0 && scaled > 0)
        ch_buf_putc(b, '-');
    buf_u64(b, ip);
    if (fp == 0)
        return;
    for (n = dec; n > 0; n--) {
        frac[n - 1] = (char)('0' + fp % 10);
        fp /= 10;
    }
    n = dec;
    while (n > 1 && frac[n - 1] == '0')
        n--;
    ch_buf_putc(b, '.');
    ch_buf_append(b, frac, (size_t)n);
}

void hex64(char out[16], uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 15];
        v >>= 4;
    }
}

void reply_store_json(call *c, ch_err (*fn)(ch_registry *, ch_buf *, ch_error *))
{
    ch_error err = {0};
    ch_err rc;
    pthread_mutex_lock(&c->a->reg_mu);
    rc = fn(c->a->reg, &c->rs->body, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK)
        reply_err(c, rc, &err, NULL);
    else
        c->rs->status = 200;
}

void reply_store_list(call *c, int status, store_list_fn fn, int64_t id, size_t limit)
{
    ch_error err = {0};
    ch_buf tmp;
    ch_err rc;
    /* Into a buffer of its own: a failure after part of the list was
     * written must not leave that part in the reply. */
    ch_buf_init(&tmp, (size_t)64 << 20);
    pthread_mutex_lock(&c->a->reg_mu);
    rc = fn(c->a->reg, id, limit, &tmp, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK) {
        reply_err(c, rc, &err, NULL);
    } else {
        c->rs->status = status;
        ch_buf_append(&c->rs->body, tmp.data, tmp.len);
    }
    ch_buf_reset(&tmp);
}

int body_object(call *c, ch_json **doc)
{
    ch_error err = {0};
    *doc = NULL;
    if (c->rq->body_len == 0)
        return 1;
    if (ch_json_parse(c->rq->body, c->rq->body_len, doc, &err) != CH_OK ||
        ch_json_typeof(*doc) != CH_JSON_OBJECT) {
        reply_error(c, 400, "bad_request",
                    err.msg[0] != '\0' ? err.msg : "the body must be a JSON object", NULL);
        ch_json_free(*doc);
        *doc = NULL;
        return 0;
    }
    return 1;
}

int64_t param_id(call *c, const char *what)
{
    char *end = NULL;
    long long v = strtoll(c->param, &end, 10);
    if (end == c->param || *end != '\0' || v <= 0) {
        char msg[64];
        snprintf(msg, sizeof msg, "no such %s", what);
        reply_error(c, 404, "not_found", msg, NULL);
        return 0;
    }
    return (int64_t)v;
}

int query_limit(call *c, size_t def, size_t max, size_t *out)
{
    const char *q = http_query(c->rq, "limit");
    char *end = NULL;
    long long v;
    *out = def;
    if (q == NULL)
        return 1;
    v = strtoll(q, &end, 10);
    if (end == q || *end != '\0' || v < 1 || (unsigned long long)v > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "'limit' must be a whole number from 1 to %zu", max);
        reply_error(c, 400, "bad_request", msg, "limit");
        return 0;
    }
    *out = (size_t)v;
    return 1;
}

/* ---- served models ------------------------------------------------------- */

static void served_free(served *m)
{
    if (m == NULL)
        return;
    ch_explainer_free(m->ex);
    ch_bundle_free(m->bundle);
    ch_free(m);
}

served *served_acquire(app *a)
{
    served *m;
    pthread_mutex_lock(&a->model_mu);
    m = a->model;
    if (m != NULL)
        atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&a->model_mu);
    return m;
}

void served_release(served *m)
{
    if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 1)
        served_free(m);
}

/* The calling thread's workspaces and the models they belong to: two,
 * so that a canary rollout alternating the champion and the candidate
 * from request to request reuses both. The key's destructor runs when a
 * pool thread exits. */
#define WS_SLOTS 2

typedef struct tl_ws {
    served *m[WS_SLOTS];
    ch_explain_ws *ws[WS_SLOTS];
    unsigned next; /* the slot to replace next */
} tl_ws;
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void tl_ws_free(void *p)
{
    tl_ws *t = p;
    if (t == NULL)
        return;
    for (int k = 0; k < WS_SLOTS; k++) {
        ch_explain_ws_free(t->ws[k]);
        served_release(t->m[k]);
    }
    ch_free(t);
}

static void ws_key_make(void)
{
    pthread_key_create(&ws_key, tl_ws_free);
}

ch_explain_ws *served_ws(served *m)
{
    tl_ws *t;
    ch_explain_ws *ws = NULL;
    ch_error err = {0};
    unsigned k;
    pthread_once(&ws_once, ws_key_make);
    t = pthread_getspecific(ws_key);
    if (t == NULL) {
        t = ch_calloc(1, sizeof *t);
        if (t == NULL)
            return NULL;
        pthread_setspecific(ws_key, t);
    }
    for (k = 0; k < WS_SLOTS; k++)
        if (t->m[k] == m)
            return t->ws[k];
    if (ch_explain_ws_new(m->ex, &ws, &err) != CH_OK)
        return NULL;
    k = t->next;
    t->next = (k + 1) % WS_SLOTS;
    ch_explain_ws_free(t->ws[k]);
    served_release(t->m[k]);
    atomic_fetch_add(&m->refs, 1);
    t->m[k] = m;
    t->ws[k] = ws;
    return ws;
}

ch_err served_load(app *a, const char *path, int64_t version, const char *alias, served **out,
                   ch_error *err)
{
    double t0 = http_now();
    served *m = ch_calloc(1, sizeof *m);
    const ch_json *fam;
    ch_err rc;

    if (m == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    rc = ch_bundle_load(path, NULL, &m->bundle, err);
    if (rc == CH_OK)
        rc = ch_explainer_new(m->bundle, &m->ex, err);
    pthread_mutex_lock(&a->model_mu);
    if (rc == CH_OK && a->schema_hash[0] != '\0' &&
        strcmp(a->schema_hash, ch_schema_hash(ch_bundle_schema(m->bundle))) != 0)
        rc = ch_error_set(err, CH_ESCHEMA,
                          "its schema differs from the one being served (clients would send "
                          "the wrong fields)");
    pthread_mutex_unlock(&a->model_mu);
    if (rc != CH_OK) {
        ch_error_prefix(err, "model %s", path);
        served_free(m);
        atomic_fetch_add(&a->m.model_loads_failed, 1);
        return rc == CH_EFORMAT ? CH_EMODEL : rc;
    }
    atomic_init(&m->refs, 1);
    m->version = version;
    snprintf(m->alias, sizeof m->alias, "%s", alias != NULL ? alias : "");
    fam = ch_json_get(ch_bundle_section(m->bundle, "model"), "family");
    snprintf(m->family, sizeof m->family, "%s",
             fam != NULL && ch_json_str(fam, NULL) != NULL ? ch_json_str(fam, NULL) : "unknown");
    snprintf(m->checksum, sizeof m->checksum, "%s", ch_bundle_checksum(m->bundle));
    m->threshold = ch_bundle_threshold(m->bundle);
    m->medium_from = ch_config_num(a->cfg, "score.medium_from");
    m->load_seconds = http_now() - t0;
    atomic_fetch_add(&a->m.model_loads_ok, 1);
    *out = m;
    return CH_OK;
}

ch_err server_load_model(app *a, const char *path, int64_t version, const char *alias,
                         ch_error *err)
{
    served *m = NULL;
    served *old;
    ch_err rc = served_load(a, path, version, alias, &m, err);
    if (rc != CH_OK)
        return rc;
    pthread_mutex_lock(&a->model_mu);
    snprintf(a->schema_hash, sizeof a->schema_hash, "%s",
             ch_schema_hash(ch_bundle_schema(m->bundle)));
    old = a->model;
    a->model = m;
    pthread_mutex_unlock(&a->model_mu);
    if (old != NULL)
        atomic_fetch_add(&a->m.model_swaps, 1);
    served_release(old);
    {
        char what[96];
        if (version > 0)
            snprintf(what, sizeof what, "v%lld (%s)", (long long)version, m->alias);
        else
            snprintf(what, sizeof what, "%.80s", path);
        server_log("serving model %s: %s, sha256 %.12s..., loaded in %.1f ms", what, m->family,
                   m->checksum, m->load_seconds * 1e3);
    }
    return CH_OK;
}

/* ---- rate limits: a token bucket per principal ------------------------------ */

#define RL_SLOTS   4096 /* principals remembered; the stalest is reused */
#define RL_STRIPES 16
#define RL_PROBE   8

typedef struct rl_slot {
    char name[72];
    double tokens;
    double last; /* monotonic seconds */
} rl_slot;

struct rate_limiter {
    double rate, burst;
    pthread_mutex_t mu[RL_STRIPES];
    rl_slot slot[RL_SLOTS];
};

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Whether 'name' may make one more request now; when not, '*retry_s' is
 * how long until it may. */
static int rl_allow(rate_limiter *rl, const char *name, double now, double *retry_s)
{
    uint32_t h = fnv1a(name);
    uint32_t base = h % RL_SLOTS;
    pthread_mutex_t *mu = &rl->mu[h % RL_STRIPES];
    rl_slot *s = NULL;
    rl_slot *stalest = NULL;
    int ok;
    pthread_mutex_lock(mu);
    for (uint32_t k = 0; k < RL_PROBE; k++) {
        rl_slot *c = &rl->slot[(base + k) % RL_SLOTS];
        if (strcmp(c->name, name) == 0) {
            s = c;
            break;
        }
        if (stalest == NULL || c->last < stalest->last)
            stalest = c;
    }
    if (s == NULL) {
        s = stalest;
        snprintf(s->name, sizeof s->name, "%s", name);
        s->tokens = rl->burst;
        s->last = now;
    }
    s->tokens = fmin(rl->burst, s->tokens + (now - s->last) * rl->rate);
    s->last = now;
    ok = s->tokens >= 1;
    if (ok)
        s->tokens -= 1;
    else
        *retry_s = (1 - s->tokens) / rl->rate;
    pthread_mutex_unlock(mu);
    return ok;
}

/* ---- authentication ------------------------------------------------------- */

#define KEY_CACHE   256
#define KEY_CACHE_S 10.0 /* a revocation from another process applies within this */

typedef struct key_entry {
    char sha[65];
    ch_role role;
    double until;
} key_entry;
static key_entry key_cache[KEY_CACHE];
static pthread_mutex_t key_mu = PTHREAD_MUTEX_INITIALIZER;

void server_forget_keys(void)
{
    pthread_mutex_lock(&key_mu);
    memset(key_cache, 0, sizeof key_cache);
    pthread_mutex_unlock(&key_mu);
}

static ch_err auth_key(app *a, const char *key, size_t len, ch_principal *who, ch_error *err)
{
    char id[CH_API_KEY_ID_LEN + 1];
    char sha[65];
    double now = http_now();
    key_entry *e;
    ch_registry_key kinfo;
    ch_err rc = ch_api_key_parse(key, len, id, sha, err);
    if (rc != CH_OK)
        return rc;
    e = &key_cache[fnv1a(sha) % KEY_CACHE];
    pthread_mutex_lock(&key_mu);
    if (strcmp(e->sha, sha) == 0 && e->until > now) {
        who->role = e->role;
        pthread_mutex_unlock(&key_mu);
        goto ok;
    }
    pthread_mutex_unlock(&key_mu);
    pthread_mutex_lock(&a->reg_mu);
    rc = ch_registry_key_lookup(a->reg, id, sha, &kinfo, err);
    pthread_mutex_unlock(&a->reg_mu);
    if (rc == CH_ENOTFOUND)
        return ch_error_set(err, CH_EAUTH, "unknown API key");
    if (rc != CH_OK)
        return rc;
    if (kinfo.revoked)
        return ch_error_set(err, CH_EAUTH, "API key %s was revoked", id);
    who->role = kinfo.role;
    pthread_mutex_lock(&key_mu);
    snprintf(e->sha, sizeof e->sha, "%s", sha);
    e->role = kinfo.role;
    e->until = now + KEY_CACHE_S;
    pthread_mutex_unlock(&key_mu);
ok:
    snprintf(who->name, sizeof who->name, "key:%s", id);
    who->expires = 0;
    return CH_OK;
}

static ch_err authenticate(app *a, const http_req *rq, ch_principal *who, ch_error *err)
{
    const char *h = http_header(rq, "Authorization");
    const char *k = http_header(rq, "X-API-Key");
    memset(who, 0, sizeof *who);
    if (h != NULL && strncmp(h, "Bearer ", 7) == 0)
        return ch_jwt_verify(a->jwt, h + 7, strlen(h + 7), unix_now(), who, err);
    if (h != NULL && strncmp(h, "ApiKey ", 7) == 0)
        return auth_key(a, h + 7, strlen(h + 7), who, err);
    if (k != NULL)
        return auth_key(a, k, strlen(k), who, err);
    if (h != NULL)
        return ch_error_set(err, CH_EAUTH,
                            "unsupported Authorization scheme: use Bearer or "
                            "ApiKey");
    return ch_error_set(err, CH_EAUTH,
                        "credentials required: send 'Authorization: Bearer <token>' "
                        "(POST /v1/auth/token) or 'X-API-Key: <key>'");
}

/* ---- dispatch --------------------------------------------------------------- */

/* CORS: only the one configured origin, and never with credentials (the
 * API takes bearer tokens, not cookies). Returns 1 when the request's
 * Origin is allowed. */
static int cors(call *c)
{
    const char *origin = http_header(c->rq, "Origin");
    if (c->a->o.cors_origin[0] == '\0' || origin == NULL ||
        strcmp(origin, c->a->o.cors_origin) != 0)
        return 0;
    http_resp_header(c->rs, "Access-Control-Allow-Origin", c->a->o.cors_origin);
    http_resp_header(c->rs, "Vary", "Origin");
    return 1;
}

void server_handle(void *ap, http_req *rq, http_resp *rs)
{
    app *a = ap;
    call c;
    int known = 0;
    int idx;
    ch_error err = {0};

    memset(&c, 0, sizeof c);
    c.a = a;
    c.rq = rq;
    c.rs = rs;
    c.route = -1;
    if (strcmp(rq->method, "OPTIONS") == 0) {
        char allow[64];
        route_allow(rq->path, allow, sizeof allow);
        if (!cors(&c) || allow[0] == '\0') {
            reply_error(&c, 403, "forbidden",
                        "cross-origin requests from this origin are not "
                        "allowed",
                        NULL);
            return;
        }
        http_resp_header(rs, "Access-Control-Allow-Methods", allow);
        http_resp_header(rs, "Access-Control-Allow-Headers",
                         "Authorization, Content-Type, X-API-Key");
        http_resp_header(rs, "Access-Control-Max-Age", "600");
        rs->status = 204;
        return;
    }
    idx = route_find(rq->method, rq->path, c.param, &known);
    if (idx < 0) {
        if (known) {
            char allow[64];
            route_allow(rq->path, allow, sizeof allow);
            http_resp_header(rs, "Allow", allow);
            reply_error(&c, 405, "method_not_allowed", "this path does not take that method", NULL);
        } else {
            reply_error(&c, 404, "not_found", "no such route (see /openapi.json)", NULL);
        }
        return;
    }
    c.route = idx;
    rq->app_route = idx;
    cors(&c);
    if (routes[idx].perm != ROUTE_PUBLIC) {
        ch_err rc = authenticate(a, rq, &c.who, &err);
        if (rc != CH_OK) {
            atomic_fetch_add(&a->m.auth_failures, 1);
            http_resp_header(rs, "WWW-Authenticate", "Bearer realm=\"churn\"");
            reply_err(&c, rc, &err, NULL);
            return;
        }
        snprintf(rq->app_user, sizeof rq->app_user, "%s", c.who.name);
        if (!ch_role_allows(c.who.role, (ch_perm)routes[idx].perm)) {
            char msg[160];
            snprintf(msg, sizeof msg, "role '%s' may not %s", ch_role_name(c.who.role),
                     ch_perm_name((ch_perm)routes[idx].perm));
            reply_error(&c, 403, "forbidden", msg, NULL);
            return;
        }
    }
    if (routes[idx].perm != ROUTE_PUBLIC || strcmp(rq->method, "POST") == 0) {
        /* Authenticated routes are limited per principal; the token route
         * per client address and much more tightly (password guessing).
         * Probes and scrapes (public GETs) are not limited. */
        double retry = 0;
        rate_limiter *rl = routes[idx].perm != ROUTE_PUBLIC ? a->rl : a->rl_login;
        const char *who = c.who.name[0] != '\0' ? c.who.name : rq->remote;
        if (rl != NULL && !rl_allow(rl, who, http_now(), &retry)) {
            char ra[24];
            snprintf(ra, sizeof ra, "%d", (int)ceil(retry));
            http_resp_header(rs, "Retry-After", ra);
            atomic_fetch_add(&a->m.rate_limited, 1);
            reply_error(&c, 429, "rate_limited", "too many requests; retry later", NULL);
            return;
        }
    }
    routes[idx].fn(&c);
}

/* "2026-11-24T09:20:01.123Z". The date part changes once a second, so it
 * is formatted once per second per thread. */
static void json_time(char out[32], int64_t ms)
{
    static __thread int64_t cached_s = -1;
    static __thread char cached[24];
    int64_t sec = ms / 1000;
    int milli = (int)(ms % 1000);
    if (sec != cached_s) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_s = sec;
    }
    memcpy(out, cached, 20);
    out[20] = (char)('0' + milli / 100);
    out[21] = (char)('0' + milli / 10 % 10);
    out[22] = (char)('0' + milli % 10);
    out[23] = 'Z';
    out[24] = '\0';
}

void server_done(void *ap, const http_req *rq, int status, size_t resp_bytes)
{
    app *a = ap;
    double secs = http_now() - rq->t_start;
    metrics_request(&a->m, rq->app_route, status, secs);
    if (a->access_fd >= 0) {
        char line[1024];
        char ts[32];
        ch_buf b;
        ch_buf_init(&b, sizeof line * 2);
        json_time(ts, unix_now_ms());
        ch_buf_puts(&b, "{\"time\":\"");
        ch_buf_puts(&b, ts);
        ch_buf_puts(&b, "\",\"request_id\":\"");
        ch_buf_puts(&b, rq->request_id);
        ch_buf_puts(&b, "\",\"remote\":");
        ch_buf_json_str(&b, rq->remote, strlen(rq->remote));
        ch_buf_puts(&b, ",\"method\":");
        ch_buf_json_str(&b, rq->method, strlen(rq->method));
        ch_buf_puts(&b, ",\"path\":");
        ch_buf_json_str(&b, rq->path, strnlen(rq->path, 256));
        ch_buf_puts(&b, ",\"status\":");
        buf_u64(&b, (uint64_t)status);
        ch_buf_puts(&b, ",\"bytes\":");
        buf_u64(&b, resp_bytes);
        ch_buf_puts(&b, ",\"duration_ms\":");
        buf_fixed(&b, secs * 1e3, 3);
        ch_buf_puts(&b, ",\"principal\":");
        if (rq->app_user[0] != '\0')
            ch_buf_json_str(&b, rq->app_user, strlen(rq->app_user));
        else
            ch_buf_puts(&b, "null");
        ch_buf_puts(&b, "}\n");
        /* One write() per line on an O_APPEND descriptor: lines from
         * different threads never interleave, and a reader never sees half
         * a line sitting in a buffer. */
        if (ch_buf_status(&b) == CH_OK && write(a->access_fd, b.data, b.len) < 0)
            atomic_fetch_add(&a->m.access_log_errors, 1);
        ch_buf_reset(&b);
    }
}

void server_audit(app *a, const call *c, const char *action, const char *target,
                  const char *details_json)
{
    ch_error err = {0};
    ch_err rc;
    pthread_mutex_lock(&a->reg_mu);
    rc = ch_registry_audit_append(a->reg, c->who.name, action, target, details_json, &err);
    pthread_mutex_unlock(&a->reg_mu);
    if (rc != CH_OK)
        server_log("audit entry '%s %s' by %s not written: %s", action, target, c->who.name,
                   err.msg);
}

/* ---- lifecycle --------------------------------------------------------------- */

/* Creates the directories above 'path' (like mkdir -p on its dirname). */
static int mkdir_parent(const char *path)
{
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir)
        return -1;
    memcpy(dir, path, n + 1);
    for (char *p = dir + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* Reads a secret from 'path' (its text, trimmed, at least 32 bytes), or
 * creates the file with 32 random bytes in hex, readable by the owner
 * only. Copies at most 'cap' bytes into 'out' and sets '*len'. */
static ch_err secret_file(const char *path, const char *what, unsigned char *out, size_t cap,
                          size_t *len, ch_error *err)
{
    char text[1024];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        unsigned char raw[32];
        ch_err rc = ch_random_bytes(raw, sizeof raw, err);
        if (rc != CH_OK)
            return rc;
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(text + 2 * i, 3, "%02x", raw[i]);
        text[64] = '\n';
        if (mkdir_parent(path) != 0)
            return ch_error_set(err, CH_EIO, "cannot create the directory of %s: %s", path,
                                strerror(errno));
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, text, 65) != 65) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return ch_error_set(err, CH_EIO, "cannot write %s %s: %s", what, path, strerror(e));
        }
        close(fd);
        server_log("made a new %s in %s", what, path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return ch_error_set(err, CH_EIO, "cannot read %s %s: %s", what, path, strerror(errno));
    n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0)
        return ch_error_set(err, CH_EIO, "cannot read %s %s: %s", what, path, strerror(errno));
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    if (n < 32)
        return ch_error_set(err, CH_EINVAL, "%s %s is shorter than 32 bytes", what, path);
    *len = (size_t)n < cap ? (size_t)n : cap;
    memcpy(out, text, *len);
    return CH_OK;
}

static ch_err read_file_text(const char *path, char **out, ch_error *err)
{
    ch_buf b;
    char chunk[4096];
    size_t n;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ch_error_set(err, CH_EIO, "cannot read %s: %s", path, strerror(errno));
    ch_buf_init(&b, 1 << 20);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ch_buf_append(&b, chunk, n);
    fclose(f);
    ch_buf_putc(&b, '\0');
    if (ch_buf_status(&b) != CH_OK)
        return ch_error_set(err, CH_ENOMEM, "%s: too large or out of memory", path);
    *out = ch_buf_take(&b, NULL);
    return CH_OK;
}

static ch_err plog_sink(void *ctx, const ch_prediction_rec *recs, size_t n, ch_error *err)
{
    app *a = ctx;
    return ch_registry_log_predictions(a->plog_reg, recs, n, err);
}

/* Loads the champion if it is not the model being served. 'failed' is
 * the version that failed last (not retried until the champion moves). */
static void follow_champion(app *a, ch_registry *r, int64_t *failed)
{
    char path[4096];
    int64_t v = 0;
    int64_t cur;
    ch_error err = {0};
    served *m;
    ch_err rc = ch_registry_resolve(r, "champion", &v, path, sizeof path, &err);
    if (rc != CH_OK)
        return; /* none yet, or the store is busy: try again next time */
    m = served_acquire(a);
    cur = m != NULL ? m->version : -1;
    served_release(m);
    if (v == cur || v == *failed)
        return;
    rc = server_load_model(a, path, v, "champion", &err);
    if (rc != CH_OK) {
        server_log("refused champion v%lld: %s; %s", (long long)v, err.msg,
                   cur > 0 ? "the current model keeps serving" : "no model is served yet");
        *failed = v;
    } else {
        *failed = -1;
    }
}

static void *reload_main(void *arg)
{
    app *a = arg;
    ch_registry *r = NULL;
    ch_registry_opts ro;
    thread_name("churn-reload");
    int64_t failed = -1;
    int warned = 0;
    ch_registry_opts_default(&ro);
    pthread_mutex_lock(&a->stop_mu);
    while (!atomic_load(&a->stopping)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(a->o.reload_ms % 1000) * 1000000L;
        until.tv_sec += a->o.reload_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &until);
        if (atomic_load(&a->stopping))
            break;
        pthread_mutex_unlock(&a->stop_mu);
        if (r == NULL) {
            ch_error err = {0};
            if (ch_registry_open(ch_config_str(a->cfg, "registry.url"), &ro, &r, &err) != CH_OK &&
                !warned) {
                server_log("cannot open the registry to follow the champion: %s", err.msg);
                warned = 1;
            }
        }
        if (r != NULL)
            follow_champion(a, r, &failed);
        pthread_mutex_lock(&a->stop_mu);
    }
    pthread_mutex_unlock(&a->stop_mu);
    ch_registry_close(r);
    return NULL;
}

static void read_opts(const ch_config *cfg, server_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->host, sizeof o->host, "%s", ch_config_str(cfg, "serve.host"));
    o->port = (int)ch_config_num(cfg, "serve.port");
    o->threads = (int)ch_config_num(cfg, "serve.threads");
    o->max_body_bytes = (size_t)ch_config_num(cfg, "serve.max_body_bytes");
    o->batch_max_rows = (size_t)ch_config_num(cfg, "serve.batch_max_rows");
    o->k_default = (int)ch_config_num(cfg, "serve.reasons");
    o->rate_per_s = ch_config_num(cfg, "serve.rate_per_s");
    o->rate_burst = ch_config_num(cfg, "serve.rate_burst");
    snprintf(o->cors_origin, sizeof o->cors_origin, "%s", ch_config_str(cfg, "serve.cors_origin"));
    o->log_block = strcmp(ch_config_str(cfg, "serve.log_mode"), "block") == 0;
    o->log_queue = (size_t)ch_config_num(cfg, "serve.log_queue");
    o->reload_ms = (int)ch_config_num(cfg, "serve.reload_ms");
    o->drain_s = (int)ch_config_num(cfg, "serve.drain_s");
    o->token_ttl_s = (int64_t)ch_config_num(cfg, "serve.token_ttl_s");
}

static rate_limiter *rl_new(double rate, double burst)
{
    rate_limiter *rl = ch_calloc(1, sizeof *rl);
    if (rl == NULL)
        return NULL;
    rl->rate = rate;
    rl->burst = burst;
    for (int i = 0; i < RL_STRIPES; i++)
        pthread_mutex_init(&rl->mu[i], NULL);
    return rl;
}

static ch_err setup_jwt(app *a, ch_error *err)
{
    const ch_config *cfg = a->cfg;
    ch_jwt_opts jo;
    unsigned char secret[512];
    size_t secret_len = 0;
    char *pub = NULL;
    char *priv = NULL;
    ch_err rc = CH_OK;
    ch_jwt_opts_default(&jo);
    jo.alg = ch_config_str(cfg, "serve.jwt_alg");
    jo.issuer = ch_config_str(cfg, "serve.jwt_issuer");
    jo.audience = ch_config_str(cfg, "serve.jwt_audience");
    jo.ttl_s = a->o.token_ttl_s;
    if (strcmp(jo.alg, "RS256") == 0) {
        const char *pp = ch_config_str(cfg, "serve.jwt_public_key");
        const char *kp = ch_config_str(cfg, "serve.jwt_private_key");
        if (pp[0] == '\0')
            return ch_error_set(err, CH_EINVAL,
                                "serve.jwt_alg is RS256 but serve.jwt_public_key "
                                "names no file");
        rc = read_file_text(pp, &pub, err);
        if (rc == CH_OK && kp[0] != '\0')
            rc = read_file_text(kp, &priv, err);
        jo.public_key_pem = pub;
        jo.private_key_pem = priv;
    } else {
        rc = secret_file(ch_config_str(cfg, "serve.jwt_secret_file"), "token secret", secret,
                         sizeof secret, &secret_len, err);
        jo.secret = secret;
        jo.secret_len = secret_len;
    }
    if (rc == CH_OK)
        rc = ch_jwt_new(&jo, &a->jwt, err);
    ch_free(pub);
    ch_free(priv);
    memset(secret, 0, sizeof secret);
    return rc;
}

static int wait_signal(void)
{
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigwait(&set, &sig);
    return sig;
}

int server_run(const ch_config *cfg, const char *model_ref)
{
    app *a = ch_calloc(1, sizeof *a);
    ch_error err = {0};
    ch_err rc = CH_OK;
    http_opts ho;
    ch_registry_opts ro;
    ch_predlog_opts po;
    sigset_t set;
    int code = 0;
    double t0 = http_now();
    size_t klen = 0;
    const char *access;

    if (a == NULL) {
        fprintf(stderr, "churn serve: out of memory\n");
        return 70;
    }
    a->cfg = cfg;
    a->access_fd = -1;
    read_opts(cfg, &a->o);
    a->m.start_time = (double)unix_now_ms() / 1e3;
    pthread_mutex_init(&a->model_mu, NULL);
    pthread_mutex_init(&a->reg_mu, NULL);
    pthread_mutex_init(&a->stop_mu, NULL);
    pthread_cond_init(&a->stop_cv, NULL);
    snprintf(a->model_ref, sizeof a->model_ref, "%s", model_ref);
    a->follow = strcmp(model_ref, "champion") == 0;

    /* Signals are taken by the main thread only: block them before any
     * thread starts so that every thread inherits the mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    ch_registry_opts_default(&ro);
    {
        const char *mode = ch_config_str(cfg, "serve.log_mode");
        const char *alg = ch_config_str(cfg, "serve.jwt_alg");
        if (strcmp(mode, "drop") != 0 && strcmp(mode, "block") != 0)
            rc = ch_error_set(&err, CH_EINVAL, "serve.log_mode is '%s': say drop or block", mode);
        else if (strcmp(alg, "HS256") != 0 && strcmp(alg, "RS256") != 0)
            rc = ch_error_set(&err, CH_EINVAL, "serve.jwt_alg is '%s': say HS256 or RS256", alg);
    }
    if (rc == CH_OK && mkdir_parent(ch_config_str(cfg, "registry.url")) != 0)
        server_log("cannot create the directory of %s", ch_config_str(cfg, "registry.url"));
    if (rc == CH_OK)
        rc = setup_jwt(a, &err);
    if (rc == CH_OK)
        rc = secret_file(ch_config_str(cfg, "serve.pseudonym_key_file"), "pseudonym key",
                         a->pseudo_key, sizeof a->pseudo_key, &klen, &err);
    if (rc == CH_OK)
        rc = ch_random_bytes(&a->pred_key, sizeof a->pred_key, &err);
    if (rc == CH_OK)
        rc = ch_registry_open(ch_config_str(cfg, "registry.url"), &ro, &a->reg, &err);
    if (rc == CH_OK) {
        /* The log writer's own connection: batches are synced at WAL
         * checkpoints rather than at each commit (feedback and audit keep
         * full durability on the other connection). */
        ch_registry_opts lo = ro;
        lo.bulk_log = 1;
        rc = ch_registry_open(ch_config_str(cfg, "registry.url"), &lo, &a->plog_reg, &err);
    }
    if (rc == CH_OK) {
        ch_predlog_opts_default(&po);
        po.capacity = a->o.log_queue;
        po.block = a->o.log_block;
        rc = ch_predlog_open(&po, plog_sink, a, &a->plog, &err);
    }
    if (rc == CH_OK && a->o.rate_per_s > 0) {
        a->rl = rl_new(a->o.rate_per_s, a->o.rate_burst);
        if (a->rl == NULL)
            rc = ch_error_set(&err, CH_ENOMEM, "out of memory");
    }
    if (rc == CH_OK) {
        double per_min = ch_config_num(cfg, "serve.login_per_min");
        a->rl_login = rl_new(per_min / 60.0, per_min);
        if (a->rl_login == NULL)
            rc = ch_error_set(&err, CH_ENOMEM, "out of memory");
    }
    access = ch_config_str(cfg, "serve.access_log");
    if (rc == CH_OK && access[0] != '\0') {
        if (strcmp(access, "-") == 0) {
            a->access_fd = STDERR_FILENO;
        } else {
            mkdir_parent(access);
            a->access_fd = open(access, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
            if (a->access_fd < 0)
                rc = ch_error_set(&err, CH_EIO, "cannot open the access log %s: %s", access,
                                  strerror(errno));
        }
    }
    if (rc != CH_OK) {
        code = rc == CH_EINVAL ? 1 : rc == CH_EDB ? 5 : 2;
        fprintf(stderr, "churn serve: %s\n", err.msg);
        goto done;
    }
    if (a->follow) {
        int64_t failed = -1;
        follow_champion(a, a->reg, &failed);
        if (a->model == NULL)
            server_log("no champion can be served yet: /readyz answers 503 until one is "
                       "promoted (churn train, churn models promote)");
    } else {
        rc = server_load_model(a, model_ref, 0, "", &err);
        if (rc != CH_OK) {
            fprintf(stderr, "churn serve: %s\n", err.msg);
            code = 4;
            goto done;
        }
    }
    memset(&ho, 0, sizeof ho);
    ho.host = a->o.host;
    ho.port = a->o.port;
    ho.threads = a->o.threads;
    ho.max_body_bytes = a->o.max_body_bytes;
    ho.max_resp_bytes = (size_t)1 << 30;
    ho.idle_timeout_s = (int)ch_config_num(cfg, "serve.idle_timeout_s");
    ho.body_timeout_s = (int)ch_config_num(cfg, "serve.body_timeout_s");
    ho.max_connections = (unsigned)ch_config_num(cfg, "serve.max_connections");
    ho.max_per_ip = (unsigned)ch_config_num(cfg, "serve.max_per_ip");
    rc = http_start(&ho, server_handle, server_done, a, &a->http, &err);
    if (rc != CH_OK) {
        fprintf(stderr, "churn serve: %s\n", err.msg);
        code = rc == CH_EINVAL ? 1 : 2;
        goto done;
    }
    if (a->follow) {
        if (pthread_create(&a->reload_thr, NULL, reload_main, a) == 0)
            a->reload_started = 1;
        else
            server_log("cannot start the reload watcher: the served model will not follow "
                       "promotions");
    }
    rc = jobs_start(a, &err);
    if (rc == CH_OK)
        rc = rollout_start_threads(a, &err);
    if (rc == CH_OK)
        rc = retrain_start(a, &err);
    if (rc != CH_OK) {
        fprintf(stderr, "churn serve: %s\n", err.msg);
        code = rc == CH_EINVAL ? 1 : 2;
        goto done;
    }
    server_log("listening on http://%s%s%s:%d/ (ready in %.0f ms, %d threads)",
               strchr(a->o.host, ':') != NULL ? "[" : "", a->o.host,
               strchr(a->o.host, ':') != NULL ? "]" : "", http_port(a->http),
               (http_now() - t0) * 1e3, a->o.threads);

    {
        int sig = wait_signal();
        double until;
        server_log("%s: draining requests in flight (up to %d s)",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT", a->o.drain_s);
        atomic_store(&a->stopping, 1);
        http_quiesce(a->http);
        until = http_now() + a->o.drain_s;
        while (http_in_flight(a->http) > 0 && http_now() < until) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (http_in_flight(a->http) > 0)
            server_log("%u requests still in flight after %d s; stopping anyway",
                       http_in_flight(a->http), a->o.drain_s);
    }
done:
    atomic_store(&a->stopping, 1);
    pthread_mutex_lock(&a->stop_mu);
    pthread_cond_broadcast(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
    if (a->reload_started)
        pthread_join(a->reload_thr, NULL);
    jobs_stop(a);
    retrain_stop(a);
    http_stop(a->http);
    rollout_stop_threads(a);
    if (a->plog != NULL) {
        ch_predlog_stats st;
        /* Let the writer catch up before taking the final tally. */
        (void)ch_predlog_sync(a->plog, 30000);
        ch_predlog_stats_get(a->plog, &st);
        if (ch_predlog_close(a->plog, &err) != CH_OK)
            server_log("prediction log: final write failed: %s", err.msg);
        server_log("prediction log: %llu written, %llu dropped", (unsigned long long)st.written,
                   (unsigned long long)st.dropped);
    }
    ch_registry_close(a->plog_reg);
    ch_registry_close(a->reg);
    ch_jwt_free(a->jwt);
    if (a->access_fd > STDERR_FILENO)
        close(a->access_fd);
    served_release(a->model);
    ch_free(a->rl);
    ch_free(a->rl_login);
    if (code == 0)
        server_log("stopped");
    ch_free(a);
    return code;
}
