/* test_spill.c -- codec blocks, spilled runs and the k-way merge: round
 * trips at both levels, damage detection, bucket runs read back bucket by
 * bucket, and merges of sorted pieces against one whole sort. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "unit.h"

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* n records, keys from a small alphabet (many repeats), 1-20 byte keys,
 * 0-40 byte values (a few over a 64 KiB block, to test big records) */
static void make_records(mrf__kvbuf *kv, size_t n, uint64_t seed, uint32_t nb)
{
    uint64_t s = seed;
    static char big[70000];
    for (size_t i = 0; i < n; i++) {
        char k[20], v[40];
        size_t kl = 1 + rng(&s) % 20, vl = rng(&s) % 40;
        for (size_t j = 0; j < kl; j++)
            k[j] = (char)('a' + rng(&s) % 4);
        for (size_t j = 0; j < vl; j++)
            v[j] = (char)rng(&s);
        if (i % 5000 == 4999) {
            memset(big, (int)i, sizeof big);
            CU_ASSERT_EQUAL_FATAL(
                mrf__kvbuf_append(kv, (uint32_t)(rng(&s) % nb), k, kl, big, sizeof big, NULL),
                MRF_OK);
            continue;
        }
        CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_append(kv, (uint32_t)(rng(&s) % nb), k, kl, v, vl, NULL),
                              MRF_OK);
    }
}

static size_t index_records(const mrf__kvbuf *kv, mrf__sort_ent **ents)
{
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_check(kv->base, kv->len, &n), MRF_OK);
    *ents = malloc((n ? n : 1) * sizeof **ents);
    mrf__sort_ent *tmp = malloc((n ? n : 1) * sizeof *tmp);
    size_t i = 0;
    for (size_t at = 0; at < kv->len; at += mrf__rec_size(kv->base + at), i++) {
        (*ents)[i].off = at;
        (*ents)[i].prefix =
            mrf__key_prefix(mrf__rec_key(kv->base + at), mrf__rec_klen(kv->base + at));
    }
    mrf__sort_records(*ents, tmp, n, kv->base, NULL);
    free(tmp);
    return n;
}

/* Sorts kv's records and writes them to sp as one sorted run. */
static size_t write_sorted_run(mrf__spill *sp, const mrf__kvbuf *kv, mrf__sort_ent **ents,
                               mrf__run *run)
{
    size_t n = index_records(kv, ents);
    mrf__run_writer w;
    CU_ASSERT_EQUAL_FATAL(mrf__runw_begin(&w, sp), MRF_OK);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL_FATAL(mrf__runw_add(&w, kv->base + (*ents)[i].off), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__runw_end(&w, run), MRF_OK);
    return n;
}

static void test_codec(void)
{
    for (int level = 0; level <= 3; level += 3) {
        mrf__codec *z;
        CU_ASSERT_EQUAL_FATAL(mrf__codec_create(level, &z), MRF_OK);
        CU_ASSERT_EQUAL(mrf__codec_level(z), level);
        size_t n = 100000;
        char *raw = malloc(n), *back = malloc(n), *blk = malloc(mrf__block_bound(n));
        uint64_t s = 7;
        for (size_t i = 0; i < n; i++) /* half text-like, half noise */
            raw[i] = i < n / 2 ? (char)('a' + i % 7) : (char)rng(&s);
        size_t len = mrf__block_encode(z, raw, n, blk, true);
        uint32_t rl, sl;
        CU_ASSERT_EQUAL(mrf__block_header(blk, &rl, &sl), MRF_OK);
        CU_ASSERT_EQUAL(rl, n);
        CU_ASSERT_EQUAL(len, MRF_BLOCK_HDR + sl);
        if (level) {
            CU_ASSERT(sl < n); /* the text half compresses */
        } else {
            CU_ASSERT_EQUAL(sl, n);
        }
        CU_ASSERT_EQUAL(mrf__block_decode(z, blk, blk + MRF_BLOCK_HDR, back), MRF_OK);
        CU_ASSERT_EQUAL(memcmp(raw, back, n), 0);
        /* one flipped payload byte, anywhere: caught */
        for (size_t at = MRF_BLOCK_HDR; at < len; at += len / 7 + 1) {
            blk[at] ^= 1;
            CU_ASSERT_NOT_EQUAL(mrf__block_decode(z, blk, blk + MRF_BLOCK_HDR, back), MRF_OK);
            blk[at] ^= 1;
        }
        blk[0] ^= 1; /* magic */
        CU_ASSERT_NOT_EQUAL(mrf__block_header(blk, &rl, &sl), MRF_OK);
        blk[0] ^= 1;
        /* bare payloads: stored length says compressed or not */
        size_t cb = mrf__pack_bound(n);
        char *c = malloc(cb);
        size_t st = mrf__pack(z, raw, n, c, cb);
        CU_ASSERT(st > 0 && st <= n);
        CU_ASSERT_EQUAL(mrf__unpack(z, c, st, back, n), MRF_OK);
        CU_ASSERT_EQUAL(memcmp(raw, back, n), 0);
        CU_ASSERT_NOT_EQUAL(mrf__unpack(z, c, n + 1, back, n), MRF_OK);
        free(c);
        free(raw);
        free(back);
        free(blk);
        mrf__codec_destroy(z);
    }
}

