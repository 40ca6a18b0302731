/*
 * test_features.c -- the feature pipeline, through include/ch/features.h
 * (and the public headers it needs to get a frame: schema, ingest, frame,
 * config, split).
 *
 * Two schemas are used: config/telco.schema.json with
 * tests/cases/features/telco_small.csv (ten rows whose engineered values
 * are listed in tests/cases/features/README.md), and the tiny
 * tests/cases/features/small.schema.json, for which each test writes its
 * CSV into the test's temporary directory. Expected values are computed
 * by small reference code here (a sort-based median, the obvious
 * arithmetic on the frame's own numbers) and compared bit for bit, since
 * the pipeline promises bit-identical features across its paths.
 *
 * Specs are written with single quotes, which spec()/q() turn into
 * double quotes, so they stay readable in C strings (no value here
 * contains an apostrophe).
 *
 * The last test runs the config's "features" section on the shared Telco
 * CSV and skips, saying so, when that file is absent.
 */
#include <stdint.h>
#include <stdio.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/config.h"
#include "ch/features.h"
#include "ch/frame.h"
#include "ch/ingest.h"
#include "ch/json.h"
#include "ch/schema.h"
#include "ch/split.h"
#include "../harness.h"

#define JSON_MAX  ((size_t)64 << 20) /* cap on a serialized pipeline, bytes */
#define MAX_INPUT 64                 /* schema columns in these tests, at most */

#define SMALL_HEADER "id,color,size,flag,a,b,n,y\n"

/* ------------------------------------------------------------------ */
/* Helpers.                                                            */
/* ------------------------------------------------------------------ */

/* Bitwise equality of two doubles (so -0.0 != 0.0 and NaN == same NaN). */
static int same_bits(double x, double y)
{
    return memcmp(&x, &y, sizeof x) == 0;
}

#define ASSERT_SAME(a, b, ...)                                                                     \
    do {                                                                                           \
        double sa_ = (a), sb_ = (b);                                                               \
        if (!same_bits(sa_, sb_)) {                                                                \
            char ctx_[256];                                                                        \
            snprintf(ctx_, sizeof ctx_, __VA_ARGS__);                                              \
            FAIL("%s: %s == %s: %.17g != %.17g", ctx_, #a, #b, sa_, sb_);                          \
        }                                                                                          \
    } while (0)

/* A ch_malloc'd copy of 's' with every ' turned into ". */
static char *q(const char *s)
{
    char *t = ch_strdup(s);
    ASSERT(t != NULL);
    for (char *p = t; *p != '\0'; p++)
        if (*p == '\'')
            *p = '"';
    return t;
}

static ch_schema *load_schema(const char *rel)
{
    ch_schema *s = NULL;
    ch_error err = {0};
    ch_err rc = ch_schema_load_file(ch_test_path(rel), &s, &err);
    if (rc != CH_OK)
        FAIL("loading %s: %s: %s", rel, ch_strerror(rc), err.msg);
    return s;
}

static ch_schema *telco_schema(void)
{
    return load_schema("config/telco.schema.json");
}

static ch_schema *small_schema(void)
{
    return load_schema("tests/cases/features/small.schema.json");
}

/* Ingests the CSV at 'path'; every row must be accepted. */
static ch_frame *ingest_path(const ch_schema *s, const char *path)
{
    ch_ingest_opts o;
    ch_frame *f = NULL;
    ch_ingest_report *r = NULL;
    ch_error err = {0};
    ch_err rc;

    ch_ingest_opts_default(&o);
    o.max_reject_rate = 1.0;
    rc = ch_ingest_file(s, path, &o, &f, &r, &err);
    if (rc != CH_OK)
        FAIL("ingesting %s: %s: %s", path, ch_strerror(rc), err.msg);
    if (r->rows_rejected != 0)
        FAIL("ingesting %s: %llu rows rejected, the first at line %llu (%s)", path,
             (unsigned long long)r->rows_rejected,
             r->n_examples > 0 ? (unsigned long long)r->examples[0].line : 0ull,
             r->n_examples > 0 ? ch_reason_name(r->examples[0].reason) : "?");
    ch_ingest_report_free(r);
    ASSERT(f != NULL);
    return f;
}

/* Writes 'csv' to a new file in the test's temporary directory and
 * ingests it. */
static ch_frame *ingest_text(const ch_schema *s, const char *csv)
{
    static int counter;
    char path[700];
    FILE *fp;

    snprintf(path, sizeof path, "%s/input%d.csv", ch_test_tmpdir(), counter++);
    fp = fopen(path, "wb");
    ASSERT(fp != NULL);
    ASSERT(fputs(csv, fp) >= 0);
    ASSERT(fclose(fp) == 0);
    return ingest_path(s, path);
}

static ch_frame *telco_small(const ch_schema *s)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", ch_test_path("tests/cases/features/telco_small.csv"));
    return ingest_path(s, path);
}

/* Parses spec text 'json' (single-quoted, see q()) against 's'. */
static ch_pipeline_spec *spec(const ch_schema *s, const char *json)
{
    char *text = q(json);
    ch_json *doc = NULL;
    ch_pipeline_spec *sp = NULL;
    ch_error err = {0};
    ch_err rc = ch_json_parse(text, strlen(text), &doc, &err);

    if (rc != CH_OK)
        FAIL("spec is not JSON: %s\n%s", err.msg, text);
    rc = ch_pipeline_spec_from_json(doc, s, &sp, &err);
    if (rc != CH_OK)
        FAIL("spec rejected: %s: %s\n%s", ch_strerror(rc), err.msg, text);
    ch_json_free(doc);
    ch_free(text);
    ASSERT(sp != NULL);
    return sp;
}

/* Parses spec text 'json' expecting failure; returns the code, with the
 * message in 'err'. */
static ch_err spec_fails(const ch_schema *s, const char *json, ch_error *err)
{
    char *text = q(json);
    ch_json *doc = NULL;
    ch_pipeline_spec *sp = NULL;
    ch_err rc = ch_json_parse(text, strlen(text), &doc, err);

    if (rc != CH_OK)
        FAIL("spec is not JSON: %s\n%s", err->msg, text);
    ch_error_clear(err);
    rc = ch_pipeline_spec_from_json(doc, s, &sp, err);
    if (rc == CH_OK)
        FAIL("spec accepted but should not be:\n%s", text);
    if (sp != NULL)
        FAIL("'*out' was written on failure");
    if (err->code != rc)
        FAIL("err->code %d differs from the returned %d", (int)err->code, (int)rc);
    ch_json_free(doc);
    ch_free(text);
    return rc;
}

static ch_pipeline *fit_rows(const ch_pipeline_spec *sp, const ch_schema *s, const ch_frame *f,
                             const size_t *rows, size_t n)
{
    ch_pipeline *p = NULL;
    ch_error err = {0};
    ch_err rc = ch_pipeline_fit(sp, s, f, rows, n, &p, &err);
    if (rc != CH_OK)
        FAIL("fit: %s: %s", ch_strerror(rc), err.msg);
    ASSERT(p != NULL);
    return p;
}

/* Parses 'json', fits on 'rows' (NULL: all) with standardization 'std'. */
static ch_pipeline *fit_spec(const ch_schema *s, const ch_frame *f, const char *json, int std,
                             const size_t *rows, size_t n)
{
    ch_pipeline_spec *sp = spec(s, json);
    ch_pipeline *p;
    ch_pipeline_spec_set_standardize(sp, std);
    p = fit_rows(sp, s, f, rows, n);
    ch_pipeline_spec_free(sp);
    return p;
}

/* Transforms 'rows' (NULL: all) into a new matrix (free with ch_free). */
static double *transform(const ch_pipeline *p, const ch_frame *f, const size_t *rows, size_t n,
                         ch_transform_stats *st)
{
    size_t n_rows = rows != NULL ? n : ch_frame_n_rows(f);
    size_t nf = ch_pipeline_n_features(p);
    double *out = ch_malloc_array(n_rows * nf + 1, sizeof *out);
    ch_error err = {0};
    ch_err rc;

    ASSERT(out != NULL);
    rc = ch_pipeline_transform_frame(p, f, rows, n, out, st, &err);
    if (rc != CH_OK)
        FAIL("transform: %s: %s", ch_strerror(rc), err.msg);
    return out;
}

static long feat_find(const ch_pipeline *p, const char *name)
{
    for (size_t k = 0; k < ch_pipeline_n_features(p); k++)
        if (strcmp(ch_pipeline_feature_name(p, k), name) == 0)
            return (long)k;
    return -1;
}

static size_t feat(const ch_pipeline *p, const char *name)
{
    long k = feat_find(p, name);
    if (k < 0)
        FAIL("no feature \"%s\"", name);
    return (size_t)k;
}

/* The fitted pipeline as JSON text (free with ch_free). */
static char *pipe_json(const ch_pipeline *p)
{
    ch_buf b;
    char *text;
    ch_buf_init(&b, JSON_MAX);
    ASSERT_OK(ch_pipeline_to_json(p, &b));
    text = ch_buf_take(&b, NULL);
    ASSERT(text != NULL);
    return text;
}

/* Loads pipeline JSON 'text'; returns the code (the pipeline in '*out'
 * on success). */
static ch_err pipe_load(const char *text, const ch_schema *s, ch_pipeline **out, ch_error *err)
{
    ch_json *doc = NULL;
    ch_err rc = ch_json_parse(text, strlen(text), &doc, err);
    if (rc != CH_OK)
        FAIL("pipeline JSON does not parse: %s", err->msg);
    ch_error_clear(err);
    rc = ch_pipeline_from_json(doc, s, out, err);
    ch_json_free(doc);
    return rc;
}

static ch_pipeline *pipe_load_ok(const char *text, const ch_schema *s)
{
    ch_pipeline *p = NULL;
    ch_error err = {0};
    ch_err rc = pipe_load(text, s, &p, &err);
    if (rc != CH_OK)
        FAIL("loading the pipeline: %s: %s", ch_strerror(rc), err.msg);
    return p;
}

/* One ch_value per column of row 'i' of 'f', as a server would pass them:
 * numbers from ch_frame_num, categories as their level text, missing
 * from ch_frame_missing. */
static void row_values(const ch_frame *f, size_t i, ch_value *vals)
{
    for (size_t j = 0; j < ch_frame_n_cols(f); j++) {
        const uint8_t *miss = ch_frame_missing(f, j);
        ch_value *v = &vals[j];
        memset(v, 0, sizeof *v);
        v->missing = miss != NULL && miss[i] != 0;
        switch (ch_frame_col_type(f, j)) {
        case CH_COL_NUM:
            v->num = ch_frame_num(f, j)[i];
            break;
        case CH_COL_CAT: {
            int32_t code = ch_frame_codes(f, j)[i];
            ASSERT_INT_EQ(code < 0, v->missing);
            if (code >= 0) {
                v->str = ch_frame_level(f, j, (size_t)code);
                v->len = strlen(v->str);
            }
            break;
        }
        case CH_COL_STR:
            v->str = ch_frame_str(f, j, i, &v->len);
            break;
        }
    }
}

/* Median of the non-NaN values of want[rows[r]] (all rows when 'rows' is
 * NULL), the obvious way; 0 when there are none. Also reports whether any
 * was NaN. */
