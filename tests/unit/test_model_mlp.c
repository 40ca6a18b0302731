/*
 * test_model_mlp.c -- the "mlp" family, through include/ch/model.h, plus
 * the training objective through src/lib/model_mlp_int.h for the gradient
 * check (the only internal the test reaches).
 *
 * Data are synthetic, from a seeded generator. The nonlinear case is XOR
 * on two uniform features plus two noise features: no linear model can
 * rank it (logistic regression's AUC is about 0.5), a small network can.
 * AUC is computed here by the obviously-correct pairwise count.
 *
 * Tolerances: the gradient is compared with central differences (step
 * 1e-5) within 1e-6 relative, with an absolute floor of 1e-10 for
 * components that are essentially zero. Everything about seeds and saved
 * models is compared bit for bit.
 */
#include <pthread.h>
#include <stdint.h>

#include "ch/alloc.h"
#include "ch/json.h"
#include "ch/model.h"
#include "ch/split.h"
#include "../../src/lib/model_mlp_int.h"
#include "../harness.h"

/* A synthetic set; arrays owned (free with free_data). */
typedef struct data {
    double *x; /* n x nf, row-major */
    double *y;
    double *w; /* NULL or n weights */
    size_t n;
    size_t nf;
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

static data alloc_data(size_t n, size_t nf)
{
    data d = {ch_malloc_array(n, nf * sizeof(double)), ch_malloc_array(n, sizeof(double)), NULL, n,
              nf};
    ASSERT(d.x != NULL && d.y != NULL);
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
    return (ch_dataset){d->x, d->y, d->w, d->n, d->nf};
}

/* XOR of the signs of two uniform features, plus two noise features. */
static data make_xor(size_t n, uint64_t seed)
{
    data d = alloc_data(n, 4);
    ch_rng r;
    ch_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        double *x = d.x + i * 4;
        for (size_t j = 0; j < 4; j++)
            x[j] = 2.0 * uniform01(&r) - 1.0;
        d.y[i] = x[0] * x[1] > 0 ? 1.0 : 0.0;
    }
    return d;
}

/* A weak linear signal in 'nf' Gaussian features with label noise: easy
 * to overfit with a few hundred rows. */
static data make_noisy(size_t n, size_t nf, uint64_t seed)
{
    data d = alloc_data(n, nf);
    ch_rng r;
    ch_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        double m = 0;
        for (size_t j = 0; j < nf; j++) {
            d.x[i * nf + j] = gauss(&r);
            m += (j < 3 ? 0.6 : 0.0) * d.x[i * nf + j];
        }
        d.y[i] = uniform01(&r) < ch_sigmoid(m) ? 1.0 : 0.0;
    }
    return d;
}

/* ROC AUC by counting pairs: a tied pair counts one half. */
static double auc(const double *y, const double *s, size_t n)
{
    double hit = 0;
    double pairs = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] != 1.0)
            continue;
        for (size_t j = 0; j < n; j++) {
            if (y[j] != 0.0)
                continue;
            hit += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            pairs += 1;
        }
    }
    return hit / pairs;
}

/* Weighted mean log loss of margins 'm', written independently of the
 * library: -[y log p + (1 - y) log(1 - p)] with log p = -log(1 + e^-m). */
static double log_loss(const data *d, const double *m)
{
    double num = 0;
    double den = 0;
    for (size_t i = 0; i < d->n; i++) {
        double w = d->w != NULL ? d->w[i] : 1.0;
        double z = d->y[i] == 1.0 ? -m[i] : m[i];
        num += w * (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)));
        den += w;
    }
    return num / den;
}

static void set_param(ch_params *p, const char *name, double v)
{
    ASSERT(ch_params_set(p, name, v) == 0);
}

static ch_model *fit_mlp(const ch_params *p, const data *train, const data *valid, uint64_t seed,
                         ch_model_fit_info *info)
{
    ch_dataset tr = as_set(train);
    ch_dataset va;
    ch_model_fit_opts o = {seed, 1, NULL};
    ch_model *m = NULL;
    ch_error err = {0};
    ch_err rc;
    if (valid != NULL) {
        va = as_set(valid);
        o.valid = &va;
    }
    rc = ch_model_fit(&ch_model_mlp, p, &tr, &o, &m, info, &err);
    if (rc != CH_OK)
        FAIL("fit: %s: %s", ch_strerror(rc), err.msg);
    return m;
}

