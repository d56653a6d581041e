/*
 * validate.c -- `mrflow validate terasort DIR [--input PATH...]`.
 *
 * Reads the parts of DIR in name order and checks that every 10-byte key is
 * >= the one before it, across part boundaries too.  The multiset of records
 * is summarised by an order-independent checksum: the count and the sum
 * (mod 2^64) of XXH3 of each 100-byte record; computed the same way over the
 * input files, equal sums mean the same records with overwhelming odds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "cli.h"
#include "internal.h"

#define REC 100
#define KEY 10
#define VBUF (40000u * REC)

typedef struct vsum {
    uint64_t records, checksum, disorder;
    unsigned char last[KEY];
    bool have_last;
} vsum;

static int scan_file(const char *path, vsum *v, bool check_order, char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "mrflow: error: '%s': %s\n", path, strerror(errno));
        return MRF_EINPUT;
    }
    uint64_t off = 0;
    for (;;) {
        size_t have = 0;
        while (have < VBUF) {
            ssize_t k = read(fd, buf + have, VBUF - have);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                fprintf(stderr, "mrflow: error: reading '%s': %s\n", path, strerror(errno));
                close(fd);
                return MRF_EIO;
            }
            if (k == 0)
                break;
            have += (size_t)k;
        }
        if (have % REC) {
            fprintf(stderr,
                    "mrflow: error: '%s' is not a whole number of 100-byte records (%zu "
                    "trailing bytes)\n",
                    path, have % REC);
            close(fd);
            return MRF_EINPUT;
        }
        for (size_t at = 0; at < have; at += REC) {
            const unsigned char *r = (const unsigned char *)buf + at;
            v->records++;
            v->checksum += XXH3_64bits(r, REC);
            if (check_order) {
                if (v->have_last && memcmp(v->last, r, KEY) > 0) {
                    if (v->disorder++ == 0)
                        fprintf(stderr, "mrflow: '%s': record at byte %llu is out of order\n", path,
                                (unsigned long long)(off + at));
                }
                memcpy(v->last, r, KEY);
                v->have_last = true;
            }
        }
        off += have;
        if (have < VBUF)
            break;
    }
    close(fd);
    return MRF_OK;
}

/* The parts are the directory's files in name order, as `run` reads a
 * directory (names starting with '.' or '_', such as _SUCCESS, skipped). */
static int scan_dir_parts(const char *dir, vsum *v, char *buf)
{
    mrf__plan plan;
    char err[MRF_ERRLEN];
    char *inputs[] = {(char *)dir};
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "mrflow: error: '%s' is not an output directory\n", dir);
        return MRF_EINPUT;
    }
    int rc = mrf__plan_files(inputs, 1, &plan, err, sizeof err);
    if (rc) {
        fprintf(stderr, "mrflow: error: %s\n", err);
        return rc;
    }
    if (plan.n_files == 0) {
        fprintf(stderr, "mrflow: error: '%s' holds no output parts\n", dir);
        rc = MRF_EINPUT;
    }
    for (size_t i = 0; i < plan.n_files && rc == MRF_OK; i++)
        rc = scan_file(plan.paths[i], v, true, buf);
    mrf__plan_free(&plan);
    return rc;
}

int mrf__cli_validate(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("Usage: mrflow validate terasort DIR [--input PATH...]\n"
               "\n"
               "Checks that the records of DIR/part-* (in name order) are sorted by their\n"
               "10-byte keys and prints the record count and an order-independent checksum.\n"
               "With --input, also checksums the input files (or directories) and checks\n"
               "that output and input hold the same multiset of records.\n"
               "Exit status: 0 valid, 1 invalid, 2 usage or unreadable files.\n");
        return MRF_EXIT_OK;
    }
    if (argc < 3 || strcmp(argv[1], "terasort") != 0 || argv[2][0] == '-') {
        fprintf(stderr, "mrflow: error: usage: mrflow validate terasort DIR [--input PATH...]\n");
        return MRF_EXIT_USAGE;
    }
    const char *dir = argv[2];
    int first_input = -1;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--input") && i + 1 < argc && first_input < 0) {
            first_input = i + 1;
            break;
        }
        fprintf(stderr, "mrflow: error: validate: unexpected argument '%s'\n", argv[i]);
        return MRF_EXIT_USAGE;
    }
    char *buf = mrf__malloc(VBUF);
    if (!buf) {
        fprintf(stderr, "mrflow: error: out of memory\n");
        return MRF_EXIT_FAILED;
    }
    vsum out = {0}, in = {0};
    int rc = scan_dir_parts(dir, &out, buf);
    if (rc == MRF_OK)
        printf("output: %llu records, checksum %016llx, %s\n", (unsigned long long)out.records,
               (unsigned long long)out.checksum, out.disorder ? "NOT sorted" : "sorted");
    if (rc == MRF_OK && first_input > 0) {
        mrf__plan plan;
        char err[MRF_ERRLEN];
        rc = mrf__plan_files(argv + first_input, (size_t)(argc - first_input), &plan, err,
                             sizeof err);
        if (rc)
            fprintf(stderr, "mrflow: error: %s\n", err);
        for (size_t i = 0; rc == MRF_OK && i < plan.n_files; i++)
            rc = scan_file(plan.paths[i], &in, false, buf);
        if (rc == MRF_OK) {
            printf("input:  %llu records, checksum %016llx\n", (unsigned long long)in.records,
                   (unsigned long long)in.checksum);
            mrf__plan_free(&plan);
        }
    }
    mrf__free(buf);
    if (rc)
        return mrf__exit_status(rc) == MRF_EXIT_OK ? MRF_EXIT_FAILED : mrf__exit_status(rc);
    bool match = first_input < 0 || (in.records == out.records && in.checksum == out.checksum);
    if (first_input > 0)
        printf("%s\n", match ? "input and output hold the same records"
                             : "MISMATCH: output records differ from the input");
    return (out.disorder == 0 && match) ? MRF_EXIT_OK : MRF_EXIT_FAILED;
}
