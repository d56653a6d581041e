/*
 * jobreduce.c -- a stage's reduce: the sorted reduce input (in memory, or
 * merged from spilled runs) handed key by key to the job's reduce, whose
 * emits the output writer takes.
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

/* --------------------------------------------------------------- reduce -- */

/* The part's writer: a new part, or the one a stopped run left, continued
 * where it stood (s->red_pos). */
static int open_part(stage *s)
{
    int fmt = s->opt->kv_output     ? MRF__OUTPUT_KV
              : s->opt->format_hdf5 ? MRF__OUTPUT_H5STAGE
                                    : (int)s->spec->output;
    int rc = s->red_continue ? mrf__writer_reopen(s->tmpdir, s->rank, fmt, &s->red_pos, &s->out)
                             : mrf__writer_open(s->tmpdir, s->rank, fmt, &s->out);
    if (rc == MRF_OK)
        mrf__writer_clock(s->out, &s->prof.red_write, &s->prof.red_fsync);
    return rc;
}

/* A key the stopped run reduced already: passed over.  The last of them
 * must be the key it reduced last, or the part cannot be continued. */
static int pass_over(stage *s, const char *key, size_t klen)
{
    if (++s->red_keys < s->red_skip || mrf__checksum(key, klen) == s->red_skip_hash)
        return MRF_OK;
    return mrf__fail(MRF_EIO,
                     "rank %d: key %llu of its reduce input is not the key the stopped run "
                     "reduced last, so its output cannot be continued; rerun with --no-resume",
                     s->rank, (unsigned long long)s->red_keys);
}

/* After the reduce input ran out: it had fewer keys than the stopped run
 * reduced (an error), or not. */
static int all_passed_over(const stage *s)
{
    if (s->red_keys >= s->red_skip)
        return MRF_OK;
    return mrf__fail(MRF_EIO,
                     "rank %d: its reduce input has %llu keys, the stopped run reduced %llu, so "
                     "its output cannot be continued; rerun with --no-resume",
                     s->rank, (unsigned long long)s->red_keys, (unsigned long long)s->red_skip);
}

/* The hash of the last key reduced (last, of klen bytes: this run's last,
 * or NULL), for the reduce's progress. */
static void note_last_key(stage *s, const char *last, size_t klen)
{
    if (s->red_keys <= s->red_skip)
        s->red_last_hash = s->red_keys ? s->red_skip_hash : 0;
    else
        s->red_last_hash = mrf__checksum(last, klen);
}

/* The part's writer after the reduce: closed where it stands (counts kept
 * for HDF5 output) when rc says all went well; left open when a signal
 * stopped the reduce (a checkpoint may keep the part: it closes it); else
 * aborted.  The outcome. */
static int finish_output(stage *s, int rc)
{
    if (rc == MRF__PREEMPTED)
        return rc;
    if (rc == MRF_OK) {
        mrf__writer_counts(s->out, &s->h5.recs, &s->h5.kbytes, &s->h5.vbytes);
        rc = mrf__writer_close_at(s->out, &s->red_pos);
        s->bytes_out = s->red_pos.written;
    } else {
        mrf__writer_abort(s->out);
    }
    s->out = NULL;
    return rc;
}

static bool rec_has_key(const char *r, const void *key, size_t klen,
                        int (*cmp)(const void *, size_t, const void *, size_t))
{
    if (cmp)
        return cmp(mrf__rec_key(r), mrf__rec_klen(r), key, klen) == 0;
    return mrf__rec_klen(r) == klen && memcmp(mrf__rec_key(r), key, klen) == 0;
}

