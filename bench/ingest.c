/*
 * ingest.c -- throughput of CSV ingestion: parse + validate + frame build.
 *
 * usage: build/bench/ingest SCHEMA DATA.csv [REPEATS]
 *
 * Runs, single thread, REPEATS times each (default 5), on a file that is
 * already in the page cache after the first read:
 *   tokenize  the CSV reader alone, with SHA-256 (the floor of ingestion)
 *   ingest    ch_ingest_file with a frame built (what training does)
 *   validate  ch_ingest_file without a frame (what `churn validate` does)
 * and prints the median and best MB/s of each (1 MB = 10^6 bytes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ch/csv.h"
#include "ch/ingest.h"
#include "ch/schema.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double tokenize(const char *path, uint64_t *bytes)
{
    ch_csv *c = NULL;
    ch_csv_record rec;
    ch_error err = {0};
    int got = 1;
    char hex[65];
    double t0 = now();
    if (ch_csv_open_file(path, NULL, &c, &err) != CH_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    while (got) {
        if (ch_csv_next(c, &rec, &got, &err) != CH_OK) {
            fprintf(stderr, "%s\n", err.msg);
            exit(2);
        }
    }
    if (ch_csv_sha256(c, hex, &err) != CH_OK)
        exit(2);
    *bytes = ch_csv_bytes(c);
    ch_csv_free(c);
    return now() - t0;
}

static double ingest(const ch_schema *s, const char *path, int keep, uint64_t *rows)
{
    ch_ingest_opts o;
    ch_frame *f = NULL;
    ch_ingest_report *r = NULL;
    ch_error err = {0};
    double t0 = now();
    double t;
    ch_ingest_opts_default(&o);
    o.keep_frame = keep;
    if (ch_ingest_file(s, path, &o, keep ? &f : NULL, &r, &err) != CH_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(3);
    }
    t = now() - t0;
    *rows = r->rows_accepted;
    ch_frame_free(f);
    ch_ingest_report_free(r);
    return t;
}

static void report(const char *name, double *t, int n, uint64_t bytes)
{
    qsort(t, (size_t)n, sizeof *t, cmp);
    printf("%-10s median %7.1f MB/s   best %7.1f MB/s   (%.3f s median)\n", name,
           (double)bytes / 1e6 / t[n / 2], (double)bytes / 1e6 / t[0], t[n / 2]);
}

int main(int argc, char **argv)
{
    ch_schema *s = NULL;
    ch_error err = {0};
    uint64_t bytes = 0;
    uint64_t rows = 0;
    int n = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 5;
    double t[3][64];

    if (argc < 3 || n < 1 || n > 64) {
        fprintf(stderr, "usage: %s SCHEMA DATA.csv [REPEATS 1..64]\n", argv[0]);
        return 1;
    }
    if (ch_schema_load_file(argv[1], &s, &err) != CH_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    tokenize(argv[2], &bytes); /* warm the page cache */
    for (int i = 0; i < n; i++) {
        t[0][i] = tokenize(argv[2], &bytes);
        t[1][i] = ingest(s, argv[2], 1, &rows);
        t[2][i] = ingest(s, argv[2], 0, &rows);
    }
    printf("file       %s: %.1f MB, %llu rows accepted, %d runs each, 1 thread\n", argv[2],
           (double)bytes / 1e6, (unsigned long long)rows, n);
    report("tokenize", t[0], n, bytes);
    report("ingest", t[1], n, bytes);
    report("validate", t[2], n, bytes);
    ch_schema_free(s);
    return 0;
}
