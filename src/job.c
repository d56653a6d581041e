/*
 * job.c -- the stage driver: one stage's phases in order, each from its own
 * module (jobsample.c, jobmap.c, jobshuffle.c, jobreduce.c, jobreport.c,
 * jobckpt.c; they do not call back, see stage.h), the budget, the task
 * plan, the partitioner, checkpoints between map rounds, and the commit.
 * driver.c runs a job's stages through mrf__stage_run; the public calls of
 * a job's callbacks (mrf_emit, mrf_reject, ...) are here too.
 *
 * One stage, every rank in lock step:
 *
 *   plan (rank 0, Bcast) -> output_begin -> [sample -> splitters] -> map
 *     -> Allreduce(bytes per bucket) -> pack buckets onto ranks
 *     -> scatter records by destination -> shuffle (rounds)
 *     -> [combine] -> sort -> reduce -> write part -> commit (rank 0)
 *
 * Every phase that can fail on one rank ends with an MPI_Allreduce of the
 * status (MIN of the negative codes), so all ranks take the same branch and
 * no rank waits in a collective that another has abandoned.
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

int mrf_emit(mrf_emitter *out, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!out)
        return MRF_EINVAL;
    if (out->rc)
        return out->rc;
    if ((klen && !key) || (vlen && !val))
        return out->rc = mrf__fail(MRF_EINVAL, "mrf_emit: NULL key or value with a length");
    return out->rc = out->fn(out, key, klen, val, vlen);
}

int mrf_stage_add(mrf_emitter *out, unsigned slot, double v)
{
    if (!out || !out->add || slot >= MRF_STAGE_SLOTS)
        return MRF_EINVAL;
    out->add[slot] += v;
    return MRF_OK;
}

double mrf_stage_sum(const mrf_emitter *out, unsigned slot)
{
    return out && out->prev && slot < MRF_STAGE_SLOTS ? out->prev[slot] : 0.0;
}

unsigned mrf_stage_run(const mrf_emitter *out)
{
    return out ? out->run : 0;
}

int mrf_reject(mrf_emitter *out, const char *reason)
{
    if (!out || !out->reject)
        return MRF_EINVAL;
    int rc = out->reject(out, reason);
    if (rc && out->rc == MRF_OK)
        out->rc = rc;
    return rc;
}

int mrf_fail(mrf_emitter *out, const char *reason)
{
    int rc = mrf__fail(MRF_EINVAL, "the job failed: %s", reason ? reason : "(no reason given)");
    if (out && out->rc == MRF_OK)
        out->rc = rc;
    return rc;
}

int mrf_fail_input(mrf_emitter *out, const char *reason)
{
    int rc = mrf__fail(MRF_EINPUT, "%s", reason ? reason : "the input does not fit the job");
    if (out && out->rc == MRF_OK)
        out->rc = rc;
    return rc;
}

/* --------------------------------------------------------------- budget -- */

/* Bytes of memory this process may use: RAM, or less under a cgroup limit
 * (Slurm's task/cgroup plugin, containers). */
static uint64_t node_memory(void)
{
    uint64_t total = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
                total = (uint64_t)kb * 1024;
        fclose(f);
    }
    if (!total) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        total = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : (8ull << 30);
    }
    static const char *limits[] = {"/sys/fs/cgroup/memory.max",
                                   "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        unsigned long long lim;
        if ((f = fopen(limits[i], "r"))) {
            if (fscanf(f, "%llu", &lim) == 1 && lim > 0 && lim < total)
                total = lim;
            fclose(f);
        }
    }
    return total;
}

/* The per-rank budget and the shares carved from it (docs/operations.md, "Memory, spill and
 * compression"): map arena 1/4 and its spill index (8 bytes a record) 1/8; combining table slots
 * 1/8 and its side arena 1/8; a task's input <= 1/8; shuffle rounds: round_bytes <= 1/16, four such
 * buffers; reducing side: what is left (records and their sort index, half each); merge: a quarter,
 * in 128 KiB per open run. */
