/*
 * test_config.c -- the settings table and config file reader, through
 * include/ch/config.h only.
 *
 * Config files are written into the test's temporary directory; the
 * project's own config/churn.json is loaded as it is. docs/config.md must
 * be exactly what ch_config_docs() writes (the page is generated).
 */
#include <stdio.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/config.h"
#include "ch/json.h"
#include "ch/text.h"
#include "../harness.h"

#define DOC_MAX ((size_t)1 << 20) /* cap on the generated page, bytes */

/* Writes 'text' to a new file in the temporary directory; returns its
 * path (a static buffer per call site is not needed: the caller copies). */
static const char *write_file(const char *name, const char *text)
{
    static char path[700];
    FILE *fp;
    snprintf(path, sizeof path, "%s/%s", ch_test_tmpdir(), name);
    fp = fopen(path, "wb");
    ASSERT(fp != NULL);
    ASSERT(fputs(text, fp) >= 0);
    ASSERT(fclose(fp) == 0);
    return path;
}

/* Loads config text 'text' expecting 'code' and a message containing
 * 'part' (and the file's path). */
static void load_fails(const char *text, ch_err code, const char *part)
{
    static int counter;
    char name[64];
    char path[700];
    ch_config *c = NULL;
    ch_error err = {0};
    ch_err rc;

    snprintf(name, sizeof name, "config%d.json", counter++);
    snprintf(path, sizeof path, "%s", write_file(name, text));
    rc = ch_config_load(path, &c, &err);
    if (rc != code)
        FAIL("%s: expected %s, got %s (%s)", text, ch_strerror(code), ch_strerror(rc), err.msg);
    ASSERT(c == NULL);
    if (strstr(err.msg, part) == NULL)
        FAIL("%s: message \"%s\" should name \"%s\"", text, err.msg, part);
    if (strstr(err.msg, name) == NULL)
        FAIL("%s: message \"%s\" should name the file", text, err.msg);
}

static ch_config *load_text(const char *text)
{
    ch_config *c = NULL;
    ch_error err = {0};
    ch_err rc = ch_config_load(write_file("ok.json", text), &c, &err);
    if (rc != CH_OK)
        FAIL("%s: %s: %s", text, ch_strerror(rc), err.msg);
    return c;
}

static size_t n_settings(void)
{
    size_t n = 0;
    while (ch_config_setting(n) != NULL)
        n++;
    return n;
}

TEST(settings_table_is_sane)
{
    size_t n = n_settings();
    ASSERT(n >= 8);
    for (size_t i = 0; i < n; i++) {
        const ch_setting *s = ch_config_setting(i);
        ASSERT(s->name != NULL && s->name[0] != '\0');
        ASSERT(s->def != NULL);
        ASSERT(s->help != NULL && s->help[0] != '\0');
        ASSERT(s->type == CH_SET_STRING || s->type == CH_SET_NUMBER || s->type == CH_SET_INT);
        for (size_t k = 0; k < i; k++)
            if (strcmp(ch_config_setting(k)->name, s->name) == 0)
                FAIL("setting %s is listed twice", s->name);
        if (s->type != CH_SET_STRING) {
            double v;
            if (ch_parse_double(s->def, strlen(s->def), &v) != 0)
                FAIL("%s: default \"%s\" is not a number", s->name, s->def);
            ASSERT(s->min <= s->max);
            if (v < s->min || v > s->max)
                FAIL("%s: default %g is outside [%g, %g]", s->name, v, s->min, s->max);
            if (s->type == CH_SET_INT && v != floor(v))
                FAIL("%s: default %g is not whole", s->name, v);
        }
    }
    ASSERT(ch_config_setting(n) == NULL);
    ASSERT(ch_config_setting((size_t)-1) == NULL);
}

