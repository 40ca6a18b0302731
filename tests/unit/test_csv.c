/*
 * test_csv.c -- the streaming CSV reader, through include/ch/csv.h only.
 *
 * Most tests render everything the reader reports into one text (see
 * dump()) and compare it with the expected text, for every chunk size in
 * 'chunk_sizes': the same bytes must give the same records however the
 * reads happen to cut them. Data-driven cases live in tests/cases/csv/:
 * NAME.csv is the input and NAME.expected the dump, one line per record:
 *
 *     <line>[-<last line>] <fields> [quoted <i>,...] [problem <i>: <text>] [raw <text>]
 *     end blank=<n> bytes=<n> bom=<0|1>        (or)    error: <code text>: <message>
 *
 * Fields are a JSON array of strings, except that bytes >= 0x80 are written
 * \xHH (the reader does not judge encodings, so neither does the dump).
 * 'raw' appears when a field is quoted or the record has a problem. Lines
 * of NAME.expected starting with '#' are comments, except "# opts: k=v ..."
 * which sets reader options (max_fields, max_record_bytes). Adding a case
 * is adding two files; CH_CASES_UPDATE=1 rewrites the .expected files
 * from the actual output (review the diff before keeping it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/csv.h"
#include "ch/hash.h"
#include "../harness.h"

#define DUMP_MAX ((size_t)64 << 20) /* cap on a dump's size, bytes */

/* Chunk sizes every input is read with; 0 means the default. */
static const size_t chunk_sizes[] = {1, 2, 3, 7, 64, 0};
#define N_CHUNK_SIZES (sizeof chunk_sizes / sizeof chunk_sizes[0])

/* Appends 'len' bytes at 's' as a JSON-like string (see the top). */
static void put_str(ch_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;

    ch_buf_putc(b, '"');
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            ch_buf_append(b, e, 2);
        } else if (c == '\n') {
            ch_buf_puts(b, "\\n");
        } else if (c == '\r') {
            ch_buf_puts(b, "\\r");
        } else if (c == '\t') {
            ch_buf_puts(b, "\\t");
        } else if (c < 0x20) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            ch_buf_append(b, u, 6);
        } else if (c >= 0x80) {
            char x[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            ch_buf_append(b, x, 4);
        } else {
            ch_buf_putc(b, (char)c);
        }
    }
    ch_buf_putc(b, '"');
}

/* Appends one record in the dump format. */
static void put_record(ch_buf *b, const ch_csv_record *r)
{
    size_t i;
    int any_quoted = 0;

    ch_buf_printf(b, "%llu", (unsigned long long)r->line);
    if (r->n_lines > 1)
        ch_buf_printf(b, "-%llu", (unsigned long long)(r->line + r->n_lines - 1));
    ch_buf_puts(b, " [");
    for (i = 0; i < r->n_fields; i++) {
        if (i > 0)
            ch_buf_putc(b, ',');
        put_str(b, r->fields[i].p, r->fields[i].len);
        any_quoted |= r->fields[i].quoted;
    }
    ch_buf_putc(b, ']');
    if (any_quoted) {
        const char *sep = " quoted ";
        for (i = 0; i < r->n_fields; i++) {
            if (r->fields[i].quoted) {
                ch_buf_printf(b, "%s%zu", sep, i);
                sep = ",";
            }
        }
    }
    if (r->problem != NULL)
        ch_buf_printf(b, " problem %zu: %s", r->problem_field, r->problem);
    if (any_quoted || r->problem != NULL) {
        ch_buf_puts(b, " raw ");
        put_str(b, r->raw, r->raw_len);
    }
    ch_buf_putc(b, '\n');
}

/*
 * Checks what every record must satisfy whatever the input: at least one
 * field, the problem index in range, and 'raw' equal to the input bytes
 * just before its line ending, which ends at the reader's new position.
 * 'bytes_before' is the position before the call (blank lines skipped by
 * the call come between the two).
 */
static void check_record(const ch_csv *c, const ch_csv_record *r, const char *data, size_t len,
                         uint64_t bytes_before)
{
    uint64_t raw_end = ch_csv_bytes(c);
    int n_end = 0;

    ASSERT(r->n_fields >= 1);
    ASSERT(r->n_lines >= 1);
    ASSERT(r->line >= 1);
    ASSERT(r->raw_len >= 1);
    if (r->problem != NULL)
        ASSERT(r->problem_field < r->n_fields);
    ASSERT(raw_end <= len);
    /* A record's raw bytes never end in CR or LF, so the line ending is
     * exactly the CR/LF bytes (at most two) before the new position. */
    while (n_end < 2 && raw_end > 0 && (data[raw_end - 1] == '\n' || data[raw_end - 1] == '\r')) {
        raw_end--;
        n_end++;
    }
    ASSERT(raw_end >= bytes_before + r->raw_len);
    ASSERT(memcmp(r->raw, data + raw_end - r->raw_len, r->raw_len) == 0);
}

/*
 * Reads all of 'data' ('len' bytes) with options 'o' (NULL: defaults) and
 * returns the dump text (free with ch_free). Also checks the invariants
 * of check_record() on every record and, at the end, ch_csv_bytes().
 */
