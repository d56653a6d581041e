/*
 * input.c -- input files, their split into tasks, and reading a task.
 *
 * A task is a byte range of one file that holds whole records only, so a map
 * task never needs bytes from another task.  Boundaries are fixed once, by
 * rank 0, and broadcast: for line input the boundary after a nominal split
 * point is found by reading forward to the next '\n' (one small pread per
 * task), so a line never straddles two tasks however long it is; for fixed
 * records the task size is rounded down to a whole number of records.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void mrf__plan_free(mrf__plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n_files; i++)
        mrf__free(plan->paths[i]);
    mrf__free(plan->paths);
    mrf__free(plan->sizes);
    mrf__free(plan->tasks);
    memset(plan, 0, sizeof *plan);
}

static int add_file(mrf__plan *plan, size_t *cap, const char *path, uint64_t size)
{
    if (plan->n_files == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        char **p = mrf__realloc(plan->paths, ncap * sizeof *p);
        if (!p)
            return MRF_ENOMEM;
        plan->paths = p;
        uint64_t *s = mrf__realloc(plan->sizes, ncap * sizeof *s);
        if (!s)
            return MRF_ENOMEM;
        plan->sizes = s;
        *cap = ncap;
    }
    if (!(plan->paths[plan->n_files] = mrf__strdup(path)))
        return MRF_ENOMEM;
    plan->sizes[plan->n_files++] = size;
    plan->total_bytes += size;
    return MRF_OK;
}

/* A regular file we can open for reading; anything else is refused by name. */
static int check_regular(const char *path, const struct stat *st, char *err, size_t errlen)
{
    if (!S_ISREG(st->st_mode)) {
        snprintf(err, errlen,
                 "input '%s' is not a regular file or directory (a FIFO or device?); "
                 "give files or directories",
                 path);
        return MRF_EINPUT;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "input '%s': %s; check its permissions", path, strerror(errno));
        return MRF_EINPUT;
    }
    close(fd);
    return MRF_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files in bytewise name order.  Names starting with
 * '.' or '_' (such as _SUCCESS) are skipped, as are subdirectories. */
static int add_dir(mrf__plan *plan, size_t *cap, const char *dir, char *err, size_t errlen)
{
    int rc = MRF_OK;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "input directory '%s': %s", dir, strerror(errno));
        return MRF_EINPUT;
    }
    char **names = NULL;
    size_t n = 0, ncap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || e->d_name[0] == '_')
            continue;
        if (n == ncap) {
            ncap = ncap ? ncap * 2 : 64;
            char **nn = mrf__realloc(names, ncap * sizeof *nn);
            if (!nn) {
                rc = MRF_ENOMEM;
                goto out_with_names;
            }
            names = nn;
        }
        if (!(names[n] = mrf__strdup(e->d_name))) {
            rc = MRF_ENOMEM;
            goto out_with_names;
        }
        n++;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == MRF_OK; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = mrf__malloc(plen);
        if (!path) {
            rc = MRF_ENOMEM;
            break;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) != 0) {
            snprintf(err, errlen, "input '%s': %s", path, strerror(errno));
            rc = MRF_EINPUT;
        } else if (S_ISDIR(st.st_mode)) {
            /* not recursive */
        } else if ((rc = check_regular(path, &st, err, errlen)) == MRF_OK) {
            rc = add_file(plan, cap, path, (uint64_t)st.st_size);
        }
        mrf__free(path);
    }
out_with_names:
    for (size_t i = 0; i < n; i++)
        mrf__free(names[i]);
    mrf__free(names);
    closedir(d);
    if (rc == MRF_ENOMEM)
        snprintf(err, errlen, "out of memory listing '%s'", dir);
    return rc;
}

