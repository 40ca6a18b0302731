/*
 * test_frame.c -- the columnar frame, through include/ch/frame.h only.
 *
 * Builds small frames by hand: the three column types, rows with missing
 * cells, level dictionaries that grow by text (up to thousands of levels),
 * text cells, growth past the first capacity, the rule that columns come
 * before rows, and allocation failure at every allocation of a build
 * scenario (each must give CH_ENOMEM, leave the frame usable and, under
 * ASan or valgrind, leak nothing).
 */
#include <stdint.h>

#include "ch/alloc.h"
#include "ch/frame.h"
#include "../harness.h"

/* ---- helpers ------------------------------------------------------------ */

static ch_frame *new_frame(void)
{
    ch_frame *f = NULL;
    ch_error err;
    ASSERT_OK(ch_frame_new(&f, &err));
    ASSERT(f != NULL);
    return f;
}

static void add_col(ch_frame *f, const char *name, ch_col_type type, const char *const *levels,
                    size_t n_levels)
{
    ch_error err;
    ch_err rc = ch_frame_add_column(f, name, type, levels, n_levels, &err);
    if (rc != CH_OK)
        FAIL("adding column %s: %s: %s", name, ch_strerror(rc), err.msg);
}

static void append(ch_frame *f, const ch_cell *cells)
{
    ch_error err;
    ch_err rc = ch_frame_append_row(f, cells, &err);
    if (rc != CH_OK)
        FAIL("appending row %zu: %s: %s", ch_frame_n_rows(f), ch_strerror(rc), err.msg);
}

static ch_cell num_cell(double v)
{
    ch_cell c = {0};
    c.num = v;
    return c;
}

static ch_cell code_cell(int32_t code)
{
    ch_cell c = {0};
    c.code = code;
    return c;
}

/* A CH_COL_CAT cell given by text (added to the dictionary if new). */
static ch_cell level_cell(const char *s)
{
    ch_cell c = {0};
    c.code = -1;
    c.str = s;
    c.len = strlen(s);
    return c;
}

static ch_cell str_cell(const char *s)
{
    ch_cell c = {0};
    c.str = s;
    c.len = strlen(s);
    return c;
}

static ch_cell missing_cell(void)
{
    ch_cell c = {0};
    c.code = -1;
    c.missing = 1;
    return c;
}

/* ---- tests -------------------------------------------------------------- */

TEST(empty_frame)
{
    ch_frame *f = new_frame();
    ASSERT_INT_EQ(ch_frame_n_rows(f), 0);
    ASSERT_INT_EQ(ch_frame_n_cols(f), 0);
    ASSERT_INT_EQ(ch_frame_find(f, "x"), -1);
    ASSERT(ch_frame_col_name(f, 0) == NULL);
    ch_frame_free(f);
    ch_frame_free(NULL);
}

TEST(add_columns_of_each_type)
{
    static const char *const levels[] = {"Month-to-month", "One year", "Two year"};
    ch_frame *f = new_frame();

    add_col(f, "customerID", CH_COL_STR, NULL, 0);
    add_col(f, "tenure", CH_COL_NUM, NULL, 0);
    add_col(f, "Contract", CH_COL_CAT, levels, 3);
    add_col(f, "Empty", CH_COL_CAT, NULL, 0);
    ASSERT_INT_EQ(ch_frame_n_cols(f), 4);
    ASSERT_INT_EQ(ch_frame_n_rows(f), 0);

    ASSERT_STR_EQ(ch_frame_col_name(f, 0), "customerID");
    ASSERT_STR_EQ(ch_frame_col_name(f, 1), "tenure");
    ASSERT_STR_EQ(ch_frame_col_name(f, 2), "Contract");
    ASSERT(ch_frame_col_name(f, 4) == NULL);
    ASSERT_INT_EQ(ch_frame_col_type(f, 0), CH_COL_STR);
    ASSERT_INT_EQ(ch_frame_col_type(f, 1), CH_COL_NUM);
    ASSERT_INT_EQ(ch_frame_col_type(f, 2), CH_COL_CAT);
    ASSERT_INT_EQ(ch_frame_find(f, "tenure"), 1);
    ASSERT_INT_EQ(ch_frame_find(f, "Contract"), 2);
    ASSERT_INT_EQ(ch_frame_find(f, "contract"), -1);
    ASSERT_INT_EQ(ch_frame_find(f, ""), -1);

    /* The seed levels, copied, in order. */
    ASSERT_INT_EQ(ch_frame_n_levels(f, 2), 3);
    for (size_t k = 0; k < 3; k++) {
        ASSERT_STR_EQ(ch_frame_level(f, 2, k), levels[k]);
        ASSERT(ch_frame_level(f, 2, k) != levels[k]);
    }
    ASSERT(ch_frame_level(f, 2, 3) == NULL);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 3), 0);
    ASSERT(ch_frame_level(f, 3, 0) == NULL);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 1), 0);
    ch_frame_free(f);
}

