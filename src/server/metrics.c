/*
 * metrics.c -- counters of the prediction service and their Prometheus
 * text rendering (format 0.0.4: HELP and TYPE lines, base units,
 * counters ending in _total, histograms with cumulative le buckets).
 *
 * Status codes are counted by exact code from a fixed list; anything else
 * falls into the list's last slot ("other" is never a real status, so a
 * scrape shows it as code="other").
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

static const int status_codes[M_N_STATUS] = {200, 201, 204, 400, 401, 403, 404, 405, 408,
                                             409, 413, 415, 422, 429, 500, 503, 0};
/* Upper bounds of the latency buckets, seconds. */
static const double lat_le[M_N_LATENCY] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                           0.01,    0.025,  0.05,    0.1,    0.25,  1.0,    5.0};

static int status_slot(int status)
{
    for (int i = 0; i < M_N_STATUS - 1; i++)
        if (status_codes[i] == status)
            return i;
    return M_N_STATUS - 1;
}

void metrics_request(metrics *m, int route, int status, double seconds)
{
    int r = route >= 0 && route < M_MAX_ROUTES ? route : M_MAX_ROUTES;
    int b = 0;
    atomic_fetch_add_explicit(&m->req[r][status_slot(status)], 1, memory_order_relaxed);
    while (b < M_N_LATENCY && seconds > lat_le[b])
        b++;
    atomic_fetch_add_explicit(&m->lat[r][b], 1, memory_order_relaxed);
    if (seconds > 0)
        atomic_fetch_add_explicit(&m->lat_sum_ns[r], (uint_fast64_t)(seconds * 1e9),
                                  memory_order_relaxed);
}

void metrics_arm(metrics *m, int arm, int failed, double seconds)
{
    int b = 0;
    if (arm < 0 || arm >= M_N_ARMS)
        return;
    while (b < M_N_LATENCY && seconds > lat_le[b])
        b++;
    atomic_fetch_add_explicit(&m->arm_predictions[arm], 1, memory_order_relaxed);
    if (failed)
        atomic_fetch_add_explicit(&m->arm_errors[arm], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->arm_lat[arm][b], 1, memory_order_relaxed);
    if (seconds > 0)
        atomic_fetch_add_explicit(&m->arm_lat_sum_ns[arm], (uint_fast64_t)(seconds * 1e9),
                                  memory_order_relaxed);
}

uint64_t metrics_predictions(const metrics *m)
{
    uint64_t n = 0;
    for (int a = 0; a < M_N_ARMS; a++)
        n += atomic_load_explicit(&m->arm_predictions[a], memory_order_relaxed);
    return n;
}

void metrics_arm_read(const metrics *m, int arm, arm_counts *out)
{
    memset(out, 0, sizeof *out);
    if (arm < 0 || arm >= M_N_ARMS)
        return;
    out->predictions = atomic_load_explicit(&m->arm_predictions[arm], memory_order_relaxed);
    out->errors = atomic_load_explicit(&m->arm_errors[arm], memory_order_relaxed);
    for (int b = 0; b <= M_N_LATENCY; b++)
        out->lat[b] = atomic_load_explicit(&m->arm_lat[arm][b], memory_order_relaxed);
}

double metrics_arm_quantile(const arm_counts *from, const arm_counts *to, double q)
{
    uint64_t total = 0;
    uint64_t acc = 0;
    for (int b = 0; b <= M_N_LATENCY; b++)
        total += to->lat[b] - from->lat[b];
    if (total == 0)
        return 0.0 / 0.0;
    for (int b = 0; b <= M_N_LATENCY; b++) {
        acc += to->lat[b] - from->lat[b];
        if ((double)acc >= q * (double)total)
            return b < M_N_LATENCY ? lat_le[b] : 2 * lat_le[M_N_LATENCY - 1];
    }
    return lat_le[M_N_LATENCY - 1];
}

