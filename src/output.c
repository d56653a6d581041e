/*
 * output.c -- output parts and the atomic commit of the output directory.
 *
 * Every rank writes its part into a hidden temporary sibling of the output
 * directory, .NAME.mrflow-tmp-RUNID, so that readers never see a partial
 * result under NAME.  When every rank has closed its part (fsynced), rank 0
 * writes _SUCCESS (the run id) in the temporary directory, then renames it to
 * NAME (with RENAME_NOREPLACE, so an output created meanwhile is never
 * clobbered).  On failure rank 0 removes the temporary directory.  Every
 * rank must see the folder rank 0 made (sharedfs.c), or the job stops there.
 *
 * A job stopped in its reduce keeps the folder for the resume to continue
 * (jobckpt.c), marked with STOPPED_MARK.  Any later run that commits the
 * same output removes the marked folders it finds beside it: a stopped run
 * that a --no-resume run (or one with another --checkpoint-dir) superseded
 * leaves nothing behind.  A folder without the mark may be a running job's
 * and is never touched.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define WBUF (1u << 20)
#define STOPPED_MARK ".mrflow-stopped"

struct mrf__writer {
    int fd;
    char *path;
    int fmt; /* mrf_output_format, MRF__OUTPUT_H5STAGE or MRF__OUTPUT_KV */
    const char *dir;
    int part;
    unsigned seq;       /* MRF__OUTPUT_KV: the file being written */
    uint64_t file_size; /* bytes in it (flushed or buffered) */
    char *buf;
    size_t len;
    uint64_t written;
    uint64_t started, synced; /* written back: asked for up to started, done up to synced */
    uint64_t recs, kbytes, vbytes;
    double *t_write, *t_fsync; /* mrf__writer_clock, or NULL */
};

/* dir and base of path, without trailing slashes */
static int split_path(const char *path, char **dir, char **base)
{
    char *a = mrf__strdup(path), *b = mrf__strdup(path);
    if (!a || !b) {
        mrf__free(a);
        mrf__free(b);
        return MRF_ENOMEM;
    }
    size_t n = strlen(b);
    while (n > 1 && b[n - 1] == '/')
        b[--n] = '\0';
    while (n > 1 && a[n - 1] == '/')
        a[--n] = '\0';
    char *d = mrf__strdup(dirname(a)), *s = mrf__strdup(basename(b));
    mrf__free(a);
    mrf__free(b);
    if (!d || !s) {
        mrf__free(d);
        mrf__free(s);
        return MRF_ENOMEM;
    }
    *dir = d;
    *base = s;
    return MRF_OK;
}

static char *sibling(const char *output, const char *tag, const char *run_id)
{
    char *dir, *base;
    if (split_path(output, &dir, &base))
        return NULL;
    size_t n = strlen(dir) + strlen(base) + strlen(tag) + strlen(run_id) + 16;
    char *p = mrf__malloc(n);
    if (p)
        snprintf(p, n, "%s/.%s.mrflow-%s-%s", dir, base, tag, run_id);
    mrf__free(dir);
    mrf__free(base);
    return p;
}

int mrf__output_begin(MPI_Comm comm, const char *output, bool overwrite, const char *run_id,
                      char **tmpdir)
{
    int rank, rc = MRF_OK;
    MPI_Comm_rank(comm, &rank);
    char *tmp = NULL;
    uint64_t len = 0;
    if (rank == 0) {
        struct stat st;
        if (strcmp(output, "/") == 0 || strcmp(output, ".") == 0 || strcmp(output, "..") == 0) {
            rc = mrf__fail(MRF_EUSAGE, "--output '%s' cannot be replaced; name a new directory",
                           output);
        } else if (lstat(output, &st) == 0 && !overwrite) {
            rc = mrf__fail(MRF_EEXIST,
                           "output '%s' already exists; choose another --output or add "
                           "--overwrite",
                           output);
        } else if (lstat(output, &st) == 0 && !S_ISDIR(st.st_mode)) {
            rc = mrf__fail(MRF_EEXIST,
                           "output '%s' exists and is not a directory; --overwrite replaces "
                           "directories only",
                           output);
        } else if (!(tmp = sibling(output, "tmp", run_id))) {
            rc = mrf__fail(MRF_ENOMEM, "out of memory");
        } else if (mkdir(tmp, 0777) != 0) {
            int e = errno;
            char *dir, *base;
            if (split_path(output, &dir, &base) == MRF_OK) {
                rc = mrf__fail(e == ENOENT ? MRF_EUSAGE : MRF_EIO,
                               "cannot create output next to '%s': %s: %s; check that the "
                               "directory '%s' exists and is writable",
                               output, tmp, strerror(e), dir);
                mrf__free(dir);
                mrf__free(base);
            } else {
                rc = MRF_ENOMEM;
            }
            mrf__free(tmp);
            tmp = NULL;
        }
        if (tmp)
            len = strlen(tmp) + 1;
    }
    int64_t hdr[2] = {rc, (int64_t)len};
    if (MPI_Bcast(hdr, 2, MPI_INT64_T, 0, comm) != MPI_SUCCESS)
        return MRF_EMPI;
    if (hdr[0] != MRF_OK)
        return (int)hdr[0];
    if (rank != 0 && !(tmp = mrf__malloc((size_t)hdr[1])))
        return mrf__fail(MRF_ENOMEM, "out of memory"); /* MPI_Bcast below would hang: abort */
    if (MPI_Bcast(tmp, (int)hdr[1], MPI_CHAR, 0, comm) != MPI_SUCCESS) {
        mrf__free(tmp);
        return MRF_EMPI;
    }
    /* a node-local --output would leave each node's parts on its own disk */
    if ((rc = mrf__shared_dir(comm, tmp, run_id, "--output", output))) {
        if (rank == 0)
            rmdir(tmp);
        mrf__free(tmp);
        return rc;
    }
    *tmpdir = tmp;
    return MRF_OK;
}

