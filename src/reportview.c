/*
 * reportview.c -- `mrflow report FILE`: the run report as a table.
 *
 * A small JSON reader (objects, arrays, strings, numbers, true, false,
 * null; \uXXXX escapes below 0x80 decoded, others kept as '?') builds a
 * tree; the printer looks fields up by name, so a report from a newer
 * mrflow with more fields still prints, and a missing field prints as "-".
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "internal.h"

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype t;
    double num;
    char *str;         /* J_STR */
    char *key;         /* a member of an object: its name */
    struct jval *kids; /* J_ARR, J_OBJ */
    size_t n, cap;
} jval;

typedef struct jparser {
    const char *p, *end;
    int depth;
    const char *err;
} jparser;

static void jfree(jval *v)
{
    for (size_t i = 0; i < v->n; i++)
        jfree(&v->kids[i]);
    mrf__free(v->kids);
    mrf__free(v->str);
    mrf__free(v->key);
}

static void skip_ws(jparser *jp)
{
    while (jp->p < jp->end && isspace((unsigned char)*jp->p))
        jp->p++;
}

static int parse_value(jparser *jp, jval *v);

static int parse_string(jparser *jp, char **out)
{
    if (jp->p >= jp->end || *jp->p != '"')
        return jp->err = "a string expected", -1;
    jp->p++;
    size_t cap = 16, n = 0;
    char *s = mrf__malloc(cap);
    if (!s)
        return jp->err = "out of memory", -1;
    while (jp->p < jp->end && *jp->p != '"') {
        char c = *jp->p++;
        if ((unsigned char)c < 0x20) {
            mrf__free(s);
            return jp->err = "a control character inside a string", -1;
        }
        if (c == '\\') {
            if (jp->p >= jp->end)
                break;
            char e = *jp->p++;
            switch (e) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u': {
                unsigned u = 0;
                for (int k = 0; k < 4; k++) {
                    if (jp->p >= jp->end || !isxdigit((unsigned char)*jp->p)) {
                        mrf__free(s);
                        return jp->err = "a bad \\u escape", -1;
                    }
                    char h = *jp->p++;
                    u = u * 16 + (unsigned)(isdigit((unsigned char)h)
                                                ? h - '0'
                                                : tolower((unsigned char)h) - 'a' + 10);
                }
                c = u < 0x80 ? (char)u : '?';
                break;
            }
            default:
                c = e;
                break; /* \" \\ \/ */
            }
        }
        if (n + 2 > cap) {
            char *t = mrf__realloc(s, cap *= 2);
            if (!t) {
                mrf__free(s);
                return jp->err = "out of memory", -1;
            }
            s = t;
        }
        s[n++] = c;
    }
    if (jp->p >= jp->end) {
        mrf__free(s);
        return jp->err = "an unterminated string", -1;
    }
    jp->p++;
    s[n] = '\0';
    *out = s;
    return 0;
}

static int add_kid(jparser *jp, jval *v, jval *kid)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        jval *k = mrf__realloc(v->kids, nc * sizeof *k);
        if (!k)
            return jp->err = "out of memory", -1;
        v->kids = k;
        v->cap = nc;
    }
    v->kids[v->n++] = *kid;
    return 0;
}

static int parse_container(jparser *jp, jval *v, bool obj)
{
    v->t = obj ? J_OBJ : J_ARR;
    jp->p++;
    skip_ws(jp);
    if (jp->p < jp->end && *jp->p == (obj ? '}' : ']')) {
        jp->p++;
        return 0;
    }
    for (;;) {
        jval kid = {0};
        char *key = NULL;
        skip_ws(jp);
        if (obj) {
            if (parse_string(jp, &key))
                return -1;
            skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':') {
                mrf__free(key);
                return jp->err = "':' expected", -1;
            }
            jp->p++;
        }
        if (parse_value(jp, &kid)) {
            mrf__free(key);
            jfree(&kid);
            return -1;
        }
        kid.key = key;
        if (add_kid(jp, v, &kid)) {
            jfree(&kid);
            return -1;
        }
        skip_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            continue;
        }
        if (jp->p < jp->end && *jp->p == (obj ? '}' : ']')) {
            jp->p++;
            return 0;
        }
        return jp->err = obj ? "',' or '}' expected" : "',' or ']' expected", -1;
    }
}

