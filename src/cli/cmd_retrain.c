/*
 * cmd_retrain.c -- `churn retrain`: retrain the champion's model on the
 * base data plus the feedback-labelled predictions, and register the
 * result as challenger only when it beats the champion (retrain.h does
 * the work). Ctrl-C or SIGTERM raise the training's cancel flag, so an
 * interrupted run is recorded as failed ("cancelled") rather than left
 * "running".
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ch/retrain.h"
#include "cli.h"

#define CMD "retrain"

/* The handler writes a sig_atomic_t; training reads it through its
 * 'const volatile int *' flag, which is the same object when sig_atomic_t
 * is int (it is on every platform the project builds on). */
_Static_assert(_Generic((sig_atomic_t)0, int : 1, default : 0), "sig_atomic_t must be int");
static volatile sig_atomic_t cancel_flag;

static void on_signal(int sig)
{
    (void)sig;
    cancel_flag = 1;
}

static void help(void)
{
    printf("usage: churn retrain [--since DATE | --since-ms MS] [--min-labels N] [--no-base]\n"
           "                     [--json] [--config FILE] [--set NAME=VALUE]...\n"
           "\n"
           "Retrains on the training data plus the predictions whose true outcome came back\n"
           "as feedback (their logged input values joined to the label), and registers the\n"
           "result as 'challenger' only when it beats the champion: its ROC AUC on its own\n"
           "held-out test rows must exceed the champion's on the same rows by more than\n"
           "retrain.margin. The champion is never changed here ('churn models promote\n"
           "challenger' does that, through its own gate).\n"
           "\n"
           "The data is the base file (retrain.base_data: \"config\" is data.path, or the\n"
           "synthetic customers when it is empty; \"none\" is no file), read with the\n"
           "champion's schema, then one row per labelled prediction served by a version of\n"
           "that schema. Predictions of other schemas, served from a file, or without\n"
           "usable logged inputs are skipped and counted. Training follows 'churn train'\n"
           "with the same settings (train.*, split.*, value.*, the \"features\" and \"search\"\n"
           "sections of the config).\n"
           "\n"
           "Writes the combined data to <workdir>/retrain/data/<sha256>.csv and bundle.json,\n"
           "report.md, result.json and data.csv (a link to the data) to\n"
           "<workdir>/retrain/<run id>/, and records the run in the registry, also when the\n"
           "gate refuses (then audited as 'retrain-refused').\n"
           "\n"
           "  --since DATE      only predictions logged on or after DATE (YYYY-MM-DD, UTC)\n"
           "  --since-ms MS     the same as a unix time in milliseconds (default: all)\n"
           "  --min-labels N    refuse below N usable labelled predictions (default\n"
           "                    retrain.min_labels)\n"
           "  --no-base         no base file: the labelled predictions alone\n"
           "                    (retrain.base_data=none)\n"
           "  --json            print the result as JSON on stdout\n"
           "  --config FILE     config file (default config/churn.json)\n"
           "  --set NAME=VALUE  override a setting (see 'churn config show')\n"
           "\n"
           "Progress goes to stderr when it is a terminal. Ctrl-C (or SIGTERM) stops the\n"
           "training after the fits already running, marks the run failed (\"cancelled\")\n"
           "and exits 4.\n"
           "Exit codes: 0 registered, or refused by the gate (the output says which),\n"
           "1 usage, 2 a file could not be read or written, 3 too few labelled predictions,\n"
           "or invalid data or config, 4 training failed or was interrupted, 5 no champion,\n"
           "or the registry failed.\n");
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era;
    int64_t yoe;
    int64_t doy;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* "YYYY-MM-DD" (a real date from 1970 on) as unix ms at 00:00 UTC. */
static int parse_date_ms(const char *s, int64_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t y = 0;
    int64_t m = 0;
    int64_t d = 0;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (i < 4)
            y = y * 10 + (s[i] - '0');
        else if (i < 7)
            m = m * 10 + (s[i] - '0');
        else
            d = d * 10 + (s[i] - '0');
    }
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return -1;
    if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return -1;
    *out = days_from_civil(y, m, d) * 86400000LL;
    return 0;
}

