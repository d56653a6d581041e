/*
 * shuffle.c -- the MPI exchange of records between ranks, in bounded rounds.
 *
 * Each round every rank asks its source (io->fill) for at most cap =
 * round_bytes / nranks bytes of whole records per destination, so a round
 * moves at most round_bytes out of and (from all senders together) into a
 * rank, whatever the data size: a 100 GiB exchange simply takes more rounds.
 * No count or displacement handed to MPI can overflow an int (cap is kept
 * below INT_MAX / nranks).
 *
 * A round is:
 *   fill chunks -> [zstd each chunk] -> checksum (XXH3 of the raw bytes)
 *   -> MPI_Allreduce(error, more) -> MPI_Alltoall of 24-byte chunk headers
 *   {checksum, raw length, stored length, records} -> MPI_Alltoallv of the
 *   payloads
 *   -> [decompress] -> verify -> io->deliver.
 * Uncompressed payloads land straight in the space the sink provides.  A
 * chunk that cannot be decompressed or fails its checksum is an error naming
 * the rank that sent it; the next round's allreduce stops every rank.
 *
 * mrf__compress_choose measures, in the same run, the link (a timed
 * MPI_Alltoall) and zstd on a sample of the data, and turns compression on
 * only where it shortens the exchange.
 *
 * Per-rank state: a few arrays of nranks entries and the round buffers.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

typedef struct chunk_hdr {
    uint64_t sum;
    uint32_t raw, stored;
    uint32_t recs, pad;
} chunk_hdr;

uint64_t mrf__shuffle_cap(uint64_t round_bytes, int nranks)
{
    uint64_t cap = round_bytes / (uint64_t)nranks;
    uint64_t max_cap = (uint64_t)(INT_MAX / 2) / (uint64_t)nranks;
    if (cap < 4096)
        cap = 4096;
    return cap > max_cap ? max_cap : cap;
}

int mrf__shuffle(MPI_Comm comm, const mrf__shuffle_io *io, const mrf__shuffle_opts *o,
                 mrf__shuffle_stats *stats)
{
    int rc = MRF_OK, nranks, me;
    MPI_Comm_size(comm, &nranks);
    MPI_Comm_rank(comm, &me);
    size_t P = (size_t)nranks;
    chunk_hdr *hout = mrf__calloc(P, sizeof *hout), *hin = mrf__calloc(P, sizeof *hin);
    uint64_t *start = mrf__calloc(P + 1, sizeof *start);
    int *sc = mrf__calloc(P, sizeof *sc), *sd = mrf__calloc(P, sizeof *sd);
    int *rcnt = mrf__calloc(P, sizeof *rcnt), *rd = mrf__calloc(P, sizeof *rd);
    uint64_t *rraw = mrf__calloc(P, sizeof *rraw);
    bool *done = mrf__calloc(P, sizeof *done);
    const char **dptr = mrf__calloc(P, sizeof *dptr);
    size_t *dlen = mrf__calloc(P, sizeof *dlen);
    bool *isdirect = mrf__calloc(P, sizeof *isdirect);
    bool force_stage =
        getenv("MRFLOW_SHUFFLE_STAGE") && strcmp(getenv("MRFLOW_SHUFFLE_STAGE"), "always") == 0;
    mrf__kvbuf stage = {0};
    char *comp = NULL, *rbuf = NULL, *discard = NULL;
    size_t comp_cap = 0, rbuf_cap = 0, discard_cap = 0;
    mrf__codec *z = NULL;
    mrf__shuffle_stats st = {0};
    int local_err = 0;
    bool corrupt = o->corrupt;

    if (!hout || !hin || !start || !sc || !sd || !rcnt || !rd || !rraw || !done || !dptr || !dlen ||
        !isdirect || mrf__codec_create(o->level, &z))
        local_err = mrf__fail(MRF_ENOMEM, "out of memory setting up the shuffle");
    uint64_t cap = mrf__shuffle_cap(o->round_bytes, nranks);
    uint64_t max_cap = (uint64_t)(INT_MAX / 2) / P;
    stage.limit = (size_t)o->round_bytes;

    for (;;) {
        double tf = MPI_Wtime();
        stage.len = 0;
        bool more = false, all_direct = true;
        /* a preemption signal: nothing more is read or sent; the ranks agree
         * below and stop (the checkpoint after the map holds the data) */
        bool stopping = mrf__preempted() != 0;
        for (size_t d = 0; d < P && !local_err && !stopping; d++) {
            start[d] = stage.len;
            dptr[d] = NULL;
            dlen[d] = 0;
            hout[d].recs = 0;
            if (!done[d]) {
                bool left = false;
                int frc = io->fill(io->ctx, (int)d, &stage, (size_t)cap, &left, &dptr[d], &dlen[d],
                                   &hout[d].recs);
                if (frc) {
                    local_err = frc;
                    break;
                }
                done[d] = !left;
                more |= left;
            }
            uint64_t n = dptr[d] ? dlen[d] : stage.len - start[d];
            isdirect[d] = dptr[d] != NULL;
            if (!dptr[d] && n)
                all_direct = false;
            if (n > max_cap) {
                local_err = mrf__fail(MRF_EINVAL,
                                      "a record of %llu bytes is larger than one shuffle round "
                                      "can carry (%llu bytes with %d ranks)",
                                      (unsigned long long)n, (unsigned long long)max_cap, nranks);
                break;
            }
            more |= n > 0;
        }
        start[P] = stage.len;
        st.t_pack += MPI_Wtime() - tf;
        /* a preemption signal on any rank stops every rank here, between
         * rounds (signals.c) */
        bool stop_err = local_err == MRF__PREEMPTED; /* the sink stopped on a signal */
        int flags[3] = {local_err && !stop_err ? 1 : 0, more,
                        stopping || stop_err || mrf__preempted() != 0};
        double ta = MPI_Wtime();
        if (MPI_Allreduce(MPI_IN_PLACE, flags, 3, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS) {
            rc = MRF_EMPI;
            goto out;
        }
        st.t_mpi += MPI_Wtime() - ta;
        if (flags[0]) {
            rc = local_err && !stop_err ? local_err : MRF__PEER_FAILED;
            goto out;
        }
        if (flags[2]) { /* before the last round's end too: a rank may have dropped one */
            rc = MRF__PREEMPTED;
            goto out;
        }
        if (!flags[1])
            break;

        /* where each chunk's raw bytes are: in memory already (direct), or
         * copied into the stage by fill */
        double t0 = MPI_Wtime();
        const char *lo = NULL, *hi = NULL;
        for (size_t d = 0; d < P; d++) {
            if (!dptr[d]) {
                dlen[d] = (size_t)(start[d + 1] - start[d]);
                dptr[d] = stage.base ? stage.base + start[d] : NULL;
            }
            if (dlen[d] && (!lo || dptr[d] < lo))
                lo = dptr[d];
            if (dlen[d] && (!hi || dptr[d] + dlen[d] > hi))
                hi = dptr[d] + dlen[d];
        }
        const char *sbase = lo;
        if (o->level == 0 &&
            (!all_direct || force_stage || corrupt || (size_t)(hi - lo) > (size_t)INT_MAX)) {
            /* one base pointer with int displacements: gather direct chunks
             * into the stage behind what fill copied there */
            for (size_t d = 0; d < P; d++) {
                if (!dlen[d] || !isdirect[d])
                    continue;
                if (mrf__kvbuf_reserve(&stage, dlen[d])) {
                    mrf__fail(MRF_ENOMEM, "out of memory for a shuffle staging buffer");
                    MPI_Abort(comm, 1);
                }
                memcpy(stage.base + stage.len, dptr[d], dlen[d]);
                start[d] = stage.len;
                stage.len += dlen[d];
                dptr[d] = NULL;
            }
            for (size_t d = 0; d < P; d++)
                if (dlen[d])
                    dptr[d] = stage.base + start[d];
            sbase = stage.base;
        }
        uint64_t wire = 0;
        if (o->level > 0) {
            size_t need = 0;
            for (size_t d = 0; d < P; d++)
                need += mrf__pack_bound(dlen[d]);
            if (mrf__big_grow(&comp, &comp_cap, need ? need : 1)) {
                mrf__fail(MRF_ENOMEM, "out of memory for a compressed shuffle round");
                MPI_Abort(comm, 1); /* the others are already in this round's collectives */
            }
            sbase = comp;
        }
        for (size_t d = 0; d < P; d++) {
            size_t n = dlen[d];
            const char *raw = dptr[d];
            hout[d].raw = (uint32_t)n;
            hout[d].sum = n ? mrf__checksum(raw, n) : 0;
            size_t stored = n;
            if (o->level > 0 && n) {
                stored = mrf__pack(z, raw, n, comp + wire, mrf__pack_bound(n));
                sd[d] = (int)wire;
            } else {
                sd[d] = n ? (int)(raw - sbase) : 0;
            }
            hout[d].stored = (uint32_t)stored;
            sc[d] = (int)stored;
            if (corrupt && n && (int)d != me) { /* --fault corrupt:rank=R */
                /* the round was staged (below), so these bytes are a copy */
                char *p = (o->level > 0 ? comp : stage.base) + sd[d] + stored / 2;
                *p ^= 0x5a;
                corrupt = false;
            }
            wire += stored;
        }
        double t1 = MPI_Wtime();
        if (MPI_Alltoall(hout, (int)sizeof *hout, MPI_BYTE, hin, (int)sizeof *hin, MPI_BYTE,
                         comm) != MPI_SUCCESS) {
            rc = mrf__fail(MRF_EMPI, "MPI_Alltoall of shuffle chunk headers failed");
            goto out;
        }
        uint64_t rsum = 0, rawsum = 0, nrec = 0;
        for (size_t s = 0; s < P; s++) {
            if (hin[s].stored > hin[s].raw) {
                local_err = mrf__fail(MRF_EIO, "shuffle chunk header from rank %zu is damaged", s);
                hin[s].stored = 0; /* still join the exchange below, receiving nothing */
            }
            rd[s] = (int)rsum;
            rcnt[s] = (int)hin[s].stored;
            rsum += hin[s].stored;
            rraw[s] = rawsum;
            rawsum += hin[s].raw;
            nrec += hin[s].recs;
        }
        int serr = MRF_OK;
        char *space = local_err ? NULL : io->space(io->ctx, (size_t)rawsum, &serr);
        if (!space) {
            /* the sink failed (it said why) or an earlier error: this round
             * still has to be received, into a buffer that is then dropped */
            if (!local_err)
                local_err = serr ? serr : MRF_ENOMEM;
            if (mrf__big_grow(&discard, &discard_cap, rawsum ? rawsum : 1)) {
                mrf__fail(MRF_ENOMEM, "out of memory for %llu bytes of shuffle input",
                          (unsigned long long)rawsum);
                MPI_Abort(comm, 1);
            }
            space = discard;
        }
        char *rbase = space;
        if (o->level > 0) {
            if (mrf__big_grow(&rbuf, &rbuf_cap, rsum ? rsum : 1)) {
                mrf__fail(MRF_ENOMEM, "out of memory for a compressed shuffle round");
                MPI_Abort(comm, 1);
            }
            rbase = rbuf;
        } else {
            for (size_t s = 0; s < P; s++)
                rd[s] = (int)rraw[s]; /* stored == raw: land in place */
        }
        if (MPI_Alltoallv(sbase, sc, sd, MPI_BYTE, rbase, rcnt, rd, MPI_BYTE, comm) !=
            MPI_SUCCESS) {
            rc = mrf__fail(MRF_EMPI, "MPI_Alltoallv failed in shuffle round %u", st.rounds);
            goto out;
        }
        double t2 = MPI_Wtime();
        for (size_t s = 0; s < P && !local_err; s++) {
            char *raw = space + rraw[s];
            if (o->level > 0 &&
                mrf__unpack(z, rbuf + rd[s], hin[s].stored, raw, hin[s].raw) != MRF_OK) {
                local_err = mrf__fail(MRF_EIO,
                                      "shuffle chunk from rank %zu (round %u, %u bytes) could "
                                      "not be decompressed: damaged in transit or in memory",
                                      s, st.rounds, hin[s].stored);
                break;
            }
            if (hin[s].raw && mrf__checksum(raw, hin[s].raw) != hin[s].sum) {
                local_err = mrf__fail(MRF_EIO,
                                      "shuffle chunk from rank %zu (round %u, %u bytes) failed "
                                      "its checksum: damaged in transit or in memory",
                                      s, st.rounds, hin[s].raw);
                break;
            }
        }
        double t3 = MPI_Wtime();
        /* after a signal the round is dropped, not taken in (taking it in
         * may sort and spill the receive arena); the next round's
         * agreement stops every rank */
        if (!local_err && !mrf__preempted())
            local_err = io->deliver(io->ctx, space, (size_t)rawsum, (size_t)nrec);
        else if (!local_err || local_err == MRF__PREEMPTED)
            mrf__log(MRF_LOG_DEBUG, "shuffle: a preemption signal: round %u dropped, not taken in",
                     st.rounds + 1);
        st.t_codec += (t1 - t0) + (t3 - t2);
        st.t_mpi += t2 - t1;
        st.t_pack += t1 - t0;
        st.t_unpack += MPI_Wtime() - t2;
        for (size_t d = 0; d < P; d++)
            st.bytes_sent += dlen[d];
        st.wire_sent += wire;
        st.bytes_recv += rawsum;
        st.rounds++;
        if (io->round_done)
            io->round_done(io->ctx, st.rounds, st.bytes_sent);
    }
