/*
 * http.c -- the libmicrohttpd adapter (the only file that includes it).
 *
 * libmicrohttpd calls the access handler several times per request: once
 * when the headers are complete, once per chunk of body, and once more
 * when the body is done. The first call makes a request context; the
 * chunks go into a capped buffer; the last call runs the handler and
 * queues its response. Whatever happens, the completion callback frees
 * the context and reports the request (access log, metrics), so every
 * request is accounted for exactly once.
 *
 * Limits are enforced here, before any handler sees a byte: a declared
 * Content-Length over the cap is refused at once with 413 (the body is
 * never read), an undeclared one as soon as it passes the cap; a body
 * that trickles in slower than the body deadline gets 408; idle
 * connections are closed by libmicrohttpd's own timeout, and the number
 * of connections per client address is capped (slow-header attacks need
 * many connections).
 */
#include "http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"

struct http_server {
    struct MHD_Daemon *d;
    http_handler_fn handler;
    http_done_fn done;
    void *app;
    http_opts o;
    int port;
    atomic_uint_fast64_t next_id;
    uint64_t id_key;
    atomic_int quiesced;
    atomic_uint in_flight;
};

/* One request in progress (MHD's "con_cls"). */
typedef struct req_ctx {
    http_req rq;
    ch_buf body;
    int status;        /* status queued, 0 = none yet */
    size_t resp_bytes; /* body bytes queued */
    int refused;       /* a response was queued before the body was read */
    int too_large;     /* the body passed the cap: discarded, answered with 413 */
    char method[16];
    char *path;    /* owned copy */
    char empty[1]; /* the body when there is none */
} req_ctx;

double http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void http_resp_header(http_resp *rs, const char *name, const char *value)
{
    if (rs->n_headers >= HTTP_MAX_HEADERS)
        return;
    rs->header_name[rs->n_headers] = name;
    snprintf(rs->header_value[rs->n_headers], sizeof rs->header_value[0], "%s", value);
    rs->n_headers++;
}

const char *http_header(const http_req *rq, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)rq->conn, MHD_HEADER_KIND, name);
}

const char *http_query(const http_req *rq, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)rq->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

static void free_cb(void *p)
{
    ch_free(p);
}

/* Queues 'rs' on 'c'. The response body buffer is handed to
 * libmicrohttpd, which frees it with ch_free() once sent (so no copy is
 * made of large batch responses). */
static enum MHD_Result send_resp(http_server *s, struct MHD_Connection *c, req_ctx *x,
                                 http_resp *rs)
{
    struct MHD_Response *r;
    size_t len = 0;
    char *data = NULL;
    enum MHD_Result ok;
    int status = rs->status > 0 ? rs->status : 500;

    if (ch_buf_status(&rs->body) != CH_OK) {
        /* The handler ran out of memory or over the cap: say so plainly. */
        ch_buf_reset(&rs->body);
        status = 500;
        rs->content_type = NULL;
        ch_buf_puts(&rs->body, "{\"error\":\"internal\",\"code\":500,\"message\":"
                               "\"the response could not be built\",\"field\":null}");
    }
    if (rs->body.len > 0)
        data = ch_buf_take(&rs->body, &len);
    if (data != NULL)
        r = MHD_create_response_from_buffer_with_free_callback(len, data, free_cb);
    else
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        ch_free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rs->content_type != NULL ? rs->content_type : "application/json");
    MHD_add_response_header(r, "X-Request-Id", x->rq.request_id);
    for (int i = 0; i < rs->n_headers; i++)
        MHD_add_response_header(r, rs->header_name[i], rs->header_value[i]);
    if (atomic_load(&s->quiesced) || x->refused)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) {
        x->status = status;
        x->resp_bytes = len;
    }
    ch_buf_reset(&rs->body);
    return ok;
}

static void error_resp(http_resp *rs, int status, const char *error, const char *message)
{
    rs->status = status;
    ch_buf_printf(&rs->body, "{\"error\":\"%s\",\"code\":%d,\"message\":", error, status);
    ch_buf_json_str(&rs->body, message, strlen(message));
    ch_buf_puts(&rs->body, ",\"field\":null}");
}

static enum MHD_Result refuse(http_server *s, struct MHD_Connection *c, req_ctx *x, int status,
                              const char *error, const char *message)
{
    http_resp rs;
    memset(&rs, 0, sizeof rs);
    ch_buf_init(&rs.body, 4096);
    error_resp(&rs, status, error, message);
    x->refused = 1;
    return send_resp(s, c, x, &rs);
}

