/*
 * test_metrics.c -- classifier metrics, thresholds and calibration,
 * through include/ch/metrics.h only.
 *
 * Each metric is checked twice: on tiny cases computed by hand, and on
 * random data against a slow reference written here from the definition
 * (all pairs for ROC AUC, every threshold for PR AUC and the two
 * threshold rules, repeat-until-no-violation pooling for isotonic
 * regression). Random data comes from a small generator in this file with
 * fixed seeds, so every run is identical. Scores are drawn from a coarse
 * grid so that ties are common, because ties are where rank metrics go
 * wrong.
 *
 * Where the test compares results exactly (chosen thresholds, isotonic
 * blocks) the weights and values are dyadic rationals (multiples of 1/4):
 * their sums are exact in any order, so the fast code and the reference
 * must agree bit for bit and a tie means the same thing to both. Other
 * comparisons use explicit relative tolerances.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "ch/alloc.h"
#include "ch/json.h"
#include "ch/metrics.h"
#include "../harness.h"

/* ---- helpers -------------------------------------------------------------- */

/* splitmix64: small, seedable, good enough for test data. */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unif(rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n) (modulo bias is irrelevant here). */
static size_t rng_below(rng *r, size_t n)
{
    return (size_t)(rng_next(r) % n);
}

/* Standard normal by Box-Muller. */
static double rng_normal(rng *r)
{
    double u = 1.0 - rng_unif(r);
    double v = rng_unif(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static double sigmoid(double z)
{
    return 1.0 / (1.0 + exp(-z));
}

static double *alloc_doubles(size_t n)
{
    double *v = ch_calloc(n + 1, sizeof *v);
    ASSERT(v != NULL);
    return v;
}

/* A random data set: labels with P(y = 1) rising with the score, scores on
 * a grid of 'levels' values in [0, 1] (many ties), dyadic weights in
 * [0.25, 2] when 'weighted'. */
typedef struct dataset {
    size_t n;
    double *y;
    double *p;
    double *w; /* NULL when unweighted */
} dataset;

static dataset make_data(size_t n, size_t levels, int weighted, uint64_t seed)
{
    dataset d = {n, alloc_doubles(n), alloc_doubles(n), weighted ? alloc_doubles(n) : NULL};
    rng r = {seed};
    for (size_t i = 0; i < n; i++) {
        d.p[i] = (double)rng_below(&r, levels) / (double)(levels - 1);
        d.y[i] = rng_unif(&r) < 0.2 + 0.6 * d.p[i] ? 1.0 : 0.0;
        if (weighted)
            d.w[i] = (double)(1 + rng_below(&r, 8)) / 4.0;
    }
    /* Make sure both classes are present. */
    d.y[0] = 1.0;
    d.y[n - 1] = 0.0;
    return d;
}

static void free_data(dataset *d)
{
    ch_free(d->y);
    ch_free(d->p);
    ch_free(d->w);
}

static double wt(const double *w, size_t i)
{
    return w != NULL ? w[i] : 1.0;
}

/* ---- slow references ------------------------------------------------------ */

/* ROC AUC by counting every positive/negative pair; ties count 1/2. */
static double ref_roc_auc(const double *y, const double *p, const double *w, size_t n)
{
    double num = 0.0;
    double den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] != 1.0)
            continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j] != 0.0)
                continue;
            double pw = wt(w, i) * wt(w, j);
            den += pw;
            if (p[i] > p[j])
                num += pw;
            else if (p[i] == p[j])
                num += 0.5 * pw;
        }
    }
    return num / den;
}

/* The largest score below 'above' (or the largest of all when 'above' is
 * +inf); -inf when there is none. Lets references walk distinct scores
 * from the top without sorting. */
static double next_score_below(const double *p, size_t n, double above)
{
    double best = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (p[i] < above && p[i] > best)
            best = p[i];
    return best;
}

/* Weighted true and false positives at threshold 't' (p >= t). */
static void counts_at(const double *y, const double *p, const double *w, size_t n, double t,
                      double *tp, double *fp)
{
    *tp = *fp = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < t)
            continue;
        if (y[i] == 1.0)
            *tp += wt(w, i);
        else
            *fp += wt(w, i);
    }
}

/* Average precision from its definition: sum over distinct thresholds,
 * from the highest down, of (recall - previous recall) x precision. */
static double ref_pr_auc(const double *y, const double *p, const double *w, size_t n)
{
    double pos = 0.0;
    double prev_recall = 0.0;
    double ap = 0.0;
    for (size_t i = 0; i < n; i++)
        pos += y[i] * wt(w, i);
    for (double t = next_score_below(p, n, INFINITY); t > -INFINITY;
         t = next_score_below(p, n, t)) {
        double tp;
        double fp;
        counts_at(y, p, w, n, t, &tp, &fp);
        ap += (tp / pos - prev_recall) * (tp / (tp + fp));
        prev_recall = tp / pos;
    }
    return ap;
}

/* Best F1 over every distinct score as threshold; ties go to the lowest. */
static void ref_f1(const double *y, const double *p, const double *w, size_t n, double *t_out,
                   double *f1_out)
{
    double pos = 0.0;
    double best = -1.0;
    double best_t = 0.0;
    for (size_t i = 0; i < n; i++)
        pos += y[i] * wt(w, i);
    for (double t = next_score_below(p, n, INFINITY); t > -INFINITY;
         t = next_score_below(p, n, t)) {
        double tp;
        double fp;
        double f;
        counts_at(y, p, w, n, t, &tp, &fp);
        f = 2.0 * tp / (2.0 * tp + fp + (pos - tp));
        if (f > best || (f == best && t < best_t)) {
            best = f;
            best_t = t;
        }
    }
    *t_out = best_t;
    *f1_out = best;
}

/* Retained value of targeting p >= t, summed in row order. */
static double value_at(const double *y, const double *p, const double *rev, size_t n,
                       const ch_value_opts *o, double t)
{
    double v = 0.0;
    for (size_t i = 0; i < n; i++)
        if (p[i] >= t)
            v += y[i] * o->success_rate * rev[i] * o->horizon_months - o->offer_cost;
    return v;
}

/* Best value over every distinct score; ties go to the highest threshold;
 * nothing positive means nextafter(1, 2) and 0. */
static void ref_value(const double *y, const double *p, const double *rev, size_t n,
                      const ch_value_opts *o, double *t_out, double *v_out)
{
    double best = 0.0;
    double best_t = nextafter(1.0, 2.0);
    for (double t = next_score_below(p, n, INFINITY); t > -INFINITY;
         t = next_score_below(p, n, t)) {
        double v = value_at(y, p, rev, n, o, t);
        if (v > best || (v == best && v > 0.0 && t > best_t)) {
            best = v;
            best_t = t;
        }
    }
    *t_out = best_t;
    *v_out = best;
}

/* Row indexes ordered by score descending, ties by index (insertion
 * sort: slow and obviously right). Caller frees. */
static size_t *ref_order_desc(const double *p, size_t n)
{
    size_t *o = ch_malloc_array(n + 1, sizeof *o);
    ASSERT(o != NULL);
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && p[o[j - 1]] < p[i]) {
            o[j] = o[j - 1];
            j--;
        }
        o[j] = i;
    }
    return o;
}

/* Deciles from the definition: rank r belongs to the decile k with
 * floor(k n / 10) <= r < floor((k + 1) n / 10). */
static ch_deciles ref_deciles(const double *y, const double *p, const double *w, size_t n)
{
    ch_deciles d;
    double dw[10] = {0};
    double dp[10] = {0};
    double tot = 0.0;
    double pos = 0.0;
    double cum = 0.0;
    size_t *o = ref_order_desc(p, n);
    memset(&d, 0, sizeof d);
    for (size_t r = 0; r < n; r++) {
        size_t k = 0;
        while (!(r >= k * n / 10 && r < (k + 1) * n / 10))
            k++;
        dw[k] += wt(w, o[r]);
        dp[k] += wt(w, o[r]) * y[o[r]];
        tot += wt(w, o[r]);
        pos += wt(w, o[r]) * y[o[r]];
    }
    for (size_t k = 0; k < 10; k++) {
        cum += dp[k];
        d.rate[k] = dw[k] > 0 ? dp[k] / dw[k] : 0.0;
        d.lift[k] = d.rate[k] / (pos / tot);
        d.gain[k] = cum / pos;
    }
    ch_free(o);
    return d;
}

/* A pooled block of the reference isotonic fit. */
typedef struct ref_block {
    double sw, swy, swm; /* weight, weighted label and margin sums */
    double lo, hi;       /* margin range */
} ref_block;

/* Isotonic regression by the textbook procedure: sort by margin, pool
 * equal margins, then repeatedly merge the first adjacent pair whose lower
 * block has the higher mean until there is none. O(n^2). Returns the
 * number of blocks; 'bx'/'by' get each block's weighted mean margin and
 * rate, 'one' whether the block holds a single distinct margin, and
 * 'blk' each row's block (so by[blk[i]] is row i's fitted value). */
