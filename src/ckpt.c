/*
 * ckpt.c -- coordinated checkpoints: one parallel HDF5 file per epoch,
 * written collectively through the MPI-IO driver, and read back on any
 * number of ranks.
 *
 * Checkpoints are incremental: an epoch's /data holds the map output
 * committed since the epoch it builds on (attribute base_epoch; 0: none, the
 * file holds all of it), so every record reaches the checkpoint directory
 * once.  The chain of an epoch is itself, its base, the base's base, and
 * so on; resuming reads the data of the whole chain and everything else
 * (task bitmap, decisions, dead letters: all small) from the newest file.
 * chain_records counts the records of the whole chain, a check that no
 * link was replaced.  An epoch after the shuffle holds all its data.
 * Files written before base_epoch existed read as base_epoch 0.
 *
 * An epoch holds, by bucket, its share of the map output and what is
 * needed to go on from there:
 *
 *   /meta           group; attributes: job, engine_version, run_id, phase,
 *                   partitioner, spec_fingerprint, inputs_fingerprint,
 *                   task_size, tasks, tasks_done, buckets, bucket_count,
 *                   hash_buckets, map_combine, ranks, epoch, records,
 *                   raw_bytes, stored_bytes, blocks, bad_records,
 *                   records_in, input_bytes, created, base_epoch,
 *                   chain_records
 *   /tasks_done     uint8[ceil(tasks / 8)]: bit t set = map task t committed
 *   /partition      uint8[]: the partitioning decisions (splitters, heavy
 *                   keys; partition.c's mrf__decisions_pack)
 *   /index          compound[E]: {bucket, rank, offset, length, raw,
 *                   records, checksum} per block
 *   /slabs          compound[ranks]: {index_start, index_count,
 *                   data_start, data_length} per writing rank
 *   /data           uint8[]: the blocks, each a zstd frame of whole records
 *                   (kvbuf layout, bucket in each record's header) of one
 *                   bucket, or of any (index bucket MRF__CKPT_MIXED: the
 *                   map arena's bytes as they lie, or a reducing rank's
 *                   input); checksum = XXH3-64 of the frame's bytes
 *   /bad_records    uint8[]: dead-letter lines of the committed tasks
 *
 * Every rank writes its own slab of /index, /data and /bad_records in
 * collective calls; blocks are laid out rank by rank.  A reader takes a contiguous byte range of
 * /data (its share of the total), finds the blocks starting in it through /slabs and those ranks'
 * parts of /index, and checks every block's checksum, size and records.
 *
 * Commit: the file is written as DIR/.epoch-N.h5.tmp, closed collectively,
 * fsynced by every rank, renamed by rank 0 to DIR/epoch-N.h5; then LATEST
 * ("epoch-N.h5\n") is replaced atomically (temporary, fsync, rename, fsync
 * of DIR).  The epochs kept are the new one's chain and the chain of the
 * one before it (the fallback); older ones are removed.  A crash at any point
 * leaves LATEST naming a complete file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "internal.h"

#define CK_BLOCK (1u << 20)        /* raw bytes per block (a record may exceed it) */
#define CK_PIECE (64ull << 20)     /* bytes per H5Dwrite/H5Dread call */
#define CK_MEM_SINK (256ull << 20) /* compressed blocks kept in memory before a file */
/* zstd's fast mode: on terasort records 6.0x instead of 6.3x at level 1,
 * and a 1.2 GB checkpoint on 2 ranks 0.2 s faster (docs/performance.md, "Checkpoints") */
#define CK_LEVEL (-1)

typedef struct ck_ent {
    uint32_t bucket, rank;
    uint64_t offset, length, raw, records, checksum;
} ck_ent;

typedef struct ck_slab {
    uint64_t index_start, index_count, data_start, data_length;
} ck_slab;

struct mrf__ckpt_writer {
    MPI_Comm comm;
    int rank, size;
    ZSTD_CCtx *cc;
    char *raw;
    size_t raw_len, raw_cap;
    uint32_t cur_bucket;
    uint64_t cur_recs;
    char *zbuf;
    size_t zcap;
    /* the sink: compressed blocks in memory, then in an unlinked file */
    char *mem;
    size_t mem_len, mem_cap;
    int fd;
    char *spill_dir;
    uint64_t data_len;
    ck_ent *ents;
    size_t n_ents, ents_cap;
    uint64_t raw_total, recs_total;
    bool mixed; /* blocks hold any buckets (after the shuffle: by reducing rank) */
};

/* --------------------------------------------------------------- helpers -- */

static hid_t u64_type(void)
{
    return H5T_STD_U64LE;
}

static hid_t ent_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(ck_ent));
    H5Tinsert(t, "bucket", HOFFSET(ck_ent, bucket), H5T_NATIVE_UINT32);
    H5Tinsert(t, "rank", HOFFSET(ck_ent, rank), H5T_NATIVE_UINT32);
    H5Tinsert(t, "offset", HOFFSET(ck_ent, offset), H5T_NATIVE_UINT64);
    H5Tinsert(t, "length", HOFFSET(ck_ent, length), H5T_NATIVE_UINT64);
    H5Tinsert(t, "raw", HOFFSET(ck_ent, raw), H5T_NATIVE_UINT64);
    H5Tinsert(t, "records", HOFFSET(ck_ent, records), H5T_NATIVE_UINT64);
    H5Tinsert(t, "checksum", HOFFSET(ck_ent, checksum), H5T_NATIVE_UINT64);
    return t;
}

static hid_t slab_type(void)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(ck_slab));
    H5Tinsert(t, "index_start", HOFFSET(ck_slab, index_start), H5T_NATIVE_UINT64);
    H5Tinsert(t, "index_count", HOFFSET(ck_slab, index_count), H5T_NATIVE_UINT64);
    H5Tinsert(t, "data_start", HOFFSET(ck_slab, data_start), H5T_NATIVE_UINT64);
    H5Tinsert(t, "data_length", HOFFSET(ck_slab, data_length), H5T_NATIVE_UINT64);
    return t;
}

/* The meta fields stored as attributes, by name. */
static const struct {
    const char *name;
    size_t off;
} u64_fields[] = {
#define F(n, f)                                                                                    \
    {                                                                                              \
        n, offsetof(mrf__ckpt_meta, f)                                                             \
    }
    F("spec_fingerprint", spec_fp),
    F("inputs_fingerprint", inputs_fp),
    F("task_size", task_size),
    F("tasks", tasks),
    F("tasks_done", tasks_done),
    F("buckets", buckets_opt),
    F("bucket_count", nb),
    F("hash_buckets", nb_base),
    F("map_combine", map_combine),
    F("ranks", ranks),
    F("epoch", epoch),
    F("records", records),
    F("raw_bytes", raw_bytes),
    F("stored_bytes", stored_bytes),
    F("blocks", blocks),
    F("bad_records", bad_records),
    F("records_in", records_in),
    F("input_bytes", input_bytes),
    F("created", created),
    F("base_epoch", base_epoch),
    F("chain_records", chain_records),
#undef F
};
/* fields a file written before incremental checkpoints lacks: it holds all
 * its data (base_epoch 0, chain_records = records) */
#define OPTIONAL_FIELDS 2