static char *dump_opts(const char *data, size_t len, const ch_csv_opts *o)
{
    ch_csv *c = NULL;
    ch_error err;
    ch_buf b;
    char *text;

    ch_buf_init(&b, DUMP_MAX);
    ASSERT_OK(ch_csv_open_mem(data, len, o, &c, &err));
    for (;;) {
        ch_csv_record r;
        int got = 0;
        uint64_t before = ch_csv_bytes(c);
        ch_err rc = ch_csv_next(c, &r, &got, &err);
        if (rc != CH_OK) {
            ASSERT_INT_EQ(err.code, rc);
            ch_buf_printf(&b, "error: %s: %s\n", ch_strerror(rc), err.msg);
            break;
        }
        if (!got) {
            ASSERT_INT_EQ(ch_csv_bytes(c), len);
            ch_buf_printf(&b, "end blank=%llu bytes=%llu bom=%d\n",
                          (unsigned long long)ch_csv_blank_lines(c),
                          (unsigned long long)ch_csv_bytes(c), ch_csv_had_bom(c));
            break;
        }
        check_record(c, &r, data, len, before);
        put_record(&b, &r);
    }
    ch_csv_free(c);
    ASSERT_OK(ch_buf_status(&b));
    text = ch_buf_take(&b, NULL);
    ASSERT(text != NULL);
    return text;
}

/* dump_opts() with 'chunk' bytes a read (0: default) and limits from 'base'. */
static char *dump_chunk(const char *data, size_t len, const ch_csv_opts *base, size_t chunk)
{
    ch_csv_opts o;
    if (base != NULL)
        o = *base;
    else
        ch_csv_opts_default(&o);
    if (chunk != 0)
        o.chunk_bytes = chunk;
    return dump_opts(data, len, &o);
}

/* Dumps 'data' with every chunk size, requires them all to equal 'want'. */
static void expect_opts(const char *data, size_t len, const ch_csv_opts *o, const char *want)
{
    size_t k;
    for (k = 0; k < N_CHUNK_SIZES; k++) {
        char *got = dump_chunk(data, len, o, chunk_sizes[k]);
        if (strcmp(got, want) != 0)
            FAIL("chunk_bytes=%zu: got\n%s--- want\n%s---", chunk_sizes[k], got, want);
        ch_free(got);
    }
}

static void expect_dump(const char *data, const char *want)
{
    expect_opts(data, strlen(data), NULL, want);
}

/* Reads the first record of 'data' with default options. */
static ch_csv *open_first(const char *data, size_t len, ch_csv_record *r)
{
    ch_csv *c = NULL;
    ch_error err;
    int got = 0;
    ASSERT_OK(ch_csv_open_mem(data, len, NULL, &c, &err));
    ASSERT_OK(ch_csv_next(c, r, &got, &err));
    ASSERT_INT_EQ(got, 1);
    return c;
}

