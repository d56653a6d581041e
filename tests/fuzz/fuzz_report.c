/* fuzz_report.c -- `mrflow report FILE` on any bytes: a report, damaged JSON
 * or no JSON at all is printed or refused, never a crash. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) { /* the table goes nowhere (stderr stays: libFuzzer reports there) */
        quiet = 1;
        if (!freopen("/dev/null", "w", stdout))
            return 0;
    }
    char path[] = "/tmp/mrflow-fuzz-report.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    char *argv[] = {"report", path, NULL};
    (void)mrf__cli_report(2, argv);
    unlink(path);
    return 0;
}
