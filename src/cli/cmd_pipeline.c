/*
 * cmd_pipeline.c -- `churn pipeline fit|show|transform`.
 *
 * fit: read the configured data through the schema, hold out the test
 * rows (stratified, seeded), fit the feature pipeline on the training rows
 * only, and save it. show: list a saved pipeline's features and the input
 * columns behind each. transform: write a CSV of features for a data file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/features.h"
#include "ch/split.h"
#include "cli.h"

static void help(void)
{
    printf(
        "usage: churn pipeline fit [--data CSV] [-o FILE] [--features auto|config] [--config "
        "FILE]\n"
        "                          [--set NAME=VALUE]...\n"
        "       churn pipeline show [FILE] [--pipeline FILE] [--config FILE] [--set "
        "NAME=VALUE]...\n"
        "       churn pipeline transform --data CSV -o OUT.csv [--pipeline FILE] [--config FILE]\n"
        "\n"
        "fit        reads the data (data.path, or the synthetic customers when it is empty)\n"
        "           through the schema, holds out split.test_fraction of the rows\n"
        "           (stratified by the target, seed split.seed), fits the \"features\"\n"
        "           section of the config (or, with --features auto or without that\n"
        "           section, features built from the schema alone) on the training rows\n"
        "           only, and writes the fitted pipeline as JSON (default\n"
        "           <workdir>/pipeline.json)\n"
        "show       lists a fitted pipeline's features, their kinds and source columns\n"
        "transform  writes the features of every accepted row of CSV as a CSV\n"
        "\n"
        "  --data CSV          data file (overrides data.path)\n"
        "  -o FILE             output file\n"
        "  --features auto     fit: one-hot categories and imputed numbers, no derived columns\n"
        "  --pipeline FILE     fitted pipeline (default <workdir>/pipeline.json)\n"
        "  --config FILE       config file (default config/churn.json)\n"
        "  --set NAME=VALUE    override a setting (see 'churn config show')\n"
        "\n"
        "Exit codes: 0 ok, 1 usage, 2 file not readable or writable, 3 invalid data or\n"
        "config (including a features section that cannot be fitted, or a pipeline\n"
        "fitted for another schema), 4 a malformed pipeline file.\n");
}

static const char *const kind_names[] = {"numeric", "indicator", "onehot", "other", "ordinal"};

/* Loads a fitted pipeline file for 'schema'. */
static int load_pipeline(const char *path, const ch_schema *schema, ch_pipeline **out)
{
    ch_json *doc = NULL;
    ch_error err = {0};
    ch_err rc = ch_json_load_file(path, (size_t)256 << 20, &doc, &err);
    if (rc == CH_OK) {
        rc = ch_pipeline_from_json(doc, schema, out, &err);
        if (rc != CH_OK)
            ch_error_prefix(&err, "%s", path);
    }
    ch_json_free(doc);
    return rc == CH_OK ? 0 : cli_fail("pipeline", rc == CH_EFORMAT ? CH_EMODEL : rc, &err);
}

