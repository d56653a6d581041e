/*
 * pagefault.c -- what first touch of fresh memory costs here: maps 600 MiB
 * three ways (plain 4 KiB pages; MADV_HUGEPAGE; MAP_POPULATE) and times the
 * mapping and a memset of it.  The figures behind src/mem.c's choices.
 * Usage: make benchmarks/pagefault && ./benchmarks/pagefault
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void)
{
    static const char *name[] = {"4 KiB pages", "MADV_HUGEPAGE", "MAP_POPULATE"};
    size_t n = 600u << 20;
    for (int mode = 0; mode < 3; mode++) {
        double t0 = now();
        char *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | (mode == 2 ? MAP_POPULATE : 0), -1, 0);
        if (p == MAP_FAILED)
            return 1;
        if (mode == 1)
            (void)madvise(p, n, MADV_HUGEPAGE);
        double t1 = now();
        memset(p, 1, n);
        double t2 = now();
        printf("%-14s map %.3f s, write %.3f s, total %.3f s per GiB\n", name[mode], t1 - t0,
               t2 - t1, (t2 - t0) * 1024.0 / 600.0);
        munmap(p, n);
    }
    return 0;
}
