/*
 * job.c -- job lifecycle: options, the stage's phases in order, agreement on
 * the outcome, commit, the run summary and the exit status.
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
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* A rank keeps at most this many distinct keys in its map-side combining
 * table (32-byte slots at load <= 0.7: at most 128 MiB); past it the table is
 * drained into the map arena and starts afresh, and the reducing side
 * combines what repeats. */
#define CTABLE_MAX_KEYS (1u << 21)

/* Map-side emits into the combining table go through a ring of EMIT_RING
 * pending pairs: a pair's home slot is prefetched when it is emitted and the
 * pair is folded in EMIT_RING emits later, so about that many cache misses
 * are in flight at any time instead of one.  With ~1 M distinct keys the
 * table is far larger than the caches; this halves the cost of a word.
 * Pairs longer than EMIT_INLINE bytes skip the ring (order does not matter:
 * a combiner is associative and commutative). */
#define EMIT_RING 16
#define EMIT_INLINE 48

typedef struct pending {
    uint64_t h;
    uint32_t klen, vlen;
    char data[EMIT_INLINE];
} pending;

struct mrf_emitter {
    int (*fn)(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl);
    void *state;
    int rc;
};

struct mrf_values {
    const char *base;
    const mrf__sort_ent *ents;
    size_t i, end; /* next entry, one past the last of this key */
    uint64_t count;
};

typedef struct stage {
    MPI_Comm comm;
    int rank, size;
    const mrf_job_spec *spec;
    const mrf__options *opt;
    char run_id[64];
    mrf__plan plan;
    char *tmpdir;
    bool range;
    uint32_t nb;
    mrf__splitters sp;
    mrf__kvbuf kv;       /* map output, then (reused) shuffle input */
    mrf__ctable ct;      /* the rank's combined map output */
    mrf__ctable tt;      /* one task's, until it commits (with speculation) */
    mrf__ctable *target; /* where map emits are combined: &tt or &ct */
    mrf__kvbuf tkv;      /* the task table's overflow, until it commits */
    mrf__sched *sched;
    mrf__sched_stats sst;
    double map_t0;
    size_t ct_max_keys;
    pending q[EMIT_RING];
    unsigned qhead, nq;
    uint64_t *bucket_bytes; /* bytes per bucket in this rank's map arena */
    uint64_t *pack_bytes;   /* what buckets are packed by: see keep_task */
    mrf__writer *out;
    /* figures for the summary */
    uint64_t my_input_bytes, records_in, records_out, bytes_out;
    mrf__shuffle_stats shuf;
    double t_map, t_shuffle, t_reduce;
} stage;

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

int mrf_values_next(mrf_values *vals, const void **val, size_t *len)
{
    if (!vals || vals->i >= vals->end)
        return 0;
    const char *r = vals->base + vals->ents[vals->i++].off;
    *val = mrf__rec_val(r);
    *len = mrf__rec_vlen(r);
    return 1;
}

uint64_t mrf_values_count(const mrf_values *vals)
{
    return vals ? vals->count : 0;
}

const char *mrf_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
    return STR(MRF_VERSION_MAJOR) "." STR(MRF_VERSION_MINOR) "." STR(MRF_VERSION_PATCH);
#undef STR
#undef STR2
}

int mrf__exit_status(int rc)
{
    switch (rc) {
    case MRF_OK:
        return MRF_EXIT_OK;
    case MRF_EUSAGE:
    case MRF_EINPUT:
    case MRF_EEXIST:
        return MRF_EXIT_USAGE;
    default:
        return MRF_EXIT_FAILED;
    }
}

static int agree(stage *s, int rc)
{
    int all = rc;
    if (MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, s->comm) != MPI_SUCCESS)
        return MRF_EMPI;
    return all;
}

/* ------------------------------------------------------------- planning -- */

static int plan_and_share(stage *s)
{
    int rc = MRF_OK;
    char *buf = NULL;
    size_t len = 0;
    char err[MRF_ERRLEN] = "";
    if (s->rank == 0) {
        const mrf_job_spec *spec = s->spec;
        rc = mrf__plan_files(s->opt->inputs, s->opt->n_inputs, &s->plan, err, sizeof err);
        uint64_t task_size = s->opt->task_size;
        if (!s->opt->task_size_set) {
            /* about 8 tasks per rank, so static dealing balances, within [1M, 64M] */
            task_size = s->plan.total_bytes / ((uint64_t)s->size * 8);
            if (task_size < (1u << 20))
                task_size = 1u << 20;
            if (task_size > s->opt->task_size)
                task_size = s->opt->task_size;
        }
        if (rc == MRF_OK)
            rc = mrf__plan_tasks(&s->plan, spec->input, spec->record_size, task_size, err,
                                 sizeof err);
        if (rc == MRF_OK)
            rc = mrf__plan_pack(&s->plan, &buf, &len);
        if (rc)
            mrf__fail(rc, "%s", err[0] ? err : "out of memory planning input");
    }
    int64_t hdr[2] = {rc, (int64_t)len};
    if (MPI_Bcast(hdr, 2, MPI_INT64_T, 0, s->comm) != MPI_SUCCESS) {
        mrf__free(buf);
        return MRF_EMPI;
    }
    if (hdr[0] != MRF_OK) {
        mrf__free(buf);
        return (int)hdr[0];
    }
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
    if (rc)
        mrf__fail(rc, "corrupt task plan received from rank 0");
    return agree(s, rc);
}

