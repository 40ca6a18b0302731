/*
 * ingest.c -- CSV through a schema into a frame, accounting for every row.
 *
 * One pass: the CSV reader hashes the bytes as it tokenizes them; each
 * record is checked field by field with ch_schema_parse_value() into a
 * row of cells, and only a row without problems is appended to the frame.
 * A rejected row keeps its first problem (line, column, reason) and goes
 * to the rejects file verbatim.
 *
 * The per-row work is a handful of compares and one number parse per
 * numeric field; no allocation happens per row except frame growth.
 */
#include "ch/ingest.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/text.h"
#include "schema_int.h"

#define PROGRESS_BYTES   (64u << 20)
#define MAX_EXTRA_LEVELS 1000 /* kept unknown categories listed one by one */

void ch_ingest_opts_default(ch_ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_reject_rate = 0.05;
    o->keep_frame = 1;
    o->check_duplicate_ids = 1;
    o->max_examples = 20;
    ch_csv_opts_default(&o->csv);
}

/* ---- a set of ids, for duplicate detection ----------------------------- */

/* Open addressing with one 8-byte slot per entry: the high 32 bits hold
 * a tag from the hash (never 0), the low 32 bits the id's number + 1; ids
 * live NUL-separated in 'pool' at offs[number]. A probe touches the text
 * only when tags agree. At a million ids the table is 16 MB, so every
 * byte saved is a page fault and cache miss saved. One probe serves both
 * the lookup and the later insert (idset_find returns the free slot). */
typedef struct idset {
    char *pool; /* ids, NUL-separated */
    size_t pool_len, pool_cap;
    uint64_t *offs; /* pool offset of id number k */
    size_t cap_offs;
    uint64_t *slots; /* 0 = empty */
    size_t n_slots, n;
} idset;

#define IDSET_MAX 0xFFFFFFF0u /* ids numbered in 32 bits */

/* A fast 64-bit hash of short keys: 8-byte words through a multiply-xor
 * mixer (the finalizer of splitmix64). */
static uint64_t hash_id(const char *p, size_t len)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xBF58476D1CE4E5B9ull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = (h ^ w) * 0x94D049BB133111EBull;
    }
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    return h;
}

/* The slot's tag: the hash's high 32 bits (never 0). Probing starts at
 * the tag's low bits, so growing the table needs no id re-hashed. */
static uint64_t tag_of(uint64_t h)
{
    uint64_t t = h >> 32;
    return (t == 0 ? 1 : t) << 32;
}

static size_t home_of(uint64_t tagged, size_t mask)
{
    return (size_t)(tagged >> 32) & mask;
}

static int idset_grow(idset *s)
{
    size_t n = s->n_slots == 0 ? 4096 : s->n_slots * 2;
    uint64_t *v = ch_calloc(n, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < s->n_slots; i++) {
        uint64_t e = s->slots[i];
        if (e == 0)
            continue;
        size_t k = home_of(e, n - 1);
        while (v[k] != 0)
            k = (k + 1) & (n - 1);
        v[k] = e;
    }
    ch_free(s->slots);
    s->slots = v;
    s->n_slots = n;
    return 0;
}

/* Makes room for one more id: -1 on ENOMEM, -2 past IDSET_MAX ids. */
static int idset_reserve(idset *s)
{
    if (s->n >= IDSET_MAX)
        return -2;
    if (s->n == s->cap_offs) {
        size_t cap = s->cap_offs == 0 ? 4096 : s->cap_offs * 2;
        uint64_t *o = ch_realloc(s->offs, cap * sizeof *o);
        if (o == NULL)
            return -1;
        s->offs = o;
        s->cap_offs = cap;
    }
    return (s->n + 1) * 2 > s->n_slots ? idset_grow(s) : 0;
}

/* Returns 1 when the id is present; otherwise 0 with '*slot' the free
 * slot where it would go. Call idset_reserve() first. */
