/*
 * test_simulate.c -- the synthetic-customer generator, through
 * include/ch/simulate.h only.
 *
 * Generated text is parsed here by a small strict reader (parse()) that
 * fails the test on any value outside the Telco schema's domains, so every
 * test that parses also checks the domains. The oracle AUC is checked
 * against a slow reference: the churn log-odds recomputed from the CSV
 * with the coefficients of docs/simulate.md, ranked by brute-force pair
 * counting.
 *
 * Statistical tolerances are about five standard errors at the sample
 * sizes used, and every sample has a fixed seed, so the tests are
 * deterministic; they guard the documented figures, not luck.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/simulate.h"
#include "ch/text.h"
#include "../harness.h"

#define N_FIELDS 21
#define TEXT_MAX ((size_t)1 << 30) /* cap on generated text, bytes */

static const char header[] =
    "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,"
    "InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,"
    "StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn";

/* One parsed customer. Categories are indexes into the lists below. */
typedef struct rec {
    char id[11];
    int male, senior, partner, dependents, tenure, phone;
    int multi;    /* No, Yes, No phone service */
    int inet;     /* DSL, Fiber optic, No */
    int addon[6]; /* No, Yes, No internet service */
    int contract; /* Month-to-month, One year, Two year */
    int paperless;
    int pay;    /* the four Telco methods, then Digital wallet */
    int64_t mc; /* MonthlyCharges, cents */
    int64_t tc; /* TotalCharges, cents; -1 when blank */
    int churn;
} rec;

static const char *const yes_no[] = {"No", "Yes", NULL};
static const char *const genders[] = {"Female", "Male", NULL};
static const char *const seniors[] = {"0", "1", NULL};
static const char *const multis[] = {"No", "Yes", "No phone service", NULL};
static const char *const inets[] = {"DSL", "Fiber optic", "No", NULL};
static const char *const addons[] = {"No", "Yes", "No internet service", NULL};
static const char *const contracts[] = {"Month-to-month", "One year", "Two year", NULL};
static const char *const pays[] = {
    "Electronic check",        "Mailed check",   "Bank transfer (automatic)",
    "Credit card (automatic)", "Digital wallet", NULL};

/* ------------------------------------------------------------------ */
/* Generating and parsing.                                             */
/* ------------------------------------------------------------------ */

static int buf_writer(void *ctx, const char *data, size_t len)
{
    return ch_buf_append(ctx, data, len) == CH_OK ? 0 : 1;
}

/* Generates 'o' into a NUL-terminated text the caller frees with ch_free. */
static char *gen(const ch_sim_opts *o, size_t *len)
{
    ch_buf b;
    ch_error err;
    ch_err rc;
    char *text;

    ch_buf_init(&b, TEXT_MAX);
    rc = ch_sim_write(o, buf_writer, NULL, &b, &err);
    if (rc != CH_OK)
        FAIL("ch_sim_write: %s: %s", ch_strerror(rc), err.msg);
    text = ch_buf_take(&b, len);
    ASSERT(text != NULL);
    return text;
}

static ch_sim_opts opts(uint64_t n_rows, uint64_t seed, ch_sim_drift drift)
{
    ch_sim_opts o;
    ch_sim_opts_default(&o);
    o.n_rows = n_rows;
    o.seed = seed;
    o.drift = drift;
    return o;
}

/* Index of the field 's' ('len' bytes) in the NULL-terminated 'list'. */
static int lookup(const char *const *list, const char *s, size_t len, long line, int field)
{
    int i;
    for (i = 0; list[i] != NULL; i++)
        if (strlen(list[i]) == len && memcmp(list[i], s, len) == 0)
            return i;
    FAIL("line %ld field %d: '%.*s' is outside its domain", line, field + 1, (int)len, s);
}

/* Parses "D+.DD" into cents. */
static int64_t money(const char *s, size_t len, long line)
{
    int64_t whole;
    size_t i;

    if (len < 4 || s[len - 3] != '.' || s[0] == '-')
        FAIL("line %ld: '%.*s' is not an amount with two decimals", line, (int)len, s);
    for (i = 0; i < len; i++)
        if (i != len - 3 && (s[i] < '0' || s[i] > '9'))
            FAIL("line %ld: '%.*s' is not an amount", line, (int)len, s);
    if (ch_parse_int64(s, len - 3, &whole) != 0)
        FAIL("line %ld: bad amount '%.*s'", line, (int)len, s);
    return whole * 100 + (s[len - 2] - '0') * 10 + (s[len - 1] - '0');
}

/*
 * Parses the whole of 'text' into '*out' (freed by the caller with
 * ch_free) and returns the row count. Fails the test unless: the header
 * matches; every line ends with "\n" (or "\r\n" when 'crlf'); every row has
 * 21 unquoted fields whose values are in their domains; and the
 * structural rules hold (No phone service iff PhoneService = No, No
 * internet service iff InternetService = No, TotalCharges blank iff tenure
 * is 0).
 */
