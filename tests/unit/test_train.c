/*
 * test_train.c -- the training protocol and model bundles.
 *
 * Trains on small simulated data (fast grids, 3 folds) and checks what the
 * protocol promises: determinism, test rows never touching the fit, the
 * bundle round trip and its checks, and the XGBoost part of a bundle
 * scoring the same in Python's xgboost as in process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness.h"
#include "ch/alloc.h"
#include "ch/bundle.h"
#include "ch/config.h"
#include "ch/hash.h"
#include "ch/ingest.h"
#include "ch/simulate.h"
#include "ch/train.h"

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

typedef struct fixture {
    ch_schema *schema;
    ch_frame *frame;
    ch_config *cfg;
    ch_pipeline_spec *spec;
    ch_json *search;
} fixture;

static void setup(fixture *fx, const char *csv)
{
    ch_error err = {0};
    ch_ingest_report *rep = NULL;
    static const char grids[] = "{\"logreg\": {\"C\": [0.1, 1]},"
                                " \"xgboost\": {\"max_depth\": [2], \"eta\": [0.2],"
                                "               \"n_rounds\": [200]},"
                                " \"mlp\": {\"hidden\": [8], \"epochs\": [40]}}";
    memset(fx, 0, sizeof *fx);
    ASSERT_OK(ch_schema_load_file(ch_test_path("config/telco.schema.json"), &fx->schema, &err));
    ASSERT_OK(ch_ingest_file(fx->schema, csv, NULL, &fx->frame, &rep, &err));
    ch_ingest_report_free(rep);
    ASSERT_OK(ch_config_load(ch_test_path("config/churn.json"), &fx->cfg, &err));
    ASSERT_OK(ch_pipeline_spec_from_json(ch_config_section(fx->cfg, "features"), fx->schema,
                                         &fx->spec, &err));
    ASSERT_OK(ch_json_parse(grids, strlen(grids), &fx->search, &err));
}

static void teardown(fixture *fx)
{
    ch_json_free(fx->search);
    ch_pipeline_spec_free(fx->spec);
    ch_config_free(fx->cfg);
    ch_frame_free(fx->frame);
    ch_schema_free(fx->schema);
}

static void opts(const fixture *fx, ch_train_opts *o, const char *family)
{
    ch_train_opts_default(o);
    o->folds = 3;
    o->search = fx->search;
    o->revenue_column = "MonthlyCharges";
    if (family != NULL) {
        o->families[0] = family;
        o->n_families = 1;
    }
}

static ch_train_result *train(const fixture *fx, const ch_train_opts *o)
{
    ch_train_result *r = NULL;
    ch_error err = {0};
    ch_err rc = ch_train_run(fx->schema, fx->frame, fx->spec, o, "{\"test\": true}", &r, &err);
    if (rc != CH_OK)
        FAIL("train: %s: %s", ch_strerror(rc), err.msg);
    return r;
}

/* The bundle text up to its lineage (which carries timestamps). */
static size_t stable_len(const char *bundle)
{
    const char *at = strstr(bundle, ",\n\"lineage\": ");
    ASSERT(at != NULL);
    return (size_t)(at - bundle);
}

static double json_num_at(const char *doc, const char *a, const char *b)
{
    ch_json *j = NULL;
    double v = -1;
    ASSERT_OK(ch_json_parse(doc, strlen(doc), &j, NULL));
    ASSERT(ch_json_num(ch_json_get(ch_json_get(j, a), b), &v) == 0);
    ch_json_free(j);
    return v;
}

TEST(all_families_train_and_report)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r;
    ch_json *j = NULL;
    setup(&fx, sim_csv(3000, 1));
    opts(&fx, &o, NULL);
    r = train(&fx, &o);
    ASSERT_OK(ch_json_parse(ch_train_result_json(r), strlen(ch_train_result_json(r)), &j, NULL));
    ASSERT_INT_EQ(ch_json_len(ch_json_get(j, "families")), 3);
    /* The simulator's documented band: a good model reaches 0.86-0.87; a
     * small sample and tiny grids land near it. */
    double auc = json_num_at(ch_train_result_json(r), "test", "roc_auc");
    ASSERT(auc > 0.80 && auc < 0.95);
    ASSERT_CONTAINS(ch_train_result_report(r), "| family | best parameters |");
    ASSERT_CONTAINS(ch_train_result_report(r), "(winner)");
    /* Metrics for the store: every fold of every grid point, and the test. */
    {
        size_t n = 0;
        int saw_fold = 0;
        int saw_test = 0;
        const char *scope;
        const char *name;
        double v;
        while (ch_train_result_metric(r, n, &scope, &name, &v)) {
            saw_fold |= strcmp(scope, "cv/xgboost/0") == 0 && strcmp(name, "auc_fold3") == 0;
            saw_test |= strcmp(scope, "test") == 0 && strcmp(name, "roc_auc") == 0 && v == auc;
            n++;
        }
        ASSERT(saw_fold && saw_test);
    }
    ch_json_free(j);
    ch_train_result_free(r);
    teardown(&fx);
}

