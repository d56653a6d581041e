/*
 * sched.c -- map tasks claimed dynamically, and speculative backups of
 * stragglers, with exactly one commit per task.
 *
 * No coordinator: every rank exposes an MPI window (MPI_Win_allocate,
 * passive target, lock_all for the whole phase) holding the state of its
 * home tasks -- the contiguous share the static dealing would have given it:
 *
 *   window of rank r:  [committed][backups][failed][claim][bytes] | task 0: done bytes rate backup
 * | ... (all but claim used on rank 0 only)          (int64 each)
 *
 * Every update is an MPI_Fetch_and_op (SUM or REPLACE): Open MPI 4.1's
 * emulated MPI_Compare_and_swap over the vader BTL crashes (seen here), while
 * fetch-and-add works over vader and TCP alike.
 * - claim: rank r's claim word packs head (low 32 bits) and tail (high 32
 *   bits, signed) of its unclaimed home tasks.  The owner adds 1 and owns task
 *   `head` if head < tail; a thief that reads head < tail adds -2^32 and owns
 *   task `tail - 1` if that is still >= head.  Both are single atomics, so no
 *   task is handed out twice; overshooting leaves head >= tail, "empty".
 * - progress: the runner publishes bytes done and its rate (bytes/s measured
 *   by itself, so clocks need not agree), and reads `done`: if another copy
 *   committed, it stops.
 * - speculation: a rank with nothing to claim reads the task states and
 *   backs up the running task that would gain most, but only if the runner's
 *   rate is below half the typical rate (the median of every published rate,
 *   running tasks' and finished ones') AND the runner's estimated time left
 *   exceeds 1.5x what the backup would take at the idle rank's own rate, in
 *   three scans in a row (a short dip, such as a big task's table growing,
 *   is not a straggler).  A task slow only because it is
 *   larger has a normal rate and is never picked.  Backups running at once are
 *   capped by a counter on rank 0; each task gets at most one backup (the
 *   first to add 1 to its `backup` counter).
 * - commit: add 1 to the task's `done`; the copy that saw 0 won.  The caller
 *   merges the winner's output and discards every other copy's.
 * - end: every commit increments rank 0's counter; a rank leaves the phase
 *   when it reads ntasks there, or when a rank that failed has set `failed`
 *   (so nobody waits for a task whose runner is gone).
 * - stop (a checkpoint is due, or a preemption signal came): any rank adds 1
 *   to rank 0's `stop`; every rank reads it before each claim and while
 *   idle, and leaves the phase after the task it is running, so all stop
 *   within one task; the caller learns which tasks were committed.
 *
 * Per-rank state: its home tasks' entries and its own cursor; an idle rank
 * reads every rank's entries every 5 ms (x (1 + ranks/16)) to look for
 * stragglers.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#include "internal.h"

enum { F_DONE, F_BYTES, F_RATE, F_BACKUP, NFIELD };
enum { G_COMMITTED, G_BACKUPS, G_FAILED, G_CLAIM, G_BYTES, G_STOP, NGLOBAL };

struct mrf__sched {
    MPI_Comm comm;
    MPI_Win win;
    int64_t *base; /* my window */
    int rank, size;
    const mrf__plan *plan;
    size_t ntasks;
    size_t *first;  /* size + 1: home tasks of rank r are [first[r], first[r+1]) */
    bool own_empty; /* my home tasks are all claimed */
    bool *drained;  /* per victim: nothing left to steal there */
    bool speculate;
    bool stopped; /* left because a stop was requested */
    int max_backups;
    uint64_t mapped_bytes; /* by me, in committed or aborted work */
    double mapped_s;
    double last_scan;
    long suspect;     /* the straggler the last scans picked ... */
    int suspect_seen; /* ... in this many scans in a row; a backup needs SUSPECT_SCANS */
    mrf__sched_stats st;
};

