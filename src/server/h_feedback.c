/*
 * h_feedback.c -- POST /v1/feedback: what a customer really did.
 *
 * Body: {"prediction_id": "...", or "customer_id": "...", "churned":
 * true|false, "observed_date": "YYYY-MM-DD"}. The feedback is joined to
 * the prediction it answers (by id, or the customer's latest prediction,
 * the id pseudonymized with the same key as the prediction log) and the
 * reply is sent only once the store has committed it durably. A feedback
 * for a prediction that does not exist is a 404, never a stray row.
 *
 * The prediction log is written in the background, so a feedback may
 * arrive before its prediction reached the store; on a miss the handler
 * waits for the log to catch up (at most 2 s) and tries once more. Each
 * recorded feedback is also an audit entry (it changes what decay checks
 * will measure).
 */
#include <string.h>
#include <strings.h>

#include "server.h"

void h_feedback_add(call *c)
{
    ch_json *doc = NULL;
    ch_error err = {0};
    const ch_json *pid;
    const ch_json *cid;
    const ch_json *ch;
    const ch_json *od;
    const char *pred = NULL;
    char customer[CH_PSEUDONYM_LEN + 1] = "";
    char joined[CH_PREDICTION_ID_LEN + 1] = "";
    int churned = 0;
    ch_err rc;
    const char *ct = http_header(c->rq, "Content-Type");

    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        reply_error(c, 415, "unsupported_media_type", "send application/json", NULL);
        return;
    }
    rc = ch_json_parse(c->rq->body, c->rq->body_len, &doc, &err);
    if (rc != CH_OK || ch_json_typeof(doc) != CH_JSON_OBJECT) {
        if (rc != CH_OK)
            ch_error_prefix(&err, "malformed JSON");
        reply_error(c, 400, "bad_request", rc != CH_OK ? err.msg : "the body must be a JSON object",
                    NULL);
        goto done;
    }
    pid = ch_json_get(doc, "prediction_id");
    cid = ch_json_get(doc, "customer_id");
    ch = ch_json_get(doc, "churned");
    od = ch_json_get(doc, "observed_date");
    if ((pid == NULL) == (cid == NULL)) {
        reply_error(c, 400, "bad_request", "give exactly one of 'prediction_id' and 'customer_id'",
                    pid == NULL ? "prediction_id" : "customer_id");
        goto done;
    }
    if (pid != NULL) {
        pred = ch_json_str(pid, NULL);
        if (pred == NULL || strlen(pred) != CH_PREDICTION_ID_LEN) {
            reply_error(c, 400, "bad_request",
                        "'prediction_id' must be the 32-character id a "
                        "prediction returned",
                        "prediction_id");
            goto done;
        }
    } else {
        size_t len = 0;
        const char *id = ch_json_str(cid, &len);
        if (id == NULL || len == 0 || len > 256) {
            reply_error(c, 400, "bad_request", "'customer_id' must be a string of 1 to 256 bytes",
                        "customer_id");
            goto done;
        }
        if (ch_pseudonymize(c->a->pseudo_key, sizeof c->a->pseudo_key, id, len, customer, &err) !=
            CH_OK) {
            reply_err(c, CH_EIO, &err, NULL);
            goto done;
        }
    }
    if (ch == NULL || ch_json_bool(ch, &churned) != 0) {
        reply_error(c, 400, "bad_request", "'churned' is required: true or false", "churned");
        goto done;
    }
    if (od == NULL || ch_json_str(od, NULL) == NULL) {
        reply_error(c, 400, "bad_request", "'observed_date' is required: \"YYYY-MM-DD\"",
                    "observed_date");
        goto done;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&c->a->reg_mu);
        rc = ch_registry_feedback_add(c->a->reg, pred, customer[0] != '\0' ? customer : NULL,
                                      churned, ch_json_str(od, NULL), c->who.name, joined, &err);
        pthread_mutex_unlock(&c->a->reg_mu);
        if (rc != CH_ENOTFOUND || attempt > 0 || !ch_predlog_sync(c->a->plog, 2000))
            break;
    }
    if (rc != CH_OK) {
        reply_err(c, rc, &err,
                  rc == CH_ENOTFOUND ? (pred != NULL ? "prediction_id" : "customer_id")
                  : rc == CH_EINVAL  ? "observed_date"
                                     : NULL);
        goto done;
    }
    atomic_fetch_add(&c->a->m.feedback, 1);
    server_audit(c->a, c, "feedback", joined,
                 churned ? "{\"churned\":true}" : "{\"churned\":false}");
    c->rs->status = 201;
    ch_buf_printf(&c->rs->body, "{\"recorded\":true,\"prediction_id\":\"%s\",\"churned\":%s}",
                  joined, churned ? "true" : "false");
done:
    ch_json_free(doc);
}