void metrics_prediction(metrics *m, int64_t version, const char *alias, int label, double p)
{
    long long v = version > 0 ? (long long)version : -1;
    int b;
    if (!(p >= 0 && p <= 1))
        p = p > 1 ? 1 : 0; /* NaN counts as 0 rather than reaching the cast */
    b = (int)(p * M_N_SCORE);
    if (b < 0)
        b = 0;
    if (b >= M_N_SCORE)
        b = M_N_SCORE - 1;
    atomic_fetch_add_explicit(&m->score[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->score_sum_micro, (uint_fast64_t)(p * 1e6 + 0.5),
                              memory_order_relaxed);
    for (int i = 0; i < M_MAX_VERSIONS; i++) {
        m_version *slot = &m->versions[i];
        long long cur = atomic_load_explicit(&slot->version, memory_order_acquire);
        if (cur == 0) {
            /* Claim the free slot with a marker, write the alias, then
             * publish the version: a reader or a competing claimer never
             * sees a version with another version's alias. */
            long long zero = 0;
            if (atomic_compare_exchange_strong(&slot->version, &zero, M_CLAIMING)) {
                snprintf(slot->alias, sizeof slot->alias, "%s", alias);
                atomic_store_explicit(&slot->version, v, memory_order_release);
                cur = v;
            } else {
                cur = zero;
            }
        }
        while (cur == M_CLAIMING) /* another thread is writing this slot's alias */
            cur = atomic_load_explicit(&slot->version, memory_order_acquire);
        if (cur == v) {
            atomic_fetch_add_explicit(&slot->by_label[label ? 1 : 0], 1, memory_order_relaxed);
            return;
        }
    }
}

static void help_type(ch_buf *b, const char *name, const char *type, const char *help)
{
    ch_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void le_text(char *out, size_t cap, double le)
{
    snprintf(out, cap, "%g", le);
}

void metrics_render(const metrics *m, const char *(*route_label)(int route), int n_routes,
                    ch_buf *b)
{
    help_type(b, "churn_http_requests_total", "counter", "HTTP requests by route and status.");
    for (int r = 0; r <= n_routes; r++) {
        int ri = r < n_routes ? r : M_MAX_ROUTES;
        for (int s = 0; s < M_N_STATUS; s++) {
            uint64_t n = atomic_load_explicit(&m->req[ri][s], memory_order_relaxed);
            if (n == 0)
                continue;
            if (status_codes[s] != 0)
                ch_buf_printf(b, "churn_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                              r < n_routes ? route_label(r) : "unmatched", status_codes[s],
                              (unsigned long long)n);
            else
                ch_buf_printf(b, "churn_http_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                              r < n_routes ? route_label(r) : "unmatched", (unsigned long long)n);
        }
    }
    help_type(b, "churn_http_request_duration_seconds", "histogram",
              "Time from complete request headers to response, by route.");
    for (int r = 0; r <= n_routes; r++) {
        int ri = r < n_routes ? r : M_MAX_ROUTES;
        const char *label = r < n_routes ? route_label(r) : "unmatched";
        uint64_t cum = 0;
        char le[32];
        for (int k = 0; k <= M_N_LATENCY; k++)
            cum += atomic_load_explicit(&m->lat[ri][k], memory_order_relaxed);
        if (cum == 0)
            continue;
        cum = 0;
        for (int k = 0; k < M_N_LATENCY; k++) {
            cum += atomic_load_explicit(&m->lat[ri][k], memory_order_relaxed);
            le_text(le, sizeof le, lat_le[k]);
            ch_buf_printf(b,
                          "churn_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} "
                          "%llu\n",
                          label, le, (unsigned long long)cum);
        }
        cum += atomic_load_explicit(&m->lat[ri][M_N_LATENCY], memory_order_relaxed);
        ch_buf_printf(b,
                      "churn_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                      "%llu\n",
                      label, (unsigned long long)cum);
        ch_buf_printf(b, "churn_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n", label,
                      (double)atomic_load_explicit(&m->lat_sum_ns[ri], memory_order_relaxed) *
                          1e-9);
        ch_buf_printf(b, "churn_http_request_duration_seconds_count{route=\"%s\"} %llu\n", label,
                      (unsigned long long)cum);
    }
    help_type(b, "churn_predictions_total", "counter",
              "Predictions by model version, alias and predicted label.");
    for (int i = 0; i < M_MAX_VERSIONS; i++) {
        long long v = atomic_load_explicit(&m->versions[i].version, memory_order_acquire);
        char vtext[24];
        if (v == 0 || v == M_CLAIMING)
            continue;
        if (v > 0)
            snprintf(vtext, sizeof vtext, "%lld", v);
        else
            snprintf(vtext, sizeof vtext, "file");
        for (int l = 0; l < 2; l++)
            ch_buf_printf(
                b, "churn_predictions_total{model_version=\"%s\",alias=\"%s\",label=\"%s\"} %llu\n",
                vtext, m->versions[i].alias[0] != '\0' ? m->versions[i].alias : "none",
                l ? "churn" : "stay",
                (unsigned long long)atomic_load_explicit(&m->versions[i].by_label[l],
                                                         memory_order_relaxed));
    }
    help_type(b, "churn_prediction_score", "histogram", "Calibrated churn probabilities served.");
    {
        uint64_t cum = 0;
        for (int k = 0; k < M_N_SCORE; k++) {
            cum += atomic_load_explicit(&m->score[k], memory_order_relaxed);
            if (k < M_N_SCORE - 1)
                ch_buf_printf(b, "churn_prediction_score_bucket{le=\"%.1f\"} %llu\n",
                              (double)(k + 1) / M_N_SCORE, (unsigned long long)cum);
        }
        ch_buf_printf(b, "churn_prediction_score_bucket{le=\"+Inf\"} %llu\n",
                      (unsigned long long)cum);
        ch_buf_printf(b, "churn_prediction_score_sum %.6f\n",
                      (double)atomic_load_explicit(&m->score_sum_micro, memory_order_relaxed) *
                          1e-6);
        ch_buf_printf(b, "churn_prediction_score_count %llu\n", (unsigned long long)cum);
    }
    help_type(b, "churn_feedback_total", "counter", "Feedback labels recorded.");
    ch_buf_printf(b, "churn_feedback_total %llu\n",
                  (unsigned long long)atomic_load_explicit(&m->feedback, memory_order_relaxed));
    help_type(b, "churn_rate_limited_total", "counter",
              "Requests refused with 429 by the per-principal rate limit.");
    ch_buf_printf(b, "churn_rate_limited_total %llu\n",
                  (unsigned long long)atomic_load_explicit(&m->rate_limited, memory_order_relaxed));
    help_type(b, "churn_auth_failures_total", "counter",
              "Requests refused for missing, invalid or expired credentials.");
    ch_buf_printf(
        b, "churn_auth_failures_total %llu\n",
        (unsigned long long)atomic_load_explicit(&m->auth_failures, memory_order_relaxed));
    help_type(b, "churn_unknown_categories_total", "counter",
              "Request fields with a category the model has not seen (scored as other).");
    ch_buf_printf(
        b, "churn_unknown_categories_total %llu\n",
        (unsigned long long)atomic_load_explicit(&m->unknown_categories, memory_order_relaxed));
    help_type(b, "churn_model_loads_total", "counter", "Model loads by result.");
    ch_buf_printf(
        b, "churn_model_loads_total{result=\"ok\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&m->model_loads_ok, memory_order_relaxed));
    ch_buf_printf(
        b, "churn_model_loads_total{result=\"failed\"} %llu\n",
        (unsigned long long)atomic_load_explicit(&m->model_loads_failed, memory_order_relaxed));
    help_type(b, "churn_model_swaps_total", "counter",
              "Times the served model was replaced while serving.");
    ch_buf_printf(b, "churn_model_swaps_total %llu\n",
                  (unsigned long long)atomic_load_explicit(&m->model_swaps, memory_order_relaxed));
    {
        static const char *const arms[M_N_ARMS] = {"none", "champion", "candidate"};
        help_type(b, "churn_arm_predictions_total", "counter",
                  "Records scored, by rollout arm (none: no canary running).");
        for (int a = 0; a < M_N_ARMS; a++)
            ch_buf_printf(b, "churn_arm_predictions_total{arm=\"%s\"} %llu\n", arms[a],
                          (unsigned long long)atomic_load_explicit(&m->arm_predictions[a],
                                                                   memory_order_relaxed));
        help_type(b, "churn_arm_errors_total", "counter", "Records an arm failed to score.");
        for (int a = 0; a < M_N_ARMS; a++)
            ch_buf_printf(
                b, "churn_arm_errors_total{arm=\"%s\"} %llu\n", arms[a],
                (unsigned long long)atomic_load_explicit(&m->arm_errors[a], memory_order_relaxed));
        help_type(b, "churn_arm_scoring_seconds", "histogram",
                  "Time from a request's start to its record scored, by arm.");
        for (int a = 0; a < M_N_ARMS; a++) {
            uint64_t cum = 0;
            for (int k = 0; k <= M_N_LATENCY; k++) {
                cum += atomic_load_explicit(&m->arm_lat[a][k], memory_order_relaxed);
                if (k < M_N_LATENCY)
                    ch_buf_printf(b,
                                  "churn_arm_scoring_seconds_bucket{arm=\"%s\",le=\"%g\"} %llu\n",
                                  arms[a], lat_le[k], (unsigned long long)cum);
                else
                    ch_buf_printf(
                        b,
                        "churn_arm_scoring_seconds_bucket{arm=\"%s\",le=\"+Inf\"} %llu\n"
                        "churn_arm_scoring_seconds_sum{arm=\"%s\"} %.9f\n"
                        "churn_arm_scoring_seconds_count{arm=\"%s\"} %llu\n",
                        arms[a], (unsigned long long)cum, arms[a],
                        (double)atomic_load_explicit(&m->arm_lat_sum_ns[a], memory_order_relaxed) /
                            1e9,
                        arms[a], (unsigned long long)cum);
            }
        }
        help_type(b, "churn_shadow_scored_total", "counter",
                  "Records the shadow candidate scored off the request path.");
        ch_buf_printf(
            b, "churn_shadow_scored_total %llu\n",
            (unsigned long long)atomic_load_explicit(&m->shadow_scored, memory_order_relaxed));
        help_type(b, "churn_shadow_skipped_total", "counter",
                  "Records logged without a shadow score (queue full or no inputs).");
        ch_buf_printf(
            b, "churn_shadow_skipped_total %llu\n",
            (unsigned long long)atomic_load_explicit(&m->shadow_skipped, memory_order_relaxed));
    }
}
