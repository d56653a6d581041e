/*
 * jobsample.c -- a stage's decisions taken before the map from a sample of
 * its input: the heavy keys of the skew partitioner and the range
 * splitters.  Each rank runs the job's map over about 256 KiB of its share;
 * rank 0 merges what the ranks found and broadcasts the decisions.
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

/* -------------------------------------------------------------- sampling -- */

static int sample_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)v;
    (void)vl;
    return mrf__kvbuf_append(e->state, 0, k, kl, NULL, 0, NULL) ? MRF_ENOMEM : MRF_OK;
}

/* Line input is sampled in blocks of this many bytes, every whole line in
 * each; fixed-size records one at a time. */
#define SAMPLE_BLOCK (16u << 10)

/* Runs map on up to k records (line input: the lines of k blocks) spread
 * evenly over task t; the emits go to em. */
/* A compressed task's sample: the whole lines of its first k blocks' worth
 * of bytes (reaching a block further in would decompress all before it). */
static int sample_compressed(stage *s, const mrf__task *t, uint64_t k, mrf_emitter *em)
{
    mrf__zin *z = NULL;
    char *buf = NULL;
    size_t cap = 0;
    const char *data;
    size_t len;
    uint64_t base;
    mrf_record rec = {.file = s->plan.paths[t->file]};
    int fd, rc = mrf__input_open(rec.file, "sampling", &fd);
    if (rc == MRF_OK)
        rc = mrf__zin_open(fd, rec.file, s->plan.sizes[t->file], t, (size_t)k * SAMPLE_BLOCK, &buf,
                           &cap, &z);
    if (rc == MRF_OK && (rc = mrf__zin_next(z, &data, &len, &base)) == MRF_OK) {
        for (const char *p = data, *e = data + len; p < e && em->rc == MRF_OK;) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            rec.data = p;
            rec.len = (size_t)((nl ? nl : e) - p);
            rec.offset = base + (uint64_t)(p - data);
            s->spec->map(&rec, em, s->spec->ctx);
            p = nl ? nl + 1 : e;
        }
        rc = em->rc;
    }
    mrf__zin_close(z);
    mrf__big_free(buf, cap);
    return rc;
}

/* A dataset task's sample: k rows spread evenly over it, one read. */
static int sample_dataset(stage *s, const mrf__task *t, uint64_t k, mrf_emitter *em)
{
    uint64_t rows = t->len / t->clen;
    k = k > rows ? rows : k ? k : 1;
    char *buf = NULL;
    size_t cap = 0;
    mrf_record rec = {.file = s->plan.paths[t->file], .len = (size_t)t->clen};
    int rc = mrf__h5in_read(rec.file, t, rows / k, k, &buf, &cap, &s->dtype);
    rec.type = s->dtype;
    for (uint64_t i = 0; rc == MRF_OK && i < k && em->rc == MRF_OK; i++) {
        rec.data = buf + i * t->clen;
        rec.offset = t->off / t->clen + i * (rows / k);
        s->spec->map(&rec, em, s->spec->ctx);
    }
    mrf__big_free(buf, cap);
    return rc ? rc : em->rc;
}

static int sample_task(stage *s, const mrf__task *t, uint64_t k, mrf_emitter *em)
{
    if (t->codec == MRF__CODEC_HDF5)
        return sample_dataset(s, t, k, em);
    if (t->codec != MRF__CODEC_NONE)
        return sample_compressed(s, t, k, em);
    const mrf_job_spec *spec = s->spec;
    const char *path = s->plan.paths[t->file];
    int rc = MRF_OK;
    size_t bufsz = spec->input == MRF_INPUT_RECORDS ? spec->record_size : SAMPLE_BLOCK;
    char *buf = mrf__malloc(bufsz);
    int fd = -1;
    if (!buf) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory while sampling '%s'", path);
        goto out;
    }
    if ((rc = mrf__input_open(path, "sampling", &fd)))
        goto out;
    uint64_t units = spec->input == MRF_INPUT_RECORDS ? t->len / spec->record_size : t->len;
    if (spec->input == MRF_INPUT_LINES && k > units / SAMPLE_BLOCK) /* blocks must not overlap */
        k = units / SAMPLE_BLOCK ? units / SAMPLE_BLOCK : 1;
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
            /* every whole line in the block */
            while (p < e && em->rc == MRF_OK) {
                const char *nl = memchr(p, '\n', (size_t)(e - p));
                if (!nl && at + (uint64_t)got < end)
                    break; /* cut off by the block's end */
                rec.data = p;
                rec.len = (size_t)((nl ? nl : e) - p);
                rec.offset = at + (uint64_t)(p - buf);
                spec->map(&rec, em, spec->ctx);
                p = nl ? nl + 1 : e;
            }
            continue;
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

