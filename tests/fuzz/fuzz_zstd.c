/* fuzz_zstd.c -- compressed line input: the bytes become a file that is
 * planned as zstd frames (frame and block headers walked) and cut into
 * tasks of 1-97 decompressed bytes set by the first byte, or, when the
 * first byte's top bit is set, a gzip file (one task, members one after
 * another); every task it accepts is then read in pieces, which must come
 * in order with no gap or overlap. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* small: an RLE block turns 4 bytes into 128 KiB */
    if (size < 5 || size > 1024)
        return 0;
    static const uint8_t zstd[4] = {0x28, 0xb5, 0x2f, 0xfd}, gzip[4] = {0x1f, 0x8b, 8, 0};
    const uint8_t *magic = data[0] & 0x80 ? gzip : zstd;
    size_t len = size - 1 + 4;
    uint8_t *body = malloc(len);
    if (!body)
        abort();
    memcpy(body, magic, 4); /* always a zstd or gzip file */
    memcpy(body + 4, data + 1, size - 1);
    char path[] = "/tmp/mrflow-fuzz-zstd.XXXXXX";
    if (fuzz_file(path, body, len)) {
        free(body);
        return 0;
    }
    char *inputs[] = {path};
    mrf__plan plan;
    char err[MRF_ERRLEN];
    uint64_t task = 1 + (data[0] & 0x7f) % 97;
    if (mrf__plan_files(inputs, 1, &plan, err, sizeof err) == MRF_OK) {
        if (mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, task, err, sizeof err) == MRF_OK) {
            uint64_t at = 0;
            char *zb = NULL;
            size_t zcap = 0;
            for (size_t i = 0; i < plan.n_tasks; i++) {
                const mrf__task *t = &plan.tasks[i];
                if (t->codec != (data[0] & 0x80 ? MRF__CODEC_GZIP : MRF__CODEC_ZSTD) ||
                    t->coff + t->clen > len)
                    abort();
                mrf__zin *z = NULL;
                if (mrf__zin_open(open(path, O_RDONLY), path, len, t, 1, &zb, &zcap, &z) != MRF_OK)
                    abort();
                const char *d;
                size_t n;
                uint64_t off;
                while (mrf__zin_next(z, &d, &n, &off) == MRF_OK && n) {
                    if (off != at) /* lines read once, in order */
                        abort();
                    at += n;
                }
                mrf__zin_close(z);
            }
            mrf__big_free(zb, zcap);
        }
        mrf__plan_free(&plan);
    }
    unlink(path);
    free(body);
    return 0;
}
