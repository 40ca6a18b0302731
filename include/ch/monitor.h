/*
 * monitor.h -- is the served model still right? Data drift, score drift,
 * decay from delayed labels, and a label-free performance estimate.
 *
 * A model bundle carries a reference profile of its training data
 * (profile_version 2, written by training): per input column quantile
 * bins, a sorted sample and category counts; for the score, the test
 * rows' calibrated probabilities and a calibration table. A window of
 * current data (served predictions decoded from the prediction log, or
 * the rows of a CSV file) is compared with it:
 *
 *   drift     per input column PSI, Jensen-Shannon distance, and a test
 *             (Kolmogorov-Smirnov for numbers, chi-square for categories)
 *             whose p-values are adjusted across columns (Benjamini-
 *             Hochberg by default); Wasserstein distance for numbers;
 *             missing and unseen-category shares. The same for the score.
 *   decay     realized ROC AUC, PR AUC, Brier, log loss and F1 at the
 *             served threshold from the rows whose true label is known,
 *             with bootstrap confidence intervals, overall and per time
 *             segment, judged only from a minimum label count.
 *   estimate  the same without labels (confidence-based performance
 *             estimation): expected ROC AUC, F1 and accuracy from the
 *             calibrated probabilities, overall and per segment; with
 *             labels at hand, a diagnosis that tells covariate shift
 *             (inputs moved, performance explained by the scores) from
 *             concept drift (labels worse than the scores promise).
 *
 * Every result is a JSON document (docs/monitoring.md gives its fields),
 * plus a few numbers in ch_monitor_summary for gauges and alerts.
 *
 * Workload: a window of a million predictions. Counting is streamed into
 * fixed bins (PSI, chi-square, Jensen-Shannon, and Kolmogorov-Smirnov,
 * exactly, against the reference sample); Wasserstein distances use every
 * value up to CH_MONITOR_SAMPLE_MAX rows per column and a seeded uniform
 * sample of that size beyond. Probabilities are kept whole (8 bytes a
 * row). A reference is immutable and may be shared by threads; a window
 * belongs to one thread.
 */
#ifndef CH_MONITOR_H
#define CH_MONITOR_H

#include <stddef.h>
#include <stdint.h>

#include "ch/buf.h"
#include "ch/bundle.h"
#include "ch/err.h"
#include "ch/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CH_MONITOR_SAMPLE_MAX 200000 /* values per column kept for Wasserstein distances */

typedef struct ch_monitor_ref ch_monitor_ref;       /* immutable */
typedef struct ch_monitor_window ch_monitor_window; /* one thread */

typedef enum ch_monitor_correction {
    CH_MONITOR_BH = 0,  /* Benjamini-Hochberg: controls the false discovery rate */
    CH_MONITOR_HOLM = 1 /* Holm-Bonferroni: controls the family-wise error rate */
} ch_monitor_correction;

typedef struct ch_monitor_opts {
    double psi_warn;  /* PSI from which a column is worth a look (default 0.1) */
    double psi_alert; /* PSI from which a column has drifted (default 0.25) */
    double alpha;     /* adjusted p-value below which a shift is significant (default 0.05) */
    ch_monitor_correction correction; /* across the columns' tests (default BH) */
    double unseen_alert;     /* share of unseen categories that counts as drift (default 0.01) */
    size_t min_rows;         /* rows a window needs before drift is judged (default 200) */
    size_t min_labels;       /* labelled rows before decay is judged (default 200) */
    double auc_drop;         /* ROC AUC below the reference by more than this is decay or an
                                estimated drop (default 0.05) */
    size_t n_boot;           /* bootstrap replicates for intervals (default 200) */
    double level;            /* confidence level of the intervals (default 0.95) */
    size_t n_segments;       /* time segments for the rolling lines (default 10) */
    uint64_t seed;           /* bootstrap and sampling seed (default 42) */
    void (*pace)(void *ctx); /* called between units of work (a column's measures, an
                                interval), from the thread doing it, e.g. to yield to more
                                urgent work; never inside a read of the store; NULL: none */
    void *pace_ctx;
} ch_monitor_opts;

/* Numbers from one computation, for gauges and alert decisions. NaN where
 * a value is undefined (too few rows or labels). */
typedef struct ch_monitor_summary {
    size_t rows;                     /* rows in the window */
    size_t labels;                   /* rows with a known label */
    size_t n_drifted;                /* input columns judged drifted */
    double max_psi;                  /* largest input column PSI */
    double score_psi;                /* PSI of the served probabilities */
    int score_drifted;               /* 1: the score distribution has drifted */
    double reference_auc;            /* the model's held-out test ROC AUC */
    double estimated_auc;            /* CBPE over the window */
    double realized_auc;             /* from the labelled rows (NaN below min_labels) */
    double realized_lo, realized_hi; /* its bootstrap interval at 'level' (NaN: none) */
    int decayed;                     /* 1: realized AUC judged below reference - auc_drop */
    int estimate_dropped;            /* 1: estimated AUC below the reference estimate - auc_drop */
    char diagnosis[32];              /* "stable", "covariate_shift", "concept_drift", "unknown" */
} ch_monitor_summary;

