/*
 * cmd_runs.c -- `churn runs list|show|compare`: the tracking store.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void help(void)
{
    printf("usage: churn runs list [--limit N] [--json]\n"
           "       churn runs show ID [--json]\n"
           "       churn runs compare ID ID\n"
           "       (all take --config FILE and --set NAME=VALUE)\n"
           "\n"
           "list     training runs, newest first: status, duration, winner, CV and test\n"
           "         ROC AUC\n"
           "show     one run: lineage, configuration, every metric and artifact (JSON)\n"
           "compare  two runs side by side: winner, per-family CV ROC AUC, test metrics\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 5 the registry failed or has no such run.\n");
}

static double num(const ch_json *o, const char *a, const char *b, const char *c)
{
    double v = NAN;
    const ch_json *x = ch_json_get(o, a);
    if (b != NULL)
        x = ch_json_get(x, b);
    if (c != NULL)
        x = ch_json_get(x, c);
    ch_json_num(x, &v);
    return v;
}

/* Best CV mean ROC AUC of 'family' in a run summary, or NAN. */
static double family_cv(const ch_json *summary, const char *family)
{
    const ch_json *fams = ch_json_get(summary, "families");
    for (size_t i = 0; i < ch_json_len(fams); i++) {
        const ch_json *F = ch_json_at(fams, i);
        const char *name = ch_json_str(ch_json_get(F, "family"), NULL);
        double best = 0;
        if (name == NULL || strcmp(name, family) != 0)
            continue;
        ch_json_num(ch_json_get(F, "best"), &best);
        return num(ch_json_at(ch_json_get(F, "grid"), (size_t)best), "cv_auc_mean", NULL, NULL);
    }
    return NAN;
}

static int load(ch_registry *reg, int64_t id, ch_buf *b, ch_json **out)
{
    ch_error err = {0};
    ch_err rc = ch_registry_run_json(reg, id, b, &err);
    if (rc == CH_OK)
        rc = ch_json_parse(b->data, b->len, out, &err);
    return rc == CH_OK ? 0 : cli_fail("runs", rc == CH_ENOTFOUND ? CH_EDB : rc, &err);
}