TEST(append_rows_and_read_back)
{
    static const char *const levels[] = {"No", "Yes"};
    const char *ids[] = {"7590-VHVEG", "5575-GNVDE", "3668-QPYBK"};
    const double charges[] = {29.85, 56.95, -0.0};
    const int32_t codes[] = {1, 0, 1};
    ch_frame *f = new_frame();

    add_col(f, "id", CH_COL_STR, NULL, 0);
    add_col(f, "charges", CH_COL_NUM, NULL, 0);
    add_col(f, "churn", CH_COL_CAT, levels, 2);
    for (size_t i = 0; i < 3; i++) {
        ch_cell row[3];
        row[0] = str_cell(ids[i]);
        row[1] = num_cell(charges[i]);
        row[2] = code_cell(codes[i]);
        append(f, row);
        ASSERT_INT_EQ(ch_frame_n_rows(f), i + 1);
    }
    for (size_t i = 0; i < 3; i++) {
        size_t len = 0;
        const char *s = ch_frame_str(f, 0, i, &len);
        ASSERT_STR_EQ(s, ids[i]);
        ASSERT_INT_EQ(len, strlen(ids[i]));
        ASSERT(s != ids[i]); /* copied */
        ASSERT(ch_frame_num(f, 1)[i] == charges[i]);
        ASSERT_INT_EQ(ch_frame_codes(f, 2)[i], codes[i]);
    }
    ASSERT(ch_frame_str(f, 0, 0, NULL) != NULL); /* 'len' may be NULL */
    ASSERT(ch_frame_str(f, 0, 3, NULL) == NULL); /* past the last row */
    ASSERT(ch_frame_str(f, 1, 0, NULL) == NULL); /* not a text column */
    ASSERT(ch_frame_str(f, 9, 0, NULL) == NULL);
    for (size_t j = 0; j < 3; j++) {
        ASSERT(ch_frame_missing(f, j) == NULL);
        ASSERT_INT_EQ(ch_frame_n_missing(f, j), 0);
    }
    ASSERT_INT_EQ(ch_frame_n_levels(f, 2), 2);
    ch_frame_free(f);
}

TEST(wrong_type_accessors)
{
    static const char *const levels[] = {"a"};
    ch_frame *f = new_frame();
    ch_cell row[3];

    add_col(f, "n", CH_COL_NUM, NULL, 0);
    add_col(f, "c", CH_COL_CAT, levels, 1);
    add_col(f, "s", CH_COL_STR, NULL, 0);
    row[0] = num_cell(1);
    row[1] = code_cell(0);
    row[2] = str_cell("x");
    append(f, row);
    ASSERT(ch_frame_num(f, 0) != NULL);
    ASSERT(ch_frame_num(f, 1) == NULL);
    ASSERT(ch_frame_num(f, 2) == NULL);
    ASSERT(ch_frame_num(f, 3) == NULL);
    ASSERT(ch_frame_codes(f, 0) == NULL);
    ASSERT(ch_frame_codes(f, 1) != NULL);
    ASSERT(ch_frame_codes(f, 2) == NULL);
    ASSERT(ch_frame_codes(f, 3) == NULL);
    ASSERT(ch_frame_missing(f, 3) == NULL);
    ASSERT_INT_EQ(ch_frame_n_missing(f, 3), 0);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), 0);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 2), 0);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 3), 0);
    ASSERT(ch_frame_level(f, 0, 0) == NULL);
    ch_frame_free(f);
}

