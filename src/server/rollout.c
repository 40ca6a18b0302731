/*
 * rollout.c -- canary rollouts and shadow scoring inside `churn serve`.
 *
 * The rollout itself lives in the store (registry.h: ch_registry_rollout_*),
 * so every server on the store sees the same one and the CLI can start,
 * pause or abort it. Here:
 *
 *   - the controller thread follows the active rollout every
 *     rollout.eval_s seconds: it loads the candidate next to the
 *     champion, publishes the split for the request path, and evaluates
 *     the step's gates; a pass moves the rollout on and a failure rolls
 *     it back, both with a compare-and-set on the rollout's state and step
 *     so two servers never move it twice, both audited by the store;
 *   - rollout_pick() is the request path's only part: which model answers
 *     a record. The split is sticky per customer: a bucket from the
 *     customer's pseudonym (the same key on every replica) mixed with the
 *     rollout's id, so a customer keeps its arm for the whole rollout and
 *     across servers; without a customer id, the prediction id decides;
 *   - in shadow mode the champion answers, and its log record goes through
 *     a bounded queue to the shadow thread, which scores the same inputs
 *     (decoded from the record's blob) with the candidate and logs the
 *     record with both scores. A full queue logs the record without the
 *     shadow score (counted): the request path never waits for it.
 *
 * Gates, per step (docs/rollout.md): the candidate's error rate and p99
 * scoring latency against the champion's over the step (this server's own
 * counters), the PSI of the candidate's live scores against those of its
 * own test set and (loosely) against the champion's, its label-free
 * estimated ROC AUC against its own reference, and
 * the realized ROC AUC of both arms once each has rollout.min_labels
 * labels (from the store, every server's predictions). A step passes
 * after rollout.min_requests candidate predictions and rollout.min_seconds,
 * with no gate failing.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/drift.h"
#include "ch/inputs.h"
#include "ch/json.h"
#include "ch/monitor.h"
#include "ch/rollout.h"
#include "server.h"

#define SHADOW_QUEUE 4096 /* records waiting for the shadow candidate */
#define ACTOR        "churn serve"

/* ---- the request path ------------------------------------------------------ */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t hex16(const char *s)
{
    uint64_t v = 0;
    for (int i = 0; i < 16 && s[i] != '\0'; i++) {
        char c = s[i];
        v = v << 4 | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0');
    }
    return v;
}

/* The customer's bucket in [0, 10000) for rollout 'id'. */
static unsigned bucket(const char *pseudonym, const char *prediction_id, int64_t id)
{
    uint64_t key =
        pseudonym != NULL && pseudonym[0] != '\0' ? hex16(pseudonym) : hex16(prediction_id + 16);
    return (unsigned)(mix64(key ^ mix64((uint64_t)id)) % 10000);
}

served *rollout_pick(app *a, const char *pseudonym, const char *prediction_id, int *arm,
                     served **shadow)
{
    rollout_live *L = &a->roll;
    served *m;
    *arm = CH_ARM_NONE;
    *shadow = NULL;
    pthread_mutex_lock(&a->model_mu);
    m = a->model;
    if (m != NULL && L->cand != NULL) {
        if (L->route_state == CH_ROLLOUT_CANARY) {
            int take = bucket(pseudonym, prediction_id, L->id) < (unsigned)(L->percent * 100);
            *arm = take ? CH_ARM_CANDIDATE : CH_ARM_CHAMPION;
            if (take)
                m = L->cand;
        } else if (L->route_state == CH_ROLLOUT_SHADOW) {
            *shadow = L->cand;
            atomic_fetch_add(&L->cand->refs, 1);
        }
    }
    if (m != NULL)
        atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&a->model_mu);
    return m;
}

int rollout_shadow_offer(app *a, const ch_prediction_rec *rec)
{
    rollout_live *L = &a->roll;
    int taken = 0;
    if (rec->inputs_len == 0 || L->q == NULL)
        return 0;
    pthread_mutex_lock(&L->qmu);
    if (L->qn < SHADOW_QUEUE && L->shadow_started) {
        L->q[(L->qhead + L->qn) % SHADOW_QUEUE] = *rec;
        L->qn++;
        taken = 1;
        pthread_cond_signal(&L->qcv);
    }
    pthread_mutex_unlock(&L->qmu);
    return taken;
}

/* ---- the shadow thread -------------------------------------------------------- */