int mrf__plan_files(char *const *inputs, size_t n, mrf__plan *plan, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    size_t cap = 0;
    int rc = MRF_OK;
    for (size_t i = 0; i < n && rc == MRF_OK; i++) {
        struct stat st;
        size_t split = 0;
        if (stat(inputs[i], &st) != 0 && (split = mrf__h5in_split(inputs[i])) > 0) {
            /* FILE:/PATH, a dataset (h5input.c); its size is the file's */
            char *file = strndup(inputs[i], split);
            rc = !file || stat(file, &st) != 0
                     ? MRF_ENOMEM
                     : add_file(plan, &cap, inputs[i], (uint64_t)st.st_size);
            free(file);
            if (rc)
                snprintf(err, errlen, "out of memory");
        } else if (stat(inputs[i], &st) != 0) {
            snprintf(err, errlen, "input '%s': %s; check the path%s", inputs[i], strerror(errno),
                     strstr(inputs[i], ":/") ? " (a dataset is FILE:/PATH, FILE an HDF5 file)"
                                             : "");
            rc = MRF_EINPUT;
        } else if (S_ISDIR(st.st_mode)) {
            rc = add_dir(plan, &cap, inputs[i], err, errlen);
        } else if ((rc = check_regular(inputs[i], &st, err, errlen)) == MRF_OK) {
            rc = add_file(plan, &cap, inputs[i], (uint64_t)st.st_size);
            if (rc)
                snprintf(err, errlen, "out of memory");
        }
    }
    if (rc)
        mrf__plan_free(plan);
    return rc;
}

