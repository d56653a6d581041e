/*
 * report.c -- the run report: OUTPUT/_REPORT.json.
 *
 * One JSON object (shape in docs/user-guide.md, "Run report, logs and metrics"): the job's totals,
 * one entry in stages[] with the phase times, shuffle volume and partitioning figures (reduce input
 * per rank before and after rebalancing, imbalance, heavy keys), and ranks_detail[] with each
 * rank's own figures.  Fields of features that do not exist yet are left out.  Written by rank 0
 * into the job's temporary directory, so it is renamed into place with the parts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "partition.h"

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
    fprintf(f, "      \"bad_records\": %llu,\n", SUM(bad_records));
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
    if (r->before && r->after) { /* planned: only once the map has run */
        fprintf(f, "        \"reduce_input_bytes_before\": ");
        put_u64s(f, &r->before[0].bytes, P, 2);
        fprintf(f, ",\n        \"reduce_input_records_before\": ");
        put_u64s(f, &r->before[0].recs, P, 2);
        fprintf(f, ",\n        \"reduce_input_bytes_planned\": ");
        put_u64s(f, &r->after[0].bytes, P, 2);
        fprintf(f, ",\n        \"reduce_input_records_planned\": ");
        put_u64s(f, &r->after[0].recs, P, 2);
        fprintf(f, ",\n        \"imbalance_before\": %.4f,\n        \"imbalance_planned\": %.4f,\n",
                mrf__imbalance(&r->before[0].bytes, P, 2),
                mrf__imbalance(&r->after[0].bytes, P, 2));
    }
    fprintf(f, "        \"reduce_input_bytes\": ");
    if (in_b)
        put_u64s(f, in_b, P, 1);
    else
        fprintf(f, "[]");
    fprintf(f, ",\n        \"reduce_input_records\": ");
    if (in_r)
        put_u64s(f, in_r, P, 1);
    else
        fprintf(f, "[]");
    fprintf(f, ",\n        \"imbalance\": %.4f,\n", in_b ? mrf__imbalance(in_b, P, 1) : 1.0);
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

/* Opens a temporary beside path; finish_file renames it over path. */
static FILE *open_tmp(const char *path, char *tmp, size_t cap)
{
    snprintf(tmp, cap, "%s.tmp-%ld", path, (long)getpid());
    /* a new file (never through a link an attacker left), with the umask */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    if (!f)
        mrf__fail(MRF_EIO, "cannot write '%s': %s; check that its directory exists and is writable",
                  tmp, strerror(errno));
    return f;
}

static int finish_file(FILE *f, const char *tmp, const char *path)
{
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        bad = 1;
    if (fclose(f) != 0)
        bad = 1;
    if (!bad && rename(tmp, path) != 0)
        bad = 1;
    if (bad) {
        int e = errno;
        unlink(tmp);
        return mrf__fail(MRF_EIO, "writing '%s' failed: %s", path, strerror(e));
    }
    return MRF_OK;
}

/* A rank's profile: per phase its wall and CPU seconds and the parts of
 * its wall time (mrf__prof). */
static void put_profile(FILE *f, const mrf__prof *p)
{
    fprintf(f,
            ", \"profile\": {\"map\": {\"cpu_s\": %.6f, \"read_s\": %.6f, \"run_s\": %.6f, "
            "\"spill_s\": %.6f, \"wait_s\": %.6f}, \"shuffle\": {\"cpu_s\": %.6f, "
            "\"group_s\": %.6f, \"pack_s\": %.6f, \"mpi_s\": %.6f, \"unpack_s\": %.6f}, "
            "\"reduce\": {\"cpu_s\": %.6f, \"sort_s\": %.6f, \"reduce_s\": %.6f, "
            "\"write_s\": %.6f, \"fsync_s\": %.6f}}",
            p->map_cpu, p->map_read, p->map_run, p->map_spill, p->map_wait, p->sh_cpu, p->sh_group,
            p->sh_pack, p->sh_mpi, p->sh_unpack, p->red_cpu, p->red_sort, p->red_reduce,
            p->red_write, p->red_fsync);
}

