/*
 * jobckpt.c -- a stage's checkpoints (docs/operations.md "Checkpoints, preemption and
 * resume"): taking one between map tasks, after the map and after the
 * shuffle; the fingerprints that say whether one may be resumed; opening,
 * verifying and loading the newest valid epoch, with fallback.  The file
 * format and its commit protocol are ckpt.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stage.h"

/* ---------------------------------------------------------- checkpoints -- */

static const char *part_name(int p)
{
    return p == MRF__PART_HASH ? "hash" : p == MRF__PART_SKEW ? "skew" : "range";
}

/* What the job's map output depends on in its definition. */
uint64_t mrf__st_spec_fingerprint(const mrf_job_spec *spec)
{
    char buf[512];
    int n =
        snprintf(buf, sizeof buf, "%s|%d|%zu|%d|%d|%u", spec->name, (int)spec->input,
                 spec->record_size, spec->combine != NULL, (int)spec->partitioning, spec->flags);
    return mrf__checksum(buf, (size_t)(n < 0 ? 0 : n));
}

static void fill_meta(stage *s, mrf__ckpt_meta *m, const char *phase)
{
    memset(m, 0, sizeof *m);
    snprintf(m->job, sizeof m->job, "%s", s->spec->name);
    snprintf(m->version, sizeof m->version, "%s", mrf_version());
    snprintf(m->run_id, sizeof m->run_id, "%s", s->run_id);
    snprintf(m->phase, sizeof m->phase, "%s", phase);
    snprintf(m->partitioner, sizeof m->partitioner, "%s", part_name(s->part));
    m->spec_fp = s->spec_fp;
    m->inputs_fp = s->inputs_fp;
    m->task_size = s->task_size;
    m->tasks = s->plan.n_tasks;
    m->tasks_done = s->n_done;
    m->buckets_opt = s->opt->buckets;
    m->nb = s->nb;
    m->nb_base = s->nb_base;
    m->map_combine = s->opt->map_combine;
    m->epoch = s->epoch;
}

/* This rank's committed dead letters (its _BAD_RECORDS part so far). */
static int my_bad_records(stage *s, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (!s->bad_records)
        return MRF_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/_BAD_RECORDS/part-%05d", s->tmpdir, s->rank);
    FILE *f = fopen(path, "rb");
    if (!f)
        return mrf__fail(MRF_EIO, "checkpoint: cannot read '%s': %s", path, strerror(errno));
    size_t cap = 0;
    char chunk[65536];
    size_t k;
    int rc = MRF_OK;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (*len + k > cap) {
            size_t nc = cap ? cap * 2 : 65536;
            while (nc < *len + k)
                nc *= 2;
            char *nb = mrf__realloc(*buf, nc);
            if (!nb) {
                rc = mrf__fail(MRF_ENOMEM, "out of memory");
                break;
            }
            *buf = nb;
            cap = nc;
        }
        memcpy(*buf + *len, chunk, k);
        *len += k;
    }
    if (ferror(f) && rc == MRF_OK)
        rc = mrf__fail(MRF_EIO, "checkpoint: reading '%s' failed", path);
    fclose(f);
    return rc;
}

/* Puts the records of bucket b held in bucket run r. */
static int put_brun_bucket(stage *s, const mrf__brun *r, uint32_t b, char **raw, size_t *cap)
{
    const mrf__bdir_ent *e = mrf__brun_find(r, b);
    if (!e)
        return MRF_OK;
    int rc = MRF_OK;
    for (uint64_t at = e->off; at < e->off + e->len && rc == MRF_OK;) {
        uint32_t rl, sl;
        uint64_t next;
        if ((rc = mrf__spill_peek(&s->spill, at, &rl, &sl)))
            break;
        if (mrf__big_grow(raw, cap, rl ? rl : 1))
            return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
        if ((rc = mrf__spill_read(&s->spill, at, *raw, &next)))
            break;
        for (size_t o = 0; o < rl && rc == MRF_OK; o += mrf__rec_size(*raw + o))
            rc = mrf__ckpt_put(s->ckw, *raw + o);
        at = next;
    }
    return rc;
}

/* The common end of a checkpoint, once this rank has put its records into
 * s->ckw (rc: how that went): its dead letters and (rank 0) the partition
 * decisions go in, every rank agrees, the epoch is committed, and the
 * writer is freed so its staging buffers (up to 256 MiB) go back to the
 * budget.  n_mem: bytes put from memory, for the log.  Collective. */
