/*
 * split.c -- stratified hold-out and k-fold assignment.
 *
 * Shuffles use Fisher-Yates with an unbiased bounded draw (Lemire's
 * multiply-and-reject), so results depend only on the seed, not on the
 * platform's rand().
 */
#include "ch/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"

void ch_rng_seed(ch_rng *r, uint64_t seed)
{
    r->s = seed ^ 0x9E3779B97F4A7C15ull;
}

uint64_t ch_rng_next(ch_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t ch_rng_below(ch_rng *r, uint64_t n)
{
    unsigned __int128 m;
    uint64_t lo;
    if (n == 0)
        return 0;
    m = (unsigned __int128)ch_rng_next(r) * n;
    lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = (0 - n) % n;
        while (lo < t) {
            m = (unsigned __int128)ch_rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

static void shuffle(size_t *v, size_t n, ch_rng *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ch_rng_below(r, i);
        size_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a;
    size_t y = *(const size_t *)b;
    return (x > y) - (x < y);
}

ch_err ch_split_holdout(const double *labels, size_t n, double fraction, uint64_t seed,
                        size_t **train, size_t *n_train, size_t **test, size_t *n_test,
                        ch_error *err)
{
    size_t *cls[2] = {NULL, NULL};
    size_t cnt[2] = {0, 0};
    size_t *tr = NULL;
    size_t *te = NULL;
    size_t ntr = 0;
    size_t nte = 0;
    ch_rng rng;
    ch_err rc = CH_OK;

    if (!(fraction > 0 && fraction < 1))
        return ch_error_set(err, CH_EINVAL, "test fraction %g is not between 0 and 1", fraction);
    for (size_t i = 0; i < n; i++) {
        if (labels[i] != 0.0 && labels[i] != 1.0)
            return ch_error_set(err, CH_EINVAL, "row %zu: label is not 0 or 1", i);
        cnt[labels[i] == 1.0]++;
    }
    if (cnt[0] == 0 || cnt[1] == 0)
        return ch_error_set(err, CH_EDATA, "only one class is present (%zu rows of class %d)", n,
                            cnt[0] == 0 ? 1 : 0);
    cls[0] = ch_malloc_array(cnt[0] + 1, sizeof(size_t));
    cls[1] = ch_malloc_array(cnt[1] + 1, sizeof(size_t));
    tr = ch_malloc_array(n + 1, sizeof(size_t));
    te = ch_malloc_array(n + 1, sizeof(size_t));
    if (cls[0] == NULL || cls[1] == NULL || tr == NULL || te == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    cnt[0] = cnt[1] = 0;
    for (size_t i = 0; i < n; i++) {
        int c = labels[i] == 1.0;
        cls[c][cnt[c]++] = i;
    }
    ch_rng_seed(&rng, seed);
    for (int c = 0; c < 2; c++) {
        size_t k = (size_t)llround(fraction * (double)cnt[c]);
        if (cnt[c] > 0 && (k == 0 || k == cnt[c])) {
            rc = ch_error_set(err, CH_EDATA,
                              "class %d has %zu rows: too few to appear in both train and test", c,
                              cnt[c]);
            goto done;
        }
        shuffle(cls[c], cnt[c], &rng);
        for (size_t i = 0; i < cnt[c]; i++) {
            if (i < k)
                te[nte++] = cls[c][i];
            else
                tr[ntr++] = cls[c][i];
        }
    }
    qsort(tr, ntr, sizeof *tr, cmp_size);
    qsort(te, nte, sizeof *te, cmp_size);
done:
    ch_free(cls[0]);
    ch_free(cls[1]);
    if (rc != CH_OK) {
        ch_free(tr);
        ch_free(te);
        return rc;
    }
    *train = tr;
    *n_train = ntr;
    *test = te;
    *n_test = nte;
    return CH_OK;
}

ch_err ch_split_kfold(const double *labels, const size_t *rows, size_t n, unsigned k, uint64_t seed,
                      unsigned *fold, ch_error *err)
{
    size_t *idx[2] = {NULL, NULL};
    size_t cnt[2] = {0, 0};
    ch_rng rng;
    if (k < 2)
        return ch_error_set(err, CH_EINVAL, "k-fold needs k >= 2, got %u", k);
    for (size_t i = 0; i < n; i++)
        cnt[labels[rows[i]] == 1.0]++;
    for (int c = 0; c < 2; c++)
        if (cnt[c] > 0 && cnt[c] < k)
            return ch_error_set(err, CH_EDATA, "class %d has %zu rows, fewer than %u folds", c,
                                cnt[c], k);
    idx[0] = ch_malloc_array(cnt[0] + 1, sizeof(size_t));
    idx[1] = ch_malloc_array(cnt[1] + 1, sizeof(size_t));
    if (idx[0] == NULL || idx[1] == NULL) {
        ch_free(idx[0]);
        ch_free(idx[1]);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    cnt[0] = cnt[1] = 0;
    for (size_t i = 0; i < n; i++) {
        int c = labels[rows[i]] == 1.0;
        idx[c][cnt[c]++] = i;
    }
    ch_rng_seed(&rng, seed);
    for (int c = 0; c < 2; c++) {
        shuffle(idx[c], cnt[c], &rng);
        for (size_t i = 0; i < cnt[c]; i++)
            fold[idx[c][i]] = (unsigned)(i % k);
    }
    ch_free(idx[0]);
    ch_free(idx[1]);
    return CH_OK;
}
