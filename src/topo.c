/*
 * topo.c -- where a rank runs: hwloc topology, binding of a node's ranks,
 * and where its memory lands.
 *
 * Every rank learns its node-local rank and the node's rank count from
 * MPI_Comm_split_type(SHARED), loads the hwloc topology (restricted to the
 * PUs its cgroup allows) and reads its current binding.  A binding narrower
 * than the allowed PUs came from the launcher (mpirun --bind-to, srun
 * --cpu-bind, taskset) and is kept.  Otherwise, with --bind auto or core,
 * the node's ranks are dealt over the topology with hwloc_distrib (so two
 * ranks on a two-package machine land on different packages) and each is
 * bound to the first core of its share; with more ranks than cores, to one
 * hardware thread each; with more ranks than hardware threads, not at all
 * (a warning: pinned, two ranks sharing a core stay there while another
 * core idles; unbound, the kernel moves them).  --bind numa gives each rank all the cores of
 * one NUMA node, ranks in blocks.  The plan is a function of the topology
 * and (local rank, local size) only, so every rank of a node computes the
 * same one without talking.
 *
 * Memory: binding happens before the stage allocates anything big, and the
 * big buffers (mem.c) are mmap'ed and first touched by the rank itself, so
 * Linux's default local policy puts their pages on the bound core's NUMA
 * node.  MRFLOW_MEMBIND=bind also sets the memory policy to the bound
 * nodes (hwloc_set_membind, non-strict: MPOL_PREFERRED, never an OOM when
 * the node is full; per thread, as Linux has no process-wide policy: the
 * main thread allocates every big buffer); benchmarks/placement compares
 * the two.  After the map
 * the stage asks the kernel where the map arena's pages really are
 * (mrf__topo_where) and the report shows it.
 *
 * Not collective, except mrf__topo_place (collective over comm: one
 * MPI_Comm_split_type and one MPI_Allreduce).
 */
#define _GNU_SOURCE
#include <hwloc.h>
#include <stdlib.h>

#include "internal.h"

static const char *const how_names[] = {"none", "launcher", "mrflow"};

const char *mrf__bind_how_name(int how)
{
    return how >= 0 && how < 3 ? how_names[how] : "?";
}

/* One cpuset or nodeset as a list ("0-3,8"), "..." when it does not fit. */
static void list_of(hwloc_const_bitmap_t set, char *out, size_t n)
{
    int w = hwloc_bitmap_list_snprintf(out, n, set);
    if (w < 0)
        snprintf(out, n, "?");
    else if ((size_t)w >= n && n > 4)
        memcpy(out + n - 4, "...", 4);
}

static hwloc_obj_t nth_core_inside(hwloc_topology_t t, hwloc_const_cpuset_t set,
                                   hwloc_obj_type_t ty)
{
    return hwloc_get_obj_inside_cpuset_by_type(t, set, ty, 0);
}

/* The cpuset mode asks for, for local rank lr of nlocal, into out: 0, or 1
 * when the rank should stay unbound (why in why[]). */
static int plan(hwloc_topology_t t, int mode, int lr, int nlocal, hwloc_cpuset_t out, char *why,
                size_t whyn)
{
    hwloc_obj_t root = hwloc_get_root_obj(t);
    int ncores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    int npus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    if (ncores <= 0)
        ncores = npus;
    if (mode == MRF__BIND_NONE) {
        snprintf(why, whyn, "--bind none");
        return 1;
    }
    if (mode == MRF__BIND_NUMA) {
        /* NUMA nodes with cores (not memory-only ones), ranks in blocks */
        int nn = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE), k = 0;
        hwloc_obj_t with_cpus[256];
        for (int i = 0; i < nn && k < 256; i++) {
            hwloc_obj_t o = hwloc_get_obj_by_type(t, HWLOC_OBJ_NUMANODE, (unsigned)i);
            if (o && o->cpuset && !hwloc_bitmap_iszero(o->cpuset))
                with_cpus[k++] = o;
        }
        if (k == 0) {
            snprintf(why, whyn, "no NUMA node with cores in the topology");
            return 1;
        }
        hwloc_bitmap_copy(out, with_cpus[(int)((long long)lr * k / nlocal)]->cpuset);
        return 0;
    }
    /* auto: one core each, or one hardware thread each when there are more
     * ranks than cores, or none when more than hardware threads.  core:
     * one core each, round robin when there are more ranks than cores. */
    hwloc_obj_type_t unit = HWLOC_OBJ_CORE;
    int n = nlocal;
    if (mode == MRF__BIND_CORE && nlocal > ncores) {
        n = ncores;
        snprintf(why, whyn,
                 "%d ranks on this node but %d cores: --bind core shares them round robin", nlocal,
                 ncores);
    } else if (nlocal > npus) {
        snprintf(why, whyn,
                 "%d ranks on this node but %d hardware threads: not binding (unbound, a "
                 "rank can move to a core another leaves idle)",
                 nlocal, npus);
        return 1;
    } else if (nlocal > ncores) {
        unit = HWLOC_OBJ_PU;
        snprintf(why, whyn, "%d ranks on this node but %d cores: one hardware thread each", nlocal,
                 ncores);
    }
    int depth = hwloc_get_type_depth(t, unit);
    hwloc_cpuset_t *sets = calloc((size_t)n, sizeof *sets);
    if (!sets) {
        snprintf(why, whyn, "out of memory planning the binding");
        return 1;
    }
    int ok = 1;
    for (int i = 0; i < n; i++)
        ok &= (sets[i] = hwloc_bitmap_alloc()) != NULL;
    ok = ok && depth >= 0 && hwloc_distrib(t, &root, 1, sets, (unsigned)n, depth, 0) == 0;
    hwloc_obj_t o = ok ? nth_core_inside(t, sets[lr % n], unit) : NULL;
    if (o)
        hwloc_bitmap_copy(out, o->cpuset);
    else
        snprintf(why, whyn, "hwloc could not deal %d ranks over the topology", n);
    for (int i = 0; i < n; i++)
        hwloc_bitmap_free(sets[i]);
    free(sets);
    return o ? 0 : 1;
}