static const struct {
    const char *name;
    size_t off, len;
} str_fields[] = {
#define S(n, f)                                                                                    \
    {                                                                                              \
        n, offsetof(mrf__ckpt_meta, f), sizeof(((mrf__ckpt_meta *)0)->f)                           \
    }
    S("job", job),     S("engine_version", version),  S("run_id", run_id),
    S("phase", phase), S("partitioner", partitioner),
#undef S
};

static int put_attrs(hid_t g, const mrf__ckpt_meta *m)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    int rc = sp < 0 ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < sizeof u64_fields / sizeof *u64_fields; i++) {
        const uint64_t *v = (const uint64_t *)((const char *)m + u64_fields[i].off);
        hid_t a = H5Acreate2(g, u64_fields[i].name, u64_type(), sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, H5T_NATIVE_UINT64, v) < 0)
            rc = -1;
        if (a >= 0)
            H5Aclose(a);
    }
    for (size_t i = 0; rc == 0 && i < sizeof str_fields / sizeof *str_fields; i++) {
        const char *v = (const char *)m + str_fields[i].off;
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, strlen(v) + 1);
        H5Tset_strpad(t, H5T_STR_NULLTERM);
        hid_t a = H5Acreate2(g, str_fields[i].name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, t, v) < 0)
            rc = -1;
        if (a >= 0)
            H5Aclose(a);
        H5Tclose(t);
    }
    if (sp >= 0)
        H5Sclose(sp);
    return rc;
}

static int get_attrs(hid_t g, mrf__ckpt_meta *m)
{
    memset(m, 0, sizeof *m);
    size_t nf = sizeof u64_fields / sizeof *u64_fields;
    for (size_t i = 0; i < nf; i++) {
        uint64_t *v = (uint64_t *)((char *)m + u64_fields[i].off);
        if (i >= nf - OPTIONAL_FIELDS && H5Aexists(g, u64_fields[i].name) == 0) {
            *v = strcmp(u64_fields[i].name, "chain_records") == 0 ? m->records : 0;
            continue;
        }
        hid_t a = H5Aopen(g, u64_fields[i].name, H5P_DEFAULT);
        int bad = a < 0 || H5Aread(a, H5T_NATIVE_UINT64, v) < 0;
        if (a >= 0)
            H5Aclose(a);
        if (bad)
            return -1;
    }
    for (size_t i = 0; i < sizeof str_fields / sizeof *str_fields; i++) {
        char *v = (char *)m + str_fields[i].off;
        hid_t a = H5Aopen(g, str_fields[i].name, H5P_DEFAULT);
        if (a < 0)
            return -1;
        hid_t ft = H5Aget_type(a);
        size_t n = ft >= 0 ? H5Tget_size(ft) : 0;
        int bad = ft < 0 || H5Tget_class(ft) != H5T_STRING || n == 0 || n > str_fields[i].len;
        if (!bad) {
            hid_t t = H5Tcopy(H5T_C_S1);
            H5Tset_size(t, n);
            bad = H5Aread(a, t, v) < 0;
            H5Tclose(t);
            v[str_fields[i].len - 1] = '\0';
        }
        if (ft >= 0)
            H5Tclose(ft);
        H5Aclose(a);
        if (bad)
            return -1;
    }
    return 0;
}

static int all_ok(MPI_Comm comm, int rc)
{
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, comm);
    return all;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mrf__malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void epoch_name(char *buf, size_t n, uint64_t epoch)
{
    snprintf(buf, n, "epoch-%06llu.h5", (unsigned long long)epoch);
}

static bool parse_epoch(const char *name, uint64_t *epoch)
{
    unsigned long long e;
    int used = 0;
    if (sscanf(name, "epoch-%llu.h5%n", &e, &used) != 1 || name[used] != '\0' ||
        strncmp(name, "epoch-", 6) != 0)
        return false;
    *epoch = e;
    return true;
}

static void quiet_hdf5(void)
{
    if (getenv("MRFLOW_HDF5_ERRORS")) /* debugging: HDF5's own error stacks */
        return;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* A 1-D dataset of n elements of type ft (n may be 0). */
static hid_t make_dset(hid_t f, const char *name, hid_t ft, uint64_t n)
{
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    if (sp < 0)
        return -1;
    hid_t d = H5Dcreate2(f, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    return d;
}

/* Each rank writes n elements of mt from buf at element off (n may be 0);
 * every rank makes the call.  coll: as one collective MPI-IO write, else
 * each rank's own.  The checkpoint's bulk (/data: one contiguous slab a
 * rank, 64 MiB a call) goes independently: collective buffering ships it
 * through aggregator ranks first, 0.15-0.32 s against 0.03 s for 83 MB a
 * rank on the development VM. */
static int write_slab(hid_t d, hid_t mt, uint64_t off, uint64_t n, const void *buf, bool coll)
{
    hid_t fs = H5Dget_space(d);
    hsize_t o = off, c = n, mdim = n ? n : 1;
    hid_t ms = H5Screate_simple(1, &mdim, NULL);
    hid_t x = H5Pcreate(H5P_DATASET_XFER);
    int rc = fs < 0 || ms < 0 || x < 0 ? -1 : 0;
    if (rc == 0) {
        H5Pset_dxpl_mpio(x, coll ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
        if (n)
            rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, &o, NULL, &c, NULL) < 0 ? -1 : 0;
        else
            rc = H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0 ? -1 : 0;
    }
    static const char dummy[64];
    if (H5Dwrite(d, mt, ms, fs, x, n && buf ? buf : dummy) < 0) /* every rank calls it */
        rc = -1;
    if (x >= 0)
        H5Pclose(x);
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return rc;
}

/* Independent: reads n elements at element off into buf. */
static int read_slab(hid_t d, hid_t mt, uint64_t off, uint64_t n, void *buf)
{
    if (n == 0)
        return 0;
    hid_t fs = H5Dget_space(d);
    hsize_t o = off, c = n;
    hid_t ms = H5Screate_simple(1, &c, NULL);
    int rc = fs < 0 || ms < 0 ? -1 : 0;
    if (rc == 0) {
        hssize_t have = H5Sget_simple_extent_npoints(fs);
        if (have < 0 || off + n > (uint64_t)have)
            rc = -1;
    }
    if (rc == 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &o, NULL, &c, NULL) < 0)
        rc = -1;
    if (rc == 0 && H5Dread(d, mt, ms, fs, H5P_DEFAULT, buf) < 0)
        rc = -1;
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return rc;
}

static int64_t dset_len(hid_t d)
{
    hid_t fs = H5Dget_space(d);
    if (fs < 0)
        return -1;
    int nd = H5Sget_simple_extent_ndims(fs);
    hssize_t n = nd == 1 ? H5Sget_simple_extent_npoints(fs) : -1;
    H5Sclose(fs);
    return (int64_t)n;
}

/* ---------------------------------------------------------------- writer -- */

int mrf__ckpt_writer_create(MPI_Comm comm, const char *spill_dir, mrf__ckpt_writer **out)
{
    mrf__ckpt_writer *w = mrf__calloc(1, sizeof *w);
    if (!w)
        return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    w->comm = comm;
    MPI_Comm_rank(comm, &w->rank);
    MPI_Comm_size(comm, &w->size);
    w->fd = -1;
    w->cur_bucket = UINT32_MAX;
    w->spill_dir = mrf__strdup(spill_dir);
    w->cc = ZSTD_createCCtx();
    w->zcap = ZSTD_compressBound(CK_BLOCK);
    w->zbuf = mrf__malloc(w->zcap);
    if (!w->spill_dir || !w->cc || !w->zbuf ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, CK_LEVEL))) {
        mrf__ckpt_writer_destroy(w);
        return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    }
    *out = w;
    return MRF_OK;
}

