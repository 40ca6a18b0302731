/*
 * test_inputs.c -- the input values codec (inputs.h) over the Telco
 * schema: round trips with missing values and kept unknown categories,
 * the documented byte layout, every truncation and corruption of a valid
 * blob refused with CH_EFORMAT, random bytes never crashing, encoding
 * limits, and no allocation anywhere.
 *
 * Blobs under test are copied into heap buffers of exactly their length,
 * so that the ASan build catches any read past 'len'.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/inputs.h"
#include "ch/record.h"
#include "../harness.h"

#define MAX_COLS 64

/* One Telco customer with TotalCharges missing (null). */
#define HEAD                                                                                       \
    "{\"customerID\":\"7590-VHVEG\",\"gender\":\"Female\",\"SeniorCitizen\":0,"                    \
    "\"Partner\":\"Yes\",\"Dependents\":false,\"tenure\":1,\"PhoneService\":\"No\","               \
    "\"MultipleLines\":\"No phone service\",\"InternetService\":\"DSL\","                          \
    "\"OnlineSecurity\":\"No\",\"OnlineBackup\":\"Yes\",\"DeviceProtection\":\"No\","              \
    "\"TechSupport\":\"No\",\"StreamingTV\":\"No\",\"StreamingMovies\":\"No\","                    \
    "\"Contract\":\"Month-to-month\",\"PaperlessBilling\":\"Yes\",\"PaymentMethod\":"
#define TAIL ",\"MonthlyCharges\":29.85,\"TotalCharges\":null}"

/* A schema with no target, no id and every kind, where every categorical
 * column keeps unknown values. */
#define SMALL_SCHEMA                                                                               \
    "{\"format\":\"churn-schema\",\"version\":1,\"name\":\"small\",\"columns\":["                  \
    "{\"name\":\"plan\",\"kind\":\"categorical\",\"categories\":[\"a\",\"bb\",\"cc\"],"            \
    "\"on_unknown\":\"keep\",\"nullable\":true},"                                                  \
    "{\"name\":\"x\",\"kind\":\"numeric\",\"nullable\":true},"                                     \
    "{\"name\":\"n\",\"kind\":\"integer\"},"                                                       \
    "{\"name\":\"flag\",\"kind\":\"binary\",\"nullable\":true}]}"

static ch_schema *telco(void)
{
    ch_schema *s = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_schema_load_file("config/telco.schema.json", &s, &err));
    return s;
}

static ch_schema *small(void)
{
    ch_schema *s = NULL;
    ch_json *doc = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_json_parse(SMALL_SCHEMA, strlen(SMALL_SCHEMA), &doc, &err));
    if (ch_schema_from_json(doc, &s, &err) != CH_OK)
        FAIL("small schema: %s", err.msg);
    ch_json_free(doc);
    return s;
}

/* Parses a Telco record whose PaymentMethod is the JSON text 'payment'.
 * 'text' holds the request body: category strings in 'vals' point into
 * it, so it must outlive them. */
static void parse_telco(const ch_schema *s, const char *payment, char *text, size_t cap,
                        ch_value *vals)
{
    ch_record_info info;
    ch_error err = {0};
    int n = snprintf(text, cap, "%s%s%s", HEAD, payment, TAIL);
    ASSERT(n > 0 && (size_t)n < cap);
    if (ch_record_parse(s, text, (size_t)n, vals, &info, &err) != CH_OK)
        FAIL("record: %s", err.msg);
}

static unsigned char *heap_copy(const unsigned char *p, size_t len)
{
    unsigned char *q = ch_malloc(len > 0 ? len : 1);
    ASSERT(q != NULL);
    if (len > 0)
        memcpy(q, p, len);
    return q;
}

static size_t encode_ok(const ch_schema *s, const ch_value *vals, unsigned char *out, size_t cap)
{
    size_t len = 0;
    ch_error err = {0};
    ch_err rc = ch_inputs_encode(s, vals, out, cap, &len, &err);
    if (rc != CH_OK)
        FAIL("encode: %s: %s", ch_strerror(rc), err.msg);
    return len;
}