int cmd_runs(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *ids[2] = {NULL, NULL};
    unsigned long long limit = 20;
    int json = 0;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_error err = {0};
    ch_buf b, b2;
    ch_json *doc = NULL;
    ch_json *doc2 = NULL;
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "runs", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--limit") == 0) {
            if (i + 1 >= argc || cli_parse_u64(argv[++i], &limit) != 0)
                return cli_usage_error("runs", "--limit needs a whole number");
        } else if (a[0] == '-') {
            return cli_usage_error("runs", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else if (ids[0] == NULL) {
            ids[0] = a;
        } else if (ids[1] == NULL) {
            ids[1] = a;
        } else {
            return cli_usage_error("runs", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL)
        return cli_usage_error("runs", "say list, show or compare");
    if (strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0 && strcmp(sub, "compare") != 0)
        return cli_usage_error("runs", "unknown subcommand '%s'", sub);
    if ((strcmp(sub, "show") == 0 && ids[0] == NULL) ||
        (strcmp(sub, "compare") == 0 && ids[1] == NULL))
        return cli_usage_error("runs", "%s needs %s run id%s", sub,
                               strcmp(sub, "show") == 0 ? "a" : "two",
                               strcmp(sub, "show") == 0 ? "" : "s");
    for (int k = 0; k < 2; k++) {
        unsigned long long v;
        if (ids[k] != NULL && cli_parse_u64(ids[k], &v) != 0)
            return cli_usage_error("runs", "'%s' is not a run id", ids[k]);
    }
    if ((code = cli_load_config(&com, "runs", &cfg)) != 0)
        return code;
    if ((code = cli_open_registry(cfg, "runs", &reg)) != 0) {
        ch_config_free(cfg);
        return code;
    }
    ch_buf_init(&b, (size_t)64 << 20);
    ch_buf_init(&b2, (size_t)64 << 20);
    if (strcmp(sub, "list") == 0) {
        ch_err rc = ch_registry_runs_json(reg, (size_t)limit, &b, &err);
        if (rc != CH_OK) {
            code = cli_fail("runs", rc, &err);
        } else if (json) {
            printf("%s\n", b.data);
        } else if ((rc = ch_json_parse(b.data, b.len, &doc, &err)) != CH_OK) {
            code = cli_fail("runs", rc, &err);
        } else {
            printf("%-5s %-24s %-8s %8s  %-8s %8s %8s\n", "run", "started", "status", "seconds",
                   "winner", "CV AUC", "test AUC");
            for (size_t i = 0; i < ch_json_len(doc); i++) {
                const ch_json *r = ch_json_at(doc, i);
                const ch_json *s = ch_json_get(r, "summary");
                const char *w = ch_json_str(ch_json_get(ch_json_get(s, "winner"), "family"), NULL);
                printf("%-5.0f %-24s %-8s %8.1f  %-8s %8.4f %8.4f\n", num(r, "id", NULL, NULL),
                       ch_json_str(ch_json_get(r, "started"), NULL),
                       ch_json_str(ch_json_get(r, "status"), NULL), num(r, "seconds", NULL, NULL),
                       w ? w : "-", w ? family_cv(s, w) : NAN, num(s, "test", "roc_auc", NULL));
            }
        }
    } else if (strcmp(sub, "show") == 0) {
        unsigned long long id = 0;
        cli_parse_u64(ids[0], &id);
        if ((code = load(reg, (int64_t)id, &b, &doc)) == 0)
            printf("%s\n", b.data);
    } else {
        unsigned long long a = 0;
        unsigned long long c = 0;
        cli_parse_u64(ids[0], &a);
        cli_parse_u64(ids[1], &c);
        if ((code = load(reg, (int64_t)a, &b, &doc)) == 0 &&
            (code = load(reg, (int64_t)c, &b2, &doc2)) == 0) {
            const ch_json *s1 = ch_json_get(doc, "summary");
            const ch_json *s2 = ch_json_get(doc2, "summary");
            static const char *const fams[] = {"logreg", "xgboost", "mlp"};
            static const char *const keys[] = {"roc_auc", "pr_auc", "log_loss", "brier",
                                               "ece",     "f1",     NULL};
            const char *w1 = ch_json_str(ch_json_get(ch_json_get(s1, "winner"), "family"), NULL);
            const char *w2 = ch_json_str(ch_json_get(ch_json_get(s2, "winner"), "family"), NULL);
            printf("%-22s %12s %12s %10s\n", "", ids[0], ids[1], "change");
            printf("%-22s %12s %12s\n", "winner", w1 ? w1 : "-", w2 ? w2 : "-");
            for (size_t f = 0; f < 3; f++) {
                char label[40];
                double x = family_cv(s1, fams[f]);
                double y = family_cv(s2, fams[f]);
                snprintf(label, sizeof label, "CV AUC %s", fams[f]);
                printf("%-22s %12.4f %12.4f %+10.4f\n", label, x, y, y - x);
            }
            for (size_t k = 0; keys[k] != NULL; k++) {
                char label[40];
                double x = num(s1, "test", keys[k], NULL);
                double y = num(s2, "test", keys[k], NULL);
                snprintf(label, sizeof label, "test %s", keys[k]);
                printf("%-22s %12.4f %12.4f %+10.4f\n", label, x, y, y - x);
            }
            printf("%-22s %12.4f %12.4f\n", "served threshold",
                   num(s1, "thresholds", "served", NULL), num(s2, "thresholds", "served", NULL));
        }
    }
    ch_json_free(doc);
    ch_json_free(doc2);
    ch_buf_reset(&b);
    ch_buf_reset(&b2);
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}
