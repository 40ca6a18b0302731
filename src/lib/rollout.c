/*
 * rollout.c -- a rollout's steps and gates (include/ch/rollout.h).
 */
#include "ch/rollout.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ch/text.h"

static const struct {
    const char *name;
    size_t off;
} gate_keys[] = {
    {"min_requests", offsetof(ch_rollout_gates, min_requests)},
    {"min_seconds", offsetof(ch_rollout_gates, min_seconds)},
    {"max_error_rate_increase", offsetof(ch_rollout_gates, max_error_rate_increase)},
    {"max_p99_ratio", offsetof(ch_rollout_gates, max_p99_ratio)},
    {"max_score_psi", offsetof(ch_rollout_gates, max_score_psi)},
    {"max_arms_psi", offsetof(ch_rollout_gates, max_arms_psi)},
    {"max_estimate_drop", offsetof(ch_rollout_gates, max_estimate_drop)},
    {"min_labels", offsetof(ch_rollout_gates, min_labels)},
    {"max_auc_drop", offsetof(ch_rollout_gates, max_auc_drop)},
};
#define N_GATE_KEYS (sizeof gate_keys / sizeof gate_keys[0])

static double *member(ch_rollout_gates *g, size_t k)
{
    return (double *)(void *)((char *)g + gate_keys[k].off);
}

void ch_rollout_gates_from_config(const ch_config *cfg, ch_rollout_gates *g)
{
    char name[64];
    for (size_t k = 0; k < N_GATE_KEYS; k++) {
        snprintf(name, sizeof name, "rollout.%s", gate_keys[k].name);
        *member(g, k) = ch_config_num(cfg, name);
    }
    g->require_labels = ch_config_num(cfg, "rollout.require_labels") != 0;
}

/* A gate takes the range of its rollout.* setting: an override cannot
 * set what the config would refuse. */
static int in_range(const char *key, double d, ch_error *err)
{
    char name[64];
    const ch_setting *st;
    snprintf(name, sizeof name, "rollout.%s", key);
    for (size_t i = 0; (st = ch_config_setting(i)) != NULL; i++) {
        if (strcmp(st->name, name) != 0)
            continue;
        if (d < st->min || d > st->max || (st->type == CH_SET_INT && d != floor(d))) {
            ch_error_set(err, CH_EINVAL, "gates.%s must be %s from %g to %g", key,
                         st->type == CH_SET_INT ? "a whole number" : "a number", st->min, st->max);
            return 0;
        }
        return 1;
    }
    return 1;
}

ch_err ch_rollout_gates_override(ch_rollout_gates *g, const ch_json *over, ch_error *err)
{
    ch_rollout_gates t = *g;
    if (over == NULL)
        return CH_OK;
    if (ch_json_typeof(over) != CH_JSON_OBJECT)
        return ch_error_set(err, CH_EINVAL, "gates must be an object");
    for (size_t i = 0; i < ch_json_len(over); i++) {
        const ch_json *v;
        const char *key = ch_json_member(over, i, &v);
        int known = 0;
        for (size_t k = 0; k < N_GATE_KEYS; k++) {
            double d;
            if (strcmp(key, gate_keys[k].name) != 0)
                continue;
            known = 1;
            if (ch_json_num(v, &d) != 0 || !isfinite(d))
                return ch_error_set(err, CH_EINVAL, "gates.%s must be a number", key);
            if (!in_range(key, d, err))
                return CH_EINVAL;
            *member(&t, k) = d;
        }
        if (strcmp(key, "require_labels") == 0) {
            known = 1;
            if (ch_json_bool(v, &t.require_labels) != 0)
                return ch_error_set(err, CH_EINVAL, "gates.require_labels must be true or false");
        }
        if (!known)
            return ch_error_set(err, CH_EINVAL, "gates: unknown gate \"%s\"", key);
    }
    *g = t;
    return CH_OK;
}

ch_err ch_rollout_gates_to_json(const ch_rollout_gates *g, ch_buf *b)
{
    ch_rollout_gates t = *g;
    ch_buf_putc(b, '{');
    for (size_t k = 0; k < N_GATE_KEYS; k++) {
        ch_buf_printf(b, "%s\"%s\": ", k ? ", " : "", gate_keys[k].name);
        ch_buf_json_num(b, *member(&t, k));
    }
    ch_buf_printf(b, ", \"require_labels\": %s}", g->require_labels ? "true" : "false");
    return ch_buf_status(b);
}

void ch_rollout_gates_parse(const char *json, ch_rollout_gates *g)
{
    ch_json *doc = NULL;
    if (json == NULL || ch_json_parse(json, strlen(json), &doc, NULL) != CH_OK)
        return;
    for (size_t k = 0; k < N_GATE_KEYS; k++) {
        double d;
        if (ch_json_num(ch_json_get(doc, gate_keys[k].name), &d) == 0)
            *member(g, k) = d;
    }
    ch_json_bool(ch_json_get(doc, "require_labels"), &g->require_labels);
    ch_json_free(doc);
}

ch_err ch_rollout_steps_parse(const char *text, double *steps, size_t *n, ch_error *err)
{
    size_t k = 0;
    const char *p = text;
    if (text == NULL || text[0] == '\0')
        return ch_error_set(err, CH_EINVAL, "no rollout steps");
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        double v;
        while (len > 0 && *p == ' ') {
            p++;
            len--;
        }
        if (k == CH_ROLLOUT_MAX_STEPS)
            return ch_error_set(err, CH_EINVAL, "rollout steps \"%s\": at most %d", text,
                                CH_ROLLOUT_MAX_STEPS);
        if (ch_parse_double(p, len, &v) != 0 || !(v > 0 && v <= 100) ||
            (k > 0 && !(v > steps[k - 1])))
            return ch_error_set(err, CH_EINVAL,
                                "rollout steps \"%s\": percentages increasing within (0, 100]",
                                text);
        steps[k++] = v;
        if (e == NULL)
            break;
        p = e + 1;
        if (*p == '\0') /* "5,25,100,": a step is missing */
            return ch_error_set(err, CH_EINVAL, "rollout steps \"%s\": a trailing comma", text);
    }
    if (k == 0 || steps[k - 1] != 100)
        return ch_error_set(err, CH_EINVAL, "rollout steps \"%s\": the last must be 100", text);
    *n = k;
    return CH_OK;
}

ch_err ch_rollout_begin(ch_registry *reg, const ch_config *cfg, int64_t candidate,
                        const char *steps_text, int shadow, const ch_json *over, const char *actor,
                        const char *reason, int64_t *id, ch_error *err)
{
    double steps[CH_ROLLOUT_MAX_STEPS];
    size_t n = 0;
    ch_rollout_gates g;
    ch_buf b;
    ch_err rc = ch_rollout_steps_parse(
        steps_text != NULL ? steps_text : ch_config_str(cfg, "rollout.steps"), steps, &n, err);
    if (rc != CH_OK)
        return rc;
    ch_rollout_gates_from_config(cfg, &g);
    if ((rc = ch_rollout_gates_override(&g, over, err)) != CH_OK)
        return rc;
    ch_buf_init(&b, 4096);
    if ((rc = ch_rollout_gates_to_json(&g, &b)) != CH_OK) {
        ch_buf_reset(&b);
        return ch_error_set(err, rc, "out of memory");
    }
    if (shadow < 0)
        shadow = ch_config_num(cfg, "rollout.shadow") != 0;
    rc =
        ch_registry_rollout_start(reg, candidate, steps, n, shadow, b.data, actor, reason, id, err);
    ch_buf_reset(&b);
    return rc;
}
