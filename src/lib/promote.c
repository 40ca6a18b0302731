/*
 * promote.c -- promotion with the evaluation gate (promote.h).
 *
 * Both versions are scored on the candidate's evaluation rows; the
 * comparison itself and its audit row happen inside the store's
 * transaction (ch_registry_promote), so a champion that moved meanwhile
 * is the one compared in the record.
 */
#include "ch/promote.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ch/alloc.h"
#include "ch/bundle.h"
#include "ch/ingest.h"
#include "ch/metrics.h"
#include "ch/split.h"

/* ROC AUC of 'bundle' on the test rows of the recorded split of 'path'. */
static ch_err auc_on_rows(const ch_bundle *bundle, const char *path, const char *sha,
                          double fraction, uint64_t seed, double max_reject, double *auc,
                          ch_error *err)
{
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    ch_ingest_opts io;
    size_t *tr = NULL;
    size_t *te = NULL;
    size_t ntr = 0;
    size_t nte = 0;
    double *p = NULL;
    double *y = NULL;
    const double *lab;
    ch_err rc;

    ch_ingest_opts_default(&io);
    io.max_reject_rate = max_reject;
    rc = ch_ingest_file(ch_bundle_schema(bundle), path, &io, &frame, &rep, err);
    if (rc != CH_OK)
        goto done;
    if (strcmp(rep->sha256, sha) != 0) {
        rc = ch_error_set(err, CH_EDATA,
                          "%s changed since training (sha256 %.12s..., recorded %.12s...): "
                          "cannot rebuild the evaluation rows",
                          path, rep->sha256, sha);
        goto done;
    }
    lab = ch_frame_num(frame, (size_t)ch_schema_target(ch_bundle_schema(bundle)));
    rc = ch_split_holdout(lab, ch_frame_n_rows(frame), fraction, seed, &tr, &ntr, &te, &nte, err);
    if (rc != CH_OK)
        goto done;
    p = ch_malloc_array(nte + 1, sizeof *p);
    y = ch_malloc_array(nte + 1, sizeof *y);
    if (p == NULL || y == NULL) {
        rc = ch_error_set(err, CH_ENOMEM, "out of memory");
        goto done;
    }
    rc = ch_bundle_score_frame(bundle, frame, te, nte, p, NULL, err);
    for (size_t i = 0; rc == CH_OK && i < nte; i++)
        y[i] = lab[te[i]];
    if (rc == CH_OK)
        rc = ch_metric_roc_auc(y, p, NULL, nte, auc, err);
done:
    ch_free(p);
    ch_free(y);
    ch_free(tr);
    ch_free(te);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    return rc;
}

ch_err ch_promote(ch_registry *reg, const char *ref, const ch_promote_opts *o,
                  ch_promote_result *out, ch_error *err)
{
    char cand_path[4096];
    char champ_path[4096];
    ch_buf mb, rb;
    ch_json *mj = NULL;
    ch_json *rj = NULL;
    ch_bundle *cb = NULL;
    ch_bundle *hb = NULL;
    ch_promote_result res;
    ch_err rc;

    memset(&res, 0, sizeof res);
    res.candidate_auc = NAN;
    res.champion_auc = NAN;
    ch_buf_init(&mb, 1 << 22);
    ch_buf_init(&rb, 1 << 24);
    rc = ch_registry_resolve(reg, ref, &res.version, cand_path, sizeof cand_path, err);
    if (rc != CH_OK)
        return rc;
    rc = ch_registry_resolve(reg, "champion", &res.champion, champ_path, sizeof champ_path, err);
    if (rc == CH_ENOTFOUND) {
        res.champion = 0;
        rc = CH_OK;
    }
    if (rc != CH_OK)
        return rc;
    if (res.champion == res.version) {
        res.already = 1;
        *out = res;
        return CH_OK;
    }
    if (res.champion > 0) {
        const ch_json *ev;
        const char *sha;
        const char *path;
        double fraction = 0;
        double seed = 0;
        double run_id = 0;
        rc = ch_registry_model_json(reg, res.version, &mb, err);
        if (rc == CH_OK)
            rc = ch_json_parse(mb.data, mb.len, &mj, err);
        if (rc != CH_OK)
            goto done;
        ev = ch_json_get(ch_json_get(mj, "metrics"), "eval_rows");
        sha = ch_json_str(ch_json_get(ev, "dataset_sha256"), NULL);
        ch_json_num(ch_json_get(ev, "test_fraction"), &fraction);
        ch_json_num(ch_json_get(ev, "seed"), &seed);
        ch_json_num(ch_json_get(mj, "run_id"), &run_id);
        rc = ch_registry_run_json(reg, (int64_t)run_id, &rb, err);
        if (rc == CH_OK)
            rc = ch_json_parse(rb.data, rb.len, &rj, err);
        if (rc != CH_OK)
            goto done;
        path = ch_json_str(ch_json_get(ch_json_get(rj, "lineage"), "dataset_path"), NULL);
        if (sha == NULL || path == NULL || !(fraction > 0)) {
            if (!o->force) {
                rc = ch_error_set(err, CH_EDATA,
                                  "version %lld has no recorded evaluation rows; force the "
                                  "promotion to skip the gate",
                                  (long long)res.version);
                goto done;
            }
        } else {
            snprintf(res.eval_key, sizeof res.eval_key, "%.16s:seed=%.0f:test=%g", sha, seed,
                     fraction);
            rc = ch_bundle_load(cand_path, NULL, &cb, err);
            if (rc == CH_OK)
                rc = ch_bundle_load(champ_path, NULL, &hb, err);
            if (rc == CH_EFORMAT)
                rc = CH_EMODEL;
            if (rc == CH_OK)
                rc = auc_on_rows(cb, path, sha, fraction, (uint64_t)seed, o->max_reject_rate,
                                 &res.candidate_auc, err);
            if (rc == CH_OK)
                rc = auc_on_rows(hb, path, sha, fraction, (uint64_t)seed, o->max_reject_rate,
                                 &res.champion_auc, err);
            if (rc != CH_OK)
                goto done;
        }
    }
    {
        ch_promotion p = {res.version, res.candidate_auc, res.champion_auc,
                          o->margin,   o->force,          res.eval_key};
        rc = ch_registry_promote(reg, &p, o->actor, o->reason, err);
    }
    if (rc == CH_OK || rc == CH_EDATA)
        *out = res;
done:
    ch_bundle_free(cb);
    ch_bundle_free(hb);
    ch_json_free(mj);
    ch_json_free(rj);
    ch_buf_reset(&mb);
    ch_buf_reset(&rb);
    return rc;
}
