/*
 * test_infer.c -- `schema infer` (ch_schema_infer), through
 * include/ch/schema.h only.
 *
 * Each test writes a small CSV of a telling shape, infers its schema and
 * checks the kinds, the id choice, the categories, the label mapping and
 * the notes; most then read the file back through the inferred schema
 * with ch_ingest_file() and require every row to be accepted, since a
 * starter schema that rejects its own data is useless.
 */
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/ingest.h"
#include "ch/schema.h"
#include "../harness.h"

static const char *write_csv(const char *name, const char *text)
{
    static char path[4][1024];
    static int k;
    char *p = path[k++ % 4];
    FILE *f;
    snprintf(p, 1024, "%s/%s", ch_test_tmpdir(), name);
    f = fopen(p, "wb");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Infers 'path' with 'o' (or defaults), notes into 'notes' (may be NULL). */
static ch_schema *infer(const char *path, ch_schema_infer_opts *o, ch_buf *notes)
{
    ch_schema_infer_opts d;
    ch_schema *s = NULL;
    ch_error err = {0};
    ch_err rc;
    if (o == NULL) {
        ch_schema_infer_opts_default(&d);
        o = &d;
    }
    o->notes = notes;
    rc = ch_schema_infer(path, o, &s, &err);
    if (rc != CH_OK)
        FAIL("infer %s: %s", path, err.msg);
    return s;
}

static const ch_schema_col *col(const ch_schema *s, const char *name)
{
    long j = ch_schema_find(s, name);
    if (j < 0)
        FAIL("no column %s", name);
    return ch_schema_col_ref(s, (size_t)j);
}

static void accepts_all(const ch_schema *s, const char *path, unsigned long long rows)
{
    ch_ingest_report *r = NULL;
    ch_ingest_opts o;
    ch_error err = {0};
    ch_ingest_opts_default(&o);
    o.keep_frame = 0;
    o.max_reject_rate = 0;
    ASSERT_OK(ch_ingest_file(s, path, &o, NULL, &r, &err));
    ASSERT_INT_EQ(r->rows_accepted, rows);
    ASSERT_INT_EQ(r->rows_rejected, 0);
    ch_ingest_report_free(r);
}

/* "State,Calls,Churn": the repeated first text column with 51 values was
 * once taken for the id, and validation then rejected 98% of the rows as
 * duplicate ids. */
TEST(repeated_text_is_categorical_not_id)
{
    static const char *const st[] = {
        "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA",
        "ID", "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS",
        "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA",
        "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA", "WI", "WV", "WY"};
    ch_buf b, notes;
    ch_schema *s;
    const char *path;
    ch_buf_init(&b, 1 << 20);
    ch_buf_init(&notes, 1 << 16);
    ch_buf_puts(&b, "State,Area code,Calls,Churn\n");
    for (int i = 0; i < 600; i++)
        ch_buf_printf(&b, "%s,%s,%d,%s\n", st[(i * 7) % 51],
                      i % 4 == 0 ? "408" : (i % 4 == 1 ? "510" : "415"), i % 8,
                      i % 5 == 0 ? "True" : "False");
    path = write_csv("states.csv", b.data);
    s = infer(path, NULL, &notes);
    ASSERT_INT_EQ(ch_schema_id(s), -1);
    ASSERT_INT_EQ(col(s, "State")->kind, CH_KIND_CATEGORICAL);
    ASSERT_INT_EQ(col(s, "State")->n_categories, 51);
    ASSERT_INT_EQ(col(s, "State")->on_unknown, CH_UNKNOWN_REJECT);
    ASSERT_INT_EQ(col(s, "Area code")->kind, CH_KIND_INTEGER);
    ASSERT_INT_EQ(col(s, "Churn")->kind, CH_KIND_TARGET);
    ASSERT_CONTAINS(notes.data, "Area code: whole numbers with only 3 distinct values (408, 415, "
                                "510), not consecutive");
    /* A count 0..7 is not a code: no note for it. */
    ASSERT(strstr(notes.data, "Calls:") == NULL);
    ASSERT_CONTAINS(notes.data, "no id column");
    accepts_all(s, path, 600);
    ch_schema_free(s);
    ch_buf_reset(&b);
    ch_buf_reset(&notes);
}

/* Unique texts are the id; a unique whole-number column named like an id
 * loses to them and is left out, as is a row counter. */
TEST(id_choice_and_left_out_columns)
{
    ch_buf b, notes;
    ch_schema *s;
    const char *path;
    ch_buf_init(&b, 1 << 20);
    ch_buf_init(&notes, 1 << 16);
    ch_buf_puts(&b, "RowNumber,AccountId,Email,Paid,Plan,Exited\n");
    for (int i = 0; i < 50; i++)
        ch_buf_printf(&b, "%d,%d,user%d@example.com,%d,%s,%d\n", i + 1, 9000 + i * 7, i,
                      1000 + i * 3, i % 3 ? "basic" : "gold", i % 4 == 0);
    path = write_csv("ids.csv", b.data);
    s = infer(path, NULL, &notes);
    ASSERT(ch_schema_id(s) >= 0);
    ASSERT_STR_EQ(ch_schema_col_ref(s, (size_t)ch_schema_id(s))->name, "Email");
    ASSERT_INT_EQ(ch_schema_find(s, "RowNumber"), -1);
    ASSERT_INT_EQ(ch_schema_find(s, "AccountId"), -1);
    ASSERT(ch_schema_ignores_extra(s));
    /* "Paid" is unique but ends in "id" only by accident: a number. */
    ASSERT_INT_EQ(col(s, "Paid")->kind, CH_KIND_INTEGER);
    ASSERT_INT_EQ(col(s, "Exited")->kind, CH_KIND_TARGET);
    ASSERT_CONTAINS(notes.data, "RowNumber: a row counter");
    ASSERT_CONTAINS(notes.data, "AccountId: a second identifier");
    ASSERT_CONTAINS(notes.data, "Email: a distinct value on every row: the id column");
    accepts_all(s, path, 50);
    ch_schema_free(s);
    ch_buf_reset(&b);
    ch_buf_reset(&notes);

    /* Without texts, the whole-number id with an id-like name wins over
     * the counter; an id with a blank row is no id. */
    ch_buf_init(&b, 1 << 20);
    ch_buf_init(&notes, 1 << 16);
    ch_buf_puts(&b, "RowNumber,CustomerId,Code,Churn\n");
    for (int i = 0; i < 40; i++) {
        char code[16] = "";
        if (i != 5)
            snprintf(code, sizeof code, "C%d", i);
        ch_buf_printf(&b, "%d,%d,%s,%s\n", i + 1, 15634602 + i * 13, code, i % 3 ? "no" : "yes");
    }
    path = write_csv("numid.csv", b.data);
    s = infer(path, NULL, &notes);
    ASSERT_STR_EQ(ch_schema_col_ref(s, (size_t)ch_schema_id(s))->name, "CustomerId");
    ASSERT_INT_EQ(ch_schema_find(s, "RowNumber"), -1);
    ASSERT_INT_EQ(col(s, "Code")->kind, CH_KIND_CATEGORICAL);
    ASSERT_CONTAINS(notes.data, "Code: no value repeats, but 1 rows are blank");
    accepts_all(s, path, 40);
    ch_schema_free(s);
    ch_buf_reset(&b);
    ch_buf_reset(&notes);
}

/* More distinct texts than max_categories: the most frequent are the
 * categories and the rest are kept as "other". */
TEST(high_cardinality_top_n)
{
    ch_buf b, notes;
    ch_schema_infer_opts o;
    ch_schema *s;
    const char *path;
    const ch_schema_col *c;
    ch_buf_init(&b, 1 << 20);
    ch_buf_init(&notes, 1 << 16);
    ch_buf_puts(&b, "Surname,Churn\n");
    /* name k appears 30 - k times: k = 0..29, so the 10 most frequent are
     * n00..n09. */
    for (int k = 0; k < 30; k++)
        for (int r = 0; r < 30 - k; r++)
            ch_buf_printf(&b, "n%02d,%d\n", k, (k + r) % 2);
    path = write_csv("names.csv", b.data);
    ch_schema_infer_opts_default(&o);
    o.max_categories = 10;
    s = infer(path, &o, &notes);
    c = col(s, "Surname");
    ASSERT_INT_EQ(c->kind, CH_KIND_CATEGORICAL);
    ASSERT_INT_EQ(c->on_unknown, CH_UNKNOWN_KEEP);
    ASSERT_INT_EQ(c->n_categories, 10);
    ASSERT_STR_EQ(c->categories[0], "n00");
    ASSERT_STR_EQ(c->categories[9], "n09");
    ASSERT(c->pii);
    /* (30+...+21) / (30+...+1) = 255 / 465 */
    ASSERT_CONTAINS(notes.data, "Surname: 30 distinct texts: the 10 most frequent are categories "
                                "(54.8% of rows)");
    ASSERT_CONTAINS(notes.data, "Surname: the name suggests personal data");
    accepts_all(s, path, 465);
    ch_schema_free(s);
    ch_buf_reset(&b);
    ch_buf_reset(&notes);
}

/* Target values: yes/no tokens in any case, two worded values, --positive,
 * and the refusals. */
TEST(target_values)
{
    ch_schema_infer_opts o;
    ch_schema *s = NULL;
    ch_error err = {0};
    const ch_schema_col *t;
    const char *path = write_csv(
        "mixed.csv", "x,Churn\n1,TRUE\n2,false\n3,True\n4,FALSE\n5,yes\n6,No\n7,1\n8,0\n");
    s = infer(path, NULL, NULL);
    accepts_all(s, path, 8);
    ch_schema_free(s);

    path = write_csv("worded.csv", "x,Attrition_Flag\n1,Existing Customer\n2,Attrited "
                                   "Customer\n3,Existing Customer\n");
    s = infer(path, NULL, NULL);
    t = col(s, "Attrition_Flag");
    ASSERT_INT_EQ(t->kind, CH_KIND_TARGET);
    ASSERT_INT_EQ(t->n_positive, 1);
    ASSERT_STR_EQ(t->positive[0], "Attrited Customer");
    ASSERT_STR_EQ(t->negative[0], "Existing Customer");
    accepts_all(s, path, 3);
    ch_schema_free(s);

    path = write_csv("neutral.csv", "x,label\n1,A\n2,B\n3,A\n");
    ch_schema_infer_opts_default(&o);
    ASSERT_ERR(ch_schema_infer(path, &o, &s, &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "--positive");
    o.positive = "B";
    s = infer(path, &o, NULL);
    ASSERT_STR_EQ(col(s, "label")->positive[0], "B");
    accepts_all(s, path, 3);
    ch_schema_free(s);
    o.positive = "C";
    ASSERT_ERR(ch_schema_infer(path, &o, &s, &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "neither");

    path = write_csv("three.csv", "x,target\n1,A\n2,B\n3,C\n");
    o.positive = NULL;
    ASSERT_ERR(ch_schema_infer(path, &o, &s, &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "3 distinct values");
}

/* Personal data by whole words; the revenue column by name. */
TEST(pii_words_and_revenue)
{
    ch_buf notes;
    ch_schema *s;
    const char *path = write_csv("pii.csv", "Voice mail plan,EmailAddress,first_name,Monthly "
                                            "Charges,Churn\nyes,a@x,Ann,10.5,no\nno,b@x,Bo,20,"
                                            "yes\nno,a@x,Ann,30,no\n");
    ch_buf_init(&notes, 1 << 16);
    s = infer(path, NULL, &notes);
    ASSERT(!col(s, "Voice mail plan")->pii);
    ASSERT(col(s, "EmailAddress")->pii);
    ASSERT(col(s, "first_name")->pii);
    ASSERT_INT_EQ(ch_schema_guess_revenue(s), ch_schema_find(s, "Monthly Charges"));
    ch_schema_free(s);
    ch_buf_reset(&notes);
    path = write_csv("norev.csv", "Balance,Exited\n1,0\n2,1\n");
    s = infer(path, NULL, NULL);
    ASSERT_INT_EQ(ch_schema_guess_revenue(s), -1);
    ch_schema_free(s);
}

TEST(telco_file)
{
    const char *path = ch_test_telco_csv();
    ch_buf notes;
    ch_schema *s;
    if (path == NULL)
        SKIP("the IBM Telco CSV is not in the shared data folder");
    ch_buf_init(&notes, 1 << 16);
    s = infer(path, NULL, &notes);
    ASSERT_STR_EQ(ch_schema_col_ref(s, (size_t)ch_schema_id(s))->name, "customerID");
    ASSERT_INT_EQ(ch_schema_n_cols(s), 21);
    ASSERT(!ch_schema_ignores_extra(s));
    ASSERT_INT_EQ(ch_schema_guess_revenue(s), ch_schema_find(s, "MonthlyCharges"));
    accepts_all(s, path, 7043);
    ch_schema_free(s);
    ch_buf_reset(&notes);
}

/* Every allocation failure returns CH_ENOMEM and leaks nothing (the
 * valgrind tier checks the leaks). */
TEST(out_of_memory)
{
    ch_buf b;
    const char *path;
    long n;
    int failures = 0;
    ch_buf_init(&b, 1 << 20);
    ch_buf_puts(&b, "id,State,Amount,Churn\n");
    for (int i = 0; i < 200; i++)
        ch_buf_printf(&b, "c%d,S%d,%d.5,%s\n", i, i % 120, i, i % 3 ? "No" : "Yes");
    path = write_csv("oom.csv", b.data);
    ch_buf_reset(&b);
    for (n = 1; n < 100000; n++) {
        ch_schema_infer_opts o;
        ch_schema *s = NULL;
        ch_error err = {0};
        ch_buf notes;
        ch_err rc;
        ch_schema_infer_opts_default(&o);
        ch_buf_init(&notes, 1 << 16);
        o.notes = &notes;
        ch_alloc_fail_after(n);
        rc = ch_schema_infer(path, &o, &s, &err);
        ch_alloc_fail_after(0);
        ch_buf_reset(&notes);
        if (rc == CH_OK) {
            ch_schema_free(s);
            break;
        }
        if (rc != CH_ENOMEM)
            FAIL("allocation %ld failing gave %s: %s", n, ch_strerror(rc), err.msg);
        ASSERT(s == NULL);
        failures++;
    }
    ASSERT(failures > 50);
    ASSERT(n < 100000);
}

TEST_MAIN(T(repeated_text_is_categorical_not_id), T(id_choice_and_left_out_columns),
          T(high_cardinality_top_n), T(target_values), T(pii_words_and_revenue), T(telco_file),
          T(out_of_memory))
