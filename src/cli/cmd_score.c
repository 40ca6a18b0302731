/*
 * cmd_score.c -- `churn score`: batch scoring from the command line.
 *
 * CSV in, CSV out: one line per accepted input row with the customer id,
 * the calibrated churn probability, the label at the model's served
 * threshold and a risk band. Rows the schema rejects go to a rejects
 * file, so every input row is accounted for. Scoring runs in blocks
 * spread over threads; output order is input order.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "cli.h"

#define BLOCK 8192

static void help(void)
{
    printf("usage: churn score --model REF --in CSV --out CSV [--rejects FILE]\n"
           "                   [--threads N] [--config FILE] [--set NAME=VALUE]...\n"
           "\n"
           "Scores every row of CSV (the target column may be absent) with the model REF\n"
           "and writes id,probability,label,risk_band per accepted row, in input order:\n"
           "probability is the calibrated churn probability, label is 1 at or above the\n"
           "model's served threshold, risk_band is high (>= threshold), medium (>=\n"
           "score.medium_from x threshold) or low. Rejected rows go to the rejects file\n"
           "(default OUT.rejects.csv when any).\n"
           "\n"
           "  --model REF     a bundle file, a registry version (3 or v3) or an alias\n"
           "  --in CSV        rows to score, in the model's schema\n"
           "  --out CSV       output file ('-' for standard output)\n"
           "  --rejects FILE  where rejected rows go\n"
           "  --threads N     scoring threads (default train.threads)\n"
           "\n"
           "A summary (rows, seconds, rows/s) goes to stderr.\n"
           "Exit codes: 0 ok, 1 usage, 2 file not readable or writable, 3 invalid data,\n"
           "4 model could not be loaded or used, 5 the registry failed.\n");
}

typedef struct score_job {
    const ch_bundle *bundle;
    const ch_frame *frame;
    double *prob;
    size_t n_rows;
    size_t next;
    ch_buf *out;      /* one formatted chunk of CSV per block, written in order */
    long id_col;      /* schema id column or -1 */
    double threshold; /* served threshold */
    double medium;    /* start of the medium band */
    ch_err rc;
    ch_error err;
    pthread_mutex_t mu;
} score_job;

static size_t fmt_prob(char *out, double p);

/* Formats rows [at, at + n) of the output as CSV lines into 'b'. */
static void format_block(const score_job *J, size_t at, size_t n, ch_buf *b)
{
    for (size_t i = at; i < at + n; i++) {
        char num[16];
        size_t len = 0;
        const char *id = J->id_col >= 0 ? ch_frame_str(J->frame, (size_t)J->id_col, i, &len) : NULL;
        if (id != NULL)
            ch_buf_csv_field(b, id, len);
        else
            ch_buf_printf(b, "%zu", i + 1);
        ch_buf_putc(b, ',');
        ch_buf_append(b, num, fmt_prob(num, J->prob[i]));
        ch_buf_puts(b, J->prob[i] >= J->threshold ? ",1,high\n"
                       : J->prob[i] >= J->medium  ? ",0,medium\n"
                                                  : ",0,low\n");
    }
}

static void *score_worker(void *arg)
{
    score_job *J = arg;
    size_t idx[BLOCK];
    for (;;) {
        size_t at;
        ch_error err = {0};
        ch_err rc;
        pthread_mutex_lock(&J->mu);
        at = J->next;
        J->next += BLOCK;
        pthread_mutex_unlock(&J->mu);
        if (at >= J->n_rows)
            return NULL;
        size_t n = J->n_rows - at < BLOCK ? J->n_rows - at : BLOCK;
        for (size_t i = 0; i < n; i++)
            idx[i] = at + i;
        rc = ch_bundle_score_frame(J->bundle, J->frame, idx, n, J->prob + at, NULL, &err);
        if (rc == CH_OK) {
            ch_buf *b = &J->out[at / BLOCK];
            format_block(J, at, n, b);
            if (ch_buf_status(b) != CH_OK)
                rc = ch_error_set(&err, ch_buf_status(b), "out of memory formatting scores");
        }
        if (rc != CH_OK) {
            pthread_mutex_lock(&J->mu);
            if (J->rc == CH_OK) {
                J->rc = rc;
                J->err = err;
            }
            J->next = J->n_rows;
            pthread_mutex_unlock(&J->mu);
            return NULL;
        }
    }
}

