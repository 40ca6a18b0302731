/*
 * cmd_train.c -- `churn train`: cross-validate the configured model
 * families, pick and calibrate the winner, evaluate it once on held-out
 * rows, write its bundle and report, and register it as challenger.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/track.h"
#include "ch/train.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn train [--data CSV] [--features auto|config] [--json] [--no-register]\n"
           "                   [--reason TEXT] [--config FILE] [--set NAME=VALUE]...\n"
           "\n"
           "Trains every family in train.families (logistic regression 'logreg', gradient-\n"
           "boosted trees 'xgboost', a small neural network 'mlp') on the data: a stratified\n"
           "hold-out test split (split.test_fraction, split.seed), stratified k-fold\n"
           "cross-validation (train.folds) over each family's search grid (section\n"
           "\"search\" of the config), selection by CV ROC AUC, calibration on out-of-fold\n"
           "predictions, F1-optimal and value-based thresholds (the latter only when\n"
           "value.revenue_column names a numeric column), a refit on all training rows and\n"
           "one evaluation on the test rows.\n"
           "\n"
           "Writes <workdir>/runs/<id>/bundle.json (the model), report.md and result.json,\n"
           "records the run in the registry (registry.url) and registers the bundle as a\n"
           "new version with alias 'challenger' (and 'champion' when there is none yet).\n"
           "\n"
           "  --data CSV        training data (overrides data.path; default: synthetic)\n"
           "  --features auto   build the features from the schema alone (one-hot categories,\n"
           "                    imputed numbers with missing indicators, no derived columns)\n"
           "                    instead of the config's \"features\" section; 'auto' is also\n"
           "                    what a config without that section gets\n"
           "  --json            print the result as JSON on stdout\n"
           "  --no-register     record the run but do not register a model version\n"
           "  --reason TEXT     reason stored in the audit log (default \"trained\")\n"
           "  --config FILE     config file (default config/churn.json)\n"
           "  --set NAME=VALUE  override a setting (see 'churn config show')\n"
           "\n"
           "Progress goes to stderr when it is a terminal.\n"
           "Exit codes: 0 ok, 1 usage, 2 file not readable or writable, 3 invalid data or\n"
           "config, 4 training failed, 5 the registry failed.\n");
}

/* Prints the human summary of a result document. */
static void print_summary(const char *json, int64_t run_id, int64_t version, const char *dir)
{
    ch_json *r = NULL;
    const ch_json *fams;
    double v;
    if (ch_json_parse(json, strlen(json), &r, NULL) != CH_OK)
        return;
    fams = ch_json_get(r, "families");
    printf("%-8s %-48s %8s %8s\n", "family", "best parameters", "CV AUC", "sd");
    for (size_t f = 0; f < ch_json_len(fams); f++) {
        const ch_json *F = ch_json_at(fams, f);
        double best = 0;
        const ch_json *g;
        ch_buf pb;
        ch_json_num(ch_json_get(F, "best"), &best);
        g = ch_json_at(ch_json_get(F, "grid"), (size_t)best);
        ch_buf_init(&pb, 4096);
        for (size_t k = 0; k < ch_json_len(ch_json_get(g, "params")); k++) {
            const ch_json *pv;
            const char *pn = ch_json_member(ch_json_get(g, "params"), k, &pv);
            double d = 0;
            ch_json_num(pv, &d);
            ch_buf_printf(&pb, "%s%s=%g", k ? " " : "", pn, d);
        }
        ch_json_num(ch_json_get(g, "cv_auc_mean"), &v);
        printf("%-8s %-48s %8.4f", ch_json_str(ch_json_get(F, "family"), NULL),
               pb.data ? pb.data : "", v);
        ch_json_num(ch_json_get(g, "cv_auc_sd"), &v);
        printf(" %8.4f\n", v);
        ch_buf_reset(&pb);
    }
    printf("\nwinner    %s\n", ch_json_str(ch_json_get(ch_json_get(r, "winner"), "family"), NULL));
    if (ch_json_num(ch_json_get(ch_json_get(r, "test"), "roc_auc"), &v) == 0)
        printf("test      ROC AUC %.4f", v);
    if (ch_json_num(ch_json_get(ch_json_get(r, "test"), "ece"), &v) == 0)
        printf(", ECE %.4f", v);
    if (ch_json_num(ch_json_get(ch_json_get(r, "test"), "f1"), &v) == 0)
        printf(", F1 %.4f", v);
    printf("\n");
    if (ch_json_num(ch_json_get(ch_json_get(r, "thresholds"), "served"), &v) == 0)
        printf("threshold %.4f (%s)\n", v,
               ch_json_str(ch_json_get(ch_json_get(r, "thresholds"), "rule"), NULL));
    for (size_t k = 0; k < ch_json_len(ch_json_get(r, "notes")); k++)
        printf("note      %s\n", ch_json_str(ch_json_at(ch_json_get(r, "notes"), k), NULL));
    printf("run       %lld, outputs in %s\n", (long long)run_id, dir);
    if (version > 0)
        printf("model     version %lld registered as challenger\n", (long long)version);
    ch_json_free(r);
}

