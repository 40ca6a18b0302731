/*
 * frame.c -- columnar storage.
 *
 * All columns share one row capacity that doubles as rows arrive, so a
 * row append never fails halfway: capacity is reserved for every column
 * first, then the cells are written. Level dictionaries are small in
 * practice (tens of categories) but may grow when unknown values are
 * kept, so lookups by text go through a hash table that is rebuilt on
 * growth.
 */
#include "ch/frame.h"

#include <stdint.h>

#include <math.h>
#include <string.h>

#include "ch/alloc.h"

typedef struct column {
    char *name;
    ch_col_type type;
    double *num;      /* CH_COL_NUM */
    int32_t *codes;   /* CH_COL_CAT */
    uint8_t *missing; /* lazily allocated mask */
    size_t n_missing;
    /* CH_COL_CAT dictionary */
    char **levels;
    size_t n_levels, cap_levels;
    int32_t *slots; /* open addressing: level index or -1 */
    size_t n_slots; /* power of two */
    /* CH_COL_STR pool: cell i is pool + offs[i], NUL-terminated; offs -1 = missing */
    char *pool;
    size_t pool_len, pool_cap;
    int64_t *offs;
} column;

struct ch_frame {
    column *cols;
    size_t n_cols;
    size_t n_rows;
    size_t cap_rows;
};

