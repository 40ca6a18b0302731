/*
 * retrain.c -- retraining from feedback (retrain.h).
 *
 * The steps, and why they are in this order:
 *   - Everything that can refuse cheaply (options, no champion, a base
 *     file of another schema, too few labels) happens before anything is
 *     written or recorded, so a scheduler that asks too early leaves no
 *     trace but its error.
 *   - The prediction log is read in one scan that only copies rows out:
 *     the scan's callback runs inside the store's read transaction, where
 *     no other call on the same handle may be made. Decoding, bundle
 *     loading and every store call happen after the scan has ended.
 *   - The dataset goes through a CSV file and ch_ingest_file(), exactly
 *     as a configured training file does, so label rows are checked by
 *     the same schema code and the dataset has a SHA-256. The file is
 *     named by that hash: the lineage must name its final path when the
 *     run is begun, before the run (and its directory) has an id.
 *   - The gate is decided before anything is registered, and the
 *     registration itself is one store transaction (registry.h): the
 *     version, its "challenger" alias and their audit rows commit
 *     together or not at all, so a crash at any point leaves either no
 *     version or a complete one (the run may then still say "running").
 *     The champion alias is never touched: ch_registry_register() sets it
 *     only on a store without a champion, and a champion, once set, is
 *     only ever moved, never removed. Registering a challenger does not
 *     change what is served; making it champion goes through the
 *     promotion gate again (promote.h), against whatever the champion is
 *     then.
 */
#include "ch/retrain.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ch/alloc.h"
#include "ch/buf.h"
#include "ch/bundle.h"
#include "ch/hash.h"
#include "ch/ingest.h"
#include "ch/inputs.h"
#include "ch/metrics.h"
#include "ch/predlog.h"
#include "ch/track.h"

#define FLUSH_BYTES ((size_t)1 << 20) /* CSV text written out at a time */

void ch_retrain_opts_default(ch_retrain_opts *o)
{
    memset(o, 0, sizeof *o);
    o->min_labels = 500;
    o->workdir = "var";
    o->margin = 0.002;
    ch_train_opts_default(&o->train);
    o->actor = "churn";
    o->code_version = "unknown";
    o->max_reject_rate = 0.01;
}

/* ---- collecting labelled predictions ---------------------------------------- */

enum { USE_ROW = 0, SKIP_SCHEMA = 1, SKIP_INPUTS = 2 };

/* One labelled prediction, copied out of the scan. */
typedef struct label {
    int64_t version;
    char id[CH_PREDICTION_ID_LEN + 1];
    int churned;
    size_t off, len; /* its input blob in collect.blobs; len 0: none logged */
    int use;         /* USE_ROW or why it is skipped */
    size_t ver;      /* its entry in the version table (USE_ROW only) */
} label;

typedef struct collect {
    label *rows;
    size_t n, cap;
    ch_buf blobs;
    int failed; /* out of memory inside the scan */
} collect;

/* The scan's callback: copies, nothing else (see the top of the file). */
static int on_labelled(void *ctx, const ch_prediction_row *r)
{
    collect *c = ctx;
    label *l;
    if (r->churned != 0 && r->churned != 1)
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap == 0 ? 1024 : c->cap * 2;
        label *p = ch_realloc(c->rows, cap * sizeof *p);
        if (p == NULL) {
            c->failed = 1;
            return 1;
        }
        c->rows = p;
        c->cap = cap;
    }
    l = &c->rows[c->n];
    memset(l, 0, sizeof *l);
    l->version = r->model_version;
    snprintf(l->id, sizeof l->id, "%s", r->id);
    l->churned = r->churned;
    l->off = c->blobs.len;
    l->len = r->inputs != NULL ? r->inputs_len : 0;
    if (l->len > 0 && ch_buf_append(&c->blobs, r->inputs, l->len) != CH_OK) {
        c->failed = 1;
        return 1;
    }
    c->n++;
    return 0;
}

/* A registered version: its bundle path, and once needed its bundle. */
typedef struct version {
    int64_t version;
    char *path;
    ch_bundle *bundle; /* loaded on first use */
    int tried;         /* loading was attempted */
    int usable;        /* loaded, and of the champion's schema */
} version;

typedef struct versions {
    version *v;
    size_t n, cap;
} versions;

static void versions_free(versions *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        ch_free(vs->v[i].path);
        ch_bundle_free(vs->v[i].bundle);
    }
    ch_free(vs->v);
    memset(vs, 0, sizeof *vs);
}

