/*
 * monitor.c -- how fast monitoring reads a million served predictions.
 *
 * usage: build/bench/monitor REGISTRY CSV DUMPDIR
 *
 * REGISTRY holds a champion (bench/monitor.sh trains one); CSV holds the
 * current customers (a drift scenario). Every row of CSV is scored with
 * the champion and logged into REGISTRY as the server logs a prediction
 * (inputs blob included), unless the log already holds that many rows.
 * Then, best of 3:
 *   drift     ch_watch_run(drift) over the whole log: the store scan,
 *             decoding every blob, counting, and every measure (PSI, JS,
 *             KS or chi-square with the adjustment, Wasserstein) of every
 *             column and of the score
 *   all       ch_watch_run of drift, decay and the estimate
 *   measures  the counting and measures alone, on the decoded values in
 *             memory (window + ch_monitor_drift): the part that compares
 *             with a numpy/scipy computation on arrays
 * and the decoded columns and the reference are written to DUMPDIR for
 * bench/monitor_ref.py (numpy/scipy PSI plus KS or chi-square).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/bundle.h"
#include "ch/ingest.h"
#include "ch/inputs.h"
#include "ch/json.h"
#include "ch/monitor.h"
#include "ch/registry.h"
#include "ch/watch.h"

#define BATCH 4096

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const ch_error *err)
{
    fprintf(stderr, "bench/monitor: %s: %s\n", what, err != NULL ? err->msg : "failed");
    exit(2);
}

static void hex(char *out, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
}

/* Logs every row of 'f' with its probability as version 'version'. */
static void fill(ch_registry *reg, const ch_schema *s, const ch_frame *f, const double *p,
                 int64_t version)
{
    size_t n = ch_frame_n_rows(f);
    size_t nc = ch_schema_n_cols(s);
    ch_prediction_rec *batch = ch_calloc(BATCH, sizeof *batch);
    ch_value *vals = ch_calloc(nc, sizeof *vals);
    long *fc = ch_calloc(nc, sizeof *fc);
    ch_error err = {0};
    int64_t t0 = (int64_t)time(NULL) * 1000 - (int64_t)n; /* one per ms, ending now */
    double start = now();
    if (batch == NULL || vals == NULL || fc == NULL)
        die("fill", NULL);
    for (size_t j = 0; j < nc; j++)
        fc[j] = ch_frame_find(f, ch_schema_col_ref(s, j)->name);
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        while (k < BATCH && i < n) {
            ch_prediction_rec *r = &batch[k++];
            size_t len = 0;
            memset(r, 0, sizeof *r);
            hex(r->id, 0xbe7c4bec4bec4bedull, 16);
            hex(r->id + 16, i, 16);
            memset(r->features_sha256, 'a', 64);
            r->probability = p[i];
            r->label = p[i] >= 0.5;
            r->model_version = version;
            r->latency_s = 0.0005;
            r->time_ms = t0 + (int64_t)i;
            for (size_t j = 0; j < nc; j++) {
                const ch_schema_col *c = ch_schema_col_ref(s, j);
                memset(&vals[j], 0, sizeof vals[j]);
                vals[j].missing = 1;
                if (fc[j] < 0 || c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET)
                    continue;
                if (c->kind == CH_KIND_CATEGORICAL) {
                    int32_t code = ch_frame_codes(f, (size_t)fc[j])[i];
                    if (code >= 0) {
                        vals[j].str = ch_frame_level(f, (size_t)fc[j], (size_t)code);
                        vals[j].len = strlen(vals[j].str);
                        vals[j].missing = 0;
                    }
                } else {
                    vals[j].num = ch_frame_num(f, (size_t)fc[j])[i];
                    vals[j].missing = isnan(vals[j].num);
                }
            }
            if (ch_inputs_encode(s, vals, r->inputs, sizeof r->inputs, &len, &err) != CH_OK)
                die("encode", &err);
            r->inputs_len = (uint16_t)len;
            i++;
        }
        if (ch_registry_log_predictions(reg, batch, k, &err) != CH_OK)
            die("log", &err);
    }
    printf("logged %zu predictions in %.1f s\n", n, now() - start);
    ch_free(batch);
    ch_free(vals);
    ch_free(fc);
}

/* Writes column j of the decoded window (doubles, or int32 codes) to DUMPDIR. */
static void dump(const char *dir, const char *name, const void *data, size_t size, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, size, n, f) != n || fclose(f) != 0)
        die(path, NULL);
}

