/*
 * wordcount -- occurrences of each word.  A word is a maximal run of bytes
 * other than space, \t, \n, \v, \f and \r; every other byte (NUL, high-bit,
 * punctuation) belongs to words.  Output: word<TAB>count.
 */
#include <stdio.h>
#include <string.h>

#include "mrflow.h"

static const unsigned char is_space[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1};

static void wc_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const unsigned char *p = in->data, *end = p + in->len;
    const uint64_t one = 1;
    while (p < end) {
        while (p < end && is_space[*p])
            p++;
        const unsigned char *w = p;
        while (p < end && !is_space[*p])
            p++;
        if (p > w && mrf_emit(out, w, (size_t)(p - w), &one, sizeof one))
            return;
    }
}

static void wc_combine(void *acc, const void *val, size_t len, void *ctx)
{
    (void)ctx;
    (void)len;
    uint64_t a, v;
    memcpy(&a, acc, sizeof a);
    memcpy(&v, val, sizeof v);
    a += v;
    memcpy(acc, &a, sizeof a);
}

static void wc_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    uint64_t sum = 0, v;
    const void *p;
    size_t len;
    while (mrf_values_next(vals, &p, &len)) {
        memcpy(&v, p, sizeof v);
        sum += v;
    }
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)sum);
    mrf_emit(out, key, klen, num, (size_t)n);
}

const mrf_job_spec mrf_job_wordcount = {
    .name = "wordcount",
    .summary = "count words (runs of non-whitespace bytes); output word<TAB>count",
    .input = MRF_INPUT_LINES,
    .map = wc_map,
    .combine = wc_combine,
    .reduce = wc_reduce,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
};
