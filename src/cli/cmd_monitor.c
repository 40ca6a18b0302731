/*
 * cmd_monitor.c -- `churn monitor drift|decay|estimate|report`.
 *
 * The data is either the prediction log (a window of served predictions,
 * through ch_watch_run, exactly as the scheduler in `churn serve` reads
 * it) or a CSV file scored on the spot with the model (--data). Results
 * print as a short table, as JSON (--json), or, for 'report', as one
 * self-contained HTML page.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ch/alloc.h"
#include "ch/monitor.h"
#include "ch/report.h"
#include "ch/watch.h"
#include "cli.h"

#define CMD "monitor"

static void help(void)
{
    printf("usage: churn monitor drift|decay|estimate|report [--model REF] [--window W]\n"
           "                     [--data CSV] [--json] [-o FILE] [--config FILE]\n"
           "                     [--set NAME=VALUE]...\n"
           "\n"
           "Compares current data with the model's training reference (docs/monitoring.md).\n"
           "\n"
           "drift     per input column PSI, Jensen-Shannon distance, a Kolmogorov-Smirnov\n"
           "          (numbers) or chi-square (categories) test with p-values adjusted\n"
           "          across columns, Wasserstein distance, missing and unseen shares; the\n"
           "          same for the churn probability\n"
           "decay     realized ROC AUC, PR AUC, Brier, log loss and F1 from the predictions\n"
           "          whose outcome came back as feedback, with bootstrap intervals, per\n"
           "          model version, judged from monitor.min_labels labels\n"
           "estimate  the label-free estimate of ROC AUC, F1 and accuracy from the\n"
           "          calibrated probabilities, per version, and the diagnosis: covariate\n"
           "          shift or concept drift\n"
           "report    all three as one HTML page with charts, readable offline\n"
           "\n"
           "  --model REF    the model drift is measured for: a version, champion (default)\n"
           "                 or challenger; with --data also a bundle file\n"
           "  --window W     served predictions to read: a span ending now (30m, 24h, 7d,\n"
           "                 2w) or the latest N (50000); default monitor.window\n"
           "  --data CSV     measure this file instead of the prediction log: its rows are\n"
           "                 scored with the model, and its target, when present, gives the\n"
           "                 labels\n"
           "  --json         print the result as JSON\n"
           "  -o FILE        write the output to FILE (report: the HTML page)\n"
           "  --config FILE  config file (default config/churn.json)\n"
           "  --set N=V      override a setting (monitor.psi_alert=0.2, ...)\n"
           "\n"
           "Exit codes: 0 ok (whatever the verdict; see \"status\" in the JSON), 1 usage,\n"
           "2 a file could not be read or written, 3 invalid data, 4 the model has no\n"
           "monitoring profile or cannot be loaded, 5 the registry failed.\n");
}

/* The documents of one run, whichever source they came from. */
typedef struct docs {
    char *drift, *decay, *estimate;
    char model[128];
    char window[160];
} docs;

static void docs_free(docs *d)
{
    ch_free(d->drift);
    ch_free(d->decay);
    ch_free(d->estimate);
}

/* Wraps one version's document as {"kind", "versions": [{...}]}, the
 * shape the prediction log gives. */
static char *wrap(const char *kind, int64_t version, size_t rows, const char *doc)
{
    ch_buf b;
    ch_buf_init(&b, (size_t)64 << 20);
    ch_buf_printf(&b,
                  "{\"kind\": \"%s\", \"versions\": [{\"version\": %lld, \"rows\": %zu, "
                  "\"skipped\": 0, \"result\": %s}]}",
                  kind, (long long)version, rows, doc);
    return ch_buf_take(&b, NULL);
}

