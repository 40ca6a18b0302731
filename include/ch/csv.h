/*
 * csv.h -- a streaming RFC 4180 reader.
 *
 * Reads a file, a file descriptor or a memory block in large chunks and
 * returns one record at a time as (pointer, length) fields that stay valid
 * until the next call. Handles quoted fields, doubled quotes, commas and
 * line breaks inside quotes, CRLF, LF or lone CR line endings, a UTF-8 byte
 * order mark, and blank lines (skipped and counted, never returned).
 *
 * Problems are of two kinds:
 *   - A malformed record (a quote inside an unquoted field, text after a
 *     closing quote, a NUL byte) is still returned, with 'problem' set, so
 *     the caller can reject that one row and go on.
 *   - Damage that makes the rest of the file unreadable (a quoted field
 *     never closed before end of file, a record over 'max_record_bytes',
 *     more than 'max_fields' fields, a read error) ends the read with an
 *     error naming the line.
 * The reader can hash every byte it reads (SHA-256) in the same pass, so a
 * dataset's content hash costs no second read.
 *
 * Expected workload: hundreds of MB per run, single thread. Field values
 * without quotes point straight into the read buffer (no copy).
 */
#ifndef CH_CSV_H
#define CH_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"
#include "ch/hash.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_csv ch_csv; /* opaque reader */

typedef struct ch_csv_opts {
    size_t max_record_bytes; /* longest record accepted, bytes (default 16 MiB) */
    size_t max_fields;       /* most fields in one record (default 4096) */
    size_t chunk_bytes;      /* read size (default 1 MiB) */
    int hash;                /* 1: compute the SHA-256 of all bytes read (default 1) */
} ch_csv_opts;

typedef struct ch_csv_field {
    const char *p; /* field text, unescaped; not NUL-terminated */
    size_t len;    /* bytes */
    int quoted;    /* 1 if the field was written in quotes */
} ch_csv_field;

typedef struct ch_csv_record {
    const ch_csv_field *fields; /* 'n_fields' fields, borrowed until the next call */
    size_t n_fields;            /* at least 1 */
    uint64_t line;              /* 1-based physical line where the record starts */
    uint64_t n_lines;           /* physical lines it spans (more than 1 with quoted breaks) */
    const char *raw;            /* the record's bytes as in the file, without its line ending */
    size_t raw_len;             /* bytes of 'raw' */
    const char *problem;        /* NULL, or static text describing a malformation
                                   (the first one in the record) */
    size_t problem_field;       /* 0-based field index that 'problem' refers to */
} ch_csv_record;

/* Fills 'o' with the defaults above. Never fails. */
CH_API void ch_csv_opts_default(ch_csv_opts *o);

/* Opens a reader on the file at 'path' ("-" means standard input). 'o' may
 * be NULL for defaults. Errors: CH_EIO (with path and reason), CH_ENOMEM,
 * CH_EINVAL (bad options). Free with ch_csv_free(). */
CH_API CH_NODISCARD ch_err ch_csv_open_file(const char *path, const ch_csv_opts *o, ch_csv **out,
                                            ch_error *err);

/* Opens a reader on 'len' bytes at 'data', which must outlive the reader
 * (the reader does not copy it). It is read a chunk at a time, like a
 * file, so 'chunk_bytes' and the limits apply the same way. Errors:
 * CH_EINVAL (NULL 'data' with 'len' > 0, bad options), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_csv_open_mem(const char *data, size_t len, const ch_csv_opts *o,
                                           ch_csv **out, ch_error *err);

/* Reads the next record into 'rec'. Sets '*got' to 1 when a record was
 * read, 0 at end of input (then 'rec' is untouched). Errors: CH_EFORMAT
 * (unclosed quote, with the line it opened on), CH_ELIMIT (record too long,
 * too many fields, with line), CH_EIO, CH_ENOMEM. After an error the reader
 * must not be used again except to free it. Not thread-safe per reader. */
CH_API CH_NODISCARD ch_err ch_csv_next(ch_csv *c, ch_csv_record *rec, int *got, ch_error *err);

/* Blank lines skipped so far: zero-length lines ended by CR, LF or CRLF.
 * The empty text after the last line ending is not a line. */
CH_API uint64_t ch_csv_blank_lines(const ch_csv *c);

/* Bytes consumed so far (including a BOM and line endings). */
CH_API uint64_t ch_csv_bytes(const ch_csv *c);

/* Whether the input started with a UTF-8 byte order mark. */
CH_API int ch_csv_had_bom(const ch_csv *c);

/* After end of input (ch_csv_next() has set '*got' to 0): writes the
 * SHA-256 of all input bytes (hex) into 'hex'. Errors: CH_EINVAL if
 * hashing was off or input is not finished. */
CH_API CH_NODISCARD ch_err ch_csv_sha256(const ch_csv *c, char hex[CH_SHA256_HEX_LEN + 1],
                                         ch_error *err);

/* Closes the file (if any) and frees everything. NULL is a no-op. */
CH_API void ch_csv_free(ch_csv *c);

#ifdef __cplusplus
}
#endif
#endif /* CH_CSV_H */
