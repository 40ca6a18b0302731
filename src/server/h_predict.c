/*
 * h_predict.c -- POST /v1/predict and /v1/predict/batch.
 *
 * One customer (a JSON object of raw fields) or many (a JSON array, or a
 * text/csv upload with a header line) → calibrated probability, label at
 * the served threshold, risk band, model version and alias, a prediction
 * id, the top-k reasons and, when asked, what-if retention actions.
 *
 * Query parameters: k (reasons, 0-16, default serve.reasons), actions
 * (0-16, default 0), rank=drop|value (how actions are ordered).
 *
 * Every prediction is queued to the prediction log with the customer id
 * pseudonymized (HMAC), a digest of the input and the input values
 * themselves (an inputs.h blob, encoded from the values already parsed
 * for scoring: no second parse); the raw id is echoed to the caller, who
 * sent it, but never stored. The id column is never part of the blob.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ch/alloc.h"
#include "ch/csv.h"
#include "ch/hash.h"
#include "ch/inputs.h"
#include "ch/record.h"
#include "server.h"

#define MAX_COLS 512

typedef struct pred_opts {
    size_t k;
    size_t actions;
    int by_value;
} pred_opts;

static int query_count(call *c, const char *name, size_t def, size_t *out)
{
    const char *v = http_query(c->rq, name);
    char *end = NULL;
    long n;
    if (v == NULL) {
        *out = def;
        return 1;
    }
    n = strtol(v, &end, 10);
    if (end == v || *end != '\0' || n < 0 || n > CH_EXPLAIN_MAX_K) {
        char msg[96];
        snprintf(msg, sizeof msg, "query parameter '%s' must be a whole number from 0 to %d", name,
                 CH_EXPLAIN_MAX_K);
        reply_error(c, 400, "bad_request", msg, name);
        return 0;
    }
    *out = (size_t)n;
    return 1;
}

static int read_opts(call *c, pred_opts *po)
{
    const char *rank = http_query(c->rq, "rank");
    if (!query_count(c, "k", (size_t)c->a->o.k_default, &po->k) ||
        !query_count(c, "actions", 0, &po->actions))
        return 0;
    po->by_value = 0;
    if (rank != NULL && strcmp(rank, "value") == 0) {
        po->by_value = 1;
    } else if (rank != NULL && strcmp(rank, "drop") != 0) {
        reply_error(c, 400, "bad_request", "query parameter 'rank' must be 'drop' or 'value'",
                    "rank");
        return 0;
    }
    return 1;
}

static int content_is(call *c, const char *type)
{
    const char *ct = http_header(c->rq, "Content-Type");
    size_t n = strlen(type);
    return ct != NULL && strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';');
}

/* Digest of the record's values in schema order (text as sent, numbers as
 * their IEEE-754 bytes in host order): independent of key order and
 * spacing in the request. */
static void values_digest(const ch_schema *s, const ch_value *vals, char out[65])
{
    ch_sha256 *h = NULL;
    ch_error err = {0};
    out[0] = '\0';
    if (ch_sha256_new(&h, &err) != CH_OK)
        return;
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        if (vals[j].missing) {
            ch_sha256_update(h, "\x1e-", 2);
        } else if (vals[j].str != NULL) {
            ch_sha256_update(h, "\x1es", 2);
            ch_sha256_update(h, vals[j].str, vals[j].len);
        } else {
            /* The number's 8 bytes: exact, and no formatting on the hot path. */
            unsigned char raw[8];
            memcpy(raw, &vals[j].num, sizeof raw);
            ch_sha256_update(h, "\x1en", 2);
            ch_sha256_update(h, raw, sizeof raw);
        }
    }
    ch_sha256_final_hex(h, out);
    ch_sha256_free(h);
}

/* A prediction id: 64 random bits drawn at start, then a 64-bit counter.
 * Unique across restarts (a new prefix each start), and increasing within
 * a run, so the prediction log's primary-key index grows at its end
 * instead of taking random page writes. Ids are not secrets: every route
 * that takes one requires credentials. */
static void prediction_id(app *a, char out[CH_PREDICTION_ID_LEN + 1])
{
    hex64(out, a->pred_key);
    hex64(out + 16, atomic_fetch_add(&a->pred_seq, 1));
    out[CH_PREDICTION_ID_LEN] = '\0';
}

