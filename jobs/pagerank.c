/*
 * pagerank -- PageRank by power iteration, three stages.
 *
 * Input: lines "SRC<TAB>DST" (one directed edge; vertex names are any
 * bytes but tab and newline; a duplicate edge counts twice).  Output:
 * "VERTEX<TAB>RANK" for every vertex that appears in an edge, RANK to 9
 * significant digits, the ranks summing to 1.
 *
 *   load:    edges -> one record per vertex: its out-links, rank unset.
 *            Sums: slot 0 vertices (N), slot 1 dangling vertices x N x rank
 *            (their rank is 1/N, so N x rank = 1 each).
 *   iterate: each vertex sends rank/outdeg to each out-link and its links to
 *            itself; reduce sums what arrived (sorted first, so the sum is
 *            the same on any number of ranks) into
 *                rank' = (1 - d) / N + d * (in + D / N),  d = 0.85,
 *            D the dangling vertices' total rank (slot 1 / N of the previous
 *            run).  Sums: N again, dangling mass x N, and slot 2 the L1
 *            change sum |rank' - rank|.  Runs again while that is >= --tol,
 *            at most --iterations times.
 *   format:  "%.9g" of each rank.
 *
 * A vertex record's value: double rank (NaN: not set yet), u32 outdeg,
 * then outdeg links as u32 length + bytes.  Messages: 'C' + double (a
 * contribution) or 'S' + a vertex record (the vertex itself).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mrflow.h"

#define DAMPING 0.85

/* load: both ends of an edge are vertices; the source gets a link */
static void pr_edges(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const char *p = in->data, *tab = memchr(p, '\t', in->len);
    size_t len = in->len;
    if (len && p[len - 1] == '\r')
        len--;
    if (!tab || tab == p || (size_t)(tab - p) + 1 >= len ||
        memchr(tab + 1, '\t', len - (size_t)(tab - p) - 1)) {
        mrf_reject(out, "not an edge 'SRC<TAB>DST'");
        return;
    }
    size_t sl = (size_t)(tab - p), dl = len - sl - 1;
    char buf[1 + 4096];
    if (dl > 4096) {
        mrf_reject(out, "vertex name longer than 4096 bytes");
        return;
    }
    buf[0] = 'L';
    memcpy(buf + 1, tab + 1, dl);
    if (mrf_emit(out, p, sl, buf, 1 + dl) == 0)
        mrf_emit(out, tab + 1, dl, "V", 1);
}

/* a vertex record from its links (values "L"+name), rank NaN */
static void pr_vertex(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    char *rec = NULL;
    size_t len = 12, cap = 256;
    uint32_t deg = 0;
    const void *v;
    size_t vl;
    double nan_rank = NAN;
    if (!(rec = malloc(cap)))
        goto oom;
    while (mrf_values_next(vals, &v, &vl) == 1) {
        if (vl < 1 || ((const char *)v)[0] != 'L')
            continue;
        uint32_t nl = (uint32_t)(vl - 1);
        if (len + 4 + nl > cap) {
            while (len + 4 + nl > cap)
                cap *= 2;
            char *r = realloc(rec, cap);
            if (!r)
                goto oom;
            rec = r;
        }
        memcpy(rec + len, &nl, 4);
        memcpy(rec + len + 4, (const char *)v + 1, nl);
        len += 4 + nl;
        deg++;
    }
    memcpy(rec, &nan_rank, 8);
    memcpy(rec + 8, &deg, 4);
    mrf_emit(out, key, klen, rec, len);
    mrf_stage_add(out, 0, 1.0);
    if (deg == 0)
        mrf_stage_add(out, 1, 1.0); /* N x (1/N) */
    free(rec);
    return;
oom:
    free(rec);
    mrf_fail(out, "pagerank: out of memory for a vertex's links");
}

