/*
 * partition.h -- where keys go: buckets, their packing onto ranks, range
 * splitters and heavy keys (partition.c).
 */
#ifndef MRF_PARTITION_H
#define MRF_PARTITION_H

#include "internal.h"

static inline uint32_t mrf__hash_bucket(uint64_t h, uint32_t nb)
{
    return (uint32_t)(((h >> 32) * (uint64_t)nb) >> 32);
}
/* Largest-first packing of buckets onto ranks (hash partitioning). */
int mrf__pack_lpt(const uint64_t *bytes, uint32_t nb, int nranks, int32_t *owner);
/* Contiguous packing preserving bucket order (range partitioning). */
void mrf__pack_contiguous(const uint64_t *bytes, uint32_t nb, int nranks, int32_t *owner);

typedef struct mrf__splitters {
    uint32_t n;        /* number of splitters; buckets = n + 1 */
    uint32_t *run_end; /* j's run of equal splitters ends before run_end[j] */
    uint32_t tie_runs; /* runs of two or more equal splitters */
    char *keys;        /* concatenated key bytes */
    size_t *off;       /* n + 1 offsets into keys */
    uint64_t *prefix;  /* big-endian 8-byte prefix per splitter */
    uint32_t *top;     /* 65537 entries: first splitter whose prefix >> 48 >= v */
} mrf__splitters;

/* Picks up to max_buckets-1 splitters from sorted sample keys. */
int mrf__splitters_from_sorted(const char *const *keys, const size_t *lens, size_t n,
                               uint32_t max_buckets, mrf__splitters *sp);
/* The bucket of a key equal to no splitter; for one equal to splitters
 * lo..hi-1 (a key heavier than a bucket), the first bucket it may go to, and
 * *span = hi - lo + 1 buckets in all (lo's, the hi - lo - 1 holding only
 * it, and hi's, which starts with it): any of them keeps the order. */
uint32_t mrf__range_bucket_span(const mrf__splitters *sp, const void *key, size_t klen,
                                int (*cmp)(const void *, size_t, const void *, size_t),
                                uint32_t *span);
uint32_t mrf__range_bucket(const mrf__splitters *sp, const void *key, size_t klen,
                           int (*cmp)(const void *, size_t, const void *, size_t));
int mrf__splitters_bcast(mrf__splitters *sp, MPI_Comm comm);
void mrf__splitters_free(mrf__splitters *sp);

/* Heavy keys: keys whose share of the map output is at least 1/(20 x ranks)
 * (MRF__HEAVY_DIV x ranks), found in a sample taken before the map.  Key i
 * owns sub-buckets first[i] .. first[i] + m[i] - 1 past the hash buckets;
 * its records are dealt over them, and LPT packing spreads them over ranks.
 * Rank 0 picks them from every rank's heaviest sampled keys. */
#define MRF__HEAVY_DIV 20
#define MRF__HEAVY_TOP 256 /* sampled keys per rank sent to rank 0 */
#define MRF__HEAVY_NAME 24 /* bytes of a key kept for the log and report */

typedef struct mrf__hkey { /* one sampled key and its weight (record bytes) */
    uint64_t hash, weight;
    uint32_t klen;
    char name[MRF__HEAVY_NAME];
} mrf__hkey;

typedef struct mrf__heavy {
    uint32_t n;     /* heavy keys, heaviest first */
    uint32_t nsub;  /* sub-buckets in all */
    mrf__hkey *key; /* weight: the merged sample weight */
    uint32_t *first, *m;
    double *share; /* estimated share of the map output bytes */
    /* open addressing on the hash, at load <= 1/16 so a key that is not
     * heavy almost always meets an empty slot at once; per slot: the key's
     * hash (an empty slot j holds j + 1, which no hash whose home is j
     * equals), index, first sub-bucket, count (0: empty), and the next
     * sub-bucket to deal to */
    uint32_t mask;
    uint64_t *sh;
    uint32_t *si, *sfirst, *sm, *snext;
} mrf__heavy;