void mrf__ckpt_writer_destroy(mrf__ckpt_writer *w)
{
    if (!w)
        return;
    if (w->cc)
        ZSTD_freeCCtx(w->cc);
    mrf__free(w->zbuf);
    mrf__big_free(w->raw, w->raw_cap);
    mrf__big_free(w->mem, w->mem_cap);
    if (w->fd >= 0)
        close(w->fd);
    mrf__free(w->ents);
    mrf__free(w->spill_dir);
    mrf__free(w);
}

/* Bytes staged in memory: CK_MEM_SINK, or MRFLOW_CKPT_MEM (a testing switch,
 * so tests reach the staging file with small data). */
static uint64_t mem_sink(void)
{
    const char *e = getenv("MRFLOW_CKPT_MEM");
    uint64_t v;
    return e && mrf__parse_size(e, &v) == MRF_OK ? v : CK_MEM_SINK;
}

static int sink(mrf__ckpt_writer *w, const char *p, size_t n)
{
    if (w->fd < 0 && w->mem_len + n <= mem_sink()) {
        if (mrf__big_grow(&w->mem, &w->mem_cap, w->mem_len + n))
            return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
        memcpy(w->mem + w->mem_len, p, n);
        w->mem_len += n;
        w->data_len += n;
        return MRF_OK;
    }
    if (w->fd < 0) { /* past the memory share: the rest goes through a file */
        char *tmpl = path_join(w->spill_dir, "mrflow-ckpt-XXXXXX");
        if (!tmpl)
            return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
        w->fd = mkostemp(tmpl, O_CLOEXEC);
        if (w->fd >= 0)
            unlink(tmpl);
        int e = errno;
        if (w->fd < 0) {
            int rc = mrf__fail(MRF_EIO, "checkpoint: cannot create a staging file in '%s': %s",
                               w->spill_dir, strerror(e));
            mrf__free(tmpl);
            return rc;
        }
        mrf__free(tmpl);
    }
    for (size_t done = 0; done < n;) {
        ssize_t k = pwrite(w->fd, p + done, n - done, (off_t)(w->data_len - w->mem_len + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return mrf__fail(MRF_EIO, "checkpoint: writing a staging file in '%s' failed: %s",
                             w->spill_dir, k < 0 ? strerror(errno) : "disk full");
        done += (size_t)k;
    }
    w->data_len += n;
    return MRF_OK;
}

double mrf__ckpt_compress_cost(const char *recs, size_t len)
{
    size_t n = len < CK_BLOCK ? len : CK_BLOCK;
    if (!n)
        return 0;
    const char *from = recs + (len - n) / 2; /* the middle: past a cold start */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t zcap = ZSTD_compressBound(n);
    char *z = mrf__malloc(zcap);
    double t = 0;
    if (cc && z && !ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, CK_LEVEL))) {
        ZSTD_compress2(cc, z, zcap, from, n); /* its tables and z's pages, touched */
        double t0 = MPI_Wtime();
        size_t c = ZSTD_compress2(cc, z, zcap, from, n);
        t = ZSTD_isError(c) ? 0 : (MPI_Wtime() - t0) / (double)n;
    }
    mrf__free(z);
    ZSTD_freeCCtx(cc);
    return t;
}

/* Compresses raw[0, n) (recs whole records of bucket, or MRF__CKPT_MIXED)
 * as one block and sinks it. */
static int put_block(mrf__ckpt_writer *w, const char *raw, size_t n, uint64_t recs, uint32_t bucket)
{
    size_t bound = ZSTD_compressBound(n);
    if (bound > w->zcap) {
        char *z = mrf__realloc(w->zbuf, bound);
        if (!z)
            return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
        w->zbuf = z;
        w->zcap = bound;
    }
    size_t c = ZSTD_compress2(w->cc, w->zbuf, w->zcap, raw, n);
    if (ZSTD_isError(c))
        return mrf__fail(MRF_EINTERNAL, "checkpoint: zstd failed: %s", ZSTD_getErrorName(c));
    ck_ent *ne = mrf__grow_for(w->ents, &w->ents_cap, w->n_ents, sizeof *ne);
    if (!ne)
        return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint's index");
    w->ents = ne;
    ck_ent *e = &w->ents[w->n_ents];
    *e = (ck_ent){.bucket = bucket,
                  .rank = (uint32_t)w->rank,
                  .offset = w->data_len,
                  .length = c,
                  .raw = n,
                  .records = recs,
                  .checksum = mrf__checksum(w->zbuf, c)};
    int rc = sink(w, w->zbuf, c);
    if (rc)
        return rc;
    w->n_ents++;
    w->raw_total += n;
    w->recs_total += recs;
    return MRF_OK;
}

static int flush_block(mrf__ckpt_writer *w)
{
    if (w->raw_len == 0)
        return MRF_OK;
    int rc = put_block(w, w->raw, w->raw_len, w->cur_recs, w->cur_bucket);
    w->raw_len = 0;
    w->cur_recs = 0;
    return rc;
}

int mrf__ckpt_put_span(mrf__ckpt_writer *w, const char *recs, size_t len)
{
    int rc = flush_block(w);
    for (size_t at = 0; rc == MRF_OK && at < len;) {
        size_t end = at, n = 0;
        do { /* whole records, up to a block (at least one) */
            end += mrf__rec_size(recs + end);
            n++;
        } while (end < len && end - at + mrf__rec_size(recs + end) <= CK_BLOCK);
        rc = put_block(w, recs + at, end - at, n, MRF__CKPT_MIXED);
        at = end;
    }
    return rc;
}

void mrf__ckpt_set_mixed(mrf__ckpt_writer *w, bool mixed)
{
    w->mixed = mixed;
}

int mrf__ckpt_put(mrf__ckpt_writer *w, const char *rec)
{
    uint32_t b = w->mixed ? MRF__CKPT_MIXED : mrf__rec_bucket(rec);
    size_t n = mrf__rec_size(rec);
    int rc;
    if ((b != w->cur_bucket || w->raw_len + n > CK_BLOCK) && (rc = flush_block(w)))
        return rc;
    w->cur_bucket = b;
    if (mrf__big_grow(&w->raw, &w->raw_cap, w->raw_len + n))
        return mrf__fail(MRF_ENOMEM, "out of memory for a checkpoint");
    memcpy(w->raw + w->raw_len, rec, n);
    w->raw_len += n;
    w->cur_recs++;
    return MRF_OK;
}

/* Collective: writes this rank's blocks into d (the /data dataset) from
 * data_start on, in pieces of CK_PIECE (every rank makes as many calls). */