static int field_is(const ch_csv_field *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

TEST(quoted_fields)
{
    ch_csv_record r;
    ch_csv *c = open_first("\"a\",b,\"\",\"c d\"\n", 15, &r);
    ASSERT_INT_EQ(r.n_fields, 4);
    ASSERT(field_is(&r.fields[0], "a") && r.fields[0].quoted == 1);
    ASSERT(field_is(&r.fields[1], "b") && r.fields[1].quoted == 0);
    ASSERT(field_is(&r.fields[2], "") && r.fields[2].quoted == 1);
    ASSERT(field_is(&r.fields[3], "c d") && r.fields[3].quoted == 1);
    ASSERT(r.problem == NULL);
    ASSERT_INT_EQ(r.raw_len, 14);
    ch_csv_free(c);
    expect_dump(
        "\"a\",b,\"\",\"c d\"\n",
        "1 [\"a\",\"b\",\"\",\"c d\"] quoted 0,2,3 raw \"\\\"a\\\",b,\\\"\\\",\\\"c d\\\"\"\n"
        "end blank=0 bytes=15 bom=0\n");
}

TEST(doubled_quotes)
{
    ch_csv_record r;
    ch_csv *c = open_first("\"say \"\"hi\"\"\",\"\"\"\",\"\"\"\"\"\"\n", 25, &r);
    ASSERT_INT_EQ(r.n_fields, 3);
    ASSERT(field_is(&r.fields[0], "say \"hi\""));
    ASSERT(field_is(&r.fields[1], "\""));
    ASSERT(field_is(&r.fields[2], "\"\""));
    ASSERT(r.problem == NULL);
    ch_csv_free(c);
}

TEST(embedded_commas_and_newlines)
{
    expect_dump("id,text,n\n"
                "1,\"a,b\",2\n"
                "2,\"line one\nline two\r\nline three\rend\",3\n"
                "3,x,4\n",
                "1 [\"id\",\"text\",\"n\"]\n"
                "2 [\"1\",\"a,b\",\"2\"] quoted 1 raw \"1,\\\"a,b\\\",2\"\n"
                "3-6 [\"2\",\"line one\\nline two\\r\\nline three\\rend\",\"3\"] quoted 1 raw "
                "\"2,\\\"line one\\nline two\\r\\nline three\\rend\\\",3\"\n"
                "7 [\"3\",\"x\",\"4\"]\n"
                "end blank=0 bytes=66 bom=0\n");
}

TEST(line_endings)
{
    const char *want = "1 [\"a\",\"b\"]\n2 [\"c\",\"d\"]\n3 [\"e\",\"\"]\n";
    char buf[128];

    snprintf(buf, sizeof buf, "%send blank=0 bytes=11 bom=0\n", want);
    expect_dump("a,b\nc,d\ne,\n", buf);
    snprintf(buf, sizeof buf, "%send blank=0 bytes=14 bom=0\n", want);
    expect_dump("a,b\r\nc,d\r\ne,\r\n", buf);
    snprintf(buf, sizeof buf, "%send blank=0 bytes=11 bom=0\n", want);
    expect_dump("a,b\rc,d\re,\r", buf);
    /* Mixed, and CR LF split as CR then blank LF is not a thing: \r\n is one. */
    snprintf(buf, sizeof buf, "%send blank=0 bytes=12 bom=0\n", want);
    expect_dump("a,b\r\nc,d\re,\n", buf);
    /* LF CR is two line endings: the CR ends a blank line. */
    expect_dump("a\n\rb\n", "1 [\"a\"]\n3 [\"b\"]\nend blank=1 bytes=5 bom=0\n");
}

TEST(bom)
{
    ch_csv_record r;
    ch_csv *c = open_first("\xEF\xBB\xBFid,x\n", 8, &r);
    ASSERT(field_is(&r.fields[0], "id"));
    ASSERT_INT_EQ(r.line, 1);
    ASSERT_INT_EQ(r.raw_len, 4);
    ASSERT_INT_EQ(ch_csv_had_bom(c), 1);
    ch_csv_free(c);
    expect_dump("\xEF\xBB\xBF", "end blank=0 bytes=3 bom=1\n");
    expect_dump("\xEF\xBB\xBF\n", "end blank=1 bytes=4 bom=1\n");
    /* Only at the very start, and only all three bytes. */
    expect_dump("\xEF\xBB", "1 [\"\\xef\\xbb\"]\nend blank=0 bytes=2 bom=0\n");
    expect_dump("a\n\xEF\xBB\xBF",
                "1 [\"a\"]\n2 [\"\\xef\\xbb\\xbf\"]\nend blank=0 bytes=5 bom=0\n");
}

TEST(empty_file)
{
    expect_dump("", "end blank=0 bytes=0 bom=0\n");
}

TEST(header_only)
{
    expect_dump("a,b,c\n", "1 [\"a\",\"b\",\"c\"]\nend blank=0 bytes=6 bom=0\n");
    expect_dump("a,b,c", "1 [\"a\",\"b\",\"c\"]\nend blank=0 bytes=5 bom=0\n");
}

TEST(empty_trailing_line)
{
    /* The text after the last line ending is empty: no record, no blank
     * line. A second line ending does make a blank line. */
    expect_dump("a\nb\n", "1 [\"a\"]\n2 [\"b\"]\nend blank=0 bytes=4 bom=0\n");
    expect_dump("a\nb\n\n", "1 [\"a\"]\n2 [\"b\"]\nend blank=1 bytes=5 bom=0\n");
    expect_dump("a\r\nb\r\n\r\n", "1 [\"a\"]\n2 [\"b\"]\nend blank=1 bytes=8 bom=0\n");
}

TEST(missing_final_newline)
{
    expect_dump("a,b\nc,d", "1 [\"a\",\"b\"]\n2 [\"c\",\"d\"]\nend blank=0 bytes=7 bom=0\n");
    expect_dump(
        "a,b\n\"c\"",
        "1 [\"a\",\"b\"]\n2 [\"c\"] quoted 0 raw \"\\\"c\\\"\"\nend blank=0 bytes=7 bom=0\n");
    expect_dump("a,b\nc,", "1 [\"a\",\"b\"]\n2 [\"c\",\"\"]\nend blank=0 bytes=6 bom=0\n");
}

TEST(blank_lines_in_the_middle)
{
    ch_csv *c = NULL;
    ch_error err;

    expect_dump("h\n\n1\r\n\r\n\r2\n\n\n3\n",
                "1 [\"h\"]\n3 [\"1\"]\n6 [\"2\"]\n9 [\"3\"]\nend blank=5 bytes=15 bom=0\n");
    expect_dump("\n\n\n", "end blank=3 bytes=3 bom=0\n");
    /* A line of spaces is not blank, and spaces are kept. */
    expect_dump("a, b \n \n", "1 [\"a\",\" b \"]\n2 [\" \"]\nend blank=0 bytes=8 bom=0\n");
    ASSERT_OK(ch_csv_open_mem("", 0, NULL, &c, &err));
    ASSERT_INT_EQ(ch_csv_blank_lines(c), 0);
    ch_csv_free(c);
}

TEST(ragged_rows)
{
    expect_dump(
        "a,b,c\n1\n1,2,3,4,5\n,\n",
        "1 [\"a\",\"b\",\"c\"]\n2 [\"1\"]\n3 [\"1\",\"2\",\"3\",\"4\",\"5\"]\n4 [\"\",\"\"]\n"
        "end blank=0 bytes=20 bom=0\n");
}

/* Builds "id,<field>,end\n2,x,y\n" with a 1 MB field, quoted or not. */
static char *big_input(int quoted, size_t *len)
{
    const size_t n = (size_t)1 << 20;
    ch_buf b;
    char *p;

    ch_buf_init(&b, 4 * n);
    ch_buf_puts(&b, "id,");
    if (quoted)
        ch_buf_putc(&b, '"');
    p = ch_buf_reserve(&b, n);
    ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 26);
    if (quoted) {
        p[1000] = '\n';
        p[2000] = ',';
    }
    ch_buf_commit(&b, n);
    if (quoted)
        ch_buf_puts(&b, "\"\"\"");
    ch_buf_puts(&b, ",end\n2,x,y\n");
    p = ch_buf_take(&b, len);
    ASSERT(p != NULL);
    return p;
}

