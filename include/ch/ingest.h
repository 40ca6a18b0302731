/*
 * ingest.h -- read a CSV file through a schema into a frame.
 *
 * Every row is accounted for: it is either accepted into the frame or
 * rejected with its line number, column and reason (and, when a rejects
 * path is given, written to a rejects CSV with its original text, so that
 * nothing is lost). Header problems -- missing, unexpected or duplicate
 * columns -- are one error that names them all. When the share of
 * rejected rows exceeds 'max_reject_rate' the run fails with CH_ELIMIT
 * after reading the whole file, so the report still describes it.
 *
 * The report also carries what `churn validate` prints: counts by reason,
 * per-column missing counts, category counts, numeric min/max/mean, the
 * file's SHA-256 and row counts.
 *
 * Expected workload: one pass, single thread, at hundreds of MB/s.
 */
#ifndef CH_INGEST_H
#define CH_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "ch/csv.h"
#include "ch/frame.h"
#include "ch/schema.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*ch_ingest_progress_fn)(void *ctx, uint64_t bytes_done, uint64_t rows_done);

typedef struct ch_ingest_opts {
    double max_reject_rate;         /* fail when rejected/rows is above this (default 0.05) */
    const char *rejects_path;       /* write rejected rows here as CSV, or NULL */
    int keep_frame;                 /* 0: only validate, build no frame (default 1) */
    int check_duplicate_ids;        /* 1: reject a row whose id was seen before (default 1) */
    int target_optional;            /* 1: the target column may be absent from the file or
                                       empty in a row (for scoring); default 0 */
    size_t max_examples;            /* example problems kept in the report (default 20) */
    ch_csv_opts csv;                /* reader options */
    ch_ingest_progress_fn progress; /* called about every 64 MiB, may be NULL */
    void *progress_ctx;
} ch_ingest_opts;

/* Per-column statistics over accepted rows. */
typedef struct ch_ingest_col {
    uint64_t n_missing;     /* missing cells */
    uint64_t n_unknown;     /* categorical values outside the schema, kept by policy */
    uint64_t n_values;      /* non-missing cells */
    double min, max, sum;   /* numeric kinds: over non-missing values */
    uint64_t *level_counts; /* categorical: count per entry of 'levels' */
    size_t n_levels;
    char **levels;       /* categorical: the schema's categories in order, then values
                            outside them (kept by policy) as first seen, at most 1000 */
    uint64_t n_unlisted; /* values outside the schema beyond those 1000: counted only */
} ch_ingest_col;

/* One example of a rejected row. */
typedef struct ch_ingest_example {
    uint64_t line; /* 1-based line in the file */
    long column;   /* schema column index, or -1 for whole-row problems */
    ch_reason reason;
    char value[64]; /* excerpt of the offending value (printable) */
} ch_ingest_example;

typedef struct ch_ingest_report {
    uint64_t rows_read; /* data records read (not counting the header) */
    uint64_t rows_accepted;
    uint64_t rows_rejected;
    uint64_t blank_lines;                 /* blank lines skipped */
    uint64_t bytes;                       /* file size in bytes */
    uint64_t by_reason[CH_REASON_COUNT_]; /* rejected rows by their first problem */
    char sha256[CH_SHA256_HEX_LEN + 1];   /* of the file's bytes */
    size_t n_cols;                        /* = schema columns */
    ch_ingest_col *cols;                  /* per schema column */
    ch_ingest_example *examples;          /* first problems, in file order */
    size_t n_examples;
    uint64_t n_positive; /* accepted rows whose target is 1 (0 without a target) */
    double seconds;      /* wall time of the run */
} ch_ingest_report;

/* Fills 'o' with the defaults above. Never fails. */
CH_API void ch_ingest_opts_default(ch_ingest_opts *o);

/* Reads 'path' through 'schema'. On success (and on CH_ELIMIT for too many
 * rejects) '*report' is set and must be freed with ch_ingest_report_free();
 * on success '*frame' (when opts->keep_frame and 'frame' is non-NULL) gets
 * the accepted rows, columns in schema order, and is freed with
 * ch_frame_free(). Errors: CH_EIO, CH_ESCHEMA (header problems), CH_EFORMAT
 * (file-level CSV damage, with line), CH_ELIMIT (reject rate, record size),
 * CH_EDATA (empty file), CH_EINVAL (max_reject_rate outside 0..1),
 * CH_ENOMEM. Thread-safe for distinct arguments. */
CH_API CH_NODISCARD ch_err ch_ingest_file(const ch_schema *schema, const char *path,
                                          const ch_ingest_opts *o, ch_frame **frame,
                                          ch_ingest_report **report, ch_error *err);

/* NULL is a no-op. */
CH_API void ch_ingest_report_free(ch_ingest_report *r);

/* Writes the report as a JSON object (see docs/validate.md). */
CH_API ch_err ch_ingest_report_json(const ch_ingest_report *r, const ch_schema *schema, ch_buf *b);

#ifdef __cplusplus
}
#endif
#endif /* CH_INGEST_H */