static double ref_median(const double *want, const size_t *rows, size_t n, int *any_missing)
{
    double *v = ch_malloc_array(n + 1, sizeof *v);
    size_t m = 0;
    double med;
    ASSERT(v != NULL);
    *any_missing = 0;
    for (size_t r = 0; r < n; r++) {
        double x = want[rows != NULL ? rows[r] : r];
        if (isnan(x))
            *any_missing = 1;
        else
            v[m++] = x;
    }
    /* Insertion sort: tiny inputs, obviously correct. */
    for (size_t i = 1; i < m; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    med = m == 0 ? 0.0 : m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
    ch_free(v);
    return med;
}

/*
 * Checks numeric feature 'name' in 'out' (rows of the whole frame, 'n')
 * against raw values 'want' (NaN = missing) for a pipeline fitted on
 * 'train' (NULL: all rows) with missing_indicators "auto" and no
 * standardization: a present value as it is, a missing one replaced by
 * the training median and flagged in "name:missing", which exists exactly
 * when a training value was missing.
 */
static void check_numeric(const ch_pipeline *p, const double *out, size_t n, const char *name,
                          const double *want, const size_t *train, size_t n_train)
{
    size_t nf = ch_pipeline_n_features(p);
    size_t k = feat(p, name);
    char ind_name[200];
    int train_missing;
    double med = ref_median(want, train, train != NULL ? n_train : n, &train_missing);
    long ki;

    snprintf(ind_name, sizeof ind_name, "%s:missing", name);
    ki = feat_find(p, ind_name);
    if (train_missing && ki < 0)
        FAIL("\"%s\" missing in training but there is no \"%s\"", name, ind_name);
    if (!train_missing && ki >= 0)
        FAIL("\"%s\" never missing in training but there is \"%s\"", name, ind_name);
    ASSERT_INT_EQ(ch_pipeline_feature_kind(p, k), CH_FEAT_NUMERIC);
    for (size_t i = 0; i < n; i++) {
        double expect = isnan(want[i]) ? med : want[i];
        ASSERT_SAME(out[i * nf + k], expect, "%s, row %zu", name, i);
        if (ki >= 0)
            ASSERT_SAME(out[i * nf + (size_t)ki], isnan(want[i]) ? 1.0 : 0.0, "%s, row %zu",
                        ind_name, i);
    }
}

static void free_all(ch_pipeline *p, ch_frame *f, ch_schema *s)
{
    ch_pipeline_free(p);
    ch_frame_free(f);
    ch_schema_free(s);
}

/* The engineered columns of config/churn.json, plus an ordinal encoder,
 * for the Telco-layout tests. */
static const char telco_spec[] =
    "{'derived': ["
    " {'name': 'avg_monthly_spend', 'op': 'ratio', 'inputs': ['TotalCharges', 'tenure'],"
    "  'label': 'average monthly spend'},"
    " {'name': 'spend_delta', 'op': 'difference', 'inputs': ['avg_monthly_spend', "
    "'MonthlyCharges']},"
    " {'name': 'n_services', 'op': 'count_equal', 'inputs': ['PhoneService', 'MultipleLines',"
    "  'OnlineSecurity', 'OnlineBackup', 'DeviceProtection', 'TechSupport', 'StreamingTV',"
    "  'StreamingMovies'], 'value': 'Yes'},"
    " {'name': 'tenure_bucket', 'op': 'bucket', 'inputs': ['tenure'], 'edges': [12, 24, 48, 60]},"
    " {'name': 'auto_payment', 'op': 'equals', 'inputs': ['PaymentMethod'],"
    "  'values': ['Bank transfer (automatic)', 'Credit card (automatic)']},"
    " {'name': 'log_total_charges', 'op': 'log1p', 'inputs': ['TotalCharges']}],"
    " 'encoders': {'Contract': 'onehot', 'InternetService': 'ordinal'},"
    " 'exclude': [], 'missing_indicators': 'auto', 'standardize': false,"
    " 'min_category_count': 1}";

/* A spec over the small schema using every transform and both encoders. */
static const char small_spec[] =
    "{'derived': ["
    " {'name': 'r', 'op': 'ratio', 'inputs': ['a', 'b']},"
    " {'name': 'rz', 'op': 'ratio', 'inputs': ['a', 'b'], 'on_zero': -1.5},"
    " {'name': 'd', 'op': 'difference', 'inputs': ['r', 'n']},"
    " {'name': 'l', 'op': 'log1p', 'inputs': ['a']},"
    " {'name': 'bk', 'op': 'bucket', 'inputs': ['b'], 'edges': [0, 2.5, 10]},"
    " {'name': 'ce', 'op': 'count_equal', 'inputs': ['flag', 'n'], 'value': '1'},"
    " {'name': 'cc', 'op': 'count_equal', 'inputs': ['color', 'size'], 'value': 'M'},"
    " {'name': 'eq', 'op': 'equals', 'inputs': ['color'], 'values': ['red', 'purple']}],"
    " 'encoders': {'size': 'ordinal'}}";

/* Rows for small_spec: a kept unknown color, missing values everywhere,
 * zero denominators. */
static const char small_csv[] = SMALL_HEADER "r0,red,S,yes,6,3,1,no\n"
                                             "r1,green,M,no,5,0,2,yes\n"
                                             "r2,blue,L,yes,9,3,3,no\n"
                                             "r3,red,M,no,NA,2,4,yes\n"
                                             "r4,purple,,yes,8,2,,no\n"
                                             "r5,,S,,0,0,6,yes\n"
                                             "r6,green,L,no,-0.5,NA,7,no\n"
                                             "r7,blue,M,yes,1e-3,12.5,8,yes\n";

/* ------------------------------------------------------------------ */
/* (1) Fitting sees the training rows only.                           */
/* ------------------------------------------------------------------ */

/* Rows 0-4 train; rows 5-6 hold a color ("purple", kept as unknown) and a
 * size ("L") that no training row has, an extreme 'a', and the only
 * missing 'a'. */
static const char fit_rows_csv[] = SMALL_HEADER "r0,red,S,yes,1,10,1,no\n"
                                                "r1,green,M,no,2,20,2,yes\n"
                                                "r2,blue,S,yes,3,NA,3,no\n"
                                                "r3,red,M,no,4,40,4,yes\n"
                                                "r4,green,S,yes,5,50,5,no\n"
                                                "r5,purple,L,no,1000,-7,99,yes\n"
                                                "r6,purple,,yes,NA,NA,100,no\n";

/* The same training rows, different other rows. */
static const char fit_rows_csv2[] = SMALL_HEADER "r0,red,S,yes,1,10,1,no\n"
                                                 "r1,green,M,no,2,20,2,yes\n"
                                                 "r2,blue,S,yes,3,NA,3,no\n"
                                                 "r3,red,M,no,4,40,4,yes\n"
                                                 "r4,green,S,yes,5,50,5,no\n"
                                                 "r5,teal,M,yes,-3e6,7,-1,no\n"
                                                 "r6,red,L,no,8,NA,2,yes\n"
                                                 "r7,orange,L,no,NA,1e9,8,yes\n";

/* Only the training rows. */
static const char fit_rows_csv3[] = SMALL_HEADER "r0,red,S,yes,1,10,1,no\n"
                                                 "r1,green,M,no,2,20,2,yes\n"
                                                 "r2,blue,S,yes,3,NA,3,no\n"
                                                 "r3,red,M,no,4,40,4,yes\n"
                                                 "r4,green,S,yes,5,50,5,no\n";

TEST(fit_sees_training_rows_only)
{
    static const char *const want_names[] = {
        "color=red", "color=green", "color=blue",   "color=(other)",
        "size=S",    "size=M",      "size=(other)", "flag",
        "a",         "b",           "b:missing",    "n"};
    static const size_t train[] = {0, 1, 2, 3, 4};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, fit_rows_csv);
    ch_pipeline *p = fit_spec(s, f, "{}", 0, train, 5);
    ch_transform_stats st = {0};
    size_t nf = ch_pipeline_n_features(p);
    double *out;

    /* No feature for "purple" or "L", no indicator for 'a': those occur
     * only outside the training rows. */
    for (size_t k = 0; k < nf && k < 12; k++)
        ASSERT_STR_EQ(ch_pipeline_feature_name(p, k), want_names[k]);
    ASSERT_INT_EQ(nf, 12);
    out = transform(p, f, NULL, 0, &st);
    /* Medians from rows 0-4 only: a = 3 (not 3.5), b = 30, n = 3 (not 4). */
    ASSERT_SAME(out[6 * nf + feat(p, "a")], 3.0, "a imputed in row 6");
    ASSERT_SAME(out[2 * nf + feat(p, "b")], 30.0, "b imputed in row 2");
    ASSERT_SAME(out[6 * nf + feat(p, "b")], 30.0, "b imputed in row 6");
    ASSERT_SAME(out[6 * nf + feat(p, "b:missing")], 1.0, "b flagged in row 6");
    ASSERT_SAME(out[5 * nf + feat(p, "a")], 1000.0, "a passes through in row 5");
    /* The unseen color and size go to "(other)". */
    for (size_t i = 5; i < 7; i++) {
        ASSERT_SAME(out[i * nf + feat(p, "color=(other)")], 1.0, "row %zu", i);
        ASSERT_SAME(out[i * nf + feat(p, "color=red")], 0.0, "row %zu", i);
        ASSERT_SAME(out[i * nf + feat(p, "size=(other)")], 1.0, "row %zu", i);
    }
    /* Unknown: purple twice, L once. Missing: b (rows 2, 6), a and size
     * (row 6). */
    ASSERT_INT_EQ(st.n_rows, 7);
    ASSERT_INT_EQ(st.n_unknown, 3);
    ASSERT_INT_EQ(st.n_missing, 4);
    ch_free(out);
    free_all(p, f, s);
}

TEST(non_training_rows_do_not_change_the_fit)
{
    static const size_t train[] = {0, 1, 2, 3, 4};
    ch_schema *s = small_schema();
    ch_frame *f1 = ingest_text(s, fit_rows_csv);
    ch_frame *f2 = ingest_text(s, fit_rows_csv2);
    ch_frame *f3 = ingest_text(s, fit_rows_csv3);

    for (int std = 0; std <= 1; std++) {
        ch_pipeline *p1 = fit_spec(s, f1, small_spec, std, train, 5);
        ch_pipeline *p2 = fit_spec(s, f2, small_spec, std, train, 5);
        ch_pipeline *p3 = fit_spec(s, f3, small_spec, std, NULL, 0);
        char *j1 = pipe_json(p1);
        char *j2 = pipe_json(p2);
        char *j3 = pipe_json(p3);
        if (strcmp(j1, j2) != 0)
            FAIL("standardize %d: other rows changed the fit:\n%s\nvs\n%s", std, j1, j2);
        if (strcmp(j1, j3) != 0)
            FAIL("standardize %d: fit on a subset differs from fit on those rows alone:\n%s\n"
                 "vs\n%s",
                 std, j1, j3);
        ch_free(j1);
        ch_free(j2);
        ch_free(j3);
        ch_pipeline_free(p1);
        ch_pipeline_free(p2);
        ch_pipeline_free(p3);
    }
    ch_frame_free(f1);
    ch_frame_free(f2);
    ch_frame_free(f3);
    ch_schema_free(s);
}

TEST(kept_unknown_level_seen_in_training_gets_a_feature)
{
    static const char *const want[] = {"color=red", "color=green", "color=blue", "color=purple",
                                       "color=(other)"};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, fit_rows_csv);
    ch_pipeline *p = fit_spec(s, f, "{}", 0, NULL, 0); /* all rows: purple is seen */
    ch_transform_stats st = {0};
    size_t nf = ch_pipeline_n_features(p);
    double *out;

    for (size_t k = 0; k < 5; k++) {
        ASSERT_STR_EQ(ch_pipeline_feature_name(p, k), want[k]);
        ASSERT_INT_EQ(ch_pipeline_feature_kind(p, k), k < 4 ? CH_FEAT_ONEHOT : CH_FEAT_OTHER);
    }
    out = transform(p, f, NULL, 0, &st);
    ASSERT_SAME(out[5 * nf + feat(p, "color=purple")], 1.0, "row 5");
    ASSERT_SAME(out[5 * nf + feat(p, "color=(other)")], 0.0, "row 5");
    ASSERT_SAME(out[5 * nf + feat(p, "size=L")], 1.0, "row 5");
    ASSERT_INT_EQ(st.n_unknown, 0);
    ch_free(out);
    free_all(p, f, s);
}

/* ------------------------------------------------------------------ */
/* (2) JSON round trip and (3) record == frame.                        */
/* ------------------------------------------------------------------ */

/* Saves 'p', loads it back, and checks the copy: same JSON, same layout,
 * bit-identical features on every row of 'f'. */