/* A task's home: the rank whose share of the bytes holds its middle.  It
 * maps the task unless another rank steals it (sched.c). */
static bool my_task(const stage *s, uint64_t before, uint64_t len)
{
    return mrf__home_rank(s->plan.total_bytes, before, len, s->size) == s->rank;
}

/* -------------------------------------------------------------- sampling -- */

static int sample_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)v;
    (void)vl;
    return mrf__kvbuf_append(e->state, 0, k, kl, NULL, 0, NULL) ? MRF_ENOMEM : MRF_OK;
}

/* Runs map on up to k records spread evenly over task t; keys go to samples. */
static int sample_task(stage *s, const mrf__task *t, uint64_t k, mrf_emitter *em)
{
    const mrf_job_spec *spec = s->spec;
    const char *path = s->plan.paths[t->file];
    int rc = MRF_OK;
    size_t bufsz = spec->input == MRF_INPUT_RECORDS ? spec->record_size : 8192;
    char *buf = mrf__malloc(bufsz);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (!buf || fd < 0) {
        rc = mrf__fail(buf ? MRF_EIO : MRF_ENOMEM, "input '%s': %s while sampling", path,
                       buf ? strerror(errno) : "out of memory");
        goto out;
    }
    uint64_t units = spec->input == MRF_INPUT_RECORDS ? t->len / spec->record_size : t->len;
    if (k > units)
        k = units;
    for (uint64_t i = 0; i < k && rc == MRF_OK && em->rc == MRF_OK; i++) {
        uint64_t u = i * units / k;
        mrf_record rec = {.file = path};
        if (spec->input == MRF_INPUT_RECORDS) {
            uint64_t at = t->off + u * spec->record_size;
            if (pread(fd, buf, spec->record_size, (off_t)at) != (ssize_t)spec->record_size) {
                rc = mrf__fail(MRF_EIO, "input '%s': short read while sampling", path);
                break;
            }
            rec.data = buf;
            rec.len = spec->record_size;
            rec.offset = at;
        } else {
            uint64_t at = t->off + u, end = t->off + t->len;
            size_t want = (size_t)(end - at < bufsz ? end - at : bufsz);
            ssize_t got = pread(fd, buf, want, (off_t)at);
            if (got <= 0) {
                rc = mrf__fail(MRF_EIO, "input '%s': short read while sampling", path);
                break;
            }
            const char *p = buf, *e = buf + got;
            if (u != 0) { /* skip to the start of the next line */
                const char *nl = memchr(p, '\n', (size_t)(e - p));
                if (!nl)
                    continue;
                p = nl + 1;
            }
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            if (!nl && at + (uint64_t)got < end)
                continue; /* a line longer than the sample buffer: skip it */
            rec.data = p;
            rec.len = (size_t)((nl ? nl : e) - p);
            rec.offset = at + (uint64_t)(p - buf);
        }
        spec->map(&rec, em, spec->ctx);
    }
    if (rc == MRF_OK)
        rc = em->rc;
out:
    if (fd >= 0)
        close(fd);
    mrf__free(buf);
    return rc;
}

