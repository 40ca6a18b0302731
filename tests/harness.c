/*
 * harness.c -- runs each test of a file in its own child process.
 *
 * Set CH_TEST_NOFORK=1 to run tests in-process (for a debugger).
 */
#define _GNU_SOURCE
#include "harness.h"

#include <stdarg.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_SKIP 77

static char tmpdir[512];

static void remove_tmpdir(void);

void ch_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    exit(1);
}

void ch_test_skip(const char *why)
{
    fprintf(stderr, "    skipped: %s\n", why);
    fflush(stderr);
    exit(EXIT_SKIP);
}

const char *ch_test_path(const char *rel)
{
    static char buf[1024];
    const char *root = getenv("CH_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

const char *ch_test_telco_csv(void)
{
    static char buf[1024];
    const char *dir = getenv("CH_SHARED_DATA");
    snprintf(buf, sizeof buf, "%s/WA_Fn-UseC_-Telco-Customer-Churn.csv",
             dir ? dir : "../shared/data");
    return access(buf, R_OK) == 0 ? buf : NULL;
}

const char *ch_test_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/churn-test-XXXXXX", base ? base : "/tmp");
        if (mkdtemp(tmpdir) == NULL) {
            perror("mkdtemp");
            exit(1);
        }
        if (getenv("CH_TEST_KEEP") == NULL)
            atexit(remove_tmpdir);
    }
    return tmpdir;
}

static void remove_tmpdir(void)
{
    char cmd[600];
    if (tmpdir[0] == '\0')
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "    could not remove %s\n", tmpdir);
}

static int run_one(const ch_test *t)
{
    pid_t pid;
    int status = 0;

    if (getenv("CH_TEST_NOFORK") != NULL) {
        t->fn();
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        t->fn();
        exit(0);
    }
    if (waitpid(pid, &status, 0) < 0) {
        perror("waitpid");
        return 1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    fprintf(stderr, "    killed by signal %d\n", WTERMSIG(status));
    return 1;
}

int ch_test_main(const char *file, const ch_test *tests, size_t n, int argc, char **argv)
{
    size_t i;
    int passed = 0;
    int failed = 0;
    int skipped = 0;
    const char *base = strrchr(file, '/');

    base = base ? base + 1 : file;
    for (i = 0; i < n; i++) {
        int rc;
        if (argc > 1) {
            int want = 0;
            for (int k = 1; k < argc; k++)
                want |= strcmp(argv[k], tests[i].name) == 0;
            if (!want)
                continue;
        }
        rc = run_one(&tests[i]);
        if (rc == 0) {
            printf("ok      %s\n", tests[i].name);
            passed++;
        } else if (rc == EXIT_SKIP) {
            printf("SKIP    %s\n", tests[i].name);
            skipped++;
        } else {
            printf("FAIL    %s\n", tests[i].name);
            failed++;
        }
        fflush(stdout);
    }
    printf("%.*s: %d passed, %d failed, %d skipped\n", (int)(strcspn(base, ".")), base, passed,
           failed, skipped);
    return failed > 0 ? 1 : 0;
}

/* ---- stores --------------------------------------------------------- */

int ch_test_store_pg(void)
{
    const char *u = getenv("CH_TEST_STORE_URL");
    return u != NULL &&
           (strncmp(u, "postgresql://", 13) == 0 || strncmp(u, "postgres://", 11) == 0);
}

const char *ch_test_store(const char *name)
{
    static char buf[4][1024];
    static char prefix[64];
    static int k;
    const char *base = getenv("CH_TEST_STORE_URL");
    char schema[128];
    size_t i, n;

    k = (k + 1) % 4;
    if (!ch_test_store_pg()) {
        snprintf(buf[k], sizeof buf[k], "%s/%s", ch_test_tmpdir(), name);
        return buf[k];
    }
    /* Process id and clock: unique across the tests of a run, even when a
     * process id comes round again. */
    if (prefix[0] == '\0') {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(prefix, sizeof prefix, "t%ld_%lx_", (long)getpid(),
                 (unsigned long)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000) & 0xffffffful);
    }
    n = (size_t)snprintf(schema, sizeof schema, "%s", prefix);
    for (i = 0; name[i] != '\0' && n + 1 < sizeof schema; i++) {
        char c = name[i];
        schema[n++] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '_';
    }
    schema[n] = '\0';
    snprintf(buf[k], sizeof buf[k], "%s%soptions=-csearch_path%%3D%s", base,
             strchr(base, '?') != NULL ? "&" : "?", schema);
    return buf[k];
}

/* Appends 's' to 'out' in single quotes for the shell. */
static void shell_quote(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out);
    if (n + 1 < cap)
        out[n++] = '\'';
    for (; *s != '\0' && n + 5 < cap; s++) {
        if (*s == '\'') {
            memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            out[n++] = *s;
        }
    }
    if (n + 1 < cap)
        out[n++] = '\'';
    out[n] = '\0';
}

int ch_test_pg_sql(const char *url, const char *sql, char *msg, size_t cap)
{
    char cmd[4096] = "psql -X -q -v ON_ERROR_STOP=1 -d ";
    char out[1024];
    size_t n = 0;
    FILE *p;
    int rc;

    shell_quote(cmd, sizeof cmd, url);
    strncat(cmd, " -c ", sizeof cmd - strlen(cmd) - 1);
    shell_quote(cmd, sizeof cmd, sql);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    if (msg != NULL && cap > 0)
        snprintf(msg, cap, "%s", out);
    return rc;
}