static const char *band(const served *m, double p)
{
    if (p >= m->threshold)
        return "high";
    if (p >= m->threshold * m->medium_from)
        return "medium";
    return "low";
}

/* Scores one record and appends its JSON object to 'b'. 'champ' is the
 * model the record was read with; during a rollout the candidate may
 * answer instead (rollout_pick), and in shadow mode it also scores a copy
 * off the request path. */
static void predict_render(call *c, served *champ, const ch_value *vals, const ch_record_info *info,
                           const pred_opts *po, ch_buf *b)
{
    const ch_schema *s = ch_bundle_schema(champ->bundle);
    ch_explain_ws *ws;
    ch_explanation ex;
    ch_prediction_rec rec;
    size_t inputs_len = 0;
    served *shadow = NULL;
    served *m;
    int arm = CH_ARM_NONE;
    int label;
    ch_error err = {0};

    /* The input bytes past what is encoded are never read: clear only the
     * fixed fields. */
    memset(&rec, 0, offsetof(ch_prediction_rec, inputs));
    prediction_id(c->a, rec.id);
    if (info->id != NULL && ch_pseudonymize(c->a->pseudo_key, sizeof c->a->pseudo_key, info->id,
                                            info->id_len, rec.customer, &err) != CH_OK)
        rec.customer[0] = '\0';
    m = rollout_pick(c->a, rec.customer, rec.id, &arm, &shadow);
    if (m == NULL) { /* the champion went away between reading and scoring */
        atomic_fetch_add(&champ->refs, 1);
        m = champ;
    }
    ws = served_ws(m);
    if (ws == NULL) {
        metrics_arm(&c->a->m, arm, 1, http_now() - c->rq->t_start);
        ch_buf_puts(b, "{\"error\":\"unavailable\"}");
        served_release(m);
        served_release(shadow);
        return;
    }
    ch_explain_record(m->ex, vals, po->k, po->actions, po->by_value, &ex, ws);
    label = ex.probability >= m->threshold;
    values_digest(s, vals, rec.features_sha256);
    /* Values that need more than CH_PREDLOG_INPUTS_MAX bytes are not
     * logged (inputs_len stays 0); the log counts such records. */
    if (ch_inputs_encode(s, vals, rec.inputs, sizeof rec.inputs, &inputs_len, NULL) == CH_OK)
        rec.inputs_len = (uint16_t)inputs_len;
    rec.probability = ex.probability;
    rec.label = label;
    rec.model_version = m->version;
    rec.arm = arm;
    rec.latency_s = http_now() - c->rq->t_start;
    rec.time_ms = unix_now_ms();
    metrics_arm(&c->a->m, arm, 0, rec.latency_s);
    if (shadow == NULL || !rollout_shadow_offer(c->a, &rec)) {
        if (shadow != NULL)
            atomic_fetch_add(&c->a->m.shadow_skipped, 1);
        ch_predlog_push(c->a->plog, &rec);
    }
    served_release(shadow);
    metrics_prediction(&c->a->m, m->version, m->alias, label, ex.probability);
    if (info->n_warnings > 0)
        atomic_fetch_add(&c->a->m.unknown_categories, info->n_warnings);

    ch_buf_puts(b, "{\"prediction_id\":\"");
    ch_buf_puts(b, rec.id);
    ch_buf_puts(b, "\",\"customer_id\":");
    if (info->id != NULL)
        ch_buf_json_str(b, info->id, info->id_len);
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ",\"probability\":");
    buf_fixed(b, ex.probability, 6);
    ch_buf_puts(b, label ? ",\"label\":1,\"threshold\":" : ",\"label\":0,\"threshold\":");
    buf_fixed(b, m->threshold, 6);
    ch_buf_puts(b, ",\"risk_band\":\"");
    ch_buf_puts(b, band(m, ex.probability));
    ch_buf_puts(b, "\",\"model\":");
    buf_model(b, m);
    ch_buf_puts(b, arm == CH_ARM_CANDIDATE ? ",\"arm\":\"candidate\",\"reasons\":["
                                           : ",\"arm\":\"champion\",\"reasons\":[");
    for (size_t i = 0; i < ex.n_reasons; i++) {
        const ch_reason_item *r = &ex.reasons[i];
        const char *col = ch_schema_col_ref(s, (size_t)r->column)->name;
        ch_buf_puts(b, i > 0 ? ",{\"field\":" : "{\"field\":");
        ch_buf_json_str(b, col, strlen(col));
        ch_buf_puts(b, ",\"text\":");
        ch_buf_json_str(b, r->text, strlen(r->text));
        ch_buf_puts(b, r->raises ? ",\"direction\":\"raises\",\"logodds\":"
                                 : ",\"direction\":\"lowers\",\"logodds\":");
        buf_fixed(b, r->logodds, 6);
        ch_buf_puts(b, ",\"points\":");
        buf_fixed(b, r->points, 4);
        ch_buf_putc(b, '}');
    }
    ch_buf_putc(b, ']');
    if (po->actions > 0) {
        ch_buf_puts(b, ",\"actions\":[");
        for (size_t i = 0; i < ex.n_actions; i++) {
            const ch_action_item *ac = &ex.actions[i];
            ch_buf_puts(b, i > 0 ? ",{\"changes\":{" : "{\"changes\":{");
            for (int k = 0; k < 2 && ac->column[k] >= 0; k++) {
                const char *col = ch_schema_col_ref(s, (size_t)ac->column[k])->name;
                if (k > 0)
                    ch_buf_putc(b, ',');
                ch_buf_json_str(b, col, strlen(col));
                ch_buf_putc(b, ':');
                ch_buf_json_str(b, ac->value[k], strlen(ac->value[k]));
            }
            ch_buf_puts(b, "},\"text\":");
            ch_buf_json_str(b, ac->text, strlen(ac->text));
            ch_buf_puts(b, ",\"probability\":");
            buf_fixed(b, ac->probability, 6);
            ch_buf_puts(b, ",\"drop\":");
            buf_fixed(b, ac->drop, 6);
            ch_buf_puts(b, ",\"expected_value\":");
            buf_fixed(b, ac->expected_value, 2);
            ch_buf_putc(b, '}');
        }
        ch_buf_putc(b, ']');
    }
    if (info->n_warnings > 0) {
        ch_buf_puts(b, ",\"warnings\":[");
        for (size_t i = 0; i < info->n_warnings; i++) {
            const char *col = ch_schema_col_ref(s, (size_t)info->warning_col[i])->name;
            ch_buf_puts(b, i > 0 ? ",{\"field\":" : "{\"field\":");
            ch_buf_json_str(b, col, strlen(col));
            ch_buf_puts(b, ",\"message\":\"category not seen in training: scored as "
                           "(other)\"}");
        }
        ch_buf_putc(b, ']');
    }
    ch_buf_putc(b, '}');
    served_release(m);
}

