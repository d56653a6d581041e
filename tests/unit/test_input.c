/* test_input.c -- input files, task splitting at every boundary, plans. */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <zlib.h>

#include "internal.h"
#include "unit.h"

static char dir[256];

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    fclose(f);
}

static uint64_t ref_boundary(const char *d, uint64_t size, uint64_t pos)
{
    if (pos == 0)
        return 0;
    for (uint64_t q = pos; q < size; q++)
        if (d[q - 1] == '\n')
            return q;
    return size;
}

static void check_content(const char *data, size_t size)
{
    char path[300];
    snprintf(path, sizeof path, "%s/f", dir);
    write_file(path, data, size);
    int fd = open(path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    for (uint64_t pos = 0; pos <= size + 1; pos++) {
        uint64_t got = 12345;
        CU_ASSERT_EQUAL(mrf__line_boundary(fd, size, pos, &got), MRF_OK);
        CU_ASSERT_EQUAL(got, pos > size ? size : ref_boundary(data, size, pos));
    }
    close(fd);
    for (uint64_t ts = 1; ts <= size + 2; ts++) {
        char *inputs[] = {path};
        mrf__plan plan;
        char err[MRF_ERRLEN];
        CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
        CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, ts, err, sizeof err),
                              MRF_OK);
        uint64_t at = 0;
        for (size_t i = 0; i < plan.n_tasks; i++) {
            const mrf__task *t = &plan.tasks[i];
            CU_ASSERT_EQUAL(t->off, at); /* contiguous */
            CU_ASSERT(t->len > 0);       /* never empty */
            uint64_t end = t->off + t->len;
            CU_ASSERT(end == size || data[end - 1] == '\n'); /* ends on a line end */
            CU_ASSERT(t->len >= ts || end == size || data[end - 1] == '\n');
            at = end;
        }
        CU_ASSERT_EQUAL(at, size); /* covers the file */
        mrf__plan_free(&plan);
    }
    unlink(path);
}

static void test_line_splits(void)
{
    const char *cases[] = {"a\nbb\n\nccc", "\n\n\n", "abc", "x\n", "a\r\nb\r\n", ""};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_content(cases[i], strlen(cases[i]));
    /* NUL bytes are data, not terminators */
    check_content("a\0b\nc\0\n\0", 9);
}

static void test_long_line(void)
{
    /* one line longer than the 64 KiB scan chunk, between short ones */
    size_t n = 200000;
    char *d = malloc(n);
    memset(d, 'q', n);
    d[3] = '\n';
    d[n - 10] = '\n';
    char path[300];
    snprintf(path, sizeof path, "%s/long", dir);
    write_file(path, d, n);
    char *inputs[] = {path};
    mrf__plan plan;
    char err[MRF_ERRLEN];
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, 1000, err, sizeof err),
                          MRF_OK);
    CU_ASSERT_EQUAL_FATAL(plan.n_tasks, 2);
    CU_ASSERT_EQUAL(plan.tasks[0].len, n - 9);
    CU_ASSERT_EQUAL(plan.tasks[1].off, n - 9);
    /* the task reads back exactly the bytes of the file */
    char *buf = NULL;
    size_t cap = 0;
    CU_ASSERT_EQUAL_FATAL(mrf__task_read(&plan, &plan.tasks[0], &buf, &cap), MRF_OK);
    CU_ASSERT_EQUAL(memcmp(buf, d, n - 9), 0);
    /* a file that shrank after planning is an error, not a short task */
    CU_ASSERT_EQUAL(truncate(path, 1000), 0);
    CU_ASSERT_EQUAL(mrf__task_read(&plan, &plan.tasks[0], &buf, &cap), MRF_EIO);
    mrf__big_free(buf, cap);
    mrf__plan_free(&plan);
    unlink(path);
    free(d);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

/* A compressed or HDF5 file is refused by its first bytes (the message names
 * the file and the kind); near misses are read as the text they are. */
