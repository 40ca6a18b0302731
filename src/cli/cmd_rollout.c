/*
 * cmd_rollout.c -- `churn rollout start|status|pause|resume|abort` and
 * `churn jobs list|show|queue|cancel`.
 *
 * Both work on the store: a running `churn serve` follows a rollout's
 * state within rollout.eval_s seconds and sees a cancel request at its
 * next poll, whichever process made the change. Every change is audited.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/json.h"
#include "ch/rollout.h"
#include "cli.h"

static void rollout_help(void)
{
    printf("usage: churn rollout start --candidate REF [--steps 5,25,100] [--shadow]\n"
           "                           [--gate NAME=VALUE]... [--reason TEXT]\n"
           "       churn rollout status [ID] [--json]\n"
           "       churn rollout pause|resume|abort ID [--reason TEXT]\n"
           "       (all take --config FILE and --set NAME=VALUE)\n"
           "\n"
           "A canary rollout gives the candidate a growing share of customers (sticky per\n"
           "customer) while churn serve checks its gates at every step: error rate and p99\n"
           "scoring latency against the champion, the shift of its scores from those it\n"
           "gave its own test set and (loosely) from the champion's, its label-free\n"
           "estimated ROC AUC against its own reference, and realized ROC AUC against\n"
           "the champion's once each arm has labels (worse beyond sampling noise fails).\n"
           "A step passes after\n"
           "rollout.min_requests candidate predictions and rollout.min_seconds; a failing\n"
           "gate rolls the candidate back; passing the last step (100%%) makes it champion.\n"
           "\n"
           "start     begin a rollout of REF (a version, or challenger); --shadow begins in\n"
           "          shadow mode: the candidate scores a copy of the traffic and answers no\n"
           "          one until the shadow step passes\n"
           "status    the active rollout (or rollout ID, or with --json every rollout) with\n"
           "          its latest gate evaluation\n"
           "pause     hold the split where it is; resume restarts the step's clock\n"
           "abort     end it by hand; the candidate answers no one\n"
           "\n"
           "  --steps LIST      percentages, increasing, the last 100 (default rollout.steps)\n"
           "  --gate NAME=V     override one gate (min_requests, min_seconds,\n"
           "                    max_error_rate_increase, max_p99_ratio, max_score_psi,\n"
           "                    max_arms_psi, max_estimate_drop, min_labels,\n"
           "                    max_auc_drop, require_labels=true|false)\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 2 no such version or rollout, 3 refused (another\n"
           "rollout is active, the candidate is the champion, a rollout in the wrong\n"
           "state), 5 the store failed.\n");
}

static int fail_store(const char *cmd, ch_err rc, const ch_error *err)
{
    if (rc == CH_EBUSY || rc == CH_EINVAL) {
        fprintf(stderr, "churn %s: %s\n", cmd, err->msg);
        return CLI_DATA;
    }
    return cli_fail(cmd, rc, err);
}

/* Prints one rollout (a parsed listing entry) for people. */
static void print_rollout(const ch_json *r)
{
    const ch_json *ev = ch_json_get(r, "last_evaluation");
    const ch_json *steps = ch_json_get(r, "steps");
    double id = 0, cand = 0, champ = 0, step = 0;
    ch_json_num(ch_json_get(r, "id"), &id);
    ch_json_num(ch_json_get(r, "candidate"), &cand);
    ch_json_num(ch_json_get(r, "champion"), &champ);
    ch_json_num(ch_json_get(r, "step"), &step);
    printf("rollout %.0f: candidate v%.0f against champion v%.0f, %s", id, cand, champ,
           ch_json_str(ch_json_get(r, "state"), NULL));
    if (strcmp(ch_json_str(ch_json_get(r, "state"), NULL), "canary") == 0) {
        double pct = 0;
        ch_json_num(ch_json_at(steps, (size_t)step), &pct);
        printf(" at %g%% (step %.0f of %zu)", pct, step + 1, ch_json_len(steps));
    }
    printf("\n  started %s by %s", ch_json_str(ch_json_get(r, "created"), NULL),
           ch_json_str(ch_json_get(r, "actor"), NULL));
    if (ch_json_str(ch_json_get(r, "ended"), NULL) != NULL)
        printf(", ended %s", ch_json_str(ch_json_get(r, "ended"), NULL));
    if (ch_json_str(ch_json_get(r, "reason"), NULL) != NULL)
        printf(" (%s)", ch_json_str(ch_json_get(r, "reason"), NULL));
    printf("\n");
    if (ev != NULL) {
        const ch_json *checks = ch_json_get(ev, "checks");
        printf("  last evaluation: %s", ch_json_str(ch_json_get(ev, "verdict"), NULL));
        if (ch_json_str(ch_json_get(ev, "reason"), NULL) != NULL)
            printf(": %s", ch_json_str(ch_json_get(ev, "reason"), NULL));
        printf("\n");
        for (size_t i = 0; i < ch_json_len(checks); i++) {
            const ch_json *c = ch_json_at(checks, i);
            double v = NAN, l = NAN;
            ch_json_num(ch_json_get(c, "value"), &v);
            ch_json_num(ch_json_get(c, "limit"), &l);
            printf("    %-18s %-5s value %-10.4g limit %-10.4g %s\n",
                   ch_json_str(ch_json_get(c, "gate"), NULL),
                   ch_json_str(ch_json_get(c, "result"), NULL), v, l,
                   ch_json_str(ch_json_get(c, "note"), NULL) != NULL
                       ? ch_json_str(ch_json_get(c, "note"), NULL)
                       : "");
        }
    }
}

