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
#include "ch/explain.h"
#include "cli.h"

#define BLOCK 8192

static void help(void)
{
    printf("usage: churn score --model REF --in CSV --out CSV [--explain K] [--actions K]\n"
           "                   [--by-value] [--rejects FILE] [--threads N] [--config FILE]\n"
           "                   [--set NAME=VALUE]...\n"
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
           "  --explain K     add the top K reasons per row (1 to 16), ranked by the size\n"
           "                  of their contribution: reason_i (plain language),\n"
           "                  reason_i_logodds and reason_i_points (signed, in log-odds\n"
           "                  and in probability points)\n"
           "  --actions K     add the best K what-if retention actions per row (1 to 16):\n"
           "                  action_i, action_i_probability (churn probability after it)\n"
           "                  and action_i_value (expected retained value)\n"
           "  --by-value      rank actions by expected value instead of probability drop\n"
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
    ch_buf *out;                   /* one formatted chunk of CSV per block, written in order */
    const ch_explainer *explainer; /* NULL unless reasons or actions are asked for */
    size_t k_reasons, k_actions;
    int by_value;
    long id_col;      /* schema id column or -1 */
    double threshold; /* served threshold */
    double medium;    /* start of the medium band */
    ch_err rc;
    ch_error err;
    pthread_mutex_t mu;
} score_job;

static size_t fmt_prob(char *out, double p);

/* Fills 'vals' (one per schema column) from row 'i' of the frame. */
static void row_values(const ch_frame *f, size_t i, ch_value *vals)
{
    for (size_t j = 0; j < ch_frame_n_cols(f); j++) {
        ch_value *v = &vals[j];
        const uint8_t *miss = ch_frame_missing(f, j);
        memset(v, 0, sizeof *v);
        v->missing = miss != NULL && miss[i];
        if (v->missing)
            continue;
        if (ch_frame_col_type(f, j) == CH_COL_NUM) {
            v->num = ch_frame_num(f, j)[i];
        } else if (ch_frame_col_type(f, j) == CH_COL_CAT) {
            v->str = ch_frame_level(f, j, (size_t)ch_frame_codes(f, j)[i]);
            v->len = strlen(v->str);
        } else {
            v->str = ch_frame_str(f, j, i, &v->len);
            v->missing = v->str == NULL;
        }
    }
}

/* Writes row 'i''s id, probability 'p', label and band. */
static void format_score(const score_job *J, size_t i, double p, ch_buf *b)
{
    char num[16];
    size_t len = 0;
    const char *id = J->id_col >= 0 ? ch_frame_str(J->frame, (size_t)J->id_col, i, &len) : NULL;
    if (id != NULL)
        ch_buf_csv_field(b, id, len);
    else
        ch_buf_printf(b, "%zu", i + 1);
    ch_buf_putc(b, ',');
    ch_buf_append(b, num, fmt_prob(num, p));
    ch_buf_puts(b, p >= J->threshold ? ",1,high" : p >= J->medium ? ",0,medium" : ",0,low");
}

/* Writes the reasons and actions columns of explanation 'ex'. */
static void format_explanation(const score_job *J, const ch_explanation *ex, ch_buf *b)
{
    char num[16];
    for (size_t k = 0; k < J->k_reasons; k++) {
        ch_buf_putc(b, ',');
        if (k < ex->n_reasons) {
            const ch_reason_item *r = &ex->reasons[k];
            ch_buf_csv_field(b, r->text, strlen(r->text));
            ch_buf_printf(b, ",%+.4f,%+.2f", r->logodds, r->points);
        } else {
            ch_buf_puts(b, ",,");
        }
    }
    for (size_t k = 0; k < J->k_actions; k++) {
        ch_buf_putc(b, ',');
        if (k < ex->n_actions) {
            const ch_action_item *a = &ex->actions[k];
            ch_buf_csv_field(b, a->text, strlen(a->text));
            ch_buf_putc(b, ',');
            ch_buf_append(b, num, fmt_prob(num, a->probability));
            ch_buf_printf(b, ",%.2f", a->expected_value);
        } else {
            ch_buf_puts(b, ",,");
        }
    }
}

/* Formats rows [at, at + n) of the output, scored into J->prob, as CSV
 * lines into 'b'. */
static void format_block(const score_job *J, size_t at, size_t n, ch_buf *b)
{
    for (size_t i = at; i < at + n; i++) {
        format_score(J, i, J->prob[i], b);
        ch_buf_putc(b, '\n');
    }
}

/* Explains rows [at, at + n) CH_EXPLAIN_BATCH at a time and formats them
 * with their reasons and actions into 'b' ('vals', CH_EXPLAIN_BATCH
 * records, 'ws' and 'ex', CH_EXPLAIN_BATCH explanations, are the calling
 * thread's scratch). The explanation's probability is the one scoring
 * gives (the same transform, model and calibrator), so the row is not
 * scored a second time. */
static void explain_block(const score_job *J, size_t at, size_t n, ch_buf *b, ch_value *vals,
                          ch_explain_ws *ws, ch_explanation *ex)
{
    size_t n_cols = ch_frame_n_cols(J->frame);
    for (size_t i = at; i < at + n; i += CH_EXPLAIN_BATCH) {
        size_t nb = at + n - i < CH_EXPLAIN_BATCH ? at + n - i : CH_EXPLAIN_BATCH;
        for (size_t r = 0; r < nb; r++)
            row_values(J->frame, i + r, vals + r * n_cols);
        ch_explain_records(J->explainer, vals, nb, J->k_reasons, J->k_actions, J->by_value, ex, ws);
        for (size_t r = 0; r < nb; r++) {
            format_score(J, i + r, ex[r].probability, b);
            format_explanation(J, &ex[r], b);
            ch_buf_putc(b, '\n');
        }
    }
}

static void *score_worker(void *arg)
{
    score_job *J = arg;
    size_t idx[BLOCK];
    ch_value *vals = NULL;
    ch_explain_ws *ws = NULL;
    ch_explanation *ex = NULL;
    if (J->explainer != NULL) {
        ch_error err = {0};
        vals = ch_calloc(CH_EXPLAIN_BATCH * ch_frame_n_cols(J->frame) + 1, sizeof *vals);
        ex = ch_malloc_array(CH_EXPLAIN_BATCH, sizeof *ex);
        ch_err rc = vals == NULL || ex == NULL ? ch_error_set(&err, CH_ENOMEM, "out of memory")
                                               : ch_explain_ws_new(J->explainer, &ws, &err);
        if (rc != CH_OK) {
            pthread_mutex_lock(&J->mu);
            if (J->rc == CH_OK) {
                J->rc = rc;
                J->err = err;
            }
            J->next = J->n_rows;
            pthread_mutex_unlock(&J->mu);
        }
    }
    for (;;) {
        size_t at;
        ch_error err = {0};
        ch_err rc;
        pthread_mutex_lock(&J->mu);
        at = J->next;
        J->next += BLOCK;
        pthread_mutex_unlock(&J->mu);
        if (at >= J->n_rows)
            break;
        size_t n = J->n_rows - at < BLOCK ? J->n_rows - at : BLOCK;
        ch_buf *b = &J->out[at / BLOCK];
        if (J->explainer != NULL) {
            explain_block(J, at, n, b, vals, ws, ex);
            rc = CH_OK;
        } else {
            for (size_t i = 0; i < n; i++)
                idx[i] = at + i;
            rc = ch_bundle_score_frame(J->bundle, J->frame, idx, n, J->prob + at, NULL, &err);
            if (rc == CH_OK)
                format_block(J, at, n, b);
        }
        if (rc == CH_OK && ch_buf_status(b) != CH_OK)
            rc = ch_error_set(&err, ch_buf_status(b), "out of memory formatting scores");
        if (rc != CH_OK) {
            pthread_mutex_lock(&J->mu);
            if (J->rc == CH_OK) {
                J->rc = rc;
                J->err = err;
            }
            J->next = J->n_rows;
            pthread_mutex_unlock(&J->mu);
            break;
        }
    }
    ch_explain_ws_free(ws);
    ch_free(ex);
    ch_free(vals);
    return NULL;
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
    ch_explainer *explainer = NULL;
    unsigned long long k_reasons = 0;
    unsigned long long k_actions = 0;
    int by_value = 0;
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
        } else if (strcmp(a, "--by-value") == 0) {
            by_value = 1;
        } else if (strcmp(a, "--explain") == 0 || strcmp(a, "--actions") == 0) {
            unsigned long long *k = strcmp(a, "--explain") == 0 ? &k_reasons : &k_actions;
            if (i + 1 >= argc || cli_parse_u64(argv[++i], k) != 0 || *k < 1 ||
                *k > CH_EXPLAIN_MAX_K)
                return cli_usage_error("score", "%s takes a number from 1 to %d", a,
                                       CH_EXPLAIN_MAX_K);
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
    if (k_reasons > 0 || k_actions > 0) {
        ch_error err = {0};
        ch_err rc = ch_explainer_new(bundle, &explainer, &err);
        if (rc != CH_OK) {
            code = cli_fail("score", rc, &err);
            goto done;
        }
    }
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
        J.explainer = explainer;
        J.k_reasons = (size_t)k_reasons;
        J.k_actions = (size_t)k_actions;
        J.by_value = by_value;
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
    ch_buf_puts(&b, "id,probability,label,risk_band");
    for (unsigned long long k = 1; k <= k_reasons; k++)
        ch_buf_printf(&b, ",reason_%llu,reason_%llu_logodds,reason_%llu_points", k, k, k);
    for (unsigned long long k = 1; k <= k_actions; k++)
        ch_buf_printf(&b, ",action_%llu,action_%llu_probability,action_%llu_value", k, k, k);
    ch_buf_putc(&b, '\n');
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
    ch_explainer_free(explainer);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_bundle_free(bundle);
    ch_config_free(cfg);
    return code;
}
