/*
 * report.c -- the monitoring report as one self-contained HTML page
 * (include/ch/report.h).
 *
 * Charts are SVG written by hand: a handful of rectangles, lines and text
 * per chart, with coordinates computed here, so the page needs no script
 * and no library. Colours follow the verdicts: grey for the reference,
 * blue for current data, amber for "warn", red for "drift". Numbers are
 * written with a fixed number of decimals through snprintf on doubles;
 * the library never sets a locale, so the decimal point is always '.'.
 */
#include "ch/report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define W_CHART 640 /* width of the wide charts, px */

static const char *const css =
    "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;"
    "margin:24px auto;max-width:1080px;color:#1b1f24;padding:0 16px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px "
    "solid #d0d7de;padding-bottom:4px}h3{font-size:14px;margin:10px 0 2px}"
    ".meta{color:#57606a}.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}"
    ".card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:150px}"
    ".card b{display:block;font-size:19px}.ok{color:#1a7f37}.warn{color:#9a6700}"
    ".drift,.bad{color:#cf222e}table{border-collapse:collapse;width:100%;font-size:13px}"
    "td,th{border-bottom:1px solid #eaeef2;padding:3px 6px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}th{background:#f6f8fa}"
    ".grid{display:flex;flex-wrap:wrap;gap:14px}.small{width:250px}"
    ".legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}"
    "svg text{font-size:10px;fill:#57606a}p.note{color:#57606a;font-size:13px}";

/* Writes 's' with &, <, >, " escaped. */
static void esc(ch_buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        switch (*s) {
        case '&':
            ch_buf_puts(b, "&amp;");
            break;
        case '<':
            ch_buf_puts(b, "&lt;");
            break;
        case '>':
            ch_buf_puts(b, "&gt;");
            break;
        case '"':
            ch_buf_puts(b, "&quot;");
            break;
        default:
            ch_buf_putc(b, *s);
        }
    }
}

static double num(const ch_json *v)
{
    double d;
    return ch_json_num(v, &d) == 0 ? d : NAN;
}

static double get(const ch_json *o, const char *k)
{
    return num(ch_json_get(o, k));
}

static const char *str(const ch_json *o, const char *k)
{
    const char *s = ch_json_str(ch_json_get(o, k), NULL);
    return s != NULL ? s : "";
}

/* A number with 'dec' decimals, or an en dash when undefined. */
static void fmt(ch_buf *b, double v, int dec)
{
    if (isfinite(v))
        ch_buf_printf(b, "%.*f", dec, v);
    else
        ch_buf_puts(b, "&ndash;");
}

/* A p-value: 3 significant digits, "< 1e-300" when it underflowed. */
static void fmt_p(ch_buf *b, double v)
{
    if (!isfinite(v))
        ch_buf_puts(b, "&ndash;");
    else if (v == 0)
        ch_buf_puts(b, "&lt; 1e-300");
    else if (v < 0.001)
        ch_buf_printf(b, "%.2e", v);
    else
        ch_buf_printf(b, "%.3f", v);
}

static const char *status_colour(const char *st)
{
    return strcmp(st, "drift") == 0 ? "#cf222e" : strcmp(st, "warn") == 0 ? "#d4a72c" : "#2da44e";
}

static void card(ch_buf *b, const char *title, const char *cls, double v, int dec,
                 const char *suffix)
{
    ch_buf_printf(b, "<div class=\"card\">%s<b class=\"%s\">", title, cls);
    fmt(b, v, dec);
    ch_buf_printf(b, "%s</b></div>", suffix);
}

/* ---- charts ---------------------------------------------------------------- */

/* Horizontal PSI bars, one per column, largest first, with the warn and
 * alert thresholds as dashed lines. */