static req_ctx *ctx_new(http_server *s, struct MHD_Connection *c, const char *url,
                        const char *method)
{
    req_ctx *x = ch_calloc(1, sizeof *x);
    const union MHD_ConnectionInfo *ci;
    if (x == NULL)
        return NULL;
    x->path = ch_strdup(url);
    if (x->path == NULL) {
        ch_free(x);
        return NULL;
    }
    snprintf(x->method, sizeof x->method, "%s", method);
    ch_buf_init(&x->body, s->o.max_body_bytes + 1);
    x->rq.method = x->method;
    x->rq.path = x->path;
    x->rq.body = x->empty;
    x->rq.conn = c;
    x->rq.app_route = -1;
    x->rq.t_start = http_now();
    {
        static const char digits[] = "0123456789abcdef";
        uint64_t id = mix64(s->id_key + atomic_fetch_add(&s->next_id, 1));
        for (int i = 15; i >= 0; i--) {
            x->rq.request_id[i] = digits[id & 15];
            id >>= 4;
        }
        x->rq.request_id[16] = '\0';
    }
    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci != NULL && ci->client_addr != NULL) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                      x->rq.remote, sizeof x->rq.remote);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                      x->rq.remote, sizeof x->rq.remote);
    }
    return x;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    http_server *s = cls;
    req_ctx *x = *con_cls;
    http_resp rs;
    (void)version;

    if (x == NULL) {
        const char *cl;
        x = ctx_new(s, c, url, method);
        if (x == NULL)
            return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
        *con_cls = x;
        atomic_fetch_add(&s->in_flight, 1);
        cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > (unsigned long long)s->o.max_body_bytes) {
            char msg[96];
            snprintf(msg, sizeof msg, "request body over the limit of %zu bytes",
                     s->o.max_body_bytes);
            return refuse(s, c, x, 413, "payload_too_large", msg);
        }
        return MHD_YES;
    }
    if (x->refused) {
        *upload_data_size = 0; /* discard whatever still arrives */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        /* libmicrohttpd cannot queue a response while a body is still
         * arriving, so an oversized body (one without a Content-Length,
         * or lying about it) is discarded and answered when it ends, and
         * one that arrives too slowly gets its connection closed. */
        if (s->o.body_timeout_s > 0 && http_now() - x->rq.t_start > s->o.body_timeout_s)
            return MHD_NO;
        if (x->too_large)
            return MHD_YES;
        if (x->body.len + n > s->o.max_body_bytes) {
            x->too_large = 1;
            ch_buf_reset(&x->body);
            return MHD_YES;
        }
        if (ch_buf_append(&x->body, upload_data, n) != CH_OK)
            x->too_large = 1;
        return MHD_YES;
    }
    if (x->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", s->o.max_body_bytes);
        return refuse(s, c, x, 413, "payload_too_large", msg);
    }
    /* The request is complete. */
    if (x->body.len > 0) {
        ch_buf_putc(&x->body, '\0');
        if (ch_buf_status(&x->body) != CH_OK)
            return refuse(s, c, x, 503, "overloaded", "out of memory reading the request body");
        x->rq.body = x->body.data;
        x->rq.body_len = x->body.len - 1;
    }
    /* Not a memset: the header values (1 KiB) are written as used. */
    rs.status = 0;
    rs.content_type = NULL;
    rs.n_headers = 0;
    ch_buf_init(&rs.body, s->o.max_resp_bytes);
    s->handler(s->app, &x->rq, &rs);
    return send_resp(s, c, x, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    http_server *s = cls;
    req_ctx *x = *con_cls;
    (void)c;
    (void)toe;
    if (x == NULL)
        return;
    if (s->done != NULL)
        s->done(s->app, &x->rq, x->status, x->resp_bytes);
    ch_buf_reset(&x->body);
    ch_free(x->path);
    ch_free(x);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "churn serve: http: %s%s", line,
            line[0] != '\0' && line[strlen(line) - 1] == '\n' ? "" : "\n");
}

ch_err http_start(const http_opts *o, http_handler_fn handler, http_done_fn done, void *app,
                  http_server **out, ch_error *err)
{
    struct sockaddr_storage ss;
    socklen_t ss_len;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    http_server *s;
    const union MHD_DaemonInfo *di;
    struct timespec ts;

    if (o == NULL || handler == NULL || out == NULL || o->threads < 1 || o->port < 0 ||
        o->port > 65535)
        return ch_error_set(err, CH_EINVAL, "bad HTTP server options");
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, o->host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)o->port);
        ss_len = sizeof *sa;
    } else if (inet_pton(AF_INET6, o->host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons((uint16_t)o->port);
        ss_len = sizeof *sa;
        flags |= MHD_USE_IPv6;
    } else {
        return ch_error_set(err, CH_EINVAL,
                            "listen address '%s' is not a numeric IPv4 or IPv6 address", o->host);
    }
    (void)ss_len;
    s = ch_calloc(1, sizeof *s);
    if (s == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    s->handler = handler;
    s->done = done;
    s->app = app;
    s->o = *o;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->id_key = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid());
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)o->threads, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(o->idle_timeout_s > 0 ? o->idle_timeout_s : 0), MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections > 0 ? o->max_connections : 1024u, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        o->max_per_ip, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (s->d == NULL) {
        ch_free(s);
        return ch_error_set(err, CH_EIO, "cannot listen on %s port %d (in use, or not allowed)",
                            o->host, o->port);
    }
    di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di != NULL ? di->port : o->port;
    *out = s;
    return CH_OK;
}

int http_port(const http_server *s)
{
    return s->port;
}

void http_quiesce(http_server *s)
{
    MHD_socket fd;
    if (s == NULL || atomic_exchange(&s->quiesced, 1))
        return;
    fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

unsigned http_connections(const http_server *s)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di != NULL ? di->num_connections : 0;
}

unsigned http_in_flight(const http_server *s)
{
    return atomic_load(&((http_server *)s)->in_flight);
}

void http_stop(http_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->d);
    ch_free(s);
}
