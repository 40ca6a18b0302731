/*
 * test_schema.c -- dataset schemas, through include/ch/schema.h only.
 *
 * Covers loading config/telco.schema.json, every validation error of the
 * schema JSON (data-driven, see below), the JSON round trip and the hash,
 * ch_schema_parse_value() for every kind, the reason and kind tables, and
 * allocation failure while building a schema.
 *
 * Data-driven cases live in tests/cases/schema/: NAME.json is a schema
 * document and NAME.expect says what loading it must give, one directive a
 * line ('#' starts a comment):
 *
 *     error <CH_E...>          loading fails with this code
 *     contains <text>          ... and the message contains <text>
 *     ok                       loading succeeds
 *     cols <n> | target <n> | id <n> | name <text> | ignores_extra <0|1>
 *
 * Adding a case is adding two files. Every valid case is also round-tripped
 * through ch_schema_to_json().
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/hash.h"
#include "ch/json.h"
#include "ch/schema.h"
#include "../harness.h"

#define MAX_DOC_BYTES ((size_t)16 << 20) /* cap on documents built by the tests */

/* ---- helpers ------------------------------------------------------------ */

static ch_schema *load_telco(void)
{
    ch_schema *s = NULL;
    ch_error err;
    ch_err rc = ch_schema_load_file(ch_test_path("config/telco.schema.json"), &s, &err);
    if (rc != CH_OK)
        FAIL("loading the Telco schema: %s: %s", ch_strerror(rc), err.msg);
    return s;
}

/* Builds a schema from JSON text; the JSON itself must be valid. */
static ch_err schema_from_text(const char *text, ch_schema **out, ch_error *err)
{
    ch_json *root = NULL;
    ch_err rc;
    ch_error jerr;

    rc = ch_json_parse(text, strlen(text), &root, &jerr);
    if (rc != CH_OK)
        FAIL("test JSON does not parse: %s\n%s", jerr.msg, text);
    rc = ch_schema_from_json(root, out, err);
    ch_json_free(root);
    return rc;
}

static ch_schema *schema_ok(const char *text)
{
    ch_schema *s = NULL;
    ch_error err;
    ch_err rc = schema_from_text(text, &s, &err);
    if (rc != CH_OK)
        FAIL("schema should load: %s: %s\n%s", ch_strerror(rc), err.msg, text);
    return s;
}

static const ch_schema_col *col_named(const ch_schema *s, const char *name)
{
    long j = ch_schema_find(s, name);
    if (j < 0)
        FAIL("no column \"%s\"", name);
    return ch_schema_col_ref(s, (size_t)j);
}

/* Writes 's' as JSON into a new string (free with ch_free). */
static char *to_json(const ch_schema *s, size_t *len)
{
    ch_buf b;
    char *text;
    ch_buf_init(&b, MAX_DOC_BYTES);
    ASSERT_OK(ch_schema_to_json(s, &b));
    text = ch_buf_take(&b, len);
    ASSERT(text != NULL);
    return text;
}

static void assert_lists_eq(const char *what, const char *col, const char *const *a, size_t na,
                            const char *const *b, size_t nb)
{
    if (na != nb)
        FAIL("column %s: %s: %zu != %zu entries", col, what, na, nb);
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            FAIL("column %s: %s[%zu]: \"%s\" != \"%s\"", col, what, i, a[i], b[i]);
}

/* Checks that two column descriptions are the same in every field. */
static void assert_cols_eq(const ch_schema_col *a, const ch_schema_col *b)
{
    ASSERT_STR_EQ(a->name, b->name);
    ASSERT_INT_EQ(a->kind, b->kind);
    ASSERT_STR_EQ(a->label, b->label);
    ASSERT_INT_EQ(a->pii, b->pii);
    ASSERT_INT_EQ(a->nullable, b->nullable);
    assert_lists_eq("categories", a->name, a->categories, a->n_categories, b->categories,
                    b->n_categories);
    ASSERT_INT_EQ(a->on_unknown, b->on_unknown);
    ASSERT_INT_EQ(a->has_min, b->has_min);
    ASSERT_INT_EQ(a->has_max, b->has_max);
    if (a->has_min)
        ASSERT(a->min == b->min);
    if (a->has_max)
        ASSERT(a->max == b->max);
    assert_lists_eq("missing", a->name, a->missing, a->n_missing, b->missing, b->n_missing);
    assert_lists_eq("positive", a->name, a->positive, a->n_positive, b->positive, b->n_positive);
    assert_lists_eq("negative", a->name, a->negative, a->n_negative, b->negative, b->n_negative);
    ASSERT_INT_EQ(a->actionable, b->actionable);
    assert_lists_eq("alternatives", a->name, a->alternatives, a->n_alternatives, b->alternatives,
                    b->n_alternatives);
}

static void assert_schemas_eq(const ch_schema *a, const ch_schema *b)
{
    ASSERT_STR_EQ(ch_schema_name(a), ch_schema_name(b));
    ASSERT_INT_EQ(ch_schema_n_cols(a), ch_schema_n_cols(b));
    ASSERT_INT_EQ(ch_schema_target(a), ch_schema_target(b));
    ASSERT_INT_EQ(ch_schema_id(a), ch_schema_id(b));
    ASSERT_INT_EQ(ch_schema_ignores_extra(a), ch_schema_ignores_extra(b));
    for (size_t j = 0; j < ch_schema_n_cols(a); j++)
        assert_cols_eq(ch_schema_col_ref(a, j), ch_schema_col_ref(b, j));
    ASSERT_STR_EQ(ch_schema_hash(a), ch_schema_hash(b));
}

/*
 * Writes 's' as JSON, reads it back, and checks the copy is equal (same
 * hash, same columns) and writes the very same bytes.
 */
static void assert_round_trip(const ch_schema *s)
{
    size_t len1;
    size_t len2;
    char *text1 = to_json(s, &len1);
    ch_schema *copy = NULL;
    ch_error err;
    ch_err rc = schema_from_text(text1, &copy, &err);
    char *text2;

    if (rc != CH_OK)
        FAIL("written schema does not load back: %s: %s\n%s", ch_strerror(rc), err.msg, text1);
    assert_schemas_eq(s, copy);
    text2 = to_json(copy, &len2);
    ASSERT_INT_EQ(len1, len2);
    ASSERT_STR_EQ(text1, text2);
    ch_free(text2);
    ch_free(text1);
    ch_schema_free(copy);
}

