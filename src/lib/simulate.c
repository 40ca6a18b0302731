/*
 * simulate.c -- synthetic telecom customers in the Telco CSV layout.
 *
 * Each customer is drawn independently from a small generative model (all
 * numbers are in the "model" block below and in docs/simulate.md):
 *
 *   partner, senior, dependents  ->  tenure  ->  contract
 *   phone, senior                ->  internet type  ->  add-on services
 *   services                     ->  MonthlyCharges  ->  TotalCharges
 *   contract, internet           ->  payment method, paperless billing
 *   all of the above             ->  churn log-odds + N(0, sigma)  ->  Churn
 *
 * Invariants:
 *   - Customer number c (= id_offset + row) alone fixes its random stream:
 *     the generator is seeded per row from (seed, c), and every row makes
 *     the same draws in the same order whatever the scenario. So the same
 *     options give the same bytes; writing rows 0..2N-1 equals writing two
 *     batches with id_offset 0 and N; and a drift scenario changes the
 *     customers it claims to change and nothing else (the "price" file is
 *     the "none" file with higher charges, the "concept" file has the same
 *     features and different labels).
 *   - customerID is a bijection of c onto "DDDD-LLLLL" (see put_id), so ids
 *     never collide while c stays below ID_SPACE (about 1.19e11).
 *   - Numbers are written from integer cents by hand: locale-independent,
 *     and much faster than printf.
 *
 * Workload: bulk generation (1M rows in well under a second on one core),
 * so everything that depends only on small integers (tenure, contract,
 * internet type) is precomputed into per-run tables and the row loop does
 * table look-ups, a few uniform draws and one exp().
 *
 * Calibration (docs/simulate.md has the script and the numbers): the
 * noise-free log-odds (the oracle) reach ROC AUC 0.864-0.868 on 50k-row
 * samples (0.867 on 1M), and xgboost trained on 50k rows reaches
 * 0.863-0.867 on 50k fresh rows, so a good model lands in 0.86-0.87.
 */
#include "ch/simulate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "simulate_int.h"

/* ------------------------------------------------------------------ */
/* The model. Every constant is documented in docs/simulate.md.         */
/* ------------------------------------------------------------------ */

#define MAX_TENURE 72 /* months; the Telco file's range is 0..72 */

#define P_MALE            0.505 /* P(gender = Male) */
#define P_SENIOR          0.162 /* P(SeniorCitizen = 1) */
#define P_PARTNER         0.483
#define P_DEP_PARTNER     0.58 /* P(Dependents | Partner = Yes) */
#define P_DEP_SINGLE      0.11 /* P(Dependents | Partner = No) */
#define DEP_SENIOR_FACTOR 0.25 /* seniors rarely have dependents at home */

/* Tenure: relative probability per month over segments of 0..72, one row
 * per Partner value, read off the Telco file. Partners stay longer; both
 * have a bump at 1 month (new sign-ups) and at 72 (the longest-standing). */
static const struct {
    int lo, hi;  /* months, inclusive */
    double w[2]; /* weight per month: [Partner = No, Partner = Yes] */
} tenure_segs[] = {
    {0, 0, {0.06, 0.27}},   {1, 1, {14.1, 2.90}},   {2, 5, {3.90, 1.30}},   {6, 11, {2.10, 1.17}},
    {12, 23, {1.42, 1.04}}, {24, 35, {1.03, 1.05}}, {36, 47, {0.81, 0.97}}, {48, 59, {0.72, 1.24}},
    {60, 69, {0.70, 1.69}}, {70, 71, {0.71, 3.48}}, {72, 72, {1.40, 9.14}},
};

/* Contract: ordered logit on a = K_TENURE * tenure / 72 - K_SENIOR * senior.
 * P(Month-to-month) = sigmoid(C_ONE - a), P(Two year) = sigmoid(a - C_TWO). */
#define CT_K_TENURE 8.0
#define CT_K_SENIOR 1.4
#define CT_C_ONE    3.7
#define CT_C_TWO    6.0

#define P_PHONE 0.903 /* without phone service the line is always DSL */

/* MultipleLines = Yes given phone: logit(P_MULTI) + slope * (tenure/72 - 0.45). */
#define P_MULTI     0.467
#define MULTI_SLOPE 2.5

/* InternetService given PhoneService = Yes, by SeniorCitizen. */
static const double inet_p[2][3] = {
    /* DSL, Fiber optic, No */
    {0.300, 0.425, 0.275}, /* senior = 0 */
    {0.150, 0.800, 0.050}, /* senior = 1 */
};

