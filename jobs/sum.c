/* sum.c -- see sum.h. */
#include <string.h>

#include "sum.h"

uint64_t mrf_sum_u64_values(mrf_values *vals)
{
    uint64_t sum = 0, v;
    const void *p;
    size_t len;
    while (mrf_values_next(vals, &p, &len)) {
        memcpy(&v, p, sizeof v);
        sum += v;
    }
    return sum;
}

void mrf_sum_u64_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    uint64_t sum = mrf_sum_u64_values(vals);
    /* decimal, written backwards: snprintf per key cost 4 % of a wordcount */
    char num[24], *d = num + sizeof num;
    do {
        *--d = (char)('0' + sum % 10);
        sum /= 10;
    } while (sum);
    mrf_emit(out, key, klen, d, (size_t)(num + sizeof num - d));
}