/* Appends the entry of version 'v', looked up in the registry; an
 * unregistered version gets an entry that is never usable, so that it is
 * looked up once. */
static version *version_add(versions *vs, ch_registry *reg, int64_t v, ch_err *rc, ch_error *err)
{
    char ref[24], path[4096];
    ch_error e2 = {0};
    ch_err lr;
    version *e;
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? vs->cap * 2 : 8;
        version *nv = ch_realloc(vs->v, cap * sizeof *nv);
        if (nv == NULL) {
            *rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            return NULL;
        }
        vs->v = nv;
        vs->cap = cap;
    }
    e = &vs->v[vs->n];
    memset(e, 0, sizeof *e);
    e->version = v;
    snprintf(ref, sizeof ref, "%lld", (long long)v);
    lr = ch_registry_resolve(reg, ref, NULL, path, sizeof path, &e2);
    if (lr == CH_OK && (e->path = ch_strdup(path)) == NULL)
        lr = CH_ENOMEM;
    if (lr == CH_ENOTFOUND) {
        e->tried = 1; /* not registered: its predictions are skipped */
    } else if (lr != CH_OK) {
        *rc = lr == CH_ENOMEM ? ch_error_set(err, lr, "out of memory")
                              : ch_error_set(err, lr, "version %lld: %s", (long long)v, e2.msg);
        return NULL;
    }
    vs->n++;
    return e;
}

/* The entry of 'version' with its bundle loaded. A version that is not
 * registered, whose bundle does not load, or whose schema is not the
 * champion's, is unusable (its predictions are skipped). */
static version *version_get(versions *vs, ch_registry *reg, int64_t v, const char *schema_hash,
                            ch_err *rc, ch_error *err)
{
    version *e = NULL;
    for (size_t i = 0; i < vs->n && e == NULL; i++)
        if (vs->v[i].version == v)
            e = &vs->v[i];
    if (e == NULL && (e = version_add(vs, reg, v, rc, err)) == NULL)
        return NULL;
    if (!e->tried) {
        ch_error e2 = {0};
        ch_err lr = ch_bundle_load(e->path, NULL, &e->bundle, &e2);
        e->tried = 1;
        if (lr == CH_ENOMEM) {
            *rc = ch_error_set(err, CH_ENOMEM, "out of memory");
            return NULL;
        }
        e->usable =
            lr == CH_OK && strcmp(ch_schema_hash(ch_bundle_schema(e->bundle)), schema_hash) == 0;
    }
    return e;
}

/* Sorts the collected rows into used and skipped; counts them. */
static ch_err classify(collect *c, versions *vs, ch_registry *reg, const ch_schema *schema,
                       ch_value *vals, ch_retrain_result *res, ch_error *err)
{
    const char *hash = ch_schema_hash(schema);
    for (size_t i = 0; i < c->n; i++) {
        label *l = &c->rows[i];
        ch_err rc = CH_OK;
        version *e = l->version > 0 ? version_get(vs, reg, l->version, hash, &rc, err) : NULL;
        if (rc != CH_OK)
            return rc;
        if (e == NULL || !e->usable) {
            l->use = SKIP_SCHEMA;
            res->skipped_schema++;
        } else if (l->len == 0 || ch_inputs_to_values(ch_bundle_schema(e->bundle),
                                                      (const unsigned char *)c->blobs.data + l->off,
                                                      l->len, vals, NULL) != CH_OK) {
            l->use = SKIP_INPUTS;
            res->skipped_inputs++;
        } else {
            l->use = USE_ROW;
            l->ver = (size_t)(e - vs->v);
            res->label_rows++;
        }
    }
    return CH_OK;
}

/* ---- the combined CSV --------------------------------------------------------- */

static void put_missing(ch_buf *b, const ch_schema_col *c)
{
    if (c->n_missing > 0)
        ch_buf_csv_field(b, c->missing[0], c->missing_lens[0]);
}

/* A binary or target value as the schema's first token for it. */
static void put_bool(ch_buf *b, const ch_schema_col *c, double v)
{
    if (v == 1.0 && c->n_positive > 0)
        ch_buf_csv_field(b, c->positive[0], c->positive_lens[0]);
    else if (v == 0.0 && c->n_negative > 0)
        ch_buf_csv_field(b, c->negative[0], c->negative_lens[0]);
    else
        ch_buf_puts(b, v == 1.0 ? "1" : "0");
}

static void put_num(ch_buf *b, double v)
{
    char t[32];
    size_t n = ch_fmt_double(t, v);
    ch_buf_append(b, t, n);
}

