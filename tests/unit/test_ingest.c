/*
 * test_ingest.c -- CSV through a schema into a frame, through
 * include/ch/ingest.h only.
 *
 * Data-driven cases live in tests/cases/ingest/: NAME.csv is read through
 * config/telco.schema.json (or the schema the case names) and checked
 * against NAME.expect, one directive a line ('#' starts a comment):
 *
 *     schema <file>             schema under tests/cases/ingest/
 *     opt <key>=<value>         max_reject_rate, check_duplicate_ids,
 *                               keep_frame, max_examples
 *     result <CH_...>           the expected return code (default CH_OK)
 *     message <text>            the error message contains <text>
 *     read|accepted|rejected|blank|positive|frame_rows <n>
 *     reason <name> <n>         rejected rows by reason (unlisted: 0)
 *     reject <line> <column|-> <reason> [<value>]
 *                               the rejected rows, all of them, in order
 *     missing|unknown <column> <n>           report column counts
 *     level <column> <count> <text>          report count of one level
 *     frame_levels <column> <n>              levels in the frame's dictionary
 *     cell <row> <column> <text>             a frame cell as text (NA if missing)
 *
 * In <value> and <text>, \n, \r, \t and \\ are escapes. The cases run
 * with max_reject_rate 1 unless they set it, so that rejects are counted
 * rather than fatal. Besides the directives every case that returns a
 * report is checked for consistency: counts add up, the SHA-256 and size
 * match the file, the JSON report parses and agrees, the examples and the
 * rejects file (header "line,column,reason,value,record", then one row per
 * rejected row with the record's original text) list the rejected rows,
 * and the frame has the accepted rows. Adding a case is adding two files.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/csv.h"
#include "ch/frame.h"
#include "ch/hash.h"
#include "ch/ingest.h"
#include "ch/json.h"
#include "ch/schema.h"
#include "../harness.h"

#define MAX_FILE_BYTES ((size_t)256 << 20) /* cap on files the tests read whole */

/* ---- helpers ------------------------------------------------------------ */

/* Reads a whole file (free with ch_free); NULL if it cannot be opened.
 * The bytes are NUL-terminated (not counted in '*len'). */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ch_buf b;
    char *p;

    if (f == NULL)
        return NULL;
    ch_buf_init(&b, MAX_FILE_BYTES);
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
    if (b.len == 0)
        ch_buf_puts(&b, "");
    p = ch_buf_take(&b, len);
    if (p == NULL) {
        p = ch_malloc(1);
        ASSERT(p != NULL);
        p[0] = '\0';
        *len = 0;
    }
    return p;
}

static ch_schema *load_schema(const char *path)
{
    ch_schema *s = NULL;
    ch_error err;
    ch_err rc = ch_schema_load_file(path, &s, &err);
    if (rc != CH_OK)
        FAIL("loading %s: %s: %s", path, ch_strerror(rc), err.msg);
    return s;
}

static ch_schema *load_telco_schema(void)
{
    return load_schema(ch_test_path("config/telco.schema.json"));
}

static const char *case_path(const char *name, const char *ext)
{
    static char buf[1024];
    char rel[512];
    snprintf(rel, sizeof rel, "tests/cases/ingest/%s%s", name, ext);
    snprintf(buf, sizeof buf, "%s", ch_test_path(rel));
    return buf;
}

/* A path in this test's temporary directory (static buffer: copy it to
 * keep it across calls). */
static const char *tmp_file(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", ch_test_tmpdir(), name);
    return buf;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT(fwrite(data, 1, len, f) == len);
    ASSERT(fclose(f) == 0);
}

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

static ch_reason reason_from_name(const char *case_name, const char *s)
{
    for (int r = 0; r < CH_REASON_COUNT_; r++)
        if (strcmp(ch_reason_name((ch_reason)r), s) == 0)
            return (ch_reason)r;
    FAIL("%s: unknown reason \"%s\"", case_name, s);
}

/* Undoes \n, \r, \t and \\ in place. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r != '\0'; r++) {
        if (r[0] == '\\' && r[1] != '\0') {
            r++;
            *w++ = *r == 'n' ? '\n' : *r == 'r' ? '\r' : *r == 't' ? '\t' : *r;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* Cell 'i' of frame column 'j' as text: numbers in shortest round-trip
 * form, categories as their level, "NA" when missing. */
static void cell_text(const ch_frame *f, size_t j, size_t i, char *out, size_t cap)
{
    const uint8_t *m = ch_frame_missing(f, j);
    if (m != NULL && m[i]) {
        snprintf(out, cap, "NA");
        return;
    }
    switch (ch_frame_col_type(f, j)) {
    case CH_COL_NUM: {
        char tmp[64];
        ch_fmt_double(tmp, ch_frame_num(f, j)[i]);
        snprintf(out, cap, "%s", tmp);
        break;
    }
    case CH_COL_CAT: {
        int32_t k = ch_frame_codes(f, j)[i];
        const char *lv = k >= 0 ? ch_frame_level(f, j, (size_t)k) : NULL;
        snprintf(out, cap, "%s", lv != NULL ? lv : "NA");
        break;
    }
    case CH_COL_STR: {
        const char *s = ch_frame_str(f, j, i, NULL);
        snprintf(out, cap, "%s", s != NULL ? s : "NA");
        break;
    }
    }
}

/* The physical text of the record starting on line 'line' of 'data' that
 * is 'want_len' bytes long (spanning more lines if needed), without its
 * line end, into 'b'. */
static void physical_record(const char *data, size_t len, uint64_t line, size_t want_len, ch_buf *b)
{
    const char *p = data;
    const char *end = data + len;
    ch_buf_clear(b);
    for (uint64_t l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl != NULL ? nl + 1 : end;
    }
    for (int first = 1; p < end; first = 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        size_t n;
        if (!first)
            ch_buf_putc(b, '\n');
        ch_buf_append(b, p, (size_t)(stop - p));
        n = b->len - (b->len > 0 && b->data[b->len - 1] == '\r');
        p = nl != NULL ? nl + 1 : end;
        if (n >= want_len)
            break;
    }
    if (b->len > 0 && b->data[b->len - 1] == '\r')
        b->len--;
}

/* ---- the data-driven runner ---------------------------------------------- */

#define MAX_LINES   256
#define MAX_REJECTS 64

typedef struct reject_want {
    unsigned long long line;
    const char *column; /* "" for a whole-row problem */
    ch_reason reason;
    const char *value; /* NULL: not checked */
} reject_want;

typedef struct ingest_case {
    const char *name;
    char *text;             /* the .expect text, split into lines in place */
    char *lines[MAX_LINES]; /* directive lines: "<key>\0<arg>" */
    char *args[MAX_LINES];
    size_t n_lines;
    char schema_path[1024];
    ch_ingest_opts opts;
    ch_err result;
    reject_want rejects[MAX_REJECTS];
    size_t n_rejects;
} ingest_case;

static int case_failed;
static const char *case_name_now;

static void case_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void case_fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    case %s: ", case_name_now);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    case_failed = 1;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            case_fail(__VA_ARGS__);                                                                \
    } while (0)