static int do_fit(const ch_config *cfg, const char *data, const char *out_path, int force_auto)
{
    ch_schema *schema = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    ch_pipeline_spec *spec = NULL;
    ch_pipeline *p = NULL;
    size_t *train = NULL;
    size_t *test = NULL;
    size_t n_train = 0;
    size_t n_test = 0;
    double *feats = NULL;
    ch_ingest_opts io;
    ch_error err = {0};
    ch_buf b;
    ch_err rc;
    long target;
    int code;
    char default_out[4096];

    ch_buf_init(&b, (size_t)256 << 20);
    if ((code = cli_load_schema(cfg, "pipeline", &schema)) != 0)
        return code;
    target = ch_schema_target(schema);
    if (target < 0) {
        fprintf(stderr, "churn pipeline: the schema has no target column\n");
        code = CLI_DATA;
        goto done;
    }
    ch_ingest_opts_default(&io);
    io.max_reject_rate = ch_config_num(cfg, "data.max_reject_rate");
    rc = ch_ingest_file(schema, data, &io, &frame, &rep, &err);
    if (rc != CH_OK) {
        code = cli_fail("pipeline", rc, &err);
        goto done;
    }
    fprintf(stderr, "data      %s: %llu rows accepted, %llu rejected, sha256 %.16s...\n", data,
            (unsigned long long)rep->rows_accepted, (unsigned long long)rep->rows_rejected,
            rep->sha256);
    rc = ch_split_holdout(ch_frame_num(frame, (size_t)target), ch_frame_n_rows(frame),
                          ch_config_num(cfg, "split.test_fraction"),
                          (uint64_t)ch_config_num(cfg, "split.seed"), &train, &n_train, &test,
                          &n_test, &err);
    if (rc == CH_OK &&
        (code = cli_feature_spec(cfg, "pipeline", schema, force_auto, &spec, NULL)) != 0)
        goto done;
    if (rc == CH_OK)
        rc = ch_pipeline_fit(spec, schema, frame, train, n_train, &p, &err);
    if (rc != CH_OK) {
        code = cli_fail("pipeline", rc, &err);
        goto done;
    }
    fprintf(stderr, "split     %zu training rows, %zu held-out test rows (seed %.0f)\n", n_train,
            n_test, ch_config_num(cfg, "split.seed"));
    /* Transform the held-out rows once, to report what the pipeline does
     * with data it has not seen. */
    feats = ch_malloc_array(n_test + 1, ch_pipeline_n_features(p) * sizeof *feats);
    if (feats == NULL) {
        code = cli_fail("pipeline", CH_ENOMEM, NULL);
        goto done;
    }
    {
        ch_transform_stats st = {0};
        rc = ch_pipeline_transform_frame(p, frame, test, n_test, feats, &st, &err);
        if (rc != CH_OK) {
            code = cli_fail("pipeline", rc, &err);
            goto done;
        }
        fprintf(stderr,
                "pipeline  %zu features; on the test rows: %llu unseen categories sent to "
                "'(other)', %llu missing values imputed\n",
                ch_pipeline_n_features(p), (unsigned long long)st.n_unknown,
                (unsigned long long)st.n_missing);
    }
    if (out_path == NULL) {
        const char *work = ch_config_str(cfg, "workdir");
        if (cli_mkdirs(work) != 0) {
            fprintf(stderr, "churn pipeline: cannot create %s\n", work);
            code = CLI_IO;
            goto done;
        }
        snprintf(default_out, sizeof default_out, "%s/pipeline.json", work);
        out_path = default_out;
    }
    ch_pipeline_to_json(p, &b);
    if (ch_buf_status(&b) != CH_OK) {
        code = cli_fail("pipeline", ch_buf_status(&b), NULL);
        goto done;
    }
    if ((code = cli_write_file("pipeline", out_path, b.data, b.len)) != 0)
        goto done;
    fprintf(stderr, "wrote     %s\n", out_path);
    code = CLI_OK;
done:
    ch_buf_reset(&b);
    ch_free(feats);
    ch_free(train);
    ch_free(test);
    ch_pipeline_free(p);
    ch_pipeline_spec_free(spec);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_schema_free(schema);
    return code;
}

static int do_show(const ch_config *cfg, const char *path)
{
    ch_schema *schema = NULL;
    ch_pipeline *p = NULL;
    int code = cli_load_schema(cfg, "pipeline", &schema);
    if (code != 0)
        return code;
    if ((code = load_pipeline(path, schema, &p)) != 0) {
        ch_schema_free(schema);
        return code;
    }
    printf("%-4s %-40s %-10s %s\n", "#", "feature", "kind", "from");
    for (size_t k = 0; k < ch_pipeline_n_features(p); k++) {
        size_t n;
        const uint32_t *src = ch_pipeline_feature_sources(p, k, &n);
        printf("%-4zu %-40s %-10s ", k, ch_pipeline_feature_name(p, k),
               kind_names[ch_pipeline_feature_kind(p, k)]);
        for (size_t m = 0; m < n; m++)
            printf("%s%s", m ? ", " : "", ch_schema_col_ref(schema, src[m])->name);
        printf("\n");
    }
    ch_pipeline_free(p);
    ch_schema_free(schema);
    return CLI_OK;
}

