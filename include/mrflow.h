/*
 * mrflow.h -- the whole public API of mrflow, an MPI map-shuffle-reduce engine.
 *
 * A job is a table of callbacks (mrf_job_spec).  The engine owns every buffer:
 * records handed to map, keys and values handed to reduce, and everything a
 * callback emits are copied or consumed before the callback returns, so a
 * callback must not keep pointers it was given.
 *
 * A user program is one C file with a spec and a main():
 *
 *     int main(int argc, char **argv) { return mrf_main(argc, argv, &my_spec); }
 *
 * It then accepts the same options as `mrflow run JOB` (--input, --output, ...).
 */
#ifndef MRFLOW_H
#define MRFLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(MRF_BUILDING)
#define MRF_EXPORT __attribute__((visibility("default")))
#else
#define MRF_EXPORT
#endif

#define MRF_VERSION_MAJOR 0
#define MRF_VERSION_MINOR 1
#define MRF_VERSION_PATCH 0

/* Status codes: 0 is success, failures are negative. */
enum {
    MRF_OK = 0,
    MRF_EINVAL = -1,   /* a bad argument from the caller or a callback */
    MRF_ENOMEM = -2,   /* an allocation failed */
    MRF_EIO = -3,      /* a read or write failed */
    MRF_EMPI = -4,     /* an MPI call failed */
    MRF_EUSAGE = -5,   /* bad command line (exit status 2) */
    MRF_EINPUT = -6,   /* bad or missing input (exit status 2) */
    MRF_EEXIST = -7,   /* the output exists and --overwrite was not given (exit 2) */
    MRF_EINTERNAL = -8 /* a broken invariant: a bug in mrflow */
};

/* Exit statuses of mrf_main() and of the mrflow command. */
enum { MRF_EXIT_OK = 0, MRF_EXIT_FAILED = 1, MRF_EXIT_USAGE = 2, MRF_EXIT_CHECKPOINTED = 75 };

/* How input files are cut into records. */
typedef enum {
    MRF_INPUT_LINES = 0,   /* records end at '\n' (not included); the last may lack it */
    MRF_INPUT_RECORDS = 1, /* fixed-size records of spec->record_size bytes */
    /* Elements of HDF5 datasets, `--input FILE.h5:/PATH/TO/DATASET`: a
     * 1-D dataset's elements or a 2-D dataset's rows, each one record in
     * the native layout of the dataset's type (see mrf_record_field);
     * in->offset is its index (row).  spec->record_size is ignored; the
     * datasets of one job must have the same element size.  (2 is the
     * engine's own, for a later stage's input.) */
    MRF_INPUT_DATASET = 3
} mrf_input_kind;

/* How keys are assigned to reducing ranks. */
typedef enum {
    MRF_PART_HASH = 0, /* XXH3 of the key; output parts are each sorted */
    MRF_PART_RANGE = 1 /* splitters sampled from the input; parts are globally ordered */
} mrf_partitioning;

/* What reduce's emits become in the output parts. */
typedef enum {
    MRF_OUTPUT_TEXT = 0, /* key '\t' value '\n' */
    MRF_OUTPUT_RAW = 1   /* key bytes then value bytes, nothing between */
} mrf_output_format;

typedef struct mrf_dtype mrf_dtype; /* opaque: a dataset's element type */

/* One input record, valid only during the map call.  In the first stage
 * it is a line or a fixed-size record of an input file, or an element of
 * an HDF5 dataset (key NULL, klen 0).
 * In a later stage it is one record the previous stage's reduce emitted:
 * key/klen its key, data/len its value (file and offset then name where
 * the engine kept it, for messages only). */
typedef struct mrf_record {
    const void *data;
    size_t len;
    const char *file; /* path of the input file it came from (datasets: FILE:/PATH) */
    uint64_t offset;  /* byte offset of the record in that file (datasets: its index) */
    const void *key;  /* later stages: the previous stage's key */
    size_t klen;
    const mrf_dtype *type; /* datasets: the element's type; else NULL */
} mrf_record;

/* A field of a dataset's element: where its bytes are in in->data, how
 * many, and what they hold (native byte order). */