static void utc_date(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void print_json(const ch_retrain_result *r, double margin)
{
    ch_buf b;
    ch_buf_init(&b, 1 << 20);
    ch_buf_printf(&b, "{\"verdict\": \"%s\", \"run_id\": %lld, \"version\": ",
                  r->version > 0 ? "registered" : "refused", (long long)r->run_id);
    if (r->version > 0)
        ch_buf_printf(&b, "%lld", (long long)r->version);
    else
        ch_buf_puts(&b, "null");
    ch_buf_printf(&b,
                  ", \"champion\": %lld, \"base_rows\": %zu, \"label_rows\": %zu, "
                  "\"skipped_schema\": %zu, \"skipped_inputs\": %zu, \"rejected_rows\": %zu, "
                  "\"candidate_auc\": ",
                  (long long)r->champion, r->base_rows, r->label_rows, r->skipped_schema,
                  r->skipped_inputs, r->rejected_rows);
    ch_buf_json_num(&b, r->candidate_auc);
    ch_buf_puts(&b, ", \"champion_auc\": ");
    ch_buf_json_num(&b, r->champion_auc);
    ch_buf_puts(&b, ", \"margin\": ");
    ch_buf_json_num(&b, margin);
    ch_buf_printf(&b, ", \"dataset_sha256\": \"%s\", \"dataset_path\": ", r->dataset_sha256);
    ch_buf_json_str(&b, r->dataset_path, strlen(r->dataset_path));
    ch_buf_puts(&b, ", \"run_dir\": ");
    ch_buf_json_str(&b, r->run_dir, strlen(r->run_dir));
    ch_buf_puts(&b, ", \"bundle\": ");
    ch_buf_json_str(&b, r->bundle_path, strlen(r->bundle_path));
    ch_buf_puts(&b, ", \"note\": ");
    ch_buf_json_str(&b, r->note, strlen(r->note));
    ch_buf_putc(&b, '}');
    if (ch_buf_status(&b) == CH_OK)
        printf("%s\n", b.data);
    ch_buf_reset(&b);
}

static void print_summary(const ch_retrain_result *r, const char *base, int64_t since_ms,
                          double margin)
{
    char when[40];
    if (base != NULL)
        printf("base      %s: %zu rows\n", base, r->base_rows);
    else
        printf("base      none\n");
    if (since_ms > 0) {
        utc_date(since_ms, when, sizeof when);
        printf("labels    %zu labelled predictions logged since %s", r->label_rows, when);
    } else {
        printf("labels    %zu labelled predictions", r->label_rows);
    }
    if (r->skipped_schema + r->skipped_inputs > 0)
        printf(" (skipped: %zu of another schema, %zu without usable inputs)", r->skipped_schema,
               r->skipped_inputs);
    printf("\n");
    printf("dataset   %zu rows", r->base_rows + r->label_rows - r->rejected_rows);
    if (r->rejected_rows > 0)
        printf(" (%zu rejected by the schema)", r->rejected_rows);
    printf(", sha256 %.16s..., %s\n", r->dataset_sha256, r->dataset_path);
    printf("candidate ROC AUC %.4f on its held-out test rows\n", r->candidate_auc);
    printf("champion  v%lld ROC AUC %.4f on the same rows (margin %g)\n", (long long)r->champion,
           r->champion_auc, margin);
    if (r->version > 0)
        printf("verdict   registered: version %lld is the challenger; the champion is still "
               "v%lld\n",
               (long long)r->version, (long long)r->champion);
    else
        printf("verdict   refused by the gate (%s); nothing registered\n", r->note);
    printf("run       %lld, outputs in %s\n", (long long)r->run_id, r->run_dir);
    if (r->version > 0)
        printf("          'churn models promote %lld' makes it champion if it beats the "
               "champion there too\n",
               (long long)r->version);
}

int cmd_retrain(int argc, char **argv)
{
    cli_common com = {0};
    int json = 0;
    int no_base = 0;
    int have_since = 0;
    int have_min = 0;
    int64_t since_ms = 0;
    unsigned long long min_labels = 0;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_retrain_opts o;
    ch_retrain_result res;
    ch_error err = {0};
    ch_buf cj;
    char data_buf[4096], fams[256];
    const char *base = NULL;
    const char *bd;
    struct sigaction sa, old_int, old_term;
    ch_err rc;
    int code;

    memset(&res, 0, sizeof res);
    ch_buf_init(&cj, (size_t)16 << 20);
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
        } else if (strcmp(a, "--no-base") == 0) {
            no_base = 1;
        } else if (strcmp(a, "--since") == 0 || strcmp(a, "--since-ms") == 0 ||
                   strcmp(a, "--min-labels") == 0) {
            unsigned long long v = 0;
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "%s needs a value", a);
            i++;
            if (strcmp(a, "--since") == 0) {
                if (have_since)
                    return cli_usage_error(CMD, "give --since or --since-ms once");
                if (parse_date_ms(argv[i], &since_ms) != 0)
                    return cli_usage_error(CMD, "--since needs a date YYYY-MM-DD, not '%s'",
                                           argv[i]);
                have_since = 1;
            } else if (cli_parse_u64(argv[i], &v) != 0) {
                return cli_usage_error(CMD, "%s needs a whole number, not '%s'", a, argv[i]);
            } else if (strcmp(a, "--since-ms") == 0) {
                if (have_since)
                    return cli_usage_error(CMD, "give --since or --since-ms once");
                since_ms = (int64_t)v;
                have_since = 1;
            } else {
                min_labels = v;
                have_min = 1;
            }
        } else {
            return cli_usage_error(CMD, "unknown argument '%s'", a);
        }
    }
    if ((code = cli_load_config(&com, CMD, &cfg)) != 0)
        return code;
    ch_retrain_opts_default(&o);
    if ((code = cli_train_opts(cfg, CMD, &o.train, fams, sizeof fams)) != 0)
        goto done;
    bd = ch_config_str(cfg, "retrain.base_data");
    if (strcmp(bd, "config") != 0 && strcmp(bd, "none") != 0) {
        code = cli_usage_error(CMD, "retrain.base_data must be \"config\" or \"none\", not \"%s\"",
                               bd);
        goto done;
    }
    if (!no_base && strcmp(bd, "config") == 0) {
        if ((code = cli_data_path(cfg, CMD, data_buf, sizeof data_buf)) != 0)
            goto done;
        base = data_buf;
    }
    ch_config_to_json(cfg, &cj);
    if (ch_buf_status(&cj) != CH_OK) {
        code = cli_fail(CMD, CH_ENOMEM, NULL);
        goto done;
    }
    o.base_csv = base;
    o.labels_since_ms = since_ms;
    o.min_labels = have_min ? (size_t)min_labels : (size_t)ch_config_num(cfg, "retrain.min_labels");
    o.workdir = ch_config_str(cfg, "workdir");
    o.margin = ch_config_num(cfg, "retrain.margin");
    o.features = ch_config_section(cfg, "features");
    o.actor = cli_actor();
    o.reason = "retrained from feedback";
    o.config_json = cj.data;
    o.code_version = cli_code_version();
    o.max_reject_rate = ch_config_num(cfg, "data.max_reject_rate");
    o.train.cancel = (const volatile int *)&cancel_flag;
    if ((code = cli_open_registry(cfg, CMD, &reg)) != 0)
        goto done;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = ch_retrain_run(reg, &o, &res, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc != CH_OK) {
        code = cli_fail(CMD, rc == CH_EINVAL ? CH_EDATA : rc, &err);
        if (rc == CH_ENOTFOUND)
            code = CLI_STORE;
        if (rc == CH_ECANCELLED && res.run_id > 0)
            fprintf(stderr, "churn %s: run %lld marked failed (cancelled)\n", CMD,
                    (long long)res.run_id);
        goto done;
    }
    if (json)
        print_json(&res, o.margin);
    else
        print_summary(&res, base, since_ms, o.margin);
    code = CLI_OK;
done:
    ch_buf_reset(&cj);
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}
