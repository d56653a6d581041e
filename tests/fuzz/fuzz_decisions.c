/* fuzz_decisions.c -- a checkpoint's /partition record (splitters and heavy
 * keys) read back on resume: damaged bytes are refused, never a crash, and
 * what is accepted packs back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "partition.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mrf__splitters sp;
    mrf__heavy hv;
    if (mrf__decisions_unpack((const char *)data, size, 1u << 16, &sp, &hv) != MRF_OK)
        return 0;
    char *buf = NULL;
    size_t len = 0;
    if (mrf__decisions_pack(&sp, &hv, &buf, &len) == MRF_OK) {
        if (len != size || memcmp(buf, data, size) != 0)
            abort(); /* accepted bytes must round-trip */
        mrf__free(buf);
    }
    /* lookups on what was accepted stay in bounds */
    uint32_t span;
    if (sp.n)
        (void)mrf__range_bucket_span(&sp, data, size < 16 ? size : 16, NULL, &span);
    for (uint32_t i = 0; i < hv.n; i++)
        (void)mrf__heavy_find(&hv, hv.key[i].hash);
    mrf__splitters_free(&sp);
    mrf__heavy_free(&hv);
    return 0;
}