static int is_hex64(const char *h)
{
    if (h == NULL || strlen(h) != CH_SHA256_HEX_LEN)
        return 0;
    for (size_t i = 0; i < CH_SHA256_HEX_LEN; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return 0;
    return 1;
}

/* ---- loading the Telco schema ------------------------------------------- */

TEST(load_telco_schema)
{
    static const char *const names[] = {
        "customerID",   "gender",           "SeniorCitizen", "Partner",         "Dependents",
        "tenure",       "PhoneService",     "MultipleLines", "InternetService", "OnlineSecurity",
        "OnlineBackup", "DeviceProtection", "TechSupport",   "StreamingTV",     "StreamingMovies",
        "Contract",     "PaperlessBilling", "PaymentMethod", "MonthlyCharges",  "TotalCharges",
        "Churn"};
    ch_schema *s = load_telco();
    const ch_schema_col *c;

    ASSERT_STR_EQ(ch_schema_name(s), "telco");
    ASSERT_INT_EQ(ch_schema_n_cols(s), 21);
    for (size_t j = 0; j < 21; j++) {
        ASSERT_STR_EQ(ch_schema_col_ref(s, j)->name, names[j]);
        ASSERT_INT_EQ(ch_schema_find(s, names[j]), j);
    }
    ASSERT(ch_schema_col_ref(s, 21) == NULL);
    ASSERT_INT_EQ(ch_schema_find(s, "churn"), -1); /* names are case-sensitive */
    ASSERT_INT_EQ(ch_schema_find(s, ""), -1);
    ASSERT_INT_EQ(ch_schema_target(s), 20);
    ASSERT_INT_EQ(ch_schema_id(s), 0);
    ASSERT_INT_EQ(ch_schema_ignores_extra(s), 0);
    ASSERT(is_hex64(ch_schema_hash(s)));

    c = col_named(s, "customerID");
    ASSERT_INT_EQ(c->kind, CH_KIND_ID);
    ASSERT_INT_EQ(c->pii, 1);
    ASSERT_INT_EQ(c->nullable, 0);
    ASSERT_STR_EQ(c->label, "customer ID");

    c = col_named(s, "gender");
    ASSERT_INT_EQ(c->kind, CH_KIND_CATEGORICAL);
    ASSERT_INT_EQ(c->n_categories, 2);
    ASSERT_STR_EQ(c->categories[0], "Female");
    ASSERT_STR_EQ(c->categories[1], "Male");
    ASSERT_INT_EQ(c->on_unknown, CH_UNKNOWN_REJECT);
    ASSERT_INT_EQ(c->nullable, 1);
    ASSERT_INT_EQ(c->pii, 0);
    ASSERT_INT_EQ(c->actionable, 0);
    ASSERT_INT_EQ(c->n_alternatives, 0);

    c = col_named(s, "tenure");
    ASSERT_INT_EQ(c->kind, CH_KIND_INTEGER);
    ASSERT_INT_EQ(c->has_min, 1);
    ASSERT_INT_EQ(c->has_max, 1);
    ASSERT(c->min == 0.0);
    ASSERT(c->max == 600.0);
    ASSERT_INT_EQ(c->n_missing, 1); /* the default: the empty string */
    ASSERT_STR_EQ(c->missing[0], "");

    c = col_named(s, "TotalCharges");
    ASSERT_INT_EQ(c->kind, CH_KIND_NUMERIC);
    ASSERT_INT_EQ(c->n_missing, 2);
    ASSERT_STR_EQ(c->missing[0], "");
    ASSERT_STR_EQ(c->missing[1], " ");
    ASSERT(c->max == 1000000.0);

    c = col_named(s, "PaymentMethod");
    ASSERT_INT_EQ(c->on_unknown, CH_UNKNOWN_KEEP);
    ASSERT_INT_EQ(c->n_categories, 4);
    ASSERT_INT_EQ(c->actionable, 1);
    ASSERT_INT_EQ(c->n_alternatives, 2);
    ASSERT_STR_EQ(c->alternatives[0], "Bank transfer (automatic)");
    ASSERT_STR_EQ(c->alternatives[1], "Credit card (automatic)");

    c = col_named(s, "Contract");
    ASSERT_INT_EQ(c->actionable, 1);
    ASSERT_STR_EQ(c->label, "contract");
    ASSERT_INT_EQ(c->n_alternatives, 2);

    c = col_named(s, "PaperlessBilling");
    ASSERT_INT_EQ(c->kind, CH_KIND_BINARY);
    ASSERT_INT_EQ(c->actionable, 1);
    ASSERT_INT_EQ(c->n_alternatives, 1);
    ASSERT_STR_EQ(c->alternatives[0], "No");
    ASSERT(c->n_positive > 0);
    ASSERT(c->n_negative > 0);

    c = col_named(s, "Churn");
    ASSERT_INT_EQ(c->kind, CH_KIND_TARGET);
    ASSERT_INT_EQ(c->nullable, 0);
    ASSERT_INT_EQ(c->pii, 0);
    ch_schema_free(s);
    ch_schema_free(NULL);
}

TEST(load_file_errors)
{
    char path[1024];
    ch_schema *s = NULL;
    ch_error err;
    FILE *f;

    /* Absent file: CH_EIO naming the path. */
    snprintf(path, sizeof path, "%s/absent.schema.json", ch_test_tmpdir());
    ASSERT_ERR(ch_schema_load_file(path, &s, &err), CH_EIO);
    ASSERT_INT_EQ(err.code, CH_EIO);
    ASSERT_CONTAINS(err.msg, "absent.schema.json");
    ASSERT(s == NULL);

    /* Not JSON: CH_EFORMAT with the path and a position. */
    snprintf(path, sizeof path, "%s/broken.schema.json", ch_test_tmpdir());
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs("{\"format\": \"churn-schema\",\n \"version\": 1,,}\n", f);
    fclose(f);
    ASSERT_ERR(ch_schema_load_file(path, &s, &err), CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "broken.schema.json");
    ASSERT_CONTAINS(err.msg, "line 2");
    ASSERT(s == NULL);

    /* A duplicate key is a JSON error. */
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs("{\"format\": \"churn-schema\", \"version\": 1, \"version\": 1, \"columns\": []}", f);
    fclose(f);
    ASSERT_ERR(ch_schema_load_file(path, &s, &err), CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "broken.schema.json");
    ASSERT(s == NULL);

    /* A schema error: the message names the file, then the column path. */
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs("{\"format\": \"churn-schema\", \"version\": 1, \"columns\": [\n"
          "  {\"name\": \"tenure\", \"kind\": \"integer\", \"range\": [10, 1]}]}\n",
          f);
    fclose(f);
    ASSERT_ERR(ch_schema_load_file(path, &s, &err), CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, "broken.schema.json: columns[0] (tenure): ");
    ASSERT_CONTAINS(err.msg, "minimum 10 is above maximum 1");
    ASSERT(s == NULL);

    /* The error buffer is optional. */
    ASSERT_ERR(ch_schema_load_file(path, &s, NULL), CH_EFORMAT);
    ASSERT(s == NULL);
}

/* ---- data-driven validation cases --------------------------------------- */

static const struct {
    const char *name;
    ch_err code;
} err_names[] = {
    {"CH_OK", CH_OK},         {"CH_ENOMEM", CH_ENOMEM},   {"CH_EINVAL", CH_EINVAL},
    {"CH_EIO", CH_EIO},       {"CH_EFORMAT", CH_EFORMAT}, {"CH_ENOTFOUND", CH_ENOTFOUND},
    {"CH_ERANGE", CH_ERANGE}, {"CH_ELIMIT", CH_ELIMIT},   {"CH_ESCHEMA", CH_ESCHEMA},
    {"CH_EDATA", CH_EDATA},
};

static ch_err err_from_name(const char *case_name, const char *s)
{
    for (size_t i = 0; i < sizeof err_names / sizeof err_names[0]; i++)
        if (strcmp(err_names[i].name, s) == 0)
            return err_names[i].code;
    FAIL("%s: unknown error name \"%s\"", case_name, s);
}

/* Reads a whole small text file (free with ch_free), or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ch_buf b;
    char tmp[4096];
    size_t n;
    char *text;

    if (f == NULL)
        return NULL;
    ch_buf_init(&b, MAX_DOC_BYTES);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        ch_buf_append(&b, tmp, n);
    fclose(f);
    ch_buf_putc(&b, '\0');
    text = ch_buf_take(&b, NULL);
    ASSERT(text != NULL);
    return text;
}

#define MAX_CONTAINS 8

typedef struct schema_case {
    int want_ok;
    ch_err code;
    const char *contains[MAX_CONTAINS];
    size_t n_contains;
    long cols, target, id, ignores_extra; /* -2: not checked */
    const char *name;
} schema_case;