int mrf__home_rank(uint64_t total, uint64_t before, uint64_t len, int size)
{
    if (total == 0)
        return 0;
    unsigned __int128 mid = (unsigned __int128)before * 2 + len;
    int r = (int)((mid * (unsigned)size) / ((unsigned __int128)total * 2));
    return r >= size ? size - 1 : r;
}

static int owner_of(const mrf__sched *s, size_t t)
{
    int lo = 0, hi = s->size - 1;
    while (lo < hi) { /* last r with first[r] <= t */
        int mid = (lo + hi + 1) / 2;
        if (s->first[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

static MPI_Aint disp(const mrf__sched *s, size_t t, int field)
{
    int h = owner_of(s, t);
    return (MPI_Aint)(NGLOBAL + (t - s->first[h]) * NFIELD + (size_t)field);
}

static int64_t fetch_op(mrf__sched *s, int target, MPI_Aint d, int64_t v, MPI_Op op)
{
    int64_t old;
    MPI_Fetch_and_op(&v, &old, MPI_INT64_T, target, d, op, s->win);
    MPI_Win_flush(target, s->win);
    return old;
}

static int64_t fetch_add(mrf__sched *s, int target, MPI_Aint d, int64_t add)
{
    return fetch_op(s, target, d, add, MPI_SUM);
}

/* Adds 1 to a task's counter; true for the first to do so. */
static bool first_to(mrf__sched *s, size_t t, int field)
{
    return fetch_add(s, owner_of(s, t), disp(s, t, field), 1) == 0;
}

static void claim_word(int64_t w, int64_t *head, int64_t *tail)
{
    *head = (int64_t)(uint32_t)(w & 0xffffffff);
    *tail = w >> 32; /* arithmetic: a tail below 0 reads as negative */
}

static int64_t read_field(mrf__sched *s, size_t t, int field)
{
    int64_t v, dummy = 0;
    int h = owner_of(s, t);
    MPI_Fetch_and_op(&dummy, &v, MPI_INT64_T, h, disp(s, t, field), MPI_NO_OP, s->win);
    MPI_Win_flush(h, s->win);
    return v;
}

int mrf__sched_create(MPI_Comm comm, const mrf__plan *plan, bool speculate, int max_backups,
                      mrf__sched **out)
{
    mrf__sched *s = mrf__calloc(1, sizeof *s);
    int rc = MRF_OK;
    if (!s)
        rc = MRF_ENOMEM;
    if (s) {
        s->comm = comm;
        MPI_Comm_rank(comm, &s->rank);
        MPI_Comm_size(comm, &s->size);
        s->plan = plan;
        s->ntasks = plan->n_tasks;
        s->speculate = speculate;
        s->max_backups = max_backups;
        s->first = mrf__calloc((size_t)s->size + 1, sizeof *s->first);
        s->drained = mrf__calloc((size_t)s->size, sizeof *s->drained);
        if (!s->first || !s->drained)
            rc = MRF_ENOMEM;
    }
    /* agree before the collective window allocation */
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, comm);
    if (all) {
        if (s) {
            mrf__free(s->first);
            mrf__free(s->drained);
            mrf__free(s);
        }
        return rc ? mrf__fail(rc, "out of memory for the task scheduler") : all;
    }
    /* home shares: the static dealing, monotone in t */
    uint64_t before = 0;
    size_t t = 0;
    for (int r = 0; r < s->size; r++) {
        s->first[r] = t;
        while (t < s->ntasks &&
               mrf__home_rank(plan->total_bytes, before, plan->tasks[t].len, s->size) == r) {
            before += plan->tasks[t].len;
            t++;
        }
    }
    s->first[s->size] = s->ntasks;
    size_t mine = s->first[s->rank + 1] - s->first[s->rank];
    MPI_Aint bytes = (MPI_Aint)((NGLOBAL + mine * NFIELD) * sizeof(int64_t));
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "accumulate_ops", "same_op_no_op");
    int mrc = MPI_Win_allocate(bytes, sizeof(int64_t), info, comm, &s->base, &s->win);
    MPI_Info_free(&info);
    if (mrc != MPI_SUCCESS) {
        mrf__free(s->first);
        mrf__free(s->drained);
        mrf__free(s);
        return mrf__fail(MRF_EMPI, "MPI_Win_allocate for the task scheduler failed");
    }
    s->suspect = -1;
    s->base[G_COMMITTED] = 0;
    s->base[G_BACKUPS] = 0;
    s->base[G_FAILED] = 0;
    s->base[G_BYTES] = 0;
    s->base[G_STOP] = 0;
    s->base[G_CLAIM] = (int64_t)((uint64_t)mine << 32); /* head 0, tail mine */
    memset(s->base + NGLOBAL, 0, mine * NFIELD * sizeof(int64_t));
    MPI_Barrier(comm); /* every window initialised before anyone reads one */
    MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win);
    *out = s;
    return MRF_OK;
}

void mrf__sched_destroy(mrf__sched *s)
{
    if (!s)
        return;
    MPI_Win_unlock_all(s->win);
    MPI_Win_free(&s->win);
    mrf__free(s->first);
    mrf__free(s->drained);
    mrf__free(s);
}

const mrf__sched_stats *mrf__sched_get_stats(const mrf__sched *s)
{
    return &s->st;
}

/* A rank's own share front to back, then the others' tails. */
static long claim_next(mrf__sched *s)
{
    int64_t h, t;
    if (!s->own_empty) {
        claim_word(fetch_add(s, s->rank, G_CLAIM, 1), &h, &t);
        if (h < t)
            return (long)(s->first[s->rank] + (size_t)h);
        s->own_empty = true;
    }
    for (int k = 1; k < s->size; k++) {
        int v = (s->rank + k) % s->size;
        while (!s->drained[v]) {
            claim_word(fetch_op(s, v, G_CLAIM, 0, MPI_NO_OP), &h, &t);
            if (h >= t) {
                s->drained[v] = true;
                break;
            }
            claim_word(fetch_add(s, v, G_CLAIM, -((int64_t)1 << 32)), &h, &t);
            if (t - 1 >= h) {
                s->st.stolen++;
                return (long)(s->first[v] + (size_t)(t - 1));
            }
        }
    }
    return -1;
}

static double my_rate(const mrf__sched *s)
{
    return s->mapped_s > 0 ? (double)s->mapped_bytes / s->mapped_s : 0;
}

/* A runner is a straggler when its rate is below typical / SLOW_RATIO, with
 * enough time left, in SUSPECT_SCANS scans in a row. */
#define SLOW_RATIO 2.0
#define SUSPECT_SCANS 3

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The running task most worth a backup, or -1. */
static long pick_backup(mrf__sched *s)
{
    double mine = my_rate(s);
    if (mine <= 0)
        return -1;
    long best = -1;
    double best_gain = 0;
    int64_t *state = mrf__malloc((s->ntasks ? s->ntasks : 1) * NFIELD * sizeof *state);
    int64_t *claims = mrf__malloc((size_t)s->size * sizeof *claims);
    if (!state || !claims) {
        mrf__free(state);
        mrf__free(claims);
        return -1;
    }
    /* a snapshot for choosing only (the choice is settled by atomics), read
     * with MPI_Get_accumulate(NO_OP): a plain MPI_Get racing the runners'
     * MPI_Fetch_and_op on the same words would be a conflict in MPI terms */
    for (int r = 0; r < s->size; r++) {
        size_t n = s->first[r + 1] - s->first[r];
        MPI_Get_accumulate(NULL, 0, MPI_INT64_T, &claims[r], 1, MPI_INT64_T, r, G_CLAIM, 1,
                           MPI_INT64_T, MPI_NO_OP, s->win);
        if (n)
            MPI_Get_accumulate(NULL, 0, MPI_INT64_T, state + s->first[r] * NFIELD,
                               (int)(n * NFIELD), MPI_INT64_T, r, NGLOBAL, (int)(n * NFIELD),
                               MPI_INT64_T, MPI_NO_OP, s->win);
    }
    MPI_Win_flush_all(s->win);
    /* the typical rate: the median over every task that published one,
     * running or finished, so ranks that finished first do not set it */
    size_t nr = 0;
    double typical = 0;
    int64_t *rates = mrf__malloc((s->ntasks ? s->ntasks : 1) * sizeof *rates);
    for (size_t t = 0; rates && t < s->ntasks; t++)
        if (state[t * NFIELD + F_RATE] > 0)
            rates[nr++] = state[t * NFIELD + F_RATE];
    if (nr >= 2) {
        qsort(rates, nr, sizeof *rates, cmp_i64);
        typical = (double)rates[nr / 2];
    }
    mrf__free(rates);
    for (size_t t = 0; typical > 0 && t < s->ntasks; t++) {
        const int64_t *e = state + t * NFIELD;
        int o = owner_of(s, t);
        int64_t h, tl, i = (int64_t)(t - s->first[o]);
        claim_word(claims[o], &h, &tl);
        bool claimed = i < h || i >= tl;
        if (!claimed || e[F_DONE] > 0 || e[F_BACKUP] > 0 || e[F_RATE] <= 0)
            continue;
        double len = (double)s->plan->tasks[t].len, rate = (double)e[F_RATE];
        double left = (len - (double)e[F_BYTES]) / rate, backup_takes = len / mine;
        mrf__log(MRF_LOG_DEBUG,
                 "task %zu running at %.1f MB/s (typical %.1f, mine %.1f), %.3f s left, a "
                 "backup would take %.3f s",
                 t, rate / 1e6, typical / 1e6, mine / 1e6, left, backup_takes);
        if (rate * SLOW_RATIO < typical && left > 1.5 * backup_takes &&
            left - backup_takes > best_gain) {
            best = (long)t;
            best_gain = left - backup_takes;
        }
    }
    mrf__free(state);
    mrf__free(claims);
    return best;
}

void mrf__sched_stop(mrf__sched *s)
{
    fetch_add(s, 0, G_STOP, 1);
}

bool mrf__sched_stopped(const mrf__sched *s)
{
    return s->stopped;
}

int mrf__sched_next(mrf__sched *s, long *task, bool *backup)
{
    *task = -1;
    *backup = false;
    if (fetch_op(s, 0, G_STOP, 0, MPI_NO_OP) > 0) {
        s->stopped = true;
        return MRF_OK;
    }
    long t = claim_next(s);
    if (t >= 0) {
        *task = t;
        *backup = false;
        return MRF_OK;
    }
    for (;;) {
        int64_t committed, failed, stop, zero = 0;
        MPI_Fetch_and_op(&zero, &committed, MPI_INT64_T, 0, G_COMMITTED, MPI_NO_OP, s->win);
        MPI_Fetch_and_op(&zero, &failed, MPI_INT64_T, 0, G_FAILED, MPI_NO_OP, s->win);
        MPI_Fetch_and_op(&zero, &stop, MPI_INT64_T, 0, G_STOP, MPI_NO_OP, s->win);
        MPI_Win_flush(0, s->win);
        if (failed)
            return MRF__PEER_FAILED;
        if (stop) {
            s->stopped = true;
            return MRF_OK;
        }
        if ((size_t)committed >= s->ntasks) {
            *task = -1;
            *backup = false;
            return MRF_OK;
        }
        double now = MPI_Wtime();
        /* a scan reads every rank's entries: every 5 ms, less often past
         * 16 ranks so idle ranks' traffic stays bounded */
        if (s->speculate && now - s->last_scan > 0.005 * (1 + s->size / 16)) {
            s->last_scan = now;
            t = pick_backup(s);
            /* a dip of a scan or two (a stall in a big task) is no straggler */
            s->suspect_seen = t >= 0 && t == s->suspect ? s->suspect_seen + 1 : 1;
            s->suspect = t;
            if (s->suspect_seen < SUSPECT_SCANS)
                t = -1;
            if (t >= 0 && fetch_add(s, 0, G_BACKUPS, 1) < s->max_backups) {
                if (first_to(s, (size_t)t, F_BACKUP)) {
                    s->st.backups_launched++;
                    *task = t;
                    *backup = true;
                    return MRF_OK;
                }
            }
            if (t >= 0)
                fetch_add(s, 0, G_BACKUPS, -1);
        }
        struct timespec ts = {0, 2 * 1000 * 1000}; /* idle: poll every 2 ms */
        nanosleep(&ts, NULL);
    }
}

void mrf__sched_poke(mrf__sched *s)
{
    /* any MPI call runs Open MPI's progress engine; over transports without
     * RDMA atomics (TCP: osc pt2pt) that is when this rank serves the others'
     * claims and reads of its window */
    int flag;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, s->comm, &flag, MPI_STATUS_IGNORE);
}