static int write_data(mrf__ckpt_writer *w, hid_t d, uint64_t data_start)
{
    uint64_t pieces = (w->data_len + CK_PIECE - 1) / CK_PIECE, most = 0;
    MPI_Allreduce(&pieces, &most, 1, MPI_UINT64_T, MPI_MAX, w->comm);
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (uint64_t k = 0; k < most; k++) {
        uint64_t at = k * CK_PIECE, n = 0;
        const char *p = NULL;
        if (at < w->data_len) {
            n = w->data_len - at < CK_PIECE ? w->data_len - at : CK_PIECE;
            if (at + n <= w->mem_len) {
                p = w->mem + at;
            } else if (rc == 0) {
                if (mrf__big_grow(&buf, &cap, n)) {
                    rc = -1;
                } else {
                    size_t got = 0;
                    if (at < w->mem_len) {
                        got = w->mem_len - at;
                        memcpy(buf, w->mem + at, got);
                    }
                    while (got < n) {
                        ssize_t r =
                            pread(w->fd, buf + got, n - got, (off_t)(at + got - w->mem_len));
                        if (r <= 0 && !(r < 0 && errno == EINTR)) {
                            rc = -1;
                            break;
                        }
                        if (r > 0)
                            got += (size_t)r;
                    }
                }
                p = buf;
            }
        }
        if (rc)
            n = 0; /* still as many calls as the other ranks: metadata reads
                    * are collective in this file (all_coll_metadata_ops), and
                    * one made inside a write must find every rank there */
        if (write_slab(d, H5T_NATIVE_UINT8, data_start + at, n, p, false) < 0)
            rc = -1;
    }
    mrf__big_free(buf, cap);
    return rc;
}

/* Rank 0: LATEST names epoch-N.h5, replaced atomically; older epochs than
 * the two newest removed. */
static bool kept(uint64_t e, const uint64_t *keep, size_t nkeep)
{
    for (size_t i = 0; i < nkeep; i++)
        if (keep[i] == e)
            return true;
    return false;
}

static int publish(const char *dir, uint64_t epoch, const uint64_t *keep, size_t nkeep)
{
    char name[64], line[80];
    epoch_name(name, sizeof name, epoch);
    snprintf(line, sizeof line, "%s\n", name);
    char *tmp = path_join(dir, ".LATEST.tmp"), *latest = path_join(dir, "LATEST");
    int rc = MRF_OK;
    if (!tmp || !latest) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t n = strlen(line);
    if (fd < 0 || write(fd, line, n) != (ssize_t)n || fsync(fd) || close(fd)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        rc = mrf__fail(MRF_EIO, "checkpoint: writing '%s' failed: %s", tmp, strerror(e));
        goto out;
    }
    if (rename(tmp, latest)) {
        rc = mrf__fail(MRF_EIO, "checkpoint: renaming '%s' to '%s' failed: %s", tmp, latest,
                       strerror(errno));
        goto out;
    }
    sync_dir(dir);
    /* keep this epoch and the ones named: its chain and the fallback's
     * (none named: every one is kept) */
    DIR *dp = keep ? opendir(dir) : NULL;
    struct dirent *de;
    while (dp && (de = readdir(dp))) {
        uint64_t e;
        if (parse_epoch(de->d_name, &e) && e < epoch && !kept(e, keep, nkeep)) {
            char *old = path_join(dir, de->d_name);
            if (old && unlink(old) == 0)
                mrf__log(MRF_LOG_DEBUG, "removed the old checkpoint '%s'", old);
            mrf__free(old);
        }
    }
    if (dp)
        closedir(dp);
out:
    mrf__free(tmp);
    mrf__free(latest);
    return rc;
}

