/*
 * jobshuffle.c -- a stage's shuffle: the bucket-to-rank packing from the
 * map's byte counts, the exchange in bounded rounds (shuffle.c moves the
 * bytes), the reducing side's combining, sorting and spilling of what
 * arrives, and the merging of heavy keys' partial results.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stage.h"

/* -------------------------------------------------------------- shuffle -- */

/* Reducing side: sorts the received records in rkv and writes them to disk
 * as one sorted run.  stoppable: a preemption signal abandons the spill
 * (MRF__PREEMPTED, rkv as it was): the shuffle then stops, and a spill of
 * the receive arena (1 GB: 2-5 s on the 2-vCPU VM) no longer delays it. */
int mrf__st_spill_sorted(stage *s, bool stoppable)
{
    size_t n = 0;
    int rc = MRF_OK;
    if (!s->rkv.len)
        return MRF_OK;
    if (mrf__kvbuf_check(s->rkv.base, s->rkv.len, &n))
        return mrf__fail(MRF_EINTERNAL, "malformed records on the reducing side");
    size_t bytes = n * sizeof(mrf__sort_ent);
    mrf__sort_ent *ents = mrf__big_alloc_filled(bytes), *tmp = mrf__big_alloc_filled(bytes);
    mrf__run *nr = mrf__grow_for(s->runs, &s->runs_cap, s->n_runs, sizeof *nr);
    if (nr)
        s->runs = nr;
    if (!ents || !tmp || !nr) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory sorting %zu records to spill", n);
        goto out;
    }
    size_t i;
    mrf__st_sort_index(s, s->rkv.base, s->rkv.len, ents, tmp, n);
    mrf__big_free(tmp, bytes);
    tmp = NULL;
    mrf__run_writer w;
    if (stoppable && mrf__preempted()) {
        rc = MRF__PREEMPTED;
        goto out;
    }
    if ((rc = mrf__runw_begin(&w, &s->spill)))
        goto out;
    for (i = 0; i < n && rc == MRF_OK; i++) {
        if (stoppable && (i & 65535) == 65535 && mrf__preempted())
            rc = MRF__PREEMPTED;
        else
            rc = mrf__runw_add(&w, s->rkv.base + ents[i].off);
    }
    if (rc == MRF_OK)
        rc = mrf__runw_end(&w, &s->runs[s->n_runs]);
    else
        mrf__runw_abort(&w);
    if (rc == MRF_OK) {
        s->n_runs++;
        s->red_spilled += s->rkv.len;
        mrf__log(MRF_LOG_DEBUG, "spilled %zu received bytes (%zu records) as sorted run %zu",
                 s->rkv.len, n, s->n_runs - 1);
        s->rkv.len = 0;
        s->rkv_recs = 0;
    }
out:
    mrf__big_free(ents, bytes);
    mrf__big_free(tmp, bytes);
    return rc;
}

/* The records fill copied for one chunk, counted (spilled data only). */
static int count_chunk(const mrf__kvbuf *out, size_t start, uint32_t *nrec)
{
    size_t n;
    if (mrf__kvbuf_check(out->base + start, out->len - start, &n) || n > UINT32_MAX)
        return mrf__fail(MRF_EIO, "spilled blocks hold malformed records");
    *nrec = (uint32_t)n;
    return MRF_OK;
}