static void parse_case(const char *name, ingest_case *c)
{
    size_t len;
    char *line;

    memset(c, 0, sizeof *c);
    c->name = name;
    c->text = slurp(case_path(name, ".expect"), &len);
    if (c->text == NULL)
        FAIL("%s: cannot read %s", name, case_path(name, ".expect"));
    snprintf(c->schema_path, sizeof c->schema_path, "%s", ch_test_path("config/telco.schema.json"));
    ch_ingest_opts_default(&c->opts);
    c->opts.max_reject_rate = 1.0;
    c->result = CH_OK;
    for (line = c->text; line != NULL && *line != '\0';) {
        char *eol = strchr(line, '\n');
        char *arg;
        if (eol != NULL)
            *eol = '\0';
        if (line[0] != '#' && line[0] != '\0') {
            arg = strchr(line, ' ');
            if (arg != NULL)
                *arg++ = '\0';
            else
                arg = line + strlen(line);
            ASSERT(c->n_lines < MAX_LINES);
            c->lines[c->n_lines] = line;
            c->args[c->n_lines++] = arg;
            if (strcmp(line, "schema") == 0) {
                snprintf(c->schema_path, sizeof c->schema_path, "%s", case_path(arg, ""));
            } else if (strcmp(line, "result") == 0) {
                c->result = err_from_name(name, arg);
            } else if (strcmp(line, "opt") == 0) {
                char *eq = strchr(arg, '=');
                if (eq == NULL)
                    FAIL("%s.expect: bad opt \"%s\"", name, arg);
                *eq++ = '\0';
                if (strcmp(arg, "max_reject_rate") == 0)
                    c->opts.max_reject_rate = strtod(eq, NULL);
                else if (strcmp(arg, "check_duplicate_ids") == 0)
                    c->opts.check_duplicate_ids = (int)strtol(eq, NULL, 10);
                else if (strcmp(arg, "keep_frame") == 0)
                    c->opts.keep_frame = (int)strtol(eq, NULL, 10);
                else if (strcmp(arg, "max_examples") == 0)
                    c->opts.max_examples = (size_t)strtoul(eq, NULL, 10);
                else
                    FAIL("%s.expect: unknown opt \"%s\"", name, arg);
            } else if (strcmp(line, "reject") == 0) {
                reject_want *r = &c->rejects[c->n_rejects];
                char *col;
                char *why;
                char *val;
                ASSERT(c->n_rejects < MAX_REJECTS);
                r->line = strtoull(arg, &col, 10);
                if (*col != ' ')
                    FAIL("%s.expect: bad reject line", name);
                col++;
                why = strchr(col, ' ');
                if (why == NULL)
                    FAIL("%s.expect: bad reject line", name);
                *why++ = '\0';
                val = strchr(why, ' ');
                if (val != NULL) {
                    *val++ = '\0';
                    unescape(val);
                }
                r->column = strcmp(col, "-") == 0 ? "" : col;
                r->reason = reason_from_name(name, why);
                r->value = val;
                c->n_rejects++;
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
}

static long frame_col(const ch_frame *f, const char *name)
{
    long j = ch_frame_find(f, name);
    if (j < 0)
        case_fail("no frame column \"%s\"", name);
    return j;
}

/* Splits "<col> <n>" ('arg', modified) and returns the schema column. */
static long col_and_count(const ch_schema *s, char *arg, unsigned long long *n, char **rest)
{
    char *sp = strchr(arg, ' ');
    long j;
    if (sp == NULL)
        FAIL("%s.expect: expected \"<column> <n>\", got \"%s\"", case_name_now, arg);
    *sp = '\0';
    j = ch_schema_find(s, arg);
    if (j < 0)
        FAIL("%s.expect: no schema column \"%s\"", case_name_now, arg);
    *n = strtoull(sp + 1, rest, 10);
    return j;
}

/* Checks the JSON report against the report struct. */
static void check_report_json(const ch_ingest_report *r, const ch_schema *s)
{
    ch_buf b;
    ch_json *root = NULL;
    ch_error err;
    ch_err rc;
    double v;
    const ch_json *node;

    ch_buf_init(&b, MAX_FILE_BYTES);
    rc = ch_ingest_report_json(r, s, &b);
    CHECK(rc == CH_OK, "report JSON: %s", ch_strerror(rc));
    if (rc != CH_OK) {
        ch_buf_reset(&b);
        return;
    }
    rc = ch_json_parse(b.data, b.len, &root, &err);
    CHECK(rc == CH_OK, "report JSON does not parse: %s\n%s", err.msg, b.data);
    if (rc != CH_OK) {
        ch_buf_reset(&b);
        return;
    }
#define JNUM(key, want)                                                                            \
    do {                                                                                           \
        CHECK(ch_json_num(ch_json_get(root, key), &v) == 0 && v == (double)(want),                 \
              "report JSON \"%s\" is not %llu", key, (unsigned long long)(want));                  \
    } while (0)
    JNUM("rows", r->rows_read);
    JNUM("accepted", r->rows_accepted);
    JNUM("rejected", r->rows_rejected);
    JNUM("blank_lines", r->blank_lines);
    JNUM("positives", r->n_positive);
    JNUM("bytes", r->bytes);
#undef JNUM
    node = ch_json_get(root, "sha256");
    CHECK(ch_json_str(node, NULL) != NULL && strcmp(ch_json_str(node, NULL), r->sha256) == 0,
          "report JSON sha256");
    node = ch_json_get(root, "rejected_by_reason");
    CHECK(ch_json_typeof(node) == CH_JSON_OBJECT, "report JSON rejected_by_reason");
    {
        size_t n_nonzero = 0;
        for (int k = 1; k < CH_REASON_COUNT_; k++) {
            const ch_json *m = ch_json_get(node, ch_reason_name((ch_reason)k));
            if (r->by_reason[k] == 0) {
                CHECK(m == NULL, "report JSON lists reason %s with no rows",
                      ch_reason_name((ch_reason)k));
                continue;
            }
            n_nonzero++;
            CHECK(ch_json_num(m, &v) == 0 && v == (double)r->by_reason[k], "report JSON reason %s",
                  ch_reason_name((ch_reason)k));
        }
        CHECK(ch_json_len(node) == n_nonzero, "report JSON rejected_by_reason has %zu members",
              ch_json_len(node));
    }
    node = ch_json_get(root, "examples");
    CHECK(ch_json_typeof(node) == CH_JSON_ARRAY && ch_json_len(node) == r->n_examples,
          "report JSON examples");
    for (size_t i = 0; i < r->n_examples && i < ch_json_len(node); i++) {
        const ch_json *e = ch_json_at(node, i);
        const char *reason = ch_json_str(ch_json_get(e, "reason"), NULL);
        CHECK(ch_json_num(ch_json_get(e, "line"), &v) == 0 && v == (double)r->examples[i].line,
              "report JSON example %zu line", i);
        CHECK(reason != NULL && strcmp(reason, ch_reason_name(r->examples[i].reason)) == 0,
              "report JSON example %zu reason", i);
    }
    node = ch_json_get(root, "columns");
    CHECK(ch_json_typeof(node) == CH_JSON_ARRAY && ch_json_len(node) == ch_schema_n_cols(s),
          "report JSON columns");
    for (size_t j = 0; j < ch_json_len(node) && j < r->n_cols; j++) {
        const ch_json *cj = ch_json_at(node, j);
        const char *name = ch_json_str(ch_json_get(cj, "name"), NULL);
        const ch_schema_col *sc = ch_schema_col_ref(s, j);
        CHECK(name != NULL && strcmp(name, sc->name) == 0, "report JSON column %zu name", j);
        CHECK(ch_json_num(ch_json_get(cj, "missing"), &v) == 0 && v == (double)r->cols[j].n_missing,
              "report JSON column %s missing", sc->name);
        CHECK(ch_json_num(ch_json_get(cj, "values"), &v) == 0 && v == (double)r->cols[j].n_values,
              "report JSON column %s values", sc->name);
        if (sc->kind == CH_KIND_CATEGORICAL) {
            const ch_json *cats = ch_json_get(cj, "categories");
            CHECK(ch_json_len(cats) == r->cols[j].n_levels, "report JSON column %s categories",
                  sc->name);
            for (size_t k = 0; k < r->cols[j].n_levels; k++) {
                const ch_json *cnt = ch_json_get(cats, r->cols[j].levels[k]);
                CHECK(ch_json_num(cnt, &v) == 0 && v == (double)r->cols[j].level_counts[k],
                      "report JSON column %s level \"%s\"", sc->name, r->cols[j].levels[k]);
            }
            CHECK(ch_json_num(ch_json_get(cj, "unknown"), &v) == 0 &&
                      v == (double)r->cols[j].n_unknown,
                  "report JSON column %s unknown", sc->name);
        }
    }
    ch_json_free(root);
    ch_buf_reset(&b);
}

/* Checks the rejects file against the expected rejects and the input. */
static void check_rejects_file(const ingest_case *c, const char *rj_path, const char *data,
                               size_t len, const ch_schema *s)
{
    static const char head[] = "line,column,reason,value,record\n";
    size_t rj_len;
    char *rj = slurp(rj_path, &rj_len);
    ch_csv *csv = NULL;
    ch_csv_record rec;
    ch_error err;
    ch_buf phys;
    size_t i = 0;
    int got = 1;

    (void)s;
    CHECK(rj != NULL, "no rejects file %s", rj_path);
    if (rj == NULL)
        return;
    CHECK(rj_len >= sizeof head - 1 && memcmp(rj, head, sizeof head - 1) == 0,
          "rejects file does not start with \"%s\"", "line,column,reason,value,record");
    ch_buf_init(&phys, MAX_FILE_BYTES);
    ASSERT_OK(ch_csv_open_mem(rj, rj_len, NULL, &csv, &err));
    ASSERT_OK(ch_csv_next(csv, &rec, &got, &err)); /* the header */
    for (;;) {
        char line_txt[32];
        const reject_want *w;
        ASSERT_OK(ch_csv_next(csv, &rec, &got, &err));
        if (!got)
            break;
        if (i >= c->n_rejects) {
            case_fail("rejects file has more rows than expected: %.*s", (int)rec.raw_len, rec.raw);
            i++;
            continue;
        }
        w = &c->rejects[i++];
        if (rec.n_fields != 5) {
            case_fail("rejects row %zu has %zu fields", i, rec.n_fields);
            continue;
        }
        snprintf(line_txt, sizeof line_txt, "%llu", w->line);
        CHECK(rec.fields[0].len == strlen(line_txt) &&
                  memcmp(rec.fields[0].p, line_txt, rec.fields[0].len) == 0,
              "rejects row %zu: line %.*s, want %s", i, (int)rec.fields[0].len, rec.fields[0].p,
              line_txt);
        CHECK(rec.fields[1].len == strlen(w->column) &&
                  memcmp(rec.fields[1].p, w->column, rec.fields[1].len) == 0,
              "rejects row %zu: column \"%.*s\", want \"%s\"", i, (int)rec.fields[1].len,
              rec.fields[1].p, w->column);
        CHECK(rec.fields[2].len == strlen(ch_reason_name(w->reason)) &&
                  memcmp(rec.fields[2].p, ch_reason_name(w->reason), rec.fields[2].len) == 0,
              "rejects row %zu: reason %.*s, want %s", i, (int)rec.fields[2].len, rec.fields[2].p,
              ch_reason_name(w->reason));
        if (w->value != NULL)
            CHECK(rec.fields[3].len == strlen(w->value) &&
                      memcmp(rec.fields[3].p, w->value, rec.fields[3].len) == 0,
                  "rejects row %zu: value \"%.*s\", want \"%s\"", i, (int)rec.fields[3].len,
                  rec.fields[3].p, w->value);
        physical_record(data, len, w->line, rec.fields[4].len, &phys);
        CHECK(phys.len == rec.fields[4].len &&
                  (phys.len == 0 || memcmp(phys.data, rec.fields[4].p, phys.len) == 0),
              "rejects row %zu: record \"%.*s\" is not the original \"%.*s\"", i,
              (int)rec.fields[4].len, rec.fields[4].p, (int)phys.len, phys.data ? phys.data : "");
    }
    CHECK(i == c->n_rejects, "rejects file has %zu rows, want %zu", i, c->n_rejects);
    ch_csv_free(csv);
    ch_buf_reset(&phys);
    ch_free(rj);
}

/* Checks one directive against the outcome. */
static void check_directive(const char *key, char *arg, const ch_schema *s,
                            const ch_ingest_report *r, const ch_frame *f, const ch_error *err)
{
    unsigned long long n;
    char *rest;
    long j;

    if (strcmp(key, "schema") == 0 || strcmp(key, "opt") == 0 || strcmp(key, "result") == 0 ||
        strcmp(key, "reject") == 0) {
        return; /* applied before the run or checked elsewhere */
    }
    if (strcmp(key, "message") == 0) {
        CHECK(strstr(err->msg, arg) != NULL, "message lacks \"%s\": \"%s\"", arg, err->msg);
        return;
    }
    if (r == NULL) {
        case_fail("\"%s\" needs a report", key);
        return;
    }
    n = strtoull(arg, NULL, 10);
    if (strcmp(key, "read") == 0) {
        CHECK(r->rows_read == n, "rows_read %llu, want %llu", (unsigned long long)r->rows_read, n);
    } else if (strcmp(key, "accepted") == 0) {
        CHECK(r->rows_accepted == n, "rows_accepted %llu, want %llu",
              (unsigned long long)r->rows_accepted, n);
    } else if (strcmp(key, "rejected") == 0) {
        CHECK(r->rows_rejected == n, "rows_rejected %llu, want %llu",
              (unsigned long long)r->rows_rejected, n);
    } else if (strcmp(key, "blank") == 0) {
        CHECK(r->blank_lines == n, "blank_lines %llu, want %llu",
              (unsigned long long)r->blank_lines, n);
    } else if (strcmp(key, "positive") == 0) {
        CHECK(r->n_positive == n, "n_positive %llu, want %llu", (unsigned long long)r->n_positive,
              n);
    } else if (strcmp(key, "frame_rows") == 0) {
        CHECK(f != NULL && ch_frame_n_rows(f) == n, "frame rows %zu, want %llu",
              f ? ch_frame_n_rows(f) : 0, n);
    } else if (strcmp(key, "reason") == 0) {
        /* Checked with all reasons at once in check_reasons(). */
    } else if (strcmp(key, "missing") == 0 || strcmp(key, "unknown") == 0) {
        uint64_t got;
        j = col_and_count(s, arg, &n, &rest);
        got = key[0] == 'm' ? r->cols[j].n_missing : r->cols[j].n_unknown;
        CHECK(got == n, "%s %s: %llu, want %llu", key, arg, (unsigned long long)got, n);
    } else if (strcmp(key, "level") == 0) {
        const ch_ingest_col *rc;
        size_t k;
        j = col_and_count(s, arg, &n, &rest);
        if (*rest == ' ')
            rest++;
        unescape(rest);
        rc = &r->cols[j];
        for (k = 0; k < rc->n_levels; k++)
            if (strcmp(rc->levels[k], rest) == 0)
                break;
        CHECK(k < rc->n_levels && rc->level_counts[k] == n, "level %s \"%s\": %llu, want %llu", arg,
              rest, k < rc->n_levels ? (unsigned long long)rc->level_counts[k] : 0ull, n);
    } else if (strcmp(key, "frame_levels") == 0) {
        j = col_and_count(s, arg, &n, &rest);
        CHECK(f != NULL && ch_frame_n_levels(f, (size_t)j) == n,
              "frame levels of %s: %zu, want %llu", arg, f ? ch_frame_n_levels(f, (size_t)j) : 0,
              n);
    } else if (strcmp(key, "cell") == 0) {
        char *col;
        char *text;
        unsigned long long i = strtoull(arg, &col, 10);
        char got[1024];
        if (*col != ' ' || (text = strchr(col + 1, ' ')) == NULL)
            FAIL("%s.expect: bad cell line", case_name_now);
        col++;
        *text++ = '\0';
        unescape(text);
        if (f == NULL) {
            case_fail("cell %llu %s: no frame", i, col);
            return;
        }
        if (i >= ch_frame_n_rows(f)) {
            case_fail("cell %llu %s: the frame has %zu rows", i, col, ch_frame_n_rows(f));
            return;
        }
        j = frame_col(f, col);
        if (j < 0)
            return;
        cell_text(f, (size_t)j, (size_t)i, got, sizeof got);
        CHECK(strcmp(got, text) == 0, "cell %llu %s: \"%s\", want \"%s\"", i, col, got, text);
    } else {
        FAIL("%s.expect: unknown directive \"%s\"", case_name_now, key);
    }
}

/* The "reason" lines give every nonzero by_reason count. */
static void check_reasons(const ingest_case *c, const ch_ingest_report *r)
{
    uint64_t want[CH_REASON_COUNT_] = {0};
    int any = 0;
    for (size_t i = 0; i < c->n_lines; i++) {
        if (strcmp(c->lines[i], "reason") == 0) {
            char name[64];
            unsigned long long n;
            if (sscanf(c->args[i], "%63s %llu", name, &n) != 2)
                FAIL("%s.expect: bad reason line", c->name);
            want[reason_from_name(c->name, name)] = n;
            any = 1;
        }
    }
    if (!any) {
        /* Without "reason" lines, derive the counts from the reject lines. */
        for (size_t i = 0; i < c->n_rejects; i++)
            want[c->rejects[i].reason]++;
    }
    for (int k = 0; k < CH_REASON_COUNT_; k++)
        CHECK(r->by_reason[k] == want[k], "by_reason[%s] = %llu, want %llu",
              ch_reason_name((ch_reason)k), (unsigned long long)r->by_reason[k],
              (unsigned long long)want[k]);
}

/* Consistency checks for every case that returns a report. */
static void check_report(const ingest_case *c, const ch_schema *s, const ch_ingest_report *r,
                         const ch_frame *f, const char *data, size_t len)
{
    char hex[CH_SHA256_HEX_LEN + 1];
    uint64_t sum = 0;
    size_t n_ex;

    CHECK(r->rows_read == r->rows_accepted + r->rows_rejected, "read %llu != %llu + %llu",
          (unsigned long long)r->rows_read, (unsigned long long)r->rows_accepted,
          (unsigned long long)r->rows_rejected);
    for (int k = 0; k < CH_REASON_COUNT_; k++)
        sum += r->by_reason[k];
    CHECK(sum == r->rows_rejected, "by_reason adds up to %llu, not %llu", (unsigned long long)sum,
          (unsigned long long)r->rows_rejected);
    CHECK(r->by_reason[CH_REASON_NONE] == 0, "rows rejected for no reason");
    ASSERT_OK(ch_sha256_hex(data, len, hex, NULL));
    CHECK(strcmp(r->sha256, hex) == 0, "sha256 %s, want %s", r->sha256, hex);
    CHECK(r->bytes == len, "bytes %llu, want %zu", (unsigned long long)r->bytes, len);
    CHECK(r->n_cols == ch_schema_n_cols(s), "report has %zu columns", r->n_cols);
    CHECK(r->seconds >= 0.0, "negative run time");
    CHECK(c->n_rejects == r->rows_rejected, "the case lists %zu rejects, the run has %llu",
          c->n_rejects, (unsigned long long)r->rows_rejected);
    check_reasons(c, r);

    /* Examples: the first rejects, in file order. */
    n_ex =
        r->rows_rejected < c->opts.max_examples ? (size_t)r->rows_rejected : c->opts.max_examples;
    CHECK(r->n_examples == n_ex, "%zu examples, want %zu", r->n_examples, n_ex);
    for (size_t i = 0; i < r->n_examples && i < c->n_rejects; i++) {
        const ch_ingest_example *e = &r->examples[i];
        const char *cn = e->column >= 0 ? ch_schema_col_ref(s, (size_t)e->column)->name : "";
        CHECK(e->line == c->rejects[i].line && strcmp(cn, c->rejects[i].column) == 0 &&
                  e->reason == c->rejects[i].reason,
              "example %zu: line %llu column \"%s\" %s, want line %llu column \"%s\" %s", i,
              (unsigned long long)e->line, cn, ch_reason_name(e->reason), c->rejects[i].line,
              c->rejects[i].column, ch_reason_name(c->rejects[i].reason));
        CHECK(memchr(e->value, '\0', sizeof e->value) != NULL, "example %zu value unterminated", i);
    }

    /* Categorical level counts add up to the non-missing values. */
    for (size_t j = 0; j < r->n_cols; j++) {
        const ch_schema_col *sc = ch_schema_col_ref(s, j);
        const ch_ingest_col *rc = &r->cols[j];
        CHECK(rc->n_missing + rc->n_values == r->rows_accepted,
              "column %s: missing + values != accepted", sc->name);
        if (sc->kind == CH_KIND_CATEGORICAL) {
            uint64_t t = 0;
            for (size_t k = 0; k < rc->n_levels; k++)
                t += rc->level_counts[k];
            CHECK(t == rc->n_values, "column %s: level counts add up to %llu, not %llu", sc->name,
                  (unsigned long long)t, (unsigned long long)rc->n_values);
            for (size_t k = 0; k < sc->n_categories && k < rc->n_levels; k++)
                CHECK(strcmp(rc->levels[k], sc->categories[k]) == 0,
                      "column %s: report level %zu is \"%s\"", sc->name, k, rc->levels[k]);
            if (f != NULL) {
                CHECK(ch_frame_n_levels(f, j) == rc->n_levels,
                      "column %s: %zu frame levels, %zu report levels", sc->name,
                      ch_frame_n_levels(f, j), rc->n_levels);
                for (size_t k = 0; k < rc->n_levels && k < ch_frame_n_levels(f, j); k++)
                    CHECK(strcmp(ch_frame_level(f, j, k), rc->levels[k]) == 0,
                          "column %s: frame level %zu \"%s\" != report level \"%s\"", sc->name, k,
                          ch_frame_level(f, j, k), rc->levels[k]);
            }
        } else if (sc->kind != CH_KIND_ID && rc->n_values > 0) {
            CHECK(rc->min <= rc->max, "column %s: min above max", sc->name);
        }
    }

    /* The frame holds the accepted rows, in schema order. */
    if (f != NULL) {
        CHECK(ch_frame_n_rows(f) == r->rows_accepted, "frame has %zu rows, accepted %llu",
              ch_frame_n_rows(f), (unsigned long long)r->rows_accepted);
        CHECK(ch_frame_n_cols(f) == ch_schema_n_cols(s), "frame has %zu columns",
              ch_frame_n_cols(f));
        for (size_t j = 0; j < ch_frame_n_cols(f) && j < ch_schema_n_cols(s); j++) {
            const ch_schema_col *sc = ch_schema_col_ref(s, j);
            ch_col_type want = sc->kind == CH_KIND_ID            ? CH_COL_STR
                               : sc->kind == CH_KIND_CATEGORICAL ? CH_COL_CAT
                                                                 : CH_COL_NUM;
            CHECK(strcmp(ch_frame_col_name(f, j), sc->name) == 0, "frame column %zu is %s", j,
                  ch_frame_col_name(f, j));
            CHECK(ch_frame_col_type(f, j) == want, "frame column %s has type %d", sc->name,
                  (int)ch_frame_col_type(f, j));
            CHECK(ch_frame_n_missing(f, j) == r->cols[j].n_missing,
                  "column %s: frame missing %zu, report %llu", sc->name, ch_frame_n_missing(f, j),
                  (unsigned long long)r->cols[j].n_missing);
        }
    }
    check_report_json(r, s);
}

/* Runs one case; returns 1 if it passed (problems are printed). */
static int run_case(const char *name)
{
    ingest_case *c = ch_calloc(1, sizeof *c);
    ch_schema *s;
    ch_frame *f = NULL;
    ch_ingest_report *r = NULL;
    ch_error err;
    ch_err rc;
    char csv_path[1024];
    char rj_path[1024];
    char *data;
    size_t len;

    ASSERT(c != NULL);
    case_failed = 0;
    case_name_now = name;
    parse_case(name, c);
    s = load_schema(c->schema_path);
    snprintf(csv_path, sizeof csv_path, "%s", case_path(name, ".csv"));
    snprintf(rj_path, sizeof rj_path, "%s/%s.rejects.csv", ch_test_tmpdir(), name);
    c->opts.rejects_path = rj_path;
    data = slurp(csv_path, &len);
    if (data == NULL)
        FAIL("%s: cannot read %s", name, csv_path);

    ch_error_clear(&err);
    rc = ch_ingest_file(s, csv_path, &c->opts, &f, &r, &err);
    CHECK(rc == c->result, "returned %s (%s), want %s", ch_strerror(rc), err.msg,
          ch_strerror(c->result));
    if (rc != CH_OK) {
        CHECK(err.code == rc, "err.code %d, returned %d", (int)err.code, (int)rc);
        CHECK(strstr(err.msg, csv_path) != NULL || rc == CH_EIO,
              "message does not name the file: \"%s\"", err.msg);
        CHECK(f == NULL, "frame set on failure");
    }
    if (rc == CH_OK || rc == CH_ELIMIT) {
        CHECK(r != NULL, "no report");
        if (rc == CH_OK && c->opts.keep_frame)
            CHECK(f != NULL, "no frame");
        if (r != NULL) {
            check_report(c, s, r, f, data, len);
            check_rejects_file(c, rj_path, data, len, s);
        }
    } else {
        CHECK(r == NULL, "report set on %s", ch_strerror(rc));
    }
    for (size_t i = 0; i < c->n_lines; i++)
        check_directive(c->lines[i], c->args[i], s, r, f, &err);

    ch_ingest_report_free(r);
    ch_frame_free(f);
    ch_schema_free(s);
    ch_free(data);
    ch_free(c->text);
    ch_free(c);
    return !case_failed;
}

static void run_cases(const char *const *names, size_t n)
{
    size_t failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += !run_case(names[i]);
    if (failed > 0)
        FAIL("%zu of %zu ingest cases failed", failed, n);
}

#define RUN_CASES(...)                                                                             \
    do {                                                                                           \
        static const char *const names_[] = {__VA_ARGS__};                                         \
        run_cases(names_, sizeof names_ / sizeof names_[0]);                                       \
    } while (0)

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

TEST(data_cases)
{
    char dir[1024];
    DIR *d;
    struct dirent *e;
    char *names[512];
    size_t n = 0;
    size_t failed = 0;

    snprintf(dir, sizeof dir, "%s", ch_test_path("tests/cases/ingest"));
    d = opendir(dir);
    if (d == NULL)
        FAIL("cannot open %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 7 && strcmp(e->d_name + len - 7, ".expect") == 0) {
            ASSERT(n < sizeof names / sizeof names[0]);
            names[n] = ch_strndup(e->d_name, len - 7);
            ASSERT(names[n] != NULL);
            n++;
        }
    }
    closedir(d);
    ASSERT(n >= 30);
    qsort(names, n, sizeof names[0], cmp_names);
    for (size_t i = 0; i < n; i++) {
        failed += !run_case(names[i]);
        ch_free(names[i]);
    }
    if (failed > 0)
        FAIL("%zu of %zu ingest cases failed", failed, n);
    fprintf(stderr, "    %zu ingest cases passed\n", n);
}

/* The cases again, grouped by the rule they check, so that a failure
 * names the rule in the test list. */
TEST(header_problems)
{
    RUN_CASES("header_missing_column", "header_extra_column", "header_duplicate_column",
              "header_all_problems", "header_malformed", "header_reordered", "small_extra_ignored");
}

TEST(field_problems)
{
    RUN_CASES("field_count", "not_number", "not_integer", "out_of_range", "numbers_with_spaces",
              "bad_boolean", "bad_utf8", "missing_values", "small_required_missing",
              "small_custom_boolean");
}

TEST(unknown_categories)
{
    RUN_CASES("unknown_category", "small_kept_unknowns");
}

TEST(targets)
{
    RUN_CASES("bad_target", "missing_values");
}

TEST(duplicate_ids)
{
    RUN_CASES("duplicate_id", "duplicate_id_unchecked", "small_duplicate_id");
}

TEST(malformed_csv)
{
    RUN_CASES("malformed_row", "nul_byte", "unclosed_quote", "quoted_fields");
}

TEST(file_shapes)
{
    RUN_CASES("empty_file", "only_blank_lines", "header_only", "header_only_no_newline", "bom_crlf",
              "blank_lines", "telco_head");
}

TEST(reject_rate)
{
    RUN_CASES("reject_rate_exceeded", "reject_rate_at_limit", "reject_rate_zero", "all_rejected",
              "max_examples");
}

/* ---- explicit checks ----------------------------------------------------- */

TEST(opts_defaults)
{
    ch_ingest_opts o;
    memset(&o, 0xff, sizeof o);
    ch_ingest_opts_default(&o);
    ASSERT(o.max_reject_rate == 0.05);
    ASSERT(o.rejects_path == NULL);
    ASSERT_INT_EQ(o.keep_frame, 1);
    ASSERT_INT_EQ(o.check_duplicate_ids, 1);
    ASSERT_INT_EQ(o.max_examples, 20);
    ASSERT(o.progress == NULL);
    ASSERT(o.progress_ctx == NULL);
    ASSERT_INT_EQ(o.csv.hash, 1);
}

/* NULL options mean the defaults: 2 of 4 rows rejected is over 5%. */
TEST(null_opts_use_defaults)
{
    ch_schema *s = load_telco_schema();
    ch_frame *f = NULL;
    ch_ingest_report *r = NULL;
    ch_error err;

    ASSERT_ERR(ch_ingest_file(s, case_path("reject_rate_exceeded", ".csv"), NULL, &f, &r, &err),
               CH_ELIMIT);
    ASSERT(f == NULL);
    ASSERT(r != NULL);
    ASSERT_INT_EQ(r->rows_rejected, 2);
    ASSERT_CONTAINS(err.msg, "reject_rate_exceeded.csv");
    ASSERT_CONTAINS(err.msg, "5.00%");
    ch_ingest_report_free(r);

    r = NULL;
    ASSERT_OK(ch_ingest_file(s, case_path("valid_basic", ".csv"), NULL, &f, &r, &err));
    ASSERT(f != NULL);
    ASSERT_INT_EQ(ch_frame_n_rows(f), 5);
    ch_frame_free(f);
    ch_ingest_report_free(r);
    ch_schema_free(s);
}

TEST(sha256_matches_file)
{
    static const char *const names[] = {"valid_basic", "bom_crlf", "header_only", "telco_head",
                                        "reject_rate_exceeded"};
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;

    ch_ingest_opts_default(&o);
    o.max_reject_rate = 1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ch_ingest_report *r = NULL;
        ch_error err;
        size_t len;
        char *data = slurp(case_path(names[i], ".csv"), &len);
        char hex[CH_SHA256_HEX_LEN + 1];
        ASSERT(data != NULL);
        ASSERT_OK(ch_ingest_file(s, case_path(names[i], ".csv"), &o, NULL, &r, &err));
        ASSERT_OK(ch_sha256_hex(data, len, hex, &err));
        ASSERT_STR_EQ(r->sha256, hex);
        ASSERT_INT_EQ(strlen(r->sha256), CH_SHA256_HEX_LEN);
        ASSERT_INT_EQ(r->bytes, len);
        ch_ingest_report_free(r);
        ch_free(data);
    }
    ch_schema_free(s);
}

/* The rejects file, byte for byte, for a small case. */
TEST(rejects_file_contents)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_error err;
    const char *rj = tmp_file("rejects.csv");
    size_t len;
    size_t got_len;
    char *data = slurp(case_path("not_number", ".csv"), &len);
    char *got;
    ch_buf want;
    const char *line[8];
    size_t line_len[8];
    const char *p = data;

    ASSERT(data != NULL);
    for (size_t i = 0; i < 8; i++) {
        const char *nl = strchr(p, '\n');
        line[i] = p;
        line_len[i] = nl != NULL ? (size_t)(nl - p) : strlen(p);
        p = nl != NULL ? nl + 1 : p + strlen(p);
    }
    ch_ingest_opts_default(&o);
    o.max_reject_rate = 1;
    o.rejects_path = rj;
    ASSERT_OK(ch_ingest_file(s, case_path("not_number", ".csv"), &o, NULL, &r, &err));
    ASSERT_INT_EQ(r->rows_rejected, 4);

    /* Expected: each record verbatim as one CSV field (quoted, since a
     * record has commas; line 3 holds "12,5" in quotes, which are doubled). */
    ch_buf_init(&want, 1 << 20);
    ch_buf_puts(&want, "line,column,reason,value,record\n");
    ch_buf_printf(&want, "2,tenure,not_number,abc,\"%.*s\"\n", (int)line_len[1], line[1]);
    ch_buf_puts(&want, "3,MonthlyCharges,not_number,\"12,5\",\"");
    for (size_t i = 0; i < line_len[2]; i++) {
        if (line[2][i] == '"')
            ch_buf_putc(&want, '"');
        ch_buf_putc(&want, line[2][i]);
    }
    ch_buf_puts(&want, "\"\n");
    ch_buf_printf(&want, "4,TotalCharges,not_number,N/A,\"%.*s\"\n", (int)line_len[3], line[3]);
    ch_buf_printf(&want, "6,MonthlyCharges,not_number,$70,\"%.*s\"\n", (int)line_len[5], line[5]);
    ASSERT_OK(ch_buf_status(&want));
    got = slurp(rj, &got_len);
    ASSERT(got != NULL);
    ASSERT_STR_EQ(got, want.data);
    ch_free(got);

    /* A run without rejects writes the header alone. */
    ch_ingest_report_free(r);
    r = NULL;
    ASSERT_OK(ch_ingest_file(s, case_path("valid_basic", ".csv"), &o, NULL, &r, &err));
    got = slurp(rj, &got_len);
    ASSERT(got != NULL);
    ASSERT_STR_EQ(got, "line,column,reason,value,record\n");
    ch_free(got);

    ch_buf_reset(&want);
    ch_ingest_report_free(r);
    ch_free(data);
    ch_schema_free(s);
}