static void check_big(int quoted)
{
    size_t len;
    char *data = big_input(quoted, &len);
    ch_csv_opts o;
    ch_csv *c = NULL;
    ch_csv_record r;
    ch_error err;
    int got = 0;

    /* Default limits: fine, whatever the chunk size. */
    ch_csv_opts_default(&o);
    for (size_t k = 0; k < N_CHUNK_SIZES; k++) {
        o.chunk_bytes = chunk_sizes[k] == 0 ? o.chunk_bytes : chunk_sizes[k];
        ASSERT_OK(ch_csv_open_mem(data, len, &o, &c, &err));
        ASSERT_OK(ch_csv_next(c, &r, &got, &err));
        ASSERT_INT_EQ(got, 1);
        ASSERT_INT_EQ(r.n_fields, 3);
        ASSERT_INT_EQ(r.fields[1].len, ((size_t)1 << 20) + (quoted ? 1 : 0));
        ASSERT_INT_EQ(r.fields[1].p[0], 'a');
        ASSERT_INT_EQ(r.fields[1].p[25], 'z');
        if (quoted)
            ASSERT_INT_EQ(r.fields[1].p[r.fields[1].len - 1], '"');
        ASSERT(field_is(&r.fields[2], "end"));
        ASSERT_INT_EQ(r.n_lines, quoted ? 2 : 1);
        ASSERT_OK(ch_csv_next(c, &r, &got, &err));
        ASSERT_INT_EQ(got, 1);
        ASSERT_INT_EQ(r.line, quoted ? 3 : 2);
        ASSERT_OK(ch_csv_next(c, &r, &got, &err));
        ASSERT_INT_EQ(got, 0);
        ch_csv_free(c);
        ch_csv_opts_default(&o);
    }

    /* 64 KiB limit: CH_ELIMIT naming line 1, the second record unread. */
    for (size_t k = 0; k < N_CHUNK_SIZES; k++) {
        ch_csv_opts_default(&o);
        o.max_record_bytes = (size_t)64 << 10;
        if (chunk_sizes[k] != 0)
            o.chunk_bytes = chunk_sizes[k];
        ASSERT_OK(ch_csv_open_mem(data, len, &o, &c, &err));
        ASSERT_ERR(ch_csv_next(c, &r, &got, &err), CH_ELIMIT);
        ASSERT_CONTAINS(err.msg, "line 1:");
        ASSERT_CONTAINS(err.msg, "65536");
        ASSERT_ERR(ch_csv_next(c, &r, &got, &err), CH_EINVAL);
        ch_csv_free(c);
    }
    ch_free(data);
}

TEST(one_megabyte_field)
{
    check_big(0);
    check_big(1);
}

TEST(record_limit_edges)
{
    ch_csv_opts o;
    ch_csv_opts_default(&o);
    o.max_record_bytes = 5;
    /* Exactly 5 bytes is fine, with any line ending; 6 is not. */
    expect_opts("abcde\r\nabcde\rabcde\nabcde", 24, &o,
                "1 [\"abcde\"]\n2 [\"abcde\"]\n3 [\"abcde\"]\n4 [\"abcde\"]\n"
                "end blank=0 bytes=24 bom=0\n");
    expect_opts("abcde\nabcdef\n", 13, &o,
                "1 [\"abcde\"]\nerror: limit exceeded: line 2: record longer than 5 bytes\n");
    expect_opts("abcde\nabcdef", 12, &o,
                "1 [\"abcde\"]\nerror: limit exceeded: line 2: record longer than 5 bytes\n");
}

TEST(too_many_fields)
{
    ch_csv_opts o;
    ch_csv_opts_default(&o);
    o.max_fields = 3;
    expect_opts("a,b,c\n1,2,3\n\n1,2,3,4\n", 21, &o,
                "1 [\"a\",\"b\",\"c\"]\n2 [\"1\",\"2\",\"3\"]\n"
                "error: limit exceeded: line 4: record has more than 3 fields\n");
    o.max_fields = 1;
    expect_opts("a\n,", 3, &o,
                "1 [\"a\"]\nerror: limit exceeded: line 2: record has more than 1 fields\n");
    /* Many fields within a large limit (the field array grows). */
    {
        ch_buf b;
        char *data;
        size_t len;
        ch_csv *c = NULL;
        ch_csv_record r;
        ch_error err;
        int got = 0;

        ch_buf_init(&b, 1 << 20);
        for (int i = 0; i < 5000; i++)
            ch_buf_printf(&b, "%s%d", i ? "," : "", i);
        data = ch_buf_take(&b, &len);
        ASSERT(data != NULL);
        ch_csv_opts_default(&o);
        o.max_fields = 5000;
        ASSERT_OK(ch_csv_open_mem(data, len, &o, &c, &err));
        ASSERT_OK(ch_csv_next(c, &r, &got, &err));
        ASSERT_INT_EQ(r.n_fields, 5000);
        ASSERT(field_is(&r.fields[4999], "4999"));
        ch_csv_free(c);
        o.max_fields = 4999;
        ASSERT_OK(ch_csv_open_mem(data, len, &o, &c, &err));
        ASSERT_ERR(ch_csv_next(c, &r, &got, &err), CH_ELIMIT);
        ch_csv_free(c);
        ch_free(data);
    }
}

TEST(non_utf8_bytes)
{
    /* Latin-1, a lone continuation byte, an overlong NUL: all unchanged. */
    const char data[] = "caf\xE9,\x80,\xC0\x80\n\"\xFF\xFE\"\n";
    ch_csv_record r;
    ch_csv *c = open_first(data, sizeof data - 1, &r);
    ASSERT_INT_EQ(r.n_fields, 3);
    ASSERT(field_is(&r.fields[0], "caf\xE9"));
    ASSERT(field_is(&r.fields[1], "\x80"));
    ASSERT(field_is(&r.fields[2], "\xC0\x80"));
    ASSERT(r.problem == NULL);
    ch_csv_free(c);
    expect_dump(data, "1 [\"caf\\xe9\",\"\\x80\",\"\\xc0\\x80\"]\n"
                      "2 [\"\\xff\\xfe\"] quoted 0 raw \"\\\"\\xff\\xfe\\\"\"\n"
                      "end blank=0 bytes=15 bom=0\n");
}