/* The path of part-RANK-SEQ (KV) or of the one file of the part. */
static void part_path(char *buf, size_t n, const char *dir, int part, int fmt, unsigned seq)
{
    if (fmt == MRF__OUTPUT_KV)
        snprintf(buf, n, "%s/part-%05d-%06u", dir, part, seq);
    else
        snprintf(buf, n, fmt == MRF__OUTPUT_H5STAGE ? "%s/.stage-%05d" : "%s/part-%05d", dir, part);
}

int mrf__writer_open(const char *dir, int part, int fmt, mrf__writer **w)
{
    mrf__writer *x = mrf__calloc(1, sizeof *x);
    if (!x)
        return mrf__fail(MRF_ENOMEM, "out of memory");
    size_t n = strlen(dir) + 32;
    x->path = mrf__malloc(n);
    x->buf = mrf__malloc(WBUF);
    if (!x->path || !x->buf) {
        mrf__free(x->path);
        mrf__free(x->buf);
        mrf__free(x);
        return mrf__fail(MRF_ENOMEM, "out of memory");
    }
    part_path(x->path, n, dir, part, fmt, 0);
    x->fmt = fmt;
    x->dir = dir; /* the caller's, kept until close */
    x->part = part;
    x->fd = open(x->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (x->fd < 0) {
        int rc = mrf__fail(MRF_EIO, "cannot create output part '%s': %s", x->path, strerror(errno));
        mrf__free(x->path);
        mrf__free(x->buf);
        mrf__free(x);
        return rc;
    }
    *w = x;
    return MRF_OK;
}

void mrf__writer_clock(mrf__writer *w, double *write_s, double *fsync_s)
{
    w->t_write = write_s;
    w->t_fsync = fsync_s;
}

/* fsync(2), timed */
static int sync_fd(mrf__writer *w)
{
    double t = w->t_fsync ? MPI_Wtime() : 0;
    int r = fsync(w->fd);
    if (w->t_fsync)
        *w->t_fsync += MPI_Wtime() - t;
    return r;
}

static int write_all(mrf__writer *w, const char *p, size_t n)
{
    double t = w->t_write && n ? MPI_Wtime() : 0;
    int rc = MRF_OK;
    while (n) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = mrf__fail(MRF_EIO, "writing output part '%s': %s", w->path, strerror(errno));
            break;
        }
        p += k;
        n -= (size_t)k;
        w->written += (uint64_t)k;
    }
    if (t > 0)
        *w->t_write += MPI_Wtime() - t;
    return rc;
}

/* A part is written back as it grows, a window at a time: each window
 * full is handed to the disk, and the one before it waited for, so a part
 * never holds more than two windows the disk does not have.  A reduce a
 * signal stops then fsyncs at most that much to keep its part (not all it
 * wrote: the page cache could hold gigabytes), and the commit's fsync
 * finds little left.  KV files are small and fsynced whole. */
#define SYNC_WINDOW (16ull << 20)

