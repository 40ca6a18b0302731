/*
 * h_ui.c -- the web UI's static files, and the served model's input
 * schema that the UI builds its prediction form from.
 *
 * The files under web/ are compiled into the binary (scripts/embed-web
 * writes build/gen/web_assets.c), so a deployed `churn serve` needs no
 * document root and cannot be made to serve anything else: a name is
 * looked up in the compiled table, never on the file system. The pages
 * are public; what they show comes from API calls that carry the user's
 * token, checked by the route table like any other client's.
 *
 * Every file goes out with security headers: a Content-Security-Policy
 * that allows only this origin's scripts and styles (no inline script,
 * no eval, no framing, no form posts, no other hosts), nosniff, DENY
 * framing for browsers without frame-ancestors, and no Referer. The ETag
 * is a hash of the bytes made at build time; the files are revalidated on
 * each load (no-cache) so a new build is picked up at once, at the cost of
 * a 304 per file.
 */
#include <string.h>

#include "server.h"

/* Kept under the 255 bytes a header value may have (http.h). No img-src:
 * the charts are SVG elements built by the script, not images. base-uri
 * does not fall back to default-src, so it is named. */
#define UI_CSP                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
_Static_assert(sizeof UI_CSP <= sizeof((http_resp *)0)->header_value[0],
               "the CSP must fit a header value");

static const ui_asset *asset_find(const char *name)
{
    for (size_t i = 0; i < n_ui_assets; i++)
        if (strcmp(ui_assets[i].name, name) == 0)
            return &ui_assets[i];
    return NULL;
}

/* Whether an If-None-Match header names 'etag' (a list, or "*"). */
static int etag_matches(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    if (inm == NULL)
        return 0;
    for (const char *p = inm; *p != '\0';) {
        p += strspn(p, " \t,");
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p == '*')
            return 1;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

static void serve_asset(call *c, const char *name)
{
    http_resp *rs = c->rs;
    const ui_asset *f = asset_find(name);
    http_resp_header(rs, "Content-Security-Policy", UI_CSP);
    http_resp_header(rs, "X-Content-Type-Options", "nosniff");
    http_resp_header(rs, "X-Frame-Options", "DENY");
    http_resp_header(rs, "Referrer-Policy", "no-referrer");
    if (f == NULL) {
        reply_error(c, 404, "not_found", "no such file in the UI", "file");
        return;
    }
    http_resp_header(rs, "ETag", f->etag);
    http_resp_header(rs, "Cache-Control", "no-cache");
    rs->content_type = f->type;
    if (etag_matches(http_header(c->rq, "If-None-Match"), f->etag)) {
        rs->status = 304;
        return;
    }
    rs->status = 200;
    if (ch_buf_append(&rs->body, f->data, f->len) != CH_OK)
        reply_error(c, 500, "internal", "the file does not fit the response buffer", NULL);
}

void h_ui_index(call *c)
{
    serve_asset(c, "index.html");
}

void h_ui_file(call *c)
{
    serve_asset(c, c->param);
}

/* GET /v1/schema: the input columns of the model being served, in the
 * schema file's own format (schema.md), with the model it belongs to. A
 * rollout's candidate always has the same schema (served_load refuses
 * another), so one answer holds for every arm. */
void h_schema_get(call *c)
{
    ch_buf *b = &c->rs->body;
    served *m = served_acquire(c->a);
    const ch_schema *s;
    ch_err rc;
    if (m == NULL) {
        reply_error(c, 503, "unavailable", "no model is loaded", NULL);
        return;
    }
    s = ch_bundle_schema(m->bundle);
    ch_buf_puts(b, "{\"model\":");
    buf_model(b, m);
    ch_buf_printf(b, ",\"schema_hash\":\"%s\",\"schema\":", ch_schema_hash(s));
    rc = ch_schema_to_json(s, b);
    ch_buf_putc(b, '}');
    served_release(m);
    if (rc != CH_OK || ch_buf_status(b) != CH_OK) {
        reply_error(c, 500, "internal", "the schema does not fit the response buffer", NULL);
        return;
    }
    c->rs->status = 200;
}
