/* test_lean.c: LEAN mode and pressure levels (mode.c, purge.c, the
 * decommit paths of superslab.c and os.c): counters move when memory is
 * given back, decommitted memory is reused correctly (calloc zeroes after
 * MADV_FREE, retired address ranges come back), the background purge
 * gives back an idle process's memory, and mode switches racing threads
 * that check their blocks' contents lose nothing. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "hk_internal.h"
#include "test_main.h"

static uint64_t ctr(const char *name)
{
    uint64_t v = 0;
    ck_assert_int_eq(hakmem_counter(name, &v), 0);
    return v;
}

static void setup(void)
{
    hk_ensure_init();
}

#define NB 20000

/* Allocate NB blocks of 16..1024 bytes, fill them, free them all but
 * every keep-th (none when keep is 0): slabs partly used, with wholly
 * free pages. Returns the blocks (the kept ones still live). */
static void **grow(unsigned seed, int keep)
{
    static void *p[NB];
    for (int i = 0; i < NB; i++) {
        size_t n = 16 + (seed = seed * 1103515245u + 12345u) % 1009;
        p[i] = hk_malloc(n);
        ck_assert_ptr_nonnull(p[i]);
        memset(p[i], 0x5a, n);
    }
    for (int i = 0; i < NB; i++)
        if (!keep || i % keep)
            hk_free(p[i]);
    return p;
}

static void grow_and_free(unsigned seed)
{
    grow(seed, 0);
}

START_TEST(test_modes_and_levels)
{
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_FAST);
    uint64_t sw = ctr("mode_switches");
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_LEAN);
    ck_assert_uint_eq(ctr("mode"), 1);
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);   /* no change */
    ck_assert_uint_eq(ctr("mode_switches"), sw + 1);
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_NONE), 0);
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_FAST);     /* the start mode */
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_LOW), 0);
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_LEAN);
    ck_assert_uint_eq(ctr("level"), HAKMEM_LEVEL_LOW);
    errno = 0;
    ck_assert_int_eq(hakmem_apply_pressure(7), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(hakmem_set_mode(5), -1);
}
END_TEST

START_TEST(test_medium_decommits_and_retires)
{
    grow_and_free(1);                   /* FAST: memory stays */
    uint64_t committed = ctr("bytes_committed");
    uint64_t dec = ctr("lean_decommit"), ret = ctr("lean_retire");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_MEDIUM), 0);
    ck_assert_uint_gt(ctr("lean_decommit") + ctr("lean_retire"), dec + ret);
    ck_assert_uint_lt(ctr("bytes_committed"), committed);
    ck_assert_uint_eq(ctr("superslabs_cached"), 0);
}
END_TEST

START_TEST(test_calloc_zero_after_madv_free_reuse)
{
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
    enum { N = 4000 };
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {       /* two full 64 KiB slabs of 64 B ... */
        p[i] = hk_malloc(64);
        memset(p[i], 0xff, 64);
    }
    void *keep = hk_malloc(64);         /* ... and one block that stays */
    for (int i = 0; i < N; i++)
        hk_free(p[i]);
    hk_release_now(false, false);       /* MADV_FREE: old bytes may stay */
    ck_assert_uint_gt(ctr("bytes_decommitted"), 0);
    for (int i = 0; i < N; i++) {
        p[i] = hk_calloc(1, 64);
        for (int j = 0; j < 64; j++)
            ck_assert_msg(p[i][j] == 0, "calloc block %d byte %d = %u", i, j, p[i][j]);
        memset(p[i], i & 0xff, 64);
    }
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 64; j++)
            ck_assert_uint_eq(p[i][j], (unsigned)(i & 0xff));
        hk_free(p[i]);
    }
    hk_free(keep);
}
END_TEST

/* The free pages of a partly used medium slab (eight units, 40 KiB
 * blocks) are decommitted like small ones, counted, and their blocks
 * come back zeroed by calloc while the kept ones keep their contents. */
