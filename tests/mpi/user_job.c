/* logcount: lines per first field (the bytes before the first space). */
#include <mrflow.h>
#include <stdio.h>
#include <string.h>

static void map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    const char *sp = memchr(in->data, ' ', in->len);
    size_t klen = sp ? (size_t)(sp - (const char *)in->data) : in->len;
    uint64_t one = 1;
    if (klen > 0)
        mrf_emit(out, in->data, klen, &one, sizeof one);
}

static void reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    uint64_t sum = 0, v;
    const void *p;
    size_t len;
    while (mrf_values_next(vals, &p, &len))
        memcpy(&v, p, 8), sum += v;
    char num[24];
    mrf_emit(out, key, klen, num, (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)sum));
}

static const mrf_job_spec logcount = {.name = "logcount", .input = MRF_INPUT_LINES, .map = map,
                                      .combine = mrf_combine_sum_u64, .reduce = reduce};

int main(int argc, char **argv) { return mrf_main(argc, argv, &logcount); }
