/*
 * test_split.c -- stratified hold-out and k-fold splits and the seeded
 * generator, through include/ch/split.h only.
 *
 * Labels are generated with a fixed seed so every test is deterministic.
 * The uniformity check is a chi-square test with a threshold far in the
 * tail (p < 1e-6 for a fair generator), so it guards against a biased
 * draw, not against bad luck.
 */
#include <stdint.h>

#include "ch/alloc.h"
#include "ch/split.h"
#include "../harness.h"

/* 'n' labels with about 'share' ones, from 'seed' (caller frees). */
static double *make_labels(size_t n, double share, uint64_t seed, size_t *n_pos)
{
    double *y = ch_malloc_array(n + 1, sizeof *y);
    ch_rng r;
    ASSERT(y != NULL);
    ch_rng_seed(&r, seed);
    *n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        y[i] = (double)ch_rng_below(&r, 1000000) < share * 1e6 ? 1.0 : 0.0;
        *n_pos += y[i] == 1.0;
    }
    return y;
}

/* Checks one hold-out split of 'y' (n rows) with 'fraction'. */
static void check_holdout(const double *y, size_t n, double fraction, const size_t *train,
                          size_t n_train, const size_t *test, size_t n_test)
{
    unsigned char *seen = ch_calloc(n + 1, 1);
    size_t cnt[2] = {0, 0};
    size_t test_cnt[2] = {0, 0};

    ASSERT(seen != NULL);
    ASSERT_INT_EQ(n_train + n_test, n);
    for (size_t i = 0; i < n; i++)
        cnt[y[i] == 1.0]++;
    for (size_t i = 0; i < n_train; i++) {
        ASSERT(train[i] < n);
        if (i > 0 && !(train[i] > train[i - 1]))
            FAIL("train is not increasing at %zu: %zu after %zu", i, train[i], train[i - 1]);
        seen[train[i]]++;
    }
    for (size_t i = 0; i < n_test; i++) {
        ASSERT(test[i] < n);
        if (i > 0 && !(test[i] > test[i - 1]))
            FAIL("test is not increasing at %zu: %zu after %zu", i, test[i], test[i - 1]);
        if (seen[test[i]] != 0)
            FAIL("row %zu is in both train and test", test[i]);
        seen[test[i]]++;
        test_cnt[y[test[i]] == 1.0]++;
    }
    for (size_t i = 0; i < n; i++)
        if (seen[i] != 1)
            FAIL("row %zu is in neither side", i);
    /* Each class keeps its share on the test side, within one row. */
    for (int c = 0; c < 2; c++) {
        double exact = fraction * (double)cnt[c];
        if (fabs((double)test_cnt[c] - exact) > 1.0)
            FAIL("class %d: %zu of %zu rows in test, expected %.2f", c, test_cnt[c], cnt[c], exact);
        if (fabs((double)(cnt[c] - test_cnt[c]) - (1 - fraction) * (double)cnt[c]) > 1.0)
            FAIL("class %d: %zu of %zu rows in train", c, cnt[c] - test_cnt[c], cnt[c]);
    }
    ch_free(seen);
}

TEST(holdout_is_stratified_disjoint_covering_sorted)
{
    static const size_t sizes[] = {10, 37, 100, 1001, 7043};
    static const double fractions[] = {0.05, 0.1, 0.2, 0.25, 1.0 / 3.0, 0.5, 0.7};
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        size_t n_pos;
        double *y = make_labels(sizes[a], 0.27, 1000 + a, &n_pos);
        for (size_t b = 0; b < sizeof fractions / sizeof fractions[0]; b++) {
            size_t *train = NULL;
            size_t *test = NULL;
            size_t n_train = 0;
            size_t n_test = 0;
            ch_error err = {0};
            ch_err rc = ch_split_holdout(y, sizes[a], fractions[b], 42, &train, &n_train, &test,
                                         &n_test, &err);
            if (rc == CH_EDATA)
                continue; /* a class too small for this fraction: checked below */
            if (rc != CH_OK)
                FAIL("n %zu fraction %g: %s: %s", sizes[a], fractions[b], ch_strerror(rc), err.msg);
            check_holdout(y, sizes[a], fractions[b], train, n_train, test, n_test);
            ch_free(train);
            ch_free(test);
        }
        ch_free(y);
    }
}

