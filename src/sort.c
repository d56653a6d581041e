/*
 * sort.c -- ordering records by key for grouping and output.
 *
 * Records are sorted through an index of 16-byte entries {prefix, offset}:
 * an LSD radix sort on the 8-byte big-endian key prefix (passes whose byte is
 * the same in every entry are skipped), then each run of equal prefixes is
 * finished by comparing whole keys and, on equal keys, values -- so the order
 * is total and the output is the same whatever order records arrived in.
 * A job's own key_compare replaces the radix pass with a comparison sort.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "internal.h"

uint64_t mrf__key_prefix(const void *key, size_t klen)
{
    const unsigned char *k = key;
    uint64_t p = 0;
    size_t n = klen < 8 ? klen : 8;
    for (size_t i = 0; i < n; i++)
        p |= (uint64_t)k[i] << (56 - 8 * i);
    return p;
}

int mrf__bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

typedef struct {
    const char *base;
    int (*cmp)(const void *, size_t, const void *, size_t);
} sort_ctx;

static int cmp_records(const void *x, const void *y, void *arg)
{
    const sort_ctx *c = arg;
    const char *a = c->base + ((const mrf__sort_ent *)x)->off;
    const char *b = c->base + ((const mrf__sort_ent *)y)->off;
    int r = c->cmp ? c->cmp(mrf__rec_key(a), mrf__rec_klen(a), mrf__rec_key(b), mrf__rec_klen(b))
                   : mrf__bytes_cmp(mrf__rec_key(a), mrf__rec_klen(a), mrf__rec_key(b),
                                    mrf__rec_klen(b));
    if (r)
        return r;
    return mrf__bytes_cmp(mrf__rec_val(a), mrf__rec_vlen(a), mrf__rec_val(b), mrf__rec_vlen(b));
}

static void radix_prefix(mrf__sort_ent *ents, mrf__sort_ent *tmp, size_t n)
{
    size_t(*hist)[256] = mrf__calloc(8, sizeof *hist);
    if (!hist) {
        /* no memory for 16 KiB: fall back to a comparison sort on prefixes */
        for (size_t i = 1; i < n; i++) {
            mrf__sort_ent e = ents[i];
            size_t j = i;
            while (j > 0 && ents[j - 1].prefix > e.prefix) {
                ents[j] = ents[j - 1];
                j--;
            }
            ents[j] = e;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t p = ents[i].prefix;
        for (int d = 0; d < 8; d++)
            hist[d][(p >> (8 * d)) & 0xff]++;
    }
    mrf__sort_ent *src = ents, *dst = tmp;
    for (int d = 0; d < 8; d++) {
        size_t *h = hist[d];
        bool trivial = false;
        for (int v = 0; v < 256; v++)
            if (h[v] == n)
                trivial = true;
        if (trivial)
            continue;
        size_t sum = 0;
        for (int v = 0; v < 256; v++) {
            size_t c = h[v];
            h[v] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            mrf__sort_ent e = src[i];
            dst[h[(e.prefix >> (8 * d)) & 0xff]++] = e;
        }
        mrf__sort_ent *t = src;
        src = dst;
        dst = t;
    }
    if (src != ents)
        memcpy(ents, src, n * sizeof *ents);
    mrf__free(hist);
}

void mrf__sort_records(mrf__sort_ent *ents, mrf__sort_ent *tmp, size_t n, const char *base,
                       int (*cmp)(const void *, size_t, const void *, size_t))
{
    sort_ctx c = {base, cmp};
    if (n < 2)
        return;
    if (cmp) {
        qsort_r(ents, n, sizeof *ents, cmp_records, &c);
        return;
    }
    radix_prefix(ents, tmp, n);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && ents[j].prefix == ents[i].prefix)
            j++;
        if (j - i > 1)
            qsort_r(ents + i, j - i, sizeof *ents, cmp_records, &c);
        i = j;
    }
}
