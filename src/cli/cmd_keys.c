/*
 * cmd_keys.c -- `churn keys create|list|revoke`: API keys for machine
 * clients of the prediction service.
 *
 * A new key is printed once, on standard output, so that it can be piped
 * into a secret store; the store keeps only its id and SHA-256 digest and
 * can never show it again. Creation and revocation are audited with the
 * OS user as actor.
 */
#include <stdio.h>
#include <string.h>

#include "ch/auth.h"
#include "ch/hash.h"
#include "ch/json.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn keys create --role ROLE [--label TEXT]\n"
           "       churn keys list [--json]\n"
           "       churn keys revoke ID\n"
           "       (all take --config FILE and --set NAME=VALUE)\n"
           "\n"
           "API keys let programs call the prediction service (churn serve) without a user.\n"
           "\n"
           "create   make a key with ROLE (admin, scientist, analyst or service; usually\n"
           "         service) and an optional label (up to 128 bytes). The key is printed\n"
           "         once on standard output and cannot be shown again: only its digest\n"
           "         is stored. Clients send it in the X-API-Key header.\n"
           "list     every key: id, label, role, created, last used, revoked (never the\n"
           "         key or its digest). The last use is recorded at most once a minute.\n"
           "revoke   refuse the key ID (the 12 hex digits after \"chk_\") from now on\n"
           "\n"
           "Creation and revocation are recorded in the audit log with your user name.\n"
           "\n"
           "Exit codes: 0 ok, 1 usage (bad role or label), 2 no randomness for a new key,\n"
           "5 the registry failed or there is no such key.\n");
}

static const char *str_or(const ch_json *o, const char *key, const char *none)
{
    const char *s = ch_json_str(ch_json_get(o, key), NULL);
    return s != NULL ? s : none;
}

static void print_keys(const ch_json *list)
{
    printf("%-12s %-10s %-8s %-24s %-24s %s\n", "id", "role", "status", "created", "last used",
           "label");
    for (size_t i = 0; i < ch_json_len(list); i++) {
        const ch_json *k = ch_json_at(list, i);
        int revoked = 0;
        ch_json_bool(ch_json_get(k, "revoked"), &revoked);
        printf("%-12s %-10s %-8s %-24s %-24s %s\n", str_or(k, "id", "?"), str_or(k, "role", "?"),
               revoked ? "revoked" : "active", str_or(k, "created", "-"),
               str_or(k, "last_used", "never"), str_or(k, "label", ""));
    }
}

int cmd_keys(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *id = NULL;
    const char *role = NULL;
    const char *label = NULL;
    int json = 0;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_error err = {0};
    ch_err rc = CH_OK;
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "keys", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--role") == 0 || strcmp(a, "--label") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("keys", "%s needs a value", a);
            if (strcmp(a, "--role") == 0)
                role = argv[++i];
            else
                label = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error("keys", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else if (id == NULL) {
            id = a;
        } else {
            return cli_usage_error("keys", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL)
        return cli_usage_error("keys", "say create, list or revoke");
    if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0)
        return cli_usage_error("keys", "unknown subcommand '%s'", sub);
    if (strcmp(sub, "revoke") == 0 && id == NULL)
        return cli_usage_error("keys", "revoke needs a key id");
    if (strcmp(sub, "revoke") != 0 && id != NULL)
        return cli_usage_error("keys", "unexpected argument '%s'", id);
    if (strcmp(sub, "create") == 0 && role == NULL)
        return cli_usage_error("keys", "create needs --role ROLE");
    if (strcmp(sub, "create") != 0 && (role != NULL || label != NULL))
        return cli_usage_error("keys", "--role and --label are for create");
    if (json && strcmp(sub, "list") != 0)
        return cli_usage_error("keys", "--json is for list");
    if (role != NULL && ch_role_parse(role) == CH_ROLE_NONE)
        return cli_usage_error("keys",
                               "unknown role '%s' (use admin, scientist, analyst or "
                               "service)",
                               role);
    if ((code = cli_load_config(&com, "keys", &cfg)) != 0)
        return code;
    if ((code = cli_open_registry(cfg, "keys", &reg)) != 0)
        goto out;

    if (strcmp(sub, "create") == 0) {
        char key[CH_API_KEY_LEN + 1];
        char kid[CH_API_KEY_ID_LEN + 1];
        char sha[65];
        rc = ch_api_key_new(key, kid, sha, &err);
        if (rc == CH_OK)
            rc = ch_registry_key_add(reg, kid, sha, role, label, cli_actor(), &err);
        if (rc == CH_OK) {
            printf("%s\n", key);
            fflush(stdout);
            fprintf(stderr,
                    "keys: created key %s with role %s; the key above will not be shown again, "
                    "store it now\n",
                    kid, role);
        }
        ch_cleanse(key, sizeof key);
    } else if (strcmp(sub, "list") == 0) {
        ch_buf b;
        ch_buf_init(&b, (size_t)64 << 20);
        rc = ch_registry_keys_json(reg, &b, &err);
        if (rc == CH_OK && json) {
            printf("%s\n", b.data);
        } else if (rc == CH_OK) {
            ch_json *l = NULL;
            rc = ch_json_parse(b.data, b.len, &l, &err);
            if (rc == CH_OK)
                print_keys(l);
            ch_json_free(l);
        }
        ch_buf_reset(&b);
    } else {
        rc = ch_registry_key_revoke(reg, id, cli_actor(), &err);
        if (rc == CH_OK)
            printf("key %s revoked\n", id);
    }
    if (rc != CH_OK)
        code = cli_fail("keys", rc == CH_ENOTFOUND ? CH_EDB : rc, &err);
out:
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}
