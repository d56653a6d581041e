/*
 * stage.h -- one stage's state, shared by the stage's own files: job.c
 * (the driver), stage.c, jobsample.c, jobmap.c, jobshuffle.c, jobreduce.c,
 * jobreport.c and jobckpt.c.  Private to them: the engine's modules below
 * (input, partition, shuffle, sort, spill, ...) never see it.
 */
#ifndef MRF_STAGE_H
#define MRF_STAGE_H

#include "internal.h"
#include "partition.h"

/* A rank keeps at most this many distinct keys in its map-side combining
 * table (32-byte slots at load <= 0.7: at most 128 MiB); past it the table is
 * drained into the map arena and starts afresh, and the reducing side
 * combines what repeats. */
#define CTABLE_MAX_KEYS (1u << 21)

/* Map-side emits into the combining table go through a ring of EMIT_RING
 * pending pairs: a pair's home slot is prefetched when it is emitted and the
 * pair is folded in EMIT_RING emits later, so about that many cache misses
 * are in flight at any time instead of one.  With ~1 M distinct keys the
 * table is far larger than the caches; this halves the cost of a word.
 * Pairs longer than EMIT_INLINE bytes skip the ring (order does not matter:
 * a combiner is associative and commutative). */
#define EMIT_RING 16
#define EMIT_INLINE 48

typedef struct pending {
    uint64_t h;
    uint32_t klen, vlen;
    char data[EMIT_INLINE];
} pending;

struct mrf_emitter {
    int (*fn)(mrf_emitter *e, const void *k, size_t kl, const void *v, size_t vl);
    int (*reject)(mrf_emitter *e, const char *why); /* map's only */
    void *state;
    int rc;
    const double *prev;             /* the previous stage run's sums (mrf_stage_sum), or NULL */
    double *add;                    /* reduce's: this run's sums (mrf_stage_add) */
    unsigned run;                   /* which run of its stage */
    const struct mrf__options *opt; /* the job's options (mrf_option) */
};

struct mrf_values {
    const char *base;
    const mrf__sort_ent *ents;
    size_t i, end; /* next entry, one past the last of this key */
    uint64_t count;
    /* streamed from a k-way merge (the key's values may not fit in memory) */
    mrf__merge *m;
    const char *key;
    size_t klen;
    int (*cmp)(const void *, size_t, const void *, size_t);
    char *vbuf;
    size_t vcap;
    bool done;
    int rc;
};

/* A chunk of the send buffer: whole records, at most one round's worth. */
typedef struct chunk_cut {
    uint64_t len;
    uint32_t recs;
} chunk_cut;

/* A send cursor: where the records bound for one rank continue. */
typedef struct cursor {
    uint32_t bi;   /* index into order[] (this rank's buckets) */
    uint32_t src;  /* 0: the map arena; 1 + i: bucket run i */
    uint64_t pos;  /* runs: file offset (0: not started) */
    uint64_t sent; /* bytes of send[sdisp[d] ...] handed over */
    size_t chunk;  /* in memory: the next of the rank's chunk cuts */
} cursor;

