/*
 * report.h -- the monitoring report: one self-contained HTML page.
 *
 * The page is built from the JSON documents of ch_monitor_drift(),
 * ch_monitor_decay() and ch_monitor_estimate() (any may be absent) and
 * holds everything inline: styles and the charts as SVG (PSI bars with
 * the thresholds, reference-versus-current histograms per column and for
 * the score, rolling realized ROC AUC with its confidence band beside the
 * label-free estimate and the reference). It needs no script, no font and
 * no network, so it reads the same offline, in a mail attachment or
 * printed. Every text from the data is HTML-escaped.
 */
#ifndef CH_REPORT_H
#define CH_REPORT_H

#include "ch/buf.h"
#include "ch/err.h"
#include "ch/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the page says about itself (all borrowed; NULL allowed). */
typedef struct ch_report_meta {
    const char *title;     /* default "Churn model monitoring" */
    const char *model;     /* e.g. "version 3 (champion), logreg" */
    const char *window;    /* e.g. "last 7 days: 2026-11-29 to 2026-12-06" */
    const char *generated; /* a timestamp */
} ch_report_meta;

/* Appends the HTML page to 'b'. 'drift', 'decay' and 'estimate' are the
 * parsed documents (borrowed; any may be NULL, and a missing part says
 * so on the page). Errors: the buffer's status (CH_ENOMEM, CH_ELIMIT).
 * Thread-safe. */
CH_API ch_err ch_report_html(const ch_report_meta *meta, const ch_json *drift, const ch_json *decay,
                             const ch_json *estimate, ch_buf *b);

#ifdef __cplusplus
}
#endif
#endif /* CH_REPORT_H */
