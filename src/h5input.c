/*
 * h5input.c -- HDF5 datasets as input: `--input FILE.h5:/PATH/TO/DATASET`.
 *
 * A 1-D dataset is a sequence of records, one element each; a 2-D
 * dataset's rows are records.  Elements reach map in the native layout of
 * the dataset's type (H5Tget_native_type: a big-endian file reads as
 * little-endian numbers here, a packed compound gets the C compiler's
 * padding), so a job reads fields at the offsets mrf_record_field gives.
 *
 * Planning (rank 0): the dataset is opened, its type checked (fixed-size
 * only: no variable-length strings or sequences, no references) and its
 * rows cut into tasks of about --task-size bytes, each a run of whole
 * chunks when the dataset is chunked, so no chunk is read (and
 * decompressed, for a gzip-filtered one) by two tasks.  A task is the
 * hyperslab [off, off + len) in bytes of the element stream; coff holds
 * where the dataset's path starts in the input's name, clen the record's
 * bytes.
 *
 * Reading: the rank that claims a task opens the file read-only and reads
 * the hyperslab with independent I/O (HDF5's default file driver: the
 * task loop is dynamic, so no call may be collective; on a parallel file
 * system every rank reads its own chunks), filters such as gzip
 * decompressing as HDF5 reads.  The type's fields are described once per
 * stage (mrf_dtype) for mrf_record_field.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

/* the type's description: the whole element, or a compound's fields */
typedef struct dfield {
    char *name;
    size_t offset, size;
    int cls; /* MRF_FIELD_* */
} dfield;

struct mrf_dtype {
    size_t size; /* the element's (a 2-D row: one column's) */
    int cls;     /* the element's class when it is not compound */
    dfield *f;   /* a compound's top-level fields */
    size_t n;
};

size_t mrf__h5in_split(const char *input)
{
    /* the first ":/" whose left side is a regular file: a file's name may
     * hold ":" (a dataset's path may too), "/" after it means a folder */
    for (const char *p = strstr(input, ":/"); p; p = strstr(p + 1, ":/")) {
        size_t n = (size_t)(p - input);
        char *file = strndup(input, n);
        struct stat st;
        bool ok = file && stat(file, &st) == 0 && S_ISREG(st.st_mode);
        free(file);
        if (ok)
            return n;
    }
    return 0;
}

static void quiet(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static int field_class(hid_t t)
{
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        return H5Tget_sign(t) == H5T_SGN_NONE ? MRF_FIELD_UINT : MRF_FIELD_INT;
    case H5T_FLOAT:
        return MRF_FIELD_FLOAT;
    default:
        return MRF_FIELD_OTHER;
    }
}

/* What makes a type unreadable as fixed-size records, or NULL. */
static const char *unsupported(hid_t t)
{
    if (H5Tdetect_class(t, H5T_VLEN) > 0)
        return "a variable-length type (a sequence)";
    if (H5Tis_variable_str(t) > 0)
        return "a variable-length string";
    if (H5Tget_class(t) == H5T_COMPOUND) {
        int n = H5Tget_nmembers(t);
        for (int i = 0; i < n; i++) {
            hid_t m = H5Tget_member_type(t, (unsigned)i);
            bool vs = H5Tis_variable_str(m) > 0;
            H5Tclose(m);
            if (vs)
                return "a compound with a variable-length string";
        }
    }
    if (H5Tdetect_class(t, H5T_REFERENCE) > 0)
        return "a reference type";
    return NULL;
}

/* The dataset of input (the file's name up to split): its native type,
 * its rows and its row's bytes; *f and *d open (closed by the caller). */
