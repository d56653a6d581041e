/*
 * driver.c -- a job from start to end: MPI and options, then one stage or a
 * sequence of stage runs (multi-stage and iterative jobs), the exit status.
 *
 * A multi-stage job (spec->next, spec->iterate) runs as stage runs, each a
 * whole stage of the engine (job.c, mrf__stage_run):
 *
 *   input files -> stage 0 -> stages/stage-00.0000/part-RANK-SEQ (+ _STAGE)
 *               -> stage 1 run 0 -> stage-01.0000 -> run 1 -> ... -> output
 *
 * Intermediate folders are committed like any output; a resumed job starts
 * after the newest one (docs/architecture.md, "Multi-stage and iterative jobs").
 *
 * Arrows: cli -> driver (mrf_main) -> job (a stage) -> stage modules.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

static int check_spec(const mrf_job_spec *spec)
{
    if (!spec || !spec->name || !spec->map || !spec->reduce)
        return mrf__fail(MRF_EINVAL, "job spec lacks a name, map or reduce");
    if (spec->input == MRF_INPUT_RECORDS &&
        (spec->record_size == 0 || spec->record_size > INT32_MAX))
        return mrf__fail(MRF_EINVAL, "job '%s': record_size must be 1 to 2^31-1", spec->name);
    if (spec->input != MRF_INPUT_LINES && spec->input != MRF_INPUT_RECORDS &&
        spec->input != MRF_INPUT_DATASET)
        return mrf__fail(MRF_EINVAL, "job '%s': unknown input kind", spec->name);
    int rc = mrf__check_job_options(spec);
    if (rc)
        return rc;
    for (const mrf_job_spec *st = spec; st; st = st->next)
        if ((rc = mrf__typed_check(st)))
            return rc;
    int k = 1;
    for (const mrf_job_spec *st = spec->next; st; st = st->next, k++) {
        if (!st->map || !st->reduce)
            return mrf__fail(MRF_EINVAL, "job '%s': stage %d lacks a map or reduce", spec->name, k);
        if (st->partitioning != MRF_PART_HASH)
            return mrf__fail(MRF_EINVAL,
                             "job '%s': stage %d asks for range partitioning, which only the "
                             "first stage may use",
                             spec->name, k);
        if (k > 64)
            return mrf__fail(MRF_EINVAL, "job '%s': more than 64 stages (a loop in next?)",
                             spec->name);
    }
    if (spec->iterate && spec->partitioning != MRF_PART_HASH)
        return mrf__fail(MRF_EINVAL, "job '%s': an iterative first stage must use MRF_PART_HASH",
                         spec->name);
    return MRF_OK;
}

/* ---------------------------------------------------------- multi-stage -- */

/* The pass that turns an iterative last stage's records into the job's
 * output (its reduce could not know it was the last run). */
static void identity_map(const mrf_record *in, mrf_emitter *out, void *ctx)
{
    (void)ctx;
    mrf_emit(out, in->key, in->klen, in->data, in->len);
}

static void identity_reduce(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out,
                            void *ctx)
{
    const void *v;
    size_t vl;
    (void)ctx;
    while (mrf_values_next(vals, &v, &vl) == 1)
        mrf_emit(out, key, klen, v, vl);
}

/* Rank 0 reads DIR/_STAGE of a committed intermediate stage run (for a
 * resumed job); every rank gets the sums.  0 when it is there and is this
 * job's, 1 when the run has to be done. Collective. */