/* 'a' and 'b' hold the same record: the same missing flags, numbers bit
 * for bit, the same category bytes. */
static void same_values(const ch_schema *s, const ch_value *a, const ch_value *b)
{
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        ch_kind k = ch_schema_col_ref(s, j)->kind;
        if (k == CH_KIND_ID || k == CH_KIND_TARGET) {
            ASSERT_INT_EQ(b[j].missing, 1);
            continue;
        }
        ASSERT_INT_EQ(a[j].missing, b[j].missing);
        if (a[j].missing)
            continue;
        if (k == CH_KIND_CATEGORICAL) {
            ASSERT_INT_EQ(a[j].len, b[j].len);
            ASSERT(a[j].len == 0 || memcmp(a[j].str, b[j].str, a[j].len) == 0);
        } else {
            ASSERT(memcmp(&a[j].num, &b[j].num, sizeof(double)) == 0);
        }
    }
}

/* ---- round trips ------------------------------------------------------ */

TEST(round_trip_known_missing_and_unknown)
{
    /* Known, unknown and kept, missing (""), unknown with non-ASCII text. */
    static const char *const payments[] = {"\"Electronic check\"",
                                           "\"Credit card (automatic)\"",
                                           "\"Bitcoin\"",
                                           "\"\"",
                                           "\"Gift card \\u00e9\\u00e9\"",
                                           "\"Mailed check\""};
    ch_schema *s = telco();
    size_t n = ch_schema_n_cols(s);
    long pay = ch_schema_find(s, "PaymentMethod");
    long total = ch_schema_find(s, "TotalCharges");

    ASSERT(n <= MAX_COLS && pay >= 0 && total >= 0);
    for (size_t t = 0; t < sizeof payments / sizeof payments[0]; t++) {
        char text[1024];
        ch_value vals[MAX_COLS];
        ch_value back[MAX_COLS];
        double num[MAX_COLS];
        int32_t code[MAX_COLS];
        const char *ut[MAX_COLS];
        size_t ul[MAX_COLS];
        unsigned char blob[320];
        unsigned char again[320];
        unsigned char *heap;
        ch_error err = {0};
        size_t len;
        size_t len2;

        parse_telco(s, payments[t], text, sizeof text, vals);
        len = encode_ok(s, vals, blob, sizeof blob);
        heap = heap_copy(blob, len);
        ASSERT_OK(ch_inputs_decode(s, heap, len, num, code, ut, ul, &err));
        for (size_t j = 0; j < n; j++) {
            const ch_schema_col *c = ch_schema_col_ref(s, j);
            if (c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET) {
                ASSERT(isnan(num[j]));
                ASSERT_INT_EQ(code[j], -1);
                ASSERT(ut[j] == NULL && ul[j] == 0);
            } else if (c->kind == CH_KIND_CATEGORICAL) {
                ASSERT(isnan(num[j]));
                if (vals[j].missing) {
                    ASSERT_INT_EQ(code[j], CH_INPUTS_CODE_MISSING); /* "" is a missing token */
                    ASSERT(ut[j] == NULL && ul[j] == 0);
                } else if (code[j] >= 0) {
                    ASSERT(ut[j] == NULL);
                    ASSERT_INT_EQ(c->category_lens[code[j]], vals[j].len);
                    ASSERT(memcmp(c->categories[code[j]], vals[j].str, vals[j].len) == 0);
                } else {
                    ASSERT_INT_EQ(code[j], CH_INPUTS_CODE_UNKNOWN);
                    ASSERT_INT_EQ((long)j, pay);
                    ASSERT_INT_EQ(ul[j], vals[j].len);
                    ASSERT(ul[j] == 0 || memcmp(ut[j], vals[j].str, ul[j]) == 0);
                    /* Borrowed from the blob. */
                    ASSERT((const unsigned char *)ut[j] >= heap &&
                           (const unsigned char *)ut[j] + ul[j] <= heap + len);
                }
            } else if ((long)j == total) {
                ASSERT(isnan(num[j])); /* sent as null */
                ASSERT_INT_EQ(code[j], -1);
            } else {
                ASSERT(memcmp(&num[j], &vals[j].num, sizeof(double)) == 0);
                ASSERT_INT_EQ(code[j], -1);
            }
        }
        /* Back to a record, and that record encodes to the same bytes. */
        ASSERT_OK(ch_inputs_to_values(s, heap, len, back, &err));
        same_values(s, vals, back);
        len2 = encode_ok(s, back, again, sizeof again);
        ASSERT_INT_EQ(len2, len);
        ASSERT(memcmp(again, blob, len) == 0);
        /* All known: 1 + 8 numbers of 8 bytes + 11 categories of 2. */
        if (code[pay] != CH_INPUTS_CODE_UNKNOWN)
            ASSERT_INT_EQ(len, 87);
        else
            ASSERT_INT_EQ(len, 87 + 1 + vals[pay].len);
        ch_free(heap);
    }
    ch_schema_free(s);
}

