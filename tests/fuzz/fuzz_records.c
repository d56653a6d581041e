/* fuzz_records.c -- record framing read back from spill files and the
 * shuffle: mrf__kvbuf_check must reject whatever a record walk would overrun,
 * and accept only streams it can walk. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy exactly as long as the input, so ASan sees any overrun */
    char *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    size_t n = 0;
    if (mrf__kvbuf_check(p, size, &n) == MRF_OK) {
        size_t at = 0, k = 0;
        uint64_t sum = 0;
        while (at < size) {
            const char *r = p + at;
            sum += mrf__rec_bucket(r) + mrf__rec_klen(r) + mrf__rec_vlen(r);
            if (mrf__rec_klen(r))
                sum += (unsigned char)mrf__rec_key(r)[mrf__rec_klen(r) - 1];
            if (mrf__rec_vlen(r))
                sum += (unsigned char)mrf__rec_val(r)[mrf__rec_vlen(r) - 1];
            at += mrf__rec_size(r);
            k++;
        }
        if (at != size || k != n)
            abort(); /* check said yes, the walk disagrees */
        (void)sum;
    }
    free(p);
    return 0;
}
