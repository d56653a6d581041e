/*
 * codec.c -- blocks of record bytes as they go to disk (spill runs): zstd
 * compression and an XXH3 checksum of the raw bytes.
 *
 *   +-----------+-------------+----------------+--------------------+
 *   | magic u32 | raw_len u32 | stored_len u32 | pad u32 | xxh3 u64 | payload
 *   +-----------+-------------+----------------+--------------------+
 *
 * stored_len < raw_len means the payload is a zstd frame; otherwise the raw
 * bytes are stored as they are (compression did not pay, or was off).  The
 * shuffle uses the same rule for its chunks with the header fields carried
 * in its round metadata instead (shuffle.c).
 *
 * zstd's own memory comes through mem.c (ZSTD_customMem), so the budget
 * sees it.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
/* checksums of whole chunks and blocks: libxxhash's XXH3 with run-time
 * dispatch to AVX2/AVX-512 (the same hash values as the portable code) */
#define XXH_DISPATCH_DISABLE_REPLACE
#include <xxh_x86dispatch.h>
#include <xxhash.h>

#include "internal.h"

#define MAGIC 0x4246524du /* "MRFB" */

static void *z_alloc(void *opaque, size_t n)
{
    (void)opaque;
    return mrf__malloc(n);
}
static void z_free(void *opaque, void *p)
{
    (void)opaque;
    mrf__free(p);
}
static const ZSTD_customMem zmem = {z_alloc, z_free, NULL};

struct mrf__codec {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
    int level;
};

int mrf__codec_create(int level, mrf__codec **out)
{
    mrf__codec *z = mrf__calloc(1, sizeof *z);
    if (!z)
        return MRF_ENOMEM;
    z->level = level;
    z->d = ZSTD_createDCtx_advanced(zmem);
    if (level > 0)
        z->c = ZSTD_createCCtx_advanced(zmem);
    if (!z->d || (level > 0 && !z->c) ||
        (z->c && ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, level)))) {
        mrf__codec_destroy(z);
        return MRF_ENOMEM;
    }
    *out = z;
    return MRF_OK;
}

void mrf__codec_destroy(mrf__codec *z)
{
    if (!z)
        return;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    mrf__free(z);
}

int mrf__codec_level(const mrf__codec *z)
{
    return z->level;
}

struct ZSTD_DCtx_s *mrf__codec_dctx(mrf__codec *z)
{
    return z->d;
}

uint64_t mrf__checksum(const void *p, size_t n)
{
#if defined(__x86_64__)
    return XXH3_64bits_dispatch(p, n);
#else
    return XXH3_64bits(p, n);
#endif
}

size_t mrf__pack_bound(size_t raw)
{
    return ZSTD_compressBound(raw);
}

size_t mrf__pack(mrf__codec *z, const void *raw, size_t n, void *out, size_t cap)
{
    if (z->c && n >= 64) {
        size_t c = ZSTD_compress2(z->c, out, cap, raw, n);
        if (!ZSTD_isError(c) && c < n)
            return c;
    }
    if (n > cap)
        return 0;
    if (n)
        memcpy(out, raw, n);
    return n;
}

int mrf__unpack(mrf__codec *z, const void *stored, size_t stored_len, void *raw, size_t raw_len)
{
    if (stored_len > raw_len)
        return MRF_EIO;
    if (stored_len == raw_len) {
        if (raw_len)
            memcpy(raw, stored, raw_len);
        return MRF_OK;
    }
    size_t d = ZSTD_decompressDCtx(z->d, raw, raw_len, stored, stored_len);
    return ZSTD_isError(d) || d != raw_len ? MRF_EIO : MRF_OK;
}

size_t mrf__block_bound(size_t raw)
{
    return MRF_BLOCK_HDR + ZSTD_compressBound(raw);
}

size_t mrf__block_encode(mrf__codec *z, const void *raw, size_t n, void *out, bool compress)
{
    char *o = out;
    size_t stored = n;
    if (compress)
        stored = mrf__pack(z, raw, n, o + MRF_BLOCK_HDR, ZSTD_compressBound(n));
    else if (n)
        memcpy(o + MRF_BLOCK_HDR, raw, n);
    uint64_t sum = mrf__checksum(raw, n);
    mrf__wr32(o, MAGIC);
    mrf__wr32(o + 4, (uint32_t)n);
    mrf__wr32(o + 8, (uint32_t)stored);
    mrf__wr32(o + 12, 0);
    memcpy(o + 16, &sum, 8);
    return MRF_BLOCK_HDR + stored;
}

int mrf__block_header(const void *hdr, uint32_t *raw_len, uint32_t *stored_len)
{
    const char *h = hdr;
    *raw_len = mrf__rd32(h + 4);
    *stored_len = mrf__rd32(h + 8);
    if (mrf__rd32(h) != MAGIC || *stored_len > *raw_len || *raw_len > INT32_MAX)
        return MRF_EIO;
    return MRF_OK;
}

int mrf__block_decode(mrf__codec *z, const void *hdr, const void *payload, void *raw)
{
    uint32_t raw_len, stored_len;
    uint64_t sum;
    if (mrf__block_header(hdr, &raw_len, &stored_len))
        return MRF_EIO;
    memcpy(&sum, (const char *)hdr + 16, 8);
    if (mrf__unpack(z, payload, stored_len, raw, raw_len))
        return MRF_EIO;
    return mrf__checksum(raw, raw_len) == sum ? MRF_OK : MRF_EIO;
}
