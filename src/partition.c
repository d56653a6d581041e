/*
 * partition.c -- keys to virtual buckets, buckets to ranks.
 *
 * Hash partitioning: bucket = fastrange(XXH3(key), B).  After the map one
 * allreduce gives every rank the global bytes per bucket, and buckets are
 * packed onto ranks largest first (LPT), each to the least loaded rank, so the
 * reduce input per rank is balanced by bytes, not by bucket count.
 *
 * Range partitioning: splitters are chosen from a sorted sample of the keys;
 * a key's bucket is the number of splitters less than it, and buckets are
 * packed onto ranks contiguously, so part i holds only keys <= part i+1's.
 */
#include <limits.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
    uint64_t bytes;
    uint32_t bucket;
} bsize;

static int cmp_bsize_desc(const void *a, const void *b)
{
    const bsize *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

typedef struct {
    uint64_t load;
    int32_t rank;
} rload;

static bool rl_less(const rload *a, const rload *b)
{
    return a->load < b->load || (a->load == b->load && a->rank < b->rank);
}

static void heap_down(rload *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && rl_less(&h[l], &h[m]))
            m = l;
        if (l + 1 < n && rl_less(&h[l + 1], &h[m]))
            m = l + 1;
        if (m == i)
            return;
        rload t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

int mrf__pack_lpt(const uint64_t *bytes, uint32_t nb, int nranks, int32_t *owner)
{
    bsize *order = mrf__malloc((size_t)nb * sizeof *order);
    rload *heap = mrf__malloc((size_t)nranks * sizeof *heap);
    if (!order || !heap) {
        mrf__free(order);
        mrf__free(heap);
        return MRF_ENOMEM;
    }
    for (uint32_t b = 0; b < nb; b++)
        order[b] = (bsize){bytes[b], b};
    qsort(order, nb, sizeof *order, cmp_bsize_desc);
    for (int r = 0; r < nranks; r++)
        heap[r] = (rload){0, r};
    /* ranks 0..n-1 with load 0 already form a valid min-heap */
    for (uint32_t i = 0; i < nb; i++) {
        owner[order[i].bucket] = heap[0].rank;
        heap[0].load += order[i].bytes;
        heap_down(heap, (size_t)nranks, 0);
    }
    mrf__free(order);
    mrf__free(heap);
    return MRF_OK;
}

void mrf__pack_contiguous(const uint64_t *bytes, uint32_t nb, int nranks, int32_t *owner)
{
    unsigned __int128 total = 0, before = 0;
    for (uint32_t b = 0; b < nb; b++)
        total += bytes[b];
    for (uint32_t b = 0; b < nb; b++) {
        /* the rank whose share holds the middle of this bucket */
        int32_t r = 0;
        if (total)
            r = (int32_t)(((before * 2 + bytes[b]) * (unsigned)nranks) / (total * 2));
        if (r >= nranks)
            r = nranks - 1;
        owner[b] = r;
        before += bytes[b];
    }
}

void mrf__splitters_free(mrf__splitters *sp)
{
    if (!sp)
        return;
    mrf__free(sp->keys);
    mrf__free(sp->off);
    mrf__free(sp->prefix);
    mrf__free(sp->top);
    memset(sp, 0, sizeof *sp);
}

/* The top-16-bit index: a key whose prefix starts with v can only fall
 * between splitters top[v] and top[v+1], so the binary search runs over
 * those few instead of all of them (12 levels fewer for 4096 buckets). */
static void build_top(mrf__splitters *sp)
{
    uint32_t j = 0;
    for (uint32_t v = 0; v <= 65536; v++) {
        while (j < sp->n && (sp->prefix[j] >> 48) < v)
            j++;
        sp->top[v] = j;
    }
}

static int splitters_alloc(mrf__splitters *sp, uint32_t n, size_t key_bytes)
{
    sp->n = n;
    sp->keys = mrf__malloc(key_bytes ? key_bytes : 1);
    sp->off = mrf__malloc(((size_t)n + 1) * sizeof *sp->off);
    sp->prefix = mrf__malloc(((size_t)n + 1) * sizeof *sp->prefix);
    sp->top = mrf__malloc(65537 * sizeof *sp->top);
    if (!sp->keys || !sp->off || !sp->prefix || !sp->top) {
        mrf__splitters_free(sp);
        return MRF_ENOMEM;
    }
    return MRF_OK;
}

int mrf__splitters_from_sorted(const char *const *keys, const size_t *lens, size_t n,
                               uint32_t max_buckets, mrf__splitters *sp)
{
    memset(sp, 0, sizeof *sp);
    uint64_t nb = max_buckets;
    if (nb > n + 1)
        nb = n + 1;
    if (nb == 0)
        nb = 1;
    uint32_t ns = (uint32_t)(nb - 1);
    size_t bytes = 0;
    for (uint32_t j = 1; j <= ns; j++)
        bytes += lens[(size_t)((uint64_t)j * n / nb)];
    if (splitters_alloc(sp, ns, bytes))
        return MRF_ENOMEM;
    size_t at = 0;
    for (uint32_t j = 1; j <= ns; j++) {
        size_t i = (size_t)((uint64_t)j * n / nb);
        sp->off[j - 1] = at;
        memcpy(sp->keys + at, keys[i], lens[i]);
        sp->prefix[j - 1] = mrf__key_prefix(keys[i], lens[i]);
        at += lens[i];
    }
    sp->off[ns] = at;
    build_top(sp);
    return MRF_OK;
}

uint32_t mrf__range_bucket(const mrf__splitters *sp, const void *key, size_t klen,
                           int (*cmp)(const void *, size_t, const void *, size_t))
{
    uint32_t lo = 0, hi = sp->n;
    uint64_t kp = cmp ? 0 : mrf__key_prefix(key, klen);
    if (!cmp) {
        /* splitters before top[v] have a smaller prefix (so are < key); those
         * from top[v+1] on have a larger one */
        lo = sp->top[kp >> 48];
        hi = sp->top[(kp >> 48) + 1];
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const char *s = sp->keys + sp->off[mid];
        size_t sl = sp->off[mid + 1] - sp->off[mid];
        int c;
        if (cmp)
            c = cmp(s, sl, key, klen);
        else if (sp->prefix[mid] != kp)
            c = sp->prefix[mid] < kp ? -1 : 1;
        else
            c = mrf__bytes_cmp(s, sl, key, klen);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int mrf__splitters_bcast(mrf__splitters *sp, MPI_Comm comm)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    uint64_t hdr[2] = {sp->n, sp->n ? sp->off[sp->n] : 0};
    if (MPI_Bcast(hdr, 2, MPI_UINT64_T, 0, comm) != MPI_SUCCESS)
        return MRF_EMPI;
    if (hdr[1] > INT_MAX || hdr[0] >= UINT32_MAX)
        return mrf__fail(MRF_EINVAL, "splitters too large (%llu bytes)",
                         (unsigned long long)hdr[1]);
    if (rank != 0 && splitters_alloc(sp, (uint32_t)hdr[0], hdr[1]))
        return MRF_ENOMEM;
    if (hdr[0] == 0 && rank != 0)
        sp->off[0] = 0;
    if (hdr[0] > 0) {
        if (MPI_Bcast(sp->off, (int)(hdr[0] + 1), MPI_UINT64_T, 0, comm) != MPI_SUCCESS ||
            MPI_Bcast(sp->keys, (int)hdr[1], MPI_BYTE, 0, comm) != MPI_SUCCESS)
            return MRF_EMPI;
    }
    for (uint32_t j = 0; j < sp->n; j++)
        sp->prefix[j] = mrf__key_prefix(sp->keys + sp->off[j], sp->off[j + 1] - sp->off[j]);
    build_top(sp);
    return MRF_OK;
}
