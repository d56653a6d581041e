/* test_kvbuf.c -- the record arena. */
#include "internal.h"
#include "unit.h"

static void test_append_and_walk(void)
{
    mrf__kvbuf kv = {0};
    char key[64], val[300];
    size_t n = 100000;
    for (size_t i = 0; i < n; i++) {
        size_t kl = i % 64, vl = (i * 7) % 300;
        memset(key, (int)(i & 0xff), kl);
        memset(val, (int)((i >> 3) & 0xff), vl);
        size_t off;
        CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_append(&kv, (uint32_t)i, key, kl, val, vl, &off), 0);
    }
    size_t count = 0;
    CU_ASSERT_EQUAL(mrf__kvbuf_check(kv.base, kv.len, &count), MRF_OK);
    CU_ASSERT_EQUAL(count, n);
    size_t i = 0;
    for (size_t at = 0; at < kv.len; at += mrf__rec_size(kv.base + at), i++) {
        const char *r = kv.base + at;
        CU_ASSERT_EQUAL(mrf__rec_bucket(r), (uint32_t)i);
        CU_ASSERT_EQUAL(mrf__rec_klen(r), i % 64);
        CU_ASSERT_EQUAL(mrf__rec_vlen(r), (i * 7) % 300);
        if (mrf__rec_klen(r))
            CU_ASSERT_EQUAL((unsigned char)mrf__rec_key(r)[0], i & 0xff);
        if (mrf__rec_vlen(r))
            CU_ASSERT_EQUAL((unsigned char)mrf__rec_val(r)[mrf__rec_vlen(r) - 1], (i >> 3) & 0xff);
    }
    CU_ASSERT_EQUAL(i, n);
    /* a truncated stream is caught */
    CU_ASSERT_NOT_EQUAL(mrf__kvbuf_check(kv.base, kv.len - 1, &count), MRF_OK);
    CU_ASSERT_NOT_EQUAL(mrf__kvbuf_check(kv.base, 5, &count), MRF_OK);
    mrf__kvbuf_destroy(&kv);
    mrf__kvbuf_destroy(&kv); /* harmless twice */
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static void test_alloc_failure(void)
{
    mrf__kvbuf kv = {0};
    mrf__mem_fail_after(1);
    CU_ASSERT_EQUAL(mrf__kvbuf_append(&kv, 0, "k", 1, "v", 1, NULL), MRF_ENOMEM);
    CU_ASSERT_EQUAL(kv.len, 0);
    CU_ASSERT_EQUAL(mrf__kvbuf_append(&kv, 0, "k", 1, "v", 1, NULL), MRF_OK);
    CU_ASSERT_EQUAL(kv.len, MRF_KV_HDR + 2);
    mrf__kvbuf_destroy(&kv);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {{"append_and_walk", test_append_and_walk},
                              {"alloc_failure", test_alloc_failure},
                              CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("kvbuf", tests);
}
