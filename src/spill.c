/*
 * spill.c -- out-of-core runs on local disk.
 *
 * Each rank has one spill file in --spill-dir, created unlinked (O_TMPFILE,
 * or mkstemp + unlink where the file system lacks it), so no exit -- clean,
 * failed, signalled or killed -- can leave one behind.  Runs are appended to
 * it as sequences of blocks (codec.c: zstd + XXH3 checksum, at most
 * BLOCK_RAW raw bytes each unless one record is larger):
 *
 *  - a sorted run (reducing side) is records in (key, value) order, read
 *    back front to back by a run reader during the k-way merge;
 *  - a bucket run (mapping side) is records grouped by bucket, every block
 *    holding one bucket only, with a directory of (bucket, offset, length)
 *    for the buckets present, so the shuffle reads each bucket's blocks
 *    straight into the chunk bound for that bucket's rank.
 *
 * Space of runs merged into another is given back with FALLOC_FL_PUNCH_HOLE
 * where the file system allows it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define BLOCK_RAW (64u << 10)
#define WBUF (1u << 20)

const char *mrf__spill_dir(const char *opt_dir)
{
    if (opt_dir)
        return opt_dir;
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

int mrf__spill_open(mrf__spill *sp, const char *dir, int level, bool adaptive, bool corrupt)
{
    memset(sp, 0, sizeof *sp);
    sp->fd = -1;
    struct stat st;
    if (stat(dir, &st) != 0)
        return mrf__fail(MRF_EIO,
                         "spill directory '%s': %s (set --spill-dir or TMPDIR to "
                         "an existing local directory)",
                         dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mrf__fail(MRF_EIO, "spill directory '%s' is not a directory (set --spill-dir)", dir);
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        size_t n = strlen(dir) + 32;
        char *path = mrf__malloc(n);
        if (!path)
            return mrf__fail(MRF_ENOMEM, "out of memory");
        snprintf(path, n, "%s/.mrflow-spill-XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
            unlink(path);
        mrf__free(path);
    }
    if (fd < 0)
        return mrf__fail(MRF_EIO,
                         "spill directory '%s': cannot create a file: %s (set "
                         "--spill-dir to a writable local directory)",
                         dir, strerror(errno));
    sp->fd = fd;
    sp->corrupt = corrupt;
    if (!(sp->wbuf = mrf__big_alloc(WBUF))) {
        mrf__spill_close(sp);
        return mrf__fail(MRF_ENOMEM, "out of memory for the spill write buffer");
    }
    sp->adaptive = adaptive && level > 0;
    sp->zon = level > 0 && !sp->adaptive;
    if (!(sp->dir = mrf__strdup(dir)) || mrf__codec_create(level, &sp->z)) {
        mrf__spill_close(sp);
        return mrf__fail(MRF_ENOMEM, "out of memory for the spill codec");
    }
    return MRF_OK;
}

void mrf__spill_close(mrf__spill *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
    mrf__codec_destroy(sp->z);
    sp->z = NULL;
    mrf__free(sp->dir);
    sp->dir = NULL;
    mrf__big_free(sp->enc, sp->enc_cap);
    sp->enc = NULL;
    sp->enc_cap = 0;
    mrf__big_free(sp->rd, sp->rd_cap);
    sp->rd = NULL;
    sp->rd_cap = 0;
    mrf__big_free(sp->wbuf, WBUF);
    sp->wbuf = NULL;
    sp->wlen = 0;
}

static double now_s(void);
static void decide(mrf__spill *sp);

/* Writes the write buffer out (at the file offset it starts at). */
static int flush(mrf__spill *sp)
{
    const char *p = sp->wbuf;
    size_t n = sp->wlen;
    uint64_t at = sp->end - sp->wlen;
    double t0 = sp->adaptive && n ? now_s() : 0;
    while (n) {
        ssize_t w = pwrite(sp->fd, p, n, (off_t)at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return mrf__fail(MRF_EIO,
                             "spill file in '%s': write failed after %llu bytes: %s (free space "
                             "there, raise --memory, or set --spill-dir to a larger local disk)",
                             sp->dir, (unsigned long long)at,
                             w < 0 ? strerror(errno) : "no progress");
        p += w;
        n -= (size_t)w;
        at += (uint64_t)w;
    }
    if (t0 > 0) {
        sp->w_s += now_s() - t0;
        sp->w_bytes += (double)sp->wlen;
        decide(sp);
    }
    sp->wlen = 0;
    return MRF_OK;
}

/* Appends n bytes at the end of the file, through a 1 MiB write buffer (a
 * small block per bucket would otherwise cost a system call each). */
static int write_all(mrf__spill *sp, const char *p, size_t n)
{
    int rc;
    while (n) {
        if (sp->wlen == WBUF && (rc = flush(sp)))
            return rc;
        size_t step = WBUF - sp->wlen < n ? WBUF - sp->wlen : n;
        memcpy(sp->wbuf + sp->wlen, p, step);
        sp->wlen += step;
        sp->end += step;
        p += step;
        n -= step;
    }
    return MRF_OK;
}

int mrf__spill_flush(mrf__spill *sp)
{
    return sp->wlen ? flush(sp) : MRF_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Adaptive compression: a block is worth compressing when compressing and
 * later decompressing it costs less than writing the bytes it saves, at the
 * write speed this spill file has shown so far (page cache included: that
 * is what a run is read back from, too).  Decompression is taken as 3x
 * compression until reads have measured it. */
static void decide(mrf__spill *sp)
{
    if (sp->c_bytes <= 0 || sp->w_bytes <= 0 || sp->w_s <= 0)
        return;
    double c = sp->c_s / sp->c_bytes;                           /* s per raw byte */
    double d = sp->d_bytes > 0 ? sp->d_s / sp->d_bytes : c / 3; /* s per raw byte */
    double saved = sp->c_out < sp->c_bytes ? 1.0 - sp->c_out / sp->c_bytes : 0;
    double w = sp->w_s / sp->w_bytes; /* s per byte */
    sp->zon = c + d < saved * w;
}

/* Appends one block holding raw[0, n). */
static int put_block(mrf__spill *sp, const char *raw, size_t n)
{
    if (mrf__big_grow(&sp->enc, &sp->enc_cap, mrf__block_bound(n)))
        return mrf__fail(MRF_ENOMEM, "out of memory for a spill block");
    /* adaptive: every 16th block is compressed to keep measuring */
    bool sample = sp->adaptive && sp->blocks % 16 == 0;
    double t0 = sample ? now_s() : 0;
    size_t len = mrf__block_encode(sp->z, raw, n, sp->enc, sp->zon || sample);
    if (sample) {
        sp->c_s += now_s() - t0;
        sp->c_bytes += (double)n;
        sp->c_out += (double)(len - MRF_BLOCK_HDR);
    }
    sp->blocks++;
    if (len - MRF_BLOCK_HDR < n)
        sp->zblocks++;
    if (sp->corrupt && len > MRF_BLOCK_HDR) {
        sp->enc[MRF_BLOCK_HDR + (len - MRF_BLOCK_HDR) / 2] ^= 0x5a; /* --fault corrupt-spill */
        sp->corrupt = false;
    }
    sp->bytes_raw += n;
    sp->bytes_disk += len;
    return write_all(sp, sp->enc, len);
}

static int read_at(mrf__spill *sp, uint64_t at, char *p, size_t n)
{
    int rc;
    if (sp->wlen && at + n > sp->end - sp->wlen && (rc = flush(sp)))
        return rc; /* what is read may still be in the write buffer */
    while (n) {
        ssize_t r = pread(sp->fd, p, n, (off_t)at);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return mrf__fail(MRF_EIO, "spill file in '%s': read at offset %llu failed: %s", sp->dir,
                             (unsigned long long)at, r < 0 ? strerror(errno) : "short");
        p += r;
        n -= (size_t)r;
        at += (uint64_t)r;
    }
    return MRF_OK;
}

int mrf__spill_peek(mrf__spill *sp, uint64_t at, uint32_t *raw_len, uint32_t *stored_len)
{
    char hdr[MRF_BLOCK_HDR];
    int rc = read_at(sp, at, hdr, sizeof hdr);
    if (rc == MRF_OK && mrf__block_header(hdr, raw_len, stored_len))
        rc = mrf__fail(MRF_EIO, "spill file in '%s': damaged block header at offset %llu", sp->dir,
                       (unsigned long long)at);
    return rc;
}

int mrf__spill_read(mrf__spill *sp, uint64_t at, char *raw, uint64_t *next)
{
    uint32_t raw_len, stored_len;
    int rc = mrf__spill_peek(sp, at, &raw_len, &stored_len);
    if (rc)
        return rc;
    size_t n = MRF_BLOCK_HDR + (size_t)stored_len;
    if (mrf__big_grow(&sp->rd, &sp->rd_cap, n))
        return mrf__fail(MRF_ENOMEM, "out of memory reading a spill block");
    if ((rc = read_at(sp, at, sp->rd, n)))
        return rc;
    double t0 = sp->adaptive && stored_len < raw_len ? now_s() : 0;
    int drc = mrf__block_decode(sp->z, sp->rd, sp->rd + MRF_BLOCK_HDR, raw);
    if (t0 > 0) {
        sp->d_s += now_s() - t0;
        sp->d_bytes += raw_len;
    }
    if (drc)
        return mrf__fail(MRF_EIO,
                         "spill file in '%s': block at offset %llu failed its checksum or "
                         "could not be decompressed (disk or memory corruption)",
                         sp->dir, (unsigned long long)at);
    *next = at + n;
    return MRF_OK;
}

int mrf__spill_read_region(mrf__spill *sp, uint64_t off, uint64_t len, char *raw, uint64_t cap,
                           uint64_t *raw_len)
{
    int rc;
    if (mrf__big_grow(&sp->rd, &sp->rd_cap, (size_t)len))
        return mrf__fail(MRF_ENOMEM, "out of memory reading spilled blocks");
    if ((rc = read_at(sp, off, sp->rd, (size_t)len)))
        return rc;
    uint64_t at = 0, got = 0;
    while (at < len) {
        uint32_t rl, sl;
        if (len - at < MRF_BLOCK_HDR || mrf__block_header(sp->rd + at, &rl, &sl) ||
            len - at - MRF_BLOCK_HDR < sl || cap - got < rl)
            return mrf__fail(MRF_EIO, "spill file in '%s': damaged block header at offset %llu",
                             sp->dir, (unsigned long long)(off + at));
        double t0 = sp->adaptive && sl < rl ? now_s() : 0;
        if (mrf__block_decode(sp->z, sp->rd + at, sp->rd + at + MRF_BLOCK_HDR, raw + got))
            return mrf__fail(MRF_EIO,
                             "spill file in '%s': block at offset %llu failed its checksum or "
                             "could not be decompressed (disk or memory corruption)",
                             sp->dir, (unsigned long long)(off + at));
        if (t0 > 0) {
            sp->d_s += now_s() - t0;
            sp->d_bytes += rl;
        }
        got += rl;
        at += MRF_BLOCK_HDR + sl;
    }
    *raw_len = got;
    return MRF_OK;
}

void mrf__spill_release(mrf__spill *sp, uint64_t off, uint64_t len)
{
    /* best effort: a file system without hole punching keeps the bytes */
    (void)fallocate(sp->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
}

/* ----------------------------------------------------------- sorted runs -- */

int mrf__runw_begin(mrf__run_writer *w, mrf__spill *sp)
{
    memset(w, 0, sizeof *w);
    w->sp = sp;
    w->run.off = sp->end;
    if (mrf__big_grow(&w->buf, &w->cap, BLOCK_RAW))
        return mrf__fail(MRF_ENOMEM, "out of memory for a spill block");
    return MRF_OK;
}

static int runw_flush(mrf__run_writer *w)
{
    if (!w->len)
        return MRF_OK;
    int rc = put_block(w->sp, w->buf, w->len);
    w->len = 0;
    return rc;
}

int mrf__runw_add(mrf__run_writer *w, const char *rec)
{
    size_t n = mrf__rec_size(rec);
    int rc;
    if (w->len + n > BLOCK_RAW && (rc = runw_flush(w)))
        return rc;
    if (mrf__big_grow(&w->buf, &w->cap, n))
        return mrf__fail(MRF_ENOMEM, "out of memory for a spill block");
    memcpy(w->buf + w->len, rec, n);
    w->len += n;
    w->run.records++;
    return MRF_OK;
}

int mrf__runw_end(mrf__run_writer *w, mrf__run *out)
{
    int rc = runw_flush(w);
    if (rc == MRF_OK)
        rc = mrf__spill_flush(w->sp);
    mrf__big_free(w->buf, w->cap);
    w->buf = NULL;
    w->cap = 0;
    w->run.len = w->sp->end - w->run.off;
    if (out)
        *out = w->run;
    if (rc == MRF_OK)
        w->sp->runs++;
    return rc;
}

void mrf__runw_abort(mrf__run_writer *w)
{
    mrf__big_free(w->buf, w->cap);
    w->buf = NULL;
    w->cap = 0;
}

int mrf__runr_open(mrf__run_reader *r, mrf__spill *sp, const mrf__run *run)
{
    memset(r, 0, sizeof *r);
    r->sp = sp;
    r->pos = run->off;
    r->end = run->off + run->len;
    return MRF_OK;
}

int mrf__runr_next(mrf__run_reader *r, const char **rec)
{
    if (r->at >= r->len) {
        if (r->pos >= r->end)
            return 0;
        uint32_t raw_len, stored_len;
        int rc = mrf__spill_peek(r->sp, r->pos, &raw_len, &stored_len);
        if (rc)
            return rc;
        if (mrf__big_grow(&r->raw, &r->cap, raw_len ? raw_len : 1))
            return mrf__fail(MRF_ENOMEM, "out of memory reading a spilled run");
        if ((rc = mrf__spill_read(r->sp, r->pos, r->raw, &r->pos)))
            return rc;
        size_t n;
        if (mrf__kvbuf_check(r->raw, raw_len, &n) || n == 0)
            return mrf__fail(MRF_EIO, "spill file in '%s': a block holds malformed records",
                             r->sp->dir);
        r->at = 0;
        r->len = raw_len;
    }
    *rec = r->raw + r->at;
    r->at += mrf__rec_size(*rec);
    return 1;
}

void mrf__runr_close(mrf__run_reader *r)
{
    mrf__big_free(r->raw, r->cap);
    r->raw = NULL;
    r->cap = 0;
}

/* ----------------------------------------------------------- bucket runs -- */

int mrf__spill_bucket_run(mrf__spill *sp, const char *base, const uint64_t *offs, size_t n,
                          mrf__brun *out)
{
    memset(out, 0, sizeof *out);
    int rc = MRF_OK;
    size_t nb = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || mrf__rec_bucket(base + offs[i]) != mrf__rec_bucket(base + offs[i - 1]))
            nb++;
    if (nb && !(out->ents = mrf__malloc(nb * sizeof *out->ents)))
        return mrf__fail(MRF_ENOMEM, "out of memory for a spilled run's bucket directory");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    if (mrf__big_grow(&buf, &cap, BLOCK_RAW))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a spill block");
    for (size_t i = 0; i < n && rc == MRF_OK; i++) {
        const char *r = base + offs[i];
        uint32_t b = mrf__rec_bucket(r);
        size_t sz = mrf__rec_size(r);
        bool new_bucket = i == 0 || b != out->ents[out->n - 1].bucket;
        if (len && (new_bucket || len + sz > BLOCK_RAW)) {
            rc = put_block(sp, buf, len);
            len = 0;
            if (rc)
                break;
        }
        if (new_bucket) {
            if (out->n)
                out->ents[out->n - 1].len = sp->end - out->ents[out->n - 1].off;
            out->ents[out->n++] = (mrf__bdir_ent){.bucket = b, .off = sp->end};
        }
        if (mrf__big_grow(&buf, &cap, sz)) {
            rc = mrf__fail(MRF_ENOMEM, "out of memory for a spill block");
            break;
        }
        memcpy(buf + len, r, sz);
        len += sz;
        out->ents[out->n - 1].raw += sz;
        out->ents[out->n - 1].recs++;
    }
    if (rc == MRF_OK && len)
        rc = put_block(sp, buf, len);
    if (rc == MRF_OK)
        rc = mrf__spill_flush(sp);
    if (rc == MRF_OK && out->n)
        out->ents[out->n - 1].len = sp->end - out->ents[out->n - 1].off;
    mrf__big_free(buf, cap);
    if (rc) {
        mrf__free(out->ents);
        memset(out, 0, sizeof *out);
        return rc;
    }
    sp->runs++;
    return MRF_OK;
}

/* Copies n bytes at src to the end of the file, through the read buffer. */
static int copy_bytes(mrf__spill *sp, uint64_t src, uint64_t n)
{
    int rc;
    while (n) {
        size_t step = n < (1u << 20) ? (size_t)n : (1u << 20);
        if (mrf__big_grow(&sp->rd, &sp->rd_cap, step))
            return mrf__fail(MRF_ENOMEM, "out of memory merging spilled runs");
        if ((rc = read_at(sp, src, sp->rd, step)) || (rc = write_all(sp, sp->rd, step)))
            return rc;
        src += step;
        n -= step;
    }
    return MRF_OK;
}

int mrf__spill_merge_bruns(mrf__spill *sp, const mrf__brun *runs, size_t k, mrf__brun *out)
{
    memset(out, 0, sizeof *out);
    size_t total = 0, *at = mrf__calloc(k, sizeof *at);
    for (size_t i = 0; i < k; i++)
        total += runs[i].n;
    if (!at || (total && !(out->ents = mrf__malloc(total * sizeof *out->ents)))) {
        mrf__free(at);
        return mrf__fail(MRF_ENOMEM, "out of memory merging spilled runs");
    }
    int rc = MRF_OK;
    for (;;) {
        /* the smallest bucket at the runs' heads */
        uint32_t b = UINT32_MAX;
        for (size_t i = 0; i < k; i++)
            if (at[i] < runs[i].n && runs[i].ents[at[i]].bucket < b)
                b = runs[i].ents[at[i]].bucket;
        if (b == UINT32_MAX)
            break;
        mrf__bdir_ent *e = &out->ents[out->n++];
        *e = (mrf__bdir_ent){.bucket = b, .off = sp->end};
        for (size_t i = 0; i < k && rc == MRF_OK; i++) {
            if (at[i] >= runs[i].n || runs[i].ents[at[i]].bucket != b)
                continue;
            const mrf__bdir_ent *f = &runs[i].ents[at[i]++];
            rc = copy_bytes(sp, f->off, f->len); /* blocks stay as they are */
            e->len += f->len;
            e->raw += f->raw;
            e->recs += f->recs;
        }
        if (rc)
            break;
    }
    mrf__free(at);
    if (rc == MRF_OK)
        rc = mrf__spill_flush(sp);
    if (rc) {
        mrf__free(out->ents);
        memset(out, 0, sizeof *out);
        return rc;
    }
    for (size_t i = 0; i < k; i++) { /* a run's blocks lie together: one call */
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t j = 0; j < runs[i].n; j++) {
            if (runs[i].ents[j].off < lo)
                lo = runs[i].ents[j].off;
            if (runs[i].ents[j].off + runs[i].ents[j].len > hi)
                hi = runs[i].ents[j].off + runs[i].ents[j].len;
        }
        if (hi > lo)
            mrf__spill_release(sp, lo, hi - lo);
    }
    out->task = -1;
    return MRF_OK;
}

const mrf__bdir_ent *mrf__brun_find(const mrf__brun *r, uint32_t bucket)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->ents[mid].bucket < bucket)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->n && r->ents[lo].bucket == bucket ? &r->ents[lo] : NULL;
}
