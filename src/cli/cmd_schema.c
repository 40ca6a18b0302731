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
    printf("usage: churn schema infer DATA.csv [--target COL] [--positive VALUE]\n"
           "                         [--max-categories N] [-o FILE [--features-out CONFIG]]\n"
           "       churn schema check SCHEMA.json\n"
           "\n"
           "infer  reads DATA.csv and prints a starter schema (JSON) guessing each column's\n"
           "       kind (id, numeric, integer, categorical, binary, target), categories,\n"
           "       a widened valid range, and missing-value tokens. The target is the\n"
           "       --target column, or guessed by name (churn, target, label, exited,\n"
           "       attrition, ...). A column is the id only when its values are unique on\n"
           "       every row. The choices to review (the id, columns left out, few-valued\n"
           "       numbers, top-N categories, PII) are printed on stderr as notes; labels\n"
           "       and actionable columns need a person's judgement.\n"
           "check  loads a schema and reports the first problem, if any.\n"
           "\n"
           "  --target COL          the column to predict\n"
           "  --positive VALUE      the target value that means churned (default: yes/no\n"
           "                        tokens in any case, or guessed from the wording)\n"
           "  --max-categories N    a text column with more distinct values keeps its N most\n"
           "                        frequent as categories and reads the others as \"other\"\n"
           "                        (default 100)\n"
           "  -o FILE               write the schema to FILE instead of stdout\n"
           "  --features-out CONFIG also write a starter config for the schema (as\n"
           "                        'churn init' does) that 'churn train --config' accepts\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 2 file not readable or writable, 3 invalid data or\n"
           "schema (no target found, a target without two values, malformed CSV header).\n");
}

/* "config/bank.json" gives "bank". */
static void config_name(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    size_t n;
    b = b != NULL ? b + 1 : path;
    n = strlen(b);
    if (n > 5 && strcmp(b + n - 5, ".json") == 0)
        n -= 5;
    snprintf(out, cap, "%.*s", (int)n, n > 0 ? b : "churn");
}

static int do_infer(int argc, char **argv)
{
    ch_schema_infer_opts o;
    const char *data = NULL;
    const char *out = NULL;
    const char *features_out = NULL;
    ch_schema *s = NULL;
    ch_error err = {0};
    ch_buf b, notes;
    char name[256];
    ch_err rc;
    int code = CLI_OK;

    ch_schema_infer_opts_default(&o);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--target") == 0 || strcmp(a, "--max-categories") == 0 ||
            strcmp(a, "-o") == 0 || strcmp(a, "--positive") == 0 ||
            strcmp(a, "--features-out") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("schema", "%s needs a value", a);
            if (strcmp(a, "--target") == 0) {
                o.target = argv[++i];
            } else if (strcmp(a, "--positive") == 0) {
                o.positive = argv[++i];
            } else if (strcmp(a, "-o") == 0) {
                out = argv[++i];
            } else if (strcmp(a, "--features-out") == 0) {
                features_out = argv[++i];
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
    if (features_out != NULL && out == NULL)
        return cli_usage_error("schema", "--features-out needs -o FILE for the schema it names");
    ch_buf_init(&notes, 1 << 20);
    o.notes = &notes;
    if (features_out != NULL) {
        config_name(features_out, name, sizeof name);
        o.name = name;
    }
    rc = ch_schema_infer(data, &o, &s, &err);
    if (rc != CH_OK) {
        ch_buf_reset(&notes);
        return cli_fail("schema", rc == CH_ENOTFOUND ? CH_EDATA : rc, &err);
    }
    if (features_out != NULL) {
        code = cli_write_starter("schema", data, s, out, features_out, name, 1);
        cli_print_notes(stderr, notes.data, "");
        ch_buf_reset(&notes);
        ch_schema_free(s);
        return code;
    }
    ch_buf_init(&b, (size_t)64 << 20);
    ch_schema_to_json(s, &b);
    if (ch_buf_status(&b) != CH_OK)
        code = cli_fail("schema", ch_buf_status(&b), NULL);
    else if (out != NULL)
        code = cli_write_file("schema", out, b.data, b.len);
    else
        fwrite(b.data, 1, b.len, stdout);
    if (code == CLI_OK)
        cli_print_notes(stderr, notes.data, "");
    ch_buf_reset(&b);
    ch_buf_reset(&notes);
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
