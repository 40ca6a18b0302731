/*
 * cmd_simulate.c -- `churn simulate`: write synthetic customers as CSV.
 *
 * Parses the options into a ch_sim_opts and streams ch_sim_write() into the
 * output file (or stdout). The command owns the file, like curl's tool
 * owns what libcurl hands it: it counts the bytes for the summary line,
 * checks the close, and removes a half-written regular file on failure
 * (never a device or FIFO: as root, removing /dev/full deletes the node). Progress
 * goes to stderr only when stderr is a terminal, so logs and pipes stay
 * clean; the one-line summary is always printed to stderr.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ch/simulate.h"
#include "cli.h"

#define CMD "simulate"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: churn simulate [--rows N] [--seed S] [--drift SCENARIO] [--layout L]\n"
        "                      [--crlf] [--id-offset K] -o OUT.csv\n"
        "\n"
        "Write N synthetic customers in the layout of the Telco churn CSV, drawn from\n"
        "the generative model in docs/simulate.md (or in another layout). The same\n"
        "options always give the same bytes.\n"
        "\n"
        "Options:\n"
        "  -o, --output PATH   where to write the CSV; '-' for standard output (required)\n"
        "  --rows N            number of customers (default 10000)\n"
        "  --seed S            random seed, a non-negative integer (default 42)\n"
        "  --drift SCENARIO    population to draw from (default none):\n"
        "                        none         the reference population\n"
        "                        price        MonthlyCharges and TotalCharges up 15%%\n"
        "                        fiber        internet service shifts towards Fiber optic\n"
        "                                     (about 44%% -> 65%% of customers)\n"
        "                        new-payment  about 20%% pay by a new method, \"Digital wallet\"\n"
        "                        concept      same customers, but contracts no longer hold\n"
        "                                     them: the contract has no effect on churn\n"
        "  --layout L          columns to write (default telco):\n"
        "                        telco        the IBM Telco churn columns\n"
        "                        bank         a bank: RowNumber, CustomerId, Surname, ...,\n"
        "                                     Exited (0/1); at most 10^7 customers\n"
        "                        plans        telecom plans and usage: State first, no id\n"
        "                                     column, Churn (True/False)\n"
        "                      drift scenarios apply to the telco layout only\n"
        "  --crlf              end lines with CRLF, as the original Telco file does\n"
        "                      (default LF)\n"
        "  --id-offset K       first customer number (default 0); batches written with\n"
        "                      offsets 0, N, 2N, ... have distinct customerIDs and together\n"
        "                      equal one file of all their rows\n"
        "  -h, --help          show this help\n"
        "\n"
        "Progress is shown on stderr when it is a terminal; a one-line summary (rows,\n"
        "bytes, seconds, output) is always printed to stderr at the end.\n"
        "\n"
        "Exit codes:\n"
        "  0   success\n"
        "  1   usage error (unknown option, bad number or scenario, no -o)\n"
        "  2   the output could not be created or written\n");
}

typedef struct out_ctx {
    FILE *f;
    int errnum;     /* errno of the failed write, or 0 */
    uint64_t bytes; /* written so far */
    int show;       /* print progress */
} out_ctx;

static int out_write(void *ctx, const char *data, size_t len)
{
    out_ctx *oc = ctx;
    if (fwrite(data, 1, len, oc->f) != len) {
        oc->errnum = errno != 0 ? errno : EIO;
        return -1;
    }
    oc->bytes += len;
    return 0;
}

static void out_progress(void *ctx, uint64_t done, uint64_t total)
{
    out_ctx *oc = ctx;
    if (!oc->show)
        return;
    fprintf(stderr, "\rchurn simulate: %llu of %llu rows (%d%%)", (unsigned long long)done,
            (unsigned long long)total, total > 0 ? (int)(done * 100 / total) : 100);
    if (done == total)
        fputc('\n', stderr);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Returns the value of option 'name' at argv[*i] ("--name V" or
 * "--name=V"), advancing *i past it, or NULL when argv[*i] is not that
 * option. '*missing' is set when the option is there but has no value. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    *i += 1;
    return argv[*i];
}

/*
 * Writes the CSV through an out_ctx so that the byte count is known for
 * the summary. Returns the exit code; errors are reported here.
 */