static int parse_value(jparser *jp, jval *v)
{
    skip_ws(jp);
    if (jp->p >= jp->end)
        return jp->err = "unexpected end of file", -1;
    if (++jp->depth > 64)
        return jp->err = "nested too deeply", -1;
    int rc = 0;
    char c = *jp->p;
    if (c == '{' || c == '[') {
        rc = parse_container(jp, v, c == '{');
    } else if (c == '"') {
        v->t = J_STR;
        rc = parse_string(jp, &v->str);
    } else if (jp->end - jp->p >= 4 && !strncmp(jp->p, "true", 4)) {
        v->t = J_BOOL, v->num = 1, jp->p += 4;
    } else if (jp->end - jp->p >= 5 && !strncmp(jp->p, "false", 5)) {
        v->t = J_BOOL, v->num = 0, jp->p += 5;
    } else if (jp->end - jp->p >= 4 && !strncmp(jp->p, "null", 4)) {
        v->t = J_NULL, jp->p += 4;
    } else {
        char buf[64];
        size_t n = 0;
        while (jp->p + n < jp->end && n + 1 < sizeof buf && strchr("+-0123456789.eE", jp->p[n]))
            n++;
        memcpy(buf, jp->p, n);
        buf[n] = '\0';
        char *end;
        errno = 0;
        v->num = strtod(buf, &end);
        if (n == 0 || *end || errno)
            return jp->err = "a value expected", -1;
        v->t = J_NUM;
        jp->p += n;
    }
    jp->depth--;
    return rc;
}

