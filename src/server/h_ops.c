/*
 * h_ops.c -- probes, metrics and the API description.
 *
 * /healthz answers as long as the process serves HTTP; /readyz only when
 * a model is loaded (load balancers route on it); /metrics renders the
 * counters (metrics.c) plus gauges read at scrape time; /openapi.json is
 * the OpenAPI 3 document, compiled into the binary from
 * src/server/openapi.json.
 */
#include <string.h>

#include "server.h"

/* The document's bytes, placed in read-only data by the assembler so that
 * the file in the tree is the single source. */
__asm__(".section .rodata\n"
        ".global ch__openapi_json\n"
        ".type ch__openapi_json, @object\n"
        ".balign 16\n"
        "ch__openapi_json:\n"
        ".incbin \"src/server/openapi.json\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char ch__openapi_json[];

void h_ops_healthz(call *c)
{
    c->rs->status = 200;
    ch_buf_puts(&c->rs->body, "{\"status\":\"ok\"}");
}

void h_ops_readyz(call *c)
{
    served *m = served_acquire(c->a);
    if (m == NULL) {
        reply_error(c, 503, "unavailable", "no model is loaded", NULL);
        return;
    }
    c->rs->status = 200;
    ch_buf_puts(&c->rs->body, "{\"status\":\"ready\",\"model\":{\"version\":");
    if (m->version > 0)
        ch_buf_printf(&c->rs->body, "%lld", (long long)m->version);
    else
        ch_buf_puts(&c->rs->body, "null");
    ch_buf_printf(&c->rs->body, ",\"family\":\"%s\",\"sha256\":\"%s\"}}", m->family, m->checksum);
    served_release(m);
}

void h_ops_openapi(call *c)
{
    c->rs->status = 200;
    ch_buf_puts(&c->rs->body, ch__openapi_json);
}

static const char *route_label(int r)
{
    /* Used at once by the renderer, so a per-thread buffer suffices. */
    static __thread char label[96];
    if (r < 0 || (size_t)r >= n_routes)
        return "unmatched";
    snprintf(label, sizeof label, "%s %s", routes[r].method, routes[r].path);
    return label;
}

void h_ops_metrics(call *c)
{
    ch_buf *b = &c->rs->body;
    ch_predlog_stats st;
    served *m;
    c->rs->status = 200;
    c->rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
    metrics_render(&c->a->m, route_label, (int)n_routes, b);
    ch_predlog_stats_get(c->a->plog, &st);
    ch_buf_puts(b, "# HELP churn_prediction_log_queue_depth Predictions waiting to be written.\n"
                   "# TYPE churn_prediction_log_queue_depth gauge\n");
    ch_buf_printf(b, "churn_prediction_log_queue_depth %zu\n", st.depth);
    ch_buf_puts(b, "# HELP churn_prediction_log_queue_capacity Predictions the queue holds.\n"
                   "# TYPE churn_prediction_log_queue_capacity gauge\n");
    ch_buf_printf(b, "churn_prediction_log_queue_capacity %zu\n", st.capacity);
    ch_buf_puts(b, "# HELP churn_prediction_log_written_total Predictions written to the store.\n"
                   "# TYPE churn_prediction_log_written_total counter\n");
    ch_buf_printf(b, "churn_prediction_log_written_total %llu\n", (unsigned long long)st.written);
    ch_buf_puts(b, "# HELP churn_prediction_log_dropped_total Predictions lost: queue full or "
                   "store failing.\n# TYPE churn_prediction_log_dropped_total counter\n");
    ch_buf_printf(b, "churn_prediction_log_dropped_total %llu\n", (unsigned long long)st.dropped);
    ch_buf_puts(b, "# HELP churn_prediction_log_errors_total Failed writes of the prediction "
                   "log.\n# TYPE churn_prediction_log_errors_total counter\n");
    ch_buf_printf(b, "churn_prediction_log_errors_total %llu\n",
                  (unsigned long long)st.sink_errors);
    ch_buf_puts(b, "# HELP churn_prediction_log_inputs_skipped_total Predictions logged without "
                   "their input values (too large for a log record).\n"
                   "# TYPE churn_prediction_log_inputs_skipped_total counter\n");
    ch_buf_printf(b, "churn_prediction_log_inputs_skipped_total %llu\n",
                  (unsigned long long)st.inputs_skipped);
    m = served_acquire(c->a);
    ch_buf_puts(b, "# HELP churn_model_info The model being served (value 1).\n"
                   "# TYPE churn_model_info gauge\n");
    ch_buf_puts(b, "# HELP churn_model_load_seconds Time the served model took to load.\n"
                   "# TYPE churn_model_load_seconds gauge\n");
    if (m != NULL) {
        char v[24];
        if (m->version > 0)
            snprintf(v, sizeof v, "%lld", (long long)m->version);
        else
            snprintf(v, sizeof v, "file");
        ch_buf_printf(b,
                      "churn_model_info{version=\"%s\",alias=\"%s\",family=\"%s\","
                      "sha256=\"%s\"} 1\n",
                      v, m->alias[0] != '\0' ? m->alias : "none", m->family, m->checksum);
        ch_buf_printf(b, "churn_model_load_seconds %.6f\n", m->load_seconds);
        served_release(m);
    }
    ch_buf_puts(b, "# HELP churn_start_time_seconds Unix time the server started.\n"
                   "# TYPE churn_start_time_seconds gauge\n");
    ch_buf_printf(b, "churn_start_time_seconds %.3f\n", c->a->m.start_time);
    jobs_metrics(c->a, b);
    rollout_metrics(c->a, b);
    retrain_metrics(c->a, b);
}
