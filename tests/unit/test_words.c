/* test_words.c -- the word splitter the built-in jobs share (jobs/words.h)
 * against a byte loop, and the map's small helpers: line counting of a
 * block, short copies and compares, the inlined sum combiner. */
#include "internal.h"
#include "unit.h"
#include "words.h"

static int is_sep(unsigned char c)
{
    return c == ' ' || (unsigned char)(c - 9) <= 4;
}

/* every word of buf, as a byte loop finds them, checked against words.h */
static int agree(const char *buf, size_t len)
{
    size_t i = 0;
    words it;
    const char *w;
    size_t n;
    words_init(&it, buf, len);
    for (;;) {
        while (i < len && is_sep((unsigned char)buf[i]))
            i++;
        size_t s = i;
        while (i < len && !is_sep((unsigned char)buf[i]))
            i++;
        int got = words_next(&it, &w, &n);
        if (s == i)
            return !got; /* no more words: neither may find one */
        if (!got || w != buf + s || n != i - s)
            return 0;
    }
}

static void test_edges(void)
{
    const char *cases[] = {"",           " ",
                           "a",          "a ",
                           " a",         "ab cd",
                           "\t\n\v\f\r", "x\ty\nz\vw\fv\rq",
                           "word",       "  two  spaces  "};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        CU_ASSERT(agree(cases[k], strlen(cases[k])));
    /* words ending exactly at a 64-byte block boundary, and spanning one */
    char b[256];
    for (size_t cut = 60; cut < 70; cut++) {
        memset(b, 'x', sizeof b);
        b[cut] = ' ';
        CU_ASSERT(agree(b, sizeof b));
        CU_ASSERT(agree(b, cut));
        CU_ASSERT(agree(b, cut + 1));
        CU_ASSERT(agree(b, 128));
    }
    /* NUL, high bytes and punctuation belong to words */
    const char odd[] = {'a', 0, (char)0xff, ',', ' ', (char)0x80, '\n', '.'};
    CU_ASSERT(agree(odd, sizeof odd));
}

static void test_random(void)
{
    unsigned seed = 7;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rand_r(&seed) % 400);
        char *b = malloc(len ? len : 1); /* exactly len bytes: ASan sees any overread */
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        for (size_t i = 0; i < len; i++) {
            int r = rand_r(&seed) % 10;
            b[i] = r < 3   ? " \t\n\v\f\r"[rand_r(&seed) % 6]
                   : r < 4 ? (char)(128 + rand_r(&seed) % 128)
                   : r < 5 ? 0
                           : (char)('a' + rand_r(&seed) % 26);
        }
        int ok = agree(b, len);
        CU_ASSERT(ok);
        free(b);
        if (!ok)
            break;
    }
}

static void test_count_lines(void)
{
    char b[5000];
    unsigned seed = 3;
    for (int iter = 0; iter < 2000; iter++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof b), want = 0;
        for (size_t i = 0; i < len; i++) {
            b[i] = rand_r(&seed) % 7 ? 'x' : '\n';
            want += b[i] == '\n';
        }
        if (len && b[len - 1] != '\n')
            want++; /* a last line without its newline */
        CU_ASSERT_EQUAL(mrf__count_lines(b, len), want);
    }
    /* more than 255 x 16 newlines: the lane counters must not wrap */
    memset(b, '\n', sizeof b);
    CU_ASSERT_EQUAL(mrf__count_lines(b, sizeof b), sizeof b);
}

static void test_small_copy_and_eq(void)
{
    char src[40], dst[40], ref[40];
    for (size_t n = 0; n <= 32; n++) {
        for (size_t i = 0; i < sizeof src; i++)
            src[i] = (char)(i * 7 + n), dst[i] = ref[i] = (char)0xaa;
        mrf__copy_small(dst + 1, src + 3, n);
        memcpy(ref + 1, src + 3, n);
        CU_ASSERT_EQUAL(memcmp(dst, ref, sizeof dst), 0);
        CU_ASSERT(mrf__bytes_eq(dst + 1, src + 3, n));
        if (n) { /* a difference at either end is seen */
            dst[1] ^= 1;
            CU_ASSERT(!mrf__bytes_eq(dst + 1, src + 3, n));
            dst[1] ^= 1;
            dst[n] ^= 1;
            CU_ASSERT(!mrf__bytes_eq(dst + 1, src + 3, n));
        }
    }
}

/* the table with the library's sum combiner (inlined on the hit path)
 * gives the sums the callback gives */
static void plain_sum(void *acc, const void *val, size_t len, void *ctx)
{
    (void)ctx;
    uint64_t a, v;
    CU_ASSERT_EQUAL(len, 8);
    memcpy(&a, acc, 8);
    memcpy(&v, val, 8);
    a += v;
    memcpy(acc, &a, 8);
}

static void test_sum_combiner(void)
{
    mrf__ctable a, b;
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_init(&a, 64), 0);
    CU_ASSERT_EQUAL_FATAL(mrf__ctable_init(&b, 64), 0);
    for (uint64_t i = 0; i < 50000; i++) {
        char key[20];
        size_t kl = (size_t)snprintf(key, sizeof key, "k%llu", (unsigned long long)(i % 997));
        uint64_t v = i, h = mrf__key_hash(key, kl);
        mrf__ctable *t[2] = {&a, &b};
        mrf__combine_fn fn[2] = {mrf_combine_sum_u64, plain_sum};
        for (int k = 0; k < 2; k++)
            if (!mrf__ctable_hit(t[k], h, key, kl, &v, 8, fn[k], NULL))
                CU_ASSERT_EQUAL(mrf__ctable_add(t[k], h, key, kl, &v, 8, fn[k], NULL), 0);
    }
    CU_ASSERT_EQUAL(a.used, 997);
    CU_ASSERT_EQUAL(b.used, 997);
    for (size_t i = 0; i <= a.mask; i++) {
        if (!a.slots[i].kf)
            continue;
        size_t kl = a.slots[i].kf & MRF_CS_KLEN;
        uint64_t va, vb = 0;
        memcpy(&va, a.slots[i].data + kl, 8);
        for (size_t j = 0; j <= b.mask; j++)
            if (b.slots[j].kf && b.slots[j].hash == a.slots[i].hash)
                memcpy(&vb, b.slots[j].data + kl, 8);
        CU_ASSERT_EQUAL(va, vb);
    }
    mrf__ctable_destroy(&a);
    mrf__ctable_destroy(&b);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {{"words: edge cases", test_edges},
                              {"words: random buffers vs a byte loop", test_random},
                              {"count_lines of blocks", test_count_lines},
                              {"short copies and compares", test_small_copy_and_eq},
                              {"sum combiner inlined vs a callback", test_sum_combiner},
                              CU_TEST_INFO_NULL};

int main(void)
{
    return unit_main("words", tests);
}