/* An unknown category longer than 64 bytes keeps the longest prefix that
 * ends at a character boundary. */
TEST(long_unknown_text_is_cut_at_a_character)
{
    ch_schema *s = telco();
    long pay = ch_schema_find(s, "PaymentMethod");
    char payment[400];
    char text[1024];
    ch_value vals[MAX_COLS];
    ch_value back[MAX_COLS];
    unsigned char blob[320];
    int32_t code[MAX_COLS];
    double num[MAX_COLS];
    const char *ut[MAX_COLS];
    size_t ul[MAX_COLS];
    ch_error err = {0};
    size_t len;
    int k;

    /* "Crypto " (7 bytes) then 40 two-byte characters: byte 64 is in the
     * middle of one, so 63 bytes are kept. */
    k = snprintf(payment, sizeof payment, "\"Crypto ");
    for (int i = 0; i < 40; i++)
        k += snprintf(payment + k, sizeof payment - (size_t)k, "\\u00e9");
    snprintf(payment + k, sizeof payment - (size_t)k, "\"");
    parse_telco(s, payment, text, sizeof text, vals);
    ASSERT_INT_EQ(vals[pay].len, 87);
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_OK(ch_inputs_decode(s, blob, len, num, code, ut, ul, &err));
    ASSERT_INT_EQ(code[pay], CH_INPUTS_CODE_UNKNOWN);
    ASSERT_INT_EQ(ul[pay], 63);
    ASSERT(memcmp(ut[pay], vals[pay].str, 63) == 0);
    ASSERT_INT_EQ(len, 87 + 1 + 63);
    ASSERT_OK(ch_inputs_to_values(s, blob, len, back, &err));
    ASSERT_INT_EQ(back[pay].len, 63);

    /* ASCII is cut at exactly 64. */
    k = snprintf(payment, sizeof payment, "\"");
    for (int i = 0; i < 100; i++)
        payment[k++] = (char)('a' + i % 26);
    snprintf(payment + k, sizeof payment - (size_t)k, "\"");
    parse_telco(s, payment, text, sizeof text, vals);
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_OK(ch_inputs_decode(s, blob, len, num, code, ut, ul, &err));
    ASSERT_INT_EQ(ul[pay], 64);
    ASSERT(memcmp(ut[pay], "abcdefghij", 10) == 0);
    ch_schema_free(s);
}