/* Add-on services given internet: logit(base) + slope * (tenure/72 - 0.45).
 * Order: OnlineSecurity, OnlineBackup, DeviceProtection, TechSupport,
 * StreamingTV, StreamingMovies. */
static const double addon_base[2][6] = {
    {0.487, 0.449, 0.440, 0.487, 0.395, 0.405}, /* DSL */
    {0.271, 0.434, 0.438, 0.280, 0.565, 0.566}, /* Fiber optic */
};
static const double addon_slope[6] = {2.5, 2.5, 2.5, 2.5, 2.0, 2.0};

/* PaperlessBilling = Yes by internet type (DSL, Fiber optic, No). */
static const double paperless_p[3] = {0.55, 0.77, 0.29};

/* PaymentMethod: weights by contract, multiplied by an internet factor, then
 * normalized. Order: Electronic check, Mailed check, Bank transfer, Credit card. */
static const double pay_w_contract[3][4] = {
    {0.477, 0.230, 0.152, 0.140}, /* Month-to-month */
    {0.236, 0.229, 0.265, 0.270}, /* One year */
    {0.099, 0.225, 0.333, 0.343}, /* Two year */
};
static const double pay_w_inet[3][4] = {
    {1.00, 1.00, 1.0, 1.0}, /* DSL */
    {1.35, 0.45, 1.0, 1.0}, /* Fiber optic */
    {0.25, 2.20, 1.0, 1.0}, /* No internet */
};

/* MonthlyCharges in cents: per-service prices plus N(0, 1 dollar) noise cut
 * at +-2.5 dollars (the Telco prices fit this to within about a dollar). */
#define PRICE_PHONE     2000
#define PRICE_MULTI     500
#define PRICE_DSL       2500
#define PRICE_FIBER     5000
#define PRICE_PROTECT   500  /* each of security, backup, device protection, tech support */
#define PRICE_STREAM    1000 /* each of streaming TV, streaming movies */
#define PRICE_NOISE_SD  1.0
#define PRICE_NOISE_CUT 2.5

/* TotalCharges = tenure * MonthlyCharges * r, r ~ N(1, 0.04) cut to
 * [0.85, 1.15] (past prices differed); equal to MonthlyCharges when tenure
 * is 1, and blank (" ") when tenure is 0, as in the Telco file. */
#define TOTAL_RATIO_SD  0.04
#define TOTAL_RATIO_CUT 0.15

/* Churn log-odds; see docs/simulate.md for the calibration. */
#define B_INTERCEPT  -0.91
#define B_M2M        2.25 /* Contract = Month-to-month (Two year is the reference) */
#define B_ONE_YEAR   1.20
#define B_LOG_TENURE -0.90 /* times log(1 + tenure) */
#define B_CHARGES    0.85  /* times (MonthlyCharges - 65) / 30 */
#define B_FIBER      0.30
#define B_ECHECK     0.55
#define B_PAPERLESS  0.45
#define B_SENIOR     0.35
#define B_PARTNER    -0.10
#define B_DEPENDENTS -0.25
#define B_TECH       -0.45 /* TechSupport = Yes */
#define B_SECURITY   -0.50 /* OnlineSecurity = Yes */
#define NOISE_SD     0.95  /* unobserved part of the log-odds */

/* Drift scenarios. */
#define PRICE_FACTOR_PCT    115  /* price: MonthlyCharges * 1.15 */
#define FIBER_SWITCH        0.45 /* fiber: share of phone customers on DSL/No moved to fiber */
#define NEW_PAY_SHARE       0.20 /* new-payment: share of customers shown as "Digital wallet" */
#define CONCEPT_CT_SCALE    0.0  /* concept: contracts no longer hold customers ... */
#define B_INTERCEPT_CONCEPT 0.94 /* ... and the intercept moved to keep ~26.5% churn */

/* ------------------------------------------------------------------ */
/* Value names and customer ids.                                       */
/* ------------------------------------------------------------------ */

enum { INET_DSL = 0, INET_FIBER = 1, INET_NONE = 2 };
enum { CT_M2M = 0, CT_ONE = 1, CT_TWO = 2 };
enum { PAY_ECHECK = 0, PAY_WALLET = 4 };
enum { ADD_SECURITY = 0, ADD_TECH = 3, N_ADDONS = 6 };

typedef struct str {
    const char *s;
    size_t n;
} str;
/* clang-format off */
#define S(lit) {lit, sizeof lit - 1}
/* clang-format on */

