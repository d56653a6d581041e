/*
 * invindex -- an inverted index in two stages.  Output:
 *   word<TAB>file:count,file:count,...
 * with the postings sorted by file name (bytewise), file being the input
 * file's path as mrflow lists it (a directory's files as DIR/NAME).  Words
 * are what wordcount counts: maximal runs of bytes other than space, \t,
 * \n, \v, \f and \r.
 *
 *   stage 1: (word, file) -> occurrences   key: u32 word length, word, file
 *            combined and summed like wordcount's counts
 *   stage 2: (word, file, n) -> word: "file\0n" values, sorted by file in
 *            reduce and joined
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sum.h"
#include "words.h"

/* the key of one (word, file) pair; words longer than this are emitted
 * through a heap buffer */
#define KEYBUF 4096

static void ii_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    size_t flen = strlen(in->file);
    const uint64_t one = 1;
    char kb[KEYBUF];
    words it;
    const char *w;
    size_t wl;
    words_init(&it, in->data, in->len);
    while (words_next(&it, &w, &wl)) {
        size_t kl = 4 + wl + flen;
        char *k = kl <= KEYBUF ? kb : malloc(kl);
        if (!k) {
            mrf_fail(out, "invindex: out of memory for a long word");
            return;
        }
        uint32_t w32 = (uint32_t)wl;
        memcpy(k, &w32, 4);
        memcpy(k + 4, w, wl);
        memcpy(k + 4 + wl, in->file, flen);
        int rc = mrf_emit(out, k, kl, &one, sizeof one);
        if (k != kb)
            free(k);
        if (rc)
            return;
    }
}

/* stage 1's reduce: the pair's total, still binary */
static void ii_count(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    uint64_t n = 0, v;
    const void *val;
    size_t len;
    while (mrf_values_next(vals, &val, &len) == 1)
        if (len == sizeof v) {
            memcpy(&v, val, sizeof v);
            n += v;
        }
    mrf_emit(out, key, klen, &n, sizeof n);
}

/* stage 2's map: the word is the key, "file\0count" the value */
static void ii_regroup(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    uint32_t wl;
    uint64_t n;
    if (in->klen < 4 || in->len != sizeof n)
        return;
    memcpy(&wl, in->key, 4);
    if (wl > in->klen - 4)
        return;
    memcpy(&n, in->data, sizeof n);
    const char *k = (const char *)in->key + 4, *file = k + wl;
    size_t flen = in->klen - 4 - wl;
    char vb[KEYBUF + 32], *v = flen + 32 <= sizeof vb ? vb : malloc(flen + 32);
    if (!v) {
        mrf_fail(out, "invindex: out of memory for a long file name");
        return;
    }
    memcpy(v, file, flen);
    v[flen] = '\0';
    int d = snprintf(v + flen + 1, 31, "%llu", (unsigned long long)n);
    mrf_emit(out, k, wl, v, flen + 1 + (size_t)d);
    if (v != vb)
        free(v);
}

typedef struct posting {
    const char *v; /* "file\0count" */
    size_t len;
} posting;

static int by_file(const void *a, const void *b)
{
    const posting *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->v, y->v, n); /* the NUL after a name sorts it before longer ones */
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* stage 2's reduce: the postings, sorted by file, joined */
static void ii_join(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    posting *ps = NULL;
    char *bytes = NULL, *line = NULL;
    size_t n = 0, cap = 0, used = 0, bcap = 0;
    const void *val;
    size_t len;
    /* copy the values: they are valid only until the next call */
    while (mrf_values_next(vals, &val, &len) == 1) {
        if (n == cap) {
            posting *np = realloc(ps, (cap = cap ? cap * 2 : 16) * sizeof *ps);
            if (!np)
                goto oom;
            ps = np;
        }
        if (used + len > bcap) {
            size_t nc = bcap ? bcap * 2 : 4096;
            while (nc < used + len)
                nc *= 2;
            char *nb = realloc(bytes, nc);
            if (!nb)
                goto oom;
            bytes = nb;
            bcap = nc;
        }
        memcpy(bytes + used, val, len);
        ps[n++] = (posting){.v = (const char *)(uintptr_t)used, .len = len};
        used += len;
    }
    for (size_t i = 0; i < n; i++)
        ps[i].v = bytes + (uintptr_t)ps[i].v;
    if (n)
        qsort(ps, n, sizeof *ps, by_file);
    if (!(line = malloc(used + n + 1)))
        goto oom;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            line[o++] = ',';
        memcpy(line + o, ps[i].v, ps[i].len);
        line[o + strlen(ps[i].v)] = ':'; /* "file\0count" -> "file:count" */
        o += ps[i].len;
    }
    mrf_emit(out, key, klen, line, o);
    goto out;
oom:
    mrf_fail(out, "invindex: out of memory for a word's postings");
out:
    free(ps);
    free(bytes);
    free(line);
}

static const mrf_job_spec invindex_postings = {
    .name = "invindex-postings",
    .map = ii_regroup,
    .reduce = ii_join,
    .partitioning = MRF_PART_HASH,
};

const mrf_job_spec mrf_job_invindex = {
    .name = "invindex",
    .summary = "inverted index, two stages; output word<TAB>file:count,... (files sorted)",
    .input = MRF_INPUT_LINES,
    .map = ii_map,
    .combine = mrf_combine_sum_u64,
    .reduce = ii_count,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
    .next = &invindex_postings,
};