static void check_round_trip(const ch_pipeline *p, const ch_schema *s, const ch_frame *f)
{
    char *j1 = pipe_json(p);
    ch_pipeline *p2 = pipe_load_ok(j1, s);
    char *j2 = pipe_json(p2);
    size_t nf = ch_pipeline_n_features(p);
    size_t n = ch_frame_n_rows(f);
    ch_transform_stats st1 = {0};
    ch_transform_stats st2 = {0};
    double *o1;
    double *o2;

    if (strcmp(j1, j2) != 0)
        FAIL("re-serialized JSON differs:\n%s\nvs\n%s", j1, j2);
    ASSERT_INT_EQ(ch_pipeline_n_features(p2), nf);
    ASSERT_INT_EQ(ch_pipeline_n_inputs(p2), ch_pipeline_n_inputs(p));
    ASSERT_STR_EQ(ch_pipeline_schema_hash(p2), ch_pipeline_schema_hash(p));
    for (size_t k = 0; k < nf; k++) {
        size_t n1;
        size_t n2;
        const uint32_t *s1 = ch_pipeline_feature_sources(p, k, &n1);
        const uint32_t *s2 = ch_pipeline_feature_sources(p2, k, &n2);
        ASSERT_STR_EQ(ch_pipeline_feature_name(p2, k), ch_pipeline_feature_name(p, k));
        ASSERT_INT_EQ(ch_pipeline_feature_kind(p2, k), ch_pipeline_feature_kind(p, k));
        ASSERT_INT_EQ(n2, n1);
        ASSERT(memcmp(s1, s2, n1 * sizeof *s1) == 0);
    }
    o1 = transform(p, f, NULL, 0, &st1);
    o2 = transform(p2, f, NULL, 0, &st2);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nf; k++)
            ASSERT_SAME(o2[i * nf + k], o1[i * nf + k], "row %zu, feature %s", i,
                        ch_pipeline_feature_name(p, k));
    ASSERT(memcmp(o1, o2, n * nf * sizeof *o1) == 0);
    ASSERT(memcmp(&st1, &st2, sizeof st1) == 0);
    ch_free(o1);
    ch_free(o2);
    ch_free(j1);
    ch_free(j2);
    ch_pipeline_free(p2);
}

TEST(json_round_trip_is_bit_identical)
{
    static const size_t train[] = {0, 1, 2, 4, 5, 7, 9};
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    for (int std = 0; std <= 1; std++) {
        ch_pipeline *p = fit_spec(s, f, telco_spec, std, train, 7);
        check_round_trip(p, s, f);
        ch_pipeline_free(p);
        p = fit_spec(s, f, telco_spec, std, NULL, 0);
        check_round_trip(p, s, f);
        ch_pipeline_free(p);
    }
    ch_frame_free(f);
    ch_schema_free(s);
}

TEST(json_round_trip_small_schema_every_transform)
{
    static const size_t train[] = {0, 1, 2, 3, 5, 6};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, small_csv);
    for (int std = 0; std <= 1; std++) {
        ch_pipeline *p = fit_spec(s, f, small_spec, std, train, 6);
        check_round_trip(p, s, f);
        ch_pipeline_free(p);
    }
    free_all(NULL, f, s);
}

TEST(json_records_the_standardize_override)
{
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    ch_pipeline *p = fit_spec(s, f, telco_spec, 1, NULL, 0);
    char *j = pipe_json(p);
    ch_json *doc = NULL;
    int on = 0;

    ASSERT_OK(ch_json_parse(j, strlen(j), &doc, NULL));
    ASSERT_STR_EQ(ch_json_str(ch_json_get(doc, "format"), NULL), "churn-pipeline");
    ASSERT_STR_EQ(ch_json_str(ch_json_get(doc, "schema_hash"), NULL), ch_schema_hash(s));
    ASSERT(ch_json_bool(ch_json_get(ch_json_get(doc, "spec"), "standardize"), &on) == 0);
    ASSERT_INT_EQ(on, 1);
    ASSERT_STR_EQ(ch_pipeline_schema_hash(p), ch_schema_hash(s));
    ch_json_free(doc);
    ch_free(j);
    free_all(p, f, s);
}

/* Checks that ch_pipeline_transform_record() on every row of 'f' gives
 * the frame transform's bits and the same counts. */
static void check_record_equals_frame(const ch_pipeline *p, const ch_schema *s, const ch_frame *f)
{
    size_t nf = ch_pipeline_n_features(p);
    size_t n = ch_frame_n_rows(f);
    ch_transform_stats st_frame = {0};
    ch_transform_stats st_rec = {0};
    double *o = transform(p, f, NULL, 0, &st_frame);
    double *rec = ch_malloc_array(nf + 1, sizeof *rec);
    double *rec2 = ch_malloc_array(nf + 1, sizeof *rec2);
    ch_value vals[MAX_INPUT];
    long id = ch_schema_id(s);
    long target = ch_schema_target(s);

    ASSERT(rec != NULL && rec2 != NULL);
    ASSERT(ch_frame_n_cols(f) <= MAX_INPUT);
    ASSERT_INT_EQ(ch_pipeline_n_inputs(p), ch_schema_n_cols(s));
    for (size_t i = 0; i < n; i++) {
        row_values(f, i, vals);
        ch_pipeline_transform_record(p, vals, rec, &st_rec);
        for (size_t k = 0; k < nf; k++)
            ASSERT_SAME(rec[k], o[i * nf + k], "row %zu, feature %s", i,
                        ch_pipeline_feature_name(p, k));
        ASSERT(memcmp(rec, o + i * nf, nf * sizeof *rec) == 0);
        /* The id and target are ignored: missing gives the same bits. */
        if (id >= 0) {
            vals[id].missing = 1;
            vals[id].str = NULL;
            vals[id].len = 0;
        }
        if (target >= 0) {
            vals[target].missing = 1;
            vals[target].num = NAN;
        }
        ch_pipeline_transform_record(p, vals, rec2, NULL);
        ASSERT(memcmp(rec2, rec, nf * sizeof *rec) == 0);
    }
    ASSERT_INT_EQ(st_rec.n_rows, st_frame.n_rows);
    ASSERT_INT_EQ(st_rec.n_unknown, st_frame.n_unknown);
    ASSERT_INT_EQ(st_rec.n_missing, st_frame.n_missing);
    ch_free(o);
    ch_free(rec);
    ch_free(rec2);
}

TEST(record_transform_equals_frame_transform)
{
    static const size_t train[] = {0, 1, 2, 3, 4, 8, 9};
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    for (int std = 0; std <= 1; std++) {
        ch_pipeline *p = fit_spec(s, f, telco_spec, std, train, 7);
        check_record_equals_frame(p, s, f);
        ch_pipeline_free(p);
    }
    ch_frame_free(f);
    ch_schema_free(s);

    s = small_schema();
    f = ingest_text(s, small_csv);
    for (int std = 0; std <= 1; std++) {
        static const size_t strain[] = {0, 1, 2, 3};
        ch_pipeline *p = fit_spec(s, f, small_spec, std, strain, 4);
        check_record_equals_frame(p, s, f);
        ch_pipeline_free(p);
    }
    free_all(NULL, f, s);
}

TEST(record_text_need_not_be_nul_terminated)
{
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, small_csv);
    ch_pipeline *p = fit_spec(s, f, small_spec, 0, NULL, 0);
    size_t nf = ch_pipeline_n_features(p);
    double *o = transform(p, f, NULL, 0, NULL);
    double *rec = ch_malloc_array(nf, sizeof *rec);
    ch_value vals[MAX_INPUT];
    /* Row 1 is green/M; give the texts as prefixes of longer strings. */
    static const char green_long[] = "greenish";
    static const char m_long[] = "Medium";

    ASSERT(rec != NULL);
    row_values(f, 1, vals);
    vals[1].str = green_long;
    vals[1].len = 5;
    vals[2].str = m_long;
    vals[2].len = 1;
    ch_pipeline_transform_record(p, vals, rec, NULL);
    ASSERT(memcmp(rec, o + 1 * nf, nf * sizeof *rec) == 0);
    ch_free(rec);
    ch_free(o);
    free_all(p, f, s);
}

/* ------------------------------------------------------------------ */
/* (4) Engineered transforms on hand-computed rows.                    */
/* ------------------------------------------------------------------ */

TEST(ratio_zero_denominator_is_missing_or_on_zero)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,6,3,1,no\n"
                                           "r1,red,S,yes,5,0,1,no\n"
                                           "r2,red,S,yes,9,3,1,no\n"
                                           "r3,red,S,yes,NA,2,1,no\n"
                                           "r4,red,S,yes,8,2,1,no\n"
                                           "r5,red,S,yes,0,0,1,no\n"
                                           "r6,red,S,yes,-3,-0.5,1,no\n";
    static const double r[] = {2, NAN, 3, NAN, 4, NAN, 6};
    static const double rz[] = {2, -1.5, 3, NAN, 4, -1.5, 6};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f,
                              "{'derived': [{'name': 'r', 'op': 'ratio', 'inputs': ['a', 'b']},"
                              " {'name': 'rz', 'op': 'ratio', 'inputs': ['a', 'b'],"
                              "  'on_zero': -1.5}]}",
                              0, NULL, 0);
    ch_transform_stats st = {0};
    double *out = transform(p, f, NULL, 0, &st);

    /* r: median of 2, 3, 4, 6 is 3.5, and r:missing flags rows 1, 3, 5. */
    check_numeric(p, out, 7, "r", r, NULL, 0);
    check_numeric(p, out, 7, "rz", rz, NULL, 0);
    ASSERT_SAME(out[1 * ch_pipeline_n_features(p) + feat(p, "r")], 3.5, "r row 1");
    /* Missing: a (row 3), r (rows 1, 3, 5), rz (row 3). */
    ASSERT_INT_EQ(st.n_missing, 5);
    ch_free(out);
    ch_pipeline_free(p);

    /* Trained without a zero denominator: no indicator, and a zero at
     * transform time still imputes the median (of 2, 3, 4 = 3). */
    {
        static const size_t train[] = {0, 2, 4};
        size_t nf;
        p = fit_spec(s, f, "{'derived': [{'name': 'r', 'op': 'ratio', 'inputs': ['a', 'b']}]}", 0,
                     train, 3);
        nf = ch_pipeline_n_features(p);
        ASSERT(feat_find(p, "r:missing") < 0);
        out = transform(p, f, NULL, 0, NULL);
        ASSERT_SAME(out[1 * nf + feat(p, "r")], 3.0, "r row 1");
        ASSERT_SAME(out[5 * nf + feat(p, "r")], 3.0, "r row 5");
        ch_free(out);
    }
    free_all(p, f, s);
}

TEST(missing_indicators_always_and_never)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,6,3,1,no\n"
                                           "r1,red,S,yes,NA,1,1,no\n";
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f, "{'missing_indicators': 'always'}", 0, NULL, 0);
    ASSERT(feat_find(p, "a:missing") >= 0);
    ASSERT(feat_find(p, "b:missing") >= 0); /* never missing, flagged anyway */
    ASSERT_INT_EQ(ch_pipeline_feature_kind(p, feat(p, "b:missing")), CH_FEAT_INDICATOR);
    ch_pipeline_free(p);
    p = fit_spec(s, f, "{'missing_indicators': 'never'}", 0, NULL, 0);
    ASSERT(feat_find(p, "a:missing") < 0);
    ASSERT(feat_find(p, "b:missing") < 0);
    ch_pipeline_free(p);
    p = fit_spec(s, f, "{'missing_indicators': 'auto'}", 0, NULL, 0);
    ASSERT(feat_find(p, "a:missing") >= 0);
    ASSERT(feat_find(p, "b:missing") < 0);
    free_all(p, f, s);
}

TEST(difference_and_log1p)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,5,3,1,no\n"
                                           "r1,red,S,yes,0,0.5,1,no\n"
                                           "r2,red,S,yes,-0.5,1,1,no\n"
                                           "r3,red,S,yes,-1,0,1,no\n"
                                           "r4,red,S,yes,NA,1,1,no\n"
                                           "r5,red,S,yes,1e-10,2,1,no\n"
                                           "r6,red,S,yes,-2,NA,1,no\n"
                                           "r7,red,S,yes,123456.789,0.001,1,no\n";
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p =
        fit_spec(s, f,
                 "{'derived': [{'name': 'd', 'op': 'difference', 'inputs': ['a', 'b']},"
                 " {'name': 'l', 'op': 'log1p', 'inputs': ['a']}]}",
                 0, NULL, 0);
    const double *a = ch_frame_num(f, (size_t)ch_frame_find(f, "a"));
    const double *b = ch_frame_num(f, (size_t)ch_frame_find(f, "b"));
    double d[8];
    double l[8];
    double *out;

    /* The reference: plain arithmetic on the frame's own numbers (at run
     * time, so the compiler cannot fold log1p differently). log1p of -1
     * or less is missing. */
    for (size_t i = 0; i < 8; i++) {
        d[i] = a[i] - b[i];
        l[i] = a[i] > -1.0 ? log1p(a[i]) : NAN;
    }
    ASSERT(isnan(d[4]) && isnan(d[6]) && isnan(l[3]) && isnan(l[4]) && isnan(l[6]));
    out = transform(p, f, NULL, 0, NULL);
    check_numeric(p, out, 8, "d", d, NULL, 0);
    check_numeric(p, out, 8, "l", l, NULL, 0);
    ASSERT_SAME(out[1 * ch_pipeline_n_features(p) + feat(p, "l")], 0.0, "log1p(0)");
    ASSERT_SAME(out[0 * ch_pipeline_n_features(p) + feat(p, "d")], 2.0, "5 - 3");
    ch_free(out);
    free_all(p, f, s);
}

