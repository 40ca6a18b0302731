/*
 * fuzz_inputs.c -- libFuzzer target for the input values codec
 * (inputs.h), which reads blobs back from the prediction log.
 *
 * The bytes are taken as a blob written for the shipped Telco schema, in
 * a heap buffer of exactly their length (ASan reports any read past it).
 * Decoding must succeed or return CH_EFORMAT with a NUL-terminated
 * message. A blob that decodes is turned back into a record, which must
 * encode to a blob that decodes to the same values, and encoding that
 * again must give the same bytes (a fixed point after one round).
 *
 * Bytes that start with '{' are also read as a request body with the
 * service's record reader; an accepted record must encode (or not fit,
 * CH_ELIMIT) and decode back to its own values, with unknown category
 * texts cut as documented.
 *
 * Seeds: tests/cases/inputs/ (blobs written from the documented format,
 * and a request body).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/inputs.h"
#include "ch/record.h"
#include "ch/schema.h"

#define MAX_COLS 64
#define CAP      400

static ch_schema *telco;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ch_error err = {0};
    (void)argc;
    (void)argv;
    if (ch_schema_load_file("config/telco.schema.json", &telco, &err) != CH_OK) {
        fprintf(stderr, "fuzz_inputs: schema: %s (run from the repository root)\n", err.msg);
        exit(1);
    }
    if (ch_schema_n_cols(telco) > MAX_COLS)
        abort();
    return 0;
}

/* The same record: missing flags, numbers bit for bit, category bytes. */
static void same_values(const ch_value *a, const ch_value *b)
{
    for (size_t j = 0; j < ch_schema_n_cols(telco); j++) {
        ch_kind k = ch_schema_col_ref(telco, j)->kind;
        if (k == CH_KIND_ID || k == CH_KIND_TARGET)
            continue;
        if (a[j].missing != b[j].missing)
            abort();
        if (a[j].missing)
            continue;
        if (k == CH_KIND_CATEGORICAL) {
            if (a[j].len != b[j].len || (a[j].len > 0 && memcmp(a[j].str, b[j].str, a[j].len)))
                abort();
        } else if (memcmp(&a[j].num, &b[j].num, sizeof a[j].num) != 0) {
            abort();
        }
    }
}

static void check_msg(ch_err rc, const ch_error *err, ch_err allowed)
{
    if (rc == CH_OK)
        return;
    if (rc != allowed || err->code != rc || memchr(err->msg, '\0', sizeof err->msg) == NULL ||
        err->msg[0] == '\0')
        abort();
}

/* 'data' as a blob. */
static void as_blob(const uint8_t *data, size_t size)
{
    unsigned char *p = malloc(size > 0 ? size : 1);
    double num[MAX_COLS];
    int32_t code[MAX_COLS];
    const char *ut[MAX_COLS];
    size_t ul[MAX_COLS];
    ch_value v1[MAX_COLS];
    ch_value v2[MAX_COLS];
    unsigned char b1[CAP];
    unsigned char b2[CAP];
    size_t l1 = 0;
    size_t l2 = 0;
    ch_error err = {0};
    ch_err rc;
    ch_err rc2;

    if (p == NULL)
        abort();
    if (size > 0)
        memcpy(p, data, size);
    rc = ch_inputs_decode(telco, p, size, num, code, ut, ul, &err);
    check_msg(rc, &err, CH_EFORMAT);
    rc2 = ch_inputs_to_values(telco, p, size, v1, &err);
    if (rc2 != rc)
        abort();
    if (rc == CH_OK) {
        for (size_t j = 0; j < ch_schema_n_cols(telco); j++)
            if (ut[j] != NULL && ((const unsigned char *)ut[j] < p ||
                                  (const unsigned char *)ut[j] + ul[j] > p + size))
                abort();
        if (ch_inputs_encode(telco, v1, b1, sizeof b1, &l1, &err) != CH_OK || l1 > size)
            abort();
        if (ch_inputs_to_values(telco, b1, l1, v2, &err) != CH_OK)
            abort();
        same_values(v1, v2);
        if (ch_inputs_encode(telco, v2, b2, sizeof b2, &l2, &err) != CH_OK || l2 != l1 ||
            memcmp(b1, b2, l1) != 0)
            abort();
    }
    free(p);
}

/* 'data' as a request body. */
static void as_record(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    ch_value vals[MAX_COLS];
    ch_value back[MAX_COLS];
    ch_record_info info;
    unsigned char blob[CAP];
    size_t len = 0;
    ch_error err = {0};
    ch_err rc;

    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    if (ch_record_parse(telco, text, size, vals, &info, &err) != CH_OK) {
        free(text);
        return;
    }
    rc = ch_inputs_encode(telco, vals, blob, sizeof blob, &len, &err);
    check_msg(rc, &err, CH_ELIMIT);
    if (rc == CH_OK) {
        if (ch_inputs_to_values(telco, blob, len, back, &err) != CH_OK)
            abort();
        /* Texts the codec cuts are compared as cut. */
        for (size_t j = 0; j < ch_schema_n_cols(telco); j++)
            if (!vals[j].missing && vals[j].len > CH_INPUTS_TEXT_MAX) {
                if (back[j].len > CH_INPUTS_TEXT_MAX || back[j].len + 3 < CH_INPUTS_TEXT_MAX)
                    abort();
                vals[j].len = back[j].len;
            }
        same_values(vals, back);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_blob(data, size);
    if (size > 0 && data[0] == '{')
        as_record(data, size);
    return 0;
}