static void psi_bars(ch_buf *b, const ch_json *drift)
{
    const ch_json *cols = ch_json_get(drift, "columns");
    size_t n = ch_json_len(cols);
    size_t order[1024];
    double warn = get(drift, "psi_warn");
    double alert = get(drift, "psi_alert");
    double top = isfinite(alert) ? alert * 1.2 : 0.3;
    int left = 170, width = W_CHART - left - 60, row = 18;
    if (n > 1024)
        n = 1024;
    for (size_t i = 0; i < n; i++) {
        double v = get(ch_json_at(cols, i), "psi");
        order[i] = i;
        if (isfinite(v) && v > top)
            top = v * 1.05;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort by PSI, descending */
        for (size_t k = i; k > 0; k--) {
            double a = get(ch_json_at(cols, order[k - 1]), "psi");
            double c = get(ch_json_at(cols, order[k]), "psi");
            if (!(isnan(a) || c > a))
                break;
            size_t t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    ch_buf_printf(b,
                  "<svg role=\"img\" aria-label=\"PSI per column\" width=\"%d\" height=\"%zu\" "
                  "viewBox=\"0 0 %d %zu\">",
                  W_CHART, n * (size_t)row + 24, W_CHART, n * (size_t)row + 24);
    for (size_t i = 0; i < n; i++) {
        const ch_json *c = ch_json_at(cols, order[i]);
        double v = get(c, "psi");
        double wpx = isfinite(v) ? v / top * width : 0;
        int y = (int)i * row;
        ch_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, y + 13);
        esc(b, str(c, "name"));
        ch_buf_printf(b,
                      "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>",
                      left, y + 3, wpx, row - 6, status_colour(str(c, "status")));
        ch_buf_printf(b, "<text x=\"%.1f\" y=\"%d\">", left + wpx + 4, y + 13);
        fmt(b, v, 3);
        ch_buf_puts(b, "</text>");
    }
    for (int k = 0; k < 2; k++) {
        double t = k == 0 ? warn : alert;
        double x = left + t / top * width;
        if (!isfinite(t))
            continue;
        ch_buf_printf(b,
                      "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%zu\" stroke=\"%s\" "
                      "stroke-dasharray=\"4 3\"/><text x=\"%.1f\" y=\"%zu\">%s %.2f</text>",
                      x, x, n * (size_t)row, k ? "#cf222e" : "#d4a72c", x - 20,
                      n * (size_t)row + 16, k ? "alert" : "warn", t);
    }
    ch_buf_puts(b, "</svg>");
}

/* Reference (grey) and current (blue) shares per bin, side by side. */
static void histogram(ch_buf *b, const ch_json *col, int width, int height)
{
    const ch_json *bins = ch_json_get(col, "bins");
    const ch_json *labels = ch_json_get(bins, "labels");
    const ch_json *ref = ch_json_get(bins, "reference");
    const ch_json *cur = ch_json_get(bins, "current");
    size_t n = ch_json_len(labels);
    double top = 0;
    int base = height - 28;
    double slot;
    if (n == 0)
        return;
    for (size_t k = 0; k < n; k++) {
        double r = num(ch_json_at(ref, k));
        double c = num(ch_json_at(cur, k));
        if (isfinite(r) && r > top)
            top = r;
        if (isfinite(c) && c > top)
            top = c;
    }
    if (top <= 0)
        top = 1;
    slot = (double)(width - 10) / (double)n;
    ch_buf_printf(b, "<svg role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", width,
                  height, width, height);
    for (size_t k = 0; k < n; k++) {
        double x = 5 + slot * (double)k;
        double r = num(ch_json_at(ref, k));
        double c = num(ch_json_at(cur, k));
        double hr = isfinite(r) ? r / top * (base - 6) : 0;
        double hc = isfinite(c) ? c / top * (base - 6) : 0;
        ch_buf_printf(b,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#afb8c1\">"
                      "<title>",
                      x + 1, base - hr, slot / 2 - 1, hr);
        esc(b, ch_json_str(ch_json_at(labels, k), NULL));
        ch_buf_puts(b, ": reference ");
        fmt(b, 100 * r, 1);
        ch_buf_printf(b,
                      "%%</title></rect><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "fill=\"#0969da\"><title>",
                      x + slot / 2, base - hc, slot / 2 - 1, hc);
        esc(b, ch_json_str(ch_json_at(labels, k), NULL));
        ch_buf_puts(b, ": current ");
        fmt(b, 100 * c, 1);
        ch_buf_puts(b, "%</title></rect>");
        if (n <= 12) {
            char t[24];
            const char *l = ch_json_str(ch_json_at(labels, k), NULL);
            snprintf(t, sizeof t, "%.10s", l != NULL ? l : "");
            ch_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", x + slot / 2,
                          base + 12 + (int)(k % 2) * 10);
            esc(b, t);
            ch_buf_puts(b, "</text>");
        }
    }
    ch_buf_printf(b, "<line x1=\"5\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#8c959f\"/></svg>",
                  width - 5, base, base);
}

