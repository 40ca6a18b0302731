/*
 * frame.h -- a columnar table of typed columns with missing-value masks.
 *
 * Three column types:
 *   CH_COL_NUM  doubles (numeric, integer, binary and target columns);
 *               missing cells hold NaN and are marked in the mask;
 *   CH_COL_CAT  int32 codes into the column's level dictionary; the
 *               dictionary starts with the schema's categories (in their
 *               declared order) and grows when unknown values are kept;
 *               missing cells hold -1;
 *   CH_COL_STR  text (identifiers), stored in one pool per column.
 * Rows are appended whole (ch_frame_append_row) so a frame never holds a
 * half-written row. Once built, a frame is read-only and may be read by
 * many threads.
 *
 * Expected workload: built once per dataset (up to tens of millions of
 * rows), then scanned column by column by the feature pipeline.
 */
#ifndef CH_FRAME_H
#define CH_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_frame ch_frame; /* opaque */

typedef enum ch_col_type {
    CH_COL_NUM = 0, /* double values */
    CH_COL_CAT = 1, /* int32 codes + level dictionary */
    CH_COL_STR = 2  /* text */
} ch_col_type;

/* One cell of a row being appended. */
typedef struct ch_cell {
    double num;      /* CH_COL_NUM value */
    int32_t code;    /* CH_COL_CAT code (a level index), or -1 with 'str' set for a new level */
    const char *str; /* CH_COL_STR text, or a CH_COL_CAT level not yet in the dictionary */
    size_t len;      /* bytes of 'str' */
    int missing;     /* 1: the cell is missing */
} ch_cell;

/* Makes an empty frame. Errors: CH_ENOMEM. Free with ch_frame_free(). */
CH_API CH_NODISCARD ch_err ch_frame_new(ch_frame **out, ch_error *err);

/* NULL is a no-op. */
CH_API void ch_frame_free(ch_frame *f);

/* Adds a column (before any row is appended). For CH_COL_CAT, 'levels'
 * ('n_levels' strings, copied) seed the dictionary in order. Errors:
 * CH_EINVAL (rows already appended), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_frame_add_column(ch_frame *f, const char *name, ch_col_type type,
                                               const char *const *levels, size_t n_levels,
                                               ch_error *err);

/* Appends one row: 'cells' has one entry per column. A CH_COL_CAT cell
 * with code -1 and 'str' set adds (or finds) that level by text. Either
 * the whole row is appended or nothing is. Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_frame_append_row(ch_frame *f, const ch_cell *cells, ch_error *err);

CH_API size_t ch_frame_n_rows(const ch_frame *f);
CH_API size_t ch_frame_n_cols(const ch_frame *f);
CH_API const char *ch_frame_col_name(const ch_frame *f, size_t j);
CH_API ch_col_type ch_frame_col_type(const ch_frame *f, size_t j);

/* Index of the column called 'name', or -1. */
CH_API long ch_frame_find(const ch_frame *f, const char *name);

/* Column data, borrowed until the next append or free:
 *   ch_frame_num   n_rows doubles (CH_COL_NUM), NaN where missing;
 *   ch_frame_codes n_rows int32 codes (CH_COL_CAT), -1 where missing;
 *   ch_frame_missing n_rows bytes (1 = missing), or NULL when no cell of
 *     the column is missing.
 * Each returns NULL for a column of another type. */
CH_API const double *ch_frame_num(const ch_frame *f, size_t j);
CH_API const int32_t *ch_frame_codes(const ch_frame *f, size_t j);
CH_API const uint8_t *ch_frame_missing(const ch_frame *f, size_t j);

/* Number of missing cells in column 'j'. */
CH_API size_t ch_frame_n_missing(const ch_frame *f, size_t j);

/* Level dictionary of a CH_COL_CAT column. */
CH_API size_t ch_frame_n_levels(const ch_frame *f, size_t j);
CH_API const char *ch_frame_level(const ch_frame *f, size_t j, size_t k);

/* Text of cell 'i' of a CH_COL_STR column (NUL-terminated, borrowed), or
 * NULL if missing. '*len' (may be NULL) gets the length. */
CH_API const char *ch_frame_str(const ch_frame *f, size_t j, size_t i, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* CH_FRAME_H */
