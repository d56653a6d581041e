/*
 * internal.h -- declarations shared by mrflow's modules (never installed).
 *
 * Dependency rule: cli -> job -> stage modules (input, partition, shuffle, sort,
 * output) -> kvbuf / combine / mem / log.  A module includes only this header,
 * mrflow.h and system/third-party headers.
 */
#ifndef MRF_INTERNAL_H
#define MRF_INTERNAL_H

#include <mpi.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mrflow.h"

#define MRF_ERRLEN 512
/* Internal status: "another rank failed" (positive, so the MIN over ranks in
 * an agreement always yields the failing rank's own code). */
#define MRF__PEER_FAILED 1
/* Internal status: a preemption signal arrived; the job checkpointed (or
 * kept its last checkpoint) and exits with MRF_EXIT_CHECKPOINTED. */
#define MRF__PREEMPTED (-50)

/* A later stage's input kind (mrf_input_kind is public; this one is not):
 * files of u32 klen, u32 vlen, key, value records, one task per file. */
#define MRF__INPUT_KV 2

/* ---------------------------------------------------------------- mem.c --
 * All engine allocation goes through here so bytes in use are known.
 * mrf__big_* are page-backed (mmap, MADV_HUGEPAGE) for multi-MiB buffers;
 * their size must be passed back on resize and free. */
void *mrf__malloc(size_t n);
void *mrf__calloc(size_t n, size_t size);
void *mrf__realloc(void *p, size_t n);
void mrf__free(void *p);
char *mrf__strdup(const char *s);
void *mrf__big_alloc(size_t n);
/* The same, with every page touched now rather than on first use. */
void *mrf__big_alloc_populated(size_t n);
/* Populated by the kernel in one go (MAP_POPULATE, 4 KiB pages): for a
 * buffer about to be written whole, far cheaper than a fault per page. */
void *mrf__big_alloc_filled(size_t n);
void *mrf__big_resize(void *p, size_t old_n, size_t new_n);
void mrf__big_free(void *p, size_t n);
/* Grows a big buffer (doubling, from 4 KiB) to hold at least need bytes. */
int mrf__big_grow(char **buf, size_t *cap, size_t need);
/* Room for one more element in an array of *cap (used in use): p, or p
 * moved and *cap doubled, or NULL (p still valid) when memory ran out. */
void *mrf__grow_for(void *p, size_t *cap, size_t used, size_t elem);
size_t mrf__mem_in_use(void);
/* The most bytes ever in use at once (as accounted here). */
size_t mrf__mem_peak(void);
/* Testing: make the Nth allocation from now fail (0 = never). */
void mrf__mem_fail_after(uint64_t n);

/* ------------------------------------------------------------- badrec.c --
 * Dead-letter records (see badrec.c): a map task's are kept in buf until
 * the task commits, then appended to DIR/_BAD_RECORDS/part-RANK. */
typedef struct mrf__badrec {
    char *buf;
    size_t len, cap;
    uint64_t n;              /* pending (uncommitted) records */
    int fd;                  /* 0: not open yet */
    char pending_first[512]; /* the pending records' first, described */
    char first[512];         /* the first committed one, described */
} mrf__badrec;
int mrf__badrec_add(mrf__badrec *b, const char *file, uint64_t off, const void *data, size_t len,
                    const char *reason);
void mrf__badrec_drop(mrf__badrec *b);
/* Appends the pending records to dir/_BAD_RECORDS/part-RANK; adds them to *count. */
int mrf__badrec_commit(mrf__badrec *b, const char *dir, int rank, uint64_t *count);
int mrf__badrec_close(mrf__badrec *b);
/* Pending records restored from a checkpoint: n lines, as committed before. */
int mrf__badrec_restore(mrf__badrec *b, const char *lines, size_t len, uint64_t n);

/* ------------------------------------------------------------- report.c --
 * The run report, OUTPUT/_REPORT.json: one JSON document, written by rank 0
 * from figures gathered from every rank. */
#define MRF__ERRMSG 200
/* Where one rank's time went, phase by phase (seconds; the report's
 * "profile").  Each phase has the CPU time of the rank's thread (its wall
 * time less this is waiting: for data, peers, the disk) and parts of its
 * wall time that do not overlap; what the parts leave is barriers,
 * agreement and bookkeeping.  map: read (the task's input), run (the job's
 * map, emits and combining), spill (map output to disk), wait (the
 * scheduler: asking for tasks, serving peers, the end of the map).
 * shuffle: group (map output by destination), pack (copy and compress a
 * round), mpi (the exchange), unpack (decompress, verify, take in).
 * reduce: sort (index and merge), reduce (the job's reduce), write
 * (write(2) of the output), fsync. */
typedef struct mrf__prof {
    double map_cpu, map_read, map_run, map_spill, map_wait;
    double sh_cpu, sh_group, sh_pack, sh_mpi, sh_unpack;
    double red_cpu, red_sort, red_reduce, red_write, red_fsync;
} mrf__prof;

typedef struct mrf__rank_fig { /* one rank's figures (gathered as bytes) */
    char host[64];
    char error[MRF__ERRMSG]; /* the first error this rank logged */
    double map_s, shuffle_s, reduce_s;
    double reduce_cpu_s; /* CPU time combining what arrived, and reducing */
    uint64_t peak_rss, input_bytes, records_mapped, red_in_bytes, red_in_recs, records_out,
        bytes_out, spilled, tasks, stolen, launched, won, bad_records;
    int32_t local_rank, bind_how;
    char cpuset[64], numa[32]; /* placement (topo.c) */
    char arena_numa[32];       /* where the map arena's pages are */
    mrf__prof prof;
} mrf__rank_fig;

struct mrf__heavy;
/* One earlier run of a multi-stage job, job-wide (the report's stage_runs). */
typedef struct mrf__stage_fig {
    char name[64];
    double elapsed_s;
    uint64_t records_in, records_out, shuffle_bytes;
    bool done_before; /* committed by an earlier invocation: figures unknown */
} mrf__stage_fig;

typedef struct mrf__report {
    const char *job, *run_id, *status, *partitioner, *split_why, *compression;
    const char *error; /* a failed job's reason, or NULL */
    int ranks, exit_status;
    bool map_combine;
    double elapsed_s, decide_s;
    uint32_t buckets, sub_buckets, tie_keys;
    uint64_t shuffle_raw, shuffle_wire, heavy_partial_bytes;
    const struct mrf__heavy *hv;
    const struct mrf__bstat *before, *after; /* reduce input per rank, planned */
    const mrf__rank_fig *rk;                 /* per rank, measured */
    /* checkpoints (ckpt_dir NULL: off) */
    const char *ckpt_dir;
    uint64_t ckpt_written, ckpt_bytes, ckpt_raw_bytes, ckpt_last_epoch, resumed_epoch,
        resumed_tasks;
    double ckpt_s, resume_s;
    /* checkpoints left out as not worth their cost; the last one's work and cost */
    uint64_t ckpt_skipped;
    double ckpt_skip_work_s, ckpt_skip_cost_s;
    const mrf__stage_fig *runs; /* a multi-stage job's runs before this one */
    size_t n_runs;
} mrf__report;

