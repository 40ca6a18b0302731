/*
 * test_model_linear.c -- the "logreg" family (liblinear), through
 * include/ch/model.h only.
 *
 * The reference is a slow, obviously-correct Newton-Raphson solver written
 * here for the objective liblinear minimizes with L2R_LR and bias 1:
 *     0.5 * ||[w, b]||^2 + C * sum_i cw(y_i) * log(1 + exp(-s_i (w.x_i + b)))
 * (the intercept regularized like a weight, s_i = +1 for class 1, -1 for
 * class 0). It forms the full Hessian and solves with Cholesky. liblinear
 * stops at a gradient norm relative to the starting one ('eps'), so the
 * comparisons use eps = 1e-8 and a tolerance of 1e-6 on coefficients, and
 * 1e-3 at the default eps of 1e-4.
 *
 * Data are synthetic, from a seeded generator: Gaussian features, one 0/1
 * feature (so exact zeros are skipped in liblinear's sparse rows), labels
 * drawn from a known logistic model.
 */
#include <pthread.h>
#include <stdint.h>

#include "ch/alloc.h"
#include "ch/json.h"
#include "ch/model.h"
#include "ch/split.h"
#include "../harness.h"

#define NF 5

/* A synthetic set; arrays owned (free with free_data). */
typedef struct data {
    double *x; /* n x NF, row-major */
    double *y;
    double *w; /* NULL or n weights */
    size_t n;
} data;