typedef struct stage {
    MPI_Comm comm;
    int rank, size;
    const mrf_job_spec *spec;
    const mrf__options *opt;
    char run_id[64];
    mrf__plan plan;
    size_t rec_size;  /* fixed-size records: the spec's, or the datasets' elements' */
    bool typed;       /* reduce emits typed output (typed.c) */
    mrf_dtype *dtype; /* datasets: the element's type, once a task was read */
    char *tmpdir;
    bool range;
    int part;         /* MRF__PART_HASH, _SKEW or _RANGE */
    bool mapc;        /* the combiner runs on the mapping rank too */
    bool split_ok;    /* a key's values may go to several ranks */
    bool heavy_merge; /* split keys' partial results must be merged */
    const char *split_why;
    uint32_t nb_base; /* hash (or range) buckets; nb adds heavy keys' sub-buckets */
    uint32_t nb;
    mrf__splitters sp;
    mrf__heavy hv;
    uint64_t rr;    /* deals a heavy key's records (or a tie's) over its buckets */
    mrf__ctable ht; /* reducing side: heavy keys' partial results */
    uint64_t sample_weight;
    mrf__kvbuf kv;  /* map output, then (reused) shuffle input */
    mrf__ctable ct; /* the rank's combined map output */
    mrf__ctable tt; /* the running task's, merged into ct when it commits */
    mrf__kvbuf tkv; /* the task table's overflow, until it commits */
    mrf__sched *sched;
    mrf__sched_stats sst;
    double map_t0;
    size_t ct_max_keys;
    pending q[EMIT_RING];
    unsigned qhead, nq;
    mrf__bstat *bucket_bytes; /* bytes and records per bucket in this rank's map output */
    mrf__bstat *pack_bytes;   /* what buckets are packed by: see keep_task */
    mrf__writer *out;
    /* the memory budget (see set_budget) */
    uint64_t budget;
    size_t map_cap, map_rec_cap, map_recs; /* map arena: bytes, records before a spill */
    size_t big_cap;                        /* combining table's side arena, bytes */
    size_t task_kv_start;                  /* the running task's records in kv */
    long cur_task;
    bool task_cut;      /* the running task is abandoned: a signal came when it had to spill */
    bool spill_paused;  /* MRFLOW_TEST_PAUSE=map-spill was offered (once per rank) */
    bool rspill_paused; /* ... and shuffle-spill */
    mrf__spill spill;
    bool spill_open;
    mrf__brun *bruns; /* map-side bucket runs */
    size_t n_bruns, bruns_cap;
    /* the exchange */
    int32_t *owner;
    uint32_t *order;  /* buckets by owning rank */
    uint64_t *dstart; /* order[dstart[d] .. dstart[d+1]) are rank d's */
    cursor *cur;
    char *send; /* the arena's records grouped by destination rank */
    size_t send_bytes;
    uint64_t own_bytes; /* records kept in place for this rank (no combiner) */
    uint64_t *own_bkt;  /* range partitioning: their bytes per bucket */
    char *spare;        /* the send buffer's pages after the shuffle, for the sort index */
    size_t spare_bytes;
    uint64_t *sdisp, *scount;
    chunk_cut *cuts; /* rank d's chunks: cuts[cstart[d] .. cstart[d+1]) */
    size_t *cstart;
    uint64_t map_spill_end; /* the map side's runs lie in [0, this) of the spill file */
    mrf__kvbuf rkv;         /* reducing side: received records */
    size_t rkv_recs, red_cap, red_rec_cap;
    char *scratch;
    size_t scratch_cap;
    mrf__run *runs; /* reducing side: sorted runs */
    size_t n_runs, runs_cap;
    bool combined; /* kv's records are already combined */
    uint64_t round_bytes;
    int level; /* zstd level for the shuffle; 0 = off */
    mrf__compress_choice cc;
    const char *cwhy;
    /* figures for the summary */
    uint64_t my_input_bytes, records_in, records_out, bytes_out;
    uint64_t map_spilled, red_spilled, merge_passes;
    mrf__shuffle_stats shuf;
    double t_map, t_shuffle, t_reduce, t_rounds, t_decide;
    /* partitioning figures: reduce input per rank as planned under plain
     * hashing (before) and under the chosen packing (after), in bytes and
     * records; and as delivered (red_in) */
    mrf__bstat *before, *after;
    uint64_t red_in_bytes, red_in_recs, heavy_partials, bad_records;
    double cpu_reduce; /* CPU seconds receiving (combining) and reducing */
    mrf__prof prof;    /* where the time went (the report's "profile") */
    mrf__progress prog;
    mrf__badrec bad;           /* dead-letter records (badrec.c) */
    const mrf_record *cur_rec; /* the record being mapped */
    uint64_t out_bytes;        /* what this rank sends in the shuffle */
    unsigned est_rounds;
    unsigned shuf_rounds; /* shuffle rounds done */
    /* checkpoints (ckpt.c) */
    bool ckpt;         /* --checkpoint-dir given */
    uint8_t *done;     /* bit t: map task t of the plan committed */
    size_t done_len;   /* bytes */
    uint64_t n_done;   /* tasks done */
    long *tmap;        /* the scheduler's task index -> the plan's */
    bool stop_sent;    /* this rank asked the scheduler to stop */
    int mid_pause;     /* testing: 1 pause mid-task, 2 mid-task after a spill, 0 not (again) */
    bool preempt;      /* ranks agreed a preemption signal came */
    double ckpt_last;  /* MPI_Wtime of the last checkpoint (or of the map's start) */
    bool map_ckpt_off; /* map output is not worth a checkpoint (jobckpt.c, ckpt_worth) */
    uint64_t epoch;    /* the next epoch to write */
    /* incremental checkpoints: what the chain of epochs holds already */
    size_t ck_mark;            /* the map arena's bytes [0, ck_mark) are in it */
    uint64_t unsaved_spilled;  /* map output spilled since the last checkpoint, bytes */
    uint64_t *chain;           /* the epochs of the chain, oldest first (newest: the base of */
    size_t n_chain, chain_cap; /* the next checkpoint) */
    uint64_t chain_records;    /* records in them */
    uint64_t chain_tasks;      /* map tasks done as of the newest */
    mrf__ckpt_writer *ckw;
    mrf__ckpt_stats ckst;
    uint64_t cands[8]; /* epochs to resume from, newest first */
    int ncands, ci;
    mrf__ckpt_reader *ckr;  /* the one open */
    mrf__ckpt_meta ckmeta;  /* and its /meta */
    uint64_t resumed_epoch; /* 0: started afresh */
    uint64_t resumed_tasks;
    double t_resume; /* seconds reading the checkpoint */
    uint64_t inputs_fp, spec_fp;
    uint64_t task_size; /* the plan's */
    mrf__h5out h5;      /* --format hdf5: this rank's part */
    bool direct;        /* resumed after the shuffle on as many ranks: straight to the reduce */
    bool tails_done;    /* the input's trailing partial records are set aside already */
    bool shuffled_ckpt; /* a checkpoint holds this reduce input */
    /* the reduce's progress (a stop in the reduce records it; a resume on as
     * many ranks continues the part): keys reduced, this run's and those of
     * the run continued; keys to pass over and the hash of the last of them;
     * the hash of the last key reduced; the reduce input records expected */
    uint64_t red_keys, red_skip, red_skip_hash, red_last_hash, red_in_expect, red_in_expect_bytes,
        red_owners_expect;
    char *red_tmpdir;        /* the stopped run's output directory, continued */
    mrf__writer_pos red_pos; /* where the part stands: at the stop, or where it goes on */
    bool red_continue;       /* the part is continued from red_pos (red_skip keys done) */
    bool red_saved;          /* a checkpoint holds the reduce's progress: the part stays */
    bool pack_given;         /* the packing weights came with the checkpoint resumed from */
    mrf__placement place;    /* where this rank runs (topo.c) */
    /* multi-stage jobs (run_job) */
    unsigned run_index;                /* which run of an iterative stage */
    double prev_sums[MRF_STAGE_SLOTS]; /* the previous run's job-wide sums */
    double sums[MRF_STAGE_SLOTS];      /* this rank's mrf_stage_add, then job-wide */
    char arena_numa[32];               /* NUMA nodes of the map output's pages, after the map */
} stage;

