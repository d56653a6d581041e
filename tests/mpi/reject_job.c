/*
 * reject_job.c -- a job that sets malformed lines aside: a line must be
 * "KEY<TAB>NUMBER"; a line without a tab, or whose number has a non-digit,
 * is rejected through mrf_reject.  Output: KEY<TAB>sum of its numbers.
 */
#include <stdio.h>
#include <string.h>

#include "mrflow.h"

static void map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const char *p = in->data, *tab = memchr(p, '\t', in->len);
    if (!tab || tab + 1 == p + in->len) {
        mrf_reject(out, "no <TAB>NUMBER");
        return;
    }
    uint64_t v = 0;
    for (const char *q = tab + 1; q < p + in->len; q++) {
        if (*q < '0' || *q > '9') {
            mrf_reject(out, "the number has a non-digit");
            return;
        }
        v = v * 10 + (uint64_t)(*q - '0');
    }
    mrf_emit(out, p, (size_t)(tab - p), &v, sizeof v);
}

static void combine(void *acc, const void *val, size_t len, void *ctx)
{
    (void)len;
    (void)ctx;
    uint64_t a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, val, 8);
    a += v;
    memcpy(acc, &a, 8);
}

static void reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    uint64_t sum = 0, v;
    const void *p;
    size_t len;
    while (mrf_values_next(vals, &p, &len)) {
        memcpy(&v, p, 8);
        sum += v;
    }
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)sum);
    /* reduce may not reject: that is an error the test checks for */
    if (mrf_reject(out, "from reduce") != MRF_EINVAL)
        return;
    mrf_emit(out, key, klen, num, (size_t)n);
}

static const mrf_job_spec spec = {
    .name = "kvsum",
    .input = MRF_INPUT_LINES,
    .map = map,
    .combine = combine,
    .reduce = reduce,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
};

int main(int argc, char **argv)
{
    return mrf_main(argc, argv, &spec);
}