/* The report's statistics and its JSON for a small known file. */
TEST(report_statistics_and_json)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;
    ch_buf b;
    ch_json *root = NULL;
    const ch_json *cols;
    const ch_json *col;
    double v;
    long j;

    ch_ingest_opts_default(&o);
    o.max_reject_rate = 1;
    ASSERT_OK(ch_ingest_file(s, case_path("valid_basic", ".csv"), &o, &f, &r, &err));

    /* tenure: 1, 34, 2, 45, 2. */
    j = ch_schema_find(s, "tenure");
    ASSERT(r->cols[j].min == 1.0);
    ASSERT(r->cols[j].max == 45.0);
    ASSERT_NEAR(r->cols[j].sum, 84.0, 1e-9);
    ASSERT_INT_EQ(r->cols[j].n_values, 5);
    /* gender: Female, Male, Male, Male, Female. */
    j = ch_schema_find(s, "gender");
    ASSERT_INT_EQ(r->cols[j].n_levels, 2);
    ASSERT_STR_EQ(r->cols[j].levels[0], "Female");
    ASSERT_INT_EQ(r->cols[j].level_counts[0], 2);
    ASSERT_INT_EQ(r->cols[j].level_counts[1], 3);
    /* Churn: No, No, Yes, No, Yes. */
    j = ch_schema_find(s, "Churn");
    ASSERT_INT_EQ(r->n_positive, 2);
    ASSERT(r->cols[j].min == 0.0);
    ASSERT(r->cols[j].max == 1.0);

    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_ingest_report_json(r, s, &b));
    ASSERT_OK(ch_json_parse(b.data, b.len, &root, &err));
    ASSERT(ch_json_num(ch_json_get(root, "rows"), &v) == 0 && v == 5);
    ASSERT(ch_json_num(ch_json_get(root, "accepted"), &v) == 0 && v == 5);
    ASSERT(ch_json_num(ch_json_get(root, "rejected"), &v) == 0 && v == 0);
    ASSERT(ch_json_num(ch_json_get(root, "positives"), &v) == 0 && v == 2);
    ASSERT_INT_EQ(ch_json_len(ch_json_get(root, "rejected_by_reason")), 0);
    ASSERT_INT_EQ(ch_json_len(ch_json_get(root, "examples")), 0);
    ASSERT_STR_EQ(ch_json_str(ch_json_get(root, "sha256"), NULL), r->sha256);
    cols = ch_json_get(root, "columns");
    ASSERT_INT_EQ(ch_json_len(cols), 21);
    col = ch_json_at(cols, (size_t)ch_schema_find(s, "tenure"));
    ASSERT_STR_EQ(ch_json_str(ch_json_get(col, "name"), NULL), "tenure");
    ASSERT_STR_EQ(ch_json_str(ch_json_get(col, "kind"), NULL), "integer");
    ASSERT(ch_json_num(ch_json_get(col, "min"), &v) == 0 && v == 1);
    ASSERT(ch_json_num(ch_json_get(col, "max"), &v) == 0 && v == 45);
    ASSERT(ch_json_num(ch_json_get(col, "mean"), &v) == 0);
    ASSERT_NEAR(v, 16.8, 1e-12);
    col = ch_json_at(cols, (size_t)ch_schema_find(s, "Contract"));
    ASSERT(ch_json_num(ch_json_get(ch_json_get(col, "categories"), "Month-to-month"), &v) == 0 &&
           v == 3);
    ASSERT(ch_json_num(ch_json_get(ch_json_get(col, "categories"), "Two year"), &v) == 0 && v == 0);
    ASSERT(ch_json_num(ch_json_get(col, "unknown"), &v) == 0 && v == 0);
    ch_json_free(root);
    ch_buf_reset(&b);
    ch_ingest_report_free(r);
    ch_frame_free(f);

    /* With rejects and kept unknowns. */
    r = NULL;
    ASSERT_OK(ch_ingest_file(s, case_path("unknown_category", ".csv"), &o, NULL, &r, &err));
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_ingest_report_json(r, s, &b));
    ASSERT_OK(ch_json_parse(b.data, b.len, &root, &err));
    ASSERT(ch_json_num(ch_json_get(ch_json_get(root, "rejected_by_reason"), "unknown_category"),
                       &v) == 0 &&
           v == 3);
    ASSERT_INT_EQ(ch_json_len(ch_json_get(root, "examples")), 3);
    col = ch_json_at(ch_json_get(root, "examples"), 0);
    ASSERT(ch_json_num(ch_json_get(col, "line"), &v) == 0 && v == 2);
    ASSERT_STR_EQ(ch_json_str(ch_json_get(col, "column"), NULL), "gender");
    ASSERT_STR_EQ(ch_json_str(ch_json_get(col, "reason"), NULL), "unknown_category");
    ASSERT_STR_EQ(ch_json_str(ch_json_get(col, "value"), NULL), "Other");
    col = ch_json_at(ch_json_get(root, "columns"), (size_t)ch_schema_find(s, "PaymentMethod"));
    ASSERT(ch_json_num(ch_json_get(col, "unknown"), &v) == 0 && v == 3);
    ASSERT(ch_json_num(ch_json_get(ch_json_get(col, "categories"), "Bitcoin"), &v) == 0 && v == 2);
    ch_json_free(root);
    ch_buf_reset(&b);
    ch_ingest_report_free(r);
    ch_schema_free(s);
}

