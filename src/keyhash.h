/*
 * keyhash.h -- the hash of a key, inlined where it runs once per emitted
 * record (the map's emit, the combining table).  It decides buckets, so
 * every caller must get the same value: this is its only definition
 * (mrf__key_hash in combine.c returns it to the rest of the engine).
 */
#ifndef MRFLOW_KEYHASH_H
#define MRFLOW_KEYHASH_H

#include <stddef.h>
#include <stdint.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t mrf__key_hash_inline(const void *key, size_t klen)
{
    return XXH3_64bits(key, klen);
}

#endif