TEST(same_seed_same_bundle)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *a;
    ch_train_result *b;
    size_t la;
    size_t lb;
    setup(&fx, sim_csv(2000, 2));
    opts(&fx, &o, NULL);
    o.threads = 2;
    a = train(&fx, &o);
    o.threads = 1; /* results must not depend on the thread count */
    b = train(&fx, &o);
    const char *ta = ch_train_result_bundle(a, &la);
    const char *tb = ch_train_result_bundle(b, &lb);
    ASSERT_INT_EQ(stable_len(ta), stable_len(tb));
    ASSERT(memcmp(ta, tb, stable_len(ta)) == 0);
    ch_train_result_free(b);
    o.seed = 43; /* another seed, another split and another bundle */
    b = train(&fx, &o);
    tb = ch_train_result_bundle(b, &lb);
    ASSERT(stable_len(tb) != stable_len(ta) || memcmp(ta, tb, stable_len(ta)) != 0);
    ch_train_result_free(a);
    ch_train_result_free(b);
    teardown(&fx);
}

/* Changing the held-out rows' features changes the test metrics but
 * nothing learned: CV results, the fitted pipeline and the model. */
TEST(test_rows_never_touch_the_fit)
{
    fixture fx;
    fixture fy;
    ch_train_opts o;
    ch_train_result *a;
    ch_train_result *b;
    const size_t *test;
    size_t n_test;
    FILE *f;
    char path[600];
    setup(&fx, sim_csv(2000, 3));
    opts(&fx, &o, "logreg");
    a = train(&fx, &o);
    test = ch_train_result_test_rows(a, &n_test);
    ASSERT(n_test == 400);
    /* Rewrite the CSV with MonthlyCharges of every test row doubled. */
    {
        FILE *in = fopen(sim_csv(2000, 3), "r");
        char line[1024];
        size_t row = 0;
        size_t t = 0;
        snprintf(path, sizeof path, "%s/perturbed.csv", ch_test_tmpdir());
        f = fopen(path, "w");
        ASSERT(in != NULL && f != NULL);
        ASSERT(fgets(line, sizeof line, in) != NULL);
        fputs(line, f);
        while (fgets(line, sizeof line, in) != NULL) {
            if (t < n_test && test[t] == row) {
                /* fields 19 and 20: MonthlyCharges, TotalCharges */
                char *p = line;
                for (int k = 0; k < 18; k++)
                    p = strchr(p, ',') + 1;
                char *end = strchr(p, ',');
                double v = strtod(p, NULL);
                fprintf(f, "%.*s%.2f%s", (int)(p - line), line, v * 2 + 1, end);
                t++;
            } else {
                fputs(line, f);
            }
            row++;
        }
        fclose(in);
        fclose(f);
    }
    setup(&fy, path);
    b = train(&fy, &o);
    {
        ch_json *ja = NULL;
        ch_json *jb = NULL;
        ch_buf ba;
        ch_buf bb;
        ch_buf_init(&ba, 1 << 24);
        ch_buf_init(&bb, 1 << 24);
        ASSERT_OK(
            ch_json_parse(ch_train_result_json(a), strlen(ch_train_result_json(a)), &ja, NULL));
        ASSERT_OK(
            ch_json_parse(ch_train_result_json(b), strlen(ch_train_result_json(b)), &jb, NULL));
        ch_json_dump(ch_json_get(ja, "families"), &ba);
        ch_json_dump(ch_json_get(jb, "families"), &bb);
        ASSERT_STR_EQ(ba.data, bb.data); /* identical cross-validation */
        ch_buf_clear(&ba);
        ch_buf_clear(&bb);
        ch_json_dump(ch_json_get(ja, "test"), &ba);
        ch_json_dump(ch_json_get(jb, "test"), &bb);
        ASSERT(strcmp(ba.data, bb.data) != 0); /* but the test rows did change */
        ch_buf_reset(&ba);
        ch_buf_reset(&bb);
        ch_json_free(ja);
        ch_json_free(jb);
    }
    /* The model and pipeline parts of the bundles are identical too. */
    {
        const char *ta = ch_train_result_bundle(a, NULL);
        const char *tb = ch_train_result_bundle(b, NULL);
        const char *ea = strstr(ta, ",\n\"thresholds\"");
        const char *eb = strstr(tb, ",\n\"thresholds\"");
        ASSERT(ea != NULL && eb != NULL && ea - ta == eb - tb);
        ASSERT(memcmp(ta, tb, (size_t)(ea - ta)) == 0);
    }
    ch_train_result_free(a);
    ch_train_result_free(b);
    teardown(&fx);
    teardown(&fy);
}

