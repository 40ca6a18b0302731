/*
 * h_models.c -- the model registry over HTTP: list, show, promote,
 * rollback. Promotion goes through the same gate and audit as
 * `churn models promote` (promote.h); the served model follows within
 * serve.reload_ms, or at once when the change is made through this
 * server.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ch/promote.h"
#include "server.h"

static void wake_reloader(app *a)
{
    pthread_mutex_lock(&a->stop_mu);
    pthread_cond_broadcast(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
}

void h_models_list(call *c)
{
    reply_store_json(c, ch_registry_models_json);
}

/* The {version} segment as a positive number ("3" or "v3"). */
static int64_t version_param(call *c)
{
    const char *p = c->param[0] == 'v' ? c->param + 1 : c->param;
    char *end = NULL;
    long long v = strtoll(p, &end, 10);
    if (end == p || *end != '\0' || v <= 0) {
        reply_error(c, 400, "bad_request", "the model version must be a positive number",
                    "version");
        return 0;
    }
    return (int64_t)v;
}

void h_models_show(call *c)
{
    ch_error err = {0};
    ch_err rc;
    int64_t v = version_param(c);
    if (v == 0)
        return;
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_registry_model_json(c->a->reg, v, &c->rs->body, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK)
        reply_err(c, rc, &err, NULL);
    else
        c->rs->status = 200;
}

/* Bodies: optional JSON objects {"force": bool, "margin": number, "reason": text}. */
static const char *body_reason(call *c, const ch_json *doc)
{
    const ch_json *r = ch_json_get(doc, "reason");
    if (r != NULL && ch_json_typeof(r) != CH_JSON_STRING) {
        reply_error(c, 400, "bad_request", "'reason' must be a string", "reason");
        return NULL;
    }
    return r != NULL ? ch_json_str(r, NULL) : "";
}

void h_models_promote(call *c)
{
    ch_json *doc = NULL;
    ch_promote_opts o;
    ch_promote_result res;
    ch_error err = {0};
    const ch_json *f;
    ch_err rc;
    int64_t v = version_param(c);
    char ref[32];
    ch_buf *b = &c->rs->body;

    if (v == 0 || !body_object(c, &doc))
        return;
    memset(&o, 0, sizeof o);
    o.margin = ch_config_num(c->a->cfg, "train.promotion_margin");
    o.max_reject_rate = ch_config_num(c->a->cfg, "data.max_reject_rate");
    o.actor = c->who.name;
    o.reason = body_reason(c, doc);
    if (o.reason == NULL)
        goto done;
    f = ch_json_get(doc, "force");
    if (f != NULL && ch_json_bool(f, &o.force) != 0) {
        reply_error(c, 400, "bad_request", "'force' must be true or false", "force");
        goto done;
    }
    f = ch_json_get(doc, "margin");
    if (f != NULL && (ch_json_num(f, &o.margin) != 0 || !(o.margin >= 0 && o.margin <= 1))) {
        reply_error(c, 400, "bad_request", "'margin' must be a number from 0 to 1", "margin");
        goto done;
    }
    snprintf(ref, sizeof ref, "%lld", (long long)v);
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_promote(c->a->reg, ref, &o, &res, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK && rc != CH_EDATA) {
        reply_err(c, rc, &err, NULL);
        goto done;
    }
    if (rc == CH_EDATA && isnan(res.candidate_auc)) {
        reply_err(c, rc, &err, NULL);
        goto done;
    }
    c->rs->status = rc == CH_OK ? 200 : 409;
    ch_buf_printf(b, "{\"promoted\":%s,\"version\":%lld,\"previous_champion\":",
                  rc == CH_OK ? "true" : "false", (long long)res.version);
    if (res.champion > 0)
        ch_buf_printf(b, "%lld", (long long)res.champion);
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ",\"candidate_auc\":");
    ch_buf_json_num(b, res.candidate_auc);
    ch_buf_puts(b, ",\"champion_auc\":");
    ch_buf_json_num(b, res.champion_auc);
    ch_buf_puts(b, ",\"margin\":");
    ch_buf_json_num(b, o.margin);
    ch_buf_printf(b,
                  ",\"forced\":%s,\"already_champion\":%s,\"message\":", o.force ? "true" : "false",
                  res.already ? "true" : "false");
    if (rc == CH_EDATA) {
        ch_buf_json_str(b, err.msg, strlen(err.msg));
    } else {
        ch_buf_puts(b, "\"promoted\"");
        wake_reloader(c->a);
    }
    ch_buf_putc(b, '}');
done:
    ch_json_free(doc);
}

void h_models_rollback(call *c)
{
    ch_json *doc = NULL;
    ch_error err = {0};
    int64_t v = 0;
    const char *reason;
    ch_err rc;
    if (!body_object(c, &doc))
        return;
    reason = body_reason(c, doc);
    if (reason != NULL) {
        pthread_mutex_lock(&c->a->reg_mu);
        rc = ch_registry_rollback(c->a->reg, c->who.name, reason, &v, &err);
        pthread_mutex_unlock(&c->a->reg_mu);
        if (rc != CH_OK) {
            reply_err(c, rc, &err, NULL);
        } else {
            c->rs->status = 200;
            ch_buf_printf(&c->rs->body, "{\"rolled_back\":true,\"champion\":%lld}", (long long)v);
            wake_reloader(c->a);
        }
    }
    ch_json_free(doc);
}