static int stage_done(MPI_Comm comm, const char *dir, const char *job, double *sums)
{
    int rank, have = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        char path[4096], name[256] = "", line[128];
        snprintf(path, sizeof path, "%.4000s/_SUCCESS", dir);
        FILE *f = NULL;
        if (access(path, F_OK) == 0) {
            snprintf(path, sizeof path, "%.4000s/_STAGE", dir);
            f = fopen(path, "r");
        }
        if (f && fgets(line, sizeof line, f) && !strcmp(line, "mrflow-stage 1\n") &&
            fscanf(f, "job %255s run %*u", name) == 1 && !strcmp(name, job)) {
            have = 1;
            for (int i = 0; i < MRF_STAGE_SLOTS && have; i++) {
                int k;
                have = fscanf(f, " sum%d %la", &k, &sums[i]) == 2 && k == i;
            }
        }
        if (f)
            fclose(f);
    }
    MPI_Bcast(&have, 1, MPI_INT, 0, comm);
    MPI_Bcast(sums, MRF_STAGE_SLOTS, MPI_DOUBLE, 0, comm);
    return have ? 0 : 1;
}

/* The name a stage run's spec gets: the job's for the first, JOB/K.RUN after. */
static void stage_name(char *buf, size_t n, const char *job, unsigned k, unsigned run)
{
    if (k || run)
        snprintf(buf, n, "%s/%u.%u", job, k, run);
    else
        snprintf(buf, n, "%s", job);
}

/* The newest committed stage run in base (resumed jobs): 1 and its stage
 * and run, or 0.  Collective (rank 0 looks, every rank learns). */
static int newest_stage_run(MPI_Comm comm, const char *base, const char *job, unsigned *k,
                            unsigned *run)
{
    int rank;
    unsigned best[3] = {0, 0, 0}; /* found, k, run */
    MPI_Comm_rank(comm, &rank);
    DIR *d = rank == 0 ? opendir(base) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        unsigned kk, rr;
        char tail, path[4096], name[256], want[256], line[64];
        if (sscanf(e->d_name, "stage-%2u.%4u%c", &kk, &rr, &tail) != 2)
            continue;
        snprintf(path, sizeof path, "%.3000s/%.200s/_SUCCESS", base, e->d_name);
        if (access(path, F_OK) != 0)
            continue;
        snprintf(path, sizeof path, "%.3000s/%.200s/_STAGE", base, e->d_name);
        FILE *f = fopen(path, "r");
        stage_name(want, sizeof want, job, kk, rr);
        bool ok = f && fgets(line, sizeof line, f) && !strcmp(line, "mrflow-stage 1\n") &&
                  fscanf(f, "job %255s", name) == 1 && !strcmp(name, want);
        if (f)
            fclose(f);
        if (ok && (!best[0] || kk > best[1] || (kk == best[1] && rr > best[2]))) {
            best[0] = 1;
            best[1] = kk;
            best[2] = rr;
        }
    }
    if (d)
        closedir(d);
    MPI_Bcast(best, 3, MPI_UNSIGNED, 0, comm);
    *k = best[1];
    *run = best[2];
    return (int)best[0];
}

/* Runs one stage run: spec (a copy made for this run) over inputs into out. */
typedef struct run_list { /* the runs so far, for the report's stage_runs */
    mrf__stage_fig *v;
    size_t n, cap;
} run_list;

/* Room for one more run in l (NULL when memory ran out: then the report
 * just lists fewer). */
static mrf__stage_fig *run_slot(run_list *l)
{
    mrf__stage_fig *v = mrf__grow_for(l->v, &l->cap, l->n, sizeof *v);
    if (!v)
        return NULL;
    l->v = v;
    return &v[l->n];
}

static int run_one(MPI_Comm comm, const mrf__options *opt, const mrf_job_spec *spec, char **inputs,
                   size_t n_inputs, const char *out, bool last, const char *ckpt, unsigned run,
                   const double *prev, double *sums, run_list *runs)
{
    mrf__options o = *opt;
    /* the slot first: growing the list may move it */
    mrf__stage_fig *fig = run_slot(runs);
    o.stage_runs = runs->v;
    o.n_stage_runs = runs->n;
    o.inputs = inputs;
    o.n_inputs = n_inputs;
    o.output = out;
    o.kv_output = !last;
    o.overwrite = last ? opt->overwrite : false;
    o.format_hdf5 = last && opt->format_hdf5;
    o.ckpt_dir = ckpt;
    /* --report FILE and --metrics FILE: each run replaces them, so a job
     * that fails in any stage leaves that run's, one that succeeds the last */
    o.report = opt->report;
    o.metrics = opt->metrics;
    o.quiet = last ? opt->quiet : true;
    int rc = mrf__stage_run(comm, &o, spec, run, prev, sums, fig);
    if (fig)
        runs->n++;
    return rc;
}