static int commit_checkpoint(stage *s, int rc, const char *phase, double t0, double ck_before,
                             size_t n_mem, bool incremental, const char *prog, size_t prog_len)
{
    double t_put = MPI_Wtime();
    char *bad = NULL, *part = NULL;
    size_t bad_len = 0, part_len = 0;
    bool reducing = strcmp(phase, "reducing") == 0; /* (prog: rank 0's only) */
    /* the reduce's progress with no epoch under it: the map is done anew
     * on a resume, so it holds no task, no figures and no dead letters */
    bool alone = reducing && !s->n_chain;
    uint8_t *none = alone ? mrf__calloc(s->done_len ? s->done_len : 1, 1) : NULL;
    if (alone && !none && rc == MRF_OK)
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    if (rc == MRF_OK && !alone)
        rc = my_bad_records(s, &bad, &bad_len);
    if (rc == MRF_OK && s->rank == 0 && mrf__decisions_pack(&s->sp, &s->hv, &part, &part_len))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    mrf__ckpt_meta m;
    fill_meta(s, &m, phase);
    if (alone)
        m.tasks_done = 0;
    /* a combining job's packing weights, job-wide (docs/operations.md): a
     * resume packs the buckets onto ranks as this run would have */
    mrf__bstat *pw = NULL;
    size_t pw_len = s->mapc && !reducing ? s->nb * sizeof *pw : 0;
    if (pw_len && s->rank == 0 && !(pw = mrf__malloc(pw_len)) && rc == MRF_OK)
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    if (pw_len && (rc = mrf__st_agree(s, rc)) == MRF_OK)
        MPI_Reduce(s->pack_bytes, pw, 2 * (int)s->nb, MPI_UINT64_T, MPI_SUM, 0, s->comm);
    mrf__ckpt_blob extra[MRF__CKPT_BLOBS] = {{"/pack_weights", pw, pw ? pw_len : 0},
                                             {"/reduce", prog, prog ? prog_len : 0}};
    if (incremental && s->n_chain) { /* it adds to the chain's newest */
        m.base_epoch = s->chain[s->n_chain - 1];
        m.chain_records = s->chain_records;
    }
    uint64_t *nc = mrf__grow_for(s->chain, &s->chain_cap, s->n_chain, sizeof *nc);
    if (nc)
        s->chain = nc;
    else if (rc == MRF_OK)
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    uint64_t figs[3] = {s->records_in, s->my_input_bytes, s->bad_records}, tot[3];
    if (alone)
        memset(figs, 0, sizeof figs);
    MPI_Allreduce(figs, tot, 3, MPI_UINT64_T, MPI_SUM, s->comm);
    m.records_in = tot[0];
    m.input_bytes = tot[1];
    m.bad_records = tot[2];
    double t_agree = MPI_Wtime();
    if ((rc = mrf__st_agree(s, rc)) == MRF_OK) {
        mrf__log(MRF_LOG_DEBUG,
                 "checkpoint: records gathered and compressed in %.3f s (%zu bytes from memory, "
                 "%zu spilled runs), waited %.3f s for the other ranks",
                 t_put - t0, n_mem, s->n_bruns + s->n_runs, MPI_Wtime() - t_agree);
        bool crash = s->opt->crash_rank == s->rank && s->opt->crash_phase == MRF__PHASE_CHECKPOINT;
        /* kept: the new epoch's chain, and (after the shuffle) the map's as
         * the fallback; an epoch of the reduce's progress holds no records:
         * every one is kept */
        rc = mrf__ckpt_commit(s->ckw, s->opt->ckpt_dir, &m, alone ? none : s->done, s->done_len,
                              part, part_len, extra, MRF__CKPT_BLOBS, bad, bad_len,
                              reducing ? NULL : s->chain, s->n_chain, crash, &s->ckst);
    }
    mrf__ckpt_writer_destroy(s->ckw);
    s->ckw = NULL;
    mrf__free(bad);
    mrf__free(part);
    mrf__free(pw);
    mrf__free(none);
    if (rc == MRF_OK && !reducing) { /* (the reduce's progress is not part of the chain) */
        if (!incremental)
            s->n_chain = 0;
        s->chain[s->n_chain++] = m.epoch;
        s->chain_records = m.chain_records;
        s->chain_tasks = s->n_done;
    }
    if (rc == MRF_OK) {
        s->epoch++;
        double took = MPI_Wtime() - t0;
        s->ckst.seconds = ck_before + took; /* gathering and compressing too, not only writing */
        if (s->rank == 0)
            mrf__log(MRF_LOG_INFO,
                     "checkpoint %s/epoch-%06llu.h5 (%s): %llu of %zu tasks, %llu new records "
                     "(%llu in the chain of %zu epochs), %llu bytes raw, %llu stored, %.3f s",
                     s->opt->ckpt_dir, (unsigned long long)m.epoch, phase,
                     (unsigned long long)s->n_done, s->plan.n_tasks, (unsigned long long)m.records,
                     (unsigned long long)m.chain_records, s->n_chain,
                     (unsigned long long)m.raw_bytes, (unsigned long long)m.stored_bytes, took);
    } else if (s->rank == 0) {
        mrf__log(MRF_LOG_ERROR, "checkpoint epoch %llu (%s) was not written; %s",
                 (unsigned long long)m.epoch, phase,
                 s->ckst.written ? "the previous one stays valid"
                                 : "no checkpoint of this run exists yet");
    }
    s->ckpt_last = MPI_Wtime();
    return rc;
}

/* Checkpoints are taken only where they pay (--checkpoint-policy auto).
 * One saves the work done since the last, which a resume without it does
 * again; it costs writing its bytes now and reading them back on a resume.
 * Writing is compressing, then the write and its fsync; reading back is
 * the read and the decompression: together about twice the compression
 * (terasort 1 GiB on 2 ranks, a rank's 600 MB: compress 0.47 s, write and
 * fsync 0.18 s, read back 0.35 s; docs/performance.md, "Which checkpoints
 * pay").  So the cost is twice the compression, timed on a sample of the
 * bytes, or, once this run has written a checkpoint, the seconds a byte
 * that took plus one compression (to read back), whichever is more: a
 * slow file system makes checkpoints dearer.  A job whose map only frames
 * records (terasort) maps faster than
 * that: its map output is never worth a checkpoint.  Collective: the
 * slowest rank's work against the slowest rank's cost; every rank gets the
 * same answer. */
#define CK_COST_FACTOR 2.0
#define CK_DEFAULT_SPB 2e-9 /* seconds a byte with nothing to time (500 MB/s) */

static bool ckpt_worth(stage *s, uint64_t bytes, const char *sample, size_t sample_len,
                       const char *what)
{
    if (s->opt->ckpt_always)
        return true;
    double spb = mrf__ckpt_compress_cost(sample, sample_len);
    if (spb <= 0)
        spb = CK_DEFAULT_SPB;
    double per_byte = CK_COST_FACTOR * spb;
    if (s->ckst.raw_bytes && s->ckst.seconds > 0) { /* as written so far, read back as sampled */
        double wrote = s->ckst.seconds * s->size / (double)s->ckst.raw_bytes;
        if (wrote + spb > per_byte)
            per_byte = wrote + spb;
    }
    const char *scale = getenv("MRFLOW_TEST_CKPT_COST"); /* testing: a cost x times as high */
    if (scale)
        per_byte *= strtod(scale, NULL);
    double v[2] = {MPI_Wtime() - s->ckpt_last, (double)bytes * per_byte};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, s->comm);
    if (v[0] >= v[1])
        return true;
    s->ckst.skipped++;
    s->ckst.skip_work_s = v[0];
    s->ckst.skip_cost_s = v[1];
    if (s->rank == 0)
        mrf__log(MRF_LOG_INFO,
                 "checkpoint (%s) left out: it would save %.2f s of work and cost about %.2f s "
                 "to write and read back (--checkpoint-policy always takes it anyway)",
                 what, v[0], v[1]);
    return false;
}