static int choose_splitters(stage *s)
{
    mrf__kvbuf samples = {0};
    mrf_emitter em = {.fn = sample_emit, .state = &samples};
    int rc = MRF_OK;
    uint64_t target = (uint64_t)s->opt->buckets * 8;
    if (target < 1024)
        target = 1024;
    if (target > (1u << 20))
        target = 1u << 20;
    uint64_t before = 0;
    for (size_t i = 0; i < s->plan.n_tasks && rc == MRF_OK; i++) {
        const mrf__task *t = &s->plan.tasks[i];
        if (my_task(s, before, t->len) && s->plan.total_bytes) {
            uint64_t k = (uint64_t)(((unsigned __int128)target * t->len + s->plan.total_bytes - 1) /
                                    s->plan.total_bytes);
            rc = sample_task(s, t, k, &em);
        }
        before += t->len;
    }
    if (rc == MRF_OK && samples.len > (size_t)(INT_MAX / s->size))
        samples.len = 0; /* absurdly large keys: fall back to fewer buckets */
    rc = agree(s, rc);
    if (rc) {
        mrf__kvbuf_destroy(&samples);
        return rc;
    }

    int mine = (int)samples.len, *counts = NULL, *displs = NULL;
    char *all = NULL;
    size_t total = 0;
    if (s->rank == 0) {
        counts = mrf__calloc((size_t)s->size, sizeof *counts);
        displs = mrf__calloc((size_t)s->size, sizeof *displs);
        if (!counts || !displs)
            MPI_Abort(s->comm, 1);
    }
    MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, s->comm);
    if (s->rank == 0) {
        for (int r = 0; r < s->size; r++) {
            displs[r] = (int)total;
            total += (size_t)counts[r];
        }
        if (!(all = mrf__malloc(total ? total : 1)))
            MPI_Abort(s->comm, 1);
    }
    MPI_Gatherv(samples.base, mine, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, s->comm);
    mrf__kvbuf_destroy(&samples);

    if (s->rank == 0) {
        size_t n = 0;
        for (size_t at = 0; at < total; at += mrf__rec_size(all + at))
            n++;
        mrf__sort_ent *ents = mrf__malloc((n ? n : 1) * sizeof *ents);
        mrf__sort_ent *tmp = mrf__malloc((n ? n : 1) * sizeof *tmp);
        const char **keys = mrf__malloc((n ? n : 1) * sizeof *keys);
        size_t *lens = mrf__malloc((n ? n : 1) * sizeof *lens);
        if (!ents || !tmp || !keys || !lens)
            MPI_Abort(s->comm, 1);
        size_t i = 0;
        for (size_t at = 0; at < total; at += mrf__rec_size(all + at), i++) {
            ents[i].off = at;
            ents[i].prefix = mrf__key_prefix(mrf__rec_key(all + at), mrf__rec_klen(all + at));
        }
        mrf__sort_records(ents, tmp, n, all, s->spec->key_compare);
        for (i = 0; i < n; i++) {
            keys[i] = mrf__rec_key(all + ents[i].off);
            lens[i] = mrf__rec_klen(all + ents[i].off);
        }
        if (mrf__splitters_from_sorted(keys, lens, n, s->opt->buckets, &s->sp))
            MPI_Abort(s->comm, 1);
        mrf__log(MRF_LOG_INFO, "range partitioning: %zu sampled keys, %u buckets", n, s->sp.n + 1);
        mrf__free(ents);
        mrf__free(tmp);
        mrf__free(keys);
        mrf__free(lens);
        mrf__free(all);
        mrf__free(counts);
        mrf__free(displs);
    }
    rc = mrf__splitters_bcast(&s->sp, s->comm);
    if (rc == MRF_OK)
        s->nb = s->sp.n + 1;
    return agree(s, rc);
}

/* ------------------------------------------------------------------ map -- */

static uint32_t drain_bucket(void *ctx, const void *key, size_t klen, uint64_t h)
{
    const stage *s = ctx;
    if (s->range)
        return mrf__range_bucket(&s->sp, key, klen, s->spec->key_compare);
    return mrf__hash_bucket(h, s->nb);
}

/* Moves the combining table's entries into the map arena. */
static int drain_table(stage *s)
{
    if (mrf__ctable_drain(&s->ct, &s->kv, drain_bucket, s, s->bucket_bytes))
        return mrf__fail(MRF_ENOMEM, "out of memory for map output");
    return MRF_OK;
}

static int combine_one(stage *s, uint64_t h, const void *k, size_t kl, const void *v, size_t vl)
{
    int rc = mrf__ctable_add(s->target, h, k, kl, v, vl, s->spec->combine, s->spec->ctx);
    if (rc == MRF_EINVAL)
        return mrf__fail(rc,
                         "job '%s': values of one key have different lengths; a job with a "
                         "combiner must emit values of one length per key",
                         s->spec->name);
    if (rc)
        return mrf__fail(rc, "out of memory in the combining table");
    if (s->target->used < s->ct_max_keys)
        return MRF_OK;
    if (s->target == &s->ct)
        return drain_table(s);
    /* a task's own table overflows into the task's arena */
    if (mrf__ctable_drain(&s->tt, &s->tkv, drain_bucket, s, NULL))
        return mrf__fail(MRF_ENOMEM, "out of memory for map output");
    return MRF_OK;
}

static int fold_oldest(stage *s)
{
    const pending *p = &s->q[s->qhead];
    s->qhead = (s->qhead + 1) % EMIT_RING;
    s->nq--;
    return combine_one(s, p->h, p->data, p->klen, p->data + p->klen, p->vlen);
}

static int flush_pending(stage *s)
{
    int rc = MRF_OK;
    while (s->nq && rc == MRF_OK)
        rc = fold_oldest(s);
    return rc;
}