/* The bytes are exactly what docs/registry.md describes. */
TEST(documented_byte_layout)
{
    static const unsigned char one[8] = {0, 0, 0, 0, 0, 0, 0xF0, 0x3F};  /* 1.0 */
    static const unsigned char nan_[8] = {0, 0, 0, 0, 0, 0, 0xF8, 0x7F}; /* missing */
    static const unsigned char m2985[8] = {0x9A, 0x99, 0x99, 0x99, 0x99, /* 29.85 */
                                           0xD9, 0x3D, 0x40};
    ch_schema *s = telco();
    char text[1024];
    ch_value vals[MAX_COLS];
    unsigned char blob[320];
    size_t len;

    parse_telco(s, "\"Bitcoin\"", text, sizeof text, vals);
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_INT_EQ(len, 87 + 8);
    ASSERT_INT_EQ(blob[0], 1); /* the format */
    /* gender "Female": code 0 of ["Female", "Male"]. */
    ASSERT_INT_EQ(blob[1], 0);
    ASSERT_INT_EQ(blob[2], 0);
    /* SeniorCitizen 0, Partner "Yes" = 1, Dependents false = 0, tenure 1. */
    for (int i = 0; i < 8; i++)
        ASSERT_INT_EQ(blob[3 + i], 0);
    ASSERT(memcmp(blob + 11, one, 8) == 0);
    for (int i = 0; i < 8; i++)
        ASSERT_INT_EQ(blob[19 + i], 0);
    ASSERT(memcmp(blob + 27, one, 8) == 0);
    /* PhoneService "No" = 0, then MultipleLines "No phone service": code 2. */
    ASSERT_INT_EQ(blob[43], 2);
    ASSERT_INT_EQ(blob[44], 0);
    /* InternetService "DSL" code 0 ... Contract "Month-to-month" code 0 at
     * 45 + 2 * 7 = 59; PaperlessBilling 1 at 61; PaymentMethod at 69: the
     * unknown marker, length 7, "Bitcoin". */
    ASSERT(memcmp(blob + 61, one, 8) == 0);
    ASSERT_INT_EQ(blob[69], 0xFE);
    ASSERT_INT_EQ(blob[70], 0xFF);
    ASSERT_INT_EQ(blob[71], 7);
    ASSERT(memcmp(blob + 72, "Bitcoin", 7) == 0);
    /* MonthlyCharges 29.85, TotalCharges missing: a NaN. */
    ASSERT(memcmp(blob + 79, m2985, 8) == 0);
    ASSERT(memcmp(blob + 87, nan_, 8) == 0);
    ch_schema_free(s);
}

/* A schema without id or target, with a missing category, a missing
 * number and a missing binary. */
TEST(round_trip_every_kind)
{
    ch_schema *s = small();
    ch_value vals[4];
    ch_value back[4];
    unsigned char blob[64];
    double num[4];
    int32_t code[4];
    ch_error err = {0};
    size_t len;

    memset(vals, 0, sizeof vals);
    vals[0].missing = 1;
    vals[1].missing = 1;
    vals[2].num = -7;
    vals[3].num = 1;
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_INT_EQ(len, 1 + 2 + 8 + 8 + 8);
    ASSERT_INT_EQ(blob[1], 0xFF);
    ASSERT_INT_EQ(blob[2], 0xFF);
    ASSERT_OK(ch_inputs_decode(s, blob, len, num, code, NULL, NULL, &err));
    ASSERT_INT_EQ(code[0], CH_INPUTS_CODE_MISSING);
    ASSERT(isnan(num[0]) && isnan(num[1]));
    ASSERT(num[2] == -7 && num[3] == 1);
    ASSERT_OK(ch_inputs_to_values(s, blob, len, back, &err));
    same_values(s, vals, back);

    /* A non-missing NaN is written as missing; infinities and -0 stay. */
    vals[0].missing = 0;
    vals[0].str = "cc";
    vals[0].len = 2;
    vals[1].missing = 0;
    vals[1].num = NAN;
    vals[2].num = -0.0;
    vals[3].missing = 1;
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_INT_EQ(blob[1], 2);
    ASSERT_OK(ch_inputs_to_values(s, blob, len, back, &err));
    ASSERT_INT_EQ(back[1].missing, 1);
    ASSERT(back[2].num == 0 && signbit(back[2].num));
    ASSERT_INT_EQ(back[3].missing, 1);
    ASSERT_INT_EQ(back[0].len, 2);
    ASSERT(back[0].str == ch_schema_col_ref(s, 0)->categories[2]); /* the schema's text */
    vals[1].num = INFINITY;
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_OK(ch_inputs_to_values(s, blob, len, back, &err));
    ASSERT(back[1].missing == 0 && isinf(back[1].num));

    /* Matching is by length and bytes: "b" and "bbb" are unknown, "" too. */
    vals[0].str = "bbb";
    vals[0].len = 2; /* only "bb" counts */
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_INT_EQ(blob[1], 1);
    vals[0].len = 1;
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_INT_EQ(blob[1], 0xFE);
    ASSERT_INT_EQ(blob[3], 1);
    vals[0].str = NULL;
    vals[0].len = 0;
    len = encode_ok(s, vals, blob, sizeof blob);
    ASSERT_INT_EQ(blob[1], 0xFE);
    ASSERT_INT_EQ(blob[3], 0);
    ASSERT_OK(ch_inputs_to_values(s, blob, len, back, &err));
    ASSERT(back[0].missing == 0 && back[0].len == 0);
    ch_schema_free(s);
}