/* Everything this rank's map output holds is in the chain now. */
static void mark_saved(stage *s)
{
    s->ck_mark = s->kv.len;
    s->unsaved_spilled = 0;
    for (size_t r = 0; r < s->n_bruns; r++)
        if (s->bruns[r].task == -1)
            s->bruns[r].saved = true;
}

/* Collective, between map tasks or after the map: writes every rank's
 * committed map output that no checkpoint holds yet (the arena past the
 * mark, bucket runs not saved) as the next epoch of the chain, in blocks of
 * mixed buckets: the arena's bytes compressed as they lie (a resume reads
 * any share of the blocks, every record carries its bucket); then all of
 * it counts as saved. */
int mrf__st_take_checkpoint(stage *s, const char *phase)
{
    double t0 = MPI_Wtime(), ck_before = s->ckst.seconds;
    int rc = MRF_OK;
    if (s->n_chain && s->n_done == s->chain_tasks && strcmp(phase, "map") == 0)
        return MRF_OK; /* no task committed since the chain's newest: nothing to add */
    size_t mark = s->ck_mark < s->kv.len ? s->ck_mark : s->kv.len;
    const char *fresh = s->kv.base ? s->kv.base + mark : NULL; /* the sample: unsaved output */
    if (s->map_ckpt_off ||
        !ckpt_worth(s, mrf__st_unsaved_bytes(s), fresh, s->kv.len - mark, phase)) {
        s->map_ckpt_off = true; /* the ratio holds for the whole map: no more of them */
        return MRF_OK;
    }
    char *raw = NULL;
    size_t rcap = 0;
    if (s->mapc && s->ct.used)
        rc = mrf__st_drain_table_how(s, true); /* combining starts afresh after it */
    if (rc == MRF_OK && !s->ckw)
        rc = mrf__ckpt_writer_create(s->comm, mrf__spill_dir(s->opt->spill_dir), &s->ckw);
    if (rc == MRF_OK)
        mrf__ckpt_set_mixed(s->ckw, true);
    size_t from = s->ck_mark < s->kv.len ? s->ck_mark : s->kv.len;
    if (rc == MRF_OK)
        rc = mrf__ckpt_put_span(s->ckw, s->kv.base + from, s->kv.len - from);
    if (rc == MRF_OK && s->n_bruns)
        rc = mrf__spill_flush(&s->spill);
    for (size_t r = 0; rc == MRF_OK && r < s->n_bruns; r++)
        for (uint32_t b = 0; rc == MRF_OK && b < s->nb; b++)
            if (s->bruns[r].task == -1 && !s->bruns[r].saved)
                rc = put_brun_bucket(s, &s->bruns[r], b, &raw, &rcap);
    mrf__big_free(raw, rcap);
    if ((rc = commit_checkpoint(s, rc, phase, t0, ck_before, s->kv.len - from, true, NULL, 0)) ==
        MRF_OK)
        mark_saved(s);
    return rc;
}

/* A verified block of a checkpoint becomes committed map output. */
static int load_block(void *ctx, const char *recs, size_t len, uint64_t n)
{
    stage *s = ctx;
    int rc;
    if (s->kv.len && (s->kv.len + len > s->map_cap || s->map_recs + n > s->map_rec_cap) &&
        (rc = mrf__st_spill_map(s)))
        return rc;
    if (mrf__kvbuf_reserve(&s->kv, len))
        return mrf__fail(MRF_ENOMEM, "out of memory loading a checkpoint");
    memcpy(s->kv.base + s->kv.len, recs, len);
    s->kv.len += len;
    s->map_recs += n;
    for (size_t at = 0; at < len; at += mrf__rec_size(recs + at)) {
        uint32_t b = mrf__rec_bucket(recs + at);
        size_t sz = mrf__rec_size(recs + at);
        s->bucket_bytes[b].bytes += sz;
        s->bucket_bytes[b].recs++;
        if (!s->pack_given) { /* (files from before /pack_weights) */
            s->pack_bytes[b].bytes += sz;
            s->pack_bytes[b].recs++;
        }
    }
    return MRF_OK;
}

/* A verified block of a checkpoint taken after the shuffle, on as many
 * ranks: this rank's reduce input again. */
static int load_reduce_block(void *ctx, const char *recs, size_t len, uint64_t n)
{
    stage *s = ctx;
    int rc;
    if (s->rkv.len && (s->rkv.len + len > s->red_cap || s->rkv_recs + n > s->red_rec_cap) &&
        (rc = mrf__st_spill_sorted(s, false)))
        return rc;
    if (mrf__kvbuf_reserve(&s->rkv, len))
        return mrf__fail(MRF_ENOMEM, "out of memory loading a checkpoint");
    memcpy(s->rkv.base + s->rkv.len, recs, len);
    s->rkv.len += len;
    s->rkv_recs += n;
    s->red_in_bytes += len;
    s->red_in_recs += n;
    return MRF_OK;
}

/* Puts one reduce-input record, tagged with its bucket again (the reducing
 * side's combining loses it), so a resume on other ranks can shuffle it. */
static int put_retagged(stage *s, const char *rec, char **buf, size_t *cap)
{
    size_t n = mrf__rec_size(rec);
    if (mrf__big_grow(buf, cap, n))
        return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    memcpy(*buf, rec, n);
    const char *k = mrf__rec_key(rec);
    size_t kl = mrf__rec_klen(rec);
    mrf__wr32(*buf, mrf__st_key_bucket(s, k, kl, s->range ? 0 : mrf__key_hash(k, kl)));
    return mrf__ckpt_put(s->ckw, *buf);
}

/* Collective, after the shuffle when one is due: every rank's reduce
 * input, as blocks of its own (phase "shuffled"). */