static int fill(void *ctx, int d, mrf__kvbuf *out, size_t cap, bool *more, const char **direct,
                size_t *dlen, uint32_t *nrec)
{
    stage *s = ctx;
    cursor *c = &s->cur[d];
    size_t start = out->len;
    int rc;
    *more = true;
    /* records still in memory go first, straight from the send buffer, in
     * the chunks cut when it was filled */
    if (s->send && c->sent < s->scount[d]) {
        const chunk_cut *k = &s->cuts[s->cstart[d] + c->chunk++];
        *direct = s->send + s->sdisp[d] + c->sent;
        *dlen = (size_t)k->len;
        *nrec = k->recs;
        c->sent += k->len;
        *more = c->sent < s->scount[d] || s->n_bruns > 0;
        return MRF_OK;
    }
    /* then the spilled runs, bucket by bucket, a block at a time */
    while (c->bi < s->dstart[d + 1]) {
        uint32_t b = s->order[c->bi];
        if (c->src >= s->n_bruns) {
            c->bi++;
            c->src = 0;
            c->pos = 0;
            continue;
        }
        const mrf__bdir_ent *e = mrf__brun_find(&s->bruns[c->src], b);
        if (e && c->pos == 0 && e->raw <= cap) {
            /* the bucket's part of the run in one read, if it fits this chunk */
            if (out->len > start && out->len - start + e->raw > cap)
                return count_chunk(out, start, nrec);
            uint64_t got;
            if (mrf__kvbuf_reserve(out, (size_t)e->raw))
                return mrf__fail(MRF_ENOMEM, "out of memory for a shuffle round");
            if ((rc = mrf__spill_read_region(&s->spill, e->off, e->len, out->base + out->len,
                                             e->raw, &got)))
                return rc;
            out->len += got;
        } else if (e) {
            if (c->pos == 0)
                c->pos = e->off;
            while (c->pos < e->off + e->len) {
                uint32_t raw, stored;
                if ((rc = mrf__spill_peek(&s->spill, c->pos, &raw, &stored)))
                    return rc;
                if (out->len > start && out->len - start + raw > cap)
                    return count_chunk(out, start, nrec);
                if (mrf__kvbuf_reserve(out, raw < cap ? cap : raw))
                    return mrf__fail(MRF_ENOMEM, "out of memory for a shuffle round");
                if ((rc = mrf__spill_read(&s->spill, c->pos, out->base + out->len, &c->pos)))
                    return rc;
                out->len += raw;
            }
        }
        c->src++;
        c->pos = 0;
    }
    *more = false;
    return count_chunk(out, start, nrec);
}

static char *space(void *ctx, size_t n, int *err)
{
    stage *s = ctx;
    if (s->shuf_rounds == 1) /* a signal here: the round is exchanged, then dropped */
        mrf__st_test_pause(s, "shuffle-receive");
    if (s->spec->combine) {
        if (mrf__big_grow(&s->scratch, &s->scratch_cap, n ? n : 1)) {
            *err = mrf__fail(MRF_ENOMEM, "out of memory for %zu bytes of shuffle input", n);
            return NULL;
        }
        return s->scratch;
    }
    if (s->rkv.len && (s->rkv.len + n > s->red_cap || s->rkv_recs >= s->red_rec_cap)) {
        if (!s->rspill_paused) { /* testing: before the first spill of received records */
            s->rspill_paused = true;
            mrf__st_test_pause(s, "shuffle-spill");
        }
        /* after a signal the round is dropped: nothing is spilled for it */
        *err = mrf__preempted() ? MRF__PREEMPTED : mrf__st_spill_sorted(s, true);
        if (*err)
            return NULL;
    }
    if (mrf__kvbuf_reserve(&s->rkv, n ? n : 1)) {
        *err = mrf__fail(MRF_ENOMEM, "out of memory for %zu bytes of shuffle input", n);
        return NULL;
    }
    return s->rkv.base + s->rkv.len;
}

/* The combining table is full: its cold entries become one sorted run. */
static int spill_table(stage *s)
{
    if (mrf__ctable_evict(&s->ct, &s->rkv, NULL, NULL, NULL))
        return mrf__fail(MRF_ENOMEM, "out of memory draining the combining table");
    return mrf__st_spill_sorted(s, false);
}

/* Combines the records [p, p+n) into the reducing side's table (a split
 * heavy key's into ht, when route_heavy), spilling cold keys when it fills. */
static int combine_in(stage *s, const char *p, size_t n, bool route_heavy)
{
    mrf__ctable *tabs[2] = {&s->ct, &s->ht}; /* indexed, not branched on */
    for (size_t at = 0; at < n;) {
        const char *r = p + at;
        if (n - at < MRF_KV_HDR || mrf__rec_size(r) > n - at)
            return mrf__fail(MRF_EINTERNAL, "shuffle delivered a malformed record stream");
        size_t kl = mrf__rec_klen(r), vl = mrf__rec_vlen(r);
        uint64_t h = mrf__key_hash(mrf__rec_key(r), kl);
        mrf__ctable *t = tabs[route_heavy ? mrf__heavy_has(&s->hv, h) : 0];
        int rc = mrf__ctable_add(t, h, mrf__rec_key(r), kl, mrf__rec_val(r), vl, s->spec->combine,
                                 s->spec->ctx);
        if (rc)
            return mrf__st_table_error(s, rc);
        if ((s->ct.used >= s->ct_max_keys || s->ct.big.len >= s->big_cap) && (rc = spill_table(s)))
            return rc;
        at += mrf__rec_size(r);
    }
    return MRF_OK;
}