/* Fills 'o' with the defaults above. Never fails. */
CH_API void ch_monitor_opts_default(ch_monitor_opts *o);

/* Checks 'o': thresholds finite and ordered (0 < psi_warn <= psi_alert),
 * alpha and level in (0, 1), n_boot >= 10, n_segments 1..100. Errors:
 * CH_EINVAL naming the option. */
CH_API CH_NODISCARD ch_err ch_monitor_opts_check(const ch_monitor_opts *o, ch_error *err);

/* Reads the reference profile of bundle 'b' (borrowed for the call; the
 * reference keeps copies). Errors: CH_EFORMAT when the bundle has no
 * monitoring profile (written before profile_version 2: the message says
 * to retrain the model to monitor it) or the profile is malformed (naming
 * the column), CH_ENOMEM. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_monitor_ref_load(const ch_bundle *b, ch_monitor_ref **out,
                                               ch_error *err);
CH_API void ch_monitor_ref_free(ch_monitor_ref *r); /* NULL is a no-op */

/* The served threshold and test ROC AUC recorded with the reference. */
CH_API double ch_monitor_ref_threshold(const ch_monitor_ref *r);
CH_API double ch_monitor_ref_auc(const ch_monitor_ref *r);

/* An empty window for 'ref' (borrowed until the window is freed).
 * Errors: CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_monitor_window_new(const ch_monitor_ref *ref, uint64_t seed,
                                                 ch_monitor_window **out, ch_error *err);
CH_API void ch_monitor_window_free(ch_monitor_window *w); /* NULL is a no-op */

/* Adds one row: for every schema column j, 'num[j]' (numbers, NaN when
 * missing) and 'code[j]' (categorical columns: the category's index, -1
 * missing, -2 a value outside the categories), as ch_inputs_decode()
 * gives them; 'num' and 'code' may be NULL for a row known only by its
 * score. 'probability' is the served probability (NaN: none), 'label' the
 * true outcome (0 or 1, -1 when unknown). Rows are taken in time order
 * for the segments. Errors: CH_EINVAL (probability outside [0, 1], label
 * not -1/0/1), CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_monitor_window_add(ch_monitor_window *w, const double *num,
                                                 const int32_t *code, double probability, int label,
                                                 ch_error *err);

/* Adds every row of frame 'f' (ingested with the reference's schema) with
 * its probabilities 'prob' (NULL: none) and, when the frame holds the
 * target, its labels. Errors: CH_EINVAL (frame of another schema),
 * CH_ENOMEM. */
CH_API CH_NODISCARD ch_err ch_monitor_window_add_frame(ch_monitor_window *w, const ch_frame *f,
                                                       const double *prob, ch_error *err);

/* Rows and labelled rows added so far. */
CH_API size_t ch_monitor_window_rows(const ch_monitor_window *w);
CH_API size_t ch_monitor_window_labels(const ch_monitor_window *w);

/* Data and score drift of window 'w' against its reference, as a JSON
 * object appended to 'b' (docs/monitoring.md: "drift"); 'sum' (may be
 * NULL) gets rows, n_drifted, max_psi, score_psi, score_drifted. With
 * fewer than min_rows rows the document says so ("status":
 * "insufficient_data") and judges nothing. Errors: CH_EINVAL (bad
 * options), CH_ENOMEM; the buffer's own status otherwise. */
CH_API CH_NODISCARD ch_err ch_monitor_drift(const ch_monitor_window *w, const ch_monitor_opts *o,
                                            ch_buf *b, ch_monitor_summary *sum, ch_error *err);

/* Decay from the labelled rows of 'w': realized metrics with bootstrap
 * intervals, overall and per segment, against the reference ROC AUC
 * ("decay" in docs/monitoring.md); 'sum' gets labels, reference_auc,
 * realized_auc, decayed. Errors as ch_monitor_drift(). */
CH_API CH_NODISCARD ch_err ch_monitor_decay(const ch_monitor_window *w, const ch_monitor_opts *o,
                                            ch_buf *b, ch_monitor_summary *sum, ch_error *err);

/* The label-free estimate over the window's probabilities, overall and
 * per segment, compared with the same estimate on the reference scores;
 * with min_labels labelled rows, the realized values beside it and the
 * diagnosis ("estimate" in docs/monitoring.md). 'sum' gets
 * estimated_auc, estimate_dropped, diagnosis (and what decay fills).
 * Errors as ch_monitor_drift(). */
CH_API CH_NODISCARD ch_err ch_monitor_estimate(const ch_monitor_window *w, const ch_monitor_opts *o,
                                               ch_buf *b, ch_monitor_summary *sum, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_MONITOR_H */