/* One accepted row 'i' of the base frame, rendered back to CSV text. */
static void put_base_row(ch_buf *b, const ch_schema *s, const ch_frame *f, size_t i)
{
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        if (j > 0)
            ch_buf_putc(b, ',');
        if (ch_frame_col_type(f, j) == CH_COL_STR) {
            size_t len = 0;
            const char *t = ch_frame_str(f, j, i, &len);
            if (t != NULL)
                ch_buf_csv_field(b, t, len);
            else
                put_missing(b, c);
        } else if (ch_frame_col_type(f, j) == CH_COL_CAT) {
            int32_t code = ch_frame_codes(f, j)[i];
            const char *t = code >= 0 ? ch_frame_level(f, j, (size_t)code) : NULL;
            if (t != NULL)
                ch_buf_csv_field(b, t, strlen(t));
            else
                put_missing(b, c);
        } else {
            double v = ch_frame_num(f, j)[i];
            if (isnan(v))
                put_missing(b, c);
            else if (c->kind == CH_KIND_BINARY || c->kind == CH_KIND_TARGET)
                put_bool(b, c, v);
            else
                put_num(b, v);
        }
    }
    ch_buf_putc(b, '\n');
}

/* One labelled prediction: its decoded values, its id, its label. */
static void put_label_row(ch_buf *b, const ch_schema *s, const ch_value *vals, const label *l)
{
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        const ch_schema_col *c = ch_schema_col_ref(s, j);
        if (j > 0)
            ch_buf_putc(b, ',');
        if (c->kind == CH_KIND_ID)
            ch_buf_csv_field(b, l->id, strlen(l->id));
        else if (c->kind == CH_KIND_TARGET)
            put_bool(b, c, (double)l->churned);
        else if (vals[j].missing)
            put_missing(b, c);
        else if (c->kind == CH_KIND_CATEGORICAL)
            ch_buf_csv_field(b, vals[j].str, vals[j].len);
        else if (c->kind == CH_KIND_BINARY)
            put_bool(b, c, vals[j].num);
        else
            put_num(b, vals[j].num);
    }
    ch_buf_putc(b, '\n');
}

/* Writes what 'b' holds to 'f' and empties it. */
static ch_err flush_buf(FILE *f, ch_buf *b, const char *path, ch_error *err)
{
    if (ch_buf_status(b) != CH_OK)
        return ch_error_set(err, ch_buf_status(b), "%s: %s", path, ch_strerror(ch_buf_status(b)));
    if (b->len > 0 && fwrite(b->data, 1, b->len, f) != b->len)
        return ch_error_set(err, CH_EIO, "%s: write failed: %s", path, strerror(errno));
    ch_buf_clear(b);
    return CH_OK;
}

/* Writes the combined file to 'path': the header in schema order, the
 * base rows, then the used labelled predictions. Synced before it is
 * closed. */