TEST(problem_quote_in_unquoted_field)
{
    ch_csv_record r;
    ch_csv *c = open_first("a,b\"c\"d,e\"\n", 11, &r);
    ASSERT_INT_EQ(r.n_fields, 3);
    ASSERT(field_is(&r.fields[1], "b\"c\"d"));
    ASSERT(field_is(&r.fields[2], "e\""));
    ASSERT(r.problem != NULL);
    ASSERT_INT_EQ(r.problem_field, 1);
    ASSERT_CONTAINS(r.problem, "quote");
    ch_csv_free(c);
    /* The next record is clean again. */
    expect_dump("x\"\nok\n",
                "1 [\"x\\\"\"] problem 0: quote character inside an unquoted field raw \"x\\\"\"\n"
                "2 [\"ok\"]\nend blank=0 bytes=6 bom=0\n");
}

TEST(problem_text_after_closing_quote)
{
    ch_csv_record r;
    ch_csv *c = open_first("1,\"ab\"cd,\"x\"\"\" y\n", 17, &r);
    ASSERT_INT_EQ(r.n_fields, 3);
    ASSERT(field_is(&r.fields[1], "abcd"));
    ASSERT(r.fields[1].quoted == 1);
    ASSERT(field_is(&r.fields[2], "x\" y"));
    ASSERT(r.problem != NULL);
    ASSERT_INT_EQ(r.problem_field, 1);
    ASSERT_CONTAINS(r.problem, "closing quote");
    ASSERT_INT_EQ(r.raw_len, 16);
    ch_csv_free(c);
    /* A space after the closing quote counts too (whitespace is data). */
    expect_dump("\"a\" ,b\n", "1 [\"a \",\"b\"] quoted 0 problem 0: text after the closing quote "
                              "of a quoted field raw \"\\\"a\\\" ,b\"\n"
                              "end blank=0 bytes=7 bom=0\n");
}

TEST(problem_nul_byte)
{
    const char data[] = "a,b\0c\n\"x\0\",y\n";
    ch_csv_record r;
    ch_csv *c = open_first(data, sizeof data - 1, &r);
    ASSERT_INT_EQ(r.n_fields, 2);
    ASSERT_INT_EQ(r.fields[1].len, 3);
    ASSERT(memcmp(r.fields[1].p, "b\0c", 3) == 0);
    ASSERT_CONTAINS(r.problem, "NUL");
    ASSERT_INT_EQ(r.problem_field, 1);
    ch_csv_free(c);
    expect_opts(data, sizeof data - 1, NULL,
                "1 [\"a\",\"b\\u0000c\"] problem 1: NUL byte in a field raw \"a,b\\u0000c\"\n"
                "2 [\"x\\u0000\",\"y\"] quoted 0 problem 0: NUL byte in a field raw "
                "\"\\\"x\\u0000\\\",y\"\n"
                "end blank=0 bytes=13 bom=0\n");
    /* A NUL at the very end of input is data, not the end. */
    expect_opts("a\0", 2, NULL,
                "1 [\"a\\u0000\"] problem 0: NUL byte in a field raw \"a\\u0000\"\n"
                "end blank=0 bytes=2 bom=0\n");
}

TEST(unclosed_quote)
{
    ch_csv *c = NULL;
    ch_csv_record r;
    ch_error err;
    int got = 0;
    const char *data = "h1,h2\n\n1,\"two\nlines\",\"3\n4,5\n6,7\n";

    expect_dump(data, "1 [\"h1\",\"h2\"]\n"
                      "error: malformed input: line 4: quoted field opened here is never closed\n");
    ASSERT_OK(ch_csv_open_mem(data, strlen(data), NULL, &c, &err));
    ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_ERR(ch_csv_next(c, &r, &got, &err), CH_EFORMAT);
    ASSERT_INT_EQ(err.code, CH_EFORMAT);
    ASSERT_STR_EQ(err.msg, "line 4: quoted field opened here is never closed");
    /* After an error the reader refuses to go on. */
    ASSERT_ERR(ch_csv_next(c, &r, &got, &err), CH_EINVAL);
    ch_csv_free(c);
    expect_dump("\"", "error: malformed input: line 1: quoted field opened here is never closed\n");
    expect_dump("a,\"b\"\"", "error: malformed input: line 1: quoted field opened here is never "
                             "closed\n");
}

TEST(chunk_boundaries)
{
    /* Inputs whose interesting bytes (CRLF, "", quoted breaks, BOM) fall
     * on every offset for some chunk size; expect_dump() reads each with
     * every size and the expected text is fixed. */
    expect_dump(
        "\xEF\xBB\xBF\"a\"\"\",\"\r\n\",x\r\n\r\n\"\"\r\ny,\"\"\"\"\r",
        "1-2 [\"a\\\"\",\"\\r\\n\",\"x\"] quoted 0,1 raw \"\\\"a\\\"\\\"\\\",\\\"\\r\\n\\\",x\"\n"
        "4 [\"\"] quoted 0 raw \"\\\"\\\"\"\n"
        "5 [\"y\",\"\\\"\"] quoted 1 raw \"y,\\\"\\\"\\\"\\\"\"\n"
        "end blank=1 bytes=30 bom=1\n");
    /* And: every prefix of a tricky input reads the same way with every
     * chunk size (results compared with the default-size reading). */
    {
        const char *in = "a,\"b\"\"c\"\r\n\r\"d\re\"x,\"\"\n\n\"\",f\r\r\n\"g\"";
        size_t n = strlen(in);
        for (size_t len = 0; len <= n; len++) {
            char *want = dump_chunk(in, len, NULL, 0);
            expect_opts(in, len, NULL, want);
            ch_free(want);
        }
    }
}

