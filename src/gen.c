/*
 * gen.c -- deterministic data generators for `mrflow gen`.
 *
 * text: lines of 60-100 bytes of words drawn from a Zipf(1.0) law over 2^20
 *   distinct words (sampled in O(1) with Walker's alias method).  Word i is
 *   the bijective base-26 numeral of i + 18278 with letters permuted per
 *   position by the seed: unique by construction; the most frequent word has
 *   3 letters (numeral 18278 is the last 3-letter one), all others 4 or 5.
 * terasort: 100-byte records in the layout of gensort: 10 random key bytes,
 *   0x00 0x11, 32 hex digits of the row number, 0x88 0x99 0xAA 0xBB, 48 filler
 *   letters, 0xCC 0xDD 0xEE 0xFF.
 *   With --hot-key-share F, a fraction F of the rows take one key.
 * zipf: lines "k%08x\tV\n": key i (weight 1/i^S over --keys N) named by a
 *   32-bit bijection of i, V uniform in 1..999; for skew tests and benchmarks.
 * The same --seed and --size give the same bytes on every machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"

#define VOCAB (1u << 20)
#define GBUF (4u << 20)

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct gen_out {
    int fd;
    const char *path;
    char *buf;
    size_t len;
} gen_out;

static int out_flush(gen_out *o)
{
    size_t at = 0;
    while (at < o->len) {
        ssize_t k = write(o->fd, o->buf + at, o->len - at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            fprintf(stderr, "mrflow: error: writing '%s': %s\n", o->path, strerror(errno));
            return MRF_EIO;
        }
        at += (size_t)k;
    }
    o->len = 0;
    return MRF_OK;
}

static int out_put(gen_out *o, const void *p, size_t n)
{
    if (GBUF - o->len < n && out_flush(o))
        return MRF_EIO;
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return MRF_OK;
}

/* Writes one line of n bytes; past size, a line of 'x' to end exactly there. */
static int put_line(gen_out *o, char *line, size_t n, uint64_t *written, uint64_t size)
{
    if (*written + n > size) {
        n = (size_t)(size - *written);
        memset(line, 'x', n);
        line[n - 1] = '\n';
    }
    *written += n;
    return out_put(o, line, n);
}

