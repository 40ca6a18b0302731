/*
 * jobs.c -- the monitoring scheduler inside `churn serve`.
 *
 * One thread runs the drift, decay and estimate jobs (ch_watch_run) every
 * monitor.interval_s seconds, on its own store connection, at a lower
 * scheduling priority than the request threads: jobs never run on the
 * request path and never two at a time. A failing job is logged and
 * counted, and the next one runs on schedule. Each result is kept in the
 * store with its history (ch_registry_monitor_put) and in memory, where
 * GET /v1/monitor/{drift,decay,estimate} and the /metrics gauges read it
 * under a lock held only to copy.
 */
#define _GNU_SOURCE /* gettid and thread names */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/json.h"
#include "ch/watch.h"
#include "server.h"

#define JOB_NICE 19 /* background work's priority: the lowest */

static const char *const kinds[] = {"drift", "decay", "estimate"};

void thread_name(const char *name)
{
    pthread_setname_np(pthread_self(), name); /* shown by top -H; cosmetic */
}

/* nice 19 rather than SCHED_IDLE: under a saturating load a SCHED_IDLE
 * job may not finish at all (it measured no faster for the requests in
 * bench/serve.sh), while at nice 19 it always progresses; what it may
 * take while requests are served is bounded by pacing (monitor.cpu_share,
 * below). Threads the caller starts inherit the value. */
void background_thread(const char *what)
{
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), JOB_NICE) != 0)
        server_log("%s run at normal priority: %s", what, strerror(errno));
}

/* Copies what the gauges need from a finished job (under jobs.mu). */
static void keep_gauges(monitor_jobs *J, const ch_watch_result *res)
{
    ch_json *d = NULL;
    const ch_json *cols;
    J->n_feat = 0;
    if (res->drift_json != NULL &&
        ch_json_parse(res->drift_json, strlen(res->drift_json), &d, NULL) == CH_OK) {
        cols = ch_json_get(d, "columns");
        for (size_t i = 0; i < ch_json_len(cols) && J->n_feat < MONITOR_MAX_FEATURES; i++) {
            const ch_json *c = ch_json_at(cols, i);
            const char *st = ch_json_str(ch_json_get(c, "status"), NULL);
            feature_gauge *g = &J->feat[J->n_feat];
            g->psi = NAN;
            if (ch_json_num(ch_json_get(c, "psi"), &g->psi) != 0)
                continue;
            snprintf(g->name, sizeof g->name, "%s", ch_json_str(ch_json_get(c, "name"), NULL));
            g->alert = st != NULL && strcmp(st, "drift") == 0;
            J->n_feat++;
        }
    }
    ch_json_free(d);
    J->score_psi = res->summary.score_psi;
    J->score_alert = res->summary.score_drifted;
    J->n_versions = 0;
    for (size_t i = 0; i < res->n_versions && J->n_versions < MONITOR_MAX_VERSIONS; i++)
        J->versions[J->n_versions++] = res->versions[i];
    J->min_labels = J->job.opts.min_labels;
}

