/*
 * cmd_models.c -- `churn models list|show|promote|rollback|audit|check`.
 *
 * Promotion is gated: the candidate and the current champion are both
 * scored on the same evaluation rows -- the held-out test rows of the
 * candidate's training run, rebuilt from the recorded dataset (checked by
 * its SHA-256), seed and test fraction -- and the candidate must beat the
 * champion's ROC AUC by train.promotion_margin unless --force is given.
 * Every decision, including a refusal, lands in the audit log.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/promote.h"
#include "ch/split.h"
#include "ch/train.h"
#include "cli.h"

static void help(void)
{
    printf("usage: churn models list [--json]\n"
           "       churn models show REF [--json]\n"
           "       churn models promote REF [--force] [--margin M] [--reason TEXT]\n"
           "       churn models rollback [--reason TEXT]\n"
           "       churn models audit [--json]\n"
           "       churn models check\n"
           "       (all take --config FILE and --set NAME=VALUE)\n"
           "\n"
           "REF is a version (3 or v3) or an alias (champion, challenger).\n"
           "\n"
           "list      every registered version with its family, test ROC AUC and aliases\n"
           "show      one version: metrics, bundle, and the audit rows that concern it\n"
           "promote   make REF the champion if it beats the current champion's ROC AUC by\n"
           "          the margin (train.promotion_margin, or --margin) on the same rows:\n"
           "          the held-out test rows of REF's training run; --force promotes anyway\n"
           "          (recorded in the audit log)\n"
           "rollback  return champion to the version it had before its last promotion\n"
           "audit     the audit log: every registration, alias move and refusal\n"
           "check     the store's invariants: database integrity and foreign keys, aliases\n"
           "          that point at versions and agree with the audit log, no gaps in the\n"
           "          version numbers, the audit chain; prints \"registry ok\" or the first\n"
           "          violation (exit 5)\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 2 file not readable, 3 the gate refused the\n"
           "promotion (or data changed), 4 a model could not be loaded, 5 the registry\n"
           "failed or has no such version.\n");
}

static int print_json(const ch_buf *b)
{
    printf("%s\n", b->data != NULL ? b->data : "null");
    return CLI_OK;
}

static double num_at(const ch_json *o, const char *a, const char *b)
{
    double v = NAN;
    ch_json_num(ch_json_get(b != NULL ? ch_json_get(o, a) : o, b != NULL ? b : a), &v);
    return v;
}

static void print_models(const ch_json *list)
{
    printf("%-8s %-8s %-10s %-24s %s\n", "version", "run", "family", "aliases", "test ROC AUC");
    for (size_t i = 0; i < ch_json_len(list); i++) {
        const ch_json *m = ch_json_at(list, i);
        const ch_json *al = ch_json_get(m, "aliases");
        char aliases[64] = "";
        for (size_t k = 0; k < ch_json_len(al); k++) {
            const char *s = ch_json_str(ch_json_at(al, k), NULL);
            size_t l = strlen(aliases);
            snprintf(aliases + l, sizeof aliases - l, "%s%s", k ? "," : "", s ? s : "");
        }
        printf("%-8.0f %-8.0f %-10s %-24s %.4f\n", num_at(m, "version", NULL),
               num_at(m, "run_id", NULL), ch_json_str(ch_json_get(m, "family"), NULL),
               aliases[0] ? aliases : "-", num_at(ch_json_get(m, "metrics"), "test", "roc_auc"));
    }
}

/* Scores 'bundle' on 'rows' of the data at 'path' and returns ROC AUC. */
static int do_promote(const ch_config *cfg, ch_registry *reg, const char *ref, int force,
                      double margin, const char *reason)
{
    ch_promote_opts o;
    ch_promote_result res;
    ch_error err = {0};
    ch_err rc;

    memset(&o, 0, sizeof o);
    o.force = force;
    o.margin = margin;
    o.max_reject_rate = ch_config_num(cfg, "data.max_reject_rate");
    o.actor = cli_actor();
    o.reason = reason;
    rc = ch_promote(reg, ref, &o, &res, &err);
    if (rc == CH_OK && res.already) {
        printf("version %lld is already the champion\n", (long long)res.version);
        return CLI_OK;
    }
    if ((rc == CH_OK || rc == CH_EDATA) && res.eval_key[0] != '\0')
        printf("on the same %s rows: candidate v%lld ROC AUC %.4f, champion v%lld %.4f, "
               "margin %.4f\n",
               res.eval_key, (long long)res.version, res.candidate_auc, (long long)res.champion,
               res.champion_auc, margin);
    if (rc == CH_EDATA) {
        fprintf(stderr, "churn models: promotion refused: %s\n", err.msg);
        return CLI_DATA;
    }
    if (rc != CH_OK)
        return cli_fail("models", rc, &err);
    printf("version %lld is now champion%s\n", (long long)res.version, force ? " (forced)" : "");
    return CLI_OK;
}

