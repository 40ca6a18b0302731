/*
 * cmd_audit.c -- `churn audit list|verify`: the registry store's audit
 * log, which records every registration, alias move, promotion (refusals
 * included), rollback, user and API key change, and the prediction
 * service's own state changes.
 *
 * The log is hash-chained (docs/registry.md); `verify` recomputes the
 * chain and exits 3 naming the first entry that does not hold, so a cron
 * job or a CI step can watch it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/json.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn audit list [--json] [--limit N]\n"
           "       churn audit verify\n"
           "       (both take --config FILE and --set NAME=VALUE)\n"
           "\n"
           "list     the audit log, oldest first: every registration, alias move,\n"
           "         promotion (refusals included), rollback, user and API key change, and\n"
           "         the prediction service's own changes; --limit N shows the last N\n"
           "verify   recompute the hash chain: each entry's hash covers its content and\n"
           "         the entry before it, and a head row records the count and the last\n"
           "         hash, so an edited entry, an entry removed in the middle and entries\n"
           "         removed from the end are all found. Prints \"audit chain intact: N\n"
           "         entries\" and the head hash (keep a copy elsewhere to detect a\n"
           "         rewrite of the whole chain).\n"
           "\n"
           "Exit codes: 0 ok (verify: the chain holds), 1 usage, 3 the chain is broken (the\n"
           "message names the first bad entry), 5 the registry failed.\n");
}

static double num_at(const ch_json *o, const char *key)
{
    double v = NAN;
    ch_json_num(ch_json_get(o, key), &v);
    return v;
}

/* What an entry is about: its target, or for model entries the alias and
 * versions ("champion v1->v2", "v3"). */
static void object_of(const ch_json *e, char *out, size_t cap)
{
    const char *target = ch_json_str(ch_json_get(e, "target"), NULL);
    const char *alias = ch_json_str(ch_json_get(e, "alias"), NULL);
    double from = num_at(e, "from");
    double to = num_at(e, "to");
    size_t n;

    if (target != NULL) {
        snprintf(out, cap, "%s", target);
        return;
    }
    snprintf(out, cap, "%s%s", alias != NULL ? alias : "", alias != NULL ? " " : "");
    n = strlen(out);
    if (!isnan(from) && !isnan(to))
        snprintf(out + n, cap - n, "v%.0f->v%.0f", from, to);
    else if (!isnan(to))
        snprintf(out + n, cap - n, "v%.0f", to);
    if (out[0] == '\0')
        snprintf(out, cap, "-");
}

static void print_audit(const ch_json *l)
{
    printf("%-5s %-24s %-16s %-16s %-24s %-12s %s\n", "id", "at", "actor", "action", "object",
           "hash", "reason");
    for (size_t i = 0; i < ch_json_len(l); i++) {
        const ch_json *e = ch_json_at(l, i);
        const char *reason = ch_json_str(ch_json_get(e, "reason"), NULL);
        const char *hash = ch_json_str(ch_json_get(e, "hash"), NULL);
        char object[96];
        object_of(e, object, sizeof object);
        printf("%-5.0f %-24s %-16s %-16s %-24s %-12.12s %s\n", num_at(e, "id"),
               ch_json_str(ch_json_get(e, "at"), NULL), ch_json_str(ch_json_get(e, "actor"), NULL),
               ch_json_str(ch_json_get(e, "action"), NULL), object, hash != NULL ? hash : "-",
               reason != NULL ? reason : "");
    }
}

/* verify: exit 0 with the count and head hash, or 3 naming the bad entry. */
static int do_verify(ch_registry *reg)
{
    int64_t n = 0;
    int64_t bad = 0;
    ch_error err = {0};
    ch_buf b;
    ch_json *l = NULL;
    ch_err rc = ch_registry_audit_verify(reg, &n, &bad, &err);

    if (rc == CH_EDATA) {
        fprintf(stderr, "churn audit: %s\n", err.msg);
        if (bad > 0)
            printf("audit chain broken at entry %lld\n", (long long)bad);
        else
            printf("audit chain broken: the head row is missing\n");
        return CLI_DATA;
    }
    if (rc != CH_OK)
        return cli_fail("audit", rc, &err);
    printf("audit chain intact: %lld entries\n", (long long)n);
    /* The last entry's hash is the head's once the chain holds. */
    ch_buf_init(&b, 1 << 20);
    rc = ch_registry_audit_tail_json(reg, 1, &b, &err);
    if (rc == CH_OK)
        rc = ch_json_parse(b.data, b.len, &l, &err);
    if (rc == CH_OK && ch_json_len(l) == 1)
        printf("head %s (entry %.0f)\n", ch_json_str(ch_json_get(ch_json_at(l, 0), "hash"), NULL),
               num_at(ch_json_at(l, 0), "id"));
    ch_json_free(l);
    ch_buf_reset(&b);
    return rc == CH_OK ? CLI_OK : cli_fail("audit", rc, &err);
}

int cmd_audit(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    unsigned long long limit = 0;
    int json = 0;
    int have_limit = 0;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_error err = {0};
    ch_err rc = CH_OK;
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "audit", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--limit") == 0) {
            if (i + 1 >= argc || cli_parse_u64(argv[++i], &limit) != 0 || limit == 0)
                return cli_usage_error("audit", "--limit needs a positive whole number");
            have_limit = 1;
        } else if (a[0] == '-') {
            return cli_usage_error("audit", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else {
            return cli_usage_error("audit", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL)
        return cli_usage_error("audit", "say list or verify");
    if (strcmp(sub, "list") != 0 && strcmp(sub, "verify") != 0)
        return cli_usage_error("audit", "unknown subcommand '%s'", sub);
    if (strcmp(sub, "verify") == 0 && (json || have_limit))
        return cli_usage_error("audit", "--json and --limit are for list");
    if ((code = cli_load_config(&com, "audit", &cfg)) != 0)
        return code;
    if ((code = cli_open_registry(cfg, "audit", &reg)) != 0)
        goto out;
    if (strcmp(sub, "verify") == 0) {
        code = do_verify(reg);
    } else {
        ch_buf b;
        ch_buf_init(&b, (size_t)64 << 20);
        rc = ch_registry_audit_tail_json(reg, (size_t)limit, &b, &err);
        if (rc == CH_OK && json) {
            printf("%s\n", b.data);
        } else if (rc == CH_OK) {
            ch_json *l = NULL;
            rc = ch_json_parse(b.data, b.len, &l, &err);
            if (rc == CH_OK)
                print_audit(l);
            ch_json_free(l);
        }
        ch_buf_reset(&b);
        if (rc != CH_OK)
            code = cli_fail("audit", rc, &err);
    }
out:
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}
