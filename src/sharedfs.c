/*
 * sharedfs.c -- the folders every rank must see as one: the output's
 * temporary folder and --checkpoint-dir.
 *
 * On a cluster they must be on a shared file system.  Given a node-local
 * path (/tmp, a node's own disk) the job would seem to work -- every node
 * has a /tmp -- while each node wrote its own parts or its own checkpoint
 * and rank 0 committed only its node's: data lost without an error.  So
 * rank 0 creates a file no earlier run could have made (its name holds the
 * run id) and every rank looks for it; the first rank that cannot see it is
 * named with its host.  One file create, one stat per rank, one unlink.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int mrf__shared_dir(MPI_Comm comm, const char *dir, const char *token, const char *what,
                    const char *shown)
{
    int rank, rc = MRF_OK;
    MPI_Comm_rank(comm, &rank);
    char probe[PATH_MAX];
    if (snprintf(probe, sizeof probe, "%s/.mrflow-seen-%s", dir, token) >= (int)sizeof probe)
        rc = mrf__fail(MRF_EUSAGE, "%s '%s': the path is too long", what, shown);
    if (rc == MRF_OK && rank == 0) {
        int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = mrf__fail(MRF_EIO, "%s '%s': cannot create a file in '%s': %s", what, shown, dir,
                           strerror(errno));
        else
            close(fd);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    if (rc)
        return rc;
    struct stat st;
    int missing = stat(probe, &st) == 0 ? INT_MAX : rank, first = INT_MAX;
    MPI_Allreduce(&missing, &first, 1, MPI_INT, MPI_MIN, comm);
    if (rank == 0)
        unlink(probe);
    if (first == INT_MAX)
        return MRF_OK;
    if (rank == first) {
        char host[256] = "?";
        gethostname(host, sizeof host - 1);
        mrf__fail(MRF_EUSAGE,
                  "%s '%s': rank %d on host %s does not see what rank 0 wrote there: it is "
                  "not on a file system every node shares (a node-local disk such as /tmp?); "
                  "put it on the shared file system",
                  what, shown, rank, host);
    }
    return MRF_EUSAGE;
}
