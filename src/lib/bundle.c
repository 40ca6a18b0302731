/*
 * bundle.c -- writing and loading model bundles.
 *
 * The writer lays the parts out in a fixed order so that two trainings
 * with the same inputs produce the same bytes apart from timestamps in
 * the lineage. The checksum covers every byte of the file: it is
 * computed with its own value zeroed, then written in place.
 *
 * Loading checks in order of cheapness: checksum, format and version,
 * schema (against the caller's), pipeline, model, calibrator; the first
 * failure is reported with where it happened.
 */
#include "ch/bundle.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/forest.h"
#include "ch/hash.h"

#define MAX_BUNDLE_BYTES ((size_t)1 << 30)
#define CHECKSUM_KEY     "\"checksum\": \""

struct ch_bundle {
    ch_json *doc;
    ch_schema *schema;
    ch_pipeline *pipeline;
    ch_model *model;
    ch_calibrator *calibrator;
    ch_forest *forest; /* gradient-boosted trees compiled for scoring, or NULL */
    double threshold;
    char checksum[CH_SHA256_HEX_LEN + 1];
};

static void put_section(ch_buf *b, const char *key, const char *json)
{
    ch_buf_printf(b, ",\n\"%s\": ", key);
    ch_buf_puts(b, json != NULL && json[0] != '\0' ? json : "{}");
}

ch_err ch_bundle_write(const ch_bundle_parts *p, ch_buf *b)
{
    char hex[CH_SHA256_HEX_LEN + 1];
    size_t start = b->len;
    char *at;

    ch_buf_printf(b, "{\"format\": \"%s\", \"version\": \"%d.%d\"", CH_BUNDLE_FORMAT,
                  CH_BUNDLE_MAJOR, CH_BUNDLE_MINOR);
    ch_buf_puts(b, ",\n\"schema\": ");
    ch_schema_to_json(p->schema, b);
    ch_buf_puts(b, ",\n\"pipeline\": ");
    ch_pipeline_to_json(p->pipeline, b);
    ch_buf_puts(b, ",\n\"model\": ");
    ch_model_to_json(p->model, b);
    ch_buf_puts(b, ",\n\"calibration\": ");
    ch_calibrator_to_json(p->calibrator, b);
    ch_buf_puts(b, ",\n\"thresholds\": {\"served\": ");
    ch_buf_json_num(b, p->threshold);
    ch_buf_puts(b, ", \"rule\": ");
    ch_buf_json_str(b, p->threshold_rule, strlen(p->threshold_rule));
    ch_buf_puts(b, ", \"f1\": ");
    ch_buf_json_num(b, p->threshold_f1);
    ch_buf_puts(b, ", \"value\": ");
    ch_buf_json_num(b, p->threshold_value);
    ch_buf_putc(b, '}');
    put_section(b, "value", p->value_json);
    put_section(b, "metrics", p->metrics_json);
    put_section(b, "profile", p->profile_json);
    put_section(b, "lineage", p->lineage_json);
    ch_buf_puts(b, ",\n" CHECKSUM_KEY);
    ch_buf_printf(b, "%0*d\"}\n", CH_SHA256_HEX_LEN, 0);
    if (ch_buf_status(b) != CH_OK)
        return ch_buf_status(b);
    if (ch_sha256_hex(b->data + start, b->len - start, hex, NULL) != CH_OK)
        return CH_ENOMEM;
    at = b->data + b->len - (CH_SHA256_HEX_LEN + 3);
    memcpy(at, hex, CH_SHA256_HEX_LEN);
    return CH_OK;
}

/* Finds the checksum's 64 hex digits near the end of 'text'; NULL when
 * the file does not end the way a bundle does. */
static const char *find_checksum(const char *text, size_t len)
{
    size_t klen = strlen(CHECKSUM_KEY);
    size_t end = len;
    const char *p;
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' '))
        end--;
    if (end < klen + CH_SHA256_HEX_LEN + 2)
        return NULL;
    p = text + end - (CH_SHA256_HEX_LEN + 2);
    if (p[CH_SHA256_HEX_LEN] != '"' || p[CH_SHA256_HEX_LEN + 1] != '}' ||
        memcmp(p - klen, CHECKSUM_KEY, klen) != 0)
        return NULL;
    for (size_t i = 0; i < CH_SHA256_HEX_LEN; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return NULL;
    return p;
}

