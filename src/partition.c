/*
 * partition.c -- keys to virtual buckets, buckets to ranks.
 *
 * Hash partitioning: bucket = fastrange(XXH3(key), B).  After the map one
 * allreduce gives every rank the global bytes per bucket, and buckets are
 * packed onto ranks largest first (LPT), each to the least loaded rank, so the
 * reduce input per rank is balanced by bytes, not by bucket count.
 *
 * Heavy keys (skew partitioning): a key with 1/(20 x ranks) or more of the
 * sampled map output gets sub-buckets of its own past the hash buckets, about
 * one per 1/(20 x ranks) of the data; its records are dealt over them and the
 * LPT packing spreads them, so no bucket outweighs a twentieth of a rank's
 * fair share.  The job's combiner later merges the partial results.
 *
 * Range partitioning: splitters are chosen from a sorted sample of the keys;
 * a key's bucket is the number of splitters less than it, and buckets are
 * packed onto ranks contiguously, so part i holds only keys <= part i+1's.
 * A key equal to several splitters (a key heavier than a bucket) may go to
 * any bucket from its first to one past its last: order holds either way.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"
#include "partition.h"

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
    mrf__free(sp->run_end);
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
    /* runs of equal splitters, from the back */
    sp->tie_runs = 0;
    for (uint32_t k = sp->n; k-- > 0;) {
        bool eq = k + 1 < sp->n && sp->prefix[k] == sp->prefix[k + 1] &&
                  mrf__bytes_cmp(sp->keys + sp->off[k], sp->off[k + 1] - sp->off[k],
                                 sp->keys + sp->off[k + 1], sp->off[k + 2] - sp->off[k + 1]) == 0;
        sp->run_end[k] = eq ? sp->run_end[k + 1] : k + 1;
        if (eq && sp->run_end[k + 1] == k + 2)
            sp->tie_runs++;
    }
}