/* Parses NAME.expect text (modified in place) into 'c'. */
static void parse_expect(const char *case_name, char *text, schema_case *c)
{
    char *line = text;
    memset(c, 0, sizeof *c);
    c->cols = c->target = c->id = c->ignores_extra = -2;
    c->want_ok = -1;
    while (line != NULL && *line != '\0') {
        char *eol = strchr(line, '\n');
        char *arg;
        if (eol != NULL)
            *eol = '\0';
        arg = strchr(line, ' ');
        if (arg != NULL)
            *arg++ = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            /* comment or blank */
        } else if (strcmp(line, "ok") == 0) {
            c->want_ok = 1;
        } else if (strcmp(line, "error") == 0 && arg != NULL) {
            c->want_ok = 0;
            c->code = err_from_name(case_name, arg);
        } else if (strcmp(line, "contains") == 0 && arg != NULL) {
            ASSERT(c->n_contains < MAX_CONTAINS);
            c->contains[c->n_contains++] = arg;
        } else if (strcmp(line, "cols") == 0 && arg != NULL) {
            c->cols = strtol(arg, NULL, 10);
        } else if (strcmp(line, "target") == 0 && arg != NULL) {
            c->target = strtol(arg, NULL, 10);
        } else if (strcmp(line, "id") == 0 && arg != NULL) {
            c->id = strtol(arg, NULL, 10);
        } else if (strcmp(line, "ignores_extra") == 0 && arg != NULL) {
            c->ignores_extra = strtol(arg, NULL, 10);
        } else if (strcmp(line, "name") == 0 && arg != NULL) {
            c->name = arg;
        } else {
            FAIL("%s.expect: bad line \"%s\"", case_name, line);
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    if (c->want_ok < 0)
        FAIL("%s.expect: needs an \"ok\" or \"error\" line", case_name);
}

/* Runs one case; returns 1 if it passed (problems are printed). */
static int run_schema_case(const char *dir, const char *case_name)
{
    char json_path[1024];
    char exp_path[1024];
    char *exp_text;
    schema_case c;
    ch_json *root = NULL;
    ch_schema *s;
    ch_error err;
    ch_err rc;
    int ok = 1;

    if (snprintf(json_path, sizeof json_path, "%s/%s.json", dir, case_name) >=
            (int)sizeof json_path ||
        snprintf(exp_path, sizeof exp_path, "%s/%s.expect", dir, case_name) >= (int)sizeof exp_path)
        FAIL("%s: path too long", case_name);
    exp_text = read_text(exp_path);
    if (exp_text == NULL)
        FAIL("%s: cannot read %s", case_name, exp_path);
    parse_expect(case_name, exp_text, &c);

    /* From the parsed document: the message has no file prefix. */
    rc = ch_json_load_file(json_path, MAX_DOC_BYTES, &root, &err);
    if (rc != CH_OK)
        FAIL("%s: the case's JSON does not parse: %s", case_name, err.msg);
    s = NULL;
    ch_error_clear(&err);
    rc = ch_schema_from_json(root, &s, &err);
    ch_json_free(root);
    if (!c.want_ok) {
        if (rc != c.code) {
            fprintf(stderr, "    case %s: expected %s, got %s (%s)\n", case_name,
                    ch_strerror(c.code), ch_strerror(rc), err.msg);
            ok = 0;
        } else if (err.code != rc) {
            fprintf(stderr, "    case %s: err.code %d != returned %d\n", case_name, err.code, rc);
            ok = 0;
        }
        if (s != NULL) {
            fprintf(stderr, "    case %s: '*out' written on failure\n", case_name);
            ok = 0;
            if (rc == CH_OK)
                ch_schema_free(s);
        }
        for (size_t i = 0; ok && i < c.n_contains; i++) {
            if (strstr(err.msg, c.contains[i]) == NULL) {
                fprintf(stderr, "    case %s: message lacks \"%s\": \"%s\"\n", case_name,
                        c.contains[i], err.msg);
                ok = 0;
            }
        }
        /* Through the file: the same code, the message names the file. */
        if (ok) {
            rc = ch_schema_load_file(json_path, &s, &err);
            if (rc != c.code || strstr(err.msg, json_path) == NULL) {
                fprintf(stderr, "    case %s: from file: %s: \"%s\"\n", case_name, ch_strerror(rc),
                        err.msg);
                ok = 0;
            }
            for (size_t i = 0; ok && i < c.n_contains; i++) {
                if (strstr(err.msg, c.contains[i]) == NULL) {
                    fprintf(stderr, "    case %s: file message lacks \"%s\": \"%s\"\n", case_name,
                            c.contains[i], err.msg);
                    ok = 0;
                }
            }
        }
    } else {
        if (rc != CH_OK) {
            fprintf(stderr, "    case %s: expected success, got %s: %s\n", case_name,
                    ch_strerror(rc), err.msg);
            ok = 0;
        } else {
            if ((c.cols != -2 && (long)ch_schema_n_cols(s) != c.cols) ||
                (c.target != -2 && ch_schema_target(s) != c.target) ||
                (c.id != -2 && ch_schema_id(s) != c.id) ||
                (c.ignores_extra != -2 && ch_schema_ignores_extra(s) != c.ignores_extra) ||
                (c.name != NULL && strcmp(ch_schema_name(s), c.name) != 0)) {
                fprintf(stderr,
                        "    case %s: got cols %zu, target %ld, id %ld, ignores_extra %d, "
                        "name %s\n",
                        case_name, ch_schema_n_cols(s), ch_schema_target(s), ch_schema_id(s),
                        ch_schema_ignores_extra(s), ch_schema_name(s));
                ok = 0;
            }
            if (ok)
                assert_round_trip(s);
            ch_schema_free(s);
        }
    }
    ch_free(exp_text);
    return ok;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(validation_cases)
{
    char dir[1024];
    DIR *d;
    struct dirent *e;
    char *names[512];
    size_t n = 0;
    size_t failed = 0;

    snprintf(dir, sizeof dir, "%s", ch_test_path("tests/cases/schema"));
    d = opendir(dir);
    if (d == NULL)
        FAIL("cannot open %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            ASSERT(n < sizeof names / sizeof names[0]);
            names[n] = ch_strndup(e->d_name, len - 5);
            ASSERT(names[n] != NULL);
            n++;
        }
    }
    closedir(d);
    ASSERT(n >= 40);
    qsort(names, n, sizeof names[0], cmp_names);
    for (size_t i = 0; i < n; i++) {
        failed += !run_schema_case(dir, names[i]);
        ch_free(names[i]);
    }
    if (failed > 0)
        FAIL("%zu of %zu schema cases failed", failed, n);
    fprintf(stderr, "    %zu schema cases passed\n", n);
}

/* The same checks, inline, for the errors the brief names one by one, so a
 * regression names the rule in the test list. */
static void expect_schema_error(const char *columns, const char *want1, const char *want2)
{
    char text[4096];
    ch_schema *s = NULL;
    ch_error err;
    snprintf(text, sizeof text, "{\"format\": \"churn-schema\", \"version\": 1, \"columns\": [%s]}",
             columns);
    ch_error_clear(&err);
    ASSERT_ERR(schema_from_text(text, &s, &err), CH_EFORMAT);
    ASSERT(s == NULL);
    ASSERT_INT_EQ(err.code, CH_EFORMAT);
    ASSERT_CONTAINS(err.msg, want1);
    if (want2 != NULL)
        ASSERT_CONTAINS(err.msg, want2);
}

TEST(error_unknown_key)
{
    expect_schema_error("{\"name\": \"a\", \"kind\": \"numeric\", \"rnage\": [0, 1]}",
                        "columns[0] (a)", "unknown key \"rnage\"");
}

TEST(error_bad_kind)
{
    expect_schema_error("{\"name\": \"a\", \"kind\": \"Numeric\"}", "columns[0] (a)", "\"kind\"");
}

TEST(error_categorical_without_categories)
{
    expect_schema_error("{\"name\": \"a\", \"kind\": \"numeric\"}, {\"name\": \"b\", \"kind\": "
                        "\"categorical\"}",
                        "columns[1] (b)", "needs \"categories\"");
}

TEST(error_range_on_categorical)
{
    expect_schema_error("{\"name\": \"c\", \"kind\": \"categorical\", \"categories\": [\"x\"], "
                        "\"range\": [0, 1]}",
                        "columns[0] (c)", "\"range\" applies only");
}

TEST(error_min_above_max)
{
    expect_schema_error("{\"name\": \"t\", \"kind\": \"integer\", \"range\": [600, 0]}",
                        "columns[0] (t)", "minimum 600 is above maximum 0");
    /* Equal bounds are a valid (if narrow) range. */
    ch_schema_free(schema_ok("{\"format\": \"churn-schema\", \"version\": 1, \"columns\": "
                             "[{\"name\": \"t\", \"kind\": \"integer\", \"range\": [3, 3]}]}"));
}

TEST(error_duplicate_column)
{
    expect_schema_error("{\"name\": \"a\", \"kind\": \"numeric\"}, {\"name\": \"b\", \"kind\": "
                        "\"numeric\"}, {\"name\": \"a\", \"kind\": \"integer\"}",
                        "columns[2]", "\"a\" is listed twice");
}

TEST(error_two_targets)
{
    expect_schema_error("{\"name\": \"y1\", \"kind\": \"target\"}, {\"name\": \"y2\", \"kind\": "
                        "\"target\"}",
                        "columns[1] (y2)", "second target");
}

TEST(error_duplicate_category)
{
    expect_schema_error("{\"name\": \"c\", \"kind\": \"categorical\", \"categories\": [\"x\", "
                        "\"y\", \"y\"]}",
                        "columns[0] (c): categories[2]", "\"y\" is listed twice");
}

TEST(error_actionable_without_alternatives)
{
    expect_schema_error("{\"name\": \"c\", \"kind\": \"categorical\", \"categories\": [\"x\"], "
                        "\"actionable\": true}",
                        "columns[0] (c)", "needs \"alternatives\"");
}

TEST(error_alternative_not_valid)
{
    expect_schema_error("{\"name\": \"c\", \"kind\": \"categorical\", \"categories\": [\"x\", "
                        "\"y\"], \"actionable\": true, \"alternatives\": [\"Y\"]}",
                        "columns[0] (c)", "alternative \"Y\" is not a valid value");
    expect_schema_error("{\"name\": \"m\", \"kind\": \"numeric\", \"actionable\": true, "
                        "\"alternatives\": [\"cheap\"]}",
                        "columns[0] (m)", "alternative \"cheap\"");
}

TEST(error_nullable_target)
{
    expect_schema_error("{\"name\": \"Churn\", \"kind\": \"target\", \"nullable\": true}",
                        "columns[0] (Churn)", "cannot be nullable");
    /* "nullable": false is merely the default. */
    ch_schema_free(
        schema_ok("{\"format\": \"churn-schema\", \"version\": 1, \"columns\": "
                  "[{\"name\": \"Churn\", \"kind\": \"target\", \"nullable\": false}]}"));
}

TEST(error_format_and_version)
{
    static const char *const docs[] = {
        "{\"format\": \"churn-schemas\", \"version\": 1, \"columns\": [{\"name\": \"a\", "
        "\"kind\": \"numeric\"}]}",
        "{\"format\": 1, \"version\": 1, \"columns\": [{\"name\": \"a\", \"kind\": \"numeric\"}]}",
        "{\"format\": \"churn-schema\", \"version\": 2, \"columns\": [{\"name\": \"a\", "
        "\"kind\": \"numeric\"}]}",
        "{\"format\": \"churn-schema\", \"version\": -1, \"columns\": [{\"name\": \"a\", "
        "\"kind\": \"numeric\"}]}",
        "{\"format\": \"churn-schema\", \"version\": 1.25, \"columns\": [{\"name\": \"a\", "
        "\"kind\": \"numeric\"}]}",
        "{\"format\": \"churn-schema\", \"version\": null, \"columns\": [{\"name\": \"a\", "
        "\"kind\": \"numeric\"}]}",
        "{\"format\": \"churn-schema\", \"version\": 4294967297, \"columns\": [{\"name\": "
        "\"a\", \"kind\": \"numeric\"}]}",
    };
    static const char *const wants[] = {"\"format\"",      "\"format\"",  "version 2",
                                        "version -1",      "\"version\"", "\"version\"",
                                        "is not supported"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        ch_schema *s = NULL;
        ch_error err;
        ch_err rc = schema_from_text(docs[i], &s, &err);
        if (rc != CH_EFORMAT)
            FAIL("doc %zu: expected CH_EFORMAT, got %s", i, ch_strerror(rc));
        ASSERT(s == NULL);
        ASSERT_CONTAINS(err.msg, wants[i]);
    }
}

/* ---- JSON round trip and the hash --------------------------------------- */

TEST(round_trip_telco)
{
    ch_schema *s = load_telco();
    size_t len;
    char *text = to_json(s, &len);
    char hex[CH_SHA256_HEX_LEN + 1];

    assert_round_trip(s);
    /* The hash is that of the canonical JSON. */
    ASSERT_OK(ch_sha256_hex(text, len, hex, NULL));
    ASSERT_STR_EQ(ch_schema_hash(s), hex);
    ch_free(text);
    ch_schema_free(s);
}

TEST(round_trip_non_defaults)
{
    /* Every setting away from its default, and text that needs escaping. */
    ch_schema *s = schema_ok(
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"odd \\\"name\\\"\", "
        "\"extra_columns\": \"ignore\", \"columns\": ["
        "{\"name\": \"Id\", \"kind\": \"id\", \"pii\": false},"
        "{\"name\": \"Caf\\u00e9 \\\\ \\\"q\\\"\", \"kind\": \"numeric\", \"label\": "
        "\"tab\\there\", \"pii\": true, \"nullable\": false, \"range\": [-0.1, 1e300], "
        "\"missing\": [\"NA\", \"\", \"-\"]},"
        "{\"name\": \"lo\", \"kind\": \"integer\", \"range\": [null, 12]},"
        "{\"name\": \"hi\", \"kind\": \"integer\", \"range\": [0.5, null]},"
        "{\"name\": \"c\", \"kind\": \"categorical\", \"categories\": [\"b\", \"a\", \"\\u00fc\"], "
        "\"on_unknown\": \"keep\", \"actionable\": true, \"alternatives\": [\"a\", \"b\"]},"
        "{\"name\": \"r\", \"kind\": \"categorical\", \"categories\": [\"x\"], \"on_unknown\": "
        "\"reject\", \"missing\": []},"
        "{\"name\": \"flag\", \"kind\": \"binary\", \"positive\": [\"on\"], \"negative\": "
        "[\"off\", \"down\"], \"actionable\": true, \"alternatives\": [\"ON\"]},"
        "{\"name\": \"y\", \"kind\": \"target\", \"positive\": [\"churned\"]}]}");
    const ch_schema_col *c;

    ASSERT_STR_EQ(ch_schema_name(s), "odd \"name\"");
    ASSERT_INT_EQ(ch_schema_ignores_extra(s), 1);
    ASSERT_INT_EQ(ch_schema_col_ref(s, 0)->pii, 0);
    c = ch_schema_col_ref(s, 1);
    ASSERT_STR_EQ(c->name, "Caf\xc3\xa9 \\ \"q\"");
    ASSERT_STR_EQ(c->label, "tab\there");
    ASSERT_INT_EQ(c->pii, 1);
    ASSERT_INT_EQ(c->nullable, 0);
    ASSERT(c->min == -0.1);
    ASSERT(c->max == 1e300);
    c = col_named(s, "lo");
    ASSERT_INT_EQ(c->has_min, 0);
    ASSERT_INT_EQ(c->has_max, 1);
    c = col_named(s, "r");
    ASSERT_INT_EQ(c->n_missing, 0);
    c = col_named(s, "flag");
    ASSERT_INT_EQ(c->n_positive, 1);
    ASSERT_INT_EQ(c->n_negative, 2);
    /* 'y' changed only "positive": "negative" keeps the default list. */
    c = col_named(s, "y");
    ASSERT_INT_EQ(c->n_positive, 1);
    ASSERT(c->n_negative >= 2);
    assert_round_trip(s);
    ch_schema_free(s);
}

TEST(hash_is_canonical)
{
    static const char *const a =
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"h\", \"columns\": ["
        "{\"name\": \"x\", \"kind\": \"numeric\", \"range\": [0, 10]},"
        "{\"name\": \"y\", \"kind\": \"target\"}]}";
    /* Same schema: other key order, white space, a description, defaults spelt out. */
    static const char *const same =
        "{\"columns\": [ {\"range\": [0.0, 1e1], \"kind\": \"numeric\", \"name\": \"x\", "
        "\"label\": \"x\", \"nullable\": true, \"missing\": [\"\"], \"description\": \"d\"},\n"
        "  {\"kind\": \"target\", \"name\": \"y\", \"pii\": false}],\n"
        " \"description\": \"x\", \"name\": \"h\", \"version\": 1, \"format\": "
        "\"churn-schema\", \"extra_columns\": \"error\"}";
    /* Different schemas. */
    static const char *const diff[] = {
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"h\", \"columns\": ["
        "{\"name\": \"x\", \"kind\": \"numeric\", \"range\": [0, 11]},"
        "{\"name\": \"y\", \"kind\": \"target\"}]}",
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"h\", \"columns\": ["
        "{\"name\": \"x\", \"kind\": \"integer\", \"range\": [0, 10]},"
        "{\"name\": \"y\", \"kind\": \"target\"}]}",
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"h\", \"columns\": ["
        "{\"name\": \"y\", \"kind\": \"target\"},"
        "{\"name\": \"x\", \"kind\": \"numeric\", \"range\": [0, 10]}]}",
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"h2\", \"columns\": ["
        "{\"name\": \"x\", \"kind\": \"numeric\", \"range\": [0, 10]},"
        "{\"name\": \"y\", \"kind\": \"target\"}]}",
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"h\", \"columns\": ["
        "{\"name\": \"x\", \"kind\": \"numeric\", \"range\": [0, 10], \"label\": \"ex\"},"
        "{\"name\": \"y\", \"kind\": \"target\"}]}",
        "{\"format\": \"churn-schema\", \"version\": 1, \"name\": \"h\", \"columns\": ["
        "{\"name\": \"x\", \"kind\": \"numeric\", \"range\": [0, 10], \"missing\": [\"NA\"]},"
        "{\"name\": \"y\", \"kind\": \"target\"}]}",
    };
    ch_schema *sa = schema_ok(a);
    ch_schema *ss = schema_ok(same);

    assert_schemas_eq(sa, ss);
    for (size_t i = 0; i < sizeof diff / sizeof diff[0]; i++) {
        ch_schema *sd = schema_ok(diff[i]);
        if (strcmp(ch_schema_hash(sa), ch_schema_hash(sd)) == 0)
            FAIL("schema %zu has the same hash as a different schema", i);
        ch_schema_free(sd);
    }
    ch_schema_free(ss);
    ch_schema_free(sa);
}

/*
 * A valid schema close to the 4 MiB file limit loads: its canonical JSON
 * (which repeats each name as the default label) is larger than the file,
 * and building it must not be reported as running out of memory.
 */
TEST(large_schema_loads)
{
    char path[1024];
    FILE *f;
    ch_schema *s = NULL;
    ch_error err;
    ch_err rc;
    char name[201];
    const size_t n_cols = 12000;

    snprintf(path, sizeof path, "%s/large.schema.json", ch_test_tmpdir());
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    fputs("{\"format\": \"churn-schema\", \"version\": 1, \"columns\": [\n", f);
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    for (size_t j = 0; j < n_cols; j++) {
        char head[16];
        snprintf(head, sizeof head, "c%06zu", j);
        memcpy(name, head, strlen(head));
        fprintf(f, "{\"name\":\"%s\",\"kind\":\"numeric\"}%s\n", name, j + 1 < n_cols ? "," : "");
    }
    fputs("]}\n", f);
    ASSERT(ftell(f) < (long)(4u << 20));
    fclose(f);
    rc = ch_schema_load_file(path, &s, &err);
    if (rc != CH_OK)
        FAIL("a %zu-column schema under the file limit: %s: %s", n_cols, ch_strerror(rc), err.msg);
    ASSERT_INT_EQ(ch_schema_n_cols(s), n_cols);
    ch_schema_free(s);
}

/* ---- ch_schema_parse_value ---------------------------------------------- */

static const char *status_name(ch_value_status st)
{
    switch (st) {
    case CH_VALUE_OK:
        return "OK";
    case CH_VALUE_MISSING:
        return "MISSING";
    case CH_VALUE_UNKNOWN:
        return "UNKNOWN";
    case CH_VALUE_BAD:
        return "BAD";
    }
    return "?";
}

/*
 * Parses 'len' bytes at 'p' as a value of 'c' and checks the status and
 * reason. The text is copied into an exactly-sized heap block first, so
 * that ASan and valgrind see any read past 'len'.
 */
static ch_value_status parse_n(const ch_schema_col *c, const char *p, size_t len,
                               ch_value_status want, ch_reason want_why, double *num, int32_t *cat)
{
    char *copy = ch_malloc(len == 0 ? 1 : len);
    ch_reason why = (ch_reason)-1;
    ch_value_status st;
    ASSERT(copy != NULL);
    memcpy(copy, p, len);
    st = ch_schema_parse_value(c, copy, len, num, cat, &why);
    ch_free(copy);
    if (st != want || why != want_why)
        FAIL("column %s, \"%.*s\" (%zu bytes): got %s/%s, want %s/%s", c->name, (int)len, p, len,
             status_name(st), ch_reason_name(why), status_name(want), ch_reason_name(want_why));
    return st;
}

static void expect_num(const ch_schema_col *c, const char *text, double want)
{
    double num = -12345.0;
    int32_t cat = 0;
    parse_n(c, text, strlen(text), CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    if (!(num == want))
        FAIL("column %s, \"%s\": got %.17g, want %.17g", c->name, text, num, want);
}

static void expect_cat(const ch_schema_col *c, const char *text, int32_t want)
{
    double num = 0;
    int32_t cat = -99;
    ch_value_status st = want >= 0 ? CH_VALUE_OK : CH_VALUE_UNKNOWN;
    ch_reason why = want >= 0 ? CH_REASON_NONE : CH_REASON_UNKNOWN_CAT;
    parse_n(c, text, strlen(text), st, why, &num, &cat);
    if (cat != want)
        FAIL("column %s, \"%s\": category %d, want %d", c->name, text, cat, want);
}

static void expect_missing(const ch_schema_col *c, const char *text)
{
    double num = 0;
    int32_t cat = 0;
    parse_n(c, text, strlen(text), CH_VALUE_MISSING, CH_REASON_NONE, &num, &cat);
}

static void expect_bad(const ch_schema_col *c, const char *text, ch_reason why)
{
    double num = 0;
    int32_t cat = 0;
    parse_n(c, text, strlen(text), CH_VALUE_BAD, why, &num, &cat);
}

TEST(parse_numeric)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "MonthlyCharges"); /* range [0, 10000] */

    expect_num(c, "29.85", 29.85);
    expect_num(c, "  29.85", 29.85);
    expect_num(c, "29.85   ", 29.85);
    expect_num(c, " \t29.85\t ", 29.85);
    expect_num(c, "1e3", 1000.0);
    expect_num(c, "1E3", 1000.0);
    expect_num(c, "2.5e-1", 0.25);
    expect_num(c, "+7", 7.0);
    expect_num(c, ".5", 0.5);
    expect_num(c, "0", 0.0);
    expect_num(c, "-0", 0.0);
    expect_num(c, "0000012", 12.0);
    expect_num(c, "10000", 10000.0); /* bounds are inclusive */
    expect_num(c, "1e4", 10000.0);
    expect_num(c, "9999.999999999", 9999.999999999);
    expect_bad(c, "10000.000001", CH_REASON_OUT_OF_RANGE);
    expect_bad(c, "-0.01", CH_REASON_OUT_OF_RANGE);
    expect_bad(c, "-1", CH_REASON_OUT_OF_RANGE);
    expect_bad(c, "1e5", CH_REASON_OUT_OF_RANGE);
    expect_bad(c, "abc", CH_REASON_NOT_NUMBER);
    expect_bad(c, "12abc", CH_REASON_NOT_NUMBER);
    expect_bad(c, "1 2", CH_REASON_NOT_NUMBER);
    expect_bad(c, "29,85", CH_REASON_NOT_NUMBER); /* no decimal comma, whatever the locale */
    expect_bad(c, "$29.85", CH_REASON_NOT_NUMBER);
    expect_bad(c, "nan", CH_REASON_NOT_NUMBER);
    expect_bad(c, "NaN", CH_REASON_NOT_NUMBER);
    expect_bad(c, "inf", CH_REASON_NOT_NUMBER);
    expect_bad(c, "Infinity", CH_REASON_NOT_NUMBER);
    expect_bad(c, "0x10", CH_REASON_NOT_NUMBER);
    expect_bad(c, "1e", CH_REASON_NOT_NUMBER);
    expect_bad(c, "e3", CH_REASON_NOT_NUMBER);
    expect_bad(c, "-", CH_REASON_NOT_NUMBER);
    expect_bad(c, ".", CH_REASON_NOT_NUMBER);
    expect_bad(c, "1e400", CH_REASON_NOT_NUMBER); /* not finite */
    expect_bad(c, "\"5\"", CH_REASON_NOT_NUMBER);
    /* Blank text is missing (the column is nullable: that is the caller's call). */
    expect_missing(c, "");
    expect_missing(c, " ");
    expect_missing(c, " \t ");
    ch_schema_free(s);
}