static int open_dataset(const char *input, size_t split, hid_t *f, hid_t *d, hid_t *mtype,
                        uint64_t *rows, size_t *rec, hsize_t *chunk, char *err, size_t errlen)
{
    quiet();
    *f = *d = *mtype = H5I_INVALID_HID;
    char *file = strndup(input, split);
    const char *path = input + split + 1;
    if (!file) {
        snprintf(err, errlen, "out of memory");
        return MRF_ENOMEM;
    }
    int rc = MRF_EINPUT;
    hid_t sp = H5I_INVALID_HID, ft = H5I_INVALID_HID, dcpl = H5I_INVALID_HID;
    if (H5Fis_hdf5(file) <= 0) {
        snprintf(err, errlen,
                 "input '%s': '%s' is not a readable HDF5 file (h5dump -H '%s' checks it)", input,
                 file, file);
        goto out;
    }
    if ((*f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        snprintf(err, errlen, "input '%s': HDF5 cannot open '%s'", input, file);
        goto out;
    }
    if (H5Lexists(*f, path, H5P_DEFAULT) <= 0 || (*d = H5Dopen2(*f, path, H5P_DEFAULT)) < 0) {
        snprintf(err, errlen,
                 "input '%s': no dataset '%s' in '%s' (h5ls -r '%s' lists the datasets)", input,
                 path, file, file);
        goto out;
    }
    ft = H5Dget_type(*d);
    const char *why = unsupported(ft);
    if (why) {
        snprintf(err, errlen,
                 "input '%s': the dataset's type is %s; mrflow reads datasets of fixed-size "
                 "elements (numbers, compounds of them, fixed-length strings)",
                 input, why);
        goto out;
    }
    if ((*mtype = H5Tget_native_type(ft, H5T_DIR_ASCEND)) < 0) {
        snprintf(err, errlen, "input '%s': HDF5 has no native form of the dataset's type", input);
        goto out;
    }
    sp = H5Dget_space(*d);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[2] = {0, 1};
    if (nd < 1 || nd > 2) {
        snprintf(err, errlen,
                 "input '%s': the dataset has %d dimensions; mrflow reads 1-D datasets (one "
                 "record an element) and 2-D ones (one record a row)",
                 input, nd);
        goto out;
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t esize = H5Tget_size(*mtype);
    if (dims[0] == 0 || dims[1] == 0) {
        snprintf(err, errlen, "input '%s': the dataset is empty (no elements)", input);
        goto out;
    }
    if (esize == 0 || dims[1] > INT32_MAX / esize) {
        snprintf(err, errlen, "input '%s': a row of the dataset is over 2 GiB", input);
        goto out;
    }
    *rows = dims[0];
    *rec = esize * (size_t)dims[1];
    *chunk = 1;
    dcpl = H5Dget_create_plist(*d);
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t cd[2] = {1, 1};
        if (H5Pget_chunk(dcpl, 2, cd) >= 1 && cd[0] > 0)
            *chunk = cd[0];
    }
    rc = MRF_OK;
out:
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    if (ft >= 0)
        H5Tclose(ft);
    free(file);
    return rc;
}

static void close_all(hid_t f, hid_t d, hid_t t)
{
    if (t >= 0)
        H5Tclose(t);
    if (d >= 0)
        H5Dclose(d);
    if (f >= 0)
        H5Fclose(f);
}

int mrf__h5in_plan(const char *input, size_t split, uint32_t file, uint64_t task_size,
                   mrf__h5in_add add, void *ctx, size_t *rec, char *err, size_t errlen)
{
    hid_t f, d, t;
    uint64_t rows;
    hsize_t chunk;
    int rc = open_dataset(input, split, &f, &d, &t, &rows, rec, &chunk, err, errlen);
    close_all(f, d, t);
    if (rc)
        return rc;
    /* rows a task: about task_size bytes, a whole number of chunks */
    uint64_t per = task_size / *rec;
    per = per < chunk ? chunk : per / chunk * chunk;
    for (uint64_t r = 0; r < rows && rc == MRF_OK; r += per) {
        uint64_t n = rows - r < per ? rows - r : per;
        rc = add(ctx, file, (uint64_t)split, (uint64_t)*rec, r * *rec, n * *rec);
    }
    if (rc)
        snprintf(err, errlen, "out of memory planning tasks");
    return rc;
}

/* The type's description, for mrf_record_field. */
static int describe(hid_t t, mrf_dtype **out)
{
    mrf_dtype *y = mrf__calloc(1, sizeof *y);
    if (!y)
        return MRF_ENOMEM;
    y->size = H5Tget_size(t);
    y->cls = field_class(t);
    if (H5Tget_class(t) == H5T_COMPOUND) {
        int n = H5Tget_nmembers(t);
        y->f = mrf__calloc(n > 0 ? (size_t)n : 1, sizeof *y->f);
        if (!y->f) {
            mrf__dtype_free(y);
            return MRF_ENOMEM;
        }
        for (int i = 0; i < n; i++) {
            hid_t m = H5Tget_member_type(t, (unsigned)i);
            char *name = H5Tget_member_name(t, (unsigned)i);
            dfield *fl = &y->f[y->n++];
            fl->name = name ? mrf__strdup(name) : NULL;
            fl->offset = H5Tget_member_offset(t, (unsigned)i);
            fl->size = H5Tget_size(m);
            fl->cls = field_class(m);
            H5free_memory(name);
            H5Tclose(m);
            if (!fl->name) {
                mrf__dtype_free(y);
                return MRF_ENOMEM;
            }
        }
    }
    *out = y;
    return MRF_OK;
}

void mrf__dtype_free(mrf_dtype *y)
{
    if (!y)
        return;
    for (size_t i = 0; i < y->n; i++)
        mrf__free(y->f[i].name);
    mrf__free(y->f);
    mrf__free(y);
}

int mrf__h5in_read(const char *input, const mrf__task *t, uint64_t stride, uint64_t count,
                   char **buf, size_t *cap, mrf_dtype **type)
{
    uint64_t rows_t = t->clen ? t->len / t->clen : 0;
    if (count == 0 || stride == 0) /* all the task's rows */
        count = rows_t, stride = 1;
    if (count == 0 || stride * (count - 1) >= rows_t) /* (checked before any HDF5 handle) */
        return mrf__fail(MRF_EINTERNAL, "reading rows past a task of '%s'", input);
    char err[MRF_ERRLEN];
    hid_t f, d, mt, fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    uint64_t rows;
    size_t rec;
    hsize_t chunk;
    int rc =
        open_dataset(input, (size_t)t->coff, &f, &d, &mt, &rows, &rec, &chunk, err, sizeof err);
    if (rc == MRF_OK && (rec != t->clen || (t->off + t->len) / rec > rows)) {
        /* (planned from another file: the dataset changed under the job) */
        snprintf(err, sizeof err,
                 "input '%s' changed during the job: its rows are now %llu of %zu bytes", input,
                 (unsigned long long)rows, rec);
        rc = MRF_EINPUT;
    }
    if (rc == MRF_OK && !*type)
        rc = describe(mt, type);
    size_t want = (size_t)(count * t->clen);
    if (rc == MRF_OK && *cap < want) {
        char *nb = mrf__big_resize(*buf, *cap, want);
        if (!nb)
            rc = MRF_ENOMEM;
        else {
            *buf = nb;
            *cap = want;
        }
    }
    if (rc == MRF_OK) {
        hsize_t start[2] = {t->off / rec, 0}, step[2] = {stride, 1}, n[2] = {count, 1};
        fs = H5Dget_space(d);
        int nd = H5Sget_simple_extent_ndims(fs);
        if (nd == 2) {
            hsize_t dims[2];
            H5Sget_simple_extent_dims(fs, dims, NULL);
            n[1] = dims[1];
        }
        ms = H5Screate_simple(nd, n, NULL);
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, step, n, NULL) < 0 ||
            H5Dread(d, mt, ms, fs, H5P_DEFAULT, *buf) < 0) {
            snprintf(err, sizeof err,
                     "input '%s': HDF5 could not read rows %llu to %llu (a damaged file, or a "
                     "filter this HDF5 lacks; h5dump checks it)",
                     input, (unsigned long long)start[0],
                     (unsigned long long)(start[0] + (n[0] - 1) * stride));
            rc = MRF_EIO;
        }
    }
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    close_all(f, d, mt);
    if (rc == MRF_ENOMEM)
        return mrf__fail(rc, "out of memory reading '%s'", input);
    return rc ? mrf__fail(rc, "%s", err) : MRF_OK;
}

