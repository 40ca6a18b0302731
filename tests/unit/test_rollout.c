/*
 * test_rollout.c -- rollout.h: steps, gates from the config, overrides
 * within the settings' ranges, the JSON round trip, and ch_rollout_begin()
 * writing what it was given into the store. (The state machine in the
 * store is test_registry's; the gates at work are tests/http.)
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/config.h"
#include "ch/json.h"
#include "ch/registry.h"
#include "ch/rollout.h"
#include "../harness.h"

static ch_config *config(void)
{
    ch_config *c = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_config_new(&c, &err));
    return c;
}

static ch_json *parse(const char *text)
{
    ch_json *j = NULL;
    ch_error err = {0};
    ASSERT_OK(ch_json_parse(text, strlen(text), &j, &err));
    return j;
}

TEST(steps_parse)
{
    double s[CH_ROLLOUT_MAX_STEPS];
    size_t n = 0;
    ch_error err = {0};
    ASSERT_OK(ch_rollout_steps_parse("5,25,100", s, &n, &err));
    ASSERT_INT_EQ(n, 3);
    ASSERT(s[0] == 5 && s[1] == 25 && s[2] == 100);
    ASSERT_OK(ch_rollout_steps_parse("100", s, &n, &err));
    ASSERT_INT_EQ(n, 1);
    ASSERT_OK(ch_rollout_steps_parse("0.5, 2.5, 100", s, &n, &err));
    ASSERT(n == 3 && s[0] == 0.5 && s[1] == 2.5);
    static const char *const bad[] = {"",
                                      "5,25",
                                      "50,20,100",
                                      "0,100",
                                      "5,5,100",
                                      "5,,100",
                                      "x,100",
                                      "5,25,101",
                                      "-5,100",
                                      "5,25,100,",
                                      "1,2,3,4,5,6,7,8,100"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ASSERT_ERR(ch_rollout_steps_parse(bad[i], s, &n, &err), CH_EINVAL);
        ASSERT(strstr(err.msg, "step") != NULL);
    }
    ASSERT_ERR(ch_rollout_steps_parse(NULL, s, &n, &err), CH_EINVAL);
}

/* Member by member: the struct has padding, which memcmp would compare. */
static int gates_equal(const ch_rollout_gates *a, const ch_rollout_gates *b)
{
    return a->min_requests == b->min_requests && a->min_seconds == b->min_seconds &&
           a->max_error_rate_increase == b->max_error_rate_increase &&
           a->max_p99_ratio == b->max_p99_ratio && a->max_score_psi == b->max_score_psi &&
           a->max_arms_psi == b->max_arms_psi && a->max_estimate_drop == b->max_estimate_drop &&
           a->min_labels == b->min_labels && a->max_auc_drop == b->max_auc_drop &&
           a->require_labels == b->require_labels;
}

TEST(gates_from_config_and_overrides)
{
    ch_config *c = config();
    ch_rollout_gates g, back;
    ch_error err = {0};
    ch_json *j;
    ch_buf b;
    ASSERT_OK(ch_config_set(c, "rollout.min_requests", "321", &err));
    ch_rollout_gates_from_config(c, &g);
    ASSERT(g.min_requests == 321);
    ASSERT(g.min_seconds == 60 && g.max_score_psi == 0.25 && g.max_auc_drop == 0.02);
    ASSERT_INT_EQ(g.require_labels, 0);

    j = parse("{\"max_p99_ratio\": 3, \"require_labels\": true, \"min_labels\": 40}");
    ASSERT_OK(ch_rollout_gates_override(&g, j, &err));
    ch_json_free(j);
    ASSERT(g.max_p99_ratio == 3 && g.require_labels == 1 && g.min_labels == 40);

    /* Refusals leave 'g' as it was, and name the gate. */
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"max_p99_ratio\": 0.5}", "max_p99_ratio must be a number from 1 to 1000"},
        {"{\"min_requests\": 2.5}", "min_requests must be a whole number"},
        {"{\"max_auc_drop\": -0.1}", "max_auc_drop must be a number from 0 to 1"},
        {"{\"max_score_psi\": \"big\"}", "max_score_psi must be a number"},
        {"{\"require_labels\": 1}", "require_labels must be true or false"},
        {"{\"min_request\": 5}", "unknown gate \"min_request\""},
        {"[1]", "gates must be an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ch_rollout_gates before = g;
        j = parse(bad[i].json);
        ASSERT_ERR(ch_rollout_gates_override(&g, j, &err), CH_EINVAL);
        ch_json_free(j);
        ASSERT(strstr(err.msg, bad[i].msg) != NULL);
        ASSERT(gates_equal(&before, &g));
    }
    ASSERT_OK(ch_rollout_gates_override(&g, NULL, &err));

    /* The JSON round trip keeps every gate; absent members keep theirs. */
    ch_buf_init(&b, 4096);
    ASSERT_OK(ch_rollout_gates_to_json(&g, &b));
    memset(&back, 0, sizeof back);
    ch_rollout_gates_parse(b.data, &back);
    ASSERT(gates_equal(&back, &g));
    ch_buf_reset(&b);
    back.min_seconds = 7;
    ch_rollout_gates_parse("{\"min_labels\": 9}", &back);
    ASSERT(back.min_seconds == 7 && back.min_labels == 9);
    ch_rollout_gates_parse("{not json", &back);
    ASSERT(back.min_labels == 9);
    ch_config_free(c);
}

