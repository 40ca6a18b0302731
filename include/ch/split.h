/*
 * split.h -- seeded, stratified splits of row indices.
 *
 * Hold-out: each class is shuffled on its own and the first
 * round(fraction * class size) rows go to the test side, so both sides
 * keep the class balance. k-fold: each class is shuffled and dealt out
 * round-robin over the folds. The same seed always gives the same split.
 */
#ifndef CH_SPLIT_H
#define CH_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Splits rows 0..n-1 by 'labels' (0/1 per row) into train and test.
 * '*train' and '*test' are new arrays (free with ch_free), in increasing
 * row order; '*n_train' + '*n_test' == n. Errors: CH_EINVAL ('fraction'
 * not in (0,1), a label not 0/1), CH_EDATA (one class absent, or too
 * small to appear on both sides), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_split_holdout(const double *labels, size_t n, double fraction,
                                            uint64_t seed, size_t **train, size_t *n_train,
                                            size_t **test, size_t *n_test, ch_error *err);

/* Assigns each of rows[0..n) (labels looked up as labels[rows[i]]) a fold
 * in 0..k-1, stratified, into 'fold' (n entries, caller-owned). Errors:
 * CH_EINVAL (k < 2), CH_EDATA (a class with fewer than k rows). */
CH_API CH_NODISCARD ch_err ch_split_kfold(const double *labels, const size_t *rows, size_t n,
                                          unsigned k, uint64_t seed, unsigned *fold, ch_error *err);

/* A small deterministic generator (splitmix64) for everything seeded. */
typedef struct ch_rng {
    uint64_t s;
} ch_rng;
CH_API void ch_rng_seed(ch_rng *r, uint64_t seed);
CH_API uint64_t ch_rng_next(ch_rng *r);
/* Uniform in [0, n). */
CH_API uint64_t ch_rng_below(ch_rng *r, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif /* CH_SPLIT_H */
