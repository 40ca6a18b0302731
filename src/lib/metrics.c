/*
 * metrics.c -- evaluation of binary classifiers and threshold choice.
 *
 * Every metric takes labels, scores and optional weights as parallel
 * arrays and validates them in one pass (check_rows) before computing
 * anything, so a bad row is reported by index and never half-used.
 *
 * Metrics that depend on the order of the scores (ROC AUC, PR AUC,
 * deciles, the two thresholds) sort one scratch copy of the rows, highest
 * score first and ties by row index. The index tie-break makes the order
 * a total order, so the result does not depend on the qsort
 * implementation, and every sum is taken in the same sequence on every
 * platform. Rows with equal scores are then visited as one group, which
 * is what makes ties exact: a group moves the ROC and PR curves in one
 * step instead of an arbitrary staircase. The work is O(n log n) time and
 * O(n) scratch memory, freed before returning.
 *
 * The workload is evaluation after training and on held-out data: a few
 * calls per model over thousands to millions of rows. Nothing keeps state
 * between calls and every function is thread-safe.
 */
#include "ch/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"

/* Clip for the log loss, so that a confident wrong answer costs about
 * 34.5 nats instead of infinity (the usual convention, as scikit-learn). */
#define LOGLOSS_EPS 1e-15

/* What check_rows() accepts in 'p'. */
typedef enum score_kind {
    SCORE_ANY = 0, /* any non-NaN value: the function only compares scores */
    SCORE_PROB = 1 /* a probability in [0, 1] */
} score_kind;

/* One row in the scratch copy that order-based metrics sort. */
typedef struct row {
    double p; /* score */
    double y; /* label, 0 or 1 */
    double w; /* weight, > 0 */
    size_t i; /* original index: the tie-break */
} row;

/* Weighted totals of one run of rows with equal scores. */
typedef struct group {
    double p;   /* the shared score */
    double pos; /* weight of positive rows */
    double neg; /* weight of negative rows */
    size_t end; /* index one past the group's last row in the sorted array */
} group;

/*
 * Validates 'n' rows of labels 'y', scores 'p' (a probability when 'kind'
 * is SCORE_PROB) and optional weights 'w'. No rows is CH_EDATA, because
 * every metric here is undefined on an empty set; a bad value is
 * CH_EINVAL with its row index. On success '*pos' and '*neg' (either may
 * be NULL) get the weight of each class, summed in row order.
 */
static ch_err check_rows(const double *y, const double *p, const double *w, size_t n,
                         score_kind kind, double *pos, double *neg, ch_error *err)
{
    double wp = 0.0;
    double wn = 0.0;

    if (n == 0)
        return ch_error_set(err, CH_EDATA, "no rows to evaluate");
    if (y == NULL || p == NULL)
        return ch_error_set(err, CH_EINVAL, "labels and scores are required");
    for (size_t i = 0; i < n; i++) {
        double wi = w != NULL ? w[i] : 1.0;
        if (y[i] != 0.0 && y[i] != 1.0)
            return ch_error_set(err, CH_EINVAL, "row %zu: label %g is not 0 or 1", i, y[i]);
        if (isnan(p[i]))
            return ch_error_set(err, CH_EINVAL, "row %zu: score is NaN", i);
        if (kind == SCORE_PROB && !(p[i] >= 0.0 && p[i] <= 1.0))
            return ch_error_set(err, CH_EINVAL, "row %zu: probability %g is outside [0, 1]", i,
                                p[i]);
        if (!(wi > 0.0 && isfinite(wi)))
            return ch_error_set(err, CH_EINVAL, "row %zu: weight %g is not positive and finite", i,
                                wi);
        if (y[i] == 1.0)
            wp += wi;
        else
            wn += wi;
    }
    if (pos != NULL)
        *pos = wp;
    if (neg != NULL)
        *neg = wn;
    return CH_OK;
}

