/*
 * stage.c -- helpers every part of a stage uses and that call nothing of
 * the stage's own: agreeing on an outcome, CPU time, the test pause.  The
 * stage's modules call one way: job.c (the driver) calls jobsample, jobmap,
 * jobshuffle, jobreduce, jobreport and jobckpt; jobckpt loads checkpoints
 * through jobmap's and jobshuffle's entry points; jobshuffle logs through
 * jobreport; none calls back into the driver, and all may call this file.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "stage.h"

int mrf__st_agree(stage *s, int rc)
{
    int all = rc;
    if (MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, s->comm) != MPI_SUCCESS)
        return MRF_EMPI;
    return all;
}

/* This thread's CPU time: a rank's own work, whether or not it shares its
 * core (a figure that holds when ranks oversubscribe the cores). */
double mrf__st_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Testing switch: MRFLOW_TEST_PAUSE=map|map-task|map-task-spilled|shuffle|
 * shuffle-receive|reduce|reduce-mid (map-task: in the middle of a task, see
 * jobmap.c; shuffle: after round 1; shuffle-receive: before round 2 is
 * received; reduce-mid: after 4096 keys of the reduce) makes every rank wait
 * there (up to 300 s) for a preemption signal, after creating the file
 * $MRFLOW_TEST_PAUSE_FILE.RANK, so a test can send its signal mid-phase (or
 * look at the ranks) and then let them go on by creating
 * $MRFLOW_TEST_PAUSE_FILE.go.  MRFLOW_TEST_PAUSE_JOB=NAME: only in the stage
 * run of that name (a multi-stage job's JOB/STAGE.RUN). */
void mrf__st_test_pause(stage *s, const char *phase)
{
    const char *want = getenv("MRFLOW_TEST_PAUSE"), *file = getenv("MRFLOW_TEST_PAUSE_FILE");
    const char *job = getenv("MRFLOW_TEST_PAUSE_JOB"); /* only in this stage run */
    char go[4096] = "";
    if (!want || strcmp(want, phase) != 0 || (job && strcmp(job, s->spec->name) != 0))
        return;
    if (file) {
        char path[4096];
        snprintf(path, sizeof path, "%s.%d", file, s->rank);
        snprintf(go, sizeof go, "%s.go", file);
        FILE *f = fopen(path, "w");
        if (f)
            fclose(f);
    }
    for (int i = 0; i < 30000 && !mrf__preempted(); i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (s->sched)
            mrf__sched_poke(s->sched);
        if (go[0] && i % 10 == 0 && access(go, F_OK) == 0)
            break;
    }
}
