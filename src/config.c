/*
 * config.c -- job options from the command line: parsing and validation.
 *
 * Every rank parses the same argv, so every rank reaches the same verdict
 * without communicating.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

#define DEFAULT_TASK_SIZE (64ull << 20)
#define DEFAULT_BUCKETS 4096u
#define DEFAULT_ROUND_BYTES (256ull << 20)

int mrf__parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
        return MRF_EINVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0)
        return MRF_EINVAL;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (mult > 1 && (*end == 'i' || *end == 'I'))
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        return MRF_EINVAL;
    double bytes = v * mult;
    if (bytes >= 18446744073709551615.0)
        return MRF_EINVAL;
    /* a fraction of a byte makes no sense */
    if (mult == 1 && v != floor(v))
        return MRF_EINVAL;
    *out = (uint64_t)bytes;
    return MRF_OK;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return MRF_EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return MRF_EINVAL;
    *out = v;
    return MRF_OK;
}

static int parse_rank(const char *v, int *rank)
{
    char *end;
    errno = 0;
    long r = strtol(v, &end, 10);
    if (errno || *end || end == v || r < 0 || r > INT32_MAX)
        return MRF_EINVAL;
    *rank = (int)r;
    return MRF_OK;
}

/* crash:rank=R:phase=P: rank R kills itself (SIGKILL) in phase P */
static int parse_crash(const char *v, mrf__options *opt)
{
    static const char *phases[] = {"map", "shuffle", "reduce", "checkpoint"};
    const char *ph = strstr(v, ":phase=");
    if (!ph)
        return MRF_EINVAL;
    char rank[32];
    size_t n = (size_t)(ph - v);
    if (n >= sizeof rank)
        return MRF_EINVAL;
    memcpy(rank, v, n);
    rank[n] = '\0';
    for (int k = 0; k < 4; k++)
        if (strcmp(ph + 7, phases[k]) == 0) {
            opt->crash_phase = k;
            return parse_rank(rank, &opt->crash_rank);
        }
    return MRF_EINVAL;
}

/* slow:rank=R[:factor=F][:after=S], fail:rank=R, corrupt:rank=R,
 * corrupt-spill:rank=R or crash:rank=R:phase=P */
static int parse_fault(const char *v, mrf__options *opt)
{
    if (strncmp(v, "crash:rank=", 11) == 0)
        return parse_crash(v + 11, opt);
    if (strncmp(v, "fail:rank=", 10) == 0)
        return parse_rank(v + 10, &opt->fail_rank);
    if (strncmp(v, "corrupt:rank=", 13) == 0)
        return parse_rank(v + 13, &opt->corrupt_rank);
    if (strncmp(v, "corrupt-spill:rank=", 19) == 0)
        return parse_rank(v + 19, &opt->corrupt_spill_rank);
    if (strncmp(v, "slow:", 5) != 0)
        return MRF_EINVAL;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v + 5);
    int rank = -1;
    double factor = 5.0, after = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ":", &save); tok;
         tok = strtok_r(NULL, ":", &save)) {
        char *end;
        errno = 0;
        if (strncmp(tok, "rank=", 5) == 0) {
            long r = strtol(tok + 5, &end, 10);
            if (errno || *end || end == tok + 5 || r < 0 || r > INT32_MAX)
                return MRF_EINVAL;
            rank = (int)r;
        } else if (strncmp(tok, "factor=", 7) == 0) {
            factor = strtod(tok + 7, &end);
            if (errno || *end || end == tok + 7 || !(factor >= 1.0) || factor > 1000)
                return MRF_EINVAL;
        } else if (strncmp(tok, "after=", 6) == 0) {
            after = strtod(tok + 6, &end);
            if (errno || *end || end == tok + 6 || !(after >= 0) || after > 1e9)
                return MRF_EINVAL;
        } else {
            return MRF_EINVAL;
        }
    }
    if (rank < 0)
        return MRF_EINVAL;
    opt->fault_rank = rank;
    opt->fault_factor = factor;
    opt->fault_after = after;
    return MRF_OK;
}

void mrf__options_free(mrf__options *opt)
{
    if (!opt)
        return;
    mrf__free(opt->inputs);
    opt->inputs = NULL;
    opt->n_inputs = 0;
    mrf__free(opt->job_values);
    opt->job_values = NULL;
    opt->n_job_options = 0;
}

