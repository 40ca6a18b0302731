/*
 * test_explain.c -- explanations: contributions, reasons and actions.
 *
 * Each test trains a small bundle of one family on simulated Telco-like
 * customers (3 folds, one grid point) and checks the explainer against
 * slow, obviously correct references computed here from the bundle's
 * public parts: the linear formula from the model JSON and training means
 * measured on the training rows, integrated gradients by finite
 * differences, column roll-ups from the feature contributions, and every
 * what-if action scored by transforming a modified record through the
 * bundle. Also: contributions sum to the margin, nothing is allocated
 * while explaining, two threads with their own workspaces agree, and every
 * allocation failure in the constructors returns CH_ENOMEM.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "ch/alloc.h"
#include "ch/bundle.h"
#include "ch/config.h"
#include "ch/explain.h"
#include "ch/ingest.h"
#include "ch/simulate.h"
#include "ch/text.h"
#include "ch/train.h"

#define MAX_COLS 64

/* Completeness tolerance of integrated gradients with two tanh layers
 * (64 evaluations, composite two-point Gauss-Legendre), in log-odds; the
 * other network shapes are integrated exactly. */
#define IG2_TOL 1e-3

typedef struct fx {
    ch_schema *schema;
    ch_frame *frame;
    ch_config *cfg;
    ch_pipeline_spec *spec;
    ch_json *search;
    ch_train_result *r;
    ch_bundle *b;
    ch_explainer *e;
    ch_explain_ws *ws;
    size_t n_cols;
    size_t nf;
} fx;

static const char *sim_csv(unsigned rows, unsigned seed)
{
    static char path[600];
    ch_sim_opts o;
    ch_error err = {0};
    ch_sim_opts_default(&o);
    o.n_rows = rows;
    o.seed = seed;
    snprintf(path, sizeof path, "%s/sim-%u-%u.csv", ch_test_tmpdir(), rows, seed);
    if (access(path, R_OK) != 0)
        ASSERT_OK(ch_sim_write_file(&o, path, NULL, NULL, &err));
    return path;
}

/* Trains 'family' with the search grid 'grid' on 'rows' simulated rows
 * and loads the bundle, an explainer and a workspace. */
static void setup(fx *f, const char *family, const char *grid, unsigned rows)
{
    ch_error err = {0};
    ch_ingest_report *rep = NULL;
    ch_train_opts o;
    const char *text;
    size_t len;
    ch_err rc;

    memset(f, 0, sizeof *f);
    ASSERT_OK(ch_schema_load_file(ch_test_path("config/telco.schema.json"), &f->schema, &err));
    ASSERT_OK(ch_ingest_file(f->schema, sim_csv(rows, 7), NULL, &f->frame, &rep, &err));
    ch_ingest_report_free(rep);
    ASSERT_OK(ch_config_load(ch_test_path("config/churn.json"), &f->cfg, &err));
    ASSERT_OK(ch_pipeline_spec_from_json(ch_config_section(f->cfg, "features"), f->schema, &f->spec,
                                         &err));
    ASSERT_OK(ch_json_parse(grid, strlen(grid), &f->search, &err));
    ch_train_opts_default(&o);
    o.folds = 3;
    o.search = f->search;
    o.revenue_column = "MonthlyCharges";
    o.value.horizon_months = 12;
    o.value.offer_cost = 20;
    o.value.success_rate = 0.3;
    o.families[0] = family;
    o.n_families = 1;
    rc = ch_train_run(f->schema, f->frame, f->spec, &o, "{}", &f->r, &err);
    if (rc != CH_OK)
        FAIL("train: %s: %s", ch_strerror(rc), err.msg);
    text = ch_train_result_bundle(f->r, &len);
    ASSERT_OK(ch_bundle_parse(text, len, f->schema, &f->b, &err));
    ASSERT_OK(ch_explainer_new(f->b, &f->e, &err));
    ASSERT_OK(ch_explain_ws_new(f->e, &f->ws, &err));
    f->n_cols = ch_schema_n_cols(f->schema);
    f->nf = ch_pipeline_n_features(ch_bundle_pipeline(f->b));
    ASSERT(f->n_cols <= MAX_COLS);
}

static void teardown(fx *f)
{
    ch_explain_ws_free(f->ws);
    ch_explainer_free(f->e);
    ch_bundle_free(f->b);
    ch_train_result_free(f->r);
    ch_json_free(f->search);
    ch_pipeline_spec_free(f->spec);
    ch_config_free(f->cfg);
    ch_frame_free(f->frame);
    ch_schema_free(f->schema);
}

static const char LOGREG[] = "{\"logreg\": {\"C\": [1]}}";
static const char MLP1[] = "{\"mlp\": {\"hidden\": [8], \"epochs\": [30]}}";
static const char MLP_RELU[] =
    "{\"mlp\": {\"hidden\": [8], \"activation\": [1], \"epochs\": [30]}}";
static const char MLP2[] = "{\"mlp\": {\"hidden\": [8], \"hidden2\": [4], \"epochs\": [30]}}";
static const char MLP2_RELU[] =
    "{\"mlp\": {\"hidden\": [8], \"hidden2\": [4], \"activation\": [1], \"epochs\": [30]}}";
static const char XGB[] = "{\"xgboost\": {\"max_depth\": [3], \"eta\": [0.2], \"n_rounds\": [60]}}";