static int set_budget(stage *s)
{
    uint64_t b = s->opt->memory;
    if (!b) {
        MPI_Comm local;
        int nlocal = 1;
        if (MPI_Comm_split_type(s->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
            MPI_SUCCESS) {
            MPI_Comm_size(local, &nlocal);
            MPI_Comm_free(&local);
        }
        b = node_memory() / 2 / (uint64_t)nlocal;
        if (b > (64ull << 30))
            b = 64ull << 30;
        if (b < MRF__MIN_MEMORY)
            b = MRF__MIN_MEMORY;
    }
    s->budget = b;
    /* a combining job keeps its map output in the table: the table gets
     * the arena's room (slots 1/4, arena 1/8); other jobs the reverse */
    s->map_cap = (size_t)(s->mapc ? b / 8 : b / 4);
    s->map_rec_cap = (size_t)(b / 64);
    s->big_cap = (size_t)(b / 8);
    s->round_bytes = s->opt->round_bytes < b / 16 ? s->opt->round_bytes : b / 16;
    if (s->opt->task_size_set && s->opt->task_size > b / 4)
        return s->rank == 0
                   ? mrf__fail(MRF_EUSAGE,
                               "--task-size %llu is more than a quarter of --memory "
                               "%llu: lower it or raise --memory",
                               (unsigned long long)s->opt->task_size, (unsigned long long)b)
                   : MRF_EUSAGE;
    mrf__log(MRF_LOG_DEBUG, "memory budget %llu bytes%s", (unsigned long long)b,
             s->opt->memory ? "" : " (half the node's memory shared among its ranks)");
    return MRF_OK;
}

/* ------------------------------------------------------------- planning -- */

/* What a checkpoint's map output depends on in the input: every file's
 * name, size and modification time, and the tasks cut from them. */
static uint64_t inputs_fingerprint(const mrf__plan *p)
{
    uint64_t h = mrf__checksum(&p->n_tasks, sizeof p->n_tasks);
    for (size_t f = 0; f < p->n_files; f++) {
        struct stat st;
        uint64_t v[3] = {p->sizes[f], 0, 0};
        if (stat(p->paths[f], &st) == 0) {
            v[1] = (uint64_t)st.st_mtim.tv_sec;
            v[2] = (uint64_t)st.st_mtim.tv_nsec;
        }
        h ^= mrf__checksum(p->paths[f], strlen(p->paths[f])) * 0x9e3779b97f4a7c15ull;
        h = (h << 7 | h >> 57) ^ mrf__checksum(v, sizeof v);
    }
    for (size_t t = 0; t < p->n_tasks; t++) {
        const mrf__task *k = &p->tasks[t];
        uint64_t v[3] = {k->file, k->off, k->len}, c[3] = {k->codec, k->coff, k->clen};
        h = (h << 5 | h >> 59) ^ mrf__checksum(v, sizeof v);
        if (k->codec != MRF__CODEC_NONE) /* (plain tasks: as before compressed input) */
            h = (h << 5 | h >> 59) ^ mrf__checksum(c, sizeof c);
    }
    return h;
}

/* --task-size, or by default about 8 tasks per rank of the input's bytes,
 * so static dealing balances, within [1M, 64M] and 1/8 of the budget (a
 * task's input is read whole). */
static uint64_t default_task_size(const stage *s, uint64_t bytes)
{
    if (s->opt->task_size_set)
        return s->opt->task_size;
    uint64_t task_size = bytes / ((uint64_t)s->size * 8);
    if (task_size < (1u << 20))
        task_size = 1u << 20;
    if (task_size > s->opt->task_size)
        task_size = s->opt->task_size;
    if (task_size > s->budget / 8)
        task_size = s->budget / 8;
    return task_size;
}

static int plan_and_share(stage *s)
{
    int rc = MRF_OK;
    char *buf = NULL;
    size_t len = 0;
    char err[MRF_ERRLEN] = "";
    if (s->rank == 0) {
        const mrf_job_spec *spec = s->spec;
        rc = mrf__plan_files(s->opt->inputs, s->opt->n_inputs, &s->plan, err, sizeof err);
        bool resumed_size = s->ckr && !s->opt->task_size_set && s->ckmeta.task_size;
        uint64_t task_size = default_task_size(s, s->plan.total_bytes);
        if (resumed_size)
            task_size = s->ckmeta.task_size; /* resuming: the same tasks as before */
        uint64_t file_bytes = s->plan.total_bytes;
        if (rc == MRF_OK)
            rc = mrf__plan_tasks(&s->plan, spec->input, spec->record_size, task_size, err,
                                 sizeof err);
        /* compressed files: the default size from their decompressed bytes */
        if (rc == MRF_OK && !resumed_size && s->plan.total_bytes != file_bytes &&
            default_task_size(s, s->plan.total_bytes) != task_size) {
            task_size = default_task_size(s, s->plan.total_bytes);
            s->plan.n_tasks = 0;
            rc = mrf__plan_tasks(&s->plan, spec->input, spec->record_size, task_size, err,
                                 sizeof err);
        }
        s->task_size = task_size;
        if (rc == MRF_OK)
            s->inputs_fp = inputs_fingerprint(&s->plan);
        if (rc == MRF_OK)
            rc = mrf__plan_pack(&s->plan, &buf, &len);
        if (rc)
            mrf__fail(rc, "%s", err[0] ? err : "out of memory planning input");
    }
    int64_t hdr[4] = {rc, (int64_t)len, (int64_t)s->inputs_fp, (int64_t)s->task_size};
    if (MPI_Bcast(hdr, 4, MPI_INT64_T, 0, s->comm) != MPI_SUCCESS) {
        mrf__free(buf);
        return MRF_EMPI;
    }
    if (hdr[0] != MRF_OK) {
        mrf__free(buf);
        return (int)hdr[0];
    }
    s->inputs_fp = (uint64_t)hdr[2];
    s->task_size = (uint64_t)hdr[3];
    if (hdr[1] > INT_MAX) {
        mrf__free(buf);
        return s->rank == 0 ? mrf__fail(MRF_EINPUT, "too many input files and tasks") : MRF_EINPUT;
    }
    if (s->rank != 0 && !(buf = mrf__malloc((size_t)hdr[1] + 1)))
        MPI_Abort(s->comm, 1); /* cannot join the Bcast below without a buffer */
    if (MPI_Bcast(buf, (int)hdr[1], MPI_BYTE, 0, s->comm) != MPI_SUCCESS) {
        mrf__free(buf);
        return MRF_EMPI;
    }
    if (s->rank != 0)
        rc = mrf__plan_unpack(buf, (size_t)hdr[1], &s->plan);
    mrf__free(buf);
    /* a dataset's element size, which every dataset of the job shares */
    s->rec_size = s->spec->input != MRF_INPUT_DATASET ? s->spec->record_size
                  : s->plan.n_tasks                   ? (size_t)s->plan.tasks[0].clen
                                                      : 0;
    if (rc)
        mrf__fail(rc, "corrupt task plan received from rank 0");
    return mrf__st_agree(s, rc);
}

/* ---------------------------------------------------------------- stage -- */

/* The map phase: rounds of the scheduler over the tasks left, with a
 * checkpoint between rounds (rank 0 ends a round when one is due, or on a
 * preemption signal, which then stops the job with the checkpoint taken). */
static int map_phase(stage *s)
{
    bool more = true;
    int rc = MRF_OK;
    mrf__st_map_begin(s);
    while (rc == MRF_OK && more) {
        rc = mrf__st_map_round(s, &more);
        if (rc == MRF_OK && more && (rc = mrf__st_take_checkpoint(s, "map")) == MRF_OK &&
            !s->preempt) { /* a signal during that checkpoint: it holds what is done */
            int pre = mrf__preempted() != 0;
            MPI_Allreduce(MPI_IN_PLACE, &pre, 1, MPI_INT, MPI_MAX, s->comm);
            s->preempt = pre;
        }
        if (rc == MRF_OK && more && s->preempt)
            rc = MRF__PREEMPTED;
    }
    return mrf__st_map_end(s, rc);
}

static void make_run_id(stage *s)
{
    if (s->rank == 0) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
        struct timespec tv;
        clock_gettime(CLOCK_REALTIME, &tv);
        snprintf(s->run_id, sizeof s->run_id, "%s-%05x%04x", ts, (unsigned)getpid() & 0xfffff,
                 (unsigned)(tv.tv_nsec / 1000) & 0xffff);
    }
    MPI_Bcast(s->run_id, sizeof s->run_id, MPI_CHAR, 0, s->comm);
}

