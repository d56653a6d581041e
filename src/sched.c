/*
 * sched.c -- map tasks claimed dynamically, and speculative backups of
 * stragglers, with exactly one commit per task.
 *
 * Two-sided messages only.  One-sided windows are not used: between nodes
 * over TCP a stock Open MPI 4.1 selects no one-sided component that can
 * create one (MPI_ERR_WIN at start, docs/operations.md "Running on a
 * cluster"), and where RMA works over TCP (osc pt2pt, MPICH's ch4) its
 * atomics are active messages served when the target calls into MPI anyway.
 * Here every rank serves requests itself whenever it enters the scheduler:
 * before each claim, at each progress check of a running task (every
 * 64 KiB - 1 MiB of input), every millisecond while idle, and while it waits
 * for a reply of its own.  No progress thread, MPI_THREAD_SINGLE suffices.
 *
 * State lives with its owner, and nothing is ever decided twice:
 * - home tasks: rank r owns the contiguous share of tasks the static dealing
 *   would give it, and their entries [done bytes rate backup].  Its unclaimed
 *   home tasks are [head, tail): r claims from the head locally, with no
 *   message; an idle rank steals from the tail with a STEAL request that r
 *   answers.  Both run in r's only thread, so no task is handed out twice.
 * - progress: a task's runner publishes bytes done and its rate (measured by
 *   itself, so clocks need not agree) in the owner's entry -- a local store
 *   for a home task, a PROGRESS request whose reply comes back later (the
 *   runner never waits for it) for a stolen one -- and learns from the entry
 *   whether another copy committed first.
 * - commit: the owner adds 1 to the task's `done`; the copy that saw 0 won
 *   (COMMIT, the one request a runner waits for, once per stolen or backup
 *   task).  The caller merges the winner's output and discards the others'.
 * - speculation: a rank with nothing to claim gathers every rank's entries
 *   (SNAPSHOT) every 5 ms x (1 + ranks/16) and backs up the running task that
 *   would gain most, but only if the runner's rate is below half the typical
 *   rate (the median of every published rate, running tasks' and finished
 *   ones') AND its estimated time left exceeds 1.5x what the backup would
 *   take at the idle rank's own rate, in three scans in a row (a short dip,
 *   such as a big task's table growing, is not a straggler).  A task slow
 *   only because it is larger has a normal rate and is never picked.  Backups
 *   running at once are capped by slots rank 0 hands out (SLOT, SLOT_FREE);
 *   each task gets at most one backup (the first BACKUP its owner grants).
 * - the phase's end: rank 0 counts commits (COMMITTED) and holds the stop
 *   and failure flags (STOP, FAIL).  When every task is committed, a stop
 *   was asked (a checkpoint is due, or a preemption signal came) or a rank
 *   failed, it sends END once to every rank.  A rank that gets END claims
 *   nothing more; after "stop" it finishes its running task, after "done" or
 *   "failed" it abandons it at its next progress check.
 * - quiescence (mrf__sched_destroy, collective): a rank that has END, runs
 *   nothing and has every reply it waits for enters MPI_Ibarrier and serves
 *   until it completes.  Every request is answered before its sender enters,
 *   so when the barrier completes no message of the phase is left in flight.
 *
 * Messages live on a duplicate of the stage's communicator (its tags are
 * ours).  A request is four int64 words [type task a b]; a reply is one word
 * ([head tail entries...] for SNAPSHOT), sent in the order the requests
 * came, so a sender's replies from one owner match its receives in the
 * order it posted them.
 *
 * Per-rank state: its home tasks' entries, its cursor, and per-rank claim
 * bounds (size + 1 words).  Messages per phase: one STEAL per stolen task
 * (plus one per victim found empty), COMMIT and PROGRESS only for stolen and
 * backup tasks, one COMMITTED per task to rank 0, one END per rank from rank
 * 0, and SNAPSHOT scans of ranks-1 requests per idle rank per scan period.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#include "internal.h"

enum { F_DONE, F_BYTES, F_RATE, F_BACKUP, NFIELD };
enum {
    R_STEAL = 1, /* -> the tail task's index, or -1 */
    R_PROGRESS,  /* [t bytes rate]: publish (rate > 0); -> done */
    R_COMMIT,    /* [t]: -> 1 if this copy won */
    R_SNAPSHOT,  /* -> [head tail entries...] */
    R_BACKUP,    /* [t]: -> 1 if this is the task's first backup */
    R_SLOT,      /* rank 0: -> 1 if a backup slot was free */
    R_SLOT_FREE, /* rank 0 */
    R_COMMITTED, /* rank 0: [bytes] one more task committed */
    R_STOP,      /* rank 0 */
    R_FAIL       /* rank 0 */
};
enum { END_NONE, END_DONE, END_STOP, END_FAIL };
enum { TAG_REQ = 1, TAG_REP, TAG_END };
#define REQ_WORDS 4