/* Example values are printable excerpts, even of invalid bytes. */
TEST(example_values_are_printable)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_error err;

    ch_ingest_opts_default(&o);
    o.max_reject_rate = 1;
    ASSERT_OK(ch_ingest_file(s, case_path("bad_utf8", ".csv"), &o, NULL, &r, &err));
    ASSERT_INT_EQ(r->n_examples, 3);
    for (size_t i = 0; i < r->n_examples; i++)
        for (const char *p = r->examples[i].value; *p != '\0'; p++)
            ASSERT((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
    ASSERT_CONTAINS(r->examples[0].value, "ID-");
    ch_ingest_report_free(r);
    ch_schema_free(s);
}

TEST(frame_is_optional)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;

    ch_ingest_opts_default(&o);
    /* keep_frame 0: a report, no frame. */
    o.keep_frame = 0;
    ASSERT_OK(ch_ingest_file(s, case_path("valid_basic", ".csv"), &o, &f, &r, &err));
    ASSERT(f == NULL);
    ASSERT_INT_EQ(r->rows_accepted, 5);
    ch_ingest_report_free(r);
    /* A NULL frame pointer: validation only. */
    o.keep_frame = 1;
    r = NULL;
    ASSERT_OK(ch_ingest_file(s, case_path("valid_basic", ".csv"), &o, NULL, &r, &err));
    ASSERT_INT_EQ(r->rows_accepted, 5);
    ch_ingest_report_free(r);
    /* A NULL report pointer: the report is dropped, the frame kept. */
    ASSERT_OK(ch_ingest_file(s, case_path("valid_basic", ".csv"), &o, &f, NULL, &err));
    ASSERT(f != NULL);
    ASSERT_INT_EQ(ch_frame_n_rows(f), 5);
    ch_frame_free(f);
    ch_schema_free(s);
}

