/* test_partition.c -- bucket packing and range splitters. */
#include <stdlib.h>

#include "internal.h"
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

static CU_TestInfo tests[] = {{"hash_bucket", test_hash_bucket},
                              {"lpt", test_lpt},
                              {"contiguous", test_contiguous},
                              {"range", test_range},
                              CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("partition", tests);
}
