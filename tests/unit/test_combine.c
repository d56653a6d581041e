/* test_combine.c -- the combining table, against a brute-force count. */
#include <stdio.h>

#include "internal.h"
#include "unit.h"

static void sum_combine(void *acc, const void *val, size_t len, void *ctx)
{
    (void)ctx;
    (void)len;
    uint64_t a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, val, 8);
    a += v;
    memcpy(acc, &a, 8);
}

static void test_table(void)
{
    mrf__ctable t;
    mrf__kvbuf kv = {0};
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_init(&t, 1), MRF_OK);
    char key[32];
    const size_t n = 50000;
    for (size_t i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "key-%zu", i);
        uint64_t h = mrf__key_hash(key, (size_t)kl);
        size_t slot, off;
        CU_ASSERT_EQUAL(mrf__ctable_find(&t, kv.base, h, key, (size_t)kl, &slot), SIZE_MAX);
        CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_append(&kv, 0, key, (size_t)kl, &i, 8, &off), MRF_OK);
        CU_ASSERT_EQUAL_FATAL(mrf__ctable_insert(&t, slot, h, off), MRF_OK);
    }
    CU_ASSERT_EQUAL(t.used, n);
    CU_ASSERT_TRUE(t.used * 2 <= t.mask + 1);
    for (size_t i = 0; i < n; i += 7) {
        int kl = snprintf(key, sizeof key, "key-%zu", i);
        size_t slot;
        size_t off = mrf__ctable_find(&t, kv.base, mrf__key_hash(key, (size_t)kl), key,
                                      (size_t)kl, &slot);
        CU_ASSERT_FATAL(off != SIZE_MAX);
        uint64_t v;
        memcpy(&v, mrf__rec_val(kv.base + off), 8);
        CU_ASSERT_EQUAL(v, i);
    }
    /* a key that is a prefix of stored keys is not found */
    size_t slot;
    CU_ASSERT_EQUAL(mrf__ctable_find(&t, kv.base, mrf__key_hash("key-1", 4), "key-", 4, &slot),
                    SIZE_MAX);
    mrf__ctable_destroy(&t);
    mrf__kvbuf_destroy(&kv);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static void test_combine_records(void)
{
    /* keys k0..k99 repeated with known counts; compare with direct sums */
    mrf__kvbuf kv = {0};
    uint64_t expect[100] = {0};
    char key[16];
    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t k = (i * i + 3 * i) % 100, v = i % 13 + 1;
        int kl = snprintf(key, sizeof key, "k%llu", (unsigned long long)k);
        expect[k] += v;
        CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_append(&kv, 1, key, (size_t)kl, &v, 8, NULL), MRF_OK);
    }
    mrf_job_spec spec = {.name = "t", .combine = sum_combine};
    size_t live = 0;
    CU_ASSERT_EQUAL_FATAL(mrf__combine_records(kv.base, kv.len, &spec, &live), MRF_OK);
    size_t seen = 0;
    uint64_t total = 0, want = 0;
    for (size_t at = 0; at < kv.len; at += mrf__rec_size(kv.base + at)) {
        const char *r = kv.base + at;
        if (mrf__rec_bucket(r) == MRF_BUCKET_DEAD)
            continue;
        seen++;
        unsigned long long k;
        char buf[16] = {0};
        memcpy(buf, mrf__rec_key(r), mrf__rec_klen(r));
        CU_ASSERT_EQUAL(sscanf(buf, "k%llu", &k), 1);
        uint64_t v;
        memcpy(&v, mrf__rec_val(r), 8);
        CU_ASSERT_EQUAL(v, expect[k]);
        total += v;
    }
    for (int k = 0; k < 100; k++)
        want += expect[k];
    CU_ASSERT_EQUAL(total, want);
    CU_ASSERT_EQUAL(seen, live);
    size_t distinct = 0;
    for (int k = 0; k < 100; k++)
        distinct += expect[k] != 0;
    CU_ASSERT_EQUAL(live, distinct);

    /* values of different lengths for one key are refused */
    mrf__kvbuf bad = {0};
    uint64_t v8 = 1;
    mrf__kvbuf_append(&bad, 0, "a", 1, &v8, 8, NULL);
    mrf__kvbuf_append(&bad, 0, "a", 1, &v8, 4, NULL);
    CU_ASSERT_EQUAL(mrf__combine_records(bad.base, bad.len, &spec, &live), MRF_EINVAL);
    mrf__kvbuf_destroy(&bad);
    mrf__kvbuf_destroy(&kv);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {{"table", test_table},
                              {"combine_records", test_combine_records}, CU_TEST_INFO_NULL};

int main(void) { return unit_main("combine", tests); }