/* The partitioner: --partitioner, else the job's (skew for hash jobs); and
 * whether a key's values may be split over ranks, and why not. */
static int choose_partitioner(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int p = s->opt->partitioner;
    /* buckets are what the packing deals: with a few per rank it cannot
     * balance (and past the bucket count ranks reduce nothing).  The
     * default is not raised with the rank count by itself: a checkpoint
     * resumes only with the --buckets it was written with. */
    static bool warned; /* once per process (a multi-stage job runs many stages) */
    if (s->rank == 0 && !warned && (uint64_t)s->opt->buckets < 8 * (uint64_t)s->size) {
        warned = true;
        mrf__log(MRF_LOG_WARN,
                 "--buckets %u for %d ranks is fewer than 8 per rank: the reduce cannot be "
                 "balanced%s; give --buckets %llu or more (and the same value when resuming)",
                 s->opt->buckets, s->size,
                 s->opt->buckets < (uint32_t)s->size ? " and some ranks get no keys" : "",
                 16ull * (unsigned long long)s->size);
    }
    if (p == MRF__PART_DEFAULT)
        p = spec->partitioning == MRF_PART_RANGE ? MRF__PART_RANGE : MRF__PART_SKEW;
    if (spec->partitioning == MRF_PART_RANGE && p != MRF__PART_RANGE) {
        if (s->rank == 0)
            mrf__log(MRF_LOG_ERROR,
                     "job '%s' writes globally ordered output: it needs --partitioner range "
                     "(or none)",
                     spec->name);
        return MRF_EUSAGE;
    }
    if (spec->input == MRF__INPUT_KV && p == MRF__PART_SKEW)
        p = MRF__PART_HASH; /* a later stage: no sampling of intermediate data (yet) */
    s->part = p;
    s->range = p == MRF__PART_RANGE;
    s->mapc = spec->combine && s->opt->map_combine;
    bool per_value = (spec->flags & MRF_PER_VALUE) != 0;
    if (s->range) {
        s->split_ok = per_value;
        s->split_why = per_value ? "ties spread over adjacent buckets (the job reduces per value)"
                                 : "ties kept whole: the job reduces a key's values together";
    } else {
        s->split_ok = spec->combine || per_value;
        s->split_why = spec->combine ? "split over ranks, merged with the job's combiner"
                       : per_value   ? "split over ranks (the job reduces per value)"
                                     : "not split: the job has no combiner, so a key's values "
                                       "must all reach one reduce call";
    }
    return MRF_OK;
}