/* Row 'i' of the frame as a record. */
static void record(const fx *f, size_t i, ch_value *v)
{
    for (size_t j = 0; j < f->n_cols; j++) {
        memset(&v[j], 0, sizeof v[j]);
        if (ch_frame_col_type(f->frame, j) == CH_COL_NUM) {
            v[j].num = ch_frame_num(f->frame, j)[i];
            v[j].missing = isnan(v[j].num);
        } else if (ch_frame_col_type(f->frame, j) == CH_COL_CAT) {
            int32_t code = ch_frame_codes(f->frame, j)[i];
            v[j].missing = code < 0;
            if (code >= 0) {
                v[j].str = ch_frame_level(f->frame, j, (size_t)code);
                v[j].len = strlen(v[j].str);
            }
        } else {
            v[j].missing = 1;
        }
    }
}

/* The bundle's own margin and calibrated probability for a record. */
static double score(const fx *f, const ch_value *v, double *margin)
{
    double *x = ch_malloc_array(f->nf, sizeof *x);
    double m = NAN;
    ch_error err = {0};
    ASSERT(x != NULL);
    ch_pipeline_transform_record(ch_bundle_pipeline(f->b), v, x, NULL);
    ASSERT_OK(ch_model_predict_margin(ch_bundle_model(f->b), x, 1, f->nf, &m, &err));
    ch_free(x);
    if (margin != NULL)
        *margin = m;
    return ch_calibrator_apply(ch_bundle_calibrator(f->b), m);
}

/* Whether feature 'k' is a missing indicator of an engineered column,
 * whose training share the bundle does not record (baseline 0). */
static int engineered_indicator(const fx *f, size_t k)
{
    const ch_pipeline *p = ch_bundle_pipeline(f->b);
    size_t n = 0;
    const uint32_t *src = ch_pipeline_feature_sources(p, k, &n);
    const char *name = ch_pipeline_feature_name(p, k);
    const char *col;
    if (ch_pipeline_feature_kind(p, k) != CH_FEAT_INDICATOR)
        return 0;
    if (n != 1)
        return 1;
    col = ch_schema_col_ref(f->schema, src[0])->name;
    return strncmp(name, col, strlen(col)) != 0 || name[strlen(col)] != ':';
}

/* The explainer's documented baseline, measured independently: the mean
 * of every model feature over the training rows (all rows but the test
 * rows), 0 for indicators of engineered columns. */
static void baseline(const fx *f, double *mean)
{
    size_t n_test;
    const size_t *test = ch_train_result_test_rows(f->r, &n_test);
    size_t n = ch_frame_n_rows(f->frame);
    size_t *rows = ch_malloc_array(n, sizeof *rows);
    double *x = ch_malloc_array(n, f->nf * sizeof *x);
    size_t n_train = 0;
    ch_error err = {0};
    ASSERT(rows != NULL && x != NULL);
    for (size_t i = 0, t = 0; i < n; i++) {
        if (t < n_test && test[t] == i)
            t++;
        else
            rows[n_train++] = i;
    }
    ASSERT_OK(ch_pipeline_transform_frame(ch_bundle_pipeline(f->b), f->frame, rows, n_train, x,
                                          NULL, &err));
    for (size_t k = 0; k < f->nf; k++) {
        double s = 0;
        for (size_t i = 0; i < n_train; i++)
            s += x[i * f->nf + k];
        mean[k] = engineered_indicator(f, k) ? 0.0 : s / (double)n_train;
    }
    ch_free(x);
    ch_free(rows);
}