/* Samples this rank's home tasks into em.  For splitters (range): line
 * input about a 128th of the input (256 KiB to 16 MiB in all) in blocks,
 * record input 8 records per bucket (1 Ki to 1 Mi in all).  For heavy keys
 * (skew), whose threshold is 1/(20 x ranks) of the data, a few thousand
 * records per rank estimate every heavy key's share to a few percent: 256
 * KiB of lines per rank (at most a 64th of the input, unless that is less
 * than 256 KiB), or 4096 records. */
static int sample_input(stage *s, mrf_emitter *em, bool heavy)
{
    int rc = MRF_OK;
    uint64_t total = s->plan.total_bytes, target;
    if (s->spec->input == MRF_INPUT_RECORDS || s->spec->input == MRF_INPUT_DATASET) {
        target = heavy ? 4096u * (uint64_t)s->size : (uint64_t)s->opt->buckets * 8;
        target = target < 1024 ? 1024 : target > (1u << 20) ? (1u << 20) : target;
    } else if (heavy) {
        target = (256u << 10) * (uint64_t)s->size;
        if (target > total / 64 && total / 64 > (256u << 10))
            target = total / 64;
        else if (target > total / 64) /* a small input: 256 KiB of it */
            target = 256u << 10;
        target /= SAMPLE_BLOCK;
    } else {
        target = total / 128;
        target = target < (256u << 10) ? (256u << 10) : target > (16u << 20) ? (16u << 20) : target;
        target /= SAMPLE_BLOCK;
    }
    uint64_t before = 0;
    for (size_t i = 0; i < s->plan.n_tasks && rc == MRF_OK; i++) {
        const mrf__task *t = &s->plan.tasks[i];
        if (mrf__st_my_task(s, before, t->len) && total) {
            uint64_t k = (uint64_t)(((unsigned __int128)target * t->len + total - 1) / total);
            rc = sample_task(s, t, k, em);
        }
        before += t->len;
    }
    return rc;
}

typedef struct sample_counts {
    mrf__ctable t;
    uint64_t weight;
    int rc;
} sample_counts;

/* Sampled emits for heavy-key detection: weight (record bytes) per key. */
static int count_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    sample_counts *c = e->state;
    (void)v;
    uint64_t w = MRF_KV_HDR + kl + vl;
    c->weight += w;
    if (mrf__ctable_add(&c->t, mrf__key_hash(k, kl), k, kl, &w, sizeof w, mrf_combine_sum_u64,
                        NULL))
        return MRF_ENOMEM;
    return MRF_OK;
}

/* Every rank's n bytes at mine, concatenated in rank order at rank 0 (NULL
 * elsewhere; *total: their length).  Collective.  Small, so running out of
 * memory for it aborts the job. */
static char *gather_bytes(stage *s, const void *mine, int n, size_t *total)
{
    int *counts = NULL, *displs = NULL;
    char *all = NULL;
    *total = 0;
    if (s->rank == 0 && (!(counts = mrf__calloc((size_t)s->size, sizeof *counts)) ||
                         !(displs = mrf__calloc((size_t)s->size, sizeof *displs))))
        MPI_Abort(s->comm, 1);
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, s->comm);
    if (s->rank == 0) {
        for (int r = 0; r < s->size; r++) {
            displs[r] = (int)*total;
            *total += (size_t)counts[r];
        }
        if (!(all = mrf__malloc(*total ? *total : 1)))
            MPI_Abort(s->comm, 1);
    }
    MPI_Gatherv(mine, n, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, s->comm);
    mrf__free(counts);
    mrf__free(displs);
    return all;
}