int mrf__line_boundary(int fd, uint64_t size, uint64_t pos, uint64_t *out)
{
    if (pos == 0 || pos >= size) {
        *out = pos >= size ? size : 0;
        return MRF_OK;
    }
    char buf[65536];
    uint64_t at = pos - 1; /* a '\n' at pos-1 makes pos itself a boundary */
    while (at < size) {
        size_t want = (size_t)((size - at) < sizeof buf ? (size - at) : sizeof buf);
        ssize_t got = pread(fd, buf, want, (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return MRF_EIO;
        char *nl = memchr(buf, '\n', (size_t)got);
        if (nl) {
            *out = at + (uint64_t)(nl - buf) + 1;
            return MRF_OK;
        }
        at += (uint64_t)got;
    }
    *out = size;
    return MRF_OK;
}

static int add_task(mrf__plan *plan, size_t *cap, uint32_t file, uint64_t off, uint64_t len)
{
    if (plan->n_tasks == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        mrf__task *t = mrf__realloc(plan->tasks, ncap * sizeof *t);
        if (!t)
            return MRF_ENOMEM;
        plan->tasks = t;
        *cap = ncap;
    }
    plan->tasks[plan->n_tasks++] = (mrf__task){.file = file, .off = off, .len = len};
    return MRF_OK;
}

/* A compressed file's or a dataset's task (zinput.c, h5input.c). */
typedef struct zadd {
    mrf__plan *plan;
    size_t *cap;
    uint32_t codec;
} zadd;

static int add_coded_task(void *ctx, uint32_t file, uint64_t coff, uint64_t clen, uint64_t off,
                          uint64_t len)
{
    zadd *a = ctx;
    int rc = add_task(a->plan, a->cap, file, off, len);
    if (rc == MRF_OK) {
        mrf__task *t = &a->plan->tasks[a->plan->n_tasks - 1];
        t->codec = a->codec;
        t->coff = coff;
        t->clen = clen;
    }
    return rc;
}

/* The plan's bytes: a plain file's size, a compressed file's tasks' (what
 * its zstd frames declare; a gzip file's or unsized zstd file's compressed
 * size, nothing declaring more).  A file's tasks are consecutive, in file
 * order. */
static void count_bytes(mrf__plan *plan)
{
    plan->total_bytes = 0;
    for (size_t f = 0, k = 0; f < plan->n_files; f++) {
        uint64_t declared = 0;
        bool compressed = false;
        for (; k < plan->n_tasks && plan->tasks[k].file == f; k++)
            if (plan->tasks[k].codec != MRF__CODEC_NONE) {
                compressed = true;
                declared += plan->tasks[k].len;
            }
        plan->total_bytes += compressed ? declared : plan->sizes[f];
    }
}

/*
 * What a file's first bytes say it is, when it is a container mrflow does
 * not read (yet): its name for the message and the command that unpacks
 * it, or NULL.  Without this check `mrflow run wordcount --input x.zst`
 * counted the compressed bytes as words and exited 0.  The signatures are
 * long enough (4 to 10 bytes, gzip's 3 plus reserved flag bits clear) that
 * random binary records match one about once in 2^27 files or less.
 */
static const char *container(const unsigned char *b, size_t n, const char **how)
{
    static const unsigned char zstd[] = {0x28, 0xb5, 0x2f, 0xfd},
                               xz[] = {0xfd, '7', 'z', 'X', 'Z', 0},
                               hdf5[] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'},
                               lz4[] = {0x04, 0x22, 0x4d, 0x18},
                               bz2blk[] = {0x31, 0x41, 0x59, 0x26, 0x53, 0x59};
    if (n >= 4 && memcmp(b, zstd, 4) == 0)
        return *how = "zstd -d", "zstd-compressed";
    if (n >= 4 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8 && (b[3] & 0xe0) == 0)
        return *how = "gzip -d", "gzip-compressed";
    if (n >= 6 && memcmp(b, xz, 6) == 0)
        return *how = "xz -d", "xz-compressed";
    if (n >= 4 && memcmp(b, lz4, 4) == 0)
        return *how = "lz4 -d", "lz4-compressed";
    if (n >= 10 && b[0] == 'B' && b[1] == 'Z' && b[2] == 'h' && b[3] >= '1' && b[3] <= '9' &&
        memcmp(b + 4, bz2blk, 6) == 0)
        return *how = "bzip2 -d", "bzip2-compressed";
    if (n >= 8 && memcmp(b, hdf5, 8) == 0)
        return *how = "h5dump, or h5py, to export the dataset", "an HDF5 file";
    return NULL;
}

/* Refuses an input that is a compressed or HDF5 file (see container),
 * but for a zstd- or gzip-compressed line file (*codec set), which is
 * read. */
static int check_container(const char *path, mrf_input_kind kind, uint32_t *codec, char *err,
                           size_t errlen)
{
    unsigned char b[16];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "input '%s': %s", path, strerror(errno));
        return MRF_EINPUT;
    }
    ssize_t n = pread(fd, b, sizeof b, 0);
    close(fd);
    const char *how = NULL, *what = n > 0 ? container(b, (size_t)n, &how) : NULL;
    *codec = !what                         ? MRF__CODEC_NONE
             : strcmp(how, "zstd -d") == 0 ? MRF__CODEC_ZSTD
             : strcmp(how, "gzip -d") == 0 ? MRF__CODEC_GZIP
                                           : MRF__CODEC_NONE;
    if (!what || (*codec != MRF__CODEC_NONE && kind == MRF_INPUT_LINES))
        return MRF_OK;
    if (*codec != MRF__CODEC_NONE)
        snprintf(err, errlen,
                 "input '%s' is %s (its first bytes say so): mrflow decompresses line input "
                 "only, and this job reads fixed-size records; unpack it first (%s) and give "
                 "the result as --input",
                 path, what, how);
    else
        snprintf(err, errlen,
                 "input '%s' is %s (its first bytes say so): mrflow reads uncompressed, zstd- "
                 "or gzip-compressed lines and uncompressed records; unpack it first (%s), or "
                 "recompress it with zstd, and give the result as --input",
                 path, what, how);
    return MRF_EINPUT;
}

/* An HDF5 dataset's tasks (h5input.c); a dataset for a job of files, or a
 * file for a job of datasets, is refused naming the fix. */