static int map_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    stage *s = e->state;
    const mrf_job_spec *spec = s->spec;
    if (kl > INT32_MAX || vl > INT32_MAX)
        return mrf__fail(MRF_EINVAL, "job '%s' emitted a key or value over 2 GiB", spec->name);
    if (spec->combine) {
        /* the bucket is decided when the table is drained */
        uint64_t h = mrf__key_hash(k, kl);
        int rc;
        if (kl + vl > EMIT_INLINE)
            return combine_one(s, h, k, kl, v, vl);
        if (s->nq == EMIT_RING && (rc = fold_oldest(s)))
            return rc;
        pending *p = &s->q[(s->qhead + s->nq++) % EMIT_RING];
        p->h = h;
        p->klen = (uint32_t)kl;
        p->vlen = (uint32_t)vl;
        if (kl)
            memcpy(p->data, k, kl);
        if (vl)
            memcpy(p->data + kl, v, vl);
        mrf__ctable_prefetch(s->target, h);
        return MRF_OK;
    }
    uint32_t b = s->range ? mrf__range_bucket(&s->sp, k, kl, spec->key_compare)
                          : mrf__hash_bucket(mrf__key_hash(k, kl), s->nb);
    if (mrf__kvbuf_append(&s->kv, b, k, kl, v, vl, NULL))
        return mrf__fail(MRF_ENOMEM, "out of memory for map output");
    s->bucket_bytes[b] += MRF_KV_HDR + kl + vl;
    return MRF_OK;
}

/* Progress, fault injection and the check for a copy that already won run
 * 16 times per task, at least every 64 KiB, at most every 1 MiB of input. */
static size_t check_bytes(uint64_t len)
{
    uint64_t c = len / 16;
    return (size_t)(c < (64u << 10) ? (64u << 10) : c > (1u << 20) ? (1u << 20) : c);
}

typedef struct task_run {
    long index;
    bool backup;
    double t0, chunk0;
    double rate_t0;       /* the rate is measured from the first checkpoint on, */
    uint64_t rate_bytes0; /* past start-up effects */
    uint64_t records;
    bool aborted;
} task_run;

static void checkpoint(stage *s, task_run *tr, uint64_t done)
{
    double now = MPI_Wtime();
    const mrf__options *o = s->opt;
    if (o->fault_rank == s->rank && now - s->map_t0 >= o->fault_after && o->fault_factor > 1) {
        /* testing switch: stretch this chunk to factor x its time, sleeping
         * in 1 ms slices that let MPI serve other ranks' one-sided requests,
         * as a slow CPU would at each checkpoint */
        double until = now + (o->fault_factor - 1) * (now - tr->chunk0);
        while ((now = MPI_Wtime()) < until) {
            double left = until - now;
            struct timespec ts = {0, (long)((left < 1e-3 ? left : 1e-3) * 1e9)};
            nanosleep(&ts, NULL);
            mrf__sched_poke(s->sched);
        }
    }
    tr->chunk0 = now;
    double rate = 0;
    if (tr->rate_t0 == 0) {
        tr->rate_t0 = now;
        tr->rate_bytes0 = done;
    } else if (now > tr->rate_t0) {
        rate = (double)(done - tr->rate_bytes0) / (now - tr->rate_t0);
    }
    if (mrf__sched_progress(s->sched, tr->index, tr->backup, done, rate))
        tr->aborted = true;
}

/* Runs map over one task's records into the task's output. */
static int map_one(stage *s, const mrf__task *t, const char *buf, task_run *tr)
{
    const mrf_job_spec *spec = s->spec;
    mrf_emitter em = {.fn = map_emit, .state = s};
    mrf_record rec = {.file = s->plan.paths[t->file]};
    size_t every = check_bytes(t->len);
    const char *p = buf, *end = buf + t->len, *next_check = buf + every;
    while (p < end && em.rc == MRF_OK && !tr->aborted) {
        const char *nl = NULL;
        rec.data = p;
        if (spec->input == MRF_INPUT_RECORDS) {
            rec.len = spec->record_size;
        } else {
            nl = memchr(p, '\n', (size_t)(end - p));
            rec.len = (size_t)((nl ? nl : end) - p);
        }
        rec.offset = t->off + (uint64_t)(p - buf);
        spec->map(&rec, &em, spec->ctx);
        tr->records++;
        p = spec->input == MRF_INPUT_RECORDS ? p + spec->record_size : (nl ? nl + 1 : end);
        if (p >= next_check && p < end) {
            checkpoint(s, tr, (uint64_t)(p - buf));
            next_check = p + every;
        }
    }
    if (em.rc == MRF_OK && !tr->aborted)
        checkpoint(s, tr, t->len);
    if (em.rc == MRF_OK && spec->combine)
        return flush_pending(s);
    return em.rc;
}