static int idset_find(const idset *s, const char *p, size_t len, uint64_t h, size_t *slot)
{
    size_t mask = s->n_slots - 1;
    uint64_t tag = tag_of(h);
    for (size_t k = home_of(tag, mask);; k = (k + 1) & mask) {
        uint64_t e = s->slots[k];
        if (e == 0) {
            *slot = k;
            return 0;
        }
        if ((e & ~(uint64_t)0xFFFFFFFFu) == tag) {
            const char *id = s->pool + s->offs[(e & 0xFFFFFFFFu) - 1];
            if (memcmp(id, p, len) == 0 && id[len] == '\0')
                return 1;
        }
    }
}

static int idset_insert(idset *s, size_t slot, const char *p, size_t len, uint64_t h)
{
    if (s->pool_len + len + 1 > s->pool_cap) {
        size_t cap = s->pool_cap < 65536 ? 65536 : s->pool_cap * 2;
        char *v;
        while (cap < s->pool_len + len + 1)
            cap *= 2;
        v = ch_realloc(s->pool, cap);
        if (v == NULL)
            return -1;
        s->pool = v;
        s->pool_cap = cap;
    }
    memcpy(s->pool + s->pool_len, p, len);
    s->pool[s->pool_len + len] = '\0';
    s->offs[s->n] = s->pool_len;
    s->slots[slot] = tag_of(h) | (uint64_t)(s->n + 1);
    s->pool_len += len + 1;
    s->n++;
    return 0;
}

static void idset_free(idset *s)
{
    ch_free(s->pool);
    ch_free(s->offs);
    ch_free(s->slots);
}

/* ---- report ------------------------------------------------------------ */

void ch_ingest_report_free(ch_ingest_report *r)
{
    if (r == NULL)
        return;
    for (size_t j = 0; j < r->n_cols; j++) {
        ch_ingest_col *c = &r->cols[j];
        ch_free(c->level_counts);
        for (size_t k = 0; k < c->n_levels; k++)
            ch_free(c->levels[k]);
        ch_free(c->levels);
    }
    ch_free(r->cols);
    ch_free(r->examples);
    ch_free(r);
}

/* Adds a level text to a column's count table; returns its index, -1 on
 * ENOMEM, or -2 when 'capped' and MAX_EXTRA_LEVELS values outside the
 * schema are listed already. */
static long level_add(ch_ingest_col *c, const char *p, size_t len, size_t n_schema, int capped)
{
    for (size_t k = 0; k < c->n_levels; k++)
        if (strncmp(c->levels[k], p, len) == 0 && c->levels[k][len] == '\0')
            return (long)k;
    if (capped && c->n_levels >= n_schema + MAX_EXTRA_LEVELS)
        return -2;
    {
        char **lv = ch_realloc(c->levels, (c->n_levels + 1) * sizeof *lv);
        uint64_t *cn;
        if (lv == NULL)
            return -1;
        c->levels = lv;
        cn = ch_realloc(c->level_counts, (c->n_levels + 1) * sizeof *cn);
        if (cn == NULL)
            return -1;
        c->level_counts = cn;
        c->levels[c->n_levels] = ch_strndup(p, len);
        if (c->levels[c->n_levels] == NULL)
            return -1;
        c->level_counts[c->n_levels] = 0;
        return (long)c->n_levels++;
    }
}