static int plan_dataset(mrf__plan *plan, size_t *cap, size_t f, size_t split, mrf_input_kind kind,
                        uint64_t task_size, char *err, size_t errlen)
{
    const char *path = plan->paths[f];
    if (kind != MRF_INPUT_DATASET) {
        snprintf(err, errlen,
                 "input '%s' is an HDF5 dataset, and this job reads %s files; jobs of "
                 "MRF_INPUT_DATASET read datasets (mrflow jobs lists the built-in ones)",
                 path, kind == MRF_INPUT_LINES ? "line" : "record");
        return MRF_EINPUT;
    }
    if (!split) {
        snprintf(err, errlen,
                 "input '%s': this job reads HDF5 datasets: give --input FILE.h5:/PATH/TO/DATASET "
                 "(h5ls -r FILE.h5 lists them)",
                 path);
        return MRF_EINPUT;
    }
    zadd a = {plan, cap, MRF__CODEC_HDF5};
    size_t first = plan->n_tasks, rec = 0;
    int rc =
        mrf__h5in_plan(path, split, (uint32_t)f, task_size, add_coded_task, &a, &rec, err, errlen);
    if (rc == MRF_OK && first > 0 && plan->tasks[0].clen != rec) {
        snprintf(err, errlen,
                 "input '%s': its elements are %zu bytes, those of '%s' %llu; the datasets of "
                 "one job must have elements of one size",
                 path, rec, plan->paths[plan->tasks[0].file],
                 (unsigned long long)plan->tasks[0].clen);
        rc = MRF_EINPUT;
    }
    return rc;
}

