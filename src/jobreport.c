/*
 * jobreport.c -- what a stage tells its user: the run summary on stderr,
 * the partitioning log lines and the run report (_REPORT.json, metrics).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "keyhash.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "stage.h"

/* -------------------------------------------------------------- summary -- */

static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}

enum { SST_RUN, SST_STOLEN, SST_LAUNCHED, SST_WON, SST_DISCARDED, SST_N };

enum { X_MAP_SPILL, X_RED_SPILL, X_DISK, X_RUNS, X_WIRE, X_PASSES, X_BLK, X_ZBLK, X_N };

void mrf__st_summary(stage *s, double elapsed)
{
    uint64_t sum[5 + SST_N + X_N] = {
        s->my_input_bytes,   s->records_in,    s->records_out,    s->bytes_out,
        s->shuf.bytes_sent,  s->sst.tasks_run, s->sst.stolen,     s->sst.backups_launched,
        s->sst.backups_won,  s->sst.discarded, s->map_spilled,    s->red_spilled,
        s->spill.bytes_disk, s->spill.runs,    s->shuf.wire_sent, s->merge_passes,
        s->spill.blocks,     s->spill.zblocks};
    uint64_t max[4] = {peak_rss_bytes(), s->shuf.rounds, mrf__mem_peak(), s->budget};
    uint64_t gsum[5 + SST_N + X_N], gmax[4];
    MPI_Reduce(sum, gsum, 5 + SST_N + X_N, MPI_UINT64_T, MPI_SUM, 0, s->comm);
    MPI_Reduce(max, gmax, 4, MPI_UINT64_T, MPI_MAX, 0, s->comm);
    const uint64_t *x = gsum + 5 + SST_N;
    if (s->rank == 0 && !s->opt->quiet) {
        double mib = 1024.0 * 1024.0;
        fprintf(stderr,
                "mrflow: memory: budget %.1f MiB per rank, engine peak %.1f MiB, peak RSS %.1f "
                "MiB (max over ranks); spilled %.1f MiB from map, %.1f MiB from shuffle, %.1f "
                "MiB on disk in %llu runs (%llu of %llu blocks compressed), %llu merge passes; "
                "shuffle compression %s, %.1f MiB on the wire for %.1f MiB of records, rounds "
                "%.3f s of which MPI %.3f s (rank 0)\n",
                (double)gmax[3] / mib, (double)gmax[2] / mib, (double)gmax[0] / mib,
                (double)x[X_MAP_SPILL] / mib, (double)x[X_RED_SPILL] / mib, (double)x[X_DISK] / mib,
                (unsigned long long)x[X_RUNS], (unsigned long long)x[X_ZBLK],
                (unsigned long long)x[X_BLK], (unsigned long long)x[X_PASSES],
                s->cwhy ? s->cwhy : "off (no shuffle)", (double)x[X_WIRE] / mib,
                (double)gsum[4] / mib, s->t_rounds, s->shuf.t_mpi);
    }
    /* per rank: tasks, stolen, backups launched/won, discarded, histogram */
    enum { W = SST_N + MRF_SCHED_HIST + 3 };
    uint64_t mine[W] = {s->sst.tasks_run, s->sst.stolen, s->sst.backups_launched,
                        s->sst.backups_won, s->sst.discarded};
    memcpy(mine + SST_N, s->sst.hist, sizeof s->sst.hist);
    mine[W - 3] = peak_rss_bytes();
    mine[W - 2] = mrf__mem_peak();
    mine[W - 1] = s->map_spilled + s->red_spilled;
    uint64_t *all = s->rank == 0 ? mrf__calloc((size_t)s->size * W, sizeof *all) : NULL;
    MPI_Gather(mine, W, MPI_UINT64_T, all, s->rank == 0 && all ? W : 0, MPI_UINT64_T, 0, s->comm);
    if (s->rank == 0 && !s->opt->quiet) {
        fprintf(stderr,
                "mrflow: %s done in %.3f s: %llu input bytes (%.1f MB/s), %llu records in, %llu "
                "records out, %llu output bytes; %d ranks, %llu shuffle bytes in %llu rounds, "
                "peak RSS %.1f MiB (max over ranks); map %.3f s, shuffle %.3f s, reduce %.3f s "
                "(rank 0); tasks %llu (%llu stolen), backups %llu launched %llu won, %llu "
                "copies discarded\n",
                s->spec->name, elapsed, (unsigned long long)gsum[0],
                elapsed > 0 ? (double)gsum[0] / elapsed / 1e6 : 0.0, (unsigned long long)gsum[1],
                (unsigned long long)gsum[2], (unsigned long long)gsum[3], s->size,
                (unsigned long long)gsum[4], (unsigned long long)gmax[1],
                (double)gmax[0] / (1024.0 * 1024.0), s->t_map, s->t_shuffle, s->t_reduce,
                (unsigned long long)gsum[5], (unsigned long long)gsum[6],
                (unsigned long long)gsum[7], (unsigned long long)gsum[8],
                (unsigned long long)gsum[9]);
    }
    if (s->rank == 0 && all && s->opt->log_level >= MRF_LOG_INFO) {
        fprintf(stderr, "mrflow: rank  tasks stolen backups won discarded | RSS MiB engine MiB "
                        "spilled MiB | task ms: <1 <2 <4 ... (counts per power of two)\n");
        for (int r = 0; r < s->size; r++) {
            const uint64_t *e = all + (size_t)r * W;
            char hist[256];
            size_t n = 0;
            for (int b = 0; b < MRF_SCHED_HIST && n < sizeof hist; b++)
                n += (size_t)snprintf(hist + n, sizeof hist - n, " %llu",
                                      (unsigned long long)e[SST_N + b]);
            double mib = 1024.0 * 1024.0;
            fprintf(stderr, "mrflow: %4d %6llu %6llu %7llu %3llu %9llu | %7.1f %10.1f %11.1f |%s\n",
                    r, (unsigned long long)e[0], (unsigned long long)e[1], (unsigned long long)e[2],
                    (unsigned long long)e[3], (unsigned long long)e[4], (double)e[W - 3] / mib,
                    (double)e[W - 2] / mib, (double)e[W - 1] / mib, hist);
        }
    }
    mrf__free(all);
}