START_TEST(test_lean_medium_pages_decommitted)
{
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
    enum { N = 12, SZ = 40960 };        /* one 512 KiB slab */
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = hk_malloc(SZ);
        memset(p[i], 0x40 + i, SZ);
    }
    uint64_t bytes = ctr("bytes_decommitted"), dec = ctr("lean_decommit");
    for (int i = 1; i < N; i += 2)
        hk_free(p[i]);
    hk_release_now(false, false);
    ck_assert_uint_ge(ctr("bytes_decommitted") - bytes, (uint64_t)(N / 2) * SZ);
    ck_assert_uint_gt(ctr("lean_decommit"), dec);
    for (int i = 1; i < N; i += 2) {
        p[i] = hk_calloc(1, SZ);
        for (int j = 0; j < SZ; j += 511)
            ck_assert_msg(p[i][j] == 0, "calloc block %d byte %d = %u", i, j, p[i][j]);
    }
    for (int i = 0; i < N; i += 2)
        for (int j = 0; j < SZ; j += 257)
            ck_assert_uint_eq(p[i][j], (unsigned)(0x40 + i));
    for (int i = 0; i < N; i++)
        hk_free(p[i]);
}
END_TEST

/* LEAN counts memory as committed as blocks are handed out, not a whole
 * superslab or slab at a time: a few blocks from a fresh superslab are a
 * few pages; and pages never given back are not "needed again" (the
 * purge's adaptive delay). */
START_TEST(test_lean_counts_pages_handed_out)
{
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
    hakmem_trim();
    ck_assert_uint_eq(ctr("superslabs_live") + ctr("superslabs_cached"), 0);
    uint64_t committed = ctr("bytes_committed");
    atomic_store(&hk_recommit_pages, 0);
    char *p = hk_malloc(64);            /* a fresh superslab */
    ck_assert_uint_le(ctr("bytes_committed") - committed, HK_UNIT_SIZE + 4 * HK_PAGE);
    ck_assert_uint_eq(atomic_load(&hk_recommit_pages), 0);   /* fresh: not needed *again* */
    char *m = hk_malloc(300000);        /* 320 KiB of a 1 MiB slab */
    ck_assert_uint_le(ctr("bytes_committed") - committed, HK_UNIT_SIZE + 4 * HK_PAGE + 327680);
    memset(m, 1, 300000);
    hk_free(m);
    hk_free(p);
}
END_TEST

START_TEST(test_retire_then_reuse)
{
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
    uint64_t ret = ctr("lean_retire");
    grow_and_free(2);
    hakmem_trim();
    ck_assert_uint_gt(ctr("lean_retire"), ret);
    ck_assert_uint_eq(ctr("superslabs_live"), 0);
    /* the address space comes back (the OS box maps at the last hint) */
    grow_and_free(3);
    char *q = hk_malloc(100);
    ck_assert(hk_reg_test((uintptr_t)q));
    memset(q, 1, 100);
    hk_free(q);
}
END_TEST

START_TEST(test_idle_process_gives_back)
{
    ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
    uint64_t dec = ctr("bytes_decommitted") , ret = ctr("lean_retire");
    grow_and_free(4);
    /* no allocation from now on: only the background purge can act */
    for (int i = 0; i < 40 && ctr("bytes_decommitted") == dec && ctr("lean_retire") == ret; i++)
        usleep(100 * 1000);
    ck_assert_msg(ctr("bytes_decommitted") > dec || ctr("lean_retire") > ret,
                  "nothing given back after 4 s idle in LEAN");
}
END_TEST

/* FAST decays (purge.c): with a short HAKMEM_SS_DECAY_MS, an idle
 * process's free memory (empty superslabs, free units and pages, cached
 * large mappings) goes back to the kernel by itself, without any level
 * or trim; and what it keeps in use stays intact. */
