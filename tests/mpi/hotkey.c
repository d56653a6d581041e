/*
 * hotkey.c -- a job without a combiner whose every record has the same key,
 * for tests of a reduce whose values exceed memory: each line emits
 * ("hot", its byte offset as 8 big-endian bytes).  The reduce counts and
 * sums the values and checks that they arrive in ascending order (values of
 * a key are sorted bytewise), then writes "hot<TAB>COUNT SUM ORDERED".
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mrflow.h"

static void map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    unsigned char v[8];
    for (int i = 0; i < 8; i++)
        v[i] = (unsigned char)(in->offset >> (56 - 8 * i));
    mrf_emit(out, "hot", 3, v, sizeof v);
}

static void reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const void *p;
    size_t len;
    uint64_t n = 0, sum = 0, prev = 0;
    int ordered = 1;
    while (mrf_values_next(vals, &p, &len)) {
        uint64_t v = 0;
        for (size_t i = 0; i < len && i < 8; i++)
            v = v << 8 | ((const unsigned char *)p)[i];
        if (n && v < prev)
            ordered = 0;
        prev = v;
        sum += v;
        n++;
    }
    char buf[96];
    int m = snprintf(buf, sizeof buf, "%" PRIu64 " %" PRIu64 " %s", n, sum,
                     ordered ? "ordered" : "UNORDERED");
    mrf_emit(out, key, klen, buf, (size_t)m);
}

static const mrf_job_spec spec = {
    .name = "hotkey",
    .summary = "every line's offset under one key: count, sum, order check",
    .input = MRF_INPUT_LINES,
    .map = map,
    .reduce = reduce,
};

int main(int argc, char **argv)
{
    return mrf_main(argc, argv, &spec);
}
