/*
 * cmd_serve.c -- `churn serve`: runs the prediction service.
 *
 * Argument parsing only; the service is in src/server/.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "server.h"

static void help(void)
{
    printf("usage: churn serve [--model REF] [--host ADDR] [--port N] [--threads N]\n"
           "                   [--log-mode drop|block] [--config FILE] [--set NAME=VALUE]...\n"
           "\n"
           "Runs the prediction service (HTTP/JSON API, docs/api.md) until SIGTERM or\n"
           "SIGINT, which drain requests in flight before exiting. It serves the\n"
           "registry's champion and follows promotions and rollbacks made by any process\n"
           "(checked every serve.reload_ms); a model that fails to load is refused and the\n"
           "previous one keeps serving. Until a champion exists /readyz answers 503.\n"
           "\n"
           "  --model REF       serve this bundle file instead (not followed)\n"
           "  --host ADDR       listen address (default serve.host, 127.0.0.1)\n"
           "  --port N          TCP port (default serve.port, 8080; 0: any free port)\n"
           "  --threads N       HTTP worker threads (default serve.threads)\n"
           "  --log-mode MODE   prediction log when its queue is full: drop (counted in\n"
           "                    /metrics) or block\n"
           "\n"
           "Secrets: the token secret and the customer-id pseudonym key are read from\n"
           "serve.jwt_secret_file and serve.pseudonym_key_file, and made on first start\n"
           "when missing. Users are created with `churn users add NAME --role ROLE`.\n"
           "Exit codes: 0 stopped cleanly, 1 usage or bad settings, 2 cannot listen or\n"
           "read a file, 4 the model could not be loaded, 5 the registry failed.\n");
}

int cmd_serve(int argc, char **argv)
{
    cli_common common = {0};
    ch_config *cfg = NULL;
    const char *model = "champion";
    const char *host = NULL;
    const char *port = NULL;
    const char *threads = NULL;
    const char *log_mode = NULL;
    int code;

    for (int i = 1; i < argc; i++) {
        int r = cli_common_arg(&common, "serve", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            help();
            return CLI_OK;
        }
        if (i + 1 < argc && strcmp(argv[i], "--model") == 0)
            model = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--host") == 0)
            host = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--port") == 0)
            port = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            threads = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--log-mode") == 0)
            log_mode = argv[++i];
        else
            return cli_usage_error("serve", "unknown or incomplete option '%s'", argv[i]);
    }
    if (log_mode != NULL && strcmp(log_mode, "drop") != 0 && strcmp(log_mode, "block") != 0)
        return cli_usage_error("serve", "--log-mode must be drop or block");
    if ((code = cli_load_config(&common, "serve", &cfg)) != 0)
        return code;
    {
        const char *names[] = {"serve.host", "serve.port", "serve.threads", "serve.log_mode"};
        const char *vals[] = {host, port, threads, log_mode};
        for (int k = 0; k < 4; k++) {
            ch_error err = {0};
            if (vals[k] != NULL && ch_config_set(cfg, names[k], vals[k], &err) != CH_OK) {
                code = cli_usage_error("serve", "%s", err.msg);
                ch_config_free(cfg);
                return code;
            }
        }
    }
    code = server_run(cfg, model);
    ch_config_free(cfg);
    return code;
}