/* Progress on rank 0 (--progress): on a terminal one line rewritten in
 * place at most 5 times a second, elsewhere a line every `every` seconds. */
typedef struct mrf__progress {
    bool on, tty;
    double every, t0, last;
    int width; /* of the last line on a terminal */
    int phase; /* of the last line: 1 map, 2 shuffle */
    FILE *out; /* stderr, or the terminal itself (/dev/tty) under a launcher */
} mrf__progress;
void mrf__progress_init(mrf__progress *p, int mode, double every, bool rank0);
void mrf__progress_map(mrf__progress *p, uint64_t done, uint64_t total, uint64_t tasks,
                       uint64_t ntasks, double map_t0);
void mrf__progress_shuffle(mrf__progress *p, unsigned round, unsigned rounds, uint64_t bytes,
                           uint64_t total);
void mrf__progress_done(mrf__progress *p);
void mrf__progress_end(mrf__progress *p);

/* max / mean of n values (1 when they are all 0) */
double mrf__imbalance(const uint64_t *v, size_t n, size_t stride);
/* Both replace path atomically (a temporary beside it, then rename). */
int mrf__report_write(const char *path, const mrf__report *r);
/* The same figures in Prometheus text exposition format (labels: job,
 * stage, rank). */
int mrf__metrics_write(const char *path, const mrf__report *r);

/* ---------------------------------------------------------------- log.c -- */
enum { MRF_LOG_ERROR = 0, MRF_LOG_WARN = 1, MRF_LOG_INFO = 2, MRF_LOG_DEBUG = 3 };
void mrf__log_init(int rank, int level);
void mrf__log_format(bool json);
/* What every following line is tagged with: the run, the stage (-1: none),
 * the map task running (-1: none). */
void mrf__log_context(const char *run_id, int stage);
void mrf__log_task(long task);
/* The first error this rank logged (for the run report), or "". */
const char *mrf__first_error(void);
void mrf__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log an error (always, from the rank that found it) and return code. */
int mrf__fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------- config.c -- */
enum { MRF__COMPRESS_AUTO, MRF__COMPRESS_OFF, MRF__COMPRESS_ZSTD };
/* --partitioner: DEFAULT is the job's (skew for hash jobs, range for range) */
enum { MRF__PART_DEFAULT, MRF__PART_HASH, MRF__PART_SKEW, MRF__PART_RANGE };
/* where --fault crash strikes */
enum { MRF__PHASE_MAP, MRF__PHASE_SHUFFLE, MRF__PHASE_REDUCE, MRF__PHASE_CHECKPOINT };
#define MRF__MIN_MEMORY (16ull << 20)

typedef struct mrf__options {
    char **inputs; /* --input PATH... (borrowed from argv) */
    size_t n_inputs;
    const char *output; /* --output DIR */
    bool overwrite;
    uint64_t task_size;     /* --task-size */
    bool task_size_set;     /* given explicitly; else sized from the input */
    uint32_t buckets;       /* --buckets */
    int partitioner;        /* --partitioner: MRF__PART_* */
    bool map_combine;       /* --map-combine on|off: combine on the mapping rank too */
    uint64_t round_bytes;   /* --round-bytes: shuffle bytes a rank sends per round */
    bool speculate;         /* --speculate on|off */
    int max_backups;        /* --max-backups; 0 = max(1, ranks / 4) */
    int fault_rank;         /* --fault slow:rank=R:factor=F:after=S (testing); -1 = none */
    int fail_rank;          /* --fault fail:rank=R (testing): R fails its first task */
    int corrupt_rank;       /* --fault corrupt:rank=R: R damages a shuffle block it sends */
    int corrupt_spill_rank; /* --fault corrupt-spill:rank=R: R damages a spill block */
    uint64_t memory;        /* --memory per rank; 0 = the node's fair share */
    const char *spill_dir;  /* --spill-dir; NULL = $TMPDIR, else /tmp */
    int compress;           /* MRF__COMPRESS_* */
    int compress_level;
    double fault_factor;
    double fault_after;
    int log_level;
    bool log_json;            /* --log-format json */
    int progress;             /* --progress: 0 off, 1 on, -1 auto (on if stderr is a terminal) */
    double progress_every;    /* --progress-every SECONDS, off a terminal */
    const char *report;       /* --report FILE; NULL = OUTPUT/_REPORT.json */
    const char *metrics;      /* --metrics FILE; NULL = none */
    uint64_t max_bad_records; /* --max-bad-records N */
    bool format_hdf5;         /* --format hdf5: DIR/output.h5 instead of parts */
    const char *ckpt_dir;     /* --checkpoint-dir DIR; NULL = no checkpoints */
    double ckpt_every;        /* --checkpoint-every SECONDS during the map; 0 = none */
    uint64_t ckpt_bytes;      /* --checkpoint-bytes: also when a rank holds this much unsaved */
    bool ckpt_always;         /* --checkpoint-policy always (auto: only those worth their cost) */
    bool no_resume;           /* --no-resume: ignore existing checkpoints */
    bool restart_scratch;     /* --restart-from-scratch: no valid epoch is not an error */
    int crash_rank;           /* --fault crash:rank=R:phase=P (testing); -1 = none */
    int crash_phase;          /* MRF__PHASE_* */
    int bind;                 /* --bind: MRF__BIND_* */
    unsigned iterations;      /* --iterations: most runs of an iterative stage */
    double tol;               /* --tol, passed to spec->iterate */
    bool kv_output;           /* (multi-stage) write intermediate records, not parts */
    const struct mrf__stage_fig *stage_runs; /* (multi-stage) the runs before, for the report */
    size_t n_stage_runs;
    const mrf_job_option *job_options; /* the job's own (spec->options), */
    const char **job_values;           /* and their values (jobopts.c) */
    size_t n_job_options;
    bool quiet;
    bool help;
    bool version;
} mrf__options;

/* Parses "123", "4K", "64M", "1.5G", "2GiB", "10MB" (binary units). */
int mrf__parse_size(const char *s, uint64_t *out);
/* Parses job options (argv[0] skipped), the engine's and those the job
 * declares (decl, or NULL).  On error writes a one-line reason. */
int mrf__parse_options(int argc, char **argv, const mrf_job_option *decl, mrf__options *opt,
                       char *err, size_t errlen);
/* Whether --NAME is one of the engine's options. */
bool mrf__engine_option(const char *name);
/* A job's option declarations: well formed (jobopts.c), none named like an
 * engine option (config.c). */
int mrf__check_job_options(const mrf_job_spec *spec);

/* ------------------------------------------------------------ jobopts.c --
 * A job's own options.  take: when argv[*i] is one of decl's, its value is
 * stored in opt (advancing *i past it) and 1 returned; 0 when it is not
 * one; MRF_EUSAGE with err for a missing value.  finish: defaults, required
 * ones, kinds and checks (MRF_EUSAGE with err).  check_decl: a declaration
 * fit to use (MRF_EINVAL naming the fault).  help: the --help lines. */