static void write_back(mrf__writer *w)
{
    if (w->fmt == MRF__OUTPUT_KV || w->written < w->started + SYNC_WINDOW)
        return;
    double t = w->t_fsync ? MPI_Wtime() : 0;
    uint64_t end = w->written / SYNC_WINDOW * SYNC_WINDOW;
    (void)sync_file_range(w->fd, (off_t)w->started, (off_t)(end - w->started),
                          SYNC_FILE_RANGE_WRITE);
    if (w->started > w->synced)
        (void)sync_file_range(w->fd, (off_t)w->synced, (off_t)(w->started - w->synced),
                              SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                  SYNC_FILE_RANGE_WAIT_AFTER);
    w->synced = w->started;
    w->started = end;
    if (w->t_fsync)
        *w->t_fsync += MPI_Wtime() - t;
}

static int flush(mrf__writer *w)
{
    int rc = write_all(w, w->buf, w->len);
    w->len = 0;
    if (rc == MRF_OK)
        write_back(w);
    return rc;
}

static int put_bytes(mrf__writer *w, const void *p, size_t n)
{
    if (n == 0)
        return MRF_OK;
    if (WBUF - w->len < n) {
        int rc = flush(w);
        if (rc)
            return rc;
        if (n > WBUF)
            return write_all(w, p, n);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return MRF_OK;
}

/* MRF__OUTPUT_KV: the next file part-RANK-SEQ, the last one fsynced and
 * closed (each is a map task of the next stage, so their size is bounded) */
static int rotate(mrf__writer *w)
{
    int rc = flush(w);
    if (rc == MRF_OK && sync_fd(w) != 0)
        rc = mrf__fail(MRF_EIO, "fsync of '%s': %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && rc == MRF_OK)
        rc = mrf__fail(MRF_EIO, "closing '%s': %s", w->path, strerror(errno));
    w->fd = -1;
    if (rc)
        return rc;
    snprintf(w->path, strlen(w->dir) + 32, "%s/part-%05d-%06u", w->dir, w->part, ++w->seq);
    w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (w->fd < 0)
        return mrf__fail(MRF_EIO, "cannot create '%s': %s", w->path, strerror(errno));
    w->file_size = 0;
    return MRF_OK;
}

/* MRF__KV_FILE, or MRFLOW_KV_FILE=SIZE (a testing switch: many small files) */
static uint64_t kv_file_size(void)
{
    static uint64_t v;
    if (!v) {
        const char *e = getenv("MRFLOW_KV_FILE");
        uint64_t x;
        v = e && mrf__parse_size(e, &x) == MRF_OK && x > 0 ? x : MRF__KV_FILE;
    }
    return v;
}

int mrf__writer_put(mrf__writer *w, const void *k, size_t kl, const void *v, size_t vl)
{
    int rc;
    w->recs++;
    w->kbytes += kl;
    w->vbytes += vl;
    if (w->fmt == MRF__OUTPUT_KV && w->file_size && w->file_size + 8 + kl + vl > kv_file_size() &&
        (rc = rotate(w)))
        return rc;
    w->file_size += 8 + kl + vl;
    if (w->fmt == MRF__OUTPUT_H5STAGE ||
        w->fmt == MRF__OUTPUT_KV) { /* u32 klen, u32 vlen, key, value */
        char hdr[8];
        mrf__wr32(hdr, (uint32_t)kl);
        mrf__wr32(hdr + 4, (uint32_t)vl);
        if ((rc = put_bytes(w, hdr, 8)) || (rc = put_bytes(w, k, kl)))
            return rc;
        return put_bytes(w, v, vl);
    }
    if (w->fmt == MRF_OUTPUT_RAW && WBUF - w->len >= kl + vl) {
        char *o = w->buf + w->len;
        if (kl)
            memcpy(o, k, kl);
        if (vl)
            memcpy(o + kl, v, vl);
        w->len += kl + vl;
        return MRF_OK;
    }
    if (w->fmt == MRF_OUTPUT_TEXT && WBUF - w->len >= kl + vl + 2) {
        char *o = w->buf + w->len;
        if (kl)
            memcpy(o, k, kl);
        o[kl] = '\t';
        if (vl)
            memcpy(o + kl + 1, v, vl);
        o[kl + 1 + vl] = '\n';
        w->len += kl + vl + 2;
        return MRF_OK;
    }
    if ((rc = put_bytes(w, k, kl)))
        return rc;
    if (w->fmt == MRF_OUTPUT_TEXT && (rc = put_bytes(w, "\t", 1)))
        return rc;
    if ((rc = put_bytes(w, v, vl)))
        return rc;
    if (w->fmt == MRF_OUTPUT_TEXT)
        rc = put_bytes(w, "\n", 1);
    return rc;
}

static void writer_free(mrf__writer *w)
{
    mrf__free(w->path);
    mrf__free(w->buf);
    mrf__free(w);
}

void mrf__writer_counts(const mrf__writer *w, uint64_t *recs, uint64_t *kbytes, uint64_t *vbytes)
{
    *recs = w->recs;
    *kbytes = w->kbytes;
    *vbytes = w->vbytes;
}

int mrf__writer_close(mrf__writer *w, uint64_t *bytes)
{
    int rc = flush(w);
    if (rc == MRF_OK && sync_fd(w) != 0)
        rc = mrf__fail(MRF_EIO, "fsync of output part '%s': %s", w->path, strerror(errno));
    if (close(w->fd) != 0 && rc == MRF_OK)
        rc = mrf__fail(MRF_EIO, "closing output part '%s': %s", w->path, strerror(errno));
    if (rc == MRF_OK && bytes)
        *bytes = w->written;
    writer_free(w);
    return rc;
}

int mrf__writer_close_at(mrf__writer *w, mrf__writer_pos *pos)
{
    *pos = (mrf__writer_pos){.written = w->written + w->len,
                             .seq = w->seq,
                             .file_size = w->file_size,
                             .recs = w->recs,
                             .kbytes = w->kbytes,
                             .vbytes = w->vbytes};
    return mrf__writer_close(w, NULL);
}

int mrf__writer_reopen(const char *dir, int part, int fmt, const mrf__writer_pos *pos,
                       mrf__writer **w)
{
    mrf__writer *x = mrf__calloc(1, sizeof *x);
    size_t n = strlen(dir) + 32;
    if (!x || !(x->path = mrf__malloc(n)) || !(x->buf = mrf__malloc(WBUF))) {
        if (x)
            writer_free(x);
        return mrf__fail(MRF_ENOMEM, "out of memory");
    }
    uint64_t size = fmt == MRF__OUTPUT_KV ? pos->file_size : pos->written;
    if (pos->seq > UINT32_MAX || size > pos->written) {
        writer_free(x);
        return mrf__fail(MRF_EIO, "output part %d: its recorded position is damaged", part);
    }
    for (unsigned q = (unsigned)pos->seq + 1; fmt == MRF__OUTPUT_KV; q++) { /* written after */
        part_path(x->path, n, dir, part, fmt, q);
        if (unlink(x->path) != 0)
            break;
    }
    part_path(x->path, n, dir, part, fmt, (unsigned)pos->seq);
    struct stat st = {0};
    x->fd = open(x->path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
    if (x->fd < 0 || fstat(x->fd, &st) != 0 || (uint64_t)st.st_size < size ||
        ftruncate(x->fd, (off_t)size) != 0 || lseek(x->fd, 0, SEEK_END) != (off_t)size) {
        int rc = x->fd < 0 || (uint64_t)st.st_size >= size
                     ? mrf__fail(MRF_EIO, "cannot continue output part '%s': %s", x->path,
                                 strerror(errno))
                     : mrf__fail(MRF_EIO,
                                 "cannot continue output part '%s': it has %lld bytes, the "
                                 "checkpoint recorded %llu",
                                 x->path, (long long)st.st_size, (unsigned long long)size);
        if (x->fd >= 0)
            close(x->fd);
        writer_free(x);
        return rc;
    }
    x->fmt = fmt;
    x->dir = dir;
    x->part = part;
    x->seq = (unsigned)pos->seq;
    x->file_size = pos->file_size;
    x->written = x->started = x->synced = pos->written; /* (fsynced at the stop) */
    x->recs = pos->recs;
    x->kbytes = pos->kbytes;
    x->vbytes = pos->vbytes;
    *w = x;
    return MRF_OK;
}

void mrf__writer_abort(mrf__writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    unlink(w->path); /* (earlier intermediate files go with the job's directory) */
    writer_free(w);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 ? 0 : -1;
}

int mrf__remove_tree(const char *path)
{
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? MRF_OK : MRF_EIO;
}

void mrf__output_discard(const char *tmpdir)
{
    if (tmpdir)
        (void)mrf__remove_tree(tmpdir);
}

static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

void mrf__output_mark_stopped(const char *tmpdir, const char *ckpt_dir)
{
    char path[PATH_MAX];
    int fd = -1;
    bool ok = (size_t)snprintf(path, sizeof path, "%s/" STOPPED_MARK, tmpdir) < sizeof path &&
              (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666)) >= 0 &&
              dprintf(fd, "the parts of a job stopped in its reduce; its checkpoint is in '%s'\n",
                      ckpt_dir) >= 0 &&
              fsync(fd) == 0;
    if (!ok)
        mrf__log(MRF_LOG_WARN,
                 "cannot mark '%s' as a stopped run's parts (%s): a run that does not resume "
                 "leaves it behind; remove it by hand then",
                 tmpdir, strerror(errno));
    if (fd >= 0)
        close(fd);
}

/* Removes the marked folders .BASE.mrflow-tmp-* in dir (see the top). */
static void remove_stopped(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t n = strlen(base) + 16;
    char *stem = mrf__malloc(n), path[PATH_MAX];
    if (stem) {
        snprintf(stem, n, ".%s.mrflow-tmp-", base);
        struct dirent *e;
        while ((e = readdir(d))) {
            struct stat st;
            if (strncmp(e->d_name, stem, strlen(stem)) != 0 ||
                (size_t)snprintf(path, sizeof path, "%s/%s/" STOPPED_MARK, dir, e->d_name) >=
                    sizeof path ||
                lstat(path, &st) != 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (mrf__remove_tree(path) == MRF_OK)
                mrf__log(MRF_LOG_WARN,
                         "removed '%s': the parts of an earlier run of this output that was "
                         "stopped in its reduce (this run's output replaces them)",
                         path);
            else
                mrf__log(MRF_LOG_WARN,
                         "could not remove '%s', the parts of an earlier stopped run of this "
                         "output; remove it by hand",
                         path);
        }
    }
    mrf__free(stem);
    closedir(d);
}

int mrf__output_commit(const char *tmpdir, const char *output, bool overwrite, const char *run_id)
{
    int rc = MRF_OK;
    char *old = NULL, *dir = NULL, *base = NULL;
    struct stat st;
    if (split_path(output, &dir, &base))
        return mrf__fail(MRF_ENOMEM, "out of memory");
    /* a continued reduce's folder: the output it becomes is not a stopped run's */
    char mark[PATH_MAX];
    if ((size_t)snprintf(mark, sizeof mark, "%s/" STOPPED_MARK, tmpdir) < sizeof mark &&
        unlink(mark) != 0 && errno != ENOENT) {
        rc = mrf__fail(MRF_EIO, "cannot remove '%s': %s", mark, strerror(errno));
        goto out;
    }
    /* _SUCCESS goes in before the rename, so the output appears whole, at
     * once: a job killed between the two used to leave DIR without it */
    size_t n = strlen(tmpdir) + 16;
    char *succ = mrf__malloc(n);
    if (!succ) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(succ, n, "%s/_SUCCESS", tmpdir);
    int fd = open(succ, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 || dprintf(fd, "run_id %s\n", run_id) < 0 || fsync(fd) != 0)
        rc = mrf__fail(MRF_EIO, "cannot write '%s': %s", succ, strerror(errno));
    if (fd >= 0)
        close(fd);
    mrf__free(succ);
    if (rc)
        goto out;
    fsync_dir(tmpdir);
    if (overwrite && lstat(output, &st) == 0) {
        if (!(old = sibling(output, "old", run_id))) {
            rc = mrf__fail(MRF_ENOMEM, "out of memory");
            goto out;
        }
        if (rename(output, old) != 0) {
            rc = mrf__fail(MRF_EIO, "cannot move the old output '%s' aside: %s", output,
                           strerror(errno));
            goto out;
        }
    }
    if (renameat2(AT_FDCWD, tmpdir, AT_FDCWD, output, RENAME_NOREPLACE) != 0) {
        int e = errno;
        if (e == EINVAL || e == ENOSYS) /* a file system without RENAME_NOREPLACE */
            e = (lstat(output, &st) == 0) ? EEXIST : (rename(tmpdir, output) ? errno : 0);
        if (e) {
            rc = mrf__fail(e == EEXIST ? MRF_EEXIST : MRF_EIO, "cannot rename '%s' to '%s': %s%s",
                           tmpdir, output, strerror(e),
                           e == EEXIST ? " (it was created while the job ran)" : "");
            if (old)
                (void)rename(old, output);
            goto out;
        }
    }
    fsync_dir(output);
    fsync_dir(dir);
    if (old && mrf__remove_tree(old) != MRF_OK)
        mrf__log(MRF_LOG_WARN, "could not remove the replaced output '%s'; remove it by hand", old);
    remove_stopped(dir, base);
out:
    mrf__free(old);
    mrf__free(dir);
    mrf__free(base);
    return rc;
}