int mrf__ckpt_commit(mrf__ckpt_writer *w, const char *dir, mrf__ckpt_meta *m, const uint8_t *done,
                     size_t done_len, const char *part, size_t part_len,
                     const mrf__ckpt_blob *extra, int n_extra, const char *bad, size_t bad_len,
                     const uint64_t *keep, size_t nkeep, bool crash, mrf__ckpt_stats *st)
{
    double t0 = MPI_Wtime();
    int rc = flush_block(w);
    rc = all_ok(w->comm, rc);
    if (rc)
        return rc;
    quiet_hdf5();
    /* datasets are created alike everywhere: rank 0's sizes of what it writes */
    uint64_t small[2 + MRF__CKPT_BLOBS] = {done_len, part_len}, extra_len = 0;
    if (n_extra > MRF__CKPT_BLOBS)
        n_extra = MRF__CKPT_BLOBS;
    for (int i = 0; i < n_extra; i++)
        small[2 + i] = extra[i].len;
    MPI_Bcast(small, 2 + MRF__CKPT_BLOBS, MPI_UINT64_T, 0, w->comm);
    done_len = (size_t)small[0];
    part_len = (size_t)small[1];
    /* where this rank's slabs go */
    uint64_t mine[4] = {w->n_ents, w->data_len, bad_len, 0}, before[4] = {0}, total[4];
    MPI_Exscan(mine, before, 3, MPI_UINT64_T, MPI_SUM, w->comm);
    if (w->rank == 0)
        memset(before, 0, sizeof before);
    MPI_Allreduce(mine, total, 3, MPI_UINT64_T, MPI_SUM, w->comm);
    uint64_t sums[2] = {w->raw_total, w->recs_total}, tsums[2];
    MPI_Allreduce(sums, tsums, 2, MPI_UINT64_T, MPI_SUM, w->comm);
    for (size_t i = 0; i < w->n_ents; i++)
        w->ents[i].offset += before[1];
    m->raw_bytes = tsums[0];
    m->records = tsums[1];
    m->chain_records += tsums[1]; /* the caller set its base's */
    m->stored_bytes = total[1];
    m->blocks = total[0];
    m->ranks = (uint64_t)w->size;
    m->created = (uint64_t)time(NULL);

    char name[64], tname[80];
    epoch_name(name, sizeof name, m->epoch);
    snprintf(tname, sizeof tname, ".%s.tmp", name);
    char *tmp = path_join(dir, tname), *final = path_join(dir, name);
    if (all_ok(w->comm, tmp && final ? MRF_OK : MRF_ENOMEM)) {
        mrf__free(tmp);
        mrf__free(final);
        return mrf__fail(MRF_ENOMEM, "out of memory");
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, w->comm, MPI_INFO_NULL);
    H5Pset_coll_metadata_write(fapl, 1);
    H5Pset_all_coll_metadata_ops(fapl, 1);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        rc = mrf__fail(MRF_EIO, "checkpoint: cannot create '%s' (parallel HDF5)", tmp);
    rc = all_ok(w->comm, rc);
    if (rc) {
        mrf__free(tmp);
        mrf__free(final);
        return rc;
    }
    int bad_h5 = 0;
    hid_t g = H5Gcreate2(f, "/meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 || put_attrs(g, m) < 0)
        bad_h5 = 1;
    if (g >= 0)
        H5Gclose(g);
    hid_t et = ent_type(), stt = slab_type();
    hid_t d_done = make_dset(f, "/tasks_done", H5T_STD_U8LE, done_len);
    hid_t d_part = make_dset(f, "/partition", H5T_STD_U8LE, part_len);
    hid_t d_index = make_dset(f, "/index", et, total[0]);
    hid_t d_slabs = make_dset(f, "/slabs", stt, (uint64_t)w->size);
    hid_t d_data = make_dset(f, "/data", H5T_STD_U8LE, total[1]);
    hid_t d_bad = make_dset(f, "/bad_records", H5T_STD_U8LE, total[2]);
    hid_t d_extra[MRF__CKPT_BLOBS] = {0};
    for (int i = 0; i < n_extra; i++) {
        extra_len += small[2 + i];
        if (small[2 + i] &&
            (d_extra[i] = make_dset(f, extra[i].name, H5T_STD_U8LE, small[2 + i])) < 0)
            bad_h5 = 1;
    }
    if (d_done < 0 || d_part < 0 || d_index < 0 || d_slabs < 0 || d_data < 0 || d_bad < 0)
        bad_h5 = 1;
    ck_slab slab = {before[0], w->n_ents, before[1], w->data_len};
    bad_h5 = all_ok(w->comm, -bad_h5) ? 1 : 0;
    if (!bad_h5) {
        /* rank 0 writes what every rank holds alike; every call is made on
         * every rank (collective), whatever failed before */
        bool r0 = w->rank == 0;
        /* (an empty dataset has no storage to write to: every rank skips it) */
        if (done_len)
            bad_h5 |= write_slab(d_done, H5T_NATIVE_UINT8, 0, r0 ? done_len : 0, done, true) < 0;
        if (part_len)
            bad_h5 |= write_slab(d_part, H5T_NATIVE_UINT8, 0, r0 ? part_len : 0, part, true) < 0;
        for (int i = 0; i < n_extra; i++)
            if (small[2 + i])
                bad_h5 |= write_slab(d_extra[i], H5T_NATIVE_UINT8, 0, r0 ? small[2 + i] : 0,
                                     extra[i].data, true) < 0;
        bad_h5 |= write_slab(d_slabs, stt, (uint64_t)w->rank, 1, &slab, true) < 0;
        if (total[0])
            bad_h5 |= write_slab(d_index, et, before[0], w->n_ents, w->ents, true) < 0;
        if (total[2])
            bad_h5 |= write_slab(d_bad, H5T_NATIVE_UINT8, before[2], bad_len, bad, true) < 0;
        if (total[1])
            bad_h5 |= write_data(w, d_data, before[1]) < 0;
    }
    if (crash) {
        mrf__log(MRF_LOG_WARN, "--fault crash: killing myself while writing '%s'", tmp);
        raise(SIGKILL);
    }
    hid_t ds[] = {d_done, d_part, d_index, d_slabs, d_data, d_bad, d_extra[0], d_extra[1]};
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++)
        if (ds[i] > 0)
            H5Dclose(ds[i]);
    H5Tclose(et);
    H5Tclose(stt);
    if (H5Fclose(f) < 0)
        bad_h5 = 1;
    if (bad_h5)
        rc = mrf__fail(MRF_EIO, "checkpoint: writing '%s' failed (disk full, or quota?)", tmp);
    double t_written = MPI_Wtime();
    /* every rank makes its own writes durable (on a parallel file system a
     * client's cache is its own) */
    if (rc == MRF_OK) {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd))
            rc = mrf__fail(MRF_EIO, "checkpoint: fsync of '%s' failed: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    double t_synced = MPI_Wtime();
    rc = all_ok(w->comm, rc);
    mrf__log(MRF_LOG_DEBUG,
             "checkpoint: %llu bytes in %zu blocks written in %.3f s and fsynced in %.3f s, "
             "then waited %.3f s for the other ranks",
             (unsigned long long)w->data_len, w->n_ents, t_written - t0, t_synced - t_written,
             MPI_Wtime() - t_synced);
    if (w->rank == 0) {
        if (rc == MRF_OK && rename(tmp, final))
            rc = mrf__fail(MRF_EIO, "checkpoint: renaming '%s' to '%s' failed: %s", tmp, final,
                           strerror(errno));
        if (rc == MRF_OK) {
            sync_dir(dir);
            rc = publish(dir, m->epoch, keep, nkeep);
        }
        if (rc)
            unlink(tmp);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, w->comm);
    if (rc == MRF_OK && st) {
        st->written++;
        st->bytes +=
            total[1] + total[0] * sizeof(ck_ent) + done_len + part_len + extra_len + total[2];
        st->raw_bytes += tsums[0];
        st->seconds += MPI_Wtime() - t0; /* the caller adds the time gathering the data */
        st->last_epoch = m->epoch;
    }
    mrf__free(tmp);
    mrf__free(final);
    /* ready for the next checkpoint */
    w->n_ents = 0;
    w->data_len = w->mem_len = 0;
    w->raw_total = w->recs_total = 0;
    w->cur_bucket = UINT32_MAX;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    return rc;
}

/* ------------------------------------------------------------- directory -- */

int mrf__ckpt_prepare(const char *dir, uint64_t *epochs, int max, int *n, char *err, size_t errlen)
{
    *n = 0;
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen,
                 "--checkpoint-dir '%s' exists and is not a directory: name a directory", dir);
        return MRF_EUSAGE;
    }
    if (mkdir(dir, 0755) && errno != EEXIST) {
        snprintf(err, errlen,
                 "--checkpoint-dir '%s' cannot be created: %s; create it, or name one this "
                 "user may write",
                 dir, strerror(errno));
        return MRF_EUSAGE;
    }
    /* writable?  (as root, permission bits alone say nothing) */
    char *probe = path_join(dir, ".mrflow-probe");
    if (!probe)
        return MRF_ENOMEM;
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = errno;
    if (fd >= 0) {
        close(fd);
        unlink(probe);
    }
    mrf__free(probe);
    if (fd < 0) {
        snprintf(err, errlen,
                 "--checkpoint-dir '%s' is not writable: %s; fix its permissions or name "
                 "another directory",
                 dir, strerror(e));
        return MRF_EUSAGE;
    }
    /* the newest epoch LATEST may name; files of crashed writes go */
    uint64_t latest = UINT64_MAX;
    char *lp = path_join(dir, "LATEST");
    FILE *lf = lp ? fopen(lp, "r") : NULL;
    if (lf) {
        char line[128];
        uint64_t e2;
        if (fgets(line, sizeof line, lf)) {
            line[strcspn(line, "\n")] = '\0';
            if (parse_epoch(line, &e2))
                latest = e2;
        }
        fclose(lf);
        if (latest == UINT64_MAX)
            mrf__log(MRF_LOG_WARN, "checkpoint: '%s' is damaged; looking at every epoch in '%s'",
                     lp, dir);
    }
    mrf__free(lp);
    DIR *dp = opendir(dir);
    struct dirent *de;
    while (dp && (de = readdir(dp))) {
        uint64_t ep;
        if (de->d_name[0] == '.' && strstr(de->d_name, ".h5.tmp")) {
            char *t = path_join(dir, de->d_name);
            if (t) {
                unlink(t);
                mrf__log(MRF_LOG_INFO, "removed '%s', left by a checkpoint that did not finish", t);
            }
            mrf__free(t);
            continue;
        }
        if (!parse_epoch(de->d_name, &ep) || ep > latest)
            continue;
        /* keep the max newest, descending */
        int i;
        if (*n < max) {
            i = (*n)++;
        } else if (epochs[max - 1] < ep) {
            i = max - 1;
        } else {
            continue;
        }
        epochs[i] = ep;
        while (i > 0 && epochs[i - 1] < epochs[i]) {
            uint64_t t = epochs[i - 1];
            epochs[i - 1] = epochs[i];
            epochs[i] = t;
            i--;
        }
    }
    if (dp)
        closedir(dp);
    return MRF_OK;
}