static ch_err report_new(const ch_schema *s, size_t max_examples, ch_ingest_report **out,
                         ch_error *err)
{
    size_t n = ch_schema_n_cols(s);
    ch_ingest_report *r = ch_calloc(1, sizeof *r);
    if (r == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    r->cols = ch_calloc(n, sizeof *r->cols);
    r->examples = ch_calloc(max_examples == 0 ? 1 : max_examples, sizeof *r->examples);
    if (r->cols == NULL || r->examples == NULL) {
        ch_ingest_report_free(r);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    r->n_cols = n;
    for (size_t j = 0; j < n; j++) {
        const ch_schema_col *sc = ch_schema_col_ref(s, j);
        ch_ingest_col *c = &r->cols[j];
        c->min = INFINITY;
        c->max = -INFINITY;
        for (size_t k = 0; sc->kind == CH_KIND_CATEGORICAL && k < sc->n_categories; k++) {
            if (level_add(c, sc->categories[k], strlen(sc->categories[k]), 0, 0) < 0) {
                ch_ingest_report_free(r);
                return ch_error_set(err, CH_ENOMEM, "out of memory");
            }
        }
    }
    *out = r;
    return CH_OK;
}

/* ---- header ------------------------------------------------------------ */

/* Maps each schema column to its field index in the header ('map'), and
 * checks for missing, unexpected and duplicate names, reporting all of
 * them in one message. */
static ch_err map_header(const ch_schema *s, const ch_csv_record *h, long optional, size_t *map,
                         ch_error *err)
{
    char missing[512] = "";
    char extra[512] = "";
    char dup[512] = "";
    size_t n = ch_schema_n_cols(s);
    size_t nm = 0;
    size_t ne = 0;
    size_t nd = 0;

    for (size_t j = 0; j < n; j++)
        map[j] = SIZE_MAX;
    for (size_t i = 0; i < h->n_fields; i++) {
        const ch_csv_field *f = &h->fields[i];
        char name[256];
        long j;
        ch_text_excerpt(name, sizeof name, f->p, f->len);
        if (f->len >= sizeof name || memchr(f->p, '\0', f->len) != NULL) {
            j = -1;
        } else {
            memcpy(name, f->p, f->len);
            name[f->len] = '\0';
            j = ch_schema_find(s, name);
        }
        if (j < 0) {
            if (!ch_schema_ignores_extra(s)) {
                ch_text_excerpt(name, 64, f->p, f->len);
                if (ne++ < 8)
                    snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s\"%s\"",
                             ne > 1 ? ", " : "", name);
            }
        } else if (map[j] != SIZE_MAX) {
            if (nd++ < 8)
                snprintf(dup + strlen(dup), sizeof dup - strlen(dup), "%s\"%s\"",
                         nd > 1 ? ", " : "", ch_schema_col_ref(s, (size_t)j)->name);
        } else {
            map[j] = i;
        }
    }
    for (size_t j = 0; j < n; j++) {
        if (map[j] == SIZE_MAX && (long)j != optional && nm++ < 8)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s\"%s\"",
                     nm > 1 ? ", " : "", ch_schema_col_ref(s, j)->name);
    }
    if (nm + ne + nd == 0)
        return CH_OK;
    return ch_error_set(err, CH_ESCHEMA, "header (line %llu): %s%s%s%s%s%s%s%s%s",
                        (unsigned long long)h->line, nm ? "missing column(s) " : "", missing,
                        nm && (ne || nd) ? "; " : "", ne ? "unexpected column(s) " : "", extra,
                        ne && nd ? "; " : "", nd ? "duplicate column(s) " : "", dup,
                        (nm > 8 || ne > 8 || nd > 8) ? " (and more)" : "");
}

/* ---- rejects file ------------------------------------------------------ */

typedef struct rejects {
    FILE *f;
    ch_buf b;
    const char *path;
} rejects;

static ch_err rejects_flush(rejects *rj, ch_error *err)
{
    if (rj->f == NULL || rj->b.len == 0)
        return CH_OK;
    if (ch_buf_status(&rj->b) != CH_OK)
        return ch_error_set(err, ch_buf_status(&rj->b), "%s: out of memory", rj->path);
    if (fwrite(rj->b.data, 1, rj->b.len, rj->f) != rj->b.len)
        return ch_error_set(err, CH_EIO, "%s: write failed: %s", rj->path, strerror(errno));
    ch_buf_clear(&rj->b);
    return CH_OK;
}

static ch_err rejects_add(rejects *rj, const ch_csv_record *rec, const char *column, ch_reason why,
                          const char *value, size_t value_len, ch_error *err)
{
    if (rj->f == NULL)
        return CH_OK;
    ch_buf_printf(&rj->b, "%llu,", (unsigned long long)rec->line);
    ch_buf_csv_field(&rj->b, column, strlen(column));
    ch_buf_printf(&rj->b, ",%s,", ch_reason_name(why));
    ch_buf_csv_field(&rj->b, value, value_len);
    ch_buf_putc(&rj->b, ',');
    ch_buf_csv_field(&rj->b, rec->raw, rec->raw_len);
    ch_buf_puts(&rj->b, "\n");
    if (rj->b.len >= (1u << 20))
        return rejects_flush(rj, err);
    return ch_buf_status(&rj->b) == CH_OK
               ? CH_OK
               : ch_error_set(err, ch_buf_status(&rj->b), "%s: out of memory", rj->path);
}