/* Walker's alias tables for P(i) proportional to 1/(i+1)^skew. */
static int build_alias(uint32_t n, double skew, uint32_t **alias_out, uint64_t **thresh_out)
{
    double *p = mrf__malloc(n * sizeof *p);
    uint32_t *alias = mrf__malloc(n * sizeof *alias);
    uint64_t *thresh = mrf__malloc(n * sizeof *thresh);
    uint32_t *small = mrf__malloc(n * sizeof *small), *large = mrf__malloc(n * sizeof *large);
    if (!p || !alias || !thresh || !small || !large) {
        mrf__free(p);
        mrf__free(alias);
        mrf__free(thresh);
        mrf__free(small);
        mrf__free(large);
        return MRF_ENOMEM;
    }
    double h = 0;
    for (uint32_t i = 0; i < n; i++)
        h += 1.0 / pow(i + 1.0, skew);
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < n; i++) {
        p[i] = n / (pow(i + 1.0, skew) * h);
        alias[i] = i;
        if (p[i] < 1.0)
            small[ns++] = i;
        else
            large[nl++] = i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[nl - 1];
        alias[s] = l;
        p[l] -= 1.0 - p[s];
        if (p[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        double v = p[i] >= 1.0 ? 1.0 : p[i];
        thresh[i] = v >= 1.0 ? UINT64_MAX : (uint64_t)(v * 18446744073709551616.0);
    }
    mrf__free(p);
    mrf__free(small);
    mrf__free(large);
    *alias_out = alias;
    *thresh_out = thresh;
    return MRF_OK;
}

/* One draw from the alias tables of n entries. */
static uint32_t alias_draw(uint64_t *st, uint32_t n, const uint32_t *alias, const uint64_t *thresh)
{
    uint32_t i = (uint32_t)(((unsigned __int128)splitmix(st) * n) >> 64); /* the column */
    return splitmix(st) >= thresh[i] ? alias[i] : i;
}

static size_t word_of(uint32_t i, const unsigned char perm[5][26], char *w)
{
    uint64_t v = (uint64_t)i + 18278; /* past the 1- and 2-letter numerals */
    char tmp[16];
    size_t n = 0;
    while (v > 0) {
        v--;
        tmp[n++] = (char)(v % 26);
        v /= 26;
    }
    for (size_t k = 0; k < n; k++)
        w[k] = (char)('a' + perm[k % 5][(unsigned char)tmp[n - 1 - k]]);
    return n;
}

static int gen_text(gen_out *o, uint64_t size, uint64_t seed)
{
    uint32_t *alias;
    uint64_t *thresh;
    if (build_alias(VOCAB, 1.0, &alias, &thresh)) {
        fprintf(stderr, "mrflow: error: out of memory\n");
        return MRF_ENOMEM;
    }
    uint64_t st = seed;
    unsigned char perm[5][26];
    for (int k = 0; k < 5; k++) {
        for (int c = 0; c < 26; c++)
            perm[k][c] = (unsigned char)c;
        for (int c = 25; c > 0; c--) {
            int j = (int)(splitmix(&st) % (uint64_t)(c + 1));
            unsigned char t = perm[k][c];
            perm[k][c] = perm[k][j];
            perm[k][j] = t;
        }
    }
    /* word table: 8 bytes per word, length in the last byte */
    char(*words)[8] = mrf__malloc((size_t)VOCAB * 8);
    if (!words) {
        mrf__free(alias);
        mrf__free(thresh);
        fprintf(stderr, "mrflow: error: out of memory\n");
        return MRF_ENOMEM;
    }
    for (uint32_t i = 0; i < VOCAB; i++)
        words[i][7] = (char)word_of(i, perm, words[i]);
    int rc = MRF_OK;
    uint64_t written = 0;
    char line[160];
    while (rc == MRF_OK && written < size) {
        size_t target = 60 + (size_t)(splitmix(&st) % 41), n = 0;
        for (;;) {
            uint32_t i = alias_draw(&st, VOCAB, alias, thresh);
            size_t wl = (size_t)words[i][7];
            if (n && n + 1 + wl > target)
                break;
            if (n)
                line[n++] = ' ';
            memcpy(line + n, words[i], wl);
            n += wl;
        }
        line[n++] = '\n';
        rc = put_line(o, line, n, &written, size);
    }
    mrf__free(words);
    mrf__free(alias);
    mrf__free(thresh);
    return rc;
}

static int gen_terasort(gen_out *o, uint64_t size, uint64_t seed, double hot)
{
    static const char hex[] = "0123456789ABCDEF";
    uint64_t st = seed, n = size / 100, hst = seed ^ 0x5bd1e995u;
    /* --hot-key-share: that fraction of the rows share one key */
    uint64_t ha = splitmix(&hst), hb = splitmix(&hst);
    uint64_t hot_cut = hot >= 1.0 ? UINT64_MAX : (uint64_t)(hot * 18446744073709551616.0);
    int rc = MRF_OK;
    for (uint64_t row = 0; row < n && rc == MRF_OK; row++) {
        unsigned char r[100];
        uint64_t a = splitmix(&st), b = splitmix(&st);
        if (hot > 0 && splitmix(&hst) < hot_cut) {
            a = ha;
            b = hb;
        }
        memcpy(r, &a, 8);
        memcpy(r + 8, &b, 2);
        r[10] = 0x00;
        r[11] = 0x11;
        for (int k = 0; k < 32; k++)
            r[12 + k] = (unsigned char)(k < 16 ? '0' : hex[(row >> (4 * (31 - k))) & 0xf]);
        r[44] = 0x88;
        r[45] = 0x99;
        r[46] = 0xAA;
        r[47] = 0xBB;
        for (int k = 0; k < 48; k++)
            r[48 + k] = (unsigned char)('A' + (row + (uint64_t)k / 4) % 26);
        r[96] = 0xCC;
        r[97] = 0xDD;
        r[98] = 0xEE;
        r[99] = 0xFF;
        rc = out_put(o, r, 100);
    }
    return rc;
}

/* A bijection on 32-bit integers, so key i's name is unique and keys'
 * frequency order is not their name order. */
static uint32_t mix32(uint32_t x, uint32_t salt)
{
    x ^= salt;
    x *= 0x9e3779b1u;
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    return x;
}

static int gen_zipf(gen_out *o, uint64_t size, uint64_t seed, uint32_t keys, double skew)
{
    uint32_t *alias;
    uint64_t *thresh;
    if (build_alias(keys, skew, &alias, &thresh)) {
        fprintf(stderr, "mrflow: error: out of memory for %u keys\n", keys);
        return MRF_ENOMEM;
    }
    uint64_t st = seed;
    uint32_t salt = (uint32_t)splitmix(&st);
    uint64_t written = 0;
    int rc = MRF_OK;
    char line[64];
    while (rc == MRF_OK && written < size) {
        uint32_t i = alias_draw(&st, keys, alias, thresh);
        unsigned v = 1 + (unsigned)(splitmix(&st) % 999);
        size_t n = (size_t)snprintf(line, sizeof line, "k%08x\t%u\n", mix32(i, salt), v);
        rc = put_line(o, line, n, &written, size);
    }
    mrf__free(alias);
    mrf__free(thresh);
    return rc;
}

/* graph: M lines "SRC<TAB>DST\n" over vertices 0..N-1: sources drawn from a
 * Zipf law (weight 1/i^S, vertex names through a bijection so degree is not
 * the name order) and destinations from another, so out- and in-degrees
 * both follow power laws; some vertices have no out-edges (dangling). */
static int gen_graph(gen_out *o, uint64_t edges, uint64_t seed, uint32_t n, double skew)
{
    uint32_t *alias;
    uint64_t *thresh;
    if (build_alias(n, skew, &alias, &thresh)) {
        fprintf(stderr, "mrflow: error: out of memory for %u vertices\n", n);
        return MRF_ENOMEM;
    }
    uint64_t st = seed;
    uint32_t s1 = (uint32_t)splitmix(&st), s2 = (uint32_t)splitmix(&st);
    int rc = MRF_OK;
    char line[64];
    for (uint64_t e = 0; rc == MRF_OK && e < edges; e++) {
        /* mix32 is a bijection of 32-bit words; % n folds it onto the
         * vertices (close enough to a permutation for test data) */
        uint32_t a = mix32(alias_draw(&st, n, alias, thresh), s1) % n;
        uint32_t b = mix32(alias_draw(&st, n, alias, thresh), s2) % n;
        int k = snprintf(line, sizeof line, "%u\t%u\n", a, b);
        rc = out_put(o, line, (size_t)k);
    }
    mrf__free(alias);
    mrf__free(thresh);
    return rc;
}

static void gen_usage(FILE *f)
{
    fprintf(f,
            "Usage: mrflow gen text|terasort|zipf --size SIZE --output FILE [--seed N] "
            "[--overwrite]\n"
            "       mrflow gen graph --vertices N --edges M --output FILE [--seed N] [--skew S]\n"
            "\n"
            "  text      Zipf-distributed words (2^20 distinct) in lines of 60-100 bytes;\n"
            "            exactly SIZE bytes\n"
            "  terasort  100-byte records with random 10-byte keys (gensort layout);\n"
            "            SIZE is rounded down to a whole number of records\n"
            "  zipf      lines 'KEY<TAB>VALUE' (KEY 'k' and 8 hex digits, VALUE 1-999)\n"
            "            with keys drawn from a Zipf law: key i has weight 1/i^S;\n"
            "            exactly SIZE bytes (for `mrflow run kvcount`)\n"
            "  graph     M lines 'SRC<TAB>DST' (decimal vertex ids 0..N-1) whose out- and\n"
            "            in-degrees follow Zipf laws of exponent S (default 1.0); some\n"
            "            vertices have no out-edges (for `mrflow run pagerank`)\n"
            "  --size SIZE   bytes to write (K, M, G, T suffixes: powers of 1024)\n"
            "  --seed N      generator seed (default 1); same seed, same bytes\n"
            "  --keys N      zipf: distinct keys, 1 to 2^27 (default 1000000)\n"
            "  --skew S      zipf: the exponent S, 0 (uniform) to 5 (default 1.0)\n"
            "  --hot-key-share F\n"
            "                terasort: a fraction F (0 to 1) of the records share one\n"
            "                key (default 0)\n"
            "  --overwrite   replace FILE if it exists\n");
}

int mrf__cli_gen(int argc, char **argv)
{
    const char *kind = NULL, *output = NULL, *size_s = NULL;
    uint64_t size = 0, seed = 1, keys = 1000000, vertices = 0, edges = 0;
    double skew = 1.0, hot = 0;
    bool overwrite = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            gen_usage(stdout);
            return MRF_EXIT_OK;
        } else if (!strcmp(a, "--size") && i + 1 < argc) {
            size_s = argv[++i];
        } else if (!strcmp(a, "--output") && i + 1 < argc) {
            output = argv[++i];
        } else if (!strcmp(a, "--overwrite")) {
            overwrite = true;
        } else if (!strcmp(a, "--seed") && i + 1 < argc) {
            char *end;
            errno = 0;
            seed = strtoull(argv[++i], &end, 10);
            if (errno || *end || !*argv[i] || argv[i][0] == '-') {
                fprintf(stderr, "mrflow: error: --seed '%s' is not a non-negative integer\n",
                        argv[i]);
                return MRF_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--keys") && i + 1 < argc) {
            char *end;
            errno = 0;
            keys = strtoull(argv[++i], &end, 10);
            if (errno || *end || !*argv[i] || argv[i][0] == '-' || keys == 0 || keys > (1u << 27)) {
                fprintf(stderr, "mrflow: error: --keys '%s' is not a number from 1 to 2^27\n",
                        argv[i]);
                return MRF_EXIT_USAGE;
            }
        } else if ((!strcmp(a, "--vertices") || !strcmp(a, "--edges")) && i + 1 < argc) {
            char *end;
            errno = 0;
            uint64_t v = strtoull(argv[++i], &end, 10);
            bool is_v = !strcmp(a, "--vertices");
            if (errno || *end || !*argv[i] || argv[i][0] == '-' || v == 0 ||
                v > (is_v ? (1ull << 27) : (1ull << 40))) {
                fprintf(stderr, "mrflow: error: %s '%s' is not a number from 1 to %s\n", a, argv[i],
                        is_v ? "2^27" : "2^40");
                return MRF_EXIT_USAGE;
            }
            *(is_v ? &vertices : &edges) = v;
        } else if ((!strcmp(a, "--skew") || !strcmp(a, "--hot-key-share")) && i + 1 < argc) {
            char *end;
            errno = 0;
            double v = strtod(argv[++i], &end);
            bool is_skew = !strcmp(a, "--skew");
            if (errno || *end || !*argv[i] || !(v >= 0) || v > (is_skew ? 5.0 : 1.0)) {
                fprintf(stderr, "mrflow: error: %s '%s' is not a number from 0 to %s\n", a, argv[i],
                        is_skew ? "5" : "1");
                return MRF_EXIT_USAGE;
            }
            *(is_skew ? &skew : &hot) = v;
        } else if (a[0] != '-' && !kind) {
            kind = a;
        } else {
            fprintf(stderr,
                    "mrflow: error: gen: unexpected argument '%s' (see mrflow gen --help)\n", a);
            return MRF_EXIT_USAGE;
        }
    }
    bool graph = kind && !strcmp(kind, "graph");
    if (!kind ||
        (strcmp(kind, "text") && strcmp(kind, "terasort") && strcmp(kind, "zipf") && !graph)) {
        fprintf(stderr, "mrflow: error: gen needs a kind: text, terasort, zipf or graph (see "
                        "mrflow gen --help)\n");
        return MRF_EXIT_USAGE;
    }
    if (graph && (!vertices || !edges)) {
        fprintf(stderr, "mrflow: error: gen graph needs --vertices N and --edges M\n");
        return MRF_EXIT_USAGE;
    }
    if (!graph && (!size_s || mrf__parse_size(size_s, &size))) {
        fprintf(stderr, "mrflow: error: gen: --size '%s' is not a size such as 512M or 1G\n",
                size_s ? size_s : "");
        return MRF_EXIT_USAGE;
    }
    if (!output) {
        fprintf(stderr, "mrflow: error: gen: no --output FILE given\n");
        return MRF_EXIT_USAGE;
    }
    if (!strcmp(kind, "terasort") && size % 100)
        fprintf(stderr, "mrflow: note: terasort size rounded down to %llu bytes (%llu records)\n",
                (unsigned long long)(size / 100 * 100), (unsigned long long)(size / 100));
    /* write a hidden temporary beside FILE and rename it over, so a reader
     * never sees a half-written file under the name */
    size_t n = strlen(output) + 32;
    char *tmp = mrf__malloc(n);
    gen_out o = {.path = output, .buf = mrf__malloc(GBUF)};
    if (!tmp || !o.buf) {
        mrf__free(tmp);
        mrf__free(o.buf);
        fprintf(stderr, "mrflow: error: out of memory\n");
        return MRF_EXIT_FAILED;
    }
    snprintf(tmp, n, "%s.tmp-%ld", output, (long)getpid());
    struct stat st;
    int rc = MRF_OK;
    if (!overwrite && lstat(output, &st) == 0) {
        fprintf(stderr, "mrflow: error: '%s' exists; choose another --output or add --overwrite\n",
                output);
        rc = MRF_EEXIST;
    } else if ((o.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666)) < 0) {
        fprintf(stderr, "mrflow: error: cannot create '%s': %s\n", tmp, strerror(errno));
        rc = MRF_EUSAGE;
    } else {
        rc = graph                       ? gen_graph(&o, edges, seed, (uint32_t)vertices, skew)
             : !strcmp(kind, "text")     ? gen_text(&o, size, seed)
             : !strcmp(kind, "terasort") ? gen_terasort(&o, size, seed, hot)
                                         : gen_zipf(&o, size, seed, (uint32_t)keys, skew);
        if (rc == MRF_OK)
            rc = out_flush(&o);
        if (close(o.fd) != 0 && rc == MRF_OK)
            rc = MRF_EIO;
        if (rc == MRF_OK && rename(tmp, output) != 0) {
            fprintf(stderr, "mrflow: error: renaming '%s' to '%s': %s\n", tmp, output,
                    strerror(errno));
            rc = MRF_EIO;
        }
        if (rc)
            unlink(tmp);
    }
    mrf__free(tmp);
    mrf__free(o.buf);
    return mrf__exit_status(rc);
}
