/*
 * cmd_config.c -- `churn config show|docs`.
 */
#include <stdio.h>
#include <string.h>

#include "ch/buf.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn config show [--config FILE] [--set NAME=VALUE]...\n"
           "       churn config get NAME [--config FILE] [--set NAME=VALUE]...\n"
           "       churn config docs\n"
           "\n"
           "  show   print every setting's value in effect and where it came from\n"
           "         (default, file, or set by environment/--set)\n"
           "  get    print one setting's value in effect, alone on a line\n"
           "  docs   print the settings table as Markdown (docs/config.md)\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 2 file not readable, 3 invalid config.\n");
}

int cmd_config(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *name = NULL;
    ch_config *cfg = NULL;
    int code;

    for (int i = 1; i < argc; i++) {
        int r = cli_common_arg(&com, "config", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help();
            return CLI_OK;
        }
        if (argv[i][0] == '-')
            return cli_usage_error("config", "unknown option '%s'", argv[i]);
        if (sub != NULL && strcmp(sub, "get") == 0 && name == NULL)
            name = argv[i];
        else if (sub != NULL)
            return cli_usage_error("config", "unexpected argument '%s'", argv[i]);
        else
            sub = argv[i];
    }
    if (sub == NULL)
        return cli_usage_error("config", "say 'show' or 'docs'");
    if (strcmp(sub, "docs") == 0) {
        ch_buf b;
        ch_buf_init(&b, 1 << 20);
        ch_config_docs(&b);
        if (ch_buf_status(&b) == CH_OK)
            fwrite(b.data, 1, b.len, stdout);
        ch_buf_reset(&b);
        return CLI_OK;
    }
    if (strcmp(sub, "show") != 0 && strcmp(sub, "get") != 0)
        return cli_usage_error("config", "unknown subcommand '%s'", sub);
    if (strcmp(sub, "get") == 0 && name == NULL)
        return cli_usage_error("config", "get needs a setting name");
    if ((code = cli_load_config(&com, "config", &cfg)) != 0)
        return code;
    if (name != NULL) {
        size_t i = 0;
        while (ch_config_setting(i) != NULL && strcmp(ch_config_setting(i)->name, name) != 0)
            i++;
        if (ch_config_setting(i) == NULL) {
            ch_config_free(cfg);
            return cli_usage_error("config", "no setting called '%s' (see 'churn config show')",
                                   name);
        }
        printf("%s\n", ch_config_str(cfg, name));
        ch_config_free(cfg);
        return CLI_OK;
    }
    printf("# %s\n", ch_config_path(cfg) ? ch_config_path(cfg) : "(defaults; no config file)");
    for (size_t i = 0; ch_config_setting(i) != NULL; i++) {
        const ch_setting *s = ch_config_setting(i);
        printf("%-22s = %-28s (%s)\n", s->name, ch_config_str(cfg, s->name),
               ch_config_origin(cfg, s->name));
    }
    ch_config_free(cfg);
    return CLI_OK;
}