int cmd_rollout(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *cand_ref = NULL;
    const char *steps = NULL;
    const char *reason = NULL;
    const char *gates[16];
    size_t n_gates = 0;
    int64_t id = 0;
    int shadow = -1;
    int json = 0;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_json *over = NULL; /* the --gate overrides */
    ch_error err = {0};
    ch_err rc = CH_OK;
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "rollout", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            rollout_help();
            return CLI_OK;
        } else if (strcmp(a, "--shadow") == 0) {
            shadow = 1;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--candidate") == 0 || strcmp(a, "--steps") == 0 ||
                   strcmp(a, "--reason") == 0 || strcmp(a, "--gate") == 0) {
            if (i + 1 >= argc)
                return cli_usage_error("rollout", "%s needs a value", a);
            if (strcmp(a, "--candidate") == 0)
                cand_ref = argv[++i];
            else if (strcmp(a, "--steps") == 0)
                steps = argv[++i];
            else if (strcmp(a, "--reason") == 0)
                reason = argv[++i];
            else if (n_gates == 16 || strchr(argv[i + 1], '=') == NULL)
                return cli_usage_error("rollout", "--gate needs NAME=VALUE (at most 16)");
            else
                gates[n_gates++] = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error("rollout", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else if (id == 0 && atoll(a) > 0) {
            id = atoll(a);
        } else {
            return cli_usage_error("rollout", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL)
        return cli_usage_error("rollout", "say start, status, pause, resume or abort");
    if (strcmp(sub, "start") == 0 && cand_ref == NULL)
        return cli_usage_error("rollout", "start needs --candidate REF");
    if ((strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0 || strcmp(sub, "abort") == 0) &&
        id == 0)
        return cli_usage_error("rollout", "%s needs the rollout's id", sub);
    if (strcmp(sub, "start") != 0 && strcmp(sub, "status") != 0 && strcmp(sub, "pause") != 0 &&
        strcmp(sub, "resume") != 0 && strcmp(sub, "abort") != 0)
        return cli_usage_error("rollout", "unknown subcommand '%s'", sub);
    if ((code = cli_load_config(&com, "rollout", &cfg)) != 0)
        return code;
    /* The gates and steps are checked before the store is touched: a typo
     * is a usage error. */
    if (strcmp(sub, "start") == 0) {
        ch_buf gb;
        ch_rollout_gates g;
        double st[CH_ROLLOUT_MAX_STEPS];
        size_t n_st = 0;
        ch_buf_init(&gb, 1 << 16);
        ch_buf_putc(&gb, '{');
        for (size_t k = 0; k < n_gates; k++) {
            const char *eq = strchr(gates[k], '=');
            ch_buf_puts(&gb, k ? ", " : "");
            ch_buf_json_str(&gb, gates[k], (size_t)(eq - gates[k]));
            ch_buf_putc(&gb, ':');
            if (strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "false") == 0)
                ch_buf_puts(&gb, eq + 1);
            else {
                double v;
                if (cli_parse_double(eq + 1, &v) != 0) {
                    ch_buf_reset(&gb);
                    code = cli_usage_error("rollout", "--gate %s: not a number", gates[k]);
                    goto done;
                }
                ch_buf_json_num(&gb, v);
            }
        }
        ch_buf_putc(&gb, '}');
        ch_rollout_gates_from_config(cfg, &g);
        rc = ch_json_parse(gb.data, gb.len, &over, &err);
        ch_buf_reset(&gb);
        if (rc == CH_OK)
            rc = ch_rollout_gates_override(&g, over, &err);
        if (rc == CH_OK && steps != NULL)
            rc = ch_rollout_steps_parse(steps, st, &n_st, &err);
        if (rc != CH_OK) {
            code = cli_usage_error("rollout", "%s", err.msg);
            goto done;
        }
    }
    if ((code = cli_open_registry(cfg, "rollout", &reg)) != 0)
        goto done;
    if (strcmp(sub, "start") == 0) {
        int64_t cand = 0;
        rc = ch_registry_resolve(reg, cand_ref, &cand, NULL, 0, &err);
        if (rc == CH_OK)
            rc = ch_rollout_begin(reg, cfg, cand, steps, shadow, over, cli_actor(), reason, &id,
                                  &err);
        if (rc != CH_OK) {
            code = fail_store("rollout", rc, &err);
            goto done;
        }
        printf("rollout %lld of v%lld started; churn serve follows it within rollout.eval_s\n",
               (long long)id, (long long)cand);
    } else if (strcmp(sub, "status") != 0) {
        rc = strcmp(sub, "pause") == 0
                 ? ch_registry_rollout_pause(reg, id, cli_actor(), reason, &err)
             : strcmp(sub, "resume") == 0
                 ? ch_registry_rollout_resume(reg, id, cli_actor(), reason, &err)
                 : ch_registry_rollout_end(reg, id, CH_ROLLOUT_ABORTED, -1, -1, NULL, cli_actor(),
                                           reason != NULL ? reason : "aborted", &err);
        if (rc != CH_OK) {
            code = fail_store("rollout", rc, &err);
            goto done;
        }
        printf("rollout %lld %s\n", (long long)id,
               strcmp(sub, "pause") == 0    ? "paused"
               : strcmp(sub, "resume") == 0 ? "resumed"
                                            : "aborted");
    }
    {
        ch_buf b;
        ch_json *doc = NULL;
        ch_rollout ro;
        int found = 0;
        if (id == 0 && !json) {
            rc = ch_registry_rollout_get(reg, 0, &ro, &found, &err);
            if (rc == CH_OK && !found) {
                printf("no rollout is active\n");
                code = CLI_OK;
                goto done;
            }
            id = ro.id;
        }
        ch_buf_init(&b, (size_t)64 << 20);
        if (rc == CH_OK)
            rc = ch_registry_rollouts_json(reg, id, json && id == 0 ? 100 : 0, &b, &err);
        if (rc != CH_OK) {
            ch_buf_reset(&b);
            code = cli_fail("rollout", rc, &err);
            goto done;
        }
        if (json) {
            printf("%s\n", b.data);
        } else if (ch_json_parse(b.data, b.len, &doc, NULL) == CH_OK) {
            print_rollout(doc);
            ch_json_free(doc);
        }
        ch_buf_reset(&b);
    }
    code = CLI_OK;
done:
    ch_json_free(over);
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}

static void jobs_help(void)
{
    printf("usage: churn jobs list [--json]\n"
           "       churn jobs show ID\n"
           "       churn jobs queue retrain\n"
           "       churn jobs cancel ID\n"
           "       (all take --config FILE and --set NAME=VALUE)\n"
           "\n"
           "Background jobs of churn serve: retraining, queued by monitoring verdicts\n"
           "(retrain.signals), the Alertmanager hook, POST /v1/jobs or 'churn jobs queue\n"
           "retrain' (from cron, say: a churn serve on the same store claims it within\n"
           "2 s; one retraining job is queued or running at a time). cancel stops a\n"
           "queued job at once and a running one at its next fit. A job that was running\n"
           "when its server stopped is 'interrupted': once its heartbeat is 60 s old, or\n"
           "at once when a server of the same host finds the owner process gone.\n"
           "\n"
           "Exit codes: 0 ok, 1 usage, 2 no such job, 3 it has already ended, 5 the store.\n");
}

int cmd_jobs(int argc, char **argv)
{
    cli_common com = {0};
    const char *sub = NULL;
    const char *kind = NULL;
    int64_t id = 0;
    int json = 0;
    ch_config *cfg = NULL;
    ch_registry *reg = NULL;
    ch_error err = {0};
    ch_buf b;
    ch_err rc;
    int code;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_common_arg(&com, "jobs", argc, argv, &i);
        if (r < 0)
            return CLI_USAGE;
        if (r > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            jobs_help();
            return CLI_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (a[0] == '-') {
            return cli_usage_error("jobs", "unknown option '%s'", a);
        } else if (sub == NULL) {
            sub = a;
        } else if (strcmp(sub, "queue") == 0 && kind == NULL) {
            kind = a;
        } else if (id == 0 && atoll(a) > 0) {
            id = atoll(a);
        } else {
            return cli_usage_error("jobs", "unexpected argument '%s'", a);
        }
    }
    if (sub == NULL || (strcmp(sub, "list") != 0 && strcmp(sub, "show") != 0 &&
                        strcmp(sub, "cancel") != 0 && strcmp(sub, "queue") != 0))
        return cli_usage_error("jobs", "say list, show, queue or cancel");
    if (strcmp(sub, "queue") == 0 && (kind == NULL || strcmp(kind, "retrain") != 0))
        return cli_usage_error("jobs", "queue what? the only kind of job is 'retrain'");
    if (strcmp(sub, "list") != 0 && strcmp(sub, "queue") != 0 && id == 0)
        return cli_usage_error("jobs", "%s needs the job's id", sub);
    if ((code = cli_load_config(&com, "jobs", &cfg)) != 0)
        return code;
    if ((code = cli_open_registry(cfg, "jobs", &reg)) != 0)
        goto out;
    if (strcmp(sub, "queue") == 0) {
        rc = ch_registry_job_add(reg, "retrain", "manual", NULL, cli_actor(), &id, &err);
        if (rc != CH_OK) {
            code = fail_store("jobs", rc, &err);
            goto out;
        }
        printf(
            "queued job %lld (retrain); churn serve runs it, 'churn jobs show %lld' follows it\n",
            (long long)id, (long long)id);
        code = CLI_OK;
        goto out;
    }
    if (strcmp(sub, "cancel") == 0) {
        ch_job_status st;
        rc = ch_registry_job_cancel(reg, id, cli_actor(), &st, &err);
        if (rc != CH_OK) {
            code = fail_store("jobs", rc, &err);
            goto out;
        }
        printf("job %lld %s\n", (long long)id,
               st == CH_JOB_CANCELLED ? "cancelled"
                                      : "asked to stop (its server stops it at the next fit)");
        code = CLI_OK;
        goto out;
    }
    ch_buf_init(&b, (size_t)64 << 20);
    rc = ch_registry_jobs_json(reg, strcmp(sub, "show") == 0 ? id : 0, 50, &b, &err);
    if (rc != CH_OK) {
        ch_buf_reset(&b);
        code = cli_fail("jobs", rc, &err);
        goto out;
    }
    if (json || strcmp(sub, "show") == 0) {
        printf("%s\n", b.data);
    } else {
        ch_json *doc = NULL;
        if (ch_json_parse(b.data, b.len, &doc, NULL) == CH_OK) {
            printf("%-5s %-8s %-12s %-24s %-8s %s\n", "id", "kind", "status", "created", "progress",
                   "trigger / stage / error");
            for (size_t i = 0; i < ch_json_len(doc); i++) {
                const ch_json *j = ch_json_at(doc, i);
                double v = 0, p = 0;
                const char *err_text = ch_json_str(ch_json_get(j, "error"), NULL);
                ch_json_num(ch_json_get(j, "id"), &v);
                ch_json_num(ch_json_get(j, "progress"), &p);
                printf("%-5.0f %-8s %-12s %-24s %7.0f%% %s / %s%s%s\n", v,
                       ch_json_str(ch_json_get(j, "kind"), NULL),
                       ch_json_str(ch_json_get(j, "status"), NULL),
                       ch_json_str(ch_json_get(j, "created"), NULL), 100 * p,
                       ch_json_str(ch_json_get(j, "trigger"), NULL) != NULL
                           ? ch_json_str(ch_json_get(j, "trigger"), NULL)
                           : "-",
                       ch_json_str(ch_json_get(j, "stage"), NULL) != NULL
                           ? ch_json_str(ch_json_get(j, "stage"), NULL)
                           : "-",
                       err_text != NULL ? " / " : "", err_text != NULL ? err_text : "");
            }
            ch_json_free(doc);
        }
    }
    ch_buf_reset(&b);
    code = CLI_OK;
out:
    ch_registry_close(reg);
    ch_config_free(cfg);
    return code;
}
