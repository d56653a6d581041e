/* freqfreq: how many words occur once, twice, ... (two stages). */
#include <mrflow.h>
#include <stdio.h>
#include <string.h>

static void sum(void *acc, const void *val, size_t len, void *ctx)
{
    uint64_t a, v;
    memcpy(&a, acc, 8), memcpy(&v, val, 8), a += v, memcpy(acc, &a, 8);
}

static void total(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    uint64_t n = 0, v;
    const void *val;
    size_t len;
    while (mrf_values_next(vals, &val, &len) == 1)
        memcpy(&v, val, 8), n += v;
    mrf_emit(out, key, klen, &n, 8); /* binary: the next stage reads it */
}

static void words(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    const char *p = in->data, *end = p + in->len;
    uint64_t one = 1;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        const char *w = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (p > w)
            mrf_emit(out, w, (size_t)(p - w), &one, 8);
    }
}

/* stage 2: (word, n) -> (n, 1); its key is n in decimal, zero-padded */
static void by_count(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    uint64_t n, one = 1;
    char key[24];
    memcpy(&n, in->data, 8);
    mrf_emit(out, key, (size_t)snprintf(key, sizeof key, "%012llu", (unsigned long long)n), &one, 8);
}

static void print(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    uint64_t n = 0, v;
    const void *val;
    size_t len;
    char buf[24];
    while (mrf_values_next(vals, &val, &len) == 1)
        memcpy(&v, val, 8), n += v;
    mrf_emit(out, key, klen, buf, (size_t)snprintf(buf, sizeof buf, "%llu", (unsigned long long)n));
}

static const mrf_job_spec histogram = {.map = by_count, .combine = sum, .reduce = print};

static const mrf_job_spec freqfreq = {.name = "freqfreq", .map = words, .combine = sum,
                                      .reduce = total, .next = &histogram};

int main(int argc, char **argv)
{
    return mrf_main(argc, argv, &freqfreq);
}