/* Fills p's cpuset and NUMA fields from set. */
static void describe(hwloc_topology_t t, hwloc_const_cpuset_t set, mrf__placement *p)
{
    hwloc_nodeset_t ns = hwloc_bitmap_alloc();
    list_of(set, p->cpuset, sizeof p->cpuset);
    if (ns) {
        hwloc_cpuset_to_nodeset(t, set, ns);
        list_of(ns, p->numa, sizeof p->numa);
        hwloc_bitmap_free(ns);
    }
}

static hwloc_topology_t topo;       /* loaded by mrf__topo_place, kept for mrf__topo_where */
static hwloc_nodeset_t bound_nodes; /* the bound cpuset's NUMA nodes */
/* What this process bound itself to, if it did: a multi-stage job places
 * every stage run, and a binding of our own is not the launcher's. */
static char self_bound[64];
static bool warned; /* once per process, not per stage run */

static int load(hwloc_topology_t *t, char *err, size_t errn)
{
    if (hwloc_topology_init(t) < 0) {
        snprintf(err, errn, "hwloc_topology_init failed: %s", strerror(errno));
        return -1;
    }
    if (hwloc_topology_load(*t) < 0) {
        snprintf(err, errn, "hwloc_topology_load failed: %s", strerror(errno));
        hwloc_topology_destroy(*t);
        return -1;
    }
    return 0;
}

/* Binds (or not) this rank, once the placement is planned. */
static void apply(hwloc_topology_t t, hwloc_const_cpuset_t want, mrf__placement *p)
{
    if (hwloc_set_cpubind(t, want, HWLOC_CPUBIND_PROCESS) < 0) {
        snprintf(p->note, sizeof p->note, "binding to %s failed (%s): left unbound", p->cpuset,
                 strerror(errno));
        p->how = MRF__BIND_HOW_NONE;
        return;
    }
    p->how = MRF__BIND_HOW_MRFLOW;
}

int mrf__topo_place(MPI_Comm comm, int mode, bool do_bind, mrf__placement *out)
{
    mrf__placement p;
    memset(&p, 0, sizeof p);
    MPI_Comm local;
    p.local_rank = 0;
    p.local_size = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_rank(local, &p.local_rank);
        MPI_Comm_size(local, &p.local_size);
        MPI_Comm_free(&local);
    }
    char err[200];
    int warn = 0;
    hwloc_cpuset_t cur = NULL, want = NULL;
    if (!topo && load(&topo, err, sizeof err) < 0) {
        /* no topology is no reason to fail a job */
        snprintf(p.note, sizeof p.note, "%.100s: placement unknown, left as it is", err);
        snprintf(p.cpuset, sizeof p.cpuset, "?");
        warn = 1;
        goto out;
    }
    hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo);
    cur = hwloc_bitmap_alloc();
    want = hwloc_bitmap_alloc();
    if (!cur || !want) {
        snprintf(p.note, sizeof p.note, "out of memory reading the binding");
        goto out;
    }
    if (hwloc_get_cpubind(topo, cur, HWLOC_CPUBIND_PROCESS) < 0) {
        snprintf(p.note, sizeof p.note, "cannot read the binding (%s): left as it is",
                 strerror(errno));
        hwloc_bitmap_copy(cur, allowed);
        warn = 1;
    } else if (!hwloc_bitmap_isincluded(allowed, cur)) {
        hwloc_bitmap_and(cur, cur, allowed);
        char now[64];
        list_of(cur, now, sizeof now);
        /* narrower than the node: someone bound us (or we did, earlier) */
        p.how = self_bound[0] && !strcmp(now, self_bound) ? MRF__BIND_HOW_MRFLOW
                                                          : MRF__BIND_HOW_LAUNCHER;
    } else if (plan(topo, mode, p.local_rank, p.local_size, want, p.note, sizeof p.note) == 0) {
        warn = p.note[0] != 0;
        describe(topo, want, &p);
        if (do_bind)
            apply(topo, want, &p);
        else
            p.how = MRF__BIND_HOW_MRFLOW; /* what it would do */
        if (p.how == MRF__BIND_HOW_MRFLOW)
            hwloc_bitmap_copy(cur, want);
        else
            warn = 1;
        if (p.how == MRF__BIND_HOW_MRFLOW && do_bind)
            list_of(want, self_bound, sizeof self_bound);
    } else {
        warn = mode != MRF__BIND_NONE;
    }
    describe(topo, cur, &p);
    if (p.how != MRF__BIND_HOW_NONE) {
        if (!bound_nodes)
            bound_nodes = hwloc_bitmap_alloc();
        if (bound_nodes)
            hwloc_cpuset_to_nodeset(topo, cur, bound_nodes);
        const char *e = getenv("MRFLOW_MEMBIND");
        if (bound_nodes && e && !strcmp(e, "bind") && do_bind &&
            hwloc_set_membind(topo, bound_nodes, HWLOC_MEMBIND_BIND,
                              HWLOC_MEMBIND_THREAD | HWLOC_MEMBIND_BYNODESET) < 0)
            mrf__log(MRF_LOG_WARN, "MRFLOW_MEMBIND=bind: hwloc_set_membind failed: %s",
                     strerror(errno));
    }