TEST(holdout_is_deterministic_per_seed)
{
    size_t n_pos;
    double *y = make_labels(2000, 0.3, 7, &n_pos);
    size_t *tr[3];
    size_t *te[3];
    size_t ntr[3];
    size_t nte[3];
    static const uint64_t seeds[] = {42, 42, 43};

    for (int k = 0; k < 3; k++)
        ASSERT_OK(ch_split_holdout(y, 2000, 0.2, seeds[k], &tr[k], &ntr[k], &te[k], &nte[k], NULL));
    ASSERT_INT_EQ(ntr[0], ntr[1]);
    ASSERT_INT_EQ(nte[0], nte[1]);
    ASSERT(memcmp(tr[0], tr[1], ntr[0] * sizeof *tr[0]) == 0);
    ASSERT(memcmp(te[0], te[1], nte[0] * sizeof *te[0]) == 0);
    /* Another seed: same sizes (stratified), different rows. */
    ASSERT_INT_EQ(nte[2], nte[0]);
    ASSERT(memcmp(te[0], te[2], nte[0] * sizeof *te[0]) != 0);
    {
        size_t common = 0;
        for (size_t i = 0, j = 0; i < nte[0] && j < nte[2];) {
            if (te[0][i] == te[2][j]) {
                common++;
                i++;
                j++;
            } else if (te[0][i] < te[2][j]) {
                i++;
            } else {
                j++;
            }
        }
        /* Independent 20% samples share about 20% of their rows. */
        if (common > nte[0] / 2)
            FAIL("seeds 42 and 43 share %zu of %zu test rows", common, nte[0]);
    }
    for (int k = 0; k < 3; k++) {
        ch_free(tr[k]);
        ch_free(te[k]);
    }
    ch_free(y);
}

TEST(holdout_seeds_give_different_splits)
{
    size_t n_pos;
    double *y = make_labels(500, 0.25, 3, &n_pos);
    size_t *first = NULL;
    size_t n_first = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        size_t *tr;
        size_t *te;
        size_t ntr;
        size_t nte;
        ASSERT_OK(ch_split_holdout(y, 500, 0.2, seed, &tr, &ntr, &te, &nte, NULL));
        if (first == NULL) {
            first = te;
            n_first = nte;
        } else {
            ASSERT_INT_EQ(nte, n_first);
            if (memcmp(first, te, nte * sizeof *te) == 0)
                FAIL("seed %llu gives the same test rows as seed 0", (unsigned long long)seed);
            ch_free(te);
        }
        ch_free(tr);
    }
    ch_free(first);
    ch_free(y);
}

