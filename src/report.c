/*
 * report.c -- the run report: OUTPUT/_REPORT.json.
 *
 * One JSON object (shape in README, "Run report"): the job's totals, one
 * entry in stages[] with the phase times, shuffle volume and partitioning
 * figures (reduce input per rank before and after rebalancing, imbalance,
 * heavy keys), and ranks_detail[] with each rank's own figures.  Fields of
 * features that do not exist yet are left out.  Written by rank 0 into the
 * job's temporary directory, so it is renamed into place with the parts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

double mrf__imbalance(const uint64_t *v, size_t n, size_t stride)
{
    uint64_t max = 0;
    long double sum = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = v[i * stride];
        sum += x;
        if (x > max)
            max = x;
    }
    if (n == 0 || sum == 0)
        return 1.0;
    return (double)((long double)max * n / sum);
}

/* A JSON string: quotes, backslashes and control bytes escaped; bytes
 * >= 0x80 that are not UTF-8 become \u00XX so the document stays valid. */
static void put_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void put_cstr(FILE *f, const char *s)
{
    put_str(f, s ? s : "", s ? strlen(s) : 0);
}

static void put_u64s(FILE *f, const uint64_t *v, size_t n, size_t stride)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)v[i * stride]);
    fputc(']', f);
}

static uint64_t sum_rk(const mrf__report *r, size_t off)
{
    uint64_t t = 0;
    for (int i = 0; i < r->ranks; i++)
        t += *(const uint64_t *)((const char *)&r->rk[i] + off);
    return t;
}

static double max_rk(const mrf__report *r, size_t off)
{
    double m = 0;
    for (int i = 0; i < r->ranks; i++) {
        double x = *(const double *)((const char *)&r->rk[i] + off);
        m = x > m ? x : m;
    }
    return m;
}

#define SUM(field) (unsigned long long)sum_rk(r, offsetof(mrf__rank_fig, field))
#define MAX(field) max_rk(r, offsetof(mrf__rank_fig, field))

static void put_stage(FILE *f, const mrf__report *r)
{
    size_t P = (size_t)r->ranks;
    uint64_t *in_b = mrf__calloc(P, sizeof *in_b), *in_r = mrf__calloc(P, sizeof *in_r);
    for (size_t i = 0; in_b && in_r && i < P; i++) {
        in_b[i] = r->rk[i].red_in_bytes;
        in_r[i] = r->rk[i].red_in_recs;
    }
    fprintf(f,
            "    {\n      \"stage\": 0,\n      \"map_s\": %.6f,\n      \"shuffle_s\": %.6f,\n"
            "      \"reduce_s\": %.6f,\n",
            MAX(map_s), MAX(shuffle_s), MAX(reduce_s));
    fprintf(f,
            "      \"shuffle_bytes_raw\": %llu,\n      \"shuffle_bytes_wire\": %llu,\n"
            "      \"spilled_bytes\": %llu,\n",
            (unsigned long long)r->shuffle_raw, (unsigned long long)r->shuffle_wire, SUM(spilled));
    fprintf(f, "      \"imbalance\": %.4f,\n", in_b ? mrf__imbalance(in_b, P, 1) : 1.0);
    /* the slowest rank's own work after the map: what the reduce side takes
     * when every rank has a core to itself */
    fprintf(f, "      \"reduce_cpu_s_max\": %.6f,\n", MAX(reduce_cpu_s));
    fprintf(f,
            "      \"tasks\": %llu,\n      \"tasks_stolen\": %llu,\n"
            "      \"speculative_launched\": %llu,\n      \"speculative_won\": %llu,\n",
            SUM(tasks), SUM(stolen), SUM(launched), SUM(won));
    fprintf(f, "      \"partitioning\": {\n        \"partitioner\": ");
    put_cstr(f, r->partitioner);
    fprintf(f,
            ",\n        \"map_combine\": %s,\n        \"buckets\": %u,\n"
            "        \"heavy_sub_buckets\": %u,\n        \"decide_s\": %.6f,\n",
            r->map_combine ? "true" : "false", r->buckets, r->sub_buckets, r->decide_s);
    /* before: plain hashing (bucket modulo ranks); planned: the packing
     * chosen, both from the map side's per-bucket counts; delivered: what
     * each rank's reduce really got */
    fprintf(f, "        \"reduce_input_bytes_before\": ");
    put_u64s(f, &r->before[0].bytes, P, 2);
    fprintf(f, ",\n        \"reduce_input_records_before\": ");
    put_u64s(f, &r->before[0].recs, P, 2);
    fprintf(f, ",\n        \"reduce_input_bytes_planned\": ");
    put_u64s(f, &r->after[0].bytes, P, 2);
    fprintf(f, ",\n        \"reduce_input_records_planned\": ");
    put_u64s(f, &r->after[0].recs, P, 2);
    fprintf(f, ",\n        \"reduce_input_bytes\": ");
    if (in_b)
        put_u64s(f, in_b, P, 1);
    else
        fprintf(f, "[]");
    fprintf(f, ",\n        \"reduce_input_records\": ");
    if (in_r)
        put_u64s(f, in_r, P, 1);
    else
        fprintf(f, "[]");
    fprintf(f,
            ",\n        \"imbalance_before\": %.4f,\n        \"imbalance_planned\": %.4f,\n"
            "        \"imbalance\": %.4f,\n",
            mrf__imbalance(&r->before[0].bytes, P, 2), mrf__imbalance(&r->after[0].bytes, P, 2),
            in_b ? mrf__imbalance(in_b, P, 1) : 1.0);
    const mrf__heavy *hv = r->hv;
    double share = 0;
    uint32_t split = 0;
    for (uint32_t i = 0; hv && i < hv->n; i++) {
        share += hv->share[i];
        split += hv->m[i] > 1;
    }
    fprintf(f,
            "        \"heavy_keys\": {\n          \"found\": %u,\n          \"share\": %.4f,\n"
            "          \"split\": %u,\n          \"range_tie_keys\": %u,\n"
            "          \"partial_bytes_merged\": %llu,\n          \"how\": ",
            hv ? hv->n : 0, share, split, r->tie_keys, (unsigned long long)r->heavy_partial_bytes);
    put_cstr(f, r->split_why);
    fprintf(f, ",\n          \"top\": [");
    for (uint32_t i = 0; hv && i < hv->n && i < 10; i++) {
        fprintf(f, "%s\n            {\"key\": ", i ? "," : "");
        uint32_t kl = hv->key[i].klen < MRF__HEAVY_NAME ? hv->key[i].klen : MRF__HEAVY_NAME;
        put_str(f, hv->key[i].name, kl);
        fprintf(f, ", \"key_bytes\": %u, \"share\": %.4f, \"buckets\": %u}", hv->key[i].klen,
                hv->share[i], hv->m[i]);
    }
    fprintf(f, "%s]\n        }\n      }\n    }", hv && hv->n ? "\n          " : "");
    mrf__free(in_b);
    mrf__free(in_r);
}