int cmd_train(int argc, char **argv)
{
    cli_common com = {0};
    const char *data = NULL;
    const char *reason = "trained";
    int json = 0;
    int do_register = 1;
    int force_auto = 0;
    int features_auto = 0;
    ch_config *cfg = NULL;
    ch_schema *schema = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    ch_pipeline_spec *spec = NULL;
    ch_registry *reg = NULL;
    ch_train_result *res = NULL;
    ch_train_opts o;
    ch_track_run tr;
    ch_track_saved saved;
    ch_error err = {0};
    ch_buf cj, lin;
    char data_buf[4096], fams[256], dir[4096];
    int64_t run_id = 0;
    int64_t version = 0;
    ch_err rc;
    int code;

    ch_buf_init(&cj, (size_t)16 << 20);
    ch_buf_init(&lin, 1 << 16);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "train", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--no-register") == 0) {
            do_register = 0;
        } else if (strcmp(a, "--features") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("train", "--features needs auto or config");
            if (cli_features_arg("train", argv[++i], &force_auto) != 0)
                return CLI_USAGE;
        } else if (strcmp(a, "--data") == 0 || strcmp(a, "--reason") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("train", "%s needs a value", a);
            if (strcmp(a, "--data") == 0)
                data = argv[++i];
            else
                reason = argv[++i];
        } else {
            return cli_usage_error("train", "unknown argument '%s'", a);
        }
    }
    if ((code = cli_load_config(&com, "train", &cfg)) != 0)
        return code;
    if ((code = cli_train_opts(cfg, "train", &o, fams, sizeof fams)) != 0)
        goto done;
    if (data == NULL) {
        if ((code = cli_data_path(cfg, "train", data_buf, sizeof data_buf)) != 0)
            goto done;
        data = data_buf;
    }
    if ((code = cli_load_schema(cfg, "train", &schema)) != 0)
        goto done;
    if ((code = cli_ingest(cfg, "train", schema, data, 0, &frame, &rep)) != 0)
        goto done;
    if ((code = cli_feature_spec(cfg, "train", schema, force_auto, &spec, &features_auto)) != 0)
        goto done;
    ch_config_to_json(cfg, &cj);
    if (ch_buf_status(&cj) != CH_OK) {
        code = cli_fail("train", CH_ENOMEM, NULL);
        goto done;
    }
    if ((code = cli_open_registry(cfg, "train", &reg)) != 0)
        goto done;
    /* The run is recorded first, so a failed training is recorded too. */
    memset(&tr, 0, sizeof tr);
    tr.dataset_sha256 = rep->sha256;
    tr.dataset_path = data;
    tr.dataset_rows = rep->rows_accepted;
    tr.config_json = cj.data;
    tr.features = features_auto ? "auto" : "config";
    tr.code_version = cli_code_version();
    tr.test_fraction = o.test_fraction;
    rc = ch_track_begin(reg, &tr, &lin, &run_id, &err);
    if (rc != CH_OK) {
        code = cli_fail("train", rc, &err);
        goto done;
    }
    rc = ch_train_run(schema, frame, spec, &o, lin.data, &res, &err);
    if (rc != CH_OK) {
        ch_error tmp = {0};
        code = cli_fail("train",
                        rc == CH_EINVAL   ? CH_EINVAL
                        : rc == CH_ENOMEM ? rc
                                          : CH_EMODEL,
                        &err);
        if (rc == CH_EINVAL)
            code = CLI_DATA;
        if (ch_registry_run_end(reg, run_id, "failed", "{}", 0, &tmp) != CH_OK)
            fprintf(stderr, "churn train: could not mark run %lld failed: %s\n", (long long)run_id,
                    tmp.msg);
        goto done;
    }
    /* Outputs, artifacts and metrics; then the run ends and the bundle
     * becomes a version. */
    snprintf(dir, sizeof dir, "%s/runs/%lld", ch_config_str(cfg, "workdir"), (long long)run_id);
    rc = ch_track_save(reg, run_id, dir, res, NULL, NULL, &saved, &err);
    if (rc == CH_OK)
        rc = ch_registry_run_end(reg, run_id, "ok", ch_train_result_json(res), saved.seconds, &err);
    if (rc == CH_OK && do_register)
        rc = ch_track_register(reg, run_id, &saved, res, rep->sha256, o.seed, o.test_fraction,
                               getenv("USER") ? getenv("USER") : "churn", reason, &version, &err);
    if (rc != CH_OK) {
        code = cli_fail("train", rc, &err);
        goto done;
    }
    if (json) {
        printf("%s\n", ch_train_result_json(res));
    } else {
        int64_t champ = 0;
        char cpath[4096];
        ch_error e2 = {0};
        print_summary(ch_train_result_json(res), run_id, version, dir);
        if (version > 0 &&
            ch_registry_resolve(reg, "champion", &champ, cpath, sizeof cpath, &e2) == CH_OK &&
            champ == version)
            printf("          and champion (there was none)\n");
        else if (version > 0)
            printf("          'churn models promote %lld' makes it champion if it beats "
                   "the current one\n",
                   (long long)version);
    }
    code = CLI_OK;
done:
    ch_buf_reset(&cj);
    ch_buf_reset(&lin);
    ch_train_result_free(res);
    ch_registry_close(reg);
    ch_pipeline_spec_free(spec);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_schema_free(schema);
    ch_config_free(cfg);
    return code;
}