int mrf__report_write(const char *path, const mrf__report *r)
{
    char tmp[4096];
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f)
        return MRF_EIO;
    fprintf(f, "{\n  \"job\": ");
    put_cstr(f, r->job);
    fprintf(f, ",\n  \"run_id\": ");
    put_cstr(f, r->run_id);
    fprintf(f, ",\n  \"status\": ");
    put_cstr(f, r->status);
    fprintf(f, ",\n  \"mrflow_version\": ");
    put_cstr(f, mrf_version());
    fprintf(f, ",\n  \"exit_status\": %d", r->exit_status);
    if (r->error) {
        fprintf(f, ",\n  \"error\": ");
        put_cstr(f, r->error);
    }
    fprintf(f,
            ",\n  \"ranks\": %d,\n  \"elapsed_s\": %.6f,\n  \"input_bytes\": %llu,\n"
            "  \"records_in\": %llu,\n  \"records_out\": %llu,\n  \"output_bytes\": %llu,\n"
            "  \"shuffle_compression\": ",
            r->ranks, r->elapsed_s, SUM(input_bytes), SUM(records_mapped), SUM(records_out),
            SUM(bytes_out));
    put_cstr(f, r->compression);
    if (r->ckpt_dir) {
        fprintf(f, ",\n  \"checkpoints\": {\"dir\": ");
        put_cstr(f, r->ckpt_dir);
        fprintf(f,
                ", \"written\": %llu, \"bytes\": %llu, \"raw_bytes\": %llu, \"seconds\": %.6f, "
                "\"write_bandwidth_bytes_per_s\": %.0f, \"last_epoch\": %llu, "
                "\"resumed_from_epoch\": %llu, \"resumed_tasks\": %llu, \"resume_s\": %.6f, "
                "\"left_out\": %llu, \"left_out_work_s\": %.6f, \"left_out_cost_s\": %.6f}",
                (unsigned long long)r->ckpt_written, (unsigned long long)r->ckpt_bytes,
                (unsigned long long)r->ckpt_raw_bytes, r->ckpt_s,
                r->ckpt_s > 0 ? (double)r->ckpt_bytes / r->ckpt_s : 0.0,
                (unsigned long long)r->ckpt_last_epoch, (unsigned long long)r->resumed_epoch,
                (unsigned long long)r->resumed_tasks, r->resume_s,
                (unsigned long long)r->ckpt_skipped, r->ckpt_skip_work_s, r->ckpt_skip_cost_s);
    }
    if (r->n_runs) { /* a multi-stage job: the runs before this, the last */
        fprintf(f, ",\n  \"stage_runs\": [");
        for (size_t i = 0; i < r->n_runs; i++) {
            const mrf__stage_fig *g = &r->runs[i];
            fprintf(f, "%s\n    {\"name\": ", i ? "," : "");
            put_str(f, g->name, strnlen(g->name, sizeof g->name));
            if (g->done_before)
                fprintf(f, ", \"done_before\": true}");
            else
                fprintf(f,
                        ", \"elapsed_s\": %.6f, \"records_in\": %llu, \"records_out\": %llu, "
                        "\"shuffle_bytes\": %llu}",
                        g->elapsed_s, (unsigned long long)g->records_in,
                        (unsigned long long)g->records_out, (unsigned long long)g->shuffle_bytes);
        }
        fprintf(f, "\n  ]");
    }
    fprintf(f, ",\n  \"stages\": [\n");
    put_stage(f, r);
    fprintf(f, "\n  ],\n  \"ranks_detail\": [");
    for (int i = 0; i < r->ranks; i++) {
        const mrf__rank_fig *k = &r->rk[i];
        fprintf(f, "%s\n    {\"rank\": %d, \"host\": ", i ? "," : "", i);
        put_str(f, k->host, strnlen(k->host, sizeof k->host));
        fprintf(f, ", \"local_rank\": %d, \"cpuset\": ", (int)k->local_rank);
        put_str(f, k->cpuset, strnlen(k->cpuset, sizeof k->cpuset));
        fprintf(f, ", \"numa_node\": ");
        put_str(f, k->numa, strnlen(k->numa, sizeof k->numa));
        fprintf(f, ", \"bound_by\": \"%s\", \"map_output_numa\": ",
                mrf__bind_how_name((int)k->bind_how));
        put_str(f, k->arena_numa, strnlen(k->arena_numa, sizeof k->arena_numa));
        if (k->error[0]) {
            fprintf(f, ", \"error\": ");
            put_str(f, k->error, strnlen(k->error, sizeof k->error));
        }
        fprintf(f,
                ", \"peak_rss_bytes\": %llu, \"map_s\": %.6f, \"shuffle_s\": %.6f, "
                "\"reduce_s\": %.6f, \"reduce_cpu_s\": %.6f, \"input_bytes\": %llu, "
                "\"records_mapped\": %llu, "
                "\"reduce_input_bytes\": %llu, \"reduce_input_records\": %llu, "
                "\"records_out\": %llu, \"output_bytes\": %llu, \"spilled_bytes\": %llu",
                (unsigned long long)k->peak_rss, k->map_s, k->shuffle_s, k->reduce_s,
                k->reduce_cpu_s, (unsigned long long)k->input_bytes,
                (unsigned long long)k->records_mapped, (unsigned long long)k->red_in_bytes,
                (unsigned long long)k->red_in_recs, (unsigned long long)k->records_out,
                (unsigned long long)k->bytes_out, (unsigned long long)k->spilled);
        put_profile(f, &k->prof);
        fputc('}', f);
    }
    fprintf(f, "\n  ]\n}\n");
    return finish_file(f, tmp, path);
}

