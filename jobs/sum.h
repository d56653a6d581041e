/*
 * sum.h -- the reduce shared by the counting jobs (wordcount, kvcount,
 * invindex; histogram sums the same way): values are 8-byte native-endian counts (combined by the
 * library's mrf_combine_sum_u64), summed; the output value is the sum in
 * decimal.
 */
#ifndef MRFLOW_JOBS_SUM_H
#define MRFLOW_JOBS_SUM_H

#include "mrflow.h"

void mrf_sum_u64_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out,
                        void *ctx);
/* The sum of a key's 8-byte counts (histogram emits it in binary). */
uint64_t mrf_sum_u64_values(mrf_values *vals);

#endif
