/*
 * wordcount -- occurrences of each word.  A word is a maximal run of bytes
 * other than space, \t, \n, \v, \f and \r; every other byte (NUL, high-bit,
 * punctuation) belongs to words.  Output: word<TAB>count.
 */
#include <string.h>

#include "sum.h"

static void wc_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const unsigned char *p = in->data, *end = p + in->len;
    const uint64_t one = 1;
    while (p < end) {
        while (p < end && mrf_word_sep[*p])
            p++;
        const unsigned char *w = p;
        while (p < end && !mrf_word_sep[*p])
            p++;
        if (p > w && mrf_emit(out, w, (size_t)(p - w), &one, sizeof one))
            return;
    }
}

const mrf_job_spec mrf_job_wordcount = {
    .name = "wordcount",
    .summary = "count words (runs of non-whitespace bytes); output word<TAB>count",
    .input = MRF_INPUT_LINES,
    .map = wc_map,
    .combine = mrf_sum_u64_combine,
    .reduce = mrf_sum_u64_reduce,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
};