/* One metric: HELP and TYPE once, then the sample. */
static void metric(FILE *f, const char *name, const char *help, const char *labels, double v)
{
    fprintf(f, "# HELP mrflow_%s %s\n# TYPE mrflow_%s gauge\nmrflow_%s{%s} %.17g\n", name, help,
            name, name, labels, v);
}

int mrf__metrics_write(const char *path, const mrf__report *r)
{
    char tmp[4096], job[200], lb[300];
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f)
        return MRF_EIO;
    /* label values: backslash, quote and newline escaped */
    size_t n = 0;
    for (const char *p = r->job; *p && n + 3 < sizeof job; p++) {
        if (*p == '\\' || *p == '"')
            job[n++] = '\\';
        job[n++] = *p == '\n' ? 'n' : *p;
    }
    job[n] = '\0';
    size_t P = (size_t)r->ranks;
    uint64_t *in_b = mrf__calloc(P ? P : 1, sizeof *in_b);
    for (size_t i = 0; in_b && i < P; i++)
        in_b[i] = r->rk[i].red_in_bytes;
    snprintf(lb, sizeof lb, "job=\"%s\"", job);
    metric(f, "job_succeeded", "1 if the last run succeeded, else 0.", lb,
           strcmp(r->status, "succeeded") == 0);
    metric(f, "job_exit_status", "Exit status of the last run.", lb, r->exit_status);
    metric(f, "job_last_run_timestamp_seconds", "When the last run ended (Unix time).", lb,
           (double)time(NULL));
    metric(f, "job_elapsed_seconds", "Wall time of the last run.", lb, r->elapsed_s);
    if (r->ckpt_dir) {
        metric(f, "checkpoints_written", "Checkpoints the last run wrote.", lb,
               (double)r->ckpt_written);
        metric(f, "checkpoint_bytes", "Bytes of checkpoints the last run wrote.", lb,
               (double)r->ckpt_bytes);
        metric(f, "checkpoint_seconds", "Seconds the last run spent writing checkpoints.", lb,
               r->ckpt_s);
        metric(f, "checkpoint_resumed_epoch", "Epoch the last run resumed from (0: none).", lb,
               (double)r->resumed_epoch);
        metric(f, "checkpoints_left_out",
               "Checkpoints the last run left out: writing them would have cost more than "
               "the work they save.",
               lb, (double)r->ckpt_skipped);
    }
    metric(f, "job_ranks", "MPI ranks of the last run.", lb, r->ranks);
    metric(f, "job_input_bytes", "Input bytes mapped.", lb, (double)SUM(input_bytes));
    metric(f, "job_records_in", "Input records mapped.", lb, (double)SUM(records_mapped));
    metric(f, "job_records_out", "Output records written.", lb, (double)SUM(records_out));
    metric(f, "job_output_bytes", "Output bytes written.", lb, (double)SUM(bytes_out));
    snprintf(lb, sizeof lb, "job=\"%s\",stage=\"0\"", job);
    metric(f, "stage_map_seconds", "Map phase wall time (slowest rank).", lb, MAX(map_s));
    metric(f, "stage_shuffle_seconds", "Shuffle wall time (slowest rank).", lb, MAX(shuffle_s));
    metric(f, "stage_reduce_seconds", "Reduce wall time (slowest rank).", lb, MAX(reduce_s));
    metric(f, "stage_shuffle_raw_bytes", "Record bytes shuffled.", lb, (double)r->shuffle_raw);
    metric(f, "stage_shuffle_wire_bytes", "Bytes on the wire after compression.", lb,
           (double)r->shuffle_wire);
    metric(f, "stage_spilled_bytes", "Bytes spilled to local disk.", lb, (double)SUM(spilled));
    metric(f, "stage_imbalance", "Max / mean of the reduce input bytes over ranks.", lb,
           in_b ? mrf__imbalance(in_b, P, 1) : 1.0);
    metric(f, "stage_heavy_keys", "Keys found heavier than 1/(20 x ranks) of the data.", lb,
           r->hv ? r->hv->n : 0);
    metric(f, "stage_tasks", "Map tasks committed.", lb, (double)SUM(tasks));
    metric(f, "stage_tasks_stolen", "Map tasks run by a rank other than their home.", lb,
           (double)SUM(stolen));
    metric(f, "stage_speculative_launched", "Backup copies of straggling tasks started.", lb,
           (double)SUM(launched));
    metric(f, "stage_speculative_won", "Backup copies that committed first.", lb, (double)SUM(won));
    metric(f, "stage_bad_records", "Malformed input records set aside.", lb,
           (double)SUM(bad_records));
    static const struct {
        const char *name, *help;
        size_t off;
        bool dbl;
    } per_rank[] = {
        {"rank_peak_rss_bytes", "Peak resident set size.", offsetof(mrf__rank_fig, peak_rss), 0},
        {"rank_map_seconds", "Map phase wall time.", offsetof(mrf__rank_fig, map_s), 1},
        {"rank_records_mapped", "Input records this rank mapped.",
         offsetof(mrf__rank_fig, records_mapped), 0},
        {"rank_reduce_input_bytes", "Record bytes this rank received to reduce.",
         offsetof(mrf__rank_fig, red_in_bytes), 0},
        {"rank_reduce_cpu_seconds", "CPU time combining received records and reducing.",
         offsetof(mrf__rank_fig, reduce_cpu_s), 1},
    };
    for (size_t m = 0; m < sizeof per_rank / sizeof per_rank[0]; m++) {
        fprintf(f, "# HELP mrflow_%s %s\n# TYPE mrflow_%s gauge\n", per_rank[m].name,
                per_rank[m].help, per_rank[m].name);
        for (size_t i = 0; i < P; i++) {
            const char *p = (const char *)&r->rk[i] + per_rank[m].off;
            double v = per_rank[m].dbl ? *(const double *)p : (double)*(const uint64_t *)p;
            fprintf(f, "mrflow_%s{job=\"%s\",stage=\"0\",rank=\"%zu\"} %.17g\n", per_rank[m].name,
                    job, i, v);
        }
    }
    mrf__free(in_b);
    return finish_file(f, tmp, path);
}