int mrf__jobopt_start(const mrf_job_option *decl, mrf__options *opt);
int mrf__jobopt_take(mrf__options *opt, int *i, int argc, char **argv, char *err, size_t errlen);
int mrf__jobopt_finish(mrf__options *opt, char *err, size_t errlen);
int mrf__jobopt_check_decl(const mrf_job_spec *spec);
void mrf__jobopt_help(const mrf_job_spec *spec);
void mrf__options_free(mrf__options *opt);
void mrf__print_run_help(const char *prog, const mrf_job_spec *spec);

/* -------------------------------------------------------------- input.c --
 * A plan: the input files (directories expanded in name order) and the tasks,
 * byte ranges that hold whole records only, or, in a zstd-compressed line
 * file, runs of whole frames, or a whole gzip-compressed line file
 * (zinput.c), or, in an HDF5 dataset, runs of whole rows (h5input.c: off
 * and len count bytes of the rows in their native layout). */
enum { MRF__CODEC_NONE = 0, MRF__CODEC_ZSTD = 1, MRF__CODEC_GZIP = 2, MRF__CODEC_HDF5 = 3 };
typedef struct mrf__task {
    uint32_t file;
    uint32_t codec; /* MRF__CODEC_*: how the file stores its bytes */
    uint64_t off;   /* offset of the task's first byte (decompressed, if compressed) */
    uint64_t len;   /* its bytes (zstd: what its frames declare; gzip: the file's size) */
    uint64_t coff;  /* compressed: the byte offset of its first frame in the file;
                       HDF5: where the dataset's path starts in the input's name */
    uint64_t clen;  /* compressed: its frames' bytes; HDF5: a record's bytes */
} mrf__task;

typedef struct mrf__plan {
    char **paths;
    uint64_t *sizes;
    size_t n_files;
    mrf__task *tasks;
    size_t n_tasks;
    uint64_t total_bytes;
} mrf__plan;

int mrf__plan_files(char *const *inputs, size_t n, mrf__plan *plan, char *err, size_t errlen);
int mrf__plan_tasks(mrf__plan *plan, mrf_input_kind kind, size_t rec_size, uint64_t task_size,
                    char *err, size_t errlen);
/* First record boundary at or after pos in a line file: 0, one past a '\n', or size. */
int mrf__line_boundary(int fd, uint64_t size, uint64_t pos, uint64_t *out);
void mrf__plan_free(mrf__plan *plan);
/* Serialise a plan for MPI_Bcast, and back. */
int mrf__plan_pack(const mrf__plan *plan, char **buf, size_t *len);
int mrf__plan_unpack(const char *buf, size_t len, mrf__plan *plan);
/* Lines in a block of whole lines (the last may lack its '\n'). */
uint64_t mrf__count_lines(const char *p, size_t n);
/* Opens an input file after planning (*fd on success); the message names
 * this rank's host. */
int mrf__input_open(const char *path, const char *doing, int *fd);
/* Read a plain task's bytes into *buf (grown as needed, mrf__big_*). */
int mrf__task_read(const mrf__plan *plan, const mrf__task *t, char **buf, size_t *cap);

/* ------------------------------------------------------------- zinput.c --
 * Compressed line files.  A gzip file is one task (input.c plans it).
 * zstd planning: the frames from their headers,
 * cut into tasks of whole frames of about task_size decompressed bytes,
 * each passed to add (a file whose frames do not declare their sizes is one
 * task); a damaged or truncated frame structure is MRF_EINPUT with err.
 * Reading: a task's lines (split-reader rules: a task after the file's
 * first drops its first partial line and reads on to the end of the line
 * that starts at its end), in pieces of whole lines of about piece bytes,
 * decompressed into *buf (the caller's, mrf__big_*, grown as needed and
 * kept for the next task); len 0 after the last.  zin_open takes fd (the
 * file, open) and closes it, on failure too; mrf__zin_close closes it.   Damaged data fails
 * (mrf__fail) naming the file and the offset. */
typedef int (*mrf__zin_add)(void *ctx, uint32_t file, uint64_t coff, uint64_t clen, uint64_t off,
                            uint64_t len);
int mrf__zin_plan(int fd, const char *path, uint64_t size, uint32_t file, uint64_t task_size,
                  mrf__zin_add add, void *ctx, char *err, size_t errlen);
typedef struct mrf__zin mrf__zin;
int mrf__zin_open(int fd, const char *path, uint64_t size, const mrf__task *t, size_t piece,
                  char **buf, size_t *cap, mrf__zin **z);
int mrf__zin_next(mrf__zin *z, const char **data, size_t *len, uint64_t *offset);
void mrf__zin_close(mrf__zin *z);

/* -------------------------------------------------------------- typed.c --
 * Typed output (spec->key_type, spec->value_type).  check: a declaration
 * fit to use (MRF_EINVAL naming the fault).  vsize: a value's bytes.
 * text: a record's key and value printed (kout room for 32 bytes, vout
 * for 33 a column), or with kout NULL only its sizes checked; typed output
 * is text (spec->output MRF_OUTPUT_TEXT) or HDF5; a record of
 * other sizes is MRF_EINVAL naming the job. */
#define MRF__TYPED_COLUMNS 16 /* value columns at most */
int mrf__typed_check(const mrf_job_spec *spec);
size_t mrf__typed_vsize(const mrf_column *v);
int mrf__typed_text(const mrf_job_spec *spec, const void *k, size_t kl, const void *v, size_t vl,
                    char *kout, size_t *kn, char *vout, size_t *vn);

/* ------------------------------------------------------------ h5input.c --
 * HDF5 datasets as input, "FILE:/PATH".  mrf__h5in_split: where FILE ends
 * in such a name (its ':'), or 0 when it names no dataset of an existing
 * file.  Planning (rank 0): the dataset checked and cut into tasks of whole
 * rows (whole chunks when chunked) passed to add; *rec its row's bytes; a
 * missing file or dataset, an unsupported type or shape, an empty dataset:
 * MRF_EINPUT with err.  Reading: count of the task's rows, every
 * stride-th from its first (count 0: all), into *buf (mrf__big_*, grown as
 * needed), and *type described if NULL (mrf__dtype_free). */
typedef int (*mrf__h5in_add)(void *ctx, uint32_t file, uint64_t coff, uint64_t clen, uint64_t off,
                             uint64_t len);
size_t mrf__h5in_split(const char *input);
int mrf__h5in_plan(const char *input, size_t split, uint32_t file, uint64_t task_size,
                   mrf__h5in_add add, void *ctx, size_t *rec, char *err, size_t errlen);
int mrf__h5in_read(const char *input, const mrf__task *t, uint64_t stride, uint64_t count,
                   char **buf, size_t *cap, mrf_dtype **type);
void mrf__dtype_free(mrf_dtype *type);

/* ------------------------------------------------------------ sharedfs.c --
 * Collective: every rank sees a file rank 0 creates in dir (named with
 * token, e.g. the run id), else MRF_EUSAGE with a message naming the first
 * rank that does not, its host, and `what 'shown'` (e.g. --output 'OUT'). */
int mrf__shared_dir(MPI_Comm comm, const char *dir, const char *token, const char *what,
                    const char *shown);

/* ------------------------------------------------------------ mpistart.c --
 * Before MPI_Init: Open MPI's pml set to ob1 where no fabric hardware exists
 * and nobody chose one (see mpistart.c); MRFLOW_MPI_DEFAULTS=0 turns it off. */
