/*
 * shuffle.c -- the MPI exchange of records between ranks, in bounded rounds.
 *
 * Before the rounds, one MPI_Alltoall of 64-bit totals tells every rank how
 * much it will receive, so the receive arena is sized once.  Each round then
 * moves at most cap = round_bytes / nranks bytes from each sender to each
 * receiver (never more than INT_MAX / nranks), cut at record boundaries, so
 * what lands in the receive arena is always a sequence of whole records, and
 * no count or displacement handed to MPI can overflow an int: a 100 GiB
 * exchange simply takes more rounds.
 *
 * Send displacements are ints relative to one base pointer, so when a round's
 * chunks lie more than INT_MAX bytes apart in the send buffer they are first
 * copied into a staging buffer (MRFLOW_SHUFFLE_STAGE=always forces this path,
 * for tests).  Every rank calls the same collectives in the same order; an
 * error found locally is agreed on in the per-round allreduce.
 *
 * Per-rank state: a few arrays of nranks entries.
 */
#include <limits.h>
#include <stdlib.h>

#include "internal.h"

/* Bytes of whole records starting at p, at most cap (but at least one record). */
static uint64_t whole_records(const char *p, uint64_t avail, uint64_t cap)
{
    if (avail <= cap)
        return avail;
    uint64_t acc = 0;
    while (acc < avail) {
        uint64_t r = mrf__rec_size(p + acc);
        if (acc + r > cap)
            break;
        acc += r;
    }
    if (acc == 0)
        acc = mrf__rec_size(p);
    return acc;
}

