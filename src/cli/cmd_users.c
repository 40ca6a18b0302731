/*
 * cmd_users.c -- `churn users add|list|disable|enable|passwd|role`: the
 * users of the prediction service, kept in the registry store.
 *
 * A password never appears on the command line, where other users of the
 * machine could read it from the process list and the shell would keep it
 * in its history: it comes from the first line of --password-file, or of
 * standard input, and when standard input is a terminal it is asked for
 * twice with echo off. Only its Argon2id hash reaches the store, and the
 * buffers that held it are wiped before they are released.
 *
 * Every change is audited in the store with the OS user as actor.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "ch/auth.h"
#include "ch/hash.h"
#include "ch/json.h"
#include "cli.h"

/* A password line: up to 1024 bytes (ch_password_hash's limit), its
 * newline, and room to see that a line was longer. */
#define PW_CAP 1100

static void help(void)
{
    printf("usage: churn users add NAME --role ROLE [--password-file F]\n"
           "       churn users list [--json]\n"
           "       churn users disable NAME\n"
           "       churn users enable NAME\n"
           "       churn users passwd NAME [--password-file F]\n"
           "       churn users role NAME ROLE\n"
           "       (all take --config FILE and --set NAME=VALUE)\n"
           "\n"
           "Users sign in to the prediction service (churn serve). NAME is 1 to 64 characters\n"
           "of a-z, A-Z, 0-9, '.', '_', '@' and '-'; ROLE is admin, scientist, analyst or\n"
           "service.\n"
           "\n"
           "add       add a user with a password and a role\n"
           "list      every user with role, status and creation time (never a password)\n"
           "disable   refuse the user's sign-ins from now on (enable undoes it)\n"
           "passwd    set a new password\n"
           "role      give the user another role\n"
           "\n"
           "A password is never taken on the command line. add and passwd read it from the\n"
           "first line of F with --password-file, otherwise from the first line of\n"
           "standard input; when standard input is a terminal they ask for it twice\n"
           "without echo. It must be 8 to 1024 bytes. Only its Argon2id hash is stored.\n"
           "Every change is recorded in the audit log with your user name.\n"
           "\n"
           "Exit codes: 0 ok, 1 usage (bad name or role, the user exists, a password that\n"
           "is refused or typed differently twice), 2 the password file cannot be read,\n"
           "5 the registry failed or there is no such user.\n");
}

/* Reads one line of 'f' into 'out' (PW_CAP bytes) without its line end.
 * Returns 0, or prints why not and returns an exit code. */
static int read_password_line(FILE *f, const char *from, char *out)
{
    size_t len;
    if (fgets(out, PW_CAP, f) == NULL) {
        if (ferror(f)) {
            fprintf(stderr, "churn users: cannot read the password from %s: %s\n", from,
                    strerror(errno));
            return CLI_IO;
        }
        fprintf(stderr, "churn users: no password in %s\n", from);
        return CLI_USAGE;
    }
    len = strlen(out);
    if (len > 0 && out[len - 1] == '\n')
        out[--len] = '\0';
    else if (!feof(f)) {
        ch_cleanse(out, PW_CAP);
        fprintf(stderr, "churn users: the password in %s is longer than 1024 bytes\n", from);
        return CLI_USAGE;
    }
    if (len > 0 && out[len - 1] == '\r')
        out[--len] = '\0';
    return 0;
}

/* The terminal settings to restore if a signal ends the prompt. */
static struct termios saved_tty;
static volatile sig_atomic_t tty_changed;