static void round_done(void *ctx, unsigned round, uint64_t bytes)
{
    stage *s = ctx;
    if (round == 1 && s->opt->crash_rank == s->rank && s->opt->crash_phase == MRF__PHASE_SHUFFLE) {
        mrf__log(MRF_LOG_WARN, "--fault crash: killing myself in the shuffle");
        raise(SIGKILL);
    }
    s->shuf_rounds = round;
    if (round == 1)
        mrf__st_test_pause(s, "shuffle");
    mrf__progress_shuffle(&s->prog, round, s->est_rounds, bytes, s->out_bytes);
}

static int deliver(void *ctx, char *p, size_t n, size_t nrec)
{
    stage *s = ctx;
    s->red_in_bytes += n;
    s->red_in_recs += nrec;
    /* the bytes match what their senders checksummed, and the sort checks
     * the records' framing before it indexes them (kvbuf_check) */
    if (!s->spec->combine) {
        s->rkv.len += n;
        s->rkv_recs += nrec;
        return MRF_OK;
    }
    double c0 = mrf__st_cpu_now();
    int rc = combine_in(s, p, n, s->heavy_merge);
    s->cpu_reduce += mrf__st_cpu_now() - c0;
    return rc;
}

/* After the shuffle: each rank's partial results for the split heavy keys go
 * to the key's home rank (its first sub-bucket's), which combines them with
 * its own, so the key is reduced once.  At most one record per heavy key
 * per rank moves. */
static int merge_heavy(stage *s)
{
    size_t P = (size_t)s->size;
    mrf__kvbuf part = {0};
    char *send = NULL, *recv = NULL;
    int *sc = mrf__calloc(P, sizeof *sc), *sd = mrf__calloc(P, sizeof *sd);
    int *rcn = mrf__calloc(P, sizeof *rcn), *rd = mrf__calloc(P, sizeof *rd);
    int rc = MRF_OK;
    if (!sc || !sd || !rcn || !rd || mrf__ctable_drain(&s->ht, &part, NULL, NULL, NULL))
        rc = mrf__fail(MRF_ENOMEM, "out of memory merging heavy keys");
    if (rc == MRF_OK && part.len > INT_MAX)
        rc = mrf__fail(MRF_EINTERNAL, "heavy keys' partial results exceed 2 GiB");
    if (rc == MRF_OK && !(send = mrf__malloc(part.len ? part.len : 1)))
        rc = mrf__fail(MRF_ENOMEM, "out of memory merging heavy keys");
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    /* records grouped by home rank */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t at = 0; at < part.len; at += mrf__rec_size(part.base + at)) {
            const char *r = part.base + at;
            int i = mrf__heavy_find(&s->hv, mrf__key_hash(mrf__rec_key(r), mrf__rec_klen(r)));
            int32_t home = s->owner[s->nb_base + s->hv.first[i < 0 ? 0 : i]];
            size_t sz = mrf__rec_size(r);
            if (pass == 0) {
                sc[home] += (int)sz;
            } else {
                memcpy(send + sd[home], r, sz);
                sd[home] += (int)sz;
            }
        }
        if (pass == 0)
            for (size_t d = 1; d < P; d++)
                sd[d] = sd[d - 1] + sc[d - 1];
        else
            for (size_t d = 0; d < P; d++)
                sd[d] -= sc[d];
    }
    MPI_Alltoall(sc, 1, MPI_INT, rcn, 1, MPI_INT, s->comm);
    size_t total = 0;
    for (size_t d = 0; d < P; d++) {
        rd[d] = (int)total;
        total += (size_t)rcn[d];
    }
    if (total > INT_MAX || !(recv = mrf__malloc(total ? total : 1)))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for %zu bytes of heavy keys' results", total);
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    if (MPI_Alltoallv(send, sc, sd, MPI_BYTE, recv, rcn, rd, MPI_BYTE, s->comm) != MPI_SUCCESS)
        rc = MRF_EMPI;
    for (size_t d = 0; rc == MRF_OK && d < P; d++)
        if (d != (size_t)s->rank)
            s->heavy_partials += (uint64_t)rcn[d];
    if (rc == MRF_OK)
        rc = combine_in(s, recv, total, false);
    rc = mrf__st_agree(s, rc);
