/* fuzz_options.c -- the command line: bytes split at NUL into argv for
 * mrf__parse_options, and the whole input as one size for mrf__parse_size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t v;
    (void)mrf__parse_size(s, &v);
    char *argv[64] = {"mrflow"};
    int argc = 1;
    for (size_t i = 0; i < size && argc < 63;) {
        argv[argc++] = s + i;
        i += strlen(s + i) + 1;
    }
    argv[argc] = NULL;
    mrf__options opt;
    char err[MRF_ERRLEN];
    if (mrf__parse_options(argc, argv, NULL, &opt, err, sizeof err) == MRF_OK)
        mrf__options_free(&opt);
    free(s);
    if (mrf__mem_in_use() != 0)
        abort(); /* every byte the parser took must be given back */
    return 0;
}