TEST(argument_and_io_errors)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;
    const double bad_rates[] = {-0.01, 1.01, NAN, -INFINITY};

    ch_ingest_opts_default(&o);
    for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++) {
        o.max_reject_rate = bad_rates[i];
        ASSERT_ERR(ch_ingest_file(s, case_path("valid_basic", ".csv"), &o, &f, &r, &err),
                   CH_EINVAL);
        ASSERT(f == NULL);
        ASSERT(r == NULL);
        ASSERT_CONTAINS(err.msg, "max_reject_rate");
    }
    ch_ingest_opts_default(&o);

    /* An absent file. */
    ASSERT_ERR(ch_ingest_file(s, tmp_file("absent.csv"), &o, &f, &r, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "absent.csv");
    ASSERT(f == NULL);
    ASSERT(r == NULL);

    /* A rejects file that cannot be created. */
    o.rejects_path = tmp_file("no/such/dir/rejects.csv");
    ASSERT_ERR(ch_ingest_file(s, case_path("valid_basic", ".csv"), &o, &f, &r, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "rejects.csv");
    ASSERT(f == NULL);
    ASSERT(r == NULL);

    /* The error buffer is optional. */
    o.rejects_path = NULL;
    ASSERT_ERR(ch_ingest_file(s, case_path("empty_file", ".csv"), &o, &f, &r, NULL), CH_EDATA);
    ASSERT(r == NULL);
    ch_schema_free(s);
}

/* A record over the reader's size limit is CH_ELIMIT, not a reject. */
TEST(record_too_long)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;
    size_t len;
    char *data = slurp(case_path("valid_basic", ".csv"), &len);

    ASSERT(data != NULL);
    write_file(tmp_file("long.csv"), data, len);
    ch_ingest_opts_default(&o);
    o.csv.max_record_bytes = 100; /* the header is longer */
    ASSERT_ERR(ch_ingest_file(s, tmp_file("long.csv"), &o, &f, &r, &err), CH_ELIMIT);
    ASSERT_CONTAINS(err.msg, "long.csv");
    ASSERT_CONTAINS(err.msg, "line 1");
    /* Only the reject-rate CH_ELIMIT comes with a report: this file was
     * never read to its end, so a report would describe part of it (no
     * SHA-256, no size) as if it were all. */
    if (r != NULL) {
        unsigned long long rows = r->rows_read;
        int no_hash = r->sha256[0] == '\0';
        ch_ingest_report_free(r);
        ch_free(data);
        ch_schema_free(s);
        FAIL("a report came back with a reader CH_ELIMIT (rows_read %llu, sha256 %s)", rows,
             no_hash ? "empty" : "set");
    }
    ASSERT(f == NULL);
    ch_free(data);
    ch_schema_free(s);
}

