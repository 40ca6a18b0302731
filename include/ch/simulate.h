/*
 * simulate.h -- synthetic telecom customers in the Telco CSV layout.
 *
 * A documented generative model (docs/simulate.md) draws each customer's
 * attributes (contract, tenure, services, charges, payment method, ...)
 * with realistic dependencies, then a latent churn propensity from those
 * attributes plus noise, and the label from that propensity. It is the
 * default data for demos and load, and the ground truth for drift tests:
 * each scenario changes one documented part of the model.
 *
 * Output is byte-for-byte determined by (n_rows, seed, drift, crlf,
 * id_offset): the same options always produce the same file. Customer
 * number c = id_offset + row alone fixes a customer, so N rows at offset 0
 * followed by N rows at offset N equal 2N rows at offset 0, and customerIDs
 * ("DDDD-LLLLL", a bijection of c) never repeat across batches.
 *
 * Calibration (docs/simulate.md): about 26.5% churn; the oracle AUC is
 * ~0.867, and xgboost trained on 50k rows reaches 0.863-0.867 on fresh
 * rows, so a good model lands in 0.86-0.87.
 *
 * Expected workload: 1M rows (139 MB) in about 0.3 s on one core.
 */
#ifndef CH_SIMULATE_H
#define CH_SIMULATE_H

#include <stddef.h>
#include <stdint.h>

#include "ch/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ch_sim_drift {
    CH_SIM_DRIFT_NONE = 0,        /* the reference population */
    CH_SIM_DRIFT_PRICE = 1,       /* price increase: MonthlyCharges (and TotalCharges) +15% */
    CH_SIM_DRIFT_FIBER = 2,       /* internet service shifts to fiber optic (~44% -> ~65%) */
    CH_SIM_DRIFT_NEW_PAYMENT = 3, /* ~20% pay by "Digital wallet", never seen otherwise */
    CH_SIM_DRIFT_CONCEPT = 4      /* same features; the contract no longer affects churn */
} ch_sim_drift;

/* Column layout of the file. The Telco layout is the documented
 * generative model below; the others mimic two other public churn files
 * (docs/simulate.md) so that the path from an unfamiliar CSV to a served
 * model can be tested on data the project makes itself. Drift scenarios
 * apply to the Telco layout only. */
typedef enum ch_sim_layout {
    CH_SIM_LAYOUT_TELCO = 0, /* the IBM Telco columns (customerID ... Churn Yes/No) */
    CH_SIM_LAYOUT_BANK = 1,  /* a bank: RowNumber, CustomerId, Surname, ..., Exited 0/1 */
    CH_SIM_LAYOUT_PLANS = 2  /* telecom plans and usage: State first, no id, Churn True/False */
} ch_sim_layout;

/* Called with successive chunks of CSV text (about 1 MiB each, the last
 * one shorter; 'data' is borrowed for the call); return 0 to go on,
 * non-zero to stop (the run then fails with CH_EIO). */
typedef int (*ch_sim_write_fn)(void *ctx, const char *data, size_t len);

/* Called every 65536 rows and once at the end with rows_done == rows_total
 * (may be NULL). */
typedef void (*ch_sim_progress_fn)(void *ctx, uint64_t rows_done, uint64_t rows_total);

typedef struct ch_sim_opts {
    uint64_t n_rows;      /* customers to write (default 10000) */
    uint64_t seed;        /* random seed (default 42) */
    ch_sim_drift drift;   /* scenario (default CH_SIM_DRIFT_NONE) */
    int crlf;             /* 1: CRLF line endings like the Telco file (default 0) */
    uint64_t id_offset;   /* first customer number, so batches do not collide (default 0);
                             id_offset + n_rows may not exceed 10^4 * 26^5 distinct ids (10^7
                             for the bank layout) */
    ch_sim_layout layout; /* columns to write (default CH_SIM_LAYOUT_TELCO) */
} ch_sim_opts;

/* Fills 'o' with the defaults above. Never fails. */
CH_API void ch_sim_opts_default(ch_sim_opts *o);

/* Scenario name <-> value: "none", "price", "fiber", "new-payment",
 * "concept". ch_sim_drift_name returns a static string, "unknown" for a
 * value outside the enum. ch_sim_drift_parse matches exactly (case
 * matters), sets '*out' and returns 0, or returns -1 for an unknown or NULL
 * name and leaves '*out' alone. Both are thread-safe. */
CH_API const char *ch_sim_drift_name(ch_sim_drift d);
CH_API int ch_sim_drift_parse(const char *name, ch_sim_drift *out);

/* Layout name <-> value: "telco", "bank", "plans"; as the drift pair. */
CH_API const char *ch_sim_layout_name(ch_sim_layout l);
CH_API int ch_sim_layout_parse(const char *name, ch_sim_layout *out);

/* Checks 'o' without writing anything: the same checks ch_sim_write()
 * makes first, so a caller can refuse bad options before creating an
 * output file. Errors: CH_EINVAL with the reason. Thread-safe. */
CH_API CH_NODISCARD ch_err ch_sim_opts_check(const ch_sim_opts *o, ch_error *err);

/* Writes a header line and 'o->n_rows' customers through 'write'; 'ctx'
 * is passed to both 'write' and 'progress'. 'o' is borrowed for the call.
 * Errors: CH_EINVAL (NULL 'o' or 'write', unknown drift, crlf not 0/1, ids
 * past the id space; nothing is written), CH_ENOMEM, CH_EIO (the writer
 * stopped). Thread-safe (no global state). */
CH_API CH_NODISCARD ch_err ch_sim_write(const ch_sim_opts *o, ch_sim_write_fn write,
                                        ch_sim_progress_fn progress, void *ctx, ch_error *err);

/* Writes the same to the file at 'path' ("-" for standard output, which
 * is flushed but not closed); 'ctx' goes to 'progress'. On failure a
 * partly written regular file is removed (devices and FIFOs are left
 * alone). Errors as ch_sim_write(), and CH_EIO naming the path when it
 * cannot be created, written or closed. */
CH_API CH_NODISCARD ch_err ch_sim_write_file(const ch_sim_opts *o, const char *path,
                                             ch_sim_progress_fn progress, void *ctx, ch_error *err);

/* The model's true churn probability for one simulated customer is not
 * exposed per row; instead this returns the ROC AUC that the true
 * propensity (the log-odds without their noise term) reaches on the
 * customers ch_sim_write() would write for 'o' (same seed, drift and
 * id_offset), i.e. the best AUC any model can expect on this data. Ties
 * count one half (midranks). Used by tests and docs. For the reference
 * population it is about 0.867. Allocates 16 bytes per row.
 * Errors: CH_ENOMEM, CH_EINVAL (bad options, fewer than 2 rows, or only
 * one class in the sample). Thread-safe. */
CH_API CH_NODISCARD ch_err ch_sim_oracle_auc(const ch_sim_opts *o, double *auc, ch_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CH_SIMULATE_H */
