/*
 * util.c -- error reporting and small parsers shared by subcommands.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "ch/text.h"
#include "cli.h"

#include <string.h>

int cli_exit_code(ch_err e)
{
    switch (e) {
    case CH_OK:
        return CLI_OK;
    case CH_EINVAL:
    case CH_EAUTH:
    case CH_EDENIED:
        return CLI_USAGE;
    case CH_EIO:
    case CH_ENOTFOUND:
        return CLI_IO;
    case CH_EFORMAT:
    case CH_ERANGE:
    case CH_ELIMIT:
    case CH_ESCHEMA:
    case CH_EDATA:
        return CLI_DATA;
    case CH_EMODEL:
    case CH_ECANCELLED: /* the work that would have made a model was stopped */
        return CLI_MODEL;
    case CH_EDB:
    case CH_EBUSY:
        return CLI_STORE;
    case CH_ENOMEM:
        return CLI_INTERNAL;
    }
    return CLI_INTERNAL;
}

int cli_fail(const char *cmd, ch_err rc, const ch_error *err)
{
    if (err != NULL && err->msg[0] != '\0')
        fprintf(stderr, "churn %s: %s\n", cmd, err->msg);
    else
        fprintf(stderr, "churn %s: %s\n", cmd, ch_strerror(rc));
    return cli_exit_code(rc);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "churn %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'churn %s --help' for usage.\n", cmd);
    return CLI_USAGE;
}

int cli_stderr_is_tty(void)
{
    return isatty(STDERR_FILENO);
}

int cli_parse_u64(const char *s, unsigned long long *out)
{
    int64_t v;
    if (ch_parse_int64(s, strlen(s), &v) != 0 || v < 0)
        return -1;
    *out = (unsigned long long)v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    return ch_parse_double(s, strlen(s), out);
}
