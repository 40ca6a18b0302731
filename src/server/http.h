/*
 * http.h -- the HTTP layer of the prediction service, with no HTTP
 * library in sight.
 *
 * src/server/http.c is the only file that includes microhttpd.h. It runs
 * libmicrohttpd with an epoll thread pool, reads each request body into
 * memory up to a cap, enforces the read deadlines, and calls one handler
 * per complete request on a pool thread. The handler fills a response
 * (status, content type, body, a few headers); the layer sends it and
 * owns nothing afterwards.
 *
 * Workload: tens of thousands of small keep-alive requests per second
 * on two cores; a handler must not block on anything slow.
 */
#ifndef CH_SERVER_HTTP_H
#define CH_SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/err.h"

typedef struct http_server http_server;

#define HTTP_MAX_HEADERS 12

/* One request, valid during the handler call. */
typedef struct http_req {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* decoded path, without the query */
    char *body;          /* NUL-terminated copy of the body ("" when none); the
                            handler may modify it in place */
    size_t body_len;     /* bytes */
    char remote[48];     /* client address, text */
    char request_id[17]; /* 16 hex digits, also sent as X-Request-Id */
    double t_start;      /* monotonic seconds when the headers were complete */
    void *conn;          /* the connection, for http_header()/http_query() */
    int app_route;       /* free for the application (route index) */
    char app_user[72];   /* free for the application (principal) */
} http_req;

/* The handler's answer. 'body' is initialised empty with a cap. */
typedef struct http_resp {
    int status;               /* HTTP status; 0 means 500 */
    const char *content_type; /* static text; NULL = application/json */
    ch_buf body;
    int n_headers;
    const char *header_name[HTTP_MAX_HEADERS]; /* static text */
    char header_value[HTTP_MAX_HEADERS][256];  /* copied */
} http_resp;

/* Adds a response header (name static; value copied, cut at 255 bytes).
 * Extra headers beyond HTTP_MAX_HEADERS are dropped. */
void http_resp_header(http_resp *rs, const char *name, const char *value);

/* A request header or query argument by name (case-insensitive for
 * headers), or NULL. Borrowed for the handler call. */
const char *http_header(const http_req *rq, const char *name);
const char *http_query(const http_req *rq, const char *name);

typedef void (*http_handler_fn)(void *app, http_req *rq, http_resp *rs);
/* Called once per request after the response was queued (or the
 * connection failed): for access logs and metrics. 'status' is what was
 * sent, 0 when nothing was. */
typedef void (*http_done_fn)(void *app, const http_req *rq, int status, size_t resp_bytes);

typedef struct http_opts {
    const char *host;         /* numeric IPv4 or IPv6 address to listen on */
    int port;                 /* 0 = an ephemeral port (see http_port()) */
    int threads;              /* pool threads (>= 1) */
    size_t max_body_bytes;    /* larger bodies get 413 */
    size_t max_resp_bytes;    /* cap of a response body */
    int idle_timeout_s;       /* a connection silent this long is closed */
    int body_timeout_s;       /* a body taking longer than this to arrive gets 408 */
    unsigned max_connections; /* in total */
    unsigned max_per_ip;      /* per client address */
} http_opts;

/* Starts listening and serving. 'app' is passed to the callbacks. Errors:
 * CH_EIO (cannot bind: the message names the address), CH_EINVAL. */
ch_err http_start(const http_opts *o, http_handler_fn handler, http_done_fn done, void *app,
                  http_server **out, ch_error *err);
/* The port actually bound. */
int http_port(const http_server *s);
/* Stops accepting new connections; requests in flight go on. */
void http_quiesce(http_server *s);
/* Connections still open. */
unsigned http_connections(const http_server *s);
/* Requests received and not yet completed. */
unsigned http_in_flight(const http_server *s);
/* Stops the server and frees it (waits for the pool threads). NULL is a
 * no-op. */
void http_stop(http_server *s);

/* Monotonic clock, seconds. */
double http_now(void);

#endif /* CH_SERVER_HTTP_H */
