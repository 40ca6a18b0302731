/*
 * predlog.h -- the prediction log: a bounded queue and a background writer.
 *
 * Every prediction the service makes is recorded (id, pseudonymized
 * customer, digest of the input, the input values themselves as an
 * inputs.h blob, probability, label, model version, latency, time) so
 * that feedback labels can be joined to it later, decay measured against
 * what customers really did, drift measured on what was served, and
 * models retrained on the features that were really scored.
 *
 * The request path only copies a bounded record into a ring buffer;
 * one writer thread takes batches and hands them to a sink (the registry
 * store, one transaction per batch). When the queue is full the record is
 * dropped and counted (the default, so that the request path never
 * blocks), or, in block mode, the caller waits for room. A sink failure is
 * retried, then the batch is counted as dropped; nothing is lost without
 * showing up in ch_predlog_stats_get().
 *
 * Accounting: every push() is either queued or dropped, and every queued
 * record is eventually written, dropped after failed sink calls, or still
 * waiting (depth). So, at any snapshot,
 *     pushes == queued + (dropped by push)
 *     queued == written + (dropped by the sink) + depth
 * and after a successful ch_predlog_sync() depth is 0.
 *
 * Threads: push(), sync() and stats_get() may be called from any number
 * of threads at once. None of them may be called once close() has
 * returned: the owner stops its producers first (a push() that overlaps
 * close() is refused and counted as dropped, which is safe). The sink runs
 * on the writer thread only and must not call sync() or close() (they
 * would wait for the writer itself), nor push() in block mode.
 */
#ifndef CH_PREDLOG_H
#define CH_PREDLOG_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CH_PREDICTION_ID_LEN 32 /* hex digits (128 random bits), without the NUL */

/* Bytes of input values a record carries at most: a Telco record takes
 * 87 (plus 1 + its length for each kept unknown category), so this
 * leaves room for wider schemas while keeping the queue's memory
 * bounded. A record whose inputs do not fit is logged without them. */
#define CH_PREDLOG_INPUTS_MAX 320

/* Who answered a prediction while a rollout runs. */
enum {
    CH_ARM_NONE = 0,     /* no canary rollout was running */
    CH_ARM_CHAMPION = 1, /* the champion, with a canary running */
    CH_ARM_CANDIDATE = 2 /* the canary candidate */
};

/* One prediction, as logged. Plain data, copied by value. The record grew
 * from 176 to 496 bytes (on 64-bit Linux) when it gained 'inputs' and
 * 'inputs_len'; 'inputs' comes last so that push() copies only the bytes
 * in use, and bytes of 'inputs' past 'inputs_len' are unspecified in the
 * records a sink receives. */
typedef struct ch_prediction_rec {
    char id[CH_PREDICTION_ID_LEN + 1]; /* prediction id */
    char customer[33];                 /* pseudonym (CH_PSEUDONYM_LEN hex), "" when none */
    char features_sha256[65];          /* digest of the canonical input record */
    double probability;                /* calibrated */
    int label;                         /* 1 = predicted to churn */
    uint16_t inputs_len;               /* bytes used in 'inputs'; 0: not logged */
    int64_t model_version;             /* registry version, 0 when served from a file */
    double latency_s;                  /* seconds spent in the request */
    int64_t time_ms;                   /* unix time, milliseconds */
    int arm;                           /* CH_ARM_*: who answered during a canary rollout */
    int64_t shadow_version;            /* the shadow candidate that also scored it, 0: none */
    double shadow_probability;         /* its probability (when shadow_version > 0) */
    unsigned char inputs[CH_PREDLOG_INPUTS_MAX]; /* the input values, an inputs.h blob
                                                    (ch_inputs_encode) of 'inputs_len' bytes */
} ch_prediction_rec;

/* Writes 'n' records (n >= 1), all or none. Called from the writer thread
 * only, never with the queue's lock held, so it may take its time (a slow
 * sink fills the queue; it does not slow push()). 'recs' is borrowed for
 * the call. Returns CH_OK or an error with detail in 'err' (never NULL);
 * after an error the same batch may be passed again (see 'retries'), so
 * "all or none" matters. */
typedef ch_err (*ch_predlog_sink_fn)(void *ctx, const ch_prediction_rec *recs, size_t n,
                                     ch_error *err);

