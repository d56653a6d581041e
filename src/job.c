/*
 * job.c -- one stage: its phases in order, agreement on the outcome, commit,
 * checkpoints and resume, the run summary and report (driver.c runs a job's
 * stages through mrf__stage_run).
 *
 * One stage, every rank in lock step:
 *
 *   plan (rank 0, Bcast) -> output_begin -> [sample -> splitters] -> map
 *     -> Allreduce(bytes per bucket) -> pack buckets onto ranks
 *     -> scatter records by destination -> shuffle (rounds)
 *     -> [combine] -> sort -> reduce -> write part -> commit (rank 0)
 *
 * Every phase that can fail on one rank ends with an MPI_Allreduce of the
 * status (MIN of the negative codes), so all ranks take the same branch and
 * no rank waits in a collective that another has abandoned.
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

/* This thread's CPU time: a rank's own work, whether or not it shares its
 * core (a figure that holds when ranks oversubscribe the cores). */
double mrf__st_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int mrf_emit(mrf_emitter *out, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!out)
        return MRF_EINVAL;
    if (out->rc)
        return out->rc;
    if ((klen && !key) || (vlen && !val))
        return out->rc = mrf__fail(MRF_EINVAL, "mrf_emit: NULL key or value with a length");
    return out->rc = out->fn(out, key, klen, val, vlen);
}

int mrf_stage_add(mrf_emitter *out, unsigned slot, double v)
{
    if (!out || !out->add || slot >= MRF_STAGE_SLOTS)
        return MRF_EINVAL;
    out->add[slot] += v;
    return MRF_OK;
}

double mrf_stage_sum(const mrf_emitter *out, unsigned slot)
{
    return out && out->prev && slot < MRF_STAGE_SLOTS ? out->prev[slot] : 0.0;
}

unsigned mrf_stage_run(const mrf_emitter *out)
{
    return out ? out->run : 0;
}

static bool rec_has_key(const char *r, const void *key, size_t klen,
                        int (*cmp)(const void *, size_t, const void *, size_t))
{
    if (cmp)
        return cmp(mrf__rec_key(r), mrf__rec_klen(r), key, klen) == 0;
    return mrf__rec_klen(r) == klen && memcmp(mrf__rec_key(r), key, klen) == 0;
}

int mrf_values_next(mrf_values *vals, const void **val, size_t *len)
{
    if (vals && vals->m) {
        const char *r = vals->done ? NULL : mrf__merge_top(vals->m);
        if (!r || !rec_has_key(r, vals->key, vals->klen, vals->cmp)) {
            vals->done = true;
            return 0;
        }
        size_t n = mrf__rec_vlen(r);
        if (n > vals->vcap) {
            char *b = mrf__realloc(vals->vbuf, n);
            if (!b) {
                vals->rc = mrf__fail(MRF_ENOMEM, "out of memory for a value of %zu bytes", n);
                vals->done = true;
                return 0;
            }
            vals->vbuf = b;
            vals->vcap = n;
        }
        if (n)
            memcpy(vals->vbuf, mrf__rec_val(r), n);
        *val = vals->vbuf;
        *len = n;
        int rc = mrf__merge_pop(vals->m);
        if (rc) {
            vals->rc = rc;
            vals->done = true;
        }
        return 1;
    }
    if (!vals || vals->i >= vals->end)
        return 0;
    const char *r = vals->base + vals->ents[vals->i++].off;
    *val = mrf__rec_val(r);
    *len = mrf__rec_vlen(r);
    return 1;
}

int mrf_reject(mrf_emitter *out, const char *reason)
{
    if (!out || !out->reject)
        return MRF_EINVAL;
    int rc = out->reject(out, reason);
    if (rc && out->rc == MRF_OK)
        out->rc = rc;
    return rc;
}

int mrf_fail(mrf_emitter *out, const char *reason)
{
    int rc = mrf__fail(MRF_EINVAL, "the job failed: %s", reason ? reason : "(no reason given)");
    if (out && out->rc == MRF_OK)
        out->rc = rc;
    return rc;
}

uint64_t mrf_values_count(const mrf_values *vals)
{
    if (vals && vals->m)
        return MRF_COUNT_UNKNOWN;
    return vals ? vals->count : 0;
}

const char *mrf_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
    return STR(MRF_VERSION_MAJOR) "." STR(MRF_VERSION_MINOR) "." STR(MRF_VERSION_PATCH);
#undef STR
#undef STR2
}

int mrf__exit_status(int rc)
{
    switch (rc) {
    case MRF_OK:
        return MRF_EXIT_OK;
    case MRF_EUSAGE:
    case MRF_EINPUT:
    case MRF_EEXIST:
        return MRF_EXIT_USAGE;
    case MRF__PREEMPTED:
        return MRF_EXIT_CHECKPOINTED;
    default:
        return MRF_EXIT_FAILED;
    }
}

int mrf__st_agree(stage *s, int rc)
{
    int all = rc;
    if (MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MIN, s->comm) != MPI_SUCCESS)
        return MRF_EMPI;
    return all;
}

/* --------------------------------------------------------------- budget -- */

/* Bytes of memory this process may use: RAM, or less under a cgroup limit
 * (Slurm's task/cgroup plugin, containers). */
static uint64_t node_memory(void)
{
    uint64_t total = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
                total = (uint64_t)kb * 1024;
        fclose(f);
    }
    if (!total) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        total = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : (8ull << 30);
    }
    static const char *limits[] = {"/sys/fs/cgroup/memory.max",
                                   "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        unsigned long long lim;
        if ((f = fopen(limits[i], "r"))) {
            if (fscanf(f, "%llu", &lim) == 1 && lim > 0 && lim < total)
                total = lim;
            fclose(f);
        }
    }
    return total;
}

/* The per-rank budget and the shares carved from it (docs/operations.md, "Memory, spill and
 * compression"): map arena 1/4 and its spill index (8 bytes a record) 1/8; combining table slots
 * 1/8 and its side arena 1/8; a task's input <= 1/8; shuffle rounds: round_bytes <= 1/16, four such
 * buffers; reducing side: what is left (records and their sort index, half each); merge: a quarter,
 * in 128 KiB per open run. */
static int set_budget(stage *s)
{
    uint64_t b = s->opt->memory;
    if (!b) {
        MPI_Comm local;
        int nlocal = 1;
        if (MPI_Comm_split_type(s->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) ==
            MPI_SUCCESS) {
            MPI_Comm_size(local, &nlocal);
            MPI_Comm_free(&local);
        }
        b = node_memory() / 2 / (uint64_t)nlocal;
        if (b > (64ull << 30))
            b = 64ull << 30;
        if (b < MRF__MIN_MEMORY)
            b = MRF__MIN_MEMORY;
    }
    s->budget = b;
    /* a combining job keeps its map output in the table: the table gets
     * the arena's room (slots 1/4, arena 1/8); other jobs the reverse */
    s->map_cap = (size_t)(s->mapc ? b / 8 : b / 4);
    s->map_rec_cap = (size_t)(b / 64);
    s->big_cap = (size_t)(b / 8);
    s->round_bytes = s->opt->round_bytes < b / 16 ? s->opt->round_bytes : b / 16;
    if (s->opt->task_size_set && s->opt->task_size > b / 4)
        return s->rank == 0
                   ? mrf__fail(MRF_EUSAGE,
                               "--task-size %llu is more than a quarter of --memory "
                               "%llu: lower it or raise --memory",
                               (unsigned long long)s->opt->task_size, (unsigned long long)b)
                   : MRF_EUSAGE;
    mrf__log(MRF_LOG_DEBUG, "memory budget %llu bytes%s", (unsigned long long)b,
             s->opt->memory ? "" : " (half the node's memory shared among its ranks)");
    return MRF_OK;
}

/* ------------------------------------------------------------- planning -- */

/* What a checkpoint's map output depends on in the input: every file's
 * name, size and modification time, and the tasks cut from them. */
uint64_t mrf__st_inputs_fingerprint(const mrf__plan *p)
{
    uint64_t h = mrf__checksum(&p->n_tasks, sizeof p->n_tasks);
    for (size_t f = 0; f < p->n_files; f++) {
        struct stat st;
        uint64_t v[3] = {p->sizes[f], 0, 0};
        if (stat(p->paths[f], &st) == 0) {
            v[1] = (uint64_t)st.st_mtim.tv_sec;
            v[2] = (uint64_t)st.st_mtim.tv_nsec;
        }
        h ^= mrf__checksum(p->paths[f], strlen(p->paths[f])) * 0x9e3779b97f4a7c15ull;
        h = (h << 7 | h >> 57) ^ mrf__checksum(v, sizeof v);
    }
    for (size_t t = 0; t < p->n_tasks; t++) {
        uint64_t v[3] = {p->tasks[t].file, p->tasks[t].off, p->tasks[t].len};
        h = (h << 5 | h >> 59) ^ mrf__checksum(v, sizeof v);
    }
    return h;
}