/* Matches "--name" or "--name=value"; sets *inline_val for the second form. */
static bool opt_is(const char *arg, const char *name, const char **inline_val)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return false;
    if (arg[n] == '\0') {
        *inline_val = NULL;
        return true;
    }
    if (arg[n] == '=') {
        *inline_val = arg + n + 1;
        return true;
    }
    return false;
}

bool mrf__engine_option(const char *name)
{
    char flag[128], zero[] = "0", prog[] = "mrflow";
    snprintf(flag, sizeof flag, "--%s", name);
    char *argv[] = {prog, flag, zero, NULL};
    mrf__options o;
    char err[MRF_ERRLEN] = "";
    if (mrf__parse_options(3, argv, NULL, &o, err, sizeof err) == MRF_OK)
        mrf__options_free(&o);
    return strncmp(err, "unknown option", 14) != 0;
}

int mrf__check_job_options(const mrf_job_spec *spec)
{
    int rc = mrf__jobopt_check_decl(spec);
    for (const mrf_job_option *o = spec->options; rc == MRF_OK && o && o->name; o++)
        if (mrf__engine_option(o->name))
            rc = mrf__fail(MRF_EINVAL, "job '%s': option --%s is one of the engine's", spec->name,
                           o->name);
    return rc;
}

int mrf__parse_options(int argc, char **argv, const mrf_job_option *decl, mrf__options *opt,
                       char *err, size_t errlen)
{
    memset(opt, 0, sizeof *opt);
    opt->task_size = DEFAULT_TASK_SIZE;
    opt->buckets = DEFAULT_BUCKETS;
    opt->round_bytes = DEFAULT_ROUND_BYTES;
    opt->log_level = MRF_LOG_WARN;
    opt->progress = -1;
    opt->progress_every = 10;
    opt->speculate = true;
    opt->map_combine = true;
    opt->fault_rank = -1;
    opt->fail_rank = -1;
    opt->corrupt_rank = -1;
    opt->corrupt_spill_rank = -1;
    opt->crash_rank = -1;
    opt->ckpt_every = 300;
    opt->ckpt_bytes = 512ull << 20;
    opt->iterations = 100;
    opt->tol = 1e-9;
    opt->fault_factor = 5.0;
    opt->compress = MRF__COMPRESS_AUTO;
    opt->compress_level = 1;
    opt->inputs = mrf__calloc((size_t)argc + 1, sizeof *opt->inputs);
    if (!opt->inputs || mrf__jobopt_start(decl, opt)) {
        mrf__options_free(opt);
        snprintf(err, errlen, "out of memory parsing options");
        return MRF_ENOMEM;
    }

#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (!val) {                                                                                \
            if (i + 1 >= argc) {                                                                   \
                snprintf(err, errlen, "option %s needs a value (see --help)", argv[i]);            \
                goto usage;                                                                        \
            }                                                                                      \
            val = argv[++i];                                                                       \
        }                                                                                          \
    } while (0)

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (opt_is(a, "--input", &val)) {
            if (val) {
                opt->inputs[opt->n_inputs++] = (char *)val;
                continue;
            }
            int got = 0;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                opt->inputs[opt->n_inputs++] = argv[++i];
                got++;
            }
            if (!got) {
                snprintf(err, errlen, "option --input needs at least one path");
                goto usage;
            }
        } else if (opt_is(a, "--output", &val)) {
            NEED_VALUE();
            if (!*val) {
                snprintf(err, errlen, "option --output needs a directory name");
                goto usage;
            }
            opt->output = val;
        } else if (opt_is(a, "--overwrite", &val) && !val) {
            opt->overwrite = true;
        } else if (opt_is(a, "--task-size", &val)) {
            NEED_VALUE();
            if (mrf__parse_size(val, &opt->task_size) || opt->task_size == 0) {
                snprintf(err, errlen, "--task-size '%s' is not a size such as 64M", val);
                goto usage;
            }
            opt->task_size_set = true;
        } else if (opt_is(a, "--round-bytes", &val)) {
            NEED_VALUE();
            if (mrf__parse_size(val, &opt->round_bytes) || opt->round_bytes < 1024) {
                snprintf(err, errlen, "--round-bytes '%s' is not a size of at least 1K", val);
                goto usage;
            }
        } else if (opt_is(a, "--memory", &val)) {
            NEED_VALUE();
            if (mrf__parse_size(val, &opt->memory) || opt->memory < MRF__MIN_MEMORY) {
                snprintf(err, errlen, "--memory '%s' is not a size of at least 16M (per rank)",
                         val);
                goto usage;
            }
        } else if (opt_is(a, "--spill-dir", &val)) {
            NEED_VALUE();
            if (!*val) {
                snprintf(err, errlen, "option --spill-dir needs a directory name");
                goto usage;
            }
            opt->spill_dir = val;
        } else if (opt_is(a, "--compress", &val)) {
            NEED_VALUE();
            uint64_t lv = 1;
            if (strcmp(val, "off") == 0) {
                opt->compress = MRF__COMPRESS_OFF;
            } else if (strcmp(val, "auto") == 0) {
                opt->compress = MRF__COMPRESS_AUTO;
            } else if (strcmp(val, "zstd") == 0 || (strncmp(val, "zstd:", 5) == 0 &&
                                                    parse_uint(val + 5, 19, &lv) == 0 && lv >= 1)) {
                opt->compress = MRF__COMPRESS_ZSTD;
                opt->compress_level = (int)lv;
            } else {
                snprintf(err, errlen, "--compress '%s': use off, zstd, zstd:LEVEL (1-19) or auto",
                         val);
                goto usage;
            }
        } else if (opt_is(a, "--buckets", &val)) {
            NEED_VALUE();
            uint64_t b;
            if (parse_uint(val, 1u << 24, &b) || b == 0) {
                snprintf(err, errlen, "--buckets '%s' is not a number from 1 to 16777216", val);
                goto usage;
            }
            opt->buckets = (uint32_t)b;
        } else if (opt_is(a, "--partitioner", &val)) {
            NEED_VALUE();
            if (!strcmp(val, "hash"))
                opt->partitioner = MRF__PART_HASH;
            else if (!strcmp(val, "skew"))
                opt->partitioner = MRF__PART_SKEW;
            else if (!strcmp(val, "range"))
                opt->partitioner = MRF__PART_RANGE;
            else {
                snprintf(err, errlen, "--partitioner '%s': use hash, skew or range", val);
                goto usage;
            }
        } else if (opt_is(a, "--map-combine", &val)) {
            NEED_VALUE();
            if (strcmp(val, "on") && strcmp(val, "off")) {
                snprintf(err, errlen, "--map-combine '%s': use on or off", val);
                goto usage;
            }
            opt->map_combine = strcmp(val, "on") == 0;
        } else if (opt_is(a, "--speculate", &val)) {
            NEED_VALUE();
            if (strcmp(val, "on") && strcmp(val, "off")) {
                snprintf(err, errlen, "--speculate '%s': use on or off", val);
                goto usage;
            }
            opt->speculate = strcmp(val, "on") == 0;
        } else if (opt_is(a, "--max-backups", &val)) {
            NEED_VALUE();
            uint64_t m;
            if (parse_uint(val, 1u << 20, &m) || m == 0) {
                snprintf(err, errlen, "--max-backups '%s' is not a number from 1", val);
                goto usage;
            }
            opt->max_backups = (int)m;
        } else if (opt_is(a, "--fault", &val)) {
            NEED_VALUE();
            if (parse_fault(val, opt)) {
                snprintf(err, errlen,
                         "--fault '%s': use slow:rank=R[:factor=F][:after=SECONDS] (F >= 1), "
                         "fail:rank=R, corrupt:rank=R, corrupt-spill:rank=R or "
                         "crash:rank=R:phase=map|shuffle|reduce|checkpoint",
                         val);
                goto usage;
            }
        } else if (opt_is(a, "--log-level", &val)) {
            NEED_VALUE();
            static const char *lv[] = {"error", "warn", "info", "debug"};
            int found = -1;
            for (int k = 0; k < 4; k++)
                if (strcmp(val, lv[k]) == 0)
                    found = k;
            if (found < 0) {
                snprintf(err, errlen, "--log-level '%s': use error, warn, info or debug", val);
                goto usage;
            }
            opt->log_level = found;
        } else if (opt_is(a, "--log-format", &val)) {
            NEED_VALUE();
            if (strcmp(val, "text") && strcmp(val, "json")) {
                snprintf(err, errlen, "--log-format '%s': use text or json", val);
                goto usage;
            }
            opt->log_json = strcmp(val, "json") == 0;
        } else if (opt_is(a, "--progress", &val)) {
            NEED_VALUE();
            if (strcmp(val, "on") && strcmp(val, "off") && strcmp(val, "auto")) {
                snprintf(err, errlen, "--progress '%s': use on, off or auto", val);
                goto usage;
            }
            opt->progress = !strcmp(val, "auto") ? -1 : !strcmp(val, "on");
        } else if (opt_is(a, "--progress-every", &val)) {
            NEED_VALUE();
            char *end;
            errno = 0;
            double v = strtod(val, &end);
            if (errno || end == val || *end || !(v >= 0.01) || v > 86400) {
                snprintf(err, errlen, "--progress-every '%s' is not a number of seconds from 0.01",
                         val);
                goto usage;
            }
            opt->progress_every = v;
        } else if (opt_is(a, "--report", &val)) {
            NEED_VALUE();
            if (!*val) {
                snprintf(err, errlen, "option --report needs a file name");
                goto usage;
            }
            opt->report = val;
        } else if (opt_is(a, "--metrics", &val)) {
            NEED_VALUE();
            if (!*val) {
                snprintf(err, errlen, "option --metrics needs a file name");
                goto usage;
            }
            opt->metrics = val;
        } else if (opt_is(a, "--max-bad-records", &val)) {
            NEED_VALUE();
            if (parse_uint(val, UINT64_MAX, &opt->max_bad_records)) {
                snprintf(err, errlen, "--max-bad-records '%s' is not a number from 0", val);
                goto usage;
            }
        } else if (opt_is(a, "--format", &val)) {
            NEED_VALUE();
            if (strcmp(val, "text") && strcmp(val, "hdf5")) {
                snprintf(err, errlen, "--format '%s': use text (parts) or hdf5 (one output.h5)",
                         val);
                goto usage;
            }
            opt->format_hdf5 = strcmp(val, "hdf5") == 0;
        } else if (opt_is(a, "--checkpoint-dir", &val)) {
            NEED_VALUE();
            if (!*val) {
                snprintf(err, errlen, "option --checkpoint-dir needs a directory name");
                goto usage;
            }
            opt->ckpt_dir = val;
        } else if (opt_is(a, "--checkpoint-every", &val)) {
            NEED_VALUE();
            char *end;
            errno = 0;
            double v = strtod(val, &end);
            if (errno || end == val || *end || !(v >= 0) || v > 1e7) {
                snprintf(err, errlen,
                         "--checkpoint-every '%s' is not a number of seconds (0 turns periodic "
                         "checkpoints off)",
                         val);
                goto usage;
            }
            opt->ckpt_every = v;
        } else if (opt_is(a, "--checkpoint-policy", &val)) {
            NEED_VALUE();
            if (strcmp(val, "auto") && strcmp(val, "always")) {
                snprintf(err, errlen, "--checkpoint-policy '%s': use auto or always", val);
                goto usage;
            }
            opt->ckpt_always = strcmp(val, "always") == 0;
        } else if (opt_is(a, "--checkpoint-bytes", &val)) {
            NEED_VALUE();
            if (mrf__parse_size(val, &opt->ckpt_bytes)) {
                snprintf(err, errlen,
                         "--checkpoint-bytes '%s' is not a size (like 512M; 0: checkpoints by "
                         "time only)",
                         val);
                goto usage;
            }
        } else if (opt_is(a, "--iterations", &val)) {
            NEED_VALUE();
            uint64_t v;
            if (parse_uint(val, 1000000, &v) || v == 0) {
                snprintf(err, errlen, "--iterations '%s' is not a number from 1 to 1000000", val);
                goto usage;
            }
            opt->iterations = (unsigned)v;
        } else if (opt_is(a, "--tol", &val)) {
            NEED_VALUE();
            char *end;
            errno = 0;
            double v = strtod(val, &end);
            if (errno || end == val || *end || !(v >= 0) || v > 1e300) {
                snprintf(err, errlen, "--tol '%s' is not a number from 0", val);
                goto usage;
            }
            opt->tol = v;
        } else if (opt_is(a, "--bind", &val)) {
            NEED_VALUE();
            static const char *modes[] = {"auto", "core", "numa", "none"};
            int m = -1;
            for (int k = 0; k < 4; k++)
                if (!strcmp(val, modes[k]))
                    m = k;
            if (m < 0) {
                snprintf(err, errlen, "--bind '%s': use auto, core, numa or none", val);
                goto usage;
            }
            opt->bind = m;
        } else if (opt_is(a, "--no-resume", &val) && !val) {
            opt->no_resume = true;
        } else if (opt_is(a, "--restart-from-scratch", &val) && !val) {
            opt->restart_scratch = true;
        } else if (opt_is(a, "--quiet", &val) && !val) {
            opt->quiet = true;
        } else if ((opt_is(a, "--help", &val) && !val) || strcmp(a, "-h") == 0) {
            opt->help = true;
        } else if (opt_is(a, "--version", &val) && !val) {
            opt->version = true;
        } else {
            int took = mrf__jobopt_take(opt, &i, argc, argv, err, errlen);
            if (took == 1)
                continue;
            if (took == 0)
                snprintf(err, errlen, "unknown option '%s' (see --help)", a);
            goto usage;
        }
    }