/* DIR/_STAGE of an intermediate stage: what the next run needs to know of
 * it, and what a resumed job reads instead of running it again. */
static int write_stage_file(stage *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/_STAGE", s->tmpdir);
    FILE *f = fopen(path, "w");
    if (!f)
        return mrf__fail(MRF_EIO, "cannot create '%s': %s", path, strerror(errno));
    fprintf(f, "mrflow-stage 1\njob %s\nrun %u\n", s->spec->name, s->run_index);
    for (int i = 0; i < MRF_STAGE_SLOTS; i++)
        fprintf(f, "sum%d %a\n", i, s->sums[i]);
    int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    if (fclose(f) != 0 || bad)
        return mrf__fail(MRF_EIO, "writing '%s' failed", path);
    return MRF_OK;
}

static int run_stage(stage *s)
{
    double t0 = MPI_Wtime(), t;
    int rc;
    make_run_id(s);
    mrf__log_context(s->run_id, 0);
    /* before anything big is allocated, so first touch is on our NUMA node */
    mrf__topo_place(s->comm, s->opt->bind, true, &s->place);
    mrf__log(MRF_LOG_DEBUG, "placement: local rank %d of %d, cpuset %s, NUMA %s, bound by %s%s%s",
             s->place.local_rank, s->place.local_size, s->place.cpuset, s->place.numa,
             mrf__bind_how_name(s->place.how), s->place.note[0] ? ": " : "", s->place.note);
    mrf__progress_init(&s->prog, s->opt->progress, s->opt->progress_every, s->rank == 0);
    if ((rc = choose_partitioner(s)))
        goto out;
    if ((rc = mrf__st_agree(s, set_budget(s))))
        goto out;
    s->spec_fp = mrf__st_spec_fingerprint(s->spec);
    s->ckpt = s->opt->ckpt_dir != NULL;
    if (s->ckpt &&
        ((rc = mrf__st_ckpt_begin(s)) || (rc = mrf__st_agree(s, mrf__signals_install()))))
        goto out;
    if ((rc = plan_and_share(s)))
        goto out;
    rc = mrf__spill_open(&s->spill, mrf__spill_dir(s->opt->spill_dir),
                         s->opt->compress == MRF__COMPRESS_OFF ? 0 : s->opt->compress_level,
                         s->opt->compress == MRF__COMPRESS_AUTO,
                         s->opt->corrupt_spill_rank == s->rank);
    s->spill_open = rc == MRF_OK;
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    if ((rc = mrf__output_begin(s->comm, s->opt->output, s->opt->overwrite, s->run_id, &s->tmpdir)))
        goto out;
    t = MPI_Wtime();
    bool resumed = false;
    if (s->ckpt && (rc = mrf__st_resume(s, &resumed)))
        goto out_with_tmpdir;
    if (!resumed) {
        s->nb_base = s->nb = s->opt->buckets;
        if (s->range && (rc = mrf__st_choose_splitters(s)))
            goto out_with_tmpdir;
        if (s->part == MRF__PART_SKEW && (rc = mrf__st_find_heavy_keys(s)))
            goto out_with_tmpdir;
        if (s->range)
            s->nb_base = s->nb;
        s->nb = s->nb_base + s->hv.nsub;
        if ((rc = mrf__st_agree(s, mrf__st_map_setup(s))))
            goto out_with_tmpdir;
    }
    s->t_decide = MPI_Wtime() - t - s->t_resume;

    if (s->direct) { /* resumed after the shuffle: the reduce input is back */
        s->kv = s->rkv;
        memset(&s->rkv, 0, sizeof s->rkv);
        s->combined = false;
        s->shuffled_ckpt = true;
        goto reduce_phase;
    }
    t = MPI_Wtime();
    double cpu0 = mrf__st_cpu_now();
    rc = map_phase(s);
    s->prof.map_cpu += mrf__st_cpu_now() - cpu0;
    s->t_map = MPI_Wtime() - t;
    if (s->kv.len)
        mrf__topo_where(s->kv.base, s->kv.len, s->arena_numa, sizeof s->arena_numa);
    else
        mrf__topo_where(s->ct.slots, (s->ct.mask + 1) * sizeof *s->ct.slots, s->arena_numa,
                        sizeof s->arena_numa);
    mrf__log(MRF_LOG_DEBUG, "after map: %zu bytes in use, peak %zu", mrf__mem_in_use(),
             mrf__mem_peak());
    if ((rc = mrf__st_agree(s, rc)))
        goto out_with_tmpdir;
    /* the checkpoint after the map (unless the one resumed from was it) */
    if (s->ckpt && !(resumed && s->resumed_tasks == s->plan.n_tasks) &&
        (rc = mrf__st_take_checkpoint(s, "mapped")))
        goto out_with_tmpdir;
    if (s->ckpt && !s->preempt) { /* a signal during that checkpoint: it holds the map */
        int pre = mrf__preempted() != 0;
        MPI_Allreduce(MPI_IN_PLACE, &pre, 1, MPI_INT, MPI_MAX, s->comm);
        s->preempt = pre;
    }
    if (s->preempt) {
        rc = MRF__PREEMPTED;
        goto out_with_tmpdir;
    }
    rc = mrf__st_check_bad_records(s);
    int crc = mrf__badrec_close(&s->bad); /* fsynced before the commit */
    if ((rc = mrf__st_agree(s, rc ? rc : crc)))
        goto out_with_tmpdir;

    t = MPI_Wtime();
    cpu0 = mrf__st_cpu_now();
    rc = mrf__st_exchange(s);
    s->prof.sh_cpu += mrf__st_cpu_now() - cpu0;
    s->t_shuffle = MPI_Wtime() - t;
    mrf__log(MRF_LOG_DEBUG,
             "after shuffle: %zu bytes in use, peak %zu (receive arena %zu, spill buffers "
             "%zu+%zu, %zu sorted runs)",
             mrf__mem_in_use(), mrf__mem_peak(), s->kv.cap, s->spill.rd_cap, s->spill.enc_cap,
             s->n_runs);
    if ((rc = mrf__st_agree(s, rc)))
        goto out_with_tmpdir;
    /* the checkpoint after the shuffle, when --checkpoint-every has passed
     * since the last one (rank 0's clock) */
    if (s->ckpt && s->opt->ckpt_every > 0) {
        int due = MPI_Wtime() - s->ckpt_last >= s->opt->ckpt_every;
        MPI_Bcast(&due, 1, MPI_INT, 0, s->comm);
        if (due && (rc = mrf__st_take_checkpoint_shuffled(s)))
            goto out_with_tmpdir;
    }

reduce_phase:
    mrf__progress_done(&s->prog);
    t = MPI_Wtime();
    double c0 = mrf__st_cpu_now();
    if (s->opt->crash_rank == s->rank && s->opt->crash_phase == MRF__PHASE_REDUCE) {
        mrf__log(MRF_LOG_WARN, "--fault crash: killing myself in the reduce phase");
        raise(SIGKILL);
    }
    mrf__st_test_pause(s, "reduce");
    if (s->red_continue && (rc = mrf__st_agree(s, mrf__st_continue_reduce(s))))
        goto out_with_tmpdir;
    rc = mrf__st_reduce(s);
    s->cpu_reduce += mrf__st_cpu_now() - c0;
    s->prof.red_cpu += mrf__st_cpu_now() - c0;
    s->t_reduce = MPI_Wtime() - t;
    mrf__log(MRF_LOG_DEBUG, "after reduce: %zu bytes in use, peak %zu", mrf__mem_in_use(),
             mrf__mem_peak());
    /* stopped by a signal: the reduce input is not written (that would make
     * the stop as long as the data): the checkpoint after the map (or the
     * one resumed from) holds it, or, where none was worth taking, the
     * rerun maps again.  The parts written so far stay and an epoch records
     * where each stands: a resume on as many ranks goes on from there. */
    rc = mrf__st_agree(s, rc);
    if (rc == MRF__PREEMPTED && s->ckpt)
        rc = mrf__st_take_checkpoint_reducing(s);
    if (rc)
        goto out_with_tmpdir;
    /* the sums of mrf_stage_add, job-wide; kept with an intermediate stage */
    MPI_Allreduce(MPI_IN_PLACE, s->sums, MRF_STAGE_SLOTS, MPI_DOUBLE, MPI_SUM, s->comm);
    if (s->opt->kv_output && (rc = mrf__st_agree(s, s->rank == 0 ? write_stage_file(s) : MRF_OK)))
        goto out_with_tmpdir;
    if (s->opt->format_hdf5) {
        s->h5.job = s->spec->name;
        s->h5.run_id = s->run_id;
        s->h5.text_format = s->spec->output == MRF_OUTPUT_RAW ? "raw" : "text";
        s->h5.key_type = s->spec->key_type;
        s->h5.value_type = s->spec->value_type;
        s->h5.job_fp = s->spec_fp;
        t = MPI_Wtime();
        rc = mrf__output_h5(s->comm, s->tmpdir, &s->h5, &s->bytes_out);
        s->t_reduce += MPI_Wtime() - t;
        if ((rc = mrf__st_agree(s, rc)))
            goto out_with_tmpdir;
    }

    if ((rc = mrf__st_write_report(s, MPI_Wtime() - t0, MRF_OK)))
        goto out_with_tmpdir;
    if (s->rank == 0)
        rc = mrf__output_commit(s->tmpdir, s->opt->output, s->opt->overwrite, s->run_id);
    MPI_Bcast(&rc, 1, MPI_INT, 0, s->comm);
    if (rc)
        goto out_with_tmpdir;
    if (s->ckpt && s->rank == 0) /* they could only resume a finished job */
        mrf__ckpt_remove_all(s->opt->ckpt_dir);
    mrf__st_summary(s, MPI_Wtime() - t0);
    goto out;

out_with_tmpdir:
    if (s->opt->report || s->opt->metrics)
        mrf__st_write_report(s, MPI_Wtime() - t0, rc); /* what is known of the failed run */
    if (s->rank == 0 && rc == MRF_EINPUT) {            /* bad input: its one line said it all */
        mrf__output_discard(s->tmpdir);
    } else if (s->rank == 0 && rc == MRF__PREEMPTED) {
        if (!s->red_saved &&
            !(s->red_continue && s->red_skip)) /* else a checkpoint names its parts */
            mrf__output_discard(s->tmpdir);
        else
            mrf__output_mark_stopped(s->tmpdir, s->opt->ckpt_dir);
        if (s->ckst.written || s->n_chain || s->resumed_epoch || s->shuffled_ckpt)
            mrf__log(MRF_LOG_WARN,
                     "job '%s' stopped on signal %d: %s in '%s'; run the same command again "
                     "to resume (exit status 75)",
                     s->spec->name, mrf__preempted(),
                     s->red_saved      ? "checkpointed, with the reduce's progress,"
                     : s->ckst.written ? "checkpointed"
                                       : "no new checkpoint was needed, the newest valid one is",
                     s->opt->ckpt_dir);
        else
            mrf__log(MRF_LOG_WARN,
                     "job '%s' stopped on signal %d: no checkpoint was worth writing (doing "
                     "the work again costs less); run the same command again: it does this "
                     "stage's work over (exit status 75)",
                     s->spec->name, mrf__preempted());
    } else if (s->rank == 0) {
        mrf__output_discard(s->tmpdir);
        mrf__log(MRF_LOG_ERROR, "job '%s' failed; no output was written to '%s'", s->spec->name,
                 s->opt->output);
    }
out:
    if (s->out) { /* stopped in the reduce, its part not kept */
        mrf__writer_abort(s->out);
        s->out = NULL;
    }
    mrf__free(s->red_tmpdir);
    s->red_tmpdir = NULL;
    mrf__ckpt_close(s->ckr);
    s->ckr = NULL;
    mrf__ckpt_writer_destroy(s->ckw);
    s->ckw = NULL;
    mrf__free(s->done);
    s->done = NULL;
    mrf__free(s->chain);
    s->chain = NULL;
    s->n_chain = s->chain_cap = 0;
    mrf__badrec_close(&s->bad);
    mrf__progress_end(&s->prog);
    mrf__free(s->tmpdir);
    s->tmpdir = NULL;
    if (s->spill_open)
        mrf__spill_close(&s->spill);
    s->spill_open = false;
    for (size_t i = 0; i < s->n_bruns; i++)
        mrf__free(s->bruns[i].ents);
    mrf__free(s->bruns);
    s->bruns = NULL;
    s->n_bruns = 0;
    mrf__free(s->runs);
    s->runs = NULL;
    mrf__free(s->owner);
    mrf__free(s->order);
    mrf__free(s->dstart);
    mrf__free(s->cur);
    mrf__free(s->sdisp);
    mrf__free(s->scount);
    mrf__free(s->cuts);
    mrf__free(s->cstart);
    mrf__free(s->own_bkt);
    s->own_bkt = NULL;
    s->cuts = NULL;
    s->cstart = NULL;
    mrf__big_free(s->send, s->send_bytes);
    mrf__big_free(s->spare, s->spare_bytes);
    s->spare = NULL;
    mrf__big_free(s->scratch, s->scratch_cap);
    s->owner = NULL;
    s->order = NULL;
    s->dstart = NULL;
    s->cur = NULL;
    s->sdisp = NULL;
    s->scount = NULL;
    s->send = NULL;
    s->scratch = NULL;
    mrf__kvbuf_destroy(&s->rkv);
    mrf__kvbuf_destroy(&s->kv);
    mrf__ctable_destroy(&s->ct);
    mrf__ctable_destroy(&s->tt); /* (map_tasks did, unless a resume skipped it) */
    mrf__kvbuf_destroy(&s->tkv);
    mrf__free(s->bucket_bytes);
    s->bucket_bytes = NULL;
    mrf__free(s->pack_bytes);
    s->pack_bytes = NULL;
    mrf__splitters_free(&s->sp);
    mrf__heavy_free(&s->hv);
    mrf__ctable_destroy(&s->ht);
    mrf__free(s->before);
    mrf__free(s->after);
    s->before = s->after = NULL;
    mrf__plan_free(&s->plan);
    mrf__dtype_free(s->dtype);
    return rc;
}