int mrf__plan_tasks(mrf__plan *plan, mrf_input_kind kind, size_t rec_size, uint64_t task_size,
                    char *err, size_t errlen)
{
    size_t cap = 0;
    if (plan->n_files > UINT32_MAX) {
        snprintf(err, errlen, "too many input files (%zu)", plan->n_files);
        return MRF_EINPUT;
    }
    for (size_t f = 0; f < plan->n_files; f++) {
        uint64_t size = plan->sizes[f];
        if (size == 0)
            continue;
        size_t split = (int)kind == MRF__INPUT_KV ? 0 : mrf__h5in_split(plan->paths[f]);
        if (kind == MRF_INPUT_DATASET || split) {
            int rc = plan_dataset(plan, &cap, f, split, kind, task_size, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        if ((int)kind == MRF__INPUT_KV) { /* a stage's intermediate file: one task */
            if (add_task(plan, &cap, (uint32_t)f, 0, size))
                goto oom;
            continue;
        }
        uint32_t codec = MRF__CODEC_NONE;
        int rc = check_container(plan->paths[f], kind, &codec, err, errlen);
        if (rc)
            return rc;
        if (codec == MRF__CODEC_GZIP) { /* one task (zinput.c says why) */
            zadd a = {plan, &cap, MRF__CODEC_GZIP};
            if (add_coded_task(&a, (uint32_t)f, 0, size, 0, size))
                goto oom;
            continue;
        }
        if (codec == MRF__CODEC_ZSTD) {
            int fd = open(plan->paths[f], O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                snprintf(err, errlen, "input '%s': %s", plan->paths[f], strerror(errno));
                return MRF_EINPUT;
            }
            zadd a = {plan, &cap, MRF__CODEC_ZSTD};
            rc = mrf__zin_plan(fd, plan->paths[f], size, (uint32_t)f, task_size, add_coded_task, &a,
                               err, errlen);
            close(fd);
            if (rc)
                return rc;
            continue;
        }
        if (kind == MRF_INPUT_RECORDS) {
            /* a trailing partial record is no task's: it is set aside as a
             * bad record (jobmap.c) */
            size -= size % rec_size;
            uint64_t step = task_size / rec_size * rec_size;
            if (step == 0)
                step = rec_size;
            for (uint64_t off = 0; off < size; off += step)
                if (add_task(plan, &cap, (uint32_t)f, off, size - off < step ? size - off : step))
                    goto oom;
            continue;
        }
        int fd = open(plan->paths[f], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "input '%s': %s", plan->paths[f], strerror(errno));
            return MRF_EINPUT;
        }
        uint64_t pos = 0;
        while (pos < size) {
            uint64_t end = size;
            if (size - pos > task_size && mrf__line_boundary(fd, size, pos + task_size, &end)) {
                snprintf(err, errlen, "input '%s': read failed while splitting: %s", plan->paths[f],
                         strerror(errno ? errno : EIO));
                close(fd);
                return MRF_EIO;
            }
            if (add_task(plan, &cap, (uint32_t)f, pos, end - pos)) {
                close(fd);
                goto oom;
            }
            pos = end;
        }
        close(fd);
    }
    count_bytes(plan);
    return MRF_OK;
oom:
    snprintf(err, errlen, "out of memory planning tasks");
    return MRF_ENOMEM;
}

/* ---- serialisation: u64 n_files, {u64 size, u32 len, path}*, u64 n_tasks,
 * {u32 file, u32 codec, u64 off, len, coff, clen}* */

static void put(char **p, const void *v, size_t n)
{
    memcpy(*p, v, n);
    *p += n;
}

static bool take(const char **p, const char *end, void *v, size_t n)
{
    if ((size_t)(end - *p) < n)
        return false;
    memcpy(v, *p, n);
    *p += n;
    return true;
}

int mrf__plan_pack(const mrf__plan *plan, char **buf, size_t *len)
{
    size_t n = 16 + plan->n_tasks * 40;
    for (size_t i = 0; i < plan->n_files; i++)
        n += 12 + strlen(plan->paths[i]);
    char *b = mrf__malloc(n), *p = b;
    if (!b)
        return MRF_ENOMEM;
    uint64_t nf = plan->n_files, nt = plan->n_tasks;
    put(&p, &nf, 8);
    for (size_t i = 0; i < plan->n_files; i++) {
        uint32_t pl = (uint32_t)strlen(plan->paths[i]);
        put(&p, &plan->sizes[i], 8);
        put(&p, &pl, 4);
        put(&p, plan->paths[i], pl);
    }
    put(&p, &nt, 8);
    for (size_t i = 0; i < plan->n_tasks; i++) {
        const mrf__task *t = &plan->tasks[i];
        put(&p, &t->file, 4);
        put(&p, &t->codec, 4);
        put(&p, &t->off, 8);
        put(&p, &t->len, 8);
        put(&p, &t->coff, 8);
        put(&p, &t->clen, 8);
    }
    *buf = b;
    *len = (size_t)(p - b);
    return MRF_OK;
}

int mrf__plan_unpack(const char *buf, size_t len, mrf__plan *plan)
{
    const char *p = buf, *end = buf + len;
    uint64_t nf, nt;
    memset(plan, 0, sizeof *plan);
    if (!take(&p, end, &nf, 8) || nf > len)
        return MRF_EINVAL;
    plan->paths = mrf__calloc(nf ? nf : 1, sizeof *plan->paths);
    plan->sizes = mrf__calloc(nf ? nf : 1, sizeof *plan->sizes);
    if (!plan->paths || !plan->sizes)
        goto fail;
    for (uint64_t i = 0; i < nf; i++) {
        uint32_t pl;
        if (!take(&p, end, &plan->sizes[i], 8) || !take(&p, end, &pl, 4) || (size_t)(end - p) < pl)
            goto fail;
        if (!(plan->paths[i] = mrf__malloc(pl + 1u)))
            goto fail;
        plan->n_files = i + 1;
        take(&p, end, plan->paths[i], pl);
        plan->paths[i][pl] = '\0';
        plan->total_bytes += plan->sizes[i];
    }
    if (!take(&p, end, &nt, 8) || nt > len / 40 + 1)
        goto fail;
    plan->tasks = mrf__calloc(nt ? nt : 1, sizeof *plan->tasks);
    if (!plan->tasks)
        goto fail;
    for (uint64_t i = 0; i < nt; i++) {
        mrf__task *t = &plan->tasks[i];
        if (!take(&p, end, &t->file, 4) || !take(&p, end, &t->codec, 4) ||
            !take(&p, end, &t->off, 8) || !take(&p, end, &t->len, 8) ||
            !take(&p, end, &t->coff, 8) || !take(&p, end, &t->clen, 8) || t->file >= nf ||
            t->codec > MRF__CODEC_HDF5)
            goto fail;
    }
    plan->n_tasks = nt;
    count_bytes(plan);
    return MRF_OK;
fail:
    mrf__plan_free(plan);
    return MRF_EINVAL;
}

uint64_t mrf__count_lines(const char *p, size_t n)
{
    /* the lines a block of whole lines holds: its '\n's, and one more for a
     * last line without one */
    uint64_t c = 0;
    size_t i = 0;
#if defined(__SSE2__)
    /* per byte lane, subtract the compare's -1s (at most 255 rounds), then
     * sum the lanes: no popcount (a library call without -mpopcnt) */
    const __m128i nl = _mm_set1_epi8('\n');
    while (i + 16 <= n) {
        __m128i acc = _mm_setzero_si128();
        for (int r = 0; r < 255 && i + 16 <= n; r++, i += 16)
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + i)), nl));
        __m128i sums = _mm_sad_epu8(acc, _mm_setzero_si128());
        c += (uint64_t)_mm_cvtsi128_si32(sums) + (uint64_t)_mm_extract_epi16(sums, 4);
    }
