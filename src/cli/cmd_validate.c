/*
 * cmd_validate.c -- `churn validate`: check a CSV file against a schema.
 */
#include <stdio.h>
#include <string.h>

#include "ch/buf.h"
#include "ch/ingest.h"
#include "ch/schema.h"
#include "cli.h"

#define DEFAULT_SCHEMA "config/telco.schema.json"

static void help(void)
{
    printf("usage: churn validate [DATA.csv] [--schema FILE | --config FILE] [--json]\n"
           "                      [--rejects FILE] [--max-reject-rate R]\n"
           "\n"
           "Reads DATA.csv through a schema and reports what is in it: rows accepted and\n"
           "rejected (by reason, with examples), missing values per column, category\n"
           "counts, numeric min/max/mean, and the file's SHA-256 and row count.\n"
           "\n"
           "  --schema FILE         schema to check against (default " DEFAULT_SCHEMA ")\n"
           "  --config FILE         take the schema (data.schema) and, when DATA.csv is not\n"
           "                        given, the file (data.path) from this config\n"
           "  --json                print the report as JSON on stdout\n"
           "  --rejects FILE        write rejected rows to FILE as CSV\n"
           "                        (line,column,reason,value,record)\n"
           "  --max-reject-rate R   fail when more than this share of rows is rejected\n"
           "                        (0 to 1, default 0: any rejected row makes the file invalid)\n"
           "\n"
           "Exit codes: 0 valid, 1 usage, 2 a file could not be read or written (data,\n"
           "schema or rejects file), 3 invalid data or schema (rejected rows above the\n"
           "rate, every row rejected, header problems, damaged CSV such as an unclosed\n"
           "quote, empty file, no data rows, a schema that does not load).\n");
}

static void progress(void *ctx, uint64_t bytes, uint64_t rows)
{
    (void)ctx;
    fprintf(stderr, "\rvalidate: %llu MB, %llu rows", (unsigned long long)(bytes >> 20),
            (unsigned long long)rows);
}

static void print_text(const ch_ingest_report *r, const ch_schema *s, const char *path)
{
    printf("file      %s\n", path);
    printf("sha256    %s\n", r->sha256);
    printf("bytes     %llu\n", (unsigned long long)r->bytes);
    printf("rows      %llu read, %llu accepted, %llu rejected", (unsigned long long)r->rows_read,
           (unsigned long long)r->rows_accepted, (unsigned long long)r->rows_rejected);
    if (r->blank_lines > 0)
        printf(", %llu blank lines skipped", (unsigned long long)r->blank_lines);
    printf("\n");
    if (ch_schema_target(s) >= 0 && r->rows_accepted > 0)
        printf("target    %s: %llu positive (%.2f%%)\n",
               ch_schema_col_ref(s, (size_t)ch_schema_target(s))->name,
               (unsigned long long)r->n_positive,
               100.0 * (double)r->n_positive / (double)r->rows_accepted);
    if (r->rows_rejected > 0) {
        printf("\nrejected rows by reason:\n");
        for (int k = 1; k < CH_REASON_COUNT_; k++)
            if (r->by_reason[k] > 0)
                printf("  %-18s %llu\n", ch_reason_name((ch_reason)k),
                       (unsigned long long)r->by_reason[k]);
        printf("\nfirst problems:\n");
        for (size_t i = 0; i < r->n_examples; i++) {
            const ch_ingest_example *e = &r->examples[i];
            printf("  line %llu", (unsigned long long)e->line);
            if (e->column >= 0)
                printf(", column %s", ch_schema_col_ref(s, (size_t)e->column)->name);
            printf(": %s \"%s\"\n", ch_reason_text(e->reason), e->value);
        }
    }
    printf("\n%-18s %-12s %8s  %s\n", "column", "kind", "missing", "summary");
    for (size_t j = 0; j < r->n_cols; j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        const ch_ingest_col *st = &r->cols[j];
        printf("%-18s %-12s %8llu  ", c->name, ch_kind_name(c->kind),
               (unsigned long long)st->n_missing);
        if (c->kind == CH_KIND_CATEGORICAL) {
            for (size_t k = 0; k < st->n_levels; k++)
                printf("%s%s=%llu", k ? ", " : "", st->levels[k],
                       (unsigned long long)st->level_counts[k]);
            if (st->n_unknown > 0)
                printf("  (%llu outside the schema's categories)",
                       (unsigned long long)st->n_unknown);
            if (st->n_unlisted > 0)
                printf(" (%llu of them among values too many to list)",
                       (unsigned long long)st->n_unlisted);
        } else if (c->kind != CH_KIND_ID && st->n_values > 0) {
            printf("min %g, max %g, mean %.4g", st->min, st->max, st->sum / (double)st->n_values);
        } else if (c->kind == CH_KIND_ID) {
            printf("%llu values", (unsigned long long)st->n_values);
        }
        printf("\n");
    }
}

