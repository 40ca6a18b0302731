/*
 * simulate_layouts.c -- synthetic customers in two layouts other than
 * Telco's, so that every path from an unknown CSV to a served model can be
 * exercised on data the project makes itself (docs/simulate.md):
 *
 *   bank   a retail-bank churn file: a row counter, a numeric customer id,
 *          a repeated high-cardinality surname (personal data), balances and
 *          products, target "Exited" as 0/1;
 *   plans  a telecom usage file with no id column: a two-letter state as
 *          the first column (51 values, repeated), an area code with three
 *          values, yes/no plans, minutes, calls and charges, target
 *          "Churn" as True/False.
 *
 * As in the Telco layout, customer number c alone fixes a row (the
 * generator is seeded from the hashed seed and c), the churn label is
 * drawn from a logistic model of the row's own values plus noise, and the
 * noise-free log-odds are what ch_sim_oracle_auc() ranks. Numbers are
 * written from integers by hand, independently of the locale.
 */
#include <string.h>

#include "simulate_int.h"

/* ---- helpers ------------------------------------------------------------- */

static int bern(ch__sim_rng *r, double p)
{
    return ch__sim_unit(r) < p;
}

static double gauss(ch__sim_rng *r)
{
    double a;
    double b;
    ch__sim_gauss2(r, &a, &b);
    (void)b;
    return a;
}

static long clampl(double x, long lo, long hi)
{
    long v = lround(x);
    return v < lo ? lo : (v > hi ? hi : v);
}

static char *put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *put_int(char *p, long v)
{
    if (v < 0) {
        *p++ = '-';
        return ch__sim_put_uint(p, (uint64_t)(-v));
    }
    return ch__sim_put_uint(p, (uint64_t)v);
}

/* A Poisson draw by inversion (small means only). */
static int poisson(ch__sim_rng *r, double mean)
{
    double u = ch__sim_unit(r);
    double p = exp(-mean);
    double cdf = p;
    int k = 0;
    while (u > cdf && k < 50) {
        k++;
        p *= mean / k;
        cdf += p;
    }
    return k;
}

/* ---- bank ---------------------------------------------------------------- */

/* Surnames: a first part and an ending, 12 x 12 = 144 names. */
static const char *const name_head[12] = {"Ab",  "Bar", "Chen", "Dal", "Ev",  "Far",
                                          "Gor", "Hal", "Ivo",  "Kin", "Lam", "Mor"};
static const char *const name_tail[12] = {"ton", "ley", "son", "ford", "ini", "ova",
                                          "ez",  "man", "ard", "ing",  "ski", "er"};
#define N_NAMES 144

/* CustomerId = 15000000 + (c * BANK_ID_MUL + BANK_ID_ADD) mod 10^7: a
 * bijection on [0, 10^7) because BANK_ID_MUL is prime to 10. */
#define BANK_ID_SPACE 10000000ull
#define BANK_ID_MUL   3141593ull
#define BANK_ID_ADD   271828ull

/* Name rank k in [0, N_NAMES) with density proportional to 1 / (k + 5),
 * by inverting the continuous distribution: a few names are common, many
 * rare. */
static int pick_name(ch__sim_rng *r)
{
    double x = 5.0 * exp(ch__sim_unit(r) * log((N_NAMES + 5.0) / 5.0)) - 5.0;
    int k = (int)x;
    return k < 0 ? 0 : (k >= N_NAMES ? N_NAMES - 1 : k);
}

static size_t bank_row(uint64_t seed_mix, uint64_t c, char *out, double *score, int *label)
{
    static const char *const geo[3] = {"France", "Germany", "Spain"};
    ch__sim_rng r;
    char *p = out;
    int name, g, female, tenure, products, card, active;
    long credit, age;
    int64_t balance, salary;
    double s;

    r.s = seed_mix ^ ch__sim_mix64(c * 0x9E6C63D0676A9A99ull + 7);
    name = pick_name(&r);
    credit = clampl(650 + 97 * gauss(&r), 350, 850);
    {
        double u = ch__sim_unit(&r);
        g = u < 0.50 ? 0 : (u < 0.75 ? 1 : 2);
    }
    female = bern(&r, 0.45);
    age = clampl(38 + 10 * gauss(&r) + 6 * fabs(gauss(&r)) - 4.8, 18, 92);
    tenure = (int)(ch__sim_unit(&r) * 11);
    balance = bern(&r, g == 1 ? 0.05 : 0.48)
                  ? 0
                  : clampl((119800 + 30000 * gauss(&r)) * 100, 0, 30000000);
    {
        double u = ch__sim_unit(&r);
        products = u < 0.508 ? 1 : (u < 0.967 ? 2 : (u < 0.994 ? 3 : 4));
    }
    card = bern(&r, 0.70);
    active = bern(&r, 0.515);
    salary = 1158 + (int64_t)(ch__sim_unit(&r) * 19998090.0);

    s = -1.65 + 0.068 * (double)(age - 38) + 0.75 * (g == 1) + 0.30 * female - 0.95 * active;
    s += products == 2 ? -1.30 : (products == 3 ? 2.40 : (products == 4 ? 4.0 : 0.0));
    s += 0.30 * (balance > 0) - 0.0009 * (double)(credit - 650);
    *score = s;
    *label = bern(&r, ch__sim_sigmoid(s + 0.5 * gauss(&r)));

    p = ch__sim_put_uint(p, c + 1);
    *p++ = ',';
    p = ch__sim_put_uint(p, 15000000ull + (c * BANK_ID_MUL + BANK_ID_ADD) % BANK_ID_SPACE);
    *p++ = ',';
    p = put_str(p, name_head[name % 12]);
    p = put_str(p, name_tail[name / 12]);
    *p++ = ',';
    p = put_int(p, credit);
    *p++ = ',';
    p = put_str(p, geo[g]);
    *p++ = ',';
    p = put_str(p, female ? "Female" : "Male");
    *p++ = ',';
    p = put_int(p, age);
    *p++ = ',';
    p = put_int(p, tenure);
    *p++ = ',';
    p = ch__sim_put_cents(p, balance);
    *p++ = ',';
    p = put_int(p, products);
    *p++ = ',';
    *p++ = (char)('0' + card);
    *p++ = ',';
    *p++ = (char)('0' + active);
    *p++ = ',';
    p = ch__sim_put_cents(p, salary);
    *p++ = ',';
    *p++ = (char)('0' + *label);
    return (size_t)(p - out);
}

