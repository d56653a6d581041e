/* fuzz.h -- the entry point every fuzz target defines (libFuzzer's). */
#ifndef MRF_FUZZ_H
#define MRF_FUZZ_H
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include <stdlib.h>
#include <unistd.h>
/* Writes b[0, n) to a new file named from path (a mkstemp template, changed
 * in place); 0, or -1 with nothing left behind. */
static inline int fuzz_file(char *path, const void *b, size_t n)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    int ok = write(fd, b, n) == (ssize_t)n;
    close(fd);
    if (!ok)
        unlink(path);
    return ok ? 0 : -1;
}
#endif