static uint64_t hash_bytes(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

ch_err ch_frame_new(ch_frame **out, ch_error *err)
{
    ch_frame *f = ch_calloc(1, sizeof *f);
    if (f == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    *out = f;
    return CH_OK;
}

static void column_clear(column *c)
{
    ch_free(c->name);
    ch_free(c->num);
    ch_free(c->codes);
    ch_free(c->missing);
    for (size_t k = 0; k < c->n_levels; k++)
        ch_free(c->levels[k]);
    ch_free(c->levels);
    ch_free(c->slots);
    ch_free(c->pool);
    ch_free(c->offs);
}

void ch_frame_free(ch_frame *f)
{
    if (f == NULL)
        return;
    for (size_t j = 0; j < f->n_cols; j++)
        column_clear(&f->cols[j]);
    ch_free(f->cols);
    ch_free(f);
}

static long dict_find(const column *c, const char *p, size_t len)
{
    size_t mask;
    size_t i;
    if (c->n_slots == 0)
        return -1;
    mask = c->n_slots - 1;
    for (i = (size_t)hash_bytes(p, len) & mask;; i = (i + 1) & mask) {
        int32_t k = c->slots[i];
        if (k < 0)
            return -1;
        if (strncmp(c->levels[k], p, len) == 0 && c->levels[k][len] == '\0')
            return k;
    }
}

static int dict_rehash(column *c, size_t n_slots)
{
    int32_t *s = ch_malloc_array(n_slots, sizeof *s);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < n_slots; i++)
        s[i] = -1;
    for (size_t k = 0; k < c->n_levels; k++) {
        size_t i = (size_t)hash_bytes(c->levels[k], strlen(c->levels[k])) & (n_slots - 1);
        while (s[i] >= 0)
            i = (i + 1) & (n_slots - 1);
        s[i] = (int32_t)k;
    }
    ch_free(c->slots);
    c->slots = s;
    c->n_slots = n_slots;
    return 0;
}

/* Adds a level (known to be absent); returns its index or -1 on ENOMEM. */
static long dict_add(column *c, const char *p, size_t len)
{
    char *copy;
    if (c->n_levels >= INT32_MAX - 1)
        return -1;
    if (c->n_levels == c->cap_levels) {
        size_t cap = c->cap_levels == 0 ? 8 : c->cap_levels * 2;
        char **v = ch_realloc(c->levels, cap * sizeof *v);
        if (v == NULL)
            return -1;
        c->levels = v;
        c->cap_levels = cap;
    }
    if ((c->n_levels + 1) * 2 > c->n_slots &&
        dict_rehash(c, c->n_slots == 0 ? 16 : c->n_slots * 2) != 0)
        return -1;
    copy = ch_strndup(p, len);
    if (copy == NULL)
        return -1;
    c->levels[c->n_levels] = copy;
    {
        size_t i = (size_t)hash_bytes(p, len) & (c->n_slots - 1);
        while (c->slots[i] >= 0)
            i = (i + 1) & (c->n_slots - 1);
        c->slots[i] = (int32_t)c->n_levels;
    }
    return (long)c->n_levels++;
}

/* Takes back the level that this row's cell 'x' added to 'c' (the last
 * one), if it did: used when a later column of the same row fails. */
static void dict_drop_new(column *c, const ch_cell *x)
{
    size_t last;
    if (c->type != CH_COL_CAT || x->missing || x->code >= 0 || c->n_levels == 0)
        return;
    last = c->n_levels - 1;
    if (strlen(c->levels[last]) != x->len || memcmp(c->levels[last], x->str, x->len) != 0)
        return;
    ch_free(c->levels[last]);
    c->n_levels = last;
    /* Removing from open addressing can break probe chains: rebuild. The
     * table only shrinks in content, so this cannot need more memory. */
    for (size_t i = 0; i < c->n_slots; i++)
        c->slots[i] = -1;
    for (size_t k = 0; k < c->n_levels; k++) {
        size_t i = (size_t)hash_bytes(c->levels[k], strlen(c->levels[k])) & (c->n_slots - 1);
        while (c->slots[i] >= 0)
            i = (i + 1) & (c->n_slots - 1);
        c->slots[i] = (int32_t)k;
    }
}

ch_err ch_frame_add_column(ch_frame *f, const char *name, ch_col_type type,
                           const char *const *levels, size_t n_levels, ch_error *err)
{
    column *cols;
    column *c;
    if (f->n_rows > 0 || f->cap_rows > 0)
        return ch_error_set(err, CH_EINVAL, "columns must be added before rows");
    cols = ch_realloc(f->cols, (f->n_cols + 1) * sizeof *cols);
    if (cols == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    f->cols = cols;
    c = &f->cols[f->n_cols];
    memset(c, 0, sizeof *c);
    c->type = type;
    c->name = ch_strdup(name);
    if (c->name == NULL)
        goto nomem;
    for (size_t k = 0; type == CH_COL_CAT && k < n_levels; k++) {
        if (dict_find(c, levels[k], strlen(levels[k])) >= 0)
            continue;
        if (dict_add(c, levels[k], strlen(levels[k])) < 0)
            goto nomem;
    }
    f->n_cols++;
    return CH_OK;
nomem:
    column_clear(c);
    return ch_error_set(err, CH_ENOMEM, "out of memory");
}

/* Grows every column to hold at least 'need' rows. */
static int reserve_rows(ch_frame *f, size_t need)
{
    size_t cap;
    if (need <= f->cap_rows)
        return 0;
    cap = f->cap_rows < 1024 ? 1024 : f->cap_rows * 2;
    while (cap < need)
        cap *= 2;
    for (size_t j = 0; j < f->n_cols; j++) {
        column *c = &f->cols[j];
        if (c->type == CH_COL_NUM) {
            double *v = ch_realloc(c->num, cap * sizeof *v);
            if (v == NULL)
                return -1;
            c->num = v;
        } else if (c->type == CH_COL_CAT) {
            int32_t *v = ch_realloc(c->codes, cap * sizeof *v);
            if (v == NULL)
                return -1;
            c->codes = v;
        } else {
            int64_t *v = ch_realloc(c->offs, cap * sizeof *v);
            if (v == NULL)
                return -1;
            c->offs = v;
        }
        if (c->missing != NULL) {
            uint8_t *m = ch_realloc(c->missing, cap);
            if (m == NULL)
                return -1;
            c->missing = m;
        }
    }
    f->cap_rows = cap;
    return 0;
}

/* Stores row 'cells' at index n_rows in one pass when nothing needs
 * memory (the usual case: masks exist, levels are known, the text pool
 * has room). Returns 1 when stored; 0 when something needs memory, after
 * undoing its counters, so the careful path can run. Cells written to
 * index n_rows are invisible until n_rows grows, so they need no undo. */
static int append_fast(ch_frame *f, const ch_cell *cells)
{
    size_t i = f->n_rows;
    size_t j;
    for (j = 0; j < f->n_cols; j++) {
        column *c = &f->cols[j];
        const ch_cell *x = &cells[j];
        if (x->missing) {
            if (c->missing == NULL)
                goto undo;
            c->missing[i] = 1;
            c->n_missing++;
            if (c->type == CH_COL_NUM)
                c->num[i] = NAN;
            else if (c->type == CH_COL_CAT)
                c->codes[i] = -1;
            else
                c->offs[i] = -1;
            continue;
        }
        if (c->missing != NULL)
            c->missing[i] = 0;
        if (c->type == CH_COL_NUM) {
            c->num[i] = x->num;
        } else if (c->type == CH_COL_CAT) {
            long k = x->code >= 0 ? x->code : dict_find(c, x->str, x->len);
            if (k < 0)
                goto undo;
            c->codes[i] = (int32_t)k;
        } else {
            if (c->pool_len + x->len + 1 > c->pool_cap)
                goto undo;
            memcpy(c->pool + c->pool_len, x->str, x->len);
            c->pool[c->pool_len + x->len] = '\0';
            c->offs[i] = (int64_t)c->pool_len;
            c->pool_len += x->len + 1;
        }
    }
    return 1;
undo:
    while (j-- > 0) {
        column *c = &f->cols[j];
        if (cells[j].missing)
            c->n_missing--;
        else if (c->type == CH_COL_STR)
            c->pool_len = (size_t)c->offs[i];
    }
    return 0;
}

ch_err ch_frame_append_row(ch_frame *f, const ch_cell *cells, ch_error *err)
{
    size_t i = f->n_rows;

    if (reserve_rows(f, i + 1) != 0)
        return ch_error_set(err, CH_ENOMEM, "out of memory growing a frame to %zu rows", i + 1);
    if (append_fast(f, cells)) {
        f->n_rows++;
        return CH_OK;
    }
    /* First everything that can fail, then the plain stores, so that a
     * failure leaves the frame as it was: growth of masks and text pools
     * changes no content; new levels come last and are taken back if a
     * later one fails. */
    for (size_t j = 0; j < f->n_cols; j++) {
        column *c = &f->cols[j];
        const ch_cell *x = &cells[j];
        if (x->missing && c->missing == NULL) {
            c->missing = ch_calloc(f->cap_rows, 1);
            if (c->missing == NULL)
                return ch_error_set(err, CH_ENOMEM, "out of memory");
        }
        if (c->type == CH_COL_STR && !x->missing && c->pool_len + x->len + 1 > c->pool_cap) {
            size_t cap = c->pool_cap < 4096 ? 4096 : c->pool_cap * 2;
            char *p;
            while (cap < c->pool_len + x->len + 1)
                cap *= 2;
            p = ch_realloc(c->pool, cap);
            if (p == NULL)
                return ch_error_set(err, CH_ENOMEM, "out of memory");
            c->pool = p;
            c->pool_cap = cap;
        }
    }
    for (size_t j = 0; j < f->n_cols; j++) {
        column *c = &f->cols[j];
        const ch_cell *x = &cells[j];
        if (c->type != CH_COL_CAT || x->missing || x->code >= 0 ||
            dict_find(c, x->str, x->len) >= 0)
            continue;
        if (dict_add(c, x->str, x->len) < 0) {
            for (size_t k = 0; k < j; k++)
                dict_drop_new(&f->cols[k], &cells[k]);
            return ch_error_set(err, CH_ENOMEM, "out of memory adding a category");
        }
    }
    for (size_t j = 0; j < f->n_cols; j++) {
        column *c = &f->cols[j];
        const ch_cell *x = &cells[j];
        if (c->missing != NULL)
            c->missing[i] = (uint8_t)(x->missing != 0);
        if (x->missing)
            c->n_missing++;
        switch (c->type) {
        case CH_COL_NUM:
            c->num[i] = x->missing ? NAN : x->num;
            break;
        case CH_COL_CAT:
            if (x->missing)
                c->codes[i] = -1;
            else if (x->code >= 0)
                c->codes[i] = x->code;
            else
                c->codes[i] = (int32_t)dict_find(c, x->str, x->len);
            break;
        case CH_COL_STR:
            if (x->missing) {
                c->offs[i] = -1;
            } else {
                memcpy(c->pool + c->pool_len, x->str, x->len);
                c->pool[c->pool_len + x->len] = '\0';
                c->offs[i] = (int64_t)c->pool_len;
                c->pool_len += x->len + 1;
            }
            break;
        }
    }
    f->n_rows++;
    return CH_OK;
}

size_t ch_frame_n_rows(const ch_frame *f)
{
    return f->n_rows;
}

size_t ch_frame_n_cols(const ch_frame *f)
{
    return f->n_cols;
}

const char *ch_frame_col_name(const ch_frame *f, size_t j)
{
    return j < f->n_cols ? f->cols[j].name : NULL;
}

ch_col_type ch_frame_col_type(const ch_frame *f, size_t j)
{
    return f->cols[j].type;
}

long ch_frame_find(const ch_frame *f, const char *name)
{
    for (size_t j = 0; j < f->n_cols; j++)
        if (strcmp(f->cols[j].name, name) == 0)
            return (long)j;
    return -1;
}

const double *ch_frame_num(const ch_frame *f, size_t j)
{
    return j < f->n_cols && f->cols[j].type == CH_COL_NUM ? f->cols[j].num : NULL;
}

const int32_t *ch_frame_codes(const ch_frame *f, size_t j)
{
    return j < f->n_cols && f->cols[j].type == CH_COL_CAT ? f->cols[j].codes : NULL;
}

const uint8_t *ch_frame_missing(const ch_frame *f, size_t j)
{
    return j < f->n_cols && f->cols[j].n_missing > 0 ? f->cols[j].missing : NULL;
}

size_t ch_frame_n_missing(const ch_frame *f, size_t j)
{
    return j < f->n_cols ? f->cols[j].n_missing : 0;
}

size_t ch_frame_n_levels(const ch_frame *f, size_t j)
{
    return j < f->n_cols ? f->cols[j].n_levels : 0;
}

const char *ch_frame_level(const ch_frame *f, size_t j, size_t k)
{
    return j < f->n_cols && k < f->cols[j].n_levels ? f->cols[j].levels[k] : NULL;
}

const char *ch_frame_str(const ch_frame *f, size_t j, size_t i, size_t *len)
{
    const column *c;
    const char *s;
    if (j >= f->n_cols || i >= f->n_rows || f->cols[j].type != CH_COL_STR)
        return NULL;
    c = &f->cols[j];
    if (c->offs[i] < 0)
        return NULL;
    s = c->pool + c->offs[i];
    if (len != NULL)
        *len = strlen(s);
    return s;
}