/* ---- the pass ---------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static ch_err make_frame(const ch_schema *s, ch_frame **out, ch_error *err)
{
    ch_frame *f = NULL;
    ch_err rc = ch_frame_new(&f, err);
    for (size_t j = 0; rc == CH_OK && j < ch_schema_n_cols(s); j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        ch_col_type t = c->kind == CH_KIND_ID            ? CH_COL_STR
                        : c->kind == CH_KIND_CATEGORICAL ? CH_COL_CAT
                                                         : CH_COL_NUM;
        rc = ch_frame_add_column(f, c->name, t, c->categories, c->n_categories, err);
    }
    if (rc != CH_OK) {
        ch_frame_free(f);
        return rc;
    }
    *out = f;
    return CH_OK;
}

typedef struct problem {
    long col; /* schema column or -1 */
    ch_reason why;
    const char *p; /* offending text */
    size_t len;
} problem;

/* Checks one record against the schema's columns 'cols' (n of them),
 * filling 'cells'. Returns 1 if the row is accepted. For the id column,
 * '*id_hash' and '*id_slot' are left ready for idset_insert(). */
static int check_record(const ch_schema_col *const *cols, size_t n, const size_t *map,
                        size_t n_header, const ch_csv_record *rec, ch_cell *cells, const idset *ids,
                        int check_ids, long opt_target, uint64_t *id_hash, size_t *id_slot,
                        problem *pb)
{
    long id_j = -1;
    if (rec->problem != NULL) {
        const ch_csv_field *f = &rec->fields[rec->problem_field];
        pb->col = -1;
        for (size_t j = 0; j < n; j++)
            if (map[j] == rec->problem_field)
                pb->col = (long)j;
        pb->why = CH_REASON_MALFORMED;
        pb->p = f->p;
        pb->len = f->len;
        return 0;
    }
    if (rec->n_fields != n_header) {
        pb->col = -1;
        pb->why = CH_REASON_FIELD_COUNT;
        pb->p = "";
        pb->len = 0;
        return 0;
    }
    for (size_t j = 0; j < n; j++) {
        const ch_schema_col *c = cols[j];
        ch_cell *x = &cells[j];
        if (map[j] == SIZE_MAX) { /* an optional target absent from the file */
            x->missing = 1;
            continue;
        }
        const ch_csv_field *f = &rec->fields[map[j]];
        ch_reason why = CH_REASON_NONE;
        ch_value_status st = ch__parse_value(c, f->p, f->len, &x->num, &x->code, &why);
        x->missing = 0;
        x->str = f->p;
        x->len = f->len;
        if (st == CH_VALUE_MISSING) {
            if (!c->nullable && (long)j != opt_target)
                why = c->kind == CH_KIND_TARGET ? CH_REASON_MISSING_TARGET : CH_REASON_MISSING;
            x->missing = 1;
        } else if (st == CH_VALUE_UNKNOWN) {
            if (c->on_unknown == CH_UNKNOWN_KEEP)
                why = CH_REASON_NONE;
            x->code = -1;
        } else if (st == CH_VALUE_OK && c->kind == CH_KIND_ID && check_ids) {
            /* The set is far larger than the caches: start loading the
             * slot now and look at it after the other fields. */
            *id_hash = hash_id(f->p, f->len);
            id_j = (long)j;
            __builtin_prefetch(&ids->slots[home_of(tag_of(*id_hash), ids->n_slots - 1)]);
        } else if (st == CH_VALUE_BAD && why == CH_REASON_NONE) {
            why = CH_REASON_NOT_NUMBER;
        }
        if (why != CH_REASON_NONE) {
            pb->col = (long)j;
            pb->why = why;
            pb->p = f->p;
            pb->len = f->len;
            return 0;
        }
    }
    if (id_j >= 0) {
        const ch_csv_field *f = &rec->fields[map[id_j]];
        if (idset_find(ids, f->p, f->len, *id_hash, id_slot)) {
            pb->col = id_j;
            pb->why = CH_REASON_DUPLICATE_ID;
            pb->p = f->p;
            pb->len = f->len;
            return 0;
        }
    }
    return 1;
}