int cmd_validate(int argc, char **argv)
{
    const char *schema_path = NULL;
    const char *data = NULL;
    const char *config_path = NULL;
    ch_config *cfg = NULL;
    int json = 0;
    ch_ingest_opts o;
    ch_schema *schema = NULL;
    ch_ingest_report *r = NULL;
    ch_error err = {0};
    ch_err rc;
    int code;

    ch_ingest_opts_default(&o);
    o.keep_frame = 0;
    o.max_reject_rate = 0.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--schema") == 0 || strcmp(a, "--rejects") == 0 ||
                   strcmp(a, "--max-reject-rate") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("validate", "%s needs a value", a);
            if (strcmp(a, "--schema") == 0)
                schema_path = argv[++i];
            else if (strcmp(a, "--config") == 0)
                config_path = argv[++i];
            else if (strcmp(a, "--rejects") == 0)
                o.rejects_path = argv[++i];
            else if (cli_parse_double(argv[++i], &o.max_reject_rate) != 0 ||
                     o.max_reject_rate < 0 || o.max_reject_rate > 1)
                return cli_usage_error("validate",
                                       "--max-reject-rate must be a number from 0 "
                                       "to 1, not '%s'",
                                       argv[i]);
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("validate", "unknown option '%s'", a);
        } else if (data == NULL) {
            data = a;
        } else {
            return cli_usage_error("validate", "only one data file, got '%s' and '%s'", data, a);
        }
    }
    if (config_path != NULL && schema_path != NULL)
        return cli_usage_error("validate", "give --schema or --config, not both");
    if (config_path != NULL) {
        cli_common com = {0};
        com.config_path = config_path;
        if ((code = cli_load_config(&com, "validate", &cfg)) != 0)
            return code;
        schema_path = ch_config_str(cfg, "data.schema");
        if (data == NULL && ch_config_str(cfg, "data.path")[0] != '\0')
            data = ch_config_str(cfg, "data.path");
    }
    if (schema_path == NULL)
        schema_path = DEFAULT_SCHEMA;
    if (data == NULL) {
        ch_config_free(cfg);
        return cli_usage_error("validate", "no data file given");
    }
    if (cli_stderr_is_tty())
        o.progress = progress;

    rc = ch_schema_load_file(schema_path, &schema, &err);
    if (rc != CH_OK) {
        code = cli_fail("validate", rc, &err);
        ch_config_free(cfg);
        return code;
    }
    rc = ch_ingest_file(schema, data, &o, NULL, &r, &err);
    if (o.progress != NULL)
        fprintf(stderr, "\r\033[K");
    if (r == NULL) {
        code = cli_fail("validate", rc, &err);
        ch_schema_free(schema);
        ch_config_free(cfg);
        return code;
    }
    if (json) {
        ch_buf b;
        ch_buf_init(&b, (size_t)64 << 20);
        ch_ingest_report_json(r, schema, &b);
        if (ch_buf_status(&b) == CH_OK)
            fwrite(b.data, 1, b.len, stdout);
        ch_buf_reset(&b);
    } else {
        print_text(r, schema, data);
    }
    code = CLI_OK;
    if (rc != CH_OK) {
        code = cli_fail("validate", rc, &err);
    } else if (r->rows_read == 0) {
        fprintf(stderr, "churn validate: %s: no data rows after the header\n", data);
        code = CLI_DATA;
    } else if (r->rows_accepted == 0) {
        fprintf(stderr, "churn validate: %s: every row was rejected\n", data);
        code = CLI_DATA;
    }
    if (!json && code == CLI_OK)
        printf("\nvalid: %llu rows accepted\n", (unsigned long long)r->rows_accepted);
    ch_ingest_report_free(r);
    ch_schema_free(schema);
    ch_config_free(cfg);
    return code;
}