/* ------------------------------------------------------------- progress -- */

/* Under mpirun or srun a rank's stderr is a pipe to the launcher even when
 * the user sits at a terminal; auto then writes to the terminal itself
 * (/dev/tty), which the rank shares when it runs on the launching node. */
static bool launched(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") ||
           getenv("SLURM_PROCID");
}

void mrf__progress_init(mrf__progress *p, int mode, double every, bool rank0)
{
    memset(p, 0, sizeof *p);
    p->out = stderr;
    p->tty = isatty(STDERR_FILENO);
    if (rank0 && mode == -1 && !p->tty && launched()) {
        FILE *t = fopen("/dev/tty", "w");
        if (t) {
            p->out = t;
            p->tty = true;
        }
    }
    p->on = rank0 && (mode == 1 || (mode == -1 && p->tty));
    p->every = p->tty ? 0.2 : every;
    p->t0 = p->last = MPI_Wtime();
}

void mrf__progress_end(mrf__progress *p)
{
    mrf__progress_done(p);
    if (p->out && p->out != stderr)
        fclose(p->out);
    p->out = NULL;
    p->on = false;
}

static void progress_line(mrf__progress *p, const char *text)
{
    if (p->tty) {
        int n = (int)strlen(text);
        fprintf(p->out, "\r%s%*s", text, p->width > n ? p->width - n : 0, "");
        p->width = n;
    } else {
        fprintf(p->out, "mrflow: progress: %s\n", text);
    }
    fflush(p->out);
}

