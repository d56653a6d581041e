/*
 * h5out.c -- --format hdf5: the job's output as one HDF5 file, written
 * collectively, readable with h5dump and h5py.
 *
 *   DIR/output.h5
 *     attributes: mrflow_output (1), job, run_id, job_fingerprint, parts,
 *                 records, text_format ("text": key TAB value NL per
 *                 record in the parts it replaces; "raw": key then value)
 *     /part-NNNNN (one group per rank, as the parts would be)
 *       attribute records
 *       keys          uint8[]   every key's bytes, back to back
 *       key_offsets   uint64[records + 1]: key i is keys[off[i]:off[i+1]]
 *       values        uint8[]
 *       value_offsets uint64[records + 1]
 *   or, for a job of typed output (typed.c; attribute layout "typed"):
 *       keys          KEY_TYPE[records]
 *       values        VALUE_TYPE[records]: a compound of the value
 *                     columns, packed, or the one column's type
 *
 * During the reduce each rank stages its records (u32 klen, u32 vlen, key,
 * value) in DIR/.stage-RANK; then every rank learns every part's sizes (one
 * MPI_Allgather), creates every group and dataset (collective, identical
 * everywhere), and writes its own part's datasets with independent I/O
 * (so no rank takes part in P^2 calls), streaming the staged file through
 * 8 MiB buffers.  The file is closed collectively and fsynced by every rank;
 * the output directory's commit (rename, _SUCCESS) then covers it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define PIECE (8u << 20)

static int attr_u64(hid_t at, const char *name, uint64_t v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(at, name, H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, H5T_NATIVE_UINT64, &v) < 0 ? -1 : 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

static int attr_str(hid_t at, const char *name, const char *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t a = H5Acreate2(at, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a < 0 || H5Awrite(a, t, v) < 0 ? -1 : 0;
    if (a >= 0)
        H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
    return rc;
}

static hid_t dset(hid_t g, const char *name, hid_t t, uint64_t n)
{
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d = H5Dcreate2(g, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    return d;
}

/* Independent write of n elements at element off. */
static int put(hid_t d, hid_t mt, uint64_t off, uint64_t n, const void *buf)
{
    if (n == 0)
        return 0;
    hsize_t o = off, c = n;
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &c, NULL);
    int rc = fs < 0 || ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, &o, NULL, &c, NULL) < 0 ||
                     H5Dwrite(d, mt, ms, fs, H5P_DEFAULT, buf) < 0
                 ? -1
                 : 0;
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return rc;
}

typedef struct sink {
    hid_t d;
    hid_t mt;
    size_t esize;
    char *buf;
    size_t n, cap; /* elements buffered, capacity in elements */
    uint64_t at;   /* elements written */
} sink;

static int sink_flush(sink *k)
{
    int rc = put(k->d, k->mt, k->at, k->n, k->buf);
    k->at += k->n;
    k->n = 0;
    return rc;
}

static int sink_add(sink *k, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        size_t take = k->cap - k->n < n ? k->cap - k->n : n;
        memcpy(k->buf + k->n * k->esize, c, take * k->esize);
        k->n += take;
        c += take * k->esize;
        n -= take;
        if (k->n == k->cap && sink_flush(k))
            return -1;
    }
    return 0;
}

/* A typed column's HDF5 type (a predefined one: not to be closed). */
static hid_t column_type(const mrf_column *c)
{
    bool u = c->cls == MRF_FIELD_UINT;
    switch (c->cls == MRF_FIELD_FLOAT ? 16 + (int)c->size : (int)c->size) {
    case 1:
        return u ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT8;
    case 2:
        return u ? H5T_NATIVE_UINT16 : H5T_NATIVE_INT16;
    case 4:
        return u ? H5T_NATIVE_UINT32 : H5T_NATIVE_INT32;
    case 8:
        return u ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
    case 16 + 4:
        return H5T_NATIVE_FLOAT;
    default:
        return H5T_NATIVE_DOUBLE;
    }
}

/* The values' type: a packed compound of the columns (closed by the
 * caller), or the one column's type (predefined: *owned 0). */