/* Folds an accepted row into the report's column statistics. */
static ch_err add_stats(ch_ingest_report *r, const ch_schema *s, const ch_cell *cells,
                        ch_error *err)
{
    for (size_t j = 0; j < r->n_cols; j++) {
        const ch_schema_col *sc = ch_schema_col_ref(s, j);
        ch_ingest_col *c = &r->cols[j];
        const ch_cell *x = &cells[j];
        if (x->missing) {
            c->n_missing++;
            continue;
        }
        c->n_values++;
        switch (sc->kind) {
        case CH_KIND_CATEGORICAL: {
            long k = x->code;
            if (k < 0) {
                c->n_unknown++;
                k = level_add(c, x->str, x->len, sc->n_categories, 1);
                if (k == -1)
                    return ch_error_set(err, CH_ENOMEM, "out of memory");
            }
            if (k >= 0)
                c->level_counts[k]++;
            else
                c->n_unlisted++;
            break;
        }
        case CH_KIND_NUMERIC:
        case CH_KIND_INTEGER:
        case CH_KIND_BINARY:
        case CH_KIND_TARGET:
            if (x->num < c->min)
                c->min = x->num;
            if (x->num > c->max)
                c->max = x->num;
            c->sum += x->num;
            if (sc->kind == CH_KIND_TARGET && x->num == 1.0)
                r->n_positive++;
            break;
        case CH_KIND_ID:
            break;
        }
    }
    return CH_OK;
}

