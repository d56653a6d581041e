/* sum.c -- see sum.h. */
#include <stdio.h>
#include <string.h>

#include "sum.h"

void mrf_sum_u64_combine(void *acc, const void *val, size_t len, void *ctx)
{
    (void)ctx;
    (void)len;
    uint64_t a, v;
    memcpy(&a, acc, sizeof a);
    memcpy(&v, val, sizeof v);
    a += v;
    memcpy(acc, &a, sizeof a);
}

void mrf_sum_u64_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
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

const unsigned char mrf_word_sep[256] = {
    [' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\v'] = 1, ['\f'] = 1, ['\r'] = 1};