TEST(bundle_round_trip_and_checks)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r;
    ch_bundle *b = NULL;
    ch_error err = {0};
    size_t len;
    char *copy;
    setup(&fx, sim_csv(2000, 4));
    opts(&fx, &o, "xgboost");
    r = train(&fx, &o);
    const char *text = ch_train_result_bundle(r, &len);
    ASSERT_OK(ch_bundle_parse(text, len, fx.schema, &b, &err));
    /* Scores of the loaded bundle on the test rows give the reported AUC. */
    {
        size_t n;
        const size_t *rows = ch_train_result_test_rows(r, &n);
        double *p = ch_malloc_array(n, sizeof *p);
        double *y = ch_malloc_array(n, sizeof *y);
        const double *lab = ch_frame_num(fx.frame, (size_t)ch_schema_target(fx.schema));
        double auc;
        ASSERT_OK(ch_bundle_score_frame(b, fx.frame, rows, n, p, NULL, &err));
        for (size_t i = 0; i < n; i++)
            y[i] = lab[rows[i]];
        ASSERT_OK(ch_metric_roc_auc(y, p, NULL, n, &auc, &err));
        ASSERT_NEAR(auc, json_num_at(ch_train_result_json(r), "test", "roc_auc"), 1e-12);
        ch_free(p);
        ch_free(y);
    }
    ch_bundle_free(b);
    copy = ch_malloc(len + 1);
    memcpy(copy, text, len + 1);
    /* A changed byte anywhere: checksum mismatch. */
    copy[len / 2] = copy[len / 2] == '1' ? '2' : '1';
    ASSERT_ERR(ch_bundle_parse(copy, len, NULL, &b, &err), CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "checksum mismatch");
    memcpy(copy, text, len + 1);
    /* Truncated. */
    ASSERT_ERR(ch_bundle_parse(copy, len - 10, NULL, &b, &err), CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "no checksum");
    /* Another schema expected. */
    {
        ch_schema *other = NULL;
        static const char s2[] =
            "{\"format\": \"churn-schema\", \"version\": 1, \"columns\": [{\"name\": \"x\", "
            "\"kind\": \"numeric\"}, {\"name\": \"y\", \"kind\": \"target\"}]}";
        ch_json *d = NULL;
        ASSERT_OK(ch_json_parse(s2, strlen(s2), &d, &err));
        ASSERT_OK(ch_schema_from_json(d, &other, &err));
        ASSERT_ERR(ch_bundle_parse(text, len, other, &b, &err), CH_ESCHEMA);
        ASSERT_CONTAINS(err.msg, "another schema");
        ch_schema_free(other);
        ch_json_free(d);
    }
    ch_free(copy);
    ch_train_result_free(r);
    teardown(&fx);
}

/* A bundle of a future major version is refused even with a valid
 * checksum. */
TEST(bundle_unknown_major_version)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r;
    ch_bundle *b = NULL;
    ch_error err = {0};
    size_t len;
    setup(&fx, sim_csv(1500, 5));
    opts(&fx, &o, "logreg");
    r = train(&fx, &o);
    const char *text = ch_train_result_bundle(r, &len);
    const char *v = strstr(text, "\"version\": \"1.0\"");
    ASSERT(v != NULL);
    /* Rewrite as 2.0 and recompute the checksum the writer's way. */
    {
        char *copy = ch_malloc(len + 1);
        char hex[65];
        memcpy(copy, text, len + 1);
        copy[(v - text) + 12] = '2';
        char *ck = strstr(copy, "\"checksum\": \"") + 13;
        memset(ck, '0', 64);
        ASSERT_OK(ch_sha256_hex(copy, len, hex, &err));
        memcpy(ck, hex, 64);
        ASSERT_ERR(ch_bundle_parse(copy, len, NULL, &b, &err), CH_EFORMAT);
        ASSERT_CONTAINS(err.msg, "version 2.0 is not supported");
        ch_free(copy);
    }
    ch_train_result_free(r);
    teardown(&fx);
}