bool mrf__sched_progress(mrf__sched *s, long task, bool backup, uint64_t bytes_done,
                         double rate_bps)
{
    size_t t = (size_t)task;
    int h = owner_of(s, t);
    int64_t done;
    if (!s->speculate) {
        mrf__sched_poke(s);
        return false;
    }
    /* only the task's first runner publishes: a backup's rate says nothing
     * about whether the task itself is late */
    if (!backup && rate_bps > 0) {
        int64_t bd = (int64_t)bytes_done, rate = (int64_t)rate_bps + 1, old;
        MPI_Fetch_and_op(&bd, &old, MPI_INT64_T, h, disp(s, t, F_BYTES), MPI_REPLACE, s->win);
        MPI_Fetch_and_op(&rate, &old, MPI_INT64_T, h, disp(s, t, F_RATE), MPI_REPLACE, s->win);
    }
    done = read_field(s, t, F_DONE);
    return done > 0; /* only ever set by a commit, and I have not committed */
}

bool mrf__sched_commit(mrf__sched *s, long task, bool backup, uint64_t bytes, double seconds)
{
    size_t t = (size_t)task;
    s->mapped_bytes += bytes;
    s->mapped_s += seconds;
    bool won = first_to(s, t, F_DONE);
    if (won) {
        fetch_add(s, 0, G_COMMITTED, 1);
        fetch_add(s, 0, G_BYTES, (int64_t)bytes);
        s->st.tasks_run++;
        if (backup)
            s->st.backups_won++;
        int b = 0;
        double ms = seconds * 1000;
        while (b < MRF_SCHED_HIST - 1 && ms >= (double)(1u << b))
            b++;
        s->st.hist[b]++;
    } else {
        s->st.discarded++;
    }
    if (backup)
        fetch_add(s, 0, G_BACKUPS, -1);
    return won;
}

void mrf__sched_global(mrf__sched *s, uint64_t *tasks, uint64_t *bytes)
{
    *tasks = (uint64_t)fetch_op(s, 0, G_COMMITTED, 0, MPI_NO_OP);
    *bytes = (uint64_t)fetch_op(s, 0, G_BYTES, 0, MPI_NO_OP);
}

void mrf__sched_fail(mrf__sched *s)
{
    fetch_add(s, 0, G_FAILED, 1);
}

void mrf__sched_abandon(mrf__sched *s, long task, bool backup, uint64_t bytes, double seconds)
{
    (void)task;
    s->mapped_bytes += bytes;
    s->mapped_s += seconds;
    s->st.discarded++;
    if (backup)
        fetch_add(s, 0, G_BACKUPS, -1);
}
