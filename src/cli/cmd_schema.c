/*
 * cmd_schema.c -- `churn schema infer|check`.
 */
#include <stdio.h>
#include <string.h>

#include "ch/buf.h"
#include "ch/schema.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn schema infer DATA.csv [--target COL] [--max-categories N] [-o FILE]\n"
           "       churn schema check SCHEMA.json\n"
           "\n"
           "infer  reads DATA.csv and prints a starter schema (JSON) guessing each column's\n"
           "       kind (id, numeric, integer, categorical, binary, target), categories,\n"
           "       a widened valid range, and missing-value tokens. The target is the\n"
           "       --target column, or guessed by name (churn, target, label, exited,\n"
           "       attrition, ...). Review the result: labels, PII flags and actionable\n"
           "       columns need a person's judgement.\n"
           "check  loads a schema and reports the first problem, if any.\n"
           "\n"
           "  --target COL          the column to predict\n"
           "  --max-categories N    text columns with more distinct values than N are\n"
           "                        treated as identifiers (default 50)\n"
           "  -o FILE               write the schema to FILE instead of stdout\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 2 file not readable, 3 invalid data or schema\n"
           "(no target found, malformed CSV header).\n");
}

static int do_infer(int argc, char **argv)
{
    ch_schema_infer_opts o;
    const char *data = NULL;
    const char *out = NULL;
    ch_schema *s = NULL;
    ch_error err = {0};
    ch_buf b;
    ch_err rc;
    int code = CLI_OK;

    ch_schema_infer_opts_default(&o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--target") == 0 || strcmp(a, "--max-categories") == 0 ||
            strcmp(a, "-o") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("schema", "%s needs a value", a);
            if (strcmp(a, "--target") == 0) {
                o.target = argv[++i];
            } else if (strcmp(a, "-o") == 0) {
                out = argv[++i];
            } else {
                unsigned long long n;
                if (cli_parse_u64(argv[++i], &n) != 0 || n < 2 || n > 100000)
                    return cli_usage_error("schema", "--max-categories must be 2 to 100000");
                o.max_categories = (size_t)n;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("schema", "unknown option '%s'", a);
        } else if (data == NULL) {
            data = a;
        } else {
            return cli_usage_error("schema", "only one data file");
        }
    }
    if (data == NULL)
        return cli_usage_error("schema", "infer needs a data file");
    rc = ch_schema_infer(data, &o, &s, &err);
    if (rc != CH_OK)
        return cli_fail("schema", rc == CH_ENOTFOUND ? CH_EDATA : rc, &err);
    ch_buf_init(&b, (size_t)64 << 20);
    ch_schema_to_json(s, &b);
    if (ch_buf_status(&b) != CH_OK)
        code = cli_fail("schema", ch_buf_status(&b), NULL);
    else if (out != NULL)
        code = cli_write_file("schema", out, b.data, b.len);
    else
        fwrite(b.data, 1, b.len, stdout);
    ch_buf_reset(&b);
    ch_schema_free(s);
    return code;
}

int cmd_schema(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        help();
        return CLI_OK;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return CLI_OK;
        }
    if (argc < 2)
        return cli_usage_error("schema", "say 'infer' or 'check'");
    if (strcmp(argv[1], "infer") == 0)
        return do_infer(argc, argv);
    if (strcmp(argv[1], "check") == 0) {
        ch_schema *s = NULL;
        ch_error err = {0};
        ch_err rc;
        if (argc != 3)
            return cli_usage_error("schema", "check takes one schema file");
        rc = ch_schema_load_file(argv[2], &s, &err);
        if (rc != CH_OK)
            return cli_fail("schema", rc, &err);
        printf("%s: ok, %zu columns, target %s, hash %.16s\n", argv[2], ch_schema_n_cols(s),
               ch_schema_target(s) >= 0 ? ch_schema_col_ref(s, (size_t)ch_schema_target(s))->name
                                        : "(none)",
               ch_schema_hash(s));
        ch_schema_free(s);
        return CLI_OK;
    }
    return cli_usage_error("schema", "unknown subcommand '%s'", argv[1]);
}