static size_t ref_isotonic(const double *y, const double *m, const double *w, size_t n, double *bx,
                           double *by, int *one, size_t *blk)
{
    ref_block *b = ch_malloc_array(n + 1, sizeof *b);
    size_t *o = ch_malloc_array(n + 1, sizeof *o);
    size_t *blk_of = ch_malloc_array(n + 1, sizeof *blk_of); /* sorted position -> block */
    size_t nb = 0;
    int merged = 1;
    ASSERT(b != NULL && o != NULL && blk_of != NULL);
    /* Insertion sort by margin ascending, ties in row order. */
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && m[o[j - 1]] > m[i]) {
            o[j] = o[j - 1];
            j--;
        }
        o[j] = i;
    }
    for (size_t r = 0; r < n; r++) {
        size_t i = o[r];
        if (r == 0 || m[i] != m[o[r - 1]])
            b[nb++] = (ref_block){0, 0, 0, m[i], m[i]};
        b[nb - 1].sw += wt(w, i);
        b[nb - 1].swy += wt(w, i) * y[i];
        b[nb - 1].swm += wt(w, i) * m[i];
        blk_of[r] = nb - 1;
    }
    while (merged) {
        merged = 0;
        for (size_t k = 0; k + 1 < nb; k++) {
            if (b[k].swy / b[k].sw > b[k + 1].swy / b[k + 1].sw) {
                b[k].sw += b[k + 1].sw;
                b[k].swy += b[k + 1].swy;
                b[k].swm += b[k + 1].swm;
                b[k].hi = b[k + 1].hi;
                memmove(&b[k + 1], &b[k + 2], (nb - k - 2) * sizeof *b);
                nb--;
                for (size_t r = 0; r < n; r++)
                    if (blk_of[r] > k)
                        blk_of[r]--;
                merged = 1;
                break;
            }
        }
    }
    for (size_t k = 0; k < nb; k++) {
        bx[k] = b[k].swm / b[k].sw;
        by[k] = b[k].swy / b[k].sw;
        one[k] = b[k].lo == b[k].hi;
    }
    for (size_t r = 0; r < n; r++)
        blk[o[r]] = blk_of[r];
    ch_free(blk_of);
    ch_free(o);
    ch_free(b);
    return nb;
}

/* Serializes 'c' and parses it back; the caller frees the document. */
static ch_json *calib_json(const ch_calibrator *c)
{
    ch_buf b;
    ch_json *doc = NULL;
    ch_buf_init(&b, 1 << 24);
    ASSERT_OK(ch_calibrator_to_json(c, &b));
    ASSERT_OK(ch_json_parse(b.data, b.len, &doc, NULL));
    ch_buf_reset(&b);
    return doc;
}

/* Parses 'text' and loads a calibrator from it. */
static ch_err calib_from_text(const char *text, ch_calibrator **out, ch_error *err)
{
    ch_json *doc = NULL;
    ch_err rc = ch_json_parse(text, strlen(text), &doc, err);
    if (rc != CH_OK)
        return rc;
    rc = ch_calibrator_from_json(doc, out, err);
    ch_json_free(doc);
    return rc;
}

/* Loads a calibrator back from its own JSON. */
static ch_calibrator *calib_round_trip(const ch_calibrator *c)
{
    ch_json *doc = calib_json(c);
    ch_calibrator *back = NULL;
    ASSERT_OK(ch_calibrator_from_json(doc, &back, NULL));
    ch_json_free(doc);
    return back;
}

/* ---- ROC AUC -------------------------------------------------------------- */

TEST(roc_auc_by_hand)
{
    const double y[] = {0, 0, 1, 1};
    const double p[] = {0.1, 0.4, 0.35, 0.8};
    const double tied[] = {0.3, 0.3, 0.3, 0.3};
    const double rev[] = {0.8, 0.35, 0.4, 0.1};
    const double margins[] = {-2.0, 1.5, 0.25, 7.0};
    const double w[] = {1, 3, 1, 1};
    double auc;

    ASSERT_OK(ch_metric_roc_auc(y, p, NULL, 4, &auc, NULL));
    ASSERT_NEAR(auc, 0.75, 1e-15);
    ASSERT_OK(ch_metric_roc_auc(y, tied, NULL, 4, &auc, NULL));
    ASSERT_NEAR(auc, 0.5, 0.0);
    ASSERT_OK(ch_metric_roc_auc(y, rev, NULL, 4, &auc, NULL));
    ASSERT_NEAR(auc, 0.25, 1e-15);
    /* Rank-based: margins are accepted and give the same answer. */
    ASSERT_OK(ch_metric_roc_auc(y, margins, NULL, 4, &auc, NULL));
    ASSERT_NEAR(auc, 0.75, 1e-15);
    /* Weight 3 on the negative at 0.4 (beats the positive at 0.35):
     * pairs 1x1 + 3x0 + 1x1 + 3x1 = 5 of 8. */
    ASSERT_OK(ch_metric_roc_auc(y, p, w, 4, &auc, NULL));
    ASSERT_NEAR(auc, 5.0 / 8.0, 1e-15);
}

TEST(roc_auc_matches_pair_count)
{
    static const size_t sizes[] = {2, 3, 17, 200, 1500};
    static const size_t levels[] = {2, 5, 21, 1000};
    uint64_t seed = 1;
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        for (size_t b = 0; b < sizeof levels / sizeof levels[0]; b++) {
            for (int weighted = 0; weighted < 2; weighted++) {
                dataset d = make_data(sizes[a], levels[b], weighted, seed++);
                double auc;
                double ref;
                ASSERT_OK(ch_metric_roc_auc(d.y, d.p, d.w, d.n, &auc, NULL));
                ref = ref_roc_auc(d.y, d.p, d.w, d.n);
                if (!(fabs(auc - ref) <= 1e-12 * ref))
                    FAIL("n=%zu levels=%zu weighted=%d: %.17g vs reference %.17g", sizes[a],
                         levels[b], weighted, auc, ref);
                free_data(&d);
            }
        }
    }
    /* Non-dyadic weights too. */
    {
        dataset d = make_data(700, 13, 0, 99);
        double *w = alloc_doubles(d.n);
        rng r = {7};
        double auc;
        double ref;
        for (size_t i = 0; i < d.n; i++)
            w[i] = 0.01 + 3.0 * rng_unif(&r);
        ASSERT_OK(ch_metric_roc_auc(d.y, d.p, w, d.n, &auc, NULL));
        ref = ref_roc_auc(d.y, d.p, w, d.n);
        ASSERT_NEAR(auc, ref, 1e-12 * ref);
        ch_free(w);
        free_data(&d);
    }
}

