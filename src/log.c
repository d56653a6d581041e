/*
 * log.c -- leveled log lines on stderr: text (the default) or one JSON object
 * per line (--log-format json), each with the time (UTC), the run id, rank,
 * stage and task where there is one.
 *
 * The function that decides an error logs it (mrf__fail), on the rank where it
 * happened; callers up the stack only pass the code on.  What a code means
 * is here too: in words (mrf_strerror) and as the exit status.
 */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "internal.h"

static int log_rank = -1;
static int log_level = MRF_LOG_WARN;
static bool log_json;
static char log_run[64];
static int log_stage = -1;
static long log_task = -1;

void mrf__log_init(int rank, int level)
{
    log_rank = rank;
    log_level = level;
}

void mrf__log_format(bool json)
{
    log_json = json;
}

void mrf__log_context(const char *run_id, int stage)
{
    snprintf(log_run, sizeof log_run, "%s", run_id ? run_id : "");
    log_stage = stage;
}

void mrf__log_task(long task)
{
    log_task = task;
}

/* JSON string body: quotes, backslashes and control bytes escaped. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

static void vlog(int level, const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    char msg[2048], line[4608], ts[40], ctx[160];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof ts - k, ".%03dZ", (int)(tv.tv_usec / 1000));
    if (log_json) {
        char esc[4200];
        json_escape(esc, sizeof esc, msg);
        int n =
            snprintf(line, sizeof line, "{\"time\": \"%s\", \"level\": \"%s\"", ts, names[level]);
        if (log_run[0])
            n += snprintf(line + n, sizeof line - (size_t)n, ", \"run_id\": \"%s\"", log_run);
        if (log_rank >= 0)
            n += snprintf(line + n, sizeof line - (size_t)n, ", \"rank\": %d", log_rank);
        if (log_stage >= 0)
            n += snprintf(line + n, sizeof line - (size_t)n, ", \"stage\": %d", log_stage);
        if (log_task >= 0)
            n += snprintf(line + n, sizeof line - (size_t)n, ", \"task\": %ld", log_task);
        snprintf(line + n, sizeof line - (size_t)n, ", \"msg\": \"%s\"}", esc);
    } else {
        int n = 0;
        ctx[0] = '\0';
        if (log_rank >= 0)
            n += snprintf(ctx + n, sizeof ctx - (size_t)n, "[rank %d", log_rank);
        if (log_rank >= 0 && log_run[0])
            n += snprintf(ctx + n, sizeof ctx - (size_t)n, " run %s", log_run);
        if (log_rank >= 0 && log_stage >= 0)
            n += snprintf(ctx + n, sizeof ctx - (size_t)n, " stage %d", log_stage);
        if (log_rank >= 0 && log_task >= 0)
            n += snprintf(ctx + n, sizeof ctx - (size_t)n, " task %ld", log_task);
        if (log_rank >= 0)
            snprintf(ctx + n, sizeof ctx - (size_t)n, "]");
        snprintf(line, sizeof line, "%s mrflow%s: %s: %s", ts, ctx, names[level], msg);
    }
    /* one write per line so ranks' lines do not interleave mid-line */
    fprintf(stderr, "%s\n", line);
}

void mrf__log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

static char first_error[MRF__ERRMSG];

int mrf__fail(int code, const char *fmt, ...)
{
    va_list ap;
    if (!first_error[0]) {
        va_start(ap, fmt);
        vsnprintf(first_error, sizeof first_error, fmt, ap);
        va_end(ap);
    }
    va_start(ap, fmt);
    vlog(MRF_LOG_ERROR, fmt, ap);
    va_end(ap);
    return code;
}

const char *mrf__first_error(void)
{
    return first_error;
}

const char *mrf_strerror(int code)
{
    switch (code) {
    case MRF_OK:
        return "success";
    case MRF_EINVAL:
        return "invalid argument";
    case MRF_ENOMEM:
        return "out of memory";
    case MRF_EIO:
        return "I/O error";
    case MRF_EMPI:
        return "MPI error";
    case MRF_EUSAGE:
        return "usage error";
    case MRF_EINPUT:
        return "bad input";
    case MRF_EEXIST:
        return "output exists";
    case MRF_EINTERNAL:
        return "internal error";
    default:
        return "unknown error";
    }
}

/* What a command exits with, for an error code (MRF_EXIT_* in mrflow.h). */
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