ch_err ch_ingest_file(const ch_schema *schema, const char *path, const ch_ingest_opts *opts,
                      ch_frame **frame_out, ch_ingest_report **report_out, ch_error *err)
{
    ch_ingest_opts defaults;
    const ch_ingest_opts *o = opts;
    ch_csv *csv = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *r = NULL;
    size_t n = ch_schema_n_cols(schema);
    size_t *map = NULL;
    ch_cell *cells = NULL;
    const ch_schema_col **cols = NULL;
    idset ids = {0};
    rejects rj = {0};
    ch_csv_record rec;
    size_t n_header;
    uint64_t next_progress = PROGRESS_BYTES;
    double t0 = now_seconds();
    long id_col = ch_schema_id(schema);
    int check_ids;
    int got = 0;
    int over_rate = 0;
    long opt_target = o != NULL && o->target_optional ? ch_schema_target(schema) : -1;
    int rc_ids; /* failing on the reject rate: the report still goes out */
    ch_err rc;

    if (o == NULL) {
        ch_ingest_opts_default(&defaults);
        o = &defaults;
    }
    check_ids = o->check_duplicate_ids && id_col >= 0;
    if (!(o->max_reject_rate >= 0.0 && o->max_reject_rate <= 1.0))
        return ch_error_set(err, CH_EINVAL, "max_reject_rate must be between 0 and 1");
    rc = report_new(schema, o->max_examples, &r, err);
    if (rc != CH_OK)
        return rc;
    map = ch_calloc(n, sizeof *map);
    cells = ch_calloc(n, sizeof *cells);
    cols = ch_calloc(n, sizeof *cols);
    if (map == NULL || cells == NULL || cols == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < n; j++)
        cols[j] = ch_schema_col_ref(schema, j);
    if (o->keep_frame && frame_out != NULL && (rc = make_frame(schema, &frame, err)) != CH_OK)
        goto done;
    rc = ch_csv_open_file(path, &o->csv, &csv, err);
    if (rc != CH_OK)
        goto done;
    rc = ch_csv_next(csv, &rec, &got, err);
    if (rc != CH_OK)
        goto fail_path;
    if (!got) {
        rc = ch_error_set(err, CH_EDATA, "empty file: no header line");
        goto fail_path;
    }
    n_header = rec.n_fields;
    if (rec.problem != NULL) {
        rc = ch_error_set(err, CH_ESCHEMA, "header (line %llu): %s", (unsigned long long)rec.line,
                          rec.problem);
        goto fail_path;
    }
    rc = map_header(schema, &rec, opt_target, map, err);
    if (rc != CH_OK)
        goto fail_path;
    if (o->rejects_path != NULL) {
        rj.path = o->rejects_path;
        ch_buf_init(&rj.b, (size_t)1 << 30);
        rj.f = fopen(o->rejects_path, "wb");
        if (rj.f == NULL) {
            rc = ch_error_set(err, CH_EIO, "%s: %s", o->rejects_path, strerror(errno));
            goto done;
        }
        ch_buf_puts(&rj.b, "line,column,reason,value,record\n");
    }

    for (;;) {
        problem pb;
        uint64_t id_hash = 0;
        size_t id_slot = 0;
        rc = ch_csv_next(csv, &rec, &got, err);
        if (rc != CH_OK)
            goto fail_path;
        if (!got)
            break;
        r->rows_read++;
        if (check_ids && (rc_ids = idset_reserve(&ids)) != 0) {
            rc = rc_ids == -1 ? ch_error_set(err, CH_ENOMEM, "out of memory")
                              : ch_error_set(err, CH_ELIMIT,
                                             "more than %u ids to check for duplicates "
                                             "(turn the check off for such files)",
                                             IDSET_MAX);
            goto done;
        }
        if (check_record(cols, n, map, n_header, &rec, cells, &ids, check_ids, opt_target, &id_hash,
                         &id_slot, &pb)) {
            if (frame != NULL && (rc = ch_frame_append_row(frame, cells, err)) != CH_OK)
                goto done;
            if (check_ids &&
                idset_insert(&ids, id_slot, cells[id_col].str, cells[id_col].len, id_hash) != 0) {
                rc = ch_error_set(err, CH_ENOMEM, "out of memory");
                goto done;
            }
            if ((rc = add_stats(r, schema, cells, err)) != CH_OK)
                goto done;
            r->rows_accepted++;
        } else {
            const char *cname = pb.col >= 0 ? ch_schema_col_ref(schema, (size_t)pb.col)->name : "";
            r->rows_rejected++;
            r->by_reason[pb.why]++;
            if (r->n_examples < o->max_examples) {
                ch_ingest_example *ex = &r->examples[r->n_examples++];
                ex->line = rec.line;
                ex->column = pb.col;
                ex->reason = pb.why;
                ch_text_excerpt(ex->value, sizeof ex->value, pb.p, pb.len);
            }
            rc = rejects_add(&rj, &rec, cname, pb.why, pb.p, pb.len, err);
            if (rc != CH_OK)
                goto done;
        }
        if (o->progress != NULL && ch_csv_bytes(csv) >= next_progress) {
            o->progress(o->progress_ctx, ch_csv_bytes(csv), r->rows_read);
            next_progress += PROGRESS_BYTES;
        }
    }
    r->blank_lines = ch_csv_blank_lines(csv);
    r->bytes = ch_csv_bytes(csv);
    if (o->csv.hash && (rc = ch_csv_sha256(csv, r->sha256, err)) != CH_OK)
        goto done;
    if ((rc = rejects_flush(&rj, err)) != CH_OK)
        goto done;
    r->seconds = now_seconds() - t0;
    if (r->rows_read > 0 && (double)r->rows_rejected > o->max_reject_rate * (double)r->rows_read) {
        rc = ch_error_set(
            err, CH_ELIMIT, "%llu of %llu rows rejected (%.2f%%), above the limit of %.2f%%",
            (unsigned long long)r->rows_rejected, (unsigned long long)r->rows_read,
            100.0 * (double)r->rows_rejected / (double)r->rows_read, 100.0 * o->max_reject_rate);
        ch_error_prefix(err, "%s", path);
        over_rate = 1;
        goto done;
    }
    goto done;

fail_path:
    ch_error_prefix(err, "%s", path);
done:
    if (rj.f != NULL) {
        if (fclose(rj.f) != 0 && rc == CH_OK)
            rc = ch_error_set(err, CH_EIO, "%s: close failed: %s", rj.path, strerror(errno));
        ch_buf_reset(&rj.b);
    }
    ch_csv_free(csv);
    idset_free(&ids);
    ch_free(map);
    ch_free(cells);
    ch_free(cols);
    if (rc != CH_OK && !over_rate) {
        ch_frame_free(frame);
        ch_ingest_report_free(r);
        return rc;
    }
    if (rc == CH_OK && frame_out != NULL)
        *frame_out = frame;
    else
        ch_frame_free(frame);
    if (report_out != NULL)
        *report_out = r;
    else
        ch_ingest_report_free(r);
    return rc;
}