static const str yes_no[2] = {S("No"), S("Yes")};
static const str gender_s[2] = {S("Female"), S("Male")};
static const str multi_s[3] = {S("No"), S("Yes"), S("No phone service")};
static const str inet_s[3] = {S("DSL"), S("Fiber optic"), S("No")};
static const str addon_s[3] = {S("No"), S("Yes"), S("No internet service")};
static const str contract_s[3] = {S("Month-to-month"), S("One year"), S("Two year")};
static const str pay_s[5] = {S("Electronic check"), S("Mailed check"),
                             S("Bank transfer (automatic)"), S("Credit card (automatic)"),
                             S("Digital wallet")};

static const char header[] =
    "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,"
    "InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,"
    "StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn";

/* Ids are 4 digits, '-', 5 letters: ID_DIGITS * ID_LETTERS distinct values.
 * Customer number c (< ID_SPACE) is split into (d, l) = (c mod ID_DIGITS,
 * c / ID_DIGITS) and scrambled by three Feistel-style rounds, each adding a
 * hash of one half to the other modulo its size. Every round can be undone,
 * so the map is a bijection (ids never collide), and consecutive customers
 * get unrelated-looking ids like the real file's. */
#define ID_DIGITS  10000ull
#define ID_LETTERS 11881376ull /* 26^5 */
#define ID_SPACE   (ID_DIGITS * ID_LETTERS)

#define ROW_MAX        512        /* bytes; the longest row is under 400 */
#define CHUNK_LEN      (1u << 20) /* bytes handed to the writer at a time */
#define PROGRESS_EVERY 65536      /* rows between progress calls */

/* ------------------------------------------------------------------ */
/* Random numbers: splitmix64, seeded per customer.                    */
/* ------------------------------------------------------------------ */

/* Short local names for the shared generator (simulate_int.h). */
typedef ch__sim_rng rng;
#define mix64      ch__sim_mix64
#define rng_next   ch__sim_next
#define rng_unit   ch__sim_unit
#define rng_gauss2 ch__sim_gauss2
#define sigmoid    ch__sim_sigmoid

static double logit(double p)
{
    return log(p / (1.0 - p));
}

static double clamp(double x, double lim)
{
    return x < -lim ? -lim : (x > lim ? lim : x);
}

/* ------------------------------------------------------------------ */
/* Per-run tables and drawing one customer.                            */
/* ------------------------------------------------------------------ */

typedef struct model {
    ch_sim_drift drift;
    uint64_t seed_mix;                           /* the seed, hashed */
    double tenure_cdf[2][MAX_TENURE + 1];        /* by partner */
    double ct_m2m[2][MAX_TENURE + 1];            /* P(Month-to-month) by senior, tenure */
    double ct_not_two[2][MAX_TENURE + 1];        /* P(not Two year) by senior, tenure */
    double multi_p[MAX_TENURE + 1];              /* P(MultipleLines) given phone */
    double addon_p[2][MAX_TENURE + 1][N_ADDONS]; /* by internet (DSL, fiber), tenure */
    double pay_cdf[3][3][4];                     /* by contract, internet */
    double log_tenure[MAX_TENURE + 1];           /* B_LOG_TENURE * log(1 + t) */
    double b_intercept, b_m2m, b_one_year;       /* scenario-dependent coefficients */
} model;

typedef struct cust {
    int male, senior, partner, dependents;
    int tenure;       /* months, 0..72 */
    int phone, multi; /* 0/1 */
    int inet;         /* INET_* */
    int addon[N_ADDONS];
    int contract; /* CT_* */
    int paperless;
    int pay;          /* true method, 0..3 */
    int pay_shown;    /* what the file says, 0..4 */
    int64_t mc_cents; /* MonthlyCharges */
    int64_t tc_cents; /* TotalCharges, unused when tenure is 0 */
    double score;     /* churn log-odds without noise */
    int churn;
} cust;

/*
 * Fills 'm' for the options 'o': normalizes the tenure and payment weights
 * into cumulative tables and evaluates every sigmoid that depends only on
 * (senior, tenure) or (internet, tenure), so that the row loop does not.
 */
