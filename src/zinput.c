/*
 * zinput.c -- compressed line input: a zstd file's frames found from their
 * headers (planning), a task's frames -- or a gzip file, one task --
 * decompressed as they are read.
 *
 * Planning walks the frame and block headers (3 bytes a block, no
 * decompression) and cuts the file into tasks of whole frames, by the
 * decompressed sizes the frame headers declare.  A line may cross a frame
 * boundary, so tasks own lines the way split readers do: a task that does
 * not start the file drops everything up to its first '\n', and every task
 * reads on, past its last frame, to the end of the line that starts at or
 * before its end.  Every line is then read by exactly one task, and no task
 * needs the bytes before it.  A task is read in pieces of whole lines, so a
 * single-frame file larger than memory streams through one task.
 *
 * A gzip file is one task: its members do not declare their sizes (only
 * the size modulo 4 GiB, at the end) and a deflate stream cannot be entered
 * in the middle, so there is nowhere to cut it without reading all before.
 * Its members (gzip of concatenated files) are read one after another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* ZSTD_getFrameHeader: "static" API, exported by the shared library too */
#define ZSTD_STATIC_LINKING_ONLY
#include <zlib.h>
#include <zstd.h>

#include "internal.h"

/* compressed bytes read at a time: a quarter of a piece, within these */
#define ZIN_READ_MIN (64u << 10)
#define ZIN_READ_MAX (1u << 20)

static int short_file(const char *path, uint64_t at, char *err, size_t errlen)
{
    snprintf(err, errlen,
             "input '%s' is a damaged or truncated zstd file: a frame at byte %llu runs past "
             "the end of the file (zstd -t '%s' checks it)",
             path, (unsigned long long)at, path);
    return MRF_EINPUT;
}

static bool read_at(int fd, void *b, size_t n, uint64_t at)
{
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(fd, (char *)b + done, n - done, (off_t)(at + done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return false;
        done += (size_t)got;
    }
    return true;
}

/* The frame at *at: its end (*at moved past it), its declared content size
 * (ZSTD_CONTENTSIZE_UNKNOWN if none; 0 for a skippable frame). */
static int walk_frame(int fd, const char *path, uint64_t size, uint64_t *at, uint64_t *content,
                      char *err, size_t errlen)
{
    unsigned char h[ZSTD_FRAMEHEADERSIZE_MAX];
    size_t n = size - *at < sizeof h ? (size_t)(size - *at) : sizeof h;
    if (!read_at(fd, h, n, *at)) {
        snprintf(err, errlen, "input '%s': read failed while planning: %s", path,
                 strerror(errno ? errno : EIO));
        return MRF_EIO;
    }
    ZSTD_frameHeader fh;
    size_t r = ZSTD_getFrameHeader(&fh, h, n);
    if (ZSTD_isError(r)) {
        snprintf(err, errlen,
                 "input '%s': no zstd frame at byte %llu (%s): the file is damaged, or has "
                 "other data after its compressed part",
                 path, (unsigned long long)*at, ZSTD_getErrorName(r));
        return MRF_EINPUT;
    }
    if (r > 0)
        return short_file(path, *at, err, errlen);
    if (fh.frameType == ZSTD_skippableFrame) { /* e.g. a seekable-format index */
        /* (its header: magic and size, 8 bytes; headerSize says 0 here) */
        if (size - *at < ZSTD_SKIPPABLEHEADERSIZE + fh.frameContentSize)
            return short_file(path, *at, err, errlen);
        *at += ZSTD_SKIPPABLEHEADERSIZE + fh.frameContentSize;
        *content = 0;
        return MRF_OK;
    }
    uint64_t pos = *at + fh.headerSize;
    for (;;) { /* blocks: 3-byte header, last flag, type, size */
        unsigned char b[3];
        if (size - pos < 3 || !read_at(fd, b, 3, pos))
            return short_file(path, *at, err, errlen);
        uint32_t bh = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
        uint32_t type = (bh >> 1) & 3, bsize = bh >> 3;
        if (type == 3) {
            snprintf(err, errlen,
                     "input '%s' is a damaged zstd file: a bad block header at byte %llu", path,
                     (unsigned long long)pos);
            return MRF_EINPUT;
        }
        pos += 3 + (type == 1 ? 1 : bsize); /* an RLE block stores one byte */
        if (pos > size)
            return short_file(path, *at, err, errlen);
        if (bh & 1)
            break;
    }
    if (fh.checksumFlag)
        pos += 4;
    if (pos > size)
        return short_file(path, *at, err, errlen);
    *at = pos;
    *content = fh.frameContentSize;
    return MRF_OK;
}

int mrf__zin_plan(int fd, const char *path, uint64_t size, uint32_t file, uint64_t task_size,
                  mrf__zin_add add, void *ctx, char *err, size_t errlen)
{
    /* the frames first: when one does not declare its size (zstd writing a
     * pipe), the file is one task, counted by its compressed bytes */
    uint64_t at = 0, n = 0, cap = 0, *ends = NULL, *sizes = NULL;
    bool known = true;
    int rc = MRF_OK;
    while (at < size && rc == MRF_OK) {
        uint64_t content = 0;
        if ((rc = walk_frame(fd, path, size, &at, &content, err, errlen)))
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *e = mrf__realloc(ends, cap * sizeof *e), *z;
            if (e)
                ends = e;
            if (!e || !(z = mrf__realloc(sizes, cap * sizeof *z))) {
                snprintf(err, errlen, "out of memory planning tasks");
                rc = MRF_ENOMEM;
                break;
            }
            sizes = z;
        }
        known &= content != ZSTD_CONTENTSIZE_UNKNOWN;
        ends[n] = at;
        sizes[n++] = content;
    }
    if (rc == MRF_OK && !known)
        rc = add(ctx, file, 0, size, 0, size);
    uint64_t dstart = 0;
    for (uint64_t i = 0; rc == MRF_OK && known && i < n; i++) {
        /* frames until the task holds task_size decompressed bytes */
        uint64_t from = i, len = 0;
        while (i < n && (len == 0 || len + sizes[i] <= task_size))
            len += sizes[i++];
        i--;
        uint64_t coff = from ? ends[from - 1] : 0;
        if (len) /* (skippable frames alone hold no lines) */
            rc = add(ctx, file, coff, ends[i] - coff, dstart, len);
        dstart += len;
    }
    mrf__free(ends);
    mrf__free(sizes);
    return rc;
}