TEST(defaults)
{
    ch_config *c = NULL;
    ASSERT_OK(ch_config_new(&c, NULL));
    for (size_t i = 0; ch_config_setting(i) != NULL; i++) {
        const ch_setting *s = ch_config_setting(i);
        ASSERT_STR_EQ(ch_config_str(c, s->name), s->def);
        ASSERT_STR_EQ(ch_config_origin(c, s->name), "default");
        if (s->type != CH_SET_STRING) {
            double v;
            ASSERT(ch_parse_double(s->def, strlen(s->def), &v) == 0);
            ASSERT(ch_config_num(c, s->name) == v);
        }
    }
    ASSERT_STR_EQ(ch_config_str(c, "data.schema"), "config/telco.schema.json");
    ASSERT_STR_EQ(ch_config_str(c, "data.path"), "");
    ASSERT(ch_config_num(c, "split.test_fraction") == 0.2);
    ASSERT(ch_config_num(c, "split.seed") == 42);
    ASSERT(ch_config_path(c) == NULL);
    ASSERT(ch_config_section(c, "features") == NULL);
    ASSERT(ch_config_origin(c, "no.such") == NULL);
    ch_config_free(c);
    ch_config_free(NULL);
}

TEST(load_project_config)
{
    char path[1024];
    ch_config *c = NULL;
    ch_error err = {0};
    const ch_json *features;
    ch_err rc;

    snprintf(path, sizeof path, "%s", ch_test_path("config/churn.json"));
    rc = ch_config_load(path, &c, &err);
    if (rc != CH_OK)
        FAIL("%s: %s", ch_strerror(rc), err.msg);
    ASSERT_STR_EQ(ch_config_path(c), path);
    ASSERT_STR_EQ(ch_config_str(c, "data.schema"), "config/telco.schema.json");
    ASSERT_STR_EQ(ch_config_origin(c, "data.schema"), "file");
    ASSERT_STR_EQ(ch_config_origin(c, "split.seed"), "file");
    ASSERT(ch_config_num(c, "split.test_fraction") == 0.2);
    ASSERT(ch_config_num(c, "split.seed") == 42);
    ASSERT(ch_config_num(c, "data.simulate_rows") == 20000);
    features = ch_config_section(c, "features");
    ASSERT(features != NULL);
    ASSERT_INT_EQ(ch_json_typeof(features), CH_JSON_OBJECT);
    ASSERT_INT_EQ(ch_json_typeof(ch_json_get(features, "derived")), CH_JSON_ARRAY);
    ASSERT(ch_json_len(ch_json_get(features, "derived")) >= 1);
    ASSERT(ch_config_section(c, "no_such_section") == NULL);
    ch_config_free(c);
}

TEST(file_values_and_origins)
{
    ch_config *c = load_text("{\"split\": {\"seed\": 7, \"test_fraction\": 0.25},\n"
                             " \"workdir\": \"/tmp/w\",\n"
                             " \"data\": {\"simulate_seed\": 9007199254740991},\n"
                             " \"features\": {\"anything\": [1, 2]}}");
    ASSERT(ch_config_num(c, "split.seed") == 7);
    ASSERT(ch_config_num(c, "split.test_fraction") == 0.25);
    ASSERT(ch_config_num(c, "data.simulate_seed") == 9007199254740991.0);
    ASSERT_STR_EQ(ch_config_str(c, "workdir"), "/tmp/w");
    ASSERT_STR_EQ(ch_config_origin(c, "split.seed"), "file");
    ASSERT_STR_EQ(ch_config_origin(c, "workdir"), "file");
    ASSERT_STR_EQ(ch_config_origin(c, "data.path"), "default");
    ASSERT_STR_EQ(ch_config_str(c, "data.path"), "");
    /* Sections are kept as they are, for their module to check. */
    ASSERT_INT_EQ(ch_json_len(ch_json_get(ch_config_section(c, "features"), "anything")), 2);
    ch_config_free(c);

    c = load_text("{}");
    ASSERT_STR_EQ(ch_config_origin(c, "split.seed"), "default");
    ASSERT(ch_config_section(c, "features") == NULL);
    ch_config_free(c);
}