static void model_init(model *m, const ch_sim_opts *o)
{
    int p, s, t, i, k, c;

    m->drift = o->drift;
    m->seed_mix = mix64(o->seed ^ 0x6A09E667F3BCC909ull);
    for (p = 0; p < 2; p++) {
        double w[MAX_TENURE + 1];
        double sum = 0.0;
        double acc = 0.0;
        for (i = 0; i < (int)(sizeof tenure_segs / sizeof tenure_segs[0]); i++)
            for (t = tenure_segs[i].lo; t <= tenure_segs[i].hi; t++)
                w[t] = tenure_segs[i].w[p];
        for (t = 0; t <= MAX_TENURE; t++)
            sum += w[t];
        for (t = 0; t <= MAX_TENURE; t++) {
            acc += w[t] / sum;
            m->tenure_cdf[p][t] = acc;
        }
        m->tenure_cdf[p][MAX_TENURE] = 1.0;
    }
    for (t = 0; t <= MAX_TENURE; t++) {
        double x = (double)t / MAX_TENURE - 0.45;
        for (s = 0; s < 2; s++) {
            double a = CT_K_TENURE * t / MAX_TENURE - CT_K_SENIOR * s;
            m->ct_m2m[s][t] = sigmoid(CT_C_ONE - a);
            m->ct_not_two[s][t] = 1.0 - sigmoid(a - CT_C_TWO);
        }
        m->multi_p[t] = sigmoid(logit(P_MULTI) + MULTI_SLOPE * x);
        for (i = 0; i < 2; i++)
            for (k = 0; k < N_ADDONS; k++)
                m->addon_p[i][t][k] = sigmoid(logit(addon_base[i][k]) + addon_slope[k] * x);
        m->log_tenure[t] = B_LOG_TENURE * log1p((double)t);
    }
    for (c = 0; c < 3; c++) {
        for (i = 0; i < 3; i++) {
            double sum = 0.0;
            double acc = 0.0;
            for (k = 0; k < 4; k++)
                sum += pay_w_contract[c][k] * pay_w_inet[i][k];
            for (k = 0; k < 4; k++) {
                acc += pay_w_contract[c][k] * pay_w_inet[i][k] / sum;
                m->pay_cdf[c][i][k] = acc;
            }
            m->pay_cdf[c][i][3] = 1.0;
        }
    }
    m->b_intercept = B_INTERCEPT;
    m->b_m2m = B_M2M;
    m->b_one_year = B_ONE_YEAR;
    if (o->drift == CH_SIM_DRIFT_CONCEPT) {
        m->b_intercept = B_INTERCEPT_CONCEPT;
        m->b_m2m = B_M2M * CONCEPT_CT_SCALE;
        m->b_one_year = B_ONE_YEAR * CONCEPT_CT_SCALE;
    }
}

static int bern(rng *r, double p)
{
    return rng_unit(r) < p;
}

/* Smallest index whose cumulative probability exceeds 'u'. */
static int pick(const double *cdf, int n, double u)
{
    int i = 0;
    while (i < n - 1 && u >= cdf[i])
        i++;
    return i;
}

/*
 * Draws customer number 'c' into 'k'. Every call makes the same sequence of
 * draws whatever the scenario, so scenarios differ only where they claim
 * to (see the file comment). The order of draws is part of the output
 * format: changing it changes every file.
 */