/* The partitioning figures in one log line (rank 0, info). */
void mrf__st_log_partitioning(const stage *s)
{
    if (s->rank != 0 || s->opt->log_level < MRF_LOG_INFO)
        return;
    double share = 0;
    for (uint32_t i = 0; i < s->hv.n; i++)
        share += s->hv.share[i];
    size_t P = (size_t)s->size;
    double mib = 1024.0 * 1024.0;
    uint64_t bmax = 0, amax = 0, tot = 0;
    for (size_t r = 0; r < P; r++) {
        bmax = s->before[r].bytes > bmax ? s->before[r].bytes : bmax;
        amax = s->after[r].bytes > amax ? s->after[r].bytes : amax;
        tot += s->after[r].bytes;
    }
    static const char *names[] = {"default", "hash", "skew", "range"};
    mrf__log(MRF_LOG_INFO,
             "partitioning: %s, %u buckets + %u heavy-key buckets; %u heavy keys (%.1f%% of the "
             "sampled map output; %s)%s; reduce input per rank planned: largest %.1f MiB of "
             "%.1f MiB mean under plain hashing (imbalance %.3f), %.1f MiB with %s (%.3f); "
             "deciding took %.3f s",
             names[s->part], s->nb_base, s->hv.nsub, s->hv.n, 100 * share, s->split_why,
             s->range && s->sp.tie_runs ? " and range ties" : "", (double)bmax / mib,
             (double)tot / (double)P / mib, mrf__imbalance(&s->before[0].bytes, P, 2),
             (double)amax / mib, names[s->part], mrf__imbalance(&s->after[0].bytes, P, 2),
             s->t_decide);
    for (uint32_t i = 0; i < s->hv.n && i < 5; i++)
        mrf__log(MRF_LOG_INFO, "heavy key %u: '%.*s'%s, %.2f%% of the sample, %u buckets", i,
                 (int)(s->hv.key[i].klen < MRF__HEAVY_NAME ? s->hv.key[i].klen : MRF__HEAVY_NAME),
                 s->hv.key[i].name, s->hv.key[i].klen > MRF__HEAVY_NAME ? "..." : "",
                 100 * s->hv.share[i], s->hv.m[i]);
}

/* Gathers every rank's figures; rank 0 writes the run report (--report
 * FILE, else DIR/_REPORT.json inside the job's temporary directory, so it
 * is committed with the parts) and, with --metrics, the metrics file.  rc
 * is the job's outcome so far: a failed job writes a report only to a
 * --report FILE.  Collective; returns the agreed status of the writing. */