TEST(bucket_value_on_an_edge_goes_up)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,-5,1,1,no\n"
                                           "r1,red,S,yes,9.999,1,1,no\n"
                                           "r2,red,S,yes,10,1,1,no\n"
                                           "r3,red,S,yes,20,1,1,no\n"
                                           "r4,red,S,yes,20.5,1,1,no\n"
                                           "r5,red,S,yes,29.99,1,1,no\n"
                                           "r6,red,S,yes,30,1,1,no\n"
                                           "r7,red,S,yes,1e9,1,1,no\n"
                                           "r8,red,S,yes,NA,1,1,no\n";
    static const double want[] = {0, 0, 1, 1, 2, 2, 3, 3, NAN};
    static const double want1[] = {0, 0, 1, 1, 1, 1, 1, 1, NAN};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f,
                              "{'derived': [{'name': 'bk', 'op': 'bucket', 'inputs': ['a'],"
                              " 'edges': [10, 20.5, 30]},"
                              " {'name': 'b1', 'op': 'bucket', 'inputs': ['a'], 'edges': [10]}]}",
                              0, NULL, 0);
    double *out = transform(p, f, NULL, 0, NULL);
    /* Missing: the median of 0 0 1 1 2 2 3 3 is 1.5, flagged. */
    check_numeric(p, out, 9, "bk", want, NULL, 0);
    check_numeric(p, out, 9, "b1", want1, NULL, 0);
    ASSERT_SAME(out[8 * ch_pipeline_n_features(p) + feat(p, "bk")], 1.5, "bk imputed");
    ch_free(out);
    free_all(p, f, s);
}

TEST(telco_engineered_values)
{
    static const double n_services[] = {1, 3, 3, 1, 8, 0, 1, 1, 1, 8};
    static const double bucket[] = {0, 2, 1, 2, 3, 4, 0, 0, 0, 4};
    static const double autopay[] = {0, 0, 1, 1, 0, 0, 0, NAN, 0, 1};
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    ch_pipeline *p = fit_spec(s, f, telco_spec, 0, NULL, 0);
    size_t nf = ch_pipeline_n_features(p);
    const double *tenure = ch_frame_num(f, (size_t)ch_frame_find(f, "tenure"));
    const double *tc = ch_frame_num(f, (size_t)ch_frame_find(f, "TotalCharges"));
    const double *mc = ch_frame_num(f, (size_t)ch_frame_find(f, "MonthlyCharges"));
    double avg[10];
    double delta[10];
    double logtc[10];
    double *out;

    ASSERT_INT_EQ(ch_frame_n_rows(f), 10);
    for (size_t i = 0; i < 10; i++) {
        avg[i] = isnan(tc[i]) || isnan(tenure[i]) || tenure[i] == 0 ? NAN : tc[i] / tenure[i];
        delta[i] = avg[i] - mc[i];
        logtc[i] = isnan(tc[i]) ? NAN : log1p(tc[i]);
    }
    /* Rows 6 (blank TotalCharges) and 8 (0/0) have no average. */
    ASSERT(isnan(avg[6]) && isnan(avg[8]) && !isnan(avg[7]));
    out = transform(p, f, NULL, 0, NULL);
    check_numeric(p, out, 10, "n_services", n_services, NULL, 0);
    check_numeric(p, out, 10, "tenure_bucket", bucket, NULL, 0);
    check_numeric(p, out, 10, "auto_payment", autopay, NULL, 0);
    check_numeric(p, out, 10, "avg_monthly_spend", avg, NULL, 0);
    check_numeric(p, out, 10, "spend_delta", delta, NULL, 0);
    check_numeric(p, out, 10, "log_total_charges", logtc, NULL, 0);
    /* A few by hand. */
    ASSERT_SAME(out[0 * nf + feat(p, "avg_monthly_spend")], 29.85, "row 0");
    ASSERT_SAME(out[2 * nf + feat(p, "avg_monthly_spend")], 80.0, "row 2");
    ASSERT_SAME(out[9 * nf + feat(p, "avg_monthly_spend")], 115.5, "row 9");
    ASSERT_SAME(out[0 * nf + feat(p, "spend_delta")], 0.0, "row 0");
    ASSERT_SAME(out[6 * nf + feat(p, "avg_monthly_spend")], 0.5 * (550.5 / 11.0 + 1889.5 / 34.0),
                "row 6 (median)");
    ASSERT_SAME(out[7 * nf + feat(p, "auto_payment")], 0.0, "row 7 (median)");
    ASSERT_SAME(out[7 * nf + feat(p, "auto_payment:missing")], 1.0, "row 7");
    /* TotalCharges is missing in row 6: imputed and flagged. */
    ASSERT_SAME(out[6 * nf + feat(p, "TotalCharges:missing")], 1.0, "row 6");
    ch_free(out);
    free_all(p, f, s);
}

TEST(count_equal_over_numeric_and_categorical_inputs)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,1,1,1,no\n"
                                           "r1,red,S,no,1,1,1,no\n"
                                           "r2,red,S,yes,1,1,2,no\n"
                                           "r3,red,S,,1,1,1,no\n"
                                           "r4,red,S,1,1,1,,no\n"
                                           "r5,red,S,no,1,1,0,no\n";
    /* flag == 1 plus n == 1 ("1" read through each column's schema). */
    static const double want[] = {2, 1, 1, 1, 1, 0};
    static const double none[] = {0, 0, 0, 0, 0, 0};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f,
                              "{'derived': [{'name': 'c', 'op': 'count_equal',"
                              " 'inputs': ['flag', 'n'], 'value': '1'},"
                              " {'name': 'c0', 'op': 'count_equal', 'inputs': ['color'],"
                              "  'value': 'violet'}]}",
                              0, NULL, 0);
    ch_error err = {0};
    double *out = transform(p, f, NULL, 0, NULL);
    /* A missing input is simply not equal: the count is never missing. */
    check_numeric(p, out, 6, "c", want, NULL, 0);
    check_numeric(p, out, 6, "c0", none, NULL, 0);
    check_round_trip(p, s, f);
    /* 'color' keeps unknown values, so "violet" may come later and is
     * allowed; 'size' rejects them, so comparing with it is a typo. */
    ASSERT_ERR(spec_fails(s,
                          "{'derived': [{'name': 'c1', 'op': 'count_equal',"
                          " 'inputs': ['size'], 'value': 'violet'}]}",
                          &err),
               CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "\"violet\" is not a category of column \"size\"");
    ch_free(out);
    free_all(p, f, s);
}

TEST(equals_value_set_and_missing_input)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,1,1,1,no\n"
                                           "r1,green,S,no,1,1,3,no\n"
                                           "r2,purple,S,yes,1,1,2,no\n"
                                           "r3,,S,,1,1,,no\n"
                                           "r4,blue,S,1,1,1,1,no\n"
                                           "r5,orange,S,no,1,1,0,no\n";
    static const double eq_color[] = {1, 0, 1, NAN, 0, 0};
    static const double eq_n[] = {1, 1, 0, NAN, 1, 0};
    static const size_t train[] = {0, 1, 3, 4};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    /* 'purple' and 'orange' are only in non-training rows. */
    ch_pipeline *p = fit_spec(s, f,
                              "{'derived': [{'name': 'e', 'op': 'equals', 'inputs': ['color'],"
                              " 'values': ['red', 'purple']},"
                              " {'name': 'en', 'op': 'equals', 'inputs': ['n'],"
                              "  'values': ['1', '3']}]}",
                              0, train, 4);
    double *out = transform(p, f, NULL, 0, NULL);
    size_t nf = ch_pipeline_n_features(p);
    check_numeric(p, out, 6, "e", eq_color, train, 4);
    check_numeric(p, out, 6, "en", eq_n, train, 4);
    /* 'purple' still goes to the one-hot "(other)" bucket. */
    ASSERT_SAME(out[2 * nf + feat(p, "color=(other)")], 1.0, "row 2");
    ASSERT(feat_find(p, "color=purple") < 0);
    check_round_trip(p, s, f);
    ch_free(out);
    free_all(p, f, s);
}

/*
 * A ratio or difference of finite inputs can overflow to infinity. The
 * pipeline promises imputed, finite features and a JSON round trip;
 * with an infinite training value the standardization mean becomes
 * infinite, is written as null and cannot be loaded back.
 */
TEST(overflowing_ratio_stays_finite_and_round_trips)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,1e300,1e-300,1,no\n"
                                           "r1,red,S,yes,2,1,1,no\n"
                                           "r2,red,S,yes,3,1,1,no\n"
                                           "r3,red,S,yes,-1e308,1e308,1,no\n";
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f,
                              "{'derived': [{'name': 'r', 'op': 'ratio', 'inputs': ['a', 'b']},"
                              " {'name': 'd', 'op': 'difference', 'inputs': ['a', 'b']}]}",
                              1, NULL, 0);
    size_t nf = ch_pipeline_n_features(p);
    double *out = transform(p, f, NULL, 0, NULL);
    char *j = pipe_json(p);
    ch_pipeline *p2 = NULL;
    ch_error err = {0};
    ch_err rc;
    char problem[600] = "";
    size_t used = 0;

    for (size_t i = 0; i < 4; i++)
        for (size_t k = 0; k < nf; k++)
            if (!isfinite(out[i * nf + k]) && used < 300)
                used += (size_t)snprintf(problem + used, sizeof problem - used,
                                         "row %zu feature %s is %g; ", i,
                                         ch_pipeline_feature_name(p, k), out[i * nf + k]);
    rc = pipe_load(j, s, &p2, &err);
    if (rc != CH_OK)
        snprintf(problem + used, sizeof problem - used,
                 "the fitted pipeline does not load back: %s: %s", ch_strerror(rc), err.msg);
    if (problem[0] != '\0')
        FAIL("a/b and a-b overflow to infinity (1e300/1e-300, -1e308-1e308), expected them "
             "imputed like missing values: %s",
             problem);
    ch_pipeline_free(p2);
    ch_free(j);
    ch_free(out);
    free_all(p, f, s);
}

/* A median of -0.0 (all training values "-0") must survive the JSON round
 * trip bit for bit like any other number. */
TEST(negative_zero_median_round_trips)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,-0,1,1,no\n"
                                           "r1,red,S,yes,-0,1,1,no\n"
                                           "r2,red,S,yes,NA,1,1,no\n";
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f, "{}", 0, NULL, 0);
    double *out = transform(p, f, NULL, 0, NULL);
    ASSERT(signbit(out[2 * ch_pipeline_n_features(p) + feat(p, "a")]));
    check_round_trip(p, s, f);
    ch_free(out);
    free_all(p, f, s);
}

/* ------------------------------------------------------------------ */
/* (5) One-hot layout, unknown vs missing, ordinal ranks.              */
/* ------------------------------------------------------------------ */

