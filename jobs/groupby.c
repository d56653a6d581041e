/*
 * groupby -- the elements of a compound HDF5 dataset grouped by the
 * integer field --key: per key the count, sum, minimum and maximum of the
 * numeric field --value.  Output KEY<TAB>COUNT<TAB>SUM<TAB>MIN<TAB>MAX,
 * numbers printed exactly (%.17g); for --format hdf5 an int64 key and a
 * compound of count, sum, min and max.  It has a combiner, so it combines on
 * the mapping rank and heavy keys are split like any other.  A NaN value
 * is a bad record.  (The sum is a double: its last bits depend on the
 * order the values are added in, which depends on the rank count, unless
 * every partial sum is exact.)
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrflow.h"

static const mrf_job_option options[] = {
    {"key", MRF_OPTION_STRING, "FIELD", "the integer field that groups the elements", NULL, NULL},
    {"value", MRF_OPTION_STRING, "FIELD", "the numeric field summarised per key", NULL, NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

typedef struct acc {
    uint64_t n;
    double sum, min, max;
} acc;

static struct {
    int ready;
    mrf_field key, value;
} gs;

static int find(const mrf_record *in, mrf_emitter *out, const char *opt, mrf_field *f, int integer)
{
    const char *name = mrf_option(out, opt);
    char why[300];
    if (mrf_record_field(in, name, f) != MRF_OK) {
        snprintf(why, sizeof why,
                 "groupby: the elements of '%s' have no field '%s' (--%s; h5dump -H shows them)",
                 in->file, name, opt);
        return mrf_fail_input(out, why);
    }
    if (integer ? f->cls != MRF_FIELD_INT && f->cls != MRF_FIELD_UINT : f->cls == MRF_FIELD_OTHER) {
        snprintf(why, sizeof why, "groupby: the field '%s' of '%s' (--%s) is not %s", name,
                 in->file, opt, integer ? "an integer" : "a number");
        return mrf_fail_input(out, why);
    }
    return MRF_OK;
}

static void gb_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    if (!gs.ready) {
        if (find(in, out, "key", &gs.key, 1) || find(in, out, "value", &gs.value, 0))
            return;
        gs.ready = 1;
    }
    int64_t k;
    if (mrf_field_int64(in, &gs.key, &k) != MRF_OK) {
        mrf_reject(out, "key over INT64_MAX");
        return;
    }
    double v = mrf_field_double(in, &gs.value);
    if (isnan(v)) {
        mrf_reject(out, "NaN");
        return;
    }
    acc a = {1, v, v, v};
    char key[24];
    int n = snprintf(key, sizeof key, "%" PRId64, k);
    mrf_emit(out, key, (size_t)n, &a, sizeof a);
}

/* (acc and val are the engine's bytes, not aligned: copied in and out) */
static void gb_combine(void *accp, const void *val, size_t len, void *ctx)
{
    (void)len, (void)ctx;
    acc a, b;
    memcpy(&a, accp, sizeof a);
    memcpy(&b, val, sizeof b);
    a.n += b.n;
    a.sum += b.sum;
    a.min = b.min < a.min ? b.min : a.min;
    a.max = b.max > a.max ? b.max : a.max;
    memcpy(accp, &a, sizeof a);
}

/* typed output: an int64 key and a compound of count, sum, min, max (acc's
 * layout, 32 bytes without padding) */
static const mrf_column key_type = {"key", MRF_FIELD_INT, 8};
static const mrf_column acc_type[] = {{"count", MRF_FIELD_UINT, 8},
                                      {"sum", MRF_FIELD_FLOAT, 8},
                                      {"min", MRF_FIELD_FLOAT, 8},
                                      {"max", MRF_FIELD_FLOAT, 8},
                                      {NULL, 0, 0}};

static void gb_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    const void *p;
    size_t len;
    acc a = {0, 0, INFINITY, -INFINITY};
    while (mrf_values_next(vals, &p, &len))
        gb_combine(&a, p, len, ctx);
    char k[24];
    snprintf(k, sizeof k, "%.*s", (int)(klen < 23 ? klen : 23), (const char *)key);
    int64_t kv = strtoll(k, NULL, 10);
    mrf_emit(out, &kv, sizeof kv, &a, sizeof a);
}

const mrf_job_spec mrf_job_groupby = {
    .name = "groupby",
    .summary = "per integer --key field of an HDF5 compound dataset: count, sum, min, max of "
               "--value; output key<TAB>count<TAB>sum<TAB>min<TAB>max",
    .input = MRF_INPUT_DATASET,
    .map = gb_map,
    .combine = gb_combine,
    .reduce = gb_reduce,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
    .options = options,
    .key_type = &key_type,
    .value_type = acc_type,
};