#endif
    for (; i < n; i++)
        c += p[i] == '\n';
    return c + (n > 0 && p[n - 1] != '\n');
}

int mrf__input_open(const char *path, const char *doing, int *fd)
{
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        /* rank 0 opened every input to plan the tasks: gone since, or on a
         * disk of rank 0's node only */
        int e = errno;
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        return mrf__fail(MRF_EIO,
                         "input '%s': %s on host %s while %s (rank 0 could read it when the job "
                         "started: removed since, or not on a file system every node sees?)",
                         path, strerror(e), host, doing);
    }
    *fd = f;
    return MRF_OK;
}

int mrf__task_read(const mrf__plan *plan, const mrf__task *t, char **buf, size_t *cap)
{
    const char *path = plan->paths[t->file];
    if (t->len > *cap) {
        char *nb = mrf__big_resize(*buf, *cap, t->len);
        if (!nb)
            return mrf__fail(MRF_ENOMEM, "out of memory reading a %llu-byte task of '%s'",
                             (unsigned long long)t->len, path);
        *buf = nb;
        *cap = t->len;
    }
    int fd, rc = mrf__input_open(path, "reading a map task", &fd);
    if (rc)
        return rc;
    (void)posix_fadvise(fd, (off_t)t->off, (off_t)t->len, POSIX_FADV_SEQUENTIAL);
    uint64_t done = 0;
    while (done < t->len) {
        size_t want = (size_t)(t->len - done > (1u << 30) ? (1u << 30) : t->len - done);
        ssize_t got = pread(fd, *buf + done, want, (off_t)(t->off + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int e = errno;
            close(fd);
            return mrf__fail(MRF_EIO, "input '%s': read at offset %llu: %s", path,
                             (unsigned long long)(t->off + done), strerror(e));
        }
        if (got == 0) {
            close(fd);
            return mrf__fail(MRF_EIO,
                             "input '%s' shrank while the job ran: expected %llu bytes, "
                             "found end of file at %llu; do not modify inputs during a run",
                             path, (unsigned long long)plan->sizes[t->file],
                             (unsigned long long)(t->off + done));
        }
        done += (uint64_t)got;
    }
    close(fd);
    return MRF_OK;
}