TEST(onehot_layout_unknown_and_missing)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,1,1,1,no\n"
                                           "r1,green,M,no,1,1,1,no\n"
                                           "r2,red,S,yes,1,1,1,no\n"
                                           "r3,purple,S,yes,1,1,1,no\n"
                                           "r4,,S,yes,1,1,1,no\n"
                                           "r5,blue,M,yes,1,1,1,no\n";
    static const size_t train[] = {0, 1, 2};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f, "{}", 0, train, 3);
    size_t nf = ch_pipeline_n_features(p);
    size_t red = feat(p, "color=red");
    size_t other = feat(p, "color=(other)");
    ch_transform_stats st = {0};
    double *out;
    double *rec = ch_malloc_array(nf, sizeof *rec);
    ch_value vals[MAX_INPUT];

    /* One feature per fitted level (red, green; blue is a schema category
     * no training row has), in order, then "(other)". */
    ASSERT_STR_EQ(ch_pipeline_feature_name(p, red + 1), "color=green");
    ASSERT_INT_EQ(other, red + 2);
    ASSERT(feat_find(p, "color=blue") < 0);
    ASSERT_INT_EQ(ch_pipeline_feature_kind(p, red), CH_FEAT_ONEHOT);
    ASSERT_INT_EQ(ch_pipeline_feature_kind(p, other), CH_FEAT_OTHER);
    out = transform(p, f, NULL, 0, &st);
    for (size_t i = 0; i < 6; i++) {
        double sum = 0;
        for (size_t k = red; k <= other; k++)
            sum += out[i * nf + k];
        ASSERT_SAME(sum, 1.0, "exactly one color feature is set in row %zu", i);
    }
    ASSERT_SAME(out[0 * nf + red], 1.0, "row 0");
    ASSERT_SAME(out[1 * nf + red + 1], 1.0, "row 1");
    ASSERT_SAME(out[3 * nf + other], 1.0, "row 3 (purple: unknown)");
    ASSERT_SAME(out[4 * nf + other], 1.0, "row 4 (missing)");
    ASSERT_SAME(out[5 * nf + other], 1.0, "row 5 (blue: not in training)");
    /* purple, blue: unknown; the empty color: missing. */
    ASSERT_INT_EQ(st.n_unknown, 2);
    ASSERT_INT_EQ(st.n_missing, 1);

    /* The record path: a color never seen anywhere, then a missing one. */
    ASSERT(rec != NULL);
    memset(&st, 0, sizeof st);
    row_values(f, 0, vals);
    vals[1].str = "magenta";
    vals[1].len = 7;
    ch_pipeline_transform_record(p, vals, rec, &st);
    ASSERT_SAME(rec[other], 1.0, "magenta");
    ASSERT_SAME(rec[red], 0.0, "magenta");
    ASSERT_INT_EQ(st.n_unknown, 1);
    ASSERT_INT_EQ(st.n_missing, 0);
    vals[1].missing = 1;
    ch_pipeline_transform_record(p, vals, rec, &st);
    ASSERT_SAME(rec[other], 1.0, "missing");
    ASSERT_INT_EQ(st.n_unknown, 1);
    ASSERT_INT_EQ(st.n_missing, 1);
    ASSERT_INT_EQ(st.n_rows, 2);
    ch_free(rec);
    ch_free(out);
    free_all(p, f, s);
}

TEST(min_category_count_sends_rare_levels_to_other)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,1,1,1,no\n"
                                           "r1,red,S,no,1,1,1,no\n"
                                           "r2,green,S,yes,1,1,1,no\n"
                                           "r3,blue,M,yes,1,1,1,no\n";
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f, "{'min_category_count': 2}", 0, NULL, 0);
    size_t nf = ch_pipeline_n_features(p);
    double *out = transform(p, f, NULL, 0, NULL);
    ASSERT(feat_find(p, "color=red") >= 0);
    ASSERT(feat_find(p, "color=green") < 0);
    ASSERT(feat_find(p, "size=M") < 0);
    ASSERT_SAME(out[2 * nf + feat(p, "color=(other)")], 1.0, "green is rare");
    check_round_trip(p, s, f);
    ch_free(out);
    free_all(p, f, s);
}

TEST(ordinal_encoder_ranks_in_declared_order)
{
    /* Data order L, S, M; declared order S, M, L. */
    static const char csv[] = SMALL_HEADER "r0,red,L,yes,1,1,1,no\n"
                                           "r1,red,S,no,1,1,1,no\n"
                                           "r2,red,M,yes,1,1,1,no\n"
                                           "r3,red,,yes,1,1,1,no\n"
                                           "r4,red,L,yes,1,1,1,no\n";
    static const double want[] = {2, 0, 1, NAN, 2};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f, "{'encoders': {'size': 'ordinal'}}", 0, NULL, 0);
    size_t nf = ch_pipeline_n_features(p);
    size_t k = feat(p, "size");
    size_t ki = feat(p, "size:missing");
    ch_transform_stats st = {0};
    double *out = transform(p, f, NULL, 0, NULL);
    double *rec = ch_malloc_array(nf, sizeof *rec);
    ch_value vals[MAX_INPUT];
    int dummy;
    double med = ref_median(want, NULL, 5, &dummy); /* 1.5 */

    ASSERT(feat_find(p, "size=S") < 0);
    ASSERT_INT_EQ(ch_pipeline_feature_kind(p, k), CH_FEAT_ORDINAL);
    ASSERT_INT_EQ(ch_pipeline_feature_kind(p, ki), CH_FEAT_INDICATOR);
    for (size_t i = 0; i < 5; i++) {
        ASSERT_SAME(out[i * nf + k], isnan(want[i]) ? med : want[i], "row %zu", i);
        ASSERT_SAME(out[i * nf + ki], isnan(want[i]) ? 1.0 : 0.0, "row %zu", i);
    }
    /* An unknown size on the record path: imputed, counted as unknown. */
    ASSERT(rec != NULL);
    row_values(f, 0, vals);
    vals[2].str = "XL";
    vals[2].len = 2;
    ch_pipeline_transform_record(p, vals, rec, &st);
    ASSERT_SAME(rec[k], med, "XL");
    ASSERT_SAME(rec[ki], 1.0, "XL");
    ASSERT_INT_EQ(st.n_unknown, 1);
    ASSERT_INT_EQ(st.n_missing, 0);
    ch_free(rec);
    ch_free(out);
    free_all(p, f, s);
}

TEST(exclude_drops_features_but_feeds_derived)
{
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, small_csv);
    ch_pipeline *p = fit_spec(s, f,
                              "{'exclude': ['a', 'color'], 'derived': [{'name': 'l', 'op': "
                              "'log1p', 'inputs': ['a']}, {'name': 'e', 'op': 'equals', "
                              "'inputs': ['color'], 'values': ['red']}]}",
                              0, NULL, 0);
    for (size_t k = 0; k < ch_pipeline_n_features(p); k++) {
        const char *name = ch_pipeline_feature_name(p, k);
        ASSERT(strcmp(name, "a") != 0 && strncmp(name, "color", 5) != 0);
    }
    ASSERT(feat_find(p, "l") >= 0);
    ASSERT(feat_find(p, "e") >= 0);
    check_round_trip(p, s, f);
    free_all(p, f, s);
}

TEST(feature_names_are_unique_and_accessors_consistent)
{
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    ch_pipeline *p = fit_spec(s, f, telco_spec, 0, NULL, 0);
    size_t nf = ch_pipeline_n_features(p);
    ASSERT(nf > 0);
    for (size_t k = 0; k < nf; k++)
        for (size_t m = 0; m < k; m++)
            if (strcmp(ch_pipeline_feature_name(p, k), ch_pipeline_feature_name(p, m)) == 0)
                FAIL("feature %zu and %zu are both \"%s\"", m, k, ch_pipeline_feature_name(p, k));
    ASSERT(ch_pipeline_feature_name(p, nf) == NULL);
    ASSERT_INT_EQ(ch_pipeline_n_inputs(p), ch_schema_n_cols(s));
    free_all(p, f, s);
}

/* ------------------------------------------------------------------ */
/* (6) Standardization.                                                */
/* ------------------------------------------------------------------ */

static void check_standardized(const ch_schema *s, const ch_frame *f, const char *json,
                               const size_t *train, size_t n_train)
{
    ch_pipeline *raw = fit_spec(s, f, json, 0, train, n_train);
    ch_pipeline *std = fit_spec(s, f, json, 1, train, n_train);
    size_t nf = ch_pipeline_n_features(std);
    double *o_raw = transform(raw, f, train, n_train, NULL);
    double *o_std = transform(std, f, train, n_train, NULL);
    size_t n_checked = 0;

    ASSERT_INT_EQ(ch_pipeline_n_features(raw), nf);
    for (size_t k = 0; k < nf; k++) {
        ch_feature_kind kind = ch_pipeline_feature_kind(std, k);
        const char *name = ch_pipeline_feature_name(std, k);
        double mean = 0;
        double var = 0;
        double rmean = 0;
        double rvar = 0;
        ASSERT_STR_EQ(ch_pipeline_feature_name(raw, k), name);
        if (kind != CH_FEAT_NUMERIC && kind != CH_FEAT_ORDINAL) {
            /* One-hot, other and indicator features are left alone. */
            for (size_t r = 0; r < n_train; r++) {
                double v = o_std[r * nf + k];
                ASSERT_SAME(v, o_raw[r * nf + k], "%s, row %zu", name, r);
                ASSERT(v == 0.0 || v == 1.0);
            }
            continue;
        }
        for (size_t r = 0; r < n_train; r++) {
            mean += o_std[r * nf + k];
            rmean += o_raw[r * nf + k];
        }
        mean /= (double)n_train;
        rmean /= (double)n_train;
        for (size_t r = 0; r < n_train; r++) {
            var += (o_std[r * nf + k] - mean) * (o_std[r * nf + k] - mean);
            rvar += (o_raw[r * nf + k] - rmean) * (o_raw[r * nf + k] - rmean);
        }
        var /= (double)n_train;
        rvar /= (double)n_train;
        ASSERT_NEAR(mean, 0.0, 1e-9);
        if (rvar == 0) {
            /* A constant feature is centred, not scaled. */
            ASSERT_NEAR(var, 0.0, 1e-18);
            continue;
        }
        ASSERT_NEAR(sqrt(var), 1.0, 1e-9);
        /* And it is the raw feature, shifted and scaled. */
        for (size_t r = 0; r < n_train; r++) {
            double want = (o_raw[r * nf + k] - rmean) / sqrt(rvar);
            ASSERT_NEAR(o_std[r * nf + k], want, 1e-9 * (1 + fabs(want)));
        }
        n_checked++;
    }
    ASSERT(n_checked >= 3);
    ch_free(o_raw);
    ch_free(o_std);
    ch_pipeline_free(raw);
    ch_pipeline_free(std);
}