static ch_err verify_checksum(const char *text, size_t len, char out[CH_SHA256_HEX_LEN + 1],
                              ch_error *err)
{
    const char *at = find_checksum(text, len);
    char hex[CH_SHA256_HEX_LEN + 1];
    ch_sha256 *h = NULL;
    static const char zeros[CH_SHA256_HEX_LEN + 1] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    ch_err rc;

    if (at == NULL)
        return ch_error_set(err, CH_EFORMAT,
                            "not a churn bundle: no checksum at the end (truncated file?)");
    if ((rc = ch_sha256_new(&h, err)) != CH_OK)
        return rc;
    ch_sha256_update(h, text, (size_t)(at - text));
    ch_sha256_update(h, zeros, CH_SHA256_HEX_LEN);
    ch_sha256_update(h, at + CH_SHA256_HEX_LEN, len - (size_t)(at - text) - CH_SHA256_HEX_LEN);
    ch_sha256_final_hex(h, hex);
    ch_sha256_free(h);
    if (memcmp(hex, at, CH_SHA256_HEX_LEN) != 0)
        return ch_error_set(err, CH_EFORMAT,
                            "checksum mismatch: the file was changed or damaged after it was "
                            "written (recorded %.12s..., computed %.12s...)",
                            at, hex);
    memcpy(out, hex, sizeof hex);
    return CH_OK;
}

void ch_bundle_free(ch_bundle *b)
{
    if (b == NULL)
        return;
    ch_calibrator_free(b->calibrator);
    ch_forest_free(b->forest);
    ch_model_free(b->model);
    ch_pipeline_free(b->pipeline);
    ch_schema_free(b->schema);
    ch_json_free(b->doc);
    ch_free(b);
}

ch_err ch_bundle_parse(const char *text, size_t len, const ch_schema *expect, ch_bundle **out,
                       ch_error *err)
{
    ch_bundle *b = ch_calloc(1, sizeof *b);
    const char *s;
    int major = 0;
    int minor = 0;
    ch_err rc;

    if (b == NULL)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    if ((rc = verify_checksum(text, len, b->checksum, err)) != CH_OK)
        goto fail;
    if ((rc = ch_json_parse(text, len, &b->doc, err)) != CH_OK)
        goto fail;
    s = ch_json_str(ch_json_get(b->doc, "format"), NULL);
    if (s == NULL || strcmp(s, CH_BUNDLE_FORMAT) != 0) {
        rc = ch_error_set(err, CH_EFORMAT, "not a churn bundle (format is not \"%s\")",
                          CH_BUNDLE_FORMAT);
        goto fail;
    }
    s = ch_json_str(ch_json_get(b->doc, "version"), NULL);
    if (s == NULL || sscanf(s, "%d.%d", &major, &minor) != 2) {
        rc = ch_error_set(err, CH_EFORMAT, "bundle: \"version\" must be \"MAJOR.MINOR\"");
        goto fail;
    }
    if (major != CH_BUNDLE_MAJOR) {
        rc = ch_error_set(err, CH_EFORMAT,
                          "bundle format version %d.%d is not supported (this build reads %d.x)",
                          major, minor, CH_BUNDLE_MAJOR);
        goto fail;
    }
    if ((rc = ch_schema_from_json(ch_json_get(b->doc, "schema"), &b->schema, err)) != CH_OK) {
        ch_error_prefix(err, "bundle schema");
        goto fail;
    }
    if (expect != NULL && strcmp(ch_schema_hash(expect), ch_schema_hash(b->schema)) != 0) {
        rc = ch_error_set(err, CH_ESCHEMA,
                          "the bundle was trained on another schema (\"%s\", hash %.12s; "
                          "expected \"%s\", hash %.12s)",
                          ch_schema_name(b->schema), ch_schema_hash(b->schema),
                          ch_schema_name(expect), ch_schema_hash(expect));
        goto fail;
    }
    rc = ch_pipeline_from_json(ch_json_get(b->doc, "pipeline"), b->schema, &b->pipeline, err);
    if (rc != CH_OK) {
        ch_error_prefix(err, "bundle");
        goto fail;
    }
    rc = ch_model_from_json(ch_json_get(b->doc, "model"), ch_pipeline_n_features(b->pipeline),
                            &b->model, err);
    if (rc != CH_OK) {
        ch_error_prefix(err, "bundle");
        rc = rc == CH_ENOMEM ? rc : CH_EMODEL;
        goto fail;
    }
    /* Boosted trees score through our compiled forest: same margins as
     * XGBoost within 1e-6 (tests/unit/test_forest.c), several times faster. */
    if (strcmp(ch_model_ops_of(b->model)->name, "xgboost") == 0) {
        rc = ch_forest_from_xgb_json(ch_json_get(ch_json_get(b->doc, "model"), "state"),
                                     ch_pipeline_n_features(b->pipeline), &b->forest, err);
        if (rc != CH_OK) {
            ch_error_prefix(err, "bundle model");
            rc = rc == CH_ENOMEM ? rc : CH_EMODEL;
            goto fail;
        }
    }
    rc = ch_calibrator_from_json(ch_json_get(b->doc, "calibration"), &b->calibrator, err);
    if (rc != CH_OK) {
        ch_error_prefix(err, "bundle calibration");
        goto fail;
    }
    if (ch_json_num(ch_json_get(ch_json_get(b->doc, "thresholds"), "served"), &b->threshold) != 0 ||
        !(b->threshold >= 0 && b->threshold <= 1.0000001)) {
        rc = ch_error_set(err, CH_EFORMAT, "bundle: thresholds.served must be in [0, 1]");
        goto fail;
    }
    *out = b;
    return CH_OK;
fail:
    ch_bundle_free(b);
    return rc;
}