TEST(roc_auc_undefined_and_invalid)
{
    const double y1[] = {1, 1, 1};
    const double y0[] = {0, 0, 0};
    const double p[] = {0.1, 0.5, 0.9};
    const double y[] = {0, 1, 0, 2};
    const double q[] = {0.1, 0.5, 0.9, 0.2};
    const double qnan[] = {0.1, 0.5, NAN, 0.2};
    const double ybad[] = {0, 1, 0, 1};
    const double wzero[] = {1, 1, 0, 1};
    const double wneg[] = {1, -1, 1, 1};
    const double winf[] = {1, 1, 1, INFINITY};
    ch_error e;
    double auc = 42.0;

    ASSERT_ERR(ch_metric_roc_auc(y1, p, NULL, 3, &auc, &e), CH_EDATA);
    ASSERT_CONTAINS(e.msg, "negative");
    ASSERT_ERR(ch_metric_roc_auc(y0, p, NULL, 3, &auc, &e), CH_EDATA);
    ASSERT_CONTAINS(e.msg, "positive");
    ASSERT_ERR(ch_metric_roc_auc(y0, p, NULL, 0, &auc, &e), CH_EDATA);
    ASSERT_ERR(ch_metric_roc_auc(y, q, NULL, 4, &auc, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 3");
    ASSERT_ERR(ch_metric_roc_auc(ybad, qnan, NULL, 4, &auc, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 2");
    ASSERT_ERR(ch_metric_roc_auc(ybad, q, wzero, 4, &auc, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 2");
    ASSERT_ERR(ch_metric_roc_auc(ybad, q, wneg, 4, &auc, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 1");
    ASSERT_ERR(ch_metric_roc_auc(ybad, q, winf, 4, &auc, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 3");
    ASSERT_ERR(ch_metric_roc_auc(ybad, q, NULL, 4, &auc, NULL), CH_OK); /* NULL err is fine */
    ASSERT_NEAR(auc, 0.5, 1e-15);
    /* '*out' is untouched on failure. */
    auc = 42.0;
    ASSERT_ERR(ch_metric_roc_auc(y1, p, NULL, 3, &auc, NULL), CH_EDATA);
    ASSERT_NEAR(auc, 42.0, 0.0);
}

/* ---- PR AUC --------------------------------------------------------------- */

TEST(pr_auc_by_hand_and_vs_definition)
{
    const double y[] = {0, 0, 1, 1};
    const double p[] = {0.1, 0.4, 0.35, 0.8};
    const double tied[] = {0.5, 0.5, 0.5, 0.5};
    const double y1[] = {1, 1, 1};
    const double y0[] = {0, 0, 0};
    const double q[] = {0.2, 0.3, 0.2};
    double ap;
    uint64_t seed = 100;

    /* Thresholds 0.8 (R 1/2, P 1), 0.4 (no recall step), 0.35 (R 1, P 2/3). */
    ASSERT_OK(ch_metric_pr_auc(y, p, NULL, 4, &ap, NULL));
    ASSERT_NEAR(ap, 0.5 + 0.5 * 2.0 / 3.0, 1e-15);
    /* One step to recall 1 at precision 1/2: ties move together. */
    ASSERT_OK(ch_metric_pr_auc(y, tied, NULL, 4, &ap, NULL));
    ASSERT_NEAR(ap, 0.5, 1e-15);
    ASSERT_OK(ch_metric_pr_auc(y1, q, NULL, 3, &ap, NULL));
    ASSERT_NEAR(ap, 1.0, 0.0);
    ASSERT_ERR(ch_metric_pr_auc(y0, q, NULL, 3, &ap, NULL), CH_EDATA);
    ASSERT_ERR(ch_metric_pr_auc(y0, q, NULL, 0, &ap, NULL), CH_EDATA);

    for (size_t n = 2; n < 900; n = n * 3 + 1) {
        for (int weighted = 0; weighted < 2; weighted++) {
            dataset d = make_data(n, 1 + n % 17 + 1, weighted, seed++);
            double ref;
            ASSERT_OK(ch_metric_pr_auc(d.y, d.p, d.w, d.n, &ap, NULL));
            ref = ref_pr_auc(d.y, d.p, d.w, d.n);
            if (!(fabs(ap - ref) <= 1e-12 * ref))
                FAIL("n=%zu weighted=%d: %.17g vs reference %.17g", n, weighted, ap, ref);
            free_data(&d);
        }
    }
}

/* ---- log loss, Brier, confusion ------------------------------------------- */

TEST(log_loss_and_brier_by_hand)
{
    const double y[] = {1, 0, 1, 0};
    const double p[] = {0.9, 0.2, 0.6, 0.0};
    const double w[] = {1, 2, 1, 4};
    const double sure_wrong_y[] = {1};
    const double sure_wrong_p[] = {0.0};
    const double bad_p[] = {0.9, 0.2, 1.5, 0.0};
    const double nan_p[] = {0.9, NAN, 0.6, 0.0};
    double ll;
    double br;
    double expect;
    ch_error e;

    expect = (-log(0.9) - log(0.8) - log(0.6) - log1p(-1e-15)) / 4.0;
    ASSERT_OK(ch_metric_log_loss(y, p, NULL, 4, &ll, NULL));
    ASSERT_NEAR(ll, expect, 1e-15);
    expect = (-log(0.9) - 2.0 * log(0.8) - log(0.6) - 4.0 * log1p(-1e-15)) / 8.0;
    ASSERT_OK(ch_metric_log_loss(y, p, w, 4, &ll, NULL));
    ASSERT_NEAR(ll, expect, 1e-15);
    /* Clipping: a certain wrong answer costs -log(1e-15), not infinity. */
    ASSERT_OK(ch_metric_log_loss(sure_wrong_y, sure_wrong_p, NULL, 1, &ll, NULL));
    ASSERT_NEAR(ll, -log(1e-15), 1e-12);

    ASSERT_OK(ch_metric_brier(y, p, NULL, 4, &br, NULL));
    ASSERT_NEAR(br, (0.01 + 0.04 + 0.16 + 0.0) / 4.0, 1e-15);
    ASSERT_OK(ch_metric_brier(y, p, w, 4, &br, NULL));
    ASSERT_NEAR(br, (0.01 + 2 * 0.04 + 0.16 + 0.0) / 8.0, 1e-15);

    ASSERT_ERR(ch_metric_log_loss(y, bad_p, NULL, 4, &ll, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 2");
    ASSERT_ERR(ch_metric_brier(y, bad_p, NULL, 4, &br, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 2");
    ASSERT_ERR(ch_metric_log_loss(y, nan_p, NULL, 4, &ll, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 1");
    ASSERT_ERR(ch_metric_brier(y, p, NULL, 0, &br, &e), CH_EDATA);
    ASSERT_ERR(ch_metric_log_loss(y, p, NULL, 0, &ll, &e), CH_EDATA);
}

TEST(confusion_counts)
{
    const double y[] = {1, 1, 0, 0, 1};
    const double p[] = {0.9, 0.4, 0.6, 0.1, 0.5};
    const double w[] = {2, 1, 0.5, 1, 1};
    const double y0[] = {0, 0};
    const double p0[] = {0.2, 0.7};
    ch_confusion c;

    ASSERT_OK(ch_metric_confusion(y, p, NULL, 5, 0.5, &c, NULL));
    ASSERT_NEAR(c.tp, 2, 0);
    ASSERT_NEAR(c.fp, 1, 0);
    ASSERT_NEAR(c.tn, 1, 0);
    ASSERT_NEAR(c.fn, 1, 0);
    ASSERT_NEAR(c.accuracy, 0.6, 1e-15);
    ASSERT_NEAR(c.precision, 2.0 / 3.0, 1e-15);
    ASSERT_NEAR(c.recall, 2.0 / 3.0, 1e-15);
    ASSERT_NEAR(c.f1, 2.0 / 3.0, 1e-15);

    ASSERT_OK(ch_metric_confusion(y, p, w, 5, 0.5, &c, NULL));
    ASSERT_NEAR(c.tp, 3, 0);
    ASSERT_NEAR(c.fp, 0.5, 0);
    ASSERT_NEAR(c.tn, 1, 0);
    ASSERT_NEAR(c.fn, 1, 0);
    ASSERT_NEAR(c.accuracy, 4.0 / 5.5, 1e-15);
    ASSERT_NEAR(c.precision, 3.0 / 3.5, 1e-15);
    ASSERT_NEAR(c.recall, 0.75, 1e-15);
    ASSERT_NEAR(c.f1, 6.0 / 7.5, 1e-15);

    /* Nothing predicted positive: precision, recall, F1 undefined -> 0. */
    ASSERT_OK(ch_metric_confusion(y, p, NULL, 5, 0.95, &c, NULL));
    ASSERT_NEAR(c.tp + c.fp, 0, 0);
    ASSERT_NEAR(c.precision, 0, 0);
    ASSERT_NEAR(c.recall, 0, 0);
    ASSERT_NEAR(c.f1, 0, 0);
    ASSERT_NEAR(c.accuracy, 0.4, 1e-15);
    /* Threshold equal to a score counts it as positive. */
    ASSERT_OK(ch_metric_confusion(y, p, NULL, 5, 0.9, &c, NULL));
    ASSERT_NEAR(c.tp, 1, 0);
    /* No positives at all: recall undefined -> 0. */
    ASSERT_OK(ch_metric_confusion(y0, p0, NULL, 2, 0.5, &c, NULL));
    ASSERT_NEAR(c.fp, 1, 0);
    ASSERT_NEAR(c.recall, 0, 0);
    ASSERT_NEAR(c.f1, 0, 0);

    ASSERT_ERR(ch_metric_confusion(y, p, NULL, 5, NAN, &c, NULL), CH_EINVAL);
    ASSERT_ERR(ch_metric_confusion(y, p, NULL, 0, 0.5, &c, NULL), CH_EDATA);
}

/* ---- thresholds ----------------------------------------------------------- */

TEST(f1_threshold_by_hand)
{
    const double y[] = {1, 0, 0, 1};
    const double p[] = {0.9, 0.8, 0.7, 0.6};
    const double y0[] = {0, 0};
    double t;
    double f1;

    /* F1 is 2/3 at both 0.9 and 0.6: the lower threshold wins. */
    ASSERT_OK(ch_threshold_f1(y, p, NULL, 4, &t, &f1, NULL));
    ASSERT_NEAR(t, 0.6, 0);
    ASSERT_NEAR(f1, 2.0 / 3.0, 1e-15);
    ASSERT_ERR(ch_threshold_f1(y0, p, NULL, 2, &t, &f1, NULL), CH_EDATA);
    ASSERT_ERR(ch_threshold_f1(y0, p, NULL, 0, &t, &f1, NULL), CH_EDATA);
}

TEST(f1_threshold_matches_brute_force)
{
    uint64_t seed = 500;
    for (size_t n = 1; n < 2000; n = n * 2 + 3) {
        for (int weighted = 0; weighted < 2; weighted++) {
            static const size_t levels[] = {2, 7, 50};
            for (size_t l = 0; l < 3; l++) {
                dataset d = make_data(n + 1, levels[l], weighted, seed++);
                double t;
                double f1;
                double rt;
                double rf1;
                ch_confusion c;
                ASSERT_OK(ch_threshold_f1(d.y, d.p, d.w, d.n, &t, &f1, NULL));
                ref_f1(d.y, d.p, d.w, d.n, &rt, &rf1);
                if (t != rt || f1 != rf1)
                    FAIL("n=%zu weighted=%d levels=%zu: t=%.17g f1=%.17g, reference t=%.17g "
                         "f1=%.17g",
                         d.n, weighted, levels[l], t, f1, rt, rf1);
                /* The threshold classifies exactly as evaluated. */
                ASSERT_OK(ch_metric_confusion(d.y, d.p, d.w, d.n, t, &c, NULL));
                ASSERT_NEAR(c.f1, f1, 1e-15);
                free_data(&d);
            }
        }
    }
}

TEST(value_threshold_by_hand)
{
    const double y[] = {1, 0, 1, 0};
    const double p[] = {0.9, 0.8, 0.3, 0.1};
    const double rev[] = {100, 50, 80, 20};
    const double y0[] = {0, 0, 0, 0};
    const double rev_nan[] = {100, NAN, 80, 20};
    const double p_bad[] = {0.9, 0.8, -0.3, 0.1};
    ch_value_opts o = {12.0, 100.0, 0.5};
    ch_value_opts bad;
    ch_error e;
    double t;
    double v;

    /* Per row: 500, -100, 380, -100; running totals 500, 400, 780, 680. */
    ASSERT_OK(ch_threshold_value(y, p, rev, 4, &o, &t, &v, NULL));
    ASSERT_NEAR(t, 0.3, 0);
    ASSERT_NEAR(v, 780, 0);
    /* Nothing pays off: no one is targeted. */
    ASSERT_OK(ch_threshold_value(y0, p, rev, 4, &o, &t, &v, NULL));
    ASSERT(t > 1.0);
    ASSERT(t == nextafter(1.0, 2.0));
    ASSERT_NEAR(v, 0, 0);
    /* A break-even offer does not pay off either. */
    o.offer_cost = 600.0;
    ASSERT_OK(ch_threshold_value(y, p, rev, 1, &o, &t, &v, NULL));
    ASSERT(t == nextafter(1.0, 2.0));
    ASSERT_NEAR(v, 0, 0);
    o.offer_cost = 100.0;

    ASSERT_ERR(ch_threshold_value(y, p, rev_nan, 4, &o, &t, &v, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 1");
    ASSERT_ERR(ch_threshold_value(y, p_bad, rev, 4, &o, &t, &v, &e), CH_EINVAL);
    ASSERT_CONTAINS(e.msg, "row 2");
    ASSERT_ERR(ch_threshold_value(y, p, NULL, 4, &o, &t, &v, &e), CH_EINVAL);
    ASSERT_ERR(ch_threshold_value(y, p, rev, 4, NULL, &t, &v, &e), CH_EINVAL);
    bad = o;
    bad.success_rate = 1.5;
    ASSERT_ERR(ch_threshold_value(y, p, rev, 4, &bad, &t, &v, &e), CH_EINVAL);
    bad = o;
    bad.offer_cost = -1;
    ASSERT_ERR(ch_threshold_value(y, p, rev, 4, &bad, &t, &v, &e), CH_EINVAL);
    bad = o;
    bad.horizon_months = NAN;
    ASSERT_ERR(ch_threshold_value(y, p, rev, 4, &bad, &t, &v, &e), CH_EINVAL);
    ASSERT_ERR(ch_threshold_value(y, p, rev, 0, &o, &t, &v, &e), CH_EDATA);
}

TEST(value_threshold_matches_brute_force)
{
    uint64_t seed = 900;
    ch_value_opts o = {12.0, 30.0, 0.25};
    for (size_t n = 1; n < 1500; n = n * 2 + 1) {
        static const size_t levels[] = {3, 11, 101};
        for (size_t l = 0; l < 3; l++) {
            dataset d = make_data(n + 1, levels[l], 0, seed);
            double *rev = alloc_doubles(d.n);
            rng r = {seed++};
            double t;
            double v;
            double rt;
            double rv;
            /* Multiples of 1/4: every value sum is exact. */
            for (size_t i = 0; i < d.n; i++)
                rev[i] = (double)rng_below(&r, 400) / 4.0;
            ASSERT_OK(ch_threshold_value(d.y, d.p, rev, d.n, &o, &t, &v, NULL));
            ref_value(d.y, d.p, rev, d.n, &o, &rt, &rv);
            if (t != rt || v != rv)
                FAIL("n=%zu levels=%zu: t=%.17g v=%.17g, reference t=%.17g v=%.17g", d.n, levels[l],
                     t, v, rt, rv);
            /* Non-dyadic revenue: same value up to rounding. */
            for (size_t i = 0; i < d.n; i++)
                rev[i] = 20.0 + 100.0 * rng_unif(&r);
            ASSERT_OK(ch_threshold_value(d.y, d.p, rev, d.n, &o, &t, &v, NULL));
            ref_value(d.y, d.p, rev, d.n, &o, &rt, &rv);
            ASSERT_NEAR(v, rv, 1e-9 * fmax(1.0, fabs(rv)));
            if (t <= 1.0)
                ASSERT_NEAR(value_at(d.y, d.p, rev, d.n, &o, t), v, 1e-9 * fmax(1.0, fabs(v)));
            ch_free(rev);
            free_data(&d);
        }
    }
}

/* ---- reliability and deciles ---------------------------------------------- */

TEST(reliability_by_hand)
{
    const double y[] = {0, 1, 1, 1};
    const double p[] = {0.1, 0.2, 0.8, 1.0};
    const double w[] = {1, 1, 3, 1};
    ch_reliability r;

    ASSERT_OK(ch_metric_reliability(y, p, NULL, 4, 2, &r, NULL));
    ASSERT_INT_EQ(r.n_bins, 2);
    ASSERT_NEAR(r.count[0], 2, 0);
    ASSERT_NEAR(r.count[1], 2, 0); /* p == 1.0 is in the last bin */
    ASSERT_NEAR(r.mean_pred[0], 0.15, 1e-15);
    ASSERT_NEAR(r.rate[0], 0.5, 1e-15);
    ASSERT_NEAR(r.mean_pred[1], 0.9, 1e-15);
    ASSERT_NEAR(r.rate[1], 1.0, 1e-15);
    ASSERT_NEAR(r.ece, 0.5 * 0.35 + 0.5 * 0.1, 1e-15);
    for (size_t k = 2; k < CH_CALIB_BINS_MAX; k++)
        ASSERT(r.count[k] == 0 && r.mean_pred[k] == 0 && r.rate[k] == 0);

    /* Weighted: bin 1 holds 0.8 x3 and 1.0 x1: mean 0.85, rate 1. */
    ASSERT_OK(ch_metric_reliability(y, p, w, 4, 2, &r, NULL));
    ASSERT_NEAR(r.count[1], 4, 0);
    ASSERT_NEAR(r.mean_pred[1], 0.85, 1e-15);
    ASSERT_NEAR(r.ece, (2.0 / 6.0) * 0.35 + (4.0 / 6.0) * 0.15, 1e-15);

    /* Ten bins: empty bins report 0. */
    ASSERT_OK(ch_metric_reliability(y, p, NULL, 4, 10, &r, NULL));
    ASSERT_NEAR(r.count[1], 1, 0);
    ASSERT_NEAR(r.count[2], 1, 0);
    ASSERT_NEAR(r.count[8], 1, 0);
    ASSERT_NEAR(r.count[9], 1, 0);
    ASSERT_NEAR(r.count[5], 0, 0);
    ASSERT_NEAR(r.rate[5], 0, 0);

    ASSERT_ERR(ch_metric_reliability(y, p, NULL, 4, 0, &r, NULL), CH_EINVAL);
    ASSERT_ERR(ch_metric_reliability(y, p, NULL, 4, CH_CALIB_BINS_MAX + 1, &r, NULL), CH_EINVAL);
    ASSERT_OK(ch_metric_reliability(y, p, NULL, 4, CH_CALIB_BINS_MAX, &r, NULL));
    ASSERT_NEAR(r.count[CH_CALIB_BINS_MAX - 1], 1, 0);
    ASSERT_ERR(ch_metric_reliability(y, p, NULL, 0, 10, &r, NULL), CH_EDATA);
}

TEST(reliability_calibrated_vs_miscalibrated)
{
    size_t n = 200000;
    double *y = alloc_doubles(n);
    double *p = alloc_doubles(n);
    double *y_bad = alloc_doubles(n);
    rng r = {42};
    ch_reliability rel;
    double total = 0.0;

    for (size_t i = 0; i < n; i++) {
        double u = rng_unif(&r);
        p[i] = rng_unif(&r);
        y[i] = u < p[i] ? 1.0 : 0.0;
        /* True rate p^3: the scores are far too high in the middle. */
        y_bad[i] = u < p[i] * p[i] * p[i] ? 1.0 : 0.0;
    }
    ASSERT_OK(ch_metric_reliability(y, p, NULL, n, 10, &rel, NULL));
    if (!(rel.ece < 0.01))
        FAIL("calibrated sample has ECE %g", rel.ece);
    for (size_t k = 0; k < 10; k++) {
        total += rel.count[k];
        ASSERT_NEAR(rel.mean_pred[k], (double)k / 10 + 0.05, 0.01);
    }
    ASSERT_NEAR(total, (double)n, 0);
    ASSERT_OK(ch_metric_reliability(y_bad, p, NULL, n, 10, &rel, NULL));
    /* E|p - p^3| = 1/4 for uniform p. */
    if (!(rel.ece > 0.2))
        FAIL("miscalibrated sample has ECE %g", rel.ece);
    ch_free(y);
    ch_free(p);
    ch_free(y_bad);
}

TEST(deciles_by_hand)
{
    double y[20];
    double p[20];
    const double tied[10] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    const double y1[10] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const double y5[5] = {1, 0, 1, 0, 0};
    const double p5[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
    const double y0[3] = {0, 0, 0};
    ch_deciles d;

    /* 20 distinct scores; positives are the top 4 and the bottom 2. */
    for (size_t i = 0; i < 20; i++) {
        p[i] = (double)i / 20.0;
        y[i] = (i >= 16 || i < 2) ? 1.0 : 0.0;
    }
    ASSERT_OK(ch_metric_deciles(y, p, NULL, 20, &d, NULL));
    ASSERT_NEAR(d.rate[0], 1.0, 0);
    ASSERT_NEAR(d.rate[1], 1.0, 0);
    ASSERT_NEAR(d.rate[2], 0.0, 0);
    ASSERT_NEAR(d.rate[9], 1.0, 0);
    ASSERT_NEAR(d.lift[0], 1.0 / 0.3, 1e-15);
    ASSERT_NEAR(d.gain[0], 2.0 / 6.0, 1e-15);
    ASSERT_NEAR(d.gain[1], 4.0 / 6.0, 1e-15);
    ASSERT_NEAR(d.gain[8], 4.0 / 6.0, 1e-15);
    ASSERT_NEAR(d.gain[9], 1.0, 0);

    /* All tied: the cut is by row index, so row 0 alone is decile 0. */
    ASSERT_OK(ch_metric_deciles(y1, tied, NULL, 10, &d, NULL));
    ASSERT_NEAR(d.rate[0], 1.0, 0);
    ASSERT_NEAR(d.lift[0], 10.0, 1e-15);
    ASSERT_NEAR(d.gain[0], 1.0, 0);
    ASSERT_NEAR(d.rate[1], 0.0, 0);

    /* Five rows: deciles 0, 2, 4, 6, 8 are empty (floor(k * 5 / 10)). */
    ASSERT_OK(ch_metric_deciles(y5, p5, NULL, 5, &d, NULL));
    ASSERT_NEAR(d.rate[0], 0.0, 0);
    ASSERT_NEAR(d.gain[0], 0.0, 0);
    ASSERT_NEAR(d.rate[1], 0.0, 0); /* p 0.5, y 0 */
    ASSERT_NEAR(d.rate[5], 1.0, 0); /* p 0.3, y 1 */
    ASSERT_NEAR(d.lift[5], 2.5, 1e-15);
    ASSERT_NEAR(d.gain[5], 0.5, 0);
    ASSERT_NEAR(d.gain[6], 0.5, 0);
    ASSERT_NEAR(d.gain[9], 1.0, 0);

    ASSERT_ERR(ch_metric_deciles(y0, p5, NULL, 3, &d, NULL), CH_EDATA);
    ASSERT_ERR(ch_metric_deciles(y0, p5, NULL, 0, &d, NULL), CH_EDATA);
}

TEST(deciles_sum_checks_and_reference)
{
    static const size_t sizes[] = {1, 9, 10, 11, 99, 1003, 4321};
    uint64_t seed = 700;
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        for (int weighted = 0; weighted < 2; weighted++) {
            dataset d = make_data(sizes[a] + 1, 1 + sizes[a] % 30 + 1, weighted, seed++);
            ch_deciles got;
            ch_deciles ref;
            double mean_lift = 0.0;
            double tot = 0.0;
            size_t *o = ref_order_desc(d.p, d.n);
            ASSERT_OK(ch_metric_deciles(d.y, d.p, d.w, d.n, &got, NULL));
            ref = ref_deciles(d.y, d.p, d.w, d.n);
            ASSERT(got.gain[9] == 1.0);
            for (size_t k = 0; k < 10; k++) {
                double dw = 0.0;
                ASSERT_NEAR(got.rate[k], ref.rate[k], 1e-12);
                ASSERT_NEAR(got.lift[k], ref.lift[k], 1e-12 * fmax(1.0, ref.lift[k]));
                ASSERT_NEAR(got.gain[k], ref.gain[k], 1e-12);
                if (k > 0)
                    ASSERT(got.gain[k] >= got.gain[k - 1]);
                for (size_t r = k * d.n / 10; r < (k + 1) * d.n / 10; r++)
                    dw += wt(d.w, o[r]);
                mean_lift += dw * got.lift[k];
                tot += dw;
            }
            ASSERT_NEAR(mean_lift / tot, 1.0, 1e-12);
            ch_free(o);
            free_data(&d);
        }
    }
}

/* ---- calibration ---------------------------------------------------------- */

TEST(calib_method_names)
{
    static const ch_calib_method all[] = {CH_CALIB_NONE, CH_CALIB_PLATT, CH_CALIB_ISOTONIC};
    ch_calib_method m = CH_CALIB_PLATT;
    for (size_t i = 0; i < 3; i++) {
        ch_calib_method back;
        ASSERT_INT_EQ(ch_calib_method_parse(ch_calib_method_name(all[i]), &back), 0);
        ASSERT_INT_EQ(back, all[i]);
    }
    ASSERT_STR_EQ(ch_calib_method_name(CH_CALIB_NONE), "none");
    ASSERT_STR_EQ(ch_calib_method_name(CH_CALIB_PLATT), "platt");
    ASSERT_STR_EQ(ch_calib_method_name(CH_CALIB_ISOTONIC), "isotonic");
    ASSERT_STR_EQ(ch_calib_method_name((ch_calib_method)99), "unknown");
    ASSERT_INT_EQ(ch_calib_method_parse("Platt", &m), -1);
    ASSERT_INT_EQ(ch_calib_method_parse("", &m), -1);
    ASSERT_INT_EQ(ch_calib_method_parse(NULL, &m), -1);
    ASSERT_INT_EQ(m, CH_CALIB_PLATT);
}

TEST(calib_none)
{
    const double y[] = {0, 1};
    const double m[] = {-1, 2};
    ch_calibrator *c = NULL;
    ch_calibrator *back;

    ASSERT_OK(ch_calibrator_fit(CH_CALIB_NONE, y, m, NULL, 2, &c, NULL));
    ASSERT_INT_EQ(ch_calibrator_method(c), CH_CALIB_NONE);
    ASSERT_NEAR(ch_calibrator_apply(c, 0.0), 0.5, 0);
    ASSERT_NEAR(ch_calibrator_apply(c, 2.0), sigmoid(2.0), 1e-15);
    ASSERT_NEAR(ch_calibrator_apply(c, -800.0), 0.0, 1e-300);
    ASSERT_NEAR(ch_calibrator_apply(c, 800.0), 1.0, 0);
    ASSERT(isnan(ch_calibrator_apply(c, NAN)));
    back = calib_round_trip(c);
    ASSERT_INT_EQ(ch_calibrator_method(back), CH_CALIB_NONE);
    ch_calibrator_free(back);
    ch_calibrator_free(c);
    /* NONE needs no data. */
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_NONE, NULL, NULL, NULL, 0, &c, NULL));
    ch_calibrator_free(c);
    /* A NULL calibrator acts as NONE. */
    ASSERT_NEAR(ch_calibrator_apply(NULL, 1.0), sigmoid(1.0), 1e-15);
    ASSERT_INT_EQ(ch_calibrator_method(NULL), CH_CALIB_NONE);
    ch_calibrator_free(NULL);
}

/* 'n' margins from N(0, 2) and labels drawn from sigmoid(a m + b). */
static void make_platt_data(size_t n, double a, double b, uint64_t seed, double *y, double *m)
{
    rng r = {seed};
    for (size_t i = 0; i < n; i++) {
        m[i] = 2.0 * rng_normal(&r);
        y[i] = rng_unif(&r) < sigmoid(a * m[i] + b) ? 1.0 : 0.0;
    }
}

/* Platt's objective in the test's own words: weighted log loss of
 * sigmoid(a m + b) against targets (N+ + 1) / (N+ + 2) and 1 / (N- + 2). */
static double platt_objective(const double *y, const double *m, size_t n, double a, double b)
{
    double pos = 0.0;
    double f = 0.0;
    for (size_t i = 0; i < n; i++)
        pos += y[i];
    for (size_t i = 0; i < n; i++) {
        double t = y[i] == 1.0 ? (pos + 1.0) / (pos + 2.0) : 1.0 / ((double)n - pos + 2.0);
        double q = sigmoid(a * m[i] + b);
        f -= t * log(q) + (1.0 - t) * log(1.0 - q);
    }
    return f;
}

TEST(platt_recovers_known_sigmoid)
{
    static const double truth[][2] = {{1.5, -0.7}, {0.5, 0.3}, {1.0, 0.0}, {-0.8, 0.5}};
    size_t n = 20000;
    double *y = alloc_doubles(n);
    double *m = alloc_doubles(n);
    for (size_t k = 0; k < sizeof truth / sizeof truth[0]; k++) {
        ch_calibrator *c = NULL;
        ch_json *doc;
        double a;
        double b;
        make_platt_data(n, truth[k][0], truth[k][1], 2024 + k, y, m);
        ASSERT_OK(ch_calibrator_fit(CH_CALIB_PLATT, y, m, NULL, n, &c, NULL));
        ASSERT_INT_EQ(ch_calibrator_method(c), CH_CALIB_PLATT);
        doc = calib_json(c);
        ASSERT_INT_EQ(ch_json_num(ch_json_get(doc, "a"), &a), 0);
        ASSERT_INT_EQ(ch_json_num(ch_json_get(doc, "b"), &b), 0);
        if (!(fabs(a - truth[k][0]) < 0.05 && fabs(b - truth[k][1]) < 0.05))
            FAIL("truth a=%g b=%g, fitted a=%.6f b=%.6f", truth[k][0], truth[k][1], a, b);
        ASSERT_NEAR(ch_calibrator_apply(c, 0.7), sigmoid(a * 0.7 + b), 1e-15);
        /* The fit is the optimum, not just near the truth: every nearby
         * point has a higher objective. */
        {
            double f = platt_objective(y, m, n, a, b);
            static const double step[][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}, {1, -1}, {-1, 1}};
            for (size_t s = 0; s < 6; s++) {
                double g = platt_objective(y, m, n, a + 1e-4 * step[s][0], b + 1e-4 * step[s][1]);
                if (!(g > f))
                    FAIL("objective %.17g at the fit, %.17g at a step away", f, g);
            }
        }
        ch_json_free(doc);
        ch_calibrator_free(c);
    }
    ch_free(y);
    ch_free(m);
}

TEST(platt_weights_equal_duplicates)
{
    size_t n = 3000;
    size_t n_dup = 0;
    double *y = alloc_doubles(n);
    double *m = alloc_doubles(n);
    double *w = alloc_doubles(n);
    double *yd = alloc_doubles(3 * n);
    double *md = alloc_doubles(3 * n);
    ch_calibrator *cw = NULL;
    ch_calibrator *cd = NULL;
    ch_calibrator *cu = NULL;
    make_platt_data(n, 0.8, 0.4, 77, y, m);
    for (size_t i = 0; i < n; i++) {
        /* Weight 1, 2 or 3, heavier for positives with high margins, so
         * ignoring the weights would move the fit. */
        w[i] = y[i] == 1.0 && m[i] > 0.0 ? 3.0 : (double)(1 + i % 2);
        for (size_t k = 0; k < (size_t)w[i]; k++) {
            yd[n_dup] = y[i];
            md[n_dup] = m[i];
            n_dup++;
        }
    }
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_PLATT, y, m, w, n, &cw, NULL));
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_PLATT, yd, md, NULL, n_dup, &cd, NULL));
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_PLATT, y, m, NULL, n, &cu, NULL));
    for (double x = -6.0; x <= 6.0; x += 0.25)
        ASSERT_NEAR(ch_calibrator_apply(cw, x), ch_calibrator_apply(cd, x), 1e-12);
    ASSERT(fabs(ch_calibrator_apply(cw, 2.0) - ch_calibrator_apply(cu, 2.0)) > 0.01);
    ch_calibrator_free(cw);
    ch_calibrator_free(cd);
    ch_calibrator_free(cu);
    ch_free(y);
    ch_free(m);
    ch_free(w);
    ch_free(yd);
    ch_free(md);
}

TEST(platt_improves_miscalibrated_scores)
{
    size_t n = 20000;
    double *y = alloc_doubles(n);
    double *m = alloc_doubles(n);
    double *p_raw = alloc_doubles(n);
    double *p_cal = alloc_doubles(n);
    ch_calibrator *c = NULL;
    double ll_raw;
    double ll_cal;
    make_platt_data(n, 1.0, 0.0, 31, y, m);
    /* An overconfident, shifted model: margin 3 m + 1. */
    for (size_t i = 0; i < n; i++)
        m[i] = 3.0 * m[i] + 1.0;
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_PLATT, y, m, NULL, n, &c, NULL));
    for (size_t i = 0; i < n; i++) {
        p_raw[i] = sigmoid(m[i]);
        p_cal[i] = ch_calibrator_apply(c, m[i]);
    }
    ASSERT_OK(ch_metric_log_loss(y, p_raw, NULL, n, &ll_raw, NULL));
    ASSERT_OK(ch_metric_log_loss(y, p_cal, NULL, n, &ll_cal, NULL));
    if (!(ll_cal < ll_raw - 0.05))
        FAIL("log loss %g after Platt, %g before", ll_cal, ll_raw);
    ch_calibrator_free(c);
    ch_free(y);
    ch_free(m);
    ch_free(p_raw);
    ch_free(p_cal);
}

TEST(platt_separable_data_stays_finite)
{
    const double y[] = {0, 0, 0, 1, 1, 1};
    const double m[] = {-3, -2, -1, 1, 2, 3};
    ch_calibrator *c = NULL;
    ch_json *doc;
    double a;
    double b;
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_PLATT, y, m, NULL, 6, &c, NULL));
    doc = calib_json(c);
    ASSERT_INT_EQ(ch_json_num(ch_json_get(doc, "a"), &a), 0);
    ASSERT_INT_EQ(ch_json_num(ch_json_get(doc, "b"), &b), 0);
    ASSERT(isfinite(a) && a > 0 && isfinite(b));
    /* Smoothed targets: the most confident probability is near 4/5. */
    ASSERT(ch_calibrator_apply(c, 3.0) < 0.95);
    ASSERT(ch_calibrator_apply(c, 3.0) > ch_calibrator_apply(c, -3.0));
    ch_json_free(doc);
    ch_calibrator_free(c);
}

/* Random margins on a grid (ties) with labels rising with the margin. */
static void make_iso_data(size_t n, size_t levels, uint64_t seed, double *y, double *m, double *w)
{
    rng r = {seed};
    for (size_t i = 0; i < n; i++) {
        m[i] = -3.0 + 6.0 * (double)rng_below(&r, levels) / (double)levels;
        y[i] = rng_unif(&r) < sigmoid(m[i]) ? 1.0 : 0.0;
        if (w != NULL)
            w[i] = (double)(1 + rng_below(&r, 8)) / 4.0;
    }
    y[0] = 1.0;
    y[n - 1] = 0.0;
}

TEST(isotonic_matches_slow_pav)
{
    static const size_t sizes[] = {2, 5, 40, 300, 1200};
    static const size_t levels[] = {3, 20, 100000};
    uint64_t seed = 3000;
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
            for (int weighted = 0; weighted < 2; weighted++) {
                size_t n = sizes[a];
                double *y = alloc_doubles(n);
                double *m = alloc_doubles(n);
                double *w = weighted ? alloc_doubles(n) : NULL;
                double *bx = alloc_doubles(n);
                double *by = alloc_doubles(n);
                int *one = ch_calloc(n + 1, sizeof *one);
                size_t *blk = ch_calloc(n + 1, sizeof *blk);
                double scale = 0.0;
                ch_calibrator *c = NULL;
                ch_json *doc;
                const ch_json *jx;
                const ch_json *jy;
                size_t nb;

                make_iso_data(n, levels[l], seed++, y, m, w);
                ASSERT_OK(ch_calibrator_fit(CH_CALIB_ISOTONIC, y, m, w, n, &c, NULL));
                ASSERT_INT_EQ(ch_calibrator_method(c), CH_CALIB_ISOTONIC);
                ASSERT(one != NULL && blk != NULL);
                nb = ref_isotonic(y, m, w, n, bx, by, one, blk);
                doc = calib_json(c);
                jx = ch_json_get(doc, "x");
                jy = ch_json_get(doc, "y");
                if (ch_json_len(jx) != nb || ch_json_len(jy) != nb)
                    FAIL("n=%zu levels=%zu weighted=%d: %zu blocks, reference %zu", n, levels[l],
                         weighted, ch_json_len(jx), nb);
                for (size_t i = 0; i < n; i++)
                    scale = fmax(scale, fabs(m[i]));
                for (size_t k = 0; k < nb; k++) {
                    double x;
                    double v;
                    ASSERT_INT_EQ(ch_json_num(ch_json_at(jx, k), &x), 0);
                    ASSERT_INT_EQ(ch_json_num(ch_json_at(jy, k), &v), 0);
                    /* Dyadic weights and 0/1 labels: block rates are exact. */
                    if (v != by[k])
                        FAIL("block %zu: rate %.17g, reference %.17g", k, v, by[k]);
                    ASSERT_NEAR(x, bx[k], 1e-12 * scale);
                    /* At a block centre apply() is the block's value. */
                    ASSERT(ch_calibrator_apply(c, x) == v);
                }
                /* On a training margin apply() gives the PAV value exactly
                 * when the block is that one margin (its centre); otherwise
                 * it interpolates towards a neighbouring block, so it lies
                 * between the neighbours' values. */
                for (size_t i = 0; i < n; i++) {
                    size_t k = blk[i];
                    double pi = ch_calibrator_apply(c, m[i]);
                    if (one[k] && pi != by[k])
                        FAIL("row %zu (margin %.17g): %.17g, PAV value %.17g", i, m[i], pi, by[k]);
                    ASSERT(pi >= by[k > 0 ? k - 1 : 0]);
                    ASSERT(pi <= by[k + 1 < nb ? k + 1 : k]);
                }
                ch_json_free(doc);
                ch_calibrator_free(c);
                ch_free(y);
                ch_free(m);
                ch_free(w);
                ch_free(bx);
                ch_free(by);
                ch_free(one);
                ch_free(blk);
            }
        }
    }
}

TEST(isotonic_is_monotone_and_round_trips)
{
    size_t n = 5000;
    double *y = alloc_doubles(n);
    double *m = alloc_doubles(n);
    double *w = alloc_doubles(n);
    ch_calibrator *c = NULL;
    ch_calibrator *back;
    double prev = -1.0;

    make_iso_data(n, 100000, 11, y, m, w);
    for (size_t i = 0; i < n; i++)
        w[i] = 0.1 + (double)(i % 7) * 0.3; /* non-dyadic weights */
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_ISOTONIC, y, m, w, n, &c, NULL));
    back = calib_round_trip(c);
    ASSERT_INT_EQ(ch_calibrator_method(back), CH_CALIB_ISOTONIC);
    for (double x = -12.0; x <= 12.0; x += 0.0007) {
        double v = ch_calibrator_apply(c, x);
        double vb = ch_calibrator_apply(back, x);
        if (memcmp(&v, &vb, sizeof v) != 0)
            FAIL("at %.17g: %.17g, after JSON %.17g", x, v, vb);
        if (v < prev)
            FAIL("not monotone at %.17g: %.17g after %.17g", x, v, prev);
        ASSERT(v >= 0.0 && v <= 1.0);
        prev = v;
    }
    for (size_t i = 0; i < n; i++) {
        double v = ch_calibrator_apply(c, m[i]);
        double vb = ch_calibrator_apply(back, m[i]);
        ASSERT(memcmp(&v, &vb, sizeof v) == 0);
    }
    /* Flat beyond the ends; NaN in, NaN out. */
    ASSERT(ch_calibrator_apply(c, -1e300) == ch_calibrator_apply(c, -50.0));
    ASSERT(ch_calibrator_apply(c, INFINITY) == ch_calibrator_apply(c, 50.0));
    ASSERT(isnan(ch_calibrator_apply(c, NAN)));
    ch_calibrator_free(back);
    ch_calibrator_free(c);
    ch_free(y);
    ch_free(m);
    ch_free(w);
}

TEST(isotonic_by_hand)
{
    /* Margins 0..5, labels 0 1 0 1 1 0: PAV gives blocks {0}, {1,2},
     * {3,4,5} with rates 0, 1/2, 2/3 and centres 0, 1.5, 4. */
    const double y[] = {0, 1, 0, 1, 1, 0};
    const double m[] = {0, 1, 2, 3, 4, 5};
    ch_calibrator *c = NULL;
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_ISOTONIC, y, m, NULL, 6, &c, NULL));
    ASSERT_NEAR(ch_calibrator_apply(c, -1.0), 0.0, 0);
    ASSERT_NEAR(ch_calibrator_apply(c, 0.0), 0.0, 0);
    ASSERT_NEAR(ch_calibrator_apply(c, 0.75), 0.25, 1e-15);
    ASSERT_NEAR(ch_calibrator_apply(c, 1.5), 0.5, 0);
    ASSERT_NEAR(ch_calibrator_apply(c, 2.75), 0.5 + (2.0 / 3.0 - 0.5) * 0.5, 1e-15);
    ASSERT_NEAR(ch_calibrator_apply(c, 4.0), 2.0 / 3.0, 1e-15);
    ASSERT_NEAR(ch_calibrator_apply(c, 9.0), 2.0 / 3.0, 1e-15);
    ch_calibrator_free(c);
}