out:
    mrf__kvbuf_destroy(&part);
    mrf__free(send);
    mrf__free(recv);
    mrf__free(sc);
    mrf__free(sd);
    mrf__free(rcn);
    mrf__free(rd);
    return rc;
}

/* A sample of this rank's map output for the compression measurement: the
 * send buffer's first bytes, or the first blocks of its first spilled run. */
static int map_sample(stage *s, char **buf, size_t *len, size_t *cap)
{
    size_t want = 2u << 20;
    *buf = NULL;
    *len = *cap = 0;
    if (s->send && s->send_bytes) { /* in memory: the grouped records */
        *buf = s->send;
        *len = s->send_bytes < want ? s->send_bytes : want;
        return MRF_OK;
    }
    if (!s->n_bruns)
        return MRF_OK;
    /* block by block: one bucket's part of a run may be far larger than
     * the sample */
    const mrf__brun *r = &s->bruns[0];
    for (size_t i = 0; i < r->n && *len < want; i++) {
        const mrf__bdir_ent *e = &r->ents[i];
        for (uint64_t pos = e->off; pos < e->off + e->len && *len < want;) {
            uint32_t raw, stored;
            int rc = mrf__spill_peek(&s->spill, pos, &raw, &stored);
            if (rc)
                return rc;
            if (mrf__big_grow(buf, cap, *len + raw))
                return mrf__fail(MRF_ENOMEM, "out of memory");
            if ((rc = mrf__spill_read(&s->spill, pos, *buf + *len, &pos)))
                return rc;
            *len += raw;
        }
    }
    return MRF_OK;
}

static int choose_compression(stage *s)
{
    const mrf__options *o = s->opt;
    s->level = 0;
    if (o->compress == MRF__COMPRESS_OFF) {
        s->cwhy = "off (--compress off)";
        return MRF_OK;
    }
    if (o->compress == MRF__COMPRESS_ZSTD) {
        s->level = o->compress_level;
        s->cwhy = "zstd (--compress zstd)";
        return MRF_OK;
    }
    if (s->size == 1) {
        s->cwhy = "off (auto: one rank, nothing crosses a link)";
        return MRF_OK;
    }
    char *buf;
    size_t len, cap;
    int rc = map_sample(s, &buf, &len, &cap);
    rc = mrf__st_agree(s, rc);
    if (rc == MRF_OK) {
        size_t probe = s->round_bytes < (8u << 20) ? s->round_bytes : (8u << 20);
        rc = mrf__compress_choose(s->comm, buf, len, o->compress_level, probe, &s->cc);
    }
    if (cap)
        mrf__big_free(buf, cap);
    s->level = s->cc.on ? o->compress_level : 0;
    s->cwhy = s->cc.on ? "zstd (auto: measured to pay)" : "off (auto: measured not to pay)";
    if (s->rank == 0)
        mrf__log(MRF_LOG_INFO,
                 "compression %s: link %.0f MB/s per rank, zstd-%d %.0f MB/s, unzstd %.0f "
                 "MB/s, ratio %.2f: %.2f s per GB raw vs %.2f s compressed",
                 s->cc.on ? "on" : "off", s->cc.link_bps / 1e6, o->compress_level,
                 s->cc.comp_bps / 1e6, s->cc.decomp_bps / 1e6, s->cc.ratio, s->cc.cost_off,
                 s->cc.cost_on);
    return mrf__st_agree(s, rc);
}

/* Sets the reducing side's shares from what is free of the budget now. */
void mrf__st_size_reduce_side(stage *s)
{
    uint64_t used = mrf__mem_in_use();
    /* the shuffle's own: stage, compressed send and receive buffers (each
     * at most round_bytes, the stage up to twice while growing), the zstd
     * contexts (~2 MiB at level 1) */
    uint64_t rounds = 5 * s->round_bytes + (s->level ? (2u << 20) : (256u << 10));
    uint64_t free = s->budget > used + rounds ? s->budget - used - rounds : 0;
    if (free < s->budget / 8)
        free = s->budget / 8;
    /* half for records, half for the sort index (32 bytes a record) */
    s->red_cap = (size_t)(free / 2);
    s->rkv.limit = s->red_cap;
    s->red_rec_cap = (size_t)(free / 2 / (2 * sizeof(mrf__sort_ent)));
    if (s->red_rec_cap < 1024)
        s->red_rec_cap = 1024;
}