TEST(missing_masks)
{
    static const char *const levels[] = {"a", "b"};
    ch_frame *f = new_frame();
    ch_cell row[3];
    const uint8_t *m;

    add_col(f, "n", CH_COL_NUM, NULL, 0);
    add_col(f, "c", CH_COL_CAT, levels, 2);
    add_col(f, "s", CH_COL_STR, NULL, 0);

    /* Rows 0-1 complete: no masks. */
    for (int i = 0; i < 2; i++) {
        row[0] = num_cell(i);
        row[1] = code_cell(i);
        row[2] = str_cell("x");
        append(f, row);
    }
    for (size_t j = 0; j < 3; j++)
        ASSERT(ch_frame_missing(f, j) == NULL);

    /* Row 2: 'n' missing. Only its mask appears, and it covers earlier rows. */
    row[0] = missing_cell();
    row[1] = code_cell(1);
    row[2] = str_cell("y");
    append(f, row);
    m = ch_frame_missing(f, 0);
    ASSERT(m != NULL);
    ASSERT_INT_EQ(m[0], 0);
    ASSERT_INT_EQ(m[1], 0);
    ASSERT_INT_EQ(m[2], 1);
    ASSERT(isnan(ch_frame_num(f, 0)[2]));
    ASSERT_INT_EQ(ch_frame_n_missing(f, 0), 1);
    ASSERT(ch_frame_missing(f, 1) == NULL);
    ASSERT(ch_frame_missing(f, 2) == NULL);

    /* Row 3: 'c' and 's' missing, 'n' present. */
    row[0] = num_cell(7.5);
    row[1] = missing_cell();
    row[2] = missing_cell();
    append(f, row);
    m = ch_frame_missing(f, 0);
    ASSERT(m != NULL);
    ASSERT_INT_EQ(m[3], 0);
    ASSERT(ch_frame_num(f, 0)[3] == 7.5);
    m = ch_frame_missing(f, 1);
    ASSERT(m != NULL);
    ASSERT_INT_EQ(m[0] + m[1] + m[2], 0);
    ASSERT_INT_EQ(m[3], 1);
    ASSERT_INT_EQ(ch_frame_codes(f, 1)[3], -1);
    m = ch_frame_missing(f, 2);
    ASSERT(m != NULL);
    ASSERT_INT_EQ(m[3], 1);
    ASSERT(ch_frame_str(f, 2, 3, NULL) == NULL);
    ASSERT_STR_EQ(ch_frame_str(f, 2, 2, NULL), "y");
    ASSERT_INT_EQ(ch_frame_n_missing(f, 1), 1);
    ASSERT_INT_EQ(ch_frame_n_missing(f, 2), 1);

    /* A missing cell's other fields are ignored. */
    row[0] = missing_cell();
    row[0].num = 99;
    row[1] = missing_cell();
    row[1].code = 1;
    row[2] = missing_cell();
    row[2].str = "ignored";
    row[2].len = 7;
    append(f, row);
    ASSERT(isnan(ch_frame_num(f, 0)[4]));
    ASSERT_INT_EQ(ch_frame_codes(f, 1)[4], -1);
    ASSERT(ch_frame_str(f, 2, 4, NULL) == NULL);
    ASSERT_INT_EQ(ch_frame_n_missing(f, 0), 2);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 1), 2);
    ch_frame_free(f);
}

/* The mask appears only at row 3000, after the row storage has grown;
 * then more rows follow, so the mask itself must grow with the rest. */
TEST(missing_mask_after_growth)
{
    ch_frame *f = new_frame();
    const size_t n = 10000;
    const uint8_t *m;
    size_t n_missing = 0;

    add_col(f, "n", CH_COL_NUM, NULL, 0);
    for (size_t i = 0; i < n; i++) {
        ch_cell c = (i >= 3000 && i % 7 == 0) ? missing_cell() : num_cell((double)i);
        append(f, &c);
        if (i == 2999)
            ASSERT(ch_frame_missing(f, 0) == NULL);
    }
    ASSERT_INT_EQ(ch_frame_n_rows(f), n);
    m = ch_frame_missing(f, 0);
    ASSERT(m != NULL);
    for (size_t i = 0; i < n; i++) {
        int want = i >= 3000 && i % 7 == 0;
        if (m[i] != want)
            FAIL("mask[%zu] = %d, want %d", i, m[i], want);
        if (want) {
            ASSERT(isnan(ch_frame_num(f, 0)[i]));
            n_missing++;
        } else if (ch_frame_num(f, 0)[i] != (double)i) {
            FAIL("row %zu: %g", i, ch_frame_num(f, 0)[i]);
        }
    }
    ASSERT_INT_EQ(ch_frame_n_missing(f, 0), n_missing);
    ch_frame_free(f);
}