TEST(parse_numeric_respects_length)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "MonthlyCharges");
    double num = 0;
    int32_t cat = 0;

    /* Only 'len' bytes count: "12" of "12345", "7" of "7x". */
    parse_n(c, "12345", 2, CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    ASSERT(num == 12.0);
    parse_n(c, "7x", 1, CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    ASSERT(num == 7.0);
    parse_n(c, "x7", 0, CH_VALUE_MISSING, CH_REASON_NONE, &num, &cat);
    ch_schema_free(s);
}

TEST(parse_numeric_unbounded)
{
    ch_schema *s = schema_ok("{\"format\": \"churn-schema\", \"version\": 1, \"columns\": ["
                             "{\"name\": \"free\", \"kind\": \"numeric\"},"
                             "{\"name\": \"low\", \"kind\": \"numeric\", \"range\": [-5, null]},"
                             "{\"name\": \"high\", \"kind\": \"numeric\", \"range\": [null, 5]}]}");
    const ch_schema_col *c = col_named(s, "free");

    expect_num(c, "-1e300", -1e300);
    expect_num(c, "1.7976931348623157e308", 1.7976931348623157e308);
    expect_num(c, "4.9e-324", 4.9e-324);
    expect_bad(c, "1.8e308", CH_REASON_NOT_NUMBER);
    c = col_named(s, "low");
    expect_num(c, "-5", -5.0);
    expect_num(c, "1e300", 1e300);
    expect_bad(c, "-5.0000001", CH_REASON_OUT_OF_RANGE);
    c = col_named(s, "high");
    expect_num(c, "-1e300", -1e300);
    expect_num(c, "5", 5.0);
    expect_bad(c, "5.0000001", CH_REASON_OUT_OF_RANGE);
    ch_schema_free(s);
}

TEST(parse_integer)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "tenure"); /* range [0, 600] */

    expect_num(c, "12", 12.0);
    expect_num(c, " 34 ", 34.0);
    expect_num(c, "12.0", 12.0);
    expect_num(c, "1e2", 100.0);
    expect_num(c, "0", 0.0);     /* lower bound, inclusive */
    expect_num(c, "600", 600.0); /* upper bound, inclusive */
    expect_bad(c, "12.5", CH_REASON_NOT_INTEGER);
    expect_bad(c, "0.1", CH_REASON_NOT_INTEGER);
    expect_bad(c, "1e-1", CH_REASON_NOT_INTEGER);
    expect_bad(c, "601", CH_REASON_OUT_OF_RANGE);
    expect_bad(c, "-1", CH_REASON_OUT_OF_RANGE);
    expect_bad(c, "600.5", CH_REASON_NOT_INTEGER);
    expect_bad(c, "abc", CH_REASON_NOT_NUMBER);
    expect_bad(c, "12 months", CH_REASON_NOT_NUMBER);
    expect_missing(c, "");
    expect_missing(c, "   ");
    ch_schema_free(s);
}

