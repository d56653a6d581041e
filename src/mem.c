/*
 * mem.c -- the one place mrflow allocates: byte accounting and fault injection.
 *
 * Small allocations carry a 16-byte header with their size so mrf__free can
 * account them.  Big buffers (arenas, shuffle and sort buffers) come straight
 * from mmap, on 2 MiB boundaries from 2 MiB up (so huge pages can back
 * them), each with room to grow in place behind it (map_aligned).  A
 * buffer that is about to be written whole is populated by the kernel in
 * one call (MAP_POPULATE):
 * 0.33 s per GiB here, against 0.48 s for faults page by page and up to
 * 3.0 s for faults in a MADV_HUGEPAGE region that needs compaction
 * (benchmarks/pagefault.c).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define HDR 16u

static atomic_size_t in_use, peak;
static atomic_uint_fast64_t fail_countdown;

static void account(size_t add, size_t sub)
{
    size_t now = atomic_fetch_add(&in_use, add) + add;
    size_t p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now))
        ;
    atomic_fetch_sub(&in_use, sub);
}

size_t mrf__mem_peak(void)
{
    return atomic_load(&peak);
}

static bool should_fail(void)
{
    uint_fast64_t n = atomic_load(&fail_countdown);
    if (n == 0)
        return false;
    return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

void mrf__mem_fail_after(uint64_t n)
{
    atomic_store(&fail_countdown, n);
}
size_t mrf__mem_in_use(void)
{
    return atomic_load(&in_use);
}

void *mrf__malloc(size_t n)
{
    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    char *p = malloc(n + HDR);
    if (!p)
        return NULL;
    memcpy(p, &n, sizeof n);
    account(n, 0);
    return p + HDR;
}

void *mrf__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = mrf__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *mrf__realloc(void *p, size_t n)
{
    if (!p)
        return mrf__malloc(n);
    if (should_fail() || n > SIZE_MAX - HDR)
        return NULL;
    char *h = (char *)p - HDR;
    size_t old;
    memcpy(&old, h, sizeof old);
    char *q = realloc(h, n + HDR);
    if (!q)
        return NULL;
    memcpy(q, &n, sizeof n);
    account(n, old);
    return q + HDR;
}

void mrf__free(void *p)
{
    if (!p)
        return;
    char *h = (char *)p - HDR;
    size_t old;
    memcpy(&old, h, sizeof old);
    account(0, old);
    free(h);
}

char *mrf__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mrf__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/*
 * Transparent huge pages for big buffers.  Where the kernel has free 2 MiB
 * blocks they cut first touch several-fold and spare the TLB misses of
 * random probes (measured here, 2 ranks: terasort 1 GiB map 0.27 s with
 * them, 3.0 s without; wordcount 512 MiB 2.83 s vs 3.27 s wall).  But with
 * the common setting defrag=madvise a fault in a MADV_HUGEPAGE region that
 * finds none free compacts memory first: on a machine that had run a while
 * the same terasort's map took 1.7-2.2 s with them and 0.5 s without.  So,
 * by default, a buffer asks for them only while the kernel has free blocks
 * of 2 MiB or more (/proc/buddyinfo, order >= 9 of 4 KiB pages) for four
 * times its size: no compaction to wait for.  MRFLOW_THP=1 always asks,
 * MRFLOW_THP=0 never does.
 */
static size_t free_huge_blocks(void)
{
    FILE *f = fopen("/proc/buddyinfo", "r");
    if (!f)
        return 0;
    size_t n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        /* "Node 0, zone   Normal  c0 c1 ... c10": free blocks of 2^k pages */
        char *p = strstr(line, "zone");
        if (!p)
            continue;
        p += 4;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ') /* the zone's name */
            p++;
        for (int k = 0; *p; k++) {
            char *e;
            unsigned long c = strtoul(p, &e, 10);
            if (e == p)
                break;
            if (k >= 9)
                n += (size_t)c << (k - 9);
            p = e;
        }
    }
    fclose(f);
    return n;
}

/* 0 never, 1 always, 2 while free blocks last (MRFLOW_THP, read once) */
static int thp_mode(void)
{
    static int mode = -1;
    if (mode < 0) {
        const char *e = getenv("MRFLOW_THP");
        int m = e && strcmp(e, "1") == 0 ? 1 : e && strcmp(e, "0") == 0 ? 0 : 2;
        if (m == 2 && sysconf(_SC_PAGESIZE) != 4096) /* order 9 is 2 MiB only there */
            m = 0;
        mode = m;
    }
    return mode;
}

static bool want_thp(size_t n)
{
    int mode = thp_mode();
    if (n < (2u << 20) || mode == 0)
        return false;
    return mode == 1 || (n >> 21) * 4 <= free_huge_blocks();
}

/*
 * An anonymous mapping of n bytes.  From 2 MiB up it starts on a 2 MiB
 * boundary: only then can huge pages back all of it.  And it grows in place:
 * moved, a buffer loses its huge pages wherever the new address is not on
 * such a boundary (the kernel splits them), and every pass over it after
 * that costs a TLB miss per 4 KiB page (an arena grown by doubling while a
 * checkpoint loaded made each later pass 5-10x slower here).  So each big
 * buffer gets a range of its own, SLOT apart from the next in a part of the
 * address space nothing else uses, with room to grow behind it; where that
 * range is taken (a wrapped slot still in use, a smaller address space) the
 * mapping is made 2 MiB larger and trimmed to a boundary instead.  With
 * huge pages off (MRFLOW_THP=0) none of this buys anything and is skipped.
 */