int mrf__st_take_checkpoint_shuffled(stage *s)
{
    double t0 = MPI_Wtime(), ck_before = s->ckst.seconds;
    int rc = MRF_OK;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!ckpt_worth(s, s->red_in_bytes, s->kv.base, s->kv.len, "shuffled"))
        return MRF_OK;
    if (!s->ckw)
        rc = mrf__ckpt_writer_create(s->comm, mrf__spill_dir(s->opt->spill_dir), &s->ckw);
    if (rc == MRF_OK)
        mrf__ckpt_set_mixed(s->ckw, true);
    for (size_t at = 0; rc == MRF_OK && at < s->kv.len; at += mrf__rec_size(s->kv.base + at))
        rc = put_retagged(s, s->kv.base + at, &buf, &cap);
    n = s->kv.len;
    if (rc == MRF_OK && s->n_runs)
        rc = mrf__spill_flush(&s->spill);
    for (size_t i = 0; rc == MRF_OK && i < s->n_runs; i++) {
        mrf__run_reader rd;
        const char *r;
        int k;
        if ((rc = mrf__runr_open(&rd, &s->spill, &s->runs[i])))
            break;
        while (rc == MRF_OK && (k = mrf__runr_next(&rd, &r)) == 1)
            rc = put_retagged(s, r, &buf, &cap);
        if (rc == MRF_OK && k < 0)
            rc = k;
        mrf__runr_close(&rd);
    }
    mrf__big_free(buf, cap);
    rc = commit_checkpoint(s, rc, "shuffled", t0, ck_before, n, false, NULL, 0);
    if (rc == MRF_OK)
        s->shuffled_ckpt = true;
    return rc;
}

/* ------------------------------------------------ the reduce's progress -- */

/* The bucket -> rank map the shuffle made, hashed (0: none, the reduce
 * input came straight from a checkpoint). */
static uint64_t owners_hash(const stage *s)
{
    return s->owner ? mrf__checksum(s->owner, s->nb * sizeof *s->owner) : 0;
}

/* Collective, once a signal stopped the reduce: every rank closes its part
 * where it stands (fsynced; a rank that finished closed it already), and
 * the next epoch (phase "reducing") records, rank by rank, where each part
 * stands, the keys reduced and the hash of the last; it holds no records
 * and names the chain's newest epoch as its base, whose data a resume
 * loads (none: the resume maps everything again, with the partition
 * decisions of this epoch).  The parts stay in the output's temporary
 * directory, on the shared file system, where they were written; a resume
 * on as many ranks with the same reduce input (records and bytes on every
 * rank, checked) continues them.  Taken where some rank reduced a key.
 * Rank 0 gathers one small record a rank. */
int mrf__st_take_checkpoint_reducing(stage *s)
{
    double t0 = MPI_Wtime(), ck_before = s->ckst.seconds;
    int rc = MRF_OK;
    if (s->out) {
        rc = mrf__writer_close_at(s->out, &s->red_pos);
        s->out = NULL;
    }
    uint64_t keys = s->red_keys > s->red_skip ? s->red_keys : s->red_skip, any = keys;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_UINT64_T, MPI_MAX, s->comm);
    if (any == 0)
        return mrf__st_agree(s, rc) ? MRF_EIO : MRF__PREEMPTED; /* nothing to record */
    uint64_t mine[MRF__PROG_FIELDS] = {0};
    mine[MRF__PROG_KEYS] = keys;
    mine[MRF__PROG_HASH] = s->red_last_hash;
    mine[MRF__PROG_IN_RECS] = s->red_in_recs;
    mine[MRF__PROG_IN_BYTES] = s->red_in_bytes;
    mine[MRF__PROG_OWNERS] = owners_hash(s);
    mine[MRF__PROG_WRITTEN] = s->red_pos.written;
    mine[MRF__PROG_SEQ] = s->red_pos.seq;
    mine[MRF__PROG_FILE_SIZE] = s->red_pos.file_size;
    mine[MRF__PROG_RECS] = s->red_pos.recs;
    mine[MRF__PROG_KBYTES] = s->red_pos.kbytes;
    mine[MRF__PROG_VBYTES] = s->red_pos.vbytes;
    memcpy(&mine[MRF__PROG_SUMS], s->sums, sizeof s->sums);
    size_t plen = strlen(s->tmpdir), hdr = 4 + (plen + 8) / 8;
    size_t words = hdr + (size_t)s->size * MRF__PROG_FIELDS;
    uint64_t *blob = s->rank == 0 ? mrf__calloc(words, 8) : NULL;
    if (s->rank == 0 && !blob && rc == MRF_OK)
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the reduce's progress");
    if ((rc = mrf__st_agree(s, rc)))
        return rc;
    MPI_Gather(mine, MRF__PROG_FIELDS, MPI_UINT64_T, blob ? blob + hdr : NULL, MRF__PROG_FIELDS,
               MPI_UINT64_T, 0, s->comm);
    if (blob) {
        blob[0] = MRF__PROG_MAGIC;
        blob[1] = (uint64_t)s->size;
        blob[2] = MRF__PROG_FIELDS;
        blob[3] = plen;
        memcpy(&blob[4], s->tmpdir, plen);
    }
    if (!s->ckw)
        rc = mrf__ckpt_writer_create(s->comm, mrf__spill_dir(s->opt->spill_dir), &s->ckw);
    rc = commit_checkpoint(s, rc, "reducing", t0, ck_before, 0, true, (const char *)blob,
                           blob ? words * 8 : 0);
    mrf__free(blob);
    s->red_saved = rc == MRF_OK;
    if (rc == MRF_OK && s->rank == 0)
        mrf__log(MRF_LOG_INFO,
                 "the reduce's progress is checkpointed; the output so far stays in '%s'",
                 s->tmpdir);
    return rc == MRF_OK ? MRF__PREEMPTED : rc;
}

/* Rank 0: the reduce's progress of the open epoch (phase "reducing"),
 * checked; *blob and its header's figures. */