static double *margins(const ch_model *m, const data *d)
{
    double *out = ch_malloc_array(d->n, sizeof *out);
    ASSERT(out != NULL);
    ASSERT_OK(ch_model_predict_margin(m, d->x, d->n, d->nf, out, NULL));
    return out;
}

/* The saved model as text (caller frees). */
static char *to_json(const ch_model *m)
{
    ch_buf b;
    char *s;
    ch_buf_init(&b, 1 << 24);
    ASSERT_OK(ch_model_to_json(m, &b));
    s = ch_buf_take(&b, NULL);
    ASSERT(s != NULL);
    return s;
}

static ch_model *from_json(const char *text, size_t n_features)
{
    ch_json *doc = NULL;
    ch_model *m = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_json_parse(text, strlen(text), &doc, &err));
    if (ch_model_from_json(doc, n_features, &m, &err) != CH_OK)
        FAIL("load: %s", err.msg);
    ch_json_free(doc);
    return m;
}

TEST(learns_xor_that_logreg_cannot)
{
    data tr = make_xor(1500, 1);
    data va = make_xor(500, 2);
    data te = make_xor(1000, 3);
    ch_dataset set = as_set(&tr);
    ch_params lp = {0};
    ch_model *lin = NULL;
    double *ml;
    double lin_auc;

    ASSERT_OK(ch_model_fit(&ch_model_logreg, &lp, &set, NULL, &lin, NULL, NULL));
    ml = margins(lin, &te);
    lin_auc = auc(te.y, ml, te.n);
    if (fabs(lin_auc - 0.5) > 0.1)
        FAIL("logistic regression on XOR: AUC %.3f, expected about 0.5", lin_auc);
    ch_free(ml);
    ch_model_free(lin);

    /* One tanh layer, then two ReLU layers. */
    for (int k = 0; k < 2; k++) {
        ch_params p = {0};
        ch_model_fit_info info;
        ch_model *m;
        double *mm;
        double a;
        set_param(&p, "hidden", 16);
        if (k == 1) {
            set_param(&p, "hidden2", 8);
            set_param(&p, "activation", 1);
        }
        m = fit_mlp(&p, &tr, &va, 7, &info);
        mm = margins(m, &te);
        a = auc(te.y, mm, te.n);
        if (!(a > 0.95))
            FAIL("mlp (%s) on XOR: AUC %.4f after %g epochs, logreg %.3f",
                 k == 0 ? "tanh" : "2 x relu", a, info.best_iteration, lin_auc);
        ch_free(mm);
        ch_model_free(m);
    }
    free_data(&tr);
    free_data(&va);
    free_data(&te);
}

TEST(early_stopping_keeps_the_best_epoch)
{
    data tr = make_noisy(200, 12, 11);
    data va = make_noisy(400, 12, 12);
    ch_params p = {0};
    ch_model_fit_info info;
    ch_model *m;
    ch_model *back;
    ch_model *refit;
    ch_model *full;
    char *text;
    double *mv;
    double *mr;
    double *mf;
    double loss;

    set_param(&p, "hidden", 64);
    set_param(&p, "l2", 0);
    set_param(&p, "batch", 32);
    set_param(&p, "epochs", 300);
    set_param(&p, "patience", 10);
    m = fit_mlp(&p, &tr, &va, 5, &info);
    if (!(info.best_iteration >= 1 && info.best_iteration < 300 - 10))
        FAIL("best_iteration %g: expected an early stop", info.best_iteration);
    ASSERT(isfinite(info.valid_loss));

    /* The reported loss is the saved model's loss on the validation set. */
    text = to_json(m);
    back = from_json(text, tr.nf);
    mv = margins(back, &va);
    loss = log_loss(&va, mv);
    if (loss != info.valid_loss)
        FAIL("validation loss recomputed %.17g, reported %.17g", loss, info.valid_loss);

    /* The kept weights are those after best_iteration epochs: a fit of
     * exactly that many epochs without a validation set gives the same
     * model, bit for bit. */
    set_param(&p, "epochs", info.best_iteration);
    refit = fit_mlp(&p, &tr, NULL, 5, NULL);
    mr = margins(refit, &va);
    ASSERT(memcmp(mv, mr, va.n * sizeof *mv) == 0);

    /* And training on to the end overfits: a worse validation loss. */
    set_param(&p, "epochs", 300);
    full = fit_mlp(&p, &tr, NULL, 5, NULL);
    mf = margins(full, &va);
    if (!(log_loss(&va, mf) > info.valid_loss))
        FAIL("300 epochs: validation loss %.6f, early stop %.6f", log_loss(&va, mf),
             info.valid_loss);

    ch_free(text);
    ch_free(mv);
    ch_free(mr);
    ch_free(mf);
    ch_model_free(m);
    ch_model_free(back);
    ch_model_free(refit);
    ch_model_free(full);
    free_data(&tr);
    free_data(&va);
}

