/*
 * test_record.c -- customer records from JSON: the document reader
 * (ch_record_from_json) and the single-pass reader (ch_record_parse)
 * must agree value for value, and report each problem with its field.
 */
#include <math.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/json.h"
#include "ch/record.h"
#include "../harness.h"

#define GOOD                                                                                       \
    "{\"customerID\":\"7590-VHVEG\",\"gender\":\"Female\",\"SeniorCitizen\":0,"                    \
    "\"Partner\":\"Yes\",\"Dependents\":false,\"tenure\":1,\"PhoneService\":\"No\","               \
    "\"MultipleLines\":\"No phone service\",\"InternetService\":\"DSL\","                          \
    "\"OnlineSecurity\":\"No\",\"OnlineBackup\":\"Yes\",\"DeviceProtection\":\"No\","              \
    "\"TechSupport\":\"No\",\"StreamingTV\":\"No\",\"StreamingMovies\":\"No\","                    \
    "\"Contract\":\"Month-to-month\",\"PaperlessBilling\":\"Yes\","                                \
    "\"PaymentMethod\":\"Electronic check\",\"MonthlyCharges\":29.85,\"TotalCharges\":null"

static ch_schema *telco(void)
{
    ch_schema *s = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_schema_load_file("config/telco.schema.json", &s, &err));
    return s;
}

/* Reads 'text' both ways; returns the fast reader's code and checks that
 * the two agree on success and on the field at fault. */
static ch_err both(const ch_schema *s, const char *text, ch_value *vals, ch_record_info *info,
                   ch_error *err)
{
    ch_value slow[64];
    ch_record_info si;
    ch_error se = {0};
    ch_json *doc = NULL;
    ch_err rs = CH_EFORMAT;
    size_t len = strlen(text);
    char *copy = ch_strndup(text, len);
    ch_err rf;
    ASSERT(copy != NULL);
    rf = ch_record_parse(s, copy, len, vals, info, err);
    if (ch_json_parse(text, len, &doc, &se) == CH_OK)
        rs = ch_record_from_json(s, doc, slow, &si, &se);
    ASSERT_INT_EQ(rf, rs);
    if (rf == CH_OK) {
        for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
            ASSERT_INT_EQ(vals[j].missing, slow[j].missing);
            if (vals[j].missing)
                continue;
            ASSERT(memcmp(&vals[j].num, &slow[j].num, sizeof(double)) == 0);
            ASSERT_INT_EQ(vals[j].len, slow[j].len);
            ASSERT(vals[j].len == 0 || memcmp(vals[j].str, slow[j].str, vals[j].len) == 0);
        }
    } else if (rf != CH_EFORMAT) {
        ASSERT_STR_EQ(info->field, si.field);
    }
    ch_json_free(doc);
    /* Strings in 'vals' point into 'copy': keep it for the caller's checks
     * by leaking it into a static slot freed at the next call. */
    {
        static char *keep;
        ch_free(keep);
        keep = copy;
    }
    return rf;
}

TEST(a_good_record_reads_the_same_both_ways)
{
    ch_schema *s = telco();
    ch_value v[64];
    ch_record_info info;
    ch_error err = {0};
    long j;
    ASSERT_OK(both(s, GOOD "}", v, &info, &err));
    ASSERT(info.id != NULL && info.id_len == 10 && memcmp(info.id, "7590-VHVEG", 10) == 0);
    j = ch_schema_find(s, "tenure");
    ASSERT(v[j].num == 1 && !v[j].missing);
    j = ch_schema_find(s, "TotalCharges");
    ASSERT(v[j].missing);
    j = ch_schema_find(s, "Dependents");
    ASSERT(v[j].num == 0);
    j = ch_schema_find(s, "Contract");
    ASSERT(v[j].len == 14 && memcmp(v[j].str, "Month-to-month", 14) == 0);
    ch_schema_free(s);
}

