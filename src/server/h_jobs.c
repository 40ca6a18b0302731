/*
 * h_jobs.c -- /v1/jobs (retraining jobs) and the Alertmanager hook.
 *
 * POST /v1/hooks/alertmanager takes Alertmanager's webhook body; it is not
 * a user's route: it is authenticated by the shared secret in
 * retrain.hook_secret_file, sent as "Authorization: Bearer <secret>" (the
 * one header Alertmanager's webhook can set, from a credentials file) and
 * compared in constant time. A firing alert named in retrain.hook_alerts
 * queues a retraining job, subject to the same cool-down and "no rollout
 * running" rule as the monitoring verdicts; every call is answered with
 * what it did.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/hash.h"
#include "server.h"

void h_jobs_list(call *c)
{
    size_t n;
    if (query_limit(c, 20, 1000, &n))
        reply_store_list(c, 200, ch_registry_jobs_json, 0, n);
}

void h_jobs_show(call *c)
{
    int64_t id = param_id(c, "job");
    if (id > 0)
        reply_store_list(c, 200, ch_registry_jobs_json, id, 0);
}

/* {"kind": "retrain"}: queues a job now, whatever the cool-down. */
void h_jobs_start(call *c)
{
    ch_json *doc = NULL;
    ch_error err = {0};
    const char *kind = "retrain";
    int64_t id = 0;
    char why[512];
    ch_err rc;
    if (!body_object(c, &doc))
        return;
    if (ch_json_get(doc, "kind") != NULL)
        kind = ch_json_str(ch_json_get(doc, "kind"), NULL);
    if (kind == NULL || strcmp(kind, "retrain") != 0) {
        reply_error(c, 400, "bad_request", "the only kind of job is \"retrain\"", "kind");
        ch_json_free(doc);
        return;
    }
    ch_json_free(doc);
    pthread_mutex_lock(&c->a->reg_mu);
    rc = retrain_request(c->a, c->a->reg, "manual", c->who.name, 0, &id, why, sizeof why, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK) {
        reply_err(c, rc, &err, NULL);
        return;
    }
    if (id == 0) {
        reply_error(c, 409, "conflict", why, NULL);
        return;
    }
    reply_store_list(c, 202, ch_registry_jobs_json, id, 0);
}

void h_jobs_cancel(call *c)
{
    ch_error err = {0};
    ch_job_status st;
    int64_t id = param_id(c, "job");
    ch_err rc;
    if (id == 0)
        return;
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_registry_job_cancel(c->a->reg, id, c->who.name, &st, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK) {
        reply_err(c, rc == CH_EINVAL ? CH_EDATA : rc, &err, NULL);
        return;
    }
    reply_store_list(c, 202, ch_registry_jobs_json, id, 0);
}

/* The secret, read at each call (a rotated file takes effect at once);
 * 0 when the hook is off or the file unreadable. */
static int hook_secret(app *a, char *out, size_t cap)
{
    const char *path = ch_config_str(a->cfg, "retrain.hook_secret_file");
    FILE *f;
    size_t n;
    if (path[0] == '\0' || (f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(out, 1, cap - 1, f);
    fclose(f);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    return n >= 16; /* a short secret is no secret: the hook stays off */
}

static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
        if ((p == list || p[-1] == ',' || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

void h_hooks_alertmanager(call *c)
{
    char secret[512];
    const char *auth = http_header(c->rq, "Authorization");
    const char *alerts_wanted = ch_config_str(c->a->cfg, "retrain.hook_alerts");
    ch_json *doc = NULL;
    const ch_json *alerts;
    const char *fired = NULL;
    ch_error err = {0};
    char why[512] = "";
    char trigger[160];
    int64_t id = 0;
    ch_err rc;

    if (!hook_secret(c->a, secret, sizeof secret)) {
        reply_error(c, 404, "not_found",
                    "the hook is off: retrain.hook_secret_file names no secret of 16 or more "
                    "characters",
                    NULL);
        return;
    }
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) != strlen(secret) ||
        !ch_ct_equal(auth + 7, secret, strlen(secret))) {
        atomic_fetch_add(&c->a->m.auth_failures, 1);
        ch_cleanse(secret, sizeof secret);
        reply_error(c, 401, "unauthorized", "the hook's shared secret is missing or wrong", NULL);
        return;
    }
    ch_cleanse(secret, sizeof secret);
    if (ch_json_parse(c->rq->body, c->rq->body_len, &doc, &err) != CH_OK ||
        ch_json_typeof(ch_json_get(doc, "alerts")) != CH_JSON_ARRAY) {
        reply_error(c, 400, "bad_request",
                    err.msg[0] != '\0' ? err.msg : "expected Alertmanager's body with \"alerts\"",
                    NULL);
        ch_json_free(doc);
        return;
    }
    alerts = ch_json_get(doc, "alerts");
    for (size_t i = 0; i < ch_json_len(alerts) && fired == NULL; i++) {
        const ch_json *al = ch_json_at(alerts, i);
        const char *status = ch_json_str(ch_json_get(al, "status"), NULL);
        const char *name = ch_json_str(ch_json_get(ch_json_get(al, "labels"), "alertname"), NULL);
        if (status != NULL && strcmp(status, "firing") == 0 && name != NULL &&
            listed(alerts_wanted, name))
            fired = name;
    }
    if (fired == NULL) {
        c->rs->status = 200;
        ch_buf_puts(&c->rs->body, "{\"queued\":false,\"reason\":\"no firing alert named in "
                                  "retrain.hook_alerts\"}");
        ch_json_free(doc);
        return;
    }
    snprintf(trigger, sizeof trigger, "alertmanager:%.120s", fired);
    pthread_mutex_lock(&c->a->reg_mu);
    rc = retrain_request(c->a, c->a->reg, trigger, "alertmanager", 1, &id, why, sizeof why, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    ch_json_free(doc);
    if (rc != CH_OK) {
        reply_err(c, rc, &err, NULL);
        return;
    }
    c->rs->status = id > 0 ? 202 : 200;
    if (id > 0) {
        ch_buf_printf(&c->rs->body, "{\"queued\":true,\"job\":%lld,\"trigger\":", (long long)id);
        ch_buf_json_str(&c->rs->body, trigger, strlen(trigger));
        ch_buf_putc(&c->rs->body, '}');
    } else {
        ch_buf_puts(&c->rs->body, "{\"queued\":false,\"reason\":");
        ch_buf_json_str(&c->rs->body, why, strlen(why));
        ch_buf_putc(&c->rs->body, '}');
    }
}
