/* fuzz_lines.c -- input splitting: the bytes become a file that is cut into
 * line tasks of a size set by the first byte; the tasks must cover the file
 * exactly, in order, each starting at offset 0 or just after a '\n'. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 16))
        return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    static const uint8_t zstd[4] = {0x28, 0xb5, 0x2f, 0xfd};
    if (len >= 4 && memcmp(body, zstd, 4) == 0) /* a zstd file: fuzz_zstd's */
        return 0;
    char path[] = "/tmp/mrflow-fuzz-lines.XXXXXX";
    if (fuzz_file(path, body, len))
        return 0;
    char *inputs[] = {path};
    mrf__plan plan;
    char err[MRF_ERRLEN];
    uint64_t task = 1 + data[0] % 97;
    if (mrf__plan_files(inputs, 1, &plan, err, sizeof err) == MRF_OK) {
        if (mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, task, err, sizeof err) == MRF_OK) {
            uint64_t at = 0;
            for (size_t i = 0; i < plan.n_tasks; i++) {
                const mrf__task *t = &plan.tasks[i];
                if (t->off != at || t->len == 0 || (t->off > 0 && body[t->off - 1] != '\n'))
                    abort();
                at += t->len;
            }
            if (at != len)
                abort();
        }
        mrf__plan_free(&plan);
    }
    unlink(path);
    return 0;
}