/* Growth of the duplicate-id set and of the frame past their first
 * capacities: 20000 distinct ids, then every 100th repeated. */
TEST(many_ids)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;
    ch_buf b;
    const size_t n = 20000;
    FILE *fp;
    const char *rest =
        ",Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,Yes,"
        "Electronic check,29.85,29.85,No\n";

    ch_buf_init(&b, MAX_FILE_BYTES);
    ch_buf_puts(&b, "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,"
                    "MultipleLines,InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,"
                    "TechSupport,StreamingTV,StreamingMovies,Contract,PaperlessBilling,"
                    "PaymentMethod,MonthlyCharges,TotalCharges,Churn\n");
    for (size_t i = 0; i < n; i++)
        ch_buf_printf(&b, "id-%zu%s", i, rest);
    for (size_t i = 0; i < n; i += 100)
        ch_buf_printf(&b, "id-%zu%s", i, rest);
    ASSERT_OK(ch_buf_status(&b));
    fp = fopen(tmp_file("ids.csv"), "wb");
    ASSERT(fp != NULL);
    ASSERT(fwrite(b.data, 1, b.len, fp) == b.len);
    fclose(fp);
    ch_buf_reset(&b);

    ch_ingest_opts_default(&o);
    o.max_reject_rate = 0.5;
    ASSERT_OK(ch_ingest_file(s, tmp_file("ids.csv"), &o, &f, &r, &err));
    ASSERT_INT_EQ(r->rows_read, n + n / 100);
    ASSERT_INT_EQ(r->rows_accepted, n);
    ASSERT_INT_EQ(r->rows_rejected, n / 100);
    ASSERT_INT_EQ(r->by_reason[CH_REASON_DUPLICATE_ID], n / 100);
    ASSERT_INT_EQ(r->examples[0].line, n + 2);
    ASSERT_STR_EQ(r->examples[0].value, "id-0");
    ASSERT_INT_EQ(ch_frame_n_rows(f), n);
    ASSERT_STR_EQ(ch_frame_str(f, 0, n - 1, NULL), "id-19999");
    ch_frame_free(f);
    ch_ingest_report_free(r);
    ch_schema_free(s);
}

