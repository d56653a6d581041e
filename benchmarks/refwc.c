/*
 * refwc.c -- the single-thread yardstick for the wordcount benchmark: a word
 * counter tuned as far as one core goes, so that mrflow is judged against
 * the best one process can do, not against coreutils.  Usage:
 *
 *     refwc [-o OUT] IN...     word<TAB>count lines, in no particular order,
 *                              to OUT (written and fsynced, as mrflow commits
 *                              its output) or to standard output
 *
 * A word is a maximal run of bytes other than space, \t, \n, \v, \f, \r (as
 * in mrflow's wordcount).  What makes it fast:
 *  - input read in 16 MiB blocks with read(2) (a word cut by a block's end
 *    is carried over), the kernel told to read ahead;
 *  - separators found 64 bytes at a time with AVX2 (two compares and a
 *    movemask per 32 bytes): word starts and ends are bit masks walked with
 *    tzcnt, no byte loop;
 *  - XXH3 inlined (no loop, no call for keys of <= 16 bytes);
 *  - open-addressing tables of 32-byte slots {hash, count, length, 16 key
 *    bytes inline (longer keys: an offset into an arena)}, load <= 0.5,
 *    linear probing; counting partitioned or direct (below).
 * Output is written with one buffer; the process exits without freeing.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

#define BLOCK (16u << 20)
#define BATCH 32

typedef struct { /* 32 bytes: two to a cache line */
    uint64_t hash;
    uint32_t count; /* (a word seen 2^32 times would wrap: not in these inputs) */
    uint32_t len;
    uint64_t k[2]; /* the key, zero-padded, when len <= 16; else k[0]: its arena offset */
} slot;

typedef struct {
    slot *tab;
    size_t mask, used;
} table;

static unsigned char *arena;
static size_t arena_len, arena_cap;

/* XXH3, inlined: for keys of up to 16 bytes it reads them with two
 * overlapping loads and no loop (a memcpy into a local word instead cost a
 * call and a failed store-to-load forward per word: 40 % of the time). */
static inline uint64_t hash_word(const unsigned char *p, size_t n)
{
    return XXH3_64bits(p, n);
}

static const unsigned char *key_of(const slot *s)
{
    return s->len <= 16 ? (const unsigned char *)s->k : arena + s->k[0];
}

/* A word's first 16 bytes, zero-padded (it may read up to 16 bytes past its
 * end: the input buffer has slack), so a short key compares as two words. */
static inline void key16(const unsigned char *w, size_t n, uint64_t k[2])
{
    memcpy(k, w, 16);
    if (n < 16) {
        if (n <= 8) {
            k[0] &= n == 8 ? ~0ull : (1ull << (8 * n)) - 1;
            k[1] = 0;
        } else {
            k[1] &= (1ull << (8 * (n - 8))) - 1;
        }
    }
}

/* Zeroed slots, on huge pages where the kernel gives them (THP "madvise"). */
static slot *slots_alloc(size_t n)
{
    size_t bytes = n * sizeof(slot);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "refwc: out of memory\n");
        exit(1);
    }
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

static void table_init(table *t, size_t n)
{
    t->tab = slots_alloc(n);
    t->mask = n - 1;
    t->used = 0;
}

static void grow(table *t)
{
    size_t n = (t->mask + 1) * 2;
    slot *ns = slots_alloc(n);
    for (size_t i = 0; i <= t->mask; i++) {
        if (!t->tab[i].count)
            continue;
        size_t j = t->tab[i].hash & (n - 1);
        while (ns[j].count)
            j = (j + 1) & (n - 1);
        ns[j] = t->tab[i];
    }
    munmap(t->tab, (t->mask + 1) * sizeof *t->tab);
    t->tab = ns;
    t->mask = n - 1;
}

static inline void add(table *t, const unsigned char *w, size_t n, uint64_t h, const uint64_t k[2])
{
    size_t i = h & t->mask;
    for (;;) {
        slot *s = &t->tab[i];
        if (!s->count)
            break;
        if (s->hash == h && s->len == n &&
            (n <= 16 ? s->k[0] == k[0] && s->k[1] == k[1] : memcmp(arena + s->k[0], w, n) == 0)) {
            s->count++;
            return;
        }
        i = (i + 1) & t->mask;
    }
    slot *s = &t->tab[i];
    s->hash = h;
    s->count = 1;
    s->len = (uint32_t)n;
    if (n <= 16) {
        s->k[0] = k[0];
        s->k[1] = k[1];
    } else {
        if (arena_len + n > arena_cap) {
            arena_cap = arena_cap ? arena_cap * 2 : (1u << 20);
            while (arena_len + n > arena_cap)
                arena_cap *= 2;
            arena = realloc(arena, arena_cap);
            if (!arena) {
                fprintf(stderr, "refwc: out of memory\n");
                exit(1);
            }
        }
        memcpy(arena + arena_len, w, n);
        s->k[0] = arena_len;
        arena_len += n;
    }
    if (++t->used * 2 > t->mask + 1)
        grow(t);
}