TEST(without_validation_runs_all_epochs)
{
    data tr = make_noisy(100, 3, 4);
    ch_params p = {0};
    ch_model_fit_info info;
    ch_model *m;
    set_param(&p, "epochs", 7);
    m = fit_mlp(&p, &tr, NULL, 1, &info);
    ASSERT_INT_EQ(info.best_iteration, 7);
    ASSERT(isnan(info.valid_loss));
    ASSERT_STR_EQ(ch_model_mlp.size_param, "epochs");
    ASSERT(ch_model_mlp.wants_standardized == 1);
    ch_model_free(m);
    free_data(&tr);
}

TEST(same_seed_gives_identical_weights)
{
    data tr = make_xor(300, 21);
    data va = make_xor(100, 22);
    ch_params p = {0};
    ch_model *a;
    ch_model *b;
    ch_model *c;
    char *ta;
    char *tb;
    char *tc;
    set_param(&p, "hidden", 8);
    set_param(&p, "hidden2", 4);
    set_param(&p, "epochs", 30);
    a = fit_mlp(&p, &tr, &va, 99, NULL);
    b = fit_mlp(&p, &tr, &va, 99, NULL);
    c = fit_mlp(&p, &tr, &va, 100, NULL);
    ta = to_json(a);
    tb = to_json(b);
    tc = to_json(c);
    ASSERT_STR_EQ(ta, tb);
    ASSERT(strcmp(ta, tc) != 0);
    ch_free(ta);
    ch_free(tb);
    ch_free(tc);
    ch_model_free(a);
    ch_model_free(b);
    ch_model_free(c);
    free_data(&tr);
    free_data(&va);
}

TEST(json_round_trip_is_bit_identical)
{
    data tr = make_xor(300, 31);
    for (int k = 0; k < 2; k++) {
        ch_params p = {0};
        ch_model *m;
        ch_model *back;
        char *t1;
        char *t2;
        double *m1;
        double *m2;
        ch_json *doc = NULL;
        ch_model *bad = NULL;
        set_param(&p, "hidden", 6);
        set_param(&p, "epochs", 10);
        if (k == 1) {
            set_param(&p, "hidden2", 3);
            set_param(&p, "activation", 1);
        }
        m = fit_mlp(&p, &tr, NULL, 3, NULL);
        t1 = to_json(m);
        ASSERT_CONTAINS(t1, k == 0 ? "\"hidden\": [6]" : "\"hidden\": [6, 3]");
        ASSERT_CONTAINS(t1, k == 0 ? "\"activation\": \"tanh\"" : "\"activation\": \"relu\"");
        back = from_json(t1, tr.nf);
        t2 = to_json(back);
        ASSERT_STR_EQ(t1, t2);
        m1 = margins(m, &tr);
        m2 = margins(back, &tr);
        ASSERT(memcmp(m1, m2, tr.n * sizeof *m1) == 0);
        ASSERT_OK(ch_json_parse(t1, strlen(t1), &doc, NULL));
        ASSERT_ERR(ch_model_from_json(doc, tr.nf + 1, &bad, NULL), CH_EMODEL);
        ASSERT_ERR(ch_model_predict_margin(m, tr.x, 1, tr.nf - 1, m1, NULL), CH_EINVAL);
        ch_json_free(doc);
        ch_free(t1);
        ch_free(t2);
        ch_free(m1);
        ch_free(m2);
        ch_model_free(m);
        ch_model_free(back);
    }
    free_data(&tr);
}

