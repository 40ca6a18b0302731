/*
 * metrics.h -- the service's counters, in one struct, rendered in the
 * Prometheus text format (metrics.c).
 *
 * Every counter is an atomic updated with relaxed ordering on the request
 * path: no locks, no allocation. Sections follow the Redis INFO idea:
 * requests, latency, predictions, feedback, prediction log, model.
 */
#ifndef CH_SERVER_METRICS_H
#define CH_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "ch/buf.h"

#define M_MAX_ROUTES   32 /* route table entries; one more slot counts unmatched requests */
#define M_N_STATUS     17
#define M_N_LATENCY    14
#define M_N_SCORE      10
#define M_MAX_VERSIONS 16
#define M_CLAIMING     (-2) /* a version slot whose alias is being written */
#define M_N_ARMS       3

typedef struct m_version {
    atomic_llong version; /* 0 = free slot (file-served models use -1) */
    char alias[16];
    atomic_uint_fast64_t by_label[2];
} m_version;

typedef struct metrics {
    atomic_uint_fast64_t req[M_MAX_ROUTES + 1][M_N_STATUS];
    atomic_uint_fast64_t lat[M_MAX_ROUTES + 1][M_N_LATENCY + 1]; /* last: +Inf */
    atomic_uint_fast64_t lat_sum_ns[M_MAX_ROUTES + 1];
    atomic_uint_fast64_t score[M_N_SCORE + 1];
    atomic_uint_fast64_t score_sum_micro; /* probabilities x 1e6 */
    m_version versions[M_MAX_VERSIONS];
    atomic_uint_fast64_t feedback;
    atomic_uint_fast64_t rate_limited;
    atomic_uint_fast64_t auth_failures;
    atomic_uint_fast64_t unknown_categories;
    atomic_uint_fast64_t model_loads_ok;
    atomic_uint_fast64_t model_loads_failed;
    atomic_uint_fast64_t model_swaps;
    atomic_uint_fast64_t access_log_errors;
    /* Per arm of a rollout (CH_ARM_*: none, champion, candidate): scored
     * records, failed ones, and the scoring latency; the rollout gates
     * compare them over a step. */
    atomic_uint_fast64_t arm_predictions[M_N_ARMS];
    atomic_uint_fast64_t arm_errors[M_N_ARMS];
    atomic_uint_fast64_t arm_lat[M_N_ARMS][M_N_LATENCY + 1];
    atomic_uint_fast64_t arm_lat_sum_ns[M_N_ARMS];
    atomic_uint_fast64_t shadow_scored;  /* records the shadow candidate scored */
    atomic_uint_fast64_t shadow_skipped; /* records it could not (queue full, no inputs) */
    double start_time;                   /* unix seconds */
} metrics;

/* A snapshot of one arm's counters. */
typedef struct arm_counts {
    uint64_t predictions, errors;
    uint64_t lat[M_N_LATENCY + 1];
} arm_counts;

/* Counts one record scored by 'arm', failed or not, taking 'seconds'. */
void metrics_arm(metrics *m, int arm, int failed, double seconds);
/* Reads arm 'arm' into 'out'. */
void metrics_arm_read(const metrics *m, int arm, arm_counts *out);
/* Records scored so far, every arm together. */
uint64_t metrics_predictions(const metrics *m);
/* The 'q' quantile (0.99) of the latencies counted between 'from' and
 * 'to' (the upper bound of the bucket it falls in, seconds), or NaN
 * without any. */
double metrics_arm_quantile(const arm_counts *from, const arm_counts *to, double q);

/* Counts one finished request of route 'route' (-1: unmatched) with
 * 'status', taking 'seconds'. */
void metrics_request(metrics *m, int route, int status, double seconds);
/* Counts one prediction of model 'version' ('alias') with 'label' and
 * probability 'p'. */
void metrics_prediction(metrics *m, int64_t version, const char *alias, int label, double p);

/* Appends the request, latency and prediction sections. 'route_label'
 * gives the "route" label text of a route index. */
void metrics_render(const metrics *m, const char *(*route_label)(int route), int n_routes,
                    ch_buf *b);

#endif /* CH_SERVER_METRICS_H */