int mrf__report_write(const char *path, const mrf__report *r)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return mrf__fail(MRF_EIO, "cannot write the run report '%s': %s", path, strerror(errno));
    fprintf(f, "{\n  \"job\": ");
    put_cstr(f, r->job);
    fprintf(f, ",\n  \"run_id\": ");
    put_cstr(f, r->run_id);
    fprintf(f, ",\n  \"status\": ");
    put_cstr(f, r->status);
    fprintf(f, ",\n  \"mrflow_version\": ");
    put_cstr(f, mrf_version());
    fprintf(f,
            ",\n  \"ranks\": %d,\n  \"elapsed_s\": %.6f,\n  \"input_bytes\": %llu,\n"
            "  \"records_in\": %llu,\n  \"records_out\": %llu,\n  \"output_bytes\": %llu,\n"
            "  \"shuffle_compression\": ",
            r->ranks, r->elapsed_s, SUM(input_bytes), SUM(records_mapped), SUM(records_out),
            SUM(bytes_out));
    put_cstr(f, r->compression);
    fprintf(f, ",\n  \"stages\": [\n");
    put_stage(f, r);
    fprintf(f, "\n  ],\n  \"ranks_detail\": [");
    for (int i = 0; i < r->ranks; i++) {
        const mrf__rank_fig *k = &r->rk[i];
        fprintf(f, "%s\n    {\"rank\": %d, \"host\": ", i ? "," : "", i);
        put_str(f, k->host, strnlen(k->host, sizeof k->host));
        fprintf(f,
                ", \"peak_rss_bytes\": %llu, \"map_s\": %.6f, \"shuffle_s\": %.6f, "
                "\"reduce_s\": %.6f, \"reduce_cpu_s\": %.6f, \"input_bytes\": %llu, "
                "\"records_mapped\": %llu, "
                "\"reduce_input_bytes\": %llu, \"reduce_input_records\": %llu, "
                "\"records_out\": %llu, \"output_bytes\": %llu, \"spilled_bytes\": %llu}",
                (unsigned long long)k->peak_rss, k->map_s, k->shuffle_s, k->reduce_s,
                k->reduce_cpu_s, (unsigned long long)k->input_bytes,
                (unsigned long long)k->records_mapped, (unsigned long long)k->red_in_bytes,
                (unsigned long long)k->red_in_recs, (unsigned long long)k->records_out,
                (unsigned long long)k->bytes_out, (unsigned long long)k->spilled);
    }
    fprintf(f, "\n  ]\n}\n");
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        bad = 1;
    if (fclose(f) != 0 || bad)
        return mrf__fail(MRF_EIO, "writing the run report '%s' failed: %s", path, strerror(errno));
    return MRF_OK;
}
