/* fuzz_block.c -- spill blocks and shuffle chunks read back from disk or the
 * wire: a damaged header, payload or checksum is an error, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "fuzz.h"

static mrf__codec *z;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!z && mrf__codec_create(1, &z) != MRF_OK)
        return 0;
    if (size < MRF_BLOCK_HDR)
        return 0;
    char *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    uint32_t raw = 0, stored = 0;
    if (mrf__block_header(copy, &raw, &stored) == MRF_OK && raw <= (1u << 20) &&
        stored <= size - MRF_BLOCK_HDR) {
        char *out = malloc(raw ? raw : 1);
        if (out) {
            (void)mrf__block_decode(z, copy, copy + MRF_BLOCK_HDR, out);
            free(out);
        }
    }
    /* a bare chunk: the first two bytes say how long it claims to unpack to */
    uint32_t claim = (uint32_t)(unsigned char)copy[0] | (uint32_t)(unsigned char)copy[1] << 8;
    char *out = malloc(claim ? claim : 1);
    if (out) {
        (void)mrf__unpack(z, copy + 2, size - 2, out, claim);
        free(out);
    }
    free(copy);
    return 0;
}