/* The task's copy won: its output becomes the rank's. */
static int keep_task(stage *s)
{
    if (!s->spec->combine || s->target == &s->ct)
        return MRF_OK; /* already in place */
    /* Packing weights: each committed task's own combined output, bucket by
     * bucket.  Unlike the rank's combined bytes, these do not depend on which
     * rank mapped which task, so the bucket -> rank map, and with it every
     * output part, is the same in every run of the same plan. */
    int rc = mrf__ctable_merge(&s->ct, &s->tt, s->spec->combine, s->spec->ctx, drain_bucket, s,
                               s->pack_bytes);
    if (rc)
        return mrf__fail(rc, "combining a task's output failed");
    if (s->ct.used >= s->ct_max_keys && (rc = drain_table(s)))
        return rc;
    if (s->tkv.len) {
        if (mrf__kvbuf_reserve(&s->kv, s->tkv.len))
            return mrf__fail(MRF_ENOMEM, "out of memory for map output");
        memcpy(s->kv.base + s->kv.len, s->tkv.base, s->tkv.len);
        for (size_t at = 0; at < s->tkv.len; at += mrf__rec_size(s->tkv.base + at)) {
            uint32_t b = mrf__rec_bucket(s->tkv.base + at);
            s->bucket_bytes[b] += mrf__rec_size(s->tkv.base + at);
            s->pack_bytes[b] += mrf__rec_size(s->tkv.base + at);
        }
        s->kv.len += s->tkv.len;
        s->tkv.len = 0;
    }
    return MRF_OK;
}

/* The task's copy lost or stopped: forget its output. */
static void drop_task(stage *s, size_t kv_start)
{
    if (s->spec->combine) {
        s->nq = 0;
        mrf__ctable_clear(&s->tt);
        s->tkv.len = 0;
        return;
    }
    for (size_t at = kv_start; at < s->kv.len; at += mrf__rec_size(s->kv.base + at))
        s->bucket_bytes[mrf__rec_bucket(s->kv.base + at)] -= mrf__rec_size(s->kv.base + at);
    s->kv.len = kv_start;
}

static int map_tasks(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    char *buf = NULL;
    size_t cap = 0;
    int rc = MRF_OK;
    s->bucket_bytes = mrf__calloc(s->nb, sizeof *s->bucket_bytes);
    s->pack_bytes = mrf__calloc(s->nb, sizeof *s->pack_bytes);
    if (!s->bucket_bytes || !s->pack_bytes)
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    /* MRFLOW_COMBINE_MAX_KEYS (a testing switch) lowers the table's cap */
    const char *cap_env = getenv("MRFLOW_COMBINE_MAX_KEYS");
    s->ct_max_keys = cap_env && atol(cap_env) > 0 ? (size_t)atol(cap_env) : CTABLE_MAX_KEYS;
    /* size the tables from the input: one slot per 16 bytes of this rank's
     * share (the rank table) or per 64 bytes of the largest task (a task's
     * table), within 64 Ki to 2 Mi slots.  Text has far fewer distinct keys
     * than that, so they rarely grow, and small jobs do not touch 64 MiB */
    uint64_t my_bytes = 0, seen = 0, max_task = 0;
    for (size_t i = 0; i < s->plan.n_tasks; i++) {
        if (my_task(s, seen, s->plan.tasks[i].len))
            my_bytes += s->plan.tasks[i].len;
        seen += s->plan.tasks[i].len;
        if (s->plan.tasks[i].len > max_task)
            max_task = s->plan.tasks[i].len;
    }
#define CLAMP_SLOTS(b)                                                                             \
    ((b) / 16 < (1u << 16) ? (1u << 16) : (b) / 16 > (1u << 21) ? (1u << 21) : (size_t)((b) / 16))
    if (rc == MRF_OK && spec->combine &&
        (mrf__ctable_init(&s->ct, CLAMP_SLOTS(my_bytes)) ||
         (s->opt->speculate && mrf__ctable_init(&s->tt, CLAMP_SLOTS(max_task / 4)))))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the combining table");
#undef CLAMP_SLOTS
    /* without speculation every copy commits: combine straight into ct */
    s->target = s->opt->speculate ? &s->tt : &s->ct;
    int max_backups = s->opt->max_backups ? s->opt->max_backups : s->size / 4;
    if (max_backups < 1)
        max_backups = 1;
    int crc = mrf__sched_create(s->comm, &s->plan, s->opt->speculate, max_backups, &s->sched);
    if (crc) { /* every rank got the same answer: no scheduler, no tasks */
        mrf__ctable_destroy(&s->tt);
        return rc ? rc : crc;
    }
    s->map_t0 = MPI_Wtime();
    for (;;) {
        long ti;
        bool backup;
        if (rc) {
            mrf__sched_fail(s->sched);
            break;
        }
        if ((rc = mrf__sched_next(s->sched, &ti, &backup)) || ti < 0)
            break;
        const mrf__task *t = &s->plan.tasks[ti];
        if (s->opt->fail_rank == s->rank) {
            rc = mrf__fail(MRF_EIO, "injected failure (--fault fail:rank=%d) in task %ld of '%s'",
                           s->rank, ti, s->plan.paths[t->file]);
            continue;
        }
        if ((rc = mrf__task_read(&s->plan, t, &buf, &cap)))
            continue;
        double t0 = MPI_Wtime();
        task_run tr = {.index = ti, .backup = backup, .t0 = t0, .chunk0 = t0};
        size_t kv_start = s->kv.len;
        if ((rc = map_one(s, t, buf, &tr)))
            continue;
        double took = MPI_Wtime() - t0;
        mrf__log(MRF_LOG_DEBUG, "task %ld%s: %.3f-%.3f s into the map phase%s", ti,
                 backup ? " (backup)" : "", t0 - s->map_t0, t0 + took - s->map_t0,
                 tr.aborted ? ", stopped: another copy committed" : "");
        if (tr.aborted) {
            drop_task(s, kv_start);
            mrf__sched_abandon(s->sched, ti, backup, t->len, took);
        } else if (mrf__sched_commit(s->sched, ti, backup, t->len, took)) {
            rc = keep_task(s);
            s->my_input_bytes += t->len;
            s->records_in += tr.records;
        } else {
            drop_task(s, kv_start);
        }
    }
    s->sst = *mrf__sched_get_stats(s->sched);
    mrf__sched_destroy(s->sched);
    s->sched = NULL;
    if (rc == MRF_OK && spec->combine)
        rc = drain_table(s);
    mrf__big_free(buf, cap);
    mrf__ctable_destroy(&s->tt);
    mrf__kvbuf_destroy(&s->tkv);
    /* the drained (empty) table stays for the reducing side's combine */
    return rc;
}