static double sum(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* Checks contributions + bias = margin over 'n' rows within 'tol', that
 * the margin is the bundle's (within 'mtol'), and returns the largest
 * residual. */
static double check_completeness(const fx *f, size_t n, double tol, double mtol)
{
    double *phi = ch_malloc_array(f->nf + 1, sizeof *phi);
    ch_value v[MAX_COLS];
    double worst = 0;
    ASSERT(phi != NULL);
    for (size_t i = 0; i < n; i++) {
        double bm;
        double m;
        record(f, i, v);
        m = ch_explain_contributions(f->e, v, phi, f->ws);
        score(f, v, &bm);
        ASSERT_NEAR(m, bm, mtol);
        ASSERT_NEAR(sum(phi, f->nf + 1), m, tol);
        worst = fmax(worst, fabs(sum(phi, f->nf + 1) - m));
    }
    ch_free(phi);
    return worst;
}

/* ---- logreg ---------------------------------------------------------------- */

TEST(logreg_matches_linear_formula)
{
    fx f;
    const ch_json *st;
    double *w;
    double *mean;
    double *phi;
    double b0;
    double bias;
    ch_value v[MAX_COLS];
    int onehot_mean = 0;

    setup(&f, "logreg", LOGREG, 2000);
    st = ch_json_get(ch_bundle_section(f.b, "model"), "state");
    w = ch_malloc_array(f.nf, sizeof *w);
    mean = ch_malloc_array(f.nf, sizeof *mean);
    phi = ch_malloc_array(f.nf + 1, sizeof *phi);
    ASSERT(w != NULL && mean != NULL && phi != NULL);
    ASSERT_INT_EQ(ch_json_len(ch_json_get(st, "w")), f.nf);
    for (size_t k = 0; k < f.nf; k++)
        ASSERT(ch_json_num(ch_json_at(ch_json_get(st, "w"), k), &w[k]) == 0);
    ASSERT(ch_json_num(ch_json_get(st, "b"), &b0) == 0);
    baseline(&f, mean);
    bias = b0;
    for (size_t k = 0; k < f.nf; k++) {
        bias += w[k] * mean[k];
        onehot_mean |= ch_pipeline_feature_kind(ch_bundle_pipeline(f.b), k) == CH_FEAT_ONEHOT &&
                       mean[k] > 0.05;
    }
    ASSERT(onehot_mean); /* the one-hot baseline is the level share, not 0 */
    for (size_t i = 0; i < 100; i++) {
        double *x = ch_malloc_array(f.nf, sizeof *x);
        ASSERT(x != NULL);
        record(&f, i, v);
        ch_pipeline_transform_record(ch_bundle_pipeline(f.b), v, x, NULL);
        ch_explain_contributions(f.e, v, phi, f.ws);
        for (size_t k = 0; k < f.nf; k++)
            ASSERT_NEAR(phi[k], w[k] * (x[k] - mean[k]), 1e-9);
        ASSERT_NEAR(phi[f.nf], bias, 1e-9);
        ch_free(x);
    }
    check_completeness(&f, 200, 1e-9, 0);
    ch_free(phi);
    ch_free(mean);
    ch_free(w);
    teardown(&f);
}

/* Column contributions of the record's features, computed here. */
static void rollup(const fx *f, const double *phi, double *col)
{
    const ch_pipeline *p = ch_bundle_pipeline(f->b);
    for (size_t j = 0; j < f->n_cols; j++)
        col[j] = 0;
    for (size_t k = 0; k < f->nf; k++) {
        size_t n = 0;
        const uint32_t *src = ch_pipeline_feature_sources(p, k, &n);
        for (size_t s = 0; s < n; s++)
            col[src[s]] += phi[k] / (double)n;
    }
}

/* Checks the reasons of 'ex' for record 'v' against the roll-up of the
 * feature contributions. */
static void check_reasons(const fx *f, const ch_value *v, const ch_explanation *ex, size_t k)
{
    double *phi = ch_malloc_array(f->nf + 1, sizeof *phi);
    double col[MAX_COLS];
    int used[MAX_COLS] = {0};
    size_t n_used = 0;
    const ch_calibrator *cal = ch_bundle_calibrator(f->b);
    ASSERT(phi != NULL);
    ch_explain_contributions(f->e, v, phi, f->ws);
    rollup(f, phi, col);
    ASSERT_NEAR(sum(col, f->n_cols), sum(phi, f->nf), 1e-9);
    for (size_t kf = 0; kf < f->nf; kf++) {
        size_t n = 0;
        const uint32_t *src = ch_pipeline_feature_sources(ch_bundle_pipeline(f->b), kf, &n);
        for (size_t s = 0; s < n; s++)
            used[src[s]] = 1;
    }
    for (size_t j = 0; j < f->n_cols; j++)
        n_used += (size_t)used[j];
    ASSERT_INT_EQ(ex->n_reasons, k < n_used ? k : n_used);
    for (size_t r = 0; r < ex->n_reasons; r++) {
        const ch_reason_item *it = &ex->reasons[r];
        const ch_schema_col *c = ch_schema_col_ref(f->schema, (size_t)it->column);
        const char *val = strstr(it->text, " is ");
        size_t j = (size_t)it->column;
        ASSERT(used[j]);
        ASSERT_NEAR(it->logodds, col[j], 1e-12);
        /* Sorted by |contribution|, and nothing left out beats the last. */
        if (r > 0)
            ASSERT(fabs(ex->reasons[r - 1].logodds) >= fabs(it->logodds));
        for (size_t q = 0; q < f->n_cols; q++) {
            int listed = 0;
            for (size_t s = 0; s < ex->n_reasons; s++)
                listed |= ex->reasons[s].column == (int)q;
            if (used[q] && !listed)
                ASSERT(fabs(col[q]) <= fabs(ex->reasons[ex->n_reasons - 1].logodds));
        }
        ASSERT_INT_EQ(it->raises, it->logodds > 0);
        ASSERT_CONTAINS(it->text, it->raises ? ": raises churn risk" : ": lowers churn risk");
        ASSERT_NEAR(it->points,
                    100.0 * (ex->probability - ch_calibrator_apply(cal, ex->margin - it->logodds)),
                    1e-12);
        ASSERT(it->logodds == 0 || (it->points > 0) == (it->logodds > 0));
        /* "<label> is <value>: ..." */
        ASSERT(strncmp(it->text, c->label, strlen(c->label)) == 0);
        ASSERT(val == it->text + strlen(c->label));
        val += 4;
        if (v[j].missing) {
            ASSERT(strncmp(val, "missing:", 8) == 0);
        } else if (c->kind == CH_KIND_BINARY) {
            ASSERT(strncmp(val, v[j].num != 0 ? "yes:" : "no:", v[j].num != 0 ? 4 : 3) == 0);
        } else if (c->kind == CH_KIND_CATEGORICAL) {
            ASSERT(strncmp(val, v[j].str, v[j].len) == 0 && val[v[j].len] == ':');
        } else {
            double d;
            ASSERT(ch_parse_double(val, (size_t)(strchr(val, ':') - val), &d) == 0);
            ASSERT_NEAR(d, v[j].num, 1e-7 * fmax(1.0, fabs(v[j].num)));
        }
    }
    ch_free(phi);
}

TEST(logreg_reasons_roll_up_and_read_well)
{
    fx f;
    ch_value v[MAX_COLS];
    ch_explanation ex;
    int saw_binary = 0;
    setup(&f, "logreg", LOGREG, 2000);
    for (size_t i = 0; i < 40; i++) {
        double m;
        record(&f, i, v);
        ch_explain_record(f.e, v, i % 2 ? CH_EXPLAIN_MAX_K : 3, 0, 0, &ex, f.ws);
        ASSERT_NEAR(ex.probability, score(&f, v, &m), 0);
        ASSERT_NEAR(ex.margin, m, 0);
        ASSERT_INT_EQ(ex.n_actions, 0);
        check_reasons(&f, v, &ex, i % 2 ? CH_EXPLAIN_MAX_K : 3);
        for (size_t r = 0; r < ex.n_reasons; r++)
            saw_binary |=
                ch_schema_col_ref(f.schema, (size_t)ex.reasons[r].column)->kind == CH_KIND_BINARY;
    }
    ASSERT(saw_binary);
    /* One printed, for the log. */
    record(&f, 0, v);
    ch_explain_record(f.e, v, 3, 3, 0, &ex, f.ws);
    for (size_t r = 0; r < ex.n_reasons; r++)
        fprintf(stderr, "    reason: %s (%+.3f, %+.1f pts)\n", ex.reasons[r].text,
                ex.reasons[r].logodds, ex.reasons[r].points);
    for (size_t r = 0; r < ex.n_actions; r++)
        fprintf(stderr, "    action: %s (EV %.1f)\n", ex.actions[r].text,
                ex.actions[r].expected_value);
    teardown(&f);
}

/* ---- actions --------------------------------------------------------------- */

/* One change an action may make, built here from the schema. */
typedef struct change {
    size_t col;
    ch_value v;
    const char *text;
} change;

static size_t changes(const fx *f, change *out, size_t cap)
{
    size_t n = 0;
    for (size_t j = 0; j < f->n_cols; j++) {
        const ch_schema_col *c = ch_schema_col_ref(f->schema, j);
        if (!c->actionable)
            continue;
        for (size_t a = 0; a < c->n_alternatives; a++) {
            const char *t = c->alternatives[a];
            int32_t cat;
            ch_reason why;
            ASSERT(n < cap);
            memset(&out[n], 0, sizeof out[n]);
            out[n].col = j;
            out[n].text = t;
            if (c->kind == CH_KIND_CATEGORICAL) {
                out[n].v.str = t;
                out[n].v.len = strlen(t);
            } else {
                ASSERT(ch_schema_parse_value(c, t, strlen(t), &out[n].v.num, &cat, &why) ==
                       CH_VALUE_OK);
            }
            n++;
        }
    }
    return n;
}

static int same_value(const ch_schema_col *c, const ch_value *a, const ch_value *b)
{
    if (a->missing || b->missing)
        return a->missing && b->missing;
    if (c->kind == CH_KIND_CATEGORICAL)
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    return a->num == b->num;
}

/*
 * Checks the actions of 'ex' for record 'v' against a brute-force search:
 * every single change and pair of changes is scored through the bundle;
 * the reported drops are the best 'k' positive ones (by drop, or by
 * expected value when 'by_value'), and each reported action's probability
 * is the bundle's for the modified record (within 'ptol').
 */
static void check_actions(const fx *f, const ch_value *v, const ch_explanation *ex, size_t k,
                          int by_value, double ptol)
{
    change ch[32];
    size_t n = changes(f, ch, 32);
    double keys[32 * 32];
    size_t n_keys = 0;
    double revenue = v[ch_schema_find(f->schema, "MonthlyCharges")].num;
    double gain = revenue * 12 * 0.3;
    ch_value w[MAX_COLS];

    for (size_t a = 0; a < n; a++) {
        for (size_t b = a; b < n; b++) {
            double p;
            double drop;
            if (same_value(ch_schema_col_ref(f->schema, ch[a].col), &v[ch[a].col], &ch[a].v) ||
                (b != a &&
                 (ch[b].col == ch[a].col ||
                  same_value(ch_schema_col_ref(f->schema, ch[b].col), &v[ch[b].col], &ch[b].v))))
                continue;
            memcpy(w, v, f->n_cols * sizeof *w);
            w[ch[a].col] = ch[a].v;
            w[ch[b].col] = ch[b].v;
            p = score(f, w, NULL);
            drop = ex->probability - p;
            if (drop > 0)
                keys[n_keys++] = by_value ? drop * gain - (b == a ? 20 : 40) : drop;
        }
    }
    /* Largest first. */
    for (size_t i = 1; i < n_keys; i++)
        for (size_t j = i; j > 0 && keys[j - 1] < keys[j]; j--) {
            double t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    ASSERT_INT_EQ(ex->n_actions, n_keys < k ? n_keys : k);
    for (size_t r = 0; r < ex->n_actions; r++) {
        const ch_action_item *it = &ex->actions[r];
        double key = by_value ? it->expected_value : it->drop;
        ASSERT_NEAR(key, keys[r], by_value ? ptol * gain + 1e-9 : ptol);
        memcpy(w, v, f->n_cols * sizeof *w);
        for (int s = 0; s < 2; s++) {
            const ch_schema_col *c;
            size_t a = 0;
            if (it->column[s] < 0)
                continue;
            c = ch_schema_col_ref(f->schema, (size_t)it->column[s]);
            ASSERT(c->actionable); /* only actionable columns change */
            while (a < n &&
                   !(ch[a].col == (size_t)it->column[s] && strcmp(ch[a].text, it->value[s]) == 0))
                a++;
            ASSERT(a < n); /* to one of its alternatives */
            ASSERT(!same_value(c, &v[ch[a].col], &ch[a].v));
            w[ch[a].col] = ch[a].v;
        }
        ASSERT(it->column[0] >= 0 && it->column[1] != it->column[0]);
        ASSERT_NEAR(it->probability, score(f, w, NULL), ptol);
        ASSERT_NEAR(it->drop, ex->probability - it->probability, 1e-15);
        ASSERT(it->drop > 0);
        ASSERT_NEAR(it->expected_value, it->drop * gain - (it->column[1] < 0 ? 20 : 40), 1e-9);
        ASSERT_CONTAINS(it->text, ": churn risk ");
        ASSERT_CONTAINS(it->text, "% -> ");
        if (r > 0)
            ASSERT((by_value ? ex->actions[r - 1].expected_value : ex->actions[r - 1].drop) >= key);
    }
}

static void actions_family(const char *family, const char *grid, double ptol)
{
    fx f;
    ch_value v[MAX_COLS];
    ch_explanation ex;
    size_t n_pairs = 0;
    size_t n_any = 0;
    setup(&f, family, grid, 2000);
    for (size_t i = 0; i < 60; i++) {
        size_t k = i % 3 == 0 ? CH_EXPLAIN_MAX_K : 3;
        record(&f, i, v);
        ch_explain_record(f.e, v, 0, k, 0, &ex, f.ws);
        ASSERT_INT_EQ(ex.n_reasons, 0);
        check_actions(&f, v, &ex, k, 0, ptol);
        for (size_t r = 0; r < ex.n_actions; r++)
            n_pairs += ex.actions[r].column[1] >= 0;
        n_any += ex.n_actions > 0;
        ch_explain_record(f.e, v, 0, k, 1, &ex, f.ws);
        check_actions(&f, v, &ex, k, 1, ptol);
    }
    ASSERT(n_any > 10 && n_pairs > 0);
    teardown(&f);
}

TEST(logreg_actions_match_bundle_scoring)
{
    actions_family("logreg", LOGREG, 1e-15);
}

TEST(action_texts)
{
    fx f;
    ch_value v[MAX_COLS];
    ch_explanation ex;
    long contract = -1;
    int saw_switch = 0;
    int saw_add = 0;
    setup(&f, "logreg", LOGREG, 2000);
    contract = ch_schema_find(f.schema, "Contract");
    for (size_t i = 0; i < 200 && !(saw_switch && saw_add); i++) {
        record(&f, i, v);
        ch_explain_record(f.e, v, 0, CH_EXPLAIN_MAX_K, 0, &ex, f.ws);
        for (size_t r = 0; r < ex.n_actions; r++) {
            const ch_action_item *it = &ex.actions[r];
            char want[200];
            if (it->column[0] == contract && it->column[1] < 0) {
                snprintf(want, sizeof want, "Switch contract to %s: churn risk %ld%% -> %ld%%",
                         it->value[0], lround(100 * ex.probability), lround(100 * it->probability));
                ASSERT_STR_EQ(it->text, want);
                saw_switch = 1;
            }
            if (it->column[0] == ch_schema_find(f.schema, "TechSupport") && it->column[1] < 0) {
                ASSERT(strncmp(it->text, "Add tech support: churn risk ", 29) == 0);
                saw_add = 1;
            }
            if (it->column[1] >= 0)
                ASSERT_CONTAINS(it->text, " and ");
        }
    }
    ASSERT(saw_switch && saw_add);
    teardown(&f);
}

/* ---- mlp ------------------------------------------------------------------- */

/*
 * Reference integrated gradients of the bundle's model from 'x0' to 'x':
 * midpoint rule with 'steps' steps, gradients by central differences of
 * ch_model_predict_margin().
 */
static void reference_ig(const fx *f, const double *x0, const double *x, size_t steps, double *phi)
{
    double *p = ch_malloc_array(f->nf, sizeof *p);
    ch_error err = {0};
    const double h = 1e-5;
    ASSERT(p != NULL);
    for (size_t k = 0; k < f->nf; k++)
        phi[k] = 0;
    for (size_t s = 0; s < steps; s++) {
        double a = ((double)s + 0.5) / (double)steps;
        for (size_t k = 0; k < f->nf; k++)
            p[k] = x0[k] + a * (x[k] - x0[k]);
        for (size_t k = 0; k < f->nf; k++) {
            double up;
            double dn;
            double keep = p[k];
            if (x[k] == x0[k])
                continue;
            p[k] = keep + h;
            ASSERT_OK(ch_model_predict_margin(ch_bundle_model(f->b), p, 1, f->nf, &up, &err));
            p[k] = keep - h;
            ASSERT_OK(ch_model_predict_margin(ch_bundle_model(f->b), p, 1, f->nf, &dn, &err));
            p[k] = keep;
            phi[k] += (x[k] - x0[k]) * (up - dn) / (2 * h) / (double)steps;
        }
    }
    ch_free(p);
}

/* Checks integrated gradients against the reference on a few rows, and
 * the bias against the baseline's margin. Returns the largest deviation. */
static double check_ig(const fx *f, double tol)
{
    double *mean = ch_malloc_array(f->nf, sizeof *mean);
    double *x = ch_malloc_array(f->nf, sizeof *x);
    double *phi = ch_malloc_array(f->nf + 1, sizeof *phi);
    double *ref = ch_malloc_array(f->nf, sizeof *ref);
    ch_value v[MAX_COLS];
    ch_error err = {0};
    double m0;
    double worst = 0;
    ASSERT(mean != NULL && x != NULL && phi != NULL && ref != NULL);
    baseline(f, mean);
    ASSERT_OK(ch_model_predict_margin(ch_bundle_model(f->b), mean, 1, f->nf, &m0, &err));
    for (size_t i = 0; i < 4; i++) {
        record(f, i, v);
        ch_pipeline_transform_record(ch_bundle_pipeline(f->b), v, x, NULL);
        ch_explain_contributions(f->e, v, phi, f->ws);
        ASSERT_NEAR(phi[f->nf], m0, 1e-9);
        reference_ig(f, mean, x, 400, ref);
        for (size_t k = 0; k < f->nf; k++) {
            ASSERT_NEAR(phi[k], ref[k], tol);
            worst = fmax(worst, fabs(phi[k] - ref[k]));
        }
    }
    ch_free(ref);
    ch_free(phi);
    ch_free(x);
    ch_free(mean);
    return worst;
}

TEST(mlp_one_layer_ig_is_exact)
{
    fx f;
    double res;
    double dev;
    setup(&f, "mlp", MLP1, 2000);
    res = check_completeness(&f, 200, 1e-9, 0);
    dev = check_ig(&f, 1e-4);
    fprintf(stderr, "    tanh, one layer: completeness residual %.2g, |IG - reference| %.2g\n", res,
            dev);
    teardown(&f);
}

TEST(mlp_relu_ig_is_exact)
{
    fx f;
    double res;
    setup(&f, "mlp", MLP_RELU, 2000);
    res = check_completeness(&f, 200, 1e-9, 0);
    fprintf(stderr, "    relu, one layer: completeness residual %.2g\n", res);
    teardown(&f);
}

TEST(mlp_two_layers_ig_within_tolerance)
{
    fx f;
    double res;
    double dev;
    setup(&f, "mlp", MLP2, 2000);
    res = check_completeness(&f, 200, IG2_TOL, 0);
    dev = check_ig(&f, IG2_TOL);
    fprintf(stderr, "    tanh, two layers: completeness residual %.2g, |IG - reference| %.2g\n",
            res, dev);
    teardown(&f);
}

/* Two ReLU layers are integrated piece by piece between the units'
 * switching points: exact. The reference (400 midpoint steps) is only
 * first-order accurate across those switches, hence its looser bound. */
TEST(mlp_two_relu_layers_ig_is_exact)
{
    fx f;
    double res;
    double dev;
    setup(&f, "mlp", MLP2_RELU, 2000);
    res = check_completeness(&f, 200, 1e-9, 0);
    dev = check_ig(&f, 1e-2);
    fprintf(stderr, "    relu, two layers: completeness residual %.2g, |IG - reference| %.2g\n",
            res, dev);
    teardown(&f);
}

TEST(mlp_reasons_and_actions)
{
    fx f;
    ch_value v[MAX_COLS];
    ch_explanation ex;
    setup(&f, "mlp", MLP1, 2000);
    for (size_t i = 0; i < 20; i++) {
        record(&f, i, v);
        ch_explain_record(f.e, v, 5, 5, 0, &ex, f.ws);
        check_reasons(&f, v, &ex, 5);
        check_actions(&f, v, &ex, 5, 0, 1e-15);
    }
    teardown(&f);
}

/* ---- xgboost --------------------------------------------------------------- */

TEST(xgboost_shap_sums_to_margin)
{
    fx f;
    double res;
    setup(&f, "xgboost", XGB, 2000);
    /* The compiled forest's margin against XGBoost's (float sums). */
    res = check_completeness(&f, 200, 1e-9, 1e-5);
    fprintf(stderr, "    xgboost: completeness residual %.2g\n", res);
    teardown(&f);
}

TEST(xgboost_reasons_and_actions)
{
    fx f;
    ch_value v[MAX_COLS];
    ch_explanation ex;
    setup(&f, "xgboost", XGB, 2000);
    for (size_t i = 0; i < 20; i++) {
        record(&f, i, v);
        ch_explain_record(f.e, v, 5, 5, i % 2, &ex, f.ws);
        check_reasons(&f, v, &ex, 5);
        check_actions(&f, v, &ex, 5, i % 2, 1e-6);
    }
    teardown(&f);
}

/* ---- robustness ------------------------------------------------------------ */

static void same_explanation(const ch_explanation *a, const ch_explanation *b)
{
    ASSERT(a->probability == b->probability && a->margin == b->margin && a->bias == b->bias);
    ASSERT_INT_EQ(a->n_reasons, b->n_reasons);
    ASSERT_INT_EQ(a->n_actions, b->n_actions);
    for (size_t r = 0; r < a->n_reasons; r++) {
        ASSERT(a->reasons[r].column == b->reasons[r].column);
        ASSERT(a->reasons[r].logodds == b->reasons[r].logodds);
        ASSERT(a->reasons[r].points == b->reasons[r].points);
        ASSERT_STR_EQ(a->reasons[r].text, b->reasons[r].text);
    }
    for (size_t r = 0; r < a->n_actions; r++) {
        ASSERT(a->actions[r].column[0] == b->actions[r].column[0]);
        ASSERT(a->actions[r].column[1] == b->actions[r].column[1]);
        ASSERT(a->actions[r].probability == b->actions[r].probability);
        ASSERT(a->actions[r].expected_value == b->actions[r].expected_value);
        ASSERT_STR_EQ(a->actions[r].text, b->actions[r].text);
    }
}

/* Records ch_explain_records() gets at once below: not a multiple of
 * CH_EXPLAIN_BATCH, so the last batch is partial. */
#define N_BATCHED (2 * CH_EXPLAIN_BATCH + 5)

/*
 * ch_explain_records() against ch_explain_record() one record at a time:
 * the same explanations to the bit (boosted trees go through the batch
 * TreeSHAP kernels), and probabilities equal to batch scoring's
 * (ch_bundle_score_frame), which `churn score --explain` relies on to
 * score each row once.
 */
static void batches_match(const char *family, const char *grid)
{
    fx f;
    ch_value *v;
    ch_explanation *one = ch_malloc(sizeof *one);
    ch_explanation *many = ch_malloc_array(N_BATCHED, sizeof *many);
    double prob[N_BATCHED];
    ch_error err = {0};
    setup(&f, family, grid, 1000);
    v = ch_malloc_array(N_BATCHED * f.n_cols, sizeof *v);
    ASSERT(v != NULL && one != NULL && many != NULL);
    for (int by_value = 0; by_value < 2; by_value++) {
        for (size_t i = 0; i < N_BATCHED; i++)
            record(&f, 100 + i, v + i * f.n_cols);
        ch_explain_records(f.e, v, N_BATCHED, 4, 3, by_value, many, f.ws);
        for (size_t i = 0; i < N_BATCHED; i++) {
            ch_explain_record(f.e, v + i * f.n_cols, 4, 3, by_value, one, f.ws);
            same_explanation(one, &many[i]);
        }
    }
    {
        size_t rows[N_BATCHED];
        for (size_t i = 0; i < N_BATCHED; i++)
            rows[i] = 100 + i;
        ASSERT_OK(ch_bundle_score_frame(f.b, f.frame, rows, N_BATCHED, prob, NULL, &err));
        for (size_t i = 0; i < N_BATCHED; i++)
            if (prob[i] != many[i].probability)
                FAIL("%s: row %zu: explained probability %.17g, scored %.17g", family, i,
                     many[i].probability, prob[i]);
    }
    /* No records: nothing happens. */
    ch_explain_records(f.e, v, 0, 4, 3, 0, many, f.ws);
    ch_free(v);
    ch_free(many);
    ch_free(one);
    teardown(&f);
}

TEST(batches_match_one_by_one_logreg)
{
    batches_match("logreg", LOGREG);
}

TEST(batches_match_one_by_one_mlp)
{
    batches_match("mlp", MLP2);
}

TEST(batches_match_one_by_one_xgboost)
{
    batches_match("xgboost", XGB);
}

static void allocation_free(const char *family, const char *grid)
{
    fx f;
    ch_value v[MAX_COLS];
    ch_explanation *a = ch_malloc(sizeof *a);
    ch_explanation *b = ch_malloc(sizeof *b);
    double *phi;
    setup(&f, family, grid, 1000);
    phi = ch_malloc_array(f.nf + 1, sizeof *phi);
    ASSERT(a != NULL && b != NULL && phi != NULL);
    for (size_t i = 0; i < 10; i++) {
        record(&f, i, v);
        ch_explain_record(f.e, v, CH_EXPLAIN_MAX_K, CH_EXPLAIN_MAX_K, (int)(i % 2), a, f.ws);
        ch_alloc_fail_after(1); /* every allocation from here on fails */
        ch_explain_record(f.e, v, CH_EXPLAIN_MAX_K, CH_EXPLAIN_MAX_K, (int)(i % 2), b, f.ws);
        ch_explain_contributions(f.e, v, phi, f.ws);
        ch_explain_records(f.e, v, 1, CH_EXPLAIN_MAX_K, CH_EXPLAIN_MAX_K, (int)(i % 2), b, f.ws);
        ASSERT_INT_EQ(ch_alloc_count(), 0);
        ch_alloc_fail_after(0);
        same_explanation(a, b);
    }
    ch_free(phi);
    ch_free(b);
    ch_free(a);
    teardown(&f);
}

TEST(explaining_allocates_nothing_logreg)
{
    allocation_free("logreg", LOGREG);
}

TEST(explaining_allocates_nothing_mlp)
{
    allocation_free("mlp", MLP2);
}

TEST(explaining_allocates_nothing_xgboost)
{
    allocation_free("xgboost", XGB);
}

typedef struct job {
    const fx *f;
    const ch_explanation *want; /* 'n' expected explanations */
    size_t n;
    int ok;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    ch_explain_ws *ws = NULL;
    ch_explanation *ex = ch_malloc(sizeof *ex);
    ch_value v[MAX_COLS];
    j->ok = 0;
    if (ex == NULL || ch_explain_ws_new(j->f->e, &ws, NULL) != CH_OK)
        return NULL;
    for (int rep = 0; rep < 5; rep++) {
        for (size_t i = 0; i < j->n; i++) {
            record(j->f, i, v);
            ch_explain_record(j->f->e, v, 8, 8, 0, ex, ws);
            same_explanation(ex, &j->want[i]); /* a failure exits the test process */
        }
    }
    ch_explain_ws_free(ws);
    ch_free(ex);
    j->ok = 1;
    return NULL;
}

static void threads_agree(const char *family, const char *grid)
{
    fx f;
    ch_value v[MAX_COLS];
    const size_t n = 40;
    ch_explanation *want;
    pthread_t t[2];
    job jobs[2];
    setup(&f, family, grid, 1000);
    want = ch_malloc_array(n, sizeof *want);
    ASSERT(want != NULL);
    for (size_t i = 0; i < n; i++) {
        record(&f, i, v);
        ch_explain_record(f.e, v, 8, 8, 0, &want[i], f.ws);
    }
    for (int k = 0; k < 2; k++) {
        jobs[k] = (job){&f, want, n, 0};
        ASSERT(pthread_create(&t[k], NULL, run_job, &jobs[k]) == 0);
    }
    for (int k = 0; k < 2; k++) {
        ASSERT(pthread_join(t[k], NULL) == 0);
        ASSERT(jobs[k].ok);
    }
    ch_free(want);
    teardown(&f);
}

TEST(threads_with_own_workspaces_agree_mlp)
{
    threads_agree("mlp", MLP2);
}

TEST(threads_with_own_workspaces_agree_xgboost)
{
    threads_agree("xgboost", XGB);
}

static void constructors_fail_cleanly(const char *family, const char *grid)
{
    fx f;
    ch_explainer *e = NULL;
    ch_explain_ws *ws = NULL;
    ch_error err = {0};
    long n;
    setup(&f, family, grid, 1000);
    for (n = 1;; n++) {
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_explainer_new(f.b, &e, &err);
        ch_alloc_fail_after(0);
        if (rc == CH_OK)
            break;
        ASSERT_ERR(rc, CH_ENOMEM);
        ASSERT(n < 100000);
    }
    for (n = 1;; n++) {
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_explain_ws_new(e, &ws, &err);
        ch_alloc_fail_after(0);
        if (rc == CH_OK)
            break;
        ASSERT_ERR(rc, CH_ENOMEM);
        ASSERT(n < 1000);
    }
    ch_explain_ws_free(ws);
    ch_explainer_free(e);
    ch_explain_ws_free(NULL);
    ch_explainer_free(NULL);
    teardown(&f);
}

TEST(constructors_fail_cleanly_logreg)
{
    constructors_fail_cleanly("logreg", LOGREG);
}

TEST(constructors_fail_cleanly_mlp)
{
    constructors_fail_cleanly("mlp", MLP2);
}

TEST(constructors_fail_cleanly_xgboost)
{
    constructors_fail_cleanly("xgboost", XGB);
}

/* Missing values, an unseen category and a text value: the sums still
 * hold and the reasons say what the record holds. */
TEST(unusual_records)
{
    fx f;
    ch_value v[MAX_COLS];
    ch_explanation ex;
    double *phi;
    long pay;
    long total;
    setup(&f, "logreg", LOGREG, 1000);
    phi = ch_malloc_array(f.nf + 1, sizeof *phi);
    ASSERT(phi != NULL);
    pay = ch_schema_find(f.schema, "PaymentMethod");
    total = ch_schema_find(f.schema, "TotalCharges");
    record(&f, 3, v);
    v[pay].str = "Digital wallet \xc3\xa9";
    v[pay].len = strlen(v[pay].str);
    v[total].missing = 1;
    ch_explain_record(f.e, v, CH_EXPLAIN_MAX_K, CH_EXPLAIN_MAX_K, 0, &ex, f.ws);
    ASSERT_NEAR(ex.probability, score(&f, v, NULL), 0);
    ASSERT_NEAR(ch_explain_contributions(f.e, v, phi, f.ws), ex.margin, 0);
    ASSERT_NEAR(sum(phi, f.nf + 1), ex.margin, 1e-9);
    check_reasons(&f, v, &ex, CH_EXPLAIN_MAX_K);
    check_actions(&f, v, &ex, CH_EXPLAIN_MAX_K, 0, 1e-15);
    for (size_t r = 0; r < ex.n_reasons; r++) {
        if (ex.reasons[r].column == pay)
            ASSERT_CONTAINS(ex.reasons[r].text, "payment method is Digital wallet \xc3\xa9: ");
        if (ex.reasons[r].column == total)
            ASSERT_CONTAINS(ex.reasons[r].text, "total charges is missing: ");
    }
    /* k = 0 skips both parts. */
    ch_explain_record(f.e, v, 0, 0, 0, &ex, f.ws);
    ASSERT_INT_EQ(ex.n_reasons, 0);
    ASSERT_INT_EQ(ex.n_actions, 0);
    ch_free(phi);
    teardown(&f);
}

TEST_MAIN(T(logreg_matches_linear_formula), T(logreg_reasons_roll_up_and_read_well),
          T(logreg_actions_match_bundle_scoring), T(action_texts), T(mlp_one_layer_ig_is_exact),
          T(mlp_relu_ig_is_exact), T(mlp_two_layers_ig_within_tolerance),
          T(mlp_two_relu_layers_ig_is_exact), T(mlp_reasons_and_actions),
          T(xgboost_shap_sums_to_margin), T(xgboost_reasons_and_actions),
          T(batches_match_one_by_one_logreg), T(batches_match_one_by_one_mlp),
          T(batches_match_one_by_one_xgboost), T(explaining_allocates_nothing_logreg),
          T(explaining_allocates_nothing_mlp), T(explaining_allocates_nothing_xgboost),
          T(threads_with_own_workspaces_agree_mlp), T(threads_with_own_workspaces_agree_xgboost),
          T(constructors_fail_cleanly_logreg), T(constructors_fail_cleanly_mlp),
          T(constructors_fail_cleanly_xgboost), T(unusual_records))