/* Scores CSV 'path' with the model and computes the documents. */
static int from_csv(const ch_config *cfg, const ch_watch_job *job, const char *ref,
                    const char *path, docs *d)
{
    ch_bundle *bundle = NULL;
    ch_monitor_ref *mref = NULL;
    ch_monitor_window *w = NULL;
    ch_frame *frame = NULL;
    double *p = NULL;
    int64_t version = 0;
    ch_error err = {0};
    ch_buf b;
    ch_err rc;
    int code;

    ch_buf_init(&b, (size_t)64 << 20);
    if ((code = cli_load_model(cfg, CMD, ref, &bundle, &version)) != 0)
        return code;
    rc = ch_monitor_ref_load(bundle, &mref, &err);
    if (rc != CH_OK) {
        code = cli_fail(CMD, CH_EMODEL, &err);
        goto done;
    }
    if ((code = cli_ingest(cfg, CMD, ch_bundle_schema(bundle), path, 1, &frame, NULL)) != 0)
        goto done;
    p = ch_malloc_array(ch_frame_n_rows(frame) + 1, sizeof *p);
    rc = p == NULL
             ? ch_error_set(&err, CH_ENOMEM, "out of memory")
             : ch_bundle_score_frame(bundle, frame, NULL, ch_frame_n_rows(frame), p, NULL, &err);
    if (rc == CH_OK)
        rc = ch_monitor_window_new(mref, job->opts.seed, &w, &err);
    if (rc == CH_OK)
        rc = ch_monitor_window_add_frame(w, frame, p, &err);
    if (rc == CH_OK && (rc = ch_monitor_drift(w, &job->opts, &b, NULL, &err)) == CH_OK)
        d->drift = ch_buf_take(&b, NULL);
    if (rc == CH_OK && (rc = ch_monitor_decay(w, &job->opts, &b, NULL, &err)) == CH_OK) {
        d->decay = wrap("decay", version, ch_monitor_window_rows(w), b.data);
        ch_buf_clear(&b);
    }
    if (rc == CH_OK && (rc = ch_monitor_estimate(w, &job->opts, &b, NULL, &err)) == CH_OK) {
        d->estimate = wrap("estimate", version, ch_monitor_window_rows(w), b.data);
        ch_buf_clear(&b);
    }
    if (rc == CH_OK && (d->drift == NULL || d->decay == NULL || d->estimate == NULL))
        rc = ch_error_set(&err, CH_ENOMEM, "out of memory");
    if (rc != CH_OK) {
        code = cli_fail(CMD, rc, &err);
        goto done;
    }
    if (version > 0)
        snprintf(d->model, sizeof d->model, "version %lld (%s)", (long long)version, ref);
    else
        snprintf(d->model, sizeof d->model, "%s", ref);
    snprintf(d->window, sizeof d->window, "%zu rows of %s", ch_frame_n_rows(frame), path);
    code = 0;
done:
    ch_buf_reset(&b);
    ch_free(p);
    ch_frame_free(frame);
    ch_monitor_window_free(w);
    ch_monitor_ref_free(mref);
    ch_bundle_free(bundle);
    return code;
}