/*
 * The stage's modules.  Calls go one way: job.c, the driver, calls each of
 * them in phase order; jobckpt.c loads a checkpoint through jobmap.c's and
 * jobshuffle.c's entry points; jobshuffle.c logs through jobreport.c; no
 * module calls the driver, and every one may call stage.c.
 */

/* stage.c: helpers that call nothing of the stage's own */
int mrf__st_agree(stage *s, int rc); /* every rank's status agreed (collective) */
double mrf__st_cpu_now(void);        /* this thread's CPU seconds */
void mrf__st_test_pause(stage *s, const char *phase);

/* jobsample.c: decisions from a sample of the input, before the map (collective) */
int mrf__st_find_heavy_keys(stage *s);
int mrf__st_choose_splitters(stage *s);

/* jobmap.c: the map phase (collective but map_setup and map_reset); the
 * driver takes the checkpoints between rounds */
int mrf__st_map_setup(stage *s);
void mrf__st_map_reset(stage *s);
void mrf__st_map_begin(stage *s);
int mrf__st_map_round(stage *s, bool *more);
int mrf__st_map_end(stage *s, int rc);
int mrf__st_check_bad_records(stage *s);
int mrf__st_spill_map(stage *s);
uint64_t mrf__st_unsaved_bytes(const stage *s); /* map output no checkpoint holds */
int mrf__st_drain_table_how(stage *s, bool all);