static void draw_customer(const model *m, uint64_t c, cust *k)
{
    rng r;
    double u_fiber, u_wallet, g_price, g_total, g_noise, g_unused;
    double score;
    int i;
    int64_t mc;

    r.s = m->seed_mix ^ mix64(c * 0xD1B54A32D192ED03ull + 1);

    k->male = bern(&r, P_MALE);
    k->senior = bern(&r, P_SENIOR);
    k->partner = bern(&r, P_PARTNER);
    k->dependents =
        bern(&r, (k->partner ? P_DEP_PARTNER : P_DEP_SINGLE) * (k->senior ? DEP_SENIOR_FACTOR : 1));
    k->tenure = pick(m->tenure_cdf[k->partner], MAX_TENURE + 1, rng_unit(&r));
    {
        double u = rng_unit(&r);
        if (u < m->ct_m2m[k->senior][k->tenure])
            k->contract = CT_M2M;
        else if (u < m->ct_not_two[k->senior][k->tenure])
            k->contract = CT_ONE;
        else
            k->contract = CT_TWO;
    }
    k->phone = bern(&r, P_PHONE);
    k->multi = bern(&r, m->multi_p[k->tenure]) && k->phone;
    {
        double u = rng_unit(&r);
        const double *p = inet_p[k->senior];
        k->inet = u < p[0] ? INET_DSL : (u < p[0] + p[1] ? INET_FIBER : INET_NONE);
        if (!k->phone)
            k->inet = INET_DSL;
    }
    u_fiber = rng_unit(&r);
    if (m->drift == CH_SIM_DRIFT_FIBER && k->phone && k->inet != INET_FIBER &&
        u_fiber < FIBER_SWITCH)
        k->inet = INET_FIBER;
    for (i = 0; i < N_ADDONS; i++) {
        double u = rng_unit(&r);
        k->addon[i] = k->inet != INET_NONE && u < m->addon_p[k->inet][k->tenure][i];
    }
    k->paperless = bern(&r, paperless_p[k->inet]);
    k->pay = pick(m->pay_cdf[k->contract][k->inet], 4, rng_unit(&r));
    u_wallet = rng_unit(&r);
    k->pay_shown = k->pay;
    if (m->drift == CH_SIM_DRIFT_NEW_PAYMENT && u_wallet < NEW_PAY_SHARE)
        k->pay_shown = PAY_WALLET;

    rng_gauss2(&r, &g_price, &g_total);
    rng_gauss2(&r, &g_noise, &g_unused);
    (void)g_unused;

    mc = PRICE_PHONE * k->phone + PRICE_MULTI * k->multi;
    mc += k->inet == INET_DSL ? PRICE_DSL : (k->inet == INET_FIBER ? PRICE_FIBER : 0);
    for (i = 0; i < 4; i++)
        mc += PRICE_PROTECT * k->addon[i];
    mc += PRICE_STREAM * (k->addon[4] + k->addon[5]);
    mc += (int64_t)lround(100.0 * clamp(PRICE_NOISE_SD * g_price, PRICE_NOISE_CUT));
    if (m->drift == CH_SIM_DRIFT_PRICE)
        mc = (mc * PRICE_FACTOR_PCT + 50) / 100;
    k->mc_cents = mc;
    if (k->tenure <= 1)
        k->tc_cents = mc;
    else
        k->tc_cents = (int64_t)llround((double)k->tenure * (double)mc *
                                       (1.0 + clamp(TOTAL_RATIO_SD * g_total, TOTAL_RATIO_CUT)));

    score = m->b_intercept + m->log_tenure[k->tenure];
    score += k->contract == CT_M2M ? m->b_m2m : (k->contract == CT_ONE ? m->b_one_year : 0.0);
    score += B_CHARGES * ((double)mc / 100.0 - 65.0) / 30.0;
    score += B_FIBER * (k->inet == INET_FIBER);
    score += B_ECHECK * (k->pay == PAY_ECHECK);
    score += B_PAPERLESS * k->paperless;
    score += B_SENIOR * k->senior;
    score += B_PARTNER * k->partner;
    score += B_DEPENDENTS * k->dependents;
    score += B_TECH * k->addon[ADD_TECH];
    score += B_SECURITY * k->addon[ADD_SECURITY];
    k->score = score;
    k->churn = bern(&r, sigmoid(score + NOISE_SD * g_noise));
}

/* ------------------------------------------------------------------ */
/* Formatting.                                                         */
/* ------------------------------------------------------------------ */

static char *put(char *p, str s)
{
    memcpy(p, s.s, s.n);
    p += s.n;
    *p++ = ',';
    return p;
}

#define put_uint ch__sim_put_uint

/* Writes 'cents' (>= 0) as dollars with exactly two decimals and a comma. */
static char *put_cents(char *p, int64_t cents)
{
    p = ch__sim_put_cents(p, cents);
    *p++ = ',';
    return p;
}

/* Writes the id of customer number 'c' (< ID_SPACE): "DDDD-LLLLL". */
static char *put_id(char *p, uint64_t c)
{
    uint64_t d = c % ID_DIGITS;
    uint64_t l = c / ID_DIGITS;
    int i;

    l = (l + mix64(d ^ 0x243F6A8885A308D3ull) % ID_LETTERS) % ID_LETTERS;
    d = (d + mix64(l ^ 0x13198A2E03707344ull) % ID_DIGITS) % ID_DIGITS;
    l = (l + mix64(d ^ 0xA4093822299F31D0ull) % ID_LETTERS) % ID_LETTERS;
    for (i = 3; i >= 0; i--) {
        p[i] = (char)('0' + d % 10);
        d /= 10;
    }
    p[4] = '-';
    for (i = 9; i >= 5; i--) {
        p[i] = (char)('A' + l % 26);
        l /= 26;
    }
    p[10] = ',';
    return p + 11;
}

/* Formats customer 'k' with number 'c' as one CSV line into 'out' (at
 * least ROW_MAX bytes) and returns its length. */