const ch__sim_layout ch__sim_bank = {
    "RowNumber,CustomerId,Surname,CreditScore,Geography,Gender,Age,Tenure,Balance,"
    "NumOfProducts,HasCrCard,IsActiveMember,EstimatedSalary,Exited",
    BANK_ID_SPACE, bank_row};

/* ---- plans --------------------------------------------------------------- */

static const char states[51][3] = {"AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA",
                                   "HI", "IA", "ID", "IL", "IN", "KS", "KY", "LA", "MA", "MD", "ME",
                                   "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ", "NM",
                                   "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX",
                                   "UT", "VA", "VT", "WA", "WI", "WV", "WY"};

/* Minutes (tenths) and calls of one period, and its charge in cents at
 * 'cents_per_min'. */
static char *put_usage(char *p, ch__sim_rng *r, double mean, double sd, double calls,
                       double cents_per_min, long *minutes_tenths)
{
    long m = clampl((mean + sd * gauss(r)) * 10, 0, 4000);
    long n = clampl(calls + calls * 0.2 * gauss(r), 0, 200);
    *minutes_tenths = m;
    p = put_int(p, m / 10);
    *p++ = '.';
    *p++ = (char)('0' + m % 10);
    *p++ = ',';
    p = put_int(p, n);
    *p++ = ',';
    p = ch__sim_put_cents(p, lround((double)m / 10.0 * cents_per_min));
    *p++ = ',';
    return p;
}

static size_t plans_row(uint64_t seed_mix, uint64_t c, char *out, double *score, int *label)
{
    static const char *const area[3] = {"408", "415", "510"};
    ch__sim_rng r;
    char *p = out;
    int st, intl, vmail, calls_cs, a;
    long length, vmsgs, day, eve, night, intl_min;
    double s;

    r.s = seed_mix ^ ch__sim_mix64(c * 0xC2B2AE3D27D4EB4Full + 11);
    st = (int)(ch__sim_unit(&r) * 51);
    length = clampl(101 + 40 * gauss(&r), 1, 243);
    {
        double u = ch__sim_unit(&r);
        a = u < 0.25 ? 0 : (u < 0.75 ? 1 : 2);
    }
    intl = bern(&r, 0.097);
    vmail = bern(&r, 0.277);
    vmsgs = vmail ? clampl(29 + 7.5 * gauss(&r), 1, 60) : 0;

    p = put_str(p, states[st]);
    *p++ = ',';
    p = put_int(p, length);
    *p++ = ',';
    p = put_str(p, area[a]);
    *p++ = ',';
    p = put_str(p, intl ? "yes" : "no");
    *p++ = ',';
    p = put_str(p, vmail ? "yes" : "no");
    *p++ = ',';
    p = put_int(p, vmsgs);
    *p++ = ',';
    p = put_usage(p, &r, 180, 54, 100, 17.0, &day);
    p = put_usage(p, &r, 200, 50, 100, 8.5, &eve);
    p = put_usage(p, &r, 200, 50, 100, 4.5, &night);
    p = put_usage(p, &r, 10.2, 2.8, 4.5, 27.0, &intl_min);
    calls_cs = poisson(&r, 1.56);
    p = put_int(p, calls_cs);
    *p++ = ',';

    s = -2.75 + 2.1 * intl - 0.9 * vmail + 0.0115 * ((double)day / 10 - 180);
    s += 0.0045 * ((double)eve / 10 - 200) + 0.0025 * ((double)night / 10 - 200);
    s += 0.08 * ((double)intl_min / 10 - 10.2) + 1.9 * (calls_cs >= 4) + 0.12 * calls_cs;
    *score = s;
    *label = bern(&r, ch__sim_sigmoid(s + 0.5 * gauss(&r)));
    p = put_str(p, *label ? "True" : "False");
    return (size_t)(p - out);
}

const ch__sim_layout ch__sim_plans = {
    "State,Account length,Area code,International plan,Voice mail plan,Number vmail messages,"
    "Total day minutes,Total day calls,Total day charge,Total eve minutes,Total eve calls,"
    "Total eve charge,Total night minutes,Total night calls,Total night charge,Total intl "
    "minutes,Total intl calls,Total intl charge,Customer service calls,Churn",
    UINT64_MAX, plans_row};
