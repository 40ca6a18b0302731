/*
 * csv.c -- a streaming RFC 4180 reader: the first stage of ingestion.
 *
 * Bytes arrive in chunks of 'chunk_bytes' (read(2) on a file, memcpy from a
 * memory block) into one buffer. Invariants of that buffer:
 *   - buf[pos, end) holds bytes read but not yet returned, and buf[end] is
 *     always a NUL sentinel, so the scanning loops need no bounds check:
 *     they stop on NUL and then ask whether it was the sentinel or data.
 *   - A record is returned only when it is complete, which means its line
 *     ending is known (a CR at the end of the buffer may still be followed
 *     by LF) or input has ended. An incomplete record is scanned again from
 *     its start once more bytes are in: parsing is a pure function of the
 *     record's bytes and the end-of-input flag, so results never depend on
 *     where the chunk boundaries fall. To keep those re-scans linear, a
 *     refill reads at least as many bytes as are already pending.
 *   - Unquoted fields and quoted fields without doubled quotes point
 *     straight into the buffer. Fields that must be rewritten (doubled
 *     quotes, text after a closing quote) go to 'scratch', which is kept
 *     at least as large as the buffer so it never moves during a parse.
 *     The buffer itself is never modified, so 'raw' is the file's bytes.
 * The fast path (an unquoted field) copies nothing: on x86-64 an SSE2
 * classifier turns 64 bytes at a time into a bit mask of separators, so a
 * field costs a shift and a count of trailing zeros (about 1.4 GB/s on
 * Telco-like rows); elsewhere it is an unrolled 256-entry table lookup a
 * byte. Errors are deterministic in their code and line whatever the
 * chunking; when a record breaks two limits at once (too long and too many
 * fields), which of the two messages is given may depend on it.
 * Expected workload: files of hundreds of MB with ~140-byte rows, read
 * once per run, single thread.
 */
#include "ch/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "ch/alloc.h"

#define CSV_MAX_READ (1u << 30) /* largest single read(2), bytes */

static const char problem_quote[] = "quote character inside an unquoted field";
static const char problem_after[] = "text after the closing quote of a quoted field";
static const char problem_nul[] = "NUL byte in a field";

/* Bytes that end the scan inside a quoted field. NUL is both the buffer's
 * sentinel and a (malformed) data byte; its position tells them apart. */
static const unsigned char stop_quoted[256] = {
    [0] = 1,
    ['\n'] = 1,
    ['\r'] = 1,
    ['"'] = 1,
};

/*
 * Finding the end of an unquoted field is the hot loop. scan_plain()
 * returns the first byte at or after 'p' that is a comma, quote, CR, LF or
 * NUL. 's' carries state between calls within one parse.
 */
#if defined(__SSE2__) && !defined(CH_CSV_NO_SIMD)
#include <emmintrin.h>

#define CSV_PAD 64 /* bytes allocated (and zeroed) after the sentinel */

/* A 64-bit mask of the stop bytes in one 64-byte block. */
typedef struct scan_state {
    const unsigned char *base; /* first byte of the block */
    uint64_t bits;             /* bit i set: base[i] is a stop byte */
} scan_state;

static inline uint64_t stop_bits16(const unsigned char *p)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i m =
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(',')), _mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\r')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_setzero_si128()));
    return (uint64_t)(unsigned)_mm_movemask_epi8(m);
}

static inline void scan_block(scan_state *s, const unsigned char *p)
{
    s->base = p;
    s->bits = stop_bits16(p) | stop_bits16(p + 16) << 16 | stop_bits16(p + 32) << 32 |
              stop_bits16(p + 48) << 48;
}

static inline void scan_init(scan_state *s, const unsigned char *p)
{
    scan_block(s, p);
}

/*
 * SSE2 (part of the x86-64 baseline) classifies 64 bytes at once into a
 * bit mask; consecutive fields then cost a shift and a count of trailing
 * zeros each, instead of a chain of dependent loads. 's->base' never
 * passes 'p', and a block starts at most at the sentinel, so loads reach
 * at most 63 bytes past it, into CSV_PAD.
 */
