/* test_sort.c -- the radix + tie-break sort, against qsort with a plain
 * comparator written here. */
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

static const char *g_base;

/* reference order: key bytewise (shorter first), then value bytewise */
static int ref_cmp(const void *x, const void *y)
{
    const char *a = g_base + *(const size_t *)x, *b = g_base + *(const size_t *)y;
    size_t al = mrf__rec_klen(a), bl = mrf__rec_klen(b);
    size_t n = al < bl ? al : bl;
    int c = memcmp(mrf__rec_key(a), mrf__rec_key(b), n);
    if (c)
        return c;
    if (al != bl)
        return al < bl ? -1 : 1;
    al = mrf__rec_vlen(a);
    bl = mrf__rec_vlen(b);
    n = al < bl ? al : bl;
    c = memcmp(mrf__rec_val(a), mrf__rec_val(b), n);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static void fill(mrf__kvbuf *kv, size_t n, uint64_t seed, int alphabet, int maxlen)
{
    uint64_t s = seed;
    char key[32], val[8];
    for (size_t i = 0; i < n; i++) {
        size_t kl = (size_t)(rng(&s) % (uint64_t)(maxlen + 1));
        for (size_t k = 0; k < kl; k++)
            key[k] = (char)(rng(&s) % (uint64_t)alphabet); /* NUL bytes included */
        size_t vl = (size_t)(rng(&s) % 3);
        for (size_t k = 0; k < vl; k++)
            val[k] = (char)(rng(&s) % 2);
        mrf__kvbuf_append(kv, 0, key, kl, val, vl, NULL);
    }
}

static void check_sorted_like_reference(mrf__kvbuf *kv, size_t n)
{
    mrf__sort_ent *e = malloc(n * sizeof *e), *tmp = malloc(n * sizeof *tmp);
    size_t *ref = malloc(n * sizeof *ref);
    size_t i = 0;
    for (size_t at = 0; at < kv->len; at += mrf__rec_size(kv->base + at), i++) {
        e[i].off = at;
        e[i].prefix = mrf__key_prefix(mrf__rec_key(kv->base + at), mrf__rec_klen(kv->base + at));
        ref[i] = at;
    }
    CU_ASSERT_EQUAL_FATAL(i, n);
    mrf__sort_records(e, tmp, n, kv->base, NULL);
    g_base = kv->base;
    qsort(ref, n, sizeof *ref, ref_cmp);
    size_t bad = 0;
    for (i = 0; i < n; i++)
        bad += ref_cmp(&e[i].off, &ref[i]) != 0;
    CU_ASSERT_EQUAL(bad, 0);
    free(e);
    free(tmp);
    free(ref);
}

static void test_random_binary_keys(void)
{
    mrf__kvbuf kv = {0};
    fill(&kv, 20000, 1, 256, 20);
    check_sorted_like_reference(&kv, 20000);
    mrf__kvbuf_destroy(&kv);
}

static void test_shared_prefixes_and_nuls(void)
{
    /* alphabet {0,1,2}: many equal 8-byte prefixes, keys that differ only by
     * trailing NULs ("a" vs "a\0"), and equal keys with different values */
    mrf__kvbuf kv = {0};
    fill(&kv, 20000, 7, 3, 12);
    check_sorted_like_reference(&kv, 20000);
    mrf__kvbuf_destroy(&kv);
}

static void test_prefix(void)
{
    CU_ASSERT_EQUAL(mrf__key_prefix("", 0), 0);
    CU_ASSERT_EQUAL(mrf__key_prefix("\x01", 1), 0x0100000000000000ull);
    CU_ASSERT_EQUAL(mrf__key_prefix("ABCDEFGHIJ", 10), 0x4142434445464748ull);
    CU_ASSERT(mrf__bytes_cmp("a", 1, "a\0", 2) < 0);
    CU_ASSERT(mrf__bytes_cmp("b", 1, "a\0", 2) > 0);
    CU_ASSERT_EQUAL(mrf__bytes_cmp("", 0, "", 0), 0);
}

static int rev_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    return -mrf__bytes_cmp(a, al, b, bl);
}

static void test_custom_compare(void)
{
    mrf__kvbuf kv = {0};
    fill(&kv, 5000, 3, 4, 6);
    size_t n = 5000, i = 0;
    mrf__sort_ent *e = malloc(n * sizeof *e);
    for (size_t at = 0; at < kv.len; at += mrf__rec_size(kv.base + at), i++)
        e[i].off = at;
    mrf__sort_records(e, NULL, n, kv.base, rev_cmp);
    for (i = 1; i < n; i++) {
        const char *a = kv.base + e[i - 1].off, *b = kv.base + e[i].off;
        CU_ASSERT(mrf__bytes_cmp(mrf__rec_key(a), mrf__rec_klen(a), mrf__rec_key(b),
                                 mrf__rec_klen(b)) >= 0);
    }
    free(e);
    mrf__kvbuf_destroy(&kv);
}

static CU_TestInfo tests[] = {{"prefix", test_prefix},
                              {"random_binary_keys", test_random_binary_keys},
                              {"shared_prefixes_and_nuls", test_shared_prefixes_and_nuls},
                              {"custom_compare", test_custom_compare},
                              CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("sort", tests);
}