int mrf_values_next(mrf_values *vals, const void **val, size_t *len)
{
    if (vals && vals->m) {
        const char *r = vals->done ? NULL : mrf__merge_top(vals->m);
        if (!r || !rec_has_key(r, vals->key, vals->klen, vals->cmp)) {
            vals->done = true;
            return 0;
        }
        size_t n = mrf__rec_vlen(r);
        if (n > vals->vcap) {
            char *b = mrf__realloc(vals->vbuf, n);
            if (!b) {
                vals->rc = mrf__fail(MRF_ENOMEM, "out of memory for a value of %zu bytes", n);
                vals->done = true;
                return 0;
            }
            vals->vbuf = b;
            vals->vcap = n;
        }
        if (n)
            memcpy(vals->vbuf, mrf__rec_val(r), n);
        *val = vals->vbuf;
        *len = n;
        int rc = mrf__merge_pop(vals->m);
        if (rc) {
            vals->rc = rc;
            vals->done = true;
        }
        return 1;
    }
    if (!vals || vals->i >= vals->end)
        return 0;
    const char *r = vals->base + vals->ents[vals->i++].off;
    *val = mrf__rec_val(r);
    *len = mrf__rec_vlen(r);
    return 1;
}

uint64_t mrf_values_count(const mrf_values *vals)
{
    if (vals && vals->m)
        return MRF_COUNT_UNKNOWN;
    return vals ? vals->count : 0;
}

static int reduce_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    stage *s = e->state;
    s->records_out++;
    if (s->typed) { /* binary numbers: printed for text, checked for HDF5 */
        char kt[32], vt[33 * MRF__TYPED_COLUMNS];
        bool text = !s->opt->format_hdf5;
        size_t kn = 0, vn = 0;
        int rc = mrf__typed_text(s->spec, k, kl, v, vl, text ? kt : NULL, &kn, vt, &vn);
        if (rc || !text)
            return rc ? rc : mrf__writer_put(s->out, k, kl, v, vl);
        return mrf__writer_put(s->out, kt, kn, vt, vn);
    }
    return mrf__writer_put(s->out, k, kl, v, vl);
}