/* The XGBoost part of a bundle, extracted to a file, scores the same in
 * Python's xgboost package as in process. */
TEST(bundle_booster_matches_python_xgboost)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r;
    ch_bundle *b = NULL;
    ch_json *doc = NULL;
    ch_error err = {0};
    ch_buf mb;
    char model_path[600], x_path[600], cmd[2000], line[128];
    size_t len;
    if (system("/usr/bin/python3 -c 'import xgboost, numpy' 2>/dev/null") != 0)
        SKIP("Python's xgboost is not installed (apt install python3-xgboost)");
    setup(&fx, sim_csv(2000, 6));
    opts(&fx, &o, "xgboost");
    r = train(&fx, &o);
    const char *text = ch_train_result_bundle(r, &len);
    ASSERT_OK(ch_bundle_parse(text, len, NULL, &b, &err));
    ASSERT_OK(ch_json_parse(text, len, &doc, &err));
    ch_buf_init(&mb, (size_t)64 << 20);
    ASSERT_OK(ch_json_dump(ch_json_get(ch_json_get(doc, "model"), "state"), &mb));
    snprintf(model_path, sizeof model_path, "%s/booster.json", ch_test_tmpdir());
    snprintf(x_path, sizeof x_path, "%s/x.csv", ch_test_tmpdir());
    FILE *f = fopen(model_path, "w");
    fwrite(mb.data, 1, mb.len, f);
    fclose(f);
    {
        const ch_pipeline *p = ch_bundle_pipeline(b);
        size_t nf = ch_pipeline_n_features(p);
        size_t n = 300;
        double *x = ch_malloc_array(n, nf * sizeof *x);
        double *m = ch_malloc_array(n, sizeof *m);
        size_t *rows = ch_malloc_array(n, sizeof *rows);
        for (size_t i = 0; i < n; i++)
            rows[i] = i;
        ASSERT_OK(ch_pipeline_transform_frame(p, fx.frame, rows, n, x, NULL, &err));
        ch_free(rows);
        ASSERT_OK(ch_model_predict_margin(ch_bundle_model(b), x, n, nf, m, &err));
        f = fopen(x_path, "w");
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < nf; k++)
                fprintf(f, "%.17g%c", x[i * nf + k], k + 1 == nf ? '\n' : ',');
        fclose(f);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s",
                 ch_test_path("tests/interop/xgb_predict.py"), model_path, x_path);
        FILE *py = popen(cmd, "r");
        ASSERT(py != NULL);
        size_t i = 0;
        while (fgets(line, sizeof line, py) != NULL && i < n) {
            ASSERT_NEAR(strtod(line, NULL), m[i], 1e-5);
            i++;
        }
        ASSERT(pclose(py) == 0);
        ASSERT_INT_EQ(i, n);
        ch_free(x);
        ch_free(m);
    }
    ch_buf_reset(&mb);
    ch_json_free(doc);
    ch_bundle_free(b);
    ch_train_result_free(r);
    teardown(&fx);
}

TEST(bad_options)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r = NULL;
    ch_error err = {0};
    setup(&fx, sim_csv(1000, 7));
    opts(&fx, &o, "forest");
    ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &r, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "unknown model family \"forest\"");
    opts(&fx, &o, "logreg");
    o.folds = 1;
    ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &r, &err), CH_EINVAL);
    opts(&fx, &o, "logreg");
    o.threshold_rule = "value";
    o.revenue_column = "gender";
    ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &r, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "not a numeric schema column");
    {
        static const char bad[] = "{\"logreg\": {\"CC\": [1]}}";
        ch_json *s = NULL;
        ASSERT_OK(ch_json_parse(bad, strlen(bad), &s, &err));
        opts(&fx, &o, "logreg");
        o.search = s;
        ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &r, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "CC");
        ch_json_free(s);
    }
    ASSERT(r == NULL);
    teardown(&fx);
}

TEST(value_threshold_is_served_when_asked)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r;
    setup(&fx, sim_csv(2000, 8));
    opts(&fx, &o, "logreg");
    o.threshold_rule = "value";
    o.value.offer_cost = 400; /* expensive offers: target fewer customers */
    r = train(&fx, &o);
    double served = json_num_at(ch_train_result_json(r), "thresholds", "served");
    double value = json_num_at(ch_train_result_json(r), "thresholds", "value");
    double f1 = json_num_at(ch_train_result_json(r), "thresholds", "f1");
    ASSERT(served == value);
    ASSERT(value > f1);
    ch_train_result_free(r);
    teardown(&fx);
}