static served *need_model(call *c)
{
    served *m = served_acquire(c->a);
    if (m == NULL)
        reply_error(c, 503, "unavailable", "no model is loaded yet (see /readyz)", NULL);
    return m;
}

void h_predict_one(call *c)
{
    pred_opts po;
    ch_error err = {0};
    ch_value vals[MAX_COLS];
    ch_record_info info;
    served *m;
    ch_err rc;

    if (!content_is(c, "application/json")) {
        reply_error(c, 415, "unsupported_media_type", "send the customer as application/json",
                    NULL);
        return;
    }
    if (!read_opts(c, &po))
        return;
    m = need_model(c);
    if (m == NULL)
        return;
    /* One pass over the body, no document built (record.h). */
    rc = ch_record_parse(ch_bundle_schema(m->bundle), c->rq->body, c->rq->body_len, vals, &info,
                         &err);
    if (rc == CH_EFORMAT) {
        ch_error_prefix(&err, "malformed JSON");
        reply_err(c, CH_EINVAL, &err, NULL);
    } else if (rc != CH_OK) {
        reply_err(c, rc, &err, info.field);
    } else {
        c->rs->status = 200;
        predict_render(c, m, vals, &info, &po, &c->rs->body);
    }
    served_release(m);
}

/* A CSV upload: a header line naming schema columns, then one customer
 * per record, read with the schema's own field parser. */