TEST(level_growth_by_text)
{
    static const char *const levels[] = {"Electronic check", "Mailed check"};
    ch_frame *f = new_frame();
    ch_cell c;

    add_col(f, "pay", CH_COL_CAT, levels, 2);
    /* An existing level given by text is found, not added. */
    c = level_cell("Mailed check");
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[0], 1);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), 2);
    /* A new one is appended after the seeds. */
    c = level_cell("Bitcoin");
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[1], 2);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), 3);
    ASSERT_STR_EQ(ch_frame_level(f, 0, 2), "Bitcoin");
    /* Seen again: the same code. */
    c = level_cell("Bitcoin");
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[2], 2);
    /* Case matters; a prefix is another level. */
    c = level_cell("bitcoin");
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[3], 3);
    c = level_cell("Bit");
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[4], 4);
    /* The empty text is a level like any other. */
    c = level_cell("");
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[5], 5);
    ASSERT_STR_EQ(ch_frame_level(f, 0, 5), "");
    /* A code given directly is stored as is. */
    c = code_cell(0);
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[6], 0);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), 6);
    ASSERT_STR_EQ(ch_frame_level(f, 0, 0), "Electronic check");
    ASSERT_STR_EQ(ch_frame_level(f, 0, 1), "Mailed check");
    ASSERT_STR_EQ(ch_frame_level(f, 0, 3), "bitcoin");
    ASSERT_STR_EQ(ch_frame_level(f, 0, 4), "Bit");
    ASSERT(ch_frame_missing(f, 0) == NULL);
    ch_frame_free(f);
}

TEST(level_text_uses_len)
{
    /* 'str' need not be NUL-terminated: only 'len' bytes count. */
    static const char *const levels[] = {"abc"};
    ch_frame *f = new_frame();
    char text[] = {'a', 'b', 'c', 'd', 'e', 'f'};
    ch_cell c = code_cell(-1);

    add_col(f, "c", CH_COL_CAT, levels, 1);
    c.str = text;
    c.len = 3;
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[0], 0);
    c.len = 5;
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[1], 1);
    ASSERT_STR_EQ(ch_frame_level(f, 0, 1), "abcde");
    c.str = text + 1;
    c.len = 2;
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_codes(f, 0)[2], 2);
    ASSERT_STR_EQ(ch_frame_level(f, 0, 2), "bc");
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), 3);
    ch_frame_free(f);
}

/* 5000 distinct levels: the dictionary's hash table grows many times and
 * every level must still be found by text with its first code. */
TEST(many_levels)
{
    static const char *const seeds[] = {"seed-a", "seed-b", "seed-c"};
    const size_t n = 5000;
    ch_frame *f = new_frame();
    char buf[32];

    add_col(f, "c", CH_COL_CAT, seeds, 3);
    for (size_t i = 0; i < n; i++) {
        ch_cell c;
        snprintf(buf, sizeof buf, "level-%zu", i);
        c = level_cell(buf);
        append(f, &c);
        if (ch_frame_codes(f, 0)[i] != (int32_t)(i + 3))
            FAIL("row %zu: code %d, want %zu", i, ch_frame_codes(f, 0)[i], i + 3);
    }
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), n + 3);
    /* Each again, in another order: found, not added. */
    for (size_t i = 0; i < n; i++) {
        size_t k = (i * 7919) % n;
        ch_cell c;
        snprintf(buf, sizeof buf, "level-%zu", k);
        c = level_cell(buf);
        append(f, &c);
        if (ch_frame_codes(f, 0)[n + i] != (int32_t)(k + 3))
            FAIL("repeat of level-%zu: code %d", k, ch_frame_codes(f, 0)[n + i]);
    }
    for (size_t k = 0; k < 3; k++) {
        ch_cell c = level_cell(seeds[k]);
        append(f, &c);
        ASSERT_INT_EQ(ch_frame_codes(f, 0)[2 * n + k], k);
    }
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), n + 3);
    ASSERT_INT_EQ(ch_frame_n_rows(f), 2 * n + 3);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "level-%zu", i);
        ASSERT_STR_EQ(ch_frame_level(f, 0, i + 3), buf);
    }
    ch_frame_free(f);
}

