/*
 * track.c -- recording a training run in the tracking store (track.h).
 *
 * The order of the steps is the contract: the run exists before training
 * starts (a failure is recorded as a failed run, not lost), the files are
 * on disk and synced before they are recorded as artifacts, and a version
 * is registered only from a bundle that is already recorded, in one store
 * transaction. A process killed between two steps leaves a run that is
 * still "running" or one without a version, never a version without its
 * bundle. Workload: a handful of calls per training run.
 */
#define _DEFAULT_SOURCE /* realpath */
#include "ch/track.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ch/json.h"

ch_err ch_track_mkdirs(const char *path, ch_error *err)
{
    char tmp[4096];
    size_t n = path != NULL ? strlen(path) : 0;
    if (n == 0 || n >= sizeof tmp)
        return ch_error_set(err, CH_EIO, "cannot create %s: %s", path != NULL ? path : "",
                            n == 0 ? "empty path" : "path too long");
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
                return ch_error_set(err, CH_EIO, "cannot create %s: %s", path, strerror(errno));
            tmp[i] = c;
        }
    }
    return CH_OK;
}

ch_err ch_track_write_file(const char *path, const char *data, size_t len, ch_error *err)
{
    char tmp[4096];
    FILE *f;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return ch_error_set(err, CH_EIO, "path too long: %s", path);
    f = fopen(tmp, "wb");
    if (f == NULL)
        return ch_error_set(err, CH_EIO, "%s: %s", path, strerror(errno));
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        ch_error_set(err, CH_EIO, "%s: write failed: %s", path, strerror(errno));
        fclose(f);
        unlink(tmp);
        return CH_EIO;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        ch_error_set(err, CH_EIO, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return CH_EIO;
    }
    return CH_OK;
}

ch_err ch_track_lineage(const ch_track_run *r, ch_buf *b, ch_error *err)
{
    char abspath[PATH_MAX];
    char cfg_hash[CH_SHA256_HEX_LEN + 1];
    const char *path;
    ch_err rc;

    if (r == NULL || b == NULL || r->dataset_sha256 == NULL || r->dataset_path == NULL ||
        r->features == NULL || r->code_version == NULL)
        return ch_error_set(err, CH_EINVAL,
                            "lineage: a dataset, features and code version are "
                            "required");
    if (r->config_json != NULL &&
        (rc = ch_sha256_hex(r->config_json, strlen(r->config_json), cfg_hash, err)) != CH_OK)
        return rc;
    path = realpath(r->dataset_path, abspath) != NULL ? abspath : r->dataset_path;
    ch_buf_puts(b, "{\"dataset_sha256\": ");
    ch_buf_json_str(b, r->dataset_sha256, strlen(r->dataset_sha256));
    ch_buf_puts(b, ", \"dataset_path\": ");
    ch_buf_json_str(b, path, strlen(path));
    ch_buf_printf(
        b, ", \"dataset_rows\": %llu, \"config_sha256\": ", (unsigned long long)r->dataset_rows);
    if (r->config_json != NULL)
        ch_buf_printf(b, "\"%s\"", cfg_hash);
    else
        ch_buf_puts(b, "null");
    ch_buf_puts(b, ", \"features\": ");
    ch_buf_json_str(b, r->features, strlen(r->features));
    ch_buf_puts(b, ", \"code_version\": ");
    ch_buf_json_str(b, r->code_version, strlen(r->code_version));
    ch_buf_puts(b, ", \"test_fraction\": ");
    ch_buf_json_num(b, r->test_fraction);
    if (r->extra_json != NULL) {
        /* The members of 'extra_json', checked to be an object, follow
         * the standard ones. */
        ch_json *x = NULL;
        rc = ch_json_parse(r->extra_json, strlen(r->extra_json), &x, err);
        if (rc == CH_OK && ch_json_typeof(x) != CH_JSON_OBJECT)
            rc = ch_error_set(err, CH_EINVAL, "lineage: the extra members must be an object");
        for (size_t i = 0; rc == CH_OK && i < ch_json_len(x); i++) {
            const ch_json *v;
            const char *k = ch_json_member(x, i, &v);
            ch_buf_puts(b, ", ");
            ch_buf_json_str(b, k, strlen(k));
            ch_buf_puts(b, ": ");
            ch_json_dump(v, b);
        }
        ch_json_free(x);
        if (rc != CH_OK)
            return rc;
    }
    ch_buf_putc(b, '}');
    if ((rc = ch_buf_status(b)) != CH_OK)
        return ch_error_set(err, rc, "lineage: %s", ch_strerror(rc));
    return CH_OK;
}

ch_err ch_track_begin(ch_registry *reg, const ch_track_run *r, ch_buf *lineage, int64_t *run_id,
                      ch_error *err)
{
    char abspath[PATH_MAX];
    const char *path;
    ch_buf lin;
    ch_err rc;

    ch_buf_init(&lin, 1 << 20);
    rc = ch_track_lineage(r, &lin, err);
    if (rc == CH_OK) {
        path = realpath(r->dataset_path, abspath) != NULL ? abspath : r->dataset_path;
        rc = ch_registry_add_dataset(reg, r->dataset_sha256, path, r->dataset_rows, err);
    }
    if (rc == CH_OK)
        rc = ch_registry_run_begin(reg, r->dataset_sha256, r->config_json, lin.data, run_id, err);
    if (rc == CH_OK && lineage != NULL) {
        ch_buf_append(lineage, lin.data, lin.len);
        if (ch_buf_status(lineage) != CH_OK)
            rc = ch_error_set(err, ch_buf_status(lineage), "lineage: %s",
                              ch_strerror(ch_buf_status(lineage)));
    }
    ch_buf_reset(&lin);
    return rc;
}

