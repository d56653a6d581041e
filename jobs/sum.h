/*
 * sum.h -- the combiner and reduce shared by the counting jobs (wordcount,
 * kvcount, invindex): values are 8-byte native-endian counts, summed; the
 * output value is the sum in decimal.  And what a word is.
 */
#ifndef MRFLOW_JOBS_SUM_H
#define MRFLOW_JOBS_SUM_H

#include "mrflow.h"

/* 1 for the bytes that separate words (space, \t, \n, \v, \f, \r): a word
 * is a maximal run of other bytes (wordcount, invindex) */
extern const unsigned char mrf_word_sep[256];

void mrf_sum_u64_combine(void *acc, const void *val, size_t len, void *ctx);
void mrf_sum_u64_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out,
                        void *ctx);

#endif