TEST(standardize_gives_mean_zero_sd_one_on_training_rows)
{
    static const size_t train[] = {0, 1, 2, 3, 4, 6, 7, 9};
    static const size_t all[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    check_standardized(s, f, telco_spec, train, 8);
    check_standardized(s, f, telco_spec, all, 10);
    ch_frame_free(f);
    ch_schema_free(s);

    s = small_schema();
    f = ingest_text(s, small_csv);
    check_standardized(s, f, small_spec, all, 8);
    free_all(NULL, f, s);
}

/*
 * A feature that is constant over the training rows has no spread; it is
 * centred and left unscaled (sd taken as 1). When the constant is not a
 * whole number (0.1), the two-pass mean is off by an ulp, and the
 * computed deviation is ~1e-17 instead of 0: dividing by it makes the
 * training rows 1.0 instead of 0 and any other value ~1e16.
 */
TEST(standardize_constant_non_integer_feature)
{
    static const char csv[] = SMALL_HEADER "r0,red,S,yes,0.1,1,1,no\n"
                                           "r1,red,S,yes,0.1,2,1,no\n"
                                           "r2,red,S,yes,0.1,3,1,no\n"
                                           "r3,red,S,yes,0.1,4,1,no\n"
                                           "r4,red,S,yes,0.1,5,1,no\n"
                                           "r5,red,S,yes,0.1,6,1,no\n"
                                           "r6,red,S,yes,0.1,7,1,no\n"
                                           "r7,red,S,yes,0.1,8,1,no\n"
                                           "r8,red,S,yes,0.1,9,1,no\n"
                                           "r9,red,S,yes,0.1,10,1,no\n"
                                           "r10,red,S,yes,0.2,11,1,no\n";
    static const size_t train[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    ch_schema *s = small_schema();
    ch_frame *f = ingest_text(s, csv);
    ch_pipeline *p = fit_spec(s, f, "{}", 1, train, 10);
    size_t nf = ch_pipeline_n_features(p);
    size_t ka = feat(p, "a");
    double *out = transform(p, f, NULL, 0, NULL);
    double got[11];

    /* Copied out and freed first: the checks below end the test. */
    for (size_t i = 0; i < 11; i++)
        got[i] = out[i * nf + ka];
    ch_free(out);
    free_all(p, f, s);
    for (size_t i = 0; i < 10; i++)
        if (!(fabs(got[i]) <= 1e-9))
            FAIL("training row %zu: a constant 'a' (0.1) standardizes to %.17g, expected 0", i,
                 got[i]);
    if (!(fabs(got[10]) <= 1.0))
        FAIL("row 10: a = 0.2 against a constant 0.1 standardizes to %.17g, expected 0.1 "
             "(deviation taken as 1)",
             got[10]);
}

/* ------------------------------------------------------------------ */
/* (7) Feature sources.                                                */
/* ------------------------------------------------------------------ */

/* Checks that feature 'name' comes from exactly the columns 'cols'. */
static void check_sources(const ch_pipeline *p, const ch_schema *s, const char *name,
                          const char *const *cols, size_t n_cols)
{
    size_t n = 0;
    const uint32_t *src = ch_pipeline_feature_sources(p, feat(p, name), &n);
    if (n != n_cols)
        FAIL("%s has %zu sources, expected %zu", name, n, n_cols);
    for (size_t i = 0; i < n_cols; i++) {
        long j = ch_schema_find(s, cols[i]);
        int found = 0;
        ASSERT(j >= 0);
        for (size_t m = 0; m < n; m++)
            found |= src[m] == (uint32_t)j;
        if (!found)
            FAIL("%s does not list its source %s", name, cols[i]);
    }
}

TEST(feature_sources)
{
    static const char *const avg[] = {"TotalCharges", "tenure"};
    static const char *const delta[] = {"TotalCharges", "tenure", "MonthlyCharges"};
    static const char *const services[] = {"PhoneService", "MultipleLines",    "OnlineSecurity",
                                           "OnlineBackup", "DeviceProtection", "TechSupport",
                                           "StreamingTV",  "StreamingMovies"};
    static const char *const contract[] = {"Contract"};
    static const char *const tenure[] = {"tenure"};
    static const char *const pay[] = {"PaymentMethod"};
    static const char *const tc[] = {"TotalCharges"};
    static const char *const inet[] = {"InternetService"};
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    ch_pipeline *p = fit_spec(s, f, telco_spec, 0, NULL, 0);

    check_sources(p, s, "avg_monthly_spend", avg, 2);
    check_sources(p, s, "avg_monthly_spend:missing", avg, 2);
    check_sources(p, s, "spend_delta", delta, 3);
    check_sources(p, s, "n_services", services, 8);
    check_sources(p, s, "tenure_bucket", tenure, 1);
    check_sources(p, s, "auto_payment", pay, 1);
    check_sources(p, s, "log_total_charges", tc, 1);
    check_sources(p, s, "TotalCharges:missing", tc, 1);
    check_sources(p, s, "InternetService", inet, 1);
    check_sources(p, s, "tenure", tenure, 1);
    for (size_t k = 0; k < ch_pipeline_n_features(p); k++) {
        const char *name = ch_pipeline_feature_name(p, k);
        size_t n = 0;
        const uint32_t *src = ch_pipeline_feature_sources(p, k, &n);
        ASSERT(n >= 1);
        for (size_t m = 0; m < n; m++) {
            ASSERT(src[m] < ch_schema_n_cols(s));
            ASSERT((long)src[m] != ch_schema_id(s));
            ASSERT((long)src[m] != ch_schema_target(s));
        }
        if (strncmp(name, "Contract=", 9) == 0)
            check_sources(p, s, name, contract, 1);
    }
    ASSERT(feat_find(p, "Contract=(other)") >= 0);
    free_all(p, f, s);
}

/* ------------------------------------------------------------------ */
/* (8) Errors.                                                         */
/* ------------------------------------------------------------------ */

typedef struct spec_case {
    const char *json;   /* single-quoted spec */
    ch_err code;        /* expected code */
    const char *where;  /* the message must contain this... */
    const char *where2; /* ...and this (or NULL) */
} spec_case;

static const spec_case spec_cases[] = {
    {"{'derived': [{'name': 'x', 'op': 'multiply', 'inputs': ['a', 'b']}]}", CH_EFORMAT,
     "derived[0] (x)", "op"},
    {"{'derived': [{'name': 'x', 'op': 'ratio', 'inputs': ['a', 'nope']}]}", CH_EFORMAT,
     "derived[0] (x)", "nope"},
    {"{'derived': [{'name': 'x', 'op': 'ratio', 'inputs': ['a']}]}", CH_EFORMAT, "derived[0] (x)",
     "2 inputs"},
    {"{'derived': [{'name': 'x', 'op': 'difference', 'inputs': ['a', 'b', 'n']}]}", CH_EFORMAT,
     "derived[0] (x)", "2 inputs"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['a', 'b']}]}", CH_EFORMAT,
     "derived[0] (x)", "1 input"},
    {"{'derived': [{'name': 'x', 'op': 'ratio', 'inputs': ['color', 'a']}]}", CH_EFORMAT,
     "derived[0] (x)", "color"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['size']}]}", CH_EFORMAT,
     "derived[0] (x)", "size"},
    {"{'derived': [{'name': 'x', 'op': 'bucket', 'inputs': ['a'], 'edges': [10, 5]}]}", CH_EFORMAT,
     "derived[0] (x)", "edges[1]"},
    {"{'derived': [{'name': 'x', 'op': 'bucket', 'inputs': ['a'], 'edges': [1, 5, 5]}]}",
     CH_EFORMAT, "derived[0] (x)", "edges[2]"},
    {"{'derived': [{'name': 'x', 'op': 'bucket', 'inputs': ['a'], 'edges': []}]}", CH_EFORMAT,
     "derived[0] (x)", "edges"},
    {"{'derived': [{'name': 'x', 'op': 'bucket', 'inputs': ['a']}]}", CH_EFORMAT, "derived[0] (x)",
     "edges"},
    {"{'derived': [{'name': 'x', 'op': 'bucket', 'inputs': ['a'], 'edges': [1, '2']}]}", CH_EFORMAT,
     "derived[0] (x)", "edges[1]"},
    {"{'derivd': []}", CH_EFORMAT, "unknown key", "derivd"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['a'], 'edge': [1]}]}", CH_EFORMAT,
     "derived[0] (x)", "edge"},
    {"{'encoders': {'a': 'onehot'}}", CH_EFORMAT, "encoders", "\"a\""},
    {"{'encoders': {'color': 'passthrough'}}", CH_EFORMAT, "encoders", "color"},
    {"{'encoders': {'color': 'hash'}}", CH_EFORMAT, "encoders", "color"},
    {"{'encoders': {'nope': 'onehot'}}", CH_EFORMAT, "encoders", "nope"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['a']},"
     " {'name': 'x', 'op': 'log1p', 'inputs': ['b']}]}",
     CH_EFORMAT, "derived[1] (x)", "already used"},
    {"{'derived': [{'name': 'a', 'op': 'log1p', 'inputs': ['b']}]}", CH_EFORMAT, "derived[0] (a)",
     "already used"},
    {"{'derived': [{'name': 'y', 'op': 'log1p', 'inputs': ['b']}]}", CH_EFORMAT, "derived[0] (y)",
     "already used"},
    {"{'derived': [{'name': 'x', 'op': 'count_equal', 'inputs': ['flag', 'color'],"
     " 'value': 'maybe'}]}",
     CH_EFORMAT, "derived[0] (x)", "maybe"},
    {"{'derived': [{'name': 'x', 'op': 'count_equal', 'inputs': ['n'], 'value': 'many'}]}",
     CH_EFORMAT, "derived[0] (x)", "many"},
    {"{'derived': [{'name': 'x', 'op': 'count_equal', 'inputs': ['flag']}]}", CH_EFORMAT,
     "derived[0] (x)", "value"},
    {"{'derived': [{'name': 'x', 'op': 'equals', 'inputs': ['color'], 'value': 'red'}]}",
     CH_EFORMAT, "derived[0] (x)", "values"},
    {"{'derived': [{'name': 'x', 'op': 'equals', 'inputs': ['color'], 'values': []}]}", CH_EFORMAT,
     "derived[0] (x)", "values"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['a'], 'on_zero': 0}]}", CH_EFORMAT,
     "derived[0] (x)", "on_zero"},
    {"{'derived': [{'name': 'x', 'op': 'ratio', 'inputs': ['a', 'b'], 'on_zero': 'zero'}]}",
     CH_EFORMAT, "derived[0] (x)", "on_zero"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['a'], 'edges': [1]}]}", CH_EFORMAT,
     "derived[0] (x)", "edges"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['a'], 'values': ['1']}]}", CH_EFORMAT,
     "derived[0] (x)", "value"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['x']}]}", CH_EFORMAT, "derived[0] (x)",
     "\"x\""},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['z']},"
     " {'name': 'z', 'op': 'log1p', 'inputs': ['a']}]}",
     CH_EFORMAT, "derived[0] (x)", "\"z\""},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['id']}]}", CH_EFORMAT, "derived[0] (x)",
     "id"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['y']}]}", CH_EFORMAT, "derived[0] (x)",
     "\"y\""},
    {"{'derived': [{'name': '', 'op': 'log1p', 'inputs': ['a']}]}", CH_EFORMAT, "derived[0]",
     "name"},
    {"{'derived': [{'op': 'log1p', 'inputs': ['a']}]}", CH_EFORMAT, "derived[0]", "name"},
    {"{'derived': [42]}", CH_EFORMAT, "derived[0]", NULL},
    {"{'derived': {}}", CH_EFORMAT, "derived", NULL},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': []}]}", CH_EFORMAT, "derived[0] (x)",
     "inputs"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': 'a'}]}", CH_EFORMAT, "derived[0] (x)",
     "inputs"},
    {"{'derived': [{'name': 'x', 'op': 'log1p', 'inputs': ['a'], 'label': 3}]}", CH_EFORMAT,
     "derived[0] (x)", "label"},
    {"{'standardize': 'yes'}", CH_EFORMAT, "standardize", NULL},
    {"{'missing_indicators': 'sometimes'}", CH_EFORMAT, "missing_indicators", NULL},
    {"{'min_category_count': 0}", CH_EFORMAT, "min_category_count", NULL},
    {"{'min_category_count': 2.5}", CH_EFORMAT, "min_category_count", NULL},
    {"{'exclude': ['nope']}", CH_EFORMAT, "exclude[0]", NULL},
    {"{'exclude': ['a', 'id']}", CH_EFORMAT, "exclude[1]", NULL},
    {"{'exclude': 'a'}", CH_EFORMAT, "exclude", NULL},
    {"{'encoders': ['a']}", CH_EFORMAT, "encoders", NULL},
    {"[]", CH_EFORMAT, "features", NULL},
};

TEST(spec_errors_name_the_place)
{
    ch_schema *s = small_schema();
    for (size_t i = 0; i < sizeof spec_cases / sizeof spec_cases[0]; i++) {
        const spec_case *c = &spec_cases[i];
        ch_error err = {0};
        ch_err rc = spec_fails(s, c->json, &err);
        if (rc != c->code)
            FAIL("case %zu %s: expected %s, got %s (%s)", i, c->json, ch_strerror(c->code),
                 ch_strerror(rc), err.msg);
        if (strstr(err.msg, c->where) == NULL ||
            (c->where2 != NULL && strstr(err.msg, c->where2) == NULL))
            FAIL("case %zu %s: message \"%s\" should name \"%s\"%s%s", i, c->json, err.msg,
                 c->where, c->where2 ? " and " : "", c->where2 ? c->where2 : "");
    }
    ch_schema_free(s);
}

TEST(spec_count_equal_value_checked_against_binary_telco_column)
{
    ch_schema *s = telco_schema();
    ch_error err = {0};
    /* "No phone service" is a MultipleLines level, not a PhoneService
     * (binary) value. */
    ASSERT_ERR(spec_fails(s,
                          "{'derived': [{'name': 'k', 'op': 'count_equal', 'inputs': "
                          "['MultipleLines', 'PhoneService'], 'value': 'No phone service'}]}",
                          &err),
               CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "PhoneService");
    ASSERT_CONTAINS(err.msg, "derived[0] (k)");
    ch_schema_free(s);
}

