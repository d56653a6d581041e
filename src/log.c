/*
 * log.c -- leveled log lines on stderr, each tagged with the rank.
 *
 * The function that decides an error logs it (mrf__fail), on the rank where it
 * happened; callers up the stack only pass the code on.
 */
#include <stdio.h>
#include <time.h>

#include "internal.h"

static int log_rank = -1;
static int log_level = MRF_LOG_WARN;

void mrf__log_init(int rank, int level)
{
    log_rank = rank;
    log_level = level;
}

static void vlog(int level, const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    char line[2048];
    int n;
    if (log_rank >= 0)
        n = snprintf(line, sizeof line, "mrflow[rank %d]: %s: ", log_rank, names[level]);
    else
        n = snprintf(line, sizeof line, "mrflow: %s: ", names[level]);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
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

int mrf__fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(MRF_LOG_ERROR, fmt, ap);
    va_end(ap);
    return code;
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