static int read_progress(stage *s, uint64_t **blob, size_t *hdr)
{
    char *b = NULL;
    size_t len = 0;
    int rc = mrf__ckpt_read_bytes(s->ckr, "/reduce", 1ull << 31, &b, &len);
    uint64_t *w = (uint64_t *)(void *)b;
    size_t n = len / 8;
    if (rc == MRF_OK &&
        (len % 8 || n < 4 || w[0] != MRF__PROG_MAGIC || w[1] != s->ckmeta.ranks ||
         w[2] != MRF__PROG_FIELDS || w[3] >= (n - 4) * 8 ||
         n != 4 + (w[3] + 8) / 8 + w[1] * MRF__PROG_FIELDS || ((char *)&w[4])[w[3]] != '\0'))
        rc = mrf__fail(MRF_EIO, "checkpoint '%s': its record of the reduce's progress is damaged",
                       mrf__ckpt_path(s->ckr));
    if (rc) {
        mrf__free(b);
        return rc;
    }
    *blob = w;
    *hdr = 4 + (w[3] + 8) / 8;
    return MRF_OK;
}

/* Collective: the open epoch records the reduce's progress.  On as many
 * ranks, with the stopped run's output directory still there, each rank
 * takes its record (the part is continued); on another count the old
 * directory is removed (the reduce is done anew).  Then its base is opened
 * in its place: the data to load. */
static int load_progress(stage *s)
{
    uint64_t *blob = NULL, mine[MRF__PROG_FIELDS];
    size_t hdr = 0;
    int64_t h[3] = {MRF_OK, 0, 0}; /* rc, continue, path length */
    struct stat st;
    if (s->rank == 0 && (h[0] = read_progress(s, &blob, &hdr)) == MRF_OK) {
        const char *old = (const char *)&blob[4], *tag = strstr(old, ".mrflow-tmp-");
        bool there = tag && stat(old, &st) == 0 && S_ISDIR(st.st_mode);
        /* the same --output: the temporary directory's name up to the run id */
        size_t stem = tag ? (size_t)(tag - old) + strlen(".mrflow-tmp-") : 0;
        bool same_out = tag && strncmp(old, s->tmpdir, stem) == 0;
        h[1] = there && same_out && blob[1] == (uint64_t)s->size;
        h[2] = (int64_t)blob[3];
        if (!h[1] && there)
            (void)mrf__remove_tree(old);
        if (!h[1])
            mrf__log(MRF_LOG_WARN,
                     "checkpoint '%s' records the reduce's progress on %llu ranks; %s: the reduce "
                     "is done anew",
                     mrf__ckpt_path(s->ckr), (unsigned long long)blob[1],
                     !there      ? "the output it had written is gone"
                     : !same_out ? "this run writes another --output"
                                 : "this run has another rank count");
    }
    MPI_Bcast(h, 3, MPI_INT64_T, 0, s->comm);
    if (h[0]) {
        mrf__free(blob);
        return (int)h[0];
    }
    if (h[1]) {
        if (!(s->red_tmpdir = mrf__malloc((size_t)h[2] + 1)))
            return mrf__fail(MRF_ENOMEM, "out of memory"); /* (the Bcast below would hang) */
        if (s->rank == 0)
            memcpy(s->red_tmpdir, &blob[4], (size_t)h[2] + 1);
        MPI_Bcast(s->red_tmpdir, (int)h[2] + 1, MPI_CHAR, 0, s->comm);
        MPI_Scatter(blob ? blob + hdr : NULL, MRF__PROG_FIELDS, MPI_UINT64_T, mine,
                    MRF__PROG_FIELDS, MPI_UINT64_T, 0, s->comm);
        s->red_continue = true;
        s->red_skip = mine[MRF__PROG_KEYS];
        s->red_skip_hash = mine[MRF__PROG_HASH];
        s->red_in_expect = mine[MRF__PROG_IN_RECS];
        s->red_in_expect_bytes = mine[MRF__PROG_IN_BYTES];
        s->red_owners_expect = mine[MRF__PROG_OWNERS];
        s->red_pos = (mrf__writer_pos){.written = mine[MRF__PROG_WRITTEN],
                                       .seq = mine[MRF__PROG_SEQ],
                                       .file_size = mine[MRF__PROG_FILE_SIZE],
                                       .recs = mine[MRF__PROG_RECS],
                                       .kbytes = mine[MRF__PROG_KBYTES],
                                       .vbytes = mine[MRF__PROG_VBYTES]};
        memcpy(s->sums, &mine[MRF__PROG_SUMS], sizeof s->sums);
    }
    mrf__free(blob);
    if (s->ckmeta.base_epoch == 0) /* nothing under it: it is loaded as it is (no task done) */
        return s->ckmeta.tasks_done == 0 && s->ckmeta.records == 0
                   ? MRF_OK
                   : mrf__fail(MRF_EIO,
                               "checkpoint '%s': its record of the reduce's progress "
                               "has tasks but no base",
                               mrf__ckpt_path(s->ckr));
    mrf__ckpt_reader *base = NULL;
    mrf__ckpt_meta bm;
    int rc = mrf__ckpt_open(s->comm, s->opt->ckpt_dir, s->ckmeta.base_epoch, &base, &bm);
    if (rc == MRF_OK && bm.chain_records != s->ckmeta.chain_records)
        rc = MRF_EIO;
    if (rc) {
        mrf__ckpt_close(base);
        if (s->rank == 0)
            mrf__log(MRF_LOG_ERROR, "checkpoint '%s' builds on epoch %llu, which cannot be used",
                     mrf__ckpt_path(s->ckr), (unsigned long long)s->ckmeta.base_epoch);
        return MRF_EIO;
    }
    mrf__ckpt_close(s->ckr);
    s->ckr = base;
    s->ckmeta = bm;
    return MRF_OK;
}

/* Forgets a progress record read (a fallback to an older epoch). */
static void forget_progress(stage *s)
{
    s->pack_given = false;
    s->red_continue = false;
    s->red_skip = s->red_skip_hash = 0;
    s->red_pos = (mrf__writer_pos){0};
    memset(s->sums, 0, sizeof s->sums);
    mrf__free(s->red_tmpdir);
    s->red_tmpdir = NULL;
}

/* Collective, before a resumed run's reduce that continues the stopped
 * run's parts: each rank must reduce the keys that run's did, in the same
 * order: the buckets on the same ranks (the same bucket -> rank map) and,
 * for a job without a combiner, the same records and bytes (a combining
 * job's records of a key are combined differently when the map is done
 * again, its keys are the same); if not, every part is done anew.  (The
 * hash of the last key passed over is checked too, in the reduce.) */
