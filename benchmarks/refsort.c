/*
 * refsort.c -- the single-process reference for the terasort benchmark:
 * read a file of 100-byte records, sort them by their 10-byte keys in memory
 * (LSD radix on the first 8 key bytes over a 16-byte index, ties finished by
 * the whole record), write them out.  Usage: refsort IN OUT
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC 100

typedef struct {
    uint64_t key;
    uint64_t idx;
} ent;

static const unsigned char *g;

static int cmp_rec(const void *a, const void *b)
{
    return memcmp(g + ((const ent *)a)->idx * REC, g + ((const ent *)b)->idx * REC, REC);
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
    unsigned char *buf = malloc(size ? size : 1);
    for (size_t at = 0; at < size;) {
        ssize_t k = read(fd, buf + at, size - at);
        if (k <= 0) {
            perror("refsort: read");
            return 1;
        }
        at += (size_t)k;
    }
    close(fd);
    ent *e = malloc((n ? n : 1) * sizeof *e), *t = malloc((n ? n : 1) * sizeof *t);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = 0;
        for (int b = 0; b < 8; b++)
            k = k << 8 | buf[i * REC + b];
        e[i] = (ent){k, i};
    }
    for (int d = 0; d < 8; d++) {
        size_t h[257] = {0};
        for (size_t i = 0; i < n; i++)
            h[((e[i].key >> (8 * d)) & 0xff) + 1]++;
        for (int v = 0; v < 256; v++)
            h[v + 1] += h[v];
        for (size_t i = 0; i < n; i++)
            t[h[(e[i].key >> (8 * d)) & 0xff]++] = e[i];
        ent *x = e;
        e = t;
        t = x;
    }
    g = buf;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && e[j].key == e[i].key)
            j++;
        if (j - i > 1)
            qsort(e + i, j - i, sizeof *e, cmp_rec);
        i = j;
    }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    unsigned char *ob = malloc(1 << 22);
    size_t ol = 0;
    for (size_t i = 0; i <= n; i++) {
        if (ol + REC > (1 << 22) || i == n) {
            if (write(out, ob, ol) != (ssize_t)ol) {
                perror("refsort: write");
                return 1;
            }
            ol = 0;
        }
        if (i < n) {
            memcpy(ob + ol, buf + e[i].idx * REC, REC);
            ol += REC;
        }
    }
    if (fsync(out) != 0 || close(out) != 0) {
        perror("refsort: fsync");
        return 1;
    }
    return 0;
}