START_TEST(test_fast_decay_gives_back)
{
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_FAST);
    char *env[] = { "HAKMEM_SS_DECAY_MS=300", NULL };
    hk_env_load(env, &hk_opt);          /* the options as read at start */
    ck_assert_uint_eq(hk_opt.decay_ms, 300);
    enum { NM = 48 };
    static char *m[NM];
    for (int i = 0; i < NM; i++) {      /* 33 KiB .. 3 MiB: medium and large */
        size_t n = 33000 + (size_t)i * 65000;
        m[i] = hk_malloc(n);
        ck_assert_ptr_nonnull(m[i]);
        memset(m[i], i, n);
    }
    char *keep = hk_malloc(200000);
    memset(keep, 7, 200000);
    void **p = grow(21, 0);             /* and small blocks, all freed */
    (void)p;
    for (int i = 0; i < NM; i++)
        hk_free(m[i]);
    uint64_t spare = ctr("bytes_committed") - ctr("bytes_in_use");
    ck_assert_uint_gt(spare, 40 << 20);
    uint64_t maps = ctr("munmap_calls");
    /* no allocation from now on: only the purge thread can act */
    for (int i = 0; i < 50 && ctr("bytes_committed") - ctr("bytes_in_use") > spare / 8; i++)
        usleep(100 * 1000);
    ck_assert_msg(ctr("bytes_committed") - ctr("bytes_in_use") <= spare / 8,
                  "FAST kept %llu of %llu free bytes after 5 s with a 300 ms decay",
                  (unsigned long long)(ctr("bytes_committed") - ctr("bytes_in_use")),
                  (unsigned long long)spare);
    ck_assert_uint_gt(ctr("munmap_calls"), maps);
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_FAST);
    for (int i = 0; i < 200000; i += 97)
        ck_assert_uint_eq((unsigned char)keep[i], 7);
    hk_free(keep);
}
END_TEST

/* Resident bytes of this process (/proc/self/statm). */
static uint64_t rss_bytes(void)
{
    unsigned long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &res), 2);
    fclose(f);
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Large blocks of mixed sizes, touched, then freed: FAST keeps their
 * extents (resident, merged, for reuse in place); LEAN gives every freed
 * block back at once, and a switch to LEAN gives back what FAST kept. */
START_TEST(test_large_given_back_in_lean)
{
    enum { MB = 1 << 20, NL = 10 };     /* extents within FAST's 64 MiB */
    static char *p[NL];
    size_t total = 0;
    for (int round = 0; round < 2; round++) {
        bool lean = round == 1;
        if (lean)
            ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
        uint64_t committed = ctr("bytes_committed");
        total = 0;
        for (int i = 0; i < NL; i++) {  /* 2..7 MiB, out of order */
            size_t n = (size_t)(2 + (i * 5) % 6) * MB + 4096 * (size_t)i;
            p[i] = hk_malloc(n);
            ck_assert_ptr_nonnull(p[i]);
            memset(p[i], i + 1, n);
            total += n;
        }
        uint64_t rss = rss_bytes();
        for (int i = 0; i < NL; i += 2)     /* every other, then the rest */
            hk_free(p[i]);
        for (int i = 1; i < NL; i += 2)
            hk_free(p[i]);
        uint64_t after = rss_bytes();
        if (lean) {
            ck_assert_uint_eq(ctr("large_cached"), 0);
            ck_assert_uint_le(ctr("bytes_committed"), committed);
            ck_assert_msg(rss - after >= total * 9 / 10, "LEAN: RSS %llu -> %llu after freeing %zu"
                          " bytes of large blocks", (unsigned long long)rss,
                          (unsigned long long)after, total);
        } else {
            ck_assert_uint_ge(ctr("large_cached"), 1);
            ck_assert_msg(after + total / 10 > rss, "FAST gave back its free extents at once:"
                          " RSS %llu -> %llu", (unsigned long long)rss, (unsigned long long)after);
            ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_LEAN), 0);
            ck_assert_uint_eq(ctr("large_cached"), 0);
            ck_assert_uint_ge(after - rss_bytes(), total * 9 / 10);
            ck_assert_int_eq(hakmem_set_mode(HAKMEM_MODE_FAST), 0);
        }
    }
}
END_TEST

/* ---- each level does what hakmem.h says ---- */

static void **grow_keep(unsigned seed)
{
    return grow(seed, 50);
}

static void free_kept(void **p)
{
    for (int i = 0; i < NB; i += 50)
        hk_free(p[i]);
}

/* The VmFlags of the mapping holding p ("hg": MADV_HUGEPAGE, "nh":
 * MADV_NOHUGEPAGE), from /proc/self/smaps. */
