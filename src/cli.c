/*
 * cli.c -- the mrflow command: run, gen, validate, report, inspect, jobs.
 *
 * `run` hands the job's spec and the rest of the command line to mrf_main;
 * gen and validate are plain single-process tools.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "internal.h"

extern const mrf_job_spec mrf_job_wordcount;
extern const mrf_job_spec mrf_job_terasort;
extern const mrf_job_spec mrf_job_kvcount;

static const mrf_job_spec *const jobs[] = {&mrf_job_wordcount, &mrf_job_terasort, &mrf_job_kvcount};
#define N_JOBS (sizeof jobs / sizeof jobs[0])

/* Before MPI_Init we do not know our rank; the launchers tell us. */
static bool first_rank(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v)
            return strcmp(v, "0") == 0;
    }
    return true;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: mrflow COMMAND [ARGS]\n"
               "\n"
               "  run JOB --input PATH... --output DIR [options]\n"
               "                    run a job under MPI: mpirun -np N mrflow run ...\n"
               "                    (mrflow run JOB --help lists the options)\n"
               "  gen text|terasort|zipf --size SIZE --output FILE [--seed N]\n"
               "                    write deterministic test data\n"
               "  validate terasort DIR [--input PATH...]\n"
               "                    check sorted output and compare it with its input\n"
               "  report FILE       print a run report (DIR/_REPORT.json) as a table\n"
               "  inspect FILE.h5   print a checkpoint's metadata and sizes per bucket and\n"
               "                    verify every block, or an output.h5's parts and offsets\n"
               "                    (exit 1 if something is damaged)\n"
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