/* -------------------------------------------------------------- shuffle -- */

static int exchange(stage *s)
{
    int rc = MRF_OK;
    size_t P = (size_t)s->size;
    int32_t *owner = mrf__malloc((size_t)s->nb * sizeof *owner);
    uint64_t *global = mrf__malloc((size_t)s->nb * sizeof *global);
    uint64_t *scount = mrf__calloc(P, sizeof *scount);
    uint64_t *sdisp = mrf__calloc(P, sizeof *sdisp);
    uint64_t *pos = mrf__calloc(P, sizeof *pos);
    char *send = NULL;
    size_t send_len = s->kv.len;
    if (!owner || !global || !scount || !sdisp || !pos)
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    if ((rc = agree(s, rc)))
        goto out;
    /* pack by the per-task weights where they exist (a combining job with
     * speculation on); otherwise by the arena's bytes, which for a job
     * without a combiner are just as placement-independent */
    const uint64_t *weights =
        s->spec->combine && s->opt->speculate ? s->pack_bytes : s->bucket_bytes;
    if (MPI_Allreduce(weights, global, (int)s->nb, MPI_UINT64_T, MPI_SUM, s->comm) != MPI_SUCCESS) {
        rc = MRF_EMPI;
        goto out;
    }
    if (s->range)
        mrf__pack_contiguous(global, s->nb, s->size, owner);
    else if (mrf__pack_lpt(global, s->nb, s->size, owner))
        rc = mrf__fail(MRF_ENOMEM, "out of memory packing buckets");

    if (rc == MRF_OK && s->size > 1) {
        for (uint32_t b = 0; b < s->nb; b++)
            scount[owner[b]] += s->bucket_bytes[b];
        for (size_t d = 1; d < P; d++)
            sdisp[d] = sdisp[d - 1] + scount[d - 1];
        memcpy(pos, sdisp, P * sizeof *pos);
        if (!(send = mrf__big_alloc(send_len)))
            rc = mrf__fail(MRF_ENOMEM, "out of memory for %zu bytes of shuffle output", send_len);
        for (size_t at = 0; rc == MRF_OK && at < s->kv.len;) {
            const char *r = s->kv.base + at;
            size_t n = mrf__rec_size(r);
            int32_t d = owner[mrf__rec_bucket(r)];
            memcpy(send + pos[d], r, n);
            pos[d] += n;
            at += n;
        }
    }
    if ((rc = agree(s, rc)) || s->size == 1)
        goto out;
    /* the map arena is free now: it becomes the receive arena */
    s->kv.len = 0;
    rc = mrf__shuffle(s->comm, send, scount, sdisp, s->opt->round_bytes, &s->kv, &s->shuf);
out:
    mrf__big_free(send, send_len);
    mrf__free(owner);
    mrf__free(global);
    mrf__free(scount);
    mrf__free(sdisp);
    mrf__free(pos);
    return rc;
}

/* --------------------------------------------------------------- reduce -- */

static int reduce_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    stage *s = e->state;
    s->records_out++;
    return mrf__writer_put(s->out, k, kl, v, vl);
}

static bool same_key(const stage *s, const mrf__sort_ent *a, const mrf__sort_ent *b)
{
    const char *x = s->kv.base + a->off, *y = s->kv.base + b->off;
    if (s->spec->key_compare)
        return s->spec->key_compare(mrf__rec_key(x), mrf__rec_klen(x), mrf__rec_key(y),
                                    mrf__rec_klen(y)) == 0;
    return a->prefix == b->prefix && mrf__rec_klen(x) == mrf__rec_klen(y) &&
           memcmp(mrf__rec_key(x), mrf__rec_key(y), mrf__rec_klen(x)) == 0;
}