/* Skew partitioning: every rank samples its share of the input, counts the
 * sampled keys' weights and sends its MRF__HEAVY_TOP heaviest to rank 0,
 * which sums them and picks the heavy keys for everyone. */
int mrf__st_find_heavy_keys(stage *s)
{
    sample_counts c = {0};
    mrf_emitter em = {
        .fn = count_emit, .state = &c, .prev = s->prev_sums, .opt = s->opt, .run = s->run_index};
    mrf__kvbuf drained = {0};
    mrf__hkey *top = NULL, *all = NULL;
    int rc = MRF_OK, mine = 0;
    size_t n = 0;
    if (mrf__ctable_init(&c.t, 1u << 14))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the key sample");
    double t0 = MPI_Wtime();
    if (rc == MRF_OK)
        rc = sample_input(s, &em, true);
    mrf__log(MRF_LOG_DEBUG, "heavy keys: sampled %llu bytes of records in %.3f s",
             (unsigned long long)c.weight, MPI_Wtime() - t0);
    if (rc == MRF_OK && mrf__ctable_drain(&c.t, &drained, NULL, NULL, NULL))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the key sample");
    if (rc == MRF_OK && mrf__kvbuf_check(drained.base, drained.len, &n))
        rc = mrf__fail(MRF_EINTERNAL, "malformed key sample");
    if (rc == MRF_OK && !(top = mrf__calloc(n ? n : 1, sizeof *top)))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the key sample");
    if (rc == MRF_OK) {
        size_t i = 0;
        for (size_t at = 0; at < drained.len; at += mrf__rec_size(drained.base + at), i++) {
            const char *r = drained.base + at;
            size_t kl = mrf__rec_klen(r);
            top[i].hash = mrf__key_hash(mrf__rec_key(r), kl);
            memcpy(&top[i].weight, mrf__rec_val(r), 8);
            top[i].klen = (uint32_t)kl;
            memcpy(top[i].name, mrf__rec_key(r), kl < MRF__HEAVY_NAME ? kl : MRF__HEAVY_NAME);
        }
        mrf__hkeys_by_weight(top, n);
        mine = (int)(n < MRF__HEAVY_TOP ? n : MRF__HEAVY_TOP) * (int)sizeof *top;
    }
    mrf__kvbuf_destroy(&drained);
    mrf__ctable_destroy(&c.t);
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    uint64_t weight = 0;
    MPI_Allreduce(&c.weight, &weight, 1, MPI_UINT64_T, MPI_SUM, s->comm);
    s->sample_weight = weight;
    size_t got = 0;
    all = (mrf__hkey *)gather_bytes(s, top, mine, &got);
    if (s->rank == 0) {
        size_t k = mrf__hkeys_merge(all, got / sizeof *all);
        if (mrf__heavy_pick(all, k, weight, s->size, s->split_ok, &s->hv))
            MPI_Abort(s->comm, 1);
    }
    rc = mrf__st_agree(s, mrf__heavy_bcast(&s->hv, s->comm));
out:
    mrf__free(top);
    mrf__free(all);
    return rc;
}

int mrf__st_choose_splitters(stage *s)
{
    mrf__kvbuf samples = {0};
    mrf_emitter em = {.fn = sample_emit,
                      .state = &samples,
                      .prev = s->prev_sums,
                      .opt = s->opt,
                      .run = s->run_index};
    int rc = sample_input(s, &em, false);
    if (rc == MRF_OK && samples.len > (size_t)(INT_MAX / s->size))
        samples.len = 0; /* absurdly large keys: fall back to fewer buckets */
    rc = mrf__st_agree(s, rc);
    if (rc) {
        mrf__kvbuf_destroy(&samples);
        return rc;
    }

    size_t total = 0;
    char *all = gather_bytes(s, samples.base, (int)samples.len, &total);
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
        mrf__st_sort_index(s, all, total, ents, tmp, n);
        for (size_t i = 0; i < n; i++) {
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
    }
    rc = mrf__splitters_bcast(&s->sp, s->comm);
    if (rc == MRF_OK)
        s->nb = s->sp.n + 1;
    return mrf__st_agree(s, rc);
}
