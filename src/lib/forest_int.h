/*
 * forest_int.h -- internals of forest.c shared with its tests and
 * benchmark: the classic TreeSHAP reference, kernel selection, and layout
 * statistics. Nothing on the request path uses these.
 */
#ifndef CH_FOREST_INT_H
#define CH_FOREST_INT_H

#include <stddef.h>

#include "ch/forest.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Classic path-dependent TreeSHAP (Lundberg et al., Algorithm 2; the
 * recursion XGBoost runs for pred_contribs), in double precision, over
 * every tree of 'f': the slow, obviously-correct reference for the fast
 * kernel. 'phi' gets n_features + 1 values as from ch_forest_shap(), and
 * '*margin' the row's margin. Allocates its own scratch. Errors:
 * CH_ENOMEM. Thread-safe.
 */
CH_NODISCARD ch_err ch__forest_shap_classic(const ch_forest *f, const double *x, double *phi,
                                            double *margin, ch_error *err);

/* The SHAP kernels 'f' uses: "avx512", "avx2" or "generic". */
const char *ch__forest_kernel(const ch_forest *f);

/* Switches 'f' to the kernels 'name' ("avx512", "avx2" or "generic"), for
 * tests that compare them; this also resets the batch size to the
 * kernels' default. Returns -1 (and changes nothing) when the name is
 * unknown or the CPU lacks the instructions. Not thread-safe: call before
 * sharing 'f'. */
int ch__forest_set_kernel(ch_forest *f, const char *name);

/* Sets how many rows ch_forest_shap_batch() gives the kernel at once: 1,
 * 2, 4 or 8 (each row's results are the same whatever the size). Returns -1
 * for another value. Not thread-safe: call before sharing 'f'. */
int ch__forest_set_batch_rows(ch_forest *f, size_t rows);

/* Layout statistics, for the benchmark's report. */
typedef struct ch__forest_stats {
    size_t n_nodes;         /* reachable nodes, all trees */
    size_t n_internal;      /* split nodes */
    size_t n_repeat;        /* split nodes whose feature already splits above them */
    size_t n_classic_trees; /* trees the fast kernel hands to classic TreeSHAP */
    size_t max_depth;       /* deepest leaf, edges from the root */
    size_t quad_points;     /* most Gauss-Legendre points a tree uses */
    size_t model_bytes;     /* bytes of the node arrays */
} ch__forest_stats;

void ch__forest_get_stats(const ch_forest *f, ch__forest_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* CH_FOREST_INT_H */
