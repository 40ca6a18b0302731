/*
 * test_track.c -- recording a training run (include/ch/track.h) on a real
 * store in the test's temporary directory: the lineage document, the
 * files and artifacts a run leaves, the metrics, and the registration
 * the promotion gate relies on.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../harness.h"
#include "ch/hash.h"
#include "ch/ingest.h"
#include "ch/json.h"
#include "ch/simulate.h"
#include "ch/track.h"

static const char *tmp_path(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", ch_test_tmpdir(), name);
    return buf[k];
}

static ch_track_run a_run(void)
{
    ch_track_run r;
    memset(&r, 0, sizeof r);
    r.dataset_sha256 = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";
    r.dataset_path = "/no/such/file.csv";
    r.dataset_rows = 1234;
    r.config_json = "{\"settings\": {}}";
    r.features = "auto";
    r.code_version = "0.1.0+test";
    r.test_fraction = 0.25;
    return r;
}

/* The lineage has the members `churn train` has always recorded, in
 * order, then the extra ones; extras that are not an object are refused. */
TEST(lineage_document)
{
    ch_track_run r = a_run();
    ch_buf b;
    ch_error err = {0};
    char cfg_hash[CH_SHA256_HEX_LEN + 1];
    char want[1024];
    ch_json *j = NULL;

    ASSERT_OK(ch_sha256_hex(r.config_json, strlen(r.config_json), cfg_hash, &err));
    ch_buf_init(&b, 1 << 16);
    ASSERT_OK(ch_track_lineage(&r, &b, &err));
    snprintf(want, sizeof want,
             "{\"dataset_sha256\": \"%s\", \"dataset_path\": \"/no/such/file.csv\", "
             "\"dataset_rows\": 1234, \"config_sha256\": \"%s\", \"features\": \"auto\", "
             "\"code_version\": \"0.1.0+test\", \"test_fraction\": 0.25}",
             r.dataset_sha256, cfg_hash);
    ASSERT_STR_EQ(b.data, want);

    ch_buf_clear(&b);
    r.extra_json = "{\"retrain\": {\"champion\": 3, \"label_rows\": 600}, \"note\": \"x\"}";
    r.config_json = NULL;
    ASSERT_OK(ch_track_lineage(&r, &b, &err));
    ASSERT_OK(ch_json_parse(b.data, b.len, &j, &err));
    ASSERT(ch_json_typeof(ch_json_get(j, "config_sha256")) == CH_JSON_NULL);
    {
        double v = 0;
        ASSERT(ch_json_num(ch_json_get(ch_json_get(j, "retrain"), "label_rows"), &v) == 0);
        ASSERT(v == 600);
    }
    ASSERT_STR_EQ(ch_json_str(ch_json_get(j, "note"), NULL), "x");
    ch_json_free(j);

    ch_buf_clear(&b);
    r.extra_json = "[1, 2]";
    ASSERT_ERR(ch_track_lineage(&r, &b, &err), CH_EINVAL);
    r.extra_json = NULL;
    r.features = NULL;
    ASSERT_ERR(ch_track_lineage(&r, &b, &err), CH_EINVAL);
    ch_buf_reset(&b);
}

/* Atomic writes replace a file whole and leave no temporary file; a
 * directory that cannot be made is CH_EIO naming it. */