static bool vma_flag(const void *p, const char *flag)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    bool in = false, found = false, has = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = true;
            for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
                has |= strcmp(t, flag) == 0;
        }
    }
    fclose(f);
    ck_assert_msg(found, "no mapping with VmFlags holds %p", p);
    return has;
}

/* HAKMEM_SS_HUGEPAGE (ss_map, os.c): a superslab mapped in FAST asks for
 * huge pages; once pages of it are decommitted it asks no more, so that
 * khugepaged does not collapse it again (faulting those pages back in). */
START_TEST(test_hugepage_until_decommitted)
{
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
        printf("test_hugepage_until_decommitted: skipped, a kernel without THP\n");
        return;                         /* madvise(MADV_HUGEPAGE) is EINVAL there */
    }
    char *env[] = { "HAKMEM_SS_HUGEPAGE=1", NULL };
    hk_env_load(env, &hk_opt);
    ck_assert_uint_eq(hk_opt.ss_hugepage, 1);
    void **kept = grow_keep(14);
    void *last = NULL;                  /* a kept block in a superslab mapped just now */
    for (int i = NB - 50; i >= 0 && !last; i -= 50)
        if (vma_flag(kept[i], "hg"))
            last = kept[i];
    ck_assert_msg(last, "no superslab mapped with MADV_HUGEPAGE");
    ck_assert(!vma_flag(last, "nh"));
    uint64_t dec = ctr("lean_decommit");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_MEDIUM), 0);
    ck_assert_uint_gt(ctr("lean_decommit"), dec);
    ck_assert(vma_flag(last, "nh"));
    ck_assert(!vma_flag(last, "hg"));
    free_kept(kept);
}
END_TEST

START_TEST(test_level_low_releases_nothing_now)
{
    void **kept = grow_keep(11);
    uint64_t dec = ctr("lean_decommit"), ret = ctr("lean_retire"), mad = ctr("madvise_calls");
    uint64_t unm = ctr("munmap_calls");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_LOW), 0);
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_LEAN);
    ck_assert_uint_eq(ctr("level"), HAKMEM_LEVEL_LOW);
    ck_assert_uint_eq(ctr("lean_decommit"), dec);
    ck_assert_uint_eq(ctr("lean_retire"), ret);
    ck_assert_uint_eq(ctr("madvise_calls"), mad);
    ck_assert_uint_eq(ctr("munmap_calls"), unm);
    free_kept(kept);
}
END_TEST

START_TEST(test_level_medium_decommits_lazily)
{
    void **kept = grow_keep(12);
    uint64_t dec = ctr("lean_decommit"), eager = ctr("lean_decommit_eager");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_MEDIUM), 0);
    ck_assert_uint_gt(ctr("lean_decommit"), dec);
    ck_assert_uint_eq(ctr("lean_decommit_eager"), eager);    /* default: FREE */
    ck_assert_uint_gt(ctr("bytes_lazy"), 0);
    /* a second MEDIUM finds nothing new to give back */
    dec = ctr("lean_decommit");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_MEDIUM), 0);
    ck_assert_uint_eq(ctr("lean_decommit"), dec);
    free_kept(kept);
}
END_TEST

START_TEST(test_level_critical_upgrades_lazy_pages)
{
    void **kept = grow_keep(13);
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_MEDIUM), 0);
    ck_assert_uint_gt(ctr("bytes_lazy"), 0);
    uint64_t eager = ctr("lean_decommit_eager"), bytes = ctr("bytes_decommitted");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_CRITICAL), 0);
    ck_assert_uint_gt(ctr("lean_decommit_eager"), eager);
    ck_assert_uint_eq(ctr("bytes_lazy"), 0);
    /* made certain, not given back twice */
    ck_assert_uint_eq(ctr("bytes_decommitted"), bytes);
    free_kept(kept);
}
END_TEST

/* Can this process give back two ranges in one process_madvise (Linux
 * 6.13 allows any advice on the caller itself)? */
static bool process_madvise_works(void)
{
    char *m = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    struct iovec iov[2] = { { m, 4096 }, { m + 2 * 4096, 4096 } };
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0u);
    long r = fd < 0 ? -1 : syscall(SYS_process_madvise, fd, iov, (size_t)2, MADV_DONTNEED, 0u);
    if (fd >= 0)
        close(fd);
    munmap(m, 3 * 4096);
    return r == 2 * 4096;
}

