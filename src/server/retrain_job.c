/*
 * retrain_job.c -- retraining inside `churn serve`, off the request path.
 *
 * A retraining job is a row of the store's jobs table (registry.h), added
 * by a monitoring verdict (jobs.c, retrain.signals), by the Alertmanager
 * hook (h_jobs.c), by POST /v1/jobs, or by `churn retrain --queue`. One
 * worker thread claims queued jobs one at a time (a claim is atomic, so of
 * several servers on one store one runs it) and runs ch_retrain_run() on
 * its own store connection: the configured training data plus the
 * feedback-labelled predictions, a tracked run, the gate against the
 * champion, and the challenger registered only when it passes. Progress
 * and stage go to the job row as training advances; a cancel request
 * (POST /v1/jobs/{id}/cancel) is polled and stops training between fits.
 * Several servers may share one store, so a claimed job records its
 * owner (this server: "host:pid:start") and a heartbeat, refreshed every
 * HEARTBEAT_MS while it runs (and with every progress write). A running
 * job is marked interrupted only once its runner is gone: its heartbeat
 * is older than STALE_MS (checked when a server starts and every SWEEP_S),
 * or its owner is a process of this host that no longer exists (a server
 * killed and started again finds its old job at once). The version is
 * registered in one transaction, so such a job has either registered
 * nothing or all of it.
 * When the challenger passes and rollout.auto is on, a canary rollout of it
 * starts at once.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/json.h"
#include "ch/retrain.h"
#include "ch/rollout.h"
#include "ch/watch.h"
#include "server.h"

#define KIND           "retrain"
#define POLL_S         2   /* queued jobs added by other processes are seen this fast */
#define PROGRESS_MS    500 /* progress written to the store at most this often */
#define CANCEL_POLL_MS 1000
#define HEARTBEAT_MS   5000  /* a running job's heartbeat is refreshed this often */
#define STALE_MS       60000 /* ... and its runner is taken for gone after this long without */
#define SWEEP_S        30    /* how often a server looks for jobs whose runner is gone */

/* This server as a job owner: "host:pid:start_ms", set by retrain_start(). */
static char owner_id[160];
static char host_name[128];

typedef struct progress_ctx {
    app *a;
    int64_t id;
    ch_registry *preg; /* the progress connection */
    pthread_mutex_t mu;
    int64_t last_ms, last_cancel_ms;
    volatile int cancel;
} progress_ctx;

/* Training calls this (from its worker threads too): the job row follows
 * at most every PROGRESS_MS, and the cancel flag every CANCEL_POLL_MS. */
static void on_progress(void *ctx, const char *stage, size_t done, size_t total)
{
    progress_ctx *p = ctx;
    int64_t now = unix_now_ms();
    pthread_mutex_lock(&p->mu);
    if (now - p->last_ms >= PROGRESS_MS || done == total) {
        double f = total > 0 ? (double)done / (double)total : 0;
        ch_error err = {0};
        /* Reading data and the gate take the first and last tenth. */
        if (ch_registry_job_update(p->preg, p->id, CH_JOB_RUNNING, 0.1 + 0.8 * f, stage, NULL, NULL,
                                   &err) != CH_OK)
            server_log("retrain job %lld: progress not written: %s", (long long)p->id, err.msg);
        p->last_ms = now;
    }
    if (atomic_load(&p->a->stopping))
        p->cancel = 1; /* the server stops: the job is interrupted, not finished */
    if (now - p->last_cancel_ms >= CANCEL_POLL_MS) {
        int yes = 0;
        if (ch_registry_job_cancel_requested(p->preg, p->id, &yes, NULL) == CH_OK && yes)
            p->cancel = 1;
        p->last_cancel_ms = now;
    }
    pthread_mutex_unlock(&p->mu);
}

/* The tracked run exists: the job row names it, so that a server killed
 * during training can end that run when it starts again. */
static void on_run(void *ctx, int64_t run_id)
{
    progress_ctx *p = ctx;
    char doc[64];
    ch_error err = {0};
    snprintf(doc, sizeof doc, "{\"run_id\": %lld}", (long long)run_id);
    pthread_mutex_lock(&p->mu);
    if (ch_registry_job_update(p->preg, p->id, CH_JOB_RUNNING, -1, NULL, doc, NULL, &err) != CH_OK)
        server_log("retrain job %lld: run %lld not recorded: %s", (long long)p->id,
                   (long long)run_id, err.msg);
    pthread_mutex_unlock(&p->mu);
}

