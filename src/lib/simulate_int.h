/*
 * simulate_int.h -- internals shared by simulate.c (the Telco layout and
 * the public API) and simulate_layouts.c (the other layouts): the random
 * generator, number writing, and the per-layout row interface.
 */
#ifndef CH_SIMULATE_INT_H
#define CH_SIMULATE_INT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "ch/simulate.h"

/* splitmix64, seeded per customer. */
typedef struct ch__sim_rng {
    uint64_t s;
} ch__sim_rng;

static inline uint64_t ch__sim_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t ch__sim_next(ch__sim_rng *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    return ch__sim_mix64(r->s);
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double ch__sim_unit(ch__sim_rng *r)
{
    return (double)(ch__sim_next(r) >> 11) * 0x1.0p-53;
}

/* Two independent N(0, 1) draws (Box-Muller). */
static inline void ch__sim_gauss2(ch__sim_rng *r, double *a, double *b)
{
    double u1 = 1.0 - ch__sim_unit(r); /* (0, 1]: log() stays finite */
    double u2 = ch__sim_unit(r);
    double rad = sqrt(-2.0 * log(u1));
    *a = rad * cos(6.283185307179586 * u2);
    *b = rad * sin(6.283185307179586 * u2);
}

static inline double ch__sim_sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* Writes 'v' in decimal; returns the end. */
static inline char *ch__sim_put_uint(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

/* Writes 'cents' (>= 0) with exactly two decimals; returns the end. */
static inline char *ch__sim_put_cents(char *p, int64_t cents)
{
    uint64_t v = cents < 0 ? 0 : (uint64_t)cents;
    p = ch__sim_put_uint(p, v / 100);
    *p++ = '.';
    *p++ = (char)('0' + v / 10 % 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

#define CH__SIM_ROW_MAX 512 /* bytes a row may take, in every layout */

/* One layout other than Telco's: its header line (without line end), the
 * number of distinct customers it can write, and a function that draws
 * customer number 'c' from 'seed_mix' (the hashed seed), writes its CSV
 * line (without line end) into 'out' (CH__SIM_ROW_MAX bytes) and returns
 * the length, with its noise-free churn log-odds in '*score' and label
 * in '*label'. */
typedef struct ch__sim_layout {
    const char *header;
    uint64_t id_space;
    size_t (*row)(uint64_t seed_mix, uint64_t c, char *out, double *score, int *label);
} ch__sim_layout;

extern const ch__sim_layout ch__sim_bank;
extern const ch__sim_layout ch__sim_plans;

#endif
