/*
 * kvbuf.c -- the arena of length-prefixed key/value records (layout drawn in
 * internal.h).  One arena holds a rank's map output; the same layout is what
 * crosses the shuffle and what the sort indexes, so records are copied only
 * when they change owner.
 */
#include "internal.h"

int mrf__kvbuf_reserve(mrf__kvbuf *kv, size_t extra)
{
    if (kv->cap - kv->len >= extra)
        return MRF_OK;
    if (extra > SIZE_MAX / 4 - kv->len)
        return MRF_ENOMEM;
    size_t ncap = kv->cap ? kv->cap * 2 : (64u << 10);
    if (kv->limit && ncap > kv->limit && kv->len + extra <= kv->limit)
        ncap = kv->limit; /* the budget's share: grow to it, not past it */
    if (ncap < kv->len + extra)
        ncap = kv->len + extra;
    char *nb = mrf__big_resize(kv->base, kv->cap, ncap);
    if (!nb)
        return MRF_ENOMEM;
    kv->base = nb;
    kv->cap = ncap;
    return MRF_OK;
}

int mrf__kvbuf_append(mrf__kvbuf *kv, uint32_t bucket, const void *key, size_t klen,
                      const void *val, size_t vlen, size_t *off)
{
    if (klen > INT32_MAX || vlen > INT32_MAX)
        return MRF_EINVAL;
    size_t need = MRF_KV_HDR + klen + vlen;
    if (kv->cap - kv->len < need) {
        int rc = mrf__kvbuf_reserve(kv, need);
        if (rc)
            return rc;
    }
    char *r = kv->base + kv->len;
    mrf__wr32(r, bucket);
    mrf__wr32(r + 4, (uint32_t)klen);
    mrf__wr32(r + 8, (uint32_t)vlen);
    if (klen)
        memcpy(r + MRF_KV_HDR, key, klen);
    if (vlen)
        memcpy(r + MRF_KV_HDR + klen, val, vlen);
    if (off)
        *off = kv->len;
    kv->len += need;
    return MRF_OK;
}

void mrf__kvbuf_destroy(mrf__kvbuf *kv)
{
    if (!kv)
        return;
    mrf__big_free(kv->base, kv->cap);
    kv->base = NULL;
    kv->len = kv->cap = 0;
}

int mrf__kvbuf_check(const char *p, size_t len, size_t *n)
{
    size_t at = 0, count = 0;
    while (at < len) {
        if (len - at < MRF_KV_HDR)
            return MRF_EINVAL;
        uint64_t sz = (uint64_t)MRF_KV_HDR + mrf__rec_klen(p + at) + mrf__rec_vlen(p + at);
        if (sz > len - at)
            return MRF_EINVAL;
        at += (size_t)sz;
        count++;
    }
    *n = count;
    return MRF_OK;
}
