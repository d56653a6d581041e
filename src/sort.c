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

/* ------------------------------------------------------------ k-way merge -- */

int mrf__rec_cmp(const char *a, const char *b,
                 int (*cmp)(const void *, size_t, const void *, size_t))
{
    int r =
        cmp ? cmp(mrf__rec_key(a), mrf__rec_klen(a), mrf__rec_key(b), mrf__rec_klen(b))
            : mrf__bytes_cmp(mrf__rec_key(a), mrf__rec_klen(a), mrf__rec_key(b), mrf__rec_klen(b));
    if (r)
        return r;
    return mrf__bytes_cmp(mrf__rec_val(a), mrf__rec_vlen(a), mrf__rec_val(b), mrf__rec_vlen(b));
}

static bool less(const mrf__merge *m, size_t x, size_t y)
{
    return mrf__rec_cmp(m->src[x].cur, m->src[y].cur, m->cmp) < 0;
}

static void sift_down(mrf__merge *m, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < m->n && less(m, m->heap[l], m->heap[s]))
            s = l;
        if (r < m->n && less(m, m->heap[r], m->heap[s]))
            s = r;
        if (s == i)
            return;
        size_t t = m->heap[i];
        m->heap[i] = m->heap[s];
        m->heap[s] = t;
        i = s;
    }
}

int mrf__merge_init(mrf__merge *m, mrf__merge_src *src, size_t n,
                    int (*cmp)(const void *, size_t, const void *, size_t))
{
    memset(m, 0, sizeof *m);
    m->src = src;
    m->cmp = cmp;
    if (!(m->heap = mrf__malloc((n ? n : 1) * sizeof *m->heap)))
        return MRF_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int rc = src[i].next(src[i].ctx, &src[i].cur);
        if (rc < 0)
            return rc;
        if (rc)
            m->heap[m->n++] = i;
    }
    for (size_t i = m->n / 2; i-- > 0;)
        sift_down(m, i);
    return MRF_OK;
}

int mrf__merge_pop(mrf__merge *m)
{
    if (!m->n)
        return MRF_OK;
    mrf__merge_src *s = &m->src[m->heap[0]];
    int rc = s->next(s->ctx, &s->cur);
    if (rc < 0)
        return rc;
    if (rc == 0)
        m->heap[0] = m->heap[--m->n];
    if (m->n)
        sift_down(m, 0);
    return MRF_OK;
}

void mrf__merge_free(mrf__merge *m)
{
    mrf__free(m->heap);
    m->heap = NULL;
    m->n = 0;
}

int mrf__sorted_next(void *ctx, const char **rec)
{
    mrf__sorted_src *m = ctx;
    if (m->i >= m->n)
        return 0;
    *rec = m->base + m->ents[m->i++].off;
    return 1;
}
