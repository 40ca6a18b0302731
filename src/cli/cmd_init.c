/*
 * cmd_init.c -- `churn init DATA.csv`: a starter schema and config for
 * any churn CSV, that `churn train --config` accepts as they are.
 *
 * The schema comes from ch_schema_infer(); the config names the data and
 * the schema, gives the project its own workdir and registry (so its
 * models never mix with another dataset's), guesses the revenue column
 * from its name, and spells out the features built from the schema alone
 * (ch_pipeline_spec_auto), so a person can edit them later. Everything
 * else keeps its default. `churn schema infer --features-out` writes the
 * same pair through cli_write_starter().
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ch/buf.h"
#include "ch/features.h"
#include "ch/schema.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn init DATA.csv [--target COL] [--positive VALUE] [--name NAME]\n"
           "                  [--dir DIR] [--max-categories N] [--force]\n"
           "\n"
           "Writes a starter schema and config for any churn CSV: DIR/NAME.schema.json,\n"
           "guessed from the data as 'churn schema infer' does, and DIR/NAME.json, which\n"
           "names the data and the schema, keeps models in their own workdir and registry\n"
           "(var/NAME), sets value.revenue_column when a column's name says it holds\n"
           "monthly revenue, and spells out features built from the schema alone\n"
           "(one-hot categories, imputed numbers with missing indicators; columns marked\n"
           "pii left out). 'churn train --config DIR/NAME.json' accepts the pair as it is.\n"
           "The choices worth a review are printed as notes.\n"
           "\n"
           "  --target COL          the column to predict (default: guessed by name)\n"
           "  --positive VALUE      the target value that means churned (default: yes/no\n"
           "                        tokens in any case, or guessed from the wording)\n"
           "  --name NAME           base name of the files (default: the data file's name)\n"
           "  --dir DIR             where to write them (default config)\n"
           "  --max-categories N    a text column keeps its N most frequent values as\n"
           "                        categories and reads the rest as \"other\" (default 100)\n"
           "  --force               replace files that exist\n"
           "\n"
           "Relative paths in the config are read from the directory churn runs in.\n"
           "Exit codes: 0 ok, 1 usage, 2 a file could not be read or written (or exists\n"
           "without --force), 3 the data cannot make a schema (no target, bad header).\n");
}

/* Writes the JSON config text for a starter project into 'b'. */
static void starter_config(ch_buf *b, const char *data, const char *schema_path, const char *name,
                           const ch_schema *s, const ch_pipeline_spec *spec)
{
    long rev = ch_schema_guess_revenue(s);
    const char *rev_name = rev >= 0 ? ch_schema_col_ref(s, (size_t)rev)->name : "";
    char dir[1024];
    snprintf(dir, sizeof dir, "var/%s", name);
    ch_buf_puts(b, "{\n  \"data\": {\"path\": ");
    ch_buf_json_str(b, data, strlen(data));
    ch_buf_puts(b, ", \"schema\": ");
    ch_buf_json_str(b, schema_path, strlen(schema_path));
    ch_buf_puts(b, "},\n  \"workdir\": ");
    ch_buf_json_str(b, dir, strlen(dir));
    ch_buf_printf(b, ",\n  \"registry\": {\"url\": ");
    {
        char url[1100];
        snprintf(url, sizeof url, "%s/registry.db", dir);
        ch_buf_json_str(b, url, strlen(url));
    }
    ch_buf_puts(b, "},\n  \"value\": {\"revenue_column\": ");
    ch_buf_json_str(b, rev_name, strlen(rev_name));
    ch_buf_puts(b, "},\n  \"features\": ");
    ch_pipeline_spec_to_json(spec, b);
    ch_buf_puts(b, "\n}\n");
}

static int refuse_existing(const char *cmd, const char *path, int force)
{
    if (!force && access(path, F_OK) == 0) {
        fprintf(stderr, "churn %s: %s exists (--force replaces it)\n", cmd, path);
        return CLI_IO;
    }
    return 0;
}

