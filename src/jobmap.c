/*
 * jobmap.c -- a stage's map phase: the emit path (records framed into the
 * arena, or combined in the table), tasks run and committed exactly once
 * (each task's output kept apart until it commits), spill of the arena and
 * the table past the budget.  The stage driver (job.c) runs it round by
 * round and takes the checkpoints between rounds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "keyhash.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include "stage.h"

/* ------------------------------------------------------------------ map -- */

static uint32_t drain_bucket(void *ctx, const void *key, size_t klen, uint64_t h)
{
    return mrf__st_key_bucket(ctx, key, klen, h);
}

/* Writes the records [from, to) of kv (the map arena or a task's) to disk as a bucket run that
 * belongs to task (-1: committed output), and closes the gap in the arena.  saved: the
 * records are in the checkpoint chain already. */
static int spill_range(stage *s, mrf__kvbuf *kv, size_t from, size_t to, long task, bool saved)
{
    if (from == to)
        return MRF_OK;
    double t0 = MPI_Wtime();
    int rc = MRF_OK;
    size_t n = 0;
    for (size_t at = from; at < to; at += mrf__rec_size(kv->base + at))
        n++;
    uint64_t *cnt = mrf__calloc((size_t)s->nb + 1, sizeof *cnt);
    uint64_t *offs = mrf__big_alloc(n * sizeof *offs);
    mrf__brun *nr = mrf__grow_for(s->bruns, &s->bruns_cap, s->n_bruns, sizeof *nr);
    if (nr)
        s->bruns = nr;
    if (!cnt || !offs || !nr) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory spilling map output");
        goto out;
    }
    /* counting sort by bucket; records keep their order within a bucket */
    for (size_t at = from; at < to; at += mrf__rec_size(kv->base + at))
        cnt[mrf__rec_bucket(kv->base + at) + 1]++;
    for (uint32_t b = 0; b < s->nb; b++)
        cnt[b + 1] += cnt[b];
    for (size_t at = from; at < to; at += mrf__rec_size(kv->base + at))
        offs[cnt[mrf__rec_bucket(kv->base + at)]++] = at;
    mrf__brun *r = &s->bruns[s->n_bruns];
    if ((rc = mrf__spill_bucket_run(&s->spill, kv->base, offs, n, r)))
        goto out;
    r->task = task;
    r->level = 0;
    r->saved = saved;
    s->n_bruns++;
    s->map_spilled += to - from;
    if (!saved)
        s->unsaved_spilled += to - from;
    mrf__log(MRF_LOG_DEBUG,
             "spilled %zu bytes of map output (%zu records) as run %zu; %zu bytes in use "
             "(arena %zu, table %zu+%zu, task table %zu+%zu)",
             to - from, n, s->n_bruns - 1, mrf__mem_in_use(), kv->cap,
             (s->ct.mask + 1) * sizeof(mrf__cslot), s->ct.big.cap,
             s->tt.slots ? (s->tt.mask + 1) * sizeof(mrf__cslot) : 0, s->tkv.cap);
    memmove(kv->base + from, kv->base + to, kv->len - to);
    kv->len -= to - from;
    if (kv == &s->kv)
        s->map_recs = s->map_recs > n ? s->map_recs - n : 0;
out:
    mrf__free(cnt);
    mrf__big_free(offs, n * sizeof *offs);
    s->prof.map_spill += MPI_Wtime() - t0;
    return rc;
}

/* Bounds the bucket runs' directories (up to B entries of 32 bytes each) to
 * a sixteenth of the budget: when `fan` committed runs of one level exist,
 * they are merged into one run of the next level (their blocks copied, not
 * decoded), so a rank holds at most fan - 1 runs per level and every
 * spilled byte is copied about log_fan(runs) times.  Runs already in a
 * checkpoint are merged only with each other (saved), so a checkpoint
 * still writes only what is new. */
static int compact_bruns_of(stage *s, bool saved)
{
    size_t dir = (size_t)s->nb * sizeof(mrf__bdir_ent);
    size_t fan = (size_t)(s->budget / 16 / dir / 4);
    if (fan < 4)
        fan = 4;
    for (unsigned level = 0;; level++) {
        size_t n = 0, first = SIZE_MAX;
        for (size_t i = 0; i < s->n_bruns; i++)
            if (s->bruns[i].task == -1 && s->bruns[i].level == level &&
                s->bruns[i].saved == saved) {
                n++;
                if (first == SIZE_MAX)
                    first = i;
            }
        if (n == 0 && level > 8)
            return MRF_OK;
        if (n < fan)
            continue;
        /* gather that level's runs at the end of the list, merge them */
        mrf__brun *tmp = mrf__malloc(n * sizeof *tmp);
        if (!tmp)
            return mrf__fail(MRF_ENOMEM, "out of memory merging spilled runs");
        size_t k = 0, keep = 0;
        for (size_t i = 0; i < s->n_bruns; i++) {
            if (s->bruns[i].task == -1 && s->bruns[i].level == level && s->bruns[i].saved == saved)
                tmp[k++] = s->bruns[i];
            else
                s->bruns[keep++] = s->bruns[i];
        }
        mrf__brun merged;
        int rc = mrf__spill_merge_bruns(&s->spill, tmp, k, &merged);
        if (rc) {
            for (size_t i = 0; i < k; i++) /* put them back */
                s->bruns[keep++] = tmp[i];
            mrf__free(tmp);
            return rc;
        }
        for (size_t i = 0; i < k; i++)
            mrf__free(tmp[i].ents);
        mrf__free(tmp);
        merged.level = level + 1;
        merged.saved = saved;
        s->bruns[keep++] = merged;
        s->n_bruns = keep;
        mrf__log(MRF_LOG_DEBUG, "merged %zu spilled runs of level %u; %zu runs", k, level,
                 s->n_bruns);
    }
}