static size_t format_row(char *out, uint64_t c, const cust *k, int crlf)
{
    char *p = out;
    int i;

    p = put_id(p, c);
    p = put(p, gender_s[k->male]);
    *p++ = (char)('0' + k->senior);
    *p++ = ',';
    p = put(p, yes_no[k->partner]);
    p = put(p, yes_no[k->dependents]);
    p = put_uint(p, (uint64_t)k->tenure);
    *p++ = ',';
    p = put(p, yes_no[k->phone]);
    p = put(p, multi_s[k->phone ? k->multi : 2]);
    p = put(p, inet_s[k->inet]);
    for (i = 0; i < N_ADDONS; i++)
        p = put(p, addon_s[k->inet == INET_NONE ? 2 : k->addon[i]]);
    p = put(p, contract_s[k->contract]);
    p = put(p, yes_no[k->paperless]);
    p = put(p, pay_s[k->pay_shown]);
    p = put_cents(p, k->mc_cents);
    if (k->tenure == 0) {
        *p++ = ' ';
        *p++ = ',';
    } else {
        p = put_cents(p, k->tc_cents);
    }
    memcpy(p, yes_no[k->churn].s, yes_no[k->churn].n);
    p += yes_no[k->churn].n;
    if (crlf)
        *p++ = '\r';
    *p++ = '\n';
    return (size_t)(p - out);
}

/* ------------------------------------------------------------------ */
/* Public API.                                                         */
/* ------------------------------------------------------------------ */

void ch_sim_opts_default(ch_sim_opts *o)
{
    o->n_rows = 10000;
    o->seed = 42;
    o->drift = CH_SIM_DRIFT_NONE;
    o->crlf = 0;
    o->id_offset = 0;
    o->layout = CH_SIM_LAYOUT_TELCO;
}

static const char *const layout_names[] = {"telco", "bank", "plans"};
#define N_LAYOUTS ((int)(sizeof layout_names / sizeof layout_names[0]))

const char *ch_sim_layout_name(ch_sim_layout l)
{
    return (int)l < 0 || (int)l >= N_LAYOUTS ? "unknown" : layout_names[l];
}

int ch_sim_layout_parse(const char *name, ch_sim_layout *out)
{
    for (int i = 0; name != NULL && i < N_LAYOUTS; i++)
        if (strcmp(name, layout_names[i]) == 0) {
            *out = (ch_sim_layout)i;
            return 0;
        }
    return -1;
}

/* The row writer of a layout other than Telco's, or NULL for Telco. */
static const ch__sim_layout *other_layout(const ch_sim_opts *o)
{
    return o->layout == CH_SIM_LAYOUT_BANK    ? &ch__sim_bank
           : o->layout == CH_SIM_LAYOUT_PLANS ? &ch__sim_plans
                                              : NULL;
}

static const char *const drift_names[] = {"none", "price", "fiber", "new-payment", "concept"};
#define N_DRIFTS ((int)(sizeof drift_names / sizeof drift_names[0]))

const char *ch_sim_drift_name(ch_sim_drift d)
{
    if ((int)d < 0 || (int)d >= N_DRIFTS)
        return "unknown";
    return drift_names[d];
}

int ch_sim_drift_parse(const char *name, ch_sim_drift *out)
{
    int i;
    if (name == NULL)
        return -1;
    for (i = 0; i < N_DRIFTS; i++) {
        if (strcmp(name, drift_names[i]) == 0) {
            *out = (ch_sim_drift)i;
            return 0;
        }
    }
    return -1;
}

ch_err ch_sim_opts_check(const ch_sim_opts *o, ch_error *err)
{
    if (o == NULL)
        return ch_error_set(err, CH_EINVAL, "no simulation options given");
    if ((int)o->drift < 0 || (int)o->drift >= N_DRIFTS)
        return ch_error_set(err, CH_EINVAL, "unknown drift scenario %d", (int)o->drift);
    if (o->crlf != 0 && o->crlf != 1)
        return ch_error_set(err, CH_EINVAL, "crlf must be 0 or 1, not %d", o->crlf);
    if ((int)o->layout < 0 || (int)o->layout >= N_LAYOUTS)
        return ch_error_set(err, CH_EINVAL, "unknown layout %d", (int)o->layout);
    if (o->layout != CH_SIM_LAYOUT_TELCO && o->drift != CH_SIM_DRIFT_NONE)
        return ch_error_set(err, CH_EINVAL, "drift scenarios apply to the telco layout only");
    {
        uint64_t space = other_layout(o) != NULL ? other_layout(o)->id_space : ID_SPACE;
        if (o->id_offset > space || o->n_rows > space - o->id_offset)
            return ch_error_set(err, CH_EINVAL,
                                "id_offset %llu + n_rows %llu exceeds the %llu distinct customer "
                                "ids of the %s layout",
                                (unsigned long long)o->id_offset, (unsigned long long)o->n_rows,
                                (unsigned long long)space, layout_names[o->layout]);
    }
    return CH_OK;
}

