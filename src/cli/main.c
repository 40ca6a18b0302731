/*
 * main.c -- the `churn` command: dispatches to subcommands.
 *
 * The command table below is the single list of subcommands; `churn
 * --help` is printed from it, and README's CLI reference matches it (a
 * test compares the two).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef CH_VERSION
#define CH_VERSION "0.1.0"
#endif

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"init", cmd_init, "start a project on any churn CSV: a starter schema and config"},
    {"validate", cmd_validate, "check a CSV file against a schema and report what is in it"},
    {"schema", cmd_schema,
     "schema tools: 'schema infer' guesses a starter schema, 'check' loads one"},
    {"pipeline", cmd_pipeline, "feature pipeline: 'pipeline fit', 'show', 'transform'"},
    {"simulate", cmd_simulate, "write synthetic customers, optionally under a drift scenario"},
    {"train", cmd_train, "cross-validate the model families, register the calibrated winner"},
    {"retrain", cmd_retrain, "add the feedback labels, retrain, register if it beats the champion"},
    {"evaluate", cmd_evaluate, "a model's metrics on a labelled CSV file"},
    {"score", cmd_score, "score a CSV file: probability, label and risk band per row"},
    {"monitor", cmd_monitor,
     "data drift, decay from feedback, label-free estimates, an HTML report"},
    {"rollout", cmd_rollout, "canary rollouts: start, status, pause, resume, abort"},
    {"jobs", cmd_jobs, "background jobs of the service (retraining): list, show, cancel"},
    {"serve", cmd_serve, "run the prediction service: HTTP/JSON API with auth, audit and metrics"},
    {"runs", cmd_runs, "training runs in the tracking store: list, show, compare"},
    {"models", cmd_models, "the model registry: list, show, promote, rollback, audit"},
    {"users", cmd_users, "users of the prediction service: add, list, disable, passwd, role"},
    {"keys", cmd_keys, "API keys of the prediction service: create, list, revoke"},
    {"audit", cmd_audit, "the hash-chained audit log: list, verify"},
    {"config", cmd_config, "show the settings in effect, or print their documentation"},
};

static void usage(FILE *f)
{
    size_t i;
    fprintf(f, "usage: churn <command> [options]\n"
               "\n"
               "Customer churn prediction: data validation, feature pipelines, model training,\n"
               "tracking and registry, batch scoring.\n"
               "\n"
               "Commands:\n");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n"
               "Run 'churn <command> --help' for a command's options.\n"
               "\n"
               "Exit codes:\n"
               "  0   success\n"
               "  1   usage error (bad command line)\n"
               "  2   a file could not be read or written\n"
               "  3   invalid data (validation failed, too many rejected rows)\n"
               "  4   a model or pipeline could not be built, loaded or used\n"
               "  5   the tracking store failed\n"
               "  70  out of memory or internal error\n");
}

int main(int argc, char **argv)
{
    size_t i;
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("churn %s\n", CH_VERSION);
        return CLI_OK;
    }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "churn: unknown command '%s'\nRun 'churn --help' for the list.\n", argv[1]);
    return CLI_USAGE;
}