/* ---- reading ---------------------------------------------------------- */

struct mrf__zin {
    const char *path;
    int fd;
    uint32_t kind;     /* MRF__CODEC_ZSTD or MRF__CODEC_GZIP */
    mrf__codec *codec; /* zstd: its decompression context, dc, counted by mem.c */
    ZSTD_DCtx *dc;
    z_stream gz; /* gzip: zlib's state (its memory from mem.c too) */
    bool gz_live;
    uint64_t size;     /* the file's */
    uint64_t cpos;     /* next compressed byte to read */
    uint64_t dstart;   /* decompressed offset of the task's first byte in the file */
    uint64_t own;      /* the task's own decompressed bytes (its frames') */
    unsigned char *in; /* compressed bytes read; [ipos, ilen) not yet decompressed */
    size_t ipos, ilen, icap;
    char *buf; /* decompressed bytes [buf_abs, buf_abs + blen) of the task */
    char **bufp;
    size_t *capp; /* the caller's buffer (buf) and its size (bcap) */
    size_t blen, bcap, piece;
    uint64_t buf_abs;
    size_t give;       /* buf[0, give) went out last time */
    bool skipping;     /* dropping the first partial line */
    bool at_frame_end; /* the decoder ended a frame (member) and was fed nothing since */
    bool eof;          /* the file's data is all decompressed */
    bool done;         /* the task's last line went out */
    bool flush;        /* the last call filled buf: call again before reading */
};

static voidpf gz_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return mrf__calloc(items, size);
}

static void gz_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    mrf__free(p);
}