out:
    hwloc_bitmap_free(cur);
    hwloc_bitmap_free(want);
    {
        /* one warning per job, from the lowest rank that has one */
        int rank, first, key;
        MPI_Comm_rank(comm, &rank);
        key = warn ? rank : INT32_MAX;
        MPI_Allreduce(&key, &first, 1, MPI_INT, MPI_MIN, comm);
        if (warn && first == rank && do_bind && !warned)
            mrf__log(MRF_LOG_WARN, "placement: %s", p.note);
        warned |= first != INT32_MAX;
    }
    *out = p;
    return MRF_OK;
}

void mrf__topo_where(const void *buf, size_t len, char *out, size_t n)
{
    snprintf(out, n, "?");
    if (!topo || !buf || !len)
        return;
    hwloc_nodeset_t ns = hwloc_bitmap_alloc();
    if (!ns)
        return;
    /* the first 64 MiB are enough to see where pages go */
    if (len > (64u << 20))
        len = 64u << 20;
    if (hwloc_get_area_memlocation(topo, buf, len, ns, HWLOC_MEMBIND_BYNODESET) == 0 &&
        !hwloc_bitmap_iszero(ns))
        list_of(ns, out, n);
    hwloc_bitmap_free(ns);
}

void mrf__topo_close(void)
{
    if (bound_nodes)
        hwloc_bitmap_free(bound_nodes);
    bound_nodes = NULL;
    if (topo)
        hwloc_topology_destroy(topo);
    topo = NULL;
}

int mrf__topo_preview(int mode, int nlocal, FILE *f)
{
    hwloc_topology_t t;
    char err[200];
    if (load(&t, err, sizeof err) < 0) {
        fprintf(stderr, "mrflow topo: error: %s\n", err);
        return MRF_EXIT_FAILED;
    }
    int nn = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
    int np = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE);
    int nc = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    int nu = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    char allowed[256];
    list_of(hwloc_topology_get_allowed_cpuset(t), allowed, sizeof allowed);
    fprintf(f,
            "this node: %d package(s), %d NUMA node(s), %d core(s), %d hardware thread(s); "
            "allowed PUs %s\n",
            np, nn, nc, nu, allowed);
    static const char *modes[] = {"auto", "core", "numa", "none"};
    fprintf(f, "--bind %s with %d rank(s) on this node (unless the launcher binds them):\n",
            modes[mode], nlocal);
    fprintf(f, "%-10s %-12s %-10s %s\n", "local_rank", "cpuset", "numa_node", "note");
    hwloc_cpuset_t want = hwloc_bitmap_alloc();
    for (int lr = 0; lr < nlocal && want; lr++) {
        mrf__placement p;
        memset(&p, 0, sizeof p);
        hwloc_bitmap_zero(want);
        if (plan(t, mode, lr, nlocal, want, p.note, sizeof p.note) == 0)
            describe(t, want, &p);
        else
            snprintf(p.cpuset, sizeof p.cpuset, "unbound");
        fprintf(f, "%-10d %-12s %-10s %s\n", lr, p.cpuset, p.numa[0] ? p.numa : "-", p.note);
    }
    hwloc_bitmap_free(want);
    hwloc_topology_destroy(t);
    return MRF_EXIT_OK;
}