TEST(fit_and_transform_errors)
{
    ch_schema *s = small_schema();
    ch_schema *t = telco_schema();
    ch_frame *f = ingest_text(s, small_csv);
    ch_frame *tf = telco_small(t);
    ch_pipeline_spec *sp = spec(s, small_spec);
    ch_pipeline_spec *tsp = spec(t, telco_spec);
    static char dummy;
    ch_pipeline *sentinel = (ch_pipeline *)(void *)&dummy; /* must stay untouched */
    ch_pipeline *p = sentinel;
    ch_error err = {0};
    static const size_t past[] = {0, 8};
    static const size_t none[] = {0};
    double out[256];

    /* No rows. */
    ASSERT_ERR(ch_pipeline_fit(sp, s, f, none, 0, &p, &err), CH_EDATA);
    ASSERT(p == sentinel);
    /* A row past the end. */
    ASSERT_ERR(ch_pipeline_fit(sp, s, f, past, 2, &p, &err), CH_EINVAL);
    ASSERT(p == sentinel);
    /* A spec declared for another schema. */
    ASSERT_ERR(ch_pipeline_fit(tsp, s, f, NULL, 0, &p, &err), CH_ESCHEMA);
    /* A frame of another schema (the spec's schema given). */
    ASSERT_ERR(ch_pipeline_fit(sp, s, tf, NULL, 0, &p, &err), CH_EINVAL);
    ASSERT(p == sentinel);

    p = fit_rows(sp, s, f, NULL, 0);
    ASSERT(ch_pipeline_n_features(p) <= 256);
    ASSERT_ERR(ch_pipeline_transform_frame(p, tf, NULL, 0, out, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_pipeline_transform_frame(p, f, past, 2, out, NULL, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "8");
    /* No rows to transform is fine. */
    ASSERT_OK(ch_pipeline_transform_frame(p, f, none, 0, out, NULL, &err));

    ch_pipeline_free(p);
    ch_pipeline_free(NULL);
    ch_pipeline_spec_free(sp);
    ch_pipeline_spec_free(tsp);
    ch_pipeline_spec_free(NULL);
    ch_frame_free(f);
    ch_frame_free(tf);
    ch_schema_free(s);
    ch_schema_free(t);
}

/* Replaces the first 'from' in ch_malloc'd 'text' by 'to'. */
static char *replace(char *text, const char *from, const char *to)
{
    char *at = strstr(text, from);
    size_t head;
    size_t tail;
    char *r;
    if (at == NULL)
        FAIL("\"%s\" not found in the pipeline JSON", from);
    head = (size_t)(at - text);
    tail = strlen(at + strlen(from));
    r = ch_malloc(head + strlen(to) + tail + 1);
    ASSERT(r != NULL);
    memcpy(r, text, head);
    memcpy(r + head, to, strlen(to));
    memcpy(r + head + strlen(to), at + strlen(from), tail + 1);
    ch_free(text);
    return r;
}

/* Loads 'text' expecting 'code' and a message containing 'part'. */
static void load_fails(const char *text, const ch_schema *s, ch_err code, const char *part)
{
    ch_pipeline *p = NULL;
    ch_error err = {0};
    ch_err rc = pipe_load(text, s, &p, &err);
    if (rc != code)
        FAIL("expected %s, got %s (%s) loading:\n%s", ch_strerror(code), ch_strerror(rc), err.msg,
             text);
    ASSERT(p == NULL);
    if (strstr(err.msg, part) == NULL)
        FAIL("message \"%s\" should contain \"%s\"", err.msg, part);
}

TEST(load_errors)
{
    ch_schema *s = telco_schema();
    ch_schema *small = small_schema();
    ch_frame *f = telco_small(s);
    ch_pipeline *p = fit_spec(s, f, telco_spec, 1, NULL, 0);
    char *good = pipe_json(p);
    char *t;
    char hash_field[200];
    char *first;
    char *second;

    /* The right schema loads; another schema does not. */
    ch_pipeline_free(pipe_load_ok(good, s));
    load_fails(good, small, CH_ESCHEMA, "schema");
    /* A schema hash changed in the file. */
    snprintf(hash_field, sizeof hash_field, "\"schema_hash\": \"%s\"", ch_schema_hash(s));
    t = replace(ch_strdup(good), hash_field, "\"schema_hash\": \"0000\"");
    load_fails(t, s, CH_ESCHEMA, "schema");
    ch_free(t);
    /* Format and version. */
    t = replace(ch_strdup(good), "\"churn-pipeline\"", "\"churn-pipe\"");
    load_fails(t, s, CH_EFORMAT, "format");
    ch_free(t);
    t = replace(ch_strdup(good), "\"version\": 1", "\"version\": 2");
    load_fails(t, s, CH_EFORMAT, "version");
    ch_free(t);
    t = replace(ch_strdup(good), "\"version\": 1,", "");
    load_fails(t, s, CH_EFORMAT, "version");
    ch_free(t);
    /* A fitted column removed: cut from the first "{"name" of the fitted
     * list to the second. */
    t = ch_strdup(good);
    ASSERT(t != NULL);
    first = strstr(strstr(t, "\"fitted\": ["), "\n  {\"name\"");
    ASSERT(first != NULL);
    second = strstr(first + 1, "\n  {\"name\"");
    ASSERT(second != NULL);
    memmove(first, second, strlen(second) + 1);
    load_fails(t, s, CH_EFORMAT, "fitted");
    ch_free(t);
    /* A fitted column renamed. */
    t = replace(ch_strdup(good), "{\"name\": \"gender\", \"n_fit\"",
                "{\"name\": \"sex\", \"n_fit\"");
    load_fails(t, s, CH_EFORMAT, "fitted[0]");
    ch_free(t);
    /* A feature renamed in the list. */
    t = replace(ch_strdup(good), "\"auto_payment\",\n", "\"autopay\",\n");
    load_fails(t, s, CH_EFORMAT, "features[");
    ch_free(t);
    /* A feature removed from the list. */
    t = replace(ch_strdup(good), "\"n_services\",\n", "");
    load_fails(t, s, CH_EFORMAT, "features");
    ch_free(t);
    /* Numbers that cannot be. */
    t = replace(ch_strdup(good), "\"sd\": ", "\"sd\": -");
    load_fails(t, s, CH_EFORMAT, "sd");
    ch_free(t);
    t = replace(ch_strdup(good), "\"median\": ", "\"median\": null, \"x\": ");
    load_fails(t, s, CH_EFORMAT, "median");
    ch_free(t);
    t = replace(ch_strdup(good), "\"levels\": [\"Female\"", "\"levels\": [\"Male\"");
    load_fails(t, s, CH_EFORMAT, "twice");
    ch_free(t);
    t = replace(ch_strdup(good), "\"n_fit\": 2", "\"n_fit\": 7");
    load_fails(t, s, CH_EFORMAT, "n_fit");
    ch_free(t);
    /* A spec that no longer parses: the error says it came from the spec. */
    t = replace(ch_strdup(good), "\"op\": \"ratio\"", "\"op\": \"quotient\"");
    load_fails(t, s, CH_EFORMAT, "spec");
    ch_free(t);
    /* Not an object at all. */
    load_fails("[1, 2]", s, CH_EFORMAT, "format");

    ch_free(good);
    ch_pipeline_free(p);
    ch_frame_free(f);
    ch_schema_free(s);
    ch_schema_free(small);
}

/* ------------------------------------------------------------------ */
/* Frames built directly.                                              */
/* ------------------------------------------------------------------ */

TEST(frame_built_with_ch_frame_matches_ingested_frame)
{
    /* The same rows as small_csv, with the level dictionaries seeded in
     * another order than the schema's: levels are matched by text. */
    static const char *const colors[] = {"blue", "purple", "red", "green"};
    static const char *const sizes[] = {"L", "M", "S"};
    static const struct {
        const char *id, *color, *size;
        double flag, a, b, n, y;
    } rows[] = {
        {"r0", "red", "S", 1, 6, 3, 1, 0},        {"r1", "green", "M", 0, 5, 0, 2, 1},
        {"r2", "blue", "L", 1, 9, 3, 3, 0},       {"r3", "red", "M", 0, NAN, 2, 4, 1},
        {"r4", "purple", NULL, 1, 8, 2, NAN, 0},  {"r5", NULL, "S", NAN, 0, 0, 6, 1},
        {"r6", "green", "L", 0, -0.5, NAN, 7, 0}, {"r7", "blue", "M", 1, 1e-3, 12.5, 8, 1},
    };
    ch_schema *s = small_schema();
    ch_frame *ing = ingest_text(s, small_csv);
    ch_frame *f = NULL;
    ch_pipeline *p1;
    ch_pipeline *p2;
    char *j1;
    char *j2;
    double *o1;
    double *o2;

    ASSERT_OK(ch_frame_new(&f, NULL));
    ASSERT_OK(ch_frame_add_column(f, "id", CH_COL_STR, NULL, 0, NULL));
    ASSERT_OK(ch_frame_add_column(f, "color", CH_COL_CAT, colors, 4, NULL));
    ASSERT_OK(ch_frame_add_column(f, "size", CH_COL_CAT, sizes, 3, NULL));
    ASSERT_OK(ch_frame_add_column(f, "flag", CH_COL_NUM, NULL, 0, NULL));
    ASSERT_OK(ch_frame_add_column(f, "a", CH_COL_NUM, NULL, 0, NULL));
    ASSERT_OK(ch_frame_add_column(f, "b", CH_COL_NUM, NULL, 0, NULL));
    ASSERT_OK(ch_frame_add_column(f, "n", CH_COL_NUM, NULL, 0, NULL));
    ASSERT_OK(ch_frame_add_column(f, "y", CH_COL_NUM, NULL, 0, NULL));
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ch_cell c[8];
        memset(c, 0, sizeof c);
        c[0].str = rows[i].id;
        c[0].len = strlen(rows[i].id);
        c[1].code = -1;
        c[1].str = rows[i].color;
        c[1].len = rows[i].color ? strlen(rows[i].color) : 0;
        c[1].missing = rows[i].color == NULL;
        c[2].code = -1;
        c[2].str = rows[i].size;
        c[2].len = rows[i].size ? strlen(rows[i].size) : 0;
        c[2].missing = rows[i].size == NULL;
        c[3].num = rows[i].flag;
        c[4].num = rows[i].a;
        c[5].num = rows[i].b;
        c[6].num = rows[i].n;
        c[7].num = rows[i].y;
        for (size_t j = 3; j < 8; j++)
            c[j].missing = isnan(c[j].num);
        ASSERT_OK(ch_frame_append_row(f, c, NULL));
    }
    for (int std = 0; std <= 1; std++) {
        p1 = fit_spec(s, ing, small_spec, std, NULL, 0);
        p2 = fit_spec(s, f, small_spec, std, NULL, 0);
        j1 = pipe_json(p1);
        j2 = pipe_json(p2);
        if (strcmp(j1, j2) != 0)
            FAIL("the frames fit differently:\n%s\nvs\n%s", j1, j2);
        o1 = transform(p1, ing, NULL, 0, NULL);
        o2 = transform(p1, f, NULL, 0, NULL);
        ASSERT(memcmp(o1, o2, 8 * ch_pipeline_n_features(p1) * sizeof *o1) == 0);
        check_record_equals_frame(p2, s, f);
        ch_free(o1);
        ch_free(o2);
        ch_free(j1);
        ch_free(j2);
        ch_pipeline_free(p1);
        ch_pipeline_free(p2);
    }
    ch_frame_free(ing);
    free_all(NULL, f, s);
}

/* ------------------------------------------------------------------ */
/* (9) Fault injection.                                                */
/* ------------------------------------------------------------------ */

/* Spec parse, fit on 'rows', to_json, from_json and a transform. The
 * first failing step's code is returned; the loaded pipeline's JSON goes
 * to '*json' on success. Frees everything. */
static ch_err scenario(const ch_schema *s, const ch_frame *f, const ch_json *decl,
                       const size_t *rows, size_t n_rows, char **json)
{
    ch_pipeline_spec *sp = NULL;
    ch_pipeline *p = NULL;
    ch_pipeline *p2 = NULL;
    ch_json *doc = NULL;
    ch_buf b;
    char *text = NULL;
    double *out = NULL;
    ch_error err = {0};
    ch_err rc;

    ch_buf_init(&b, JSON_MAX);
    rc = ch_pipeline_spec_from_json(decl, s, &sp, &err);
    if (rc != CH_OK)
        goto done;
    ch_pipeline_spec_set_standardize(sp, 1);
    rc = ch_pipeline_fit(sp, s, f, rows, n_rows, &p, &err);
    if (rc != CH_OK)
        goto done;
    rc = ch_pipeline_to_json(p, &b);
    if (rc != CH_OK)
        goto done;
    text = ch_buf_take(&b, NULL);
    if (text == NULL) {
        rc = CH_ENOMEM;
        goto done;
    }
    rc = ch_json_parse(text, strlen(text), &doc, &err);
    if (rc != CH_OK)
        goto done;
    rc = ch_pipeline_from_json(doc, s, &p2, &err);
    if (rc != CH_OK)
        goto done;
    out = ch_malloc_array(ch_frame_n_rows(f) * ch_pipeline_n_features(p2) + 1, sizeof *out);
    if (out == NULL) {
        rc = CH_ENOMEM;
        goto done;
    }
    rc = ch_pipeline_transform_frame(p2, f, NULL, 0, out, NULL, &err);
    if (rc != CH_OK)
        goto done;
    *json = text;
    text = NULL;
done:
    ch_free(out);
    ch_pipeline_free(p2);
    ch_json_free(doc);
    ch_free(text);
    ch_buf_reset(&b);
    ch_pipeline_free(p);
    ch_pipeline_spec_free(sp);
    return rc;
}

static void fault_loop(const ch_schema *s, const ch_frame *f, const char *spec_json,
                       const size_t *rows, size_t n_rows)
{
    char *decl_text = q(spec_json);
    ch_json *decl = NULL;
    char *base = NULL;
    long total;
    ch_err rc;

    ASSERT_OK(ch_json_parse(decl_text, strlen(decl_text), &decl, NULL));
    ch_alloc_fail_after(0);
    rc = scenario(s, f, decl, rows, n_rows, &base);
    total = ch_alloc_count();
    ASSERT_OK(rc);
    ASSERT(total > 10);
    for (long n = 1; n <= total + 1; n++) {
        char *json = NULL;
        ch_alloc_fail_after(n);
        rc = scenario(s, f, decl, rows, n_rows, &json);
        ch_alloc_fail_after(0);
        if (n <= total && rc != CH_ENOMEM)
            FAIL("allocation %ld of %ld failed: expected %s, got %s", n, total,
                 ch_strerror(CH_ENOMEM), ch_strerror(rc));
        if (n > total) {
            ASSERT_OK(rc);
            ASSERT_STR_EQ(json, base);
        }
        ch_free(json);
    }
    ch_free(base);
    ch_json_free(decl);
    ch_free(decl_text);
}

TEST(out_of_memory_at_every_allocation)
{
    static const size_t train[] = {0, 1, 2, 3, 4, 5, 7, 9};
    ch_schema *s = telco_schema();
    ch_frame *f = telco_small(s);
    fault_loop(s, f, telco_spec, train, 8);
    ch_frame_free(f);
    ch_schema_free(s);

    s = small_schema();
    f = ingest_text(s, small_csv);
    fault_loop(s, f, small_spec, NULL, 0);
    /* A spec that fails to parse must still fail with the right code
     * when memory runs out during the parse. */
    for (long n = 1; n < 50; n++) {
        char *text = q("{'derived': [{'name': 'x', 'op': 'ratio', 'inputs': ['a', 'nope']}]}");
        ch_json *doc = NULL;
        ch_pipeline_spec *sp = NULL;
        ch_err rc;
        ASSERT_OK(ch_json_parse(text, strlen(text), &doc, NULL));
        ch_alloc_fail_after(n);
        rc = ch_pipeline_spec_from_json(doc, s, &sp, NULL);
        ch_alloc_fail_after(0);
        ASSERT(rc == CH_ENOMEM || rc == CH_EFORMAT);
        ASSERT(sp == NULL);
        ch_json_free(doc);
        ch_free(text);
    }
    free_all(NULL, f, s);
}

/* ------------------------------------------------------------------ */
/* (10) The config's pipeline on the whole Telco file.                 */
/* ------------------------------------------------------------------ */

TEST(telco_config_pipeline)
{
    static const char *const need[] = {"avg_monthly_spend", "spend_delta", "n_services",
                                       "tenure_bucket", "auto_payment"};
    const char *csv = ch_test_telco_csv();
    ch_schema *s;
    ch_frame *f;
    ch_config *cfg = NULL;
    const ch_json *section;
    ch_pipeline_spec *sp = NULL;
    ch_pipeline *p;
    ch_error err = {0};
    size_t *train = NULL;
    size_t *test = NULL;
    size_t n_train = 0;
    size_t n_test = 0;
    size_t n;
    size_t nf;
    double *out;
    long id;
    ch_err rc;

    if (csv == NULL)
        SKIP("the shared Telco CSV (WA_Fn-UseC_-Telco-Customer-Churn.csv) is absent: set "
             "CH_SHARED_DATA to its folder to run this test");
    s = telco_schema();
    f = ingest_path(s, csv);
    n = ch_frame_n_rows(f);
    ASSERT_INT_EQ(n, 7043);
    rc = ch_split_holdout(ch_frame_num(f, (size_t)ch_schema_target(s)), n, 0.2, 42, &train,
                          &n_train, &test, &n_test, &err);
    if (rc != CH_OK)
        FAIL("split: %s: %s", ch_strerror(rc), err.msg);
    ASSERT_INT_EQ(n_train + n_test, n);
    rc = ch_config_load(ch_test_path("config/churn.json"), &cfg, &err);
    if (rc != CH_OK)
        FAIL("config: %s: %s", ch_strerror(rc), err.msg);
    section = ch_config_section(cfg, "features");
    ASSERT(section != NULL);
    rc = ch_pipeline_spec_from_json(section, s, &sp, &err);
    if (rc != CH_OK)
        FAIL("features section: %s: %s", ch_strerror(rc), err.msg);
    /* The expected values below are raw, so no scaling. */
    ch_pipeline_spec_set_standardize(sp, 0);
    p = fit_rows(sp, s, f, train, n_train);
    nf = ch_pipeline_n_features(p);
    if (nf <= 50)
        FAIL("only %zu features", nf);
    for (size_t i = 0; i < 5; i++)
        (void)feat(p, need[i]);
    out = transform(p, f, NULL, 0, NULL);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nf; k++)
            if (!isfinite(out[i * nf + k]))
                FAIL("row %zu, feature %s is %g", i, ch_pipeline_feature_name(p, k),
                     out[i * nf + k]);
    /* The first customer: tenure 1, no phone, DSL with online backup,
     * electronic check, 29.85 a month and in total. */
    id = ch_schema_id(s);
    ASSERT(id >= 0);
    ASSERT_STR_EQ(ch_frame_str(f, (size_t)id, 0, NULL), "7590-VHVEG");
    ASSERT_SAME(out[feat(p, "n_services")], 1.0, "7590-VHVEG");
    ASSERT_SAME(out[feat(p, "auto_payment")], 0.0, "7590-VHVEG");
    ASSERT_SAME(out[feat(p, "avg_monthly_spend")], 29.85, "7590-VHVEG");
    ASSERT_SAME(out[feat(p, "tenure_bucket")], 0.0, "7590-VHVEG");
    ASSERT_SAME(out[feat(p, "spend_delta")], 0.0, "7590-VHVEG");
    /* Both paths and the saved copy agree on every customer. */
    check_record_equals_frame(p, s, f);
    check_round_trip(p, s, f);
    ch_pipeline_free(p);
    ch_pipeline_spec_set_standardize(sp, 1);
    p = fit_rows(sp, s, f, train, n_train);
    check_round_trip(p, s, f);
    check_record_equals_frame(p, s, f);
    ch_free(out);
    ch_free(train);
    ch_free(test);
    ch_pipeline_spec_free(sp);
    ch_config_free(cfg);
    free_all(p, f, s);
}