void mrf__mpi_defaults(void);
/* What mrf__mpi_defaults decided, for the debug log (NULL: not Open MPI). */
const char *mrf__mpi_defaults_said(void);

/* -------------------------------------------------------------- sched.c --
 * Dynamic claiming of map tasks and speculative backups (see sched.c). */
#define MRF_SCHED_HIST 16 /* task durations: [0,1) ms, [1,2), [2,4) ... ms */

typedef struct mrf__sched_stats {
    uint64_t tasks_run; /* tasks this rank committed */
    uint64_t stolen;    /* of which claimed from another rank's share */
    uint64_t backups_launched;
    uint64_t backups_won;
    uint64_t discarded; /* copies that lost the commit or were stopped */
    uint64_t requests;  /* scheduler requests this rank sent to others */
    uint64_t served;    /* and answered for others */
    uint64_t hist[MRF_SCHED_HIST];
} mrf__sched_stats;

typedef struct mrf__sched mrf__sched;

/* The rank whose share of total bytes holds the middle of a task that starts
 * `before` bytes into the input: the static dealing, and a task's home. */
int mrf__home_rank(uint64_t total, uint64_t before, uint64_t len, int size);
/* Collective. */
int mrf__sched_create(MPI_Comm comm, const mrf__plan *plan, bool speculate, int max_backups,
                      mrf__sched **out);
/* Collective: waits for the phase's end (every task committed, a stop, a
 * failure), serving the others until no message of the phase is in flight. */
void mrf__sched_destroy(mrf__sched *s);
/* The next task to run (*task = -1 when every task is committed); *backup
 * says it is a speculative copy of a task running elsewhere.  Returns
 * MRF__PEER_FAILED when another rank has failed. */
int mrf__sched_next(mrf__sched *s, long *task, bool *backup);
/* Publishes progress (rate_bps 0: no rate measured yet); true when another
 * copy already committed the task. */
bool mrf__sched_progress(mrf__sched *s, long task, bool backup, uint64_t bytes_done,
                         double rate_bps);
/* True when this copy won the task: its output is the task's output. */
bool mrf__sched_commit(mrf__sched *s, long task, bool backup, uint64_t bytes, double seconds);
/* Asks every rank to leave the phase after its running task (not collective). */
void mrf__sched_stop(mrf__sched *s);
/* This rank left the phase because of a stop. */
bool mrf__sched_stopped(const mrf__sched *s);
/* Serves other ranks' requests (claims, commits, progress of this rank's
 * home tasks): call it at least every few milliseconds while the phase runs. */
void mrf__sched_poke(mrf__sched *s);
/* This rank failed: the others stop waiting for tasks (not collective). */
void mrf__sched_fail(mrf__sched *s);
/* Tasks committed and their input bytes, job-wide (rank 0's counters: on
 * other ranks 0; for the progress line, which rank 0 prints). */
void mrf__sched_global(mrf__sched *s, uint64_t *tasks, uint64_t *bytes);
/* This copy stopped early because another committed. */
void mrf__sched_abandon(mrf__sched *s, long task, bool backup, uint64_t bytes, double seconds);
const mrf__sched_stats *mrf__sched_get_stats(const mrf__sched *s);

/* -------------------------------------------------------------- kvbuf.c --
 * An arena of records laid out back to back, unaligned:
 *
 *   +-----------+----------+----------+---------+-----------+
 *   | bucket u32| klen u32 | vlen u32 | key ... | value ... |
 *   +-----------+----------+----------+---------+-----------+
 *
 * Growth is by mremap, so pointers into it die on append: keep offsets. */
#define MRF_KV_HDR 12u

typedef struct mrf__kvbuf {
    char *base;
    size_t len;
    size_t cap;
    size_t limit; /* capacity growth stops here unless one append needs more (0: none) */
} mrf__kvbuf;

int mrf__kvbuf_reserve(mrf__kvbuf *kv, size_t extra);
/* Appends one record; returns its offset through *off. */
int mrf__kvbuf_append(mrf__kvbuf *kv, uint32_t bucket, const void *key, size_t klen,
                      const void *val, size_t vlen, size_t *off);
void mrf__kvbuf_destroy(mrf__kvbuf *kv);

static inline uint32_t mrf__rd32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline void mrf__wr32(char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static inline uint32_t mrf__rec_bucket(const char *r)
{
    return mrf__rd32(r);
}
static inline uint32_t mrf__rec_klen(const char *r)
{
    return mrf__rd32(r + 4);
}
static inline uint32_t mrf__rec_vlen(const char *r)
{
    return mrf__rd32(r + 8);
}
static inline const char *mrf__rec_key(const char *r)
{
    return r + MRF_KV_HDR;
}
static inline const char *mrf__rec_val(const char *r)
{
    return r + MRF_KV_HDR + mrf__rec_klen(r);
}
static inline size_t mrf__rec_size(const char *r)
{
    return (size_t)MRF_KV_HDR + mrf__rec_klen(r) + mrf__rec_vlen(r);
}
/* Checks that [p, p+len) is a well-formed sequence of records; on success
 * the number of records goes to *n. */
int mrf__kvbuf_check(const char *p, size_t len, size_t *n);

/* ------------------------------------------------------------ combine.c --
 * Open-addressing table that folds values of equal keys together.  A slot
 * is 32 bytes, half a cache line:
 *
 *   +----------+----------------+----------+------------------------------+
 *   | hash u64 | klen|flags u32 | vlen u32 | key+value inline (<= 16 B),   |
 *   |          |                |          | or u64 offset into t->big     |
 *   +----------+----------------+----------+------------------------------+
 *
 * so a lookup of a short key (a word and its 8-byte count) costs one cache
 * miss, not two.  Larger records live in the side arena t->big. */
#define MRF_CS_INLINE 16u

typedef struct mrf__cslot {
    uint64_t hash;
    uint32_t kf; /* klen | MRF_CS_USED | MRF_CS_BIG */
    uint32_t vlen;
    char data[MRF_CS_INLINE];
} mrf__cslot;

#define MRF_CS_HOT 0x80000000u /* in vlen: hit since the last eviction */
#define MRF_CS_VLEN 0x7fffffffu
#define MRF_CS_USED 0x80000000u
#define MRF_CS_BIG 0x40000000u
#define MRF_CS_KLEN 0x3fffffffu

typedef struct mrf__ctable {
    mrf__cslot *slots;
    size_t mask;
    size_t used;
    mrf__kvbuf big;
} mrf__ctable;

typedef void (*mrf__combine_fn)(void *acc, const void *val, size_t len, void *ctx);

/* memcpy of a few bytes without a call (keys and values on the map's hot
 * path are mostly this short): overlapping 8- or 4-byte moves. */
static inline void mrf__copy_small(void *dst, const void *src, size_t n)
{
    char *d = dst;
    const char *s = src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    } else {
        memcpy(d, s, n);
    }
}
/* Map output per bucket: record bytes (header included) and records. */
typedef struct mrf__bstat {
    uint64_t bytes, recs;
} mrf__bstat;
/* Where a drained record goes: its bucket. */
typedef uint32_t (*mrf__bucket_fn)(void *ctx, const void *key, size_t klen, uint64_t h);