static void test_containers(void)
{
    static const struct {
        const char *bytes;
        size_t n;
        const char *what; /* NULL: accepted */
    } cases[] = {
        {"\x28\xb5\x2f\xfd\x04\x58rest", 10, "zstd-compressed"},
        {"\x1f\x8b\x08\x00\x00\x00\x00\x00", 8, "gzip-compressed"},
        {"\xfd"
         "7zXZ\0\0\x04",
         8, "xz-compressed"},
        {"BZh91AY&SY\x01\x02", 12, "bzip2-compressed"},
        {"\x04\x22\x4d\x18\x64\x40", 6, "lz4-compressed"},
        {"\x89HDF\r\n\x1a\n\0\0", 10, "an HDF5 file"},
        {"\x1f\x8b\x08\xe0 reserved flag bits set\n", 26, NULL},
        {"BZh9 is how the text begins\n", 28, NULL},
        {"\x28\xb5\x2f plain\n", 10, NULL},
        {"hello world\n", 12, NULL},
    };
    char path[300], err[MRF_ERRLEN];
    snprintf(path, sizeof path, "%s/container.bin", dir);
    char *inputs[] = {path};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].bytes, cases[i].n);
        for (int kind = 0; kind < 2; kind++) {
            mrf__plan plan;
            err[0] = 0;
            CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
            int rc = mrf__plan_tasks(&plan, kind ? MRF_INPUT_RECORDS : MRF_INPUT_LINES, 2, 1 << 20,
                                     err, sizeof err);
            if (cases[i].what && kind == 0 && strcmp(cases[i].what, "gzip-compressed") == 0) {
                /* gzip lines are read: one task, damage found when read */
                CU_ASSERT_EQUAL(rc, MRF_OK);
                CU_ASSERT_EQUAL(plan.n_tasks, 1);
                CU_ASSERT(plan.n_tasks == 1 && plan.tasks[0].codec == MRF__CODEC_GZIP);
            } else if (cases[i].what && kind == 0 &&
                       strcmp(cases[i].what, "zstd-compressed") == 0) {
                /* zstd lines are read: these bytes are no whole frame */
                CU_ASSERT_EQUAL(rc, MRF_EINPUT);
                CU_ASSERT_PTR_NOT_NULL(strstr(err, "damaged or truncated zstd file"));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
            } else if (cases[i].what) {
                CU_ASSERT_EQUAL(rc, MRF_EINPUT);
                CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].what));
                CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
            } else {
                CU_ASSERT_EQUAL(rc, MRF_OK);
            }
            mrf__plan_free(&plan);
        }
    }
}

/* Writes text as zstd frames cut at the offsets in cuts (ascending, inside
 * the text); sized frames unless 'unsized' (as zstd writing a pipe). */
static size_t write_frames(const char *path, const char *text, size_t n, const size_t *cuts,
                           size_t ncuts, bool unsized)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    size_t cap = ZSTD_compressBound(n) + 64, total = 0;
    char *out = malloc(cap);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, !unsized);
    for (size_t k = 0, from = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        size_t got = ZSTD_compress2(cc, out, cap, text + from, to - from);
        CU_ASSERT_FATAL(!ZSTD_isError(got));
        CU_ASSERT_EQUAL(fwrite(out, 1, got, f), got);
        total += got;
        from = to;
    }
    static const unsigned char skip[] = {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4};
    CU_ASSERT_EQUAL(fwrite(skip, 1, sizeof skip, f), sizeof skip); /* a trailing index */
    ZSTD_freeCCtx(cc);
    free(out);
    fclose(f);
    return total + sizeof skip;
}

/* Every task's lines, read in pieces, in plan order: the text once, whole. */
static void check_zstd(const char *text, size_t n, const size_t *cuts, size_t ncuts,
                       uint64_t task_size, bool unsized, size_t min_tasks)
{
    char path[300], err[MRF_ERRLEN];
    snprintf(path, sizeof path, "%s/z.zst", dir);
    size_t fsize = write_frames(path, text, n, cuts, ncuts, unsized);
    char *inputs[] = {path};
    mrf__plan plan;
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    int rc = mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, task_size, err, sizeof err);
    if (rc)
        fprintf(stderr, "plan: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, MRF_OK);
    CU_ASSERT(plan.n_tasks >= min_tasks);
    CU_ASSERT(unsized ? plan.n_tasks == 1 : plan.total_bytes == n);
    char *got = malloc(n + 1), *zb = NULL;
    size_t at = 0, zcap = 0;
    for (size_t k = 0; k < plan.n_tasks; k++) {
        const mrf__task *t = &plan.tasks[k];
        CU_ASSERT_EQUAL(t->codec, MRF__CODEC_ZSTD);
        mrf__zin *z = NULL;
        CU_ASSERT_EQUAL_FATAL(
            mrf__zin_open(open(path, O_RDONLY), path, fsize, t, 1, &zb, &zcap, &z), MRF_OK);
        for (;;) {
            const char *d;
            size_t len;
            uint64_t off;
            CU_ASSERT_EQUAL_FATAL(mrf__zin_next(z, &d, &len, &off), MRF_OK);
            if (len == 0)
                break;
            CU_ASSERT_EQUAL(off, at); /* in order, no gap, no overlap */
            CU_ASSERT_FATAL(at + len <= n);
            memcpy(got + at, d, len);
            at += len;
        }
        mrf__zin_close(z);
    }
    if (at != n)
        fprintf(stderr, "zstd: task size %llu%s: %zu of %zu bytes read\n",
                (unsigned long long)task_size, unsized ? ", unsized" : "", at, n);
    CU_ASSERT_EQUAL(at, n);
    CU_ASSERT(at != n || memcmp(got, text, n) == 0);
    mrf__big_free(zb, zcap);
    free(got);
    mrf__plan_free(&plan);
}