/* A job of several stages, or an iterative one (spec->next, spec->iterate).
 * Each stage run is a whole stage of the engine: its input the previous
 * run's intermediate files (MRF__INPUT_KV: u32 klen, u32 vlen, key, value,
 * files of <= 16 MiB, one map task each), its output the next run's input,
 * committed atomically like any output.  They live in --checkpoint-dir/
 * stages/ (then a committed run is never redone: a resumed job reads its
 * _STAGE and goes on) or in a hidden sibling of --output, removed at the
 * end; each run's own checkpoints in a folder of its own. */
static int run_job(MPI_Comm comm, const mrf__options *opt, const mrf_job_spec *spec)
{
    int rank, rc = MRF_OK;
    MPI_Comm_rank(comm, &rank);
    char base[4096], prev_dir[4096] = "", out[4096], ck[4096], name[256];
    double prev[MRF_STAGE_SLOTS] = {0}, sums[MRF_STAGE_SLOTS];
    char *inputs1[1];
    run_list runs = {0};
    if (opt->ckpt_dir) {
        snprintf(base, sizeof base, "%s/stages", opt->ckpt_dir);
    } else {
        const char *slash = strrchr(opt->output, '/');
        if (slash)
            snprintf(base, sizeof base, "%.*s/.%s.mrflow-stages", (int)(slash - opt->output),
                     opt->output, slash + 1);
        else
            snprintf(base, sizeof base, ".%s.mrflow-stages", opt->output);
    }
    /* the job's output must be free (or --overwrite) before any stage runs */
    if (rank == 0) {
        struct stat st;
        if (lstat(opt->output, &st) == 0 && !opt->overwrite)
            rc = mrf__fail(MRF_EEXIST,
                           "output '%s' already exists; choose another --output or add "
                           "--overwrite",
                           opt->output);
        else if (opt->ckpt_dir && mkdir(opt->ckpt_dir, 0777) != 0 && errno != EEXIST)
            rc = mrf__fail(MRF_EUSAGE, "cannot create --checkpoint-dir '%s': %s", opt->ckpt_dir,
                           strerror(errno));
        else if (opt->ckpt_dir && (stat(opt->ckpt_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
            rc = mrf__fail(MRF_EUSAGE, "--checkpoint-dir '%s' is not a directory", opt->ckpt_dir);
        else if (opt->ckpt_dir && opt->no_resume)
            (void)mrf__remove_tree(base);
        else if (!opt->ckpt_dir)
            (void)mrf__remove_tree(base); /* a killed run's leftovers: nothing to resume */
        if (rc == MRF_OK && mkdir(base, 0777) != 0 && errno != EEXIST)
            rc = mrf__fail(MRF_EIO, "cannot create '%s' for the job's intermediate stages: %s",
                           base, strerror(errno));
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    if (rc)
        return rc;
    /* a resumed job starts after the newest stage run it committed */
    unsigned from_k = 0, from_run = 0;
    int have_from =
        opt->ckpt_dir ? newest_stage_run(comm, base, spec->name, &from_k, &from_run) : 0;
    unsigned k = 0;
    const mrf_job_spec *st = spec;
    for (; st && rc == MRF_OK; st = st->next, k++) {
        if (have_from && k < from_k)
            continue; /* done before: its output went into the runs after it */
        for (unsigned run = 0;; run++) {
            bool last = !st->next && !st->iterate;
            mrf_job_spec sp = *st;
            stage_name(name, sizeof name, spec->name, k, run);
            if (k || run) { /* fed by the previous run */
                sp.name = name;
                sp.input = (mrf_input_kind)MRF__INPUT_KV;
                sp.record_size = 0;
            }
            sp.output = spec->output;
            snprintf(out, sizeof out, "%.4000s/stage-%02u.%04u", base, k, run);
            snprintf(ck, sizeof ck, "%.4000s.ckpt", out);
            inputs1[0] = prev_dir;
            char **in = k || run ? inputs1 : opt->inputs;
            size_t nin = k || run ? 1 : opt->n_inputs;
            if (have_from && k == from_k && run < from_run)
                continue;
            if (have_from && k == from_k && run == from_run) {
                have_from = 0;
                stage_done(comm, out, sp.name, sums);
                mrf__stage_fig *fig = run_slot(&runs);
                if (fig) {
                    memset(fig, 0, sizeof *fig);
                    snprintf(fig->name, sizeof fig->name, "%s", sp.name);
                    fig->done_before = true;
                    runs.n++;
                }
                if (rank == 0)
                    mrf__log(MRF_LOG_INFO,
                             "resuming job '%s' after stage %u run %u, committed by an earlier "
                             "run (%s)",
                             spec->name, k, run, out);
            } else {
                rc = run_one(comm, opt, &sp, in, nin, last ? opt->output : out, last,
                             opt->ckpt_dir ? ck : NULL, run, prev, sums, &runs);
                if (rc)
                    break;
                /* the input it read is no longer needed (a resumed job starts after
                 * it), nor its own checkpoints (removed, their folder left) */
                if (rank == 0 && prev_dir[0])
                    (void)mrf__remove_tree(prev_dir);
                if (rank == 0 && opt->ckpt_dir)
                    (void)mrf__remove_tree(ck);
            }
            if (last)
                break;
            snprintf(prev_dir, sizeof prev_dir, "%s", out);
            memcpy(prev, sums, sizeof prev);
            if (!st->iterate)
                break;
            int again = run + 1 < opt->iterations && st->iterate(run, sums, opt->tol, st->ctx);
            MPI_Bcast(&again, 1, MPI_INT, 0, comm); /* rank 0's decision for everyone */
            if (!again) {
                if (rank == 0)
                    mrf__log(MRF_LOG_INFO, "stage %u: %u run%s%s", k, run + 1, run ? "s" : "",
                             run + 1 >= opt->iterations ? " (--iterations reached)" : "");
                break;
            }
        }
        if (rc == MRF_OK && !st->next && st->iterate) {
            /* the last run's records become the job's output */
            snprintf(name, sizeof name, "%s/output", spec->name);
            mrf_job_spec sp = {.name = name,
                               .input = (mrf_input_kind)MRF__INPUT_KV,
                               .map = identity_map,
                               .reduce = identity_reduce,
                               .output = spec->output,
                               .flags = MRF_PER_VALUE};
            inputs1[0] = prev_dir;
            snprintf(ck, sizeof ck, "%.4000s/output.ckpt", base);
            rc = run_one(comm, opt, &sp, inputs1, 1, opt->output, true, opt->ckpt_dir ? ck : NULL,
                         0, prev, sums, &runs);
        }
    }
    mrf__free(runs.v);
    /* done, or failed with nothing to resume: the intermediate files go */
    if (rank == 0 && (rc == MRF_OK || !opt->ckpt_dir))
        (void)mrf__remove_tree(base);
    return rc;
}

/*
 * MRFLOW_EXIT_FILE=PATH: rank 0 writes its exit status there ("75\n"),
 * written whole and renamed into place.  A batch script reads it instead of
 * trusting the launcher alone: MPICH's mpiexec (4.0, Debian 12) sometimes
 * returns 0 for a job whose ranks all exited 75 after a forwarded USR1 (3 of
 * 8 tries on two pretend nodes; every rank exiting 75 at once, 1 of 8), and
 * a checkpointed job would then look done.  slurm/mrflow.sbatch sets it.
 */
static void record_exit(int status)
{
    const char *path = getenv("MRFLOW_EXIT_FILE");
    if (!path || !*path)
        return;
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp)
        return;
    snprintf(tmp, n, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%d\n", status) > 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr,
                "mrflow: warning: cannot record the exit status in MRFLOW_EXIT_FILE '%s': %s\n",
                path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
}

int mrf_main(int argc, char **argv, const mrf_job_spec *spec)
{
    int inited = 0, rank = 0, rc;
    /* a write past RLIMIT_FSIZE (a full quota) is then an error we report,
     * not a signal that kills the rank */
    signal(SIGXFSZ, SIG_IGN);
    /* A preemption signal that comes while MPI starts (Slurm's warning can
     * come early) must not kill the rank: it is held as a flag from here;
     * without --checkpoint-dir it is raised again below. */
    mrf__signals_install();
    mrf__mpi_defaults();
    MPI_Initialized(&inited);
    if (!inited && MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "mrflow: error: MPI_Init failed\n");
        return MRF_EXIT_FAILED;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    mrf__log_init(rank, MRF_LOG_WARN);

    mrf__options opt;
    char err[MRF_ERRLEN];
    const char *prog = argc > 0 && argv[0] ? argv[0] : "mrflow";
    rc = check_spec(spec);
    if (rc == MRF_OK) {
        rc = mrf__parse_options(argc, argv, spec->options, &opt, err, sizeof err);
        if (rc || !opt.ckpt_dir) {
            int sig = mrf__preempted();
            mrf__signals_restore();
            if (sig)
                raise(sig);
        }
        if (rc) {
            if (rank == 0)
                fprintf(stderr, "mrflow: error: %s\n", err);
        } else if (opt.help || opt.version) {
            if (rank == 0 && opt.help)
                mrf__print_run_help(prog, spec);
            else if (rank == 0)
                printf("mrflow %s\n", mrf_version());
            mrf__options_free(&opt);
        } else {
            mrf__log_init(rank, opt.log_level);
            mrf__log_format(opt.log_json);
            if (mrf__mpi_defaults_said())
                mrf__log(MRF_LOG_DEBUG, "MPI start-up: %s", mrf__mpi_defaults_said());
            if (spec->next || spec->iterate) {
                rc = run_job(MPI_COMM_WORLD, &opt, spec);
            } else {
                double none[MRF_STAGE_SLOTS] = {0}, sums[MRF_STAGE_SLOTS];
                rc = mrf__stage_run(MPI_COMM_WORLD, &opt, spec, 0, none, sums, NULL);
            }
            mrf__signals_restore();
            mrf__options_free(&opt);
            /* every engine byte is accounted in mem.c: none may outlive the job */
            size_t left = mrf__mem_in_use();
            if (left) {
                mrf__log(MRF_LOG_WARN, "internal: %zu bytes still allocated after the job", left);
                if (getenv("MRFLOW_STRICT_MEM") && rc == MRF_OK)
                    rc = MRF_EINTERNAL;
            }
        }
    }
#ifdef __SANITIZE_ADDRESS__
    /* LeakSanitizer's check, here rather than at exit: MPI's components are
     * still loaded, so its own leaks have names that tests/lsan.supp can
     * suppress (MPI_Finalize unloads them), and every leak of ours is
     * reported.  The job then fails.  (Run with leak_check_at_exit=0.) */
    if (__lsan_do_recoverable_leak_check() && rc == MRF_OK)
        rc = MRF_EINTERNAL;
#endif
    if (!inited)
        MPI_Finalize();
    int status = mrf__exit_status(rc);
    if (rank == 0)
        record_exit(status);
    /* Every rank exits with the job's status, but rank 0 first: MPICH's
     * launcher before 4.2 (Debian 12 ships 4.0) can report 0 when two ranks
     * it watches exit non-zero at once (pmodels/mpich#7058: each resets the
     * status while it kills the rest), and then a checkpointed (75) or
     * failed job would look done to a batch script.  Exiting 0.3 s after
     * rank 0 leaves one non-zero exit per launcher to see: mpirun and
     * mpiexec stop the others and report rank 0's status, srun gets every
     * rank's. */
    if (status != MRF_EXIT_OK && rank != 0 && !inited) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return status;
}