TEST(holdout_class_too_small)
{
    double y[100];
    size_t *tr = (size_t *)y; /* sentinels: must stay untouched */
    size_t *te = (size_t *)y;
    size_t ntr = 12345;
    size_t nte = 12345;
    ch_error err = {0};

    for (size_t i = 0; i < 100; i++)
        y[i] = 0;
    /* One positive: round(0.2 * 1) = 0 test rows. */
    y[50] = 1;
    ASSERT_ERR(ch_split_holdout(y, 100, 0.2, 1, &tr, &ntr, &te, &nte, &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "class 1");
    ASSERT(tr == (size_t *)y && te == (size_t *)y && ntr == 12345 && nte == 12345);
    /* One positive with a large fraction: all of the class goes to test. */
    ASSERT_ERR(ch_split_holdout(y, 100, 0.7, 1, &tr, &ntr, &te, &nte, &err), CH_EDATA);
    /* Two positives, half held out: one each side. */
    y[60] = 1;
    ASSERT_OK(ch_split_holdout(y, 100, 0.5, 1, &tr, &ntr, &te, &nte, &err));
    check_holdout(y, 100, 0.5, tr, ntr, te, nte);
    ch_free(tr);
    ch_free(te);
    /* The majority class can be the small one too. */
    for (size_t i = 0; i < 100; i++)
        y[i] = i == 3 ? 0 : 1;
    ASSERT_ERR(ch_split_holdout(y, 100, 0.2, 1, &tr, &ntr, &te, &nte, &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "class 0");
}

TEST(holdout_bad_arguments)
{
    double y[10] = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
    static const double bad_labels[] = {0.5, 2, -1, NAN, INFINITY};
    static const double bad_fractions[] = {0, 1, -0.1, 1.5, NAN};
    size_t *tr = NULL;
    size_t *te = NULL;
    size_t ntr = 0;
    size_t nte = 0;
    ch_error err = {0};

    for (size_t k = 0; k < sizeof bad_labels / sizeof bad_labels[0]; k++) {
        y[7] = bad_labels[k];
        ASSERT_ERR(ch_split_holdout(y, 10, 0.2, 1, &tr, &ntr, &te, &nte, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "row 7");
        ASSERT(tr == NULL && te == NULL);
    }
    y[7] = 1;
    for (size_t k = 0; k < sizeof bad_fractions / sizeof bad_fractions[0]; k++) {
        ASSERT_ERR(ch_split_holdout(y, 10, bad_fractions[k], 1, &tr, &ntr, &te, &nte, &err),
                   CH_EINVAL);
        ASSERT(tr == NULL && te == NULL);
    }
    /* No rows, or one class only: nothing a model could learn from. */
    ASSERT_ERR(ch_split_holdout(y, 0, 0.2, 1, &tr, &ntr, &te, &nte, &err), CH_EDATA);
    ASSERT(tr == NULL && te == NULL);
    for (size_t i = 0; i < 10; i++)
        y[i] = 0;
    ASSERT_ERR(ch_split_holdout(y, 10, 0.2, 1, &tr, &ntr, &te, &nte, &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "only one class");
    ASSERT(tr == NULL && te == NULL);
}

TEST(kfold_is_stratified_and_balanced)
{
    static const unsigned ks[] = {2, 3, 5, 10};
    size_t n_pos;
    size_t n = 1003;
    double *y = make_labels(n, 0.27, 11, &n_pos);
    size_t *rows = ch_malloc_array(n, sizeof *rows);
    unsigned *fold = ch_malloc_array(n, sizeof *fold);
    unsigned *fold2 = ch_malloc_array(n, sizeof *fold2);

    ASSERT(rows != NULL && fold != NULL && fold2 != NULL);
    for (size_t i = 0; i < n; i++)
        rows[i] = i;
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        unsigned k = ks[a];
        size_t per[10][2];
        size_t tot[10];
        memset(per, 0, sizeof per);
        memset(tot, 0, sizeof tot);
        ASSERT_OK(ch_split_kfold(y, rows, n, k, 5, fold, NULL));
        for (size_t i = 0; i < n; i++) {
            ASSERT(fold[i] < k);
            per[fold[i]][y[i] == 1.0]++;
            tot[fold[i]]++;
        }
        for (unsigned f = 0; f < k; f++) {
            for (int c = 0; c < 2; c++) {
                size_t cls = c ? n_pos : n - n_pos;
                size_t lo = cls / k;
                size_t hi = (cls + k - 1) / k;
                if (per[f][c] < lo || per[f][c] > hi)
                    FAIL("k %u fold %u class %d: %zu rows, expected %zu..%zu", k, f, c, per[f][c],
                         lo, hi);
            }
            /* Folds differ by at most one row per class. */
            if (tot[f] < n / k - 1 || tot[f] > (n + k - 1) / k + 1)
                FAIL("k %u fold %u: %zu rows of %zu", k, f, tot[f], n);
        }
        /* Deterministic per seed, different across seeds. */
        ASSERT_OK(ch_split_kfold(y, rows, n, k, 5, fold2, NULL));
        ASSERT(memcmp(fold, fold2, n * sizeof *fold) == 0);
        ASSERT_OK(ch_split_kfold(y, rows, n, k, 6, fold2, NULL));
        ASSERT(memcmp(fold, fold2, n * sizeof *fold) != 0);
    }
    ch_free(rows);
    ch_free(fold);
    ch_free(fold2);
    ch_free(y);
}

TEST(kfold_over_a_subset_of_rows)
{
    /* Labels are looked up through 'rows': positives are rows 1, 3, 5, ... */
    double y[40];
    size_t rows[20];
    unsigned fold[20];
    size_t per[4][2];

    for (size_t i = 0; i < 40; i++)
        y[i] = (double)(i % 2);
    for (size_t i = 0; i < 20; i++)
        rows[i] = 39 - 2 * i + (i < 8 ? 0 : 1); /* 8 positives, 12 negatives */
    memset(per, 0, sizeof per);
    ASSERT_OK(ch_split_kfold(y, rows, 20, 4, 1, fold, NULL));
    for (size_t i = 0; i < 20; i++) {
        ASSERT(fold[i] < 4);
        per[fold[i]][y[rows[i]] == 1.0]++;
    }
    for (unsigned f = 0; f < 4; f++) {
        ASSERT_INT_EQ(per[f][1], 2);
        ASSERT_INT_EQ(per[f][0], 3);
    }
}

TEST(kfold_errors)
{
    double y[10] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 0};
    size_t rows[10];
    unsigned fold[10];
    ch_error err = {0};
    for (size_t i = 0; i < 10; i++)
        rows[i] = i;
    ASSERT_ERR(ch_split_kfold(y, rows, 10, 1, 1, fold, &err), CH_EINVAL);
    ASSERT_ERR(ch_split_kfold(y, rows, 10, 0, 1, fold, &err), CH_EINVAL);
    /* Two positives cannot fill three folds. */
    ASSERT_ERR(ch_split_kfold(y, rows, 10, 3, 1, fold, &err), CH_EDATA);
    ASSERT_CONTAINS(err.msg, "class 1");
    ASSERT_OK(ch_split_kfold(y, rows, 10, 2, 1, fold, &err));
}

TEST(rng_is_deterministic_and_in_range)
{
    ch_rng a;
    ch_rng b;
    ch_rng c;
    static const uint64_t bounds[] = {1, 2, 3, 7, 1000, 1ull << 32, (1ull << 63) + 1, UINT64_MAX};
    ch_rng_seed(&a, 99);
    ch_rng_seed(&b, 99);
    ch_rng_seed(&c, 100);
    {
        int differ = 0;
        for (int i = 0; i < 1000; i++) {
            uint64_t x = ch_rng_next(&a);
            ASSERT(x == ch_rng_next(&b));
            differ |= x != ch_rng_next(&c);
        }
        ASSERT(differ);
    }
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++)
        for (int i = 0; i < 10000; i++) {
            uint64_t v = ch_rng_below(&a, bounds[k]);
            if (v >= bounds[k])
                FAIL("ch_rng_below(%llu) gave %llu", (unsigned long long)bounds[k],
                     (unsigned long long)v);
        }
    /* A bound just past 2^63 needs rejection: both halves still occur. */
    {
        size_t high = 0;
        for (int i = 0; i < 10000; i++)
            high += ch_rng_below(&a, (1ull << 63) + 1) >= (1ull << 62);
        ASSERT(high > 4500 && high < 5500);
    }
}

/* Chi-square statistic of 'n_draws' draws of ch_rng_below(n) in n bins. */
static double chi_square(uint64_t seed, uint64_t n, size_t n_draws)
{
    size_t *bins = ch_calloc(n, sizeof *bins);
    ch_rng r;
    double expect = (double)n_draws / (double)n;
    double chi = 0;
    ASSERT(bins != NULL);
    ch_rng_seed(&r, seed);
    for (size_t i = 0; i < n_draws; i++)
        bins[ch_rng_below(&r, n)]++;
    for (uint64_t k = 0; k < n; k++)
        chi += ((double)bins[k] - expect) * ((double)bins[k] - expect) / expect;
    ch_free(bins);
    return chi;
}

TEST(rng_below_is_uniform)
{
    /* Thresholds: the chi-square quantile at p = 1e-6 is about 46 for 9
     * degrees of freedom, 35 for 2, and for 99 about 185. */
    double chi10 = chi_square(1, 10, 200000);
    double chi3 = chi_square(2, 3, 200000);
    double chi100 = chi_square(3, 100, 400000);
    if (chi10 > 46 || chi3 > 35 || chi100 > 185)
        FAIL("chi-square too large: %g (10 bins), %g (3 bins), %g (100 bins)", chi10, chi3, chi100);
    /* And not suspiciously perfect (p > 1 - 1e-6 would be under ~0.4 for
     * 9 degrees of freedom). */
    ASSERT(chi10 > 0.4);
}

TEST(out_of_memory)
{
    size_t n_pos;
    double *y = make_labels(300, 0.3, 5, &n_pos);
    size_t rows[300];
    unsigned fold[300];
    for (size_t i = 0; i < 300; i++)
        rows[i] = i;
    for (long n = 1; n <= 4; n++) {
        size_t *tr = NULL;
        size_t *te = NULL;
        size_t ntr = 0;
        size_t nte = 0;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_split_holdout(y, 300, 0.2, 1, &tr, &ntr, &te, &nte, NULL);
        ch_alloc_fail_after(0);
        ASSERT_ERR(rc, CH_ENOMEM);
        ASSERT(tr == NULL && te == NULL);
    }
    for (long n = 1; n <= 2; n++) {
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_split_kfold(y, rows, 300, 5, 1, fold, NULL);
        ch_alloc_fail_after(0);
        ASSERT_ERR(rc, CH_ENOMEM);
    }
    ch_free(y);
}

TEST_MAIN(T(holdout_is_stratified_disjoint_covering_sorted), T(holdout_is_deterministic_per_seed),
          T(holdout_seeds_give_different_splits), T(holdout_class_too_small),
          T(holdout_bad_arguments), T(kfold_is_stratified_and_balanced),
          T(kfold_over_a_subset_of_rows), T(kfold_errors), T(rng_is_deterministic_and_in_range),
          T(rng_below_is_uniform), T(out_of_memory))