TEST(load_rejects_malformed_state)
{
    static const char *const bad[] = {
        "[]",
        "{\"n_features\": 1, \"hidden\": [1], \"activation\": \"tanh\"}",
        "{\"n_features\": 1, \"hidden\": [1], \"activation\": \"sigmoid\", \"layers\": "
        "[{\"w\": [1], \"b\": [0]}, {\"w\": [1], \"b\": [0]}]}",
        "{\"n_features\": 1, \"hidden\": [5000], \"activation\": \"tanh\", \"layers\": []}",
        "{\"n_features\": 1, \"hidden\": [1, 1, 1], \"activation\": \"tanh\", \"layers\": []}",
        "{\"n_features\": 1, \"hidden\": [1.5], \"activation\": \"tanh\", \"layers\": []}",
        "{\"n_features\": 1, \"hidden\": [1], \"activation\": \"tanh\", \"layers\": "
        "[{\"w\": [1], \"b\": [0]}]}",
        "{\"n_features\": 1, \"hidden\": [1], \"activation\": \"tanh\", \"layers\": "
        "[{\"w\": [1, 2], \"b\": [0]}, {\"w\": [1], \"b\": [0]}]}",
        "{\"n_features\": 1, \"hidden\": [1], \"activation\": \"tanh\", \"layers\": "
        "[{\"w\": [1], \"b\": [0]}, {\"w\": [null], \"b\": [0]}]}",
    };
    static const char good[] = "{\"n_features\": 1, \"hidden\": [2], \"activation\": \"relu\", "
                               "\"layers\": [{\"w\": [1, -1], \"b\": [0, 0]}, "
                               "{\"w\": [2, 3], \"b\": [0.5]}]}";
    ch_json *doc = NULL;
    void *state = NULL;
    double x[2] = {1.5, -2.0};
    double out[2];
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ch_error err = {0};
        ASSERT_OK(ch_json_parse(bad[k], strlen(bad[k]), &doc, NULL));
        if (ch_model_mlp.load(doc, 1, &state, &err) != CH_EFORMAT)
            FAIL("case %zu loaded or gave the wrong error: %s", k, err.msg);
        ASSERT(state == NULL);
        ch_json_free(doc);
    }
    /* A hand-written network: margin = 2 relu(x) + 3 relu(-x) + 0.5. */
    ASSERT_OK(ch_json_parse(good, strlen(good), &doc, NULL));
    ASSERT_OK(ch_model_mlp.load(doc, 1, &state, NULL));
    ASSERT_OK(ch_model_mlp.predict(state, x, 2, 1, out, NULL));
    ASSERT_NEAR(out[0], 3.5, 0);
    ASSERT_NEAR(out[1], 6.5, 0);
    ch_model_mlp.free(state);
    ch_json_free(doc);
}

TEST(bad_parameters_are_rejected)
{
    static const struct {
        const char *name;
        double value;
    } bad[] = {{"hidden", 0},     {"hidden", 4097},  {"hidden", 1.5},    {"hidden2", -1},
               {"hidden2", 4097}, {"activation", 2}, {"activation", -1}, {"l2", -1e-3},
               {"lr", 0},         {"lr", -1},        {"beta1", 1},       {"beta2", -0.1},
               {"batch", 0},      {"epochs", 0},     {"epochs", 2.5},    {"patience", 0},
               {"C", 1},          {"hiden", 32}};
    data tr = make_noisy(50, 2, 1);
    ch_dataset set = as_set(&tr);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ch_params p = {0};
        ch_model *m = NULL;
        ch_error err = {0};
        set_param(&p, bad[k].name, bad[k].value);
        if (ch_model_mlp.check(&p, &err) != CH_EINVAL)
            FAIL("%s = %g was accepted", bad[k].name, bad[k].value);
        ASSERT_CONTAINS(err.msg, bad[k].name);
        ASSERT_ERR(ch_model_fit(&ch_model_mlp, &p, &set, NULL, &m, NULL, NULL), CH_EINVAL);
    }
    {
        ch_params p = {0};
        set_param(&p, "hidden", 4096);
        set_param(&p, "hidden2", 0);
        set_param(&p, "activation", 1);
        set_param(&p, "l2", 0);
        set_param(&p, "beta1", 0);
        ASSERT_OK(ch_model_mlp.check(&p, NULL));
    }
    free_data(&tr);
}