int mrf__st_continue_reduce(stage *s)
{
    int same = (s->direct || owners_hash(s) == s->red_owners_expect) && /* (direct: its slab) */
               (s->spec->combine ||
                (s->red_in_recs == s->red_in_expect && s->red_in_bytes == s->red_in_expect_bytes));
    MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, s->comm);
    if (!same) {
        if (s->rank == 0)
            mrf__log(MRF_LOG_WARN, "the reduce input differs from the stopped run's: the reduce "
                                   "is done anew, its output so far dropped");
        s->red_skip = s->red_skip_hash = 0;
        s->red_pos = (mrf__writer_pos){0}; /* the part is cut to nothing */
        memset(s->sums, 0, sizeof s->sums);
    }
    s->records_out = s->red_pos.recs;
    uint64_t v[2] = {s->red_skip, s->red_pos.written};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UINT64_T, MPI_SUM, s->comm);
    if (s->rank == 0 && same)
        mrf__log(s->opt->quiet ? MRF_LOG_INFO : MRF_LOG_WARN,
                 "continuing the reduce: %llu keys the stopped run reduced are passed over, its "
                 "%llu bytes of output kept",
                 (unsigned long long)v[0], (unsigned long long)v[1]);
    return MRF_OK;
}

/* The length of path's folder part (all of it if it has none). */
static int dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');
    return (int)(slash ? (size_t)(slash - path) : strlen(path));
}

/* Why a checkpoint may not be resumed by this run (NULL: it may). */
static const char *fingerprint_differs(stage *s, const mrf__ckpt_meta *m, char *why, size_t n)
{
    if (strcmp(m->job, s->spec->name) != 0)
        snprintf(why, n, "it was written by job '%s', this is job '%s'", m->job, s->spec->name);
    else if (m->spec_fp != s->spec_fp)
        snprintf(why, n,
                 "job '%s' is defined differently now (its input kind, record size, combiner, "
                 "partitioning or flags changed)",
                 m->job);
    else if (strcmp(m->partitioner, part_name(s->part)) != 0)
        snprintf(why, n, "it was written with --partitioner %s, this run has --partitioner %s",
                 m->partitioner, part_name(s->part));
    else if (m->map_combine != (uint64_t)s->opt->map_combine)
        snprintf(why, n, "it was written with --map-combine %s, this run has --map-combine %s",
                 m->map_combine ? "on" : "off", s->opt->map_combine ? "on" : "off");
    else if (m->buckets_opt != s->opt->buckets)
        snprintf(why, n, "it was written with --buckets %llu, this run has --buckets %u",
                 (unsigned long long)m->buckets_opt, s->opt->buckets);
    else if (m->task_size != s->task_size)
        snprintf(why, n, "it was written with --task-size %llu, this run has --task-size %llu",
                 (unsigned long long)m->task_size, (unsigned long long)s->task_size);
    else if ((m->inputs_fp != s->inputs_fp || m->tasks != s->plan.n_tasks) &&
             (int)s->spec->input == MRF__INPUT_KV)
        snprintf(why, n,
                 "the previous stage run's files in '%.*s' are not those it was taken over "
                 "(their names, sizes or modification times differ: damaged or replaced)",
                 dir_len(s->plan.n_files ? s->plan.paths[0] : "?"),
                 s->plan.n_files ? s->plan.paths[0] : "?");
    else if (m->inputs_fp != s->inputs_fp || m->tasks != s->plan.n_tasks)
        snprintf(why, n,
                 "the --input files differ from that run's (their names, sizes or modification "
                 "times)");
    else
        return NULL;
    return why;
}

/* The map output of the open epoch's base and the base's bases (an equal
 * share of each file on every rank), each checked to be of the same job and
 * run lineage; s->chain becomes the epochs loaded, oldest first. */
static int load_chain(stage *s)
{
    const mrf__ckpt_meta *top = &s->ckmeta;
    s->n_chain = 0;
    uint64_t e = top->epoch, base = top->base_epoch, recs = top->records;
    int rc = MRF_OK;
    for (;;) {
        uint64_t *nc = mrf__grow_for(s->chain, &s->chain_cap, s->n_chain, sizeof *nc);
        if (!nc)
            return mrf__st_agree(s, mrf__fail(MRF_ENOMEM, "out of memory"));
        s->chain = nc;
        s->chain[s->n_chain++] = e;
        if (base == 0)
            break;
        if (base >= e) {
            rc = MRF_EIO;
            break;
        }
        mrf__ckpt_reader *r = NULL;
        mrf__ckpt_meta m;
        if ((rc = mrf__ckpt_open(s->comm, s->opt->ckpt_dir, base, &r, &m))) {
            if (s->rank == 0)
                mrf__log(MRF_LOG_ERROR,
                         "checkpoint '%s' builds on epoch %llu, which cannot be read (missing, "
                         "truncated, or not a complete HDF5 file)",
                         mrf__ckpt_path(s->ckr), (unsigned long long)base);
            return MRF_EIO;
        }
        bool same = strcmp(m.job, top->job) == 0 && m.spec_fp == top->spec_fp &&
                    m.inputs_fp == top->inputs_fp && m.nb == top->nb && m.nb_base == top->nb_base &&
                    m.tasks == top->tasks && strcmp(m.phase, "shuffled") != 0 &&
                    m.tasks_done <= top->tasks_done && m.chain_records + recs == top->chain_records;
        if (same)
            rc = mrf__ckpt_load(r, -1, load_block, s);
        else if (s->rank == 0)
            mrf__log(MRF_LOG_ERROR,
                     "checkpoint '%s' is not the base that '%s' was written on (another job, "
                     "run or record count)",
                     mrf__ckpt_path(r), mrf__ckpt_path(s->ckr));
        mrf__ckpt_close(r);
        if (!same || (rc = mrf__st_agree(s, rc)))
            return same ? rc : MRF_EIO;
        e = base;
        base = m.base_epoch;
        recs += m.records;
    }
    if (rc == MRF_OK && recs != top->chain_records)
        rc = MRF_EIO;
    if (rc && s->rank == 0)
        mrf__log(MRF_LOG_ERROR, "checkpoint '%s': its chain of epochs is damaged",
                 mrf__ckpt_path(s->ckr));
    for (size_t i = 0; i < s->n_chain / 2; i++) { /* oldest first */
        uint64_t t = s->chain[i];
        s->chain[i] = s->chain[s->n_chain - 1 - i];
        s->chain[s->n_chain - 1 - i] = t;
    }
    s->chain_records = recs;
    return rc;
}