/*
 * Generates rows into a ch_buf and hands it to 'write' whenever it holds
 * CHUNK_LEN bytes, so the writer sees about 1 MiB per call whatever the
 * row count. The buffer is sized once for a chunk plus a row; its cap
 * (CHUNK_LEN + 2 * ROW_MAX) can never be hit, so its only failure is
 * CH_ENOMEM, and only from the first reserve.
 */
ch_err ch_sim_write(const ch_sim_opts *o, ch_sim_write_fn write, ch_sim_progress_fn progress,
                    void *ctx, ch_error *err)
{
    ch_err rc;
    ch_buf b;
    model m;
    uint64_t i;
    char *p;
    const ch__sim_layout *lay;
    const char *hdr;

    rc = ch_sim_opts_check(o, err);
    if (rc != CH_OK)
        return rc;
    if (write == NULL)
        return ch_error_set(err, CH_EINVAL, "no writer given");
    lay = other_layout(o);
    model_init(&m, o);
    ch_buf_init(&b, CHUNK_LEN + 2 * ROW_MAX);

    /* One allocation up front; the row loop's reserves then never move it. */
    if (ch_buf_reserve(&b, CHUNK_LEN + ROW_MAX) == NULL)
        goto nomem;
    hdr = lay != NULL ? lay->header : header;
    p = ch_buf_reserve(&b, strlen(hdr) + 2);
    CH_ASSERT(p != NULL);
    memcpy(p, hdr, strlen(hdr));
    p += strlen(hdr);
    if (o->crlf)
        *p++ = '\r';
    *p++ = '\n';
    ch_buf_commit(&b, (size_t)(p - b.data - b.len));

    for (i = 0; i < o->n_rows; i++) {
        cust k;
        uint64_t c = o->id_offset + i;
        p = ch_buf_reserve(&b, ROW_MAX);
        if (p == NULL)
            goto nomem;
        if (lay != NULL) {
            double score;
            int label;
            size_t n = lay->row(m.seed_mix, c, p, &score, &label);
            if (o->crlf)
                p[n++] = '\r';
            p[n++] = '\n';
            ch_buf_commit(&b, n);
        } else {
            draw_customer(&m, c, &k);
            ch_buf_commit(&b, format_row(p, c, &k, o->crlf));
        }
        if (b.len >= CHUNK_LEN) {
            if (write(ctx, b.data, b.len) != 0)
                goto stopped;
            ch_buf_clear(&b);
        }
        if (progress != NULL && (i + 1) % PROGRESS_EVERY == 0)
            progress(ctx, i + 1, o->n_rows);
    }
    if (b.len > 0 && write(ctx, b.data, b.len) != 0)
        goto stopped;
    if (progress != NULL)
        progress(ctx, o->n_rows, o->n_rows);
    ch_buf_reset(&b);
    return CH_OK;

nomem:
    ch_buf_reset(&b);
    return ch_error_set(err, CH_ENOMEM, "out of memory for the output buffer");
stopped:
    ch_buf_reset(&b);
    return ch_error_set(err, CH_EIO, "the output writer stopped the run");
}

typedef struct file_ctx {
    FILE *f;
    int errnum; /* errno of the failed write, or 0 */
    ch_sim_progress_fn progress;
    void *user; /* the caller's progress context */
} file_ctx;

static int file_write(void *ctx, const char *data, size_t len)
{
    file_ctx *fc = ctx;
    if (fwrite(data, 1, len, fc->f) != len) {
        fc->errnum = errno != 0 ? errno : EIO;
        return -1;
    }
    return 0;
}

static void file_progress(void *ctx, uint64_t done, uint64_t total)
{
    file_ctx *fc = ctx;
    if (fc->progress != NULL)
        fc->progress(fc->user, done, total);
}

/*
 * Opens 'path' (or uses stdout for "-"), streams through ch_sim_write() and
 * checks the close, where buffered write errors (a full disk) show up. A
 * regular file left half written on failure is removed, so a reader never
 * takes a truncated file for a complete one; anything else (a device, a
 * FIFO) is left alone: removing /dev/full as root would delete the node.
 */