static void *shadow_main(void *arg)
{
    app *a = arg;
    rollout_live *L = &a->roll;
    ch_value *vals = NULL;
    size_t cap = 0;
    thread_name("churn-shadow");
    for (;;) {
        ch_prediction_rec rec;
        served *c;
        pthread_mutex_lock(&L->qmu);
        while (L->qn == 0 && !L->qstop)
            pthread_cond_wait(&L->qcv, &L->qmu);
        if (L->qn == 0) {
            pthread_mutex_unlock(&L->qmu);
            break;
        }
        rec = L->q[L->qhead];
        L->qhead = (L->qhead + 1) % SHADOW_QUEUE;
        L->qn--;
        pthread_mutex_unlock(&L->qmu);
        pthread_mutex_lock(&a->model_mu);
        c = L->cand;
        if (c != NULL)
            atomic_fetch_add(&c->refs, 1);
        pthread_mutex_unlock(&a->model_mu);
        if (c != NULL) {
            const ch_schema *s = ch_bundle_schema(c->bundle);
            size_t n = ch_schema_n_cols(s);
            ch_explain_ws *ws = served_ws(c);
            if (n > cap) {
                ch_value *nv = ch_realloc(vals, n * sizeof *nv);
                if (nv != NULL) {
                    vals = nv;
                    cap = n;
                }
            }
            if (ws != NULL && n <= cap &&
                ch_inputs_to_values(s, rec.inputs, rec.inputs_len, vals, NULL) == CH_OK) {
                ch_explanation ex;
                ch_explain_record(c->ex, vals, 0, 0, 0, &ex, ws);
                rec.shadow_version = c->version;
                rec.shadow_probability = ex.probability;
                atomic_fetch_add(&a->m.shadow_scored, 1);
            } else {
                atomic_fetch_add(&a->m.shadow_skipped, 1);
            }
            served_release(c);
        }
        ch_predlog_push(a->plog, &rec);
    }
    ch_free(vals);
    return NULL;
}

/* ---- evaluation ------------------------------------------------------------------ */

/* What one arm did in the step, from the store. */
typedef struct arm_log {
    double *p; /* probabilities */
    size_t n, cap;
    ch_monitor_window *w;
} arm_log;

typedef struct eval_scan {
    const ch_rollout *r;
    arm_log arm[2]; /* 0: champion, 1: candidate */
    ch_err rc;
    ch_error err;
} eval_scan;

static ch_err arm_add(arm_log *a, double p, int label, ch_error *err)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 1024;
        double *np = ch_realloc(a->p, nc * sizeof *np);
        if (np == NULL)
            return ch_error_set(err, CH_ENOMEM, "out of memory");
        a->p = np;
        a->cap = nc;
    }
    a->p[a->n++] = p;
    return a->w != NULL ? ch_monitor_window_add(a->w, NULL, NULL, p, label, err) : CH_OK;
}

/* Sorts the step's predictions into the arms: by their arm in a canary,
 * the champion's score and the shadow score of the same record in shadow
 * mode. */
static int eval_row(void *ctx, const ch_prediction_row *row)
{
    eval_scan *e = ctx;
    const ch_rollout *r = e->r;
    ch_err rc = CH_OK;
    if (r->state == CH_ROLLOUT_SHADOW ||
        (r->state == CH_ROLLOUT_PAUSED && r->paused_from == CH_ROLLOUT_SHADOW)) {
        if (row->shadow_version != r->candidate || row->model_version != r->champion)
            return 0;
        rc = arm_add(&e->arm[0], row->probability, row->churned, &e->err);
        if (rc == CH_OK)
            rc = arm_add(&e->arm[1], row->shadow_probability, row->churned, &e->err);
    } else if (row->arm == CH_ARM_CANDIDATE && row->model_version == r->candidate) {
        rc = arm_add(&e->arm[1], row->probability, row->churned, &e->err);
    } else if (row->arm == CH_ARM_CHAMPION) {
        rc = arm_add(&e->arm[0], row->probability, row->churned, &e->err);
    }
    e->rc = rc;
    return rc != CH_OK;
}

/* PSI of the candidate's scores against the champion's over quantile
 * bins of the champion's: ten, or fewer so that the smaller arm expects
 * at least 20 values a bin (a PSI over sparse bins measures noise). */