int main(int argc, char **argv)
{
    ch_registry *reg = NULL;
    ch_registry_opts ro;
    ch_bundle *b = NULL;
    ch_frame *f = NULL;
    ch_ingest_report *rep = NULL;
    ch_ingest_opts io;
    ch_error err = {0};
    char path[4096];
    int64_t version = 0;
    int64_t logged = 0;
    ch_prediction_query q;
    double *p;
    size_t n;
    const ch_schema *s;

    if (argc != 4) {
        fprintf(stderr, "usage: %s REGISTRY CSV DUMPDIR\n", argv[0]);
        return 1;
    }
    ch_registry_opts_default(&ro);
    ro.bulk_log = 1;
    if (ch_registry_open(argv[1], &ro, &reg, &err) != CH_OK ||
        ch_registry_resolve(reg, "champion", &version, path, sizeof path, &err) != CH_OK ||
        ch_bundle_load(path, NULL, &b, &err) != CH_OK)
        die("champion", &err);
    s = ch_bundle_schema(b);
    ch_ingest_opts_default(&io);
    io.target_optional = 1;
    if (ch_ingest_file(s, argv[2], &io, &f, &rep, &err) != CH_OK)
        die(argv[2], &err);
    n = ch_frame_n_rows(f);
    p = ch_malloc_array(n, sizeof *p);
    if (p == NULL || ch_bundle_score_frame(b, f, NULL, n, p, NULL, &err) != CH_OK)
        die("score", &err);
    memset(&q, 0, sizeof q);
    if (ch_registry_predictions_count(reg, &q, &logged, &err) != CH_OK)
        die("count", &err);
    if ((size_t)logged < n)
        fill(reg, s, f, p, version);

    {
        ch_watch_job job;
        const char *names[2] = {"drift", "all"};
        unsigned what[2] = {CH_WATCH_DRIFT, CH_WATCH_ALL};
        ch_watch_job_default(&job);
        job.window = "1000000000"; /* every logged prediction */
        for (int k = 0; k < 2; k++) {
            double best = 1e9;
            ch_watch_result res;
            size_t rows = 0, drifted = 0;
            double max_psi = NAN;
            job.what = what[k];
            for (int r = 0; r < 3; r++) {
                double t0 = now();
                if (ch_watch_run(reg, &job, &res, &err) != CH_OK)
                    die("watch", &err);
                t0 = now() - t0;
                best = t0 < best ? t0 : best;
                rows = res.rows;
                drifted = res.summary.n_drifted;
                max_psi = res.summary.max_psi;
                ch_watch_result_reset(&res);
            }
            printf("%-9s %zu predictions x %zu columns: %.3f s  (%zu columns drifted, max PSI "
                   "%.3f)\n",
                   names[k], rows, ch_schema_n_cols(s) - 2, best, drifted, max_psi);
        }
    }

    /* The measures alone on decoded values in memory, and the dump. */
    {
        size_t nc = ch_schema_n_cols(s);
        double *num = ch_malloc_array(n * nc, sizeof *num);
        int32_t *code = ch_malloc_array(n * nc, sizeof *code);
        double *col = ch_malloc_array(n, sizeof *col);
        int32_t *ccol = ch_malloc_array(n, sizeof *ccol);
        ch_monitor_ref *ref = NULL;
        ch_monitor_opts mo;
        double best = 1e9;
        FILE *meta;
        char mp[4096];
        long *fc = ch_calloc(nc, sizeof *fc);
        if (num == NULL || code == NULL || col == NULL || ccol == NULL || fc == NULL ||
            ch_monitor_ref_load(b, &ref, &err) != CH_OK)
            die("measures", &err);
        for (size_t j = 0; j < nc; j++)
            fc[j] = ch_frame_find(f, ch_schema_col_ref(s, j)->name);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < nc; j++) {
                const ch_schema_col *c = ch_schema_col_ref(s, j);
                num[i * nc + j] = NAN;
                code[i * nc + j] = -1;
                if (fc[j] < 0 || c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET)
                    continue;
                if (c->kind == CH_KIND_CATEGORICAL) {
                    int32_t k = ch_frame_codes(f, (size_t)fc[j])[i];
                    code[i * nc + j] = k >= (int32_t)c->n_categories ? -2 : k;
                } else {
                    num[i * nc + j] = ch_frame_num(f, (size_t)fc[j])[i];
                }
            }
        ch_monitor_opts_default(&mo);
        for (int r = 0; r < 3; r++) {
            ch_monitor_window *w = NULL;
            ch_buf out;
            double t0 = now();
            ch_buf_init(&out, (size_t)64 << 20);
            if (ch_monitor_window_new(ref, 1, &w, &err) != CH_OK)
                die("window", &err);
            for (size_t i = 0; i < n; i++)
                if (ch_monitor_window_add(w, num + i * nc, code + i * nc, p[i], -1, &err) != CH_OK)
                    die("add", &err);
            if (ch_monitor_drift(w, &mo, &out, NULL, &err) != CH_OK)
                die("drift", &err);
            t0 = now() - t0;
            best = t0 < best ? t0 : best;
            ch_buf_reset(&out);
            ch_monitor_window_free(w);
        }
        printf("measures  %zu rows x %zu columns, values in memory: %.3f s\n", n, nc - 2, best);
        snprintf(mp, sizeof mp, "%s/columns.txt", argv[3]);
        meta = fopen(mp, "w");
        if (meta == NULL)
            die(mp, NULL);
        for (size_t j = 0; j < nc; j++) {
            const ch_schema_col *c = ch_schema_col_ref(s, j);
            char name[64];
            if (c->kind == CH_KIND_ID || c->kind == CH_KIND_TARGET)
                continue;
            snprintf(name, sizeof name, "col%zu.bin", j);
            for (size_t i = 0; i < n; i++) {
                col[i] = num[i * nc + j];
                ccol[i] = code[i * nc + j];
            }
            if (c->kind == CH_KIND_CATEGORICAL)
                dump(argv[3], name, ccol, sizeof *ccol, n);
            else
                dump(argv[3], name, col, sizeof *col, n);
            fprintf(meta, "%s\t%s\t%s\n", name, c->kind == CH_KIND_CATEGORICAL ? "cat" : "num",
                    c->name);
        }
        dump(argv[3], "score.bin", p, sizeof *p, n);
        fprintf(meta, "score.bin\tscore\t(score)\n");
        fclose(meta);
        {
            ch_buf pb;
            ch_buf_init(&pb, (size_t)64 << 20);
            ch_json_dump(ch_bundle_section(b, "profile"), &pb);
            dump(argv[3], "profile.json", pb.data, 1, pb.len);
            ch_buf_reset(&pb);
        }
        ch_monitor_ref_free(ref);
        ch_free(num);
        ch_free(code);
        ch_free(col);
        ch_free(ccol);
        ch_free(fc);
    }
    ch_free(p);
    ch_ingest_report_free(rep);
    ch_frame_free(f);
    ch_bundle_free(b);
    ch_registry_close(reg);
    return 0;
}