out:
    if (stats)
        *stats = st;
    mrf__codec_destroy(z);
    mrf__kvbuf_destroy(&stage);
    mrf__big_free(comp, comp_cap);
    mrf__big_free(rbuf, rbuf_cap);
    mrf__big_free(discard, discard_cap);
    mrf__free(hout);
    mrf__free(hin);
    mrf__free(start);
    mrf__free(sc);
    mrf__free(sd);
    mrf__free(rcnt);
    mrf__free(rd);
    mrf__free(rraw);
    mrf__free(done);
    mrf__free(dptr);
    mrf__free(dlen);
    mrf__free(isdirect);
    return rc;
}

/* ------------------------------------------------------ compression choice -- */

double mrf__link_probe(MPI_Comm comm, size_t bytes_per_rank)
{
    int nranks;
    MPI_Comm_size(comm, &nranks);
    if (nranks < 2)
        return 0;
    size_t per = bytes_per_rank / (size_t)nranks;
    if (per > (size_t)INT_MAX / 2)
        per = (size_t)INT_MAX / 2;
    if (per < 4096)
        per = 4096;
    size_t n = per * (size_t)nranks;
    char *s = mrf__big_alloc_populated(n), *r = mrf__big_alloc_populated(n);
    int ok = s && r, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm);
    double best = 0;
    if (all) {
        /* one warm-up, then the faster of two (slowest rank of each) */
        for (int rep = 0; rep < 3; rep++) {
            MPI_Barrier(comm);
            double t = MPI_Wtime();
            MPI_Alltoall(s, (int)per, MPI_BYTE, r, (int)per, MPI_BYTE, comm);
            t = MPI_Wtime() - t;
            MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
            double bw = t > 0 ? (double)(per * (size_t)(nranks - 1)) / t : 0;
            if (rep > 0 && bw > best)
                best = bw;
        }
    }
    mrf__big_free(s, n);
    mrf__big_free(r, n);
    return best;
}