/* Writes 'text' to 'dir'/'name' and records it as artifact 'kind' (when
 * not NULL) under 'recorded' (the path to record: absolute for the
 * bundle, as joined for the report, as `churn train` always has). */
static ch_err save_one(ch_registry *reg, int64_t run_id, const char *dir, const char *name,
                       const char *kind, int absolute, const char *text, size_t len, char *path_out,
                       size_t path_cap, char sha_out[CH_SHA256_HEX_LEN + 1], ch_error *err)
{
    char path[4200];
    char abspath[PATH_MAX];
    char sha[CH_SHA256_HEX_LEN + 1];
    const char *rec = path;
    ch_err rc;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if ((rc = ch_track_write_file(path, text, len, err)) != CH_OK)
        return rc;
    if (absolute && realpath(path, abspath) != NULL)
        rec = abspath;
    if (path_out != NULL)
        snprintf(path_out, path_cap, "%s", rec);
    if (kind == NULL)
        return CH_OK;
    if ((rc = ch_sha256_hex(text, len, sha, err)) != CH_OK)
        return rc;
    if (sha_out != NULL)
        memcpy(sha_out, sha, sizeof sha);
    return ch_registry_add_artifact(reg, run_id, kind, rec, sha, err);
}

ch_err ch_track_save(ch_registry *reg, int64_t run_id, const char *dir, const ch_train_result *res,
                     const char *result_json, const char *report_md, ch_track_saved *out,
                     ch_error *err)
{
    ch_track_saved s;
    const char *bundle;
    size_t blen = 0;
    const char *own = NULL;
    ch_json *rj = NULL;
    ch_err rc;

    if (reg == NULL || dir == NULL || res == NULL || out == NULL)
        return ch_error_set(err, CH_EINVAL,
                            "saving a run: a store, directory and result are "
                            "required");
    memset(&s, 0, sizeof s);
    bundle = ch_train_result_bundle(res, &blen);
    own = ch_train_result_json(res);
    if (result_json == NULL)
        result_json = own;
    if (report_md == NULL)
        report_md = ch_train_result_report(res);
    if ((rc = ch_track_mkdirs(dir, err)) != CH_OK)
        return rc;
    rc = save_one(reg, run_id, dir, "bundle.json", "bundle", 1, bundle, blen, s.bundle_path,
                  sizeof s.bundle_path, s.bundle_sha256, err);
    if (rc == CH_OK)
        rc = save_one(reg, run_id, dir, "report.md", "report", 0, report_md, strlen(report_md),
                      NULL, 0, NULL, err);
    if (rc == CH_OK)
        rc = save_one(reg, run_id, dir, "result.json", NULL, 0, result_json, strlen(result_json),
                      NULL, 0, NULL, err);
    for (size_t i = 0; rc == CH_OK; i++) {
        const char *scope;
        const char *name;
        double v;
        if (!ch_train_result_metric(res, i, &scope, &name, &v))
            break;
        rc = ch_registry_run_metric(reg, run_id, scope, name, v, err);
    }
    if (rc != CH_OK)
        return rc;
    /* The winner and the wall time, from the result's own document. */
    if (ch_json_parse(own, strlen(own), &rj, NULL) == CH_OK) {
        const char *fam = ch_json_str(ch_json_get(ch_json_get(rj, "winner"), "family"), NULL);
        ch_json_num(ch_json_get(rj, "seconds"), &s.seconds);
        snprintf(s.family, sizeof s.family, "%s", fam != NULL ? fam : "");
        ch_json_free(rj);
    }
    *out = s;
    return CH_OK;
}

ch_err ch_track_register(ch_registry *reg, int64_t run_id, const ch_track_saved *saved,
                         const ch_train_result *res, const char *dataset_sha256, uint64_t seed,
                         double test_fraction, const char *actor, const char *reason,
                         int64_t *version, ch_error *err)
{
    const char *rjt;
    ch_json *rj = NULL;
    ch_buf mj;
    ch_err rc;

    if (reg == NULL || saved == NULL || res == NULL || dataset_sha256 == NULL)
        return ch_error_set(err, CH_EINVAL,
                            "registering: a store, bundle, result and dataset are "
                            "required");
    rjt = ch_train_result_json(res);
    rc = ch_json_parse(rjt, strlen(rjt), &rj, err);
    if (rc != CH_OK)
        return rc;
    ch_buf_init(&mj, 1 << 20);
    ch_buf_puts(&mj, "{\"test\": ");
    ch_json_dump(ch_json_get(rj, "test"), &mj);
    ch_buf_puts(&mj, ", \"eval_rows\": {\"dataset_sha256\": ");
    ch_buf_json_str(&mj, dataset_sha256, strlen(dataset_sha256));
    ch_buf_printf(&mj, ", \"seed\": %llu, \"test_fraction\": ", (unsigned long long)seed);
    ch_buf_json_num(&mj, test_fraction);
    ch_buf_puts(&mj, "}}");
    ch_json_free(rj);
    if (ch_buf_status(&mj) != CH_OK) {
        rc = ch_error_set(err, ch_buf_status(&mj), "registering: %s",
                          ch_strerror(ch_buf_status(&mj)));
        ch_buf_reset(&mj);
        return rc;
    }
    rc = ch_registry_register(reg, run_id, saved->bundle_path, saved->bundle_sha256, saved->family,
                              mj.data, actor, reason, version, err);
    ch_buf_reset(&mj);
    return rc;
}