/* The library writes exactly the blobs in tests/cases/inputs/, which were
 * written from the documented format by another encoder. */
TEST(case_files_match_the_documented_format)
{
    static const struct {
        const char *file;
        const char *payment;
    } cases[] = {
        {"tests/cases/inputs/telco_missing.bin", "\"Electronic check\""},
        {"tests/cases/inputs/telco_unknown.bin", "\"Bitcoin\""},
        {"tests/cases/inputs/telco_long_unknown.bin",
         "\"Crypto \u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
         "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
         "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
         "\u00e9\""},
    };
    ch_schema *s = telco();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        ch_value vals[MAX_COLS];
        unsigned char blob[320];
        unsigned char want[400];
        size_t len;
        size_t n;
        FILE *f = fopen(ch_test_path(cases[i].file), "rb");
        if (f == NULL)
            FAIL("cannot open %s", cases[i].file);
        n = fread(want, 1, sizeof want, f);
        fclose(f);
        parse_telco(s, cases[i].payment, text, sizeof text, vals);
        len = encode_ok(s, vals, blob, sizeof blob);
        if (len != n || memcmp(blob, want, n) != 0)
            FAIL("%s: the library writes %zu other bytes than the file's %zu", cases[i].file, len,
                 n);
    }
    ch_schema_free(s);
}

/* ---- limits and arguments ------------------------------------------------ */