/* Reduce input per rank, planned: under plain hashing (bucket modulo ranks,
 * a heavy key whole in its hash bucket) and under the packing chosen. */
static void plan_figures(stage *s, const mrf__bstat *global)
{
    for (uint32_t b = 0; b < s->nb; b++) {
        uint32_t hb = b;
        if (b >= s->nb_base) { /* a heavy key's sub-bucket: where hashing puts the key */
            uint32_t i = 0;
            while (i + 1 < s->hv.n && s->hv.first[i + 1] <= b - s->nb_base)
                i++;
            hb = mrf__hash_bucket(s->hv.key[i].hash, s->nb_base);
        }
        mrf__bstat *x = &s->before[s->range ? s->owner[b] : (int32_t)(hb % (uint32_t)s->size)];
        x->bytes += global[b].bytes;
        x->recs += global[b].recs;
        s->after[s->owner[b]].bytes += global[b].bytes;
        s->after[s->owner[b]].recs += global[b].recs;
    }
}

/* Rank d's part of the send buffer cut into chunks of whole records, each
 * at most one round's worth (cuts[cstart[d] .. cstart[d+1])). */
static int cut_chunks(stage *s)
{
    size_t P = (size_t)s->size;
    uint64_t cap = mrf__shuffle_cap(s->round_bytes, s->size);
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (size_t d = 0; d < P; d++) {
            if (pass == 0)
                s->cstart[d] = k;
            uint64_t cb = 0;
            uint32_t cr = 0;
            for (uint64_t at = s->sdisp[d]; at < s->sdisp[d + 1];) {
                size_t n = mrf__rec_size(s->send + at);
                if (cb && cb + n > cap) {
                    if (pass)
                        s->cuts[k] = (chunk_cut){cb, cr};
                    k++;
                    cb = cr = 0;
                }
                cb += n;
                cr++;
                at += n;
            }
            if (cb) {
                if (pass)
                    s->cuts[k] = (chunk_cut){cb, cr};
                k++;
            }
        }
        if (pass == 0) {
            s->cstart[P] = k;
            if (!(s->cuts = mrf__calloc(k + 1, sizeof *s->cuts)))
                return mrf__fail(MRF_ENOMEM, "out of memory");
        }
    }
    return MRF_OK;
}

/*
 * The arena's records grouped by destination rank: one pass counts each
 * rank's bytes, a second copies them into the send buffer, then each rank's
 * part is cut into round-sized chunks.  Range-partitioned jobs go further
 * and order each rank's part by bucket: a bucket is a key range, so the
 * records a reducer sorts then lie in a few short stretches per bucket
 * instead of anywhere in its arena (the reduce reads them in key order:
 * 0.1 s instead of 1 s for 512 MiB a rank here).
 *
 * A job without a combiner keeps its own records where they are: they slide
 * to the front of the arena, which becomes the receive arena, so they are
 * neither copied into the send buffer nor through the shuffle, and the send
 * buffer holds only what goes to other ranks (half the arena at 2 ranks).
 * Fresh pages cost more than copying (benchmarks/pagefault.c: 1-2 s per GiB
 * on first touch on the development VM), so the fewer the better.
 */