static mrf_emitter reduce_emitter(stage *s)
{
    s->typed = s->spec->key_type && !s->opt->kv_output; /* (a later stage's input: binary) */
    return (mrf_emitter){.fn = reduce_emit,
                         .state = s,
                         .prev = s->prev_sums,
                         .opt = s->opt,
                         .add = s->sums,
                         .run = s->run_index};
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

/* Testing: MRFLOW_TEST_PAUSE=reduce-mid pauses a rank's reduce after this
 * many keys, part of its output written. */
#define REDUCE_MID_PAUSE 4096

/* Merge sources: a sorted run on disk, or the sorted in-memory remainder. */
static int next_run(void *ctx, const char **rec)
{
    return mrf__runr_next(ctx, rec);
}

/* How many runs one merge pass reads at once: each open run holds a block
 * (64 KiB raw, one at a time); a quarter of the budget goes to them. */
static size_t merge_fan_in(const stage *s)
{
    size_t f = (size_t)(s->budget / 4 / (128u << 10));
    return f < 4 ? 4 : f;
}

/* Merges runs[first, first+k) into one new run, while there are too many. */
static int merge_pass(stage *s, size_t first, size_t k)
{
    mrf__run_reader *rd = mrf__calloc(k, sizeof *rd);
    mrf__merge_src *src = mrf__calloc(k, sizeof *src);
    mrf__merge m = {0};
    mrf__run_writer w;
    mrf__run out;
    int rc = MRF_OK;
    if (!rd || !src)
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a merge pass");
    for (size_t i = 0; i < k && rc == MRF_OK; i++) {
        mrf__runr_open(&rd[i], &s->spill, &s->runs[first + i]);
        src[i] = (mrf__merge_src){.next = next_run, .ctx = &rd[i]};
    }
    if (rc == MRF_OK && (rc = mrf__runw_begin(&w, &s->spill)) == MRF_OK) {
        if ((rc = mrf__merge_init(&m, src, k, s->spec->key_compare)) == MRF_OK) {
            const char *r;
            while (rc == MRF_OK && (r = mrf__merge_top(&m)))
                if ((rc = mrf__runw_add(&w, r)) == MRF_OK)
                    rc = mrf__merge_pop(&m);
        }
        if (rc == MRF_OK)
            rc = mrf__runw_end(&w, &out);
        else
            mrf__runw_abort(&w);
    }
    mrf__merge_free(&m);
    for (size_t i = 0; rd && i < k; i++)
        mrf__runr_close(&rd[i]);
    mrf__free(rd);
    mrf__free(src);
    if (rc)
        return rc;
    for (size_t i = 0; i < k; i++)
        mrf__spill_release(&s->spill, s->runs[first + i].off, s->runs[first + i].len);
    s->runs[first] = out;
    memmove(&s->runs[first + 1], &s->runs[first + k], (s->n_runs - first - k) * sizeof *s->runs);
    s->n_runs -= k - 1;
    s->merge_passes++;
    return MRF_OK;
}

/* Reduce over a k-way merge of the sorted runs and the in-memory remainder;
 * each key's values stream through mrf_values_next. */
static int reduce_merge(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int rc = MRF_OK;
    size_t n = 0, fan = merge_fan_in(s);
    if (mrf__kvbuf_check(s->kv.base, s->kv.len, &n))
        return mrf__fail(MRF_EINTERNAL, "malformed records on the reducing side");
    double t_sort = MPI_Wtime(), t_red = 0, io0 = 0;
    while (rc == MRF_OK && s->n_runs + 1 > fan)
        rc = merge_pass(s, 0, fan);
    if (rc)
        return rc;
    size_t bytes = (n ? n : 1) * sizeof(mrf__sort_ent);
    mrf__sort_ent *ents = mrf__big_alloc_filled(bytes), *tmp = mrf__big_alloc_filled(bytes);
    size_t k = s->n_runs + 1;
    mrf__run_reader *rd = mrf__calloc(k, sizeof *rd);
    mrf__merge_src *src = mrf__calloc(k, sizeof *src);
    mrf__merge m = {0};
    mrf_values vals = {.cmp = spec->key_compare};
    char *kbuf = NULL;
    size_t kcap = 0;
    if (!ents || !tmp || !rd || !src) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory setting up the merge of %zu runs", k - 1);
        goto out;
    }
    size_t i;
    mrf__st_sort_index(s, s->kv.base, s->kv.len, ents, tmp, n);
    s->prof.red_sort += MPI_Wtime() - t_sort;
    t_red = MPI_Wtime();
    io0 = s->prof.red_write + s->prof.red_fsync;
    mrf__sorted_src ms = {.base = s->kv.base, .ents = ents, .n = n};
    for (i = 0; i + 1 < k; i++) {
        mrf__runr_open(&rd[i], &s->spill, &s->runs[i]);
        src[i] = (mrf__merge_src){.next = next_run, .ctx = &rd[i]};
    }
    src[k - 1] = (mrf__merge_src){.next = mrf__sorted_next, .ctx = &ms};
    if ((rc = mrf__merge_init(&m, src, k, spec->key_compare)))
        goto out;
    if ((rc = open_part(s)))
        goto out;
    mrf_emitter em = reduce_emitter(s);
    const char *r;
    uint64_t nkeys = 0;
    size_t klast = 0;
    while (em.rc == MRF_OK && vals.rc == MRF_OK && (r = mrf__merge_top(&m))) {
        if (nkeys == REDUCE_MID_PAUSE)
            mrf__st_test_pause(s, "reduce-mid");
        if ((nkeys++ & 1023) == 0 && mrf__preempted()) {
            em.rc = MRF__PREEMPTED;
            break;
        }
        size_t kl = mrf__rec_klen(r);
        if (kl > kcap) {
            char *b = mrf__realloc(kbuf, kl);
            if (!b) {
                rc = mrf__fail(MRF_ENOMEM, "out of memory for a key of %zu bytes", kl);
                break;
            }
            kbuf = b;
            kcap = kl;
        }
        if (kl)
            memcpy(kbuf, mrf__rec_key(r), kl);
        klast = kl;
        if (s->red_keys < s->red_skip) {
            em.rc = pass_over(s, kbuf, kl);
        } else {
            vals.m = &m;
            vals.key = kbuf;
            vals.klen = kl;
            vals.done = false;
            spec->reduce(kbuf, kl, &vals, &em, spec->ctx);
            s->red_keys++;
        }
        /* values the reduce did not read (all of a key passed over) */
        while (vals.rc == MRF_OK && (r = mrf__merge_top(&m)) &&
               rec_has_key(r, kbuf, kl, spec->key_compare))
            vals.rc = mrf__merge_pop(&m);
    }
    if (rc == MRF_OK)
        rc = vals.rc ? vals.rc : em.rc;
    if (rc == MRF_OK)
        rc = all_passed_over(s);
    note_last_key(s, kbuf, klast);
    rc = finish_output(s, rc);
    /* the last merge pass feeds the reduce: its time counts there */
    s->prof.red_reduce += MPI_Wtime() - t_red - (s->prof.red_write + s->prof.red_fsync - io0);
out:
    mrf__merge_free(&m);
    for (i = 0; rd && i + 1 < k; i++)
        mrf__runr_close(&rd[i]);
    mrf__free(rd);
    mrf__free(src);
    mrf__free(kbuf);
    mrf__free(vals.vbuf);
    mrf__big_free(ents, bytes);
    mrf__big_free(tmp, bytes);
    return rc;
}