TEST(encode_limits_and_arguments)
{
    ch_schema *s = telco();
    char text[1024];
    ch_value vals[MAX_COLS];
    unsigned char blob[320];
    unsigned char small_out[200];
    ch_error err = {0};
    size_t len;
    size_t got;

    parse_telco(s, "\"Bitcoin\"", text, sizeof text, vals);
    len = encode_ok(s, vals, blob, sizeof blob);
    /* Every capacity below the length is CH_ELIMIT and leaves '*len'. */
    for (size_t cap = 0; cap < len; cap++) {
        got = 12345;
        ASSERT_ERR(ch_inputs_encode(s, vals, small_out, cap, &got, &err), CH_ELIMIT);
        ASSERT_INT_EQ(got, 12345);
        ASSERT_INT_EQ(err.code, CH_ELIMIT);
    }
    ASSERT_CONTAINS(err.msg, "needs more than");
    ASSERT_OK(ch_inputs_encode(s, vals, small_out, len, &got, &err));
    ASSERT_INT_EQ(got, len);
    ASSERT(memcmp(small_out, blob, len) == 0);

    ASSERT_ERR(ch_inputs_encode(NULL, vals, blob, sizeof blob, &got, &err), CH_EINVAL);
    ASSERT_ERR(ch_inputs_encode(s, NULL, blob, sizeof blob, &got, &err), CH_EINVAL);
    ASSERT_ERR(ch_inputs_encode(s, vals, NULL, sizeof blob, &got, &err), CH_EINVAL);
    ASSERT_ERR(ch_inputs_encode(s, vals, blob, sizeof blob, NULL, NULL), CH_EINVAL);
    {
        /* A kept text that is not UTF-8 (a caller bug: both readers check). */
        long pay = ch_schema_find(s, "PaymentMethod");
        vals[pay].str = "ab\xff";
        vals[pay].len = 3;
        ASSERT_ERR(ch_inputs_encode(s, vals, blob, sizeof blob, &got, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "PaymentMethod");
        vals[pay].str = NULL;
        vals[pay].len = 4;
        ASSERT_ERR(ch_inputs_encode(s, vals, blob, sizeof blob, &got, &err), CH_EINVAL);
    }
    {
        double num[MAX_COLS];
        int32_t code[MAX_COLS];
        const char *ut[MAX_COLS];
        ch_value v2[MAX_COLS];
        ASSERT_ERR(ch_inputs_decode(NULL, blob, len, num, code, NULL, NULL, &err), CH_EINVAL);
        ASSERT_ERR(ch_inputs_decode(s, NULL, len, num, code, NULL, NULL, &err), CH_EINVAL);
        ASSERT_ERR(ch_inputs_decode(s, blob, len, NULL, code, NULL, NULL, &err), CH_EINVAL);
        ASSERT_ERR(ch_inputs_decode(s, blob, len, num, NULL, NULL, NULL, &err), CH_EINVAL);
        ASSERT_ERR(ch_inputs_decode(s, blob, len, num, code, ut, NULL, &err), CH_EINVAL);
        ASSERT_ERR(ch_inputs_to_values(s, blob, len, NULL, &err), CH_EINVAL);
        ASSERT_ERR(ch_inputs_to_values(NULL, blob, len, v2, NULL), CH_EINVAL);
        /* NULL with length 0 is an empty blob, not a crash. */
        ASSERT_ERR(ch_inputs_decode(s, NULL, 0, num, code, NULL, NULL, &err), CH_EFORMAT);
        ASSERT_CONTAINS(err.msg, "empty");
    }
    ch_schema_free(s);
}

/* The codec allocates nothing: it works with every allocation failing. */
TEST(no_allocation)
{
    ch_schema *s = telco();
    char text[1024];
    ch_value vals[MAX_COLS];
    ch_value back[MAX_COLS];
    unsigned char blob[320];
    double num[MAX_COLS];
    int32_t code[MAX_COLS];
    ch_error err = {0};
    size_t len = 0;
    ch_err rc1;
    ch_err rc2;
    ch_err rc3;

    parse_telco(s, "\"Bitcoin\"", text, sizeof text, vals);
    ch_alloc_fail_after(1);
    rc1 = ch_inputs_encode(s, vals, blob, sizeof blob, &len, &err);
    rc2 = ch_inputs_decode(s, blob, len, num, code, NULL, NULL, &err);
    rc3 = ch_inputs_to_values(s, blob, len, back, &err);
    ch_alloc_fail_after(0);
    ASSERT_OK(rc1);
    ASSERT_OK(rc2);
    ASSERT_OK(rc3);
    ch_schema_free(s);
}

/* ---- malformed blobs ----------------------------------------------------- */

/* Decodes 'p' ('len' bytes, copied to the heap) both ways; both must give
 * CH_EFORMAT with a message and leave the outputs untouched. Returns the
 * message of the first. */
static const char *refused(const ch_schema *s, const unsigned char *p, size_t len)
{
    static ch_error err;
    size_t n = ch_schema_n_cols(s);
    double num[MAX_COLS];
    int32_t code[MAX_COLS];
    const char *ut[MAX_COLS];
    size_t ul[MAX_COLS];
    ch_value vals[MAX_COLS];
    ch_error e2 = {0};
    unsigned char *heap = heap_copy(p, len);

    for (size_t j = 0; j < n; j++) {
        num[j] = 42;
        code[j] = 42;
        ut[j] = "x";
        ul[j] = 42;
        vals[j].num = 42;
        vals[j].missing = 42;
    }
    memset(&err, 0, sizeof err);
    ASSERT_ERR(ch_inputs_decode(s, heap, len, num, code, ut, ul, &err), CH_EFORMAT);
    ASSERT_ERR(ch_inputs_to_values(s, heap, len, vals, &e2), CH_EFORMAT);
    ASSERT_INT_EQ(err.code, CH_EFORMAT);
    ASSERT(err.msg[0] != '\0');
    ASSERT_STR_EQ(err.msg, e2.msg);
    for (size_t j = 0; j < n; j++)
        ASSERT(num[j] == 42 && code[j] == 42 && ul[j] == 42 && vals[j].missing == 42 &&
               strcmp(ut[j], "x") == 0);
    ch_free(heap);
    return err.msg;
}

TEST(every_truncation_is_refused)
{
    ch_schema *s = telco();
    char text[1024];
    ch_value vals[MAX_COLS];
    unsigned char blob[320];
    size_t len;

    parse_telco(s, "\"Bitcoin\"", text, sizeof text, vals);
    len = encode_ok(s, vals, blob, sizeof blob);
    for (size_t cut = 0; cut < len; cut++)
        refused(s, blob, cut);
    ASSERT_CONTAINS(refused(s, blob, 0), "empty");
    ASSERT_CONTAINS(refused(s, blob, 2), "column 'gender'");
    ASSERT_CONTAINS(refused(s, blob, 2), "byte 1");
    ASSERT_CONTAINS(refused(s, blob, 70), "category code");
    ASSERT_CONTAINS(refused(s, blob, 71), "length");
    ASSERT_CONTAINS(refused(s, blob, 75), "inside the unknown category's text");
    ASSERT_CONTAINS(refused(s, blob, len - 1), "column 'TotalCharges'");
    ASSERT_CONTAINS(refused(s, blob, len - 1), "ends inside the number");
    ch_schema_free(s);
}

TEST(corrupt_blobs_are_refused)
{
    ch_schema *s = telco();
    char text[1024];
    ch_value vals[MAX_COLS];
    unsigned char blob[320];
    unsigned char bad[330];
    size_t len;

    parse_telco(s, "\"Bitcoin\"", text, sizeof text, vals);
    len = encode_ok(s, vals, blob, sizeof blob);

    memcpy(bad, blob, len);
    bad[0] = 2;
    ASSERT_CONTAINS(refused(s, bad, len), "format 2, this build reads format 1");
    bad[0] = 0;
    ASSERT_CONTAINS(refused(s, bad, len), "format 0");

    /* gender has two categories: code 2 is out of range, 0xFFFD too. */
    memcpy(bad, blob, len);
    bad[1] = 2;
    ASSERT_CONTAINS(refused(s, bad, len), "column 'gender': category code 2 is out of range");
    bad[1] = 0xFD;
    bad[2] = 0xFF;
    ASSERT_CONTAINS(refused(s, bad, len), "65533");

    /* The unknown text's length: above 64, or past the end. */
    memcpy(bad, blob, len);
    bad[71] = 65;
    ASSERT_CONTAINS(refused(s, bad, len), "longer than 64");
    bad[71] = 30;
    ASSERT_CONTAINS(refused(s, bad, len), "PaymentMethod");

    /* Not UTF-8. */
    memcpy(bad, blob, len);
    bad[73] = 0xC3;
    ASSERT_CONTAINS(refused(s, bad, len), "not UTF-8");

    /* A byte after the last column (a blob of another schema, say). */
    memcpy(bad, blob, len);
    bad[len] = 0;
    ASSERT_CONTAINS(refused(s, bad, len + 1), "1 bytes after the last column");

    /* The Telco blob read with another schema. */
    {
        ch_schema *o = small();
        refused(o, blob, len);
        ch_schema_free(o);
    }
    ch_schema_free(s);
}

/* ---- random input --------------------------------------------------------- */

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* A blob that decoded: its record encodes to a blob that decodes to the
 * same values, and encoding is then a fixed point. */
static void check_accepted(const ch_schema *s, const unsigned char *p, size_t len)
{
    ch_value v1[MAX_COLS];
    ch_value v2[MAX_COLS];
    unsigned char b1[400];
    unsigned char b2[400];
    size_t l1;
    size_t l2;
    ch_error err = {0};

    ASSERT_OK(ch_inputs_to_values(s, p, len, v1, &err));
    l1 = encode_ok(s, v1, b1, sizeof b1);
    ASSERT(l1 <= len); /* unknown texts may become codes, never longer */
    ASSERT_OK(ch_inputs_to_values(s, b1, l1, v2, &err));
    same_values(s, v1, v2);
    l2 = encode_ok(s, v2, b2, sizeof b2);
    ASSERT_INT_EQ(l2, l1);
    ASSERT(memcmp(b1, b2, l1) == 0);
}

TEST(random_bytes_never_crash)
{
    ch_schema *s = telco();
    ch_schema *o = small();
    char text[1024];
    ch_value vals[MAX_COLS];
    unsigned char blob[320];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    size_t len;
    long accepted = 0;
    long refused_n = 0;

    parse_telco(s, "\"Bitcoin\"", text, sizeof text, vals);
    len = encode_ok(s, vals, blob, sizeof blob);
    for (int round = 0; round < 200000; round++) {
        const ch_schema *sch = round % 4 == 3 ? o : s;
        unsigned char buf[256];
        unsigned char *heap;
        size_t n;
        double num[MAX_COLS];
        int32_t code[MAX_COLS];
        const char *ut[MAX_COLS];
        size_t ul[MAX_COLS];
        ch_error err = {0};
        ch_err rc;

        if (round % 2 == 0) {
            /* A valid blob with a few bytes changed, and maybe cut or
             * extended. */
            memcpy(buf, blob, len);
            n = len;
            for (int f = 0, nf = 1 + (int)(rng_next(&x) % 3); f < nf; f++)
                buf[rng_next(&x) % len] = (unsigned char)rng_next(&x);
            if (rng_next(&x) % 4 == 0)
                n = (size_t)(rng_next(&x) % (len + 8));
            for (size_t i = len; i < n; i++)
                buf[i] = (unsigned char)rng_next(&x);
        } else {
            n = (size_t)(rng_next(&x) % 120);
            for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char)rng_next(&x);
            if (n > 0 && rng_next(&x) % 2 == 0)
                buf[0] = 1;
        }
        heap = heap_copy(buf, n);
        rc = ch_inputs_decode(sch, heap, n, num, code, ut, ul, &err);
        if (rc == CH_OK) {
            accepted++;
            check_accepted(sch, heap, n);
        } else {
            ASSERT_INT_EQ(rc, CH_EFORMAT);
            ASSERT(memchr(err.msg, '\0', sizeof err.msg) != NULL && err.msg[0] != '\0');
            refused_n++;
        }
        ch_free(heap);
    }
    printf("    %ld accepted, %ld refused\n", accepted, refused_n);
    ASSERT(accepted > 1000 && refused_n > 1000);
    ch_schema_free(o);
    ch_schema_free(s);
}