static int plan_and_share(stage *s)
{
    int rc = MRF_OK;
    char *buf = NULL;
    size_t len = 0;
    char err[MRF_ERRLEN] = "";
    if (s->rank == 0) {
        const mrf_job_spec *spec = s->spec;
        rc = mrf__plan_files(s->opt->inputs, s->opt->n_inputs, &s->plan, err, sizeof err);
        uint64_t task_size = s->opt->task_size;
        if (!s->opt->task_size_set) {
            /* about 8 tasks per rank, so static dealing balances, within [1M, 64M] */
            task_size = s->plan.total_bytes / ((uint64_t)s->size * 8);
            if (task_size < (1u << 20))
                task_size = 1u << 20;
            if (task_size > s->opt->task_size)
                task_size = s->opt->task_size;
            if (task_size > s->budget / 8) /* a task's input is read whole */
                task_size = s->budget / 8;
        }
        if (s->ckr && !s->opt->task_size_set && s->ckmeta.task_size)
            task_size = s->ckmeta.task_size; /* resuming: the same tasks as before */
        s->task_size = task_size;
        if (rc == MRF_OK)
            rc = mrf__plan_tasks(&s->plan, spec->input, spec->record_size, task_size, err,
                                 sizeof err);
        if (rc == MRF_OK)
            s->inputs_fp = mrf__st_inputs_fingerprint(&s->plan);
        if (rc == MRF_OK)
            rc = mrf__plan_pack(&s->plan, &buf, &len);
        if (rc)
            mrf__fail(rc, "%s", err[0] ? err : "out of memory planning input");
    }
    int64_t hdr[4] = {rc, (int64_t)len, (int64_t)s->inputs_fp, (int64_t)s->task_size};
    if (MPI_Bcast(hdr, 4, MPI_INT64_T, 0, s->comm) != MPI_SUCCESS) {
        mrf__free(buf);
        return MRF_EMPI;
    }
    if (hdr[0] != MRF_OK) {
        mrf__free(buf);
        return (int)hdr[0];
    }
    s->inputs_fp = (uint64_t)hdr[2];
    s->task_size = (uint64_t)hdr[3];
    if (hdr[1] > INT_MAX) {
        mrf__free(buf);
        return s->rank == 0 ? mrf__fail(MRF_EINPUT, "too many input files and tasks") : MRF_EINPUT;
    }
    if (s->rank != 0 && !(buf = mrf__malloc((size_t)hdr[1] + 1)))
        MPI_Abort(s->comm, 1); /* cannot join the Bcast below without a buffer */
    if (MPI_Bcast(buf, (int)hdr[1], MPI_BYTE, 0, s->comm) != MPI_SUCCESS) {
        mrf__free(buf);
        return MRF_EMPI;
    }
    if (s->rank != 0)
        rc = mrf__plan_unpack(buf, (size_t)hdr[1], &s->plan);
    mrf__free(buf);
    if (rc)
        mrf__fail(rc, "corrupt task plan received from rank 0");
    return mrf__st_agree(s, rc);
}

/* A task's home: the rank whose share of the bytes holds its middle.  It
 * maps the task unless another rank steals it (sched.c). */
static bool my_task(const stage *s, uint64_t before, uint64_t len)
{
    return mrf__home_rank(s->plan.total_bytes, before, len, s->size) == s->rank;
}

/* -------------------------------------------------------------- sampling -- */

static int sample_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    (void)v;
    (void)vl;
    return mrf__kvbuf_append(e->state, 0, k, kl, NULL, 0, NULL) ? MRF_ENOMEM : MRF_OK;
}

/* Line input is sampled in blocks of this many bytes, every whole line in
 * each; fixed-size records one at a time. */
#define SAMPLE_BLOCK (16u << 10)

/* Runs map on up to k records (line input: the lines of k blocks) spread
 * evenly over task t; the emits go to em. */
static int sample_task(stage *s, const mrf__task *t, uint64_t k, mrf_emitter *em)
{
    const mrf_job_spec *spec = s->spec;
    const char *path = s->plan.paths[t->file];
    int rc = MRF_OK;
    size_t bufsz = spec->input == MRF_INPUT_RECORDS ? spec->record_size : SAMPLE_BLOCK;
    char *buf = mrf__malloc(bufsz);
    int fd = -1;
    if (!buf) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory while sampling '%s'", path);
        goto out;
    }
    if ((rc = mrf__input_open(path, "sampling", &fd)))
        goto out;
    uint64_t units = spec->input == MRF_INPUT_RECORDS ? t->len / spec->record_size : t->len;
    if (spec->input == MRF_INPUT_LINES && k > units / SAMPLE_BLOCK) /* blocks must not overlap */
        k = units / SAMPLE_BLOCK ? units / SAMPLE_BLOCK : 1;
    if (k > units)
        k = units;
    for (uint64_t i = 0; i < k && rc == MRF_OK && em->rc == MRF_OK; i++) {
        uint64_t u = i * units / k;
        mrf_record rec = {.file = path};
        if (spec->input == MRF_INPUT_RECORDS) {
            uint64_t at = t->off + u * spec->record_size;
            if (pread(fd, buf, spec->record_size, (off_t)at) != (ssize_t)spec->record_size) {
                rc = mrf__fail(MRF_EIO, "input '%s': short read while sampling", path);
                break;
            }
            rec.data = buf;
            rec.len = spec->record_size;
            rec.offset = at;
        } else {
            uint64_t at = t->off + u, end = t->off + t->len;
            size_t want = (size_t)(end - at < bufsz ? end - at : bufsz);
            ssize_t got = pread(fd, buf, want, (off_t)at);
            if (got <= 0) {
                rc = mrf__fail(MRF_EIO, "input '%s': short read while sampling", path);
                break;
            }
            const char *p = buf, *e = buf + got;
            if (u != 0) { /* skip to the start of the next line */
                const char *nl = memchr(p, '\n', (size_t)(e - p));
                if (!nl)
                    continue;
                p = nl + 1;
            }
            /* every whole line in the block */
            while (p < e && em->rc == MRF_OK) {
                const char *nl = memchr(p, '\n', (size_t)(e - p));
                if (!nl && at + (uint64_t)got < end)
                    break; /* cut off by the block's end */
                rec.data = p;
                rec.len = (size_t)((nl ? nl : e) - p);
                rec.offset = at + (uint64_t)(p - buf);
                spec->map(&rec, em, spec->ctx);
                p = nl ? nl + 1 : e;
            }
            continue;
        }
        spec->map(&rec, em, spec->ctx);
    }
    if (rc == MRF_OK)
        rc = em->rc;
out:
    if (fd >= 0)
        close(fd);
    mrf__free(buf);
    return rc;
}

/* Samples this rank's home tasks into em.  For splitters (range): line
 * input about a 128th of the input (256 KiB to 16 MiB in all) in blocks,
 * record input 8 records per bucket (1 Ki to 1 Mi in all).  For heavy keys
 * (skew), whose threshold is 1/(20 x ranks) of the data, a few thousand
 * records per rank estimate every heavy key's share to a few percent: 256
 * KiB of lines per rank (at most a 64th of the input, unless that is less
 * than 256 KiB), or 4096 records. */
static int sample_input(stage *s, mrf_emitter *em, bool heavy)
{
    int rc = MRF_OK;
    uint64_t total = s->plan.total_bytes, target;
    if (s->spec->input == MRF_INPUT_RECORDS) {
        target = heavy ? 4096u * (uint64_t)s->size : (uint64_t)s->opt->buckets * 8;
        target = target < 1024 ? 1024 : target > (1u << 20) ? (1u << 20) : target;
    } else if (heavy) {
        target = (256u << 10) * (uint64_t)s->size;
        if (target > total / 64 && total / 64 > (256u << 10))
            target = total / 64;
        else if (target > total / 64) /* a small input: 256 KiB of it */
            target = 256u << 10;
        target /= SAMPLE_BLOCK;
    } else {
        target = total / 128;
        target = target < (256u << 10) ? (256u << 10) : target > (16u << 20) ? (16u << 20) : target;
        target /= SAMPLE_BLOCK;
    }
    uint64_t before = 0;
    for (size_t i = 0; i < s->plan.n_tasks && rc == MRF_OK; i++) {
        const mrf__task *t = &s->plan.tasks[i];
        if (my_task(s, before, t->len) && total) {
            uint64_t k = (uint64_t)(((unsigned __int128)target * t->len + total - 1) / total);
            rc = sample_task(s, t, k, em);
        }
        before += t->len;
    }
    return rc;
}

static void add_u64(void *acc, const void *val, size_t len, void *ctx)
{
    (void)len;
    (void)ctx;
    uint64_t a, v;
    memcpy(&a, acc, 8);
    memcpy(&v, val, 8);
    a += v;
    memcpy(acc, &a, 8);
}

typedef struct sample_counts {
    mrf__ctable t;
    uint64_t weight;
    int rc;
} sample_counts;

/* Sampled emits for heavy-key detection: weight (record bytes) per key. */
static int count_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    sample_counts *c = e->state;
    (void)v;
    uint64_t w = MRF_KV_HDR + kl + vl;
    c->weight += w;
    if (mrf__ctable_add(&c->t, mrf__key_hash(k, kl), k, kl, &w, sizeof w, add_u64, NULL))
        return MRF_ENOMEM;
    return MRF_OK;
}

/* Every rank's n bytes at mine, concatenated in rank order at rank 0 (NULL
 * elsewhere; *total: their length).  Collective.  Small, so running out of
 * memory for it aborts the job. */
static char *gather_bytes(stage *s, const void *mine, int n, size_t *total)
{
    int *counts = NULL, *displs = NULL;
    char *all = NULL;
    *total = 0;
    if (s->rank == 0 && (!(counts = mrf__calloc((size_t)s->size, sizeof *counts)) ||
                         !(displs = mrf__calloc((size_t)s->size, sizeof *displs))))
        MPI_Abort(s->comm, 1);
    MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, s->comm);
    if (s->rank == 0) {
        for (int r = 0; r < s->size; r++) {
            displs[r] = (int)*total;
            *total += (size_t)counts[r];
        }
        if (!(all = mrf__malloc(*total ? *total : 1)))
            MPI_Abort(s->comm, 1);
    }
    MPI_Gatherv(mine, n, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, s->comm);
    mrf__free(counts);
    mrf__free(displs);
    return all;
}

