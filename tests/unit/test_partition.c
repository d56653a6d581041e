/* test_partition.c -- bucket packing and range splitters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "partition.h"
#include "unit.h"

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_hash_bucket(void)
{
    uint64_t s = 88172645463325252ull;
    uint32_t counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t b = mrf__hash_bucket(rng(&s), 7);
        CU_ASSERT_FATAL(b < 7);
        counts[b]++;
    }
    for (int b = 0; b < 7; b++)
        CU_ASSERT(counts[b] > 9000 && counts[b] < 11000);
    CU_ASSERT_EQUAL(mrf__hash_bucket(UINT64_MAX, 1), 0);
}

static void test_lpt(void)
{
    /* Zipf-like bucket sizes: LPT must stay within one largest bucket of the
     * mean, which is the classic bound, and be deterministic */
    enum { NB = 4096, P = 6 };
    uint64_t bytes[NB], total = 0, maxb = 0;
    for (int b = 0; b < NB; b++) {
        bytes[b] = 1000000 / (uint64_t)(b + 1) + (uint64_t)(b % 17);
        total += bytes[b];
        if (bytes[b] > maxb)
            maxb = bytes[b];
    }
    int32_t owner[NB], owner2[NB];
    CU_ASSERT_EQUAL_FATAL(mrf__pack_lpt(bytes, NB, P, owner), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__pack_lpt(bytes, NB, P, owner2), MRF_OK);
    CU_ASSERT_EQUAL(memcmp(owner, owner2, sizeof owner), 0);
    uint64_t load[P] = {0};
    for (int b = 0; b < NB; b++) {
        CU_ASSERT_FATAL(owner[b] >= 0 && owner[b] < P);
        load[owner[b]] += bytes[b];
    }
    for (int r = 0; r < P; r++)
        CU_ASSERT(load[r] <= total / P + maxb);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static void test_contiguous(void)
{
    enum { NB = 1000, P = 4 };
    uint64_t bytes[NB], s = 5, total = 0;
    for (int b = 0; b < NB; b++)
        total += bytes[b] = rng(&s) % 1000;
    int32_t owner[NB];
    mrf__pack_contiguous(bytes, NB, P, owner);
    uint64_t load[P] = {0};
    for (int b = 0; b < NB; b++) {
        if (b)
            CU_ASSERT(owner[b] >= owner[b - 1]); /* order kept */
        load[owner[b]] += bytes[b];
    }
    CU_ASSERT_EQUAL(owner[0], 0);
    CU_ASSERT_EQUAL(owner[NB - 1], P - 1);
    for (int r = 0; r < P; r++)
        CU_ASSERT(load[r] <= total / P + 1000);
    /* no bytes at all: everything on rank 0, nothing out of range */
    uint64_t zero[3] = {0};
    int32_t o3[3];
    mrf__pack_contiguous(zero, 3, 2, o3);
    CU_ASSERT(o3[0] == 0 && o3[1] == 0 && o3[2] == 0);
}

static int cmp_key(const void *a, const void *b)
{
    return mrf__bytes_cmp(*(const char *const *)a, strlen(*(const char *const *)a),
                          *(const char *const *)b, strlen(*(const char *const *)b));
}

static void test_range(void)
{
    /* sample keys with duplicates, shared prefixes and short keys */
    enum { N = 500 };
    char store[N][16];
    const char *keys[N];
    size_t lens[N];
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        int len = 1 + (int)(rng(&s) % 12);
        for (int k = 0; k < len; k++)
            store[i][k] = (char)('a' + rng(&s) % 3);
        store[i][len] = '\0';
        keys[i] = store[i];
    }
    qsort(keys, N, sizeof keys[0], cmp_key);
    for (int i = 0; i < N; i++)
        lens[i] = strlen(keys[i]);
    mrf__splitters sp;
    CU_ASSERT_EQUAL_FATAL(mrf__splitters_from_sorted(keys, lens, N, 64, &sp), MRF_OK);
    CU_ASSERT_EQUAL(sp.n, 63);
    /* bucket(k) = number of splitters < k, checked by linear scan */
    for (int i = 0; i < N; i++) {
        uint32_t want = 0;
        for (uint32_t j = 0; j < sp.n; j++)
            if (mrf__bytes_cmp(sp.keys + sp.off[j], sp.off[j + 1] - sp.off[j], keys[i], lens[i]) <
                0)
                want++;
        CU_ASSERT_EQUAL(mrf__range_bucket(&sp, keys[i], lens[i], NULL), want);
        if (i)
            CU_ASSERT(mrf__range_bucket(&sp, keys[i], lens[i], NULL) >=
                      mrf__range_bucket(&sp, keys[i - 1], lens[i - 1], NULL));
    }
    mrf__splitters_free(&sp);
    /* fewer samples than buckets: n+1 buckets; none: one bucket */
    CU_ASSERT_EQUAL_FATAL(mrf__splitters_from_sorted(keys, lens, 3, 64, &sp), MRF_OK);
    CU_ASSERT_EQUAL(sp.n, 3);
    mrf__splitters_free(&sp);
    CU_ASSERT_EQUAL_FATAL(mrf__splitters_from_sorted(keys, lens, 0, 64, &sp), MRF_OK);
    CU_ASSERT_EQUAL(sp.n, 0);
    CU_ASSERT_EQUAL(mrf__range_bucket(&sp, "zz", 2, NULL), 0);
    mrf__splitters_free(&sp);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