enum { MRF_FIELD_OTHER = 0, MRF_FIELD_INT = 1, MRF_FIELD_UINT = 2, MRF_FIELD_FLOAT = 3 };
typedef struct mrf_field {
    size_t offset;
    size_t size; /* 1, 2, 4 or 8 for numbers */
    int cls;     /* MRF_FIELD_*: signed or unsigned integer, IEEE float, other */
} mrf_field;

/*
 * From map, for a record of a dataset: the top-level field NAME of its
 * compound element, or with NAME NULL the element itself (a number; in a
 * 2-D dataset's row, its first column: see mrf_record_columns).  Look a
 * field up once (on the first record) and keep it: every record of a job
 * has the same layout.  Returns 0, MRF_EINPUT when the element has no such
 * field, MRF_EINVAL when the record is not a dataset's (or NAME is NULL for
 * a compound).  Not collective.
 */
MRF_EXPORT int mrf_record_field(const mrf_record *in, const char *name, mrf_field *out);
/* Elements in a dataset's record: 1 in a 1-D dataset, the row's length in a
 * 2-D one (element j, and its fields, start j * in->len / columns bytes
 * further); 0 for a record that is not a dataset's. */
MRF_EXPORT size_t mrf_record_columns(const mrf_record *in);
/* The field's value as a double (integers over 2^53 are rounded); NaN when
 * it is not a number. */
MRF_EXPORT double mrf_field_double(const mrf_record *in, const mrf_field *f);
/* The field's value as an int64_t: 0, or MRF_EINVAL when it is not an
 * integer or is an unsigned one over INT64_MAX. */
MRF_EXPORT int mrf_field_int64(const mrf_record *in, const mrf_field *f, int64_t *out);

typedef struct mrf_emitter mrf_emitter; /* opaque: where emits go */
typedef struct mrf_values mrf_values;   /* opaque: the values of one key */

/*
 * Emits one key/value pair.  From map it enters the shuffle (combined first if
 * the job has a combiner); from reduce it becomes an output record.  The bytes
 * are copied.  Keys and values may be up to 2^31 - 1 bytes each.
 * Returns 0, or a negative MRF_E* code (the engine stops the job; the callback
 * may simply return).  Not collective.
 */
MRF_EXPORT int mrf_emit(mrf_emitter *out, const void *key, size_t klen, const void *val,
                        size_t vlen);

/*
 * Steps through the values of the key being reduced.  Returns 1 and sets *val
 * and *len to the next value, or 0 when there are no more.  The value bytes
 * stay valid until the next call (a key's values may be streamed from disk:
 * copy what you keep).  Not collective.
 */
MRF_EXPORT int mrf_values_next(mrf_values *vals, const void **val, size_t *len);

/*
 * From map only: sets the record being mapped aside as malformed, with a
 * short reason.  It goes to DIR/_BAD_RECORDS/ with its file and byte offset
 * and is counted in the run report; past --max-bad-records (default 0) such
 * records fail the job (exit status 2).  Emit nothing for it.  Returns 0,
 * or MRF_EINVAL outside map.  Not collective.
 */
MRF_EXPORT int mrf_reject(mrf_emitter *out, const char *reason);

/* From map or reduce: fails the job with reason (the run's error names it;
 * exit status 1), e.g. when a callback runs out of memory.  Later emits
 * return an error.  Returns MRF_EINVAL.  Not collective. */
MRF_EXPORT int mrf_fail(mrf_emitter *out, const char *reason);
/* The same for input that does not fit the job or its options (a field a
 * job option names is missing from the dataset, say): exit status 2, as
 * for a bad --input.  Returns MRF_EINPUT.  Not collective. */
MRF_EXPORT int mrf_fail_input(mrf_emitter *out, const char *reason);

/* Number of values of the key being reduced, or MRF_COUNT_UNKNOWN when they
 * are streamed from spilled runs and not counted ahead. */
#define MRF_COUNT_UNKNOWN UINT64_MAX
MRF_EXPORT uint64_t mrf_values_count(const mrf_values *vals);

