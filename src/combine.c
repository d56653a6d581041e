/*
 * combine.c -- the per-rank combining hash table (slot layout in internal.h).
 *
 * Open addressing with linear probing, load at most 0.7 (two 32-byte slots
 * share a cache line, so a short probe sequence mostly stays in one line).  A probe compares
 * the full 64-bit XXH3 hash first, so key bytes are compared only on a true
 * match.  Records of up to 16 bytes (key + value) are kept inside the slot;
 * larger ones in a side arena, the slot holding their offset.  Draining
 * writes every entry out as a kvbuf record and empties the table, which is
 * how the map side bounds the table and hands its result to the shuffle.
 */
#include "internal.h"
#include "keyhash.h"

uint64_t mrf__key_hash(const void *key, size_t klen)
{
    return mrf__key_hash_inline(key, klen);
}

int mrf__ctable_init(mrf__ctable *t, size_t min_slots)
{
    size_t n = 1024;
    while (n < min_slots)
        n <<= 1;
    memset(t, 0, sizeof *t);
    /* touched now: the first probes would otherwise pay for fresh pages one
     * fault at a time (and a runner's first progress rate with them) */
    t->slots = mrf__big_alloc_populated(n * sizeof *t->slots);
    if (!t->slots)
        return MRF_ENOMEM;
    t->mask = n - 1;
    return MRF_OK;
}

void mrf__ctable_destroy(mrf__ctable *t)
{
    if (!t || !t->slots)
        return;
    mrf__big_free(t->slots, (t->mask + 1) * sizeof *t->slots);
    mrf__kvbuf_destroy(&t->big);
    t->slots = NULL;
}

void mrf_combine_sum_u64(void *acc, const void *val, size_t len, void *ctx)
{
    (void)ctx;
    if (len == 8) /* another length is not a u64 (mrflow.h): nothing to add */
        mrf__add_u64(acc, val);
}

static inline char *slot_key(const mrf__ctable *t, mrf__cslot *s)
{
    if (!(s->kf & MRF_CS_BIG))
        return s->data;
    uint64_t off;
    memcpy(&off, s->data, 8);
    return (char *)mrf__rec_key(t->big.base + off);
}

static int grow(mrf__ctable *t)
{
    size_t n = (t->mask + 1) * 2;
    mrf__cslot *ns = mrf__big_alloc(n * sizeof *ns);
    if (!ns)
        return MRF_ENOMEM;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i].kf)
            continue;
        size_t j = (size_t)t->slots[i].hash & (n - 1);
        while (ns[j].kf)
            j = (j + 1) & (n - 1);
        ns[j] = t->slots[i];
    }
    mrf__big_free(t->slots, (t->mask + 1) * sizeof *t->slots);
    t->slots = ns;
    t->mask = n - 1;
    return MRF_OK;
}

int mrf__ctable_add(mrf__ctable *t, uint64_t h, const void *key, size_t klen, const void *val,
                    size_t vlen, mrf__combine_fn combine, void *ctx)
{
    if (klen > MRF_CS_KLEN || vlen > INT32_MAX)
        return MRF_EINVAL;
    size_t i = (size_t)h & t->mask;
    for (;;) {
        mrf__cslot *s = &t->slots[i];
        if (!s->kf)
            break;
        if (s->hash == h && (s->kf & MRF_CS_KLEN) == klen) {
            char *k = slot_key(t, s);
            if (mrf__bytes_eq(k, key, klen)) {
                if ((s->vlen & MRF_CS_VLEN) != vlen)
                    return MRF_EINVAL;
                mrf__fold(combine, k + klen, val, vlen, ctx);
                s->vlen |= MRF_CS_HOT; /* hit since the last eviction */
                return MRF_OK;
            }
        }
        i = (i + 1) & t->mask;
    }
    mrf__cslot *s = &t->slots[i];
    s->hash = h;
    s->vlen = (uint32_t)vlen;
    if (klen + vlen <= MRF_CS_INLINE) {
        s->kf = (uint32_t)klen | MRF_CS_USED;
        mrf__copy_small(s->data, key, klen);
        mrf__copy_small(s->data + klen, val, vlen);
    } else {
        size_t off;
        int rc = mrf__kvbuf_append(&t->big, 0, key, klen, val, vlen, &off);
        if (rc)
            return rc;
        uint64_t o = off;
        memcpy(s->data, &o, 8);
        s->kf = (uint32_t)klen | MRF_CS_USED | MRF_CS_BIG;
    }
    if (++t->used * 10 > (t->mask + 1) * 7) /* load <= 0.7 */
        return grow(t);
    return MRF_OK;
}

void mrf__ctable_clear(mrf__ctable *t)
{
    if (t->used)
        memset(t->slots, 0, (t->mask + 1) * sizeof *t->slots);
    t->used = 0;
    t->big.len = 0;
}

