/*
 * alltoall.c -- the raw MPI_Alltoallv bandwidth the shuffle is measured
 * against: moves BYTES from every rank, spread evenly over all ranks (itself
 * included, as the shuffle does), in rounds of at most ROUND bytes per rank,
 * from buffers touched beforehand.  Prints seconds (slowest rank) and MB/s
 * per rank.  Usage: mpirun -np N alltoall BYTES ROUND
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    if (argc != 3) {
        if (rank == 0)
            fprintf(stderr, "usage: alltoall BYTES ROUND\n");
        MPI_Finalize();
        return 2;
    }
    long long bytes = atoll(argv[1]), round = atoll(argv[2]);
    long long per = (round < bytes ? round : bytes) / n; /* bytes to each peer per round */
    if (per > (1LL << 30) / n)
        per = (1LL << 30) / n;
    if (per < 1)
        per = 1;
    char *s = malloc((size_t)(per * n)), *r = malloc((size_t)(per * n));
    int *cnt = malloc(sizeof(int) * (size_t)n), *disp = malloc(sizeof(int) * (size_t)n);
    if (!s || !r || !cnt || !disp)
        MPI_Abort(MPI_COMM_WORLD, 1);
    memset(s, 1, (size_t)(per * n));
    memset(r, 0, (size_t)(per * n));
    for (int i = 0; i < n; i++) {
        cnt[i] = (int)per;
        disp[i] = (int)(per * i);
    }
    long long rounds = (bytes + per * n - 1) / (per * n);
    MPI_Barrier(MPI_COMM_WORLD);
    double t = MPI_Wtime();
    for (long long k = 0; k < rounds; k++)
        MPI_Alltoallv(s, cnt, disp, MPI_BYTE, r, cnt, disp, MPI_BYTE, MPI_COMM_WORLD);
    t = MPI_Wtime() - t;
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%.4f %.1f\n", t, (double)(rounds * per * n) / t / 1e6);
    free(s);
    free(r);
    free(cnt);
    free(disp);
    MPI_Finalize();
    return 0;
}