static double uniform01(ch_rng *r)
{
    return ((double)(ch_rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

static double gauss(ch_rng *r)
{
    double u = uniform01(r);
    double v = uniform01(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* 'n' rows from a logistic model; the first row has label 'first'. */
static data make_data(size_t n, uint64_t seed, int first)
{
    static const double beta[NF] = {1.5, -2.0, 0.5, 0.0, 1.0};
    data d = {ch_malloc_array(n, NF * sizeof(double)), ch_malloc_array(n, sizeof(double)), NULL, n};
    ch_rng r;
    ASSERT(d.x != NULL && d.y != NULL);
    ch_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        double m = -0.7;
        for (size_t j = 0; j < NF; j++) {
            double v = j == 3 ? (double)(ch_rng_below(&r, 2)) : gauss(&r);
            d.x[i * NF + j] = v;
            m += beta[j] * v;
        }
        d.y[i] = uniform01(&r) < ch_sigmoid(m) ? 1.0 : 0.0;
    }
    /* Move the first row of class 'first' to the top. */
    for (size_t i = 0; i < n; i++) {
        if (d.y[i] == (double)first) {
            for (size_t j = 0; j < NF; j++) {
                double t = d.x[j];
                d.x[j] = d.x[i * NF + j];
                d.x[i * NF + j] = t;
            }
            d.y[i] = d.y[0];
            d.y[0] = (double)first;
            break;
        }
    }
    return d;
}

static void free_data(data *d)
{
    ch_free(d->x);
    ch_free(d->y);
    ch_free(d->w);
}

static ch_dataset as_set(const data *d)
{
    return (ch_dataset){d->x, d->y, d->w, d->n, NF};
}

/* Solves A z = g in place (A is k x k symmetric positive definite,
 * overwritten by its Cholesky factor; g becomes z). */
static void cholesky_solve(double *A, double *g, size_t k)
{
    for (size_t j = 0; j < k; j++) {
        double s = A[j * k + j];
        for (size_t l = 0; l < j; l++)
            s -= A[j * k + l] * A[j * k + l];
        ASSERT(s > 0);
        A[j * k + j] = sqrt(s);
        for (size_t i = j + 1; i < k; i++) {
            double t = A[i * k + j];
            for (size_t l = 0; l < j; l++)
                t -= A[i * k + l] * A[j * k + l];
            A[i * k + j] = t / A[j * k + j];
        }
    }
    for (size_t i = 0; i < k; i++) {
        for (size_t l = 0; l < i; l++)
            g[i] -= A[i * k + l] * g[l];
        g[i] /= A[i * k + i];
    }
    for (size_t i = k; i-- > 0;) {
        for (size_t l = i + 1; l < k; l++)
            g[i] -= A[l * k + i] * g[l];
        g[i] /= A[i * k + i];
    }
}

/* The objective above at 'th' (NF weights, then the intercept). */
static double objective(const data *d, double C, const double *th)
{
    double f = 0;
    for (size_t j = 0; j <= NF; j++)
        f += 0.5 * th[j] * th[j];
    for (size_t i = 0; i < d->n; i++) {
        double m = th[NF];
        double cw = d->w != NULL ? d->w[i] : 1.0;
        for (size_t j = 0; j < NF; j++)
            m += th[j] * d->x[i * NF + j];
        m = d->y[i] == 1.0 ? -m : m; /* log(1 + exp(m)) */
        f += C * cw * (m > 0 ? m + log1p(exp(-m)) : log1p(exp(m)));
    }
    return f;
}

/* Newton-Raphson with step halving on the objective; 'th' gets NF weights
 * and the intercept. */
static void reference_fit(const data *d, double C, double *th)
{
    enum { K = NF + 1 };
    for (size_t j = 0; j < K; j++)
        th[j] = 0;
    for (int it = 0; it < 100; it++) {
        double g[K];
        double H[K * K];
        double gn = 0;
        double f0 = objective(d, C, th);
        double step = 1;
        for (size_t a = 0; a < K; a++) {
            g[a] = th[a];
            for (size_t b = 0; b < K; b++)
                H[a * K + b] = a == b ? 1.0 : 0.0;
        }
        for (size_t i = 0; i < d->n; i++) {
            double xt[K];
            double m = 0;
            double cw = d->w != NULL ? d->w[i] : 1.0;
            double p;
            for (size_t j = 0; j < NF; j++)
                xt[j] = d->x[i * NF + j];
            xt[NF] = 1.0;
            for (size_t j = 0; j < K; j++)
                m += th[j] * xt[j];
            p = ch_sigmoid(m);
            for (size_t a = 0; a < K; a++) {
                g[a] += C * cw * (p - d->y[i]) * xt[a];
                for (size_t b = 0; b < K; b++)
                    H[a * K + b] += C * cw * p * (1 - p) * xt[a] * xt[b];
            }
        }
        for (size_t a = 0; a < K; a++)
            gn += g[a] * g[a];
        if (sqrt(gn) < 1e-11)
            return;
        cholesky_solve(H, g, K);
        for (;;) {
            double t[K];
            for (size_t a = 0; a < K; a++)
                t[a] = th[a] - step * g[a];
            if (objective(d, C, t) <= f0 || step < 1e-12) {
                for (size_t a = 0; a < K; a++)
                    th[a] = t[a];
                break;
            }
            step *= 0.5;
        }
    }
}

/* Recovers the weights and intercept of a fitted model from its margins
 * at the origin and at unit vectors (the model is linear). */
static void coefficients(const ch_model *m, double *th)
{
    double x[(NF + 1) * NF] = {0};
    double out[NF + 1];
    for (size_t j = 0; j < NF; j++)
        x[(j + 1) * NF + j] = 1.0;
    ASSERT_OK(ch_model_predict_margin(m, x, NF + 1, NF, out, NULL));
    th[NF] = out[0];
    for (size_t j = 0; j < NF; j++)
        th[j] = out[j + 1] - out[0];
}

static ch_model *fit(const data *d, double C, double eps)
{
    ch_params p = {0};
    ch_dataset set = as_set(d);
    ch_model *m = NULL;
    ch_error err = {0};
    ch_err rc;
    ASSERT(ch_params_set(&p, "C", C) == 0);
    if (eps > 0)
        ASSERT(ch_params_set(&p, "eps", eps) == 0);
    rc = ch_model_fit(&ch_model_logreg, &p, &set, NULL, &m, NULL, &err);
    if (rc != CH_OK)
        FAIL("fit: %s: %s", ch_strerror(rc), err.msg);
    return m;
}

static void compare_to_reference(const data *d, double C, double eps, double tol)
{
    double ref[NF + 1];
    double got[NF + 1];
    ch_model *m = fit(d, C, eps);
    reference_fit(d, C, ref);
    coefficients(m, got);
    for (size_t j = 0; j <= NF; j++)
        if (!(fabs(got[j] - ref[j]) <= tol))
            FAIL("C=%g eps=%g coefficient %zu: liblinear %.12g, reference %.12g (tol %g)", C, eps,
                 j, got[j], ref[j], tol);
    ch_model_free(m);
}

TEST(matches_newton_reference)
{
    static const double Cs[] = {0.01, 1.0, 100.0};
    data d = make_data(600, 11, 1);
    for (size_t k = 0; k < sizeof Cs / sizeof Cs[0]; k++) {
        compare_to_reference(&d, Cs[k], 1e-8, 1e-6);
        compare_to_reference(&d, Cs[k], 0, 1e-3); /* default eps 1e-4 */
    }
    free_data(&d);
}

/* liblinear orders classes by first appearance; the margin must be
 * positive for class 1 whichever comes first. */
TEST(margin_sign_for_both_label_orders)
{
    for (int first = 0; first <= 1; first++) {
        data d = make_data(500, 23, first);
        ch_model *m = fit(&d, 1.0, 1e-8);
        double *out = ch_malloc_array(d.n, sizeof *out);
        double agree = 0;
        ASSERT(out != NULL);
        ASSERT(d.y[0] == (double)first);
        compare_to_reference(&d, 1.0, 1e-8, 1e-6);
        ASSERT_OK(ch_model_predict_margin(m, d.x, d.n, NF, out, NULL));
        for (size_t i = 0; i < d.n; i++)
            agree += (out[i] > 0) == (d.y[i] == 1.0);
        /* The generating model separates about 85% of the rows. */
        if (agree / (double)d.n < 0.75)
            FAIL("first label %d: accuracy %.3f", first, agree / (double)d.n);
        ch_free(out);
        ch_model_free(m);
        free_data(&d);
    }
}

TEST(class_weights_move_the_intercept)
{
    data d = make_data(600, 5, 0);
    double base[NF + 1];
    double up[NF + 1];
    double down[NF + 1];
    ch_model *m = fit(&d, 1.0, 1e-8);
    coefficients(m, base);
    ch_model_free(m);

    d.w = ch_malloc_array(d.n, sizeof *d.w);
    ASSERT(d.w != NULL);
    for (size_t i = 0; i < d.n; i++)
        d.w[i] = d.y[i] == 1.0 ? 3.0 : 1.0;
    compare_to_reference(&d, 1.0, 1e-8, 1e-6);
    m = fit(&d, 1.0, 1e-8);
    coefficients(m, up);
    ch_model_free(m);

    for (size_t i = 0; i < d.n; i++)
        d.w[i] = d.y[i] == 1.0 ? 0.5 : 2.5;
    compare_to_reference(&d, 1.0, 1e-8, 1e-6);
    m = fit(&d, 1.0, 1e-8);
    coefficients(m, down);
    ch_model_free(m);

    if (!(up[NF] > base[NF] + 0.5 && down[NF] < base[NF] - 0.5))
        FAIL("intercepts: unweighted %g, positives x3 %g, negatives x5 %g", base[NF], up[NF],
             down[NF]);
    free_data(&d);
}

TEST(row_weights_must_be_constant_within_a_class)
{
    data d = make_data(200, 7, 1);
    ch_dataset set;
    ch_params p = {0};
    ch_model *m = NULL;
    ch_error err = {0};
    d.w = ch_malloc_array(d.n, sizeof *d.w);
    ASSERT(d.w != NULL);
    for (size_t i = 0; i < d.n; i++)
        d.w[i] = d.y[i] == 1.0 ? 2.0 : 1.0;
    d.w[d.n - 1] *= 1.5;
    set = as_set(&d);
    ASSERT_ERR(ch_model_fit(&ch_model_logreg, &p, &set, NULL, &m, NULL, &err), CH_EINVAL);
    ASSERT_CONTAINS(err.msg, "logreg supports class weights only: row weights must be equal "
                             "within each class");
    ASSERT(m == NULL);
    free_data(&d);
}

TEST(bad_parameters_are_rejected)
{
    static const struct {
        const char *name;
        double value;
    } bad[] = {{"C", 0.0}, {"C", -1.0}, {"eps", 0.0}, {"eps", -1e-3}, {"c", 1.0}, {"l2", 1.0}};
    data d = make_data(100, 3, 1);
    ch_dataset set = as_set(&d);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ch_params p = {0};
        ch_model *m = NULL;
        ch_error err = {0};
        ASSERT(ch_params_set(&p, bad[k].name, bad[k].value) == 0);
        ASSERT_ERR(ch_model_logreg.check(&p, &err), CH_EINVAL);
        ASSERT_ERR(ch_model_fit(&ch_model_logreg, &p, &set, NULL, &m, NULL, &err), CH_EINVAL);
        ASSERT_CONTAINS(err.msg, bad[k].name);
    }
    {
        ch_params p = {0};
        ASSERT(ch_params_set(&p, "C", 0.5) == 0);
        ASSERT(ch_params_set(&p, "eps", 1e-3) == 0);
        ASSERT_OK(ch_model_logreg.check(&p, NULL));
    }
    ASSERT(ch_model_logreg.wants_standardized == 1);
    ASSERT(ch_model_logreg.size_param == NULL);
    ASSERT_STR_EQ(ch_model_logreg.name, "logreg");
    free_data(&d);
}

TEST(fit_is_deterministic_and_reports_no_iterations)
{
    data d = make_data(400, 9, 0);
    ch_dataset set = as_set(&d);
    ch_params p = {0};
    ch_model_fit_info info;
    ch_model *a = NULL;
    ch_model *b = NULL;
    double *ma = ch_malloc_array(d.n, sizeof *ma);
    double *mb = ch_malloc_array(d.n, sizeof *mb);
    ASSERT(ma != NULL && mb != NULL);
    ASSERT_OK(ch_model_fit(&ch_model_logreg, &p, &set, NULL, &a, &info, NULL));
    ASSERT(info.best_iteration == 0);
    ASSERT(isnan(info.valid_loss));
    ASSERT_OK(ch_model_fit(&ch_model_logreg, &p, &set, NULL, &b, NULL, NULL));
    ASSERT_OK(ch_model_predict_margin(a, d.x, d.n, NF, ma, NULL));
    ASSERT_OK(ch_model_predict_margin(b, d.x, d.n, NF, mb, NULL));
    ASSERT(memcmp(ma, mb, d.n * sizeof *ma) == 0);
    ASSERT_ERR(ch_model_predict_margin(a, d.x, d.n, NF - 1, ma, NULL), CH_EINVAL);
    ch_free(ma);
    ch_free(mb);
    ch_model_free(a);
    ch_model_free(b);
    free_data(&d);
}

TEST(json_round_trip_is_bit_identical)
{
    data d = make_data(300, 13, 1);
    ch_model *m = fit(&d, 0.3, 0);
    ch_model *back = NULL;
    ch_buf b;
    ch_json *doc = NULL;
    ch_error err = {0};
    double *m1 = ch_malloc_array(d.n, sizeof *m1);
    double *m2 = ch_malloc_array(d.n, sizeof *m2);
    ASSERT(m1 != NULL && m2 != NULL);
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_model_to_json(m, &b));
    ASSERT_CONTAINS(b.data, "\"n_features\": 5");
    ASSERT_OK(ch_json_parse(b.data, b.len, &doc, &err));
    ASSERT_OK(ch_model_from_json(doc, NF, &back, &err));
    ASSERT_OK(ch_model_predict_margin(m, d.x, d.n, NF, m1, NULL));
    ASSERT_OK(ch_model_predict_margin(back, d.x, d.n, NF, m2, NULL));
    ASSERT(memcmp(m1, m2, d.n * sizeof *m1) == 0);
    ASSERT_NEAR(ch_model_params(back)->values[0], 0.3, 0);
    /* Saving the loaded model gives the same text. */
    {
        ch_buf b2;
        ch_buf_init(&b2, 1 << 20);
        ASSERT_OK(ch_model_to_json(back, &b2));
        ASSERT_STR_EQ(b.data, b2.data);
        ch_buf_reset(&b2);
    }
    ASSERT_ERR(ch_model_from_json(doc, NF + 1, &back, &err), CH_EMODEL);
    ch_json_free(doc);
    ch_buf_reset(&b);
    ch_free(m1);
    ch_free(m2);
    ch_model_free(m);
    ch_model_free(back);
    free_data(&d);
}

TEST(load_rejects_malformed_state)
{
    static const char *const bad[] = {
        "[1, 2]",
        "{\"w\": [1, 2], \"b\": 0}",
        "{\"w\": [1, 2], \"b\": 0, \"n_features\": 3}",
        "{\"w\": [1, \"x\"], \"b\": 0, \"n_features\": 2}",
        "{\"w\": [1, 2], \"b\": null, \"n_features\": 2}",
        "{\"w\": [1, 2], \"b\": 0, \"n_features\": 2.5}",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ch_json *doc = NULL;
        void *state = NULL;
        ch_error err = {0};
        ASSERT_OK(ch_json_parse(bad[k], strlen(bad[k]), &doc, NULL));
        ASSERT_ERR(ch_model_logreg.load(doc, 2, &state, &err), CH_EFORMAT);
        ASSERT(state == NULL);
        ch_json_free(doc);
    }
}

/* Two threads score the same model and must agree with one thread. */
typedef struct job {
    const ch_model *m;
    const data *d;
    const double *expect;
    int ok;
} job;

static void *score_loop(void *arg)
{
    job *j = arg;
    double *out = ch_malloc_array(j->d->n, sizeof *out);
    j->ok = out != NULL;
    for (int rep = 0; rep < 200 && j->ok; rep++) {
        if (ch_model_predict_margin(j->m, j->d->x, j->d->n, NF, out, NULL) != CH_OK ||
            memcmp(out, j->expect, j->d->n * sizeof *out) != 0)
            j->ok = 0;
    }
    ch_free(out);
    return NULL;
}

TEST(predict_is_thread_safe)
{
    data d = make_data(1000, 17, 1);
    ch_model *m = fit(&d, 1.0, 0);
    double *expect = ch_malloc_array(d.n, sizeof *expect);
    pthread_t t[2];
    job jobs[2];
    ASSERT(expect != NULL);
    ASSERT_OK(ch_model_predict_margin(m, d.x, d.n, NF, expect, NULL));
    for (int k = 0; k < 2; k++) {
        jobs[k] = (job){m, &d, expect, 0};
        ASSERT(pthread_create(&t[k], NULL, score_loop, &jobs[k]) == 0);
    }
    for (int k = 0; k < 2; k++) {
        ASSERT(pthread_join(t[k], NULL) == 0);
        ASSERT(jobs[k].ok);
    }
    ch_free(expect);
    ch_model_free(m);
    free_data(&d);
}

/* Fits running in two threads at once (as a parameter search runs them,
 * here before any other fit in the process) give the model a sequential
 * fit gives. */
typedef struct fit_job {
    const data *d;
    double *first; /* margins of the thread's first fit */
    int ok;
} fit_job;

static void *fit_loop(void *arg)
{
    fit_job *j = arg;
    ch_dataset set = as_set(j->d);
    ch_params p = {0};
    double *out = ch_malloc_array(j->d->n, sizeof *out);
    j->ok = out != NULL && j->first != NULL;
    for (int rep = 0; rep < 20 && j->ok; rep++) {
        ch_model *m = NULL;
        if (ch_model_fit(&ch_model_logreg, &p, &set, NULL, &m, NULL, NULL) != CH_OK ||
            ch_model_predict_margin(m, j->d->x, j->d->n, NF, rep == 0 ? j->first : out, NULL) !=
                CH_OK ||
            (rep > 0 && memcmp(out, j->first, j->d->n * sizeof *out) != 0))
            j->ok = 0;
        ch_model_free(m);
    }
    ch_free(out);
    return NULL;
}

TEST(concurrent_fits_agree)
{
    data d = make_data(500, 29, 0);
    pthread_t t[2];
    fit_job jobs[2];
    ch_model *m;
    double *expect = ch_malloc_array(d.n, sizeof *expect);
    ASSERT(expect != NULL);
    for (int k = 0; k < 2; k++) {
        jobs[k] = (fit_job){&d, ch_malloc_array(d.n, sizeof(double)), 0};
        ASSERT(pthread_create(&t[k], NULL, fit_loop, &jobs[k]) == 0);
    }
    for (int k = 0; k < 2; k++) {
        ASSERT(pthread_join(t[k], NULL) == 0);
        ASSERT(jobs[k].ok);
    }
    m = fit(&d, 1.0, 0);
    ASSERT_OK(ch_model_predict_margin(m, d.x, d.n, NF, expect, NULL));
    for (int k = 0; k < 2; k++) {
        ASSERT(memcmp(jobs[k].first, expect, d.n * sizeof *expect) == 0);
        ch_free(jobs[k].first);
    }
    ch_free(expect);
    ch_model_free(m);
    free_data(&d);
}

/* Every failed allocation in fit and load returns CH_ENOMEM and leaks
 * nothing (run under valgrind or ASan to see the second half). */
TEST(out_of_memory)
{
    data d = make_data(100, 19, 0);
    ch_dataset set = as_set(&d);
    ch_params p = {0};
    ch_model *m = NULL;
    ch_buf b;
    ch_json *doc = NULL;
    long total;

    ch_alloc_fail_after(0);
    ASSERT_OK(ch_model_fit(&ch_model_logreg, &p, &set, NULL, &m, NULL, NULL));
    total = ch_alloc_count();
    ASSERT(total >= 4);
    for (long n = 1; n <= total; n++) {
        ch_model *x = NULL;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_model_fit(&ch_model_logreg, &p, &set, NULL, &x, NULL, NULL);
        ch_alloc_fail_after(0);
        if (rc != CH_ENOMEM)
            FAIL("fit, allocation %ld of %ld: got %s", n, total, ch_strerror(rc));
        ASSERT(x == NULL);
    }
    ch_buf_init(&b, 1 << 20);
    ASSERT_OK(ch_model_to_json(m, &b));
    ASSERT_OK(ch_json_parse(b.data, b.len, &doc, NULL));
    ch_alloc_fail_after(0);
    {
        ch_model *x = NULL;
        ASSERT_OK(ch_model_from_json(doc, NF, &x, NULL));
        ch_model_free(x);
    }
    total = ch_alloc_count();
    for (long n = 1; n <= total; n++) {
        ch_model *x = NULL;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_model_from_json(doc, NF, &x, NULL);
        ch_alloc_fail_after(0);
        if (rc != CH_ENOMEM)
            FAIL("load, allocation %ld of %ld: got %s", n, total, ch_strerror(rc));
        ASSERT(x == NULL);
    }
    ch_json_free(doc);
    ch_buf_reset(&b);
    ch_model_free(m);
    free_data(&d);
}

TEST_MAIN(T(matches_newton_reference), T(margin_sign_for_both_label_orders),
          T(class_weights_move_the_intercept), T(row_weights_must_be_constant_within_a_class),
          T(bad_parameters_are_rejected), T(fit_is_deterministic_and_reports_no_iterations),
          T(json_round_trip_is_bit_identical), T(load_rejects_malformed_state),
          T(predict_is_thread_safe), T(concurrent_fits_agree), T(out_of_memory))