/* A line is due every `every` seconds, and at the first call of a phase. */
static bool progress_due(mrf__progress *p, int phase)
{
    if (!p->on)
        return false;
    double now = MPI_Wtime();
    if (now - p->last < p->every && phase == p->phase)
        return false;
    p->last = now;
    p->phase = phase;
    return true;
}

void mrf__progress_map(mrf__progress *p, uint64_t done, uint64_t total, uint64_t tasks,
                       uint64_t ntasks, double map_t0)
{
    if (!progress_due(p, 1))
        return;
    double el = MPI_Wtime() - map_t0, rate = el > 0 ? (double)done / el : 0;
    char eta[32] = "-";
    if (rate > 0 && done < total)
        snprintf(eta, sizeof eta, "%.0f s", (double)(total - done) / rate);
    char line[256];
    snprintf(line, sizeof line,
             "map %3.0f%% of %.1f MiB (%llu/%llu tasks), %.1f MB/s, ETA %s, %.0f s elapsed",
             total ? 100.0 * (double)done / (double)total : 100.0, (double)total / 1048576.0,
             (unsigned long long)tasks, (unsigned long long)ntasks, rate / 1e6, eta,
             MPI_Wtime() - p->t0);
    progress_line(p, line);
}

void mrf__progress_shuffle(mrf__progress *p, unsigned round, unsigned rounds, uint64_t bytes,
                           uint64_t total)
{
    if (!progress_due(p, 2))
        return;
    char line[256];
    snprintf(line, sizeof line,
             "shuffle round %u/%u, %.1f of %.1f MiB sent (rank 0), %.0f s elapsed", round,
             rounds < round ? round : rounds, (double)bytes / 1048576.0, (double)total / 1048576.0,
             MPI_Wtime() - p->t0);
    progress_line(p, line);
}

void mrf__progress_done(mrf__progress *p)
{
    if (p->on && p->tty && p->width) {
        fprintf(p->out, "\r%*s\r", p->width, "");
        fflush(p->out);
        p->width = 0;
    }
}