/* iterate, map: a share of the rank to each link, the record to itself */
static void pr_spread(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    double rank, n = mrf_stage_sum(out, 0);
    uint32_t deg;
    if (in->len < 12 || n <= 0) {
        mrf_fail(out, "pagerank: a damaged vertex record");
        return;
    }
    memcpy(&rank, in->data, 8);
    memcpy(&deg, (const char *)in->data + 8, 4);
    if (isnan(rank))
        rank = 1.0 / n;
    char *self = malloc(1 + in->len);
    if (!self) {
        mrf_fail(out, "pagerank: out of memory");
        return;
    }
    self[0] = 'S';
    memcpy(self + 1, in->data, in->len);
    memcpy(self + 1, &rank, 8);
    int rc = mrf_emit(out, in->key, in->klen, self, 1 + in->len);
    free(self);
    char c[9] = {'C'};
    double share = deg ? rank / deg : 0;
    memcpy(c + 1, &share, 8);
    const char *p = (const char *)in->data + 12, *end = (const char *)in->data + in->len;
    for (uint32_t i = 0; i < deg && rc == 0; i++) {
        uint32_t nl;
        if (end - p < 4 || (memcpy(&nl, p, 4), (size_t)(end - p) - 4 < nl)) {
            mrf_fail(out, "pagerank: a damaged vertex record");
            return;
        }
        rc = mrf_emit(out, p + 4, nl, c, sizeof c);
        p += 4 + nl;
    }
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* iterate, reduce: the new rank */
static void pr_sum(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    double n = mrf_stage_sum(out, 0), dangling = mrf_stage_sum(out, 1) / n;
    double *in = NULL;
    size_t nin = 0, cap = 0, slen = 0;
    char *self = NULL;
    const void *v;
    size_t vl;
    while (mrf_values_next(vals, &v, &vl) == 1) {
        const char *b = v;
        if (vl == 9 && b[0] == 'C') {
            if (nin == cap) {
                double *m = realloc(in, (cap = cap ? cap * 2 : 64) * sizeof *in);
                if (!m)
                    goto oom;
                in = m;
            }
            memcpy(&in[nin++], b + 1, 8);
        } else if (vl >= 13 && b[0] == 'S' && !self) {
            if (!(self = malloc(vl - 1)))
                goto oom;
            memcpy(self, b + 1, vl - 1);
            slen = vl - 1;
        }
    }
    if (!self) {
        mrf_fail(out, "pagerank: a link to a vertex without a record (damaged data)");
        goto out;
    }
    /* the same sum in the same order whatever the values' order was */
    if (nin) /* (in is NULL when nothing arrived) */
        qsort(in, nin, sizeof *in, by_value);
    double sum = 0, old, rank;
    for (size_t i = 0; i < nin; i++)
        sum += in[i];
    uint32_t deg;
    memcpy(&old, self, 8);
    memcpy(&deg, self + 8, 4);
    rank = (1.0 - DAMPING) / n + DAMPING * (sum + dangling / n);
    memcpy(self, &rank, 8);
    mrf_emit(out, key, klen, self, slen);
    mrf_stage_add(out, 0, 1.0);
    if (deg == 0)
        mrf_stage_add(out, 1, rank * n);
    mrf_stage_add(out, 2, fabs(rank - old));
    goto out;
oom:
    mrf_fail(out, "pagerank: out of memory for a vertex's in-links");
out:
    free(in);
    free(self);
}

static int pr_again(unsigned run, const double *sums, double tol, void *ctx)
{
    (void)run;
    (void)ctx;
    return sums[2] >= tol;
}

/* format: the rank in decimal */
static void pr_print(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    double rank;
    char buf[40];
    if (in->len < 12) {
        mrf_fail(out, "pagerank: a damaged vertex record");
        return;
    }
    memcpy(&rank, in->data, 8);
    int n = snprintf(buf, sizeof buf, "%.9g", rank);
    mrf_emit(out, in->key, in->klen, buf, (size_t)n);
}

static void pr_keep(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    const void *v;
    size_t vl;
    while (mrf_values_next(vals, &v, &vl) == 1)
        mrf_emit(out, key, klen, v, vl);
}

static const mrf_job_spec pagerank_format = {
    .name = "pagerank-format",
    .map = pr_print,
    .reduce = pr_keep,
    .partitioning = MRF_PART_HASH,
};

static const mrf_job_spec pagerank_iterate = {
    .name = "pagerank-iterate",
    .map = pr_spread,
    .reduce = pr_sum,
    .partitioning = MRF_PART_HASH,
    .iterate = pr_again,
    .next = &pagerank_format,
};

const mrf_job_spec mrf_job_pagerank = {
    .name = "pagerank",
    .summary = "PageRank of an edge list SRC<TAB>DST (d=0.85, --tol, --iterations); "
               "output vertex<TAB>rank",
    .input = MRF_INPUT_LINES,
    .map = pr_edges,
    .reduce = pr_vertex,
    .partitioning = MRF_PART_HASH,
    .output = MRF_OUTPUT_TEXT,
    .next = &pagerank_iterate,
};