/* Central differences of the objective against its analytic gradient,
 * with row weights and the L2 penalty on. */
TEST(gradient_matches_finite_differences)
{
    static const ch__mlp_shape shapes[] = {{4, 5, 0, 0}, {4, 5, 3, 0}, {4, 6, 0, 1},
                                           {4, 5, 4, 1}, {1, 1, 0, 0}, {1, 1, 1, 1}};
    ch_rng r;
    ch_rng_seed(&r, 77);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const ch__mlp_shape *s = &shapes[k];
        data d = make_noisy(25, s->n_in, 8 + k);
        ch_dataset set;
        size_t n = ch__mlp_n_params(s);
        double *th = ch_malloc_array(n, sizeof *th);
        double *g = ch_malloc_array(n, sizeof *g);
        double f;
        d.w = ch_malloc_array(d.n, sizeof *d.w);
        ASSERT(th != NULL && g != NULL && d.w != NULL);
        for (size_t i = 0; i < d.n; i++)
            d.w[i] = 0.2 + 2.0 * uniform01(&r);
        set = as_set(&d);
        for (size_t j = 0; j < n; j++)
            th[j] = 1.6 * uniform01(&r) - 0.8;
        ASSERT_OK(ch__mlp_objective(s, th, &set, 0.01, &f, g));
        ASSERT(isfinite(f) && f > 0);
        for (size_t j = 0; j < n; j++) {
            const double h = 1e-5;
            double keep = th[j];
            double fp;
            double fm;
            double num;
            th[j] = keep + h;
            ASSERT_OK(ch__mlp_objective(s, th, &set, 0.01, &fp, NULL));
            th[j] = keep - h;
            ASSERT_OK(ch__mlp_objective(s, th, &set, 0.01, &fm, NULL));
            th[j] = keep;
            num = (fp - fm) / (2 * h);
            if (!(fabs(num - g[j]) <= 1e-6 * fmax(fabs(num), fabs(g[j])) ||
                  fabs(num - g[j]) <= 1e-10))
                FAIL("shape %zu, parameter %zu of %zu: analytic %.12g, numeric %.12g", k, j, n,
                     g[j], num);
        }
        ch_free(th);
        ch_free(g);
        free_data(&d);
    }
}

/* A row of weight 2 counts as that row twice. */
TEST(row_weight_equals_duplication)
{
    static const ch__mlp_shape s = {3, 4, 2, 0};
    data d = make_noisy(10, 3, 9);
    data dup = alloc_data(11, 3);
    size_t n = ch__mlp_n_params(&s);
    double *th = ch_malloc_array(n, sizeof *th);
    double *g1 = ch_malloc_array(n, sizeof *g1);
    double *g2 = ch_malloc_array(n, sizeof *g2);
    ch_dataset a;
    ch_dataset b;
    double f1;
    double f2;
    ch_rng r;
    ASSERT(th != NULL && g1 != NULL && g2 != NULL);
    ch_rng_seed(&r, 5);
    for (size_t j = 0; j < n; j++)
        th[j] = uniform01(&r) - 0.5;
    d.w = ch_malloc_array(d.n, sizeof *d.w);
    ASSERT(d.w != NULL);
    for (size_t i = 0; i < d.n; i++)
        d.w[i] = i == 4 ? 2.0 : 1.0;
    memcpy(dup.x, d.x, 10 * 3 * sizeof(double));
    memcpy(dup.y, d.y, 10 * sizeof(double));
    memcpy(dup.x + 30, d.x + 12, 3 * sizeof(double));
    dup.y[10] = d.y[4];
    a = as_set(&d);
    b = as_set(&dup);
    ASSERT_OK(ch__mlp_objective(&s, th, &a, 0.1, &f1, g1));
    ASSERT_OK(ch__mlp_objective(&s, th, &b, 0.1, &f2, g2));
    ASSERT_NEAR(f1, f2, 1e-14);
    for (size_t j = 0; j < n; j++)
        ASSERT_NEAR(g1[j], g2[j], 1e-14);
    ch_free(th);
    ch_free(g1);
    ch_free(g2);
    free_data(&d);
    free_data(&dup);
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
    for (int rep = 0; rep < 50 && j->ok; rep++) {
        if (ch_model_predict_margin(j->m, j->d->x, j->d->n, j->d->nf, out, NULL) != CH_OK ||
            memcmp(out, j->expect, j->d->n * sizeof *out) != 0)
            j->ok = 0;
    }
    ch_free(out);
    return NULL;
}

