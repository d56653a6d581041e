/*
 * badrec.c -- dead-letter records: malformed input set aside, not lost.
 *
 * A record the job's map rejects (mrf_reject) or the engine cannot cut (a
 * trailing partial fixed-size record) becomes one line of
 * DIR/_BAD_RECORDS/part-NNNNN (NNNNN: the rank that found it):
 *
 *   FILE <TAB> OFFSET <TAB> LENGTH <TAB> REASON <TAB> DATA
 *
 * DATA is the record's first 1 KiB with backslash, tab, newline and bytes
 * outside printable ASCII written as \\, \t, \n and \xHH ("..." follows a
 * cut record).  Lines of a map task are kept apart until the task commits,
 * so a task run twice (speculation) sets its records aside once.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define SHOW_BYTES 1024

static int put(mrf__badrec *b, const char *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *q = mrf__realloc(b->buf, cap);
        if (!q)
            return MRF_ENOMEM;
        b->buf = q;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return MRF_OK;
}

static int put_escaped(mrf__badrec *b, const char *s, size_t n)
{
    char tmp[8];
    int rc = MRF_OK;
    for (size_t i = 0; i < n && rc == MRF_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            rc = put(b, "\\\\", 2);
        else if (c == '\t')
            rc = put(b, "\\t", 2);
        else if (c == '\n')
            rc = put(b, "\\n", 2);
        else if (c < 0x20 || c >= 0x7f)
            rc = put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", c));
        else
            rc = put(b, (const char *)&c, 1);
    }
    return rc;
}

int mrf__badrec_add(mrf__badrec *b, const char *file, uint64_t off, const void *data, size_t len,
                    const char *reason)
{
    char num[64];
    const char *why = reason && *reason ? reason : "rejected by the job";
    int rc = put_escaped(b, file, strlen(file));
    if (rc == MRF_OK)
        rc = put(b, num,
                 (size_t)snprintf(num, sizeof num, "\t%llu\t%zu\t", (unsigned long long)off, len));
    if (rc == MRF_OK)
        rc = put_escaped(b, why, strlen(why));
    if (rc == MRF_OK)
        rc = put(b, "\t", 1);
    if (rc == MRF_OK)
        rc = put_escaped(b, data, len < SHOW_BYTES ? len : SHOW_BYTES);
    if (rc == MRF_OK && len > SHOW_BYTES)
        rc = put(b, "...", 3);
    if (rc == MRF_OK)
        rc = put(b, "\n", 1);
    if (rc)
        return mrf__fail(MRF_ENOMEM, "out of memory setting aside a bad record");
    if (b->n == 0)
        snprintf(b->pending_first, sizeof b->pending_first, "'%s' at byte %llu: %s", file,
                 (unsigned long long)off, why);
    b->n++;
    return MRF_OK;
}

void mrf__badrec_drop(mrf__badrec *b)
{
    b->len = 0;
    b->n = 0;
}

int mrf__badrec_commit(mrf__badrec *b, const char *dir, int rank, uint64_t *count)
{
    if (b->n == 0)
        return MRF_OK;
    if (b->fd <= 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/_BAD_RECORDS", dir);
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return mrf__fail(MRF_EIO, "cannot create '%s': %s", path, strerror(errno));
        snprintf(path, sizeof path, "%s/_BAD_RECORDS/part-%05d", dir, rank);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0)
            return mrf__fail(MRF_EIO, "cannot create '%s': %s", path, strerror(errno));
        b->fd = fd;
    }
    for (size_t at = 0; at < b->len;) {
        ssize_t k = write(b->fd, b->buf + at, b->len - at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return mrf__fail(MRF_EIO, "writing bad records to part-%05d: %s", rank,
                             strerror(errno));
        at += (size_t)k;
    }
    if (!b->first[0])
        memcpy(b->first, b->pending_first, sizeof b->first);
    *count += b->n;
    b->len = 0;
    b->n = 0;
    return MRF_OK;
}

int mrf__badrec_restore(mrf__badrec *b, const char *lines, size_t len, uint64_t n)
{
    int rc = put(b, lines, len);
    if (rc)
        return mrf__fail(rc, "out of memory restoring bad records");
    b->n += n;
    return MRF_OK;
}

int mrf__badrec_close(mrf__badrec *b)
{
    int rc = MRF_OK;
    if (b->fd > 0) {
        if (fsync(b->fd) != 0 || close(b->fd) != 0)
            rc = mrf__fail(MRF_EIO, "writing bad records failed: %s", strerror(errno));
        b->fd = 0;
    }
    mrf__free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
    return rc;
}