int mrf__zin_open(int fd, const char *path, uint64_t size, const mrf__task *t, size_t piece,
                  char **buf, size_t *cap, mrf__zin **out)
{
    mrf__zin *z = mrf__calloc(1, sizeof *z);
    if (!z) {
        close(fd);
        return mrf__fail(MRF_ENOMEM, "out of memory reading '%s'", path);
    }
    z->path = path;
    z->fd = fd;
    z->kind = t->codec;
    z->size = size;
    z->cpos = t->coff;
    z->dstart = t->off;
    /* the file's last task reads to its end (its size may be unknown: a
     * file whose frames do not declare theirs is one task, as is a gzip
     * file) */
    z->own = t->coff + t->clen >= size ? UINT64_MAX : t->len;
    z->piece = piece < (64u << 10) ? (64u << 10) : piece;
    z->skipping = t->off > 0;
    z->at_frame_end = true;
    /* the caller's buffer, kept from task to task: fresh pages cost more
     * than decompressing into them */
    z->icap = z->piece / 4 < ZIN_READ_MIN   ? ZIN_READ_MIN
              : z->piece / 4 > ZIN_READ_MAX ? ZIN_READ_MAX
                                            : z->piece / 4;
    z->bufp = buf;
    z->capp = cap;
    if (*cap < z->piece + (1u << 20)) {
        char *nb = mrf__big_resize(*buf, *cap, z->piece + (1u << 20));
        if (nb) {
            *buf = nb;
            *cap = z->piece + (1u << 20);
        }
    }
    z->buf = *buf;
    z->bcap = *cap;
    int rc = MRF_OK;
    if (z->bcap < z->piece + (1u << 20) || !(z->in = mrf__malloc(z->icap)))
        rc = MRF_ENOMEM;
    else if (z->kind == MRF__CODEC_GZIP) {
        z->gz.zalloc = gz_alloc;
        z->gz.zfree = gz_free;
        /* 16 + 15: a gzip header and trailer, a 32 KiB window */
        if (inflateInit2(&z->gz, 16 + MAX_WBITS) != Z_OK)
            rc = MRF_ENOMEM;
        z->gz_live = rc == MRF_OK;
    } else if (mrf__codec_create(0, &z->codec) == MRF_OK)
        z->dc = mrf__codec_dctx(z->codec);
    else
        rc = MRF_ENOMEM;
    if (rc) {
        mrf__zin_close(z);
        return mrf__fail(rc, "out of memory reading '%s'", path);
    }
    (void)posix_fadvise(z->fd, (off_t)t->coff, 0, POSIX_FADV_SEQUENTIAL);
    *out = z;
    return MRF_OK;
}

void mrf__zin_close(mrf__zin *z)
{
    if (!z)
        return;
    if (z->fd >= 0)
        close(z->fd);
    mrf__codec_destroy(z->codec);
    if (z->gz_live)
        inflateEnd(&z->gz);
    mrf__free(z->in);
    mrf__free(z);
}

/* One step of the zstd decoder over in[ipos, ilen) into buf[blen, bcap). */
static int unzstd_more(mrf__zin *z)
{
    ZSTD_inBuffer in = {z->in, z->ilen, z->ipos};
    ZSTD_outBuffer out = {z->buf, z->bcap, z->blen};
    uint64_t frame_at = z->cpos - z->ilen + z->ipos;
    size_t r = ZSTD_decompressStream(z->dc, &out, &in);
    if (ZSTD_isError(r))
        return mrf__fail(MRF_EIO,
                         "input '%s' is damaged: its zstd data near byte %llu does not decompress "
                         "(%s); zstd -t '%s' checks the file",
                         z->path, (unsigned long long)frame_at, ZSTD_getErrorName(r), z->path);
    z->at_frame_end = r == 0;
    z->flush = out.pos == out.size; /* the decoder may hold more output */
    z->blen = out.pos;
    z->ipos = in.pos;
    return MRF_OK;
}

/* The same for gzip: a member's end is at_frame_end; the next member (gzip
 * of concatenated files) starts a new stream; other bytes after a member
 * are damage (gzip -d says "trailing garbage" and keeps what it read; a
 * job must not). */
static int gunzip_more(mrf__zin *z)
{
    uint64_t at = z->cpos - z->ilen + z->ipos;
    if (z->at_frame_end && z->ipos < z->ilen && z->gz.total_in > 0) {
        if (z->in[z->ipos] != 0x1f)
            return mrf__fail(MRF_EIO,
                             "input '%s' is damaged: byte %llu, after a gzip member, starts no "
                             "other member; gzip -t '%s' checks the file",
                             z->path, (unsigned long long)at, z->path);
        if (inflateReset(&z->gz) != Z_OK)
            return mrf__fail(MRF_EIO, "input '%s': zlib could not restart", z->path);
    }
    z->gz.next_in = z->in + z->ipos;
    z->gz.avail_in = (uInt)(z->ilen - z->ipos);
    z->gz.next_out = (Bytef *)z->buf + z->blen;
    size_t room = z->bcap - z->blen;
    z->gz.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
    int r = inflate(&z->gz, Z_NO_FLUSH);
    at = z->cpos - z->ilen + (size_t)(z->gz.next_in - z->in); /* where zlib stopped */
    if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
        return mrf__fail(MRF_EIO,
                         "input '%s' is damaged: its gzip data near byte %llu does not "
                         "decompress (%s); gzip -t '%s' checks the file",
                         z->path, (unsigned long long)at,
                         z->gz.msg ? z->gz.msg : (r == Z_MEM_ERROR ? "out of memory" : "error"),
                         z->path);
    z->at_frame_end = r == Z_STREAM_END;
    z->flush = z->gz.avail_out == 0;
    z->blen = (size_t)((char *)z->gz.next_out - z->buf);
    z->ipos = (size_t)(z->gz.next_in - z->in);
    return MRF_OK;
}