TEST(parse_missing_tokens)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "TotalCharges"); /* missing: "", " " */
    ch_schema *t;

    /* The Telco file writes a missing TotalCharges as one space. */
    expect_missing(c, " ");
    expect_missing(c, "");
    expect_missing(c, "  ");
    expect_num(c, "1889.5", 1889.5);
    expect_num(c, " 1889.5", 1889.5);
    ch_schema_free(s);

    /* Declared tokens are compared exactly; they replace the default "". */
    t = schema_ok("{\"format\": \"churn-schema\", \"version\": 1, \"columns\": ["
                  "{\"name\": \"n\", \"kind\": \"numeric\", \"missing\": [\"NA\", \"?\"]},"
                  "{\"name\": \"c\", \"kind\": \"categorical\", \"categories\": [\"a\", \"NA\"],"
                  " \"missing\": [\"n/a\"]},"
                  "{\"name\": \"b\", \"kind\": \"binary\", \"missing\": [\"unknown\"]},"
                  "{\"name\": \"i\", \"kind\": \"id\", \"missing\": [\"-\"]}]}");
    c = col_named(t, "n");
    expect_missing(c, "NA");
    expect_missing(c, "?");
    expect_bad(c, "na", CH_REASON_NOT_NUMBER);
    expect_bad(c, "N", CH_REASON_NOT_NUMBER);
    expect_bad(c, "NAN", CH_REASON_NOT_NUMBER);
    expect_missing(c, ""); /* blank text is missing for numbers anyway */
    c = col_named(t, "c");
    expect_missing(c, "n/a");
    expect_cat(c, "NA", 1); /* a category, since it is not a missing token here */
    expect_cat(c, "N/A", -1);
    c = col_named(t, "b");
    expect_missing(c, "unknown");
    expect_bad(c, "Unknown", CH_REASON_BAD_BOOL);
    c = col_named(t, "i");
    expect_missing(c, "-");
    {
        double num = 0;
        int32_t cat = 0;
        parse_n(c, "", 0, CH_VALUE_OK, CH_REASON_NONE, &num, &cat); /* "" is not a token here */
    }
    ch_schema_free(t);
}