/* The heartbeat of a running job, on the progress connection (under its
 * mutex): training may go longer than STALE_MS between two progress
 * calls, a heartbeat thread does not. */
typedef struct beat_ctx {
    progress_ctx *p;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} beat_ctx;

static void *beat_main(void *arg)
{
    beat_ctx *b = arg;
    thread_name("churn-heartbeat");
    pthread_mutex_lock(&b->mu);
    while (!b->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += HEARTBEAT_MS / 1000;
        if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT && !b->done) {
            ch_error err = {0};
            pthread_mutex_lock(&b->p->mu);
            if (ch_registry_job_heartbeat(b->p->preg, b->p->id, &err) != CH_OK)
                server_log("retrain job %lld: heartbeat not written: %s", (long long)b->p->id,
                           err.msg);
            pthread_mutex_unlock(&b->p->mu);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Runs claimed job 'id'. */
static void run_job(app *a, ch_registry *reg, ch_registry *preg, int64_t id)
{
    beat_ctx beat;
    pthread_t beat_thr;
    int beating;
    ch_retrain_opts o;
    ch_retrain_result res;
    ch_error err = {0};
    progress_ctx pc;
    ch_buf rj, cj;
    const char *base = ch_config_str(a->cfg, "retrain.base_data");
    char data[4096] = "";
    char fams[256];
    int64_t span = 0;
    size_t last_n = 0;
    int64_t rollout_id = 0;
    ch_err bad_settings;
    ch_err rc;

    memset(&pc, 0, sizeof pc);
    pc.a = a;
    pc.id = id;
    pc.preg = preg;
    pthread_mutex_init(&pc.mu, NULL);
    ch_retrain_opts_default(&o);
    ch_buf_init(&rj, 1 << 20);
    ch_buf_init(&cj, (size_t)16 << 20);
    server_log("retrain job %lld started", (long long)id);
    if (ch_registry_job_update(preg, id, CH_JOB_RUNNING, 0.02, "reading the data", NULL, NULL,
                               &err) != CH_OK)
        server_log("retrain job %lld: progress not written: %s", (long long)id, err.msg);
    if (strcmp(base, "config") == 0) {
        const char *path = ch_config_str(a->cfg, "data.path");
        if (path[0] != '\0')
            snprintf(data, sizeof data, "%s", path);
        else
            snprintf(data, sizeof data, "%s/data/simulated-%.0f-%.0f.csv",
                     ch_config_str(a->cfg, "workdir"), ch_config_num(a->cfg, "data.simulate_rows"),
                     ch_config_num(a->cfg, "data.simulate_seed"));
        o.base_csv = data;
    }
    if (ch_watch_parse_window(ch_config_str(a->cfg, "retrain.labels_window"), &span, &last_n,
                              NULL) == CH_OK &&
        span > 0)
        o.labels_since_ms = unix_now_ms() - span;
    o.min_labels = (size_t)ch_config_num(a->cfg, "retrain.min_labels");
    o.margin = ch_config_num(a->cfg, "retrain.margin");
    o.workdir = ch_config_str(a->cfg, "workdir");
    o.features = ch_config_section(a->cfg, "features");
    o.actor = ACTOR_SERVE;
    o.reason = "retrained from feedback";
    o.max_reject_rate = ch_config_num(a->cfg, "data.max_reject_rate");
    o.code_version = "serve";
    if (ch_config_to_json(a->cfg, &cj) == CH_OK)
        o.config_json = cj.data;
    bad_settings = ch_train_opts_from_config(a->cfg, &o.train, fams, sizeof fams, &err);
    o.train.threads = 1; /* the request threads keep the other core */
    o.train.progress = on_progress;
    o.train.progress_ctx = &pc;
    o.train.cancel = &pc.cancel;
    o.on_run = on_run;

    memset(&beat, 0, sizeof beat);
    beat.p = &pc;
    pthread_mutex_init(&beat.mu, NULL);
    pthread_cond_init(&beat.cv, NULL);
    beating = pthread_create(&beat_thr, NULL, beat_main, &beat) == 0;
    if (!beating)
        server_log("retrain job %lld: no heartbeat thread; progress writes keep the job alive",
                   (long long)id);
    atomic_store(&a->retrain.running, 1);
    rc = bad_settings != CH_OK ? bad_settings : ch_retrain_run(reg, &o, &res, &err);
    atomic_store(&a->retrain.running, 0);
    if (beating) {
        pthread_mutex_lock(&beat.mu);
        beat.done = 1;
        pthread_cond_signal(&beat.cv);
        pthread_mutex_unlock(&beat.mu);
        pthread_join(beat_thr, NULL);
    }
    pthread_cond_destroy(&beat.cv);
    pthread_mutex_destroy(&beat.mu);
    if (rc == CH_OK && res.version > 0 && ch_config_num(a->cfg, "rollout.auto") != 0) {
        ch_error e2 = {0};
        char why[128];
        snprintf(why, sizeof why, "retrained by job %lld", (long long)id);
        if (ch_rollout_begin(reg, a->cfg, res.version, NULL, -1, NULL, ACTOR_SERVE, why,
                             &rollout_id, &e2) == CH_OK) {
            server_log("retrain job %lld: rollout %lld of v%lld started", (long long)id,
                       (long long)rollout_id, (long long)res.version);
            rollout_wake(a);
        } else {
            server_log("retrain job %lld: no rollout of v%lld: %s", (long long)id,
                       (long long)res.version, e2.msg);
        }
    }
    if (rc == CH_OK) {
        ch_buf_printf(
            &rj,
            "{\"run_id\": %lld, \"version\": %lld, \"champion\": %lld, \"base_rows\": %zu, "
            "\"label_rows\": %zu, \"candidate_auc\": ",
            (long long)res.run_id, (long long)res.version, (long long)res.champion, res.base_rows,
            res.label_rows);
        if (isfinite(res.candidate_auc))
            ch_buf_json_num(&rj, res.candidate_auc);
        else
            ch_buf_puts(&rj, "null");
        ch_buf_puts(&rj, ", \"champion_auc\": ");
        if (isfinite(res.champion_auc))
            ch_buf_json_num(&rj, res.champion_auc);
        else
            ch_buf_puts(&rj, "null");
        ch_buf_puts(&rj, ", \"note\": ");
        ch_buf_json_str(&rj, res.note, strlen(res.note));
        if (rollout_id > 0)
            ch_buf_printf(&rj, ", \"rollout\": %lld", (long long)rollout_id);
        ch_buf_putc(&rj, '}');
        rc = ch_registry_job_update(preg, id, CH_JOB_SUCCEEDED, 1, "done", rj.data, NULL, &err);
        atomic_fetch_add(&a->retrain.ended[CH_JOB_SUCCEEDED], 1);
        atomic_fetch_add(res.version > 0 ? &a->retrain.registered : &a->retrain.refused, 1);
        server_log("retrain job %lld: %s", (long long)id,
                   res.version > 0 ? "challenger registered" : res.note);
    } else {
        ch_error e2 = {0};
        int stopping = atomic_load(&a->stopping);
        ch_job_status st = rc != CH_ECANCELLED ? CH_JOB_FAILED
                           : stopping          ? CH_JOB_INTERRUPTED
                                               : CH_JOB_CANCELLED;
        if (stopping && rc == CH_ECANCELLED)
            snprintf(err.msg, sizeof err.msg, "the server stopped while the job ran");
        atomic_fetch_add(&a->retrain.ended[st], 1);
        if (ch_registry_job_update(preg, id, st, -1, ch_job_status_name(st), NULL, err.msg, &e2) !=
            CH_OK)
            server_log("retrain job %lld: status not written: %s", (long long)id, e2.msg);
        server_log("retrain job %lld %s: %s", (long long)id, ch_job_status_name(st), err.msg);
    }
    ch_buf_reset(&rj);
    ch_buf_reset(&cj);
    pthread_mutex_destroy(&pc.mu);
}

/* Whether 'owner' names a process of this host that no longer exists. */
static int owner_dead_here(const char *owner)
{
    size_t n = strlen(host_name);
    char *end = NULL;
    long pid;
    if (owner == NULL || strncmp(owner, host_name, n) != 0 || owner[n] != ':' ||
        strcmp(owner, owner_id) == 0)
        return 0;
    pid = strtol(owner + n + 1, &end, 10);
    if (end == NULL || *end != ':' || pid <= 0)
        return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Marks interrupted the running jobs whose runner is gone: a stale
 * heartbeat, or an owner of this host that is not running any more.
 * Returns how many. */
static int64_t interrupt_gone(app *a, ch_registry *reg)
{
    const char *why = "the server running the job stopped";
    ch_error err = {0};
    ch_json *doc = NULL;
    ch_buf b;
    int64_t total = 0;
    int64_t n = 0;
    (void)a;
    if (ch_registry_jobs_interrupt_stale(reg, why, STALE_MS, NULL, &n, &err) != CH_OK)
        server_log("retraining: looking for abandoned jobs: %s", err.msg);
    total += n;
    ch_buf_init(&b, 4 << 20);
    if (ch_registry_jobs_json(reg, 0, 200, &b, NULL) == CH_OK &&
        ch_json_parse(b.data, b.len, &doc, NULL) == CH_OK) {
        for (size_t i = 0; i < ch_json_len(doc); i++) {
            const ch_json *j = ch_json_at(doc, i);
            const char *st = ch_json_str(ch_json_get(j, "status"), NULL);
            const char *owner = ch_json_str(ch_json_get(j, "owner"), NULL);
            if (st == NULL || strcmp(st, "running") != 0 || !owner_dead_here(owner))
                continue;
            n = 0;
            if (ch_registry_jobs_interrupt_stale(reg, why, STALE_MS, owner, &n, &err) != CH_OK)
                server_log("retraining: interrupting the jobs of %s: %s", owner, err.msg);
            total += n;
        }
    }
    ch_json_free(doc);
    ch_buf_reset(&b);
    if (total > 0)
        server_log("%lld unfinished jobs marked interrupted (their server is gone)",
                   (long long)total);
    return total;
}

static void *worker_main(void *arg)
{
    app *a = arg;
    retrain_live *R = &a->retrain;
    ch_registry *reg = NULL;
    ch_registry *preg = NULL;
    ch_registry_opts ro;
    int64_t last_sweep_ms = unix_now_ms();
    thread_name("churn-retrain");
    background_thread("retraining jobs");
    ch_registry_opts_default(&ro);
    pthread_mutex_lock(&a->stop_mu);
    while (!atomic_load(&a->stopping)) {
        struct timespec until;
        int64_t id = 0;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += POLL_S;
        while (!atomic_load(&a->stopping) && !atomic_load(&R->wake))
            if (pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &until) == ETIMEDOUT)
                break;
        atomic_store(&R->wake, 0);
        if (atomic_load(&a->stopping))
            break;
        pthread_mutex_unlock(&a->stop_mu);
        if (reg == NULL || preg == NULL) {
            ch_error err = {0};
            ch_registry_close(reg);
            ch_registry_close(preg);
            reg = preg = NULL;
            if (ch_registry_open(ch_config_str(a->cfg, "registry.url"), &ro, &reg, &err) != CH_OK ||
                ch_registry_open(ch_config_str(a->cfg, "registry.url"), &ro, &preg, &err) != CH_OK)
                server_log("retraining: cannot open the registry: %s", err.msg);
        }
        if (reg != NULL && unix_now_ms() - last_sweep_ms >= SWEEP_S * 1000) {
            interrupt_gone(a, reg);
            last_sweep_ms = unix_now_ms();
        }
        if (reg != NULL && preg != NULL &&
            ch_registry_job_claim_as(reg, KIND, owner_id, &id, NULL) == CH_OK && id > 0)
            run_job(a, reg, preg, id);
        pthread_mutex_lock(&a->stop_mu);
    }
    pthread_mutex_unlock(&a->stop_mu);
    ch_registry_close(reg);
    ch_registry_close(preg);
    return NULL;
}

ch_err retrain_start(app *a, ch_error *err)
{
    retrain_live *R = &a->retrain;
    struct timespec ts;
    if (!a->follow)
        return CH_OK;
    (void)err;
    if (gethostname(host_name, sizeof host_name) != 0)
        snprintf(host_name, sizeof host_name, "localhost");
    host_name[sizeof host_name - 1] = '\0';
    for (char *c = host_name; *c != '\0'; c++)
        if (*c == ':')
            *c = '_';
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(owner_id, sizeof owner_id, "%s:%ld:%lld", host_name, (long)getpid(),
             (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    pthread_mutex_lock(&a->reg_mu);
    (void)interrupt_gone(a, a->reg);
    pthread_mutex_unlock(&a->reg_mu);
    if (pthread_create(&R->thr, NULL, worker_main, a) != 0)
        return ch_error_set(err, CH_EIO, "cannot start the retraining worker");
    R->started = 1;
    return CH_OK;
}

void retrain_stop(app *a)
{
    if (a->retrain.started)
        pthread_join(a->retrain.thr, NULL);
    a->retrain.started = 0;
}

/* Seconds since the latest retraining job was added, or -1 without one. */
static double since_last_job(ch_registry *reg)
{
    ch_buf b;
    ch_json *doc = NULL;
    double age = -1;
    ch_buf_init(&b, 1 << 20);
    if (ch_registry_jobs_json(reg, 0, 1, &b, NULL) == CH_OK &&
        ch_json_parse(b.data, b.len, &doc, NULL) == CH_OK && ch_json_len(doc) > 0) {
        const char *t = ch_json_str(ch_json_get(ch_json_at(doc, 0), "created"), NULL);
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        if (t != NULL && strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) != NULL)
            age = (double)(time(NULL) - timegm(&tm));
    }
    ch_json_free(doc);
    ch_buf_reset(&b);
    return age;
}

ch_err retrain_request(app *a, ch_registry *reg, const char *trigger, const char *actor,
                       int respect_cooldown, int64_t *id, char *why, size_t why_cap, ch_error *err)
{
    ch_rollout r;
    int found = 0;
    double age;
    double cooldown = ch_config_num(a->cfg, "retrain.cooldown_s");
    ch_err rc;
    *id = 0;
    why[0] = '\0';
    if (!a->follow) {
        snprintf(why, why_cap, "this server serves a file, not the registry's champion");
        return CH_OK;
    }
    if (respect_cooldown) {
        if (ch_registry_rollout_get(reg, 0, &r, &found, err) != CH_OK)
            return CH_EDB;
        if (found) {
            snprintf(why, why_cap, "rollout %lld is still %s", (long long)r.id,
                     ch_rollout_state_name(r.state));
            return CH_OK;
        }
        age = since_last_job(reg);
        if (age >= 0 && age < cooldown) {
            snprintf(why, why_cap,
                     "the last retraining job was %.0f s ago (retrain.cooldown_s %.0f)", age,
                     cooldown);
            return CH_OK;
        }
    }
    rc = ch_registry_job_add(reg, KIND, trigger, NULL, actor, id, err);
    if (rc == CH_EBUSY) {
        snprintf(why, why_cap, "%s", err->msg);
        *id = 0;
        return CH_OK;
    }
    if (rc != CH_OK)
        return rc;
    atomic_store(&a->retrain.wake, 1);
    pthread_mutex_lock(&a->stop_mu);
    pthread_cond_broadcast(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
    server_log("retrain job %lld queued (%s, by %s)", (long long)*id, trigger, actor);
    return CH_OK;
}

void retrain_metrics(app *a, ch_buf *b)
{
    retrain_live *R = &a->retrain;
    static const int shown[] = {CH_JOB_SUCCEEDED, CH_JOB_FAILED, CH_JOB_CANCELLED,
                                CH_JOB_INTERRUPTED};
    ch_buf_puts(b, "# HELP churn_retrain_job_running 1 while this server runs a retraining "
                   "job.\n# TYPE churn_retrain_job_running gauge\n");
    ch_buf_printf(b, "churn_retrain_job_running %d\n", atomic_load(&R->running));
    ch_buf_puts(b, "# HELP churn_retrain_jobs_total Retraining jobs this server ran, by how they "
                   "ended.\n# TYPE churn_retrain_jobs_total counter\n");
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
        ch_buf_printf(b, "churn_retrain_jobs_total{result=\"%s\"} %llu\n",
                      ch_job_status_name((ch_job_status)shown[i]),
                      (unsigned long long)atomic_load(&R->ended[shown[i]]));
    ch_buf_puts(b, "# HELP churn_retrain_verdicts_total Succeeded retraining jobs, by the gate's "
                   "verdict.\n# TYPE churn_retrain_verdicts_total counter\n");
    ch_buf_printf(b,
                  "churn_retrain_verdicts_total{verdict=\"registered\"} %llu\n"
                  "churn_retrain_verdicts_total{verdict=\"refused\"} %llu\n",
                  (unsigned long long)atomic_load(&R->registered),
                  (unsigned long long)atomic_load(&R->refused));
}