/*
 * A job's own option, declared in spec->options: an array ended by an
 * entry whose name is NULL.  `mrflow run JOB --help` lists them after the
 * engine's; a value that is not of its kind, fails its check, or is
 * missing for an option without a default is exit status 2 before the job
 * starts.  A name may not be one of the engine's options.
 */
typedef enum {
    MRF_OPTION_STRING = 0,
    MRF_OPTION_INT = 1,   /* a decimal int64 */
    MRF_OPTION_DOUBLE = 2 /* a finite number (strtod's syntax) */
} mrf_option_kind;

typedef struct mrf_job_option {
    const char *name; /* "bins": given as --bins N or --bins=N */
    mrf_option_kind kind;
    const char *value; /* the value's name in --help ("N"); NULL: VALUE */
    const char *help;  /* one line */
    const char *dflt;  /* the value when not given; NULL: it must be given */
    /* optional: returns 0 for a good value, else writes why into err */
    int (*check)(const char *value, char *err, size_t errlen);
} mrf_job_option;

/* From map or reduce: the value of the job's option NAME (as given, or its
 * default), or NULL when it has none or the job declares no such option.
 * Options belong to the whole job: a later stage reads the first stage's.
 * Not collective. */
MRF_EXPORT const char *mrf_option(const mrf_emitter *out, const char *name);
/* The same parsed as its kind declares (0 when there is no value). */
MRF_EXPORT int64_t mrf_option_int(const mrf_emitter *out, const char *name);
MRF_EXPORT double mrf_option_double(const mrf_emitter *out, const char *name);

/*
 * Typed output.  A job whose reduce emits numbers in binary declares them:
 * spec->key_type one column (the emitted key is exactly its bytes) and
 * spec->value_type an array of columns ended by one whose name is NULL (the
 * emitted value is their bytes packed in order, native byte order, no
 * padding).  The engine then prints them (`--format text`: the key, then
 * each value, separated by tabs; integers in decimal, floats with %.17g) or
 * writes typed HDF5 datasets (`--format hdf5`: keys and values of each part
 * as numpy reads them: f['part-00000/keys'][:], values a compound of the
 * columns, or the one column's type).  Declared on the stage whose reduce
 * writes the job's output.
 */
typedef struct mrf_column {
    const char *name; /* the HDF5 member's name */
    int cls;          /* MRF_FIELD_INT, MRF_FIELD_UINT (1, 2, 4, 8 bytes), MRF_FIELD_FLOAT (4, 8) */
    size_t size;
} mrf_column;

/*
 * A job.  map and reduce are required; combine is optional.
 *
 * combine(acc, val, len, ctx) folds one value into an accumulated value of the
 * same key, in place.  Every value of a key must then have the same length.
 * Neither acc nor val is aligned: copy a struct in and out with memcpy.
 * Declaring a combiner says the reduction is associative and commutative: the
 * engine may apply it on the mapping rank, on the reducing rank, or both, and
 * reduce then sees one or more already-combined values.
 *
 * A key that holds a large share of the data is split over several ranks
 * when the job has a combiner: each reduces part of its values with the
 * combiner, and one rank combines those partial results and calls reduce
 * once, so the output still has the key once.
 *
 * key_compare, if given, orders keys (memcmp-like result); it must agree with
 * bytewise equality.  Without it keys are ordered bytewise, shorter first on a
 * common prefix.  Output parts are sorted by it.
 */