TEST(parse_binary)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "Partner");
    static const char *const ones[] = {"Yes", "yes", "YES", "yEs", "True", "TRUE",  "true",
                                       "1",   "y",   "Y",   "t",   "T",    " Yes ", "\tTrue"};
    static const char *const zeros[] = {"No", "no", "NO", "False", "FALSE", "false", "fAlSe",
                                        "0",  "n",  "N",  "f",     "F",     "  no"};
    static const char *const bad[] = {"Maybe", "2",  "-1", "yes!", "Yess", "ye",
                                      "1.0",   "00", "on", "off",  "N/A",  "\"Yes\""};

    for (size_t i = 0; i < sizeof ones / sizeof ones[0]; i++)
        expect_num(c, ones[i], 1.0);
    for (size_t i = 0; i < sizeof zeros / sizeof zeros[0]; i++)
        expect_num(c, zeros[i], 0.0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad(c, bad[i], CH_REASON_BAD_BOOL);
    expect_missing(c, "");
    expect_missing(c, "  ");
    /* SeniorCitizen is written 0/1 in the Telco file. */
    c = col_named(s, "SeniorCitizen");
    expect_num(c, "0", 0.0);
    expect_num(c, "1", 1.0);
    ch_schema_free(s);
}

TEST(parse_target)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "Churn");

    expect_num(c, "Yes", 1.0);
    expect_num(c, "No", 0.0);
    expect_num(c, "yes", 1.0);
    expect_num(c, "NO", 0.0);
    expect_num(c, "TRUE", 1.0);
    expect_num(c, "false", 0.0);
    expect_num(c, "1", 1.0);
    expect_num(c, "0", 0.0);
    expect_num(c, " Yes", 1.0);
    expect_bad(c, "Maybe", CH_REASON_BAD_TARGET);
    expect_bad(c, "2", CH_REASON_BAD_TARGET);
    expect_bad(c, "Churned", CH_REASON_BAD_TARGET);
    expect_missing(c, ""); /* the caller turns it into missing_target */
    ch_schema_free(s);

    /* A custom label mapping replaces the defaults. */
    s = schema_ok("{\"format\": \"churn-schema\", \"version\": 1, \"columns\": ["
                  "{\"name\": \"y\", \"kind\": \"target\", \"positive\": [\"Churned\", \"Left\"],"
                  " \"negative\": [\"Stayed\"]}]}");
    c = col_named(s, "y");
    expect_num(c, "Churned", 1.0);
    expect_num(c, "churned", 1.0);
    expect_num(c, "LEFT", 1.0);
    expect_num(c, "stayed", 0.0);
    expect_bad(c, "Yes", CH_REASON_BAD_TARGET);
    expect_bad(c, "0", CH_REASON_BAD_TARGET);
    ch_schema_free(s);
}