static size_t parse(const char *text, size_t len, int crlf, rec **out)
{
    const char *p = text;
    const char *end = text + len;
    size_t cap = 1024;
    size_t n = 0;
    long line = 1;
    rec *rows = ch_malloc_array(cap, sizeof *rows);

    ASSERT(rows != NULL);
    ASSERT(memchr(text, '"', len) == NULL);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *f[N_FIELDS];
        size_t fl[N_FIELDS];
        const char *q;
        size_t line_len;
        int k = 0;
        int i;
        rec r;
        int64_t v;

        if (eol == NULL)
            FAIL("line %ld has no line end", line);
        line_len = (size_t)(eol - p);
        if (crlf) {
            if (line_len == 0 || p[line_len - 1] != '\r')
                FAIL("line %ld does not end with CRLF", line);
            line_len--;
        } else if (memchr(p, '\r', line_len) != NULL) {
            FAIL("line %ld has a CR", line);
        }
        if (line == 1) {
            if (line_len != sizeof header - 1 || memcmp(p, header, line_len) != 0)
                FAIL("bad header: %.*s", (int)line_len, p);
            p = eol + 1;
            line++;
            continue;
        }
        f[0] = p;
        for (q = p; q < p + line_len; q++) {
            if (*q == ',') {
                if (k + 1 >= N_FIELDS)
                    FAIL("line %ld has more than %d fields", line, N_FIELDS);
                fl[k] = (size_t)(q - f[k]);
                f[++k] = q + 1;
            }
        }
        fl[k] = (size_t)(p + line_len - f[k]);
        if (k + 1 != N_FIELDS)
            FAIL("line %ld has %d fields, not %d", line, k + 1, N_FIELDS);

        /* customerID: DDDD-LLLLL */
        if (fl[0] != 10 || f[0][4] != '-')
            FAIL("line %ld: bad customerID '%.*s'", line, (int)fl[0], f[0]);
        for (i = 0; i < 10; i++)
            if (i != 4 &&
                !(i < 4 ? (f[0][i] >= '0' && f[0][i] <= '9') : (f[0][i] >= 'A' && f[0][i] <= 'Z')))
                FAIL("line %ld: bad customerID '%.*s'", line, (int)fl[0], f[0]);
        memcpy(r.id, f[0], 10);
        r.id[10] = '\0';
        r.male = lookup(genders, f[1], fl[1], line, 1);
        r.senior = lookup(seniors, f[2], fl[2], line, 2);
        r.partner = lookup(yes_no, f[3], fl[3], line, 3);
        r.dependents = lookup(yes_no, f[4], fl[4], line, 4);
        if (fl[5] < 1 || fl[5] > 2 || f[5][0] < '0' || f[5][0] > '9' ||
            ch_parse_int64(f[5], fl[5], &v) != 0 || v < 0 || v > 72)
            FAIL("line %ld: bad tenure '%.*s'", line, (int)fl[5], f[5]);
        r.tenure = (int)v;
        r.phone = lookup(yes_no, f[6], fl[6], line, 6);
        r.multi = lookup(multis, f[7], fl[7], line, 7);
        r.inet = lookup(inets, f[8], fl[8], line, 8);
        for (i = 0; i < 6; i++)
            r.addon[i] = lookup(addons, f[9 + i], fl[9 + i], line, 9 + i);
        r.contract = lookup(contracts, f[15], fl[15], line, 15);
        r.paperless = lookup(yes_no, f[16], fl[16], line, 16);
        r.pay = lookup(pays, f[17], fl[17], line, 17);
        r.mc = money(f[18], fl[18], line);
        r.tc = fl[19] == 1 && f[19][0] == ' ' ? -1 : money(f[19], fl[19], line);
        r.churn = lookup(yes_no, f[20], fl[20], line, 20);

        if ((r.multi == 2) != (r.phone == 0))
            FAIL("line %ld: MultipleLines '%s' with PhoneService '%s'", line, multis[r.multi],
                 yes_no[r.phone]);
        for (i = 0; i < 6; i++)
            if ((r.addon[i] == 2) != (r.inet == 2))
                FAIL("line %ld: add-on %d is '%s' with InternetService '%s'", line, i,
                     addons[r.addon[i]], inets[r.inet]);
        if ((r.tc < 0) != (r.tenure == 0))
            FAIL("line %ld: TotalCharges blank=%d with tenure %d", line, r.tc < 0, r.tenure);
        if (r.mc < 1700 || r.mc > 14000)
            FAIL("line %ld: MonthlyCharges %lld cents out of range", line, (long long)r.mc);

        if (n == cap) {
            rec *bigger = ch_realloc(rows, 2 * cap * sizeof *rows);
            ASSERT(bigger != NULL);
            rows = bigger;
            cap *= 2;
        }
        rows[n++] = r;
        p = eol + 1;
        line++;
    }
    if (line == 1)
        FAIL("no header");
    *out = rows;
    return n;
}

/* Generates and parses in one go. */
static size_t sample(const ch_sim_opts *o, rec **out)
{
    size_t len;
    char *text = gen(o, &len);
    size_t n = parse(text, len, o->crlf, out);
    ch_free(text);
    ASSERT_INT_EQ(n, o->n_rows);
    return n;
}