int mrf__compress_choose(MPI_Comm comm, const char *sample, size_t n, int level, size_t probe_bytes,
                         mrf__compress_choice *out)
{
    memset(out, 0, sizeof *out);
    /* zstd on this rank's sample: speed both ways and ratio */
    double mine[4] = {0, 0, 0, 0}; /* raw bytes, stored bytes, compress s, decompress s */
    mrf__codec *z = NULL;
    char *c = NULL, *d = NULL;
    size_t cb = mrf__pack_bound(n);
    int rc = MRF_OK;
    if (n &&
        (mrf__codec_create(level, &z) || !(c = mrf__big_alloc(cb)) || !(d = mrf__big_alloc(n))))
        rc = mrf__fail(MRF_ENOMEM, "out of memory measuring compression");
    if (rc == MRF_OK && n) {
        double t0 = MPI_Wtime();
        size_t stored = mrf__pack(z, sample, n, c, cb);
        double t1 = MPI_Wtime();
        if (stored < n && mrf__unpack(z, c, stored, d, n))
            rc = mrf__fail(MRF_EINTERNAL, "zstd could not decode its own output");
        double t2 = MPI_Wtime();
        mine[0] = (double)n;
        mine[1] = (double)stored;
        mine[2] = t1 - t0;
        mine[3] = stored < n ? t2 - t1 : 0;
    }
    mrf__codec_destroy(z);
    mrf__big_free(c, cb);
    mrf__big_free(d, n);
    double sum[4];
    MPI_Allreduce(mine, sum, 4, MPI_DOUBLE, MPI_SUM, comm);
    out->link_bps = mrf__link_probe(comm, probe_bytes);
    out->ratio = sum[1] > 0 ? sum[0] / sum[1] : 1;
    out->comp_bps = sum[2] > 0 ? sum[0] / sum[2] : 0;
    out->decomp_bps = sum[3] > 0 ? sum[0] / sum[3] : 0;
    /* seconds per raw byte moved by one rank: raw over the link, against
     * compress + smaller transfer + decompress */
    double t_off = out->link_bps > 0 ? 1.0 / out->link_bps : 0;
    double t_on =
        out->comp_bps > 0 && out->decomp_bps > 0 && out->link_bps > 0
            ? 1.0 / out->comp_bps + 1.0 / (out->ratio * out->link_bps) + 1.0 / out->decomp_bps
            : 0;
    out->on = t_on > 0 && t_on < 0.9 * t_off;
    out->cost_off = t_off * 1e9;
    out->cost_on = t_on * 1e9;
    return rc;
}
