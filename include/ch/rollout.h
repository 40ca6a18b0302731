/*
 * rollout.h -- the settings of a canary rollout: its steps and gates.
 *
 * A rollout is stored by the registry (registry.h: ch_registry_rollout_*)
 * and run by `churn serve` (docs/rollout.md). What it runs with is fixed
 * when it starts: the steps (percent of customers the candidate answers)
 * and the gates every step must pass, from the rollout.* settings with any
 * value the starter overrides, written into the rollout as JSON. The CLI,
 * the HTTP routes and the retraining job start rollouts through here, so
 * the three agree.
 */
#ifndef CH_ROLLOUT_H
#define CH_ROLLOUT_H

#include <stddef.h>

#include "ch/buf.h"
#include "ch/config.h"
#include "ch/err.h"
#include "ch/json.h"
#include "ch/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The gates of a step. */
typedef struct ch_rollout_gates {
    double min_requests;            /* candidate predictions (or shadow scores) in the step */
    double min_seconds;             /* the step's length at least */
    double max_error_rate_increase; /* candidate error rate above the champion's */
    double max_p99_ratio;           /* candidate p99 scoring latency / the champion's (+ 2 ms) */
    double max_score_psi;           /* PSI of the candidate's scores against its own reference */
    double max_arms_psi;            /* PSI of its scores against the champion's (0: off) */
    double max_estimate_drop;       /* candidate's estimated ROC AUC below its reference */
    double min_labels;              /* labels per arm before realized ROC AUC is compared */
    double max_auc_drop;            /* candidate's realized ROC AUC below the champion's */
    int require_labels;             /* 1: a step passes only after that comparison */
} ch_rollout_gates;

/* The rollout.* settings of 'cfg'. Never fails. */
CH_API void ch_rollout_gates_from_config(const ch_config *cfg, ch_rollout_gates *g);

/* Overrides members of 'g' with those of object 'over' (NULL: none),
 * named as the struct's members. Errors: CH_EINVAL naming an unknown gate
 * or a value that is not a non-negative number (true/false for
 * require_labels); 'g' is unchanged then. */
CH_API CH_NODISCARD ch_err ch_rollout_gates_override(ch_rollout_gates *g, const ch_json *over,
                                                     ch_error *err);

/* Writes 'g' as a JSON object that ch_rollout_gates_parse() reads back. */
CH_API ch_err ch_rollout_gates_to_json(const ch_rollout_gates *g, ch_buf *b);

/* Reads gates written by ch_rollout_gates_to_json(); members absent
 * from 'json' keep the values already in 'g'. Never fails (a malformed
 * text changes nothing). */
CH_API void ch_rollout_gates_parse(const char *json, ch_rollout_gates *g);

/* Parses steps such as "5,25,100" (percentages, strictly increasing, in
 * (0, 100], the last 100; at most CH_ROLLOUT_MAX_STEPS). Errors:
 * CH_EINVAL naming the problem. */
CH_API CH_NODISCARD ch_err ch_rollout_steps_parse(const char *text, double *steps, size_t *n,
                                                  ch_error *err);

/* Starts a rollout of 'candidate' in 'reg' with the settings of 'cfg':
 * steps from 'steps_text' (NULL: rollout.steps), shadow first when
 * 'shadow' is 1 (-1: rollout.shadow), gates from rollout.* with 'over'
 * replacing some. '*id' gets the rollout. Errors as
 * ch_registry_rollout_start() and the parsers above. */
CH_API CH_NODISCARD ch_err ch_rollout_begin(ch_registry *reg, const ch_config *cfg,
                                            int64_t candidate, const char *steps_text, int shadow,
                                            const ch_json *over, const char *actor,
                                            const char *reason, int64_t *id, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_ROLLOUT_H */
