/*
 * registry_cli.c -- helpers shared by the commands that train, track and
 * load models: opening the registry, resolving model references,
 * ingesting for training or scoring, training options from the config,
 * progress lines.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifndef CH_GIT_REV
#define CH_GIT_REV "unknown"
#endif
#ifndef CH_VERSION
#define CH_VERSION "0.1.0"
#endif

const char *cli_code_version(void)
{
    return CH_VERSION "+" CH_GIT_REV;
}

const char *cli_actor(void)
{
    const char *user = getenv("USER");
    struct passwd *pw;
    if (user != NULL && user[0] != '\0')
        return user;
    pw = getpwuid(geteuid());
    if (pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0')
        return pw->pw_name;
    return "churn";
}

int cli_open_registry(const ch_config *cfg, const char *cmd, ch_registry **out)
{
    const char *url = ch_config_str(cfg, "registry.url");
    const char *path = strncmp(url, "sqlite:", 7) == 0 ? url + 7 : url;
    char dir[4096];
    ch_registry_opts o;
    ch_error err = {0};
    ch_err rc;
    const char *slash = strrchr(path, '/');

    if (strstr(url, "://") == NULL && slash != NULL && (size_t)(slash - path) < sizeof dir) {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
        if (dir[0] != '\0' && cli_mkdirs(dir) != 0) {
            fprintf(stderr, "churn %s: cannot create %s: %s\n", cmd, dir, strerror(errno));
            return CLI_IO;
        }
    }
    ch_registry_opts_default(&o);
    rc = ch_registry_open(url, &o, out, &err);
    return rc == CH_OK ? 0 : cli_fail(cmd, rc, &err);
}

/* Whether 'ref' names a registry entry rather than a file. */
static int is_registry_ref(const char *ref)
{
    size_t i = ref[0] == 'v' ? 1 : 0;
    if (strcmp(ref, "champion") == 0 || strcmp(ref, "challenger") == 0)
        return 1;
    if (ref[i] == '\0')
        return 0;
    for (; ref[i] != '\0'; i++)
        if (ref[i] < '0' || ref[i] > '9')
            return 0;
    return 1;
}

int cli_load_model(const ch_config *cfg, const char *cmd, const char *ref, ch_bundle **out,
                   int64_t *version)
{
    char path[4096];
    ch_error err = {0};
    ch_err rc;
    int64_t v = 0;

    if (is_registry_ref(ref) && access(ref, R_OK) != 0) {
        ch_registry *r = NULL;
        int code = cli_open_registry(cfg, cmd, &r);
        if (code != 0)
            return code;
        rc = ch_registry_resolve(r, ref, &v, path, sizeof path, &err);
        ch_registry_close(r);
        if (rc != CH_OK)
            return cli_fail(cmd, rc, &err);
    } else {
        snprintf(path, sizeof path, "%s", ref);
    }
    rc = ch_bundle_load(path, NULL, out, &err);
    if (rc != CH_OK)
        return cli_fail(cmd, rc == CH_EFORMAT ? CH_EMODEL : rc, &err);
    if (version != NULL)
        *version = v;
    return 0;
}

int cli_ingest(const ch_config *cfg, const char *cmd, const ch_schema *schema, const char *path,
               int scoring, ch_frame **frame, ch_ingest_report **report)
{
    ch_ingest_opts io;
    ch_error err = {0};
    ch_ingest_report *rep = NULL;
    ch_err rc;

    ch_ingest_opts_default(&io);
    io.max_reject_rate = ch_config_num(cfg, "data.max_reject_rate");
    io.target_optional = scoring;
    rc = ch_ingest_file(schema, path, &io, frame, &rep, &err);
    if (rc != CH_OK) {
        ch_ingest_report_free(rep);
        return cli_fail(cmd, rc, &err);
    }
    fprintf(stderr, "%s: %s: %llu rows accepted, %llu rejected, sha256 %.16s...\n", cmd, path,
            (unsigned long long)rep->rows_accepted, (unsigned long long)rep->rows_rejected,
            rep->sha256);
    if (report != NULL)
        *report = rep;
    else
        ch_ingest_report_free(rep);
    return 0;
}

void cli_progress(void *ctx, const char *stage, size_t done, size_t total)
{
    (void)ctx;
    fprintf(stderr, "\r\033[K%s: %zu/%zu", stage, done, total);
    if (done == total)
        fputc('\n', stderr);
}

int cli_train_opts(const ch_config *cfg, const char *cmd, ch_train_opts *o, char *fams, size_t cap)
{
    ch_error err = {0};
    if (ch_train_opts_from_config(cfg, o, fams, cap, &err) != CH_OK)
        return cli_usage_error(cmd, "%s", err.msg);
    if (cli_stderr_is_tty())
        o->progress = cli_progress;
    return 0;
}