TEST(raw_bytes)
{
    ch_csv *c = NULL;
    ch_csv_record r;
    ch_error err;
    int got = 0;
    const char *data = "a,\"b\"\"\",c\r\n\"x\ny\"\r\n";

    ASSERT_OK(ch_csv_open_mem(data, strlen(data), NULL, &c, &err));
    ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_INT_EQ(r.raw_len, 9);
    ASSERT(memcmp(r.raw, "a,\"b\"\"\",c", 9) == 0);
    ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_INT_EQ(r.raw_len, 5);
    ASSERT(memcmp(r.raw, "\"x\ny\"", 5) == 0);
    ASSERT_INT_EQ(r.line, 2);
    ASSERT_INT_EQ(r.n_lines, 2);
    ch_csv_free(c);
}

TEST(sha256_of_input)
{
    const char *inputs[] = {"", "a,b\n", "\xEF\xBB\xBFx\r\n\n\"q\"\"\"\n", "no newline"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t len = strlen(inputs[i]);
        char want[CH_SHA256_HEX_LEN + 1];
        ch_error err;

        ASSERT_OK(ch_sha256_hex(inputs[i], len, want, &err));
        for (size_t k = 0; k < N_CHUNK_SIZES; k++) {
            ch_csv_opts o;
            ch_csv *c = NULL;
            ch_csv_record r;
            char hex[CH_SHA256_HEX_LEN + 1];
            int got = 1;

            ch_csv_opts_default(&o);
            if (chunk_sizes[k] != 0)
                o.chunk_bytes = chunk_sizes[k];
            ASSERT_OK(ch_csv_open_mem(inputs[i], len, &o, &c, &err));
            ASSERT_ERR(ch_csv_sha256(c, hex, &err), CH_EINVAL); /* not finished */
            while (got)
                ASSERT_OK(ch_csv_next(c, &r, &got, &err));
            ASSERT_OK(ch_csv_sha256(c, hex, &err));
            ASSERT_STR_EQ(hex, want);
            ch_csv_free(c);
        }
    }
}

TEST(sha256_off)
{
    ch_csv_opts o;
    ch_csv *c = NULL;
    ch_csv_record r;
    ch_error err;
    char hex[CH_SHA256_HEX_LEN + 1];
    int got = 1;

    ch_csv_opts_default(&o);
    o.hash = 0;
    ASSERT_OK(ch_csv_open_mem("a\n", 2, &o, &c, &err));
    while (got)
        ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_ERR(ch_csv_sha256(c, hex, &err), CH_EINVAL);
    ch_csv_free(c);
}

TEST(bytes_consumed)
{
    ch_csv *c = NULL;
    ch_csv_record r;
    ch_error err;
    int got = 0;
    const char *data = "\xEF\xBB\xBF"
                       "ab\r\n\ncd\n";

    ASSERT_OK(ch_csv_open_mem(data, strlen(data), NULL, &c, &err));
    ASSERT_INT_EQ(ch_csv_bytes(c), 0);
    ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_INT_EQ(ch_csv_bytes(c), 7); /* BOM + "ab\r\n" */
    ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_INT_EQ(ch_csv_bytes(c), 11);
    ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_INT_EQ(got, 0);
    ASSERT_INT_EQ(ch_csv_bytes(c), 11);
    /* End of input is sticky. */
    ASSERT_OK(ch_csv_next(c, &r, &got, &err));
    ASSERT_INT_EQ(got, 0);
    ch_csv_free(c);
}

/* Writes 'len' bytes to a new file in the test's temporary directory. */
static const char *write_temp(const char *name, const char *data, size_t len)
{
    static char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", ch_test_tmpdir(), name);
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_INT_EQ(fwrite(data, 1, len, f), len);
    ASSERT_INT_EQ(fclose(f), 0);
    return path;
}

/* Reads a whole file via ch_csv_open_file and returns the dump text. */
static char *dump_file(const char *path, const ch_csv_opts *o)
{
    ch_csv *c = NULL;
    ch_error err;
    ch_buf b;
    char *text;

    ch_buf_init(&b, DUMP_MAX);
    ASSERT_OK(ch_csv_open_file(path, o, &c, &err));
    for (;;) {
        ch_csv_record r;
        int got = 0;
        ch_err rc = ch_csv_next(c, &r, &got, &err);
        if (rc != CH_OK) {
            ch_buf_printf(&b, "error: %s: %s\n", ch_strerror(rc), err.msg);
            break;
        }
        if (!got) {
            ch_buf_printf(&b, "end blank=%llu bytes=%llu bom=%d\n",
                          (unsigned long long)ch_csv_blank_lines(c),
                          (unsigned long long)ch_csv_bytes(c), ch_csv_had_bom(c));
            break;
        }
        put_record(&b, &r);
    }
    ch_csv_free(c);
    text = ch_buf_take(&b, NULL);
    ASSERT(text != NULL);
    return text;
}