/* Lines over segments: realized ROC AUC with its interval as a band,
 * the estimate, and the reference as a dashed line. */
static void rolling(ch_buf *b, const ch_json *decay, const ch_json *estimate)
{
    const ch_json *rs = ch_json_get(decay, "segments");
    const ch_json *es = ch_json_get(estimate, "segments");
    size_t nr = ch_json_len(rs);
    size_t ne = ch_json_len(es);
    double ref = get(estimate != NULL ? estimate : decay, "reference_roc_auc");
    double lo = 1;
    double hi = 0;
    int h = 220, left = 44, right = W_CHART - 16, top = 10, bottom = h - 30;
    if (nr == 0 && ne == 0)
        return;
    for (size_t i = 0; i < nr; i++) {
        const ch_json *a = ch_json_get(ch_json_at(rs, i), "roc_auc");
        double l = get(a, "lo"), u = get(a, "hi"), v = get(a, "value");
        if (isfinite(l) && l < lo)
            lo = l;
        if (isfinite(u) && u > hi)
            hi = u;
        if (isfinite(v) && v < lo)
            lo = v;
        if (isfinite(v) && v > hi)
            hi = v;
    }
    for (size_t i = 0; i < ne; i++) {
        double v = get(ch_json_get(ch_json_at(es, i), "estimated"), "roc_auc");
        if (isfinite(v) && v < lo)
            lo = v;
        if (isfinite(v) && v > hi)
            hi = v;
    }
    if (isfinite(ref)) {
        lo = ref < lo ? ref : lo;
        hi = ref > hi ? ref : hi;
    }
    lo = floor(lo * 20 - 0.5) / 20;
    hi = ceil(hi * 20 + 0.5) / 20;
    if (!(hi > lo)) {
        lo = 0.5;
        hi = 1;
    }
#define YPX(v) (bottom - ((v)-lo) / (hi - lo) * (bottom - top))
    ch_buf_printf(b, "<svg role=\"img\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">", W_CHART,
                  h, W_CHART, h);
    for (double g = lo; g <= hi + 1e-9; g += 0.05)
        ch_buf_printf(b,
                      "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eaeef2\"/>"
                      "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>",
                      left, right, YPX(g), YPX(g), left - 4, YPX(g) + 3, g);
    if (nr > 0) {
        double step = nr > 1 ? (double)(right - left) / (double)(nr - 1) : 0;
        ch_buf_puts(b, "<path fill=\"#0969da\" fill-opacity=\"0.15\" d=\"");
        for (size_t i = 0; i < nr; i++) {
            double u = get(ch_json_get(ch_json_at(rs, i), "roc_auc"), "hi");
            if (isfinite(u))
                ch_buf_printf(b, "%s%.1f %.1f ", i ? "L" : "M", left + step * (double)i, YPX(u));
        }
        for (size_t i = nr; i-- > 0;) {
            double l = get(ch_json_get(ch_json_at(rs, i), "roc_auc"), "lo");
            if (isfinite(l))
                ch_buf_printf(b, "L%.1f %.1f ", left + step * (double)i, YPX(l));
        }
        ch_buf_puts(b, "Z\"/><polyline fill=\"none\" stroke=\"#0969da\" stroke-width=\"2\" "
                       "points=\"");
        for (size_t i = 0; i < nr; i++) {
            double v = get(ch_json_get(ch_json_at(rs, i), "roc_auc"), "value");
            if (isfinite(v))
                ch_buf_printf(b, "%.1f,%.1f ", left + step * (double)i, YPX(v));
        }
        ch_buf_puts(b, "\"/>");
    }
    if (ne > 0) {
        double step = ne > 1 ? (double)(right - left) / (double)(ne - 1) : 0;
        ch_buf_puts(b, "<polyline fill=\"none\" stroke=\"#8250df\" stroke-width=\"2\" "
                       "stroke-dasharray=\"6 3\" points=\"");
        for (size_t i = 0; i < ne; i++) {
            double v = get(ch_json_get(ch_json_at(es, i), "estimated"), "roc_auc");
            if (isfinite(v))
                ch_buf_printf(b, "%.1f,%.1f ", left + step * (double)i, YPX(v));
        }
        ch_buf_puts(b, "\"/>");
    }
    if (isfinite(ref))
        ch_buf_printf(b,
                      "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#57606a\" "
                      "stroke-dasharray=\"2 3\"/>",
                      left, right, YPX(ref), YPX(ref));
    ch_buf_printf(b,
                  "<text x=\"%d\" y=\"%d\">oldest</text><text x=\"%d\" y=\"%d\" "
                  "text-anchor=\"end\">newest</text></svg>",
                  left, h - 10, right, h - 10);
#undef YPX
    ch_buf_puts(b, "<div class=\"legend\"><span style=\"background:#0969da\"></span>realized ROC "
                   "AUC (band: confidence interval)<span style=\"background:#8250df\"></span>"
                   "estimated without labels<span style=\"background:#57606a\"></span>reference "
                   "(test set at training)</div>");
}