/* Many seed levels at once (the dictionary grows inside add_column). */
TEST(many_seed_levels)
{
    enum { N = 3000 };
    static char names[N][16];
    const char *levels[N];
    ch_frame *f = new_frame();

    for (size_t k = 0; k < N; k++) {
        snprintf(names[k], sizeof names[k], "s%zu", k);
        levels[k] = names[k];
    }
    add_col(f, "c", CH_COL_CAT, levels, N);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), N);
    for (size_t k = 0; k < N; k += 97) {
        ch_cell c = level_cell(names[k]);
        append(f, &c);
        ASSERT_INT_EQ(ch_frame_codes(f, 0)[ch_frame_n_rows(f) - 1], k);
    }
    ASSERT_INT_EQ(ch_frame_n_levels(f, 0), N);
    ch_frame_free(f);
}

TEST(str_cells)
{
    ch_frame *f = new_frame();
    const size_t n = 3000;
    char *big;
    const size_t big_len = 100000;
    char buf[64];
    size_t len;
    ch_cell c;

    add_col(f, "s", CH_COL_STR, NULL, 0);
    /* Text with commas, quotes, UTF-8 and the empty string. */
    c = str_cell("a,b \"q\" caf\xc3\xa9");
    append(f, &c);
    c = str_cell("");
    append(f, &c);
    /* Not NUL-terminated: 'len' bytes are copied and terminated. */
    c.str = "abcdef";
    c.len = 4;
    append(f, &c);
    /* One cell far larger than the initial pool. */
    big = ch_malloc(big_len);
    ASSERT(big != NULL);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    c.str = big;
    c.len = big_len;
    append(f, &c);
    /* Many small ones, so the pool grows again. */
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "cust-%06zu", i);
        c = str_cell(buf);
        append(f, &c);
    }
    ASSERT_STR_EQ(ch_frame_str(f, 0, 0, &len), "a,b \"q\" caf\xc3\xa9");
    ASSERT_INT_EQ(len, strlen("a,b \"q\" caf\xc3\xa9"));
    ASSERT_STR_EQ(ch_frame_str(f, 0, 1, &len), "");
    ASSERT_INT_EQ(len, 0);
    ASSERT_STR_EQ(ch_frame_str(f, 0, 2, &len), "abcd");
    ASSERT_INT_EQ(len, 4);
    ASSERT(ch_frame_str(f, 0, 3, &len) != NULL);
    ASSERT_INT_EQ(len, big_len);
    ASSERT(memcmp(ch_frame_str(f, 0, 3, NULL), big, big_len) == 0);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "cust-%06zu", i);
        ASSERT_STR_EQ(ch_frame_str(f, 0, 4 + i, NULL), buf);
    }
    ASSERT(ch_frame_missing(f, 0) == NULL);
    ASSERT_INT_EQ(ch_frame_n_rows(f), n + 4);
    ch_free(big);
    ch_frame_free(f);
}

TEST(add_column_after_rows)
{
    ch_frame *f = new_frame();
    ch_error err;
    ch_cell c = num_cell(1);

    add_col(f, "a", CH_COL_NUM, NULL, 0);
    append(f, &c);
    ch_error_clear(&err);
    ASSERT_ERR(ch_frame_add_column(f, "b", CH_COL_NUM, NULL, 0, &err), CH_EINVAL);
    ASSERT_INT_EQ(err.code, CH_EINVAL);
    ASSERT(err.msg[0] != '\0');
    ASSERT_ERR(ch_frame_add_column(f, "b", CH_COL_STR, NULL, 0, NULL), CH_EINVAL);
    /* The frame is unchanged and still usable. */
    ASSERT_INT_EQ(ch_frame_n_cols(f), 1);
    ASSERT_INT_EQ(ch_frame_find(f, "b"), -1);
    c = num_cell(2);
    append(f, &c);
    ASSERT_INT_EQ(ch_frame_n_rows(f), 2);
    ASSERT(ch_frame_num(f, 0)[1] == 2.0);
    ch_frame_free(f);
}