static void utc(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

static int from_log(const ch_config *cfg, const ch_watch_job *job, docs *d)
{
    ch_registry *reg = NULL;
    ch_watch_result res;
    ch_error err = {0};
    ch_err rc;
    int code;
    if ((code = cli_open_registry(cfg, CMD, &reg)) != 0)
        return code;
    rc = ch_watch_run(reg, job, &res, &err);
    ch_registry_close(reg);
    if (rc != CH_OK)
        return cli_fail(CMD, rc == CH_EFORMAT ? CH_EMODEL : rc, &err);
    d->drift = res.drift_json;
    d->decay = res.decay_json;
    d->estimate = res.estimate_json;
    res.drift_json = res.decay_json = res.estimate_json = NULL;
    snprintf(d->model, sizeof d->model, "version %lld (%s)", (long long)res.version, job->model);
    if (res.since_ms > 0) {
        char a[40];
        char b[40];
        utc(res.since_ms, a, sizeof a);
        utc(res.until_ms, b, sizeof b);
        snprintf(d->window, sizeof d->window, "%s: %s to %s, %zu predictions", job->window, a, b,
                 res.rows);
    } else {
        snprintf(d->window, sizeof d->window, "the latest %s predictions (%zu read)", job->window,
                 res.rows);
    }
    if (res.skipped > 0)
        fprintf(stderr, "churn monitor: %zu predictions had no usable inputs or model profile\n",
                res.skipped);
    ch_watch_result_reset(&res);
    return 0;
}

static double jnum(const ch_json *o, const char *k)
{
    double v;
    return ch_json_num(ch_json_get(o, k), &v) == 0 ? v : NAN;
}

static const char *jstr(const ch_json *o, const char *k)
{
    const char *s = ch_json_str(ch_json_get(o, k), NULL);
    return s != NULL ? s : "";
}

static void print_drift(FILE *f, const ch_json *d)
{
    const ch_json *cols = ch_json_get(d, "columns");
    const ch_json *sc = ch_json_get(d, "score");
    fprintf(f, "drift: %s over %.0f rows (reference %.0f rows)\n", jstr(d, "status"),
            jnum(d, "rows"), jnum(d, "reference_rows"));
    if (ch_json_len(cols) == 0)
        return;
    fprintf(f, "%-28s %-11s %8s %8s %11s  %s\n", "column", "kind", "PSI", "JS", "adjusted p",
            "verdict");
    for (size_t i = 0; i < ch_json_len(cols); i++) {
        const ch_json *c = ch_json_at(cols, i);
        fprintf(f, "%-28.28s %-11s %8.4f %8.4f %11.3g  %s\n", jstr(c, "name"), jstr(c, "kind"),
                jnum(c, "psi"), jnum(c, "js"), jnum(ch_json_get(c, "test"), "p_adjusted"),
                jstr(c, "status"));
    }
    fprintf(f, "%-28s %-11s %8.4f %8.4f %11.3g  %s\n", "(churn probability)", "score",
            jnum(sc, "psi"), jnum(sc, "js"), jnum(ch_json_get(sc, "test"), "p"),
            jstr(sc, "status"));
}

static void print_versions(FILE *f, const ch_json *d, int decay)
{
    const ch_json *vs = ch_json_get(d, "versions");
    for (size_t i = 0; i < ch_json_len(vs); i++) {
        const ch_json *v = ch_json_at(vs, i);
        const ch_json *r = ch_json_get(v, "result");
        fprintf(f, "version %.0f: %.0f predictions", jnum(v, "version"), jnum(v, "rows"));
        if (r == NULL) {
            fprintf(f, ", not monitored: %s\n", jstr(v, "reason"));
            continue;
        }
        if (decay) {
            const ch_json *auc = ch_json_get(ch_json_get(r, "metrics"), "roc_auc");
            fprintf(f, ", %.0f labels: %s", jnum(r, "labels"), jstr(r, "status"));
            if (auc != NULL)
                fprintf(f, ", ROC AUC %.4f [%.4f, %.4f]", jnum(auc, "value"), jnum(auc, "lo"),
                        jnum(auc, "hi"));
            fprintf(f, " (reference %.4f)\n", jnum(r, "reference_roc_auc"));
        } else {
            fprintf(f, ": %s, estimated ROC AUC %.4f (reference scores %.4f, test %.4f), F1 %.4f",
                    jstr(r, "status"), jnum(ch_json_get(r, "estimated"), "roc_auc"),
                    jnum(ch_json_get(r, "reference_estimate"), "roc_auc"),
                    jnum(r, "reference_roc_auc"), jnum(ch_json_get(r, "estimated"), "f1"));
            fprintf(f, "; diagnosis %s\n", jstr(r, "diagnosis"));
            if (jstr(r, "diagnosis_text")[0] != '\0')
                fprintf(f, "  %s\n", jstr(r, "diagnosis_text"));
        }
    }
}

static int emit(const char *out, const char *text, size_t len)
{
    if (out == NULL) {
        fwrite(text, 1, len, stdout);
        return 0;
    }
    return cli_write_file(CMD, out, text, len);
}

int cmd_monitor(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *model = NULL;
    const char *window = NULL;
    const char *data = NULL;
    const char *out = NULL;
    int json = 0;
    ch_config *cfg = NULL;
    ch_watch_job job;
    ch_error err = {0};
    docs d;
    int code;

    memset(&d, 0, sizeof d);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, CMD, argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--window") == 0 ||
                   strcmp(a, "--data") == 0 || strcmp(a, "-o") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "%s needs a value", a);
            if (strcmp(a, "--model") == 0)
                model = argv[++i];
            else if (strcmp(a, "--window") == 0)
                window = argv[++i];
            else if (strcmp(a, "--data") == 0)
                data = argv[++i];
            else
                out = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else {
            return cli_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL || (strcmp(sub, "drift") != 0 && strcmp(sub, "decay") != 0 &&
                        strcmp(sub, "estimate") != 0 && strcmp(sub, "report") != 0))
        return cli_usage_error(CMD, "say drift, decay, estimate or report");
    if (data != NULL && window != NULL)
        return cli_usage_error(CMD, "--window reads the prediction log; --data reads a file");
    if ((code = cli_load_config(&com, CMD, &cfg)) != 0)
        return code;
    if (ch_watch_job_from_config(cfg, &job, &err) != CH_OK) {
        cli_fail(CMD, CH_EINVAL, &err);
        code = CLI_DATA; /* a bad setting, as for the other commands */
        goto done;
    }
    if (model != NULL)
        job.model = model;
    if (window != NULL) {
        int64_t span;
        size_t n;
        if (ch_watch_parse_window(window, &span, &n, &err) != CH_OK) {
            code = cli_usage_error(CMD, "--window: %s", err.msg);
            goto done;
        }
        job.window = window;
    }
    code = data != NULL ? from_csv(cfg, &job, job.model, data, &d) : from_log(cfg, &job, &d);
    if (code != 0)
        goto done;
    if (strcmp(sub, "report") == 0) {
        ch_json *jd = NULL, *jc = NULL, *je = NULL;
        ch_buf b;
        char when[40];
        ch_report_meta meta = {NULL, d.model, d.window, when};
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        utc((int64_t)ts.tv_sec * 1000, when, sizeof when);
        ch_buf_init(&b, (size_t)64 << 20);
        if (ch_json_parse(d.drift, strlen(d.drift), &jd, &err) != CH_OK ||
            ch_json_parse(d.decay, strlen(d.decay), &jc, &err) != CH_OK ||
            ch_json_parse(d.estimate, strlen(d.estimate), &je, &err) != CH_OK) {
            code = cli_fail(CMD, CH_ENOMEM, &err);
        } else {
            /* The page shows the model's own version entry. */
            const ch_json *dv = ch_json_get(ch_json_at(ch_json_get(jc, "versions"), 0), "result");
            const ch_json *ev = ch_json_get(ch_json_at(ch_json_get(je, "versions"), 0), "result");
            for (size_t i = 0; i < ch_json_len(ch_json_get(jc, "versions")); i++) {
                const ch_json *v = ch_json_at(ch_json_get(jc, "versions"), i);
                char want[32];
                snprintf(want, sizeof want, "version %.0f ", jnum(v, "version"));
                if (strncmp(d.model, want, strlen(want)) == 0) {
                    dv = ch_json_get(v, "result");
                    ev = ch_json_get(ch_json_at(ch_json_get(je, "versions"), i), "result");
                }
            }
            if (ch_report_html(&meta, jd, dv, ev, &b) != CH_OK)
                code = cli_fail(CMD, ch_buf_status(&b), NULL);
            else
                code = emit(out, b.data, b.len);
            if (code == 0 && out != NULL)
                fprintf(stderr, "churn monitor: report written to %s\n", out);
        }
        ch_buf_reset(&b);
        ch_json_free(jd);
        ch_json_free(jc);
        ch_json_free(je);
        goto done;
    }
    {
        const char *text = strcmp(sub, "drift") == 0   ? d.drift
                           : strcmp(sub, "decay") == 0 ? d.decay
                                                       : d.estimate;
        if (json) {
            code = emit(out, text, strlen(text));
            if (code == 0 && out == NULL)
                putchar('\n');
        } else {
            ch_json *j = NULL;
            FILE *f = stdout;
            if (out != NULL && (f = fopen(out, "w")) == NULL) {
                fprintf(stderr, "churn monitor: cannot write %s\n", out);
                code = CLI_IO;
                goto done;
            }
            fprintf(f, "model %s; %s\n", d.model, d.window);
            if (ch_json_parse(text, strlen(text), &j, NULL) == CH_OK) {
                if (strcmp(sub, "drift") == 0)
                    print_drift(f, j);
                else
                    print_versions(f, j, strcmp(sub, "decay") == 0);
            }
            ch_json_free(j);
            if (f != stdout && fclose(f) != 0)
                code = CLI_IO;
        }
    }
done:
    docs_free(&d);
    ch_config_free(cfg);
    return code;
}