static int group_by_destination(stage *s)
{
    size_t P = (size_t)s->size;
    bool keep_own = !s->spec->combine, by_bucket = s->range;
    uint64_t own_recs = 0, *pos = NULL;
    int rc = MRF_OK;
    s->sdisp = mrf__calloc(P + 1, sizeof *s->sdisp);
    s->scount = mrf__calloc(P, sizeof *s->scount);
    s->cstart = mrf__calloc(P + 1, sizeof *s->cstart);
    /* where the next record of each rank (or bucket) goes */
    pos = mrf__calloc(by_bucket ? s->nb : P, sizeof *pos);
    if (by_bucket && keep_own)
        s->own_bkt = mrf__calloc(s->nb, sizeof *s->own_bkt);
    if (!s->sdisp || !s->scount || !s->cstart || !pos || (by_bucket && keep_own && !s->own_bkt)) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
        goto out;
    }
    if (!s->kv.len)
        goto out;
    /* pass 1: bytes per destination (and per bucket) */
    for (size_t at = 0; at < s->kv.len;) {
        const char *r = s->kv.base + at;
        size_t n = mrf__rec_size(r);
        uint32_t b = mrf__rec_bucket(r);
        int32_t d = s->owner[b];
        at += n;
        if (keep_own && d == s->rank) {
            s->own_bytes += n;
            own_recs++;
            if (s->own_bkt)
                s->own_bkt[b] += n;
            continue;
        }
        s->scount[d] += n;
        if (by_bucket)
            pos[b] += n;
    }
    for (size_t d = 0; d < P; d++)
        s->sdisp[d + 1] = s->sdisp[d] + s->scount[d];
    if (by_bucket) { /* each rank's buckets ascending, from its displacement */
        for (size_t d = 0; d < P; d++) {
            uint64_t at = s->sdisp[d];
            for (uint64_t i = s->dstart[d]; i < s->dstart[d + 1]; i++) {
                uint64_t n = pos[s->order[i]];
                pos[s->order[i]] = at;
                at += n;
            }
        }
    } else {
        memcpy(pos, s->sdisp, P * sizeof *pos);
    }
    s->send_bytes = (size_t)s->sdisp[P];
    if (s->send_bytes && !(s->send = mrf__big_alloc_filled(s->send_bytes))) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory for %zu bytes of shuffle output", s->send_bytes);
        goto out;
    }
    /* pass 2: the records to their places; this rank's own slide down the
     * arena (never past a record not yet read) */
    size_t keep = 0;
    for (size_t at = 0; at < s->kv.len;) {
        char *r = s->kv.base + at;
        size_t n = mrf__rec_size(r);
        uint32_t b = mrf__rec_bucket(r);
        int32_t d = s->owner[b];
        at += n;
        if (keep_own && d == s->rank) {
            if (keep != at - n)
                memmove(s->kv.base + keep, r, n);
            keep += n;
            continue;
        }
        uint64_t *w = &pos[by_bucket ? b : (uint32_t)d];
        memcpy(s->send + *w, r, n);
        *w += n;
    }
    if ((rc = cut_chunks(s)))
        goto out;
    s->rkv = s->kv; /* keeps its pages: touched once, used twice */
    s->rkv.len = keep;
    s->rkv_recs = (size_t)own_recs;
    memset(&s->kv, 0, sizeof s->kv);
    /* counted as the shuffle would have: delivered, and sent to itself */
    s->red_in_bytes += s->own_bytes;
    s->red_in_recs += own_recs;
out:
    mrf__free(pos);
    return rc;
}

/*
 * After the shuffle, range partitioning: the records this rank kept lie in
 * map order at the front of the receive arena.  Ordered by bucket through
 * the spent send buffer (touched already) and copied back, so that they too
 * lie in one stretch per bucket.  Skipped where the receive arena spilled.
 */
static void order_own_by_bucket(stage *s)
{
    if (!s->own_bkt || !s->send || s->n_runs || s->own_bytes < 2 || s->rkv.len < s->own_bytes)
        return;
    if (s->send_bytes < s->own_bytes) { /* kept more than it sent: grown, within --memory */
        if (mrf__mem_in_use() + (s->own_bytes - s->send_bytes) > s->budget)
            return; /* then unordered: slower, not wrong */
        char *b = mrf__big_resize(s->send, s->send_bytes, (size_t)s->own_bytes);
        if (!b)
            return; /* then unordered: slower, not wrong */
        s->send = b;
        s->send_bytes = (size_t)s->own_bytes;
    }
    uint64_t at = 0;
    for (uint64_t i = s->dstart[s->rank]; i < s->dstart[s->rank + 1]; i++) {
        uint32_t b = s->order[i];
        uint64_t n = s->own_bkt[b];
        s->own_bkt[b] = at;
        at += n;
    }
    for (size_t r = 0; r < s->own_bytes;) {
        const char *p = s->rkv.base + r;
        size_t n = mrf__rec_size(p);
        memcpy(s->send + s->own_bkt[mrf__rec_bucket(p)], p, n);
        s->own_bkt[mrf__rec_bucket(p)] += n;
        r += n;
    }
    memcpy(s->rkv.base, s->send, s->own_bytes);
}