/* ---- cost -------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Encoding runs for every prediction: report its cost per record. The
 * bound is loose (a busy machine); it is typically well under 0.2 us. */
TEST(encode_cost)
{
    ch_schema *s = telco();
    char text[1024];
    ch_value vals[MAX_COLS];
    unsigned char blob[320];
    ch_value back[MAX_COLS];
    size_t len = 0;
    size_t sum = 0;
    ch_error err = {0};
    double t0;
    double enc;
    double dec;
    const int n = 1000000;

    parse_telco(s, "\"Mailed check\"", text, sizeof text, vals);
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        vals[5].num = (double)(i & 63); /* tenure: keep the loop honest */
        if (ch_inputs_encode(s, vals, blob, sizeof blob, &len, &err) != CH_OK)
            FAIL("encode: %s", err.msg);
        sum += blob[len - 9];
    }
    enc = (now_s() - t0) / n;
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        if (ch_inputs_to_values(s, blob, len, back, &err) != CH_OK)
            FAIL("decode: %s", err.msg);
        sum += back[1].len;
    }
    dec = (now_s() - t0) / n;
    printf("    encode %.0f ns, decode to values %.0f ns per Telco record (%zu bytes; %zu)\n",
           enc * 1e9, dec * 1e9, len, sum & 1);
    ASSERT(enc < 5e-6);
    ch_schema_free(s);
}

TEST_MAIN(T(round_trip_known_missing_and_unknown), T(long_unknown_text_is_cut_at_a_character),
          T(documented_byte_layout), T(case_files_match_the_documented_format),
          T(round_trip_every_kind), T(encode_limits_and_arguments), T(no_allocation),
          T(every_truncation_is_refused), T(corrupt_blobs_are_refused), T(random_bytes_never_crash),
          T(encode_cost))