TEST(predict_is_thread_safe)
{
    data d = make_xor(500, 41);
    ch_params p = {0};
    ch_model *m;
    double *expect;
    pthread_t t[2];
    job jobs[2];
    set_param(&p, "hidden", 12);
    set_param(&p, "hidden2", 6);
    set_param(&p, "epochs", 5);
    m = fit_mlp(&p, &d, NULL, 2, NULL);
    expect = margins(m, &d);
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

/* Every failed allocation in fit and load returns CH_ENOMEM and leaks
 * nothing (run under valgrind or ASan to see the second half). */
TEST(out_of_memory)
{
    data tr = make_xor(100, 51);
    data va = make_xor(50, 52);
    ch_dataset set = as_set(&tr);
    ch_dataset vset = as_set(&va);
    ch_model_fit_opts o = {1, 1, &vset};
    ch_params p = {0};
    ch_model *m = NULL;
    ch_json *doc = NULL;
    char *text;
    long total;

    set_param(&p, "hidden", 4);
    set_param(&p, "hidden2", 3);
    set_param(&p, "epochs", 3);
    ch_alloc_fail_after(0);
    ASSERT_OK(ch_model_fit(&ch_model_mlp, &p, &set, &o, &m, NULL, NULL));
    total = ch_alloc_count();
    ASSERT(total >= 8);
    for (long n = 1; n <= total; n++) {
        ch_model *x = NULL;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_model_fit(&ch_model_mlp, &p, &set, &o, &x, NULL, NULL);
        ch_alloc_fail_after(0);
        if (rc != CH_ENOMEM)
            FAIL("fit, allocation %ld of %ld: got %s", n, total, ch_strerror(rc));
        ASSERT(x == NULL);
    }
    text = to_json(m);
    ASSERT_OK(ch_json_parse(text, strlen(text), &doc, NULL));
    ch_alloc_fail_after(0);
    {
        ch_model *x = NULL;
        ASSERT_OK(ch_model_from_json(doc, tr.nf, &x, NULL));
        ch_model_free(x);
    }
    total = ch_alloc_count();
    for (long n = 1; n <= total; n++) {
        ch_model *x = NULL;
        ch_err rc;
        ch_alloc_fail_after(n);
        rc = ch_model_from_json(doc, tr.nf, &x, NULL);
        ch_alloc_fail_after(0);
        if (rc != CH_ENOMEM)
            FAIL("load, allocation %ld of %ld: got %s", n, total, ch_strerror(rc));
        ASSERT(x == NULL);
    }
    ch_json_free(doc);
    ch_free(text);
    ch_model_free(m);
    free_data(&tr);
    free_data(&va);
}

TEST_MAIN(T(learns_xor_that_logreg_cannot), T(early_stopping_keeps_the_best_epoch),
          T(without_validation_runs_all_epochs), T(same_seed_gives_identical_weights),
          T(json_round_trip_is_bit_identical), T(load_rejects_malformed_state),
          T(bad_parameters_are_rejected), T(gradient_matches_finite_differences),
          T(row_weight_equals_duplication), T(predict_is_thread_safe), T(out_of_memory))