static ch_err write_combined(const char *path, const ch_schema *s, const ch_frame *base,
                             const collect *c, const versions *vs, ch_value *vals, ch_error *err)
{
    FILE *f = fopen(path, "wb");
    ch_buf b;
    ch_err rc = CH_OK;

    if (f == NULL)
        return ch_error_set(err, CH_EIO, "%s: %s", path, strerror(errno));
    ch_buf_init(&b, FLUSH_BYTES * 4);
    for (size_t j = 0; j < ch_schema_n_cols(s); j++) {
        const char *name = ch_schema_col_ref(s, j)->name;
        if (j > 0)
            ch_buf_putc(&b, ',');
        ch_buf_csv_field(&b, name, strlen(name));
    }
    ch_buf_putc(&b, '\n');
    for (size_t i = 0; base != NULL && rc == CH_OK && i < ch_frame_n_rows(base); i++) {
        put_base_row(&b, s, base, i);
        if (b.len >= FLUSH_BYTES || ch_buf_status(&b) != CH_OK)
            rc = flush_buf(f, &b, path, err);
    }
    for (size_t i = 0; rc == CH_OK && i < c->n; i++) {
        const label *l = &c->rows[i];
        if (l->use != USE_ROW)
            continue;
        /* Decoded again (it was checked in classify()): decoding is cheap,
         * and keeping every decoded record would cost more memory. */
        rc = ch_inputs_to_values(ch_bundle_schema(vs->v[l->ver].bundle),
                                 (const unsigned char *)c->blobs.data + l->off, l->len, vals, err);
        if (rc != CH_OK)
            break;
        put_label_row(&b, s, vals, l);
        if (b.len >= FLUSH_BYTES || ch_buf_status(&b) != CH_OK)
            rc = flush_buf(f, &b, path, err);
    }
    if (rc == CH_OK)
        rc = flush_buf(f, &b, path, err);
    if (rc == CH_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = ch_error_set(err, CH_EIO, "%s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == CH_OK)
        rc = ch_error_set(err, CH_EIO, "%s: %s", path, strerror(errno));
    ch_buf_reset(&b);
    if (rc != CH_OK)
        unlink(path);
    return rc;
}

/* ---- the run ----------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cancelled(const ch_retrain_opts *o)
{
    return o->train.cancel != NULL && *o->train.cancel != 0;
}

/* Ends run 'run_id' as failed with {"reason": 'reason', "error": the
 * message}. Best effort: the error being reported matters more. */
static void fail_run(ch_registry *reg, int64_t run_id, const char *reason, const ch_error *e,
                     double seconds)
{
    ch_buf b;
    ch_buf_init(&b, 1 << 12);
    ch_buf_puts(&b, "{\"reason\": ");
    ch_buf_json_str(&b, reason, strlen(reason));
    if (e != NULL && e->msg[0] != '\0') {
        ch_buf_puts(&b, ", \"error\": ");
        ch_buf_json_str(&b, e->msg, strnlen(e->msg, sizeof e->msg));
    }
    ch_buf_putc(&b, '}');
    if (ch_buf_status(&b) == CH_OK) {
        /* If this fails too the run stays "running" in the store. */
        ch_err erc = ch_registry_run_end(reg, run_id, "failed", b.data, seconds, NULL);
        (void)erc;
    }
    ch_buf_reset(&b);
}

/* The "retrain" object: what was used, the scores and the verdict. */
static void retrain_json(ch_buf *b, const ch_retrain_result *r, const ch_retrain_opts *o,
                         const char *verdict)
{
    ch_buf_printf(b, "{\"verdict\": \"%s\", \"version\": ", verdict);
    if (r->version > 0)
        ch_buf_printf(b, "%lld", (long long)r->version);
    else
        ch_buf_puts(b, "null");
    ch_buf_printf(b, ", \"champion\": %lld, \"candidate_auc\": ", (long long)r->champion);
    ch_buf_json_num(b, r->candidate_auc);
    ch_buf_puts(b, ", \"champion_auc\": ");
    ch_buf_json_num(b, r->champion_auc);
    ch_buf_puts(b, ", \"margin\": ");
    ch_buf_json_num(b, o->margin);
    ch_buf_printf(b,
                  ", \"base_rows\": %zu, \"label_rows\": %zu, \"skipped_schema\": %zu, "
                  "\"skipped_inputs\": %zu, \"rejected_rows\": %zu, \"labels_since_ms\": %lld, "
                  "\"dataset_sha256\": \"%s\", \"note\": ",
                  r->base_rows, r->label_rows, r->skipped_schema, r->skipped_inputs,
                  r->rejected_rows, (long long)o->labels_since_ms, r->dataset_sha256);
    ch_buf_json_str(b, r->note, strlen(r->note));
    ch_buf_putc(b, '}');
}

/* The training result document with a "retrain" member added. */
static ch_err result_with_retrain(const char *train_json, const ch_retrain_result *r,
                                  const ch_retrain_opts *o, const char *verdict, ch_buf *b,
                                  ch_error *err)
{
    size_t l = strlen(train_json);
    while (l > 0 && train_json[l - 1] != '}')
        l--;
    if (l == 0)
        return ch_error_set(err, CH_EFORMAT, "training result: not a JSON object");
    ch_buf_clear(b);
    ch_buf_append(b, train_json, l - 1);
    ch_buf_puts(b, ", \"retrain\": ");
    retrain_json(b, r, o, verdict);
    ch_buf_putc(b, '}');
    if (ch_buf_status(b) != CH_OK)
        return ch_error_set(err, ch_buf_status(b), "training result: %s",
                            ch_strerror(ch_buf_status(b)));
    return CH_OK;
}

/* The training report with a section on the data and the gate. */
static ch_err report_with_retrain(const char *md, const ch_retrain_result *r,
                                  const ch_retrain_opts *o, ch_buf *b, ch_error *err)
{
    ch_buf_puts(b, md);
    ch_buf_printf(b,
                  "\n## Retraining from feedback\n\n| | |\n|---|---:|\n"
                  "| rows from the base file | %zu |\n| rows from feedback | %zu |\n"
                  "| labelled predictions of another schema (skipped) | %zu |\n"
                  "| labelled predictions without usable inputs (skipped) | %zu |\n"
                  "| rows rejected by the schema | %zu |\n",
                  r->base_rows, r->label_rows, r->skipped_schema, r->skipped_inputs,
                  r->rejected_rows);
    ch_buf_printf(b,
                  "| candidate ROC AUC on its test rows | %.4f |\n"
                  "| champion v%lld ROC AUC on the same rows | %.4f |\n| margin | %g |\n\n%s\n",
                  r->candidate_auc, (long long)r->champion, r->champion_auc, o->margin, r->note);
    if (ch_buf_status(b) != CH_OK)
        return ch_error_set(err, ch_buf_status(b), "report: %s", ch_strerror(ch_buf_status(b)));
    return CH_OK;
}

/* ROC AUC of 'b' on rows 'rows' of 'f' against labels 'y'. */
static ch_err auc_on(const ch_bundle *b, const ch_frame *f, const size_t *rows, size_t n,
                     const double *y, double *p, double *auc, ch_error *err)
{
    ch_err rc = ch_bundle_score_frame(b, f, rows, n, p, NULL, err);
    if (rc == CH_OK)
        rc = ch_metric_roc_auc(y, p, NULL, n, auc, err);
    return rc;
}

static ch_err check_opts(ch_registry *reg, const ch_retrain_opts *o, ch_retrain_result *out,
                         ch_error *err)
{
    if (reg == NULL || o == NULL || out == NULL)
        return ch_error_set(err, CH_EINVAL, "retrain: a store, options and a result are required");
    if (o->workdir == NULL || o->workdir[0] == '\0')
        return ch_error_set(err, CH_EINVAL, "retrain: no working directory");
    if (!(o->margin >= 0 && o->margin <= 1))
        return ch_error_set(err, CH_EINVAL, "retrain: the margin must be between 0 and 1");
    if (!(o->max_reject_rate >= 0 && o->max_reject_rate <= 1))
        return ch_error_set(err, CH_EINVAL, "retrain: the reject rate must be between 0 and 1");
    if (o->labels_since_ms < 0)
        return ch_error_set(err, CH_EINVAL, "retrain: labels_since_ms must not be negative");
    if (o->actor == NULL || o->actor[0] == '\0' || o->code_version == NULL)
        return ch_error_set(err, CH_EINVAL, "retrain: an actor and a code version are required");
    return CH_OK;
}

ch_err ch_retrain_run(ch_registry *reg, const ch_retrain_opts *o, ch_retrain_result *out,
                      ch_error *err)
{
    ch_retrain_result res;
    char champ_path[4096];
    char tmp_path[4200];
    char path[4200];
    char data_dir[4096];
    ch_bundle *champ = NULL;
    ch_bundle *cand = NULL;
    const ch_schema *schema;
    ch_frame *base = NULL;
    ch_ingest_report *base_rep = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    ch_pipeline_spec *spec = NULL;
    ch_train_result *tres = NULL;
    ch_value *vals = NULL;
    double *p = NULL;
    double *y = NULL;
    collect col;
    versions vs;
    ch_ingest_opts io;
    ch_track_run tr;
    ch_track_saved saved;
    ch_buf lin, extra, doc, md, details;
    const char *features_word = "auto";
    int recorded = 0; /* a run exists: '*out' is written whatever happens */
    int passed = 0;
    double t0 = now_s();
    ch_err rc;

    if ((rc = check_opts(reg, o, out, err)) != CH_OK)
        return rc;
    if (cancelled(o))
        return ch_error_set(err, CH_ECANCELLED, "cancelled");
    memset(&res, 0, sizeof res);
    memset(&col, 0, sizeof col);
    memset(&vs, 0, sizeof vs);
    res.candidate_auc = NAN;
    res.champion_auc = NAN;
    ch_buf_init(&col.blobs, (size_t)4 << 30);
    ch_buf_init(&lin, 1 << 20);
    ch_buf_init(&extra, 1 << 16);
    ch_buf_init(&doc, 1 << 26);
    ch_buf_init(&md, 1 << 22);
    ch_buf_init(&details, 1 << 16);
    tmp_path[0] = '\0';

    /* 1. The champion, whose schema everything is read with. */
    rc = ch_registry_resolve(reg, "champion", &res.champion, champ_path, sizeof champ_path, err);
    if (rc == CH_ENOTFOUND)
        rc = ch_error_set(err, CH_ENOTFOUND,
                          "no champion to retrain: train and register a model first");
    if (rc != CH_OK)
        goto done;
    rc = ch_bundle_load(champ_path, NULL, &champ, err);
    if (rc == CH_EFORMAT)
        rc = CH_EMODEL;
    if (rc != CH_OK) {
        ch_error_prefix(err, "champion v%lld", (long long)res.champion);
        goto done;
    }
    schema = ch_bundle_schema(champ);
    if (ch_schema_target(schema) < 0) {
        rc = ch_error_set(err, CH_EMODEL, "champion v%lld: its schema has no target column",
                          (long long)res.champion);
        goto done;
    }
    vals = ch_malloc_array(ch_schema_n_cols(schema) + 1, sizeof *vals);
    if (vals == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    ch_ingest_opts_default(&io);
    io.max_reject_rate = o->max_reject_rate;
    if (o->base_csv != NULL) {
        rc = ch_ingest_file(schema, o->base_csv, &io, &base, &base_rep, err);
        if (rc == CH_ESCHEMA)
            ch_error_prefix(err, "base data %s does not fit the schema \"%s\" of champion v%lld",
                            o->base_csv, ch_schema_name(schema), (long long)res.champion);
        else if (rc != CH_OK)
            ch_error_prefix(err, "base data");
        if (rc != CH_OK)
            goto done;
        res.base_rows = ch_frame_n_rows(base);
    }

    /* 2. The labelled predictions: one scan that only copies, then
     * decoding with each version's bundle, looked up after the scan. */
    {
        ch_prediction_query q;
        memset(&q, 0, sizeof q);
        q.since_ms = o->labels_since_ms;
        q.labelled_only = 1;
        rc = ch_registry_predictions_scan(reg, &q, on_labelled, &col, err);
        if (rc == CH_OK && (col.failed || ch_buf_status(&col.blobs) != CH_OK))
            rc = ch_error_set(err, CH_ENOMEM, "out of memory reading the labelled predictions");
        if (rc != CH_OK)
            goto done;
    }
    if ((rc = classify(&col, &vs, reg, schema, vals, &res, err)) != CH_OK)
        goto done;
    if (res.label_rows < o->min_labels) {
        rc = ch_error_set(err, CH_EDATA,
                          "%zu labelled predictions usable for retraining (%zu of another "
                          "schema and %zu without usable inputs skipped); at least %zu are needed",
                          res.label_rows, res.skipped_schema, res.skipped_inputs, o->min_labels);
        goto done;
    }
    if (res.base_rows + res.label_rows == 0) {
        rc = ch_error_set(err, CH_EDATA,
                          "nothing to train on: no base data and no labelled predictions");
        goto done;
    }

    /* The feature declaration, checked before anything is written. */
    if (o->features != NULL && ch_json_typeof(o->features) != CH_JSON_STRING) {
        rc = ch_pipeline_spec_from_json(o->features, schema, &spec, err);
        features_word = "config";
        if (rc == CH_EFORMAT)
            ch_error_prefix(err, "features");
    } else if (o->features != NULL && strcmp(ch_json_str(o->features, NULL), "auto") != 0) {
        rc = ch_error_set(err, CH_EFORMAT, "features: expected an object or \"auto\", not \"%s\"",
                          ch_json_str(o->features, NULL));
    } else {
        rc = ch_pipeline_spec_auto(schema, &spec, err);
    }
    if (rc != CH_OK)
        goto done;

    /* 3. The combined file, read back through the schema, then stored
     * under its hash. */
    snprintf(data_dir, sizeof data_dir, "%s/retrain/data", o->workdir);
    if ((rc = ch_track_mkdirs(data_dir, err)) != CH_OK)
        goto done;
    {
        unsigned char rnd[8];
        char hex[17];
        if ((rc = ch_random_bytes(rnd, sizeof rnd, err)) != CH_OK)
            goto done;
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        snprintf(tmp_path, sizeof tmp_path, "%s/.incoming-%s.csv", data_dir, hex);
    }
    if ((rc = write_combined(tmp_path, schema, base, &col, &vs, vals, err)) != CH_OK)
        goto done;
    rc = ch_ingest_file(schema, tmp_path, &io, &frame, &rep, err);
    if (rc != CH_OK) {
        ch_error_prefix(err, "combined dataset");
        goto done;
    }
    res.rejected_rows = (size_t)rep->rows_rejected;
    snprintf(res.dataset_sha256, sizeof res.dataset_sha256, "%s", rep->sha256);
    snprintf(res.dataset_path, sizeof res.dataset_path, "%s/%s.csv", data_dir, rep->sha256);
    if (rename(tmp_path, res.dataset_path) != 0) {
        rc = ch_error_set(err, CH_EIO, "%s: %s", res.dataset_path, strerror(errno));
        goto done;
    }
    tmp_path[0] = '\0';

    /* 4. The run, the training and its outputs. */
    ch_buf_printf(&extra,
                  "{\"retrain\": {\"champion\": %lld, \"base_csv\": ", (long long)res.champion);
    if (o->base_csv != NULL)
        ch_buf_json_str(&extra, o->base_csv, strlen(o->base_csv));
    else
        ch_buf_puts(&extra, "null");
    ch_buf_printf(&extra,
                  ", \"base_rows\": %zu, \"label_rows\": %zu, \"labels_since_ms\": %lld, "
                  "\"skipped_schema\": %zu, \"skipped_inputs\": %zu, \"rejected_rows\": %zu}}",
                  res.base_rows, res.label_rows, (long long)o->labels_since_ms, res.skipped_schema,
                  res.skipped_inputs, res.rejected_rows);
    memset(&tr, 0, sizeof tr);
    tr.dataset_sha256 = rep->sha256;
    tr.dataset_path = res.dataset_path;
    tr.dataset_rows = rep->rows_accepted;
    tr.config_json = o->config_json;
    tr.features = features_word;
    tr.code_version = o->code_version;
    tr.test_fraction = o->train.test_fraction;
    tr.extra_json = extra.data;
    if (ch_buf_status(&extra) != CH_OK) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = ch_track_begin(reg, &tr, &lin, &res.run_id, err)) != CH_OK)
        goto done;
    recorded = 1;
    if (o->on_run != NULL)
        o->on_run(o->train.progress_ctx, res.run_id);
    snprintf(res.run_dir, sizeof res.run_dir, "%s/retrain/%lld", o->workdir, (long long)res.run_id);
    rc = ch_track_mkdirs(res.run_dir, err);
    if (rc == CH_OK) {
        /* The run's own name for its data; the stored file stays where
         * the lineage says. */
        snprintf(path, sizeof path, "%s/data.csv", res.run_dir);
        char rel[200];
        snprintf(rel, sizeof rel, "../data/%s.csv", res.dataset_sha256);
        if (link(res.dataset_path, path) != 0 && errno != EEXIST && symlink(rel, path) != 0)
            rc = ch_error_set(err, CH_EIO, "%s: %s", path, strerror(errno));
    }
    if (rc != CH_OK) {
        fail_run(reg, res.run_id, "error", err, now_s() - t0);
        goto done;
    }
    rc = ch_train_run(schema, frame, spec, &o->train, lin.data, &tres, err);
    if (rc == CH_OK && cancelled(o))
        rc = ch_error_set(err, CH_ECANCELLED, "cancelled");
    if (rc != CH_OK) {
        if (rc != CH_EINVAL && rc != CH_ENOMEM && rc != CH_ECANCELLED)
            rc = CH_EMODEL;
        fail_run(reg, res.run_id, rc == CH_ECANCELLED ? "cancelled" : "training failed",
                 rc == CH_ECANCELLED ? NULL : err, now_s() - t0);
        goto done;
    }

    /* 5. The gate, on the candidate's held-out rows, before anything is
     * registered. */
    {
        size_t n_test = 0;
        size_t blen = 0;
        const size_t *test = ch_train_result_test_rows(tres, &n_test);
        const char *btext = ch_train_result_bundle(tres, &blen);
        const double *lab = ch_frame_num(frame, (size_t)ch_schema_target(schema));
        p = ch_malloc_array(n_test + 1, sizeof *p);
        y = ch_malloc_array(n_test + 1, sizeof *y);
        if (p == NULL || y == NULL) {
            rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        } else {
            for (size_t i = 0; i < n_test; i++)
                y[i] = lab[test[i]];
            rc = ch_bundle_parse(btext, blen, schema, &cand, err);
            if (rc == CH_EFORMAT)
                rc = CH_EMODEL;
        }
        if (rc == CH_OK)
            rc = auc_on(cand, frame, test, n_test, y, p, &res.candidate_auc, err);
        if (rc == CH_OK)
            rc = auc_on(champ, frame, test, n_test, y, p, &res.champion_auc, err);
        if (rc != CH_OK) {
            fail_run(reg, res.run_id, "gate failed", err, now_s() - t0);
            goto done;
        }
        passed = res.candidate_auc > res.champion_auc + o->margin;
        if (passed)
            snprintf(res.note, sizeof res.note, "passed: %.4f > champion v%lld %.4f + margin %g",
                     res.candidate_auc, (long long)res.champion, res.champion_auc, o->margin);
        else
            snprintf(res.note, sizeof res.note, "refused: %.4f <= champion %.4f + margin %g",
                     res.candidate_auc, res.champion_auc, o->margin);
    }
    rc = result_with_retrain(ch_train_result_json(tres), &res, o, passed ? "passed" : "refused",
                             &doc, err);
    if (rc == CH_OK)
        rc = report_with_retrain(ch_train_result_report(tres), &res, o, &md, err);
    if (rc == CH_OK)
        rc = ch_track_save(reg, res.run_id, res.run_dir, tres, doc.data, md.data, &saved, err);
    snprintf(res.bundle_path, sizeof res.bundle_path, "%s", rc == CH_OK ? saved.bundle_path : "");
    {
        static const char *const names[] = {"candidate_auc", "champion_auc", "margin", "base_rows",
                                            "label_rows"};
        const double vals5[] = {res.candidate_auc, res.champion_auc, o->margin,
                                (double)res.base_rows, (double)res.label_rows};
        for (size_t k = 0; rc == CH_OK && k < 5; k++)
            rc = ch_registry_run_metric(reg, res.run_id, "retrain", names[k], vals5[k], err);
    }
    if (rc == CH_OK && cancelled(o))
        rc = ch_error_set(err, CH_ECANCELLED, "cancelled");
    if (rc != CH_OK) {
        fail_run(reg, res.run_id, rc == CH_ECANCELLED ? "cancelled" : "error",
                 rc == CH_ECANCELLED ? NULL : err, now_s() - t0);
        goto done;
    }

    /* Registered in one store transaction, or refused with an audit
     * entry; then the run ends with the verdict in its summary. */
    if (passed) {
        rc = ch_track_register(reg, res.run_id, &saved, tres, rep->sha256, o->train.seed,
                               o->train.test_fraction, o->actor, o->reason, &res.version, err);
        if (rc == CH_OK)
            snprintf(res.note, sizeof res.note,
                     "registered v%lld as challenger: %.4f > champion v%lld %.4f + margin %g",
                     (long long)res.version, res.candidate_auc, (long long)res.champion,
                     res.champion_auc, o->margin);
    } else {
        ch_buf_printf(&details, "{\"run_id\": %lld, \"champion\": %lld, \"candidate_auc\": ",
                      (long long)res.run_id, (long long)res.champion);
        ch_buf_json_num(&details, res.candidate_auc);
        ch_buf_puts(&details, ", \"champion_auc\": ");
        ch_buf_json_num(&details, res.champion_auc);
        ch_buf_puts(&details, ", \"margin\": ");
        ch_buf_json_num(&details, o->margin);
        ch_buf_printf(&details,
                      ", \"base_rows\": %zu, \"label_rows\": %zu, \"dataset_sha256\": \"%s\"}",
                      res.base_rows, res.label_rows, res.dataset_sha256);
        snprintf(path, sizeof path, "run %lld", (long long)res.run_id);
        rc = ch_buf_status(&details) != CH_OK
                 ? ch_error_set(err, CH_ENOMEM, "out of memory")
                 : ch_registry_audit_append(reg, o->actor, "retrain-refused", path, details.data,
                                            err);
    }
    if (rc != CH_OK) {
        fail_run(reg, res.run_id, "error", err, now_s() - t0);
        goto done;
    }
    rc = result_with_retrain(ch_train_result_json(tres), &res, o, passed ? "registered" : "refused",
                             &doc, err);
    if (rc == CH_OK) {
        /* result.json now names the version too. */
        snprintf(path, sizeof path, "%s/result.json", res.run_dir);
        rc = ch_track_write_file(path, doc.data, doc.len, err);
    }
    if (rc == CH_OK)
        rc = ch_registry_run_end(reg, res.run_id, "ok", doc.data, now_s() - t0, err);
done:
    if (tmp_path[0] != '\0')
        unlink(tmp_path);
    if (rc == CH_OK || recorded)
        *out = res;
    ch_free(p);
    ch_free(y);
    ch_free(vals);
    ch_free(col.rows);
    ch_buf_reset(&col.blobs);
    ch_buf_reset(&lin);
    ch_buf_reset(&extra);
    ch_buf_reset(&doc);
    ch_buf_reset(&md);
    ch_buf_reset(&details);
    versions_free(&vs);
    ch_train_result_free(tres);
    ch_pipeline_spec_free(spec);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_ingest_report_free(base_rep);
    ch_frame_free(base);
    ch_bundle_free(cand);
    ch_bundle_free(champ);
    return rc;
}