/* A message of mine in flight: a request whose reply I wait for (rreq
 * active), or a reply / END notice being sent (buf owned here). */
typedef struct sched_msg {
    struct sched_msg *next;
    MPI_Request sreq, rreq;
    int type;
    long task;
    uint64_t run; /* the run (mrf__sched_next) a PROGRESS reply belongs to */
    int64_t msg[REQ_WORDS];
    int64_t rep;
    int64_t *buf; /* a SNAPSHOT reply's words */
    bool held;    /* a caller waits on it: retired, but not freed, by serve() */
} sched_msg;

struct mrf__sched {
    MPI_Comm comm; /* ours: a duplicate */
    int rank, size;
    const mrf__plan *plan;
    size_t ntasks;
    size_t *first; /* size + 1: home tasks of rank r are [first[r], first[r+1]) */
    size_t mine;   /* first[rank + 1] - first[rank] */
    int64_t head;  /* my unclaimed home tasks: [head, tail) */
    int64_t tail;
    int64_t *ent;   /* mine x NFIELD */
    bool own_empty; /* my home tasks are all claimed */
    bool *drained;  /* per victim: nothing left to steal there */
    bool speculate;
    bool stopped;   /* left because a stop was requested */
    bool want_stop; /* I asked for the stop */
    int end;        /* END_*: what ended the phase, as far as I know */
    int64_t end_word;
    MPI_Request end_req;
    sched_msg *out;    /* my messages in flight */
    int64_t n_waiting; /* of which requests awaiting replies */
    /* the task I run */
    long run_task;
    uint64_t run_seq;
    bool run_lost;   /* its owner said another copy committed */
    bool run_asking; /* a PROGRESS for it is in flight */
    /* rank 0 only: the phase's counters */
    int64_t committed, bytes, backups;
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

static void nap(long usec)
{
    struct timespec ts = {0, usec * 1000};
    nanosleep(&ts, NULL);
}

/* Waiting on another rank: spin a little (an answer often comes within
 * microseconds), then sleep longer and longer, up to 0.5 ms, so that the
 * rank that must answer gets the core when ranks outnumber cores (32 ranks
 * on 2 cores: sleeping 50 us each time made the closing barrier take up to
 * 2.3 s instead of 0.4). */
static void backoff(int spin)
{
    if (spin < 64)
        return;
    nap(spin < 256 ? 50 : 500);
}

/* ------------------------------------------------------- messages in flight */

static sched_msg *msg_new(mrf__sched *s, int type, long task)
{
    sched_msg *m = mrf__calloc(1, sizeof *m);
    if (!m) { /* a few dozen bytes: without them the phase cannot go on */
        mrf__log(MRF_LOG_ERROR, "out of memory for a scheduler message: aborting");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    m->type = type;
    m->task = task;
    m->sreq = m->rreq = MPI_REQUEST_NULL;
    m->next = s->out;
    s->out = m;
    return m;
}

static void send_words(mrf__sched *s, int to, int tag, const int64_t *w, int n, sched_msg *m)
{
    MPI_Isend(w, n, MPI_INT64_T, to, tag, s->comm, &m->sreq);
}

static void end_phase(mrf__sched *s, int why);

/* The owner's side of every request: updates my state, writes the reply. */
static void handle(mrf__sched *s, const int64_t *q, int64_t *rep)
{
    long t = (long)q[1];
    int64_t *e = NULL;
    if (q[0] == R_PROGRESS || q[0] == R_COMMIT || q[0] == R_BACKUP)
        e = s->ent + ((size_t)t - s->first[s->rank]) * NFIELD;
    *rep = 0;
    switch (q[0]) {
    case R_STEAL:
        *rep = -1;
        if (s->head < s->tail)
            *rep = (int64_t)s->first[s->rank] + --s->tail;
        break;
    case R_PROGRESS:
        if (q[3] > 0) {
            e[F_BYTES] = q[2];
            e[F_RATE] = q[3];
        }
        *rep = e[F_DONE] > 0;
        break;
    case R_COMMIT:
        *rep = e[F_DONE]++ == 0;
        break;
    case R_BACKUP:
        *rep = e[F_DONE] == 0 && e[F_BACKUP]++ == 0;
        break;
    case R_SLOT:
        *rep = s->backups < s->max_backups;
        s->backups += *rep;
        break;
    case R_SLOT_FREE:
        s->backups--;
        break;
    case R_COMMITTED:
        s->committed++;
        s->bytes += q[2];
        if ((size_t)s->committed >= s->ntasks)
            end_phase(s, END_DONE);
        break;
    case R_STOP:
        end_phase(s, END_STOP);
        break;
    case R_FAIL:
        end_phase(s, END_FAIL);
        break;
    }
}

/* Rank 0: the phase is over (every task committed, a stop, a failure);
 * every rank learns it once. */
static void end_phase(mrf__sched *s, int why)
{
    if (s->end != END_NONE)
        return;
    s->end = why;
    for (int r = 1; r < s->size; r++) {
        sched_msg *m = msg_new(s, 0, -1);
        m->msg[0] = why;
        send_words(s, r, TAG_END, m->msg, 1, m);
    }
}

/* The reply to a request of mine came: act on what it says. */
static void replied(mrf__sched *s, sched_msg *m)
{
    s->n_waiting--;
    if (m->type == R_PROGRESS && m->run == s->run_seq) {
        s->run_asking = false;
        if (m->rep)
            s->run_lost = true;
    }
}

/* Serves every request waiting for me, and retires my messages that are
 * through.  Not collective; cheap when there is nothing to do. */
static void serve(mrf__sched *s)
{
    for (;;) {
        int flag;
        MPI_Status st;
        MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQ, s->comm, &flag, &st);
        if (!flag)
            break;
        int64_t q[REQ_WORDS];
        MPI_Recv(q, REQ_WORDS, MPI_INT64_T, st.MPI_SOURCE, TAG_REQ, s->comm, MPI_STATUS_IGNORE);
        s->st.served++;
        sched_msg *m = msg_new(s, 0, -1);
        if (q[0] == R_SNAPSHOT) {
            size_t n = 2 + s->mine * NFIELD;
            m->buf = mrf__malloc(n * sizeof *m->buf);
            if (!m->buf) {
                mrf__log(MRF_LOG_ERROR, "out of memory for a scheduler reply: aborting");
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            m->buf[0] = s->head;
            m->buf[1] = s->tail;
            memcpy(m->buf + 2, s->ent, s->mine * NFIELD * sizeof *s->ent);
            send_words(s, st.MPI_SOURCE, TAG_REP, m->buf, (int)n, m);
        } else {
            handle(s, q, &m->rep);
            send_words(s, st.MPI_SOURCE, TAG_REP, &m->rep, 1, m);
        }
    }
    if (s->end == END_NONE && s->end_req != MPI_REQUEST_NULL) {
        int flag;
        MPI_Test(&s->end_req, &flag, MPI_STATUS_IGNORE);
        if (flag)
            s->end = (int)s->end_word;
    }
    for (sched_msg **p = &s->out; *p;) {
        sched_msg *m = *p;
        int sent = 1, got = 1;
        if (m->sreq != MPI_REQUEST_NULL)
            MPI_Test(&m->sreq, &sent, MPI_STATUS_IGNORE);
        if (m->rreq != MPI_REQUEST_NULL) {
            MPI_Test(&m->rreq, &got, MPI_STATUS_IGNORE);
            if (got)
                replied(s, m);
        }
        if (sent && got && !m->held) {
            *p = m->next;
            mrf__free(m->buf);
            mrf__free(m);
        } else {
            p = &m->next;
        }
    }
}

/* Sends request [type task a b] to `to`; its reply, one word or
 * `replywords` into `replybuf`, is taken by serve().  Returns the message,
 * NULL when `to` is me (then handled here, the reply in *local). */
static sched_msg *post(mrf__sched *s, int to, int type, long task, int64_t a, int64_t b,
                       int64_t *replybuf, int replywords, int64_t *local)
{
    int64_t q[REQ_WORDS] = {type, task, a, b};
    if (to == s->rank) {
        int64_t rep;
        handle(s, q, &rep);
        if (local)
            *local = rep;
        return NULL;
    }
    sched_msg *m = msg_new(s, type, task);
    memcpy(m->msg, q, sizeof q);
    m->run = s->run_seq;
    MPI_Irecv(replybuf ? replybuf : &m->rep, replybuf ? replywords : 1, MPI_INT64_T, to, TAG_REP,
              s->comm, &m->rreq);
    send_words(s, to, TAG_REQ, m->msg, REQ_WORDS, m);
    s->n_waiting++;
    s->st.requests++;
    return m;
}

/* Serves the others until nothing of mine waits for a reply. */
static void wait_replies(mrf__sched *s)
{
    for (int spin = 0; s->n_waiting > 0; spin++) {
        serve(s);
        if (s->n_waiting > 0)
            backoff(spin);
    }
}

/* A request answered before this returns (serving the others meanwhile):
 * its one-word reply. */
static int64_t call(mrf__sched *s, int to, int type, long task, int64_t a)
{
    int64_t rep = 0;
    sched_msg *m = post(s, to, type, task, a, 0, NULL, 0, &rep);
    if (!m)
        return rep;
    m->held = true;
    for (int spin = 0; m->rreq != MPI_REQUEST_NULL; spin++) {
        serve(s);
        if (m->rreq != MPI_REQUEST_NULL)
            backoff(spin);
    }
    rep = m->rep;
    m->held = false; /* serve() frees it once its send is through */
    return rep;
}

/* ------------------------------------------------------------------ the API */

int mrf__sched_create(MPI_Comm comm, const mrf__plan *plan, bool speculate, int max_backups,
                      mrf__sched **out)
{
    mrf__sched *s = mrf__calloc(1, sizeof *s);
    int rc = MRF_OK, size;
    MPI_Comm_size(comm, &size);
    if (!s)
        rc = MRF_ENOMEM;
    if (s) {
        MPI_Comm_rank(comm, &s->rank);
        s->size = size;
        s->plan = plan;
        s->ntasks = plan->n_tasks;
        s->speculate = speculate;
        s->max_backups = max_backups;
        s->first = mrf__calloc((size_t)size + 1, sizeof *s->first);
        s->drained = mrf__calloc((size_t)size, sizeof *s->drained);
        if (!s->first || !s->drained)
            rc = MRF_ENOMEM;
    }
    if (rc == MRF_OK) {
        /* home shares: the static dealing, monotone in t */
        uint64_t before = 0;
        size_t t = 0;
        for (int r = 0; r < size; r++) {
            s->first[r] = t;
            while (t < s->ntasks &&
                   mrf__home_rank(plan->total_bytes, before, plan->tasks[t].len, size) == r) {
                before += plan->tasks[t].len;
                t++;
            }
        }
        s->first[size] = s->ntasks;
        s->mine = s->first[s->rank + 1] - s->first[s->rank];
        s->ent = mrf__calloc(s->mine ? s->mine * NFIELD : 1, sizeof *s->ent);
        if (!s->ent)
            rc = MRF_ENOMEM;
    }
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, comm);
    if (all) {
        if (s) {
            mrf__free(s->ent);
            mrf__free(s->first);
            mrf__free(s->drained);
            mrf__free(s);
        }
        return rc ? mrf__fail(rc, "out of memory for the task scheduler") : all;
    }
    MPI_Comm_dup(comm, &s->comm);
    s->tail = (int64_t)s->mine;
    s->suspect = -1;
    s->run_task = -1;
    s->end_req = MPI_REQUEST_NULL;
    if (s->rank != 0)
        MPI_Irecv(&s->end_word, 1, MPI_INT64_T, 0, TAG_END, s->comm, &s->end_req);
    else if (s->ntasks == 0)
        end_phase(s, END_DONE);
    *out = s;
    return MRF_OK;
}

void mrf__sched_destroy(mrf__sched *s)
{
    if (!s)
        return;
    /* END, then every reply of mine, then the barrier that says nobody
     * will ask anything more; serving all along */
    double t0 = MPI_Wtime();
    while (s->end == END_NONE) {
        serve(s);
        if (s->end == END_NONE)
            nap(200);
    }
    wait_replies(s);
    double t1 = MPI_Wtime();
    MPI_Request bar;
    MPI_Ibarrier(s->comm, &bar);
    for (int done = 0, spin = 0;; spin++) {
        MPI_Test(&bar, &done, MPI_STATUS_IGNORE);
        if (done)
            break;
        serve(s);
        backoff(spin);
    }
    /* what is left are my replies and END notices: every one was received */
    while (s->out) {
        sched_msg *m = s->out;
        MPI_Wait(&m->sreq, MPI_STATUS_IGNORE);
        s->out = m->next;
        mrf__free(m->buf);
        mrf__free(m);
    }
    mrf__log(MRF_LOG_DEBUG,
             "scheduler: %llu requests sent, %llu served; waited %.3f s for the end, %.3f s "
             "for the others to close",
             (unsigned long long)s->st.requests, (unsigned long long)s->st.served, t1 - t0,
             MPI_Wtime() - t1);
    MPI_Comm_free(&s->comm);
    mrf__free(s->ent);
    mrf__free(s->first);
    mrf__free(s->drained);
    mrf__free(s);
}

const mrf__sched_stats *mrf__sched_get_stats(const mrf__sched *s)
{
    return &s->st;
}

/* A rank's own share front to back (no message), then the others' tails. */
static long claim_next(mrf__sched *s)
{
    if (!s->own_empty) {
        if (s->head < s->tail)
            return (long)(s->first[s->rank] + (size_t)s->head++);
        s->own_empty = true;
    }
    for (int k = 1; k < s->size && s->end == END_NONE; k++) {
        int v = (s->rank + k) % s->size;
        if (s->drained[v] || s->first[v + 1] == s->first[v])
            continue;
        int64_t t = call(s, v, R_STEAL, -1, 0);
        if (t >= 0) {
            s->st.stolen++;
            return (long)t;
        }
        s->drained[v] = true;
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
    /* every rank's [head tail entries...], rank r's at 2r + first[r] x NFIELD:
     * a snapshot for choosing only (the owners settle the choice) */
    size_t words = 2 * (size_t)s->size + s->ntasks * NFIELD;
    int64_t *snap = mrf__malloc(words * sizeof *snap);
    int64_t *rates = mrf__malloc((s->ntasks ? s->ntasks : 1) * sizeof *rates);
    if (!snap || !rates) {
        mrf__free(snap);
        mrf__free(rates);
        return -1;
    }
    for (int r = 0; r < s->size; r++) {
        int64_t *at = snap + 2 * (size_t)r + s->first[r] * NFIELD;
        size_t n = s->first[r + 1] - s->first[r];
        if (r == s->rank) {
            at[0] = s->head;
            at[1] = s->tail;
            memcpy(at + 2, s->ent, n * NFIELD * sizeof *at);
        } else if (n) {
            post(s, r, R_SNAPSHOT, -1, 0, 0, at, (int)(2 + n * NFIELD), NULL);
        } else {
            at[0] = at[1] = 0;
        }
    }
    wait_replies(s);
    long best = -1;
    double best_gain = 0, typical = 0;
    /* the typical rate: the median over every task that published one,
     * running or finished, so ranks that finished first do not set it */
    size_t nr = 0;
    for (int r = 0; r < s->size; r++)
        for (size_t t = s->first[r]; t < s->first[r + 1]; t++) {
            const int64_t *e = snap + 2 * (size_t)r + 2 + t * NFIELD;
            if (e[F_RATE] > 0)
                rates[nr++] = e[F_RATE];
        }
    if (nr >= 2) {
        qsort(rates, nr, sizeof *rates, cmp_i64);
        typical = (double)rates[nr / 2];
    }
    for (int r = 0; typical > 0 && r < s->size; r++) {
        const int64_t *at = snap + 2 * (size_t)r + s->first[r] * NFIELD;
        for (size_t t = s->first[r]; t < s->first[r + 1]; t++) {
            const int64_t *e = at + 2 + (t - s->first[r]) * NFIELD;
            int64_t i = (int64_t)(t - s->first[r]);
            bool claimed = i < at[0] || i >= at[1];
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
    }
    mrf__free(snap);
    mrf__free(rates);
    return best;
}

void mrf__sched_stop(mrf__sched *s)
{
    if (s->want_stop)
        return;
    s->want_stop = true;
    post(s, 0, R_STOP, -1, 0, 0, NULL, 0, NULL);
}

bool mrf__sched_stopped(const mrf__sched *s)
{
    return s->stopped;
}

/* The phase is over for me: what mrf__sched_next says. */
static int leave(mrf__sched *s)
{
    if (s->end == END_FAIL)
        return MRF__PEER_FAILED;
    if (s->end == END_STOP || s->want_stop)
        s->stopped = true;
    return MRF_OK;
}

static void start_run(mrf__sched *s, long t)
{
    s->run_task = t;
    s->run_seq++;
    s->run_lost = false;
    s->run_asking = false;
}

int mrf__sched_next(mrf__sched *s, long *task, bool *backup)
{
    *task = -1;
    *backup = false;
    s->run_task = -1;
    serve(s);
    if (s->end != END_NONE || s->want_stop)
        return leave(s);
    long t = claim_next(s);
    if (s->end != END_NONE) /* a stolen task stays unrun: stop and failure redo it */
        return leave(s);
    if (t >= 0) {
        start_run(s, t);
        *task = t;
        return MRF_OK;
    }
    for (;;) {
        serve(s);
        if (s->end != END_NONE || s->want_stop)
            return leave(s);
        double now = MPI_Wtime();
        /* a scan asks every rank for its entries: every 5 ms, less often
         * past 16 ranks so idle ranks' traffic stays bounded */
        if (s->speculate && now - s->last_scan > 0.005 * (1 + s->size / 16)) {
            s->last_scan = now;
            t = pick_backup(s);
            /* a dip of a scan or two (a stall in a big task) is no straggler */
            s->suspect_seen = t >= 0 && t == s->suspect ? s->suspect_seen + 1 : 1;
            s->suspect = t;
            if (s->suspect_seen < SUSPECT_SCANS || s->end != END_NONE)
                t = -1;
            if (t >= 0 && call(s, 0, R_SLOT, -1, 0)) {
                if (call(s, owner_of(s, (size_t)t), R_BACKUP, t, 0)) {
                    s->st.backups_launched++;
                    start_run(s, t);
                    *task = t;
                    *backup = true;
                    return MRF_OK;
                }
                post(s, 0, R_SLOT_FREE, -1, 0, 0, NULL, 0, NULL);
            }
        }
        nap(1000); /* idle: serve and look around every millisecond */
    }
}

void mrf__sched_poke(mrf__sched *s)
{
    serve(s);
}

bool mrf__sched_progress(mrf__sched *s, long task, bool backup, uint64_t bytes_done,
                         double rate_bps)
{
    size_t t = (size_t)task;
    serve(s);
    /* every task is committed (so this copy lost), or a rank failed */
    if (s->end == END_DONE || s->end == END_FAIL)
        return true;
    if (!s->speculate) /* no other copy can exist */
        return false;
    /* only the task's first runner publishes: a backup's rate says nothing
     * about whether the task itself is late */
    int64_t bd = 0, rate = 0;
    if (!backup && rate_bps > 0) {
        bd = (int64_t)bytes_done;
        rate = (int64_t)rate_bps + 1;
    }
    int h = owner_of(s, t);
    if (h == s->rank) {
        int64_t *e = s->ent + (t - s->first[s->rank]) * NFIELD;
        if (rate > 0) {
            e[F_BYTES] = bd;
            e[F_RATE] = rate;
        }
        return e[F_DONE] > 0; /* only ever set by a commit, and I have not committed */
    }
    if (!s->run_asking && !s->run_lost) { /* one PROGRESS in flight at a time */
        s->run_asking = true;
        post(s, h, R_PROGRESS, task, bd, rate, NULL, 0, NULL);
    }
    return s->run_lost;
}

bool mrf__sched_commit(mrf__sched *s, long task, bool backup, uint64_t bytes, double seconds)
{
    size_t t = (size_t)task;
    s->mapped_bytes += bytes;
    s->mapped_s += seconds;
    bool won = call(s, owner_of(s, t), R_COMMIT, task, 0) != 0;
    if (won) {
        post(s, 0, R_COMMITTED, task, (int64_t)bytes, 0, NULL, 0, NULL);
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
        post(s, 0, R_SLOT_FREE, -1, 0, 0, NULL, 0, NULL);
    s->run_task = -1;
    return won;
}

void mrf__sched_global(mrf__sched *s, uint64_t *tasks, uint64_t *bytes)
{
    *tasks = (uint64_t)s->committed;
    *bytes = (uint64_t)s->bytes;
}

void mrf__sched_fail(mrf__sched *s)
{
    post(s, 0, R_FAIL, -1, 0, 0, NULL, 0, NULL);
}

void mrf__sched_abandon(mrf__sched *s, long task, bool backup, uint64_t bytes, double seconds)
{
    (void)task;
    s->mapped_bytes += bytes;
    s->mapped_s += seconds;
    s->st.discarded++;
    if (backup)
        post(s, 0, R_SLOT_FREE, -1, 0, 0, NULL, 0, NULL);
    s->run_task = -1;
}
