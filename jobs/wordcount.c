/*
 * wordcount -- occurrences of each word.  A word is a maximal run of bytes
 * other than space, \t, \n, \v, \f and \r; every other byte (NUL, high-bit,
 * punctuation) belongs to words.  Output: word<TAB>count.
 */
#include "sum.h"
#include "words.h"

/* map gets blocks of whole lines (MRF_MAP_BLOCKS): one pass of the word
 * splitter over up to 1 MiB, no call per line */
static void wc_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const uint64_t one = 1;
    words it;
    const char *w;
    size_t n;
    words_init(&it, in->data, in->len);
    while (words_next(&it, &w, &n))
        if (mrf_emit(out, w, n, &one, sizeof one))
            return;
}

const mrf_job_spec mrf_job_wordcount = {
    .name = "wordcount",
    .summary = "count words (runs of non-whitespace bytes); output word<TAB>count",
    .input = MRF_INPUT_LINES,
    .map = wc_map,
    .combine = mrf_combine_sum_u64,
    .reduce = mrf_sum_u64_reduce,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
    .flags = MRF_MAP_BLOCKS,
};