/* Without a revenue column training still works: only the F1 threshold
 * is computed, and the result and report say so. A value threshold asked
 * for without one is refused. */
TEST(no_revenue_column_f1_only)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r;
    ch_json *j = NULL;
    setup(&fx, sim_csv(1500, 9));
    opts(&fx, &o, "logreg");
    o.revenue_column = "Balance"; /* not in the Telco schema */
    r = train(&fx, &o);
    ASSERT_OK(ch_json_parse(ch_train_result_json(r), strlen(ch_train_result_json(r)), &j, NULL));
    ASSERT(ch_json_typeof(ch_json_get(ch_json_get(j, "thresholds"), "value")) == CH_JSON_NULL);
    ASSERT_INT_EQ(ch_json_len(ch_json_get(j, "notes")), 1);
    ASSERT_CONTAINS(ch_json_str(ch_json_at(ch_json_get(j, "notes"), 0), NULL),
                    "no numeric column \"Balance\"");
    ASSERT_CONTAINS(ch_train_result_report(r), "only the F1 threshold was computed");
    ASSERT_CONTAINS(ch_train_result_report(r), "| expected value | not computed |");
    ASSERT_CONTAINS(ch_train_result_bundle(r, NULL), "\"revenue_column\": null");
    ch_json_free(j);
    ch_train_result_free(r);
    {
        ch_train_result *bad = NULL;
        ch_error err = {0};
        o.threshold_rule = "value";
        ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &bad, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "the value threshold needs a revenue column");
        o.revenue_column = NULL;
        ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &bad, &err), CH_EINVAL);
    }
    teardown(&fx);
}

/* Counts the progress calls of a training run and raises its cancel flag
 * after the first finished cross-validation fit. */
typedef struct cancel_ctx {
    volatile int flag;
    size_t cv_done;    /* cross-validation fits reported */
    size_t cv_total;   /* fits the run planned */
    int refit_started; /* "refitting the winner" was reported */
} cancel_ctx;

static void cancel_after_first_fit(void *ctx, const char *stage, size_t done, size_t total)
{
    cancel_ctx *c = ctx;
    if (strcmp(stage, "cross-validation") == 0) {
        c->cv_done = done;
        c->cv_total = total;
        c->flag = 1;
    } else if (strcmp(stage, "refitting the winner") == 0) {
        c->refit_started = 1;
    }
}

/* A cancel flag raised from the progress callback stops training after
 * the fits already running: CH_ECANCELLED with "cancelled", no result,
 * and nothing leaked (make valgrind runs this too). A flag raised before
 * the start stops it before any fit. */
TEST(cancel_stops_training)
{
    fixture fx;
    ch_train_opts o;
    ch_train_result *r = NULL;
    ch_error err = {0};
    cancel_ctx c;
    setup(&fx, sim_csv(2000, 10));
    opts(&fx, &o, NULL); /* 3 families, 4 grid points, 3 folds: 12 fits */
    memset(&c, 0, sizeof c);
    o.threads = 2;
    o.progress = cancel_after_first_fit;
    o.progress_ctx = &c;
    o.cancel = &c.flag;
    ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &r, &err), CH_ECANCELLED);
    ASSERT_INT_EQ(err.code, CH_ECANCELLED);
    ASSERT_STR_EQ(err.msg, "cancelled");
    ASSERT(r == NULL);
    ASSERT_INT_EQ(c.cv_total, 12);
    /* The first fit raised the flag; only the one running on the other
     * thread may finish after it. */
    ASSERT(c.cv_done >= 1 && c.cv_done <= 2);
    ASSERT(!c.refit_started);
    ASSERT_STR_EQ(ch_strerror(CH_ECANCELLED), "cancelled");

    memset(&c, 0, sizeof c);
    c.flag = 1;
    ASSERT_ERR(ch_train_run(fx.schema, fx.frame, fx.spec, &o, NULL, &r, &err), CH_ECANCELLED);
    ASSERT_INT_EQ(c.cv_done, 0);
    ASSERT(r == NULL);

    /* A flag that stays down changes nothing. */
    memset(&c, 0, sizeof c);
    o.progress = NULL;
    r = train(&fx, &o);
    ch_train_result_free(r);
    teardown(&fx);
}

TEST_MAIN(T(all_families_train_and_report), T(same_seed_same_bundle),
          T(test_rows_never_touch_the_fit), T(bundle_round_trip_and_checks),
          T(bundle_unknown_major_version), T(bundle_booster_matches_python_xgboost), T(bad_options),
          T(value_threshold_is_served_when_asked), T(no_revenue_column_f1_only),
          T(cancel_stops_training))
