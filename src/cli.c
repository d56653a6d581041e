/*
 * cli.c -- the mrflow command: run, gen, validate, report, inspect, topo, jobs.
 *
 * `run` hands the job's spec and the rest of the command line to mrf_main;
 * gen and validate are plain single-process tools.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "internal.h"

extern const mrf_job_spec mrf_job_wordcount;
extern const mrf_job_spec mrf_job_terasort;
extern const mrf_job_spec mrf_job_kvcount;
extern const mrf_job_spec mrf_job_invindex;
extern const mrf_job_spec mrf_job_pagerank;
extern const mrf_job_spec mrf_job_histogram;
extern const mrf_job_spec mrf_job_groupby;

static const mrf_job_spec *const jobs[] = {
    &mrf_job_wordcount, &mrf_job_terasort,  &mrf_job_kvcount, &mrf_job_invindex,
    &mrf_job_pagerank,  &mrf_job_histogram, &mrf_job_groupby};
#define N_JOBS (sizeof jobs / sizeof jobs[0])

/* Before MPI_Init we do not know our rank; the launchers tell us: Open
 * MPI's mpirun, PMIx (srun --mpi=pmix), PMI-1/2 (MPICH's mpiexec, srun
 * --mpi=pmi2), else srun's task number. */
static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK",
                                        "SLURM_PROCID"};

static bool first_rank(void)
{
    for (size_t i = 0; i < sizeof rank_vars / sizeof rank_vars[0]; i++) {
        const char *v = getenv(rank_vars[i]);
        if (v)
            return strcmp(v, "0") == 0;
    }
    return true;
}

/* Started by an MPI launcher (not counting a Slurm batch shell's own
 * SLURM_PROCID). */
static bool under_launcher(void)
{
    for (size_t i = 0; i < sizeof rank_vars / sizeof rank_vars[0] - 1; i++)
        if (getenv(rank_vars[i]))
            return true;
    return false;
}

/* mrflow topo: the placement a job would get.  Under a launcher (mpirun,
 * srun) every rank reads its binding and the plan, and rank 0 prints them;
 * alone it previews --ranks-per-node N ranks on this node. */