TEST(open_file_and_stdin)
{
    const char *data = "id,v\r\n1,\"a\r\nb\"\r\n2,c";
    const char *path = write_temp("in.csv", data, strlen(data));
    char *from_mem = dump_chunk(data, strlen(data), NULL, 0);
    char *from_file;
    ch_csv_opts o;
    int fd;

    for (size_t k = 0; k < N_CHUNK_SIZES; k++) {
        ch_csv_opts_default(&o);
        if (chunk_sizes[k] != 0)
            o.chunk_bytes = chunk_sizes[k];
        from_file = dump_file(path, &o);
        ASSERT_STR_EQ(from_file, from_mem);
        ch_free(from_file);
    }
    /* "-" reads standard input (this test runs in its own process). */
    fd = open(path, O_RDONLY);
    ASSERT(fd >= 0);
    ASSERT(dup2(fd, STDIN_FILENO) == STDIN_FILENO);
    close(fd);
    from_file = dump_file("-", NULL);
    ASSERT_STR_EQ(from_file, from_mem);
    ch_free(from_file);
    ch_free(from_mem);
}

TEST(open_errors)
{
    ch_csv *c = NULL;
    ch_csv_record r;
    ch_csv_opts o;
    ch_error err;
    int got = 0;
    char path[1024];

    snprintf(path, sizeof path, "%s/missing.csv", ch_test_tmpdir());
    ASSERT_ERR(ch_csv_open_file(path, NULL, &c, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "missing.csv");
    ASSERT(c == NULL);
    /* A directory opens but cannot be read. */
    ASSERT_OK(ch_csv_open_file(ch_test_tmpdir(), NULL, &c, &err));
    ASSERT_ERR(ch_csv_next(c, &r, &got, &err), CH_EIO);
    ch_csv_free(c);
    c = NULL;
    /* Bad options. */
    ch_csv_opts_default(&o);
    o.chunk_bytes = 0;
    ASSERT_ERR(ch_csv_open_mem("a", 1, &o, &c, &err), CH_EINVAL);
    ch_csv_opts_default(&o);
    o.max_fields = 0;
    ASSERT_ERR(ch_csv_open_mem("a", 1, &o, &c, &err), CH_EINVAL);
    ch_csv_opts_default(&o);
    o.max_record_bytes = 0;
    ASSERT_ERR(ch_csv_open_mem("a", 1, &o, &c, &err), CH_EINVAL);
    ASSERT_ERR(ch_csv_open_mem(NULL, 1, NULL, &c, &err), CH_EINVAL);
    ASSERT(c == NULL);
    ASSERT_OK(ch_csv_open_mem(NULL, 0, NULL, &c, &err));
    ch_csv_free(c);
    ch_csv_free(NULL);
    /* A NULL error buffer is allowed. */
    ASSERT_ERR(ch_csv_open_file(path, NULL, &c, NULL), CH_EIO);
}

/*
 * Fails allocation N for N = 1, 2, ... through a whole read of an input
 * that needs every kind of allocation (buffer growth, field growth,
 * scratch), until a run succeeds. Every failure must be CH_ENOMEM; leaks
 * show up under ASan and valgrind.
 */
TEST(out_of_memory)
{
    ch_csv_opts o;
    ch_buf b;
    char *data;
    size_t len;
    long n;

    ch_buf_init(&b, 1 << 20);
    for (int i = 0; i < 40; i++)
        ch_buf_printf(&b, "%d,\"q\"\"%d\",", i, i);
    ch_buf_puts(&b, "end\n");
    data = ch_buf_take(&b, &len);
    ASSERT(data != NULL);
    ch_csv_opts_default(&o);
    o.chunk_bytes = 16;
    for (n = 1; n < 1000; n++) {
        ch_csv *c = NULL;
        ch_csv_record r;
        ch_error err;
        ch_err rc;
        int got = 1;
        int records = 0;

        ch_alloc_fail_after(n);
        rc = ch_csv_open_mem(data, len, &o, &c, &err);
        while (rc == CH_OK && got) {
            rc = ch_csv_next(c, &r, &got, &err);
            records += rc == CH_OK && got;
        }
        ch_alloc_fail_after(0);
        ch_csv_free(c);
        if (rc == CH_OK) {
            ASSERT_INT_EQ(records, 1);
            break;
        }
        ASSERT_INT_EQ(rc, CH_ENOMEM);
    }
    ASSERT(n > 3);
    ASSERT(n < 1000);
    ch_free(data);
}

/* Reads the file at 'path' into a new buffer (free with ch_free). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ch_buf b;
    char *p;

    if (f == NULL)
        return NULL;
    ch_buf_init(&b, (size_t)256 << 20);
    for (;;) {
        char *dst = ch_buf_reserve(&b, 65536);
        size_t n;
        ASSERT(dst != NULL);
        n = fread(dst, 1, 65536, f);
        ch_buf_commit(&b, n);
        if (n < 65536)
            break;
    }
    fclose(f);
    p = ch_buf_take(&b, len);
    ASSERT(p != NULL);
    return p;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Applies "key=value ..." ('len' bytes at 's') to 'o'. */
static void parse_opts(const char *name, const char *s, size_t len, ch_csv_opts *o)
{
    const char *end = s + len;
    while (s < end) {
        char key[64];
        char val[64];
        size_t kl = 0;
        size_t vl = 0;
        unsigned long long v;
        char *stop;

        while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
            s++;
        if (s == end)
            break;
        while (s < end && *s != '=' && kl + 1 < sizeof key)
            key[kl++] = *s++;
        key[kl] = '\0';
        if (s == end || *s != '=')
            FAIL("%s: bad option '%s'", name, key);
        s++;
        while (s < end && *s >= '0' && *s <= '9' && vl + 1 < sizeof val)
            val[vl++] = *s++;
        val[vl] = '\0';
        errno = 0;
        v = strtoull(val, &stop, 10);
        if (vl == 0 || errno != 0 || *stop != '\0')
            FAIL("%s: bad value for option '%s'", name, key);
        if (strcmp(key, "max_fields") == 0)
            o->max_fields = (size_t)v;
        else if (strcmp(key, "max_record_bytes") == 0)
            o->max_record_bytes = (size_t)v;
        else
            FAIL("%s: unknown option '%s'", name, key);
    }
}

/*
 * Splits an expected file into its comment lines (kept for an update)
 * and its dump text, and applies "# opts:" settings to 'o'.
 */
static void parse_expected(const char *name, const char *text, ch_csv_opts *o, ch_buf *comments,
                           ch_buf *want)
{
    const char *p = text;
    while (*p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (*p != '#') {
            ch_buf_append(want, p, n);
        } else {
            ch_buf_append(comments, p, n);
            if (strncmp(p, "# opts:", 7) == 0)
                parse_opts(name, p + 7, n - 7, o);
        }
        p += n;
    }
}

/* Runs one case: NAME.csv against NAME.expected. Returns 1 if it passed. */
static int run_case(const char *dir, const char *csv_name)
{
    char path[1024];
    char exp_path[1024];
    size_t base_len = strlen(csv_name) - 4;
    size_t len;
    size_t exp_len;
    char *data;
    char *exp_text;
    ch_csv_opts o;
    ch_buf comments;
    ch_buf want;
    int ok = 1;

    if (snprintf(path, sizeof path, "%s/%s", dir, csv_name) >= (int)sizeof path ||
        snprintf(exp_path, sizeof exp_path, "%s/%.*s.expected", dir, (int)base_len, csv_name) >=
            (int)sizeof exp_path)
        FAIL("%s: path too long", csv_name);
    data = slurp(path, &len);
    ASSERT(data != NULL);
    exp_text = slurp(exp_path, &exp_len);
    if (exp_text == NULL)
        FAIL("%s: missing %s", csv_name, exp_path);
    ch_csv_opts_default(&o);
    ch_buf_init(&comments, 1 << 20);
    ch_buf_init(&want, (size_t)64 << 20);
    parse_expected(csv_name, exp_text, &o, &comments, &want);
    ASSERT_OK(ch_buf_status(&want));

    if (getenv("CH_CASES_UPDATE") != NULL) {
        char *got = dump_chunk(data, len, &o, 0);
        FILE *f = fopen(exp_path, "wb");
        ASSERT(f != NULL);
        fwrite(comments.data ? comments.data : "", 1, comments.len, f);
        fputs(got, f);
        fclose(f);
        ch_free(got);
        fprintf(stderr, "    updated %s\n", exp_path);
    } else {
        const char *w = want.data ? want.data : "";
        for (size_t k = 0; k < N_CHUNK_SIZES && ok; k++) {
            char *got = dump_chunk(data, len, &o, chunk_sizes[k]);
            if (strcmp(got, w) != 0) {
                fprintf(stderr, "    case %s, chunk_bytes=%zu: got\n%s--- want\n%s---\n", csv_name,
                        chunk_sizes[k], got, w);
                ok = 0;
            }
            ch_free(got);
        }
        if (ok) {
            char *got = dump_file(path, &o);
            if (strcmp(got, w) != 0) {
                fprintf(stderr, "    case %s, from file: got\n%s--- want\n%s---\n", csv_name, got,
                        w);
                ok = 0;
            }
            ch_free(got);
        }
    }
    ch_buf_reset(&comments);
    ch_buf_reset(&want);
    ch_free(exp_text);
    ch_free(data);
    return ok;
}

TEST(data_cases)
{
    char dir[1024];
    DIR *d;
    struct dirent *e;
    char *names[512];
    size_t n = 0;
    size_t failed = 0;

    snprintf(dir, sizeof dir, "%s", ch_test_path("tests/cases/csv"));
    d = opendir(dir);
    if (d == NULL)
        FAIL("cannot open %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".csv") == 0) {
            ASSERT(n < sizeof names / sizeof names[0]);
            names[n] = ch_strdup(e->d_name);
            ASSERT(names[n] != NULL);
            n++;
        }
    }
    closedir(d);
    ASSERT(n > 0);
    qsort(names, n, sizeof names[0], cmp_names);
    for (size_t i = 0; i < n; i++) {
        failed += !run_case(dir, names[i]);
        ch_free(names[i]);
    }
    if (failed > 0)
        FAIL("%zu of %zu CSV cases failed", failed, n);
    fprintf(stderr, "    %zu CSV cases passed\n", n);
}

TEST_MAIN(T(quoted_fields), T(doubled_quotes), T(embedded_commas_and_newlines), T(line_endings),
          T(bom), T(empty_file), T(header_only), T(empty_trailing_line), T(missing_final_newline),
          T(blank_lines_in_the_middle), T(ragged_rows), T(one_megabyte_field),
          T(record_limit_edges), T(too_many_fields), T(non_utf8_bytes),
          T(problem_quote_in_unquoted_field), T(problem_text_after_closing_quote),
          T(problem_nul_byte), T(unclosed_quote), T(chunk_boundaries), T(raw_bytes),
          T(sha256_of_input), T(sha256_off), T(bytes_consumed), T(open_file_and_stdin),
          T(open_errors), T(out_of_memory), T(data_cases))
