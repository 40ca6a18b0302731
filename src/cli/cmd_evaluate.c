/*
 * cmd_evaluate.c -- `churn evaluate`: a model's metrics on a labelled file.
 */
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/train.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn evaluate --model REF --data CSV [--json] [--config FILE]\n"
           "                      [--set NAME=VALUE]...\n"
           "\n"
           "Scores every accepted row of CSV (which must have the target column) with the\n"
           "model REF and prints ROC AUC, PR AUC, log loss, Brier score, expected\n"
           "calibration error, accuracy/precision/recall/F1 and the confusion matrix at\n"
           "the model's served threshold, and lift by decile.\n"
           "\n"
           "  --model REF   a bundle file, a registry version (3 or v3) or an alias\n"
           "                (champion, challenger)\n"
           "  --data CSV    labelled data in the model's schema\n"
           "  --json        print the metrics as JSON\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 2 file not readable, 3 invalid data, 4 model could\n"
           "not be loaded or used, 5 the registry failed.\n");
}

int cmd_evaluate(int argc, char **argv)
{
    cli_common com = {0};
    const char *ref = NULL;
    const char *data = NULL;
    int json = 0;
    ch_config *cfg = NULL;
    ch_bundle *bundle = NULL;
    ch_frame *frame = NULL;
    double *p = NULL;
    ch_error err = {0};
    ch_buf b;
    ch_err rc;
    int code;

    ch_buf_init(&b, 1 << 20);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "evaluate", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--data") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("evaluate", "%s needs a value", a);
            if (strcmp(a, "--model") == 0)
                ref = argv[++i];
            else
                data = argv[++i];
        } else {
            return cli_usage_error("evaluate", "unknown argument '%s'", a);
        }
    }
    if (ref == NULL || data == NULL)
        return cli_usage_error("evaluate", "give --model and --data");
    if ((code = cli_load_config(&com, "evaluate", &cfg)) != 0)
        return code;
    if ((code = cli_load_model(cfg, "evaluate", ref, &bundle, NULL)) != 0)
        goto done;
    if ((code = cli_ingest(cfg, "evaluate", ch_bundle_schema(bundle), data, 0, &frame, NULL)) != 0)
        goto done;
    {
        size_t n = ch_frame_n_rows(frame);
        const double *y = ch_frame_num(frame, (size_t)ch_schema_target(ch_bundle_schema(bundle)));
        p = ch_malloc_array(n + 1, sizeof *p);
        if (p == NULL) {
            code = cli_fail("evaluate", CH_ENOMEM, NULL);
            goto done;
        }
        rc = ch_bundle_score_frame(bundle, frame, NULL, 0, p, NULL, &err);
        if (rc == CH_OK)
            rc = ch_train_evaluate_json(y, p, n, ch_bundle_threshold(bundle), &b, &err);
        if (rc != CH_OK) {
            code = cli_fail("evaluate", rc == CH_EDATA ? CH_EDATA : rc, &err);
            goto done;
        }
    }
    if (json) {
        printf("%s\n", b.data);
    } else {
        ch_json *m = NULL;
        static const char *const keys[] = {"rows",      "roc_auc", "pr_auc",    "log_loss",
                                           "brier",     "ece",     "threshold", "accuracy",
                                           "precision", "recall",  "f1",        NULL};
        if (ch_json_parse(b.data, b.len, &m, &err) == CH_OK) {
            double v;
            const ch_json *c = ch_json_get(m, "confusion");
            for (size_t k = 0; keys[k] != NULL; k++)
                if (ch_json_num(ch_json_get(m, keys[k]), &v) == 0)
                    printf("%-10s %.4f\n", keys[k], v);
            printf("%-10s", "confusion");
            for (size_t k = 0; k < ch_json_len(c); k++) {
                const ch_json *cv;
                const char *name = ch_json_member(c, k, &cv);
                if (ch_json_num(cv, &v) == 0)
                    printf(" %s=%.0f", name, v);
            }
            printf("\n%-10s", "lift");
            for (size_t k = 0; k < 10; k++)
                if (ch_json_num(ch_json_get(ch_json_at(ch_json_get(m, "deciles"), k), "lift"),
                                &v) == 0)
                    printf(" %.2f", v);
            printf("\n");
            ch_json_free(m);
        }
    }
    code = CLI_OK;
done:
    ch_buf_reset(&b);
    ch_free(p);
    ch_frame_free(frame);
    ch_bundle_free(bundle);
    ch_config_free(cfg);
    return code;
}