static char *tmpdir(void)
{
    static char d[] = "/tmp/mrflow-unit-XXXXXX";
    static int made;
    if (!made && mkdtemp(d))
        made = 1;
    return d;
}

static void test_sorted_run(void)
{
    mrf__spill sp;
    CU_ASSERT_EQUAL_FATAL(mrf__spill_open(&sp, tmpdir(), 1, false, false), MRF_OK);
    mrf__kvbuf kv = {0};
    make_records(&kv, 20000, 3, 1);
    mrf__sort_ent *ents;
    mrf__run run;
    size_t n = write_sorted_run(&sp, &kv, &ents, &run);
    CU_ASSERT_EQUAL(run.records, n);
    CU_ASSERT(sp.bytes_disk < sp.bytes_raw);
    mrf__run_reader r;
    mrf__runr_open(&r, &sp, &run);
    const char *rec;
    size_t i = 0;
    int rc;
    while ((rc = mrf__runr_next(&r, &rec)) == 1) {
        const char *want = kv.base + ents[i].off;
        CU_ASSERT_EQUAL_FATAL(mrf__rec_size(rec), mrf__rec_size(want));
        CU_ASSERT_EQUAL_FATAL(memcmp(rec, want, mrf__rec_size(want)), 0);
        i++;
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(i, n);
    mrf__runr_close(&r);
    free(ents);
    mrf__kvbuf_destroy(&kv);
    mrf__spill_close(&sp);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static void test_damaged_run(void)
{
    mrf__spill sp;
    CU_ASSERT_EQUAL_FATAL(mrf__spill_open(&sp, tmpdir(), 1, false, true), MRF_OK);
    mrf__kvbuf kv = {0};
    make_records(&kv, 3000, 4, 1);
    mrf__sort_ent *ents;
    mrf__run run;
    CU_ASSERT(write_sorted_run(&sp, &kv, &ents, &run) > 0);
    mrf__run_reader r;
    mrf__runr_open(&r, &sp, &run);
    const char *rec;
    int rc;
    while ((rc = mrf__runr_next(&r, &rec)) == 1)
        ;
    CU_ASSERT_EQUAL(rc, MRF_EIO); /* the first block was damaged on its way out */
    mrf__runr_close(&r);
    free(ents);
    mrf__kvbuf_destroy(&kv);
    mrf__spill_close(&sp);
}

static void test_bucket_run(void)
{
    enum { NB = 37 };
    mrf__spill sp;
    CU_ASSERT_EQUAL_FATAL(mrf__spill_open(&sp, tmpdir(), 0, false, false), MRF_OK);
    mrf__kvbuf kv = {0};
    make_records(&kv, 20000, 5, NB);
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_check(kv.base, kv.len, &n), MRF_OK);
    /* offsets grouped by bucket, arena order within a bucket */
    uint64_t *offs = malloc(n * sizeof *offs), bytes[NB] = {0};
    size_t k = 0;
    for (uint32_t b = 0; b < NB; b++)
        for (size_t at = 0; at < kv.len; at += mrf__rec_size(kv.base + at))
            if (mrf__rec_bucket(kv.base + at) == b) {
                offs[k++] = at;
                bytes[b] += mrf__rec_size(kv.base + at);
            }
    mrf__brun br;
    CU_ASSERT_EQUAL_FATAL(mrf__spill_bucket_run(&sp, kv.base, offs, n, &br), MRF_OK);
    CU_ASSERT_EQUAL(br.n, NB);
    char *raw = malloc(1 << 20);
    size_t seen = 0;
    for (uint32_t b = 0; b < NB; b++) {
        const mrf__bdir_ent *e = mrf__brun_find(&br, b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_EQUAL(e->raw, bytes[b]);
        uint64_t got = 0;
        for (uint64_t pos = e->off; pos < e->off + e->len;) {
            uint32_t rl, sl;
            CU_ASSERT_EQUAL_FATAL(mrf__spill_peek(&sp, pos, &rl, &sl), MRF_OK);
            CU_ASSERT_EQUAL_FATAL(mrf__spill_read(&sp, pos, raw, &pos), MRF_OK);
            for (size_t at = 0; at < rl; at += mrf__rec_size(raw + at)) {
                CU_ASSERT_EQUAL(mrf__rec_bucket(raw + at), b);
                const char *want = kv.base + offs[seen++];
                CU_ASSERT_EQUAL(memcmp(raw + at, want, mrf__rec_size(want)), 0);
            }
            got += rl;
        }
        CU_ASSERT_EQUAL(got, bytes[b]);
    }
    CU_ASSERT_EQUAL(seen, n);
    CU_ASSERT_PTR_NULL(mrf__brun_find(&br, NB));
    mrf__free(br.ents);
    free(raw);
    free(offs);
    mrf__kvbuf_destroy(&kv);
    mrf__spill_close(&sp);
}

static void test_merge_bucket_runs(void)
{
    enum { NB = 19, K = 3 };
    mrf__spill sp;
    CU_ASSERT_EQUAL_FATAL(mrf__spill_open(&sp, tmpdir(), 1, true, false), MRF_OK);
    mrf__kvbuf kv[K] = {{0}};
    mrf__brun br[K];
    uint64_t bytes[NB] = {0};
    for (size_t r = 0; r < K; r++) {
        make_records(&kv[r], 3000, 40 + r, NB);
        size_t n = 0;
        CU_ASSERT_EQUAL_FATAL(mrf__kvbuf_check(kv[r].base, kv[r].len, &n), MRF_OK);
        uint64_t *offs = malloc(n * sizeof *offs);
        size_t k = 0;
        for (uint32_t b = 0; b < NB; b++)
            for (size_t at = 0; at < kv[r].len; at += mrf__rec_size(kv[r].base + at))
                if (mrf__rec_bucket(kv[r].base + at) == b) {
                    offs[k++] = at;
                    bytes[b] += mrf__rec_size(kv[r].base + at);
                }
        CU_ASSERT_EQUAL_FATAL(mrf__spill_bucket_run(&sp, kv[r].base, offs, n, &br[r]), MRF_OK);
        br[r].task = -1;
        free(offs);
    }
    mrf__brun m;
    CU_ASSERT_EQUAL_FATAL(mrf__spill_merge_bruns(&sp, br, K, &m), MRF_OK);
    CU_ASSERT_EQUAL(m.n, NB);
    char *raw = malloc(4 << 20);
    for (uint32_t b = 0; b < NB; b++) {
        const mrf__bdir_ent *e = mrf__brun_find(&m, b);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_EQUAL(e->raw, bytes[b]);
        uint64_t got;
        CU_ASSERT_EQUAL_FATAL(mrf__spill_read_region(&sp, e->off, e->len, raw, 4 << 20, &got),
                              MRF_OK);
        CU_ASSERT_EQUAL(got, bytes[b]);
        /* run 0's records of b, then run 1's, then run 2's, each in order */
        size_t at = 0;
        for (size_t r = 0; r < K; r++)
            for (size_t o = 0; o < kv[r].len; o += mrf__rec_size(kv[r].base + o))
                if (mrf__rec_bucket(kv[r].base + o) == b) {
                    CU_ASSERT_EQUAL_FATAL(
                        memcmp(raw + at, kv[r].base + o, mrf__rec_size(kv[r].base + o)), 0);
                    at += mrf__rec_size(kv[r].base + o);
                }
    }
    free(raw);
    mrf__free(m.ents);
    for (size_t r = 0; r < K; r++) {
        mrf__free(br[r].ents);
        mrf__kvbuf_destroy(&kv[r]);
    }
    mrf__spill_close(&sp);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static void test_merge(void)
{
    for (size_t k = 1; k <= 9; k += 4) {
        /* k sorted pieces with overlapping keys, and the same records as one */
        mrf__kvbuf all = {0}, parts[9] = {{0}};
        mrf__sort_ent *pents[9];
        mrf__sorted_src pc[9];
        mrf__merge_src src[9];
        for (size_t j = 0; j < k; j++) {
            make_records(&parts[j], 1000 + 500 * j, 11 + j, 1);
            mrf__kvbuf_reserve(&all, parts[j].len);
            memcpy(all.base + all.len, parts[j].base, parts[j].len);
            all.len += parts[j].len;
            size_t n = index_records(&parts[j], &pents[j]);
            pc[j] = (mrf__sorted_src){parts[j].base, pents[j], 0, n};
            src[j] = (mrf__merge_src){.next = mrf__sorted_next, .ctx = &pc[j]};
        }
        mrf__sort_ent *ents;
        size_t n = index_records(&all, &ents);
        mrf__merge m;
        CU_ASSERT_EQUAL_FATAL(mrf__merge_init(&m, src, k, NULL), MRF_OK);
        size_t i = 0;
        const char *r;
        while ((r = mrf__merge_top(&m))) {
            const char *want = all.base + ents[i].off;
            CU_ASSERT_EQUAL_FATAL(mrf__rec_cmp(r, want, NULL), 0);
            CU_ASSERT_EQUAL(mrf__rec_size(r), mrf__rec_size(want));
            CU_ASSERT_EQUAL_FATAL(mrf__merge_pop(&m), MRF_OK);
            i++;
        }
        CU_ASSERT_EQUAL(i, n);
        mrf__merge_free(&m);
        free(ents);
        for (size_t j = 0; j < k; j++) {
            free(pents[j]);
            mrf__kvbuf_destroy(&parts[j]);
        }
        mrf__kvbuf_destroy(&all);
    }
}

static void test_open_errors(void)
{
    mrf__spill sp;
    CU_ASSERT_EQUAL(mrf__spill_open(&sp, "/nonexistent-mrflow-dir", 1, false, false), MRF_EIO);
    CU_ASSERT_EQUAL(mrf__spill_open(&sp, "/proc", 1, false, false), MRF_EIO);
    CU_ASSERT_EQUAL(mrf__spill_open(&sp, "/etc/passwd", 1, false, false), MRF_EIO);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
    unsetenv("TMPDIR");
    CU_ASSERT_STRING_EQUAL(mrf__spill_dir(NULL), "/tmp");
    setenv("TMPDIR", "/scratch", 1);
    CU_ASSERT_STRING_EQUAL(mrf__spill_dir(NULL), "/scratch");
    CU_ASSERT_STRING_EQUAL(mrf__spill_dir("/x"), "/x");
}

static CU_TestInfo tests[] = {
    {"codec: round trips and damage", test_codec},
    {"sorted run: written and read back", test_sorted_run},
    {"sorted run: a damaged block is an error", test_damaged_run},
    {"bucket run: each bucket's blocks", test_bucket_run},
    {"bucket runs merged, blocks copied", test_merge_bucket_runs},
    {"k-way merge equals one sort", test_merge},
    {"spill_open: missing, unwritable, not a dir", test_open_errors},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    int rc = unit_main("spill", tests);
    rmdir(tmpdir());
    return rc;
}