int cmd_models(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *ref = NULL;
    const char *reason = NULL;
    int json = 0;
    int force = 0;
    double margin = NAN;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_error err = {0};
    ch_buf b;
    ch_err rc = CH_OK;
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "models", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--force") == 0) {
            force = 1;
        } else if (strcmp(a, "--reason") == 0 || strcmp(a, "--margin") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("models", "%s needs a value", a);
            if (strcmp(a, "--reason") == 0)
                reason = argv[++i];
            else if (cli_parse_double(argv[++i], &margin) != 0 || margin < 0 || margin > 1)
                return cli_usage_error("models", "--margin must be a number from 0 to 1");
        } else if (a[0] == '-') {
            return cli_usage_error("models", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else if (ref == NULL) {
            ref = a;
        } else {
            return cli_usage_error("models", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL)
        return cli_usage_error("models", "say list, show, promote, rollback, audit or check");
    if (strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0 && strcmp(sub, "promote") != 0 &&
        strcmp(sub, "rollback") != 0 && strcmp(sub, "audit") != 0 && strcmp(sub, "check") != 0)
        return cli_usage_error("models", "unknown subcommand '%s'", sub);
    if ((strcmp(sub, "show") == 0 || strcmp(sub, "promote") == 0) && ref == NULL)
        return cli_usage_error("models", "%s needs a version or alias", sub);
    if ((code = cli_load_config(&com, "models", &cfg)) != 0)
        return code;
    if (isnan(margin))
        margin = ch_config_num(cfg, "train.promotion_margin");
    if ((code = cli_open_registry(cfg, "models", &reg)) != 0)
        goto out;
    ch_buf_init(&b, (size_t)64 << 20);
    if (strcmp(sub, "promote") == 0) {
        code = do_promote(cfg, reg, ref, force, margin, reason != NULL ? reason : "promoted");
    } else if (strcmp(sub, "check") == 0) {
        rc = ch_registry_check(reg, &err);
        if (rc == CH_OK)
            printf("registry ok\n");
    } else if (strcmp(sub, "rollback") == 0) {
        int64_t v = 0;
        const char *actor = getenv("USER") != NULL ? getenv("USER") : "churn";
        rc = ch_registry_rollback(reg, actor, reason != NULL ? reason : "rolled back", &v, &err);
        if (rc == CH_OK)
            printf("champion is version %lld again\n", (long long)v);
    } else if (strcmp(sub, "list") == 0 || strcmp(sub, "audit") == 0) {
        rc = strcmp(sub, "list") == 0 ? ch_registry_models_json(reg, &b, &err)
                                      : ch_registry_audit_json(reg, &b, &err);
        if (rc == CH_OK && json) {
            print_json(&b);
        } else if (rc == CH_OK && strcmp(sub, "list") == 0) {
            ch_json *l = NULL;
            if ((rc = ch_json_parse(b.data, b.len, &l, &err)) == CH_OK)
                print_models(l);
            ch_json_free(l);
        } else if (rc == CH_OK) {
            ch_json *l = NULL;
            if ((rc = ch_json_parse(b.data, b.len, &l, &err)) == CH_OK) {
                printf("%-5s %-24s %-16s %-10s %-6s %-6s %s\n", "id", "at", "action", "alias",
                       "from", "to", "actor: reason");
                for (size_t i = 0; i < ch_json_len(l); i++) {
                    const ch_json *e = ch_json_at(l, i);
                    double from = num_at(e, "from", NULL);
                    double to = num_at(e, "to", NULL);
                    const char *al = ch_json_str(ch_json_get(e, "alias"), NULL);
                    printf("%-5.0f %-24s %-16s %-10s ", num_at(e, "id", NULL),
                           ch_json_str(ch_json_get(e, "at"), NULL),
                           ch_json_str(ch_json_get(e, "action"), NULL), al ? al : "-");
                    if (isnan(from))
                        printf("%-6s ", "-");
                    else
                        printf("v%-5.0f ", from);
                    if (isnan(to))
                        printf("%-6s ", "-");
                    else
                        printf("v%-5.0f ", to);
                    printf("%s: %s\n", ch_json_str(ch_json_get(e, "actor"), NULL),
                           ch_json_str(ch_json_get(e, "reason"), NULL));
                }
            }
            ch_json_free(l);
        }
    } else {
        int64_t v;
        char path[4096];
        rc = ch_registry_resolve(reg, ref, &v, path, sizeof path, &err);
        if (rc == CH_OK)
            rc = ch_registry_model_json(reg, v, &b, &err);
        if (rc == CH_OK)
            print_json(&b);
    }
    if (rc != CH_OK)
        code = cli_fail("models", rc == CH_ENOTFOUND ? CH_EDB : rc, &err);
    ch_buf_reset(&b);
out:
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}