static void restore_tty(int sig)
{
    if (tty_changed)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Prompts on standard error and reads a line from the terminal on
 * standard input with echo off. */
static int prompt_password(const char *prompt, char *out)
{
    struct termios quiet;
    struct sigaction sa;
    struct sigaction old_int;
    struct sigaction old_term;
    int code;

    if (tcgetattr(STDIN_FILENO, &saved_tty) != 0) {
        fprintf(stderr, "churn users: cannot read the terminal settings: %s\n", strerror(errno));
        return CLI_IO;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = restore_tty;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    quiet = saved_tty;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    fputs(prompt, stderr);
    fflush(stderr);
    tty_changed = 1;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
        tty_changed = 0;
        fprintf(stderr, "\nchurn users: cannot turn echo off: %s\n", strerror(errno));
        code = CLI_IO;
    } else {
        code = read_password_line(stdin, "the terminal", out);
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
        tty_changed = 0;
        fputc('\n', stderr);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return code;
}

/* Gets the new password of 'name' from 'file', the terminal or standard
 * input, and writes its Argon2id hash into 'hash'. */
static int get_password_hash(const char *name, const char *file, char hash[CH_PASSWORD_HASH_MAX])
{
    char pw[PW_CAP];
    char again[PW_CAP];
    ch_error err = {0};
    ch_err rc;
    int code;

    if (file != NULL) {
        FILE *f = fopen(file, "r");
        if (f == NULL) {
            fprintf(stderr, "churn users: %s: %s\n", file, strerror(errno));
            return CLI_IO;
        }
        code = read_password_line(f, file, pw);
        fclose(f);
    } else if (isatty(STDIN_FILENO)) {
        char prompt[128];
        snprintf(prompt, sizeof prompt, "New password for %s: ", name);
        code = prompt_password(prompt, pw);
        if (code == 0) {
            code = prompt_password("Repeat it: ", again);
            if (code == 0 && strcmp(pw, again) != 0) {
                fprintf(stderr, "churn users: the passwords differ; nothing changed\n");
                code = CLI_USAGE;
            }
            ch_cleanse(again, sizeof again);
        }
    } else {
        code = read_password_line(stdin, "standard input", pw);
    }
    if (code == 0) {
        rc = ch_password_hash(pw, hash, &err);
        if (rc != CH_OK)
            code = cli_fail("users", rc, &err);
    }
    ch_cleanse(pw, sizeof pw);
    return code;
}

static void print_users(const ch_json *list)
{
    printf("%-24s %-10s %-9s %s\n", "name", "role", "status", "created");
    for (size_t i = 0; i < ch_json_len(list); i++) {
        const ch_json *u = ch_json_at(list, i);
        int disabled = 0;
        ch_json_bool(ch_json_get(u, "disabled"), &disabled);
        printf("%-24s %-10s %-9s %s\n", ch_json_str(ch_json_get(u, "name"), NULL),
               ch_json_str(ch_json_get(u, "role"), NULL), disabled ? "disabled" : "active",
               ch_json_str(ch_json_get(u, "created"), NULL));
    }
}

/* The number of operands each subcommand takes after its name. */
static int operands_of(const char *sub)
{
    if (strcmp(sub, "list") == 0)
        return 0;
    if (strcmp(sub, "role") == 0)
        return 2;
    if (strcmp(sub, "add") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "enable") == 0 ||
        strcmp(sub, "passwd") == 0)
        return 1;
    return -1;
}

int cmd_users(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *ops[2] = {NULL, NULL};
    const char *role = NULL;
    const char *pw_file = NULL;
    int n_ops = 0;
    int json = 0;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_error err = {0};
    ch_err rc = CH_OK;
    char hash[CH_PASSWORD_HASH_MAX];
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "users", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--role") == 0 || strcmp(a, "--password-file") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("users", "%s needs a value", a);
            if (strcmp(a, "--role") == 0)
                role = argv[++i];
            else
                pw_file = argv[++i];
        } else if (strncmp(a, "--password", 10) == 0) {
            return cli_usage_error("users", "a password is never taken on the command line: use "
                                            "--password-file F or standard input");
        } else if (a[0] == '-') {
            return cli_usage_error("users", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else if (n_ops < 2) {
            ops[n_ops++] = a;
        } else {
            return cli_usage_error("users", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL)
        return cli_usage_error("users", "say add, list, disable, enable, passwd or role");
    if (operands_of(sub) < 0)
        return cli_usage_error("users", "unknown subcommand '%s'", sub);
    if (n_ops != operands_of(sub))
        return cli_usage_error("users", "%s takes %s", sub,
                               strcmp(sub, "list") == 0   ? "no user name"
                               : strcmp(sub, "role") == 0 ? "a user name and a role"
                                                          : "one user name");
    if (strcmp(sub, "add") == 0 && role == NULL)
        return cli_usage_error("users", "add needs --role ROLE");
    if (role != NULL && strcmp(sub, "add") != 0)
        return cli_usage_error("users", "--role is for add (use 'users role NAME ROLE')");
    if (pw_file != NULL && strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0)
        return cli_usage_error("users", "--password-file is for add and passwd");
    if (json && strcmp(sub, "list") != 0)
        return cli_usage_error("users", "--json is for list");
    if (strcmp(sub, "role") == 0)
        role = ops[1];
    if (role != NULL && ch_role_parse(role) == CH_ROLE_NONE)
        return cli_usage_error("users",
                               "unknown role '%s' (use admin, scientist, analyst or "
                               "service)",
                               role);
    if ((code = cli_load_config(&com, "users", &cfg)) != 0)
        return code;
    if ((code = cli_open_registry(cfg, "users", &reg)) != 0)
        goto out;

    if (strcmp(sub, "list") == 0) {
        ch_buf b;
        ch_buf_init(&b, (size_t)64 << 20);
        rc = ch_registry_users_json(reg, &b, &err);
        if (rc == CH_OK && json) {
            printf("%s\n", b.data);
        } else if (rc == CH_OK) {
            ch_json *l = NULL;
            rc = ch_json_parse(b.data, b.len, &l, &err);
            if (rc == CH_OK)
                print_users(l);
            ch_json_free(l);
        }
        ch_buf_reset(&b);
    } else if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0) {
        ch_registry_user u;
        /* Find out that the user exists (add) or is missing (passwd)
         * before asking for a password; the store checks again. */
        rc = ch_registry_user_get(reg, ops[0], &u, &err);
        ch_cleanse(&u, sizeof u);
        if (strcmp(sub, "add") == 0 && rc == CH_OK)
            rc = ch_error_set(&err, CH_EINVAL, "user '%s' exists", ops[0]);
        else if (strcmp(sub, "add") == 0 && rc == CH_ENOTFOUND)
            rc = CH_OK;
        if (rc == CH_OK) {
            code = get_password_hash(ops[0], pw_file, hash);
            if (code != 0)
                goto out;
            if (strcmp(sub, "add") == 0)
                rc = ch_registry_user_add(reg, ops[0], role, hash, cli_actor(), &err);
            else
                rc = ch_registry_user_set_password(reg, ops[0], hash, cli_actor(), &err);
            ch_cleanse(hash, sizeof hash);
        }
        if (rc == CH_OK && strcmp(sub, "add") == 0)
            printf("user %s added with role %s\n", ops[0], role);
        else if (rc == CH_OK)
            printf("password of %s changed\n", ops[0]);
    } else if (strcmp(sub, "role") == 0) {
        rc = ch_registry_user_set_role(reg, ops[0], role, cli_actor(), &err);
        if (rc == CH_OK)
            printf("%s has role %s\n", ops[0], role);
    } else {
        int disable = strcmp(sub, "disable") == 0;
        rc = ch_registry_user_set_disabled(reg, ops[0], disable, cli_actor(), &err);
        if (rc == CH_OK)
            printf("%s is %s\n", ops[0], disable ? "disabled" : "enabled");
    }
    if (rc != CH_OK)
        code = cli_fail("users", rc == CH_ENOTFOUND ? CH_EDB : rc, &err);
out:
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}