/* jobshuffle.c: the shuffle (collective), and the reducing side's buffers */
int mrf__st_exchange(stage *s);
int mrf__st_spill_sorted(stage *s, bool stoppable);
void mrf__st_size_reduce_side(stage *s);

/* jobreduce.c: the reduce (collective at its end) */
int mrf__st_reduce(stage *s);

/* jobreport.c: the run summary, the partitioning log, the report */
void mrf__st_summary(stage *s, double elapsed);
void mrf__st_log_partitioning(const stage *s);
int mrf__st_write_report(stage *s, double elapsed, int rc_job);

/* jobckpt.c: checkpoints, their fingerprints, resume */
uint64_t mrf__st_spec_fingerprint(const mrf_job_spec *spec);
int mrf__st_ckpt_begin(stage *s);
int mrf__st_resume(stage *s, bool *resumed);
int mrf__st_take_checkpoint(stage *s, const char *phase);
int mrf__st_take_checkpoint_shuffled(stage *s);
int mrf__st_take_checkpoint_reducing(stage *s);
int mrf__st_continue_reduce(stage *s);

/* A task's home: the rank whose share of the bytes holds its middle.  It
 * maps the task unless another rank steals it (sched.c). */
static inline bool mrf__st_my_task(const stage *s, uint64_t before, uint64_t len)
{
    return mrf__home_rank(s->plan.total_bytes, before, len, s->size) == s->rank;
}

/* A key's bucket (h: its hash; unused by range partitioning).  A heavy
 * key's records, and a range tie's where the job allows, are dealt round
 * robin over the key's buckets. */
static inline uint32_t mrf__st_key_bucket(stage *s, const void *key, size_t klen, uint64_t h)
{
    if (s->range) {
        uint32_t span, b = mrf__range_bucket_span(&s->sp, key, klen, s->spec->key_compare, &span);
        return span > 1 && s->split_ok ? b + (uint32_t)(s->rr++ % span) : b;
    }
    uint32_t b = mrf__hash_bucket(h, s->nb_base);
    return s->hv.n ? mrf__heavy_deal(&s->hv, h, b, s->nb_base) : b;
}

/* The error of a failed mrf__ctable_add, said once for both sides. */
static inline int mrf__st_table_error(const stage *s, int rc)
{
    if (rc == MRF_EINVAL)
        return mrf__fail(rc,
                         "job '%s': values of one key have different lengths; a job with a "
                         "combiner must emit values of one length per key",
                         s->spec->name);
    return mrf__fail(rc, "out of memory in the combining table");
}

/* Sorts the index of the n records in base[0, len) by key (then value):
 * ents gets their offsets in order; tmp is scratch of n entries. */
static inline void mrf__st_sort_index(const stage *s, const char *base, size_t len,
                                      mrf__sort_ent *ents, mrf__sort_ent *tmp, size_t n)
{
    size_t i = 0;
    for (size_t at = 0; at < len && i < n; at += mrf__rec_size(base + at), i++) {
        ents[i].off = at;
        ents[i].prefix = mrf__key_prefix(mrf__rec_key(base + at), mrf__rec_klen(base + at));
    }
    mrf__sort_records(ents, tmp, n, base, s->spec->key_compare);
}

#endif