TEST(unknown_keys_are_errors_naming_the_key)
{
    load_fails("{\"bogus\": 1}", CH_EFORMAT, "bogus");
    load_fails("{\"split\": {\"seeed\": 1}}", CH_EFORMAT, "split.seeed");
    load_fails("{\"data\": {\"path\": \"x\", \"shema\": \"y\"}}", CH_EFORMAT, "data.shema");
    load_fails("{\"split\": {\"seed\": {\"x\": 1}}}", CH_EFORMAT, "split.seed");
    load_fails("{\"bogus\": {\"deeper\": {\"x\": 1}}}", CH_EFORMAT, "\"bogus");
    load_fails("{\"data\": \"x\"}", CH_EFORMAT, "data");
}

/* "Every key must be a known setting or section": an unknown key whose
 * value is an empty object is unknown too. */
TEST(unknown_key_with_empty_object_is_an_error)
{
    load_fails("{\"bogus\": {}}", CH_EFORMAT, "bogus");
    load_fails("{\"split\": {\"extra\": {}}}", CH_EFORMAT, "split.extra");
}

TEST(wrong_types_and_ranges)
{
    load_fails("{\"workdir\": 5}", CH_EFORMAT, "workdir");
    load_fails("{\"data\": {\"path\": null}}", CH_EFORMAT, "data.path");
    load_fails("{\"split\": {\"seed\": \"42\"}}", CH_EFORMAT, "split.seed");
    load_fails("{\"split\": {\"test_fraction\": true}}", CH_EFORMAT, "split.test_fraction");
    load_fails("{\"split\": {\"test_fraction\": [0.2]}}", CH_EFORMAT, "split.test_fraction");
    load_fails("{\"split\": {\"test_fraction\": 0.9}}", CH_ERANGE, "split.test_fraction");
    load_fails("{\"split\": {\"test_fraction\": 0.01}}", CH_ERANGE, "split.test_fraction");
    load_fails("{\"data\": {\"simulate_rows\": 5}}", CH_ERANGE, "data.simulate_rows");
    load_fails("{\"data\": {\"max_reject_rate\": -0.1}}", CH_ERANGE, "data.max_reject_rate");
    load_fails("{\"split\": {\"seed\": -1}}", CH_ERANGE, "split.seed");
    load_fails("{\"split\": {\"seed\": 1e300}}", CH_ERANGE, "split.seed");
}

/*
 * A fraction for an integer setting in a file is bad file content like a
 * string would be: ch_config_load() documents CH_EFORMAT (naming the key)
 * and CH_ERANGE, not CH_EINVAL, which the CLI reports as a usage error
 * (exit 1) although the command line was fine.
 */
TEST(non_whole_number_in_file_for_an_int_setting)
{
    load_fails("{\"split\": {\"seed\": 4.5}}", CH_EFORMAT, "split.seed");
    load_fails("{\"data\": {\"simulate_rows\": 1000.5}}", CH_EFORMAT, "data.simulate_rows");
}