static double arms_psi(arm_log *c, arm_log *k)
{
    double edges[9];
    double rc_[10];
    double kc[10];
    size_t ne = 0;
    size_t small = c->n < k->n ? c->n : k->n;
    size_t bins = small / 20 < 2 ? 2 : small / 20 > 10 ? 10 : small / 20;
    double psi = NAN;
    double *sorted;
    if (c->n < 2 || k->n < 2)
        return NAN;
    sorted = ch_malloc_array(c->n, sizeof *sorted);
    if (sorted == NULL)
        return NAN;
    memcpy(sorted, c->p, c->n * sizeof *sorted);
    if (ch_drift_sort(sorted, c->n, NULL) != CH_OK ||
        ch_drift_edges(sorted, c->n, bins, edges, &ne, NULL) != CH_OK ||
        ch_drift_bin_counts(edges, ne, c->p, c->n, rc_, NULL) != CH_OK ||
        ch_drift_bin_counts(edges, ne, k->p, k->n, kc, NULL) != CH_OK ||
        ch_drift_psi(rc_, kc, ne + 1, CH_DRIFT_PSI_EPS, &psi, NULL) != CH_OK)
        psi = NAN;
    ch_free(sorted);
    return psi;
}

/* One gate's line of the evaluation document. */
static void check(ch_buf *b, int *first, const char *gate, const char *state, double value,
                  double limit, const char *note)
{
    ch_buf_printf(b, "%s{\"gate\": \"%s\", \"result\": \"%s\", \"value\": ", *first ? "" : ", ",
                  gate, state);
    if (isfinite(value))
        ch_buf_json_num(b, value);
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ", \"limit\": ");
    if (isfinite(limit))
        ch_buf_json_num(b, limit);
    else
        ch_buf_puts(b, "null");
    if (note != NULL) {
        ch_buf_puts(b, ", \"note\": ");
        ch_buf_json_str(b, note, strlen(note));
    }
    ch_buf_putc(b, '}');
    *first = 0;
}

static void arm_json(ch_buf *b, const char *name, const arm_counts *from, const arm_counts *to,
                     const arm_log *l, const ch_monitor_summary *s)
{
    uint64_t n = to->predictions - from->predictions;
    uint64_t e = to->errors - from->errors;
    ch_buf_printf(b,
                  "\"%s\": {\"served_here\": %llu, \"errors_here\": %llu, \"error_rate\": ", name,
                  (unsigned long long)n, (unsigned long long)e);
    if (n > 0)
        ch_buf_json_num(b, (double)e / (double)n);
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ", \"p99_s\": ");
    {
        double q = metrics_arm_quantile(from, to, 0.99);
        if (isfinite(q))
            ch_buf_json_num(b, q);
        else
            ch_buf_puts(b, "null");
    }
    ch_buf_printf(b, ", \"predictions\": %zu, \"labels\": %zu, \"estimated_roc_auc\": ", l->n,
                  s->labels);
    if (isfinite(s->estimated_auc))
        ch_buf_json_num(b, s->estimated_auc);
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ", \"realized_roc_auc\": ");
    if (isfinite(s->realized_auc))
        ch_buf_json_num(b, s->realized_auc);
    else
        ch_buf_puts(b, "null");
    ch_buf_putc(b, '}');
}

enum { V_WAIT = 0, V_PASS = 1, V_FAIL = 2 };

/* Half the width of a summary's realized AUC interval (NaN: none). */
static double half_width(const ch_monitor_summary *s)
{
    return (s->realized_hi - s->realized_lo) / 2;
}

/* Evaluates the step of 'r' into 'b' (the evaluation document); returns
 * V_WAIT, V_PASS or V_FAIL, with the first failing gate in 'why'. */