static inline const unsigned char *scan_plain(scan_state *s, const unsigned char *p)
{
    for (;;) {
        size_t off = (size_t)(p - s->base);
        if (off < 64) {
            uint64_t bits = s->bits >> off;
            if (bits != 0)
                return p + __builtin_ctzll(bits);
            p = s->base + 64; /* everything up to here is plain */
        }
        scan_block(s, p);
    }
}
#else
#define CSV_PAD 16 /* bytes allocated (and zeroed) after the sentinel */

typedef struct scan_state {
    int unused;
} scan_state;

/* Bytes that end the fast scan of an unquoted field. */
static const unsigned char stop_plain[256] = {
    [0] = 1, ['\n'] = 1, ['\r'] = 1, ['"'] = 1, [','] = 1,
};

static inline void scan_init(scan_state *s, const unsigned char *p)
{
    (void)s;
    (void)p;
}

/*
 * Portable version: one table lookup a byte, unrolled. Bytes past the
 * sentinel are never read: each lookup happens only after the previous
 * byte was a plain one, and the sentinel is not.
 */
static inline const unsigned char *scan_plain(scan_state *s, const unsigned char *p)
{
    (void)s;
    for (;;) {
        if (stop_plain[p[0]])
            return p;
        if (stop_plain[p[1]])
            return p + 1;
        if (stop_plain[p[2]])
            return p + 2;
        if (stop_plain[p[3]])
            return p + 3;
        p += 4;
    }
}
#endif

struct ch_csv {
    ch_csv_opts o;                   /* validated options */
    int fd;                          /* file descriptor, or -1 for memory input */
    int own_fd;                      /* 1: close 'fd' on free (not for stdin) */
    const char *mem;                 /* memory input, borrowed */
    size_t mem_len;                  /* bytes at 'mem' */
    size_t mem_off;                  /* bytes of 'mem' already copied in */
    unsigned char *buf;              /* read buffer; 'cap' + 1 + CSV_PAD bytes */
    size_t cap;                      /* usable bytes of 'buf' (before the sentinel) */
    size_t pos;                      /* first byte not yet consumed */
    size_t end;                      /* bytes of valid data; buf[end] == 0 */
    uint64_t buf_off;                /* input offset of buf[0], bytes */
    char *scratch;                   /* unescaped field text of the current record */
    size_t scratch_cap;              /* bytes allocated for 'scratch' */
    size_t scratch_len;              /* bytes used by the current record */
    ch_csv_field *fields;            /* fields of the current record */
    size_t fields_cap;               /* entries allocated, at most o.max_fields */
    uint64_t line;                   /* physical line number at 'pos', 1-based */
    uint64_t n_blank;                /* blank lines skipped */
    int eof;                         /* 1: a read returned 0 */
    int done;                        /* 1: ch_csv_next() reported the end */
    int failed;                      /* 1: an error ended the read */
    int bom_checked;                 /* 1: the first bytes were checked for a BOM */
    int had_bom;                     /* 1: the input started with EF BB BF */
    ch_sha256 *sha;                  /* running hash, or NULL when hashing is off */
    char hex[CH_SHA256_HEX_LEN + 1]; /* final digest, set at end of input */
};

enum { PARSE_DONE, PARSE_MORE, PARSE_FAIL };

void ch_csv_opts_default(ch_csv_opts *o)
{
    o->max_record_bytes = (size_t)16 << 20;
    o->max_fields = 4096;
    o->chunk_bytes = (size_t)1 << 20;
    o->hash = 1;
}

/*
 * Allocates a reader with options 'o' (NULL for defaults) and no input
 * attached. Limits are bounded so that buffer sizes computed from them
 * (at most about 2 * max_record_bytes + 2 * chunk_bytes) cannot overflow.
 */