/* ---- JSON report ------------------------------------------------------- */

ch_err ch_ingest_report_json(const ch_ingest_report *r, const ch_schema *s, ch_buf *b)
{
    ch_buf_printf(b,
                  "{\"sha256\": \"%s\", \"bytes\": %llu, \"rows\": %llu, \"accepted\": %llu, "
                  "\"rejected\": %llu, \"blank_lines\": %llu, \"positives\": %llu, "
                  "\"seconds\": ",
                  r->sha256, (unsigned long long)r->bytes, (unsigned long long)r->rows_read,
                  (unsigned long long)r->rows_accepted, (unsigned long long)r->rows_rejected,
                  (unsigned long long)r->blank_lines, (unsigned long long)r->n_positive);
    ch_buf_json_num(b, r->seconds);
    ch_buf_puts(b, ", \"rejected_by_reason\": {");
    for (int k = 1, first = 1; k < CH_REASON_COUNT_; k++) {
        if (r->by_reason[k] == 0)
            continue;
        ch_buf_printf(b, "%s\"%s\": %llu", first ? "" : ", ", ch_reason_name((ch_reason)k),
                      (unsigned long long)r->by_reason[k]);
        first = 0;
    }
    ch_buf_puts(b, "}, \"examples\": [");
    for (size_t i = 0; i < r->n_examples; i++) {
        const ch_ingest_example *e = &r->examples[i];
        const char *cn = e->column >= 0 ? ch_schema_col_ref(s, (size_t)e->column)->name : "";
        ch_buf_printf(b, "%s{\"line\": %llu, \"column\": ", i ? ", " : "",
                      (unsigned long long)e->line);
        ch_buf_json_str(b, cn, strlen(cn));
        ch_buf_printf(b, ", \"reason\": \"%s\", \"value\": ", ch_reason_name(e->reason));
        ch_buf_json_str(b, e->value, strlen(e->value));
        ch_buf_putc(b, '}');
    }
    ch_buf_puts(b, "], \"columns\": [");
    for (size_t j = 0; j < r->n_cols; j++) {
        const ch_schema_col *sc = ch_schema_col_ref(s, j);
        const ch_ingest_col *c = &r->cols[j];
        ch_buf_puts(b, j ? ", {\"name\": " : "{\"name\": ");
        ch_buf_json_str(b, sc->name, strlen(sc->name));
        ch_buf_printf(b, ", \"kind\": \"%s\", \"missing\": %llu, \"values\": %llu",
                      ch_kind_name(sc->kind), (unsigned long long)c->n_missing,
                      (unsigned long long)c->n_values);
        if (sc->kind == CH_KIND_CATEGORICAL) {
            ch_buf_printf(b, ", \"unknown\": %llu, \"unlisted\": %llu, \"categories\": {",
                          (unsigned long long)c->n_unknown, (unsigned long long)c->n_unlisted);
            for (size_t k = 0; k < c->n_levels; k++) {
                ch_buf_puts(b, k ? ", " : "");
                ch_buf_json_str(b, c->levels[k], strlen(c->levels[k]));
                ch_buf_printf(b, ": %llu", (unsigned long long)c->level_counts[k]);
            }
            ch_buf_putc(b, '}');
        } else if (sc->kind != CH_KIND_ID && c->n_values > 0) {
            ch_buf_puts(b, ", \"min\": ");
            ch_buf_json_num(b, c->min);
            ch_buf_puts(b, ", \"max\": ");
            ch_buf_json_num(b, c->max);
            ch_buf_puts(b, ", \"mean\": ");
            ch_buf_json_num(b, c->sum / (double)c->n_values);
        }
        ch_buf_putc(b, '}');
    }
    return ch_buf_puts(b, "]}\n");
}