static int cli_topo(int argc, char **argv)
{
    int mode = MRF__BIND_AUTO, n = 0;
    static const char *modes[] = {"auto", "core", "numa", "none"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("Usage: mrflow topo [--bind auto|core|numa|none] [--ranks-per-node N]\n"
                   "\n"
                   "Prints where `mrflow run ... --bind MODE` would place its ranks.\n"
                   "Under mpirun or srun: every rank's current binding (from the launcher, or\n"
                   "none) and the cores mrflow would bind it to.  Alone: the plan for N ranks\n"
                   "on this node (default: one per core).  Binds nothing.\n");
            return MRF_EXIT_OK;
        }
        if (!strcmp(a, "--bind") && i + 1 < argc) {
            mode = -1;
            for (int k = 0; k < 4; k++)
                if (!strcmp(argv[i + 1], modes[k]))
                    mode = k;
            if (mode < 0) {
                fprintf(stderr, "mrflow topo: error: --bind '%s': use auto, core, numa or none\n",
                        argv[i + 1]);
                return MRF_EXIT_USAGE;
            }
            i++;
        } else if (!strcmp(a, "--ranks-per-node") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);
            if (*end || end == argv[i + 1] || v < 1 || v > 100000) {
                fprintf(stderr,
                        "mrflow topo: error: --ranks-per-node '%s' is not a number "
                        "from 1 to 100000\n",
                        argv[i + 1]);
                return MRF_EXIT_USAGE;
            }
            n = (int)v;
            i++;
        } else {
            fprintf(stderr, "mrflow topo: error: unknown argument '%s' (see mrflow topo --help)\n",
                    a);
            return MRF_EXIT_USAGE;
        }
    }
    if (!under_launcher()) {
        if (n == 0) {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            n = c > 0 ? (int)c : 1;
        }
        return mrf__topo_preview(mode, n, stdout);
    }
    if (n) {
        fprintf(stderr, "mrflow topo: error: --ranks-per-node is for a preview without mpirun; "
                        "under a launcher the ranks are the ones it started\n");
        return MRF_EXIT_USAGE;
    }
    mrf__mpi_defaults();
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mrf__placement p, *all = NULL;
    mrf__topo_place(MPI_COMM_WORLD, mode, false, &p);
    mrf__topo_close();
    char host[64] = "", *hosts = NULL;
    gethostname(host, sizeof host - 1);
    if (rank == 0) {
        all = calloc((size_t)size, sizeof *all);
        hosts = calloc((size_t)size, sizeof host);
    }
    MPI_Gather(&p, (int)sizeof p, MPI_BYTE, all, all ? (int)sizeof p : 0, MPI_BYTE, 0,
               MPI_COMM_WORLD);
    MPI_Gather(host, (int)sizeof host, MPI_BYTE, hosts, hosts ? (int)sizeof host : 0, MPI_BYTE, 0,
               MPI_COMM_WORLD);
    if (rank == 0 && all && hosts) {
        printf("--bind %s, %d ranks\n%-6s %-16s %-10s %-14s %-10s %-9s %s\n", modes[mode], size,
               "rank", "host", "local_rank", "cpuset", "numa_node", "bound_by", "note");
        for (int r = 0; r < size; r++) {
            const mrf__placement *q = &all[r];
            printf("%-6d %-16.16s %-10d %-14s %-10s %-9s %s\n", r, hosts + (size_t)r * sizeof host,
                   q->local_rank, q->cpuset, q->numa,
                   q->how == MRF__BIND_HOW_MRFLOW ? "mrflow*" : mrf__bind_how_name(q->how),
                   q->note);
        }
        for (int r = 0; r < size; r++)
            if (all[r].how == MRF__BIND_HOW_MRFLOW) {
                printf("(mrflow*: not bound now; `mrflow run` would bind it there)\n");
                break;
            }
    }
    free(all);
    free(hosts);
    MPI_Finalize();
    return MRF_EXIT_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: mrflow COMMAND [ARGS]\n"
               "\n"
               "  run JOB --input PATH... --output DIR [options]\n"
               "                    run a job under MPI: mpirun -np N mrflow run ...\n"
               "                    (mrflow run JOB --help lists the options)\n"
               "  gen text|terasort|zipf --size SIZE --output FILE [--seed N]\n"
               "  gen graph --vertices N --edges M --output FILE [--seed N]\n"
               "                    write deterministic test data\n"
               "  validate terasort DIR [--input PATH...]\n"
               "                    check sorted output and compare it with its input\n"
               "  report FILE       print a run report (DIR/_REPORT.json) as a table\n"
               "  inspect FILE.h5   print a checkpoint's metadata and sizes per bucket and\n"
               "                    verify every block, or an output.h5's parts and offsets\n"
               "                    (exit 1 if something is damaged)\n"
               "  topo [--bind MODE] [--ranks-per-node N]\n"
               "                    print where a job's ranks would be bound (run it under\n"
               "                    mpirun or srun to see their current binding)\n"
               "  jobs              list the built-in jobs\n"
               "  --help, --version\n"
               "\n"
               "Exit status: 0 done, 1 failed, 2 usage or input error, 75 (run) checkpointed\n"
               "after a preemption signal: run the same command again to resume.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        if (first_rank())
            usage(stderr);
        return MRF_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return MRF_EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("mrflow %s\n", mrf_version());
        return MRF_EXIT_OK;
    }
    if (!strcmp(cmd, "jobs")) {
        for (size_t i = 0; i < N_JOBS; i++)
            printf("%-12s %s\n", jobs[i]->name, jobs[i]->summary);
        return MRF_EXIT_OK;
    }
    if (!strcmp(cmd, "gen"))
        return mrf__cli_gen(argc - 1, argv + 1);
    if (!strcmp(cmd, "report"))
        return mrf__cli_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) {
        if (argc != 3 || argv[2][0] == '-') {
            fprintf(stderr, "Usage: mrflow inspect FILE.h5\n");
            return argc == 3 && !strcmp(argv[2], "--help") ? MRF_EXIT_OK : MRF_EXIT_USAGE;
        }
        int rc = mrf__output_h5_inspect(argv[2], stdout); /* HDF5 output, or a checkpoint */
        if (rc == MRF_EINPUT)
            rc = mrf__ckpt_inspect(argv[2], stdout);
        return mrf__exit_status(rc);
    }
    if (!strcmp(cmd, "topo"))
        return cli_topo(argc - 1, argv + 1);
    if (!strcmp(cmd, "validate"))
        return mrf__cli_validate(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) {
        if (argc < 3 || argv[2][0] == '-') {
            if (first_rank())
                fprintf(stderr, "mrflow: error: run needs a job name; `mrflow jobs` lists them\n");
            return MRF_EXIT_USAGE;
        }
        for (size_t i = 0; i < N_JOBS; i++) {
            if (strcmp(argv[2], jobs[i]->name) != 0)
                continue;
            char prog[128];
            snprintf(prog, sizeof prog, "mrflow run %s", jobs[i]->name);
            argv[2] = prog;
            return mrf_main(argc - 2, argv + 2, jobs[i]);
        }
        if (first_rank())
            fprintf(stderr, "mrflow: error: unknown job '%s'; `mrflow jobs` lists them\n", argv[2]);
        return MRF_EXIT_USAGE;
    }
    if (first_rank())
        fprintf(stderr, "mrflow: error: unknown command '%s' (see mrflow --help)\n", cmd);
    return MRF_EXIT_USAGE;
}