/* Registers 'n' versions from runs without files, the first champion:
 * enough for rollouts. */
static void versions(ch_registry *r, int n)
{
    ch_error err = {0};
    for (int v = 1; v <= n; v++) {
        int64_t run = 0, ver = 0;
        char sha[65];
        snprintf(sha, sizeof sha, "%064d", v);
        ASSERT_OK(ch_registry_run_begin(r, NULL, NULL, NULL, &run, &err));
        ASSERT_OK(ch_registry_run_end(r, run, "ok", "{}", 1, &err));
        ASSERT_OK(ch_registry_register(r, run, "m.bundle", sha, "logreg", "{\"roc_auc\": 0.8}",
                                       "tester", NULL, &ver, &err));
        if (v == 1) {
            ch_promotion p = {ver, 0.8, NAN, 0, 0, "eval"};
            ASSERT_OK(ch_registry_promote(r, &p, "tester", "first", &err));
        }
    }
}

TEST(begin_writes_the_settings_in_effect)
{
    char path[600];
    ch_registry *r = NULL;
    ch_registry_opts o;
    ch_config *c = config();
    ch_error err = {0};
    ch_rollout ro;
    ch_rollout_gates g;
    ch_json *over;
    int64_t id = 0;
    int found = 0;
    snprintf(path, sizeof path, "%s", ch_test_store("rollout.db"));
    remove(path);
    ch_registry_opts_default(&o);
    ASSERT_OK(ch_registry_open(path, &o, &r, &err));
    versions(r, 2);
    ASSERT_OK(ch_config_set(c, "rollout.steps", "10,50,100", &err));
    ASSERT_OK(ch_config_set(c, "rollout.shadow", "1", &err));
    over = parse("{\"min_seconds\": 5}");
    /* Bad steps or gates: nothing is started. */
    ASSERT_ERR(ch_rollout_begin(r, c, 2, "5,50", -1, NULL, "tester", NULL, &id, &err), CH_EINVAL);
    {
        ch_json *bad = parse("{\"nope\": 1}");
        ASSERT_ERR(ch_rollout_begin(r, c, 2, NULL, -1, bad, "tester", NULL, &id, &err), CH_EINVAL);
        ch_json_free(bad);
    }
    ASSERT_OK(ch_registry_rollout_get(r, 0, &ro, &found, &err));
    ASSERT_INT_EQ(found, 0);
    ASSERT_OK(ch_rollout_begin(r, c, 2, NULL, -1, over, "tester", "test", &id, &err));
    ch_json_free(over);
    ASSERT_OK(ch_registry_rollout_get(r, id, &ro, &found, &err));
    ASSERT_INT_EQ(found, 1);
    ASSERT_INT_EQ(ro.candidate, 2);
    ASSERT_INT_EQ(ro.champion, 1);
    ASSERT_INT_EQ(ro.state, CH_ROLLOUT_SHADOW); /* rollout.shadow, as -1 asked */
    ASSERT(ro.n_steps == 3 && ro.steps[0] == 10 && ro.steps[1] == 50);
    memset(&g, 0, sizeof g);
    ch_rollout_gates_parse(ro.gates_json, &g);
    ASSERT(g.min_seconds == 5 && g.min_requests == 200 && g.max_p99_ratio == 2);
    /* One at a time; the champion is never a candidate. */
    ASSERT_ERR(ch_rollout_begin(r, c, 2, NULL, 0, NULL, "tester", NULL, &id, &err), CH_EBUSY);
    ASSERT_OK(ch_registry_rollout_end(r, ro.id, CH_ROLLOUT_ABORTED, -1, -1, NULL, "tester", "done",
                                      &err));
    ASSERT_ERR(ch_rollout_begin(r, c, 1, NULL, 0, NULL, "tester", NULL, &id, &err), CH_EINVAL);
    ASSERT_OK(ch_rollout_begin(r, c, 2, "100", 0, NULL, "tester", NULL, &id, &err));
    ASSERT_OK(ch_registry_rollout_get(r, id, &ro, &found, &err));
    ASSERT(ro.state == CH_ROLLOUT_CANARY && ro.n_steps == 1);
    ASSERT_OK(ch_registry_check(r, &err));
    ch_registry_close(r);
    ch_config_free(c);
}

TEST_MAIN(T(steps_parse), T(gates_from_config_and_overrides),
          T(begin_writes_the_settings_in_effect))
