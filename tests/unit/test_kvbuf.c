/* test_kvbuf.c -- the record arena. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* Big buffers start on a 2 MiB boundary, fresh or grown, whether mremap
 * grew them in place or moved them, and keep their bytes.  A misaligned
 * move splits a buffer's huge pages, and every later pass over it ran 5-10x
 * slower on the development VM (an arena grown by doubling while a
 * checkpoint loaded).  Odd-sized mappings made in between (as MPI's and
 * HDF5's are) put the kernel's next free range anywhere. */
static void test_big_buffers_aligned(void)
{
    const size_t H = (size_t)2 << 20;
    const char *thp = getenv("MRFLOW_THP");
    bool want = !(thp && strcmp(thp, "0") == 0) && sysconf(_SC_PAGESIZE) == 4096;
    void *shim[16];
    for (unsigned i = 0; i < 8; i++) {
        shim[2 * i] = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char *p = mrf__big_alloc(3 * H + 4096 * i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        if (want) /* huge pages off: no reason to align */
            CU_ASSERT_EQUAL(((uintptr_t)p & (H - 1)), 0);
        mrf__big_free(p, 3 * H + 4096 * i);
        mrf__kvbuf kv = {0};
        for (unsigned k = 0; k < 24; k++) {
            if (k == 3)
                shim[2 * i + 1] =
                    mmap(NULL, 4096 * (i + 1), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_reserve(&kv, 300000), MRF_OK);
            memset(kv.base + kv.len, (int)(k + 1), 300000);
            kv.len += 300000;
            if (want && kv.cap >= H)
                CU_ASSERT_EQUAL(((uintptr_t)kv.base & (H - 1)), 0);
        }
        for (unsigned k = 0; k < 24; k++) {
            CU_ASSERT_EQUAL((unsigned char)kv.base[(size_t)k * 300000], k + 1);
            CU_ASSERT_EQUAL((unsigned char)kv.base[(size_t)k * 300000 + 299999], k + 1);
        }
        mrf__kvbuf_destroy(&kv);
    }
    for (unsigned i = 0; i < 16; i++)
        if (shim[i] != MAP_FAILED)
            munmap(shim[i], i % 2 ? 4096 * (i / 2 + 1) : 4096);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

/* A big buffer grows in place; where something is mapped right behind it,
 * it is copied to a fresh aligned range instead, with its bytes. */
static void test_big_buffer_blocked_growth(void)
{
    const size_t H = (size_t)2 << 20;
    const char *thp = getenv("MRFLOW_THP");
    bool want = !(thp && strcmp(thp, "0") == 0) && sysconf(_SC_PAGESIZE) == 4096;
    char *p = mrf__big_alloc(4 * H);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memset(p, 7, 4 * H);
    char *q = mrf__big_resize(p, 4 * H, 8 * H); /* room behind it: in place */
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    if (want && !getenv("MRFLOW_UNDER_VALGRIND")) /* valgrind never grows in place */
        CU_ASSERT_PTR_EQUAL(q, p);
    memset(q + 4 * H, 8, 4 * H);
    void *block =
        mmap(q + 8 * H, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    CU_ASSERT_PTR_EQUAL_FATAL(block, q + 8 * H);
    char *r = mrf__big_resize(q, 8 * H, 16 * H); /* blocked: moved */
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_PTR_NOT_EQUAL(r, q);
    if (want)
        CU_ASSERT_EQUAL(((uintptr_t)r & (H - 1)), 0);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 16 * H);
    for (size_t i = 0; i < 8 * H; i += 4096)
        if (r[i] != (i < 4 * H ? 7 : 8)) {
            CU_FAIL("bytes lost in the move");
            break;
        }
    memset(r + 8 * H, 9, 8 * H); /* the grown part is there */
    munmap(block, 4096);
    mrf__big_free(r, 16 * H);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {{"append_and_walk", test_append_and_walk},
                              {"alloc_failure", test_alloc_failure},
                              {"big_buffers_aligned", test_big_buffers_aligned},
                              {"big_buffer_blocked_growth", test_big_buffer_blocked_growth},
                              CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("kvbuf", tests);
}