static double share(const rec *r, size_t n, size_t field_offset, int value)
{
    size_t i;
    size_t hits = 0;
    for (i = 0; i < n; i++)
        hits += *(const int *)((const char *)&r[i] + field_offset) == value;
    return (double)hits / (double)n;
}
#define SHARE(r, n, field, value) share(r, n, offsetof(rec, field), value)

static double churn_rate_where(const rec *r, size_t n, size_t field_offset, int value)
{
    size_t i;
    size_t hits = 0;
    size_t churned = 0;
    for (i = 0; i < n; i++) {
        if (*(const int *)((const char *)&r[i] + field_offset) == value) {
            hits++;
            churned += (size_t)r[i].churn;
        }
    }
    ASSERT(hits > 0);
    return (double)churned / (double)hits;
}
#define CHURN_WHERE(r, n, field, value) churn_rate_where(r, n, offsetof(rec, field), value)

static double mean_mc(const rec *r, size_t n)
{
    size_t i;
    double sum = 0.0;
    for (i = 0; i < n; i++)
        sum += (double)r[i].mc;
    return sum / (double)n / 100.0;
}

/* ------------------------------------------------------------------ */
/* Options and names.                                                  */
/* ------------------------------------------------------------------ */

TEST(defaults)
{
    ch_sim_opts o;
    memset(&o, 0xff, sizeof o);
    ch_sim_opts_default(&o);
    ASSERT_INT_EQ(o.n_rows, 10000);
    ASSERT_INT_EQ(o.seed, 42);
    ASSERT_INT_EQ(o.drift, CH_SIM_DRIFT_NONE);
    ASSERT_INT_EQ(o.crlf, 0);
    ASSERT_INT_EQ(o.id_offset, 0);
}

TEST(drift_names)
{
    static const char *const names[] = {"none", "price", "fiber", "new-payment", "concept"};
    ch_sim_drift d;
    int i;

    for (i = 0; i < 5; i++) {
        ASSERT_STR_EQ(ch_sim_drift_name((ch_sim_drift)i), names[i]);
        d = CH_SIM_DRIFT_NONE;
        ASSERT_INT_EQ(ch_sim_drift_parse(names[i], &d), 0);
        ASSERT_INT_EQ(d, i);
    }
    d = CH_SIM_DRIFT_PRICE;
    ASSERT_INT_EQ(ch_sim_drift_parse("bogus", &d), -1);
    ASSERT_INT_EQ(ch_sim_drift_parse("", &d), -1);
    ASSERT_INT_EQ(ch_sim_drift_parse("Price", &d), -1);
    ASSERT_INT_EQ(ch_sim_drift_parse(NULL, &d), -1);
    ASSERT_INT_EQ(d, CH_SIM_DRIFT_PRICE); /* untouched on failure */
    ASSERT_STR_EQ(ch_sim_drift_name((ch_sim_drift)99), "unknown");
}

