/*
 * histogram -- the values of a numeric HDF5 dataset, or of the field
 * --field of a compound one, counted into --bins equal bins over --range
 * LO:HI (half-open).  A value x goes to bin floor((x - LO) / (HI - LO) *
 * N), computed in double, the last bin catching rounding at HI; x < LO
 * counts in bin -1, x >= HI in bin N.  A 2-D dataset's rows count every
 * column.  NaN is a bad record.  Output BIN<TAB>COUNT, typed (an int64
 * bin, a uint64 count) for --format hdf5.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sum.h"

static int check_bins(const char *v, char *err, size_t errlen)
{
    long long n = strtoll(v, NULL, 10);
    if (n >= 1 && n <= 1000000000)
        return 0;
    snprintf(err, errlen, "the number of bins must be 1 to 10^9");
    return -1;
}

/* LO:HI, finite, LO < HI */
static int parse_range(const char *v, double *lo, double *hi)
{
    char *end;
    *lo = strtod(v, &end);
    if (end == v || *end != ':')
        return -1;
    const char *h = end + 1;
    *hi = strtod(h, &end);
    if (end == h || *end || !isfinite(*lo) || !isfinite(*hi) || !(*lo < *hi) ||
        !isfinite(*hi - *lo))
        return -1;
    return 0;
}

static int check_range(const char *v, char *err, size_t errlen)
{
    double lo, hi;
    if (parse_range(v, &lo, &hi) == 0)
        return 0;
    snprintf(err, errlen, "give LO:HI, two finite numbers with LO < HI (e.g. 0:1)");
    return -1;
}

static const mrf_job_option options[] = {
    {"range", MRF_OPTION_STRING, "LO:HI", "the bins span [LO, HI)", NULL, check_range},
    {"bins", MRF_OPTION_INT, "N", "equal bins over the range", "10", check_bins},
    {"field", MRF_OPTION_STRING, "NAME",
     "the field of a compound dataset's elements to count (\"\": the element)", "", NULL},
    {NULL, 0, NULL, NULL, NULL, NULL},
};

/* what every record of the job shares, worked out from the first */
static struct {
    int ready;
    mrf_field f;
    double lo, hi;
    int64_t n;
} hs;

static int setup(const mrf_record *in, mrf_emitter *out)
{
    const char *name = mrf_option(out, "field");
    char why[300];
    if (mrf_record_field(in, name && *name ? name : NULL, &hs.f) != MRF_OK) {
        if (name && *name)
            snprintf(why, sizeof why,
                     "histogram: the elements of '%s' have no field '%s' (h5dump -H shows "
                     "them)",
                     in->file, name);
        else
            snprintf(why, sizeof why,
                     "histogram: the elements of '%s' are compound: name the one to count "
                     "with --field (h5dump -H shows them)",
                     in->file);
        return mrf_fail_input(out, why);
    }
    if (hs.f.cls == MRF_FIELD_OTHER) {
        snprintf(why, sizeof why, "histogram: %s%s of '%s' is not a number",
                 name && *name ? "the field " : "the element", name ? name : "", in->file);
        return mrf_fail_input(out, why);
    }
    parse_range(mrf_option(out, "range"), &hs.lo, &hs.hi);
    hs.n = mrf_option_int(out, "bins");
    hs.ready = 1;
    return MRF_OK;
}

static void hg_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    if (!hs.ready && setup(in, out))
        return;
    /* a 2-D row: every column */
    size_t cols = mrf_record_columns(in);
    for (size_t c = 0; c < cols; c++) {
        mrf_field col = hs.f;
        col.offset += c * (in->len / cols);
        double x = mrf_field_double(in, &col);
        if (isnan(x)) {
            mrf_reject(out, "NaN");
            return;
        }
        int64_t b;
        if (x < hs.lo)
            b = -1;
        else if (x >= hs.hi)
            b = hs.n;
        else {
            b = (int64_t)floor((x - hs.lo) / (hs.hi - hs.lo) * (double)hs.n);
            b = b < 0 ? 0 : b >= hs.n ? hs.n - 1 : b;
        }
        char key[24];
        int k = snprintf(key, sizeof key, "%lld", (long long)b);
        const uint64_t one = 1;
        mrf_emit(out, key, (size_t)k, &one, sizeof one);
    }
}

/* typed output: an int64 bin and a uint64 count (text as before) */
static const mrf_column bin_type = {"bin", MRF_FIELD_INT, 8};
static const mrf_column count_type[] = {{"count", MRF_FIELD_UINT, 8}, {NULL, 0, 0}};

static void hg_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    uint64_t sum = mrf_sum_u64_values(vals);
    char k[24];
    snprintf(k, sizeof k, "%.*s", (int)(klen < 23 ? klen : 23), (const char *)key);
    int64_t bin = strtoll(k, NULL, 10);
    mrf_emit(out, &bin, sizeof bin, &sum, sizeof sum);
}

const mrf_job_spec mrf_job_histogram = {
    .name = "histogram",
    .summary = "count an HDF5 dataset's values (or a field's) into --bins bins over --range; "
               "output bin<TAB>count",
    .input = MRF_INPUT_DATASET,
    .map = hg_map,
    .combine = mrf_combine_sum_u64,
    .reduce = hg_reduce,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
    .options = options,
    .key_type = &bin_type,
    .value_type = count_type,
};