int mrf__shuffle(MPI_Comm comm, const char *send, const uint64_t *scount, const uint64_t *sdisp,
                 uint64_t round_bytes, mrf__kvbuf *recv, mrf__shuffle_stats *stats)
{
    int rc = MRF_OK, nranks;
    MPI_Comm_size(comm, &nranks);
    size_t P = (size_t)nranks;
    uint64_t *rtotal = mrf__calloc(P, sizeof *rtotal);
    uint64_t *sent = mrf__calloc(P, sizeof *sent);
    int *sc = mrf__calloc(P, sizeof *sc), *sd = mrf__calloc(P, sizeof *sd);
    int *rcnt = mrf__calloc(P, sizeof *rcnt), *rd = mrf__calloc(P, sizeof *rd);
    char *stage = NULL;
    size_t stage_cap = 0;
    bool force_stage =
        getenv("MRFLOW_SHUFFLE_STAGE") && strcmp(getenv("MRFLOW_SHUFFLE_STAGE"), "always") == 0;
    mrf__shuffle_stats st = {0};
    int local_err = 0;

    if (!rtotal || !sent || !sc || !sd || !rcnt || !rd)
        local_err = 1;
    uint64_t cap = round_bytes / P;
    uint64_t max_cap = (uint64_t)(INT_MAX - 1) / P;
    if (cap < 4096)
        cap = 4096;
    if (cap > max_cap)
        cap = max_cap;

    /* agree on allocation failure before the first collective that needs them */
    int flags[2] = {local_err, 0};
    if (MPI_Allreduce(MPI_IN_PLACE, flags, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS) {
        rc = MRF_EMPI;
        goto out;
    }
    if (flags[0]) {
        rc = local_err ? mrf__fail(MRF_ENOMEM, "out of memory setting up the shuffle") : MRF_ENOMEM;
        goto out;
    }
    if (MPI_Alltoall(scount, 1, MPI_UINT64_T, rtotal, 1, MPI_UINT64_T, comm) != MPI_SUCCESS) {
        rc = mrf__fail(MRF_EMPI, "MPI_Alltoall of shuffle sizes failed");
        goto out;
    }
    uint64_t in_total = 0;
    for (size_t s = 0; s < P; s++)
        in_total += rtotal[s];
    if (mrf__kvbuf_reserve(recv, in_total)) {
        mrf__log(MRF_LOG_ERROR, "out of memory for %llu bytes of shuffle input",
                 (unsigned long long)in_total);
        local_err = 1;
    }

    for (;;) {
        uint64_t lo = UINT64_MAX, hi = 0, round_out = 0;
        bool more = false;
        for (size_t d = 0; d < P && !local_err; d++) {
            uint64_t avail = scount[d] - sent[d];
            uint64_t chunk = avail ? whole_records(send + sdisp[d] + sent[d], avail, cap) : 0;
            if (!avail)
                sc[d] = 0;
            if (chunk > max_cap) {
                mrf__log(MRF_LOG_ERROR,
                         "a record of %llu bytes is larger than one shuffle round can carry "
                         "(%llu bytes with %d ranks)",
                         (unsigned long long)chunk, (unsigned long long)max_cap, nranks);
                local_err = 1;
                break;
            }
            sc[d] = (int)chunk;
            if (chunk) {
                more = true;
                uint64_t a = sdisp[d] + sent[d];
                if (a < lo)
                    lo = a;
                if (a + chunk > hi)
                    hi = a + chunk;
                round_out += chunk;
            }
        }
        flags[0] = local_err;
        flags[1] = more;
        if (MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS) {
            rc = MRF_EMPI;
            goto out;
        }
        if (flags[0]) {
            rc = local_err ? MRF_ENOMEM : MRF_EIO;
            goto out;
        }
        if (!flags[1])
            break;

        const char *sbase = send;
        if (round_out == 0) {
            for (size_t d = 0; d < P; d++)
                sd[d] = 0;
        } else if (!force_stage && hi - lo <= (uint64_t)INT_MAX) {
            sbase = send + lo;
            for (size_t d = 0; d < P; d++)
                sd[d] = sc[d] ? (int)(sdisp[d] + sent[d] - lo) : 0;
        } else {
            if (round_out > stage_cap) {
                char *ns = mrf__big_resize(stage, stage_cap, round_out);
                if (!ns) {
                    /* all ranks are inside the round's collectives now: fail loudly */
                    rc = mrf__fail(MRF_ENOMEM, "out of memory for a shuffle staging buffer");
                    MPI_Abort(comm, 1);
                    goto out;
                }
                stage = ns;
                stage_cap = round_out;
            }
            uint64_t at = 0;
            for (size_t d = 0; d < P; d++) {
                memcpy(stage + at, send + sdisp[d] + sent[d], (size_t)sc[d]);
                sd[d] = (int)at;
                at += (uint64_t)sc[d];
            }
            sbase = stage;
        }
        if (MPI_Alltoall(sc, 1, MPI_INT, rcnt, 1, MPI_INT, comm) != MPI_SUCCESS) {
            rc = mrf__fail(MRF_EMPI, "MPI_Alltoall of round counts failed");
            goto out;
        }
        uint64_t rsum = 0;
        for (size_t s = 0; s < P; s++) {
            rd[s] = (int)rsum;
            rsum += (uint64_t)rcnt[s];
        }
        if (recv->cap - recv->len < rsum) {
            rc = mrf__fail(MRF_EINTERNAL, "shuffle received more than announced");
            MPI_Abort(comm, 1);
            goto out;
        }
        char *rbase = recv->base ? recv->base + recv->len : NULL;
        if (MPI_Alltoallv(sbase, sc, sd, MPI_BYTE, rbase, rcnt, rd, MPI_BYTE, comm) !=
            MPI_SUCCESS) {
            rc = mrf__fail(MRF_EMPI, "MPI_Alltoallv failed in shuffle round %u", st.rounds);
            goto out;
        }
        recv->len += rsum;
        for (size_t d = 0; d < P; d++)
            sent[d] += (uint64_t)sc[d];
        st.bytes_sent += round_out;
        st.bytes_recv += rsum;
        st.rounds++;
    }
    if (stats)
        *stats = st;
out:
    mrf__big_free(stage, stage_cap);
    mrf__free(rtotal);
    mrf__free(sent);
    mrf__free(sc);
    mrf__free(sd);
    mrf__free(rcnt);
    mrf__free(rd);
    return rc;
}