/* GOOD with 'from' replaced by 'to' (once), closed with '}'. */
static void variant(char *out, size_t cap, const char *from, const char *to)
{
    char base[2048];
    char *at;
    snprintf(base, sizeof base, "%s}", GOOD);
    at = strstr(base, from);
    ASSERT(at != NULL);
    snprintf(out, cap, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
}

TEST(escapes_whitespace_and_key_order)
{
    ch_schema *s = telco();
    ch_value v[64];
    ch_record_info info;
    ch_error err = {0};
    char text[2048];
    long j = ch_schema_find(s, "Contract");
    variant(text, sizeof text, "\"Month-to-month\"", " \"Month\\u002dto\\u002Dmonth\" ");
    ASSERT_OK(both(s, text, v, &info, &err));
    ASSERT(v[j].len == 14 && memcmp(v[j].str, "Month-to-month", 14) == 0);
    /* The target column is ignored; keys may come in any order. */
    variant(text, sizeof text, "{\"customerID\"", "{ \"Churn\" : \"Yes\",\n\t\"customerID\"");
    ASSERT_OK(both(s, text, v, &info, &err));
    /* A non-ASCII category (escaped and raw) is read as UTF-8. */
    variant(text, sizeof text, "\"Female\"", "\"F\\u00e9male\"");
    ASSERT_ERR(both(s, text, v, &info, &err), CH_ESCHEMA); /* not a category */
    ASSERT_STR_EQ(info.field, "gender");
    ch_schema_free(s);
}

TEST(problems_name_their_field)
{
    static const struct {
        const char *from, *to;
        ch_err want;
        const char *field;
    } cases[] = {
        {"\"tenure\":1,", "\"tenure\":[],", CH_EINVAL, "tenure"},
        {"\"tenure\":1,", "\"tenure\":\"1\",", CH_EINVAL, "tenure"},
        {"\"tenure\":1,", "\"tenure\":1.5,", CH_ERANGE, "tenure"},
        {"\"tenure\":1,", "", CH_ESCHEMA, "tenure"},
        {"\"tenure\":1,", "\"tenure\":1,\"shoe_size\":44,", CH_EINVAL, "shoe_size"},
        {"29.85", "-9.85", CH_ERANGE, "MonthlyCharges"},
        {"Month-to-month", "Month-to-moon", CH_ESCHEMA, "Contract"},
        {"\"Contract\":\"Month-to-month\"", "\"Contract\":3", CH_EINVAL, "Contract"},
        {"\"Partner\":\"Yes\"", "\"Partner\":\"Maybe\"", CH_ESCHEMA, "Partner"},
        {"\"Partner\":\"Yes\"", "\"Partner\":2", CH_EINVAL, "Partner"},
        {"\"customerID\":\"7590-VHVEG\"", "\"customerID\":\"\"", CH_EINVAL, "customerID"},
        {"\"customerID\":\"7590-VHVEG\"", "\"customerID\":true", CH_EINVAL, "customerID"},
    };
    ch_schema *s = telco();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ch_value v[64];
        ch_record_info info;
        ch_error err = {0};
        char text[2048];
        variant(text, sizeof text, cases[i].from, cases[i].to);
        ASSERT_ERR(both(s, text, v, &info, &err), cases[i].want);
        ASSERT_STR_EQ(info.field, cases[i].field);
        ASSERT(strstr(err.msg, cases[i].field) != NULL);
    }
    {
        /* A category the schema keeps is scored, with a warning. */
        ch_value v[64];
        ch_record_info info;
        ch_error err = {0};
        char text[2048];
        variant(text, sizeof text, "Electronic check", "Electronic cheque");
        ASSERT_OK(both(s, text, v, &info, &err));
        ASSERT_INT_EQ(info.n_warnings, 1);
        ASSERT_INT_EQ(info.warning_col[0], ch_schema_find(s, "PaymentMethod"));
    }
    ch_schema_free(s);
}

TEST(malformed_json_is_refused_by_both)
{
    static const char *const bad[] = {
        "",
        "{",
        "{\"tenure\":1,}",
        "{\"tenure\":NaN}",
        "{\"tenure\":Infinity}",
        "{\"tenure\" 1}",
        "{} x",
        "{\"gender\":\"\\x\"}",
        "{\"gender\":\"\\ud800\"}",
        "{\"tenure\":01}",
        "{\"tenure\":1e}",
        "{\"tenure\":-}",
        "{'a':1}",
        "{\"Partner\":tru}",
        "{\"tenure\":1e999}",
    };
    ch_schema *s = telco();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ch_value v[64];
        ch_record_info info;
        ch_error err = {0};
        char *copy = ch_strdup(bad[i]);
        ch_json *doc = NULL;
        ASSERT_ERR(ch_record_parse(s, copy, strlen(copy), v, &info, &err), CH_EFORMAT);
        ASSERT(strstr(err.msg, "line 1, column") != NULL);
        ASSERT(ch_json_parse(bad[i], strlen(bad[i]), &doc, &err) != CH_OK);
        ch_free(copy);
    }
    ch_schema_free(s);
}

TEST(structure_errors)
{
    ch_schema *s = telco();
    ch_value v[64];
    ch_record_info info;
    ch_error err = {0};
    char text[2048];
    /* Not an object. */
    ASSERT_ERR(both(s, "[1,2]", v, &info, &err), CH_EINVAL);
    {
        char x[] = "\"x\"";
        ASSERT_ERR(ch_record_parse(s, x, 3, v, &info, &err), CH_EINVAL);
    }
    /* Duplicate keys: the general parser refuses them as well. */
    variant(text, sizeof text, "\"tenure\":1,", "\"tenure\":1,\"tenure\":2,");
    ASSERT_ERR(both(s, text, v, &info, &err), CH_EFORMAT);
    /* -0 is the integer 0, as the general parser reads it. */
    variant(text, sizeof text, "\"SeniorCitizen\":0", "\"SeniorCitizen\":-0");
    ASSERT_OK(both(s, text, v, &info, &err));
    /* Integers beyond 64 bits are refused by both; the largest one is read. */
    variant(text, sizeof text, "\"customerID\":\"7590-VHVEG\"",
            "\"customerID\":99999999999999999999");
    ASSERT_ERR(both(s, text, v, &info, &err), CH_EFORMAT);
    variant(text, sizeof text, "\"customerID\":\"7590-VHVEG\"",
            "\"customerID\":-9223372036854775808");
    ASSERT_ERR(both(s, text, v, &info, &err), CH_EINVAL); /* read, but no id is that large */
    variant(text, sizeof text, "\"customerID\":\"7590-VHVEG\"", "\"customerID\":123456789");
    ASSERT_OK(both(s, text, v, &info, &err));
    ASSERT(info.id_len == 9 && memcmp(info.id, "123456789", 9) == 0);
    ch_schema_free(s);
}

TEST_MAIN(T(a_good_record_reads_the_same_both_ways), T(escapes_whitespace_and_key_order),
          T(problems_name_their_field), T(malformed_json_is_refused_by_both), T(structure_errors))