void mrf__ckpt_remove_all(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    uint64_t e, n = 0;
    while (dp && (de = readdir(dp)))
        if (parse_epoch(de->d_name, &e) || strcmp(de->d_name, "LATEST") == 0) {
            char *p = path_join(dir, de->d_name);
            if (p && unlink(p) == 0)
                n++;
            mrf__free(p);
        }
    if (dp)
        closedir(dp);
    sync_dir(dir);
    mrf__log(MRF_LOG_INFO, "the output is committed: removed %llu checkpoint file%s from '%s'",
             (unsigned long long)n, n == 1 ? "" : "s", dir);
}

/* ---------------------------------------------------------------- reader -- */

struct mrf__ckpt_reader {
    MPI_Comm comm;
    int rank, size;
    hid_t f;
    char *path;
    mrf__ckpt_meta meta;
};

const char *mrf__ckpt_path(const mrf__ckpt_reader *r)
{
    return r->path;
}

static int open_file(const char *path, MPI_Comm comm, hid_t *f)
{
    quiet_hdf5();
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    H5Pset_all_coll_metadata_ops(fapl, 1);
    *f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return *f < 0 ? MRF_EIO : MRF_OK;
}

int mrf__ckpt_open(MPI_Comm comm, const char *dir, uint64_t epoch, mrf__ckpt_reader **out,
                   mrf__ckpt_meta *meta)
{
    char name[64];
    epoch_name(name, sizeof name, epoch);
    mrf__ckpt_reader *r = mrf__calloc(1, sizeof *r);
    char *path = path_join(dir, name);
    if (all_ok(comm, r && path ? MRF_OK : MRF_ENOMEM)) {
        mrf__free(r);
        mrf__free(path);
        return MRF_ENOMEM;
    }
    r->comm = comm;
    r->path = path;
    r->f = -1;
    MPI_Comm_rank(comm, &r->rank);
    MPI_Comm_size(comm, &r->size);
    int rc = open_file(path, comm, &r->f);
    rc = all_ok(comm, rc);
    if (rc == MRF_OK) {
        hid_t g = H5Gopen2(r->f, "/meta", H5P_DEFAULT);
        if (g < 0 || get_attrs(g, &r->meta) < 0)
            rc = MRF_EIO;
        if (g >= 0)
            H5Gclose(g);
        rc = all_ok(comm, rc);
    }
    if (rc == MRF_OK && r->meta.epoch != epoch)
        rc = MRF_EIO;
    if (rc) {
        mrf__ckpt_close(r);
        return rc;
    }
    *meta = r->meta;
    *out = r;
    return MRF_OK;
}

void mrf__ckpt_close(mrf__ckpt_reader *r)
{
    if (!r)
        return;
    if (r->f >= 0)
        H5Fclose(r->f);
    mrf__free(r->path);
    mrf__free(r);
}

int mrf__ckpt_read_bytes(mrf__ckpt_reader *r, const char *name, uint64_t max, char **buf,
                         size_t *len)
{
    *buf = NULL;
    *len = 0;
    hid_t d = H5Dopen2(r->f, name, H5P_DEFAULT);
    int64_t n = d >= 0 ? dset_len(d) : -1;
    int rc = n < 0 || (uint64_t)n > max ? MRF_EIO : MRF_OK;
    if (rc == MRF_OK && !(*buf = mrf__malloc((size_t)n + 1)))
        rc = MRF_ENOMEM;
    if (rc == MRF_OK && read_slab(d, H5T_NATIVE_UINT8, 0, (uint64_t)n, *buf) < 0)
        rc = MRF_EIO;
    if (d >= 0)
        H5Dclose(d);
    if (rc) {
        mrf__free(*buf);
        *buf = NULL;
        return rc;
    }
    *len = (size_t)n;
    return MRF_OK;
}

/* Checks one block's bytes and decodes it into raw (entry e). */
static int check_block(const ck_ent *e, const char *z, char *raw, uint32_t nb, ZSTD_DCtx *dc,
                       const char *path)
{
    if (mrf__checksum(z, e->length) != e->checksum)
        return mrf__fail(MRF_EIO,
                         "checkpoint '%s': block of bucket %u (rank %u, offset %llu) fails its "
                         "checksum",
                         path, e->bucket, e->rank, (unsigned long long)e->offset);
    size_t d = ZSTD_decompressDCtx(dc, raw, e->raw, z, e->length);
    size_t n = 0;
    if (ZSTD_isError(d) || d != e->raw || mrf__kvbuf_check(raw, e->raw, &n) || n != e->records)
        return mrf__fail(MRF_EIO,
                         "checkpoint '%s': block of bucket %u (offset %llu) does not decode to "
                         "its %llu records",
                         path, e->bucket, (unsigned long long)e->offset,
                         (unsigned long long)e->records);
    for (size_t at = 0; at < e->raw; at += mrf__rec_size(raw + at))
        if (e->bucket == MRF__CKPT_MIXED
                ? mrf__rec_bucket(raw + at) >= nb
                : mrf__rec_bucket(raw + at) != e->bucket || e->bucket >= nb)
            return mrf__fail(MRF_EIO, "checkpoint '%s': a record is in the wrong bucket", path);
    return MRF_OK;
}

