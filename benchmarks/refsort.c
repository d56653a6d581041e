/*
 * refsort.c -- the single-process yardstick for the terasort benchmark, as
 * fast as one core goes: read a file of 100-byte records, sort them by their
 * 10-byte keys, write them out and fsync.  Usage: refsort IN OUT
 *
 *  - the input is read with read(2) into one buffer, and every big buffer
 *    asks for transparent huge pages (first touch and random access both
 *    several times faster where the kernel has them);
 *  - the sort works on a 16-byte index {first 8 key bytes, big-endian, as a
 *    number; record number}: one most-significant-digit pass on the top 16
 *    bits scatters it into 65536 buckets (a few hundred entries each for
 *    random keys), and each bucket, now in cache, is sorted by an insertion
 *    sort for small ones and by an LSD radix over its remaining 48 bits for
 *    large ones; equal 8-byte prefixes are finished by comparing whole keys
 *    (bytes 8-9) and then the rest of the record, so the order is that of
 *    `sort` on the raw records;
 *  - the output is gathered in index order with prefetching 16 records
 *    ahead, written in 4 MiB writes, then fsynced (mrflow commits its output
 *    the same way).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC 100
#define OUTBUF (4u << 20)

typedef struct {
    uint64_t key;
    uint64_t idx;
} ent;

static const unsigned char *g;

static void *big(size_t n)
{
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "refsort: out of memory\n");
        exit(1);
    }
    madvise(p, n ? n : 1, MADV_HUGEPAGE);
    return p;
}

/* a before b: the 8-byte prefix, then the whole record */
static inline int less(const ent *a, const ent *b)
{
    if (a->key != b->key)
        return a->key < b->key;
    return memcmp(g + a->idx * REC, g + b->idx * REC, REC) < 0;
}

static void insertion(ent *e, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        ent x = e[i];
        size_t j = i;
        while (j > 0 && less(&x, &e[j - 1])) {
            e[j] = e[j - 1];
            j--;
        }
        e[j] = x;
    }
}

/* LSD radix of e[0..n) on key bits [0, 48) (the top 16 are equal), 8 bits a
 * pass, through tmp; then ties of the whole prefix by insertion. */
static void lsd48(ent *e, ent *tmp, size_t n)
{
    ent *a = e, *b = tmp;
    for (int d = 0; d < 6; d++) {
        size_t h[257] = {0};
        for (size_t i = 0; i < n; i++)
            h[((a[i].key >> (8 * d)) & 0xff) + 1]++;
        for (int v = 0; v < 256; v++)
            h[v + 1] += h[v];
        for (size_t i = 0; i < n; i++)
            b[h[(a[i].key >> (8 * d)) & 0xff]++] = a[i];
        ent *x = a;
        a = b;
        b = x;
    }
    /* six passes: the result is back in e */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && e[j].key == e[i].key)
            j++;
        if (j - i > 1)
            insertion(e + i, j - i);
        i = j;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: refsort IN OUT\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size % REC) {
        fprintf(stderr, "refsort: cannot use '%s'\n", argv[1]);
        return 2;
    }
    size_t n = (size_t)st.st_size / REC, size = (size_t)st.st_size;
    unsigned char *buf = big(size);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (size_t at = 0; at < size;) {
        ssize_t k = read(fd, buf + at, size - at > (1u << 30) ? (1u << 30) : size - at);
        if (k <= 0) {
            perror("refsort: read");
            return 1;
        }
        at += (size_t)k;
    }
    close(fd);
    g = buf;

    /* index and the top-16-bit histogram in one pass */
    ent *e = big(n * sizeof *e), *t = big(n * sizeof *t);
    size_t *start = calloc(65536 + 1, sizeof *start);
    if (!start)
        return 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t k;
        memcpy(&k, buf + i * REC, 8);
        k = __builtin_bswap64(k);
        e[i] = (ent){k, i};
        start[(k >> 48) + 1]++;
    }
    for (size_t v = 0; v < 65536; v++)
        start[v + 1] += start[v];
    size_t *at = malloc(65536 * sizeof *at);
    if (!at)
        return 1;
    memcpy(at, start, 65536 * sizeof *at);
    for (size_t i = 0; i < n; i++)
        t[at[e[i].key >> 48]++] = e[i];
    for (size_t v = 0; v < 65536; v++) {
        size_t lo = start[v], cnt = start[v + 1] - lo;
        if (cnt <= 48)
            insertion(t + lo, cnt);
        else
            lsd48(t + lo, e + lo, cnt);
    }

    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    unsigned char *ob = big(OUTBUF);
    size_t ol = 0;
    if (out < 0) {
        perror(argv[2]);
        return 1;
    }
    for (size_t i = 0; i <= n; i++) {
        if (ol + REC > OUTBUF || i == n) {
            if (write(out, ob, ol) != (ssize_t)ol) {
                perror("refsort: write");
                return 1;
            }
            ol = 0;
        }
        if (i < n) {
            if (i + 16 < n) {
                const unsigned char *p = buf + t[i + 16].idx * REC;
                __builtin_prefetch(p);
                __builtin_prefetch(p + 64);
            }
            memcpy(ob + ol, buf + t[i].idx * REC, REC);
            ol += REC;
        }
    }
    if (fsync(out) != 0 || close(out) != 0) {
        perror("refsort: fsync");
        return 1;
    }
    return 0;
}
