/*
 * typed.c -- typed output (spec->key_type, spec->value_type): a job's
 * reduce emits numbers in binary, declared column by column; for text
 * output they are printed here (integers in decimal, floats with %.17g,
 * tab-separated), for HDF5 output h5out.c writes them as typed datasets.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static bool column_ok(const mrf_column *c)
{
    if (!c->name || !c->name[0])
        return false;
    if (c->cls == MRF_FIELD_INT || c->cls == MRF_FIELD_UINT)
        return c->size == 1 || c->size == 2 || c->size == 4 || c->size == 8;
    return c->cls == MRF_FIELD_FLOAT && (c->size == 4 || c->size == 8);
}

size_t mrf__typed_vsize(const mrf_column *v)
{
    size_t n = 0;
    for (; v && v->name; v++)
        n += v->size;
    return n;
}

int mrf__typed_check(const mrf_job_spec *spec)
{
    if (!spec->key_type && !spec->value_type)
        return MRF_OK;
    bool ok = spec->key_type && spec->value_type && column_ok(spec->key_type) &&
              spec->value_type[0].name && spec->output == MRF_OUTPUT_TEXT;
    int n = 0;
    for (const mrf_column *c = spec->value_type; ok && c->name; c++, n++)
        ok = column_ok(c) && n < MRF__TYPED_COLUMNS;
    if (!ok)
        return mrf__fail(MRF_EINVAL,
                         "job '%s': typed output needs key_type and value_type (1 to %d "
                         "columns), each column named, an integer of 1, 2, 4 or 8 bytes or a "
                         "float of 4 or 8, and MRF_OUTPUT_TEXT",
                         spec->name, MRF__TYPED_COLUMNS);
    return MRF_OK;
}

/* One column's value at p, printed into o (room for 32 bytes). */
static size_t print_column(const mrf_column *c, const unsigned char *p, char *o)
{
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
    memcpy(&v, p, c->size);
    int n = 0;
    switch (c->cls * 16 + (int)c->size) {
    case MRF_FIELD_INT * 16 + 1:
        n = snprintf(o, 32, "%d", v.i8);
        break;
    case MRF_FIELD_INT * 16 + 2:
        n = snprintf(o, 32, "%d", v.i16);
        break;
    case MRF_FIELD_INT * 16 + 4:
        n = snprintf(o, 32, "%" PRId32, v.i32);
        break;
    case MRF_FIELD_INT * 16 + 8:
        n = snprintf(o, 32, "%" PRId64, v.i64);
        break;
    case MRF_FIELD_UINT * 16 + 1:
        n = snprintf(o, 32, "%u", v.u8);
        break;
    case MRF_FIELD_UINT * 16 + 2:
        n = snprintf(o, 32, "%u", v.u16);
        break;
    case MRF_FIELD_UINT * 16 + 4:
        n = snprintf(o, 32, "%" PRIu32, v.u32);
        break;
    case MRF_FIELD_UINT * 16 + 8:
        n = snprintf(o, 32, "%" PRIu64, v.u64);
        break;
    case MRF_FIELD_FLOAT * 16 + 4:
        n = snprintf(o, 32, "%.9g", (double)v.f32);
        break;
    default:
        n = snprintf(o, 32, "%.17g", v.f64);
        break;
    }
    return (size_t)n;
}

int mrf__typed_text(const mrf_job_spec *spec, const void *k, size_t kl, const void *v, size_t vl,
                    char *kout, size_t *kn, char *vout, size_t *vn)
{
    size_t want = mrf__typed_vsize(spec->value_type);
    if (kl != spec->key_type->size || vl != want)
        return mrf__fail(MRF_EINVAL,
                         "job '%s': reduce emitted a key of %zu bytes and a value of %zu; its "
                         "key_type and value_type say %zu and %zu",
                         spec->name, kl, vl, spec->key_type->size, want);
    if (!kout) /* (checking only) */
        return MRF_OK;
    *kn = print_column(spec->key_type, k, kout);
    size_t at = 0, off = 0;
    for (const mrf_column *c = spec->value_type; c->name; c++) {
        if (at)
            vout[at++] = '\t';
        at += print_column(c, (const unsigned char *)v + off, vout + at);
        off += c->size;
    }
    *vn = at;
    return MRF_OK;
}