TEST(files_and_dirs)
{
    ch_error err = {0};
    char path[700];
    char text[64];
    FILE *f;
    struct stat st;

    snprintf(path, sizeof path, "%s/a/b/c", ch_test_tmpdir());
    ASSERT_OK(ch_track_mkdirs(path, &err));
    ASSERT_OK(ch_track_mkdirs(path, &err)); /* again: nothing to do */
    ASSERT(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "%s/a/b/c/f.txt", ch_test_tmpdir());
    ASSERT_OK(ch_track_write_file(path, "first", 5, &err));
    ASSERT_OK(ch_track_write_file(path, "second", 6, &err));
    f = fopen(path, "r");
    ASSERT(f != NULL);
    memset(text, 0, sizeof text);
    ASSERT(fread(text, 1, sizeof text - 1, f) == 6);
    fclose(f);
    ASSERT_STR_EQ(text, "second");
    snprintf(path, sizeof path, "%s/a/b/c/f.txt.tmp.%ld", ch_test_tmpdir(), (long)getpid());
    ASSERT(access(path, F_OK) != 0);

    snprintf(path, sizeof path, "%s/a/b/c/f.txt/sub", ch_test_tmpdir());
    ASSERT_ERR(ch_track_mkdirs(path, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "cannot create");
    snprintf(path, sizeof path, "%s/none/x.txt", ch_test_tmpdir());
    ASSERT_ERR(ch_track_write_file(path, "x", 1, &err), CH_EIO);
    ASSERT_CONTAINS(err.msg, "x.txt");
}

/* A whole run as `churn train` records it: begin, train, save, end,
 * register. The run has its lineage, artifacts with the files' digests
 * and the metrics; the version has the evaluation-rows key. */
TEST(run_saved_and_registered)
{
    ch_sim_opts so;
    ch_schema *schema = NULL;
    ch_frame *frame = NULL;
    ch_ingest_report *rep = NULL;
    ch_pipeline_spec *spec = NULL;
    ch_registry *reg = NULL;
    ch_train_result *res = NULL;
    ch_train_opts o;
    ch_track_run r = a_run();
    ch_track_saved saved;
    ch_error err = {0};
    ch_buf lin, b;
    ch_json *j = NULL;
    int64_t run_id = 0;
    int64_t version = 0;
    const char *csv = tmp_path("train.csv");
    char dir[700];

    ch_sim_opts_default(&so);
    so.n_rows = 1200;
    ASSERT_OK(ch_sim_write_file(&so, csv, NULL, NULL, &err));
    ASSERT_OK(ch_schema_load_file(ch_test_path("config/telco.schema.json"), &schema, &err));
    ASSERT_OK(ch_ingest_file(schema, csv, NULL, &frame, &rep, &err));
    ASSERT_OK(ch_pipeline_spec_auto(schema, &spec, &err));
    ASSERT_OK(ch_registry_open(ch_test_store("registry.db"), NULL, &reg, &err));

    r.dataset_sha256 = rep->sha256;
    r.dataset_path = csv;
    r.dataset_rows = rep->rows_accepted;
    ch_buf_init(&lin, 1 << 16);
    ASSERT_OK(ch_track_begin(reg, &r, &lin, &run_id, &err));
    ASSERT(run_id > 0);
    ASSERT_CONTAINS(lin.data, rep->sha256);

    ch_train_opts_default(&o);
    o.families[0] = "logreg";
    o.n_families = 1;
    o.folds = 2;
    o.test_fraction = r.test_fraction;
    ASSERT_OK(ch_train_run(schema, frame, spec, &o, lin.data, &res, &err));
    snprintf(dir, sizeof dir, "%s/runs/%lld", ch_test_tmpdir(), (long long)run_id);
    ASSERT_OK(ch_track_save(reg, run_id, dir, res, NULL, "# replaced report\n", &saved, &err));
    ASSERT_STR_EQ(saved.family, "logreg");
    ASSERT(saved.seconds >= 0);
    ASSERT_CONTAINS(saved.bundle_path, "/bundle.json");
    {
        size_t blen;
        const char *bt = ch_train_result_bundle(res, &blen);
        char sha[CH_SHA256_HEX_LEN + 1];
        ASSERT_OK(ch_sha256_hex(bt, blen, sha, &err));
        ASSERT_STR_EQ(saved.bundle_sha256, sha);
    }
    ASSERT_OK(
        ch_registry_run_end(reg, run_id, "ok", ch_train_result_json(res), saved.seconds, &err));
    ASSERT_OK(ch_track_register(reg, run_id, &saved, res, rep->sha256, o.seed, o.test_fraction,
                                "tester", "because", &version, &err));
    ASSERT_INT_EQ(version, 1);

    ch_buf_init(&b, 1 << 24);
    ASSERT_OK(ch_registry_run_json(reg, run_id, &b, &err));
    ASSERT_OK(ch_json_parse(b.data, b.len, &j, &err));
    ASSERT_INT_EQ(ch_json_len(ch_json_get(j, "artifacts")), 2);
    ASSERT_STR_EQ(
        ch_json_str(ch_json_get(ch_json_at(ch_json_get(j, "artifacts"), 0), "kind"), NULL),
        "bundle");
    ASSERT(ch_json_len(ch_json_get(j, "metrics")) > 10);
    ASSERT_STR_EQ(ch_json_str(ch_json_get(ch_json_get(j, "lineage"), "dataset_sha256"), NULL),
                  rep->sha256);
    ch_json_free(j);
    j = NULL;
    ch_buf_clear(&b);
    ASSERT_OK(ch_registry_model_json(reg, version, &b, &err));
    ASSERT_CONTAINS(b.data, "\"eval_rows\"");
    ASSERT_CONTAINS(b.data, rep->sha256);
    {
        char p[700];
        FILE *f;
        char head[32] = {0};
        snprintf(p, sizeof p, "%s/report.md", dir);
        f = fopen(p, "r");
        ASSERT(f != NULL);
        ASSERT(fread(head, 1, 18, f) == 18);
        fclose(f);
        ASSERT_STR_EQ(head, "# replaced report\n");
        snprintf(p, sizeof p, "%s/result.json", dir);
        ASSERT(access(p, R_OK) == 0);
    }
    ch_buf_reset(&b);
    ch_buf_reset(&lin);
    ch_train_result_free(res);
    ch_registry_close(reg);
    ch_pipeline_spec_free(spec);
    ch_ingest_report_free(rep);
    ch_frame_free(frame);
    ch_schema_free(schema);
}

TEST_MAIN(T(lineage_document), T(files_and_dirs), T(run_saved_and_registered))