/* ---- the public field lookup ------------------------------------------ */

MRF_EXPORT int mrf_record_field(const mrf_record *in, const char *name, mrf_field *out)
{
    const mrf_dtype *y = in ? in->type : NULL;
    if (!y || !out)
        return MRF_EINVAL;
    if (!name || !*name) { /* the element itself */
        if (y->n)
            return MRF_EINVAL;
        *out = (mrf_field){.offset = 0, .size = y->size, .cls = y->cls};
        return MRF_OK;
    }
    for (size_t i = 0; i < y->n; i++)
        if (strcmp(y->f[i].name, name) == 0) {
            *out = (mrf_field){.offset = y->f[i].offset, .size = y->f[i].size, .cls = y->f[i].cls};
            return MRF_OK;
        }
    return MRF_EINPUT;
}

MRF_EXPORT size_t mrf_record_columns(const mrf_record *in)
{
    const mrf_dtype *y = in ? in->type : NULL;
    return y && y->size ? in->len / y->size : 0;
}

MRF_EXPORT double mrf_field_double(const mrf_record *in, const mrf_field *f)
{
    const unsigned char *p = (const unsigned char *)in->data + f->offset;
    union {
        int8_t i8;
        int16_t i16;
        int32_t i32;
        int64_t i64;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        float f32;
        double f64;
    } v;
    if (f->size > sizeof v || f->offset + f->size > in->len)
        return NAN;
    memcpy(&v, p, f->size);
    switch (f->cls * 16 + (int)f->size) {
    case MRF_FIELD_INT * 16 + 1:
        return v.i8;
    case MRF_FIELD_INT * 16 + 2:
        return v.i16;
    case MRF_FIELD_INT * 16 + 4:
        return v.i32;
    case MRF_FIELD_INT * 16 + 8:
        return (double)v.i64;
    case MRF_FIELD_UINT * 16 + 1:
        return v.u8;
    case MRF_FIELD_UINT * 16 + 2:
        return v.u16;
    case MRF_FIELD_UINT * 16 + 4:
        return v.u32;
    case MRF_FIELD_UINT * 16 + 8:
        return (double)v.u64;
    case MRF_FIELD_FLOAT * 16 + 4:
        return v.f32;
    case MRF_FIELD_FLOAT * 16 + 8:
        return v.f64;
    default:
        return NAN;
    }
}