static void batch_csv(call *c, served *m, const pred_opts *po)
{
    const ch_schema *s = ch_bundle_schema(m->bundle);
    size_t n_cols = ch_schema_n_cols(s);
    long map[MAX_COLS]; /* CSV field index of each schema column, -1 = absent */
    ch_csv *csv = NULL;
    ch_csv_opts co;
    ch_csv_record rec;
    ch_error err = {0};
    ch_buf *b = &c->rs->body;
    int got = 0;
    size_t n = 0;
    ch_err rc;

    ch_csv_opts_default(&co);
    co.hash = 0;
    rc = ch_csv_open_mem(c->rq->body, c->rq->body_len, &co, &csv, &err);
    if (rc == CH_OK)
        rc = ch_csv_next(csv, &rec, &got, &err);
    if (rc != CH_OK || !got) {
        reply_error(c, 400, "bad_request", rc != CH_OK ? err.msg : "the CSV body is empty", NULL);
        ch_csv_free(csv);
        return;
    }
    for (size_t j = 0; j < n_cols; j++)
        map[j] = -1;
    for (size_t f = 0; f < rec.n_fields; f++) {
        char name[128];
        long j;
        snprintf(name, sizeof name, "%.*s",
                 (int)(rec.fields[f].len < 127 ? rec.fields[f].len : 127), rec.fields[f].p);
        j = ch_schema_find(s, name);
        if (j < 0 && !ch_schema_ignores_extra(s)) {
            char msg[200];
            snprintf(msg, sizeof msg, "CSV header: unknown column '%s'", name);
            reply_error(c, 400, "bad_request", msg, name);
            ch_csv_free(csv);
            return;
        }
        if (j >= 0)
            map[j] = (long)f;
    }
    for (size_t j = 0; j < n_cols; j++) {
        const ch_schema_col *col = ch_schema_col_ref(s, j);
        if (map[j] < 0 && col->kind != CH_KIND_ID && col->kind != CH_KIND_TARGET) {
            char msg[200];
            snprintf(msg, sizeof msg, "CSV header: column '%s' is missing", col->name);
            reply_error(c, 400, "bad_request", msg, col->name);
            ch_csv_free(csv);
            return;
        }
    }
    c->rs->status = 200;
    ch_buf_puts(b, "{\"predictions\":[");
    for (;;) {
        ch_value vals[MAX_COLS];
        ch_record_info info;
        const char *problem = NULL;
        char field[64] = "";
        rc = ch_csv_next(csv, &rec, &got, &err);
        if (rc != CH_OK) {
            reply_error(c, 400, "bad_request", err.msg, NULL);
            break;
        }
        if (!got)
            break;
        if (++n > c->a->o.batch_max_rows) {
            char msg[96];
            snprintf(msg, sizeof msg, "more than %zu customers in one batch",
                     c->a->o.batch_max_rows);
            reply_error(c, 413, "payload_too_large", msg, NULL);
            break;
        }
        memset(&info, 0, sizeof info);
        if (rec.problem != NULL)
            problem = rec.problem;
        for (size_t j = 0; problem == NULL && j < n_cols; j++) {
            const ch_schema_col *col = ch_schema_col_ref(s, j);
            const ch_csv_field *fld;
            double num = 0;
            int32_t cat = -1;
            ch_reason why = CH_REASON_NONE;
            ch_value_status st;
            memset(&vals[j], 0, sizeof vals[j]);
            vals[j].missing = 1;
            if (map[j] < 0 || (size_t)map[j] >= rec.n_fields || col->kind == CH_KIND_TARGET)
                continue;
            fld = &rec.fields[map[j]];
            if (col->kind == CH_KIND_ID) {
                info.id = fld->p;
                info.id_len = fld->len;
                continue;
            }
            st = ch_schema_parse_value(col, fld->p, fld->len, &num, &cat, &why);
            if (st == CH_VALUE_MISSING && !col->nullable)
                why = CH_REASON_MISSING;
            else if (st == CH_VALUE_UNKNOWN && col->on_unknown != CH_UNKNOWN_KEEP)
                why = CH_REASON_UNKNOWN_CAT;
            else if (st == CH_VALUE_BAD)
                ;
            else
                why = CH_REASON_NONE;
            if (why != CH_REASON_NONE) {
                problem = ch_reason_text(why);
                snprintf(field, sizeof field, "%s", col->name);
                break;
            }
            if (st == CH_VALUE_UNKNOWN && info.n_warnings < CH_RECORD_MAX_WARNINGS)
                info.warning_col[info.n_warnings++] = (int)j;
            if (st == CH_VALUE_MISSING)
                continue;
            vals[j].missing = 0;
            vals[j].num = num;
            if (col->kind == CH_KIND_CATEGORICAL) {
                vals[j].str = fld->p;
                vals[j].len = fld->len;
            }
        }
        if (n > 1)
            ch_buf_putc(b, ',');
        if (problem != NULL) {
            ch_buf_printf(b, "{\"error\":\"unprocessable\",\"line\":%llu,\"message\":",
                          (unsigned long long)rec.line);
            ch_buf_json_str(b, problem, strlen(problem));
            ch_buf_puts(b, ",\"field\":");
            if (field[0] != '\0')
                ch_buf_json_str(b, field, strlen(field));
            else
                ch_buf_puts(b, "null");
            ch_buf_putc(b, '}');
            continue;
        }
        predict_render(c, m, vals, &info, po, b);
    }
    if (c->rs->status == 200)
        ch_buf_printf(b, "],\"count\":%zu}", n);
    ch_csv_free(csv);
}