/* Writes the Telco header plus 'n' rows to the temporary file 'name': row
 * i is 'a', i, 'b', i, 'c'. */
static const char *write_rows(const char *name, const char *a, const char *b_, const char *c,
                              size_t n)
{
    ch_buf b;
    const char *path = tmp_file(name);
    ch_buf_init(&b, MAX_FILE_BYTES);
    ch_buf_puts(&b, "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,"
                    "MultipleLines,InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,"
                    "TechSupport,StreamingTV,StreamingMovies,Contract,PaperlessBilling,"
                    "PaymentMethod,MonthlyCharges,TotalCharges,Churn\n");
    for (size_t i = 0; i < n; i++)
        ch_buf_printf(&b, "%s%zu%s%zu%s", a, i, b_, i, c);
    ASSERT_OK(ch_buf_status(&b));
    write_file(path, b.data, b.len);
    ch_buf_reset(&b);
    return path;
}

/* More rejects than the rejects writer buffers at once (1 MiB): the file
 * still has the header once and every rejected row in order. */
TEST(large_rejects_file)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_error err;
    const size_t n = 30000;
    const char *path = write_rows("many_rejects.csv", "r-", ",Female,0,Yes,No,x",
                                  ",No,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,Yes,"
                                  "Electronic check,29.85,29.85,No\n",
                                  n);
    ch_csv *csv = NULL;
    ch_csv_record rec;
    int got = 1;
    size_t rows = 0;

    char rj_path[1024];

    snprintf(rj_path, sizeof rj_path, "%s/many_rejects.rejects.csv", ch_test_tmpdir());
    ch_ingest_opts_default(&o);
    o.max_reject_rate = 1;
    o.rejects_path = rj_path;
    ASSERT_OK(ch_ingest_file(s, path, &o, NULL, &r, &err));
    ASSERT_INT_EQ(r->rows_rejected, n);
    ASSERT_INT_EQ(r->by_reason[CH_REASON_NOT_NUMBER], n);
    ASSERT_INT_EQ(r->n_examples, 20);
    ASSERT_OK(ch_csv_open_file(o.rejects_path, NULL, &csv, &err));
    ASSERT_OK(ch_csv_next(csv, &rec, &got, &err));
    ASSERT(got);
    ASSERT_INT_EQ(rec.raw_len, strlen("line,column,reason,value,record"));
    for (;;) {
        char want[32];
        ASSERT_OK(ch_csv_next(csv, &rec, &got, &err));
        if (!got)
            break;
        ASSERT_INT_EQ(rec.n_fields, 5);
        snprintf(want, sizeof want, "%zu", rows + 2);
        if (rec.fields[0].len != strlen(want) || memcmp(rec.fields[0].p, want, strlen(want)) != 0)
            FAIL("rejects row %zu: line %.*s", rows, (int)rec.fields[0].len, rec.fields[0].p);
        snprintf(want, sizeof want, "x%zu", rows);
        if (rec.fields[3].len != strlen(want) || memcmp(rec.fields[3].p, want, strlen(want)) != 0)
            FAIL("rejects row %zu: value %.*s", rows, (int)rec.fields[3].len, rec.fields[3].p);
        rows++;
    }
    ASSERT_INT_EQ(rows, n);
    ch_csv_free(csv);
    ch_ingest_report_free(r);
    ch_schema_free(s);
}

/* A categorical column may declare many categories: a schema with 1200
 * of them is valid, and ingesting a file through it must work. */
TEST(many_schema_categories)
{
    const size_t n_cats = 1200;
    ch_buf b;
    ch_schema *s;
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;
    ch_err rc;

    ch_buf_init(&b, MAX_FILE_BYTES);
    ch_buf_puts(&b, "{\"format\": \"churn-schema\", \"version\": 1, \"columns\": ["
                    "{\"name\": \"id\", \"kind\": \"id\"}, {\"name\": \"zip\", \"kind\": "
                    "\"categorical\", \"categories\": [");
    for (size_t k = 0; k < n_cats; k++)
        ch_buf_printf(&b, "%s\"z%zu\"", k ? ", " : "", k);
    ch_buf_puts(&b, "]}]}\n");
    ASSERT_OK(ch_buf_status(&b));
    write_file(tmp_file("zip.schema.json"), b.data, b.len);
    ch_buf_reset(&b);
    write_file(tmp_file("zip.csv"), "id,zip\na,z0\nb,z1199\nc,z7\n", 25);
    s = load_schema(tmp_file("zip.schema.json"));
    ASSERT_INT_EQ(ch_schema_col_ref(s, 1)->n_categories, n_cats);

    ch_ingest_opts_default(&o);
    rc = ch_ingest_file(s, tmp_file("zip.csv"), &o, &f, &r, &err);
    if (rc != CH_OK) {
        ch_schema_free(s);
        FAIL("ingesting through a %zu-category column: %s: %s", n_cats, ch_strerror(rc), err.msg);
    }
    ASSERT_INT_EQ(r->rows_accepted, 3);
    ASSERT_INT_EQ(r->cols[1].n_levels, n_cats);
    ASSERT_INT_EQ(r->cols[1].level_counts[1199], 1);
    ASSERT_INT_EQ(ch_frame_codes(f, 1)[1], 1199);
    ch_frame_free(f);
    ch_ingest_report_free(r);
    ch_schema_free(s);
}