#define SLOT ((uintptr_t)64 << 30)            /* a buffer may grow to 64 GiB in place */
#define SLOT_BASE ((uintptr_t)0x200000000000) /* 32 TiB: above ASan's shadow */
#define N_SLOTS 1024u                         /* up to 96 TiB */
static atomic_uint next_slot;

static void *map_aligned(size_t n)
{
    const size_t H = (size_t)2 << 20;
    if (n < H || thp_mode() == 0) {
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
    }
    if (n <= SLOT && sizeof(void *) == 8) {
        int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_FIXED_NOREPLACE
        flags |= MAP_FIXED_NOREPLACE; /* taken: EEXIST, not another address */
#endif
        for (int tries = 0; tries < 4; tries++) {
            uintptr_t at =
                SLOT_BASE + (uintptr_t)(atomic_fetch_add(&next_slot, 1) % N_SLOTS) * SLOT;
            void *p = mmap((void *)at, n, PROT_READ | PROT_WRITE, flags, -1, 0);
            if (p == (void *)at)
                return p;
            if (p != MAP_FAILED) /* a kernel that took it as a hint only */
                munmap(p, n);
        }
    }
    size_t nr = (n + 4095) & ~(size_t)4095;
    if (nr < n || nr > SIZE_MAX - H)
        return NULL;
    char *p = mmap(NULL, nr + H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)p + H - 1) & ~(uintptr_t)(H - 1));
    if (a > p)
        munmap(p, (size_t)(a - p));
    if (p + nr + H > a + nr)
        munmap(a + nr, (size_t)(p + nr + H - (a + nr)));
    return a;
}

void *mrf__big_alloc(size_t n)
{
    if (n == 0)
        n = 1;
    if (should_fail())
        return NULL;
    void *p = map_aligned(n);
    if (!p)
        return NULL;
    if (want_thp(n))
        (void)madvise(p, n, MADV_HUGEPAGE);
    account(n, 0);
    return p;
}

void *mrf__big_alloc_filled(size_t n)
{
    if (n == 0)
        n = 1;
    if (want_thp(n)) /* MAP_POPULATE would map 4 KiB pages before madvise */
        return mrf__big_alloc_populated(n);
    if (should_fail())
        return NULL;
    void *p =
        mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    account(n, 0);
    return p;
}

void *mrf__big_alloc_populated(size_t n)
{
    char *p = mrf__big_alloc(n);
    if (p) /* after madvise, so the touch gets huge pages */
        for (size_t i = 0; i < n; i += 4096)
            p[i] = 0;
    return p;
}

void *mrf__big_resize(void *p, size_t old_n, size_t new_n)
{
    if (!p)
        return mrf__big_alloc(new_n);
    if (new_n == 0)
        new_n = 1;
    if (should_fail())
        return NULL;
    /* in place (a big buffer has its slot's room behind it); failing that
     * a big buffer is copied to a fresh aligned range (mremap would move it
     * wherever the kernel finds room, and split its huge pages there).  Not
     * MREMAP_FIXED: the mremap hooks that MPI libraries install for their
     * registration caches may drop its fifth argument (MPICH's here moved
     * the buffer to address 0), and bypassing them would hide the move
     * from those caches. */
    const size_t H = (size_t)2 << 20;
    bool align = new_n >= H && thp_mode() != 0, aligned = ((uintptr_t)p & (H - 1)) == 0;
    bool thp = want_thp(new_n);
    void *q = new_n <= old_n || !align || aligned ? mremap(p, old_n, new_n, 0) : MAP_FAILED;
    if (q == MAP_FAILED && align) {
        if (!(q = map_aligned(new_n)))
            return NULL;
        if (thp) /* before the copy touches it */
            (void)madvise(q, new_n, MADV_HUGEPAGE);
        account(new_n, 0); /* both sizes, for the copy's length */
        memcpy(q, p, old_n);
        munmap(p, old_n);
        account(0, old_n);
        return q;
    }
    if (q == MAP_FAILED)
        q = mremap(p, old_n, new_n, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return NULL;
    if (thp)
        (void)madvise(q, new_n, MADV_HUGEPAGE);
    /* mremap moves pages, it does not copy them: never both sizes at once */
    if (new_n > old_n)
        account(new_n - old_n, 0);
    else
        account(0, old_n - new_n);
    return q;
}

void mrf__big_free(void *p, size_t n)
{
    if (!p)
        return;
    if (n == 0)
        n = 1;
    munmap(p, n);
    account(0, n);
}

int mrf__big_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return MRF_OK;
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *b = mrf__big_resize(*buf, *cap, n);
    if (!b)
        return MRF_ENOMEM;
    *buf = b;
    *cap = n;
    return MRF_OK;
}

void *mrf__grow_for(void *p, size_t *cap, size_t used, size_t elem)
{
    if (used < *cap)
        return p;
    size_t n = *cap ? *cap * 2 : 16;
    void *q = mrf__realloc(p, n * elem);
    if (q)
        *cap = n;
    return q;
}