typedef struct ch_predlog_opts {
    size_t capacity;  /* records the queue holds (default 32768; 496 bytes each, so
                         about 16 MB allocated at open) */
    size_t batch_max; /* records per sink call at most (default 1024; capped at capacity) */
    int flush_ms;     /* the writer wakes at least this often, ms (default 200; >= 1) */
    int block;        /* 1: a full queue makes push() wait; 0: drop and count (default) */
    int retries;      /* extra sink calls for a failing batch before it is dropped
                         (default 3: up to 4 calls, 10, 20 and 40 ms apart; >= 0) */
} ch_predlog_opts;

/* Counters since open(), all taken at one instant. */
typedef struct ch_predlog_stats {
    uint64_t queued;         /* records accepted by push() */
    uint64_t written;        /* records the sink accepted */
    uint64_t dropped;        /* records lost: queue full, closing, or sink failed after retries */
    uint64_t sink_errors;    /* failed sink calls (each retry counts) */
    uint64_t inputs_skipped; /* records queued without input values (inputs_len 0, or
                                above CH_PREDLOG_INPUTS_MAX and so cleared) */
    size_t depth;            /* records queued and not yet written or dropped, including the
                                batch the sink is working on */
    size_t capacity;         /* records the queue holds */
} ch_predlog_stats;

typedef struct ch_predlog ch_predlog;

/* Fills 'o' with the defaults above. Never fails. Thread-safe. */
CH_API void ch_predlog_opts_default(ch_predlog_opts *o);

/* Allocates the queue (capacity records, once; push() never allocates)
 * and starts the writer thread. 'o' is copied; NULL means the defaults.
 * 'sink' and 'ctx' are borrowed until ch_predlog_close(). '*out' is
 * written only on success, and the caller releases it with
 * ch_predlog_close(). Errors: CH_EINVAL ('sink' or 'out' NULL, capacity
 * or batch_max 0, flush_ms < 1, retries < 0), CH_ENOMEM, CH_EIO (the
 * thread or its lock could not be created). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_predlog_open(const ch_predlog_opts *o, ch_predlog_sink_fn sink,
                                           void *ctx, ch_predlog **out, ch_error *err);

/* Queues a copy of 'rec' ('rec' is borrowed for the call): its fixed
 * fields and the first 'inputs_len' bytes of 'inputs'. A record queued
 * with inputs_len 0 is counted in 'inputs_skipped'; one whose inputs_len
 * exceeds CH_PREDLOG_INPUTS_MAX (a caller bug) is queued with inputs_len
 * 0 and counted the same way. Returns 1 when
 * queued, 0 when dropped and counted (queue full in drop mode, or the log
 * is closing). Never allocates; in drop mode never waits for the writer or
 * the sink, only for a lock held to copy one record. In block mode it
 * waits for room as long as it takes, and returns 0 if close() begins
 * meanwhile. Thread-safe. */
CH_API int ch_predlog_push(ch_predlog *pl, const ch_prediction_rec *rec);

/* Waits until every record queued before the call has been handed to the
 * sink (written or dropped), at most 'timeout_ms' (<= 0: only checks).
 * Wakes the writer at once rather than at its next flush_ms tick. Returns
 * 1 when done, 0 on timeout. Used before joining feedback to a fresh
 * prediction. Thread-safe; not from inside the sink. */
CH_API int ch_predlog_sync(ch_predlog *pl, int timeout_ms);

/* Writes a consistent snapshot of the counters to '*out'. Thread-safe. */
CH_API void ch_predlog_stats_get(ch_predlog *pl, ch_predlog_stats *out);

/* Stops taking records (later and blocked pushes are refused and
 * counted as dropped), hands everything queued to the sink in batches,
 * joins the writer and frees everything. Returns CH_OK, or the error of
 * the last batch that the sink failed (after its retries) once close()
 * had begun, with the sink's detail in 'err'; those records are counted
 * as dropped. 'pl' is invalid afterwards, whatever the result. NULL is a
 * no-op returning CH_OK. Not thread-safe against itself: one owner calls
 * it once. */
CH_API ch_err ch_predlog_close(ch_predlog *pl, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_PREDLOG_H */
