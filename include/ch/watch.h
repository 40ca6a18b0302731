/*
 * watch.h -- the monitoring jobs over the prediction log.
 *
 * One job reads a window of served predictions from the store (a span of
 * time or the latest N), decodes their logged inputs with the schema of
 * the model version that served each one, and runs the measures of
 * monitor.h: drift and the label-free estimate for one model (the
 * champion unless told otherwise), decay and the estimate for every
 * version that served in the window. `churn monitor` and the scheduler
 * inside `churn serve` both run jobs through here, so they always agree.
 *
 * A job only reads the store; results are handed back as JSON documents
 * for the caller to print, serve or keep (ch_registry_monitor_put keeps
 * them with their history). Thread-safe as long as each thread uses its
 * own registry handle.
 */
#ifndef CH_WATCH_H
#define CH_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ch/config.h"
#include "ch/err.h"
#include "ch/monitor.h"
#include "ch/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    CH_WATCH_DRIFT = 1,    /* data and score drift of the model */
    CH_WATCH_DECAY = 2,    /* realized performance per version */
    CH_WATCH_ESTIMATE = 4, /* label-free estimate per version */
    CH_WATCH_ALL = 7
};

typedef struct ch_watch_job {
    const char *model;  /* the model drift is measured for: "champion" (default), "3", ... */
    const char *window; /* "30m", "24h", "7d", "2w" (a span ending now), or "50000" (the latest
                           N predictions); default "7d" */
    int64_t now_ms;     /* the end of a span; 0: the clock */
    unsigned what;      /* CH_WATCH_* bits (default all) */
    ch_monitor_opts opts;
} ch_watch_job;

/* One model version's numbers from a job. */
typedef struct ch_watch_version {
    int64_t version;
    size_t rows;                                       /* predictions it served in the window */
    size_t labels;                                     /* of which have feedback */
    double reference_auc, estimated_auc, realized_auc; /* NaN when undefined */
    int decayed, estimate_dropped;
    char diagnosis[32]; /* as ch_monitor_summary's */
} ch_watch_version;

typedef struct ch_watch_result {
    int64_t version;            /* the model drift was measured for */
    int64_t since_ms, until_ms; /* the window (until 0: open) */
    size_t rows;                /* predictions read */
    size_t skipped;      /* predictions without usable inputs or profile (counted, not read) */
    char *drift_json;    /* {"kind": "drift", ...}, or NULL when not run */
    char *decay_json;    /* {"kind": "decay", "versions": [...]} */
    char *estimate_json; /* {"kind": "estimate", "versions": [...]} */
    ch_monitor_summary summary; /* of 'version' */
    ch_watch_version *versions; /* every version in the window, newest first */
    size_t n_versions;
} ch_watch_result;

/* Fills 'j' with the defaults above. Never fails. */
CH_API void ch_watch_job_default(ch_watch_job *j);

/* Fills 'j' from the monitor.* settings of 'cfg' (window, thresholds,
 * minimum counts, bootstrap, segments). Errors: CH_EINVAL (an unknown
 * monitor.correction, a bad window, options that do not check). */
CH_API CH_NODISCARD ch_err ch_watch_job_from_config(const ch_config *cfg, ch_watch_job *j,
                                                    ch_error *err);

/* Parses a window: a span ("30m", "24h", "7d", "2w"; '*span_ms' set,
 * '*last_n' 0) or a count ("50000"; '*last_n' set, '*span_ms' 0).
 * Errors: CH_EINVAL naming the text. */
CH_API CH_NODISCARD ch_err ch_watch_parse_window(const char *text, int64_t *span_ms, size_t *last_n,
                                                 ch_error *err);

/* Runs 'job' against registry 'reg' into 'out' (caller-owned; released
 * with ch_watch_result_reset()). Errors: CH_EINVAL (bad job), CH_ENOTFOUND
 * (no such model), CH_EFORMAT (the model's bundle has no monitoring
 * profile: the message says to retrain), CH_EMODEL (a bundle does not
 * load), CH_EDB, CH_EBUSY, CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_watch_run(ch_registry *reg, const ch_watch_job *job,
                                        ch_watch_result *out, ch_error *err);

/* Frees what 'r' holds and zeroes it. NULL is a no-op. */
CH_API void ch_watch_result_reset(ch_watch_result *r);

#ifdef __cplusplus
}
#endif
#endif /* CH_WATCH_H */