/*
 * Two ways to count, chosen with -m (default: direct, the faster here):
 *  direct:      one table; words in batches of 32: hash all, prefetch their
 *               slots, then probe (up to 32 misses in flight);
 *  partitioned: 256 tables by the hash's top byte; a word is first appended
 *               to its partition's staging list, and a full list (or every
 *               list, before the input block is reused) is folded into its
 *               table at once.  Each fold touches one small table, which
 *               then stays in cache and in the TLB: with 4 KiB pages a probe
 *               of one big table misses the TLB as well as the cache.
 */
#define NPART 256
#define STAGE 2048
typedef struct { /* a word waiting in its partition's list */
    uint64_t h;
    uint64_t k[2];
    const unsigned char *w; /* for words over 16 bytes */
    uint64_t n;
} staged;

static int partitioned = 0;
static table big;
static table part[NPART];
static staged *stage_buf; /* NPART x STAGE */
static uint32_t nstaged[NPART];
static staged batch[BATCH];
static int nb;

static void fold(int p)
{
    const staged *e = stage_buf + (size_t)p * STAGE;
    for (uint32_t i = 0; i < nstaged[p]; i++)
        add(&part[p], e[i].w, e[i].n, e[i].h, e[i].k);
    nstaged[p] = 0;
}

static void flush_words(void)
{
    if (partitioned) {
        for (int p = 0; p < NPART; p++)
            fold(p);
        return;
    }
    for (int i = 0; i < nb; i++)
        add(&big, batch[i].w, batch[i].n, batch[i].h, batch[i].k);
    nb = 0;
}

static inline void word(const unsigned char *w, size_t n)
{
    uint64_t h = hash_word(w, n);
    staged *e;
    if (partitioned) {
        int p = (int)(h >> 56);
        e = stage_buf + (size_t)p * STAGE + nstaged[p];
        if (++nstaged[p] == STAGE) {
            e->h = h, e->w = w, e->n = n;
            key16(w, n, e->k);
            fold(p);
            return;
        }
    } else {
        __builtin_prefetch(&big.tab[h & big.mask]);
        e = &batch[nb++];
    }
    e->h = h, e->w = w, e->n = n;
    key16(w, n, e->k);
    if (!partitioned && nb == BATCH)
        flush_words();
}

static inline int is_sep(unsigned char c)
{
    return c == ' ' || (unsigned char)(c - 9) <= 4;
}

/* Separator bits of 64 bytes at p (bit i: p[i] is a separator). */
static inline uint64_t sep_mask(const unsigned char *p)
{
#ifdef __AVX2__
    const __m256i sp = _mm256_set1_epi8(' '), nine = _mm256_set1_epi8(9),
                  four = _mm256_set1_epi8(4);
    __m256i a = _mm256_loadu_si256((const __m256i *)p);
    __m256i b = _mm256_loadu_si256((const __m256i *)(p + 32));
    /* c - 9 <= 4 unsigned: min(c - 9, 4) == c - 9 */
    __m256i da = _mm256_sub_epi8(a, nine), db = _mm256_sub_epi8(b, nine);
    __m256i ma =
        _mm256_or_si256(_mm256_cmpeq_epi8(a, sp), _mm256_cmpeq_epi8(_mm256_min_epu8(da, four), da));
    __m256i mb =
        _mm256_or_si256(_mm256_cmpeq_epi8(b, sp), _mm256_cmpeq_epi8(_mm256_min_epu8(db, four), db));
    return (uint32_t)_mm256_movemask_epi8(ma) | (uint64_t)(uint32_t)_mm256_movemask_epi8(mb) << 32;
#else
    uint64_t m = 0;
    for (int i = 0; i < 64; i++)
        m |= (uint64_t)is_sep(p[i]) << i;
    return m;
#endif
}

/* Counts the whole words of buf[0, len); returns where the last, possibly
 * unfinished, word starts (len if buf ends in a separator). */
