/*
 * h_monitor.c -- GET /v1/monitor/{drift,decay,estimate}, POST /v1/monitor/run.
 *
 * The documents are the scheduler's latest results (jobs.c): reading them
 * never computes anything on the request path. ?history=N lists the
 * latest N stored results of that kind instead (newest first, without
 * their documents' detail beyond the summary the store keeps).
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"

static int known_kind(const char *k)
{
    return strcmp(k, "drift") == 0 || strcmp(k, "decay") == 0 || strcmp(k, "estimate") == 0;
}

void h_monitor_get(call *c)
{
    const char *hist = http_query(c->rq, "history");
    if (!known_kind(c->param)) {
        reply_error(c, 404, "not_found", "no such monitoring result: say drift, decay or estimate",
                    NULL);
        return;
    }
    if (hist != NULL) {
        char *end = NULL;
        long n = strtol(hist, &end, 10);
        ch_error err = {0};
        ch_err rc;
        ch_buf tmp;
        if (end == hist || *end != '\0' || n < 1 || n > 1000) {
            reply_error(c, 400, "bad_request", "history must be a whole number from 1 to 1000",
                        "history");
            return;
        }
        ch_buf_init(&tmp, (size_t)256 << 20);
        pthread_mutex_lock(&c->a->reg_mu);
        rc = ch_registry_monitor_list(c->a->reg, c->param, (size_t)n, &tmp, &err);
        pthread_mutex_unlock(&c->a->reg_mu);
        if (rc == CH_OK)
            rc = ch_buf_status(&tmp);
        if (rc != CH_OK) {
            ch_buf_reset(&tmp);
            reply_err(c, rc, &err, NULL);
            return;
        }
        c->rs->status = 200;
        ch_buf_append(&c->rs->body, tmp.data, tmp.len);
        ch_buf_reset(&tmp);
        return;
    }
    if (!jobs_latest(c->a, c->param, &c->rs->body)) {
        reply_error(c, 404, "not_found",
                    c->a->jobs.started
                        ? "no monitoring result yet: the first job runs a few seconds after start "
                          "(POST /v1/monitor/run starts one now)"
                        : "monitoring jobs are off (monitor.interval_s is 0, or a file is served)",
                    NULL);
        return;
    }
    c->rs->status = 200;
}

void h_monitor_run(call *c)
{
    if (!jobs_trigger(c->a)) {
        reply_error(c, 409, "conflict",
                    "monitoring jobs are off (monitor.interval_s is 0, or a file is served)", NULL);
        return;
    }
    c->rs->status = 202;
    ch_buf_puts(&c->rs->body, "{\"status\":\"started\"}");
    server_audit(c->a, c, "monitor-run", "monitor", NULL);
}