/* Skew partitioning: every rank samples its share of the input, counts the
 * sampled keys' weights and sends its MRF__HEAVY_TOP heaviest to rank 0,
 * which sums them and picks the heavy keys for everyone. */
static int find_heavy_keys(stage *s)
{
    sample_counts c = {0};
    mrf_emitter em = {.fn = count_emit, .state = &c, .prev = s->prev_sums, .run = s->run_index};
    mrf__kvbuf drained = {0};
    mrf__hkey *top = NULL, *all = NULL;
    int rc = MRF_OK, mine = 0;
    size_t n = 0;
    if (mrf__ctable_init(&c.t, 1u << 14))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the key sample");
    double t0 = MPI_Wtime();
    if (rc == MRF_OK)
        rc = sample_input(s, &em, true);
    mrf__log(MRF_LOG_DEBUG, "heavy keys: sampled %llu bytes of records in %.3f s",
             (unsigned long long)c.weight, MPI_Wtime() - t0);
    if (rc == MRF_OK && mrf__ctable_drain(&c.t, &drained, NULL, NULL, NULL))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the key sample");
    if (rc == MRF_OK && mrf__kvbuf_check(drained.base, drained.len, &n))
        rc = mrf__fail(MRF_EINTERNAL, "malformed key sample");
    if (rc == MRF_OK && !(top = mrf__calloc(n ? n : 1, sizeof *top)))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the key sample");
    if (rc == MRF_OK) {
        size_t i = 0;
        for (size_t at = 0; at < drained.len; at += mrf__rec_size(drained.base + at), i++) {
            const char *r = drained.base + at;
            size_t kl = mrf__rec_klen(r);
            top[i].hash = mrf__key_hash(mrf__rec_key(r), kl);
            memcpy(&top[i].weight, mrf__rec_val(r), 8);
            top[i].klen = (uint32_t)kl;
            memcpy(top[i].name, mrf__rec_key(r), kl < MRF__HEAVY_NAME ? kl : MRF__HEAVY_NAME);
        }
        mrf__hkeys_by_weight(top, n);
        mine = (int)(n < MRF__HEAVY_TOP ? n : MRF__HEAVY_TOP) * (int)sizeof *top;
    }
    mrf__kvbuf_destroy(&drained);
    mrf__ctable_destroy(&c.t);
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    uint64_t weight = 0;
    MPI_Allreduce(&c.weight, &weight, 1, MPI_UINT64_T, MPI_SUM, s->comm);
    s->sample_weight = weight;
    size_t got = 0;
    all = (mrf__hkey *)gather_bytes(s, top, mine, &got);
    if (s->rank == 0) {
        size_t k = mrf__hkeys_merge(all, got / sizeof *all);
        if (mrf__heavy_pick(all, k, weight, s->size, s->split_ok, &s->hv))
            MPI_Abort(s->comm, 1);
    }
    rc = mrf__st_agree(s, mrf__heavy_bcast(&s->hv, s->comm));
out:
    mrf__free(top);
    mrf__free(all);
    return rc;
}

static int choose_splitters(stage *s)
{
    mrf__kvbuf samples = {0};
    mrf_emitter em = {
        .fn = sample_emit, .state = &samples, .prev = s->prev_sums, .run = s->run_index};
    int rc = sample_input(s, &em, false);
    if (rc == MRF_OK && samples.len > (size_t)(INT_MAX / s->size))
        samples.len = 0; /* absurdly large keys: fall back to fewer buckets */
    rc = mrf__st_agree(s, rc);
    if (rc) {
        mrf__kvbuf_destroy(&samples);
        return rc;
    }

    size_t total = 0;
    char *all = gather_bytes(s, samples.base, (int)samples.len, &total);
    mrf__kvbuf_destroy(&samples);

    if (s->rank == 0) {
        size_t n = 0;
        for (size_t at = 0; at < total; at += mrf__rec_size(all + at))
            n++;
        mrf__sort_ent *ents = mrf__malloc((n ? n : 1) * sizeof *ents);
        mrf__sort_ent *tmp = mrf__malloc((n ? n : 1) * sizeof *tmp);
        const char **keys = mrf__malloc((n ? n : 1) * sizeof *keys);
        size_t *lens = mrf__malloc((n ? n : 1) * sizeof *lens);
        if (!ents || !tmp || !keys || !lens)
            MPI_Abort(s->comm, 1);
        mrf__st_sort_index(s, all, total, ents, tmp, n);
        for (size_t i = 0; i < n; i++) {
            keys[i] = mrf__rec_key(all + ents[i].off);
            lens[i] = mrf__rec_klen(all + ents[i].off);
        }
        if (mrf__splitters_from_sorted(keys, lens, n, s->opt->buckets, &s->sp))
            MPI_Abort(s->comm, 1);
        mrf__log(MRF_LOG_INFO, "range partitioning: %zu sampled keys, %u buckets", n, s->sp.n + 1);
        mrf__free(ents);
        mrf__free(tmp);
        mrf__free(keys);
        mrf__free(lens);
        mrf__free(all);
    }
    rc = mrf__splitters_bcast(&s->sp, s->comm);
    if (rc == MRF_OK)
        s->nb = s->sp.n + 1;
    return mrf__st_agree(s, rc);
}

/* ------------------------------------------------------------------ map -- */

static uint32_t drain_bucket(void *ctx, const void *key, size_t klen, uint64_t h)
{
    return mrf__st_key_bucket(ctx, key, klen, h);
}

/* Writes the records [from, to) of kv (the map arena or a task's) to disk as a bucket run that
 * belongs to task (-1: committed output), and closes the gap in the arena. */
static int spill_range(stage *s, mrf__kvbuf *kv, size_t from, size_t to, long task)
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
    s->n_bruns++;
    s->map_spilled += to - from;
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
 * spilled byte is copied about log_fan(runs) times. */