/* Sorted samples where "m" is a third of them: its splitters form one run,
 * its span covers the run plus one, the buckets around it keep the order. */
static void test_range_ties(void)
{
    enum { N = 300 };
    const char *keys[N];
    size_t lens[N];
    char buf[N][8];
    for (int i = 0; i < N; i++) {
        if (i >= 100 && i < 200)
            snprintf(buf[i], sizeof buf[i], "m");
        else
            snprintf(buf[i], sizeof buf[i], "%c%03d", i < 100 ? 'a' : 'x', i);
        keys[i] = buf[i];
        lens[i] = strlen(buf[i]);
    }
    mrf__splitters sp;
    CU_ASSERT_EQUAL_FATAL(mrf__splitters_from_sorted(keys, lens, N, 30, &sp), MRF_OK);
    CU_ASSERT_EQUAL(sp.tie_runs, 1);
    uint32_t span, lo = mrf__range_bucket_span(&sp, "m", 1, NULL, &span);
    uint32_t eq = 0;
    for (uint32_t j = 0; j < sp.n; j++)
        eq += sp.off[j + 1] - sp.off[j] == 1 && sp.keys[sp.off[j]] == 'm';
    CU_ASSERT(eq >= 8); /* about a third of 29 splitters */
    CU_ASSERT_EQUAL(span, eq + 1);
    CU_ASSERT_EQUAL(lo, mrf__range_bucket(&sp, "m", 1, NULL));
    /* every bucket in the span keeps the order: keys below m go at or before
     * lo, keys above m at or after the last */
    CU_ASSERT(mrf__range_bucket(&sp, "a050", 4, NULL) <= lo);
    CU_ASSERT(mrf__range_bucket(&sp, "l", 1, NULL) <= lo);
    CU_ASSERT(mrf__range_bucket(&sp, "m0", 2, NULL) >= lo + span - 1);
    CU_ASSERT(mrf__range_bucket(&sp, "x250", 4, NULL) >= lo + span - 1);
    /* a key equal to one splitter only has a span of 1 */
    uint32_t s1;
    mrf__range_bucket_span(&sp, keys[20], lens[20], NULL, &s1);
    CU_ASSERT_EQUAL(s1, 1);
    mrf__splitters_free(&sp);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

/* Heavy keys: the threshold is 1/(20 x ranks) of the total, sub-buckets
 * about one per such unit, none without splitting, and lookups by hash. */
static void test_heavy(void)
{
    mrf__hkey k[6] = {
        {.hash = 11, .weight = 500}, {.hash = 22, .weight = 100}, {.hash = 33, .weight = 24},
        {.hash = 44, .weight = 26},  {.hash = 11, .weight = 100}, {.hash = 55, .weight = 250},
    };
    /* merged: 11 -> 600 */
    size_t n = mrf__hkeys_merge(k, 6);
    CU_ASSERT_EQUAL_FATAL(n, 5);
    mrf__heavy hv;
    /* total 2000 over 4 ranks: unit = 2000 / 80 = 25 */
    CU_ASSERT_EQUAL_FATAL(mrf__heavy_pick(k, n, 2000, 4, true, &hv), MRF_OK);
    CU_ASSERT_EQUAL(hv.n, 4); /* 600, 250, 100, 26 (24 is under) */
    CU_ASSERT_EQUAL(hv.key[0].hash, 11);
    CU_ASSERT_EQUAL(hv.m[0], 24);
    CU_ASSERT_EQUAL(hv.m[1], 10);
    CU_ASSERT_EQUAL(hv.m[2], 4);
    CU_ASSERT_EQUAL(hv.m[3], 2);
    CU_ASSERT_EQUAL(hv.nsub, 40);
    CU_ASSERT_EQUAL(hv.first[2], 34);
    CU_ASSERT_DOUBLE_EQUAL(hv.share[0], 0.3, 1e-9);
    CU_ASSERT_EQUAL(mrf__heavy_find(&hv, 55), 1);
    CU_ASSERT_EQUAL(mrf__heavy_find(&hv, 33), -1);
    CU_ASSERT_EQUAL(mrf__heavy_find(&hv, 99), -1);
    mrf__heavy_free(&hv);
    /* no combiner: found, each in one bucket of its own */
    CU_ASSERT_EQUAL_FATAL(mrf__heavy_pick(k, n, 2000, 4, false, &hv), MRF_OK);
    CU_ASSERT_EQUAL(hv.n, 4);
    CU_ASSERT_EQUAL(hv.nsub, 4);
    mrf__heavy_free(&hv);
    /* one key with everything is capped at 20 x ranks buckets */
    mrf__hkey one = {.hash = 7, .weight = 1000};
    CU_ASSERT_EQUAL_FATAL(mrf__heavy_pick(&one, 1, 1000, 2, true, &hv), MRF_OK);
    CU_ASSERT_EQUAL(hv.m[0], 40);
    mrf__heavy_free(&hv);
    /* nothing sampled: no heavy keys */
    CU_ASSERT_EQUAL_FATAL(mrf__heavy_pick(NULL, 0, 0, 4, true, &hv), MRF_OK);
    CU_ASSERT_EQUAL(hv.n, 0);
    mrf__heavy_free(&hv);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

/* The decisions a checkpoint stores: splitters (with a tie run) and heavy
 * keys pack and unpack to the same lookups; every truncation and a wrong
 * magic are refused; too many sub-buckets are refused. */
static void test_decisions(void)
{
    enum { N = 300 };
    const char *keys[N];
    size_t lens[N];
    char buf[N][8];
    for (int i = 0; i < N; i++) {
        if (i >= 100 && i < 200)
            snprintf(buf[i], sizeof buf[i], "m");
        else
            snprintf(buf[i], sizeof buf[i], "%c%03d", i < 100 ? 'a' : 'x', i);
        keys[i] = buf[i];
        lens[i] = strlen(buf[i]);
    }
    mrf__splitters sp, sp2;
    mrf__heavy hv, hv2;
    CU_ASSERT_EQUAL_FATAL(mrf__splitters_from_sorted(keys, lens, N, 30, &sp), MRF_OK);
    mrf__hkey k[2] = {{.hash = 11, .weight = 600, .klen = 3, .name = "the"},
                      {.hash = 55, .weight = 250, .klen = 2, .name = "of"}};
    CU_ASSERT_EQUAL_FATAL(mrf__heavy_pick(k, 2, 2000, 4, true, &hv), MRF_OK);
    char *blob;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mrf__decisions_pack(&sp, &hv, &blob, &len), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__decisions_unpack(blob, len, hv.nsub, &sp2, &hv2), MRF_OK);
    CU_ASSERT_EQUAL(sp2.n, sp.n);
    CU_ASSERT_EQUAL(sp2.tie_runs, sp.tie_runs);
    for (int i = 0; i < N; i += 7) {
        uint32_t a, b;
        CU_ASSERT_EQUAL(mrf__range_bucket_span(&sp2, keys[i], lens[i], NULL, &a),
                        mrf__range_bucket_span(&sp, keys[i], lens[i], NULL, &b));
        CU_ASSERT_EQUAL(a, b);
    }
    CU_ASSERT_EQUAL(hv2.n, hv.n);
    CU_ASSERT_EQUAL(hv2.nsub, hv.nsub);
    CU_ASSERT_EQUAL(mrf__heavy_find(&hv2, 55), mrf__heavy_find(&hv, 55));
    CU_ASSERT_EQUAL(hv2.first[1], hv.first[1]);
    mrf__splitters_free(&sp2);
    mrf__heavy_free(&hv2);
    /* fewer sub-buckets allowed than it holds */
    CU_ASSERT_EQUAL(mrf__decisions_unpack(blob, len, hv.nsub - 1, &sp2, &hv2), MRF_EINVAL);
    for (size_t cut = 0; cut < len; cut++)
        CU_ASSERT_EQUAL(mrf__decisions_unpack(blob, cut, hv.nsub, &sp2, &hv2), MRF_EINVAL);
    blob[0] ^= 1;
    CU_ASSERT_EQUAL(mrf__decisions_unpack(blob, len, hv.nsub, &sp2, &hv2), MRF_EINVAL);
    mrf__free(blob);
    mrf__splitters_free(&sp);
    mrf__heavy_free(&hv);
    /* hash partitioning, or skew with no heavy key: no splitters, no keys */
    memset(&sp, 0, sizeof sp);
    memset(&hv, 0, sizeof hv);
    CU_ASSERT_EQUAL_FATAL(mrf__decisions_pack(&sp, &hv, &blob, &len), MRF_OK);
    CU_ASSERT_EQUAL(mrf__decisions_unpack(blob, len, 0, &sp2, &hv2), MRF_OK);
    CU_ASSERT_EQUAL(sp2.n, 0);
    CU_ASSERT_EQUAL(hv2.n, 0);
    mrf__splitters_free(&sp2);
    mrf__heavy_free(&hv2);
    mrf__free(blob);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {{"hash_bucket", test_hash_bucket}, {"lpt", test_lpt},
                              {"contiguous", test_contiguous},   {"range", test_range},
                              {"range_ties", test_range_ties},   {"heavy", test_heavy},
                              {"decisions", test_decisions},     CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("partition", tests);
}