/* ---- sections ---------------------------------------------------------------- */

static void drift_section(ch_buf *b, const ch_json *drift)
{
    const ch_json *cols = ch_json_get(drift, "columns");
    const ch_json *score = ch_json_get(drift, "score");
    ch_buf_puts(b, "<h2>Data drift</h2>");
    if (drift == NULL) {
        ch_buf_puts(b, "<p class=\"note\">Not computed.</p>");
        return;
    }
    if (strcmp(str(drift, "status"), "insufficient_data") == 0) {
        ch_buf_printf(
            b, "<p class=\"note\">Only %.0f rows in the window; drift is judged from %.0f.</p>",
            get(drift, "rows"), get(drift, "min_rows"));
        return;
    }
    ch_buf_printf(
        b,
        "<p class=\"note\">%.0f current rows against %.0f training rows. A column has "
        "drifted when its PSI reaches %.2f, or its %s-adjusted p-value is below %.3g with "
        "a PSI of at least %.2f (or, for categories, unseen values reach %.1f%%).</p>",
        get(drift, "rows"), get(drift, "reference_rows"), get(drift, "psi_alert"),
        strcmp(str(drift, "correction"), "holm") == 0 ? "Holm" : "Benjamini-Hochberg",
        get(drift, "alpha"), get(drift, "psi_warn"), 100 * get(drift, "unseen_alert"));
    psi_bars(b, drift);
    ch_buf_puts(b, "<table><tr><th>column</th><th>kind</th><th>PSI</th><th>JS</th><th>test</th>"
                   "<th>statistic</th><th>p</th><th>adjusted p</th><th>Wasserstein / sd</th>"
                   "<th>missing ref &rarr; now</th><th>unseen</th><th>verdict</th></tr>");
    for (size_t i = 0; i < ch_json_len(cols); i++) {
        const ch_json *c = ch_json_at(cols, i);
        const ch_json *t = ch_json_get(c, "test");
        const ch_json *m = ch_json_get(c, "missing_share");
        ch_buf_puts(b, "<tr><td>");
        esc(b, str(c, "name"));
        ch_buf_printf(b, "</td><td>%s</td><td>", str(c, "kind"));
        fmt(b, get(c, "psi"), 3);
        ch_buf_puts(b, "</td><td>");
        fmt(b, get(c, "js"), 3);
        ch_buf_printf(b, "</td><td>%s</td><td>", str(t, "name"));
        fmt(b, get(t, "statistic"), 3);
        ch_buf_puts(b, "</td><td>");
        fmt_p(b, get(t, "p"));
        ch_buf_puts(b, "</td><td>");
        fmt_p(b, get(t, "p_adjusted"));
        ch_buf_puts(b, "</td><td>");
        fmt(b, get(c, "wasserstein_sd"), 3);
        ch_buf_puts(b, "</td><td>");
        fmt(b, 100 * get(m, "reference"), 1);
        ch_buf_puts(b, "% &rarr; ");
        fmt(b, 100 * get(m, "current"), 1);
        ch_buf_puts(b, "%</td><td>");
        fmt(b, 100 * get(c, "unseen_share"), 2);
        ch_buf_printf(b, "%%</td><td class=\"%s\">%s</td></tr>", str(c, "status"),
                      str(c, "status"));
    }
    ch_buf_puts(b, "</table><h2>Distributions: training reference and current</h2>"
                   "<div class=\"legend\"><span style=\"background:#afb8c1\"></span>reference"
                   "<span style=\"background:#0969da\"></span>current</div><div class=\"grid\">");
    if (score != NULL) {
        ch_buf_puts(b, "<div class=\"small\"><h3>churn probability (score), PSI ");
        fmt(b, get(score, "psi"), 3);
        ch_buf_puts(b, "</h3>");
        histogram(b, score, 250, 140);
        ch_buf_puts(b, "</div>");
    }
    for (size_t i = 0; i < ch_json_len(cols); i++) {
        const ch_json *c = ch_json_at(cols, i);
        ch_buf_printf(b, "<div class=\"small\"><h3 class=\"%s\">", str(c, "status"));
        esc(b, str(c, "label"));
        ch_buf_puts(b, ", PSI ");
        fmt(b, get(c, "psi"), 3);
        ch_buf_puts(b, "</h3>");
        histogram(b, c, 250, 140);
        ch_buf_puts(b, "</div>");
    }
    ch_buf_puts(b, "</div>");
}