static int evaluate(app *a, ch_registry *reg, const ch_rollout *r, served *champ, served *cand,
                    ch_buf *b, char *why, size_t why_cap, ch_error *err)
{
    rollout_live *L = &a->roll;
    ch_rollout_gates g;
    eval_scan e;
    ch_prediction_query q;
    ch_monitor_summary sc = {0}, sk = {0};
    ch_monitor_ref *rc_ref = NULL, *rk_ref = NULL;
    ch_monitor_opts mo;
    arm_counts now_c, now_k;
    int shadow = r->state == CH_ROLLOUT_SHADOW;
    double elapsed = (double)(unix_now_ms() - r->step_started_ms) / 1e3;
    double percent = shadow ? 0 : r->steps[r->step];
    int verdict = V_WAIT;
    int failed = 0;
    int first = 1;
    ch_err rc;

    why[0] = '\0';
    ch_rollout_gates_from_config(a->cfg, &g);
    ch_rollout_gates_parse(r->gates_json, &g);
    memset(&e, 0, sizeof e);
    e.r = r;
    ch_monitor_opts_default(&mo);
    mo.min_rows = (size_t)g.min_requests;
    mo.min_labels = (size_t)g.min_labels;
    mo.auc_drop = g.max_estimate_drop;
    mo.n_boot = 100;
    rc = ch_monitor_ref_load(champ->bundle, &rc_ref, err);
    if (rc == CH_OK)
        rc = ch_monitor_ref_load(cand->bundle, &rk_ref, err);
    if (rc == CH_OK)
        rc = ch_monitor_window_new(rc_ref, 1, &e.arm[0].w, err);
    if (rc == CH_OK)
        rc = ch_monitor_window_new(rk_ref, 1, &e.arm[1].w, err);
    if (rc == CH_OK) {
        memset(&q, 0, sizeof q);
        q.since_ms = r->step_started_ms;
        rc = ch_registry_predictions_scan(reg, &q, eval_row, &e, err);
        if (rc == CH_OK && e.rc != CH_OK)
            rc = ch_error_set(err, e.rc, "%s", e.err.msg);
    }
    if (rc == CH_OK) {
        ch_buf tmp;
        ch_buf_init(&tmp, (size_t)64 << 20);
        rc = ch_monitor_estimate(e.arm[0].w, &mo, &tmp, &sc, err);
        ch_buf_clear(&tmp);
        if (rc == CH_OK)
            rc = ch_monitor_estimate(e.arm[1].w, &mo, &tmp, &sk, err);
        ch_buf_reset(&tmp);
    }
    if (rc != CH_OK)
        goto done;
    metrics_arm_read(&a->m, CH_ARM_CHAMPION, &now_c);
    metrics_arm_read(&a->m, CH_ARM_CANDIDATE, &now_k);

    ch_buf_printf(b, "{\"at_ms\": %lld, \"state\": \"%s\", \"step\": %zu, \"percent\": ",
                  (long long)unix_now_ms(), ch_rollout_state_name(r->state), r->step);
    ch_buf_json_num(b, percent);
    ch_buf_puts(b, ", \"elapsed_s\": ");
    ch_buf_json_num(b, elapsed);
    ch_buf_puts(b, ", \"arms\": {");
    arm_json(b, "champion", &L->base[CH_ARM_CHAMPION], &now_c, &e.arm[0], &sc);
    ch_buf_puts(b, ", ");
    arm_json(b, shadow ? "shadow" : "candidate", &L->base[CH_ARM_CANDIDATE], &now_k, &e.arm[1],
             &sk);
    ch_buf_puts(b, "}, \"checks\": [");
    {
        size_t n_cand = e.arm[1].n;
        int enough = (double)n_cand >= g.min_requests;
        uint64_t nk = now_k.predictions - L->base[CH_ARM_CANDIDATE].predictions;
        uint64_t nc = now_c.predictions - L->base[CH_ARM_CHAMPION].predictions;
        double ek =
            nk > 0 ? (double)(now_k.errors - L->base[CH_ARM_CANDIDATE].errors) / (double)nk : NAN;
        double ec = nc > 0 ? (double)(now_c.errors - L->base[CH_ARM_CHAMPION].errors) / (double)nc
                           : L->last_champion_error_rate;
        double pk = metrics_arm_quantile(&L->base[CH_ARM_CANDIDATE], &now_k, 0.99);
        double pc = nc > 0 ? metrics_arm_quantile(&L->base[CH_ARM_CHAMPION], &now_c, 0.99)
                           : L->last_champion_p99;
        double psi = arms_psi(&e.arm[0], &e.arm[1]);
        if (nc > 0) {
            L->last_champion_error_rate = ec;
            L->last_champion_p99 = pc;
        }
        check(b, &first, "min_requests", enough ? "pass" : "wait", (double)n_cand, g.min_requests,
              NULL);
        check(b, &first, "min_seconds", elapsed >= g.min_seconds ? "pass" : "wait", elapsed,
              g.min_seconds, NULL);
        /* Error rate and latency: this server's own counters. */
        if (shadow || nk == 0 || !isfinite(ec)) {
            check(b, &first, "error_rate", "n/a", ek, NAN,
                  shadow ? "shadow scores are off the request path" : "no traffic here yet");
        } else {
            int bad = ek > ec + g.max_error_rate_increase;
            check(b, &first, "error_rate", bad && enough ? "fail" : "pass", ek,
                  ec + g.max_error_rate_increase, NULL);
            if (bad && enough && !failed) {
                failed = 1;
                snprintf(why, why_cap, "error rate %.4f above the champion's %.4f + %.4f", ek, ec,
                         g.max_error_rate_increase);
            }
        }
        if (shadow || !isfinite(pk) || !isfinite(pc)) {
            check(b, &first, "p99_latency", "n/a", pk, NAN,
                  shadow ? "shadow scores are off the request path" : "no latency to compare");
        } else {
            double limit = pc * g.max_p99_ratio + 0.002;
            int bad = pk > limit;
            check(b, &first, "p99_latency", bad && enough ? "fail" : "pass", pk, limit, NULL);
            if (bad && enough && !failed) {
                failed = 1;
                snprintf(why, why_cap, "p99 scoring latency %.4f s above %.4f s", pk, limit);
            }
        }
        /* The candidate's scores in service against those it gave its own
         * test set: a shift means it sees other inputs than in training
         * (a broken pipeline, a field filled differently). */
        if (!enough || !isfinite(sk.score_psi)) {
            check(b, &first, "score_psi", "wait", NAN, g.max_score_psi,
                  "against the candidate's own reference, after rollout.min_requests");
        } else {
            int bad = sk.score_psi > g.max_score_psi;
            check(b, &first, "score_psi", bad ? "fail" : "pass", sk.score_psi, g.max_score_psi,
                  "against the candidate's own reference");
            if (bad && !failed) {
                failed = 1;
                snprintf(why, why_cap,
                         "score distribution shift PSI %.3f against the candidate's own "
                         "reference, above %.3f",
                         sk.score_psi, g.max_score_psi);
            }
        }
        /* Against the champion: a model retrained after concept drift is
         * meant to score differently (PSI about 0.5 in the closed-loop
         * test), so this limit is loose; it catches a candidate whose
         * scores have little in common with the champion's (a constant
         * model: PSI 8). */
        if (g.max_arms_psi <= 0) {
            check(b, &first, "arms_psi", "n/a", psi, NAN, "rollout.max_arms_psi is 0: off");
        } else if (!enough || !isfinite(psi) || e.arm[0].n < 40 || e.arm[1].n < 40) {
            check(b, &first, "arms_psi", "wait", psi, g.max_arms_psi,
                  "the candidate's scores against the champion's, 40 an arm");
        } else {
            int bad = psi > g.max_arms_psi;
            check(b, &first, "arms_psi", bad ? "fail" : "pass", psi, g.max_arms_psi,
                  "the candidate's scores against the champion's");
            if (bad && !failed) {
                failed = 1;
                snprintf(why, why_cap,
                         "the candidate's scores differ from the champion's: PSI %.3f above %.3f",
                         psi, g.max_arms_psi);
            }
        }
        if (!isfinite(sk.estimated_auc)) {
            check(b, &first, "estimated_roc_auc", "wait", NAN, NAN, "too few predictions");
        } else {
            check(b, &first, "estimated_roc_auc", sk.estimate_dropped ? "fail" : "pass",
                  sk.estimated_auc, NAN, "against the candidate's own reference estimate");
            if (sk.estimate_dropped && !failed) {
                failed = 1;
                snprintf(why, why_cap,
                         "estimated ROC AUC %.4f dropped more than %.3f below the candidate's "
                         "reference",
                         sk.estimated_auc, g.max_estimate_drop);
            }
        }
        {
            int labels_ok = isfinite(sc.realized_auc) && isfinite(sk.realized_auc);
            if (!labels_ok) {
                check(b, &first, "realized_roc_auc", g.require_labels ? "wait" : "n/a", NAN, NAN,
                      "each arm needs rollout.min_labels labels");
            } else {
                /* Non-inferiority: the step fails only when the candidate is
                 * worse than the champion by more than max_auc_drop beyond
                 * sampling noise (one-sided 95%, the two arms' bootstrap
                 * intervals read as normal). A few hundred labels an arm
                 * leave an interval of several points: noise alone must
                 * not roll a good candidate back. */
                double se = hypot(half_width(&sk), half_width(&sc)) / 1.959964;
                double d = sk.realized_auc - sc.realized_auc;
                double limit = sc.realized_auc - g.max_auc_drop;
                int bad =
                    isfinite(se) ? d + 1.644854 * se < -g.max_auc_drop : sk.realized_auc < limit;
                check(b, &first, "realized_roc_auc", bad ? "fail" : "pass", sk.realized_auc, limit,
                      isfinite(se) ? NULL : "no interval: compared as is");
                if (bad && !failed) {
                    failed = 1;
                    snprintf(why, why_cap,
                             "realized ROC AUC %.4f below the champion's %.4f - %.3f "
                             "(%zu and %zu labels; upper bound of the difference %+.4f)",
                             sk.realized_auc, sc.realized_auc, g.max_auc_drop, sk.labels, sc.labels,
                             d + 1.644854 * se);
                }
            }
            if (failed)
                verdict = V_FAIL;
            else if (enough && elapsed >= g.min_seconds && (labels_ok || !g.require_labels))
                verdict = V_PASS;
        }
    }
    ch_buf_printf(b, "], \"verdict\": \"%s\"",
                  verdict == V_FAIL   ? "fail"
                  : verdict == V_PASS ? "pass"
                                      : "wait");
    if (why[0] != '\0') {
        ch_buf_puts(b, ", \"reason\": ");
        ch_buf_json_str(b, why, strlen(why));
    }
    ch_buf_putc(b, '}');
    rc = ch_buf_status(b);
done:
    for (int k = 0; k < 2; k++) {
        ch_monitor_window_free(e.arm[k].w);
        ch_free(e.arm[k].p);
    }
    ch_monitor_ref_free(rc_ref);
    ch_monitor_ref_free(rk_ref);
    if (rc != CH_OK)
        return -1;
    return verdict;
}