TEST(platt_json_round_trip_is_exact)
{
    ch_calibrator *c = NULL;
    ch_calibrator *back;
    ch_buf b;
    size_t n = 4000;
    double *y = alloc_doubles(n);
    double *m = alloc_doubles(n);

    ASSERT_OK(calib_from_text("{\"method\": \"platt\", \"a\": 1.5, \"b\": -0.25}", &c, NULL));
    ch_buf_init(&b, 1024);
    ASSERT_OK(ch_calibrator_to_json(c, &b));
    ASSERT_STR_EQ(b.data, "{\"method\": \"platt\", \"a\": 1.5, \"b\": -0.25}");
    ch_buf_reset(&b);
    ASSERT_NEAR(ch_calibrator_apply(c, 2.0), sigmoid(2.75), 1e-15);
    ch_calibrator_free(c);

    make_platt_data(n, 0.9, 0.1, 5, y, m);
    ASSERT_OK(ch_calibrator_fit(CH_CALIB_PLATT, y, m, NULL, n, &c, NULL));
    back = calib_round_trip(c);
    for (double x = -20.0; x <= 20.0; x += 0.01) {
        double v = ch_calibrator_apply(c, x);
        double vb = ch_calibrator_apply(back, x);
        ASSERT(memcmp(&v, &vb, sizeof v) == 0);
    }
    ch_calibrator_free(back);
    ch_calibrator_free(c);
    ch_free(y);
    ch_free(m);
}