/* Free pages scattered between kept blocks (every 50th block kept) go
 * back in a call or two per superslab, not one per run of free pages:
 * the runs go in one process_madvise, which flushes the TLB once (a
 * madvise per run cost 0.6 ms on the VMs here). Kept blocks keep their
 * contents. */
START_TEST(test_scattered_pages_go_back_in_few_calls)
{
    if (!process_madvise_works()) {
        printf("skipped: no process_madvise on this process (kernel < 6.13 or a filter)\n");
        return;
    }
    void **kept = grow_keep(14);
    uint64_t mad = ctr("madvise_calls"), bytes = ctr("bytes_decommitted");
    uint64_t ss = ctr("superslabs_live") + ctr("superslabs_cached");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_CRITICAL), 0);
    uint64_t calls = ctr("madvise_calls") - mad, back = ctr("bytes_decommitted") - bytes;
    ck_assert_uint_ge(back, (uint64_t)4 << 20);
    ck_assert_msg(calls <= 2 * ss + 2, "%llu madvise calls for %llu superslabs (%llu KiB)",
                  (unsigned long long)calls, (unsigned long long)ss,
                  (unsigned long long)(back >> 10));
    for (int i = 0; i < NB; i += 50)
        ck_assert_uint_eq(((unsigned char *)kept[i])[0], 0x5a);
    free_kept(kept);
}
END_TEST

/* Threads that cache blocks and then sleep: CRITICAL takes their caches
 * back without their help, and they go on correctly when they wake. */
static pthread_barrier_t sleep_bar;

/* n blocks of 64 + (i % 4) * step bytes, cached, asleep while CRITICAL
 * happens, then checked: the bad bytes and shared blocks. */
static void *sleep_cached(int n, size_t step)
{
    unsigned char *p[300];
    for (int i = 0; i < n; i++) {
        p[i] = hk_malloc(64 + (size_t)(i % 4) * step);
        memset(p[i], 7, 64);
    }
    for (int i = 0; i < n; i++)
        hk_free(p[i]);                  /* into this thread's cache */
    pthread_barrier_wait(&sleep_bar);   /* cached, asleep */
    pthread_barrier_wait(&sleep_bar);   /* CRITICAL happened */
    long bad = 0;
    for (int i = 0; i < n; i++) {
        p[i] = hk_malloc(64 + (size_t)(i % 4) * step);
        memset(p[i], i, 64);
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 64; j++)
            bad += p[i][j] != (unsigned char)i;
        for (int k = 0; k < i; k++)
            bad += p[k] == p[i];
    }
    for (int i = 0; i < n; i++)
        hk_free(p[i]);
    return (void *)bad;
}

static void *sleeper(void *arg)
{
    (void)arg;
    return sleep_cached(200, 64);
}

START_TEST(test_level_critical_takes_sleeping_caches)
{
    enum { T = 3 };
    pthread_t t[T];
    pthread_barrier_init(&sleep_bar, NULL, T + 1);
    for (int i = 0; i < T; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, sleeper, NULL), 0);
    pthread_barrier_wait(&sleep_bar);
    uint64_t stolen = ctr("tcache_stolen"), used = ctr("bytes_in_use");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_CRITICAL), 0);
    /* each thread cached at least 4 classes' worth (a bin keeps <= cap) */
    ck_assert_uint_ge(ctr("tcache_stolen") - stolen, T * 4 * 16);
    ck_assert_uint_lt(ctr("bytes_in_use"), used);
    pthread_barrier_wait(&sleep_bar);
    for (int i = 0; i < T; i++) {
        void *r;
        pthread_join(t[i], &r);
        ck_assert_msg(r == NULL, "thread %d: %ld bad bytes or shared blocks", i, (long)r);
    }
    pthread_barrier_destroy(&sleep_bar);
}
END_TEST

/* A thread whose working set of one class is bigger than its bin keeps
 * the overflow in its stash (tcache.c); asleep, CRITICAL takes the stash
 * back with the bin, more blocks than a bin can hold. */