/* The declaration built from the schema alone: one-hot for every
 * categorical column with its "other" bucket, numbers imputed with
 * indicators where training rows miss them, no derived columns, pii
 * columns left out; it writes out as JSON that reads back to itself. */
TEST(auto_spec_from_the_schema)
{
    static const char schema_json[] =
        "{'format': 'churn-schema', 'version': 1, 'name': 'any', 'columns': ["
        " {'name': 'id', 'kind': 'id'},"
        " {'name': 'color', 'kind': 'categorical', 'categories': ['red', 'green', 'blue']},"
        " {'name': 'who', 'kind': 'categorical', 'categories': ['ann', 'bo'], 'pii': true},"
        " {'name': 'a', 'kind': 'numeric', 'missing': ['', 'NA']},"
        " {'name': 'n', 'kind': 'integer'},"
        " {'name': 'y', 'kind': 'target'}]}";
    char *text = q(schema_json);
    ch_json *doc = NULL;
    ch_schema *s = NULL;
    ch_pipeline_spec *sp = NULL;
    ch_pipeline_spec *back = NULL;
    ch_pipeline *p;
    ch_frame *f;
    ch_error err = {0};
    ch_buf b, b2;
    static const char *const want[] = {"color=red", "color=green", "color=blue", "color=(other)",
                                       "a",         "a:missing",   "n"};
    ASSERT_OK(ch_json_parse(text, strlen(text), &doc, &err));
    ASSERT_OK(ch_schema_from_json(doc, &s, &err));
    ch_json_free(doc);
    ch_free(text);
    ASSERT_OK(ch_pipeline_spec_auto(s, &sp, &err));
    f = ingest_text(s, "id,color,who,a,n,y\nr0,red,ann,1.5,3,no\nr1,blue,bo,NA,4,yes\n"
                       "r2,green,ann,2,5,no\n");
    ASSERT_OK(ch_pipeline_fit(sp, s, f, NULL, 3, &p, &err));
    ASSERT_INT_EQ(ch_pipeline_n_features(p), 7);
    for (size_t k = 0; k < 7; k++)
        ASSERT_STR_EQ(ch_pipeline_feature_name(p, k), want[k]);
    ch_buf_init(&b, 1 << 20);
    ch_buf_init(&b2, 1 << 20);
    ASSERT_OK(ch_pipeline_spec_to_json(sp, &b));
    ASSERT_CONTAINS(b.data, "\"exclude\": [\"who\"]");
    ASSERT_CONTAINS(b.data, "\"derived\": []");
    ASSERT_OK(ch_json_parse(b.data, b.len, &doc, &err));
    ASSERT_OK(ch_pipeline_spec_from_json(doc, s, &back, &err));
    ASSERT_OK(ch_pipeline_spec_to_json(back, &b2));
    ASSERT_STR_EQ(b.data, b2.data);
    ch_json_free(doc);
    ch_buf_reset(&b);
    ch_buf_reset(&b2);
    ch_pipeline_spec_free(back);
    ch_pipeline_spec_free(sp);
    free_all(p, f, s);
}

TEST_MAIN(T(auto_spec_from_the_schema), T(fit_sees_training_rows_only),
          T(non_training_rows_do_not_change_the_fit),
          T(kept_unknown_level_seen_in_training_gets_a_feature),
          T(json_round_trip_is_bit_identical), T(json_round_trip_small_schema_every_transform),
          T(json_records_the_standardize_override), T(record_transform_equals_frame_transform),
          T(record_text_need_not_be_nul_terminated),
          T(ratio_zero_denominator_is_missing_or_on_zero), T(missing_indicators_always_and_never),
          T(difference_and_log1p), T(bucket_value_on_an_edge_goes_up), T(telco_engineered_values),
          T(count_equal_over_numeric_and_categorical_inputs), T(equals_value_set_and_missing_input),
          T(overflowing_ratio_stays_finite_and_round_trips), T(negative_zero_median_round_trips),
          T(onehot_layout_unknown_and_missing), T(min_category_count_sends_rare_levels_to_other),
          T(ordinal_encoder_ranks_in_declared_order), T(exclude_drops_features_but_feeds_derived),
          T(feature_names_are_unique_and_accessors_consistent),
          T(standardize_gives_mean_zero_sd_one_on_training_rows),
          T(standardize_constant_non_integer_feature), T(feature_sources),
          T(spec_errors_name_the_place),
          T(spec_count_equal_value_checked_against_binary_telco_column),
          T(fit_and_transform_errors), T(load_errors),
          T(frame_built_with_ch_frame_matches_ingested_frame), T(out_of_memory_at_every_allocation),
          T(telco_config_pipeline))
