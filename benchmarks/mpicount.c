/*
 * mpicount.c -- counts a program's MPI calls through the PMPI profiling
 * interface, for benchmarks/scale.  Built as a shared library and preloaded
 * into each rank (LD_PRELOAD, which mpirun -x passes to every node); at
 * MPI_Finalize every rank writes one line to $MPICOUNT_OUT.RANK:
 *
 *   rank R coll N p2p_sent N p2p_bytes N allreduce N bcast N gather N
 *   alltoallv N alltoall N allgather N barrier N ibarrier N reduce N
 *   scan N comm_dup N
 *
 * `coll` is the sum of the collectives named after it; `p2p_sent` counts
 * MPI_Send and MPI_Isend (the scheduler's and the heavy-key exchange's
 * messages), p2p_bytes their payload.  MPI-IO (checkpoints, HDF5 output) is
 * not counted.  Not part of mrflow: a measuring tool.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    ALLREDUCE,
    BCAST,
    GATHER,
    ALLTOALLV,
    ALLTOALL,
    ALLGATHER,
    BARRIER,
    IBARRIER,
    REDUCE,
    SCAN,
    COMM_DUP,
    NCOUNT
};
static const char *const names[NCOUNT] = {"allreduce", "bcast",     "gather",  "alltoallv",
                                          "alltoall",  "allgather", "barrier", "ibarrier",
                                          "reduce",    "scan",      "comm_dup"};
static unsigned long long count[NCOUNT], sent, sent_bytes;

static void add_bytes(int n, MPI_Datatype t)
{
    int sz = 0;
    PMPI_Type_size(t, &sz);
    sent++;
    sent_bytes += (unsigned long long)n * (unsigned long long)sz;
}

int MPI_Allreduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
    count[ALLREDUCE]++;
    return PMPI_Allreduce(s, r, n, t, op, c);
}
int MPI_Bcast(void *b, int n, MPI_Datatype t, int root, MPI_Comm c)
{
    count[BCAST]++;
    return PMPI_Bcast(b, n, t, root, c);
}
int MPI_Gather(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt, int root,
               MPI_Comm c)
{
    count[GATHER]++;
    return PMPI_Gather(s, sn, st, r, rn, rt, root, c);
}
int MPI_Gatherv(const void *s, int sn, MPI_Datatype st, void *r, const int *rn, const int *d,
                MPI_Datatype rt, int root, MPI_Comm c)
{
    count[GATHER]++;
    return PMPI_Gatherv(s, sn, st, r, rn, d, rt, root, c);
}
int MPI_Alltoallv(const void *s, const int *sn, const int *sd, MPI_Datatype st, void *r,
                  const int *rn, const int *rd, MPI_Datatype rt, MPI_Comm c)
{
    count[ALLTOALLV]++;
    return PMPI_Alltoallv(s, sn, sd, st, r, rn, rd, rt, c);
}
int MPI_Alltoall(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt,
                 MPI_Comm c)
{
    count[ALLTOALL]++;
    return PMPI_Alltoall(s, sn, st, r, rn, rt, c);
}
int MPI_Allgather(const void *s, int sn, MPI_Datatype st, void *r, int rn, MPI_Datatype rt,
                  MPI_Comm c)
{
    count[ALLGATHER]++;
    return PMPI_Allgather(s, sn, st, r, rn, rt, c);
}
int MPI_Barrier(MPI_Comm c)
{
    count[BARRIER]++;
    return PMPI_Barrier(c);
}
int MPI_Ibarrier(MPI_Comm c, MPI_Request *q)
{
    count[IBARRIER]++;
    return PMPI_Ibarrier(c, q);
}
int MPI_Reduce(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, int root, MPI_Comm c)
{
    count[REDUCE]++;
    return PMPI_Reduce(s, r, n, t, op, root, c);
}
int MPI_Exscan(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
    count[SCAN]++;
    return PMPI_Exscan(s, r, n, t, op, c);
}
int MPI_Scan(const void *s, void *r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c)
{
    count[SCAN]++;
    return PMPI_Scan(s, r, n, t, op, c);
}
int MPI_Comm_dup(MPI_Comm c, MPI_Comm *out)
{
    count[COMM_DUP]++;
    return PMPI_Comm_dup(c, out);
}
int MPI_Send(const void *b, int n, MPI_Datatype t, int to, int tag, MPI_Comm c)
{
    add_bytes(n, t);
    return PMPI_Send(b, n, t, to, tag, c);
}
int MPI_Isend(const void *b, int n, MPI_Datatype t, int to, int tag, MPI_Comm c, MPI_Request *q)
{
    add_bytes(n, t);
    return PMPI_Isend(b, n, t, to, tag, c, q);
}

int MPI_Finalize(void)
{
    int rank = 0;
    PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *out = getenv("MPICOUNT_OUT");
    if (out) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", out, rank);
        FILE *f = fopen(path, "w");
        if (f) {
            unsigned long long coll = 0;
            for (int i = 0; i < NCOUNT - 1; i++)
                coll += count[i];
            fprintf(f, "rank %d coll %llu p2p_sent %llu p2p_bytes %llu", rank, coll, sent,
                    sent_bytes);
            for (int i = 0; i < NCOUNT; i++)
                fprintf(f, " %s %llu", names[i], count[i]);
            fprintf(f, "\n");
            fclose(f);
        }
    }
    return PMPI_Finalize();
}
