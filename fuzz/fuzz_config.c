/*
 * fuzz_config.c -- libFuzzer target for the JSON loaders: config, schema,
 * feature spec and fitted pipeline.
 *
 * The same bytes go to every loader: the config parser, the schema
 * builder, the feature-spec parser (against the shipped Telco schema) and
 * the fitted-pipeline loader. Each must either succeed or return an error
 * code with a NUL-terminated message; whatever loads must also serialize,
 * and a schema that loads must load again from its own JSON with the
 * same hash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch/config.h"
#include "ch/features.h"
#include "ch/json.h"
#include "ch/schema.h"

static ch_schema *telco;

static void check_msg(const ch_error *err)
{
    if (memchr(err->msg, '\0', sizeof err->msg) == NULL)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    ch_error err = {0};
    (void)argc;
    (void)argv;
    if (ch_schema_load_file("config/telco.schema.json", &telco, &err) != CH_OK) {
        fprintf(stderr, "fuzz_config: run from the repository root: %s\n", err.msg);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_error err = {0};
    ch_config *cfg = NULL;
    ch_json *doc = NULL;
    ch_schema *s = NULL;
    ch_pipeline_spec *spec = NULL;
    ch_pipeline *p = NULL;
    ch_buf b;

    if (ch_config_parse((const char *)data, size, &cfg, &err) == CH_OK)
        ch_config_free(cfg);
    check_msg(&err);
    if (ch_json_parse((const char *)data, size, &doc, &err) != CH_OK) {
        check_msg(&err);
        return 0;
    }
    ch_buf_init(&b, (size_t)64 << 20);
    if (ch_schema_from_json(doc, &s, &err) == CH_OK) {
        ch_json *again = NULL;
        ch_schema *s2 = NULL;
        ch_schema_to_json(s, &b);
        if (ch_buf_status(&b) != CH_OK || ch_json_parse(b.data, b.len, &again, &err) != CH_OK ||
            ch_schema_from_json(again, &s2, &err) != CH_OK ||
            strcmp(ch_schema_hash(s), ch_schema_hash(s2)) != 0)
            abort(); /* a loaded schema must round-trip */
        ch_schema_free(s2);
        ch_json_free(again);
        ch_schema_free(s);
        ch_buf_clear(&b);
    }
    check_msg(&err);
    if (ch_pipeline_spec_from_json(doc, telco, &spec, &err) == CH_OK)
        ch_pipeline_spec_free(spec);
    check_msg(&err);
    if (ch_pipeline_from_json(doc, telco, &p, &err) == CH_OK) {
        ch_pipeline_to_json(p, &b);
        ch_pipeline_free(p);
    }
    check_msg(&err);
    ch_buf_reset(&b);
    ch_json_free(doc);
    return 0;
}
