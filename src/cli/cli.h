/*
 * cli.h -- shared pieces of the `churn` command.
 *
 * Each subcommand lives in src/cli/cmd_<name>.c as
 *   int cmd_<name>(int argc, char **argv);
 * where argv[0] is the subcommand's own name, and is listed once in the
 * command table in main.c. Subcommands parse their arguments, call the
 * library and print; they hold no business logic.
 */
#ifndef CH_CLI_H
#define CH_CLI_H

#include <stdio.h>

#include "ch/err.h"

/* Exit codes, documented in `churn --help`. */
enum {
    CLI_OK = 0,       /* success */
    CLI_USAGE = 1,    /* bad command line */
    CLI_IO = 2,       /* a file could not be read or written */
    CLI_DATA = 3,     /* input data is invalid (validation failed, too many rejects) */
    CLI_MODEL = 4,    /* a model or pipeline could not be built, loaded or used */
    CLI_STORE = 5,    /* the tracking store failed */
    CLI_INTERNAL = 70 /* out of memory or an internal error */
};

/* Maps a library error to the exit code above. */
int cli_exit_code(ch_err e);

/* Prints "churn <cmd>: <message>" to stderr, with the ch_error detail when
 * present, and returns the exit code for 'rc'. */
int cli_fail(const char *cmd, ch_err rc, const ch_error *err);

/* Prints "churn <cmd>: <formatted message>" and a hint to run --help;
 * returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether standard error is a terminal (progress lines are shown only then). */
int cli_stderr_is_tty(void);

/* Parses a whole non-negative integer / a finite double; 0 on success. */
int cli_parse_u64(const char *s, unsigned long long *out);
int cli_parse_double(const char *s, double *out);

/* Subcommands. */
int cmd_simulate(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_schema(int argc, char **argv);
int cmd_pipeline(int argc, char **argv);

#endif /* CH_CLI_H */

/* ---- shared by commands that read the project config ---------------- */

#include "ch/config.h"
#include "ch/features.h"
#include "ch/frame.h"
#include "ch/ingest.h"
#include "ch/schema.h"

#define CLI_DEFAULT_CONFIG "config/churn.json"

/* Common options: --config FILE and --set NAME=VALUE (repeatable). */
typedef struct cli_common {
    const char *config_path; /* NULL: config/churn.json */
    const char *sets[32];
    size_t n_sets;
} cli_common;

/* If argv[*i] is a common option, consumes it (and its value) and returns
 * 1; returns -1 (after printing) on a usage error; 0 otherwise. */
int cli_common_arg(cli_common *c, const char *cmd, int argc, char **argv, int *i);

/* Loads the config file, then environment overrides, then --set values.
 * Prints the error and returns its exit code, or 0. */
int cli_load_config(const cli_common *c, const char *cmd, ch_config **out);

/* The training data path: data.path, or (when empty) the synthetic
 * customers in <workdir>/data/, generated on first use. Writes the path
 * into 'out'. Prints the error and returns its exit code, or 0. */
int cli_data_path(const ch_config *cfg, const char *cmd, char *out, size_t cap);

/* Loads the schema named by the config. */
int cli_load_schema(const ch_config *cfg, const char *cmd, ch_schema **out);

/* The feature declaration to fit: the config's "features" section, or
 * the one built from the schema alone (ch_pipeline_spec_auto) when the
 * section is absent, is the string "auto", or 'force_auto' is set
 * (--features auto). '*is_auto' (may be NULL) says which. A section that
 * does not fit the schema is reported with a hint to use --features auto.
 * Prints the error and returns its exit code, or 0. */
int cli_feature_spec(const ch_config *cfg, const char *cmd, const ch_schema *schema, int force_auto,
                     ch_pipeline_spec **out, int *is_auto);

/* Parses the value of --features ("auto" or "config") into '*force_auto'.
 * Returns 0, or prints a usage error and returns CLI_USAGE. */
int cli_features_arg(const char *cmd, const char *value, int *force_auto);

/* Creates directory 'path' and its parents. 0 on success. */
int cli_mkdirs(const char *path);

/* Writes 'len' bytes to 'path' atomically (temporary file + rename). */
int cli_write_file(const char *cmd, const char *path, const char *data, size_t len);

int cmd_config(int argc, char **argv);

/* Writes the starter pair for data file 'data' and its inferred schema
 * 's': the schema to 'schema_path' and a config naming both (its own
 * workdir and registry var/<name>, the guessed revenue column, features
 * built from the schema) to 'config_path'; prints what it wrote. Refuses
 * to replace a file unless 'force'. Returns the exit code, or 0. */
int cli_write_starter(const char *cmd, const char *data, const ch_schema *s,
                      const char *schema_path, const char *config_path, const char *name,
                      int force);

/* Prints the lines of 'notes' (from ch_schema_infer) under a heading,
 * each line starting with 'prefix'. Nothing when 'notes' is empty. */
void cli_print_notes(FILE *f, const char *notes, const char *prefix);

int cmd_init(int argc, char **argv);

/* ---- training and the registry ----------------------------------------- */

#include "ch/bundle.h"
#include "ch/registry.h"

/* "0.1.0+<git revision>" as built. */
const char *cli_code_version(void);

/* Opens the registry named by registry.url (creating its directory).
 * Prints the error and returns its exit code, or 0. */
int cli_open_registry(const ch_config *cfg, const char *cmd, ch_registry **out);

/* Loads the bundle 'ref' names: a file path, or a version ("3", "v3") or
 * alias ("champion", "challenger") in the registry. '*version' gets the
 * version (0 for a path). Prints the error and returns its exit code, or 0. */
int cli_load_model(const ch_config *cfg, const char *cmd, const char *ref, ch_bundle **out,
                   int64_t *version);

/* Ingests 'path' with 'schema' (target optional when 'scoring'), printing
 * a one-line summary to stderr. Returns the exit code, or 0. */
int cli_ingest(const ch_config *cfg, const char *cmd, const ch_schema *schema, const char *path,
               int scoring, ch_frame **frame, ch_ingest_report **report);

/* A progress line on stderr, only when it is a terminal. */
void cli_progress(void *ctx, const char *stage, size_t done, size_t total);

/* Who is making a change, for the audit log: $USER, else the name of the
 * effective user id, else "churn". Static or environment text. */
const char *cli_actor(void);

/* Fills 'o' from the train.*, split.* and value.* settings and the
 * "search" section; 'fams' ('cap' bytes) keeps the family names alive.
 * Progress goes to stderr when it is a terminal. Prints a usage error and
 * returns CLI_USAGE for a bad setting, else 0. */
#include "ch/train.h"
int cli_train_opts(const ch_config *cfg, const char *cmd, ch_train_opts *o, char *fams, size_t cap);

int cmd_train(int argc, char **argv);
int cmd_retrain(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_jobs(int argc, char **argv);

/* ---- users, API keys and the audit log ---------------------------------- */

int cmd_users(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_audit(int argc, char **argv);
