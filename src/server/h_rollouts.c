/*
 * h_rollouts.c -- /v1/rollouts: start, read, pause, resume, abort.
 *
 * The rollout is the store's (registry.h); these routes change it and
 * wake the controller (rollout.c), which follows it on every server of
 * the store. Reading needs the monitor permission, changing it operate.
 */
#include <stdlib.h>
#include <string.h>

#include "ch/rollout.h"
#include "server.h"

void h_rollouts_list(call *c)
{
    size_t n;
    if (query_limit(c, 20, 1000, &n))
        reply_store_list(c, 200, ch_registry_rollouts_json, 0, n);
}

void h_rollouts_show(call *c)
{
    int64_t id = param_id(c, "rollout");
    if (id > 0)
        reply_store_list(c, 200, ch_registry_rollouts_json, id, 0);
}

/* {"candidate": 3 | "challenger", "steps": [5, 25, 100], "shadow": bool,
 * "gates": {...}, "reason": text}. */
void h_rollouts_start(call *c)
{
    ch_json *doc = NULL;
    const ch_json *v;
    ch_error err = {0};
    int64_t cand = 0;
    int64_t id = 0;
    int shadow = -1;
    char steps[256] = "";
    const char *reason = NULL;
    ch_err rc;

    if (!body_object(c, &doc))
        return;
    v = ch_json_get(doc, "candidate");
    if (v == NULL) {
        reply_error(c, 400, "bad_request", "name the candidate: a version or \"challenger\"",
                    "candidate");
        goto done;
    }
    if (ch_json_str(v, NULL) != NULL) {
        pthread_mutex_lock(&c->a->reg_mu);
        rc = ch_registry_resolve(c->a->reg, ch_json_str(v, NULL), &cand, NULL, 0, &err);
        pthread_mutex_unlock(&c->a->reg_mu);
        if (rc != CH_OK) {
            reply_err(c, rc, &err, "candidate");
            goto done;
        }
    } else {
        double d;
        if (ch_json_num(v, &d) != 0 || d < 1 || d != (double)(int64_t)d) {
            reply_error(c, 400, "bad_request", "'candidate' must be a version or an alias",
                        "candidate");
            goto done;
        }
        cand = (int64_t)d;
    }
    v = ch_json_get(doc, "steps");
    if (v != NULL) {
        size_t o = 0;
        if (ch_json_typeof(v) != CH_JSON_ARRAY || ch_json_len(v) == 0) {
            reply_error(c, 400, "bad_request", "'steps' must be a list of percentages", "steps");
            goto done;
        }
        for (size_t i = 0; i < ch_json_len(v) && o + 24 < sizeof steps; i++) {
            double d;
            char num[32];
            if (ch_json_num(ch_json_at(v, i), &d) != 0) {
                reply_error(c, 400, "bad_request", "'steps' must be a list of percentages",
                            "steps");
                goto done;
            }
            ch_fmt_double(num, d);
            o += (size_t)snprintf(steps + o, sizeof steps - o, "%s%s", i ? "," : "", num);
        }
    }
    v = ch_json_get(doc, "shadow");
    if (v != NULL && ch_json_bool(v, &shadow) != 0) {
        reply_error(c, 400, "bad_request", "'shadow' must be true or false", "shadow");
        goto done;
    }
    v = ch_json_get(doc, "reason");
    if (v != NULL && (reason = ch_json_str(v, NULL)) == NULL) {
        reply_error(c, 400, "bad_request", "'reason' must be a string", "reason");
        goto done;
    }
    pthread_mutex_lock(&c->a->reg_mu);
    rc = ch_rollout_begin(c->a->reg, c->a->cfg, cand, steps[0] != '\0' ? steps : NULL, shadow,
                          ch_json_get(doc, "gates"), c->who.name, reason, &id, &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    if (rc != CH_OK) {
        reply_err(c, rc == CH_EBUSY ? CH_EDATA : rc, &err, NULL); /* another one runs: 409 */
        goto done;
    }
    rollout_wake(c->a);
    reply_store_list(c, 201, ch_registry_rollouts_json, id, 0);
done:
    ch_json_free(doc);
}

static void change(call *c, int op)
{
    ch_json *doc = NULL;
    const ch_json *v;
    const char *reason = NULL;
    ch_error err = {0};
    int64_t id = param_id(c, "rollout");
    ch_err rc;
    if (id == 0 || !body_object(c, &doc))
        return;
    v = ch_json_get(doc, "reason");
    if (v != NULL && (reason = ch_json_str(v, NULL)) == NULL) {
        reply_error(c, 400, "bad_request", "'reason' must be a string", "reason");
        ch_json_free(doc);
        return;
    }
    pthread_mutex_lock(&c->a->reg_mu);
    rc = op == 0 ? ch_registry_rollout_pause(c->a->reg, id, c->who.name, reason, &err)
         : op == 1
             ? ch_registry_rollout_resume(c->a->reg, id, c->who.name, reason, &err)
             : ch_registry_rollout_end(c->a->reg, id, CH_ROLLOUT_ABORTED, -1, -1, NULL, c->who.name,
                                       reason != NULL ? reason : "aborted", &err);
    pthread_mutex_unlock(&c->a->reg_mu);
    ch_json_free(doc);
    if (rc != CH_OK) {
        /* A rollout in the wrong state, or moved by another: 409. */
        reply_err(c, rc == CH_EINVAL || rc == CH_EBUSY ? CH_EDATA : rc, &err, NULL);
        return;
    }
    rollout_wake(c->a);
    reply_store_list(c, 200, ch_registry_rollouts_json, id, 0);
}

void h_rollouts_pause(call *c)
{
    change(c, 0);
}

void h_rollouts_resume(call *c)
{
    change(c, 1);
}

void h_rollouts_abort(call *c)
{
    change(c, 2);
}
