/*
 * signals.c -- preemption signals turned into a flag polled at safe points.
 *
 * SIGUSR1, SIGUSR2 and SIGTERM (what Slurm and mpirun send before a kill)
 * only set a flag here; the stage polls it between map tasks, at every
 * shuffle round and between reduce keys, and the ranks agree on it in a
 * collective, so all of them stop at the same safe point, checkpoint and exit
 * with status 75.
 */
#include <signal.h>

#include "internal.h"

static volatile sig_atomic_t got_signal;

static void on_signal(int signo)
{
    got_signal = signo;
}

int mrf__signals_install(void)
{
    static const int sigs[] = {SIGUSR1, SIGUSR2, SIGTERM};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        if (sigaction(sigs[i], &sa, NULL))
            return mrf__fail(MRF_EINTERNAL, "installing the handler of signal %d failed", sigs[i]);
    return MRF_OK;
}

void mrf__signals_restore(void)
{
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

int mrf__preempted(void)
{
    return got_signal;
}

void mrf__preempt_reset(void)
{
    got_signal = 0;
}
