/*
 * alloc.h -- the one place memory comes from.
 *
 * All library allocation goes through these calls so that tests can fail
 * the Nth allocation of a scenario and check that every failure returns
 * CH_ENOMEM and leaks nothing (SQLite's faultsim, curl's torture tests).
 */
#ifndef CH_ALLOC_H
#define CH_ALLOC_H

#include <stddef.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* malloc/calloc/realloc/free with the test hook. ch_free(NULL) is a no-op.
 * Thread-safe. */
CH_API void *ch_malloc(size_t n);
CH_API void *ch_calloc(size_t n, size_t size);
CH_API void *ch_realloc(void *p, size_t n);
CH_API void ch_free(void *p);

/* Allocates 'n' elements of 'size' bytes, failing (NULL) on overflow. */
CH_API void *ch_malloc_array(size_t n, size_t size);

/* Copies of a string; the caller frees with ch_free(). NULL on failure. */
CH_API char *ch_strdup(const char *s);
CH_API char *ch_strndup(const char *s, size_t len);

/* Test hook: make allocation number 'n' (1-based, counted from this call)
 * and every one after it fail; 0 turns failure off. Not thread-safe. */
CH_API void ch_alloc_fail_after(long n);

/* Number of allocations made since the last ch_alloc_fail_after() call. */
CH_API long ch_alloc_count(void);

#ifdef __cplusplus
}
#endif
#endif /* CH_ALLOC_H */
