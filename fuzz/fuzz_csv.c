/*
 * fuzz_csv.c -- libFuzzer target for the streaming CSV reader.
 *
 * Reads the input to the end through ch_csv_open_mem() twice: once with a
 * 7-byte chunk and small limits, so that records cross chunk boundaries,
 * hit the limits and force re-scans, and once with the whole input in one
 * chunk. Both runs must report the same records, the same outcome and the
 * same line numbers (chunking must never change a result). Every record
 * must satisfy the documented invariants: at least one field, fields and
 * 'raw' inside readable memory (checked by reading every byte under ASan),
 * 'problem_field' < 'n_fields', lines increasing. Built by scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ch/csv.h"

#define MAX_RECORDS 4096 /* records compared between the two runs */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one read of the input reported, reduced to comparable numbers. */
typedef struct summary {
    size_t n_records;
    ch_err rc;                    /* CH_OK, or the error that ended the read */
    uint64_t blank;               /* blank lines, when the read ended well */
    uint64_t bytes;               /* bytes consumed, when the read ended well */
    uint64_t line[MAX_RECORDS];   /* each record's first line */
    uint64_t digest[MAX_RECORDS]; /* each record's fields and flags, hashed */
} summary;

static uint64_t mix(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void check(int cond)
{
    if (!cond)
        abort();
}

static void read_all(const uint8_t *data, size_t size, size_t chunk, summary *s)
{
    ch_csv_opts o;
    ch_csv *c = NULL;
    ch_error err;
    uint64_t last_line = 0;

    memset(s, 0, sizeof *s);
    ch_csv_opts_default(&o);
    o.chunk_bytes = chunk;
    o.max_record_bytes = 256;
    o.max_fields = 16;
    s->rc = ch_csv_open_mem((const char *)data, size, &o, &c, &err);
    check(s->rc == CH_OK);
    for (;;) {
        ch_csv_record r;
        int got = 0;
        uint64_t h = 0xcbf29ce484222325ull;

        s->rc = ch_csv_next(c, &r, &got, &err);
        if (s->rc != CH_OK) {
            check(err.code == s->rc);
            check(memchr(err.msg, '\0', sizeof err.msg) != NULL);
            /* Used again after an error: refused, never a crash. */
            check(ch_csv_next(c, &r, &got, &err) == CH_EINVAL);
            break;
        }
        if (!got) {
            char hex[CH_SHA256_HEX_LEN + 1];
            s->blank = ch_csv_blank_lines(c);
            s->bytes = ch_csv_bytes(c);
            check(s->bytes == size);
            check(ch_csv_sha256(c, hex, &err) == CH_OK);
            check(strlen(hex) == CH_SHA256_HEX_LEN);
            break;
        }
        check(r.n_fields >= 1 && r.n_fields <= o.max_fields);
        check(r.problem == NULL || r.problem_field < r.n_fields);
        check(r.line > last_line && r.n_lines >= 1);
        check(r.raw_len >= 1 && r.raw_len <= o.max_record_bytes && r.raw_len <= size);
        last_line = r.line + r.n_lines - 1;
        /* Touch every byte so ASan sees any pointer outside live memory. */
        h = mix(h, r.raw, r.raw_len);
        for (size_t i = 0; i < r.n_fields; i++) {
            check(r.fields[i].len <= r.raw_len);
            check(r.fields[i].quoted == 0 || r.fields[i].quoted == 1);
            h = mix(h, r.fields[i].p, r.fields[i].len);
            h = mix(h, &r.fields[i].len, sizeof r.fields[i].len);
            h = mix(h, &r.fields[i].quoted, sizeof r.fields[i].quoted);
        }
        h = mix(h, &r.n_lines, sizeof r.n_lines);
        if (r.problem != NULL) {
            h = mix(h, r.problem, strlen(r.problem));
            h = mix(h, &r.problem_field, sizeof r.problem_field);
        }
        if (s->n_records < MAX_RECORDS) {
            s->line[s->n_records] = r.line;
            s->digest[s->n_records] = h;
        }
        s->n_records++;
    }
    ch_csv_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static summary small;
    static summary whole;
    size_t n;

    read_all(data, size, 7, &small);
    read_all(data, size, size > 0 ? size : 1, &whole);
    check(small.rc == whole.rc);
    check(small.n_records == whole.n_records);
    check(small.blank == whole.blank && small.bytes == whole.bytes);
    n = small.n_records < MAX_RECORDS ? small.n_records : MAX_RECORDS;
    for (size_t i = 0; i < n; i++) {
        check(small.line[i] == whole.line[i]);
        check(small.digest[i] == whole.digest[i]);
    }
    return 0;
}
