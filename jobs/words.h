/*
 * words.h -- the word splitter the built-in jobs share (wordcount,
 * invindex): a word is a maximal run of bytes other than space, \t, \n, \v,
 * \f and \r.  Every other byte (NUL, high-bit, punctuation) belongs to words.
 *
 *     words it;
 *     words_init(&it, buf, len);
 *     const char *w; size_t n;
 *     while (words_next(&it, &w, &n))
 *         ... w[0..n) is a word ...
 *
 * It looks at 64 bytes at a time: four SSE2 compares (baseline on x86-64;
 * a byte loop elsewhere) make a 64-bit mask of separators, and word starts
 * and ends are read off that mask with count-trailing-zeros, so a word costs
 * a few instructions whatever its length, and no byte is branched on.  The
 * last partial 64 bytes are copied into a padded block, so nothing is read
 * past buf + len.  A word may span blocks; none spans calls.
 */
#ifndef MRFLOW_JOBS_WORDS_H
#define MRFLOW_JOBS_WORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct words {
    const char *buf;
    size_t len;
    size_t at;       /* the block being read starts here */
    uint64_t starts; /* its unread word starts (bit i: buf[at + i]) */
    uint64_t ends;   /* and ends (a separator right after a word byte) */
    uint64_t prev_sep;
    size_t start; /* the word in progress, or SIZE_MAX */
    int loaded;   /* the block at `at` is in the masks */
    int done;
} words;

/* Bit i set when p[i] separates words, for 64 bytes at p. */
static inline uint64_t words_sep_mask(const unsigned char *p)
{
#if defined(__SSE2__)
    const __m128i sp = _mm_set1_epi8(' '), lo = _mm_set1_epi8(9 - 1), hi = _mm_set1_epi8(13 + 1);
    uint64_t m = 0;
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * i));
        /* 9..13 are \t \n \v \f \r: signed compares are right, as those
         * and ' ' are below 0x80 and high bytes read as negative */
        __m128i ws = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
        m |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_or_si128(ws, _mm_cmpeq_epi8(v, sp)))
             << (16 * i);
    }
    return m;
#else
    uint64_t m = 0;
    for (int i = 0; i < 64; i++)
        m |= (uint64_t)(p[i] == ' ' || (unsigned char)(p[i] - 9) <= 4) << i;
    return m;
#endif
}

static inline void words_init(words *it, const void *buf, size_t len)
{
    it->buf = buf;
    it->len = len;
    it->at = 0;
    it->starts = it->ends = 0;
    it->prev_sep = 1;
    it->start = SIZE_MAX;
    it->loaded = 0;
    it->done = 0;
}

/* Loads the block at it->at (the last one padded with separators). */
static inline void words_load(words *it)
{
    const unsigned char *p = (const unsigned char *)it->buf + it->at;
    unsigned char pad[64];
    if (it->len - it->at < 64) {
        memset(pad, ' ', sizeof pad);
        memcpy(pad, p, it->len - it->at);
        p = pad;
    }
    uint64_t sep = words_sep_mask(p);
    uint64_t before = (sep << 1) | it->prev_sep; /* bit i: byte i - 1 separates */
    it->starts = ~sep & before;
    it->ends = sep & ~before;
    it->prev_sep = sep >> 63;
}

/* The next word: 1 and *w, *n set, or 0 at the end of the buffer. */
static inline int words_next(words *it, const char **w, size_t *n)
{
    for (;;) {
        while (it->starts | it->ends) {
            unsigned s = it->starts ? (unsigned)__builtin_ctzll(it->starts) : 64;
            unsigned e = it->ends ? (unsigned)__builtin_ctzll(it->ends) : 64;
            if (s < e) {
                it->start = it->at + s;
                it->starts &= it->starts - 1;
                continue;
            }
            it->ends &= it->ends - 1;
            size_t end = it->at + e;
            if (end > it->len) /* the padding's first byte ends the last word */
                end = it->len;
            *w = it->buf + it->start;
            *n = end - it->start;
            it->start = SIZE_MAX;
            return 1;
        }
        if (it->done)
            return 0;
        if (it->loaded)
            it->at += 64; /* the block just read is used up */
        if (it->at >= it->len) {
            it->done = 1;
            if (it->start != SIZE_MAX) { /* a word runs to the end */
                *w = it->buf + it->start;
                *n = it->len - it->start;
                it->start = SIZE_MAX;
                return 1;
            }
            return 0;
        }
        words_load(it);
        it->loaded = 1;
    }
}

#endif