/* Collective: rank 0 reads the open epoch's packing weights (*pw) where it
 * has them; every rank learns whether it does (s->pack_given). */
static int read_pack_weights(stage *s, mrf__bstat **pw)
{
    int given = 0;
    if (s->rank == 0) {
        char *b = NULL;
        size_t len = 0;
        if (mrf__ckpt_read_bytes(s->ckr, "/pack_weights", 1ull << 31, &b, &len) == MRF_OK &&
            len == s->nb * sizeof **pw) {
            *pw = (mrf__bstat *)(void *)b;
            given = 1;
        } else {
            mrf__free(b);
        }
    }
    MPI_Bcast(&given, 1, MPI_INT, 0, s->comm);
    s->pack_given = given;
    return MRF_OK;
}

/* Restores the open epoch: decisions, map output (its chain's too), dead
 * letters, tasks done. */
static int load_epoch(stage *s)
{
    const mrf__ckpt_meta *m = &s->ckmeta;
    char *part = NULL, *bad = NULL;
    size_t part_len = 0, bad_len = 0;
    int rc;
    if (strcmp(m->phase, "reducing") == 0 && (rc = load_progress(s)))
        return rc;
    rc = mrf__ckpt_read_bytes(s->ckr, "/partition", 1ull << 31, &part, &part_len);
    if (rc == MRF_OK) {
        mrf__splitters_free(&s->sp);
        mrf__heavy_free(&s->hv);
        if (m->nb > (1u << 26) || m->nb_base > m->nb ||
            mrf__decisions_unpack(part, part_len, (uint32_t)(m->nb - m->nb_base), &s->sp, &s->hv) ||
            s->hv.nsub != m->nb - m->nb_base ||
            (s->range ? s->sp.n + 1 != m->nb_base : m->nb_base != s->opt->buckets))
            rc = mrf__fail(MRF_EIO, "checkpoint '%s': its partitioning record is damaged",
                           mrf__ckpt_path(s->ckr));
    }
    mrf__free(part);
    if ((rc = mrf__st_agree(s, rc)))
        return rc;
    s->nb_base = (uint32_t)m->nb_base;
    s->nb = (uint32_t)m->nb;
    rc = mrf__st_map_setup(s);
    if (rc == MRF_OK) {
        char *d = NULL;
        size_t dl = 0;
        rc = mrf__ckpt_read_bytes(s->ckr, "/tasks_done", 1ull << 31, &d, &dl);
        if (rc == MRF_OK && dl == s->done_len)
            memcpy(s->done, d, dl);
        else if (rc == MRF_OK)
            rc = MRF_EIO;
        mrf__free(d);
        s->n_done = 0;
        for (size_t t = 0; rc == MRF_OK && t < s->plan.n_tasks; t++)
            s->n_done += (s->done[t / 8] >> (t % 8)) & 1u;
        if (rc == MRF_OK && s->n_done != m->tasks_done)
            rc = MRF_EIO;
        if (rc)
            rc = mrf__fail(MRF_EIO, "checkpoint '%s': its task bitmap is damaged",
                           mrf__ckpt_path(s->ckr));
    }
    /* a combining job's packing weights: rank 0 holds them all (the
     * shuffle sums every rank's) */
    mrf__bstat *pw = NULL;
    if (rc == MRF_OK && s->mapc)
        rc = read_pack_weights(s, &pw);
    /* after the shuffle, on as many ranks: each rank takes back its own
     * reduce input; otherwise an equal share becomes map output again */
    s->tails_done = strcmp(m->phase, "shuffled") == 0;
    s->direct = s->tails_done && m->ranks == (uint64_t)s->size;
    if (s->direct)
        mrf__st_size_reduce_side(s);
    if (rc == MRF_OK && s->direct && m->base_epoch)
        rc = mrf__fail(MRF_EIO, "checkpoint '%s': an epoch after the shuffle builds on another",
                       mrf__ckpt_path(s->ckr));
    if (rc == MRF_OK)
        rc = mrf__ckpt_load(s->ckr, s->direct ? s->rank : -1,
                            s->direct ? load_reduce_block : load_block, s);
    if ((rc = mrf__st_agree(s, rc)) == MRF_OK)
        rc = load_chain(s);
    if (rc == MRF_OK) {
        mark_saved(s); /* what was loaded is in the chain: the next epoch adds to it */
        s->chain_tasks = s->n_done;
        if (pw)
            memcpy(s->pack_bytes, pw, s->nb * sizeof *pw);
    }
    mrf__free(pw);
    if (rc == MRF_OK)
        rc = mrf__ckpt_read_bad(s->ckr, &bad, &bad_len);
    if ((rc = mrf__st_agree(s, rc)) == MRF_OK && s->rank == 0 && bad_len) {
        /* only now: a fallback to another epoch must not find them written */
        rc = mrf__badrec_restore(&s->bad, bad, bad_len, m->bad_records);
        if (rc == MRF_OK)
            rc = mrf__badrec_commit(&s->bad, s->tmpdir, s->rank, &s->bad_records);
    }
    mrf__free(bad);
    if (rc == MRF_OK && s->rank == 0) { /* the figures of the tasks done before */
        s->records_in += m->records_in;
        s->my_input_bytes += m->input_bytes;
    }
    return mrf__st_agree(s, rc);
}