static void perf_section(ch_buf *b, const ch_json *decay, const ch_json *estimate)
{
    const ch_json *m = ch_json_get(decay, "metrics");
    static const char *const names[] = {"roc_auc", "pr_auc", "brier", "log_loss", "f1"};
    static const char *const titles[] = {"ROC AUC", "PR AUC", "Brier score", "log loss",
                                         "F1 at the served threshold"};
    ch_buf_puts(b, "<h2>Performance</h2>");
    if (decay == NULL && estimate == NULL) {
        ch_buf_puts(b, "<p class=\"note\">Not computed.</p>");
        return;
    }
    if (decay != NULL) {
        ch_buf_printf(b,
                      "<p class=\"note\">%.0f predictions have a known outcome (%.0f churned); "
                      "decay is judged from %.0f. Intervals: %.0f%% bootstrap.</p>",
                      get(decay, "labels"), get(decay, "positives"), get(decay, "min_labels"),
                      100 * get(decay, "level"));
        if (m != NULL) {
            ch_buf_puts(b, "<table><tr><th>metric (realized)</th><th>value</th><th>interval</th>"
                           "</tr>");
            for (int k = 0; k < 5; k++) {
                const ch_json *v = ch_json_get(m, names[k]);
                ch_buf_printf(b, "<tr><td>%s</td><td>", titles[k]);
                fmt(b, get(v, "value"), 4);
                ch_buf_puts(b, "</td><td>");
                fmt(b, get(v, "lo"), 4);
                ch_buf_puts(b, " to ");
                fmt(b, get(v, "hi"), 4);
                ch_buf_puts(b, "</td></tr>");
            }
            ch_buf_puts(b, "</table>");
        }
    }
    if (estimate != NULL && ch_json_get(estimate, "estimated") != NULL) {
        const ch_json *e = ch_json_get(estimate, "estimated");
        const ch_json *r = ch_json_get(estimate, "reference_estimate");
        ch_buf_puts(b, "<table><tr><th>estimated without labels</th><th>current window</th>"
                       "<th>reference scores</th></tr>");
        static const char *const en[] = {"roc_auc", "f1", "accuracy"};
        static const char *const et[] = {"ROC AUC", "F1", "accuracy"};
        for (int k = 0; k < 3; k++) {
            ch_buf_printf(b, "<tr><td>%s</td><td>", et[k]);
            fmt(b, get(e, en[k]), 4);
            ch_buf_puts(b, "</td><td>");
            fmt(b, get(r, en[k]), 4);
            ch_buf_puts(b, "</td></tr>");
        }
        ch_buf_puts(b, "</table>");
    }
    rolling(b, decay, estimate);
}