static int reduce_local(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int rc;
    size_t n = 0;
    mrf__sort_ent *ents = NULL, *tmp = NULL;
    if (mrf__kvbuf_check(s->kv.base, s->kv.len, &n))
        return mrf__fail(MRF_EINTERNAL, "shuffle delivered a malformed record stream");
    if (spec->combine) {
        mrf__kvbuf combined = {0};
        if ((rc = mrf__combine_records(&s->ct, s->kv.base, s->kv.len, spec, &combined))) {
            mrf__kvbuf_destroy(&combined);
            return rc;
        }
        mrf__kvbuf_destroy(&s->kv);
        s->kv = combined;
        n = 0;
        for (size_t at = 0; at < s->kv.len; at += mrf__rec_size(s->kv.base + at))
            n++;
    }
    size_t bytes = (n ? n : 1) * sizeof *ents;
    ents = mrf__big_alloc(bytes);
    tmp = mrf__big_alloc(bytes);
    if (!ents || !tmp) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a sort index of %zu records", n);
        goto out;
    }
    size_t i = 0;
    for (size_t at = 0; at < s->kv.len;) {
        const char *r = s->kv.base + at;
        ents[i].off = at;
        ents[i].prefix = mrf__key_prefix(mrf__rec_key(r), mrf__rec_klen(r));
        i++;
        at += mrf__rec_size(r);
    }
    mrf__sort_records(ents, tmp, n, s->kv.base, spec->key_compare);

    if ((rc = mrf__writer_open(s->tmpdir, s->rank, spec->output, &s->out)))
        goto out;
    mrf_emitter em = {.fn = reduce_emit, .state = s};
    for (i = 0; i < n && em.rc == MRF_OK;) {
        size_t j = i + 1;
        while (j < n && same_key(s, &ents[i], &ents[j]))
            j++;
        const char *r = s->kv.base + ents[i].off;
        mrf_values vals = {.base = s->kv.base, .ents = ents, .i = i, .end = j, .count = j - i};
        spec->reduce(mrf__rec_key(r), mrf__rec_klen(r), &vals, &em, spec->ctx);
        i = j;
    }
    rc = em.rc;
    if (rc == MRF_OK)
        rc = mrf__writer_close(s->out, &s->bytes_out);
    else
        mrf__writer_abort(s->out);
    s->out = NULL;
out:
    mrf__big_free(ents, bytes);
    mrf__big_free(tmp, bytes);
    return rc;
}

/* -------------------------------------------------------------- summary -- */

static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}

enum { SST_RUN, SST_STOLEN, SST_LAUNCHED, SST_WON, SST_DISCARDED, SST_N };

static void summary(stage *s, double elapsed)
{
    uint64_t sum[5 + SST_N] = {s->my_input_bytes, s->records_in,           s->records_out,
                               s->bytes_out,      s->shuf.bytes_sent,      s->sst.tasks_run,
                               s->sst.stolen,     s->sst.backups_launched, s->sst.backups_won,
                               s->sst.discarded};
    uint64_t max[2] = {peak_rss_bytes(), s->shuf.rounds};
    uint64_t gsum[5 + SST_N], gmax[2];
    MPI_Reduce(sum, gsum, 5 + SST_N, MPI_UINT64_T, MPI_SUM, 0, s->comm);
    MPI_Reduce(max, gmax, 2, MPI_UINT64_T, MPI_MAX, 0, s->comm);
    /* per rank: tasks, stolen, backups launched/won, discarded, histogram */
    enum { W = SST_N + MRF_SCHED_HIST };
    uint64_t mine[W] = {s->sst.tasks_run, s->sst.stolen, s->sst.backups_launched,
                        s->sst.backups_won, s->sst.discarded};
    memcpy(mine + SST_N, s->sst.hist, sizeof s->sst.hist);
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
        fprintf(stderr, "mrflow: rank  tasks stolen backups won discarded | task ms: <1 <2 <4 "
                        "... (counts per power of two)\n");
        for (int r = 0; r < s->size; r++) {
            const uint64_t *e = all + (size_t)r * W;
            char hist[256];
            size_t n = 0;
            for (int b = 0; b < MRF_SCHED_HIST && n < sizeof hist; b++)
                n += (size_t)snprintf(hist + n, sizeof hist - n, " %llu",
                                      (unsigned long long)e[SST_N + b]);
            fprintf(stderr, "mrflow: %4d %6llu %6llu %7llu %3llu %9llu |%s\n", r,
                    (unsigned long long)e[0], (unsigned long long)e[1], (unsigned long long)e[2],
                    (unsigned long long)e[3], (unsigned long long)e[4], hist);
        }
    }
    mrf__free(all);
}