static hid_t values_type(const mrf_column *v, bool *owned)
{
    *owned = v[1].name != NULL;
    if (!*owned)
        return column_type(v);
    hid_t t = H5Tcreate(H5T_COMPOUND, mrf__typed_vsize(v));
    for (size_t off = 0; t >= 0 && v->name; off += v->size, v++)
        if (H5Tinsert(t, v->name, off, column_type(v)) < 0) {
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
    return t;
}

/* This rank's staged records into its part's datasets: four of bytes and
 * offsets, or two typed ones. */
static int fill_part(const char *stage, hid_t g, const mrf__h5out *o)
{
    const bool typed = o->key_type != NULL;
    const char *names[4] = {"keys", typed ? "values" : "key_offsets", "values", "value_offsets"};
    const int nd = typed ? 2 : 4;
    bool owned = false;
    sink k[4];
    int rc = 0;
    memset(k, 0, sizeof k);
    for (int i = 0; i < nd; i++) {
        k[i].d = H5Dopen2(g, names[i], H5P_DEFAULT);
        k[i].mt = typed   ? (i ? values_type(o->value_type, &owned) : column_type(o->key_type))
                  : i % 2 ? H5T_NATIVE_UINT64
                          : H5T_NATIVE_UINT8;
        k[i].esize = typed   ? (i ? mrf__typed_vsize(o->value_type) : o->key_type->size)
                     : i % 2 ? 8
                             : 1;
        k[i].cap = PIECE / k[i].esize;
        k[i].buf = mrf__malloc(PIECE);
        if (k[i].d < 0 || k[i].mt < 0 || !k[i].buf)
            rc = -1;
    }
    int fd = rc ? -1 : open(stage, O_RDONLY | O_CLOEXEC);
    char *in = mrf__malloc(PIECE);
    size_t cap = PIECE, len = 0;
    uint64_t koff = 0, voff = 0, recs = 0;
    if (fd < 0 || !in)
        rc = -1;
    for (bool eof = false; rc == 0 && !eof;) {
        ssize_t r = read(fd, in + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -1;
            break;
        }
        eof = r == 0;
        len += (size_t)r;
        size_t at = 0;
        while (rc == 0 && len - at >= 8) {
            uint32_t kl = mrf__rd32(in + at), vl = mrf__rd32(in + at + 4);
            size_t need = 8 + (size_t)kl + vl;
            if (len - at < need) {
                if (need > cap) { /* one record larger than the buffer */
                    char *bigger = mrf__realloc(in, need);
                    if (!bigger)
                        rc = -1;
                    else
                        in = bigger, cap = need;
                }
                break;
            }
            if (typed) { /* (sizes checked as reduce emitted them) */
                rc |= kl != k[0].esize || vl != k[1].esize;
                rc |= sink_add(&k[0], in + at + 8, 1);
                rc |= sink_add(&k[1], in + at + 8 + kl, 1);
            } else {
                rc |= sink_add(&k[1], &koff, 1);
                rc |= sink_add(&k[3], &voff, 1);
                rc |= sink_add(&k[0], in + at + 8, kl);
                rc |= sink_add(&k[2], in + at + 8 + kl, vl);
            }
            koff += kl;
            voff += vl;
            recs++;
            at += need;
        }
        memmove(in, in + at, len - at);
        len -= at;
        if (eof && len)
            rc = -1; /* a torn record: the stage is damaged */
    }
    if (rc == 0) {
        if (!typed) {
            rc |= sink_add(&k[1], &koff, 1);
            rc |= sink_add(&k[3], &voff, 1);
        }
        for (int i = 0; i < nd; i++)
            rc |= sink_flush(&k[i]);
        if (recs != o->recs || koff != o->kbytes || voff != o->vbytes)
            rc = -1;
    }
    if (fd >= 0)
        close(fd);
    mrf__free(in);
    for (int i = 0; i < nd; i++) {
        if (k[i].d >= 0)
            H5Dclose(k[i].d);
        mrf__free(k[i].buf);
    }
    if (owned && k[1].mt >= 0)
        H5Tclose(k[1].mt);
    return rc;
}

int mrf__output_h5(MPI_Comm comm, const char *dir, const mrf__h5out *o, uint64_t *bytes)
{
    int rank, size, rc = MRF_OK;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    if (!getenv("MRFLOW_HDF5_ERRORS"))
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    uint64_t mine[3] = {o->recs, o->kbytes, o->vbytes};
    uint64_t *all = mrf__malloc((size_t)size * sizeof mine);
    size_t n = strlen(dir) + 32;
    char *path = mrf__malloc(n), *stage = mrf__malloc(n);
    int ok = all && path && stage ? MRF_OK : MRF_ENOMEM, allok;
    MPI_Allreduce(&ok, &allok, 1, MPI_INT, MPI_MIN, comm);
    if (allok) {
        mrf__free(all);
        mrf__free(path);
        mrf__free(stage);
        return ok ? mrf__fail(MRF_ENOMEM, "out of memory writing output.h5") : allok;
    }
    MPI_Allgather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, comm);
    snprintf(path, n, "%s/output.h5", dir);
    snprintf(stage, n, "%s/.stage-%05d", dir, rank);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    H5Pset_coll_metadata_write(fapl, 1);
    hid_t f = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    int bad = f < 0;
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm);
    if (bad) {
        if (f >= 0)
            H5Fclose(f);
        rc = mrf__fail(MRF_EIO, "cannot create '%s' (parallel HDF5)", path);
        goto out;
    }
    uint64_t total = 0;
    for (int p = 0; p < size; p++)
        total += all[3 * p];
    bad |= attr_u64(f, "mrflow_output", 1) | attr_str(f, "job", o->job) |
           attr_str(f, "run_id", o->run_id) | attr_u64(f, "job_fingerprint", o->job_fp) |
           attr_u64(f, "parts", (uint64_t)size) | attr_u64(f, "records", total) |
           attr_str(f, "text_format", o->text_format) |
           attr_str(f, "layout", o->key_type ? "typed" : "bytes");
    bool vowned = false;
    hid_t ktype = o->key_type ? column_type(o->key_type) : H5T_STD_U8LE,
          vtype = o->key_type ? values_type(o->value_type, &vowned) : H5T_STD_U8LE;
    bad |= vtype < 0;
    hid_t mine_g = -1;
    for (int p = 0; p < size; p++) { /* collective: every rank creates every part */
        char gname[32];
        snprintf(gname, sizeof gname, "/part-%05d", p);
        hid_t g = H5Gcreate2(f, gname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            bad = 1;
            continue;
        }
        bad |= attr_u64(g, "records", all[3 * p]);
        int nd = o->key_type ? 2 : 4;
        hid_t d[4] = {-1, -1, -1, -1};
        if (o->key_type && vtype >= 0) { /* a record each */
            d[0] = dset(g, "keys", ktype, all[3 * p]);
            d[1] = dset(g, "values", vtype, all[3 * p]);
        } else if (!o->key_type) {
            d[0] = dset(g, "keys", H5T_STD_U8LE, all[3 * p + 1]);
            d[1] = dset(g, "key_offsets", H5T_STD_U64LE, all[3 * p] + 1);
            d[2] = dset(g, "values", H5T_STD_U8LE, all[3 * p + 2]);
            d[3] = dset(g, "value_offsets", H5T_STD_U64LE, all[3 * p] + 1);
        }
        for (int i = 0; i < nd; i++) {
            bad |= d[i] < 0;
            if (d[i] >= 0)
                H5Dclose(d[i]);
        }
        if (p == rank)
            mine_g = g;
        else
            H5Gclose(g);
    }
    if (vowned)
        H5Tclose(vtype);
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, comm);
    if (!bad && mine_g >= 0 && fill_part(stage, mine_g, o))
        rc =
            mrf__fail(MRF_EIO, "writing part %d of '%s' failed (disk full, or quota?)", rank, path);
    else if (bad)
        rc = mrf__fail(MRF_EIO, "creating the parts of '%s' failed", path);
    if (mine_g >= 0)
        H5Gclose(mine_g);
    if (H5Fclose(f) < 0 && rc == MRF_OK)
        rc = mrf__fail(MRF_EIO, "closing '%s' failed", path);
    if (rc == MRF_OK) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd))
            rc = mrf__fail(MRF_EIO, "fsync of '%s' failed: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (bytes)
        *bytes = o->kbytes + o->vbytes + (o->key_type ? 0 : 16 * (o->recs + 1));
out:
    unlink(stage);
    mrf__free(all);
    mrf__free(path);
    mrf__free(stage);
    return rc;
}