/* Whether word 'w' is in the comma-separated 'list'. */
static int in_list(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
        if ((p == list || p[-1] == ',' || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/* Queues a retraining job when a verdict named in retrain.signals holds:
 * decay (realized ROC AUC below the reference), concept (the estimate's
 * diagnosis), estimate (the label-free estimate dropped), drift (an input
 * column or the score drifted). retrain_request() applies the cool-down. */
static int is_cooldown(const char *why)
{
    return strncmp(why, "the last retraining job was", 27) == 0;
}

static void maybe_retrain(app *a, ch_registry *reg, const ch_monitor_summary *s)
{
    const char *signals = ch_config_str(a->cfg, "retrain.signals");
    const char *why = NULL;
    char skip[512];
    int64_t id = 0;
    ch_error err = {0};
    if (s->decayed && in_list(signals, "decay"))
        why = "decay";
    else if (strcmp(s->diagnosis, "concept_drift") == 0 && in_list(signals, "concept"))
        why = "concept";
    else if (s->estimate_dropped && in_list(signals, "estimate"))
        why = "estimate";
    else if ((s->n_drifted > 0 || s->score_drifted) && in_list(signals, "drift"))
        why = "drift";
    if (why == NULL) {
        a->retrain.last_skip[0] = '\0';
        return;
    }
    /* A job with too few labels would only fail and start the cooldown;
     * the window's labels are a lower bound of what retraining finds. */
    if (s->labels < (size_t)ch_config_num(a->cfg, "retrain.min_labels")) {
        snprintf(skip, sizeof skip, "%zu labels in the window, retrain.min_labels is %.0f",
                 s->labels, ch_config_num(a->cfg, "retrain.min_labels"));
    } else if (retrain_request(a, reg, why, ACTOR_SERVE, 1, &id, skip, sizeof skip, &err) !=
               CH_OK) {
        server_log("monitoring: %s, but no retraining job: %s", why, err.msg);
        return;
    }
    /* Said once, not at every run while nothing changes. */
    if (id == 0 && strcmp(skip, a->retrain.last_skip) != 0 &&
        !(is_cooldown(skip) && is_cooldown(a->retrain.last_skip)))
        server_log("monitoring: %s; no retraining job now: %s", why, skip);
    snprintf(a->retrain.last_skip, sizeof a->retrain.last_skip, "%s", id == 0 ? skip : "");
}

/*
 * Pacing: while the server answers predictions, a job's measures work at
 * most monitor.cpu_share of the time. At each unit of work (a column's
 * measures, an interval) it sleeps so that the time it worked since the
 * last unit is that share of the time since; with no prediction since the
 * last unit it goes on at full speed. The read of the log is not paced: it
 * is one read transaction, and the longer it lasts the more the WAL grows
 * under the log writer. The sleep is cut short when the server stops, so
 * shutdown never waits for it. Nice 19 alone left a job running back to
 * back costing about 13% of the predictions/s in bench/serve.sh: the nice
 * value ranks runnable threads, but a job still takes the moments requests
 * leave a core idle, and with them cache and memory bandwidth.
 */
typedef struct pacer {
    app *a;
    double share;
    double t_work;     /* when the current unit of work began */
    uint64_t n_served; /* predictions scored then */
} pacer;

static void job_pace(void *ctx)
{
    pacer *p = ctx;
    if (metrics_predictions(&p->a->m) != p->n_served && p->share < 1) {
        double nap = (http_now() - p->t_work) * (1 / p->share - 1);
        if (nap > 2)
            nap = 2; /* a long unit of work: catch up over several */
        while (nap > 0 && !atomic_load(&p->a->stopping)) {
            double d = nap < 0.02 ? nap : 0.02;
            struct timespec ts = {0, (long)(d * 1e9)};
            nanosleep(&ts, NULL);
            nap -= d;
        }
    }
    p->n_served = metrics_predictions(&p->a->m);
    p->t_work = http_now();
}

/* Runs one job; returns 1 when it succeeded. */
static int run_once(app *a, ch_registry *reg)
{
    monitor_jobs *J = &a->jobs;
    ch_watch_result res = {0}; /* written only on success, reset either way */
    ch_error err = {0};
    double t0 = http_now();
    pacer pc = {a, ch_config_num(a->cfg, "monitor.cpu_share"), t0, metrics_predictions(&a->m)};
    ch_err rc;
    J->job.opts.pace = job_pace;
    J->job.opts.pace_ctx = &pc;
    atomic_store(&J->running, 1);
    rc = ch_watch_run(reg, &J->job, &res, &err);
    atomic_store(&J->running, 0);
    J->job.opts.pace = NULL;
    J->job.opts.pace_ctx = NULL;
    int64_t now = unix_now_ms();
    if (rc == CH_OK) {
        const char *docs[3] = {res.drift_json, res.decay_json, res.estimate_json};
        for (int k = 0; k < 3 && rc == CH_OK; k++)
            if (docs[k] != NULL)
                rc = ch_registry_monitor_put(reg, kinds[k], res.version, res.since_ms, res.until_ms,
                                             (int64_t)res.rows, docs[k], &err);
    }
    pthread_mutex_lock(&J->mu);
    if (rc == CH_OK) {
        keep_gauges(J, &res);
        for (int k = 0; k < 3; k++)
            ch_free(J->doc[k]);
        J->doc[0] = res.drift_json;
        J->doc[1] = res.decay_json;
        J->doc[2] = res.estimate_json;
        res.drift_json = res.decay_json = res.estimate_json = NULL;
        J->computed_ms = now;
        J->version = res.version;
        J->rows = res.rows;
        J->runs_ok++;
        J->last_success_s = (double)now / 1e3;
        J->seconds = http_now() - t0;
    } else {
        J->runs_failed++;
        snprintf(J->last_error, sizeof J->last_error, "%s", err.msg);
    }
    pthread_mutex_unlock(&J->mu);
    if (rc != CH_OK)
        server_log("monitoring job failed: %s", err.msg);
    else
        maybe_retrain(a, reg, &res.summary);
    ch_watch_result_reset(&res);
    return rc == CH_OK;
}

static void *jobs_main(void *arg)
{
    app *a = arg;
    monitor_jobs *J = &a->jobs;
    ch_registry *reg = NULL;
    ch_registry_opts ro;
    int warned = 0;
    /* Below the request threads: a job may take a second of CPU, and a
     * request must not wait for it. */
    thread_name("churn-monitor");
    background_thread("monitoring jobs");
    ch_registry_opts_default(&ro);
    pthread_mutex_lock(&a->stop_mu);
    while (!atomic_load(&a->stopping)) {
        struct timespec until;
        int due;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += J->first ? J->first_delay_s : J->interval_s;
        while (!atomic_load(&a->stopping) && !atomic_load(&J->trigger)) {
            if (pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &until) == ETIMEDOUT)
                break;
        }
        if (atomic_load(&a->stopping))
            break;
        due = 1;
        J->first = 0;
        atomic_store(&J->trigger, 0);
        pthread_mutex_unlock(&a->stop_mu);
        if (reg == NULL) {
            ch_error err = {0};
            if (ch_registry_open(ch_config_str(a->cfg, "registry.url"), &ro, &reg, &err) != CH_OK) {
                if (!warned)
                    server_log("monitoring: cannot open the registry: %s", err.msg);
                warned = 1;
                pthread_mutex_lock(&J->mu);
                J->runs_failed++;
                snprintf(J->last_error, sizeof J->last_error, "%s", err.msg);
                pthread_mutex_unlock(&J->mu);
                due = 0;
            }
        }
        if (due)
            run_once(a, reg);
        pthread_mutex_lock(&a->stop_mu);
    }
    pthread_mutex_unlock(&a->stop_mu);
    ch_registry_close(reg);
    return NULL;
}

ch_err jobs_start(app *a, ch_error *err)
{
    monitor_jobs *J = &a->jobs;
    ch_err rc;
    pthread_mutex_init(&J->mu, NULL);
    J->interval_s = (int)ch_config_num(a->cfg, "monitor.interval_s");
    J->first = 1;
    /* The first job soon after start, once requests have had a moment. */
    J->first_delay_s = J->interval_s < 5 ? J->interval_s : 5;
    rc = ch_watch_job_from_config(a->cfg, &J->job, err);
    if (rc != CH_OK)
        return rc;
    if (!a->follow) {
        server_log("monitoring jobs are off: they follow the registry's champion, and this "
                   "server serves a file");
        return CH_OK;
    }
    if (J->interval_s == 0)
        return CH_OK;
    if (pthread_create(&J->thr, NULL, jobs_main, a) != 0)
        return ch_error_set(err, CH_EIO, "cannot start the monitoring scheduler");
    J->started = 1;
    return CH_OK;
}

void jobs_stop(app *a)
{
    monitor_jobs *J = &a->jobs;
    if (J->started)
        pthread_join(J->thr, NULL);
    J->started = 0;
    for (int k = 0; k < 3; k++) {
        ch_free(J->doc[k]);
        J->doc[k] = NULL;
    }
    pthread_mutex_destroy(&J->mu);
}

int jobs_trigger(app *a)
{
    if (!a->jobs.started)
        return 0;
    atomic_store(&a->jobs.trigger, 1);
    pthread_mutex_lock(&a->stop_mu);
    pthread_cond_broadcast(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
    return 1;
}

int jobs_latest(app *a, const char *kind, ch_buf *b)
{
    monitor_jobs *J = &a->jobs;
    int k = -1;
    int found = 0;
    for (int i = 0; i < 3; i++)
        if (strcmp(kind, kinds[i]) == 0)
            k = i;
    if (k < 0)
        return 0;
    pthread_mutex_lock(&J->mu);
    if (J->doc[k] != NULL) {
        char at[32];
        time_t t = (time_t)(J->computed_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
        ch_buf_printf(b,
                      "{\"kind\": \"%s\", \"computed_at\": \"%s\", \"model_version\": %lld, "
                      "\"window\": ",
                      kind, at, (long long)J->version);
        ch_buf_json_str(b, J->job.window, strlen(J->job.window));
        ch_buf_printf(b, ", \"predictions\": %zu, \"seconds\": %.3f, \"result\": ", J->rows,
                      J->seconds);
        ch_buf_puts(b, J->doc[k]);
        ch_buf_putc(b, '}');
        found = 1;
    }
    pthread_mutex_unlock(&J->mu);
    return found;
}

static void gauge_head(ch_buf *b, const char *name, const char *type, const char *help)
{
    ch_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label_value(ch_buf *b, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            ch_buf_putc(b, '\\');
        if (*s == '\n') {
            ch_buf_puts(b, "\\n");
            continue;
        }
        ch_buf_putc(b, *s);
    }
}

static void value(ch_buf *b, double v)
{
    if (isnan(v))
        ch_buf_puts(b, "NaN\n");
    else
        ch_buf_printf(b, "%.17g\n", v);
}

void jobs_metrics(app *a, ch_buf *b)
{
    monitor_jobs *J = &a->jobs;
    pthread_mutex_lock(&J->mu);
    gauge_head(b, "churn_feature_drift_psi", "gauge",
               "PSI of an input column, current window against the training reference.");
    for (size_t i = 0; i < J->n_feat; i++) {
        ch_buf_puts(b, "churn_feature_drift_psi{feature=\"");
        label_value(b, J->feat[i].name);
        ch_buf_puts(b, "\"} ");
        value(b, J->feat[i].psi);
    }
    gauge_head(b, "churn_feature_drift_alert", "gauge",
               "1 when the service judges the column drifted (PSI, or adjusted p-value and PSI).");
    for (size_t i = 0; i < J->n_feat; i++) {
        ch_buf_puts(b, "churn_feature_drift_alert{feature=\"");
        label_value(b, J->feat[i].name);
        ch_buf_printf(b, "\"} %d\n", J->feat[i].alert);
    }
    if (J->runs_ok > 0) {
        gauge_head(b, "churn_score_drift_psi", "gauge",
                   "PSI of the served churn probabilities against the reference.");
        ch_buf_puts(b, "churn_score_drift_psi ");
        value(b, J->score_psi);
        gauge_head(b, "churn_score_drift_alert", "gauge", "1 when the score has drifted.");
        ch_buf_printf(b, "churn_score_drift_alert %d\n", J->score_alert);
    }
    gauge_head(b, "churn_reference_roc_auc", "gauge",
               "Held-out test ROC AUC of a model version at training.");
    for (size_t i = 0; i < J->n_versions; i++)
        if (!isnan(J->versions[i].reference_auc)) {
            ch_buf_printf(b, "churn_reference_roc_auc{model_version=\"%lld\"} ",
                          (long long)J->versions[i].version);
            value(b, J->versions[i].reference_auc);
        }
    gauge_head(b, "churn_estimated_roc_auc", "gauge",
               "Label-free estimate of a version's ROC AUC over the window.");
    for (size_t i = 0; i < J->n_versions; i++)
        if (!isnan(J->versions[i].estimated_auc)) {
            ch_buf_printf(b, "churn_estimated_roc_auc{model_version=\"%lld\"} ",
                          (long long)J->versions[i].version);
            value(b, J->versions[i].estimated_auc);
        }
    gauge_head(b, "churn_realized_roc_auc", "gauge",
               "ROC AUC of a version from feedback labels (from monitor.min_labels labels).");
    for (size_t i = 0; i < J->n_versions; i++)
        if (!isnan(J->versions[i].realized_auc) && J->versions[i].labels >= J->min_labels) {
            ch_buf_printf(b, "churn_realized_roc_auc{model_version=\"%lld\"} ",
                          (long long)J->versions[i].version);
            value(b, J->versions[i].realized_auc);
        }
    gauge_head(b, "churn_feedback_labels", "gauge",
               "Predictions of a version in the window whose outcome is known.");
    for (size_t i = 0; i < J->n_versions; i++)
        ch_buf_printf(b, "churn_feedback_labels{model_version=\"%lld\"} %zu\n",
                      (long long)J->versions[i].version, J->versions[i].labels);
    gauge_head(b, "churn_monitor_last_success_timestamp_seconds", "gauge",
               "When a monitoring job last succeeded (unix seconds; 0: never).");
    for (int k = 0; k < 3; k++)
        ch_buf_printf(b, "churn_monitor_last_success_timestamp_seconds{monitor=\"%s\"} %.3f\n",
                      kinds[k], J->last_success_s);
    gauge_head(b, "churn_monitor_runs_total", "counter", "Monitoring jobs run, by result.");
    for (int k = 0; k < 3; k++)
        ch_buf_printf(b,
                      "churn_monitor_runs_total{monitor=\"%s\",result=\"ok\"} %llu\n"
                      "churn_monitor_runs_total{monitor=\"%s\",result=\"failed\"} %llu\n",
                      kinds[k], (unsigned long long)J->runs_ok, kinds[k],
                      (unsigned long long)J->runs_failed);
    gauge_head(b, "churn_monitor_job_seconds", "gauge", "How long the last monitoring job took.");
    ch_buf_printf(b, "churn_monitor_job_seconds %.6f\n", J->seconds);
    gauge_head(b, "churn_monitor_job_running", "gauge", "1 while a monitoring job runs.");
    ch_buf_printf(b, "churn_monitor_job_running %d\n", atomic_load(&J->running));
    pthread_mutex_unlock(&J->mu);
}