static int compact_bruns(stage *s)
{
    int rc = compact_bruns_of(s, false);
    return rc ? rc : compact_bruns_of(s, true);
}

/* The map arena is full: spill it (the running task's records, when its copy
 * may yet lose, as a run of their own that is dropped with the task). */
int mrf__st_spill_map(stage *s)
{
    int rc;
    bool uncommitted = !s->mapc && s->cur_task >= 0;
    size_t split = uncommitted ? s->task_kv_start : s->kv.len;
    size_t mark = s->ck_mark < split ? s->ck_mark : split;
    if ((rc = spill_range(s, &s->kv, split, s->kv.len, uncommitted ? s->cur_task : -1, false)))
        return rc;
    if ((rc = spill_range(s, &s->kv, mark, split, -1, false)))
        return rc;
    if ((rc = spill_range(s, &s->kv, 0, mark, -1, true)))
        return rc;
    s->ck_mark = 0;
    s->task_kv_start = 0;
    s->map_recs = 0;
    return compact_bruns(s);
}

/* Moves the combining table's entries into the map arena (spilling the arena
 * first when they would not fit in its share of the budget): all of them, or
 * (when the table is full mid-map) those not hit since the last time, so hot
 * keys keep combining in place. */
int mrf__st_drain_table_how(stage *s, bool all)
{
    int rc;
    size_t est = s->ct.used * (MRF_KV_HDR + MRF_CS_INLINE) + s->ct.big.len;
    if (s->kv.len && s->kv.len + est > s->map_cap && (rc = mrf__st_spill_map(s)))
        return rc;
    if (all ? mrf__ctable_drain(&s->ct, &s->kv, drain_bucket, s, s->bucket_bytes)
            : mrf__ctable_evict(&s->ct, &s->kv, drain_bucket, s, s->bucket_bytes))
        return mrf__fail(MRF_ENOMEM, "out of memory for map output");
    if (s->kv.len > s->map_cap && (rc = mrf__st_spill_map(s)))
        return rc;
    return MRF_OK;
}

static int drain_table(stage *s)
{
    return mrf__st_drain_table_how(s, false);
}

/* A preemption signal came and the running task would now spill: it is
 * abandoned instead (it is redone on resume), so the stop does not wait for
 * a spill of up to the arena's size (1-2 s of sorting and writing per
 * 600 MB on the 2-vCPU VM).  Its records so far are dropped with it. */
static bool stop_instead_of_spill(stage *s)
{
    if (s->cur_task >= 0 && !s->spill_paused) { /* testing: before a task's first spill */
        s->spill_paused = true;
        mrf__st_test_pause(s, "map-spill");
    }
    if (!s->ckpt || s->cur_task < 0 || !mrf__preempted())
        return false;
    if (!s->task_cut)
        mrf__log(MRF_LOG_DEBUG, "a signal came: the running task stops here instead of spilling");
    s->task_cut = true;
    return true;
}

static int combine_one(stage *s, uint64_t h, const void *k, size_t kl, const void *v, size_t vl)
{
    if (mrf__ctable_hit(&s->tt, h, k, kl, v, vl, s->spec->combine, s->spec->ctx))
        return MRF_OK; /* a key already there: the table did not grow */
    int rc = mrf__ctable_add(&s->tt, h, k, kl, v, vl, s->spec->combine, s->spec->ctx);
    if (rc)
        return mrf__st_table_error(s, rc);
    if (s->tt.used < s->ct_max_keys / 2 && s->tt.big.len < s->big_cap)
        return MRF_OK;
    /* a task's own table overflows into the task's arena, and that to disk
     * as runs that are the rank's only if the task commits */
    if (mrf__ctable_evict(&s->tt, &s->tkv, drain_bucket, s, NULL))
        return mrf__fail(MRF_ENOMEM, "out of memory for map output");
    if (s->tkv.len >= s->budget / 16) {
        if (stop_instead_of_spill(s))
            return MRF_OK;
        return spill_range(s, &s->tkv, 0, s->tkv.len, s->cur_task, false);
    }
    return MRF_OK;
}

static int fold_oldest(stage *s)
{
    const pending *p = &s->q[s->qhead];
    s->qhead = (s->qhead + 1) % EMIT_RING;
    s->nq--;
    return combine_one(s, p->h, p->data, p->klen, p->data + p->klen, p->vlen);
}

static int flush_pending(stage *s)
{
    int rc = MRF_OK;
    while (s->nq && rc == MRF_OK)
        rc = fold_oldest(s);
    return rc;
}

