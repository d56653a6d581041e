/*
 * kvcount -- lines per key, where a line's key is its text before the first
 * tab (the whole line when it has none).  Input as `mrflow gen zipf` writes
 * it; output key<TAB>count.  It has a combiner, so heavy keys are split.
 */
#include <string.h>

#include "sum.h"

static void kc_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const char *tab = memchr(in->data, '\t', in->len);
    size_t klen = tab ? (size_t)(tab - (const char *)in->data) : in->len;
    const uint64_t one = 1;
    mrf_emit(out, in->data, klen, &one, sizeof one);
}

const mrf_job_spec mrf_job_kvcount = {
    .name = "kvcount",
    .summary = "count lines per key (text before the first tab); output key<TAB>count",
    .input = MRF_INPUT_LINES,
    .map = kc_map,
    .combine = mrf_combine_sum_u64,
    .reduce = mrf_sum_u64_reduce,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
};