ch_err ch_bundle_load(const char *path, const ch_schema *expect, ch_bundle **out, ch_error *err)
{
    FILE *f = fopen(path, "rb");
    ch_buf b;
    char chunk[65536];
    size_t n;
    ch_err rc;

    if (f == NULL)
        return ch_error_set(err, CH_EIO, "%s: %s", path, strerror(errno));
    ch_buf_init(&b, MAX_BUNDLE_BYTES);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        ch_buf_append(&b, chunk, n);
    if (ferror(f)) {
        fclose(f);
        ch_buf_reset(&b);
        return ch_error_set(err, CH_EIO, "%s: read error", path);
    }
    fclose(f);
    if (ch_buf_status(&b) != CH_OK) {
        rc = ch_buf_status(&b);
        ch_buf_reset(&b);
        return ch_error_set(err, rc, "%s: %s", path,
                            rc == CH_ELIMIT ? "larger than 1 GiB" : "out of memory");
    }
    rc = ch_bundle_parse(b.data != NULL ? b.data : "", b.len, expect, out, err);
    if (rc != CH_OK)
        ch_error_prefix(err, "%s", path);
    ch_buf_reset(&b);
    return rc;
}

const ch_schema *ch_bundle_schema(const ch_bundle *b)
{
    return b->schema;
}

const ch_pipeline *ch_bundle_pipeline(const ch_bundle *b)
{
    return b->pipeline;
}

const ch_model *ch_bundle_model(const ch_bundle *b)
{
    return b->model;
}

const ch_calibrator *ch_bundle_calibrator(const ch_bundle *b)
{
    return b->calibrator;
}

double ch_bundle_threshold(const ch_bundle *b)
{
    return b->threshold;
}

const ch_json *ch_bundle_section(const ch_bundle *b, const char *name)
{
    return ch_json_get(b->doc, name);
}

const char *ch_bundle_checksum(const ch_bundle *b)
{
    return b->checksum;
}

ch_err ch_bundle_score_frame(const ch_bundle *b, const ch_frame *f, const size_t *rows,
                             size_t n_rows, double *prob, double *margins, ch_error *err)
{
    size_t nf = ch_pipeline_n_features(b->pipeline);
    /* Small blocks keep the scratch matrix in the cache and in malloc's
     * heap: large blocks came from fresh zeroed pages on every call. */
    size_t block = 256;
    double *x;
    double *m;
    ch_err rc = CH_OK;

    if (rows == NULL)
        n_rows = ch_frame_n_rows(f);
    /* In blocks, so memory stays bounded for any number of rows. */
    x = ch_malloc_array(block, nf * sizeof *x);
    m = ch_malloc_array(block, sizeof *m);
    if (x == NULL || m == NULL) {
        ch_free(x);
        ch_free(m);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    for (size_t at = 0; at < n_rows && rc == CH_OK; at += block) {
        size_t n = n_rows - at < block ? n_rows - at : block;
        size_t idx[256];
        for (size_t i = 0; i < n; i++)
            idx[i] = rows != NULL ? rows[at + i] : at + i;
        rc = ch_pipeline_transform_frame(b->pipeline, f, idx, n, x, NULL, err);
        if (rc == CH_OK && b->forest != NULL) {
            for (size_t i = 0; i < n; i++)
                m[i] = ch_forest_predict(b->forest, x + i * nf);
        } else if (rc == CH_OK) {
            rc = ch_model_predict_margin(b->model, x, n, nf, m, err);
        }
        for (size_t i = 0; rc == CH_OK && i < n; i++) {
            prob[at + i] = ch_calibrator_apply(b->calibrator, m[i]);
            if (margins != NULL)
                margins[at + i] = m[i];
        }
    }
    ch_free(x);
    ch_free(m);
    return rc;
}