/* ---- the controller ------------------------------------------------------------- */

/* Publishes what the request path needs ('cand' adopted, may be NULL). */
static void publish(app *a, served *cand, int64_t id, int state, double percent)
{
    rollout_live *L = &a->roll;
    served *old;
    pthread_mutex_lock(&a->model_mu);
    old = L->cand;
    L->cand = cand;
    L->id = id;
    L->route_state = state;
    L->percent = percent;
    pthread_mutex_unlock(&a->model_mu);
    /* 'cand' came with a reference for L; when L already held it, that
     * one is surplus. */
    served_release(old != cand ? old : cand);
}

/* Follows the store's active rollout once. */
static void follow(app *a, ch_registry *reg)
{
    rollout_live *L = &a->roll;
    ch_rollout r;
    int found = 0;
    ch_error err = {0};
    served *cand = NULL;
    served *champ;
    int split;
    char path[4096];
    int64_t v = 0;
    ch_buf b;
    char why[256];
    int verdict;

    if (ch_registry_rollout_get(reg, 0, &r, &found, &err) != CH_OK)
        return;
    if (!found) {
        if (L->cand != NULL) {
            server_log("rollout %lld ended; the candidate no longer answers", (long long)L->id);
            publish(a, NULL, 0, -1, 0);
        }
        L->seen_id = 0;
        return;
    }
    pthread_mutex_lock(&a->model_mu);
    cand = L->cand;
    if (cand != NULL && cand->version == r.candidate)
        atomic_fetch_add(&cand->refs, 1);
    else
        cand = NULL;
    pthread_mutex_unlock(&a->model_mu);
    if (cand == NULL) {
        char ref[24];
        snprintf(ref, sizeof ref, "%lld", (long long)r.candidate);
        if (ch_registry_resolve(reg, ref, &v, path, sizeof path, &err) == CH_OK &&
            served_load(a, path, r.candidate, "candidate", &cand, &err) == CH_OK) {
            server_log("rollout %lld: candidate v%lld loaded (%s)", (long long)r.id,
                       (long long)r.candidate, ch_rollout_state_name(r.state));
        } else {
            char reason[320];
            snprintf(reason, sizeof reason, "the candidate cannot be served: %s", err.msg);
            server_log("rollout %lld: %s; rolling back", (long long)r.id, reason);
            if (ch_registry_rollout_end(reg, r.id, CH_ROLLOUT_ROLLED_BACK, (int)r.state,
                                        (int)r.step, NULL, ACTOR, reason, &err) != CH_OK)
                server_log("rollout %lld: could not roll back: %s", (long long)r.id, err.msg);
            else
                atomic_fetch_add(&L->n_rolled_back, 1);
            return;
        }
    }
    split = r.state == CH_ROLLOUT_PAUSED ? (int)r.paused_from : (int)r.state;
    atomic_fetch_add(&cand->refs, 1);
    publish(a, cand, r.id, split, split == CH_ROLLOUT_CANARY ? r.steps[r.step] : 0);
    /* A new step: the gates count this server's traffic from here. */
    if (r.id != L->seen_id || (int)r.state != L->seen_state || r.step != L->seen_step ||
        r.step_started_ms != L->seen_started) {
        metrics_arm_read(&a->m, CH_ARM_CHAMPION, &L->base[CH_ARM_CHAMPION]);
        metrics_arm_read(&a->m, CH_ARM_CANDIDATE, &L->base[CH_ARM_CANDIDATE]);
        L->seen_id = r.id;
        L->seen_state = (int)r.state;
        L->seen_step = r.step;
        L->seen_started = r.step_started_ms;
    }
    if (r.state == CH_ROLLOUT_PAUSED) {
        served_release(cand);
        return;
    }
    champ = served_acquire(a);
    if (champ == NULL || champ->version != r.champion) {
        /* The champion moved under the rollout (promoted or rolled back by
         * hand): its comparison no longer holds. */
        if (champ != NULL && champ->version != r.champion) {
            char reason[160];
            snprintf(reason, sizeof reason, "the champion changed to v%lld during the rollout",
                     (long long)champ->version);
            if (ch_registry_rollout_end(reg, r.id, CH_ROLLOUT_ABORTED, (int)r.state, (int)r.step,
                                        NULL, ACTOR, reason, &err) == CH_OK) {
                atomic_fetch_add(&L->n_aborted, 1);
                server_log("rollout %lld aborted: %s", (long long)r.id, reason);
            }
        }
        served_release(champ);
        served_release(cand);
        return;
    }
    ch_buf_init(&b, 1 << 20);
    verdict = evaluate(a, reg, &r, champ, cand, &b, why, sizeof why, &err);
    if (verdict < 0) {
        server_log("rollout %lld: evaluation failed: %s", (long long)r.id, err.msg);
    } else if (verdict == V_WAIT) {
        if (ch_registry_rollout_evaluated(reg, r.id, b.data, &err) != CH_OK)
            server_log("rollout %lld: could not keep the evaluation: %s", (long long)r.id, err.msg);
    } else if (verdict == V_PASS) {
        int last = r.state == CH_ROLLOUT_CANARY && r.step + 1 >= r.n_steps;
        if (ch_registry_rollout_advance(reg, r.id, (int)r.state, (int)r.step, b.data, ACTOR,
                                        last ? "rollout completed: every gate passed"
                                             : "every gate passed",
                                        &err) == CH_OK) {
            atomic_fetch_add(last ? &L->n_promoted : &L->n_steps, 1);
            if (last)
                server_log("rollout %lld: v%lld promoted to champion", (long long)r.id,
                           (long long)r.candidate);
            else
                server_log("rollout %lld: step passed, candidate v%lld to %g%%", (long long)r.id,
                           (long long)r.candidate,
                           r.state == CH_ROLLOUT_SHADOW ? r.steps[0] : r.steps[r.step + 1]);
        } else if (err.code != CH_EBUSY) {
            server_log("rollout %lld: could not move on: %s", (long long)r.id, err.msg);
        }
    } else {
        if (ch_registry_rollout_end(reg, r.id, CH_ROLLOUT_ROLLED_BACK, (int)r.state, (int)r.step,
                                    b.data, ACTOR, why, &err) == CH_OK) {
            atomic_fetch_add(&L->n_rolled_back, 1);
            server_log("rollout %lld rolled back: %s", (long long)r.id, why);
            publish(a, NULL, 0, -1, 0);
        } else if (err.code != CH_EBUSY) {
            server_log("rollout %lld: could not roll back: %s", (long long)r.id, err.msg);
        }
    }
    ch_buf_reset(&b);
    served_release(champ);
    served_release(cand);
}