/* One stage over o's inputs into o's output (run: which run of an
 * iterative stage; prev: the previous run's sums; sums: this run's,
 * job-wide).  Collective. */
int mrf__stage_run(MPI_Comm comm, const mrf__options *o, const mrf_job_spec *spec, unsigned run,
                   const double *prev, double *sums, mrf__stage_fig *fig)
{
    stage s = {.spec = spec, .opt = o, .run_index = run};
    memcpy(s.prev_sums, prev, sizeof s.prev_sums);
    MPI_Comm_dup(comm, &s.comm);
    MPI_Comm_rank(s.comm, &s.rank);
    MPI_Comm_size(s.comm, &s.size);
    double t0 = MPI_Wtime();
    int rc = run_stage(&s);
    memcpy(sums, s.sums, sizeof s.sums);
    if (fig) { /* job-wide figures of the run, for a later run's report */
        uint64_t mine[3] = {s.records_in, s.records_out, s.shuf.bytes_sent}, all[3];
        double t = MPI_Wtime() - t0;
        MPI_Allreduce(mine, all, 3, MPI_UINT64_T, MPI_SUM, s.comm);
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, s.comm);
        memset(fig, 0, sizeof *fig);
        snprintf(fig->name, sizeof fig->name, "%s", spec->name);
        fig->elapsed_s = t;
        fig->records_in = all[0];
        fig->records_out = all[1];
        fig->shuffle_bytes = all[2];
    }
    MPI_Comm_free(&s.comm);
    mrf__topo_close();
    return rc;
}