static ch_err csv_new(const ch_csv_opts *o, ch_csv **out, ch_error *err)
{
    const size_t limit = SIZE_MAX / 8;
    ch_csv *c;

    c = ch_calloc(1, sizeof *c);
    if (c == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory opening a CSV reader");
    if (o != NULL)
        c->o = *o;
    else
        ch_csv_opts_default(&c->o);
    c->fd = -1;
    c->line = 1;
    if (c->o.max_record_bytes == 0 || c->o.max_record_bytes > limit || c->o.max_fields == 0 ||
        c->o.max_fields > limit / sizeof(ch_csv_field) || c->o.chunk_bytes == 0 ||
        c->o.chunk_bytes > limit) {
        ch_free(c);
        return ch_error_set(err, CH_EINVAL,
                            "bad CSV options: max_record_bytes, max_fields and chunk_bytes "
                            "must be positive and not huge");
    }
    c->cap = 2 * c->o.chunk_bytes;
    c->buf = ch_malloc(c->cap + 1 + CSV_PAD);
    c->fields_cap = c->o.max_fields < 16 ? c->o.max_fields : 16;
    c->fields = ch_malloc_array(c->fields_cap, sizeof *c->fields);
    if (c->buf == NULL || c->fields == NULL) {
        ch_csv_free(c);
        return ch_error_set(err, CH_ENOMEM, "out of memory opening a CSV reader");
    }
    memset(c->buf, 0, 1 + CSV_PAD);
    if (c->o.hash) {
        ch_err rc = ch_sha256_new(&c->sha, err);
        if (rc != CH_OK) {
            ch_csv_free(c);
            return rc;
        }
    }
    *out = c;
    return CH_OK;
}

ch_err ch_csv_open_file(const char *path, const ch_csv_opts *o, ch_csv **out, ch_error *err)
{
    ch_csv *c = NULL;
    ch_err rc;
    int fd;

    if (path == NULL)
        return ch_error_set(err, CH_EINVAL, "no CSV path given");
    rc = csv_new(o, &c, err);
    if (rc != CH_OK)
        return rc;
    if (strcmp(path, "-") == 0) {
        c->fd = STDIN_FILENO;
        c->own_fd = 0;
    } else {
        do {
            fd = open(path, O_RDONLY | O_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            rc = ch_error_set(err, CH_EIO, "cannot open %s: %s", path, strerror(errno));
            ch_csv_free(c);
            return rc;
        }
        c->fd = fd;
        c->own_fd = 1;
    }
    *out = c;
    return CH_OK;
}

ch_err ch_csv_open_mem(const char *data, size_t len, const ch_csv_opts *o, ch_csv **out,
                       ch_error *err)
{
    ch_csv *c = NULL;
    ch_err rc;

    if (data == NULL && len > 0)
        return ch_error_set(err, CH_EINVAL, "CSV memory input is NULL");
    rc = csv_new(o, &c, err);
    if (rc != CH_OK)
        return rc;
    c->mem = data;
    c->mem_len = len;
    *out = c;
    return CH_OK;
}

/*
 * Reads the next chunk after the pending bytes buf[pos, end), moving them
 * to the front or growing the buffer when there is no room. Reads at least
 * 'chunk_bytes' and at least as many bytes as are pending, so that a long
 * record is re-scanned a logarithmic number of times. Fails with
 * CH_ELIMIT when the pending bytes, which all belong to one unfinished
 * record, already prove it longer than 'max_record_bytes' (one byte of
 * slack: the last may be a CR whose LF has not arrived). At end of input
 * sets 'eof' and finishes the hash.
 */
static ch_err fill(ch_csv *c, ch_error *err)
{
    size_t pending = c->end - c->pos;
    size_t want = c->o.chunk_bytes;
    size_t got;

    CH_ASSERT(!c->eof);
    if (pending > c->o.max_record_bytes + 1)
        return ch_error_set(err, CH_ELIMIT, "line %llu: record longer than %zu bytes",
                            (unsigned long long)c->line, c->o.max_record_bytes);
    if (want < pending)
        want = pending;
    if (want > CSV_MAX_READ)
        want = CSV_MAX_READ;
    if (c->cap - c->end < want) {
        if (c->pos > 0) {
            memmove(c->buf, c->buf + c->pos, pending);
            c->buf_off += c->pos;
            c->pos = 0;
            c->end = pending;
        }
        if (c->cap - c->end < want) {
            size_t cap = c->end + want;
            unsigned char *b = ch_realloc(c->buf, cap + 1 + CSV_PAD);
            if (b == NULL)
                return ch_error_set(err, CH_ENOMEM,
                                    "line %llu: out of memory for a %zu-byte record",
                                    (unsigned long long)c->line, cap);
            c->buf = b;
            c->cap = cap;
        }
    }
    if (c->fd >= 0) {
        ssize_t n;
        do {
            n = read(c->fd, c->buf + c->end, want);
        } while (n < 0 && errno == EINTR);
        if (n < 0)
            return ch_error_set(err, CH_EIO, "line %llu: read failed: %s",
                                (unsigned long long)c->line, strerror(errno));
        got = (size_t)n;
    } else {
        got = c->mem_len - c->mem_off;
        if (got > want)
            got = want;
        if (got > 0)
            memcpy(c->buf + c->end, c->mem + c->mem_off, got);
        c->mem_off += got;
    }
    if (got == 0) {
        c->eof = 1;
        if (c->sha != NULL)
            ch_sha256_final_hex(c->sha, c->hex);
    } else {
        if (c->sha != NULL)
            ch_sha256_update(c->sha, c->buf + c->end, got);
        c->end += got;
    }
    memset(c->buf + c->end, 0, 1 + CSV_PAD);
    return CH_OK;
}

/*
 * Makes 'scratch' at least as large as the buffer. A record's unescaped
 * text is never longer than its raw bytes, which all sit in the buffer, so
 * after this succeeds no further growth is needed until the buffer grows
 * (which only happens between parses): field pointers into 'scratch' taken
 * earlier in the same parse stay valid.
 */
static int scratch_ready(ch_csv *c)
{
    char *s;

    if (c->scratch_cap >= c->cap)
        return 0;
    CH_ASSERT(c->scratch_len == 0);
    s = ch_malloc(c->cap);
    if (s == NULL)
        return -1;
    ch_free(c->scratch);
    c->scratch = s;
    c->scratch_cap = c->cap;
    return 0;
}

static void scratch_put(ch_csv *c, const unsigned char *p, size_t len)
{
    CH_ASSERT(len <= c->scratch_cap - c->scratch_len);
    memcpy(c->scratch + c->scratch_len, p, len);
    c->scratch_len += len;
}

/*
 * Doubles the field array, up to 'max_fields'. Fails with CH_ELIMIT when
 * the record already has 'max_fields' fields and needs another.
 */
static ch_err grow_fields(ch_csv *c, ch_error *err)
{
    size_t cap = c->fields_cap * 2;
    ch_csv_field *f;

    if (c->fields_cap >= c->o.max_fields)
        return ch_error_set(err, CH_ELIMIT, "line %llu: record has more than %zu fields",
                            (unsigned long long)c->line, c->o.max_fields);
    if (cap > c->o.max_fields)
        cap = c->o.max_fields;
    f = ch_realloc(c->fields, cap * sizeof *f);
    if (f == NULL)
        return ch_error_set(err, CH_ENOMEM, "line %llu: out of memory for %zu fields",
                            (unsigned long long)c->line, cap);
    c->fields = f;
    c->fields_cap = cap;
    return CH_OK;
}

/*
 * Parses the record starting at buf[pos], which is not a line ending.
 * Returns PARSE_DONE with 'rec' filled and the record consumed,
 * PARSE_MORE when the record runs into the end of the buffer before input
 * has ended (nothing is consumed and 'rec' is untouched), or PARSE_FAIL
 * with '*rc' and 'err' set.
 *
 * Each field starts at 'p'. An unquoted field runs to the next comma, CR,
 * LF or end of input; quotes and NULs inside it are kept as text and
 * flagged. A quoted field runs to the next lone quote; "" inside it is one
 * quote, and line breaks inside it are counted in 'breaks'. Text between a
 * closing quote and the next separator is flagged and appended to the
 * field, as Python's csv module does.
 */
static int parse_record(ch_csv *c, ch_csv_record *rec, ch_err *rc, ch_error *err)
{
    const unsigned char *const start = c->buf + c->pos;
    const unsigned char *const end = c->buf + c->end;
    const unsigned char *p = start;
    ch_csv_field *fields = c->fields;
    size_t n = 0;
    uint64_t breaks = 0; /* line breaks inside quoted fields so far */
    const char *problem = NULL;
    size_t problem_field = 0;
    size_t raw_len;
    size_t term_len;
    scan_state scan;

    c->scratch_len = 0;
    scan_init(&scan, p);
    for (;;) {
        ch_csv_field *f;

        if (n == c->fields_cap) {
            *rc = grow_fields(c, err);
            if (*rc != CH_OK)
                return PARSE_FAIL;
            fields = c->fields;
        }
        f = &fields[n++];
        if (*p != '"') {
            const unsigned char *s = p;
            for (;;) {
                /* The hot loop. */
                p = scan_plain(&scan, p);
                if (*p == ',' || *p == '\n' || *p == '\r' || p == end)
                    break;
                if (problem == NULL) {
                    problem = *p == '"' ? problem_quote : problem_nul;
                    problem_field = n - 1;
                }
                p++;
            }
            f->p = (const char *)s;
            f->len = (size_t)(p - s);
            f->quoted = 0;
        } else {
            const unsigned char *q = p + 1;
            const unsigned char *s = q; /* start of text not yet copied */
            uint64_t open_line = c->line + breaks;
            size_t w0 = c->scratch_len;
            int copying = 0; /* 1: the field's text is being built in 'scratch' */

            for (;;) {
                while (!stop_quoted[*q])
                    q++;
                if (*q == '"') {
                    if (q + 1 == end && !c->eof)
                        return PARSE_MORE;
                    if (q[1] != '"')
                        break;
                    if (!copying) {
                        if (scratch_ready(c) != 0)
                            goto nomem;
                        copying = 1;
                    }
                    scratch_put(c, s, (size_t)(q + 1 - s));
                    q += 2;
                    s = q;
                } else if (*q == '\n') {
                    breaks++;
                    q++;
                } else if (*q == '\r') {
                    /* CRLF counts once, at its LF. If the LF is not in
                     * the buffer yet, the field is unfinished anyway. */
                    breaks += q[1] != '\n';
                    q++;
                } else if (q == end) {
                    if (!c->eof)
                        return PARSE_MORE;
                    *rc = ch_error_set(err, CH_EFORMAT,
                                       "line %llu: quoted field opened here is never closed",
                                       (unsigned long long)open_line);
                    return PARSE_FAIL;
                } else {
                    if (problem == NULL) {
                        problem = problem_nul;
                        problem_field = n - 1;
                    }
                    q++;
                }
            }
            /* 'q' is at the closing quote. */
            p = q + 1;
            if (*p != ',' && *p != '\n' && *p != '\r' && p != end) {
                const unsigned char *t = p;
                if (problem == NULL) {
                    problem = problem_after;
                    problem_field = n - 1;
                }
                while (*p != ',' && *p != '\n' && *p != '\r' && p != end)
                    p++;
                if (!copying) {
                    if (scratch_ready(c) != 0)
                        goto nomem;
                    copying = 1;
                }
                scratch_put(c, s, (size_t)(q - s));
                scratch_put(c, t, (size_t)(p - t));
            } else if (copying) {
                scratch_put(c, s, (size_t)(q - s));
            }
            if (copying) {
                f->p = c->scratch + w0;
                f->len = c->scratch_len - w0;
            } else {
                f->p = (const char *)s;
                f->len = (size_t)(q - s);
            }
            f->quoted = 1;
        }
        if (*p != ',')
            break;
        p++;
    }

    /* 'p' is at CR, LF or the end of the buffer. */
    if (p == end) {
        if (!c->eof)
            return PARSE_MORE;
        term_len = 0;
    } else if (*p == '\n') {
        term_len = 1;
    } else {
        if (p + 1 == end && !c->eof)
            return PARSE_MORE;
        term_len = p[1] == '\n' ? 2 : 1;
    }
    raw_len = (size_t)(p - start);
    if (raw_len > c->o.max_record_bytes) {
        *rc = ch_error_set(err, CH_ELIMIT, "line %llu: record longer than %zu bytes",
                           (unsigned long long)c->line, c->o.max_record_bytes);
        return PARSE_FAIL;
    }
    rec->fields = fields;
    rec->n_fields = n;
    rec->line = c->line;
    rec->n_lines = breaks + 1;
    rec->raw = (const char *)start;
    rec->raw_len = raw_len;
    rec->problem = problem;
    rec->problem_field = problem_field;
    c->line += breaks + 1;
    c->pos += raw_len + term_len;
    return PARSE_DONE;

nomem:
    *rc = ch_error_set(err, CH_ENOMEM, "line %llu: out of memory unescaping a field",
                       (unsigned long long)c->line);
    return PARSE_FAIL;
}

/*
 * The loop around parse_record(): checks for a BOM once, skips blank
 * lines (a CR, LF or CRLF at the start of a line), and refills the buffer
 * whenever the next step needs bytes that have not been read yet.
 */
ch_err ch_csv_next(ch_csv *c, ch_csv_record *rec, int *got, ch_error *err)
{
    ch_err rc = CH_OK;

    if (c->failed)
        return ch_error_set(err, CH_EINVAL, "CSV reader used again after an error");
    if (c->done) {
        *got = 0;
        return CH_OK;
    }
    for (;;) {
        const unsigned char *p = c->buf + c->pos;
        size_t avail = c->end - c->pos;

        if (!c->bom_checked && (avail >= 3 || c->eof)) {
            c->bom_checked = 1;
            if (avail >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
                c->had_bom = 1;
                c->pos += 3;
            }
            continue;
        }
        if (c->bom_checked && avail == 0 && c->eof) {
            c->done = 1;
            *got = 0;
            return CH_OK;
        }
        if (c->bom_checked && avail > 0) {
            if (*p == '\n') {
                c->pos++;
                c->n_blank++;
                c->line++;
                continue;
            }
            if (*p == '\r' && (avail >= 2 || c->eof)) {
                c->pos += avail >= 2 && p[1] == '\n' ? 2 : 1;
                c->n_blank++;
                c->line++;
                continue;
            }
            if (*p != '\r') {
                int r = parse_record(c, rec, &rc, err);
                if (r == PARSE_DONE) {
                    *got = 1;
                    return CH_OK;
                }
                if (r == PARSE_FAIL) {
                    c->failed = 1;
                    return rc;
                }
            }
        }
        rc = fill(c, err);
        if (rc != CH_OK) {
            c->failed = 1;
            return rc;
        }
    }
}

uint64_t ch_csv_blank_lines(const ch_csv *c)
{
    return c->n_blank;
}

uint64_t ch_csv_bytes(const ch_csv *c)
{
    return c->buf_off + c->pos;
}

int ch_csv_had_bom(const ch_csv *c)
{
    return c->had_bom;
}

ch_err ch_csv_sha256(const ch_csv *c, char hex[CH_SHA256_HEX_LEN + 1], ch_error *err)
{
    if (c->sha == NULL)
        return ch_error_set(err, CH_EINVAL, "CSV hashing was not turned on");
    if (!c->done)
        return ch_error_set(err, CH_EINVAL, "CSV input is not finished; no hash yet");
    memcpy(hex, c->hex, sizeof c->hex);
    return CH_OK;
}

void ch_csv_free(ch_csv *c)
{
    if (c == NULL)
        return;
    if (c->own_fd && c->fd >= 0)
        close(c->fd);
    ch_sha256_free(c->sha);
    ch_free(c->fields);
    ch_free(c->scratch);
    ch_free(c->buf);
    ch_free(c);
}