TEST(parse_categorical)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "gender");
    double num = 0;
    int32_t cat = 0;

    expect_cat(c, "Female", 0);
    expect_cat(c, "Male", 1);
    expect_cat(c, "male", -1); /* categories are compared exactly */
    expect_cat(c, "MALE", -1);
    expect_cat(c, "Other", -1);
    expect_cat(c, "Mal", -1);
    expect_cat(c, "Males", -1);
    expect_cat(c, "\xc3\x89t\xc3\xa9", -1); /* valid UTF-8, unknown */
    expect_missing(c, "");
    expect_bad(c, "\xff", CH_REASON_BAD_UTF8);
    expect_bad(c, "Ma\xc3", CH_REASON_BAD_UTF8);
    /* Only 'len' bytes count. */
    parse_n(c, "Malex", 4, CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    ASSERT_INT_EQ(cat, 1);
    parse_n(c, "Female", 4, CH_VALUE_UNKNOWN, CH_REASON_UNKNOWN_CAT, &num, &cat);

    /* Categories keep their declared order and may contain spaces. */
    c = col_named(s, "MultipleLines");
    expect_cat(c, "No", 0);
    expect_cat(c, "Yes", 1);
    expect_cat(c, "No phone service", 2);
    expect_cat(c, "No phone", -1);
    c = col_named(s, "PaymentMethod");
    expect_cat(c, "Credit card (automatic)", 3);
    /* An unknown value is UNKNOWN whatever the policy; the caller applies it. */
    expect_cat(c, "Bitcoin", -1);
    ch_schema_free(s);
}

TEST(parse_categorical_embedded_nul)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "gender");
    double num = 0;
    int32_t cat = 0;

    /* A field may hold a NUL byte (the server's JSON path, "\u0000"). "Male\0x"
     * is not the category "Male", and comparing must stay within both
     * strings. */
    parse_n(c, "Male\0x", 6, CH_VALUE_UNKNOWN, CH_REASON_UNKNOWN_CAT, &num, &cat);
    ASSERT_INT_EQ(cat, -1);
    ch_schema_free(s);
}

TEST(parse_missing_token_embedded_nul)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "MonthlyCharges"); /* missing: "" */
    double num = 0;
    int32_t cat = 0;

    /* "\0" and "\0" "5" are text, not the missing token "". */
    parse_n(c, "\0", 1, CH_VALUE_BAD, CH_REASON_NOT_NUMBER, &num, &cat);
    parse_n(c,
            "\0"
            "5",
            2, CH_VALUE_BAD, CH_REASON_NOT_NUMBER, &num, &cat);
    ch_schema_free(s);
}