TEST(bad_files)
{
    ch_config *c = NULL;
    ch_error err = {0};
    char path[700];

    snprintf(path, sizeof path, "%s/does-not-exist.json", ch_test_tmpdir());
    ASSERT_ERR(ch_config_load(path, &c, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "does-not-exist.json");
    ASSERT(c == NULL);
    load_fails("[1, 2]", CH_EFORMAT, "object");
    load_fails("{\"split\": {\"seed\": 1,}}", CH_EFORMAT, "line 1");
    load_fails("{\n\"split\": {\"seed\": 1},\n\"split\": {\"seed\": 2}\n}", CH_EFORMAT, "line");
    load_fails("", CH_EFORMAT, "line");
}

TEST(set_string_number_int)
{
    ch_config *c = NULL;
    ch_error err = {0};

    ASSERT_OK(ch_config_new(&c, NULL));
    /* String. */
    ASSERT_OK(ch_config_set(c, "workdir", "/srv/churn", &err));
    ASSERT_STR_EQ(ch_config_str(c, "workdir"), "/srv/churn");
    ASSERT_STR_EQ(ch_config_origin(c, "workdir"), "set");
    ASSERT_OK(ch_config_set(c, "data.path", "", &err));
    ASSERT_STR_EQ(ch_config_str(c, "data.path"), "");
    /* Number. */
    ASSERT_OK(ch_config_set(c, "split.test_fraction", "0.3", &err));
    ASSERT(ch_config_num(c, "split.test_fraction") == 0.3);
    ASSERT_OK(ch_config_set(c, "split.test_fraction", "0.05", &err));
    ASSERT_OK(ch_config_set(c, "split.test_fraction", "0.5", &err)); /* bounds included */
    ASSERT_ERR(ch_config_set(c, "split.test_fraction", "0.51", &err), CH_ERANGE);
    ASSERT_CONTAINS(err.msg, "split.test_fraction");
    ASSERT_ERR(ch_config_set(c, "split.test_fraction", "abc", &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "split.test_fraction");
    ASSERT_ERR(ch_config_set(c, "split.test_fraction", "", &err), CH_EINVAL);
    ASSERT_ERR(ch_config_set(c, "split.test_fraction", " 0.2", &err), CH_EINVAL);
    ASSERT_ERR(ch_config_set(c, "split.test_fraction", "nan", &err), CH_EINVAL);
    /* A failed set leaves the value and its origin alone. */
    ASSERT(ch_config_num(c, "split.test_fraction") == 0.5);
    ASSERT_STR_EQ(ch_config_origin(c, "split.test_fraction"), "set");
    ASSERT_STR_EQ(ch_config_origin(c, "split.seed"), "default");
    /* Int. */
    ASSERT_OK(ch_config_set(c, "split.seed", "7", &err));
    ASSERT(ch_config_num(c, "split.seed") == 7);
    ASSERT_OK(ch_config_set(c, "split.seed", "1e3", &err));
    ASSERT(ch_config_num(c, "split.seed") == 1000);
    ASSERT_ERR(ch_config_set(c, "split.seed", "7.5", &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "split.seed");
    ASSERT_ERR(ch_config_set(c, "split.seed", "-1", &err), CH_ERANGE);
    ASSERT_ERR(ch_config_set(c, "data.simulate_rows", "99", &err), CH_ERANGE);
    ASSERT(ch_config_num(c, "split.seed") == 1000);
    /* Unknown. */
    ASSERT_ERR(ch_config_set(c, "split.sede", "1", &err), CH_ENOTFOUND);
    ASSERT_CONTAINS(err.msg, "split.sede");
    ASSERT_ERR(ch_config_set(c, "split", "1", NULL), CH_ENOTFOUND);
    ch_config_free(c);
}

TEST(set_overrides_file)
{
    ch_config *c = load_text("{\"split\": {\"seed\": 7}}");
    ASSERT_STR_EQ(ch_config_origin(c, "split.seed"), "file");
    ASSERT_OK(ch_config_set(c, "split.seed", "8", NULL));
    ASSERT(ch_config_num(c, "split.seed") == 8);
    ASSERT_STR_EQ(ch_config_origin(c, "split.seed"), "set");
    ch_config_free(c);
}

TEST(docs_match_generated_page)
{
    ch_buf b;
    char *want;
    size_t want_len;
    FILE *fp;
    char *have;
    long have_len;
    char path[1024];

    ch_buf_init(&b, DOC_MAX);
    ASSERT_OK(ch_config_docs(&b));
    want = ch_buf_take(&b, &want_len);
    ASSERT(want != NULL);
    for (size_t i = 0; ch_config_setting(i) != NULL; i++) {
        char cell[200];
        snprintf(cell, sizeof cell, "| `%s` |", ch_config_setting(i)->name);
        ASSERT_CONTAINS(want, cell);
        if (ch_config_setting(i)->env != NULL)
            ASSERT_CONTAINS(want, ch_config_setting(i)->env);
    }
    snprintf(path, sizeof path, "%s", ch_test_path("docs/config.md"));
    fp = fopen(path, "rb");
    if (fp == NULL)
        FAIL("docs/config.md is missing: generate it with `build/churn config docs > "
             "docs/config.md`");
    ASSERT(fseek(fp, 0, SEEK_END) == 0);
    have_len = ftell(fp);
    ASSERT(have_len >= 0);
    rewind(fp);
    have = ch_malloc((size_t)have_len + 1);
    ASSERT(have != NULL);
    ASSERT(fread(have, 1, (size_t)have_len, fp) == (size_t)have_len);
    have[have_len] = '\0';
    fclose(fp);
    if ((size_t)have_len != want_len || memcmp(have, want, want_len) != 0)
        FAIL("docs/config.md differs from `churn config docs`: regenerate it with "
             "`build/churn config docs > docs/config.md`");
    ch_free(have);
    ch_free(want);
}

TEST(docs_buffer_limit)
{
    ch_buf b;
    ch_buf_init(&b, 16);
    ASSERT_ERR(ch_config_docs(&b), CH_ELIMIT);
    ch_buf_reset(&b);
}

TEST(out_of_memory)
{
    const char *path = write_file("oom.json", "{\"split\": {\"seed\": 7}, \"workdir\": \"w\","
                                              " \"features\": {\"x\": 1}}");
    char p[700];
    ch_config *c = NULL;
    long total;

    snprintf(p, sizeof p, "%s", path);
    ch_alloc_fail_after(0);
    ASSERT_OK(ch_config_load(p, &c, NULL));
    total = ch_alloc_count();
    ch_config_free(c);
    ASSERT(total > 3);
    for (long n = 1; n <= total; n++) {
        ch_err rc;
        c = NULL;
        ch_alloc_fail_after(n);
        rc = ch_config_load(p, &c, NULL);
        ch_alloc_fail_after(0);
        if (rc != CH_ENOMEM)
            FAIL("allocation %ld of %ld: expected %s, got %s", n, total, ch_strerror(CH_ENOMEM),
                 ch_strerror(rc));
        ASSERT(c == NULL);
    }
    /* ch_config_set copies the text once: failing that keeps the old value. */
    ASSERT_OK(ch_config_new(&c, NULL));
    ch_alloc_fail_after(1);
    ASSERT_ERR(ch_config_set(c, "workdir", "x", NULL), CH_ENOMEM);
    ch_alloc_fail_after(0);
    ASSERT_STR_EQ(ch_config_str(c, "workdir"), "var");
    ASSERT_STR_EQ(ch_config_origin(c, "workdir"), "default");
    ch_config_free(c);
    for (long n = 1; n <= 3; n++) {
        ch_err rc;
        c = NULL;
        ch_alloc_fail_after(n);
        rc = ch_config_new(&c, NULL);
        ch_alloc_fail_after(0);
        ASSERT_ERR(rc, CH_ENOMEM);
        ASSERT(c == NULL);
    }
}

TEST_MAIN(T(settings_table_is_sane), T(defaults), T(load_project_config),
          T(file_values_and_origins), T(unknown_keys_are_errors_naming_the_key),
          T(unknown_key_with_empty_object_is_an_error), T(wrong_types_and_ranges),
          T(non_whole_number_in_file_for_an_int_setting), T(bad_files), T(set_string_number_int),
          T(set_overrides_file), T(docs_match_generated_page), T(docs_buffer_limit),
          T(out_of_memory))