/* How many keys ahead the reduce loop fetches records: the sort leaves them
 * in arena order, so each is a cache miss otherwise. */
#define REDUCE_AHEAD 16

int mrf__st_reduce(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int rc;
    size_t n = 0;
    mrf__sort_ent *ents = NULL, *tmp = NULL;
    if (s->n_runs)
        return reduce_merge(s);
    if (mrf__kvbuf_check(s->kv.base, s->kv.len, &n))
        return mrf__fail(MRF_EINTERNAL, "shuffle delivered a malformed record stream");
    double t_sort = MPI_Wtime();
    if (spec->combine && !s->combined) {
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
    bool spare = s->spare && s->spare_bytes >= 2 * bytes;
    if (spare) { /* the send buffer's pages: touched already */
        ents = (mrf__sort_ent *)(void *)s->spare;
        tmp = ents + (n ? n : 1);
    } else {
        ents = mrf__big_alloc_filled(bytes);
        tmp = mrf__big_alloc_filled(bytes);
    }
    if (!ents || !tmp) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a sort index of %zu records", n);
        goto out;
    }
    size_t i;
    mrf__st_sort_index(s, s->kv.base, s->kv.len, ents, tmp, n);
    s->prof.red_sort += MPI_Wtime() - t_sort;
    double t_red = MPI_Wtime(), io0 = s->prof.red_write + s->prof.red_fsync;

    if ((rc = open_part(s)))
        goto out;
    mrf_emitter em = reduce_emitter(s);
    size_t nkeys = 0;
    const char *last = NULL; /* the last record whose key was reduced */
    for (i = 0; i < n && em.rc == MRF_OK;) {
        if (nkeys++ == REDUCE_MID_PAUSE)
            mrf__st_test_pause(s, "reduce-mid");
        if ((i & 1023) == 0 && mrf__preempted()) {
            em.rc = MRF__PREEMPTED; /* agreed on at the end of the phase */
            break;
        }
        if (i + REDUCE_AHEAD < n) { /* the index is in order, the records are not */
            const char *ahead = s->kv.base + ents[i + REDUCE_AHEAD].off;
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + 64);
            __builtin_prefetch(ahead + 127);
        }
        size_t j = i + 1;
        while (j < n && same_key(s, &ents[i], &ents[j]))
            j++;
        const char *r = s->kv.base + ents[i].off;
        if (s->red_keys < s->red_skip) {
            em.rc = pass_over(s, mrf__rec_key(r), mrf__rec_klen(r));
            i = j;
            continue;
        }
        mrf_values vals = {.base = s->kv.base, .ents = ents, .i = i, .end = j, .count = j - i};
        spec->reduce(mrf__rec_key(r), mrf__rec_klen(r), &vals, &em, spec->ctx);
        s->red_keys++;
        last = r;
        i = j;
    }
    rc = em.rc;
    if (rc == MRF_OK)
        rc = all_passed_over(s);
    note_last_key(s, last ? mrf__rec_key(last) : NULL, last ? mrf__rec_klen(last) : 0);
    rc = finish_output(s, rc);
    s->prof.red_reduce += MPI_Wtime() - t_red - (s->prof.red_write + s->prof.red_fsync - io0);
out:
    if (!spare) {
        mrf__big_free(ents, bytes);
        mrf__big_free(tmp, bytes);
    }
    return rc;
}