/* Rank 0 finds the epochs to try; every rank opens the newest readable. */
static int open_candidate(stage *s)
{
    for (; s->ci < s->ncands; s->ci++) {
        int rc = mrf__ckpt_open(s->comm, s->opt->ckpt_dir, s->cands[s->ci], &s->ckr, &s->ckmeta);
        if (rc == MRF_OK)
            return MRF_OK;
        if (s->rank == 0)
            mrf__log(MRF_LOG_WARN,
                     "checkpoint %s/epoch-%06llu.h5 cannot be read (truncated, or not a complete "
                     "HDF5 file)%s",
                     s->opt->ckpt_dir, (unsigned long long)s->cands[s->ci],
                     s->ci + 1 < s->ncands ? "; trying the previous epoch" : "");
    }
    return MRF_EIO;
}

/* Collective, before planning: the checkpoint directory is usable, and the
 * newest readable epoch (if any) is open. */
int mrf__st_ckpt_begin(stage *s)
{
    char err[MRF_ERRLEN] = "";
    int hdr[2] = {MRF_OK, 0};
    if (s->rank == 0) {
        hdr[0] = mrf__ckpt_prepare(s->opt->ckpt_dir, s->cands, 8, &hdr[1], err, sizeof err);
        if (hdr[0])
            mrf__fail(hdr[0], "%s", err[0] ? err : "out of memory");
    }
    MPI_Bcast(hdr, 2, MPI_INT, 0, s->comm);
    MPI_Bcast(s->cands, 8, MPI_UINT64_T, 0, s->comm);
    if (hdr[0])
        return hdr[0];
    /* one folder for every node, or each node's ranks would checkpoint alone */
    int rc =
        mrf__shared_dir(s->comm, s->opt->ckpt_dir, s->run_id, "--checkpoint-dir", s->opt->ckpt_dir);
    if (rc)
        return rc;
    s->ncands = hdr[1];
    s->epoch = s->ncands ? s->cands[0] + 1 : 1;
    if (s->opt->no_resume) {
        if (s->rank == 0 && s->ncands)
            mrf__log(MRF_LOG_WARN,
                     "--no-resume: ignoring the checkpoints in '%s' (epoch %llu is next)",
                     s->opt->ckpt_dir, (unsigned long long)s->epoch);
        s->ncands = 0;
        return MRF_OK;
    }
    if (s->ncands)
        open_candidate(s); /* none readable: mrf__st_resume() says what to do */
    return MRF_OK;
}

/* After planning: resume from the open epoch, falling back to older ones
 * when one is damaged.  *resumed says whether one was loaded. */
int mrf__st_resume(stage *s, bool *resumed)
{
    *resumed = false;
    bool first = true;
    double t0 = MPI_Wtime();
    while (s->ckr) {
        char why[MRF_ERRLEN];
        const char *diff = fingerprint_differs(s, &s->ckmeta, why, sizeof why);
        int rc;
        if (diff && first) {
            if (s->rank == 0)
                mrf__fail(MRF_EUSAGE,
                          "cannot resume from checkpoint '%s': %s.  Rerun with the options of "
                          "the run that wrote it, or start over with --no-resume (or another "
                          "--checkpoint-dir)",
                          mrf__ckpt_path(s->ckr), diff);
            mrf__ckpt_close(s->ckr);
            s->ckr = NULL;
            return MRF_EUSAGE;
        }
        first = false;
        if (diff) {
            if (s->rank == 0)
                mrf__log(MRF_LOG_WARN, "skipping checkpoint '%s': %s", mrf__ckpt_path(s->ckr),
                         diff);
            rc = MRF_EINPUT;
        } else {
            rc = load_epoch(s);
        }
        if (rc == MRF_OK && s->red_continue) { /* the stopped run's parts are continued */
            if (s->rank == 0)
                (void)mrf__remove_tree(s->tmpdir);
            mrf__free(s->tmpdir);
            s->tmpdir = s->red_tmpdir;
            s->red_tmpdir = NULL;
        }
        if (rc == MRF_OK) {
            s->resumed_epoch = s->ckmeta.epoch;
            s->resumed_tasks = s->n_done;
            s->t_resume = MPI_Wtime() - t0;
            if (s->rank == 0)
                mrf__log(s->opt->quiet ? MRF_LOG_INFO : MRF_LOG_WARN,
                         "resuming job '%s' from checkpoint '%s' (%s phase, %llu of %zu map tasks "
                         "done, written by %llu ranks; now %d), read in %.3f s",
                         s->spec->name, mrf__ckpt_path(s->ckr), s->ckmeta.phase,
                         (unsigned long long)s->n_done, s->plan.n_tasks,
                         (unsigned long long)s->ckmeta.ranks, s->size, s->t_resume);
            mrf__ckpt_close(s->ckr);
            s->ckr = NULL;
            *resumed = true;
            return MRF_OK;
        }
        if (rc == MRF_ENOMEM)
            return rc;
        mrf__st_map_reset(s);
        forget_progress(s);
        s->n_chain = 0; /* a later epoch, or a start from scratch, builds on nothing of it */
        s->chain_records = s->chain_tasks = 0;
        mrf__splitters_free(&s->sp); /* its decisions: a start from scratch makes its own */
        mrf__heavy_free(&s->hv);
        if (s->rank == 0 && !diff)
            mrf__log(MRF_LOG_WARN, "checkpoint '%s' is damaged (see above)%s",
                     mrf__ckpt_path(s->ckr),
                     s->ci + 1 < s->ncands ? "; falling back to the previous epoch" : "");
        mrf__ckpt_close(s->ckr);
        s->ckr = NULL;
        s->ci++;
        open_candidate(s);
    }
    if (s->ncands == 0)
        return MRF_OK;
    if (s->opt->restart_scratch) {
        if (s->rank == 0)
            mrf__log(MRF_LOG_WARN,
                     "no valid checkpoint in '%s': starting from the beginning "
                     "(--restart-from-scratch)",
                     s->opt->ckpt_dir);
        return MRF_OK;
    }
    return s->rank == 0 ? mrf__fail(MRF_EIO,
                                    "'%s' holds checkpoints but none is valid (see above); rerun "
                                    "with --restart-from-scratch to start from the beginning",
                                    s->opt->ckpt_dir)
                        : MRF_EIO;
}