int mrf__output_h5_inspect(const char *path, FILE *out)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return MRF_EINPUT;
    uint64_t parts = 0, records = 0;
    hid_t a = H5Aopen(f, "parts", H5P_DEFAULT), b = H5Aopen(f, "records", H5P_DEFAULT);
    int rc = a < 0 || b < 0 || H5Aread(a, H5T_NATIVE_UINT64, &parts) < 0 ||
                     H5Aread(b, H5T_NATIVE_UINT64, &records) < 0
                 ? MRF_EINPUT
                 : MRF_OK;
    if (a >= 0)
        H5Aclose(a);
    if (b >= 0)
        H5Aclose(b);
    if (rc) {
        H5Fclose(f);
        return rc;
    }
    fprintf(out, "HDF5 output %s: %llu records in %llu parts\n", path, (unsigned long long)records,
            (unsigned long long)parts);
    uint64_t sum = 0, bad = 0;
    bool typed = false;
    if (H5Aexists(f, "layout") > 0) { /* typed: records are the datasets' lengths */
        hid_t la = H5Aopen(f, "layout", H5P_DEFAULT), lt = H5Aget_type(la);
        char v[16] = "";
        if (H5Tget_size(lt) < sizeof v)
            H5Aread(la, lt, v);
        typed = strcmp(v, "typed") == 0;
        H5Tclose(lt);
        H5Aclose(la);
    }
    for (uint64_t p = 0; typed && p < parts && p < (1u << 24); p++) {
        hssize_t n[2] = {-1, -1};
        for (int i = 0; i < 2; i++) {
            char g[40];
            snprintf(g, sizeof g, "/part-%05llu/%s", (unsigned long long)p, i ? "values" : "keys");
            hid_t d = H5Dopen2(f, g, H5P_DEFAULT), sp = d >= 0 ? H5Dget_space(d) : -1;
            n[i] = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
            if (sp >= 0)
                H5Sclose(sp);
            if (d >= 0)
                H5Dclose(d);
        }
        if (n[0] < 0 || n[0] != n[1]) {
            bad++;
            continue;
        }
        sum += (uint64_t)n[0];
        fprintf(out, "  part-%05llu: %lld records (typed keys and values)\n", (unsigned long long)p,
                (long long)n[0]);
    }
    for (uint64_t p = 0; !typed && p < parts && p < (1u << 24); p++) {
        char g[40];
        snprintf(g, sizeof g, "/part-%05llu/key_offsets", (unsigned long long)p);
        hid_t d = H5Dopen2(f, g, H5P_DEFAULT);
        hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
        hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        uint64_t *off = n > 0 ? mrf__malloc((size_t)n * 8) : NULL;
        if (!off || H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off) < 0) {
            bad++;
        } else {
            for (hssize_t i = 1; i < n; i++)
                if (off[i] < off[i - 1])
                    bad++;
            sum += (uint64_t)n - 1;
            fprintf(out, "  part-%05llu: %lld records, %llu key bytes\n", (unsigned long long)p,
                    (long long)(n - 1), (unsigned long long)off[n - 1]);
        }
        mrf__free(off);
        if (sp >= 0)
            H5Sclose(sp);
        if (d >= 0)
            H5Dclose(d);
    }
    H5Fclose(f);
    if (bad || sum != records) {
        fprintf(out, "  verification: FAILED: %llu damaged parts or offsets, %llu records found\n",
                (unsigned long long)bad, (unsigned long long)sum);
        return MRF_EIO;
    }
    fprintf(out, "  verification: OK: %s, record counts agree\n",
            typed ? "keys and values of every part alike in length" : "offsets ascending");
    return MRF_OK;
}