int mrf__ctable_merge(mrf__ctable *dst, mrf__ctable *src, mrf__combine_fn combine, void *ctx,
                      mrf__bucket_fn bucket_fn, void *bctx, mrf__bstat *st)
{
    int rc = MRF_OK;
    size_t n = src->mask + 1, ahead = 0;
    for (size_t i = 0; i < n && rc == MRF_OK; i++) {
        /* fetch the destination slot of an entry some way ahead */
        for (; ahead < n && ahead < i + 64; ahead++)
            if (src->slots[ahead].kf)
                mrf__ctable_prefetch(dst, src->slots[ahead].hash);
        mrf__cslot *e = &src->slots[i];
        if (!e->kf)
            continue;
        size_t klen = e->kf & MRF_CS_KLEN;
        const char *k = slot_key(src, e);
        if (bucket_fn) {
            mrf__bstat *b = &st[bucket_fn(bctx, k, klen, e->hash)];
            b->bytes += MRF_KV_HDR + klen + (e->vlen & MRF_CS_VLEN);
            b->recs++;
        }
        rc = mrf__ctable_add(dst, e->hash, k, klen, k + klen, e->vlen & MRF_CS_VLEN, combine, ctx);
        e->kf = 0; /* emptied as it is read: no second pass to clear */
    }
    if (rc == MRF_OK) {
        src->used = 0;
        src->big.len = 0;
    } else {
        mrf__ctable_clear(src);
    }
    return rc;
}

int mrf__ctable_drain(mrf__ctable *t, mrf__kvbuf *out, mrf__bucket_fn bucket_fn, void *bctx,
                      mrf__bstat *st)
{
    int rc = MRF_OK;
    for (size_t i = 0; i <= t->mask && rc == MRF_OK; i++) {
        mrf__cslot *s = &t->slots[i];
        if (!s->kf)
            continue;
        size_t klen = s->kf & MRF_CS_KLEN;
        const char *k = slot_key(t, s);
        uint32_t b = bucket_fn ? bucket_fn(bctx, k, klen, s->hash) : 0;
        size_t vlen = s->vlen & MRF_CS_VLEN;
        rc = mrf__kvbuf_append(out, b, k, klen, k + klen, vlen, NULL);
        if (rc == MRF_OK && st) {
            st[b].bytes += MRF_KV_HDR + klen + vlen;
            st[b].recs++;
        }
    }
    if (rc == MRF_OK)
        mrf__ctable_clear(t);
    return rc;
}

int mrf__ctable_evict(mrf__ctable *t, mrf__kvbuf *out, mrf__bucket_fn bucket_fn, void *bctx,
                      mrf__bstat *st)
{
    size_t n = t->mask + 1, hot = 0;
    for (size_t i = 0; i < n; i++)
        if (t->slots[i].kf && (t->slots[i].vlen & MRF_CS_HOT))
            hot++;
    /* mostly hot keys: evicting the few cold ones would not make room */
    if (hot * 4 > t->used * 3 || hot == 0)
        return mrf__ctable_drain(t, out, bucket_fn, bctx, st);
    mrf__cslot *keep = mrf__big_alloc(hot * sizeof *keep);
    mrf__kvbuf big = {0};
    if (!keep)
        return mrf__ctable_drain(t, out, bucket_fn, bctx, st);
    int rc = MRF_OK;
    size_t k = 0;
    for (size_t i = 0; i < n && rc == MRF_OK; i++) {
        mrf__cslot *s = &t->slots[i];
        if (!s->kf)
            continue;
        size_t klen = s->kf & MRF_CS_KLEN, vlen = s->vlen & MRF_CS_VLEN;
        const char *key = slot_key(t, s);
        if (s->vlen & MRF_CS_HOT) { /* stays, with a second chance */
            keep[k] = *s;
            keep[k].vlen = (uint32_t)vlen;
            if (s->kf & MRF_CS_BIG) {
                size_t off;
                rc = mrf__kvbuf_append(&big, 0, key, klen, key + klen, vlen, &off);
                uint64_t o = off;
                memcpy(keep[k].data, &o, 8);
            }
            k++;
            continue;
        }
        uint32_t b = bucket_fn ? bucket_fn(bctx, key, klen, s->hash) : 0;
        rc = mrf__kvbuf_append(out, b, key, klen, key + klen, vlen, NULL);
        if (rc == MRF_OK && st) {
            st[b].bytes += MRF_KV_HDR + klen + vlen;
            st[b].recs++;
        }
    }
    if (rc == MRF_OK) {
        memset(t->slots, 0, n * sizeof *t->slots);
        for (size_t j = 0; j < k; j++) {
            size_t i = (size_t)keep[j].hash & t->mask;
            while (t->slots[i].kf)
                i = (i + 1) & t->mask;
            t->slots[i] = keep[j];
        }
        t->used = k;
        mrf__kvbuf_destroy(&t->big);
        t->big = big;
        big.base = NULL;
    }
    mrf__kvbuf_destroy(&big);
    mrf__big_free(keep, hot * sizeof *keep);
    return rc;
}

int mrf__combine_records(mrf__ctable *t, const char *in, size_t len, const mrf_job_spec *spec,
                         mrf__kvbuf *out)
{
    int rc = MRF_OK;
    for (size_t at = 0; at < len && rc == MRF_OK;) {
        const char *r = in + at;
        size_t klen = mrf__rec_klen(r), vlen = mrf__rec_vlen(r);
        uint64_t h = mrf__key_hash(mrf__rec_key(r), klen);
        rc = mrf__ctable_add(t, h, mrf__rec_key(r), klen, mrf__rec_val(r), vlen, spec->combine,
                             spec->ctx);
        if (rc == MRF_EINVAL)
            rc = mrf__fail(rc,
                           "job '%s': values of one key have different lengths; a job with a "
                           "combiner must emit values of one length per key",
                           spec->name);
        else if (rc)
            rc = mrf__fail(rc, "out of memory in the combining table");
        at += MRF_KV_HDR + klen + vlen;
    }
    if (rc == MRF_OK && (rc = mrf__ctable_drain(t, out, NULL, NULL, NULL)))
        rc = mrf__fail(rc, "out of memory for combined records");
    return rc;
}