static void *controller_main(void *arg)
{
    app *a = arg;
    rollout_live *L = &a->roll;
    ch_registry *reg = NULL;
    ch_registry_opts ro;
    thread_name("churn-rollout");
    ch_registry_opts_default(&ro);
    pthread_mutex_lock(&a->stop_mu);
    while (!atomic_load(&a->stopping)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += L->eval_s;
        while (!atomic_load(&a->stopping) && !atomic_load(&L->wake))
            if (pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &until) == ETIMEDOUT)
                break;
        atomic_store(&L->wake, 0);
        if (atomic_load(&a->stopping))
            break;
        pthread_mutex_unlock(&a->stop_mu);
        if (reg == NULL) {
            ch_error err = {0};
            if (ch_registry_open(ch_config_str(a->cfg, "registry.url"), &ro, &reg, &err) != CH_OK)
                server_log("rollouts: cannot open the registry: %s", err.msg);
        }
        if (reg != NULL)
            follow(a, reg);
        pthread_mutex_lock(&a->stop_mu);
    }
    pthread_mutex_unlock(&a->stop_mu);
    ch_registry_close(reg);
    return NULL;
}

ch_err rollout_start_threads(app *a, ch_error *err)
{
    rollout_live *L = &a->roll;
    L->eval_s = (int)ch_config_num(a->cfg, "rollout.eval_s");
    L->route_state = -1;
    L->last_champion_p99 = NAN;
    L->last_champion_error_rate = NAN;
    pthread_mutex_init(&L->qmu, NULL);
    pthread_cond_init(&L->qcv, NULL);
    if (!a->follow)
        return CH_OK; /* a file is served: no registry, no rollouts */
    L->q = ch_calloc(SHADOW_QUEUE, sizeof *L->q);
    if (L->q == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory for the shadow queue");
    if (pthread_create(&L->shadow_thr, NULL, shadow_main, a) != 0)
        return ch_error_set(err, CH_EIO, "cannot start the shadow thread");
    L->shadow_started = 1;
    if (pthread_create(&L->thr, NULL, controller_main, a) != 0)
        return ch_error_set(err, CH_EIO, "cannot start the rollout controller");
    L->started = 1;
    return CH_OK;
}

void rollout_wake(app *a)
{
    atomic_store(&a->roll.wake, 1);
    pthread_mutex_lock(&a->stop_mu);
    pthread_cond_broadcast(&a->stop_cv);
    pthread_mutex_unlock(&a->stop_mu);
}

void rollout_stop_threads(app *a)
{
    rollout_live *L = &a->roll;
    if (L->started)
        pthread_join(L->thr, NULL);
    if (L->shadow_started) {
        pthread_mutex_lock(&L->qmu);
        L->qstop = 1;
        pthread_cond_broadcast(&L->qcv);
        pthread_mutex_unlock(&L->qmu);
        pthread_join(L->shadow_thr, NULL); /* drains the queue into the log first */
    }
    L->started = L->shadow_started = 0;
    publish(a, NULL, 0, -1, 0);
    ch_free(L->q);
    L->q = NULL;
    pthread_cond_destroy(&L->qcv);
    pthread_mutex_destroy(&L->qmu);
}

void rollout_metrics(app *a, ch_buf *b)
{
    rollout_live *L = &a->roll;
    int64_t id, cand;
    int state;
    double percent;
    pthread_mutex_lock(&a->model_mu);
    id = L->id;
    cand = L->cand != NULL ? L->cand->version : 0;
    state = L->route_state;
    percent = L->percent;
    pthread_mutex_unlock(&a->model_mu);
    ch_buf_puts(b, "# HELP churn_rollout_active The rollout this server follows (value 1; "
                   "no sample when none runs).\n# TYPE churn_rollout_active gauge\n");
    if (cand > 0)
        ch_buf_printf(
            b, "churn_rollout_active{rollout=\"%lld\",candidate=\"%lld\",mode=\"%s\"} 1\n",
            (long long)id, (long long)cand, state == CH_ROLLOUT_SHADOW ? "shadow" : "canary");
    ch_buf_puts(b, "# HELP churn_rollout_candidate_percent Share of customers the candidate "
                   "answers, percent (0 in shadow mode or without a rollout).\n"
                   "# TYPE churn_rollout_candidate_percent gauge\n");
    ch_buf_printf(b, "churn_rollout_candidate_percent %g\n",
                  cand > 0 && state == CH_ROLLOUT_CANARY ? percent : 0.0);
    ch_buf_puts(b, "# HELP churn_rollout_transitions_total Rollout moves this server's controller "
                   "made.\n# TYPE churn_rollout_transitions_total counter\n");
    ch_buf_printf(b,
                  "churn_rollout_transitions_total{result=\"step\"} %llu\n"
                  "churn_rollout_transitions_total{result=\"promoted\"} %llu\n"
                  "churn_rollout_transitions_total{result=\"rolled_back\"} %llu\n"
                  "churn_rollout_transitions_total{result=\"aborted\"} %llu\n",
                  (unsigned long long)atomic_load(&L->n_steps),
                  (unsigned long long)atomic_load(&L->n_promoted),
                  (unsigned long long)atomic_load(&L->n_rolled_back),
                  (unsigned long long)atomic_load(&L->n_aborted));
}