static void test_zstd(void)
{
    /* 600 KB of lines of 1 to 300 bytes, frames cut anywhere */
    size_t n = 600000;
    char *text = malloc(n);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        text[i] = x % 97 == 0 ? '\n' : (char)('a' + x % 26);
    }
    size_t cuts[40], nc = 0;
    for (size_t c = 7919; c < n && nc < 40; c += 14000 + (c * 31) % 9000)
        cuts[nc++] = c;
    for (uint64_t ts = 1; ts <= (1u << 20); ts *= 4) /* a frame a task ... one task */
        check_zstd(text, n, cuts, nc, ts, false, ts == 1 ? nc + 1 : 1);
    /* frames cut just after a '\n', and just before one */
    size_t at_nl[8], before_nl[8], k = 0;
    for (size_t i = 1000; i < n && k < 8; i++)
        if (text[i] == '\n' && text[i - 1] != '\n' && i - (k ? at_nl[k - 1] : 0) > 20000) {
            at_nl[k] = i + 1;
            before_nl[k++] = i;
        }
    check_zstd(text, n, at_nl, k, 1, false, k + 1);
    check_zstd(text, n, before_nl, k, 1, false, k + 1);
    /* no final newline; a frame of one long line wider than its task */
    text[n - 1] = 'z';
    check_zstd(text, n, cuts, nc, 1, false, nc + 1);
    memset(text + 100000, 'y', 200000);
    check_zstd(text, n, cuts, nc, 1, false, nc + 1);
    /* frames that do not declare their sizes: one task */
    check_zstd(text, n, cuts, nc, 1, true, 1);
    /* truncated or damaged: refused when planning, or failing when read */
    char path[300], err[MRF_ERRLEN];
    snprintf(path, sizeof path, "%s/z.zst", dir);
    size_t fsize = write_frames(path, text, n, cuts, nc, false);
    CU_ASSERT_EQUAL_FATAL(truncate(path, (off_t)fsize - 1000), 0);
    char *inputs[] = {path};
    mrf__plan plan;
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL(mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, 1, err, sizeof err), MRF_EINPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    mrf__plan_free(&plan);
    fsize = write_frames(path, text, n, cuts, nc, false);
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, 3000, SEEK_SET); /* inside the first frame's data */
    int c = fgetc(f);
    fseek(f, 3000, SEEK_SET);
    fputc(c ^ 0x55, f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, 1, err, sizeof err), MRF_OK);
    mrf__zin *z = NULL;
    char *zb = NULL;
    size_t zcap = 0;
    CU_ASSERT_EQUAL_FATAL(
        mrf__zin_open(open(path, O_RDONLY), path, fsize, &plan.tasks[0], 1, &zb, &zcap, &z),
        MRF_OK);
    const char *d;
    size_t len;
    uint64_t off;
    int rc;
    while ((rc = mrf__zin_next(z, &d, &len, &off)) == MRF_OK && len)
        ;
    CU_ASSERT_EQUAL(rc, MRF_EIO);
    mrf__zin_close(z);
    mrf__big_free(zb, zcap);
    mrf__plan_free(&plan);
    free(text);
}

/* Writes text as gzip members cut at the offsets in cuts (gzip of
 * concatenated files); returns the file's size. */