int mrf__ckpt_load(mrf__ckpt_reader *r, int slab, mrf__ckpt_block_fn fn, void *ctx)
{
    int rc = MRF_OK;
    hid_t d_slabs = H5Dopen2(r->f, "/slabs", H5P_DEFAULT);
    hid_t d_index = H5Dopen2(r->f, "/index", H5P_DEFAULT);
    hid_t d_data = H5Dopen2(r->f, "/data", H5P_DEFAULT);
    hid_t et = ent_type(), stt = slab_type();
    ck_slab *slabs = NULL;
    ck_ent *ents = NULL;
    char *zb = NULL, *raw = NULL;
    size_t zcap = 0, rawcap = 0;
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    int64_t nslabs = d_slabs >= 0 ? dset_len(d_slabs) : -1;
    int64_t dlen = d_data >= 0 ? dset_len(d_data) : -1;
    int64_t ilen = d_index >= 0 ? dset_len(d_index) : -1;
    if (!dc || nslabs != (int64_t)r->meta.ranks || nslabs <= 0 || nslabs > (1 << 24) ||
        dlen != (int64_t)r->meta.stored_bytes || ilen != (int64_t)r->meta.blocks) {
        rc = mrf__fail(MRF_EIO, "checkpoint '%s': its datasets do not match its /meta", r->path);
        goto out;
    }
    if (!(slabs = mrf__malloc((size_t)nslabs * sizeof *slabs))) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory reading a checkpoint");
        goto out;
    }
    if (read_slab(d_slabs, stt, 0, (uint64_t)nslabs, slabs) < 0) {
        rc = mrf__fail(MRF_EIO, "checkpoint '%s': /slabs unreadable", r->path);
        goto out;
    }
    /* my share: the blocks that start in [lo, hi) of /data: an equal part,
     * or all of one writer's slab */
    uint64_t D = (uint64_t)dlen;
    uint64_t lo = (uint64_t)((unsigned __int128)D * (unsigned)r->rank / (unsigned)r->size);
    uint64_t hi = (uint64_t)((unsigned __int128)D * (unsigned)(r->rank + 1) / (unsigned)r->size);
    if (slab >= 0 && slab < nslabs) {
        lo = slabs[slab].data_start;
        hi = lo + slabs[slab].data_length;
    }
    for (int64_t s = 0; s < nslabs && rc == MRF_OK; s++) {
        const ck_slab *sl = &slabs[s];
        if (sl->index_start + sl->index_count > (uint64_t)ilen ||
            sl->data_start + sl->data_length > D) {
            rc = mrf__fail(MRF_EIO, "checkpoint '%s': /slabs entry %lld out of range", r->path,
                           (long long)s);
            break;
        }
        if (sl->data_length == 0 || sl->data_start >= hi || sl->data_start + sl->data_length <= lo)
            continue;
        ck_ent *ne =
            mrf__realloc(ents, (size_t)(sl->index_count ? sl->index_count : 1) * sizeof *ents);
        if (!ne) {
            rc = mrf__fail(MRF_ENOMEM, "out of memory reading a checkpoint");
            break;
        }
        ents = ne;
        if (read_slab(d_index, et, sl->index_start, sl->index_count, ents) < 0) {
            rc = mrf__fail(MRF_EIO, "checkpoint '%s': /index unreadable", r->path);
            break;
        }
        /* the entries starting in [lo, hi): contiguous; read in pieces */
        size_t i = 0, n = (size_t)sl->index_count;
        uint64_t expect = sl->data_start;
        for (size_t k = 0; k < n; k++) { /* the slab's blocks tile it */
            if (ents[k].offset != expect || ents[k].raw > INT32_MAX ||
                ents[k].length > ZSTD_compressBound(ents[k].raw) + 64) {
                rc = mrf__fail(MRF_EIO, "checkpoint '%s': /index entry %llu is inconsistent",
                               r->path, (unsigned long long)(sl->index_start + k));
                break;
            }
            expect += ents[k].length;
        }
        if (rc == MRF_OK && expect != sl->data_start + sl->data_length)
            rc = mrf__fail(MRF_EIO, "checkpoint '%s': /index does not cover rank %lld's data",
                           r->path, (long long)s);
        while (i < n && ents[i].offset < lo)
            i++;
        while (rc == MRF_OK && i < n && ents[i].offset < hi) {
            size_t j = i;
            uint64_t len = 0;
            while (j < n && ents[j].offset < hi && (len == 0 || len + ents[j].length <= CK_PIECE))
                len += ents[j++].length;
            if (mrf__big_grow(&zb, &zcap, len)) {
                rc = mrf__fail(MRF_ENOMEM, "out of memory reading a checkpoint");
                break;
            }
            if (read_slab(d_data, H5T_NATIVE_UINT8, ents[i].offset, len, zb) < 0) {
                rc = mrf__fail(MRF_EIO, "checkpoint '%s': reading /data at %llu failed", r->path,
                               (unsigned long long)ents[i].offset);
                break;
            }
            for (size_t k = i; k < j && rc == MRF_OK; k++) {
                if (mrf__big_grow(&raw, &rawcap, ents[k].raw ? ents[k].raw : 1)) {
                    rc = mrf__fail(MRF_ENOMEM, "out of memory reading a checkpoint");
                    break;
                }
                rc = check_block(&ents[k], zb + (ents[k].offset - ents[i].offset), raw,
                                 (uint32_t)r->meta.nb, dc, r->path);
                if (rc == MRF_OK)
                    rc = fn(ctx, raw, ents[k].raw, ents[k].records);
            }
            i = j;
        }
    }
out:
    if (dc)
        ZSTD_freeDCtx(dc);
    mrf__free(slabs);
    mrf__free(ents);
    mrf__big_free(zb, zcap);
    mrf__big_free(raw, rawcap);
    H5Tclose(et);
    H5Tclose(stt);
    if (d_slabs >= 0)
        H5Dclose(d_slabs);
    if (d_index >= 0)
        H5Dclose(d_index);
    if (d_data >= 0)
        H5Dclose(d_data);
    return rc;
}

/* This rank's part of /bad_records: the bytes starting in its share,
 * extended to whole lines. */
int mrf__ckpt_read_bad(mrf__ckpt_reader *r, char **buf, size_t *len)
{
    char *all = NULL;
    size_t n = 0;
    *buf = NULL;
    *len = 0;
    if (r->meta.bad_records == 0)
        return MRF_OK;
    /* dead letters are few (at most --max-bad-records): rank 0 takes them all */
    int rc = mrf__ckpt_read_bytes(r, "/bad_records", 1ull << 34, &all, &n);
    if (rc)
        return mrf__fail(rc, "checkpoint '%s': /bad_records unreadable", r->path);
    if (r->rank != 0) {
        mrf__free(all);
        return MRF_OK;
    }
    *buf = all;
    *len = n;
    return MRF_OK;
}

/* -------------------------------------------------------------- inspect -- */

/* `mrflow inspect` of an epoch of phase "reducing": its /reduce, checked. */
static int inspect_progress(hid_t f, const mrf__ckpt_meta *m, FILE *out)
{
    hid_t d = H5Dopen2(f, "/reduce", H5P_DEFAULT);
    int64_t n = d >= 0 ? dset_len(d) : -1;
    uint64_t *w = n >= 32 && n % 8 == 0 && n < (1ll << 31) ? mrf__malloc((size_t)n) : NULL;
    bool ok = w && read_slab(d, H5T_NATIVE_UINT8, 0, (uint64_t)n, w) >= 0;
    size_t words = (size_t)n / 8, hdr = ok ? 4 + (size_t)(w[3] + 8) / 8 : 0;
    ok = ok && w[0] == MRF__PROG_MAGIC && w[1] == m->ranks && w[2] == MRF__PROG_FIELDS &&
         w[3] < words * 8 && hdr + w[1] * MRF__PROG_FIELDS == words &&
         ((char *)&w[4])[w[3]] == '\0';
    if (d >= 0)
        H5Dclose(d);
    if (!ok) {
        fprintf(out, "  reduce progress: FAILED: /reduce is missing or damaged\n");
        mrf__free(w);
        return MRF_EIO;
    }
    uint64_t keys = 0, bytes = 0, recs = 0;
    for (uint64_t r = 0; r < w[1]; r++) {
        const uint64_t *f1 = w + hdr + r * MRF__PROG_FIELDS;
        keys += f1[MRF__PROG_KEYS];
        bytes += f1[MRF__PROG_WRITTEN];
        recs += f1[MRF__PROG_RECS];
    }
    fprintf(out,
            "  reduce progress: %llu keys reduced, %llu records (%llu bytes) of output kept in "
            "'%s'; %s; a resume on %llu ranks continues the parts\n",
            (unsigned long long)keys, (unsigned long long)recs, (unsigned long long)bytes,
            (const char *)&w[4],
            m->base_epoch ? "the data is its base's" : "no data: a resume maps everything again",
            (unsigned long long)w[1]);
    mrf__free(w);
    return MRF_OK;
}