enum { STASH_WS = 300 };   /* <= sleep_cached's blocks */

static void *stash_sleeper(void *arg)
{
    (void)arg;
    return sleep_cached(STASH_WS, 0);   /* one class: a bin's worth cached, the rest stashed */
}

START_TEST(test_level_critical_takes_sleeping_stash)
{
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_NONE), 0);
    pthread_t t;
    pthread_barrier_init(&sleep_bar, NULL, 2);
    ck_assert_int_eq(pthread_create(&t, NULL, stash_sleeper, NULL), 0);
    pthread_barrier_wait(&sleep_bar);
    uint64_t stolen = ctr("tcache_stolen");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_CRITICAL), 0);
    ck_assert_uint_gt(ctr("tcache_stolen") - stolen, HK_TC_SLOTS);
    pthread_barrier_wait(&sleep_bar);
    void *r;
    pthread_join(t, &r);
    ck_assert_msg(r == NULL, "%ld bad bytes or shared blocks", (long)r);
    pthread_barrier_destroy(&sleep_bar);
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_NONE), 0);
}
END_TEST

/* Medium blocks a thread freed wait in its medium bin (tcache.c), up to
 * its bound in bytes (FAST: 1 MiB), the rest back in their slabs at once;
 * CRITICAL takes the bin of a sleeping thread back too. */
enum { MED_N = 40, MED_SIZE = 60 << 10 };
static uint64_t med_used_before_free, med_used_after_free;

static void *medium_sleeper(void *arg)
{
    unsigned char *p[MED_N];
    for (int i = 0; i < MED_N; i++) {
        p[i] = hk_malloc(MED_SIZE - (size_t)(i % 2) * (8 << 10));
        memset(p[i], 7, 4096);
    }
    med_used_before_free = ctr("bytes_in_use");
    for (int i = 0; i < MED_N; i++)
        hk_free(p[i]);                  /* into this thread's medium bin */
    med_used_after_free = ctr("bytes_in_use");
    pthread_barrier_wait(&sleep_bar);   /* cached, asleep */
    pthread_barrier_wait(&sleep_bar);   /* CRITICAL happened */
    long bad = 0;
    for (int i = 0; i < MED_N; i++) {
        p[i] = hk_malloc(MED_SIZE - (size_t)(i % 2) * (8 << 10));
        memset(p[i], i, 4096);
    }
    for (int i = 0; i < MED_N; i++) {
        for (int j = 0; j < 4096; j++)
            bad += p[i][j] != (unsigned char)i;
        for (int k = 0; k < i; k++)
            bad += p[k] == p[i];
    }
    for (int i = 0; i < MED_N; i++)
        hk_free(p[i]);
    return (void *)bad;
}

START_TEST(test_medium_bin_bounded_and_stolen)
{
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_FAST);
    pthread_t t;
    pthread_barrier_init(&sleep_bar, NULL, 2);
    ck_assert_int_eq(pthread_create(&t, NULL, medium_sleeper, NULL), 0);
    pthread_barrier_wait(&sleep_bar);
    /* both sizes are exact medium classes: bytes_in_use counts them */
    uint64_t freed = (uint64_t)MED_N / 2 * (2 * MED_SIZE - (8 << 10));
    uint64_t kept = med_used_after_free - (med_used_before_free - freed);
    ck_assert_uint_gt(kept, 0);                     /* some wait in the bin */
    ck_assert_uint_le(kept, 1 << 20);               /* ... within its bytes */
    uint64_t stolen = ctr("tcache_stolen"), used = ctr("bytes_in_use");
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_CRITICAL), 0);
    ck_assert_uint_ge(ctr("tcache_stolen") - stolen, kept / MED_SIZE);
    ck_assert_uint_le(ctr("bytes_in_use"), used - kept);
    pthread_barrier_wait(&sleep_bar);
    void *r;
    pthread_join(t, &r);
    ck_assert_msg(r == NULL, "%ld bad bytes or shared blocks", (long)r);
    pthread_barrier_destroy(&sleep_bar);
}
END_TEST

