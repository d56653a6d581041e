/*
 * memcpy.c -- memory copy bandwidth, the ceiling for any in-memory pass:
 * copies a 256 MiB buffer (touched beforehand) 8 times and prints the best
 * GB/s (bytes copied per second, not counting the reads twice).
 * Usage: ./benchmarks/memcpy [MiB]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 256;
    size_t n = (mib ? mib : 256) << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        fprintf(stderr, "memcpy: out of memory for 2 x %zu MiB\n", n >> 20);
        return 1;
    }
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30;
    for (int i = 0; i < 8; i++) {
        double t = now();
        memcpy(i % 2 ? a : b, i % 2 ? b : a, n);
        t = now() - t;
        if (t < best)
            best = t;
    }
    printf("%.3f\n", (double)n / best / 1e9);
    free(a);
    free(b);
    return 0;
}