static size_t scan(const unsigned char *buf, size_t len, int final)
{
    size_t i = 0, start = SIZE_MAX; /* start of the word in progress */
    uint64_t prev_sep = 1;          /* the byte before buf is a separator */
    for (; i + 64 <= len; i += 64) {
        uint64_t sep = sep_mask(buf + i);
        uint64_t before = (sep << 1) | prev_sep; /* bit j: byte j - 1 is a separator */
        uint64_t starts = ~sep & before;         /* a word byte after a separator */
        uint64_t ends = sep & ~before;           /* a separator after a word byte */
        prev_sep = sep >> 63;
        while (starts | ends) {
            unsigned s = starts ? (unsigned)__builtin_ctzll(starts) : 64;
            unsigned e = ends ? (unsigned)__builtin_ctzll(ends) : 64;
            if (e < s) { /* a word in progress ends */
                word(buf + start, i + e - start);
                start = SIZE_MAX;
                ends &= ends - 1;
            } else {
                start = i + s;
                starts &= starts - 1;
            }
        }
    }
    for (; i < len; i++) {
        int sp = is_sep(buf[i]);
        if (!sp && prev_sep)
            start = i;
        else if (sp && !prev_sep) {
            word(buf + start, i - start);
            start = SIZE_MAX;
        }
        prev_sep = (uint64_t)sp;
    }
    if (start == SIZE_MAX)
        return len;
    if (final) {
        word(buf + start, len - start);
        return len;
    }
    return start;
}

int main(int argc, char **argv)
{
    int first = 1;
    const char *outpath = NULL;
    while (argc > first + 1 && argv[first][0] == '-') {
        if (strcmp(argv[first], "-m") == 0)
            partitioned = strcmp(argv[first + 1], "direct") != 0;
        else if (strcmp(argv[first], "-o") == 0)
            outpath = argv[first + 1];
        else
            break;
        first += 2;
    }
    if (argc <= first) {
        fprintf(stderr, "usage: refwc [-m partitioned|direct] [-o OUT] IN...\n");
        return 2;
    }
    if (outpath && !freopen(outpath, "w", stdout)) {
        perror(outpath);
        return 2;
    }
    if (partitioned) {
        for (int p = 0; p < NPART; p++)
            table_init(&part[p], 4096);
        stage_buf = malloc(sizeof *stage_buf * NPART * STAGE);
    } else {
        table_init(&big, 1u << 20);
    }
    unsigned char *buf = malloc(BLOCK + 64);
    if (!buf || (partitioned && !stage_buf))
        return 1;
    for (int f = first; f < argc; f++) {
        int fd = open(argv[f], O_RDONLY);
        if (fd < 0) {
            perror(argv[f]);
            return 2;
        }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        size_t have = 0;
        for (;;) {
            ssize_t got = read(fd, buf + have, BLOCK - have);
            if (got < 0) {
                perror(argv[f]);
                return 1;
            }
            size_t len = have + (size_t)got;
            size_t keep = scan(buf, len, got == 0);
            flush_words(); /* words point into buf: count them before moving it */
            if (got == 0)
                break;
            if (keep == 0 && len == BLOCK) { /* one word fills the block: grow */
                fprintf(stderr, "refwc: a word longer than %u bytes\n", BLOCK);
                return 1;
            }
            memmove(buf, buf + keep, len - keep);
            have = len - keep;
        }
        close(fd);
    }
    /* output: one buffer */
    size_t cap = 1u << 24, n = 0;
    char *out = malloc(cap);
    for (int p = 0; out && p < (partitioned ? NPART : 1); p++) {
        const table *t = partitioned ? &part[p] : &big;
        for (size_t i = 0; i <= t->mask; i++) {
            const slot *s = &t->tab[i];
            if (!s->count)
                continue;
            if (n + s->len + 24 > cap) {
                fwrite(out, 1, n, stdout);
                n = 0;
            }
            memcpy(out + n, key_of(s), s->len);
            n += s->len;
            char num[24], *d = num + sizeof num; /* decimal, backwards */
            uint64_t c = s->count;
            *--d = '\n';
            do {
                *--d = (char)('0' + c % 10);
                c /= 10;
            } while (c);
            *--d = '\t';
            memcpy(out + n, d, (size_t)(num + sizeof num - d));
            n += (size_t)(num + sizeof num - d);
        }
    }
    if (out)
        fwrite(out, 1, n, stdout);
    if (fflush(stdout) || (outpath && fsync(fileno(stdout)))) {
        perror(outpath ? outpath : "stdout");
        return 1;
    }
    return 0;
}
