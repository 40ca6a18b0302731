/*
 * common.c -- config loading, default data and file helpers shared by
 * the subcommands that work on the project configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ch/simulate.h"
#include "cli.h"

int cli_common_arg(cli_common *c, const char *cmd, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--config") == 0) {
        if (*i + 1 >= argc) {
            cli_usage_error(cmd, "--config needs a file");
            return -1;
        }
        c->config_path = argv[++*i];
        return 1;
    }
    if (strcmp(a, "--set") == 0) {
        if (*i + 1 >= argc || strchr(argv[*i + 1], '=') == NULL) {
            cli_usage_error(cmd, "--set needs NAME=VALUE");
            return -1;
        }
        if (c->n_sets == sizeof c->sets / sizeof c->sets[0]) {
            cli_usage_error(cmd, "too many --set options");
            return -1;
        }
        c->sets[c->n_sets++] = argv[++*i];
        return 1;
    }
    return 0;
}

int cli_load_config(const cli_common *c, const char *cmd, ch_config **out)
{
    ch_config *cfg = NULL;
    ch_error err = {0};
    ch_err rc;
    const char *path = c->config_path;

    if (path == NULL && access(CLI_DEFAULT_CONFIG, R_OK) == 0)
        path = CLI_DEFAULT_CONFIG;
    rc = path != NULL ? ch_config_load(path, &cfg, &err) : ch_config_new(&cfg, &err);
    if (rc != CH_OK)
        return cli_fail(cmd, rc, &err);
    for (size_t i = 0; ch_config_setting(i) != NULL; i++) {
        const ch_setting *s = ch_config_setting(i);
        const char *v = s->env != NULL ? getenv(s->env) : NULL;
        if (v == NULL)
            continue;
        rc = ch_config_set(cfg, s->name, v, &err);
        if (rc != CH_OK) {
            ch_error_prefix(&err, "environment %s", s->env);
            ch_config_free(cfg);
            return cli_fail(cmd, rc, &err);
        }
    }
    for (size_t i = 0; i < c->n_sets; i++) {
        char name[128];
        const char *eq = strchr(c->sets[i], '=');
        size_t n = (size_t)(eq - c->sets[i]);
        if (n >= sizeof name)
            n = sizeof name - 1;
        memcpy(name, c->sets[i], n);
        name[n] = '\0';
        rc = ch_config_set(cfg, name, eq + 1, &err);
        if (rc != CH_OK) {
            ch_error_prefix(&err, "--set");
            ch_config_free(cfg);
            return cli_fail(cmd, rc, &err);
        }
    }
    *out = cfg;
    return 0;
}

int cli_mkdirs(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

int cli_write_file(const char *cmd, const char *path, const char *data, size_t len)
{
    char tmp[4096];
    FILE *f;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "churn %s: path too long: %s\n", cmd, path);
        return CLI_IO;
    }
    f = fopen(tmp, "wb");
    if (f == NULL) {
        fprintf(stderr, "churn %s: %s: %s\n", cmd, path, strerror(errno));
        return CLI_IO;
    }
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fprintf(stderr, "churn %s: %s: write failed: %s\n", cmd, path, strerror(errno));
        fclose(f);
        unlink(tmp);
        return CLI_IO;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "churn %s: %s: %s\n", cmd, path, strerror(errno));
        unlink(tmp);
        return CLI_IO;
    }
    return 0;
}

int cli_data_path(const ch_config *cfg, const char *cmd, char *out, size_t cap)
{
    const char *path = ch_config_str(cfg, "data.path");
    const char *work = ch_config_str(cfg, "workdir");
    ch_sim_opts so;
    char dir[4096];
    char tmp[4200];
    ch_error err = {0};
    ch_err rc;

    if (path[0] != '\0') {
        snprintf(out, cap, "%s", path);
        return 0;
    }
    ch_sim_opts_default(&so);
    so.n_rows = (uint64_t)ch_config_num(cfg, "data.simulate_rows");
    so.seed = (uint64_t)ch_config_num(cfg, "data.simulate_seed");
    snprintf(dir, sizeof dir, "%s/data", work);
    snprintf(out, cap, "%s/simulated-%llu-%llu.csv", dir, (unsigned long long)so.n_rows,
             (unsigned long long)so.seed);
    if (access(out, R_OK) == 0)
        return 0;
    if (cli_mkdirs(dir) != 0) {
        fprintf(stderr, "churn %s: cannot create %s: %s\n", cmd, dir, strerror(errno));
        return CLI_IO;
    }
    fprintf(stderr,
            "%s: data.path is empty; generating %llu synthetic customers (seed %llu) "
            "into %s\n",
            cmd, (unsigned long long)so.n_rows, (unsigned long long)so.seed, out);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    rc = ch_sim_write_file(&so, tmp, NULL, NULL, &err);
    if (rc == CH_OK && rename(tmp, out) != 0)
        rc = ch_error_set(&err, CH_EIO, "%s: %s", out, strerror(errno));
    if (rc != CH_OK) {
        unlink(tmp);
        return cli_fail(cmd, rc, &err);
    }
    return 0;
}

int cli_load_schema(const ch_config *cfg, const char *cmd, ch_schema **out)
{
    ch_error err = {0};
    ch_err rc = ch_schema_load_file(ch_config_str(cfg, "data.schema"), out, &err);
    return rc == CH_OK ? 0 : cli_fail(cmd, rc, &err);
}

int cli_features_arg(const char *cmd, const char *value, int *force_auto)
{
    if (strcmp(value, "auto") == 0)
        *force_auto = 1;
    else if (strcmp(value, "config") == 0)
        *force_auto = 0;
    else
        return cli_usage_error(cmd, "--features must be \"auto\" or \"config\", not \"%s\"", value);
    return 0;
}

int cli_feature_spec(const ch_config *cfg, const char *cmd, const ch_schema *schema, int force_auto,
                     ch_pipeline_spec **out, int *is_auto)
{
    const ch_json *sec = ch_config_section(cfg, "features");
    const char *word = ch_json_str(sec, NULL);
    int use_auto = force_auto || sec == NULL;
    ch_error err = {0};
    ch_err rc;

    if (!use_auto && word != NULL) {
        if (strcmp(word, "auto") != 0) {
            fprintf(stderr, "churn %s: features: expected an object or \"auto\", not \"%s\"\n", cmd,
                    word);
            return CLI_DATA;
        }
        use_auto = 1;
    }
    if (use_auto) {
        rc = ch_pipeline_spec_auto(schema, out, &err);
    } else {
        rc = ch_pipeline_spec_from_json(sec, schema, out, &err);
        if (rc == CH_EFORMAT)
            ch_error_prefix(&err, "features");
        if (rc == CH_EFORMAT && err.msg[0] != '\0') {
            fprintf(stderr,
                    "churn %s: %s\n  (the config's \"features\" section must fit schema \"%s\"; "
                    "--features auto builds the features from the schema alone, and 'churn init "
                    "DATA.csv' writes a starter schema and config)\n",
                    cmd, err.msg, ch_schema_name(schema));
            return CLI_DATA;
        }
    }
    if (rc != CH_OK)
        return cli_fail(cmd, rc, &err);
    if (is_auto != NULL)
        *is_auto = use_auto;
    return 0;
}
