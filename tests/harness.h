/*
 * harness.h -- a tiny test harness.
 *
 * Each test file declares its tests with TEST() and lists them once in
 * TEST_MAIN(). Every test runs in a fresh child process (as libuv's runner
 * does), so a crash or a failed assertion ends only that test. ASSERT_*
 * macros print both values, and ch_err codes as text.
 *
 * A test may call SKIP("why") when something it needs is absent; the
 * reason is printed, never swallowed. The binary ends with the line
 * "<file>: N passed, N failed, N skipped" and exits non-zero on failure.
 * Run one test by naming it: build/tests/test_csv quoted_fields.
 */
#ifndef CH_TEST_HARNESS_H
#define CH_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/err.h"

typedef struct ch_test {
    const char *name;
    void (*fn)(void);
} ch_test;

int ch_test_main(const char *file, const ch_test *tests, size_t n, int argc, char **argv);
void ch_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
void ch_test_skip(const char *why) __attribute__((noreturn));

/* Path of a file under tests/ or the shared data folder (static buffer). */
const char *ch_test_path(const char *rel);
/* The shared Telco CSV, or NULL when absent (then call SKIP). */
const char *ch_test_telco_csv(void);
/* A fresh temporary directory for this test (removed by the runner). */
const char *ch_test_tmpdir(void);

/* The URL of the store 'name' for this test: a file of that name in the
 * test's temporary directory, or, when CH_TEST_STORE_URL holds a
 * PostgreSQL URL, a schema of this test's own in that database (the
 * store creates it when first opened read-write). The same name gives
 * the same store within one test, forked children included when the URL
 * was made before the fork. Static buffers, four in rotation. */
const char *ch_test_store(const char *name);
/* 1 when ch_test_store() gives PostgreSQL stores. */
int ch_test_store_pg(void);
/* Runs 'sql' on the PostgreSQL store 'url' with psql; returns 0 when it
 * succeeded, else non-zero with psql's message in 'msg' (may be NULL). */
int ch_test_pg_sql(const char *url, const char *sql, char *msg, size_t cap);

#define TEST(name) static void name(void)
#define T(name)                                                                                    \
    {                                                                                              \
#name, name                                                                                \
    }
#define TEST_MAIN(...)                                                                             \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const ch_test tests_[] = {__VA_ARGS__};                                             \
        return ch_test_main(__FILE__, tests_, sizeof tests_ / sizeof tests_[0], argc, argv);       \
    }

#define SKIP(why) ch_test_skip(why)
#define FAIL(...) ch_test_fail(__FILE__, __LINE__, __VA_ARGS__)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            FAIL("assertion failed: %s", #cond);                                                   \
    } while (0)

#define ASSERT_INT_EQ(a, b)                                                                        \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            FAIL("%s == %s: %lld != %lld", #a, #b, a_, b_);                                        \
    } while (0)

#define ASSERT_OK(expr)                                                                            \
    do {                                                                                           \
        ch_err rc_ = (expr);                                                                       \
        if (rc_ != CH_OK)                                                                          \
            FAIL("%s: %s (%d)", #expr, ch_strerror(rc_), (int)rc_);                                \
    } while (0)

#define ASSERT_ERR(expr, code)                                                                     \
    do {                                                                                           \
        ch_err rc_ = (expr);                                                                       \
        if (rc_ != (code))                                                                         \
            FAIL("%s: expected %s, got %s", #expr, ch_strerror(code), ch_strerror(rc_));           \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");    \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ == NULL || strstr(h_, n_) == NULL)                                                  \
            FAIL("%s does not contain \"%s\": \"%s\"", #hay, n_, h_ ? h_ : "(null)");              \
    } while (0)

/* |a - b| <= tol */
#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            FAIL("%s ~ %s: %.17g vs %.17g (tol %g)", #a, #b, a_, b_, (double)(tol));               \
    } while (0)

#endif /* CH_TEST_HARNESS_H */