/* The member named key of object o, or NULL. */
static const jval *get(const jval *o, const char *key)
{
    if (!o || o->t != J_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (o->kids[i].key && !strcmp(o->kids[i].key, key))
            return &o->kids[i];
    return NULL;
}

/* A string member's value, or "-". */
static const char *gs(const jval *o, const char *key)
{
    const jval *v = get(o, key);
    return v && v->t == J_STR ? v->str : "-";
}

static double gn(const jval *o, const char *key)
{
    const jval *v = get(o, key);
    return v && (v->t == J_NUM || v->t == J_BOOL) ? v->num : 0;
}

/* The ranks' profiles, phase by phase: wall, CPU, waiting (wall - CPU)
 * and the parts of the wall time (report.c's put_profile). */
static void print_profile(const jval *rd)
{
    static const struct {
        const char *phase, *wall, *parts[4], *heads[4];
    } ph[] = {
        {"map",
         "map_s",
         {"read_s", "run_s", "spill_s", "wait_s"},
         {"read", "map", "spill", "sched"}},
        {"shuffle",
         "shuffle_s",
         {"group_s", "pack_s", "mpi_s", "unpack_s"},
         {"group", "pack", "MPI", "unpack"}},
        {"reduce",
         "reduce_s",
         {"sort_s", "reduce_s", "write_s", "fsync_s"},
         {"sort", "reduce", "write", "fsync"}},
    };
    if (!get(&rd->kids[0], "profile"))
        return; /* a report from before profiles */
    printf("\nwhere the time went, seconds (waiting = wall - CPU: for input, peers, the disk)\n");
    for (size_t p = 0; p < sizeof ph / sizeof ph[0]; p++) {
        printf("%-8s %5s %8s %8s %8s", ph[p].phase, "rank", "wall", "CPU", "waiting");
        for (int j = 0; j < 4; j++)
            printf(" %8s", ph[p].heads[j]);
        printf("\n");
        for (size_t i = 0; i < rd->n; i++) {
            const jval *k = &rd->kids[i], *q = get(get(k, "profile"), ph[p].phase);
            double wall = gn(k, ph[p].wall), cpu = gn(q, "cpu_s");
            printf("%-8s %5.0f %8.3f %8.3f %8.3f", "", gn(k, "rank"), wall, cpu,
                   wall > cpu ? wall - cpu : 0.0);
            for (int j = 0; j < 4; j++)
                printf(" %8.3f", gn(q, ph[p].parts[j]));
            printf("\n");
        }
    }
}

static void print_report(const jval *r)
{
    const double mib = 1024.0 * 1024.0;
    double el = gn(r, "elapsed_s"), in = gn(r, "input_bytes");
    printf("job %s   run %s   status %s (exit %.0f)\n", gs(r, "job"), gs(r, "run_id"),
           gs(r, "status"), gn(r, "exit_status"));
    if (get(r, "error"))
        printf("error: %s\n", gs(r, "error"));
    printf("%.0f ranks, %.3f s, input %.1f MiB (%.1f MB/s), records in %.0f, out %.0f, output "
           "%.1f MiB; shuffle compression %s\n",
           gn(r, "ranks"), el, in / mib, el > 0 ? in / el / 1e6 : 0.0, gn(r, "records_in"),
           gn(r, "records_out"), gn(r, "output_bytes") / mib, gs(r, "shuffle_compression"));
    const jval *stages = get(r, "stages");
    for (size_t i = 0; stages && stages->t == J_ARR && i < stages->n; i++) {
        const jval *st = &stages->kids[i];
        printf("\nstage %.0f: map %.3f s, shuffle %.3f s, reduce %.3f s (slowest rank); "
               "shuffled %.1f MiB (%.1f on the wire), spilled %.1f MiB, imbalance %.3f\n",
               gn(st, "stage"), gn(st, "map_s"), gn(st, "shuffle_s"), gn(st, "reduce_s"),
               gn(st, "shuffle_bytes_raw") / mib, gn(st, "shuffle_bytes_wire") / mib,
               gn(st, "spilled_bytes") / mib, gn(st, "imbalance"));
        printf("  tasks %.0f (%.0f stolen), backups %.0f launched %.0f won, bad records %.0f\n",
               gn(st, "tasks"), gn(st, "tasks_stolen"), gn(st, "speculative_launched"),
               gn(st, "speculative_won"), gn(st, "bad_records"));
        const jval *pt = get(st, "partitioning");
        if (pt) {
            const jval *hk = get(pt, "heavy_keys");
            printf("  partitioner %s, %.0f buckets + %.0f heavy-key buckets, deciding %.3f s; "
                   "imbalance %.3f under plain hashing -> %.3f planned -> %.3f received\n",
                   gs(pt, "partitioner"), gn(pt, "buckets"), gn(pt, "heavy_sub_buckets"),
                   gn(pt, "decide_s"), gn(pt, "imbalance_before"), gn(pt, "imbalance_planned"),
                   gn(pt, "imbalance"));
            if (hk)
                printf("  heavy keys: %.0f found (%.1f%% of the sample), %.0f split: %s\n",
                       gn(hk, "found"), 100 * gn(hk, "share"), gn(hk, "split"), gs(hk, "how"));
            const jval *top = get(hk, "top");
            for (size_t k = 0; top && top->t == J_ARR && k < top->n; k++)
                printf("    %-26s %6.2f%%  %3.0f buckets\n", gs(&top->kids[k], "key"),
                       100 * gn(&top->kids[k], "share"), gn(&top->kids[k], "buckets"));
        }
    }
    const jval *sr = get(r, "stage_runs");
    if (sr && sr->t == J_ARR && sr->n) {
        printf("\nearlier stage runs of this job (this report is the last one's):\n");
        for (size_t i = 0; i < sr->n; i++) {
            const jval *g = &sr->kids[i];
            if (get(g, "done_before"))
                printf("  %-24.24s committed by an earlier invocation\n", gs(g, "name"));
            else
                printf("  %-24.24s %9.3f s  records %.0f -> %.0f, shuffled %.1f MiB\n",
                       gs(g, "name"), gn(g, "elapsed_s"), gn(g, "records_in"), gn(g, "records_out"),
                       gn(g, "shuffle_bytes") / mib);
        }
    }
    const jval *rd = get(r, "ranks_detail");
    if (rd && rd->t == J_ARR && rd->n) {
        printf("\n%5s %-16s %-20s %9s %8s %12s %14s %12s %12s\n", "rank", "host", "cpus (bound by)",
               "RSS MiB", "map s", "recs mapped", "reduce in MiB", "reduce CPU s", "records out");
        for (size_t i = 0; i < rd->n; i++) {
            const jval *k = &rd->kids[i];
            char cpus[64];
            snprintf(cpus, sizeof cpus, "%s (%s)", gs(k, "cpuset"), gs(k, "bound_by"));
            printf("%5.0f %-16.16s %-20.20s %9.1f %8.3f %12.0f %14.1f %12.3f %12.0f%s%s\n",
                   gn(k, "rank"), gs(k, "host"), cpus, gn(k, "peak_rss_bytes") / mib,
                   gn(k, "map_s"), gn(k, "records_mapped"), gn(k, "reduce_input_bytes") / mib,
                   gn(k, "reduce_cpu_s"), gn(k, "records_out"), get(k, "error") ? "  error: " : "",
                   get(k, "error") ? gs(k, "error") : "");
        }
        print_profile(rd);
    }
}

int mrf__cli_report(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        FILE *f =
            argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? stdout : stderr;
        fprintf(f, "Usage: mrflow report FILE\n\nPrints a run report (DIR/_REPORT.json, or the "
                   "--report FILE of a run) as a table.\n");
        return f == stdout ? MRF_EXIT_OK : MRF_EXIT_USAGE;
    }
    const char *path = argv[1];
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "mrflow: error: cannot open '%s': %s\n", path, strerror(errno));
        return MRF_EXIT_USAGE;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = mrf__malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *b = cap < (256u << 20) ? mrf__realloc(buf, cap *= 2) : NULL;
            if (!b) {
                mrf__free(buf);
                buf = NULL;
            } else {
                buf = b;
            }
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "mrflow: error: '%s' is too large for a run report\n", path);
        return MRF_EXIT_USAGE;
    }
    jparser jp = {.p = buf, .end = buf + n};
    jval root = {0};
    int rc = parse_value(&jp, &root);
    skip_ws(&jp);
    if (rc == 0 && jp.p != jp.end)
        rc = -1, jp.err = "text after the end of the document";
    if (rc == 0 && root.t != J_OBJ)
        rc = -1, jp.err = "not a JSON object";
    if (rc) {
        fprintf(stderr, "mrflow: error: '%s' is not a run report: %s at byte %ld\n", path, jp.err,
                (long)(jp.p - buf));
    } else if (!get(&root, "job") || !get(&root, "stages")) {
        fprintf(stderr, "mrflow: error: '%s' is JSON but not a run report (no job or stages)\n",
                path);
        rc = -1;
    } else {
        print_report(&root);
    }
    jfree(&root);
    mrf__free(buf);
    return rc ? MRF_EXIT_USAGE : MRF_EXIT_OK;
}
