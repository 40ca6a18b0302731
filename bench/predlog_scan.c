/*
 * predlog_scan.c -- how fast the prediction log reads back.
 *
 * usage: build/bench/predlog_scan [ROWS [FEEDBACK [STORE]]]
 *        defaults: 1000000 predictions, 1000 feedback records, a
 *        temporary store; a STORE path is filled when absent and kept,
 *        and only read when it exists (for timing reads again)
 *
 * Fills a temporary store (under $TMPDIR, removed at the end) with ROWS
 * predictions through ch_registry_log_predictions() in batches of 1024,
 * as the server's log writer does (bulk_log connection), each with
 * Telco-sized inputs: real blobs of random Telco records encoded with
 * ch_inputs_encode() (5% missing values, 2% with a kept unknown
 * PaymentMethod), over three model versions. FEEDBACK predictions get
 * feedback. Then, on a fresh handle, each timed on its own (best of 3):
 *   scan      ch_registry_predictions_scan() of every row, the callback
 *             touching each row's id, probability and inputs
 *   decode    the same scan decoding every blob with ch_inputs_to_values()
 *   count     ch_registry_predictions_count() of every row
 *   window    a scan of the middle tenth of the time range
 *   last_n    a scan of the latest 100000
 *   version   a scan of one model version (a third of the rows)
 *   labelled  a scan of the labelled predictions only
 * Target: a full scan of 1,000,000 predictions well under 0.5 s.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/inputs.h"
#include "ch/registry.h"
#include "ch/schema.h"

#define BATCH    1024
#define MAX_COLS 64
#define T0_MS    1700000000000LL /* first prediction's time */

