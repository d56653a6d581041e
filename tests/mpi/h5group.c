/*
 * h5group.c -- a job over an HDF5 dataset, for tests/mpi/dataset_input.sh:
 * with a compound element, its integer field "key" groups the numeric
 * field "val"; with a numeric element (a 1-D dataset, or a 2-D one's rows:
 * every column), the element's value truncated to an integer groups the
 * value itself.  Output: KEY<TAB>COUNT SUM MIN MAX FIRST, numbers as
 * %.17g, FIRST the smallest index (mrf_record.offset) of the key's
 * records, so the test sees indices and fields as numpy does.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mrflow.h"

typedef struct acc {
    double n, sum, min, max, first;
} acc;

static void add(const mrf_record *in, mrf_emitter *out, int64_t key, double v)
{
    acc a = {1, v, v, v, (double)in->offset};
    char k[24];
    int m = snprintf(k, sizeof k, "%" PRId64, key);
    mrf_emit(out, k, (size_t)m, &a, sizeof a);
}

static void map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    mrf_field kf, vf;
    int64_t key;
    if (mrf_record_field(in, "key", &kf) == MRF_OK) {
        if (mrf_record_field(in, "val", &vf) != MRF_OK || mrf_field_int64(in, &kf, &key)) {
            mrf_fail(out, "h5group: no numeric field 'val', or 'key' is not an integer");
            return;
        }
        add(in, out, key, mrf_field_double(in, &vf));
        return;
    }
    if (mrf_record_field(in, NULL, &vf) != MRF_OK || vf.cls == MRF_FIELD_OTHER) {
        mrf_fail(out, "h5group: the element is not a number");
        return;
    }
    for (size_t c = 0, n = mrf_record_columns(in); c < n; c++) { /* every column of a row */
        mrf_field col = vf;
        col.offset = c * (in->len / n);
        double v = mrf_field_double(in, &col);
        if (isnan(v)) {
            mrf_reject(out, "NaN");
            return;
        }
        add(in, out, (int64_t)v, v);
    }
}

/* (acc and val are the engine's bytes, not aligned: copied in and out) */
static void combine(void *accp, const void *val, size_t len, void *ctx)
{
    (void)len, (void)ctx;
    acc a, b;
    memcpy(&a, accp, sizeof a);
    memcpy(&b, val, sizeof b);
    a.n += b.n;
    a.sum += b.sum;
    a.min = b.min < a.min ? b.min : a.min;
    a.max = b.max > a.max ? b.max : a.max;
    a.first = b.first < a.first ? b.first : a.first;
    memcpy(accp, &a, sizeof a);
}

static void reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    const void *p;
    size_t len;
    acc a;
    int have = 0;
    while (mrf_values_next(vals, &p, &len)) {
        if (!have)
            memcpy(&a, p, sizeof a);
        else
            combine(&a, p, len, ctx);
        have = 1;
    }
    char buf[160];
    int m = snprintf(buf, sizeof buf, "%.17g %.17g %.17g %.17g %.17g", a.n, a.sum, a.min, a.max,
                     a.first);
    mrf_emit(out, key, klen, buf, (size_t)m);
}

static const mrf_job_spec spec = {
    .name = "h5group",
    .summary = "group a dataset's val by key: count, sum, min, max, first index",
    .input = MRF_INPUT_DATASET,
    .map = map,
    .combine = combine,
    .reduce = reduce,
};

int main(int argc, char **argv)
{
    return mrf_main(argc, argv, &spec);
}