static int map_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    stage *s = e->state;
    const mrf_job_spec *spec = s->spec;
    if (kl > INT32_MAX || vl > INT32_MAX)
        return mrf__fail(MRF_EINVAL, "job '%s' emitted a key or value over 2 GiB", spec->name);
    if (s->mapc) {
        /* the bucket is decided when the table is drained */
        uint64_t h = mrf__key_hash_inline(k, kl);
        int rc;
        if (kl + vl > EMIT_INLINE)
            return combine_one(s, h, k, kl, v, vl);
        if (s->nq == EMIT_RING && (rc = fold_oldest(s)))
            return rc;
        pending *p = &s->q[(s->qhead + s->nq++) % EMIT_RING];
        p->h = h;
        p->klen = (uint32_t)kl;
        p->vlen = (uint32_t)vl;
        mrf__copy_small(p->data, k, kl);
        mrf__copy_small(p->data + kl, v, vl);
        mrf__ctable_prefetch(&s->tt, h);
        return MRF_OK;
    }
    uint32_t b = mrf__st_key_bucket(s, k, kl, s->range ? 0 : mrf__key_hash(k, kl));
    if (s->kv.len &&
        (s->kv.len + MRF_KV_HDR + kl + vl > s->map_cap || s->map_recs >= s->map_rec_cap)) {
        if (stop_instead_of_spill(s))
            return MRF_OK;
        int rc = mrf__st_spill_map(s);
        if (rc)
            return rc;
    }
    s->map_recs++;
    if (mrf__kvbuf_append(&s->kv, b, k, kl, v, vl, NULL))
        return mrf__fail(MRF_ENOMEM, "out of memory for map output");
    s->bucket_bytes[b].bytes += MRF_KV_HDR + kl + vl;
    s->bucket_bytes[b].recs++;
    return MRF_OK;
}

static int map_reject(mrf_emitter *e, const char *why)
{
    stage *s = e->state;
    if (s->spec->flags & MRF_MAP_BLOCKS)
        return MRF_EINVAL; /* a block is no record to set aside */
    const mrf_record *r = s->cur_rec;
    return mrf__badrec_add(&s->bad, r->file, r->offset, r->data, r->len, why);
}

/* The input's trailing partial records (fixed-size input), set aside by
 * rank 0 after the map, and the verdict: more bad records than
 * --max-bad-records fail the job. */
