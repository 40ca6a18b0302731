/*
 * promote.h -- promotion with the evaluation gate, shared by the CLI
 * (`churn models promote`) and the prediction service
 * (POST /v1/models/{version}/promote).
 *
 * The candidate and the current champion are scored on the same rows:
 * the candidate's held-out test rows, rebuilt from the dataset its run
 * recorded (checked by SHA-256) with the recorded split fraction and
 * seed. The candidate becomes champion when its ROC AUC beats the
 * champion's by the margin, or when forced; the store audits either
 * outcome (registry.h, ch_registry_promote()).
 */
#ifndef CH_PROMOTE_H
#define CH_PROMOTE_H

#include <stdint.h>

#include "ch/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_promote_opts {
    int force;              /* promote even when the gate fails (audited) */
    double margin;          /* required ROC AUC improvement */
    double max_reject_rate; /* when re-reading the evaluation rows */
    const char *actor;      /* who asks (audit) */
    const char *reason;     /* may be NULL */
} ch_promote_opts;

typedef struct ch_promote_result {
    int64_t version;      /* the candidate */
    int64_t champion;     /* the champion before, 0 if none */
    double candidate_auc; /* NAN when not evaluated */
    double champion_auc;  /* NAN when not evaluated */
    char eval_key[200];   /* which rows ("" when not evaluated) */
    int already;          /* 1: the candidate already was the champion; nothing changed */
} ch_promote_result;

/* Promotes version 'ref' (a number, "v3", or an alias) through the gate.
 * '*out' is filled on CH_OK and on CH_EDATA (refused: the message gives
 * both scores and the margin). Errors: CH_ENOTFOUND (no such version),
 * CH_EDATA (refused, or no recorded evaluation rows without force),
 * CH_EIO/CH_EFORMAT/CH_ESCHEMA (the evaluation data cannot be re-read or
 * changed), CH_EMODEL (a bundle does not load), CH_EDB, CH_ENOMEM.
 * Not thread-safe for the same 'reg'. */
CH_API CH_NODISCARD ch_err ch_promote(ch_registry *reg, const char *ref, const ch_promote_opts *o,
                                      ch_promote_result *out, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_PROMOTE_H */