MRF_EXPORT int mrf_field_int64(const mrf_record *in, const mrf_field *f, int64_t *out)
{
    const unsigned char *p = (const unsigned char *)in->data + f->offset;
    if (f->offset + f->size > in->len)
        return MRF_EINVAL;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    switch (f->cls * 16 + (int)f->size) {
    case MRF_FIELD_INT * 16 + 1:
        memcpy(&i8, p, 1);
        *out = i8;
        return MRF_OK;
    case MRF_FIELD_INT * 16 + 2:
        memcpy(&i16, p, 2);
        *out = i16;
        return MRF_OK;
    case MRF_FIELD_INT * 16 + 4:
        memcpy(&i32, p, 4);
        *out = i32;
        return MRF_OK;
    case MRF_FIELD_INT * 16 + 8:
        memcpy(out, p, 8);
        return MRF_OK;
    case MRF_FIELD_UINT * 16 + 1:
        memcpy(&u8, p, 1);
        *out = u8;
        return MRF_OK;
    case MRF_FIELD_UINT * 16 + 2:
        memcpy(&u16, p, 2);
        *out = u16;
        return MRF_OK;
    case MRF_FIELD_UINT * 16 + 4:
        memcpy(&u32, p, 4);
        *out = u32;
        return MRF_OK;
    case MRF_FIELD_UINT * 16 + 8:
        memcpy(&u64, p, 8);
        if (u64 > INT64_MAX)
            return MRF_EINVAL;
        *out = (int64_t)u64;
        return MRF_OK;
    default:
        return MRF_EINVAL;
    }
}