static size_t write_members(const char *path, const char *text, size_t n, const size_t *cuts,
                            size_t ncuts)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    size_t cap = 2 * n + 1024, total = 0;
    unsigned char *out = malloc(cap);
    for (size_t k = 0, from = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        z_stream zs = {0};
        CU_ASSERT_FATAL(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) ==
                        Z_OK);
        zs.next_in = (Bytef *)(text + from);
        zs.avail_in = (uInt)(to - from);
        zs.next_out = out;
        zs.avail_out = (uInt)cap;
        CU_ASSERT_FATAL(deflate(&zs, Z_FINISH) == Z_STREAM_END);
        CU_ASSERT_EQUAL(fwrite(out, 1, zs.total_out, f), zs.total_out);
        total += zs.total_out;
        deflateEnd(&zs);
        from = to;
    }
    free(out);
    fclose(f);
    return total;
}

/* Reads the file's one task in pieces of about piece bytes: the return
 * code of the last mrf__zin_next, the bytes in *got (n at most). */
static int read_gzip(const char *path, size_t fsize, char *got, size_t n, size_t piece, size_t *at)
{
    char err[MRF_ERRLEN];
    char *inputs[] = {(char *)path};
    mrf__plan plan;
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, 1, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(plan.n_tasks, 1); /* a gzip file is one task */
    CU_ASSERT_EQUAL(plan.tasks[0].codec, MRF__CODEC_GZIP);
    CU_ASSERT_EQUAL(plan.total_bytes, fsize);
    mrf__zin *z = NULL;
    char *zb = NULL;
    size_t zcap = 0;
    CU_ASSERT_EQUAL_FATAL(
        mrf__zin_open(open(path, O_RDONLY), path, fsize, &plan.tasks[0], piece, &zb, &zcap, &z),
        MRF_OK);
    int rc;
    const char *d;
    size_t len;
    uint64_t off;
    *at = 0;
    while ((rc = mrf__zin_next(z, &d, &len, &off)) == MRF_OK && len) {
        CU_ASSERT_EQUAL(off, *at); /* in order, no gap, no overlap */
        CU_ASSERT_FATAL(*at + len <= n);
        CU_ASSERT(len == n - *at || d[len - 1] == '\n'); /* whole lines */
        memcpy(got + *at, d, len);
        *at += len;
    }
    mrf__zin_close(z);
    mrf__big_free(zb, zcap);
    mrf__plan_free(&plan);
    return rc;
}

