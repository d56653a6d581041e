/*
 * combine.c -- the per-rank combining hash table.
 *
 * Open addressing with linear probing over 16-byte slots {hash, offset+1}.
 * Keys live only in the kvbuf the offsets point into, so the table costs 16
 * bytes per slot whatever the key length, and a probe touches the key bytes
 * only when the full 64-bit XXH3 hashes match.  Load stays at most 1/2.
 */
#include "internal.h"

int mrf__ctable_init(mrf__ctable *t, size_t min_slots)
{
    size_t n = 1024;
    while (n < min_slots)
        n <<= 1;
    t->slots = mrf__big_alloc(n * sizeof *t->slots);
    if (!t->slots)
        return MRF_ENOMEM;
    t->mask = n - 1;
    t->used = 0;
    return MRF_OK;
}

void mrf__ctable_destroy(mrf__ctable *t)
{
    if (!t || !t->slots)
        return;
    mrf__big_free(t->slots, (t->mask + 1) * sizeof *t->slots);
    t->slots = NULL;
}

void mrf__ctable_clear(mrf__ctable *t)
{
    memset(t->slots, 0, (t->mask + 1) * sizeof *t->slots);
    t->used = 0;
}

size_t mrf__ctable_find(const mrf__ctable *t, const char *base, uint64_t h, const void *key,
                        size_t klen, size_t *slot)
{
    size_t i = (size_t)h & t->mask;
    for (;;) {
        const mrf__cslot *s = &t->slots[i];
        if (s->off == 0) {
            *slot = i;
            return SIZE_MAX;
        }
        if (s->hash == h) {
            const char *r = base + (s->off - 1);
            if (mrf__rec_klen(r) == klen && memcmp(mrf__rec_key(r), key, klen) == 0) {
                *slot = i;
                return (size_t)(s->off - 1);
            }
        }
        i = (i + 1) & t->mask;
    }
}

static int grow(mrf__ctable *t)
{
    size_t n = (t->mask + 1) * 2;
    mrf__cslot *ns = mrf__big_alloc(n * sizeof *ns);
    if (!ns)
        return MRF_ENOMEM;
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->slots[i].off)
            continue;
        size_t j = (size_t)t->slots[i].hash & (n - 1);
        while (ns[j].off)
            j = (j + 1) & (n - 1);
        ns[j] = t->slots[i];
    }
    mrf__big_free(t->slots, (t->mask + 1) * sizeof *t->slots);
    t->slots = ns;
    t->mask = n - 1;
    return MRF_OK;
}

int mrf__ctable_insert(mrf__ctable *t, size_t slot, uint64_t h, size_t off)
{
    t->slots[slot].hash = h;
    t->slots[slot].off = (uint64_t)off + 1;
    t->used++;
    if (t->used * 2 > t->mask + 1)
        return grow(t);
    return MRF_OK;
}

int mrf__combine_records(char *base, size_t len, const mrf_job_spec *spec, size_t *n_live)
{
    mrf__ctable t;
    size_t live = 0;
    int rc = mrf__ctable_init(&t, len / 64 + 1);
    if (rc)
        return mrf__fail(rc, "out of memory for the combining table");
    for (size_t at = 0; at < len;) {
        char *r = base + at;
        size_t klen = mrf__rec_klen(r), vlen = mrf__rec_vlen(r);
        uint64_t h = mrf__key_hash(mrf__rec_key(r), klen);
        size_t slot;
        size_t prev = mrf__ctable_find(&t, base, h, mrf__rec_key(r), klen, &slot);
        if (prev == SIZE_MAX) {
            if ((rc = mrf__ctable_insert(&t, slot, h, at))) {
                rc = mrf__fail(rc, "out of memory growing the combining table");
                break;
            }
            live++;
        } else {
            char *acc = base + prev;
            if (mrf__rec_vlen(acc) != vlen) {
                rc = mrf__fail(MRF_EINVAL,
                               "job '%s': values of one key have lengths %u and %zu; a job "
                               "with a combiner must emit values of one length per key",
                               spec->name, mrf__rec_vlen(acc), vlen);
                break;
            }
            spec->combine((char *)mrf__rec_val(acc), mrf__rec_val(r), vlen, spec->ctx);
            mrf__wr32(r, MRF_BUCKET_DEAD);
        }
        at += MRF_KV_HDR + klen + vlen;
    }
    mrf__ctable_destroy(&t);
    if (rc == MRF_OK)
        *n_live = live;
    return rc;
}
