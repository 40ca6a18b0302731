/*
 * fuzz_record.c -- libFuzzer target for the prediction service's request
 * path: request body -> JSON -> customer record -> model features.
 *
 * The bytes are what a client would POST to /v1/predict. They go through
 * the JSON parser, the record reader (against the shipped Telco schema)
 * and, when the record is accepted, the feature pipeline fitted at start
 * on a few hundred simulated customers. Every call must either succeed or
 * return an error with a NUL-terminated message naming a field that
 * exists in the input; an accepted record must transform without
 * touching memory it does not own (ASan checks that).
 *
 * The same bytes also go to the single-pass reader the service uses
 * (ch_record_parse): whatever it accepts, the general path accepts with
 * bit-identical values; valid JSON is never called malformed by it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ch/config.h"
#include "ch/features.h"
#include "ch/ingest.h"
#include "ch/json.h"
#include "ch/record.h"
#include "ch/schema.h"
#include "ch/simulate.h"

static ch_schema *telco;
static ch_pipeline *pipe_;
static double *features;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, const ch_error *err)
{
    fprintf(stderr, "fuzz_record: %s: %s (run from the repository root)\n", what, err->msg);
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ch_error err = {0};
    ch_config *cfg = NULL;
    ch_pipeline_spec *spec = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    ch_ingest_opts io;
    ch_sim_opts so;
    char path[] = "/tmp/fuzz-record-XXXXXX";
    int fd;
    (void)argc;
    (void)argv;
    if (ch_schema_load_file("config/telco.schema.json", &telco, &err) != CH_OK)
        die("schema", &err);
    if (ch_config_load("config/churn.json", &cfg, &err) != CH_OK)
        die("config", &err);
    if (ch_pipeline_spec_from_json(ch_config_section(cfg, "features"), telco, &spec, &err) != CH_OK)
        die("feature spec", &err);
    fd = mkstemp(path);
    if (fd < 0)
        die("temporary file", &err);
    close(fd);
    ch_sim_opts_default(&so);
    so.n_rows = 400;
    so.seed = 5;
    if (ch_sim_write_file(&so, path, NULL, NULL, &err) != CH_OK)
        die("simulate", &err);
    ch_ingest_opts_default(&io);
    if (ch_ingest_file(telco, path, &io, &frame, &rep, &err) != CH_OK)
        die("ingest", &err);
    unlink(path);
    if (ch_pipeline_fit(spec, telco, frame, NULL, 0, &pipe_, &err) != CH_OK)
        die("pipeline", &err);
    features = calloc(ch_pipeline_n_features(pipe_), sizeof *features);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_pipeline_spec_free(spec);
    ch_config_free(cfg);
    return 0;
}

static void check_msg(const ch_error *err, const ch_record_info *info)
{
    if (memchr(err->msg, '\0', sizeof err->msg) == NULL ||
        memchr(info->field, '\0', sizeof info->field) == NULL)
        abort();
}

/* Both readers gave a record: the same values, bit for bit. */
static void same_values(const ch_value *a, const ch_value *b, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        if (a[j].missing != b[j].missing)
            abort();
        if (a[j].missing)
            continue;
        if (memcmp(&a[j].num, &b[j].num, sizeof a[j].num) != 0 || a[j].len != b[j].len ||
            (a[j].len > 0 && memcmp(a[j].str, b[j].str, a[j].len) != 0))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_error err = {0};
    ch_error err2 = {0};
    ch_json *doc = NULL;
    ch_value vals[64];
    ch_value fast[64];
    ch_record_info info;
    ch_record_info info2;
    char *copy = malloc(size + 1);
    size_t n = ch_schema_n_cols(telco);
    ch_err rc;
    ch_err rc2;

    if (copy == NULL || n > 64)
        abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    /* The service's single-pass reader. */
    rc2 = ch_record_parse(telco, copy, size, fast, &info2, &err2);
    check_msg(&err2, &info2);
    /* The general parser and the document reader. */
    if (ch_json_parse((const char *)data, size, &doc, &err) != CH_OK) {
        if (memchr(err.msg, '\0', sizeof err.msg) == NULL)
            abort();
        /* Text the general parser refuses is refused by the fast reader too
         * (it may say why differently: number range, nesting, type). */
        if (rc2 == CH_OK)
            abort();
        free(copy);
        return 0;
    }
    rc = ch_record_from_json(telco, doc, vals, &info, &err);
    check_msg(&err, &info);
    /* Valid JSON is never called malformed. (The general parser stops
     * reading at a NUL byte, which RFC 8259 does not allow anywhere; the
     * fast reader refuses it.) */
    if (rc2 == CH_EFORMAT && memchr(data, '\0', size) == NULL)
        abort();
    if (rc == CH_OK && rc2 == CH_OK) {
        same_values(vals, fast, n);
        if ((info.id == NULL) != (info2.id == NULL) || info.n_warnings != info2.n_warnings)
            abort();
    }
    if (rc2 == CH_OK && rc != CH_OK)
        abort(); /* the fast reader accepted what the document reader refused */
    if (rc == CH_OK) {
        ch_pipeline_transform_record(pipe_, vals, features, NULL);
        if (info.id != NULL && info.id_len == 0)
            abort();
    }
    ch_json_free(doc);
    free(copy);
    return 0;
}