static void test_gzip(void)
{
    size_t n = 900000;
    char *text = malloc(n), *got = malloc(n);
    uint64_t x = 2463534242ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        text[i] = x % 89 == 0 ? '\n' : (char)('a' + x % 26);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/t.gz", dir);
    size_t cuts[3] = {1, 300007, 300008}, at;
    for (size_t nc = 0; nc <= 3; nc++) /* one member; members cut anywhere */
        for (size_t piece = 1; piece <= (4u << 20); piece *= 64) {
            size_t fsize = write_members(path, text, n, cuts, nc);
            CU_ASSERT_EQUAL(read_gzip(path, fsize, got, n, piece, &at), MRF_OK);
            CU_ASSERT_EQUAL(at, n);
            CU_ASSERT(at != n || memcmp(got, text, n) == 0);
        }
    /* truncated, a byte changed, bytes after the last member: MRF_EIO */
    size_t fsize = write_members(path, text, n, cuts, 3);
    CU_ASSERT_EQUAL_FATAL(truncate(path, (off_t)fsize - 100), 0);
    CU_ASSERT_EQUAL(read_gzip(path, fsize - 100, got, n, 1, &at), MRF_EIO);
    fsize = write_members(path, text, n, cuts, 3);
    FILE *f = fopen(path, "r+b");
    CU_ASSERT_FATAL(f != NULL);
    fseek(f, (long)fsize / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, (long)fsize / 2, SEEK_SET);
    fputc(c ^ 0x55, f);
    fclose(f);
    CU_ASSERT_EQUAL(read_gzip(path, fsize, got, n, 1, &at), MRF_EIO);
    fsize = write_members(path, text, n, cuts, 0);
    f = fopen(path, "ab");
    CU_ASSERT_FATAL(f != NULL);
    fputs("trailing\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(read_gzip(path, fsize + 9, got, n, 1, &at), MRF_EIO);
    free(text);
    free(got);
}

/* HDF5 datasets: FILE:/PATH found when a folder's name holds ":/" too;
 * tasks are whole chunks; a task's rows, and every stride-th, read back;
 * the type described for mrf_record_field. */
static void test_datasets(void)
{
    char sub[300], path[400], input[420], err[MRF_ERRLEN];
    snprintf(sub, sizeof sub, "%s/x:", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);
    snprintf(path, sizeof path, "%s/f.h5", sub);
    enum { N = 1000, CHUNK = 64 };
    int32_t v[N];
    for (int i = 0; i < N; i++)
        v[i] = i * 3 - 7;
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dim = N, chunk = CHUNK;
    hid_t sp = H5Screate_simple(1, &dim, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_deflate(dcpl, 1);
    hid_t d = H5Dcreate2(f, "/d", H5T_STD_I32BE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0 && H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Fclose(f);
    snprintf(input, sizeof input, "%s:/d", path);
    CU_ASSERT_EQUAL(mrf__h5in_split(input), strlen(path));
    CU_ASSERT_EQUAL(mrf__h5in_split(path), 0); /* a file, no dataset */
    char *inputs[] = {input};
    mrf__plan plan;
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    /* 100 bytes a task: 25 rows, rounded up to a whole chunk */
    CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_DATASET, 0, 100, err, sizeof err),
                          MRF_OK);
    CU_ASSERT_EQUAL(plan.n_tasks, (N + CHUNK - 1) / CHUNK);
    CU_ASSERT_EQUAL(plan.total_bytes, N * 4);
    char *buf = NULL;
    size_t cap = 0;
    mrf_dtype *type = NULL;
    uint64_t at = 0;
    for (size_t k = 0; k < plan.n_tasks; k++) {
        const mrf__task *t = &plan.tasks[k];
        CU_ASSERT_EQUAL(t->codec, MRF__CODEC_HDF5);
        CU_ASSERT_EQUAL(t->clen, 4);
        CU_ASSERT_EQUAL(t->off, at);
        CU_ASSERT_EQUAL(t->off % (CHUNK * 4), 0);
        CU_ASSERT_EQUAL_FATAL(mrf__h5in_read(input, t, 1, 0, &buf, &cap, &type), MRF_OK);
        CU_ASSERT(memcmp(buf, (char *)v + t->off, t->len) == 0); /* native order */
        at += t->len;
    }
    CU_ASSERT_EQUAL(at, N * 4);
    /* every 7th row of the first task, 9 of them */
    CU_ASSERT_EQUAL_FATAL(mrf__h5in_read(input, &plan.tasks[0], 7, 9, &buf, &cap, &type), MRF_OK);
    for (int i = 0; i < 9; i++)
        CU_ASSERT_EQUAL(((int32_t *)buf)[i], v[7 * i]);
    mrf_record rec = {.data = buf, .len = 4, .type = type};
    mrf_field fl;
    int64_t x = 0;
    CU_ASSERT_EQUAL(mrf_record_field(&rec, NULL, &fl), MRF_OK);
    CU_ASSERT(fl.cls == MRF_FIELD_INT && fl.size == 4 && fl.offset == 0);
    CU_ASSERT_EQUAL(mrf_record_field(&rec, "nope", &fl), MRF_EINPUT);
    CU_ASSERT_EQUAL(mrf_record_columns(&rec), 1);
    rec.data = buf + 4; /* v[7] */
    CU_ASSERT_EQUAL(mrf_field_int64(&rec, &fl, &x), MRF_OK);
    CU_ASSERT_EQUAL(x, v[7]);
    CU_ASSERT_DOUBLE_EQUAL(mrf_field_double(&rec, &fl), v[7], 0);
    mrf__dtype_free(type);
    mrf__big_free(buf, cap);
    mrf__plan_free(&plan);
    /* the same file for a line job, and a records job: refused */
    for (int kind = 0; kind < 2; kind++) {
        CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
        CU_ASSERT_EQUAL(mrf__plan_tasks(&plan, kind ? MRF_INPUT_RECORDS : MRF_INPUT_LINES, 4, 100,
                                        err, sizeof err),
                        MRF_EINPUT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "HDF5 dataset"));
        mrf__plan_free(&plan);
    }
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static void test_records(void)
{
    char path[300], err[MRF_ERRLEN];
    snprintf(path, sizeof path, "%s/rec", dir);
    char data[1000];
    memset(data, 'r', sizeof data);
    write_file(path, data, 1000);
    char *inputs[] = {path};
    mrf__plan plan;
    for (uint64_t ts = 1; ts < 1200; ts += 37) {
        CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
        CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_RECORDS, 100, ts, err, sizeof err),
                              MRF_OK);
        uint64_t at = 0;
        for (size_t i = 0; i < plan.n_tasks; i++) {
            CU_ASSERT_EQUAL(plan.tasks[i].off, at);
            CU_ASSERT_EQUAL(plan.tasks[i].len % 100, 0);
            at += plan.tasks[i].len;
        }
        CU_ASSERT_EQUAL(at, 1000);
        mrf__plan_free(&plan);
    }
    write_file(path, data, 950); /* trailing partial record: in no task */
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_RECORDS, 100, 64, err, sizeof err),
                          MRF_OK);
    uint64_t covered = 0;
    for (size_t i = 0; i < plan.n_tasks; i++)
        covered += plan.tasks[i].len;
    CU_ASSERT_EQUAL(covered, 900);
    CU_ASSERT_EQUAL(plan.sizes[0], 950);
    mrf__plan_free(&plan);
    unlink(path);
}