TEST(parse_id)
{
    ch_schema *s = load_telco();
    const ch_schema_col *c = col_named(s, "customerID");
    double num = 0;
    int32_t cat = 0;

    parse_n(c, "7590-VHVEG", 10, CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    parse_n(c, " 7590 ", 6, CH_VALUE_OK, CH_REASON_NONE, &num, &cat); /* kept as text */
    parse_n(c, "Jos\xc3\xa9", 5, CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    parse_n(c, "\xe2\x82\xac", 3, CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    parse_n(c, "\xf0\x9f\x98\x80", 4, CH_VALUE_OK, CH_REASON_NONE, &num, &cat);
    expect_missing(c, "");
    expect_bad(c, "\xff\xfe", CH_REASON_BAD_UTF8);
    expect_bad(c, "id\x80", CH_REASON_BAD_UTF8);           /* stray continuation byte */
    expect_bad(c, "\xc3\x28", CH_REASON_BAD_UTF8);         /* bad continuation */
    expect_bad(c, "\xc0\xaf", CH_REASON_BAD_UTF8);         /* overlong */
    expect_bad(c, "\xed\xa0\x80", CH_REASON_BAD_UTF8);     /* surrogate */
    expect_bad(c, "\xe2\x82", CH_REASON_BAD_UTF8);         /* truncated */
    expect_bad(c, "\xf4\x90\x80\x80", CH_REASON_BAD_UTF8); /* above U+10FFFF */
    ch_schema_free(s);
}

TEST(parse_alternatives_are_valid)
{
    /* Every alternative of the Telco schema is a valid value of its column. */
    ch_schema *s = load_telco();
    size_t n_actionable = 0;
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        if (!c->actionable)
            continue;
        n_actionable++;
        ASSERT(c->n_alternatives > 0);
        for (size_t a = 0; a < c->n_alternatives; a++) {
            double num = 0;
            int32_t cat = 0;
            parse_n(c, c->alternatives[a], strlen(c->alternatives[a]), CH_VALUE_OK, CH_REASON_NONE,
                    &num, &cat);
        }
    }
    ASSERT_INT_EQ(n_actionable, 5);
    ch_schema_free(s);
}

/* ---- reasons and kinds --------------------------------------------------- */

TEST(reason_names_and_texts)
{
    static const char *const want[CH_REASON_COUNT_] = {
        "none",         "field_count",      "malformed_csv", "not_number", "not_integer",
        "out_of_range", "unknown_category", "bad_boolean",   "missing",    "missing_target",
        "bad_target",   "bad_utf8",         "duplicate_id"};

    for (int r = 0; r < CH_REASON_COUNT_; r++) {
        const char *name = ch_reason_name((ch_reason)r);
        const char *text = ch_reason_text((ch_reason)r);
        ASSERT_STR_EQ(name, want[r]);
        ASSERT(text != NULL && text[0] != '\0');
        for (int q = 0; q < r; q++) {
            ASSERT(strcmp(name, ch_reason_name((ch_reason)q)) != 0);
            ASSERT(strcmp(text, ch_reason_text((ch_reason)q)) != 0);
        }
        /* Names are stable identifiers: lower case, digits and '_'. */
        for (const char *p = name; *p != '\0'; p++)
            ASSERT((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
    }
    ASSERT_STR_EQ(ch_reason_text(CH_REASON_NOT_NUMBER), "not a number");
    ASSERT_CONTAINS(ch_reason_text(CH_REASON_OUT_OF_RANGE), "range");
    ASSERT_CONTAINS(ch_reason_text(CH_REASON_DUPLICATE_ID), "id");
    /* Out of range: a fixed text, never NULL. */
    ASSERT_STR_EQ(ch_reason_name(CH_REASON_COUNT_), "unknown");
    ASSERT_STR_EQ(ch_reason_name((ch_reason)1000), "unknown");
    ASSERT_STR_EQ(ch_reason_name((ch_reason)-1), "unknown");
    ASSERT(ch_reason_text(CH_REASON_COUNT_) != NULL);
    ASSERT(ch_reason_text((ch_reason)-1) != NULL);
}

TEST(kind_names)
{
    static const char *const names[] = {"id",          "numeric", "integer",
                                        "categorical", "binary",  "target"};
    static const char *const bad[] = {"",     "Numeric",  "ID",  "float",      "int",
                                      "bool", "numeric ", " id", "categorica", "targets"};

    for (int k = 0; k < 6; k++) {
        ch_kind got = (ch_kind)99;
        ASSERT_STR_EQ(ch_kind_name((ch_kind)k), names[k]);
        ASSERT_INT_EQ(ch_kind_parse(names[k], &got), 0);
        ASSERT_INT_EQ(got, k);
    }
    ASSERT_INT_EQ(CH_KIND_ID, 0);
    ASSERT_INT_EQ(CH_KIND_TARGET, 5);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ch_kind got = (ch_kind)99;
        if (ch_kind_parse(bad[i], &got) != -1)
            FAIL("ch_kind_parse(\"%s\") accepted", bad[i]);
        ASSERT_INT_EQ(got, 99); /* not written on failure */
    }
    ASSERT(ch_kind_name((ch_kind)6) != NULL);
    ASSERT(ch_kind_name((ch_kind)-1) != NULL);
}

/* ---- allocation failure --------------------------------------------------- */

/*
 * Fails allocation N for N = 1, 2, ... while building the Telco schema
 * from its parsed document (and while writing it back), until a run
 * succeeds. Every failure must be CH_ENOMEM and must not write '*out';
 * leaks show up under ASan and valgrind.
 */
TEST(out_of_memory)
{
    ch_json *root = NULL;
    ch_error err;
    long n;
    long failures = 0;

    ASSERT_OK(
        ch_json_load_file(ch_test_path("config/telco.schema.json"), MAX_DOC_BYTES, &root, &err));
    for (n = 1; n < 100000; n++) {
        ch_schema *s = NULL;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_schema_from_json(root, &s, &err);
        ch_alloc_fail_after(0);
        if (rc == CH_OK) {
            ASSERT(s != NULL);
            ASSERT_INT_EQ(ch_schema_n_cols(s), 21);
            ch_schema_free(s);
            break;
        }
        if (rc != CH_ENOMEM)
            FAIL("allocation %ld failing gave %s: %s", n, ch_strerror(rc), err.msg);
        ASSERT(s == NULL);
        failures++;
    }
    ASSERT(failures > 21);
    ch_json_free(root);

    /* The whole file path too. */
    for (n = 1; n < 100000; n++) {
        ch_schema *s = NULL;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_schema_load_file(ch_test_path("config/telco.schema.json"), &s, &err);
        ch_alloc_fail_after(0);
        if (rc == CH_OK) {
            ch_schema_free(s);
            break;
        }
        if (rc != CH_ENOMEM)
            FAIL("allocation %ld failing gave %s: %s", n, ch_strerror(rc), err.msg);
        ASSERT(s == NULL);
    }
    ASSERT(n < 100000);
}

TEST(to_json_buffer_errors)
{
    /* A buffer too small for the schema reports its sticky error. */
    ch_schema *s = load_telco();
    ch_buf b;
    ch_buf_init(&b, 64);
    ASSERT_ERR(ch_schema_to_json(s, &b), CH_ELIMIT);
    ASSERT_INT_EQ(ch_buf_status(&b), CH_ELIMIT);
    ch_buf_reset(&b);
    ch_schema_free(s);
}

TEST_MAIN(T(load_telco_schema), T(load_file_errors), T(validation_cases), T(error_unknown_key),
          T(error_bad_kind), T(error_categorical_without_categories), T(error_range_on_categorical),
          T(error_min_above_max), T(error_duplicate_column), T(error_two_targets),
          T(error_duplicate_category), T(error_actionable_without_alternatives),
          T(error_alternative_not_valid), T(error_nullable_target), T(error_format_and_version),
          T(round_trip_telco), T(round_trip_non_defaults), T(hash_is_canonical),
          T(large_schema_loads), T(parse_numeric), T(parse_numeric_respects_length),
          T(parse_numeric_unbounded), T(parse_integer), T(parse_missing_tokens), T(parse_binary),
          T(parse_target), T(parse_categorical), T(parse_categorical_embedded_nul),
          T(parse_missing_token_embedded_nul), T(parse_id), T(parse_alternatives_are_valid),
          T(reason_names_and_texts), T(kind_names), T(out_of_memory), T(to_json_buffer_errors))
