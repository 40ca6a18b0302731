/*
 * alloc.c -- allocation with a fault-injection hook.
 *
 * The hook is a countdown shared by the process; tests set it, run a
 * scenario, and expect CH_ENOMEM with no leak. In normal runs the check is
 * one relaxed atomic load per allocation.
 */
#include "ch/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_at;  /* 0: never fail; else fail from this count on */
static atomic_long n_allocs; /* allocations since the hook was last set */

static int should_fail(void)
{
    long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    long n = atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed) + 1;
    return at > 0 && n >= at;
}

void *ch_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n == 0 ? 1 : n);
}

void *ch_calloc(size_t n, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
}

void *ch_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n == 0 ? 1 : n);
}

void ch_free(void *p)
{
    free(p);
}

void *ch_malloc_array(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    return ch_malloc(n * size);
}

char *ch_strndup(const char *s, size_t len)
{
    char *p = ch_malloc(len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *ch_strdup(const char *s)
{
    return ch_strndup(s, strlen(s));
}

void ch_alloc_fail_after(long n)
{
    atomic_store(&n_allocs, 0);
    atomic_store(&fail_at, n);
}

long ch_alloc_count(void)
{
    return atomic_load(&n_allocs);
}