int cli_write_starter(const char *cmd, const char *data, const ch_schema *s,
                      const char *schema_path, const char *config_path, const char *name, int force)
{
    ch_pipeline_spec *spec = NULL;
    ch_error err = {0};
    ch_buf sb, cb;
    ch_err rc;
    int code;
    long id = ch_schema_id(s);
    long rev = ch_schema_guess_revenue(s);

    if ((code = refuse_existing(cmd, schema_path, force)) != 0 ||
        (code = refuse_existing(cmd, config_path, force)) != 0)
        return code;
    rc = ch_pipeline_spec_auto(s, &spec, &err);
    if (rc != CH_OK)
        return cli_fail(cmd, rc, &err);
    ch_buf_init(&sb, (size_t)64 << 20);
    ch_buf_init(&cb, (size_t)64 << 20);
    ch_schema_to_json(s, &sb);
    starter_config(&cb, data, schema_path, name, s, spec);
    if (ch_buf_status(&sb) != CH_OK || ch_buf_status(&cb) != CH_OK) {
        code = cli_fail(cmd, CH_ENOMEM, NULL);
        goto done;
    }
    if ((code = cli_write_file(cmd, schema_path, sb.data, sb.len)) != 0 ||
        (code = cli_write_file(cmd, config_path, cb.data, cb.len)) != 0)
        goto done;
    printf("wrote %s: %zu columns, target %s, id %s\n", schema_path, ch_schema_n_cols(s),
           ch_schema_col_ref(s, (size_t)ch_schema_target(s))->name,
           id >= 0 ? ch_schema_col_ref(s, (size_t)id)->name : "(none)");
    printf("wrote %s: models in var/%s; revenue column: %s\n", config_path, name,
           rev >= 0 ? ch_schema_col_ref(s, (size_t)rev)->name
                    : "none (only the F1 threshold is computed)");
    printf("next:\n  churn validate --config %s\n  churn train --config %s\n"
           "  churn serve --config %s\n",
           config_path, config_path, config_path);
done:
    ch_buf_reset(&sb);
    ch_buf_reset(&cb);
    ch_pipeline_spec_free(spec);
    return code;
}

void cli_print_notes(FILE *f, const char *notes, const char *prefix)
{
    if (notes == NULL || notes[0] == '\0')
        return;
    fprintf(f, "%snotes (choices to review; edit the schema to change one):\n", prefix);
    for (const char *p = notes; *p != '\0';) {
        const char *e = strchr(p, '\n');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        fprintf(f, "%s  %.*s\n", prefix, (int)n, p);
        p += n + (e != NULL);
    }
}

/* The data file's base name without its extension, reduced to letters,
 * digits, '-' and '_' ("WA_Fn churn.csv" gives "WA_Fn-churn"). */
static void base_name(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    size_t n = 0;
    b = b != NULL ? b + 1 : path;
    for (size_t i = 0; b[i] != '\0' && n + 1 < cap; i++) {
        unsigned char c = (unsigned char)b[i];
        if (c == '.' && strchr(b + i + 1, '.') == NULL)
            break;
        out[n++] = isalnum(c) || c == '_' || c == '-' ? (char)c : '-';
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, cap, "churn");
}

int cmd_init(int argc, char **argv)
{
    ch_schema_infer_opts o;
    const char *data = NULL;
    const char *name = NULL;
    const char *dir = "config";
    int force = 0;
    char name_buf[256], schema_path[4096], config_path[4096];
    ch_schema *s = NULL;
    ch_error err = {0};
    ch_buf notes;
    ch_err rc;
    int code;

    ch_schema_infer_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--force") == 0) {
            force = 1;
        } else if (strcmp(a, "--target") == 0 || strcmp(a, "--positive") == 0 ||
                   strcmp(a, "--name") == 0 || strcmp(a, "--dir") == 0 ||
                   strcmp(a, "--max-categories") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("init", "%s needs a value", a);
            if (strcmp(a, "--target") == 0) {
                o.target = argv[++i];
            } else if (strcmp(a, "--positive") == 0) {
                o.positive = argv[++i];
            } else if (strcmp(a, "--name") == 0) {
                name = argv[++i];
            } else if (strcmp(a, "--dir") == 0) {
                dir = argv[++i];
            } else {
                unsigned long long n;
                if (cli_parse_u64(argv[++i], &n) != 0 || n < 2 || n > 100000)
                    return cli_usage_error("init", "--max-categories must be 2 to 100000");
                o.max_categories = (size_t)n;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("init", "unknown option '%s'", a);
        } else if (data == NULL) {
            data = a;
        } else {
            return cli_usage_error("init", "only one data file");
        }
    }
    if (data == NULL)
        return cli_usage_error("init", "init needs a data file");
    if (name == NULL) {
        base_name(data, name_buf, sizeof name_buf);
        name = name_buf;
    } else if (name[0] == '\0' || strchr(name, '/') != NULL) {
        return cli_usage_error("init", "--name must be a plain file name");
    }
    snprintf(schema_path, sizeof schema_path, "%s/%s.schema.json", dir, name);
    snprintf(config_path, sizeof config_path, "%s/%s.json", dir, name);
    if (cli_mkdirs(dir) != 0) {
        fprintf(stderr, "churn init: cannot create %s: %s\n", dir, strerror(errno));
        return CLI_IO;
    }
    ch_buf_init(&notes, 1 << 20);
    o.notes = &notes;
    o.name = name;
    rc = ch_schema_infer(data, &o, &s, &err);
    if (rc != CH_OK) {
        ch_buf_reset(&notes);
        return cli_fail("init", rc == CH_ENOTFOUND ? CH_EDATA : rc, &err);
    }
    code = cli_write_starter("init", data, s, schema_path, config_path, name, force);
    if (code == 0)
        cli_print_notes(stdout, notes.data, "");
    ch_buf_reset(&notes);
    ch_schema_free(s);
    return code;
}