static int run(const ch_sim_opts *o, const char *path)
{
    out_ctx oc = {NULL, 0, 0, 0};
    ch_error err = {CH_OK, ""};
    ch_err rc;
    int to_stdout = strcmp(path, "-") == 0;
    const char *shown = to_stdout ? "<stdout>" : path;
    double t0 = now_s();
    int regular = 0;
    struct stat st;

    rc = ch_sim_opts_check(o, &err);
    if (rc != CH_OK)
        return cli_usage_error(CMD, "%s", err.msg);
    oc.show = cli_stderr_is_tty();
    oc.f = to_stdout ? stdout : fopen(path, "wb");
    if (oc.f == NULL) {
        ch_error_set(&err, CH_EIO, "cannot create '%s': %s", path, strerror(errno));
        return cli_fail(CMD, CH_EIO, &err);
    }
    if (!to_stdout && fstat(fileno(oc.f), &st) == 0)
        regular = S_ISREG(st.st_mode);
    rc = ch_sim_write(o, out_write, out_progress, &oc, &err);
    if (to_stdout) {
        if (fflush(stdout) != 0 && rc == CH_OK) {
            oc.errnum = errno;
            rc = CH_EIO;
        }
    } else if (fclose(oc.f) != 0 && rc == CH_OK) {
        oc.errnum = errno;
        rc = CH_EIO;
    }
    if (rc == CH_EIO)
        ch_error_set(&err, CH_EIO, "writing '%s': %s", shown,
                     strerror(oc.errnum != 0 ? oc.errnum : EIO));
    if (rc != CH_OK) {
        if (regular)
            remove(path);
        return cli_fail(CMD, rc, &err);
    }
    fprintf(stderr, "churn simulate: wrote %llu rows (%s%s%s), %llu bytes in %.2f s to %s\n",
            (unsigned long long)o->n_rows,
            o->layout != CH_SIM_LAYOUT_TELCO ? ch_sim_layout_name(o->layout) : "",
            o->layout != CH_SIM_LAYOUT_TELCO ? " layout, drift " : "", ch_sim_drift_name(o->drift),
            (unsigned long long)oc.bytes, now_s() - t0, shown);
    return CLI_OK;
}

int cmd_simulate(int argc, char **argv)
{
    ch_sim_opts o;
    const char *path = NULL;
    int i;

    ch_sim_opts_default(&o);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        int missing = 0;
        unsigned long long n;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CLI_OK;
        }
        if (strcmp(a, "--crlf") == 0) {
            o.crlf = 1;
            continue;
        }
        v = opt_value(argc, argv, &i, "--rows", &missing);
        if (v != NULL) {
            if (cli_parse_u64(v, &n) != 0)
                return cli_usage_error(CMD, "--rows needs a non-negative integer, not '%s'", v);
            o.n_rows = n;
            continue;
        }
        v = opt_value(argc, argv, &i, "--seed", &missing);
        if (v != NULL) {
            if (cli_parse_u64(v, &n) != 0)
                return cli_usage_error(CMD, "--seed needs a non-negative integer, not '%s'", v);
            o.seed = n;
            continue;
        }
        v = opt_value(argc, argv, &i, "--id-offset", &missing);
        if (v != NULL) {
            if (cli_parse_u64(v, &n) != 0)
                return cli_usage_error(CMD, "--id-offset needs a non-negative integer, not '%s'",
                                       v);
            o.id_offset = n;
            continue;
        }
        v = opt_value(argc, argv, &i, "--drift", &missing);
        if (v != NULL) {
            if (ch_sim_drift_parse(v, &o.drift) != 0)
                return cli_usage_error(CMD,
                                       "unknown drift scenario '%s' (none, price, fiber, "
                                       "new-payment, concept)",
                                       v);
            continue;
        }
        v = opt_value(argc, argv, &i, "--layout", &missing);
        if (v != NULL) {
            if (ch_sim_layout_parse(v, &o.layout) != 0)
                return cli_usage_error(CMD, "unknown layout '%s' (telco, bank, plans)", v);
            continue;
        }
        v = opt_value(argc, argv, &i, "--output", &missing);
        if (v == NULL && !missing)
            v = opt_value(argc, argv, &i, "-o", &missing);
        if (v != NULL) {
            if (v[0] == '\0')
                return cli_usage_error(CMD, "-o needs a path ('-' for standard output)");
            path = v;
            continue;
        }
        if (missing)
            return cli_usage_error(CMD, "%s needs a value", a);
        return cli_usage_error(CMD, "unknown option '%s'", a);
    }
    if (path == NULL)
        return cli_usage_error(CMD, "no output: give -o PATH ('-' for standard output)");
    return run(&o, path);
}