int mrf__ctable_init(mrf__ctable *t, size_t min_slots);
void mrf__ctable_destroy(mrf__ctable *t);
static inline void mrf__ctable_prefetch(const mrf__ctable *t, uint64_t h)
{
    __builtin_prefetch(&t->slots[h & t->mask]);
}
/* Empties the table without writing anything out. */
void mrf__ctable_clear(mrf__ctable *t);
/* Adds every entry of src to dst and empties src; with bucket_fn, also
 * counts each src entry as a record of its bucket in st. */
int mrf__ctable_merge(mrf__ctable *dst, mrf__ctable *src, mrf__combine_fn combine, void *ctx,
                      mrf__bucket_fn bucket_fn, void *bctx, mrf__bstat *st);
/* Adds (key, value): folds it into the key's value with combine, or inserts
 * it.  Returns MRF_EINVAL if the key's values differ in length. */
int mrf__ctable_add(mrf__ctable *t, uint64_t h, const void *key, size_t klen, const void *val,
                    size_t vlen, mrf__combine_fn combine, void *ctx);

/* *acc += *val, both 8-byte native-endian unsigned integers at any
 * alignment (mrf_combine_sum_u64's work). */
static inline void mrf__add_u64(void *acc, const void *val)
{
    uint64_t a, v;
    memcpy(&a, acc, sizeof a);
    memcpy(&v, val, sizeof v);
    a += v;
    memcpy(acc, &a, sizeof a);
}

/* Folds val into acc: the library's own combiners without a call. */
static inline void mrf__fold(mrf__combine_fn combine, void *acc, const void *val, size_t vlen,
                             void *ctx)
{
    if (combine == mrf_combine_sum_u64 && vlen == 8)
        mrf__add_u64(acc, val);
    else
        combine(acc, val, vlen, ctx);
}