/* qsort order: score descending, then row index ascending. */
static int cmp_row(const void *a, const void *b)
{
    const row *x = a;
    const row *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/*
 * Copies the (already validated) rows into a new array sorted by score,
 * highest first, ties by index. The caller frees '*out' with ch_free().
 */
static ch_err sort_rows(const double *y, const double *p, const double *w, size_t n, row **out,
                        ch_error *err)
{
    row *r = ch_malloc_array(n, sizeof *r);
    if (r == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory sorting %zu rows", n);
    for (size_t i = 0; i < n; i++) {
        r[i].p = p[i];
        r[i].y = y[i];
        r[i].w = w != NULL ? w[i] : 1.0;
        r[i].i = i;
    }
    qsort(r, n, sizeof *r, cmp_row);
    *out = r;
    return CH_OK;
}

/* Sums the group of tied scores that starts at sorted row 'at'. */
static group next_group(const row *r, size_t n, size_t at)
{
    group g = {r[at].p, 0.0, 0.0, at};
    while (g.end < n && r[g.end].p == g.p) {
        if (r[g.end].y == 1.0)
            g.pos += r[g.end].w;
        else
            g.neg += r[g.end].w;
        g.end++;
    }
    return g;
}

/*
 * The Mann-Whitney form of the AUC: the weighted share of
 * (positive, negative) pairs in which the positive scores higher, a tie
 * counting one half. Walking groups from the highest score down, each
 * negative in a group is outranked by every positive seen before the group
 * and ties with the positives inside it, which is the midrank rule without
 * computing ranks.
 */
ch_err ch_metric_roc_auc(const double *y, const double *p, const double *w, size_t n, double *out,
                         ch_error *err)
{
    double pos;
    double neg;
    double above = 0.0;
    double pairs = 0.0;
    row *r = NULL;
    ch_err rc;

    rc = check_rows(y, p, w, n, SCORE_ANY, &pos, &neg, err);
    if (rc != CH_OK)
        return rc;
    if (pos == 0.0 || neg == 0.0)
        return ch_error_set(err, CH_EDATA, "ROC AUC is undefined: no %s rows",
                            pos == 0.0 ? "positive" : "negative");
    rc = sort_rows(y, p, w, n, &r, err);
    if (rc != CH_OK)
        return rc;
    for (size_t at = 0; at < n;) {
        group g = next_group(r, n, at);
        pairs += g.neg * (above + 0.5 * g.pos);
        above += g.pos;
        at = g.end;
    }
    ch_free(r);
    *out = pairs / (pos * neg);
    return CH_OK;
}

/*
 * Average precision: at each distinct score, taken from the highest down,
 * the recall gained by lowering the threshold to that score times the
 * precision there. A group of tied scores is one step, so the result does
 * not depend on how ties are ordered. Undefined without positives.
 */
ch_err ch_metric_pr_auc(const double *y, const double *p, const double *w, size_t n, double *out,
                        ch_error *err)
{
    double pos;
    double tp = 0.0;
    double fp = 0.0;
    double ap = 0.0;
    row *r = NULL;
    ch_err rc;

    rc = check_rows(y, p, w, n, SCORE_ANY, &pos, NULL, err);
    if (rc != CH_OK)
        return rc;
    if (pos == 0.0)
        return ch_error_set(err, CH_EDATA, "PR AUC is undefined: no positive rows");
    rc = sort_rows(y, p, w, n, &r, err);
    if (rc != CH_OK)
        return rc;
    for (size_t at = 0; at < n;) {
        group g = next_group(r, n, at);
        tp += g.pos;
        fp += g.neg;
        if (g.pos > 0.0)
            ap += (g.pos / pos) * (tp / (tp + fp));
        at = g.end;
    }
    ch_free(r);
    *out = ap;
    return CH_OK;
}

ch_err ch_metric_log_loss(const double *y, const double *p, const double *w, size_t n, double *out,
                          ch_error *err)
{
    double sum = 0.0;
    double tot = 0.0;
    ch_err rc = check_rows(y, p, w, n, SCORE_PROB, NULL, NULL, err);
    if (rc != CH_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double wi = w != NULL ? w[i] : 1.0;
        double pc = fmin(fmax(p[i], LOGLOSS_EPS), 1.0 - LOGLOSS_EPS);
        sum += wi * -(y[i] == 1.0 ? log(pc) : log1p(-pc));
        tot += wi;
    }
    *out = sum / tot;
    return CH_OK;
}

ch_err ch_metric_brier(const double *y, const double *p, const double *w, size_t n, double *out,
                       ch_error *err)
{
    double sum = 0.0;
    double tot = 0.0;
    ch_err rc = check_rows(y, p, w, n, SCORE_PROB, NULL, NULL, err);
    if (rc != CH_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double wi = w != NULL ? w[i] : 1.0;
        double d = p[i] - y[i];
        sum += wi * d * d;
        tot += wi;
    }
    *out = sum / tot;
    return CH_OK;
}

/* Fills the rates of 'c' from its counts; an undefined ratio is 0. F1 is
 * written as 2tp / (2tp + fp + fn), which equals 2PR / (P + R) whenever
 * that is defined and is 0 exactly when tp is 0. */
static void confusion_rates(ch_confusion *c)
{
    double all = c->tp + c->fp + c->tn + c->fn;
    c->accuracy = all > 0.0 ? (c->tp + c->tn) / all : 0.0;
    c->precision = c->tp + c->fp > 0.0 ? c->tp / (c->tp + c->fp) : 0.0;
    c->recall = c->tp + c->fn > 0.0 ? c->tp / (c->tp + c->fn) : 0.0;
    c->f1 = c->tp > 0.0 ? 2.0 * c->tp / (2.0 * c->tp + c->fp + c->fn) : 0.0;
}

ch_err ch_metric_confusion(const double *y, const double *p, const double *w, size_t n,
                           double threshold, ch_confusion *out, ch_error *err)
{
    ch_confusion c = {0};
    ch_err rc;

    if (isnan(threshold))
        return ch_error_set(err, CH_EINVAL, "threshold is NaN");
    rc = check_rows(y, p, w, n, SCORE_ANY, NULL, NULL, err);
    if (rc != CH_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        double wi = w != NULL ? w[i] : 1.0;
        int hit = p[i] >= threshold;
        if (y[i] == 1.0) {
            if (hit)
                c.tp += wi;
            else
                c.fn += wi;
        } else {
            if (hit)
                c.fp += wi;
            else
                c.tn += wi;
        }
    }
    confusion_rates(&c);
    *out = c;
    return CH_OK;
}

/*
 * Equal-width reliability bins. A probability goes to bin
 * floor(p * n_bins); p == 1 would be bin n_bins and is folded into the
 * last one, so every bin is [k/n_bins, (k+1)/n_bins) except the last,
 * which is closed.
 */
ch_err ch_metric_reliability(const double *y, const double *p, const double *w, size_t n,
                             size_t n_bins, ch_reliability *out, ch_error *err)
{
    double sum_p[CH_CALIB_BINS_MAX] = {0};
    double sum_y[CH_CALIB_BINS_MAX] = {0};
    double tot = 0.0;
    ch_reliability r;
    ch_err rc;

    if (n_bins < 1 || n_bins > CH_CALIB_BINS_MAX)
        return ch_error_set(err, CH_EINVAL, "%zu reliability bins: must be 1 to %d", n_bins,
                            CH_CALIB_BINS_MAX);
    rc = check_rows(y, p, w, n, SCORE_PROB, NULL, NULL, err);
    if (rc != CH_OK)
        return rc;
    memset(&r, 0, sizeof r);
    r.n_bins = n_bins;
    for (size_t i = 0; i < n; i++) {
        double wi = w != NULL ? w[i] : 1.0;
        size_t k = (size_t)(p[i] * (double)n_bins);
        if (k >= n_bins)
            k = n_bins - 1;
        r.count[k] += wi;
        sum_p[k] += wi * p[i];
        sum_y[k] += wi * y[i];
        tot += wi;
    }
    for (size_t k = 0; k < n_bins; k++) {
        if (r.count[k] == 0.0)
            continue;
        r.mean_pred[k] = sum_p[k] / r.count[k];
        r.rate[k] = sum_y[k] / r.count[k];
        r.ece += (r.count[k] / tot) * fabs(r.mean_pred[k] - r.rate[k]);
    }
    *out = r;
    return CH_OK;
}

/* First sorted rank of decile 'k' of 'n' rows: floor(k * n / 10), written
 * so that k * n cannot overflow. */
static size_t decile_start(size_t k, size_t n)
{
    return k * (n / 10) + k * (n % 10) / 10;
}

/*
 * Deciles cut the sorted rows at rank boundaries, so decile k holds ranks
 * [floor(k n / 10), floor((k + 1) n / 10)): the counts differ by at most
 * one row and a group of tied scores may straddle a boundary, split by
 * row index. Cutting by rank rather than by score keeps ten deciles even
 * when many scores tie (a model with few distinct outputs). With fewer
 * than ten rows some deciles are empty: their rate and lift are 0 and
 * their gain repeats the previous one. Undefined without positives.
 */
ch_err ch_metric_deciles(const double *y, const double *p, const double *w, size_t n,
                         ch_deciles *out, ch_error *err)
{
    double pos_all = 0.0;
    double w_all = 0.0;
    double cum = 0.0;
    double dw[10] = {0};
    double dpos[10] = {0};
    ch_deciles d;
    row *r = NULL;
    ch_err rc;

    rc = check_rows(y, p, w, n, SCORE_ANY, NULL, NULL, err);
    if (rc != CH_OK)
        return rc;
    rc = sort_rows(y, p, w, n, &r, err);
    if (rc != CH_OK)
        return rc;
    /* Totals are summed in sorted order, the same sequence as the running
     * gain below, so the last gain is exactly 1. */
    for (size_t k = 0; k < 10; k++) {
        size_t end = decile_start(k + 1, n);
        for (size_t i = decile_start(k, n); i < end; i++) {
            dw[k] += r[i].w;
            if (r[i].y == 1.0) {
                dpos[k] += r[i].w;
                pos_all += r[i].w;
            }
            w_all += r[i].w;
        }
    }
    ch_free(r);
    if (pos_all == 0.0)
        return ch_error_set(err, CH_EDATA, "lift and gains are undefined: no positive rows");
    memset(&d, 0, sizeof d);
    for (size_t k = 0; k < 10; k++) {
        cum += dpos[k];
        if (dw[k] > 0.0) {
            d.rate[k] = dpos[k] / dw[k];
            d.lift[k] = d.rate[k] / (pos_all / w_all);
        }
        d.gain[k] = cum / pos_all;
    }
    *out = d;
    return CH_OK;
}

/*
 * Every distinct score is a candidate threshold. Lowering the threshold
 * from the highest score down adds one group at a time to the predicted
 * positives, so F1 = 2 tp / (tp + fp + P) is updated in O(1) per group.
 * The comparison is >=, so of equal maxima the last one seen -- the
 * lowest threshold -- wins.
 */
ch_err ch_threshold_f1(const double *y, const double *p, const double *w, size_t n,
                       double *threshold, double *f1, ch_error *err)
{
    double pos;
    double tp = 0.0;
    double fp = 0.0;
    double best = -1.0;
    double best_t = 0.0;
    row *r = NULL;
    ch_err rc;

    rc = check_rows(y, p, w, n, SCORE_ANY, &pos, NULL, err);
    if (rc != CH_OK)
        return rc;
    if (pos == 0.0)
        return ch_error_set(err, CH_EDATA, "F1 is undefined: no positive rows");
    rc = sort_rows(y, p, w, n, &r, err);
    if (rc != CH_OK)
        return rc;
    for (size_t at = 0; at < n;) {
        group g = next_group(r, n, at);
        double f;
        tp += g.pos;
        fp += g.neg;
        f = tp > 0.0 ? 2.0 * tp / (tp + fp + pos) : 0.0;
        if (f >= best) {
            best = f;
            best_t = g.p;
        }
        at = g.end;
    }
    ch_free(r);
    *threshold = best_t;
    *f1 = best;
    return CH_OK;
}

/* Checks the economics in 'o': all finite, none negative, and a success
 * rate that is a share. */
static ch_err check_value_opts(const ch_value_opts *o, ch_error *err)
{
    if (o == NULL)
        return ch_error_set(err, CH_EINVAL, "value options are required");
    if (!(isfinite(o->horizon_months) && o->horizon_months >= 0.0))
        return ch_error_set(err, CH_EINVAL, "horizon_months %g must be finite and >= 0",
                            o->horizon_months);
    if (!(isfinite(o->offer_cost) && o->offer_cost >= 0.0))
        return ch_error_set(err, CH_EINVAL, "offer_cost %g must be finite and >= 0", o->offer_cost);
    if (!(o->success_rate >= 0.0 && o->success_rate <= 1.0))
        return ch_error_set(err, CH_EINVAL, "success_rate %g must be in [0, 1]", o->success_rate);
    return CH_OK;
}

/*
 * Targeting every row with p >= t earns, per row, the retained revenue of
 * a churner the offer saves minus the offer's cost. Scanning from the
 * highest score down, the running total is the value of each candidate threshold; the
 * comparison is strict, so of equal maxima the highest threshold (fewest
 * offers) wins, and a best total that is not positive means "target no
 * one": threshold just above 1, value 0.
 */
ch_err ch_threshold_value(const double *y, const double *p, const double *revenue, size_t n,
                          const ch_value_opts *o, double *threshold, double *value, ch_error *err)
{
    double total = 0.0;
    double best = 0.0;
    double best_t = nextafter(1.0, 2.0);
    row *r = NULL;
    ch_err rc;

    rc = check_value_opts(o, err);
    if (rc != CH_OK)
        return rc;
    rc = check_rows(y, p, NULL, n, SCORE_PROB, NULL, NULL, err);
    if (rc != CH_OK)
        return rc;
    if (revenue == NULL)
        return ch_error_set(err, CH_EINVAL, "revenue is required");
    for (size_t i = 0; i < n; i++)
        if (!isfinite(revenue[i]))
            return ch_error_set(err, CH_EINVAL, "row %zu: revenue is not a finite number", i);
    rc = sort_rows(y, p, NULL, n, &r, err);
    if (rc != CH_OK)
        return rc;
    for (size_t at = 0; at < n;) {
        size_t end = at;
        while (end < n && r[end].p == r[at].p) {
            size_t i = r[end].i;
            total += y[i] * o->success_rate * revenue[i] * o->horizon_months - o->offer_cost;
            end++;
        }
        if (total > best) {
            best = total;
            best_t = r[at].p;
        }
        at = end;
    }
    ch_free(r);
    *threshold = best_t;
    *value = best;
    return CH_OK;
}