/* Decompresses more into buf (grown when full); z->eof at the file's end.
 * Past the task's own frames the caller stops at the first '\n'. */
static int inflate_more(mrf__zin *z)
{
    if (z->blen == z->bcap) {
        char *nb = mrf__big_resize(z->buf, z->bcap, z->bcap * 2);
        if (!nb)
            return mrf__fail(MRF_ENOMEM, "out of memory for a line of '%s' longer than %zu bytes",
                             z->path, z->bcap);
        z->buf = *z->bufp = nb;
        z->bcap *= 2;
        *z->capp = z->bcap;
    }
    if (z->ipos == z->ilen && !z->flush) {
        if (z->cpos >= z->size) {
            if (!z->at_frame_end)
                return mrf__fail(MRF_EIO,
                                 "input '%s' is truncated: its %s data ends inside a %s; %s -t "
                                 "'%s' checks the file",
                                 z->path, z->kind == MRF__CODEC_GZIP ? "gzip" : "zstd",
                                 z->kind == MRF__CODEC_GZIP ? "member" : "frame",
                                 z->kind == MRF__CODEC_GZIP ? "gzip" : "zstd", z->path);
            z->eof = true;
            return MRF_OK;
        }
        uint64_t want = z->size - z->cpos < z->icap ? z->size - z->cpos : z->icap;
        if (!read_at(z->fd, z->in, (size_t)want, z->cpos))
            return mrf__fail(MRF_EIO, "input '%s': read at offset %llu: %s", z->path,
                             (unsigned long long)z->cpos, strerror(errno ? errno : EIO));
        z->ipos = 0;
        z->ilen = (size_t)want;
        z->cpos += want;
    }
    return z->kind == MRF__CODEC_GZIP ? gunzip_more(z) : unzstd_more(z);
}

int mrf__zin_next(mrf__zin *z, const char **data, size_t *len, uint64_t *offset)
{
    *len = 0;
    *offset = z->dstart + z->buf_abs;
    if (z->done)
        return MRF_OK;
    if (z->give) { /* what went out last time leaves the buffer */
        memmove(z->buf, z->buf + z->give, z->blen - z->give);
        z->blen -= z->give;
        z->buf_abs += z->give;
        z->give = 0;
    }
    for (;;) {
        if (z->skipping) { /* a task after the file's first drops a partial line */
            char *nl = memchr(z->buf, '\n', z->blen);
            size_t drop = nl ? (size_t)(nl + 1 - z->buf) : z->blen;
            memmove(z->buf, z->buf + drop, z->blen - drop);
            z->blen -= drop;
            z->buf_abs += drop;
            z->skipping = !nl;
            if (nl && z->buf_abs > z->own) { /* that line ran past the task's end: */
                z->done = true;              /* the task holds no line of its own */
                return MRF_OK;
            }
        }
        if (!z->skipping) {
            /* the task's lines are those that start at or before its end
             * (own): they end at the first '\n' at or past it */
            size_t lim = z->own > z->buf_abs ? (size_t)(z->own - z->buf_abs) : 0;
            char *nl = lim < z->blen ? memchr(z->buf + lim, '\n', z->blen - lim) : NULL;
            if (nl || z->eof) {
                *data = z->buf;
                *len = nl ? (size_t)(nl + 1 - z->buf) : z->blen;
                *offset = z->dstart + z->buf_abs;
                z->done = true;
                return MRF_OK;
            }
            if (z->blen >= z->piece) { /* a piece of whole lines, all the task's */
                nl = memrchr(z->buf, '\n', z->blen);
                if (nl) {
                    *data = z->buf;
                    *len = z->give = (size_t)(nl + 1 - z->buf);
                    *offset = z->dstart + z->buf_abs;
                    return MRF_OK;
                }
            }
        } else if (z->eof) {
            z->done = true;
            return MRF_OK;
        }
        int rc = inflate_more(z);
        if (rc)
            return rc;
    }
}