static int splitters_alloc(mrf__splitters *sp, uint32_t n, size_t key_bytes)
{
    sp->n = n;
    sp->keys = mrf__malloc(key_bytes ? key_bytes : 1);
    sp->off = mrf__malloc(((size_t)n + 1) * sizeof *sp->off);
    sp->prefix = mrf__malloc(((size_t)n + 1) * sizeof *sp->prefix);
    sp->top = mrf__malloc(65537 * sizeof *sp->top);
    sp->run_end = mrf__malloc(((size_t)n + 1) * sizeof *sp->run_end);
    if (!sp->keys || !sp->off || !sp->prefix || !sp->top || !sp->run_end) {
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

uint32_t mrf__range_bucket_span(const mrf__splitters *sp, const void *key, size_t klen,
                                int (*cmp)(const void *, size_t, const void *, size_t),
                                uint32_t *span)
{
    uint32_t b = mrf__range_bucket(sp, key, klen, cmp);
    *span = 1;
    if (sp->tie_runs == 0 || b >= sp->n || sp->run_end[b] == b + 1)
        return b; /* no run of equal splitters starts at b */
    const char *s = sp->keys + sp->off[b];
    size_t sl = sp->off[b + 1] - sp->off[b];
    if ((cmp ? cmp(s, sl, key, klen) : mrf__bytes_cmp(s, sl, key, klen)) == 0)
        *span = sp->run_end[b] - b + 1;
    return b;
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

/* ----------------------------------------------------------- heavy keys -- */

static int cmp_hkey_hash(const void *a, const void *b)
{
    const mrf__hkey *x = a, *y = b;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static int cmp_hkey_weight(const void *a, const void *b)
{
    const mrf__hkey *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

void mrf__hkeys_by_weight(mrf__hkey *keys, size_t n)
{
    if (n)
        qsort(keys, n, sizeof *keys, cmp_hkey_weight);
}

size_t mrf__hkeys_merge(mrf__hkey *keys, size_t n)
{
    if (n == 0)
        return 0;
    qsort(keys, n, sizeof *keys, cmp_hkey_hash);
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (keys[i].hash == keys[k].hash)
            keys[k].weight += keys[i].weight;
        else
            keys[++k] = keys[i];
    }
    return k + 1;
}

void mrf__heavy_free(mrf__heavy *hv)
{
    if (!hv)
        return;
    mrf__free(hv->key);
    mrf__free(hv->first);
    mrf__free(hv->m);
    mrf__free(hv->share);
    mrf__free(hv->sh);
    mrf__free(hv->si);
    mrf__free(hv->sfirst);
    mrf__free(hv->sm);
    mrf__free(hv->snext);
    memset(hv, 0, sizeof *hv);
}

static int heavy_alloc(mrf__heavy *hv, uint32_t n)
{
    size_t slots = 64;
    while (slots < 16 * (size_t)n && slots < (1u << 24))
        slots *= 2;
    hv->n = n;
    hv->mask = (uint32_t)slots - 1;
    hv->key = mrf__calloc(n ? n : 1, sizeof *hv->key);
    hv->first = mrf__calloc(n ? n : 1, sizeof *hv->first);
    hv->m = mrf__calloc(n ? n : 1, sizeof *hv->m);
    hv->share = mrf__calloc(n ? n : 1, sizeof *hv->share);
    hv->sh = mrf__calloc(slots, sizeof *hv->sh);
    hv->si = mrf__calloc(slots, sizeof *hv->si);
    hv->sfirst = mrf__calloc(slots, sizeof *hv->sfirst);
    hv->sm = mrf__calloc(slots, sizeof *hv->sm);
    hv->snext = mrf__calloc(slots, sizeof *hv->snext);
    if (!hv->key || !hv->first || !hv->m || !hv->share || !hv->sh || !hv->si || !hv->sfirst ||
        !hv->sm || !hv->snext) {
        mrf__heavy_free(hv);
        return MRF_ENOMEM;
    }
    return MRF_OK;
}

static bool slot_empty(const mrf__heavy *hv, uint32_t j)
{
    return hv->sm[j] == 0;
}

static void heavy_index(mrf__heavy *hv)
{
    for (uint32_t j = 0; j <= hv->mask; j++) {
        hv->sh[j] = (j + 1) & hv->mask; /* empty: never a hash whose home is j */
        hv->sm[j] = 0;
    }
    hv->nsub = 0;
    for (uint32_t i = 0; i < hv->n; i++) {
        hv->first[i] = hv->nsub;
        hv->nsub += hv->m[i];
        uint32_t j = (uint32_t)hv->key[i].hash & hv->mask;
        while (!slot_empty(hv, j))
            j = (j + 1) & hv->mask;
        hv->sh[j] = hv->key[i].hash;
        hv->si[j] = i;
        hv->sfirst[j] = hv->first[i];
        hv->sm[j] = hv->m[i];
    }
}

int mrf__heavy_slot_slow(const mrf__heavy *hv, uint64_t h)
{
    for (uint32_t j = (uint32_t)h & hv->mask;; j = (j + 1) & hv->mask) {
        if (slot_empty(hv, j))
            return -1;
        if (hv->sh[j] == h)
            return (int)j;
    }
}

void mrf__heavy_reset(mrf__heavy *hv, uint64_t seed)
{
    for (uint32_t i = 0; i < hv->n; i++) {
        int j = mrf__heavy_slot(hv, hv->key[i].hash);
        if (j >= 0)
            hv->snext[j] = (uint32_t)(seed % hv->m[i]);
    }
}

int mrf__heavy_pick(const mrf__hkey *keys, size_t n, uint64_t total, int nranks, bool split,
                    mrf__heavy *hv)
{
    memset(hv, 0, sizeof *hv);
    mrf__hkey *sorted = mrf__malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return MRF_ENOMEM;
    if (n)
        memcpy(sorted, keys, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_hkey_weight);
    /* heavy: weight >= total / (DIV x ranks), i.e. weight x DIV x ranks >= total */
    double unit = (double)total / ((double)MRF__HEAVY_DIV * nranks);
    uint32_t h = 0;
    while (h < n && total && (double)sorted[h].weight >= unit)
        h++;
    int rc = heavy_alloc(hv, h);
    if (rc == MRF_OK) {
        for (uint32_t i = 0; i < h; i++) {
            hv->key[i] = sorted[i];
            hv->share[i] = (double)sorted[i].weight / (double)total;
            double m = split && nranks > 1 ? ceil((double)sorted[i].weight / unit) : 1;
            hv->m[i] = m > (double)MRF__HEAVY_DIV * nranks ? (uint32_t)MRF__HEAVY_DIV * nranks
                                                           : (uint32_t)m;
        }
        heavy_index(hv);
    }
    mrf__free(sorted);
    return rc;
}

int mrf__heavy_bcast(mrf__heavy *hv, MPI_Comm comm)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    uint32_t n = hv->n;
    if (MPI_Bcast(&n, 1, MPI_UINT32_T, 0, comm) != MPI_SUCCESS)
        return MRF_EMPI;
    if (rank != 0 && heavy_alloc(hv, n))
        return MRF_ENOMEM;
    if (n == 0)
        return MRF_OK;
    if (MPI_Bcast(hv->key, (int)(n * sizeof *hv->key), MPI_BYTE, 0, comm) != MPI_SUCCESS ||
        MPI_Bcast(hv->m, (int)n, MPI_UINT32_T, 0, comm) != MPI_SUCCESS ||
        MPI_Bcast(hv->share, (int)n, MPI_DOUBLE, 0, comm) != MPI_SUCCESS)
        return MRF_EMPI;
    if (rank != 0)
        heavy_index(hv);
    return MRF_OK;
}

/* ------------------------------------------- decisions (for checkpoints) -- */

/* Layout, little-endian as in memory:
 *   "MRFD" u32 version=1 | u32 n_splitters, u64 key_bytes, u64 off[n+1],
 *   keys | u32 n_heavy, per key: u64 hash, u64 weight, u32 klen,
 *   name[MRF__HEAVY_NAME], u32 m, f64 share */
#define DEC_MAGIC 0x4446524du
#define HKEY_BYTES (8 + 8 + 4 + MRF__HEAVY_NAME + 4 + 8)

int mrf__decisions_pack(const mrf__splitters *sp, const mrf__heavy *hv, char **buf, size_t *len)
{
    uint64_t kb = sp->n ? sp->off[sp->n] : 0;
    size_t n = 8 + 4 + 8 + (sp->n ? ((size_t)sp->n + 1) * 8 : 0) + (size_t)kb + 4 +
               (size_t)hv->n * HKEY_BYTES;
    char *p = mrf__malloc(n), *o = p;
    if (!p)
        return MRF_ENOMEM;
#define PUT(v)                                                                                     \
    do {                                                                                           \
        memcpy(o, &(v), sizeof(v));                                                                \
        o += sizeof(v);                                                                            \
    } while (0)
    uint32_t magic = DEC_MAGIC, version = 1;
    PUT(magic);
    PUT(version);
    PUT(sp->n);
    PUT(kb);
    if (sp->n) {
        memcpy(o, sp->off, ((size_t)sp->n + 1) * 8);
        o += ((size_t)sp->n + 1) * 8;
        memcpy(o, sp->keys, (size_t)kb);
        o += kb;
    }
    PUT(hv->n);
    for (uint32_t i = 0; i < hv->n; i++) {
        PUT(hv->key[i].hash);
        PUT(hv->key[i].weight);
        PUT(hv->key[i].klen);
        memcpy(o, hv->key[i].name, MRF__HEAVY_NAME);
        o += MRF__HEAVY_NAME;
        PUT(hv->m[i]);
        PUT(hv->share[i]);
    }
#undef PUT
    *buf = p;
    *len = (size_t)(o - p);
    return MRF_OK;
}

int mrf__decisions_unpack(const char *buf, size_t len, uint32_t max_sub, mrf__splitters *sp,
                          mrf__heavy *hv)
{
    memset(sp, 0, sizeof *sp);
    memset(hv, 0, sizeof *hv);
    const char *p = buf, *end = buf + len;
#define GET(v)                                                                                     \
    do {                                                                                           \
        if ((size_t)(end - p) < sizeof(v))                                                         \
            goto bad;                                                                              \
        memcpy(&(v), p, sizeof(v));                                                                \
        p += sizeof(v);                                                                            \
    } while (0)
    uint32_t magic, version, ns, nh;
    uint64_t kb;
    GET(magic);
    GET(version);
    if (magic != DEC_MAGIC || version != 1)
        goto bad;
    GET(ns);
    GET(kb);
    /* (no splitters: no offsets either, as pack writes them) */
    if (ns >= (1u << 26) || kb > (uint64_t)(end - p) || (ns == 0 && kb != 0) ||
        (ns ? ((uint64_t)ns + 1) * 8 : 0) > (uint64_t)(end - p) - kb)
        goto bad;
    if (ns) {
        if (splitters_alloc(sp, ns, (size_t)kb))
            return MRF_ENOMEM;
        memcpy(sp->off, p, ((size_t)ns + 1) * 8);
        p += ((size_t)ns + 1) * 8;
        if (sp->off[0] != 0 || sp->off[ns] != kb)
            goto bad;
        for (uint32_t j = 0; j < ns; j++)
            if (sp->off[j + 1] < sp->off[j])
                goto bad;
        memcpy(sp->keys, p, (size_t)kb);
        p += kb;
        for (uint32_t j = 0; j < ns; j++)
            sp->prefix[j] = mrf__key_prefix(sp->keys + sp->off[j], sp->off[j + 1] - sp->off[j]);
        for (uint32_t j = 0; j + 1 < ns; j++) /* sorted, as splitters are */
            if (mrf__bytes_cmp(sp->keys + sp->off[j], sp->off[j + 1] - sp->off[j],
                               sp->keys + sp->off[j + 1], sp->off[j + 2] - sp->off[j + 1]) > 0)
                goto bad;
        build_top(sp);
    }
    GET(nh);
    if (nh > (1u << 20) || (uint64_t)nh * HKEY_BYTES != (uint64_t)(end - p))
        goto bad;
    if (heavy_alloc(hv, nh)) {
        mrf__splitters_free(sp);
        return MRF_ENOMEM;
    }
    uint64_t sub = 0;
    for (uint32_t i = 0; i < nh; i++) {
        GET(hv->key[i].hash);
        GET(hv->key[i].weight);
        GET(hv->key[i].klen);
        memcpy(hv->key[i].name, p, MRF__HEAVY_NAME);
        p += MRF__HEAVY_NAME;
        GET(hv->m[i]);
        GET(hv->share[i]);
        sub += hv->m[i];
        if (hv->m[i] == 0 || sub > max_sub)
            goto bad;
        for (uint32_t k = 0; nh <= 4096 && k < i; k++) /* distinct hashes */
            if (hv->key[k].hash == hv->key[i].hash)
                goto bad;
    }
#undef GET
    heavy_index(hv);
    return MRF_OK;
bad:
    mrf__splitters_free(sp);
    mrf__heavy_free(hv);
    return MRF_EINVAL;
}
