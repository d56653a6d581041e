/*
 * terasort -- sorts 100-byte records by their first 10 bytes.  Range
 * partitioned, so the output parts in order are the sorted input; records
 * with equal keys are ordered by their remaining 90 bytes within a part; a key
 * shared by many records may continue from one part into the next.
 */
#include "mrflow.h"

#define KEY 10
#define REC 100

static void ts_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const char *r = in->data;
    mrf_emit(out, r, KEY, r + KEY, REC - KEY);
}

static void ts_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const void *v;
    size_t len;
    while (mrf_values_next(vals, &v, &len))
        if (mrf_emit(out, key, klen, v, len))
            return;
}

const mrf_job_spec mrf_job_terasort = {
    .name = "terasort",
    .summary = "sort 100-byte records by their 10-byte keys; output raw records, globally sorted",
    .input = MRF_INPUT_RECORDS,
    .record_size = REC,
    .map = ts_map,
    .reduce = ts_reduce,
    .partitioning = MRF_PART_RANGE,
    .output = MRF_OUTPUT_RAW,
    .flags = MRF_PER_VALUE, /* equal keys may span adjacent parts */
};