/* ---------------------------------------------------------------- stage -- */

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

static int run_stage(stage *s)
{
    double t0 = MPI_Wtime(), t;
    int rc;
    make_run_id(s);
    if ((rc = plan_and_share(s)))
        goto out;
    if ((rc = mrf__output_begin(s->comm, s->opt->output, s->opt->overwrite, s->run_id, &s->tmpdir)))
        goto out;
    s->range = s->spec->partitioning == MRF_PART_RANGE;
    s->nb = s->opt->buckets;
    if (s->range && (rc = choose_splitters(s)))
        goto out_with_tmpdir;

    t = MPI_Wtime();
    rc = map_tasks(s);
    s->t_map = MPI_Wtime() - t;
    if ((rc = agree(s, rc)))
        goto out_with_tmpdir;

    t = MPI_Wtime();
    rc = exchange(s);
    s->t_shuffle = MPI_Wtime() - t;
    if ((rc = agree(s, rc)))
        goto out_with_tmpdir;

    t = MPI_Wtime();
    rc = reduce_local(s);
    s->t_reduce = MPI_Wtime() - t;
    if ((rc = agree(s, rc)))
        goto out_with_tmpdir;

    if (s->rank == 0)
        rc = mrf__output_commit(s->tmpdir, s->opt->output, s->opt->overwrite, s->run_id);
    MPI_Bcast(&rc, 1, MPI_INT, 0, s->comm);
    if (rc)
        goto out_with_tmpdir;
    summary(s, MPI_Wtime() - t0);
    goto out;

out_with_tmpdir:
    if (s->rank == 0) {
        mrf__output_discard(s->tmpdir);
        mrf__log(MRF_LOG_ERROR, "job '%s' failed; no output was written to '%s'", s->spec->name,
                 s->opt->output);
    }
out:
    mrf__free(s->tmpdir);
    s->tmpdir = NULL;
    mrf__kvbuf_destroy(&s->kv);
    mrf__ctable_destroy(&s->ct);
    mrf__free(s->bucket_bytes);
    s->bucket_bytes = NULL;
    mrf__free(s->pack_bytes);
    s->pack_bytes = NULL;
    mrf__splitters_free(&s->sp);
    mrf__plan_free(&s->plan);
    return rc;
}

static int check_spec(const mrf_job_spec *spec)
{
    if (!spec || !spec->name || !spec->map || !spec->reduce)
        return mrf__fail(MRF_EINVAL, "job spec lacks a name, map or reduce");
    if (spec->input == MRF_INPUT_RECORDS &&
        (spec->record_size == 0 || spec->record_size > INT32_MAX))
        return mrf__fail(MRF_EINVAL, "job '%s': record_size must be 1 to 2^31-1", spec->name);
    if (spec->input != MRF_INPUT_LINES && spec->input != MRF_INPUT_RECORDS)
        return mrf__fail(MRF_EINVAL, "job '%s': unknown input kind", spec->name);
    return MRF_OK;
}

int mrf_main(int argc, char **argv, const mrf_job_spec *spec)
{
    int inited = 0, rank = 0, rc;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "mrflow: error: MPI_Init failed\n");
        return MRF_EXIT_FAILED;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    mrf__log_init(rank, MRF_LOG_WARN);

    mrf__options opt;
    char err[MRF_ERRLEN];
    const char *prog = argc > 0 && argv[0] ? argv[0] : "mrflow";
    rc = check_spec(spec);
    if (rc == MRF_OK) {
        rc = mrf__parse_options(argc, argv, &opt, err, sizeof err);
        if (rc) {
            if (rank == 0)
                fprintf(stderr, "mrflow: error: %s\n", err);
        } else if (opt.help || opt.version) {
            if (rank == 0 && opt.help)
                mrf__print_run_help(prog, spec);
            else if (rank == 0)
                printf("mrflow %s\n", mrf_version());
            mrf__options_free(&opt);
        } else {
            mrf__log_init(rank, opt.log_level);
            stage s = {.spec = spec, .opt = &opt};
            MPI_Comm_dup(MPI_COMM_WORLD, &s.comm);
            MPI_Comm_rank(s.comm, &s.rank);
            MPI_Comm_size(s.comm, &s.size);
            rc = run_stage(&s);
            MPI_Comm_free(&s.comm);
            mrf__options_free(&opt);
            /* every engine byte is accounted in mem.c: none may outlive the job */
            size_t left = mrf__mem_in_use();
            if (left) {
                mrf__log(MRF_LOG_WARN, "internal: %zu bytes still allocated after the job", left);
                if (getenv("MRFLOW_STRICT_MEM") && rc == MRF_OK)
                    rc = MRF_EINTERNAL;
            }
        }
    }
    if (!inited)
        MPI_Finalize();
    return mrf__exit_status(rc);
}