/* Keeps as much of the spent send buffer as the reduce's sort index will
 * use (in memory, no runs: 2 entries of 16 bytes a record), frees the rest;
 * all of it when the reduce will merge runs instead. */
static void keep_spare(stage *s)
{
    size_t want = (size_t)s->red_in_recs * 2 * sizeof(mrf__sort_ent);
    want = (want + 4095) & ~(size_t)4095;
    if (s->send && !s->spec->combine && !s->n_runs && want && want <= s->send_bytes) {
        /* the tail from a page boundary (munmap refuses any other start) */
        if (s->send_bytes > want)
            mrf__big_free(s->send + want, s->send_bytes - want);
        s->spare = s->send;
        s->spare_bytes = want;
    } else {
        mrf__big_free(s->send, s->send_bytes);
    }
    s->send = NULL;
}

int mrf__st_exchange(stage *s)
{
    int rc = MRF_OK;
    size_t P = (size_t)s->size;
    double t_pack = MPI_Wtime();
    mrf__bstat *global = mrf__malloc((size_t)s->nb * sizeof *global);
    uint64_t *gbytes = mrf__malloc((size_t)s->nb * sizeof *gbytes);
    s->before = mrf__calloc(P, sizeof *s->before);
    s->after = mrf__calloc(P, sizeof *s->after);
    if (!gbytes || !s->before || !s->after)
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    s->owner = mrf__malloc((size_t)s->nb * sizeof *s->owner);
    s->order = mrf__malloc((size_t)s->nb * sizeof *s->order);
    s->dstart = mrf__calloc(P + 1, sizeof *s->dstart);
    s->cur = mrf__calloc(P, sizeof *s->cur);
    if (!global || !s->owner || !s->order || !s->dstart || !s->cur)
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    /* pack by the per-task weights of a combining job; otherwise by the
     * arena's bytes, which for a job without a combiner are just as
     * placement-independent */
    const mrf__bstat *weights = s->mapc ? s->pack_bytes : s->bucket_bytes;
    if (MPI_Allreduce(weights, global, 2 * (int)s->nb, MPI_UINT64_T, MPI_SUM, s->comm) !=
        MPI_SUCCESS) {
        rc = MRF_EMPI;
        goto out;
    }
    for (uint32_t b = 0; b < s->nb; b++)
        gbytes[b] = global[b].bytes;
    if (s->range)
        mrf__pack_contiguous(gbytes, s->nb, s->size, s->owner);
    else if (s->part == MRF__PART_HASH)
        for (uint32_t b = 0; b < s->nb; b++)
            s->owner[b] = (int32_t)(b % (uint32_t)s->size);
    else if (mrf__pack_lpt(gbytes, s->nb, s->size, s->owner))
        rc = mrf__fail(MRF_ENOMEM, "out of memory packing buckets");
    if (rc == MRF_OK)
        plan_figures(s, global);
    /* a split key's partial results meet on the rank of its first sub-bucket */
    s->heavy_merge = false;
    for (uint32_t i = 0; rc == MRF_OK && s->spec->combine && i < s->hv.n; i++)
        for (uint32_t j = 1; j < s->hv.m[i]; j++)
            if (s->owner[s->nb_base + s->hv.first[i] + j] != s->owner[s->nb_base + s->hv.first[i]])
                s->heavy_merge = true;
    if (rc == MRF_OK && s->heavy_merge && mrf__ctable_init(&s->ht, 4 * (size_t)s->hv.n + 64))
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    s->t_decide += MPI_Wtime() - t_pack;
    if (rc == MRF_OK)
        mrf__st_log_partitioning(s);
    int spilled = s->n_bruns > 0, any_spilled = 0;
    MPI_Allreduce(&spilled, &any_spilled, 1, MPI_INT, MPI_MAX, s->comm);
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    if (s->size == 1 && !any_spilled) { /* one rank, all in memory: the arena is the reduce input */
        s->red_in_bytes = s->kv.len;
        for (uint32_t b = 0; b < s->nb; b++)
            s->red_in_recs += s->bucket_bytes[b].recs;
        goto out;
    }

    /* each rank's buckets in ascending order */
    for (uint32_t b = 0; b < s->nb; b++)
        s->dstart[s->owner[b] + 1]++;
    for (size_t d = 0; d < P; d++)
        s->dstart[d + 1] += s->dstart[d];
    for (size_t d = 0; d < P; d++)
        s->cur[d].bi = (uint32_t)s->dstart[d];
    {
        uint64_t *at = mrf__malloc(P * sizeof *at);
        if (!at) {
            rc = mrf__fail(MRF_ENOMEM, "out of memory");
        } else {
            memcpy(at, s->dstart, P * sizeof *at);
            for (uint32_t b = 0; b < s->nb; b++)
                s->order[at[s->owner[b]]++] = b;
            mrf__free(at);
        }
    }
    /* the arena's records grouped by destination; the arena then becomes
     * the receive arena */
    double t_group = MPI_Wtime();
    if (rc == MRF_OK)
        rc = group_by_destination(s);
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    t_group = MPI_Wtime() - t_group;
    double t_cc = MPI_Wtime();
    if ((rc = choose_compression(s)))
        goto out;
    t_cc = MPI_Wtime() - t_cc;
    s->prof.sh_group += t_group + t_cc;
    mrf__st_size_reduce_side(s);
    s->map_spill_end = s->spill.end;
    /* for progress: about how many rounds the busiest sender needs */
    s->out_bytes = s->send_bytes;
    for (size_t i = 0; i < s->n_bruns; i++)
        for (size_t j = 0; j < s->bruns[i].n; j++)
            s->out_bytes += s->bruns[i].ents[j].raw;
    uint64_t most = 0;
    MPI_Allreduce(&s->out_bytes, &most, 1, MPI_UINT64_T, MPI_MAX, s->comm);
    s->est_rounds = (unsigned)(most / (s->round_bytes ? s->round_bytes : 1) + 1);
    mrf__progress_done(&s->prog);
    mrf__shuffle_io io = {
        .fill = fill, .space = space, .deliver = deliver, .round_done = round_done, .ctx = s};
    mrf__shuffle_opts so = {.round_bytes = s->round_bytes,
                            .level = s->level,
                            .corrupt = s->opt->corrupt_rank == s->rank};
    double t_rounds = MPI_Wtime();
    rc = mrf__shuffle(s->comm, &io, &so, &s->shuf);
    t_rounds = MPI_Wtime() - t_rounds;
    s->t_rounds = t_rounds;
    s->prof.sh_pack += s->shuf.t_pack;
    s->prof.sh_mpi += s->shuf.t_mpi;
    s->prof.sh_unpack += s->shuf.t_unpack;
    mrf__log(MRF_LOG_DEBUG,
             "shuffle: grouping by destination %.3f s, deciding compression %.3f s, rounds "
             "%.3f s (MPI %.3f s, codec %.3f s)",
             t_group, t_cc, t_rounds, s->shuf.t_mpi, s->shuf.t_codec);
    /* the records kept in place count as sent to and received by this rank */
    s->shuf.bytes_sent += s->own_bytes;
    s->shuf.bytes_recv += s->own_bytes;
    if (rc) /* failed, or stopped by a signal: nothing is reduced, so nothing is reordered */
        goto out;
    /* the map side's data is spent; the send buffer's pages, already
     * touched, order this rank's own records and hold the sort index */
    double t_own = MPI_Wtime();
    order_own_by_bucket(s);
    keep_spare(s);
    s->prof.sh_group += MPI_Wtime() - t_own; /* the report's "group" column */
    mrf__kvbuf_destroy(&s->kv);
    for (size_t i = 0; i < s->n_bruns; i++)
        mrf__free(s->bruns[i].ents);
    if (s->n_bruns)
        mrf__spill_release(&s->spill, 0, s->map_spill_end);
    s->n_bruns = 0;
    if (s->heavy_merge && (rc = mrf__st_agree(s, rc)) == MRF_OK)
        rc = merge_heavy(s);
    if (rc == MRF_OK && s->spec->combine) {
        /* what the table holds joins the reduce input, sorted if there are runs */
        if (mrf__ctable_drain(&s->ct, &s->rkv, NULL, NULL, NULL))
            rc = mrf__fail(MRF_ENOMEM, "out of memory draining the combining table");
        s->combined = true;
    }
    /* the received records become the reduce input */
    s->kv = s->rkv;
    memset(&s->rkv, 0, sizeof s->rkv);
out:
    mrf__free(global);
    mrf__free(gbytes);
    return rc;
}