typedef struct mrf_job_spec {
    const char *name;    /* as in `mrflow run NAME` and the run summary */
    const char *summary; /* one line for `mrflow jobs` */
    mrf_input_kind input;
    size_t record_size; /* for MRF_INPUT_RECORDS */
    void (*map)(const mrf_record *in, mrf_emitter *out, void *ctx);
    void (*combine)(void *acc, const void *val, size_t len, void *ctx);
    void (*reduce)(const void *key, size_t klen, mrf_values *vals, mrf_emitter *out, void *ctx);
    mrf_partitioning partitioning;
    int (*key_compare)(const void *a, size_t alen, const void *b, size_t blen);
    mrf_output_format output;
    void *ctx;      /* passed to every callback */
    unsigned flags; /* MRF_PER_VALUE or 0 */

    /* Multi-stage jobs.  next: the stage that maps this stage's reduce
     * output (NULL: this is the last).  A later stage's own name, summary,
     * input, record_size and output are ignored: its input is the previous
     * stage's records, its output the job's (if last).  It must use
     * MRF_PART_HASH.  The intermediate records stay in the engine's binary
     * framing, partitioned as the reduce left them, in files of at most
     * 16 MiB next to the output (or in --checkpoint-dir, where a committed
     * stage is a checkpoint the job resumes from).
     *
     * iterate: when set, after each run of this stage the engine calls it
     * with the run's index (0 for the first) and the job-wide sums of the
     * values reduce passed to mrf_stage_add in that run; a nonzero return
     * runs the stage again with its own output as input (at most
     * --iterations runs), zero goes on to next.  tol is --tol. */
    const struct mrf_job_spec *next;
    int (*iterate)(unsigned run, const double *sums, double tol, void *ctx);

    const mrf_job_option *options; /* the job's own options, or NULL */
    const mrf_column *key_type;    /* typed output (above), or NULL */
    const mrf_column *value_type;
} mrf_job_spec;

/* Slots of mrf_stage_add. */
#define MRF_STAGE_SLOTS 8

/*
 * Called from reduce: adds v to slot (< MRF_STAGE_SLOTS) of this stage
 * run's sums (each key is reduced exactly once, so each value counts once).
 * The job-wide sums go to spec->iterate, and the next stage run (map and
 * reduce) reads them with mrf_stage_sum.  Returns MRF_EINVAL for a bad slot
 * or when called from map (a map task may run twice).  Not collective.
 */
MRF_EXPORT int mrf_stage_add(mrf_emitter *out, unsigned slot, double v);
/* From map or reduce: the previous stage run's job-wide sum in slot (0 in
 * the first stage). */
MRF_EXPORT double mrf_stage_sum(const mrf_emitter *out, unsigned slot);
/* From map or reduce: which run of this stage this is (0, 1, ...). */
MRF_EXPORT unsigned mrf_stage_run(const mrf_emitter *out);

/*
 * spec->flags: MRF_PER_VALUE says reduce handles each value on its own (it
 * emits per value, as a sort does), so one key's values may be reduced on
 * several ranks: a key heavier than a rank's share is then spread over ranks
 * even without a combiner, and in range partitioning so are ties.  Without
 * it (and without a combiner) a key's values all reach one reduce call.
 */
#define MRF_PER_VALUE 1u

/*
 * spec->flags: MRF_MAP_BLOCKS (for MRF_INPUT_LINES) hands map many whole
 * lines at once instead of one: in->data/len hold one or more complete
 * lines, each ending in '\n' but for a file's last line that lacks one,
 * and in->offset is the first line's offset in in->file (blocks never span
 * files).  A block is about 64 KiB to 1 MiB.  A tokenizer then runs over
 * large buffers without a call per line.  mrf_reject is not available in
 * such a map (it returns MRF_EINVAL): a job that sets lines aside maps them
 * one at a time.  The run report still counts lines as records.
 */
#define MRF_MAP_BLOCKS 2u

/*
 * Combiners the engine recognises and performs itself, without a call per
 * value: give one of these as spec->combine.
 * mrf_combine_sum_u64: values are 8-byte native-endian unsigned integers,
 * summed (modulo 2^64).  Not collective.
 */
MRF_EXPORT void mrf_combine_sum_u64(void *acc, const void *val, size_t len, void *ctx);

/*
 * Runs the job with the options in argv (argv[0] is the program name):
 * --input, --output and the rest, as `--help` lists them.  Initialises MPI if
 * the caller has not (and then finalises it).  Collective over MPI_COMM_WORLD.
 * Returns an exit status: MRF_EXIT_OK, MRF_EXIT_FAILED or MRF_EXIT_USAGE.
 */
MRF_EXPORT int mrf_main(int argc, char **argv, const mrf_job_spec *spec);

/* A static description of a status code.  Not collective. */
MRF_EXPORT const char *mrf_strerror(int code);

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
MRF_EXPORT const char *mrf_version(void);

#ifdef __cplusplus
}
#endif

#endif /* MRFLOW_H */