START_TEST(test_level_none_is_the_start_mode)
{
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_CRITICAL), 0);
    ck_assert_int_eq(hakmem_apply_pressure(HAKMEM_LEVEL_NONE), 0);
    ck_assert_int_eq(hakmem_get_mode(), HAKMEM_MODE_FAST);
    ck_assert_uint_eq(ctr("level"), HAKMEM_LEVEL_NONE);
}
END_TEST

/* Threads churn blocks and check their contents while the main thread
 * switches modes and applies pressure levels. */
static _Atomic int stop_flag;

static void *checker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    enum { SLOTS = 512 };
    unsigned char *p[SLOTS] = { 0 };
    size_t len[SLOTS] = { 0 };
    unsigned char tag[SLOTS] = { 0 };
    long bad = 0;
    while (!atomic_load(&stop_flag)) {
        unsigned i = (seed = seed * 1103515245u + 12345u) % SLOTS;
        if (p[i]) {
            for (size_t j = 0; j < len[i]; j++)
                bad += p[i][j] != tag[i];
            hk_free(p[i]);
        }
        len[i] = 1 + (seed >> 8) % ((seed & 15) == 0 ? 70000 : 2000);
        p[i] = hk_malloc(len[i]);
        if (!p[i])
            return (void *)-1L;
        tag[i] = (unsigned char)(seed >> 3);
        memset(p[i], tag[i], len[i]);
    }
    for (unsigned i = 0; i < SLOTS; i++) {
        for (size_t j = 0; p[i] && j < len[i]; j++)
            bad += p[i][j] != tag[i];
        hk_free(p[i]);
    }
    return (void *)bad;
}

START_TEST(test_switches_race_threads)
{
    enum { T = 4 };
    pthread_t t[T];
    atomic_store(&stop_flag, 0);
    for (int i = 0; i < T; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, checker, (void *)(uintptr_t)(i + 1)), 0);
    for (int k = 0; k < 300; k++) {
        switch (k % 5) {
        case 0: hakmem_set_mode(HAKMEM_MODE_LEAN); break;
        case 1: hakmem_apply_pressure(HAKMEM_LEVEL_MEDIUM); break;
        case 2: hakmem_set_mode(HAKMEM_MODE_FAST); break;
        case 3: hakmem_apply_pressure(HAKMEM_LEVEL_CRITICAL); break;
        case 4: hakmem_apply_pressure(HAKMEM_LEVEL_NONE); break;
        }
        usleep(2000);
    }
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < T; i++) {
        void *r;
        pthread_join(t[i], &r);
        ck_assert_msg(r == NULL, "thread %d: %ld bad bytes (or -1: NULL)", i, (long)r);
    }
    ck_assert_uint_ge(ctr("mode_switches"), 100);
}
END_TEST

static Suite *lean_suite(void)
{
    Suite *s = suite_create("lean");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_modes_and_levels);
    tcase_add_test(tc, test_medium_decommits_and_retires);
    tcase_add_test(tc, test_calloc_zero_after_madv_free_reuse);
    tcase_add_test(tc, test_lean_medium_pages_decommitted);
    tcase_add_test(tc, test_lean_counts_pages_handed_out);
    tcase_add_test(tc, test_retire_then_reuse);
    tcase_add_test(tc, test_idle_process_gives_back);
    tcase_add_test(tc, test_fast_decay_gives_back);
    tcase_add_test(tc, test_large_given_back_in_lean);
    tcase_add_test(tc, test_hugepage_until_decommitted);
    tcase_add_test(tc, test_switches_race_threads);
    tcase_add_test(tc, test_level_low_releases_nothing_now);
    tcase_add_test(tc, test_level_medium_decommits_lazily);
    tcase_add_test(tc, test_level_critical_upgrades_lazy_pages);
    tcase_add_test(tc, test_scattered_pages_go_back_in_few_calls);
    tcase_add_test(tc, test_level_critical_takes_sleeping_caches);
    tcase_add_test(tc, test_level_critical_takes_sleeping_stash);
    tcase_add_test(tc, test_medium_bin_bounded_and_stolen);
    tcase_add_test(tc, test_level_none_is_the_start_mode);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(lean_suite)