/* Writes "0.123456" (6 decimals, p in [0, 1]) without printf. */
static size_t fmt_prob(char *out, double p)
{
    long v = (long)(p * 1e6 + 0.5);
    if (v < 0)
        v = 0;
    if (v > 1000000)
        v = 1000000;
    out[0] = (char)('0' + v / 1000000);
    out[1] = '.';
    v %= 1000000;
    for (int i = 7; i >= 2; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return 8;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cmd_score(int argc, char **argv)
{
    cli_common com = {0};
    const char *ref = NULL;
    const char *in = NULL;
    const char *out = NULL;
    const char *rejects = NULL;
    long threads = -1;
    ch_config *cfg = NULL;
    ch_bundle *bundle = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    double *prob = NULL;
    ch_buf *blocks = NULL;
    size_t n_blocks = 0;
    FILE *f = NULL;
    ch_buf b;
    char rej_buf[4200];
    double t0 = now_s();
    int code;

    ch_buf_init(&b, (size_t)4 << 20);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "score", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--in") == 0 || strcmp(a, "--out") == 0 ||
                   strcmp(a, "--rejects") == 0 || strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("score", "%s needs a value", a);
            const char *v = argv[++i];
            if (strcmp(a, "--model") == 0)
                ref = v;
            else if (strcmp(a, "--in") == 0)
                in = v;
            else if (strcmp(a, "--out") == 0)
                out = v;
            else if (strcmp(a, "--rejects") == 0)
                rejects = v;
            else {
                unsigned long long t;
                if (cli_parse_u64(v, &t) != 0 || t < 1 || t > 64)
                    return cli_usage_error("score", "--threads must be 1 to 64");
                threads = (long)t;
            }
        } else {
            return cli_usage_error("score", "unknown argument '%s'", a);
        }
    }
    if (ref == NULL || in == NULL || out == NULL)
        return cli_usage_error("score", "give --model, --in and --out");
    if ((code = cli_load_config(&com, "score", &cfg)) != 0)
        return code;
    if (threads < 0)
        threads = (long)ch_config_num(cfg, "train.threads");
    if ((code = cli_load_model(cfg, "score", ref, &bundle, NULL)) != 0)
        goto done;
    if (rejects == NULL && strcmp(out, "-") != 0) {
        snprintf(rej_buf, sizeof rej_buf, "%s.rejects.csv", out);
        rejects = rej_buf;
    }
    {
        ch_ingest_opts io;
        ch_error err = {0};
        ch_err rc;
        ch_ingest_opts_default(&io);
        io.max_reject_rate = 1.0; /* scoring keeps going; rejects are reported */
        io.target_optional = 1;
        io.rejects_path = rejects;
        rc = ch_ingest_file(ch_bundle_schema(bundle), in, &io, &frame, &rep, &err);
        if (rc != CH_OK) {
            code = cli_fail("score", rc, &err);
            goto done;
        }
    }
    {
        size_t n = ch_frame_n_rows(frame);
        score_job J;
        pthread_t th[64];
        long started = 0;
        prob = ch_malloc_array(n + 1, sizeof *prob);
        if (prob == NULL) {
            code = cli_fail("score", CH_ENOMEM, NULL);
            goto done;
        }
        memset(&J, 0, sizeof J);
        J.bundle = bundle;
        J.frame = frame;
        J.prob = prob;
        J.n_rows = n;
        J.id_col = ch_schema_id(ch_bundle_schema(bundle));
        J.threshold = ch_bundle_threshold(bundle);
        J.medium = J.threshold * ch_config_num(cfg, "score.medium_from");
        n_blocks = (n + BLOCK - 1) / BLOCK;
        blocks = ch_calloc(n_blocks + 1, sizeof *blocks);
        if (blocks == NULL) {
            code = cli_fail("score", CH_ENOMEM, NULL);
            goto done;
        }
        for (size_t k = 0; k < n_blocks; k++)
            ch_buf_init(&blocks[k], (size_t)64 << 20);
        J.out = blocks;
        pthread_mutex_init(&J.mu, NULL);
        for (long t = 1; t < threads; t++)
            if (pthread_create(&th[started], NULL, score_worker, &J) == 0)
                started++;
        score_worker(&J);
        for (long t = 0; t < started; t++)
            pthread_join(th[t], NULL);
        pthread_mutex_destroy(&J.mu);
        if (J.rc != CH_OK) {
            code = cli_fail("score", J.rc, &J.err);
            goto done;
        }
    }
    if (rep->rows_rejected == 0 && rejects == rej_buf)
        remove(rejects); /* an empty default rejects file would only be noise */
    f = strcmp(out, "-") == 0 ? stdout : fopen(out, "wb");
    if (f == NULL) {
        fprintf(stderr, "churn score: %s: cannot create\n", out);
        code = CLI_IO;
        goto done;
    }
    ch_buf_puts(&b, "id,probability,label,risk_band\n");
    if (ch_buf_status(&b) != CH_OK || fwrite(b.data, 1, b.len, f) != b.len) {
        fprintf(stderr, "churn score: %s: write failed\n", out);
        code = CLI_IO;
        goto done;
    }
    for (size_t k = 0; k < n_blocks; k++) {
        if (blocks[k].len > 0 && fwrite(blocks[k].data, 1, blocks[k].len, f) != blocks[k].len) {
            fprintf(stderr, "churn score: %s: write failed\n", out);
            code = CLI_IO;
            goto done;
        }
    }
    if (f != stdout && fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "churn score: %s: write failed\n", out);
        code = CLI_IO;
        goto done;
    }
    f = NULL;
    {
        double secs = now_s() - t0;
        fprintf(stderr, "score: %llu rows scored, %llu rejected",
                (unsigned long long)rep->rows_accepted, (unsigned long long)rep->rows_rejected);
        if (rep->rows_rejected > 0 && rejects != NULL)
            fprintf(stderr, " (in %s)", rejects);
        fprintf(stderr, ", %.3f s, %.0f rows/s\n", secs,
                (double)rep->rows_read / (secs > 0 ? secs : 1e-9));
    }
    code = CLI_OK;
done:
    if (f != NULL && f != stdout)
        fclose(f);
    ch_buf_reset(&b);
    for (size_t k = 0; k < n_blocks; k++)
        ch_buf_reset(&blocks[k]);
    ch_free(blocks);
    ch_free(prob);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_bundle_free(bundle);
    ch_config_free(cfg);
    return code;
}