/* Many rows over several columns: every column grows together. */
TEST(many_rows)
{
    static const char *const levels[] = {"x", "y", "z"};
    const size_t n = 100000;
    ch_frame *f = new_frame();
    char buf[32];

    add_col(f, "i", CH_COL_NUM, NULL, 0);
    add_col(f, "c", CH_COL_CAT, levels, 3);
    add_col(f, "s", CH_COL_STR, NULL, 0);
    for (size_t i = 0; i < n; i++) {
        ch_cell row[3];
        snprintf(buf, sizeof buf, "%zu", i);
        row[0] = num_cell((double)i * 0.5);
        row[1] = i % 1000 == 999 ? missing_cell() : code_cell((int32_t)(i % 3));
        row[2] = str_cell(buf);
        append(f, row);
    }
    ASSERT_INT_EQ(ch_frame_n_rows(f), n);
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%zu", i);
        if (ch_frame_num(f, 0)[i] != (double)i * 0.5)
            FAIL("num row %zu", i);
        if (i % 1000 == 999) {
            if (ch_frame_codes(f, 1)[i] != -1 || ch_frame_missing(f, 1)[i] != 1)
                FAIL("missing code row %zu", i);
        } else if (ch_frame_codes(f, 1)[i] != (int32_t)(i % 3) || ch_frame_missing(f, 1)[i] != 0) {
            FAIL("code row %zu", i);
        }
        if (strcmp(ch_frame_str(f, 2, i, NULL), buf) != 0)
            FAIL("str row %zu", i);
    }
    ASSERT_INT_EQ(ch_frame_n_missing(f, 1), n / 1000);
    ch_frame_free(f);
}

/* ---- allocation failure --------------------------------------------------- */

/*
 * A small build that makes every kind of allocation: the frame, columns,
 * seeded and new levels (past the first dictionary sizes), row storage
 * past its first capacity, masks and the text pool. Returns the first
 * error; '*out' gets the frame either way (NULL if ch_frame_new failed).
 */
static ch_err build_scenario(ch_frame **out, ch_error *err)
{
    static const char *const levels[] = {"No", "Yes", "No internet service"};
    ch_frame *f = NULL;
    ch_err rc;
    char buf[32];

    *out = NULL;
    rc = ch_frame_new(&f, err);
    if (rc != CH_OK)
        return rc;
    *out = f;
    if ((rc = ch_frame_add_column(f, "id", CH_COL_STR, NULL, 0, err)) != CH_OK ||
        (rc = ch_frame_add_column(f, "tenure", CH_COL_NUM, NULL, 0, err)) != CH_OK ||
        (rc = ch_frame_add_column(f, "security", CH_COL_CAT, levels, 3, err)) != CH_OK ||
        (rc = ch_frame_add_column(f, "pay", CH_COL_CAT, NULL, 0, err)) != CH_OK)
        return rc;
    for (size_t i = 0; i < 1500; i++) {
        ch_cell row[4];
        char lv[32];
        snprintf(buf, sizeof buf, "customer-%zu", i);
        snprintf(lv, sizeof lv, "method-%zu", i % 40);
        row[0] = i == 700 ? missing_cell() : str_cell(buf);
        row[1] = i % 10 == 3 ? missing_cell() : num_cell((double)i);
        row[2] = i == 1200 ? missing_cell() : code_cell((int32_t)(i % 3));
        row[3] = level_cell(lv);
        rc = ch_frame_append_row(f, row, err);
        if (rc != CH_OK)
            return rc;
    }
    return CH_OK;
}

static void check_scenario(const ch_frame *f)
{
    ASSERT_INT_EQ(ch_frame_n_rows(f), 1500);
    ASSERT_INT_EQ(ch_frame_n_cols(f), 4);
    ASSERT_INT_EQ(ch_frame_n_missing(f, 0), 1);
    ASSERT_INT_EQ(ch_frame_n_missing(f, 1), 150);
    ASSERT_INT_EQ(ch_frame_n_missing(f, 2), 1);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 2), 3);
    ASSERT_INT_EQ(ch_frame_n_levels(f, 3), 40);
    ASSERT_STR_EQ(ch_frame_str(f, 0, 1499, NULL), "customer-1499");
    ASSERT_INT_EQ(ch_frame_codes(f, 3)[1499], 1499 % 40);
}