/* From merged sample keys (distinct hashes) and the sample's total weight:
 * the heavy ones for nranks ranks, each split over up to share x 20 x nranks
 * sub-buckets when split is true (else one). */
int mrf__heavy_pick(const mrf__hkey *keys, size_t n, uint64_t total, int nranks, bool split,
                    mrf__heavy *hv);
/* Sorts keys heaviest first (ties by hash). */
void mrf__hkeys_by_weight(mrf__hkey *keys, size_t n);
/* Merges entries with equal hashes (weights added) in place; returns the count. */
size_t mrf__hkeys_merge(mrf__hkey *keys, size_t n);
int mrf__heavy_bcast(mrf__heavy *hv, MPI_Comm comm);
void mrf__heavy_free(mrf__heavy *hv);
/* Restarts every heavy key's deal at sub-bucket (seed mod m), so a task's
 * records go to the same sub-buckets whichever rank maps it. */
void mrf__heavy_reset(mrf__heavy *hv, uint64_t seed);
/* The slot holding hash h, or -1; past the first probe, the slow path. */
int mrf__heavy_slot_slow(const mrf__heavy *hv, uint64_t h);
static inline int mrf__heavy_slot(const mrf__heavy *hv, uint64_t h)
{
    uint32_t j = (uint32_t)h & hv->mask;
    uint64_t x = hv->sh[j];
    if (x == h)
        return (int)j;
    if (hv->sm[j] == 0)
        return -1; /* empty */
    return mrf__heavy_slot_slow(hv, h);
}
/* 1 if hash h is a heavy key's, else 0 (no branch but for collisions). */
static inline unsigned mrf__heavy_has(const mrf__heavy *hv, uint64_t h)
{
    uint32_t j = (uint32_t)h & hv->mask;
    uint32_t hit = -(uint32_t)(hv->sh[j] == h);
    if (__builtin_expect((hv->sm[j] & ~hit) != 0, 0))
        return mrf__heavy_slot_slow(hv, h) >= 0;
    return hit & 1u;
}
/* The heavy key index of hash h, or -1. */
static inline int mrf__heavy_find(const mrf__heavy *hv, uint64_t h)
{
    int j = mrf__heavy_slot(hv, h);
    return j < 0 ? -1 : (int)hv->si[j];
}
/* The bucket for the next record of hash h: if it is heavy, base plus its
 * next sub-bucket, else fallback.  Written so the common
 * cases compile to conditional moves: heavy and light keys interleave at
 * random in skewed data, and a branch on it mispredicts half the time. */
static inline uint32_t mrf__heavy_deal(mrf__heavy *hv, uint64_t h, uint32_t fallback, uint32_t base)
{
    uint32_t j = (uint32_t)h & hv->mask;
    uint64_t x = hv->sh[j];
    uint32_t m = hv->sm[j], hit = -(uint32_t)(x == h); /* all ones on a hit */
    if (__builtin_expect((m & ~hit) != 0, 0)) {        /* another heavy key lives at j */
        int k = mrf__heavy_slot_slow(hv, h);
        if (k < 0)
            return fallback;
        j = (uint32_t)k;
        m = hv->sm[j];
        hit = ~0u;
    }
    /* masks, not branches or ?: (the compiler turns those back into jumps) */
    uint32_t c = hv->snext[j], nc = c + 1;
    nc &= -(uint32_t)(nc != m);
    hv->snext[j] = (nc & hit) | (c & ~hit);
    return ((base + hv->sfirst[j] + c) & hit) | (fallback & ~hit);
}

/* The splitters and heavy keys of a stage, serialised for a checkpoint, and
 * back (checked; at most max_sub sub-buckets: MRF_EINVAL otherwise). */
int mrf__decisions_pack(const mrf__splitters *sp, const mrf__heavy *hv, char **buf, size_t *len);
int mrf__decisions_unpack(const char *buf, size_t len, uint32_t max_sub, mrf__splitters *sp,
                          mrf__heavy *hv);

#endif