ch_err ch_sim_write_file(const ch_sim_opts *o, const char *path, ch_sim_progress_fn progress,
                         void *ctx, ch_error *err)
{
    file_ctx fc;
    ch_err rc;
    int to_stdout;
    int regular = 0;
    struct stat st;

    if (path == NULL)
        return ch_error_set(err, CH_EINVAL, "no output path given");
    rc = ch_sim_opts_check(o, err);
    if (rc != CH_OK)
        return rc;
    to_stdout = strcmp(path, "-") == 0;
    fc.errnum = 0;
    fc.progress = progress;
    fc.user = ctx;
    fc.f = to_stdout ? stdout : fopen(path, "wb");
    if (fc.f == NULL)
        return ch_error_set(err, CH_EIO, "cannot create '%s': %s", path, strerror(errno));
    if (!to_stdout && fstat(fileno(fc.f), &st) == 0)
        regular = S_ISREG(st.st_mode);

    rc = ch_sim_write(o, file_write, file_progress, &fc, err);
    if (to_stdout) {
        if (fflush(stdout) != 0 && rc == CH_OK) {
            fc.errnum = errno;
            rc = CH_EIO;
        }
    } else if (fclose(fc.f) != 0 && rc == CH_OK) {
        fc.errnum = errno;
        rc = CH_EIO;
    }
    if (rc == CH_EIO)
        ch_error_set(err, CH_EIO, "writing '%s': %s", to_stdout ? "<stdout>" : path,
                     strerror(fc.errnum != 0 ? fc.errnum : EIO));
    if (rc != CH_OK && regular)
        remove(path);
    return rc;
}

typedef struct scored {
    double score;
    int label;
} scored;

static int cmp_scored(const void *a, const void *b)
{
    double x = ((const scored *)a)->score;
    double y = ((const scored *)b)->score;
    return (x > y) - (x < y);
}

/*
 * Draws the customers exactly as ch_sim_write() would and ranks them by
 * their noise-free log-odds. AUC is the Mann-Whitney statistic: sort by
 * score, give each run of tied scores the mean of its ranks (midranks), and
 * AUC = (sum of positive ranks - P(P+1)/2) / (P N), which counts a tied
 * positive/negative pair as one half.
 */
ch_err ch_sim_oracle_auc(const ch_sim_opts *o, double *auc, ch_error *err)
{
    scored *v;
    uint64_t i;
    size_t n, lo, hi;
    double n_pos = 0.0;
    double rank_sum = 0.0;
    model m;
    ch_err rc;

    rc = ch_sim_opts_check(o, err);
    if (rc != CH_OK)
        return rc;
    if (auc == NULL)
        return ch_error_set(err, CH_EINVAL, "no place for the AUC given");
    if (o->n_rows < 2 || o->n_rows > SIZE_MAX / sizeof *v)
        return ch_error_set(err, CH_EINVAL, "the oracle AUC needs at least 2 rows, not %llu",
                            (unsigned long long)o->n_rows);
    n = (size_t)o->n_rows;
    v = ch_malloc_array(n, sizeof *v);
    if (v == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory for %zu scores", n);
    model_init(&m, o);
    for (i = 0; i < o->n_rows; i++) {
        cust k;
        if (other_layout(o) != NULL) {
            char row[ROW_MAX];
            other_layout(o)->row(m.seed_mix, o->id_offset + i, row, &v[i].score, &v[i].label);
            continue;
        }
        draw_customer(&m, o->id_offset + i, &k);
        v[i].score = k.score;
        v[i].label = k.churn;
    }
    qsort(v, n, sizeof *v, cmp_scored);
    for (lo = 0; lo < n; lo = hi) {
        double mid;
        size_t j;
        for (hi = lo + 1; hi < n && v[hi].score == v[lo].score; hi++)
            ;
        mid = (double)(lo + 1 + hi) / 2.0; /* mean of ranks lo+1 .. hi */
        for (j = lo; j < hi; j++) {
            if (v[j].label) {
                n_pos += 1.0;
                rank_sum += mid;
            }
        }
    }
    ch_free(v);
    if (n_pos == 0.0 || n_pos == (double)n)
        return ch_error_set(err, CH_EINVAL, "the oracle AUC needs both classes in %zu rows", n);
    *auc = (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * ((double)n - n_pos));
    return CH_OK;
}