static int do_transform(const ch_config *cfg, const char *pipe_path, const char *data,
                        const char *out_path)
{
    ch_schema *schema = NULL;
    ch_pipeline *p = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    double *feats = NULL;
    ch_ingest_opts io;
    ch_error err = {0};
    ch_buf b;
    ch_err rc;
    size_t nf;
    size_t n;
    int code = cli_load_schema(cfg, "pipeline", &schema);

    ch_buf_init(&b, (size_t)1 << 40);
    if (code != 0)
        return code;
    if ((code = load_pipeline(pipe_path, schema, &p)) != 0)
        goto done;
    ch_ingest_opts_default(&io);
    io.max_reject_rate = ch_config_num(cfg, "data.max_reject_rate");
    rc = ch_ingest_file(schema, data, &io, &frame, &rep, &err);
    if (rc != CH_OK) {
        code = cli_fail("pipeline", rc, &err);
        goto done;
    }
    nf = ch_pipeline_n_features(p);
    n = ch_frame_n_rows(frame);
    feats = ch_malloc_array(n + 1, nf * sizeof *feats);
    if (feats == NULL) {
        code = cli_fail("pipeline", CH_ENOMEM, NULL);
        goto done;
    }
    rc = ch_pipeline_transform_frame(p, frame, NULL, 0, feats, NULL, &err);
    if (rc != CH_OK) {
        code = cli_fail("pipeline", rc, &err);
        goto done;
    }
    for (size_t k = 0; k < nf; k++) {
        const char *name = ch_pipeline_feature_name(p, k);
        if (k > 0)
            ch_buf_putc(&b, ',');
        ch_buf_csv_field(&b, name, strlen(name));
    }
    ch_buf_putc(&b, '\n');
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < nf; k++) {
            char num[40];
            size_t len = ch_fmt_double(num, feats[i * nf + k]);
            if (k > 0)
                ch_buf_putc(&b, ',');
            ch_buf_append(&b, num, len);
        }
        ch_buf_putc(&b, '\n');
    }
    if (ch_buf_status(&b) != CH_OK) {
        code = cli_fail("pipeline", ch_buf_status(&b), NULL);
        goto done;
    }
    code = cli_write_file("pipeline", out_path, b.data, b.len);
    if (code == 0)
        fprintf(stderr, "wrote %zu rows x %zu features to %s\n", n, nf, out_path);
done:
    ch_buf_reset(&b);
    ch_free(feats);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_pipeline_free(p);
    ch_schema_free(schema);
    return code;
}

int cmd_pipeline(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *data = NULL;
    const char *out = NULL;
    const char *pipe = NULL;
    const char *file = NULL;
    ch_config *cfg = NULL;
    char data_buf[4096];
    char pipe_buf[4096];
    int force_auto = 0;
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "pipeline", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--features") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("pipeline", "--features needs auto or config");
            if (cli_features_arg("pipeline", argv[++i], &force_auto) != 0)
                return CLI_USAGE;
        } else if (strcmp(a, "--data") == 0 || strcmp(a, "-o") == 0 ||
                   strcmp(a, "--pipeline") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("pipeline", "%s needs a value", a);
            if (strcmp(a, "--data") == 0)
                data = argv[++i];
            else if (strcmp(a, "-o") == 0)
                out = argv[++i];
            else
                pipe = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error("pipeline", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else if (file == NULL && strcmp(sub, "show") == 0) {
            file = a;
        } else {
            return cli_usage_error("pipeline", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL)
        return cli_usage_error("pipeline", "say 'fit', 'show' or 'transform'");
    if (strcmp(sub, "fit") != 0 && strcmp(sub, "show") != 0 && strcmp(sub, "transform") != 0)
        return cli_usage_error("pipeline", "unknown subcommand '%s'", sub);
    if (strcmp(sub, "transform") == 0 && (data == NULL || out == NULL))
        return cli_usage_error("pipeline", "transform needs --data and -o");
    if ((code = cli_load_config(&com, "pipeline", &cfg)) != 0)
        return code;
    snprintf(pipe_buf, sizeof pipe_buf, "%s/pipeline.json", ch_config_str(cfg, "workdir"));
    if (strcmp(sub, "fit") == 0) {
        if (data == NULL) {
            if ((code = cli_data_path(cfg, "pipeline", data_buf, sizeof data_buf)) != 0)
                goto done;
            data = data_buf;
        }
        code = do_fit(cfg, data, out, force_auto);
    } else if (strcmp(sub, "show") == 0) {
        code = do_show(cfg, file != NULL ? file : pipe != NULL ? pipe : pipe_buf);
    } else {
        code = do_transform(cfg, pipe != NULL ? pipe : pipe_buf, data, out);
    }
done:
    ch_config_free(cfg);
    return code;
}