int mrf__ckpt_inspect(const char *path, FILE *out)
{
    quiet_hdf5();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); /* a plain HDF5 file: no MPI needed */
    if (f < 0) {
        fprintf(stderr, "mrflow inspect: '%s' is not a readable HDF5 file\n", path);
        return MRF_EINPUT;
    }
    mrf__ckpt_meta m;
    hid_t g = H5Gopen2(f, "/meta", H5P_DEFAULT);
    if (g < 0 || get_attrs(g, &m) < 0) {
        if (g >= 0)
            H5Gclose(g);
        H5Fclose(f);
        fprintf(stderr, "mrflow inspect: '%s' is not an mrflow checkpoint (no complete /meta)\n",
                path);
        return MRF_EINPUT;
    }
    H5Gclose(g);
    time_t created = (time_t)m.created;
    struct tm tm;
    char when[40] = "?";
    if (gmtime_r(&created, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(out,
            "checkpoint %s\n"
            "  job %s, engine %s, run %s, written %s by %llu ranks\n"
            "  epoch %llu, phase %s: %llu of %llu map tasks done (task size %llu)\n"
            "  partitioner %s, map-combine %s, %llu buckets (%llu hash, --buckets %llu)\n"
            "  fingerprints: spec %016llx, inputs %016llx\n"
            "  data: %llu records, %llu bytes raw, %llu stored (%.2fx) in %llu blocks\n"
            "  builds on: %s%llu; %llu records in the chain\n"
            "  input mapped: %llu records, %llu bytes; %llu bad records set aside\n",
            path, m.job, m.version, m.run_id, when, (unsigned long long)m.ranks,
            (unsigned long long)m.epoch, m.phase, (unsigned long long)m.tasks_done,
            (unsigned long long)m.tasks, (unsigned long long)m.task_size, m.partitioner,
            m.map_combine ? "on" : "off", (unsigned long long)m.nb, (unsigned long long)m.nb_base,
            (unsigned long long)m.buckets_opt, (unsigned long long)m.spec_fp,
            (unsigned long long)m.inputs_fp, (unsigned long long)m.records,
            (unsigned long long)m.raw_bytes, (unsigned long long)m.stored_bytes,
            m.stored_bytes ? (double)m.raw_bytes / (double)m.stored_bytes : 1.0,
            (unsigned long long)m.blocks,
            m.base_epoch ? "epoch " : "nothing (this file holds all its data)",
            (unsigned long long)m.base_epoch, (unsigned long long)m.chain_records,
            (unsigned long long)m.records_in, (unsigned long long)m.input_bytes,
            (unsigned long long)m.bad_records);
    int rc = MRF_OK;
    if (strcmp(m.phase, "reducing") == 0)
        rc = inspect_progress(f, &m, out); /* (a failure stays rc) */
    /* every block: checksum and decoding; sizes per bucket */
    hid_t d_index = H5Dopen2(f, "/index", H5P_DEFAULT);
    hid_t d_data = H5Dopen2(f, "/data", H5P_DEFAULT);
    hid_t et = ent_type();
    int64_t ne = d_index >= 0 ? dset_len(d_index) : -1;
    int64_t nd = d_data >= 0 ? dset_len(d_data) : -1;
    uint64_t *braw = NULL, *bstored = NULL;
    uint64_t bad = 0, checked = 0;
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    if (ne != (int64_t)m.blocks || nd != (int64_t)m.stored_bytes || m.nb > (1u << 26) || !dc) {
        fprintf(out, "  verification: FAILED: /index or /data does not match /meta\n");
        rc = MRF_EIO;
        goto out;
    }
    braw = mrf__calloc(m.nb ? m.nb : 1, sizeof *braw);
    bstored = mrf__calloc(m.nb ? m.nb : 1, sizeof *bstored);
    char *z = NULL, *raw = NULL;
    size_t zc = 0, rcap = 0;
    ck_ent e;
    for (int64_t i = 0; braw && bstored && i < ne; i++) {
        if (read_slab(d_index, et, (uint64_t)i, 1, &e) < 0 || e.offset + e.length > (uint64_t)nd ||
            e.raw > INT32_MAX || e.length > ZSTD_compressBound(e.raw) + 64 ||
            (e.bucket >= m.nb && e.bucket != MRF__CKPT_MIXED) ||
            mrf__big_grow(&z, &zc, e.length ? e.length : 1) ||
            mrf__big_grow(&raw, &rcap, e.raw ? e.raw : 1) ||
            read_slab(d_data, H5T_NATIVE_UINT8, e.offset, e.length, z) < 0) {
            bad++;
            continue;
        }
        if (check_block(&e, z, raw, (uint32_t)m.nb, dc, path) == MRF_OK) {
            for (size_t at = 0; at < e.raw; at += mrf__rec_size(raw + at)) /* by record */
                braw[mrf__rec_bucket(raw + at)] += mrf__rec_size(raw + at);
            if (e.bucket != MRF__CKPT_MIXED)
                bstored[e.bucket] += e.length;
            checked++;
        } else {
            bad++;
        }
    }
    mrf__big_free(z, zc);
    mrf__big_free(raw, rcap);
    if (braw && bstored) {
        uint64_t nonempty = 0, maxb = 0, maxraw = 0;
        for (uint64_t b = 0; b < m.nb; b++)
            if (braw[b]) {
                nonempty++;
                if (braw[b] > maxraw) {
                    maxraw = braw[b];
                    maxb = b;
                }
            }
        fprintf(out, "  buckets with data: %llu; largest: bucket %llu, %llu bytes raw\n",
                (unsigned long long)nonempty, (unsigned long long)maxb, (unsigned long long)maxraw);
        fprintf(out, "  per bucket (bucket raw_bytes stored_bytes%s), non-empty ones:\n",
                strcmp(m.phase, "shuffled") == 0
                    ? "; stored 0: the blocks hold the buckets of one reducing rank"
                    : "; stored 0: in blocks of mixed buckets, as the map arena held them");
        uint64_t shown = 0;
        for (uint64_t b = 0; b < m.nb && shown < 64; b++)
            if (braw[b]) {
                fprintf(out, "    %6llu %12llu %12llu\n", (unsigned long long)b,
                        (unsigned long long)braw[b], (unsigned long long)bstored[b]);
                shown++;
            }
        if (nonempty > shown)
            fprintf(out, "    ... %llu more\n", (unsigned long long)(nonempty - shown));
    }
    if (bad) {
        fprintf(out, "  verification: FAILED: %llu of %llu blocks damaged\n",
                (unsigned long long)bad, (unsigned long long)(bad + checked));
        rc = MRF_EIO;
    } else {
        fprintf(out, "  verification: OK: %llu blocks, every checksum and record verified\n",
                (unsigned long long)checked);
    }
out:
    if (dc)
        ZSTD_freeDCtx(dc);
    mrf__free(braw);
    mrf__free(bstored);
    H5Tclose(et);
    if (d_index >= 0)
        H5Dclose(d_index);
    if (d_data >= 0)
        H5Dclose(d_data);
    H5Fclose(f);
    return rc;
}