ch_err ch_report_html(const ch_report_meta *meta, const ch_json *drift, const ch_json *decay,
                      const ch_json *estimate, ch_buf *b)
{
    static const ch_report_meta none = {NULL, NULL, NULL, NULL};
    const char *title;
    const char *diag = str(estimate, "diagnosis");
    if (meta == NULL)
        meta = &none;
    title = meta->title != NULL ? meta->title : "Churn model monitoring";
    ch_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    esc(b, title);
    ch_buf_printf(b, "</title><style>%s</style></head><body><h1>", css);
    esc(b, title);
    ch_buf_puts(b, "</h1><div class=\"meta\">");
    if (meta->model != NULL) {
        ch_buf_puts(b, "Model ");
        esc(b, meta->model);
        ch_buf_puts(b, ". ");
    }
    if (meta->window != NULL) {
        ch_buf_puts(b, "Window: ");
        esc(b, meta->window);
        ch_buf_puts(b, ". ");
    }
    if (meta->generated != NULL) {
        ch_buf_puts(b, "Generated ");
        esc(b, meta->generated);
        ch_buf_puts(b, ".");
    }
    ch_buf_puts(b, "</div><div class=\"cards\">");
    if (drift != NULL) {
        double nd = (double)ch_json_len(ch_json_get(drift, "drifted"));
        card(b, "columns drifted", nd > 0 ? "drift" : "ok", nd, 0, "");
        card(b, "score PSI",
             strcmp(str(ch_json_get(drift, "score"), "status"), "drift") == 0 ? "drift" : "ok",
             get(ch_json_get(drift, "score"), "psi"), 3, "");
    }
    if (estimate != NULL) {
        card(b, "estimated ROC AUC", strcmp(str(estimate, "status"), "dropped") == 0 ? "bad" : "ok",
             get(ch_json_get(estimate, "estimated"), "roc_auc"), 3, "");
        card(b, "reference ROC AUC", "", get(estimate, "reference_roc_auc"), 3, "");
    }
    if (decay != NULL)
        card(b, "realized ROC AUC", strcmp(str(decay, "status"), "decayed") == 0 ? "bad" : "ok",
             get(ch_json_get(ch_json_get(decay, "metrics"), "roc_auc"), "value"), 3, "");
    ch_buf_puts(b, "</div>");
    if (diag[0] != '\0') {
        ch_buf_printf(b, "<p><b>Diagnosis: %s.</b> ",
                      strcmp(diag, "concept_drift") == 0     ? "concept drift"
                      : strcmp(diag, "covariate_shift") == 0 ? "covariate shift"
                                                             : "stable");
        esc(b, str(estimate, "diagnosis_text"));
        ch_buf_puts(b, ".</p>");
    }
    drift_section(b, drift);
    perf_section(b, decay, estimate);
    ch_buf_puts(b, "<p class=\"note\">Measures and rules: PSI over ten training-quantile bins "
                   "plus a missing bin; Kolmogorov-Smirnov for numbers and chi-square for "
                   "categories; the estimate is confidence-based performance estimation from "
                   "the calibrated probabilities.</p></body></html>\n");
    return ch_buf_status(b);
}