#undef NEED_VALUE
    if (opt->help || opt->version)
        return MRF_OK;
    if (mrf__jobopt_finish(opt, err, errlen))
        goto usage;
    if (opt->n_inputs == 0) {
        snprintf(err, errlen, "no --input given (see --help)");
        goto usage;
    }
    if (!opt->output) {
        snprintf(err, errlen, "no --output given (see --help)");
        goto usage;
    }
    return MRF_OK;

usage:
    mrf__options_free(opt);
    return MRF_EUSAGE;
}

void mrf__print_run_help(const char *prog, const mrf_job_spec *spec)
{
    printf("Usage: %s --input PATH... --output DIR [options]\n"
           "\n"
           "Runs the mrflow job '%s'%s%s under MPI (start it with mpirun or srun).\n"
           "\n"
           "  --input PATH...     input files or directories (a directory's regular files\n"
           "                      are read in name order); may be repeated; plain, or for\n"
           "                      line jobs zstd- or gzip-compressed (by its first bytes,\n"
           "                      read as it is decompressed); xz, bzip2 and lz4 files\n"
           "                      are refused; for jobs of datasets FILE.h5:/PATH names\n"
           "                      an HDF5 dataset (its elements, or a 2-D one's rows)\n"
           "  --output DIR        output directory; must not exist unless --overwrite\n"
           "  --overwrite         replace DIR if it exists (only once the job succeeded)\n"
           "  --format F          text (the default: DIR/part-NNNNN, one per rank, as the\n"
           "                      job writes them) or hdf5 (DIR/output.h5, written\n"
           "                      collectively: a group per part with keys and values as\n"
           "                      byte arrays and offsets; readable with h5py)\n"
           "  --task-size SIZE    bytes of input per map task; tasks hold whole records\n"
           "                      only (default: input / (8 x ranks), from 1M to 64M,\n"
           "                      at most 1/8 of --memory)\n"
           "  --buckets N         virtual buckets keys are partitioned into (default 4096;\n"
           "                      past 500 ranks give 16 x ranks or more)\n"
           "  --partitioner P     how buckets go to ranks: hash (bucket modulo ranks),\n"
           "                      skew (the default for unordered jobs: buckets packed\n"
           "                      by measured size, keys heavier than 1/(20 x ranks) of\n"
           "                      the data split over several ranks when the job has a\n"
           "                      combiner) or range (sampled splitters, globally\n"
           "                      ordered parts; the only choice for ordered jobs)\n"
           "  --map-combine on|off\n"
           "                      apply the job's combiner on the mapping rank as well\n"
           "                      as the reducing one (default on; off ships every\n"
           "                      emitted pair, for keys that rarely repeat)\n"
           "  --memory SIZE       memory budget per rank for the engine's buffers, at least\n"
           "                      16M (default: half the node's RAM, or of its cgroup\n"
           "                      limit, shared among its ranks, at most 64G); data beyond\n"
           "                      it is spilled to --spill-dir\n"
           "  --spill-dir DIR     where spilled runs go (default $TMPDIR, else /tmp); the\n"
           "                      files are unlinked on creation, so none outlive the job\n"
           "  --compress MODE     shuffle chunks and spill blocks: off, zstd[:LEVEL] (LEVEL\n"
           "                      1-19, default 1) or auto (the default: zstd only where\n"
           "                      measuring the link, the spill file's writes and zstd\n"
           "                      itself shows it saves time)\n"
           "  --round-bytes SIZE  most bytes a rank sends in one shuffle round (default 256M,\n"
           "                      at most 1/16 of --memory)\n"
           "  --speculate on|off  back up straggling map tasks on idle ranks (default on)\n"
           "  --max-backups N     backup tasks running at once, job-wide (default: ranks/4,\n"
           "                      at least 1)\n"
           "  --fault slow:rank=R[:factor=F][:after=S]\n"
           "                      testing switch: rank R maps F times slower (default 5),\n"
           "                      from S seconds into the map phase (default 0)\n"
           "  --fault fail:rank=R testing switch: rank R fails in its first map task\n"
           "  --fault corrupt:rank=R | corrupt-spill:rank=R\n"
           "                      testing switch: rank R damages one shuffle (or spill)\n"
           "                      block it writes; the job must fail naming it\n"
           "  --fault crash:rank=R:phase=map|shuffle|reduce|checkpoint\n"
           "                      testing switch: rank R kills itself (SIGKILL) in that\n"
           "                      phase (checkpoint: while writing one)\n"
           "  --log-level LEVEL   error, warn (default), info or debug\n"
           "  --log-format FMT    text (default) or json (one object per line); every\n"
           "                      line has the time, run id, rank, stage and task\n"
           "  --progress on|off|auto\n"
           "                      rank 0 reports progress: on a terminal one updating\n"
           "                      line, elsewhere a line every --progress-every seconds\n"
           "                      (default auto: on when stderr is a terminal)\n"
           "  --progress-every S  seconds between progress lines off a terminal (10)\n"
           "  --report FILE       the run report, JSON (default DIR/_REPORT.json; a failed\n"
           "                      job writes one only to a FILE given here)\n"
           "  --metrics FILE      the same figures in Prometheus text format (for\n"
           "                      node_exporter's textfile collector), replaced atomically\n"
           "  --max-bad-records N malformed input records tolerated (default 0): each is\n"
           "                      written to DIR/_BAD_RECORDS/ with its file and offset;\n"
           "                      one more fails the job\n"
           "  --checkpoint-dir DIR\n"
           "                      take coordinated HDF5 checkpoints in DIR (epoch-N.h5,\n"
           "                      LATEST): after the map phase, every --checkpoint-every\n"
           "                      seconds or --checkpoint-bytes between map tasks, and on\n"
           "                      SIGUSR1, SIGUSR2 or SIGTERM, after which the job exits\n"
           "                      with status 75; each only when it pays, see\n"
           "                      --checkpoint-policy.\n"
           "                      Running the same command again resumes from the newest\n"
           "                      valid checkpoint, on any number of ranks\n"
           "  --checkpoint-every S seconds between checkpoints during the map; after the\n"
           "                      shuffle one is taken if S seconds passed since the last\n"
           "                      (default 300; 0: not by time)\n"
           "  --checkpoint-bytes SIZE\n"
           "                      also checkpoint between map tasks when a rank holds SIZE\n"
           "                      of map output that no checkpoint has (default 512M; 0:\n"
           "                      by time only). Checkpoints are incremental: each writes\n"
           "                      only what is new, so this bounds what a signal must write\n"
           "  --checkpoint-policy auto|always\n"
           "                      auto (default): leave out a checkpoint that would cost\n"
           "                      more to write and read back than the work it saves (a\n"
           "                      map that only frames records, as terasort's, is cheaper\n"
           "                      to run again); always: take every one\n"
           "  --no-resume         ignore DIR's checkpoints and start from the beginning\n"
           "  --restart-from-scratch\n"
           "                      when DIR holds checkpoints but none is valid, start\n"
           "                      from the beginning instead of failing\n"
           "  --iterations N      most runs of an iterative stage (default 100)\n"
           "  --tol X             convergence threshold passed to an iterative stage\n"
           "                      (default 1e-9; what it measures is the job's)\n"
           "  --bind MODE         where an unbound rank binds itself (a binding from\n"
           "                      mpirun --bind-to, srun --cpu-bind or taskset is kept):\n"
           "                      auto (default): one core per rank on the node, spread\n"
           "                      over packages and NUMA nodes; one hardware thread each\n"
           "                      with more ranks than cores, unbound with more than\n"
           "                      hardware threads; core: one core each, round robin;\n"
           "                      numa: the cores of one NUMA node; none.  Big buffers\n"
           "                      are then first touched on the rank's NUMA node.\n"
           "                      `mrflow topo` shows the placement\n"
           "  --quiet             no run summary on stderr\n"
           "  --help, --version\n"
           "\n"
           "SIZE takes K, M, G, T suffixes (powers of 1024).\n"
           "Output: DIR/part-00000... one per rank, keys sorted within each part, then\n"
           "DIR/_SUCCESS.  The job writes into a hidden sibling of DIR and renames it into\n"
           "place only when every rank succeeded.\n"
           "\n"
           "Exit status: 0 done, 1 failed, 2 usage or input error, 75 checkpointed after\n"
           "a preemption signal (run the same command again to resume).\n",
           prog, spec->name, spec->summary ? ": " : "", spec->summary ? spec->summary : "");
    mrf__jobopt_help(spec);
}
