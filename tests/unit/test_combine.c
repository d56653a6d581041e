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
    /* short keys (inline in the slot) and long ones (side arena), each added
     * a known number of times; the drained counts must match */
    mrf__ctable t;
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_init(&t, 1), MRF_OK);
    char key[64];
    const size_t n = 30000;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < n; i++) {
            int kl = i % 2 ? snprintf(key, sizeof key, "k%zu", i)
                           : snprintf(key, sizeof key, "a-much-longer-key-number-%zu", i);
            uint64_t one = 1;
            if (i % 3 == 0 && round == 2)
                continue; /* these keys are seen twice, the others three times */
            CU_ASSERT_EQUAL_FATAL(mrf__ctable_add(&t, mrf__key_hash(key, (size_t)kl), key,
                                                  (size_t)kl, &one, 8, sum_combine, NULL),
                                  MRF_OK);
        }
    }
    CU_ASSERT_EQUAL(t.used, n);
    CU_ASSERT_TRUE(t.used * 10 <= (t.mask + 1) * 7);
    /* a value of another length for an existing key is refused */
    uint32_t four = 4;
    CU_ASSERT_EQUAL(
        mrf__ctable_add(&t, mrf__key_hash("k1", 2), "k1", 2, &four, 4, sum_combine, NULL),
        MRF_EINVAL);
    mrf__kvbuf out = {0};
    mrf__bstat bytes[2] = {{0}};
    size_t drained = t.used;
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_drain(&t, &out, NULL, NULL, bytes), MRF_OK);
    CU_ASSERT_EQUAL(t.used, 0);
    CU_ASSERT_EQUAL(bytes[0].bytes, out.len);
    CU_ASSERT_EQUAL(bytes[0].recs, drained);
    size_t seen = 0;
    for (size_t at = 0; at < out.len; at += mrf__rec_size(out.base + at), seen++) {
        const char *r = out.base + at;
        char buf[64] = {0};
        memcpy(buf, mrf__rec_key(r), mrf__rec_klen(r));
        size_t i;
        CU_ASSERT_FATAL(sscanf(buf, buf[0] == 'k' ? "k%zu" : "a-much-longer-key-number-%zu", &i) ==
                        1);
        uint64_t v;
        memcpy(&v, mrf__rec_val(r), 8);
        CU_ASSERT_EQUAL(v, i % 3 == 0 ? 2u : 3u);
    }
    CU_ASSERT_EQUAL(seen, n);
    mrf__kvbuf_destroy(&out);
    mrf__ctable_destroy(&t);
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
    mrf__kvbuf out = {0};
    mrf__ctable t;
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_init(&t, 1), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__combine_records(&t, kv.base, kv.len, &spec, &out), MRF_OK);
    CU_ASSERT_EQUAL(t.used, 0); /* left empty for reuse */
    size_t seen = 0;
    uint64_t total = 0, want = 0;
    for (size_t at = 0; at < out.len; at += mrf__rec_size(out.base + at)) {
        const char *r = out.base + at;
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
    size_t distinct = 0;
    for (int k = 0; k < 100; k++)
        distinct += expect[k] != 0;
    CU_ASSERT_EQUAL(seen, distinct);
    mrf__kvbuf_destroy(&out);

    /* values of different lengths for one key are refused */
    mrf__kvbuf bad = {0};
    uint64_t v8 = 1;
    mrf__kvbuf_append(&bad, 0, "a", 1, &v8, 8, NULL);
    mrf__kvbuf_append(&bad, 0, "a", 1, &v8, 4, NULL);
    mrf__kvbuf out2 = {0};
    mrf__ctable_destroy(&t);
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_init(&t, 1), MRF_OK);
    CU_ASSERT_EQUAL(mrf__combine_records(&t, bad.base, bad.len, &spec, &out2), MRF_EINVAL);
    mrf__kvbuf_destroy(&out2);
    mrf__ctable_destroy(&t);
    mrf__kvbuf_destroy(&bad);
    mrf__kvbuf_destroy(&kv);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static int add_key(mrf__ctable *t, const char *prefix, size_t i)
{
    char key[64];
    int kl = snprintf(key, sizeof key, "%s%zu", prefix, i);
    uint64_t one = 1;
    return mrf__ctable_add(t, mrf__key_hash(key, (size_t)kl), key, (size_t)kl, &one, 8, sum_combine,
                           NULL);
}

/* sums per key over out's records into counts[i] (keys "<prefix>i") */
static void tally(const mrf__kvbuf *out, uint64_t *hot, uint64_t *cold, size_t n)
{
    for (size_t at = 0; at < out->len; at += mrf__rec_size(out->base + at)) {
        const char *r = out->base + at;
        char buf[64] = {0};
        memcpy(buf, mrf__rec_key(r), mrf__rec_klen(r));
        size_t i;
        uint64_t v;
        memcpy(&v, mrf__rec_val(r), 8);
        if (sscanf(buf, "hot-with-a-long-name-%zu", &i) == 1 && i < n)
            hot[i] += v;
        else if (sscanf(buf, "c%zu", &i) == 1 && i < n)
            cold[i] += v;
        else
            CU_FAIL("unexpected key");
    }
}

static void test_evict(void)
{
    /* 100 hot keys (long: side arena) hit again and again, 2000 cold keys
     * seen once between evictions: an eviction writes the cold ones out and
     * keeps the hot ones in place; every count adds up in the end */
    enum { HOT = 100, COLD = 2000, ROUNDS = 5 };
    mrf__ctable t;
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_init(&t, 8192), MRF_OK);
    mrf__kvbuf out = {0};
    uint64_t hot[HOT] = {0}, cold[COLD] = {0};
    mrf__bstat bytes[1] = {{0}};
    for (int r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < COLD; i++) {
            CU_ASSERT_EQUAL_FATAL(add_key(&t, "c", i), MRF_OK);
            CU_ASSERT_EQUAL_FATAL(add_key(&t, "hot-with-a-long-name-", i % HOT), MRF_OK);
        }
        size_t before = out.len;
        CU_ASSERT_EQUAL_FATAL(mrf__ctable_evict(&t, &out, NULL, NULL, bytes), MRF_OK);
        if (r > 0) { /* from the second round on, the hot keys stay */
            CU_ASSERT_EQUAL(t.used, HOT);
            size_t n = 0;
            CU_ASSERT_EQUAL(mrf__kvbuf_check(out.base + before, out.len - before, &n), MRF_OK);
            CU_ASSERT_EQUAL(n, COLD);
        }
    }
    /* nothing hit since: a second eviction in a row drains everything */
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_evict(&t, &out, NULL, NULL, bytes), MRF_OK);
    CU_ASSERT_EQUAL(t.used, 0);
    CU_ASSERT_EQUAL(bytes[0].bytes, out.len);
    size_t nout = 0;
    CU_ASSERT_EQUAL(mrf__kvbuf_check(out.base, out.len, &nout), MRF_OK);
    CU_ASSERT_EQUAL(bytes[0].recs, nout);
    tally(&out, hot, cold, COLD);
    for (size_t i = 0; i < HOT; i++)
        CU_ASSERT_EQUAL(hot[i], (uint64_t)ROUNDS * (COLD / HOT));
    for (size_t i = 0; i < COLD; i++)
        CU_ASSERT_EQUAL(cold[i], (uint64_t)ROUNDS);
    mrf__kvbuf_destroy(&out);
    mrf__ctable_destroy(&t);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {{"table", test_table},
                              {"combine_records", test_combine_records},
                              {"evict keeps hot keys", test_evict},
                              CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("combine", tests);
}