static ch_schema *telco;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const ch_error *err)
{
    fprintf(stderr, "predlog_scan: %s: %s\n", what, err->msg);
    exit(2);
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void hex(char *out, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
}

/* Prediction 'i': an id that grows with i (as the server's do), a
 * customer out of 50000, a random Telco record as its inputs. */
static void make_pred(ch_prediction_rec *p, uint64_t i, uint64_t *x)
{
    ch_value vals[MAX_COLS];
    size_t n = ch_schema_n_cols(telco);
    size_t len = 0;
    ch_error err = {0};

    memset(p, 0, offsetof(ch_prediction_rec, inputs));
    hex(p->id, 0x5eed5eed5eed5eedull, 16);
    hex(p->id + 16, i, 16);
    hex(p->customer, 0xc0ffee, 16);
    hex(p->customer + 16, rng(x) % 50000, 16);
    hex(p->features_sha256, rng(x), 16);
    memset(p->features_sha256 + 16, 'a', 48);
    p->probability = (double)(rng(x) % 1000000) / 1e6;
    p->label = p->probability >= 0.5;
    p->model_version = 1 + (int64_t)(i % 3);
    p->latency_s = 0.0005;
    p->time_ms = T0_MS + (int64_t)i * 3;
    for (size_t j = 0; j < n; j++) {
        const ch_schema_col *c = ch_schema_col_ref(telco, j);
        memset(&vals[j], 0, sizeof vals[j]);
        if (rng(x) % 20 == 0) {
            vals[j].missing = 1;
        } else if (c->kind == CH_KIND_CATEGORICAL) {
            size_t k = rng(x) % c->n_categories;
            vals[j].str = c->categories[k];
            vals[j].len = c->category_lens[k];
            if (c->on_unknown == CH_UNKNOWN_KEEP && rng(x) % 50 == 0) {
                vals[j].str = "Bitcoin wallet";
                vals[j].len = 14;
            }
        } else if (c->kind == CH_KIND_BINARY) {
            vals[j].num = (double)(rng(x) & 1);
        } else {
            vals[j].num = (double)(rng(x) % 10000) / 100.0;
        }
    }
    if (ch_inputs_encode(telco, vals, p->inputs, sizeof p->inputs, &len, &err) != CH_OK)
        die("encode", &err);
    p->inputs_len = (uint16_t)len;
}

typedef struct tally {
    int64_t rows;
    int64_t bytes;
    double sum;
    int64_t labelled;
    int64_t last_time;
    int64_t out_of_order;
    int decode;
    ch_value vals[MAX_COLS];
} tally;

static int on_row(void *ctx, const ch_prediction_row *r)
{
    tally *t = ctx;
    t->rows++;
    t->bytes += (int64_t)r->inputs_len + (r->id[31] & 1);
    t->sum += r->probability;
    t->labelled += r->churned >= 0;
    t->out_of_order += r->time_ms < t->last_time;
    t->last_time = r->time_ms;
    if (t->decode) {
        ch_error err = {0};
        if (ch_inputs_to_values(telco, r->inputs, r->inputs_len, t->vals, &err) != CH_OK)
            die("decode", &err);
        t->sum += t->vals[5].num;
    }
    return 0;
}

/* Runs the scan three times and prints the best time. */
static void timed_scan(ch_registry *r, const char *name, const ch_prediction_query *q, int decode,
                       int64_t want)
{
    double best = 1e9;
    tally t;
    for (int k = 0; k < 3; k++) {
        ch_error err = {0};
        double t0;
        memset(&t, 0, sizeof t);
        t.decode = decode;
        t0 = now();
        if (ch_registry_predictions_scan(r, q, on_row, &t, &err) != CH_OK)
            die(name, &err);
        t0 = now() - t0;
        if (t0 < best)
            best = t0;
    }
    if (t.out_of_order != 0 || (want >= 0 && t.rows != want)) {
        fprintf(stderr,
                "predlog_scan: %s: %" PRId64 " rows (%" PRId64 " out of order), want %" PRId64 "\n",
                name, t.rows, t.out_of_order, want);
        exit(1);
    }
    printf("%-9s %9" PRId64 " rows  %8.3f s  %7.0f ns/row  %6.1f M rows/s  (%" PRId64
           " labelled, %.1f input bytes/row)\n",
           name, t.rows, best, best * 1e9 / (double)(t.rows > 0 ? t.rows : 1),
           (double)t.rows / best / 1e6, t.labelled,
           t.rows > 0 ? (double)t.bytes / (double)t.rows : 0.0);
}

/* Fills a new store at 'path' as the log writer does, then adds the
 * feedback. */
static void fill_store(const char *path, uint64_t n_rows, uint64_t n_fb, ch_prediction_rec *batch)
{
    ch_registry_opts o;
    ch_registry *r = NULL;
    ch_error err = {0};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    double t0;

    ch_registry_opts_default(&o);
    o.bulk_log = 1;
    if (ch_registry_open(path, &o, &r, &err) != CH_OK)
        die("open", &err);
    t0 = now();
    for (uint64_t i = 0; i < n_rows;) {
        size_t n = 0;
        while (n < BATCH && i < n_rows)
            make_pred(&batch[n++], i++, &x);
        if (ch_registry_log_predictions(r, batch, n, &err) != CH_OK)
            die("log", &err);
    }
    printf("fill      %9" PRIu64 " rows  %8.3f s  (batches of %d)\n", n_rows, now() - t0, BATCH);
    ch_registry_close(r);
    r = NULL;
    if (ch_registry_open(path, NULL, &r, &err) != CH_OK)
        die("open", &err);
    t0 = now();
    for (uint64_t k = 0; k < n_fb; k++) {
        char id[CH_PREDICTION_ID_LEN + 1];
        uint64_t i = k * (n_rows / n_fb);
        hex(id, 0x5eed5eed5eed5eedull, 16);
        hex(id + 16, i, 16);
        id[32] = '\0';
        if (ch_registry_feedback_add(r, id, NULL, (int)(k & 1), "2024-06-30", "bench", NULL,
                                     &err) != CH_OK)
            die("feedback", &err);
    }
    if (n_fb > 0)
        printf("feedback  %9" PRIu64 " rows  %8.3f s  (one durable commit each)\n", n_fb,
               now() - t0);
    ch_registry_close(r);
    r = NULL;
}

int main(int argc, char **argv)
{
    uint64_t n_rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    uint64_t n_fb = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
    char dir[512];
    char path[600];
    char side[640];
    const char *tmp = getenv("TMPDIR");
    ch_registry *r = NULL;
    ch_prediction_rec *batch;
    ch_prediction_query q;
    ch_error err = {0};
    int64_t count = 0;
    int keep = 0;
    int fill = 1;
    double t0;

    if (n_rows == 0 || n_fb > n_rows) {
        fprintf(stderr, "usage: predlog_scan [ROWS [FEEDBACK]] (FEEDBACK <= ROWS)\n");
        return 1;
    }
    if (ch_schema_load_file("config/telco.schema.json", &telco, &err) != CH_OK)
        die("schema (run from the repository root)", &err);
    batch = ch_malloc_array(BATCH, sizeof *batch);
    if (batch == NULL)
        return 2;
    if (argc > 3) {
        snprintf(path, sizeof path, "%s", argv[3]);
        keep = 1;
        fill = access(path, F_OK) != 0;
    } else {
        snprintf(dir, sizeof dir, "%s/churn-predlog-scan-XXXXXX", tmp != NULL ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL) {
            perror("predlog_scan: mkdtemp");
            return 2;
        }
        snprintf(path, sizeof path, "%s/registry.db", dir);
    }
    printf("== predlog_scan: %" PRIu64 " predictions with Telco inputs, %" PRIu64
           " with feedback, %ld cores, %s\n",
           n_rows, n_fb, sysconf(_SC_NPROCESSORS_ONLN), path);
    if (fill)
        fill_store(path, n_rows, n_fb, batch);

    /* Read back on a fresh handle. */
    if (ch_registry_open(path, NULL, &r, &err) != CH_OK)
        die("open", &err);
    timed_scan(r, "scan", NULL, 0, (int64_t)n_rows);
    timed_scan(r, "decode", NULL, 1, (int64_t)n_rows);
    t0 = now();
    if (ch_registry_predictions_count(r, NULL, &count, &err) != CH_OK || count != (int64_t)n_rows)
        die("count", &err);
    printf("count     %9" PRId64 " rows  %8.3f s\n", count, now() - t0);
    memset(&q, 0, sizeof q);
    q.since_ms = T0_MS + (int64_t)(n_rows * 3 * 45 / 100);
    q.until_ms = T0_MS + (int64_t)(n_rows * 3 * 55 / 100);
    timed_scan(r, "window", &q, 0, -1);
    memset(&q, 0, sizeof q);
    q.last_n = 100000;
    timed_scan(r, "last_n", &q, 0, (int64_t)(n_rows < 100000 ? n_rows : 100000));
    memset(&q, 0, sizeof q);
    q.model_version = 2;
    timed_scan(r, "version", &q, 0, -1);
    memset(&q, 0, sizeof q);
    q.labelled_only = 1;
    timed_scan(r, "labelled", &q, 0, (int64_t)n_fb);
    ch_registry_close(r);
    ch_free(batch);
    ch_schema_free(telco);
    if (keep)
        return 0;
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    unlink(path);
    rmdir(dir);
    return 0;
}