static int compact_bruns(stage *s)
{
    size_t dir = (size_t)s->nb * sizeof(mrf__bdir_ent);
    size_t fan = (size_t)(s->budget / 16 / dir / 2);
    if (fan < 4)
        fan = 4;
    for (unsigned level = 0;; level++) {
        size_t n = 0, first = SIZE_MAX;
        for (size_t i = 0; i < s->n_bruns; i++)
            if (s->bruns[i].task == -1 && s->bruns[i].level == level) {
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
            if (s->bruns[i].task == -1 && s->bruns[i].level == level)
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
        s->bruns[keep++] = merged;
        s->n_bruns = keep;
        mrf__log(MRF_LOG_DEBUG, "merged %zu spilled runs of level %u; %zu runs", k, level,
                 s->n_bruns);
    }
}

/* The map arena is full: spill it (the running task's records, when its copy
 * may yet lose, as a run of their own that is dropped with the task). */
int mrf__st_spill_map(stage *s)
{
    int rc;
    bool uncommitted = s->opt->speculate && !s->mapc && s->cur_task >= 0;
    size_t split = uncommitted ? s->task_kv_start : s->kv.len;
    if ((rc = spill_range(s, &s->kv, split, s->kv.len, uncommitted ? s->cur_task : -1)))
        return rc;
    if ((rc = spill_range(s, &s->kv, 0, split, -1)))
        return rc;
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

static int combine_one(stage *s, uint64_t h, const void *k, size_t kl, const void *v, size_t vl)
{
    if (mrf__ctable_hit(s->target, h, k, kl, v, vl, s->spec->combine, s->spec->ctx))
        return MRF_OK; /* a key already there: the table did not grow */
    int rc = mrf__ctable_add(s->target, h, k, kl, v, vl, s->spec->combine, s->spec->ctx);
    if (rc)
        return mrf__st_table_error(s, rc);
    if (s->target->used < (s->target == &s->ct ? s->ct_max_keys : s->ct_max_keys / 2) &&
        s->target->big.len < s->big_cap)
        return MRF_OK;
    if (s->target == &s->ct)
        return drain_table(s);
    /* a task's own table overflows into the task's arena, and that to disk
     * as runs that are the rank's only if the task commits */
    if (mrf__ctable_evict(&s->tt, &s->tkv, drain_bucket, s, NULL))
        return mrf__fail(MRF_ENOMEM, "out of memory for map output");
    if (s->tkv.len >= s->budget / 16)
        return spill_range(s, &s->tkv, 0, s->tkv.len, s->cur_task);
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
        mrf__ctable_prefetch(s->target, h);
        return MRF_OK;
    }
    uint32_t b = mrf__st_key_bucket(s, k, kl, s->range ? 0 : mrf__key_hash(k, kl));
    if (s->kv.len &&
        (s->kv.len + MRF_KV_HDR + kl + vl > s->map_cap || s->map_recs >= s->map_rec_cap)) {
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
static int check_bad_records(stage *s)
{
    int rc = MRF_OK;
    size_t rs = s->spec->record_size;
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

/* Runs map over one task's records into the task's output. */
static int map_one(stage *s, const mrf__task *t, const char *buf, task_run *tr)
{
    const mrf_job_spec *spec = s->spec;
    mrf_emitter em = {.fn = map_emit,
                      .reject = map_reject,
                      .state = s,
                      .prev = s->prev_sums,
                      .run = s->run_index};
    mrf_record rec = {.file = s->plan.paths[t->file]};
    size_t every = check_bytes(t->len);
    /* the deal over a heavy key's buckets starts where the task says, so a
     * task's output is the same whichever rank maps it */
    s->rr = (uint64_t)tr->orig * 0x9e3779b97f4a7c15ull;
    if (s->hv.n)
        mrf__heavy_reset(&s->hv, (uint64_t)tr->orig);
    const char *p = buf, *end = buf + t->len, *next_check = buf + every;
    const bool blocks = spec->input == MRF_INPUT_LINES && (spec->flags & MRF_MAP_BLOCKS);
    while (p < end && em.rc == MRF_OK && !tr->aborted) {
        const char *nl = NULL, *next;
        rec.data = p;
        if (spec->input == MRF_INPUT_RECORDS) {
            rec.len = spec->record_size;
            next = p + spec->record_size;
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
                                  rec.file, (unsigned long long)(t->off + (uint64_t)(p - buf)));
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
        rec.offset = t->off + (uint64_t)(p - buf);
        s->cur_rec = &rec;
        spec->map(&rec, &em, spec->ctx);
        tr->records += blocks ? mrf__count_lines(p, rec.len) : 1;
        p = next;
        if (p >= next_check && p < end) {
            checkpoint(s, tr, (uint64_t)(p - buf));
            next_check = p + every;
        }
    }
    if (em.rc == MRF_OK && !tr->aborted)
        checkpoint(s, tr, t->len);
    if (em.rc == MRF_OK && s->mapc)
        return flush_pending(s);
    return em.rc;
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
    if (!s->mapc || s->target == &s->ct)
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
    s->kv.limit = s->map_cap;
    s->tkv.limit = (size_t)(s->budget / 16);
    /* size the tables from the input: one slot per 16 bytes of this rank's
     * share (the rank table) or per 64 bytes of the largest task (a task's
     * table), within 64 Ki to 2 Mi slots.  Text has far fewer distinct keys
     * than that, so they rarely grow, and small jobs do not touch 64 MiB */
    uint64_t my_bytes = 0, seen = 0, max_task = 0;
    for (size_t i = 0; i < s->plan.n_tasks; i++) {
        if (my_task(s, seen, s->plan.tasks[i].len))
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
         (s->mapc && s->opt->speculate &&
          mrf__ctable_init(&s->tt, MIN_SLOTS(CLAMP_SLOTS(max_task / 4), max_slots / 2)))))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the combining table");
#undef CLAMP_SLOTS
#undef MIN_SLOTS
    /* without speculation every copy commits: combine straight into ct */
    s->target = s->opt->speculate ? &s->tt : &s->ct;
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
        double tr0 = MPI_Wtime();
        rc = mrf__task_read(&s->plan, t, &buf, &cap);
        double t0 = MPI_Wtime(), spilled0 = s->prof.map_spill;
        s->prof.map_read += t0 - tr0;
        if (rc)
            continue;
        task_run tr = {.index = ti, .orig = oi, .backup = backup, .t0 = t0, .chunk0 = t0};
        s->task_kv_start = s->kv.len;
        s->cur_task = ti;
        mrf__log_task(oi);
        rc = map_one(s, t, buf, &tr);
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
        s->prof.map_run += MPI_Wtime() - t0 - (s->prof.map_spill - spilled0);
        /* a checkpoint is due (rank 0's clock), or a preemption signal came */
        if (s->ckpt && !s->stop_sent &&
            (mrf__preempted() || (s->rank == 0 && s->opt->ckpt_every > 0 &&
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

/* Rounds of the scheduler until every task is committed, with a checkpoint
 * between rounds when one is due or a signal came. */
static int map_tasks(stage *s)
{
    int rc = MRF_OK;
    size_t nt = s->plan.n_tasks;
    mrf__plan sub = s->plan;
    sub.tasks = mrf__malloc((nt ? nt : 1) * sizeof *sub.tasks);
    s->tmap = mrf__malloc((nt ? nt : 1) * sizeof *s->tmap);
    if (!sub.tasks || !s->tmap)
        rc = mrf__fail(MRF_ENOMEM, "out of memory");
    if ((rc = mrf__st_agree(s, rc))) {
        mrf__free(sub.tasks);
        return rc;
    }
    s->map_t0 = s->ckpt_last = MPI_Wtime();
    if (s->prog.on)
        mrf__progress_map(&s->prog, 0, s->plan.total_bytes, 0, s->plan.n_tasks, s->map_t0);
    for (;;) {
        /* the tasks not done yet (every rank holds the same bitmap) */
        sub.n_tasks = 0;
        sub.total_bytes = 0;
        for (size_t t = 0; t < nt; t++)
            if (!(s->done[t / 8] & (1u << (t % 8)))) {
                s->tmap[sub.n_tasks] = (long)t;
                sub.tasks[sub.n_tasks++] = s->plan.tasks[t];
                sub.total_bytes += s->plan.tasks[t].len;
            }
        if (sub.n_tasks == 0)
            break;
        rc = map_round(s, &sub);
        if ((rc = mrf__st_agree(s, rc)))
            break;
        MPI_Allreduce(MPI_IN_PLACE, s->done, (int)s->done_len, MPI_BYTE, MPI_BOR, s->comm);
        int pre = mrf__preempted() != 0;
        MPI_Allreduce(MPI_IN_PLACE, &pre, 1, MPI_INT, MPI_MAX, s->comm);
        s->preempt = pre;
        s->n_done = 0;
        for (size_t t = 0; t < nt; t++)
            s->n_done += (s->done[t / 8] >> (t % 8)) & 1u;
        if (s->n_done == nt)
            break; /* the checkpoint after the map follows */
        if ((rc = mrf__st_take_checkpoint(s, "map")))
            break;
        if (s->preempt) {
            rc = MRF__PREEMPTED;
            break;
        }
    }
    mrf__free(sub.tasks);
    mrf__free(s->tmap);
    s->tmap = NULL;
    if (rc == MRF_OK && s->mapc)
        rc = mrf__st_drain_table_how(s, true);
    /* a rank that spilled spills the rest too: the shuffle then reads only
     * runs, and the arena's memory goes to the reducing side */
    if (rc == MRF_OK && s->n_bruns && s->kv.len)
        rc = mrf__st_spill_map(s);
    if (s->n_bruns)
        mrf__kvbuf_destroy(&s->kv);
    mrf__ctable_destroy(&s->tt);
    mrf__kvbuf_destroy(&s->tkv);
    /* the drained (empty) table stays for the reducing side's combine */
    return rc;
}

/* --------------------------------------------------------------- reduce -- */

static int reduce_emit(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl)
{
    stage *s = e->state;
    s->records_out++;
    return mrf__writer_put(s->out, k, kl, v, vl);
}

static bool same_key(const stage *s, const mrf__sort_ent *a, const mrf__sort_ent *b)
{
    const char *x = s->kv.base + a->off, *y = s->kv.base + b->off;
    if (s->spec->key_compare)
        return s->spec->key_compare(mrf__rec_key(x), mrf__rec_klen(x), mrf__rec_key(y),
                                    mrf__rec_klen(y)) == 0;
    return a->prefix == b->prefix && mrf__rec_klen(x) == mrf__rec_klen(y) &&
           memcmp(mrf__rec_key(x), mrf__rec_key(y), mrf__rec_klen(x)) == 0;
}

/* Merge sources: a sorted run on disk, or the sorted in-memory remainder. */
static int next_run(void *ctx, const char **rec)
{
    return mrf__runr_next(ctx, rec);
}

/* How many runs one merge pass reads at once: each open run holds a block
 * (64 KiB raw, one at a time); a quarter of the budget goes to them. */
static size_t merge_fan_in(const stage *s)
{
    size_t f = (size_t)(s->budget / 4 / (128u << 10));
    return f < 4 ? 4 : f;
}

/* Merges runs[first, first+k) into one new run, while there are too many. */
static int merge_pass(stage *s, size_t first, size_t k)
{
    mrf__run_reader *rd = mrf__calloc(k, sizeof *rd);
    mrf__merge_src *src = mrf__calloc(k, sizeof *src);
    mrf__merge m = {0};
    mrf__run_writer w;
    mrf__run out;
    int rc = MRF_OK;
    if (!rd || !src)
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a merge pass");
    for (size_t i = 0; i < k && rc == MRF_OK; i++) {
        mrf__runr_open(&rd[i], &s->spill, &s->runs[first + i]);
        src[i] = (mrf__merge_src){.next = next_run, .ctx = &rd[i]};
    }
    if (rc == MRF_OK && (rc = mrf__runw_begin(&w, &s->spill)) == MRF_OK) {
        if ((rc = mrf__merge_init(&m, src, k, s->spec->key_compare)) == MRF_OK) {
            const char *r;
            while (rc == MRF_OK && (r = mrf__merge_top(&m)))
                if ((rc = mrf__runw_add(&w, r)) == MRF_OK)
                    rc = mrf__merge_pop(&m);
        }
        if (rc == MRF_OK)
            rc = mrf__runw_end(&w, &out);
        else
            mrf__runw_abort(&w);
    }
    mrf__merge_free(&m);
    for (size_t i = 0; rd && i < k; i++)
        mrf__runr_close(&rd[i]);
    mrf__free(rd);
    mrf__free(src);
    if (rc)
        return rc;
    for (size_t i = 0; i < k; i++)
        mrf__spill_release(&s->spill, s->runs[first + i].off, s->runs[first + i].len);
    s->runs[first] = out;
    memmove(&s->runs[first + 1], &s->runs[first + k], (s->n_runs - first - k) * sizeof *s->runs);
    s->n_runs -= k - 1;
    s->merge_passes++;
    return MRF_OK;
}

/* Reduce over a k-way merge of the sorted runs and the in-memory remainder;
 * each key's values stream through mrf_values_next. */
static int reduce_merge(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int rc = MRF_OK;
    size_t n = 0, fan = merge_fan_in(s);
    if (mrf__kvbuf_check(s->kv.base, s->kv.len, &n))
        return mrf__fail(MRF_EINTERNAL, "malformed records on the reducing side");
    double t_sort = MPI_Wtime(), t_red = 0, io0 = 0;
    while (rc == MRF_OK && s->n_runs + 1 > fan)
        rc = merge_pass(s, 0, fan);
    if (rc)
        return rc;
    size_t bytes = (n ? n : 1) * sizeof(mrf__sort_ent);
    mrf__sort_ent *ents = mrf__big_alloc_filled(bytes), *tmp = mrf__big_alloc_filled(bytes);
    size_t k = s->n_runs + 1;
    mrf__run_reader *rd = mrf__calloc(k, sizeof *rd);
    mrf__merge_src *src = mrf__calloc(k, sizeof *src);
    mrf__merge m = {0};
    mrf_values vals = {.cmp = spec->key_compare};
    char *kbuf = NULL;
    size_t kcap = 0;
    if (!ents || !tmp || !rd || !src) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory setting up the merge of %zu runs", k - 1);
        goto out;
    }
    size_t i;
    mrf__st_sort_index(s, s->kv.base, s->kv.len, ents, tmp, n);
    s->prof.red_sort += MPI_Wtime() - t_sort;
    t_red = MPI_Wtime();
    io0 = s->prof.red_write + s->prof.red_fsync;
    mrf__sorted_src ms = {.base = s->kv.base, .ents = ents, .n = n};
    for (i = 0; i + 1 < k; i++) {
        mrf__runr_open(&rd[i], &s->spill, &s->runs[i]);
        src[i] = (mrf__merge_src){.next = next_run, .ctx = &rd[i]};
    }
    src[k - 1] = (mrf__merge_src){.next = mrf__sorted_next, .ctx = &ms};
    if ((rc = mrf__merge_init(&m, src, k, spec->key_compare)))
        goto out;
    if ((rc = mrf__writer_open(s->tmpdir, s->rank,
                               s->opt->kv_output     ? MRF__OUTPUT_KV
                               : s->opt->format_hdf5 ? MRF__OUTPUT_H5STAGE
                                                     : (int)spec->output,
                               &s->out)))
        goto out;
    mrf__writer_clock(s->out, &s->prof.red_write, &s->prof.red_fsync);
    mrf_emitter em = {
        .fn = reduce_emit, .state = s, .prev = s->prev_sums, .add = s->sums, .run = s->run_index};
    const char *r;
    uint64_t nkeys = 0;
    while (em.rc == MRF_OK && vals.rc == MRF_OK && (r = mrf__merge_top(&m))) {
        if ((nkeys++ & 1023) == 0 && mrf__preempted()) {
            em.rc = MRF__PREEMPTED;
            break;
        }
        size_t kl = mrf__rec_klen(r);
        if (kl > kcap) {
            char *b = mrf__realloc(kbuf, kl);
            if (!b) {
                rc = mrf__fail(MRF_ENOMEM, "out of memory for a key of %zu bytes", kl);
                break;
            }
            kbuf = b;
            kcap = kl;
        }
        if (kl)
            memcpy(kbuf, mrf__rec_key(r), kl);
        vals.m = &m;
        vals.key = kbuf;
        vals.klen = kl;
        vals.done = false;
        spec->reduce(kbuf, kl, &vals, &em, spec->ctx);
        /* values the reduce did not read */
        while (vals.rc == MRF_OK && (r = mrf__merge_top(&m)) &&
               rec_has_key(r, kbuf, kl, spec->key_compare))
            vals.rc = mrf__merge_pop(&m);
    }
    if (rc == MRF_OK)
        rc = vals.rc ? vals.rc : em.rc;
    if (rc == MRF_OK)
        mrf__writer_counts(s->out, &s->h5.recs, &s->h5.kbytes, &s->h5.vbytes);
    if (rc == MRF_OK)
        rc = mrf__writer_close(s->out, &s->bytes_out);
    else
        mrf__writer_abort(s->out);
    s->out = NULL;
    /* the last merge pass feeds the reduce: its time counts there */
    s->prof.red_reduce += MPI_Wtime() - t_red - (s->prof.red_write + s->prof.red_fsync - io0);
out:
    mrf__merge_free(&m);
    for (i = 0; rd && i + 1 < k; i++)
        mrf__runr_close(&rd[i]);
    mrf__free(rd);
    mrf__free(src);
    mrf__free(kbuf);
    mrf__free(vals.vbuf);
    mrf__big_free(ents, bytes);
    mrf__big_free(tmp, bytes);
    return rc;
}

/* How many keys ahead the reduce loop fetches records: the sort leaves them
 * in arena order, so each is a cache miss otherwise. */
#define REDUCE_AHEAD 16

static int reduce_local(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int rc;
    size_t n = 0;
    mrf__sort_ent *ents = NULL, *tmp = NULL;
    if (s->n_runs)
        return reduce_merge(s);
    if (mrf__kvbuf_check(s->kv.base, s->kv.len, &n))
        return mrf__fail(MRF_EINTERNAL, "shuffle delivered a malformed record stream");
    double t_sort = MPI_Wtime();
    if (spec->combine && !s->combined) {
        mrf__kvbuf combined = {0};
        if ((rc = mrf__combine_records(&s->ct, s->kv.base, s->kv.len, spec, &combined))) {
            mrf__kvbuf_destroy(&combined);
            return rc;
        }
        mrf__kvbuf_destroy(&s->kv);
        s->kv = combined;
        n = 0;
        for (size_t at = 0; at < s->kv.len; at += mrf__rec_size(s->kv.base + at))
            n++;
    }
    size_t bytes = (n ? n : 1) * sizeof *ents;
    bool spare = s->spare && s->spare_bytes >= 2 * bytes;
    if (spare) { /* the send buffer's pages: touched already */
        ents = (mrf__sort_ent *)(void *)s->spare;
        tmp = ents + (n ? n : 1);
    } else {
        ents = mrf__big_alloc_filled(bytes);
        tmp = mrf__big_alloc_filled(bytes);
    }
    if (!ents || !tmp) {
        rc = mrf__fail(MRF_ENOMEM, "out of memory for a sort index of %zu records", n);
        goto out;
    }
    size_t i;
    mrf__st_sort_index(s, s->kv.base, s->kv.len, ents, tmp, n);
    s->prof.red_sort += MPI_Wtime() - t_sort;
    double t_red = MPI_Wtime(), io0 = s->prof.red_write + s->prof.red_fsync;

    if ((rc = mrf__writer_open(s->tmpdir, s->rank,
                               s->opt->kv_output     ? MRF__OUTPUT_KV
                               : s->opt->format_hdf5 ? MRF__OUTPUT_H5STAGE
                                                     : (int)spec->output,
                               &s->out)))
        goto out;
    mrf__writer_clock(s->out, &s->prof.red_write, &s->prof.red_fsync);
    mrf_emitter em = {
        .fn = reduce_emit, .state = s, .prev = s->prev_sums, .add = s->sums, .run = s->run_index};
    for (i = 0; i < n && em.rc == MRF_OK;) {
        if ((i & 1023) == 0 && mrf__preempted()) {
            em.rc = MRF__PREEMPTED; /* agreed on at the end of the phase */
            break;
        }
        if (i + REDUCE_AHEAD < n) { /* the index is in order, the records are not */
            const char *ahead = s->kv.base + ents[i + REDUCE_AHEAD].off;
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + 64);
            __builtin_prefetch(ahead + 127);
        }
        size_t j = i + 1;
        while (j < n && same_key(s, &ents[i], &ents[j]))
            j++;
        const char *r = s->kv.base + ents[i].off;
        mrf_values vals = {.base = s->kv.base, .ents = ents, .i = i, .end = j, .count = j - i};
        spec->reduce(mrf__rec_key(r), mrf__rec_klen(r), &vals, &em, spec->ctx);
        i = j;
    }
    rc = em.rc;
    if (rc == MRF_OK)
        mrf__writer_counts(s->out, &s->h5.recs, &s->h5.kbytes, &s->h5.vbytes);
    if (rc == MRF_OK)
        rc = mrf__writer_close(s->out, &s->bytes_out);
    else
        mrf__writer_abort(s->out);
    s->out = NULL;
    s->prof.red_reduce += MPI_Wtime() - t_red - (s->prof.red_write + s->prof.red_fsync - io0);
out:
    if (!spare) {
        mrf__big_free(ents, bytes);
        mrf__big_free(tmp, bytes);
    }
    return rc;
}

/* -------------------------------------------------------------- summary -- */

static uint64_t peak_rss_bytes(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024u;
}

enum { SST_RUN, SST_STOLEN, SST_LAUNCHED, SST_WON, SST_DISCARDED, SST_N };

enum { X_MAP_SPILL, X_RED_SPILL, X_DISK, X_RUNS, X_WIRE, X_PASSES, X_BLK, X_ZBLK, X_N };

static void summary(stage *s, double elapsed)
{
    uint64_t sum[5 + SST_N + X_N] = {
        s->my_input_bytes,   s->records_in,    s->records_out,    s->bytes_out,
        s->shuf.bytes_sent,  s->sst.tasks_run, s->sst.stolen,     s->sst.backups_launched,
        s->sst.backups_won,  s->sst.discarded, s->map_spilled,    s->red_spilled,
        s->spill.bytes_disk, s->spill.runs,    s->shuf.wire_sent, s->merge_passes,
        s->spill.blocks,     s->spill.zblocks};
    uint64_t max[4] = {peak_rss_bytes(), s->shuf.rounds, mrf__mem_peak(), s->budget};
    uint64_t gsum[5 + SST_N + X_N], gmax[4];
    MPI_Reduce(sum, gsum, 5 + SST_N + X_N, MPI_UINT64_T, MPI_SUM, 0, s->comm);
    MPI_Reduce(max, gmax, 4, MPI_UINT64_T, MPI_MAX, 0, s->comm);
    const uint64_t *x = gsum + 5 + SST_N;
    if (s->rank == 0 && !s->opt->quiet) {
        double mib = 1024.0 * 1024.0;
        fprintf(stderr,
                "mrflow: memory: budget %.1f MiB per rank, engine peak %.1f MiB, peak RSS %.1f "
                "MiB (max over ranks); spilled %.1f MiB from map, %.1f MiB from shuffle, %.1f "
                "MiB on disk in %llu runs (%llu of %llu blocks compressed), %llu merge passes; "
                "shuffle compression %s, %.1f MiB on the wire for %.1f MiB of records, rounds "
                "%.3f s of which MPI %.3f s (rank 0)\n",
                (double)gmax[3] / mib, (double)gmax[2] / mib, (double)gmax[0] / mib,
                (double)x[X_MAP_SPILL] / mib, (double)x[X_RED_SPILL] / mib, (double)x[X_DISK] / mib,
                (unsigned long long)x[X_RUNS], (unsigned long long)x[X_ZBLK],
                (unsigned long long)x[X_BLK], (unsigned long long)x[X_PASSES],
                s->cwhy ? s->cwhy : "off (no shuffle)", (double)x[X_WIRE] / mib,
                (double)gsum[4] / mib, s->t_rounds, s->shuf.t_mpi);
    }
    /* per rank: tasks, stolen, backups launched/won, discarded, histogram */
    enum { W = SST_N + MRF_SCHED_HIST + 3 };
    uint64_t mine[W] = {s->sst.tasks_run, s->sst.stolen, s->sst.backups_launched,
                        s->sst.backups_won, s->sst.discarded};
    memcpy(mine + SST_N, s->sst.hist, sizeof s->sst.hist);
    mine[W - 3] = peak_rss_bytes();
    mine[W - 2] = mrf__mem_peak();
    mine[W - 1] = s->map_spilled + s->red_spilled;
    uint64_t *all = s->rank == 0 ? mrf__calloc((size_t)s->size * W, sizeof *all) : NULL;
    MPI_Gather(mine, W, MPI_UINT64_T, all, s->rank == 0 && all ? W : 0, MPI_UINT64_T, 0, s->comm);
    if (s->rank == 0 && !s->opt->quiet) {
        fprintf(stderr,
                "mrflow: %s done in %.3f s: %llu input bytes (%.1f MB/s), %llu records in, %llu "
                "records out, %llu output bytes; %d ranks, %llu shuffle bytes in %llu rounds, "
                "peak RSS %.1f MiB (max over ranks); map %.3f s, shuffle %.3f s, reduce %.3f s "
                "(rank 0); tasks %llu (%llu stolen), backups %llu launched %llu won, %llu "
                "copies discarded\n",
                s->spec->name, elapsed, (unsigned long long)gsum[0],
                elapsed > 0 ? (double)gsum[0] / elapsed / 1e6 : 0.0, (unsigned long long)gsum[1],
                (unsigned long long)gsum[2], (unsigned long long)gsum[3], s->size,
                (unsigned long long)gsum[4], (unsigned long long)gmax[1],
                (double)gmax[0] / (1024.0 * 1024.0), s->t_map, s->t_shuffle, s->t_reduce,
                (unsigned long long)gsum[5], (unsigned long long)gsum[6],
                (unsigned long long)gsum[7], (unsigned long long)gsum[8],
                (unsigned long long)gsum[9]);
    }
    if (s->rank == 0 && all && s->opt->log_level >= MRF_LOG_INFO) {
        fprintf(stderr, "mrflow: rank  tasks stolen backups won discarded | RSS MiB engine MiB "
                        "spilled MiB | task ms: <1 <2 <4 ... (counts per power of two)\n");
        for (int r = 0; r < s->size; r++) {
            const uint64_t *e = all + (size_t)r * W;
            char hist[256];
            size_t n = 0;
            for (int b = 0; b < MRF_SCHED_HIST && n < sizeof hist; b++)
                n += (size_t)snprintf(hist + n, sizeof hist - n, " %llu",
                                      (unsigned long long)e[SST_N + b]);
            double mib = 1024.0 * 1024.0;
            fprintf(stderr, "mrflow: %4d %6llu %6llu %7llu %3llu %9llu | %7.1f %10.1f %11.1f |%s\n",
                    r, (unsigned long long)e[0], (unsigned long long)e[1], (unsigned long long)e[2],
                    (unsigned long long)e[3], (unsigned long long)e[4], (double)e[W - 3] / mib,
                    (double)e[W - 2] / mib, (double)e[W - 1] / mib, hist);
        }
    }
    mrf__free(all);
}

/* The partitioning figures in one log line (rank 0, info). */
void mrf__st_log_partitioning(const stage *s)
{
    if (s->rank != 0 || s->opt->log_level < MRF_LOG_INFO)
        return;
    double share = 0;
    for (uint32_t i = 0; i < s->hv.n; i++)
        share += s->hv.share[i];
    size_t P = (size_t)s->size;
    double mib = 1024.0 * 1024.0;
    uint64_t bmax = 0, amax = 0, tot = 0;
    for (size_t r = 0; r < P; r++) {
        bmax = s->before[r].bytes > bmax ? s->before[r].bytes : bmax;
        amax = s->after[r].bytes > amax ? s->after[r].bytes : amax;
        tot += s->after[r].bytes;
    }
    static const char *names[] = {"default", "hash", "skew", "range"};
    mrf__log(MRF_LOG_INFO,
             "partitioning: %s, %u buckets + %u heavy-key buckets; %u heavy keys (%.1f%% of the "
             "sampled map output; %s)%s; reduce input per rank planned: largest %.1f MiB of "
             "%.1f MiB mean under plain hashing (imbalance %.3f), %.1f MiB with %s (%.3f); "
             "deciding took %.3f s",
             names[s->part], s->nb_base, s->hv.nsub, s->hv.n, 100 * share, s->split_why,
             s->range && s->sp.tie_runs ? " and range ties" : "", (double)bmax / mib,
             (double)tot / (double)P / mib, mrf__imbalance(&s->before[0].bytes, P, 2),
             (double)amax / mib, names[s->part], mrf__imbalance(&s->after[0].bytes, P, 2),
             s->t_decide);
    for (uint32_t i = 0; i < s->hv.n && i < 5; i++)
        mrf__log(MRF_LOG_INFO, "heavy key %u: '%.*s'%s, %.2f%% of the sample, %u buckets", i,
                 (int)(s->hv.key[i].klen < MRF__HEAVY_NAME ? s->hv.key[i].klen : MRF__HEAVY_NAME),
                 s->hv.key[i].name, s->hv.key[i].klen > MRF__HEAVY_NAME ? "..." : "",
                 100 * s->hv.share[i], s->hv.m[i]);
}

/* Gathers every rank's figures; rank 0 writes the run report (--report
 * FILE, else DIR/_REPORT.json inside the job's temporary directory, so it
 * is committed with the parts) and, with --metrics, the metrics file.  rc
 * is the job's outcome so far: a failed job writes a report only to a
 * --report FILE.  Collective; returns the agreed status of the writing. */
static int write_report(stage *s, double elapsed, int rc_job)
{
    mrf__rank_fig me = {
        .map_s = s->t_map,
        .shuffle_s = s->t_shuffle,
        .reduce_s = s->t_reduce,
        .reduce_cpu_s = s->cpu_reduce,
        .prof = s->prof,
        .peak_rss = peak_rss_bytes(),
        .input_bytes = s->my_input_bytes,
        .records_mapped = s->records_in,
        .red_in_bytes = s->red_in_bytes,
        .red_in_recs = s->red_in_recs,
        .records_out = s->records_out,
        .bytes_out = s->bytes_out,
        .spilled = s->map_spilled + s->red_spilled,
        .tasks = s->sst.tasks_run,
        .stolen = s->sst.stolen,
        .launched = s->sst.backups_launched,
        .won = s->sst.backups_won,
        .bad_records = s->bad_records,
    };
    gethostname(me.host, sizeof me.host - 1);
    me.local_rank = s->place.local_rank;
    me.bind_how = s->place.how;
    memcpy(me.cpuset, s->place.cpuset, sizeof me.cpuset);
    memcpy(me.numa, s->place.numa, sizeof me.numa);
    snprintf(me.arena_numa, sizeof me.arena_numa, "%s", s->arena_numa[0] ? s->arena_numa : "-");
    snprintf(me.error, sizeof me.error, "%s", mrf__first_error());
    uint64_t mine[3] = {s->shuf.bytes_sent, s->shuf.wire_sent, s->heavy_partials}, tot[3];
    MPI_Reduce(mine, tot, 3, MPI_UINT64_T, MPI_SUM, 0, s->comm);
    mrf__rank_fig *all = NULL;
    int rc = MRF_OK;
    if (s->rank == 0 && !(all = mrf__calloc((size_t)s->size, sizeof *all)))
        rc = mrf__fail(MRF_ENOMEM, "out of memory for the run report");
    /* a failed allocation still takes part: it receives nothing */
    MPI_Gather(&me, (int)sizeof me, MPI_BYTE, all, all ? (int)sizeof me : 0, MPI_BYTE, 0, s->comm);
    if (s->rank == 0 && all) {
        static const char *names[] = {"default", "hash", "skew", "range"};
        mrf__report r = {
            .job = s->spec->name,
            .run_id = s->run_id,
            .status = rc_job == MRF__PREEMPTED ? "checkpointed"
                      : rc_job                 ? "failed"
                                               : "succeeded",
            .error = rc_job ? mrf_strerror(rc_job) : NULL, /* replaced below */
            .exit_status = mrf__exit_status(rc_job),
            .partitioner = names[s->part],
            .split_why = s->split_why,
            .compression = s->cwhy ? s->cwhy : "off (no shuffle)",
            .ranks = s->size,
            .map_combine = s->mapc,
            .elapsed_s = elapsed,
            .decide_s = s->t_decide,
            .buckets = s->nb_base,
            .sub_buckets = s->hv.nsub,
            .tie_keys = s->range ? s->sp.tie_runs : 0,
            .shuffle_raw = tot[0],
            .shuffle_wire = tot[1],
            .heavy_partial_bytes = tot[2],
            .hv = &s->hv,
            .before = s->before,
            .after = s->after,
            .rk = all,
            .ckpt_dir = s->opt->ckpt_dir,
            .ckpt_written = s->ckst.written,
            .ckpt_bytes = s->ckst.bytes,
            .ckpt_raw_bytes = s->ckst.raw_bytes,
            .ckpt_last_epoch = s->ckst.last_epoch,
            .ckpt_s = s->ckst.seconds,
            .resumed_epoch = s->resumed_epoch,
            .resumed_tasks = s->resumed_tasks,
            .resume_s = s->t_resume,
            .runs = s->opt->stage_runs,
            .n_runs = s->opt->n_stage_runs,
        };
        for (int i = 0; rc_job && i < s->size; i++)
            if (all[i].error[0]) { /* the lowest rank's first error says what went wrong */
                r.error = all[i].error;
                break;
            }
        size_t n = strlen(s->tmpdir ? s->tmpdir : "") + 16;
        char *path = mrf__malloc(n);
        if (!path) {
            rc = mrf__fail(MRF_ENOMEM, "out of memory for the run report");
        } else if (s->opt->report || (rc_job == MRF_OK && s->tmpdir)) {
            snprintf(path, n, "%s/_REPORT.json", s->tmpdir ? s->tmpdir : "");
            rc = mrf__report_write(s->opt->report ? s->opt->report : path, &r);
        }
        mrf__free(path);
        if (rc == MRF_OK && s->opt->metrics)
            rc = mrf__metrics_write(s->opt->metrics, &r);
    }
    mrf__free(all);
    return mrf__st_agree(s, rc);
}

/* ---------------------------------------------------------------- stage -- */

static void make_run_id(stage *s)
{
    if (s->rank == 0) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char ts[32];
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
        struct timespec tv;
        clock_gettime(CLOCK_REALTIME, &tv);
        snprintf(s->run_id, sizeof s->run_id, "%s-%05x%04x", ts, (unsigned)getpid() & 0xfffff,
                 (unsigned)(tv.tv_nsec / 1000) & 0xffff);
    }
    MPI_Bcast(s->run_id, sizeof s->run_id, MPI_CHAR, 0, s->comm);
}

/* The partitioner: --partitioner, else the job's (skew for hash jobs); and
 * whether a key's values may be split over ranks, and why not. */
static int choose_partitioner(stage *s)
{
    const mrf_job_spec *spec = s->spec;
    int p = s->opt->partitioner;
    /* buckets are what the packing deals: with a few per rank it cannot
     * balance (and past the bucket count ranks reduce nothing).  The
     * default is not raised with the rank count by itself: a checkpoint
     * resumes only with the --buckets it was written with. */
    static bool warned; /* once per process (a multi-stage job runs many stages) */
    if (s->rank == 0 && !warned && (uint64_t)s->opt->buckets < 8 * (uint64_t)s->size) {
        warned = true;
        mrf__log(MRF_LOG_WARN,
                 "--buckets %u for %d ranks is fewer than 8 per rank: the reduce cannot be "
                 "balanced%s; give --buckets %llu or more (and the same value when resuming)",
                 s->opt->buckets, s->size,
                 s->opt->buckets < (uint32_t)s->size ? " and some ranks get no keys" : "",
                 16ull * (unsigned long long)s->size);
    }
    if (p == MRF__PART_DEFAULT)
        p = spec->partitioning == MRF_PART_RANGE ? MRF__PART_RANGE : MRF__PART_SKEW;
    if (spec->partitioning == MRF_PART_RANGE && p != MRF__PART_RANGE) {
        if (s->rank == 0)
            mrf__log(MRF_LOG_ERROR,
                     "job '%s' writes globally ordered output: it needs --partitioner range "
                     "(or none)",
                     spec->name);
        return MRF_EUSAGE;
    }
    if (spec->input == MRF__INPUT_KV && p == MRF__PART_SKEW)
        p = MRF__PART_HASH; /* a later stage: no sampling of intermediate data (yet) */
    s->part = p;
    s->range = p == MRF__PART_RANGE;
    s->mapc = spec->combine && s->opt->map_combine;
    bool per_value = (spec->flags & MRF_PER_VALUE) != 0;
    if (s->range) {
        s->split_ok = per_value;
        s->split_why = per_value ? "ties spread over adjacent buckets (the job reduces per value)"
                                 : "ties kept whole: the job reduces a key's values together";
    } else {
        s->split_ok = spec->combine || per_value;
        s->split_why = spec->combine ? "split over ranks, merged with the job's combiner"
                       : per_value   ? "split over ranks (the job reduces per value)"
                                     : "not split: the job has no combiner, so a key's values "
                                       "must all reach one reduce call";
    }
    return MRF_OK;
}

/* DIR/_STAGE of an intermediate stage: what the next run needs to know of
 * it, and what a resumed job reads instead of running it again. */
static int write_stage_file(stage *s)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/_STAGE", s->tmpdir);
    FILE *f = fopen(path, "w");
    if (!f)
        return mrf__fail(MRF_EIO, "cannot create '%s': %s", path, strerror(errno));
    fprintf(f, "mrflow-stage 1\njob %s\nrun %u\n", s->spec->name, s->run_index);
    for (int i = 0; i < MRF_STAGE_SLOTS; i++)
        fprintf(f, "sum%d %a\n", i, s->sums[i]);
    int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    if (fclose(f) != 0 || bad)
        return mrf__fail(MRF_EIO, "writing '%s' failed", path);
    return MRF_OK;
}

static int run_stage(stage *s)
{
    double t0 = MPI_Wtime(), t;
    int rc;
    make_run_id(s);
    mrf__log_context(s->run_id, 0);
    /* before anything big is allocated, so first touch is on our NUMA node */
    mrf__topo_place(s->comm, s->opt->bind, true, &s->place);
    mrf__log(MRF_LOG_DEBUG, "placement: local rank %d of %d, cpuset %s, NUMA %s, bound by %s%s%s",
             s->place.local_rank, s->place.local_size, s->place.cpuset, s->place.numa,
             mrf__bind_how_name(s->place.how), s->place.note[0] ? ": " : "", s->place.note);
    mrf__progress_init(&s->prog, s->opt->progress, s->opt->progress_every, s->rank == 0);
    if ((rc = choose_partitioner(s)))
        goto out;
    if ((rc = mrf__st_agree(s, set_budget(s))))
        goto out;
    s->spec_fp = mrf__st_spec_fingerprint(s->spec);
    s->ckpt = s->opt->ckpt_dir != NULL;
    if (s->ckpt &&
        ((rc = mrf__st_ckpt_begin(s)) || (rc = mrf__st_agree(s, mrf__signals_install()))))
        goto out;
    if ((rc = plan_and_share(s)))
        goto out;
    rc = mrf__spill_open(&s->spill, mrf__spill_dir(s->opt->spill_dir),
                         s->opt->compress == MRF__COMPRESS_OFF ? 0 : s->opt->compress_level,
                         s->opt->compress == MRF__COMPRESS_AUTO,
                         s->opt->corrupt_spill_rank == s->rank);
    s->spill_open = rc == MRF_OK;
    if ((rc = mrf__st_agree(s, rc)))
        goto out;
    if ((rc = mrf__output_begin(s->comm, s->opt->output, s->opt->overwrite, s->run_id, &s->tmpdir)))
        goto out;
    t = MPI_Wtime();
    bool resumed = false;
    if (s->ckpt && (rc = mrf__st_resume(s, &resumed)))
        goto out_with_tmpdir;
    if (!resumed) {
        s->nb_base = s->nb = s->opt->buckets;
        if (s->range && (rc = choose_splitters(s)))
            goto out_with_tmpdir;
        if (s->part == MRF__PART_SKEW && (rc = find_heavy_keys(s)))
            goto out_with_tmpdir;
        if (s->range)
            s->nb_base = s->nb;
        s->nb = s->nb_base + s->hv.nsub;
        if ((rc = mrf__st_agree(s, mrf__st_map_setup(s))))
            goto out_with_tmpdir;
    }
    s->t_decide = MPI_Wtime() - t - s->t_resume;

    if (s->direct) { /* resumed after the shuffle: the reduce input is back */
        s->kv = s->rkv;
        memset(&s->rkv, 0, sizeof s->rkv);
        s->combined = false;
        s->shuffled_ckpt = true;
        goto reduce_phase;
    }
    t = MPI_Wtime();
    double cpu0 = mrf__st_cpu_now();
    rc = map_tasks(s);
    s->prof.map_cpu += mrf__st_cpu_now() - cpu0;
    s->t_map = MPI_Wtime() - t;
    if (s->kv.len)
        mrf__topo_where(s->kv.base, s->kv.len, s->arena_numa, sizeof s->arena_numa);
    else
        mrf__topo_where(s->ct.slots, (s->ct.mask + 1) * sizeof *s->ct.slots, s->arena_numa,
                        sizeof s->arena_numa);
    mrf__log(MRF_LOG_DEBUG, "after map: %zu bytes in use, peak %zu", mrf__mem_in_use(),
             mrf__mem_peak());
    if ((rc = mrf__st_agree(s, rc)))
        goto out_with_tmpdir;
    /* the checkpoint after the map (unless the one resumed from was it) */
    if (s->ckpt && !(resumed && s->resumed_tasks == s->plan.n_tasks) &&
        (rc = mrf__st_take_checkpoint(s, "mapped")))
        goto out_with_tmpdir;
    if (s->preempt) {
        rc = MRF__PREEMPTED;
        goto out_with_tmpdir;
    }
    rc = check_bad_records(s);
    int crc = mrf__badrec_close(&s->bad); /* fsynced before the commit */
    if ((rc = mrf__st_agree(s, rc ? rc : crc)))
        goto out_with_tmpdir;

    t = MPI_Wtime();
    cpu0 = mrf__st_cpu_now();
    rc = mrf__st_exchange(s);
    s->prof.sh_cpu += mrf__st_cpu_now() - cpu0;
    s->t_shuffle = MPI_Wtime() - t;
    mrf__log(MRF_LOG_DEBUG,
             "after shuffle: %zu bytes in use, peak %zu (receive arena %zu, spill buffers "
             "%zu+%zu, %zu sorted runs)",
             mrf__mem_in_use(), mrf__mem_peak(), s->kv.cap, s->spill.rd_cap, s->spill.enc_cap,
             s->n_runs);
    if ((rc = mrf__st_agree(s, rc)))
        goto out_with_tmpdir;
    /* the checkpoint after the shuffle, when --checkpoint-every has passed
     * since the last one (rank 0's clock) */
    if (s->ckpt && s->opt->ckpt_every > 0) {
        int due = MPI_Wtime() - s->ckpt_last >= s->opt->ckpt_every;
        MPI_Bcast(&due, 1, MPI_INT, 0, s->comm);
        if (due && (rc = mrf__st_take_checkpoint_shuffled(s)))
            goto out_with_tmpdir;
    }

reduce_phase:
    mrf__progress_done(&s->prog);
    t = MPI_Wtime();
    double c0 = mrf__st_cpu_now();
    if (s->opt->crash_rank == s->rank && s->opt->crash_phase == MRF__PHASE_REDUCE) {
        mrf__log(MRF_LOG_WARN, "--fault crash: killing myself in the reduce phase");
        raise(SIGKILL);
    }
    mrf__st_test_pause(s, "reduce");
    rc = reduce_local(s);
    s->cpu_reduce += mrf__st_cpu_now() - c0;
    s->prof.red_cpu += mrf__st_cpu_now() - c0;
    s->t_reduce = MPI_Wtime() - t;
    mrf__log(MRF_LOG_DEBUG, "after reduce: %zu bytes in use, peak %zu", mrf__mem_in_use(),
             mrf__mem_peak());
    if ((rc = mrf__st_agree(s, rc))) {
        /* stopped by a signal: the reduce input is whole still; checkpoint
         * it (a failure leaves the previous epoch, after the map, valid) */
        if (rc == MRF__PREEMPTED && s->ckpt && !s->shuffled_ckpt)
            mrf__st_take_checkpoint_shuffled(s);
        goto out_with_tmpdir;
    }
    /* the sums of mrf_stage_add, job-wide; kept with an intermediate stage */
    MPI_Allreduce(MPI_IN_PLACE, s->sums, MRF_STAGE_SLOTS, MPI_DOUBLE, MPI_SUM, s->comm);
    if (s->opt->kv_output && (rc = mrf__st_agree(s, s->rank == 0 ? write_stage_file(s) : MRF_OK)))
        goto out_with_tmpdir;
    if (s->opt->format_hdf5) {
        s->h5.job = s->spec->name;
        s->h5.run_id = s->run_id;
        s->h5.text_format = s->spec->output == MRF_OUTPUT_RAW ? "raw" : "text";
        s->h5.job_fp = s->spec_fp;
        t = MPI_Wtime();
        rc = mrf__output_h5(s->comm, s->tmpdir, &s->h5, &s->bytes_out);
        s->t_reduce += MPI_Wtime() - t;
        if ((rc = mrf__st_agree(s, rc)))
            goto out_with_tmpdir;
    }

    if ((rc = write_report(s, MPI_Wtime() - t0, MRF_OK)))
        goto out_with_tmpdir;
    if (s->rank == 0)
        rc = mrf__output_commit(s->tmpdir, s->opt->output, s->opt->overwrite, s->run_id);
    MPI_Bcast(&rc, 1, MPI_INT, 0, s->comm);
    if (rc)
        goto out_with_tmpdir;
    if (s->ckpt && s->rank == 0) /* they could only resume a finished job */
        mrf__ckpt_remove_all(s->opt->ckpt_dir);
    summary(s, MPI_Wtime() - t0);
    goto out;

out_with_tmpdir:
    if (s->opt->report || s->opt->metrics)
        write_report(s, MPI_Wtime() - t0, rc); /* what is known of the failed run */
    if (s->rank == 0 && rc == MRF_EINPUT) {    /* bad input: its one line said it all */
        mrf__output_discard(s->tmpdir);
    } else if (s->rank == 0 && rc == MRF__PREEMPTED) {
        mrf__output_discard(s->tmpdir);
        mrf__log(MRF_LOG_WARN,
                 "job '%s' stopped on signal %d: %s in '%s'; run the same command again to "
                 "resume (exit status 75)",
                 s->spec->name, mrf__preempted(),
                 s->ckst.written ? "checkpointed"
                                 : "no new checkpoint was needed, the newest valid one is",
                 s->opt->ckpt_dir);
    } else if (s->rank == 0) {
        mrf__output_discard(s->tmpdir);
        mrf__log(MRF_LOG_ERROR, "job '%s' failed; no output was written to '%s'", s->spec->name,
                 s->opt->output);
    }
out:
    mrf__ckpt_close(s->ckr);
    s->ckr = NULL;
    mrf__ckpt_writer_destroy(s->ckw);
    s->ckw = NULL;
    mrf__free(s->done);
    s->done = NULL;
    mrf__badrec_close(&s->bad);
    mrf__progress_end(&s->prog);
    mrf__free(s->tmpdir);
    s->tmpdir = NULL;
    if (s->spill_open)
        mrf__spill_close(&s->spill);
    s->spill_open = false;
    for (size_t i = 0; i < s->n_bruns; i++)
        mrf__free(s->bruns[i].ents);
    mrf__free(s->bruns);
    s->bruns = NULL;
    s->n_bruns = 0;
    mrf__free(s->runs);
    s->runs = NULL;
    mrf__free(s->owner);
    mrf__free(s->order);
    mrf__free(s->dstart);
    mrf__free(s->cur);
    mrf__free(s->sdisp);
    mrf__free(s->scount);
    mrf__free(s->cuts);
    mrf__free(s->cstart);
    mrf__free(s->own_bkt);
    s->own_bkt = NULL;
    s->cuts = NULL;
    s->cstart = NULL;
    mrf__big_free(s->send, s->send_bytes);
    mrf__big_free(s->spare, s->spare_bytes);
    s->spare = NULL;
    mrf__big_free(s->scratch, s->scratch_cap);
    s->owner = NULL;
    s->order = NULL;
    s->dstart = NULL;
    s->cur = NULL;
    s->sdisp = NULL;
    s->scount = NULL;
    s->send = NULL;
    s->scratch = NULL;
    mrf__kvbuf_destroy(&s->rkv);
    mrf__kvbuf_destroy(&s->kv);
    mrf__ctable_destroy(&s->ct);
    mrf__ctable_destroy(&s->tt); /* (map_tasks did, unless a resume skipped it) */
    mrf__kvbuf_destroy(&s->tkv);
    mrf__free(s->bucket_bytes);
    s->bucket_bytes = NULL;
    mrf__free(s->pack_bytes);
    s->pack_bytes = NULL;
    mrf__splitters_free(&s->sp);
    mrf__heavy_free(&s->hv);
    mrf__ctable_destroy(&s->ht);
    mrf__free(s->before);
    mrf__free(s->after);
    s->before = s->after = NULL;
    mrf__plan_free(&s->plan);
    return rc;
}

/* One stage over o's inputs into o's output (run: which run of an
 * iterative stage; prev: the previous run's sums; sums: this run's,
 * job-wide).  Collective. */
int mrf__stage_run(MPI_Comm comm, const mrf__options *o, const mrf_job_spec *spec, unsigned run,
                   const double *prev, double *sums, mrf__stage_fig *fig)
{
    stage s = {.spec = spec, .opt = o, .run_index = run};
    memcpy(s.prev_sums, prev, sizeof s.prev_sums);
    MPI_Comm_dup(comm, &s.comm);
    MPI_Comm_rank(s.comm, &s.rank);
    MPI_Comm_size(s.comm, &s.size);
    double t0 = MPI_Wtime();
    int rc = run_stage(&s);
    memcpy(sums, s.sums, sizeof s.sums);
    if (fig) { /* job-wide figures of the run, for a later run's report */
        uint64_t mine[3] = {s.records_in, s.records_out, s.shuf.bytes_sent}, all[3];
        double t = MPI_Wtime() - t0;
        MPI_Allreduce(mine, all, 3, MPI_UINT64_T, MPI_SUM, s.comm);
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, s.comm);
        memset(fig, 0, sizeof *fig);
        snprintf(fig->name, sizeof fig->name, "%s", spec->name);
        fig->elapsed_s = t;
        fig->records_in = all[0];
        fig->records_out = all[1];
        fig->shuffle_bytes = all[2];
    }
    MPI_Comm_free(&s.comm);
    mrf__topo_close();
    return rc;
}
