/*
 * schema_int.h -- schema internals shared by schema.c and infer.c.
 */
#ifndef CH_SCHEMA_INT_H
#define CH_SCHEMA_INT_H

#include "ch/schema.h"

/* One column with the storage it owns; 'view' is what callers see. */
typedef struct ch__col {
    char *name;
    ch_kind kind;
    char *label;
    int pii;
    int nullable;
    char **categories;
    size_t n_categories;
    ch_unknown_policy on_unknown;
    int has_min, has_max;
    double min, max;
    char **missing;
    size_t n_missing;
    char **positive;
    size_t n_positive;
    char **negative;
    size_t n_negative;
    int actionable;
    char **alternatives;
    size_t n_alternatives;
    size_t *lens; /* one block: category, missing, positive, negative lengths */
    ch_schema_col view;
} ch__col;

struct ch_schema {
    char *name;
    ch__col *cols;
    size_t n_cols;
    long target; /* index or -1 */
    long id;     /* index or -1 */
    int ignore_extra;
    char hash[CH_SHA256_HEX_LEN + 1];
};

void ch__schema_col_clear(ch__col *c);
/* Publishes 'c' through its view; returns -1 when out of memory. */
int ch__schema_col_sync(ch__col *c);
/* Checks names, finds target and id, computes the hash. */
ch_err ch__schema_finish(ch_schema *s, ch_error *err);

#endif