int mrf__st_write_report(stage *s, double elapsed, int rc_job)
{
    mrf__rank_fig me = {
        .map_s = s->t_map,
        .shuffle_s = s->t_shuffle,
        .reduce_s = s->t_reduce,
        .reduce_cpu_s = s->cpu_reduce,
        .prof = s->prof,
        .peak_rss = peak_rss_bytes(),
        .input_bytes = s->my_input_bytes,
        .records_mapped = s->records_in,
        .red_in_bytes = s->red_in_bytes,
        .red_in_recs = s->red_in_recs,
        .records_out = s->records_out,
        .bytes_out = s->bytes_out,
        .spilled = s->map_spilled + s->red_spilled,
        .tasks = s->sst.tasks_run,
        .stolen = s->sst.stolen,
        .launched = s->sst.backups_launched,
        .won = s->sst.backups_won,
        .bad_records = s->bad_records,
    };
    gethostname(me.host, sizeof me.host - 1);
    me.local_rank = s->place.local_rank;
    me.bind_how = s->place.how;
    memcpy(me.cpuset, s->place.cpuset, sizeof me.cpuset);
    memcpy(me.numa, s->place.numa, sizeof me.numa);
    snprintf(me.arena_numa, sizeof me.arena_numa, "%s", s->arena_numa[0] ? s->arena_numa : "-");
    snprintf(me.error, sizeof me.error, "%s", mrf__first_error());
    uint64_t mine[3] = {s->shuf.bytes_sent, s->shuf.wire_sent, s->heavy_partials}, tot[3];
    MPI_Reduce(mine, tot, 3, MPI_UINT64_T, MPI_SUM, 0, s->comm);
    mrf__rank_fig *all = NULL;
    int rc = MRF_OK;
    if (s->rank == 0 && !(all = mrf__calloc((size_t)s->size, sizeof *all)))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the run report");
    /* a failed allocation still takes part: it receives nothing */
    MPI_Gather(&me, (int)sizeof me, MPI_BYTE, all, all ? (int)sizeof me : 0, MPI_BYTE, 0, s->comm);
    if (s->rank == 0 && all) {
        static const char *names[] = {"default", "hash", "skew", "range"};
        mrf__report r = {
            .job = s->spec->name,
            .run_id = s->run_id,
            .status = rc_job == MRF__PREEMPTED ? "checkpointed"
                      : rc_job                 ? "failed"
                                               : "succeeded",
            .error = rc_job ? mrf_strerror(rc_job) : NULL, /* replaced below */
            .exit_status = mrf__exit_status(rc_job),
            .partitioner = names[s->part],
            .split_why = s->split_why,
            .compression = s->cwhy ? s->cwhy : "off (no shuffle)",
            .ranks = s->size,
            .map_combine = s->mapc,
            .elapsed_s = elapsed,
            .decide_s = s->t_decide,
            .buckets = s->nb_base,
            .sub_buckets = s->hv.nsub,
            .tie_keys = s->range ? s->sp.tie_runs : 0,
            .shuffle_raw = tot[0],
            .shuffle_wire = tot[1],
            .heavy_partial_bytes = tot[2],
            .hv = &s->hv,
            .before = s->before,
            .after = s->after,
            .rk = all,
            .ckpt_dir = s->opt->ckpt_dir,
            .ckpt_written = s->ckst.written,
            .ckpt_bytes = s->ckst.bytes,
            .ckpt_raw_bytes = s->ckst.raw_bytes,
            .ckpt_last_epoch = s->ckst.last_epoch,
            .ckpt_s = s->ckst.seconds,
            .ckpt_skipped = s->ckst.skipped,
            .ckpt_skip_work_s = s->ckst.skip_work_s,
            .ckpt_skip_cost_s = s->ckst.skip_cost_s,
            .resumed_epoch = s->resumed_epoch,
            .resumed_tasks = s->resumed_tasks,
            .resume_s = s->t_resume,
            .runs = s->opt->stage_runs,
            .n_runs = s->opt->n_stage_runs,
        };
        for (int i = 0; rc_job && i < s->size; i++)
            if (all[i].error[0]) { /* the lowest rank's first error says what went wrong */
                r.error = all[i].error;
                break;
            }
        size_t n = strlen(s->tmpdir ? s->tmpdir : "") + 16;
        char *path = mrf__malloc(n);
        if (!path) {
            rc = mrf__fail(MRF_ENOMEM, "out of memory for the run report");
        } else if (s->opt->report || (rc_job == MRF_OK && s->tmpdir)) {
            snprintf(path, n, "%s/_REPORT.json", s->tmpdir ? s->tmpdir : "");
            rc = mrf__report_write(s->opt->report ? s->opt->report : path, &r);
        }
        mrf__free(path);
        if (rc == MRF_OK && s->opt->metrics)
            rc = mrf__metrics_write(s->opt->metrics, &r);
    }
    mrf__free(all);
    return mrf__st_agree(s, rc);
}