/* Equality of short keys without a call or a byte loop. */
static inline bool mrf__bytes_eq(const char *a, const char *b, size_t n)
{
    if (n > 16)
        return memcmp(a, b, n) == 0;
    if (n >= 8) { /* two overlapping word compares */
        uint64_t x0, y0, x1, y1;
        memcpy(&x0, a, 8), memcpy(&y0, b, 8);
        memcpy(&x1, a + n - 8, 8), memcpy(&y1, b + n - 8, 8);
        return x0 == y0 && x1 == y1;
    }
    if (n >= 4) {
        uint32_t x0, y0, x1, y1;
        memcpy(&x0, a, 4), memcpy(&y0, b, 4);
        memcpy(&x1, a + n - 4, 4), memcpy(&y1, b + n - 4, 4);
        return x0 == y0 && x1 == y1;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

/* The map's hot path: when a short key (key + value inline in its slot) is
 * in the table, folds the value in and returns true, without a call for
 * the library's own combiners; false sends the caller to mrf__ctable_add
 * (a new key, a long one, or values of another length, which it reports). */
static inline bool mrf__ctable_hit(mrf__ctable *t, uint64_t h, const void *key, size_t klen,
                                   const void *val, size_t vlen, mrf__combine_fn combine, void *ctx)
{
    if (klen + vlen > MRF_CS_INLINE)
        return false;
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        mrf__cslot *s = &t->slots[i];
        if (!s->kf)
            return false;
        if (s->hash != h || s->kf != ((uint32_t)klen | MRF_CS_USED) ||
            (s->vlen & MRF_CS_VLEN) != vlen || !mrf__bytes_eq(s->data, key, klen))
            continue;
        mrf__fold(combine, s->data + klen, val, vlen, ctx);
        s->vlen |= MRF_CS_HOT;
        return true;
    }
}
/* Appends every entry to out as a record (bucket from bucket_fn, counted in
 * st when given) and empties the table. */
int mrf__ctable_drain(mrf__ctable *t, mrf__kvbuf *out, mrf__bucket_fn bucket_fn, void *bctx,
                      mrf__bstat *st);
/* Makes room: appends the entries not hit since the last eviction to out
 * (as drain does) and keeps the others, marked cold again; drains all when
 * three quarters or more were hit. */
int mrf__ctable_evict(mrf__ctable *t, mrf__kvbuf *out, mrf__bucket_fn bucket_fn, void *bctx,
                      mrf__bstat *st);
/* Combines the records of [in, in+len) whose keys repeat into out, using t,
 * an empty table (it is left empty, possibly grown). */
int mrf__combine_records(mrf__ctable *t, const char *in, size_t len, const mrf_job_spec *spec,
                         mrf__kvbuf *out);

/* The hash of a key, for the table and for hash partitioning (XXH3). */
uint64_t mrf__key_hash(const void *key, size_t klen);

/* partition.c is declared in partition.h (included by stage.h) */

/* --------------------------------------------------------------- sort.c -- */
typedef struct mrf__sort_ent {
    uint64_t prefix; /* first 8 key bytes, big-endian, zero-padded */
    uint64_t off;    /* record offset in its buffer */
} mrf__sort_ent;

uint64_t mrf__key_prefix(const void *key, size_t klen);
/* Compares keys bytewise, shorter first on a common prefix. */
int mrf__bytes_cmp(const void *a, size_t alen, const void *b, size_t blen);
/* Sorts ents by (key, value) of the records they point to in base.  tmp holds
 * n entries of scratch.  With cmp, keys are ordered by cmp instead of bytes. */
void mrf__sort_records(mrf__sort_ent *ents, mrf__sort_ent *tmp, size_t n, const char *base,
                       int (*cmp)(const void *, size_t, const void *, size_t));

/* -------------------------------------------------------------- codec.c --
 * Blocks of record bytes: zstd (or stored) with an XXH3 checksum. */
#define MRF_BLOCK_HDR 24u
typedef struct mrf__codec mrf__codec;
/* level 0: store only (decoding still works). */
int mrf__codec_create(int level, mrf__codec **out);
void mrf__codec_destroy(mrf__codec *z);
int mrf__codec_level(const mrf__codec *z);
/* Its zstd decompression context (memory counted by mem.c), for streaming
 * decompression of input files (zinput.c). */
struct ZSTD_DCtx_s;
struct ZSTD_DCtx_s *mrf__codec_dctx(mrf__codec *z);
uint64_t mrf__checksum(const void *p, size_t n);
/* Bare payloads (the shuffle's chunks): pack returns the stored length,
 * < n when compressed, n when stored as is, 0 when it did not fit in cap. */
size_t mrf__pack_bound(size_t raw);
size_t mrf__pack(mrf__codec *z, const void *raw, size_t n, void *out, size_t cap);
int mrf__unpack(mrf__codec *z, const void *stored, size_t stored_len, void *raw, size_t raw_len);
/* Framed blocks (spill runs): header + payload. */
size_t mrf__block_bound(size_t raw);
size_t mrf__block_encode(mrf__codec *z, const void *raw, size_t n, void *out, bool compress);
int mrf__block_header(const void *hdr, uint32_t *raw_len, uint32_t *stored_len);
int mrf__block_decode(mrf__codec *z, const void *hdr, const void *payload, void *raw);

/* -------------------------------------------------------------- spill.c -- */
typedef struct mrf__spill {
    int fd;
    char *dir;
    uint64_t end;                   /* bytes in the file: where the next block goes */
    uint64_t bytes_raw, bytes_disk; /* totals written */
    uint32_t runs;
    mrf__codec *z;
    bool adaptive; /* --compress auto: compress blocks only while it pays */
    bool zon;      /* adaptive: compressing now */
    uint64_t blocks, zblocks;
    /* adaptive's measurements: bytes and seconds of writes, of zstd on
     * sample blocks (and what they came to), of decompression on reads */
    double w_bytes, w_s, c_bytes, c_s, c_out, d_bytes, d_s;
    char *enc, *rd, *wbuf;
    size_t enc_cap, rd_cap, wlen; /* wlen: bytes in wbuf, not yet written */
    bool corrupt;                 /* --fault corrupt-spill: damage the next block */
} mrf__spill;

typedef struct mrf__run {
    uint64_t off, len, records;
} mrf__run;

typedef struct mrf__run_writer {
    mrf__spill *sp;
    char *buf;
    size_t len, cap;
    mrf__run run;
} mrf__run_writer;

typedef struct mrf__run_reader {
    mrf__spill *sp;
    uint64_t pos, end;
    char *raw;
    size_t cap, at, len;
} mrf__run_reader;

typedef struct mrf__bdir_ent {
    uint32_t bucket, recs; /* recs: records of the bucket in this run */
    uint64_t off, len;     /* the bucket's blocks in the spill file */
    uint64_t raw;          /* and the record bytes they hold */
} mrf__bdir_ent;

typedef struct mrf__brun {
    mrf__bdir_ent *ents; /* ascending by bucket */
    size_t n;
    long task;      /* -1: committed; else the running task it belongs to */
    unsigned level; /* merged from this many generations of runs */
    bool saved;     /* its records are in the checkpoint chain already */
} mrf__brun;

const char *mrf__spill_dir(const char *opt_dir);
/* level 0: blocks stored raw; with adaptive, level is used only while a
 * measurement says compressing pays (see spill.c). */
int mrf__spill_open(mrf__spill *sp, const char *dir, int level, bool adaptive, bool corrupt);
void mrf__spill_close(mrf__spill *sp);
/* Writes out what is buffered (runs are flushed when they end). */
int mrf__spill_flush(mrf__spill *sp);
/* The block at `at`: its lengths; then its raw bytes (checked) and the next offset. */
int mrf__spill_peek(mrf__spill *sp, uint64_t at, uint32_t *raw_len, uint32_t *stored_len);
int mrf__spill_read(mrf__spill *sp, uint64_t at, char *raw, uint64_t *next);
/* Reads the blocks in [off, off+len) with one read and decodes them into raw
 * (room for cap bytes); their raw size goes to *raw_len. */
int mrf__spill_read_region(mrf__spill *sp, uint64_t off, uint64_t len, char *raw, uint64_t cap,
                           uint64_t *raw_len);
void mrf__spill_release(mrf__spill *sp, uint64_t off, uint64_t len);
int mrf__runw_begin(mrf__run_writer *w, mrf__spill *sp);
int mrf__runw_add(mrf__run_writer *w, const char *rec);
int mrf__runw_end(mrf__run_writer *w, mrf__run *out);
void mrf__runw_abort(mrf__run_writer *w);
int mrf__runr_open(mrf__run_reader *r, mrf__spill *sp, const mrf__run *run);
/* 1 and the next record (valid until the next call), 0 at the end, or < 0. */
int mrf__runr_next(mrf__run_reader *r, const char **rec);
void mrf__runr_close(mrf__run_reader *r);
/* Writes the records base+offs[i] (grouped by bucket, ascending) as a bucket run. */
int mrf__spill_bucket_run(mrf__spill *sp, const char *base, const uint64_t *offs, size_t n,
                          mrf__brun *out);
const mrf__bdir_ent *mrf__brun_find(const mrf__brun *r, uint32_t bucket);
/* Merges k bucket runs into one (their blocks copied as they are, bucket by
 * bucket) and gives their space back. */
int mrf__spill_merge_bruns(mrf__spill *sp, const mrf__brun *runs, size_t k, mrf__brun *out);

/* k-way merge of sorted record streams, in the order mrf__sort_records gives. */
typedef struct mrf__merge_src {
    /* 1 and the next record, 0 at the end, < 0 on error */
    int (*next)(void *ctx, const char **rec);
    void *ctx;
    const char *cur;
} mrf__merge_src;

typedef struct mrf__merge {
    mrf__merge_src *src;
    size_t *heap, n;
    int (*cmp)(const void *, size_t, const void *, size_t);
} mrf__merge;

/* A merge source over records in memory, in the order of a sorted index:
 * {.next = mrf__sorted_next, .ctx = &a_sorted_src}. */
typedef struct mrf__sorted_src {
    const char *base;
    const mrf__sort_ent *ents;
    size_t i, n;
} mrf__sorted_src;
int mrf__sorted_next(void *ctx, const char **rec);

int mrf__merge_init(mrf__merge *m, mrf__merge_src *src, size_t n,
                    int (*cmp)(const void *, size_t, const void *, size_t));
/* The smallest record (NULL when all are done); valid until the next pop. */
static inline const char *mrf__merge_top(const mrf__merge *m)
{
    return m->n ? m->src[m->heap[0]].cur : NULL;
}
/* Advances past the smallest record. */
int mrf__merge_pop(mrf__merge *m);
void mrf__merge_free(mrf__merge *m);
int mrf__rec_cmp(const char *a, const char *b,
                 int (*cmp)(const void *, size_t, const void *, size_t));

/* ------------------------------------------------------------ shuffle.c -- */
typedef struct mrf__shuffle_stats {
    uint64_t bytes_sent; /* raw record bytes */
    uint64_t wire_sent;  /* after compression */
    uint64_t bytes_recv;
    uint32_t rounds;
    double t_mpi, t_codec;
    double t_pack;   /* filling the rounds (copies) and compressing them */
    double t_unpack; /* decompressing, verifying and delivering them */
} mrf__shuffle_stats;

/* Where a shuffle's data comes from and goes to (job.c). */
typedef struct mrf__shuffle_io {
    /* Appends to out whole records bound for rank d until the next would
     * take the chunk past cap bytes (at least one record when any remain),
     * or instead points *direct at *dlen such bytes already in memory (they
     * must stay put until the next call); *nrec gets the chunk's record
     * count, *more says whether records for d remain. */
    int (*fill)(void *ctx, int d, mrf__kvbuf *out, size_t cap, bool *more, const char **direct,
                size_t *dlen, uint32_t *nrec);
    /* A buffer of at least n bytes for one round's records, or NULL with the
     * error (already reported) in *err. */
    char *(*space)(void *ctx, size_t n, int *err);
    /* The round's n bytes, nrec whole records (as the senders counted and
     * checksummed them), are at p (from space). */
    int (*deliver)(void *ctx, char *p, size_t n, size_t nrec);
    /* Optional: round `round` (from 1) is done; bytes: raw bytes this rank
     * has sent so far. */
    void (*round_done)(void *ctx, unsigned round, uint64_t bytes);
    void *ctx;
} mrf__shuffle_io;

typedef struct mrf__shuffle_opts {
    uint64_t round_bytes; /* most bytes a rank sends (and receives) per round */
    int level;            /* zstd level; 0 = uncompressed */
    bool corrupt;         /* --fault corrupt: damage one chunk this rank sends */
} mrf__shuffle_opts;

/* The most bytes a round carries to one rank (whole records aside). */
uint64_t mrf__shuffle_cap(uint64_t round_bytes, int nranks);
/* Runs rounds until no rank has records left.  Collective over comm. */
int mrf__shuffle(MPI_Comm comm, const mrf__shuffle_io *io, const mrf__shuffle_opts *o,
                 mrf__shuffle_stats *stats);

typedef struct mrf__compress_choice {
    bool on;
    double link_bps, comp_bps, decomp_bps, ratio;
    double cost_off, cost_on; /* seconds per GB moved by one rank */
} mrf__compress_choice;

/* Bytes per second one rank moves to the others in an MPI_Alltoall of about
 * bytes_per_rank (faster of two, slowest rank of each).  Collective. */
double mrf__link_probe(MPI_Comm comm, size_t bytes_per_rank);
/* Measures zstd at level on this rank's sample and the link; decides.  Collective. */
int mrf__compress_choose(MPI_Comm comm, const char *sample, size_t n, int level, size_t probe_bytes,
                         mrf__compress_choice *out);

/* ------------------------------------------------------------- output.c -- */
typedef struct mrf__writer mrf__writer;
/* Rank 0: checks the output name and creates the temporary sibling directory;
 * the name is broadcast.  Collective. */
int mrf__output_begin(MPI_Comm comm, const char *output, bool overwrite, const char *run_id,
                      char **tmpdir);
/* fmt: mrf_output_format, or MRF__OUTPUT_H5STAGE: records staged (u32 klen,
 * u32 vlen, key, value) in DIR/.stage-PART for mrf__output_h5. */
#define MRF__OUTPUT_H5STAGE 100
/* An intermediate stage's output (multi-stage jobs): the same framing in
 * files part-RANK-SEQ of at most MRF__KV_FILE bytes, one map task each. */
#define MRF__OUTPUT_KV 101
#define MRF__KV_FILE (16u << 20)
int mrf__writer_open(const char *dir, int part, int fmt, mrf__writer **w);
/* Records, key bytes and value bytes put so far. */
void mrf__writer_counts(const mrf__writer *w, uint64_t *recs, uint64_t *kbytes, uint64_t *vbytes);
/* Collective: DIR/output.h5 from every rank's staged part (then removed):
 * a group per part, keys and values as byte blobs with offset arrays. */
typedef struct mrf__h5out {
    const char *job, *run_id, *text_format;  /* "text" or "raw": what the parts would be */
    const mrf_column *key_type, *value_type; /* typed output (typed.c), or NULL */
    uint64_t job_fp;
    uint64_t recs, kbytes, vbytes; /* this rank's part */
} mrf__h5out;
int mrf__output_h5(MPI_Comm comm, const char *dir, const mrf__h5out *o, uint64_t *bytes);
/* `mrflow inspect` on an output.h5: its attributes and parts, offsets checked. */
int mrf__output_h5_inspect(const char *path, FILE *out);
int mrf__writer_put(mrf__writer *w, const void *k, size_t kl, const void *v, size_t vl);
/* From now on the writer adds the seconds it spends in write(2) and in
 * fsync(2) to *write_s and *fsync_s. */
void mrf__writer_clock(mrf__writer *w, double *write_s, double *fsync_s);
/* Flushes, fsyncs and closes; returns the bytes written through *bytes. */
int mrf__writer_close(mrf__writer *w, uint64_t *bytes);
/* Where a part stands once closed: bytes in all, the file being written
 * (MRF__OUTPUT_KV: part-RANK-SEQ) and its size, and the counts. */
typedef struct mrf__writer_pos {
    uint64_t written, seq, file_size, recs, kbytes, vbytes;
} mrf__writer_pos;
/* mrf__writer_close, and where the part stands in *pos. */
int mrf__writer_close_at(mrf__writer *w, mrf__writer_pos *pos);
/* Opens the part again to append at *pos (a stopped reduce goes on): the
 * file is cut back to pos's size (bytes written after it are dropped) and
 * later KV files are removed.  An error when the part is shorter. */
int mrf__writer_reopen(const char *dir, int part, int fmt, const mrf__writer_pos *pos,
                       mrf__writer **w);
void mrf__writer_abort(mrf__writer *w);
/* Rank 0 only: marks tmpdir as the parts of a run stopped in its reduce,
 * kept for the resume (a later commit of the same output removes it). */
void mrf__output_mark_stopped(const char *tmpdir, const char *ckpt_dir);
/* Rank 0 only: _SUCCESS in tmpdir, rename it to output (replacing it if
 * overwrite), then remove the folders of stopped runs of the same output. */
int mrf__output_commit(const char *tmpdir, const char *output, bool overwrite, const char *run_id);
/* Rank 0 only: remove the temporary directory and what is in it. */
void mrf__output_discard(const char *tmpdir);
int mrf__remove_tree(const char *path);

/* --------------------------------------------------------------- ckpt.c --
 * Coordinated HDF5 checkpoints (layout and commit protocol: see ckpt.c). */
typedef struct mrf__ckpt_meta {
    char job[64], version[16], run_id[64], phase[16], partitioner[16];
    uint64_t spec_fp, inputs_fp, task_size, tasks, tasks_done, buckets_opt, nb, nb_base,
        map_combine, ranks, epoch, records, raw_bytes, stored_bytes, blocks, bad_records,
        records_in, input_bytes, created;
    uint64_t base_epoch;    /* the epoch whose chain this one adds to; 0: none */
    uint64_t chain_records; /* records in this epoch and its chain */
} mrf__ckpt_meta;

typedef struct mrf__ckpt_stats {
    uint64_t written, bytes, raw_bytes, last_epoch;
    double seconds;
    /* checkpoints left out as not worth their cost; the last one's work it
     * would have saved and what writing and reading it back would have cost */
    uint64_t skipped;
    double skip_work_s, skip_cost_s;
} mrf__ckpt_stats;

typedef struct mrf__ckpt_writer mrf__ckpt_writer;
typedef struct mrf__ckpt_reader mrf__ckpt_reader;
/* One verified block of records of one bucket (kvbuf layout). */
typedef int (*mrf__ckpt_block_fn)(void *ctx, const char *recs, size_t len, uint64_t n);

int mrf__ckpt_writer_create(MPI_Comm comm, const char *spill_dir, mrf__ckpt_writer **out);
void mrf__ckpt_writer_destroy(mrf__ckpt_writer *w);
/* Adds one record; records come bucket by bucket, buckets ascending, unless
 * the writer is set mixed: then blocks hold any buckets (index bucket
 * MRF__CKPT_MIXED), as after the shuffle, where each rank's data is the
 * reduce input of that rank. */
#define MRF__CKPT_MIXED UINT32_MAX
int mrf__ckpt_put(mrf__ckpt_writer *w, const char *rec);
/* Seconds a byte that compressing recs[0, len) for a checkpoint takes,
 * timed on up to 1 MiB of it (0 when len is 0 or it cannot be timed). */
double mrf__ckpt_compress_cost(const char *recs, size_t len);
void mrf__ckpt_set_mixed(mrf__ckpt_writer *w, bool mixed);
/* Adds recs[0, len), whole records of any buckets, as blocks of their own
 * (bucket MRF__CKPT_MIXED), compressed straight from recs. */
int mrf__ckpt_put_span(mrf__ckpt_writer *w, const char *recs, size_t len);
/* Collective: writes DIR/epoch-N.h5 (N = m->epoch; m->base_epoch and
 * m->chain_records of the base set by the caller) with what was put, the
 * task bitmap, the partitioning decisions, the extra datasets (at most
 * MRF__CKPT_BLOBS) and the dead letters, commits it and
 * publishes it as LATEST; older epochs not in keep[] are removed (keep
 * NULL: none is).  crash: --fault crash:phase=checkpoint. */
/* A 1-D byte dataset rank 0 writes into an epoch besides the others
 * (/pack_weights, /reduce); every rank names the same ones. */
typedef struct mrf__ckpt_blob {
    const char *name;
    const void *data; /* rank 0's */
    size_t len;       /* rank 0's; 0: the dataset is left out */
} mrf__ckpt_blob;
#define MRF__CKPT_BLOBS 2
int mrf__ckpt_commit(mrf__ckpt_writer *w, const char *dir, mrf__ckpt_meta *m, const uint8_t *done,
                     size_t done_len, const char *part, size_t part_len,
                     const mrf__ckpt_blob *extra, int n_extra, const char *bad, size_t bad_len,
                     const uint64_t *keep, size_t nkeep, bool crash, mrf__ckpt_stats *st);
/* The reduce's progress in an epoch of phase "reducing" (/reduce, bytes;
 * u64s as the writer stores them): MRF__PROG_MAGIC, the rank count, the
 * fields per rank (MRF__PROG_FIELDS), the length of the output's temporary
 * directory and its path (zero-padded to 8 bytes); then each rank's fields,
 * rank by rank, in this order. */
#define MRF__PROG_MAGIC 0x3173736572676f72ull /* "rogress1" */
enum {
    MRF__PROG_KEYS,      /* keys reduced */
    MRF__PROG_HASH,      /* mrf__checksum of the last of them */
    MRF__PROG_IN_RECS,   /* the rank's reduce input: records */
    MRF__PROG_IN_BYTES,  /* and bytes */
    MRF__PROG_OWNERS,    /* mrf__checksum of the bucket -> rank map (0: none made) */
    MRF__PROG_WRITTEN,   /* mrf__writer_pos: bytes of the part */
    MRF__PROG_SEQ,       /* the file being written */
    MRF__PROG_FILE_SIZE, /* its size */
    MRF__PROG_RECS,      /* records, key bytes, value bytes */
    MRF__PROG_KBYTES,
    MRF__PROG_VBYTES,
    MRF__PROG_SUMS /* MRF_STAGE_SLOTS doubles (mrf_stage_add), as bits */
};
#define MRF__PROG_FIELDS (MRF__PROG_SUMS + MRF_STAGE_SLOTS)
/* Rank 0: creates DIR if needed, checks it is writable, removes files of
 * unfinished writes, and lists up to max epochs, newest first, that LATEST
 * allows.  On a usage error writes the reason to err. */
int mrf__ckpt_prepare(const char *dir, uint64_t *epochs, int max, int *n, char *err, size_t errlen);
/* Collective: opens DIR/epoch-N.h5 and reads its /meta. */
int mrf__ckpt_open(MPI_Comm comm, const char *dir, uint64_t epoch, mrf__ckpt_reader **r,
                   mrf__ckpt_meta *meta);
const char *mrf__ckpt_path(const mrf__ckpt_reader *r);
/* A whole 1-D byte dataset of at most max bytes (not collective). */
int mrf__ckpt_read_bytes(mrf__ckpt_reader *r, const char *name, uint64_t max, char **buf,
                         size_t *len);
/* This rank's share of the blocks (slab -1: an equal part of the data;
 * else all the blocks written by rank `slab`), each verified, handed to fn. */
int mrf__ckpt_load(mrf__ckpt_reader *r, int slab, mrf__ckpt_block_fn fn, void *ctx);
/* Rank 0 gets all the dead letters, the others none. */
int mrf__ckpt_read_bad(mrf__ckpt_reader *r, char **buf, size_t *len);
void mrf__ckpt_close(mrf__ckpt_reader *r);
/* Rank 0, after the output is committed: removes DIR's epochs and LATEST. */
void mrf__ckpt_remove_all(const char *dir);
/* `mrflow inspect`: metadata, sizes per bucket, every block verified. */
int mrf__ckpt_inspect(const char *path, FILE *out);

/* ---------------------------------------------------------------- job.c --
 * One stage (see job.c); driver.c runs a job's stages through it. */
int mrf__stage_run(MPI_Comm comm, const mrf__options *o, const mrf_job_spec *spec, unsigned run,
                   const double *prev, double *sums, mrf__stage_fig *fig);

/* --------------------------------------------------------------- topo.c --
 * Placement (see topo.c): binding of a node's ranks, NUMA-local memory. */
enum { MRF__BIND_AUTO, MRF__BIND_CORE, MRF__BIND_NUMA, MRF__BIND_NONE };   /* --bind */
enum { MRF__BIND_HOW_NONE, MRF__BIND_HOW_LAUNCHER, MRF__BIND_HOW_MRFLOW }; /* who bound */
typedef struct mrf__placement {
    int local_rank, local_size; /* on this node (MPI_COMM_TYPE_SHARED) */
    int how;                    /* MRF__BIND_HOW_* */
    char cpuset[64];            /* PUs the rank may run on, as a list ("0-3,8") */
    char numa[32];              /* their NUMA nodes, as a list */
    char note[160];             /* why unbound, or a warning; "" if none */
} mrf__placement;
/* Reads (and with do_bind, makes) this rank's binding for --bind mode;
 * never fails a job: what went wrong is in out->note and warned once per
 * job.  Collective over comm. */
int mrf__topo_place(MPI_Comm comm, int mode, bool do_bind, mrf__placement *out);
/* The NUMA nodes holding buf's pages (the first 64 MiB), as a list, or "?". */
void mrf__topo_where(const void *buf, size_t len, char *out, size_t n);
void mrf__topo_close(void);
const char *mrf__bind_how_name(int how);
/* `mrflow topo`: the placement --bind mode gives nlocal ranks on this node. */
int mrf__topo_preview(int mode, int nlocal, FILE *f);

/* ------------------------------------------------------------ signals.c --
 * Preemption: SIGUSR1, SIGUSR2 and SIGTERM set a flag (see signals.c). */
int mrf__signals_install(void);
void mrf__signals_restore(void);
/* The signal received (0: none). */
int mrf__preempted(void);
void mrf__preempt_reset(void);

/* ---------------------------------------------------------------- job.c -- */
int mrf__exit_status(int rc);

#endif /* MRF_INTERNAL_H */
