/*
 * jobopts.c -- a job's own options (spec->options): parsed beside the
 * engine's by config.c, defaults and kinds applied and checked before the
 * job starts, listed by --help, read by the job's callbacks (mrf_option).
 * Every rank parses the same argv, so every rank holds the same values.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "stage.h"

int mrf__jobopt_start(const mrf_job_option *decl, mrf__options *opt)
{
    size_t n = 0;
    while (decl && decl[n].name)
        n++;
    opt->job_options = decl;
    opt->n_job_options = n;
    if (n && !(opt->job_values = mrf__calloc(n, sizeof *opt->job_values)))
        return MRF_ENOMEM;
    return MRF_OK;
}

int mrf__jobopt_take(mrf__options *opt, int *i, int argc, char **argv, char *err, size_t errlen)
{
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0)
        return 0;
    a += 2;
    for (size_t k = 0; k < opt->n_job_options; k++) {
        const char *name = opt->job_options[k].name;
        size_t n = strlen(name);
        if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
            continue;
        if (a[n] == '=') {
            opt->job_values[k] = a + n + 1;
        } else if (*i + 1 < argc) {
            opt->job_values[k] = argv[++*i];
        } else {
            snprintf(err, errlen, "option --%s needs a value (see --help)", name);
            return MRF_EUSAGE;
        }
        return 1;
    }
    return 0;
}

static bool parse_int(const char *v, int64_t *out)
{
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return false;
    *out = x;
    return true;
}

static bool parse_double(const char *v, double *out)
{
    errno = 0;
    char *end;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x))
        return false;
    *out = x;
    return true;
}

int mrf__jobopt_finish(mrf__options *opt, char *err, size_t errlen)
{
    for (size_t k = 0; k < opt->n_job_options; k++) {
        const mrf_job_option *o = &opt->job_options[k];
        const char *v = opt->job_values[k] ? opt->job_values[k] : o->dflt;
        if (!v) {
            snprintf(err, errlen, "job option --%s %s is required (see --help)", o->name,
                     o->value ? o->value : "VALUE");
            return MRF_EUSAGE;
        }
        opt->job_values[k] = v;
        int64_t i;
        double d;
        if (o->kind == MRF_OPTION_INT && !parse_int(v, &i)) {
            snprintf(err, errlen, "--%s '%s': not an integer", o->name, v);
            return MRF_EUSAGE;
        }
        if (o->kind == MRF_OPTION_DOUBLE && !parse_double(v, &d)) {
            snprintf(err, errlen, "--%s '%s': not a finite number", o->name, v);
            return MRF_EUSAGE;
        }
        char why[MRF_ERRLEN] = "";
        if (o->check && o->check(v, why, sizeof why) != 0) {
            snprintf(err, errlen, "--%s '%s': %s", o->name, v, why[0] ? why : "not allowed");
            return MRF_EUSAGE;
        }
    }
    return MRF_OK;
}

int mrf__jobopt_check_decl(const mrf_job_spec *spec)
{
    for (const mrf_job_option *o = spec->options; o && o->name; o++) {
        bool ok = o->name[0] != '\0' && o->name[0] != '-' && o->help &&
                  (unsigned)o->kind <= MRF_OPTION_DOUBLE;
        for (const char *c = o->name; ok && *c; c++)
            ok = islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-';
        if (!ok)
            return mrf__fail(MRF_EINVAL,
                             "job '%s': option '%s' needs a name of a-z, 0-9 and '-', help "
                             "text and a known kind",
                             spec->name, o->name);
        for (const mrf_job_option *p = spec->options; p < o; p++)
            if (strcmp(p->name, o->name) == 0)
                return mrf__fail(MRF_EINVAL, "job '%s': option --%s is declared twice", spec->name,
                                 o->name);
    }
    return MRF_OK;
}

void mrf__jobopt_help(const mrf_job_spec *spec)
{
    if (!spec->options || !spec->options[0].name)
        return;
    printf("\nOptions of the job '%s':\n", spec->name);
    for (const mrf_job_option *o = spec->options; o->name; o++) {
        char head[64];
        snprintf(head, sizeof head, "--%s %s", o->name, o->value ? o->value : "VALUE");
        printf("  %-19s %s", head, o->help);
        if (o->dflt && !o->dflt[0])
            printf(" (optional)\n");
        else if (o->dflt)
            printf(" (default %s)\n", o->dflt);
        else
            printf(" (required)\n");
    }
}

/* ---- read by the job's callbacks --------------------------------------- */

const char *mrf_option(const mrf_emitter *out, const char *name)
{
    const mrf__options *opt = out ? out->opt : NULL;
    for (size_t k = 0; opt && name && k < opt->n_job_options; k++)
        if (strcmp(opt->job_options[k].name, name) == 0)
            return opt->job_values[k];
    return NULL;
}

int64_t mrf_option_int(const mrf_emitter *out, const char *name)
{
    const char *v = mrf_option(out, name);
    int64_t i = 0;
    return v && parse_int(v, &i) ? i : 0;
}

double mrf_option_double(const mrf_emitter *out, const char *name)
{
    const char *v = mrf_option(out, name);
    double d = 0;
    return v && parse_double(v, &d) ? d : 0;
}