void h_predict_batch(call *c)
{
    pred_opts po;
    ch_json *doc = NULL;
    ch_error err = {0};
    served *m;
    ch_err rc;
    ch_buf *b = &c->rs->body;
    size_t n;

    if (!read_opts(c, &po))
        return;
    if (content_is(c, "text/csv")) {
        m = need_model(c);
        if (m != NULL)
            batch_csv(c, m, &po);
        served_release(m);
        return;
    }
    if (!content_is(c, "application/json")) {
        reply_error(c, 415, "unsupported_media_type",
                    "send customers as a JSON array (application/json) or as text/csv", NULL);
        return;
    }
    rc = ch_json_parse(c->rq->body, c->rq->body_len, &doc, &err);
    if (rc != CH_OK) {
        ch_error_prefix(&err, "malformed JSON");
        reply_err(c, rc == CH_EFORMAT ? CH_EINVAL : rc, &err, NULL);
        return;
    }
    if (ch_json_typeof(doc) != CH_JSON_ARRAY) {
        reply_error(c, 400, "bad_request", "the body must be a JSON array of customers", NULL);
        ch_json_free(doc);
        return;
    }
    n = ch_json_len(doc);
    if (n > c->a->o.batch_max_rows) {
        char msg[96];
        snprintf(msg, sizeof msg, "%zu customers: at most %zu in one batch", n,
                 c->a->o.batch_max_rows);
        reply_error(c, 413, "payload_too_large", msg, NULL);
        ch_json_free(doc);
        return;
    }
    m = need_model(c);
    if (m == NULL) {
        ch_json_free(doc);
        return;
    }
    c->rs->status = 200;
    ch_buf_puts(b, "{\"predictions\":[");
    for (size_t i = 0; i < n; i++) {
        ch_value vals[MAX_COLS];
        ch_record_info info;
        if (i > 0)
            ch_buf_putc(b, ',');
        rc =
            ch_record_from_json(ch_bundle_schema(m->bundle), ch_json_at(doc, i), vals, &info, &err);
        if (rc != CH_OK) {
            int st = status_of(rc);
            ch_buf_printf(b, "{\"error\":\"%s\",\"code\":%d,\"index\":%zu,\"message\":",
                          st == 422 ? "unprocessable" : "bad_request", st, i);
            ch_buf_json_str(b, err.msg, strlen(err.msg));
            ch_buf_puts(b, ",\"field\":");
            if (info.field[0] != '\0')
                ch_buf_json_str(b, info.field, strlen(info.field));
            else
                ch_buf_puts(b, "null");
            ch_buf_putc(b, '}');
            continue;
        }
        predict_render(c, m, vals, &info, &po, b);
    }
    ch_buf_printf(b, "],\"count\":%zu}", n);
    served_release(m);
    ch_json_free(doc);
}