TEST(bad_options)
{
    ch_sim_opts o = opts(10, 1, CH_SIM_DRIFT_NONE);
    ch_error err;
    ch_buf b;
    double auc;

    ch_buf_init(&b, 1 << 20);
    o.drift = (ch_sim_drift)7;
    ASSERT_ERR(ch_sim_write(&o, buf_writer, NULL, &b, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "drift");
    o = opts(10, 1, CH_SIM_DRIFT_NONE);
    o.crlf = 2;
    ASSERT_ERR(ch_sim_write(&o, buf_writer, NULL, &b, &err), CH_EINVAL);
    o = opts(10, 1, CH_SIM_DRIFT_NONE);
    o.id_offset = UINT64_MAX - 5; /* past the id space: ids would collide */
    ASSERT_ERR(ch_sim_write(&o, buf_writer, NULL, &b, &err), CH_EINVAL);
    ASSERT_ERR(ch_sim_oracle_auc(&o, &auc, &err), CH_EINVAL);
    o = opts(10, 1, CH_SIM_DRIFT_NONE);
    ASSERT_ERR(ch_sim_write(&o, NULL, NULL, NULL, &err), CH_EINVAL);
    ASSERT_ERR(ch_sim_write(NULL, buf_writer, NULL, &b, NULL), CH_EINVAL);
    o.n_rows = 1;
    ASSERT_ERR(ch_sim_oracle_auc(&o, &auc, &err), CH_EINVAL);
    ASSERT_INT_EQ(b.len, 0); /* nothing written on bad options */
    ch_buf_reset(&b);
}

/* ------------------------------------------------------------------ */
/* Format, domains, determinism.                                       */
/* ------------------------------------------------------------------ */

TEST(zero_rows_is_header_only)
{
    ch_sim_opts o = opts(0, 1, CH_SIM_DRIFT_NONE);
    size_t len;
    char *text = gen(&o, &len);
    ASSERT_INT_EQ(len, sizeof header);
    ASSERT(memcmp(text, header, sizeof header - 1) == 0);
    ASSERT(text[len - 1] == '\n');
    ch_free(text);
    o.crlf = 1;
    text = gen(&o, &len);
    ASSERT_INT_EQ(len, sizeof header + 1);
    ASSERT(memcmp(text + len - 2, "\r\n", 2) == 0);
    ch_free(text);
}

TEST(header_fields_and_domains)
{
    /* parse() checks the header, 21 fields per row and every domain. */
    static const ch_sim_drift drifts[] = {CH_SIM_DRIFT_NONE, CH_SIM_DRIFT_PRICE, CH_SIM_DRIFT_FIBER,
                                          CH_SIM_DRIFT_NEW_PAYMENT, CH_SIM_DRIFT_CONCEPT};
    size_t d;

    for (d = 0; d < sizeof drifts / sizeof drifts[0]; d++) {
        ch_sim_opts o = opts(20000, 5, drifts[d]);
        rec *r;
        size_t n, i;
        int seen_tenure[73] = {0};

        o.crlf = d % 2 == 1;
        n = sample(&o, &r);
        for (i = 0; i < n; i++) {
            seen_tenure[r[i].tenure] = 1;
            if (drifts[d] != CH_SIM_DRIFT_NEW_PAYMENT && r[i].pay == 4)
                FAIL("row %zu: Digital wallet under drift '%s'", i, ch_sim_drift_name(drifts[d]));
            /* TotalCharges is about tenure * MonthlyCharges. */
            if (r[i].tenure > 0) {
                double ratio = (double)r[i].tc / ((double)r[i].tenure * (double)r[i].mc);
                if (ratio < 0.84 || ratio > 1.16)
                    FAIL("row %zu: TotalCharges/(tenure*MonthlyCharges) = %g", i, ratio);
            }
        }
        for (i = 0; i <= 72; i++)
            if (!seen_tenure[i])
                FAIL("tenure %zu never drawn in %zu rows", i, n);
        ch_free(r);
    }
}

TEST(deterministic)
{
    ch_sim_opts o = opts(3000, 11, CH_SIM_DRIFT_NONE);
    size_t la, lb, lc;
    char *a = gen(&o, &la);
    char *b = gen(&o, &lb);
    char *c;

    ASSERT_INT_EQ(la, lb);
    ASSERT(memcmp(a, b, la) == 0);
    o.seed = 12;
    c = gen(&o, &lc);
    ASSERT(la != lc || memcmp(a, c, la) != 0);
    ch_free(a);
    ch_free(b);
    ch_free(c);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

TEST(unique_ids_across_batches)
{
    /* Rows 0..2N-1 in one run equal two runs with id_offset 0 and N, and
     * no id repeats anywhere. */
    ch_sim_opts all = opts(40000, 3, CH_SIM_DRIFT_NONE);
    ch_sim_opts first = opts(20000, 3, CH_SIM_DRIFT_NONE);
    ch_sim_opts second = opts(20000, 3, CH_SIM_DRIFT_NONE);
    size_t la, l1, l2;
    char *ta, *t1, *t2;
    rec *r;
    size_t n, i;
    char(*ids)[11];

    second.id_offset = 20000;
    ta = gen(&all, &la);
    t1 = gen(&first, &l1);
    t2 = gen(&second, &l2);
    ASSERT_INT_EQ(la, l1 + l2 - sizeof header);
    ASSERT(memcmp(ta, t1, l1) == 0);
    ASSERT(memcmp(ta + l1, t2 + sizeof header, l2 - sizeof header) == 0);

    n = parse(ta, la, 0, &r);
    ids = ch_malloc_array(n, sizeof *ids);
    ASSERT(ids != NULL);
    for (i = 0; i < n; i++)
        memcpy(ids[i], r[i].id, 11);
    qsort(ids, n, sizeof *ids, cmp_id);
    for (i = 1; i < n; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            FAIL("customerID %s repeats", ids[i]);
    ch_free(ids);
    ch_free(r);
    ch_free(ta);
    ch_free(t1);
    ch_free(t2);
}

TEST(ids_at_the_end_of_the_id_space)
{
    /* The last customer numbers still map to distinct, well-formed ids;
     * one past the end is refused. */
    ch_sim_opts o = opts(1000, 1, CH_SIM_DRIFT_NONE);
    ch_error err;
    ch_buf b;
    rec *r;
    size_t n, i, j;

    o.id_offset = 118813760000ull - 1000; /* 10^4 * 26^5 - 1000 */
    n = sample(&o, &r);
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++)
            if (strcmp(r[i].id, r[j].id) == 0)
                FAIL("customerID %s repeats", r[i].id);
    ch_free(r);
    o.id_offset++;
    ch_buf_init(&b, 1 << 20);
    ASSERT_ERR(ch_sim_write(&o, buf_writer, NULL, &b, &err), CH_EINVAL);
    ch_buf_reset(&b);
}

/* ------------------------------------------------------------------ */
/* The reference population.                                           */
/* ------------------------------------------------------------------ */

TEST(marginals_resemble_telco)
{
    ch_sim_opts o = opts(100000, 21, CH_SIM_DRIFT_NONE);
    rec *r;
    size_t n = sample(&o, &r);
    size_t i;
    double tenure_mean = 0.0;

    ASSERT_NEAR(SHARE(r, n, churn, 1), 0.265, 0.01);
    ASSERT_NEAR(SHARE(r, n, contract, 0), 0.55, 0.02);
    ASSERT_NEAR(SHARE(r, n, inet, 1), 0.44, 0.02);
    ASSERT_NEAR(SHARE(r, n, pay, 0), 0.336, 0.02);
    ASSERT_NEAR(SHARE(r, n, senior, 1), 0.162, 0.01);
    ASSERT_NEAR(SHARE(r, n, phone, 1), 0.903, 0.01);
    ASSERT_NEAR(mean_mc(r, n), 64.8, 1.5);
    for (i = 0; i < n; i++)
        tenure_mean += r[i].tenure;
    ASSERT_NEAR(tenure_mean / (double)n, 32.4, 1.5);
    /* Bumps at both ends of tenure, as in the Telco file. */
    ASSERT(SHARE(r, n, tenure, 1) > 0.06);
    ASSERT(SHARE(r, n, tenure, 72) > 0.04);
    ASSERT(SHARE(r, n, tenure, 0) > 0.0005);
    /* The known directions of churn. */
    ASSERT(CHURN_WHERE(r, n, contract, 0) > 0.35);
    ASSERT(CHURN_WHERE(r, n, contract, 2) < 0.05);
    ASSERT(CHURN_WHERE(r, n, inet, 1) > CHURN_WHERE(r, n, inet, 0));
    ASSERT(CHURN_WHERE(r, n, pay, 0) > CHURN_WHERE(r, n, pay, 3));
    ASSERT(CHURN_WHERE(r, n, senior, 1) > CHURN_WHERE(r, n, senior, 0));
    ch_free(r);
}

/* ------------------------------------------------------------------ */
/* Drift scenarios: each changes what it claims and nothing else.      */
/* ------------------------------------------------------------------ */

/* Whether rows 'a' and 'b' agree on every field except those named. */
static int same_except(const rec *a, const rec *b, int pay, int charges, int churn)
{
    rec x = *a;
    rec y = *b;
    if (pay)
        x.pay = y.pay;
    if (charges) {
        x.mc = y.mc;
        x.tc = y.tc;
    }
    if (churn)
        x.churn = y.churn;
    return strcmp(x.id, y.id) == 0 && x.male == y.male && x.senior == y.senior &&
           x.partner == y.partner && x.dependents == y.dependents && x.tenure == y.tenure &&
           x.phone == y.phone && x.multi == y.multi && x.inet == y.inet &&
           memcmp(x.addon, y.addon, sizeof x.addon) == 0 && x.contract == y.contract &&
           x.paperless == y.paperless && x.pay == y.pay && x.mc == y.mc && x.tc == y.tc &&
           x.churn == y.churn;
}

TEST(drift_price)
{
    ch_sim_opts o = opts(50000, 8, CH_SIM_DRIFT_NONE);
    rec *base, *r;
    size_t n = sample(&o, &base);
    size_t i;
    double ratio;

    o.drift = CH_SIM_DRIFT_PRICE;
    sample(&o, &r);
    ratio = mean_mc(r, n) / mean_mc(base, n);
    ASSERT_NEAR(ratio, 1.15, 0.002);
    for (i = 0; i < n; i++) {
        /* Same customers; each price is the old one * 1.15 to the cent. */
        ASSERT(same_except(&base[i], &r[i], 0, 1, 1));
        ASSERT_INT_EQ(r[i].mc, (base[i].mc * 115 + 50) / 100);
        if (base[i].tc >= 0 && llabs(r[i].tc - base[i].tc * 115 / 100) > 2 + r[i].tenure)
            FAIL("row %zu: TotalCharges %lld, was %lld before the price rise", i,
                 (long long)r[i].tc, (long long)base[i].tc);
    }
    /* Dearer customers leave more often (the charges coefficient). */
    ASSERT(SHARE(r, n, churn, 1) > SHARE(base, n, churn, 1) + 0.01);
    ch_free(base);
    ch_free(r);
}

TEST(drift_fiber)
{
    ch_sim_opts o = opts(50000, 9, CH_SIM_DRIFT_NONE);
    rec *base, *r;
    size_t n = sample(&o, &base);
    size_t i;

    o.drift = CH_SIM_DRIFT_FIBER;
    sample(&o, &r);
    ASSERT_NEAR(SHARE(base, n, inet, 1), 0.44, 0.02);
    ASSERT_NEAR(SHARE(r, n, inet, 1), 0.65, 0.02);
    for (i = 0; i < n; i++) {
        /* Only moves towards fiber, never away from it. */
        if (base[i].inet == 1)
            ASSERT_INT_EQ(r[i].inet, 1);
        if (r[i].inet == base[i].inet)
            ASSERT(same_except(&base[i], &r[i], 0, 0, 0));
    }
    ch_free(base);
    ch_free(r);
}

TEST(drift_new_payment)
{
    ch_sim_opts o = opts(50000, 10, CH_SIM_DRIFT_NONE);
    rec *base, *r;
    size_t n = sample(&o, &base);
    size_t i;

    o.drift = CH_SIM_DRIFT_NEW_PAYMENT;
    sample(&o, &r);
    ASSERT_INT_EQ(SHARE(base, n, pay, 4), 0);
    ASSERT_NEAR(SHARE(r, n, pay, 4), 0.20, 0.01);
    for (i = 0; i < n; i++) {
        /* Only the shown method changes; labels keep the true method's effect. */
        ASSERT(same_except(&base[i], &r[i], r[i].pay == 4, 0, 0));
    }
    ch_free(base);
    ch_free(r);
}

TEST(drift_concept)
{
    ch_sim_opts o = opts(100000, 12, CH_SIM_DRIFT_NONE);
    rec *base, *r;
    size_t n = sample(&o, &base);
    size_t i;
    double gap_base, gap;

    o.drift = CH_SIM_DRIFT_CONCEPT;
    sample(&o, &r);
    for (i = 0; i < n; i++)
        ASSERT(same_except(&base[i], &r[i], 0, 0, 1)); /* same features */
    /* The overall rate is kept, the contract no longer holds customers. */
    ASSERT_NEAR(SHARE(r, n, churn, 1), SHARE(base, n, churn, 1), 0.01);
    gap_base = CHURN_WHERE(base, n, contract, 0) - CHURN_WHERE(base, n, contract, 2);
    gap = CHURN_WHERE(r, n, contract, 0) - CHURN_WHERE(r, n, contract, 2);
    ASSERT(gap_base > 0.35);
    ASSERT(gap < gap_base - 0.04);
    ASSERT(CHURN_WHERE(r, n, contract, 2) > 2 * CHURN_WHERE(base, n, contract, 2));
    ch_free(base);
    ch_free(r);
}

/* ------------------------------------------------------------------ */
/* Oracle AUC.                                                         */
/* ------------------------------------------------------------------ */

/* The churn log-odds without noise, from the CSV fields, with the
 * coefficients of docs/simulate.md. 'concept' drops the contract terms
 * and uses that scenario's intercept. */
static double reference_score(const rec *r, int concept)
{
    double ct_scale = concept ? 0.0 : 1.0;
    double s = concept ? 0.94 : -0.91;

    s += r->contract == 0 ? 2.25 * ct_scale : (r->contract == 1 ? 1.20 * ct_scale : 0.0);
    s += -0.90 * log1p((double)r->tenure);
    s += 0.85 * ((double)r->mc / 100.0 - 65.0) / 30.0;
    s += 0.30 * (r->inet == 1);
    s += 0.55 * (r->pay == 0);
    s += 0.45 * r->paperless;
    s += 0.35 * r->senior;
    s += -0.10 * r->partner;
    s += -0.25 * r->dependents;
    s += -0.45 * (r->addon[3] == 1);
    s += -0.50 * (r->addon[0] == 1);
    return s;
}

/* AUC by counting every positive/negative pair, ties counting one half. */
static double brute_auc(const rec *r, size_t n, int concept)
{
    double *s = ch_malloc_array(n, sizeof *s);
    double wins = 0.0;
    double pairs = 0.0;
    size_t i, j;

    ASSERT(s != NULL);
    for (i = 0; i < n; i++)
        s[i] = reference_score(&r[i], concept);
    for (i = 0; i < n; i++) {
        if (!r[i].churn)
            continue;
        for (j = 0; j < n; j++) {
            if (r[j].churn)
                continue;
            pairs += 1.0;
            wins += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
        }
    }
    ch_free(s);
    return wins / pairs;
}

TEST(oracle_auc_matches_reference)
{
    static const ch_sim_drift drifts[] = {CH_SIM_DRIFT_NONE, CH_SIM_DRIFT_PRICE, CH_SIM_DRIFT_FIBER,
                                          CH_SIM_DRIFT_CONCEPT};
    size_t d;

    for (d = 0; d < sizeof drifts / sizeof drifts[0]; d++) {
        ch_sim_opts o = opts(3000, 31 + d, drifts[d]);
        ch_error err;
        double auc, ref;
        rec *r;
        size_t n = sample(&o, &r);

        ASSERT_OK(ch_sim_oracle_auc(&o, &auc, &err));
        ref = brute_auc(r, n, drifts[d] == CH_SIM_DRIFT_CONCEPT);
        /* Equal up to rounding in the last bits of tied scores. */
        ASSERT_NEAR(auc, ref, 1e-6);
        ch_free(r);
    }
}

TEST(oracle_auc_in_documented_band)
{
    ch_sim_opts o = opts(200000, 42, CH_SIM_DRIFT_NONE);
    ch_error err;
    double auc, auc2, concept;

    ASSERT_OK(ch_sim_oracle_auc(&o, &auc, &err));
    ASSERT(auc >= 0.86 && auc <= 0.875);
    ASSERT_OK(ch_sim_oracle_auc(&o, &auc2, &err));
    ASSERT(auc == auc2); /* deterministic */
    o.drift = CH_SIM_DRIFT_CONCEPT;
    ASSERT_OK(ch_sim_oracle_auc(&o, &concept, &err));
    ASSERT(concept < auc - 0.01); /* contract explained much of the risk */
}

/* ------------------------------------------------------------------ */
/* Writers, files, progress, memory.                                   */
/* ------------------------------------------------------------------ */

typedef struct stop_ctx {
    int calls;
    int stop_at; /* call number that fails */
} stop_ctx;

static int stopping_writer(void *ctx, const char *data, size_t len)
{
    stop_ctx *s = ctx;
    (void)data;
    (void)len;
    return ++s->calls == s->stop_at;
}

TEST(writer_stop_is_eio)
{
    ch_sim_opts o = opts(30000, 1, CH_SIM_DRIFT_NONE); /* about 4 MiB: several chunks */
    ch_error err;
    stop_ctx s = {0, 1};

    ASSERT_ERR(ch_sim_write(&o, stopping_writer, NULL, &s, &err), CH_EIO);
    ASSERT_INT_EQ(err.code, CH_EIO);
    ASSERT_INT_EQ(s.calls, 1);
    s.calls = 0;
    s.stop_at = 2;
    ASSERT_ERR(ch_sim_write(&o, stopping_writer, NULL, &s, &err), CH_EIO);
    ASSERT_INT_EQ(s.calls, 2);
    s.calls = 0;
    s.stop_at = 1000;
    ASSERT_OK(ch_sim_write(&o, stopping_writer, NULL, &s, &err));
    ASSERT(s.calls >= 3); /* chunks of about 1 MiB, not one call per row */
    ASSERT(s.calls <= 6);
}

typedef struct prog_ctx {
    ch_buf out;
    uint64_t last;
    uint64_t total;
    int calls;
} prog_ctx;

static int prog_writer(void *ctx, const char *data, size_t len)
{
    return ch_buf_append(&((prog_ctx *)ctx)->out, data, len) == CH_OK ? 0 : 1;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    prog_ctx *p = ctx;
    if (done < p->last || done > total)
        FAIL("progress went from %llu to %llu of %llu", (unsigned long long)p->last,
             (unsigned long long)done, (unsigned long long)total);
    p->last = done;
    p->total = total;
    p->calls++;
}

TEST(progress_reaches_total)
{
    ch_sim_opts o = opts(200000, 1, CH_SIM_DRIFT_NONE);
    prog_ctx p = {{0}, 0, 0, 0};
    ch_error err;

    ch_buf_init(&p.out, TEXT_MAX);
    ASSERT_OK(ch_sim_write(&o, prog_writer, on_progress, &p, &err));
    ASSERT_INT_EQ(p.last, 200000);
    ASSERT_INT_EQ(p.total, 200000);
    ASSERT(p.calls >= 2);
    ch_buf_reset(&p.out);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ch_buf b;
    char tmp[65536];
    size_t got;
    char *text;

    ASSERT(f != NULL);
    ch_buf_init(&b, TEXT_MAX);
    while ((got = fread(tmp, 1, sizeof tmp, f)) > 0)
        ch_buf_append(&b, tmp, got);
    fclose(f);
    text = ch_buf_take(&b, len);
    ASSERT(text != NULL);
    return text;
}

TEST(write_file)
{
    ch_sim_opts o = opts(5000, 77, CH_SIM_DRIFT_FIBER);
    char path[600];
    ch_error err;
    size_t la, lb;
    char *a, *b;

    o.crlf = 1;
    snprintf(path, sizeof path, "%s/sim.csv", ch_test_tmpdir());
    ASSERT_OK(ch_sim_write_file(&o, path, NULL, NULL, &err));
    a = read_all(path, &la);
    b = gen(&o, &lb);
    ASSERT_INT_EQ(la, lb);
    ASSERT(memcmp(a, b, la) == 0);
    ch_free(a);
    ch_free(b);

    snprintf(path, sizeof path, "%s/no/such/dir/sim.csv", ch_test_tmpdir());
    ASSERT_ERR(ch_sim_write_file(&o, path, NULL, NULL, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "no/such/dir/sim.csv");
}

TEST(write_file_full_disk)
{
    /* A failed write removes a half-written regular file, but must leave a
     * device alone (as root, remove("/dev/full") deleted the node once). */
    ch_sim_opts o = opts(20000, 1, CH_SIM_DRIFT_NONE);
    ch_error err;
    struct stat st;

    if (stat("/dev/full", &st) != 0 || !S_ISCHR(st.st_mode))
        SKIP("no /dev/full device");
    ASSERT_ERR(ch_sim_write_file(&o, "/dev/full", NULL, NULL, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "/dev/full");
    ASSERT(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode));
}

TEST(out_of_memory)
{
    /* Fail each allocation in turn: every failure is CH_ENOMEM, and some
     * N lets the run through. */
    ch_sim_opts o = opts(2000, 1, CH_SIM_DRIFT_NONE);
    stop_ctx s = {0, -1};
    ch_error err;
    double auc;
    long n;
    int ok_write = 0;
    int ok_auc = 0;

    for (n = 1; n <= 20 && !(ok_write && ok_auc); n++) {
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_sim_write(&o, stopping_writer, NULL, &s, &err);
        if (rc == CH_OK)
            ok_write = 1;
        else
            ASSERT_INT_EQ(rc, CH_ENOMEM);
        ch_alloc_fail_after(n);
        rc = ch_sim_oracle_auc(&o, &auc, &err);
        if (rc == CH_OK)
            ok_auc = 1;
        else
            ASSERT_INT_EQ(rc, CH_ENOMEM);
        ch_alloc_fail_after(0);
    }
    ASSERT(ok_write);
    ASSERT(ok_auc);
}

/* The bank and plans layouts: headers, determinism, batches that join to
 * one file, distinct bank ids, churn rates and oracle AUCs in the bands
 * docs/simulate.md states, and the refusals (drift, id space). */
TEST(other_layouts)
{
    static const struct {
        ch_sim_layout layout;
        const char *header;
        double rate_lo, rate_hi, auc_lo, auc_hi;
    } cases[] = {
        {CH_SIM_LAYOUT_BANK, "RowNumber,CustomerId,Surname,", 0.14, 0.20, 0.77, 0.82},
        {CH_SIM_LAYOUT_PLANS, "State,Account length,Area code,", 0.10, 0.15, 0.78, 0.86},
    };
    ch_error err = {0};
    for (size_t c = 0; c < 2; c++) {
        ch_sim_opts o = opts(20000, 3, CH_SIM_DRIFT_NONE);
        ch_sim_opts half;
        size_t n1, n2, na, nb;
        char *all, *again, *a, *b;
        const char *p;
        long rows = 0, churned = 0;
        double auc;
        o.layout = cases[c].layout;
        all = gen(&o, &n1);
        again = gen(&o, &n2);
        ASSERT(n1 == n2 && memcmp(all, again, n1) == 0);
        ASSERT(strncmp(all, cases[c].header, strlen(cases[c].header)) == 0);
        half = o;
        half.n_rows = 10000;
        a = gen(&half, &na);
        half.id_offset = 10000;
        b = gen(&half, &nb);
        /* the second batch without its header line continues the first */
        ASSERT(na + nb - (size_t)(strchr(b, '\n') + 1 - b) == n1);
        ASSERT(memcmp(all, a, na) == 0);
        ASSERT(memcmp(all + na, strchr(b, '\n') + 1, nb - (size_t)(strchr(b, '\n') + 1 - b)) == 0);
        for (p = strchr(all, '\n') + 1; *p != '\0'; p = strchr(p, '\n') + 1) {
            const char *e = strchr(p, '\n');
            const char *last = e;
            while (last > p && last[-1] != ',')
                last--;
            rows++;
            churned += *last == '1' || *last == 'T';
        }
        ASSERT_INT_EQ(rows, 20000);
        if (!((double)churned / (double)rows >= cases[c].rate_lo &&
              (double)churned / (double)rows <= cases[c].rate_hi))
            FAIL("layout %s: churn rate %.4f", ch_sim_layout_name(o.layout),
                 (double)churned / (double)rows);
        ASSERT_OK(ch_sim_oracle_auc(&o, &auc, &err));
        if (!(auc >= cases[c].auc_lo && auc <= cases[c].auc_hi))
            FAIL("layout %s: oracle AUC %.4f", ch_sim_layout_name(o.layout), auc);
        if (o.layout == CH_SIM_LAYOUT_BANK) {
            /* CustomerId (field 2) is distinct on every row. */
            long *ids = ch_malloc_array(20000, sizeof *ids);
            long k = 0;
            ASSERT(ids != NULL);
            for (p = strchr(all, '\n') + 1; *p != '\0'; p = strchr(p, '\n') + 1)
                ids[k++] = strtol(strchr(p, ',') + 1, NULL, 10);
            for (long x = 0; x < k; x++)
                for (long y = x + 1; y < k && y < x + 2000; y++)
                    ASSERT(ids[x] != ids[y]);
            ch_free(ids);
        }
        o.drift = CH_SIM_DRIFT_PRICE;
        ASSERT_ERR(ch_sim_opts_check(&o, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, "telco layout only");
        ch_free(all);
        ch_free(again);
        ch_free(a);
        ch_free(b);
    }
    {
        ch_sim_opts o = opts(2, 1, CH_SIM_DRIFT_NONE);
        ch_sim_layout l;
        o.layout = CH_SIM_LAYOUT_BANK;
        o.id_offset = 10000000 - 1;
        ASSERT_ERR(ch_sim_opts_check(&o, &err), CH_EINVAL);
        o.id_offset = 10000000 - 2;
        ASSERT_OK(ch_sim_opts_check(&o, &err));
        ASSERT(ch_sim_layout_parse("plans", &l) == 0 && l == CH_SIM_LAYOUT_PLANS);
        ASSERT(ch_sim_layout_parse("Bank", &l) != 0);
        ASSERT_STR_EQ(ch_sim_layout_name(CH_SIM_LAYOUT_TELCO), "telco");
    }
}

TEST_MAIN(T(defaults), T(drift_names), T(bad_options), T(zero_rows_is_header_only),
          T(header_fields_and_domains), T(deterministic), T(unique_ids_across_batches),
          T(ids_at_the_end_of_the_id_space), T(marginals_resemble_telco), T(drift_price),
          T(drift_fiber), T(drift_new_payment), T(drift_concept), T(oracle_auc_matches_reference),
          T(oracle_auc_in_documented_band), T(writer_stop_is_eio), T(progress_reaches_total),
          T(write_file), T(write_file_full_disk), T(out_of_memory), T(other_layouts))