/* Kept unknown categories: the report lists the schema's categories and
 * at most 1000 values outside them (ingest.h); the rest are counted in
 * n_unlisted, so listed counts plus n_unlisted add up to the column's
 * values, while the frame keeps every level. */
TEST(many_kept_unknowns)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;
    const size_t n = 1500;
    const char *path = write_rows("unknowns.csv", "u-",
                                  ",Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,"
                                  "No,No,Month-to-month,Yes,pay-",
                                  ",29.85,29.85,No\n", n);
    long j = ch_schema_find(s, "PaymentMethod");
    const ch_ingest_col *c;
    uint64_t total = 0;

    ch_ingest_opts_default(&o);
    ASSERT_OK(ch_ingest_file(s, path, &o, &f, &r, &err));
    c = &r->cols[j];
    ASSERT_INT_EQ(r->rows_accepted, n);
    ASSERT_INT_EQ(c->n_unknown, n);
    ASSERT_INT_EQ(ch_frame_n_levels(f, (size_t)j), 4 + n);
    for (size_t k = 0; k < c->n_levels; k++)
        total += c->level_counts[k];
    if (c->n_levels != 4 + 1000 || c->n_unlisted != n - 1000 ||
        total + c->n_unlisted != c->n_values) {
        char what[256];
        snprintf(what, sizeof what,
                 "%zu report levels (want 1004); counts %llu + unlisted %llu of %llu values",
                 c->n_levels, (unsigned long long)total, (unsigned long long)c->n_unlisted,
                 (unsigned long long)c->n_values);
        ch_frame_free(f);
        ch_ingest_report_free(r);
        ch_schema_free(s);
        FAIL("PaymentMethod: %s", what);
    }
    ch_frame_free(f);
    ch_ingest_report_free(r);
    ch_schema_free(s);
}

/*
 * Fails allocation N for N = 1, 2, ... through a whole ingestion that
 * accepts, rejects, keeps unknown categories and writes a rejects file,
 * until a run succeeds. Every failure must be CH_ENOMEM with nothing
 * returned; leaks show up under ASan and valgrind.
 */
static void oom_loop(const char *case_name, ch_err final_rc)
{
    ch_schema *s = load_telco_schema();
    ch_ingest_opts o;
    long n;
    long failures = 0;

    ch_ingest_opts_default(&o);
    o.max_reject_rate = final_rc == CH_ELIMIT ? 0.05 : 1.0;
    o.rejects_path = tmp_file("oom.rejects.csv");
    for (n = 1; n < 100000; n++) {
        ch_frame *f = NULL;
        ch_ingest_report *r = NULL;
        ch_error err;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_ingest_file(s, case_path(case_name, ".csv"), &o, &f, &r, &err);
        ch_alloc_fail_after(0);
        if (rc == final_rc) {
            ASSERT(r != NULL);
            ch_ingest_report_free(r);
            ch_frame_free(f);
            break;
        }
        if (rc != CH_ENOMEM)
            FAIL("%s: allocation %ld failing gave %s: %s", case_name, n, ch_strerror(rc), err.msg);
        ASSERT_INT_EQ(err.code, CH_ENOMEM);
        ASSERT(f == NULL);
        ASSERT(r == NULL);
        failures++;
    }
    ASSERT(failures > 10);
    ASSERT(n < 100000);
    ch_schema_free(s);
}

TEST(out_of_memory)
{
    oom_loop("unknown_category", CH_OK);
    oom_loop("reject_rate_exceeded", CH_ELIMIT);
}

/* ---- the Telco dataset ----------------------------------------------------- */

TEST(telco_dataset)
{
    const char *path = ch_test_telco_csv();
    ch_schema *s;
    ch_ingest_opts o;
    ch_ingest_report *r = NULL;
    ch_frame *f = NULL;
    ch_error err;
    ch_err rc;
    size_t len;
    char *data;
    char hex[CH_SHA256_HEX_LEN + 1];
    long j;
    const double *total;
    const uint8_t *m;
    size_t n_nan = 0;

    if (path == NULL)
        SKIP("the Telco CSV (WA_Fn-UseC_-Telco-Customer-Churn.csv) is not in $CH_SHARED_DATA "
             "or ../shared/data");
    s = load_telco_schema();
    ch_ingest_opts_default(&o);
    o.rejects_path = tmp_file("telco.rejects.csv");
    rc = ch_ingest_file(s, path, &o, &f, &r, &err);
    if (rc != CH_OK)
        FAIL("ingesting %s: %s: %s", path, ch_strerror(rc), err.msg);
    ASSERT_INT_EQ(r->rows_read, 7043);
    ASSERT_INT_EQ(r->rows_accepted, 7043);
    ASSERT_INT_EQ(r->rows_rejected, 0);
    ASSERT_INT_EQ(r->blank_lines, 0);
    ASSERT_INT_EQ(r->n_positive, 1869);
    j = ch_schema_find(s, "TotalCharges");
    ASSERT_INT_EQ(r->cols[j].n_missing, 11);
    ASSERT_INT_EQ(ch_frame_n_rows(f), 7043);
    ASSERT_INT_EQ(ch_frame_n_cols(f), 21);
    ASSERT_INT_EQ(ch_frame_n_missing(f, (size_t)j), 11);
    total = ch_frame_num(f, (size_t)j);
    m = ch_frame_missing(f, (size_t)j);
    ASSERT(total != NULL && m != NULL);
    for (size_t i = 0; i < 7043; i++) {
        ASSERT_INT_EQ(isnan(total[i]) != 0, m[i]);
        n_nan += m[i];
    }
    ASSERT_INT_EQ(n_nan, 11);
    /* Nothing else is missing; no kept unknown payment method. */
    for (size_t k = 0; k < 21; k++)
        if (k != (size_t)j)
            ASSERT_INT_EQ(ch_frame_n_missing(f, k), 0);
    ASSERT_INT_EQ(r->cols[ch_schema_find(s, "PaymentMethod")].n_unknown, 0);
    ASSERT_INT_EQ(ch_frame_n_levels(f, (size_t)ch_schema_find(s, "PaymentMethod")), 4);
    j = ch_schema_find(s, "tenure");
    ASSERT(r->cols[j].min == 0.0);
    ASSERT(r->cols[j].max == 72.0);
    ASSERT_STR_EQ(ch_frame_str(f, 0, 0, NULL), "7590-VHVEG");
    ASSERT(ch_frame_num(f, (size_t)ch_schema_find(s, "Churn"))[2] == 1.0);

    data = slurp(path, &len);
    ASSERT(data != NULL);
    ASSERT_OK(ch_sha256_hex(data, len, hex, &err));
    ASSERT_STR_EQ(r->sha256, hex);
    ASSERT_INT_EQ(r->bytes, len);
    ch_free(data);
    data = slurp(o.rejects_path, &len);
    ASSERT(data != NULL);
    ASSERT_STR_EQ(data, "line,column,reason,value,record\n");
    ch_free(data);
    ch_ingest_report_free(r);
    ch_frame_free(f);
    ch_schema_free(s);
}

TEST_MAIN(T(data_cases), T(header_problems), T(field_problems), T(unknown_categories), T(targets),
          T(duplicate_ids), T(malformed_csv), T(file_shapes), T(reject_rate), T(opts_defaults),
          T(null_opts_use_defaults), T(sha256_matches_file), T(rejects_file_contents),
          T(report_statistics_and_json), T(example_values_are_printable), T(frame_is_optional),
          T(argument_and_io_errors), T(record_too_long), T(many_ids), T(large_rejects_file),
          T(many_schema_categories), T(many_kept_unknowns), T(out_of_memory), T(telco_dataset))