TEST(calibrator_invalid_input)
{
    const double y[] = {0, 1, 0, 1};
    const double m[] = {0.1, 0.2, 0.3, 0.4};
    const double y1[] = {1, 1, 1, 1};
    const double ybad[] = {0, 1, 0.5, 1};
    const double mnan[] = {0.1, NAN, 0.3, 0.4};
    const double minf[] = {0.1, 0.2, 0.3, -INFINITY};
    const double wbad[] = {1, 1, 0, 1};
    ch_calibrator *c = NULL;
    ch_error e;

    for (int k = CH_CALIB_PLATT; k <= CH_CALIB_ISOTONIC; k++) {
        ch_calib_method meth = (ch_calib_method)k;
        ASSERT_ERR(ch_calibrator_fit(meth, y1, m, NULL, 4, &c, &e), CH_EDATA);
        ASSERT_CONTAINS(e.msg, "both classes");
        ASSERT_ERR(ch_calibrator_fit(meth, y, m, NULL, 0, &c, &e), CH_EDATA);
        ASSERT_ERR(ch_calibrator_fit(meth, ybad, m, NULL, 4, &c, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "row 2");
        ASSERT_ERR(ch_calibrator_fit(meth, y, mnan, NULL, 4, &c, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "row 1");
        ASSERT_ERR(ch_calibrator_fit(meth, y, minf, NULL, 4, &c, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "row 3");
        ASSERT_ERR(ch_calibrator_fit(meth, y, m, wbad, 4, &c, &e), CH_EINVAL);
        ASSERT_CONTAINS(e.msg, "row 2");
        ASSERT(c == NULL);
    }
    ASSERT_ERR(ch_calibrator_fit(CH_CALIB_NONE, ybad, m, NULL, 4, &c, &e), CH_EINVAL);
    ASSERT_ERR(ch_calibrator_fit((ch_calib_method)7, y, m, NULL, 4, &c, &e), CH_EINVAL);
    ASSERT(c == NULL);
}

TEST(calibrator_json_is_strict)
{
    static const char *const bad[] = {
        "[]",
        "null",
        "{}",
        "{\"method\": 1}",
        "{\"method\": \"bogus\"}",
        "{\"method\": \"Platt\", \"a\": 1, \"b\": 0}",
        "{\"method\": \"none\", \"a\": 1}",
        "{\"method\": \"platt\", \"a\": 1}",
        "{\"method\": \"platt\", \"a\": \"1\", \"b\": 0}",
        "{\"method\": \"platt\", \"a\": null, \"b\": 0}",
        "{\"method\": \"platt\", \"a\": 1, \"b\": 0, \"c\": 2}",
        "{\"method\": \"isotonic\"}",
        "{\"method\": \"isotonic\", \"x\": [0, 1]}",
        "{\"method\": \"isotonic\", \"x\": [0, 1], \"y\": [0]}",
        "{\"method\": \"isotonic\", \"x\": [], \"y\": []}",
        "{\"method\": \"isotonic\", \"x\": [1, 0], \"y\": [0, 1]}",
        "{\"method\": \"isotonic\", \"x\": [0, 0], \"y\": [0, 1]}",
        "{\"method\": \"isotonic\", \"x\": [0, 1], \"y\": [1, 0]}",
        "{\"method\": \"isotonic\", \"x\": [0, 1], \"y\": [0, 1.5]}",
        "{\"method\": \"isotonic\", \"x\": [0, 1], \"y\": [-0.5, 1]}",
        "{\"method\": \"isotonic\", \"x\": [0, \"1\"], \"y\": [0, 1]}",
        "{\"method\": \"isotonic\", \"x\": [0, null], \"y\": [0, 1]}",
        "{\"method\": \"isotonic\", \"x\": {\"0\": 1}, \"y\": [0, 1]}",
        "{\"method\": \"isotonic\", \"x\": [0, 1e999], \"y\": [0, 1]}",
    };
    static const char *const good[] = {
        "{\"method\": \"none\"}",
        "{\"method\": \"platt\", \"b\": 0, \"a\": 2}",
        "{\"method\": \"isotonic\", \"x\": [0], \"y\": [0.5]}",
        "{\"method\": \"isotonic\", \"x\": [-1, 0, 2.5], \"y\": [0, 0, 1]}",
    };
    ch_calibrator *c = NULL;
    ch_error e;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ch_err rc = calib_from_text(bad[i], &c, &e);
        if (rc != CH_EFORMAT)
            FAIL("%s: expected %s, got %s", bad[i], ch_strerror(CH_EFORMAT), ch_strerror(rc));
        ASSERT(c == NULL);
    }
    ASSERT_ERR(ch_calibrator_from_json(NULL, &c, &e), CH_EFORMAT);
    ASSERT_CONTAINS(e.msg, "calibration");
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ASSERT_OK(calib_from_text(good[i], &c, &e));
        ch_calibrator_free(c);
        c = NULL;
    }
    ASSERT_OK(calib_from_text(good[3], &c, NULL));
    ASSERT_NEAR(ch_calibrator_apply(c, -0.5), 0.0, 0);
    ASSERT_NEAR(ch_calibrator_apply(c, 1.25), 0.5, 1e-15);
    ASSERT_NEAR(ch_calibrator_apply(c, 3.0), 1.0, 0);
    ch_calibrator_free(c);
}

/* ---- fault injection ------------------------------------------------------ */

/* Runs scenario 'fn' with allocation k failing, for k = 1, 2, ... until it
 * succeeds; every failure must be CH_ENOMEM. Returns the number of
 * failing runs. */
typedef ch_err (*scenario_fn)(const dataset *d);

static long torture(scenario_fn fn, const dataset *d, const char *name)
{
    long k;
    for (k = 1;; k++) {
        ch_err rc;
        ch_alloc_fail_after(k);
        rc = fn(d);
        ch_alloc_fail_after(0);
        if (rc == CH_OK)
            break;
        if (rc != CH_ENOMEM)
            FAIL("%s: allocation %ld failing gave %s", name, k, ch_strerror(rc));
        if (k > 1000)
            FAIL("%s: still failing after %ld allocations", name, k);
    }
    return k - 1;
}

static ch_err sc_roc(const dataset *d)
{
    double v;
    return ch_metric_roc_auc(d->y, d->p, d->w, d->n, &v, NULL);
}

static ch_err sc_pr(const dataset *d)
{
    double v;
    return ch_metric_pr_auc(d->y, d->p, d->w, d->n, &v, NULL);
}

static ch_err sc_deciles(const dataset *d)
{
    ch_deciles v;
    return ch_metric_deciles(d->y, d->p, d->w, d->n, &v, NULL);
}

static ch_err sc_f1(const dataset *d)
{
    double t;
    double f;
    return ch_threshold_f1(d->y, d->p, d->w, d->n, &t, &f, NULL);
}

static ch_err sc_value(const dataset *d)
{
    ch_value_opts o = {12, 10, 0.3};
    double t;
    double v;
    return ch_threshold_value(d->y, d->p, d->p, d->n, &o, &t, &v, NULL);
}

/* Fit and serialize: every allocation along the way. */
static ch_err sc_calib(const dataset *d, ch_calib_method method)
{
    ch_calibrator *c = NULL;
    ch_buf b;
    ch_err rc;
    ch_buf_init(&b, 1 << 24);
    rc = ch_calibrator_fit(method, d->y, d->p, d->w, d->n, &c, NULL);
    if (rc == CH_OK)
        rc = ch_calibrator_to_json(c, &b);
    ch_buf_reset(&b);
    ch_calibrator_free(c);
    return rc;
}

/* The document sc_load() reads. It is parsed outside the failure loop
 * because the JSON parser's own allocations do not go through ch_malloc. */
static const ch_json *load_doc;

static ch_err sc_load(const dataset *d)
{
    ch_calibrator *c = NULL;
    ch_err rc = ch_calibrator_from_json(load_doc, &c, NULL);
    (void)d;
    ch_calibrator_free(c);
    return rc;
}

static ch_err sc_none(const dataset *d)
{
    return sc_calib(d, CH_CALIB_NONE);
}

static ch_err sc_platt(const dataset *d)
{
    return sc_calib(d, CH_CALIB_PLATT);
}

static ch_err sc_isotonic(const dataset *d)
{
    return sc_calib(d, CH_CALIB_ISOTONIC);
}

TEST(out_of_memory_never_crashes_or_leaks)
{
    dataset d = make_data(300, 25, 1, 4242);
    ASSERT(torture(sc_roc, &d, "roc_auc") >= 1);
    ASSERT(torture(sc_pr, &d, "pr_auc") >= 1);
    ASSERT(torture(sc_deciles, &d, "deciles") >= 1);
    ASSERT(torture(sc_f1, &d, "threshold_f1") >= 1);
    ASSERT(torture(sc_value, &d, "threshold_value") >= 1);
    ASSERT(torture(sc_none, &d, "calibrator none") >= 1);
    ASSERT(torture(sc_platt, &d, "calibrator platt") >= 1);
    ASSERT(torture(sc_isotonic, &d, "calibrator isotonic") >= 2);
    {
        static const char *const docs[] = {
            "{\"method\": \"none\"}",
            "{\"method\": \"platt\", \"a\": 1, \"b\": 0}",
            "{\"method\": \"isotonic\", \"x\": [0, 1, 2], \"y\": [0, 0.5, 1]}",
        };
        for (size_t i = 0; i < 3; i++) {
            ch_json *doc = NULL;
            ASSERT_OK(ch_json_parse(docs[i], strlen(docs[i]), &doc, NULL));
            load_doc = doc;
            ASSERT(torture(sc_load, &d, docs[i]) >= 1);
            ch_json_free(doc);
        }
    }
    free_data(&d);
}

TEST_MAIN(T(roc_auc_by_hand), T(roc_auc_matches_pair_count), T(roc_auc_undefined_and_invalid),
          T(pr_auc_by_hand_and_vs_definition), T(log_loss_and_brier_by_hand), T(confusion_counts),
          T(f1_threshold_by_hand), T(f1_threshold_matches_brute_force), T(value_threshold_by_hand),
          T(value_threshold_matches_brute_force), T(reliability_by_hand),
          T(reliability_calibrated_vs_miscalibrated), T(deciles_by_hand),
          T(deciles_sum_checks_and_reference), T(calib_method_names), T(calib_none),
          T(platt_recovers_known_sigmoid), T(platt_weights_equal_duplicates),
          T(platt_improves_miscalibrated_scores), T(platt_separable_data_stays_finite),
          T(isotonic_matches_slow_pav), T(isotonic_is_monotone_and_round_trips),
          T(isotonic_by_hand), T(platt_json_round_trip_is_exact), T(calibrator_invalid_input),
          T(calibrator_json_is_strict), T(out_of_memory_never_crashes_or_leaks))