TEST(out_of_memory)
{
    ch_frame *f = NULL;
    ch_error err;
    long n;
    long total;

    /* How many allocations a clean run makes. */
    ch_alloc_fail_after(0);
    ASSERT_OK(build_scenario(&f, &err));
    total = ch_alloc_count();
    check_scenario(f);
    ch_frame_free(f);
    ASSERT(total > 10);

    for (n = 1; n <= total + 1; n++) {
        ch_err rc;
        ch_error_clear(&err);
        ch_alloc_fail_after(n);
        rc = build_scenario(&f, &err);
        ch_alloc_fail_after(0);
        if (n <= total) {
            if (rc != CH_ENOMEM)
                FAIL("allocation %ld of %ld failing gave %s", n, total, ch_strerror(rc));
            ASSERT_INT_EQ(err.code, CH_ENOMEM);
        } else {
            ASSERT_OK(rc);
            check_scenario(f);
        }
        ch_frame_free(f);
    }
}

/*
 * A failed append leaves the frame exactly as it was ("either the whole
 * row is appended or nothing is"): rows, masks and level dictionaries.
 * The row makes three allocations: a new level, text pool growth and a
 * first missing mask; allocation N fails for each N in turn.
 */
TEST(failed_append_changes_nothing)
{
    static const char *const levels[] = {"a", "b"};
    char *big = ch_malloc(5000);
    long n;

    ASSERT(big != NULL);
    memset(big, 'x', 5000);
    for (n = 1; n < 100; n++) {
        ch_frame *f = new_frame();
        ch_cell row[3];
        ch_error err;
        ch_err rc;

        add_col(f, "c", CH_COL_CAT, levels, 2);
        add_col(f, "s", CH_COL_STR, NULL, 0);
        add_col(f, "n", CH_COL_NUM, NULL, 0);
        row[0] = code_cell(1);
        row[1] = str_cell("first");
        row[2] = num_cell(1.0);
        append(f, row);

        row[0] = level_cell("brand new");
        row[1].str = big;
        row[1].len = 5000;
        row[2] = missing_cell();
        ch_alloc_fail_after(n);
        rc = ch_frame_append_row(f, row, &err);
        ch_alloc_fail_after(0);
        if (rc == CH_OK) {
            ASSERT_INT_EQ(ch_frame_n_rows(f), 2);
            ASSERT_INT_EQ(ch_frame_n_levels(f, 0), 3);
            ASSERT_INT_EQ(ch_frame_codes(f, 0)[1], 2);
            ch_frame_free(f);
            break;
        }
        ASSERT_INT_EQ(rc, CH_ENOMEM);
        if (ch_frame_n_rows(f) != 1 || ch_frame_n_levels(f, 0) != 2 ||
            ch_frame_missing(f, 2) != NULL || ch_frame_n_missing(f, 2) != 0) {
            char what[256];
            snprintf(
                what, sizeof what, "%zu rows, %zu levels in 'c' (\"%s\" added), %zu missing in 'n'",
                ch_frame_n_rows(f), ch_frame_n_levels(f, 0),
                ch_frame_level(f, 0, 2) ? ch_frame_level(f, 0, 2) : "", ch_frame_n_missing(f, 2));
            ch_frame_free(f);
            ch_free(big);
            FAIL("allocation %ld failing: the frame changed: %s", n, what);
        }
        ASSERT_STR_EQ(ch_frame_str(f, 1, 0, NULL), "first");
        /* The same row goes in once memory is back. */
        append(f, row);
        ASSERT_INT_EQ(ch_frame_n_rows(f), 2);
        ASSERT_INT_EQ(ch_frame_n_levels(f, 0), 3);
        ASSERT_INT_EQ(ch_frame_codes(f, 0)[1], 2);
        ASSERT_INT_EQ(ch_frame_n_missing(f, 2), 1);
        ch_frame_free(f);
    }
    ASSERT(n > 1);
    ASSERT(n < 100);
    ch_free(big);
}

TEST_MAIN(T(empty_frame), T(add_columns_of_each_type), T(append_rows_and_read_back),
          T(wrong_type_accessors), T(missing_masks), T(missing_mask_after_growth),
          T(level_growth_by_text), T(level_text_uses_len), T(many_levels), T(many_seed_levels),
          T(str_cells), T(add_column_after_rows), T(many_rows), T(out_of_memory),
          T(failed_append_changes_nothing))