static void test_files(void)
{
    char p[600], sub[520], err[MRF_ERRLEN];
    const char *names[] = {"b", "a", "_SUCCESS", ".hidden", "c10", "c2"};
    snprintf(sub, sizeof sub, "%s/d", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0755), 0);
    for (size_t i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", sub, names[i]);
        write_file(p, "x\n", 2);
    }
    snprintf(p, sizeof p, "%s/d/nested", dir);
    CU_ASSERT_EQUAL(mkdir(p, 0755), 0);
    char *inputs[] = {sub};
    mrf__plan plan;
    CU_ASSERT_EQUAL_FATAL(mrf__plan_files(inputs, 1, &plan, err, sizeof err), MRF_OK);
    CU_ASSERT_EQUAL_FATAL(plan.n_files, 4);
    const char *want[] = {"/a", "/b", "/c10", "/c2"}; /* bytewise name order */
    for (size_t i = 0; i < 4; i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(plan.paths[i], want[i]));
    CU_ASSERT_EQUAL(plan.total_bytes, 8);

    /* pack / unpack round trip, and every truncation is refused */
    CU_ASSERT_EQUAL_FATAL(mrf__plan_tasks(&plan, MRF_INPUT_LINES, 0, 1, err, sizeof err), MRF_OK);
    char *buf;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(mrf__plan_pack(&plan, &buf, &len), MRF_OK);
    mrf__plan back;
    CU_ASSERT_EQUAL_FATAL(mrf__plan_unpack(buf, len, &back), MRF_OK);
    CU_ASSERT_EQUAL(back.n_files, plan.n_files);
    CU_ASSERT_EQUAL(back.n_tasks, plan.n_tasks);
    CU_ASSERT_STRING_EQUAL(back.paths[3], plan.paths[3]);
    CU_ASSERT_EQUAL(back.tasks[3].off, plan.tasks[3].off);
    mrf__plan_free(&back);
    for (size_t cut = 0; cut < len; cut++) {
        CU_ASSERT_EQUAL(mrf__plan_unpack(buf, cut, &back), MRF_EINVAL);
    }
    mrf__free(buf);
    mrf__plan_free(&plan);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    char *bad[] = {missing};
    CU_ASSERT_EQUAL(mrf__plan_files(bad, 1, &plan, err, sizeof err), MRF_EINPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, missing));
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    char *bad2[] = {fifo};
    CU_ASSERT_EQUAL(mrf__plan_files(bad2, 1, &plan, err, sizeof err), MRF_EINPUT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "FIFO"));
    unlink(fifo);
    CU_ASSERT_EQUAL(mrf__mem_in_use(), 0);
}

static CU_TestInfo tests[] = {
    {"line_splits", test_line_splits}, {"long_line", test_long_line}, {"records", test_records},
    {"containers", test_containers},   {"zstd", test_zstd},           {"gzip", test_gzip},
    {"datasets", test_datasets},       {"files", test_files},         CU_TEST_INFO_NULL};

int main(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mrflow-unit-XXXXXX", t ? t : "/tmp");
    if (!mkdtemp(dir))
        return 99;
    int rc = unit_main("input", tests);
    (void)mrf__remove_tree(dir);
    return rc;
}