int mrf__st_check_bad_records(stage *s)
{
    int rc = MRF_OK;
    size_t rs = s->rec_size;
    for (size_t f = 0; s->rank == 0 && !s->tails_done && s->spec->input == MRF_INPUT_RECORDS &&
                       f < s->plan.n_files && rc == MRF_OK;
         f++) {
        uint64_t size = s->plan.sizes[f], tail = size % rs;
        if (tail == 0)
            continue;
        char buf[1024], why[160];
        size_t want = tail < sizeof buf ? (size_t)tail : sizeof buf;
        int fd = open(s->plan.paths[f], O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? pread(fd, buf, want, (off_t)(size - tail)) : -1;
        if (fd >= 0)
            close(fd);
        if (got != (ssize_t)want) {
            rc = mrf__fail(MRF_EIO, "input '%s': reading its last %llu bytes failed",
                           s->plan.paths[f], (unsigned long long)tail);
            break;
        }
        snprintf(why, sizeof why,
                 "a trailing partial record: %llu bytes, not a whole %zu-byte record",
                 (unsigned long long)tail, rs);
        rc = mrf__badrec_add(&s->bad, s->plan.paths[f], size - tail, buf, (size_t)tail, why);
    }
    if (rc == MRF_OK)
        rc = mrf__badrec_commit(&s->bad, s->tmpdir, s->rank, &s->bad_records);
    if ((rc = mrf__st_agree(s, rc)))
        return rc;
    uint64_t total = 0;
    MPI_Allreduce(&s->bad_records, &total, 1, MPI_UINT64_T, MPI_SUM, s->comm);
    if (total <= s->opt->max_bad_records)
        return MRF_OK;
    /* one line from rank 0 (with its first bad record, if it has one);
     * another rank names its own first */
    if (s->rank != 0 && s->bad_records)
        mrf__fail(MRF_EINPUT, "bad input record: %s", s->bad.first);
    if (s->rank == 0)
        mrf__fail(
            MRF_EINPUT,
            "job '%s': %llu malformed input record%s, more than --max-bad-records %llu "
            "allows%s%s; fix the input, or allow them with --max-bad-records N (they are then "
            "written to %s/_BAD_RECORDS/ with their file and byte offset)",
            s->spec->name, (unsigned long long)total, total == 1 ? "" : "s",
            (unsigned long long)s->opt->max_bad_records, s->bad_records ? "; the first: " : "",
            s->bad_records ? s->bad.first : "", s->opt->output);
    return MRF_EINPUT;
}

/* Progress, fault injection and the check for a copy that already won run
 * 16 times per task, at least every 64 KiB, at most every 1 MiB of input. */
static size_t check_bytes(uint64_t len)
{
    uint64_t c = len / 16;
    return (size_t)(c < (64u << 10) ? (64u << 10) : c > (1u << 20) ? (1u << 20) : c);
}

typedef struct task_run {
    long index; /* the scheduler's */
    long orig;  /* the plan's */
    bool backup;
    double t0, chunk0;
    double rate_t0;       /* the rate is measured from the first checkpoint on, */
    uint64_t rate_bytes0; /* past start-up effects */
    uint64_t records;
    uint64_t len;    /* the task's bytes */
    double spilled0; /* the rank's spill time when the task started */
    bool aborted;
} task_run;

static void checkpoint(stage *s, task_run *tr, uint64_t done)
{
    double now = MPI_Wtime();
    const mrf__options *o = s->opt;
    if (o->fault_rank == s->rank && now - s->map_t0 >= o->fault_after && o->fault_factor > 1) {
        /* testing switch: stretch this chunk to factor x its time, sleeping
         * in 1 ms slices that let MPI serve other ranks' one-sided requests,
         * as a slow CPU would at each checkpoint */
        double until = now + (o->fault_factor - 1) * (now - tr->chunk0);
        while ((now = MPI_Wtime()) < until) {
            double left = until - now;
            struct timespec ts = {0, (long)((left < 1e-3 ? left : 1e-3) * 1e9)};
            nanosleep(&ts, NULL);
            mrf__sched_poke(s->sched);
        }
    }
    tr->chunk0 = now;
    if (s->mid_pause && done * 2 >= tr->len && done < tr->len &&
        (s->mid_pause == 1 || s->prof.map_spill > tr->spilled0)) {
        /* a test pause in the middle of a task, once per rank (see map_setup) */
        mrf__st_test_pause(s, s->mid_pause == 1 ? "map-task" : "map-task-spilled");
        s->mid_pause = 0;
    }
    if (s->prog.on && now - s->prog.last >= s->prog.every) {
        uint64_t tasks, bytes;
        mrf__sched_global(s->sched, &tasks, &bytes);
        mrf__progress_map(&s->prog, bytes, s->plan.total_bytes, tasks, s->plan.n_tasks, s->map_t0);
    }
    double rate = 0;
    if (tr->rate_t0 == 0) {
        tr->rate_t0 = now;
        tr->rate_bytes0 = done;
    } else if (now > tr->rate_t0) {
        rate = (double)(done - tr->rate_bytes0) / (now - tr->rate_t0);
    }
    if (mrf__sched_progress(s->sched, tr->index, tr->backup, done, rate))
        tr->aborted = true;
    if (s->ckpt && mrf__preempted()) { /* stop now: the task is redone on resume */
        if (!s->stop_sent)
            mrf__sched_stop(s->sched);
        s->stop_sent = true;
        tr->aborted = true;
    }
}

/* Runs map over whole records buf[0, len) of a task (base: the file offset
 * of buf[0]; done0: the task's bytes mapped before them) into the task's
 * output. */
static int map_piece(stage *s, const mrf__task *t, const char *buf, size_t len, uint64_t base,
                     uint64_t done0, task_run *tr)
{
    const mrf_job_spec *spec = s->spec;
    mrf_emitter em = {.fn = map_emit,
                      .reject = map_reject,
                      .state = s,
                      .prev = s->prev_sums,
                      .opt = s->opt,
                      .run = s->run_index};
    mrf_record rec = {.file = s->plan.paths[t->file], .type = s->dtype};
    size_t every = check_bytes(t->len);
    const bool fixed = spec->input == MRF_INPUT_RECORDS || spec->input == MRF_INPUT_DATASET;
    /* the deal over a heavy key's buckets starts where the task says, so a
     * task's output is the same whichever rank maps it */
    s->rr = (uint64_t)tr->orig * 0x9e3779b97f4a7c15ull;
    if (s->hv.n)
        mrf__heavy_reset(&s->hv, (uint64_t)tr->orig);
    const char *p = buf, *end = buf + len, *next_check = buf + every;
    const bool blocks = spec->input == MRF_INPUT_LINES && (spec->flags & MRF_MAP_BLOCKS);
    while (p < end && em.rc == MRF_OK && !tr->aborted && !s->task_cut) {
        const char *nl = NULL, *next;
        rec.data = p;
        if (fixed) {
            rec.len = s->rec_size;
            next = p + s->rec_size;
        } else if (spec->input == MRF__INPUT_KV) { /* u32 klen, u32 vlen, key, value */
            uint64_t kl = 0, vl = 0;
            if (end - p >= 8) {
                kl = mrf__rd32(p);
                vl = mrf__rd32(p + 4);
            }
            if (end - p < 8 || (uint64_t)(end - p) - 8 < kl + vl) {
                em.rc = mrf__fail(MRF_EIO,
                                  "intermediate file '%s' is damaged: a record at byte %llu runs "
                                  "past its end",
                                  rec.file, (unsigned long long)(base + (uint64_t)(p - buf)));
                break;
            }
            rec.key = p + 8;
            rec.klen = (size_t)kl;
            rec.data = p + 8 + kl;
            rec.len = (size_t)vl;
            next = p + 8 + kl + vl;
        } else if (blocks) { /* whole lines up to the next check, at least one */
            const char *cut = next_check < end ? next_check : end;
            nl = cut < end ? memchr(cut, '\n', (size_t)(end - cut)) : NULL;
            next = nl ? nl + 1 : end;
            rec.len = (size_t)(next - p);
        } else {
            nl = memchr(p, '\n', (size_t)(end - p));
            rec.len = (size_t)((nl ? nl : end) - p);
            next = nl ? nl + 1 : end;
        }
        rec.offset = base + (uint64_t)(p - buf);
        if (spec->input == MRF_INPUT_DATASET) /* an element's index */
            rec.offset /= s->rec_size;
        s->cur_rec = &rec;
        spec->map(&rec, &em, spec->ctx);
        tr->records += blocks ? mrf__count_lines(p, rec.len) : 1;
        p = next;
        if (p >= next_check && p < end) {
            checkpoint(s, tr, done0 + (uint64_t)(p - buf));
            next_check = p + every;
        }
    }
    /* the emit ring points into buf: it is flushed before buf changes */
    if (em.rc == MRF_OK && s->mapc)
        em.rc = flush_pending(s);
    if (s->task_cut) /* a record was dropped: the task must not commit */
        tr->aborted = true;
    return em.rc;
}

/* Reads and maps one task: a plain one read whole, as is a dataset's
 * (h5input.c), a compressed one decompressed in pieces of whole lines
 * (zinput.c). */
static int run_task(stage *s, const mrf__task *t, char **buf, size_t *cap, task_run *tr)
{
    double r0 = MPI_Wtime();
    int rc;
    if (t->codec == MRF__CODEC_NONE || t->codec == MRF__CODEC_HDF5) {
        rc = t->codec == MRF__CODEC_NONE
                 ? mrf__task_read(&s->plan, t, buf, cap)
                 : mrf__h5in_read(s->plan.paths[t->file], t, 1, 0, buf, cap, &s->dtype);
        s->prof.map_read += MPI_Wtime() - r0;
        if (rc == MRF_OK)
            rc = map_piece(s, t, *buf, t->len, t->off, 0, tr);
        if (rc == MRF_OK && !tr->aborted)
            checkpoint(s, tr, t->len);
        return rc;
    }
    mrf__zin *z = NULL;
    /* pieces of the task size: a single-frame file larger than memory is
     * one task that streams through */
    int fd;
    const char *path = s->plan.paths[t->file];
    if ((rc = mrf__input_open(path, "reading a map task", &fd)) == MRF_OK)
        rc = mrf__zin_open(fd, path, s->plan.sizes[t->file], t, (size_t)s->task_size, buf, cap, &z);
    uint64_t done = 0;
    while (rc == MRF_OK && !tr->aborted) {
        const char *data;
        size_t len;
        uint64_t base;
        r0 = MPI_Wtime();
        rc = mrf__zin_next(z, &data, &len, &base);
        s->prof.map_read += MPI_Wtime() - r0;
        if (rc || len == 0)
            break;
        rc = map_piece(s, t, data, len, base, done, tr);
        done += len;
    }
    if (rc == MRF_OK && !tr->aborted)
        checkpoint(s, tr, done > t->len ? done : t->len);
    mrf__zin_close(z);
    return rc;
}

/* The task's copy won: its output becomes the rank's. */
static int keep_task(stage *s)
{
    bool compacted = true;
    int rc;
    if ((rc = mrf__badrec_commit(&s->bad, s->tmpdir, s->rank, &s->bad_records)))
        return rc;
    for (size_t i = 0; i < s->n_bruns; i++) {
        mrf__brun *r = &s->bruns[i];
        if (r->task != s->cur_task)
            continue;
        r->task = -1; /* its spilled runs are the rank's now */
        compacted = false;
        for (size_t j = 0; s->mapc && j < r->n; j++) {
            /* spilled from the task's own arena: not yet counted */
            mrf__bstat *b = &s->bucket_bytes[r->ents[j].bucket],
                       *w = &s->pack_bytes[b - s->bucket_bytes];
            b->bytes += r->ents[j].raw;
            b->recs += r->ents[j].recs;
            w->bytes += r->ents[j].raw;
            w->recs += r->ents[j].recs;
        }
    }
    if (!compacted && (rc = compact_bruns(s)))
        return rc;
    if (!s->mapc)
        return MRF_OK; /* already in place */
    /* Packing weights: each committed task's own combined output, bucket by
     * bucket.  Unlike the rank's combined bytes, these do not depend on which
     * rank mapped which task, so the bucket -> rank map, and with it every
     * output part, is the same in every run of the same plan. */
    if (s->ct.used + s->tt.used > s->ct_max_keys && (rc = drain_table(s)))
        return rc; /* the merge must not grow the table past its share */
    rc = mrf__ctable_merge(&s->ct, &s->tt, s->spec->combine, s->spec->ctx, drain_bucket, s,
                           s->pack_bytes);
    if (rc)
        return mrf__fail(rc, "combining a task's output failed");
    if ((s->ct.used >= s->ct_max_keys || s->ct.big.len >= s->big_cap) && (rc = drain_table(s)))
        return rc;
    if (s->tkv.len && s->kv.len && s->kv.len + s->tkv.len > s->map_cap &&
        (rc = mrf__st_spill_map(s)))
        return rc;
    if (s->tkv.len) {
        if (mrf__kvbuf_reserve(&s->kv, s->tkv.len))
            return mrf__fail(MRF_ENOMEM, "out of memory for map output");
        memcpy(s->kv.base + s->kv.len, s->tkv.base, s->tkv.len);
        for (size_t at = 0; at < s->tkv.len; at += mrf__rec_size(s->tkv.base + at)) {
            uint32_t b = mrf__rec_bucket(s->tkv.base + at);
            s->bucket_bytes[b].bytes += mrf__rec_size(s->tkv.base + at);
            s->bucket_bytes[b].recs++;
            s->pack_bytes[b].bytes += mrf__rec_size(s->tkv.base + at);
            s->pack_bytes[b].recs++;
        }
        s->kv.len += s->tkv.len;
        s->tkv.len = 0;
    }
    return MRF_OK;
}

/* The task's copy lost or stopped: forget its output. */
static void drop_task(stage *s, size_t kv_start)
{
    mrf__badrec_drop(&s->bad);
    size_t keep = 0;
    for (size_t i = 0; i < s->n_bruns; i++) {
        mrf__brun *r = &s->bruns[i];
        if (r->task != s->cur_task) {
            s->bruns[keep++] = *r;
            continue;
        }
        uint64_t lo = UINT64_MAX, hi = 0;
        for (size_t j = 0; j < r->n; j++) {
            if (!s->mapc) { /* counted as emitted */
                s->bucket_bytes[r->ents[j].bucket].bytes -= r->ents[j].raw;
                s->bucket_bytes[r->ents[j].bucket].recs -= r->ents[j].recs;
            }
            lo = r->ents[j].off < lo ? r->ents[j].off : lo;
            hi = r->ents[j].off + r->ents[j].len > hi ? r->ents[j].off + r->ents[j].len : hi;
        }
        if (hi > lo)
            mrf__spill_release(&s->spill, lo, hi - lo);
        mrf__free(r->ents);
    }
    s->n_bruns = keep;
    if (s->mapc) {
        s->nq = 0;
        mrf__ctable_clear(&s->tt);
        s->tkv.len = 0;
        return;
    }
    for (size_t at = kv_start; at < s->kv.len; at += mrf__rec_size(s->kv.base + at)) {
        mrf__bstat *b = &s->bucket_bytes[mrf__rec_bucket(s->kv.base + at)];
        b->bytes -= mrf__rec_size(s->kv.base + at);
        b->recs--;
        s->map_recs--;
    }
    s->kv.len = kv_start;
}

/* The map phase's memory: per-bucket figures and the combining tables.
 * Before any task runs (and before a checkpoint's data is loaded). */
int mrf__st_map_setup(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int rc = MRF_OK;
    s->bucket_bytes = mrf__calloc(s->nb, sizeof *s->bucket_bytes);
    s->pack_bytes = mrf__calloc(s->nb, sizeof *s->pack_bytes);
    if (!s->bucket_bytes || !s->pack_bytes)
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    /* MRFLOW_COMBINE_MAX_KEYS (a testing switch) lowers the table's cap */
    const char *cap_env = getenv("MRFLOW_COMBINE_MAX_KEYS");
    s->ct_max_keys = cap_env && atol(cap_env) > 0 ? (size_t)atol(cap_env) : CTABLE_MAX_KEYS;
    /* the budget's share for slots (1/8) bounds the table: it never grows
     * past max_slots, as it is drained at load 0.7 */
    size_t max_slots = 1u << 16;
    while ((uint64_t)max_slots * 2 * sizeof(mrf__cslot) <= s->budget / 4 &&
           max_slots * sizeof(mrf__cslot) < (256u << 20))
        max_slots *= 2;
    if (s->ct_max_keys > max_slots / 10 * 7)
        s->ct_max_keys = max_slots / 10 * 7;
    s->cur_task = -1;
    /* testing switch, read once: MRFLOW_TEST_PAUSE=map-task pauses at the
     * first progress check past a task's middle, map-task-spilled at the
     * first past the middle of a task that spilled part of its output */
    const char *pause = getenv("MRFLOW_TEST_PAUSE");
    s->mid_pause = !pause                                   ? 0
                   : strcmp(pause, "map-task") == 0         ? 1
                   : strcmp(pause, "map-task-spilled") == 0 ? 2
                                                            : 0;
    s->kv.limit = s->map_cap;
    s->tkv.limit = (size_t)(s->budget / 16);
    /* size the tables from the input: one slot per 16 bytes of this rank's
     * share (the rank table) or per 64 bytes of the largest task (a task's
     * table), within 64 Ki to 2 Mi slots.  Text has far fewer distinct keys
     * than that, so they rarely grow, and small jobs do not touch 64 MiB */
    uint64_t my_bytes = 0, seen = 0, max_task = 0;
    for (size_t i = 0; i < s->plan.n_tasks; i++) {
        if (mrf__st_my_task(s, seen, s->plan.tasks[i].len))
            my_bytes += s->plan.tasks[i].len;
        seen += s->plan.tasks[i].len;
        if (s->plan.tasks[i].len > max_task)
            max_task = s->plan.tasks[i].len;
    }
#define CLAMP_SLOTS(b)                                                                             \
    ((b) / 16 < (1u << 16) ? (1u << 16) : (b) / 16 > (1u << 21) ? (1u << 21) : (size_t)((b) / 16))
#define MIN_SLOTS(a, b) ((a) < (b) ? (a) : (b))
    if (rc == MRF_OK && spec->combine &&
        (mrf__ctable_init(&s->ct, MIN_SLOTS(CLAMP_SLOTS(my_bytes), max_slots)) ||
         (s->mapc &&
          mrf__ctable_init(&s->tt, MIN_SLOTS(CLAMP_SLOTS(max_task / 4), max_slots / 2)))))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the combining table");
#undef CLAMP_SLOTS
#undef MIN_SLOTS
    s->done_len = (s->plan.n_tasks + 7) / 8;
    if (rc == MRF_OK && !(s->done = mrf__calloc(s->done_len ? s->done_len : 1, 1)))
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    return rc;
}

/* Undoes map_setup and forgets all map output (a checkpoint that failed to
 * load). */
void mrf__st_map_reset(stage *s)
{
    mrf__free(s->bucket_bytes);
    mrf__free(s->pack_bytes);
    s->bucket_bytes = s->pack_bytes = NULL;
    mrf__free(s->done);
    s->done = NULL;
    s->n_done = 0;
    for (size_t i = 0; i < s->n_bruns; i++)
        mrf__free(s->bruns[i].ents);
    s->n_bruns = 0;
    mrf__kvbuf_destroy(&s->kv);
    s->map_recs = 0;
    s->ck_mark = 0;
    s->unsaved_spilled = 0;
    mrf__ctable_destroy(&s->ct);
    mrf__ctable_destroy(&s->tt);
    s->records_in = s->my_input_bytes = s->bad_records = 0;
    mrf__badrec_drop(&s->bad);
}

/* One pass of the scheduler over the tasks not yet done (sub: those,
 * tmap: their indices in the plan), until they are all committed or a stop
 * was requested. */
static int map_round(stage *s, const mrf__plan *sub)
{
    char *buf = NULL;
    size_t cap = 0;
    int rc = MRF_OK;
    int max_backups = s->opt->max_backups ? s->opt->max_backups : s->size / 4;
    if (max_backups < 1)
        max_backups = 1;
    int crc = mrf__sched_create(s->comm, sub, s->opt->speculate, max_backups, &s->sched);
    if (crc) /* every rank got the same answer: no scheduler, no tasks */
        return crc;
    s->stop_sent = false;
    bool paused = false;
    for (;;) {
        long ti;
        bool backup;
        if (rc) {
            mrf__sched_fail(s->sched);
            break;
        }
        double tw = MPI_Wtime();
        rc = mrf__sched_next(s->sched, &ti, &backup);
        s->prof.map_wait += MPI_Wtime() - tw;
        if (rc || ti < 0)
            break;
        long oi = s->tmap[ti];
        const mrf__task *t = &s->plan.tasks[oi];
        if (s->opt->fail_rank == s->rank) {
            rc = mrf__fail(MRF_EIO, "injected failure (--fault fail:rank=%d) in task %ld of '%s'",
                           s->rank, oi, s->plan.paths[t->file]);
            continue;
        }
        double t0 = MPI_Wtime(), spilled0 = s->prof.map_spill, read0 = s->prof.map_read;
        task_run tr = {.index = ti,
                       .orig = oi,
                       .backup = backup,
                       .t0 = t0,
                       .chunk0 = t0,
                       .len = t->len,
                       .spilled0 = spilled0};
        s->task_kv_start = s->kv.len;
        s->cur_task = ti;
        s->task_cut = false;
        mrf__log_task(oi);
        rc = run_task(s, t, &buf, &cap, &tr);
        mrf__log_task(-1);
        if (rc)
            continue;
        double took = MPI_Wtime() - t0;
        mrf__log(MRF_LOG_DEBUG, "task %ld%s: %.3f-%.3f s into the map phase%s", oi,
                 backup ? " (backup)" : "", t0 - s->map_t0, t0 + took - s->map_t0,
                 tr.aborted ? ", stopped" : "");
        if (tr.aborted) {
            drop_task(s, s->task_kv_start);
            mrf__sched_abandon(s->sched, ti, backup, t->len, took);
        } else if (mrf__sched_commit(s->sched, ti, backup, t->len, took)) {
            rc = keep_task(s);
            s->my_input_bytes += t->len;
            s->records_in += tr.records;
            s->done[oi / 8] |= (uint8_t)(1u << (oi % 8));
            if (s->opt->crash_rank == s->rank && s->opt->crash_phase == MRF__PHASE_MAP) {
                mrf__log(MRF_LOG_WARN, "--fault crash: killing myself in the map phase");
                raise(SIGKILL);
            }
            if (!paused) {
                paused = true;
                mrf__st_test_pause(s, "map");
            }
        } else {
            drop_task(s, s->task_kv_start);
        }
        s->cur_task = -1;
        s->prof.map_run +=
            MPI_Wtime() - t0 - (s->prof.map_spill - spilled0) - (s->prof.map_read - read0);
        /* a checkpoint is due (rank 0's clock, or this rank holds
         * --checkpoint-bytes of map output no checkpoint has) unless map
         * output was found not worth one, or a preemption signal came */
        if (s->ckpt && !s->stop_sent &&
            (mrf__preempted() ||
             (!s->map_ckpt_off && s->opt->ckpt_bytes > 0 &&
              mrf__st_unsaved_bytes(s) >= s->opt->ckpt_bytes) ||
             (!s->map_ckpt_off && s->rank == 0 && s->opt->ckpt_every > 0 &&
              MPI_Wtime() - s->ckpt_last >= s->opt->ckpt_every))) {
            mrf__sched_stop(s->sched);
            s->stop_sent = true;
        }
    }
    const mrf__sched_stats *st = mrf__sched_get_stats(s->sched);
    s->sst.tasks_run += st->tasks_run;
    s->sst.stolen += st->stolen;
    s->sst.backups_launched += st->backups_launched;
    s->sst.backups_won += st->backups_won;
    s->sst.discarded += st->discarded;
    for (int i = 0; i < MRF_SCHED_HIST; i++)
        s->sst.hist[i] += st->hist[i];
    double tw = MPI_Wtime();
    mrf__sched_destroy(s->sched); /* the phase's closing barrier */
    s->prof.map_wait += MPI_Wtime() - tw;
    s->sched = NULL;
    mrf__big_free(buf, cap);
    return rc;
}

/* Map output this rank holds that no checkpoint has: the arena past the
 * mark, runs spilled since, and (combining) the table's estimated size. */
uint64_t mrf__st_unsaved_bytes(const stage *s)
{
    uint64_t n = s->kv.len - (s->ck_mark < s->kv.len ? s->ck_mark : s->kv.len);
    n += s->unsaved_spilled;
    if (s->mapc)
        n += s->ct.used * (uint64_t)(MRF_KV_HDR + MRF_CS_INLINE) + s->ct.big.len;
    return n;
}

/* The map phase starts: the clock and the progress line. */
void mrf__st_map_begin(stage *s)
{
    s->map_t0 = s->ckpt_last = MPI_Wtime();
    if (s->prog.on)
        mrf__progress_map(&s->prog, 0, s->plan.total_bytes, 0, s->plan.n_tasks, s->map_t0);
}

/* One pass of the scheduler over the tasks not done yet (every rank holds
 * the same bitmap), then the ranks agree on what is done and whether a
 * preemption signal came (s->preempt).  *more: tasks are left, so a
 * checkpoint (the driver's) and another round follow.  Collective. */
int mrf__st_map_round(stage *s, bool *more)
{
    int rc = MRF_OK;
    size_t nt = s->plan.n_tasks;
    mrf__plan sub = s->plan;
    *more = false;
    sub.tasks = mrf__malloc((nt ? nt : 1) * sizeof *sub.tasks);
    s->tmap = mrf__malloc((nt ? nt : 1) * sizeof *s->tmap);
    if (!sub.tasks || !s->tmap)
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    if ((rc = mrf__st_agree(s, rc)) == MRF_OK) {
        sub.n_tasks = 0;
        sub.total_bytes = 0;
        for (size_t t = 0; t < nt; t++)
            if (!(s->done[t / 8] & (1u << (t % 8)))) {
                s->tmap[sub.n_tasks] = (long)t;
                sub.tasks[sub.n_tasks++] = s->plan.tasks[t];
                sub.total_bytes += s->plan.tasks[t].len;
            }
        if (sub.n_tasks)
            rc = mrf__st_agree(s, map_round(s, &sub));
    }
    if (rc == MRF_OK && sub.n_tasks) {
        MPI_Allreduce(MPI_IN_PLACE, s->done, (int)s->done_len, MPI_BYTE, MPI_BOR, s->comm);
        int pre = mrf__preempted() != 0;
        MPI_Allreduce(MPI_IN_PLACE, &pre, 1, MPI_INT, MPI_MAX, s->comm);
        s->preempt = pre;
        s->n_done = 0;
        for (size_t t = 0; t < nt; t++)
            s->n_done += (s->done[t / 8] >> (t % 8)) & 1u;
        *more = s->n_done < nt;
    }
    mrf__free(sub.tasks);
    mrf__free(s->tmap);
    s->tmap = NULL;
    return rc;
}

/* The map phase ends (rc: how it went): the table drained into the arena,
 * a rank that spilled spills the rest (the shuffle then reads only runs,
 * and the arena's memory goes to the reducing side), the task-side buffers
 * freed.  The drained (empty) table stays for the reducing side's combine. */
int mrf__st_map_end(stage *s, int rc)
{
    if (rc == MRF_OK)
        mrf__st_test_pause(s, "map-end");
    if (rc == MRF_OK && s->mapc)
        rc = mrf__st_drain_table_how(s, true);
    /* (not after a signal: the job stops after the checkpoint, which reads
     * the arena as it is, and this rank's vote makes sure it does stop) */
    bool stopping = s->ckpt && mrf__preempted();
    if (rc == MRF_OK && s->n_bruns && s->kv.len && stopping)
        mrf__log(MRF_LOG_DEBUG,
                 "a signal came: the map arena is not spilled (%zu bytes; the job "
                 "stops after the checkpoint)",
                 s->kv.len);
    if (rc == MRF_OK && s->n_bruns && s->kv.len && !stopping)
        rc = mrf__st_spill_map(s);
    if (s->n_bruns && !stopping)
        mrf__kvbuf_destroy(&s->kv);
    mrf__ctable_destroy(&s->tt);
    mrf__kvbuf_destroy(&s->tkv);
    return rc;
}
